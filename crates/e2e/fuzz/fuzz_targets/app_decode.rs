//! Hostile bytes into every application message a peer can send inside a session, and the
//! inert form of whatever strings decode: one printable line, always.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ponte_e2e::app::{Control, MAX_MESSAGE, Request, Response, Transfer};
use ponte_wire::frame;
use ponte_e2e::screen::{ScreenFeedback, ScreenUpdate};
use ponte_wire::text::{self, PeerText};

fn inert(text: &PeerText) {
    let shown = text.to_string();
    assert!(
        !shown.chars().any(|c| c.is_control() || text::is_invisible(c)),
        "{shown:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    if let Ok(Request::Exec { command: t } | Request::Get { path: t } | Request::Put { path: t, .. }) =
        frame::decode::<Request>(data, MAX_MESSAGE)
    {
        inert(&t);
    }
    if let Ok(Response::Refused(t)) = frame::decode::<Response>(data, MAX_MESSAGE) {
        inert(&t);
    }
    if let Ok(Control::Chat { text }) = frame::decode::<Control>(data, MAX_MESSAGE) {
        inert(&text);
    }
    match frame::decode::<Transfer>(data, MAX_MESSAGE) {
        Ok(Transfer::Dir { path: t } | Transfer::File { path: t, .. } | Transfer::Failed(t)) => inert(&t),
        Ok(Transfer::Info(facts)) => facts.iter().for_each(|(k, v)| {
            inert(k);
            inert(v);
        }),
        _ => {}
    }
    let _ = frame::decode::<ScreenFeedback>(data, MAX_MESSAGE);
    let _ = frame::decode::<ScreenUpdate>(data, MAX_MESSAGE);
});
