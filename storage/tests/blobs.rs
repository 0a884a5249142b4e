//! The blob conformance suite against every backend: memory, files, and a real S3 server
//! (s3s-fs, started on an ephemeral port).

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use enrichment_storage::blobs::fs::FsBlobStore;
use enrichment_storage::blobs::memory::MemoryBlobStore;
use enrichment_storage::blobs::s3::{S3BlobStore, S3Settings};
use enrichment_storage::blobs::{BlobKey, BlobStore, testsuite};
use enrichment_testkit::s3::{ACCESS_KEY, BUCKET, S3Server, SECRET_KEY};

fn settings(server: &S3Server) -> S3Settings {
    S3Settings {
        endpoint: server.endpoint(),
        bucket: BUCKET.into(),
        region: "us-east-1".into(),
        access_key: ACCESS_KEY.into(),
        secret_key: SECRET_KEY.into(),
        path_style: true,
        request_timeout: Duration::from_secs(30),
    }
}

/// Every regular file under `dir`, recursively.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test]
async fn memory() {
    testsuite::run_all(&MemoryBlobStore::default()).await;
}

#[tokio::test]
async fn files() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsBlobStore::open(dir.path().join("blobs")).unwrap();
    testsuite::run_all(&store).await;
    // Nothing is left behind: no temporary file, no blob.
    assert_eq!(files_under(dir.path()), Vec::<std::path::PathBuf>::new());
}

#[tokio::test]
async fn files_stay_under_the_root_and_stale_temporaries_go() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("blobs");
    let store = FsBlobStore::open(&root).unwrap();
    let k = BlobKey::new("1/2/a.txt").unwrap();
    store
        .put(&k, "text/plain", testsuite::body(b"abc", 2))
        .await
        .unwrap();
    assert_eq!(std::fs::read(root.join("1/2/a.txt")).unwrap(), b"abc");
    std::fs::write(root.join(".tmp/put-left-by-a-crash"), b"x").unwrap();
    drop(store);
    let store = FsBlobStore::open(&root).unwrap();
    assert_eq!(
        files_under(&root.join(".tmp")),
        Vec::<std::path::PathBuf>::new()
    );
    store.delete(&k).await.unwrap();
    // The emptied directories go with the last file.
    assert!(!root.join("1").exists());
}

#[tokio::test]
async fn s3() {
    let server = S3Server::start().unwrap();
    let store = S3BlobStore::new(settings(&server)).unwrap();
    testsuite::run_all(&store).await;
    assert_eq!(
        files_under(&server.bucket_dir()),
        Vec::<std::path::PathBuf>::new()
    );
    // The failed large put aborted its multipart upload: no part is kept.
    assert_eq!(open_uploads(&server), Vec::<std::path::PathBuf>::new());
}

/// The files s3s-fs keeps for multipart uploads not yet completed or aborted.
fn open_uploads(server: &S3Server) -> Vec<std::path::PathBuf> {
    let root = server.bucket_dir().parent().unwrap().to_path_buf();
    files_under(&root)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.contains("upload"))
        })
        .collect()
}

/// A put dropped midway (its request was cancelled) aborts its multipart upload, so the parts
/// already sent do not stay in the bucket.
#[tokio::test]
async fn s3_cancelled_put_aborts_its_upload() {
    let server = S3Server::start().unwrap();
    let store = std::sync::Arc::new(S3BlobStore::new(settings(&server)).unwrap());
    let key = BlobKey::new("1/2/stalled.bin").unwrap();
    // 9 MiB, one part and a bit, then a client that sends nothing more.
    let sent = futures::stream::iter(
        (0..9)
            .map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![7u8; 1 << 20])))
            .collect::<Vec<_>>(),
    );
    let body = Box::pin(futures::StreamExt::chain(sent, futures::stream::pending()));
    let put = tokio::spawn({
        let store = store.clone();
        let key = key.clone();
        async move { store.put(&key, "application/octet-stream", body).await }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !open_uploads(&server)
        .iter()
        .any(|p| p.to_string_lossy().contains(".part-1"))
    {
        assert!(std::time::Instant::now() < deadline, "part 1 never arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    put.abort();
    assert!(put.await.unwrap_err().is_cancelled());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !open_uploads(&server).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the upload stayed open: {:?}",
            open_uploads(&server)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!store.exists(&key).await.unwrap());
}

#[tokio::test]
async fn s3_check_names_what_is_wrong() {
    let server = S3Server::start().unwrap();
    let wrong_secret = S3BlobStore::new(S3Settings {
        secret_key: "not-the-secret".into(),
        ..settings(&server)
    })
    .unwrap();
    let err = wrong_secret.check().await.unwrap_err().to_string();
    assert!(err.contains("access denied"), "{err}");
    let no_bucket = S3BlobStore::new(S3Settings {
        bucket: "nope".into(),
        ..settings(&server)
    })
    .unwrap();
    let err = no_bucket.check().await.unwrap_err().to_string();
    assert!(err.contains("does not exist"), "{err}");
    let (_refusing, port) = enrichment_testkit::refusing_port().unwrap();
    let unreachable = S3BlobStore::new(S3Settings {
        endpoint: format!("http://127.0.0.1:{port}"),
        request_timeout: Duration::from_secs(5),
        ..settings(&server)
    })
    .unwrap();
    let err = unreachable.check().await.unwrap_err().to_string();
    assert!(err.contains("cannot reach"), "{err}");
}
