//! The agent side of OpAMP as a sans-IO state machine.
//!
//! [`AgentSession`] is shaped like `quinn-proto`: it never reads the clock, touches a socket,
//! spawns a task or draws OS randomness. Inputs are `handle_*(now, ..)` calls and the
//! application setters; outputs are polled: [`AgentSession::poll_transmit`] (messages to
//! send), [`AgentSession::poll_action`] (what the transport must do),
//! [`AgentSession::poll_event`] (what the application must know) and
//! [`AgentSession::poll_timeout`] (when to call [`AgentSession::handle_timeout`]). Time
//! comes in as [`std::time::Instant`], jitter from a caller-given seed, so every protocol
//! test is deterministic and runs in memory. The tokio driver lives in `opamp-client`.
//!
//! The agent lifecycle (Initializing → Connected → Configuring → Running → Updating → Error
//! → Disconnected) is a separate, checked state machine in [`lifecycle`].
//!
//! # Example
//!
//! A whole exchange with an in-memory "server":
//!
//! ```
//! use std::time::{Duration, Instant};
//! use opamp_agent_fsm::{Action, AgentSession, ConnectionTarget, Event, Settings, Transport};
//! use opamp_proto::{v1, AgentCapabilities, InstanceUid, ServerCapabilities};
//!
//! let uid = InstanceUid::from_array([7; 16]);
//! let mut settings = Settings::new(uid, Transport::WebSocket, ConnectionTarget::new("ws://127.0.0.1:4320/v1/opamp"));
//! settings.capabilities |= AgentCapabilities::ACCEPTS_REMOTE_CONFIG;
//! let mut now = Instant::now();
//! let mut agent = AgentSession::new(settings, now, 42);
//!
//! // 1. The driver is told to connect, connects, and says so.
//! assert!(matches!(agent.poll_action(), Some(Action::Connect(_))));
//! agent.handle_connected(now);
//!
//! // 2. The first message is a full status report with sequence number 0.
//! let first = agent.poll_transmit(now).unwrap();
//! assert_eq!(first.sequence_num, 0);
//! assert_eq!(first.instance_uid, uid.to_vec());
//! assert!(agent.poll_transmit(now).is_none(), "nothing else to say");
//!
//! // 3. The server replies with its capabilities and a remote config.
//! agent.handle_message(now, v1::ServerToAgent {
//!     instance_uid: uid.to_vec(),
//!     capabilities: (ServerCapabilities::ACCEPTS_STATUS | ServerCapabilities::OFFERS_REMOTE_CONFIG).bits(),
//!     remote_config: Some(v1::AgentRemoteConfig { config_hash: vec![1], ..Default::default() }),
//!     ..Default::default()
//! });
//! assert!(matches!(agent.poll_event(), Some(Event::Connected)));
//! assert!(matches!(agent.poll_event(), Some(Event::ServerCapabilitiesChanged(_))));
//! assert!(matches!(agent.poll_event(), Some(Event::RemoteConfig(_))));
//! assert!(agent.poll_transmit(now).is_none(), "a reply that changes no status is not answered (MSG-4)");
//!
//! // 4. 30 s later the heartbeat is due.
//! now += Duration::from_secs(30);
//! assert_eq!(agent.poll_timeout(), Some(now));
//! agent.handle_timeout(now);
//! assert_eq!(agent.poll_transmit(now).unwrap().sequence_num, 1);
//!
//! // 5. Stop: a goodbye, then Disconnect and Stopped.
//! agent.stop(now);
//! assert!(agent.poll_transmit(now).unwrap().agent_disconnect.is_some());
//! assert!(matches!(agent.poll_action(), Some(Action::Disconnect)));
//! assert!(std::iter::from_fn(|| agent.poll_event()).any(|e| matches!(e, Event::Stopped)));
//! ```
//!
//! # Driver protocol
//!
//! 1. After constructing, [`AgentSession::poll_action`] yields `Action::Connect(target)`.
//! 2. WebSocket: open the socket; on success call `handle_connected(now)`, on failure
//!    `handle_transport_error(now, ..)`. HTTP: call `handle_connected(now)` right away on
//!    `Connect` (HTTP has no connection) and report each failed request with
//!    `handle_transport_error`; the session then holds back the next request for the
//!    backoff.
//! 3. After every input, drain `poll_transmit(now)` (send each message), `poll_action()`,
//!    `poll_event()`; then sleep until `poll_timeout()` and call `handle_timeout(now)`.
//!    Over HTTP the session hands out one request at a time (HTTP-6).
//! 4. On `Action::Disconnect`: close the WebSocket (close handshake) or stop polling; the
//!    last message handed out before it (the goodbye) must still be sent first. Report
//!    nothing further about the closed connection or its outstanding request. A later
//!    `Action::Connect` starts a new connection; it only comes out when it is time (backoff
//!    waits live in the session's timers).
//!
//! # Behaviour and policies
//!
//! - **Sequence numbers** start at 0 (as opamp-go) and grow by exactly 1 for every message
//!   handed out by `poll_transmit`, heartbeats, polls and the goodbye included (SEQ-6). A
//!   message that is not sent (over the size limit) does not use a number.
//! - **Every message** carries `instance_uid`, `capabilities` and the current `flags`
//!   (GEN-5, CAP-1, HB-4). Capabilities are normalized: `ReportsStatus` always set,
//!   undefined bits cleared (CAP-2, CAP-3).
//! - **Status compression** (SEQ-8..10): each sub-message (description, health, effective
//!   config, remote config status, package statuses, connection settings status, custom
//!   capabilities, available components) is sent whole (SEQ-9) when it changed since it was
//!   last sent. Setting a value equal to the current one changes nothing and sends nothing.
//!   The full state (SEQ-12: each sub-message whose capability applies, plus flags) goes
//!   out on the first connection, after `ReportFullState`, and — by default — on every new
//!   connection; [`Settings::full_state_on_reconnect`] = `false` uses SEQ-2 instead.
//! - **No loops** (MSG-4, SEQ-14): processing a `ServerToAgent` produces a message only if
//!   the agent's status changed or the server asked (`ReportFullState`,
//!   `ReportAvailableComponents`). Repeated offers are deduplicated (MSG-3): a remote
//!   config or package offer equal to the last one is not re-emitted, a connection
//!   settings offer with the last processed hash is skipped (OPC-12).
//! - **Capability gating** (CAP-5): `remote_config` needs `AcceptsRemoteConfig`,
//!   `packages_available` `AcceptsPackages`, `own_*` `ReportsOwn*`, `opamp`
//!   `AcceptsOpAMPConnectionSettings`, `other_connections`
//!   `AcceptsOtherConnectionSettings`, `command` `AcceptsRestartCommand` — without it the
//!   command is ignored and the rest processed; with it, the rest is ignored (MSG-9) and
//!   unknown command types do nothing (CMD-5). Custom messages for capabilities not among
//!   ours are dropped (CUS-3). Unknown flag bits and enum values are ignored (MSG-10).
//! - **Server capabilities** are read from the first reply that carries them; 0 means
//!   unchanged (CAP-8). Once known (CAP-7): no `package_statuses` without
//!   `AcceptsPackagesStatus`, no `effective_config` without `AcceptsEffectiveConfig` (our
//!   reading of CAP-7: the capability exists, so we honour it), no CSR without
//!   `AcceptsConnectionSettingsRequest` ([`AgentSession::request_certificate`] fails with
//!   [`Error::ServerLacksCapability`]). Before the first reply everything is sent. A
//!   capability the server gains later triggers a report of that sub-message.
//! - **New instance uid**: accepted only when exactly 16 bytes (UID-6, UID-7); it replaces
//!   the uid in all later messages, clears `RequestInstanceUid`, and emits
//!   [`Event::NewInstanceUid`]. Other lengths are ignored. Replies addressed to neither the
//!   current nor the previous uid are ignored (MSG-5; empty uids are accepted).
//! - **`error_response`** is detected by presence (§1.8). If set, the error wins: every
//!   other field of that message is ignored ([`Event::ServerError`]). `BAD_REQUEST`,
//!   `UNKNOWN` and unknown types: what was sent is not retried (ERR-2, ERR-4).
//!   `UNAVAILABLE`: WebSocket — goodbye, `Action::Disconnect`, wait, `Action::Connect`,
//!   resume (THR-2); HTTP — the next request waits. The wait is
//!   `max(backoff, retry_info, throttle_floor)`; no heartbeats meanwhile (HB-9, THR-4).
//! - **Heartbeats**: with `ReportsHeartbeat` over WebSocket, a message every interval
//!   counted from the last message sent (HB-6, HB-7); an accepted `opamp` offer's
//!   `heartbeat_interval_seconds` overrides the local interval (HB-2) and 0 disables
//!   heartbeats (HB-3). HTTP always polls (HTTP-3), at [`Settings::polling_interval`] or a
//!   non-zero offered interval (HTTP-5, HB-5); an offered 0 is ignored over HTTP (§4 item 1).
//! - **Backoff** (CONN-2, CONN-4, THR-3..5): exponential with jitter from the seeded PRNG,
//!   capped ([`Backoff`]); a broken established WebSocket reconnects once at once, then
//!   backs off; throttling waits `max(backoff, Retry-After, throttle_floor)` where the floor
//!   defaults to the 30 s the specification recommends (THR-5). 401 emits
//!   [`Event::AuthenticationFailed`] and backs off. All timers are clamped to one day.
//! - **Dropped messages**: an `AgentToServer` over [`Settings::max_message_size`] is not
//!   sent (WSL-6, HSL-7) and a 413 drops the request (HSL-4); both emit
//!   [`Event::MessageDiscarded`]. Their sub-messages are not retried on their own (that
//!   would repeat the rejected request) but ride along with the next report sent for
//!   another reason (a change, a full-state request), so the state is not lost for good.
//!   If the dropped message was needed (first report, heartbeat, goodbye) a bare message
//!   (uid, sequence number, capabilities, flags) goes out instead.
//! - **Retries** (ERR-5, ERR-7): what was sent without a successful reply (a failed HTTP
//!   request, a broken WebSocket, `UNAVAILABLE`) is marked changed again and goes out with
//!   the next message, holding the latest values; custom messages and CSRs are re-queued.
//!   [`Settings::reply_timeout`] (HTTP) turns a missing reply into `Action::Disconnect`, a
//!   backoff and `Action::Connect`.
//! - **OpAMP connection settings** (OPC-3..17, CSS-1..4): a new `opamp` offer emits
//!   [`Event::OpampSettingsCandidate`], reports APPLYING (with
//!   `ReportsConnectionSettingsStatus`), sends a goodbye (OPC-13), `Action::Disconnect` and
//!   `Action::Connect(candidate)`. It is accepted when the WebSocket connects / the first
//!   HTTP response arrives ([`Event::OpampSettingsAccepted`], APPLIED); any failure reverts
//!   ([`Event::OpampSettingsRejected`], FAILED, `Action::Connect(previous)`). Offers that
//!   change only the heartbeat are applied in place. Empty `destination_endpoint` keeps the
//!   endpoint (OPC-17); a missing certificate in a full offer means no client certificate
//!   (OPC-8); missing `headers`/`tls` mean unchanged; an endpoint whose scheme does not fit
//!   the transport fails the offer (OPC-2); `proxy` is not supported. An offer with nothing
//!   we may take reports FAILED (opamp-go behaviour). `own_*` / `other_connections` offers
//!   go to the application as [`Event::ConnectionSettingsOffer`]; it reports their status
//!   (CSS-5).
//! - **Resuming a candidate after a restart** (OPC-5 step 3: the candidate survives
//!   crashes, so steps 5 to 9 are retried): the driver persists
//!   [`AgentSession::pending_candidate`] (target and offer hash) on
//!   [`Event::OpampSettingsCandidate`], clears it on `OpampSettingsAccepted` /
//!   `OpampSettingsRejected`, and after a restart passes it back in
//!   [`Settings::candidate`], with the valid settings as [`Settings::target`]. The first
//!   `Action::Connect` then uses the candidate, and from there it is the offer flow above:
//!   accepted on connect (WS) / the first response (HTTP) with APPLIED, or rejected with
//!   FAILED and `Action::Connect(previous)` (CSS-4). A stored candidate whose endpoint does
//!   not fit the transport is rejected without connecting (OPC-2).
//! - **Available components**: with `ReportsAvailableComponents` the hash is always sent
//!   with an empty map; the full map only after `ReportAvailableComponents` (AVC-1..5).
//! - **Stop**: [`AgentSession::stop`] sends a goodbye carrying `agent_disconnect` (DISC-1,
//!   DISC-4), then `Action::Disconnect`, `Event::Stopped`; nothing after.
//!
//! # Changes to the agreed API
//!
//! Additions only: [`Settings::max_message_size`], [`Settings::throttle_floor`],
//! [`Settings::full_state_on_reconnect`], [`Settings::candidate`] with
//! [`PendingCandidate`] and [`AgentSession::pending_candidate`] (resuming the offer flow
//! after a restart), [`ConnectionTarget::new`], `Default` for
//! [`Backoff`], [`Event::ServerCustomCapabilities`], the queries
//! [`AgentSession::capabilities`], [`AgentSession::next_sequence_num`],
//! [`AgentSession::server_custom_capabilities`], [`AgentSession::is_stopped`], the
//! constants [`DEFAULT_HEARTBEAT_INTERVAL`], [`DEFAULT_POLLING_INTERVAL`],
//! [`DEFAULT_THROTTLE_FLOOR`], [`MAX_PENDING_CUSTOM_MESSAGES`], `Display` for
//! [`TransportError`], and [`lifecycle::Lifecycle::can_apply`].

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod backoff;
mod error;
mod event;
pub mod lifecycle;
mod retry_after;
mod session;
mod settings;
mod status;

pub use error::Error;
pub use event::{Action, Event, TransportError};
pub use retry_after::parse_retry_after;
pub use session::{AgentSession, MAX_PENDING_CUSTOM_MESSAGES};
pub use settings::{
    Backoff, ConnectionTarget, DEFAULT_HEARTBEAT_INTERVAL, DEFAULT_POLLING_INTERVAL,
    DEFAULT_THROTTLE_FLOOR, PendingCandidate, Settings, Transport,
};
