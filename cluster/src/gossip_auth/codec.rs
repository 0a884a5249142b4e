//! chitchat's own envelope encoding, reached through its public UDP socket.
//!
//! chitchat 0.13 encodes a [`ChitchatEnvelope`] only inside its transports: the envelope's
//! `serialize`/`deserialize` are crate-private and it implements neither [`Serializable`] nor
//! [`Deserializable`]. Its public [`UdpSocket`] does both, though, so this codec owns one bound
//! to loopback and a plain socket beside it: to encode, the chitchat socket sends the envelope
//! to the plain one, which reads the bytes; to decode, the plain socket sends bytes to the
//! chitchat one, which reads the envelope. The bytes on the wire are chitchat's, unchanged,
//! and no part of its format is restated here. Two loopback datagrams per gossip datagram is
//! nothing at gossip rates. Should chitchat make its encoding public, this module is replaced
//! by two calls.
//!
//! chitchat's socket silently drops bytes it cannot decode, so a decode would wait forever for
//! an envelope that never comes. Each decode is therefore followed by a *marker*: the encoding
//! of a version-0 `BadCluster` envelope, which has no body. Reading the marker first means the
//! bytes did not decode. A datagram that itself begins with the marker's bytes *is* that
//! envelope (nothing follows the header of a `BadCluster`) and is answered without the detour,
//! so the marker is never ambiguous.
//!
//! chitchat's server drops a pending `recv` whenever its gossip timer fires, so decoding keeps
//! its progress in the codec and resumes on the next call. Anything unexpected (a datagram
//! lost on loopback, a reply out of order) marks the codec broken, and it is rebuilt on fresh
//! sockets: what was in flight is lost, as a datagram on the network can be.
//!
//! [`Serializable`]: chitchat::Serializable
//! [`Deserializable`]: chitchat::Deserializable

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use chitchat::transport::{RecvOutcome, Socket, UdpSocket};
use chitchat::{ChitchatEnvelope, ChitchatMessage, ProtocolVersion};
use tokio::time::timeout;

/// A loopback datagram arrives in microseconds; waiting this long means it was lost.
const LOOPBACK_PATIENCE: Duration = Duration::from_secs(1);

const LOOPBACK: ([u8; 4], u16) = ([127, 0, 0, 1], 0);

/// The envelope whose encoding is the decode marker.
fn marker_envelope() -> ChitchatEnvelope {
    ChitchatEnvelope {
        version: ProtocolVersion::V0,
        message: ChitchatMessage::BadCluster,
    }
}

/// Where a decode stands, kept across cancelled calls.
#[derive(Debug, Default)]
pub(super) enum Decoding {
    #[default]
    Idle,
    /// Bytes and marker sent; `decoded` holds the envelope once chitchat has read it.
    Pending { decoded: Option<ChitchatEnvelope> },
}

/// What a decode gave.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded {
    Envelope(ChitchatEnvelope),
    /// chitchat could not read the bytes.
    Invalid,
}

/// The loopback pair, rebuilt when broken.
struct Pipe {
    chitchat_side: UdpSocket,
    chitchat_addr: SocketAddr,
    plain_side: tokio::net::UdpSocket,
    plain_addr: SocketAddr,
}

impl Pipe {
    async fn open() -> anyhow::Result<Pipe> {
        let chitchat_side = UdpSocket::open(LOOPBACK.into()).await?;
        let chitchat_addr = chitchat_side.local_addr()?;
        let plain_side = tokio::net::UdpSocket::bind(SocketAddr::from(LOOPBACK))
            .await
            .context("cannot bind the gossip codec's loopback socket")?;
        let plain_addr = plain_side.local_addr()?;
        Ok(Pipe {
            chitchat_side,
            chitchat_addr,
            plain_side,
            plain_addr,
        })
    }

    /// The next datagram the chitchat side sent to the plain side, into `buf`.
    async fn read_encoded(&self, buf: &mut [u8]) -> anyhow::Result<usize> {
        loop {
            let (len, from) = timeout(LOOPBACK_PATIENCE, self.plain_side.recv_from(buf))
                .await
                .context("encoded envelope lost on loopback")??;
            // Another local process may write to a loopback port; only our pair counts.
            if from == self.chitchat_addr {
                return Ok(len);
            }
        }
    }

    /// The next envelope the plain side sent to the chitchat side.
    async fn read_decoded(&mut self) -> anyhow::Result<ChitchatEnvelope> {
        loop {
            let RecvOutcome {
                from_addr,
                envelope,
                ..
            } = timeout(LOOPBACK_PATIENCE, self.chitchat_side.recv())
                .await
                .context("forwarded envelope lost on loopback")??;
            if from_addr == self.plain_addr {
                return Ok(envelope);
            }
        }
    }
}

/// Encodes and decodes chitchat envelopes with chitchat's own code (see the module docs).
pub(crate) struct EnvelopeCodec {
    pipe: Option<Pipe>,
    marker: Vec<u8>,
    pub(super) decoding: Decoding,
    /// Set while an encode is under way; still set at the next call means it was cancelled,
    /// and its bytes may be waiting on the plain side.
    encoding: bool,
    buf: Box<[u8]>,
}

impl std::fmt::Debug for EnvelopeCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvelopeCodec")
            .field("decoding", &self.decoding)
            .field("broken", &self.pipe.is_none())
            .finish_non_exhaustive()
    }
}

impl EnvelopeCodec {
    pub(crate) async fn open(buffer_bytes: usize) -> anyhow::Result<EnvelopeCodec> {
        let mut codec = EnvelopeCodec {
            pipe: Some(Pipe::open().await?),
            marker: Vec::new(),
            decoding: Decoding::Idle,
            encoding: false,
            buf: vec![0u8; buffer_bytes].into_boxed_slice(),
        };
        let mut marker = Vec::new();
        codec.encode(marker_envelope(), &mut marker).await?;
        codec.marker = marker;
        Ok(codec)
    }

    /// Appends chitchat's encoding of `envelope` to `out`.
    pub(crate) async fn encode(
        &mut self,
        envelope: ChitchatEnvelope,
        out: &mut Vec<u8>,
    ) -> anyhow::Result<()> {
        if self.encoding {
            self.pipe = None;
        }
        self.encoding = true;
        let result = self.encode_on_pipe(envelope, out).await;
        if result.is_err() {
            self.pipe = None;
        }
        self.encoding = false;
        result
    }

    async fn encode_on_pipe(
        &mut self,
        envelope: ChitchatEnvelope,
        out: &mut Vec<u8>,
    ) -> anyhow::Result<()> {
        self.ensure_pipe().await?;
        let pipe = self.pipe.as_mut().context("gossip codec closed")?;
        let plain_addr = pipe.plain_addr;
        pipe.chitchat_side.send(plain_addr, envelope).await?;
        let len = pipe.read_encoded(&mut self.buf).await?;
        out.extend_from_slice(&self.buf[..len]);
        Ok(())
    }

    /// chitchat's reading of `bytes`. Cancel-safe: a call dropped half-way resumes the same
    /// decode on the next call, which must pass the same bytes.
    pub(crate) async fn decode(&mut self, bytes: &[u8]) -> anyhow::Result<Decoded> {
        if matches!(self.decoding, Decoding::Idle) {
            if bytes.starts_with(&self.marker) {
                return Ok(Decoded::Envelope(marker_envelope()));
            }
            self.ensure_pipe().await?;
            let pipe = self.pipe.as_ref().context("gossip codec closed")?;
            // Until the reactor has seen the socket writable, tokio's `try_send_to` refuses
            // without trying. Waiting for that changes nothing, so it may be cancelled.
            pipe.plain_side.writable().await?;
            // Sent without awaiting in between, so a cancelled call cannot leave the bytes
            // without their marker. Loopback does not hold back a datagram of this size; if it
            // does, the pipe is rebuilt and this datagram counts as lost.
            let sent = pipe
                .plain_side
                .try_send_to(bytes, pipe.chitchat_addr)
                .and_then(|_| {
                    pipe.plain_side
                        .try_send_to(&self.marker, pipe.chitchat_addr)
                });
            if let Err(err) = sent {
                self.pipe = None;
                return Err(err).context("cannot forward gossip to the codec");
            }
            self.decoding = Decoding::Pending { decoded: None };
        }
        loop {
            let Some(pipe) = self.pipe.as_mut() else {
                self.decoding = Decoding::Idle;
                bail!("gossip codec broken mid-decode");
            };
            let envelope = match pipe.read_decoded().await {
                Ok(envelope) => envelope,
                Err(err) => {
                    self.pipe = None;
                    self.decoding = Decoding::Idle;
                    return Err(err);
                }
            };
            let is_marker = envelope == marker_envelope();
            let Decoding::Pending { decoded } = &mut self.decoding else {
                bail!("gossip codec lost its decode state");
            };
            match (is_marker, decoded.take()) {
                (true, Some(envelope)) => {
                    self.decoding = Decoding::Idle;
                    return Ok(Decoded::Envelope(envelope));
                }
                (true, None) => {
                    self.decoding = Decoding::Idle;
                    return Ok(Decoded::Invalid);
                }
                (false, None) => *decoded = Some(envelope),
                (false, Some(_)) => {
                    // Two envelopes before one marker: the pair is out of step.
                    self.pipe = None;
                    self.decoding = Decoding::Idle;
                    bail!("gossip codec out of step");
                }
            }
        }
    }

    /// Rebuilds the pipe if it broke.
    async fn ensure_pipe(&mut self) -> anyhow::Result<()> {
        if self.pipe.is_none() {
            self.decoding = Decoding::Idle;
            self.pipe = Some(Pipe::open().await?);
        }
        Ok(())
    }

    #[cfg(test)]
    pub(crate) fn break_pipe(&mut self) {
        self.pipe = None;
    }
}
