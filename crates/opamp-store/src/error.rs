//! The error type of opamp-store.
//!
//! The variants say whose fault a failure is: the caller asked for something that does not
//! exist ([`Error::NotFound`]) or clashes with what is stored ([`Error::Conflict`]), the caller
//! passed a value the store refuses ([`Error::InvalidInput`]), the database on disk is newer
//! than this binary ([`Error::SchemaTooNew`]), or the database itself failed
//! ([`Error::Backend`]: IO, connection loss, corrupt rows).

use std::fmt;

/// The kinds of stored entities, named in [`Error::NotFound`] and [`Error::Conflict`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EntityKind {
    /// An agent, by instance uid.
    Agent,
    /// A config, by name.
    Config,
    /// A config version, as `name@version`.
    ConfigVersion,
    /// An assignment, by id.
    Assignment,
    /// A group, by name.
    Group,
    /// An API token, by id or name.
    Token,
}

impl EntityKind {
    /// The lowercase name used in messages and API error codes.
    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::Agent => "agent",
            EntityKind::Config => "config",
            EntityKind::ConfigVersion => "config version",
            EntityKind::Assignment => "assignment",
            EntityKind::Group => "group",
            EntityKind::Token => "token",
        }
    }
}

impl fmt::Display for EntityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The entity does not exist (the admin API answers 404).
    #[error("{kind} {id:?} not found")]
    NotFound {
        /// What was looked for.
        kind: EntityKind,
        /// The key it was looked for by.
        id: String,
    },
    /// The change clashes with stored state, e.g. a name already taken or a config still
    /// assigned (the admin API answers 409). Nothing was written.
    #[error("{kind} {id:?}: {reason}")]
    Conflict {
        /// The entity the clash is about.
        kind: EntityKind,
        /// Its key.
        id: String,
        /// What clashes, in words an operator understands.
        reason: String,
    },
    /// The caller passed a value the store refuses: an empty or overlong name, a malformed
    /// pagination cursor, a label key with control characters (the admin API answers 400).
    /// Nothing was written.
    #[error("invalid {what}: {reason}")]
    InvalidInput {
        /// Which input (`"config name"`, `"cursor"`, ...).
        what: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// The database was written by a newer opamp-store: this binary refuses to touch it
    /// rather than misread it. Upgrade the binary (schema changes are forward-only).
    #[error(
        "the database schema is version {found}, newer than the newest this binary knows ({supported}); \
         upgrade opampd or point it at another database"
    )]
    SchemaTooNew {
        /// The version recorded in the database's `schema_version` table.
        found: i64,
        /// The newest version this binary can apply.
        supported: i64,
    },
    /// The database failed: it could not be opened or reached, a statement failed, or a row
    /// held data this binary cannot read.
    #[error("store backend error: {message}")]
    Backend {
        /// What the store was doing and what went wrong.
        message: String,
        /// The driver's error, when there is one.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn not_found(kind: EntityKind, id: impl fmt::Display) -> Self {
        Error::NotFound {
            kind,
            id: id.to_string(),
        }
    }

    pub(crate) fn conflict(
        kind: EntityKind,
        id: impl fmt::Display,
        reason: impl Into<String>,
    ) -> Self {
        Error::Conflict {
            kind,
            id: id.to_string(),
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidInput {
            what,
            reason: reason.into(),
        }
    }

    pub(crate) fn backend(message: impl Into<String>) -> Self {
        Error::Backend {
            message: message.into(),
            source: None,
        }
    }

    /// A stored value that does not parse: the row was written by something else, or the
    /// file is damaged.
    pub(crate) fn corrupt(what: &str, reason: impl fmt::Display) -> Self {
        Error::backend(format!("stored {what} is unreadable: {reason}"))
    }

    /// True for [`Error::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    /// True for [`Error::Conflict`].
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Conflict { .. })
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        let message = match &e {
            sqlx::Error::Database(db) => format!("database error: {}", db.message()),
            sqlx::Error::PoolTimedOut => "timed out waiting for a database connection".to_owned(),
            sqlx::Error::PoolClosed => "the store is closed".to_owned(),
            sqlx::Error::Io(io) => format!("database IO error: {io}"),
            other => other.to_string(),
        };
        Error::Backend {
            message,
            source: Some(Box::new(e)),
        }
    }
}

/// True when `e` is a unique-constraint violation (SQLite extended codes 1555 / 2067,
/// PostgreSQL SQLSTATE 23505).
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db)
        if matches!(db.code().as_deref(), Some("1555" | "2067" | "23505")))
}

/// True when `e` is a foreign-key violation (SQLite 787, PostgreSQL 23503).
pub(crate) fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db)
        if matches!(db.code().as_deref(), Some("787" | "23503")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_entity_and_the_way_out() {
        let e = Error::not_found(EntityKind::Config, "web");
        assert_eq!(e.to_string(), "config \"web\" not found");
        assert!(e.is_not_found());
        let e = Error::SchemaTooNew {
            found: 9,
            supported: 1,
        };
        assert!(e.to_string().contains("upgrade opampd"), "{e}");
        let e = Error::conflict(EntityKind::Group, "edge", "still assigned");
        assert!(e.is_conflict());
        assert_eq!(e.to_string(), "group \"edge\": still assigned");
    }
}
