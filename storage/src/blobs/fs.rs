//! Blobs as files under one root directory (`data_dir/blobs` on a node): the single-node
//! default, nothing to install.
//!
//! A key's segments become directories and the file name, so `{channel}/{attachment}/{name}`
//! is `root/{channel}/{attachment}/{name}` and a channel's blobs are one directory. A write goes
//! to a temporary file in `root/.tmp` (same file system, and a name no key can take, since key
//! segments never start with a dot), is fsynced, renamed into place, and the directories above
//! it are fsynced, so `put` returning `Ok` means the blob survives a crash and a reader never
//! sees half a file. A write that fails or is dropped removes its temporary file; leftovers of a
//! crash are cleared when the store opens.

use std::io;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use super::{Blob, BlobError, BlobKey, BlobResult, BlobStore, ByteStream, prefix_segments};

/// Read buffer of a streamed GET.
const READ_CHUNK: usize = 64 * 1024;

#[derive(Debug)]
pub struct FsBlobStore {
    root: PathBuf,
    tmp: PathBuf,
}

fn backend(e: io::Error) -> BlobError {
    BlobError::Backend(e.to_string())
}

impl FsBlobStore {
    /// Opens (creating if needed) the store at `root`, clearing temporary files a crash left.
    pub fn open(root: impl Into<PathBuf>) -> BlobResult<FsBlobStore> {
        let root = root.into();
        let tmp = root.join(".tmp");
        std::fs::create_dir_all(&tmp)
            .map_err(|e| BlobError::Backend(format!("cannot create {}: {e}", tmp.display())))?;
        for entry in std::fs::read_dir(&tmp).map_err(backend)? {
            let path = entry.map_err(backend)?.path();
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), error = %e, "could not remove a stale temporary blob");
            }
        }
        Ok(FsBlobStore { root, tmp })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &BlobKey) -> PathBuf {
        let mut p = self.root.clone();
        p.extend(key.segments());
        p
    }
}

/// Makes a rename or a new directory entry durable.
async fn sync_dir(dir: &Path) -> io::Result<()> {
    tokio::fs::File::open(dir).await?.sync_all().await
}

#[async_trait]
impl BlobStore for FsBlobStore {
    async fn put(
        &self,
        key: &BlobKey,
        _content_type: &str,
        mut body: ByteStream,
    ) -> BlobResult<u64> {
        let dest = self.path(key);
        let tmp_dir = self.tmp.clone();
        // Deleted on drop until persisted: an abandoned or cancelled write leaves nothing.
        let tmp = tokio::task::spawn_blocking(move || {
            tempfile::Builder::new().prefix("put-").tempfile_in(tmp_dir)
        })
        .await
        .map_err(|e| BlobError::Backend(e.to_string()))?
        .map_err(backend)?;
        let mut file = tokio::fs::File::from_std(tmp.as_file().try_clone().map_err(backend)?);
        let mut size = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(BlobError::Aborted)?;
            file.write_all(&chunk).await.map_err(backend)?;
            size += chunk.len() as u64;
        }
        file.flush().await.map_err(backend)?;
        file.sync_all().await.map_err(backend)?;
        drop(file);
        let parent = dest
            .parent()
            .map(Path::to_path_buf)
            .ok_or_else(|| BlobError::InvalidKey(key.to_string()))?;
        tokio::fs::create_dir_all(&parent).await.map_err(backend)?;
        let target = dest.clone();
        tokio::task::spawn_blocking(move || tmp.persist(target))
            .await
            .map_err(|e| BlobError::Backend(e.to_string()))?
            .map_err(|e| backend(e.error))?;
        // The file's own directory holds the new name; the ones above may be new too.
        let mut dir = Some(parent.as_path());
        while let Some(d) = dir {
            sync_dir(d).await.map_err(backend)?;
            if d == self.root {
                break;
            }
            dir = d.parent();
        }
        Ok(size)
    }

    async fn get(&self, key: &BlobKey) -> BlobResult<Option<Blob>> {
        let file = match tokio::fs::File::open(self.path(key)).await {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(backend(e)),
        };
        let meta = file.metadata().await.map_err(backend)?;
        if !meta.is_file() {
            return Ok(None);
        }
        Ok(Some(Blob {
            size: meta.len(),
            body: Box::pin(tokio_util::io::ReaderStream::with_capacity(
                file, READ_CHUNK,
            )),
        }))
    }

    async fn exists(&self, key: &BlobKey) -> BlobResult<bool> {
        match tokio::fs::metadata(self.path(key)).await {
            Ok(m) => Ok(m.is_file()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(backend(e)),
        }
    }

    async fn delete(&self, key: &BlobKey) -> BlobResult<()> {
        let path = self.path(key);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(backend(e)),
        }
        // Empty directories left behind are harmless; removing them keeps the tree small. One
        // that is not empty (or already gone) stays as it is.
        let mut dir = path.parent();
        while let Some(d) = dir {
            if d == self.root || tokio::fs::remove_dir(d).await.is_err() {
                break;
            }
            dir = d.parent();
        }
        Ok(())
    }

    async fn delete_prefix(&self, prefix: &str) -> BlobResult<()> {
        let mut dir = self.root.clone();
        dir.extend(prefix_segments(prefix)?);
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(backend(e)),
        }
    }

    async fn check(&self) -> BlobResult<()> {
        let tmp_dir = self.tmp.clone();
        tokio::task::spawn_blocking(move || tempfile::tempfile_in(tmp_dir).map(drop))
            .await
            .map_err(|e| BlobError::Backend(e.to_string()))?
            .map_err(|e| BlobError::Backend(format!("{} is not writable: {e}", self.tmp.display())))
    }
}
