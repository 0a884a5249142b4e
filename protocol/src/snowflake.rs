//! Snowflake ids, exactly as Discord lays them out.
//!
//! `| 42 bits ms since 2015-01-01 | 5 bits worker | 5 bits process | 12 bits increment |`.
//! On the wire a snowflake is a decimal **string**; we also accept a JSON number on input because
//! some clients send one. The generator is hand-written on purpose (DESIGN.md §8): it is tiny, and
//! its monotonicity is what orders messages in storage and on the gateway.

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Milliseconds from the Unix epoch to the Discord epoch, 2015-01-01T00:00:00Z.
pub const DISCORD_EPOCH_MS: u64 = 1_420_070_400_000;

/// A Discord snowflake id.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Snowflake(pub u64);

impl Snowflake {
    /// The smallest id whose timestamp is `unix_ms`: a pagination cursor for "since this moment".
    pub fn from_unix_ms(unix_ms: u64) -> Self {
        Snowflake(unix_ms.saturating_sub(DISCORD_EPOCH_MS) << 22)
    }

    /// Milliseconds since the Unix epoch at which this id was minted.
    pub fn unix_ms(self) -> u64 {
        (self.0 >> 22) + DISCORD_EPOCH_MS
    }

    pub fn worker_id(self) -> u8 {
        ((self.0 & 0x3E_0000) >> 17) as u8
    }

    pub fn process_id(self) -> u8 {
        ((self.0 & 0x1_F000) >> 12) as u8
    }

    pub fn increment(self) -> u16 {
        (self.0 & 0xFFF) as u16
    }

    pub fn get(self) -> u64 {
        self.0
    }

    /// The creation time as an ISO8601 timestamp (Discord derives `timestamp` fields this way).
    pub fn timestamp(self) -> crate::Timestamp {
        crate::Timestamp::from_unix_ms(self.unix_ms())
    }
}

impl fmt::Debug for Snowflake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Snowflake({})", self.0)
    }
}

impl fmt::Display for Snowflake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Why a string is not a snowflake.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("value \"{0}\" is not snowflake")]
pub struct ParseSnowflakeError(pub String);

impl FromStr for Snowflake {
    type Err = ParseSnowflakeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // u64::from_str accepts a leading '+', Discord does not.
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseSnowflakeError(s.to_owned()));
        }
        s.parse::<u64>()
            .map(Snowflake)
            .map_err(|_| ParseSnowflakeError(s.to_owned()))
    }
}

impl From<u64> for Snowflake {
    fn from(v: u64) -> Self {
        Snowflake(v)
    }
}

impl Serialize for Snowflake {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Snowflake {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Snowflake;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a snowflake as a string of digits")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Snowflake, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Snowflake, E> {
                Ok(Snowflake(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Snowflake, E> {
                u64::try_from(v)
                    .map(Snowflake)
                    .map_err(|_| E::custom(format!("value \"{v}\" is not snowflake")))
            }
        }
        deserializer.deserialize_any(V)
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Snowflake {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some("Snowflake id as a decimal string"))
            .examples(["175928847299117063"])
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Snowflake {}

/// The worker and process ids a generator mints with: 5 bits each, so 1,024 pairs. Two
/// generators that mint at the same time must never share a pair, or they hand out the same
/// id in the same millisecond; in a cluster each node holds its pair under a lease in the
/// shared store.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct IdPair {
    pub worker_id: u8,
    pub process_id: u8,
}

impl IdPair {
    /// How many pairs there are.
    pub const COUNT: u16 = 1024;

    /// The pair, or `None` when either id does not fit in 5 bits.
    pub fn new(worker_id: u8, process_id: u8) -> Option<IdPair> {
        (worker_id < 32 && process_id < 32).then_some(IdPair {
            worker_id,
            process_id,
        })
    }

    /// Whether both ids fit in 5 bits.
    pub fn is_valid(self) -> bool {
        IdPair::new(self.worker_id, self.process_id).is_some()
    }

    /// `worker_id * 32 + process_id`: 0 to 1023 for a valid pair.
    pub fn index(self) -> u16 {
        u16::from(self.worker_id) * 32 + u16::from(self.process_id)
    }

    /// The pair with this [`IdPair::index`], or `None` from 1024 on.
    pub fn from_index(index: u16) -> Option<IdPair> {
        (index < IdPair::COUNT).then_some(IdPair {
            worker_id: (index / 32) as u8,
            process_id: (index % 32) as u8,
        })
    }
}

impl fmt::Display for IdPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "worker_id {}, process_id {}",
            self.worker_id, self.process_id
        )
    }
}

/// Mints strictly increasing snowflakes for one (worker, process) pair.
///
/// The increment resets every millisecond; if 4096 ids are asked for within one millisecond, or
/// the wall clock steps backwards, the generator borrows from the next millisecond instead of
/// repeating an id, so ids stay unique and ordered.
#[derive(Debug)]
pub struct SnowflakeGenerator {
    worker_id: u64,
    process_id: u64,
    /// (last ms since Discord epoch, last increment)
    state: Mutex<(u64, u64)>,
}

impl SnowflakeGenerator {
    /// `worker_id` and `process_id` are truncated to their 5 bits.
    pub fn new(worker_id: u8, process_id: u8) -> Self {
        SnowflakeGenerator {
            worker_id: u64::from(worker_id & 0x1F),
            process_id: u64::from(process_id & 0x1F),
            state: Mutex::new((0, 0)),
        }
    }

    pub fn for_pair(pair: IdPair) -> Self {
        SnowflakeGenerator::new(pair.worker_id, pair.process_id)
    }

    pub fn next_id(&self) -> Snowflake {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(DISCORD_EPOCH_MS);
        self.next_at(now)
    }

    /// The next id given the current Unix time in ms; split out so tests control the clock.
    pub fn next_at(&self, unix_ms: u64) -> Snowflake {
        let now = unix_ms.saturating_sub(DISCORD_EPOCH_MS);
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (last_ms, last_inc) = *state;
        let (ms, inc) = if now > last_ms {
            (now, 0)
        } else if last_inc < 0xFFF {
            (last_ms, last_inc + 1)
        } else {
            (last_ms + 1, 0)
        };
        *state = (ms, inc);
        Snowflake((ms << 22) | (self.worker_id << 17) | (self.process_id << 12) | inc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pair_has_its_own_index_and_out_of_range_ids_are_no_pair() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..IdPair::COUNT {
            let pair = IdPair::from_index(i).unwrap();
            assert!(pair.is_valid());
            assert_eq!(pair.index(), i);
            assert!(seen.insert((pair.worker_id, pair.process_id)));
        }
        assert_eq!(IdPair::from_index(1024), None);
        assert_eq!(IdPair::new(32, 0), None);
        assert_eq!(IdPair::new(0, 32), None);
        assert!(
            !IdPair {
                worker_id: 40,
                process_id: 1
            }
            .is_valid()
        );
        let pair = IdPair::new(3, 7).unwrap();
        assert_eq!(pair.to_string(), "worker_id 3, process_id 7");
        let id = SnowflakeGenerator::for_pair(pair).next_id();
        assert_eq!((id.worker_id(), id.process_id()), (3, 7));
    }

    #[test]
    fn decodes_discord_documented_example() {
        // The example id from Discord's reference page.
        let id: Snowflake = "175928847299117063".parse().unwrap();
        assert_eq!(id.unix_ms(), 1_462_015_105_796);
        assert_eq!(id.worker_id(), 1);
        assert_eq!(id.process_id(), 0);
        assert_eq!(id.increment(), 7);
        assert_eq!(
            id.timestamp().to_string(),
            "2016-04-30T11:18:25.796000+00:00"
        );
    }

    #[test]
    fn serializes_as_string_and_accepts_numbers() {
        let id = Snowflake(175928847299117063);
        assert_eq!(
            serde_json::to_string(&id).unwrap(),
            "\"175928847299117063\""
        );
        let a: Snowflake = serde_json::from_str("\"175928847299117063\"").unwrap();
        let b: Snowflake = serde_json::from_str("175928847299117063").unwrap();
        assert_eq!(a, id);
        assert_eq!(b, id);
        for bad in [
            "\"\"",
            "\"abc\"",
            "\"+1\"",
            "\"-1\"",
            "-5",
            "\"18446744073709551616\"",
            "1.5",
        ] {
            assert!(
                serde_json::from_str::<Snowflake>(bad).is_err(),
                "{bad} accepted"
            );
        }
    }

    #[test]
    fn generator_is_strictly_increasing_within_and_across_milliseconds() {
        let g = SnowflakeGenerator::new(3, 7);
        let t = DISCORD_EPOCH_MS + 1_000;
        let mut prev = Snowflake(0);
        for _ in 0..10_000 {
            let id = g.next_at(t);
            assert!(id > prev);
            assert_eq!(id.worker_id(), 3);
            assert_eq!(id.process_id(), 7);
            prev = id;
        }
        // 10_000 ids in one ms overflow the 12-bit increment twice: borrowed two ms.
        assert_eq!(prev.unix_ms(), t + 2);
        // A clock that steps backwards never produces a smaller id.
        let back = g.next_at(t - 500);
        assert!(back > prev);
    }

    #[test]
    fn cursor_from_time_orders_before_ids_of_that_time() {
        let g = SnowflakeGenerator::new(31, 31);
        let t = DISCORD_EPOCH_MS + 123_456;
        let id = g.next_at(t);
        assert!(Snowflake::from_unix_ms(t) <= id);
        assert!(Snowflake::from_unix_ms(t + 1) > id);
        assert_eq!(Snowflake::from_unix_ms(0), Snowflake(0));
    }
}
