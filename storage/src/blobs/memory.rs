//! Blobs in a map in memory: for tests of the layers above, where files or a server would only
//! add noise. Nothing survives the process.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;

use super::{Blob, BlobError, BlobKey, BlobResult, BlobStore, ByteStream, prefix_segments};

#[derive(Debug, Default)]
pub struct MemoryBlobStore {
    blobs: Mutex<BTreeMap<String, Bytes>>,
}

impl MemoryBlobStore {
    /// The keys held now, in order.
    pub fn keys(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Bytes>> {
        // A panic while holding the lock cannot leave the map half-updated (each change is one
        // insert or remove), so a poisoned lock is still good.
        self.blobs.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl BlobStore for MemoryBlobStore {
    async fn put(
        &self,
        key: &BlobKey,
        _content_type: &str,
        mut body: ByteStream,
    ) -> BlobResult<u64> {
        let mut buf = BytesMut::new();
        while let Some(chunk) = body.next().await {
            buf.extend_from_slice(&chunk.map_err(BlobError::Aborted)?);
        }
        let size = buf.len() as u64;
        self.lock().insert(key.as_str().to_owned(), buf.freeze());
        Ok(size)
    }

    async fn get(&self, key: &BlobKey) -> BlobResult<Option<Blob>> {
        Ok(self.lock().get(key.as_str()).cloned().map(|b| Blob {
            size: b.len() as u64,
            body: Box::pin(futures::stream::iter([Ok(b)])),
        }))
    }

    async fn exists(&self, key: &BlobKey) -> BlobResult<bool> {
        Ok(self.lock().contains_key(key.as_str()))
    }

    async fn delete(&self, key: &BlobKey) -> BlobResult<()> {
        self.lock().remove(key.as_str());
        Ok(())
    }

    async fn delete_prefix(&self, prefix: &str) -> BlobResult<()> {
        prefix_segments(prefix)?;
        self.lock().retain(|k, _| !k.starts_with(prefix));
        Ok(())
    }

    async fn check(&self) -> BlobResult<()> {
        Ok(())
    }
}
