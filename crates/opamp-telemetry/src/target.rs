//! Where the agent sends its own metrics: an [`ExportTarget`] built from the server's
//! `TelemetryConnectionSettings` offer (OWN-6, OWN-7, OWN-8). Checks the offer; never
//! connects.

use opamp_proto::v1::TelemetryConnectionSettings;

use crate::{CONTENT_TYPE, Error};

/// An OTLP/HTTP destination: the full URL to POST to, extra headers, and TLS material.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportTarget {
    /// The full URL including the signal path, e.g. `https://collector:4318/v1/metrics`
    /// (OWN-6). Used as offered: the agent never appends a path.
    pub endpoint: String,
    /// Headers to send with every export request, in offered order (OWN-7).
    pub headers: Vec<(String, String)>,
    /// PEM bundle of CAs to trust for the endpoint (`tls.ca_pem_contents`), if offered.
    pub ca_pem: Option<String>,
    /// Also trust the system's CA pool (`tls.include_system_ca_certs_pool`).
    pub include_system_ca_certs: bool,
    /// Skip server certificate verification (`tls.insecure_skip_verify`); the agent may
    /// refuse to honour it.
    pub insecure_skip_verify: bool,
    /// PEM client certificate to present (`certificate.cert`), if offered. When the offer
    /// carries no certificate, none is used (OWN-8).
    pub client_cert_pem: Option<Vec<u8>>,
    /// PEM private key of the client certificate (`certificate.private_key`).
    pub client_key_pem: Option<Vec<u8>>,
    /// Proxy URL (`proxy.url`), if offered.
    pub proxy: Option<String>,
}

impl ExportTarget {
    /// Checks an own-telemetry offer and turns it into a target.
    ///
    /// Errors (all the server's fault): an empty endpoint or one that is not an `http://`
    /// or `https://` URL with a host (OWN-6); a header with an empty or non-token name or a
    /// value with CR, LF or NUL (OWN-7); a client certificate without its private key
    /// (the CSR flow is not supported here) or a key without a certificate (OWN-8).
    ///
    /// `http://` endpoints are accepted; see [`is_tls`](Self::is_tls) to refuse them (the
    /// agent MAY, OWN-6).
    pub fn from_offer(s: &TelemetryConnectionSettings) -> Result<Self, Error> {
        let endpoint = s.destination_endpoint.trim();
        check_endpoint(endpoint)?;
        let mut headers = Vec::new();
        for h in s.headers.iter().flat_map(|h| &h.headers) {
            check_header(&h.key, &h.value)?;
            headers.push((h.key.clone(), h.value.clone()));
        }
        let (client_cert_pem, client_key_pem) = match &s.certificate {
            None => (None, None),
            Some(c) => match (c.cert.is_empty(), c.private_key.is_empty()) {
                (true, true) => (None, None),
                (false, false) => (Some(c.cert.clone()), Some(c.private_key.clone())),
                (false, true) => {
                    return Err(Error::InvalidCertificate(
                        "a certificate without its private key",
                    ));
                }
                (true, false) => {
                    return Err(Error::InvalidCertificate(
                        "a private key without a certificate",
                    ));
                }
            },
        };
        let tls = s.tls.as_ref();
        Ok(ExportTarget {
            endpoint: endpoint.to_owned(),
            headers,
            ca_pem: tls
                .map(|t| t.ca_pem_contents.clone())
                .filter(|p| !p.trim().is_empty()),
            include_system_ca_certs: tls.is_some_and(|t| t.include_system_ca_certs_pool),
            insecure_skip_verify: tls.is_some_and(|t| t.insecure_skip_verify),
            client_cert_pem,
            client_key_pem,
            proxy: s
                .proxy
                .as_ref()
                .map(|p| p.url.clone())
                .filter(|u| !u.trim().is_empty()),
        })
    }

    /// Whether the endpoint is `https://`.
    pub fn is_tls(&self) -> bool {
        self.endpoint
            .get(..8)
            .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
    }

    /// Every header of an export request: `Content-Type: application/x-protobuf`, then the
    /// offered headers except `Content-Type` and `Content-Length`, which belong to the
    /// body this crate builds.
    pub fn request_headers(&self) -> Vec<(String, String)> {
        let mut out = vec![("Content-Type".to_owned(), CONTENT_TYPE.to_owned())];
        out.extend(
            self.headers
                .iter()
                .filter(|(k, _)| {
                    !k.eq_ignore_ascii_case("content-type")
                        && !k.eq_ignore_ascii_case("content-length")
                })
                .cloned(),
        );
        out
    }
}

fn check_endpoint(endpoint: &str) -> Result<(), Error> {
    let err = |reason| {
        Err(Error::InvalidEndpoint {
            endpoint: endpoint.to_owned(),
            reason,
        })
    };
    if endpoint.is_empty() {
        return err("empty");
    }
    let lower = endpoint.get(..8).unwrap_or(endpoint).to_ascii_lowercase();
    let rest = if lower.starts_with("http://") {
        &endpoint[7..]
    } else if lower.starts_with("https://") {
        &endpoint[8..]
    } else {
        return err("not an http:// or https:// URL");
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.is_empty() || host.starts_with(':') {
        return err("no host");
    }
    if endpoint
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return err("contains whitespace or control characters");
    }
    Ok(())
}

fn check_header(name: &str, value: &str) -> Result<(), Error> {
    let err = |reason| {
        Err(Error::InvalidHeader {
            name: name.to_owned(),
            reason,
        })
    };
    // RFC 9110 token characters.
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() {
        return err("empty name");
    }
    if !name.chars().all(token) {
        return err("name is not an HTTP token");
    }
    if value.chars().any(|c| matches!(c, '\r' | '\n' | '\0')) {
        return err("value contains CR, LF or NUL");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use opamp_proto::v1::{
        Header, Headers, ProxyConnectionSettings, TlsCertificate, TlsConnectionSettings,
    };

    use super::*;

    fn offer(endpoint: &str) -> TelemetryConnectionSettings {
        TelemetryConnectionSettings {
            destination_endpoint: endpoint.into(),
            ..Default::default()
        }
    }

    #[test]
    fn full_url_is_taken_as_offered_own_6() {
        let t =
            ExportTarget::from_offer(&offer("https://collector.example:4318/v1/metrics")).unwrap();
        assert_eq!(t.endpoint, "https://collector.example:4318/v1/metrics");
        assert!(t.is_tls());
        assert_eq!(
            t,
            ExportTarget {
                endpoint: t.endpoint.clone(),
                ..Default::default()
            }
        );
        let plain = ExportTarget::from_offer(&offer("http://127.0.0.1:4318/v1/metrics")).unwrap();
        assert!(
            !plain.is_tls(),
            "http:// is accepted; the agent may refuse it"
        );
    }

    #[test]
    fn empty_or_non_url_endpoint_is_refused_own_6() {
        for bad in [
            "",
            "   ",
            "collector:4318/v1/metrics",
            "grpc://c:4317",
            "https://",
            "http:///v1/metrics",
            "http://c :1/",
        ] {
            assert!(
                matches!(
                    ExportTarget::from_offer(&offer(bad)),
                    Err(Error::InvalidEndpoint { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn headers_are_kept_in_order_own_7() {
        let mut o = offer("https://c/v1/metrics");
        o.headers = Some(Headers {
            headers: vec![
                Header {
                    key: "Authorization".into(),
                    value: "Bearer abc".into(),
                },
                Header {
                    key: "X-Tenant".into(),
                    value: "42".into(),
                },
                Header {
                    key: "content-type".into(),
                    value: "text/plain".into(),
                },
            ],
        });
        let t = ExportTarget::from_offer(&o).unwrap();
        assert_eq!(t.headers.len(), 3);
        assert_eq!(
            t.request_headers(),
            vec![
                (
                    "Content-Type".to_owned(),
                    "application/x-protobuf".to_owned()
                ),
                ("Authorization".to_owned(), "Bearer abc".to_owned()),
                ("X-Tenant".to_owned(), "42".to_owned()),
            ]
        );
    }

    #[test]
    fn unsendable_headers_are_refused_own_7() {
        for (k, v) in [
            ("", "x"),
            ("Bad Name", "x"),
            ("X-Ok", "a\r\nInjected: 1"),
            ("X-Ok", "nul\0"),
        ] {
            let mut o = offer("https://c/v1/metrics");
            o.headers = Some(Headers {
                headers: vec![Header {
                    key: k.into(),
                    value: v.into(),
                }],
            });
            assert!(
                matches!(
                    ExportTarget::from_offer(&o),
                    Err(Error::InvalidHeader { .. })
                ),
                "{k:?}: {v:?}"
            );
        }
    }

    #[test]
    fn client_certificate_only_when_offered_own_8() {
        let mut o = offer("https://c/v1/metrics");
        assert_eq!(ExportTarget::from_offer(&o).unwrap().client_cert_pem, None);
        o.certificate = Some(TlsCertificate {
            cert: b"CERT".to_vec(),
            private_key: b"KEY".to_vec(),
            ca_cert: vec![],
        });
        let t = ExportTarget::from_offer(&o).unwrap();
        assert_eq!(
            (t.client_cert_pem.as_deref(), t.client_key_pem.as_deref()),
            (Some(&b"CERT"[..]), Some(&b"KEY"[..]))
        );
        o.certificate = Some(TlsCertificate {
            cert: b"CERT".to_vec(),
            ..Default::default()
        });
        assert!(matches!(
            ExportTarget::from_offer(&o),
            Err(Error::InvalidCertificate(_))
        ));
        o.certificate = Some(TlsCertificate {
            private_key: b"KEY".to_vec(),
            ..Default::default()
        });
        assert!(matches!(
            ExportTarget::from_offer(&o),
            Err(Error::InvalidCertificate(_))
        ));
        o.certificate = Some(TlsCertificate::default());
        assert_eq!(ExportTarget::from_offer(&o).unwrap().client_cert_pem, None);
    }

    #[test]
    fn tls_and_proxy_settings_are_carried() {
        let mut o = offer("https://c/v1/metrics");
        o.tls = Some(TlsConnectionSettings {
            ca_pem_contents: "-----BEGIN CERTIFICATE-----".into(),
            include_system_ca_certs_pool: true,
            insecure_skip_verify: false,
            ..Default::default()
        });
        o.proxy = Some(ProxyConnectionSettings {
            url: "http://proxy:3128".into(),
            connect_headers: None,
        });
        let t = ExportTarget::from_offer(&o).unwrap();
        assert_eq!(t.ca_pem.as_deref(), Some("-----BEGIN CERTIFICATE-----"));
        assert!(t.include_system_ca_certs);
        assert!(!t.insecure_skip_verify);
        assert_eq!(t.proxy.as_deref(), Some("http://proxy:3128"));
    }
}
