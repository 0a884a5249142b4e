//! A guild's custom emojis (`/guilds/{id}/emojis`), and their images at `/emojis/{id}.{ext}`
//! (outside `/api`, no token, as Discord's CDN serves them).
//!
//! Creating one takes three steps so that no record names a missing image and nobody without
//! the permission fills the blob store: the guild's actor answers whether the caller may add
//! one of this kind (`CheckEmoji`), the image is stored under the new id, then the actor
//! records it (`CreateEmoji`); if that fails, the image is deleted again.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, delete, get, patch, web};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use enrichment_actors::guild::requests;
use enrichment_protocol::models::Emoji;
use enrichment_protocol::rest::{CreateEmoji, ModifyEmoji};
use enrichment_protocol::{ApiError, ErrorBody, FormErrors, Snowflake};
use enrichment_storage::EmojiRecord;
use enrichment_storage::blobs::BlobKey;

use crate::attachments::sniff::sniff;
use crate::error::{ApiResult, HttpError, Json, json_up_to};
use crate::state::{Authed, State};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(list)
        .route("/guilds/{guild_id}/emojis", web::post().to(create))
        .service(get_emoji)
        .service(modify)
        .service(remove);
}

/// The image types an emoji may be, as the bytes say (never the data URI's claim).
const IMAGE_TYPES: [&str; 4] = ["image/png", "image/jpeg", "image/gif", "image/webp"];

/// Decodes `data:image/...;base64,...` (or bare base64) into the image's bytes and type,
/// checking the size against `max` and the type by sniffing; errors name `image`.
fn decode_image(data: &str, max: usize) -> Result<(Bytes, &'static str), ApiError> {
    let invalid = |message: &str| ApiError::form(&["image"], "IMAGE_INVALID", message);
    let encoded = match data.strip_prefix("data:") {
        Some(rest) => rest
            .split_once(";base64,")
            .map(|(_, b)| b)
            .ok_or_else(|| invalid("Invalid image data"))?,
        None => data,
    };
    // Base64 grows data by 4/3: refuse what cannot fit before decoding it.
    if encoded.len() / 4 * 3 > max + 3 {
        return Err(too_large(max));
    }
    let bytes = STANDARD
        .decode(encoded.trim())
        .map_err(|_| invalid("Invalid image data"))?;
    if bytes.len() > max {
        return Err(too_large(max));
    }
    let sniffed = sniff(&bytes);
    let kind = IMAGE_TYPES
        .into_iter()
        .find(|t| *t == sniffed.content_type)
        .ok_or_else(|| invalid("Invalid image data: PNG, JPEG, GIF or WebP"))?;
    Ok((Bytes::from(bytes), kind))
}

fn too_large(max: usize) -> ApiError {
    let mut e = FormErrors::default();
    e.add(
        &["image"],
        "BINARY_TYPE_MAX_SIZE",
        format!("File cannot be larger than {:.1} kb.", max as f64 / 1024.0),
    );
    e.into_error()
}

/// The guild's custom emojis (members); the uploader is shown to those who may manage them.
#[utoipa::path(tag = "emojis", responses((status = 200, body = Vec<Emoji>), (status = 403, body = ErrorBody)), security(("token" = [])))]
#[get("/guilds/{guild_id}/emojis")]
pub async fn list(
    state: State,
    who: Authed,
    path: web::Path<Snowflake>,
) -> ApiResult<HttpResponse> {
    let emojis = state.guild(*path, &who, requests::ListEmojis {}).await?;
    Ok(HttpResponse::Ok().json(emojis))
}

/// Adds a custom emoji (CREATE_GUILD_EXPRESSIONS): `name` (2–32 letters, digits, `_`),
/// `image` as image data (PNG, JPEG, GIF or WebP, at most `guilds.max_emoji_bytes`; a GIF
/// is animated), `roles` it is limited to. 30008 past `guilds.max_emojis` of its kind.
#[utoipa::path(post, path = "/guilds/{guild_id}/emojis", tag = "emojis", request_body = CreateEmoji,
    params(("guild_id" = String, Path)),
    responses((status = 201, body = Emoji), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 413, body = ErrorBody)),
    security(("token" = [])))]
pub async fn create(
    state: State,
    who: Authed,
    path: web::Path<Snowflake>,
    req: HttpRequest,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    let guild_id = *path;
    let max = state.guilds.limits.max_emoji_bytes;
    // The image travels as base64 inside JSON: room for it, and for the rest of the body.
    let limit = (max / 3 + 1) * 4 + 4096;
    let body: CreateEmoji = json_up_to(&req, payload, limit).await?;
    body.validate()?;
    let (image, kind) = decode_image(&body.image, max)?;
    let animated = kind == "image/gif";
    state
        .guild(guild_id, &who, requests::CheckEmoji { animated })
        .await?;
    let id = state.guilds.ids.next_id();
    let key = BlobKey::new(EmojiRecord::blob_key(id)).map_err(|e| {
        HttpError(ApiError::new(
            500,
            enrichment_protocol::ErrorCode::General,
            e.to_string(),
        ))
    })?;
    let stream = futures::stream::iter([Ok::<_, std::io::Error>(image)]);
    state
        .blobs
        .put(&key, kind, Box::pin(stream))
        .await
        .map_err(|e| {
            tracing::error!(%key, error = %e, "storing an emoji image failed");
            HttpError(ApiError::new(
                503,
                enrichment_protocol::ErrorCode::General,
                "The image could not be stored; try again",
            ))
        })?;
    let created = state
        .guild(
            guild_id,
            &who,
            requests::CreateEmoji {
                emoji_id: id,
                name: body.name,
                roles: body.roles,
                animated,
            },
        )
        .await;
    match created {
        Ok(emoji) => Ok(HttpResponse::Created().json(emoji)),
        Err(e) => {
            if let Err(err) = state.blobs.delete(&key).await {
                tracing::warn!(%key, error = %err, "an unused emoji image could not be deleted");
            }
            Err(e)
        }
    }
}

#[utoipa::path(tag = "emojis", responses((status = 200, body = Emoji), (status = 404, body = ErrorBody)), security(("token" = [])))]
#[get("/guilds/{guild_id}/emojis/{emoji_id}")]
pub async fn get_emoji(
    state: State,
    who: Authed,
    path: web::Path<(Snowflake, Snowflake)>,
) -> ApiResult<HttpResponse> {
    let (guild_id, emoji_id) = path.into_inner();
    let emoji = state
        .guild(guild_id, &who, requests::GetEmoji { emoji_id })
        .await?;
    Ok(HttpResponse::Ok().json(emoji))
}

/// Renames an emoji or changes its roles (MANAGE_GUILD_EXPRESSIONS, or
/// CREATE_GUILD_EXPRESSIONS for one's own).
#[utoipa::path(tag = "emojis", request_body = ModifyEmoji,
    responses((status = 200, body = Emoji), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("token" = [])))]
#[patch("/guilds/{guild_id}/emojis/{emoji_id}")]
pub async fn modify(
    state: State,
    who: Authed,
    path: web::Path<(Snowflake, Snowflake)>,
    body: Json<ModifyEmoji>,
) -> ApiResult<HttpResponse> {
    let (guild_id, emoji_id) = path.into_inner();
    body.0.validate()?;
    let emoji = state
        .guild(
            guild_id,
            &who,
            requests::ModifyEmoji {
                emoji_id,
                body: body.0,
            },
        )
        .await?;
    Ok(HttpResponse::Ok().json(emoji))
}

/// Deletes an emoji and, once its record is gone, its image.
#[utoipa::path(tag = "emojis", responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("token" = [])))]
#[delete("/guilds/{guild_id}/emojis/{emoji_id}")]
pub async fn remove(
    state: State,
    who: Authed,
    path: web::Path<(Snowflake, Snowflake)>,
) -> ApiResult<HttpResponse> {
    let (guild_id, emoji_id) = path.into_inner();
    state
        .guild(guild_id, &who, requests::DeleteEmoji { emoji_id })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /emojis/{id}.{ext}`: the image, whatever extension is asked for, typed by its bytes.
pub async fn image(state: State, path: web::Path<String>) -> HttpResponse {
    let not_found = || {
        HttpResponse::NotFound().json(serde_json::json!({ "message": "404: Not Found", "code": 0 }))
    };
    let file = path.into_inner();
    let id = file.split_once('.').map_or(file.as_str(), |(id, _)| id);
    let Ok(id) = id.parse::<Snowflake>() else {
        return not_found();
    };
    let Ok(key) = BlobKey::new(EmojiRecord::blob_key(id)) else {
        return not_found();
    };
    let bytes = match state.blobs.get(&key).await {
        Ok(Some(blob)) => match blob.bytes().await {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(%key, error = %e, "reading an emoji image failed");
                return HttpResponse::ServiceUnavailable().finish();
            }
        },
        Ok(None) => return not_found(),
        Err(e) => {
            tracing::error!(%key, error = %e, "reading an emoji image failed");
            return HttpResponse::ServiceUnavailable().finish();
        }
    };
    let kind = sniff(&bytes).content_type;
    if !IMAGE_TYPES.contains(&kind.as_str()) {
        return not_found();
    }
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, kind))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        // An emoji's image never changes: a new image is a new emoji.
        .insert_header((header::CACHE_CONTROL, "public, max-age=31536000, immutable"))
        .body(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_decoded_typed_by_their_bytes_and_held_to_the_limit() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\0\0\0\0";
        let uri = format!("data:image/gif;base64,{}", STANDARD.encode(png));
        let (bytes, kind) = decode_image(&uri, 1024).unwrap();
        assert_eq!((bytes.len(), kind), (png.len(), "image/png"));
        assert_eq!(
            decode_image(&STANDARD.encode(png), 1024).unwrap().1,
            "image/png"
        );
        assert_eq!(decode_image(&uri, 8).unwrap_err().code(), 50035);
        let text = format!("data:image/png;base64,{}", STANDARD.encode(b"hello there"));
        assert_eq!(decode_image(&text, 1024).unwrap_err().code(), 50035);
        assert_eq!(
            decode_image("data:image/png,xyz", 1024).unwrap_err().code(),
            50035
        );
        assert_eq!(decode_image("!!!", 1024).unwrap_err().code(), 50035);
    }
}
