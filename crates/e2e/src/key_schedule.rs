//! The key schedule: transcript hashing, HKDF derivation of every handshake and traffic
//! secret, and key confirmation MACs.
//!
//! Every label is `ponte/1 ` followed by a purpose; docs/PROTOCOL.md lists them all.

use hkdf::Hkdf;
use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::Role;
use ponte_wire::LABEL_PREFIX;

/// Bytes of a SHA-256 output, transcript hash, secret or MAC.
pub const HASH_LEN: usize = 32;

/// A 32-byte secret that is wiped when dropped.
pub type Secret = Zeroizing<[u8; HASH_LEN]>;

fn label(purpose: &str) -> Vec<u8> {
    [LABEL_PREFIX.as_bytes(), purpose.as_bytes()].concat()
}

/// A running SHA-256 over length-prefixed items (`u32` big-endian length, then the bytes),
/// so that no two different sequences of items hash alike.
#[derive(Clone)]
pub struct Transcript(Sha256);

impl Transcript {
    /// A transcript that starts with the label `ponte/1 <purpose>`.
    pub fn new(purpose: &str) -> Transcript {
        let mut t = Transcript(Sha256::new());
        t.absorb(&label(purpose));
        t
    }

    /// Appends one item.
    pub fn absorb(&mut self, item: &[u8]) {
        // Items are handshake messages bounded far below 4 GiB by the frame format.
        self.0.update((item.len() as u32).to_be_bytes());
        self.0.update(item);
    }

    /// The hash of everything absorbed so far.
    pub fn hash(&self) -> [u8; HASH_LEN] {
        self.0.clone().finalize().into()
    }
}

impl std::fmt::Debug for Transcript {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Transcript(<redacted>)")
    }
}

/// Everything the handshake derives from the PAKE key and the X25519 secret.
pub struct HandshakeSecrets {
    /// Keys the viewer's confirmation MAC.
    pub confirm_viewer: Secret,
    /// Keys the agent's confirmation MAC.
    pub confirm_agent: Secret,
    /// AES-256-GCM key that hides the viewer's identity proof from the relay.
    pub identity: Secret,
    /// Traffic secret of everything the agent sends.
    pub traffic_agent: Secret,
    /// Traffic secret of everything the viewer sends.
    pub traffic_viewer: Secret,
    /// What a resume of this session proves and derives from (the relay never learns it);
    /// each resume derives the next one, so every resume secret is used once.
    pub resume: Secret,
}

impl HandshakeSecrets {
    /// The confirmation key of `role`.
    pub fn confirm_key(&self, role: Role) -> &Secret {
        match role {
            Role::Agent => &self.confirm_agent,
            Role::Viewer => &self.confirm_viewer,
        }
    }

    /// The traffic secret of what `role` sends.
    pub fn traffic(&self, role: Role) -> &Secret {
        match role {
            Role::Agent => &self.traffic_agent,
            Role::Viewer => &self.traffic_viewer,
        }
    }
}

impl std::fmt::Debug for HandshakeSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HandshakeSecrets(<redacted>)")
    }
}

fn expand(hk: &Hkdf<Sha256>, purpose: &str) -> Secret {
    let mut out = Zeroizing::new([0u8; HASH_LEN]);
    // 32 bytes is far below HKDF-SHA256's 8160-byte output limit.
    hk.expand(&label(purpose), out.as_mut())
        .unwrap_or_else(|_| unreachable!("32-byte HKDF output is valid"));
    out
}

/// `HKDF-Expand(secret, "ponte/1 <purpose>", 32)`: a secret derived from another one.
pub fn expand_secret(secret: &Secret, purpose: &str) -> Secret {
    let hk = Hkdf::<Sha256>::from_prk(secret.as_slice())
        .unwrap_or_else(|_| unreachable!("a 32-byte PRK is valid for HKDF-SHA256"));
    expand(&hk, purpose)
}

/// Derives the handshake secrets:
/// `PRK = HKDF-Extract(salt = transcript_hash, IKM = pake_key ‖ dh_secret)`, then one
/// `HKDF-Expand(PRK, "ponte/1 <purpose>", 32)` per secret.
pub fn derive(transcript_hash: &[u8; HASH_LEN], pake_key: &[u8], dh_secret: &[u8; 32]) -> HandshakeSecrets {
    let ikm = Zeroizing::new([pake_key, dh_secret.as_slice()].concat());
    let hk = Hkdf::<Sha256>::new(Some(transcript_hash), &ikm);
    HandshakeSecrets {
        confirm_viewer: expand(&hk, "confirm viewer"),
        confirm_agent: expand(&hk, "confirm agent"),
        identity: expand(&hk, "identity"),
        traffic_agent: expand(&hk, "traffic agent"),
        traffic_viewer: expand(&hk, "traffic viewer"),
        resume: expand(&hk, "resume"),
    }
}

/// The key confirmation MAC: `HMAC-SHA256(key, transcript_hash)`.
pub fn confirmation(key: &Secret, transcript_hash: &[u8; HASH_LEN]) -> [u8; HASH_LEN] {
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(key.as_slice())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(transcript_hash);
    mac.finalize().into_bytes().into()
}

/// Checks a confirmation MAC in constant time.
pub fn confirmation_matches(key: &Secret, transcript_hash: &[u8; HASH_LEN], tag: &[u8]) -> bool {
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(key.as_slice())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(transcript_hash);
    mac.verify_slice(tag).is_ok()
}

/// The AES-256-GCM key of one direction of one stream:
/// `HKDF-Expand(traffic_secret, "ponte/1 stream" ‖ stream number (u64 big endian), 32)`.
pub fn stream_key(traffic_secret: &Secret, stream: u64) -> Secret {
    let hk = Hkdf::<Sha256>::from_prk(traffic_secret.as_slice())
        .unwrap_or_else(|_| unreachable!("a 32-byte PRK is valid for HKDF-SHA256"));
    let info = [label("stream").as_slice(), &stream.to_be_bytes()].concat();
    let mut out = Zeroizing::new([0u8; HASH_LEN]);
    hk.expand(&info, out.as_mut())
        .unwrap_or_else(|_| unreachable!("32-byte HKDF output is valid"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transcript_items_are_unambiguous() {
        let mut a = Transcript::new("t");
        a.absorb(b"ab");
        a.absorb(b"c");
        let mut b = Transcript::new("t");
        b.absorb(b"a");
        b.absorb(b"bc");
        assert_ne!(a.hash(), b.hash());
        assert_ne!(Transcript::new("t").hash(), Transcript::new("u").hash());
    }

    #[test]
    fn secrets_are_distinct_and_depend_on_every_input() {
        let th = [1u8; 32];
        let s = derive(&th, &[2; 32], &[3; 32]);
        let all = [
            *s.confirm_viewer,
            *s.confirm_agent,
            *s.identity,
            *s.traffic_agent,
            *s.traffic_viewer,
            *s.resume,
        ];
        for i in 0..all.len() {
            for j in i + 1..all.len() {
                assert_ne!(all[i], all[j]);
            }
        }
        assert_ne!(
            *derive(&[9; 32], &[2; 32], &[3; 32]).traffic_agent,
            *s.traffic_agent
        );
        assert_ne!(*derive(&th, &[9; 32], &[3; 32]).traffic_agent, *s.traffic_agent);
        assert_ne!(*derive(&th, &[2; 32], &[9; 32]).traffic_agent, *s.traffic_agent);
    }

    #[test]
    fn confirmation_checks() {
        let key = Zeroizing::new([5u8; 32]);
        let th = [6u8; 32];
        let tag = confirmation(&key, &th);
        assert!(confirmation_matches(&key, &th, &tag));
        assert!(!confirmation_matches(&key, &[7; 32], &tag));
        assert!(!confirmation_matches(&Zeroizing::new([8; 32]), &th, &tag));
        assert!(!confirmation_matches(&key, &th, &tag[..31]));
    }

    #[test]
    fn stream_keys_differ_per_stream() {
        let t = Zeroizing::new([1u8; 32]);
        assert_ne!(*stream_key(&t, 0), *stream_key(&t, 1));
        assert_eq!(*stream_key(&t, 7), *stream_key(&t, 7));
    }
}
