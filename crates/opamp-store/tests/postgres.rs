//! The shared store suite against PostgreSQL: a throwaway cluster started from Debian's
//! binaries (see `src/testing/pg.rs`), one fresh database per test. Skipped with a message when
//! PostgreSQL is not installed, unless OPAMP_REQUIRE_POSTGRES=1.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and their support modules may unwrap

mod common;
mod support;

use opamp_store::{AssignmentTarget, ChangeEvent, NewAssignment};
use support::Db;

store_suite!(Db::postgres());

/// Two replicas on one database: a change committed through one reaches the other's
/// subscribers through LISTEN/NOTIFY (DESIGN §4).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_events_reach_other_replicas_via_notify() {
    let Some(db) = Db::postgres().await else {
        return;
    };
    let a = db.open().await;
    let b = db.open().await;
    let mut on_a = a.subscribe();
    let mut on_b = b.subscribe();
    a.add_config_version(&common::alice(), common::version("web", "1"))
        .await
        .unwrap();
    assert_eq!(
        common::next_event(&mut on_b).await,
        ChangeEvent::ConfigVersionAdded {
            config: "web".into(),
            version: 1
        }
    );
    let asg = a
        .put_assignment(
            &common::alice(),
            NewAssignment {
                config: "web".into(),
                version: None,
                target: AssignmentTarget::Selector("a=b".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        common::next_event(&mut on_b).await,
        ChangeEvent::AssignmentChanged {
            id: asg.id,
            target: AssignmentTarget::Selector("a=b".into())
        }
    );
    // What B writes, A hears too, after its own changes, in commit order.
    b.delete_assignment(&common::alice(), asg.id).await.unwrap();
    assert!(matches!(
        common::next_event(&mut on_a).await,
        ChangeEvent::ConfigVersionAdded { .. }
    ));
    assert!(matches!(
        common::next_event(&mut on_a).await,
        ChangeEvent::AssignmentChanged { .. }
    ));
    assert!(matches!(
        common::next_event(&mut on_a).await,
        ChangeEvent::AssignmentDeleted { .. }
    ));
    assert_eq!(a.backend(), opamp_store::BackendKind::Postgres);
}

/// Two replicas starting at once both migrate safely (advisory lock around migrations).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_opens_migrate_once() {
    let Some(db) = Db::postgres().await else {
        return;
    };
    let (a, b, c) = tokio::join!(db.open(), db.open(), db.open());
    assert_eq!(db.count("schema_version").await, 1);
    for s in [a, b, c] {
        s.close().await.unwrap();
    }
}

#[tokio::test]
async fn bad_postgres_url_is_a_clear_backend_error() {
    // Port 1 on loopback: nothing listens; the message names the redacted URL.
    let err = opamp_store::open("postgres://u:secret@127.0.0.1:1/db", Default::default())
        .await
        .err()
        .expect("connect must fail");
    let msg = err.to_string();
    assert!(msg.contains("cannot connect to PostgreSQL"), "{msg}");
    assert!(!msg.contains("secret"), "{msg}");
}

/// The listener connection dies (server restart, network, an idle reaper): subscribers are
/// told to resync, and events flow again once it reconnects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_loss_means_resync_then_events_flow_again() {
    let Some(db) = Db::postgres().await else {
        return;
    };
    let store = db.open().await;
    let mut sub = store.subscribe();
    db.exec(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN%' AND pid <> pg_backend_pid()",
    )
    .await;
    common::wait_for(&mut sub, &ChangeEvent::Resync).await;
    // Changes after the reconnect arrive again (retry: the listener may still be
    // reconnecting when the first one commits).
    for attempt in 0..50 {
        let name = format!("after{attempt}");
        store
            .create_group(
                &common::alice(),
                opamp_store::Group {
                    name: name.clone(),
                    selector: "a=b".into(),
                    description: String::new(),
                    created_at: opamp_store::Timestamp(0),
                    updated_at: opamp_store::Timestamp(0),
                },
            )
            .await
            .unwrap();
        match tokio::time::timeout(std::time::Duration::from_millis(500), sub.recv()).await {
            Ok(Some(ChangeEvent::GroupChanged { name: got })) if got == name => return,
            _ => continue,
        }
    }
    panic!("no change event after the listener reconnected");
}

/// A payload this version cannot read (a newer replica's event type) becomes a resync, never
/// a crash or a silently dropped change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_change_event_from_a_newer_replica_means_resync() {
    let Some(db) = Db::postgres().await else {
        return;
    };
    let store = db.open().await;
    let mut sub = store.subscribe();
    db.exec(r#"NOTIFY opamp_changes, '{"type":"rollout_started","id":1}'"#)
        .await;
    assert_eq!(common::next_event(&mut sub).await, ChangeEvent::Resync);
}
