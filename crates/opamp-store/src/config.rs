//! Named configs and their immutable, numbered versions.

use opamp_config::{ConfigHash, ConfigMap};
use serde::{Deserialize, Serialize};

use crate::Timestamp;

/// A named config: a sequence of versions numbered from 1.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// The config's name (see [`crate::validate::name`] for the rules).
    pub name: String,
    /// Free text for operators.
    pub description: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// Who created it (an [`crate::Actor`] in its text form).
    pub created_by: String,
    /// The newest version number; 0 while the config has no version.
    pub latest_version: u64,
}

/// One immutable version of a config.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigVersion {
    /// The config's name.
    pub config: String,
    /// The version number, from 1.
    pub version: u64,
    /// The files.
    pub config_map: ConfigMap,
    /// [`ConfigMap::hash`] of the files: what the server offers as `config_hash` and what
    /// agents report back in `RemoteConfigStatus.last_remote_config_hash`.
    pub hash: ConfigHash,
    /// When it was created.
    pub created_at: Timestamp,
    /// Who created it (an [`crate::Actor`] in its text form).
    pub author: String,
    /// The author's note.
    pub message: String,
    /// When this version restores an older one: that version's number.
    pub rollback_of: Option<u64>,
}

/// A version to add with [`crate::Store::add_config_version`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewConfigVersion {
    /// The config's name; the config is created when it does not exist yet.
    pub config: String,
    /// The files.
    pub config_map: ConfigMap,
    /// The author's note.
    #[serde(default)]
    pub message: String,
    /// When this version restores an older one: that version's number (it must exist).
    #[serde(default)]
    pub rollback_of: Option<u64>,
}

/// What [`crate::Store::add_config_version`] did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddedVersion {
    /// The new version, or the latest one when it already had the same content.
    pub version: ConfigVersion,
    /// False when the files equal the latest version's: nothing was written.
    pub created: bool,
}
