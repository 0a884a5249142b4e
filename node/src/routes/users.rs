//! Users, applications, OAuth2 bot authorization and gateway discovery.

use actix_web::{HttpResponse, delete, get, patch, post, web};
use enrichment_actors::guild::requests;
use enrichment_protocol::models::{Application, Member, PartialGuild, User};
use enrichment_protocol::rest::{
    AuthorizeBot, BotTokenResponse, CreateApplication, GatewayBotResponse, GatewayResponse,
    GuildsQuery, ModifiedCurrentUser, ModifyApplication, ModifyCurrentUser, SessionStartLimit,
};
use enrichment_protocol::{ApiError, ErrorBody, ErrorCode, FormErrors, Permissions, Snowflake};
use serde::Deserialize;

use crate::error::{ApiResult, Json};
use crate::state::{Authed, State};

pub fn configure(cfg: &mut web::ServiceConfig) {
    // `@me` routes come before `{user_id}` so they match first.
    cfg.service(get_me)
        .service(modify_me)
        .service(my_guilds)
        .service(my_member)
        .service(leave_guild)
        .service(get_user)
        .service(create_application)
        .service(current_application)
        .service(current_application_alias)
        .service(modify_current_application)
        .service(get_application)
        .service(modify_application)
        .service(reset_bot_token)
        .service(authorize)
        .service(gateway)
        .service(gateway_bot);
}

/// The caller, with email and MFA state.
#[utoipa::path(tag = "users", responses((status = 200, body = User), (status = 401, body = ErrorBody)), security(("token" = [])))]
#[get("/users/@me")]
pub async fn get_me(state: State, who: Authed) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.accounts.me(who.0).await?))
}

/// Edits the caller. With `password` and `new_password` it also changes the password: every
/// session of the user ends (on every node) and the answer carries the new session's `token`.
#[utoipa::path(tag = "users", request_body = ModifyCurrentUser,
    responses((status = 200, body = ModifiedCurrentUser), (status = 400, body = ErrorBody)), security(("token" = [])))]
#[patch("/users/@me")]
pub async fn modify_me(
    state: State,
    who: Authed,
    body: Json<ModifyCurrentUser>,
) -> ApiResult<HttpResponse> {
    let modified = state.accounts.modify_me(who.0, body.0).await?;
    state.user_updated(&modified.user);
    Ok(HttpResponse::Ok().json(modified))
}

/// Guilds the caller is in (`limit` 1–200, default 200; `before`/`after` cursors).
#[utoipa::path(tag = "users", params(GuildsQuery), responses((status = 200, body = Vec<PartialGuild>)), security(("token" = [])))]
#[get("/users/@me/guilds")]
pub async fn my_guilds(
    state: State,
    who: Authed,
    q: web::Query<GuildsQuery>,
) -> ApiResult<HttpResponse> {
    let mut e = FormErrors::default();
    let limit = q.limit.unwrap_or(200);
    e.check_range(&["limit"], limit, 1, 200);
    e.finish()?;
    let ids = state
        .guilds
        .stores
        .guilds
        .user_guilds(who.0.user_id)
        .await
        .map_err(enrichment_actors::guild::GuildContext::store_error)?;
    let ids: Vec<Snowflake> = ids
        .into_iter()
        .filter(|id| q.after.is_none_or(|a| *id > a) && q.before.is_none_or(|b| *id < b))
        .take(limit as usize)
        .collect();
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        out.push(state.guild(id, &who, requests::GetPartialGuild {}).await?);
    }
    Ok(HttpResponse::Ok().json(out))
}

/// The caller's member object in a guild.
#[utoipa::path(tag = "users", responses((status = 200, body = Member), (status = 403, body = ErrorBody)), security(("token" = [])))]
#[get("/users/@me/guilds/{guild_id}/member")]
pub async fn my_member(
    state: State,
    who: Authed,
    path: web::Path<Snowflake>,
) -> ApiResult<HttpResponse> {
    let m = state
        .guild(
            *path,
            &who,
            requests::GetMember {
                user_id: who.0.user_id,
            },
        )
        .await?;
    Ok(HttpResponse::Ok().json(m))
}

/// Leaves a guild.
#[utoipa::path(tag = "users", responses((status = 204), (status = 404, body = ErrorBody)), security(("token" = [])))]
#[delete("/users/@me/guilds/{guild_id}")]
pub async fn leave_guild(
    state: State,
    who: Authed,
    path: web::Path<Snowflake>,
) -> ApiResult<HttpResponse> {
    state.guild(*path, &who, requests::LeaveGuild {}).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Any user's public profile.
#[utoipa::path(tag = "users", responses((status = 200, body = User), (status = 404, body = ErrorBody)), security(("token" = [])))]
#[get("/users/{user_id}")]
pub async fn get_user(
    state: State,
    _who: Authed,
    path: web::Path<Snowflake>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.accounts.user(*path).await?))
}

/// Creates an application with its bot user.
#[utoipa::path(tag = "applications", request_body = CreateApplication,
    responses((status = 201, body = Application), (status = 400, body = ErrorBody)), security(("token" = [])))]
#[post("/applications")]
pub async fn create_application(
    state: State,
    who: Authed,
    body: Json<CreateApplication>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Created().json(state.accounts.create_application(who.0, body.0).await?))
}

/// The calling bot's application (bot libraries call this at login).
#[utoipa::path(tag = "applications", responses((status = 200, body = Application), (status = 404, body = ErrorBody)), security(("token" = [])))]
#[get("/oauth2/applications/@me")]
pub async fn current_application(state: State, who: Authed) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.accounts.current_application(who.0).await?))
}

/// Same as `/oauth2/applications/@me`.
#[utoipa::path(tag = "applications", responses((status = 200, body = Application)), security(("token" = [])))]
#[get("/applications/@me")]
pub async fn current_application_alias(state: State, who: Authed) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.accounts.current_application(who.0).await?))
}

/// Edits the calling bot's application: description and the limited gateway-intent flags
/// (`GATEWAY_PRESENCE_LIMITED`, `GATEWAY_GUILD_MEMBERS_LIMITED`, `GATEWAY_MESSAGE_CONTENT_LIMITED`).
#[utoipa::path(tag = "applications", request_body = ModifyApplication,
    responses((status = 200, body = Application), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)), security(("token" = [])))]
#[patch("/applications/@me")]
pub async fn modify_current_application(
    state: State,
    who: Authed,
    body: Json<ModifyApplication>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(
        state
            .accounts
            .modify_application(who.0, None, body.0)
            .await?,
    ))
}

/// Edits an application the caller owns (same fields as `PATCH /applications/@me`).
#[utoipa::path(tag = "applications", request_body = ModifyApplication,
    responses((status = 200, body = Application), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)), security(("token" = [])))]
#[patch("/applications/{application_id}")]
pub async fn modify_application(
    state: State,
    who: Authed,
    path: web::Path<Snowflake>,
    body: Json<ModifyApplication>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(
        state
            .accounts
            .modify_application(who.0, Some(*path), body.0)
            .await?,
    ))
}

/// An application owned by the caller.
#[utoipa::path(tag = "applications", responses((status = 200, body = Application), (status = 404, body = ErrorBody)), security(("token" = [])))]
#[get("/applications/{application_id}")]
pub async fn get_application(
    state: State,
    who: Authed,
    path: web::Path<Snowflake>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.accounts.get_application(who.0, *path).await?))
}

/// Issues a new bot token; the old one stops working.
#[utoipa::path(tag = "applications", responses((status = 200, body = BotTokenResponse), (status = 404, body = ErrorBody)), security(("token" = [])))]
#[post("/applications/{application_id}/bot/reset")]
pub async fn reset_bot_token(
    state: State,
    who: Authed,
    path: web::Path<Snowflake>,
) -> ApiResult<HttpResponse> {
    let token = state.accounts.reset_bot_token(who.0, *path).await?;
    Ok(HttpResponse::Ok().json(BotTokenResponse { token }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuthorizeQuery {
    #[param(value_type = String)]
    pub client_id: Snowflake,
    pub scope: String,
    #[param(value_type = Option<String>)]
    pub permissions: Option<Permissions>,
}

/// Adds an application's bot to a guild where the caller has MANAGE_GUILD (`scope=bot`).
#[utoipa::path(tag = "applications", params(AuthorizeQuery), request_body = AuthorizeBot,
    responses((status = 200, description = "`{location}`"), (status = 403, body = ErrorBody)), security(("token" = [])))]
#[post("/oauth2/authorize")]
pub async fn authorize(
    state: State,
    who: Authed,
    q: web::Query<AuthorizeQuery>,
    body: Json<AuthorizeBot>,
) -> ApiResult<HttpResponse> {
    if who.0.bot {
        return Err(ApiError::new(
            403,
            ErrorCode::BotsCannotUse,
            "Bots cannot use this endpoint",
        )
        .into());
    }
    if !q.scope.split([' ', '+']).any(|s| s == "bot") {
        return Err(ApiError::form(
            &["scope"],
            "OAUTH2_SCOPE_INVALID",
            "Only the bot scope is supported.",
        )
        .into());
    }
    if !body.0.authorize {
        return Ok(HttpResponse::Ok()
            .json(serde_json::json!({ "location": "about:blank#error=access_denied" })));
    }
    let app = state.accounts.application(q.client_id).await?;
    let permissions = body.0.permissions.or(q.permissions).unwrap_or_default();
    state
        .guild(
            body.0.guild_id,
            &who,
            requests::AddBot {
                bot_user_id: app.bot_user_id,
                application_name: app.name.clone(),
                permissions,
            },
        )
        .await?;
    // The bot's gateway sessions get GUILD_CREATE before this answer leaves.
    state.joined_guild(app.bot_user_id, body.0.guild_id).await;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "location": "about:blank#authorized" })))
}

/// Where the WebSocket gateway is (no authentication).
#[utoipa::path(tag = "gateway", responses((status = 200, body = GatewayResponse)))]
#[get("/gateway")]
pub async fn gateway(state: State) -> HttpResponse {
    HttpResponse::Ok().json(GatewayResponse {
        url: state.gateway_url.clone(),
    })
}

/// The gateway URL with sharding advice and the identify budget, for bots.
#[utoipa::path(tag = "gateway", responses((status = 200, body = GatewayBotResponse), (status = 401, body = ErrorBody)), security(("token" = [])))]
#[get("/gateway/bot")]
pub async fn gateway_bot(state: State, who: Authed) -> HttpResponse {
    let gw = &state.gateway;
    let limit = gw.start_limit(who.0.user_id).await;
    HttpResponse::Ok().json(GatewayBotResponse {
        url: state.gateway_url.clone(),
        shards: 1,
        session_start_limit: SessionStartLimit {
            total: limit.total,
            remaining: limit.remaining,
            reset_after: limit.reset_after.as_millis() as u64,
            max_concurrency: limit.max_concurrency,
        },
    })
}
