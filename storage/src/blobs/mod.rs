//! Blob storage: the bytes of attachments, kept apart from the message records that describe
//! them.
//!
//! [`BlobStore`] is the contract; backends sit behind cargo features so the trait pulls in no
//! driver:
//! - [`memory::MemoryBlobStore`] (always built): a map in memory, for tests of the layers above;
//! - [`fs::FsBlobStore`] (feature `blobs-fs`): files under a root directory, the single-node
//!   default;
//! - [`s3::S3BlobStore`] (feature `blobs-s3`): any S3-compatible server, for clusters.
//!
//! Keys are `/`-separated paths whose segments are checked by [`BlobKey`] (no empty segment, no
//! leading dot, no backslash or control character), so a key can never name anything outside
//! its store's root, whatever a client sent. Attachments use `{channel_id}/{attachment_id}/
//! {filename}`: everything of a channel shares one prefix, which is how a deleted channel's
//! blobs go in one call.
//!
//! Contract shared by all backends, proven by [`testsuite`] (feature `testsuite`):
//! - `put` streams; the size is known only when the body ends. When it resolves `Ok`, the blob
//!   is durable and readable in full. When the body yields an error the write is abandoned and
//!   nothing is left at the key ([`BlobError::Aborted`]); that is how an upload over the size
//!   limit is stopped while it streams.
//! - `delete` and `delete_prefix` are idempotent: deleting what is not there succeeds.

use std::io;
use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use enrichment_protocol::Snowflake;
use futures::Stream;

#[cfg(feature = "blobs-fs")]
pub mod fs;
pub mod memory;
#[cfg(feature = "blobs-s3")]
pub mod s3;
#[cfg(feature = "testsuite")]
pub mod testsuite;

/// A body, chunk by chunk. An `Err` item aborts the write it feeds.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// What can go wrong in a blob store.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The key or prefix is not a valid path (see [`BlobKey`]).
    #[error("invalid blob key {0:?}")]
    InvalidKey(String),
    /// The body stream failed, so the write was abandoned and nothing was stored.
    #[error("blob write aborted: {0}")]
    Aborted(io::Error),
    /// The backend failed (I/O, network, credentials, server).
    #[error("blob backend error: {0}")]
    Backend(String),
}

pub type BlobResult<T> = Result<T, BlobError>;

/// Longest key, in bytes: S3's limit.
pub const MAX_KEY_BYTES: usize = 1024;
/// Longest segment, in bytes: a file name on common file systems.
pub const MAX_SEGMENT_BYTES: usize = 255;

/// A checked blob key: `/`-separated segments, each non-empty, at most
/// [`MAX_SEGMENT_BYTES`], not starting with `.`, without `\` or control characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobKey(String);

impl BlobKey {
    pub fn new(key: impl Into<String>) -> BlobResult<BlobKey> {
        let key = key.into();
        if key.len() > MAX_KEY_BYTES || !key.split('/').all(valid_segment) {
            return Err(BlobError::InvalidKey(key));
        }
        Ok(BlobKey(key))
    }

    /// The key of an attachment: `{channel_id}/{attachment_id}/{filename}`.
    pub fn attachment(
        channel_id: Snowflake,
        attachment_id: Snowflake,
        filename: &str,
    ) -> BlobResult<BlobKey> {
        BlobKey::new(format!("{channel_id}/{attachment_id}/{filename}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }
}

impl std::fmt::Display for BlobKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The prefix every attachment of a channel shares.
pub fn channel_prefix(channel_id: Snowflake) -> String {
    format!("{channel_id}/")
}

/// Checks a prefix for [`BlobStore::delete_prefix`]: one or more valid segments, each followed
/// by `/`. Returns its segments.
pub fn prefix_segments(prefix: &str) -> BlobResult<Vec<&str>> {
    let invalid = || BlobError::InvalidKey(prefix.to_owned());
    let inner = prefix.strip_suffix('/').ok_or_else(invalid)?;
    if inner.len() > MAX_KEY_BYTES || !inner.split('/').all(valid_segment) {
        return Err(invalid());
    }
    Ok(inner.split('/').collect())
}

fn valid_segment(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_SEGMENT_BYTES
        && !s.starts_with('.')
        && !s.chars().any(|c| c == '\\' || c.is_control())
}

/// A blob being read: its size, and its bytes as they arrive.
pub struct Blob {
    pub size: u64,
    pub body: ByteStream,
}

impl std::fmt::Debug for Blob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blob").field("size", &self.size).finish()
    }
}

impl Blob {
    /// Reads the whole blob into memory (tests and small blobs only).
    pub async fn bytes(self) -> BlobResult<Bytes> {
        use futures::TryStreamExt;
        let chunks: Vec<Bytes> = self
            .body
            .try_collect()
            .await
            .map_err(|e| BlobError::Backend(e.to_string()))?;
        Ok(chunks.concat().into())
    }
}

#[async_trait]
pub trait BlobStore: Send + Sync + std::fmt::Debug + 'static {
    /// Streams `body` into `key`, replacing any blob there, and returns its size. `Ok` means
    /// durable. A body that yields an error abandons the write: [`BlobError::Aborted`], and
    /// nothing new is left at `key`.
    async fn put(&self, key: &BlobKey, content_type: &str, body: ByteStream) -> BlobResult<u64>;
    /// The blob, streamed, or `None` when there is none.
    async fn get(&self, key: &BlobKey) -> BlobResult<Option<Blob>>;
    async fn exists(&self, key: &BlobKey) -> BlobResult<bool>;
    /// Removes the blob; succeeds when there was none.
    async fn delete(&self, key: &BlobKey) -> BlobResult<()>;
    /// Removes every blob whose key starts with `prefix` (segments ending in `/`, see
    /// [`prefix_segments`]); succeeds when there was none.
    async fn delete_prefix(&self, prefix: &str) -> BlobResult<()>;
    /// Checks that the store is reachable with its credentials (run at startup).
    async fn check(&self) -> BlobResult<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_never_leave_the_root() {
        for bad in [
            "", "/abs", "a//b", "a/", "../x", "a/../b", "a/./b", ".hidden", "a/.b", "a\\b",
            "a/b\0c", "a/b\nc",
        ] {
            assert!(BlobKey::new(bad).is_err(), "{bad:?} must be refused");
        }
        assert!(BlobKey::new("x".repeat(256)).is_err());
        assert!(BlobKey::new(vec!["a"; 600].join("/")).is_err());
        let k = BlobKey::attachment(Snowflake(1), Snowflake(2), "cat.png").unwrap();
        assert_eq!(k.as_str(), "1/2/cat.png");
        assert_eq!(k.segments().collect::<Vec<_>>(), ["1", "2", "cat.png"]);
        assert!(BlobKey::attachment(Snowflake(1), Snowflake(2), "..").is_err());
        assert_eq!(prefix_segments("12/").unwrap(), ["12"]);
        assert_eq!(prefix_segments("12/34/").unwrap(), ["12", "34"]);
        for bad in ["", "/", "12", "../", "a//"] {
            assert!(prefix_segments(bad).is_err(), "{bad:?} must be refused");
        }
    }
}
