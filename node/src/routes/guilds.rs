//! `/guilds/*`: guilds, their channels, roles, members, bans and invites.

use actix_web::{HttpResponse, delete, get, patch, post, put, web};
use enrichment_actors::guild::create_guild;
use enrichment_actors::guild::requests;
use enrichment_protocol::models::{AuditLog, Ban, Channel, Guild, Invite, Member, Role};
use enrichment_protocol::rest::{
    AuditLogQuery, ChannelPosition, CreateBan, CreateChannel, CreateGuild, MembersQuery,
    ModifyCurrentMember, ModifyGuild, ModifyMember, RoleBody, RolePosition,
};
use enrichment_protocol::{ErrorBody, Snowflake};

use crate::error::{ApiResult, Json};
use crate::state::{Authed, State};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(create)
        .service(get_guild)
        .service(modify_guild)
        .service(delete_guild)
        .service(list_channels)
        .service(create_channel)
        .service(channel_positions)
        .service(list_roles)
        .service(create_role)
        .service(role_positions)
        .service(get_role)
        .service(modify_role)
        .service(delete_role)
        .service(list_members)
        .service(modify_current_member)
        .service(get_member)
        .service(modify_member)
        .service(kick)
        .service(add_member_role)
        .service(remove_member_role)
        .service(list_bans)
        .service(get_ban)
        .service(ban)
        .service(unban)
        .service(list_invites)
        .service(audit_log)
        .service(super::webhooks::list_guild);
}

fn no_content() -> HttpResponse {
    HttpResponse::NoContent().finish()
}

/// Creates a guild with an @everyone role and a `general` channel; the caller owns it.
#[utoipa::path(tag = "guilds", request_body = CreateGuild,
    responses((status = 201, body = Guild), (status = 400, body = ErrorBody)), security(("token" = [])))]
#[post("/guilds")]
pub async fn create(state: State, who: Authed, body: Json<CreateGuild>) -> ApiResult<HttpResponse> {
    let g = create_guild(&state.guilds, who.0.user_id, body.0).await?;
    // The owner's gateway sessions get GUILD_CREATE before this answer leaves.
    state.joined_guild(who.0.user_id, g.id).await;
    Ok(HttpResponse::Created().json(g))
}

#[utoipa::path(tag = "guilds", responses((status = 200, body = Guild), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("token" = [])))]
#[get("/guilds/{guild_id}")]
pub async fn get_guild(
    state: State,
    who: Authed,
    path: web::Path<Snowflake>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.guild(*path, &who, requests::GetGuild {}).await?))
}

/// Needs MANAGE_GUILD; transferring ownership needs to be the owner.
#[utoipa::path(tag = "guilds", request_body = ModifyGuild, responses((status = 200, body = Guild), (status = 403, body = ErrorBody)),
    security(("token" = [])))]
#[patch("/guilds/{guild_id}")]
pub async fn modify_guild(
    state: State,
    who: Authed,
    path: web::Path<Snowflake>,
    body: Json<ModifyGuild>,
) -> ApiResult<HttpResponse> {
    body.0.validate()?;
    Ok(HttpResponse::Ok().json(
        state
            .guild(*path, &who, requests::ModifyGuild { body: body.0 })
            .await?,
    ))
}

/// Owner only.
#[utoipa::path(tag = "guilds", responses((status = 204), (status = 403, body = ErrorBody)), security(("token" = [])))]
#[delete("/guilds/{guild_id}")]
pub async fn delete_guild(
    state: State,
    who: Authed,
    path: web::Path<Snowflake>,
) -> ApiResult<HttpResponse> {
    state.guild(*path, &who, requests::DeleteGuild {}).await?;
    Ok(no_content())
}

/// Channels the caller can view, by position.
#[utoipa::path(tag = "channels", responses((status = 200, body = Vec<Channel>), (status = 403, body = ErrorBody)), security(("token" = [])))]
#[get("/guilds/{guild_id}/channels")]
pub async fn list_channels(
    state: State,
    who: Authed,
    path: web::Path<Snowflake>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.guild(*path, &who, requests::ListChannels {}).await?))
}

/// Needs MANAGE_CHANNELS (and MANAGE_ROLES to set overwrites).
#[utoipa::path(tag = "channels", request_body = CreateChannel, responses((status = 201, body = Channel), (status = 400, body = ErrorBody)),
    security(("token" = [])))]
#[post("/guilds/{guild_id}/channels")]
pub async fn create_channel(
    state: State,
    who: Authed,
    path: web::Path<Snowflake>,
    body: Json<CreateChannel>,
) -> ApiResult<HttpResponse> {
    body.0.validate()?;
    let c = state
        .guild(*path, &who, requests::CreateChannel { body: body.0 })
        .await?;
    Ok(HttpResponse::Created().json(c))
}

/// Reorders channels (MANAGE_CHANNELS).
#[utoipa::path(tag = "channels", request_body = Vec<ChannelPosition>, responses((status = 204), (status = 400, body = ErrorBody)),
    security(("token" = [])))]
#[patch("/guilds/{guild_id}/channels")]
pub async fn channel_positions(
    state: State,
    who: Authed,
    path: web::Path<Snowflake>,
    body: Json<Vec<ChannelPosition>>,
) -> ApiResult<HttpResponse> {
    state
        .guild(
            *path,
            &who,
            requests::ModifyChannelPositions { positions: body.0 },
        )
        .await?;
    Ok(no_content())
}

#[utoipa::path(tag = "roles", responses((status = 200, body = Vec<Role>)), security(("token" = [])))]
#[get("/guilds/{guild_id}/roles")]
pub async fn list_roles(
    state: State,
    who: Authed,
    path: web::Path<Snowflake>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.guild(*path, &who, requests::ListRoles {}).await?))
}

/// Needs MANAGE_ROLES; only permissions the caller holds can be granted.
#[utoipa::path(tag = "roles", request_body = RoleBody, responses((status = 200, body = Role), (status = 403, body = ErrorBody)),
    security(("token" = [])))]
#[post("/guilds/{guild_id}/roles")]
pub async fn create_role(
    state: State,
    who: Authed,
    path: web::Path<Snowflake>,
    body: Json<RoleBody>,
) -> ApiResult<HttpResponse> {
    body.0.validate()?;
    Ok(HttpResponse::Ok().json(
        state
            .guild(
                *path,
                &who,
                requests::CreateRole {
                    body: body.0.fold_colors(),
                },
            )
            .await?,
    ))
}

/// Moves roles; only roles below the caller's highest role.
#[utoipa::path(tag = "roles", request_body = Vec<RolePosition>, responses((status = 200, body = Vec<Role>)), security(("token" = [])))]
#[patch("/guilds/{guild_id}/roles")]
pub async fn role_positions(
    state: State,
    who: Authed,
    path: web::Path<Snowflake>,
    body: Json<Vec<RolePosition>>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(
        state
            .guild(
                *path,
                &who,
                requests::ModifyRolePositions { positions: body.0 },
            )
            .await?,
    ))
}

#[utoipa::path(tag = "roles", responses((status = 200, body = Role), (status = 404, body = ErrorBody)), security(("token" = [])))]
#[get("/guilds/{guild_id}/roles/{role_id}")]
pub async fn get_role(
    state: State,
    who: Authed,
    path: web::Path<(Snowflake, Snowflake)>,
) -> ApiResult<HttpResponse> {
    let (g, r) = *path;
    let roles = state.guild(g, &who, requests::ListRoles {}).await?;
    let role = roles.into_iter().find(|x| x.id == r).ok_or_else(|| {
        enrichment_protocol::ApiError::unknown(enrichment_protocol::ErrorCode::UnknownRole)
    })?;
    Ok(HttpResponse::Ok().json(role))
}

#[utoipa::path(tag = "roles", request_body = RoleBody, responses((status = 200, body = Role), (status = 403, body = ErrorBody)),
    security(("token" = [])))]
#[patch("/guilds/{guild_id}/roles/{role_id}")]
pub async fn modify_role(
    state: State,
    who: Authed,
    path: web::Path<(Snowflake, Snowflake)>,
    body: Json<RoleBody>,
) -> ApiResult<HttpResponse> {
    body.0.validate()?;
    let (g, r) = *path;
    Ok(HttpResponse::Ok().json(
        state
            .guild(
                g,
                &who,
                requests::ModifyRole {
                    role_id: r,
                    body: body.0.fold_colors(),
                },
            )
            .await?,
    ))
}

#[utoipa::path(tag = "roles", responses((status = 204), (status = 403, body = ErrorBody)), security(("token" = [])))]
#[delete("/guilds/{guild_id}/roles/{role_id}")]
pub async fn delete_role(
    state: State,
    who: Authed,
    path: web::Path<(Snowflake, Snowflake)>,
) -> ApiResult<HttpResponse> {
    let (g, r) = *path;
    state
        .guild(g, &who, requests::DeleteRole { role_id: r })
        .await?;
    Ok(no_content())
}

/// Members by user id (`limit` 1–1000, default 1; `after`).
#[utoipa::path(tag = "members", params(MembersQuery), responses((status = 200, body = Vec<Member>)), security(("token" = [])))]
#[get("/guilds/{guild_id}/members")]
pub async fn list_members(
    state: State,
    who: Authed,
    path: web::Path<Snowflake>,
    q: web::Query<MembersQuery>,
) -> ApiResult<HttpResponse> {
    let (limit, after) = q.validated()?;
    Ok(HttpResponse::Ok().json(
        state
            .guild(*path, &who, requests::ListMembers { limit, after })
            .await?,
    ))
}

#[utoipa::path(tag = "members", request_body = ModifyCurrentMember, responses((status = 200, body = Member)), security(("token" = [])))]
#[patch("/guilds/{guild_id}/members/@me")]
pub async fn modify_current_member(
    state: State,
    who: Authed,
    path: web::Path<Snowflake>,
    body: Json<ModifyCurrentMember>,
) -> ApiResult<HttpResponse> {
    let m = state
        .guild(
            *path,
            &who,
            requests::ModifyCurrentMember { nick: body.0.nick },
        )
        .await?;
    Ok(HttpResponse::Ok().json(m))
}

#[utoipa::path(tag = "members", responses((status = 200, body = Member), (status = 404, body = ErrorBody)), security(("token" = [])))]
#[get("/guilds/{guild_id}/members/{user_id}")]
pub async fn get_member(
    state: State,
    who: Authed,
    path: web::Path<(Snowflake, Snowflake)>,
) -> ApiResult<HttpResponse> {
    let (g, u) = *path;
    Ok(HttpResponse::Ok().json(
        state
            .guild(g, &who, requests::GetMember { user_id: u })
            .await?,
    ))
}

/// Nick, roles, mute/deaf and timeouts, each under its own permission and the role hierarchy.
#[utoipa::path(tag = "members", request_body = ModifyMember, responses((status = 200, body = Member), (status = 403, body = ErrorBody)),
    security(("token" = [])))]
#[patch("/guilds/{guild_id}/members/{user_id}")]
pub async fn modify_member(
    state: State,
    who: Authed,
    path: web::Path<(Snowflake, Snowflake)>,
    body: Json<ModifyMember>,
) -> ApiResult<HttpResponse> {
    let (g, u) = *path;
    Ok(HttpResponse::Ok().json(
        state
            .guild(
                g,
                &who,
                requests::ModifyMember {
                    user_id: u,
                    body: body.0,
                },
            )
            .await?,
    ))
}

/// Kicks a member (KICK_MEMBERS, below the caller in the hierarchy).
#[utoipa::path(tag = "members", responses((status = 204), (status = 403, body = ErrorBody)), security(("token" = [])))]
#[delete("/guilds/{guild_id}/members/{user_id}")]
pub async fn kick(
    state: State,
    who: Authed,
    path: web::Path<(Snowflake, Snowflake)>,
) -> ApiResult<HttpResponse> {
    let (g, u) = *path;
    state
        .guild(g, &who, requests::RemoveMember { user_id: u })
        .await?;
    Ok(no_content())
}

#[utoipa::path(tag = "members", responses((status = 204), (status = 403, body = ErrorBody)), security(("token" = [])))]
#[put("/guilds/{guild_id}/members/{user_id}/roles/{role_id}")]
pub async fn add_member_role(
    state: State,
    who: Authed,
    path: web::Path<(Snowflake, Snowflake, Snowflake)>,
) -> ApiResult<HttpResponse> {
    let (g, user_id, role_id) = *path;
    state
        .guild(g, &who, requests::AddMemberRole { user_id, role_id })
        .await?;
    Ok(no_content())
}

#[utoipa::path(tag = "members", responses((status = 204), (status = 403, body = ErrorBody)), security(("token" = [])))]
#[delete("/guilds/{guild_id}/members/{user_id}/roles/{role_id}")]
pub async fn remove_member_role(
    state: State,
    who: Authed,
    path: web::Path<(Snowflake, Snowflake, Snowflake)>,
) -> ApiResult<HttpResponse> {
    let (g, user_id, role_id) = *path;
    state
        .guild(g, &who, requests::RemoveMemberRole { user_id, role_id })
        .await?;
    Ok(no_content())
}

#[utoipa::path(tag = "bans", responses((status = 200, body = Vec<Ban>), (status = 403, body = ErrorBody)), security(("token" = [])))]
#[get("/guilds/{guild_id}/bans")]
pub async fn list_bans(
    state: State,
    who: Authed,
    path: web::Path<Snowflake>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.guild(*path, &who, requests::ListBans {}).await?))
}

#[utoipa::path(tag = "bans", responses((status = 200, body = Ban), (status = 404, body = ErrorBody)), security(("token" = [])))]
#[get("/guilds/{guild_id}/bans/{user_id}")]
pub async fn get_ban(
    state: State,
    who: Authed,
    path: web::Path<(Snowflake, Snowflake)>,
) -> ApiResult<HttpResponse> {
    let (g, u) = *path;
    Ok(HttpResponse::Ok().json(
        state
            .guild(g, &who, requests::GetBan { user_id: u })
            .await?,
    ))
}

/// Bans a user, optionally deleting their recent messages; the reason comes from
/// `X-Audit-Log-Reason`.
#[utoipa::path(tag = "bans", request_body = CreateBan, responses((status = 204), (status = 403, body = ErrorBody)), security(("token" = [])))]
#[put("/guilds/{guild_id}/bans/{user_id}")]
pub async fn ban(
    state: State,
    who: Authed,
    path: web::Path<(Snowflake, Snowflake)>,
    body: Json<CreateBan>,
) -> ApiResult<HttpResponse> {
    let (g, user_id) = *path;
    let delete_message_seconds = body.0.delete_seconds()?;
    state
        .guild(
            g,
            &who,
            requests::CreateBan {
                user_id,
                delete_message_seconds,
            },
        )
        .await?;
    Ok(no_content())
}

#[utoipa::path(tag = "bans", responses((status = 204), (status = 404, body = ErrorBody)), security(("token" = [])))]
#[delete("/guilds/{guild_id}/bans/{user_id}")]
pub async fn unban(
    state: State,
    who: Authed,
    path: web::Path<(Snowflake, Snowflake)>,
) -> ApiResult<HttpResponse> {
    let (g, u) = *path;
    state
        .guild(g, &who, requests::RemoveBan { user_id: u })
        .await?;
    Ok(no_content())
}

/// Live invites of the guild (MANAGE_GUILD).
#[utoipa::path(tag = "invites", responses((status = 200, body = Vec<Invite>), (status = 403, body = ErrorBody)), security(("token" = [])))]
#[get("/guilds/{guild_id}/invites")]
pub async fn list_invites(
    state: State,
    who: Authed,
    path: web::Path<Snowflake>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(
        state
            .guild(*path, &who, requests::ListGuildInvites {})
            .await?,
    ))
}

/// The guild's audit log (VIEW_AUDIT_LOG): entries newest first, filtered by `user_id` and
/// `action_type`, paged with `before` / `after`, `limit` 1–100 (default 50), with the users
/// they name.
#[utoipa::path(tag = "audit-log", params(AuditLogQuery),
    responses((status = 200, body = AuditLog), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("token" = [])))]
#[get("/guilds/{guild_id}/audit-logs")]
pub async fn audit_log(
    state: State,
    who: Authed,
    path: web::Path<Snowflake>,
    q: web::Query<AuditLogQuery>,
) -> ApiResult<HttpResponse> {
    let filter = q.filter()?;
    Ok(HttpResponse::Ok().json(
        state
            .guild(*path, &who, requests::GetAuditLog { filter })
            .await?,
    ))
}
