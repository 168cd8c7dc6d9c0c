//! Health checks for an OpAMP agent, sans-IO: the caller runs the probes (process alive,
//! HTTP GET, TCP connect, command exit code) and feeds their outcomes in; this crate decides
//! when each check runs, turns outcomes into verdicts with failure and recovery thresholds,
//! detects flapping, aggregates to healthy / degraded / unhealthy and builds the OpAMP
//! `ComponentHealth` tree (HLTH-1..6).
//!
//! - [`CheckSpec`] / [`CheckKind`]: what to probe and how often; serde (TOML) with
//!   humantime-like durations ([`duration`]); [`CheckSpec::validate_all`].
//! - [`HealthMonitor`]: [`poll_due`](HealthMonitor::poll_due) /
//!   [`poll_timeout`](HealthMonitor::poll_timeout) schedule,
//!   [`record`](HealthMonitor::record) takes an [`Outcome`],
//!   [`status`](HealthMonitor::status) aggregates, [`poll_event`](HealthMonitor::poll_event)
//!   reports changes, [`component_health`](HealthMonitor::component_health) reports.
//!
//! Never reads a clock (time comes in as `Instant`, wall time as `SystemTime`), never
//! spawns, never does IO, never depends on an async runtime.
//!
//! ```
//! use std::time::{Duration, Instant, SystemTime};
//! use opamp_health::{CheckKind, CheckSpec, HealthEvent, HealthMonitor, Outcome, Status};
//!
//! let api = CheckSpec {
//!     failure_threshold: 2,
//!     ..CheckSpec::new("api", CheckKind::Http { url: "http://127.0.0.1:8080/healthz".into(), expect_status: 200 })
//! };
//! let t0 = Instant::now();
//! let mut monitor = HealthMonitor::new(vec![CheckSpec::new("process", CheckKind::Process), api], t0);
//! assert_eq!(monitor.status(), Status::Degraded); // starting
//!
//! // The driver loop: run whatever is due, record the outcome, sleep until poll_timeout().
//! while let Some((id, spec)) = monitor.poll_due(t0) {
//!     let outcome = match spec.kind {
//!         CheckKind::Process => Outcome::Success,
//!         _ => Outcome::failure("connection refused"),
//!     };
//!     monitor.record(id, t0, outcome);
//! }
//! assert_eq!(monitor.poll_timeout(), Some(t0 + Duration::from_secs(10)));
//! // One HTTP failure is below its threshold of 2: the HTTP check is still starting.
//! assert_eq!(monitor.status(), Status::Degraded);
//!
//! let t1 = t0 + Duration::from_secs(10);
//! let (id, _) = monitor.poll_due(t1).unwrap(); // "process" comes first (spec order)
//! monitor.record(id, t1, Outcome::Success);
//! let (id, _) = monitor.poll_due(t1).unwrap();
//! monitor.record(id, t1, Outcome::failure("connection refused"));
//! assert_eq!(monitor.status(), Status::Degraded); // http unhealthy, process fine
//! assert!(monitor.poll_event().is_some());
//!
//! let report = monitor.component_health(SystemTime::now(), Some(SystemTime::now()));
//! assert!(report.healthy); // degraded still counts as healthy at the top
//! assert_eq!(report.component_health_map["api"].status, "unhealthy");
//! assert_eq!(report.component_health_map["api"].last_error, "connection refused");
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod duration;
mod error;
mod monitor;
mod report;
mod spec;

pub use error::Error;
pub use monitor::{CheckId, CheckPhase, CheckState, HealthEvent, HealthMonitor, Outcome, Status};
pub use spec::{
    CheckKind, CheckSpec, DEFAULT_FAILURE_THRESHOLD, DEFAULT_INTERVAL, DEFAULT_RECOVERY_THRESHOLD,
    DEFAULT_TIMEOUT, FlapPolicy,
};

/// The README's example, compiled and run as a doctest.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
