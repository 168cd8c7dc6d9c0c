//! TLS and mutual TLS over both transports, with certificates made by rcgen at test time.

#![allow(clippy::unwrap_used)] // tests and their support module may unwrap

mod support;

use opamp_client::{ClientEvent, OpampClient};
use support::pki::Pki;
use support::{MockServer, caps, fast, next_event};

async fn connects(server: &MockServer, builder: opamp_client::ClientBuilder) {
    let (handle, mut events) = builder
        .capabilities(caps())
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    next_event(&mut events, "first reply", |e| {
        matches!(e, ClientEvent::ServerCapabilitiesChanged(_))
    })
    .await;
    handle.stop().await.unwrap();
    assert!(server.with(|r| r.ws_messages().len() + r.http.len()) >= 1);
}

async fn fails(server: &MockServer, builder: opamp_client::ClientBuilder) {
    let (handle, mut events) = builder
        .capabilities(caps())
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    let ev = next_event(&mut events, "connect failure", |e| {
        matches!(
            e,
            ClientEvent::ConnectFailed { .. } | ClientEvent::ServerCapabilitiesChanged(_)
        )
    })
    .await;
    assert!(matches!(ev, ClientEvent::ConnectFailed { .. }), "{ev:?}");
    handle.stop().await.unwrap();
    assert_eq!(server.with(|r| r.ws_messages().len() + r.http.len()), 0);
}

#[tokio::test]
async fn wss_with_the_right_ca_connects_sec_10() {
    let pki = Pki::new();
    let server = MockServer::start_tls(pki.server_config(false)).await;
    connects(
        &server,
        fast(OpampClient::builder(server.wss_url())).ca_pem(pki.ca_pem.clone()),
    )
    .await;
}

#[tokio::test]
async fn https_with_the_right_ca_connects_sec_10() {
    let pki = Pki::new();
    let server = MockServer::start_tls(pki.server_config(false)).await;
    connects(
        &server,
        fast(OpampClient::builder(server.https_url())).ca_pem(pki.ca_pem.clone()),
    )
    .await;
}

#[tokio::test]
async fn a_client_without_the_right_ca_fails_sec_10() {
    let pki = Pki::new();
    let other = Pki::new();
    let server = MockServer::start_tls(pki.server_config(false)).await;
    // System roots only.
    fails(&server, fast(OpampClient::builder(server.wss_url()))).await;
    // Another CA.
    fails(
        &server,
        fast(OpampClient::builder(server.https_url())).ca_pem(other.ca_pem.clone()),
    )
    .await;
    assert!(server.with(|r| r.tls_failures) >= 2);
}

#[tokio::test]
async fn mtls_server_requires_the_client_certificate() {
    let pki = Pki::new();
    let server = MockServer::start_tls(pki.server_config(true)).await;
    fails(
        &server,
        fast(OpampClient::builder(server.wss_url())).ca_pem(pki.ca_pem.clone()),
    )
    .await;
    connects(
        &server,
        fast(OpampClient::builder(server.wss_url()))
            .ca_pem(pki.ca_pem.clone())
            .client_certificate(pki.client_cert_pem.clone(), pki.client_key_pem.clone()),
    )
    .await;
    connects(
        &server,
        fast(OpampClient::builder(server.https_url()))
            .ca_pem(pki.ca_pem.clone())
            .client_certificate(pki.client_cert_pem.clone(), pki.client_key_pem.clone()),
    )
    .await;
}

#[tokio::test]
async fn insecure_skip_verify_accepts_an_unknown_ca() {
    let pki = Pki::new();
    let server = MockServer::start_tls(pki.server_config(false)).await;
    connects(
        &server,
        fast(OpampClient::builder(server.wss_url())).danger_accept_invalid_certs(true),
    )
    .await;
}

#[test]
fn bad_pem_is_refused_at_build_time() {
    let err = OpampClient::builder("wss://localhost:1/v1/opamp")
        .ca_pem("not a certificate")
        .build()
        .unwrap_err();
    assert!(matches!(err, opamp_client::Error::Tls(_)), "{err}");
    let err = OpampClient::builder("ftp://localhost/")
        .build()
        .unwrap_err();
    assert!(
        matches!(err, opamp_client::Error::InvalidEndpoint(_)),
        "{err}"
    );
}
