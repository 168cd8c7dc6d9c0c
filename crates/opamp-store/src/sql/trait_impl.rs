//! `Store` for `SqlStore`: each method boxes the matching inherent `*_impl` future.

use std::collections::BTreeMap;
use std::sync::Arc;

use opamp_proto::InstanceUid;
use sha2::{Digest, Sha256};
use sqlx::Connection as _;

use super::{Dialect, SqlStore};
use crate::changes::LeaseInner;
use crate::{
    Actor, AddedVersion, Agent, AgentEvent, AgentEventKind, AgentFilter, AgentUpdate, ApiToken,
    Assignment, AuditEntry, AuditFilter, BackendKind, Command, Config, ConfigVersion, Error, Group,
    LeaderLease, NewAssignment, NewConfigVersion, NewToken, Page, PageRequest, PendingCommand,
    Result, Store, StoreFuture, Subscription, Timestamp, TokenHash, Transport, UpsertOutcome,
    validate,
};

/// The advisory lock key for a leadership name: the first 8 bytes of a SHA-256.
fn lease_key(name: &str) -> i64 {
    let d = Sha256::digest(format!("opamp-lead:{name}").as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    i64::from_be_bytes(b)
}

impl SqlStore {
    async fn try_lead_impl(&self, name: String) -> Result<Option<LeaderLease>> {
        validate::name("leadership name", &name)?;
        match self.inner.dialect {
            Dialect::Sqlite => {
                let lock = {
                    let mut map = self
                        .inner
                        .local_leases
                        .lock()
                        .map_err(|_| Error::backend("lease table poisoned"))?;
                    Arc::clone(map.entry(name.clone()).or_default())
                };
                Ok(lock.try_lock_owned().ok().map(|g| LeaderLease {
                    name,
                    inner: LeaseInner::Local(g),
                }))
            }
            Dialect::Postgres => {
                let url =
                    self.inner.url.as_deref().ok_or_else(|| {
                        Error::backend("no PostgreSQL URL for a lease connection")
                    })?;
                // A dedicated connection: a session lock on a pooled one would outlive the
                // lease when the connection went back to the pool.
                let mut conn = sqlx::AnyConnection::connect(url).await?;
                let key = lease_key(&name);
                let got: bool = sqlx::Row::try_get(
                    &sqlx::query("SELECT pg_try_advisory_lock($1)")
                        .bind(key)
                        .fetch_one(&mut conn)
                        .await?,
                    0,
                )?;
                if got {
                    Ok(Some(LeaderLease {
                        name,
                        inner: LeaseInner::Postgres {
                            conn: Some(conn),
                            key,
                        },
                    }))
                } else {
                    let _ = conn.close().await;
                    Ok(None)
                }
            }
        }
    }

    async fn close_impl(&self) -> Result<()> {
        if let Some(h) = &self.inner.listener {
            h.abort();
        }
        self.inner.write.close().await;
        self.inner.read.close().await;
        Ok(())
    }
}

impl Store for SqlStore {
    fn backend(&self) -> BackendKind {
        self.kind()
    }

    fn upsert_agent(&self, update: AgentUpdate) -> StoreFuture<'_, UpsertOutcome> {
        Box::pin(self.upsert_agent_impl(update))
    }

    fn upsert_agents(&self, updates: Vec<AgentUpdate>) -> StoreFuture<'_, Vec<UpsertOutcome>> {
        Box::pin(self.upsert_agents_impl(updates))
    }

    fn set_connected(
        &self,
        uid: InstanceUid,
        transport: Transport,
        server_id: &str,
        at: Timestamp,
    ) -> StoreFuture<'_, ()> {
        Box::pin(self.set_connected_impl(uid, transport, server_id.to_owned(), at))
    }

    fn set_disconnected(&self, uid: InstanceUid, at: Timestamp) -> StoreFuture<'_, ()> {
        Box::pin(self.set_disconnected_impl(uid, at))
    }

    fn disconnect_server(&self, server_id: &str, at: Timestamp) -> StoreFuture<'_, u64> {
        Box::pin(self.disconnect_server_impl(server_id.to_owned(), at))
    }

    fn touch_last_seen(&self, seen: Vec<(InstanceUid, Timestamp)>) -> StoreFuture<'_, u64> {
        Box::pin(self.touch_last_seen_impl(seen))
    }

    fn get_agent(&self, uid: InstanceUid) -> StoreFuture<'_, Agent> {
        Box::pin(self.get_agent_impl(uid))
    }

    fn list_agents(&self, filter: AgentFilter, page: PageRequest) -> StoreFuture<'_, Page<Agent>> {
        Box::pin(self.list_agents_impl(filter, page))
    }

    fn count_agents(&self, filter: AgentFilter) -> StoreFuture<'_, u64> {
        Box::pin(self.count_agents_impl(filter))
    }

    fn delete_agent(&self, actor: &Actor, uid: InstanceUid) -> StoreFuture<'_, ()> {
        Box::pin(self.delete_agent_impl(actor.clone(), uid))
    }

    fn set_labels(
        &self,
        actor: &Actor,
        uid: InstanceUid,
        labels: BTreeMap<String, String>,
    ) -> StoreFuture<'_, BTreeMap<String, String>> {
        Box::pin(self.set_labels_impl(actor.clone(), uid, labels))
    }

    fn remove_labels(
        &self,
        actor: &Actor,
        uid: InstanceUid,
        keys: Vec<String>,
    ) -> StoreFuture<'_, BTreeMap<String, String>> {
        Box::pin(self.remove_labels_impl(actor.clone(), uid, keys))
    }

    fn create_config(
        &self,
        actor: &Actor,
        name: &str,
        description: &str,
    ) -> StoreFuture<'_, Config> {
        Box::pin(self.create_config_impl(actor.clone(), name.to_owned(), description.to_owned()))
    }

    fn get_config(&self, name: &str) -> StoreFuture<'_, Config> {
        Box::pin(self.get_config_impl(name.to_owned()))
    }

    fn list_configs(&self, page: PageRequest) -> StoreFuture<'_, Page<Config>> {
        Box::pin(self.list_configs_impl(page))
    }

    fn delete_config(&self, actor: &Actor, name: &str) -> StoreFuture<'_, ()> {
        Box::pin(self.delete_config_impl(actor.clone(), name.to_owned()))
    }

    fn add_config_version(
        &self,
        actor: &Actor,
        version: NewConfigVersion,
    ) -> StoreFuture<'_, AddedVersion> {
        Box::pin(self.add_config_version_impl(actor.clone(), version))
    }

    fn get_config_version(&self, name: &str, version: u64) -> StoreFuture<'_, ConfigVersion> {
        Box::pin(self.get_config_version_impl(name.to_owned(), version))
    }

    fn latest_config_version(&self, name: &str) -> StoreFuture<'_, ConfigVersion> {
        Box::pin(self.latest_config_version_impl(name.to_owned()))
    }

    fn list_config_versions(
        &self,
        name: &str,
        page: PageRequest,
    ) -> StoreFuture<'_, Page<ConfigVersion>> {
        Box::pin(self.list_config_versions_impl(name.to_owned(), page))
    }

    fn put_assignment(&self, actor: &Actor, new: NewAssignment) -> StoreFuture<'_, Assignment> {
        Box::pin(self.put_assignment_impl(actor.clone(), new))
    }

    fn get_assignment(&self, id: i64) -> StoreFuture<'_, Assignment> {
        Box::pin(self.get_assignment_impl(id))
    }

    fn list_assignments(&self) -> StoreFuture<'_, Vec<Assignment>> {
        Box::pin(self.list_assignments_impl())
    }

    fn delete_assignment(&self, actor: &Actor, id: i64) -> StoreFuture<'_, ()> {
        Box::pin(self.delete_assignment_impl(actor.clone(), id))
    }

    fn create_group(&self, actor: &Actor, group: Group) -> StoreFuture<'_, Group> {
        Box::pin(self.create_group_impl(actor.clone(), group))
    }

    fn update_group(&self, actor: &Actor, group: Group) -> StoreFuture<'_, Group> {
        Box::pin(self.update_group_impl(actor.clone(), group))
    }

    fn get_group(&self, name: &str) -> StoreFuture<'_, Group> {
        Box::pin(self.get_group_impl(name.to_owned()))
    }

    fn list_groups(&self) -> StoreFuture<'_, Vec<Group>> {
        Box::pin(self.list_groups_impl())
    }

    fn delete_group(&self, actor: &Actor, name: &str) -> StoreFuture<'_, ()> {
        Box::pin(self.delete_group_impl(actor.clone(), name.to_owned()))
    }

    fn create_token(&self, actor: &Actor, token: NewToken) -> StoreFuture<'_, ApiToken> {
        Box::pin(self.create_token_impl(actor.clone(), token))
    }

    fn verify_token(&self, hash: TokenHash) -> StoreFuture<'_, Option<ApiToken>> {
        Box::pin(self.verify_token_impl(hash))
    }

    fn revoke_token(&self, actor: &Actor, id: i64) -> StoreFuture<'_, ApiToken> {
        Box::pin(self.revoke_token_impl(actor.clone(), id))
    }

    fn list_tokens(&self) -> StoreFuture<'_, Vec<ApiToken>> {
        Box::pin(self.list_tokens_impl())
    }

    fn append_audit(
        &self,
        actor: &Actor,
        action: &str,
        target: &str,
        details: serde_json::Value,
    ) -> StoreFuture<'_, AuditEntry> {
        Box::pin(self.append_audit_impl(
            actor.clone(),
            action.to_owned(),
            target.to_owned(),
            details,
        ))
    }

    fn list_audit(
        &self,
        filter: AuditFilter,
        page: PageRequest,
    ) -> StoreFuture<'_, Page<AuditEntry>> {
        Box::pin(self.list_audit_impl(filter, page))
    }

    fn append_agent_event(
        &self,
        uid: InstanceUid,
        kind: AgentEventKind,
        at: Timestamp,
    ) -> StoreFuture<'_, AgentEvent> {
        Box::pin(self.append_agent_event_impl(uid, kind, at))
    }

    fn list_agent_events(
        &self,
        uid: InstanceUid,
        page: PageRequest,
    ) -> StoreFuture<'_, Page<AgentEvent>> {
        Box::pin(self.list_agent_events_impl(uid, page))
    }

    fn send_command(
        &self,
        actor: &Actor,
        uid: InstanceUid,
        command: Command,
    ) -> StoreFuture<'_, PendingCommand> {
        Box::pin(self.send_command_impl(actor.clone(), uid, command))
    }

    fn take_pending_commands(&self, uid: InstanceUid) -> StoreFuture<'_, Vec<PendingCommand>> {
        Box::pin(self.take_pending_commands_impl(uid))
    }

    fn subscribe(&self) -> Subscription {
        Subscription::new(self.inner.changes.subscribe())
    }

    fn try_lead(&self, name: &str) -> StoreFuture<'_, Option<LeaderLease>> {
        Box::pin(self.try_lead_impl(name.to_owned()))
    }

    fn close(&self) -> StoreFuture<'_, ()> {
        Box::pin(self.close_impl())
    }
}
