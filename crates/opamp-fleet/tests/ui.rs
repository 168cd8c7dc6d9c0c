//! The web UI's handlers over a real socket, with a SQLite fleet: pages render the store's
//! data (escaped), sessions and CSRF protect every action, roles decide what is shown and
//! what is allowed, and actions go through the same code as the REST API (audit rows name
//! the token).

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;

use opamp_config::{ConfigFile, ConfigMap};
use opamp_proto::{AgentCapabilities, InstanceUid};
use opamp_store::{
    AgentDescription, AgentUpdate, AuditFilter, PageRequest, RemoteConfigState, RemoteConfigStatus,
    Role, Timestamp, Transport,
};
use reqwest::StatusCode;
use serde_json::json;
use support::Env;

/// A browser: keeps cookies by hand and does not follow redirects.
struct Browser {
    base: String,
    http: reqwest::Client,
    cookies: BTreeMap<String, String>,
}

struct Page {
    status: StatusCode,
    location: Option<String>,
    set_cookies: Vec<String>,
    body: String,
}

fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

impl Browser {
    fn new(env: &Env) -> Self {
        Self {
            base: env.admin.clone(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: BTreeMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let req = if self.cookies.is_empty() {
            req
        } else {
            req.header("cookie", self.cookie_header())
        };
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let location = resp
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned());
        let set_cookies: Vec<String> = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        for c in &set_cookies {
            let first = c.split(';').next().unwrap();
            let (k, v) = first.split_once('=').unwrap();
            if v.is_empty() || c.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), v.to_owned());
            }
        }
        let body = resp.text().await.unwrap();
        Page {
            status,
            location,
            set_cookies,
            body,
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        let req = self.http.get(format!("{}{path}", self.base));
        self.send(req).await
    }

    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let body = fields
            .iter()
            .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
            .collect::<Vec<_>>()
            .join("&");
        let req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        self.send(req).await
    }

    fn csrf(&self) -> String {
        self.cookies.get("opamp_csrf").cloned().unwrap_or_default()
    }

    /// Signs in with a token through the login form.
    async fn login(&mut self, token: &str) {
        let p = self.get("/login").await;
        assert_eq!(p.status, StatusCode::OK);
        let csrf = self.csrf();
        let p = self
            .post(
                "/login",
                &[("csrf", &csrf), ("token", token), ("next", "/")],
            )
            .await;
        assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    }
}

fn uid(n: u8) -> InstanceUid {
    InstanceUid::from_array([n; 16])
}

async fn add_agent(env: &Env, n: u8, service: &str, extra: impl FnOnce(&mut AgentUpdate)) {
    let mut u = AgentUpdate::new(uid(n), Timestamp::now());
    u.description = Some(AgentDescription {
        identifying_attributes: [
            ("service.name".to_owned(), json!(service)),
            ("service.version".to_owned(), json!("1.0.0")),
        ]
        .into(),
        non_identifying_attributes: [("host.name".to_owned(), json!(format!("host-{n}")))].into(),
    });
    u.capabilities = Some(
        AgentCapabilities::REPORTS_STATUS
            | AgentCapabilities::ACCEPTS_REMOTE_CONFIG
            | AgentCapabilities::REPORTS_REMOTE_CONFIG
            | AgentCapabilities::ACCEPTS_RESTART_COMMAND,
    );
    u.transport = Some(Transport::WebSocket);
    extra(&mut u);
    env.store.upsert_agent(u).await.unwrap();
}

async fn audit_rows(env: &Env) -> Vec<serde_json::Value> {
    env.store
        .list_audit(AuditFilter::default(), PageRequest::first(1000))
        .await
        .unwrap()
        .items
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect()
}

#[tokio::test]
async fn without_tokens_on_loopback_pages_need_no_login_and_say_so() {
    let env = Env::open().await;
    add_agent(&env, 1, "checkout", |_| {}).await;
    let mut b = Browser::new(&env);
    for path in ["/", "/agents", "/configs", &format!("/agents/{}", uid(1))] {
        let p = b.get(path).await;
        assert_eq!(p.status, StatusCode::OK, "{path}: {}", p.body);
        assert!(p.body.contains("Admin auth is off"), "{path}");
        assert!(p.body.contains("<!DOCTYPE html>"), "{path}");
    }
    // The first page set the CSRF cookie, HttpOnly and SameSite=Strict.
    let p = Browser::new(&env).get("/").await;
    let c = p
        .set_cookies
        .iter()
        .find(|c| c.starts_with("opamp_csrf="))
        .unwrap();
    assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Path=/"));
}

#[tokio::test]
async fn login_sets_a_strict_httponly_cookie_and_a_revoked_token_is_refused_at_once() {
    let env = Env::open().await;
    let admin = env.token(Role::Admin, "alice").await;
    // Another token stays active (with none left, a loopback fleet is open again).
    env.token(Role::Admin, "bob").await;
    let mut b = Browser::new(&env);
    // No session: to the login page, then back.
    let p = b.get("/agents").await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert_eq!(p.location.as_deref(), Some("/login?next=%2Fagents"));

    let p = b.get("/login?next=/agents").await;
    assert!(p.body.contains(r#"type="password""#), "{}", p.body);
    let csrf = b.csrf();
    // A wrong token: the form again, 401.
    let p = b
        .post("/login", &[("csrf", &csrf), ("token", "opamp_nope")])
        .await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED);
    assert!(p.body.contains("invalid or revoked token"));
    // Without the CSRF token: 403.
    let p = b.post("/login", &[("token", &admin)]).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    // The right one: the session cookie, then back where we were going.
    let p = b
        .post(
            "/login",
            &[("csrf", &csrf), ("token", &admin), ("next", "/agents")],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert_eq!(p.location.as_deref(), Some("/agents"));
    let session = p
        .set_cookies
        .iter()
        .find(|c| c.starts_with("opamp_session="))
        .unwrap();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(session.contains(attr), "{session}");
    }
    assert!(!session.contains("Secure"), "plain HTTP: {session}");
    // A new CSRF token comes with the session.
    assert_ne!(b.csrf(), csrf);
    let p = b.get("/agents").await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(
        p.body
            .contains("Signed in as <strong>alice</strong> (admin)")
    );

    // An open redirect is not possible.
    let csrf = b.csrf();
    let p = b
        .post(
            "/login",
            &[
                ("csrf", &csrf),
                ("token", &admin),
                ("next", "//evil.example"),
            ],
        )
        .await;
    assert_eq!(p.location.as_deref(), Some("/"));

    // Revoking the token ends the session at once.
    let tokens = env.store.list_tokens().await.unwrap();
    let alice = tokens.iter().find(|t| t.name == "alice").unwrap();
    env.store
        .revoke_token(&opamp_store::Actor::system("test"), alice.id)
        .await
        .unwrap();
    let p = b.get("/agents").await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn behind_tls_the_session_cookie_is_secure() {
    let env = Env::open().await;
    let admin = env.token(Role::Admin, "alice").await;
    let mut b = Browser::new(&env);
    b.get("/login").await;
    let csrf = b.csrf();
    let req = b
        .http
        .post(format!("{}/login", b.base))
        .header("x-forwarded-proto", "https")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}&token={admin}"));
    let p = b.send(req).await;
    let session = p
        .set_cookies
        .iter()
        .find(|c| c.starts_with("opamp_session="))
        .unwrap();
    assert!(session.contains("; Secure"), "{session}");
}

#[tokio::test]
async fn a_session_past_its_lifetime_goes_back_to_login_saying_so() {
    let env = Env::open().await;
    let admin = env.token(Role::Admin, "alice").await;
    let mut b = Browser::new(&env);
    b.get("/login").await;
    let csrf = b.csrf();
    let p = b
        .post("/login", &[("csrf", &csrf), ("token", &admin)])
        .await;
    let session = p
        .set_cookies
        .iter()
        .find(|c| c.starts_with("opamp_session="))
        .unwrap();
    // The default lifetime is 12 hours; the browser is told so too.
    assert!(session.contains("; Max-Age=43200"), "{session}");
    // The cookie names the token only next to when it was issued.
    let value = b.cookies["opamp_session"].clone();
    let (issued, secret) = value
        .strip_prefix("s1.")
        .and_then(|v| v.split_once('.'))
        .unwrap();
    assert_eq!(secret, admin);
    assert!(issued.parse::<u64>().unwrap() > 1_700_000_000);
    assert_eq!(b.get("/agents").await.status, StatusCode::OK);

    // Thirteen hours later (the cookie says so: the server checks the age itself, so a
    // browser that keeps the cookie past Max-Age gains nothing).
    let old = Timestamp::now().as_millis() / 1000 - 13 * 3600;
    b.cookies
        .insert("opamp_session".into(), format!("s1.{old}.{admin}"));
    let p = b.get("/agents").await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert_eq!(
        p.location.as_deref(),
        Some("/login?expired=true&next=%2Fagents")
    );
    assert!(
        p.set_cookies
            .iter()
            .any(|c| c.starts_with("opamp_session=;") && c.contains("Max-Age=0")),
        "{:?}",
        p.set_cookies
    );
    let p = b.get("/login?expired=true&next=%2Fagents").await;
    assert!(p.body.contains("Your session expired"), "{}", p.body);
    // The read-only API routes the live-update script uses refuse it as well.
    let r = b
        .http
        .get(format!("{}/api/v1/agents", b.base))
        .header("cookie", format!("opamp_session=s1.{old}.{admin}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // A cookie in the old form (the bare token) is not a session either.
    b.cookies.insert("opamp_session".into(), admin.clone());
    let p = b.get("/agents").await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert_eq!(p.location.as_deref(), Some("/login?next=%2Fagents"));
}

#[tokio::test]
async fn logout_clears_the_session_and_needs_the_csrf_token() {
    let env = Env::open().await;
    let admin = env.token(Role::Admin, "alice").await;
    let mut b = Browser::new(&env);
    b.login(&admin).await;
    let p = b.post("/logout", &[]).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    let csrf = b.csrf();
    let p = b.post("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert!(
        p.set_cookies
            .iter()
            .any(|c| c.starts_with("opamp_session=;") && c.contains("Max-Age=0"))
    );
    assert_eq!(b.get("/").await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn hostile_values_are_escaped_everywhere() {
    let env = Env::open().await;
    let hostile = r#"<script>alert("x")</script>" onmouseover="alert(1)"#;
    add_agent(&env, 1, hostile, |u| {
        u.health = Some(json!({"healthy": false, "last_error": "<img src=x onerror=alert(2)>"}));
    })
    .await;
    env.store
        .set_labels(
            &opamp_store::Actor::system("test"),
            uid(1),
            [("team".to_owned(), "<b>ops</b>".to_owned())].into(),
        )
        .await
        .unwrap();
    let mut b = Browser::new(&env);
    for path in [
        "/".to_owned(),
        format!("/agents?q={}", enc("<script>")),
        format!("/agents/{}", uid(1)),
    ] {
        let p = b.get(&path).await;
        assert_eq!(p.status, StatusCode::OK, "{path}");
        assert!(!p.body.contains("<script>alert"), "{path}: {}", p.body);
        assert!(!p.body.contains("<img src=x"), "{path}");
        assert!(!p.body.contains("<b>ops"), "{path}");
        assert!(!p.body.contains(r#"" onmouseover="#), "{path}");
    }
    let p = b.get(&format!("/agents/{}", uid(1))).await;
    assert!(p.body.contains("&lt;script&gt;alert("), "{}", p.body);
    // The free-text filter value comes back in an attribute, escaped.
    let p = b
        .get(&format!("/agents?q={}", enc(r#""><script>x</script>"#)))
        .await;
    assert!(
        p.body
            .contains(r#"value="&quot;&gt;&lt;script&gt;x&lt;/script&gt;""#)
    );
}

#[tokio::test]
async fn a_viewer_sees_no_actions_and_a_forged_post_gets_403() {
    let env = Env::open().await;
    let viewer = env.token(Role::Viewer, "vic").await;
    add_agent(&env, 1, "checkout", |_| {}).await;
    let mut b = Browser::new(&env);
    b.login(&viewer).await;
    let page = format!("/agents/{}", uid(1));
    let p = b.get(&page).await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(p.body.contains("(viewer)"));
    assert!(!p.body.contains("Restart agent"), "{}", p.body);
    assert!(!p.body.contains("Set label"));
    assert!(!p.body.contains("Assign to this agent"));
    let before = audit_rows(&env).await.len();
    let csrf = b.csrf();
    for (path, fields) in [
        (format!("{page}/restart"), vec![("csrf", csrf.as_str())]),
        (
            format!("{page}/labels"),
            vec![("csrf", &csrf), ("op", "set"), ("key", "k"), ("value", "v")],
        ),
        (
            "/configs/web/new".to_owned(),
            vec![
                ("csrf", &csrf),
                ("file-0-name", "a.txt"),
                ("file-0-body", "x"),
            ],
        ),
    ] {
        let p = b.post(&path, &fields).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "{path}");
    }
    assert_eq!(audit_rows(&env).await.len(), before, "nothing written");
    // Nor may a viewer open the editor or reveal secrets.
    assert_eq!(
        b.get("/configs/web/new").await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        b.get(&format!("{page}?reveal=true")).await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn a_post_without_the_matching_csrf_token_is_refused() {
    let env = Env::open().await;
    let operator = env.token(Role::Operator, "olga").await;
    add_agent(&env, 1, "checkout", |_| {}).await;
    let mut b = Browser::new(&env);
    b.login(&operator).await;
    let path = format!("/agents/{}/restart", uid(1));
    assert_eq!(b.post(&path, &[]).await.status, StatusCode::FORBIDDEN);
    assert_eq!(
        b.post(&path, &[("csrf", "0123456789abcdef0123456789abcdef")])
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    // A cross-site request carries no cookie at all (SameSite=Strict): refused too.
    let mut stranger = Browser::new(&env);
    let csrf = b.csrf();
    assert_eq!(
        stranger.post(&path, &[("csrf", &csrf)]).await.status,
        StatusCode::FORBIDDEN
    );
    // With it: queued, and the audit row names the token.
    let p = b.post(&path, &[("csrf", &csrf)]).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let rows = audit_rows(&env).await;
    assert!(
        rows.iter()
            .any(|r| r.to_string().contains("olga") && r.to_string().contains("restart")),
        "{rows:?}"
    );
}

#[tokio::test]
async fn operator_edits_labels_and_assigns_a_config_through_the_api_code() {
    let env = Env::open().await;
    let operator = env.token(Role::Operator, "olga").await;
    add_agent(&env, 1, "checkout", |_| {}).await;
    let mut b = Browser::new(&env);
    b.login(&operator).await;
    let page = format!("/agents/{}", uid(1));
    let csrf = b.csrf();
    // Set a label; the page shows it as an operator label.
    let p = b
        .post(
            &format!("{page}/labels"),
            &[
                ("csrf", &csrf),
                ("op", "set"),
                ("key", "tier"),
                ("value", "gold"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let p = b.get(p.location.as_deref().unwrap()).await;
    assert!(p.body.contains("Label tier set."));
    assert!(p.body.contains("gold"));
    assert!(p.body.contains("Remove label tier"));
    // An invalid key: the form again with the message and the user's input.
    let p = b
        .post(
            &format!("{page}/labels"),
            &[
                ("csrf", &csrf),
                ("op", "set"),
                ("key", "bad key"),
                ("value", "v1"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert!(p.body.contains("invalid label key"), "{}", p.body);
    assert!(p.body.contains(r#"value="bad key""#));
    // Remove it.
    let p = b
        .post(
            &format!("{page}/labels"),
            &[("csrf", &csrf), ("op", "remove"), ("key", "tier")],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert!(env.store.get_agent(uid(1)).await.unwrap().labels.is_empty());

    // Assign: an unknown config is an inline error; a real one is saved.
    let p = b
        .post(
            &format!("{page}/assign"),
            &[("csrf", &csrf), ("config", "nope"), ("version", "")],
        )
        .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert!(p.body.contains("nope"), "{}", p.body);
    let (status, _) = env
        .call(
            reqwest::Method::POST,
            "/api/v1/configs",
            Some(json!({"name": "web", "files": {"a.yaml": {"content_type": "text/yaml", "body": "a: 1\n"}}})),
            Some(&operator),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let p = b
        .post(
            &format!("{page}/assign"),
            &[("csrf", &csrf), ("config", "web"), ("version", "x")],
        )
        .await;
    assert!(p.body.contains("not a positive number"), "{}", p.body);
    let p = b
        .post(
            &format!("{page}/assign"),
            &[("csrf", &csrf), ("config", "web"), ("version", "1")],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let assignments = env.store.list_assignments().await.unwrap();
    assert_eq!(assignments.len(), 1);
    assert_eq!(assignments[0].version, Some(1));
    assert!(assignments[0].author.contains("olga"));
    let rows = audit_rows(&env).await;
    assert!(
        rows.iter()
            .filter(|r| r.to_string().contains("olga"))
            .count()
            >= 3
    );
}

#[tokio::test]
async fn the_editor_keeps_the_text_and_shows_parse_errors_next_to_the_file() {
    let env = Env::open().await;
    let mut b = Browser::new(&env);
    let p = b.get("/configs/web/new").await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(p.body.contains("New config web"));
    let csrf = b.csrf();
    let broken = "receivers:\n  otlp: [unclosed\n<tag>";
    let p = b
        .post(
            "/configs/web/new",
            &[
                ("csrf", &csrf),
                ("file-0-name", "collector.yaml"),
                ("file-0-type", "text/yaml"),
                ("file-0-body", &broken.replace('\n', "\r\n")),
                ("file-1-name", ""),
                ("file-1-type", ""),
                ("file-1-body", ""),
                ("message", "first try"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY);
    // The text is back (escaped), with the error next to it and the field marked invalid.
    assert!(
        p.body
            .contains("receivers:\n  otlp: [unclosed\n&lt;tag&gt;</textarea>"),
        "{}",
        p.body
    );
    assert!(p.body.contains(r#"aria-describedby="file-0-error""#));
    assert!(p.body.contains(r#"id="file-0-error""#));
    assert!(p.body.contains("is not valid YAML"), "{}", p.body);
    assert!(p.body.contains(r#"value="first try""#));
    // Nothing was written.
    assert_eq!(
        env.get("/api/v1/configs/web").await.0,
        StatusCode::NOT_FOUND
    );

    // Valid: created, then a second version, then the diff.
    for body in ["a: 1\nb: 2\n", "a: 1\nb: 3\nc: 4\n"] {
        let p = b
            .post(
                "/configs/web/new",
                &[
                    ("csrf", &csrf),
                    ("file-0-name", "collector.yaml"),
                    ("file-0-type", "text/yaml"),
                    ("file-0-body", &body.replace('\n', "\r\n")),
                ],
            )
            .await;
        assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
        assert!(p.location.unwrap().starts_with("/configs/web?done="));
    }
    let v2 = env.store.get_config_version("web", 2).await.unwrap();
    assert_eq!(
        v2.config_map.files["collector.yaml"].text(),
        Some("a: 1\nb: 3\nc: 4\n"),
        "CRLF from the browser is stored as LF"
    );
    // The editor starts from the latest version.
    let p = b.get("/configs/web/new").await;
    assert!(p.body.contains("c: 4"));
    let p = b.get("/configs/web/diff?from=1&to=2").await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(p.body.contains("<code>b: 2</code>"), "{}", p.body);
    assert!(p.body.contains("<code>b: 3</code>"));
    // Changes are marked with text, not color only.
    assert!(p.body.contains(r#"<span class="sr-only">removed</span>"#));
    assert!(p.body.contains(r#"<span class="sr-only">added</span>"#));
    assert!(p.body.contains(r#"<tr class="changed">"#));
    assert!(p.body.contains(r#"<tr class="added">"#));
    // Unknown versions are a 404 page.
    assert_eq!(
        b.get("/configs/web/diff?from=1&to=9").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn assignment_by_selector_from_the_config_page_and_the_rollout_bar() {
    let env = Env::open().await;
    env.post(
        "/api/v1/configs",
        json!({"name": "web", "files": {"a.yaml": {"content_type": "text/yaml", "body": "a: 1\n"}}}),
    )
    .await;
    let hash = env.store.get_config_version("web", 1).await.unwrap().hash;
    add_agent(&env, 1, "checkout", |u| {
        u.remote_config_status = Some(RemoteConfigStatus {
            status: RemoteConfigState::Applied,
            last_remote_config_hash: hash.to_vec(),
            error_message: String::new(),
        });
    })
    .await;
    add_agent(&env, 2, "checkout", |_| {}).await;
    add_agent(&env, 3, "cart", |_| {}).await;
    let mut b = Browser::new(&env);
    b.get("/configs/web").await;
    let csrf = b.csrf();
    let p = b
        .post(
            "/configs/web/assign",
            &[
                ("csrf", &csrf),
                ("kind", "selector"),
                ("target", "service.name in (checkout"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert!(p.body.contains("invalid selector"), "{}", p.body);
    assert!(p.body.contains(r#"value="service.name in (checkout""#));
    let p = b
        .post(
            "/configs/web/assign",
            &[
                ("csrf", &csrf),
                ("kind", "selector"),
                ("target", "service.name=checkout"),
                ("version", ""),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    // Wait for the fleet to recompute after the change event.
    let deadline = tokio::time::Instant::now() + support::WAIT;
    loop {
        let p = b.get("/configs").await;
        if p.body.contains("1 in sync") && p.body.contains("1 pending") {
            assert!(p.body.contains("0 failed"));
            assert!(
                p.body
                    .contains(r#"aria-label="1 in sync, 1 pending, 0 failed of 2 agents""#)
            );
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{}", p.body);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let p = b.get("/configs/web").await;
    assert!(
        p.body
            .contains("selector <code>service.name=checkout</code>")
    );
}

#[tokio::test]
async fn effective_config_is_redacted_unless_an_admin_reveals_it() {
    let env = Env::open().await;
    let operator = env.token(Role::Operator, "olga").await;
    let admin = env.token(Role::Admin, "alice").await;
    add_agent(&env, 1, "checkout", |u| {
        u.effective_config = Some(ConfigMap::new().with_file(
            "c.yaml",
            ConfigFile::new(
                "text/yaml",
                "exporter:\n  password: hunter2\n  endpoint: x\n",
            ),
        ));
    })
    .await;
    let page = format!("/agents/{}", uid(1));
    let mut b = Browser::new(&env);
    b.login(&operator).await;
    let p = b.get(&page).await;
    assert!(!p.body.contains("hunter2"));
    assert!(p.body.contains("&lt;redacted&gt;"), "{}", p.body);
    assert!(!p.body.contains("Reveal (admin)"));
    assert_eq!(
        b.get(&format!("{page}?reveal=true")).await.status,
        StatusCode::FORBIDDEN
    );
    let mut a = Browser::new(&env);
    a.login(&admin).await;
    let p = a.get(&page).await;
    assert!(!p.body.contains("hunter2"));
    assert!(p.body.contains("Reveal (admin)"));
    let p = a.get(&format!("{page}?reveal=true")).await;
    assert!(p.body.contains("hunter2"));
}

#[tokio::test]
async fn agents_are_filtered_sorted_and_paginated() {
    let env = Env::open().await;
    for n in 1..=12u8 {
        let service = if n % 3 == 0 { "cart" } else { "checkout" };
        add_agent(&env, n, service, |_| {}).await;
    }
    let mut b = Browser::new(&env);
    let p = b.get("/agents?per=5").await;
    assert!(p.body.contains("Agents 1–5 of 12"), "{}", p.body);
    assert!(p.body.contains("Page 1 of 3"));
    assert!(p.body.contains(r#"rel="next""#));
    let p = b.get("/agents?per=5&page=3").await;
    assert!(p.body.contains("Agents 11–12 of 12"));
    let p = b
        .get(&format!("/agents?selector={}", enc("service.name=cart")))
        .await;
    assert!(p.body.contains("of 4"), "{}", p.body);
    let p = b
        .get(&format!(
            "/agents?selector={}",
            enc("service.name notin (cart)")
        ))
        .await;
    assert!(p.body.contains("of 8"));
    // Free text matches label values and uids.
    let p = b.get("/agents?q=host-11").await;
    assert!(p.body.contains("of 1"));
    assert!(p.body.contains(&uid(11).to_string()));
    // A bad selector: the page again, the message next to the field, 400.
    let p = b
        .get(&format!("/agents?selector={}", enc("env in prod")))
        .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert!(p.body.contains(r#"id="f-selector-error""#));
    assert!(p.body.contains("expected '(' after 'in'"));
    // Sorting by host, descending: host-9 comes before host-8 (string order).
    let p = b.get("/agents?sort=host&dir=desc").await;
    let (i9, i8) = (
        p.body.find("host-9").unwrap(),
        p.body.find("host-8").unwrap(),
    );
    assert!(i9 < i8);
    assert!(p.body.contains(r#"aria-sort="descending""#));
    // The fragment is the table alone.
    let p = b.get("/agents?fragment=agents-table").await;
    assert!(
        p.body
            .starts_with(r#"<div id="agents-table" data-live="agents-table">"#)
    );
    assert!(!p.body.contains("<html"));
}

#[tokio::test]
async fn unknown_things_are_404_pages_and_store_failures_500_with_a_request_id() {
    let env = Env::open().await;
    let mut b = Browser::new(&env);
    let p = b.get(&format!("/agents/{}", uid(9))).await;
    assert_eq!(p.status, StatusCode::NOT_FOUND);
    assert!(p.body.contains("404 Not found"));
    assert!(p.body.contains("text/html") || p.body.contains("<!DOCTYPE html>"));
    assert_eq!(
        b.get("/agents/not-a-uid").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(b.get("/configs/nope").await.status, StatusCode::NOT_FOUND);
    env.store.close().await.unwrap();
    let p = b.get("/agents").await;
    assert_eq!(p.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", p.body);
    assert!(
        p.body.contains("Request id: <code class=\"request-id\">"),
        "{}",
        p.body
    );
}

#[tokio::test]
async fn the_event_stream_accepts_the_session_cookie_but_writes_still_need_the_header() {
    let env = Env::open().await;
    let viewer = env.token(Role::Admin, "alice").await;
    let mut b = Browser::new(&env);
    // No cookie: 401.
    let r = b
        .http
        .get(format!("{}/api/v1/events", b.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    b.login(&viewer).await;
    let r = b
        .http
        .get(format!("{}/api/v1/events", b.base))
        .header("cookie", b.cookie_header())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    drop(r);
    // The same cookie cannot write through the JSON API.
    let r = b
        .http
        .post(format!("{}/api/v1/configs", b.base))
        .header("cookie", b.cookie_header())
        .header("content-type", "application/json")
        .body(r#"{"name":"x","files":{"a.txt":{"content_type":"text/plain","body":"x"}}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn assets_are_served_with_long_cache_headers() {
    let env = Env::open().await;
    let mut b = Browser::new(&env);
    let p = b.get("/").await;
    let href = p
        .body
        .split(r#"href=""#)
        .find(|s| s.starts_with("/ui/assets/ui.css"))
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let r = b
        .http
        .get(format!("{}{href}", b.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    let r = b
        .http
        .get(format!("{}/ui/assets/ui.js", b.base))
        .send()
        .await
        .unwrap();
    assert!(r.text().await.unwrap().contains("EventSource"));
    assert_eq!(
        b.get("/ui/assets/nope.js").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn overview_counts_agents_by_connection_health_sync_and_type() {
    let env = Env::open().await;
    add_agent(&env, 1, "checkout", |u| {
        u.health = Some(json!({"healthy": true}))
    })
    .await;
    add_agent(&env, 2, "checkout", |u| {
        u.health = Some(json!({"healthy": false}))
    })
    .await;
    add_agent(&env, 3, "cart", |_| {}).await;
    env.store
        .set_connected(uid(1), Transport::WebSocket, "test", Timestamp::now())
        .await
        .unwrap();
    let mut b = Browser::new(&env);
    let p = b.get("/?fragment=overview").await;
    let stat = |value: u64, name: &str| {
        format!(r#"<span class="value">{value}</span><span class="name">{name}</span>"#)
    };
    for (v, n) in [
        (3, "agents"),
        (1, "connected"),
        (2, "disconnected"),
        (1, "healthy"),
        (1, "unhealthy"),
        (1, "unknown"),
        (3, "unmanaged"),
    ] {
        assert!(p.body.contains(&stat(v, n)), "{n}: {}", p.body);
    }
    assert!(p.body.contains("<svg"));
    assert!(p.body.contains("1 agent connected now"));
    assert!(
        p.body
            .contains(r#"href="/agents?selector=service.name%3Dcart""#)
    );
}

#[tokio::test]
async fn the_shared_agent_list_is_read_again_after_any_fleet_event() {
    let env = Env::open().await;
    add_agent(&env, 1, "checkout", |_| {}).await;
    let mut b = Browser::new(&env);
    let p = b.get("/agents?fragment=agents-table").await;
    assert!(p.body.contains("of 1"), "{}", p.body);
    // Written behind the fleet's back (no event): the copy, at most 2 s old, may be reused.
    add_agent(&env, 2, "checkout", |_| {}).await;
    // Any event makes the next page read the store again.
    let mut events = env.fleet.subscribe_events();
    env.store
        .set_labels(
            &opamp_store::Actor::system("test"),
            uid(1),
            [("k".to_owned(), "v".to_owned())].into(),
        )
        .await
        .unwrap();
    tokio::time::timeout(support::WAIT, async {
        while events.recv().await.unwrap().kind != "labels_changed" {}
    })
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + support::WAIT;
    loop {
        let p = b.get("/agents?fragment=agents-table").await;
        if p.body.contains("of 2") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{}", p.body);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
