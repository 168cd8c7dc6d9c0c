//! The `opamp_server::Handler` of the fleet: persists what agents report, answers with
//! their desired config and pending commands.
//!
//! Per message:
//! 1. Compare each sub-message with what was last written for the agent (a 64-bit hash of
//!    its encoding); collect only the changed ones into one `AgentUpdate`.
//! 2. A message that changes nothing (a heartbeat) only records the time for the batched
//!    last-seen write: no store round trip.
//! 3. An agent that just attached (connect, reconnect, first poll after being away) is
//!    marked connected, gets a `connected` timeline event, and any queued commands.
//! 4. The reply carries the desired remote config while the agent reports another hash;
//!    the session's rules then decide whether it actually goes out (RCFG-4, RCFG-5).
//!
//! Architecture invariant: the store is written only with data that changed, and never
//! while holding the fleet's state lock.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use opamp_proto::AgentCapabilities;
use opamp_proto::prost::Message;
use opamp_proto::v1::{AgentToServer, ServerToAgent};
use opamp_server::{AgentContext, Disconnected, Handler};
use opamp_store::{AgentUpdate, BackendKind, RemoteConfigState, Timestamp, Transport};

use crate::convert;
use crate::fleet::{Fleet, FleetEvent, mark_offered, recompute_agent};

/// The fleet's OpAMP handler. Build it with [`Fleet::handler`].
#[derive(Clone, Debug)]
pub struct FleetHandler {
    pub(crate) fleet: Fleet,
}

fn hash_of<M: Message>(m: &M) -> u64 {
    let mut h = DefaultHasher::new();
    m.encode_to_vec().hash(&mut h);
    h.finish()
}

fn transport_of(ctx: &AgentContext) -> Transport {
    match ctx.transport() {
        opamp_server::Transport::WebSocket => Transport::WebSocket,
        _ => Transport::Http,
    }
}

/// What one message requires, decided under the state lock.
struct Plan {
    update: AgentUpdate,
    offer: Option<opamp_proto::v1::AgentRemoteConfig>,
    take_commands: bool,
    changed: Vec<&'static str>,
}

impl FleetHandler {
    /// The fleet behind this handler.
    pub fn fleet(&self) -> &Fleet {
        &self.fleet
    }

    fn absorb(&self, ctx: &AgentContext, msg: &AgentToServer, now: Timestamp) -> Plan {
        let uid = ctx.instance_uid;
        let mut update = AgentUpdate::new(uid, now);
        let mut changed = Vec::new();
        let mut st = self.fleet.lock();
        let entry = st.agents.entry(uid).or_default();
        if ctx.attached {
            entry.connected = true;
            entry.transport = Some(transport_of(ctx));
        }
        let mut relabel = false;
        let caps = msg.agent_capabilities();
        if entry.capabilities != Some(caps) {
            entry.capabilities = Some(caps);
            update.capabilities = Some(caps);
            changed.push("capabilities");
            relabel = true;
        }
        if let Some(d) = msg.agent_description.as_ref() {
            let h = hash_of(d);
            if entry.sub.description != Some(h) {
                entry.sub.description = Some(h);
                let desc = convert::description(d);
                if desc != entry.description {
                    entry.description = desc.clone();
                    relabel = true;
                }
                update.description = Some(desc);
                changed.push("description");
            }
        }
        if let Some(hl) = msg.health.as_ref() {
            let h = hash_of(hl);
            if entry.sub.health != Some(h) {
                entry.sub.health = Some(h);
                update.health = Some(convert::health(hl));
                changed.push("health");
            }
        }
        if let Some(ec) = msg.effective_config.as_ref() {
            let h = hash_of(ec);
            if entry.sub.effective_config != Some(h) {
                entry.sub.effective_config = Some(h);
                update.effective_config = Some(convert::effective_config(ec));
                changed.push("effective_config");
            }
        }
        if let Some(ps) = msg.package_statuses.as_ref() {
            let h = hash_of(ps);
            if entry.sub.package_statuses != Some(h) {
                entry.sub.package_statuses = Some(h);
                update.package_statuses = Some(convert::package_statuses(ps));
                changed.push("package_statuses");
            }
        }
        if let Some(cc) = msg.custom_capabilities.as_ref() {
            let h = hash_of(cc);
            if entry.sub.custom_capabilities != Some(h) {
                entry.sub.custom_capabilities = Some(h);
                update.custom_capabilities = Some(cc.capabilities.clone());
                changed.push("custom_capabilities");
            }
        }
        if let Some(ac) = msg.available_components.as_ref() {
            let h = hash_of(ac);
            if entry.sub.available_components != Some(h) {
                entry.sub.available_components = Some(h);
                update.available_components = Some(convert::available_components(ac));
                changed.push("available_components");
            }
        }
        let mut applied_after: Option<std::time::Duration> = None;
        if let Some(rcs) = msg.remote_config_status.as_ref() {
            let status = convert::remote_config_status(rcs);
            // Any status after an offer answers it (see crate::sync).
            if entry.offered.is_some() {
                entry.answered = true;
            }
            if let (Some((offered, at)), RemoteConfigState::Applied) =
                (entry.offered.as_ref(), status.status)
                && offered.0.as_slice() == status.last_remote_config_hash.as_slice()
                && entry.reported.as_ref() != Some(&status)
            {
                applied_after = Some(at.elapsed());
            }
            if entry.reported.as_ref() != Some(&status) {
                entry.reported = Some(status.clone());
                update.remote_config_status = Some(status);
                changed.push("remote_config_status");
            }
        }
        if relabel {
            entry.relabel();
        }
        let take_commands = (ctx.attached || std::mem::take(&mut entry.commands_pending))
            && caps.contains(AgentCapabilities::ACCEPTS_RESTART_COMMAND);
        if relabel {
            // Labels or capabilities changed: the desired config may have too. The reply
            // below carries it, so nothing is pushed separately.
            let _ = recompute_agent(&mut st, uid);
        }
        let mut offer = None;
        let mut clear_stale = false;
        if let Some(entry) = st.agents.get_mut(&uid) {
            // A reattached agent may still carry, in the session, a desired config from
            // before it went away that no assignment gives it any more.
            clear_stale = ctx.attached && entry.desired.is_none();
        }
        if let Some(entry) = st.agents.get_mut(&uid)
            && entry.accepts_remote_config()
            && let Some(d) = entry.desired.clone()
        {
            let runs_it = entry
                .reported
                .as_ref()
                .is_some_and(|r| r.last_remote_config_hash.as_slice() == d.hash.0.as_slice());
            if !runs_it {
                offer = Some(d.remote.clone());
                mark_offered(entry, d.hash);
            }
        }
        drop(st);
        if clear_stale && let Some(server) = self.fleet.server() {
            let _ = server.set_remote_config(uid, None);
        }
        if let Some(latency) = applied_after {
            self.fleet.inner.metrics.push_to_applied.observe(latency);
        }
        Plan {
            update,
            offer,
            take_commands,
            changed,
        }
    }
}

impl Handler for FleetHandler {
    async fn on_message(&self, ctx: &AgentContext, msg: &AgentToServer) -> ServerToAgent {
        let fleet = &self.fleet;
        let store = fleet.store();
        let uid = ctx.instance_uid;
        let now = Timestamp::now();
        if ctx.attached
            && msg.remote_config_status.is_none()
            && store.backend() == BackendKind::Postgres
        {
            // What the agent last reported may have been written by another replica (an
            // HTTP agent behind a load balancer): refresh it, so an agent that already runs
            // its desired config is not offered it again (RCFG-5), and its labels are known
            // although it described itself to another replica. (With SQLite this process
            // is the only writer and its memory is complete: no read needed.)
            if let Ok(stored) = fleet.timed("get_agent", store.get_agent(uid)).await {
                let mut st = fleet.lock();
                let entry = st.agents.entry(uid).or_default();
                entry.reported = stored.remote_config_status.clone();
                if entry.sub.description.is_none() {
                    // Not described to this replica yet: start from the stored description.
                    entry.description = stored.description.clone();
                }
                if entry.capabilities.is_none() {
                    entry.capabilities = Some(stored.capabilities);
                }
                entry.operator_labels = stored.labels.clone();
                entry.relabel();
                let _ = recompute_agent(&mut st, uid);
            }
        }
        let plan = self.absorb(ctx, msg, now);

        if plan.update.is_heartbeat() {
            fleet.touch(uid, now);
        } else {
            // Written behind, in batches (see crate::writer).
            fleet.inner.writer.write(plan.update).await;
            fleet.emit(FleetEvent::agent(
                "agent_updated",
                &uid,
                serde_json::json!({ "changed": plan.changed }),
            ));
        }
        if ctx.attached {
            let transport = transport_of(ctx);
            let r = fleet
                .timed(
                    "set_connected",
                    store.set_connected(uid, transport, &fleet.options().server_id, now),
                )
                .await;
            match r {
                Ok(()) => {
                    tracing::info!(%uid, transport = %transport, "agent connected");
                    fleet.emit(FleetEvent::agent(
                        "agent_connected",
                        &uid,
                        serde_json::json!({ "transport": transport }),
                    ));
                }
                Err(e) => tracing::warn!(%uid, error = %e, "could not mark agent connected"),
            }
        }
        let mut reply = ServerToAgent {
            remote_config: plan.offer,
            ..Default::default()
        };
        if msg
            .agent_capabilities()
            .contains(AgentCapabilities::REPORTS_OWN_METRICS)
            && let Some(offer) = fleet.options().own_telemetry_offer()
        {
            // OWN-1: the own-telemetry destination goes in the first reply to an agent (here:
            // each time it attaches, as this replica cannot know what another one sent), and
            // not again while it stays the same. CSS-2: an agent reporting the hash of other
            // settings gets the current ones again.
            let stale = msg
                .connection_settings_status
                .as_ref()
                .is_some_and(|s| s.last_connection_settings_hash != offer.hash);
            if ctx.attached || stale {
                reply.connection_settings = Some(offer);
            }
        }
        if plan.take_commands {
            match fleet
                .timed("take_pending_commands", store.take_pending_commands(uid))
                .await
            {
                Ok(commands) => {
                    // One command per reply (CMD-2 isolates it); later ones wait for the
                    // next message.
                    let mut commands = commands.into_iter();
                    if let Some(c) = commands.next() {
                        reply.command =
                            crate::fleet::command_message(c.command).and_then(|m| m.command);
                    }
                    if commands.next().is_some()
                        && let Some(e) = fleet.lock().agents.get_mut(&uid)
                    {
                        e.commands_pending = true;
                    }
                }
                Err(e) => tracing::warn!(%uid, error = %e, "could not take pending commands"),
            }
        }
        reply
    }

    async fn on_disconnect(&self, event: &Disconnected) {
        let fleet = &self.fleet;
        let uid = event.instance_uid;
        if event.reason == opamp_server::DisconnectReason::Replaced {
            // The same agent moved to a new connection of this server: still connected.
            return;
        }
        if let Some(e) = fleet.lock().agents.get_mut(&uid) {
            e.connected = false;
        }
        let r = fleet
            .timed(
                "set_disconnected",
                fleet.store().set_disconnected(uid, Timestamp::now()),
            )
            .await;
        match r {
            Ok(()) => {
                tracing::info!(%uid, reason = ?event.reason, "agent disconnected");
                fleet.emit(FleetEvent::agent(
                    "agent_disconnected",
                    &uid,
                    serde_json::json!({ "reason": format!("{:?}", event.reason) }),
                ));
            }
            Err(e) => tracing::warn!(%uid, error = %e, "could not mark agent disconnected"),
        }
    }
}
