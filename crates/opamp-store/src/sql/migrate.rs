//! Schema migrations: embedded SQL files, applied in order at open, recorded in
//! `schema_version`. Forward-only and idempotent (an applied version is never run again); a
//! database newer than this binary is refused with [`Error::SchemaTooNew`].

use sqlx::{AnyPool, Row};

use super::Dialect;
use crate::{Error, Result, Timestamp};

/// One schema step, in both dialects.
struct Migration {
    version: i64,
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "initial schema",
    sqlite: include_str!("../../migrations/sqlite/0001_initial.sql"),
    postgres: include_str!("../../migrations/postgres/0001_initial.sql"),
}];

/// The newest schema version this binary knows.
pub(crate) const LATEST: i64 = 1;

/// Serializes migrations between replicas starting at once (PostgreSQL advisory lock key).
const MIGRATION_LOCK: i64 = 0x6f70_616d_705f_6d67; // "opamp_mg"

pub(crate) async fn run(pool: &AnyPool, dialect: Dialect) -> Result<()> {
    debug_assert_eq!(MIGRATIONS.last().map(|m| m.version), Some(LATEST));
    let mut tx = pool.begin().await?;
    if dialect == Dialect::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS schema_version (\
           version BIGINT PRIMARY KEY NOT NULL, \
           name TEXT NOT NULL, \
           applied_at BIGINT NOT NULL)",
    )
    .execute(&mut *tx)
    .await?;
    let current: i64 = sqlx::query("SELECT COALESCE(MAX(version), 0) FROM schema_version")
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
    if current > LATEST {
        return Err(Error::SchemaTooNew {
            found: current,
            supported: LATEST,
        });
    }
    for m in MIGRATIONS.iter().filter(|m| m.version > current) {
        let sql = match dialect {
            Dialect::Sqlite => m.sqlite,
            Dialect::Postgres => m.postgres,
        };
        sqlx::raw_sql(sql).execute(&mut *tx).await.map_err(|e| {
            let mut err = Error::from(e);
            if let Error::Backend { message, .. } = &mut err {
                *message = format!("migration {} ({}) failed: {message}", m.version, m.name);
            }
            err
        })?;
        sqlx::query("INSERT INTO schema_version (version, name, applied_at) VALUES ($1, $2, $3)")
            .bind(m.version)
            .bind(m.name)
            .bind(Timestamp::now().0)
            .execute(&mut *tx)
            .await?;
        tracing::info!(
            version = m.version,
            name = m.name,
            "applied store migration"
        );
    }
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn current(pool: &AnyPool) -> Result<i64> {
    Ok(
        sqlx::query("SELECT COALESCE(MAX(version), 0) FROM schema_version")
            .fetch_one(pool)
            .await?
            .try_get(0)?,
    )
}
