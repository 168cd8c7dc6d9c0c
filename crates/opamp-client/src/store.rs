//! Persistent agent state: what must survive a restart.
//!
//! - the instance uid (UID-2: stable for the agent's lifetime; UID-6: a server-assigned uid
//!   replaces it);
//! - the last remote config (with its hash) and the last remote config status, so that the
//!   agent reports the right `last_remote_config_hash` after a restart (RCFG-3);
//! - the OpAMP connection settings: the **valid** ones in use, and a **candidate** offered
//!   by the server that is being tried, with the hash of its offer (OPC-5 step 3: the
//!   candidate survives a crash, so the flow resumes after a restart and reports APPLIED or
//!   FAILED for that offer, CSS-4).
//!
//! [`FileStateStore`] keeps one small file per item in a directory and replaces each file
//! atomically (temporary file, `fsync`, `rename`, `fsync` of the directory), so a crash
//! leaves either the old or the new content, never a partial file. [`MemoryStateStore`]
//! keeps everything in memory, for tests and for agents with ephemeral storage.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use opamp_agent_fsm::{ConnectionTarget, PendingCandidate};
use opamp_proto::prost::Message;
use opamp_proto::{InstanceUid, v1};

/// Everything a [`StateStore`] keeps.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct PersistedState {
    /// The agent's instance uid, once generated or assigned.
    pub instance_uid: Option<InstanceUid>,
    /// The last remote configuration received (its `config_hash` included).
    pub remote_config: Option<v1::AgentRemoteConfig>,
    /// The last remote configuration status the agent reported.
    pub remote_config_status: Option<v1::RemoteConfigStatus>,
    /// The OpAMP connection settings known to work (OPC-5 step 8).
    pub valid_settings: Option<ConnectionTarget>,
    /// Offered OpAMP connection settings not yet verified, with the hash of their offer
    /// (OPC-5 step 3).
    pub candidate_settings: Option<PendingCandidate>,
}

/// Why the state could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A file exists but its content is not valid.
    #[error("{path}: corrupt state file: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// Where the client keeps the state that must survive a restart.
///
/// The client calls `load` once at start and a `save_*` method each time an item changes.
/// Calls come from the client's task and should be quick (small files).
pub trait StateStore: Send + Sync + 'static {
    /// Reads everything stored so far; a fresh store returns the default (all `None`).
    fn load(&self) -> Result<PersistedState, StoreError>;
    /// Stores the instance uid (generated at first start, or assigned by the server, UID-6).
    fn save_instance_uid(&self, uid: InstanceUid) -> Result<(), StoreError>;
    /// Stores the last remote configuration received.
    fn save_remote_config(&self, config: &v1::AgentRemoteConfig) -> Result<(), StoreError>;
    /// Stores the last remote configuration status reported.
    fn save_remote_config_status(&self, status: &v1::RemoteConfigStatus) -> Result<(), StoreError>;
    /// Stores (`Some`) or clears (`None`) the candidate OpAMP connection settings, target
    /// and offer hash together.
    fn save_candidate_settings(
        &self,
        candidate: Option<&PendingCandidate>,
    ) -> Result<(), StoreError>;
    /// Stores the valid OpAMP connection settings.
    fn save_valid_settings(&self, target: &ConnectionTarget) -> Result<(), StoreError>;
}

impl<S: StateStore + ?Sized> StateStore for Arc<S> {
    fn load(&self) -> Result<PersistedState, StoreError> {
        (**self).load()
    }
    fn save_instance_uid(&self, uid: InstanceUid) -> Result<(), StoreError> {
        (**self).save_instance_uid(uid)
    }
    fn save_remote_config(&self, config: &v1::AgentRemoteConfig) -> Result<(), StoreError> {
        (**self).save_remote_config(config)
    }
    fn save_remote_config_status(&self, status: &v1::RemoteConfigStatus) -> Result<(), StoreError> {
        (**self).save_remote_config_status(status)
    }
    fn save_candidate_settings(
        &self,
        candidate: Option<&PendingCandidate>,
    ) -> Result<(), StoreError> {
        (**self).save_candidate_settings(candidate)
    }
    fn save_valid_settings(&self, target: &ConnectionTarget) -> Result<(), StoreError> {
        (**self).save_valid_settings(target)
    }
}

// ------------------------------------------------------------------------------------------
// In memory

/// A [`StateStore`] in memory. Clones share the same state, so a test can keep one clone
/// to inspect what the client stored, or hand the same store to a second client to
/// simulate a restart.
#[derive(Clone, Debug, Default)]
pub struct MemoryStateStore {
    state: Arc<Mutex<PersistedState>>,
}

impl MemoryStateStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store that starts with `state`.
    pub fn with_state(state: PersistedState) -> Self {
        Self {
            state: Arc::new(Mutex::new(state)),
        }
    }

    /// A copy of what is stored now.
    pub fn snapshot(&self) -> PersistedState {
        self.lock().clone()
    }

    fn lock(&self) -> MutexGuard<'_, PersistedState> {
        // A poisoned lock only means another thread panicked mid-update of plain data.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl StateStore for MemoryStateStore {
    fn load(&self) -> Result<PersistedState, StoreError> {
        Ok(self.snapshot())
    }
    fn save_instance_uid(&self, uid: InstanceUid) -> Result<(), StoreError> {
        self.lock().instance_uid = Some(uid);
        Ok(())
    }
    fn save_remote_config(&self, config: &v1::AgentRemoteConfig) -> Result<(), StoreError> {
        self.lock().remote_config = Some(config.clone());
        Ok(())
    }
    fn save_remote_config_status(&self, status: &v1::RemoteConfigStatus) -> Result<(), StoreError> {
        self.lock().remote_config_status = Some(status.clone());
        Ok(())
    }
    fn save_candidate_settings(
        &self,
        candidate: Option<&PendingCandidate>,
    ) -> Result<(), StoreError> {
        self.lock().candidate_settings = candidate.cloned();
        Ok(())
    }
    fn save_valid_settings(&self, target: &ConnectionTarget) -> Result<(), StoreError> {
        self.lock().valid_settings = Some(target.clone());
        Ok(())
    }
}

// ------------------------------------------------------------------------------------------
// In files

const UID_FILE: &str = "instance_uid";
const REMOTE_CONFIG_FILE: &str = "remote_config.pb";
const REMOTE_CONFIG_STATUS_FILE: &str = "remote_config_status.pb";
const VALID_FILE: &str = "opamp_settings_valid.pb";
const CANDIDATE_FILE: &str = "opamp_settings_candidate.pb";
const TMP_MARKER: &str = ".tmp.";

/// A [`StateStore`] in a directory, one file per item, each replaced atomically.
///
/// Files: `instance_uid` (the UUID as text), `remote_config.pb`,
/// `remote_config_status.pb`, `opamp_settings_valid.pb` and `opamp_settings_candidate.pb`
/// (protobuf; the candidate file holds the offer hash too, so both are replaced in one
/// atomic write). On Unix the files are created with mode `0600`: connection settings may
/// hold a private key. The directory is created on first write.
#[derive(Debug)]
pub struct FileStateStore {
    dir: PathBuf,
    counter: AtomicU64,
}

/// On-disk form of a [`ConnectionTarget`]: the wire message plus the exact heartbeat, and
/// for a candidate the hash of its offer.
#[derive(Clone, PartialEq, prost::Message)]
struct StoredTarget {
    #[prost(message, optional, tag = "1")]
    settings: Option<v1::OpAmpConnectionSettings>,
    /// Heartbeat interval in milliseconds; absent = none configured.
    #[prost(uint64, optional, tag = "2")]
    heartbeat_interval_ms: Option<u64>,
    /// Candidate only: `ConnectionSettingsOffers.hash` of its offer. Files written before
    /// this field existed read as empty.
    #[prost(bytes = "vec", tag = "3")]
    offer_hash: Vec<u8>,
}

fn target_to_stored(t: &ConnectionTarget) -> StoredTarget {
    StoredTarget {
        settings: Some(v1::OpAmpConnectionSettings {
            destination_endpoint: t.endpoint.clone(),
            headers: Some(v1::Headers {
                headers: t
                    .headers
                    .iter()
                    .map(|(k, v)| v1::Header {
                        key: k.clone(),
                        value: v.clone(),
                    })
                    .collect(),
            }),
            certificate: t.certificate.clone(),
            heartbeat_interval_seconds: t.heartbeat_interval.map_or(0, |d| d.as_secs()),
            tls: t.tls.clone(),
            proxy: None,
        }),
        heartbeat_interval_ms: t
            .heartbeat_interval
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        offer_hash: Vec::new(),
    }
}

fn candidate_to_stored(c: &PendingCandidate) -> StoredTarget {
    StoredTarget {
        offer_hash: c.offer_hash.clone(),
        ..target_to_stored(&c.target)
    }
}

fn stored_to_candidate(s: StoredTarget) -> Option<PendingCandidate> {
    let offer_hash = s.offer_hash.clone();
    stored_to_target(s).map(|target| PendingCandidate { target, offer_hash })
}

fn stored_to_target(s: StoredTarget) -> Option<ConnectionTarget> {
    let settings = s.settings?;
    let mut target = ConnectionTarget::new(settings.destination_endpoint);
    target.headers = settings
        .headers
        .map(|h| h.headers.into_iter().map(|h| (h.key, h.value)).collect())
        .unwrap_or_default();
    target.tls = settings.tls;
    target.certificate = settings.certificate;
    target.heartbeat_interval = s.heartbeat_interval_ms.map(Duration::from_millis);
    Some(target)
}

impl FileStateStore {
    /// A store in `dir` (created when first needed).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            counter: AtomicU64::new(0),
        }
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn io_err(&self, name: &str) -> impl FnOnce(io::Error) -> StoreError + '_ {
        let path = self.dir.join(name);
        move |source| StoreError::Io { path, source }
    }

    fn read(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match fs::read(self.dir.join(name)) {
            Ok(data) => Ok(Some(data)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io_err(name)(e)),
        }
    }

    fn read_message<M: Message + Default>(&self, name: &str) -> Result<Option<M>, StoreError> {
        let Some(data) = self.read(name)? else {
            return Ok(None);
        };
        M::decode(data.as_slice())
            .map(Some)
            .map_err(|e| StoreError::Corrupt {
                path: self.dir.join(name),
                reason: e.to_string(),
            })
    }

    fn write(&self, name: &str, data: &[u8]) -> Result<(), StoreError> {
        self.write_inner(name, data, false)
    }

    /// Writes `data` to `name` atomically. With `crash_before_rename` the temporary file is
    /// written and synced but never renamed, which is what a crash at that point leaves.
    fn write_inner(
        &self,
        name: &str,
        data: &[u8],
        crash_before_rename: bool,
    ) -> Result<(), StoreError> {
        let err = |source| StoreError::Io {
            path: self.dir.join(name),
            source,
        };
        fs::create_dir_all(&self.dir).map_err(err)?;
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .dir
            .join(format!(".{name}{TMP_MARKER}{}.{n}", std::process::id()));
        let result = (|| {
            let mut file = create_private(&tmp)?;
            file.write_all(data)?;
            file.sync_all()?;
            if crash_before_rename {
                return Ok(());
            }
            fs::rename(&tmp, self.dir.join(name))?;
            sync_dir(&self.dir)
        })();
        if result.is_err() && !crash_before_rename {
            let _ = fs::remove_file(&tmp);
        }
        result.map_err(err)
    }

    fn remove(&self, name: &str) -> Result<(), StoreError> {
        match fs::remove_file(self.dir.join(name)) {
            Ok(()) => sync_dir(&self.dir).map_err(self.io_err(name)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.io_err(name)(e)),
        }
    }

    /// Removes temporary files a crash may have left behind.
    fn clean_temporaries(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if name.to_string_lossy().contains(TMP_MARKER) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

fn create_private(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
    }
    Ok(())
}

impl StateStore for FileStateStore {
    fn load(&self) -> Result<PersistedState, StoreError> {
        self.clean_temporaries();
        let instance_uid = match self.read(UID_FILE)? {
            None => None,
            Some(data) => {
                let text = String::from_utf8_lossy(&data);
                Some(
                    text.trim()
                        .parse::<InstanceUid>()
                        .map_err(|e| StoreError::Corrupt {
                            path: self.dir.join(UID_FILE),
                            reason: e.to_string(),
                        })?,
                )
            }
        };
        Ok(PersistedState {
            instance_uid,
            remote_config: self.read_message(REMOTE_CONFIG_FILE)?,
            remote_config_status: self.read_message(REMOTE_CONFIG_STATUS_FILE)?,
            valid_settings: self
                .read_message::<StoredTarget>(VALID_FILE)?
                .and_then(stored_to_target),
            candidate_settings: self
                .read_message::<StoredTarget>(CANDIDATE_FILE)?
                .and_then(stored_to_candidate),
        })
    }

    fn save_instance_uid(&self, uid: InstanceUid) -> Result<(), StoreError> {
        self.write(UID_FILE, format!("{uid}\n").as_bytes())
    }

    fn save_remote_config(&self, config: &v1::AgentRemoteConfig) -> Result<(), StoreError> {
        self.write(REMOTE_CONFIG_FILE, &config.encode_to_vec())
    }

    fn save_remote_config_status(&self, status: &v1::RemoteConfigStatus) -> Result<(), StoreError> {
        self.write(REMOTE_CONFIG_STATUS_FILE, &status.encode_to_vec())
    }

    fn save_candidate_settings(
        &self,
        candidate: Option<&PendingCandidate>,
    ) -> Result<(), StoreError> {
        match candidate {
            Some(c) => self.write(CANDIDATE_FILE, &candidate_to_stored(c).encode_to_vec()),
            None => self.remove(CANDIDATE_FILE),
        }
    }

    fn save_valid_settings(&self, target: &ConnectionTarget) -> Result<(), StoreError> {
        self.write(VALID_FILE, &target_to_stored(target).encode_to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(endpoint: &str) -> ConnectionTarget {
        let mut t = ConnectionTarget::new(endpoint);
        t.headers = vec![("authorization".into(), "Bearer abc".into())];
        t.heartbeat_interval = Some(Duration::from_millis(1500));
        t.certificate = Some(v1::TlsCertificate {
            cert: b"CERT".to_vec(),
            private_key: b"KEY".to_vec(),
            ca_cert: vec![],
        });
        t.tls = Some(v1::TlsConnectionSettings {
            ca_pem_contents: "CA".into(),
            ..Default::default()
        });
        t
    }

    #[test]
    fn file_store_round_trips_everything() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStateStore::new(dir.path().join("state"));
        assert_eq!(store.load().unwrap(), PersistedState::default());
        let uid = InstanceUid::new_v7();
        store.save_instance_uid(uid).unwrap();
        let cfg = v1::AgentRemoteConfig {
            config: None,
            config_hash: vec![1, 2, 3],
        };
        store.save_remote_config(&cfg).unwrap();
        let status = v1::RemoteConfigStatus {
            last_remote_config_hash: vec![1, 2, 3],
            status: 1,
            error_message: String::new(),
        };
        store.save_remote_config_status(&status).unwrap();
        store.save_valid_settings(&target("ws://a/")).unwrap();
        let candidate = PendingCandidate::new(target("wss://b/"), b"offer-hash".to_vec());
        store.save_candidate_settings(Some(&candidate)).unwrap();

        let again = FileStateStore::new(dir.path().join("state"))
            .load()
            .unwrap();
        assert_eq!(again.instance_uid, Some(uid));
        assert_eq!(again.remote_config, Some(cfg));
        assert_eq!(again.remote_config_status, Some(status));
        assert_eq!(again.valid_settings, Some(target("ws://a/")));
        assert_eq!(again.candidate_settings, Some(candidate));

        store.save_candidate_settings(None).unwrap();
        assert_eq!(store.load().unwrap().candidate_settings, None);
        // Clearing twice is fine.
        store.save_candidate_settings(None).unwrap();
    }

    #[test]
    fn a_candidate_stored_without_an_offer_hash_reads_with_an_empty_hash_opc_5() {
        // What a version before the offer hash was stored wrote.
        let dir = tempfile::tempdir().unwrap();
        let old = target_to_stored(&target("wss://b/"));
        assert!(old.offer_hash.is_empty());
        fs::write(dir.path().join(CANDIDATE_FILE), old.encode_to_vec()).unwrap();
        let state = FileStateStore::new(dir.path()).load().unwrap();
        assert_eq!(
            state.candidate_settings,
            Some(PendingCandidate::new(target("wss://b/"), Vec::new()))
        );
    }

    #[test]
    fn a_crash_before_rename_leaves_the_old_content() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStateStore::new(dir.path());
        let old = InstanceUid::new_v7();
        store.save_instance_uid(old).unwrap();
        let new = InstanceUid::new_v7();
        store
            .write_inner(UID_FILE, format!("{new}\n").as_bytes(), true)
            .unwrap();
        // The temporary file is there, the real file is untouched.
        let names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().any(|n| n.contains(TMP_MARKER)), "{names:?}");
        let state = FileStateStore::new(dir.path()).load().unwrap();
        assert_eq!(state.instance_uid, Some(old));
        // Loading cleaned the leftovers.
        assert!(fs::read_dir(dir.path()).unwrap().all(|e| {
            !e.unwrap()
                .file_name()
                .to_string_lossy()
                .contains(TMP_MARKER)
        }));
    }

    #[test]
    fn a_truncated_state_file_is_reported_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(UID_FILE), "0123").unwrap();
        assert!(matches!(
            FileStateStore::new(dir.path()).load(),
            Err(StoreError::Corrupt { .. })
        ));
        fs::remove_file(dir.path().join(UID_FILE)).unwrap();
        fs::write(dir.path().join(VALID_FILE), [0x0a, 0xff]).unwrap();
        assert!(matches!(
            FileStateStore::new(dir.path()).load(),
            Err(StoreError::Corrupt { .. })
        ));
    }

    #[cfg(unix)]
    #[test]
    fn files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = FileStateStore::new(dir.path());
        store.save_valid_settings(&target("ws://a/")).unwrap();
        let mode = fs::metadata(dir.path().join(VALID_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0);
    }

    #[test]
    fn memory_store_clones_share_state() {
        let a = MemoryStateStore::new();
        let b = a.clone();
        let uid = InstanceUid::new_v7();
        a.save_instance_uid(uid).unwrap();
        assert_eq!(b.load().unwrap().instance_uid, Some(uid));
    }
}
