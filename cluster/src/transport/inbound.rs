//! The receiving half: what this node knows of each sender's stream, and the delivery of events
//! to the inbound channel.
//!
//! [`SenderSlot`] is plain data: it takes a link's opening hello, then each frame's number, and
//! says what to report (a gap, a restart) or why the link must close. [`InboundSide`] wraps one
//! slot per sender node id in an async mutex that is held while the slot's events are handed to
//! the channel, so events of one sender reach the channel in the order the slot decided them,
//! even while a new link from that sender replaces an old one.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use enrichment_protocol::node::{GenerationId, NodeIdentity};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Inbound;
use super::frame::{FrameKind, HEADER_LEN, PREFIX_LEN};
use super::outbound::StreamHello;
use super::stats::{LinkGauge, ReceiveMeter, Stats};

/// Why a link's opening was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum OpenRefusal {
    /// A newer process of the same node id has already linked: this one is a leftover.
    #[error("generation {offered} is older than generation {current} already seen")]
    Stale {
        offered: GenerationId,
        current: GenerationId,
    },
    /// The sender's numbers went backwards, which a correct sender never does.
    #[error("the sender's numbers went back from {expected} to {got}")]
    Backwards { expected: u64, got: u64 },
}

/// Why a link stops.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LinkEnd {
    /// A newer link from the same sender took over.
    #[error("replaced by a newer link from the same sender")]
    Superseded,
    #[error("the sender's numbers went back from {expected} to {got}")]
    Backwards { expected: u64, got: u64 },
    /// The inbound channel is gone or the transport is shutting down.
    #[error("the transport is closing")]
    Closed,
}

/// Frames `expected..got` were lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Missing {
    pub expected: u64,
    pub got: u64,
}

/// One receiver's record of one sender node id.
#[derive(Debug, Default)]
pub(crate) struct SenderSlot {
    /// The newest generation seen from this node id.
    generation: Option<GenerationId>,
    /// The next number expected from that generation.
    expected: u64,
    /// The link currently carrying the stream, and the identity it proved.
    link: Option<(u64, NodeIdentity)>,
}

impl SenderSlot {
    /// Opens link `link` from `from`, which says `hello`; appends what to report to `events`.
    /// Replaces any current link from the same node id.
    pub fn open(
        &mut self,
        link: u64,
        from: &NodeIdentity,
        hello: StreamHello,
        events: &mut Vec<Inbound>,
    ) -> Result<(), OpenRefusal> {
        let same_generation = self.generation == Some(from.generation);
        let previous = match self.generation {
            Some(current) if from.generation < current => {
                return Err(OpenRefusal::Stale {
                    offered: from.generation,
                    current,
                });
            }
            Some(current) if from.generation > current => Some(current),
            _ => None,
        };
        let expected = if same_generation {
            self.expected
        } else {
            hello.stream_start
        };
        if hello.next_seq < expected {
            return Err(OpenRefusal::Backwards {
                expected,
                got: hello.next_seq,
            });
        }
        if let Some((_, old)) = self.link.take() {
            events.push(Inbound::PeerDown { peer: old });
        }
        if let Some(previous) = previous {
            events.push(Inbound::PeerRestarted {
                peer: from.clone(),
                previous,
            });
        }
        events.push(Inbound::PeerUp { peer: from.clone() });
        if hello.next_seq > expected {
            events.push(Inbound::Gap {
                from: from.clone(),
                expected,
                got: hello.next_seq,
            });
        }
        self.generation = Some(from.generation);
        self.expected = hello.next_seq;
        self.link = Some((link, from.clone()));
        Ok(())
    }

    /// Takes frame `seq` on link `link`: `Some` when frames before it are missing.
    pub fn frame(&mut self, link: u64, seq: u64) -> Result<Option<Missing>, LinkEnd> {
        let missing = self.advance(link, seq)?;
        self.expected = seq.saturating_add(1);
        Ok(missing)
    }

    /// Takes a keep-alive saying the next number will be `next`.
    pub fn next_hint(&mut self, link: u64, next: u64) -> Result<Option<Missing>, LinkEnd> {
        let missing = self.advance(link, next)?;
        self.expected = next;
        Ok(missing)
    }

    fn advance(&self, link: u64, seq: u64) -> Result<Option<Missing>, LinkEnd> {
        if !matches!(self.link, Some((current, _)) if current == link) {
            return Err(LinkEnd::Superseded);
        }
        if seq < self.expected {
            return Err(LinkEnd::Backwards {
                expected: self.expected,
                got: seq,
            });
        }
        Ok((seq > self.expected).then_some(Missing {
            expected: self.expected,
            got: seq,
        }))
    }

    /// Closes link `link`; returns the peer to report down if it was the current link.
    pub fn close(&mut self, link: u64) -> Option<NodeIdentity> {
        match &self.link {
            Some((current, _)) if *current == link => self.link.take().map(|(_, peer)| peer),
            _ => None,
        }
    }
}

/// The receiving side of one transport: a slot per sender and the inbound channel.
#[derive(Debug)]
pub(crate) struct InboundSide {
    slots: parking_lot::Mutex<HashMap<String, Arc<tokio::sync::Mutex<SenderSlot>>>>,
    tx: mpsc::Sender<Inbound>,
    next_link: AtomicU64,
    stats: Arc<Stats>,
    /// Cancelled when the transport shuts down: deliveries waiting for room give up.
    stop: CancellationToken,
}

impl InboundSide {
    pub fn new(
        capacity: usize,
        stats: Arc<Stats>,
        stop: CancellationToken,
    ) -> (Arc<InboundSide>, mpsc::Receiver<Inbound>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let side = InboundSide {
            slots: parking_lot::Mutex::new(HashMap::new()),
            tx,
            next_link: AtomicU64::new(0),
            stats,
            stop,
        };
        (Arc::new(side), rx)
    }

    /// Opens a link from an authenticated `peer`, reporting what it brings (a replaced link, a
    /// restart, a gap). Waits while the channel is full.
    pub async fn open(
        self: &Arc<Self>,
        peer: NodeIdentity,
        hello: StreamHello,
    ) -> Result<InboundLink, OpenError> {
        let slot = self
            .slots
            .lock()
            .entry(peer.node_id.clone())
            .or_default()
            .clone();
        let id = self.next_link.fetch_add(1, Ordering::Relaxed);
        let meter = ReceiveMeter::new(&peer.node_id);
        let mut guard = slot.lock().await;
        let mut events = Vec::with_capacity(4);
        guard.open(id, &peer, hello, &mut events)?;
        let link = InboundLink {
            side: self.clone(),
            slot: slot.clone(),
            id,
            peer,
            meter,
            _gauge: LinkGauge::up("inbound"),
        };
        for event in events {
            match &event {
                Inbound::PeerRestarted { .. } => link.meter.restarted(&self.stats),
                Inbound::Gap { expected, got, .. } => link.meter.gap(&self.stats, got - expected),
                _ => {}
            }
            self.deliver(event).await.map_err(|_| OpenError::Closed)?;
        }
        drop(guard);
        Ok(link)
    }

    async fn deliver(&self, event: Inbound) -> Result<(), LinkEnd> {
        tokio::select! {
            biased;
            sent = self.tx.send(event) => sent.map_err(|_| LinkEnd::Closed),
            _ = self.stop.cancelled() => Err(LinkEnd::Closed),
        }
    }
}

/// Why [`InboundSide::open`] did not open a link.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpenError {
    #[error(transparent)]
    Refused(#[from] OpenRefusal),
    #[error("the transport is closing")]
    Closed,
}

/// One open link from one sender, as its reader sees it.
#[derive(Debug)]
pub(crate) struct InboundLink {
    side: Arc<InboundSide>,
    slot: Arc<tokio::sync::Mutex<SenderSlot>>,
    id: u64,
    peer: NodeIdentity,
    meter: ReceiveMeter,
    _gauge: LinkGauge,
}

impl InboundLink {
    /// Delivers a frame, preceded by a gap if frames before it are missing. Waits while the
    /// channel is full.
    pub async fn frame(&self, kind: FrameKind, seq: u64, payload: Bytes) -> Result<(), LinkEnd> {
        let mut slot = self.slot.lock().await;
        let missing = slot.frame(self.id, seq)?;
        self.report(missing).await?;
        let wire_len = PREFIX_LEN + HEADER_LEN + payload.len();
        self.side
            .deliver(Inbound::Frame {
                from: self.peer.clone(),
                kind,
                seq,
                payload,
            })
            .await?;
        self.meter.received(&self.side.stats, kind, wire_len);
        drop(slot);
        Ok(())
    }

    /// Takes the sender's word that its next number is `next`.
    pub async fn next_hint(&self, next: u64) -> Result<(), LinkEnd> {
        let mut slot = self.slot.lock().await;
        let missing = slot.next_hint(self.id, next)?;
        self.report(missing).await?;
        drop(slot);
        Ok(())
    }

    async fn report(&self, missing: Option<Missing>) -> Result<(), LinkEnd> {
        let Some(Missing { expected, got }) = missing else {
            return Ok(());
        };
        self.meter.gap(&self.side.stats, got - expected);
        self.side
            .deliver(Inbound::Gap {
                from: self.peer.clone(),
                expected,
                got,
            })
            .await
    }

    /// Closes the link, reporting the peer down unless a newer link already replaced it.
    pub async fn close(self) {
        let mut slot = self.slot.lock().await;
        if let Some(peer) = slot.close(self.id) {
            // Nothing to do if the channel is gone: there is nobody to tell.
            let _ = self.side.deliver(Inbound::PeerDown { peer }).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(generation: u64) -> NodeIdentity {
        NodeIdentity::new("a", GenerationId(generation))
    }

    fn hello(next_seq: u64, stream_start: u64) -> StreamHello {
        StreamHello {
            next_seq,
            stream_start,
        }
    }

    fn open(slot: &mut SenderSlot, link: u64, from: &NodeIdentity, h: StreamHello) -> Vec<Inbound> {
        let mut events = Vec::new();
        slot.open(link, from, h, &mut events).unwrap();
        events
    }

    #[test]
    fn a_first_link_expects_the_stream_start_the_sender_states() {
        let mut slot = SenderSlot::default();
        assert_eq!(
            open(&mut slot, 1, &node(1), hello(0, 0)),
            [Inbound::PeerUp { peer: node(1) }]
        );
        assert_eq!(slot.frame(1, 0), Ok(None));
        assert_eq!(slot.frame(1, 1), Ok(None));

        // Frames 3..5 were spent before this receiver process was first reached.
        let mut fresh = SenderSlot::default();
        assert_eq!(
            open(&mut fresh, 1, &node(1), hello(5, 3)),
            [
                Inbound::PeerUp { peer: node(1) },
                Inbound::Gap {
                    from: node(1),
                    expected: 3,
                    got: 5
                }
            ]
        );
        assert_eq!(fresh.frame(1, 5), Ok(None));
    }

    #[test]
    fn a_jump_within_a_link_is_a_gap_and_a_step_back_closes_it() {
        let mut slot = SenderSlot::default();
        open(&mut slot, 1, &node(1), hello(0, 0));
        assert_eq!(slot.frame(1, 0), Ok(None));
        assert_eq!(
            slot.frame(1, 4),
            Ok(Some(Missing {
                expected: 1,
                got: 4
            }))
        );
        assert_eq!(
            slot.frame(1, 4),
            Err(LinkEnd::Backwards {
                expected: 5,
                got: 4
            })
        );
        assert_eq!(
            slot.next_hint(1, 7),
            Ok(Some(Missing {
                expected: 5,
                got: 7
            }))
        );
        assert_eq!(slot.next_hint(1, 7), Ok(None));
        assert_eq!(slot.frame(1, 7), Ok(None));
    }

    #[test]
    fn a_reconnect_is_compared_with_the_last_frame_seen_not_with_the_senders_start() {
        let mut slot = SenderSlot::default();
        open(&mut slot, 1, &node(1), hello(0, 0));
        slot.frame(1, 0).unwrap();
        slot.frame(1, 1).unwrap();
        assert_eq!(slot.close(1), Some(node(1)));
        // Frames 2 and 3 were lost with the connection; the sender claims a start of 2 but the
        // record wins either way.
        assert_eq!(
            open(&mut slot, 2, &node(1), hello(4, 0)),
            [
                Inbound::PeerUp { peer: node(1) },
                Inbound::Gap {
                    from: node(1),
                    expected: 2,
                    got: 4
                }
            ]
        );
        // A clean reconnect reports nothing but the link.
        slot.close(2);
        assert_eq!(
            open(&mut slot, 3, &node(1), hello(4, 0)),
            [Inbound::PeerUp { peer: node(1) }]
        );
        let mut events = Vec::new();
        assert_eq!(
            slot.open(4, &node(1), hello(3, 0), &mut events),
            Err(OpenRefusal::Backwards {
                expected: 4,
                got: 3
            })
        );
        assert!(events.is_empty());
    }

    #[test]
    fn a_new_link_replaces_the_old_one_which_may_not_deliver_any_more() {
        let mut slot = SenderSlot::default();
        open(&mut slot, 1, &node(1), hello(0, 0));
        slot.frame(1, 0).unwrap();
        assert_eq!(
            open(&mut slot, 2, &node(1), hello(2, 0)),
            [
                Inbound::PeerDown { peer: node(1) },
                Inbound::PeerUp { peer: node(1) },
                Inbound::Gap {
                    from: node(1),
                    expected: 1,
                    got: 2
                }
            ]
        );
        assert_eq!(slot.frame(1, 1), Err(LinkEnd::Superseded));
        assert_eq!(slot.close(1), None, "the old link's end is not news");
        assert_eq!(slot.frame(2, 2), Ok(None));
    }

    #[test]
    fn a_new_generation_is_a_restart_and_an_older_one_is_refused() {
        let mut slot = SenderSlot::default();
        open(&mut slot, 1, &node(1), hello(0, 0));
        for seq in 0..10 {
            slot.frame(1, seq).unwrap();
        }
        slot.close(1);
        assert_eq!(
            open(&mut slot, 2, &node(2), hello(0, 0)),
            [
                Inbound::PeerRestarted {
                    peer: node(2),
                    previous: GenerationId(1)
                },
                Inbound::PeerUp { peer: node(2) }
            ]
        );
        assert_eq!(slot.frame(2, 0), Ok(None));
        let mut events = Vec::new();
        assert_eq!(
            slot.open(3, &node(1), hello(10, 0), &mut events),
            Err(OpenRefusal::Stale {
                offered: GenerationId(1),
                current: GenerationId(2)
            })
        );
        assert!(events.is_empty());
        assert_eq!(
            slot.frame(2, 1),
            Ok(None),
            "the refusal left the live link alone"
        );
    }

    #[tokio::test]
    async fn events_of_a_slow_consumer_wait_in_order_and_shutdown_releases_the_waiters() {
        let stop = CancellationToken::new();
        let (side, mut rx) = InboundSide::new(1, Arc::default(), stop.clone());
        let link = side.open(node(1), hello(0, 0)).await.unwrap();
        // The channel holds one event (PeerUp); the next frame waits for room.
        let sending = tokio::spawn(async move {
            link.frame(FrameKind::Fanout, 0, Bytes::from_static(b"x"))
                .await?;
            link.frame(FrameKind::Fanout, 2, Bytes::from_static(b"y"))
                .await?;
            Ok::<_, LinkEnd>(link)
        });
        assert_eq!(rx.recv().await, Some(Inbound::PeerUp { peer: node(1) }));
        assert!(matches!(
            rx.recv().await,
            Some(Inbound::Frame { seq: 0, .. })
        ));
        assert!(matches!(
            rx.recv().await,
            Some(Inbound::Gap {
                expected: 1,
                got: 2,
                ..
            })
        ));
        assert!(matches!(
            rx.recv().await,
            Some(Inbound::Frame { seq: 2, .. })
        ));
        let link = sending.await.unwrap().unwrap();

        // Full channel, then shutdown: the waiting delivery gives up instead of hanging.
        link.next_hint(4).await.unwrap();
        let waiting = tokio::spawn(async move { link.next_hint(6).await });
        tokio::task::yield_now().await;
        stop.cancel();
        assert_eq!(waiting.await.unwrap(), Err(LinkEnd::Closed));
    }
}
