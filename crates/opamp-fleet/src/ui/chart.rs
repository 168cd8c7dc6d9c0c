//! The overview's chart of connected agents over the last hour.
//!
//! Each replica samples the number of connected agents (fleet-wide, from the store) every
//! [`SAMPLE_EVERY`] into a ring buffer of [`CAPACITY`] samples held in memory: the history
//! is **per replica and starts empty** when the replica starts (two replicas behind a load
//! balancer may show different beginnings of the same curve). The chart is an SVG drawn on
//! the server.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use maud::{Markup, html};
use opamp_store::{AgentFilter, Timestamp};

use crate::Fleet;

/// How often the connected count is sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(30);
/// Samples kept: one hour at [`SAMPLE_EVERY`].
pub const CAPACITY: usize = 120;
/// The chart's time window, in milliseconds.
const WINDOW_MS: i64 = 3_600_000;

/// A ring buffer of `(time, connected agents)` samples.
#[derive(Debug)]
pub struct ConnectedHistory {
    capacity: usize,
    samples: Mutex<VecDeque<(Timestamp, u64)>>,
}

impl ConnectedHistory {
    /// An empty history keeping at most `capacity` samples.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            samples: Mutex::new(VecDeque::with_capacity(capacity.max(1))),
        }
    }

    /// Records a sample, dropping the oldest one when full.
    pub fn record(&self, at: Timestamp, connected: u64) {
        let mut s = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        if s.len() == self.capacity {
            s.pop_front();
        }
        s.push_back((at, connected));
    }

    /// The samples, oldest first.
    pub fn samples(&self) -> Vec<(Timestamp, u64)> {
        self.samples
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .copied()
            .collect()
    }
}

/// Samples the connected count every [`SAMPLE_EVERY`] until the fleet shuts down (only
/// when a Tokio runtime is running), and drops the UI's stale copy of the agents.
pub(crate) fn spawn_sampler(
    fleet: Fleet,
    history: std::sync::Arc<ConnectedHistory>,
    snapshot: std::sync::Arc<super::snapshot::Snapshot>,
) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let shutdown = fleet.inner.shutdown.clone();
    rt.spawn(async move {
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            snapshot.drop_stale();
            let filter = AgentFilter {
                connected: Some(true),
                ..AgentFilter::default()
            };
            match fleet.store().count_agents(filter).await {
                Ok(n) => history.record(Timestamp::now(), n),
                Err(e) => tracing::debug!(error = %e, "connected-agents sample skipped"),
            }
        }
    });
}

/// The chart as SVG, with a text summary for screen readers. `now_count` is drawn as the
/// newest point.
pub fn svg(samples: &[(Timestamp, u64)], now: Timestamp, now_count: u64) -> Markup {
    const W: f64 = 640.0;
    const H: f64 = 180.0;
    const LEFT: f64 = 44.0;
    const RIGHT: f64 = 8.0;
    const TOP: f64 = 10.0;
    const BOTTOM: f64 = 24.0;
    let start = now.as_millis() - WINDOW_MS;
    let mut points: Vec<(i64, u64)> = samples
        .iter()
        .filter(|(t, _)| t.as_millis() >= start && t.as_millis() <= now.as_millis())
        .map(|(t, n)| (t.as_millis(), *n))
        .collect();
    points.push((now.as_millis(), now_count));
    let max = points.iter().map(|p| p.1).max().unwrap_or(0).max(1);
    let min = points.iter().map(|p| p.1).min().unwrap_or(0);
    let x = |t: i64| LEFT + (t - start) as f64 / WINDOW_MS as f64 * (W - LEFT - RIGHT);
    let y = |n: u64| TOP + (1.0 - n as f64 / max as f64) * (H - TOP - BOTTOM);
    let line: Vec<String> = points
        .iter()
        .map(|&(t, n)| format!("{:.1},{:.1}", x(t), y(n)))
        .collect();
    let line = line.join(" ");
    let area = format!(
        "{:.1},{:.1} {line} {:.1},{:.1}",
        x(points[0].0),
        y(0),
        x(now.as_millis()),
        y(0)
    );
    let agents = if now_count == 1 { "agent" } else { "agents" };
    let summary = if points.len() == 1 {
        format!(
            "{now_count} {agents} connected now; no earlier samples yet (this replica samples every 30 s since it started)"
        )
    } else {
        format!(
            "{now_count} {agents} connected now; between {min} and {} over the {} samples of the last hour",
            points.iter().map(|p| p.1).max().unwrap_or(0),
            points.len()
        )
    };
    html! {
        figure.chart {
            svg viewBox={ "0 0 " (W) " " (H) } role="img" aria-labelledby="chart-title chart-desc"
                preserveAspectRatio="none" {
                title #chart-title { "Connected agents over the last hour" }
                desc #chart-desc { (summary) }
                line.axis x1=(LEFT) y1=(y(0)) x2=(W - RIGHT) y2=(y(0)) {}
                line.grid x1=(LEFT) y1=(y(max)) x2=(W - RIGHT) y2=(y(max)) {}
                text.label x=(LEFT - 6.0) y=(y(max) + 4.0) text-anchor="end" { (max) }
                text.label x=(LEFT - 6.0) y=(y(0) + 4.0) text-anchor="end" { "0" }
                text.label x=(LEFT) y=(H - 6.0) { "−60 min" }
                text.label x=(LEFT + (W - LEFT - RIGHT) / 2.0) y=(H - 6.0) text-anchor="middle" { "−30 min" }
                text.label x=(W - RIGHT) y=(H - 6.0) text-anchor="end" { "now" }
                polygon.area points=(area) {}
                polyline.line points=(line) {}
                circle.dot cx=(x(now.as_millis())) cy=(y(now_count)) r="3" {}
            }
            figcaption { (summary) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_buffer_keeps_the_newest_samples() {
        let h = ConnectedHistory::new(3);
        for i in 0..5 {
            h.record(Timestamp::from_millis(i * 1000), i as u64);
        }
        let s = h.samples();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0], (Timestamp::from_millis(2000), 2));
        assert_eq!(s[2], (Timestamp::from_millis(4000), 4));
    }

    #[test]
    fn chart_draws_samples_of_the_last_hour_only() {
        let now = Timestamp::from_millis(10_000_000);
        let samples = vec![
            (Timestamp::from_millis(now.as_millis() - 2 * WINDOW_MS), 99),
            (Timestamp::from_millis(now.as_millis() - 60_000), 4),
        ];
        let out = svg(&samples, now, 7).into_string();
        assert!(out.contains("<svg"), "{out}");
        assert!(out.contains("7 agents connected now"), "{out}");
        assert!(out.contains("between 4 and 7"), "{out}");
        assert!(
            !out.contains(">99<"),
            "old sample must not set the scale: {out}"
        );
    }

    #[test]
    fn empty_history_says_it_starts_empty() {
        let out = svg(&[], Timestamp::from_millis(5_000_000), 0).into_string();
        assert!(out.contains("no earlier samples yet"), "{out}");
    }
}
