//! Assistant credentials: an Ed25519 key pair an operator's relay issues to an assistant.
//!
//! The viewer signs [`proof_message`] — which contains a TLS exporter value of its own
//! connection to the relay — and sends the public key and signature with its join. The relay
//! looks the public key up among its assistants and verifies the signature against the
//! exporter value of the same connection. So the secret never leaves the assistant's machine,
//! a proof cannot be replayed on another connection, and the relay's store holds nothing an
//! attacker could log in with. docs/PROTOCOL.md § 3.1 gives the reasoning.

use std::path::Path;

use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use ponte_wire::credential_text::{BadCredential, CredentialSecret};
use ponte_wire::rendezvous::{
    AssistantProof, JoinTarget, PROOF_EXPORTER_LABEL, PROOF_EXPORTER_LEN, Ticket, proof_message,
};

/// What went wrong with a credential.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The credential file could not be read.
    #[error("cannot read the credential file {path}: {error}")]
    Read {
        /// The file.
        path: String,
        /// Why (part of the message, not a `source()`: each cause is said once).
        error: std::io::Error,
    },
    /// The text is not a credential.
    #[error(transparent)]
    Bad(#[from] BadCredential),
    /// The key could not be used (should not happen with a well-formed seed).
    #[error("the credential's key was rejected")]
    Key,
    /// The TLS connection could not export keying material to bind the proof to.
    #[error("cannot bind the credential to the connection")]
    Exporter,
}

/// Largest credential file read: a credential is 83 bytes; the bound keeps a wrong path (a
/// device, a huge file) from being read whole.
const MAX_FILE: u64 = 4096;

/// An assistant credential: the secret and its Ed25519 key pair. `Debug` shows only the
/// public key's fingerprint.
pub struct AssistantCredential {
    secret: CredentialSecret,
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for AssistantCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "AssistantCredential(key {})",
            key_fingerprint(&self.public_key())
        )
    }
}

impl AssistantCredential {
    /// A fresh credential from the OS random generator.
    pub fn generate() -> Result<AssistantCredential, CredentialError> {
        let mut seed = [0u8; 32];
        aws_lc_rs::rand::fill(&mut seed).map_err(|_| CredentialError::Key)?;
        let secret = CredentialSecret::from_bytes(seed);
        zeroize::Zeroize::zeroize(&mut seed);
        AssistantCredential::from_secret(secret)
    }

    /// The credential with this secret.
    pub fn from_secret(secret: CredentialSecret) -> Result<AssistantCredential, CredentialError> {
        let pair = Ed25519KeyPair::from_seed_unchecked(secret.expose()).map_err(|_| CredentialError::Key)?;
        Ok(AssistantCredential { secret, pair })
    }

    /// Parses the text form (`ponte-assistant-v1-…`).
    pub fn parse(text: &str) -> Result<AssistantCredential, CredentialError> {
        AssistantCredential::from_secret(text.parse()?)
    }

    /// Reads a credential file (its text form, white space around it allowed).
    pub fn read(path: &Path) -> Result<AssistantCredential, CredentialError> {
        use std::io::Read;
        let read_error = |error| CredentialError::Read {
            path: path.display().to_string(),
            error,
        };
        let file = std::fs::File::open(path).map_err(read_error)?;
        let mut text = zeroize::Zeroizing::new(String::new());
        file.take(MAX_FILE)
            .read_to_string(&mut text)
            .map_err(read_error)?;
        AssistantCredential::parse(&text)
    }

    /// The secret's text form, to print once or write to a file.
    pub fn to_text(&self) -> zeroize::Zeroizing<String> {
        self.secret.to_text()
    }

    /// The public key the relay stores.
    pub fn public_key(&self) -> [u8; 32] {
        let mut key = [0u8; 32];
        key.copy_from_slice(self.pair.public_key().as_ref());
        key
    }

    /// Proves possession for a join of `session` with `ticket` over `connection`.
    pub fn prove(
        &self,
        connection: &quinn::Connection,
        target: impl Into<JoinTarget>,
        ticket: Option<&Ticket>,
    ) -> Result<AssistantProof, CredentialError> {
        let exporter = exporter(connection).ok_or(CredentialError::Exporter)?;
        Ok(self.prove_for(&exporter, target, ticket))
    }

    /// [`AssistantCredential::prove`] for a known exporter value (sans-IO, for tests).
    pub fn prove_for(
        &self,
        exporter: &[u8; PROOF_EXPORTER_LEN],
        target: impl Into<JoinTarget>,
        ticket: Option<&Ticket>,
    ) -> AssistantProof {
        let signature = self.pair.sign(&proof_message(exporter, target, ticket));
        let mut bytes = [0u8; 64];
        bytes.copy_from_slice(signature.as_ref());
        AssistantProof::new(self.public_key(), &bytes)
    }
}

/// Environment variable holding the credential itself, or the path of a file with it.
pub const ENV: &str = "PONTE_CREDENTIAL";

/// The credential to present: the file given explicitly, else the value of [`ENV`] (the
/// credential's text, or a path to a file holding it), else `default_file` if it exists, else
/// none. A credential that is given but unusable is an error, never silently skipped.
pub fn find(
    explicit: Option<&Path>,
    env: Option<&str>,
    default_file: Option<&Path>,
) -> Result<Option<AssistantCredential>, CredentialError> {
    if let Some(path) = explicit {
        return AssistantCredential::read(path).map(Some);
    }
    if let Some(value) = env.map(str::trim).filter(|v| !v.is_empty()) {
        return if value.starts_with(ponte_wire::credential_text::PREFIX) {
            AssistantCredential::parse(value).map(Some)
        } else {
            AssistantCredential::read(Path::new(value)).map(Some)
        };
    }
    match default_file {
        Some(path) if path.exists() => AssistantCredential::read(path).map(Some),
        _ => Ok(None),
    }
}

/// The connection's exporter value that proofs sign; both ends of a TLS connection compute the
/// same one.
pub fn exporter(connection: &quinn::Connection) -> Option<[u8; PROOF_EXPORTER_LEN]> {
    let mut out = [0u8; PROOF_EXPORTER_LEN];
    connection
        .export_keying_material(&mut out, PROOF_EXPORTER_LABEL, b"")
        .ok()?;
    Some(out)
}

/// Whether `proof` is a valid signature by its key over this join on a connection with this
/// exporter value. The caller decides whether the key belongs to an assistant.
pub fn verify(
    proof: &AssistantProof,
    exporter: &[u8; PROOF_EXPORTER_LEN],
    target: impl Into<JoinTarget>,
    ticket: Option<&Ticket>,
) -> bool {
    UnparsedPublicKey::new(&ED25519, proof.key)
        .verify(&proof_message(exporter, target, ticket), &proof.signature_bytes())
        .is_ok()
}

/// A short, non-secret name for a public key: the first 8 bytes of its SHA-256, in hex.
pub fn key_fingerprint(key: &[u8; 32]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key);
    digest.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ponte_wire::SessionId;

    #[test]
    fn proofs_verify_only_for_their_binding() {
        let credential = AssistantCredential::generate().unwrap();
        let exporter = [3u8; PROOF_EXPORTER_LEN];
        let id: SessionId = "123456789".parse().unwrap();
        let ticket: Ticket = "T-1".parse().unwrap();
        let proof = credential.prove_for(&exporter, id, Some(&ticket));
        assert_eq!(proof.key, credential.public_key());
        assert!(verify(&proof, &exporter, id, Some(&ticket)));
        // Another connection, session, ticket or key: refused.
        assert!(!verify(&proof, &[4; PROOF_EXPORTER_LEN], id, Some(&ticket)));
        assert!(!verify(
            &proof,
            &exporter,
            "123456780".parse::<SessionId>().unwrap(),
            Some(&ticket)
        ));
        assert!(!verify(&proof, &exporter, id, None));
        let other = AssistantCredential::generate().unwrap();
        let mut forged = proof.clone();
        forged.key = other.public_key();
        assert!(!verify(&forged, &exporter, id, Some(&ticket)));
        // Garbage keys are refused, not panics.
        forged.key = [0xff; 32];
        assert!(!verify(&forged, &exporter, id, Some(&ticket)));
    }

    #[test]
    fn find_prefers_the_flag_then_the_environment_then_the_default_file() {
        let dir = std::env::temp_dir().join(format!("ponte-find-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, c: &AssistantCredential| {
            let path = dir.join(name);
            std::fs::write(&path, format!("{}\n", *c.to_text())).unwrap();
            path
        };
        let (a, b, c) = (
            AssistantCredential::generate().unwrap(),
            AssistantCredential::generate().unwrap(),
            AssistantCredential::generate().unwrap(),
        );
        let (fa, fc) = (write("a", &a), write("c", &c));
        let key = |found: Option<AssistantCredential>| found.map(|c| c.public_key());
        let b_text = b.to_text();
        assert_eq!(
            key(find(Some(&fa), Some(&b_text), Some(&fc)).unwrap()),
            Some(a.public_key())
        );
        assert_eq!(
            key(find(None, Some(&b_text), Some(&fc)).unwrap()),
            Some(b.public_key())
        );
        let fa_text = fa.display().to_string();
        assert_eq!(
            key(find(None, Some(&fa_text), Some(&fc)).unwrap()),
            Some(a.public_key())
        );
        assert_eq!(
            key(find(None, Some(" "), Some(&fc)).unwrap()),
            Some(c.public_key())
        );
        assert_eq!(key(find(None, None, Some(&dir.join("missing"))).unwrap()), None);
        assert_eq!(key(find(None, None, None).unwrap()), None);
        // Given but unusable is an error.
        assert!(find(Some(&dir.join("missing")), None, None).is_err());
        assert!(find(None, Some("ponte-assistant-v1-00"), None).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn text_and_file_round_trip_and_debug_shows_no_secret() {
        let credential = AssistantCredential::generate().unwrap();
        let text = credential.to_text();
        let dir = std::env::temp_dir().join(format!("ponte-cred-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("credential");
        std::fs::write(&path, format!("{}\n", *text)).unwrap();
        let read = AssistantCredential::read(&path).unwrap();
        assert_eq!(read.public_key(), credential.public_key());
        let debug = format!("{credential:?}");
        assert!(
            !debug.contains(&text[ponte_wire::credential_text::PREFIX.len()..][..16]),
            "{debug}"
        );
        std::fs::write(&path, "not a credential").unwrap();
        assert!(matches!(
            AssistantCredential::read(&path),
            Err(CredentialError::Bad(_))
        ));
        assert!(matches!(
            AssistantCredential::read(&dir.join("missing")),
            Err(CredentialError::Read { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
