//! Desired configs follow assignments, groups and labels, and reach our own agents over
//! WebSocket (pushed at once) and HTTP (with the next poll); restart commands too.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use opamp_client::{AgentCapabilities, ClientEvent, ClientHandle, OpampClient, v1};
use opamp_store::Role;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{Env, WAIT, assert_error};
use tokio::sync::mpsc;

/// What one of our agents received.
#[derive(Debug)]
enum Got {
    Config(String),
    Restart,
}

struct Agent {
    handle: ClientHandle,
    uid: String,
    got: mpsc::UnboundedReceiver<Got>,
}

impl Agent {
    async fn start(url: &str, service: &str, restartable: bool) -> Agent {
        let mut caps = AgentCapabilities::ACCEPTS_REMOTE_CONFIG
            | AgentCapabilities::REPORTS_REMOTE_CONFIG
            | AgentCapabilities::REPORTS_EFFECTIVE_CONFIG
            | AgentCapabilities::REPORTS_HEARTBEAT;
        if restartable {
            caps |= AgentCapabilities::ACCEPTS_RESTART_COMMAND;
        }
        let client = OpampClient::builder(url)
            .service_name(service)
            .capabilities(caps)
            .heartbeat_interval(Some(Duration::from_secs(1)))
            .polling_interval(Duration::from_millis(200))
            .build()
            .unwrap();
        let (handle, mut events) = client.start().await.unwrap();
        let uid = handle.instance_uid().await.to_string();
        let (tx, got) = mpsc::unbounded_channel();
        let h = handle.clone();
        tokio::spawn(async move {
            while let Some(e) = events.recv().await {
                match e {
                    ClientEvent::RemoteConfig(rc) => {
                        let _ = h
                            .set_effective_config(v1::EffectiveConfig {
                                config_map: rc.config.clone(),
                            })
                            .await;
                        let _ = h
                            .set_remote_config_status(v1::RemoteConfigStatus {
                                last_remote_config_hash: rc.config_hash.clone(),
                                status: v1::RemoteConfigStatuses::Applied as i32,
                                error_message: String::new(),
                            })
                            .await;
                        let _ = tx.send(Got::Config(hex(&rc.config_hash)));
                    }
                    ClientEvent::Command(_) => {
                        let _ = tx.send(Got::Restart);
                    }
                    _ => {}
                }
            }
        });
        Agent { handle, uid, got }
    }

    async fn next(&mut self) -> Got {
        tokio::time::timeout(WAIT, self.got.recv())
            .await
            .expect("the agent got nothing")
            .unwrap()
    }

    async fn expect_config(&mut self, hash: &str) {
        loop {
            match self.next().await {
                Got::Config(h) if h == hash => return,
                Got::Config(_) => {}
                Got::Restart => panic!("unexpected restart"),
            }
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

async fn config(env: &Env, name: &str, body: &str) -> String {
    let (s, v) = env
        .post(
            "/api/v1/configs",
            json!({"name": name, "files": {"app.yaml": {"content_type": "text/yaml", "body": body}}}),
        )
        .await;
    assert!(s.is_success(), "{v}");
    v["version"]["hash"].as_str().unwrap().to_owned()
}

async fn assign(env: &Env, body: Value) -> i64 {
    let (s, a) = env.post("/api/v1/assignments", body).await;
    assert_eq!(s, StatusCode::CREATED, "{a}");
    a["id"].as_i64().unwrap()
}

async fn wait_state(env: &Env, uid: &str, state: &str, hash: &str) -> Value {
    env.wait_get(
        &format!("{uid} {state} {hash}"),
        &format!("/api/v1/agents/{uid}"),
        |a| a["sync_state"] == state && a["desired_config_hash"] == hash,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desired_configs_follow_precedence_and_reach_ws_and_http_agents_rcfg_10_http_13() {
    let env = Env::open().await;
    let mut ws = Agent::start(&env.ws_url, "checkout", true).await;
    let mut http = Agent::start(&env.http_url, "checkout", false).await;
    let mut other = Agent::start(&env.ws_url, "cart", true).await;
    env.wait_get("three agents", "/api/v1/agents", |b| {
        b["agents"].as_array().is_some_and(|a| a.len() == 3)
    })
    .await;

    // A selector assignment reaches both checkout agents, not the cart agent.
    let sel = config(&env, "base", "level: info\n").await;
    assign(
        &env,
        json!({"config": "base", "selector": "service.name=checkout"}),
    )
    .await;
    ws.expect_config(&sel).await;
    http.expect_config(&sel).await;
    wait_state(&env, &ws.uid, "in_sync", &sel).await;
    let h = wait_state(&env, &http.uid, "in_sync", &sel).await;
    assert_eq!(h["transport"], "http");
    assert_eq!(h["desired_config"]["config"], "base");
    let o = env.get(&format!("/api/v1/agents/{}", other.uid)).await.1;
    assert_eq!(o["sync_state"], "unmanaged");
    assert!(o["desired_config_hash"].is_null());

    // An operator label moves the WS agent into a group: group beats selector.
    let (s, _) = env
        .post(
            "/api/v1/groups",
            json!({"name": "edge", "selector": "tier=edge"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let grp = config(&env, "edge-cfg", "level: warn\n").await;
    assign(&env, json!({"config": "edge-cfg", "group": "edge"})).await;
    let (s, labels) = env
        .call(
            Method::PUT,
            &format!("/api/v1/agents/{}/labels/tier", ws.uid),
            Some(json!({"value": "edge"})),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{labels}");
    ws.expect_config(&grp).await;
    let a = wait_state(&env, &ws.uid, "in_sync", &grp).await;
    assert_eq!(a["labels"]["tier"], "edge");
    assert_eq!(a["operator_labels"]["tier"], "edge");
    let (_, listed) = env
        .get("/api/v1/agents?selector=tier%3Dedge&sync_state=in_sync")
        .await;
    assert_eq!(listed["agents"].as_array().unwrap().len(), 1);

    // An agent assignment beats the group; deleting it falls back to the group.
    let one = config(&env, "special", "level: debug\n").await;
    let id = assign(&env, json!({"config": "special", "agent": ws.uid})).await;
    ws.expect_config(&one).await;
    wait_state(&env, &ws.uid, "in_sync", &one).await;
    let (s, _) = env
        .call(
            Method::DELETE,
            &format!("/api/v1/assignments/{id}"),
            None,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    ws.expect_config(&grp).await;
    wait_state(&env, &ws.uid, "in_sync", &grp).await;

    // A new version of a config followed as "latest" goes out by itself.
    let grp2 = config(&env, "edge-cfg", "level: error\n").await;
    ws.expect_config(&grp2).await;
    wait_state(&env, &ws.uid, "in_sync", &grp2).await;

    // The HTTP agent kept the selector's config all along.
    wait_state(&env, &http.uid, "in_sync", &sel).await;

    // Restart: delivered to an agent that accepts it, 409 for one that does not (CMD-1).
    let (s, c) = env
        .call(
            Method::POST,
            &format!("/api/v1/agents/{}/restart", ws.uid),
            None,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{c}");
    loop {
        if matches!(ws.next().await, Got::Restart) {
            break;
        }
    }
    let r = env
        .call(
            Method::POST,
            &format!("/api/v1/agents/{}/restart", http.uid),
            None,
            None,
        )
        .await;
    assert_error(&r, StatusCode::CONFLICT, "conflict");

    // Offer-to-APPLIED latencies were measured (push-to-applied histogram).
    let m = env
        .http
        .get(format!("{}/metrics", env.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let applied: u64 = m
        .lines()
        .find_map(|l| {
            l.strip_prefix("opamp_push_to_applied_seconds_count ")?
                .parse()
                .ok()
        })
        .unwrap();
    assert!(applied >= 5, "push-to-applied observations: {applied}\n{m}");

    // The summary counts them.
    let (_, sum) = env.get("/api/v1/summary").await;
    assert_eq!(sum["total"], 3);
    assert_eq!(sum["by_sync_state"]["in_sync"], 2);
    assert_eq!(sum["by_sync_state"]["unmanaged"], 1);
    assert_eq!(sum["by_transport"]["ws"], 2);
    assert_eq!(sum["by_transport"]["http"], 1);

    // The cart agent was never offered anything.
    assert!(other.got.try_recv().is_err());
    for a in [&ws, &http, &other] {
        a.handle.stop().await.unwrap();
    }
    env.wait_get("every agent disconnected", "/api/v1/summary", |s| {
        s["by_connection"]["disconnected"] == 3
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_lists_are_paginated_and_effective_configs_redacted_unless_revealed() {
    let env = Env::open().await;
    let mut agents = Vec::new();
    for i in 0..3 {
        let client = OpampClient::builder(env.ws_url.clone())
            .service_name(format!("svc-{i}"))
            .capabilities(
                AgentCapabilities::REPORTS_EFFECTIVE_CONFIG | AgentCapabilities::REPORTS_HEARTBEAT,
            )
            .effective_config(v1::EffectiveConfig {
                config_map: Some(v1::AgentConfigMap {
                    config_map: [(
                        "agent.yaml".to_owned(),
                        v1::AgentConfigFile {
                            body: b"endpoint: collector:4317\npassword: hunter2\n".to_vec(),
                            content_type: "text/yaml".into(),
                        },
                    )]
                    .into(),
                }),
            })
            .build()
            .unwrap();
        let (handle, _events) = client.start().await.unwrap();
        agents.push((handle.instance_uid().await.to_string(), handle));
    }
    env.wait_get("three agents", "/api/v1/agents", |b| {
        b["agents"].as_array().is_some_and(|a| a.len() == 3)
    })
    .await;

    let (_, p1) = env.get("/api/v1/agents?limit=2").await;
    assert_eq!(p1["agents"].as_array().unwrap().len(), 2);
    let cursor = p1["next_cursor"].as_str().unwrap().to_owned();
    let (_, p2) = env
        .get(&format!("/api/v1/agents?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(p2["agents"].as_array().unwrap().len(), 1);
    assert!(p2["next_cursor"].is_null());
    let mut seen: Vec<String> = p1["agents"]
        .as_array()
        .unwrap()
        .iter()
        .chain(p2["agents"].as_array().unwrap())
        .map(|a| a["instance_uid"].as_str().unwrap().to_owned())
        .collect();
    seen.sort();
    let mut all: Vec<String> = agents.iter().map(|(u, _)| u.clone()).collect();
    all.sort();
    assert_eq!(seen, all);
    let r = env.get("/api/v1/agents?cursor=garbage").await;
    assert_eq!(r.0, StatusCode::BAD_REQUEST, "{}", r.1);

    let uid = &agents[0].0;
    let a = env
        .wait_get(
            "the effective config",
            &format!("/api/v1/agents/{uid}"),
            |a| a["effective_config"].is_object(),
        )
        .await;
    let body = a["effective_config"]["agent.yaml"]["body"]
        .as_str()
        .unwrap();
    assert!(
        !body.contains("hunter2") && body.contains("collector:4317"),
        "{body}"
    );
    assert_eq!(a["effective_config_redacted"], true);
    // Revealing needs the admin role: an operator gets 403, an admin the original.
    let operator = env.token(Role::Operator, "ops").await;
    let admin = env.token(Role::Admin, "root").await;
    let r = env
        .call(
            Method::GET,
            &format!("/api/v1/agents/{uid}?reveal=true"),
            None,
            Some(&operator),
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let (s, a) = env
        .call(
            Method::GET,
            &format!("/api/v1/agents/{uid}?reveal=true"),
            None,
            Some(&admin),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        a["effective_config"]["agent.yaml"]["body"]
            .as_str()
            .unwrap()
            .contains("hunter2")
    );
    assert_eq!(a["effective_config_redacted"], false);
    for (_, h) in agents {
        h.stop().await.unwrap();
    }
}
