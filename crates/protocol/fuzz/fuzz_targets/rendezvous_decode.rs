//! Hostile bytes into the rendezvous decoders, whole and through the streaming frame reader.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ponte_protocol::frame::FrameReader;
use ponte_protocol::rendezvous::{self, ClientMessage, MAX_MESSAGE, RelayMessage};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = rendezvous::decode_client(data) {
        assert_eq!(rendezvous::encode_client(&m), data, "decoding must be canonical");
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
