//! The SQL backends: one implementation over sqlx's `Any` driver for SQLite and PostgreSQL.
//!
//! Both dialects get the same statements (`$n` placeholders, `INSERT ... ON CONFLICT`,
//! `RETURNING`, integer timestamps, JSON as text); the few that differ are chosen by
//! [`Dialect`]. Values cross the driver as `i64`, `String` and `Option`s of them only (the
//! types `Any` maps identically for both).
//!
//! SQLite: one file, WAL, `synchronous = NORMAL` (a committed transaction survives a killed
//! process; an OS crash may lose the last ones), foreign keys on, a busy timeout, and all
//! writes through a single pooled connection (SQLite has one writer anyway; queueing in the
//! pool avoids `SQLITE_BUSY` between our own connections) while reads use several.
//!
//! PostgreSQL: one pool for reads and writes; change events go out with `pg_notify` inside
//! the writing transaction, so they are delivered exactly when the change commits.

mod agents;
mod audit;
mod configs;
mod fleet;
mod listen;
mod migrate;
mod trait_impl;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::any::{AnyArguments, AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, Connection as _, Row};
use tokio::sync::broadcast;

use crate::{Actor, AuditEntry, BackendKind, ChangeEvent, Error, Result, Timestamp};

/// Tuning knobs for [`SqlStore`]; `Default` suits one opampd.
#[derive(Clone)]
#[non_exhaustive]
pub struct StoreOptions {
    /// Pooled connections (PostgreSQL: reads and writes; SQLite: readers, plus one writer).
    pub max_connections: u32,
    /// How long to wait for a pooled connection before failing.
    pub acquire_timeout: Duration,
    /// SQLite: how long a statement waits for a lock held by another process.
    pub busy_timeout: Duration,
    /// Timeline entries kept per agent (older ones are dropped on append).
    pub events_per_agent: u32,
    /// Buffered change events per subscriber before it gets a `Resync`.
    pub change_buffer: usize,
    /// The clock used to stamp operator changes (tests pass a fixed one).
    pub clock: Arc<dyn Fn() -> Timestamp + Send + Sync>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(30),
            busy_timeout: Duration::from_secs(10),
            events_per_agent: 200,
            change_buffer: 4096,
            clock: Arc::new(Timestamp::now),
        }
    }
}

impl std::fmt::Debug for StoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreOptions")
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("busy_timeout", &self.busy_timeout)
            .field("events_per_agent", &self.events_per_agent)
            .field("change_buffer", &self.change_buffer)
            .finish_non_exhaustive()
    }
}

/// The SQL dialect in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// A [`crate::Store`] on SQLite or PostgreSQL. Cheap to clone (shared state).
#[derive(Clone, Debug)]
pub struct SqlStore {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    dialect: Dialect,
    /// Reads. For PostgreSQL the same pool as `write`.
    read: AnyPool,
    /// Writes (SQLite: exactly one connection).
    write: AnyPool,
    changes: broadcast::Sender<ChangeEvent>,
    listener: Option<tokio::task::JoinHandle<()>>,
    /// PostgreSQL URL, for dedicated lease connections.
    url: Option<String>,
    local_leases: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    opts: StoreOptions,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("dialect", &self.dialect)
            .field("options", &self.opts)
            .finish_non_exhaustive()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(h) = self.listener.take() {
            h.abort();
        }
    }
}

/// The file name of the SQLite database inside a data directory.
pub const SQLITE_FILE_NAME: &str = "opamp.db";

impl SqlStore {
    /// Opens the store named by `location`: a `postgres://` or `postgresql://` URL, a
    /// `sqlite:` path to a database file, or else a data directory that holds (or will hold)
    /// [`SQLITE_FILE_NAME`]. Applies pending migrations.
    pub async fn open(location: &str, opts: StoreOptions) -> Result<Self> {
        if location.starts_with("postgres://") || location.starts_with("postgresql://") {
            Self::connect_postgres(location, opts).await
        } else if let Some(path) = location
            .strip_prefix("sqlite://")
            .or_else(|| location.strip_prefix("sqlite:"))
        {
            Self::open_sqlite_file(Path::new(path), opts).await
        } else {
            Self::open_sqlite_dir(Path::new(location), opts).await
        }
    }

    /// Opens (creating if needed) `<dir>/opamp.db`, creating `dir` too.
    pub async fn open_sqlite_dir(dir: &Path, opts: StoreOptions) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::Backend {
            message: format!("cannot create data directory {}: {e}", dir.display()),
            source: Some(Box::new(e)),
        })?;
        Self::open_sqlite_file(&dir.join(SQLITE_FILE_NAME), opts).await
    }

    /// Opens (creating if needed) one SQLite database file.
    pub async fn open_sqlite_file(path: &Path, opts: StoreOptions) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let url = sqlite_url(path)?;
        let busy_ms = opts.busy_timeout.as_millis();
        let setup = format!(
            "PRAGMA busy_timeout = {busy_ms}; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;"
        );
        let setup: Arc<str> = Arc::from(setup);
        let pool = |max: u32| {
            let setup = Arc::clone(&setup);
            AnyPoolOptions::new()
                .max_connections(max)
                .min_connections(0)
                .acquire_timeout(opts.acquire_timeout)
                .after_connect(move |conn, _meta| {
                    let setup = Arc::clone(&setup);
                    Box::pin(async move {
                        sqlx::Executor::execute(conn, &*setup).await?;
                        Ok(())
                    })
                })
        };
        let write = pool(1)
            .connect(&url)
            .await
            .map_err(|e| open_error(path, e))?;
        // WAL is a property of the file: set once, by the writer.
        let mode: String = sqlx::query("PRAGMA journal_mode = WAL")
            .fetch_one(&write)
            .await
            .and_then(|r| r.try_get(0))
            .map_err(|e| open_error(path, e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::backend(format!(
                "SQLite refused WAL mode for {} (journal mode is {mode})",
                path.display()
            )));
        }
        migrate::run(&write, Dialect::Sqlite).await?;
        let read = pool(opts.max_connections.max(1))
            .connect(&url)
            .await
            .map_err(|e| open_error(path, e))?;
        let (changes, _) = broadcast::channel(opts.change_buffer.max(16));
        Ok(Self::assemble(
            Dialect::Sqlite,
            read,
            write,
            changes,
            None,
            None,
            opts,
        ))
    }

    /// Connects to PostgreSQL (`postgres://user:pass@host:port/db?sslmode=...`), applies
    /// pending migrations, and starts listening for change events from other replicas.
    pub async fn connect_postgres(url: &str, opts: StoreOptions) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let connect_error = |e: sqlx::Error| {
            let mut err = Error::from(e);
            if let Error::Backend { message, .. } = &mut err {
                *message = format!("cannot connect to PostgreSQL at {}: {message}", redact(url));
            }
            err
        };
        // One direct connection first: a wrong host, port or password fails at once with the
        // server's answer, instead of after the pool's acquire timeout.
        let probe = sqlx::AnyConnection::connect(url)
            .await
            .map_err(connect_error)?;
        let _ = sqlx::Connection::close(probe).await;
        let pool = AnyPoolOptions::new()
            .max_connections(opts.max_connections.max(2))
            .min_connections(0)
            .acquire_timeout(opts.acquire_timeout)
            .connect(url)
            .await
            .map_err(connect_error)?;
        migrate::run(&pool, Dialect::Postgres).await?;
        let (changes, _) = broadcast::channel(opts.change_buffer.max(16));
        let listener = listen::start(url, changes.clone()).await?;
        Ok(Self::assemble(
            Dialect::Postgres,
            pool.clone(),
            pool,
            changes,
            Some(listener),
            Some(url.to_owned()),
            opts,
        ))
    }

    fn assemble(
        dialect: Dialect,
        read: AnyPool,
        write: AnyPool,
        changes: broadcast::Sender<ChangeEvent>,
        listener: Option<tokio::task::JoinHandle<()>>,
        url: Option<String>,
        opts: StoreOptions,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                dialect,
                read,
                write,
                changes,
                listener,
                url,
                local_leases: Mutex::new(HashMap::new()),
                opts,
            }),
        }
    }

    /// The schema version of the open database.
    pub async fn schema_version(&self) -> Result<i64> {
        migrate::current(&self.inner.read).await
    }

    pub(crate) fn kind(&self) -> BackendKind {
        match self.inner.dialect {
            Dialect::Sqlite => BackendKind::Sqlite,
            Dialect::Postgres => BackendKind::Postgres,
        }
    }

    pub(crate) fn now(&self) -> Timestamp {
        (self.inner.opts.clock)()
    }

    async fn begin(&self) -> Result<Tx> {
        Ok(Tx {
            tx: self.inner.write.begin().await?,
            events: Vec::new(),
        })
    }

    /// Commits, then announces the transaction's change events (PostgreSQL: queued with
    /// `pg_notify` inside the transaction, so they go out exactly on commit).
    async fn commit(&self, mut tx: Tx) -> Result<()> {
        match self.inner.dialect {
            Dialect::Postgres => {
                for e in &tx.events {
                    let payload = serde_json::to_string(e)
                        .map_err(|e| Error::backend(format!("cannot encode change event: {e}")))?;
                    sqlx::query("SELECT pg_notify('opamp_changes', $1)")
                        .bind(payload)
                        .execute(&mut *tx.tx)
                        .await?;
                }
                tx.tx.commit().await?;
            }
            Dialect::Sqlite => {
                tx.tx.commit().await?;
                for e in tx.events {
                    // No subscribers is fine.
                    let _ = self.inner.changes.send(e);
                }
            }
        }
        Ok(())
    }

    /// Appends an audit row inside `tx`.
    async fn audit(
        &self,
        tx: &mut Tx,
        actor: &Actor,
        action: &str,
        target: &str,
        details: serde_json::Value,
    ) -> Result<AuditEntry> {
        let at = self.now();
        let actor = actor.to_string();
        let text = details.to_string();
        let row = sqlx::query(
            "INSERT INTO audit_log (at, actor, action, target, details) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(at.0)
        .bind(clean(&actor))
        .bind(clean(action))
        .bind(clean(target))
        .bind(text)
        .fetch_one(&mut *tx.tx)
        .await?;
        Ok(AuditEntry {
            id: row.try_get(0)?,
            at,
            actor,
            action: action.to_owned(),
            target: target.to_owned(),
            details,
        })
    }
}

/// A write transaction plus the change events to announce when it commits.
pub(crate) struct Tx {
    tx: sqlx::Transaction<'static, Any>,
    events: Vec<ChangeEvent>,
}

impl Tx {
    fn conn(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.tx
    }

    fn announce(&mut self, e: ChangeEvent) {
        self.events.push(e);
    }
}

/// One bound value. `Any` maps these identically in both backends.
#[derive(Clone, Debug)]
pub(crate) enum Arg {
    I64(i64),
    Text(String),
    OptI64(Option<i64>),
    OptText(Option<String>),
}

impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::I64(v)
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(v)
    }
}
impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(v.to_owned())
    }
}
impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Self {
        Arg::OptI64(v)
    }
}
impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Self {
        Arg::OptText(v)
    }
}

/// A statement built piece by piece with numbered placeholders.
#[derive(Debug, Default)]
pub(crate) struct Sql {
    pub(crate) text: String,
    args: Vec<Arg>,
}

impl Sql {
    pub(crate) fn new(text: &str) -> Self {
        Self {
            text: text.to_owned(),
            args: Vec::new(),
        }
    }

    /// Appends raw SQL.
    pub(crate) fn push(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self
    }

    /// Appends a placeholder for `v`.
    pub(crate) fn bind(&mut self, v: impl Into<Arg>) -> &mut Self {
        let p = self.placeholder(v);
        self.text.push_str(&p);
        self
    }

    /// Registers `v` and returns its placeholder (`$n`) without appending it, for values
    /// used more than once.
    pub(crate) fn placeholder(&mut self, v: impl Into<Arg>) -> String {
        self.args.push(v.into());
        let mut p = String::new();
        let _ = write!(p, "${}", self.args.len());
        p
    }

    pub(crate) fn query(&self) -> sqlx::query::Query<'_, Any, AnyArguments<'_>> {
        let mut q = sqlx::query(&self.text);
        for a in &self.args {
            q = match a {
                Arg::I64(v) => q.bind(*v),
                Arg::Text(v) => q.bind(v.as_str()),
                Arg::OptI64(v) => q.bind(*v),
                Arg::OptText(v) => q.bind(v.as_deref()),
            };
        }
        q
    }
}

/// Text for a TEXT column: PostgreSQL refuses NUL in text, so agent-supplied strings have
/// theirs replaced (JSON columns escape it and need nothing).
pub(crate) fn clean(s: &str) -> String {
    if s.contains('\0') {
        s.replace('\0', "\u{FFFD}")
    } else {
        s.to_owned()
    }
}

/// Reads a column, turning a decode failure into a backend error that names the column.
pub(crate) fn col<'r, T>(row: &'r AnyRow, name: &str) -> Result<T>
where
    T: sqlx::Decode<'r, Any> + sqlx::Type<Any>,
{
    row.try_get(name)
        .map_err(|e| Error::corrupt(&format!("column {name}"), e))
}

/// Parses a stored JSON column.
pub(crate) fn json<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| Error::corrupt(what, e))
}

/// Parses a stored optional JSON column.
pub(crate) fn opt_json<T: serde::de::DeserializeOwned>(
    what: &str,
    text: Option<String>,
) -> Result<Option<T>> {
    text.map(|t| json(what, &t)).transpose()
}

/// A stored version number or other count as `u64`.
pub(crate) fn unsigned(what: &str, v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| Error::corrupt(what, format!("negative value {v}")))
}

/// A `u64` from the caller as a database integer.
pub(crate) fn signed(what: &'static str, v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::invalid(what, format!("{v} is out of range")))
}

fn open_error(path: &Path, e: sqlx::Error) -> Error {
    let mut err = Error::from(e);
    if let Error::Backend { message, .. } = &mut err {
        *message = format!("cannot open SQLite database {}: {message}", path.display());
    }
    err
}

/// `sqlite://` URL for a path, percent-encoding everything but unreserved characters and
/// `/`, and asking SQLite to create the file.
fn sqlite_url(path: &Path) -> Result<String> {
    let abs: PathBuf = if path.is_absolute() {
        path.to_owned()
    } else {
        std::env::current_dir()
            .map_err(|e| Error::backend(format!("cannot resolve {}: {e}", path.display())))?
            .join(path)
    };
    let s = abs.to_str().ok_or_else(|| {
        Error::invalid(
            "SQLite path",
            format!("{} is not valid UTF-8", abs.display()),
        )
    })?;
    let mut url = String::from("sqlite://");
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.' | b'~') {
            url.push(b as char);
        } else {
            let _ = write!(url, "%{b:02X}");
        }
    }
    url.push_str("?mode=rwc");
    Ok(url)
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..s + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_escape_odd_paths() {
        let u = sqlite_url(Path::new("/tmp/a b/opamp#1.db")).unwrap();
        assert_eq!(u, "sqlite:///tmp/a%20b/opamp%231.db?mode=rwc");
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://opamp:s3cret@db:5432/fleet"),
            "postgres://opamp:***@db:5432/fleet"
        );
        assert_eq!(redact("postgres://db/fleet"), "postgres://db/fleet");
    }

    #[test]
    fn placeholders_are_numbered_in_order() {
        let mut s = Sql::new("SELECT 1 WHERE a = ");
        s.bind(1i64).push(" AND b = ").bind("x");
        let p = s.placeholder(3i64);
        s.push(" AND c = ").push(&p).push(" AND d = ").push(&p);
        assert_eq!(
            s.text,
            "SELECT 1 WHERE a = $1 AND b = $2 AND c = $3 AND d = $3"
        );
    }

    #[test]
    fn nul_is_cleaned_from_text() {
        assert_eq!(clean("a\0b"), "a\u{FFFD}b");
        assert_eq!(clean("ab"), "ab");
    }
}
