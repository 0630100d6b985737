//! The key-authenticated end-to-end handshake of quick access: a returning assistant
//! reconnects to a customer's device without a code, only where the customer opted in.
//!
//! ```text
//! agent (device key d, D = d·G)                      viewer (knows D, assistant RSA key)
//!   Hello { e_A }                            ──▶
//!                                            ◀──   Auth { e_V, confirm_V,
//!                                                         sealed identity proof }
//!   Confirm { confirm_A }                    ──▶
//! ```
//!
//! Both ephemeral keys are fresh X25519 keys. The secrets come from the same key schedule as
//! the code handshake, with `es = X25519(e_V, D)` in place of the PAKE key and
//! `ee = X25519(e_V, e_A)` as the ephemeral secret, salted with a transcript that binds the
//! mode, the session ID, the relay's fingerprint, the device key and both ephemeral keys.
//!
//! - The device is authenticated implicitly: without `d` nobody derives the keys, so a wrong
//!   device (another agent, a relay, an old copy) cannot produce `confirm_A`.
//! - The assistant is authenticated explicitly: its RSA-PSS signature over the transcript and
//!   its certificate travel sealed under those keys (the relay never learns who connects),
//!   and the agent admits it only if one of the customer's unexpired opt-ins
//!   ([`Admission`]) names that assistant's key or its organisation.
//!
//! docs/PROTOCOL.md § "Quick access" has the security argument.

use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use x25519_dalek::{EphemeralSecret, PublicKey as X25519Public, StaticSecret};

use crate::Role;
use crate::device_key::DeviceKey;
use crate::handshake::{
    AbortReason, Credentials, HandshakeContext, HandshakeError, MAX_MESSAGE, aborted, check_identity,
    contributory, seal_identity, x25519,
};
use crate::identity::{Fingerprint, PeerIdentity, TrustStore};
use crate::key_schedule::{self, HASH_LEN, HandshakeSecrets, Transcript};
use crate::session_keys::SessionKeys;
use ponte_wire::device::DevicePublic;
use ponte_wire::frame::{self, FrameError};

/// Messages the agent sends in a key-authenticated handshake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyAgentMessage {
    /// First message: the agent's ephemeral X25519 public key.
    Hello {
        /// Ephemeral X25519 public key `e_A`.
        x25519: [u8; 32],
    },
    /// Final message: `HMAC(confirm agent key, TH2)`.
    Confirm([u8; HASH_LEN]),
    /// The agent gave up; no further message follows.
    Abort(AbortReason),
}

/// The viewer's only message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyViewerAuth {
    /// Ephemeral X25519 public key `e_V`.
    pub x25519: [u8; 32],
    /// `HMAC(confirm viewer key, TH1)`.
    pub confirm: [u8; HASH_LEN],
    /// The [`crate::handshake::IdentityProof`], sealed as in the code handshake.
    pub sealed_identity: Vec<u8>,
}

/// Messages the viewer sends in a key-authenticated handshake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyViewerMessage {
    /// The viewer's only message.
    Auth(KeyViewerAuth),
}

crate::handshake::framed!(KeyAgentMessage);
crate::handshake::framed!(KeyViewerMessage);

/// Whom one of the customer's opt-ins lets reconnect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Admits {
    /// Exactly this assistant: the fingerprint of its RSA key (still with a valid certificate).
    Assistant(Fingerprint),
    /// Any assistant with a valid certificate from the organisation key with this fingerprint.
    Organisation(Fingerprint),
}

/// One opt-in as the handshake sees it: whom it admits and until when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// Whom it admits.
    pub admits: Admits,
    /// End of the opt-in, seconds since the Unix epoch; later attempts are refused.
    pub not_after: u64,
}

impl Admission {
    /// Whether this opt-in lets `peer` in at `now` (seconds since the Unix epoch).
    pub fn admits(&self, peer: &PeerIdentity, now: u64) -> bool {
        let PeerIdentity::Verified {
            fingerprint, issuer, ..
        } = peer
        else {
            // Quick access is for verified assistants only, at opt-in and at every reconnect.
            return false;
        };
        now <= self.not_after
            && match self.admits {
                Admits::Assistant(key) => key == *fingerprint,
                Admits::Organisation(org) => org == *issuer,
            }
    }
}

fn transcript(
    context: &HandshakeContext,
    device: &DevicePublic,
    e_a: &[u8; 32],
    e_v: &[u8; 32],
) -> [u8; HASH_LEN] {
    let mut t = Transcript::new("key handshake");
    t.absorb(b"ponte/1");
    t.absorb(context.session.to_digits().as_bytes());
    t.absorb(&context.relay);
    t.absorb(&device.0);
    t.absorb(e_a);
    t.absorb(e_v);
    t.hash()
}

fn second_transcript(th1: &[u8; HASH_LEN], auth: &KeyViewerAuth) -> [u8; HASH_LEN] {
    let mut t = Transcript::new("key agent confirm");
    t.absorb(th1);
    t.absorb(&auth.confirm);
    t.absorb(&auth.sealed_identity);
    t.hash()
}

/// What the agent learns from a successful key-authenticated handshake.
#[derive(Debug)]
pub struct KeyAgentOutcome {
    /// The session's traffic keys.
    pub keys: SessionKeys,
    /// Who the assistant is (always verified).
    pub peer: PeerIdentity,
    /// Index into the admissions passed to [`KeyAgentHandshake::receive`] of the opt-in that
    /// let the assistant in.
    pub admission: usize,
}

/// The agent's key-authenticated handshake, after sending [`KeyAgentMessage::Hello`].
pub struct KeyAgentHandshake {
    context: HandshakeContext,
    device: DevicePublic,
    e_a: [u8; 32],
    secret: EphemeralSecret,
}

impl std::fmt::Debug for KeyAgentHandshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyAgentHandshake")
            .field("context", &self.context)
            .finish_non_exhaustive()
    }
}

impl KeyAgentHandshake {
    /// Starts a handshake for a viewer that asked for this device.
    pub fn start(
        context: HandshakeContext,
        device: &DeviceKey,
        rng: &mut impl CryptoRng,
    ) -> (KeyAgentHandshake, KeyAgentMessage) {
        let secret = EphemeralSecret::random_from_rng(rng);
        let e_a = X25519Public::from(&secret).to_bytes();
        (
            KeyAgentHandshake {
                context,
                device: device.public(),
                e_a,
                secret,
            },
            KeyAgentMessage::Hello { x25519: e_a },
        )
    }

    /// Processes the viewer's answer with the device key given to [`KeyAgentHandshake::start`].
    /// Succeeds only if the viewer derived the same keys (it used this device's public key)
    /// and one unexpired admission admits the verified assistant; on failure the caller
    /// sends [`KeyAgentMessage::Abort`] with [`HandshakeError::abort_reason`].
    pub fn receive(
        self,
        message: &KeyViewerMessage,
        device: &DeviceKey,
        trust: &TrustStore,
        admissions: &[Admission],
        now_unix: u64,
    ) -> Result<(KeyAgentMessage, KeyAgentOutcome), HandshakeError> {
        if device.public() != self.device {
            return Err(HandshakeError::WrongDevice);
        }
        let KeyViewerMessage::Auth(auth) = message;
        let th1 = transcript(&self.context, &self.device, &self.e_a, &auth.x25519);
        let ee = x25519(self.secret, &auth.x25519)?;
        let es = contributory(device.diffie_hellman(&auth.x25519))?;
        let secrets = key_schedule::derive(&th1, &es[..], &ee);
        if !key_schedule::confirmation_matches(&secrets.confirm_viewer, &th1, &auth.confirm) {
            // The viewer computed other keys: it expected another device.
            return Err(HandshakeError::WrongDevice);
        }
        let peer = check_identity(&secrets, &th1, &auth.sealed_identity, trust, now_unix)?;
        let Some(admission) = admissions.iter().position(|a| a.admits(&peer, now_unix)) else {
            return Err(HandshakeError::NotTrusted(Box::new(peer)));
        };
        let th2 = second_transcript(&th1, auth);
        let confirm = key_schedule::confirmation(&secrets.confirm_agent, &th2);
        Ok((
            KeyAgentMessage::Confirm(confirm),
            KeyAgentOutcome {
                keys: SessionKeys::from_secrets(Role::Agent, &secrets),
                peer,
                admission,
            },
        ))
    }
}

/// The viewer's key-authenticated handshake before the agent's hello.
#[derive(Debug)]
pub struct KeyViewerHandshake {
    context: HandshakeContext,
    device: DevicePublic,
}

/// The viewer's key-authenticated handshake after sending its `Auth`.
pub struct KeyViewerAwaitingConfirm {
    th2: [u8; HASH_LEN],
    secrets: HandshakeSecrets,
}

impl std::fmt::Debug for KeyViewerAwaitingConfirm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyViewerAwaitingConfirm")
    }
}

impl KeyViewerHandshake {
    /// A handshake with the device whose public key the assistant's address book holds.
    pub fn new(context: HandshakeContext, device: DevicePublic) -> KeyViewerHandshake {
        KeyViewerHandshake { context, device }
    }

    /// Processes the agent's hello and produces the viewer's authentication message.
    pub fn receive_hello(
        self,
        message: &KeyAgentMessage,
        credentials: &Credentials,
        rng: &mut impl CryptoRng,
    ) -> Result<(KeyViewerMessage, KeyViewerAwaitingConfirm), HandshakeError> {
        let e_a = match message {
            KeyAgentMessage::Hello { x25519 } => x25519,
            KeyAgentMessage::Abort(reason) => return Err(aborted(*reason)),
            KeyAgentMessage::Confirm(_) => return Err(HandshakeError::UnexpectedMessage),
        };
        // The viewer's ephemeral key is used twice (with e_A and with D), which x25519-dalek's
        // single-use EphemeralSecret does not allow; this one is just as fresh and is dropped
        // (and wiped) at the end of this function.
        let secret = StaticSecret::random_from_rng(rng);
        let e_v = X25519Public::from(&secret).to_bytes();
        let th1 = transcript(&self.context, &self.device, e_a, &e_v);
        let ee = contributory(secret.diffie_hellman(&X25519Public::from(*e_a)))?;
        let es = contributory(secret.diffie_hellman(&X25519Public::from(self.device.0)))?;
        let secrets = key_schedule::derive(&th1, &es[..], &ee);
        let sealed_identity = seal_identity(&secrets, &th1, credentials, rng)?;
        let auth = KeyViewerAuth {
            x25519: e_v,
            confirm: key_schedule::confirmation(&secrets.confirm_viewer, &th1),
            sealed_identity,
        };
        let th2 = second_transcript(&th1, &auth);
        Ok((
            KeyViewerMessage::Auth(auth),
            KeyViewerAwaitingConfirm { th2, secrets },
        ))
    }
}

impl KeyViewerAwaitingConfirm {
    /// Checks the agent's confirmation; on success the session is established with the
    /// device.
    pub fn receive_confirm(self, message: &KeyAgentMessage) -> Result<SessionKeys, HandshakeError> {
        match message {
            KeyAgentMessage::Confirm(tag) => {
                if key_schedule::confirmation_matches(&self.secrets.confirm_agent, &self.th2, tag) {
                    Ok(SessionKeys::from_secrets(Role::Viewer, &self.secrets))
                } else {
                    Err(HandshakeError::WrongDevice)
                }
            }
            KeyAgentMessage::Abort(reason) => Err(aborted(*reason)),
            KeyAgentMessage::Hello { .. } => Err(HandshakeError::UnexpectedMessage),
        }
    }
}
