//! Latency samples and their percentiles.

use serde::{Deserialize, Serialize};

/// Percentiles of a set of durations, in milliseconds (fractional).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// How many samples.
    pub count: u64,
    /// The median.
    pub p50_ms: f64,
    /// The 90th percentile.
    pub p90_ms: f64,
    /// The 99th percentile.
    pub p99_ms: f64,
    /// The 99.9th percentile.
    pub p999_ms: f64,
    /// The largest sample (for a one-shot event such as a push: the last agent).
    pub max_ms: f64,
    /// The mean.
    pub mean_ms: f64,
}

impl Percentiles {
    /// Percentiles of samples in microseconds (nearest-rank method). Sorts `samples`.
    pub fn from_micros(samples: &mut [u64]) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_unstable();
        let n = samples.len();
        let rank = |p: f64| {
            // Nearest rank: the smallest value with at least p of the samples at or below.
            let r = (p * n as f64).ceil() as usize;
            samples[r.clamp(1, n) - 1] as f64 / 1000.0
        };
        let sum: u128 = samples.iter().map(|&s| u128::from(s)).sum();
        Self {
            count: n as u64,
            p50_ms: rank(0.50),
            p90_ms: rank(0.90),
            p99_ms: rank(0.99),
            p999_ms: rank(0.999),
            max_ms: samples[n - 1] as f64 / 1000.0,
            mean_ms: (sum as f64 / n as f64) / 1000.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut samples: Vec<u64> = (1..=1000).map(|i| i * 1000).collect();
        samples.reverse();
        let p = Percentiles::from_micros(&mut samples);
        assert_eq!(p.count, 1000);
        assert_eq!(p.p50_ms, 500.0);
        assert_eq!(p.p99_ms, 990.0);
        assert_eq!(p.p999_ms, 999.0);
        assert_eq!(p.max_ms, 1000.0);
        assert_eq!(p.mean_ms, 500.5);
    }

    #[test]
    fn empty_and_single() {
        assert_eq!(Percentiles::from_micros(&mut []).count, 0);
        let p = Percentiles::from_micros(&mut [1500]);
        assert_eq!((p.p50_ms, p.p99_ms, p.max_ms), (1.5, 1.5, 1.5));
    }
}
