//! The conformance suite every [`BlobStore`] runs unchanged (feature `testsuite`).
//!
//! Each function takes a store and checks one part of the contract with exact values. Keys are
//! made fresh per run (a random channel id), so a suite may run against a bucket that already
//! holds objects. A backend's test calls [`run_all`], or the functions one by one.

use std::io;

use bytes::Bytes;
use enrichment_protocol::Snowflake;

use super::{BlobError, BlobKey, BlobStore, ByteStream, channel_prefix};

/// A channel id no earlier run used.
fn fresh_channel() -> Snowflake {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    Snowflake(nanos | 1)
}

/// `len` bytes of a pattern that differs at every offset a chunk boundary could fall on.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i >> 10) as u8)
        .collect()
}

/// A body of `data` in chunks of `chunk` bytes.
pub fn body(data: &[u8], chunk: usize) -> ByteStream {
    let chunks: Vec<io::Result<Bytes>> = data
        .chunks(chunk.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Box::pin(futures::stream::iter(chunks))
}

/// `data`, then an error: the shape of an upload cut off for being too large.
pub fn failing_body(data: &[u8], chunk: usize) -> ByteStream {
    let mut chunks: Vec<io::Result<Bytes>> = data
        .chunks(chunk.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    chunks.push(Err(io::Error::other("cut off")));
    Box::pin(futures::stream::iter(chunks))
}

fn key(ch: Snowflake, att: u64, name: &str) -> BlobKey {
    BlobKey::attachment(ch, Snowflake(att), name).expect("valid key")
}

/// Round trip of a small and an empty blob; replacing; exists; idempotent delete.
pub async fn put_get_delete(store: &dyn BlobStore) {
    let ch = fresh_channel();
    let k = key(ch, 1, "hello.txt");
    assert!(!store.exists(&k).await.expect("exists"));
    assert!(store.get(&k).await.expect("get").is_none());
    let size = store
        .put(&k, "text/plain", body(b"hello, world", 5))
        .await
        .expect("put");
    assert_eq!(size, 12);
    assert!(store.exists(&k).await.expect("exists"));
    let blob = store.get(&k).await.expect("get").expect("present");
    assert_eq!(blob.size, 12);
    assert_eq!(&blob.bytes().await.expect("read")[..], b"hello, world");
    // A put replaces.
    store
        .put(&k, "text/plain", body(b"bye", 3))
        .await
        .expect("replace");
    let blob = store.get(&k).await.expect("get").expect("present");
    assert_eq!(blob.size, 3);
    assert_eq!(&blob.bytes().await.expect("read")[..], b"bye");
    let empty = key(ch, 2, "empty.bin");
    assert_eq!(
        store
            .put(&empty, "application/octet-stream", body(b"", 1))
            .await
            .expect("put empty"),
        0
    );
    let blob = store.get(&empty).await.expect("get").expect("present");
    assert_eq!(blob.size, 0);
    assert!(blob.bytes().await.expect("read").is_empty());
    store.delete(&k).await.expect("delete");
    assert!(!store.exists(&k).await.expect("exists"));
    assert!(store.get(&k).await.expect("get").is_none());
    store.delete(&k).await.expect("deleting twice is fine");
    store.delete(&empty).await.expect("delete");
}

/// A body that fails leaves nothing at its key, small or large.
pub async fn aborted_put_leaves_nothing(store: &dyn BlobStore) {
    let ch = fresh_channel();
    for (i, len) in [(1, 1000usize), (2, 9 << 20)] {
        let k = key(ch, i, "cut.bin");
        let err = store
            .put(
                &k,
                "application/octet-stream",
                failing_body(&pattern(len), 64 << 10),
            )
            .await
            .expect_err("a failing body fails the put");
        assert!(matches!(err, BlobError::Aborted(_)), "{err:?}");
        assert!(!store.exists(&k).await.expect("exists"), "{len} bytes");
    }
}

/// A blob larger than any single part or buffer streams back byte for byte.
pub async fn large_round_trip(store: &dyn BlobStore) {
    let ch = fresh_channel();
    let k = key(ch, 1, "big.bin");
    let data = pattern((10 << 20) + 12345);
    let size = store
        .put(&k, "application/octet-stream", body(&data, 100_000))
        .await
        .expect("put");
    assert_eq!(size, data.len() as u64);
    let blob = store.get(&k).await.expect("get").expect("present");
    assert_eq!(blob.size, data.len() as u64);
    let back = blob.bytes().await.expect("read");
    assert!(back[..] == data[..], "bytes differ");
    store.delete(&k).await.expect("delete");
}

/// `delete_prefix` removes a channel's blobs and nothing else.
pub async fn delete_prefix_scopes_to_the_channel(store: &dyn BlobStore) {
    let ch = fresh_channel();
    let other = Snowflake(ch.get() + 2);
    let mine = [key(ch, 1, "a.txt"), key(ch, 2, "b.txt")];
    let theirs = key(other, 1, "a.txt");
    for k in mine.iter().chain([&theirs]) {
        store
            .put(k, "text/plain", body(b"x", 1))
            .await
            .expect("put");
    }
    store
        .delete_prefix(&channel_prefix(ch))
        .await
        .expect("delete prefix");
    for k in &mine {
        assert!(!store.exists(k).await.expect("exists"), "{k}");
    }
    assert!(store.exists(&theirs).await.expect("exists"));
    store
        .delete_prefix(&channel_prefix(ch))
        .await
        .expect("deleting an empty prefix is fine");
    assert!(matches!(
        store.delete_prefix("../").await,
        Err(BlobError::InvalidKey(_))
    ));
    store.delete(&theirs).await.expect("delete");
}

/// Every case, in turn.
pub async fn run_all(store: &dyn BlobStore) {
    store.check().await.expect("check");
    put_get_delete(store).await;
    aborted_put_leaves_nothing(store).await;
    large_round_trip(store).await;
    delete_prefix_scopes_to_the_channel(store).await;
}
