//! `/invites/{code}`: look at, accept and delete invites.

use actix_web::{HttpResponse, delete, get, post, web};
use enrichment_actors::guild::Request;
use enrichment_actors::guild::requests;
use enrichment_protocol::models::Invite;
use enrichment_protocol::{ErrorBody, Snowflake};

use crate::error::ApiResult;
use crate::state::{Authed, State};

/// Sends an invite request to the guild that owns the code.
async fn on_invite<R: Request<Reply = Invite>>(
    state: &State,
    who: &Authed,
    code: String,
    request: fn(String) -> R,
) -> ApiResult<(Snowflake, Invite)> {
    let guild = state.router.guild_of_invite(&code).await?;
    let invite = state.guild(guild, who, request(code)).await?;
    Ok((guild, invite))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(get_invite)
        .service(accept_invite)
        .service(delete_invite);
}

/// Anyone with the code (and a token) may look; expired codes are unknown.
#[utoipa::path(tag = "invites", responses((status = 200, body = Invite), (status = 404, body = ErrorBody)), security(("token" = [])))]
#[get("/invites/{code}")]
pub async fn get_invite(
    state: State,
    who: Authed,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let (_, invite) = on_invite(&state, &who, path.into_inner(), |code| {
        requests::GetInvite { code }
    })
    .await?;
    Ok(HttpResponse::Ok().json(invite))
}

/// Joins the invite's guild (refused when banned).
#[utoipa::path(tag = "invites", responses((status = 200, body = Invite), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("token" = [])))]
#[post("/invites/{code}")]
pub async fn accept_invite(
    state: State,
    who: Authed,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let (guild, invite) = on_invite(&state, &who, path.into_inner(), |code| {
        requests::AcceptInvite { code }
    })
    .await?;
    // The new member's gateway sessions get GUILD_CREATE before this answer leaves.
    state.joined_guild(who.0.user_id, guild).await;
    Ok(HttpResponse::Ok().json(invite))
}

/// Deletes an invite (MANAGE_CHANNELS on its channel, or MANAGE_GUILD).
#[utoipa::path(tag = "invites", responses((status = 200, body = Invite), (status = 403, body = ErrorBody)), security(("token" = [])))]
#[delete("/invites/{code}")]
pub async fn delete_invite(
    state: State,
    who: Authed,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let (_, invite) = on_invite(&state, &who, path.into_inner(), |code| {
        requests::DeleteInvite { code }
    })
    .await?;
    Ok(HttpResponse::Ok().json(invite))
}
