//! What each command does: map it onto the admin API, print the answer. One module per
//! resource; this one dispatches.

use crate::cli::{Cli, Command};
use crate::client::Api;
use crate::error::Error;
use crate::output::Printer;

mod agents;
mod configs;
mod fleet;

/// Runs one parsed command line.
pub(crate) async fn run(cli: Cli) -> Result<(), Error> {
    let api = Api::new(&cli.global)?;
    let p = Printer::new(&cli.global);
    match cli.command {
        Command::Agents(cmd) => agents::run(&api, &p, cmd).await,
        Command::Configs(cmd) => configs::run(&api, &p, cmd).await,
        Command::Assign(args) => configs::push(&api, &p, args).await,
        Command::Assignments(cmd) => fleet::assignments(&api, &p, cmd).await,
        Command::Groups(cmd) => fleet::groups(&api, &p, cmd).await,
        Command::Labels(cmd) => fleet::labels(&api, &p, cmd).await,
        Command::Restart { uid } => fleet::restart(&api, &p, &uid).await,
        Command::Summary => fleet::summary(&api, &p).await,
        Command::Tokens(cmd) => fleet::tokens(&api, &p, cmd).await,
    }
}
