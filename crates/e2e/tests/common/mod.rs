//! Helpers shared by the protocol's integration tests.

// Each test binary uses a different subset; helpers panic on setup failure by design.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;

use chacha20::ChaCha20Rng;
use ponte_e2e::handshake::{
    AgentHandshake, AgentMessage, AgentOutcome, CodeAttempts, Credentials, HandshakeContext, HandshakeError,
    ViewerHandshake,
};
use ponte_e2e::identity::{Certificate, PrivateKey, TrustStore};
use ponte_e2e::session_keys::SessionKeys;
use ponte_wire::OneTimeCode;
use rand_core::SeedableRng;

/// A point in time inside the validity of the test certificate (2027-01-15).
pub const NOW: u64 = 1_800_000_000;

pub fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

pub fn bless() -> bool {
    std::env::var_os("PONTE_BLESS").is_some()
}

pub fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// Loads a committed test key, or (with PONTE_BLESS=1) regenerates it deterministically.
/// These keys are public test fixtures, never used outside tests.
pub fn test_key(name: &str, seed: u64) -> PrivateKey {
    let path = vectors_dir().join(format!("{name}.key.pem"));
    if bless() && !path.exists() {
        let key = PrivateKey::generate(&mut rng(seed)).unwrap();
        std::fs::write(&path, key.to_pem().unwrap().as_bytes()).unwrap();
    }
    let pem = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    PrivateKey::from_pem(&pem).unwrap()
}

pub fn assistant_key() -> PrivateKey {
    test_key("assistant", 1)
}

pub fn org_key() -> PrivateKey {
    test_key("organisation", 2)
}

pub fn other_key() -> PrivateKey {
    test_key("other", 3)
}

/// The assistant's credentials, certified by the test organisation for 2026–2028.
pub fn certified_credentials() -> Credentials {
    let key = assistant_key();
    let cert = Certificate::issue(
        &org_key(),
        "Alice Example",
        "Example Support Ltd",
        key.public_key(),
        1_770_000_000,
        1_830_000_000,
        &mut rng(4),
    )
    .unwrap();
    Credentials {
        key,
        certificate: Some(cert),
    }
}

pub fn trust_org() -> TrustStore {
    let mut t = TrustStore::new();
    t.add(org_key().public_key().clone(), "Example Support Ltd");
    t
}

pub fn context() -> HandshakeContext {
    HandshakeContext {
        session: "123456789".parse().unwrap(),
        relay: [0x42; 32],
    }
}

pub fn code(s: &str) -> OneTimeCode {
    s.parse().unwrap()
}

/// Runs a whole handshake in memory. Returns each side's result.
pub fn handshake(
    agent_code: &OneTimeCode,
    viewer_code: &OneTimeCode,
    attempts: &mut CodeAttempts,
    credentials: &Credentials,
    trust: &TrustStore,
    seed: u64,
) -> (
    Result<AgentOutcome, HandshakeError>,
    Result<SessionKeys, HandshakeError>,
) {
    let mut r = rng(seed);
    let (agent, hello) = match AgentHandshake::start(context(), agent_code, attempts, &mut r) {
        Ok(x) => x,
        Err(e) => return (Err(e.clone()), Err(e)),
    };
    let viewer = ViewerHandshake::new(context(), viewer_code.clone());
    let (auth, viewer) = viewer.receive_hello(&hello, credentials, &mut r).unwrap();
    match agent.receive(&auth, attempts, trust, NOW) {
        Ok((confirm, outcome)) => (Ok(outcome), viewer.receive_confirm(&confirm)),
        Err(e) => {
            let abort = AgentMessage::Abort(e.abort_reason(attempts));
            (Err(e), viewer.receive_confirm(&abort))
        }
    }
}

/// Sends `data` on a new stream of `from` and reads it with `to`; returns what `to` read.
pub fn exchange(from: &mut SessionKeys, to: &mut SessionKeys, data: &[u8]) -> Vec<u8> {
    use ponte_e2e::record::{Opened, RecordHeader};
    let mut stream = from.open_stream().unwrap();
    let mut wire = Vec::new();
    stream.sealer.seal(data, 1000, &mut wire).unwrap();
    stream.sealer.finish(&mut wire).unwrap();
    let header = RecordHeader::parse(&wire).unwrap();
    let mut incoming = to.accept_stream(header.stream).unwrap();
    let mut out = Vec::new();
    let mut rest = &wire[..];
    while !rest.is_empty() {
        let (used, opened) = incoming.opener.decapsulate(rest).unwrap();
        rest = &rest[used..];
        match opened {
            Some(Opened::Data(p)) => out.extend_from_slice(p),
            Some(Opened::End) | None => {}
        }
    }
    incoming.opener.finish().unwrap();
    out
}
