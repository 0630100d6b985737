//! The relay's side of a quick-access registration: a fresh X25519 challenge, and the check
//! that the agent answering it holds the private key of the device whose tag it registers, so
//! that knowing a device's public key (as every assistant it was given to does) is not enough
//! to take its tag. The agent's side is `ponte_protocol::device::DeviceKey::possession`; both
//! follow docs/PROTOCOL.md § 9.5. Built on aws-lc-rs: the relay has no end-to-end layer.

use aws_lc_rs::{agreement, digest, hmac};
use ponte_protocol::DeviceTag;

/// The protocol's label prefix (`ponte_protocol::key_schedule::LABEL_PREFIX`).
const LABEL_PREFIX: &[u8] = b"ponte/1 ";

/// One registration's challenge: an ephemeral X25519 key, used once.
pub struct Challenge {
    private: agreement::EphemeralPrivateKey,
    public: [u8; 32],
}

impl std::fmt::Debug for Challenge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Challenge").finish_non_exhaustive()
    }
}

impl Challenge {
    /// A fresh challenge; `None` if the system could not make a key.
    pub fn new() -> Option<Challenge> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let private = agreement::EphemeralPrivateKey::generate(&agreement::X25519, &rng).ok()?;
        let public = private.compute_public_key().ok()?.as_ref().try_into().ok()?;
        Some(Challenge { private, public })
    }

    /// What the relay sends the agent.
    pub fn public(&self) -> [u8; 32] {
        self.public
    }

    /// Whether `proof`, on the connection with this TLS `exporter` value, shows the holder of
    /// the private half of `device`, and `device` is the key of `tag`.
    pub fn verify(self, exporter: &[u8], tag: DeviceTag, device: &[u8; 32], proof: &[u8; 32]) -> bool {
        if tag_of(device) != tag {
            return false;
        }
        let challenge = self.public;
        let peer = agreement::UnparsedPublicKey::new(&agreement::X25519, device);
        // A low-order point makes the agreement fail: no proof.
        agreement::agree_ephemeral(self.private, peer, false, |shared| {
            let mut ctx = digest::Context::new(&digest::SHA256);
            ctx.update(LABEL_PREFIX);
            ctx.update(b"device possession\0");
            ctx.update(shared);
            let key = hmac::Key::new(hmac::HMAC_SHA256, ctx.finish().as_ref());
            let mut mac = hmac::Context::with_key(&key);
            mac.update(exporter);
            mac.update(device);
            mac.update(&challenge);
            let expected = mac.sign();
            // Constant time, as hmac::verify does.
            Ok(aws_lc_rs::constant_time::verify_slices_are_equal(expected.as_ref(), proof).is_ok())
        })
        .unwrap_or(false)
    }
}

/// A device's tag from its public key, as `ponte_protocol::device::DevicePublic::tag`
/// computes it.
pub fn tag_of(device: &[u8; 32]) -> DeviceTag {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(LABEL_PREFIX);
    ctx.update(b"device tag\0");
    ctx.update(device);
    let mut tag = [0u8; 16];
    tag.copy_from_slice(&ctx.finish().as_ref()[..16]);
    DeviceTag(tag)
}
