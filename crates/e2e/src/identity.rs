//! Assistant identities: RSA-3072 keys (RSASSA-PSS with SHA-256, signing only) and the
//! certificates an organisation issues to its assistants.
//!
//! The viewer signs the handshake transcript with its key; the agent checks the signature
//! and, if a certificate chains to an organisation key the customer's agent trusts, shows
//! `verified: NAME, ORGANISATION` — otherwise a clear `UNVERIFIED` with the key's fingerprint.
//!
//! Files: private keys are PKCS#8 PEM (`PRIVATE KEY`), public keys SPKI PEM (`PUBLIC KEY`),
//! certificates PEM with the label `PONTE CERTIFICATE` around the postcard encoding of
//! [`Certificate`] (see docs/PROTOCOL.md).

use std::fmt;

use rand_core::CryptoRng;
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::signature::{RandomizedSigner, SignatureEncoding, Verifier};
use rsa::traits::PublicKeyParts;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use ponte_wire::LABEL_PREFIX;

/// Modulus size of keys Ponte generates.
pub const KEY_BITS: usize = 3072;
/// Smallest modulus Ponte accepts from a peer.
pub const MIN_KEY_BITS: usize = 3072;
/// Largest modulus Ponte accepts from a peer; bounds the work a hostile key can cause.
pub const MAX_KEY_BITS: usize = 4096;
/// Largest encoded public key accepted (SPKI DER of a 4096-bit key is 550 bytes).
pub const MAX_PUBLIC_KEY_DER: usize = 1024;
/// Largest signature accepted (a 4096-bit RSA signature is 512 bytes).
pub const MAX_SIGNATURE: usize = MAX_KEY_BITS / 8;
/// Longest name or organisation in a certificate, in characters.
pub const MAX_NAME_CHARS: usize = 128;

const CERTIFICATE_PEM_LABEL: &str = "PONTE CERTIFICATE";

/// What went wrong with a key, a signature or a certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The key or file could not be parsed.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// A key outside [`MIN_KEY_BITS`]..=[`MAX_KEY_BITS`].
    #[error("RSA key of {0} bits not accepted (need {MIN_KEY_BITS} to {MAX_KEY_BITS})")]
    KeySize(usize),
    /// The signature does not verify.
    #[error("signature does not verify")]
    BadSignature,
    /// Generating a key or a signature failed.
    #[error("RSA operation failed: {0}")]
    Rsa(String),
    /// A certificate was rejected.
    #[error("certificate rejected: {0}")]
    Certificate(CertificateError),
}

// By hand rather than `#[from]`, which would make the reason the error's `source()` too: the
// message says it already (see `text::error_text`).
impl From<CertificateError> for IdentityError {
    fn from(e: CertificateError) -> IdentityError {
        IdentityError::Certificate(e)
    }
}

/// Why a certificate does not verify the assistant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum CertificateError {
    /// No certificate was presented.
    #[error("no certificate")]
    Missing,
    /// The file or bytes are not a certificate.
    #[error("malformed certificate")]
    Malformed,
    /// A name or organisation is empty, too long or contains control characters.
    #[error("certificate name or organisation is not acceptable text")]
    BadText,
    /// Issued by an organisation key the agent does not trust.
    #[error("issued by an organisation this computer does not trust (issuer {0})")]
    UnknownIssuer(Fingerprint),
    /// The organisation's signature on the certificate does not verify.
    #[error("the organisation's signature on the certificate is invalid")]
    BadSignature,
    /// The certificate was issued for another key than the one the assistant signed with.
    #[error("the certificate belongs to a different key")]
    KeyMismatch,
    /// The validity period has ended.
    #[error("the certificate expired (valid until {not_after}, unix time)")]
    Expired {
        /// End of validity, seconds since the Unix epoch.
        not_after: u64,
    },
    /// The validity period has not begun.
    #[error("the certificate is not valid yet (valid from {not_before}, unix time)")]
    NotYetValid {
        /// Start of validity, seconds since the Unix epoch.
        not_before: u64,
    },
}

/// SHA-256 of a public key's SPKI DER encoding: how people compare keys.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of an SPKI DER encoding.
    pub fn of_der(der: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(der).into())
    }
}

impl fmt::Display for Fingerprint {
    /// Lowercase hex in groups of four, e.g. `3f2a 9c01 …` (16 groups).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, pair) in self.0.chunks(2).enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{:02x}{:02x}", pair[0], pair[1])?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

fn signed_message(purpose: &str, content: &[u8]) -> Vec<u8> {
    [LABEL_PREFIX.as_bytes(), purpose.as_bytes(), &[0], content].concat()
}

/// An RSA public key that verifies PSS-SHA256 signatures.
#[derive(Clone)]
pub struct PublicKey {
    der: Vec<u8>,
    key: rsa::pss::VerifyingKey<Sha256>,
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.der == other.der
    }
}

impl Eq for PublicKey {}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.fingerprint())
    }
}

impl PublicKey {
    /// Parses an SPKI DER public key and checks its size.
    pub fn from_der(der: &[u8]) -> Result<PublicKey, IdentityError> {
        if der.len() > MAX_PUBLIC_KEY_DER {
            return Err(IdentityError::InvalidKey("public key too large".into()));
        }
        let key =
            rsa::PublicKey::from_public_key_der(der).map_err(|e| IdentityError::InvalidKey(e.to_string()))?;
        let bits = key.size() * 8;
        if !(MIN_KEY_BITS..=MAX_KEY_BITS).contains(&bits) {
            return Err(IdentityError::KeySize(bits));
        }
        Ok(PublicKey {
            der: der.to_vec(),
            key: rsa::pss::VerifyingKey::new(key),
        })
    }

    /// Parses an SPKI PEM (`-----BEGIN PUBLIC KEY-----`) public key.
    pub fn from_pem(pem: &str) -> Result<PublicKey, IdentityError> {
        let key =
            rsa::PublicKey::from_public_key_pem(pem).map_err(|e| IdentityError::InvalidKey(e.to_string()))?;
        let der = key
            .to_public_key_der()
            .map_err(|e| IdentityError::InvalidKey(e.to_string()))?;
        PublicKey::from_der(der.as_bytes())
    }

    /// The SPKI PEM encoding.
    pub fn to_pem(&self) -> String {
        pem_rfc7468::encode_string("PUBLIC KEY", pem_rfc7468::LineEnding::LF, &self.der).unwrap_or_default()
    }

    /// The SPKI DER encoding.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// SHA-256 of the DER encoding.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of_der(&self.der)
    }

    fn verify(&self, purpose: &str, content: &[u8], signature: &[u8]) -> Result<(), IdentityError> {
        if signature.len() > MAX_SIGNATURE {
            return Err(IdentityError::BadSignature);
        }
        let sig = rsa::pss::Signature::try_from(signature).map_err(|_| IdentityError::BadSignature)?;
        self.key
            .verify(&signed_message(purpose, content), &sig)
            .map_err(|_| IdentityError::BadSignature)
    }

    /// Verifies a viewer's signature over a handshake transcript hash.
    pub fn verify_transcript(
        &self,
        transcript_hash: &[u8; 32],
        signature: &[u8],
    ) -> Result<(), IdentityError> {
        self.verify(TRANSCRIPT_PURPOSE, transcript_hash, signature)
    }
}

const TRANSCRIPT_PURPOSE: &str = "viewer signature";
const CERTIFICATE_PURPOSE: &str = "certificate";

/// An RSA private key that signs with PSS-SHA256: an assistant's identity or an
/// organisation's certifying key.
pub struct PrivateKey {
    key: rsa::pss::SigningKey<Sha256>,
    public: PublicKey,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey({})", self.public.fingerprint())
    }
}

impl PrivateKey {
    /// Generates a new RSA-3072 key (takes a second or so).
    pub fn generate(rng: &mut impl CryptoRng) -> Result<PrivateKey, IdentityError> {
        let key = rsa::PrivateKey::new(rng, KEY_BITS).map_err(|e| IdentityError::Rsa(e.to_string()))?;
        PrivateKey::from_rsa(key)
    }

    fn from_rsa(key: rsa::PrivateKey) -> Result<PrivateKey, IdentityError> {
        let der = key
            .to_public_key()
            .to_public_key_der()
            .map_err(|e| IdentityError::InvalidKey(e.to_string()))?;
        let public = PublicKey::from_der(der.as_bytes())?;
        Ok(PrivateKey {
            key: rsa::pss::SigningKey::new(key),
            public,
        })
    }

    /// Parses a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`) private key.
    pub fn from_pem(pem: &str) -> Result<PrivateKey, IdentityError> {
        let key =
            rsa::PrivateKey::from_pkcs8_pem(pem).map_err(|e| IdentityError::InvalidKey(e.to_string()))?;
        PrivateKey::from_rsa(key)
    }

    /// The PKCS#8 PEM encoding; wiped from memory when dropped.
    pub fn to_pem(&self) -> Result<Zeroizing<String>, IdentityError> {
        self.key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| IdentityError::InvalidKey(e.to_string()))
    }

    /// The matching public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    fn sign(
        &self,
        purpose: &str,
        content: &[u8],
        rng: &mut impl CryptoRng,
    ) -> Result<Vec<u8>, IdentityError> {
        self.key
            .try_sign_with_rng(rng, &signed_message(purpose, content))
            .map(|s| s.to_vec())
            .map_err(|e| IdentityError::Rsa(e.to_string()))
    }

    /// Signs a handshake transcript hash (what a viewer proves its identity with).
    pub fn sign_transcript(
        &self,
        transcript_hash: &[u8; 32],
        rng: &mut impl CryptoRng,
    ) -> Result<Vec<u8>, IdentityError> {
        self.sign(TRANSCRIPT_PURPOSE, transcript_hash, rng)
    }
}

/// The signed content of a certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateBody {
    /// The assistant's name as the customer will see it.
    pub name: String,
    /// The organisation's name as the customer will see it.
    pub organisation: String,
    /// SPKI DER of the assistant's public key.
    pub subject_key: Vec<u8>,
    /// Fingerprint of the organisation key that signed the certificate.
    pub issuer: Fingerprint,
    /// Start of validity, seconds since the Unix epoch.
    pub not_before: u64,
    /// End of validity, seconds since the Unix epoch.
    pub not_after: u64,
}

/// An organisation's statement that a public key belongs to a named assistant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    /// What is certified.
    pub body: CertificateBody,
    /// The organisation's PSS-SHA256 signature over `ponte/1 certificate\0 ‖ postcard(body)`.
    pub signature: Vec<u8>,
}

fn acceptable_text(s: &str) -> bool {
    let trimmed = s.trim();
    !trimmed.is_empty() && s.chars().count() <= MAX_NAME_CHARS && !s.chars().any(char::is_control)
}

impl Certificate {
    /// Issues a certificate for `subject` signed by the organisation key `issuer`.
    pub fn issue(
        issuer: &PrivateKey,
        name: &str,
        organisation: &str,
        subject: &PublicKey,
        not_before: u64,
        not_after: u64,
        rng: &mut impl CryptoRng,
    ) -> Result<Certificate, IdentityError> {
        if !acceptable_text(name) || !acceptable_text(organisation) {
            return Err(CertificateError::BadText.into());
        }
        let body = CertificateBody {
            name: name.to_owned(),
            organisation: organisation.to_owned(),
            subject_key: subject.der().to_vec(),
            issuer: issuer.public_key().fingerprint(),
            not_before,
            not_after,
        };
        let bytes = postcard::to_allocvec(&body).map_err(|_| CertificateError::Malformed)?;
        let signature = issuer.sign(CERTIFICATE_PURPOSE, &bytes, rng)?;
        Ok(Certificate { body, signature })
    }

    /// The binary encoding (postcard), as carried in the handshake.
    pub fn to_bytes(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// Parses the binary encoding, with bounds on every field.
    pub fn from_bytes(bytes: &[u8]) -> Result<Certificate, CertificateError> {
        let cert: Certificate = match postcard::take_from_bytes(bytes) {
            Ok((cert, [])) => cert,
            _ => return Err(CertificateError::Malformed),
        };
        cert.check_shape()?;
        Ok(cert)
    }

    fn check_shape(&self) -> Result<(), CertificateError> {
        if !acceptable_text(&self.body.name) || !acceptable_text(&self.body.organisation) {
            return Err(CertificateError::BadText);
        }
        if self.body.subject_key.len() > MAX_PUBLIC_KEY_DER || self.signature.len() > MAX_SIGNATURE {
            return Err(CertificateError::Malformed);
        }
        Ok(())
    }

    /// The PEM file form (`-----BEGIN PONTE CERTIFICATE-----`).
    pub fn to_pem(&self) -> String {
        pem_rfc7468::encode_string(
            CERTIFICATE_PEM_LABEL,
            pem_rfc7468::LineEnding::LF,
            &self.to_bytes(),
        )
        .unwrap_or_default()
    }

    /// Parses the PEM file form.
    pub fn from_pem(pem: &str) -> Result<Certificate, CertificateError> {
        let (label, bytes) =
            pem_rfc7468::decode_vec(pem.trim().as_bytes()).map_err(|_| CertificateError::Malformed)?;
        if label != CERTIFICATE_PEM_LABEL {
            return Err(CertificateError::Malformed);
        }
        Certificate::from_bytes(&bytes)
    }

    /// Checks that this certificate names `subject`, is signed by a key in `trust` and is
    /// valid at `now` (seconds since the Unix epoch); returns `(name, organisation)`.
    pub fn verify(
        &self,
        subject: &PublicKey,
        trust: &TrustStore,
        now: u64,
    ) -> Result<(&str, &str), CertificateError> {
        self.check_shape()?;
        let issuer = trust
            .find(&self.body.issuer)
            .ok_or(CertificateError::UnknownIssuer(self.body.issuer))?;
        let bytes = postcard::to_allocvec(&self.body).map_err(|_| CertificateError::Malformed)?;
        issuer
            .verify(CERTIFICATE_PURPOSE, &bytes, &self.signature)
            .map_err(|_| CertificateError::BadSignature)?;
        if self.body.subject_key != subject.der() {
            return Err(CertificateError::KeyMismatch);
        }
        if now < self.body.not_before {
            return Err(CertificateError::NotYetValid {
                not_before: self.body.not_before,
            });
        }
        if now > self.body.not_after {
            return Err(CertificateError::Expired {
                not_after: self.body.not_after,
            });
        }
        Ok((&self.body.name, &self.body.organisation))
    }
}

/// The organisation keys an agent trusts to vouch for assistants, each with the name the
/// customer's own configuration gives it: that name, not the text a certificate carries, is
/// what the customer is shown (two organisations can both call themselves "ACME Support").
#[derive(Debug, Clone, Default)]
pub struct TrustStore {
    organisations: Vec<(PublicKey, String)>,
}

impl TrustStore {
    /// An empty store: every assistant shows as unverified.
    pub fn new() -> TrustStore {
        TrustStore::default()
    }

    /// Trusts certificates signed by `organisation_key`, known locally as `name` (a key
    /// already trusted keeps its first name).
    pub fn add(&mut self, organisation_key: PublicKey, name: impl Into<String>) {
        if self.find(&organisation_key.fingerprint()).is_none() {
            self.organisations.push((organisation_key, name.into()));
        }
    }

    /// The trusted key with this fingerprint.
    pub fn find(&self, fingerprint: &Fingerprint) -> Option<&PublicKey> {
        self.organisations
            .iter()
            .find(|(k, _)| k.fingerprint() == *fingerprint)
            .map(|(k, _)| k)
    }

    /// The local name of the trusted key with this fingerprint.
    pub fn name(&self, fingerprint: &Fingerprint) -> Option<&str> {
        self.organisations
            .iter()
            .find(|(k, _)| k.fingerprint() == *fingerprint)
            .map(|(_, name)| name.as_str())
    }

    /// Whether no organisation is trusted.
    pub fn is_empty(&self) -> bool {
        self.organisations.is_empty()
    }
}

/// Who the agent is talking to, as far as it can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerIdentity {
    /// The assistant's certificate chains to a trusted organisation key.
    Verified {
        /// The assistant's name (from the certificate: text of the peer's).
        name: ponte_wire::text::PeerText,
        /// The organisation that vouches for the assistant: the name the agent's own trust
        /// configuration gives its key.
        organisation: ponte_wire::text::PeerText,
        /// What the certificate calls the organisation, when that differs from
        /// `organisation` (text of the peer's).
        certified_as: Option<ponte_wire::text::PeerText>,
        /// Fingerprint of the assistant's key.
        fingerprint: Fingerprint,
        /// Fingerprint of the organisation key that issued the certificate.
        issuer: Fingerprint,
    },
    /// Nobody the agent trusts vouches for this assistant.
    Unverified {
        /// Fingerprint of the assistant's key, for comparing over the phone.
        fingerprint: Fingerprint,
        /// Why the assistant is not verified.
        reason: CertificateError,
    },
}

impl PeerIdentity {
    /// Evaluates a peer's (already signature-checked) key and optional certificate.
    pub fn evaluate(
        key: &PublicKey,
        certificate: Option<&Certificate>,
        trust: &TrustStore,
        now: u64,
    ) -> PeerIdentity {
        let fingerprint = key.fingerprint();
        let Some(cert) = certificate else {
            return PeerIdentity::Unverified {
                fingerprint,
                reason: CertificateError::Missing,
            };
        };
        match cert.verify(key, trust, now) {
            Ok((name, certified)) => {
                // `verify` found the issuer in the store, so it has a local name.
                let local = trust.name(&cert.body.issuer).unwrap_or(certified);
                PeerIdentity::Verified {
                    name: name.into(),
                    organisation: local.into(),
                    certified_as: (certified != local).then(|| certified.into()),
                    fingerprint,
                    issuer: cert.body.issuer,
                }
            }
            Err(reason) => PeerIdentity::Unverified { fingerprint, reason },
        }
    }

    /// Whether a trusted organisation vouches for the peer.
    pub fn is_verified(&self) -> bool {
        matches!(self, PeerIdentity::Verified { .. })
    }
}

impl fmt::Display for PeerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerIdentity::Verified {
                name,
                organisation,
                certified_as,
                ..
            } => {
                write!(f, "verified: {name}, {organisation}")?;
                match certified_as {
                    Some(other) => write!(f, " (the certificate says {other})"),
                    None => Ok(()),
                }
            }
            PeerIdentity::Unverified { fingerprint, reason } => {
                write!(f, "UNVERIFIED ({reason}); key fingerprint {fingerprint}")
            }
        }
    }
}
