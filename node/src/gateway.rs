//! The gateway listener: a lean tokio WebSocket server on its own port.
//!
//! Each accepted socket becomes one task — the connection actor — that owns the socket and its
//! [`Connection`] state machine. The task waits on three things: a frame from the client, its
//! session's signal that dispatches are queued, and its heartbeat deadline. When woken for
//! dispatches it takes everything queued, splices each frame's sequence number onto the shared
//! prefix, frames the lot into one buffer and writes it with one system call (`Writer`). No
//! task, buffer or timer exists per connection beyond that one task, the tungstenite stream
//! (reading; its buffer is sized by `[gateway] read_buffer_bytes`), the output buffer (kept up
//! to `write_buffer_bytes` between writes, none by default) and the session.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crossbeam_utils::CachePadded;
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use enrichment_actors::gateway::connection::Inbound;
use enrichment_actors::gateway::{Close, Connection, GatewayService};
use enrichment_protocol::gateway::{
    CloseCode, Compressor, ConnectParams, Encoding, TransportCompression, dispatch_len,
};
use futures::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{
    CloseCode as WsCloseCode, Data, OpCode,
};
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::config::GatewayConfig as ListenerConfig;

/// A running gateway listener.
#[derive(Debug)]
pub struct GatewayServer {
    pub addr: SocketAddr,
    drain: watch::Sender<bool>,
    open: Arc<AtomicUsize>,
    accept: tokio::task::JoinHandle<()>,
    sweeper: tokio::task::JoinHandle<()>,
}

#[derive(Clone, Copy, Debug)]
struct Settings {
    ws: WebSocketConfig,
    send_buffer: usize,
    write_buffer: usize,
    write_timeout: Duration,
    max_connections: usize,
}

impl GatewayServer {
    /// Starts accepting on a bound listener.
    pub fn start(
        std_listener: std::net::TcpListener,
        svc: Arc<GatewayService>,
        cfg: &ListenerConfig,
    ) -> anyhow::Result<GatewayServer> {
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let listener = TcpListener::from_std(std_listener)?;
        let mut ws = WebSocketConfig::default();
        ws.read_buffer_size = cfg.read_buffer_bytes.max(64);
        // tungstenite writes only its own frames (pong, close); ours bypass its buffer.
        ws.write_buffer_size = 0;
        // Bounded per connection: the outbox cap plus one frame of slack.
        ws.max_write_buffer_size = cfg.outbox_bytes + (1 << 20);
        // Oversized frames are refused with 4002 by the state machine; this cap only stops a
        // client from making us buffer megabytes first.
        ws.max_message_size = Some(cfg.max_inbound_bytes.max(4096) * 4);
        ws.max_frame_size = Some(cfg.max_inbound_bytes.max(4096) * 4);
        let settings = Settings {
            ws,
            send_buffer: cfg.send_buffer_bytes,
            write_buffer: cfg.write_buffer_bytes,
            write_timeout: Duration::from_secs(cfg.write_timeout_secs),
            max_connections: cfg.max_connections,
        };
        let (drain, drain_rx) = watch::channel(false);
        let open = Arc::new(AtomicUsize::new(0));
        let accept = tokio::spawn(accept_loop(
            listener,
            svc.clone(),
            settings,
            drain_rx,
            open.clone(),
        ));
        let sweeper = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                svc.sweep(Instant::now()).await;
            }
        });
        tracing::info!(%addr, "gateway listening");
        Ok(GatewayServer {
            addr,
            drain,
            open,
            accept,
            sweeper,
        })
    }

    /// Open connections.
    pub fn connections(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Whether the listener is draining (see [`GatewayServer::start_draining`]).
    pub fn is_draining(&self) -> bool {
        *self.drain.borrow()
    }

    /// Sends RECONNECT (op 7) and a resumable close (4000) to every connection, and from now on
    /// refuses new connections (the TCP connection is closed before the WebSocket handshake),
    /// so clients reconnect to another node. Returns at once; sessions stay resumable.
    pub fn start_draining(&self) {
        self.drain.send_replace(true);
    }

    /// Stops accepting, sends RECONNECT (op 7) to every connection and closes them, waiting
    /// at most `grace` for them to finish.
    pub async fn drain(&self, grace: Duration) {
        self.drain.send_replace(true);
        self.accept.abort();
        let deadline = Instant::now() + grace;
        while self.connections() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.sweeper.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    svc: Arc<GatewayService>,
    settings: Settings,
    drain: watch::Receiver<bool>,
    open: Arc<AtomicUsize>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                if *drain.borrow() || open.load(Ordering::Relaxed) >= settings.max_connections {
                    metrics::counter!("enrichment_gateway_refused_total").increment(1);
                    drop(stream);
                    continue;
                }
                open.fetch_add(1, Ordering::Relaxed);
                metrics::gauge!("enrichment_gateway_connections").increment(1.0);
                let svc = svc.clone();
                let drain = drain.clone();
                let open = open.clone();
                tokio::spawn(async move {
                    serve(stream, svc, settings, drain).await;
                    open.fetch_sub(1, Ordering::Relaxed);
                    metrics::gauge!("enrichment_gateway_connections").decrement(1.0);
                });
            }
            Err(e) => {
                // Out of file descriptors or similar: back off instead of spinning.
                tracing::warn!(error = %e, "gateway accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

type Ws = WebSocketStream<TcpStream>;

/// Per-connection output: the compression context (zlib-stream or zstd-stream, when asked for)
/// and the buffers of one write.
///
/// Server frames are unmasked, so a WebSocket frame is a header and the payload as is. The
/// writer formats every frame of a wake-up (header by tungstenite's [`FrameHeader`], payload
/// copied straight from the session's shared prefix with its sequence number spliced on) into
/// one buffer and hands that to the socket in one write. Going through tungstenite's `Sink`
/// instead costs an allocation, a UTF-8 check, a copy into its own buffer and two waker
/// registrations per frame, which at tens of thousands of frames per event was most of the
/// writer's time. tungstenite still owns the read side and the frames it writes itself (pong,
/// close); `serve` flushes those before any write of ours, so frames never interleave.
struct Writer {
    encoding: Encoding,
    compressor: Option<Box<Compressor>>,
    /// Whole frames, headers included, for the next socket write.
    out: BytesMut,
    /// The capacity of `out` kept between writes (`[gateway] write_buffer_bytes`).
    kept: usize,
    /// For a compressed connection: every payload of a wake-up, copied out under the session's
    /// lock and compressed after it is released (a compressed frame's length is known only
    /// once it is compressed, so it cannot be framed in place like a plain one). `ends[i]` is
    /// where payload `i` ends.
    payloads: BytesMut,
    ends: Vec<usize>,
    /// A write failed or timed out part-way: the stream may end inside a frame, so nothing
    /// more (not even a close frame) may be written to it.
    torn: bool,
}

/// A counter bumped by every connection on every write, from every worker thread. One atomic
/// shared by all of them costs a cache-line transfer between cores per write, which at one
/// frame per write was as much as the rest of the user-space write path; so each thread adds to
/// its own cache line, and a scrape of `/metrics` sums them ([`publish_counters`]).
struct SpreadCounter {
    shards: [CachePadded<AtomicU64>; SHARDS],
}

const SHARDS: usize = 16;

thread_local! {
    /// This thread's shard of every [`SpreadCounter`], dealt out in turn.
    static SHARD: usize = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS
    };
}

impl SpreadCounter {
    const fn new() -> SpreadCounter {
        SpreadCounter {
            shards: [const { CachePadded::new(AtomicU64::new(0)) }; SHARDS],
        }
    }

    fn add(&self, n: u64) {
        let i = SHARD.with(|s| *s);
        self.shards[i].fetch_add(n, Ordering::Relaxed);
    }

    fn sum(&self) -> u64 {
        self.shards.iter().map(|s| s.load(Ordering::Relaxed)).sum()
    }
}

/// Frames written to gateway sockets, and the writes that carried them, by every gateway
/// listener of the process (like the metrics recorder, shared by nodes in one test process).
static FRAMES_WRITTEN: SpreadCounter = SpreadCounter::new();
static WRITES: SpreadCounter = SpreadCounter::new();

/// Sets the gateway's write counters in the metrics registry, for a scrape.
pub fn publish_counters() {
    metrics::counter!("enrichment_gateway_frames_written_total").absolute(FRAMES_WRITTEN.sum());
    metrics::counter!("enrichment_gateway_writes_total").absolute(WRITES.sum());
}

impl Writer {
    /// Fails only when a compression context cannot be allocated.
    fn new(
        encoding: Encoding,
        compress: TransportCompression,
        kept: usize,
    ) -> Result<Writer, Close> {
        let compressor = Compressor::new(compress).map_err(|e| {
            tracing::warn!(error = %e, "gateway compression unavailable");
            Close::from(CloseCode::UnknownError)
        })?;
        Ok(Writer {
            encoding,
            compressor: compressor.map(Box::new),
            out: BytesMut::new(),
            kept,
            payloads: BytesMut::new(),
            ends: Vec::new(),
            torn: false,
        })
    }

    /// The frame opcode of every message this connection gets.
    fn opcode(&self) -> OpCode {
        if self.compressor.is_some() || self.encoding == Encoding::MsgPack {
            OpCode::Data(Data::Binary)
        } else {
            OpCode::Data(Data::Text)
        }
    }

    /// Appends one message, compressed first on a compressed connection: one WebSocket
    /// message per gateway message, as both zlib-stream and zstd-stream clients expect.
    fn frame(&mut self, message: &[u8]) -> Result<(), Close> {
        let opcode = self.opcode();
        match &mut self.compressor {
            Some(c) => {
                let compressed = c.compress(message).map_err(|e| {
                    tracing::warn!(error = %e, "gateway compression failed");
                    Close::from(CloseCode::UnknownError)
                })?;
                push_frame(&mut self.out, opcode, &compressed);
            }
            None => push_frame(&mut self.out, opcode, message),
        }
        Ok(())
    }

    /// Sends control frames, then every queued dispatch, in one socket write.
    async fn write(
        &mut self,
        ws: &mut Ws,
        conn: &Connection,
        controls: Vec<Vec<u8>>,
        timeout: Duration,
    ) -> Result<(), Close> {
        self.out.clear();
        for c in &controls {
            self.frame(c)?;
        }
        let mut n = controls.len();
        n += if self.compressor.is_none() {
            let (opcode, encoding, out) = (self.opcode(), self.encoding, &mut self.out);
            conn.drain_with(|seq, prefix| {
                let len = dispatch_len(encoding, prefix.len(), seq);
                push_header(out, opcode, len);
                conn.finish(seq, prefix, out);
            })?
        } else {
            self.payloads.clear();
            self.ends.clear();
            let (payloads, ends) = (&mut self.payloads, &mut self.ends);
            let n = conn.drain_with(|seq, prefix| {
                conn.finish(seq, prefix, payloads);
                ends.push(payloads.len());
            })?;
            let payloads = std::mem::take(&mut self.payloads);
            let mut start = 0;
            let mut framed = Ok(());
            for i in 0..self.ends.len() {
                let end = self.ends[i];
                framed = self.frame(&payloads[start..end]);
                if framed.is_err() {
                    break;
                }
                start = end;
            }
            self.payloads = payloads;
            framed?;
            n
        };
        if n == 0 {
            return Ok(());
        }
        let result = tokio::time::timeout(timeout, ws.get_mut().write_all(&self.out)).await;
        // A burst's worth of buffer would otherwise stay with every connection that saw one.
        if self.out.capacity() > self.kept {
            self.out = BytesMut::new();
        }
        if self.payloads.capacity() > self.kept {
            self.payloads = BytesMut::new();
        }
        match result {
            Ok(Ok(())) => {
                FRAMES_WRITTEN.add(n as u64);
                WRITES.add(1);
                Ok(())
            }
            Ok(Err(_)) => {
                self.torn = true;
                Err(Close::from(CloseCode::UnknownError))
            }
            Err(_) => {
                self.torn = true;
                Err(WRITE_TIMEOUT)
            }
        }
    }
}

/// Appends one unmasked, unfragmented server frame.
fn push_frame(out: &mut BytesMut, opcode: OpCode, payload: &[u8]) {
    push_header(out, opcode, payload.len());
    out.extend_from_slice(payload);
}

/// Appends the header of an unmasked, unfragmented server frame of `len` payload bytes.
fn push_header(out: &mut BytesMut, opcode: OpCode, len: usize) {
    let header = FrameHeader {
        opcode,
        ..FrameHeader::default()
    };
    // Formatting into memory cannot fail.
    let _ = header.format(len as u64, &mut (&mut *out).writer());
}

/// A write blocked longer than `write_timeout_secs`: the client is not reading.
const WRITE_TIMEOUT: Close = Close {
    code: 4000,
    reason: "Write timed out; resume to continue.",
};

/// Sends a close frame, unless a torn write (`torn`) may have left the stream inside a frame.
async fn close(ws: &mut Ws, torn: bool, close: Close) {
    if torn {
        return;
    }
    let frame = CloseFrame {
        code: WsCloseCode::from(close.code),
        reason: close.reason.into(),
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(Some(frame))).await;
}

async fn serve(
    stream: TcpStream,
    svc: Arc<GatewayService>,
    settings: Settings,
    mut drain: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    if settings.send_buffer > 0 {
        let _ = socket2::SockRef::from(&stream).set_send_buffer_size(settings.send_buffer);
    }
    let mut query: Option<String> = None;
    // Boxed, like every rarely taken await below: the task's future is as large as its largest
    // await, and every idle connection would otherwise carry that size for its whole life.
    let handshake = Box::pin(tokio_tungstenite::accept_hdr_async_with_config(
        stream,
        |req: &Request, resp: Response| {
            query = req.uri().query().map(str::to_owned);
            Ok(resp)
        },
        Some(settings.ws),
    ));
    let mut ws = match tokio::time::timeout(Duration::from_secs(10), handshake).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "gateway handshake failed");
            return;
        }
        Err(_) => return,
    };
    let params = match ConnectParams::parse(query.as_deref()) {
        Ok(p) => p,
        Err(code) => {
            return Box::pin(close(&mut ws, false, code.into())).await;
        }
    };
    drop(query);
    let mut writer = match Writer::new(params.encoding, params.compress, settings.write_buffer) {
        Ok(w) => w,
        Err(c) => return Box::pin(close(&mut ws, false, c)).await,
    };
    let mut conn = Connection::new(svc, params, Instant::now());
    let hello = conn.hello();
    if writer
        .write(&mut ws, &conn, vec![hello], settings.write_timeout)
        .await
        .is_err()
    {
        return;
    }
    let mut client_code = None;
    // Made once and re-armed only when the heartbeat deadline moves: creating a timer and a
    // drain subscription on every wake-up costs more than the wake-up's own work when thousands
    // of connections wake for each event.
    let heartbeat = tokio::time::sleep_until(tokio::time::Instant::from_std(conn.next_tick()));
    tokio::pin!(heartbeat);
    let drained = drain.changed();
    tokio::pin!(drained);
    loop {
        let deadline = tokio::time::Instant::from_std(conn.next_tick());
        if heartbeat.deadline() != deadline {
            heartbeat.as_mut().reset(deadline);
        }
        let session = conn.session().cloned();
        let outcome: Result<Vec<Vec<u8>>, Close> = tokio::select! {
            _ = &mut drained => {
                let reconnect = conn.reconnect();
                let _ = writer.write(&mut ws, &conn, vec![reconnect], settings.write_timeout).await;
                Err(Close::RECONNECT)
            }
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(t))) => Box::pin(conn.receive(Inbound::Text(t.as_bytes()), Instant::now())).await,
                Some(Ok(Message::Binary(b))) => Box::pin(conn.receive(Inbound::Binary(&b), Instant::now())).await,
                Some(Ok(Message::Close(frame))) => {
                    client_code = frame.map(|f| u16::from(f.code));
                    // tungstenite has queued the answering Close frame (RFC 6455 5.5.1);
                    // send it, so the client sees a clean close rather than a dropped socket.
                    let _ = Box::pin(tokio::time::timeout(Duration::from_secs(2), ws.flush())).await;
                    break;
                }
                // tungstenite has queued the pong; send it now, so that no frame of ours
                // can start while part of it waits in tungstenite's buffer.
                Some(Ok(Message::Ping(_))) => match Box::pin(tokio::time::timeout(settings.write_timeout, ws.flush())).await {
                    Ok(Ok(())) => Ok(Vec::new()),
                    _ => {
                        writer.torn = true;
                        Err(WRITE_TIMEOUT)
                    }
                },
                Some(Ok(_)) => Ok(Vec::new()),
                Some(Err(WsError::Capacity(_))) => Err(CloseCode::DecodeError.into()),
                Some(Err(_)) | None => break,
            },
            _ = async {
                match &session {
                    Some(s) => s.notified().await,
                    None => std::future::pending().await,
                }
            } => Ok(Vec::new()),
            _ = &mut heartbeat => conn.tick(Instant::now()).map(|f| f.into_iter().collect()),
        };
        drop(session);
        let result = match outcome {
            Ok(controls) => {
                writer
                    .write(&mut ws, &conn, controls, settings.write_timeout)
                    .await
            }
            Err(c) => Err(c),
        };
        if let Err(c) = result {
            if c == Close::SLOW_CONSUMER || c == WRITE_TIMEOUT {
                metrics::counter!("enrichment_gateway_slow_consumers_total").increment(1);
            }
            Box::pin(close(&mut ws, writer.torn, c)).await;
            break;
        }
    }
    Box::pin(conn.closed(client_code, Instant::now())).await;
}
