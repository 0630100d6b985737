//! Hostile bytes into the rendezvous decoders, whole and through the streaming frame reader,
//! and into the parsers of what a viewer presents with a join (tickets, credential text) and
//! of the node address a relay redirects a viewer to.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ponte_wire::credential_text::CredentialSecret;
use ponte_wire::frame::FrameReader;
use ponte_wire::rendezvous::{
    self, ClientMessage, MAX_MESSAGE, NodeAddress, PROOF_EXPORTER_LEN, RelayMessage, Ticket,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(ticket) = text.parse::<Ticket>() {
            assert_eq!(ticket.as_str(), text, "a ticket is kept as given");
        }
        if let Ok(node) = text.parse::<NodeAddress>() {
            assert_eq!(node.as_str(), text, "a node address is kept as given");
            assert!(text.ends_with(node.host()) || text.contains(node.host()));
        }
        if let Ok(secret) = text.parse::<CredentialSecret>() {
            assert_eq!(secret.to_text().parse::<CredentialSecret>(), Ok(secret));
        }
    }
    if let Ok(m) = rendezvous::decode_client(data) {
        assert_eq!(rendezvous::encode_client(&m), data, "decoding must be canonical");
        if let ClientMessage::JoinAs { session, ticket, .. } = &m {
            let _ = rendezvous::proof_message(&[0; PROOF_EXPORTER_LEN], *session, ticket.as_ref());
        }
        if let ClientMessage::JoinDevice { tag, ticket, .. } = &m {
            let _ = rendezvous::proof_message(&[0; PROOF_EXPORTER_LEN], *tag, ticket.as_ref());
        }
    }
    if let Ok(m) = rendezvous::decode_relay(data) {
        assert_eq!(rendezvous::encode_relay(&m), data, "decoding must be canonical");
    }
    let mut reader = FrameReader::new(MAX_MESSAGE);
    let mut rest = data;
    while !rest.is_empty() {
        match reader.push(rest) {
            Ok(used) => rest = &rest[used..],
            Err(_) => return,
        }
        if reader.take::<ClientMessage>().is_err() {
            return;
        }
    }
    let _ = reader.take::<RelayMessage>();
});
