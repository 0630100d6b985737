//! Hostile screen updates into the viewer's canvas: a run of frames, each decoded and applied.
//! Errors are fine; panics, overreads and unbounded allocations are not.
//!
//! Input starting with 0xff goes straight to the lossy decoder paths instead (random bytes
//! rarely decode as a message carrying WebP that gets past the header): a `LossyRect` or a
//! WebP tile of the size and scale the next bytes give, with the rest as its image.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ponte_e2e::app::MAX_MESSAGE;
use ponte_wire::frame::FrameReader;
use ponte_e2e::screen::{Codec, CopyRect, LossyRect, ScreenUpdate, Tile};
use ponte_screen::Canvas;

fuzz_target!(|data: &[u8]| {
    let Ok(mut canvas) = Canvas::new() else { return };
    if let [0xff, kind, w, h, scale, image @ ..] = data {
        let _ = canvas.apply(ScreenUpdate::Size {
            width: 300,
            height: 300,
        });
        let (width, height) = (u16::from(*w) + 1, u16::from(*h) + 1);
        let image = image.to_vec();
        let update = match kind % 3 {
            0 => ScreenUpdate::Lossy(vec![LossyRect {
                x: 0,
                y: 0,
                width,
                height,
                scale: *scale % 10,
                data: image,
            }]),
            1 => ScreenUpdate::Tiles(vec![Tile {
                x: 0,
                y: 0,
                // Up to 256 wide: WebP tiles may span a run of tiles.
                width,
                height: height.min(64),
                codec: Codec::Webp,
                data: image,
            }]),
            _ => ScreenUpdate::Copy(vec![CopyRect {
                src_x: u16::from(*scale),
                src_y: u16::from(image.first().copied().unwrap_or(0)),
                x: u16::from(image.get(1).copied().unwrap_or(0)),
                y: u16::from(image.get(2).copied().unwrap_or(0)),
                width,
                height,
            }]),
        };
        let _ = canvas.apply(update);
        return;
    }
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
