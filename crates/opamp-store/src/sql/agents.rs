//! Agents: reported state, connection flags, batched last-seen, labels, filters.

use std::collections::{BTreeMap, HashMap};

use opamp_config::ConfigHash;
use opamp_proto::{AgentCapabilities, InstanceUid};
use sqlx::any::AnyRow;

use super::{Dialect, Sql, SqlStore, Tx, clean, col, json, opt_json};
use crate::agent::scalar_label;
use crate::{
    Actor, Agent, AgentDescription, AgentEventKind, AgentFilter, AgentUpdate, ChangeEvent,
    EntityKind, Error, Page, PageRequest, RemoteConfigState, RemoteConfigStatus, Result, Timestamp,
    Transport, UpsertOutcome, actions, validate,
};

const AGENT_COLUMNS: &str = "uid, identifying_attributes, non_identifying_attributes, \
    capabilities, health, effective_config_hash, rcs_status, rcs_hash, rcs_error, \
    package_statuses, custom_capabilities, available_components, transport, connected, \
    connected_via, first_seen, last_seen";

fn to_json(what: &str, v: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::invalid("agent state", format!("{what}: {e}")))
}

fn parse_uid(s: &str) -> Result<InstanceUid> {
    s.parse().map_err(|e| Error::corrupt("instance uid", e))
}

fn agent_from_row(row: &AnyRow, with_config: bool) -> Result<Agent> {
    let uid: String = col(row, "uid")?;
    let rcs_status: Option<String> = col(row, "rcs_status")?;
    let remote_config_status = match rcs_status {
        None => None,
        Some(s) => Some(RemoteConfigStatus {
            status: RemoteConfigState::parse(&s)
                .ok_or_else(|| Error::corrupt("remote config status", &s))?,
            last_remote_config_hash: match col::<Option<String>>(row, "rcs_hash")? {
                Some(h) => hex::decode(h).map_err(|e| Error::corrupt("remote config hash", e))?,
                None => Vec::new(),
            },
            error_message: col::<Option<String>>(row, "rcs_error")?.unwrap_or_default(),
        }),
    };
    let effective_config_hash = col::<Option<String>>(row, "effective_config_hash")?
        .map(|h| h.parse::<ConfigHash>())
        .transpose()
        .map_err(|e| Error::corrupt("effective config hash", e))?;
    let effective_config = if with_config {
        opt_json("effective config", col(row, "effective_config")?)?
    } else {
        None
    };
    Ok(Agent {
        instance_uid: parse_uid(&uid)?,
        description: AgentDescription {
            identifying_attributes: json(
                "identifying attributes",
                &col::<String>(row, "identifying_attributes")?,
            )?,
            non_identifying_attributes: json(
                "non-identifying attributes",
                &col::<String>(row, "non_identifying_attributes")?,
            )?,
        },
        capabilities: AgentCapabilities::from_wire(col::<i64>(row, "capabilities")? as u64),
        health: opt_json("health", col(row, "health")?)?,
        effective_config,
        effective_config_hash,
        remote_config_status,
        package_statuses: opt_json("package statuses", col(row, "package_statuses")?)?,
        custom_capabilities: opt_json("custom capabilities", col(row, "custom_capabilities")?)?
            .unwrap_or_default(),
        available_components: opt_json("available components", col(row, "available_components")?)?,
        transport: col::<Option<String>>(row, "transport")?
            .map(|t| t.parse())
            .transpose()
            .map_err(|e: Error| Error::corrupt("transport", e))?,
        connected: col::<i64>(row, "connected")? != 0,
        connected_via: col(row, "connected_via")?,
        first_seen: Timestamp(col(row, "first_seen")?),
        last_seen: Timestamp(col(row, "last_seen")?),
        labels: BTreeMap::new(),
    })
}

/// SQL for "the agent's effective label `key`": its operator label, else its identifying
/// attribute, else its non-identifying attribute (the precedence of
/// [`Agent::effective_labels`]).
fn effective_label_expr(key_placeholder: &str) -> String {
    format!(
        "COALESCE(\
           (SELECT l.value FROM agent_labels l WHERE l.uid = agents.uid AND l.key = {k}), \
           (SELECT t.value FROM agent_attributes t WHERE t.uid = agents.uid AND t.key = {k} \
              ORDER BY t.identifying DESC LIMIT 1))",
        k = key_placeholder
    )
}

fn push_filter(sql: &mut Sql, f: &AgentFilter) {
    if let Some(c) = f.connected {
        sql.push(" AND connected = ").bind(i64::from(c));
    }
    if let Some(t) = f.transport {
        sql.push(" AND transport = ").bind(t.as_str());
    }
    for (k, v) in &f.labels {
        let kp = sql.placeholder(k.as_str());
        let expr = effective_label_expr(&kp);
        sql.push(" AND ").push(&expr).push(" = ").bind(v.as_str());
    }
    for k in &f.has_labels {
        let kp = sql.placeholder(k.as_str());
        let expr = effective_label_expr(&kp);
        sql.push(" AND ").push(&expr).push(" IS NOT NULL");
    }
}

/// Greater of a column and a placeholder, in both dialects.
fn later(column: &str, placeholder: &str) -> String {
    format!("CASE WHEN {column} > {placeholder} THEN {column} ELSE {placeholder} END")
}

impl SqlStore {
    pub(super) async fn upsert_agent_impl(&self, u: AgentUpdate) -> Result<UpsertOutcome> {
        let mut tx = self.begin().await?;
        let out = self.upsert_in_tx(&mut tx, &u).await?;
        self.commit(tx).await?;
        Ok(out)
    }

    pub(super) async fn upsert_agents_impl(
        &self,
        updates: Vec<AgentUpdate>,
    ) -> Result<Vec<UpsertOutcome>> {
        if updates.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin().await?;
        let mut out = Vec::with_capacity(updates.len());
        for u in &updates {
            out.push(self.upsert_in_tx(&mut tx, u).await?);
        }
        self.commit(tx).await?;
        Ok(out)
    }

    async fn upsert_in_tx(&self, tx: &mut Tx, u: &AgentUpdate) -> Result<UpsertOutcome> {
        let uid = u.instance_uid.to_string();
        // Everything that can fail to encode is encoded before the transaction starts.
        let mut cols: Vec<(&'static str, super::Arg)> = Vec::new();
        if let Some(d) = &u.description {
            cols.push((
                "identifying_attributes",
                to_json("identifying attributes", &d.identifying_attributes)?.into(),
            ));
            cols.push((
                "non_identifying_attributes",
                to_json("non-identifying attributes", &d.non_identifying_attributes)?.into(),
            ));
        }
        if let Some(c) = u.capabilities {
            cols.push(("capabilities", (c.bits() as i64).into()));
        }
        if let Some(h) = &u.health {
            cols.push(("health", to_json("health", h)?.into()));
        }
        if let Some(ec) = &u.effective_config {
            cols.push(("effective_config", to_json("effective config", ec)?.into()));
            cols.push(("effective_config_hash", ec.hash().to_string().into()));
        }
        if let Some(r) = &u.remote_config_status {
            cols.push(("rcs_status", r.status.as_str().into()));
            cols.push(("rcs_hash", hex::encode(&r.last_remote_config_hash).into()));
            cols.push(("rcs_error", clean(&r.error_message).into()));
        }
        if let Some(p) = &u.package_statuses {
            cols.push(("package_statuses", to_json("package statuses", p)?.into()));
        }
        if let Some(c) = &u.custom_capabilities {
            cols.push((
                "custom_capabilities",
                to_json("custom capabilities", c)?.into(),
            ));
        }
        if let Some(a) = &u.available_components {
            cols.push((
                "available_components",
                to_json("available components", a)?.into(),
            ));
        }
        if let Some(t) = u.transport {
            cols.push(("transport", t.as_str().into()));
        }

        let old = sqlx::query("SELECT rcs_status, rcs_hash FROM agents WHERE uid = $1")
            .bind(uid.as_str())
            .fetch_optional(tx.conn())
            .await?;
        let created = old.is_none();
        let old_rcs: Option<(Option<String>, Option<String>)> = match &old {
            Some(row) => Some((col(row, "rcs_status")?, col(row, "rcs_hash")?)),
            None => None,
        };

        let mut sql = Sql::new("INSERT INTO agents (uid, first_seen, last_seen");
        for (c, _) in &cols {
            sql.push(", ").push(c);
        }
        sql.push(") VALUES (").bind(uid.as_str());
        let seen = sql.placeholder(u.seen_at.0);
        sql.push(", ").push(&seen).push(", ").push(&seen);
        let mut names = Vec::with_capacity(cols.len());
        for (c, v) in cols {
            sql.push(", ").bind(v);
            names.push(c);
        }
        sql.push(") ON CONFLICT (uid) DO UPDATE SET last_seen = ")
            .push(&later("agents.last_seen", &seen));
        for c in names {
            sql.push(", ").push(c).push(" = excluded.").push(c);
        }
        sql.query().execute(tx.conn()).await?;

        if let Some(d) = &u.description {
            write_attributes(tx, &uid, d).await?;
        }
        if let Some(r) = &u.remote_config_status {
            let hash = hex::encode(&r.last_remote_config_hash);
            let changed = match &old_rcs {
                Some((status, old_hash)) => {
                    status.as_deref() != Some(r.status.as_str())
                        || old_hash.as_deref() != Some(hash.as_str())
                }
                None => true,
            };
            let event = match r.status {
                RemoteConfigState::Applied => Some(AgentEventKind::ConfigApplied { hash }),
                RemoteConfigState::Failed => Some(AgentEventKind::ConfigFailed {
                    hash,
                    error: r.error_message.clone(),
                }),
                _ => None,
            };
            if let (true, Some(kind)) = (changed, event) {
                self.append_event_tx(tx, u.instance_uid, &kind, u.seen_at)
                    .await?;
            }
        }
        Ok(UpsertOutcome { created })
    }

    pub(super) async fn set_connected_impl(
        &self,
        uid: InstanceUid,
        transport: Transport,
        server_id: String,
        at: Timestamp,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let mut sql = Sql::new(
            "INSERT INTO agents (uid, first_seen, last_seen, transport, connected, connected_via) VALUES (",
        );
        sql.bind(uid.to_string());
        let seen = sql.placeholder(at.0);
        sql.push(", ").push(&seen).push(", ").push(&seen).push(", ");
        sql.bind(transport.as_str())
            .push(", 1, ")
            .bind(clean(&server_id))
            .push(
                ") ON CONFLICT (uid) DO UPDATE SET connected = 1, transport = excluded.transport, \
                   connected_via = excluded.connected_via, last_seen = ",
            )
            .push(&later("agents.last_seen", &seen));
        sql.query().execute(tx.conn()).await?;
        self.append_event_tx(&mut tx, uid, &AgentEventKind::Connected { transport }, at)
            .await?;
        self.commit(tx).await
    }

    pub(super) async fn set_disconnected_impl(
        &self,
        uid: InstanceUid,
        at: Timestamp,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let mut sql =
            Sql::new("UPDATE agents SET connected = 0, connected_via = NULL, last_seen = ");
        let seen = sql.placeholder(at.0);
        sql.push(&later("last_seen", &seen))
            .push(" WHERE uid = ")
            .bind(uid.to_string())
            .push(" AND connected = 1");
        let n = sql.query().execute(tx.conn()).await?.rows_affected();
        if n > 0 {
            self.append_event_tx(&mut tx, uid, &AgentEventKind::Disconnected, at)
                .await?;
        }
        self.commit(tx).await
    }

    pub(super) async fn disconnect_server_impl(
        &self,
        server_id: String,
        at: Timestamp,
    ) -> Result<u64> {
        let mut tx = self.begin().await?;
        let rows = sqlx::query(
            "UPDATE agents SET connected = 0, connected_via = NULL WHERE connected = 1 AND connected_via = $1 RETURNING uid",
        )
        .bind(clean(&server_id))
        .fetch_all(tx.conn())
        .await?;
        for row in &rows {
            let uid = parse_uid(&col::<String>(row, "uid")?)?;
            self.append_event_tx(&mut tx, uid, &AgentEventKind::Disconnected, at)
                .await?;
        }
        self.commit(tx).await?;
        Ok(rows.len() as u64)
    }

    pub(super) async fn touch_last_seen_impl(
        &self,
        seen: Vec<(InstanceUid, Timestamp)>,
    ) -> Result<u64> {
        if seen.is_empty() {
            return Ok(0);
        }
        let mut latest: HashMap<InstanceUid, i64> = HashMap::with_capacity(seen.len());
        for (uid, at) in seen {
            let e = latest.entry(uid).or_insert(at.0);
            *e = (*e).max(at.0);
        }
        let object: serde_json::Map<String, serde_json::Value> = latest
            .into_iter()
            .map(|(u, t)| (u.to_string(), serde_json::Value::from(t)))
            .collect();
        let payload = serde_json::Value::Object(object).to_string();
        // One statement for the whole batch, whatever its size: the batch travels as one JSON
        // object {uid: millis} and is joined in the database.
        let sql = match self.inner.dialect {
            Dialect::Sqlite => {
                "UPDATE agents SET last_seen = j.ts \
                 FROM (SELECT key AS uid, CAST(value AS INTEGER) AS ts FROM json_each($1)) AS j \
                 WHERE agents.uid = j.uid AND j.ts > agents.last_seen"
            }
            Dialect::Postgres => {
                "UPDATE agents SET last_seen = j.ts \
                 FROM (SELECT key AS uid, value::bigint AS ts FROM json_each_text($1::json)) AS j \
                 WHERE agents.uid = j.uid AND j.ts > agents.last_seen"
            }
        };
        let res = sqlx::query(sql)
            .bind(payload)
            .execute(&self.inner.write)
            .await?;
        Ok(res.rows_affected())
    }

    pub(super) async fn get_agent_impl(&self, uid: InstanceUid) -> Result<Agent> {
        let key = uid.to_string();
        let row = sqlx::query(&format!(
            "SELECT {AGENT_COLUMNS}, effective_config FROM agents WHERE uid = $1"
        ))
        .bind(key.as_str())
        .fetch_optional(&self.inner.read)
        .await?
        .ok_or_else(|| Error::not_found(EntityKind::Agent, uid))?;
        let mut agent = agent_from_row(&row, true)?;
        agent.labels = self.labels_of(&self.inner.read, &key).await?;
        Ok(agent)
    }

    pub(super) async fn list_agents_impl(
        &self,
        filter: AgentFilter,
        page: PageRequest,
    ) -> Result<Page<Agent>> {
        let limit = page.effective_limit();
        let mut sql = Sql::new(&format!(
            "SELECT {AGENT_COLUMNS}{} FROM agents WHERE 1 = 1",
            if filter.with_effective_config {
                ", effective_config"
            } else {
                ""
            }
        ));
        if let Some(c) = &page.cursor {
            let after: InstanceUid = c
                .parse()
                .map_err(|_| Error::invalid("cursor", format!("{c:?} is not an agent cursor")))?;
            sql.push(" AND uid > ").bind(after.to_string());
        }
        push_filter(&mut sql, &filter);
        sql.push(" ORDER BY uid LIMIT ").bind(i64::from(limit) + 1);
        let rows = sql.query().fetch_all(&self.inner.read).await?;
        let mut agents = rows
            .iter()
            .map(|r| agent_from_row(r, filter.with_effective_config))
            .collect::<Result<Vec<_>>>()?;
        if let (Some(first), Some(last)) = (agents.first(), agents.last()) {
            let mut labels = sqlx::query(
                "SELECT uid, key, value FROM agent_labels WHERE uid >= $1 AND uid <= $2",
            )
            .bind(first.instance_uid.to_string())
            .bind(last.instance_uid.to_string())
            .fetch_all(&self.inner.read)
            .await?
            .iter()
            .map(|r| {
                Ok((
                    col::<String>(r, "uid")?,
                    col::<String>(r, "key")?,
                    col::<String>(r, "value")?,
                ))
            })
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .fold(
                HashMap::<String, BTreeMap<String, String>>::new(),
                |mut m, (u, k, v)| {
                    m.entry(u).or_default().insert(k, v);
                    m
                },
            );
            for a in &mut agents {
                if let Some(l) = labels.remove(&a.instance_uid.to_string()) {
                    a.labels = l;
                }
            }
        }
        Ok(Page::from_rows(agents, limit, |a| {
            a.instance_uid.to_string()
        }))
    }

    pub(super) async fn count_agents_impl(&self, filter: AgentFilter) -> Result<u64> {
        let mut sql = Sql::new("SELECT COUNT(*) AS n FROM agents WHERE 1 = 1");
        push_filter(&mut sql, &filter);
        let row = sql.query().fetch_one(&self.inner.read).await?;
        super::unsigned("count", col(&row, "n")?)
    }

    pub(super) async fn delete_agent_impl(&self, actor: Actor, uid: InstanceUid) -> Result<()> {
        let key = uid.to_string();
        let mut tx = self.begin().await?;
        let assignments = sqlx::query(
            "DELETE FROM assignments WHERE target_kind = 'agent' AND target = $1 RETURNING id",
        )
        .bind(key.as_str())
        .fetch_all(tx.conn())
        .await?;
        let n = sqlx::query("DELETE FROM agents WHERE uid = $1")
            .bind(key.as_str())
            .execute(tx.conn())
            .await?
            .rows_affected();
        if n == 0 {
            return Err(Error::not_found(EntityKind::Agent, uid));
        }
        let mut removed = Vec::new();
        for row in &assignments {
            let id: i64 = col(row, "id")?;
            removed.push(id);
            tx.announce(ChangeEvent::AssignmentDeleted {
                id,
                target: crate::AssignmentTarget::Agent(uid),
            });
        }
        self.audit(
            &mut tx,
            &actor,
            actions::AGENT_DELETE,
            &format!("agent/{uid}"),
            serde_json::json!({ "removed_assignments": removed }),
        )
        .await?;
        tx.announce(ChangeEvent::AgentDeleted { instance_uid: uid });
        self.commit(tx).await
    }

    pub(super) async fn set_labels_impl(
        &self,
        actor: Actor,
        uid: InstanceUid,
        labels: BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>> {
        if labels.is_empty() {
            return Err(Error::invalid("labels", "no labels given"));
        }
        for (k, v) in &labels {
            validate::label_key(k)?;
            validate::label_value(k, v)?;
        }
        let key = uid.to_string();
        let mut tx = self.begin().await?;
        self.require_agent(&mut tx, uid).await?;
        for (k, v) in &labels {
            sqlx::query(
                "INSERT INTO agent_labels (uid, key, value) VALUES ($1, $2, $3) \
                 ON CONFLICT (uid, key) DO UPDATE SET value = excluded.value",
            )
            .bind(key.as_str())
            .bind(k.as_str())
            .bind(v.as_str())
            .execute(tx.conn())
            .await?;
        }
        let now = self.labels_of(tx.conn(), &key).await?;
        self.audit(
            &mut tx,
            &actor,
            actions::LABELS_SET,
            &format!("agent/{uid}"),
            serde_json::json!({ "labels": labels }),
        )
        .await?;
        tx.announce(ChangeEvent::LabelsChanged { instance_uid: uid });
        self.commit(tx).await?;
        Ok(now)
    }

    pub(super) async fn remove_labels_impl(
        &self,
        actor: Actor,
        uid: InstanceUid,
        keys: Vec<String>,
    ) -> Result<BTreeMap<String, String>> {
        if keys.is_empty() {
            return Err(Error::invalid("labels", "no label keys given"));
        }
        let key = uid.to_string();
        let mut tx = self.begin().await?;
        self.require_agent(&mut tx, uid).await?;
        let mut removed = Vec::new();
        for k in &keys {
            let n = sqlx::query("DELETE FROM agent_labels WHERE uid = $1 AND key = $2")
                .bind(key.as_str())
                .bind(clean(k))
                .execute(tx.conn())
                .await?
                .rows_affected();
            if n > 0 {
                removed.push(k.clone());
            }
        }
        let now = self.labels_of(tx.conn(), &key).await?;
        self.audit(
            &mut tx,
            &actor,
            actions::LABELS_REMOVE,
            &format!("agent/{uid}"),
            serde_json::json!({ "keys": keys, "removed": removed }),
        )
        .await?;
        if !removed.is_empty() {
            tx.announce(ChangeEvent::LabelsChanged { instance_uid: uid });
        }
        self.commit(tx).await?;
        Ok(now)
    }

    pub(super) async fn require_agent(&self, tx: &mut Tx, uid: InstanceUid) -> Result<()> {
        let found = sqlx::query("SELECT 1 FROM agents WHERE uid = $1")
            .bind(uid.to_string())
            .fetch_optional(tx.conn())
            .await?;
        match found {
            Some(_) => Ok(()),
            None => Err(Error::not_found(EntityKind::Agent, uid)),
        }
    }

    async fn labels_of<'e, E>(&self, conn: E, uid: &str) -> Result<BTreeMap<String, String>>
    where
        E: sqlx::Executor<'e, Database = sqlx::Any>,
    {
        sqlx::query("SELECT key, value FROM agent_labels WHERE uid = $1 ORDER BY key")
            .bind(uid.to_owned())
            .fetch_all(conn)
            .await?
            .iter()
            .map(|r| Ok((col(r, "key")?, col(r, "value")?)))
            .collect()
    }
}

/// Replaces an agent's attribute rows with the scalar attributes of `d`.
async fn write_attributes(tx: &mut Tx, uid: &str, d: &AgentDescription) -> Result<()> {
    sqlx::query("DELETE FROM agent_attributes WHERE uid = $1")
        .bind(uid.to_owned())
        .execute(tx.conn())
        .await?;
    let rows: Vec<(i64, &String, String)> = [
        (1i64, &d.identifying_attributes),
        (0i64, &d.non_identifying_attributes),
    ]
    .into_iter()
    .flat_map(|(ident, attrs)| {
        attrs
            .iter()
            .filter_map(move |(k, v)| scalar_label(v).map(|s| (ident, k, s)))
    })
    .collect();
    // 4 values per row; stay far below both backends' bind limits.
    for chunk in rows.chunks(200) {
        let mut sql =
            Sql::new("INSERT INTO agent_attributes (uid, identifying, key, value) VALUES ");
        let u = sql.placeholder(uid);
        for (i, (ident, k, v)) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.push("(").push(&u).push(", ").bind(*ident).push(", ");
            sql.bind(clean(k)).push(", ").bind(clean(v)).push(")");
        }
        // Two attributes that differ only by a NUL cleaned away must not fail the update.
        sql.push(" ON CONFLICT DO NOTHING");
        sql.query().execute(tx.conn()).await?;
    }
    Ok(())
}
