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
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let unreachable = S3BlobStore::new(S3Settings {
        endpoint: format!("http://127.0.0.1:{port}"),
        request_timeout: Duration::from_secs(5),
        ..settings(&server)
    })
    .unwrap();
    let err = unreachable.check().await.unwrap_err().to_string();
    assert!(err.contains("cannot reach"), "{err}");
}
