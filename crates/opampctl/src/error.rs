//! The one error type of opampctl, and how each error becomes a message and an exit code.
//!
//! Errors are sorted by whose move it is: the server could not be reached (exit 3), the
//! server refused or failed the request (exit 1), or the command line itself is wrong
//! (exit 2). Every message says what to do next where there is something to do.

use std::path::PathBuf;
use std::time::Duration;

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: the API refused or failed the request (4xx, 5xx, a reply we cannot read).
pub const EXIT_API: u8 = 1;
/// Exit code: the command line is wrong (clap uses 2 for its own errors too).
pub const EXIT_USAGE: u8 = 2;
/// Exit code: opampd could not be reached (connection refused, DNS, timeout).
pub const EXIT_CONNECTION: u8 = 3;

/// Everything that can go wrong in an opampctl command.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // --- The server could not be reached (IO). ---
    /// No connection to the admin API (refused, unknown host, reset).
    #[error("cannot reach opampd at {url}: is it running? (set OPAMP_URL or --url): {detail}")]
    Unreachable {
        /// The base URL tried.
        url: String,
        /// What the HTTP client said.
        detail: String,
    },
    /// The TLS handshake failed because the server's certificate is not trusted (or does
    /// not name the host in the URL).
    #[error(
        "cannot trust the TLS certificate of opampd at {url}: pass the CA that signed it with \
         --cacert FILE (or OPAMP_CACERT), and use the host name the certificate names: {detail}"
    )]
    UntrustedCertificate {
        /// The base URL tried.
        url: String,
        /// What the TLS stack said.
        detail: String,
    },
    /// The request did not finish within `--timeout`.
    #[error(
        "opampd at {url} did not answer within {}: is it overloaded? (raise --timeout)",
        humanize(*after)
    )]
    Timeout {
        /// The base URL tried.
        url: String,
        /// The timeout that expired.
        after: Duration,
    },

    // --- The server answered no (the peer's verdict). ---
    /// 401: no token, or one the server does not know.
    #[error("{}", unauthorized_message(*token_given, message))]
    Unauthorized {
        /// Whether a token was sent.
        token_given: bool,
        /// The server's message.
        message: String,
    },
    /// 403: the token's role is too weak for this request.
    #[error("{}", forbidden_message(role.as_deref(), needed.as_deref(), message))]
    Forbidden {
        /// The token's role, as the server named it.
        role: Option<String>,
        /// The role the request needs, as the server named it.
        needed: Option<String>,
        /// The server's message.
        message: String,
    },
    /// Any other 4xx or 5xx with the API's JSON error body.
    #[error("{message} ({code})")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The API's stable error code (`config_not_found`, `conflict`, ...).
        code: String,
        /// The API's message.
        message: String,
    },
    /// The server answered something that is not the admin API's JSON (a proxy's error
    /// page, another service on that port).
    #[error(
        "unexpected answer from {url} (HTTP {status}): {detail}; is OPAMP_URL the opampd admin API?"
    )]
    BadResponse {
        /// The request URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The start of the body, or why it could not be read.
        detail: String,
    },
    /// The answer parsed but lacks what this command needs (an API version mismatch).
    #[error("the answer of {what} lacks {missing}: is opampctl older or newer than opampd?")]
    MissingField {
        /// The request.
        what: String,
        /// The field.
        missing: String,
    },
    /// An agent uid prefix or suffix matched no agent, or several.
    #[error("{0}")]
    AgentLookup(String),

    // --- The command line is wrong (local misuse). ---
    /// A bad argument that clap could not catch (a `key=value` without `=`, a bad URL).
    #[error("{0}")]
    Usage(String),
    /// A file named on the command line could not be read.
    #[error("cannot read {}: {source}", path.display())]
    File {
        /// The path.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },

    // --- Local IO. ---
    /// Writing the output failed (other than a closed pipe, which is not an error).
    #[error("cannot write the output: {0}")]
    Output(#[source] std::io::Error),
    /// The async runtime could not start.
    #[error("cannot start the runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

impl Error {
    /// The process exit code for this error: 1 API, 2 usage, 3 connection.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Unreachable { .. }
            | Error::UntrustedCertificate { .. }
            | Error::Timeout { .. } => EXIT_CONNECTION,
            Error::Usage(_) | Error::File { .. } => EXIT_USAGE,
            Error::Unauthorized { .. }
            | Error::Forbidden { .. }
            | Error::Api { .. }
            | Error::BadResponse { .. }
            | Error::MissingField { .. }
            | Error::AgentLookup(_)
            | Error::Output(_)
            | Error::Runtime(_) => EXIT_API,
        }
    }

    /// A second line telling what to do, for errors where the first line does not.
    pub fn hint(&self) -> Option<&'static str> {
        let Error::Api { code, .. } = self else {
            return None;
        };
        Some(match code.as_str() {
            "agent_not_found" => "list agents with `opampctl agents list`",
            "config_not_found" => "list configs with `opampctl configs list`",
            "version_not_found" => "list versions with `opampctl configs history NAME`",
            "group_not_found" => "list groups with `opampctl groups list`",
            "assignment_not_found" => "list assignments with `opampctl assignments list`",
            "invalid_selector" => {
                "selectors look like `env=prod,region in (eu,us),!canary` (see `opampctl agents list --help`)"
            }
            "store_unavailable" => "opampd cannot reach its store: see its log",
            _ => return None,
        })
    }
}

fn unauthorized_message(token_given: bool, message: &str) -> String {
    if token_given {
        format!(
            "the token was refused ({message}): set OPAMP_TOKEN to a valid token (create one with `opampd token create`)"
        )
    } else {
        "authentication required: set OPAMP_TOKEN (create one with `opampd token create`)".into()
    }
}

fn forbidden_message(role: Option<&str>, needed: Option<&str>, message: &str) -> String {
    match (role, needed) {
        (Some(role), Some(needed)) => format!(
            "your token's role ({role}) cannot do this: it needs {needed} or higher (ask an admin for a token made with `opampd token create --role {needed}`)"
        ),
        (Some(role), None) => format!("your token's role ({role}) cannot do this ({message})"),
        _ => format!("your token's role cannot do this ({message})"),
    }
}

/// `30s`, `1.5s`, `250ms`, `2m`.
pub(crate) fn humanize(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 60_000 == 0 && ms > 0 {
        format!("{}m", ms / 60_000)
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else if ms >= 1000 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{ms}ms")
    }
}

/// Reads the token's role and the role needed from the API's 403 message
/// (`token "ci" has role viewer; this request needs role operator or higher`).
pub(crate) fn roles_from_forbidden(message: &str) -> (Option<String>, Option<String>) {
    fn word_after<'a>(text: &'a str, marker: &str) -> Option<&'a str> {
        let rest = &text[text.find(marker)? + marker.len()..];
        let word: &str = rest
            .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .next()?;
        (!word.is_empty()).then_some(word)
    }
    let role = word_after(message, "has role ").map(str::to_owned);
    let needed = word_after(message, "needs role ").map(str::to_owned);
    (role, needed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_message_names_both_roles() {
        let (role, needed) = roles_from_forbidden(
            "token \"grafana\" has role viewer; this request needs role operator or higher",
        );
        assert_eq!(role.as_deref(), Some("viewer"));
        assert_eq!(needed.as_deref(), Some("operator"));
        let e = Error::Forbidden {
            role,
            needed,
            message: String::new(),
        };
        assert!(
            e.to_string()
                .starts_with("your token's role (viewer) cannot do this"),
            "{e}"
        );
    }

    #[test]
    fn forbidden_message_without_roles_falls_back_to_the_servers_words() {
        assert_eq!(roles_from_forbidden("nope"), (None, None));
        let e = Error::Forbidden {
            role: None,
            needed: None,
            message: "nope".into(),
        };
        assert_eq!(e.to_string(), "your token's role cannot do this (nope)");
    }

    #[test]
    fn exit_codes_sort_errors_by_whose_move_it_is() {
        let unreachable = Error::Unreachable {
            url: "http://x".into(),
            detail: "refused".into(),
        };
        assert_eq!(unreachable.exit_code(), EXIT_CONNECTION);
        assert_eq!(Error::Usage("x".into()).exit_code(), EXIT_USAGE);
        let api = Error::Api {
            status: 404,
            code: "config_not_found".into(),
            message: "config \"x\" not found".into(),
        };
        assert_eq!(api.exit_code(), EXIT_API);
        assert_eq!(api.to_string(), "config \"x\" not found (config_not_found)");
        assert!(api.hint().is_some());
    }

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(humanize(Duration::from_secs(30)), "30s");
        assert_eq!(humanize(Duration::from_secs(120)), "2m");
        assert_eq!(humanize(Duration::from_millis(250)), "250ms");
        assert_eq!(humanize(Duration::from_millis(1500)), "1.5s");
    }
}
