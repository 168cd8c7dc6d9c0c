//! The agent session state machine.

use std::time::Instant;

use opamp_proto::{AgentCapabilities, InstanceUid, ServerCapabilities, v1};

use crate::{Action, ConnectionTarget, Error, Event, Settings, TransportError};

/// The sans-IO agent side of one OpAMP session.
pub struct AgentSession {
    settings: Settings,
}

impl AgentSession {
    /// A new session. The first [`poll_action`](Self::poll_action) returns
    /// `Action::Connect(settings.target)`. `rng_seed` seeds the backoff jitter.
    pub fn new(settings: Settings, now: Instant, rng_seed: u64) -> Self {
        let _ = (now, rng_seed);
        Self { settings }
    }

    /// The transport is up (WS: socket open; HTTP: right after `Action::Connect`).
    pub fn handle_connected(&mut self, now: Instant) {
        let _ = now;
        todo!()
    }

    /// The transport failed or closed, or the last HTTP request failed.
    pub fn handle_transport_error(&mut self, now: Instant, error: TransportError) {
        let _ = (now, error);
        todo!()
    }

    /// A message from the server arrived.
    pub fn handle_message(&mut self, now: Instant, msg: v1::ServerToAgent) {
        let _ = (now, msg);
        todo!()
    }

    /// The time returned by [`poll_timeout`](Self::poll_timeout) has come.
    pub fn handle_timeout(&mut self, now: Instant) {
        let _ = now;
        todo!()
    }

    /// Sets the agent description (DESC-1); reported if it changed (DESC-7).
    pub fn set_agent_description(&mut self, d: v1::AgentDescription) {
        let _ = d;
        todo!()
    }

    /// Sets the capabilities, normalized: `ReportsStatus` forced on, undefined bits cleared
    /// (CAP-2, CAP-3).
    pub fn set_capabilities(&mut self, c: AgentCapabilities) {
        let _ = c;
        todo!()
    }

    /// Sets the health (reported with `ReportsHealth`).
    pub fn set_health(&mut self, h: v1::ComponentHealth) {
        let _ = h;
        todo!()
    }

    /// Sets the effective configuration (EFF-1, EFF-3).
    pub fn set_effective_config(&mut self, c: v1::EffectiveConfig) {
        let _ = c;
        todo!()
    }

    /// Sets the remote config status (RCFG-7).
    pub fn set_remote_config_status(&mut self, s: v1::RemoteConfigStatus) {
        let _ = s;
        todo!()
    }

    /// Sets the package statuses.
    pub fn set_package_statuses(&mut self, s: v1::PackageStatuses) {
        let _ = s;
        todo!()
    }

    /// Sets the connection settings status (CSS-1, CSS-6).
    pub fn set_connection_settings_status(&mut self, s: v1::ConnectionSettingsStatus) {
        let _ = s;
        todo!()
    }

    /// Sets the custom capabilities (CUS-1).
    pub fn set_custom_capabilities(&mut self, c: Vec<String>) {
        let _ = c;
        todo!()
    }

    /// Sets the available components (AVC-1).
    pub fn set_available_components(&mut self, c: v1::AvailableComponents) {
        let _ = c;
        todo!()
    }

    /// Queues a custom message (CUS-2).
    pub fn send_custom_message(&mut self, m: v1::CustomMessage) -> Result<(), Error> {
        let _ = m;
        todo!()
    }

    /// Queues a CSR (CSR-9, CAP-7).
    pub fn request_certificate(&mut self, csr_pem: Vec<u8>) -> Result<(), Error> {
        let _ = csr_pem;
        todo!()
    }

    /// Queues agent_disconnect (DISC-1), then `Action::Disconnect`, `Event::Stopped`.
    pub fn stop(&mut self, now: Instant) {
        let _ = now;
        todo!()
    }

    /// The next message to send, if any.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<v1::AgentToServer> {
        let _ = now;
        todo!()
    }

    /// The next transport instruction, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        todo!()
    }

    /// The next application event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        todo!()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        todo!()
    }

    /// The current instance uid.
    pub fn instance_uid(&self) -> InstanceUid {
        self.settings.instance_uid
    }

    /// Whether the transport is up.
    pub fn is_connected(&self) -> bool {
        todo!()
    }

    /// The server's capabilities, once a reply has been received.
    pub fn server_capabilities(&self) -> Option<ServerCapabilities> {
        todo!()
    }

    /// The connection target in use.
    pub fn current_target(&self) -> &ConnectionTarget {
        &self.settings.target
    }
}
