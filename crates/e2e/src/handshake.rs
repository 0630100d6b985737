//! The code-gated end-to-end handshake between agent and viewer, through the relay.
//!
//! ```text
//! agent                                              viewer
//!   Hello { pake_A, x25519_A }               ──▶
//!                                            ◀──   Auth { pake_V, x25519_V, confirm_V,
//!                                                         sealed identity proof }
//!   Confirm { confirm_A }                    ──▶
//! ```
//!
//! SPAKE2 (Ed25519 group) with the one-time code as password gives both sides the same key
//! only if they used the same code; an ephemeral X25519 exchange runs alongside. The viewer
//! proves knowledge of the code first (confirm_V), and with it sends its identity proof —
//! RSA public key, optional certificate and a signature over the transcript — encrypted so
//! the relay never learns who the assistant is. The agent answers with its own confirmation
//! only after checking all of that. A relay in the middle gets one online guess of the code
//! per attempt, and the agent counts every failed attempt ([`CodeAttempts`]).
//!
//! Both roles are typestate machines fed decoded messages; they do no I/O.

use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use spake2::{Ed25519Group, Identity, Password, Spake2};
use x25519_dalek::{EphemeralSecret, PublicKey as X25519Public};
use zeroize::Zeroizing;

use crate::Role;
use crate::cipher::{AeadKey, Backend, NONCE_LEN, TAG_LEN};
use crate::identity::{Certificate, PeerIdentity, PrivateKey, PublicKey, TrustStore};
use crate::key_schedule::{self, HASH_LEN, HandshakeSecrets, Transcript};
use crate::session_keys::SessionKeys;
use ponte_wire::frame::{self, FrameError};
use ponte_wire::{OneTimeCode, SessionId};

/// Largest handshake frame body. The biggest message, the viewer's `Auth`, is about 2 KiB
/// with a 4096-bit key and a certificate.
pub const MAX_MESSAGE: usize = 8 * 1024;

/// Bytes of a SPAKE2 message over Ed25519 (side byte and compressed point).
pub const PAKE_MESSAGE_LEN: usize = 33;

/// Why a handshake failed. No variant carries key material or the code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The peer did not prove knowledge of the code: wrong code, or someone in the middle.
    #[error("wrong code")]
    WrongCode,
    /// The code has been tried too often and is spent; a new session ID and code are needed.
    #[error("the code was tried too often and is no longer valid")]
    Burned,
    /// A message had the right shape but invalid content (bad curve point, wrong length).
    #[error("invalid handshake message: {0}")]
    Malformed(&'static str),
    /// A message arrived that this state does not expect.
    #[error("unexpected handshake message")]
    UnexpectedMessage,
    /// The viewer's identity proof is unreadable or its key is not acceptable.
    #[error("invalid assistant identity: {0}")]
    BadIdentity(String),
    /// The viewer's signature over the transcript does not verify.
    #[error("the assistant's signature does not verify")]
    BadSignature,
    /// Signing the transcript failed on this side.
    #[error("could not sign the handshake: {0}")]
    Signing(String),
    /// The message could not be decoded.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// Quick access: the assistant proved who it is, but the customer has not (or no longer)
    /// let it reconnect without a code: no opt-in, expired or removed, or another
    /// organisation.
    #[error("not allowed to reconnect without a code: {0}")]
    NotTrusted(Box<PeerIdentity>),
    /// Quick access: the other side does not hold the device key the viewer expected (another
    /// device answered, or someone in the middle).
    #[error("the other side is not the expected device")]
    WrongDevice,
    /// Resume: the other side does not hold this session's resume secret (someone else
    /// answered under its tag, or the other side already forgot the session).
    #[error("the other side could not prove it holds this session")]
    WrongResume,
}

/// Why the agent gave up a handshake, told to the viewer so it can say so plainly.
///
/// Unauthenticated (the relay could forge or drop it); it explains a failure, it never
/// causes a success.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AbortReason {
    /// The viewer's confirmation did not match: wrong code.
    WrongCode,
    /// The code was tried too often and is spent.
    Burned,
    /// Any other failure of the viewer's message.
    Invalid,
    /// Quick access: this assistant may not reconnect to this device without a code.
    NotTrusted,
}

/// The agent's first message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentHello {
    /// SPAKE2 message of side A.
    pub pake: Vec<u8>,
    /// Ephemeral X25519 public key.
    pub x25519: [u8; 32],
}

/// The viewer's answer: its PAKE and X25519 shares, its key confirmation and its identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewerAuth {
    /// SPAKE2 message of side B.
    pub pake: Vec<u8>,
    /// Ephemeral X25519 public key.
    pub x25519: [u8; 32],
    /// `HMAC(confirm viewer key, TH1)`.
    pub confirm: [u8; HASH_LEN],
    /// AES-256-GCM (identity key, zero nonce, aad = TH1) of the encoded [`IdentityProof`],
    /// tag appended.
    pub sealed_identity: Vec<u8>,
}

/// What the viewer proves its identity with (sent encrypted inside [`ViewerAuth`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityProof {
    /// SPKI DER of the assistant's RSA key.
    pub public_key: Vec<u8>,
    /// The organisation's certificate for that key, if the assistant has one.
    pub certificate: Option<Certificate>,
    /// PSS-SHA256 signature over `ponte/1 viewer signature\0 ‖ TH1`.
    pub signature: Vec<u8>,
}

/// Messages the agent sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AgentMessage {
    /// First message.
    Hello(AgentHello),
    /// Final message: `HMAC(confirm agent key, TH2)`.
    Confirm([u8; HASH_LEN]),
    /// The agent gave up; no further message follows.
    Abort(AbortReason),
}

/// Messages the viewer sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ViewerMessage {
    /// The viewer's only message.
    Auth(ViewerAuth),
}

macro_rules! framed {
    ($t:ty) => {
        impl $t {
            /// Encodes the message as a frame.
            pub fn encode(&self) -> Vec<u8> {
                // Handshake messages are bounded by construction: keys and certificates are
                // size-checked when loaded, so this cannot exceed MAX_MESSAGE.
                frame::encode(self, MAX_MESSAGE).unwrap_or_default()
            }

            /// Decodes one complete frame.
            pub fn decode(bytes: &[u8]) -> Result<Self, FrameError> {
                frame::decode(bytes, MAX_MESSAGE)
            }
        }
    };
}
// The key handshake's messages are framed the same way.
pub(crate) use framed;
framed!(AgentMessage);
framed!(ViewerMessage);

/// What both sides bind the handshake to besides the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandshakeContext {
    /// The session ID the relay issued.
    pub session: SessionId,
    /// SHA-256 of the relay's TLS certificate as this side saw it.
    pub relay: [u8; 32],
}

impl HandshakeContext {
    /// The SPAKE2 identity of `role`: `ponte/1`, role, session digits and relay fingerprint,
    /// each length-prefixed.
    fn pake_identity(&self, role: Role) -> Vec<u8> {
        let mut out = Vec::new();
        for item in [
            b"ponte/1".as_slice(),
            role.label().as_bytes(),
            self.session.to_digits().as_bytes(),
            &self.relay,
        ] {
            out.extend_from_slice(&(item.len() as u32).to_be_bytes());
            out.extend_from_slice(item);
        }
        out
    }

    fn transcript(&self, hello: &AgentHello, auth_pake: &[u8], auth_x25519: &[u8; 32]) -> [u8; HASH_LEN] {
        let mut t = Transcript::new("handshake");
        t.absorb(&self.pake_identity(Role::Agent));
        t.absorb(&self.pake_identity(Role::Viewer));
        t.absorb(&hello.pake);
        t.absorb(&hello.x25519);
        t.absorb(auth_pake);
        t.absorb(auth_x25519);
        t.hash()
    }
}

fn second_transcript(th1: &[u8; HASH_LEN], auth: &ViewerAuth) -> [u8; HASH_LEN] {
    let mut t = Transcript::new("agent confirm");
    t.absorb(th1);
    t.absorb(&auth.confirm);
    t.absorb(&auth.sealed_identity);
    t.hash()
}

fn password(code: &OneTimeCode) -> Password {
    Password::new(Zeroizing::new(code.digits()).as_bytes())
}

fn pake_key(spake: Spake2<Ed25519Group>, peer: &[u8]) -> Result<Zeroizing<Vec<u8>>, HandshakeError> {
    if peer.len() != PAKE_MESSAGE_LEN {
        return Err(HandshakeError::Malformed("PAKE message length"));
    }
    spake
        .finish(peer)
        .map(Zeroizing::new)
        .map_err(|_| HandshakeError::Malformed("PAKE message"))
}

pub(crate) fn x25519(
    secret: EphemeralSecret,
    peer: &[u8; 32],
) -> Result<Zeroizing<[u8; 32]>, HandshakeError> {
    contributory(secret.diffie_hellman(&X25519Public::from(*peer)))
}

/// The shared secret, unless the peer's key was a low-order point (no secret at all).
pub(crate) fn contributory(
    shared: x25519_dalek::SharedSecret,
) -> Result<Zeroizing<[u8; 32]>, HandshakeError> {
    if !shared.was_contributory() {
        return Err(HandshakeError::Malformed("X25519 low-order point"));
    }
    Ok(Zeroizing::new(shared.to_bytes()))
}

fn identity_key(secrets: &HandshakeSecrets) -> AeadKey {
    AeadKey::new(Backend::default(), &secrets.identity)
}

/// How many wrong attempts an agent's code has left. Lives as long as one session ID and
/// code pair; after [`CodeAttempts::MAX_FAILURES`] failures the pair must be burned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CodeAttempts {
    failures: u8,
}

impl CodeAttempts {
    /// Failed attempts after which the session ID and code are burned.
    pub const MAX_FAILURES: u8 = 3;

    /// A fresh code with all attempts left.
    pub fn new() -> CodeAttempts {
        CodeAttempts::default()
    }

    /// Failed attempts so far.
    pub fn failures(&self) -> u8 {
        self.failures
    }

    /// Attempts left before the code is burned.
    pub fn remaining(&self) -> u8 {
        Self::MAX_FAILURES.saturating_sub(self.failures)
    }

    /// Whether the code is spent: the agent must burn the session ID and make a new pair.
    pub fn must_burn(&self) -> bool {
        self.remaining() == 0
    }

    fn record_failure(&mut self) {
        self.failures = self.failures.saturating_add(1);
    }
}

/// What the agent learns from a successful handshake.
#[derive(Debug)]
pub struct AgentOutcome {
    /// The session's traffic keys.
    pub keys: SessionKeys,
    /// Who the assistant is, for the consent prompt.
    pub peer: PeerIdentity,
}

/// The agent's handshake, after sending [`AgentMessage::Hello`] and waiting for the viewer.
pub struct AgentHandshake {
    context: HandshakeContext,
    hello: AgentHello,
    spake: Spake2<Ed25519Group>,
    secret: EphemeralSecret,
}

impl std::fmt::Debug for AgentHandshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentHandshake")
            .field("context", &self.context)
            .finish_non_exhaustive()
    }
}

impl AgentHandshake {
    /// Starts a handshake for a freshly paired viewer. Refused once the code is spent.
    pub fn start(
        context: HandshakeContext,
        code: &OneTimeCode,
        attempts: &CodeAttempts,
        rng: &mut impl CryptoRng,
    ) -> Result<(AgentHandshake, AgentMessage), HandshakeError> {
        if attempts.must_burn() {
            return Err(HandshakeError::Burned);
        }
        let (spake, pake) = Spake2::<Ed25519Group>::start_a_with_rng(
            &password(code),
            &Identity::new(&context.pake_identity(Role::Agent)),
            &Identity::new(&context.pake_identity(Role::Viewer)),
            &mut *rng,
        );
        let secret = EphemeralSecret::random_from_rng(rng);
        let hello = AgentHello {
            pake,
            x25519: X25519Public::from(&secret).to_bytes(),
        };
        let message = AgentMessage::Hello(hello.clone());
        Ok((
            AgentHandshake {
                context,
                hello,
                spake,
                secret,
            },
            message,
        ))
    }

    /// Processes the viewer's answer. On success returns the final confirmation to send and
    /// the established session; on any failure the attempt is counted in `attempts` and the
    /// caller should send [`AgentMessage::Abort`] with [`HandshakeError::abort_reason`].
    pub fn receive(
        self,
        message: &ViewerMessage,
        attempts: &mut CodeAttempts,
        trust: &TrustStore,
        now_unix: u64,
    ) -> Result<(AgentMessage, AgentOutcome), HandshakeError> {
        let result = self.verify(message, trust, now_unix);
        if result.is_err() {
            attempts.record_failure();
        }
        result
    }

    /// Gives up on an attempt whose `Auth` message could not even be decoded. It counts as a
    /// failed attempt: the viewer may have learned as much as from a wrong guess.
    pub fn reject_undecodable(self, attempts: &mut CodeAttempts) {
        attempts.record_failure();
    }

    fn verify(
        self,
        message: &ViewerMessage,
        trust: &TrustStore,
        now_unix: u64,
    ) -> Result<(AgentMessage, AgentOutcome), HandshakeError> {
        let ViewerMessage::Auth(auth) = message;
        let th1 = self.context.transcript(&self.hello, &auth.pake, &auth.x25519);
        let pake = pake_key(self.spake, &auth.pake)?;
        let dh = x25519(self.secret, &auth.x25519)?;
        let secrets = key_schedule::derive(&th1, &pake, &dh);
        if !key_schedule::confirmation_matches(&secrets.confirm_viewer, &th1, &auth.confirm) {
            return Err(HandshakeError::WrongCode);
        }

        let peer = check_identity(&secrets, &th1, &auth.sealed_identity, trust, now_unix)?;

        let th2 = second_transcript(&th1, auth);
        let confirm = key_schedule::confirmation(&secrets.confirm_agent, &th2);
        Ok((
            AgentMessage::Confirm(confirm),
            AgentOutcome {
                keys: SessionKeys::from_secrets(Role::Agent, &secrets),
                peer,
            },
        ))
    }
}

/// Opens the viewer's sealed identity proof, checks its signature over `th1` and evaluates
/// the certificate: who the viewer is.
pub(crate) fn check_identity(
    secrets: &HandshakeSecrets,
    th1: &[u8; HASH_LEN],
    sealed: &[u8],
    trust: &TrustStore,
    now_unix: u64,
) -> Result<PeerIdentity, HandshakeError> {
    let proof = open_identity(secrets, th1, sealed)?;
    let key =
        PublicKey::from_der(&proof.public_key).map_err(|e| HandshakeError::BadIdentity(e.to_string()))?;
    key.verify_transcript(th1, &proof.signature)
        .map_err(|_| HandshakeError::BadSignature)?;
    Ok(PeerIdentity::evaluate(
        &key,
        proof.certificate.as_ref(),
        trust,
        now_unix,
    ))
}

fn open_identity(
    secrets: &HandshakeSecrets,
    th1: &[u8; HASH_LEN],
    sealed: &[u8],
) -> Result<IdentityProof, HandshakeError> {
    let split = sealed
        .len()
        .checked_sub(TAG_LEN)
        .ok_or_else(|| HandshakeError::BadIdentity("too short".into()))?;
    let (ciphertext, tag) = sealed.split_at(split);
    let mut plaintext = ciphertext.to_vec();
    let tag: &[u8; TAG_LEN] = tag
        .try_into()
        .map_err(|_| HandshakeError::BadIdentity("tag".into()))?;
    identity_key(secrets)
        .open_in_place([0; NONCE_LEN], th1, &mut plaintext, tag)
        .map_err(|_| HandshakeError::BadIdentity("identity proof failed authentication".into()))?;
    match postcard::take_from_bytes::<IdentityProof>(&plaintext) {
        Ok((proof, [])) => Ok(proof),
        _ => Err(HandshakeError::BadIdentity("malformed identity proof".into())),
    }
}

/// The viewer's identity proof (key, certificate, signature over `th1`), sealed with the
/// handshake's identity key so that only the other end of the handshake can read it.
pub(crate) fn seal_identity(
    secrets: &HandshakeSecrets,
    th1: &[u8; HASH_LEN],
    credentials: &Credentials,
    rng: &mut impl CryptoRng,
) -> Result<Vec<u8>, HandshakeError> {
    let proof = IdentityProof {
        public_key: credentials.key.public_key().der().to_vec(),
        certificate: credentials.certificate.clone(),
        signature: credentials
            .key
            .sign_transcript(th1, rng)
            .map_err(|e| HandshakeError::Signing(e.to_string()))?,
    };
    let mut sealed = postcard::to_allocvec(&proof).map_err(|_| HandshakeError::Malformed("identity"))?;
    let tag = identity_key(secrets).seal_in_place([0; NONCE_LEN], th1, &mut sealed);
    sealed.extend_from_slice(&tag);
    Ok(sealed)
}

impl HandshakeError {
    /// What the agent tells the viewer after this failure, given the attempts left.
    pub fn abort_reason(&self, attempts: &CodeAttempts) -> AbortReason {
        match self {
            _ if attempts.must_burn() => AbortReason::Burned,
            HandshakeError::WrongCode => AbortReason::WrongCode,
            HandshakeError::NotTrusted(_) => AbortReason::NotTrusted,
            _ => AbortReason::Invalid,
        }
    }
}

/// The assistant's identity as the viewer presents it.
#[derive(Debug)]
pub struct Credentials {
    /// The assistant's RSA key.
    pub key: PrivateKey,
    /// The organisation's certificate for the key, if any.
    pub certificate: Option<Certificate>,
}

/// The viewer's handshake before the agent's hello has arrived.
#[derive(Debug)]
pub struct ViewerHandshake {
    context: HandshakeContext,
    code: OneTimeCode,
}

/// The viewer's handshake after sending [`ViewerMessage::Auth`], waiting for the agent's
/// confirmation.
pub struct ViewerAwaitingConfirm {
    th2: [u8; HASH_LEN],
    secrets: HandshakeSecrets,
}

impl std::fmt::Debug for ViewerAwaitingConfirm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ViewerAwaitingConfirm")
    }
}

pub(crate) fn aborted(reason: AbortReason) -> HandshakeError {
    match reason {
        AbortReason::WrongCode => HandshakeError::WrongCode,
        AbortReason::Burned => HandshakeError::Burned,
        AbortReason::Invalid => HandshakeError::BadIdentity("the agent rejected the handshake".into()),
        AbortReason::NotTrusted => HandshakeError::BadIdentity(
            "the customer has not allowed this assistant to reconnect without a code".into(),
        ),
    }
}

impl ViewerHandshake {
    /// A viewer handshake with the code the customer read out.
    pub fn new(context: HandshakeContext, code: OneTimeCode) -> ViewerHandshake {
        ViewerHandshake { context, code }
    }

    /// Processes the agent's hello and produces the viewer's authentication message.
    pub fn receive_hello(
        self,
        message: &AgentMessage,
        credentials: &Credentials,
        rng: &mut impl CryptoRng,
    ) -> Result<(ViewerMessage, ViewerAwaitingConfirm), HandshakeError> {
        let hello = match message {
            AgentMessage::Hello(hello) => hello,
            AgentMessage::Abort(reason) => return Err(aborted(*reason)),
            AgentMessage::Confirm(_) => return Err(HandshakeError::UnexpectedMessage),
        };
        let (spake, pake_msg) = Spake2::<Ed25519Group>::start_b_with_rng(
            &password(&self.code),
            &Identity::new(&self.context.pake_identity(Role::Agent)),
            &Identity::new(&self.context.pake_identity(Role::Viewer)),
            &mut *rng,
        );
        let secret = EphemeralSecret::random_from_rng(rng);
        let x25519_pub = X25519Public::from(&secret).to_bytes();
        let th1 = self.context.transcript(hello, &pake_msg, &x25519_pub);
        let pake = pake_key(spake, &hello.pake)?;
        let dh = x25519(secret, &hello.x25519)?;
        let secrets = key_schedule::derive(&th1, &pake, &dh);

        let sealed_identity = seal_identity(&secrets, &th1, credentials, rng)?;

        let auth = ViewerAuth {
            pake: pake_msg,
            x25519: x25519_pub,
            confirm: key_schedule::confirmation(&secrets.confirm_viewer, &th1),
            sealed_identity,
        };
        let th2 = second_transcript(&th1, &auth);
        Ok((ViewerMessage::Auth(auth), ViewerAwaitingConfirm { th2, secrets }))
    }
}

impl ViewerAwaitingConfirm {
    /// Checks the agent's confirmation; on success the session is established.
    pub fn receive_confirm(self, message: &AgentMessage) -> Result<SessionKeys, HandshakeError> {
        match message {
            AgentMessage::Confirm(tag) => {
                if key_schedule::confirmation_matches(&self.secrets.confirm_agent, &self.th2, tag) {
                    Ok(SessionKeys::from_secrets(Role::Viewer, &self.secrets))
                } else {
                    Err(HandshakeError::WrongCode)
                }
            }
            AgentMessage::Abort(reason) => Err(aborted(*reason)),
            AgentMessage::Hello(_) => Err(HandshakeError::UnexpectedMessage),
        }
    }
}
