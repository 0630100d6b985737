//! The customer's device key for quick access: a static X25519 key the agent creates when the
//! customer first lets an assistant reconnect without a code.
//!
//! The assistant's viewer learns the public half at opt-in and keeps it in its address book;
//! the key-authenticated handshake ([`crate::key_handshake`]) mixes a Diffie-Hellman with it
//! into every key, so only the holder of the private half can complete a session. The relay
//! finds the device by the [`DeviceTag`] derived from it, and learns the public key only when
//! the agent proves, at registration, that it holds the private half ([`DeviceKey::possession`]),
//! so that nobody who merely knows the public key can take the tag.

use std::fmt;
use std::str::FromStr;

use rand_core::CryptoRng;
use sha2::{Digest, Sha256};
use x25519_dalek::{PublicKey as X25519Public, StaticSecret};
use zeroize::Zeroizing;

use crate::ids::DeviceTag;
use crate::key_schedule::LABEL_PREFIX;

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
    /// connection with this TLS exporter value: HMAC-SHA-256 keyed with
    /// `SHA-256("ponte/1 device possession" ‖ 00 ‖ DH(d, challenge))` over
    /// `exporter ‖ D ‖ challenge` (docs/PROTOCOL.md § 9.5).
    pub fn possession(&self, challenge: &[u8; 32], exporter: &[u8]) -> [u8; 32] {
        use hmac::{KeyInit, Mac};
        let shared = self.diffie_hellman(challenge);
        let key: Zeroizing<[u8; 32]> = Zeroizing::new(
            Sha256::new()
                .chain_update(LABEL_PREFIX.as_bytes())
                .chain_update(b"device possession\0")
                .chain_update(shared.as_bytes())
                .finalize()
                .into(),
        );
        let mut mac = hmac::Hmac::<Sha256>::new_from_slice(key.as_slice())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(exporter);
        mac.update(&self.public.0);
        mac.update(challenge);
        mac.finalize().into_bytes().into()
    }

    pub(crate) fn diffie_hellman(&self, peer: &[u8; 32]) -> x25519_dalek::SharedSecret {
        self.secret.diffie_hellman(&X25519Public::from(*peer))
    }
}

/// A device's public key: what an assistant's address book stores.
#[derive(Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct DevicePublic(pub [u8; 32]);

impl DevicePublic {
    /// What the relay knows this device by.
    pub fn tag(&self) -> DeviceTag {
        let digest = Sha256::new()
            .chain_update(LABEL_PREFIX.as_bytes())
            .chain_update(b"device tag\0")
            .chain_update(self.0)
            .finalize();
        let mut tag = [0u8; 16];
        tag.copy_from_slice(&digest[..16]);
        DeviceTag(tag)
    }
}

impl fmt::Display for DevicePublic {
    /// 64 lowercase hex digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for DevicePublic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DevicePublic({self})")
    }
}

/// A device public key that is not 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a device key is 64 hex digits")]
pub struct ParseDeviceError;

impl FromStr for DevicePublic {
    type Err = ParseDeviceError;

    fn from_str(s: &str) -> Result<DevicePublic, ParseDeviceError> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s.trim(), &mut out).map_err(|_| ParseDeviceError)?;
        Ok(DevicePublic(out))
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
        // hmac, from docs/PROTOCOL.md § 9.5); the relay computes the same with aws-lc-rs
        // (ponte-transport's device module, which relay/tests/device.rs registers through).
        assert_eq!(
            hex::encode(proof),
            "d0635584e863da2ffb9aa6e2fbb38916853dc21a368cea0d0837d28c8f257297"
        );
        assert_ne!(proof, key.possession(&other.public().0, &[9; 32]));
        assert_ne!(proof, key.possession(&challenge, &[8; 32]));
        assert_ne!(proof, other.possession(&challenge, &[9; 32]));
    }

    #[test]
    fn public_key_round_trips_as_hex_and_tags_differ() {
        let a = DeviceKey::generate(&mut crate::os_rng());
        let b = DeviceKey::generate(&mut crate::os_rng());
        let text = a.public().to_string();
        assert_eq!(text.parse::<DevicePublic>(), Ok(a.public()));
        assert_ne!(a.public().tag(), b.public().tag());
        assert_eq!(DeviceKey::from_bytes(*a.to_bytes()).public(), a.public());
        assert!("xyz".parse::<DevicePublic>().is_err());
        assert!("+f".repeat(32).parse::<DevicePublic>().is_err());
        assert!(!format!("{a:?}").contains(&text));
    }
}
