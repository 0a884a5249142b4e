//! `/channels/{id}`: channel settings, overwrites, invites and typing.

use actix_web::{HttpResponse, delete, get, patch, post, put, web};
use enrichment_actors::guild::requests;
use enrichment_protocol::models::{Channel, Invite};
use enrichment_protocol::rest::{CreateInvite, EditOverwrite, ModifyChannel};
use enrichment_protocol::{ErrorBody, Snowflake};

use crate::error::{ApiResult, Json};
use crate::state::{Authed, State};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(get_channel)
        .service(modify_channel)
        .service(delete_channel)
        .service(edit_overwrite)
        .service(delete_overwrite)
        .service(list_invites)
        .service(create_invite)
        .service(typing);
}

#[utoipa::path(tag = "channels", responses((status = 200, body = Channel), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("token" = [])))]
#[get("/channels/{channel_id}")]
pub async fn get_channel(
    state: State,
    who: Authed,
    path: web::Path<Snowflake>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(
        state
            .channel(*path, &who, requests::GetChannel { channel_id: *path })
            .await?,
    ))
}

/// Needs MANAGE_CHANNELS (and MANAGE_ROLES to change overwrites).
#[utoipa::path(tag = "channels", request_body = ModifyChannel, responses((status = 200, body = Channel), (status = 403, body = ErrorBody)),
    security(("token" = [])))]
#[patch("/channels/{channel_id}")]
pub async fn modify_channel(
    state: State,
    who: Authed,
    path: web::Path<Snowflake>,
    body: Json<ModifyChannel>,
) -> ApiResult<HttpResponse> {
    body.0.validate()?;
    Ok(HttpResponse::Ok().json(
        state
            .channel(
                *path,
                &who,
                requests::ModifyChannel {
                    channel_id: *path,
                    body: body.0,
                },
            )
            .await?,
    ))
}

/// Deletes a channel with its messages and invites; answers with the deleted channel.
#[utoipa::path(tag = "channels", responses((status = 200, body = Channel), (status = 403, body = ErrorBody)), security(("token" = [])))]
#[delete("/channels/{channel_id}")]
pub async fn delete_channel(
    state: State,
    who: Authed,
    path: web::Path<Snowflake>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(
        state
            .channel(*path, &who, requests::DeleteChannel { channel_id: *path })
            .await?,
    ))
}

/// Sets a role (`type` 0) or member (`type` 1) overwrite (MANAGE_ROLES).
#[utoipa::path(tag = "channels", request_body = EditOverwrite, responses((status = 204), (status = 403, body = ErrorBody)),
    security(("token" = [])))]
#[put("/channels/{channel_id}/permissions/{overwrite_id}")]
pub async fn edit_overwrite(
    state: State,
    who: Authed,
    path: web::Path<(Snowflake, Snowflake)>,
    body: Json<EditOverwrite>,
) -> ApiResult<HttpResponse> {
    body.0.validate()?;
    let (channel_id, target) = *path;
    state
        .channel(
            channel_id,
            &who,
            requests::EditOverwrite {
                channel_id,
                target,
                body: body.0,
            },
        )
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(tag = "channels", responses((status = 204), (status = 403, body = ErrorBody)), security(("token" = [])))]
#[delete("/channels/{channel_id}/permissions/{overwrite_id}")]
pub async fn delete_overwrite(
    state: State,
    who: Authed,
    path: web::Path<(Snowflake, Snowflake)>,
) -> ApiResult<HttpResponse> {
    let (channel_id, target) = *path;
    state
        .channel(
            channel_id,
            &who,
            requests::DeleteOverwrite { channel_id, target },
        )
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Live invites of a channel (MANAGE_CHANNELS).
#[utoipa::path(tag = "invites", responses((status = 200, body = Vec<Invite>), (status = 403, body = ErrorBody)), security(("token" = [])))]
#[get("/channels/{channel_id}/invites")]
pub async fn list_invites(
    state: State,
    who: Authed,
    path: web::Path<Snowflake>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(
        state
            .channel(
                *path,
                &who,
                requests::ListChannelInvites { channel_id: *path },
            )
            .await?,
    ))
}

/// Creates an invite (CREATE_INSTANT_INVITE); `max_age` 0–604800 s (default 86400, 0 = never),
/// `max_uses` 0–100 (0 = unlimited); without `unique` an equal live invite is reused.
#[utoipa::path(tag = "invites", request_body = CreateInvite, responses((status = 200, body = Invite), (status = 403, body = ErrorBody)),
    security(("token" = [])))]
#[post("/channels/{channel_id}/invites")]
pub async fn create_invite(
    state: State,
    who: Authed,
    path: web::Path<Snowflake>,
    body: Json<CreateInvite>,
) -> ApiResult<HttpResponse> {
    body.0.validate()?;
    let channel_id = *path;
    Ok(HttpResponse::Ok().json(
        state
            .channel(
                channel_id,
                &who,
                requests::CreateInvite {
                    channel_id,
                    body: body.0,
                },
            )
            .await?,
    ))
}

/// Announces that the caller is typing (TYPING_START on the gateway).
#[utoipa::path(tag = "channels", responses((status = 204), (status = 403, body = ErrorBody)), security(("token" = [])))]
#[post("/channels/{channel_id}/typing")]
pub async fn typing(
    state: State,
    who: Authed,
    path: web::Path<Snowflake>,
) -> ApiResult<HttpResponse> {
    state
        .channel(*path, &who, requests::TriggerTyping { channel_id: *path })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
