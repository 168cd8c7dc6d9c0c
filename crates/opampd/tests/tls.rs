//! `--tls-cert`, `--tls-key`, `--client-ca`: opampd serves OpAMP over TLS with client
//! certificates required (mutual TLS), certificates generated at test time.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use opamp_client::{AgentCapabilities, ClientEvent, OpampClient};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use support::{Opampd, find};

struct Pki {
    ca_pem: String,
    server_cert_pem: String,
    server_key_pem: String,
    client_cert_pem: String,
    client_key_pem: String,
}

fn pki() -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "opampd test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server_cert =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&server_key, &ca)
            .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let client_cert = CertificateParams::new(vec!["agent-1".to_string()])
        .unwrap()
        .signed_by(&client_key, &ca)
        .unwrap();
    Pki {
        ca_pem: ca.pem(),
        server_cert_pem: server_cert.pem(),
        server_key_pem: server_key.serialize_pem(),
        client_cert_pem: client_cert.pem(),
        client_key_pem: client_key.serialize_pem(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_agents_connect_over_wss_and_https() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let path = |name: &str, body: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let cert = path("server.crt", &pki.server_cert_pem);
    let key = path("server.key", &pki.server_key_pem);
    let ca = path("clients-ca.crt", &pki.ca_pem);
    let mut d = Opampd::start(
        &dir.path().join("data"),
        None,
        &["--tls-cert", &cert, "--tls-key", &key, "--client-ca", &ca],
    )
    .await;
    let out = d.stdout();
    assert!(
        out.contains(&format!("wss://{}/v1/opamp", d.opamp)),
        "{out}"
    );
    assert!(
        out.contains(&format!("https://{}/v1/opamp", d.opamp)),
        "{out}"
    );

    let mut uids = Vec::new();
    let mut handles = Vec::new();
    for scheme in ["wss", "https"] {
        let client =
            OpampClient::builder(format!("{scheme}://127.0.0.1:{}/v1/opamp", d.opamp.port()))
                .service_name(format!("tls-{scheme}"))
                .capabilities(AgentCapabilities::REPORTS_HEARTBEAT)
                .ca_pem(pki.ca_pem.clone())
                .include_system_roots(false)
                .client_certificate(pki.client_cert_pem.clone(), pki.client_key_pem.clone())
                .polling_interval(Duration::from_millis(300))
                .build()
                .unwrap();
        let (handle, mut events) = client.start().await.unwrap();
        uids.push((handle.instance_uid().await.to_string(), scheme));
        tokio::time::timeout(support::WAIT, async {
            while let Some(e) = events.recv().await {
                if matches!(e, ClientEvent::Connected) {
                    return;
                }
            }
        })
        .await
        .expect("no TLS connection");
        handles.push(handle);
    }
    d.wait_get("both TLS agents", "/api/v1/agents", |l| {
        uids.iter().all(|(uid, scheme)| {
            find(l, uid).is_some_and(|a| {
                a["connected"] == true
                    && a["transport"] == if *scheme == "wss" { "ws" } else { "http" }
            })
        })
    })
    .await;
    for h in handles {
        h.stop().await.unwrap();
    }
    assert!(d.terminate().await.success());
}

/// `--admin-tls-cert`, `--admin-tls-key`: the admin API and the web UI over HTTPS; the UI's
/// cookies are `Secure` although no proxy says so; plain HTTP on that port gets nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_and_web_ui_over_https_with_secure_cookies() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let path = |name: &str, body: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let cert = path("admin.crt", &pki.server_cert_pem);
    let key = path("admin.key", &pki.server_key_pem);
    let data = dir.path().join("data");
    let mut d = Opampd::start(
        &data,
        None,
        &["--admin-tls-cert", &cert, "--admin-tls-key", &key],
    )
    .await;
    let out = d.stdout();
    assert!(
        out.contains(&format!("https://{}/api/v1/", d.admin)),
        "{out}"
    );
    assert!(
        out.contains(&format!("web UI     https://{}/", d.admin)),
        "{out}"
    );
    let ports: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("ports.json")).unwrap()).unwrap();
    assert_eq!(ports["admin_url"], format!("https://{}/", d.admin));

    let https = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = format!("https://localhost:{}", d.admin.port());
    let r = https
        .get(format!("{base}/api/v1/summary"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The login page sets the CSRF cookie `Secure`: the listener is TLS, no proxy needed.
    let r = https.get(format!("{base}/login")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let cookies: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("opamp_csrf=") && c.contains("; Secure")),
        "{cookies:?}"
    );
    // Plain HTTP to the TLS port: no answer.
    let plain = reqwest::Client::new()
        .get(format!("http://{}/api/v1/summary", d.admin))
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    assert!(
        plain.is_err() || !plain.unwrap().status().is_success(),
        "plain HTTP must not be served on the TLS admin port"
    );
    assert!(d.terminate().await.success());
}
