//! Building a rustls server configuration from PEM, with optional mutual TLS.
//!
//! ```no_run
//! # fn main() -> Result<(), opamp_server::Error> {
//! let cert = std::fs::read("server.crt")?;
//! let key = std::fs::read("server.key")?;
//! let client_ca = std::fs::read("clients-ca.crt")?;
//! // Plain TLS:
//! let tls = opamp_server::tls::server_config(&cert, &key, None)?;
//! // Mutual TLS: clients must present a certificate signed by `client_ca`.
//! let mtls = opamp_server::tls::server_config(&cert, &key, Some(&client_ca))?;
//! # let _ = (tls, mtls);
//! # Ok(()) }
//! ```

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::Error;

/// A rustls server configuration (ring provider, TLS 1.2 and 1.3, ALPN `h2` and
/// `http/1.1`) from a PEM certificate chain and PEM private key. With `client_ca_pem`,
/// every client must present a certificate chaining to one of those CAs (mutual TLS).
pub fn server_config(
    cert_chain_pem: &[u8],
    key_pem: &[u8],
    client_ca_pem: Option<&[u8]>,
) -> Result<Arc<rustls::ServerConfig>, Error> {
    let certs = parse_certs(cert_chain_pem)?;
    if certs.is_empty() {
        return Err(Error::Config("no certificate found in the PEM data".into()));
    }
    let key = parse_key(key_pem)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match client_ca_pem {
        None => builder.with_no_client_auth(),
        Some(ca_pem) => {
            let mut roots = RootCertStore::empty();
            for ca in parse_certs(ca_pem)? {
                roots.add(ca)?;
            }
            if roots.is_empty() {
                return Err(Error::Config("no client CA certificate found".into()));
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| Error::Config(format!("client certificate verifier: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Parses every certificate in PEM data.
pub fn parse_certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, Error> {
    rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Config(format!("invalid certificate PEM: {e}")))
}

/// Parses the first private key (PKCS#8, PKCS#1 or SEC1) in PEM data.
pub fn parse_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, Error> {
    rustls_pemfile::private_key(&mut &pem[..])
        .map_err(|e| Error::Config(format!("invalid private key PEM: {e}")))?
        .ok_or_else(|| Error::Config("no private key found in the PEM data".into()))
}
