//! OpAMP agent configuration, sans-IO: what a config *is*, how it is identified, compared,
//! versioned, applied and restricted. Used by the fleet server (versions, diffs, hashes it
//! offers) and by the supervisor (state machine, restrictions, last known good).
//!
//! - [`ConfigMap`] / [`ConfigFile`]: named files with content types (`AgentConfigMap`), with
//!   conversions to and from the wire types.
//! - [`ConfigHash`]: a canonical SHA-256 over a length-prefixed, name-sorted encoding, so the
//!   same files always give the same hash (RCFG-2).
//! - [`diff()`]: files added / removed / changed, per-key changes for YAML and JSON, and a line
//!   diff for display.
//! - [`ConfigStateMachine`]: NotConfigured → Configuring → Configured ⇄ Updating,
//!   ConfigurationError; mapped to `RemoteConfigStatus`.
//! - [`History`]: bounded, immutable versions; rollback creates a new version.
//! - [`Restrictions`]: a local allow list that a remote config cannot override (RCFG-12).
//!
//! No IO, no clock (times are passed in), no async.
//!
//! ```
//! use opamp_config::{ConfigFile, ConfigMap, History, diff};
//!
//! let v1 = ConfigMap::single("otel.yaml", ConfigFile::new("text/yaml", "exporters:\n  debug: {}\n"));
//! let v2 = ConfigMap::single("otel.yaml", ConfigFile::new("text/yaml", "exporters:\n  otlp: {}\n"));
//! assert!(v1.validate().is_ok());
//! let mut history = History::new(100);
//! history.push(v1.clone(), 1_700_000_000_000, "initial");
//! history.push(v2.clone(), 1_700_000_100_000, "switch exporter");
//! let d = diff(&v1, &v2);
//! assert_eq!(d.files[0].keys.len(), 2); // exporters.debug removed, exporters.otlp added
//! assert_ne!(v1.hash(), v2.hash());
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod diff;
mod error;
pub mod history;
mod model;
pub mod restrictions;
pub mod state;

pub use diff::{ConfigDiff, FileChange, FileDiff, KeyChange, diff};
pub use error::Error;
pub use history::{ConfigVersion, History, Pushed};
pub use model::{ConfigFile, ConfigHash, ConfigMap, Format};
pub use restrictions::{PathRule, Restrictions, Violation, Violations};
pub use state::{ConfigEvent, ConfigState, ConfigStateMachine};
