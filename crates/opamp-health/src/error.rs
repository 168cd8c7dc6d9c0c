//! The crate's one error type. Every variant is local misuse or a bad local configuration:
//! this crate never talks to a peer and never does IO.

use std::time::Duration;

/// What can go wrong when describing health checks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A check has an empty name (names key the `component_health_map`, HLTH-6).
    #[error("a health check has an empty name")]
    EmptyName,
    /// Two checks share a name; their entries in the `component_health_map` would collide.
    #[error("health check {0:?} is defined more than once")]
    DuplicateName(String),
    /// A check's interval is zero.
    #[error("health check {check:?}: interval must be greater than zero")]
    ZeroInterval {
        /// The check's name.
        check: String,
    },
    /// A check's timeout is zero or longer than its interval.
    #[error(
        "health check {check:?}: timeout {timeout:?} must be greater than zero and at most the interval {interval:?}"
    )]
    BadTimeout {
        /// The check's name.
        check: String,
        /// The configured timeout.
        timeout: Duration,
        /// The configured interval.
        interval: Duration,
    },
    /// A failure or recovery threshold is zero.
    #[error("health check {check:?}: {which} must be at least 1")]
    ZeroThreshold {
        /// The check's name.
        check: String,
        /// `"failure_threshold"` or `"recovery_threshold"`.
        which: &'static str,
    },
    /// An HTTP check's URL is not an `http://` or `https://` URL with a host.
    #[error("health check {check:?}: invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The check's name.
        check: String,
        /// The URL as configured.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A TCP check's address is not `host:port`.
    #[error("health check {check:?}: invalid address {address:?}: expected host:port")]
    InvalidAddress {
        /// The check's name.
        check: String,
        /// The address as configured.
        address: String,
    },
    /// A command check has an empty command.
    #[error("health check {check:?}: the command is empty")]
    EmptyCommand {
        /// The check's name.
        check: String,
    },
    /// An HTTP check expects a status code outside 100..=599.
    #[error("health check {check:?}: expected status {status} is not an HTTP status code")]
    InvalidStatus {
        /// The check's name.
        check: String,
        /// The configured status.
        status: u16,
    },
    /// A flapping policy with a zero window or zero allowed changes.
    #[error("flap policy: {0}")]
    InvalidFlapPolicy(&'static str),
    /// A duration string that does not parse (see [`crate::duration::parse`]).
    #[error("invalid duration {input:?}: {reason}")]
    InvalidDuration {
        /// The text as given.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}
