//! Webhooks: `/channels/{id}/webhooks` and `/guilds/{id}/webhooks` for members with
//! MANAGE_WEBHOOKS, and `/webhooks/{id}[/{token}]`, where the token alone (no `Authorization`)
//! is the authority to read, change, delete and execute the webhook.

use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};
use enrichment_actors::guild::Request;
use enrichment_actors::guild::requests;
use enrichment_protocol::models::{Message, Webhook};
use enrichment_protocol::rest::{
    CreateWebhook, EditMessage, ExecuteWebhook, ExecuteWebhookQuery, ModifyWebhook,
};
use enrichment_protocol::{ApiError, ErrorBody, ErrorCode, Snowflake};

use crate::error::{ApiResult, HttpError, Json};
use crate::state::{Authed, State, audit_reason};

pub fn configure(cfg: &mut web::ServiceConfig) {
    // Execution first: it is the busy one.
    cfg.service(execute)
        .service(get_message)
        .service(edit_message)
        .service(delete_message)
        .service(get_with_token)
        .service(modify_with_token)
        .service(delete_with_token)
        .service(get_webhook)
        .service(modify_webhook)
        .service(delete_webhook);
}

/// Channel routes, registered with the other `/channels` routes.
pub fn configure_channels(cfg: &mut web::ServiceConfig) {
    cfg.service(create).service(list_channel);
}

/// The guild a webhook belongs to; 404 Unknown Webhook if none.
async fn guild_of(state: &State, webhook_id: Snowflake) -> Result<Snowflake, HttpError> {
    state
        .guilds
        .stores
        .guilds
        .webhook_guild(webhook_id)
        .await
        .map_err(enrichment_actors::guild::GuildContext::store_error)?
        .ok_or_else(|| HttpError(ApiError::unknown(ErrorCode::UnknownWebhook)))
}

/// A request of a logged-in caller about a webhook, sent to its guild.
async fn by_login<R: Request>(
    state: &State,
    who: &Authed,
    webhook_id: Snowflake,
    request: R,
) -> Result<R::Reply, HttpError> {
    let guild = guild_of(state, webhook_id).await?;
    state.guild(guild, who, request).await
}

/// A request the webhook's token authorizes, sent to its guild.
async fn by_token<R: Request>(
    state: &State,
    req: &HttpRequest,
    webhook_id: Snowflake,
    request: R,
) -> Result<R::Reply, HttpError> {
    let guild = guild_of(state, webhook_id).await?;
    state
        .guild_by_token(guild, audit_reason(req), request)
        .await
}

/// Creates a webhook in a text channel (MANAGE_WEBHOOKS). The answer is the only time its
/// token is shown.
#[utoipa::path(tag = "webhooks", request_body = CreateWebhook,
    responses((status = 200, body = Webhook), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("token" = [])))]
#[post("/channels/{channel_id}/webhooks")]
pub async fn create(
    state: State,
    who: Authed,
    path: web::Path<Snowflake>,
    body: Json<CreateWebhook>,
) -> ApiResult<HttpResponse> {
    let channel_id = *path;
    let hook = state
        .channel(
            channel_id,
            &who,
            requests::CreateWebhook {
                channel_id,
                body: body.0,
            },
        )
        .await?;
    Ok(HttpResponse::Ok().json(hook))
}

#[utoipa::path(tag = "webhooks", responses((status = 200, body = Vec<Webhook>), (status = 403, body = ErrorBody)), security(("token" = [])))]
#[get("/channels/{channel_id}/webhooks")]
pub async fn list_channel(
    state: State,
    who: Authed,
    path: web::Path<Snowflake>,
) -> ApiResult<HttpResponse> {
    let channel_id = *path;
    let list = state
        .channel(
            channel_id,
            &who,
            requests::ListChannelWebhooks { channel_id },
        )
        .await?;
    Ok(HttpResponse::Ok().json(list))
}

#[utoipa::path(tag = "webhooks", responses((status = 200, body = Vec<Webhook>), (status = 403, body = ErrorBody)), security(("token" = [])))]
#[get("/guilds/{guild_id}/webhooks")]
pub async fn list_guild(
    state: State,
    who: Authed,
    path: web::Path<Snowflake>,
) -> ApiResult<HttpResponse> {
    let list = state
        .guild(*path, &who, requests::ListGuildWebhooks {})
        .await?;
    Ok(HttpResponse::Ok().json(list))
}

#[utoipa::path(tag = "webhooks", responses((status = 200, body = Webhook), (status = 404, body = ErrorBody)), security(("token" = [])))]
#[get("/webhooks/{webhook_id}")]
pub async fn get_webhook(
    state: State,
    who: Authed,
    path: web::Path<Snowflake>,
) -> ApiResult<HttpResponse> {
    let webhook_id = *path;
    let hook = by_login(
        &state,
        &who,
        webhook_id,
        requests::GetWebhook {
            webhook_id,
            token: None,
        },
    )
    .await?;
    Ok(HttpResponse::Ok().json(hook))
}

/// Renames it, changes its avatar (`null` removes it) or moves it to another channel
/// (MANAGE_WEBHOOKS in both).
#[utoipa::path(tag = "webhooks", request_body = ModifyWebhook,
    responses((status = 200, body = Webhook), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("token" = [])))]
#[patch("/webhooks/{webhook_id}")]
pub async fn modify_webhook(
    state: State,
    who: Authed,
    path: web::Path<Snowflake>,
    body: Json<ModifyWebhook>,
) -> ApiResult<HttpResponse> {
    let webhook_id = *path;
    let hook = by_login(
        &state,
        &who,
        webhook_id,
        requests::ModifyWebhook {
            webhook_id,
            token: None,
            body: body.0,
        },
    )
    .await?;
    Ok(HttpResponse::Ok().json(hook))
}

#[utoipa::path(tag = "webhooks", responses((status = 204), (status = 403, body = ErrorBody)), security(("token" = [])))]
#[delete("/webhooks/{webhook_id}")]
pub async fn delete_webhook(
    state: State,
    who: Authed,
    path: web::Path<Snowflake>,
) -> ApiResult<HttpResponse> {
    let webhook_id = *path;
    by_login(
        &state,
        &who,
        webhook_id,
        requests::DeleteWebhook {
            webhook_id,
            token: None,
        },
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The webhook as its token sees it (no `user`).
#[utoipa::path(tag = "webhooks", responses((status = 200, body = Webhook), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[get("/webhooks/{webhook_id}/{token}")]
pub async fn get_with_token(
    state: State,
    req: HttpRequest,
    path: web::Path<(Snowflake, String)>,
) -> ApiResult<HttpResponse> {
    let (webhook_id, token) = path.into_inner();
    let hook = by_token(
        &state,
        &req,
        webhook_id,
        requests::GetWebhook {
            webhook_id,
            token: Some(token),
        },
    )
    .await?;
    Ok(HttpResponse::Ok().json(hook))
}

/// Name and avatar; a token cannot move the webhook.
#[utoipa::path(tag = "webhooks", request_body = ModifyWebhook,
    responses((status = 200, body = Webhook), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
#[patch("/webhooks/{webhook_id}/{token}")]
pub async fn modify_with_token(
    state: State,
    req: HttpRequest,
    path: web::Path<(Snowflake, String)>,
    body: Json<ModifyWebhook>,
) -> ApiResult<HttpResponse> {
    let (webhook_id, token) = path.into_inner();
    let hook = by_token(
        &state,
        &req,
        webhook_id,
        requests::ModifyWebhook {
            webhook_id,
            token: Some(token),
            body: body.0,
        },
    )
    .await?;
    Ok(HttpResponse::Ok().json(hook))
}

#[utoipa::path(tag = "webhooks", responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[delete("/webhooks/{webhook_id}/{token}")]
pub async fn delete_with_token(
    state: State,
    req: HttpRequest,
    path: web::Path<(Snowflake, String)>,
) -> ApiResult<HttpResponse> {
    let (webhook_id, token) = path.into_inner();
    by_token(
        &state,
        &req,
        webhook_id,
        requests::DeleteWebhook {
            webhook_id,
            token: Some(token),
        },
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Posts a message as the webhook (`username` overrides its name for this message). Answered
/// once the message is durable: with it when `wait=true`, else 204. A `thread_id` that names
/// no thread of the channel is 404 Unknown Channel.
#[utoipa::path(tag = "webhooks", params(ExecuteWebhookQuery), request_body = ExecuteWebhook,
    responses((status = 200, body = Message), (status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[post("/webhooks/{webhook_id}/{token}")]
pub async fn execute(
    state: State,
    req: HttpRequest,
    path: web::Path<(Snowflake, String)>,
    q: web::Query<ExecuteWebhookQuery>,
    body: Json<ExecuteWebhook>,
) -> ApiResult<HttpResponse> {
    let (webhook_id, token) = path.into_inner();
    let message = by_token(
        &state,
        &req,
        webhook_id,
        requests::ExecuteWebhook {
            webhook_id,
            token,
            thread_id: q.thread_id,
            body: Box::new(body.0),
        },
    )
    .await?;
    Ok(if q.wait == Some(true) {
        HttpResponse::Ok().json(message)
    } else {
        HttpResponse::NoContent().finish()
    })
}

#[utoipa::path(tag = "webhooks", responses((status = 200, body = Message), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[get("/webhooks/{webhook_id}/{token}/messages/{message_id}")]
pub async fn get_message(
    state: State,
    req: HttpRequest,
    path: web::Path<(Snowflake, String, Snowflake)>,
) -> ApiResult<HttpResponse> {
    let (webhook_id, token, message_id) = path.into_inner();
    let message = by_token(
        &state,
        &req,
        webhook_id,
        requests::GetWebhookMessage {
            webhook_id,
            token,
            message_id,
        },
    )
    .await?;
    Ok(HttpResponse::Ok().json(message))
}

/// Edits one of the webhook's own messages.
#[utoipa::path(tag = "webhooks", request_body = EditMessage,
    responses((status = 200, body = Message), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[patch("/webhooks/{webhook_id}/{token}/messages/{message_id}")]
pub async fn edit_message(
    state: State,
    req: HttpRequest,
    path: web::Path<(Snowflake, String, Snowflake)>,
    body: Json<EditMessage>,
) -> ApiResult<HttpResponse> {
    let (webhook_id, token, message_id) = path.into_inner();
    let message = by_token(
        &state,
        &req,
        webhook_id,
        requests::EditWebhookMessage {
            webhook_id,
            token,
            message_id,
            body: body.0,
        },
    )
    .await?;
    Ok(HttpResponse::Ok().json(message))
}

#[utoipa::path(tag = "webhooks", responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[delete("/webhooks/{webhook_id}/{token}/messages/{message_id}")]
pub async fn delete_message(
    state: State,
    req: HttpRequest,
    path: web::Path<(Snowflake, String, Snowflake)>,
) -> ApiResult<HttpResponse> {
    let (webhook_id, token, message_id) = path.into_inner();
    by_token(
        &state,
        &req,
        webhook_id,
        requests::DeleteWebhookMessage {
            webhook_id,
            token,
            message_id,
        },
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
