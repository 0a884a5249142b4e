//! ISO8601 timestamps in the exact form Discord sends (`2016-04-30T11:18:25.796000+00:00`).

use std::fmt;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A UTC instant with millisecond precision.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    pub fn from_unix_ms(ms: u64) -> Self {
        Timestamp(ms as i64)
    }

    pub fn now() -> Self {
        Timestamp(Utc::now().timestamp_millis())
    }

    pub fn unix_ms(self) -> i64 {
        self.0
    }

    pub fn plus_secs(self, secs: i64) -> Self {
        Timestamp(self.0.saturating_add(secs.saturating_mul(1000)))
    }

    fn datetime(self) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(self.0)
            .single()
            .unwrap_or_default()
    }

    /// Parses any RFC 3339 timestamp; returns `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|d| Timestamp(d.timestamp_millis()))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}",
            self.datetime().format("%Y-%m-%dT%H:%M:%S%.6f+00:00")
        )
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Timestamp::parse(&s).ok_or_else(|| serde::de::Error::custom("invalid ISO8601 timestamp"))
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Timestamp {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::DateTime,
            )))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Timestamp {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_in_discord_format() {
        let t = Timestamp::from_unix_ms(1_462_015_105_796);
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"2016-04-30T11:18:25.796000+00:00\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
        assert_eq!(Timestamp::parse("2016-04-30T13:18:25.796+02:00"), Some(t));
        assert!(serde_json::from_str::<Timestamp>("\"yesterday\"").is_err());
    }
}
