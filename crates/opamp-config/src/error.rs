//! The error type of opamp-config.

use crate::{ConfigHash, restrictions::Violations, state::ConfigState};

/// What can go wrong with configurations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file's body does not parse in the format its content type or name declares.
    #[error("file {file:?} is not valid {format}: {reason}")]
    Parse {
        /// The file name (the config map key).
        file: String,
        /// "YAML" or "JSON".
        format: &'static str,
        /// The parser's message, with line and column where known.
        reason: String,
    },
    /// A config hash string is not 64 hex digits.
    #[error("invalid config hash {0:?}: expected 64 hex digits")]
    InvalidHash(String),
    /// A remote config violates local restrictions (RCFG-12, SEC-5).
    #[error("config refused by local restrictions: {0}")]
    Restricted(Violations),
    /// An event that the config state machine does not allow in its current state.
    #[error("config state machine: {event} is not allowed in state {state:?}")]
    IllegalTransition {
        /// The state the machine was in.
        state: ConfigState,
        /// The event that was refused.
        event: String,
    },
    /// A hash that does not match the configuration being applied.
    #[error("config {got} does not match the pending config {pending}")]
    HashMismatch {
        /// The hash of the pending (offered) configuration.
        pending: ConfigHash,
        /// The hash given with the event.
        got: ConfigHash,
    },
    /// A version number the history does not hold (never created, or evicted).
    #[error("config version {0} is not in the history")]
    UnknownVersion(u64),
}
