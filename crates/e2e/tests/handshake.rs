//! The code-gated handshake: right and wrong codes, a relay in the middle, identities.

#![allow(clippy::unwrap_used)] // test helpers panic on setup failure by design

mod common;

use common::*;
use ponte_e2e::handshake::{
    AgentHandshake, AgentMessage, CodeAttempts, Credentials, HandshakeError, ViewerHandshake, ViewerMessage,
};
use ponte_e2e::identity::{CertificateError, PeerIdentity, TrustStore};
use proptest::prelude::*;

fn uncertified() -> Credentials {
    Credentials {
        key: assistant_key(),
        certificate: None,
    }
}

#[test]
fn right_code_gives_both_sides_the_same_keys_and_a_verified_peer() {
    let creds = certified_credentials();
    let mut attempts = CodeAttempts::new();
    let c = code("1234-5678");
    let (agent, viewer) = handshake(&c, &c, &mut attempts, &creds, &trust_org(), 7);
    let mut agent = agent.unwrap();
    let mut viewer = viewer.unwrap();
    assert_eq!(
        agent.peer,
        PeerIdentity::Verified {
            name: "Alice Example".into(),
            organisation: "Example Support Ltd".into(),
            certified_as: None,
            fingerprint: creds.key.public_key().fingerprint(),
            issuer: org_key().public_key().fingerprint(),
        }
    );
    assert_eq!(
        agent.peer.to_string(),
        "verified: Alice Example, Example Support Ltd"
    );
    assert_eq!(attempts.failures(), 0);
    assert_eq!(
        exchange(&mut agent.keys, &mut viewer, b"to the viewer"),
        b"to the viewer"
    );
    assert_eq!(
        exchange(&mut viewer, &mut agent.keys, b"to the agent"),
        b"to the agent"
    );
}

#[test]
fn wrong_code_fails_on_both_sides_and_costs_a_try() {
    let mut attempts = CodeAttempts::new();
    let (agent, viewer) = handshake(
        &code("12345678"),
        &code("12345679"),
        &mut attempts,
        &uncertified(),
        &TrustStore::new(),
        1,
    );
    assert_eq!(agent.unwrap_err(), HandshakeError::WrongCode);
    assert_eq!(viewer.unwrap_err(), HandshakeError::WrongCode);
    assert_eq!(attempts.failures(), 1);
    assert_eq!(attempts.remaining(), 2);
}

#[test]
fn three_wrong_codes_burn_the_code_even_for_the_right_one_after() {
    let c = code("11112222");
    let mut attempts = CodeAttempts::new();
    for i in 0..3 {
        let (agent, viewer) = handshake(
            &c,
            &code("99998888"),
            &mut attempts,
            &uncertified(),
            &TrustStore::new(),
            i,
        );
        assert!(agent.is_err());
        let expected = if i == 2 {
            HandshakeError::Burned
        } else {
            HandshakeError::WrongCode
        };
        assert_eq!(viewer.unwrap_err(), expected, "attempt {i}");
    }
    assert!(attempts.must_burn());
    let (agent, viewer) = handshake(&c, &c, &mut attempts, &uncertified(), &TrustStore::new(), 9);
    assert_eq!(agent.unwrap_err(), HandshakeError::Burned);
    assert_eq!(viewer.unwrap_err(), HandshakeError::Burned);
}

#[test]
fn uncertified_assistant_is_unverified_with_fingerprint() {
    let creds = uncertified();
    let c = code("00000000");
    let (agent, _) = handshake(&c, &c, &mut CodeAttempts::new(), &creds, &trust_org(), 3);
    let peer = agent.unwrap().peer;
    assert_eq!(
        peer,
        PeerIdentity::Unverified {
            fingerprint: creds.key.public_key().fingerprint(),
            reason: CertificateError::Missing
        }
    );
    assert!(peer.to_string().starts_with("UNVERIFIED"));
}

#[test]
fn certificate_from_untrusted_org_is_unverified() {
    let creds = certified_credentials();
    let c = code("00000000");
    let (agent, _) = handshake(&c, &c, &mut CodeAttempts::new(), &creds, &TrustStore::new(), 3);
    assert!(matches!(
        agent.unwrap().peer,
        PeerIdentity::Unverified {
            reason: CertificateError::UnknownIssuer(_),
            ..
        }
    ));
}

#[test]
fn certificate_for_another_key_is_a_mismatch() {
    // The certificate names the assistant key but the viewer signs with another key.
    let cert = certified_credentials().certificate;
    let creds = Credentials {
        key: other_key(),
        certificate: cert,
    };
    let c = code("00000000");
    let (agent, viewer) = handshake(&c, &c, &mut CodeAttempts::new(), &creds, &trust_org(), 3);
    assert!(viewer.is_ok());
    assert_eq!(
        agent.unwrap().peer,
        PeerIdentity::Unverified {
            fingerprint: other_key().public_key().fingerprint(),
            reason: CertificateError::KeyMismatch
        }
    );
}

#[test]
fn a_relay_in_the_middle_cannot_finish_either_side_and_each_attempt_costs_a_try() {
    // The relay terminates both handshakes itself with a guessed code, relaying and
    // rewriting messages. It never learns the code, so both sides fail.
    let real = code("31415926");
    let guess = code("27182818");
    let mut attempts = CodeAttempts::new();
    let mut r = rng(11);
    for attempt in 1..=3u8 {
        let (agent, agent_hello) = AgentHandshake::start(context(), &real, &attempts, &mut r).unwrap();
        // Relay plays viewer towards the agent with its guess.
        let (forged_auth, _) = ViewerHandshake::new(context(), guess.clone())
            .receive_hello(&agent_hello, &uncertified(), &mut r)
            .unwrap();
        // Relay plays agent towards the real viewer with its guess.
        let (_fake_agent, fake_hello) =
            AgentHandshake::start(context(), &guess, &CodeAttempts::new(), &mut r).unwrap();
        let (real_auth, viewer) = ViewerHandshake::new(context(), real.clone())
            .receive_hello(&fake_hello, &certified_credentials(), &mut r)
            .unwrap();
        // Towards the agent the relay may send its own auth or the real viewer's: both fail.
        let to_agent = if attempt % 2 == 0 {
            &real_auth
        } else {
            &forged_auth
        };
        assert_eq!(
            agent
                .receive(to_agent, &mut attempts, &trust_org(), NOW)
                .unwrap_err(),
            HandshakeError::WrongCode
        );
        assert_eq!(attempts.failures(), attempt);
        // The viewer never gets a valid confirmation: a replayed or made-up one fails.
        assert_eq!(
            viewer
                .receive_confirm(&AgentMessage::Confirm([7; 32]))
                .unwrap_err(),
            HandshakeError::WrongCode
        );
    }
    assert!(attempts.must_burn());
    assert_eq!(
        AgentHandshake::start(context(), &real, &attempts, &mut r).unwrap_err(),
        HandshakeError::Burned
    );
}

#[test]
fn messages_from_another_session_or_relay_do_not_verify() {
    let c = code("55556666");
    let mut r = rng(5);
    let mut attempts = CodeAttempts::new();
    let (agent, hello) = AgentHandshake::start(context(), &c, &attempts, &mut r).unwrap();
    let mut other = context();
    other.relay[0] ^= 1;
    let (auth, _) = ViewerHandshake::new(other, c.clone())
        .receive_hello(&hello, &uncertified(), &mut r)
        .unwrap();
    assert_eq!(
        agent
            .receive(&auth, &mut attempts, &TrustStore::new(), NOW)
            .unwrap_err(),
        HandshakeError::WrongCode
    );
}

#[test]
fn unexpected_messages_are_rejected() {
    let c = code("55556666");
    let mut r = rng(6);
    let viewer = ViewerHandshake::new(context(), c.clone());
    assert_eq!(
        viewer
            .receive_hello(&AgentMessage::Confirm([0; 32]), &uncertified(), &mut r)
            .unwrap_err(),
        HandshakeError::UnexpectedMessage
    );
}

#[test]
fn debug_output_reveals_no_code() {
    let c = code("86420864");
    let mut r = rng(8);
    let (agent, _) = AgentHandshake::start(context(), &c, &CodeAttempts::new(), &mut r).unwrap();
    let viewer = ViewerHandshake::new(context(), c.clone());
    for s in [format!("{agent:?}"), format!("{viewer:?}"), format!("{c:?}")] {
        assert!(!s.contains("8642") && !s.contains("0864"), "{s}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn any_code_pair_agrees_exactly_when_equal(a in 0u32..100_000_000, b in 0u32..100_000_000, same in any::<bool>(), seed in any::<u64>()) {
        let ca = code(&format!("{a:08}"));
        let cb = if same { ca.clone() } else { code(&format!("{b:08}")) };
        let equal = ca == cb;
        let mut attempts = CodeAttempts::new();
        let (agent, viewer) = handshake(&ca, &cb, &mut attempts, &uncertified(), &TrustStore::new(), seed);
        prop_assert_eq!(agent.is_ok(), equal);
        prop_assert_eq!(viewer.is_ok(), equal);
        prop_assert_eq!(attempts.failures(), u8::from(!equal));
        match (agent, viewer) {
            (Ok(mut agent), Ok(mut viewer)) => {
                prop_assert_eq!(exchange(&mut agent.keys, &mut viewer, b"x"), b"x".to_vec());
            }
            (_, viewer) => prop_assert_eq!(viewer.unwrap_err(), HandshakeError::WrongCode),
        }
    }

    /// A relay that flips any byte of any handshake message never lets both sides finish,
    /// and a flipped viewer message always costs the agent a try.
    #[test]
    fn rewritten_messages_never_complete(which in 0usize..3, pos in any::<prop::sample::Index>(), bit in 0u8..8, seed in any::<u64>()) {
        let c = code("24682468");
        let creds = uncertified();
        let mut r = rng(seed);
        let mut attempts = CodeAttempts::new();
        let (agent, hello) = AgentHandshake::start(context(), &c, &attempts, &mut r).unwrap();
        let mut hello_bytes = hello.encode();
        if which == 0 {
            let i = pos.index(hello_bytes.len());
            hello_bytes[i] ^= 1 << bit;
        }
        let Ok(hello) = AgentMessage::decode(&hello_bytes) else { return Ok(()) };
        let Ok((auth, viewer)) = ViewerHandshake::new(context(), c.clone()).receive_hello(&hello, &creds, &mut r) else { return Ok(()) };
        let mut auth_bytes = auth.encode();
        if which == 1 {
            let i = pos.index(auth_bytes.len());
            auth_bytes[i] ^= 1 << bit;
        }
        let Ok(auth) = ViewerMessage::decode(&auth_bytes) else { return Ok(()) };
        let agent_result = agent.receive(&auth, &mut attempts, &TrustStore::new(), NOW);
        if which < 2 {
            prop_assert!(agent_result.is_err());
            prop_assert_eq!(attempts.failures(), 1);
            return Ok(());
        }
        let (confirm, _) = agent_result.unwrap();
        let mut confirm_bytes = confirm.encode();
        let i = pos.index(confirm_bytes.len());
        confirm_bytes[i] ^= 1 << bit;
        if let Ok(confirm) = AgentMessage::decode(&confirm_bytes) {
            prop_assert!(viewer.receive_confirm(&confirm).is_err());
        }
    }

    #[test]
    fn random_bytes_into_handshake_decoders_are_errors(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = AgentMessage::decode(&bytes);
        let _ = ViewerMessage::decode(&bytes);
    }

    #[test]
    fn random_auth_contents_fail_cleanly(pake in proptest::collection::vec(any::<u8>(), 0..40), x in any::<[u8; 32]>(), sealed in proptest::collection::vec(any::<u8>(), 0..200)) {
        let c = code("13579135");
        let mut r = rng(1);
        let mut attempts = CodeAttempts::new();
        let (agent, _) = AgentHandshake::start(context(), &c, &attempts, &mut r).unwrap();
        let auth = ViewerMessage::Auth(ponte_e2e::handshake::ViewerAuth { pake, x25519: x, confirm: [0; 32], sealed_identity: sealed });
        prop_assert!(agent.receive(&auth, &mut attempts, &TrustStore::new(), NOW).is_err());
        prop_assert_eq!(attempts.failures(), 1);
    }
}
