//! The public face of the crate: [`OpampClient`] (built with [`ClientBuilder`]) and the
//! cloneable [`ClientHandle`] that talks to the running client over a channel.

use std::sync::Arc;
use std::time::Duration;

use opamp_agent_fsm::{Backoff, ConnectionTarget};
use opamp_proto::v1::KeyValue;
use opamp_proto::{AgentCapabilities, InstanceUid, Limits, v1};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::driver::{Driver, DriverOptions};
use crate::event::ClientEvent;
use crate::store::{MemoryStateStore, StateStore};
use crate::transport::{Endpoint, header_map};
use crate::{Error, tls};

/// Builds an [`OpampClient`]. Start with [`OpampClient::builder`].
///
/// Only the endpoint is required. Defaults: capabilities `ReportsStatus |
/// ReportsHeartbeat`, heartbeats and HTTP polls every 30 s, backoff 1 s doubling to
/// 5 min with ±20 % jitter, 64 MiB size limits, uncompressed HTTP requests, system trust
/// roots, state kept in memory only.
#[must_use]
pub struct ClientBuilder {
    endpoint: String,
    headers: Vec<(String, String)>,
    description: v1::AgentDescription,
    capabilities: AgentCapabilities,
    store: Option<Box<dyn StateStore>>,
    instance_uid: Option<InstanceUid>,
    heartbeat_interval: Option<Option<Duration>>,
    polling_interval: Option<Duration>,
    backoff: Option<Backoff>,
    throttle_floor: Option<Duration>,
    tls: Option<v1::TlsConnectionSettings>,
    certificate: Option<v1::TlsCertificate>,
    gzip_requests: bool,
    max_message_size: usize,
    request_timeout: Duration,
    connect_timeout: Duration,
    close_timeout: Duration,
    request_instance_uid: bool,
    custom_capabilities: Vec<String>,
    health: Option<v1::ComponentHealth>,
    effective_config: Option<v1::EffectiveConfig>,
    event_capacity: usize,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("endpoint", &self.endpoint)
            .field("capabilities", &self.capabilities)
            .finish_non_exhaustive()
    }
}

fn set_attribute(list: &mut Vec<KeyValue>, key: &str, value: v1::AnyValue) {
    list.retain(|kv| kv.key != key);
    list.push(KeyValue {
        key: key.to_owned(),
        value: Some(value),
    });
}

fn string_value(s: impl Into<String>) -> v1::AnyValue {
    v1::AnyValue {
        value: Some(v1::any_value::Value::StringValue(s.into())),
    }
}

impl ClientBuilder {
    fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            headers: Vec::new(),
            description: v1::AgentDescription::default(),
            capabilities: AgentCapabilities::REPORTS_STATUS | AgentCapabilities::REPORTS_HEARTBEAT,
            store: None,
            instance_uid: None,
            heartbeat_interval: None,
            polling_interval: None,
            backoff: None,
            throttle_floor: None,
            tls: None,
            certificate: None,
            gzip_requests: false,
            max_message_size: opamp_proto::DEFAULT_MAX_MESSAGE_SIZE,
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(30),
            close_timeout: Duration::from_secs(5),
            request_instance_uid: false,
            custom_capabilities: Vec::new(),
            health: None,
            effective_config: None,
            event_capacity: 64,
        }
    }

    /// Adds a header to every HTTP POST and to the WebSocket upgrade request (OPC-7), for
    /// example `Authorization`.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the `service.name` identifying attribute (DESC-5).
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        set_attribute(
            &mut self.description.identifying_attributes,
            "service.name",
            string_value(name),
        );
        self
    }

    /// Sets the `service.version` identifying attribute (DESC-5).
    pub fn service_version(mut self, version: impl Into<String>) -> Self {
        set_attribute(
            &mut self.description.identifying_attributes,
            "service.version",
            string_value(version),
        );
        self
    }

    /// Adds (or replaces) an identifying attribute (DESC-1).
    pub fn identifying_attribute(
        mut self,
        key: impl Into<String>,
        value: impl Into<v1::AnyValue>,
    ) -> Self {
        let key = key.into();
        set_attribute(
            &mut self.description.identifying_attributes,
            &key,
            value.into(),
        );
        self
    }

    /// Adds (or replaces) a non-identifying attribute (DESC-3). `os.type` and `host.arch`
    /// are filled in automatically unless given.
    pub fn non_identifying_attribute(
        mut self,
        key: impl Into<String>,
        value: impl Into<v1::AnyValue>,
    ) -> Self {
        let key = key.into();
        set_attribute(
            &mut self.description.non_identifying_attributes,
            &key,
            value.into(),
        );
        self
    }

    /// Replaces the whole agent description built so far.
    pub fn agent_description(mut self, description: v1::AgentDescription) -> Self {
        self.description = description;
        self
    }

    /// What the agent can do. `ReportsStatus` is always added (CAP-3).
    pub fn capabilities(mut self, capabilities: AgentCapabilities) -> Self {
        self.capabilities = capabilities;
        self
    }

    /// Where the instance uid, the last remote config and the connection settings are
    /// kept across restarts. Default: in memory only ([`MemoryStateStore`]).
    pub fn state_store(mut self, store: impl StateStore) -> Self {
        self.store = Some(Box::new(store));
        self
    }

    /// Uses this instance uid instead of the stored or a generated one.
    pub fn instance_uid(mut self, uid: InstanceUid) -> Self {
        self.instance_uid = Some(uid);
        self
    }

    /// Asks the server to assign the instance uid (UID-4).
    pub fn request_instance_uid(mut self, request: bool) -> Self {
        self.request_instance_uid = request;
        self
    }

    /// WebSocket heartbeat interval (HB-7; default 30 s, `None` = no heartbeats). Used
    /// with the `ReportsHeartbeat` capability.
    pub fn heartbeat_interval(mut self, interval: Option<Duration>) -> Self {
        self.heartbeat_interval = Some(interval);
        self
    }

    /// HTTP polling interval (HTTP-4; default 30 s).
    pub fn polling_interval(mut self, interval: Duration) -> Self {
        self.polling_interval = Some(interval);
        self
    }

    /// Reconnect backoff (CONN-2).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = Some(backoff);
        self
    }

    /// The shortest wait after the server throttled us (THR-5; default 30 s).
    pub fn throttle_floor(mut self, floor: Duration) -> Self {
        self.throttle_floor = Some(floor);
        self
    }

    fn tls_mut(&mut self) -> &mut v1::TlsConnectionSettings {
        self.tls.get_or_insert_with(Default::default)
    }

    /// Trusts the CA certificates in this PEM instead of the system trust store (for
    /// `wss` / `https`).
    pub fn ca_pem(mut self, pem: impl Into<String>) -> Self {
        self.tls_mut().ca_pem_contents = pem.into();
        self
    }

    /// With [`ca_pem`](Self::ca_pem): trust the system store too.
    pub fn include_system_roots(mut self, include: bool) -> Self {
        self.tls_mut().include_system_ca_certs_pool = include;
        self
    }

    /// Presents this client certificate (PEM chain and PEM private key) for mutual TLS.
    pub fn client_certificate(
        mut self,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.certificate = Some(v1::TlsCertificate {
            cert: cert_pem.into(),
            private_key: key_pem.into(),
            ca_cert: Vec::new(),
        });
        self
    }

    /// Disables server certificate verification. Dangerous (SEC-10): for tests only.
    pub fn danger_accept_invalid_certs(mut self, accept: bool) -> Self {
        self.tls_mut().insecure_skip_verify = accept;
        self
    }

    /// Gzips HTTP request bodies, with `Content-Encoding: gzip` (HTTP-9). Off by default.
    /// Responses are always accepted gzipped.
    pub fn gzip_requests(mut self, gzip: bool) -> Self {
        self.gzip_requests = gzip;
        self
    }

    /// The size limit for messages in both directions, after decompression for received
    /// data and before compression for sent data (WSL-1, HSL-1). Default 64 MiB.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// How long one HTTP exchange (connect, request, response) may take. Default 30 s.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How long opening a WebSocket (TCP, TLS, upgrade) may take. Default 30 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long [`ClientHandle::stop`] waits for the server's Close frame. Default 5 s.
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Custom capabilities (CUS-1).
    pub fn custom_capabilities(mut self, capabilities: Vec<String>) -> Self {
        self.custom_capabilities = capabilities;
        self
    }

    /// Health reported in the first message (with `ReportsHealth`).
    pub fn health(mut self, health: v1::ComponentHealth) -> Self {
        self.health = Some(health);
        self
    }

    /// Effective configuration reported in the first message (with
    /// `ReportsEffectiveConfig`).
    pub fn effective_config(mut self, config: v1::EffectiveConfig) -> Self {
        self.effective_config = Some(config);
        self
    }

    /// How many events may wait unread before the client pauses. Default 64.
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.event_capacity = capacity.max(1);
        self
    }

    /// Validates the configuration (endpoint URL, headers, TLS material).
    pub fn build(mut self) -> Result<OpampClient, Error> {
        Endpoint::parse(&self.endpoint)?;
        header_map(&self.headers)?;
        tls::client_config(self.tls.as_ref(), self.certificate.as_ref())?;
        if self.max_message_size < 2 {
            return Err(Error::Config(
                "max_message_size must be at least 2 bytes".into(),
            ));
        }
        let attrs = &mut self.description.non_identifying_attributes;
        if !attrs.iter().any(|kv| kv.key == "os.type") {
            set_attribute(attrs, "os.type", string_value(std::env::consts::OS));
        }
        if !attrs.iter().any(|kv| kv.key == "host.arch") {
            let arch = match std::env::consts::ARCH {
                "x86_64" => "amd64",
                "aarch64" => "arm64",
                other => other,
            };
            set_attribute(attrs, "host.arch", string_value(arch));
        }
        let mut target = ConnectionTarget::new(self.endpoint.trim());
        target.headers = self.headers;
        target.tls = self.tls;
        target.certificate = self.certificate;
        Ok(OpampClient {
            config: ClientConfig {
                target,
                description: self.description,
                capabilities: self.capabilities | AgentCapabilities::REPORTS_STATUS,
                instance_uid: self.instance_uid,
                heartbeat_interval: self.heartbeat_interval,
                polling_interval: self.polling_interval,
                backoff: self.backoff,
                throttle_floor: self.throttle_floor,
                request_instance_uid: self.request_instance_uid,
                custom_capabilities: self.custom_capabilities,
                health: self.health,
                effective_config: self.effective_config,
                event_capacity: self.event_capacity,
                driver: DriverOptions {
                    limits: Limits::new(self.max_message_size),
                    gzip_requests: self.gzip_requests,
                    request_timeout: self.request_timeout,
                    connect_timeout: self.connect_timeout,
                    close_timeout: self.close_timeout,
                },
            },
            store: self
                .store
                .unwrap_or_else(|| Box::new(MemoryStateStore::new())),
        })
    }
}

/// Everything the driver needs, validated by [`ClientBuilder::build`].
#[derive(Debug)]
pub(crate) struct ClientConfig {
    pub(crate) target: ConnectionTarget,
    pub(crate) description: v1::AgentDescription,
    pub(crate) capabilities: AgentCapabilities,
    pub(crate) instance_uid: Option<InstanceUid>,
    pub(crate) heartbeat_interval: Option<Option<Duration>>,
    pub(crate) polling_interval: Option<Duration>,
    pub(crate) backoff: Option<Backoff>,
    pub(crate) throttle_floor: Option<Duration>,
    pub(crate) request_instance_uid: bool,
    pub(crate) custom_capabilities: Vec<String>,
    pub(crate) health: Option<v1::ComponentHealth>,
    pub(crate) effective_config: Option<v1::EffectiveConfig>,
    pub(crate) event_capacity: usize,
    pub(crate) driver: DriverOptions,
}

/// An OpAMP client, configured but not yet running. See the [crate docs](crate).
pub struct OpampClient {
    config: ClientConfig,
    store: Box<dyn StateStore>,
}

impl std::fmt::Debug for OpampClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpampClient")
            .field("endpoint", &self.config.target.endpoint)
            .finish_non_exhaustive()
    }
}

impl OpampClient {
    /// Starts configuring a client for `endpoint`: `ws://`, `wss://` (WebSocket) or
    /// `http://`, `https://` (plain HTTP), e.g. `ws://127.0.0.1:4320/v1/opamp`.
    pub fn builder(endpoint: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(endpoint)
    }

    /// Loads the persisted state, then spawns the client task on the current tokio
    /// runtime. Returns the handle to control it and the stream of events.
    ///
    /// On start: the stored instance uid is used (or a UUIDv7 is generated and stored,
    /// UID-1, UID-2); stored valid OpAMP connection settings replace the configured
    /// endpoint; a stored candidate is tried first and kept or reverted (OPC-5 step 3), with
    /// APPLIED or FAILED reported for its offer (CSS-4, with
    /// `ReportsConnectionSettingsStatus`).
    pub async fn start(self) -> Result<(ClientHandle, mpsc::Receiver<ClientEvent>), Error> {
        let (event_tx, event_rx) = mpsc::channel(self.config.event_capacity);
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (driver, uid) = Driver::new(self.config, self.store, event_tx, cmd_rx)?;
        let task = tokio::spawn(driver.run());
        let handle = ClientHandle {
            commands: cmd_tx,
            task: Arc::new(tokio::sync::Mutex::new(Some(task))),
            initial_uid: uid,
        };
        Ok((handle, event_rx))
    }
}

/// A request from a [`ClientHandle`] to the client task.
#[derive(Debug)]
pub(crate) enum Command {
    AgentDescription(v1::AgentDescription),
    Capabilities(AgentCapabilities),
    Health(v1::ComponentHealth),
    EffectiveConfig(v1::EffectiveConfig),
    RemoteConfigStatus(v1::RemoteConfigStatus),
    PackageStatuses(v1::PackageStatuses),
    ConnectionSettingsStatus(v1::ConnectionSettingsStatus),
    CustomCapabilities(Vec<String>),
    AvailableComponents(v1::AvailableComponents),
    CustomMessage(v1::CustomMessage, oneshot::Sender<Result<(), Error>>),
    RequestCertificate(Vec<u8>, oneshot::Sender<Result<(), Error>>),
    InstanceUid(oneshot::Sender<InstanceUid>),
    Stop,
}

/// Controls a running client. Cheap to clone; all clones talk to the same client task.
///
/// Every setter replaces one part of the agent's reported state; the client sends a status
/// report with only what changed (SEQ-8) at the next opportunity. Setters fail only with
/// [`Error::Stopped`] once the client has stopped. Dropping every handle stops the client
/// as [`stop`](Self::stop) does.
#[derive(Clone, Debug)]
pub struct ClientHandle {
    commands: mpsc::UnboundedSender<Command>,
    task: Arc<tokio::sync::Mutex<Option<JoinHandle<()>>>>,
    initial_uid: InstanceUid,
}

impl ClientHandle {
    fn send(&self, cmd: Command) -> Result<(), Error> {
        self.commands.send(cmd).map_err(|_| Error::Stopped)
    }

    /// Replaces the agent description (DESC-1).
    pub async fn set_agent_description(&self, d: v1::AgentDescription) -> Result<(), Error> {
        self.send(Command::AgentDescription(d))
    }

    /// Replaces the capabilities (CAP-4).
    pub async fn set_capabilities(&self, c: AgentCapabilities) -> Result<(), Error> {
        self.send(Command::Capabilities(c))
    }

    /// Replaces the health (HLTH-1).
    pub async fn set_health(&self, h: v1::ComponentHealth) -> Result<(), Error> {
        self.send(Command::Health(h))
    }

    /// Replaces the effective configuration (EFF-2).
    pub async fn set_effective_config(&self, c: v1::EffectiveConfig) -> Result<(), Error> {
        self.send(Command::EffectiveConfig(c))
    }

    /// Replaces the remote config status (RCFG-3); it is also persisted.
    pub async fn set_remote_config_status(&self, s: v1::RemoteConfigStatus) -> Result<(), Error> {
        self.send(Command::RemoteConfigStatus(s))
    }

    /// Replaces the package statuses (PKG-13).
    pub async fn set_package_statuses(&self, s: v1::PackageStatuses) -> Result<(), Error> {
        self.send(Command::PackageStatuses(s))
    }

    /// Replaces the connection settings status (CSS-1).
    pub async fn set_connection_settings_status(
        &self,
        s: v1::ConnectionSettingsStatus,
    ) -> Result<(), Error> {
        self.send(Command::ConnectionSettingsStatus(s))
    }

    /// Replaces the custom capabilities (CUS-1).
    pub async fn set_custom_capabilities(&self, c: Vec<String>) -> Result<(), Error> {
        self.send(Command::CustomCapabilities(c))
    }

    /// Replaces the available components (AVC-1).
    pub async fn set_available_components(&self, c: v1::AvailableComponents) -> Result<(), Error> {
        self.send(Command::AvailableComponents(c))
    }

    /// Queues a custom message (CUS-4). Fails when its capability was not declared, or a
    /// custom message is still waiting to be sent.
    pub async fn send_custom_message(&self, m: v1::CustomMessage) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::CustomMessage(m, tx))?;
        rx.await.map_err(|_| Error::Stopped)?
    }

    /// Sends a certificate signing request (PEM) to the server (CSR-1). Fails unless the
    /// server advertised `AcceptsConnectionSettingsRequest` (CSR-9, CAP-7).
    pub async fn request_certificate(&self, csr_pem: Vec<u8>) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::RequestCertificate(csr_pem, tx))?;
        rx.await.map_err(|_| Error::Stopped)?
    }

    /// The instance uid in use now (it changes when the server assigns one, UID-6).
    pub async fn instance_uid(&self) -> InstanceUid {
        let (tx, rx) = oneshot::channel();
        if self.send(Command::InstanceUid(tx)).is_err() {
            return self.initial_uid;
        }
        rx.await.unwrap_or(self.initial_uid)
    }

    /// Stops gracefully and waits until the client task has ended: the last message
    /// carries `agent_disconnect` (DISC-1), then the WebSocket closing handshake runs
    /// (DISC-2); over HTTP the last POST carries `agent_disconnect` (DISC-4). A
    /// [`ClientEvent::Stopped`] is the last event. Calling it again is harmless.
    pub async fn stop(&self) -> Result<(), Error> {
        let _ = self.send(Command::Stop);
        let task = self.task.lock().await.take();
        if let Some(task) = task {
            if let Err(e) = task.await {
                if e.is_panic() {
                    std::panic::resume_unwind(e.into_panic());
                }
            }
        }
        Ok(())
    }
}
