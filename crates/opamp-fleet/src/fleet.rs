//! The fleet core: what one replica keeps in memory about agents and assignments, how it
//! computes desired configs and pushes them, and the change-event loop that keeps several
//! replicas in step.
//!
//! Architecture invariant: the store is the truth. Memory holds a cache that can be rebuilt
//! from it at any time ([`Fleet::recompute_all`]), plus what only this replica can know
//! (which connection holds which agent, which offers it made). No admin request depends on
//! that replica-only part, except the `drifted` distinction (see [`crate::sync`]).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use opamp_config::ConfigHash;
use opamp_proto::v1::{AgentRemoteConfig, CommandType, ServerToAgent, ServerToAgentCommand};
use opamp_proto::{AgentCapabilities, InstanceUid};
use opamp_server::Server;
use opamp_store::{
    Agent, AgentDescription, AgentFilter, BatcherConfig, ChangeEvent, LastSeenBatcher, PageRequest,
    RemoteConfigStatus, Store, Timestamp, Transport,
};
use serde::Serialize;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::desired::Resolver;
use crate::handler::FleetHandler;
use crate::metrics::{AgentGauges, FleetMetrics};
use crate::sync::{SyncState, sync_state};
use crate::writer::StatusWriter;

/// Options of a [`Fleet`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FleetOptions {
    /// This replica's id, recorded with each agent it holds. Keep it stable across restarts
    /// of the same replica: at start-up the agents a killed predecessor with the same id
    /// left "connected" are marked disconnected.
    pub server_id: String,
    /// Serve the admin API without authentication while the store holds no active token
    /// (first use on a loopback bind). With `false`, every request needs a token.
    pub open_without_tokens: bool,
    /// The largest admin API request body, in bytes (413 past it).
    pub max_body_bytes: usize,
    /// How often batched last-seen times are written.
    pub last_seen_flush: Duration,
    /// How long agent status reports are gathered before one batched write.
    pub status_flush: Duration,
    /// The OTLP/HTTP metrics URL offered in `connection_settings.own_metrics` to agents
    /// that report their own metrics (OWN-1, OWN-6); `None` offers nothing.
    pub own_metrics_endpoint: Option<String>,
    /// How long a web UI sign-in lasts. The session cookie records when it was issued and
    /// the server refuses it past this age, on every replica (the token is still checked
    /// on every request, so a revoked token ends its sessions at once).
    pub ui_session_ttl: Duration,
}

impl Default for FleetOptions {
    fn default() -> Self {
        Self {
            server_id: "opampd".into(),
            open_without_tokens: false,
            max_body_bytes: 4 * 1024 * 1024,
            last_seen_flush: Duration::from_secs(5),
            status_flush: Duration::from_millis(50),
            own_metrics_endpoint: None,
            ui_session_ttl: Duration::from_secs(12 * 3600),
        }
    }
}

impl FleetOptions {
    /// Options with this replica id.
    pub fn new(server_id: impl Into<String>) -> Self {
        Self {
            server_id: server_id.into(),
            ..Self::default()
        }
    }

    /// Sets [`FleetOptions::open_without_tokens`].
    pub fn open_without_tokens(mut self, open: bool) -> Self {
        self.open_without_tokens = open;
        self
    }

    /// Sets [`FleetOptions::max_body_bytes`].
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// Sets [`FleetOptions::status_flush`].
    pub fn status_flush(mut self, every: Duration) -> Self {
        self.status_flush = every;
        self
    }

    /// Sets [`FleetOptions::ui_session_ttl`].
    pub fn ui_session_ttl(mut self, ttl: Duration) -> Self {
        self.ui_session_ttl = ttl;
        self
    }

    /// Sets [`FleetOptions::last_seen_flush`].
    pub fn last_seen_flush(mut self, every: Duration) -> Self {
        self.last_seen_flush = every;
        self
    }

    /// Sets [`FleetOptions::own_metrics_endpoint`].
    pub fn own_metrics_endpoint(mut self, url: Option<String>) -> Self {
        self.own_metrics_endpoint = url;
        self
    }

    /// The `connection_settings` offered to every agent that reports its own metrics, with
    /// its hash (SHA-256 of the encoded offer), or `None` when nothing is configured.
    pub fn own_telemetry_offer(&self) -> Option<opamp_proto::v1::ConnectionSettingsOffers> {
        use opamp_proto::prost::Message as _;
        use sha2::Digest as _;
        let endpoint = self.own_metrics_endpoint.as_ref()?;
        let mut offer = opamp_proto::v1::ConnectionSettingsOffers {
            own_metrics: Some(opamp_proto::v1::TelemetryConnectionSettings {
                destination_endpoint: endpoint.clone(),
                ..Default::default()
            }),
            ..Default::default()
        };
        offer.hash = sha2::Sha256::digest(offer.encode_to_vec()).to_vec();
        Some(offer)
    }

    /// The OpAMP server configuration for these options: [`crate::server_config`], plus
    /// `OffersConnectionSettings` when an own-telemetry destination is configured.
    pub fn server_config(&self) -> opamp_server::ServerConfig {
        let mut config = crate::server_config();
        if self.own_metrics_endpoint.is_some() {
            config.session.capabilities |=
                opamp_proto::ServerCapabilities::OFFERS_CONNECTION_SETTINGS;
        }
        config
    }
}

/// One config version ready to offer.
#[derive(Debug)]
pub struct Resolved {
    /// The config's name.
    pub config: String,
    /// The version.
    pub version: u64,
    /// The assignment that chose it.
    pub assignment_id: i64,
    /// Its hash (what agents report back).
    pub hash: ConfigHash,
    /// The offer (`config_hash` = `hash`, RCFG-2).
    pub remote: AgentRemoteConfig,
}

/// Hashes of the sub-messages last written for an agent, to write only what changed.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct SubHashes {
    pub(crate) description: Option<u64>,
    pub(crate) health: Option<u64>,
    pub(crate) effective_config: Option<u64>,
    pub(crate) package_statuses: Option<u64>,
    pub(crate) custom_capabilities: Option<u64>,
    pub(crate) available_components: Option<u64>,
}

/// What this replica keeps about one agent.
#[derive(Debug, Default)]
pub(crate) struct AgentEntry {
    pub(crate) description: AgentDescription,
    pub(crate) operator_labels: BTreeMap<String, String>,
    /// Description attributes overlaid with operator labels (see [`crate::labels`]).
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) capabilities: Option<AgentCapabilities>,
    pub(crate) reported: Option<RemoteConfigStatus>,
    pub(crate) desired: Option<Arc<Resolved>>,
    /// The desired hash offered to the agent, and when (first offer of that hash).
    pub(crate) offered: Option<(ConfigHash, Instant)>,
    /// A status report arrived after the offer.
    pub(crate) answered: bool,
    /// Connected through this replica.
    pub(crate) connected: bool,
    pub(crate) transport: Option<Transport>,
    pub(crate) sub: SubHashes,
    /// A command is queued in the store for this agent.
    pub(crate) commands_pending: bool,
}

impl AgentEntry {
    pub(crate) fn from_agent(a: &Agent) -> Self {
        let mut e = AgentEntry {
            description: a.description.clone(),
            operator_labels: a.labels.clone(),
            capabilities: Some(a.capabilities),
            reported: a.remote_config_status.clone(),
            transport: a.transport,
            ..Default::default()
        };
        e.relabel();
        e
    }

    /// Recomputes the effective labels from the description and the operator labels.
    pub(crate) fn relabel(&mut self) {
        self.labels = crate::labels::effective_labels(&self.description, &self.operator_labels);
    }

    pub(crate) fn accepts_remote_config(&self) -> bool {
        self.capabilities
            .is_some_and(|c| c.contains(AgentCapabilities::ACCEPTS_REMOTE_CONFIG))
    }

    pub(crate) fn desired_hash(&self) -> Option<ConfigHash> {
        self.desired.as_ref().map(|d| d.hash)
    }

    pub(crate) fn sync_state(&self) -> SyncState {
        let answered = self.answered
            && self
                .offered
                .as_ref()
                .is_some_and(|(h, _)| Some(*h) == self.desired_hash());
        sync_state(
            self.desired_hash().as_ref(),
            self.reported.as_ref(),
            answered,
        )
    }
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) resolver: Resolver,
    /// assignment id → the version it means now.
    pub(crate) by_assignment: HashMap<i64, Arc<Resolved>>,
    pub(crate) agents: HashMap<InstanceUid, AgentEntry>,
}

impl State {
    /// The desired config for an agent with these labels and capabilities.
    pub(crate) fn desired_for(
        &self,
        uid: &InstanceUid,
        labels: &BTreeMap<String, String>,
        accepts_remote_config: bool,
    ) -> Option<Arc<Resolved>> {
        if !accepts_remote_config {
            return None;
        }
        self.resolver
            .resolve(uid, labels)
            .and_then(|a| self.by_assignment.get(&a.id).cloned())
    }
}

/// An event on the admin API's server-sent event stream.
#[derive(Debug, Clone, Serialize)]
pub struct FleetEvent {
    /// The event name (`agent_connected`, `agent_disconnected`, `agent_updated`,
    /// `config_version_added`, `assignment_changed`, ...).
    #[serde(rename = "type")]
    pub kind: String,
    /// The event's JSON payload (always has `type` too).
    pub data: serde_json::Value,
}

impl FleetEvent {
    pub(crate) fn agent(kind: &str, uid: &InstanceUid, extra: serde_json::Value) -> Self {
        let mut data = serde_json::json!({ "type": kind, "instance_uid": uid.to_string() });
        if let (Some(obj), serde_json::Value::Object(extra)) = (data.as_object_mut(), extra) {
            obj.extend(extra);
        }
        Self {
            kind: kind.into(),
            data,
        }
    }

    pub(crate) fn change(ev: &ChangeEvent) -> Self {
        let data = serde_json::to_value(ev).unwrap_or_default();
        let kind = data
            .get("type")
            .and_then(|t| t.as_str())
            .unwrap_or("change")
            .to_owned();
        Self { kind, data }
    }
}

pub(crate) struct Inner {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) options: FleetOptions,
    pub(crate) state: Mutex<State>,
    recompute: tokio::sync::Mutex<()>,
    pub(crate) server: OnceLock<Server<FleetHandler>>,
    pub(crate) events: broadcast::Sender<FleetEvent>,
    pub(crate) metrics: Arc<FleetMetrics>,
    pub(crate) batcher: LastSeenBatcher,
    pub(crate) writer: StatusWriter,
    pub(crate) shutdown: CancellationToken,
    pub(crate) started: Instant,
}

/// The fleet: one per replica. A cheap handle (an `Arc`); clone it freely.
///
/// ```no_run
/// # async fn demo(store: std::sync::Arc<dyn opamp_store::Store>) -> Result<(), opamp_fleet::Error> {
/// use opamp_fleet::{Fleet, FleetOptions};
/// let fleet = Fleet::start(store, FleetOptions::new("replica-1")).await?;
/// let server = opamp_server::Server::new(opamp_fleet::server_config(), fleet.handler());
/// fleet.attach_server(server.clone());
/// let admin = fleet.admin_router(); // serve it on the admin port
/// # let _ = admin; Ok(()) }
/// ```
#[derive(Clone)]
pub struct Fleet {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("server_id", &self.inner.options.server_id)
            .finish_non_exhaustive()
    }
}

impl Fleet {
    /// Loads the fleet from `store`: marks the agents a previous run of this replica left
    /// connected as disconnected, loads every agent, computes every desired config, and
    /// starts the background task (change events, batched last-seen writes). Call
    /// [`Fleet::attach_server`] next.
    pub async fn start(store: Arc<dyn Store>, options: FleetOptions) -> Result<Self, Error> {
        let (events, _) = broadcast::channel(1024);
        let metrics = Arc::new(FleetMetrics::default());
        let writer = StatusWriter::spawn(store.clone(), metrics.clone(), options.status_flush, 500);
        let fleet = Fleet {
            inner: Arc::new(Inner {
                writer,
                batcher: LastSeenBatcher::spawn(
                    store.clone(),
                    BatcherConfig {
                        flush_interval: options.last_seen_flush,
                        ..BatcherConfig::default()
                    },
                ),
                store,
                options,
                state: Mutex::new(State::default()),
                recompute: tokio::sync::Mutex::new(()),
                server: OnceLock::new(),
                events,
                metrics,
                shutdown: CancellationToken::new(),
                started: Instant::now(),
            }),
        };
        // Subscribe before loading so no change slips between the load and the loop.
        let subscription = fleet.inner.store.subscribe();
        let stale = fleet
            .timed("disconnect_server", async {
                fleet
                    .inner
                    .store
                    .disconnect_server(&fleet.inner.options.server_id, Timestamp::now())
                    .await
            })
            .await?;
        if stale > 0 {
            tracing::info!(
                agents = stale,
                "marked agents left connected by a previous run as disconnected"
            );
        }
        fleet.load_agents().await?;
        fleet.recompute_all().await?;
        crate::background::spawn(fleet.clone(), subscription);
        Ok(fleet)
    }

    /// The OpAMP handler to give to [`opamp_server::Server::new`].
    pub fn handler(&self) -> FleetHandler {
        FleetHandler {
            fleet: self.clone(),
        }
    }

    /// Connects the OpAMP server whose handler is [`Fleet::handler`], so the fleet can push
    /// configs and commands. Only the first call has an effect.
    pub fn attach_server(&self, server: Server<FleetHandler>) {
        let _ = self.inner.server.set(server);
    }

    /// The OpAMP server, once attached.
    pub fn server(&self) -> Option<&Server<FleetHandler>> {
        self.inner.server.get()
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The options.
    pub fn options(&self) -> &FleetOptions {
        &self.inner.options
    }

    /// A receiver of the events the admin API streams.
    pub fn subscribe_events(&self) -> broadcast::Receiver<FleetEvent> {
        self.inner.events.subscribe()
    }

    /// Stops the background task after writing the batched last-seen times and marking
    /// this replica's agents disconnected.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        self.inner.writer.flush().await;
        self.flush_last_seen().await;
        let _ = self
            .inner
            .store
            .disconnect_server(&self.inner.options.server_id, Timestamp::now())
            .await;
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn emit(&self, event: FleetEvent) {
        let _ = self.inner.events.send(event);
    }

    /// Runs a store call, recording its latency under `op`.
    pub(crate) async fn timed<T>(
        &self,
        op: &'static str,
        fut: impl Future<Output = Result<T, opamp_store::Error>>,
    ) -> Result<T, opamp_store::Error> {
        let start = Instant::now();
        let r = fut.await;
        self.inner.metrics.store_op(op, start.elapsed(), r.is_ok());
        r
    }

    /// Every agent in the store, read in pages of 1,000 (the summary and the web UI).
    pub(crate) async fn all_agents(&self) -> Result<Vec<opamp_store::Agent>, opamp_store::Error> {
        let mut out = Vec::new();
        let mut page = PageRequest::first(1000);
        loop {
            let p = self
                .timed(
                    "list_agents",
                    self.store()
                        .list_agents(opamp_store::AgentFilter::default(), page.clone()),
                )
                .await?;
            out.extend(p.items);
            match p.next_cursor {
                Some(c) => page = PageRequest::after(c, 1000),
                None => return Ok(out),
            }
        }
    }

    async fn load_agents(&self) -> Result<(), Error> {
        let mut page = PageRequest::first(1000);
        let mut loaded = 0usize;
        loop {
            let p = self
                .timed(
                    "list_agents",
                    self.inner
                        .store
                        .list_agents(AgentFilter::default(), page.clone()),
                )
                .await?;
            {
                let mut st = self.lock();
                for a in &p.items {
                    st.agents.insert(a.instance_uid, AgentEntry::from_agent(a));
                }
            }
            loaded += p.items.len();
            match p.next_cursor {
                Some(c) => page = PageRequest::after(c, 1000),
                None => break,
            }
        }
        tracing::debug!(agents = loaded, "agents loaded from the store");
        Ok(())
    }

    /// Reloads assignments, groups and the config versions they mean, recomputes every
    /// agent's desired config and pushes the ones that changed. Called at start-up and on
    /// every change event about configs, assignments or groups.
    pub async fn recompute_all(&self) -> Result<(), Error> {
        let _serial = self.inner.recompute.lock().await;
        let store = &self.inner.store;
        let assignments = self
            .timed("list_assignments", store.list_assignments())
            .await?;
        let groups: HashMap<String, String> = self
            .timed("list_groups", store.list_groups())
            .await?
            .into_iter()
            .map(|g| (g.name, g.selector))
            .collect();
        let resolver = Resolver::new(&assignments, &groups);
        let mut by_assignment = HashMap::new();
        let mut cache: HashMap<(String, u64), Arc<Resolved>> = HashMap::new();
        for a in &assignments {
            let version = match a.version {
                Some(v) => {
                    self.timed("get_config_version", store.get_config_version(&a.config, v))
                        .await
                }
                None => {
                    self.timed(
                        "latest_config_version",
                        store.latest_config_version(&a.config),
                    )
                    .await
                }
            };
            let version = match version {
                Ok(v) => v,
                Err(e) if e.is_not_found() => {
                    tracing::warn!(assignment = a.id, config = %a.config, error = %e, "assignment points at nothing: ignored");
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let key = (version.config.clone(), version.version);
            let resolved = cache
                .entry(key)
                .or_insert_with(|| {
                    Arc::new(Resolved {
                        config: version.config.clone(),
                        version: version.version,
                        assignment_id: a.id,
                        hash: version.hash,
                        remote: AgentRemoteConfig {
                            config: Some(version.config_map.to_wire()),
                            config_hash: version.hash.to_vec(),
                        },
                    })
                })
                .clone();
            // Keep the assignment id per assignment (two assignments may share a version).
            let resolved = if resolved.assignment_id == a.id {
                resolved
            } else {
                Arc::new(Resolved {
                    config: resolved.config.clone(),
                    version: resolved.version,
                    assignment_id: a.id,
                    hash: resolved.hash,
                    remote: resolved.remote.clone(),
                })
            };
            by_assignment.insert(a.id, resolved);
        }
        let changes = {
            let mut st = self.lock();
            st.resolver = resolver;
            st.by_assignment = by_assignment;
            let uids: Vec<InstanceUid> = st.agents.keys().copied().collect();
            let mut changes = Vec::new();
            for uid in uids {
                if let Some(change) = recompute_agent(&mut st, uid) {
                    changes.push(change);
                }
            }
            changes
        };
        for (uid, desired) in changes {
            self.push_desired(uid, desired);
        }
        Ok(())
    }

    /// Reloads one agent's operator labels from the store and recomputes its desired
    /// config.
    pub(crate) async fn reload_agent(&self, uid: InstanceUid) -> Result<(), Error> {
        let agent = match self
            .timed("get_agent", self.inner.store.get_agent(uid))
            .await
        {
            Ok(a) => a,
            Err(e) if e.is_not_found() => {
                self.lock().agents.remove(&uid);
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        let change = {
            let mut st = self.lock();
            let entry = st.agents.entry(uid).or_default();
            entry.operator_labels = agent.labels.clone();
            entry.description = agent.description.clone();
            if entry.capabilities.is_none() {
                entry.capabilities = Some(agent.capabilities);
            }
            entry.relabel();
            recompute_agent(&mut st, uid)
        };
        if let Some((uid, desired)) = change {
            self.push_desired(uid, desired);
        }
        Ok(())
    }

    /// Sends a changed desired config to an agent this replica holds (WebSocket: now;
    /// HTTP: with the next poll), or clears it.
    pub(crate) fn push_desired(&self, uid: InstanceUid, desired: Option<Arc<Resolved>>) {
        let Some(server) = self.inner.server.get() else {
            return;
        };
        match desired {
            Some(d) => {
                let msg = ServerToAgent {
                    remote_config: Some(d.remote.clone()),
                    ..Default::default()
                };
                match server.push(uid, msg) {
                    Ok(delivery) => {
                        tracing::debug!(%uid, config = %d.config, version = d.version, ?delivery, "desired config pushed");
                        let mut st = self.lock();
                        if let Some(e) = st.agents.get_mut(&uid) {
                            mark_offered(e, d.hash);
                        }
                    }
                    Err(e) => {
                        tracing::trace!(%uid, error = %e, "agent not held here: config goes out on its next message");
                    }
                }
            }
            None => {
                let _ = server.set_remote_config(uid, None);
            }
        }
    }

    /// Delivers the commands queued for `uid` if this replica holds it over WebSocket;
    /// otherwise marks them pending for the agent's next message here.
    pub(crate) async fn deliver_commands(&self, uid: InstanceUid) {
        let ws_here = self.inner.server.get().is_some_and(|s| {
            s.agent(&uid)
                .is_some_and(|a| matches!(a.attachment, opamp_server::session::Attachment::Ws(_)))
        });
        if !ws_here {
            if let Some(e) = self.lock().agents.get_mut(&uid) {
                e.commands_pending = true;
            }
            return;
        }
        let commands = match self
            .timed(
                "take_pending_commands",
                self.inner.store.take_pending_commands(uid),
            )
            .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(%uid, error = %e, "could not take pending commands");
                return;
            }
        };
        let Some(server) = self.inner.server.get() else {
            return;
        };
        for c in commands {
            if let Some(msg) = command_message(c.command) {
                if let Err(e) = server.push(uid, msg) {
                    tracing::warn!(%uid, error = %e, "command not delivered");
                }
            }
        }
    }

    pub(crate) fn touch(&self, uid: InstanceUid, at: Timestamp) {
        self.inner.batcher.touch(uid, at);
    }

    /// Writes the batched last-seen times now.
    pub async fn flush_last_seen(&self) {
        let start = Instant::now();
        let r = self.inner.batcher.flush().await;
        self.inner
            .metrics
            .store_op("touch_last_seen", start.elapsed(), r.is_ok());
        if let Err(e) = r {
            tracing::warn!(error = %e, "could not write last-seen times");
        }
    }

    /// The desired config and sync state of an agent as the admin API shows it. The
    /// reported status comes from `agent` (the store's view, fresh across replicas); the
    /// offer bookkeeping from this replica.
    pub(crate) fn view_of(&self, agent: &Agent) -> (Option<Arc<Resolved>>, SyncState) {
        let st = self.lock();
        let labels = agent.effective_labels();
        let accepts = agent
            .capabilities
            .contains(AgentCapabilities::ACCEPTS_REMOTE_CONFIG);
        let desired = st.desired_for(&agent.instance_uid, &labels, accepts);
        let answered = st.agents.get(&agent.instance_uid).is_some_and(|e| {
            e.answered && e.offered.as_ref().map(|(h, _)| *h) == desired.as_ref().map(|d| d.hash)
        });
        let state = sync_state(
            desired.as_ref().map(|d| d.hash).as_ref(),
            agent.remote_config_status.as_ref(),
            answered,
        );
        (desired, state)
    }

    /// Agent counts for `/metrics`, from this replica's memory.
    pub(crate) fn gauges(&self) -> AgentGauges {
        let st = self.lock();
        let mut g = AgentGauges::default();
        for s in SyncState::ALL {
            g.by_sync_state.insert(s.as_str(), 0);
        }
        for e in st.agents.values() {
            let transport = e.transport.map_or("unknown", |t| t.as_str()).to_owned();
            *g.by_transport_and_state
                .entry((transport, e.connected))
                .or_default() += 1;
            *g.by_sync_state.entry(e.sync_state().as_str()).or_default() += 1;
        }
        g
    }

    /// Renders `/metrics`.
    pub fn render_metrics(&self) -> String {
        let server = self
            .inner
            .server
            .get()
            .map(|s| s.metrics())
            .unwrap_or_default();
        crate::metrics::render(
            &self.inner.metrics,
            &self.gauges(),
            &server,
            &self.inner.batcher.stats(),
        )
    }

    /// How long this fleet has been running.
    pub fn uptime(&self) -> Duration {
        self.inner.started.elapsed()
    }
}

/// Recomputes one agent's desired config in memory; returns it when it changed.
pub(crate) fn recompute_agent(
    st: &mut State,
    uid: InstanceUid,
) -> Option<(InstanceUid, Option<Arc<Resolved>>)> {
    let entry = st.agents.get(&uid)?;
    let desired = st.desired_for(&uid, &entry.labels, entry.accepts_remote_config());
    let entry = st.agents.get_mut(&uid)?;
    let before = entry.desired_hash();
    let after = desired.as_ref().map(|d| d.hash);
    entry.desired = desired.clone();
    if before == after {
        // Same content (perhaps through another assignment): nothing to send.
        return None;
    }
    Some((uid, desired))
}

pub(crate) fn mark_offered(e: &mut AgentEntry, hash: ConfigHash) {
    if e.offered.as_ref().map(|(h, _)| *h) != Some(hash) {
        e.offered = Some((hash, Instant::now()));
        e.answered = false;
    }
}

/// The ServerToAgent carrying a command (CMD-1; the session isolates it, CMD-2).
pub(crate) fn command_message(command: opamp_store::Command) -> Option<ServerToAgent> {
    match command {
        opamp_store::Command::Restart => Some(ServerToAgent {
            command: Some(ServerToAgentCommand {
                r#type: CommandType::Restart as i32,
            }),
            ..Default::default()
        }),
        _ => None,
    }
}
