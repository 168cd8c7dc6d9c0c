//! What a health check is: [`CheckSpec`] (name, kind, interval, timeout, thresholds), read
//! from TOML or JSON with serde, and the [`FlapPolicy`]. Validation lives here too; nothing
//! in this module runs a probe.

use std::collections::HashSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Error, duration};

/// Default [`CheckSpec::interval`]: 10 s.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
/// Default [`CheckSpec::timeout`]: 5 s, or the interval when that is shorter.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default [`CheckSpec::failure_threshold`]: 3 consecutive failures.
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 3;
/// Default [`CheckSpec::recovery_threshold`]: 1 success.
pub const DEFAULT_RECOVERY_THRESHOLD: u32 = 1;

/// One health check: what to probe and how often, and how many results change its verdict.
///
/// In TOML the kind's fields sit beside the others, with `type` naming the kind:
///
/// ```
/// # use std::time::Duration;
/// # use opamp_health::{CheckKind, CheckSpec};
/// let spec: CheckSpec = toml::from_str(r#"
///     name = "api"
///     type = "http"
///     url = "http://127.0.0.1:8080/healthz"
///     interval = "10s"
///     timeout = "2s"
///     failure_threshold = 3
/// "#).unwrap();
/// assert_eq!(spec.kind, CheckKind::Http { url: "http://127.0.0.1:8080/healthz".into(), expect_status: 200 });
/// assert_eq!(spec.timeout, Duration::from_secs(2));
/// assert_eq!(spec.recovery_threshold, 1);
/// spec.validate().unwrap();
/// ```
///
/// Left out: `interval` is 10 s, `timeout` 5 s (or the interval if shorter),
/// `failure_threshold` 3, `recovery_threshold` 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "SpecDef")]
pub struct CheckSpec {
    /// Unique name; the key of this check in the `component_health_map` (HLTH-6).
    pub name: String,
    /// What to probe.
    #[serde(flatten)]
    pub kind: CheckKind,
    /// Time from one result to the next probe.
    #[serde(with = "duration")]
    pub interval: Duration,
    /// How long the caller lets a probe run before it records
    /// [`Outcome::timed_out`](crate::Outcome::timed_out). At most `interval`.
    #[serde(with = "duration")]
    pub timeout: Duration,
    /// Consecutive failures before the check is unhealthy (default 3).
    pub failure_threshold: u32,
    /// Consecutive successes before an unhealthy check is healthy again (default 1).
    pub recovery_threshold: u32,
}

/// What a check probes. The caller (the agent) runs the probe and records its
/// [`Outcome`](crate::Outcome).
///
/// Deliberately exhaustive: a new kind must break the callers' `match`, because each caller
/// has to learn to run it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CheckKind {
    /// The managed process is alive. A failing process check makes the whole agent
    /// unhealthy (see [`HealthMonitor::status`](crate::HealthMonitor::status)).
    Process,
    /// An HTTP GET that must answer `expect_status`.
    Http {
        /// `http://` or `https://` URL.
        url: String,
        /// The status code that means healthy (default 200).
        #[serde(default = "default_expect_status")]
        expect_status: u16,
    },
    /// A TCP connect to `host:port` that must succeed.
    Tcp {
        /// `host:port`; IPv6 literals in brackets (`[::1]:4317`).
        address: String,
    },
    /// A command that must exit with code 0.
    Command {
        /// Program to run (not through a shell).
        command: String,
        /// Its arguments.
        #[serde(default)]
        args: Vec<String>,
    },
}

fn default_expect_status() -> u16 {
    200
}

impl CheckKind {
    /// The kind's name as written in `type`: `"process"`, `"http"`, `"tcp"`, `"command"`.
    pub fn type_name(&self) -> &'static str {
        match self {
            CheckKind::Process => "process",
            CheckKind::Http { .. } => "http",
            CheckKind::Tcp { .. } => "tcp",
            CheckKind::Command { .. } => "command",
        }
    }
}

/// The serde shape of a spec, with optional fields, so the timeout default can follow the
/// interval.
#[derive(Deserialize)]
struct SpecDef {
    name: String,
    #[serde(flatten)]
    kind: CheckKind,
    #[serde(default, with = "duration::option")]
    interval: Option<Duration>,
    #[serde(default, with = "duration::option")]
    timeout: Option<Duration>,
    #[serde(default)]
    failure_threshold: Option<u32>,
    #[serde(default)]
    recovery_threshold: Option<u32>,
}

impl From<SpecDef> for CheckSpec {
    fn from(d: SpecDef) -> Self {
        let interval = d.interval.unwrap_or(DEFAULT_INTERVAL);
        CheckSpec {
            name: d.name,
            kind: d.kind,
            interval,
            timeout: d.timeout.unwrap_or(DEFAULT_TIMEOUT.min(interval)),
            failure_threshold: d.failure_threshold.unwrap_or(DEFAULT_FAILURE_THRESHOLD),
            recovery_threshold: d.recovery_threshold.unwrap_or(DEFAULT_RECOVERY_THRESHOLD),
        }
    }
}

impl CheckSpec {
    /// A spec with the default interval, timeout and thresholds.
    pub fn new(name: impl Into<String>, kind: CheckKind) -> Self {
        CheckSpec {
            name: name.into(),
            kind,
            interval: DEFAULT_INTERVAL,
            timeout: DEFAULT_TIMEOUT,
            failure_threshold: DEFAULT_FAILURE_THRESHOLD,
            recovery_threshold: DEFAULT_RECOVERY_THRESHOLD,
        }
    }

    /// Checks one spec: a non-empty name, a non-zero interval, `0 < timeout <= interval`,
    /// thresholds of at least 1, an `http(s)://` URL with a host, a `host:port` address, a
    /// non-empty command.
    pub fn validate(&self) -> Result<(), Error> {
        let check = || self.name.clone();
        if self.name.trim().is_empty() {
            return Err(Error::EmptyName);
        }
        if self.interval.is_zero() {
            return Err(Error::ZeroInterval { check: check() });
        }
        if self.timeout.is_zero() || self.timeout > self.interval {
            return Err(Error::BadTimeout {
                check: check(),
                timeout: self.timeout,
                interval: self.interval,
            });
        }
        if self.failure_threshold == 0 {
            return Err(Error::ZeroThreshold {
                check: check(),
                which: "failure_threshold",
            });
        }
        if self.recovery_threshold == 0 {
            return Err(Error::ZeroThreshold {
                check: check(),
                which: "recovery_threshold",
            });
        }
        match &self.kind {
            CheckKind::Process => {}
            CheckKind::Http { url, expect_status } => {
                if let Err(reason) = check_url(url) {
                    return Err(Error::InvalidUrl {
                        check: check(),
                        url: url.clone(),
                        reason,
                    });
                }
                if !(100..=599).contains(expect_status) {
                    return Err(Error::InvalidStatus {
                        check: check(),
                        status: *expect_status,
                    });
                }
            }
            CheckKind::Tcp { address } => {
                if !is_host_port(address) {
                    return Err(Error::InvalidAddress {
                        check: check(),
                        address: address.clone(),
                    });
                }
            }
            CheckKind::Command { command, .. } => {
                if command.trim().is_empty() {
                    return Err(Error::EmptyCommand { check: check() });
                }
            }
        }
        Ok(())
    }

    /// Validates every spec and that no two share a name.
    pub fn validate_all(specs: &[CheckSpec]) -> Result<(), Error> {
        let mut names = HashSet::new();
        for spec in specs {
            spec.validate()?;
            if !names.insert(spec.name.as_str()) {
                return Err(Error::DuplicateName(spec.name.clone()));
            }
        }
        Ok(())
    }
}

fn check_url(url: &str) -> Result<(), &'static str> {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    let rest = if lower.starts_with("http://") {
        &url[7..]
    } else if lower.starts_with("https://") {
        &url[8..]
    } else {
        return Err("the scheme must be http:// or https://");
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.is_empty() || host.starts_with(':') {
        return Err("no host");
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("contains whitespace");
    }
    Ok(())
}

fn is_host_port(address: &str) -> bool {
    let Some((host, port)) = address.rsplit_once(':') else {
        return false;
    };
    let host_ok = if let Some(inner) = host.strip_prefix('[') {
        inner.strip_suffix(']').is_some_and(|h| !h.is_empty())
    } else {
        !host.is_empty() && !host.contains(':') && !host.contains(char::is_whitespace)
    };
    host_ok && port.parse::<u16>().is_ok_and(|p| p != 0)
}

/// When a check counts as flapping: more than `max_changes` status changes within `window`.
/// A flapping check reports status `"flapping"` (and degraded) until it has gone a whole
/// `window` without a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FlapPolicy {
    /// Changes tolerated within `window` (default 4); one more makes the check flap.
    pub max_changes: u32,
    /// The sliding window (default 5 minutes).
    #[serde(with = "duration")]
    pub window: Duration,
}

impl Default for FlapPolicy {
    fn default() -> Self {
        FlapPolicy {
            max_changes: 4,
            window: Duration::from_secs(300),
        }
    }
}

impl FlapPolicy {
    /// A policy that never reports flapping.
    pub const DISABLED: FlapPolicy = FlapPolicy {
        max_changes: u32::MAX,
        window: Duration::from_secs(1),
    };

    /// Checks `max_changes >= 1` and a non-zero window.
    pub fn validate(&self) -> Result<(), Error> {
        if self.max_changes == 0 {
            return Err(Error::InvalidFlapPolicy("max_changes must be at least 1"));
        }
        if self.window.is_zero() {
            return Err(Error::InvalidFlapPolicy("window must be greater than zero"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(url: &str) -> CheckSpec {
        CheckSpec::new(
            "api",
            CheckKind::Http {
                url: url.into(),
                expect_status: 200,
            },
        )
    }

    #[test]
    fn toml_process_check_from_the_agent_contract() {
        let spec: CheckSpec = toml::from_str(
            r#"
            name = "process"
            type = "process"
            interval = "5s"
            timeout = "2s"
            failure_threshold = 1
            recovery_threshold = 1
            "#,
        )
        .unwrap();
        assert_eq!(
            spec,
            CheckSpec {
                name: "process".into(),
                kind: CheckKind::Process,
                interval: Duration::from_secs(5),
                timeout: Duration::from_secs(2),
                failure_threshold: 1,
                recovery_threshold: 1,
            }
        );
        spec.validate().unwrap();
    }

    #[test]
    fn toml_defaults_fill_in() {
        #[derive(Deserialize)]
        struct File {
            checks: Vec<CheckSpec>,
        }
        let file: File = toml::from_str(
            r#"
            [[checks]]
            name = "api"
            type = "http"
            url = "https://localhost/healthz"

            [[checks]]
            name = "otlp"
            type = "tcp"
            address = "127.0.0.1:4317"
            interval = "2s"

            [[checks]]
            name = "selftest"
            type = "command"
            command = "/usr/bin/true"
            args = ["-v"]
            interval = 30
            failure_threshold = 2
            recovery_threshold = 3
            "#,
        )
        .unwrap();
        let [api, otlp, selftest] = &file.checks[..] else {
            panic!("three checks")
        };
        assert_eq!(
            api.kind,
            CheckKind::Http {
                url: "https://localhost/healthz".into(),
                expect_status: 200
            }
        );
        assert_eq!(
            (api.interval, api.timeout),
            (DEFAULT_INTERVAL, DEFAULT_TIMEOUT)
        );
        assert_eq!((api.failure_threshold, api.recovery_threshold), (3, 1));
        assert_eq!(
            otlp.kind,
            CheckKind::Tcp {
                address: "127.0.0.1:4317".into()
            }
        );
        assert_eq!(
            otlp.timeout,
            Duration::from_secs(2),
            "timeout defaults to at most the interval"
        );
        assert_eq!(
            selftest.kind,
            CheckKind::Command {
                command: "/usr/bin/true".into(),
                args: vec!["-v".into()]
            }
        );
        assert_eq!(
            selftest.interval,
            Duration::from_secs(30),
            "a bare integer is seconds"
        );
        assert_eq!(
            (selftest.failure_threshold, selftest.recovery_threshold),
            (2, 3)
        );
        CheckSpec::validate_all(&file.checks).unwrap();
    }

    #[test]
    fn toml_errors_are_errors_not_panics() {
        for bad in [
            "name = \"x\"",                   // no type
            "name = \"x\"\ntype = \"smoke\"", // unknown type
            "name = \"x\"\ntype = \"http\"",  // http without url
            "name = \"x\"\ntype = \"process\"\ninterval = \"5 parsecs\"",
            "name = \"x\"\ntype = \"process\"\ninterval = -5",
            "name = \"x\"\ntype = \"process\"\nfailure_threshold = -1",
        ] {
            assert!(toml::from_str::<CheckSpec>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn expect_status_can_be_set() {
        let spec: CheckSpec = toml::from_str(
            "name = \"a\"\ntype = \"http\"\nurl = \"http://h/\"\nexpect_status = 204",
        )
        .unwrap();
        assert_eq!(
            spec.kind,
            CheckKind::Http {
                url: "http://h/".into(),
                expect_status: 204
            }
        );
    }

    #[test]
    fn serialize_then_deserialize_is_identity() {
        let spec = CheckSpec {
            interval: Duration::from_millis(1500),
            ..CheckSpec::new(
                "c",
                CheckKind::Command {
                    command: "true".into(),
                    args: vec![],
                },
            )
        };
        let text = toml::to_string(&spec).unwrap();
        assert!(text.contains("interval = \"1500ms\""), "{text}");
        assert_eq!(toml::from_str::<CheckSpec>(&text).unwrap(), spec);
    }

    #[test]
    fn validate_rejects_each_bad_field() {
        let ok = CheckSpec::new("p", CheckKind::Process);
        ok.validate().unwrap();
        assert_eq!(
            CheckSpec {
                name: " ".into(),
                ..ok.clone()
            }
            .validate(),
            Err(Error::EmptyName)
        );
        assert!(matches!(
            CheckSpec {
                interval: Duration::ZERO,
                ..ok.clone()
            }
            .validate(),
            Err(Error::ZeroInterval { .. })
        ));
        assert!(matches!(
            CheckSpec {
                timeout: Duration::from_secs(11),
                ..ok.clone()
            }
            .validate(),
            Err(Error::BadTimeout { .. })
        ));
        assert!(matches!(
            CheckSpec {
                timeout: Duration::ZERO,
                ..ok.clone()
            }
            .validate(),
            Err(Error::BadTimeout { .. })
        ));
        assert_eq!(
            CheckSpec {
                failure_threshold: 0,
                ..ok.clone()
            }
            .validate(),
            Err(Error::ZeroThreshold {
                check: "p".into(),
                which: "failure_threshold"
            })
        );
        assert_eq!(
            CheckSpec {
                recovery_threshold: 0,
                ..ok.clone()
            }
            .validate(),
            Err(Error::ZeroThreshold {
                check: "p".into(),
                which: "recovery_threshold"
            })
        );
        let cmd = CheckSpec::new(
            "c",
            CheckKind::Command {
                command: "".into(),
                args: vec![],
            },
        );
        assert!(matches!(cmd.validate(), Err(Error::EmptyCommand { .. })));
        let status = CheckSpec::new(
            "h",
            CheckKind::Http {
                url: "http://h/".into(),
                expect_status: 42,
            },
        );
        assert!(matches!(
            status.validate(),
            Err(Error::InvalidStatus { status: 42, .. })
        ));
    }

    #[test]
    fn validate_urls() {
        for good in [
            "http://127.0.0.1:8080/healthz",
            "https://example.com",
            "HTTP://h/x?y#z",
            "http://u:p@h/",
        ] {
            http(good).validate().unwrap();
        }
        for bad in [
            "",
            "ftp://h/",
            "127.0.0.1:8080/healthz",
            "http://",
            "http:///path",
            "http://:80/",
            "http://h /x",
        ] {
            assert!(
                matches!(http(bad).validate(), Err(Error::InvalidUrl { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn validate_tcp_addresses() {
        let tcp = |a: &str| CheckSpec::new("t", CheckKind::Tcp { address: a.into() });
        for good in ["127.0.0.1:4317", "localhost:80", "[::1]:4317"] {
            tcp(good).validate().unwrap();
        }
        for bad in [
            "",
            "localhost",
            ":80",
            "h:0",
            "h:99999",
            "::1:80",
            "[]:80",
            "h:port",
        ] {
            assert!(
                matches!(tcp(bad).validate(), Err(Error::InvalidAddress { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn validate_all_rejects_duplicate_names() {
        let specs = vec![
            CheckSpec::new("a", CheckKind::Process),
            CheckSpec::new("a", CheckKind::Process),
        ];
        assert_eq!(
            CheckSpec::validate_all(&specs),
            Err(Error::DuplicateName("a".into()))
        );
        assert_eq!(CheckSpec::validate_all(&[]), Ok(()));
    }

    #[test]
    fn flap_policy_defaults_and_validation() {
        let p = FlapPolicy::default();
        assert_eq!((p.max_changes, p.window), (4, Duration::from_secs(300)));
        p.validate().unwrap();
        assert!(
            FlapPolicy {
                max_changes: 0,
                ..p
            }
            .validate()
            .is_err()
        );
        assert!(
            FlapPolicy {
                window: Duration::ZERO,
                ..p
            }
            .validate()
            .is_err()
        );
        let from_toml: FlapPolicy = toml::from_str("window = \"1m\"").unwrap();
        assert_eq!(
            from_toml,
            FlapPolicy {
                max_changes: 4,
                window: Duration::from_secs(60)
            }
        );
    }
}
