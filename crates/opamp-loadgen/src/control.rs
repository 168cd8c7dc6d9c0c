//! The bench server's control API (JSON over HTTP on its own port), both sides' types and
//! the client the load generator uses.
//!
//! - `GET /info`: [`Info`] (pid, OpAMP address, counters);
//! - `POST /push`: broadcast the next remote config generation to every agent;
//!   [`PushResult`];
//! - `GET /applied`: who reported `APPLIED` for the current generation and when;
//!   [`Applied`];
//! - `POST /shutdown`: stop the bench server.

use std::net::SocketAddr;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{Error, http1, net};

/// Counters of the server under test (a copy of `opamp_server::MetricsSnapshot`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerMetrics {
    /// Open WebSocket connections.
    pub ws_connections: u64,
    /// WebSocket connections accepted since start.
    pub ws_connections_total: u64,
    /// Plain-HTTP requests since start.
    pub http_requests_total: u64,
    /// AgentToServer messages decoded.
    pub messages_in: u64,
    /// ServerToAgent messages sent.
    pub messages_out: u64,
    /// Bytes received in OpAMP messages.
    pub bytes_in: u64,
    /// Bytes sent in OpAMP messages.
    pub bytes_out: u64,
    /// Pushes queued on WebSocket connections.
    pub pushes_sent: u64,
    /// Connections closed as slow readers.
    pub dropped_slow_reader: u64,
    /// Requests refused with 503.
    pub rejected_overload: u64,
    /// Requests refused with 429.
    pub rejected_rate: u64,
    /// Undecodable messages.
    pub malformed: u64,
}

/// `GET /info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Info {
    /// The bench server's process id (for /proc).
    pub pid: u32,
    /// Where the OpAMP endpoint listens.
    pub opamp_addr: SocketAddr,
    /// The endpoint path.
    pub path: String,
    /// Tokio worker threads of the server.
    pub workers: usize,
    /// The current remote config generation (1 = the initial offer).
    pub generation: u64,
    /// Agents that reported APPLIED for the current generation.
    pub applied: u64,
    /// The server's counters.
    pub metrics: ServerMetrics,
}

/// `POST /push`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushResult {
    /// The generation pushed.
    pub generation: u64,
    /// Wall clock (Unix ns) right before `Server::broadcast` was called.
    pub push_start_unix_ns: u64,
    /// Wall clock (Unix ns) when `Server::broadcast` returned (every queue filled).
    pub push_end_unix_ns: u64,
    /// Agents whose WebSocket queue took the push.
    pub sent: u64,
    /// HTTP agents that get it on their next poll.
    pub pending: u64,
    /// Agents with nothing to send.
    pub nothing: u64,
    /// Agents that could not be reached.
    pub failed: u64,
}

/// `GET /applied`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// The current generation.
    pub generation: u64,
    /// When it was pushed (Unix ns), if it was pushed (generation 1 is only offered).
    pub push_start_unix_ns: Option<u64>,
    /// Agents that reported APPLIED with its hash.
    pub applied: u64,
    /// For each, microseconds from the push start to the handler seeing the APPLIED
    /// status (empty for generation 1).
    pub latencies_us: Vec<u64>,
}

/// Calls the control API at `addr`: `GET` or `POST` of `path`, JSON answer.
pub async fn call<T: DeserializeOwned>(
    addr: SocketAddr,
    method: &str,
    path: &str,
) -> Result<T, Error> {
    // Index 251+: a source address the agents use least.
    let stream = net::connect(0, addr).await?;
    let mut conn = http1::Connection::new(stream, addr.to_string());
    let response = conn.request(method, path, &[], b"").await?;
    if response.status != 200 {
        return Err(Error::Refused {
            status: response.status,
            retry_after: response.retry_after,
        });
    }
    Ok(serde_json::from_slice(&response.body)?)
}

/// `GET /info`.
pub async fn info(addr: SocketAddr) -> Result<Info, Error> {
    call(addr, "GET", "/info").await
}

/// `POST /push`.
pub async fn push(addr: SocketAddr) -> Result<PushResult, Error> {
    call(addr, "POST", "/push").await
}

/// `GET /applied`.
pub async fn applied(addr: SocketAddr) -> Result<Applied, Error> {
    call(addr, "GET", "/applied").await
}
