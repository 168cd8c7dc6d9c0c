//! A throwaway PostgreSQL for tests, from Debian's `postgresql` package.
//!
//! The first test that asks starts one cluster for the whole test binary: `initdb` into a
//! temporary directory (as the `postgres` user when the tests run as root, since PostgreSQL
//! refuses to run as root), `pg_ctl start` on a free loopback port (retried on a port
//! collision), trust authentication, fsync off. Each test then gets its own fresh database.
//! A watchdog shell waits for the test process to exit, however it exits, then stops the
//! server and removes the directory.
//!
//! Without PostgreSQL binaries the PostgreSQL tests print a "skipped" line and pass, unless
//! `OPAMP_REQUIRE_POSTGRES=1` is set (CI), where that is a failure. `OPAMP_PG_BIN` names
//! a directory holding `initdb` and `pg_ctl` to use instead of the Debian locations.
//!
//! ```no_run
//! # async fn t() {
//! // In a #[tokio::test]:
//! let Some(url) = opamp_store::testing::pg::fresh_database().await else {
//!     return; // skipped: PostgreSQL not installed
//! };
//! let store = opamp_store::open(&url, Default::default()).await.unwrap();
//! # }
//! ```
//!
//! This file is also compiled into opamp-store's own integration tests (`tests/support`).

#![allow(dead_code, unreachable_pub)]

use std::net::TcpListener;
use std::os::unix::fs::chown;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::Connection as _;

/// The running cluster of this test process.
#[derive(Debug)]
pub struct PgCluster {
    /// The temporary directory (data directory `data/`, the Unix socket, the logs).
    pub dir: PathBuf,
    /// The loopback TCP port it listens on.
    pub port: u16,
    bin: PathBuf,
    run_as: Option<(u32, u32)>,
}

/// The directory holding `initdb` and `pg_ctl`: `$OPAMP_PG_BIN`, else the newest
/// `/usr/lib/postgresql/<major>/bin`.
pub fn find_bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("OPAMP_PG_BIN") {
        let dir = PathBuf::from(dir);
        return dir.join("initdb").exists().then_some(dir);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").exists() && bin.join("pg_ctl").exists()).then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, b)| b)
}

/// True when `OPAMP_REQUIRE_POSTGRES` is `1` or `true` (a missing PostgreSQL fails tests).
pub fn required() -> bool {
    std::env::var("OPAMP_REQUIRE_POSTGRES").is_ok_and(|v| v == "1" || v == "true")
}

/// uid and gid of the `postgres` user, from /etc/passwd.
fn postgres_user() -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&"postgres") && f.len() > 3)
            .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
            .flatten()
    })
}

fn is_root() -> bool {
    // The effective uid, without libc: /proc/self/status "Uid: real effective ...".
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

impl PgCluster {
    /// A command that runs `program` from the PostgreSQL bin directory, as `postgres` when
    /// we are root.
    fn cmd(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        match self.run_as {
            Some(_) => {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(path);
                c
            }
            None => Command::new(path),
        }
    }

    fn start() -> Result<Option<PgCluster>, String> {
        let Some(bin) = find_bin_dir() else {
            return Ok(None);
        };
        let run_as =
            if is_root() {
                Some(postgres_user().ok_or(
                    "running as root but there is no `postgres` user to run PostgreSQL as",
                )?)
            } else {
                None
            };
        // A short path: the Unix socket lives here too (108-byte limit).
        let dir = tempfile::Builder::new()
            .prefix("opamp-pg-")
            .tempdir_in("/tmp")
            .map_err(|e| format!("temp dir: {e}"))?
            .keep();
        if let Some((uid, gid)) = run_as {
            chown(&dir, Some(uid), Some(gid))
                .map_err(|e| format!("chown {}: {e}", dir.display()))?;
        }
        let mut cluster = PgCluster {
            dir,
            port: 0,
            bin,
            run_as,
        };
        cluster.spawn_watchdog()?;
        let data = cluster.dir.join("data");
        let out = cluster
            .cmd("initdb")
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "opamp",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run initdb: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "initdb failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let mut last_error = String::new();
        for _attempt in 0..5 {
            let port = free_port().map_err(|e| format!("no free port: {e}"))?;
            let opts = format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off \
                 -c synchronous_commit=off -c full_page_writes=off -c max_connections=300",
                cluster.dir.display()
            );
            let log = cluster.dir.join(format!("log-{port}"));
            let out = cluster
                .cmd("pg_ctl")
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(&log)
                .args(["-w", "-t", "120", "-o", &opts, "start"])
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("cannot run pg_ctl: {e}"))?;
            if out.status.success() {
                cluster.port = port;
                return Ok(Some(cluster));
            }
            let log_text = std::fs::read_to_string(&log).unwrap_or_default();
            last_error = format!(
                "pg_ctl start failed on port {port}: {}{}\n{log_text}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            if !log_text.contains("already in use") {
                break;
            }
        }
        Err(last_error)
    }

    /// Stops the server and deletes the directory once this process has exited.
    fn spawn_watchdog(&self) -> Result<(), String> {
        let pid = std::process::id();
        let pg_ctl = self.bin.join("pg_ctl");
        let stop = match self.run_as {
            Some(_) => format!("runuser -u postgres -- {} ", pg_ctl.display()),
            None => format!("{} ", pg_ctl.display()),
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             {stop} -D '{dir}/data' -m immediate stop >/dev/null 2>&1; rm -rf '{dir}'",
            dir = self.dir.display()
        );
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map(|_| ())
            .map_err(|e| format!("cannot start the cleanup watchdog: {e}"))
    }

    /// The URL of database `db`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://opamp@127.0.0.1:{}/{db}", self.port)
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

static CLUSTER: OnceLock<Result<Option<PgCluster>, String>> = OnceLock::new();

/// The shared cluster: `None` when PostgreSQL is not installed and not required (the
/// caller skips); panics when it is required but missing, or fails to start.
pub fn cluster() -> Option<&'static PgCluster> {
    match CLUSTER.get_or_init(PgCluster::start) {
        Ok(Some(c)) => Some(c),
        Ok(None) => {
            if required() {
                panic!(
                    "OPAMP_REQUIRE_POSTGRES=1 but PostgreSQL is not installed \
                     (no /usr/lib/postgresql/*/bin/initdb): apt-get install postgresql"
                );
            }
            eprintln!("skipped: PostgreSQL not installed (apt-get install postgresql)");
            None
        }
        Err(e) => panic!("could not start a test PostgreSQL: {e}"),
    }
}

static NEXT_DB: AtomicU32 = AtomicU32::new(1);

/// A fresh, empty database on the shared cluster: its URL, or `None` to skip.
pub async fn fresh_database() -> Option<String> {
    // Starting the cluster blocks (initdb, pg_ctl -w): keep it off the async workers.
    let cluster = tokio::task::spawn_blocking(cluster)
        .await
        .expect("cluster start panicked")?;
    let name = format!(
        "t{}_{}",
        std::process::id(),
        NEXT_DB.fetch_add(1, Ordering::Relaxed)
    );
    let mut admin = sqlx::PgConnection::connect(&cluster.url("postgres"))
        .await
        .expect("connect to the test PostgreSQL");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("create test database");
    let _ = admin.close().await;
    Some(cluster.url(&name))
}
