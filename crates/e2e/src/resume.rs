//! Resuming a session whose connection to the relay was lost, without a new code or consent.
//!
//! Every handshake derives a resume secret `R` beside the traffic secrets; the relay never
//! learns it. To resume, both sides meet at the relay under a tag derived from `R` (the relay
//! learns the tag, never `R`) and run this handshake over the new pairing:
//!
//! ```text
//! agent                                               viewer
//!   Hello { e_A }                            ──▶
//!                                            ◀──   Auth { e_V, confirm_V }
//!   Confirm { confirm_A }                    ──▶
//! ```
//!
//! Both ephemeral keys are fresh. The secrets come from the usual key schedule with `R` in
//! place of the PAKE key and `X25519(e_A, e_V)` as the ephemeral secret, salted with a
//! transcript that binds the new session ID, the relay's fingerprint, the tag and both
//! ephemeral keys. So:
//! - only a holder of `R` derives the confirmation keys: the viewer proves it with
//!   `confirm_V`, the agent with `confirm_A` (a relay, or anyone else, gets nowhere);
//! - the new traffic keys are fresh and bound to the new pairing: a recorded resume replayed
//!   against a fresh `e_A` fails its confirmation;
//! - the resume derives the next `R`, and both sides forget the old one, so each tag and
//!   secret serves one resume; a session that ended forgets `R` and cannot be resumed.
//!
//! docs/PROTOCOL.md § "Resume" has the whole exchange.

use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use x25519_dalek::{EphemeralSecret, PublicKey as X25519Public};

use crate::Role;
use crate::handshake::{HandshakeContext, HandshakeError, MAX_MESSAGE, x25519};
use crate::key_schedule::{self, HASH_LEN, HandshakeSecrets, Secret, Transcript};
use crate::session_keys::SessionKeys;
use ponte_wire::DeviceTag;
use ponte_wire::frame::{self, FrameError};

/// Where both sides of a session meet at the relay to resume it: the tag of its
/// [`end_proof`] ([`ponte_wire::device::resume_tag`]). The relay learns this, never `R`, and
/// checks against it an end the agent leaves.
pub fn tag(resume: &Secret) -> DeviceTag {
    ponte_wire::device::resume_tag(&end_proof(resume))
}

/// What the agent leaves at the relay when the customer ends a session that waits to be
/// resumed, for its viewer to check that the end is the customer's:
/// `HKDF-Expand(R, "ponte/1 resume ended", 32)`. Revealed only to end the session, so the relay
/// cannot end one with it that was not.
pub fn end_proof(resume: &Secret) -> [u8; 32] {
    *key_schedule::expand_secret(resume, "resume ended")
}

/// Whether `proof` is [`end_proof`] of `resume` (compared in constant time).
pub fn is_end_proof(resume: &Secret, proof: &[u8; 32]) -> bool {
    let expected = end_proof(resume);
    expected.iter().zip(proof).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// Messages the agent sends in a resume handshake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResumeAgentMessage {
    /// First message: the agent's ephemeral X25519 public key.
    Hello {
        /// Ephemeral X25519 public key `e_A`.
        x25519: [u8; 32],
    },
    /// Final message: `HMAC(confirm agent key, TH2)`.
    Confirm([u8; HASH_LEN]),
    /// The viewer did not prove the resume secret; no further message follows.
    Abort,
}

/// The viewer's only message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeViewerMessage {
    /// Ephemeral X25519 public key `e_V`.
    pub x25519: [u8; 32],
    /// `HMAC(confirm viewer key, TH1)`.
    pub confirm: [u8; HASH_LEN],
}

crate::handshake::framed!(ResumeAgentMessage);
crate::handshake::framed!(ResumeViewerMessage);

fn transcript(context: &HandshakeContext, tag: DeviceTag, e_a: &[u8; 32], e_v: &[u8; 32]) -> [u8; HASH_LEN] {
    let mut t = Transcript::new("resume");
    t.absorb(context.session.to_digits().as_bytes());
    t.absorb(&context.relay);
    t.absorb(&tag.0);
    t.absorb(e_a);
    t.absorb(e_v);
    t.hash()
}

fn second_transcript(th1: &[u8; HASH_LEN], auth: &ResumeViewerMessage) -> [u8; HASH_LEN] {
    let mut t = Transcript::new("resume agent confirm");
    t.absorb(th1);
    t.absorb(&auth.confirm);
    t.hash()
}

/// The agent's resume handshake, after sending [`ResumeAgentMessage::Hello`].
pub struct ResumeAgentHandshake {
    context: HandshakeContext,
    e_a: [u8; 32],
    secret: EphemeralSecret,
}

impl std::fmt::Debug for ResumeAgentHandshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResumeAgentHandshake")
            .field("context", &self.context)
            .finish_non_exhaustive()
    }
}

impl ResumeAgentHandshake {
    /// Starts a resume with the viewer that joined under the session's resume tag.
    pub fn start(context: HandshakeContext, rng: &mut impl CryptoRng) -> (Self, ResumeAgentMessage) {
        let secret = EphemeralSecret::random_from_rng(rng);
        let e_a = X25519Public::from(&secret).to_bytes();
        (
            ResumeAgentHandshake { context, e_a, secret },
            ResumeAgentMessage::Hello { x25519: e_a },
        )
    }

    /// Checks the viewer's proof of `resume` (the session's current resume secret); on
    /// success returns the confirmation to send and the resumed session's new keys. On
    /// failure the caller sends [`ResumeAgentMessage::Abort`] and keeps `resume` for another
    /// try.
    pub fn receive(
        self,
        auth: &ResumeViewerMessage,
        resume: &Secret,
    ) -> Result<(ResumeAgentMessage, SessionKeys), HandshakeError> {
        let th1 = transcript(&self.context, tag(resume), &self.e_a, &auth.x25519);
        let ee = x25519(self.secret, &auth.x25519)?;
        let secrets = key_schedule::derive(&th1, resume.as_slice(), &ee);
        if !key_schedule::confirmation_matches(&secrets.confirm_viewer, &th1, &auth.confirm) {
            return Err(HandshakeError::WrongResume);
        }
        let confirm = key_schedule::confirmation(&secrets.confirm_agent, &second_transcript(&th1, auth));
        Ok((
            ResumeAgentMessage::Confirm(confirm),
            SessionKeys::from_secrets(Role::Agent, &secrets),
        ))
    }
}

/// The viewer's resume handshake after sending its message.
pub struct ResumeViewerAwaitingConfirm {
    th2: [u8; HASH_LEN],
    secrets: HandshakeSecrets,
}

impl std::fmt::Debug for ResumeViewerAwaitingConfirm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResumeViewerAwaitingConfirm")
    }
}

/// The viewer's side: answers the agent's hello with the proof of `resume`.
pub fn viewer_answer(
    context: HandshakeContext,
    resume: &Secret,
    hello: &ResumeAgentMessage,
    rng: &mut impl CryptoRng,
) -> Result<(ResumeViewerMessage, ResumeViewerAwaitingConfirm), HandshakeError> {
    let e_a = match hello {
        ResumeAgentMessage::Hello { x25519 } => x25519,
        ResumeAgentMessage::Abort => return Err(HandshakeError::WrongResume),
        ResumeAgentMessage::Confirm(_) => return Err(HandshakeError::UnexpectedMessage),
    };
    let secret = EphemeralSecret::random_from_rng(rng);
    let e_v = X25519Public::from(&secret).to_bytes();
    let th1 = transcript(&context, tag(resume), e_a, &e_v);
    let ee = x25519(secret, e_a)?;
    let secrets = key_schedule::derive(&th1, resume.as_slice(), &ee);
    let auth = ResumeViewerMessage {
        x25519: e_v,
        confirm: key_schedule::confirmation(&secrets.confirm_viewer, &th1),
    };
    let th2 = second_transcript(&th1, &auth);
    Ok((auth, ResumeViewerAwaitingConfirm { th2, secrets }))
}

impl ResumeViewerAwaitingConfirm {
    /// The resume secret the agent goes on with if it accepted the viewer's message. When its
    /// confirmation never arrives (the connection was lost just then), the agent may have gone
    /// on with this secret and wait under its tag for the next resume, not under the old one.
    pub fn unconfirmed_resume_secret(&self) -> Secret {
        self.secrets.resume.clone()
    }

    /// Checks the agent's confirmation: on success the session goes on with the new keys.
    pub fn receive_confirm(self, message: &ResumeAgentMessage) -> Result<SessionKeys, HandshakeError> {
        match message {
            ResumeAgentMessage::Confirm(tag)
                if key_schedule::confirmation_matches(&self.secrets.confirm_agent, &self.th2, tag) =>
            {
                Ok(SessionKeys::from_secrets(Role::Viewer, &self.secrets))
            }
            ResumeAgentMessage::Confirm(_) | ResumeAgentMessage::Abort => Err(HandshakeError::WrongResume),
            ResumeAgentMessage::Hello { .. } => Err(HandshakeError::UnexpectedMessage),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ponte_wire::SessionId;
    use zeroize::Zeroizing;

    fn context(session: u32) -> HandshakeContext {
        HandshakeContext {
            session: SessionId::try_from(session).unwrap(),
            relay: [3; 32],
        }
    }

    fn rng() -> impl CryptoRng {
        ponte_wire::os_rng()
    }

    /// Runs a whole resume; `viewer_secret` is what the viewer believes `R` is.
    fn resume(
        agent_ctx: HandshakeContext,
        viewer_ctx: HandshakeContext,
        agent_secret: &Secret,
        viewer_secret: &Secret,
    ) -> Result<(SessionKeys, SessionKeys), HandshakeError> {
        let (agent, hello) = ResumeAgentHandshake::start(agent_ctx, &mut rng());
        let (auth, waiting) = viewer_answer(viewer_ctx, viewer_secret, &hello, &mut rng())?;
        let (confirm, agent_keys) = agent.receive(&auth, agent_secret)?;
        let viewer_keys = waiting.receive_confirm(&confirm)?;
        Ok((agent_keys, viewer_keys))
    }

    #[test]
    fn both_holders_of_the_secret_resume_with_fresh_keys_and_a_fresh_secret() {
        let r = Zeroizing::new([5u8; 32]);
        let (a, v) = resume(context(123_456_789), context(123_456_789), &r, &r).unwrap();
        assert_eq!(a.resume_secret(), v.resume_secret());
        assert_ne!(*a.resume_secret(), r, "the next resume needs another secret");
        assert_ne!(tag(a.resume_secret()), tag(&r), "and meets under another tag");
        // A second resume with the same secret makes other keys (fresh ephemerals).
        let (a2, _) = resume(context(123_456_789), context(123_456_789), &r, &r).unwrap();
        assert_ne!(a2.resume_secret(), a.resume_secret());
    }

    #[test]
    fn a_wrong_secret_fails_on_either_side() {
        let r = Zeroizing::new([5u8; 32]);
        let other = Zeroizing::new([6u8; 32]);
        let ctx = context(123_456_789);
        assert_eq!(
            resume(ctx, ctx, &r, &other).unwrap_err(),
            HandshakeError::WrongResume
        );
        // An agent without the secret cannot confirm to a viewer that has it.
        let (agent, hello) = ResumeAgentHandshake::start(ctx, &mut rng());
        let (auth, waiting) = viewer_answer(ctx, &r, &hello, &mut rng()).unwrap();
        assert!(agent.receive(&auth, &other).is_err());
        assert_eq!(
            waiting
                .receive_confirm(&ResumeAgentMessage::Confirm([0; 32]))
                .unwrap_err(),
            HandshakeError::WrongResume
        );
    }

    #[test]
    fn a_recorded_answer_does_not_resume_again_and_the_pairing_is_bound() {
        let r = Zeroizing::new([5u8; 32]);
        let ctx = context(123_456_789);
        let (agent, hello) = ResumeAgentHandshake::start(ctx, &mut rng());
        let (auth, _) = viewer_answer(ctx, &r, &hello, &mut rng()).unwrap();
        agent.receive(&auth, &r).unwrap();
        // Replayed against a fresh hello.
        let (again, _) = ResumeAgentHandshake::start(ctx, &mut rng());
        assert_eq!(again.receive(&auth, &r).unwrap_err(), HandshakeError::WrongResume);
        // Another session ID (a relay splicing pairings) on one side.
        assert!(resume(ctx, context(987_654_321), &r, &r).is_err());
        let elsewhere = HandshakeContext {
            relay: [4; 32],
            ..ctx
        };
        assert!(resume(ctx, elsewhere, &r, &r).is_err());
    }

    #[test]
    fn low_order_keys_are_refused() {
        let r = Zeroizing::new([5u8; 32]);
        let ctx = context(123_456_789);
        let (agent, _) = ResumeAgentHandshake::start(ctx, &mut rng());
        let forged = ResumeViewerMessage {
            x25519: [0; 32],
            confirm: [0; 32],
        };
        assert!(matches!(
            agent.receive(&forged, &r),
            Err(HandshakeError::Malformed(_))
        ));
        let hello = ResumeAgentMessage::Hello { x25519: [0; 32] };
        assert!(viewer_answer(ctx, &r, &hello, &mut rng()).is_err());
    }

    #[test]
    fn only_the_secrets_end_proof_is_one() {
        let secret = Secret::new([3; 32]);
        let proof = end_proof(&secret);
        assert!(is_end_proof(&secret, &proof));
        assert!(!is_end_proof(&Secret::new([4; 32]), &proof));
        let mut flipped = proof;
        flipped[31] ^= 1;
        assert!(!is_end_proof(&secret, &flipped));
        assert_ne!(
            &proof[..16],
            &tag(&secret).0[..],
            "the tag the relay sees does not give it away"
        );
    }
}
