//! `opampctl`: the operators' command line over the opampd admin REST API.
//!
//! ```text
//! export OPAMP_URL=http://127.0.0.1:4321 OPAMP_TOKEN=opamp_...
//! opampctl agents list --selector 'env=prod' --all
//! opampctl configs create collector --file otel.yaml --message "add the OTLP receiver"
//! opampctl configs diff collector 1 2
//! opampctl assign collector --selector 'service.name=checkout'
//! ```
//!
//! The binary is the product; this library is its inside, published so that the pieces can
//! be tested and reused: the command line ([`Cli`]), one [`run`] that executes it against a
//! server, the [`Error`] type with its exit codes, the aligned [`Table`] printer and the
//! content-type guess for config files ([`guess_content_type`]).
//!
//! Every command maps onto one or a few admin API requests. Human tables are the default
//! output; `-o json` prints the API's JSON as it came (pretty), `-o yaml` the same as YAML.
//! Exit codes: 0 ok, 1 the API refused or failed the request, 2 usage error, 3 opampd
//! unreachable.
//!
//! ```
//! use clap::Parser as _;
//! use opampctl::{Cli, Error, cli::Command};
//!
//! let cli = Cli::try_parse_from([
//!     "opampctl", "--url", "http://127.0.0.1:9", "--timeout", "2s", "summary",
//! ])
//! .unwrap();
//! assert!(matches!(cli.command, Command::Summary));
//!
//! // Nothing listens on port 9: a connection error, exit code 3.
//! let err = opampctl::run(cli).unwrap_err();
//! assert!(matches!(err, Error::Unreachable { .. } | Error::Timeout { .. }));
//! assert_eq!(err.exit_code(), 3);
//! assert!(err.to_string().starts_with("cannot reach opampd at http://127.0.0.1:9")
//!     || err.to_string().contains("did not answer"));
//! ```

#![forbid(unsafe_code)]

pub mod cli;
mod client;
mod commands;
mod error;
mod files;
mod output;

pub use cli::Cli;
pub use error::{EXIT_API, EXIT_CONNECTION, EXIT_OK, EXIT_USAGE, Error};
pub use files::guess_content_type;
pub use output::Table;

/// Runs one command line against the server it names, printing to stdout (results) and
/// stderr (notes); returns the error to report, if any.
pub fn run(cli: Cli) -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    runtime.block_on(commands::run(cli))
}

/// Writes `error: ...` (and a `hint: ...` line where there is one) to stderr.
pub fn report(error: &Error) {
    eprintln!("error: {error}");
    if let Some(hint) = error.hint() {
        eprintln!("hint: {hint}");
    }
}
