//! The command line: global options and every command, as clap derives. Parsing only:
//! what the commands do lives in `commands/`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The opampctl command line.
#[derive(Debug, Parser)]
#[command(
    name = "opampctl",
    version,
    about = "Operate an opampd fleet: agents, configs, versions, assignments, groups, labels.",
    long_about = "Operate an opampd fleet over its admin REST API: list and inspect agents, \
        create config versions from files, diff and roll them back, push them to agents by \
        selector, group or uid, manage groups and labels, restart agents.\n\n\
        The server is --url (OPAMP_URL, default http://127.0.0.1:4321); the bearer token is \
        --token (OPAMP_TOKEN), made with `opampd token create --role viewer|operator|admin \
        --name NAME`.\n\n\
        Exit codes: 0 ok, 1 the API refused or failed the request, 2 usage error, 3 opampd \
        unreachable.",
    after_help = "Agent uids may be shortened to any unique prefix or suffix of their hex \
        digits (tables show the last 12; --wide shows them whole)."
)]
pub struct Cli {
    /// Options every command takes.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// The opampd admin API (its base URL; `/api/v1/...` is appended).
    #[arg(
        long,
        env = "OPAMP_URL",
        default_value = "http://127.0.0.1:4321",
        global = true,
        value_name = "URL"
    )]
    pub url: String,
    /// A bearer token (`opampd token create --role R --name N` prints one).
    #[arg(
        long,
        env = "OPAMP_TOKEN",
        global = true,
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// Output format: human tables, or the API's JSON (pretty) or YAML.
    #[arg(
        short = 'o',
        long,
        value_enum,
        default_value_t = Output::Table,
        env = "OPAMP_OUTPUT",
        global = true
    )]
    pub output: Output,
    /// How long to wait for each request (`30s`, `500ms`, `2m`; a bare number is seconds).
    #[arg(
        long,
        default_value = "30s",
        value_parser = parse_duration,
        env = "OPAMP_TIMEOUT",
        global = true,
        value_name = "DURATION"
    )]
    pub timeout: Duration,
    /// Extra PEM CA certificates to trust for an https:// URL (besides the system's).
    #[arg(long, env = "OPAMP_CACERT", global = true, value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// Tables: show whole uids and hashes instead of their last digits.
    #[arg(long, global = true)]
    pub wide: bool,
    /// Colour diffs: auto (when stdout is a terminal and NO_COLOR is unset), always, never.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, global = true)]
    pub color: ColorChoice,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[non_exhaustive]
pub enum Output {
    /// Aligned columns for people.
    Table,
    /// The API's JSON, pretty-printed.
    Json,
    /// The API's JSON written as YAML.
    Yaml,
}

/// When to colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[non_exhaustive]
pub enum ColorChoice {
    /// When stdout is a terminal and `NO_COLOR` is unset.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// The commands.
#[derive(Debug, Subcommand)]
#[non_exhaustive]
pub enum Command {
    /// Agents: list, show, timeline, forget.
    #[command(subcommand)]
    Agents(AgentsCommand),
    /// Configs and their immutable versions: create, history, show, diff, rollback, push.
    #[command(subcommand)]
    Configs(ConfigsCommand),
    /// Assign a config to agents (the same as `configs push`).
    Assign(PushArgs),
    /// Assignments: which config goes to which selector, group or agent.
    #[command(subcommand)]
    Assignments(AssignmentsCommand),
    /// Groups: named selectors (changing them needs the admin role).
    #[command(subcommand)]
    Groups(GroupsCommand),
    /// An agent's operator labels (they win over its description attributes).
    #[command(subcommand)]
    Labels(LabelsCommand),
    /// Ask an agent to restart (it needs the AcceptsRestartCommand capability).
    Restart {
        /// The agent's instance uid (or a unique prefix or suffix of it).
        uid: String,
    },
    /// Fleet counts: by connection, transport, sync state and health.
    Summary,
    /// API tokens (admin role): list, create, revoke.
    #[command(subcommand)]
    Tokens(TokensCommand),
}

/// `opampctl agents ...`.
#[derive(Debug, Subcommand)]
#[non_exhaustive]
pub enum AgentsCommand {
    /// List agents (one page unless --all).
    #[command(visible_alias = "ls")]
    List(AgentsListArgs),
    /// One agent: description, labels, config status, health, effective config.
    Show {
        /// The agent's instance uid (or a unique prefix or suffix of it).
        uid: String,
        /// Show secret-looking values of the effective config (admin role).
        #[arg(long)]
        reveal: bool,
    },
    /// An agent's timeline: connections, configs applied or failed, commands.
    Events {
        /// The agent's instance uid (or a unique prefix or suffix of it).
        uid: String,
        /// How many entries (newest first).
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Forget an agent (it reappears when it connects again).
    Delete {
        /// The agent's instance uid (or a unique prefix or suffix of it).
        uid: String,
    },
}

/// `opampctl agents list` options.
#[derive(Debug, Args)]
pub struct AgentsListArgs {
    /// A label selector: `env=prod`, `tier!=db`, `region in (eu,us)`, `canary`, `!canary`,
    /// requirements separated by commas (all must hold).
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Only agents in this sync state: in_sync, pending, failed, drifted, unmanaged.
    #[arg(long, value_name = "STATE")]
    pub sync_state: Option<String>,
    /// Only connected agents.
    #[arg(long, conflicts_with = "disconnected")]
    pub connected: bool,
    /// Only disconnected agents.
    #[arg(long)]
    pub disconnected: bool,
    /// Only agents on this transport: ws or http.
    #[arg(long)]
    pub transport: Option<String>,
    /// Page size (the server's default is 100, its maximum 1000).
    #[arg(long)]
    pub limit: Option<u32>,
    /// Start after this cursor (the `next_cursor` of a previous page).
    #[arg(long, conflicts_with = "all")]
    pub cursor: Option<String>,
    /// Follow the cursors and list every matching agent.
    #[arg(long)]
    pub all: bool,
}

/// `opampctl configs ...`.
#[derive(Debug, Subcommand)]
#[non_exhaustive]
pub enum ConfigsCommand {
    /// List configs.
    #[command(visible_alias = "ls")]
    List,
    /// Create a config, or its next version when the name exists, from files.
    Create(CreateArgs),
    /// A config's versions, newest first.
    History {
        /// The config's name.
        name: String,
    },
    /// A config version with its files (the latest unless --version).
    Show {
        /// The config's name.
        name: String,
        /// The version.
        #[arg(long, value_name = "N")]
        version: Option<u64>,
        /// Print only this file's content, as is.
        #[arg(long, value_name = "NAME_IN_CONFIG")]
        file: Option<String>,
    },
    /// What changed between two versions: files, keys, and a unified diff.
    Diff {
        /// The config's name.
        name: String,
        /// The old version.
        from: u64,
        /// The new version (default: the latest).
        to: Option<u64>,
    },
    /// Restore an older version as a new version (history is never rewritten).
    Rollback {
        /// The config's name.
        name: String,
        /// The version to restore.
        version: u64,
        /// A note for the history (default: "rollback to version N").
        #[arg(short, long)]
        message: Option<String>,
    },
    /// Assign the config to agents by selector, group or uid (creates an assignment).
    Push(PushArgs),
    /// Delete a config and all its versions (refused while an assignment uses it).
    Delete {
        /// The config's name.
        name: String,
    },
}

/// `opampctl configs create` options.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The config's name (letters, digits, `.`, `_`, `-`).
    pub name: String,
    /// A file to include, as PATH or PATH:NAME_IN_CONFIG (default name: the file's base
    /// name). Repeat for several files.
    #[arg(short, long = "file", value_name = "PATH[:NAME]", required = true)]
    pub files: Vec<String>,
    /// The content type of every file (default: from the extension: .yaml/.yml text/yaml,
    /// .json application/json, anything else text/plain).
    #[arg(long, value_name = "MIME")]
    pub content_type: Option<String>,
    /// A note for the version history.
    #[arg(short, long)]
    pub message: Option<String>,
}

/// Where to push a config: exactly one of selector, group, agent.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("target").required(true).multiple(false)))]
pub struct PushArgs {
    /// The config's name.
    pub name: String,
    /// Agents matching this label selector.
    #[arg(short = 'l', long, group = "target")]
    pub selector: Option<String>,
    /// Agents in this group.
    #[arg(short, long, group = "target")]
    pub group: Option<String>,
    /// One agent (instance uid, or a unique prefix or suffix of it).
    #[arg(short, long, group = "target", value_name = "UID")]
    pub agent: Option<String>,
    /// Pin this version (default: always the latest, new versions included).
    #[arg(long, value_name = "N")]
    pub version: Option<u64>,
}

/// `opampctl assignments ...`.
#[derive(Debug, Subcommand)]
#[non_exhaustive]
pub enum AssignmentsCommand {
    /// List assignments.
    #[command(visible_alias = "ls")]
    List,
    /// One assignment.
    Show {
        /// Its id.
        id: i64,
    },
    /// Delete an assignment (its agents fall back to the next match, or become unmanaged).
    Delete {
        /// Its id.
        id: i64,
    },
}

/// `opampctl groups ...`.
#[derive(Debug, Subcommand)]
#[non_exhaustive]
pub enum GroupsCommand {
    /// List groups.
    #[command(visible_alias = "ls")]
    List,
    /// One group.
    Show {
        /// Its name.
        name: String,
    },
    /// Create a group.
    Create {
        /// Its name.
        name: String,
        /// Its label selector.
        #[arg(short = 'l', long)]
        selector: String,
        /// Free text.
        #[arg(short, long)]
        description: Option<String>,
    },
    /// Change a group's selector (and description).
    Update {
        /// Its name.
        name: String,
        /// The new label selector.
        #[arg(short = 'l', long)]
        selector: String,
        /// The new description (default: unchanged).
        #[arg(short, long)]
        description: Option<String>,
    },
    /// Delete a group (refused while an assignment targets it).
    Delete {
        /// Its name.
        name: String,
    },
}

/// `opampctl labels ...`.
#[derive(Debug, Subcommand)]
#[non_exhaustive]
pub enum LabelsCommand {
    /// Set operator labels: `labels set UID env=prod tier=web`.
    Set {
        /// The agent's instance uid (or a unique prefix or suffix of it).
        uid: String,
        /// `key=value` pairs.
        #[arg(required = true, value_name = "KEY=VALUE")]
        labels: Vec<String>,
    },
    /// Remove operator labels: `labels remove UID env tier`.
    #[command(visible_alias = "rm")]
    Remove {
        /// The agent's instance uid (or a unique prefix or suffix of it).
        uid: String,
        /// Label keys.
        #[arg(required = true, value_name = "KEY")]
        keys: Vec<String>,
    },
    /// An agent's labels: what selectors match, and which an operator set.
    List {
        /// The agent's instance uid (or a unique prefix or suffix of it).
        uid: String,
    },
}

/// `opampctl tokens ...`.
#[derive(Debug, Subcommand)]
#[non_exhaustive]
pub enum TokensCommand {
    /// List tokens (never their secrets).
    #[command(visible_alias = "ls")]
    List,
    /// Create a token and print its secret (shown once).
    Create {
        /// A name for people.
        name: String,
        /// admin, operator or viewer.
        #[arg(long)]
        role: String,
    },
    /// Revoke a token.
    Revoke {
        /// Its id (see `tokens list`).
        id: i64,
    },
}

/// Parses `30`, `30s`, `1.5s`, `500ms`, `2m`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 30s, 500ms or 2m"))?;
    let scale = match unit.trim() {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        _ => return Err(format!("{text:?}: the unit must be ms, s or m")),
    };
    let secs = value * scale;
    if !(secs.is_finite() && secs > 0.0 && secs <= 86_400.0) {
        return Err(format!("{text:?}: give a duration between 1ms and 24h"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_parse_with_and_without_units() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn push_needs_exactly_one_target() {
        assert!(Cli::try_parse_from(["opampctl", "configs", "push", "web"]).is_err());
        assert!(
            Cli::try_parse_from([
                "opampctl",
                "assign",
                "web",
                "--selector",
                "a=b",
                "--group",
                "g"
            ])
            .is_err()
        );
        assert!(Cli::try_parse_from(["opampctl", "assign", "web", "-l", "a=b"]).is_ok());
    }
}
