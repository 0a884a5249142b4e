//! Random interleavings of deliveries, disconnects, resumes, drains and heartbeat acks across a
//! few sessions with tiny caps, checked against a model of what each client received and of
//! what each session must still hold.
//!
//! Properties: every client's stream is gap-free, duplicate-free and in delivery order across
//! any number of resumes; a resume fails (`Lost`) exactly when the replay buffer no longer
//! covers the client's gap; a resumed connection can always write its replay; a superseded
//! connection can neither drain nor detach the session.

#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;
use proptest::prelude::*;

use super::*;

#[derive(Clone, Debug)]
enum Action {
    /// A guild event for every session (`pad` bytes of payload).
    Deliver { pad: usize },
    /// The socket dies; the last `lost` frames written to it never arrived.
    Disconnect { client: usize, lost: usize },
    /// The client resumes from the last seq it received; with `write_now` the connection
    /// writes before anything else is delivered.
    Resume { client: usize, write_now: bool },
    /// The connection writes everything pending.
    Drain { client: usize },
    /// The client heartbeats with the last seq it received.
    Ack { client: usize },
    /// The connection before the last resume tries to write, then goes away.
    Stale { client: usize },
}

fn action(clients: usize) -> impl Strategy<Value = Action> {
    prop_oneof![
        4 => (0usize..24).prop_map(|pad| Action::Deliver { pad }),
        1 => (0..clients, 0usize..3).prop_map(|(client, lost)| Action::Disconnect { client, lost }),
        2 => (0..clients, any::<bool>())
            .prop_map(|(client, write_now)| Action::Resume { client, write_now }),
        3 => (0..clients).prop_map(|client| Action::Drain { client }),
        1 => (0..clients).prop_map(|client| Action::Ack { client }),
        1 => (0..clients).prop_map(|client| Action::Stale { client }),
    ]
}

fn limits() -> impl Strategy<Value = SessionLimits> {
    (1usize..8, 8usize..160, 1usize..6, 8usize..160).prop_map(
        |(replay_frames, replay_bytes, outbox_frames, outbox_bytes)| SessionLimits {
            replay_frames,
            replay_bytes,
            outbox_frames,
            outbox_bytes,
        },
    )
}

/// What a client can receive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Got {
    Event(u64),
    Resumed,
}

fn encode(got: Got, pad: usize) -> Bytes {
    match got {
        Got::Event(id) => Bytes::from(format!("e{id}:{}", "x".repeat(pad))),
        Got::Resumed => Bytes::from_static(b"resumed"),
    }
}

fn decode(b: &[u8]) -> Got {
    let s = std::str::from_utf8(b).unwrap();
    if s == "resumed" {
        return Got::Resumed;
    }
    let id = s[1..].split(':').next().unwrap();
    Got::Event(id.parse().unwrap())
}

/// What the session must hold: the model of one server-side session.
#[derive(Debug)]
struct Model {
    limits: SessionLimits,
    seq: u64,
    /// `(seq, len)` of the frames kept for resume.
    replay: VecDeque<(u64, usize)>,
    bytes: usize,
    attached: bool,
    /// Last seq handed to the attached connection.
    written: u64,
    /// Frames up to here were handed over by a resume: the client's backlog, not counted
    /// against the connection's outbox.
    replayed_to: u64,
    /// Bytes delivered for the connection since it last wrote (or resumed).
    pending_bytes: usize,
    overflowed: bool,
}

impl Model {
    fn new(limits: SessionLimits) -> Self {
        Model {
            limits,
            seq: 0,
            replay: VecDeque::new(),
            bytes: 0,
            attached: true,
            written: 0,
            replayed_to: 0,
            pending_bytes: 0,
            overflowed: false,
        }
    }

    fn first_kept(&self) -> u64 {
        self.seq + 1 - self.replay.len() as u64
    }

    fn deliver(&mut self, len: usize) {
        self.seq += 1;
        self.replay.push_back((self.seq, len));
        self.bytes += len;
        while self.replay.len() > self.limits.replay_frames
            || (self.bytes > self.limits.replay_bytes && self.replay.len() > 1)
        {
            let (_, front_len) = self.replay.pop_front().unwrap();
            self.bytes -= front_len;
        }
        if self.attached {
            self.pending_bytes += len;
            let backlog = self.seq - self.written.max(self.replayed_to);
            if backlog > self.limits.outbox_frames as u64
                || self.pending_bytes > self.limits.outbox_bytes
                || self.written + 1 < self.first_kept()
            {
                self.overflowed = true;
            }
        }
    }

    /// A resume from `from` that the session accepted, RESUMED queued behind its replay.
    fn resume(&mut self, from: u64, resumed_len: usize) {
        self.attached = true;
        self.written = from;
        self.replayed_to = self.seq;
        self.overflowed = false;
        // RESUMED may take the buffer past its caps by itself, not further.
        self.seq += 1;
        self.replay.push_back((self.seq, resumed_len));
        self.bytes += resumed_len;
        self.pending_bytes = resumed_len;
        while self.replay.len() > self.limits.replay_frames + 1
            || (self.bytes > self.limits.replay_bytes + resumed_len && self.replay.len() > 1)
        {
            let (_, front_len) = self.replay.pop_front().unwrap();
            self.bytes -= front_len;
        }
        if from + 1 < self.first_kept() {
            self.overflowed = true;
        }
    }

    fn ack(&mut self, seq: u64) {
        let upto = seq.min(self.written);
        while self.replay.front().is_some_and(|(s, _)| *s <= upto) {
            let (_, len) = self.replay.pop_front().unwrap();
            self.bytes -= len;
        }
    }
}

struct Client {
    session: Session,
    model: Model,
    generation: u64,
    connected: bool,
    /// Everything the client received, in order; entry `k` carries seq `k + 1`.
    received: Vec<Got>,
    /// What the client received before its current connection (lost frames cannot be these).
    attached_at: usize,
    acked: usize,
    /// The first event this session was delivered.
    first_event: u64,
}

fn new_client(key: u64, limits: SessionLimits, first_event: u64) -> Client {
    let session = Session::new(
        SessionInfo {
            session_id: format!("s{key}"),
            user_id: Snowflake(key),
            bot: false,
            intents: 0,
            encoding: Encoding::Json,
            shard: None,
            large_threshold: 50,
        },
        key,
        limits,
        PresenceUpdate::default(),
    );
    Client {
        session,
        model: Model::new(limits),
        generation: 0,
        connected: true,
        received: Vec::new(),
        attached_at: 0,
        acked: 0,
        first_event,
    }
}

impl Client {
    /// The connection writes; returns whether it may go on.
    fn drain(&mut self) -> Result<(), TestCaseError> {
        let mut out = Vec::new();
        let r = self.session.take_pending(self.generation, &mut out);
        if self.model.overflowed {
            prop_assert_eq!(r, Err(Detach::SlowConsumer));
            prop_assert!(out.is_empty());
            // The listener closes the socket: the session is detached, resumable.
            self.session.detach(self.generation, Instant::now());
            self.connected = false;
            self.model.attached = false;
            return Ok(());
        }
        prop_assert_eq!(r, Ok(()));
        let seqs: Vec<u64> = out.iter().map(|(s, _)| *s).collect();
        let expected: Vec<u64> = (self.model.written + 1..=self.model.seq).collect();
        prop_assert_eq!(seqs, expected);
        for (seq, frame) in out {
            // Gap-free and duplicate-free: each frame is the next one the client lacks.
            prop_assert_eq!(seq, self.received.len() as u64 + 1);
            self.received.push(decode(&frame));
        }
        self.check_order()?;
        self.model.written = self.model.seq;
        self.model.pending_bytes = 0;
        Ok(())
    }

    /// Events arrive in delivery order, each exactly once, from the session's first event on.
    fn check_order(&self) -> Result<(), TestCaseError> {
        let events: Vec<u64> = self
            .received
            .iter()
            .filter_map(|g| match g {
                Got::Event(id) => Some(*id),
                Got::Resumed => None,
            })
            .collect();
        let expected: Vec<u64> =
            (self.first_event..self.first_event + events.len() as u64).collect();
        prop_assert_eq!(events, expected);
        Ok(())
    }
}

fn run(limits: SessionLimits, clients: usize, actions: Vec<Action>) -> Result<(), TestCaseError> {
    let mut next_key = 0u64;
    let mut next_event = 0u64;
    let mut all: Vec<Client> = (0..clients)
        .map(|_| {
            next_key += 1;
            new_client(next_key, limits, next_event)
        })
        .collect();
    for a in actions {
        match a {
            Action::Deliver { pad } => {
                let frame = encode(Got::Event(next_event), pad);
                next_event += 1;
                for c in &mut all {
                    prop_assert!(c.session.deliver(frame.clone()));
                    c.model.deliver(frame.len());
                }
            }
            Action::Disconnect { client, lost } => {
                let c = &mut all[client];
                if !c.connected {
                    continue;
                }
                c.session.detach(c.generation, Instant::now());
                c.connected = false;
                c.model.attached = false;
                prop_assert!(c.session.detached_since().is_some());
                let keep = c
                    .received
                    .len()
                    .saturating_sub(lost)
                    .max(c.acked)
                    .max(c.attached_at);
                c.received.truncate(keep);
            }
            Action::Resume { client, write_now } => {
                let c = &mut all[client];
                let from = c.received.len() as u64;
                let covered = from + 1 >= c.model.first_kept();
                // Whether the gap fits the caps (it may not only when RESUMEDs piled up:
                // deliveries keep the buffer within them).
                let gap: Vec<usize> = c
                    .model
                    .replay
                    .iter()
                    .filter(|(s, _)| *s > from)
                    .map(|(_, len)| *len)
                    .collect();
                let fits = gap.len() <= limits.replay_frames
                    && gap.iter().sum::<usize>() <= limits.replay_bytes;
                // RESUMED is queued with the resume, as `Connection` does.
                let resumed = encode(Got::Resumed, 0);
                match c.session.resume_with(from, resumed.clone()) {
                    Ok(generation) => {
                        prop_assert!(
                            covered,
                            "resumed from {} past the replay: {:?}",
                            from,
                            c.model
                        );
                        c.generation = generation;
                        c.connected = true;
                        c.attached_at = c.received.len();
                        c.model.resume(from, resumed.len());
                        if write_now {
                            c.drain()?;
                            if fits {
                                // Nothing came in between: the replay went out whole.
                                prop_assert!(c.connected);
                                prop_assert_eq!(c.received.last(), Some(&Got::Resumed));
                            }
                        }
                    }
                    Err(e) => {
                        prop_assert_eq!(e, ResumeError::Lost);
                        prop_assert!(!covered, "resume from {} refused: {:?}", from, c.model);
                        // The client identifies again: a new session from the next event on.
                        next_key += 1;
                        *c = new_client(next_key, limits, next_event);
                    }
                }
            }
            Action::Drain { client } => {
                let c = &mut all[client];
                if c.connected {
                    c.drain()?;
                }
            }
            Action::Ack { client } => {
                let c = &mut all[client];
                if c.connected {
                    c.session.ack(c.received.len() as u64);
                    c.model.ack(c.received.len() as u64);
                    c.acked = c.received.len();
                }
            }
            Action::Stale { client } => {
                let c = &mut all[client];
                if c.generation == 0 {
                    continue;
                }
                let mut out = Vec::new();
                prop_assert_eq!(
                    c.session.take_pending(c.generation - 1, &mut out),
                    Err(Detach::Superseded)
                );
                c.session.detach(c.generation - 1, Instant::now());
                prop_assert_eq!(c.session.detached_since().is_none(), c.connected);
            }
        }
        for c in &all {
            // Bounded: the replay caps, plus at most a RESUMED not yet followed by anything.
            prop_assert!(c.session.replay_len().0 <= limits.replay_frames + 1);
            prop_assert_eq!(c.session.seq(), c.model.seq);
            prop_assert_eq!(
                c.session.replay_len(),
                (c.model.replay.len(), c.model.bytes)
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn resumed_streams_are_gap_free_duplicate_free_and_ordered(
        limits in limits(),
        (clients, actions) in (3usize..=5).prop_flat_map(|n| {
            (Just(n), proptest::collection::vec(action(n), 1..150))
        }),
    ) {
        run(limits, clients, actions)?;
    }
}
