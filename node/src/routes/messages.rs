//! `/channels/{id}/messages`, reactions and pins.

use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, HttpResponse, delete, get, patch, post, put, web};
use enrichment_actors::guild::Request;
use enrichment_actors::guild::requests;
use enrichment_protocol::models::{Message, PinList, User};
use enrichment_protocol::rest::{
    BulkDelete, CreateMessage, EditMessage, MessagesQuery, ReactionsQuery,
};
use enrichment_protocol::{ErrorBody, Snowflake};

use crate::error::{ApiResult, Json};
use crate::state::{Authed, State};

pub fn configure(cfg: &mut web::ServiceConfig) {
    // The busiest routes first: each route tried before the one that matches costs a regex.
    // Literal segments (`bulk-delete`, `pins`) before `{message_id}` so they match first.
    cfg.service(create_message)
        .service(list_messages)
        .service(bulk_delete)
        .service(list_pins_new)
        .service(pin_new)
        .service(unpin_new)
        .service(list_pins)
        .service(pin)
        .service(unpin)
        .service(get_message)
        .service(edit_message)
        .service(delete_message)
        .service(add_reaction)
        .service(remove_own_reaction)
        .service(remove_user_reaction)
        .service(list_reactions)
        .service(remove_all_reactions)
        .service(remove_emoji_reactions);
}

fn no_content() -> HttpResponse {
    HttpResponse::NoContent().finish()
}

/// The `multipart/form-data` body of a message with files (for the OpenAPI document).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct MultipartMessage {
    /// The JSON body ([`CreateMessage`]), as a string.
    payload_json: Option<String>,
    /// `files[0]`, `files[1]`, ...: the files, each with a file name.
    #[schema(value_type = Vec<String>, format = Binary)]
    files: Vec<Vec<u8>>,
}

/// Sends a request about one message of a channel to the channel's guild.
async fn on_message<R: Request>(
    state: State,
    who: Authed,
    (channel_id, message_id): (Snowflake, Snowflake),
    request: fn(Snowflake, Snowflake) -> R,
) -> ApiResult<R::Reply> {
    state
        .channel(channel_id, &who, request(channel_id, message_id))
        .await
}

/// History, newest first: `limit` 1–100 (default 50), one of `before`/`after`/`around`.
/// Without READ_MESSAGE_HISTORY the list is empty.
#[utoipa::path(tag = "messages", params(MessagesQuery), responses((status = 200, body = Vec<Message>), (status = 403, body = ErrorBody)),
    security(("token" = [])))]
#[get("/channels/{channel_id}/messages")]
pub async fn list_messages(
    state: State,
    who: Authed,
    path: web::Path<Snowflake>,
    q: web::Query<MessagesQuery>,
) -> ApiResult<HttpResponse> {
    let (anchor, limit) = q.anchor()?;
    let channel_id = *path;
    let list = state
        .channel(
            channel_id,
            &who,
            requests::ListMessages {
                channel_id,
                anchor,
                limit,
            },
        )
        .await?;
    Ok(HttpResponse::Ok().json(list))
}

/// Sends a message (VIEW_CHANNEL + SEND_MESSAGES, not in timeout). The answer means the message
/// is durable. `enforce_nonce` with a repeated `nonce` returns the first message instead.
///
/// With files: `multipart/form-data` with a `payload_json` part (this JSON body) and `files[n]`
/// parts (ATTACH_FILES; at most `attachments.max_files` files of `attachments.max_bytes` each,
/// 413 / 40005 beyond). `attachments` in the JSON names and describes `files[n]` by `id: n`.
#[utoipa::path(tag = "messages",
    request_body(content(
        (CreateMessage = "application/json"),
        (MultipartMessage = "multipart/form-data"),
    )),
    responses((status = 200, body = Message), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 413, body = ErrorBody), (status = 429, description = "rate limited")),
    security(("token" = [])))]
#[post("/channels/{channel_id}/messages")]
pub async fn create_message(
    state: State,
    who: Authed,
    path: web::Path<Snowflake>,
    req: HttpRequest,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    let is_multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/form-data")
        });
    if is_multipart {
        return crate::attachments::upload::create_with_files(state, who, req, *path, payload)
            .await;
    }
    let body = Json::<CreateMessage>::from_request(&req, &mut payload.into_inner()).await?;
    body.0.validate()?;
    let m = state
        .channel(*path, &who, requests::CreateMessage::text(*path, body.0))
        .await?;
    Ok(HttpResponse::Ok().json(m))
}

#[utoipa::path(tag = "messages", responses((status = 200, body = Message), (status = 404, body = ErrorBody)), security(("token" = [])))]
#[get("/channels/{channel_id}/messages/{message_id}")]
pub async fn get_message(
    state: State,
    who: Authed,
    path: web::Path<(Snowflake, Snowflake)>,
) -> ApiResult<HttpResponse> {
    let message = on_message(state, who, *path, |channel_id, message_id| {
        requests::GetMessage {
            channel_id,
            message_id,
        }
    })
    .await?;
    Ok(HttpResponse::Ok().json(message))
}

/// Edits the caller's own message.
#[utoipa::path(tag = "messages", request_body = EditMessage, responses((status = 200, body = Message), (status = 403, body = ErrorBody)),
    security(("token" = [])))]
#[patch("/channels/{channel_id}/messages/{message_id}")]
pub async fn edit_message(
    state: State,
    who: Authed,
    path: web::Path<(Snowflake, Snowflake)>,
    body: Json<EditMessage>,
) -> ApiResult<HttpResponse> {
    let (c, m) = *path;
    Ok(HttpResponse::Ok().json(
        state
            .channel(
                c,
                &who,
                requests::EditMessage {
                    channel_id: c,
                    message_id: m,
                    body: body.0,
                },
            )
            .await?,
    ))
}

/// Deletes a message (its author, or MANAGE_MESSAGES).
#[utoipa::path(tag = "messages", responses((status = 204), (status = 403, body = ErrorBody)), security(("token" = [])))]
#[delete("/channels/{channel_id}/messages/{message_id}")]
pub async fn delete_message(
    state: State,
    who: Authed,
    path: web::Path<(Snowflake, Snowflake)>,
) -> ApiResult<HttpResponse> {
    on_message(state, who, *path, |channel_id, message_id| {
        requests::DeleteMessage {
            channel_id,
            message_id,
        }
    })
    .await?;
    Ok(no_content())
}

/// Deletes 2–100 messages, none older than 14 days (MANAGE_MESSAGES).
#[utoipa::path(tag = "messages", request_body = BulkDelete, responses((status = 204), (status = 400, body = ErrorBody)), security(("token" = [])))]
#[post("/channels/{channel_id}/messages/bulk-delete")]
pub async fn bulk_delete(
    state: State,
    who: Authed,
    path: web::Path<Snowflake>,
    body: Json<BulkDelete>,
) -> ApiResult<HttpResponse> {
    body.0.validate()?;
    state
        .channel(
            *path,
            &who,
            requests::BulkDeleteMessages {
                channel_id: *path,
                message_ids: body.0.messages,
            },
        )
        .await?;
    Ok(no_content())
}

/// Reacts with a Unicode emoji (ADD_REACTIONS for a new emoji on the message).
#[utoipa::path(tag = "reactions", responses((status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("token" = [])))]
#[put("/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me")]
pub async fn add_reaction(
    state: State,
    who: Authed,
    path: web::Path<(Snowflake, Snowflake, String)>,
) -> ApiResult<HttpResponse> {
    let (channel_id, message_id, emoji) = path.into_inner();
    state
        .channel(
            channel_id,
            &who,
            requests::AddReaction {
                channel_id,
                message_id,
                emoji,
            },
        )
        .await?;
    Ok(no_content())
}

#[utoipa::path(tag = "reactions", responses((status = 204)), security(("token" = [])))]
#[delete("/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me")]
pub async fn remove_own_reaction(
    state: State,
    who: Authed,
    path: web::Path<(Snowflake, Snowflake, String)>,
) -> ApiResult<HttpResponse> {
    let (channel_id, message_id, emoji) = path.into_inner();
    let user_id = who.0.user_id;
    state
        .channel(
            channel_id,
            &who,
            requests::RemoveReaction {
                channel_id,
                message_id,
                emoji,
                user_id,
            },
        )
        .await?;
    Ok(no_content())
}

/// Removes another user's reaction (MANAGE_MESSAGES).
#[utoipa::path(tag = "reactions", responses((status = 204), (status = 403, body = ErrorBody)), security(("token" = [])))]
#[delete("/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/{user_id}")]
pub async fn remove_user_reaction(
    state: State,
    who: Authed,
    path: web::Path<(Snowflake, Snowflake, String, Snowflake)>,
) -> ApiResult<HttpResponse> {
    let (channel_id, message_id, emoji, user_id) = path.into_inner();
    state
        .channel(
            channel_id,
            &who,
            requests::RemoveReaction {
                channel_id,
                message_id,
                emoji,
                user_id,
            },
        )
        .await?;
    Ok(no_content())
}

/// Users who reacted with an emoji (`limit` 1–100, default 25; `after`).
#[utoipa::path(tag = "reactions", params(ReactionsQuery), responses((status = 200, body = Vec<User>)), security(("token" = [])))]
#[get("/channels/{channel_id}/messages/{message_id}/reactions/{emoji}")]
pub async fn list_reactions(
    state: State,
    who: Authed,
    path: web::Path<(Snowflake, Snowflake, String)>,
    q: web::Query<ReactionsQuery>,
) -> ApiResult<HttpResponse> {
    let (channel_id, message_id, emoji) = path.into_inner();
    let (limit, after) = q.validated()?;
    let users = state
        .channel(
            channel_id,
            &who,
            requests::ListReactions {
                channel_id,
                message_id,
                emoji,
                after,
                limit,
            },
        )
        .await?;
    Ok(HttpResponse::Ok().json(users))
}

/// Removes every reaction (MANAGE_MESSAGES).
#[utoipa::path(tag = "reactions", responses((status = 204), (status = 403, body = ErrorBody)), security(("token" = [])))]
#[delete("/channels/{channel_id}/messages/{message_id}/reactions")]
pub async fn remove_all_reactions(
    state: State,
    who: Authed,
    path: web::Path<(Snowflake, Snowflake)>,
) -> ApiResult<HttpResponse> {
    let (channel_id, message_id) = *path;
    state
        .channel(
            channel_id,
            &who,
            requests::RemoveAllReactions {
                channel_id,
                message_id,
                emoji: None,
            },
        )
        .await?;
    Ok(no_content())
}

/// Removes every reaction of one emoji (MANAGE_MESSAGES).
#[utoipa::path(tag = "reactions", responses((status = 204), (status = 403, body = ErrorBody)), security(("token" = [])))]
#[delete("/channels/{channel_id}/messages/{message_id}/reactions/{emoji}")]
pub async fn remove_emoji_reactions(
    state: State,
    who: Authed,
    path: web::Path<(Snowflake, Snowflake, String)>,
) -> ApiResult<HttpResponse> {
    let (channel_id, message_id, emoji) = path.into_inner();
    state
        .channel(
            channel_id,
            &who,
            requests::RemoveAllReactions {
                channel_id,
                message_id,
                emoji: Some(emoji),
            },
        )
        .await?;
    Ok(no_content())
}

/// Pinned messages, most recently pinned first (legacy route).
#[utoipa::path(tag = "pins", responses((status = 200, body = Vec<Message>)), security(("token" = [])))]
#[get("/channels/{channel_id}/pins")]
pub async fn list_pins(
    state: State,
    who: Authed,
    path: web::Path<Snowflake>,
) -> ApiResult<HttpResponse> {
    let pins = state
        .channel(*path, &who, requests::ListPins { channel_id: *path })
        .await?;
    let messages: Vec<Message> = pins.into_iter().map(|p| p.message).collect();
    Ok(HttpResponse::Ok().json(messages))
}

/// Pins a message (MANAGE_MESSAGES or PIN_MESSAGES; at most 50 per channel).
#[utoipa::path(tag = "pins", responses((status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)), security(("token" = [])))]
#[put("/channels/{channel_id}/pins/{message_id}")]
pub async fn pin(
    state: State,
    who: Authed,
    path: web::Path<(Snowflake, Snowflake)>,
) -> ApiResult<HttpResponse> {
    on_message(state, who, *path, |channel_id, message_id| {
        requests::PinMessage {
            channel_id,
            message_id,
        }
    })
    .await?;
    Ok(no_content())
}

#[utoipa::path(tag = "pins", responses((status = 204), (status = 403, body = ErrorBody)), security(("token" = [])))]
#[delete("/channels/{channel_id}/pins/{message_id}")]
pub async fn unpin(
    state: State,
    who: Authed,
    path: web::Path<(Snowflake, Snowflake)>,
) -> ApiResult<HttpResponse> {
    on_message(state, who, *path, |channel_id, message_id| {
        requests::UnpinMessage {
            channel_id,
            message_id,
        }
    })
    .await?;
    Ok(no_content())
}

/// Pinned messages with their pin times, most recently pinned first.
#[utoipa::path(tag = "pins", responses((status = 200, body = PinList)), security(("token" = [])))]
#[get("/channels/{channel_id}/messages/pins")]
pub async fn list_pins_new(
    state: State,
    who: Authed,
    path: web::Path<Snowflake>,
) -> ApiResult<HttpResponse> {
    let items = state
        .channel(*path, &who, requests::ListPins { channel_id: *path })
        .await?;
    Ok(HttpResponse::Ok().json(PinList {
        items,
        has_more: false,
    }))
}

#[utoipa::path(tag = "pins", responses((status = 204), (status = 403, body = ErrorBody)), security(("token" = [])))]
#[put("/channels/{channel_id}/messages/pins/{message_id}")]
pub async fn pin_new(
    state: State,
    who: Authed,
    path: web::Path<(Snowflake, Snowflake)>,
) -> ApiResult<HttpResponse> {
    on_message(state, who, *path, |channel_id, message_id| {
        requests::PinMessage {
            channel_id,
            message_id,
        }
    })
    .await?;
    Ok(no_content())
}

#[utoipa::path(tag = "pins", responses((status = 204), (status = 403, body = ErrorBody)), security(("token" = [])))]
#[delete("/channels/{channel_id}/messages/pins/{message_id}")]
pub async fn unpin_new(
    state: State,
    who: Authed,
    path: web::Path<(Snowflake, Snowflake)>,
) -> ApiResult<HttpResponse> {
    on_message(state, who, *path, |channel_id, message_id| {
        requests::UnpinMessage {
            channel_id,
            message_id,
        }
    })
    .await?;
    Ok(no_content())
}
