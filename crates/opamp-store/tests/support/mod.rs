//! Test fixtures: a database location per backend that a test can open, close and reopen.

#![allow(dead_code, unreachable_pub)]

#[path = "../../src/testing/pg.rs"]
pub mod pg;

use std::sync::Arc;

use opamp_store::{BackendKind, SqlStore, Store, StoreOptions};
use sqlx::Connection as _;

/// One test's database: a fresh SQLite data directory or a fresh PostgreSQL database.
pub struct Db {
    pub kind: BackendKind,
    /// What `SqlStore::open` takes: a directory or a `postgres://` URL.
    pub location: String,
    _dir: Option<tempfile::TempDir>,
}

impl Db {
    pub async fn sqlite() -> Db {
        let dir = tempfile::tempdir().expect("temp dir");
        Db {
            kind: BackendKind::Sqlite,
            location: dir
                .path()
                .join("data")
                .to_str()
                .expect("utf-8 temp path")
                .to_owned(),
            _dir: Some(dir),
        }
    }

    /// `None` when PostgreSQL is not installed (the test passes as skipped).
    pub async fn postgres() -> Option<Db> {
        Some(Db {
            kind: BackendKind::Postgres,
            location: pg::fresh_database().await?,
            _dir: None,
        })
    }

    pub async fn open(&self) -> Arc<dyn Store> {
        Arc::new(self.open_with(StoreOptions::default()).await)
    }

    pub async fn open_with(&self, opts: StoreOptions) -> SqlStore {
        SqlStore::open(&self.location, opts)
            .await
            .unwrap_or_else(|e| panic!("open {}: {e}", self.location))
    }

    /// A driver-level URL, for statements the trait does not offer (tests only).
    pub fn url(&self) -> String {
        match self.kind {
            BackendKind::Sqlite => format!("sqlite://{}/opamp.db", self.location),
            _ => self.location.clone(),
        }
    }

    /// Runs raw SQL next to the store (e.g. to fake a newer schema).
    pub async fn exec(&self, sql: &str) {
        sqlx::any::install_default_drivers();
        let mut c = sqlx::AnyConnection::connect(&self.url())
            .await
            .expect("raw connect");
        sqlx::raw_sql(sql).execute(&mut c).await.expect("raw sql");
        let _ = c.close().await;
    }

    /// Counts rows of a table directly.
    pub async fn count(&self, table: &str) -> i64 {
        sqlx::any::install_default_drivers();
        let mut c = sqlx::AnyConnection::connect(&self.url())
            .await
            .expect("raw connect");
        let n: i64 = sqlx::Row::get(
            &sqlx::query(&format!("SELECT COUNT(*) FROM {table}"))
                .fetch_one(&mut c)
                .await
                .expect("count"),
            0,
        );
        let _ = c.close().await;
        n
    }
}
