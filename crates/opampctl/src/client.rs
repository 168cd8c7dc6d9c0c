//! The admin API client: one reqwest client (rustls, no OpenSSL), the base URL, the token,
//! and the mapping from HTTP outcomes to [`Error`]. Commands speak JSON values: the API's
//! answers pass through untouched, so `-o json` prints exactly what opampd said.

use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

use crate::cli::GlobalArgs;
use crate::error::{Error, roles_from_forbidden};

/// The admin API at one base URL.
#[derive(Debug)]
pub(crate) struct Api {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
    timeout: std::time::Duration,
}

impl Api {
    /// Checks the URL and builds the HTTP client.
    pub(crate) fn new(global: &GlobalArgs) -> Result<Self, Error> {
        let base = parse_base_url(&global.url)?;
        let mut builder = reqwest::Client::builder()
            .timeout(global.timeout)
            .connect_timeout(global.timeout)
            .user_agent(concat!("opampctl/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &global.cacert {
            let pem = std::fs::read(path).map_err(|source| Error::File {
                path: path.clone(),
                source,
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                Error::Usage(format!(
                    "--cacert {}: not PEM certificates: {e}",
                    path.display()
                ))
            })?;
            if certs.is_empty() {
                return Err(Error::Usage(format!(
                    "--cacert {}: no certificate in the file",
                    path.display()
                )));
            }
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        let http = builder
            .build()
            .map_err(|e| Error::Usage(format!("cannot set up the HTTP client: {e}")))?;
        let token = global
            .token
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
        Ok(Self {
            http,
            base,
            token,
            timeout: global.timeout,
        })
    }

    /// `base` + `/api/v1/` + the segments, each percent-encoded.
    pub(crate) fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(["api", "v1"]).extend(segments);
        }
        url
    }

    /// Sends a request; returns the JSON answer (`null` for 204).
    pub(crate) async fn call(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, Error> {
        let url = self.url(segments);
        let mut req = self.http.request(method, url.clone());
        if !query.is_empty() {
            req = req.query(query);
        }
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req.send().await.map_err(|e| self.transport_error(&e))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| self.transport_error(&e))?;
        if status.is_success() {
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(Value::Null);
            }
            return serde_json::from_slice(&bytes).map_err(|e| Error::BadResponse {
                url: url.to_string(),
                status: status.as_u16(),
                detail: format!("not JSON ({e}): {}", snippet(&bytes)),
            });
        }
        Err(self.status_error(&url, status, &bytes))
    }

    pub(crate) async fn get(&self, segments: &[&str]) -> Result<Value, Error> {
        self.call(Method::GET, segments, &[], None).await
    }

    pub(crate) async fn get_query(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<Value, Error> {
        self.call(Method::GET, segments, query, None).await
    }

    pub(crate) async fn post(&self, segments: &[&str], body: &Value) -> Result<Value, Error> {
        self.call(Method::POST, segments, &[], Some(body)).await
    }

    pub(crate) async fn put(&self, segments: &[&str], body: &Value) -> Result<Value, Error> {
        self.call(Method::PUT, segments, &[], Some(body)).await
    }

    pub(crate) async fn patch(&self, segments: &[&str], body: &Value) -> Result<Value, Error> {
        self.call(Method::PATCH, segments, &[], Some(body)).await
    }

    pub(crate) async fn delete(&self, segments: &[&str]) -> Result<Value, Error> {
        self.call(Method::DELETE, segments, &[], None).await
    }

    /// Follows `next_cursor` until the last page and concatenates `items_key`.
    pub(crate) async fn get_all(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
        items_key: &str,
    ) -> Result<Value, Error> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        let mut seen = std::collections::HashSet::new();
        loop {
            let mut q = query.to_vec();
            if let Some(c) = &cursor {
                q.push(("cursor", c.clone()));
            }
            let page = self.get_query(segments, &q).await?;
            match page.get(items_key).and_then(Value::as_array) {
                Some(items) => all.extend(items.iter().cloned()),
                None => {
                    return Err(Error::MissingField {
                        what: format!("GET {}", self.url(segments).path()),
                        missing: format!("\"{items_key}\""),
                    });
                }
            }
            match page.get("next_cursor").and_then(Value::as_str) {
                // A server handing the same cursor back would loop forever: stop.
                Some(c) if !c.is_empty() && seen.insert(c.to_owned()) => {
                    cursor = Some(c.to_owned())
                }
                _ => break,
            }
        }
        Ok(serde_json::json!({ items_key: all, "next_cursor": null }))
    }

    fn transport_error(&self, e: &reqwest::Error) -> Error {
        let url = self.base.as_str().trim_end_matches('/').to_owned();
        if e.is_timeout() {
            return Error::Timeout {
                url,
                after: self.timeout,
            };
        }
        let detail = error_chain(e);
        if looks_like_untrusted_certificate(&detail) {
            return Error::UntrustedCertificate { url, detail };
        }
        Error::Unreachable { url, detail }
    }

    fn status_error(&self, url: &Url, status: StatusCode, body: &[u8]) -> Error {
        let parsed: Option<(String, String)> =
            serde_json::from_slice::<Value>(body).ok().and_then(|v| {
                let e = v.get("error")?;
                Some((
                    e.get("code")?.as_str()?.to_owned(),
                    e.get("message")?.as_str()?.to_owned(),
                ))
            });
        match (status, parsed) {
            (StatusCode::UNAUTHORIZED, p) => Error::Unauthorized {
                token_given: self.token.is_some(),
                message: p.map(|(_, m)| m).unwrap_or_else(|| snippet(body)),
            },
            (StatusCode::FORBIDDEN, Some((_, message))) => {
                let (role, needed) = roles_from_forbidden(&message);
                Error::Forbidden {
                    role,
                    needed,
                    message,
                }
            }
            (_, Some((code, message))) => Error::Api {
                status: status.as_u16(),
                code,
                message,
            },
            (_, None) => Error::BadResponse {
                url: url.to_string(),
                status: status.as_u16(),
                detail: snippet(body),
            },
        }
    }
}

/// Checks `--url`: an absolute http(s) URL without query or fragment.
pub(crate) fn parse_base_url(text: &str) -> Result<Url, Error> {
    let bad = |why: &str| {
        Error::Usage(format!(
            "invalid --url/OPAMP_URL {text:?}: {why} (for example http://127.0.0.1:4321)"
        ))
    };
    let url = Url::parse(text.trim()).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(bad(
            "it must start with http:// or https:// and name a host",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("it must not have a query or fragment"));
    }
    Ok(url)
}

/// The root cause of a transport error (`Connection refused (os error 111)`, `failed to
/// lookup address information: ...`): reqwest's outer layers only repeat the URL.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut root = e;
    while let Some(s) = root.source() {
        root = s;
    }
    root.to_string()
}

/// The start of a body, for error messages.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "(empty body)".into();
    }
    let mut s: String = text.chars().take(200).collect();
    if text.chars().count() > 200 {
        s.push('…');
    }
    s.replace('\n', " ")
}

/// Whether a transport error chain is rustls refusing the server's certificate.
fn looks_like_untrusted_certificate(detail: &str) -> bool {
    let d = detail.to_ascii_lowercase();
    d.contains("invalid peer certificate") || d.contains("certificate not valid for name")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(url: &str) -> Api {
        let global = GlobalArgs {
            url: url.into(),
            token: None,
            output: crate::cli::Output::Table,
            timeout: std::time::Duration::from_secs(5),
            cacert: None,
            wide: false,
            color: crate::cli::ColorChoice::Never,
        };
        Api::new(&global).unwrap()
    }

    #[test]
    fn urls_keep_a_path_prefix_and_encode_segments() {
        let a = api("http://h:1/opamp/");
        assert_eq!(
            a.url(&["configs", "a b/c"]).as_str(),
            "http://h:1/opamp/api/v1/configs/a%20b%2Fc"
        );
        let a = api("http://h:1");
        assert_eq!(a.url(&["summary"]).as_str(), "http://h:1/api/v1/summary");
    }

    #[test]
    fn bad_urls_are_usage_errors() {
        for bad in ["localhost:4321", "ftp://h", "http://h/?x=1", "not a url"] {
            let e = parse_base_url(bad).unwrap_err();
            assert_eq!(e.exit_code(), crate::error::EXIT_USAGE, "{bad}");
        }
    }

    #[test]
    fn non_json_error_bodies_are_bad_responses() {
        let a = api("http://h:1");
        let url = a.url(&["x"]);
        let e = a.status_error(&url, StatusCode::BAD_GATEWAY, b"<html>bad gateway</html>");
        assert!(matches!(e, Error::BadResponse { status: 502, .. }), "{e}");
        let e = a.status_error(
            &url,
            StatusCode::NOT_FOUND,
            br#"{"error":{"code":"config_not_found","message":"config \"x\" not found"}}"#,
        );
        assert_eq!(e.to_string(), "config \"x\" not found (config_not_found)");
        let e = a.status_error(&url, StatusCode::UNAUTHORIZED, b"");
        assert!(e.to_string().starts_with("authentication required"), "{e}");
    }
}
