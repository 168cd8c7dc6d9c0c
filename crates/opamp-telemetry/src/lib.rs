//! An OpAMP agent's own telemetry, sans-IO: the OTLP/HTTP protobuf body for the agent's own
//! metrics (OWN-3, OWN-4), the export target built from the server's `own_metrics` offer
//! (OWN-6, OWN-7, OWN-8), and parsers for the Linux `/proc` files a process sample comes
//! from. The agent reads the files, keeps the timer and does the HTTP POST.
//!
//! - [`MetricsRecorder`]: Resource from the agent description (DESC-2, DESC-4), counters and
//!   gauges, [`encode`](MetricsRecorder::encode) with a [`ProcessSample`].
//! - [`ExportTarget::from_offer`]: a checked `TelemetryConnectionSettings`.
//! - [`procfs`]: [`parse_proc_stat`], [`parse_proc_status`], [`parse_boot_time`].
//! - [`otlp`]: the hand-written OTLP metrics messages (decode what was sent in tests, or a
//!   response with [`parse_response`]).
//!
//! Never reads a clock, never does IO, never depends on an async runtime.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use opamp_proto::v1::{AgentDescription, KeyValue, TelemetryConnectionSettings};
//! use opamp_telemetry::{otlp, ExportTarget, MetricsRecorder, ProcessSample, names, parse_proc_stat};
//! use prost::Message;
//!
//! // The server offered own_metrics (OWN-6).
//! let offer = TelemetryConnectionSettings {
//!     destination_endpoint: "https://otlp.example:4318/v1/metrics".into(),
//!     ..Default::default()
//! };
//! let target = ExportTarget::from_offer(&offer).unwrap();
//!
//! // The Resource repeats the agent description (DESC-2).
//! let description = AgentDescription {
//!     identifying_attributes: vec![KeyValue::new("service.name", "collectd")],
//!     non_identifying_attributes: vec![KeyValue::new("host.name", "web-1")],
//! };
//! let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
//! let mut recorder = MetricsRecorder::from_description(&description, start);
//! recorder.add_counter_with(names::CONFIG_APPLIES, &[("outcome", "applied")], 1);
//!
//! // Every DEFAULT_INTERVAL (OWN-3): sample /proc/<pid>/stat (read by the agent) and encode.
//! let stat = parse_proc_stat("42 (collectd) S 1 42 42 0 -1 0 0 0 0 0 150 50 0 0 20 0 3 0 99 1000 10", 100).unwrap();
//! let sample = ProcessSample { cpu_time: stat.cpu_time(), threads: stat.num_threads, ..Default::default() };
//! let body = recorder.encode(start + Duration::from_secs(10), &sample);
//! let headers = target.request_headers(); // Content-Type: application/x-protobuf, then offered headers
//! assert_eq!(headers[0].1, opamp_telemetry::CONTENT_TYPE);
//!
//! let sent = otlp::ExportMetricsServiceRequest::decode(&body[..]).unwrap();
//! let metrics = &sent.resource_metrics[0].scope_metrics[0].metrics;
//! assert_eq!(metrics[0].name, "process.cpu.time");
//! assert!(metrics.iter().any(|m| m.name == names::CONFIG_APPLIES));
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::time::Duration;

use prost::Message;

mod error;
pub mod otlp;
pub mod procfs;
mod recorder;
mod target;

pub use error::Error;
pub use procfs::{ProcStat, ProcStatus, parse_boot_time, parse_proc_stat, parse_proc_status};
pub use recorder::{MetricsRecorder, Number, ProcessSample, names};
pub use target::ExportTarget;

/// How often to export own metrics unless configured otherwise: 10 s (OWN-3).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// The `Content-Type` of an OTLP/HTTP protobuf request and response.
pub const CONTENT_TYPE: &str = "application/x-protobuf";

/// Decodes an OTLP/HTTP export response body (`ExportMetricsServiceResponse`). An empty body
/// is a full success. A `partial_success` with rejected points or a message is the
/// collector's complaint, to log; it is not a reason to retry.
pub fn parse_response(body: &[u8]) -> Result<otlp::ExportMetricsServiceResponse, Error> {
    otlp::ExportMetricsServiceResponse::decode(body)
        .map_err(|e| Error::InvalidResponse(e.to_string()))
}

/// The README's example, compiled and run as a doctest.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
