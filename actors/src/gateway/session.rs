//! A gateway session: the sequence, the replay buffer and the outbox of one identified client.
//!
//! A session outlives its connections: when a socket drops, the session stays in the registry,
//! detached, still receiving dispatches into its replay buffer, until the client resumes or the
//! resume window passes. Guild actors deliver into it directly ([`Session::deliver`]): each
//! delivery takes the next sequence number and stores the shared, pre-encoded frame prefix
//! (a refcounted `Bytes`, so ten thousand sessions hold one copy of an event). The connection
//! that is attached drains everything after what it last wrote in one go
//! ([`Session::take_pending`]) and appends each frame's own `s`.
//!
//! Both the replay buffer and the unsent backlog are bounded. A client that acknowledges a
//! sequence number in its heartbeat lets the session forget everything up to it, which is why an
//! idle session holds almost nothing. A connection whose unsent backlog passes its cap is
//! closed with a resumable code; the session keeps its replay buffer for the resume.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use bytes::Bytes;
use enrichment_protocol::Snowflake;
use enrichment_protocol::gateway::{Encoding, PresenceUpdate};
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::Notify;

use crate::guild::fanout::send_event;
use crate::guild::{Recipient, SessionKey, SessionRef};

/// Caps on what one session may hold.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SessionLimits {
    /// Dispatches kept for resume.
    pub replay_frames: usize,
    /// Bytes of dispatches kept for resume (counted as if unshared).
    pub replay_bytes: usize,
    /// Dispatches queued for the connection before it is closed as too slow.
    pub outbox_frames: usize,
    /// Bytes queued for the connection before it is closed as too slow.
    pub outbox_bytes: usize,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            replay_frames: 4096,
            replay_bytes: 4 << 20,
            outbox_frames: 2048,
            outbox_bytes: 2 << 20,
        }
    }
}

/// Who a session is and what it asked for at IDENTIFY.
#[derive(Clone, Debug)]
pub struct SessionInfo {
    pub session_id: String,
    pub user_id: Snowflake,
    pub bot: bool,
    pub intents: u64,
    pub encoding: Encoding,
    pub shard: Option<[u32; 2]>,
    pub large_threshold: u32,
}

impl SessionInfo {
    /// Whether this session's shard carries private channels: shard 0, as Discord sends DMs.
    pub fn carries_private(&self) -> bool {
        self.shard.is_none_or(|[id, _]| id == 0)
    }

    /// Whether this session's shard carries the guild: `(guild_id >> 22) % num_shards`.
    pub fn carries(&self, guild_id: Snowflake) -> bool {
        match self.shard {
            Some([id, count]) if count > 1 => {
                (guild_id.0 >> 22) % u64::from(count) == u64::from(id)
            }
            _ => true,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Link {
    /// A connection of this generation drains the outbox.
    Attached(u64),
    /// No connection since this instant; resumable until the window passes.
    Detached(Instant),
    /// Another node is taking the session over: not resumable here, and never expired.
    Leaving,
}

/// A session changing nodes (a RESUME at another node takes it over).
#[derive(Debug)]
enum Transfer {
    /// On the old node: the guilds whose owners have yet to say they deliver to the new one.
    Leaving { awaiting: HashSet<Snowflake> },
    /// On the new node: dispatches delivered here before the old node's replay buffer came.
    Arriving {
        held: Vec<Bytes>,
        bytes: usize,
        overflowed: bool,
    },
}

/// What a session's new node needs to know of it to take it over.
#[derive(Clone, Debug, PartialEq)]
pub struct Leaving {
    /// The guilds it follows, whose owners must deliver to the new node from now on.
    pub guilds: Vec<Snowflake>,
    pub presence: PresenceUpdate,
}

#[derive(Debug)]
struct Inner {
    /// Last sequence number assigned.
    seq: u64,
    /// Frame prefixes for `seq - replay.len() + 1 ..= seq`.
    replay: VecDeque<Bytes>,
    replay_bytes: usize,
    /// Last sequence number handed to a connection.
    written: u64,
    /// Bytes delivered for the connection since it last drained or resumed, for the outbox cap.
    pending_bytes: usize,
    /// Frames up to this seq were handed to the connection by a resume: they are the client's
    /// backlog (bounded by the replay caps), not dispatches piling up behind a slow reader, so
    /// the outbox caps count only what comes after them.
    replayed_to: u64,
    link: Link,
    generation: u64,
    /// The unsent backlog passed its cap; the attached connection must close.
    overflowed: bool,
    guilds: HashSet<Snowflake>,
    presence: PresenceUpdate,
    /// Set only while the session changes nodes; boxed, since almost no session ever does.
    transfer: Option<Box<Transfer>>,
}

/// Why a connection must stop draining a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detach {
    /// The backlog passed its cap: the client is not reading fast enough.
    SlowConsumer,
    /// Another connection resumed the session.
    Superseded,
    /// The session ended (logout, invalidation, node drain).
    Ended,
}

/// Why a resume was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ResumeError {
    /// The client claims a sequence number the session never sent (close 4007).
    InvalidSeq,
    /// The replay buffer no longer covers the gap, or the session ended (op 9, `d=false`).
    Lost,
}

/// One identified client's session. Shared by its connection, the registry and every guild
/// actor that fans out to it (as a [`Recipient`]).
#[derive(Debug)]
pub struct Session {
    pub info: SessionInfo,
    /// Process-unique key, cheaper than the session id string for maps.
    pub key: u64,
    /// What guilds know of the session.
    reference: SessionRef,
    limits: SessionLimits,
    inner: Mutex<Inner>,
    ended: AtomicBool,
    /// Dispatches were delivered without waking the connection, and a wake is on its way
    /// ([`Session::deliver_unwoken`]): later ones need not ask again.
    wake_pending: AtomicBool,
    wake: Notify,
}

impl Session {
    pub fn new(
        info: SessionInfo,
        key: u64,
        limits: SessionLimits,
        presence: PresenceUpdate,
    ) -> Self {
        let reference = SessionRef {
            key: SessionKey(key),
            user_id: info.user_id,
            bot: info.bot,
            intents: info.intents,
            encoding: info.encoding,
            shard: info.shard,
            large_threshold: info.large_threshold,
        };
        Session {
            info,
            key,
            reference,
            limits,
            inner: Mutex::new(Inner {
                seq: 0,
                replay: VecDeque::new(),
                replay_bytes: 0,
                written: 0,
                pending_bytes: 0,
                replayed_to: 0,
                link: Link::Attached(0),
                generation: 0,
                overflowed: false,
                guilds: HashSet::new(),
                presence,
                transfer: None,
            }),
            ended: AtomicBool::new(false),
            wake_pending: AtomicBool::new(false),
            wake: Notify::new(),
        }
    }

    pub fn user_id(&self) -> Snowflake {
        self.info.user_id
    }

    /// How guilds name this session.
    pub fn reference(&self) -> &SessionRef {
        &self.reference
    }

    pub fn is_ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }

    /// Ends the session: nothing more is delivered and a resume is refused.
    pub fn end(&self) {
        self.ended.store(true, Ordering::Release);
        let mut inner = self.inner.lock();
        inner.replay.clear();
        inner.replay_bytes = 0;
        inner.guilds.clear();
        drop(inner);
        self.wake.notify_one();
    }

    /// A session taken over from another node: what guilds deliver to it waits until the
    /// old node's replay buffer arrives ([`Session::install`]); it is resumed then.
    pub fn arriving(
        info: SessionInfo,
        key: u64,
        limits: SessionLimits,
        presence: PresenceUpdate,
    ) -> Self {
        let s = Session::new(info, key, limits, presence);
        {
            let mut inner = s.inner.lock();
            inner.link = Link::Detached(Instant::now());
            inner.transfer = Some(Box::new(Transfer::Arriving {
                held: Vec::new(),
                bytes: 0,
                overflowed: false,
            }));
        }
        s
    }

    /// Appends a dispatch whose frame prefix is already encoded in this session's encoding.
    /// Returns false when the session has ended (the caller should forget it).
    pub fn deliver(&self, prefix: Bytes) -> bool {
        self.deliver_and_wake(None, prefix)
    }

    /// [`Session::deliver`] for an event of a guild that reached this node from the guild's
    /// owner on another node: a session that does not follow the guild (it was told the guild
    /// is unavailable and awaits a fresh GUILD_CREATE) drops it, so nothing of the guild comes
    /// between that GUILD_DELETE and that GUILD_CREATE.
    pub fn deliver_guild_event(&self, guild_id: Snowflake, prefix: Bytes) -> bool {
        self.deliver_and_wake(Some(guild_id), prefix)
    }

    fn deliver_and_wake(&self, guild_id: Option<Snowflake>, prefix: Bytes) -> bool {
        match self.deliver_unwoken(guild_id, prefix) {
            None => false,
            Some(wake) => {
                if wake {
                    self.wake();
                }
                true
            }
        }
    }

    /// [`Session::deliver`] (or, with a guild, [`Session::deliver_guild_event`]) without waking
    /// the connection: whoever hands on many dispatches at once wakes each session once, at
    /// the end ([`Session::wake`]), so its connection writes them all in one go. `None` when
    /// the session ended; else whether the caller must wake it: true for the first delivery
    /// that needs it since the last wake, false for the rest.
    pub fn deliver_unwoken(&self, guild_id: Option<Snowflake>, prefix: Bytes) -> Option<bool> {
        if self.is_ended() {
            return None;
        }
        let mut inner = self.inner.lock();
        if let Some(g) = guild_id
            && !inner.guilds.contains(&g)
        {
            tracing::debug!(guild_id = %g, key = self.key, "an event of a guild the session does not follow is dropped");
            return Some(false);
        }
        if let Some(Transfer::Arriving {
            held,
            bytes,
            overflowed,
        }) = inner.transfer.as_deref_mut()
        {
            // Held within the replay caps: past them the takeover cannot cover the gap.
            *bytes += prefix.len();
            held.push(prefix);
            if held.len() > self.limits.replay_frames || *bytes > self.limits.replay_bytes {
                *overflowed = true;
                held.clear();
            }
            return Some(false);
        }
        let attached = self.push(&mut inner, prefix);
        drop(inner);
        Some(attached && !self.wake_pending.swap(true, Ordering::AcqRel))
    }

    /// Wakes the connection to write what was delivered ([`Session::deliver_unwoken`]).
    pub fn wake(&self) {
        self.wake_pending.store(false, Ordering::Release);
        self.wake.notify_one();
    }

    /// Gives a dispatch the next sequence number; true when a connection is attached (and
    /// should be woken).
    fn push(&self, inner: &mut Inner, prefix: Bytes) -> bool {
        let len = prefix.len();
        inner.seq += 1;
        inner.replay.push_back(prefix);
        inner.replay_bytes += len;
        while inner.replay.len() > self.limits.replay_frames
            || (inner.replay_bytes > self.limits.replay_bytes && inner.replay.len() > 1)
        {
            if let Some(old) = inner.replay.pop_front() {
                inner.replay_bytes -= old.len();
            }
        }
        let attached = matches!(inner.link, Link::Attached(_));
        if attached {
            inner.pending_bytes += len;
            let oldest_kept = inner.seq + 1 - inner.replay.len() as u64;
            let backlog = inner.seq - inner.written.max(inner.replayed_to);
            if backlog > self.limits.outbox_frames as u64
                || inner.pending_bytes > self.limits.outbox_bytes
                || inner.written + 1 < oldest_kept
            {
                inner.overflowed = true;
            }
        }
        attached
    }

    /// Encodes and delivers one dispatch meant for this session alone (READY, GUILD_CREATE, ...).
    pub fn send_event<T: Serialize + ?Sized>(&self, t: &str, d: &T) -> bool {
        send_event(self, t, d)
    }

    /// Moves every dispatch after the last one written into `out` as `(seq, prefix)`.
    pub fn take_pending(&self, generation: u64, out: &mut Vec<(u64, Bytes)>) -> Result<(), Detach> {
        self.write_pending(generation, |seq, prefix| out.push((seq, prefix.clone())))
            .map(drop)
    }

    /// Hands every dispatch after the last one written to `write` as `(seq, prefix)`, in order,
    /// and counts them as written. It runs under the session's lock, so the connection copies
    /// each prefix straight into its output without a reference count of its own: `write` is
    /// meant to copy bytes and nothing slower. Returns how many it handed over.
    pub fn write_pending(
        &self,
        generation: u64,
        mut write: impl FnMut(u64, &Bytes),
    ) -> Result<usize, Detach> {
        if self.is_ended() {
            return Err(Detach::Ended);
        }
        let mut inner = self.inner.lock();
        if inner.link != Link::Attached(generation) {
            return Err(Detach::Superseded);
        }
        if inner.overflowed {
            return Err(Detach::SlowConsumer);
        }
        let first = inner.seq + 1 - inner.replay.len() as u64;
        let from = inner.written + 1;
        let skip = (from - first) as usize;
        let mut n = 0;
        for (i, prefix) in inner.replay.iter().skip(skip).enumerate() {
            write(from + i as u64, prefix);
            n += 1;
        }
        inner.written = inner.seq;
        inner.pending_bytes = 0;
        Ok(n)
    }

    /// Waits until there is something to drain (or the session changed state).
    pub async fn notified(&self) {
        self.wake.notified().await
    }

    /// The client has everything up to `seq` (from its heartbeat): forget it.
    pub fn ack(&self, seq: u64) {
        let mut inner = self.inner.lock();
        let upto = seq.min(inner.written);
        let first = inner.seq + 1 - inner.replay.len() as u64;
        let mut n = upto.saturating_sub(first - 1);
        while n > 0 {
            if let Some(old) = inner.replay.pop_front() {
                inner.replay_bytes -= old.len();
            }
            n -= 1;
        }
        if inner.replay.is_empty() {
            inner.replay = VecDeque::new();
        }
    }

    /// The connection went away without ending the session.
    pub fn detach(&self, generation: u64, now: Instant) {
        let mut inner = self.inner.lock();
        if inner.link == Link::Attached(generation) {
            inner.link = Link::Detached(now);
        }
    }

    /// Whether the connection of this generation is the one attached (not superseded).
    pub fn is_attached(&self, generation: u64) -> bool {
        self.inner.lock().link == Link::Attached(generation)
    }

    /// When the session lost its connection, if it has none (and stays here).
    pub fn detached_since(&self) -> Option<Instant> {
        match self.inner.lock().link {
            Link::Detached(t) => Some(t),
            Link::Attached(_) | Link::Leaving => None,
        }
    }

    /// Attaches a new connection that has seen everything up to `seq`; returns its generation.
    /// Any connection still attached is superseded.
    pub fn resume(&self, seq: u64) -> Result<u64, ResumeError> {
        self.attach(seq, None)
    }

    /// [`Session::resume`], with the RESUMED dispatch queued right behind the replay in the
    /// same step. RESUMED does not push a frame out of the replay buffer (which may exceed its
    /// caps by this one frame until the next delivery): the resume was accepted because the
    /// buffer covered the gap, and the server's own answer must not undo that by evicting the
    /// oldest frame it is about to replay.
    pub fn resume_with(&self, seq: u64, resumed: Bytes) -> Result<u64, ResumeError> {
        self.attach(seq, Some(resumed))
    }

    /// The session's state, for a client that saw up to `seq` to take it: neither ended nor
    /// changing nodes, and with a replay buffer that covers what the client missed.
    fn lock_for(&self, seq: u64) -> Result<parking_lot::MutexGuard<'_, Inner>, ResumeError> {
        if self.is_ended() {
            return Err(ResumeError::Lost);
        }
        let inner = self.inner.lock();
        if inner.transfer.is_some() {
            return Err(ResumeError::Lost);
        }
        inner.covers(seq)?;
        Ok(inner)
    }

    fn attach(&self, seq: u64, resumed: Option<Bytes>) -> Result<u64, ResumeError> {
        let mut inner = self.lock_for(seq)?;
        inner.generation += 1;
        let generation = inner.generation;
        inner.link = Link::Attached(generation);
        inner.written = seq;
        inner.replayed_to = inner.seq;
        inner.overflowed = false;
        inner.pending_bytes = 0;
        if let Some(prefix) = resumed {
            let len = prefix.len();
            inner.seq += 1;
            inner.replay_bytes += len;
            inner.pending_bytes += len;
            inner.replay.push_back(prefix);
            // Past the caps by RESUMED alone is allowed; further (resume after resume with
            // nothing read) the usual eviction applies, and evicting what the connection has
            // yet to write makes it a slow consumer.
            while inner.replay.len() > self.limits.replay_frames + 1
                || (inner.replay_bytes > self.limits.replay_bytes + len && inner.replay.len() > 1)
            {
                if let Some(old) = inner.replay.pop_front() {
                    inner.replay_bytes -= old.len();
                }
            }
            if seq + 1 < inner.seq + 1 - inner.replay.len() as u64 {
                inner.overflowed = true;
            }
        }
        drop(inner);
        self.wake.notify_waiters();
        self.wake.notify_one();
        Ok(generation)
    }

    /// Starts handing the session over to another node, for a client that saw up to `seq`:
    /// the connection attached, if any, is superseded, and dispatches keep collecting here
    /// until the owner of each guild it follows says it delivers to the new node
    /// ([`Session::guild_handed_over`]).
    pub fn begin_leaving(&self, seq: u64) -> Result<Leaving, ResumeError> {
        let mut inner = self.lock_for(seq)?;
        inner.generation += 1;
        inner.link = Link::Leaving;
        let guilds: Vec<Snowflake> = inner.guilds.iter().copied().collect();
        inner.transfer = Some(Box::new(Transfer::Leaving {
            awaiting: guilds.iter().copied().collect(),
        }));
        let presence = inner.presence.clone();
        drop(inner);
        // The superseded connection finds out at once.
        self.wake.notify_one();
        Ok(Leaving { guilds, presence })
    }

    /// A guild's owner delivers to the session's new node from now on; everything before came
    /// here first.
    pub fn guild_handed_over(&self, guild_id: Snowflake) {
        if let Some(Transfer::Leaving { awaiting }) = self.inner.lock().transfer.as_deref_mut() {
            awaiting.remove(&guild_id);
        }
    }

    /// The guilds whose owners have yet to hand the leaving session over.
    pub fn awaiting(&self) -> Vec<Snowflake> {
        match self.inner.lock().transfer.as_deref() {
            Some(Transfer::Leaving { awaiting }) => awaiting.iter().copied().collect(),
            _ => Vec::new(),
        }
    }

    /// A leaving session stays after all (no other node was asked to take it over): it is
    /// resumable here again, detached from now.
    pub fn stay(&self) {
        let mut inner = self.inner.lock();
        if matches!(inner.transfer.as_deref(), Some(Transfer::Leaving { .. })) {
            inner.transfer = None;
            inner.link = Link::Detached(Instant::now());
        }
    }

    /// Ends a leaving session and gives what its client has not seen (after `seq`), with the
    /// last sequence number, for the new node to replay.
    pub fn finish_leaving(&self, seq: u64) -> Result<(u64, Vec<Bytes>), ResumeError> {
        let inner = self.inner.lock();
        if !matches!(inner.transfer.as_deref(), Some(Transfer::Leaving { .. })) || self.is_ended() {
            return Err(ResumeError::Lost);
        }
        let covered = inner.covers(seq);
        let last = inner.seq;
        let first = last + 1 - inner.replay.len() as u64;
        let frames = match covered {
            Ok(()) => inner
                .replay
                .iter()
                .skip((seq + 1 - first) as usize)
                .cloned()
                .collect(),
            Err(_) => Vec::new(),
        };
        drop(inner);
        self.end();
        covered.map(|()| (last, frames))
    }

    /// The old node's replay buffer arrived: `frames` are the dispatches up to `seq` that the
    /// client has not seen. They go first, then what was delivered here meanwhile; the session
    /// is then resumable like any other.
    pub fn install(&self, seq: u64, frames: Vec<Bytes>) -> Result<(), ResumeError> {
        let mut inner = self.inner.lock();
        let held = match inner.transfer.take().map(|t| *t) {
            Some(Transfer::Arriving {
                held,
                overflowed: false,
                ..
            }) if frames.len() as u64 <= seq => held,
            _ => return Err(ResumeError::Lost),
        };
        inner.seq = seq;
        inner.written = seq - frames.len() as u64;
        inner.replay_bytes = frames.iter().map(Bytes::len).sum();
        inner.replay = frames.into();
        for prefix in held {
            self.push(&mut inner, prefix);
        }
        Ok(())
    }

    /// Last sequence number assigned.
    pub fn seq(&self) -> u64 {
        self.inner.lock().seq
    }

    /// Frames held for resume and their bytes.
    pub fn replay_len(&self) -> (usize, usize) {
        let inner = self.inner.lock();
        (inner.replay.len(), inner.replay_bytes)
    }

    /// Records that the session received GUILD_CREATE for a guild and follows it.
    pub fn follow(&self, guild_id: Snowflake) -> bool {
        !self.is_ended() && self.inner.lock().guilds.insert(guild_id)
    }

    pub fn unfollow(&self, guild_id: Snowflake) {
        self.inner.lock().guilds.remove(&guild_id);
    }

    pub fn follows(&self, guild_id: Snowflake) -> bool {
        self.inner.lock().guilds.contains(&guild_id)
    }

    pub fn presence(&self) -> PresenceUpdate {
        self.inner.lock().presence.clone()
    }

    pub fn set_presence(&self, p: PresenceUpdate) {
        self.inner.lock().presence = p;
    }
}

impl Recipient for Session {
    fn session(&self) -> &SessionRef {
        &self.reference
    }

    fn deliver(&self, prefix: Bytes) -> bool {
        Session::deliver(self, prefix)
    }

    fn is_gone(&self) -> bool {
        self.is_ended()
    }

    fn follow(&self, guild_id: Snowflake) -> bool {
        Session::follow(self, guild_id)
    }

    fn unfollow(&self, guild_id: Snowflake) {
        Session::unfollow(self, guild_id)
    }

    fn handed_over(&self, guild_id: Snowflake) {
        self.guild_handed_over(guild_id)
    }

    fn deliver_unwoken(&self, prefix: Bytes) -> Option<bool> {
        Session::deliver_unwoken(self, None, prefix)
    }

    fn wake(&self) {
        Session::wake(self)
    }
}

impl Inner {
    /// Whether a client that saw up to `seq` can resume from this replay buffer.
    fn covers(&self, seq: u64) -> Result<(), ResumeError> {
        if seq > self.seq {
            return Err(ResumeError::InvalidSeq);
        }
        let first = self.seq + 1 - self.replay.len() as u64;
        if seq + 1 < first {
            return Err(ResumeError::Lost);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn session(limits: SessionLimits) -> Session {
        Session::new(
            SessionInfo {
                session_id: "s".into(),
                user_id: Snowflake(1),
                bot: false,
                intents: 0,
                encoding: Encoding::Json,
                shard: None,
                large_threshold: 50,
            },
            1,
            limits,
            PresenceUpdate::default(),
        )
    }

    fn frame(n: u64) -> Bytes {
        Bytes::from(format!("frame{n}"))
    }

    fn drain(s: &Session, generation: u64) -> Result<Vec<u64>, Detach> {
        let mut out = Vec::new();
        s.take_pending(generation, &mut out)?;
        for (seq, b) in &out {
            assert_eq!(*b, frame(*seq), "frame {seq} carries its own payload");
        }
        Ok(out.into_iter().map(|(s, _)| s).collect())
    }

    #[test]
    fn sequence_numbers_increase_by_one_and_drain_once() {
        let s = session(SessionLimits::default());
        for n in 1..=3 {
            assert!(s.deliver(frame(n)));
        }
        assert_eq!(drain(&s, 0).unwrap(), vec![1, 2, 3]);
        assert_eq!(drain(&s, 0).unwrap(), Vec::<u64>::new());
        s.deliver(frame(4));
        assert_eq!(drain(&s, 0).unwrap(), vec![4]);
    }

    #[test]
    fn resume_replays_exactly_what_the_client_missed() {
        let s = session(SessionLimits::default());
        for n in 1..=5 {
            s.deliver(frame(n));
        }
        drain(&s, 0).unwrap();
        s.detach(0, Instant::now());
        for n in 6..=8 {
            s.deliver(frame(n));
        }
        // The client saw up to 4 before the drop (5 was written but lost in transit).
        let g = s.resume(4).unwrap();
        assert_eq!(drain(&s, g).unwrap(), vec![5, 6, 7, 8]);
        // The old connection is superseded.
        assert_eq!(drain(&s, 0), Err(Detach::Superseded));
    }

    #[test]
    fn resume_checks_the_claimed_sequence() {
        let s = session(SessionLimits {
            replay_frames: 3,
            ..SessionLimits::default()
        });
        for n in 1..=6 {
            s.deliver(frame(n));
            drain(&s, 0).unwrap();
        }
        assert_eq!(s.resume(7), Err(ResumeError::InvalidSeq));
        // 4, 5, 6 are kept: resuming from 3 works, from 2 the gap is lost.
        assert_eq!(s.resume(2), Err(ResumeError::Lost));
        let g = s.resume(3).unwrap();
        assert_eq!(drain(&s, g).unwrap(), vec![4, 5, 6]);
        s.end();
        assert_eq!(s.resume(6), Err(ResumeError::Lost));
        assert!(!s.deliver(frame(7)));
    }

    #[test]
    fn an_acknowledged_sequence_is_forgotten() {
        let s = session(SessionLimits::default());
        for n in 1..=10 {
            s.deliver(frame(n));
        }
        drain(&s, 0).unwrap();
        s.ack(7);
        assert_eq!(s.replay_len().0, 3);
        // Acknowledging what was never written keeps it.
        s.deliver(frame(11));
        s.ack(11);
        assert_eq!(s.replay_len().0, 1);
        drain(&s, 0).unwrap();
        s.ack(11);
        assert_eq!(s.replay_len(), (0, 0));
    }

    #[test]
    fn a_slow_reader_overflows_its_outbox_but_keeps_its_replay() {
        let s = session(SessionLimits {
            outbox_frames: 4,
            ..SessionLimits::default()
        });
        for n in 1..=5 {
            s.deliver(frame(n));
        }
        assert_eq!(drain(&s, 0), Err(Detach::SlowConsumer));
        s.detach(0, Instant::now());
        let g = s.resume(0).unwrap();
        assert_eq!(drain(&s, g).unwrap(), vec![1, 2, 3, 4, 5]);
    }

    #[test]
    fn a_resume_backlog_larger_than_the_outbox_is_written_whole() {
        let s = session(SessionLimits {
            outbox_frames: 4,
            outbox_bytes: 30,
            ..SessionLimits::default()
        });
        s.detach(0, Instant::now());
        for n in 1..=10 {
            s.deliver(frame(n));
        }
        // The replay covers the gap: the backlog is the client's, not a slow reader's, and
        // what follows it (RESUMED, the next events) is what the outbox caps count.
        let g = s.resume(0).unwrap();
        s.deliver(frame(11));
        s.deliver(frame(12));
        assert_eq!(drain(&s, g).unwrap(), (1..=12).collect::<Vec<_>>());
        for n in 13..=17 {
            s.deliver(frame(n));
        }
        assert_eq!(drain(&s, g), Err(Detach::SlowConsumer));
    }

    #[test]
    fn resumed_never_pushes_out_the_replay_it_follows() {
        let s = session(SessionLimits {
            replay_frames: 3,
            ..SessionLimits::default()
        });
        s.detach(0, Instant::now());
        for n in 1..=3 {
            s.deliver(frame(n));
        }
        // 1, 2, 3 fill the buffer; the client saw nothing: covered, exactly.
        let g = s.resume_with(0, frame(4)).unwrap();
        assert_eq!(s.replay_len().0, 4);
        assert_eq!(drain(&s, g).unwrap(), vec![1, 2, 3, 4]);
        // The next delivery brings the buffer back within its caps.
        s.deliver(frame(5));
        assert_eq!(s.replay_len().0, 3);
        assert_eq!(drain(&s, g).unwrap(), vec![5]);
        // An event arriving before the replay is written still may not evict it unsent: that
        // connection is too slow for the buffer, and its resume from 5 is lost.
        s.detach(g, Instant::now());
        for n in 6..=8 {
            s.deliver(frame(n));
        }
        let g = s.resume_with(5, frame(9)).unwrap();
        s.deliver(frame(10));
        assert_eq!(drain(&s, g), Err(Detach::SlowConsumer));
        assert_eq!(s.resume(5), Err(ResumeError::Lost));
        // Nor do RESUMEDs pile up past the caps when a client resumes again and again
        // without reading.
        let g = s.resume_with(7, frame(11)).unwrap();
        assert_eq!(s.replay_len().0, 4);
        let g2 = s.resume_with(7, frame(12)).unwrap();
        assert_eq!(s.replay_len().0, 4);
        assert_eq!(drain(&s, g), Err(Detach::Superseded));
        assert_eq!(drain(&s, g2), Err(Detach::SlowConsumer));
    }

    #[test]
    fn the_outbox_byte_cap_counts_unsent_bytes() {
        let s = session(SessionLimits {
            outbox_bytes: 20,
            ..SessionLimits::default()
        });
        for n in 1..=3 {
            s.deliver(frame(n)); // 6 bytes each
        }
        assert!(drain(&s, 0).is_ok());
        for n in 4..=7 {
            s.deliver(frame(n));
        }
        assert_eq!(drain(&s, 0), Err(Detach::SlowConsumer));
    }

    #[test]
    fn a_session_moves_to_another_node_with_nothing_missed_or_repeated() {
        let old = session(SessionLimits::default());
        for n in 1..=4 {
            old.deliver(frame(n));
        }
        drain(&old, 0).unwrap();
        old.follow(Snowflake(10));
        old.follow(Snowflake(11));
        // The client saw up to 2 (3 and 4 were written but lost in transit).
        assert_eq!(old.begin_leaving(5), Err(ResumeError::InvalidSeq));
        let leaving = old.begin_leaving(2).unwrap();
        let mut guilds = leaving.guilds;
        guilds.sort_unstable();
        assert_eq!(guilds, vec![Snowflake(10), Snowflake(11)]);
        assert_eq!(drain(&old, 0), Err(Detach::Superseded));
        assert_eq!(
            old.resume(2),
            Err(ResumeError::Lost),
            "not here while it leaves"
        );
        assert_eq!(
            old.begin_leaving(2),
            Err(ResumeError::Lost),
            "one move at a time"
        );
        assert!(
            old.detached_since().is_none(),
            "never expires while it leaves"
        );

        // Guild 10's owner sends 5, then moves the session; guild 11's sends 6, then moves it.
        old.deliver(frame(5));
        old.guild_handed_over(Snowflake(10));
        assert_eq!(old.awaiting(), vec![Snowflake(11)]);
        let new = Session::arriving(
            old.info.clone(),
            2,
            SessionLimits::default(),
            PresenceUpdate::default(),
        );
        // Guild 10's next event reaches the new node before the replay buffer does.
        new.deliver(frame(7));
        assert_eq!(
            new.resume(2),
            Err(ResumeError::Lost),
            "not before the handover"
        );
        old.deliver(frame(6));
        old.guild_handed_over(Snowflake(11));
        assert!(old.awaiting().is_empty());

        let (seq, frames) = old.finish_leaving(2).unwrap();
        assert_eq!(seq, 6);
        assert_eq!(frames, (3..=6).map(frame).collect::<Vec<_>>());
        assert!(old.is_ended());
        new.install(seq, frames).unwrap();
        new.deliver(frame(8));
        let g = new.resume(2).unwrap();
        assert_eq!(drain(&new, g).unwrap(), vec![3, 4, 5, 6, 7, 8]);
    }

    #[test]
    fn a_move_that_cannot_cover_the_gap_is_lost_and_one_never_asked_for_stays() {
        let limits = SessionLimits {
            replay_frames: 3,
            ..SessionLimits::default()
        };
        // Held past the replay caps on the new node.
        let new = Session::arriving(
            session(limits).info.clone(),
            2,
            limits,
            PresenceUpdate::default(),
        );
        for n in 1..=4 {
            assert!(new.deliver(frame(n)), "still taken: the guilds keep it");
        }
        assert_eq!(new.install(0, Vec::new()), Err(ResumeError::Lost));

        // Evicted on the old node while its owners moved it.
        let old = session(limits);
        old.detach(0, Instant::now());
        old.deliver(frame(1));
        old.begin_leaving(0).unwrap();
        for n in 2..=4 {
            old.deliver(frame(n));
        }
        assert_eq!(old.finish_leaving(0), Err(ResumeError::Lost));
        assert!(old.is_ended());

        // Nobody was asked to take it: resumable here again.
        let stays = session(limits);
        stays.deliver(frame(1));
        stays.begin_leaving(0).unwrap();
        stays.stay();
        assert!(stays.detached_since().is_some());
        let g = stays.resume(0).unwrap();
        assert_eq!(drain(&stays, g).unwrap(), vec![1]);
    }

    #[test]
    fn a_guild_event_from_another_node_reaches_only_a_session_that_follows_the_guild() {
        let s = session(SessionLimits::default());
        s.follow(Snowflake(10));
        assert!(s.deliver_guild_event(Snowflake(10), frame(1)));
        // Told the guild is unavailable: its events wait for the fresh GUILD_CREATE.
        s.unfollow(Snowflake(10));
        assert!(s.deliver_guild_event(Snowflake(10), frame(99)), "not gone");
        assert!(s.deliver(frame(2)), "GUILD_CREATE");
        s.follow(Snowflake(10));
        assert!(s.deliver_guild_event(Snowflake(10), frame(3)));
        assert_eq!(drain(&s, 0).unwrap(), vec![1, 2, 3]);
        s.end();
        assert!(!s.deliver_guild_event(Snowflake(10), frame(4)));
    }

    #[test]
    fn a_detached_session_keeps_a_bounded_replay() {
        let s = session(SessionLimits {
            replay_frames: 100,
            replay_bytes: 60,
            ..SessionLimits::default()
        });
        s.detach(0, Instant::now());
        for n in 1..=50 {
            s.deliver(frame(n));
        }
        let (frames, bytes) = s.replay_len();
        assert!(
            bytes <= 60 && frames <= 10,
            "{frames} frames, {bytes} bytes"
        );
        assert!(s.detached_since().is_some());
    }
}

#[cfg(test)]
mod proptests;
