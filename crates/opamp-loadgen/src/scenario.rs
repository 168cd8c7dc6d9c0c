//! The benchmark scenarios. Each runs against a bench server (found through its control
//! API), measures, and returns a summary that the binary prints as JSON.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::control::{self, Info};
use crate::procfs::{self, CpuMeter};
use crate::stats::Percentiles;
use crate::{Error, poll, ws};

/// Facts about the run every summary carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunEnv {
    /// Tokio worker threads of the bench server.
    pub server_workers: usize,
    /// Tokio worker threads of the load generator.
    pub loadgen_workers: usize,
    /// CPUs the load generator may run on.
    pub loadgen_cpus: usize,
    /// The 1-minute load average when the scenario started.
    pub load_average_1m: Option<f64>,
}

/// Options shared by the WebSocket scenarios.
#[derive(Debug, Clone)]
pub struct WsCommon {
    /// The bench server's control address.
    pub control: SocketAddr,
    /// Number of agents.
    pub agents: usize,
    /// New connections per second.
    pub connect_rate: f64,
    /// Concurrent connection attempts.
    pub max_connecting: usize,
    /// The agents' effective config size in bytes.
    pub config_size: usize,
    /// How long connecting everyone may take before the run fails.
    pub connect_timeout: Duration,
    /// Distinguishes the uids of different runs against one server.
    pub run_id: u32,
}

/// How connecting went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectSummary {
    /// Agents asked for.
    pub agents: usize,
    /// Agents ready (connected and first exchange done).
    pub ready: usize,
    /// Agents that could not connect.
    pub failed: usize,
    /// Upgrades refused with 429/503 and retried.
    pub retries: usize,
    /// Seconds from the first connection attempt to the last agent ready.
    pub seconds: f64,
    /// `ready / seconds`.
    pub rate_per_s: f64,
    /// TCP connect + WebSocket upgrade, per agent.
    pub connect_latency: Percentiles,
    /// First full report → its reply, per agent.
    pub first_reply_latency: Percentiles,
}

fn env(info: &Info, loadgen_workers: usize) -> RunEnv {
    RunEnv {
        server_workers: info.workers,
        loadgen_workers,
        loadgen_cpus: std::thread::available_parallelism().map_or(1, usize::from),
        load_average_1m: procfs::load_average(),
    }
}

fn nonzero(values: Vec<u64>) -> Vec<u64> {
    values.into_iter().filter(|&v| v > 0).collect()
}

async fn connect_fleet(
    common: &WsCommon,
    info: &Info,
    heartbeat: Option<Duration>,
) -> Result<(ws::WsFleet, ConnectSummary), Error> {
    let fleet = ws::WsFleet::start(ws::Options {
        server: info.opamp_addr,
        path: info.path.clone(),
        agents: common.agents,
        connect_rate: common.connect_rate,
        max_connecting: common.max_connecting,
        heartbeat,
        config_size: common.config_size,
        run_id: common.run_id,
    })?;
    let took = match fleet.wait_ready(common.connect_timeout).await {
        Ok(took) => took,
        Err(e) => {
            fleet.stop(Duration::from_secs(5)).await;
            return Err(e);
        }
    };
    let c = fleet.counters();
    let ready = c.ready.load(Ordering::Relaxed);
    let summary = ConnectSummary {
        agents: common.agents,
        ready,
        failed: c.failed.load(Ordering::Relaxed),
        retries: c.retries.load(Ordering::Relaxed),
        seconds: took.as_secs_f64(),
        rate_per_s: ready as f64 / took.as_secs_f64().max(1e-9),
        connect_latency: Percentiles::from_micros(&mut nonzero(fleet.connect_us())),
        first_reply_latency: Percentiles::from_micros(&mut nonzero(fleet.first_reply_us())),
    };
    Ok((fleet, summary))
}

/// `ws-idle`: the server's memory per idle WebSocket agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WsIdleSummary {
    /// The run.
    pub env: RunEnv,
    /// How connecting went.
    pub connect: ConnectSummary,
    /// Server RSS before the first connection, bytes.
    pub server_rss_before: u64,
    /// Server RSS with every agent connected and idle, bytes.
    pub server_rss_after: u64,
    /// Server peak RSS (VmHWM), bytes.
    pub server_rss_peak: u64,
    /// `(after - before) / ready`.
    pub bytes_per_agent: f64,
    /// Open WebSocket connections the server counted at the end.
    pub server_ws_connections: u64,
    /// Seconds waited after the last agent was ready.
    pub settle_seconds: f64,
    /// Load generator RSS, bytes.
    pub loadgen_rss: u64,
    /// Connections closed by the server during the run.
    pub closed_by_server: usize,
    /// Error replies received.
    pub error_replies: usize,
}

/// Runs `ws-idle`.
pub async fn ws_idle(
    common: &WsCommon,
    settle: Duration,
    loadgen_workers: usize,
) -> Result<WsIdleSummary, Error> {
    let info = control::info(common.control).await?;
    let env = env(&info, loadgen_workers);
    let before = procfs::rss_bytes(info.pid)?;
    // Real agents heartbeat every 30 s; the run is shorter, so hardly any are sent.
    let (fleet, connect) = connect_fleet(common, &info, Some(Duration::from_secs(30))).await?;
    tokio::time::sleep(settle).await;
    let after = procfs::rss_bytes(info.pid)?;
    let end = control::info(common.control).await?;
    let c = fleet.counters();
    let summary = WsIdleSummary {
        env,
        bytes_per_agent: after.saturating_sub(before) as f64 / connect.ready.max(1) as f64,
        connect,
        server_rss_before: before,
        server_rss_after: after,
        server_rss_peak: procfs::peak_rss_bytes(info.pid)?,
        server_ws_connections: end.metrics.ws_connections,
        settle_seconds: settle.as_secs_f64(),
        loadgen_rss: procfs::rss_bytes(std::process::id())?,
        closed_by_server: c.closed.load(Ordering::Relaxed),
        error_replies: c.errors.load(Ordering::Relaxed),
    };
    fleet.stop(Duration::from_secs(10)).await;
    Ok(summary)
}

/// One push of a new remote config to every agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushRound {
    /// The config generation pushed.
    pub generation: u64,
    /// How long `Server::broadcast` took (encode and queue for everyone), ms.
    pub broadcast_ms: f64,
    /// Queues that took the push.
    pub sent: u64,
    /// Agents the push could not reach.
    pub failed: u64,
    /// Push start → the agent has the new config, per agent.
    pub received: Percentiles,
    /// Push start → the server's handler sees the agent's APPLIED status, per agent.
    pub applied: Percentiles,
    /// Agents connected when the push started.
    pub expected: usize,
}

/// `ws-push`: push → received → APPLIED latency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WsPushSummary {
    /// The run.
    pub env: RunEnv,
    /// How connecting went.
    pub connect: ConnectSummary,
    /// Each push.
    pub rounds: Vec<PushRound>,
    /// Connections closed by the server during the run.
    pub closed_by_server: usize,
}

/// Runs `ws-push` with `rounds` pushes, each given up to `round_timeout`.
pub async fn ws_push(
    common: &WsCommon,
    rounds: usize,
    round_timeout: Duration,
    loadgen_workers: usize,
) -> Result<WsPushSummary, Error> {
    let info = control::info(common.control).await?;
    let env = env(&info, loadgen_workers);
    // No heartbeats: every message during a round belongs to the push.
    let (fleet, connect) = connect_fleet(common, &info, None).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut results = Vec::new();
    for _ in 0..rounds {
        let expected = fleet.counters().connected.load(Ordering::Relaxed);
        fleet.reset_config_receipts();
        let push = control::push(common.control).await?;
        let deadline = Instant::now() + round_timeout;
        let mut received;
        loop {
            received = nonzero(fleet.config_receipts());
            if received.len() >= expected || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut applied;
        loop {
            applied = control::applied(common.control).await?;
            if applied.applied as usize >= expected || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let start = push.push_start_unix_ns;
        let mut received_us: Vec<u64> = received
            .iter()
            .map(|&t| (t.saturating_sub(start) / 1000).max(1))
            .collect();
        results.push(PushRound {
            generation: push.generation,
            broadcast_ms: push.push_end_unix_ns.saturating_sub(start) as f64 / 1e6,
            sent: push.sent,
            failed: push.failed,
            received: Percentiles::from_micros(&mut received_us),
            applied: Percentiles::from_micros(&mut applied.latencies_us),
            expected,
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let closed = fleet.counters().closed.load(Ordering::Relaxed);
    fleet.stop(Duration::from_secs(10)).await;
    Ok(WsPushSummary {
        env,
        connect,
        rounds: results,
        closed_by_server: closed,
    })
}

/// `ws-steady`: server CPU with every agent heartbeating.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WsSteadySummary {
    /// The run.
    pub env: RunEnv,
    /// How connecting went.
    pub connect: ConnectSummary,
    /// Heartbeat interval, seconds.
    pub heartbeat_seconds: f64,
    /// Measurement window, seconds.
    pub window_seconds: f64,
    /// Server CPU over the window, percent of one core.
    pub server_cpu_percent: f64,
    /// Load generator CPU over the window, percent of one core.
    pub loadgen_cpu_percent: f64,
    /// Messages the server received per second over the window.
    pub messages_per_s: f64,
    /// Heartbeat → reply, over the window.
    pub heartbeat_latency: Percentiles,
    /// Server RSS at the end, bytes.
    pub server_rss: u64,
    /// Connections closed by the server during the run.
    pub closed_by_server: usize,
}

/// Runs `ws-steady`.
pub async fn ws_steady(
    common: &WsCommon,
    heartbeat: Duration,
    window: Duration,
    loadgen_workers: usize,
) -> Result<WsSteadySummary, Error> {
    let info = control::info(common.control).await?;
    let env = env(&info, loadgen_workers);
    let (fleet, connect) = connect_fleet(common, &info, Some(heartbeat)).await?;
    // One full interval so that every agent is in its heartbeat rhythm.
    tokio::time::sleep(heartbeat).await;
    let _ = fleet.record_heartbeats(true);
    let before = control::info(common.control).await?;
    let server_cpu = CpuMeter::start(info.pid)?;
    let own_cpu = CpuMeter::start(std::process::id())?;
    let t0 = Instant::now();
    tokio::time::sleep(window).await;
    let server_cpu_percent = server_cpu.percent()?;
    let loadgen_cpu_percent = own_cpu.percent()?;
    let elapsed = t0.elapsed().as_secs_f64();
    let after = control::info(common.control).await?;
    let mut latencies = fleet.record_heartbeats(false);
    let summary = WsSteadySummary {
        env,
        connect,
        heartbeat_seconds: heartbeat.as_secs_f64(),
        window_seconds: elapsed,
        server_cpu_percent,
        loadgen_cpu_percent,
        messages_per_s: after
            .metrics
            .messages_in
            .saturating_sub(before.metrics.messages_in) as f64
            / elapsed,
        heartbeat_latency: Percentiles::from_micros(&mut latencies),
        server_rss: procfs::rss_bytes(info.pid)?,
        closed_by_server: fleet.counters().closed.load(Ordering::Relaxed),
    };
    fleet.stop(Duration::from_secs(10)).await;
    Ok(summary)
}

/// `http-poll`: polls per second.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpPollSummary {
    /// The run.
    pub env: RunEnv,
    /// Concurrent pollers (keep-alive connections).
    pub pollers: usize,
    /// Counted window, seconds (after the warm-up).
    pub window_seconds: f64,
    /// Successful polls in the window.
    pub polls: u64,
    /// Successful polls per second.
    pub polls_per_s: f64,
    /// Poll latency (request written → reply read).
    pub latency: Percentiles,
    /// Responses by status code.
    pub statuses: std::collections::BTreeMap<u16, u64>,
    /// Transport errors and undecodable replies.
    pub errors: u64,
    /// Connections re-opened.
    pub reconnects: u64,
    /// Server CPU over the window, percent of one core.
    pub server_cpu_percent: f64,
    /// Load generator CPU over the window, percent of one core.
    pub loadgen_cpu_percent: f64,
}

/// Runs `http-poll`.
pub async fn http_poll(
    control_addr: SocketAddr,
    pollers: usize,
    warmup: Duration,
    duration: Duration,
    config_size: usize,
    run_id: u32,
    loadgen_workers: usize,
) -> Result<HttpPollSummary, Error> {
    let info = control::info(control_addr).await?;
    let env = env(&info, loadgen_workers);
    let run = tokio::spawn(poll::run(poll::Options {
        server: info.opamp_addr,
        path: info.path.clone(),
        pollers,
        warmup,
        duration,
        config_size,
        run_id,
    }));
    tokio::time::sleep(warmup).await;
    let server_cpu = CpuMeter::start(info.pid)?;
    let own_cpu = CpuMeter::start(std::process::id())?;
    tokio::time::sleep(duration).await;
    let server_cpu_percent = server_cpu.percent()?;
    let loadgen_cpu_percent = own_cpu.percent()?;
    let mut outcome = run
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))??;
    let window = outcome.window.as_secs_f64();
    Ok(HttpPollSummary {
        env,
        pollers,
        window_seconds: window,
        polls: outcome.polls,
        polls_per_s: outcome.polls as f64 / window.max(1e-9),
        latency: Percentiles::from_micros(&mut outcome.latencies_us),
        statuses: outcome.statuses,
        errors: outcome.errors,
        reconnects: outcome.reconnects,
        server_cpu_percent,
        loadgen_cpu_percent,
    })
}
