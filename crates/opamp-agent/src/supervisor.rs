//! The supervisor: one `select!` loop joining OpAMP client events, the process watcher,
//! health probes, timers (restart backoff, health gate, checks, own metrics) and signals.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use opamp_client::{
    AgentCapabilities, ClientEvent, ClientHandle, FileStateStore, InstanceUid, OpampClient,
    StateStore as _, v1,
};
use opamp_config::{ConfigFile, ConfigMap};
use opamp_health::{CheckId, CheckKind, HealthMonitor, Outcome, Status};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::apply::{self, GateVerdict, OfferDecision};
use crate::files::{self, StateLayout};
use crate::health::{self, ProcessView};
use crate::own_metrics::OwnMetrics;
use crate::process::{ManagedProcess, RestartBackoff, describe_exit, exit_short};
use crate::settings::{ApplyMode, Settings, guess_content_type};
use crate::state::{AgentState, LkgRecord, RemoteOutcome, RemoteRecord};
use crate::{Error, description};

/// A probe's outcome, tagged with the [`Supervisor::run_epoch`] it was started in.
type ProbeResult = (CheckId, u64, Outcome);

/// A config in its health gate.
#[derive(Debug)]
struct Gate {
    hash: Vec<u8>,
    deadline: Instant,
}

// Lives for one loop turn; boxing the client event would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Wake {
    Client(Option<ClientEvent>),
    Exited(std::io::Result<std::process::ExitStatus>, Duration),
    Probe(ProbeResult),
    Timer,
    Signal(SignalWake),
}

/// What a signal asks for.
enum SignalWake {
    /// SIGTERM or SIGINT: stop.
    Shutdown(&'static str),
    /// SIGHUP: ignored.
    Hangup,
}

/// The signal streams, installed when [`Supervisor::run`] begins.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Self, Error> {
        let sig = |kind| signal(kind).map_err(|e| Error::io("signal handler", e));
        Ok(Self {
            term: sig(SignalKind::terminate())?,
            int: sig(SignalKind::interrupt())?,
            hup: sig(SignalKind::hangup())?,
        })
    }
}

/// The next signal (never, before [`Signals::install`]).
async fn next_signal(signals: &mut Option<Signals>) -> SignalWake {
    let Some(s) = signals else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = s.term.recv() => SignalWake::Shutdown("SIGTERM"),
        _ = s.int.recv() => SignalWake::Shutdown("SIGINT"),
        _ = s.hup.recv() => SignalWake::Hangup,
    }
}

/// The capabilities opamp-agent reports (AcceptsRemoteConfig only when `accept_remote`,
/// SEC-6). ReportsHeartbeat and ReportsConnectionSettingsStatus are reported too.
pub fn capabilities(accept_remote: bool) -> AgentCapabilities {
    let mut caps = AgentCapabilities::REPORTS_STATUS
        | AgentCapabilities::REPORTS_EFFECTIVE_CONFIG
        | AgentCapabilities::REPORTS_HEALTH
        | AgentCapabilities::REPORTS_REMOTE_CONFIG
        | AgentCapabilities::REPORTS_HEARTBEAT
        | AgentCapabilities::ACCEPTS_RESTART_COMMAND
        | AgentCapabilities::REPORTS_OWN_METRICS
        | AgentCapabilities::ACCEPTS_OPAMP_CONNECTION_SETTINGS
        | AgentCapabilities::REPORTS_CONNECTION_SETTINGS_STATUS;
    if accept_remote {
        caps |= AgentCapabilities::ACCEPTS_REMOTE_CONFIG;
    }
    caps
}

/// The supervisor of one managed process.
pub struct Supervisor {
    settings: Settings,
    layout: StateLayout,
    client: ClientHandle,
    events: mpsc::Receiver<ClientEvent>,
    process: ManagedProcess,
    backoff: RestartBackoff,
    restart_at: Option<Instant>,
    down_reason: String,
    process_changed: SystemTime,
    state: AgentState,
    gate: Option<Gate>,
    queued: Option<v1::AgentRemoteConfig>,
    monitor: HealthMonitor,
    probe_tx: mpsc::UnboundedSender<ProbeResult>,
    probe_rx: mpsc::UnboundedReceiver<ProbeResult>,
    /// Counts the supervisor's own restarts and reloads of the process: a probe started
    /// before one describes the process as it was, so its result is not recorded and the
    /// probe runs again.
    run_epoch: u64,
    last_health: Option<v1::ComponentHealth>,
    metrics: OwnMetrics,
    last_pid: u32,
    signals: Option<Signals>,
    /// Set when SIGTERM / SIGINT arrived while a step waited (a validate command): the
    /// loop stops after that step.
    stopping: Option<&'static str>,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("pid", &self.process.pid())
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

fn local_names(settings: &Settings) -> Vec<&str> {
    settings
        .config
        .local
        .iter()
        .map(|l| l.name.as_str())
        .collect()
}

/// The files now in `config.dir` with their content types: local files, managed (remote)
/// files, and anything else found there (EFF-*).
pub fn effective_config(settings: &Settings, state: &AgentState) -> Result<ConfigMap, Error> {
    let mut map = ConfigMap::new();
    for (name, body) in files::read_dir_files(&settings.config.dir)? {
        let content_type = settings
            .config
            .local
            .iter()
            .find(|l| l.name == name)
            .map(|l| l.content_type.clone())
            .or_else(|| state.managed.get(&name).cloned())
            .unwrap_or_else(|| guess_content_type(&name).to_owned());
        map.files.insert(name, ConfigFile::new(content_type, body));
    }
    Ok(map)
}

/// The managed (non-local) files in `config.dir`.
fn managed_files(settings: &Settings) -> Result<BTreeMap<String, Vec<u8>>, Error> {
    let locals = local_names(settings);
    let mut files = files::read_dir_files(&settings.config.dir)?;
    files.retain(|name, _| !locals.contains(&name.as_str()));
    Ok(files)
}

fn content_types(
    settings: &Settings,
    state: &AgentState,
    names: impl Iterator<Item = String>,
) -> BTreeMap<String, String> {
    names
        .filter(|n| !settings.config.local.iter().any(|l| &l.name == n))
        .map(|n| {
            let ct = state
                .managed
                .get(&n)
                .cloned()
                .unwrap_or_else(|| guess_content_type(&n).to_owned());
            (n, ct)
        })
        .collect()
}

/// Prepares the state dir and `config.dir` before the process starts: local files
/// written, an interrupted apply rolled back, the first last-known-good snapshot taken.
pub fn prepare(settings: &Settings) -> Result<AgentState, Error> {
    let layout = StateLayout {
        root: settings.state_dir.clone(),
    };
    files::ensure_dir(&layout.root)?;
    files::ensure_dir(&settings.config.dir)?;
    let mut state = AgentState::load(&layout.state_file())?;
    for l in &settings.config.local {
        files::write_atomic(&settings.config.dir.join(&l.name), &l.body)?;
    }
    if state
        .remote
        .as_ref()
        .is_some_and(|r| r.status == RemoteOutcome::Applying)
    {
        if let Some(lkg) = state.lkg.clone() {
            tracing::warn!("an apply was interrupted: rolled back to last known good");
            let files = files::read_dir_files(&layout.lkg_dir())?;
            files::swap_in(&settings.config.dir, &files, state.managed.keys().cloned())?;
            state.managed = lkg.files;
        }
        state.remote = None;
        state.save(&layout.state_file())?;
    }
    // A candidate left by a run that stopped while validating it; never needed again
    // (the recovery above restores from lkg/).
    files::clear_dir(&layout.staging_dir())?;
    if state.lkg.is_none() {
        let files = managed_files(settings)?;
        let cts = content_types(settings, &state, files.keys().cloned());
        files::replace_dir(&layout.lkg_dir(), &files)?;
        state.lkg = Some(LkgRecord {
            hash: lkg_hash(&files, &cts),
            remote_hash: None,
            files: cts,
        });
        state.save(&layout.state_file())?;
    }
    Ok(state)
}

fn lkg_hash(files: &BTreeMap<String, Vec<u8>>, cts: &BTreeMap<String, String>) -> String {
    let mut map = ConfigMap::new();
    for (name, body) in files {
        let ct = cts.get(name).cloned().unwrap_or_default();
        map.files
            .insert(name.clone(), ConfigFile::new(ct, body.clone()));
    }
    map.hash().to_string()
}

/// Builds the OpAMP client from the settings (instance uid from the state dir, UID-*);
/// also returns the agent description it reports.
pub fn build_client(
    settings: &Settings,
    effective: &ConfigMap,
    health: v1::ComponentHealth,
) -> Result<(OpampClient, v1::AgentDescription), Error> {
    let store = FileStateStore::new(&settings.state_dir);
    let persisted = store.load().map_err(|e| Error::Client(e.into()))?;
    let uid = persisted.instance_uid.unwrap_or_else(InstanceUid::new_v7);
    let detected = description::Detected::detect();
    let desc = description::build(&settings.description, &detected, &uid.to_string());
    let s = &settings.server;
    let mut b = OpampClient::builder(&s.endpoint)
        .agent_description(desc.clone())
        .instance_uid(uid)
        .capabilities(capabilities(settings.config.accept_remote))
        .state_store(store)
        .effective_config(effective.to_effective_config())
        .health(health);
    for (k, v) in &s.headers {
        b = b.header(k, v);
    }
    if let Some(hb) = s.heartbeat {
        b = b.heartbeat_interval(Some(hb)).polling_interval(hb);
    }
    let read = |p: &std::path::Path| std::fs::read(p).map_err(|e| Error::io(p, e));
    if let Some(ca) = &s.ca_file {
        b = b.ca_pem(String::from_utf8_lossy(&read(ca)?).into_owned());
    }
    if let (Some(cert), Some(key)) = (&s.cert_file, &s.key_file) {
        b = b.client_certificate(read(cert)?, read(key)?);
    }
    if s.insecure_skip_verify {
        b = b.danger_accept_invalid_certs(true);
    }
    Ok((b.build()?, desc))
}

impl Supervisor {
    /// Prepares the state, starts the OpAMP client and returns the supervisor (the process
    /// is started by [`run`](Self::run)).
    pub async fn start(settings: Settings) -> Result<Self, Error> {
        let state = prepare(&settings)?;
        let layout = StateLayout {
            root: settings.state_dir.clone(),
        };
        let effective = effective_config(&settings, &state)?;
        let initial_health = v1::ComponentHealth {
            healthy: false,
            status: "starting".into(),
            ..Default::default()
        };
        let (client, description) = build_client(&settings, &effective, initial_health)?;
        let (handle, events) = client.start().await?;
        let uid = handle.instance_uid().await;
        tracing::info!(
            "opamp-agent {} instance_uid={uid} server={}",
            env!("CARGO_PKG_VERSION"),
            settings.server.endpoint
        );
        let now = Instant::now();
        let monitor = HealthMonitor::new(settings.health_checks.clone(), now);
        let (probe_tx, probe_rx) = mpsc::unbounded_channel();
        let metrics = OwnMetrics::new(&description, settings.own_metrics_interval);
        Ok(Self {
            process: ManagedProcess::new(settings.process.clone()).with_pid_file(layout.pid_file()),
            backoff: RestartBackoff::new(
                settings.process.restart_backoff_initial,
                settings.process.restart_backoff_max,
            ),
            restart_at: None,
            down_reason: "not started".into(),
            process_changed: SystemTime::now(),
            state,
            gate: None,
            queued: None,
            monitor,
            probe_tx,
            probe_rx,
            run_epoch: 0,
            last_health: None,
            metrics,
            last_pid: 0,
            signals: None,
            stopping: None,
            layout,
            client: handle,
            events,
            settings,
        })
    }

    /// Runs until SIGTERM / SIGINT (or the client stops): then stops the process
    /// (SIGTERM, SIGKILL after `stop_timeout`), sends `agent_disconnect` and returns.
    pub async fn run(mut self) -> Result<(), Error> {
        self.signals = Some(Signals::install()?);

        self.process.stop_leftover().await;
        self.start_process(true);
        self.report_health().await;
        loop {
            let deadline = self.next_deadline();
            let wake = tokio::select! {
                ev = self.events.recv() => Wake::Client(ev),
                (status, ran) = self.process.wait() => Wake::Exited(status, ran),
                Some(result) = self.probe_rx.recv() => Wake::Probe(result),
                () = sleep_until(deadline) => Wake::Timer,
                s = next_signal(&mut self.signals) => Wake::Signal(s),
            };
            match wake {
                Wake::Client(None) => {
                    tracing::error!("the OpAMP client stopped");
                    break;
                }
                Wake::Client(Some(ev)) => self.on_client_event(ev).await,
                Wake::Exited(status, ran) => self.on_exit(status, ran).await,
                Wake::Probe((id, epoch, outcome)) => {
                    if epoch == self.run_epoch {
                        self.monitor.record(id, Instant::now(), outcome);
                    } else if let Some((_, spec, _)) =
                        self.monitor.checks().find(|(current, ..)| *current == id)
                    {
                        // Started before a deliberate restart or reload: ask again (unless
                        // a reset since made the id stale: the monitor asks anew then).
                        let (kind, timeout) = (spec.kind.clone(), spec.timeout);
                        self.spawn_probe(id, kind, timeout);
                    }
                }
                Wake::Timer => {}
                Wake::Signal(SignalWake::Shutdown(name)) => {
                    tracing::info!("{name} received: stopping");
                    break;
                }
                Wake::Signal(SignalWake::Hangup) => tracing::info!("SIGHUP ignored"),
            }
            if self.stopping.is_some() {
                break;
            }
            self.on_timers().await;
            if self.stopping.is_some() {
                break;
            }
            while let Some(ev) = self.monitor.poll_event() {
                health::log_event(&ev);
            }
            self.report_health().await;
        }
        self.shutdown().await;
        Ok(())
    }

    fn next_deadline(&self) -> Option<Instant> {
        [
            self.restart_at,
            self.gate.as_ref().map(|g| g.deadline),
            self.monitor.poll_timeout(),
            self.metrics.next_due(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    async fn shutdown(&mut self) {
        if let Some(status) = self.process.stop().await {
            tracing::debug!("stopped: {}", describe_exit(status));
        }
        let _ = self.client.stop().await;
        // Drain what the client reported while closing.
        while let Ok(Some(_)) =
            tokio::time::timeout(Duration::from_secs(5), self.events.recv()).await
        {}
        tracing::info!("stopped");
    }

    // ---- the process ----

    /// Starts the process. `fresh`: after a crash, at start-up, or when the checks were not
    /// all healthy, every check starts over (opamp-health's reset: starting, due now).
    /// Otherwise the supervisor itself stopped a healthy process a moment ago (restart
    /// command, config apply): see [`Self::checks_carry_over`].
    fn start_process(&mut self, fresh: bool) {
        let now = Instant::now();
        match self.process.start() {
            Ok(pid) => {
                self.last_pid = pid;
                self.restart_at = None;
                self.process_changed = SystemTime::now();
                if fresh {
                    self.monitor.reset(now);
                } else {
                    self.checks_carry_over(now);
                }
                self.metrics.process_started();
            }
            Err(e) => {
                tracing::error!("{e}");
                self.down_reason = e.to_string();
                self.process_changed = SystemTime::now();
                let delay = self.backoff.on_exit(Duration::ZERO);
                self.restart_at = Some(now + delay);
                tracing::info!("restarting in {delay:?}");
            }
        }
    }

    /// Stops the process (if it runs) and starts it again at once. Stopping a running
    /// process is deliberate, not a failure: the process check is not asked while the
    /// supervisor waits for the exit, and the checks carry over to the new process (see
    /// [`Self::checks_carry_over`]).
    async fn restart_process(&mut self) {
        let deliberate = self.process.pid().is_some();
        self.process.stop().await;
        self.start_process(!deliberate);
    }

    /// After the supervisor's own restart or reload of the process. When every check is
    /// healthy they keep their verdicts and counters: a deliberate restart is neither a
    /// failure nor a healthy → starting → healthy flip, and never counts toward flapping;
    /// probes still in flight are asked again (see [`Self::run_epoch`]), later ones probe
    /// the new process on their schedule. When a check was not healthy, every check starts
    /// over instead (a new config must get its chance to fix it, not inherit the verdict).
    fn checks_carry_over(&mut self, now: Instant) {
        if self.monitor.status() == Status::Healthy {
            self.run_epoch += 1;
        } else {
            self.monitor.reset(now);
        }
    }

    async fn on_exit(&mut self, status: std::io::Result<std::process::ExitStatus>, ran: Duration) {
        let pid = self.last_pid;
        let reason = match status {
            Ok(s) => {
                tracing::warn!("process exited status={} pid={pid}", exit_short(s));
                describe_exit(s)
            }
            Err(e) => {
                tracing::warn!("process exited status=unknown pid={pid}: {e}");
                format!("process wait failed: {e}")
            }
        };
        self.down_reason = reason.clone();
        self.process_changed = SystemTime::now();
        let now = Instant::now();
        let ids: Vec<CheckId> = self
            .monitor
            .checks()
            .filter(|(_, spec, _)| matches!(spec.kind, CheckKind::Process))
            .map(|(id, _, _)| id)
            .collect();
        for id in ids {
            self.monitor
                .record(id, now, Outcome::failure(reason.clone()));
        }
        if self.gate.is_some() {
            self.rollback(&format!("{reason} within the health gate"))
                .await;
            return;
        }
        let delay = self.backoff.on_exit(ran);
        tracing::info!("restarting in {delay:?}");
        self.restart_at = Some(now + delay);
    }

    // ---- timers ----

    async fn on_timers(&mut self) {
        let now = Instant::now();
        if self.restart_at.is_some_and(|t| t <= now) {
            self.restart_at = None;
            self.start_process(true);
        }
        // Health checks that are due.
        while let Some((id, spec)) = self.monitor.poll_due(now) {
            let kind = spec.kind.clone();
            let timeout = spec.timeout;
            if matches!(kind, CheckKind::Process) {
                let outcome = if self.process.pid().is_some() {
                    Outcome::Success
                } else {
                    Outcome::failure(self.down_reason.clone())
                };
                self.monitor.record(id, now, outcome);
                continue;
            }
            self.spawn_probe(id, kind, timeout);
        }
        if self.metrics.next_due().is_some_and(|t| t <= now) {
            self.metrics
                .export(now, self.process.pid(), self.process.started_wall());
        }
        // The health gate.
        if let Some(gate) = &self.gate {
            let running = self.process.pid().is_some();
            let health = self.monitor.status();
            let verdict = apply::gate_verdict(running, health, gate.deadline, now, || {
                if running {
                    self.monitor
                        .component_health(SystemTime::now(), None)
                        .last_error
                } else {
                    self.down_reason.clone()
                }
            });
            match verdict {
                GateVerdict::Wait => {}
                GateVerdict::Passed => self.gate_passed().await,
                GateVerdict::Failed(reason) => self.rollback(&reason).await,
            }
        }
    }

    // ---- health ----

    fn spawn_probe(&self, id: CheckId, kind: CheckKind, timeout: Duration) {
        let tx = self.probe_tx.clone();
        let epoch = self.run_epoch;
        tokio::spawn(async move {
            let outcome = health::probe(kind, timeout).await;
            let _ = tx.send((id, epoch, outcome));
        });
    }

    fn process_view(&self) -> ProcessView {
        match self.process.started_wall() {
            Some(t) => ProcessView::Running(t),
            None => ProcessView::Down {
                reason: self.down_reason.clone(),
                restarting: self.restart_at.is_some(),
            },
        }
    }

    async fn report_health(&mut self) {
        let checks = self
            .monitor
            .component_health(SystemTime::now(), self.process.started_wall());
        let h = health::report(checks, &self.process_view(), self.process_changed);
        let changed = self
            .last_health
            .as_ref()
            .is_none_or(|last| health::without_times(last) != health::without_times(&h));
        if changed {
            health::log_report(&h);
            let _ = self.client.set_health(h.clone()).await;
            self.last_health = Some(h);
        }
    }

    // ---- client events ----

    async fn on_client_event(&mut self, ev: ClientEvent) {
        match ev {
            ClientEvent::Connected => {
                tracing::info!("connected to {}", self.settings.server.endpoint)
            }
            ClientEvent::Disconnected { error } => match error {
                Some(e) => tracing::warn!("disconnected: {e}"),
                None => tracing::info!("disconnected"),
            },
            ClientEvent::ConnectFailed { error, retry_in } => {
                tracing::warn!("connection failed: {error}; retrying in {retry_in:?}");
            }
            ClientEvent::AuthenticationFailed => {
                tracing::error!("the server refused our credentials (401)")
            }
            ClientEvent::RemoteConfig(rc) => {
                if self.settings.config.accept_remote {
                    self.on_offer(rc).await;
                } else {
                    tracing::warn!("remote config ignored: config.accept_remote is false (SEC-6)");
                }
            }
            ClientEvent::Command(c) => {
                if c.r#type == v1::CommandType::Restart as i32 {
                    tracing::info!("restart command received");
                    self.backoff.reset();
                    self.restart_process().await;
                } else {
                    tracing::warn!("unknown command type {}", c.r#type);
                }
            }
            ClientEvent::ConnectionSettingsOffer(offers) => {
                if let Some(m) = &offers.own_metrics {
                    let result = self.metrics.offer(m, Instant::now());
                    let (status, error) = match result {
                        Ok(()) => (v1::ConnectionSettingsStatuses::Applied, String::new()),
                        Err(e) => {
                            tracing::warn!("{e}");
                            (v1::ConnectionSettingsStatuses::Failed, e)
                        }
                    };
                    if !offers.hash.is_empty() {
                        let _ = self
                            .client
                            .set_connection_settings_status(v1::ConnectionSettingsStatus {
                                last_connection_settings_hash: offers.hash.clone(),
                                status: status as i32,
                                error_message: error,
                            })
                            .await;
                    }
                }
            }
            ClientEvent::ServerError(e) => tracing::warn!("server error: {}", e.error_message),
            ClientEvent::StateStoreFailed { reason } => tracing::error!("state store: {reason}"),
            ClientEvent::NewInstanceUid(uid) => {
                tracing::info!("new instance uid {uid}");
                let detected = description::Detected::detect();
                let desc =
                    description::build(&self.settings.description, &detected, &uid.to_string());
                self.metrics.set_description(&desc);
                let _ = self.client.set_agent_description(desc).await;
            }
            other => tracing::debug!("client event {other:?}"),
        }
    }

    async fn set_status(&self, s: v1::RemoteConfigStatus) {
        let _ = self.client.set_remote_config_status(s).await;
    }

    fn clear_staging(&self) {
        if let Err(e) = files::clear_dir(&self.layout.staging_dir()) {
            tracing::warn!("cannot clear the staging directory: {e}");
        }
    }

    fn save_state(&self) {
        if let Err(e) = self.state.save(&self.layout.state_file()) {
            tracing::error!("cannot save the agent state: {e}");
        }
    }

    async fn report_effective(&self) {
        match effective_config(&self.settings, &self.state) {
            Ok(map) => {
                let _ = self
                    .client
                    .set_effective_config(map.to_effective_config())
                    .await;
            }
            Err(e) => tracing::error!("cannot read the effective config: {e}"),
        }
    }

    async fn fail(&mut self, hash: &[u8], reason: String) {
        tracing::warn!("config failed: {reason}");
        self.state.remote = Some(RemoteRecord {
            hash: hex::encode(hash),
            status: RemoteOutcome::Failed,
            error: reason.clone(),
        });
        self.save_state();
        self.metrics.config_outcome(false);
        self.set_status(apply::status(
            hash,
            v1::RemoteConfigStatuses::Failed,
            &reason,
        ))
        .await;
    }

    /// The apply pipeline up to the health gate.
    async fn on_offer(&mut self, rc: v1::AgentRemoteConfig) {
        let hash = rc.config_hash.clone();
        match apply::decide(
            &self.state,
            self.gate.as_ref().map(|g| g.hash.as_slice()),
            &hash,
        ) {
            OfferDecision::InProgress => return,
            OfferDecision::Report(s) => {
                tracing::info!(
                    "config hash={} already handled: no re-apply",
                    hex::encode(&hash)
                );
                self.set_status(s).await;
                return;
            }
            OfferDecision::Apply => {}
        }
        if self.gate.is_some() {
            // Applied when the current gate ends.
            self.queued = Some(rc);
            return;
        }
        tracing::info!("applying config hash={}", hex::encode(&hash));
        self.set_status(apply::status(&hash, v1::RemoteConfigStatuses::Applying, ""))
            .await;
        let c = &self.settings.config;
        let mapped = match apply::map_remote(
            rc.config.as_ref(),
            &c.main_file,
            &local_names(&self.settings),
            &c.restrictions,
        ) {
            Ok(m) => m,
            Err(reason) => return self.fail(&hash, reason).await,
        };
        // Stage local + remote files and validate them there.
        let mut staged: BTreeMap<String, Vec<u8>> = c
            .local
            .iter()
            .map(|l| (l.name.clone(), l.body.clone()))
            .collect();
        for (name, f) in &mapped.files {
            staged.insert(name.clone(), f.body.clone());
        }
        let staging = self.layout.staging_dir();
        let checked = match files::replace_dir(&staging, &staged) {
            Err(e) => Err(format!("cannot stage the config: {e}")),
            Ok(()) => match &c.validate {
                Some(v) => {
                    let validation =
                        apply::run_validate(v, &staging, &c.main_file, &self.settings.state_dir);
                    tokio::pin!(validation);
                    // SIGTERM / SIGINT do not wait for the command (up to its timeout):
                    // dropping the future kills its process group.
                    loop {
                        tokio::select! {
                            r = &mut validation => break r,
                            s = next_signal(&mut self.signals) => match s {
                                SignalWake::Shutdown(name) => {
                                    self.stopping = Some(name);
                                    break Err("interrupted".to_owned());
                                }
                                SignalWake::Hangup => tracing::info!("SIGHUP ignored"),
                            },
                        }
                    }
                }
                None => Ok(()),
            },
        };
        // The staged copy has served its purpose, whatever the outcome: the swap below
        // writes from memory, a rollback from lkg/.
        self.clear_staging();
        if let Some(name) = self.stopping {
            // Nothing was swapped in and nothing is recorded: the next start handles the
            // offer as new.
            tracing::info!(
                "{name} received: stopping; validation of config hash={} interrupted, nothing applied",
                hex::encode(&hash)
            );
            return;
        }
        if let Err(reason) = checked {
            return self.fail(&hash, reason).await;
        }
        // Swap it in. Until it is in, both the old and the new names count as managed, so
        // that a rollback (now or after a crash) removes whatever was written.
        let old_names: Vec<String> = self.state.managed.keys().cloned().collect();
        for (name, f) in &mapped.files {
            self.state
                .managed
                .entry(name.clone())
                .or_insert_with(|| f.content_type.clone());
        }
        self.state.remote = Some(RemoteRecord {
            hash: hex::encode(&hash),
            status: RemoteOutcome::Applying,
            error: String::new(),
        });
        self.save_state();
        let new: BTreeMap<String, Vec<u8>> = mapped
            .files
            .iter()
            .map(|(n, f)| (n.clone(), f.body.clone()))
            .collect();
        if let Err(e) = files::swap_in(&self.settings.config.dir, &new, old_names) {
            // Some files may be written: put the last known good back.
            self.gate = Some(Gate {
                hash: hash.clone(),
                deadline: Instant::now(),
            });
            return self
                .rollback(&format!("cannot write the config: {e}"))
                .await;
        }
        self.state.managed = mapped
            .files
            .iter()
            .map(|(n, f)| (n.clone(), f.content_type.clone()))
            .collect();
        self.save_state();
        self.gate = Some(Gate {
            hash,
            deadline: Instant::now() + self.settings.config.health_gate,
        });
        self.apply_to_process().await;
        // The gate starts now that the process runs the new files.
        if let Some(g) = &mut self.gate {
            g.deadline = Instant::now() + self.settings.config.health_gate;
        }
    }

    /// Puts the files now in `config.dir` into effect.
    async fn apply_to_process(&mut self) {
        match self.settings.config.apply {
            ApplyMode::Restart => {
                self.backoff.reset();
                self.restart_process().await;
            }
            ApplyMode::Signal(sig) if self.process.pid().is_some() => {
                if let Err(e) = self.process.signal(sig) {
                    tracing::error!("{e}");
                }
                // A reload, like a deliberate restart.
                self.checks_carry_over(Instant::now());
            }
            ApplyMode::Signal(_) | ApplyMode::None => {
                if self.process.pid().is_none() {
                    self.start_process(true);
                } else {
                    self.checks_carry_over(Instant::now());
                }
            }
        }
    }

    async fn gate_passed(&mut self) {
        let Some(gate) = self.gate.take() else { return };
        let hash_hex = hex::encode(&gate.hash);
        let lkg = (|| -> Result<LkgRecord, Error> {
            let files = managed_files(&self.settings)?;
            let cts = content_types(&self.settings, &self.state, files.keys().cloned());
            files::replace_dir(&self.layout.lkg_dir(), &files)?;
            Ok(LkgRecord {
                hash: lkg_hash(&files, &cts),
                remote_hash: Some(hash_hex.clone()),
                files: cts,
            })
        })();
        match lkg {
            Ok(lkg) => self.state.lkg = Some(lkg),
            Err(e) => tracing::error!("cannot save the last known good config: {e}"),
        }
        self.state.remote = Some(RemoteRecord {
            hash: hash_hex.clone(),
            status: RemoteOutcome::Applied,
            error: String::new(),
        });
        self.save_state();
        tracing::info!("config applied hash={hash_hex}");
        self.metrics.config_outcome(true);
        self.report_effective().await;
        self.set_status(apply::status(
            &gate.hash,
            v1::RemoteConfigStatuses::Applied,
            "",
        ))
        .await;
        self.next_queued().await;
    }

    /// Restores the last known good files, re-applies them and reports FAILED.
    async fn rollback(&mut self, reason: &str) {
        let Some(gate) = self.gate.take() else { return };
        let restore = (|| -> Result<(), Error> {
            let files = files::read_dir_files(&self.layout.lkg_dir())?;
            files::swap_in(
                &self.settings.config.dir,
                &files,
                self.state.managed.keys().cloned(),
            )?;
            Ok(())
        })();
        match restore {
            Ok(()) => {
                if let Some(lkg) = &self.state.lkg {
                    self.state.managed = lkg.files.clone();
                }
                tracing::warn!("rolled back to last known good");
            }
            Err(e) => tracing::error!("cannot restore the last known good config: {e}"),
        }
        let message = format!("{reason}; rolled back to last known good");
        self.fail(&gate.hash, message).await;
        self.apply_to_process().await;
        self.report_effective().await;
        self.next_queued().await;
    }

    async fn next_queued(&mut self) {
        if let Some(rc) = self.queued.take() {
            Box::pin(self.on_offer(rc)).await;
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::state::RemoteRecord;

    fn settings(root: &Path) -> Settings {
        let text = r#"
state_dir = "state"
[server]
endpoint = "ws://127.0.0.1:9/v1/opamp"
[process]
command = "/bin/true"
[config]
accept_remote = true
main_file = "main.conf"
[[config.local]]
name = "local.conf"
body = "local"
"#;
        Settings::parse(text, &root.join("agent.toml"), None).unwrap()
    }

    #[test]
    fn first_start_writes_local_files_and_snapshots_the_initial_lkg() {
        let d = tempfile::tempdir().unwrap();
        let s = settings(d.path());
        std::fs::create_dir_all(&s.config.dir).unwrap();
        std::fs::write(s.config.dir.join("main.conf"), "operator").unwrap();
        let state = prepare(&s).unwrap();
        assert_eq!(
            std::fs::read_to_string(s.config.dir.join("local.conf")).unwrap(),
            "local"
        );
        let lkg = state.lkg.unwrap();
        assert_eq!(lkg.remote_hash, None);
        assert_eq!(lkg.files.keys().collect::<Vec<_>>(), ["main.conf"]);
        assert_eq!(
            std::fs::read_to_string(s.state_dir.join("lkg/main.conf")).unwrap(),
            "operator"
        );
        let eff = effective_config(&s, &AgentState::default()).unwrap();
        assert_eq!(
            eff.files.keys().collect::<Vec<_>>(),
            ["local.conf", "main.conf"]
        );
        assert_eq!(eff.files["main.conf"].content_type, "text/plain");
    }

    #[test]
    fn an_interrupted_apply_is_rolled_back_at_startup() {
        let d = tempfile::tempdir().unwrap();
        let s = settings(d.path());
        std::fs::create_dir_all(&s.config.dir).unwrap();
        std::fs::write(s.config.dir.join("main.conf"), "good").unwrap();
        let mut state = prepare(&s).unwrap();
        // A crash after the swap of a new config, before its gate ended.
        std::fs::write(s.config.dir.join("main.conf"), "half-applied").unwrap();
        std::fs::write(s.config.dir.join("extra.conf"), "new").unwrap();
        state.managed = [
            ("main.conf".to_owned(), "text/plain".to_owned()),
            ("extra.conf".to_owned(), "text/plain".to_owned()),
        ]
        .into();
        state.remote = Some(RemoteRecord {
            hash: "aa".into(),
            status: RemoteOutcome::Applying,
            error: String::new(),
        });
        state.save(&s.state_dir.join("agent-state.json")).unwrap();
        let state = prepare(&s).unwrap();
        assert_eq!(state.remote, None, "the offer is handled as new");
        assert_eq!(
            std::fs::read_to_string(s.config.dir.join("main.conf")).unwrap(),
            "good"
        );
        assert!(!s.config.dir.join("extra.conf").exists());
    }

    #[test]
    fn startup_clears_a_candidate_left_in_staging() {
        let d = tempfile::tempdir().unwrap();
        let s = settings(d.path());
        let staging = s.state_dir.join("staging");
        std::fs::create_dir_all(staging.join("sub")).unwrap();
        std::fs::write(staging.join("main.conf"), "candidate").unwrap();
        std::fs::write(staging.join(".hidden"), "x").unwrap();
        std::fs::write(staging.join("sub/f"), "x").unwrap();
        prepare(&s).unwrap();
        assert!(std::fs::read_dir(&staging).unwrap().next().is_none());
    }

    #[test]
    fn effective_config_carries_each_files_content_type_and_raw_bytes_eff_6() {
        let d = tempfile::tempdir().unwrap();
        let mut s = settings(d.path());
        s.config.local[0].content_type = "text/x-local".into();
        std::fs::create_dir_all(&s.config.dir).unwrap();
        // Remote file: not UTF-8, content type as the server gave it.
        let raw = vec![0xff, 0x00, 0xfe, b'\n'];
        std::fs::write(s.config.dir.join("remote.bin"), &raw).unwrap();
        std::fs::write(s.config.dir.join("local.conf"), "local").unwrap();
        // Put there by an operator: type from the extension.
        std::fs::write(s.config.dir.join("extra.json"), "{}").unwrap();
        let mut state = AgentState::default();
        state
            .managed
            .insert("remote.bin".into(), "application/x-custom".into());
        let eff = effective_config(&s, &state).unwrap().to_effective_config();
        let map = eff.config_map.unwrap().config_map;
        let mut got: Vec<(&str, &str, &[u8])> = map
            .iter()
            .map(|(n, f)| (n.as_str(), f.content_type.as_str(), f.body.as_slice()))
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                ("extra.json", "application/json", &b"{}"[..]),
                ("local.conf", "text/x-local", &b"local"[..]),
                ("remote.bin", "application/x-custom", &raw[..]),
            ]
        );
    }

    #[test]
    fn what_opamp_agent_does_not_do_is_not_advertised_oth_2_own_5_avc_8_cus_4() {
        for accept_remote in [false, true] {
            let caps = capabilities(accept_remote);
            for absent in [
                // No other_connections are taken (OTH-*): opamp-agent does not know what
                // a destination name would mean for the managed process.
                AgentCapabilities::ACCEPTS_OTHER_CONNECTION_SETTINGS,
                // Own metrics only (OWN-5).
                AgentCapabilities::REPORTS_OWN_TRACES,
                AgentCapabilities::REPORTS_OWN_LOGS,
                // The managed process's components are unknown to it (AVC-*).
                AgentCapabilities::REPORTS_AVAILABLE_COMPONENTS,
                // No packages (PKG-*).
                AgentCapabilities::ACCEPTS_PACKAGES,
                AgentCapabilities::REPORTS_PACKAGE_STATUSES,
            ] {
                assert!(!caps.contains(absent), "{absent:?}");
            }
        }
    }

    #[test]
    fn accepts_remote_config_only_when_configured_sec_6() {
        assert!(capabilities(true).contains(AgentCapabilities::ACCEPTS_REMOTE_CONFIG));
        assert!(!capabilities(false).contains(AgentCapabilities::ACCEPTS_REMOTE_CONFIG));
        for c in [
            AgentCapabilities::REPORTS_STATUS,
            AgentCapabilities::REPORTS_EFFECTIVE_CONFIG,
            AgentCapabilities::REPORTS_HEALTH,
            AgentCapabilities::REPORTS_REMOTE_CONFIG,
            AgentCapabilities::ACCEPTS_RESTART_COMMAND,
            AgentCapabilities::REPORTS_OWN_METRICS,
        ] {
            assert!(capabilities(false).contains(c));
        }
    }
}
