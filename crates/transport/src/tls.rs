//! TLS for Ponte's QUIC connections: server configuration for the relay, client
//! configuration that verifies the relay by CA roots or by a pinned certificate fingerprint.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// What went wrong setting up TLS.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// rustls refused the configuration (bad key, bad certificate).
    #[error("TLS configuration: {}", ponte_wire::text::error_text(.0))]
    Rustls(rustls::Error),
    /// The rustls configuration is not usable for QUIC.
    #[error("QUIC TLS configuration: {0}")]
    Quic(String),
}

// By hand rather than `#[from]`, which would make the cause the error's `source()` too.
impl From<rustls::Error> for TlsError {
    fn from(e: rustls::Error) -> TlsError {
        TlsError::Rustls(e)
    }
}

/// The one crypto provider Ponte uses everywhere (aws-lc-rs).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// SHA-256 of a DER certificate: how a relay is pinned and how the handshake names it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CertFingerprint(pub [u8; 32]);

impl CertFingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of(cert_der: &[u8]) -> CertFingerprint {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, cert_der);
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        CertFingerprint(out)
    }
}

impl fmt::Display for CertFingerprint {
    /// 64 lowercase hex digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for CertFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CertFingerprint({self})")
    }
}

/// A fingerprint that is not 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a certificate fingerprint is 64 hex digits (colons and spaces allowed)")]
pub struct BadFingerprint;

impl FromStr for CertFingerprint {
    type Err = BadFingerprint;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex: Vec<u8> = s
            .trim()
            .chars()
            .filter(|c| !matches!(c, ':' | ' '))
            .map(|c| c.to_digit(16).map(|d| d as u8).ok_or(BadFingerprint))
            .collect::<Result<_, _>>()?;
        if hex.len() != 64 {
            return Err(BadFingerprint);
        }
        let mut out = [0u8; 32];
        for (i, pair) in hex.chunks(2).enumerate() {
            out[i] = pair[0] << 4 | pair[1];
        }
        Ok(CertFingerprint(out))
    }
}

/// Transport settings shared by both ends: keep-alives well inside the idle timeout.
pub fn transport_config(idle_timeout: Duration) -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    t.max_idle_timeout(quinn::IdleTimeout::try_from(idle_timeout).ok());
    t.keep_alive_interval(Some(idle_timeout / 3));
    t
}

/// A relay's server configuration from its certificate chain and key.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    transport: quinn::TransportConfig,
) -> Result<quinn::ServerConfig, TlsError> {
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    tls.alpn_protocols = vec![crate::ALPN.to_vec()];
    tls.max_early_data_size = 0;
    let quic = QuicServerConfig::try_from(tls).map_err(|e| TlsError::Quic(e.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(quic));
    config.transport_config(Arc::new(transport));
    Ok(config)
}

/// How a client decides to trust the relay.
#[derive(Debug, Clone)]
pub enum RelayTrust {
    /// Accept exactly the certificate with this SHA-256 fingerprint, or any node certificate
    /// signed by the cluster key with this fingerprint ([`cluster_fingerprint`]).
    Pinned(CertFingerprint),
    /// Verify the certificate chain against these roots and the server name.
    Roots(Arc<rustls::RootCertStore>),
    /// Accept any certificate and report its fingerprint through [`SeenFingerprint`]; the
    /// caller must compare it with what it remembered (trust on first use).
    FirstUse,
}

/// What the relay presented, filled in during the handshake: its certificate's fingerprint
/// and, when a cluster key signed that certificate, the cluster key's fingerprint.
#[derive(Debug, Clone, Default)]
pub struct SeenFingerprint(Arc<Mutex<Option<Seen>>>);

#[derive(Debug, Clone, Copy)]
struct Seen {
    cert: CertFingerprint,
    cluster: Option<CertFingerprint>,
}

impl SeenFingerprint {
    /// The certificate's fingerprint, once the TLS handshake has looked at the certificate.
    pub fn get(&self) -> Option<CertFingerprint> {
        self.seen().map(|s| s.cert)
    }

    /// What a client pins for this relay: the cluster key's fingerprint when the relay is a
    /// node of a cluster (its certificate is signed by the cluster key it sent along), else
    /// its certificate's fingerprint.
    pub fn anchor(&self) -> Option<CertFingerprint> {
        self.seen().map(|s| s.cluster.unwrap_or(s.cert))
    }

    /// Whether the relay presented a node certificate signed by a cluster key.
    pub fn is_cluster(&self) -> bool {
        self.seen().is_some_and(|s| s.cluster.is_some())
    }

    fn seen(&self) -> Option<Seen> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set(&self, seen: Seen) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(seen);
    }
}

/// The DNS name every cluster node certificate carries (besides its own names). Clients that
/// pin a cluster key verify node certificates for this name, so that a node can be reached
/// under any address.
pub const NODE_NAME: &str = "ponte-relay";

/// The fingerprint of a cluster key: SHA-256 of the DER SubjectPublicKeyInfo of the cluster's
/// certificate (`openssl x509 -pubkey -noout | openssl pkey -pubin -outform der | sha256sum`).
/// Pinning the key rather than the certificate lets the operator re-issue the certificate.
pub fn cluster_fingerprint(cluster_cert_der: &[u8]) -> Option<CertFingerprint> {
    let cert = CertificateDer::from(cluster_cert_der);
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).ok()?;
    let anchor = roots.roots.first()?;
    Some(CertFingerprint::of(&der_sequence(
        anchor.subject_public_key_info.as_ref(),
    )))
}

/// `contents` wrapped in a DER SEQUENCE header (the trust anchor keeps the SPKI without it).
fn der_sequence(contents: &[u8]) -> Vec<u8> {
    let len = contents.len();
    let mut out = vec![0x30];
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(contents);
    out
}

/// The cluster key that signed `end_entity`, if the last certificate of the chain is a cluster
/// certificate whose key signed it (checked like any CA: signature, validity, usage, for the
/// name [`NODE_NAME`]).
fn cluster_of(
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    now: UnixTime,
    provider: &Arc<CryptoProvider>,
) -> Option<CertFingerprint> {
    let cluster_cert = intermediates.last()?;
    let fingerprint = cluster_fingerprint(cluster_cert)?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cluster_cert.clone().into_owned()).ok()?;
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .ok()?;
    let name = ServerName::try_from(NODE_NAME).ok()?;
    verifier
        .verify_server_cert(end_entity, &[], &name, &[], now)
        .ok()
        .map(|_| fingerprint)
}

/// The fingerprint of the cluster key that signed `end_entity`, if `chain` (the rest of the
/// chain a relay presents) ends with a cluster certificate that verifies it right now.
pub fn signing_cluster(
    end_entity: &CertificateDer<'_>,
    chain: &[CertificateDer<'_>],
) -> Option<CertFingerprint> {
    cluster_of(end_entity, chain, UnixTime::now(), &provider())
}

/// Checks the end-entity certificate by fingerprint, or by the fingerprint of the cluster key
/// that signed it (or records both, for first use), and still verifies the handshake
/// signature, so the peer must hold the certificate's key.
#[derive(Debug)]
struct FingerprintVerifier {
    expected: Option<CertFingerprint>,
    seen: SeenFingerprint,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for FingerprintVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = CertFingerprint::of(end_entity);
        let cluster = cluster_of(end_entity, intermediates, now, &self.provider);
        self.seen.set(Seen { cert, cluster });
        match self.expected {
            Some(expected) if expected != cert && Some(expected) != cluster => Err(
                rustls::Error::InvalidCertificate(rustls::CertificateError::ApplicationVerificationFailure),
            ),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A client configuration for connecting to a relay, and where the relay's certificate
/// fingerprint will be recorded.
pub fn client_config(
    trust: &RelayTrust,
    transport: quinn::TransportConfig,
) -> Result<(quinn::ClientConfig, SeenFingerprint), TlsError> {
    let provider = provider();
    let seen = SeenFingerprint::default();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?;
    let mut tls = match trust {
        RelayTrust::Roots(roots) => builder
            .with_root_certificates(roots.clone())
            .with_no_client_auth(),
        RelayTrust::Pinned(_) | RelayTrust::FirstUse => {
            let expected = match trust {
                RelayTrust::Pinned(fp) => Some(*fp),
                _ => None,
            };
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(FingerprintVerifier {
                    expected,
                    seen: seen.clone(),
                    provider,
                }))
                .with_no_client_auth()
        }
    };
    tls.alpn_protocols = vec![crate::ALPN.to_vec()];
    let quic = QuicClientConfig::try_from(tls).map_err(|e| TlsError::Quic(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    config.transport_config(Arc::new(transport));
    Ok((config, seen))
}

/// The fingerprint of the certificate a connected relay presented.
pub fn peer_fingerprint(connection: &quinn::Connection) -> Option<CertFingerprint> {
    let identity = connection.peer_identity()?;
    let chain = identity.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    chain.first().map(|c| CertFingerprint::of(c))
}

/// What a client pins for a connected relay: the cluster key's fingerprint when the relay's
/// certificate is signed by the cluster certificate at the end of its chain, else the
/// certificate's fingerprint.
pub fn peer_anchor(connection: &quinn::Connection) -> Option<CertFingerprint> {
    let identity = connection.peer_identity()?;
    let chain = identity.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    let (end_entity, rest) = chain.split_first()?;
    Some(signing_cluster(end_entity, rest).unwrap_or_else(|| CertFingerprint::of(end_entity)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_parses_and_prints() {
        let fp = CertFingerprint::of(b"cert");
        let text = fp.to_string();
        assert_eq!(text.len(), 64);
        assert_eq!(text.parse::<CertFingerprint>().unwrap(), fp);
        let colons: String = text
            .as_bytes()
            .chunks(2)
            .map(|p| std::str::from_utf8(p).unwrap())
            .collect::<Vec<_>>()
            .join(":");
        assert_eq!(colons.to_uppercase().parse::<CertFingerprint>().unwrap(), fp);
        assert!("abc".parse::<CertFingerprint>().is_err());
        assert!(text.replace('a', "g").parse::<CertFingerprint>().is_err() || !text.contains('a'));
    }
}
