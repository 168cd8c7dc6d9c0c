//! Built-in admission control: a cap on concurrent connections and a token bucket on new
//! WebSocket connections, so a reconnect storm after a restart is paced (THR-3).
//!
//! The token bucket is plain data over `Instant`s (no clock reads), tested in memory.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Admission limits. A refused request gets an HTTP status and a `Retry-After` header.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AdmissionConfig {
    /// Maximum open WebSocket connections; past it an upgrade gets 503.
    pub max_ws_connections: usize,
    /// Maximum plain-HTTP requests served at once; past it a request gets 503.
    pub max_http_in_flight: usize,
    /// New WebSocket connections admitted per second on average; past it an upgrade gets
    /// 429. An HTTP poll is not a new connection and is not rate limited (its load is
    /// bounded by `max_http_in_flight`).
    pub new_ws_connections_per_second: f64,
    /// How many new WebSocket connections may arrive at once before pacing starts.
    pub new_ws_connections_burst: u32,
    /// The `Retry-After` sent with 503 (and the minimum sent with 429). The specification
    /// recommends clients wait at least 30 s (THR-5).
    pub retry_after: Duration,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        Self {
            max_ws_connections: 200_000,
            max_http_in_flight: 16_384,
            new_ws_connections_per_second: 2_000.0,
            new_ws_connections_burst: 4_000,
            retry_after: Duration::from_secs(30),
        }
    }
}

/// A token bucket: `capacity` tokens, refilled at `rate` per second.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    capacity: f64,
    rate: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl TokenBucket {
    pub(crate) fn new(rate: f64, burst: u32) -> Self {
        let capacity = f64::from(burst.max(1));
        Self {
            capacity,
            rate: rate.max(0.0),
            tokens: capacity,
            last: None,
        }
    }

    /// Takes one token, or says how long until one is available.
    pub(crate) fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        if let Some(last) = self.last {
            let elapsed = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        }
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else if self.rate > 0.0 {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        } else {
            Err(Duration::MAX)
        }
    }
}

/// Why admission control refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Too many connections or requests at once: 503.
    Overloaded(Duration),
    /// New connections arrive too fast: 429.
    RateLimited(Duration),
}

/// Holds one unit of a concurrency limit; released on drop.
#[derive(Debug)]
pub(crate) struct Permit {
    counter: Arc<AtomicUsize>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::AcqRel);
    }
}

#[derive(Debug)]
pub(crate) struct Admission {
    config: AdmissionConfig,
    ws: Arc<AtomicUsize>,
    http: Arc<AtomicUsize>,
    bucket: Mutex<TokenBucket>,
}

impl Admission {
    pub(crate) fn new(config: AdmissionConfig) -> Self {
        let bucket = TokenBucket::new(
            config.new_ws_connections_per_second,
            config.new_ws_connections_burst,
        );
        Self {
            config,
            ws: Arc::default(),
            http: Arc::default(),
            bucket: Mutex::new(bucket),
        }
    }

    fn acquire(counter: &Arc<AtomicUsize>, max: usize) -> Option<Permit> {
        let prev = counter.fetch_add(1, Ordering::AcqRel);
        let permit = Permit {
            counter: counter.clone(),
        };
        (prev < max).then_some(permit)
    }

    /// Admits a WebSocket upgrade: capacity first (503), then the rate (429).
    pub(crate) fn admit_ws(&self, now: Instant) -> Result<Permit, Refusal> {
        let permit = Self::acquire(&self.ws, self.config.max_ws_connections)
            .ok_or(Refusal::Overloaded(self.config.retry_after))?;
        let taken = self
            .bucket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .try_take(now);
        match taken {
            Ok(()) => Ok(permit),
            Err(wait) => Err(Refusal::RateLimited(wait.clamp(
                Duration::from_secs(1),
                self.config.retry_after.max(Duration::from_secs(1)),
            ))),
        }
    }

    /// Admits a plain-HTTP request (503 past the in-flight cap).
    pub(crate) fn admit_http(&self) -> Result<Permit, Refusal> {
        Self::acquire(&self.http, self.config.max_http_in_flight)
            .ok_or(Refusal::Overloaded(self.config.retry_after))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_the_burst_then_paces_thr_3() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(10.0, 3);
        for _ in 0..3 {
            assert!(bucket.try_take(t0).is_ok());
        }
        let wait = bucket.try_take(t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(100));
        assert!(bucket.try_take(t0 + Duration::from_millis(99)).is_err());
        assert!(bucket.try_take(t0 + Duration::from_millis(200)).is_ok());
        // Refill never exceeds the burst.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(bucket.try_take(later).is_ok());
        }
        assert!(bucket.try_take(later).is_err());
    }

    #[test]
    fn concurrency_cap_releases_on_drop() {
        let config = AdmissionConfig {
            max_ws_connections: 1,
            ..Default::default()
        };
        let admission = Admission::new(config);
        let now = Instant::now();
        let first = admission.admit_ws(now).unwrap();
        assert!(matches!(
            admission.admit_ws(now),
            Err(Refusal::Overloaded(d)) if d == Duration::from_secs(30)
        ));
        drop(first);
        assert!(admission.admit_ws(now).is_ok());
    }

    #[test]
    fn rate_refusal_has_a_retry_after_of_at_least_one_second() {
        let config = AdmissionConfig {
            new_ws_connections_per_second: 1000.0,
            new_ws_connections_burst: 1,
            ..Default::default()
        };
        let admission = Admission::new(config);
        let now = Instant::now();
        let _a = admission.admit_ws(now).unwrap();
        assert!(matches!(
            admission.admit_ws(now),
            Err(Refusal::RateLimited(d)) if d == Duration::from_secs(1)
        ));
    }
}
