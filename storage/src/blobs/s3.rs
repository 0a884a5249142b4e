//! Blobs in an S3-compatible bucket (AWS S3, MinIO, Ceph, R2, s3s-fs...), for clusters whose
//! nodes must all see the same files.
//!
//! Built on rust-s3 rather than object_store: rust-s3 0.38 runs on reqwest 0.12 with rustls and
//! ring (`tokio-rustls-tls-ring`), which the node already links, while object_store 0.14's S3
//! client needs reqwest 0.13 and aws-lc-rs, a second HTTP stack and a C build for the same job.
//! Both do path-style addressing and streamed multipart uploads.
//!
//! Streaming: `put` reads the body in 8 MiB parts. A body that ends within the first part is
//! sent as one PUT (so it is held in memory, at most 8 MiB); a larger one as a multipart
//! upload with one part in flight at a time, so a 25 MiB file never sits in memory whole.
//! When the body fails (the size limit cut it off, or the client went away) before the first
//! part was read, nothing was sent; after, the multipart upload is aborted, so no object
//! appears. The upload is driven here rather than by rust-s3's stream helper because its id
//! must be known to abort it when the `put` future itself is dropped (the request was
//! cancelled): an upload left open stores its parts, invisibly and billed, until a lifecycle
//! rule ends it. `OpenUpload` spawns that abort.
//!
//! Reads: `get` asks HEAD for the size, then streams the GET body as it arrives.

use std::io;
use std::time::Duration;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use s3::creds::Credentials;
use s3::error::S3Error;
use s3::{Bucket, Region};

use super::{Blob, BlobError, BlobKey, BlobResult, BlobStore, ByteStream, prefix_segments};

/// How to reach the bucket.
#[derive(Clone)]
pub struct S3Settings {
    /// `http(s)://host:port`.
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
    /// `http://host/bucket/key` rather than `http://bucket.host/key`.
    pub path_style: bool,
    /// Longest wait for one request.
    pub request_timeout: Duration,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            .finish_non_exhaustive()
    }
}

/// Bytes per part of a multipart upload, and the most one upload holds in memory. S3 wants
/// at least 5 MiB in every part but the last.
const PART_BYTES: usize = 8 << 20;
/// Keys per page when deleting a prefix (S3's maximum).
const LIST_PAGE: usize = 1000;

/// Reads up to [`PART_BYTES`] of `body`; `true` when the body ended within them.
async fn read_part(body: &mut ByteStream) -> BlobResult<(Vec<u8>, bool)> {
    let mut part = Vec::new();
    while part.len() < PART_BYTES {
        match body.next().await {
            Some(Ok(chunk)) => part.extend_from_slice(&chunk),
            Some(Err(e)) => return Err(BlobError::Aborted(e)),
            None => return Ok((part, true)),
        }
    }
    Ok((part, false))
}

/// A multipart upload that is started and not yet completed. Dropped while still open (the
/// `put` future was cancelled), it aborts the upload in the background.
struct OpenUpload {
    /// `None` once completed or aborted.
    bucket: Option<Box<Bucket>>,
    key: String,
    id: String,
}

impl OpenUpload {
    /// Sends `first` and the rest of `body` as parts, then completes the upload.
    async fn send(
        &self,
        bucket: &Bucket,
        first: Vec<u8>,
        mut body: ByteStream,
        content_type: &str,
    ) -> BlobResult<u64> {
        let mut parts = Vec::new();
        let mut size = 0u64;
        let mut part = first;
        // Whether `part` is the last: the body must not be polled again after it ended.
        let mut last = false;
        loop {
            size += part.len() as u64;
            let number = parts.len() as u32 + 1;
            let sent = bucket
                .put_multipart_chunk(part, &self.key, number, &self.id, content_type)
                .await
                .map_err(backend)?;
            parts.push(sent);
            if last {
                break;
            }
            // The next part is read only once this one is sent: one part in memory at a time.
            let (next, ended) = read_part(&mut body).await?;
            if next.is_empty() {
                break;
            }
            part = next;
            last = ended;
        }
        bucket
            .complete_multipart_upload(&self.key, &self.id, parts)
            .await
            .map_err(backend)?;
        Ok(size)
    }

    async fn abort(&mut self) {
        if let Some(bucket) = self.bucket.take() {
            abort_logged(&bucket, &self.key, &self.id).await;
        }
    }
}

impl Drop for OpenUpload {
    fn drop(&mut self) {
        let Some(bucket) = self.bucket.take() else {
            return;
        };
        let (key, id) = (std::mem::take(&mut self.key), std::mem::take(&mut self.id));
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move { abort_logged(&bucket, &key, &id).await });
            }
            Err(_) => {
                tracing::warn!(%key, upload_id = %id, "multipart upload cancelled without a runtime; it stays open");
            }
        }
    }
}

async fn abort_logged(bucket: &Bucket, key: &str, id: &str) {
    if let Err(e) = bucket.abort_upload(key, id).await {
        tracing::warn!(%key, upload_id = %id, error = %e, "could not abort a multipart upload");
    }
}

pub struct S3BlobStore {
    bucket: Box<Bucket>,
    endpoint: String,
}

impl std::fmt::Debug for S3BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3BlobStore")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket.name)
            .finish()
    }
}

fn backend(e: S3Error) -> BlobError {
    BlobError::Backend(e.to_string())
}

fn status_of(e: &S3Error) -> Option<u16> {
    match e {
        S3Error::HttpFailWithBody(status, _) => Some(*status),
        _ => None,
    }
}

impl S3BlobStore {
    /// Builds the client; nothing is sent until the first call (see [`BlobStore::check`]).
    pub fn new(settings: S3Settings) -> BlobResult<S3BlobStore> {
        let region = Region::Custom {
            region: settings.region.clone(),
            endpoint: settings.endpoint.trim_end_matches('/').to_owned(),
        };
        let credentials = Credentials::new(
            Some(&settings.access_key),
            Some(&settings.secret_key),
            None,
            None,
            None,
        )
        .map_err(|e| BlobError::Backend(e.to_string()))?;
        let mut bucket = Bucket::new(&settings.bucket, region, credentials).map_err(backend)?;
        if settings.path_style {
            bucket.set_path_style();
        }
        bucket.set_request_timeout(Some(settings.request_timeout));
        Ok(S3BlobStore {
            bucket,
            endpoint: settings.endpoint,
        })
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn put(
        &self,
        key: &BlobKey,
        content_type: &str,
        mut body: ByteStream,
    ) -> BlobResult<u64> {
        let (first, ended) = read_part(&mut body).await?;
        if ended {
            let size = first.len() as u64;
            self.bucket
                .put_object_with_content_type(key.as_str(), &first, content_type)
                .await
                .map_err(backend)?;
            return Ok(size);
        }
        let started = self
            .bucket
            .initiate_multipart_upload(key.as_str(), content_type)
            .await
            .map_err(backend)?;
        let mut upload = OpenUpload {
            bucket: Some(self.bucket.clone()),
            key: key.as_str().to_owned(),
            id: started.upload_id,
        };
        let result = upload.send(&self.bucket, first, body, content_type).await;
        match result {
            Ok(size) => {
                upload.bucket = None;
                Ok(size)
            }
            Err(e) => {
                upload.abort().await;
                Err(e)
            }
        }
    }

    async fn get(&self, key: &BlobKey) -> BlobResult<Option<Blob>> {
        let size = match self.bucket.head_object(key.as_str()).await {
            Ok((head, _)) => head.content_length.unwrap_or(0).max(0) as u64,
            Err(e) if status_of(&e) == Some(404) => return Ok(None),
            Err(e) => return Err(backend(e)),
        };
        let stream = match self.bucket.get_object_stream(key.as_str()).await {
            Ok(s) => s,
            Err(e) if status_of(&e) == Some(404) => return Ok(None),
            Err(e) => return Err(backend(e)),
        };
        let body = stream.bytes.map_err(|e| io::Error::other(e.to_string()));
        Ok(Some(Blob {
            size,
            body: body.boxed(),
        }))
    }

    async fn exists(&self, key: &BlobKey) -> BlobResult<bool> {
        match self.bucket.head_object(key.as_str()).await {
            Ok(_) => Ok(true),
            Err(e) if status_of(&e) == Some(404) => Ok(false),
            Err(e) => Err(backend(e)),
        }
    }

    async fn delete(&self, key: &BlobKey) -> BlobResult<()> {
        match self.bucket.delete_object(key.as_str()).await {
            Ok(_) => Ok(()),
            Err(e) if status_of(&e) == Some(404) => Ok(()),
            Err(e) => Err(backend(e)),
        }
    }

    async fn delete_prefix(&self, prefix: &str) -> BlobResult<()> {
        prefix_segments(prefix)?;
        // Each round lists the first page still under the prefix and deletes it, so no
        // continuation token has to survive deletions.
        let mut previous_first: Option<String> = None;
        loop {
            let (page, _) = self
                .bucket
                .list_page(prefix.to_owned(), None, None, None, Some(LIST_PAGE))
                .await
                .map_err(backend)?;
            let Some(first) = page.contents.first().map(|o| o.key.clone()) else {
                return Ok(());
            };
            // A server that acknowledges deletes without deleting would loop here forever.
            if previous_first.as_deref() == Some(first.as_str()) {
                return Err(BlobError::Backend(format!(
                    "{first} is still listed after it was deleted"
                )));
            }
            previous_first = Some(first);
            for object in &page.contents {
                match self.bucket.delete_object(&object.key).await {
                    Ok(_) => {}
                    Err(e) if status_of(&e) == Some(404) => {}
                    Err(e) => return Err(backend(e)),
                }
            }
        }
    }

    async fn check(&self) -> BlobResult<()> {
        self.bucket
            .list_page(String::new(), None, None, None, Some(1))
            .await
            .map(drop)
            .map_err(|e| match status_of(&e) {
                Some(403) => BlobError::Backend(format!(
                    "access denied to bucket {} (check the access key and secret key): {e}",
                    self.bucket.name
                )),
                Some(404) => {
                    BlobError::Backend(format!("bucket {} does not exist: {e}", self.bucket.name))
                }
                _ => BlobError::Backend(format!("cannot reach {}: {e}", self.endpoint)),
            })
    }
}
