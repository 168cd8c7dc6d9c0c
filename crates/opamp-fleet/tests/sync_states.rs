//! Sync states that need an agent behaving in a particular way (pending, drifted), and the
//! write discipline of the handler (heartbeats touch only the batched last-seen).

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use opamp_client::{AgentCapabilities, ClientEvent, OpampClient, v1};
use opamp_fleet::FleetOptions;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::Env;

fn caps() -> AgentCapabilities {
    AgentCapabilities::ACCEPTS_REMOTE_CONFIG
        | AgentCapabilities::REPORTS_REMOTE_CONFIG
        | AgentCapabilities::REPORTS_HEARTBEAT
}

async fn new_version(env: &Env, body: &str) -> String {
    let (s, v) = env
        .post(
            "/api/v1/configs",
            json!({"name": "app", "files": {"app.yaml": {"content_type": "text/yaml", "body": body}}}),
        )
        .await;
    assert!(s.is_success(), "{v}");
    v["version"]["hash"].as_str().unwrap().to_owned()
}

async fn assign_all(env: &Env) {
    let (s, a) = env
        .post(
            "/api/v1/assignments",
            json!({"config": "app", "selector": "service.name"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{a}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_agent_that_has_not_polled_since_the_assignment_is_pending_http_13() {
    let env = Env::open().await;
    let client = OpampClient::builder(env.http_url.clone())
        .service_name("slow")
        .capabilities(caps())
        .polling_interval(Duration::from_secs(3600))
        .heartbeat_interval(None)
        .build()
        .unwrap();
    let (handle, _events) = client.start().await.unwrap();
    let uid = handle.instance_uid().await.to_string();
    env.wait_get("the agent", &format!("/api/v1/agents/{uid}"), |a| {
        a["sync_state"] == "unmanaged"
    })
    .await;
    let hash = new_version(&env, "a: 1\n").await;
    assign_all(&env).await;
    let a = env
        .wait_get("pending", &format!("/api/v1/agents/{uid}"), |a| {
            a["desired_config_hash"] == hash.as_str()
        })
        .await;
    assert_eq!(a["sync_state"], "pending", "{a}");
    assert!(a["remote_config_status"].is_null(), "{a}");
    handle.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_answers_the_offer_but_keeps_another_config_is_drifted_rcfg_3() {
    let env = Env::open().await;
    let client = OpampClient::builder(env.ws_url.clone())
        .service_name("stubborn")
        .capabilities(caps())
        .heartbeat_interval(Some(Duration::from_secs(1)))
        .build()
        .unwrap();
    let (handle, mut events) = client.start().await.unwrap();
    let uid = handle.instance_uid().await.to_string();
    // Applies the first config; for any later one it tries, then goes back to the first
    // (as a supervisor's "last known good" rollback would).
    let h = handle.clone();
    tokio::spawn(async move {
        let mut first: Option<Vec<u8>> = None;
        while let Some(e) = events.recv().await {
            let ClientEvent::RemoteConfig(rc) = e else {
                continue;
            };
            let status = |hash: &[u8], s: v1::RemoteConfigStatuses| v1::RemoteConfigStatus {
                last_remote_config_hash: hash.to_vec(),
                status: s as i32,
                error_message: String::new(),
            };
            match &first {
                None => {
                    first = Some(rc.config_hash.clone());
                    let _ = h
                        .set_remote_config_status(status(
                            &rc.config_hash,
                            v1::RemoteConfigStatuses::Applied,
                        ))
                        .await;
                }
                Some(old) => {
                    let _ = h
                        .set_remote_config_status(status(
                            &rc.config_hash,
                            v1::RemoteConfigStatuses::Applying,
                        ))
                        .await;
                    let _ = h
                        .set_remote_config_status(status(old, v1::RemoteConfigStatuses::Applied))
                        .await;
                }
            }
        }
    });
    let v1 = new_version(&env, "a: 1\n").await;
    assign_all(&env).await;
    env.wait_get("in sync with v1", &format!("/api/v1/agents/{uid}"), |a| {
        a["sync_state"] == "in_sync" && a["desired_config_hash"] == v1.as_str()
    })
    .await;
    let v2 = new_version(&env, "a: 2\n").await;
    let a = env
        .wait_get("drifted", &format!("/api/v1/agents/{uid}"), |a| {
            a["sync_state"] == "drifted"
        })
        .await;
    assert_eq!(a["desired_config_hash"], v2.as_str());
    assert_eq!(
        a["remote_config_status"]["last_remote_config_hash"],
        v1.as_str()
    );
    assert_eq!(a["remote_config_status"]["status"], "APPLIED");
    handle.stop().await.unwrap();
}

fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}

async fn metrics(env: &Env) -> String {
    env.http
        .get(format!("{}/metrics", env.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_that_change_nothing_only_touch_the_batched_last_seen() {
    let env = Env::start(
        FleetOptions::new("test")
            .open_without_tokens(true)
            .last_seen_flush(Duration::from_millis(200)),
    )
    .await;
    let client = OpampClient::builder(env.http_url.clone())
        .service_name("steady")
        .capabilities(caps())
        .polling_interval(Duration::from_millis(50))
        .build()
        .unwrap();
    let (handle, _events) = client.start().await.unwrap();
    let uid = handle.instance_uid().await.to_string();
    let first: Value = env
        .wait_get(
            "the agent's first report, written",
            &format!("/api/v1/agents/{uid}"),
            |a| a["connected"] == true && a["identifying_attributes"]["service.name"] == "steady",
        )
        .await;

    let before = metrics(&env).await;
    let upserts = metric(
        &before,
        "opamp_store_operation_seconds_count{op=\"upsert_agents\"}",
    );
    let messages = metric(&before, "opamp_messages_received_total");
    let writes = metric(&before, "opamp_last_seen_writes_total");
    let heartbeats = metric(&before, "opamp_last_seen_heartbeats_total");
    let deadline = tokio::time::Instant::now() + support::WAIT;
    let after = loop {
        let m = metrics(&env).await;
        if metric(&m, "opamp_messages_received_total") >= messages + 20
            && metric(&m, "opamp_last_seen_heartbeats_total") >= heartbeats + 20
            && metric(&m, "opamp_last_seen_writes_total") > writes
        {
            break m;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no heartbeats:\n{m}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        metric(
            &after,
            "opamp_store_operation_seconds_count{op=\"upsert_agents\"}"
        ),
        upserts,
        "a heartbeat that changed nothing was written as an agent update"
    );
    env.wait_get(
        "last_seen moves forward",
        &format!("/api/v1/agents/{uid}"),
        |a| a["last_seen"].as_str() > first["last_seen"].as_str(),
    )
    .await;
    handle.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_without_accepts_remote_config_is_unmanaged_and_offered_nothing_rcfg_1_cap_12() {
    let env = Env::open().await;
    let client = OpampClient::builder(env.ws_url.clone())
        .service_name("read-only")
        .capabilities(
            AgentCapabilities::REPORTS_REMOTE_CONFIG | AgentCapabilities::REPORTS_HEARTBEAT,
        )
        .heartbeat_interval(Some(Duration::from_millis(200)))
        .build()
        .unwrap();
    let (handle, mut events) = client.start().await.unwrap();
    let uid = handle.instance_uid().await.to_string();
    new_version(&env, "a: 1\n").await;
    assign_all(&env).await;
    // The assignment matches it (service.name exists), but it cannot take remote config.
    let a = env
        .wait_get("listed", &format!("/api/v1/agents/{uid}"), |a| {
            a["connected"] == true
        })
        .await;
    assert_eq!(a["sync_state"], "unmanaged", "{a}");
    assert!(a["desired_config_hash"].is_null());
    // A few heartbeats (every 200 ms) later, still nothing offered.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    while tokio::time::Instant::now() < deadline {
        if let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(100), events.recv()).await {
            assert!(
                !matches!(e, ClientEvent::RemoteConfig(_)),
                "remote config offered without AcceptsRemoteConfig"
            );
        }
    }
    handle.stop().await.unwrap();
}
