//! Hostile bytes into the quick-access handshake decoders and a waiting agent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ponte_protocol::device::DeviceKey;
use ponte_protocol::handshake::HandshakeContext;
use ponte_protocol::identity::TrustStore;
use ponte_protocol::key_handshake::{KeyAgentHandshake, KeyAgentMessage, KeyViewerMessage};

fuzz_target!(|data: &[u8]| {
    let _ = KeyAgentMessage::decode(data);
    if let Ok(message) = KeyViewerMessage::decode(data) {
        let context = HandshakeContext {
            session: "123456789".parse().expect("valid"),
            relay: [0; 32],
        };
        let device = DeviceKey::from_bytes([7; 32]);
        let (agent, _) = KeyAgentHandshake::start(context, &device, &mut ponte_protocol::os_rng());
        // No admissions: nothing a peer sends can open a session.
        assert!(agent.receive(&message, &device, &TrustStore::new(), &[], 0).is_err());
    }
});
