#![allow(clippy::unwrap_used)]

use super::*;

/// The four bytes every zstd frame starts with.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Gateway-like messages that differ from each other, as dispatches do.
fn messages() -> Vec<Vec<u8>> {
    (0..50)
        .map(|i| format!("{{\"op\":0,\"s\":{i},\"d\":\"{}\"}}", "x".repeat(i * 97)).into_bytes())
        .collect()
}

#[test]
fn compress_values_round_trip_and_unknown_ones_are_refused() {
    for kind in [
        TransportCompression::None,
        TransportCompression::ZlibStream,
        TransportCompression::ZstdStream,
    ] {
        let value = kind.query_value().unwrap_or("");
        assert_eq!(TransportCompression::from_query(value), Some(kind));
    }
    assert_eq!(TransportCompression::from_query("zstd"), None);
    assert_eq!(TransportCompression::from_query("ZLIB-STREAM"), None);
}

#[test]
fn zlib_stream_shares_one_context_across_messages() {
    let mut z = ZlibStream::new();
    let mut inflate = ZlibInflater::new();
    let messages: Vec<Vec<u8>> = (0..50)
        .map(|i| format!("{{\"op\":0,\"s\":{i},\"d\":\"{}\"}}", "x".repeat(i * 97)).into_bytes())
        .collect();
    let mut total_compressed = 0;
    for m in &messages {
        let c = z.compress(m);
        assert!(c.ends_with(&SYNC_FLUSH));
        total_compressed += c.len();
        // Delivered in two pieces, as a transport may split it.
        let (a, b) = c.split_at(c.len() / 2);
        if !a.ends_with(&SYNC_FLUSH) {
            assert_eq!(inflate.push(a).unwrap(), None);
            assert_eq!(inflate.push(b).unwrap().as_deref(), Some(m.as_slice()));
        } else {
            let mut joined = a.to_vec();
            joined.extend_from_slice(b);
            assert_eq!(
                inflate.push(&joined).unwrap().as_deref(),
                Some(m.as_slice())
            );
        }
    }
    let raw: usize = messages.iter().map(Vec::len).sum();
    assert!(total_compressed < raw / 4, "{total_compressed} vs {raw}");
}

#[test]
fn large_messages_compress_completely() {
    let mut z = ZlibStream::new();
    let mut inflate = ZlibInflater::new();
    let big: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let c = z.compress(&big);
    assert_eq!(inflate.push(&c).unwrap().unwrap(), big);
}

#[test]
fn zstd_stream_is_one_frame_and_each_message_decodes_on_arrival() {
    let mut z = ZstdStream::new().unwrap();
    let mut decode = ZstdDecoder::new().unwrap();
    let messages = messages();
    let mut total_compressed = 0;
    for (i, m) in messages.iter().enumerate() {
        let c = z.compress(m).unwrap();
        // One frame for the connection: only the first message opens it.
        assert_eq!(c.starts_with(&ZSTD_MAGIC), i == 0, "message {i}");
        total_compressed += c.len();
        assert_eq!(decode.push(&c).unwrap(), *m, "message {i}");
    }
    let raw: usize = messages.iter().map(Vec::len).sum();
    assert!(total_compressed < raw / 4, "{total_compressed} vs {raw}");
}

#[test]
fn zstd_stream_codes_later_messages_against_earlier_ones() {
    let mut z = ZstdStream::new().unwrap();
    let m = br#"{"t":"MESSAGE_CREATE","s":1,"op":0,"d":{"content":"a message long enough to repeat","channel_id":"1234567890123456789","author":{"id":"98765432109876543","username":"alice"}}}"#;
    let first = z.compress(m).unwrap();
    let again = z.compress(m).unwrap();
    assert!(
        again.len() * 4 < first.len(),
        "{} vs {}",
        again.len(),
        first.len()
    );
}

#[test]
fn zstd_stream_compresses_messages_larger_than_its_window_completely() {
    let mut z = ZstdStream::new().unwrap();
    let mut decode = ZstdDecoder::new().unwrap();
    let big: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
    assert!(big.len() > 1 << ZSTD_WINDOW_LOG);
    for _ in 0..2 {
        let c = z.compress(&big).unwrap();
        assert_eq!(decode.push(&c).unwrap(), big);
    }
    assert_eq!(decode.push(&z.compress(b"{}").unwrap()).unwrap(), b"{}");
}

#[test]
fn the_standard_zstd_decoder_reads_the_stream() {
    // The zstd crate's own streaming decoder, as a Discord library uses it: what it has read
    // after each message's bytes is exactly that message.
    use zstd::stream::raw::{Decoder, Operation};
    let mut z = ZstdStream::new().unwrap();
    let mut d = Decoder::new().unwrap();
    for m in messages() {
        let c = z.compress(&m).unwrap();
        let mut out = vec![0u8; m.len() + 1024];
        let status = d.run_on_buffers(&c, &mut out).unwrap();
        assert_eq!(status.bytes_read, c.len());
        assert_eq!(&out[..status.bytes_written], m.as_slice());
    }
}

#[test]
fn a_zstd_context_stays_small_after_a_ready_sized_message() {
    let mut z = ZstdStream::new().unwrap();
    let ready: Vec<u8> = (0..40_000u32)
        .flat_map(|i| format!("{{\"id\":\"{i}\",\"unavailable\":true}},").into_bytes())
        .take(64 * 1024)
        .collect();
    z.compress(&ready).unwrap();
    let allocated = z.allocated();
    assert!(allocated < 1 << 20, "{allocated} bytes");
}

#[test]
fn corrupt_data_is_an_error_not_a_panic() {
    let mut zstd = Decompressor::new(TransportCompression::ZstdStream)
        .unwrap()
        .unwrap();
    assert!(zstd.push(&[0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4]).is_err());
    let mut zlib = Decompressor::new(TransportCompression::ZlibStream)
        .unwrap()
        .unwrap();
    assert!(
        zlib.push(&[0xde, 0xad, 0xbe, 0xef, 0, 0, 0xff, 0xff])
            .is_err()
    );
}

#[test]
fn compressor_and_decompressor_agree_for_every_transport_compression() {
    for kind in [
        TransportCompression::ZlibStream,
        TransportCompression::ZstdStream,
    ] {
        let mut c = Compressor::new(kind).unwrap().unwrap();
        let mut d = Decompressor::new(kind).unwrap().unwrap();
        for m in messages() {
            let bytes = c.compress(&m).unwrap();
            assert_eq!(d.push(&bytes).unwrap(), Some(m), "{kind:?}");
        }
    }
    assert!(
        Compressor::new(TransportCompression::None)
            .unwrap()
            .is_none()
    );
}

/// Resident memory a connection's compression context costs, measured over many contexts that
/// each sent a HELLO, a READY and some dispatches. Linux only; run with
/// `cargo test -p enrichment-protocol --release -- --ignored --nocapture memory_per_connection`.
#[test]
#[ignore]
fn zstd_stream_memory_per_connection() {
    fn rss_bytes() -> usize {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
        let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
        pages * 4096
    }
    const N: usize = 2000;
    let hello = br#"{"op":10,"d":{"heartbeat_interval":41250},"s":null,"t":null}"#.to_vec();
    let ready: Vec<u8> = (0..2000u32)
        .flat_map(|i| {
            format!("{{\"id\":\"{}\",\"unavailable\":true}},", 10_000_000 + i).into_bytes()
        })
        .collect();
    let dispatches = messages();
    // zstd first: the allocator may hand freed contexts' pages to the next kind.
    for kind in [
        TransportCompression::ZstdStream,
        TransportCompression::ZlibStream,
    ] {
        let before = rss_bytes();
        let mut held = Vec::with_capacity(N);
        for _ in 0..N {
            let mut c = Compressor::new(kind).unwrap().unwrap();
            c.compress(&hello).unwrap();
            c.compress(&ready).unwrap();
            for m in &dispatches {
                c.compress(m).unwrap();
            }
            held.push(c);
        }
        let per = (rss_bytes() - before) / N;
        let allocated = match &held[0] {
            Compressor::Zstd(z) => z.allocated(),
            Compressor::Zlib(_) => 0,
        };
        println!("{kind:?}: {per} bytes resident per connection (zstd allocated: {allocated})");
        drop(held);
    }
}
