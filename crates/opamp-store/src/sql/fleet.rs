//! Assignments, groups and API tokens.

use sqlx::any::AnyRow;

use super::{SqlStore, col, signed, unsigned};
use crate::error::is_unique_violation;
use crate::{
    Actor, ApiToken, Assignment, AssignmentTarget, ChangeEvent, EntityKind, Error, Group,
    NewAssignment, NewToken, Result, Timestamp, TokenHash, actions, validate,
};

/// The longest selector or description.
const MAX_SELECTOR: usize = 4096;

/// `last_used_at` is written at most this often per token (milliseconds).
const LAST_USED_GRANULARITY_MS: i64 = 60_000;

const ASSIGNMENT_COLUMNS: &str = "id, config, version, target_kind, target, created_at, author";
const GROUP_COLUMNS: &str = "name, selector, description, created_at, updated_at";
const TOKEN_COLUMNS: &str = "id, name, role, created_at, created_by, last_used_at, revoked_at";

fn assignment_from_row(row: &AnyRow) -> Result<Assignment> {
    let kind: String = col(row, "target_kind")?;
    let target: String = col(row, "target")?;
    Ok(Assignment {
        id: col(row, "id")?,
        config: col(row, "config")?,
        version: col::<Option<i64>>(row, "version")?
            .map(|v| unsigned("version", v))
            .transpose()?,
        target: AssignmentTarget::from_parts(&kind, target)
            .ok_or_else(|| Error::corrupt("assignment target", &kind))?,
        created_at: Timestamp(col(row, "created_at")?),
        author: col(row, "author")?,
    })
}

fn group_from_row(row: &AnyRow) -> Result<Group> {
    Ok(Group {
        name: col(row, "name")?,
        selector: col(row, "selector")?,
        description: col(row, "description")?,
        created_at: Timestamp(col(row, "created_at")?),
        updated_at: Timestamp(col(row, "updated_at")?),
    })
}

fn token_from_row(row: &AnyRow) -> Result<ApiToken> {
    let role: String = col(row, "role")?;
    Ok(ApiToken {
        id: col(row, "id")?,
        name: col(row, "name")?,
        role: role.parse().map_err(|e| Error::corrupt("token role", e))?,
        created_at: Timestamp(col(row, "created_at")?),
        created_by: col(row, "created_by")?,
        last_used_at: col::<Option<i64>>(row, "last_used_at")?.map(Timestamp),
        revoked_at: col::<Option<i64>>(row, "revoked_at")?.map(Timestamp),
    })
}

fn validate_group(g: &Group) -> Result<()> {
    validate::name("group name", &g.name)?;
    if g.selector.trim().is_empty() {
        return Err(Error::invalid("selector", "must not be empty"));
    }
    validate::text("selector", &g.selector, MAX_SELECTOR)?;
    validate::text("group description", &g.description, MAX_SELECTOR)
}

impl SqlStore {
    pub(super) async fn put_assignment_impl(
        &self,
        actor: Actor,
        new: NewAssignment,
    ) -> Result<Assignment> {
        match &new.target {
            AssignmentTarget::Group(g) => validate::name("group name", g)?,
            AssignmentTarget::Selector(s) => {
                if s.trim().is_empty() {
                    return Err(Error::invalid("selector", "must not be empty"));
                }
                validate::text("selector", s, MAX_SELECTOR)?;
            }
            AssignmentTarget::Agent(_) => {}
        }
        let version = new.version.map(|v| signed("version", v)).transpose()?;
        let now = self.now();
        let author = actor.to_string();

        let mut tx = self.begin().await?;
        let latest: i64 = match sqlx::query("SELECT latest_version FROM configs WHERE name = $1")
            .bind(new.config.as_str())
            .fetch_optional(tx.conn())
            .await?
        {
            Some(row) => col(&row, "latest_version")?,
            None => return Err(Error::not_found(EntityKind::Config, &new.config)),
        };
        match version {
            Some(v) if v < 1 || v > latest => {
                return Err(Error::not_found(
                    EntityKind::ConfigVersion,
                    format!("{}@{v}", new.config),
                ));
            }
            None if latest == 0 => {
                return Err(Error::conflict(
                    EntityKind::Config,
                    &new.config,
                    "has no version yet; add one before assigning it",
                ));
            }
            _ => {}
        }
        match &new.target {
            AssignmentTarget::Group(g) => {
                let found = sqlx::query("SELECT 1 FROM agent_groups WHERE name = $1")
                    .bind(g.as_str())
                    .fetch_optional(tx.conn())
                    .await?;
                if found.is_none() {
                    return Err(Error::not_found(EntityKind::Group, g));
                }
            }
            AssignmentTarget::Agent(uid) => self.require_agent(&mut tx, *uid).await?,
            AssignmentTarget::Selector(_) => {}
        }
        let row = sqlx::query(
            "INSERT INTO assignments (config, version, target_kind, target, created_at, author) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (target_kind, target) DO UPDATE SET config = excluded.config, \
               version = excluded.version, created_at = excluded.created_at, author = excluded.author \
             RETURNING id",
        )
        .bind(new.config.as_str())
        .bind(version)
        .bind(new.target.kind())
        .bind(new.target.value())
        .bind(now.0)
        .bind(author.as_str())
        .fetch_one(tx.conn())
        .await?;
        let id: i64 = col(&row, "id")?;
        self.audit(
            &mut tx,
            &actor,
            actions::ASSIGNMENT_PUT,
            &format!("assignment/{id}"),
            serde_json::json!({ "config": new.config, "version": new.version, "target": new.target }),
        )
        .await?;
        tx.announce(ChangeEvent::AssignmentChanged {
            id,
            target: new.target.clone(),
        });
        self.commit(tx).await?;
        Ok(Assignment {
            id,
            config: new.config,
            version: new.version,
            target: new.target,
            created_at: now,
            author,
        })
    }

    pub(super) async fn get_assignment_impl(&self, id: i64) -> Result<Assignment> {
        let row = sqlx::query(&format!(
            "SELECT {ASSIGNMENT_COLUMNS} FROM assignments WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.inner.read)
        .await?
        .ok_or_else(|| Error::not_found(EntityKind::Assignment, id))?;
        assignment_from_row(&row)
    }

    pub(super) async fn list_assignments_impl(&self) -> Result<Vec<Assignment>> {
        sqlx::query(&format!(
            "SELECT {ASSIGNMENT_COLUMNS} FROM assignments ORDER BY id"
        ))
        .fetch_all(&self.inner.read)
        .await?
        .iter()
        .map(assignment_from_row)
        .collect()
    }

    pub(super) async fn delete_assignment_impl(&self, actor: Actor, id: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(&format!(
            "DELETE FROM assignments WHERE id = $1 RETURNING {ASSIGNMENT_COLUMNS}"
        ))
        .bind(id)
        .fetch_optional(tx.conn())
        .await?
        .ok_or_else(|| Error::not_found(EntityKind::Assignment, id))?;
        let old = assignment_from_row(&row)?;
        self.audit(
            &mut tx,
            &actor,
            actions::ASSIGNMENT_DELETE,
            &format!("assignment/{id}"),
            serde_json::json!({ "config": old.config, "version": old.version, "target": old.target }),
        )
        .await?;
        tx.announce(ChangeEvent::AssignmentDeleted {
            id,
            target: old.target,
        });
        self.commit(tx).await
    }

    pub(super) async fn create_group_impl(&self, actor: Actor, g: Group) -> Result<Group> {
        validate_group(&g)?;
        let now = self.now();
        let mut tx = self.begin().await?;
        let n = sqlx::query(
            "INSERT INTO agent_groups (name, selector, description, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $4) ON CONFLICT (name) DO NOTHING",
        )
        .bind(g.name.as_str())
        .bind(g.selector.as_str())
        .bind(g.description.as_str())
        .bind(now.0)
        .execute(tx.conn())
        .await?
        .rows_affected();
        if n == 0 {
            return Err(Error::conflict(
                EntityKind::Group,
                &g.name,
                "a group with this name exists",
            ));
        }
        self.audit(
            &mut tx,
            &actor,
            actions::GROUP_CREATE,
            &format!("group/{}", g.name),
            serde_json::json!({ "selector": g.selector, "description": g.description }),
        )
        .await?;
        tx.announce(ChangeEvent::GroupChanged {
            name: g.name.clone(),
        });
        self.commit(tx).await?;
        Ok(Group {
            created_at: now,
            updated_at: now,
            ..g
        })
    }

    pub(super) async fn update_group_impl(&self, actor: Actor, g: Group) -> Result<Group> {
        validate_group(&g)?;
        let now = self.now();
        let mut tx = self.begin().await?;
        let old = sqlx::query(&format!(
            "SELECT {GROUP_COLUMNS} FROM agent_groups WHERE name = $1"
        ))
        .bind(g.name.as_str())
        .fetch_optional(tx.conn())
        .await?
        .ok_or_else(|| Error::not_found(EntityKind::Group, &g.name))?;
        let old = group_from_row(&old)?;
        sqlx::query("UPDATE agent_groups SET selector = $2, description = $3, updated_at = $4 WHERE name = $1")
            .bind(g.name.as_str())
            .bind(g.selector.as_str())
            .bind(g.description.as_str())
            .bind(now.0)
            .execute(tx.conn())
            .await?;
        self.audit(
            &mut tx,
            &actor,
            actions::GROUP_UPDATE,
            &format!("group/{}", g.name),
            serde_json::json!({
                "selector": g.selector, "description": g.description,
                "previous_selector": old.selector,
            }),
        )
        .await?;
        tx.announce(ChangeEvent::GroupChanged {
            name: g.name.clone(),
        });
        self.commit(tx).await?;
        Ok(Group {
            created_at: old.created_at,
            updated_at: now,
            ..g
        })
    }

    pub(super) async fn get_group_impl(&self, name: String) -> Result<Group> {
        let row = sqlx::query(&format!(
            "SELECT {GROUP_COLUMNS} FROM agent_groups WHERE name = $1"
        ))
        .bind(name.as_str())
        .fetch_optional(&self.inner.read)
        .await?
        .ok_or_else(|| Error::not_found(EntityKind::Group, &name))?;
        group_from_row(&row)
    }

    pub(super) async fn list_groups_impl(&self) -> Result<Vec<Group>> {
        sqlx::query(&format!(
            "SELECT {GROUP_COLUMNS} FROM agent_groups ORDER BY name"
        ))
        .fetch_all(&self.inner.read)
        .await?
        .iter()
        .map(group_from_row)
        .collect()
    }

    pub(super) async fn delete_group_impl(&self, actor: Actor, name: String) -> Result<()> {
        let mut tx = self.begin().await?;
        let assigned: Vec<i64> = sqlx::query(
            "SELECT id FROM assignments WHERE target_kind = 'group' AND target = $1 ORDER BY id",
        )
        .bind(name.as_str())
        .fetch_all(tx.conn())
        .await?
        .iter()
        .map(|r| col(r, "id"))
        .collect::<Result<_>>()?;
        if !assigned.is_empty() {
            return Err(Error::conflict(
                EntityKind::Group,
                &name,
                format!("still targeted by assignment(s) {assigned:?}; delete those first"),
            ));
        }
        let n = sqlx::query("DELETE FROM agent_groups WHERE name = $1")
            .bind(name.as_str())
            .execute(tx.conn())
            .await?
            .rows_affected();
        if n == 0 {
            return Err(Error::not_found(EntityKind::Group, &name));
        }
        self.audit(
            &mut tx,
            &actor,
            actions::GROUP_DELETE,
            &format!("group/{name}"),
            serde_json::json!({}),
        )
        .await?;
        tx.announce(ChangeEvent::GroupDeleted { name });
        self.commit(tx).await
    }

    pub(super) async fn create_token_impl(&self, actor: Actor, t: NewToken) -> Result<ApiToken> {
        validate::name("token name", &t.name)?;
        let now = self.now();
        let created_by = actor.to_string();
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "INSERT INTO api_tokens (name, role, secret_hash, created_at, created_by) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(t.name.as_str())
        .bind(t.role.as_str())
        .bind(t.hash.to_string())
        .bind(now.0)
        .bind(created_by.as_str())
        .fetch_one(tx.conn())
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                Error::conflict(
                    EntityKind::Token,
                    &t.name,
                    "a live token with this name (or this secret) exists; revoke it or pick another name",
                )
            } else {
                e.into()
            }
        })?;
        let id: i64 = col(&row, "id")?;
        self.audit(
            &mut tx,
            &actor,
            actions::TOKEN_CREATE,
            &format!("token/{id}"),
            serde_json::json!({ "name": t.name, "role": t.role }),
        )
        .await?;
        self.commit(tx).await?;
        Ok(ApiToken {
            id,
            name: t.name,
            role: t.role,
            created_at: now,
            created_by,
            last_used_at: None,
            revoked_at: None,
        })
    }

    pub(super) async fn verify_token_impl(&self, hash: TokenHash) -> Result<Option<ApiToken>> {
        let row = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE secret_hash = $1 AND revoked_at IS NULL"
        ))
        .bind(hash.to_string())
        .fetch_optional(&self.inner.read)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let mut token = token_from_row(&row)?;
        let now = self.now();
        let stale = token
            .last_used_at
            .is_none_or(|t| now.0 - t.0 >= LAST_USED_GRANULARITY_MS);
        if stale {
            sqlx::query(
                "UPDATE api_tokens SET last_used_at = $2 WHERE id = $1 AND revoked_at IS NULL",
            )
            .bind(token.id)
            .bind(now.0)
            .execute(&self.inner.write)
            .await?;
            token.last_used_at = Some(now);
        }
        Ok(Some(token))
    }

    pub(super) async fn revoke_token_impl(&self, actor: Actor, id: i64) -> Result<ApiToken> {
        let now = self.now();
        let mut tx = self.begin().await?;
        let row = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(tx.conn())
        .await?
        .ok_or_else(|| Error::not_found(EntityKind::Token, id))?;
        let mut token = token_from_row(&row)?;
        if token.revoked_at.is_some() {
            return Ok(token);
        }
        sqlx::query("UPDATE api_tokens SET revoked_at = $2 WHERE id = $1")
            .bind(id)
            .bind(now.0)
            .execute(tx.conn())
            .await?;
        token.revoked_at = Some(now);
        self.audit(
            &mut tx,
            &actor,
            actions::TOKEN_REVOKE,
            &format!("token/{id}"),
            serde_json::json!({ "name": token.name }),
        )
        .await?;
        tx.announce(ChangeEvent::TokenRevoked { id });
        self.commit(tx).await?;
        Ok(token)
    }

    pub(super) async fn list_tokens_impl(&self) -> Result<Vec<ApiToken>> {
        sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY id"
        ))
        .fetch_all(&self.inner.read)
        .await?
        .iter()
        .map(token_from_row)
        .collect()
    }
}
