//! Issue 5's "done when" list against the real `opampd` binary (a child process):
//!
//! 1. it starts with SQLite and prints its URLs;
//! 2. the Python and Node OpAMP clients (when `cargo xtask test` installed them) and our own
//!    client over WebSocket and HTTP connect, and `GET /api/v1/agents` shows them all with
//!    their description and transport;
//! 3. a config assigned to `service.name=checkout` reaches exactly the matching agents,
//!    which report APPLIED (`in_sync`); an agent reporting FAILED shows as `failed` with its
//!    error message;
//! 4. after `kill -9` and a restart on the same data: configs, versions, assignments, labels
//!    and the agents' last known state are there, and reconnecting agents stay in sync with
//!    no config sent again (RCFG-5);
//! 5. the same with `--store postgres://...` (PostgreSQL from opamp-store's test harness;
//!    skipped when it is not installed, unless `OPAMP_REQUIRE_POSTGRES=1`).

#![allow(clippy::unwrap_used)]

mod support;

use opamp_interop::{PeerProcess, Peers};
use opamp_store::testing::pg;
use reqwest::Method;
use serde_json::{Value, json};
use support::{Mode, Opampd, OurAgent, find, uuid_from_hex};

const CHECKOUT_YAML: &str =
    "receivers:\n  otlp: {}\nexporters:\n  debug:\n    verbosity: detailed\n";
const FAIL_MESSAGE: &str = "cannot bind 0.0.0.0:4317: address in use";

/// A peer agent (Node or Python) and its uid in UUID form.
struct Peer {
    process: PeerProcess,
    uid: String,
    service: &'static str,
}

async fn start_peer(mut process: PeerProcess, service: &'static str) -> Peer {
    let started = process
        .wait_for("the started line", |e| e["event"] == "started")
        .await;
    let uid = uuid_from_hex(started["instance_uid"].as_str().unwrap());
    Peer {
        process,
        uid,
        service,
    }
}

fn remote_configs(p: &mut PeerProcess) -> usize {
    p.drain();
    p.seen()
        .iter()
        .filter(|e| e["event"] == "remote_config")
        .count()
}

fn last_seq(p: &mut PeerProcess) -> u64 {
    p.drain();
    p.seen()
        .iter()
        .filter(|e| e["event"] == "exchange")
        .filter_map(|e| e["seq"].as_u64())
        .max()
        .unwrap_or(0)
}

/// Steps 2–4 against an opampd started with `store_args`.
async fn fleet_scenario(test: &str, store_args: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = Opampd::start(&data, None, store_args).await;

    // 1. It prints its URLs.
    let out = d.stdout();
    assert!(out.contains(&format!("ws://{}/v1/opamp", d.opamp)), "{out}");
    assert!(
        out.contains(&format!("http://{}/api/v1/", d.admin)),
        "{out}"
    );

    // 2. Agents of every kind connect.
    let ws = OurAgent::start(&d.ws_url(), "checkout", Mode::Apply).await;
    let http = OurAgent::start(&d.http_url(), "checkout", Mode::Apply).await;
    let failer = OurAgent::start(&d.ws_url(), "checkout", Mode::Fail(FAIL_MESSAGE.into())).await;
    let cart = OurAgent::start(&d.http_url(), "cart", Mode::Apply).await;
    let mut peers = Vec::new();
    if let Some(p) = Peers::from_env(test) {
        peers.push(
            start_peer(
                p.node_agent(&d.http_url(), &["--service-name", "checkout"]),
                "checkout",
            )
            .await,
        );
        peers.push(
            start_peer(
                p.python_agent(&d.http_url(), &["--service-name", "checkout"]),
                "checkout",
            )
            .await,
        );
    }
    let mut expected: Vec<(String, &str, &str)> = vec![
        (ws.uid.clone(), "ws", "checkout"),
        (http.uid.clone(), "http", "checkout"),
        (failer.uid.clone(), "ws", "checkout"),
        (cart.uid.clone(), "http", "cart"),
    ];
    for p in &peers {
        expected.push((p.uid.clone(), "http", p.service));
    }
    let list = d
        .wait_get("every agent listed and connected", "/api/v1/agents", |b| {
            expected.iter().all(|(uid, transport, service)| {
                find(b, uid).is_some_and(|a| {
                    a["connected"] == true
                        && a["transport"] == *transport
                        && a["identifying_attributes"]["service.name"] == *service
                })
            })
        })
        .await;
    assert_eq!(list["agents"].as_array().unwrap().len(), expected.len());
    let w = find(&list, &ws.uid).unwrap();
    assert_eq!(w["identifying_attributes"]["service.version"], "1.2.3");
    assert_eq!(w["non_identifying_attributes"]["os.type"], "linux");
    assert!(
        w["capabilities"]
            .as_array()
            .unwrap()
            .contains(&json!("AcceptsRemoteConfig"))
    );

    // 3. A config assigned to service.name=checkout reaches exactly the checkout agents.
    let v1 = d
        .post(
            "/api/v1/configs",
            json!({"name": "checkout", "files": {"collector.yaml": {"content_type": "text/yaml", "body": CHECKOUT_YAML}}, "message": "first"}),
        )
        .await;
    let hash = v1["version"]["hash"].as_str().unwrap().to_owned();
    d.post(
        "/api/v1/assignments",
        json!({"config": "checkout", "selector": "service.name=checkout"}),
    )
    .await;
    let in_sync: Vec<String> = [&ws, &http]
        .iter()
        .map(|a| a.uid.clone())
        .chain(peers.iter().map(|p| p.uid.clone()))
        .collect();
    let list = d
        .wait_get(
            "checkout agents in sync, the failer failed",
            "/api/v1/agents",
            |b| {
                in_sync
                    .iter()
                    .all(|uid| find(b, uid).is_some_and(|a| a["sync_state"] == "in_sync"))
                    && find(b, &failer.uid).is_some_and(|a| a["sync_state"] == "failed")
            },
        )
        .await;
    for uid in &in_sync {
        let a = find(&list, uid).unwrap();
        assert_eq!(a["desired_config_hash"], hash.as_str(), "{a}");
        assert_eq!(a["remote_config_status"]["status"], "APPLIED", "{a}");
        assert_eq!(
            a["remote_config_status"]["last_remote_config_hash"],
            hash.as_str()
        );
    }
    let f = find(&list, &failer.uid).unwrap();
    assert_eq!(f["remote_config_status"]["status"], "FAILED");
    assert_eq!(f["remote_config_status"]["error_message"], FAIL_MESSAGE);
    let c = find(&list, &cart.uid).unwrap();
    assert_eq!(c["sync_state"], "unmanaged");
    assert!(c["desired_config_hash"].is_null());
    assert_eq!(cart.configs(), 0, "the cart agent must get nothing");
    for p in &mut peers {
        let got = p
            .process
            .wait_for("the remote config", |e| e["event"] == "remote_config")
            .await;
        assert_eq!(got["hash"], hash.as_str());
    }
    // The effective config reported back is shown (nothing secret in it).
    let detail = d.get(&format!("/api/v1/agents/{}", ws.uid)).await;
    assert_eq!(
        detail["effective_config"]["collector.yaml"]["body"],
        CHECKOUT_YAML
    );
    let failed_only = d.get("/api/v1/agents?sync_state=failed").await;
    assert_eq!(failed_only["agents"].as_array().unwrap().len(), 1);

    // Operator state to find again after the crash.
    let (s, _) = d
        .call(
            Method::PUT,
            &format!("/api/v1/agents/{}/labels/team", cart.uid),
            Some(json!({"value": "payments"})),
        )
        .await;
    assert!(s.is_success());
    d.post(
        "/api/v1/groups",
        json!({"name": "shop", "selector": "service.name in (checkout,cart)"}),
    )
    .await;
    let configs_before = [ws.configs(), http.configs(), failer.configs()];
    assert_eq!(configs_before, [1, 1, 1]);
    let peer_configs_before: Vec<usize> = peers
        .iter_mut()
        .map(|p| remote_configs(&mut p.process))
        .collect();
    let connects_before = [ws.connects(), failer.connects()];

    // 4. kill -9, then start again on the same data and the same ports.
    for p in &mut peers {
        p.process.tolerate_send_failures(true);
    }
    let (opamp, admin) = (d.opamp, d.admin);
    let mut d = d;
    d.kill9().await;
    let d = Opampd::start(&data, Some((opamp, admin)), store_args).await;

    let configs = d.get("/api/v1/configs").await;
    assert_eq!(configs["configs"][0]["name"], "checkout");
    assert_eq!(configs["configs"][0]["latest_version"], 1);
    let versions = d.get("/api/v1/configs/checkout/versions").await;
    assert_eq!(versions["versions"][0]["hash"], hash.as_str());
    assert_eq!(versions["versions"][0]["message"], "first");
    let assignments = d.get("/api/v1/assignments").await;
    assert_eq!(
        assignments["assignments"][0]["selector"],
        "service.name=checkout"
    );
    let groups = d.get("/api/v1/groups").await;
    assert_eq!(groups["groups"][0]["name"], "shop");
    let after = d.get("/api/v1/agents").await;
    assert_eq!(after["agents"].as_array().unwrap().len(), expected.len());
    let c = find(&after, &cart.uid).unwrap();
    assert_eq!(c["labels"]["team"], "payments");
    assert_eq!(c["operator_labels"]["team"], "payments");
    let f = find(&after, &failer.uid).unwrap();
    assert_eq!(f["remote_config_status"]["error_message"], FAIL_MESSAGE);
    for uid in &in_sync {
        let a = find(&after, uid).unwrap();
        assert_eq!(
            a["remote_config_status"]["last_remote_config_hash"],
            hash.as_str(),
            "{a}"
        );
    }

    // Everyone comes back and stays in sync, with nothing sent again (RCFG-5).
    ws.wait_connects(connects_before[0] + 1).await;
    failer.wait_connects(connects_before[1] + 1).await;
    d.wait_get(
        "every agent reconnected and in its state",
        "/api/v1/agents",
        |b| {
            expected
                .iter()
                .all(|(uid, _, _)| find(b, uid).is_some_and(|a| a["connected"] == true))
                && in_sync
                    .iter()
                    .all(|uid| find(b, uid).is_some_and(|a| a["sync_state"] == "in_sync"))
                && find(b, &failer.uid).is_some_and(|a| a["sync_state"] == "failed")
        },
    )
    .await;
    // A few more exchanges for every agent, then count what they received.
    for p in &mut peers {
        let seq = last_seq(&mut p.process);
        p.process
            .wait_for("three more exchanges", |e| {
                e["event"] == "exchange" && e["seq"].as_u64().unwrap_or(0) >= seq + 3
            })
            .await;
    }
    let last_seen_of = |b: &Value, uid: &str| {
        find(b, uid).and_then(|a| a["last_seen"].as_str().map(str::to_owned))
    };
    let seen_now = d.get("/api/v1/agents").await;
    let marks: Vec<(String, Option<String>)> = [&ws.uid, &http.uid, &failer.uid]
        .iter()
        .map(|uid| ((*uid).clone(), last_seen_of(&seen_now, uid)))
        .collect();
    d.wait_get("our agents heard from again", "/api/v1/agents", |b| {
        marks
            .iter()
            .all(|(uid, before)| last_seen_of(b, uid) > *before)
    })
    .await;
    assert_eq!(
        [ws.configs(), http.configs(), failer.configs()],
        configs_before,
        "a config was sent again after the restart"
    );
    for (p, before) in peers.iter_mut().zip(&peer_configs_before) {
        assert_eq!(
            remote_configs(&mut p.process),
            *before,
            "{} got the config again after the restart",
            p.uid
        );
    }
    assert_eq!(cart.configs(), 0);

    // Graceful stop on SIGTERM.
    for a in [&ws, &http, &failer, &cart] {
        a.handle.stop().await.unwrap();
    }
    for p in &mut peers {
        p.process.stop().await;
    }
    let mut d = d;
    let status = d.terminate().await;
    assert!(status.success(), "{status}\n{}", d.stderr());
    // The log is read by a task of its own: give it time to reach the last line.
    let deadline = tokio::time::Instant::now() + support::WAIT;
    while !d.stderr().contains("stopped") && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(d.stderr().contains("stopped"), "{}", d.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_fleet_connect_assign_apply_fail_and_survive_kill_9_rcfg_4_rcfg_5() {
    fleet_scenario(
        "sqlite_fleet_connect_assign_apply_fail_and_survive_kill_9_rcfg_4_rcfg_5",
        &[],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_fleet_connect_assign_apply_fail_and_survive_kill_9_rcfg_4_rcfg_5() {
    let Some(url) = pg::fresh_database().await else {
        println!(
            "postgres_fleet_connect_assign_apply_fail_and_survive_kill_9_rcfg_4_rcfg_5: skipped: \
             PostgreSQL is not installed (apt-get install postgresql; OPAMP_REQUIRE_POSTGRES=1 makes this a failure)"
        );
        return;
    };
    fleet_scenario(
        "postgres_fleet_connect_assign_apply_fail_and_survive_kill_9_rcfg_4_rcfg_5",
        &["--store", &url],
    )
    .await;
}

/// Two replicas on one PostgreSQL (DESIGN §4): changes made through replica A's API reach
/// the agents replica B holds, through the store's LISTEN/NOTIFY change events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_replicas_stay_in_step_through_change_events_rcfg_10_cmd_1() {
    let Some(url) = pg::fresh_database().await else {
        println!(
            "postgres_replicas_stay_in_step_through_change_events_rcfg_10_cmd_1: skipped: PostgreSQL is not installed"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let a = Opampd::start(
        &dir.path().join("a"),
        None,
        &["--store", &url, "--server-id", "replica-a"],
    )
    .await;
    let b = Opampd::start(
        &dir.path().join("b"),
        None,
        &["--store", &url, "--server-id", "replica-b"],
    )
    .await;
    let ws = OurAgent::start(&b.ws_url(), "checkout", Mode::Apply).await;
    let http = OurAgent::start(&b.http_url(), "checkout", Mode::Apply).await;
    // Replica A sees B's agents: the store is shared.
    a.wait_get("B's agents, seen through A", "/api/v1/agents", |l| {
        find(l, &ws.uid).is_some_and(|x| x["connected"] == true)
            && find(l, &http.uid).is_some_and(|x| x["connected"] == true)
    })
    .await;

    // Config and assignment through A; B pushes to the agents it holds.
    let v = a
        .post(
            "/api/v1/configs",
            json!({"name": "checkout", "files": {"c.yaml": {"content_type": "text/yaml", "body": "a: 1\n"}}}),
        )
        .await;
    let hash = v["version"]["hash"].as_str().unwrap().to_owned();
    a.post(
        "/api/v1/assignments",
        json!({"config": "checkout", "selector": "service.name=checkout"}),
    )
    .await;
    for d in [&a, &b] {
        d.wait_get("both agents in sync", "/api/v1/agents", |l| {
            [&ws.uid, &http.uid].iter().all(|uid| {
                find(l, uid).is_some_and(|x| {
                    x["sync_state"] == "in_sync" && x["desired_config_hash"] == hash.as_str()
                })
            })
        })
        .await;
    }

    // An assignment to one agent, made through A, reaches it through B.
    let v2 = a
        .post(
            "/api/v1/configs",
            json!({"name": "special", "files": {"s.yaml": {"content_type": "text/yaml", "body": "b: 2\n"}}}),
        )
        .await;
    let special = v2["version"]["hash"].as_str().unwrap().to_owned();
    a.post(
        "/api/v1/assignments",
        json!({"config": "special", "agent": ws.uid}),
    )
    .await;
    b.wait_get(
        "the agent assignment applied through B",
        &format!("/api/v1/agents/{}", ws.uid),
        |x| x["sync_state"] == "in_sync" && x["desired_config_hash"] == special.as_str(),
    )
    .await;
    assert_eq!(ws.configs(), 2);
    assert_eq!(http.configs(), 1);

    // A restart queued through A is delivered by B, which holds the WebSocket (CMD-1).
    let (s, _) = a
        .call(
            Method::POST,
            &format!("/api/v1/agents/{}/restart", ws.uid),
            None,
        )
        .await;
    assert_eq!(s, reqwest::StatusCode::ACCEPTED);
    ws.wait_commands(1).await;
    for x in [&ws, &http] {
        x.handle.stop().await.unwrap();
    }
    for mut d in [a, b] {
        assert!(d.terminate().await.success());
    }
}

/// Posts one AgentToServer over plain HTTP and decodes the reply.
async fn post_opamp(
    url: &str,
    msg: &opamp_proto::v1::AgentToServer,
) -> opamp_proto::v1::ServerToAgent {
    use opamp_proto::prost::Message as _;
    let resp = reqwest::Client::new()
        .post(url)
        .header("content-type", opamp_proto::CONTENT_TYPE_PROTOBUF)
        .body(msg.encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::OK);
    opamp_proto::v1::ServerToAgent::decode(resp.bytes().await.unwrap()).unwrap()
}

/// An HTTP agent behind a load balancer: polls alternate between two replicas. Once it
/// reported APPLIED through replica A, replica B does not offer the config again although
/// this is the first time B hears from it and the poll carries no status (RCFG-5); and B,
/// which the agent never described itself to, still knows its labels and offers it the
/// next version (RCFG-4).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_http_agent_alternating_replicas_gets_each_config_once_rcfg_4_rcfg_5() {
    use opamp_proto::v1::{AgentDescription, AgentToServer, KeyValue, RemoteConfigStatus};
    use opamp_proto::{AgentCapabilities, InstanceUid};
    let Some(url) = pg::fresh_database().await else {
        println!(
            "postgres_http_agent_alternating_replicas_gets_each_config_once_rcfg_4_rcfg_5: skipped: PostgreSQL is not installed"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let a = Opampd::start(
        &dir.path().join("a"),
        None,
        &["--store", &url, "--server-id", "a"],
    )
    .await;
    let b = Opampd::start(
        &dir.path().join("b"),
        None,
        &["--store", &url, "--server-id", "b"],
    )
    .await;
    let v = a
        .post(
            "/api/v1/configs",
            json!({"name": "lb", "files": {"c.yaml": {"content_type": "text/yaml", "body": "x: 1\n"}}}),
        )
        .await;
    let hash = v["version"]["hash"].as_str().unwrap().to_owned();
    a.post(
        "/api/v1/assignments",
        json!({"config": "lb", "selector": "service.name=lb"}),
    )
    .await;
    // B learns of the assignment through NOTIFY.
    b.wait_get("the assignment on B", "/api/v1/assignments", |l| {
        l["assignments"].as_array().is_some_and(|x| x.len() == 1)
    })
    .await;

    let uid = InstanceUid::new_v7();
    let caps = AgentCapabilities::REPORTS_STATUS
        | AgentCapabilities::ACCEPTS_REMOTE_CONFIG
        | AgentCapabilities::REPORTS_REMOTE_CONFIG;
    let first = AgentToServer {
        instance_uid: uid.to_vec(),
        sequence_num: 1,
        capabilities: caps.bits(),
        agent_description: Some(AgentDescription {
            identifying_attributes: vec![KeyValue::new("service.name", "lb")],
            non_identifying_attributes: vec![],
        }),
        remote_config_status: Some(RemoteConfigStatus::default()),
        ..Default::default()
    };
    // A applies the assignment from its change stream a moment after the API answered:
    // poll until the offer comes (HTTP-13).
    let deadline = tokio::time::Instant::now() + support::WAIT;
    let mut seq = 1;
    let offered = loop {
        let poll = AgentToServer {
            sequence_num: seq,
            ..first.clone()
        };
        if let Some(rc) = post_opamp(&a.http_url(), &poll).await.remote_config {
            break rc;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "A never offered the desired config"
        );
        seq += 1;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(
        offered
            .config_hash
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
        hash
    );
    let applied = AgentToServer {
        instance_uid: uid.to_vec(),
        sequence_num: seq + 1,
        capabilities: caps.bits(),
        remote_config_status: Some(RemoteConfigStatus {
            last_remote_config_hash: offered.config_hash.clone(),
            status: opamp_proto::v1::RemoteConfigStatuses::Applied as i32,
            error_message: String::new(),
        }),
        ..Default::default()
    };
    let reply = post_opamp(&a.http_url(), &applied).await;
    assert!(reply.remote_config.is_none());
    a.wait_get(
        "in sync, as stored",
        &format!("/api/v1/agents/{uid}"),
        |x| x["sync_state"] == "in_sync",
    )
    .await;

    // The next poll lands on B: a bare heartbeat.
    let heartbeat = AgentToServer {
        instance_uid: uid.to_vec(),
        sequence_num: seq + 2,
        capabilities: caps.bits(),
        ..Default::default()
    };
    let reply = post_opamp(&b.http_url(), &heartbeat).await;
    assert!(
        reply.remote_config.is_none(),
        "replica B offered the config the agent already applied"
    );

    // B knows the agent's labels although it was never described to B: a new version
    // reaches it through B.
    let v2 = a
        .post(
            "/api/v1/configs",
            json!({"name": "lb", "files": {"c.yaml": {"content_type": "text/yaml", "body": "x: 2\n"}}}),
        )
        .await;
    let hash2 = v2["version"]["hash"].as_str().unwrap().to_owned();
    let deadline = tokio::time::Instant::now() + support::WAIT;
    let mut seq = seq + 3;
    loop {
        let poll = AgentToServer {
            sequence_num: seq,
            ..heartbeat.clone()
        };
        let reply = post_opamp(&b.http_url(), &poll).await;
        if let Some(rc) = reply.remote_config {
            let got: String = rc.config_hash.iter().map(|x| format!("{x:02x}")).collect();
            assert_eq!(got, hash2);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "replica B never offered version 2"
        );
        seq += 1;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for mut d in [a, b] {
        assert!(d.terminate().await.success());
    }
}
