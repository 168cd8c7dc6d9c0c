//! The `opamp-agent` binary: `opamp-agent --config FILE [--state-dir DIR]`.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};

/// Runs one agent process and manages it over OpAMP: remote config with validation,
/// health gate and rollback; health; restart command; own metrics.
#[derive(Debug, Parser)]
#[command(name = "opamp-agent", version, about)]
struct Cli {
    /// The TOML configuration file.
    #[arg(long, env = "OPAMP_AGENT_CONFIG")]
    config: PathBuf,
    /// State directory (overrides `state_dir` in the file).
    #[arg(long, env = "OPAMP_AGENT_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Log format.
    #[arg(long, env = "OPAMP_AGENT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Log level, or levels per target (`info`, `debug`, `opamp_agent=debug,info`).
    #[arg(long, env = "OPAMP_AGENT_LOG_LEVEL", default_value = "info")]
    log_level: String,
    /// Run even as root (same as `allow_root = true` in the file; refused otherwise, SEC-2).
    #[arg(long, env = "OPAMP_AGENT_ALLOW_ROOT")]
    allow_root: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `Targets` rather than `EnvFilter`: same `target=level,level` syntax for our use, and
    // no regex engine touched at startup (idle RSS).
    let filter = match cli.log_level.parse::<tracing_subscriber::filter::Targets>() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("opamp-agent: --log-level {:?}: {e}", cli.log_level);
            return ExitCode::from(2);
        }
    };
    // Colours only on a terminal (and never with NO_COLOR set).
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let registry = tracing_subscriber::registry().with(filter);
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => registry.with(layer).init(),
        LogFormat::Json => registry.with(layer.json()).init(),
    }
    let mut settings =
        match opamp_agent::settings::Settings::load(&cli.config, cli.state_dir.as_deref()) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("opamp-agent: bad config file {e}");
                return ExitCode::from(2);
            }
        };
    settings.allow_root |= cli.allow_root;
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("opamp-agent: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(opamp_agent::run(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("opamp-agent: {e}");
            ExitCode::FAILURE
        }
    }
}
