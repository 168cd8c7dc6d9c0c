//! Durability of the SQLite backend when the process dies without closing anything: a child
//! process (this test binary, re-run as `child_writer`) keeps writing, reports each commit,
//! and is killed with SIGKILL mid-stream; the parent reopens the file and finds every
//! reported commit, with the database intact.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and their support modules may unwrap

mod common;
mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use opamp_store::{
    AgentFilter, AssignmentTarget, NewAssignment, PageRequest, SqlStore, Store, StoreOptions,
};

const CHILD_ENV: &str = "OPAMP_STORE_KILL_CHILD_DIR";

/// The child's work (does nothing unless started by the parent test).
#[tokio::test]
async fn child_writer() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let store = SqlStore::open(&dir, StoreOptions::default()).await.unwrap();
    let me = common::alice();
    store
        .upsert_agent(common::described(1, "checkout", 1))
        .await
        .unwrap();
    store
        .set_labels(
            &me,
            common::uid(1),
            [("env".to_owned(), "prod".to_owned())].into(),
        )
        .await
        .unwrap();
    store
        .add_config_version(&me, common::version("web", "0"))
        .await
        .unwrap();
    store
        .put_assignment(
            &me,
            NewAssignment {
                config: "web".into(),
                version: None,
                target: AssignmentTarget::Selector("service.name=checkout".into()),
            },
        )
        .await
        .unwrap();
    for i in 1u32.. {
        store
            .add_config_version(&me, common::version("web", &i.to_string()))
            .await
            .unwrap();
        store
            .upsert_agent(common::described((i % 200) as u8 + 2, "s", i64::from(i)))
            .await
            .unwrap();
        // Reported only after both commits returned.
        println!("COMMITTED {}", i + 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_survives_kill_9_with_every_reported_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["child_writer", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reported = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::task::spawn_blocking(move || {
            let mut last = 0u64;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(n) = line.strip_prefix("COMMITTED ") {
                    last = n.trim().parse().unwrap();
                    if last >= 40 {
                        // Kill while it is still writing.
                        break;
                    }
                }
            }
            child.kill().unwrap(); // SIGKILL on Unix
            child.wait().unwrap();
            assert!(
                last >= 40,
                "child stopped before writing enough (last commit {last})"
            );
            last
        }),
    )
    .await
    .expect("deadlock guard: the child did not report in 120 s")
    .unwrap();

    let store = SqlStore::open(dir.to_str().unwrap(), StoreOptions::default())
        .await
        .unwrap();
    let latest = store.get_config("web").await.unwrap().latest_version;
    assert!(
        latest >= reported,
        "every reported version survives: reported {reported}, found {latest}"
    );
    // Versions are contiguous: no half-written version.
    let versions = store
        .list_config_versions("web", PageRequest::first(1000))
        .await
        .unwrap()
        .items;
    assert_eq!(versions.len() as u64, latest);
    assert!(versions.iter().all(|v| v.config_map.files.len() == 1));
    assert_eq!(store.list_assignments().await.unwrap().len(), 1);
    let a = store.get_agent(common::uid(1)).await.unwrap();
    assert_eq!(a.labels["env"], "prod");
    assert!(store.count_agents(AgentFilter::default()).await.unwrap() >= 2);
    // And SQLite itself finds the file sound.
    let url = format!("sqlite://{}/opamp.db", dir.display());
    let check: String = {
        use sqlx::Connection as _;
        sqlx::any::install_default_drivers();
        let mut c = sqlx::AnyConnection::connect(&url).await.unwrap();
        sqlx::Row::get(
            &sqlx::query("PRAGMA integrity_check")
                .fetch_one(&mut c)
                .await
                .unwrap(),
            0,
        )
    };
    assert_eq!(check, "ok");
    Store::close(&store).await.unwrap();
}
