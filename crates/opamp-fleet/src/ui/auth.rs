//! Sessions (the API token in an `HttpOnly` cookie, re-validated on every request), CSRF
//! tokens (double-submit cookie, checked on every `POST`), the login and logout pages.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::html;
use opamp_store::{Role, TokenHash};
use serde::Deserialize;

use super::{Ui, UiError, UiResult, bare_page, see_other};
use crate::Fleet;

/// The cookie holding the API token secret.
pub(crate) const SESSION_COOKIE: &str = "opamp_session";
/// The cookie holding the CSRF token forms must echo.
pub(crate) const CSRF_COOKIE: &str = "opamp_csrf";

/// Who is asking, as the UI sees it.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// The token name, or `anonymous`.
    pub(crate) name: String,
    /// The token's role (admin when the API is open).
    pub(crate) role: Role,
    /// No token: the admin API is open (no token exists, loopback bind).
    pub(crate) anonymous: bool,
    /// The token secret from the cookie, passed to the API handlers as a bearer token.
    pub(crate) secret: Option<String>,
    /// The CSRF token forms carry.
    pub(crate) csrf: String,
    /// A `Set-Cookie` value to send when the CSRF cookie was missing.
    pub(crate) set_csrf_cookie: Option<String>,
}

impl Session {
    /// Headers that authenticate an API handler call as this session.
    pub(crate) fn api_headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(secret) = &self.secret
            && let Ok(v) = HeaderValue::from_str(&format!("Bearer {secret}"))
        {
            h.insert(header::AUTHORIZATION, v);
        }
        h
    }

    /// Whether this session may take actions of `role`.
    pub(crate) fn can(&self, role: Role) -> bool {
        self.role.allows(role)
    }
}

/// The value of cookie `name` in the request.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

fn is_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

fn cookie_header(name: &str, value: &str, headers: &HeaderMap, max_age: Option<u64>) -> String {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if is_tls(headers) {
        c.push_str("; Secure");
    }
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    c
}

fn new_csrf() -> String {
    use rand::Rng as _;
    let bytes: [u8; 24] = rand::rng().random();
    crate::api::types::hex(&bytes)
}

/// The CSRF token of the request, or a new one with the cookie that carries it.
fn csrf_of(headers: &HeaderMap) -> (String, Option<String>) {
    match cookie(headers, CSRF_COOKIE).filter(|v| v.len() >= 32 && v.len() <= 128) {
        Some(v) => (v.to_owned(), None),
        None => {
            let v = new_csrf();
            let set = cookie_header(CSRF_COOKIE, &v, headers, None);
            (v, Some(set))
        }
    }
}

/// The session cookie's value: `s1.<issued at, Unix seconds>.<token secret>`.
fn session_value(secret: &str, issued_at: u64) -> String {
    format!("s1.{issued_at}.{secret}")
}

/// Why a session cookie was refused.
#[derive(Debug, PartialEq, Eq)]
enum SessionCookieError {
    /// Not in the `s1.<issued>.<secret>` form.
    Malformed,
    /// Issued more than the session lifetime ago (or in the future).
    Expired,
}

/// The token secret of a session cookie issued at most `ttl` before `now` (Unix seconds).
/// A cookie claiming to be issued in the future (beyond a minute of clock skew between
/// replicas) is refused as expired.
fn session_secret(
    value: &str,
    now: u64,
    ttl: std::time::Duration,
) -> Result<&str, SessionCookieError> {
    let mut parts = value.splitn(3, '.');
    let (Some("s1"), Some(issued), Some(secret)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(SessionCookieError::Malformed);
    };
    let issued: u64 = issued.parse().map_err(|_| SessionCookieError::Malformed)?;
    if secret.is_empty() {
        return Err(SessionCookieError::Malformed);
    }
    let age_ok = now.saturating_sub(issued) <= ttl.as_secs();
    let not_future = issued <= now.saturating_add(60);
    if age_ok && not_future {
        Ok(secret)
    } else {
        Err(SessionCookieError::Expired)
    }
}

/// The token secret of the request's session cookie, if it is well formed and not expired.
pub(crate) fn live_session_secret(headers: &HeaderMap, ttl: std::time::Duration) -> Option<&str> {
    let value = cookie(headers, SESSION_COOKIE)?;
    session_secret(value, unix_now(), ttl).ok()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A `Set-Cookie` value that removes the session cookie.
pub(crate) fn clear_session_cookie(headers: &HeaderMap) -> String {
    cookie_header(SESSION_COOKIE, "", headers, Some(0))
}

/// Whether the admin API is open (no active token, and the fleet allows it).
async fn open(fleet: &Fleet) -> UiResult<bool> {
    if !fleet.options().open_without_tokens {
        return Ok(false);
    }
    let tokens = fleet.store().list_tokens().await?;
    Ok(tokens.iter().all(|t| t.revoked_at.is_some()))
}

/// The session of a request; without one, [`UiError::Login`] back to `path`.
pub(crate) async fn session(fleet: &Fleet, headers: &HeaderMap, path: &str) -> UiResult<Session> {
    let (csrf, set_csrf_cookie) = csrf_of(headers);
    if let Some(value) = cookie(headers, SESSION_COOKIE) {
        let secret = match session_secret(value, unix_now(), fleet.options().ui_session_ttl) {
            Ok(secret) => secret,
            Err(SessionCookieError::Expired) => {
                return Err(UiError::SessionExpired(path.to_owned()));
            }
            // An unreadable cookie (e.g. from an older version): sign in again.
            Err(SessionCookieError::Malformed) => return Err(UiError::Login(path.to_owned())),
        };
        if let Some(token) = fleet.store().verify_token(TokenHash::of(secret)).await? {
            return Ok(Session {
                name: token.name,
                role: token.role,
                anonymous: false,
                secret: Some(secret.to_owned()),
                csrf,
                set_csrf_cookie,
            });
        }
        // Revoked or unknown: sign in again (unless the API is open).
    }
    if open(fleet).await? {
        return Ok(Session {
            name: "anonymous".into(),
            role: Role::Admin,
            anonymous: true,
            secret: None,
            csrf,
            set_csrf_cookie,
        });
    }
    Err(UiError::Login(path.to_owned()))
}

/// Checks the CSRF token of a `POST` form against the cookie (403 when they differ).
pub(crate) fn check_csrf(headers: &HeaderMap, form_token: Option<&str>) -> UiResult<()> {
    let cookie = cookie(headers, CSRF_COOKIE);
    match (cookie, form_token) {
        (Some(c), Some(f)) if !c.is_empty() && constant_time_eq(c.as_bytes(), f.as_bytes()) => {
            Ok(())
        }
        _ => Err(UiError::Forbidden(
            "the form's CSRF token is missing or does not match this browser session; \
             reload the page and try again"
                .into(),
        )),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A `POST` handler's session: valid session (else login) and a matching CSRF token (else
/// 403).
pub(crate) async fn post_session(
    fleet: &Fleet,
    headers: &HeaderMap,
    path: &str,
    form_token: Option<&str>,
) -> UiResult<Session> {
    check_csrf(headers, form_token)?;
    session(fleet, headers, path).await
}

/// Where to go after logging in: a local path only.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/".to_owned(),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct LoginQuery {
    next: Option<String>,
    /// Set when an expired session sent the browser here.
    #[serde(default)]
    expired: bool,
}

fn login_form(
    next: &str,
    csrf: &str,
    error: Option<&str>,
    note: Option<&str>,
    open: bool,
) -> maud::Markup {
    html! {
        h1 { "Sign in" }
        @if let Some(n) = note {
            p.notice role="status" { (n) }
        }
        @if open {
            p.notice { "The admin API is open (no token exists yet): you do not need to sign in. "
                a href="/" { "Go to the overview" } "." }
        }
        p { "Sign in with an admin API token (create one on the server with "
            code { "opampd token create --role viewer --name <you>" } ")." }
        form.card method="post" action="/login" {
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="next" value=(next);
            div.field {
                label for="token" { "API token" }
                input #token type="password" name="token" autocomplete="current-password" required
                    aria-invalid=[error.map(|_| "true")] aria-describedby=[error.map(|_| "token-error")];
                @if let Some(e) = error {
                    p.field-error #token-error role="alert" { (e) }
                }
            }
            button type="submit" { "Sign in" }
        }
    }
}

/// `GET /login`.
pub(crate) async fn login_page(
    State(ui): State<Ui>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> UiResult<Response> {
    let (csrf, set) = csrf_of(&headers);
    let next = safe_next(q.next.as_deref());
    let open = open(&ui.fleet).await?;
    let note = q
        .expired
        .then_some("Your session expired: sign in again to continue.");
    let mut r = bare_page("Sign in", login_form(&next, &csrf, None, note, open));
    if let Some(set) = set
        && let Ok(v) = HeaderValue::from_str(&set)
    {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(r)
}

#[derive(Debug, Deserialize)]
pub(crate) struct LoginForm {
    token: String,
    csrf: Option<String>,
    next: Option<String>,
}

/// `POST /login`: checks the token, sets the session cookie and a fresh CSRF cookie.
pub(crate) async fn login(
    State(ui): State<Ui>,
    headers: HeaderMap,
    axum::Form(f): axum::Form<LoginForm>,
) -> UiResult<Response> {
    check_csrf(&headers, f.csrf.as_deref())?;
    let next = safe_next(f.next.as_deref());
    let secret = f.token.trim();
    let valid = !secret.is_empty()
        && secret.bytes().all(|b| b.is_ascii_graphic())
        && ui
            .fleet
            .store()
            .verify_token(TokenHash::of(secret))
            .await?
            .is_some();
    if !valid {
        let (csrf, _) = csrf_of(&headers);
        let mut r = bare_page(
            "Sign in",
            login_form(&next, &csrf, Some("invalid or revoked token"), None, false),
        );
        *r.status_mut() = StatusCode::UNAUTHORIZED;
        return Ok(r);
    }
    let mut r = see_other(&next);
    let h = r.headers_mut();
    for c in [
        cookie_header(
            SESSION_COOKIE,
            &session_value(secret, unix_now()),
            &headers,
            Some(ui.fleet.options().ui_session_ttl.as_secs()),
        ),
        cookie_header(CSRF_COOKIE, &new_csrf(), &headers, None),
    ] {
        if let Ok(v) = HeaderValue::from_str(&c) {
            h.append(header::SET_COOKIE, v);
        }
    }
    Ok(r)
}

#[derive(Debug, Deserialize)]
pub(crate) struct CsrfForm {
    csrf: Option<String>,
}

/// `POST /logout`: clears the session cookie.
pub(crate) async fn logout(
    headers: HeaderMap,
    axum::Form(f): axum::Form<CsrfForm>,
) -> Result<Response, UiError> {
    check_csrf(&headers, f.csrf.as_deref())?;
    let mut r = see_other("/login");
    if let Ok(v) = HeaderValue::from_str(&clear_session_cookie(&headers)) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(r.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_cookies_last_their_lifetime_and_no_longer() {
        let ttl = std::time::Duration::from_secs(3600);
        let v = session_value("opamp_abc.def", 1_000_000);
        assert_eq!(session_secret(&v, 1_000_000, ttl), Ok("opamp_abc.def"));
        assert_eq!(session_secret(&v, 1_003_600, ttl), Ok("opamp_abc.def"));
        assert_eq!(
            session_secret(&v, 1_003_601, ttl),
            Err(SessionCookieError::Expired)
        );
        // Issued in the future (beyond a minute of skew): refused.
        assert_eq!(
            session_secret(&v, 999_000, ttl),
            Err(SessionCookieError::Expired)
        );
        assert_eq!(session_secret(&v, 999_950, ttl), Ok("opamp_abc.def"));
        for bad in [
            "opamp_abc",
            "s1.x.opamp_abc",
            "s1.5.",
            "s2.5.opamp_abc",
            "s1.5",
        ] {
            assert_eq!(
                session_secret(bad, 10, ttl),
                Err(SessionCookieError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("xopamp_session=no; opamp_session=yes; opamp_csrf=c"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("yes"));
        assert_eq!(cookie(&h, CSRF_COOKIE), Some("c"));
        assert_eq!(cookie(&h, "missing"), None);
    }

    #[test]
    fn login_redirects_only_to_local_paths() {
        assert_eq!(safe_next(Some("/agents?x=1")), "/agents?x=1");
        for bad in [
            "//evil.example",
            "https://evil.example",
            "/\\evil",
            "agents",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad}");
        }
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn csrf_tokens_must_match_the_cookie() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("opamp_csrf=abc"));
        assert!(check_csrf(&h, Some("abc")).is_ok());
        assert!(check_csrf(&h, Some("abd")).is_err());
        assert!(check_csrf(&h, None).is_err());
        assert!(check_csrf(&HeaderMap::new(), Some("abc")).is_err());
    }
}
