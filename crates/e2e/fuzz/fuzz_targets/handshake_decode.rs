//! Hostile bytes into the handshake message decoders and a waiting agent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ponte_e2e::handshake::{
    AgentHandshake, AgentMessage, CodeAttempts, HandshakeContext, ViewerMessage,
};
use ponte_e2e::identity::{Certificate, TrustStore};

fuzz_target!(|data: &[u8]| {
    let _ = AgentMessage::decode(data);
    let _ = Certificate::from_bytes(data);
    if let Ok(message) = ViewerMessage::decode(data) {
        let context = HandshakeContext {
            session: "123456789".parse().expect("valid"),
            relay: [0; 32],
        };
        let code = "12345678".parse().expect("valid");
        let mut attempts = CodeAttempts::new();
        let (agent, _) =
            AgentHandshake::start(context, &code, &attempts, &mut ponte_wire::os_rng()).expect("fresh");
        assert!(agent.receive(&message, &mut attempts, &TrustStore::new(), 0).is_err());
        assert_eq!(attempts.failures(), 1);
    }
});
