//! Runs opamp-health's probes (HTTP GET, TCP connect, command) and builds the health
//! report. The process check is answered by the supervisor from its process watcher.

use std::process::Stdio;
use std::time::{Duration, SystemTime};

use opamp_health::{CheckKind, HealthEvent, Outcome};
use opamp_proto::v1::ComponentHealth;

/// Runs one probe with its timeout.
pub async fn probe(kind: CheckKind, timeout: Duration) -> Outcome {
    let work = async {
        match kind {
            CheckKind::Process => Outcome::failure("the process check is run by the supervisor"),
            CheckKind::Http { url, expect_status } => {
                match crate::http::request(hyper::Method::GET, &url, &[], Vec::new(), None).await {
                    Ok(status) if status == expect_status => Outcome::Success,
                    Ok(status) => Outcome::failure(format!(
                        "GET {url}: status {status} (expected {expect_status})"
                    )),
                    Err(e) => Outcome::failure(format!("GET {url}: {e}")),
                }
            }
            CheckKind::Tcp { address } => match tokio::net::TcpStream::connect(&address).await {
                Ok(_) => Outcome::Success,
                Err(e) => Outcome::failure(format!("connect {address}: {e}")),
            },
            CheckKind::Command { command, args } => {
                let result = tokio::process::Command::new(&command)
                    .args(&args)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .kill_on_drop(true)
                    .status()
                    .await;
                match result {
                    Ok(s) if s.success() => Outcome::Success,
                    Ok(s) => Outcome::failure(format!(
                        "{command}: {}",
                        crate::process::describe_exit(s).replace("process ", "")
                    )),
                    Err(e) => Outcome::failure(format!("{command}: {e}")),
                }
            }
        }
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(outcome) => outcome,
        Err(_) => Outcome::timed_out(timeout),
    }
}

/// What the process watcher knows, for the top of the health report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProcessView {
    /// Running since this time.
    Running(SystemTime),
    /// Not running: why (the last exit), and whether a restart is scheduled.
    Down {
        /// `process exited with status N`, `killed by signal SIGKILL`, or a spawn error.
        reason: String,
        /// A restart is scheduled.
        restarting: bool,
    },
}

/// The health report: opamp-health's tree, overridden at the top by the process
/// watcher (a process that is not running makes the agent unhealthy, with the exit as
/// `last_error`, HLTH-4).
pub fn report(
    mut checks: ComponentHealth,
    process: &ProcessView,
    changed: SystemTime,
) -> ComponentHealth {
    if let ProcessView::Down { reason, restarting } = process {
        checks.healthy = false;
        checks.status = if *restarting { "restarting" } else { "stopped" }.to_owned();
        checks.last_error = reason.clone();
        checks.start_time_unix_nano = 0;
        checks.status_time_unix_nano = checks.status_time_unix_nano.max(unix_nanos(changed));
    } else if checks.component_health_map.is_empty() && checks.healthy {
        checks.status = "running".to_owned();
    }
    checks.status_time_unix_nano = checks.status_time_unix_nano.max(unix_nanos(changed));
    checks
}

/// A health event as a log line (Display):
/// `health check "process": degraded → healthy`, `health check "process" is flapping`,
/// `health check "process" is stable again`. States are lower case (opamp-health's
/// `Status` display); the check name is quoted, so an odd name cannot forge a line.
#[derive(Clone, Copy, Debug)]
pub struct EventLine<'a>(pub &'a HealthEvent);

impl std::fmt::Display for EventLine<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            HealthEvent::Changed { check, from, to } => {
                write!(f, "health check {check:?}: {from} → {to}")
            }
            HealthEvent::Flapping {
                check,
                flapping: true,
            } => write!(f, "health check {check:?} is flapping"),
            HealthEvent::Flapping {
                check,
                flapping: false,
            } => write!(f, "health check {check:?} is stable again"),
        }
    }
}

/// Logs a health event: the [`EventLine`] as the message, with structured fields
/// `check`, `from`, `to` (a change; lower-case states) or `check`, `flapping`. A check
/// that starts flapping is a warning, everything else info.
pub fn log_event(ev: &HealthEvent) {
    let line = EventLine(ev);
    match ev {
        HealthEvent::Changed { check, from, to } => {
            tracing::info!(check = %check, from = %from, to = %to, "{line}");
        }
        HealthEvent::Flapping {
            check,
            flapping: true,
        } => tracing::warn!(check = %check, flapping = true, "{line}"),
        HealthEvent::Flapping {
            check,
            flapping: false,
        } => tracing::info!(check = %check, flapping = false, "{line}"),
    }
}

/// Logs a health report that differs from the previous one (debug level), with the
/// fields `healthy`, `status` and `last_error` (empty when healthy).
pub fn log_report(h: &ComponentHealth) {
    tracing::debug!(
        healthy = h.healthy,
        status = %h.status,
        last_error = %h.last_error,
        "health reported"
    );
}

/// Nanoseconds since the Unix epoch.
pub fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The report without its `status_time_unix_nano` fields, to tell whether anything but
/// the clock changed.
pub fn without_times(h: &ComponentHealth) -> ComponentHealth {
    let mut h = h.clone();
    h.status_time_unix_nano = 0;
    for c in h.component_health_map.values_mut() {
        *c = without_times(c);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tcp_and_command_probes() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let ok = probe(
            CheckKind::Tcp {
                address: addr.clone(),
            },
            Duration::from_secs(10),
        )
        .await;
        assert_eq!(ok, Outcome::Success);
        // A port bound but not listening refuses connections, and stays ours while the test
        // runs (a dropped listener's port could be taken by a test running in parallel).
        let closed = tokio::net::TcpSocket::new_v4().unwrap();
        closed.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = closed.local_addr().unwrap().to_string();
        let bad = probe(CheckKind::Tcp { address: addr }, Duration::from_secs(10)).await;
        assert!(matches!(bad, Outcome::Failure(_)), "{bad:?}");
        let ok = probe(
            CheckKind::Command {
                command: "/bin/true".into(),
                args: vec![],
            },
            Duration::from_secs(10),
        )
        .await;
        assert_eq!(ok, Outcome::Success);
        let bad = probe(
            CheckKind::Command {
                command: "/bin/sh".into(),
                args: vec!["-c".into(), "exit 4".into()],
            },
            Duration::from_secs(10),
        )
        .await;
        assert_eq!(bad, Outcome::failure("/bin/sh: exited with status 4"));
    }

    #[tokio::test]
    async fn http_probe_expects_the_status_hlth_4() {
        let app = axum::Router::new()
            .route("/ok", axum::routing::get(|| async { "ok" }))
            .route(
                "/down",
                axum::routing::get(|| async {
                    (axum::http::StatusCode::SERVICE_UNAVAILABLE, "down")
                }),
            );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(l, app).await;
        });
        let check = |path: &str, expect_status: u16| CheckKind::Http {
            url: format!("http://{addr}{path}"),
            expect_status,
        };
        let t = Duration::from_secs(20);
        assert_eq!(probe(check("/ok", 200), t).await, Outcome::Success);
        assert_eq!(probe(check("/down", 503), t).await, Outcome::Success);
        let out = probe(check("/down", 200), t).await;
        assert_eq!(
            out,
            Outcome::failure(format!("GET http://{addr}/down: status 503 (expected 200)"))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn slow_probe_times_out_hlth_4() {
        let out = probe(
            CheckKind::Command {
                command: "/bin/sleep".into(),
                args: vec!["30".into()],
            },
            Duration::from_secs(1),
        )
        .await;
        assert_eq!(out, Outcome::timed_out(Duration::from_secs(1)));
    }

    #[test]
    fn health_events_read_as_sentences_with_lower_case_states() {
        use opamp_health::Status;
        let changed = HealthEvent::Changed {
            check: "process".into(),
            from: Status::Degraded,
            to: Status::Healthy,
        };
        assert_eq!(
            EventLine(&changed).to_string(),
            r#"health check "process": degraded → healthy"#
        );
        let down = HealthEvent::Changed {
            check: "http".into(),
            from: Status::Healthy,
            to: Status::Unhealthy,
        };
        assert_eq!(
            EventLine(&down).to_string(),
            r#"health check "http": healthy → unhealthy"#
        );
        let flap = |flapping| HealthEvent::Flapping {
            check: "tcp".into(),
            flapping,
        };
        assert_eq!(
            EventLine(&flap(true)).to_string(),
            r#"health check "tcp" is flapping"#
        );
        assert_eq!(
            EventLine(&flap(false)).to_string(),
            r#"health check "tcp" is stable again"#
        );
        // A name with a newline cannot start a second log line.
        let odd = HealthEvent::Flapping {
            check: "a\nb".into(),
            flapping: true,
        };
        assert!(!EventLine(&odd).to_string().contains('\n'));
    }

    #[test]
    fn a_process_that_is_down_makes_the_report_unhealthy_hlth_4() {
        let checks = ComponentHealth {
            healthy: true,
            status: "healthy".into(),
            start_time_unix_nano: 5,
            ..Default::default()
        };
        let r = report(
            checks.clone(),
            &ProcessView::Down {
                reason: "process exited with status 1".into(),
                restarting: true,
            },
            SystemTime::UNIX_EPOCH,
        );
        assert!(!r.healthy);
        assert_eq!(r.status, "restarting");
        assert_eq!(r.last_error, "process exited with status 1");
        assert_eq!(r.start_time_unix_nano, 0, "HLTH-3: 0 when not running");
        let r = report(
            checks,
            &ProcessView::Running(SystemTime::UNIX_EPOCH),
            SystemTime::UNIX_EPOCH,
        );
        assert!(r.healthy);
        assert_eq!(r.status, "running");
    }
}
