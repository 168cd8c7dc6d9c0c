//! TLS for both transports: rustls client configurations built from the connection
//! settings, and a stream type that is either plain TCP or TLS over TCP.
//!
//! The settings come from [`ConnectionTarget`](opamp_agent_fsm::ConnectionTarget) (`tls`
//! and `certificate`, the same fields a server's `OpAMPConnectionSettings` offer carries,
//! OPC-8, OPC-10), so locally configured TLS and TLS offered by the server take one path.
//! Never reads files: PEM contents are passed in.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use opamp_proto::v1;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::Error;

/// The crypto provider every configuration uses (ring, pure Rust plus assembly, no OpenSSL).
fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// The operating system's trust store, loaded once; falls back to the Mozilla roots
/// bundled by `webpki-roots` when the system has none.
fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let loaded = rustls_native_certs::load_native_certs();
        for e in &loaded.errors {
            tracing::debug!("loading a system root certificate failed: {e}");
        }
        loaded.certs
    })
}

fn add_system_roots(store: &mut RootCertStore) {
    let (added, _ignored) = store.add_parsable_certificates(system_roots().iter().cloned());
    if added == 0 {
        store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
}

/// Parses every certificate in a PEM buffer.
pub(crate) fn parse_certs(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| Error::Tls(format!("{what}: invalid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(Error::Tls(format!("{what}: no certificate in PEM")));
    }
    Ok(certs)
}

fn parse_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, Error> {
    PrivateKeyDer::from_pem_slice(pem)
        .map_err(|e| Error::Tls(format!("client private key: invalid PEM: {e}")))
}

fn protocol_versions(
    tls: Option<&v1::TlsConnectionSettings>,
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, Error> {
    fn parse(v: &str) -> Result<Option<u8>, Error> {
        let v = v.trim();
        let v = v
            .strip_prefix("TLSv")
            .or_else(|| v.strip_prefix("TLS"))
            .unwrap_or(v);
        match v.trim() {
            "" => Ok(None),
            "1.0" | "1.1" | "1.2" => Ok(Some(2)),
            "1.3" => Ok(Some(3)),
            other => Err(Error::Tls(format!("unknown TLS version {other:?}"))),
        }
    }
    let (min, max) = match tls {
        Some(t) => (
            parse(&t.min_version)?.unwrap_or(2),
            parse(&t.max_version)?.unwrap_or(3),
        ),
        None => (2, 3),
    };
    let mut versions = Vec::new();
    if min <= 2 && max >= 2 {
        versions.push(&rustls::version::TLS12);
    }
    if max >= 3 {
        versions.push(&rustls::version::TLS13);
    }
    if versions.is_empty() {
        return Err(Error::Tls(format!(
            "empty TLS version range (min {min}, max {max})"
        )));
    }
    Ok(versions)
}

/// Builds the rustls client configuration for a connection target.
///
/// - `tls` absent or without `ca_pem_contents`: the system trust store (OPC-10 default);
/// - `ca_pem_contents` set: those CAs, plus the system store when
///   `include_system_ca_certs_pool` is set;
/// - `insecure_skip_verify`: no server verification at all (SEC-10: dangerous, for tests);
/// - `min_version` / `max_version`: "1.2", "TLSv1.2", "1.3"; `cipher_suites` is ignored
///   (rustls only offers safe suites);
/// - `certificate` with `cert` and `private_key`: the client certificate for mTLS (OPC-8).
pub(crate) fn client_config(
    tls: Option<&v1::TlsConnectionSettings>,
    certificate: Option<&v1::TlsCertificate>,
) -> Result<Arc<ClientConfig>, Error> {
    let versions = protocol_versions(tls)?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&versions)
        .map_err(|e| Error::Tls(e.to_string()))?;

    let insecure = tls.is_some_and(|t| t.insecure_skip_verify);
    let builder = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(
                provider().signature_verification_algorithms,
            )))
    } else {
        let mut roots = RootCertStore::empty();
        match tls {
            Some(t) if !t.ca_pem_contents.trim().is_empty() => {
                for cert in parse_certs(t.ca_pem_contents.as_bytes(), "CA")? {
                    roots
                        .add(cert)
                        .map_err(|e| Error::Tls(format!("CA certificate: {e}")))?;
                }
                if t.include_system_ca_certs_pool {
                    add_system_roots(&mut roots);
                }
            }
            _ => add_system_roots(&mut roots),
        }
        builder.with_root_certificates(roots)
    };

    let mut config = match certificate {
        Some(c) if !c.cert.is_empty() && !c.private_key.is_empty() => {
            let chain = parse_certs(&c.cert, "client certificate")?;
            let key = parse_key(&c.private_key)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| Error::Tls(format!("client certificate: {e}")))?
        }
        _ => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A verifier that accepts any server certificate (`insecure_skip_verify`), but still
/// checks that the handshake was signed by the presented key.
#[derive(Debug)]
struct NoVerification(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// A client connection: plain TCP or TLS over TCP.
#[derive(Debug)]
pub(crate) enum Stream {
    /// `ws://` or `http://`.
    Plain(TcpStream),
    /// `wss://` or `https://`.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// Opens a TCP connection to `host:port` and, when `tls` is given, runs the TLS handshake
/// verifying the server name `host`.
pub(crate) async fn connect(
    host: &str,
    port: u16,
    tls: Option<Arc<ClientConfig>>,
) -> io::Result<Stream> {
    let tcp = TcpStream::connect((host, port)).await?;
    let _ = tcp.set_nodelay(true);
    let Some(config) = tls else {
        return Ok(Stream::Plain(tcp));
    };
    let name = ServerName::try_from(host.to_owned())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await?;
    Ok(Stream::Tls(Box::new(tls)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_strings_are_parsed_opc_10() {
        let t = |min: &str, max: &str| v1::TlsConnectionSettings {
            min_version: min.into(),
            max_version: max.into(),
            ..Default::default()
        };
        assert_eq!(protocol_versions(None).unwrap().len(), 2);
        assert_eq!(protocol_versions(Some(&t("1.3", ""))).unwrap().len(), 1);
        assert_eq!(
            protocol_versions(Some(&t("TLSv1.2", "TLSv1.2")))
                .unwrap()
                .len(),
            1
        );
        assert!(protocol_versions(Some(&t("1.3", "1.2"))).is_err());
        assert!(protocol_versions(Some(&t("banana", ""))).is_err());
    }

    #[test]
    fn bad_pem_is_a_tls_error_not_a_panic() {
        let tls = v1::TlsConnectionSettings {
            ca_pem_contents: "not a pem".into(),
            ..Default::default()
        };
        assert!(matches!(
            client_config(Some(&tls), None),
            Err(Error::Tls(_))
        ));
        let cert = v1::TlsCertificate {
            cert: b"garbage".to_vec(),
            private_key: b"garbage".to_vec(),
            ca_cert: vec![],
        };
        assert!(matches!(
            client_config(None, Some(&cert)),
            Err(Error::Tls(_))
        ));
    }
}
