//! The customer's device key for quick access: a static X25519 key the agent creates when the
//! customer first lets an assistant reconnect without a code.
//!
//! The assistant's viewer learns the public half at opt-in and keeps it in its address book;
//! the key-authenticated handshake ([`crate::key_handshake`]) mixes a Diffie-Hellman with it
//! into every key, so only the holder of the private half can complete a session. The relay
//! finds the device by the [`ponte_wire::DeviceTag`] derived from it, and learns the public key only when
//! the agent proves, at registration, that it holds the private half ([`DeviceKey::possession`]),
//! so that nobody who merely knows the public key can take the tag.

use std::fmt;

use ponte_wire::device::{DevicePublic, possession_proof};
use rand_core::CryptoRng;
use x25519_dalek::{PublicKey as X25519Public, StaticSecret};
use zeroize::Zeroizing;

/// A device's private key. Wiped from memory when dropped; never printed.
pub struct DeviceKey {
    secret: StaticSecret,
    public: DevicePublic,
}

impl fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceKey({})", self.public.tag())
    }
}

impl DeviceKey {
    /// A new random device key.
    pub fn generate(rng: &mut impl CryptoRng) -> DeviceKey {
        DeviceKey::from_secret(StaticSecret::random_from_rng(rng))
    }

    /// The key from its 32 stored bytes (as written by [`DeviceKey::to_bytes`]).
    pub fn from_bytes(bytes: [u8; 32]) -> DeviceKey {
        DeviceKey::from_secret(StaticSecret::from(bytes))
    }

    fn from_secret(secret: StaticSecret) -> DeviceKey {
        let public = DevicePublic(X25519Public::from(&secret).to_bytes());
        DeviceKey { secret, public }
    }

    /// The 32 secret bytes, for the agent's own key file only.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.secret.to_bytes())
    }

    /// The public half, given to assistants at opt-in.
    pub fn public(&self) -> DevicePublic {
        self.public
    }

    /// The answer to a relay's registration challenge (its ephemeral X25519 public key) on the
    /// connection with this TLS exporter value ([`possession_proof`], docs/PROTOCOL.md § 9.5).
    pub fn possession(&self, challenge: &[u8; 32], exporter: &[u8]) -> [u8; 32] {
        let shared = self.diffie_hellman(challenge);
        possession_proof(shared.as_bytes(), exporter, &self.public, challenge)
    }

    pub(crate) fn diffie_hellman(&self, peer: &[u8; 32]) -> x25519_dalek::SharedSecret {
        self.secret.diffie_hellman(&X25519Public::from(*peer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn possession_is_bound_to_the_challenge_the_connection_and_the_key() {
        let key = DeviceKey::from_bytes([1; 32]);
        let other = DeviceKey::from_bytes([2; 32]);
        let challenge = DeviceKey::from_bytes([3; 32]).public().0;
        let proof = key.possession(&challenge, &[9; 32]);
        // Known answer, computed independently (Python's `cryptography` X25519, hashlib and
        // hmac, from docs/PROTOCOL.md § 9.5).
        assert_eq!(
            hex::encode(proof),
            "d0635584e863da2ffb9aa6e2fbb38916853dc21a368cea0d0837d28c8f257297"
        );
        assert_ne!(proof, key.possession(&other.public().0, &[9; 32]));
        assert_ne!(proof, key.possession(&challenge, &[8; 32]));
        assert_ne!(proof, other.possession(&challenge, &[9; 32]));
    }

    #[test]
    fn the_relay_accepts_the_proof_of_the_key_holder_only() {
        use ponte_wire::device::Challenge;
        let key = DeviceKey::generate(&mut ponte_wire::os_rng());
        let other = DeviceKey::generate(&mut ponte_wire::os_rng());
        let tag = key.public().tag();
        let device = key.public().0;
        let proves = |prover: &DeviceKey, exporter: &[u8]| {
            let challenge = Challenge::new(&mut ponte_wire::os_rng());
            let proof = prover.possession(&challenge.public(), exporter);
            challenge.verify(b"connection", tag, &device, &proof)
        };
        assert!(proves(&key, b"connection"));
        assert!(!proves(&other, b"connection"), "another key's proof");
        assert!(
            !proves(&key, b"another connection"),
            "a proof made for another connection"
        );
        // The tag must be the key's.
        let challenge = Challenge::new(&mut ponte_wire::os_rng());
        let proof = key.possession(&challenge.public(), b"connection");
        assert!(!challenge.verify(b"connection", other.public().tag(), &device, &proof));
    }

    #[test]
    fn the_key_round_trips_and_is_never_printed() {
        let a = DeviceKey::generate(&mut ponte_wire::os_rng());
        assert_eq!(DeviceKey::from_bytes(*a.to_bytes()).public(), a.public());
        assert!(!format!("{a:?}").contains(&a.public().to_string()));
    }
}
