//! How Jarvis trusts the nodes' certificates (§4.6 of the integration notes), best first:
//! the cluster CA from `proxmox.ca_file` (on top of the system roots), SHA-256 pins of the
//! nodes' own certificates, the system roots alone, or, only on an explicit and loudly logged
//! opt-in, nothing at all.
//!
//! Pins use a custom rustls [`ServerCertVerifier`]: the end-entity certificate's SHA-256 must
//! equal a pin (compared in constant time), whoever signed it and whatever name it carries
//! (Proxmox certificates name the node, and Jarvis usually connects by IP). The handshake
//! signatures are still verified with the crypto provider's algorithms, so a server must hold
//! the pinned certificate's private key.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};
use tracing::warn;

use super::error::ProxmoxError;
use crate::config::{ProxmoxConfig, parse_fingerprint};

/// Applies the configured certificate trust to a client builder.
pub(crate) fn configure(
    builder: reqwest::ClientBuilder,
    config: &ProxmoxConfig,
) -> Result<reqwest::ClientBuilder, ProxmoxError> {
    if config.insecure_skip_verify {
        warn!(
            urls = ?config.urls.iter().map(url::Url::as_str).collect::<Vec<_>>(),
            "proxmox.insecure_skip_verify is on: Jarvis accepts ANY certificate from Proxmox, so \
             anyone on the network path can impersonate the nodes and capture the API token. \
             Set proxmox.ca_file to /etc/pve/pve-root-ca.pem or pin proxmox.fingerprints instead"
        );
        return Ok(builder.danger_accept_invalid_certs(true));
    }
    if !config.fingerprints.is_empty() {
        let pins = config
            .fingerprints
            .iter()
            .map(|text| {
                parse_fingerprint(text).ok_or_else(|| {
                    ProxmoxError::Config(format!(
                        "proxmox.fingerprints: {text:?} is not a SHA-256 fingerprint (AA:BB:...)"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(builder.use_preconfigured_tls(pinned_client_config(pins)?));
    }
    if let Some(path) = &config.ca_file {
        let pem = std::fs::read(path).map_err(|err| {
            ProxmoxError::Config(format!(
                "cannot read proxmox.ca_file {}: {err}; copy /etc/pve/pve-root-ca.pem from a node",
                path.display()
            ))
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|err| {
            ProxmoxError::Config(format!(
                "proxmox.ca_file {} is not a PEM certificate: {err}",
                path.display()
            ))
        })?;
        if certs.is_empty() {
            return Err(ProxmoxError::Config(format!(
                "proxmox.ca_file {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                path.display()
            )));
        }
        let mut builder = builder;
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
        return Ok(builder);
    }
    Ok(builder)
}

/// A rustls client configuration that accepts exactly the pinned certificates.
fn pinned_client_config(pins: Vec<[u8; 32]>) -> Result<rustls::ClientConfig, ProxmoxError> {
    pinned_tls(pins).map_err(|err| ProxmoxError::Config(format!("TLS setup failed: {err}")))
}

/// A rustls client configuration that accepts exactly the pinned certificates (Proxmox nodes,
/// Frigate's port 8971).
///
/// # Errors
/// rustls refuses the protocol versions (not with the ring provider).
pub(crate) fn pinned_tls(pins: Vec<[u8; 32]>) -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = PinnedCertVerifier {
        pins,
        algorithms: provider.signature_verification_algorithms,
    };
    let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(config)
}

/// The SHA-256 fingerprint of a DER certificate, as Proxmox shows it: `AA:BB:...`.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = Sha256::digest(der);
    let hex: Vec<String> = digest.iter().map(|b| format!("{b:02X}")).collect();
    hex.join(":")
}

/// A pin did not match: the error rustls carries back out of the handshake.
#[derive(Debug)]
pub(crate) struct PinMismatch {
    /// The fingerprint the server presented.
    pub(crate) seen: String,
}

impl fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "certificate fingerprint {} is not pinned", self.seen)
    }
}

impl std::error::Error for PinMismatch {}

/// Accepts a server whose end-entity certificate hashes to one of the pins.
struct PinnedCertVerifier {
    pins: Vec<[u8; 32]>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl fmt::Debug for PinnedCertVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinnedCertVerifier")
            .field("pins", &self.pins.len())
            .finish_non_exhaustive()
    }
}

/// Equality that takes the same time wherever the first difference is.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

impl ServerCertVerifier for PinnedCertVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let digest: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        // Compare against every pin, without stopping at the first match.
        let matched = self
            .pins
            .iter()
            .fold(false, |found, pin| found | constant_time_eq(&digest, pin));
        if matched {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                rustls::OtherError(Arc::new(PinMismatch {
                    seen: fingerprint(end_entity.as_ref()),
                })),
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Finds the rustls error behind a failed request and turns it into [`ProxmoxError::Tls`].
pub(crate) fn tls_error(
    err: &(dyn std::error::Error + 'static),
    url: &str,
) -> Option<ProxmoxError> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            let seen = match tls {
                rustls::Error::InvalidCertificate(CertificateError::Other(other)) => other
                    .0
                    .downcast_ref::<PinMismatch>()
                    .map(|m| m.seen.clone()),
                _ => None,
            };
            return Some(ProxmoxError::Tls {
                url: url.to_owned(),
                seen,
                message: tls.to_string(),
            });
        }
        current = next_error(e);
    }
    None
}

/// The next error in a chain. An `io::Error` wrapping another error is looked into with
/// `get_ref`, because its `source()` skips the wrapped error (hyper and tokio-rustls nest
/// rustls errors in two of them).
pub(crate) fn next_error<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a (dyn std::error::Error + 'static)> {
    if let Some(io) = err.downcast_ref::<std::io::Error>() {
        if let Some(inner) = io.get_ref() {
            return Some(inner as &(dyn std::error::Error + 'static));
        }
    }
    err.source()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_colon_separated_upper_hex() {
        let fp = fingerprint(b"hello world");
        assert_eq!(fp.len(), 32 * 3 - 1);
        assert!(fp.starts_with("B9:4D:27:B9"));
        assert_eq!(
            parse_fingerprint(&fp),
            Some(Sha256::digest(b"hello world").into())
        );
        assert_eq!(
            parse_fingerprint(&fp.to_lowercase().replace(':', "")),
            parse_fingerprint(&fp)
        );
        assert_eq!(parse_fingerprint("AA:BB"), None);
        assert_eq!(parse_fingerprint(&fp.replacen(':', "", 3)), None);
    }

    #[test]
    fn constant_time_eq_compares_everything() {
        let a = [1u8; 32];
        let mut b = a;
        assert!(constant_time_eq(&a, &b));
        b[31] = 2;
        assert!(!constant_time_eq(&a, &b));
    }
}
