//! Blobs in an S3-compatible bucket (AWS S3, MinIO, Ceph, R2, s3s-fs...), for clusters whose
//! nodes must all see the same files.
//!
//! Built on rust-s3 rather than object_store: rust-s3 0.38 runs on reqwest 0.12 with rustls and
//! ring (`tokio-rustls-tls-ring`), which the node already links, while object_store 0.14's S3
//! client needs reqwest 0.13 and aws-lc-rs, a second HTTP stack and a C build for the same job.
//! Both do path-style addressing and streamed multipart uploads.
//!
//! Streaming: `put` hands the body to rust-s3's streamed upload as an `AsyncRead`. rust-s3
//! reads it in 8 MiB parts: a body under 8 MiB is sent as one PUT (so it is held in memory, at
//! most 8 MiB), a larger one as a multipart upload with one part in flight at a time, so a
//! 25 MiB file never sits in memory whole. When the body fails (the size limit cut it off, or
//! the client went away) before the first part was read, nothing was sent; after, rust-s3
//! aborts the multipart upload, so no object appears.
//!
//! Reads: `get` asks HEAD for the size, then streams the GET body as it arrives.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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

/// Parts in flight per upload: one, so an upload holds at most one 8 MiB part in memory.
const PARTS_IN_FLIGHT: usize = 1;
/// Keys per page when deleting a prefix (S3's maximum).
const LIST_PAGE: usize = 1000;

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
    async fn put(&self, key: &BlobKey, content_type: &str, body: ByteStream) -> BlobResult<u64> {
        // rust-s3 reports a failed read as a plain I/O error; this flag tells it apart from a
        // failed request, so the caller learns the body was the cause.
        let body_failed = Arc::new(AtomicBool::new(false));
        let flag = body_failed.clone();
        let body = body.inspect_err(move |_| flag.store(true, Ordering::SeqCst));
        let mut reader = tokio_util::io::StreamReader::new(body);
        let result = self
            .bucket
            .put_object_stream_builder(key.as_str())
            .with_content_type(content_type)
            .with_max_concurrent_chunks(PARTS_IN_FLIGHT)
            .execute_stream(&mut reader)
            .await;
        match result {
            Ok(r) => Ok(r.uploaded_bytes() as u64),
            Err(e) if body_failed.load(Ordering::SeqCst) => {
                Err(BlobError::Aborted(io::Error::other(e.to_string())))
            }
            Err(e) => Err(backend(e)),
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
