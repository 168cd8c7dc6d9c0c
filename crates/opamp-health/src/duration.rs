//! Human-friendly durations for configuration files: `"10s"`, `"500ms"`, `"2m"`, `"1h30m"`.
//!
//! Units: `ns`, `us` (or `µs`), `ms`, `s`, `m`, `h`, `d`. A value is one or more
//! `<integer><unit>` parts, summed; spaces between parts are allowed. `"0"` alone means zero.
//! For serde, use the module as `#[serde(with = "opamp_health::duration")]`; it also accepts
//! a bare integer, taken as seconds, and writes the shortest exact form back.
//!
//! ```
//! use std::time::Duration;
//! use opamp_health::duration;
//!
//! assert_eq!(duration::parse("1m30s").unwrap(), Duration::from_secs(90));
//! assert_eq!(duration::parse("250ms").unwrap(), Duration::from_millis(250));
//! assert_eq!(duration::format(Duration::from_secs(120)), "2m");
//! assert!(duration::parse("10").is_err()); // a unit is required
//! ```

use std::fmt;
use std::time::Duration;

use serde::{Deserializer, Serializer, de};

use crate::Error;

/// Parses a duration such as `"10s"`, `"500ms"` or `"1h30m"`.
pub fn parse(input: &str) -> Result<Duration, Error> {
    let err = |reason| Error::InvalidDuration {
        input: input.to_owned(),
        reason,
    };
    let text = input.trim();
    if text.is_empty() {
        return Err(err("empty"));
    }
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(err("expected a number"));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| err("number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c.is_whitespace())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = rest[unit_len..].trim_start();
        let part = match unit {
            "ns" => Some(Duration::from_nanos(number)),
            "us" | "µs" => Some(Duration::from_micros(number)),
            "ms" => Some(Duration::from_millis(number)),
            "s" => Some(Duration::from_secs(number)),
            "m" => number.checked_mul(60).map(Duration::from_secs),
            "h" => number.checked_mul(3600).map(Duration::from_secs),
            "d" => number.checked_mul(86_400).map(Duration::from_secs),
            "" => return Err(err("missing unit (ns, us, ms, s, m, h, d)")),
            _ => return Err(err("unknown unit (expected ns, us, ms, s, m, h, d)")),
        };
        total = part
            .and_then(|p| total.checked_add(p))
            .ok_or_else(|| err("too large"))?;
    }
    Ok(total)
}

/// Formats a duration in the shortest exact form [`parse`] reads back:
/// `"2m"`, `"90s"`, `"1500ms"`, `"0s"`.
pub fn format(d: Duration) -> String {
    if d.is_zero() {
        return "0s".to_owned();
    }
    let nanos = d.as_nanos();
    const UNITS: [(u128, &str); 7] = [
        (86_400_000_000_000, "d"),
        (3_600_000_000_000, "h"),
        (60_000_000_000, "m"),
        (1_000_000_000, "s"),
        (1_000_000, "ms"),
        (1_000, "us"),
        (1, "ns"),
    ];
    for (size, unit) in UNITS {
        if nanos % size == 0 {
            return format!("{}{unit}", nanos / size);
        }
    }
    format!("{nanos}ns")
}

/// Serde serializer: writes [`format()`] of the duration.
pub fn serialize<S: Serializer>(d: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format(*d))
}

/// Serde deserializer: a string for [`parse`], or a non-negative integer of seconds.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    deserializer.deserialize_any(DurationVisitor)
}

struct DurationVisitor;

impl de::Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as \"10s\", \"500ms\" or \"2m\", or a number of seconds")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        parse(v).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
        Ok(Duration::from_secs(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
        u64::try_from(v)
            .map(Duration::from_secs)
            .map_err(|_| E::custom("a duration cannot be negative"))
    }
}

/// The same for `Option<Duration>` fields: `#[serde(default, with = "opamp_health::duration::option")]`.
pub mod option {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Serde serializer for `Option<Duration>`.
    pub fn serialize<S: Serializer>(
        d: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => serializer.serialize_some(&super::format(*d)),
            None => serializer.serialize_none(),
        }
    }

    /// Serde deserializer for `Option<Duration>`.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        #[derive(Deserialize)]
        struct Wrap(#[serde(with = "super")] Duration);
        Option::<Wrap>::deserialize(deserializer).map(|w| w.map(|Wrap(d)| d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_sums() {
        assert_eq!(parse("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse("1h 30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("1d").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse("7us").unwrap(), Duration::from_micros(7));
        assert_eq!(parse("7µs").unwrap(), Duration::from_micros(7));
        assert_eq!(parse("9ns").unwrap(), Duration::from_nanos(9));
        assert_eq!(parse(" 0 ").unwrap(), Duration::ZERO);
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        for bad in [
            "",
            "s",
            "10",
            "10x",
            "-1s",
            "1.5s",
            "ms10",
            "99999999999999999999s",
            "18446744073709551615h",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn format_round_trips() {
        for d in [
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::from_micros(3),
            Duration::from_millis(1500),
            Duration::from_secs(90),
            Duration::from_secs(120),
            Duration::from_secs(7200),
            Duration::from_secs(86_400 * 2),
        ] {
            assert_eq!(parse(&format(d)).unwrap(), d, "{}", format(d));
        }
        assert_eq!(format(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format(Duration::from_secs(2)), "2s");
    }
}
