//! TLS and mutual TLS with certificates generated at test time (rcgen).

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use common::*;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use opamp_proto::prost::Message as _;
use opamp_proto::v1::ServerToAgent;
use opamp_server::Server;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

struct Pki {
    ca_pem: String,
    ca_der: CertificateDer<'static>,
    server_cert_pem: String,
    server_key_pem: String,
    client_chain: Vec<CertificateDer<'static>>,
    client_key: PrivateKeyDer<'static>,
}

fn pki() -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "opamp test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

    let server_key = KeyPair::generate().unwrap();
    let server_params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let server_cert = server_params.signed_by(&server_key, &ca).unwrap();

    let client_key = KeyPair::generate().unwrap();
    let mut client_params = CertificateParams::new(vec!["agent-1".to_string()]).unwrap();
    client_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "agent-1");
    let client_cert = client_params.signed_by(&client_key, &ca).unwrap();

    Pki {
        ca_pem: ca.pem(),
        ca_der: ca.der().clone(),
        server_cert_pem: server_cert.pem(),
        server_key_pem: server_key.serialize_pem(),
        client_chain: vec![client_cert.der().clone()],
        client_key: PrivateKeyDer::try_from(client_key.serialize_der()).unwrap(),
    }
}

async fn start_tls(pki: &Pki, mutual: bool) -> TestServer<TestHandler> {
    let tls = opamp_server::tls::server_config(
        pki.server_cert_pem.as_bytes(),
        pki.server_key_pem.as_bytes(),
        mutual.then_some(pki.ca_pem.as_bytes()),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server::new(test_config(), TestHandler::default());
    let task = tokio::spawn({
        let server = server.clone();
        async move {
            server
                .serve_tls(listener, tls, std::future::pending())
                .await
        }
    });
    TestServer { server, addr, task }
}

async fn tls_connect(
    addr: SocketAddr,
    pki: &Pki,
    with_client_cert: bool,
) -> std::io::Result<TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca_der.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = if with_client_cert {
        builder
            .with_client_auth_cert(pki.client_chain.clone(), pki.client_key.clone_key())
            .unwrap()
    } else {
        builder.with_no_client_auth()
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(addr).await?;
    TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

/// One OpAMP exchange over HTTPS with a hand-driven hyper client.
async fn https_exchange(
    stream: TlsStream<TcpStream>,
    msg: &opamp_proto::v1::AgentToServer,
) -> Result<ServerToAgent, hyper::Error> {
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let request = http::Request::post("/v1/opamp")
        .header("host", "localhost")
        .header("content-type", "application/x-protobuf")
        .body(Full::new(bytes::Bytes::from(msg.encode_to_vec())))
        .unwrap();
    let response = sender.send_request(request).await?;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-protobuf");
    let body = response.into_body().collect().await?.to_bytes();
    Ok(ServerToAgent::decode(body).unwrap())
}

#[tokio::test]
async fn https_and_wss_are_served_over_tls() {
    let pki = pki();
    let srv = start_tls(&pki, false).await;
    let stream = tls_connect(srv.addr, &pki, false).await.unwrap();
    let reply = https_exchange(stream, &full(uid(1), 0, BASIC))
        .await
        .unwrap();
    assert_eq!(reply.instance_uid, uid(1).to_vec());

    let stream = tls_connect(srv.addr, &pki, false).await.unwrap();
    let url = format!("wss://localhost:{}/v1/opamp", srv.addr.port());
    let (mut ws, _) = tokio_tungstenite::client_async(url, stream).await.unwrap();
    let reply = ws_exchange(&mut ws, &full(uid(2), 0, BASIC)).await;
    assert_eq!(reply.instance_uid, uid(2).to_vec());
    {
        let seen = srv.handler().seen.lock().unwrap();
        assert!(
            seen.messages
                .iter()
                .all(|(ctx, _)| ctx.peer_certificates == 0)
        );
    }
    srv.stop().await;
}

#[tokio::test]
async fn mtls_handler_sees_the_client_certificate() {
    let pki = pki();
    let srv = start_tls(&pki, true).await;
    let stream = tls_connect(srv.addr, &pki, true).await.unwrap();
    let reply = https_exchange(stream, &full(uid(3), 0, BASIC))
        .await
        .unwrap();
    assert_eq!(reply.instance_uid, uid(3).to_vec());

    let stream = tls_connect(srv.addr, &pki, true).await.unwrap();
    let url = format!("wss://localhost:{}/v1/opamp", srv.addr.port());
    let (mut ws, _) = tokio_tungstenite::client_async(url, stream).await.unwrap();
    ws_exchange(&mut ws, &full(uid(4), 0, BASIC)).await;

    {
        let seen = srv.handler().seen.lock().unwrap();
        assert_eq!(seen.messages.len(), 2);
        assert!(
            seen.messages
                .iter()
                .all(|(ctx, _)| ctx.peer_certificates == 1)
        );
        let request = &seen.connecting[0];
        let chain = request.peer_certificates.as_ref().expect("peer chain");
        assert_eq!(
            chain[0], pki.client_chain[0],
            "the leaf the client presented"
        );
    }
    srv.stop().await;
}

#[tokio::test]
async fn mtls_without_client_certificate_fails_the_handshake() {
    let pki = pki();
    let srv = start_tls(&pki, true).await;
    // With TLS 1.3 the client may finish its side before the server rejects it; the
    // failure then shows on the first exchange. Either way nothing is served.
    let failed = match tls_connect(srv.addr, &pki, false).await {
        Err(_) => true,
        Ok(stream) => https_exchange(stream, &full(uid(5), 0, BASIC))
            .await
            .is_err(),
    };
    assert!(failed, "a client without a certificate must not be served");
    assert!(srv.handler().seen.lock().unwrap().messages.is_empty());
    assert!(srv.handler().seen.lock().unwrap().connecting.is_empty());
    srv.stop().await;
}
