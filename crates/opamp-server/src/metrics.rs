//! Counters the application can read (for `/metrics`, logs or tests): lock-free atomics,
//! read as one cheap [`MetricsSnapshot`].

use std::sync::atomic::{AtomicU64, Ordering};

/// The live counters. Shared by every connection task; updated with relaxed atomics.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub(crate) ws_connections: AtomicU64,
    pub(crate) ws_connections_total: AtomicU64,
    pub(crate) http_in_flight: AtomicU64,
    pub(crate) http_requests_total: AtomicU64,
    pub(crate) messages_in: AtomicU64,
    pub(crate) messages_out: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    pub(crate) malformed: AtomicU64,
    pub(crate) oversized_in: AtomicU64,
    pub(crate) oversized_out: AtomicU64,
    pub(crate) rejected_unauthorized: AtomicU64,
    pub(crate) rejected_overload: AtomicU64,
    pub(crate) rejected_rate: AtomicU64,
    pub(crate) dropped_slow_reader: AtomicU64,
    pub(crate) pushes_sent: AtomicU64,
    pub(crate) pushes_pending: AtomicU64,
}

/// Adds `n` to a counter.
pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// Adds 1 to a counter.
pub(crate) fn inc(counter: &AtomicU64) {
    add(counter, 1);
}

/// Subtracts 1 from a gauge.
pub(crate) fn dec(counter: &AtomicU64) {
    counter.fetch_sub(1, Ordering::Relaxed);
}

/// A point-in-time copy of the server's counters. Totals only grow; `*_connections` and
/// `http_in_flight` are gauges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// Open WebSocket connections.
    pub ws_connections: u64,
    /// WebSocket connections accepted since start.
    pub ws_connections_total: u64,
    /// Plain-HTTP requests being served.
    pub http_in_flight: u64,
    /// Plain-HTTP requests received since start.
    pub http_requests_total: u64,
    /// AgentToServer messages decoded (both transports).
    pub messages_in: u64,
    /// ServerToAgent messages sent (replies and pushes, both transports).
    pub messages_out: u64,
    /// Bytes received in OpAMP messages (after decompression).
    pub bytes_in: u64,
    /// Bytes sent in OpAMP messages (before compression).
    pub bytes_out: u64,
    /// Messages that could not be decoded (bad protobuf, non-zero WS header, text frames,
    /// corrupt gzip).
    pub malformed: u64,
    /// Received messages over the size limit (WSL-3, HSL-3).
    pub oversized_in: u64,
    /// Outgoing messages over the size limit, not sent (WSL-5, HSL-6).
    pub oversized_out: u64,
    /// Requests refused with 401 by the handler (CONN-6).
    pub rejected_unauthorized: u64,
    /// Requests refused with 503 (too many connections, or the handler said so).
    pub rejected_overload: u64,
    /// Requests refused with 429 (connection rate, or the handler said so).
    pub rejected_rate: u64,
    /// WebSocket connections closed because they did not drain their send queue.
    pub dropped_slow_reader: u64,
    /// Pushes queued on a WebSocket connection.
    pub pushes_sent: u64,
    /// Pushes stored for an HTTP agent's next poll.
    pub pushes_pending: u64,
}

impl Metrics {
    pub(crate) fn snapshot(&self) -> MetricsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        MetricsSnapshot {
            ws_connections: get(&self.ws_connections),
            ws_connections_total: get(&self.ws_connections_total),
            http_in_flight: get(&self.http_in_flight),
            http_requests_total: get(&self.http_requests_total),
            messages_in: get(&self.messages_in),
            messages_out: get(&self.messages_out),
            bytes_in: get(&self.bytes_in),
            bytes_out: get(&self.bytes_out),
            malformed: get(&self.malformed),
            oversized_in: get(&self.oversized_in),
            oversized_out: get(&self.oversized_out),
            rejected_unauthorized: get(&self.rejected_unauthorized),
            rejected_overload: get(&self.rejected_overload),
            rejected_rate: get(&self.rejected_rate),
            dropped_slow_reader: get(&self.dropped_slow_reader),
            pushes_sent: get(&self.pushes_sent),
            pushes_pending: get(&self.pushes_pending),
        }
    }
}
