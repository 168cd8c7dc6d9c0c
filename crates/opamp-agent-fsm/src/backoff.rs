//! Reconnect delays: exponential backoff with jitter from a caller-seeded PRNG.
//!
//! Never reads the clock or the OS random source: the session is deterministic for a given
//! seed, which is what makes its tests reproducible.

use std::time::{Duration, Instant};

use crate::Backoff;

/// The longest timer the session ever arms: waits, retry hints and heartbeat intervals are
/// clamped to one day, so `Instant` arithmetic cannot overflow and a hostile retry hint
/// cannot park the agent for centuries.
pub(crate) const MAX_TIMER: Duration = Duration::from_secs(24 * 60 * 60);

/// `now + d`, with `d` clamped to [`MAX_TIMER`]; never panics.
pub(crate) fn deadline(now: Instant, d: Duration) -> Instant {
    now.checked_add(d.min(MAX_TIMER))
        .or_else(|| now.checked_add(Duration::from_secs(1)))
        .unwrap_or(now)
}

/// SplitMix64: a tiny, well-known 64-bit generator. Good enough for jitter; not for secrets.
#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn next_unit(&mut self) -> f64 {
        // 53 random bits: exactly representable in an f64 mantissa.
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The wait before attempt number `failures` (1 = first retry) under `b`:
/// `min(initial * multiplier^(failures-1), max)`, jittered by `±jitter`, capped at `max`.
/// Misconfigured values (NaN, negative, multiplier < 1) are sanitized, never panic.
pub(crate) fn delay(b: &Backoff, failures: u32, rng: &mut Rng) -> Duration {
    let multiplier = if b.multiplier.is_finite() && b.multiplier >= 1.0 {
        b.multiplier
    } else {
        1.0
    };
    let jitter = if b.jitter.is_finite() {
        b.jitter.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let max = b.max.min(MAX_TIMER).as_secs_f64();
    let exponent = failures.saturating_sub(1).min(1024) as i32;
    let mut secs = b.initial.as_secs_f64() * multiplier.powi(exponent);
    if !secs.is_finite() || secs > max {
        secs = max;
    }
    let factor = 1.0 + jitter * (2.0 * rng.next_unit() - 1.0);
    let secs = (secs * factor).clamp(0.0, max);
    Duration::try_from_secs_f64(secs).unwrap_or(b.max.min(MAX_TIMER))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_and_caps_conn_2() {
        let b = Backoff {
            jitter: 0.0,
            ..Backoff::default()
        };
        let mut rng = Rng::new(1);
        let waits: Vec<u64> = (1..=12).map(|n| delay(&b, n, &mut rng).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
    }

    #[test]
    fn jitter_stays_within_bounds_and_is_seeded_conn_2() {
        let b = Backoff::default();
        let mut a = Rng::new(42);
        let mut c = Rng::new(42);
        let mut distinct = std::collections::BTreeSet::new();
        for n in 1..200 {
            let d = delay(&b, 5, &mut a);
            assert_eq!(d, delay(&b, 5, &mut c), "same seed, same sequence");
            let s = d.as_secs_f64();
            assert!((12.8..=19.2).contains(&s), "attempt {n}: {s}");
            distinct.insert(d.as_millis());
        }
        assert!(distinct.len() > 50, "jitter actually varies");
    }

    #[test]
    fn hostile_settings_do_not_panic() {
        let mut rng = Rng::new(0);
        for b in [
            Backoff {
                initial: Duration::MAX,
                max: Duration::MAX,
                multiplier: f64::INFINITY,
                jitter: f64::NAN,
            },
            Backoff {
                initial: Duration::ZERO,
                max: Duration::ZERO,
                multiplier: -3.0,
                jitter: 7.0,
            },
        ] {
            for n in [0, 1, 2, 64, u32::MAX] {
                assert!(delay(&b, n, &mut rng) <= MAX_TIMER);
            }
        }
        let now = Instant::now();
        assert!(deadline(now, Duration::MAX) <= now + MAX_TIMER);
    }
}
