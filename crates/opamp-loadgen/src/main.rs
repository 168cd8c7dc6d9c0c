//! `opamp-loadgen`: runs one benchmark scenario against a bench server and prints its
//! JSON summary on stdout (progress on stderr); `report` turns summaries into
//! docs/BENCHMARKS.md. Normally driven by `cargo xtask bench`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use opamp_loadgen::{net, report, scenario};

#[derive(Parser, Debug)]
#[command(
    name = "opamp-loadgen",
    version,
    about = "Simulated OpAMP agents for benchmarks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Debug, Clone)]
struct Target {
    /// The bench server's control API address.
    #[arg(long, env = "OPAMP_BENCH_CONTROL", default_value = "127.0.0.1:4399")]
    control: SocketAddr,
    /// Tokio worker threads (default: the CPUs this process may use).
    #[arg(long)]
    workers: Option<usize>,
    /// Size of the agents' effective config in bytes.
    #[arg(long, default_value_t = 3072)]
    config_size: usize,
    /// Distinguishes agent uids between runs against the same server.
    #[arg(long, default_value_t = 1)]
    run_id: u32,
}

#[derive(Args, Debug, Clone)]
struct Fleet {
    /// Number of WebSocket agents.
    #[arg(long, default_value_t = 1000)]
    agents: usize,
    /// New connections per second.
    #[arg(long, default_value_t = 5000.0)]
    connect_rate: f64,
    /// Concurrent connection attempts.
    #[arg(long, default_value_t = 512)]
    max_connecting: usize,
    /// Seconds allowed to connect every agent.
    #[arg(long, default_value_t = 120)]
    connect_timeout: u64,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Server RSS per idle WebSocket agent, connect rate, first reply latency.
    WsIdle {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        fleet: Fleet,
        /// Seconds to wait after the last agent is ready before reading RSS.
        #[arg(long, default_value_t = 3.0)]
        settle: f64,
    },
    /// Push a new remote config to every agent: push → received → APPLIED latency.
    WsPush {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        fleet: Fleet,
        /// How many pushes.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Seconds each push may take.
        #[arg(long, default_value_t = 60)]
        round_timeout: u64,
    },
    /// Server CPU with every agent heartbeating.
    WsSteady {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        fleet: Fleet,
        /// Heartbeat interval in seconds.
        #[arg(long, default_value_t = 30.0)]
        heartbeat: f64,
        /// Measurement window in seconds.
        #[arg(long, default_value_t = 30.0)]
        window: f64,
    },
    /// HTTP pollers as fast as they can: polls per second and latency.
    HttpPoll {
        #[command(flatten)]
        target: Target,
        /// Concurrent pollers (keep-alive connections).
        #[arg(long, default_value_t = 64)]
        pollers: usize,
        /// Seconds counted.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Seconds of warm-up, not counted.
        #[arg(long, default_value_t = 2.0)]
        warmup: f64,
    },
    /// Render summaries (a directory of <scenario>.json files) into the benchmarks doc.
    Report(report::ReportArgs),
}

fn runtime(workers: Option<usize>) -> Result<(tokio::runtime::Runtime, usize)> {
    let workers = workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
        .max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .context("tokio runtime")?;
    Ok((rt, workers))
}

fn common(target: &Target, fleet: &Fleet) -> scenario::WsCommon {
    scenario::WsCommon {
        control: target.control,
        agents: fleet.agents,
        connect_rate: fleet.connect_rate,
        max_connecting: fleet.max_connecting,
        config_size: target.config_size,
        connect_timeout: Duration::from_secs(fleet.connect_timeout),
        run_id: target.run_id,
    }
}

fn raise_nofile(connections: usize) {
    let limit = net::raise_nofile(connections as u64 + 1024);
    if let Some(warning) = &limit.warning {
        eprintln!("opamp-loadgen: {warning}");
    }
}

fn print<T: serde::Serialize>(value: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::WsIdle {
            target,
            fleet,
            settle,
        } => {
            raise_nofile(fleet.agents);
            let (rt, workers) = runtime(target.workers)?;
            let common = common(&target, &fleet);
            let summary = rt.block_on(scenario::ws_idle(
                &common,
                Duration::from_secs_f64(settle),
                workers,
            ))?;
            print(&summary)
        }
        Command::WsPush {
            target,
            fleet,
            rounds,
            round_timeout,
        } => {
            raise_nofile(fleet.agents);
            let (rt, workers) = runtime(target.workers)?;
            let common = common(&target, &fleet);
            let summary = rt.block_on(scenario::ws_push(
                &common,
                rounds,
                Duration::from_secs(round_timeout),
                workers,
            ))?;
            print(&summary)
        }
        Command::WsSteady {
            target,
            fleet,
            heartbeat,
            window,
        } => {
            raise_nofile(fleet.agents);
            let (rt, workers) = runtime(target.workers)?;
            let common = common(&target, &fleet);
            let summary = rt.block_on(scenario::ws_steady(
                &common,
                Duration::from_secs_f64(heartbeat),
                Duration::from_secs_f64(window),
                workers,
            ))?;
            print(&summary)
        }
        Command::HttpPoll {
            target,
            pollers,
            duration,
            warmup,
        } => {
            raise_nofile(pollers);
            let (rt, workers) = runtime(target.workers)?;
            let summary = rt.block_on(scenario::http_poll(
                target.control,
                pollers,
                Duration::from_secs_f64(warmup),
                Duration::from_secs_f64(duration),
                target.config_size,
                target.run_id,
                workers,
            ))?;
            print(&summary)
        }
        Command::Report(args) => {
            let written: PathBuf = report::run(&args)?;
            eprintln!("opamp-loadgen: wrote {}", written.display());
            Ok(())
        }
    }
}
