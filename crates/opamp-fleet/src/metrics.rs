//! Prometheus text exposition (format 0.0.4) for `/metrics`: fixed-bucket histograms on
//! atomics, and a renderer that writes the fleet's gauges, the OpAMP server's counters and
//! the histograms.
//!
//! Hand-written (no metrics crate): a handful of series, rendered on request.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opamp_server::MetricsSnapshot;
use opamp_store::BatcherStats;

/// Bucket upper bounds (seconds) for the push-to-applied latency.
pub const PUSH_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];
/// Bucket upper bounds (seconds) for store operations.
pub const STORE_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// A histogram with fixed buckets; observations are lock-free.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    /// Sum in nanoseconds.
    sum_nanos: AtomicU64,
}

impl Histogram {
    /// An empty histogram over `bounds` (ascending, in seconds).
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
        }
    }

    /// Records one duration.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = self.bounds.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(
            u64::try_from(d.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// The number of observations.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (bound, bucket) in self.bounds.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = self.count();
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let braces = |s: &str| {
            if s.is_empty() {
                String::new()
            } else {
                format!("{{{s}}}")
            }
        };
        let _ = writeln!(out, "{name}_sum{} {sum}", braces(labels));
        let _ = writeln!(out, "{name}_count{} {count}", braces(labels));
    }
}

/// The fleet's own metrics.
#[derive(Debug)]
pub struct FleetMetrics {
    /// From pushing (or offering in a reply) a desired config to the agent reporting
    /// APPLIED for it.
    pub push_to_applied: Histogram,
    store_ops: Mutex<BTreeMap<&'static str, Histogram>>,
    /// Store operations that failed.
    pub store_errors: AtomicU64,
}

impl Default for FleetMetrics {
    fn default() -> Self {
        Self {
            push_to_applied: Histogram::new(PUSH_BUCKETS),
            store_ops: Mutex::new(BTreeMap::new()),
            store_errors: AtomicU64::new(0),
        }
    }
}

impl FleetMetrics {
    /// Records the latency of one store operation.
    pub fn store_op(&self, op: &'static str, d: Duration, ok: bool) {
        if !ok {
            self.store_errors.fetch_add(1, Ordering::Relaxed);
        }
        let mut ops = self
            .store_ops
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        ops.entry(op)
            .or_insert_with(|| Histogram::new(STORE_BUCKETS))
            .observe(d);
    }
}

/// The agent counts a replica reports.
#[derive(Debug, Default, Clone)]
pub struct AgentGauges {
    /// (transport, connected) → count.
    pub by_transport_and_state: BTreeMap<(String, bool), u64>,
    /// sync state → count.
    pub by_sync_state: BTreeMap<&'static str, u64>,
}

/// Renders every series.
pub fn render(
    fleet: &FleetMetrics,
    gauges: &AgentGauges,
    server: &MetricsSnapshot,
    last_seen: &BatcherStats,
) -> String {
    let mut out = String::with_capacity(4096);
    let w = &mut out;
    let _ = writeln!(
        w,
        "# HELP opamp_agents Agents known to this replica, by transport and connection state."
    );
    let _ = writeln!(w, "# TYPE opamp_agents gauge");
    for ((transport, connected), n) in &gauges.by_transport_and_state {
        let state = if *connected {
            "connected"
        } else {
            "disconnected"
        };
        let _ = writeln!(
            w,
            "opamp_agents{{transport=\"{transport}\",state=\"{state}\"}} {n}"
        );
    }
    let _ = writeln!(
        w,
        "# HELP opamp_agents_sync_state Agents known to this replica, by sync state."
    );
    let _ = writeln!(w, "# TYPE opamp_agents_sync_state gauge");
    for (state, n) in &gauges.by_sync_state {
        let _ = writeln!(w, "opamp_agents_sync_state{{state=\"{state}\"}} {n}");
    }
    let counters: [(&str, &str, u64); 10] = [
        (
            "opamp_last_seen_heartbeats_total",
            "Messages that changed nothing and only moved the agent's last-seen time (batched).",
            last_seen.heartbeats,
        ),
        (
            "opamp_last_seen_writes_total",
            "Batched last-seen writes (one statement each).",
            last_seen.statements,
        ),
        (
            "opamp_messages_received_total",
            "AgentToServer messages received.",
            server.messages_in,
        ),
        (
            "opamp_messages_sent_total",
            "ServerToAgent messages sent.",
            server.messages_out,
        ),
        (
            "opamp_received_bytes_total",
            "Bytes received in OpAMP messages (after decompression).",
            server.bytes_in,
        ),
        (
            "opamp_sent_bytes_total",
            "Bytes sent in OpAMP messages (before compression).",
            server.bytes_out,
        ),
        (
            "opamp_http_requests_total",
            "Plain-HTTP OpAMP requests.",
            server.http_requests_total,
        ),
        (
            "opamp_ws_connections_total",
            "WebSocket connections accepted.",
            server.ws_connections_total,
        ),
        (
            "opamp_malformed_messages_total",
            "OpAMP messages that could not be decoded.",
            server.malformed,
        ),
        (
            "opamp_store_errors_total",
            "Store operations that failed.",
            fleet.store_errors.load(Ordering::Relaxed),
        ),
    ];
    for (name, help, value) in counters {
        let _ = writeln!(w, "# HELP {name} {help}");
        let _ = writeln!(w, "# TYPE {name} counter");
        let _ = writeln!(w, "{name} {value}");
    }
    let _ = writeln!(w, "# HELP opamp_ws_connections Open WebSocket connections.");
    let _ = writeln!(w, "# TYPE opamp_ws_connections gauge");
    let _ = writeln!(w, "opamp_ws_connections {}", server.ws_connections);
    let _ = writeln!(
        w,
        "# HELP opamp_push_to_applied_seconds From offering a desired config to the agent reporting it APPLIED."
    );
    let _ = writeln!(w, "# TYPE opamp_push_to_applied_seconds histogram");
    fleet
        .push_to_applied
        .render(w, "opamp_push_to_applied_seconds", "");
    let _ = writeln!(
        w,
        "# HELP opamp_store_operation_seconds Latency of store operations, by operation."
    );
    let _ = writeln!(w, "# TYPE opamp_store_operation_seconds histogram");
    let ops = fleet
        .store_ops
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for (op, h) in ops.iter() {
        h.render(w, "opamp_store_operation_seconds", &format!("op=\"{op}\""));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::new(&[0.1, 1.0]);
        h.observe(Duration::from_millis(50));
        h.observe(Duration::from_millis(500));
        h.observe(Duration::from_secs(5));
        let mut s = String::new();
        h.render(&mut s, "x", "op=\"a\"");
        assert!(s.contains("x_bucket{op=\"a\",le=\"0.1\"} 1\n"), "{s}");
        assert!(s.contains("x_bucket{op=\"a\",le=\"1\"} 2\n"), "{s}");
        assert!(s.contains("x_bucket{op=\"a\",le=\"+Inf\"} 3\n"), "{s}");
        assert!(s.contains("x_count{op=\"a\"} 3\n"), "{s}");
    }

    #[test]
    fn render_has_every_family() {
        let f = FleetMetrics::default();
        f.store_op("upsert_agent", Duration::from_millis(2), true);
        let mut g = AgentGauges::default();
        g.by_transport_and_state.insert(("ws".into(), true), 2);
        g.by_sync_state.insert("in_sync", 2);
        let s = render(
            &f,
            &g,
            &MetricsSnapshot::default(),
            &BatcherStats::default(),
        );
        for needle in [
            "opamp_agents{transport=\"ws\",state=\"connected\"} 2",
            "opamp_agents_sync_state{state=\"in_sync\"} 2",
            "opamp_messages_received_total 0",
            "opamp_sent_bytes_total 0",
            "opamp_push_to_applied_seconds_count 0",
            "opamp_store_operation_seconds_count{op=\"upsert_agent\"} 1",
        ] {
            assert!(s.contains(needle), "missing {needle} in\n{s}");
        }
    }
}
