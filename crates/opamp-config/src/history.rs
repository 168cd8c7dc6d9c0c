//! A bounded, append-only history of configuration versions.
//!
//! Versions are immutable and numbered from 1. Pushing a config equal to the latest one
//! creates nothing (same hash). A rollback is a *new* version whose content equals an older
//! one, so the history always reads forward in time. When the capacity is reached the
//! oldest versions are dropped; the latest is never dropped.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::diff::{ConfigDiff, diff};
use crate::{ConfigHash, ConfigMap, Error};

/// One immutable version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigVersion {
    /// The version number, from 1, increasing by 1.
    pub version: u64,
    /// The canonical hash of `config`.
    pub hash: ConfigHash,
    /// The content.
    pub config: ConfigMap,
    /// Creation time supplied by the caller, Unix milliseconds.
    pub created_at_unix_ms: u64,
    /// A note about the change (author, reason).
    pub message: String,
    /// When this version is a rollback: the version whose content it restores.
    pub rollback_of: Option<u64>,
}

/// What [`History::push`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pushed {
    /// A new version with this number was created.
    Created(u64),
    /// The content equals the latest version (this number); nothing was created.
    Unchanged(u64),
}

impl Pushed {
    /// The version number either way.
    pub fn version(self) -> u64 {
        match self {
            Pushed::Created(v) | Pushed::Unchanged(v) => v,
        }
    }
}

/// The bounded history.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct History {
    capacity: usize,
    versions: VecDeque<ConfigVersion>,
    next_version: u64,
}

impl History {
    /// A history keeping at most `capacity` versions (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            versions: VecDeque::new(),
            next_version: 1,
        }
    }

    /// Adds a version unless its content equals the latest one.
    pub fn push(
        &mut self,
        config: ConfigMap,
        now_unix_ms: u64,
        message: impl Into<String>,
    ) -> Pushed {
        self.push_inner(config, now_unix_ms, message.into(), None)
    }

    fn push_inner(
        &mut self,
        config: ConfigMap,
        now_unix_ms: u64,
        message: String,
        rollback_of: Option<u64>,
    ) -> Pushed {
        let hash = config.hash();
        if let Some(latest) = self.versions.back() {
            if latest.hash == hash {
                return Pushed::Unchanged(latest.version);
            }
        }
        let version = self.next_version;
        self.next_version += 1;
        self.versions.push_back(ConfigVersion {
            version,
            hash,
            config,
            created_at_unix_ms: now_unix_ms,
            message,
            rollback_of,
        });
        while self.versions.len() > self.capacity {
            self.versions.pop_front();
        }
        Pushed::Created(version)
    }

    /// The latest version.
    pub fn latest(&self) -> Option<&ConfigVersion> {
        self.versions.back()
    }

    /// A version by number, if still held.
    pub fn get(&self, version: u64) -> Option<&ConfigVersion> {
        let first = self.versions.front()?.version;
        let idx = usize::try_from(version.checked_sub(first)?).ok()?;
        self.versions.get(idx)
    }

    /// The newest version with this hash, if held.
    pub fn find_hash(&self, hash: &ConfigHash) -> Option<&ConfigVersion> {
        self.versions.iter().rev().find(|v| v.hash == *hash)
    }

    /// Versions held, oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &ConfigVersion> {
        self.versions.iter()
    }

    /// Number of versions held.
    pub fn len(&self) -> usize {
        self.versions.len()
    }

    /// True when no version was ever pushed.
    pub fn is_empty(&self) -> bool {
        self.versions.is_empty()
    }

    /// Restores the content of `version` as a new version.
    pub fn rollback(&mut self, version: u64, now_unix_ms: u64) -> Result<Pushed, Error> {
        let old = self
            .get(version)
            .ok_or(Error::UnknownVersion(version))?
            .config
            .clone();
        Ok(self.push_inner(
            old,
            now_unix_ms,
            format!("rollback to version {version}"),
            Some(version),
        ))
    }

    /// The difference from version `from` to version `to`.
    pub fn diff(&self, from: u64, to: u64) -> Result<ConfigDiff, Error> {
        let a = self.get(from).ok_or(Error::UnknownVersion(from))?;
        let b = self.get(to).ok_or(Error::UnknownVersion(to))?;
        Ok(diff(&a.config, &b.config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ConfigFile;

    fn cfg(n: u32) -> ConfigMap {
        ConfigMap::single("c.yaml", ConfigFile::new("text/yaml", format!("n: {n}\n")))
    }

    #[test]
    fn versions_are_numbered_and_deduplicated() {
        let mut h = History::new(10);
        assert_eq!(h.push(cfg(1), 1, "first"), Pushed::Created(1));
        assert_eq!(h.push(cfg(1), 2, "same again"), Pushed::Unchanged(1));
        assert_eq!(h.push(cfg(2), 3, "second"), Pushed::Created(2));
        assert_eq!(h.len(), 2);
        assert_eq!(h.latest().unwrap().hash, cfg(2).hash());
        assert_eq!(h.find_hash(&cfg(1).hash()).unwrap().version, 1);
    }

    #[test]
    fn rollback_is_a_new_version() {
        let mut h = History::new(10);
        h.push(cfg(1), 1, "");
        h.push(cfg(2), 2, "");
        assert_eq!(h.rollback(1, 3).unwrap(), Pushed::Created(3));
        let v3 = h.get(3).unwrap();
        assert_eq!(v3.config, cfg(1));
        assert_eq!(v3.rollback_of, Some(1));
        assert_eq!(v3.message, "rollback to version 1");
        // Rolling back to what is already latest creates nothing.
        assert_eq!(h.rollback(1, 4).unwrap(), Pushed::Unchanged(3));
        assert!(matches!(h.rollback(99, 5), Err(Error::UnknownVersion(99))));
    }

    #[test]
    fn capacity_drops_the_oldest_never_the_latest() {
        let mut h = History::new(3);
        for n in 1..=5 {
            h.push(cfg(n), u64::from(n), "");
        }
        let numbers: Vec<u64> = h.iter().map(|v| v.version).collect();
        assert_eq!(numbers, [3, 4, 5]);
        assert!(h.get(2).is_none());
        assert!(matches!(h.rollback(1, 9), Err(Error::UnknownVersion(1))));
        let mut one = History::new(0);
        one.push(cfg(1), 1, "");
        one.push(cfg(2), 2, "");
        assert_eq!(one.len(), 1);
        assert_eq!(one.latest().unwrap().version, 2);
    }

    #[test]
    fn diff_between_versions() {
        let mut h = History::new(5);
        h.push(cfg(1), 1, "");
        h.push(cfg(2), 2, "");
        let d = h.diff(1, 2).unwrap();
        assert_eq!(d.files.len(), 1);
        assert_eq!(d.files[0].keys.len(), 1);
        assert!(h.diff(1, 7).is_err());
    }
}
