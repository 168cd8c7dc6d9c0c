//! Write-behind of agent status reports: the handler queues one `AgentUpdate` per changed
//! message and returns at once; a task writes them in batches, one transaction each
//! (`Store::upsert_agents`), merging several reports of one agent into one row write.
//!
//! Why: a config pushed to 10,000 agents comes back as 10,000 APPLIED reports within a
//! second; one transaction per report would take seconds (see opamp-store's NOTES), a
//! batch of hundreds takes milliseconds. The cost is a short delay (the flush interval,
//! 50 ms by default) before the admin API sees a report.
//!
//! A batch that fails is kept and retried with the next one (newer reports of the same
//! agent win); [`StatusWriter::flush`] writes everything queued so far (on shutdown).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use opamp_proto::InstanceUid;
use opamp_store::AgentUpdate;
use tokio::sync::{mpsc, oneshot};

use crate::metrics::FleetMetrics;

enum Item {
    Update(Box<AgentUpdate>),
    Flush(oneshot::Sender<()>),
}

/// The queue end held by the handler.
#[derive(Debug, Clone)]
pub(crate) struct StatusWriter {
    tx: mpsc::Sender<Item>,
}

impl std::fmt::Debug for Item {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Item::Update(u) => write!(f, "Update({})", u.instance_uid),
            Item::Flush(_) => f.write_str("Flush"),
        }
    }
}

/// Later fields win; `last_seen` only moves forward.
pub(crate) fn merge(into: &mut AgentUpdate, later: AgentUpdate) {
    into.seen_at = into.seen_at.max(later.seen_at);
    macro_rules! take {
        ($($f:ident),*) => { $( if later.$f.is_some() { into.$f = later.$f; } )* };
    }
    take!(
        description,
        capabilities,
        health,
        effective_config,
        remote_config_status,
        package_statuses,
        custom_capabilities,
        available_components,
        transport
    );
}

impl StatusWriter {
    /// Starts the writing task.
    pub(crate) fn spawn(
        store: Arc<dyn opamp_store::Store>,
        metrics: Arc<FleetMetrics>,
        every: Duration,
        max_batch: usize,
    ) -> Self {
        let (tx, mut rx) = mpsc::channel::<Item>(65_536);
        tokio::spawn(async move {
            let mut pending: HashMap<InstanceUid, AgentUpdate> = HashMap::new();
            let mut order: Vec<InstanceUid> = Vec::new();
            let mut waiters: Vec<oneshot::Sender<()>> = Vec::new();
            loop {
                // Wait for the first item, then gather for up to `every`.
                let Some(first) = rx.recv().await else { break };
                let deadline = tokio::time::Instant::now() + every;
                let mut next = Some(first);
                loop {
                    match next.take() {
                        Some(Item::Update(u)) => {
                            let u = *u;
                            match pending.get_mut(&u.instance_uid) {
                                Some(p) => merge(p, u),
                                None => {
                                    order.push(u.instance_uid);
                                    pending.insert(u.instance_uid, u);
                                }
                            }
                        }
                        Some(Item::Flush(done)) => {
                            waiters.push(done);
                            break;
                        }
                        None => {}
                    }
                    if pending.len() >= max_batch {
                        break;
                    }
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(item)) => next = Some(item),
                        Ok(None) | Err(_) => break,
                    }
                }
                if !pending.is_empty() {
                    let batch: Vec<AgentUpdate> = order
                        .iter()
                        .filter_map(|uid| pending.get(uid).cloned())
                        .collect();
                    let start = Instant::now();
                    let r = store.upsert_agents(batch).await;
                    metrics.store_op("upsert_agents", start.elapsed(), r.is_ok());
                    match r {
                        Ok(_) => {
                            pending.clear();
                            order.clear();
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, agents = pending.len(), "could not store agent status reports; retrying with the next batch");
                        }
                    }
                }
                for w in waiters.drain(..) {
                    let _ = w.send(());
                }
            }
        });
        Self { tx }
    }

    /// Queues one agent's changed state (waits only when 65,536 reports are queued).
    pub(crate) async fn write(&self, update: AgentUpdate) {
        if self.tx.send(Item::Update(Box::new(update))).await.is_err() {
            tracing::warn!("status writer stopped: report dropped");
        }
    }

    /// Writes everything queued so far.
    pub(crate) async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Item::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opamp_store::{RemoteConfigState, RemoteConfigStatus, Timestamp};

    #[test]
    fn later_reports_win_and_last_seen_only_moves_forward() {
        let uid = InstanceUid::from_array([1; 16]);
        let mut a = AgentUpdate::new(uid, Timestamp(10));
        a.health = Some(serde_json::json!({"healthy": true}));
        a.remote_config_status = Some(RemoteConfigStatus {
            status: RemoteConfigState::Applying,
            ..Default::default()
        });
        let mut b = AgentUpdate::new(uid, Timestamp(5));
        b.remote_config_status = Some(RemoteConfigStatus {
            status: RemoteConfigState::Applied,
            ..Default::default()
        });
        merge(&mut a, b);
        assert_eq!(a.seen_at, Timestamp(10));
        assert_eq!(a.health, Some(serde_json::json!({"healthy": true})));
        assert_eq!(
            a.remote_config_status.map(|s| s.status),
            Some(RemoteConfigState::Applied)
        );
    }
}
