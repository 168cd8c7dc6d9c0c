//! The admin API over real sockets: bad input, auth roles, the OpenAPI document, events,
//! metrics and probes.

#![allow(clippy::unwrap_used)]

mod support;

use opamp_fleet::FleetOptions;
use opamp_store::Role;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{Env, assert_error};

fn yaml_config(name: &str, body: &str) -> Value {
    json!({"name": name, "files": {"otel.yaml": {"content_type": "text/yaml", "body": body}}})
}

async fn audit_len(env: &Env) -> usize {
    let (_, body) = env.get("/api/v1/audit").await;
    body["entries"].as_array().unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_json_4xx_naming_the_problem_and_writes_nothing() {
    let env = Env::start(
        FleetOptions::new("test")
            .open_without_tokens(true)
            .max_body_bytes(2048),
    )
    .await;

    // Invalid selector, in a query and in an assignment.
    let r = env.get("/api/v1/agents?selector=env%20in%20prod").await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_selector");
    assert!(
        r.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("column 8"),
        "{}",
        r.1
    );
    let r = env.get("/api/v1/agents?sync_state=sideways").await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_query");

    // Bad YAML when the content type says YAML: 422 naming the file.
    let r = env
        .post("/api/v1/configs", yaml_config("web", "receivers: [otlp\n"))
        .await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_config");
    let msg = r.1["error"]["message"].as_str().unwrap();
    assert!(msg.contains("otel.yaml") && msg.contains("YAML"), "{msg}");
    let r = env
        .post(
            "/api/v1/configs",
            json!({"name": "web", "files": {"c": {"content_type": "application/json", "body": "{\"a\": }"}}}),
        )
        .await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_config");

    // Body too large.
    let big = "x: y\n".repeat(1000);
    let r = env.post("/api/v1/configs", yaml_config("web", &big)).await;
    assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");

    // Not JSON, unknown fields, malformed JSON.
    let resp = env
        .http
        .post(format!("{}/api/v1/configs", env.admin))
        .header("content-type", "text/plain")
        .body("name=web")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unsupported_media_type");
    let r = env
        .post("/api/v1/configs", json!({"name": "web", "filez": {}}))
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_json");
    assert!(
        r.1["error"]["message"].as_str().unwrap().contains("filez"),
        "{}",
        r.1
    );

    // Nothing was written so far.
    let (_, configs) = env.get("/api/v1/configs").await;
    assert_eq!(configs["configs"], json!([]));
    assert_eq!(audit_len(&env).await, 0);

    // Unknown agent, malformed uid.
    let r = env
        .get("/api/v1/agents/0190a1b2-0000-7000-8000-000000000001")
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "agent_not_found");
    let r = env.get("/api/v1/agents/not-a-uid").await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_instance_uid");
    let r = env
        .call(
            Method::POST,
            "/api/v1/agents/0190a1b2-0000-7000-8000-000000000001/restart",
            None,
            None,
        )
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "agent_not_found");
    let r = env
        .call(
            Method::PUT,
            "/api/v1/agents/0190a1b2-0000-7000-8000-000000000001/labels/env",
            Some(json!({"value": "prod"})),
            None,
        )
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "agent_not_found");

    // Unknown config, version, group.
    let r = env.get("/api/v1/configs/nope").await;
    assert_error(&r, StatusCode::NOT_FOUND, "config_not_found");
    let r = env
        .post(
            "/api/v1/assignments",
            json!({"config": "nope", "selector": "env=prod"}),
        )
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "config_not_found");
    let (status, _) = env
        .post("/api/v1/configs", yaml_config("web", "a: 1\n"))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let writes_before = audit_len(&env).await;
    let r = env.get("/api/v1/configs/web/versions/9").await;
    assert_error(&r, StatusCode::NOT_FOUND, "version_not_found");
    let r = env
        .post(
            "/api/v1/assignments",
            json!({"config": "web", "version": 9, "selector": "env=prod"}),
        )
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "version_not_found");
    let r = env
        .post(
            "/api/v1/assignments",
            json!({"config": "web", "group": "edge"}),
        )
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "group_not_found");
    let r = env
        .post(
            "/api/v1/assignments",
            json!({"config": "web", "agent": "0190a1b2-0000-7000-8000-000000000001"}),
        )
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "agent_not_found");
    let r = env
        .post(
            "/api/v1/assignments",
            json!({"config": "web", "selector": "env in (a"}),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_selector");
    let r = env
        .post(
            "/api/v1/assignments",
            json!({"config": "web", "selector": "env=prod", "group": "edge"}),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_input");
    let r = env
        .post(
            "/api/v1/groups",
            json!({"name": "edge", "selector": "region in eu"}),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_selector");
    let r = env.get("/api/v1/configs/web/diff?from=abc").await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_query");
    let r = env.get("/api/v1/assignments/xyz").await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_path");

    // Unknown routes and methods are JSON too.
    let r = env.get("/api/v1/nothing-here").await;
    assert_error(&r, StatusCode::NOT_FOUND, "route_not_found");
    let r = env.call(Method::PATCH, "/api/v1/configs", None, None).await;
    assert_error(&r, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");

    // None of the refused requests wrote anything.
    assert_eq!(audit_len(&env).await, writes_before);
    let (_, a) = env.get("/api/v1/assignments").await;
    assert_eq!(a["assignments"], json!([]));
    let (_, g) = env.get("/api/v1/groups").await;
    assert_eq!(g["groups"], json!([]));
    let (_, v) = env.get("/api/v1/configs/web/versions").await;
    assert_eq!(v["versions"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_roles_gate_every_write() {
    let env = Env::open().await;
    // No token yet and a loopback bind: open (first use).
    let (status, _) = env.get("/api/v1/agents").await;
    assert_eq!(status, StatusCode::OK);

    let admin = env.token(Role::Admin, "root").await;
    let operator = env.token(Role::Operator, "ops").await;
    let viewer = env.token(Role::Viewer, "grafana").await;

    // Now a token is required.
    let r = env.get("/api/v1/agents").await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    assert!(
        r.1["error"]["message"].as_str().unwrap().contains("Bearer"),
        "{}",
        r.1
    );
    let r = env
        .call(Method::GET, "/api/v1/agents", None, Some("opamp_wrong"))
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");

    // Viewer: reads, never writes.
    let (status, _) = env
        .call(Method::GET, "/api/v1/configs", None, Some(&viewer))
        .await;
    assert_eq!(status, StatusCode::OK);
    let r = env
        .call(
            Method::POST,
            "/api/v1/configs",
            Some(yaml_config("web", "a: 1\n")),
            Some(&viewer),
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    assert!(
        r.1["error"]["message"].as_str().unwrap().contains("viewer"),
        "{}",
        r.1
    );
    let (_, configs) = env
        .call(Method::GET, "/api/v1/configs", None, Some(&viewer))
        .await;
    assert_eq!(
        configs["configs"],
        json!([]),
        "the refused write wrote nothing"
    );

    // Operator: configs and assignments, not groups or tokens.
    let (status, _) = env
        .call(
            Method::POST,
            "/api/v1/configs",
            Some(yaml_config("web", "a: 1\n")),
            Some(&operator),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let r = env
        .call(
            Method::POST,
            "/api/v1/groups",
            Some(json!({"name": "edge", "selector": "tier=edge"})),
            Some(&operator),
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = env
        .call(Method::GET, "/api/v1/tokens", None, Some(&operator))
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");

    // Admin: everything; a new token's secret is shown once and works.
    let (status, group) = env
        .call(
            Method::POST,
            "/api/v1/groups",
            Some(json!({"name": "edge", "selector": "tier == edge"})),
            Some(&admin),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(group["selector"], "tier=edge", "stored in canonical form");
    let (status, created) = env
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "ci", "role": "viewer"})),
            Some(&admin),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let secret = created["secret"].as_str().unwrap().to_owned();
    let id = created["token"]["id"].as_i64().unwrap();
    let (status, _) = env
        .call(Method::GET, "/api/v1/summary", None, Some(&secret))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = env
        .call(
            Method::DELETE,
            &format!("/api/v1/tokens/{id}"),
            None,
            Some(&admin),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let r = env
        .call(Method::GET, "/api/v1/summary", None, Some(&secret))
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");

    // The audit log names who did what.
    let (_, audit) = env
        .call(Method::GET, "/api/v1/audit", None, Some(&viewer))
        .await;
    let actors: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["actor"].as_str())
        .collect();
    assert!(
        actors.contains(&"token:ops") && actors.contains(&"token:root"),
        "{actors:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_open_option_a_token_is_always_needed() {
    let env = Env::start(FleetOptions::new("test")).await;
    let r = env.get("/api/v1/agents").await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    // Probes, metrics and the OpenAPI document need none.
    for path in ["/healthz", "/readyz", "/metrics", "/api/v1/openapi.json"] {
        let (status, _) = env.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_is_generated_and_covers_every_route() {
    let env = Env::open().await;
    let (status, doc) = env.get("/api/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let expected: &[(&str, &[&str])] = &[
        ("/api/v1/agents", &["get"]),
        ("/api/v1/agents/{uid}", &["get", "delete"]),
        ("/api/v1/agents/{uid}/events", &["get"]),
        ("/api/v1/agents/{uid}/labels", &["patch"]),
        ("/api/v1/agents/{uid}/labels/{key}", &["put", "delete"]),
        ("/api/v1/agents/{uid}/restart", &["post"]),
        ("/api/v1/configs", &["get", "post"]),
        ("/api/v1/configs/{name}", &["get", "delete"]),
        ("/api/v1/configs/{name}/versions", &["get"]),
        ("/api/v1/configs/{name}/versions/{version}", &["get"]),
        ("/api/v1/configs/{name}/diff", &["get"]),
        ("/api/v1/configs/{name}/rollback", &["post"]),
        ("/api/v1/assignments", &["get", "post"]),
        ("/api/v1/assignments/{id}", &["get", "delete"]),
        ("/api/v1/groups", &["get", "post"]),
        ("/api/v1/groups/{name}", &["get", "put", "delete"]),
        ("/api/v1/tokens", &["get", "post"]),
        ("/api/v1/tokens/{id}", &["delete"]),
        ("/api/v1/summary", &["get"]),
        ("/api/v1/events", &["get"]),
        ("/api/v1/audit", &["get"]),
        ("/api/v1/openapi.json", &["get"]),
        ("/metrics", &["get"]),
        ("/healthz", &["get"]),
        ("/readyz", &["get"]),
    ];
    for (path, methods) in expected {
        let item = paths
            .get(*path)
            .unwrap_or_else(|| panic!("{path} missing from the OpenAPI document"));
        for m in *methods {
            assert!(
                item[*m]["responses"].is_object(),
                "{m} {path} has no responses"
            );
        }
    }
    assert_eq!(paths.len(), expected.len(), "{:?}", paths.keys());
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for s in [
        "AgentView",
        "AgentList",
        "ErrorBody",
        "CreateConfigRequest",
        "AssignmentRequest",
        "SyncState",
        "SummaryView",
    ] {
        assert!(schemas.contains_key(s), "schema {s} missing");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configs_versions_diff_and_rollback() {
    let env = Env::open().await;
    let (s, v1) = env
        .post("/api/v1/configs", yaml_config("web", "level: info\n"))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, v2) = env
        .post(
            "/api/v1/configs",
            json!({"name": "web", "files": {"otel.yaml": {"content_type": "text/yaml", "body": "level: debug\n"}}, "message": "more logs"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(v2["version"]["version"], 2);
    assert_eq!(v2["version"]["message"], "more logs");
    // Same files again: nothing new.
    let (s, same) = env
        .post("/api/v1/configs", yaml_config("web", "level: debug\n"))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(same["created"], false);

    let (_, d) = env.get("/api/v1/configs/web/diff?from=1&to=2").await;
    let file = &d["diff"]["files"][0];
    assert_eq!(file["name"], "otel.yaml");
    assert_eq!(file["change"], "changed");
    assert_eq!(file["keys"][0]["path"], "level");

    let (s, rb) = env
        .post("/api/v1/configs/web/rollback", json!({"version": 1}))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(rb["version"]["version"], 3);
    assert_eq!(rb["version"]["rollback_of"], 1);
    assert_eq!(rb["version"]["hash"], v1["version"]["hash"]);
    let (_, c) = env.get("/api/v1/configs/web").await;
    assert_eq!(c["latest_version"], 3);
    assert_eq!(c["latest"]["files"]["otel.yaml"]["body"], "level: info\n");
    let (_, versions) = env.get("/api/v1/configs/web/versions").await;
    let numbers: Vec<u64> = versions["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, vec![3, 2, 1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stream_changes_as_server_sent_events() {
    let env = Env::open().await;
    let mut resp = env
        .http
        .get(format!("{}/api/v1/events", env.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let (s, _) = env
        .post("/api/v1/configs", yaml_config("web", "a: 1\n"))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let mut seen = String::new();
    let read = async {
        while !seen.contains("event: config_version_added") {
            let chunk = resp.chunk().await.unwrap().unwrap();
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    };
    tokio::time::timeout(support::WAIT, read)
        .await
        .expect("no config_version_added event");
    assert!(seen.contains(r#""config":"web""#), "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_probes() {
    let env = Env::open().await;
    let resp = env
        .http
        .get(format!("{}/metrics", env.admin))
        .send()
        .await
        .unwrap();
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = resp.text().await.unwrap();
    for family in [
        "opamp_agents_sync_state",
        "opamp_messages_received_total",
        "opamp_received_bytes_total",
        "opamp_sent_bytes_total",
        "opamp_push_to_applied_seconds_bucket",
        "opamp_store_operation_seconds_bucket",
    ] {
        assert!(text.contains(family), "{family} missing:\n{text}");
    }
    let (s, h) = env.get("/healthz").await;
    assert_eq!((s, h["status"].as_str()), (StatusCode::OK, Some("ok")));
    let (s, r) = env.get("/readyz").await;
    assert_eq!((s, r["status"].as_str()), (StatusCode::OK, Some("ok")));
    env.store.close().await.unwrap();
    let (s, r) = env.get("/readyz").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_takes_the_token_as_a_query_parameter_too() {
    let env = Env::open().await;
    let viewer = env.token(Role::Viewer, "ui").await;
    let url = format!("{}/api/v1/events", env.admin);
    let resp = env.http.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = env
        .http
        .get(format!("{url}?access_token={viewer}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = env
        .http
        .get(format!("{}/api/v1/agents?access_token={viewer}", env.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::UNAUTHORIZED,
        "only the event stream takes it"
    );
}
