//! Persistent state across restarts: instance uid, remote config and its status, and the
//! OpAMP connection settings offer flow (candidate → valid, or revert; OPC-5).

#![allow(clippy::unwrap_used)] // tests and their support module may unwrap

mod support;

use opamp_client::{
    AgentCapabilities, ClientEvent, ConnectionTarget, FileStateStore, MemoryStateStore,
    OpampClient, PendingCandidate, PersistedState, ServerCapabilities, StateStore, v1,
};
use support::{MockServer, Reply, caps, config_msg, fast, next_event};

async fn run_once(url: &str, store: impl StateStore) -> opamp_client::InstanceUid {
    let (handle, mut events) = fast(OpampClient::builder(url))
        .capabilities(caps())
        .state_store(store)
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    next_event(&mut events, "first reply", |e| {
        matches!(e, ClientEvent::ServerCapabilitiesChanged(_))
    })
    .await;
    let uid = handle.instance_uid().await;
    handle.stop().await.unwrap();
    uid
}

#[tokio::test]
async fn the_instance_uid_survives_a_restart_uid_2() {
    let dir = tempfile::tempdir().unwrap();
    let server = MockServer::start().await;
    let first = run_once(&server.ws_url(), FileStateStore::new(dir.path())).await;
    assert_eq!(first.uuid_version(), 7, "UID-3: a UUIDv7");
    let second = run_once(&server.ws_url(), FileStateStore::new(dir.path())).await;
    assert_eq!(first, second);
    server.with(|r| {
        for m in r.ws_messages() {
            assert_eq!(m.instance_uid, first.to_vec());
        }
    });
}

#[tokio::test]
async fn remote_config_assigned_uid_and_status_survive_a_restart_uid_6_rcfg_3() {
    let dir = tempfile::tempdir().unwrap();
    let server = MockServer::start().await;
    let new = opamp_client::InstanceUid::new_v7();
    let (handle, mut events) = fast(OpampClient::builder(server.http_url()))
        .capabilities(caps())
        .state_store(FileStateStore::new(dir.path()))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    server.reply([Reply::Message(v1::ServerToAgent {
        agent_identification: Some(v1::AgentIdentification {
            new_instance_uid: new.to_vec(),
        }),
        ..config_msg(b"h1", b"a: 1")
    })]);
    // The reply goes to the next request; make one.
    handle.set_health(Default::default()).await.unwrap();
    next_event(&mut events, "config", |e| {
        matches!(e, ClientEvent::RemoteConfig(_))
    })
    .await;
    let status = v1::RemoteConfigStatus {
        last_remote_config_hash: b"h1".to_vec(),
        status: v1::RemoteConfigStatuses::Applied as i32,
        error_message: String::new(),
    };
    handle
        .set_remote_config_status(status.clone())
        .await
        .unwrap();
    handle.stop().await.unwrap();

    let stored = FileStateStore::new(dir.path()).load().unwrap();
    assert_eq!(stored.instance_uid, Some(new));
    assert_eq!(stored.remote_config.unwrap().config_hash, b"h1");
    assert_eq!(stored.remote_config_status.as_ref(), Some(&status));

    // After a restart the first report carries the new uid and the last status.
    let before = server.with(|r| r.http.len());
    let uid = run_once(&server.http_url(), FileStateStore::new(dir.path())).await;
    assert_eq!(uid, new);
    server.with(|r| {
        let first = r.http[before].msg.as_ref().unwrap();
        assert_eq!(first.instance_uid, new.to_vec());
        assert_eq!(first.remote_config_status.as_ref(), Some(&status));
    });
}

fn offer(endpoint: &str) -> v1::ServerToAgent {
    v1::ServerToAgent {
        capabilities: (ServerCapabilities::ACCEPTS_STATUS
            | ServerCapabilities::OFFERS_CONNECTION_SETTINGS)
            .bits(),
        connection_settings: Some(v1::ConnectionSettingsOffers {
            hash: b"offer-1".to_vec(),
            opamp: Some(v1::OpAmpConnectionSettings {
                destination_endpoint: endpoint.to_owned(),
                headers: Some(v1::Headers {
                    headers: vec![v1::Header {
                        key: "authorization".into(),
                        value: "Bearer new".into(),
                    }],
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn offered_settings_are_tried_and_persisted_as_valid_opc_4_opc_5() {
    let old = MockServer::start().await;
    let new = MockServer::start().await;
    let store = MemoryStateStore::new();
    let (handle, mut events) = fast(OpampClient::builder(old.ws_url()))
        .capabilities(caps() | AgentCapabilities::ACCEPTS_OPAMP_CONNECTION_SETTINGS)
        .state_store(store.clone())
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    old.wait("first message", |r| !r.ws_messages().is_empty())
        .await;
    old.push(Reply::Message(offer(&new.ws_url())));
    let ev = next_event(&mut events, "candidate", |e| {
        matches!(e, ClientEvent::OpampSettingsCandidate(_))
    })
    .await;
    let ClientEvent::OpampSettingsCandidate(candidate) = ev else {
        unreachable!()
    };
    assert_eq!(candidate.endpoint, new.ws_url());
    next_event(&mut events, "accepted", |e| {
        matches!(e, ClientEvent::OpampSettingsAccepted(_))
    })
    .await;
    // The old connection said goodbye (OPC-13), the new one carries the new header.
    old.wait("goodbye on the old connection", |r| {
        r.ws_messages().iter().any(|m| m.agent_disconnect.is_some())
    })
    .await;
    new.wait("connected to the new endpoint", |r| {
        !r.ws_messages().is_empty()
    })
    .await;
    new.with(|r| assert_eq!(r.upgrades[0].0["authorization"], "Bearer new"));
    let state = store.snapshot();
    assert_eq!(state.valid_settings.unwrap().endpoint, new.ws_url());
    assert_eq!(state.candidate_settings, None);
    handle.stop().await.unwrap();
}

const APPLYING: i32 = v1::ConnectionSettingsStatuses::Applying as i32;
const APPLIED: i32 = v1::ConnectionSettingsStatuses::Applied as i32;
const FAILED: i32 = v1::ConnectionSettingsStatuses::Failed as i32;

/// Capabilities of an agent that takes OpAMP connection settings and reports their status.
fn settings_caps() -> AgentCapabilities {
    caps()
        | AgentCapabilities::ACCEPTS_OPAMP_CONNECTION_SETTINGS
        | AgentCapabilities::REPORTS_CONNECTION_SETTINGS_STATUS
}

/// `(status, hash, error_message)` of every connection settings status in `msgs`.
fn statuses(msgs: &[v1::AgentToServer]) -> Vec<(i32, Vec<u8>, String)> {
    msgs.iter()
        .filter_map(|m| m.connection_settings_status.as_ref())
        .map(|s| {
            (
                s.status,
                s.last_connection_settings_hash.clone(),
                s.error_message.clone(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_stored_candidate_is_resumed_after_a_restart_opc_5() {
    let valid = MockServer::start().await;
    let candidate = MockServer::start().await;
    // What a crash between OPC-5 steps 3 and 8 leaves on disk.
    let dir = tempfile::tempdir().unwrap();
    let before = FileStateStore::new(dir.path());
    before
        .save_valid_settings(&ConnectionTarget::new(valid.ws_url()))
        .unwrap();
    before
        .save_candidate_settings(Some(&PendingCandidate::new(
            ConnectionTarget::new(candidate.ws_url()),
            b"offer-1".to_vec(),
        )))
        .unwrap();
    // The configured endpoint is superseded by the stored settings.
    let (handle, mut events) = fast(OpampClient::builder("ws://127.0.0.1:9/v1/opamp"))
        .capabilities(settings_caps())
        .state_store(FileStateStore::new(dir.path()))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    next_event(
        &mut events,
        "accepted",
        |e| matches!(e, ClientEvent::OpampSettingsAccepted(t) if t.endpoint == candidate.ws_url()),
    )
    .await;
    // CSS-4: the server behind the candidate learns that the offer was applied.
    candidate
        .wait("a first report", |r| !r.ws_messages().is_empty())
        .await;
    handle.stop().await.unwrap();
    assert!(valid.with(|r| r.upgrades.is_empty()));
    let reported = candidate.with(|r| statuses(&r.ws_messages()));
    assert_eq!(
        reported.first(),
        Some(&(APPLIED, b"offer-1".to_vec(), String::new())),
        "{reported:?}"
    );
    let state = FileStateStore::new(dir.path()).load().unwrap();
    assert_eq!(state.valid_settings.unwrap().endpoint, candidate.ws_url());
    assert_eq!(state.candidate_settings, None);
}

#[tokio::test]
async fn a_stored_candidate_that_fails_is_reverted_opc_5_step_9() {
    let valid = MockServer::start().await;
    let broken = MockServer::start().await;
    broken.upgrade([Some((401, vec![]))]);
    let store = MemoryStateStore::with_state({
        let mut s = PersistedState::default();
        s.valid_settings = Some(ConnectionTarget::new(valid.ws_url()));
        s.candidate_settings = Some(PendingCandidate::new(
            ConnectionTarget::new(broken.ws_url()),
            b"offer-2".to_vec(),
        ));
        s
    });
    let (handle, mut events) = fast(OpampClient::builder(valid.ws_url()))
        .capabilities(settings_caps())
        .state_store(store.clone())
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    next_event(&mut events, "rejected", |e| {
        matches!(e, ClientEvent::OpampSettingsRejected { target, .. } if target.endpoint == broken.ws_url())
    })
    .await;
    valid
        .wait("back on the valid settings", |r| {
            !r.ws_messages().is_empty()
        })
        .await;
    handle.stop().await.unwrap();
    // CSS-4: the server behind the valid settings learns that the offer failed, and why.
    let reported = valid.with(|r| statuses(&r.ws_messages()));
    match reported.first() {
        Some((status, hash, error)) => {
            assert_eq!(*status, FAILED);
            assert_eq!(hash, b"offer-2");
            assert!(error.contains("401"), "{error}");
        }
        None => panic!("no connection settings status reported"),
    }
    assert!(broken.with(|r| r.ws_messages().is_empty()));
    let state = store.snapshot();
    assert_eq!(state.candidate_settings, None);
    assert_eq!(state.valid_settings.unwrap().endpoint, valid.ws_url());
}

#[tokio::test]
async fn a_stored_http_candidate_is_confirmed_by_its_first_response_opc_5_css_3_css_4() {
    let valid = MockServer::start().await;
    let candidate = MockServer::start().await;
    let store = MemoryStateStore::with_state({
        let mut s = PersistedState::default();
        s.valid_settings = Some(ConnectionTarget::new(valid.http_url()));
        s.candidate_settings = Some(PendingCandidate::new(
            ConnectionTarget::new(candidate.http_url()),
            b"offer-3".to_vec(),
        ));
        s
    });
    let (handle, mut events) = fast(OpampClient::builder(valid.http_url()))
        .capabilities(settings_caps())
        .state_store(store.clone())
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    next_event(
        &mut events,
        "accepted",
        |e| matches!(e, ClientEvent::OpampSettingsAccepted(t) if t.endpoint == candidate.http_url()),
    )
    .await;
    candidate
        .wait("APPLIED reported", |r| {
            statuses(&r.http_messages()).iter().any(|s| s.0 == APPLIED)
        })
        .await;
    handle.stop().await.unwrap();
    // APPLYING until the first response proved the settings (CSS-3), then APPLIED (CSS-4).
    let reported: Vec<_> = candidate.with(|r| {
        statuses(&r.http_messages())
            .into_iter()
            .map(|(s, h, _)| (s, h))
            .collect()
    });
    assert_eq!(
        reported[..2],
        [
            (APPLYING, b"offer-3".to_vec()),
            (APPLIED, b"offer-3".to_vec())
        ],
        "{reported:?}"
    );
    assert!(valid.with(|r| r.http.is_empty()));
    let state = store.snapshot();
    assert_eq!(state.valid_settings.unwrap().endpoint, candidate.http_url());
    assert_eq!(state.candidate_settings, None);
}

#[tokio::test]
async fn an_offered_candidate_is_stored_with_its_offer_hash_opc_5_step_3() {
    let old = MockServer::start().await;
    // A candidate endpoint that takes the connection and never answers the upgrade: the
    // flow stays between steps 5 and 8, as when the agent crashes there.
    let hanging = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hanging_url = format!("ws://{}/v1/opamp", hanging.local_addr().unwrap());
    let store = MemoryStateStore::new();
    let (handle, mut events) = fast(OpampClient::builder(old.ws_url()))
        .capabilities(settings_caps())
        .state_store(store.clone())
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    old.wait("first message", |r| !r.ws_messages().is_empty())
        .await;
    old.push(Reply::Message(offer(&hanging_url)));
    next_event(&mut events, "candidate", |e| {
        matches!(e, ClientEvent::OpampSettingsCandidate(_))
    })
    .await;
    handle.stop().await.unwrap();
    // Neither accepted nor rejected: what the next start resumes, hash included.
    let stored = store.snapshot().candidate_settings.unwrap();
    assert_eq!(stored.target.endpoint, hanging_url);
    assert_eq!(stored.offer_hash, b"offer-1");
    assert_eq!(store.snapshot().valid_settings, None);
    drop(hanging);
}

#[tokio::test]
async fn a_stored_candidate_that_is_not_a_url_is_rejected_without_connecting_opc_2_opc_5() {
    let valid = MockServer::start().await;
    let store = MemoryStateStore::with_state({
        let mut s = PersistedState::default();
        s.candidate_settings = Some(PendingCandidate::new(
            ConnectionTarget::new("not a url"),
            b"offer-4".to_vec(),
        ));
        s
    });
    let (handle, mut events) = fast(OpampClient::builder(valid.ws_url()))
        .capabilities(settings_caps())
        .state_store(store.clone())
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    next_event(&mut events, "rejected", |e| {
        matches!(e, ClientEvent::OpampSettingsRejected { target, .. } if target.endpoint == "not a url")
    })
    .await;
    valid
        .wait("the configured endpoint is used", |r| {
            !r.ws_messages().is_empty()
        })
        .await;
    handle.stop().await.unwrap();
    let reported = valid.with(|r| statuses(&r.ws_messages()));
    assert_eq!(reported.first().map(|s| s.0), Some(FAILED), "{reported:?}");
    assert_eq!(store.snapshot().candidate_settings, None);
}
