//! Agents we did not write against our server: `@elastic/opamp-client-node` and the Python
//! `opentelemetry-opamp-client`, both HTTP-only, each driven by a script in `interop/`,
//! against the `opamp-server` library serving on 127.0.0.1:0 in this process.
//!
//! The driver scripts report any failed request as an event, and the harness fails the test
//! on it: the Node client refuses a reply that is not status 200 with `Content-Type:
//! application/x-protobuf` exactly (HTTP-14) and ignores one whose `instance_uid` is not its
//! own (MSG-5); the Python client raises on any non-2xx status. Both scripts also report the
//! status and content type of every response, and the tests check them.

#![allow(clippy::unwrap_used)] // tests and their support module may unwrap

mod support;

use opamp_interop::{PeerProcess, peers_or_skip, to_hex};
use opamp_proto::v1::{RemoteConfigStatuses, ServerToAgent};
use opamp_proto::{AgentCapabilities, ServerToAgentFlags};
use opamp_server::{Delivery, DisconnectReason, Transport};
use serde_json::Value;
use support::{OurServer, Record, attr, remote_config, uid_from_hex};

const CONFIG_BODY: &str = r#"{"log_level":"debug","sampling":0.25}"#;

/// Reads the `started` line and the first successful exchange; returns the agent's uid (hex).
async fn connected(agent: &mut PeerProcess) -> String {
    let started = agent
        .wait_for("the started line", |e| e["event"] == "started")
        .await;
    let uid = started["instance_uid"].as_str().unwrap().to_owned();
    agent
        .wait_for("the first exchange", |e| e["event"] == "exchange")
        .await;
    uid
}

/// Waits until the agent has completed an exchange with `seq >= min_seq`.
async fn exchange_at_least(agent: &mut PeerProcess, min_seq: u64) -> Value {
    agent
        .wait_for(&format!("an exchange with seq >= {min_seq}"), |e| {
            e["event"] == "exchange" && e["seq"].as_u64().unwrap() >= min_seq
        })
        .await
}

/// Every exchange the agent reported so far.
fn exchanges(agent: &PeerProcess) -> Vec<Value> {
    agent
        .seen()
        .iter()
        .filter(|e| e["event"] == "exchange")
        .cloned()
        .collect()
}

/// Every reply the agent got: status 200 with `Content-Type: application/x-protobuf`
/// exactly (HTTP-14, read from the peer's HTTP library), carrying the agent's own uid (MSG-5).
fn assert_every_reply_is_spec_exact(agent: &PeerProcess, uid_hex: &str) {
    let all = exchanges(agent);
    assert!(!all.is_empty());
    for e in all {
        assert_eq!(e["http_status"], 200, "HTTP-14 violated in {e}");
        assert_eq!(
            e["content_type"], "application/x-protobuf",
            "HTTP-14 violated in {e}"
        );
        assert_eq!(e["s2a_instance_uid"], uid_hex, "MSG-5 violated in {e}");
    }
}

fn asks_full_state(exchange: &Value) -> bool {
    exchange["flags"].as_u64().unwrap() & ServerToAgentFlags::REPORT_FULL_STATE.bits() != 0
}

/// From `from_seq` on (the APPLIED report), polls get the config no more (RCFG-5), and the
/// server settles: three polls in a row without ReportFullState, after at most
/// `max_full_state` requests (SEQ-13: no loop). Node never skips a sequence number, so it
/// gets none; Python may repeat one when a heartbeat races the status report, and then
/// gets asked once.
async fn assert_quiet_after(agent: &mut PeerProcess, from_seq: u64, max_full_state: usize) {
    let mut quiet = 0;
    while quiet < 3 {
        let e = exchange_at_least(agent, from_seq).await;
        quiet = if asks_full_state(&e) { 0 } else { quiet + 1 };
    }
    let after: Vec<Value> = exchanges(agent)
        .into_iter()
        .filter(|e| e["seq"].as_u64().unwrap() >= from_seq)
        .collect();
    for e in &after {
        assert!(
            e["remote_config_hash"].is_null(),
            "RCFG-5: config resent after APPLIED in {e}"
        );
    }
    let asked = after.iter().filter(|e| asks_full_state(e)).count();
    assert!(
        asked <= max_full_state,
        "SEQ-13: {asked} ReportFullState requests after APPLIED: {after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_agent_connects_describes_and_applies_pushed_config_http_14_msg_5_rcfg_3() {
    let peers = peers_or_skip!("node_agent_connects_describes_and_applies_pushed_config");
    let mut server = OurServer::start().await;
    let mut agent = peers.node_agent(&server.http_url(), &[]);
    let uid_hex = connected(&mut agent).await;
    let uid = uid_from_hex(&uid_hex);

    // What the server saw first: the agent's own uid, sequence 1, its description.
    let (ctx, first) = server.wait_message("the first message", |_, _| true).await;
    assert_eq!(ctx.instance_uid, uid);
    assert_eq!(ctx.transport(), Transport::Http);
    assert!(ctx.first_contact);
    assert_eq!(first.sequence_num, 1, "the Node client starts at 1 (SEQ-6)");
    assert!(
        ctx.capabilities.contains(
            AgentCapabilities::REPORTS_STATUS
                | AgentCapabilities::ACCEPTS_REMOTE_CONFIG
                | AgentCapabilities::REPORTS_REMOTE_CONFIG
                | AgentCapabilities::REPORTS_HEARTBEAT
        ),
        "capabilities {:?}",
        ctx.capabilities
    );
    let desc = first
        .agent_description
        .as_ref()
        .expect("the first message describes the agent");
    assert_eq!(
        attr(&desc.identifying_attributes, "service.name").as_deref(),
        Some("interop-node-agent")
    );
    assert_eq!(
        attr(&desc.identifying_attributes, "service.version").as_deref(),
        Some("1.2.3")
    );
    assert_eq!(
        attr(&desc.non_identifying_attributes, "host.name").as_deref(),
        Some("interop-host")
    );
    // A complete first report (description and remote-config status): nothing to ask for.
    assert!(!ctx.report_full_state, "SEQ-13: full first report");

    // Push a config; over HTTP it waits for the next poll (RCFG-10, HTTP-13).
    let config = remote_config("app.json", CONFIG_BODY);
    let hash_hex = to_hex(&config.config_hash);
    let delivery = server
        .server
        .push(
            uid,
            ServerToAgent {
                remote_config: Some(config.clone()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(delivery, Delivery::Pending);

    let offered = agent
        .wait_for("the remote config", |e| e["event"] == "remote_config")
        .await;
    assert_eq!(offered["hash"], hash_hex.as_str());
    assert_eq!(offered["files"]["app.json"]["body"], CONFIG_BODY);
    assert_eq!(
        offered["files"]["app.json"]["content_type"],
        "application/json"
    );

    // RCFG-3: the agent echoes the hash with APPLIED; the server records it.
    let (_, applied) = server
        .wait_message("APPLIED with the pushed hash", |_, m| {
            m.remote_config_status.as_ref().is_some_and(|s| {
                s.status == RemoteConfigStatuses::Applied as i32
                    && s.last_remote_config_hash == config.config_hash
            })
        })
        .await;
    assert_eq!(
        server.server.agent(&uid).unwrap().reported_config_hash,
        Some(config.config_hash.clone())
    );
    assert_quiet_after(&mut agent, applied.sequence_num, 0).await;
    assert_every_reply_is_spec_exact(&agent, &uid_hex);

    // SEQ-6: the Node client counts up by one, every message; the server took them all.
    let seqs: Vec<u64> = server
        .messages()
        .iter()
        .map(|(_, m)| m.sequence_num)
        .collect();
    assert_eq!(seqs[0], 1);
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "sequence {seqs:?}"
    );

    agent.stop().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_agent_connects_describes_applies_config_and_disconnects_rcfg_4_disc_6() {
    let peers = peers_or_skip!("python_agent_connects_describes_applies_config_and_disconnects");
    let mut server = OurServer::start().await;
    let mut agent = peers.python_agent(&server.http_url(), &[]);
    let uid_hex = connected(&mut agent).await;
    let uid = uid_from_hex(&uid_hex);

    let (ctx, first) = server.wait_message("the first message", |_, _| true).await;
    assert_eq!(ctx.instance_uid, uid);
    assert_eq!(ctx.transport(), Transport::Http);
    assert_eq!(
        first.sequence_num, 0,
        "the Python client starts at 0 (SEQ-6)"
    );
    assert!(
        ctx.capabilities.contains(
            AgentCapabilities::REPORTS_STATUS
                | AgentCapabilities::ACCEPTS_REMOTE_CONFIG
                | AgentCapabilities::REPORTS_REMOTE_CONFIG
                | AgentCapabilities::REPORTS_EFFECTIVE_CONFIG
                | AgentCapabilities::REPORTS_HEARTBEAT
        ),
        "capabilities {:?}",
        ctx.capabilities
    );
    let desc = first
        .agent_description
        .as_ref()
        .expect("the first message describes the agent");
    assert_eq!(
        attr(&desc.identifying_attributes, "service.name").as_deref(),
        Some("interop-python-agent")
    );
    assert_eq!(
        attr(&desc.non_identifying_attributes, "telemetry.sdk.language").as_deref(),
        Some("python")
    );

    // The desired config goes out with the next reply, because the hash the agent reports
    // (none) differs from it (RCFG-4).
    let config = remote_config("settings.json", CONFIG_BODY);
    let hash_hex = to_hex(&config.config_hash);
    server
        .server
        .set_remote_config(uid, Some(config.clone()))
        .unwrap();
    let offered = agent
        .wait_for("the remote config", |e| e["event"] == "remote_config")
        .await;
    assert_eq!(offered["hash"], hash_hex.as_str());
    assert_eq!(offered["files"]["settings.json"]["body"], CONFIG_BODY);

    let (_, applied) = server
        .wait_message("APPLIED with the desired hash", |_, m| {
            m.remote_config_status.as_ref().is_some_and(|s| {
                s.status == RemoteConfigStatuses::Applied as i32
                    && s.last_remote_config_hash == config.config_hash
            })
        })
        .await;
    // + 1: a heartbeat built before the report was sent may carry the same number.
    assert_quiet_after(&mut agent, applied.sequence_num + 1, 1).await;
    assert_every_reply_is_spec_exact(&agent, &uid_hex);

    // Stop: the client sends agent_disconnect; the server forgets the agent (DISC-6).
    agent.stop().await;
    let (_, bye) = server
        .wait_message("agent_disconnect", |_, m| m.agent_disconnect.is_some())
        .await;
    assert_eq!(bye.instance_uid, uid.to_vec());
    let gone = server
        .wait_for("on_disconnect", |r| matches!(r, Record::Disconnected(_)))
        .await;
    let Record::Disconnected(gone) = gone else {
        unreachable!()
    };
    assert_eq!(gone.instance_uid, uid);
    assert_eq!(gone.reason, DisconnectReason::AgentDisconnect);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_agent_repeated_sequence_number_is_tolerated_seq_6_seq_13() {
    let peers = peers_or_skip!("python_agent_repeated_sequence_number_is_tolerated");
    let mut server = OurServer::start().await;
    let mut agent = peers.python_agent(&server.http_url(), &[]);
    let uid_hex = connected(&mut agent).await;

    // Let the first-contact exchange settle, then send one payload twice.
    exchange_at_least(&mut agent, 2).await;
    agent.send_line("repeat-heartbeat").await;
    agent
        .wait_for("the repeat queued", |e| e["event"] == "repeat_queued")
        .await;

    // The server saw a sequence number again (normally right after the first copy; a
    // heartbeat queued in between would come first)...
    let mut highest = None;
    let (_, repeated) = server
        .wait_message("a sequence number again", |_, m| {
            let again = highest.is_some_and(|h| m.sequence_num <= h);
            highest = highest.max(Some(m.sequence_num));
            again
        })
        .await;
    let twice = repeated.sequence_num;
    // ...and answered both copies (status 200, protobuf: the harness fails on any failed
    // request).
    exchange_at_least(&mut agent, twice + 1).await;
    assert!(
        exchanges(&agent)
            .iter()
            .filter(|e| e["seq"].as_u64() == Some(twice))
            .count()
            >= 2,
        "the agent saw both copies of seq {twice} answered"
    );

    // The server asks for the full state after the gap (SEQ-11), gets it, and is quiet
    // again: no ReportFullState loop (SEQ-13). (Up to 3 requests: the client's own races
    // may add a repeat of their own.)
    assert!(
        exchanges(&agent)
            .iter()
            .any(|e| e["seq"].as_u64().unwrap() >= twice && asks_full_state(e)),
        "SEQ-11: no ReportFullState after seq {twice} came twice"
    );
    assert_quiet_after(&mut agent, twice, 3).await;
    assert!(
        !agent.seen().iter().any(|e| e["event"] == "error_response"),
        "the server answered the repeat with an error_response"
    );
    assert_every_reply_is_spec_exact(&agent, &uid_hex);

    agent.stop().await;
    server.shutdown().await;
}
