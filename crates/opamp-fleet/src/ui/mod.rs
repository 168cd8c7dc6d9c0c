//! The web UI: server-rendered HTML pages on the admin port, next to the admin API.
//!
//! Routes (all `GET` unless noted):
//!
//! | route | page |
//! |---|---|
//! | `/` | overview: counts by connection, health and sync state, agents by type and version, connected agents over the last hour |
//! | `/agents` | agents: label selector and free-text filter, sortable columns, pages |
//! | `/agents/{uid}` | one agent: attributes, capabilities, health tree, effective config (redacted), remote config status, packages, timeline; actions |
//! | `/configs` | configs with their rollout bars (in sync / pending / failed) |
//! | `/configs/{name}` | versions, files, assignments, rollout, assign form |
//! | `/configs/{name}/diff?from=&to=` | side-by-side diff of two versions |
//! | `/configs/{name}/new` | editor for a new version (`POST` creates it) |
//! | `/login`, `/logout` (`POST`) | sign in with an API token, sign out |
//! | `/ui/assets/{file}` | the style sheet and the live-update script |
//!
//! Every page is complete HTML that works without JavaScript: filters and sorting are
//! links and `GET` forms, actions are `POST` forms answered with a redirect (or the form
//! again with the error next to the field). The small script in `assets/ui.js` listens to
//! the admin API's event stream and swaps in fresh copies of the page's live regions
//! (`?fragment=<id>` returns one region).
//!
//! **Sessions.** `POST /login` checks an API token and stores its secret in the
//! `opamp_session` cookie (`HttpOnly`, `SameSite=Strict`, `Path=/`, and `Secure` behind an
//! HTTPS proxy that sets `X-Forwarded-Proto: https`). Every request re-validates the token against the store, so a
//! revoked token stops working at once, on every replica that shares the store. When the
//! admin API is open (no token exists and opampd listens on loopback), no login is needed
//! and the header says so. The cookie also records when it was issued: past
//! [`crate::FleetOptions::ui_session_ttl`] the server refuses it and the login page says
//! the session expired.
//!
//! **CSRF.** Besides `SameSite=Strict`, every form carries the value of the `opamp_csrf`
//! cookie (random, set with the first page and renewed at login), and every `POST` is
//! refused with 403 unless the two match.
//!
//! **Roles.** Actions run through the same code as the REST API (same validation, same
//! audit rows naming the token): a viewer sees no action forms, and a forged `POST`
//! gets 403 from the same role check the API applies.
//!
//! **Data.** The agent page reads one agent. The overview, the agents list and the rollout
//! bars need every agent: one copy per replica, read from the store, is shared by
//! concurrent requests and reused for at most 2 s while no fleet event arrives (any event
//! forces a new read). The chart of connected agents is sampled every 30 s into a ring
//! buffer in memory ([`ConnectedHistory`]): per replica, empty when the replica starts.
//!
//! ```
//! use opamp_fleet::ui::{ConnectedHistory, chart};
//! use opamp_store::Timestamp;
//!
//! let history = ConnectedHistory::new(chart::CAPACITY);
//! history.record(Timestamp::from_millis(1_000_000), 3);
//! let svg = chart::svg(&history.samples(), Timestamp::from_millis(1_030_000), 4).into_string();
//! assert!(svg.contains("4 agents connected now; between 3 and 4"));
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, html};
use opamp_store::Role;

use crate::Fleet;
use crate::api::ApiError;

mod agents;
mod auth;
pub mod chart;
mod configs;
mod overview;
mod snapshot;

use auth::Session;
pub use chart::ConnectedHistory;

/// The UI's state: the fleet, this replica's connected-agents history and its shared copy
/// of the agent list.
#[derive(Clone)]
pub(crate) struct Ui {
    pub(crate) fleet: Fleet,
    pub(crate) history: Arc<ConnectedHistory>,
    pub(crate) snapshot: Arc<snapshot::Snapshot>,
}

/// The UI routes, with their state, to merge into the admin router. Starts the sampler of
/// the connected-agents chart when a Tokio runtime is running.
pub(crate) fn router(fleet: &Fleet) -> Router {
    let history = Arc::new(ConnectedHistory::new(chart::CAPACITY));
    let snapshot = Arc::new(snapshot::Snapshot::default());
    snapshot.watch(fleet);
    chart::spawn_sampler(fleet.clone(), history.clone(), snapshot.clone());
    let ui = Ui {
        fleet: fleet.clone(),
        history,
        snapshot,
    };
    Router::new()
        .route("/", get(overview::show))
        .route("/agents", get(agents::list))
        .route("/agents/{uid}", get(agents::detail))
        .route("/agents/{uid}/restart", post(agents::restart))
        .route("/agents/{uid}/labels", post(agents::labels))
        .route("/agents/{uid}/assign", post(agents::assign))
        .route("/configs", get(configs::list))
        .route("/configs/{name}", get(configs::detail))
        .route("/configs/{name}/diff", get(configs::diff))
        .route(
            "/configs/{name}/new",
            get(configs::editor).post(configs::create_version),
        )
        .route("/configs/{name}/assign", post(configs::assign))
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/ui/assets/{file}", get(asset))
        .with_state(ui)
}

// ---------------------------------------------------------------------------------------
// Errors

static REQUEST_IDS: AtomicU64 = AtomicU64::new(1);

/// Why a UI request failed; each becomes an HTML page (or a redirect to the login page).
#[derive(Debug)]
pub(crate) enum UiError {
    /// No valid session: go to the login page, then back to this path.
    Login(String),
    /// The session outlived [`crate::FleetOptions::ui_session_ttl`]: drop the cookie, then
    /// as [`UiError::Login`] with a note saying why.
    SessionExpired(String),
    /// 404.
    NotFound(String),
    /// 403.
    Forbidden(String),
    /// 4xx with a message.
    Client(StatusCode, String),
    /// 5xx: logged with a request id that the page shows.
    Internal(String),
}

impl From<ApiError> for UiError {
    fn from(e: ApiError) -> Self {
        match e.status {
            StatusCode::NOT_FOUND => UiError::NotFound(e.message),
            StatusCode::FORBIDDEN => UiError::Forbidden(e.message),
            StatusCode::UNAUTHORIZED => UiError::Login("/".into()),
            s if s.is_server_error() => UiError::Internal(e.message),
            s => UiError::Client(s, e.message),
        }
    }
}

impl From<opamp_store::Error> for UiError {
    fn from(e: opamp_store::Error) -> Self {
        ApiError::from(e).into()
    }
}

impl From<crate::Error> for UiError {
    fn from(e: crate::Error) -> Self {
        ApiError::from(e).into()
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let (status, title, message, request_id) = match self {
            UiError::Login(next) => {
                return Redirect::to(&format!("/login?next={}", encode(&next))).into_response();
            }
            UiError::SessionExpired(next) => {
                let mut r = Redirect::to(&format!("/login?expired=true&next={}", encode(&next)))
                    .into_response();
                // The request's headers are not at hand here: clear without `Secure` (a
                // browser accepts the removal either way).
                let clear = auth::clear_session_cookie(&HeaderMap::new());
                if let Ok(v) = HeaderValue::from_str(&clear) {
                    r.headers_mut().append(header::SET_COOKIE, v);
                }
                return r;
            }
            UiError::NotFound(m) => (StatusCode::NOT_FOUND, "Not found", m, None),
            UiError::Forbidden(m) => (StatusCode::FORBIDDEN, "Not allowed", m, None),
            UiError::Client(s, m) => (s, "Request refused", m, None),
            UiError::Internal(m) => {
                let id = format!(
                    "{:x}-{:x}",
                    opamp_store::Timestamp::now().as_millis(),
                    REQUEST_IDS.fetch_add(1, Ordering::Relaxed)
                );
                tracing::error!(request_id = %id, error = %m, "web UI request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Server error",
                    "the server could not complete this request (the store may be unavailable); \
                     the log has the details under this request id"
                        .to_owned(),
                    Some(id),
                )
            }
        };
        let body = bare_page(
            title,
            html! {
                h1 { (status.as_u16()) " " (title) }
                p.error-message role="alert" { (message) }
                @if let Some(id) = &request_id {
                    p { "Request id: " code.request-id { (id) } }
                }
                p { a href="/" { "Back to the overview" } }
            },
        );
        (status, body).into_response()
    }
}

/// Result of a UI handler.
pub(crate) type UiResult<T> = Result<T, UiError>;

// ---------------------------------------------------------------------------------------
// Pages

/// Which top navigation entry is current.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nav {
    Overview,
    Agents,
    Configs,
}

/// An HTML response with the UI's headers.
pub(crate) fn html_response(status: StatusCode, markup: Markup) -> Response {
    let mut r = (status, markup.into_string()).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    r
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · opampd" }
            link rel="icon" href="data:,";
            link rel="stylesheet" href=(asset_url("ui.css"));
            script src=(asset_url("ui.js")) defer {}
        }
    }
}

/// A page without navigation (errors, login).
fn bare_page(title: &str, main: Markup) -> Response {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    nav aria-label="Main" {
                        a.brand href="/" { "opampd" }
                    }
                }
                main #main tabindex="-1" { (main) }
            }
        }
    };
    html_response(StatusCode::OK, page)
}

/// A full page with the navigation and the session header.
pub(crate) fn page(session: &Session, nav: Nav, title: &str, main: Markup) -> Response {
    let link = |n: Nav, href: &str, text: &str| {
        html! {
            li { a href=(href) aria-current=[(n == nav).then_some("page")] { (text) } }
        }
    };
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body data-live-events="/api/v1/events" {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    nav aria-label="Main" {
                        a.brand href="/" { "opampd" }
                        ul {
                            (link(Nav::Overview, "/", "Overview"))
                            (link(Nav::Agents, "/agents", "Agents"))
                            (link(Nav::Configs, "/configs", "Configs"))
                        }
                    }
                    div.who {
                        @if session.anonymous {
                            span.auth-off title="No API token exists and the admin port listens on loopback only" {
                                "Admin auth is off: no login needed"
                            }
                        } @else {
                            span { "Signed in as " strong { (session.name) } " (" (session.role.as_str()) ")" }
                            form.inline method="post" action="/logout" {
                                (csrf_field(session))
                                button.link type="submit" { "Sign out" }
                            }
                        }
                        span.live #live-status role="status" aria-live="polite" data-state="off" { "Live updates off" }
                    }
                }
                main #main tabindex="-1" { (main) }
                footer.foot {
                    "opampd " (env!("CARGO_PKG_VERSION")) " · "
                    a href="/api/v1/openapi.json" { "admin API (OpenAPI)" }
                    " · " a href="/metrics" { "metrics" }
                }
            }
        }
    };
    let mut r = html_response(StatusCode::OK, markup);
    if let Some(cookie) = &session.set_csrf_cookie {
        if let Ok(v) = HeaderValue::from_str(cookie) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    r
}

/// A fragment (one live region) of a page, for the live-update script.
pub(crate) fn fragment(markup: Markup) -> Response {
    html_response(StatusCode::OK, markup)
}

/// The hidden CSRF field every form carries.
pub(crate) fn csrf_field(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

/// A status badge: a text label plus a class for color (never color alone).
pub(crate) fn badge(class: &str, text: &str) -> Markup {
    html! { span class={ "badge " (class) } { (text) } }
}

/// The badge of a sync state.
pub(crate) fn sync_badge(s: crate::SyncState) -> Markup {
    let text = match s {
        crate::SyncState::InSync => "in sync",
        crate::SyncState::Pending => "pending",
        crate::SyncState::Failed => "failed",
        crate::SyncState::Drifted => "drifted",
        crate::SyncState::Unmanaged => "unmanaged",
    };
    badge(&format!("sync-{}", s.as_str()), text)
}

/// The badge of a connection state.
pub(crate) fn connection_badge(connected: bool) -> Markup {
    if connected {
        badge("ok", "connected")
    } else {
        badge("off", "disconnected")
    }
}

/// Health of an agent from its health JSON: `Some(true)` healthy, `Some(false)` not,
/// `None` unknown.
pub(crate) fn healthy(health: Option<&serde_json::Value>) -> Option<bool> {
    health
        .and_then(|h| h.get("healthy"))
        .and_then(serde_json::Value::as_bool)
}

/// The badge of a health state.
pub(crate) fn health_badge(h: Option<bool>) -> Markup {
    match h {
        Some(true) => badge("ok", "healthy"),
        Some(false) => badge("bad", "unhealthy"),
        None => badge("off", "health unknown"),
    }
}

/// A timestamp with its age ("3 min ago").
pub(crate) fn time(t: opamp_store::Timestamp, now: opamp_store::Timestamp) -> Markup {
    let secs = (now.as_millis() - t.as_millis()).max(0) / 1000;
    let ago = match secs {
        0..=59 => format!("{secs} s ago"),
        60..=3599 => format!("{} min ago", secs / 60),
        3600..=86_399 => format!("{} h ago", secs / 3600),
        _ => format!("{} d ago", secs / 86_400),
    };
    let full = t.to_string();
    html! { time datetime=(full) title=(full) { (ago) } }
}

/// A JSON value as text (strings without quotes).
pub(crate) fn json_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Percent-encodes a query or path component.
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char);
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A query string from pairs, leaving out empty values.
pub(crate) fn query(pairs: &[(&str, &str)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// A redirect after a successful POST (303: the browser follows with GET).
pub(crate) fn see_other(location: &str) -> Response {
    Redirect::to(location).into_response()
}

/// Requires `needed` for an action; a weaker role gets 403.
pub(crate) fn require(session: &Session, needed: Role) -> UiResult<()> {
    if session.role.allows(needed) {
        Ok(())
    } else {
        Err(UiError::Forbidden(format!(
            "your token has role {}; this action needs role {needed} or higher",
            session.role
        )))
    }
}

/// A message shown at the top of a page after an action (`?done=` after the redirect).
pub(crate) fn notice(done: Option<&str>) -> Markup {
    html! {
        @if let Some(text) = done.filter(|t| !t.is_empty()) {
            p.notice role="status" { (text) }
        }
    }
}

/// `Bearer <token>` from the session cookie, for the admin API's read-only routes (the
/// event stream the live-update script opens, for one).
/// An expired or malformed cookie gives nothing.
pub(crate) fn session_bearer(headers: &HeaderMap, ttl: std::time::Duration) -> Option<HeaderValue> {
    let secret = auth::live_session_secret(headers, ttl)?;
    HeaderValue::from_str(&format!("Bearer {secret}")).ok()
}

// ---------------------------------------------------------------------------------------
// Assets

const CSS: &str = include_str!("../../assets/ui.css");
const JS: &str = include_str!("../../assets/ui.js");

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The URL of an asset, with its content hash as a cache buster.
fn asset_url(file: &str) -> String {
    let body = if file == "ui.css" { CSS } else { JS };
    format!("/ui/assets/{file}?v={:012x}", fnv(body) & 0xffff_ffff_ffff)
}

async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    let (body, content_type) = match file.as_str() {
        "ui.css" => (CSS, "text/css; charset=utf-8"),
        "ui.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return UiError::NotFound(format!("no asset {file:?}")).into_response(),
    };
    let etag = format!("\"{:016x}\"", fnv(body));
    let mut r = if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == etag)
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (StatusCode::OK, body).into_response()
    };
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // The page links each asset with its content hash: a changed asset has a new URL.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    r
}
