//! DMs, group DMs and blocking: opening and listing private channels, a group's recipients,
//! and the caller's relationships.
//!
//! Messages, reactions, pins, typing and files in a private channel take the same channel
//! routes as in a guild's; the private channel's own actor answers them
//! (`enrichment_actors::guild::private`).

use actix_web::{HttpResponse, delete, get, post, put, web};
use enrichment_actors::guild::{GuildContext, open_private_channel, requests};
use enrichment_protocol::models::{Channel, Relationship};
use enrichment_protocol::rest::{CreateDm, DmTarget, PutRelationship};
use enrichment_protocol::{ApiError, ErrorBody, ErrorCode, FormErrors, Snowflake, Timestamp};
use enrichment_storage::RelationshipRecord;
use futures::{StreamExt, TryStreamExt};

use crate::error::{ApiResult, Json};
use crate::state::{Authed, State};

/// `/users/@me/...` routes; registered before `/users/{user_id}`.
pub fn configure_users(cfg: &mut web::ServiceConfig) {
    cfg.service(create_dm)
        .service(list_dms)
        .service(list_relationships)
        .service(put_relationship)
        .service(delete_relationship);
}

pub fn configure_channels(cfg: &mut web::ServiceConfig) {
    cfg.service(add_recipient).service(remove_recipient);
}

/// How many private channels a listing asks their actors about at once.
const LIST_CONCURRENCY: usize = 16;

/// Opens a DM with `recipient_id` (the same DM again if one exists), or a group DM with the
/// caller and `recipients`. Everyone in it must share a guild with the caller (else 50007).
/// A new channel reaches its recipients as CHANNEL_CREATE.
#[utoipa::path(tag = "users", request_body = CreateDm,
    responses((status = 200, body = Channel), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("token" = [])))]
#[post("/users/@me/channels")]
pub async fn create_dm(state: State, who: Authed, body: Json<CreateDm>) -> ApiResult<HttpResponse> {
    let me = who.0.user_id;
    let target = body.0.target(me)?;
    let mut recipients = vec![me];
    match &target {
        DmTarget::User(u) => recipients.push(*u),
        DmTarget::Group(us) => recipients.extend(us),
    }
    let (id, created) = open_private_channel(&state.guilds, me, target).await?;
    if created {
        for u in &recipients {
            state.joined_private(*u, id).await;
        }
    }
    let channel = state
        .guild(id, &who, requests::GetChannel { channel_id: id })
        .await?;
    Ok(HttpResponse::Ok().json(channel))
}

/// The caller's DMs and group DMs.
#[utoipa::path(tag = "users", responses((status = 200, body = Vec<Channel>)), security(("token" = [])))]
#[get("/users/@me/channels")]
pub async fn list_dms(state: State, who: Authed) -> ApiResult<HttpResponse> {
    let ids = state
        .guilds
        .stores
        .guilds
        .user_private_channels(who.0.user_id)
        .await
        .map_err(GuildContext::store_error)?;
    let channels: Vec<Channel> = futures::stream::iter(ids)
        .map(|id| {
            let (state, who) = (&state, &who);
            async move {
                state
                    .guild(id, who, requests::GetChannel { channel_id: id })
                    .await
            }
        })
        .buffered(LIST_CONCURRENCY)
        .try_collect()
        .await?;
    Ok(HttpResponse::Ok().json(channels))
}

/// Adds a user to a group DM; they hear CHANNEL_CREATE, the others CHANNEL_RECIPIENT_ADD.
#[utoipa::path(tag = "channels", params(("channel_id" = String, Path), ("user_id" = String, Path)),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("token" = [])))]
#[put("/channels/{channel_id}/recipients/{user_id}")]
pub async fn add_recipient(
    state: State,
    who: Authed,
    path: web::Path<(Snowflake, Snowflake)>,
) -> ApiResult<HttpResponse> {
    let (channel_id, user_id) = path.into_inner();
    state
        .channel(channel_id, &who, requests::AddRecipient { user_id })
        .await?;
    state.joined_private(user_id, channel_id).await;
    Ok(HttpResponse::NoContent().finish())
}

/// Removes a user from a group DM: the owner removes anyone, anyone removes themselves.
#[utoipa::path(tag = "channels", params(("channel_id" = String, Path), ("user_id" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("token" = [])))]
#[delete("/channels/{channel_id}/recipients/{user_id}")]
pub async fn remove_recipient(
    state: State,
    who: Authed,
    path: web::Path<(Snowflake, Snowflake)>,
) -> ApiResult<HttpResponse> {
    let (channel_id, user_id) = path.into_inner();
    state
        .channel(channel_id, &who, requests::RemoveRecipient { user_id })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The users the caller has blocked.
#[utoipa::path(tag = "users", responses((status = 200, body = Vec<Relationship>)), security(("token" = [])))]
#[get("/users/@me/relationships")]
pub async fn list_relationships(state: State, who: Authed) -> ApiResult<HttpResponse> {
    let records = state
        .guilds
        .stores
        .users
        .relationships(who.0.user_id)
        .await
        .map_err(GuildContext::store_error)?;
    let mut out = Vec::with_capacity(records.len());
    for r in records {
        let user = state
            .guilds
            .users
            .get_or_deleted(r.target_id)
            .await
            .map_err(GuildContext::store_error)?;
        out.push(Relationship {
            id: r.target_id,
            kind: r.kind,
            user,
            nickname: None,
            since: r.since,
        });
    }
    Ok(HttpResponse::Ok().json(out))
}

/// Blocks a user (`{"type": 2}`): from then on neither can send the other a DM (50007).
#[utoipa::path(tag = "users", request_body = PutRelationship, params(("user_id" = String, Path)),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("token" = [])))]
#[put("/users/@me/relationships/{user_id}")]
pub async fn put_relationship(
    state: State,
    who: Authed,
    path: web::Path<Snowflake>,
    body: Json<PutRelationship>,
) -> ApiResult<HttpResponse> {
    body.0.validate()?;
    let (me, target) = (who.0.user_id, *path);
    if me == target {
        let mut e = FormErrors::default();
        e.add(
            &["user_id"],
            "BASE_TYPE_INVALID",
            "You cannot block yourself.",
        );
        return Err(e.into_error().into());
    }
    let store = GuildContext::store_error;
    if state
        .guilds
        .users
        .get(target)
        .await
        .map_err(store)?
        .is_none()
    {
        return Err(ApiError::unknown(ErrorCode::UnknownUser).into());
    }
    let record = RelationshipRecord {
        user_id: me,
        target_id: target,
        kind: RelationshipRecord::BLOCKED,
        since: Timestamp::now(),
    };
    state
        .guilds
        .stores
        .users
        .put_relationship(&record)
        .await
        .map_err(store)?;
    refresh_dm(&state, &who, target).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Unblocks a user.
#[utoipa::path(tag = "users", params(("user_id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)), security(("token" = [])))]
#[delete("/users/@me/relationships/{user_id}")]
pub async fn delete_relationship(
    state: State,
    who: Authed,
    path: web::Path<Snowflake>,
) -> ApiResult<HttpResponse> {
    let target = *path;
    let removed = state
        .guilds
        .stores
        .users
        .delete_relationship(who.0.user_id, target)
        .await
        .map_err(GuildContext::store_error)?;
    if !removed {
        return Err(ApiError::unknown(ErrorCode::UnknownUser).into());
    }
    refresh_dm(&state, &who, target).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The DM between the caller and `other`, if there is one, reads their blocks again: the
/// relationship is stored first, so a DM actor started meanwhile reads it anyway.
async fn refresh_dm(state: &State, who: &Authed, other: Snowflake) -> ApiResult<()> {
    let dm = state
        .guilds
        .stores
        .guilds
        .dm_channel(who.0.user_id, other)
        .await
        .map_err(GuildContext::store_error)?;
    if let Some(id) = dm {
        state.guild(id, who, requests::RefreshBlocks {}).await?;
    }
    Ok(())
}
