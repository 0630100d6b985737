//! Hostile bytes into the resume handshake decoders and a waiting agent: whatever a viewer (or
//! a relay that knows the tag) sends, nobody without the resume secret resumes the session.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ponte_e2e::handshake::HandshakeContext;
use ponte_e2e::resume::{ResumeAgentHandshake, ResumeAgentMessage, ResumeViewerMessage};

fuzz_target!(|data: &[u8]| {
    let _ = ResumeAgentMessage::decode(data);
    if let Ok(message) = ResumeViewerMessage::decode(data) {
        let context = HandshakeContext {
            session: "123456789".parse().expect("valid"),
            relay: [0; 32],
        };
        let secret = ponte_e2e::key_schedule::derive(&[1; 32], b"fuzz", &[2; 32]).resume;
        let (agent, _) = ResumeAgentHandshake::start(context, &mut ponte_wire::os_rng());
        assert!(agent.receive(&message, &secret).is_err());
    }
});
