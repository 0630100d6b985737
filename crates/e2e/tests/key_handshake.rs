//! The key-authenticated handshake of quick access: the right device and an admitted,
//! verified assistant get a session; everything else fails on both sides.

#![allow(clippy::unwrap_used)] // test helpers panic on setup failure by design

mod common;

use common::*;
use ponte_e2e::device_key::DeviceKey;
use ponte_e2e::handshake::{AbortReason, Credentials, HandshakeContext, HandshakeError};
use ponte_e2e::identity::{Certificate, PeerIdentity, TrustStore};
use ponte_e2e::key_handshake::{
    Admission, Admits, KeyAgentHandshake, KeyAgentMessage, KeyAgentOutcome, KeyViewerHandshake,
    KeyViewerMessage,
};
use ponte_e2e::session_keys::SessionKeys;
use ponte_wire::device::DevicePublic;
use proptest::prelude::*;

fn device(seed: u64) -> DeviceKey {
    DeviceKey::generate(&mut rng(seed))
}

fn org_admission() -> Admission {
    Admission {
        admits: Admits::Organisation(org_key().public_key().fingerprint()),
        not_after: NOW + 3600,
    }
}

struct Run {
    agent: Result<KeyAgentOutcome, HandshakeError>,
    viewer: Result<SessionKeys, HandshakeError>,
}

/// One whole handshake in memory. `expected` is the device key the viewer believes in;
/// `agent_context`/`viewer_context` let a test make the two sides see different sessions.
fn run_with(
    agent_device: &DeviceKey,
    expected: DevicePublic,
    credentials: &Credentials,
    admissions: &[Admission],
    agent_context: HandshakeContext,
    viewer_context: HandshakeContext,
    tamper: impl FnOnce(&mut KeyViewerMessage),
) -> Run {
    let mut r = rng(77);
    let (agent, hello) = KeyAgentHandshake::start(agent_context, agent_device, &mut r);
    let (mut auth, viewer) = KeyViewerHandshake::new(viewer_context, expected)
        .receive_hello(&hello, credentials, &mut r)
        .unwrap();
    tamper(&mut auth);
    match agent.receive(&auth, agent_device, &trust_org(), admissions, NOW) {
        Ok((confirm, outcome)) => Run {
            viewer: viewer.receive_confirm(&confirm),
            agent: Ok(outcome),
        },
        Err(e) => {
            let abort = KeyAgentMessage::Abort(e.abort_reason(&Default::default()));
            Run {
                viewer: viewer.receive_confirm(&abort),
                agent: Err(e),
            }
        }
    }
}

fn run(
    agent_device: &DeviceKey,
    expected: DevicePublic,
    credentials: &Credentials,
    admissions: &[Admission],
) -> Run {
    run_with(
        agent_device,
        expected,
        credentials,
        admissions,
        context(),
        context(),
        |_| {},
    )
}

#[test]
fn admitted_assistant_and_right_device_share_keys() {
    let d = device(1);
    let creds = certified_credentials();
    let Run { agent, viewer } = run(&d, d.public(), &creds, &[org_admission()]);
    let mut agent = agent.unwrap();
    let mut viewer = viewer.unwrap();
    assert_eq!(agent.admission, 0);
    assert_eq!(
        agent.peer.to_string(),
        "verified: Alice Example, Example Support Ltd"
    );
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
fn an_assistant_admission_admits_that_key_only() {
    let d = device(1);
    let creds = certified_credentials();
    let mine = Admission {
        admits: Admits::Assistant(creds.key.public_key().fingerprint()),
        not_after: NOW,
    };
    let someone_else = Admission {
        admits: Admits::Assistant(other_key().public_key().fingerprint()),
        not_after: NOW + 10,
    };
    let run1 = run(&d, d.public(), &creds, &[someone_else, mine]);
    assert_eq!(run1.agent.unwrap().admission, 1);
    assert!(run1.viewer.is_ok());
    let run2 = run(&d, d.public(), &creds, &[someone_else]);
    assert!(matches!(run2.agent, Err(HandshakeError::NotTrusted(_))));
    assert!(run2.viewer.is_err());
}

#[test]
fn expired_or_removed_opt_in_is_refused_and_says_who_tried() {
    let d = device(1);
    let creds = certified_credentials();
    let expired = Admission {
        not_after: NOW - 1,
        ..org_admission()
    };
    for admissions in [&[expired][..], &[][..]] {
        let Run { agent, viewer } = run(&d, d.public(), &creds, admissions);
        match agent {
            Err(HandshakeError::NotTrusted(peer)) => assert!(peer.is_verified()),
            other => panic!("expected NotTrusted, got {other:?}"),
        }
        // The viewer hears why (unauthenticated, but enough to tell the assistant).
        match viewer {
            Err(HandshakeError::BadIdentity(reason)) => assert!(reason.contains("customer"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn another_organisations_assistant_is_refused() {
    // A certificate from an organisation the agent trusts, but the opt-in was for another.
    let d = device(1);
    let key = assistant_key();
    let cert = Certificate::issue(
        &other_key(),
        "Mallory",
        "Other Support",
        key.public_key(),
        1_770_000_000,
        1_830_000_000,
        &mut rng(5),
    )
    .unwrap();
    let creds = Credentials {
        key,
        certificate: Some(cert),
    };
    let mut r = rng(9);
    let (agent, hello) = KeyAgentHandshake::start(context(), &d, &mut r);
    let (auth, _) = KeyViewerHandshake::new(context(), d.public())
        .receive_hello(&hello, &creds, &mut r)
        .unwrap();
    let mut trust = trust_org();
    trust.add(other_key().public_key().clone(), "Other Support");
    match agent.receive(&auth, &d, &trust, &[org_admission()], NOW) {
        Err(HandshakeError::NotTrusted(peer)) => {
            assert_eq!(peer.to_string(), "verified: Mallory, Other Support")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn unverified_assistant_is_refused_even_if_its_key_was_admitted() {
    let d = device(1);
    let key = assistant_key();
    let admission = Admission {
        admits: Admits::Assistant(key.public_key().fingerprint()),
        not_after: NOW + 10,
    };
    let creds = Credentials {
        key,
        certificate: None,
    };
    let Run { agent, viewer } = run(&d, d.public(), &creds, &[admission]);
    match agent {
        Err(HandshakeError::NotTrusted(peer)) => assert!(matches!(*peer, PeerIdentity::Unverified { .. })),
        other => panic!("{other:?}"),
    }
    assert!(viewer.is_err());
}

#[test]
fn an_expired_certificate_is_refused() {
    let d = device(1);
    let creds = certified_credentials();
    let mut r = rng(9);
    let (agent, hello) = KeyAgentHandshake::start(context(), &d, &mut r);
    let (auth, _) = KeyViewerHandshake::new(context(), d.public())
        .receive_hello(&hello, &creds, &mut r)
        .unwrap();
    let long_after = Admission {
        not_after: u64::MAX,
        ..org_admission()
    };
    // The test certificate ends at 1_830_000_000.
    let result = agent.receive(&auth, &d, &trust_org(), &[long_after], 1_900_000_000);
    assert!(matches!(result, Err(HandshakeError::NotTrusted(_))));
}

#[test]
fn another_device_answering_fails_on_both_sides() {
    // A hostile relay routes the viewer to another agent (or answers itself with a key of its
    // own): the viewer expected device 1, device 2 answers.
    let expected = device(1);
    let impostor = device(2);
    let Run { agent, viewer } = run(
        &impostor,
        expected.public(),
        &certified_credentials(),
        &[org_admission()],
    );
    assert_eq!(agent.unwrap_err(), HandshakeError::WrongDevice);
    assert!(viewer.is_err());
}

#[test]
fn an_impostor_that_admits_everyone_still_cannot_confirm() {
    // Whoever lacks the device key cannot produce the agent's confirmation, even by skipping
    // every check: forge a Confirm from keys computed with the impostor's own device key.
    let expected = device(1);
    let impostor = device(2);
    let mut r = rng(3);
    let (agent, hello) = KeyAgentHandshake::start(context(), &impostor, &mut r);
    let (auth, viewer) = KeyViewerHandshake::new(context(), expected.public())
        .receive_hello(&hello, &certified_credentials(), &mut r)
        .unwrap();
    assert_eq!(
        agent
            .receive(&auth, &impostor, &trust_org(), &[org_admission()], NOW)
            .unwrap_err(),
        HandshakeError::WrongDevice
    );
    for guess in [[0u8; 32], [0xff; 32]] {
        let (_, v) = KeyViewerHandshake::new(context(), expected.public())
            .receive_hello(&hello, &certified_credentials(), &mut rng(4))
            .unwrap();
        assert_eq!(
            v.receive_confirm(&KeyAgentMessage::Confirm(guess)).unwrap_err(),
            HandshakeError::WrongDevice
        );
    }
    assert_eq!(
        viewer
            .receive_confirm(&KeyAgentMessage::Confirm([7; 32]))
            .unwrap_err(),
        HandshakeError::WrongDevice
    );
}

#[test]
fn another_session_or_relay_fails() {
    let d = device(1);
    let other_session = HandshakeContext {
        session: "987654321".parse().unwrap(),
        ..context()
    };
    let other_relay = HandshakeContext {
        relay: [0x43; 32],
        ..context()
    };
    for viewer_context in [other_session, other_relay] {
        let r = run_with(
            &d,
            d.public(),
            &certified_credentials(),
            &[org_admission()],
            context(),
            viewer_context,
            |_| {},
        );
        assert_eq!(r.agent.unwrap_err(), HandshakeError::WrongDevice);
        assert!(r.viewer.is_err());
    }
}

#[test]
fn tampered_auth_fails_without_panic() {
    let d = device(1);
    type Tamper = Box<dyn FnOnce(&mut KeyViewerMessage)>;
    let tampers: Vec<Tamper> = vec![
        Box::new(|m| {
            let KeyViewerMessage::Auth(a) = m;
            a.confirm[0] ^= 1;
        }),
        Box::new(|m| {
            let KeyViewerMessage::Auth(a) = m;
            a.x25519[5] ^= 1;
        }),
        Box::new(|m| {
            let KeyViewerMessage::Auth(a) = m;
            let last = a.sealed_identity.len() - 1;
            a.sealed_identity[last] ^= 1;
        }),
        Box::new(|m| {
            let KeyViewerMessage::Auth(a) = m;
            a.sealed_identity.truncate(3);
        }),
        Box::new(|m| {
            let KeyViewerMessage::Auth(a) = m;
            a.x25519 = [0; 32];
        }),
    ];
    for tamper in tampers {
        let r = run_with(
            &d,
            d.public(),
            &certified_credentials(),
            &[org_admission()],
            context(),
            context(),
            tamper,
        );
        assert!(r.agent.is_err());
        assert!(r.viewer.is_err());
    }
}

#[test]
fn a_hostile_agent_cannot_confuse_the_viewer() {
    // A modified agent (or a relay answering for one) says Hello with a low-order point
    // (no shared secret), confirms before it was asked, says Hello where the confirmation
    // belongs, or confirms with a made-up tag: errors, never keys, never a panic.
    let d = device(1);
    let creds = certified_credentials();
    let viewer = || KeyViewerHandshake::new(context(), d.public());
    for point in [[0u8; 32], {
        let mut one = [0u8; 32];
        one[0] = 1;
        one
    }] {
        let hello = KeyAgentMessage::Hello { x25519: point };
        assert!(viewer().receive_hello(&hello, &creds, &mut rng(2)).is_err());
    }
    assert!(matches!(
        viewer().receive_hello(&KeyAgentMessage::Confirm([0; 32]), &creds, &mut rng(2)),
        Err(HandshakeError::UnexpectedMessage)
    ));
    let (_, hello) = KeyAgentHandshake::start(context(), &d, &mut rng(3));
    let waiting = || viewer().receive_hello(&hello, &creds, &mut rng(4)).unwrap().1;
    assert!(matches!(
        waiting().receive_confirm(&hello),
        Err(HandshakeError::UnexpectedMessage)
    ));
    assert!(matches!(
        waiting().receive_confirm(&KeyAgentMessage::Confirm([7; 32])),
        Err(HandshakeError::WrongDevice)
    ));
}

#[test]
fn abort_reason_for_refusal_is_not_trusted() {
    let e = HandshakeError::NotTrusted(Box::new(PeerIdentity::Unverified {
        fingerprint: assistant_key().public_key().fingerprint(),
        reason: ponte_e2e::identity::CertificateError::Missing,
    }));
    assert_eq!(e.abort_reason(&Default::default()), AbortReason::NotTrusted);
    let _ = TrustStore::new();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_into_key_handshake_decoders_are_errors_not_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = KeyAgentMessage::decode(&bytes);
        if let Ok(message) = KeyViewerMessage::decode(&bytes) {
            let d = device(1);
            let (agent, _) = KeyAgentHandshake::start(context(), &d, &mut rng(1));
            prop_assert!(agent.receive(&message, &d, &trust_org(), &[org_admission()], NOW).is_err());
        }
    }
}
