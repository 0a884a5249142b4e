//! One gateway client connection, kept cheap so that the generator is not what limits a run.
//!
//! Each connection is one task: it connects (from a chosen loopback source address), reads
//! HELLO, IDENTIFYs, waits for READY and its GUILD_CREATEs, and then only counts what arrives
//! and heartbeats. Dispatches are recognised by their first bytes (`{"op":0,"t":"NAME"`, the
//! layout the server writes) and their sequence number is read from the frame's tail, so the
//! common frame is never parsed as JSON; any frame that does not look like that is decoded in
//! full instead.

use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use enrichment_protocol::gateway::{Encoding, Outbound, client_frame, op};
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::json;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::mix::splitmix64;
use crate::run::new_histogram;

/// A counter that wakes one waiter when it reaches an armed target, and remembers when.
#[derive(Debug, Default)]
pub struct Gate {
    count: AtomicU64,
    target: AtomicU64,
    reached_at: Mutex<Option<Instant>>,
    notify: Notify,
}

impl Gate {
    pub fn add(&self, n: u64) {
        let now_count = self.count.fetch_add(n, Ordering::AcqRel) + n;
        let target = self.target.load(Ordering::Acquire);
        if target != 0 && now_count >= target && now_count - n < target {
            *lock(&self.reached_at) = Some(Instant::now());
            self.notify.notify_one();
        }
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Acquire)
    }

    /// Sets the count to wait for. Arm before starting what will make the count move.
    pub fn arm(&self, target: u64) {
        *lock(&self.reached_at) = None;
        self.target.store(target, Ordering::Release);
        if self.count() >= target {
            *lock(&self.reached_at) = Some(Instant::now());
        }
    }

    /// Waits until the armed target is reached; returns when it was, or the count at `deadline`.
    pub async fn wait(&self, deadline: Instant) -> Result<Instant, u64> {
        let target = self.target.load(Ordering::Acquire);
        loop {
            if self.count() >= target {
                let at = *lock(&self.reached_at);
                return Ok(at.unwrap_or_else(Instant::now));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(self.count());
            }
            // Re-check at least every 100 ms: a stale wake-up or a race with `arm` only costs
            // one more loop.
            let step = (deadline - now).min(Duration::from_millis(100));
            let _ = tokio::time::timeout(step, self.notify.notified()).await;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The first eight distinct error messages of a run's connections, so a report with failures
/// says what they were.
#[derive(Debug, Default)]
pub struct ErrorSamples(Mutex<Vec<String>>);

impl ErrorSamples {
    pub fn add(&self, msg: String) {
        let mut e = lock(&self.0);
        if e.len() < 8 && !e.contains(&msg) {
            e.push(msg);
        }
    }

    pub fn samples(&self) -> Vec<String> {
        lock(&self.0).clone()
    }
}

/// Delivery latencies (µs), in a few shards so receivers rarely wait on one another. The
/// baseline generator's connections record into the same.
#[derive(Debug)]
pub struct Latencies {
    shards: Vec<Mutex<Histogram<u64>>>,
    /// Messages whose send timestamp is before this (ns since the epoch) are warmup.
    pub measure_from_ns: AtomicU64,
    pub epoch: Instant,
}

impl Latencies {
    pub fn new(epoch: Instant) -> anyhow::Result<Latencies> {
        Ok(Latencies {
            shards: (0..16)
                .map(|_| new_histogram().map(Mutex::new))
                .collect::<anyhow::Result<_>>()?,
            measure_from_ns: AtomicU64::new(u64::MAX),
            epoch,
        })
    }

    /// Empties the shards and records messages sent from `from` on (a sweep's next step).
    pub fn restart(&self, from: Instant) {
        for s in &self.shards {
            lock(s).reset();
        }
        let ns = from.saturating_duration_since(self.epoch).as_nanos() as u64;
        self.measure_from_ns.store(ns, Ordering::Relaxed);
    }

    /// Stops recording until the next [`Latencies::restart`].
    pub fn pause(&self) {
        self.measure_from_ns.store(u64::MAX, Ordering::Relaxed);
    }

    fn record(&self, conn: usize, sent_ns: u64, now: Instant) {
        self.record_all(conn, &[sent_ns], now);
    }

    /// Records messages sent at `sent_ns` (ns since the epoch) that connection `conn` read at
    /// `now`, taking its shard's lock once for them all.
    pub(crate) fn record_all(&self, conn: usize, sent_ns: &[u64], now: Instant) {
        let from = self.measure_from_ns.load(Ordering::Relaxed);
        let now_ns = now.saturating_duration_since(self.epoch).as_nanos() as u64;
        let mut h = None;
        for &ns in sent_ns.iter().filter(|&&ns| ns >= from) {
            let h = h.get_or_insert_with(|| lock(&self.shards[conn % self.shards.len()]));
            h.saturating_record((now_ns.saturating_sub(ns) / 1000).max(1));
        }
    }

    /// Everything recorded since the last `take`, merged; the shards start again empty.
    pub fn take(&self) -> anyhow::Result<Histogram<u64>> {
        let mut h = new_histogram()?;
        for s in &self.shards {
            let mut s = lock(s);
            h.add(&*s)
                .map_err(|e| anyhow::anyhow!("merging histograms: {e}"))?;
            s.reset();
        }
        Ok(h)
    }

    /// All shards merged.
    pub fn merged(&self) -> anyhow::Result<Histogram<u64>> {
        let mut h = new_histogram()?;
        for s in &self.shards {
            h.add(&*lock(s))
                .map_err(|e| anyhow::anyhow!("merging histograms: {e}"))?;
        }
        Ok(h)
    }
}

/// What every connection of a run shares.
#[derive(Debug)]
pub struct Shared {
    /// Connections that got READY and all their GUILD_CREATEs.
    pub identified: Gate,
    /// MESSAGE_CREATE dispatches received, all connections together.
    pub messages: Gate,
    /// Connections that failed to connect or identify, or ended before the run did.
    pub failed: AtomicU64,
    pub ended: AtomicU64,
    /// Every frame received after identifying.
    pub frames: AtomicU64,
    /// Per identified connection, what it received of the latency messages (pushed when it
    /// ends).
    pub arrivals: Mutex<Vec<(usize, Arrivals)>>,
    pub heartbeats_sent: AtomicU64,
    pub latencies: Option<Latencies>,
    /// Connections dropped by a storm that got RESUMED on a new connection.
    pub resumed: Gate,
    /// Connections dropped by a storm whose RESUME failed (refused, or no answer in time).
    pub resume_failed: AtomicU64,
    /// Connections told to stop reading, and of those, how many the server then closed.
    pub stalled: AtomicU64,
    /// Up to eight distinct error messages seen.
    pub errors: ErrorSamples,
}

impl Shared {
    pub fn new(latencies: Option<Latencies>) -> Shared {
        Shared {
            identified: Gate::default(),
            messages: Gate::default(),
            failed: AtomicU64::new(0),
            ended: AtomicU64::new(0),
            frames: AtomicU64::new(0),
            arrivals: Mutex::new(Vec::new()),
            heartbeats_sent: AtomicU64::new(0),
            latencies,
            resumed: Gate::default(),
            resume_failed: AtomicU64::new(0),
            stalled: AtomicU64::new(0),
            errors: ErrorSamples::default(),
        }
    }
}

/// Commands the driver broadcasts to every connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Control {
    /// Bumped to make every connection heartbeat now (acknowledging what it has received).
    pub beat: u64,
    /// Close with 1000 and end.
    pub stop: bool,
    /// Bumped to make the connections in `storm_range` drop their socket without a close
    /// frame (as a network failure would) and RESUME on a new one at once.
    pub storm: u64,
    pub storm_range: (usize, usize),
    /// Connections in this range stop reading from their socket for good (they still
    /// heartbeat): the slow consumers the server has to cut loose.
    pub stall_range: (usize, usize),
}

impl Control {
    fn stalls(&self, i: usize) -> bool {
        (self.stall_range.0..self.stall_range.1).contains(&i)
    }

    fn storms(&self, i: usize) -> bool {
        (self.storm_range.0..self.storm_range.1).contains(&i)
    }
}

/// How to reach the gateway.
#[derive(Clone, Debug)]
pub struct Target {
    /// The gateways connections are spread over, round-robin: each node's address and
    /// `ws://host:port/?v=10&encoding=json`.
    pub gateways: Vec<(SocketAddr, String)>,
    /// Loopback source addresses, used round-robin (more than one gives more local ports).
    pub sources: Vec<IpAddr>,
    pub intents: u64,
    pub identify_timeout: Duration,
    /// False: stop after HELLO and only heartbeat (what a connection costs without a session).
    pub identify: bool,
}

const DISPATCH: &[u8] = b"{\"op\":0,\"t\":\"";

/// What a server frame is, as far as the harness cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    MessageCreate,
    Ready,
    GuildCreate,
    Resumed,
    OtherDispatch,
    Control(u8),
    Undecodable,
}

/// Classifies a JSON server frame and reads its sequence number, without parsing it when it has
/// the server's usual layout (`{"op":0,"t":"NAME","d":...,"s":N}` or `{"op":N,...}`).
pub fn peek(bytes: &[u8]) -> (Kind, Option<u64>) {
    if let Some(rest) = bytes.strip_prefix(DISPATCH)
        && let Some(end) = rest.iter().position(|&b| b == b'"')
        && let Some(seq) = tail_seq(bytes)
    {
        let kind = match &rest[..end] {
            b"MESSAGE_CREATE" => Kind::MessageCreate,
            b"READY" => Kind::Ready,
            b"GUILD_CREATE" => Kind::GuildCreate,
            b"RESUMED" => Kind::Resumed,
            _ => Kind::OtherDispatch,
        };
        return (kind, Some(seq));
    }
    if let Some(rest) = bytes.strip_prefix(b"{\"op\":") {
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits > 0
            && let Some(code) = std::str::from_utf8(&rest[..digits])
                .ok()
                .and_then(|s| s.parse::<u8>().ok())
            && code != op::DISPATCH
        {
            return (Kind::Control(code), None);
        }
    }
    // Anything else: decode it properly.
    match Outbound::decode(Encoding::Json, bytes) {
        Ok(f) if f.op == op::DISPATCH => {
            let kind = match f.t.as_deref() {
                Some("MESSAGE_CREATE") => Kind::MessageCreate,
                Some("READY") => Kind::Ready,
                Some("GUILD_CREATE") => Kind::GuildCreate,
                Some("RESUMED") => Kind::Resumed,
                _ => Kind::OtherDispatch,
            };
            (kind, f.s)
        }
        Ok(f) => (Kind::Control(f.op), f.s),
        Err(_) => (Kind::Undecodable, None),
    }
}

/// The `N` of a frame ending in `,"s":N}`.
fn tail_seq(bytes: &[u8]) -> Option<u64> {
    let body = bytes.strip_suffix(b"}")?;
    let digits = body.iter().rev().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 19 {
        return None;
    }
    let (head, num) = body.split_at(body.len() - digits);
    if !head.ends_with(b",\"s\":") {
        return None;
    }
    std::str::from_utf8(num).ok()?.parse().ok()
}

/// The content marker latency messages carry: `lat <send ns since the run's epoch> <index> ...`,
/// where the index counts the run's messages and only grows within a channel.
pub const LATENCY_MARK: &str = "lat ";

/// The send timestamp and index of a latency message, found by a byte search for its content.
pub fn latency_mark(bytes: &[u8]) -> Option<(u64, u64)> {
    const KEY: &[u8] = b"\"content\":\"lat ";
    let at = find(bytes, KEY)? + KEY.len();
    let mut fields = bytes[at..].split(|&b| b == b' ').map(|f| {
        let digits = f.iter().take_while(|b| b.is_ascii_digit()).count();
        std::str::from_utf8(&f[..digits]).ok()?.parse().ok()
    });
    Some((fields.next()??, fields.next()??))
}

/// What one connection received of the latency messages: enough to tell at the end of a run
/// whether it got exactly the messages its guild was sent, each once, and in the same order as
/// every other session of its guild. (The order itself is the server's: posts in flight
/// together may be committed in either order, but then every session must see that order.)
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Arrivals {
    pub count: u64,
    /// A sum of a hash of each index: equal for equal sets (barring a 64-bit collision).
    pub set: u64,
    /// A hash of the sequence of indices: equal for equal orders.
    pub order: u64,
}

impl Arrivals {
    /// What each guild (or room) was sent, from its count of posts that got a 2xx and the sum
    /// of their hashed indices; `order` is left 0 (see [`check_arrivals`]).
    ///
    /// [`check_arrivals`]: super::modes::check_arrivals
    pub fn sent(per_channel: &[(AtomicU64, AtomicU64)]) -> Vec<Arrivals> {
        per_channel
            .iter()
            .map(|(count, set)| Arrivals {
                count: count.load(Ordering::Relaxed),
                set: set.load(Ordering::Relaxed),
                order: 0,
            })
            .collect()
    }

    pub fn observe(&mut self, index: u64) {
        self.count += 1;
        self.set = self.set.wrapping_add(splitmix64(index));
        self.order = splitmix64(self.order ^ index);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let first = *needle.first()?;
    let mut from = 0;
    while from + needle.len() <= hay.len() {
        let i = from + hay[from..].iter().position(|&b| b == first)?;
        if hay.get(i..i + needle.len())? == needle {
            return Some(i);
        }
        from = i + 1;
    }
    None
}

/// A client WebSocket over TCP; the baseline generator's connections are the same.
pub(crate) type Ws = WebSocketStream<TcpStream>;

pub(crate) fn ws_config() -> WebSocketConfig {
    // tungstenite zero-fills its read buffer up to this size on every read: keep it modest.
    WebSocketConfig::default()
        .read_buffer_size(16 * 1024)
        .write_buffer_size(0)
}

async fn connect(target: &Target, i: usize) -> anyhow::Result<Ws> {
    let source = target.sources[i % target.sources.len()];
    let (server, url) = &target.gateways[i % target.gateways.len()];
    connect_from(source, *server, url).await
}

/// Connects to `server` from the loopback address `source` and opens the WebSocket `url`.
pub(crate) async fn connect_from(
    source: IpAddr,
    server: SocketAddr,
    url: &str,
) -> anyhow::Result<Ws> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    let stream = socket.connect(server).await?;
    stream.set_nodelay(true)?;
    let (ws, _) =
        tokio_tungstenite::client_async_with_config(url, stream, Some(ws_config())).await?;
    Ok(ws)
}

async fn send_json(ws: &mut Ws, opcode: u8, d: serde_json::Value) -> anyhow::Result<()> {
    let bytes = client_frame(Encoding::Json, opcode, &d)?;
    ws.send(Message::Text(String::from_utf8(bytes)?.into()))
        .await?;
    Ok(())
}

/// The next text frame; an error when the connection ends.
pub(crate) async fn next_text(
    ws: &mut Ws,
) -> anyhow::Result<tokio_tungstenite::tungstenite::Utf8Bytes> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return Ok(t),
            Some(Ok(Message::Close(f))) => {
                anyhow::bail!("closed by the server: {f:?}")
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
            None => anyhow::bail!("connection ended"),
        }
    }
}

/// What a connection needs to resume its session on a new socket.
struct Resumable {
    session_id: Box<str>,
}

/// Connects and reads HELLO; returns the socket and the heartbeat interval.
async fn hello(target: &Target, i: usize) -> anyhow::Result<(Ws, Duration)> {
    let mut ws = connect(target, i).await?;
    let hello = next_text(&mut ws).await?;
    let hello = Outbound::decode(Encoding::Json, hello.as_bytes())
        .map_err(|e| anyhow::anyhow!("HELLO: {e}"))?;
    anyhow::ensure!(hello.op == op::HELLO, "first frame is op {}", hello.op);
    let interval = hello.d["heartbeat_interval"]
        .as_u64()
        .ok_or_else(|| anyhow::anyhow!("HELLO without heartbeat_interval"))?;
    Ok((ws, Duration::from_millis(interval)))
}

/// Connects and identifies; returns the socket, the heartbeat interval, the last sequence and
/// the session to resume.
async fn identify(
    target: &Target,
    i: usize,
    token: &str,
    guilds: usize,
) -> anyhow::Result<(Ws, Duration, Option<u64>, Option<Resumable>)> {
    let (mut ws, interval) = hello(target, i).await?;
    if !target.identify {
        return Ok((ws, interval, None, None));
    }
    send_json(
        &mut ws,
        op::IDENTIFY,
        json!({
            "token": token,
            "intents": target.intents,
            "properties": {"os": "linux", "browser": "enrichment-gateway-load", "device": "enrichment-gateway-load"},
        }),
    )
    .await?;
    let mut ready = None;
    let mut created = 0;
    let mut seq = None;
    while ready.is_none() || created < guilds {
        let t = next_text(&mut ws).await?;
        let (kind, s) = peek(t.as_bytes());
        seq = s.or(seq);
        match kind {
            Kind::Ready => {
                let f = Outbound::decode(Encoding::Json, t.as_bytes())
                    .map_err(|e| anyhow::anyhow!("READY: {e}"))?;
                let id = f.d["session_id"]
                    .as_str()
                    .ok_or_else(|| anyhow::anyhow!("READY without session_id"))?;
                ready = Some(Resumable {
                    session_id: id.into(),
                });
            }
            Kind::GuildCreate => created += 1,
            Kind::Control(op::INVALID_SESSION) => anyhow::bail!("INVALID_SESSION on IDENTIFY"),
            _ => {}
        }
    }
    Ok((ws, interval, seq, ready))
}

/// Opens a new socket and sends RESUME for `session` from `seq`; what the server replays and
/// its RESUMED then arrive through the connection's usual read loop.
async fn resume(
    target: &Target,
    i: usize,
    token: &str,
    session: &Resumable,
    seq: Option<u64>,
) -> anyhow::Result<Ws> {
    let (mut ws, _) = hello(target, i).await?;
    send_json(
        &mut ws,
        op::RESUME,
        json!({"token": token, "session_id": &*session.session_id, "seq": seq}),
    )
    .await?;
    Ok(ws)
}

/// One connection, from connect to the end of the run. `permit` (the identify concurrency
/// slot) is released once identified.
pub async fn run(
    i: usize,
    token: std::sync::Arc<str>,
    guilds: usize,
    target: std::sync::Arc<Target>,
    shared: std::sync::Arc<Shared>,
    permit: OwnedSemaphorePermit,
    mut control: watch::Receiver<Control>,
) {
    let identified = tokio::time::timeout(
        target.identify_timeout,
        identify(&target, i, &token, guilds),
    )
    .await;
    drop(permit);
    let (mut ws, interval, mut seq, session) = match identified {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => {
            shared.failed.fetch_add(1, Ordering::Relaxed);
            shared.errors.add(format!("identify: {e:#}"));
            return;
        }
        Err(_) => {
            shared.failed.fetch_add(1, Ordering::Relaxed);
            shared.errors.add("identify: timed out".into());
            return;
        }
    };
    shared.identified.add(1);

    // Discord clients wait `interval * jitter` before their first heartbeat; spread them so.
    let jitter = (splitmix64(i as u64) % 1000) as u32;
    let first = tokio::time::Instant::now() + interval * jitter / 1000;
    let mut beat = tokio::time::interval_at(first, interval);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen = *control.borrow_and_update();
    let mut batch = Vec::with_capacity(READ_BATCH);
    let mut arrivals = Arrivals::default();
    // Between a storm's drop and the RESUMED on the new socket.
    let mut resuming = false;
    let mut stalled = false;
    let result: anyhow::Result<()> = loop {
        if stalled {
            // Never reads again: only heartbeats, so that the server has to notice it is not
            // reading rather than that it went silent.
            tokio::select! {
                _ = beat.tick() => {
                    if send_json(&mut ws, op::HEARTBEAT, json!(seq)).await.is_err() {
                        break Ok(());
                    }
                }
                changed = control.changed() => {
                    if changed.is_err() || control.borrow_and_update().stop {
                        break Ok(());
                    }
                }
            }
            continue;
        }
        tokio::select! {
            end = std::future::poll_fn(|cx| read_ready(&mut ws, cx, &mut batch)) => {
                match on_frames(&mut batch, i, &mut seq, &mut arrivals, &shared) {
                    Ok(seen) => {
                        if seen.resumed && resuming {
                            resuming = false;
                            shared.resumed.add(1);
                        }
                        if seen.beat
                            && let Err(e) = send_json(&mut ws, op::HEARTBEAT, json!(seq)).await
                        {
                            break Err(e);
                        }
                    }
                    Err(e) => break Err(e),
                }
                if let Some(e) = end {
                    break Err(e);
                }
            },
            _ = beat.tick() => {
                shared.heartbeats_sent.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = send_json(&mut ws, op::HEARTBEAT, json!(seq)).await {
                    break Err(e);
                }
            }
            changed = control.changed() => {
                let now = *control.borrow_and_update();
                if changed.is_err() || now.stop {
                    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
                    break Ok(());
                }
                if now.beat != seen.beat {
                    shared.heartbeats_sent.fetch_add(1, Ordering::Relaxed);
                    if let Err(e) = send_json(&mut ws, op::HEARTBEAT, json!(seq)).await {
                        break Err(e);
                    }
                }
                if now.stalls(i) && !seen.stalls(i) {
                    stalled = true;
                    shared.stalled.fetch_add(1, Ordering::Relaxed);
                }
                if now.storm != seen.storm
                    && now.storms(i)
                    && let Some(session) = &session
                {
                    // No close frame: to the server this is a connection that broke.
                    drop(ws);
                    resuming = true;
                    ws = match tokio::time::timeout(
                        target.identify_timeout,
                        resume(&target, i, &token, session, seq),
                    )
                    .await
                    {
                        Ok(Ok(ws)) => ws,
                        Ok(Err(e)) => break Err(e.context("resume")),
                        Err(_) => break Err(anyhow::anyhow!("resume: timed out")),
                    };
                }
                seen = now;
            }
        }
    };
    if shared.latencies.is_some() && !stalled {
        lock(&shared.arrivals).push((i, arrivals));
    }
    if let Err(e) = result {
        if resuming {
            shared.resume_failed.fetch_add(1, Ordering::Relaxed);
        }
        shared.ended.fetch_add(1, Ordering::Relaxed);
        shared.errors.add(format!("after identify: {e:#}"));
    }
}

/// Frames a connection takes from its socket per wake-up at most.
pub(crate) const READ_BATCH: usize = 256;

/// Takes every text frame the socket has ready (up to [`READ_BATCH`]) into `batch`: pending
/// until there is at least one, or the connection ended (`Some` error, after what came
/// before it). Reading until the socket would block leaves the task's waker registered, and
/// the shared counters are then touched once per wake-up rather than once per frame.
pub(crate) fn read_ready(
    ws: &mut Ws,
    cx: &mut std::task::Context<'_>,
    batch: &mut Vec<tokio_tungstenite::tungstenite::Utf8Bytes>,
) -> std::task::Poll<Option<anyhow::Error>> {
    use std::task::Poll;
    while batch.len() < READ_BATCH {
        match ws.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(Message::Text(t)))) => batch.push(t),
            Poll::Ready(Some(Ok(Message::Close(f)))) => {
                return Poll::Ready(Some(anyhow::anyhow!("closed by the server: {f:?}")));
            }
            Poll::Ready(Some(Ok(_))) => {}
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(e.into())),
            Poll::Ready(None) => return Poll::Ready(Some(anyhow::anyhow!("connection ended"))),
            Poll::Pending if batch.is_empty() => return Poll::Pending,
            Poll::Pending => break,
        }
    }
    Poll::Ready(None)
}

/// What one read asks of the connection.
#[derive(Clone, Copy, Debug, Default)]
struct Seen {
    /// The server asked for a heartbeat.
    beat: bool,
    /// RESUMED arrived.
    resumed: bool,
}

/// Accounts for the frames of one read (and empties `batch`).
fn on_frames(
    batch: &mut Vec<tokio_tungstenite::tungstenite::Utf8Bytes>,
    i: usize,
    seq: &mut Option<u64>,
    arrivals: &mut Arrivals,
    shared: &Shared,
) -> anyhow::Result<Seen> {
    let now = Instant::now();
    let mut messages = 0;
    let mut seen = Seen::default();
    let frames = batch.len() as u64;
    let mut result = Ok(());
    for t in batch.drain(..) {
        let bytes = t.as_bytes();
        let (kind, s) = peek(bytes);
        *seq = s.or(*seq);
        match kind {
            Kind::MessageCreate => {
                if let Some(l) = &shared.latencies
                    && let Some((ns, index)) = latency_mark(bytes)
                {
                    arrivals.observe(index);
                    l.record(i, ns, now);
                }
                messages += 1;
            }
            Kind::Control(op::HEARTBEAT) => seen.beat = true,
            Kind::Resumed => seen.resumed = true,
            Kind::Control(op::RECONNECT | op::INVALID_SESSION) => {
                result = Err(anyhow::anyhow!("server sent op {kind:?}"));
            }
            Kind::Undecodable => result = Err(anyhow::anyhow!("undecodable frame")),
            _ => {}
        }
    }
    shared.frames.fetch_add(frames, Ordering::Relaxed);
    if messages > 0 {
        shared.messages.add(messages);
    }
    result.map(|()| seen)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn peeks_the_server_layout_without_parsing() {
        let f = br#"{"op":0,"t":"MESSAGE_CREATE","d":{"content":"lat 12345 x","id":"1"},"s":42}"#;
        assert_eq!(peek(f), (Kind::MessageCreate, Some(42)));
        assert_eq!(latency_mark(f), None, "no index");
        let f =
            br#"{"op":0,"t":"MESSAGE_CREATE","d":{"content":"lat 12345 7 xx","id":"1"},"s":42}"#;
        assert_eq!(latency_mark(f), Some((12345, 7)));
        let f = br#"{"op":0,"t":"GUILD_CREATE","d":{},"s":2}"#;
        assert_eq!(peek(f), (Kind::GuildCreate, Some(2)));
        let f = br#"{"op":11,"d":null,"s":null,"t":null}"#;
        assert_eq!(peek(f), (Kind::Control(11), None));
    }

    #[test]
    fn falls_back_to_decoding_other_layouts() {
        let f = br#"{"t":"READY","s":1,"op":0,"d":{}}"#;
        assert_eq!(peek(f), (Kind::Ready, Some(1)));
        let f = br#"{"d":null,"op":11}"#;
        assert_eq!(peek(f), (Kind::Control(11), None));
        assert_eq!(peek(b"nonsense").0, Kind::Undecodable);
        assert_eq!(latency_mark(br#"{"content":"hello"}"#), None);
    }

    #[test]
    fn arrivals_tell_sets_and_orders_apart() {
        let of = |ix: &[u64]| {
            let mut a = Arrivals::default();
            ix.iter().for_each(|i| a.observe(*i));
            a
        };
        let a = of(&[1, 4, 7]);
        assert_eq!(a, of(&[1, 4, 7]));
        let swapped = of(&[4, 1, 7]);
        assert_eq!((swapped.count, swapped.set), (a.count, a.set), "same set");
        assert_ne!(swapped.order, a.order, "another order");
        let dup = of(&[1, 4, 4]);
        assert_eq!(dup.count, a.count);
        assert_ne!(
            dup.set, a.set,
            "a duplicate in place of a message is another set"
        );
    }

    #[test]
    fn latency_shards_merge_into_one_histogram() {
        let l = Latencies::new(Instant::now()).unwrap();
        l.measure_from_ns.store(1_000, Ordering::Relaxed);
        let now = l.epoch + Duration::from_millis(10);
        l.record(0, 2_000_000, now); // 8 ms
        l.record(1, 5_000_000, now); // 5 ms
        l.record(17, 9_000_000, now); // 1 ms, same shard as connection 1
        l.record(2, 500, now); // warmup: not recorded
        let h = l.merged().unwrap();
        assert_eq!(h.len(), 3);
        assert!((7_990..=8_010).contains(&h.max()), "max {}", h.max());
        assert!((990..=1_010).contains(&h.min()), "min {}", h.min());
    }

    #[test]
    fn latencies_restart_and_pause_bound_the_measured_window() {
        let epoch = Instant::now();
        let l = Latencies::new(epoch).unwrap_or_else(|e| panic!("{e}"));
        let now = epoch + Duration::from_millis(10);
        l.record_all(0, &[1_000_000], now);
        assert_eq!(l.merged().map(|h| h.len()).ok(), Some(0), "not started");
        l.restart(epoch + Duration::from_millis(2));
        l.record_all(3, &[1_000_000, 5_000_000, 8_000_000], now);
        let h = l.merged().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(h.len(), 2);
        assert!((4_990..=5_010).contains(&h.max()), "max {}", h.max());
        l.pause();
        l.record_all(3, &[9_000_000], now);
        assert_eq!(l.merged().map(|h| h.len()).ok(), Some(2), "paused");
        l.restart(epoch);
        assert_eq!(l.merged().map(|h| h.len()).ok(), Some(0), "reset");
    }
}
