//! `agent-state.json`: what opamp-agent must remember across restarts (the instance uid
//! lives beside it, in opamp-client's `instance_uid` file).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::files::write_atomic;

/// The outcome recorded for the last remote config handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemoteOutcome {
    /// Being applied (seen at startup only after a crash mid-apply).
    Applying,
    /// Applied and healthy through the gate.
    Applied,
    /// Refused or rolled back.
    Failed,
}

/// The last remote config handled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteRecord {
    /// The server's `config_hash`, hex.
    pub hash: String,
    /// What became of it.
    pub status: RemoteOutcome,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
}

/// The last known good set of managed files (copied in `lkg/`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LkgRecord {
    /// opamp-config's canonical hash of the file set (names, content types, bodies).
    pub hash: String,
    /// The server's hash of the remote config it came from; None for the files found at
    /// first start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_hash: Option<String>,
    /// File name → content type.
    pub files: BTreeMap<String, String>,
}

/// The whole file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentState {
    /// The last remote config handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<RemoteRecord>,
    /// Managed files now in `config.dir` (written from remote configs): name → content type.
    #[serde(default)]
    pub managed: BTreeMap<String, String>,
    /// The last known good file set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lkg: Option<LkgRecord>,
}

impl AgentState {
    /// Reads the file; a missing file is the default state.
    pub fn load(path: &Path) -> Result<Self, Error> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                Error::io(
                    path,
                    std::io::Error::new(std::io::ErrorKind::InvalidData, e),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    /// Writes the file atomically.
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        let mut bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::io(path, std::io::Error::other(e)))?;
        bytes.push(b'\n');
        write_atomic(path, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_missing_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("agent-state.json");
        assert_eq!(AgentState::load(&p).unwrap(), AgentState::default());
        let s = AgentState {
            remote: Some(RemoteRecord {
                hash: "ab".into(),
                status: RemoteOutcome::Failed,
                error: "bad".into(),
            }),
            managed: [("c.conf".to_owned(), "text/plain".to_owned())].into(),
            lkg: Some(LkgRecord {
                hash: "00".into(),
                remote_hash: None,
                files: BTreeMap::new(),
            }),
        };
        s.save(&p).unwrap();
        assert_eq!(AgentState::load(&p).unwrap(), s);
        std::fs::write(&p, "{not json").unwrap();
        assert!(AgentState::load(&p).is_err());
    }
}
