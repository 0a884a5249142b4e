//! Counters of a transport: plain atomics for [`TransportStats`], and the same events as
//! Prometheus metrics (`enrichment_cluster_*`, labelled by peer node id).

use std::sync::atomic::{AtomicU64, Ordering};

use metrics::{Counter, Gauge, counter, gauge};

use super::FrameKind;

/// What a transport has done since it started, summed over peers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Frames and bytes (headers included) handed to links.
    pub frames_sent: u64,
    pub bytes_sent: u64,
    /// Frames and bytes delivered to the inbound channel.
    pub frames_received: u64,
    pub bytes_received: u64,
    /// Frames refused by `send` because the peer's queue was full.
    pub overflows: u64,
    /// Queued frames thrown away unsent: the peer was removed, the transport closed, or (in
    /// memory) a partition broke the link.
    pub discarded: u64,
    /// Gap events reported, and the frames they cover.
    pub gaps: u64,
    pub frames_missed: u64,
    /// Handshakes this node refused or that refused this node, on either side of a link.
    pub handshakes_refused: u64,
    /// Outbound links opened again after one to the same peer was up before.
    pub reconnects: u64,
    /// Senders seen with a new generation.
    pub peer_restarts: u64,
}

macro_rules! stats_fields {
    ($($field:ident),*) => {
        #[derive(Debug, Default)]
        pub(crate) struct Stats {
            $(pub $field: AtomicU64,)*
        }

        impl Stats {
            pub fn snapshot(&self) -> TransportStats {
                TransportStats {
                    $($field: self.$field.load(Ordering::Relaxed),)*
                }
            }
        }
    };
}

stats_fields!(
    frames_sent,
    bytes_sent,
    frames_received,
    bytes_received,
    overflows,
    discarded,
    gaps,
    frames_missed,
    handshakes_refused,
    reconnects,
    peer_restarts
);

pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// The metrics of the sending side towards one peer.
#[derive(Debug)]
pub(crate) struct SendMeter {
    bytes: Counter,
    control_frames: Counter,
    fanout_frames: Counter,
    queue_bytes: Gauge,
    overflows: Counter,
    discarded: Counter,
    reconnects: Counter,
}

impl SendMeter {
    pub fn new(peer: &str) -> SendMeter {
        let peer = peer.to_owned();
        SendMeter {
            bytes: counter!("enrichment_cluster_sent_bytes_total", "peer" => peer.clone()),
            control_frames: counter!("enrichment_cluster_sent_frames_total", "peer" => peer.clone(), "kind" => "control"),
            fanout_frames: counter!("enrichment_cluster_sent_frames_total", "peer" => peer.clone(), "kind" => "fanout"),
            queue_bytes: gauge!("enrichment_cluster_queue_bytes", "peer" => peer.clone()),
            overflows: counter!("enrichment_cluster_send_overflows_total", "peer" => peer.clone()),
            discarded: counter!("enrichment_cluster_discarded_frames_total", "peer" => peer.clone()),
            reconnects: counter!("enrichment_cluster_reconnects_total", "peer" => peer),
        }
    }

    pub fn sent(&self, stats: &Stats, kind: FrameKind, wire_len: usize) {
        add(&stats.frames_sent, 1);
        add(&stats.bytes_sent, wire_len as u64);
        self.bytes.increment(wire_len as u64);
        match kind {
            FrameKind::Control => self.control_frames.increment(1),
            FrameKind::Fanout => self.fanout_frames.increment(1),
        }
    }

    pub fn queue_bytes(&self, bytes: usize) {
        self.queue_bytes.set(bytes as f64);
    }

    pub fn overflow(&self, stats: &Stats) {
        add(&stats.overflows, 1);
        self.overflows.increment(1);
    }

    pub fn discarded(&self, stats: &Stats, frames: usize) {
        add(&stats.discarded, frames as u64);
        self.discarded.increment(frames as u64);
    }

    pub fn reconnected(&self, stats: &Stats) {
        add(&stats.reconnects, 1);
        self.reconnects.increment(1);
    }
}

/// The metrics of the receiving side from one peer.
#[derive(Debug)]
pub(crate) struct ReceiveMeter {
    bytes: Counter,
    control_frames: Counter,
    fanout_frames: Counter,
    gaps: Counter,
    missed: Counter,
    restarts: Counter,
}

impl ReceiveMeter {
    pub fn new(peer: &str) -> ReceiveMeter {
        let peer = peer.to_owned();
        ReceiveMeter {
            bytes: counter!("enrichment_cluster_received_bytes_total", "peer" => peer.clone()),
            control_frames: counter!("enrichment_cluster_received_frames_total", "peer" => peer.clone(), "kind" => "control"),
            fanout_frames: counter!("enrichment_cluster_received_frames_total", "peer" => peer.clone(), "kind" => "fanout"),
            gaps: counter!("enrichment_cluster_gaps_total", "peer" => peer.clone()),
            missed: counter!("enrichment_cluster_missed_frames_total", "peer" => peer.clone()),
            restarts: counter!("enrichment_cluster_peer_restarts_total", "peer" => peer),
        }
    }

    pub fn received(&self, stats: &Stats, kind: FrameKind, wire_len: usize) {
        add(&stats.frames_received, 1);
        add(&stats.bytes_received, wire_len as u64);
        self.bytes.increment(wire_len as u64);
        match kind {
            FrameKind::Control => self.control_frames.increment(1),
            FrameKind::Fanout => self.fanout_frames.increment(1),
        }
    }

    pub fn gap(&self, stats: &Stats, missed: u64) {
        add(&stats.gaps, 1);
        add(&stats.frames_missed, missed);
        self.gaps.increment(1);
        self.missed.increment(missed);
    }

    pub fn restarted(&self, stats: &Stats) {
        add(&stats.peer_restarts, 1);
        self.restarts.increment(1);
    }
}

/// Counts a refused handshake, by reason.
pub(crate) fn handshake_refused(stats: &Stats, reason: &'static str) {
    add(&stats.handshakes_refused, 1);
    counter!("enrichment_cluster_handshakes_refused_total", "reason" => reason).increment(1);
}

/// One open link in the `enrichment_cluster_links` gauge, by direction, while it lives.
#[derive(Debug)]
pub(crate) struct LinkGauge(Gauge);

impl LinkGauge {
    pub fn up(direction: &'static str) -> LinkGauge {
        let gauge = gauge!("enrichment_cluster_links", "direction" => direction);
        gauge.increment(1.0);
        LinkGauge(gauge)
    }
}

impl Drop for LinkGauge {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}
