//! The shared suite: every case runs against SQLite and PostgreSQL (see `sqlite.rs` and
//! `postgres.rs`, which instantiate it with `store_suite!`).

#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use opamp_config::{ConfigFile, ConfigMap};
use opamp_proto::{AgentCapabilities, InstanceUid};
use opamp_store::{
    Actor, AgentDescription, AgentEventKind, AgentFilter, AgentUpdate, AssignmentTarget,
    AuditFilter, BackendKind, BatcherConfig, ChangeEvent, Command, EntityKind, Error, Group,
    LastSeenBatcher, NewAssignment, NewConfigVersion, NewToken, PageRequest, RemoteConfigState,
    RemoteConfigStatus, Role, Store, StoreOptions, Subscription, Timestamp, TokenHash, Transport,
    actions, generate_secret,
};
use serde_json::json;

use crate::support::Db;

/// Instantiates every case for one backend: `store_suite!(make_db_expr)` where the
/// expression is an `async` block giving `Option<Db>` (`None` = skip).
#[macro_export]
macro_rules! store_suite {
    ($make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(db) = $make.await else { return };
                tokio::time::timeout(
                    std::time::Duration::from_secs(120),
                    common::$case(&db),
                )
                .await
                .expect("deadlock guard: case took over 120 s");
            }
        )*
    };
    ($make:expr) => {
        store_suite!($make;
            agent_upsert_writes_only_changed_sub_states_seq_8,
            effective_config_hash_is_computed_and_list_omits_bodies_eff_2_rcfg_2,
            remote_config_status_changes_append_timeline_events_rcfg_6,
            connect_disconnect_and_stale_replica_cleanup_disc_6,
            touch_last_seen_moves_forward_only_hb_4,
            batched_status_upserts_commit_together_seq_8,
            list_agents_filters_and_cursor_pagination,
            labels_set_remove_validate_and_override_attributes,
            delete_agent_cascades_and_announces,
            config_versions_number_from_one_and_dedup_equal_latest_rcfg_2,
            config_create_conflict_and_delete_rules,
            assignments_crud_and_referential_checks,
            groups_crud_and_delete_rules,
            tokens_store_only_hashes_verify_and_revoke,
            audit_rows_for_every_mutating_operation,
            audit_pagination_newest_first_and_filters,
            agent_events_are_bounded_and_paginated,
            restart_commands_are_queued_once_and_taken_once_cmd_1,
            change_events_follow_commits_only,
            failed_operations_write_nothing,
            concurrent_writers_number_versions_without_gaps,
            data_survives_close_and_reopen,
            batcher_writes_one_statement_per_batch_hb_4,
            leadership_is_exclusive,
            migrations_are_idempotent_and_newer_schema_is_refused,
            agent_supplied_text_is_stored_safely,
        );
    };
}

pub fn uid(n: u8) -> InstanceUid {
    let mut b = [0u8; 16];
    b[0] = n;
    b[15] = 0x5a;
    InstanceUid::from_array(b)
}

pub fn alice() -> Actor {
    Actor::token("alice")
}

pub fn files(text: &str) -> ConfigMap {
    ConfigMap::single("collectd.conf", ConfigFile::new("text/plain", text))
}

pub fn version(config: &str, text: &str) -> NewConfigVersion {
    NewConfigVersion {
        config: config.into(),
        config_map: files(text),
        message: format!("set {text}"),
        rollback_of: None,
    }
}

pub fn described(n: u8, service: &str, at: i64) -> AgentUpdate {
    let mut u = AgentUpdate::new(uid(n), Timestamp(at));
    u.description = Some(AgentDescription {
        identifying_attributes: [
            ("service.name".to_owned(), json!(service)),
            ("service.instance.id".to_owned(), json!(format!("i-{n}"))),
        ]
        .into(),
        non_identifying_attributes: [
            ("os.type".to_owned(), json!("linux")),
            ("host.cores".to_owned(), json!(n % 4)),
        ]
        .into(),
    });
    u.capabilities =
        Some(AgentCapabilities::REPORTS_STATUS | AgentCapabilities::ACCEPTS_REMOTE_CONFIG);
    u
}

pub async fn next_event(sub: &mut Subscription) -> ChangeEvent {
    tokio::time::timeout(Duration::from_secs(10), sub.recv())
        .await
        .expect("deadlock guard: no change event within 10 s")
        .expect("subscription closed")
}

/// Waits for `want`, skipping other events. With PostgreSQL, events committed just before a
/// subscription may still arrive after it (they travel through the listener connection).
pub async fn wait_for(sub: &mut Subscription, want: &ChangeEvent) {
    loop {
        if &next_event(sub).await == want {
            return;
        }
    }
}

async fn audit_actions(store: &dyn Store) -> Vec<String> {
    store
        .list_audit(AuditFilter::default(), PageRequest::first(1000))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| e.action)
        .collect()
}

fn assert_not_found<T: std::fmt::Debug>(r: Result<T, Error>, kind: EntityKind) {
    match r {
        Err(Error::NotFound { kind: k, .. }) if k == kind => {}
        other => panic!("expected {kind} not found, got {other:?}"),
    }
}

fn assert_invalid<T: std::fmt::Debug>(r: Result<T, Error>) {
    assert!(
        matches!(r, Err(Error::InvalidInput { .. })),
        "expected invalid input, got {r:?}"
    );
}

fn assert_conflict<T: std::fmt::Debug>(r: Result<T, Error>) {
    assert!(
        matches!(r, Err(Error::Conflict { .. })),
        "expected conflict, got {r:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Agents
// ---------------------------------------------------------------------------------------

pub async fn agent_upsert_writes_only_changed_sub_states_seq_8(db: &Db) {
    let store = db.open().await;
    let out = store
        .upsert_agent(described(1, "checkout", 1000))
        .await
        .unwrap();
    assert!(out.created);

    // A status message with only health: the description and capabilities stay.
    let mut u = AgentUpdate::new(uid(1), Timestamp(2000));
    u.health = Some(json!({"healthy": true, "status": "running"}));
    u.transport = Some(Transport::WebSocket);
    assert!(!store.upsert_agent(u).await.unwrap().created);

    let a = store.get_agent(uid(1)).await.unwrap();
    assert_eq!(
        a.description.identifying_attributes["service.name"],
        "checkout"
    );
    assert_eq!(a.description.non_identifying_attributes["os.type"], "linux");
    assert!(
        a.capabilities
            .contains(AgentCapabilities::ACCEPTS_REMOTE_CONFIG)
    );
    assert_eq!(
        a.health,
        Some(json!({"healthy": true, "status": "running"}))
    );
    assert_eq!(a.transport, Some(Transport::WebSocket));
    assert_eq!(a.first_seen, Timestamp(1000));
    assert_eq!(a.last_seen, Timestamp(2000));

    // An older message (reordered) never moves last_seen back; a new description replaces
    // both attribute sets.
    let mut u = AgentUpdate::new(uid(1), Timestamp(1500));
    u.description = Some(AgentDescription {
        identifying_attributes: [("service.name".to_owned(), json!("payments"))].into(),
        non_identifying_attributes: BTreeMap::new(),
    });
    u.custom_capabilities = Some(vec!["io.opentelemetry.pprof".into()]);
    u.package_statuses = Some(json!({"packages": {}}));
    u.available_components = Some(json!({"components": {"receivers": {}}}));
    store.upsert_agent(u).await.unwrap();
    let a = store.get_agent(uid(1)).await.unwrap();
    assert_eq!(a.last_seen, Timestamp(2000));
    assert_eq!(a.description.identifying_attributes.len(), 1);
    assert!(a.description.non_identifying_attributes.is_empty());
    assert_eq!(
        a.custom_capabilities,
        vec!["io.opentelemetry.pprof".to_owned()]
    );
    assert_eq!(a.package_statuses, Some(json!({"packages": {}})));
    assert!(a.available_components.is_some());
    assert_eq!(
        a.health,
        Some(json!({"healthy": true, "status": "running"}))
    );
    // The attribute rows follow the description: the old service name no longer matches.
    let f = |v: &str| AgentFilter {
        labels: vec![("service.name".into(), v.into())],
        ..Default::default()
    };
    assert_eq!(store.count_agents(f("checkout")).await.unwrap(), 0);
    assert_eq!(store.count_agents(f("payments")).await.unwrap(), 1);
    assert_not_found(store.get_agent(uid(99)).await, EntityKind::Agent);
}

pub async fn effective_config_hash_is_computed_and_list_omits_bodies_eff_2_rcfg_2(db: &Db) {
    let store = db.open().await;
    let map = ConfigMap::new()
        .with_file("a.yaml", ConfigFile::new("text/yaml", "x: 1\n"))
        .with_file(
            "bin",
            ConfigFile::new("application/octet-stream", vec![0u8, 159, 146, 150]),
        );
    let mut u = described(2, "checkout", 10);
    u.effective_config = Some(map.clone());
    store.upsert_agent(u).await.unwrap();

    let a = store.get_agent(uid(2)).await.unwrap();
    assert_eq!(
        a.effective_config.as_ref(),
        Some(&map),
        "binary bodies survive the JSON column"
    );
    assert_eq!(a.effective_config_hash, Some(map.hash()));

    let listed = store
        .list_agents(AgentFilter::default(), PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(listed.items[0].effective_config, None);
    assert_eq!(listed.items[0].effective_config_hash, Some(map.hash()));
    let with = store
        .list_agents(
            AgentFilter {
                with_effective_config: true,
                ..Default::default()
            },
            PageRequest::first(10),
        )
        .await
        .unwrap();
    assert_eq!(with.items[0].effective_config.as_ref(), Some(&map));
}

pub async fn remote_config_status_changes_append_timeline_events_rcfg_6(db: &Db) {
    let store = db.open().await;
    store
        .upsert_agent(described(3, "checkout", 10))
        .await
        .unwrap();
    let hash = files("v1").hash();
    let status = |s: RemoteConfigState, err: &str| RemoteConfigStatus {
        status: s,
        last_remote_config_hash: hash.to_vec(),
        error_message: err.into(),
    };
    for (at, s) in [
        (20, status(RemoteConfigState::Applying, "")),
        (30, status(RemoteConfigState::Applied, "")),
        (40, status(RemoteConfigState::Applied, "")), // unchanged: no second event
        (
            50,
            status(RemoteConfigState::Failed, "exporter otlp: bad endpoint"),
        ),
    ] {
        let mut u = AgentUpdate::new(uid(3), Timestamp(at));
        u.remote_config_status = Some(s);
        store.upsert_agent(u).await.unwrap();
    }
    let a = store.get_agent(uid(3)).await.unwrap();
    let rcs = a.remote_config_status.unwrap();
    assert_eq!(rcs.status, RemoteConfigState::Failed);
    assert_eq!(rcs.config_hash(), Some(hash));
    assert_eq!(rcs.error_message, "exporter otlp: bad endpoint");

    let events = store
        .list_agent_events(uid(3), PageRequest::first(10))
        .await
        .unwrap()
        .items;
    let kinds: Vec<&AgentEventKind> = events.iter().map(|e| &e.kind).collect();
    assert_eq!(
        kinds,
        vec![
            &AgentEventKind::ConfigFailed {
                hash: hash.to_string(),
                error: "exporter otlp: bad endpoint".into()
            },
            &AgentEventKind::ConfigApplied {
                hash: hash.to_string()
            },
        ]
    );
    assert_eq!(events[0].at, Timestamp(50));
}

pub async fn connect_disconnect_and_stale_replica_cleanup_disc_6(db: &Db) {
    let store = db.open().await;
    // Connect before any status: a bare row is created.
    store
        .set_connected(uid(4), Transport::Http, "replica-a", Timestamp(100))
        .await
        .unwrap();
    store
        .set_connected(uid(5), Transport::WebSocket, "replica-a", Timestamp(100))
        .await
        .unwrap();
    store
        .set_connected(uid(6), Transport::WebSocket, "replica-b", Timestamp(100))
        .await
        .unwrap();
    let a = store.get_agent(uid(4)).await.unwrap();
    assert!(a.connected);
    assert_eq!(a.connected_via.as_deref(), Some("replica-a"));
    assert_eq!(a.transport, Some(Transport::Http));
    assert_eq!(a.first_seen, Timestamp(100));

    store
        .set_disconnected(uid(4), Timestamp(200))
        .await
        .unwrap();
    store
        .set_disconnected(uid(4), Timestamp(210))
        .await
        .unwrap(); // already: no event
    store
        .set_disconnected(uid(77), Timestamp(210))
        .await
        .unwrap(); // unknown: ignored
    let a = store.get_agent(uid(4)).await.unwrap();
    assert!(!a.connected);
    assert_eq!(a.connected_via, None);
    assert_eq!(a.last_seen, Timestamp(200));
    let kinds: Vec<String> = store
        .list_agent_events(uid(4), PageRequest::first(10))
        .await
        .unwrap()
        .items
        .iter()
        .map(|e| e.kind.name().to_owned())
        .collect();
    assert_eq!(kinds, vec!["disconnected", "connected"]);

    // Replica A was killed: at its restart it clears what it held, and only that.
    assert_eq!(
        store
            .disconnect_server("replica-a", Timestamp(300))
            .await
            .unwrap(),
        1
    );
    assert!(!store.get_agent(uid(5)).await.unwrap().connected);
    assert!(store.get_agent(uid(6)).await.unwrap().connected);
    let connected = AgentFilter {
        connected: Some(true),
        ..Default::default()
    };
    assert_eq!(store.count_agents(connected).await.unwrap(), 1);
}

pub async fn touch_last_seen_moves_forward_only_hb_4(db: &Db) {
    let store = db.open().await;
    for n in 1..=3 {
        store.upsert_agent(described(n, "s", 1000)).await.unwrap();
    }
    let changed = store
        .touch_last_seen(vec![
            (uid(1), Timestamp(5000)),
            (uid(2), Timestamp(500)),    // older than stored: ignored
            (uid(1), Timestamp(4000)),   // duplicate, older: the newest wins
            (uid(200), Timestamp(9000)), // unknown: ignored
        ])
        .await
        .unwrap();
    assert_eq!(changed, 1);
    assert_eq!(
        store.get_agent(uid(1)).await.unwrap().last_seen,
        Timestamp(5000)
    );
    assert_eq!(
        store.get_agent(uid(2)).await.unwrap().last_seen,
        Timestamp(1000)
    );
    assert_eq!(store.touch_last_seen(vec![]).await.unwrap(), 0);
    assert_not_found(store.get_agent(uid(200)).await, EntityKind::Agent);
}

pub async fn batched_status_upserts_commit_together_seq_8(db: &Db) {
    let store = db.open().await;
    store.upsert_agent(described(1, "old", 1)).await.unwrap();
    let mut batch: Vec<AgentUpdate> = (1..=60).map(|n| described(n, "batch", 10)).collect();
    let mut applied = AgentUpdate::new(uid(2), Timestamp(20));
    applied.remote_config_status = Some(RemoteConfigStatus {
        status: RemoteConfigState::Applied,
        last_remote_config_hash: files("x").hash().to_vec(),
        error_message: String::new(),
    });
    batch.push(applied); // a second update of the same agent in the same batch
    let outcomes = store.upsert_agents(batch).await.unwrap();
    assert_eq!(outcomes.len(), 61);
    assert!(!outcomes[0].created, "agent 1 existed");
    assert!(outcomes[1..60].iter().all(|o| o.created));
    assert!(!outcomes[60].created);
    assert_eq!(
        store.count_agents(AgentFilter::default()).await.unwrap(),
        60
    );
    let a2 = store.get_agent(uid(2)).await.unwrap();
    assert_eq!(
        a2.description.identifying_attributes["service.name"],
        "batch"
    );
    assert_eq!(
        a2.remote_config_status.unwrap().status,
        RemoteConfigState::Applied
    );
    assert_eq!(a2.last_seen, Timestamp(20));
    assert_eq!(
        store
            .list_agent_events(uid(2), PageRequest::first(5))
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    assert!(store.upsert_agents(Vec::new()).await.unwrap().is_empty());
}

pub async fn list_agents_filters_and_cursor_pagination(db: &Db) {
    let store = db.open().await;
    for n in 1..=25u8 {
        let service = if n % 3 == 0 { "checkout" } else { "payments" };
        store.upsert_agent(described(n, service, 10)).await.unwrap();
        if n % 2 == 0 {
            store
                .set_connected(uid(n), Transport::WebSocket, "r1", Timestamp(20))
                .await
                .unwrap();
        }
    }
    // An operator label overrides the attribute of the same key.
    store
        .set_labels(
            &alice(),
            uid(1),
            [("service.name".to_owned(), "checkout".to_owned())].into(),
        )
        .await
        .unwrap();
    store
        .set_labels(
            &alice(),
            uid(2),
            [("tier".to_owned(), "gold".to_owned())].into(),
        )
        .await
        .unwrap();

    // Walk all pages of 7.
    let mut seen = Vec::new();
    let mut page = PageRequest::first(7);
    let mut pages = 0;
    loop {
        let p = store
            .list_agents(AgentFilter::default(), page.clone())
            .await
            .unwrap();
        pages += 1;
        assert!(p.items.len() <= 7);
        seen.extend(p.items.iter().map(|a| a.instance_uid));
        match p.next_cursor {
            Some(c) => page = PageRequest::after(c, 7),
            None => break,
        }
    }
    assert_eq!(pages, 4);
    let expected: Vec<InstanceUid> = (1..=25).map(uid).collect();
    assert_eq!(seen, expected, "every agent once, in uid order");

    let count = |f: AgentFilter| {
        let store = Arc::clone(&store);
        async move {
            let n = store.count_agents(f.clone()).await.unwrap();
            let listed = store
                .list_agents(f, PageRequest::first(1000))
                .await
                .unwrap();
            assert_eq!(n as usize, listed.items.len());
            listed.items
        }
    };
    let checkout = count(AgentFilter {
        labels: vec![("service.name".into(), "checkout".into())],
        ..Default::default()
    })
    .await;
    // n % 3 == 0 (8 agents) plus agent 1 through its label.
    assert_eq!(checkout.len(), 9);
    assert!(checkout.iter().any(|a| a.instance_uid == uid(1)));
    assert_eq!(checkout[0].labels["service.name"], "checkout");

    let connected_checkout = count(AgentFilter {
        connected: Some(true),
        transport: Some(Transport::WebSocket),
        labels: vec![("service.name".into(), "checkout".into())],
        ..Default::default()
    })
    .await;
    assert_eq!(connected_checkout.len(), 4); // 6, 12, 18, 24
    // Numbers in attributes match by their JSON spelling; two conditions must both hold.
    let cores = count(AgentFilter {
        labels: vec![
            ("host.cores".into(), "2".into()),
            ("os.type".into(), "linux".into()),
        ],
        ..Default::default()
    })
    .await;
    assert_eq!(cores.len(), 6); // 2, 6, 10, 14, 18, 22
    let tier = count(AgentFilter {
        has_labels: vec!["tier".into()],
        ..Default::default()
    })
    .await;
    assert_eq!(tier.len(), 1);
    assert_eq!(tier[0].labels["tier"], "gold");
    let nothing = count(AgentFilter {
        has_labels: vec!["nope".into()],
        ..Default::default()
    })
    .await;
    assert!(nothing.is_empty());

    assert_invalid(
        store
            .list_agents(
                AgentFilter::default(),
                PageRequest::after("not-a-cursor", 5),
            )
            .await,
    );
}

pub async fn labels_set_remove_validate_and_override_attributes(db: &Db) {
    let store = db.open().await;
    store
        .upsert_agent(described(7, "checkout", 10))
        .await
        .unwrap();
    let labels = store
        .set_labels(
            &alice(),
            uid(7),
            [
                ("env".to_owned(), "prod".to_owned()),
                ("team".to_owned(), "a".to_owned()),
            ]
            .into(),
        )
        .await
        .unwrap();
    assert_eq!(labels.len(), 2);
    let labels = store
        .set_labels(
            &alice(),
            uid(7),
            [("team".to_owned(), "b".to_owned())].into(),
        )
        .await
        .unwrap();
    assert_eq!(labels["team"], "b");
    assert_eq!(labels["env"], "prod");
    let labels = store
        .remove_labels(&alice(), uid(7), vec!["env".into(), "missing".into()])
        .await
        .unwrap();
    assert_eq!(labels, [("team".to_owned(), "b".to_owned())].into());
    let a = store.get_agent(uid(7)).await.unwrap();
    assert_eq!(a.labels, labels);
    assert_eq!(a.effective_labels()["team"], "b");
    assert_eq!(a.effective_labels()["service.name"], "checkout");

    assert_not_found(
        store
            .set_labels(&alice(), uid(8), [("a".to_owned(), "b".to_owned())].into())
            .await,
        EntityKind::Agent,
    );
    assert_invalid(
        store
            .set_labels(
                &alice(),
                uid(7),
                [("bad key".to_owned(), "v".to_owned())].into(),
            )
            .await,
    );
    assert_invalid(store.set_labels(&alice(), uid(7), BTreeMap::new()).await);
    assert_invalid(store.remove_labels(&alice(), uid(7), vec![]).await);
    let actions = audit_actions(&*store).await;
    assert_eq!(
        actions,
        vec![
            actions::LABELS_REMOVE,
            actions::LABELS_SET,
            actions::LABELS_SET
        ]
    );
}

pub async fn delete_agent_cascades_and_announces(db: &Db) {
    let store = db.open().await;
    store
        .upsert_agent(described(9, "checkout", 10))
        .await
        .unwrap();
    store
        .upsert_agent(described(10, "checkout", 10))
        .await
        .unwrap();
    store
        .set_labels(
            &alice(),
            uid(9),
            [("env".to_owned(), "prod".to_owned())].into(),
        )
        .await
        .unwrap();
    store
        .send_command(&alice(), uid(9), Command::Restart)
        .await
        .unwrap();
    store
        .add_config_version(&alice(), version("c", "v1"))
        .await
        .unwrap();
    let a = store
        .put_assignment(
            &alice(),
            NewAssignment {
                config: "c".into(),
                version: None,
                target: AssignmentTarget::Agent(uid(9)),
            },
        )
        .await
        .unwrap();
    let mut sub = store.subscribe();
    store.delete_agent(&alice(), uid(9)).await.unwrap();
    wait_for(
        &mut sub,
        &ChangeEvent::AssignmentDeleted {
            id: a.id,
            target: AssignmentTarget::Agent(uid(9)),
        },
    )
    .await;
    assert_eq!(
        next_event(&mut sub).await,
        ChangeEvent::AgentDeleted {
            instance_uid: uid(9)
        }
    );
    assert_not_found(store.get_agent(uid(9)).await, EntityKind::Agent);
    assert_not_found(store.get_assignment(a.id).await, EntityKind::Assignment);
    assert_not_found(
        store.list_agent_events(uid(9), PageRequest::first(5)).await,
        EntityKind::Agent,
    );
    assert!(
        store
            .take_pending_commands(uid(9))
            .await
            .unwrap()
            .is_empty()
    );
    for table in ["agent_labels", "agent_events", "pending_commands"] {
        // Only agent 10's rows (it has none of these) may remain.
        assert_eq!(
            db.count(table).await,
            0,
            "{table} rows of the deleted agent"
        );
    }
    assert!(
        db.count("agent_attributes").await > 0,
        "the other agent's attributes stay"
    );
    assert_not_found(
        store.delete_agent(&alice(), uid(9)).await,
        EntityKind::Agent,
    );
    assert_eq!(store.count_agents(AgentFilter::default()).await.unwrap(), 1);
}

// ---------------------------------------------------------------------------------------
// Configs and versions
// ---------------------------------------------------------------------------------------

pub async fn config_versions_number_from_one_and_dedup_equal_latest_rcfg_2(db: &Db) {
    let store = db.open().await;
    let v1 = store
        .add_config_version(&alice(), version("web", "a"))
        .await
        .unwrap();
    assert!(v1.created);
    assert_eq!(v1.version.version, 1);
    assert_eq!(v1.version.hash, files("a").hash());
    assert_eq!(v1.version.author, "token:alice");

    // The same content again: nothing written, the existing version returned.
    let again = store
        .add_config_version(&alice(), version("web", "a"))
        .await
        .unwrap();
    assert!(!again.created);
    assert_eq!(again.version, v1.version);

    let v2 = store
        .add_config_version(&alice(), version("web", "b"))
        .await
        .unwrap();
    assert_eq!(v2.version.version, 2);
    // Back to v1's content: only equality with the LATEST deduplicates; this is a rollback.
    let mut back = version("web", "a");
    back.rollback_of = Some(1);
    let v3 = store.add_config_version(&alice(), back).await.unwrap();
    assert!(v3.created);
    assert_eq!(v3.version.version, 3);
    assert_eq!(v3.version.rollback_of, Some(1));
    assert_eq!(v3.version.hash, v1.version.hash);

    let cfg = store.get_config("web").await.unwrap();
    assert_eq!(cfg.latest_version, 3);
    assert_eq!(cfg.created_by, "token:alice");
    assert_eq!(
        store.latest_config_version("web").await.unwrap(),
        v3.version
    );
    assert_eq!(
        store.get_config_version("web", 2).await.unwrap(),
        v2.version
    );

    let all = store
        .list_config_versions("web", PageRequest::first(2))
        .await
        .unwrap();
    assert_eq!(
        all.items.iter().map(|v| v.version).collect::<Vec<_>>(),
        vec![3, 2]
    );
    let rest = store
        .list_config_versions("web", PageRequest::after(all.next_cursor.unwrap(), 2))
        .await
        .unwrap();
    assert_eq!(
        rest.items.iter().map(|v| v.version).collect::<Vec<_>>(),
        vec![1]
    );
    assert_eq!(rest.next_cursor, None);

    assert_not_found(
        store.get_config_version("web", 4).await,
        EntityKind::ConfigVersion,
    );
    assert_not_found(
        store.get_config_version("nope", 1).await,
        EntityKind::Config,
    );
    assert_not_found(
        store.latest_config_version("nope").await,
        EntityKind::Config,
    );
    assert_not_found(
        store
            .list_config_versions("nope", PageRequest::first(5))
            .await,
        EntityKind::Config,
    );
    let mut bad = version("web", "z");
    bad.rollback_of = Some(42);
    assert_not_found(
        store.add_config_version(&alice(), bad).await,
        EntityKind::ConfigVersion,
    );
    assert_invalid(
        store
            .add_config_version(&alice(), version("bad name", "x"))
            .await,
    );

    // Audit: config created once, three versions; the duplicate wrote nothing.
    assert_eq!(
        audit_actions(&*store).await,
        vec![
            actions::CONFIG_VERSION_CREATE,
            actions::CONFIG_VERSION_CREATE,
            actions::CONFIG_VERSION_CREATE,
            actions::CONFIG_CREATE,
        ]
    );
}

pub async fn config_create_conflict_and_delete_rules(db: &Db) {
    let store = db.open().await;
    let c = store
        .create_config(&alice(), "empty", "no versions yet")
        .await
        .unwrap();
    assert_eq!(c.latest_version, 0);
    assert_eq!(c.description, "no versions yet");
    assert_conflict(store.create_config(&alice(), "empty", "").await);
    assert_invalid(store.create_config(&alice(), "", "").await);
    assert_not_found(
        store.latest_config_version("empty").await,
        EntityKind::ConfigVersion,
    );
    assert!(
        store
            .list_config_versions("empty", PageRequest::first(5))
            .await
            .unwrap()
            .items
            .is_empty()
    );

    store
        .add_config_version(&alice(), version("used", "x"))
        .await
        .unwrap();
    store
        .create_group(
            &alice(),
            Group {
                name: "edge".into(),
                selector: "tier=edge".into(),
                description: String::new(),
                created_at: Timestamp(0),
                updated_at: Timestamp(0),
            },
        )
        .await
        .unwrap();
    let a = store
        .put_assignment(
            &alice(),
            NewAssignment {
                config: "used".into(),
                version: Some(1),
                target: AssignmentTarget::Group("edge".into()),
            },
        )
        .await
        .unwrap();
    assert_conflict(store.delete_config(&alice(), "used").await);
    store.delete_assignment(&alice(), a.id).await.unwrap();
    store.delete_config(&alice(), "used").await.unwrap();
    assert_not_found(store.get_config("used").await, EntityKind::Config);
    assert_eq!(
        db.count("config_versions").await,
        0,
        "versions go with their config"
    );
    assert_not_found(
        store.delete_config(&alice(), "used").await,
        EntityKind::Config,
    );

    let names: Vec<String> = store
        .list_configs(PageRequest::first(10))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, vec!["empty"]);
}

// ---------------------------------------------------------------------------------------
// Assignments and groups
// ---------------------------------------------------------------------------------------

pub async fn assignments_crud_and_referential_checks(db: &Db) {
    let store = db.open().await;
    let target = AssignmentTarget::Selector("service.name=checkout".into());
    let new = |config: &str, version: Option<u64>, target: AssignmentTarget| NewAssignment {
        config: config.into(),
        version,
        target,
    };
    assert_not_found(
        store
            .put_assignment(&alice(), new("nope", None, target.clone()))
            .await,
        EntityKind::Config,
    );
    store.create_config(&alice(), "web", "").await.unwrap();
    assert_conflict(
        store
            .put_assignment(&alice(), new("web", None, target.clone()))
            .await,
    );
    store
        .add_config_version(&alice(), version("web", "1"))
        .await
        .unwrap();
    store
        .add_config_version(&alice(), version("web", "2"))
        .await
        .unwrap();
    assert_not_found(
        store
            .put_assignment(&alice(), new("web", Some(3), target.clone()))
            .await,
        EntityKind::ConfigVersion,
    );
    assert_not_found(
        store
            .put_assignment(
                &alice(),
                new("web", None, AssignmentTarget::Group("g".into())),
            )
            .await,
        EntityKind::Group,
    );
    assert_not_found(
        store
            .put_assignment(&alice(), new("web", None, AssignmentTarget::Agent(uid(1))))
            .await,
        EntityKind::Agent,
    );
    assert_invalid(
        store
            .put_assignment(
                &alice(),
                new("web", None, AssignmentTarget::Selector("  ".into())),
            )
            .await,
    );

    let a1 = store
        .put_assignment(&alice(), new("web", Some(1), target.clone()))
        .await
        .unwrap();
    assert_eq!(a1.version, Some(1));
    // Assigning to the same target again replaces it and keeps the id.
    let a2 = store
        .put_assignment(&alice(), new("web", None, target.clone()))
        .await
        .unwrap();
    assert_eq!(a2.id, a1.id);
    assert_eq!(a2.version, None);
    store.upsert_agent(described(1, "x", 1)).await.unwrap();
    let a3 = store
        .put_assignment(
            &alice(),
            new("web", Some(2), AssignmentTarget::Agent(uid(1))),
        )
        .await
        .unwrap();
    assert_ne!(a3.id, a1.id);

    let all = store.list_assignments().await.unwrap();
    assert_eq!(all, vec![a2.clone(), a3.clone()]);
    assert_eq!(store.get_assignment(a3.id).await.unwrap(), a3);
    store.delete_assignment(&alice(), a2.id).await.unwrap();
    assert_not_found(
        store.delete_assignment(&alice(), a2.id).await,
        EntityKind::Assignment,
    );
    assert_eq!(store.list_assignments().await.unwrap(), vec![a3]);
}

pub async fn groups_crud_and_delete_rules(db: &Db) {
    let store = db.open().await;
    let g = |name: &str, selector: &str| Group {
        name: name.into(),
        selector: selector.into(),
        description: "edge nodes".into(),
        created_at: Timestamp(0),
        updated_at: Timestamp(0),
    };
    let created = store
        .create_group(&alice(), g("edge", "tier=edge"))
        .await
        .unwrap();
    assert!(created.created_at.0 > 0);
    assert_conflict(store.create_group(&alice(), g("edge", "x")).await);
    assert_invalid(store.create_group(&alice(), g("bad/name", "x")).await);
    assert_invalid(store.create_group(&alice(), g("ok", "")).await);
    store
        .create_group(&alice(), g("core", "tier in (core,db)"))
        .await
        .unwrap();

    let updated = store
        .update_group(&alice(), g("edge", "tier=edge,env=prod"))
        .await
        .unwrap();
    assert_eq!(updated.created_at, created.created_at);
    assert_eq!(
        store.get_group("edge").await.unwrap().selector,
        "tier=edge,env=prod"
    );
    assert_not_found(
        store.update_group(&alice(), g("nope", "x")).await,
        EntityKind::Group,
    );
    assert_eq!(
        store
            .list_groups()
            .await
            .unwrap()
            .into_iter()
            .map(|g| g.name)
            .collect::<Vec<_>>(),
        vec!["core", "edge"]
    );

    store
        .add_config_version(&alice(), version("web", "1"))
        .await
        .unwrap();
    let a = store
        .put_assignment(
            &alice(),
            NewAssignment {
                config: "web".into(),
                version: None,
                target: AssignmentTarget::Group("edge".into()),
            },
        )
        .await
        .unwrap();
    assert_conflict(store.delete_group(&alice(), "edge").await);
    store.delete_assignment(&alice(), a.id).await.unwrap();
    store.delete_group(&alice(), "edge").await.unwrap();
    assert_not_found(store.get_group("edge").await, EntityKind::Group);
    assert_not_found(
        store.delete_group(&alice(), "edge").await,
        EntityKind::Group,
    );
}

// ---------------------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------------------

pub async fn tokens_store_only_hashes_verify_and_revoke(db: &Db) {
    let store = db.open().await;
    let admin = Actor::system("cli");
    let (secret, hash) = generate_secret();
    let t = store
        .create_token(
            &admin,
            NewToken {
                name: "ci".into(),
                role: Role::Operator,
                hash,
            },
        )
        .await
        .unwrap();
    assert_eq!(t.role, Role::Operator);
    assert_eq!(t.created_by, "system:cli");

    let ok = store
        .verify_token(TokenHash::of(&secret))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ok.id, t.id);
    assert!(ok.last_used_at.is_some());
    assert!(
        store
            .verify_token(TokenHash::of("wrong"))
            .await
            .unwrap()
            .is_none()
    );

    // A live name is unique; the secret itself is nowhere in the database.
    let (_, other) = generate_secret();
    assert_conflict(
        store
            .create_token(
                &admin,
                NewToken {
                    name: "ci".into(),
                    role: Role::Viewer,
                    hash: other,
                },
            )
            .await,
    );
    let listed = serde_json::to_string(&store.list_tokens().await.unwrap()).unwrap();
    assert!(!listed.contains(&secret));
    assert!(
        !listed.contains(&hash.to_string()),
        "hashes are not shown either"
    );

    let revoked = store.revoke_token(&admin, t.id).await.unwrap();
    assert!(revoked.revoked_at.is_some());
    assert!(store.verify_token(hash).await.unwrap().is_none());
    let again = store.revoke_token(&admin, t.id).await.unwrap();
    assert_eq!(again.revoked_at, revoked.revoked_at);
    assert_not_found(store.revoke_token(&admin, 9999).await, EntityKind::Token);
    // After revocation the name is free again.
    store
        .create_token(
            &admin,
            NewToken {
                name: "ci".into(),
                role: Role::Admin,
                hash: other,
            },
        )
        .await
        .unwrap();
    assert_eq!(store.list_tokens().await.unwrap().len(), 2);
    assert_eq!(
        audit_actions(&*store).await,
        vec![
            actions::TOKEN_CREATE,
            actions::TOKEN_REVOKE,
            actions::TOKEN_CREATE
        ]
    );
}

// ---------------------------------------------------------------------------------------
// Audit, timeline, commands
// ---------------------------------------------------------------------------------------

pub async fn audit_rows_for_every_mutating_operation(db: &Db) {
    let store = db.open().await;
    let bob = Actor::token("bob");
    store.upsert_agent(described(1, "s", 1)).await.unwrap();
    store.create_config(&bob, "a", "").await.unwrap();
    store
        .add_config_version(&bob, version("a", "1"))
        .await
        .unwrap();
    store
        .add_config_version(&bob, version("b", "1"))
        .await
        .unwrap(); // creates b too
    store
        .create_group(
            &bob,
            Group {
                name: "g".into(),
                selector: "x=y".into(),
                description: String::new(),
                created_at: Timestamp(0),
                updated_at: Timestamp(0),
            },
        )
        .await
        .unwrap();
    store
        .update_group(
            &bob,
            Group {
                name: "g".into(),
                selector: "x=z".into(),
                description: String::new(),
                created_at: Timestamp(0),
                updated_at: Timestamp(0),
            },
        )
        .await
        .unwrap();
    let asg = store
        .put_assignment(
            &bob,
            NewAssignment {
                config: "a".into(),
                version: None,
                target: AssignmentTarget::Group("g".into()),
            },
        )
        .await
        .unwrap();
    store.delete_assignment(&bob, asg.id).await.unwrap();
    store.delete_group(&bob, "g").await.unwrap();
    store.delete_config(&bob, "b").await.unwrap();
    store
        .set_labels(&bob, uid(1), [("k".to_owned(), "v".to_owned())].into())
        .await
        .unwrap();
    store
        .remove_labels(&bob, uid(1), vec!["k".into()])
        .await
        .unwrap();
    store
        .send_command(&bob, uid(1), Command::Restart)
        .await
        .unwrap();
    let (_, h) = generate_secret();
    let t = store
        .create_token(
            &bob,
            NewToken {
                name: "t".into(),
                role: Role::Viewer,
                hash: h,
            },
        )
        .await
        .unwrap();
    store.revoke_token(&bob, t.id).await.unwrap();
    store
        .append_audit(&bob, "rollout.start", "config/a", json!({"percent": 10}))
        .await
        .unwrap();
    store.delete_agent(&bob, uid(1)).await.unwrap();

    let entries = store
        .list_audit(AuditFilter::default(), PageRequest::first(100))
        .await
        .unwrap()
        .items;
    assert!(entries.iter().all(|e| e.actor == "token:bob"));
    let got: BTreeSet<&str> = entries.iter().map(|e| e.action.as_str()).collect();
    let want: BTreeSet<&str> = [
        actions::CONFIG_CREATE,
        actions::CONFIG_VERSION_CREATE,
        actions::CONFIG_DELETE,
        actions::GROUP_CREATE,
        actions::GROUP_UPDATE,
        actions::GROUP_DELETE,
        actions::ASSIGNMENT_PUT,
        actions::ASSIGNMENT_DELETE,
        actions::LABELS_SET,
        actions::LABELS_REMOVE,
        actions::AGENT_COMMAND,
        actions::TOKEN_CREATE,
        actions::TOKEN_REVOKE,
        actions::AGENT_DELETE,
        "rollout.start",
    ]
    .into();
    assert_eq!(got, want);
    assert_eq!(entries.len(), 17); // two config creations, two version creations
    let rollout = &entries[1];
    assert_eq!(rollout.details, json!({"percent": 10}));
    assert_eq!(rollout.target, "config/a");
    // The agent's own reports are not operator actions: no audit rows for them.
    assert!(
        entries
            .iter()
            .all(|e| !e.action.starts_with("agent.status"))
    );
}

pub async fn audit_pagination_newest_first_and_filters(db: &Db) {
    let store = db.open().await;
    for i in 0..12 {
        store
            .append_audit(
                &alice(),
                if i % 2 == 0 { "a.even" } else { "a.odd" },
                &format!("t/{}", i % 3),
                json!({"i": i}),
            )
            .await
            .unwrap();
    }
    let mut ids = Vec::new();
    let mut page = PageRequest::first(5);
    loop {
        let p = store
            .list_audit(AuditFilter::default(), page)
            .await
            .unwrap();
        ids.extend(p.items.iter().map(|e| e.details["i"].as_i64().unwrap()));
        match p.next_cursor {
            Some(c) => page = PageRequest::after(c, 5),
            None => break,
        }
    }
    assert_eq!(ids, (0..12).rev().collect::<Vec<_>>());
    let odd_t1 = store
        .list_audit(
            AuditFilter {
                target: Some("t/1".into()),
                action: Some("a.odd".into()),
            },
            PageRequest::first(100),
        )
        .await
        .unwrap();
    let is: Vec<i64> = odd_t1
        .items
        .iter()
        .map(|e| e.details["i"].as_i64().unwrap())
        .collect();
    assert_eq!(is, vec![7, 1]);
    assert_invalid(
        store
            .list_audit(AuditFilter::default(), PageRequest::after("x", 5))
            .await,
    );
}

pub async fn agent_events_are_bounded_and_paginated(db: &Db) {
    let mut opts = StoreOptions::default();
    opts.events_per_agent = 5;
    let store = db.open_with(opts).await;
    store.upsert_agent(described(1, "s", 1)).await.unwrap();
    store.upsert_agent(described(2, "s", 1)).await.unwrap();
    for i in 0..12 {
        store
            .append_agent_event(
                uid(1),
                AgentEventKind::Note {
                    message: format!("n{i}"),
                },
                Timestamp(i),
            )
            .await
            .unwrap();
    }
    store
        .append_agent_event(uid(2), AgentEventKind::Restarted, Timestamp(5))
        .await
        .unwrap();
    let first = store
        .list_agent_events(uid(1), PageRequest::first(2))
        .await
        .unwrap();
    let second = store
        .list_agent_events(
            uid(1),
            PageRequest::after(first.next_cursor.clone().unwrap(), 10),
        )
        .await
        .unwrap();
    let notes: Vec<String> = first
        .items
        .iter()
        .chain(&second.items)
        .map(|e| match &e.kind {
            AgentEventKind::Note { message } => message.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(notes, vec!["n11", "n10", "n9", "n8", "n7"]);
    assert_eq!(second.next_cursor, None);
    // The other agent's timeline is untouched by the bound.
    assert_eq!(
        store
            .list_agent_events(uid(2), PageRequest::first(10))
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    assert_not_found(
        store
            .append_agent_event(uid(3), AgentEventKind::Restarted, Timestamp(1))
            .await,
        EntityKind::Agent,
    );
}

pub async fn restart_commands_are_queued_once_and_taken_once_cmd_1(db: &Db) {
    let store = db.open().await;
    store.upsert_agent(described(1, "s", 1)).await.unwrap();
    let mut sub = store.subscribe();
    let c1 = store
        .send_command(&alice(), uid(1), Command::Restart)
        .await
        .unwrap();
    let c2 = store
        .send_command(&alice(), uid(1), Command::Restart)
        .await
        .unwrap();
    assert_eq!(c1.id, c2.id, "one pending restart is enough");
    assert_eq!(
        next_event(&mut sub).await,
        ChangeEvent::CommandQueued {
            instance_uid: uid(1),
            command: Command::Restart
        }
    );
    assert!(
        store
            .take_pending_commands(uid(2))
            .await
            .unwrap()
            .is_empty()
    );
    // Two replicas racing for the same agent: exactly one gets the command.
    let (a, b) = tokio::join!(
        store.take_pending_commands(uid(1)),
        store.take_pending_commands(uid(1))
    );
    let mut got = a.unwrap();
    got.extend(b.unwrap());
    assert_eq!(got, vec![c1]);
    assert!(
        store
            .take_pending_commands(uid(1))
            .await
            .unwrap()
            .is_empty()
    );
    assert_not_found(
        store.send_command(&alice(), uid(2), Command::Restart).await,
        EntityKind::Agent,
    );
    let events = store
        .list_agent_events(uid(1), PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(events.items.len(), 2);
    assert_eq!(
        events.items[0].kind,
        AgentEventKind::CommandSent {
            command: Command::Restart
        }
    );
}

// ---------------------------------------------------------------------------------------
// Change events, transactions, concurrency, durability
// ---------------------------------------------------------------------------------------

pub async fn change_events_follow_commits_only(db: &Db) {
    let store = db.open().await;
    store.upsert_agent(described(1, "s", 1)).await.unwrap();
    let mut sub = store.subscribe();
    let v = store
        .add_config_version(&alice(), version("web", "1"))
        .await
        .unwrap();
    assert_eq!(
        next_event(&mut sub).await,
        ChangeEvent::ConfigVersionAdded {
            config: "web".into(),
            version: 1
        }
    );
    // A duplicate version and a failed assignment announce nothing.
    store
        .add_config_version(&alice(), version("web", "1"))
        .await
        .unwrap();
    assert!(
        store
            .put_assignment(
                &alice(),
                NewAssignment {
                    config: "web".into(),
                    version: None,
                    target: AssignmentTarget::Group("missing".into()),
                },
            )
            .await
            .is_err()
    );
    let a = store
        .put_assignment(
            &alice(),
            NewAssignment {
                config: "web".into(),
                version: Some(v.version.version),
                target: AssignmentTarget::Agent(uid(1)),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        next_event(&mut sub).await,
        ChangeEvent::AssignmentChanged {
            id: a.id,
            target: AssignmentTarget::Agent(uid(1))
        }
    );
    store
        .set_labels(&alice(), uid(1), [("k".to_owned(), "v".to_owned())].into())
        .await
        .unwrap();
    assert_eq!(
        next_event(&mut sub).await,
        ChangeEvent::LabelsChanged {
            instance_uid: uid(1)
        }
    );
    store
        .create_group(
            &alice(),
            Group {
                name: "g".into(),
                selector: "k=v".into(),
                description: String::new(),
                created_at: Timestamp(0),
                updated_at: Timestamp(0),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        next_event(&mut sub).await,
        ChangeEvent::GroupChanged { name: "g".into() }
    );
    // Agent status reports are not change events (they would flood every replica).
    store.upsert_agent(described(1, "t", 2)).await.unwrap();
    store.delete_group(&alice(), "g").await.unwrap();
    assert_eq!(
        next_event(&mut sub).await,
        ChangeEvent::GroupDeleted { name: "g".into() }
    );
    // A second subscriber sees only what comes after it subscribed.
    let mut late = store.subscribe();
    store.delete_assignment(&alice(), a.id).await.unwrap();
    let e = ChangeEvent::AssignmentDeleted {
        id: a.id,
        target: AssignmentTarget::Agent(uid(1)),
    };
    assert_eq!(next_event(&mut sub).await, e);
    assert_eq!(next_event(&mut late).await, e);
}

pub async fn failed_operations_write_nothing(db: &Db) {
    let store = db.open().await;
    let audit_before = db.count("audit_log").await;
    // The first version of a new config would create the config, then fails on the
    // rollback reference: neither the config nor any audit row may remain.
    let mut v = version("fresh", "1");
    v.rollback_of = Some(9);
    assert!(store.add_config_version(&alice(), v).await.is_err());
    assert_not_found(store.get_config("fresh").await, EntityKind::Config);
    assert_eq!(db.count("configs").await, 0);
    assert_eq!(db.count("audit_log").await, audit_before);

    store
        .add_config_version(&alice(), version("web", "1"))
        .await
        .unwrap();
    let audit_before = db.count("audit_log").await;
    let bad = [
        NewAssignment {
            config: "web".into(),
            version: Some(5),
            target: AssignmentTarget::Selector("a=b".into()),
        },
        NewAssignment {
            config: "web".into(),
            version: None,
            target: AssignmentTarget::Agent(uid(4)),
        },
    ];
    for b in bad {
        assert!(store.put_assignment(&alice(), b).await.is_err());
    }
    assert!(store.delete_config(&alice(), "nope").await.is_err());
    assert!(store.delete_group(&alice(), "nope").await.is_err());
    assert!(
        store
            .set_labels(&alice(), uid(4), [("a".to_owned(), "b".to_owned())].into())
            .await
            .is_err()
    );
    assert_eq!(db.count("assignments").await, 0);
    assert_eq!(db.count("audit_log").await, audit_before);
}

pub async fn concurrent_writers_number_versions_without_gaps(db: &Db) {
    let store = db.open().await;
    let mut tasks = Vec::new();
    for w in 0..6 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            for i in 0..8 {
                store
                    .add_config_version(
                        &Actor::token(format!("w{w}")),
                        version("shared", &format!("{w}-{i}")),
                    )
                    .await
                    .unwrap();
                let mut u = described(100 + w, "s", i64::from(i));
                u.health = Some(json!({"i": i}));
                store.upsert_agent(u).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let versions = store
        .list_config_versions("shared", PageRequest::first(1000))
        .await
        .unwrap()
        .items;
    let numbers: Vec<u64> = versions.iter().map(|v| v.version).collect();
    assert_eq!(numbers, (1..=48).rev().collect::<Vec<_>>());
    let hashes: BTreeSet<_> = versions.iter().map(|v| v.hash).collect();
    assert_eq!(hashes.len(), 48);
    assert_eq!(store.get_config("shared").await.unwrap().latest_version, 48);
    assert_eq!(store.count_agents(AgentFilter::default()).await.unwrap(), 6);
}

pub async fn data_survives_close_and_reopen(db: &Db) {
    let (token_hash, assignment) = {
        let store = db.open().await;
        let mut u = described(1, "checkout", 10);
        u.effective_config = Some(files("eff"));
        u.remote_config_status = Some(RemoteConfigStatus {
            status: RemoteConfigState::Applied,
            last_remote_config_hash: files("v1").hash().to_vec(),
            error_message: String::new(),
        });
        store.upsert_agent(u).await.unwrap();
        store
            .set_labels(
                &alice(),
                uid(1),
                [("env".to_owned(), "prod".to_owned())].into(),
            )
            .await
            .unwrap();
        store
            .add_config_version(&alice(), version("web", "v1"))
            .await
            .unwrap();
        let a = store
            .put_assignment(
                &alice(),
                NewAssignment {
                    config: "web".into(),
                    version: Some(1),
                    target: AssignmentTarget::Selector("service.name=checkout".into()),
                },
            )
            .await
            .unwrap();
        let (_, h) = generate_secret();
        store
            .create_token(
                &alice(),
                NewToken {
                    name: "t".into(),
                    role: Role::Admin,
                    hash: h,
                },
            )
            .await
            .unwrap();
        store.close().await.unwrap();
        (h, a)
    };
    let store = db.open().await;
    let a = store.get_agent(uid(1)).await.unwrap();
    assert_eq!(a.labels["env"], "prod");
    assert_eq!(a.effective_config_hash, Some(files("eff").hash()));
    assert_eq!(
        a.remote_config_status.unwrap().config_hash(),
        Some(files("v1").hash())
    );
    assert_eq!(
        store.latest_config_version("web").await.unwrap().hash,
        files("v1").hash()
    );
    assert_eq!(store.list_assignments().await.unwrap(), vec![assignment]);
    assert!(store.verify_token(token_hash).await.unwrap().is_some());
    assert!(
        !store
            .list_audit(AuditFilter::default(), PageRequest::first(10))
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

pub async fn batcher_writes_one_statement_per_batch_hb_4(db: &Db) {
    let store = db.open().await;
    for n in 1..=120u8 {
        store
            .set_connected(uid(n), Transport::Http, "r", Timestamp(1))
            .await
            .unwrap();
    }
    let batcher = LastSeenBatcher::spawn(
        Arc::clone(&store),
        BatcherConfig {
            flush_interval: Duration::from_secs(3600),
            max_entries: 10_000,
        },
    );
    // 1,000 heartbeats from 120 agents, then one flush.
    for i in 0..1000u32 {
        let n = (i % 120) as u8 + 1;
        batcher.touch(uid(n), Timestamp(1000 + i64::from(i)));
    }
    assert_eq!(batcher.pending(), 120);
    assert_eq!(batcher.flush().await.unwrap(), 120);
    batcher.touch(uid(1), Timestamp(50_000));
    let stats = batcher.shutdown().await.unwrap();
    assert_eq!(stats.heartbeats, 1001);
    assert_eq!(stats.statements, 2, "1,001 heartbeats, 2 statements");
    assert_eq!(stats.entries_written, 121);
    assert_eq!(
        store.get_agent(uid(1)).await.unwrap().last_seen,
        Timestamp(50_000)
    );
    // Agent 2's newest heartbeat was i = 961 (961 % 120 == 1).
    assert_eq!(
        store.get_agent(uid(2)).await.unwrap().last_seen,
        Timestamp(1961)
    );
}

pub async fn leadership_is_exclusive(db: &Db) {
    let store = db.open().await;
    let mut lease = store
        .try_lead("rollouts")
        .await
        .unwrap()
        .expect("first leader");
    assert_eq!(lease.name(), "rollouts");
    assert!(lease.still_held().await);
    assert!(store.try_lead("rollouts").await.unwrap().is_none());
    // Another store on the same database (a second replica) cannot lead either.
    let other = db.open().await;
    if db.kind == BackendKind::Postgres {
        assert!(other.try_lead("rollouts").await.unwrap().is_none());
    }
    let other_name = store.try_lead("cleanup").await.unwrap();
    assert!(other_name.is_some(), "names are independent");
    lease.release().await;
    let again = other.try_lead("rollouts").await.unwrap();
    assert!(again.is_some(), "released leadership can be taken");
    assert!(store.try_lead("bad name").await.is_err());
}

pub async fn migrations_are_idempotent_and_newer_schema_is_refused(db: &Db) {
    let s1 = db.open_with(StoreOptions::default()).await;
    assert_eq!(s1.schema_version().await.unwrap(), 1);
    Store::close(&s1).await.unwrap();
    let s2 = db.open_with(StoreOptions::default()).await;
    assert_eq!(s2.schema_version().await.unwrap(), 1);
    Store::close(&s2).await.unwrap();
    assert_eq!(db.count("schema_version").await, 1);

    db.exec(
        "INSERT INTO schema_version (version, name, applied_at) VALUES (99, 'from the future', 0)",
    )
    .await;
    match opamp_store::SqlStore::open(&db.location, StoreOptions::default()).await {
        Err(Error::SchemaTooNew { found, supported }) => {
            assert_eq!((found, supported), (99, 1));
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

pub async fn agent_supplied_text_is_stored_safely(db: &Db) {
    let store = db.open().await;
    let mut u = AgentUpdate::new(uid(1), Timestamp(1));
    u.description = Some(AgentDescription {
        identifying_attributes: [
            ("service.name".to_owned(), json!("nul\0inside")),
            (
                "emoji 🚀".to_owned(),
                json!("ünïcödé '; DROP TABLE agents; --"),
            ),
        ]
        .into(),
        non_identifying_attributes: [("nested".to_owned(), json!({"a": [1, 2, {"b": null}]}))]
            .into(),
    });
    u.remote_config_status = Some(RemoteConfigStatus {
        status: RemoteConfigState::Failed,
        last_remote_config_hash: vec![1, 2, 3], // not a 32-byte hash: kept as it came
        error_message: "bad\0byte".into(),
    });
    u.health = Some(json!({"last_error": "x\0y"}));
    store.upsert_agent(u).await.unwrap();
    let a = store.get_agent(uid(1)).await.unwrap();
    assert_eq!(
        a.description.identifying_attributes["service.name"],
        "nul\0inside"
    );
    assert_eq!(
        a.description.non_identifying_attributes["nested"]["a"][2]["b"],
        json!(null)
    );
    let rcs = a.remote_config_status.unwrap();
    assert_eq!(rcs.last_remote_config_hash, vec![1, 2, 3]);
    assert_eq!(rcs.config_hash(), None);
    assert!(rcs.error_message.starts_with("bad"));
    assert_eq!(a.health, Some(json!({"last_error": "x\0y"})));
    assert_eq!(store.count_agents(AgentFilter::default()).await.unwrap(), 1);
    let f = AgentFilter {
        labels: vec![("emoji 🚀".into(), "ünïcödé '; DROP TABLE agents; --".into())],
        ..Default::default()
    };
    assert_eq!(store.count_agents(f).await.unwrap(), 1);
}
