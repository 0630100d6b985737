//! Hostile bytes into the quick-access handshake decoders and a waiting agent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ponte_e2e::device_key::DeviceKey;
use ponte_e2e::handshake::HandshakeContext;
use ponte_e2e::identity::TrustStore;
use ponte_e2e::key_handshake::{KeyAgentHandshake, KeyAgentMessage, KeyViewerMessage};

fuzz_target!(|data: &[u8]| {
    let _ = KeyAgentMessage::decode(data);
    if let Ok(message) = KeyViewerMessage::decode(data) {
        let context = HandshakeContext {
            session: "123456789".parse().expect("valid"),
            relay: [0; 32],
        };
        let device = DeviceKey::from_bytes([7; 32]);
        let (agent, _) = KeyAgentHandshake::start(context, &device, &mut ponte_wire::os_rng());
        // No admissions: nothing a peer sends can open a session.
        assert!(agent.receive(&message, &device, &TrustStore::new(), &[], 0).is_err());
    }
});
