//! The fleet's background task: acts on committed store changes (from this replica and,
//! with PostgreSQL, from every other one) and writes batched last-seen times.

use opamp_store::{ChangeEvent, Subscription};

use crate::fleet::{Fleet, FleetEvent};

pub(crate) fn spawn(fleet: Fleet, mut subscription: Subscription) {
    let shutdown = fleet.inner.shutdown.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                event = subscription.recv() => match event {
                    Some(event) => handle(&fleet, event).await,
                    None => {
                        tracing::debug!("store change stream closed");
                        break;
                    }
                },
            }
        }
    });
}

async fn handle(fleet: &Fleet, event: ChangeEvent) {
    tracing::debug!(?event, "store change");
    fleet.emit(FleetEvent::change(&event));
    let result = match &event {
        ChangeEvent::LabelsChanged { instance_uid } => fleet.reload_agent(*instance_uid).await,
        ChangeEvent::AgentDeleted { instance_uid } => {
            fleet.lock().agents.remove(instance_uid);
            Ok(())
        }
        ChangeEvent::CommandQueued { instance_uid, .. } => {
            fleet.deliver_commands(*instance_uid).await;
            Ok(())
        }
        ChangeEvent::TokenRevoked { .. } => Ok(()),
        // Configs, versions, assignments, groups, resync: recompute everything.
        _ => fleet.recompute_all().await,
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, ?event, "could not act on a store change");
    }
}
