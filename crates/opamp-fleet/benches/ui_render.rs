//! Server render time of the web UI's pages with 10,000 agents in SQLite.
//!
//! ```text
//! cargo bench -p opamp-fleet --bench ui_render            # 10,000 agents, 20 runs each
//! UI_BENCH_AGENTS=2000 UI_BENCH_RUNS=50 cargo bench -p opamp-fleet --bench ui_render
//! ```
//!
//! Seeds a SQLite store in a temporary directory (agents with descriptions, health, remote
//! config statuses, operator labels; two configs assigned by selector), starts a [`Fleet`]
//! on it, and times whole requests through the admin router in this process (no socket):
//! session check, store reads, sync states, HTML rendering. Each page is timed right after
//! a change in the fleet (the UI reads every agent from the store again) and once more
//! with nothing changed (it reuses its copy, at most 2 s old). Prints median and p95 per
//! page and the HTML size.

#![allow(clippy::unwrap_used, missing_docs)]

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use opamp_config::{ConfigFile, ConfigMap};
use opamp_fleet::{Fleet, FleetOptions};
use opamp_proto::{AgentCapabilities, InstanceUid};
use opamp_store::{
    Actor, AgentDescription, AgentUpdate, AssignmentTarget, NewAssignment, NewConfigVersion,
    RemoteConfigState, RemoteConfigStatus, StoreOptions, Timestamp, Transport,
};
use serde_json::json;
use tower::ServiceExt as _;

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn uid(i: usize) -> InstanceUid {
    let mut b = [0u8; 16];
    b[0] = 0x01;
    b[8..].copy_from_slice(&(i as u64).to_be_bytes());
    InstanceUid::from_array(b)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this without it, as a
    // smoke test: keep it quick then.
    let quick = !std::env::args().any(|a| a == "--bench");
    let agents = if quick {
        200
    } else {
        env_num("UI_BENCH_AGENTS", 10_000)
    };
    let runs = if quick {
        2
    } else {
        env_num("UI_BENCH_RUNS", 20)
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(agents, runs));
}

async fn run(n: usize, runs: usize) {
    let dir = tempfile::tempdir().unwrap();
    let store = opamp_store::open(
        dir.path().join("data").to_str().unwrap(),
        StoreOptions::default(),
    )
    .await
    .unwrap();
    let actor = Actor::system("bench");
    let seed_start = Instant::now();
    let mut hashes = Vec::new();
    for (name, body) in [
        (
            "checkout",
            "receivers:\n  otlp: {}\nexporters:\n  debug: {}\n",
        ),
        ("cart", "receivers:\n  otlp: {}\nprocessors:\n  batch: {}\n"),
    ] {
        let v = store
            .add_config_version(
                &actor,
                NewConfigVersion {
                    config: name.into(),
                    config_map: ConfigMap::new()
                        .with_file("collector.yaml", ConfigFile::new("text/yaml", body)),
                    message: String::new(),
                    rollback_of: None,
                },
            )
            .await
            .unwrap();
        store
            .put_assignment(
                &actor,
                NewAssignment {
                    config: name.into(),
                    version: None,
                    target: AssignmentTarget::Selector(format!("service.name={name}")),
                },
            )
            .await
            .unwrap();
        hashes.push(v.version.hash);
    }
    let mut batch = Vec::new();
    for i in 0..n {
        let service = match i % 10 {
            0..=5 => "checkout",
            6..=8 => "cart",
            _ => "payments",
        };
        let mut u = AgentUpdate::new(uid(i), Timestamp::now());
        u.description = Some(AgentDescription {
            identifying_attributes: [
                ("service.name".to_owned(), json!(service)),
                (
                    "service.version".to_owned(),
                    json!(format!("1.{}.0", i % 4)),
                ),
                ("service.instance.id".to_owned(), json!(format!("pod-{i}"))),
            ]
            .into(),
            non_identifying_attributes: [
                ("host.name".to_owned(), json!(format!("node-{:05}", i / 20))),
                ("os.type".to_owned(), json!("linux")),
                (
                    "env".to_owned(),
                    json!(if i % 3 == 0 { "staging" } else { "prod" }),
                ),
            ]
            .into(),
        });
        u.capabilities = Some(
            AgentCapabilities::REPORTS_STATUS
                | AgentCapabilities::ACCEPTS_REMOTE_CONFIG
                | AgentCapabilities::REPORTS_EFFECTIVE_CONFIG
                | AgentCapabilities::REPORTS_HEALTH
                | AgentCapabilities::REPORTS_REMOTE_CONFIG,
        );
        u.health = Some(json!({
            "healthy": i % 17 != 0,
            "status": "ok",
            "component_health_map": {"receiver/otlp": {"healthy": true}}
        }));
        let hash = match service {
            "checkout" => Some(hashes[0]),
            "cart" => Some(hashes[1]),
            _ => None,
        };
        if let Some(h) = hash {
            u.remote_config_status = Some(RemoteConfigStatus {
                status: if i % 50 == 0 {
                    RemoteConfigState::Failed
                } else {
                    RemoteConfigState::Applied
                },
                last_remote_config_hash: h.to_vec(),
                error_message: String::new(),
            });
        }
        u.transport = Some(if i % 2 == 0 {
            Transport::WebSocket
        } else {
            Transport::Http
        });
        batch.push(u);
        if batch.len() == 500 {
            store
                .upsert_agents(std::mem::take(&mut batch))
                .await
                .unwrap();
        }
    }
    if !batch.is_empty() {
        store.upsert_agents(batch).await.unwrap();
    }
    for i in (0..n).step_by(2) {
        store
            .set_connected(uid(i), Transport::WebSocket, "bench", Timestamp::now())
            .await
            .unwrap();
    }
    let fleet = Fleet::start(
        store.clone(),
        FleetOptions::new("bench").open_without_tokens(true),
    )
    .await
    .unwrap();
    let router = fleet.admin_router();
    println!(
        "ui_render: {n} agents seeded in SQLite in {:.1} s; {runs} runs per page",
        seed_start.elapsed().as_secs_f64()
    );

    let detail = format!("/agents/{}", uid(n / 2));
    let last_page = format!("/agents?page={}", n.div_ceil(50).max(1));
    let pages: Vec<(&str, String)> = vec![
        ("overview", "/".into()),
        ("agents, first page (50 rows)", "/agents".into()),
        (
            "agents, last page, sorted by last seen",
            format!("{last_page}&sort=last_seen&dir=desc"),
        ),
        (
            "agents, selector service.name=cart",
            "/agents?selector=service.name%3Dcart".into(),
        ),
        (
            "agents, selector env notin (staging) + text",
            "/agents?selector=env%20notin%20(staging)&q=node-0001".into(),
        ),
        (
            "agents table fragment (live update)",
            "/agents?fragment=agents-table".into(),
        ),
        ("agent detail", detail),
        ("configs (rollout bars)", "/configs".into()),
    ];
    println!("| page | after a change: median · p95 | unchanged fleet: median · p95 | HTML |");
    println!("|---|---|---|---|");
    // The floor: reading every agent from the store, as the overview and the list do.
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let start = Instant::now();
        let mut page = opamp_store::PageRequest::first(1000);
        let mut count = 0;
        loop {
            let p = store
                .list_agents(opamp_store::AgentFilter::default(), page.clone())
                .await
                .unwrap();
            count += p.items.len();
            match p.next_cursor {
                Some(c) => page = opamp_store::PageRequest::after(c, 1000),
                None => break,
            }
        }
        assert_eq!(count, n);
        times.push(start.elapsed());
    }
    println!(
        "| (store alone: `list_agents` over all {n} agents, pages of 1,000) | {} | — | — |",
        stats(&mut times)
    );
    let mut events = fleet.subscribe_events();
    let mut bump = 0u64;
    for (name, path) in pages {
        let mut cold = Vec::with_capacity(runs);
        let mut warm = Vec::with_capacity(runs);
        let mut size = 0;
        for _ in 0..runs.max(1) {
            // A change anywhere in the fleet (here: a label) makes the next page read the
            // store again.
            bump += 1;
            store
                .set_labels(
                    &actor,
                    uid(0),
                    [("bench".to_owned(), bump.to_string())].into(),
                )
                .await
                .unwrap();
            loop {
                if let Ok(ev) = events.recv().await
                    && ev.kind == "labels_changed"
                {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
            for times in [&mut cold, &mut warm] {
                let req = Request::get(path.as_str()).body(Body::empty()).unwrap();
                let start = Instant::now();
                let resp = router.clone().oneshot(req).await.unwrap();
                assert_eq!(resp.status(), StatusCode::OK, "{path}");
                let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
                    .await
                    .unwrap();
                times.push(start.elapsed());
                size = body.len();
            }
        }
        println!(
            "| {name} (`{path}`) | {} | {} | {:.1} KiB |",
            stats(&mut cold),
            stats(&mut warm),
            size as f64 / 1024.0
        );
    }
    fleet.shutdown().await;
}

fn stats(times: &mut [Duration]) -> String {
    times.sort();
    let pct = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
    format!("{} · {}", ms(pct(0.5)), ms(pct(0.95)))
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}
