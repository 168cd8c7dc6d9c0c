//! The audit log, agent timelines and pending commands.

use opamp_proto::InstanceUid;
use sqlx::any::AnyRow;

use super::{Sql, SqlStore, Tx, col, json};
use crate::error::is_foreign_key_violation;
use crate::{
    Actor, AgentEvent, AgentEventKind, AuditEntry, AuditFilter, ChangeEvent, Command, EntityKind,
    Error, Page, PageRequest, PendingCommand, Result, Timestamp, actions, validate,
};

fn id_cursor(page: &PageRequest) -> Result<Option<i64>> {
    page.cursor
        .as_deref()
        .map(|c| {
            c.parse::<i64>().map_err(|_| {
                Error::invalid("cursor", format!("{c:?} is not a cursor of this list"))
            })
        })
        .transpose()
}

fn event_from_row(row: &AnyRow) -> Result<AgentEvent> {
    Ok(AgentEvent {
        id: col(row, "id")?,
        instance_uid: col::<String>(row, "uid")?
            .parse()
            .map_err(|e| Error::corrupt("instance uid", e))?,
        at: Timestamp(col(row, "at")?),
        kind: json("agent event", &col::<String>(row, "details")?)?,
    })
}

fn command_from_row(uid: InstanceUid, row: &AnyRow) -> Result<PendingCommand> {
    let command: String = col(row, "command")?;
    Ok(PendingCommand {
        id: col(row, "id")?,
        instance_uid: uid,
        command: Command::parse(&command).ok_or_else(|| Error::corrupt("command", &command))?,
        created_at: Timestamp(col(row, "created_at")?),
        author: col(row, "author")?,
    })
}

impl SqlStore {
    pub(super) async fn append_audit_impl(
        &self,
        actor: Actor,
        action: String,
        target: String,
        details: serde_json::Value,
    ) -> Result<AuditEntry> {
        validate::text("audit action", &action, 256)?;
        validate::text("audit target", &target, 1024)?;
        let mut tx = self.begin().await?;
        let entry = self
            .audit(&mut tx, &actor, &action, &target, details)
            .await?;
        self.commit(tx).await?;
        Ok(entry)
    }

    pub(super) async fn list_audit_impl(
        &self,
        filter: AuditFilter,
        page: PageRequest,
    ) -> Result<Page<AuditEntry>> {
        let limit = page.effective_limit();
        let mut sql =
            Sql::new("SELECT id, at, actor, action, target, details FROM audit_log WHERE 1 = 1");
        if let Some(before) = id_cursor(&page)? {
            sql.push(" AND id < ").bind(before);
        }
        if let Some(t) = &filter.target {
            sql.push(" AND target = ").bind(t.as_str());
        }
        if let Some(a) = &filter.action {
            sql.push(" AND action = ").bind(a.as_str());
        }
        sql.push(" ORDER BY id DESC LIMIT ")
            .bind(i64::from(limit) + 1);
        let rows = sql.query().fetch_all(&self.inner.read).await?;
        let items = rows
            .iter()
            .map(|r| {
                Ok(AuditEntry {
                    id: col(r, "id")?,
                    at: Timestamp(col(r, "at")?),
                    actor: col(r, "actor")?,
                    action: col(r, "action")?,
                    target: col(r, "target")?,
                    details: json("audit details", &col::<String>(r, "details")?)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::from_rows(items, limit, |e| e.id.to_string()))
    }

    /// Appends a timeline event inside `tx` and drops the agent's events beyond the bound.
    pub(super) async fn append_event_tx(
        &self,
        tx: &mut Tx,
        uid: InstanceUid,
        kind: &AgentEventKind,
        at: Timestamp,
    ) -> Result<AgentEvent> {
        let key = uid.to_string();
        let details = serde_json::to_string(kind)
            .map_err(|e| Error::invalid("agent event", e.to_string()))?;
        let row = sqlx::query(
            "INSERT INTO agent_events (uid, at, kind, details) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(key.as_str())
        .bind(at.0)
        .bind(kind.name())
        .bind(details)
        .fetch_one(tx.conn())
        .await
        .map_err(|e| {
            if is_foreign_key_violation(&e) {
                Error::not_found(EntityKind::Agent, uid)
            } else {
                e.into()
            }
        })?;
        let id: i64 = col(&row, "id")?;
        sqlx::query(
            "DELETE FROM agent_events WHERE uid = $1 AND id <= \
             (SELECT id FROM agent_events WHERE uid = $1 ORDER BY id DESC LIMIT 1 OFFSET $2)",
        )
        .bind(key.as_str())
        .bind(i64::from(self.inner.opts.events_per_agent.max(1)))
        .execute(tx.conn())
        .await?;
        Ok(AgentEvent {
            id,
            instance_uid: uid,
            at,
            kind: kind.clone(),
        })
    }

    pub(super) async fn append_agent_event_impl(
        &self,
        uid: InstanceUid,
        kind: AgentEventKind,
        at: Timestamp,
    ) -> Result<AgentEvent> {
        let mut tx = self.begin().await?;
        let e = self.append_event_tx(&mut tx, uid, &kind, at).await?;
        self.commit(tx).await?;
        Ok(e)
    }

    pub(super) async fn list_agent_events_impl(
        &self,
        uid: InstanceUid,
        page: PageRequest,
    ) -> Result<Page<AgentEvent>> {
        let limit = page.effective_limit();
        let mut sql = Sql::new("SELECT id, uid, at, details FROM agent_events WHERE uid = ");
        sql.bind(uid.to_string());
        if let Some(before) = id_cursor(&page)? {
            sql.push(" AND id < ").bind(before);
        }
        sql.push(" ORDER BY id DESC LIMIT ")
            .bind(i64::from(limit) + 1);
        let rows = sql.query().fetch_all(&self.inner.read).await?;
        if rows.is_empty() && page.cursor.is_none() {
            // An empty timeline of an unknown agent is a 404, not an empty list.
            self.get_agent_exists(uid).await?;
        }
        let items = rows
            .iter()
            .map(event_from_row)
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::from_rows(items, limit, |e| e.id.to_string()))
    }

    async fn get_agent_exists(&self, uid: InstanceUid) -> Result<()> {
        sqlx::query("SELECT 1 FROM agents WHERE uid = $1")
            .bind(uid.to_string())
            .fetch_optional(&self.inner.read)
            .await?
            .map(|_| ())
            .ok_or_else(|| Error::not_found(EntityKind::Agent, uid))
    }

    pub(super) async fn send_command_impl(
        &self,
        actor: Actor,
        uid: InstanceUid,
        command: Command,
    ) -> Result<PendingCommand> {
        let key = uid.to_string();
        let now = self.now();
        let mut tx = self.begin().await?;
        self.require_agent(&mut tx, uid).await?;
        // One pending command of a kind is enough: restarting twice is not what anyone means.
        let existing = sqlx::query(
            "SELECT id, command, created_at, author FROM pending_commands WHERE uid = $1 AND command = $2",
        )
        .bind(key.as_str())
        .bind(command.as_str())
        .fetch_optional(tx.conn())
        .await?;
        let pending = match existing {
            Some(row) => command_from_row(uid, &row)?,
            None => {
                let author = actor.to_string();
                let row = sqlx::query(
                    "INSERT INTO pending_commands (uid, command, created_at, author) \
                     VALUES ($1, $2, $3, $4) RETURNING id",
                )
                .bind(key.as_str())
                .bind(command.as_str())
                .bind(now.0)
                .bind(author.as_str())
                .fetch_one(tx.conn())
                .await?;
                PendingCommand {
                    id: col(&row, "id")?,
                    instance_uid: uid,
                    command,
                    created_at: now,
                    author,
                }
            }
        };
        self.append_event_tx(&mut tx, uid, &AgentEventKind::CommandSent { command }, now)
            .await?;
        self.audit(
            &mut tx,
            &actor,
            actions::AGENT_COMMAND,
            &format!("agent/{uid}"),
            serde_json::json!({ "command": command, "pending_id": pending.id }),
        )
        .await?;
        tx.announce(ChangeEvent::CommandQueued {
            instance_uid: uid,
            command,
        });
        self.commit(tx).await?;
        Ok(pending)
    }

    pub(super) async fn take_pending_commands_impl(
        &self,
        uid: InstanceUid,
    ) -> Result<Vec<PendingCommand>> {
        // Called on every poll: look on a reader first, so that the common case (nothing
        // pending) never takes the write lock.
        let any = sqlx::query("SELECT 1 FROM pending_commands WHERE uid = $1 LIMIT 1")
            .bind(uid.to_string())
            .fetch_optional(&self.inner.read)
            .await?;
        if any.is_none() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "DELETE FROM pending_commands WHERE uid = $1 RETURNING id, command, created_at, author",
        )
        .bind(uid.to_string())
        .fetch_all(&self.inner.write)
        .await?;
        let mut out = rows
            .iter()
            .map(|r| command_from_row(uid, r))
            .collect::<Result<Vec<_>>>()?;
        out.sort_by_key(|c| c.id);
        Ok(out)
    }
}
