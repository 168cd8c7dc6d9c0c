//! The `Store` trait: everything opampd persists, behind one object-safe async interface.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use opamp_proto::InstanceUid;

use crate::{
    Actor, AddedVersion, Agent, AgentEvent, AgentEventKind, AgentFilter, AgentUpdate, ApiToken,
    Assignment, AuditEntry, AuditFilter, Command, Config, ConfigVersion, Group, NewAssignment,
    NewConfigVersion, NewToken, Page, PageRequest, PendingCommand, Result, Subscription, Timestamp,
    TokenHash, Transport, UpsertOutcome,
};

/// The future every [`Store`] method returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// Which database a store writes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackendKind {
    /// An embedded SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// Fleet persistence: everything opampd keeps across restarts, shared by its replicas.
///
/// Methods return boxed futures ([`StoreFuture`]) rather than being `async fn`, so that the
/// trait is object safe: opampd holds an `Arc<dyn Store>` chosen at start-up (SQLite or
/// PostgreSQL) and the fleet layer and the admin API never name a backend. The one boxing
/// per call is noise next to a database round trip.
///
/// Conventions:
/// - `get_*` returns [`Error::NotFound`](crate::Error::NotFound) for a missing entity.
/// - Every method that an operator triggers takes an [`Actor`] and writes an audit row in the
///   same transaction as the change: both are committed, or neither.
/// - Methods fed by agents (status, connect, last-seen, timeline) take the time of the event;
///   operator changes are stamped with the store's clock.
/// - A committed change that other replicas must act on is announced as a
///   [`ChangeEvent`](crate::ChangeEvent) to every [`subscribe`](Store::subscribe)r.
pub trait Store: Send + Sync + 'static {
    /// Which backend this is.
    fn backend(&self) -> BackendKind;

    // ---- agents (fed by the OpAMP side) ----

    /// Creates the agent or writes only the sub-states that are `Some` in `update`, and moves
    /// `last_seen` forward. A remote config status that changes to APPLIED or FAILED also
    /// appends a timeline event, in the same transaction.
    fn upsert_agent(&self, update: AgentUpdate) -> StoreFuture<'_, UpsertOutcome>;

    /// [`upsert_agent`](Store::upsert_agent) for many agents in ONE transaction (for a
    /// write-behind of status reports: far cheaper per agent than one call each). All or
    /// nothing; outcomes in input order.
    fn upsert_agents(&self, updates: Vec<AgentUpdate>) -> StoreFuture<'_, Vec<UpsertOutcome>>;

    /// Marks the agent connected through `server_id` (a replica id) over `transport` and
    /// appends a `connected` event. Creates a bare agent row for an unknown uid.
    fn set_connected(
        &self,
        uid: InstanceUid,
        transport: Transport,
        server_id: &str,
        at: Timestamp,
    ) -> StoreFuture<'_, ()>;

    /// Marks the agent disconnected and appends a `disconnected` event. Unknown uids and
    /// agents already disconnected are left alone.
    fn set_disconnected(&self, uid: InstanceUid, at: Timestamp) -> StoreFuture<'_, ()>;

    /// Marks every agent connected through `server_id` disconnected (call at start-up: a
    /// replica that was killed never said goodbye). Returns how many rows changed.
    fn disconnect_server(&self, server_id: &str, at: Timestamp) -> StoreFuture<'_, u64>;

    /// Moves `last_seen` forward for many agents in one statement (never backwards; unknown
    /// uids are ignored). Returns the number of agents updated. Normally called by
    /// [`crate::LastSeenBatcher`], not per heartbeat.
    fn touch_last_seen(&self, seen: Vec<(InstanceUid, Timestamp)>) -> StoreFuture<'_, u64>;

    /// One agent, with its labels and effective config.
    fn get_agent(&self, uid: InstanceUid) -> StoreFuture<'_, Agent>;

    /// Agents matching `filter`, ordered by instance uid.
    fn list_agents(&self, filter: AgentFilter, page: PageRequest) -> StoreFuture<'_, Page<Agent>>;

    /// How many agents match `filter`.
    fn count_agents(&self, filter: AgentFilter) -> StoreFuture<'_, u64>;

    /// Deletes an agent with its labels, timeline, pending commands and agent-targeted
    /// assignments.
    fn delete_agent(&self, actor: &Actor, uid: InstanceUid) -> StoreFuture<'_, ()>;

    // ---- labels (operator) ----

    /// Sets (adds or overwrites) operator labels on an agent; other labels stay.
    fn set_labels(
        &self,
        actor: &Actor,
        uid: InstanceUid,
        labels: BTreeMap<String, String>,
    ) -> StoreFuture<'_, BTreeMap<String, String>>;

    /// Removes operator labels by key (missing keys are ignored). Returns the labels left.
    fn remove_labels(
        &self,
        actor: &Actor,
        uid: InstanceUid,
        keys: Vec<String>,
    ) -> StoreFuture<'_, BTreeMap<String, String>>;

    // ---- configs ----

    /// Creates an empty config (no version yet). [`Error::Conflict`](crate::Error) if the
    /// name is taken.
    fn create_config(
        &self,
        actor: &Actor,
        name: &str,
        description: &str,
    ) -> StoreFuture<'_, Config>;

    /// One config.
    fn get_config(&self, name: &str) -> StoreFuture<'_, Config>;

    /// Configs by name.
    fn list_configs(&self, page: PageRequest) -> StoreFuture<'_, Page<Config>>;

    /// Deletes a config and its versions. [`Error::Conflict`](crate::Error) while an
    /// assignment uses it.
    fn delete_config(&self, actor: &Actor, name: &str) -> StoreFuture<'_, ()>;

    /// Adds the next version (creating the config if needed). When the files equal the
    /// latest version's, nothing is written and the latest version is returned with
    /// `created: false`.
    fn add_config_version(
        &self,
        actor: &Actor,
        version: NewConfigVersion,
    ) -> StoreFuture<'_, AddedVersion>;

    /// One version.
    fn get_config_version(&self, name: &str, version: u64) -> StoreFuture<'_, ConfigVersion>;

    /// The newest version. [`Error::NotFound`](crate::Error) for a config without versions.
    fn latest_config_version(&self, name: &str) -> StoreFuture<'_, ConfigVersion>;

    /// Versions of a config, newest first.
    fn list_config_versions(
        &self,
        name: &str,
        page: PageRequest,
    ) -> StoreFuture<'_, Page<ConfigVersion>>;

    // ---- assignments ----

    /// Creates the assignment for `new.target`, or replaces the one that target has (its id
    /// stays).
    fn put_assignment(&self, actor: &Actor, new: NewAssignment) -> StoreFuture<'_, Assignment>;

    /// One assignment.
    fn get_assignment(&self, id: i64) -> StoreFuture<'_, Assignment>;

    /// All assignments, by id (there are few: one per target).
    fn list_assignments(&self) -> StoreFuture<'_, Vec<Assignment>>;

    /// Deletes an assignment.
    fn delete_assignment(&self, actor: &Actor, id: i64) -> StoreFuture<'_, ()>;

    // ---- groups ----

    /// Creates a group. [`Error::Conflict`](crate::Error) if the name is taken.
    fn create_group(&self, actor: &Actor, group: Group) -> StoreFuture<'_, Group>;

    /// Changes a group's selector and description.
    fn update_group(&self, actor: &Actor, group: Group) -> StoreFuture<'_, Group>;

    /// One group.
    fn get_group(&self, name: &str) -> StoreFuture<'_, Group>;

    /// All groups, by name.
    fn list_groups(&self) -> StoreFuture<'_, Vec<Group>>;

    /// Deletes a group. [`Error::Conflict`](crate::Error) while an assignment targets it.
    fn delete_group(&self, actor: &Actor, name: &str) -> StoreFuture<'_, ()>;

    // ---- tokens ----

    /// Stores a new token (its hash only).
    fn create_token(&self, actor: &Actor, token: NewToken) -> StoreFuture<'_, ApiToken>;

    /// The token with this hash, unless unknown or revoked; records the use.
    fn verify_token(&self, hash: TokenHash) -> StoreFuture<'_, Option<ApiToken>>;

    /// Revokes a token (idempotent).
    fn revoke_token(&self, actor: &Actor, id: i64) -> StoreFuture<'_, ApiToken>;

    /// All tokens, revoked ones included, by id.
    fn list_tokens(&self) -> StoreFuture<'_, Vec<ApiToken>>;

    // ---- audit ----

    /// Appends an audit row for an operator action that changes no stored row (e.g. a
    /// rollout decision). Store methods that take an [`Actor`] write their own rows.
    fn append_audit(
        &self,
        actor: &Actor,
        action: &str,
        target: &str,
        details: serde_json::Value,
    ) -> StoreFuture<'_, AuditEntry>;

    /// Audit rows, newest first.
    fn list_audit(
        &self,
        filter: AuditFilter,
        page: PageRequest,
    ) -> StoreFuture<'_, Page<AuditEntry>>;

    // ---- agent timeline and commands ----

    /// Appends a timeline event (older events beyond the per-agent bound are dropped).
    fn append_agent_event(
        &self,
        uid: InstanceUid,
        kind: AgentEventKind,
        at: Timestamp,
    ) -> StoreFuture<'_, AgentEvent>;

    /// An agent's timeline, newest first.
    fn list_agent_events(
        &self,
        uid: InstanceUid,
        page: PageRequest,
    ) -> StoreFuture<'_, Page<AgentEvent>>;

    /// Queues a command for an agent, appends a `command_sent` event and an audit row, and
    /// announces [`ChangeEvent::CommandQueued`](crate::ChangeEvent).
    fn send_command(
        &self,
        actor: &Actor,
        uid: InstanceUid,
        command: Command,
    ) -> StoreFuture<'_, PendingCommand>;

    /// Removes and returns the agent's pending commands, oldest first. Two replicas racing
    /// for the same agent never both get a command.
    fn take_pending_commands(&self, uid: InstanceUid) -> StoreFuture<'_, Vec<PendingCommand>>;

    // ---- change events and leadership ----

    /// A new subscription to committed changes (from this and, with PostgreSQL, every other
    /// replica).
    fn subscribe(&self) -> Subscription;

    /// Tries to become the leader for `name` (e.g. `"rollouts"`): `Some(lease)` while this
    /// process holds it. With PostgreSQL the lease is a session advisory lock, released when
    /// the lease is dropped or its connection dies; with SQLite it is an in-process lock.
    fn try_lead(&self, name: &str) -> StoreFuture<'_, Option<crate::LeaderLease>>;

    /// Waits for in-flight work and closes connections. Later calls fail with
    /// [`Error::Backend`](crate::Error).
    fn close(&self) -> StoreFuture<'_, ()>;
}
