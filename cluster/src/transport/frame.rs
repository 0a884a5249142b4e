//! The frame layout and its codec, and the encoding of control payloads.
//!
//! On the wire a frame is `len: u32` (big-endian, the length of what follows, as tokio-util's
//! `LengthDelimitedCodec` reads it), then `version: u8`, `kind: u8`, `seq: u64` (big-endian) and
//! the payload. Decoding hands the payload out as a slice of the read buffer: no copy.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec, LengthDelimitedCodecError};

/// The version byte every frame starts with. A receiver closes a link on any other.
pub const VERSION: u8 = 1;
/// Bytes of the header after the length prefix: version, kind, sequence number.
pub const HEADER_LEN: usize = 10;
/// Bytes of the length prefix.
pub(crate) const PREFIX_LEN: usize = 4;

/// The kinds of frame a caller sends and receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FrameKind {
    /// A MessagePack named map, see [`encode_control`].
    Control,
    /// Bytes encoded by the sender, delivered as they are.
    Fanout,
}

/// Every kind byte on the wire: the two a caller sees, and two the links use themselves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WireKind {
    Control = 0,
    Fanout = 1,
    /// An idle link's sign of life; its `seq` is the next number the sender will use.
    Keepalive = 2,
    /// A handshake message (a MessagePack named map); `seq` is 0.
    Handshake = 3,
}

impl WireKind {
    fn from_byte(byte: u8) -> Option<WireKind> {
        Some(match byte {
            0 => WireKind::Control,
            1 => WireKind::Fanout,
            2 => WireKind::Keepalive,
            3 => WireKind::Handshake,
            _ => return None,
        })
    }
}

impl From<FrameKind> for WireKind {
    fn from(kind: FrameKind) -> WireKind {
        match kind {
            FrameKind::Control => WireKind::Control,
            FrameKind::Fanout => WireKind::Fanout,
        }
    }
}

/// One frame, either direction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Frame {
    pub kind: WireKind,
    pub seq: u64,
    pub payload: Bytes,
}

impl Frame {
    /// Reads a frame body (what follows the length prefix).
    pub fn parse(mut body: Bytes) -> Result<Frame, FrameError> {
        if body.len() < HEADER_LEN {
            return Err(FrameError::Short(body.len()));
        }
        let version = body.get_u8();
        if version != VERSION {
            return Err(FrameError::UnknownVersion(version));
        }
        let kind_byte = body.get_u8();
        let kind = WireKind::from_byte(kind_byte).ok_or(FrameError::UnknownKind(kind_byte))?;
        let seq = body.get_u64();
        Ok(Frame {
            kind,
            seq,
            payload: body,
        })
    }
}

/// Why a frame could not be read or written. Any of these closes the link.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    TooLong { len: usize, max: usize },
    #[error("unknown frame version {0}")]
    UnknownVersion(u8),
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    #[error("frame of {0} bytes is shorter than its header")]
    Short(usize),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The link codec: `LengthDelimitedCodec` framing with the header above. The maximum length can
/// change on a live link (small during the handshake, the configured maximum after).
#[derive(Debug)]
pub(crate) struct FrameCodec {
    framing: LengthDelimitedCodec,
    max_frame_length: usize,
}

impl FrameCodec {
    pub fn new(max_frame_length: usize) -> FrameCodec {
        let max_frame_length = max_frame_length.min(u32::MAX as usize);
        let framing = LengthDelimitedCodec::builder()
            .length_field_length(PREFIX_LEN)
            .max_frame_length(max_frame_length)
            .new_codec();
        FrameCodec {
            framing,
            max_frame_length,
        }
    }

    pub fn set_max_frame_length(&mut self, max_frame_length: usize) {
        let max_frame_length = max_frame_length.min(u32::MAX as usize);
        self.framing.set_max_frame_length(max_frame_length);
        self.max_frame_length = max_frame_length;
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        match self.framing.decode(src) {
            Ok(Some(body)) => Frame::parse(body.freeze()).map(Some),
            Ok(None) => Ok(None),
            // The framing refuses a length before reserving room for it, and leaves the prefix in
            // the buffer: read it back to report it.
            Err(error)
                if error
                    .get_ref()
                    .is_some_and(|inner| inner.is::<LengthDelimitedCodecError>()) =>
            {
                let len = src.get(..PREFIX_LEN).map_or(0, |prefix| {
                    u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]])
                });
                Err(FrameError::TooLong {
                    len: len as usize,
                    max: self.max_frame_length,
                })
            }
            Err(error) => Err(error.into()),
        }
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        let len = HEADER_LEN + frame.payload.len();
        if len > self.max_frame_length {
            return Err(FrameError::TooLong {
                len,
                max: self.max_frame_length,
            });
        }
        dst.reserve(PREFIX_LEN + len);
        dst.put_u32(len as u32);
        dst.put_u8(VERSION);
        dst.put_u8(frame.kind as u8);
        dst.put_u64(frame.seq);
        dst.extend_from_slice(&frame.payload);
        Ok(())
    }
}

/// Encodes a control payload as a MessagePack named map (field names, not positions, so either
/// side can add optional fields).
pub fn encode_control<M: Serialize + ?Sized>(
    message: &M,
) -> Result<Bytes, rmp_serde::encode::Error> {
    rmp_serde::to_vec_named(message).map(Bytes::from)
}

/// Decodes a control payload written by [`encode_control`].
pub fn decode_control<'a, M: Deserialize<'a>>(
    payload: &'a [u8],
) -> Result<M, rmp_serde::decode::Error> {
    rmp_serde::from_slice(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(frame: Frame, max: usize) -> BytesMut {
        let mut buf = BytesMut::new();
        FrameCodec::new(max).encode(frame, &mut buf).unwrap();
        buf
    }

    #[test]
    fn a_frame_is_a_length_delimited_record_with_version_kind_and_sequence_number() {
        let frame = Frame {
            kind: WireKind::Fanout,
            seq: 0x0102_0304_0506_0708,
            payload: Bytes::from_static(b"hello"),
        };
        let mut buf = encoded(frame.clone(), 1024);
        assert_eq!(buf.len(), PREFIX_LEN + HEADER_LEN + 5);
        assert_eq!(
            &buf[..],
            b"\x00\x00\x00\x0f\x01\x01\x01\x02\x03\x04\x05\x06\x07\x08hello"
        );
        // tokio-util's own codec reads the same record.
        let body = LengthDelimitedCodec::new()
            .decode(&mut buf.clone())
            .unwrap()
            .unwrap();
        assert_eq!(Frame::parse(body.freeze()).unwrap(), frame);
        assert_eq!(FrameCodec::new(1024).decode(&mut buf).unwrap(), Some(frame));
        assert!(buf.is_empty());
    }

    #[test]
    fn a_partial_frame_waits_for_the_rest() {
        let frame = Frame {
            kind: WireKind::Control,
            seq: 7,
            payload: Bytes::from(vec![9u8; 100]),
        };
        let whole = encoded(frame.clone(), 1024);
        let mut codec = FrameCodec::new(1024);
        let mut buf = BytesMut::from(&whole[..50]);
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        buf.extend_from_slice(&whole[50..]);
        assert_eq!(codec.decode(&mut buf).unwrap(), Some(frame));
    }

    #[test]
    fn an_unknown_version_or_kind_is_an_error_not_a_frame() {
        let frame = Frame {
            kind: WireKind::Control,
            seq: 1,
            payload: Bytes::new(),
        };
        let mut buf = encoded(frame.clone(), 64);
        buf[4] = 2;
        assert!(matches!(
            FrameCodec::new(64).decode(&mut buf),
            Err(FrameError::UnknownVersion(2))
        ));
        let mut buf = encoded(frame, 64);
        buf[5] = 200;
        assert!(matches!(
            FrameCodec::new(64).decode(&mut buf),
            Err(FrameError::UnknownKind(200))
        ));
        let mut short = BytesMut::from(&b"\x00\x00\x00\x03\x01\x00\x00"[..]);
        assert!(matches!(
            FrameCodec::new(64).decode(&mut short),
            Err(FrameError::Short(3))
        ));
    }

    #[test]
    fn a_frame_over_the_limit_is_refused_on_both_sides_from_its_length_alone() {
        let big = Frame {
            kind: WireKind::Fanout,
            seq: 0,
            payload: Bytes::from(vec![0u8; 100]),
        };
        let mut buf = BytesMut::new();
        assert!(matches!(
            FrameCodec::new(64).encode(big.clone(), &mut buf),
            Err(FrameError::TooLong { len: 110, max: 64 })
        ));
        assert!(buf.is_empty());
        // Only the prefix has arrived: refused before the body is buffered.
        let whole = encoded(big, 1024);
        let mut prefix = BytesMut::from(&whole[..4]);
        assert!(matches!(
            FrameCodec::new(64).decode(&mut prefix),
            Err(FrameError::TooLong { len: 110, max: 64 })
        ));
    }

    #[test]
    fn control_payloads_are_named_maps() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Ping {
            guild_id: u64,
            note: String,
        }
        let ping = Ping {
            guild_id: 5,
            note: "hi".into(),
        };
        let bytes = encode_control(&ping).unwrap();
        assert_eq!(bytes[0], 0x82, "a fixmap of two entries");
        assert!(bytes.windows(8).any(|w| w == b"guild_id"));
        assert_eq!(decode_control::<Ping>(&bytes).unwrap(), ping);
        assert!(decode_control::<Ping>(b"\xc1").is_err());
    }
}
