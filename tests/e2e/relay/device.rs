//! Quick-access rendezvous by device tag, with real quinn clients on loopback: an agent
//! registered under a tag is found by it, lookups are rate-limited, a credential-only relay
//! refuses before looking, nobody without the device's private key can take its tag, and an
//! agent a relay routes a viewer to instead only gets a failed key handshake.

#![allow(clippy::unwrap_used)]

use ponte_e2e::device_key::DeviceKey;
use ponte_e2e::handshake::{Credentials, HandshakeContext, HandshakeError, MAX_MESSAGE};
use ponte_e2e::identity::{Certificate, PrivateKey, TrustStore};
use ponte_e2e::key_handshake::{
    Admission, Admits, KeyAgentHandshake, KeyAgentMessage, KeyViewerHandshake, KeyViewerMessage,
};
use ponte_tests::*;
use ponte_transport::client::{ClientError, JoinExtras, RelayClient};
use ponte_transport::framed;
use ponte_wire::rendezvous::{Refusal, RelayMessage};
use ponte_wire::{DeviceTag, SessionId, os_rng};

const ASSISTANT: &str = include_str!("../../../crates/e2e/tests/vectors/assistant.key.pem");
const ORGANISATION: &str = include_str!("../../../crates/e2e/tests/vectors/organisation.key.pem");
/// Inside the test certificate's validity.
const NOW: u64 = 1_800_000_000;

/// Registers `client` for quick access as the holder of `key`.
async fn register(client: &mut RelayClient, key: &DeviceKey) -> Result<SessionId, ClientError> {
    let public = key.public();
    let prove = |challenge: &[u8; 32], exporter: &[u8]| key.possession(challenge, exporter);
    Ok(client.register_device(public.0, public.tag(), prove).await?.0)
}

#[tokio::test]
async fn a_viewer_finds_the_agent_by_tag_and_both_hear_the_session() {
    let r = relay().await;
    let key = DeviceKey::generate(&mut os_rng());
    let tag = key.public().tag();
    let mut agent = r.connect().await;
    let id = register(&mut agent, &key).await.unwrap();
    // Its ID is no way in: a join by ID is answered as for an unknown session, and the agent
    // hears nothing of it (quick access has a registration of its own, docs/PROTOCOL.md § 9.5).
    let mut by_id = r.connect_from(&endpoint(4)).await.unwrap();
    let err = by_id.join(id).await.unwrap_err();
    assert_eq!(refusal(&err), Some(Refusal::UnknownSession));
    let mut viewer = r.connect_from(&endpoint(2)).await.unwrap();
    let session = viewer.join_device(tag, &JoinExtras::default()).await.unwrap();
    assert_eq!(session, id);
    assert_eq!(
        agent.next().await.unwrap(),
        RelayMessage::PairedDevice { session: id },
        "the first thing the agent hears is the join by tag"
    );
    // Streams are forwarded as after any pairing.
    let (mut send, _recv) = agent.connection().open_bi().await.unwrap();
    send.write_all(b"hello").await.unwrap();
    send.finish().unwrap();
    let (_s, mut recv) = viewer.connection().accept_bi().await.unwrap();
    assert_eq!(recv.read_to_end(100).await.unwrap(), b"hello");

    // A second viewer by tag while it is paired: unknown to it, and the agent is told.
    let mut second = r.connect_from(&endpoint(5)).await.unwrap();
    let err = second.join_device(tag, &JoinExtras::default()).await.unwrap_err();
    assert_eq!(refusal(&err), Some(Refusal::UnknownSession));
    assert_eq!(
        agent.next().await.unwrap(),
        RelayMessage::JoinRefused(Refusal::AlreadyPaired)
    );
    // An unknown tag is unknown.
    let mut other = r.connect_from(&endpoint(3)).await.unwrap();
    let err = other
        .join_device(DeviceTag([6; 16]), &JoinExtras::default())
        .await
        .unwrap_err();
    assert_eq!(refusal(&err), Some(Refusal::UnknownSession));
    // A modified agent that registers again on its control line breaks the protocol: the
    // relay refuses and ends its session.
    agent
        .send(&ponte_wire::rendezvous::ClientMessage::RegisterDevice { tag })
        .await
        .unwrap();
    assert_eq!(
        agent.next().await.unwrap(),
        RelayMessage::Refused(Refusal::BadRequest)
    );
}

#[tokio::test]
async fn device_lookups_are_rate_limited_per_source() {
    let r = relay_with(|c| {
        c.registry.device_lookup_burst = 2.0;
        c.registry.device_lookup_rate = 1.0 / 60.0;
    })
    .await;
    let ep = endpoint(7);
    for i in 0..2u8 {
        let mut v = r.connect_from(&ep).await.unwrap();
        let err = v
            .join_device(DeviceTag([i; 16]), &JoinExtras::default())
            .await
            .unwrap_err();
        assert_eq!(refusal(&err), Some(Refusal::UnknownSession));
    }
    let mut v = r.connect_from(&ep).await.unwrap();
    let err = v
        .join_device(DeviceTag([9; 16]), &JoinExtras::default())
        .await
        .unwrap_err();
    assert!(
        matches!(refusal(&err), Some(Refusal::RateLimited { .. })),
        "{err:?}"
    );
    // Another source is not affected.
    let mut w = r.connect_from(&endpoint(8)).await.unwrap();
    let err = w
        .join_device(DeviceTag([9; 16]), &JoinExtras::default())
        .await
        .unwrap_err();
    assert_eq!(refusal(&err), Some(Refusal::UnknownSession));
}

#[tokio::test]
async fn a_credential_only_relay_refuses_before_looking_the_tag_up() {
    let r = relay_with(|c| c.assistants = ponte_relay::config::AssistantMode::Required).await;
    let key = DeviceKey::generate(&mut os_rng());
    let tag = key.public().tag();
    let mut agent = r.connect().await;
    register(&mut agent, &key).await.unwrap();
    let mut viewer = r.connect_from(&endpoint(2)).await.unwrap();
    let err = viewer.join_device(tag, &JoinExtras::default()).await.unwrap_err();
    assert_eq!(refusal(&err), Some(Refusal::CredentialRequired));
}

fn context(client: &RelayClient, session: SessionId) -> HandshakeContext {
    HandshakeContext {
        session,
        relay: client.relay_fingerprint().unwrap().0,
    }
}

fn credentials() -> Credentials {
    let key = PrivateKey::from_pem(ASSISTANT).unwrap();
    let org = PrivateKey::from_pem(ORGANISATION).unwrap();
    let cert = Certificate::issue(
        &org,
        "Alice Example",
        "Example Support Ltd",
        key.public_key(),
        1_770_000_000,
        1_830_000_000,
        &mut os_rng(),
    )
    .unwrap();
    Credentials {
        key,
        certificate: Some(cert),
    }
}

/// Runs the key handshake between a paired agent (holding `device`) and viewer (expecting
/// `expected`) through the relay; returns whether each side succeeded.
async fn key_handshake(
    agent: &RelayClient,
    viewer: &RelayClient,
    session: SessionId,
    device: &DeviceKey,
    expected: &DeviceKey,
) -> (Result<(), HandshakeError>, Result<(), HandshakeError>) {
    let org = PrivateKey::from_pem(ORGANISATION).unwrap();
    let mut trust = TrustStore::new();
    trust.add(org.public_key().clone(), "ACME Support");
    let admissions = [Admission {
        admits: Admits::Organisation(org.public_key().fingerprint()),
        not_after: NOW + 60,
    }];
    let (hs, hello) = KeyAgentHandshake::start(context(agent, session), device, &mut os_rng());
    let (mut a_send, mut a_recv) = agent.connection().open_bi().await.unwrap();
    a_send.write_all(&hello.encode()).await.unwrap();
    let (mut v_send, mut v_recv) = viewer.connection().accept_bi().await.unwrap();
    let hello: KeyAgentMessage = framed::read(&mut v_recv, MAX_MESSAGE).await.unwrap().unwrap();
    let (auth, waiting) = KeyViewerHandshake::new(context(viewer, session), expected.public())
        .receive_hello(&hello, &credentials(), &mut os_rng())
        .unwrap();
    v_send.write_all(&auth.encode()).await.unwrap();
    let auth: KeyViewerMessage = framed::read(&mut a_recv, MAX_MESSAGE).await.unwrap().unwrap();
    let (answer, agent_result) = match hs.receive(&auth, device, &trust, &admissions, NOW) {
        Ok((confirm, _)) => (confirm, Ok(())),
        Err(e) => (
            KeyAgentMessage::Abort(e.abort_reason(&Default::default())),
            Err(e),
        ),
    };
    a_send.write_all(&answer.encode()).await.unwrap();
    let answer: KeyAgentMessage = framed::read(&mut v_recv, MAX_MESSAGE).await.unwrap().unwrap();
    (agent_result, waiting.receive_confirm(&answer).map(|_| ()))
}

#[tokio::test]
async fn the_right_device_completes_the_key_handshake_through_the_relay() {
    let r = relay().await;
    let device = DeviceKey::generate(&mut os_rng());
    let tag = device.public().tag();
    let mut agent = r.connect().await;
    register(&mut agent, &device).await.unwrap();
    let mut viewer = r.connect_from(&endpoint(2)).await.unwrap();
    let session = viewer.join_device(tag, &JoinExtras::default()).await.unwrap();
    assert_eq!(
        agent.next().await.unwrap(),
        RelayMessage::PairedDevice { session }
    );
    let (a, v) = key_handshake(&agent, &viewer, session, &device, &device).await;
    assert_eq!(a, Ok(()));
    assert_eq!(v, Ok(()));
}

#[tokio::test]
async fn nobody_without_the_device_key_can_take_its_tag() {
    // Every assistant given the device's public key knows its tag. An impostor who tries to
    // register it — with its own key, with the real public key and a proof of its own, or
    // replaying the real agent's proof on another connection — is refused, and the viewer
    // still meets the real device.
    let r = relay().await;
    let device = DeviceKey::generate(&mut os_rng());
    let impostor = DeviceKey::generate(&mut os_rng());
    let (public, tag) = (device.public(), device.public().tag());
    let mut real = r.connect().await;
    let mut seen = None;
    let id = real
        .register_device(public.0, tag, |challenge, exporter| {
            let proof = device.possession(challenge, exporter);
            seen = Some(proof);
            proof
        })
        .await
        .unwrap()
        .0;
    type Prove<'a> = Box<dyn Fn(&[u8; 32], &[u8]) -> [u8; 32] + 'a>;
    let attempts: [(&str, [u8; 32], Prove); 3] = [
        (
            "its own key",
            impostor.public().0,
            Box::new(|c, e| impostor.possession(c, e)),
        ),
        (
            "the real key, its own proof",
            public.0,
            Box::new(|c, e| impostor.possession(c, e)),
        ),
        ("a replayed proof", public.0, Box::new(move |_, _| seen.unwrap())),
    ];
    for (n, (what, claimed, prove)) in attempts.into_iter().enumerate() {
        let mut fake = r.connect_from(&endpoint(3 + n as u8)).await.unwrap();
        let err = fake.register_device(claimed, tag, prove).await.unwrap_err();
        assert_eq!(refusal(&err), Some(Refusal::BadRequest), "{what}");
    }
    let mut viewer = r.connect_from(&endpoint(2)).await.unwrap();
    let session = viewer.join_device(tag, &JoinExtras::default()).await.unwrap();
    assert_eq!(session, id);
    assert_eq!(real.next().await.unwrap(), RelayMessage::PairedDevice { session });
}

#[tokio::test]
async fn an_agent_a_relay_routes_the_viewer_to_instead_gets_only_a_failed_handshake() {
    // A hostile relay answers the lookup of the real device's tag with another agent (here:
    // the viewer joins that agent's own tag, as such a relay would route it). The key
    // handshake fails on both sides: no session.
    let r = relay().await;
    let device = DeviceKey::generate(&mut os_rng());
    let impostor = DeviceKey::generate(&mut os_rng());
    let mut fake = r.connect_from(&endpoint(3)).await.unwrap();
    register(&mut fake, &impostor).await.unwrap();
    let mut viewer = r.connect_from(&endpoint(2)).await.unwrap();
    let session = viewer
        .join_device(impostor.public().tag(), &JoinExtras::default())
        .await
        .unwrap();
    assert_eq!(fake.next().await.unwrap(), RelayMessage::PairedDevice { session });
    let (a, v) = key_handshake(&fake, &viewer, session, &impostor, &device).await;
    assert_eq!(a, Err(HandshakeError::WrongDevice));
    assert!(v.is_err(), "{v:?}");
}

#[tokio::test]
async fn a_modified_agent_that_skips_or_garbles_the_challenge_is_refused() {
    // A proof sent as the first message (no challenge was asked, so none can be answered), and
    // a registration that answers the challenge with something else: both refused, nothing
    // registered under the tag.
    use ponte_wire::rendezvous::ClientMessage;
    let r = relay().await;
    let key = DeviceKey::generate(&mut os_rng());
    let (public, tag) = (key.public(), key.public().tag());
    let mut early = r.connect().await;
    early
        .send(&ClientMessage::DeviceProof {
            device: public.0,
            proof: [0; 32],
        })
        .await
        .unwrap();
    assert_eq!(
        early.next().await.unwrap(),
        RelayMessage::Refused(Refusal::BadRequest)
    );
    let mut garbled = r.connect_from(&endpoint(3)).await.unwrap();
    garbled
        .send(&ClientMessage::RegisterDevice { tag })
        .await
        .unwrap();
    assert!(matches!(
        garbled.next().await.unwrap(),
        RelayMessage::DeviceChallenge { .. }
    ));
    garbled.send(&ClientMessage::Register).await.unwrap();
    assert_eq!(
        garbled.next().await.unwrap(),
        RelayMessage::Refused(Refusal::BadRequest)
    );
    let mut viewer = r.connect_from(&endpoint(2)).await.unwrap();
    let err = viewer.join_device(tag, &JoinExtras::default()).await.unwrap_err();
    assert_eq!(refusal(&err), Some(Refusal::UnknownSession));
}

/// Sends `RegisterDevice` for a fresh tag on a new connection from `ep` and returns the relay's
/// first answer, with the connection (kept open: an agent that never proves holds its line).
async fn knock(r: &TestRelay, ep: &quinn::Endpoint) -> (RelayClient, RelayMessage) {
    use ponte_wire::rendezvous::ClientMessage;
    let tag = DeviceKey::generate(&mut os_rng()).public().tag();
    let mut client = r.connect_from(ep).await.unwrap();
    client.send(&ClientMessage::RegisterDevice { tag }).await.unwrap();
    let answer = tokio::time::timeout(std::time::Duration::from_secs(10), client.next())
        .await
        .expect("the relay answers RegisterDevice at once")
        .unwrap();
    (client, answer)
}

#[tokio::test]
async fn a_register_device_flood_is_rate_limited_before_any_challenge_is_made() {
    // Each challenge is an X25519 key pair and a line held open for the proof: a source past
    // its registration limit must get neither, only `RateLimited`.
    let r = relay_with(|c| {
        c.registry.register_burst = 2.0;
        c.registry.register_rate = 1.0 / 60.0;
        c.admission.per_source = 100;
    })
    .await;
    let ep = endpoint(9);
    let mut held = Vec::new();
    let mut challenged = 0;
    let mut limited = 0;
    for _ in 0..10 {
        let (client, answer) = knock(&r, &ep).await;
        match answer {
            RelayMessage::DeviceChallenge { .. } => challenged += 1,
            RelayMessage::Refused(Refusal::RateLimited { .. }) => limited += 1,
            other => panic!("unexpected answer {other:?}"),
        }
        held.push(client);
    }
    assert_eq!((challenged, limited), (2, 8));
    assert_eq!(r.relay.stats().device_challenges, 2, "key pairs made");
    // Another source still has its own budget.
    let (_other, answer) = knock(&r, &endpoint(10)).await;
    assert!(
        matches!(answer, RelayMessage::DeviceChallenge { .. }),
        "{answer:?}"
    );
    assert_eq!(r.relay.stats().device_challenges, 3);
}
