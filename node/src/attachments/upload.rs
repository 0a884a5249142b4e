//! `POST /channels/{id}/messages` with `multipart/form-data`: Discord's upload, a
//! `payload_json` part (the usual JSON body) and `files[n]` parts, in any order.
//!
//! The order of work is what keeps storage clean:
//! 1. Before the first file byte is stored, the guild actor is asked whether the sender may
//!    attach files there (VIEW_CHANNEL, SEND_MESSAGES, ATTACH_FILES), so nobody without the
//!    right can fill the store.
//! 2. Each file streams to the blob store while it is counted; its type is sniffed from its
//!    first bytes before the write starts. Past `attachments.max_bytes` the write is aborted
//!    at once (nothing of that file remains) and the request ends with 413 / 40005.
//! 3. With every file stored, the message is created through the guild actor, which checks
//!    everything again and persists the record.
//!
//! Every blob written for the request is tracked by an `UploadGuard`. On any failure (a
//! limit, a malformed part, a refused message, a store error) the request deletes them before
//! it answers; if the request is dropped midway (the client went away and the server cancelled
//! it), the guard's `Drop` deletes them in the background. A blob outlives its request only as
//! part of a stored message.

use std::io;
use std::sync::Arc;

use actix_multipart::{Field, Multipart};
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::{Bytes, BytesMut};
use enrichment_actors::guild::requests;
use enrichment_protocol::models::Attachment;
use enrichment_protocol::rest::{AttachmentRef, CreateMessage};
use enrichment_protocol::{ApiError, ErrorCode, FormErrors, Snowflake};
use enrichment_storage::blobs::{BlobKey, BlobStore, ByteStream};
use futures::StreamExt;

use super::names::sanitize_filename;
use super::sniff::{SNIFF_BYTES, Sniffed, sniff};
use crate::error::{BodyLimit, HttpError, parse_json, payload_too_large};
use crate::state::{Authed, State};

/// Chunks queued between the request and a blob write; bounds what one upload holds.
const QUEUED_CHUNKS: usize = 4;

/// Blobs written for one request that no message owns yet.
struct UploadGuard {
    blobs: Arc<dyn BlobStore>,
    keys: Vec<BlobKey>,
}

impl UploadGuard {
    fn new(blobs: Arc<dyn BlobStore>) -> UploadGuard {
        UploadGuard {
            blobs,
            keys: Vec::new(),
        }
    }

    /// The message now owns these blobs: they stay.
    fn keep(&mut self, owned: &[Attachment], channel_id: Snowflake) {
        self.keys.retain(|k| {
            !owned
                .iter()
                .any(|a| BlobKey::attachment(channel_id, a.id, &a.filename).is_ok_and(|o| &o == k))
        });
    }

    /// Deletes every blob still tracked, and waits for it.
    async fn discard(&mut self) {
        for key in std::mem::take(&mut self.keys) {
            delete_logged(self.blobs.as_ref(), &key).await;
        }
    }
}

impl Drop for UploadGuard {
    fn drop(&mut self) {
        if self.keys.is_empty() {
            return;
        }
        let keys = std::mem::take(&mut self.keys);
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                let blobs = self.blobs.clone();
                rt.spawn(async move {
                    for key in keys {
                        delete_logged(blobs.as_ref(), &key).await;
                    }
                });
            }
            Err(_) => {
                for key in keys {
                    metrics::counter!("enrichment_blob_delete_failures_total").increment(1);
                    tracing::warn!(%key, "upload cancelled without a runtime; its blob is left behind");
                }
            }
        }
    }
}

async fn delete_logged(blobs: &dyn BlobStore, key: &BlobKey) {
    if let Err(e) = blobs.delete(key).await {
        metrics::counter!("enrichment_blob_delete_failures_total").increment(1);
        tracing::warn!(%key, error = %e, "could not delete the blob of a failed upload");
    }
}

/// One stored file.
struct Stored {
    /// The `n` of its `files[n]` part.
    index: u64,
    id: Snowflake,
    filename: String,
    size: u64,
    sniffed: Sniffed,
}

fn malformed(message: impl std::fmt::Display) -> ApiError {
    ApiError::form(
        &["files"],
        "BASE_TYPE_INVALID",
        format!("Invalid multipart body: {message}"),
    )
}

pub fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        413,
        ErrorCode::RequestEntityTooLarge,
        format!("Request entity too large (limit {limit} bytes per file)"),
    )
}

/// `files[3]` is 3; `file`, `files` or another name get the next free index.
fn part_index(name: &str) -> Option<u64> {
    name.strip_prefix("files[")?.strip_suffix(']')?.parse().ok()
}

/// The base of attachment URLs: the configured `public_url`, or the request's own host.
fn public_base(req: &HttpRequest, configured: Option<&str>) -> String {
    if let Some(url) = configured {
        return url.trim_end_matches('/').to_owned();
    }
    let scheme = if req.app_config().secure() {
        "https"
    } else {
        "http"
    };
    // Only a plausible host goes into stored URLs; anything odd falls back to our address.
    let host = req
        .headers()
        .get(actix_web::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| req.app_config().local_addr().to_string());
    format!("{scheme}://{host}")
}

/// What a URL path segment escapes: everything but unreserved characters.
const URL_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The URL of a stored attachment.
pub fn attachment_url(base: &str, channel_id: Snowflake, id: Snowflake, filename: &str) -> String {
    let name = percent_encoding::utf8_percent_encode(filename, URL_SEGMENT);
    format!("{base}/attachments/{channel_id}/{id}/{name}")
}

/// Reads a small form part whole, refusing more than `limit` bytes.
async fn read_small(field: &mut Field, limit: usize) -> Result<Bytes, ApiError> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = field.next().await {
        let chunk = chunk.map_err(malformed)?;
        if buf.len() + chunk.len() > limit {
            return Err(payload_too_large(limit));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// Why a file did not make it into the store.
enum FeedError {
    TooLarge,
    Client(String),
}

/// Streams one file part into the blob store under `key`; returns its size and type.
async fn store_file(
    blobs: &dyn BlobStore,
    key: &BlobKey,
    field: &mut Field,
    max_bytes: u64,
) -> Result<(u64, Sniffed), ApiError> {
    // The type must be known before the write starts (S3 stores it with the object), so the
    // first SNIFF_BYTES are gathered first; they count against the limit like the rest.
    let mut head = BytesMut::new();
    let mut total = 0u64;
    let mut ended = false;
    while head.len() < SNIFF_BYTES {
        match field.next().await {
            None => {
                ended = true;
                break;
            }
            Some(Err(e)) => return Err(malformed(e)),
            Some(Ok(chunk)) => {
                total += chunk.len() as u64;
                if total > max_bytes {
                    metrics::counter!("enrichment_attachment_refused_total").increment(1);
                    return Err(too_large(max_bytes));
                }
                head.extend_from_slice(&chunk);
            }
        }
    }
    let head = head.freeze();
    let sniffed = sniff(&head[..head.len().min(SNIFF_BYTES)]);

    // The request's body stream is not `Send` (actix runs each worker on one thread) while the
    // blob store wants a `Send` body, so chunks cross a small bounded channel: the store reads
    // at its own pace and the request waits when it is ahead.
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(QUEUED_CHUNKS);
    let body: ByteStream = Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }));
    let put = blobs.put(key, &sniffed.content_type, body);
    let feed = async move {
        if !head.is_empty() && tx.send(Ok(head)).await.is_err() {
            return Ok(total);
        }
        if ended {
            return Ok(total);
        }
        // Every way out that is not the end of the file sends an error first: a body that
        // just stopped would be stored as a complete, truncated file.
        while let Some(chunk) = field.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    let _ = tx.send(Err(io::Error::other(e.to_string()))).await;
                    return Err(FeedError::Client(e.to_string()));
                }
            };
            total += chunk.len() as u64;
            if total > max_bytes {
                let _ = tx.send(Err(io::Error::other("over the size limit"))).await;
                return Err(FeedError::TooLarge);
            }
            if tx.send(Ok(chunk)).await.is_err() {
                // The store gave up; its own error says why.
                break;
            }
        }
        Ok(total)
    };
    let (fed, put) = futures::join!(feed, put);
    match (fed, put) {
        (Err(FeedError::TooLarge), _) => {
            metrics::counter!("enrichment_attachment_refused_total").increment(1);
            Err(too_large(max_bytes))
        }
        (Err(FeedError::Client(e)), _) => Err(malformed(e)),
        (Ok(_), Err(e)) => {
            tracing::error!(%key, error = %e, "storing an attachment failed");
            Err(ApiError::internal())
        }
        (Ok(fed), Ok(size)) if fed == size => Ok((size, sniffed)),
        (Ok(fed), Ok(size)) => {
            tracing::error!(%key, fed, size, "the blob store stored a different size than it was sent");
            Err(ApiError::internal())
        }
    }
}

/// What the parts said, once all are read.
struct Parts {
    payload: Option<CreateMessage>,
    files: Vec<Stored>,
}

/// Handles a multipart message create; see the module docs for the order of work.
pub async fn create_with_files(
    state: State,
    who: Authed,
    req: HttpRequest,
    channel_id: Snowflake,
    payload: web::Payload,
) -> Result<HttpResponse, HttpError> {
    let mut guard = UploadGuard::new(state.blobs.clone());
    let result = async {
        let parts = read_parts(&state, &who, &req, channel_id, payload, &mut guard).await?;
        let mut body = parts.payload.unwrap_or_default();
        body.validate_with_files(parts.files.len())?;
        let refs = body.attachments.take().unwrap_or_default();
        let base = public_base(&req, state.attachments.public_url.as_deref());
        let attachments = parts
            .files
            .into_iter()
            .map(|f| {
                let url = attachment_url(&base, channel_id, f.id, &f.filename);
                Attachment {
                    id: f.id,
                    description: refs
                        .iter()
                        .find(|r| r.id.get() == f.index)
                        .and_then(|r| r.description.clone())
                        .filter(|d| !d.is_empty()),
                    filename: f.filename,
                    content_type: Some(f.sniffed.content_type),
                    size: f.size,
                    proxy_url: url.clone(),
                    url,
                    height: f.sniffed.height,
                    width: f.sniffed.width,
                }
            })
            .collect();
        let message = state
            .channel(
                channel_id,
                &who,
                requests::CreateMessage {
                    channel_id,
                    body: Box::new(body),
                    attachments,
                },
            )
            .await?;
        Ok::<_, HttpError>(message)
    }
    .await;
    match result {
        Ok(message) => {
            // A repeated nonce answers with the first message, which does not own this
            // request's files: those go like any other unused upload.
            guard.keep(&message.attachments, channel_id);
            guard.discard().await;
            Ok(HttpResponse::Ok().json(message))
        }
        Err(e) => {
            guard.discard().await;
            Err(e)
        }
    }
}

async fn read_parts(
    state: &State,
    who: &Authed,
    req: &HttpRequest,
    channel_id: Snowflake,
    payload: web::Payload,
    guard: &mut UploadGuard,
) -> Result<Parts, HttpError> {
    let json_limit = req
        .app_data::<BodyLimit>()
        .map(|l| l.0)
        .unwrap_or(256 * 1024);
    let limits = &state.attachments;
    let mut multipart = Multipart::new(req.headers(), payload);
    let mut parts = Parts {
        payload: None,
        files: Vec::new(),
    };
    let mut may_upload = false;
    while let Some(field) = multipart.next().await {
        let mut field = field.map_err(malformed)?;
        let name = field.name().unwrap_or_default().to_owned();
        let filename = field
            .content_disposition()
            .and_then(|cd| cd.get_filename())
            .map(str::to_owned);
        if name == "payload_json" {
            if parts.payload.is_some() {
                return Err(ApiError::form(
                    &["payload_json"],
                    "BASE_TYPE_INVALID",
                    "payload_json may appear once",
                )
                .into());
            }
            let bytes = read_small(&mut field, json_limit).await?;
            parts.payload = Some(parse_json::<CreateMessage>(&bytes)?);
            continue;
        }
        let Some(raw_name) = filename else {
            // A plain form field this API does not read; bounded like a JSON body.
            read_small(&mut field, json_limit).await?;
            continue;
        };
        if parts.files.len() >= limits.max_files {
            let mut e = FormErrors::default();
            e.add(
                &["files"],
                "BASE_TYPE_MAX_LENGTH",
                format!("Must be {} or fewer in length.", limits.max_files),
            );
            return Err(e.into_error().into());
        }
        let index = part_index(&name).unwrap_or(parts.files.len() as u64);
        if parts.files.iter().any(|f| f.index == index) {
            return Err(ApiError::form(
                &["files", &index.to_string()],
                "BASE_TYPE_INVALID",
                "Duplicate file index",
            )
            .into());
        }
        if !may_upload {
            state
                .channel(channel_id, who, requests::CheckUpload { channel_id })
                .await?;
            may_upload = true;
        }
        // A name given in payload_json wins when payload_json came first; after a file is
        // stored its name is part of its key and URL, and stays.
        let chosen = parts
            .payload
            .as_ref()
            .and_then(|p| p.attachments.as_deref())
            .and_then(|refs: &[AttachmentRef]| refs.iter().find(|r| r.id.get() == index))
            .and_then(|r| r.filename.clone())
            .unwrap_or(raw_name);
        let filename = sanitize_filename(&chosen);
        let id = state.guilds.ids.next_id();
        let key = BlobKey::attachment(channel_id, id, &filename).map_err(|e| {
            tracing::error!(error = %e, "a sanitised name made an invalid blob key");
            ApiError::internal()
        })?;
        // Tracked before the write starts, so a write cut off midway is cleaned up too.
        guard.keys.push(key.clone());
        let (size, sniffed) =
            store_file(state.blobs.as_ref(), &key, &mut field, limits.max_bytes).await?;
        metrics::counter!("enrichment_attachment_bytes_total").increment(size);
        parts.files.push(Stored {
            index,
            id,
            filename,
            size,
            sniffed,
        });
    }
    parts.files.sort_by_key(|f| f.index);
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_names() {
        assert_eq!(part_index("files[0]"), Some(0));
        assert_eq!(part_index("files[12]"), Some(12));
        assert_eq!(part_index("file"), None);
        assert_eq!(part_index("files[x]"), None);
        assert_eq!(part_index("files[-1]"), None);
    }

    #[test]
    fn urls_encode_names() {
        assert_eq!(
            attachment_url("http://h:1", Snowflake(1), Snowflake(2), "a b.png"),
            "http://h:1/attachments/1/2/a%20b.png"
        );
    }
}
