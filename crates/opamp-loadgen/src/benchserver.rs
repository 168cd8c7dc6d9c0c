//! The server under test: the `opamp-server` library with a small application that offers
//! a remote config, can push a new one to every agent, and records when each agent
//! reports it `APPLIED`. It is what the `bench-server` binary runs, in its own process so
//! that its memory and CPU are measured alone.
//!
//! Measurement of "push → APPLIED": the control endpoint `POST /push` notes the wall clock
//! (Unix ns), calls [`Server::broadcast`] with generation n+1, and from then on the
//! handler notes, for each agent, the wall clock at which its `RemoteConfigStatus` with
//! status `APPLIED` and the new hash reaches [`Handler::on_message`]. Agents note when the
//! push reaches them on the same clock (the processes share one machine and its
//! `CLOCK_REALTIME`). The handler does nothing else per message: no storage, so the
//! figures are the library's.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use opamp_proto::InstanceUid;
use opamp_proto::v1::{AgentRemoteConfig, AgentToServer, RemoteConfigStatuses, ServerToAgent};
use opamp_server::{AgentContext, Handler, MetricsSnapshot, Server, ServerConfig};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::control::{Applied, Info, PushResult, ServerMetrics};
use crate::sim;

/// Wall clock in Unix nanoseconds.
pub fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The remote config of `generation`, hash filled in (RCFG-2).
pub fn remote_config(generation: u64, size: usize) -> AgentRemoteConfig {
    let mut rc = AgentRemoteConfig {
        config: Some(sim::config_map(sim::collector_config(generation, size))),
        config_hash: Vec::new(),
    };
    rc.config_hash = opamp_server::session::config_hash(&rc);
    rc
}

struct Generation {
    number: u64,
    config: Arc<AgentRemoteConfig>,
    push_start_unix_ns: Option<u64>,
    applied: HashSet<InstanceUid>,
    latencies_us: Vec<u64>,
}

/// The bench application: offers the current remote config to every agent that attaches
/// or reports another config's status, and records APPLIED statuses of the current
/// generation.
pub struct BenchHandler {
    config_size: usize,
    current: Mutex<Generation>,
}

impl std::fmt::Debug for BenchHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BenchHandler")
            .field("config_size", &self.config_size)
            .finish_non_exhaustive()
    }
}

impl BenchHandler {
    /// A handler whose remote configs are about `config_size` bytes.
    pub fn new(config_size: usize) -> Self {
        Self {
            config_size,
            current: Mutex::new(Generation {
                number: 1,
                config: Arc::new(remote_config(1, config_size)),
                push_start_unix_ns: None,
                applied: HashSet::new(),
                latencies_us: Vec::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Generation> {
        self.current.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts generation n+1; returns it with its config and the push start time.
    fn next_generation(&self) -> (u64, Arc<AgentRemoteConfig>, u64) {
        let config = remote_config(self.lock().number + 1, self.config_size);
        let mut current = self.lock();
        current.number += 1;
        current.config = Arc::new(config);
        current.applied.clear();
        current.latencies_us.clear();
        let start = unix_ns();
        current.push_start_unix_ns = Some(start);
        (current.number, current.config.clone(), start)
    }

    fn applied(&self) -> Applied {
        let current = self.lock();
        Applied {
            generation: current.number,
            push_start_unix_ns: current.push_start_unix_ns,
            applied: current.applied.len() as u64,
            latencies_us: current.latencies_us.clone(),
        }
    }
}

impl Handler for BenchHandler {
    async fn on_message(&self, ctx: &AgentContext, msg: &AgentToServer) -> ServerToAgent {
        // Heartbeats (the hot path) take no lock and allocate nothing here.
        let status = msg.remote_config_status.as_ref();
        if status.is_none() && !ctx.attached {
            return ServerToAgent::default();
        }
        let mut current = self.lock();
        let runs_current =
            status.is_some_and(|s| s.last_remote_config_hash == current.config.config_hash);
        if let Some(status) = status {
            if runs_current
                && status.status == RemoteConfigStatuses::Applied as i32
                && current.applied.insert(ctx.instance_uid)
            {
                if let Some(start) = current.push_start_unix_ns {
                    let latency = unix_ns().saturating_sub(start) / 1000;
                    current.latencies_us.push(latency);
                }
            }
        }
        if runs_current && !ctx.attached {
            // Nothing to offer: the agent runs the current config (RCFG-5).
            return ServerToAgent::default();
        }
        // The session sends it only when the agent does not run it yet (RCFG-4, RCFG-5).
        ServerToAgent {
            remote_config: Some(AgentRemoteConfig::clone(&current.config)),
            ..Default::default()
        }
    }
}

/// Options of [`start`].
#[derive(Debug, Clone)]
pub struct Options {
    /// The OpAMP listen address.
    pub listen: SocketAddr,
    /// The control API listen address.
    pub control: SocketAddr,
    /// Size of the remote configs in bytes.
    pub config_size: usize,
    /// Tokio worker threads of the runtime (reported in `/info`).
    pub workers: usize,
}

/// A running bench server.
#[derive(Debug)]
pub struct Running {
    /// The OpAMP server.
    pub server: Server<BenchHandler>,
    /// Where OpAMP is served.
    pub opamp_addr: SocketAddr,
    /// Where the control API is served.
    pub control_addr: SocketAddr,
    /// Cancelled by `POST /shutdown`.
    pub stop: CancellationToken,
    serve: tokio::task::JoinHandle<Result<(), opamp_server::Error>>,
    control: tokio::task::JoinHandle<()>,
}

/// The server configuration used for benchmarks: the library defaults, except that
/// admission control does not pace new WebSocket connections (the load generator sets
/// the pace) and allows 10^6 of them.
pub fn server_config() -> ServerConfig {
    ServerConfig::builder()
        .new_ws_connection_rate(1_000_000.0, 1_000_000)
        .max_ws_connections(1_000_000)
        .build()
}

/// Starts the bench server on the current tokio runtime.
pub async fn start(options: Options) -> std::io::Result<Running> {
    let server = Server::new(server_config(), BenchHandler::new(options.config_size));
    let listener = TcpListener::bind(options.listen).await?;
    let opamp_addr = listener.local_addr()?;
    let control_listener = TcpListener::bind(options.control).await?;
    let control_addr = control_listener.local_addr()?;
    let stop = CancellationToken::new();
    let serve = tokio::spawn({
        let server = server.clone();
        let stop = stop.clone();
        async move { server.serve(listener, stop.cancelled_owned()).await }
    });
    let state = ControlState {
        server: server.clone(),
        opamp_addr,
        workers: options.workers,
        stop: stop.clone(),
    };
    let router = Router::new()
        .route("/info", get(info))
        .route("/push", post(push))
        .route("/applied", get(applied))
        .route("/shutdown", post(shutdown))
        .with_state(state);
    let control = tokio::spawn({
        let stop = stop.clone();
        async move {
            let _ = axum::serve(control_listener, router)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
        }
    });
    Ok(Running {
        server,
        opamp_addr,
        control_addr,
        stop,
        serve,
        control,
    })
}

impl Running {
    /// Stops serving (WebSockets closed with 1001) and waits up to `grace` for the tasks.
    pub async fn shutdown(self, grace: Duration) {
        self.stop.cancel();
        self.server.shutdown();
        let _ = tokio::time::timeout(grace, async {
            let _ = self.serve.await;
            let _ = self.control.await;
        })
        .await;
    }
}

#[derive(Clone)]
struct ControlState {
    server: Server<BenchHandler>,
    opamp_addr: SocketAddr,
    workers: usize,
    stop: CancellationToken,
}

fn json<T: Serialize>(value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

fn metrics(m: &MetricsSnapshot) -> ServerMetrics {
    ServerMetrics {
        ws_connections: m.ws_connections,
        ws_connections_total: m.ws_connections_total,
        http_requests_total: m.http_requests_total,
        messages_in: m.messages_in,
        messages_out: m.messages_out,
        bytes_in: m.bytes_in,
        bytes_out: m.bytes_out,
        pushes_sent: m.pushes_sent,
        dropped_slow_reader: m.dropped_slow_reader,
        rejected_overload: m.rejected_overload,
        rejected_rate: m.rejected_rate,
        malformed: m.malformed,
    }
}

async fn info(State(state): State<ControlState>) -> Response {
    let (generation, applied) = {
        let current = state.server.handler().lock();
        (current.number, current.applied.len() as u64)
    };
    json(&Info {
        pid: std::process::id(),
        opamp_addr: state.opamp_addr,
        path: state.server.config().path.clone(),
        workers: state.workers,
        generation,
        applied,
        metrics: metrics(&state.server.metrics()),
    })
}

async fn push(State(state): State<ControlState>) -> Response {
    let (generation, config, start) = state.server.handler().next_generation();
    let msg = ServerToAgent {
        remote_config: Some(AgentRemoteConfig::clone(&config)),
        ..Default::default()
    };
    let report = state.server.broadcast(&msg, |_, _| true);
    let end = unix_ns();
    json(&PushResult {
        generation,
        push_start_unix_ns: start,
        push_end_unix_ns: end,
        sent: report.sent as u64,
        pending: report.pending as u64,
        nothing: report.nothing as u64,
        failed: report.failed as u64,
    })
}

async fn applied(State(state): State<ControlState>) -> Response {
    json(&state.server.handler().applied())
}

async fn shutdown(State(state): State<ControlState>) -> Response {
    state.stop.cancel();
    json(&"stopping")
}
