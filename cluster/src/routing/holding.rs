//! Frames of guilds that are changing hands, held until the previous owner's end-of-epoch
//! marker (see the handoff in the router's module docs).
//!
//! [`Holdings`] is plain data (no I/O, time passed in), so its bounds are tested without a
//! cluster: the router decides which frames to hold and what to do with what comes out.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use enrichment_protocol::Snowflake;

/// What became of a frame offered to [`Holdings::hold`].
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Hold<T> {
    /// Not part of the handoff being waited for (it comes from a third node): hand it on now.
    Pass(T),
    /// Held until the marker.
    Held,
    /// The guild's holding grew past its bounds and was dropped, this frame with it: the
    /// guild's sessions resync.
    GaveUp,
}

/// Per guild: the frames from one node (the guild's next owner), in the order they came.
#[derive(Debug)]
pub(super) struct Holdings<T> {
    guilds: HashMap<Snowflake, Holding<T>>,
    max_bytes: usize,
    max_age: Duration,
}

#[derive(Debug)]
struct Holding<T> {
    from: String,
    since: Instant,
    /// The frames' bytes on the wire, which `max_bytes` bounds.
    bytes: usize,
    frames: Vec<T>,
}

impl<T> Holdings<T> {
    /// Each guild's holding is given up past `max_bytes` or `max_age`.
    pub fn new(max_bytes: usize, max_age: Duration) -> Self {
        Holdings {
            guilds: HashMap::new(),
            max_bytes,
            max_age,
        }
    }

    /// Holds a frame of `guild` from `from`, a node other than the guild's owner as known
    /// here. The first frame of a guild decides which node's frames are held.
    pub fn hold(
        &mut self,
        guild: Snowflake,
        from: &str,
        frame: T,
        bytes: usize,
        now: Instant,
    ) -> Hold<T> {
        let h = self.guilds.entry(guild).or_insert_with(|| Holding {
            from: from.to_owned(),
            since: now,
            bytes: 0,
            frames: Vec::new(),
        });
        if h.from != from {
            return Hold::Pass(frame);
        }
        h.bytes += bytes;
        h.frames.push(frame);
        if h.bytes > self.max_bytes || now.duration_since(h.since) > self.max_age {
            self.guilds.remove(&guild);
            return Hold::GaveUp;
        }
        Hold::Held
    }

    /// The previous owner's marker for `guild`, naming `next`: the frames held from `next`,
    /// in order, to hand on now. Frames held from another node are dropped.
    pub fn release(&mut self, guild: Snowflake, next: &str) -> Vec<T> {
        match self.guilds.remove(&guild) {
            Some(h) if h.from == next => h.frames,
            _ => Vec::new(),
        }
    }

    /// Drops what is held for these guilds (their sessions resync).
    pub fn drop_guilds<'a>(&mut self, guilds: impl IntoIterator<Item = &'a Snowflake>) {
        for g in guilds {
            self.guilds.remove(g);
        }
    }

    /// Drops everything held from `node` (it is gone); returns the guilds.
    pub fn drop_from(&mut self, node: &str) -> HashSet<Snowflake> {
        let gone: HashSet<Snowflake> = self
            .guilds
            .iter()
            .filter(|(_, h)| h.from == node)
            .map(|(g, _)| *g)
            .collect();
        self.drop_guilds(&gone);
        gone
    }

    /// Drops the holdings older than `max_age` whether or not more frames came, and returns
    /// their guilds: a marker that never arrives must not keep frames, and the sessions
    /// waiting for them, for good.
    pub fn expire(&mut self, now: Instant) -> Vec<Snowflake> {
        let expired: Vec<Snowflake> = self
            .guilds
            .iter()
            .filter(|(_, h)| now.duration_since(h.since) > self.max_age)
            .map(|(g, _)| *g)
            .collect();
        self.drop_guilds(&expired);
        expired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: Snowflake = Snowflake(1);
    const H: Snowflake = Snowflake(2);

    fn holdings() -> Holdings<u32> {
        Holdings::new(100, Duration::from_secs(10))
    }

    #[test]
    fn frames_from_the_next_owner_wait_for_the_marker_and_come_out_in_order() {
        let mut h = holdings();
        let t = Instant::now();
        for n in 0..3 {
            assert_eq!(h.hold(G, "node-b", n, 10, t), Hold::Held);
        }
        // A third node's frame is not part of this handoff.
        assert_eq!(h.hold(G, "node-c", 9, 10, t), Hold::Pass(9));
        assert_eq!(h.release(G, "node-b"), vec![0, 1, 2]);
        assert!(h.release(G, "node-b").is_empty(), "released once");
    }

    #[test]
    fn a_marker_naming_another_node_releases_nothing() {
        let mut h = holdings();
        let t = Instant::now();
        assert_eq!(h.hold(G, "node-b", 1, 10, t), Hold::Held);
        assert!(h.release(G, "node-d").is_empty());
        // The holding is gone with that marker: a new one starts from the next frame.
        assert_eq!(h.hold(G, "node-d", 2, 10, t), Hold::Held);
        assert_eq!(h.release(G, "node-d"), vec![2]);
    }

    #[test]
    fn a_holding_past_its_bytes_or_its_age_is_given_up_when_a_frame_comes() {
        let mut h = holdings();
        let t = Instant::now();
        assert_eq!(h.hold(G, "node-b", 1, 60, t), Hold::Held);
        assert_eq!(h.hold(G, "node-b", 2, 60, t), Hold::GaveUp);
        assert!(h.release(G, "node-b").is_empty(), "dropped");

        assert_eq!(h.hold(H, "node-b", 1, 1, t), Hold::Held);
        let late = t + Duration::from_secs(11);
        assert_eq!(h.hold(H, "node-b", 2, 1, late), Hold::GaveUp);
    }

    #[test]
    fn a_holding_past_its_age_expires_with_no_frame_after_it() {
        let mut h = holdings();
        let t = Instant::now();
        assert_eq!(h.hold(G, "node-b", 1, 1, t), Hold::Held);
        assert_eq!(
            h.hold(H, "node-b", 1, 1, t + Duration::from_secs(5)),
            Hold::Held
        );
        assert!(h.expire(t + Duration::from_secs(10)).is_empty(), "not yet");
        assert_eq!(h.expire(t + Duration::from_secs(11)), vec![G]);
        assert!(h.release(G, "node-b").is_empty(), "given up");
        assert_eq!(h.release(H, "node-b"), vec![1], "the younger one stays");
    }

    #[test]
    fn a_node_that_is_gone_takes_its_holdings_with_it() {
        let mut h = holdings();
        let t = Instant::now();
        h.hold(G, "node-b", 1, 1, t);
        h.hold(H, "node-c", 1, 1, t);
        assert_eq!(h.drop_from("node-b"), HashSet::from([G]));
        assert!(h.release(G, "node-b").is_empty());
        assert_eq!(h.release(H, "node-c"), vec![1]);
    }
}
