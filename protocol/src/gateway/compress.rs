//! Transport compression of the gateway (`compress=` in the connect URL), both sides.
//!
//! Discord offers two, and so do we; either keeps one compression context for the whole
//! connection, so later messages are coded against what came before (a MESSAGE_CREATE after a
//! READY is mostly back-references):
//! - `zlib-stream` ([`ZlibStream`], [`ZlibInflater`]): one deflate context; every message ends
//!   in a sync flush (`00 00 ff ff`), which is how a client knows it has a whole message.
//! - `zstd-stream` ([`ZstdStream`], [`ZstdDecoder`]): one zstd frame that is never ended while
//!   the connection lives; every gateway message is one WebSocket message holding exactly the
//!   bytes of that message, flushed (`ZSTD_e_flush`) so it decodes fully on arrival.
//!
//! [`Compressor`] and [`Decompressor`] pick one of them from a [`TransportCompression`], so
//! the server's writer and the SDK's reader have one code path for both.
//!
//! Memory: a zstd context sized by its defaults for level 1 keeps a 512 KiB window plus a block
//! of input and output per connection. [`ZstdStream`] caps the window at 2^[`ZSTD_WINDOW_LOG`]
//! bytes (128 KiB), which caps the block too: its context allocates 0.93 MiB
//! ([`ZstdStream::allocated`]), of which only the pages the traffic has touched are resident.
//! Measured (`zstd_stream_memory_per_connection`, ignored by default; 2000 contexts, each after a
//! HELLO, a 70 KB READY and 50 dispatches): 0.27 MiB resident per connection for zstd-stream,
//! 0.20 MiB for zlib-stream. A window of 64 KiB would bring zstd to zlib's figure; 256 KiB costs
//! 0.33 MiB.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use zstd::zstd_safe::{self, CCtx, CParameter, DCtx, InBuffer, OutBuffer};

/// What a client asked for with `compress=` in the connect URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum TransportCompression {
    /// No `compress` (or an empty one): frames as they are.
    #[default]
    None,
    /// `compress=zlib-stream`.
    ZlibStream,
    /// `compress=zstd-stream`.
    ZstdStream,
}

impl TransportCompression {
    /// The value of `compress=`; `None` for a value we do not speak.
    pub fn from_query(value: &str) -> Option<TransportCompression> {
        match value {
            "" => Some(TransportCompression::None),
            "zlib-stream" => Some(TransportCompression::ZlibStream),
            "zstd-stream" => Some(TransportCompression::ZstdStream),
            _ => None,
        }
    }

    /// The value to put in `compress=`, if any.
    pub fn query_value(self) -> Option<&'static str> {
        match self {
            TransportCompression::None => None,
            TransportCompression::ZlibStream => Some("zlib-stream"),
            TransportCompression::ZstdStream => Some("zstd-stream"),
        }
    }
}

/// A compression context failed; the stream is unusable and the connection must end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("compression failed: {0}")]
pub struct CompressError(String);

/// The server side of one connection's transport compression.
#[derive(Debug)]
pub enum Compressor {
    Zlib(ZlibStream),
    Zstd(ZstdStream),
}

impl Compressor {
    /// The compressor for `kind`; `None` when frames go uncompressed.
    pub fn new(kind: TransportCompression) -> Result<Option<Compressor>, CompressError> {
        Ok(match kind {
            TransportCompression::None => None,
            TransportCompression::ZlibStream => Some(Compressor::Zlib(ZlibStream::new())),
            TransportCompression::ZstdStream => Some(Compressor::Zstd(ZstdStream::new()?)),
        })
    }

    /// Compresses one gateway message into what one WebSocket message carries.
    pub fn compress(&mut self, input: &[u8]) -> Result<Vec<u8>, CompressError> {
        match self {
            Compressor::Zlib(z) => Ok(z.compress(input)),
            Compressor::Zstd(z) => z.compress(input),
        }
    }
}

/// The client side of one connection's transport compression.
#[derive(Debug)]
pub enum Decompressor {
    Zlib(ZlibInflater),
    Zstd(ZstdDecoder),
}

impl Decompressor {
    /// The decompressor for `kind`; `None` when frames come uncompressed.
    pub fn new(kind: TransportCompression) -> Result<Option<Decompressor>, String> {
        Ok(match kind {
            TransportCompression::None => None,
            TransportCompression::ZlibStream => Some(Decompressor::Zlib(ZlibInflater::new())),
            TransportCompression::ZstdStream => Some(Decompressor::Zstd(ZstdDecoder::new()?)),
        })
    }

    /// Feeds one WebSocket message; returns the gateway message once it is whole (zlib-stream
    /// may split one across several; zstd-stream never does).
    pub fn push(&mut self, data: &[u8]) -> Result<Option<Vec<u8>>, String> {
        match self {
            Decompressor::Zlib(z) => z.push(data),
            Decompressor::Zstd(z) => z.push(data).map(Some),
        }
    }
}

/// The server side of `compress=zlib-stream`: one deflate context for the connection's life.
pub struct ZlibStream {
    z: Compress,
}

impl std::fmt::Debug for ZlibStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZlibStream")
            .field("total_in", &self.z.total_in())
            .finish()
    }
}

impl Default for ZlibStream {
    fn default() -> Self {
        Self::new()
    }
}

impl ZlibStream {
    pub fn new() -> Self {
        ZlibStream {
            z: Compress::new(Compression::fast(), true),
        }
    }

    /// Compresses one gateway message; the output ends with the sync-flush marker.
    pub fn compress(&mut self, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(input.len() / 2 + 64);
        let start = self.z.total_in();
        loop {
            let consumed = (self.z.total_in() - start) as usize;
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(256));
            }
            // In-memory deflate only fails on misuse of the stream, which this loop avoids.
            let _ = self
                .z
                .compress_vec(&input[consumed..], &mut out, FlushCompress::Sync);
            if (self.z.total_in() - start) as usize == input.len() && out.ends_with(&SYNC_FLUSH) {
                return out;
            }
        }
    }
}

/// Every zlib-stream message ends with these four bytes.
pub const SYNC_FLUSH: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The client side of `compress=zlib-stream`.
pub struct ZlibInflater {
    z: Decompress,
    pending: Vec<u8>,
}

impl std::fmt::Debug for ZlibInflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZlibInflater")
            .field("pending", &self.pending.len())
            .finish()
    }
}

impl Default for ZlibInflater {
    fn default() -> Self {
        Self::new()
    }
}

impl ZlibInflater {
    pub fn new() -> Self {
        ZlibInflater {
            z: Decompress::new(true),
            pending: Vec::new(),
        }
    }

    /// Feeds one WebSocket message; returns the inflated gateway message once the data ends
    /// with the sync-flush marker, `None` while it is still incomplete.
    pub fn push(&mut self, data: &[u8]) -> Result<Option<Vec<u8>>, String> {
        self.pending.extend_from_slice(data);
        if !self.pending.ends_with(&SYNC_FLUSH) {
            return Ok(None);
        }
        let input = std::mem::take(&mut self.pending);
        let mut out = Vec::with_capacity(input.len() * 4 + 64);
        let start = self.z.total_in();
        loop {
            let consumed = (self.z.total_in() - start) as usize;
            if out.capacity() - out.len() < 256 {
                out.reserve(out.capacity().max(1024));
            }
            let status = self
                .z
                .decompress_vec(&input[consumed..], &mut out, FlushDecompress::Sync)
                .map_err(|e| e.to_string())?;
            let done = (self.z.total_in() - start) as usize == input.len();
            if done && out.capacity() > out.len() {
                return Ok(Some(out));
            }
            if status == flate2::Status::StreamEnd {
                return Err("zlib stream ended".into());
            }
        }
    }
}

/// zstd's level for the gateway: its fastest regular one, as deflate's for zlib-stream. The
/// window, not the level, is what makes later messages small.
pub const ZSTD_LEVEL: i32 = 1;

/// log2 of the zstd window: 128 KiB, enough to reach back across the last few dozen dispatches
/// and READY's guild list, while a context costs a quarter of the default's window.
pub const ZSTD_WINDOW_LOG: u32 = 17;

/// The server side of `compress=zstd-stream`: one zstd frame for the connection's life.
pub struct ZstdStream {
    cctx: CCtx<'static>,
}

impl std::fmt::Debug for ZstdStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZstdStream")
            .field("allocated", &self.allocated())
            .finish()
    }
}

fn zstd_error(code: usize) -> String {
    zstd_safe::get_error_name(code).to_owned()
}

impl ZstdStream {
    pub fn new() -> Result<ZstdStream, CompressError> {
        let mut cctx = CCtx::try_create()
            .ok_or_else(|| CompressError("cannot allocate a zstd context".into()))?;
        for p in [
            CParameter::CompressionLevel(ZSTD_LEVEL),
            CParameter::WindowLog(ZSTD_WINDOW_LOG),
        ] {
            cctx.set_parameter(p)
                .map_err(|c| CompressError(zstd_error(c)))?;
        }
        Ok(ZstdStream { cctx })
    }

    /// Compresses one gateway message and flushes it (`ZSTD_e_flush`): the output holds the
    /// whole message, never part of the next, and the frame stays open for the next one.
    pub fn compress(&mut self, input: &[u8]) -> Result<Vec<u8>, CompressError> {
        let mut out: Vec<u8> = Vec::with_capacity(input.len() / 2 + 64);
        let mut src = InBuffer::around(input);
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(256));
            }
            let pos = out.len();
            let mut dst = OutBuffer::around_pos(&mut out, pos);
            let pending = self
                .cctx
                .compress_stream2(
                    &mut dst,
                    &mut src,
                    zstd_safe::zstd_sys::ZSTD_EndDirective::ZSTD_e_flush,
                )
                .map_err(|c| CompressError(zstd_error(c)))?;
            // 0: all input taken and everything flushed.
            if pending == 0 && src.pos() == input.len() {
                return Ok(out);
            }
        }
    }

    /// Bytes the context has allocated (its window, buffers and tables), per connection.
    pub fn allocated(&self) -> usize {
        self.cctx.sizeof()
    }
}

/// The client side of `compress=zstd-stream`.
pub struct ZstdDecoder {
    dctx: DCtx<'static>,
}

impl std::fmt::Debug for ZstdDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZstdDecoder").finish_non_exhaustive()
    }
}

impl ZstdDecoder {
    pub fn new() -> Result<ZstdDecoder, String> {
        let dctx = DCtx::try_create().ok_or("cannot allocate a zstd context")?;
        Ok(ZstdDecoder { dctx })
    }

    /// Decodes one WebSocket message: the whole gateway message it carries.
    pub fn push(&mut self, data: &[u8]) -> Result<Vec<u8>, String> {
        let mut out: Vec<u8> = Vec::with_capacity(data.len() * 4 + 64);
        let mut src = InBuffer::around(data);
        loop {
            if out.capacity() - out.len() < 256 {
                out.reserve(out.capacity().max(1024));
            }
            let pos = out.len();
            let mut dst = OutBuffer::around_pos(&mut out, pos);
            self.dctx
                .decompress_stream(&mut dst, &mut src)
                .map_err(zstd_error)?;
            // Output room left over with all input taken: the decoder has nothing more to give.
            if src.pos() == data.len() && out.len() < out.capacity() {
                return Ok(out);
            }
        }
    }
}

#[cfg(test)]
mod tests;
