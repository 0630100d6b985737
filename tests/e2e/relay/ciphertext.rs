//! The relay cannot read a session: agent and viewer run the code-gated handshake through
//! the relay and exchange records carrying a known marker; the bytes the relay forwarded never
//! contain it, yet the receiver decrypts it.

#![allow(clippy::unwrap_used)]

use ponte_e2e::handshake::{
    AgentHandshake, AgentMessage, CodeAttempts, Credentials, HandshakeContext, MAX_MESSAGE, ViewerHandshake,
    ViewerMessage,
};
use ponte_e2e::identity::{PrivateKey, TrustStore};
use ponte_e2e::record::{Opened, RecordHeader};
use ponte_tests::*;
use ponte_transport::framed;
use ponte_wire::{OneTimeCode, os_rng};

const MARKER: &[u8] = b"PONTE-PLAINTEXT-MARKER-6f1d";
const KEY: &str = include_str!("../../../crates/e2e/tests/vectors/assistant.key.pem");

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn the_relay_forwards_only_ciphertext() {
    let r = relay().await;
    let (agent, viewer) = r.pair().await;
    let code: OneTimeCode = "48151623".parse().unwrap();
    let context =
        |fp: ponte_transport::tls::CertFingerprint, session| HandshakeContext { session, relay: fp.0 };
    let session = "000000000".parse().unwrap();
    let agent_ctx = context(agent.relay_fingerprint().unwrap(), session);
    let viewer_ctx = context(viewer.relay_fingerprint().unwrap(), session);
    assert_eq!(agent_ctx, viewer_ctx, "both sides saw the same relay certificate");

    // Handshake on the first stream the agent opens.
    let (a, v) = (agent.connection().clone(), viewer.connection().clone());
    let mut attempts = CodeAttempts::new();
    let (hs, hello) = AgentHandshake::start(agent_ctx, &code, &attempts, &mut os_rng()).unwrap();
    let (mut a_send, mut a_recv) = a.open_bi().await.unwrap();
    a_send.write_all(&hello.encode()).await.unwrap();
    let (mut v_send, mut v_recv) = v.accept_bi().await.unwrap();
    let hello: AgentMessage = framed::read(&mut v_recv, MAX_MESSAGE).await.unwrap().unwrap();
    let creds = Credentials {
        key: PrivateKey::from_pem(KEY).unwrap(),
        certificate: None,
    };
    let (auth, waiting) = ViewerHandshake::new(viewer_ctx, code.clone())
        .receive_hello(&hello, &creds, &mut os_rng())
        .unwrap();
    v_send.write_all(&auth.encode()).await.unwrap();
    let auth: ViewerMessage = framed::read(&mut a_recv, MAX_MESSAGE).await.unwrap().unwrap();
    let (confirm, outcome) = hs.receive(&auth, &mut attempts, &TrustStore::new(), 0).unwrap();
    a_send.write_all(&confirm.encode()).await.unwrap();
    let confirm: AgentMessage = framed::read(&mut v_recv, MAX_MESSAGE).await.unwrap().unwrap();
    let mut viewer_keys = waiting.receive_confirm(&confirm).unwrap();
    let mut agent_keys = outcome.keys;

    // The agent sends the marker many times on a new stream.
    let mut stream = agent_keys.open_stream().unwrap();
    let mut wire = Vec::new();
    let plaintext: Vec<u8> = MARKER.repeat(2000);
    stream.sealer.seal(&plaintext, 16 * 1024, &mut wire).unwrap();
    stream.sealer.finish(&mut wire).unwrap();
    let (mut send, _) = a.open_bi().await.unwrap();
    send.write_all(&wire).await.unwrap();
    send.finish().unwrap();

    // What arrives at the viewer is exactly what the relay forwarded.
    let (_, mut recv) = v.accept_bi().await.unwrap();
    let forwarded = recv.read_to_end(1 << 24).await.unwrap();
    assert_eq!(forwarded, wire, "the relay forwards bytes unchanged");
    assert!(
        !contains(&forwarded, MARKER),
        "plaintext marker visible to the relay"
    );
    assert!(
        !contains(&forwarded, &code.digits().into_bytes()),
        "code visible to the relay"
    );

    let header = RecordHeader::parse(&forwarded).unwrap();
    let mut incoming = viewer_keys.accept_stream(header.stream).unwrap();
    let mut out = Vec::new();
    let mut rest = &forwarded[..];
    while !rest.is_empty() {
        let (used, opened) = incoming.opener.decapsulate(rest).unwrap();
        rest = &rest[used..];
        if let Some(Opened::Data(p)) = opened {
            out.extend_from_slice(p);
        }
    }
    incoming.opener.finish().unwrap();
    assert_eq!(out, plaintext);
}
