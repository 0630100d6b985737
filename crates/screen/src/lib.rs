//! # ponte-screen
//!
//! Sans-IO screen sharing: the agent's [`Encoder`] turns captured pictures into the tiles that
//! changed since the last frame sent, compressed; the viewer's [`Canvas`] rebuilds the picture
//! from them. Capture, input injection and windows live in the agent and viewer; the wire
//! messages are [`ponte_protocol::screen`].

#![forbid(unsafe_code)]

mod canvas;
mod encoder;

pub use canvas::{Applied, Canvas, CursorImage};
pub use encoder::{CAPTURE_BYTES_PER_PIXEL, EncodedFrame, Encoder, Image, ZSTD_LEVEL};

/// What went wrong encoding a picture or applying an update.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScreenError {
    /// A screen size of zero or beyond the protocol's limit.
    #[error("unsupported screen size {0}×{1}")]
    BadSize(u16, u16),
    /// The captured picture is shorter than its size says.
    #[error("captured picture shorter than its size")]
    ShortImage,
    /// A tile lies outside the picture or is larger than a tile may be.
    #[error("tile outside the screen")]
    TileOutside,
    /// A tile's data does not decode to its size.
    #[error("malformed tile")]
    BadTile,
    /// A cursor image of the wrong size.
    #[error("malformed cursor image")]
    BadCursor,
    /// The compressor could not be set up.
    #[error("compressor unavailable")]
    Codec,
}

#[cfg(test)]
mod tests {
    use super::*;
    use ponte_protocol::screen::{Codec, ScreenUpdate, Tile};

    /// A BGRX picture with a gradient, so tiles differ from one another.
    fn picture(width: u16, height: u16, seed: u8) -> Vec<u8> {
        let mut data = Vec::new();
        for y in 0..usize::from(height) {
            for x in 0..usize::from(width) {
                data.extend_from_slice(&[(x as u8).wrapping_add(seed), y as u8, (x ^ y) as u8, 0]);
            }
        }
        data
    }

    fn image(data: &[u8], width: u16, height: u16) -> Image<'_> {
        Image {
            width,
            height,
            stride: usize::from(width) * 4,
            data,
        }
    }

    fn apply_all(canvas: &mut Canvas, frame: EncodedFrame) {
        for update in frame.updates {
            canvas.apply(update).unwrap();
        }
    }

    fn matches(canvas: &Canvas, data: &[u8]) -> bool {
        canvas
            .pixels()
            .iter()
            .zip(data.chunks_exact(4))
            .all(|(p, px)| *p == u32::from(px[2]) << 16 | u32::from(px[1]) << 8 | u32::from(px[0]))
    }

    #[test]
    fn first_frame_is_whole_and_exact() {
        let (w, h) = (200, 130); // Partial tiles at the right and bottom edges.
        let data = picture(w, h, 0);
        let mut encoder = Encoder::new().unwrap();
        let frame = encoder.encode(&image(&data, w, h), 0).unwrap().unwrap();
        assert_eq!(frame.tiles, 4 * 3);
        assert!(matches!(
            frame.updates[0],
            ScreenUpdate::Size {
                width: 200,
                height: 130
            }
        ));
        let mut canvas = Canvas::new().unwrap();
        apply_all(&mut canvas, frame);
        assert_eq!((canvas.width(), canvas.height()), (w, h));
        assert!(matches(&canvas, &data));
        assert_eq!(canvas.rgb().len(), 200 * 130 * 3);
    }

    #[test]
    fn only_changed_tiles_are_sent() {
        let (w, h) = (256, 256);
        let mut data = picture(w, h, 0);
        let mut encoder = Encoder::new().unwrap();
        let mut canvas = Canvas::new().unwrap();
        apply_all(
            &mut canvas,
            encoder.encode(&image(&data, w, h), 0).unwrap().unwrap(),
        );
        assert_eq!(
            encoder.encode(&image(&data, w, h), 0).unwrap(),
            None,
            "nothing changed"
        );

        // One pixel in tile (1, 2), and a row crossing tiles (0, 3) and (1, 3).
        let at = |x: usize, y: usize| (y * usize::from(w) + x) * 4;
        data[at(70, 130)] ^= 0xff;
        for x in 60..70 {
            data[at(x, 200) + 1] ^= 0x0f;
        }
        let frame = encoder.encode(&image(&data, w, h), 0).unwrap().unwrap();
        assert_eq!(frame.tiles, 3);
        apply_all(&mut canvas, frame);
        assert!(matches(&canvas, &data));

        // A refresh is answered even when nothing changed.
        let frame = encoder.encode(&image(&data, w, h), 7).unwrap().unwrap();
        assert_eq!(frame.tiles, 0);
        assert!(matches!(
            frame.updates.last(),
            Some(ScreenUpdate::FrameEnd {
                sync: 7,
                tiles: 0,
                ..
            })
        ));
    }

    #[test]
    fn resizing_sends_the_whole_picture_again() {
        let mut encoder = Encoder::new().unwrap();
        let mut canvas = Canvas::new().unwrap();
        let a = picture(128, 128, 1);
        apply_all(
            &mut canvas,
            encoder.encode(&image(&a, 128, 128), 0).unwrap().unwrap(),
        );
        let b = picture(192, 64, 1);
        let frame = encoder.encode(&image(&b, 192, 64), 0).unwrap().unwrap();
        assert_eq!(frame.tiles, 3);
        apply_all(&mut canvas, frame);
        assert!(matches(&canvas, &b));
    }

    #[test]
    fn a_full_screen_of_noise_splits_into_messages_that_fit() {
        let (w, h) = (640, 480);
        let mut state = 0x1234_5678u32;
        let data: Vec<u8> = (0..usize::from(w) * usize::from(h) * 4)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                state as u8
            })
            .collect();
        let mut encoder = Encoder::new().unwrap();
        let frame = encoder.encode(&image(&data, w, h), 0).unwrap().unwrap();
        assert!(frame.updates.len() > 10);
        for update in &frame.updates {
            let bytes = ponte_protocol::frame::encode(update, ponte_protocol::app::MAX_MESSAGE);
            assert!(bytes.is_ok(), "every message fits");
        }
        let mut canvas = Canvas::new().unwrap();
        apply_all(&mut canvas, frame);
        assert!(matches(&canvas, &data));
    }

    #[test]
    fn strided_captures_are_read_by_row() {
        let (w, h) = (70, 70);
        let stride = 70 * 4 + 40;
        let packed = picture(w, h, 3);
        let mut data = vec![0xee; stride * usize::from(h)];
        for y in 0..usize::from(h) {
            data[y * stride..y * stride + 280].copy_from_slice(&packed[y * 280..(y + 1) * 280]);
        }
        let mut encoder = Encoder::new().unwrap();
        let img = Image {
            width: w,
            height: h,
            stride,
            data: &data,
        };
        let mut canvas = Canvas::new().unwrap();
        apply_all(&mut canvas, encoder.encode(&img, 0).unwrap().unwrap());
        assert!(matches(&canvas, &packed));
        let short = Image {
            data: &data[..100],
            ..img
        };
        assert_eq!(encoder.encode(&short, 0), Err(ScreenError::ShortImage));
    }

    #[test]
    fn hostile_updates_are_errors() {
        let mut canvas = Canvas::new().unwrap();
        assert!(canvas.apply(ScreenUpdate::Size { width: 0, height: 5 }).is_err());
        assert!(
            canvas
                .apply(ScreenUpdate::Size {
                    width: 9000,
                    height: 5
                })
                .is_err()
        );
        canvas
            .apply(ScreenUpdate::Size {
                width: 100,
                height: 100,
            })
            .unwrap();
        let tile = |x, y, width, height, codec, data: Vec<u8>| {
            ScreenUpdate::Tiles(vec![Tile {
                x,
                y,
                width,
                height,
                codec,
                data,
            }])
        };
        let outside = tile(90, 0, 20, 10, Codec::Raw, vec![0; 600]);
        assert_eq!(canvas.apply(outside), Err(ScreenError::TileOutside));
        let too_big = tile(0, 0, 65, 1, Codec::Raw, vec![0; 195]);
        assert_eq!(canvas.apply(too_big), Err(ScreenError::TileOutside));
        let short = tile(0, 0, 10, 10, Codec::Raw, vec![0; 299]);
        assert_eq!(canvas.apply(short), Err(ScreenError::BadTile));
        let garbage = tile(0, 0, 10, 10, Codec::Zstd, vec![1, 2, 3]);
        assert_eq!(canvas.apply(garbage), Err(ScreenError::BadTile));
        // A zstd bomb: 1 MiB of zeros compressed, claimed as one 10×10 tile.
        let bomb = zstd::bulk::compress(&vec![0u8; 1 << 20], 1).unwrap();
        assert_eq!(
            canvas.apply(tile(0, 0, 10, 10, Codec::Zstd, bomb)),
            Err(ScreenError::BadTile)
        );
        let cursor = ScreenUpdate::CursorShape {
            width: 4,
            height: 4,
            hot_x: 0,
            hot_y: 0,
            argb: vec![0; 63],
        };
        assert_eq!(canvas.apply(cursor), Err(ScreenError::BadCursor));
    }

    #[test]
    fn tiles_before_any_size_are_outside() {
        let mut canvas = Canvas::new().unwrap();
        let t = ScreenUpdate::Tiles(vec![Tile {
            x: 0,
            y: 0,
            width: 1,
            height: 1,
            codec: Codec::Raw,
            data: vec![0; 3],
        }]);
        assert_eq!(canvas.apply(t), Err(ScreenError::TileOutside));
    }

    proptest::proptest! {
        #[test]
        fn any_change_round_trips(
            w in 1u16..200, h in 1u16..200,
            changes in proptest::collection::vec((0usize..40_000, 0u8..=255), 0..20)
        ) {
            let mut data = picture(w, h, 9);
            let mut encoder = Encoder::new().unwrap();
            let mut canvas = Canvas::new().unwrap();
            apply_all(&mut canvas, encoder.encode(&image(&data, w, h), 0).unwrap().unwrap());
            for (at, value) in changes {
                let i = at % data.len();
                data[i] = value;
            }
            if let Some(frame) = encoder.encode(&image(&data, w, h), 0).unwrap() {
                apply_all(&mut canvas, frame);
            }
            proptest::prop_assert!(matches(&canvas, &data));
        }
    }
}
