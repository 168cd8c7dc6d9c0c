//! `bench-server`: the OpAMP server under test in `cargo xtask bench` (see
//! `opamp_loadgen::benchserver`). Prints one JSON line with its addresses and pid, then
//! serves until `POST /shutdown`, Ctrl-C, or (with `--exit-on-stdin-eof`) the end of its
//! standard input, so it never outlives the xtask that started it.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use opamp_loadgen::{benchserver, net};
use tokio::io::AsyncReadExt;

#[derive(Parser, Debug)]
#[command(
    name = "bench-server",
    version,
    about = "OpAMP server under test for benchmarks"
)]
struct Cli {
    /// OpAMP listen address (WebSocket and HTTP).
    #[arg(long, default_value = "127.0.0.1:4320")]
    listen: SocketAddr,
    /// Control API listen address.
    #[arg(long, default_value = "127.0.0.1:4399")]
    control: SocketAddr,
    /// Tokio worker threads (default: the CPUs this process may use, e.g. 1 under
    /// `taskset -c 0`).
    #[arg(long)]
    workers: Option<usize>,
    /// Size of the remote configs in bytes.
    #[arg(long, default_value_t = 3072)]
    config_size: usize,
    /// Exit when standard input reaches its end.
    #[arg(long)]
    exit_on_stdin_eof: bool,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let nofile = net::raise_nofile(262_144);
    if let Some(warning) = &nofile.warning {
        eprintln!("bench-server: {warning}");
    }
    let workers = cli
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
        .max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let result = rt.block_on(async move {
        let running = benchserver::start(benchserver::Options {
            listen: cli.listen,
            control: cli.control,
            config_size: cli.config_size,
            workers,
        })
        .await
        .context("bind")?;
        let ready = serde_json::json!({
            "pid": std::process::id(),
            "opamp": running.opamp_addr,
            "control": running.control_addr,
            "workers": workers,
            "nofile": nofile,
        });
        println!("{ready}");
        let stdin_closed = async {
            if cli.exit_on_stdin_eof {
                let mut stdin = tokio::io::stdin();
                let mut buf = [0u8; 64];
                while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            () = running.stop.cancelled() => {}
            () = stdin_closed => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        running.shutdown(Duration::from_secs(10)).await;
        anyhow::Ok(())
    });
    // The stdin reader is a blocking thread that may still wait for input: do not wait
    // for it.
    rt.shutdown_timeout(Duration::from_millis(200));
    result
}
