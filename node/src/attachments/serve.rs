//! `GET /attachments/{channel_id}/{attachment_id}/{filename}`: the files themselves, outside
//! `/api` as Discord's CDN is.
//!
//! Like Discord's CDN, this needs no token: whoever has the URL has the file (Discord signs its
//! URLs with an expiry; these do not expire). The URL holds two snowflakes, which are hard to
//! guess but not secret, so anything posted in a private channel is as private as its links.
//!
//! The body streams from the blob store; the first bytes are read ahead to sniff the type
//! exactly as the upload did (see [`super::sniff`]), which decides `Content-Type` and whether
//! the file may show inline.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use bytes::{Bytes, BytesMut};
use enrichment_protocol::Snowflake;
use enrichment_storage::blobs::BlobKey;
use futures::StreamExt;

use super::sniff::{SNIFF_BYTES, serving, sniff};
use crate::state::State;

/// Stored files never change (a new upload gets a new id), so caches may keep them.
const CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

fn not_found() -> HttpResponse {
    HttpResponse::NotFound().json(serde_json::json!({ "message": "404: Not Found", "code": 0 }))
}

/// `Content-Disposition` with the name quoted, plus its UTF-8 form when it is not ASCII.
fn disposition(inline: bool, filename: &str) -> String {
    let kind = if inline { "inline" } else { "attachment" };
    if filename.is_ascii() {
        return format!("{kind}; filename=\"{filename}\"");
    }
    let ascii: String = filename
        .chars()
        .map(|c| if c.is_ascii() { c } else { '_' })
        .collect();
    let encoded =
        percent_encoding::utf8_percent_encode(filename, percent_encoding::NON_ALPHANUMERIC);
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

pub async fn serve(state: State, path: web::Path<(String, String, String)>) -> HttpResponse {
    let (channel, attachment, filename) = path.into_inner();
    let (Ok(channel_id), Ok(attachment_id)) = (
        channel.parse::<Snowflake>(),
        attachment.parse::<Snowflake>(),
    ) else {
        return not_found();
    };
    let Ok(key) = BlobKey::attachment(channel_id, attachment_id, &filename) else {
        return not_found();
    };
    let blob = match state.blobs.get(&key).await {
        Ok(Some(b)) => b,
        Ok(None) => return not_found(),
        Err(e) => {
            tracing::error!(%key, error = %e, "reading an attachment failed");
            return HttpResponse::ServiceUnavailable()
                .json(serde_json::json!({ "message": "503: Service Unavailable", "code": 0 }));
        }
    };
    let size = blob.size;
    let mut body = blob.body;
    // Read ahead just enough to sniff; what was read goes out first.
    let mut head = BytesMut::new();
    while (head.len() as u64) < size.min(SNIFF_BYTES as u64) {
        match body.next().await {
            Some(Ok(chunk)) => head.extend_from_slice(&chunk),
            Some(Err(e)) => {
                tracing::error!(%key, error = %e, "reading an attachment failed");
                return HttpResponse::ServiceUnavailable()
                    .json(serde_json::json!({ "message": "503: Service Unavailable", "code": 0 }));
            }
            None => break,
        }
    }
    let head: Bytes = head.freeze();
    let sniffed = sniff(&head[..head.len().min(SNIFF_BYTES)]);
    let how = serving(&sniffed.content_type, &filename);
    let stream = futures::stream::iter([Ok::<_, std::io::Error>(head)]).chain(body);
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, how.content_type))
        .insert_header((header::CONTENT_DISPOSITION, disposition(how.inline, &filename)))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CACHE_CONTROL, CACHE_CONTROL))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'; sandbox",
        ))
        .no_chunking(size)
        .streaming(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispositions() {
        assert_eq!(disposition(true, "cat.png"), "inline; filename=\"cat.png\"");
        assert_eq!(
            disposition(false, "é.txt"),
            "attachment; filename=\"_.txt\"; filename*=UTF-8''%C3%A9%2Etxt"
        );
    }
}
