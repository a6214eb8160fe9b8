//! Kuma's durations: Go's `time.ParseDuration` syntax (`300ms`, `1m30s`, `-2s`, `0`), with Go's
//! messages for text that is not one.

use std::fmt;
use std::time::Duration as StdDuration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::envoy;

/// A duration as written in a policy; it may be negative (validation says where that is wrong).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Duration {
    pub nanos: i128,
}

impl Duration {
    pub fn is_negative(self) -> bool {
        self.nanos < 0
    }

    pub fn is_zero(self) -> bool {
        self.nanos == 0
    }

    /// The duration for Envoy; a negative one (which validation refuses) is zero.
    pub fn to_std(self) -> StdDuration {
        let nanos = u64::try_from(self.nanos.max(0)).unwrap_or(u64::MAX);
        StdDuration::from_nanos(nanos)
    }

    /// [`Duration::to_std`], as Envoy's type.
    pub fn to_envoy(self) -> envoy::Duration {
        envoy::Duration(self.to_std())
    }

    pub fn parse(text: &str) -> Result<Duration, String> {
        let invalid = || format!("time: invalid duration {text:?}");
        let (negative, mut rest) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        if rest == "0" {
            return Ok(Duration { nanos: 0 });
        }
        if rest.is_empty() {
            return Err(invalid());
        }
        let mut total: f64 = 0.0;
        while !rest.is_empty() {
            let number_end = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(rest.len());
            let number = &rest[..number_end];
            if number.is_empty() || number == "." || number.matches('.').count() > 1 {
                return Err(invalid());
            }
            rest = &rest[number_end..];
            let unit_end = rest
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(rest.len());
            let unit = &rest[..unit_end];
            rest = &rest[unit_end..];
            let nanos_per_unit: f64 = match unit {
                "" => return Err(format!("time: missing unit in duration {text:?}")),
                "ns" => 1.0,
                "us" | "µs" | "μs" => 1e3,
                "ms" => 1e6,
                "s" => 1e9,
                "m" => 60e9,
                "h" => 3600e9,
                other => return Err(format!("time: unknown unit {other:?} in duration {text:?}")),
            };
            let value: f64 = number.parse().map_err(|_| invalid())?;
            total += value * nanos_per_unit;
        }
        // Go's durations are int64 nanoseconds (about 292 years).
        if total > i64::MAX as f64 {
            return Err(invalid());
        }
        let nanos = total.round() as i128;
        Ok(Duration {
            nanos: if negative { -nanos } else { nanos },
        })
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.is_negative() { "-" } else { "" };
        let std =
            StdDuration::from_nanos(u64::try_from(self.nanos.unsigned_abs()).unwrap_or(u64::MAX));
        write!(f, "{sign}{std:?}")
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Duration::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn go_duration_syntax_and_messages() {
        let nanos = |t: &str| Duration::parse(t).map(|d| d.nanos);
        assert_eq!(nanos("0"), Ok(0));
        assert_eq!(nanos("1s"), Ok(1_000_000_000));
        assert_eq!(nanos("1m30s"), Ok(90_000_000_000));
        assert_eq!(nanos("1.5h"), Ok(5_400_000_000_000));
        assert_eq!(nanos("250ms"), Ok(250_000_000));
        assert_eq!(nanos("-2s"), Ok(-2_000_000_000));
        assert_eq!(nanos("3us"), Ok(3_000));
        assert_eq!(nanos("abc"), Err("time: invalid duration \"abc\"".into()));
        assert_eq!(nanos(""), Err("time: invalid duration \"\"".into()));
        assert_eq!(
            nanos("10"),
            Err("time: missing unit in duration \"10\"".into())
        );
        assert_eq!(
            nanos("1d"),
            Err("time: unknown unit \"d\" in duration \"1d\"".into())
        );
    }
}
