//! Server configuration with defaults that follow the specification's recommendations.

use std::time::Duration;

use opamp_proto::{DEFAULT_MAX_MESSAGE_SIZE, ServerCapabilities};

use crate::admission::AdmissionConfig;
use crate::session::{DuplicatePolicy, SessionConfig};

/// WebSocket connection settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WsConfig {
    /// Capacity of the per-connection send queue (pushes). A connection whose queue is
    /// full is a slow reader and is closed; memory per connection stays bounded.
    pub send_queue: usize,
    /// How often the server pings an otherwise quiet connection.
    pub ping_interval: Duration,
    /// How long the server waits for any frame (a pong or anything else) after a ping
    /// before it closes the connection.
    pub pong_timeout: Duration,
    /// Close a connection that sent no OpAMP message for this long (`None`: never).
    pub idle_timeout: Option<Duration>,
    /// How long one write may block before the peer counts as a slow reader.
    pub write_timeout: Duration,
    /// How long to wait for the peer's close frame after sending ours.
    pub close_timeout: Duration,
    /// The most bytes read from a WebSocket at once (default 8 KiB, at most 16 KiB). The
    /// read goes through a buffer on the stack of the read call, so this costs no memory
    /// per connection: a connection holds a message buffer only while a message is
    /// arriving, sized to that message, and frees it when the message is complete.
    /// (Frames are written as soon as they are sent, from the encoded message: there is no
    /// per-connection write buffer to size.)
    pub read_buffer_size: usize,
}

impl Default for WsConfig {
    fn default() -> Self {
        Self {
            send_queue: 64,
            ping_interval: Duration::from_secs(30),
            pong_timeout: Duration::from_secs(30),
            idle_timeout: Some(Duration::from_secs(3600)),
            write_timeout: Duration::from_secs(30),
            close_timeout: Duration::from_secs(5),
            read_buffer_size: 8 * 1024,
        }
    }
}

/// Plain-HTTP settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HttpConfig {
    /// Replies at least this large are gzipped when the request's `Accept-Encoding`
    /// allows it (HTTP-12). Smaller ones are sent as they are: gzip adds about 20 bytes
    /// and costs CPU on every heartbeat.
    pub gzip_min_size: usize,
    /// The time allowed to receive a request body.
    pub body_timeout: Duration,
    /// After refusing a body with 413, up to this many more bytes are read and discarded
    /// (without decompressing) so the client sees the response instead of a reset.
    pub drain_limit: usize,
    /// With [`crate::Server::serve`]: a connection must send a complete request head
    /// within this time, including the next request on a kept-alive connection (slow
    /// header defence; idle HTTP/1.1 connections are closed after it). `None`: no limit.
    pub header_read_timeout: Option<Duration>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            gzip_min_size: 512,
            body_timeout: Duration::from_secs(30),
            drain_limit: 16 * 1024 * 1024,
            header_read_timeout: Some(Duration::from_secs(120)),
        }
    }
}

/// Everything configurable about a [`crate::Server`]. Build one with
/// [`ServerConfig::builder`] or start from [`ServerConfig::default`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// The URL path of the OpAMP endpoint; both transports are served there (GEN-1,
    /// GEN-3). Default `/v1/opamp`.
    pub path: String,
    /// The largest AgentToServer accepted, in bytes after decompression: WebSocket header
    /// plus data (WSL-2), or the HTTP body (HSL-2). Default 64 MiB (WSL-1, HSL-1).
    pub max_incoming_message_size: usize,
    /// The largest ServerToAgent sent, in bytes before compression (WSL-5, HSL-6).
    /// Default 64 MiB.
    pub max_outgoing_message_size: usize,
    /// The protocol session rules (capabilities, duplicates, liveness).
    pub session: SessionConfig,
    /// Admission control.
    pub admission: AdmissionConfig,
    /// WebSocket settings.
    pub ws: WsConfig,
    /// Plain-HTTP settings.
    pub http: HttpConfig,
    /// On shutdown, how long to wait for WebSocket closes and in-flight HTTP requests.
    pub shutdown_grace: Duration,
    /// TLS handshake timeout for [`crate::Server::serve_tls`].
    pub tls_handshake_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            path: opamp_proto::DEFAULT_PATH.to_string(),
            max_incoming_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_outgoing_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            session: SessionConfig::default(),
            admission: AdmissionConfig::default(),
            ws: WsConfig::default(),
            http: HttpConfig::default(),
            shutdown_grace: Duration::from_secs(10),
            tls_handshake_timeout: Duration::from_secs(10),
        }
    }
}

impl ServerConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> ServerConfigBuilder {
        ServerConfigBuilder {
            config: ServerConfig::default(),
        }
    }
}

/// Builds a [`ServerConfig`].
///
/// ```
/// use std::time::Duration;
/// use opamp_server::ServerConfig;
///
/// let config = ServerConfig::builder()
///     .path("/opamp")
///     .max_message_size(1 << 20)
///     .http_poll_interval(Duration::from_secs(10))
///     .build();
/// assert_eq!(config.max_incoming_message_size, 1 << 20);
/// ```
#[derive(Debug, Clone)]
pub struct ServerConfigBuilder {
    config: ServerConfig,
}

impl ServerConfigBuilder {
    /// The endpoint path (GEN-3).
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.config.path = path.into();
        self
    }

    /// Both size limits at once.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.config.max_incoming_message_size = bytes;
        self.config.max_outgoing_message_size = bytes;
        self
    }

    /// The incoming size limit (WSL-2, HSL-2).
    pub fn max_incoming_message_size(mut self, bytes: usize) -> Self {
        self.config.max_incoming_message_size = bytes;
        self
    }

    /// The outgoing size limit (WSL-5, HSL-6).
    pub fn max_outgoing_message_size(mut self, bytes: usize) -> Self {
        self.config.max_outgoing_message_size = bytes;
        self
    }

    /// The server capabilities (CAP-9: `AcceptsStatus` is always added).
    pub fn capabilities(mut self, capabilities: ServerCapabilities) -> Self {
        self.config.session.capabilities = capabilities;
        self
    }

    /// The duplicate instance uid policy (UID-8, UID-9).
    pub fn duplicate_policy(mut self, policy: DuplicatePolicy) -> Self {
        self.config.session.duplicate_policy = policy;
        self
    }

    /// The default HTTP polling interval (HTTP-4) used for liveness (DISC-5).
    pub fn http_poll_interval(mut self, interval: Duration) -> Self {
        self.config.session.http_poll_interval = interval;
        self
    }

    /// How many polls an HTTP agent may miss (DISC-5).
    pub fn missed_polls(mut self, polls: u32) -> Self {
        self.config.session.missed_polls = polls;
        self
    }

    /// How long a detached agent's state is kept.
    pub fn detached_retention(mut self, retention: Duration) -> Self {
        self.config.session.detached_retention = retention;
        self
    }

    /// The whole session configuration.
    pub fn session(mut self, session: SessionConfig) -> Self {
        self.config.session = session;
        self
    }

    /// The whole admission configuration.
    pub fn admission(mut self, admission: AdmissionConfig) -> Self {
        self.config.admission = admission;
        self
    }

    /// Maximum open WebSocket connections (503 past it).
    pub fn max_ws_connections(mut self, max: usize) -> Self {
        self.config.admission.max_ws_connections = max;
        self
    }

    /// Maximum concurrent HTTP requests (503 past it).
    pub fn max_http_in_flight(mut self, max: usize) -> Self {
        self.config.admission.max_http_in_flight = max;
        self
    }

    /// New WebSocket connections per second and burst (429 past it).
    pub fn new_ws_connection_rate(mut self, per_second: f64, burst: u32) -> Self {
        self.config.admission.new_ws_connections_per_second = per_second;
        self.config.admission.new_ws_connections_burst = burst;
        self
    }

    /// The `Retry-After` sent when refusing for load.
    pub fn retry_after(mut self, retry_after: Duration) -> Self {
        self.config.admission.retry_after = retry_after;
        self
    }

    /// The whole WebSocket configuration.
    pub fn ws(mut self, ws: WsConfig) -> Self {
        self.config.ws = ws;
        self
    }

    /// The per-connection send queue capacity.
    pub fn send_queue(mut self, capacity: usize) -> Self {
        self.config.ws.send_queue = capacity.max(1);
        self
    }

    /// Ping interval and pong timeout.
    pub fn ping(mut self, interval: Duration, timeout: Duration) -> Self {
        self.config.ws.ping_interval = interval;
        self.config.ws.pong_timeout = timeout;
        self
    }

    /// The WebSocket idle timeout (`None`: never).
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config.ws.idle_timeout = timeout;
        self
    }

    /// The whole HTTP configuration.
    pub fn http(mut self, http: HttpConfig) -> Self {
        self.config.http = http;
        self
    }

    /// The shutdown grace period.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.config.shutdown_grace = grace;
        self
    }

    /// The configuration.
    pub fn build(self) -> ServerConfig {
        self.config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_specification_wsl_1_hsl_1_gen_3() {
        let config = ServerConfig::default();
        assert_eq!(config.max_incoming_message_size, 64 * 1024 * 1024);
        assert_eq!(config.max_outgoing_message_size, 64 * 1024 * 1024);
        assert_eq!(config.path, "/v1/opamp");
        assert_eq!(config.session.http_poll_interval, Duration::from_secs(30));
        assert_eq!(config.session.missed_polls, 3);
        assert!(config.session.wire_capabilities().is_valid_to_send());
    }
}
