//! What the relay may know of a quick-access device: its [`DeviceTag`], derived from the
//! device's public key, and the check that an agent registering under a tag holds the private
//! half of its key (docs/PROTOCOL.md § 9.5) — so that knowing a device's public key, as every
//! assistant it was given to does, is not enough to take its tag.
//!
//! The formulas live here once: the agent's side of the proof
//! (`ponte_e2e::device_key::DeviceKey::possession`) calls [`possession_proof`], the relay's
//! side is [`Challenge::verify`].

use std::fmt;
use std::str::FromStr;

use hmac::{KeyInit, Mac};
use rand_core::CryptoRng;
use sha2::{Digest, Sha256};
use x25519_dalek::{EphemeralSecret, PublicKey};
use zeroize::Zeroizing;

use crate::LABEL_PREFIX;
use crate::ids::DeviceTag;

/// A device's public key: what an assistant's address book stores.
#[derive(Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct DevicePublic(pub [u8; 32]);

impl DevicePublic {
    /// What the relay knows this device by: `SHA-256("ponte/1 device tag" ‖ 00 ‖ key)`, its
    /// first 16 bytes.
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

/// Where a relay keeps a resume tag (`ClientMessage::RegisterResume`, `JoinResume`):
/// `SHA-256("ponte/1 resume slot" ‖ 00 ‖ tag)`, its first 16 bytes. A namespace of its own
/// beside device tags: whatever tag a client names, registering or looking it up as a resume
/// tag never takes or probes a device's tag.
pub fn resume_slot(tag: DeviceTag) -> DeviceTag {
    let digest = Sha256::new()
        .chain_update(LABEL_PREFIX.as_bytes())
        .chain_update(b"resume slot\0")
        .chain_update(tag.0)
        .finalize();
    let mut slot = [0u8; 16];
    slot.copy_from_slice(&digest[..16]);
    DeviceTag(slot)
}

/// A session's resume tag, from the proof its agent reveals only if the customer ends the
/// session while it waits to be resumed (`ClientMessage::EndResume`):
/// `SHA-256("ponte/1 resume tag" ‖ 00 ‖ end proof)`, its first 16 bytes. So a relay checks an
/// end against the tag it was left under, and nobody who lacks the session's secret can leave
/// one.
pub fn resume_tag(end_proof: &[u8; 32]) -> DeviceTag {
    let digest = Sha256::new()
        .chain_update(LABEL_PREFIX.as_bytes())
        .chain_update(b"resume tag\0")
        .chain_update(end_proof)
        .finalize();
    let mut tag = [0u8; 16];
    tag.copy_from_slice(&digest[..16]);
    DeviceTag(tag)
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

/// The MAC that proves possession of `device`'s private key: HMAC-SHA-256 keyed with
/// `SHA-256("ponte/1 device possession" ‖ 00 ‖ shared)` over `exporter ‖ device ‖ challenge`,
/// where `shared` is the X25519 agreement of the device key and the relay's `challenge` key.
fn possession_mac(
    shared: &[u8; 32],
    exporter: &[u8],
    device: &DevicePublic,
    challenge: &[u8; 32],
) -> hmac::Hmac<Sha256> {
    let key: Zeroizing<[u8; 32]> = Zeroizing::new(
        Sha256::new()
            .chain_update(LABEL_PREFIX.as_bytes())
            .chain_update(b"device possession\0")
            .chain_update(shared)
            .finalize()
            .into(),
    );
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(key.as_slice())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(exporter);
    mac.update(&device.0);
    mac.update(challenge);
    mac
}

/// The proof the agent sends, from the agreement `shared` of its device key with the relay's
/// `challenge`, on the connection with this TLS `exporter` value.
pub fn possession_proof(
    shared: &[u8; 32],
    exporter: &[u8],
    device: &DevicePublic,
    challenge: &[u8; 32],
) -> [u8; 32] {
    possession_mac(shared, exporter, device, challenge)
        .finalize()
        .into_bytes()
        .into()
}

/// The relay's side of one registration: an ephemeral X25519 key, used once.
pub struct Challenge {
    secret: EphemeralSecret,
    public: [u8; 32],
}

impl fmt::Debug for Challenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Challenge").finish_non_exhaustive()
    }
}

impl Challenge {
    /// A fresh challenge.
    pub fn new(rng: &mut impl CryptoRng) -> Challenge {
        let secret = EphemeralSecret::random_from_rng(rng);
        let public = PublicKey::from(&secret).to_bytes();
        Challenge { secret, public }
    }

    /// What the relay sends the agent.
    pub fn public(&self) -> [u8; 32] {
        self.public
    }

    /// Whether `proof`, on the connection with this TLS `exporter` value, shows the holder of
    /// the private half of `device`, and `device` is the key of `tag`.
    pub fn verify(self, exporter: &[u8], tag: DeviceTag, device: &[u8; 32], proof: &[u8; 32]) -> bool {
        let device = DevicePublic(*device);
        if device.tag() != tag {
            return false;
        }
        let shared = self.secret.diffie_hellman(&PublicKey::from(device.0));
        // A low-order point gives an agreement anyone can compute: no proof.
        if !shared.was_contributory() {
            return false;
        }
        // Constant time.
        possession_mac(shared.as_bytes(), exporter, &device, &self.public)
            .verify_slice(proof)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_key_round_trips_as_hex() {
        let a = DevicePublic([0xab; 32]);
        assert_eq!(a.to_string().parse::<DevicePublic>(), Ok(a));
        assert!("xyz".parse::<DevicePublic>().is_err());
        assert!("+f".repeat(32).parse::<DevicePublic>().is_err());
        assert_ne!(a.tag(), DevicePublic([0xac; 32]).tag());
    }

    #[test]
    fn a_low_order_device_key_proves_nothing() {
        // The all-zero point: every agreement with it is zero, which anyone can compute.
        let zero = DevicePublic([0; 32]);
        let challenge = Challenge::new(&mut crate::os_rng());
        let proof = possession_proof(&[0; 32], b"exporter", &zero, &challenge.public());
        assert!(!challenge.verify(b"exporter", zero.tag(), &zero.0, &proof));
    }
}
