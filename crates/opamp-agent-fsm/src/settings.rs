//! Configuration of an [`AgentSession`](crate::AgentSession): where to connect, what the
//! agent can do, and the timing knobs (heartbeat, polling, backoff).
//!
//! Plain data only: nothing here performs IO or reads the clock.

use std::time::Duration;

use opamp_proto::{AgentCapabilities, DEFAULT_MAX_MESSAGE_SIZE, InstanceUid, v1};

/// The transport the driver uses. Decides heartbeat versus polling behaviour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// A WebSocket connection: messages flow both ways at any time.
    WebSocket,
    /// Plain HTTP: one request, one response; the agent polls (HTTP-3).
    Http,
}

/// Exponential reconnect backoff with jitter (CONN-2, THR-3).
///
/// The n-th consecutive failure waits `min(initial * multiplier^(n-1), max)`, then a
/// uniformly random jitter of `±jitter` (a fraction) is applied, and the result is capped
/// at `max` again.
#[derive(Clone, Debug)]
pub struct Backoff {
    /// The first wait. Default 1 s.
    pub initial: Duration,
    /// The longest wait. Default 5 min.
    pub max: Duration,
    /// Growth factor per consecutive failure. Default 2.0. Values below 1.0 are treated as 1.0.
    pub multiplier: f64,
    /// Relative jitter, `0.2` meaning ±20 %. Default 0.2. Clamped to `0.0..=1.0`.
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(300),
            multiplier: 2.0,
            jitter: 0.2,
        }
    }
}

/// Where and how to connect (the "OpAMP connection settings" the agent currently uses).
#[derive(Clone, Debug, PartialEq)]
pub struct ConnectionTarget {
    /// `ws://`, `wss://`, `http://` or `https://` URL of the OpAMP endpoint.
    pub endpoint: String,
    /// Extra request headers (for example `Authorization`).
    pub headers: Vec<(String, String)>,
    /// TLS settings offered by the server (OPC-8), if any.
    pub tls: Option<v1::TlsConnectionSettings>,
    /// The client certificate to present, if any.
    pub certificate: Option<v1::TlsCertificate>,
    /// A heartbeat interval that came with these settings (HB-2); it overrides
    /// [`Settings::heartbeat_interval`] (WS) and [`Settings::polling_interval`] (HTTP)
    /// while this target is in use. `Some(Duration::ZERO)` disables heartbeats over
    /// WebSocket (HB-3) and is ignored over HTTP.
    pub heartbeat_interval: Option<Duration>,
}

impl ConnectionTarget {
    /// A target with only an endpoint.
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            headers: Vec::new(),
            tls: None,
            certificate: None,
            heartbeat_interval: None,
        }
    }
}

/// OpAMP connection settings offered by the server and not yet verified: the candidate of
/// the offer flow (OPC-5 step 3), with the hash of the offer it came from.
///
/// The session hands one out while it tries new settings
/// ([`AgentSession::pending_candidate`](crate::AgentSession::pending_candidate), on
/// [`Event::OpampSettingsCandidate`](crate::Event::OpampSettingsCandidate)); the driver
/// persists it, and after a restart gives it back in [`Settings::candidate`] so that the
/// flow resumes (steps 5 to 9 are retried).
#[derive(Clone, Debug, PartialEq)]
pub struct PendingCandidate {
    /// The settings to try.
    pub target: ConnectionTarget,
    /// `ConnectionSettingsOffers.hash` of the offer, reported back as
    /// `last_connection_settings_hash` with APPLYING / APPLIED / FAILED (CSS-1). Empty if
    /// unknown (for example a candidate stored by an older version).
    pub offer_hash: Vec<u8>,
}

impl PendingCandidate {
    /// A candidate for `target` from the offer with `offer_hash`.
    pub fn new(target: ConnectionTarget, offer_hash: impl Into<Vec<u8>>) -> Self {
        Self {
            target,
            offer_hash: offer_hash.into(),
        }
    }
}

/// Everything an [`AgentSession`](crate::AgentSession) needs to start.
///
/// Build it with [`Settings::new`] and adjust the public fields.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The agent's instance uid (UID-1). The server may replace it (UID-6).
    pub instance_uid: InstanceUid,
    /// What the agent can do. Normalized on use: `ReportsStatus` is always set and
    /// undefined bits are cleared (CAP-2, CAP-3).
    pub capabilities: AgentCapabilities,
    /// WebSocket or plain HTTP.
    pub transport: Transport,
    /// The initial connection target: the valid settings (OPC-5 step 8). With a
    /// [`candidate`](Self::candidate), the settings to go back to if it fails.
    pub target: ConnectionTarget,
    /// A candidate persisted before a restart, to resume the offer flow with (OPC-5 step 3:
    /// the candidate survives crashes so steps 5 to 9 are retried). `None` by default.
    ///
    /// The first `Action::Connect` then uses the candidate's target. It is accepted when
    /// the WebSocket connects / the first HTTP response arrives
    /// ([`Event::OpampSettingsAccepted`](crate::Event::OpampSettingsAccepted), APPLIED);
    /// any failure before that rejects it
    /// ([`Event::OpampSettingsRejected`](crate::Event::OpampSettingsRejected), FAILED) and
    /// the session continues with [`target`](Self::target), exactly as for an offer
    /// received live. Until then the status is APPLYING (CSS-3, CSS-4; statuses need
    /// `ReportsConnectionSettingsStatus`). A candidate whose endpoint does not fit
    /// [`transport`](Self::transport) is rejected at once (OPC-2). The offer's hash counts
    /// as processed: the same offer sent again is skipped (OPC-12).
    pub candidate: Option<PendingCandidate>,
    /// The WebSocket heartbeat interval (HB-1). `Some(30 s)` by default; `None` or zero
    /// means no heartbeats over WebSocket. Only used with `ReportsHeartbeat`.
    pub heartbeat_interval: Option<Duration>,
    /// The HTTP polling interval (HTTP-4). 30 s by default. A zero value is replaced by the
    /// default: HTTP never stops polling.
    pub polling_interval: Duration,
    /// Reconnect backoff (CONN-2, THR-3).
    pub backoff: Backoff,
    /// Set `RequestInstanceUid` on messages until the server assigns a uid (UID-4).
    pub request_instance_uid: bool,
    /// Custom capabilities (CUS-1).
    pub custom_capabilities: Vec<String>,
    /// HTTP only: how long to wait for a reply before treating the request as failed
    /// (ERR-5). `None` (the default) waits forever; the driver's own timeouts still apply.
    pub reply_timeout: Option<Duration>,
    /// The largest encoded `AgentToServer` the session hands out (WSL-6, HSL-7). A bigger
    /// message is dropped with [`Event::MessageDiscarded`](crate::Event::MessageDiscarded).
    /// Default 64 MiB.
    pub max_message_size: usize,
    /// The shortest wait after the server throttled us (`UNAVAILABLE`, 429, 503) (THR-5:
    /// the specification recommends at least 30 s). Default 30 s. The actual wait is
    /// `max(backoff, retry_after, throttle_floor)`.
    pub throttle_floor: Duration,
    /// Send the full state as the first message of every new connection (`true`, the
    /// default), or only on the very first one (`false`). SEQ-2 allows a WebSocket
    /// *reconnect* to leave out fields unchanged since the previous connection; with `false`
    /// the first message after a reconnect carries what changed since then, plus whatever
    /// was sent on the previous connection without a reply. Full state on every connection
    /// costs one larger message per reconnect and survives server restarts, replicas that
    /// never saw the agent, and messages lost in the broken connection.
    pub full_state_on_reconnect: bool,
}

impl Settings {
    /// Settings with the defaults: all of [`AgentCapabilities::REPORTS_STATUS`] and
    /// [`AgentCapabilities::REPORTS_HEARTBEAT`], heartbeats every 30 s, polling every 30 s,
    /// default [`Backoff`], no uid request, no custom capabilities, no reply timeout,
    /// 64 MiB message limit, 30 s throttle floor, full state on every connection, no
    /// candidate to resume.
    pub fn new(instance_uid: InstanceUid, transport: Transport, target: ConnectionTarget) -> Self {
        Self {
            instance_uid,
            capabilities: AgentCapabilities::REPORTS_STATUS | AgentCapabilities::REPORTS_HEARTBEAT,
            transport,
            target,
            candidate: None,
            heartbeat_interval: Some(DEFAULT_HEARTBEAT_INTERVAL),
            polling_interval: DEFAULT_POLLING_INTERVAL,
            backoff: Backoff::default(),
            request_instance_uid: false,
            custom_capabilities: Vec::new(),
            reply_timeout: None,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            throttle_floor: DEFAULT_THROTTLE_FLOOR,
            full_state_on_reconnect: true,
        }
    }
}

/// The default WebSocket heartbeat interval (HB-1): 30 s.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(30);
/// The default HTTP polling interval (HTTP-4): 30 s.
pub const DEFAULT_POLLING_INTERVAL: Duration = Duration::from_secs(30);
/// The default minimum wait after throttling (THR-5): 30 s.
pub const DEFAULT_THROTTLE_FLOOR: Duration = Duration::from_secs(30);
