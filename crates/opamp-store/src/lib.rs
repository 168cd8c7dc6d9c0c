//! Fleet persistence for an OpAMP server (`opampd`): agents and what they last reported,
//! operator labels, configs with immutable hashed versions, assignments, groups, API tokens,
//! an audit log of every operator change, agent timelines and pending commands.
//!
//! - One object-safe trait, [`Store`]; opampd holds an `Arc<dyn Store>` picked at start-up.
//! - Two backends in [`SqlStore`]: SQLite (embedded default, one file `<data-dir>/opamp.db`,
//!   WAL) and PostgreSQL (several replicas; `LISTEN/NOTIFY` change events, advisory-lock
//!   leadership). Migrations are embedded and applied at open.
//! - Domain types with serde (JSON for the admin API); no wire (prost) types. The fleet
//!   layer converts `AgentToServer` into an [`AgentUpdate`] in one place.
//! - Every operator change takes an [`Actor`] and writes its audit row in the same
//!   transaction; committed changes that replicas must act on are announced as
//!   [`ChangeEvent`]s ([`Store::subscribe`]).
//! - [`LastSeenBatcher`]: heartbeats that change nothing are written in batches, one
//!   statement per batch.
//!
//! ```
//! use std::sync::Arc;
//! use opamp_config::{ConfigFile, ConfigMap};
//! use opamp_proto::InstanceUid;
//! use opamp_store::{
//!     Actor, AgentUpdate, AssignmentTarget, NewAssignment, NewConfigVersion, SqlStore, Store,
//!     StoreOptions, Timestamp,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), opamp_store::Error> {
//! let dir = tempfile::tempdir().unwrap();
//! let store: Arc<dyn Store> =
//!     Arc::new(SqlStore::open(dir.path().to_str().unwrap(), StoreOptions::default()).await?);
//!
//! // The OpAMP side reports an agent.
//! let uid = InstanceUid::new_v7();
//! let mut update = AgentUpdate::new(uid, Timestamp::now());
//! update.description = Some(Default::default());
//! store.upsert_agent(update).await?;
//!
//! // An operator adds a config version and assigns it to that agent.
//! let alice = Actor::token("alice");
//! let files = ConfigMap::single("collectd.conf", ConfigFile::new("text/plain", "LoadPlugin cpu\n"));
//! let v1 = store
//!     .add_config_version(&alice, NewConfigVersion {
//!         config: "collectd".into(),
//!         config_map: files,
//!         message: "first".into(),
//!         rollback_of: None,
//!     })
//!     .await?;
//! assert_eq!(v1.version.version, 1);
//! store
//!     .put_assignment(&alice, NewAssignment {
//!         config: "collectd".into(),
//!         version: None,
//!         target: AssignmentTarget::Agent(uid),
//!     })
//!     .await?;
//! assert_eq!(store.list_assignments().await?.len(), 1);
//! store.close().await?;
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod agent;
mod audit;
mod batcher;
mod changes;
mod config;
mod error;
mod event;
mod fleet;
mod page;
mod sql;
mod store;
#[cfg(all(unix, feature = "testing"))]
pub mod testing;
mod time;
mod token;
pub mod validate;

pub use agent::{
    Agent, AgentDescription, AgentFilter, AgentUpdate, Attributes, RemoteConfigState,
    RemoteConfigStatus, Transport, UpsertOutcome, scalar_label,
};
pub use audit::{Actor, ActorKind, AuditEntry, AuditFilter, actions};
pub use batcher::{BatcherConfig, BatcherStats, LastSeenBatcher, LastSeenSink};
pub use changes::{LeaderLease, Subscription};
pub use config::{AddedVersion, Config, ConfigVersion, NewConfigVersion};
pub use error::{EntityKind, Error, Result};
pub use event::{AgentEvent, AgentEventKind, ChangeEvent, Command, PendingCommand};
pub use fleet::{Assignment, AssignmentTarget, Group, NewAssignment};
pub use page::{DEFAULT_PAGE, MAX_PAGE, Page, PageRequest};
pub use sql::{SQLITE_FILE_NAME, SqlStore, StoreOptions};
pub use store::{BackendKind, Store, StoreFuture};
pub use time::{ParseTimestampError, Timestamp};
pub use token::{ApiToken, NewToken, Role, TokenHash, generate_secret};

/// Opens the store named by `location` (see [`SqlStore::open`]) as an `Arc<dyn Store>`.
pub async fn open(location: &str, options: StoreOptions) -> Result<std::sync::Arc<dyn Store>> {
    Ok(std::sync::Arc::new(
        SqlStore::open(location, options).await?,
    ))
}
