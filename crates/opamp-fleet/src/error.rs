//! The error type of opamp-fleet.
//!
//! Operator input that is refused ([`Error::InvalidSelector`], [`Error::InvalidConfig`],
//! [`Error::InvalidInput`], [`Error::NotFound`], [`Error::Conflict`]) is kept apart from
//! failures of the store ([`Error::Store`], which also carries the store's own input
//! checks) and of the OpAMP server ([`Error::Server`]).

use crate::selector::SelectorError;

/// What can go wrong in the fleet layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A selector (in a query, an assignment or a group) does not parse.
    #[error(transparent)]
    InvalidSelector(#[from] SelectorError),
    /// Config files that do not parse in the format their content type declares. Nothing
    /// was written.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    InvalidConfig(Vec<opamp_config::Error>),
    /// Other operator input the fleet refuses.
    #[error("invalid {what}: {reason}")]
    InvalidInput {
        /// Which input.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// Something the request names does not exist.
    #[error("{what} {id:?} not found")]
    NotFound {
        /// What kind of thing.
        what: &'static str,
        /// Its key.
        id: String,
    },
    /// The request clashes with the state of the fleet (e.g. restarting an agent that
    /// cannot be restarted).
    #[error("{0}")]
    Conflict(String),
    /// The store failed or refused the change.
    #[error(transparent)]
    Store(#[from] opamp_store::Error),
    /// The OpAMP server failed.
    #[error(transparent)]
    Server(#[from] opamp_server::Error),
}
