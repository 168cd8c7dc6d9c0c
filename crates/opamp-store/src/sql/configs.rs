//! Configs and their versions.

use opamp_config::{ConfigHash, ConfigMap};
use sqlx::any::AnyRow;

use super::{Sql, SqlStore, Tx, col, json, signed, unsigned};
use crate::{
    Actor, AddedVersion, ChangeEvent, Config, ConfigVersion, EntityKind, Error, NewConfigVersion,
    Page, PageRequest, Result, Timestamp, actions, validate,
};

const VERSION_COLUMNS: &str =
    "config, version, config_map, hash, created_at, author, message, rollback_of";

/// The longest description or version message.
const MAX_TEXT: usize = 64 * 1024;

fn config_from_row(row: &AnyRow) -> Result<Config> {
    Ok(Config {
        name: col(row, "name")?,
        description: col(row, "description")?,
        created_at: Timestamp(col(row, "created_at")?),
        created_by: col(row, "created_by")?,
        latest_version: unsigned("latest version", col(row, "latest_version")?)?,
    })
}

fn version_from_row(row: &AnyRow) -> Result<ConfigVersion> {
    let hash: String = col(row, "hash")?;
    Ok(ConfigVersion {
        config: col(row, "config")?,
        version: unsigned("version", col(row, "version")?)?,
        config_map: json::<ConfigMap>("config map", &col::<String>(row, "config_map")?)?,
        hash: hash
            .parse::<ConfigHash>()
            .map_err(|e| Error::corrupt("config hash", e))?,
        created_at: Timestamp(col(row, "created_at")?),
        author: col(row, "author")?,
        message: col(row, "message")?,
        rollback_of: col::<Option<i64>>(row, "rollback_of")?
            .map(|v| unsigned("rollback_of", v))
            .transpose()?,
    })
}

impl SqlStore {
    pub(super) async fn create_config_impl(
        &self,
        actor: Actor,
        name: String,
        description: String,
    ) -> Result<Config> {
        validate::name("config name", &name)?;
        validate::text("config description", &description, MAX_TEXT)?;
        let mut tx = self.begin().await?;
        let config = self
            .insert_config(&mut tx, &actor, &name, &description)
            .await?
            .ok_or_else(|| {
                Error::conflict(EntityKind::Config, &name, "a config with this name exists")
            })?;
        self.commit(tx).await?;
        Ok(config)
    }

    /// Inserts a config row with its audit row; `None` when the name is taken.
    async fn insert_config(
        &self,
        tx: &mut Tx,
        actor: &Actor,
        name: &str,
        description: &str,
    ) -> Result<Option<Config>> {
        let now = self.now();
        let created_by = actor.to_string();
        let n = sqlx::query(
            "INSERT INTO configs (name, description, created_at, created_by, latest_version) \
             VALUES ($1, $2, $3, $4, 0) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name.to_owned())
        .bind(description.to_owned())
        .bind(now.0)
        .bind(created_by.as_str())
        .execute(tx.conn())
        .await?
        .rows_affected();
        if n == 0 {
            return Ok(None);
        }
        self.audit(
            tx,
            actor,
            actions::CONFIG_CREATE,
            &format!("config/{name}"),
            serde_json::json!({ "description": description }),
        )
        .await?;
        Ok(Some(Config {
            name: name.to_owned(),
            description: description.to_owned(),
            created_at: now,
            created_by,
            latest_version: 0,
        }))
    }

    pub(super) async fn get_config_impl(&self, name: String) -> Result<Config> {
        let row = sqlx::query(
            "SELECT name, description, created_at, created_by, latest_version FROM configs WHERE name = $1",
        )
        .bind(name.as_str())
        .fetch_optional(&self.inner.read)
        .await?
        .ok_or_else(|| Error::not_found(EntityKind::Config, &name))?;
        config_from_row(&row)
    }

    pub(super) async fn list_configs_impl(&self, page: PageRequest) -> Result<Page<Config>> {
        let limit = page.effective_limit();
        let mut sql = Sql::new(
            "SELECT name, description, created_at, created_by, latest_version FROM configs WHERE 1 = 1",
        );
        if let Some(after) = &page.cursor {
            sql.push(" AND name > ").bind(after.as_str());
        }
        sql.push(" ORDER BY name LIMIT ").bind(i64::from(limit) + 1);
        let rows = sql.query().fetch_all(&self.inner.read).await?;
        let items = rows
            .iter()
            .map(config_from_row)
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::from_rows(items, limit, |c| c.name.clone()))
    }

    pub(super) async fn delete_config_impl(&self, actor: Actor, name: String) -> Result<()> {
        let mut tx = self.begin().await?;
        let assigned: Vec<i64> =
            sqlx::query("SELECT id FROM assignments WHERE config = $1 ORDER BY id")
                .bind(name.as_str())
                .fetch_all(tx.conn())
                .await?
                .iter()
                .map(|r| col(r, "id"))
                .collect::<Result<_>>()?;
        if !assigned.is_empty() {
            return Err(Error::conflict(
                EntityKind::Config,
                &name,
                format!("still used by assignment(s) {assigned:?}; delete those first"),
            ));
        }
        let n = sqlx::query("DELETE FROM configs WHERE name = $1")
            .bind(name.as_str())
            .execute(tx.conn())
            .await?
            .rows_affected();
        if n == 0 {
            return Err(Error::not_found(EntityKind::Config, &name));
        }
        self.audit(
            &mut tx,
            &actor,
            actions::CONFIG_DELETE,
            &format!("config/{name}"),
            serde_json::json!({}),
        )
        .await?;
        tx.announce(ChangeEvent::ConfigDeleted { config: name });
        self.commit(tx).await
    }

    pub(super) async fn add_config_version_impl(
        &self,
        actor: Actor,
        new: NewConfigVersion,
    ) -> Result<AddedVersion> {
        validate::name("config name", &new.config)?;
        validate::text("version message", &new.message, MAX_TEXT)?;
        let map_json = serde_json::to_string(&new.config_map)
            .map_err(|e| Error::invalid("config map", e.to_string()))?;
        let hash = new.config_map.hash();
        let name = new.config.clone();

        let mut tx = self.begin().await?;
        // Lock the config row (PostgreSQL: row lock until commit; SQLite: one writer) so that
        // concurrent adds number their versions one after the other.
        let lock = "UPDATE configs SET latest_version = latest_version WHERE name = $1 RETURNING latest_version";
        let mut latest = sqlx::query(lock)
            .bind(name.as_str())
            .fetch_optional(tx.conn())
            .await?;
        if latest.is_none() {
            self.insert_config(&mut tx, &actor, &name, "").await?;
            latest = sqlx::query(lock)
                .bind(name.as_str())
                .fetch_optional(tx.conn())
                .await?;
        }
        let latest: i64 = match latest {
            Some(row) => col(&row, "latest_version")?,
            None => {
                return Err(Error::backend(format!(
                    "config {name:?} vanished while adding a version"
                )));
            }
        };

        if let Some(of) = new.rollback_of {
            let of_i = signed("rollback_of", of)?;
            let found =
                sqlx::query("SELECT 1 FROM config_versions WHERE config = $1 AND version = $2")
                    .bind(name.as_str())
                    .bind(of_i)
                    .fetch_optional(tx.conn())
                    .await?;
            if found.is_none() {
                return Err(Error::not_found(
                    EntityKind::ConfigVersion,
                    format!("{name}@{of}"),
                ));
            }
        }

        if latest > 0 {
            let row = sqlx::query(&format!(
                "SELECT {VERSION_COLUMNS} FROM config_versions WHERE config = $1 AND version = $2"
            ))
            .bind(name.as_str())
            .bind(latest)
            .fetch_one(tx.conn())
            .await?;
            let current = version_from_row(&row)?;
            if current.hash == hash {
                // Nothing to write; end the transaction without changes.
                tx.tx.rollback().await?;
                return Ok(AddedVersion {
                    version: current,
                    created: false,
                });
            }
        }

        let version = latest + 1;
        let now = self.now();
        let author = actor.to_string();
        let rollback_of = new
            .rollback_of
            .map(|v| signed("rollback_of", v))
            .transpose()?;
        sqlx::query(&format!(
            "INSERT INTO config_versions ({VERSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .bind(name.as_str())
        .bind(version)
        .bind(map_json)
        .bind(hash.to_string())
        .bind(now.0)
        .bind(author.as_str())
        .bind(new.message.as_str())
        .bind(rollback_of)
        .execute(tx.conn())
        .await?;
        sqlx::query("UPDATE configs SET latest_version = $2 WHERE name = $1")
            .bind(name.as_str())
            .bind(version)
            .execute(tx.conn())
            .await?;
        let version_u = unsigned("version", version)?;
        self.audit(
            &mut tx,
            &actor,
            actions::CONFIG_VERSION_CREATE,
            &format!("config/{name}"),
            serde_json::json!({
                "version": version_u,
                "hash": hash.to_string(),
                "message": new.message,
                "rollback_of": new.rollback_of,
                "files": new.config_map.files.keys().collect::<Vec<_>>(),
            }),
        )
        .await?;
        tx.announce(ChangeEvent::ConfigVersionAdded {
            config: name.clone(),
            version: version_u,
        });
        self.commit(tx).await?;
        Ok(AddedVersion {
            version: ConfigVersion {
                config: name,
                version: version_u,
                config_map: new.config_map,
                hash,
                created_at: now,
                author,
                message: new.message,
                rollback_of: new.rollback_of,
            },
            created: true,
        })
    }

    pub(super) async fn get_config_version_impl(
        &self,
        name: String,
        version: u64,
    ) -> Result<ConfigVersion> {
        let v = signed("version", version)?;
        let row = sqlx::query(&format!(
            "SELECT {VERSION_COLUMNS} FROM config_versions WHERE config = $1 AND version = $2"
        ))
        .bind(name.as_str())
        .bind(v)
        .fetch_optional(&self.inner.read)
        .await?;
        self.version_or_not_found(row, name, &version.to_string())
            .await
    }

    pub(super) async fn latest_config_version_impl(&self, name: String) -> Result<ConfigVersion> {
        let row = sqlx::query(&format!(
            "SELECT {VERSION_COLUMNS} FROM config_versions WHERE config = $1 ORDER BY version DESC LIMIT 1"
        ))
        .bind(name.as_str())
        .fetch_optional(&self.inner.read)
        .await?;
        self.version_or_not_found(row, name, "latest").await
    }

    /// The version in `row`; without one, NotFound for the config if it does not exist,
    /// else NotFound for `name@which`.
    async fn version_or_not_found(
        &self,
        row: Option<AnyRow>,
        name: String,
        which: &str,
    ) -> Result<ConfigVersion> {
        match row {
            Some(row) => version_from_row(&row),
            None => {
                self.get_config_impl(name.clone()).await?;
                Err(Error::not_found(
                    EntityKind::ConfigVersion,
                    format!("{name}@{which}"),
                ))
            }
        }
    }

    pub(super) async fn list_config_versions_impl(
        &self,
        name: String,
        page: PageRequest,
    ) -> Result<Page<ConfigVersion>> {
        let limit = page.effective_limit();
        let mut sql = Sql::new(&format!(
            "SELECT {VERSION_COLUMNS} FROM config_versions WHERE config = "
        ));
        sql.bind(name.as_str());
        if let Some(c) = &page.cursor {
            let before: i64 = c
                .parse()
                .map_err(|_| Error::invalid("cursor", format!("{c:?} is not a version cursor")))?;
            sql.push(" AND version < ").bind(before);
        }
        sql.push(" ORDER BY version DESC LIMIT ")
            .bind(i64::from(limit) + 1);
        let rows = sql.query().fetch_all(&self.inner.read).await?;
        if rows.is_empty() && page.cursor.is_none() {
            // Distinguish "no such config" from "no versions yet".
            self.get_config_impl(name).await?;
        }
        let items = rows
            .iter()
            .map(version_from_row)
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::from_rows(items, limit, |v| v.version.to_string()))
    }
}
