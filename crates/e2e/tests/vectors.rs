//! Known-answer vectors: with seeded randomness and committed test keys, the whole handshake
//! and the first records are fixed bytes. Any change to the wire format fails here.
//!
//! After an intended wire change, regenerate with
//! `PONTE_BLESS=1 cargo test -p ponte-protocol --test vectors` and say why in the commit.

#![allow(clippy::unwrap_used)] // test helpers panic on setup failure by design

mod common;

use common::*;
use ponte_e2e::device_key::DeviceKey;
use ponte_e2e::handshake::{AbortReason, AgentHandshake, AgentMessage, CodeAttempts, ViewerHandshake};
use ponte_e2e::key_handshake::{Admission, Admits, KeyAgentHandshake, KeyAgentMessage, KeyViewerHandshake};
use ponte_e2e::record::{Opened, RecordHeader};
use ponte_wire::rendezvous::{self, ClientMessage, RelayMessage};

fn compute() -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    let code = code("1234-5678");
    let creds = certified_credentials();
    let mut agent_rng = rng(100);
    let mut viewer_rng = rng(200);

    let mut attempts = CodeAttempts::new();
    let (agent, hello) = AgentHandshake::start(context(), &code, &attempts, &mut agent_rng).unwrap();
    let (auth, viewer) = ViewerHandshake::new(context(), code.clone())
        .receive_hello(&hello, &creds, &mut viewer_rng)
        .unwrap();
    let (confirm, outcome) = agent.receive(&auth, &mut attempts, &trust_org(), NOW).unwrap();
    let mut viewer_keys = viewer.receive_confirm(&confirm).unwrap();
    let mut agent_keys = outcome.keys;
    assert!(outcome.peer.is_verified());

    out.push(("agent_hello", hello.encode()));
    out.push(("viewer_auth", auth.encode()));
    out.push(("agent_confirm", confirm.encode()));
    out.push((
        "agent_abort_wrong_code",
        AgentMessage::Abort(ponte_e2e::handshake::AbortReason::WrongCode).encode(),
    ));

    let mut a = agent_keys.open_stream().unwrap();
    let mut wire = Vec::new();
    a.sealer.seal(b"hello from the agent", 1024, &mut wire).unwrap();
    out.push(("agent_stream0_record0", wire.clone()));
    let mut end = Vec::new();
    a.sealer.finish(&mut end).unwrap();
    out.push(("agent_stream0_end", end.clone()));

    let mut v = viewer_keys.open_stream().unwrap();
    let mut vwire = Vec::new();
    v.sealer.seal(b"hello from the viewer", 1024, &mut vwire).unwrap();
    out.push(("viewer_stream1_record0", vwire.clone()));

    // The vectors must also open on the other side.
    let mut incoming = viewer_keys
        .accept_stream(RecordHeader::parse(&wire).unwrap().stream)
        .unwrap();
    assert_eq!(
        incoming.opener.open_in_place(&mut wire).unwrap(),
        Opened::Data(b"hello from the agent")
    );
    assert_eq!(incoming.opener.open_in_place(&mut end).unwrap(), Opened::End);

    out.push((
        "rendezvous_register",
        rendezvous::encode_client(&ClientMessage::Register),
    ));
    out.push((
        "rendezvous_join",
        rendezvous::encode_client(&ClientMessage::Join {
            session: context().session,
        }),
    ));
    out.push((
        "rendezvous_registered",
        rendezvous::encode_relay(&RelayMessage::Registered {
            session: context().session,
            expires_in_secs: 600,
        }),
    ));
    out.push((
        "rendezvous_join_as",
        rendezvous::encode_client(&ClientMessage::JoinAs {
            session: context().session,
            ticket: Some("ACME-4711".parse().unwrap()),
            proof: Some(rendezvous::AssistantProof::new([0x11; 32], &[0x22; 64])),
        }),
    ));
    out.push((
        "rendezvous_join_refused",
        rendezvous::encode_relay(&RelayMessage::JoinRefused(rendezvous::Refusal::CredentialRefused)),
    ));
    out.push((
        "rendezvous_redirect",
        rendezvous::encode_relay(&RelayMessage::Redirect {
            node: "relay-b.example.com:4433".parse().unwrap(),
        }),
    ));
    out.push((
        "rendezvous_cluster_unavailable",
        rendezvous::encode_relay(&RelayMessage::Refused(rendezvous::Refusal::ClusterUnavailable)),
    ));
    out.extend(key_handshake());
    out
}

/// The key-authenticated handshake of quick access, with a seeded device key.
fn key_handshake() -> Vec<(&'static str, Vec<u8>)> {
    let device = DeviceKey::generate(&mut rng(300));
    let creds = certified_credentials();
    let admissions = [Admission {
        admits: Admits::Organisation(org_key().public_key().fingerprint()),
        not_after: NOW + 86_400,
    }];
    let (agent, hello) = KeyAgentHandshake::start(context(), &device, &mut rng(400));
    let (auth, viewer) = KeyViewerHandshake::new(context(), device.public())
        .receive_hello(&hello, &creds, &mut rng(500))
        .unwrap();
    let (confirm, outcome) = agent
        .receive(&auth, &device, &trust_org(), &admissions, NOW)
        .unwrap();
    let mut viewer_keys = viewer.receive_confirm(&confirm).unwrap();
    let mut agent_keys = outcome.keys;
    let mut a = agent_keys.open_stream().unwrap();
    let mut wire = Vec::new();
    a.sealer.seal(b"hello from the agent", 1024, &mut wire).unwrap();
    let record = wire.clone();
    let mut incoming = viewer_keys
        .accept_stream(RecordHeader::parse(&wire).unwrap().stream)
        .unwrap();
    assert_eq!(
        incoming.opener.open_in_place(&mut wire).unwrap(),
        Opened::Data(b"hello from the agent")
    );
    vec![
        ("key_device_public", device.public().0.to_vec()),
        ("key_device_tag", device.public().tag().0.to_vec()),
        ("key_agent_hello", hello.encode()),
        ("key_viewer_auth", auth.encode()),
        ("key_agent_confirm", confirm.encode()),
        (
            "key_agent_abort_not_trusted",
            KeyAgentMessage::Abort(AbortReason::NotTrusted).encode(),
        ),
        ("key_agent_stream0_record0", record),
    ]
}

fn render(vectors: &[(&str, Vec<u8>)]) -> String {
    let mut s = String::from(
        "# Ponte protocol v1 known-answer vectors (hex). Inputs: tests/common/mod.rs and\n\
         # tests/vectors.rs. Regenerate: PONTE_BLESS=1 cargo test -p ponte-protocol --test vectors\n",
    );
    for (name, bytes) in vectors {
        s.push_str(&format!("{name} = {}\n", hex::encode(bytes)));
    }
    s
}

#[test]
fn wire_bytes_match_committed_vectors() {
    let path = vectors_dir().join("handshake.txt");
    let actual = render(&compute());
    if bless() {
        std::fs::write(&path, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap();
    for (e, a) in expected.lines().zip(actual.lines()) {
        let name = a.split(' ').next().unwrap_or_default();
        assert_eq!(e, a, "vector {name} changed");
    }
    assert_eq!(expected.lines().count(), actual.lines().count());
}

#[test]
fn computation_is_deterministic() {
    assert_eq!(render(&compute()), render(&compute()));
}
