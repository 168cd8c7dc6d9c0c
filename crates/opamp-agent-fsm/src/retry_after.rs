//! Parsing the HTTP `Retry-After` header (THR-3, CONN-3).

use std::time::{Duration, SystemTime};

/// Parses a Retry-After header value: delta-seconds or an HTTP-date relative to `now`.
///
/// A date in the past gives `Duration::ZERO`. Anything unparsable gives `None`.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
/// assert_eq!(opamp_agent_fsm::parse_retry_after("120", now), Some(Duration::from_secs(120)));
/// assert_eq!(
///     opamp_agent_fsm::parse_retry_after("Sun, 09 Sep 2001 01:48:40 GMT", now),
///     Some(Duration::from_secs(120)),
/// );
/// // A date in the past means "now".
/// assert_eq!(
///     opamp_agent_fsm::parse_retry_after("Sun, 09 Sep 2001 01:40:00 GMT", now),
///     Some(Duration::ZERO),
/// );
/// assert_eq!(opamp_agent_fsm::parse_retry_after("soon", now), None);
/// ```
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        // Saturate absurdly large values instead of failing.
        let secs = value.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delta_seconds_and_dates_thr_3() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        assert_eq!(
            parse_retry_after(" 30 ", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(parse_retry_after("0", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX)),
            "saturates"
        );
        for bad in ["", "-1", "1.5", "30s", "Sun, 99 Sep 2001 01:48:40 GMT"] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
        // The obsolete RFC 850 and asctime forms are HTTP-dates too.
        assert_eq!(
            parse_retry_after("Sunday, 09-Sep-01 01:48:40 GMT", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sun Sep  9 01:48:40 2001", now),
            Some(Duration::from_secs(120))
        );
    }
}
