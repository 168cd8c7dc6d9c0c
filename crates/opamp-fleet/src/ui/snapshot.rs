//! A short-lived, shared copy of every agent for the pages that need them all (overview,
//! agents list, rollout bars).
//!
//! Reading 10,000 agents from the store costs a few hundred milliseconds; the pages then
//! filter, count and sort in memory. The copy is reused while **no fleet event arrived since
//! it was read and it is younger than [`MAX_AGE`]**: an agent that connects, reports or
//! changes makes the next page read the store again, so live updates always see fresh data.
//! (What other replicas' agents report reaches this replica as no event; [`MAX_AGE`] bounds
//! how stale that can be, like the batched last-seen times.) Concurrent requests share one
//! read. The chart's sampler drops a copy older than [`MAX_AGE`] (every 30 s), so an idle UI
//! holds no agents in memory for long.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use opamp_store::Agent;

use super::UiResult;
use crate::Fleet;

/// How long a copy may be reused when no event says it changed.
pub(crate) const MAX_AGE: Duration = Duration::from_secs(2);

struct Copy {
    agents: Arc<Vec<Agent>>,
    read_at: Instant,
    generation: u64,
}

/// The shared copy and the event counter that invalidates it.
#[derive(Default)]
pub(crate) struct Snapshot {
    generation: AtomicU64,
    copy: tokio::sync::Mutex<Option<Copy>>,
}

impl Snapshot {
    /// Counts fleet events (each one invalidates the copy) until the fleet shuts down.
    pub(crate) fn watch(self: &Arc<Self>, fleet: &Fleet) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut events = fleet.subscribe_events();
        let shutdown = fleet.inner.shutdown.clone();
        let this = Arc::downgrade(self);
        rt.spawn(async move {
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    ev = events.recv() => {
                        let Some(this) = this.upgrade() else { break };
                        match ev {
                            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                                this.generation.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                        }
                    }
                }
            }
        });
    }

    /// Every agent (without effective configs): the shared copy when still valid, else a
    /// fresh read.
    pub(crate) async fn agents(&self, fleet: &Fleet) -> UiResult<Arc<Vec<Agent>>> {
        let mut copy = self.copy.lock().await;
        let generation = self.generation.load(Ordering::Relaxed);
        if let Some(c) = copy.as_ref()
            && c.generation == generation
            && c.read_at.elapsed() < MAX_AGE
        {
            return Ok(c.agents.clone());
        }
        let agents = Arc::new(scan(fleet).await?);
        *copy = Some(Copy {
            agents: agents.clone(),
            read_at: Instant::now(),
            generation,
        });
        Ok(agents)
    }

    /// Drops the copy when it is too old to be used.
    pub(crate) fn drop_stale(&self) {
        if let Ok(mut copy) = self.copy.try_lock()
            && copy
                .as_ref()
                .is_some_and(|c| c.read_at.elapsed() >= MAX_AGE)
        {
            *copy = None;
        }
    }
}

async fn scan(fleet: &Fleet) -> UiResult<Vec<Agent>> {
    Ok(fleet.all_agents().await?)
}
