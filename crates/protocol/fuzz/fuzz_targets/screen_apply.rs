//! Hostile screen updates into the viewer's canvas: a run of frames, each decoded and applied.
//! Errors are fine; panics, overreads and unbounded allocations are not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ponte_protocol::app::MAX_MESSAGE;
use ponte_protocol::frame::FrameReader;
use ponte_protocol::screen::ScreenUpdate;
use ponte_screen::Canvas;

fuzz_target!(|data: &[u8]| {
    let Ok(mut canvas) = Canvas::new() else { return };
    let mut reader = FrameReader::new(MAX_MESSAGE);
    let mut rest = data;
    while !rest.is_empty() {
        match reader.push(rest) {
            Ok(used) => rest = &rest[used..],
            Err(_) => return,
        }
        match reader.take::<ScreenUpdate>() {
            Ok(Some(update)) => {
                if canvas.apply(update).is_err() {
                    return;
                }
            }
            Ok(None) => {}
            Err(_) => return,
        }
    }
});
