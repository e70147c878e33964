//! Instants as milliseconds since the Unix epoch: cheap to compare and store,
//! shown to clients as RFC 3339 strings in UTC.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, utoipa::ToSchema)]
#[schema(value_type = String, format = DateTime, example = "2026-12-01T08:00:00Z")]
pub struct Timestamp(i64);

impl Timestamp {
    /// The earliest and latest instants accepted from clients (years 1970
    /// to 9999), so that every stored value formats back to RFC 3339.
    const MIN_MILLIS: i64 = 0;
    const MAX_MILLIS: i64 = 253_402_300_799_999;

    pub fn now() -> Self {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Self(i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX))
    }

    pub const fn from_millis(millis: i64) -> Self {
        Self(millis)
    }

    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// `self` plus whole seconds, saturating.
    pub fn plus_secs(self, secs: u64) -> Self {
        let millis = i64::try_from(secs).unwrap_or(i64::MAX).saturating_mul(1000);
        Self(self.0.saturating_add(millis))
    }

    /// Parses an RFC 3339 string, e.g. `2026-12-01T08:00:00Z`.
    pub fn parse_rfc3339(s: &str) -> Result<Self, String> {
        let parsed = OffsetDateTime::parse(s, &Rfc3339)
            .map_err(|e| format!("not an RFC 3339 time ({e})"))?;
        let millis = parsed.unix_timestamp_nanos() / 1_000_000;
        i64::try_from(millis)
            .ok()
            .filter(|m| (Self::MIN_MILLIS..=Self::MAX_MILLIS).contains(m))
            .map(Self)
            .ok_or_else(|| "must lie between 1970 and 9999".to_string())
    }

    pub fn to_rfc3339(self) -> String {
        let nanos = i128::from(self.0) * 1_000_000;
        OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_else(|| format!("@{}ms", self.0))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse_rfc3339(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_rfc3339() {
        let t = Timestamp::parse_rfc3339("2026-12-01T08:00:00Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-12-01T08:00:00Z");
        let t = Timestamp::parse_rfc3339("2026-12-01T08:00:00.250+01:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-12-01T07:00:00.25Z");
    }

    #[test]
    fn rejects_out_of_range_and_garbage() {
        assert!(Timestamp::parse_rfc3339("1969-12-31T23:59:59Z").is_err());
        assert!(Timestamp::parse_rfc3339("tomorrow").is_err());
        assert!(Timestamp::parse_rfc3339("").is_err());
    }
}
