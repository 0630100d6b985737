//! Hostile bytes into the record layer: the streaming opener (chunked as the first byte says)
//! and the single-record opener must return errors, never panic, never yield data.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ponte_e2e::Role;
use ponte_e2e::key_schedule;
use ponte_e2e::record::{Opened, RecordHeader};
use ponte_e2e::session_keys::SessionKeys;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, bytes)) = data.split_first() else { return };
    let secrets = key_schedule::derive(&[1; 32], &[2; 32], &[3; 32]);
    let mut viewer = SessionKeys::from_secrets(Role::Viewer, &secrets);
    let _ = RecordHeader::parse(bytes);

    let mut stream = viewer.accept_stream(0).expect("stream 0 is the agent's");
    let chunk = usize::from(chunk).max(1);
    'outer: for piece in bytes.chunks(chunk) {
        let mut rest = piece;
        while !rest.is_empty() {
            match stream.opener.decapsulate(rest) {
                Ok((used, opened)) => {
                    assert!(!matches!(opened, Some(Opened::Data(_))), "forged record accepted");
                    rest = &rest[used..];
                }
                Err(_) => break 'outer,
            }
        }
    }
    let _ = stream.opener.finish();

    let mut stream = viewer.accept_stream(2).expect("stream 2 is the agent's");
    let mut copy = bytes.to_vec();
    assert!(!matches!(stream.opener.open_in_place(&mut copy), Ok(Opened::Data(_))));
});
