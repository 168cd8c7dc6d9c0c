//! `opampd`: the opamp-rs fleet server.
//!
//! ```text
//! opampd                                  # serve: OpAMP on 127.0.0.1:4320, admin API on 127.0.0.1:4321
//! opampd --store postgres://u:p@db/opamp  # several replicas share one PostgreSQL
//! opampd token create --role viewer --name grafana
//! ```
//!
//! See the README for every setting (flag, `OPAMP_*` variable, TOML key).

#![forbid(unsafe_code)]

mod admin_tls;
mod serve;
mod settings;
mod token;

use clap::Parser as _;

use settings::{Cli, Command, LogFormat, Settings};

fn init_logging(settings: &Settings) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&settings.log_level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match settings.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::merge(&cli.common, &cli.serve) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("opampd: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    init_logging(&settings);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("opampd: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            None | Some(Command::Serve) => serve::run(settings).await,
            Some(Command::Token(cmd)) => token::run(settings, cmd).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("opampd: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
