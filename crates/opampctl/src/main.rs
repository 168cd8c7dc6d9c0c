//! `opampctl`: see the crate docs and README for the commands.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    // clap prints its own usage errors and exits with 2 (and 0 for --help/--version).
    let cli = opampctl::Cli::parse();
    match opampctl::run(cli) {
        Ok(()) => ExitCode::from(opampctl::EXIT_OK),
        Err(e) => {
            opampctl::report(&e);
            ExitCode::from(e.exit_code())
        }
    }
}
