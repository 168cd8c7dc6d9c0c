//! Sync state: how an agent's reported remote config compares with the config the server
//! wants it to run.
//!
//! With `D` the desired config hash (see [`crate::desired`]) and the agent's last
//! `RemoteConfigStatus` being `(status, H, error)`:
//!
//! | state | exactly when |
//! |---|---|
//! | `unmanaged` | there is no `D`: no assignment matches, or the agent lacks `AcceptsRemoteConfig` |
//! | `in_sync` | `status = APPLIED` and `H = D` |
//! | `failed` | `status = FAILED` and `H = D` (the agent's `error_message` is shown) |
//! | `drifted` | `status = APPLIED`, `H ≠ D`, and the agent has **answered** an offer of `D`: it sent a `RemoteConfigStatus` in a message received after the server offered `D` to it, and still reports another config as applied |
//! | `pending` | every other case: `D` not offered yet, offered but not answered yet, or answered with `APPLYING`/`UNSET`, or `FAILED` for an older hash |
//!
//! "Offered" is tracked by the replica that sent the offer, in memory: after a restart an
//! agent that reports `APPLIED` for another hash is `pending` until the server offers it `D`
//! and it answers (which takes one round trip over WebSocket, one poll over HTTP). The
//! effective config an agent reports is shown but does not change the state (agents may
//! legitimately merge a remote config with local files, so its hash need not equal `D`).

use opamp_config::ConfigHash;
use opamp_store::{RemoteConfigState, RemoteConfigStatus};
use serde::{Deserialize, Serialize};

/// An agent's sync state (see the module docs for the exact rules).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SyncState {
    /// Runs the desired config.
    InSync,
    /// The desired config is on its way or being applied.
    Pending,
    /// The agent failed to apply the desired config.
    Failed,
    /// The agent answered the offer of the desired config and still runs another one.
    Drifted,
    /// No desired config.
    Unmanaged,
}

impl SyncState {
    /// Every state, in display order.
    pub const ALL: [SyncState; 5] = [
        SyncState::InSync,
        SyncState::Pending,
        SyncState::Failed,
        SyncState::Drifted,
        SyncState::Unmanaged,
    ];

    /// `"in_sync"`, `"pending"`, `"failed"`, `"drifted"` or `"unmanaged"`.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncState::InSync => "in_sync",
            SyncState::Pending => "pending",
            SyncState::Failed => "failed",
            SyncState::Drifted => "drifted",
            SyncState::Unmanaged => "unmanaged",
        }
    }

    /// Parses the name [`SyncState::as_str`] gives.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl std::fmt::Display for SyncState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Computes the sync state. `answered_offer` is true when the agent sent a
/// `RemoteConfigStatus` after being offered `desired`.
pub fn sync_state(
    desired: Option<&ConfigHash>,
    reported: Option<&RemoteConfigStatus>,
    answered_offer: bool,
) -> SyncState {
    let Some(desired) = desired else {
        return SyncState::Unmanaged;
    };
    let Some(reported) = reported else {
        return SyncState::Pending;
    };
    let matches = reported.last_remote_config_hash.as_slice() == desired.0.as_slice();
    match (reported.status, matches) {
        (RemoteConfigState::Applied, true) => SyncState::InSync,
        (RemoteConfigState::Failed, true) => SyncState::Failed,
        (RemoteConfigState::Applied, false) if answered_offer => SyncState::Drifted,
        _ => SyncState::Pending,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(s: RemoteConfigState, h: &ConfigHash) -> RemoteConfigStatus {
        RemoteConfigStatus {
            status: s,
            last_remote_config_hash: h.to_vec(),
            error_message: String::new(),
        }
    }

    #[test]
    fn the_table_in_the_module_docs() {
        let d = ConfigHash([1; 32]);
        let other = ConfigHash([2; 32]);
        use RemoteConfigState::*;
        assert_eq!(sync_state(None, None, false), SyncState::Unmanaged);
        assert_eq!(
            sync_state(None, Some(&status(Applied, &d)), true),
            SyncState::Unmanaged
        );
        assert_eq!(sync_state(Some(&d), None, false), SyncState::Pending);
        assert_eq!(
            sync_state(Some(&d), Some(&status(Applied, &d)), false),
            SyncState::InSync
        );
        assert_eq!(
            sync_state(Some(&d), Some(&status(Failed, &d)), false),
            SyncState::Failed
        );
        assert_eq!(
            sync_state(Some(&d), Some(&status(Applying, &d)), true),
            SyncState::Pending
        );
        assert_eq!(
            sync_state(Some(&d), Some(&status(Applied, &other)), false),
            SyncState::Pending
        );
        assert_eq!(
            sync_state(Some(&d), Some(&status(Applied, &other)), true),
            SyncState::Drifted
        );
        assert_eq!(
            sync_state(Some(&d), Some(&status(Failed, &other)), true),
            SyncState::Pending
        );
        for s in SyncState::ALL {
            assert_eq!(SyncState::parse(s.as_str()), Some(s));
        }
    }
}
