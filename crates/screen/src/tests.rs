//! Round trips: what the encoder sends, the canvas rebuilds exactly.

use super::*;
use ponte_e2e::screen::{Codec, MAX_WEBP_TILE_WIDTH, Quality, ScreenUpdate, TILE, Tile};

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

/// An encoder and a canvas showing `data` after its first, whole frame.
fn shown(data: &[u8], w: u16, h: u16) -> (Encoder, Canvas) {
    let mut encoder = Encoder::new().unwrap();
    let mut canvas = Canvas::new().unwrap();
    apply_all(
        &mut canvas,
        encoder.encode(&image(data, w, h), 0).unwrap().unwrap(),
    );
    (encoder, canvas)
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
    let (mut encoder, mut canvas) = shown(&data, w, h);
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
    // Each tile only as large as what differs in it.
    let mut sent: Vec<_> = tiles_of(&frame).map(|t| (t.x, t.y, t.width, t.height)).collect();
    sent.sort();
    assert_eq!(sent, [(60, 200, 4, 1), (64, 200, 6, 1), (70, 130, 1, 1)]);
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

fn tiles_of(frame: &EncodedFrame) -> impl Iterator<Item = &Tile> {
    frame.updates.iter().flat_map(|u| match u {
        ScreenUpdate::Tiles(t) => t.as_slice(),
        _ => &[],
    })
}

#[test]
fn a_caret_is_never_blurred_to_save_bytes() {
    // Two small changes under a budget that carries one: the second waits, exact. (Judged
    // by its ratio alone, a few pixels of zstd look like a photo and went lossy, whole tile.)
    let (w, h) = (256, 128);
    let mut data = picture(w, h, 0);
    let (mut encoder, mut canvas) = shown(&data, w, h);
    for y in 10..26 {
        data[(y * usize::from(w) + 3) * 4] ^= 0xff;
        data[(y * usize::from(w) + 200) * 4 + 1] ^= 0xff;
    }
    let now = std::time::Instant::now();
    let first = encoder
        .encode_within(&image(&data, w, h), 0, 1, now)
        .unwrap()
        .unwrap();
    assert_eq!((first.tiles, first.lossy), (1, 0));
    apply_all(&mut canvas, first);
    let second = encoder
        .encode_within(&image(&data, w, h), 0, 1, now)
        .unwrap()
        .unwrap();
    assert_eq!((second.tiles, second.lossy), (1, 0));
    apply_all(&mut canvas, second);
    assert!(matches(&canvas, &data));
}

#[test]
fn a_change_over_an_approximation_resends_the_whole_tile() {
    // The viewer's tile is lossy: a one-pixel change must bring all of it, exact.
    let (w, h) = (256, 128);
    let mut data = photo(w, h, 5);
    let mut encoder = Encoder::new().unwrap();
    let mut canvas = Canvas::new().unwrap();
    let now = std::time::Instant::now();
    let first = encoder
        .encode_within(&image(&data, w, h), 0, 1000, now)
        .unwrap()
        .unwrap();
    assert!(first.lossy > 0 && first.tiles == 0);
    apply_all(&mut canvas, first);
    data[(10 * usize::from(w) + 10) * 4] ^= 0xff;
    let frame = encoder.encode(&image(&data, w, h), 0).unwrap().unwrap();
    assert!(tiles_of(&frame).any(|t| (t.x, t.y, t.width, t.height) == (0, 0, 64, 64)));
    apply_all(&mut canvas, frame);
    assert!(matches(&canvas, &data));
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

/// A BGRX picture of random bytes, which nothing compresses.
fn noise(width: u16, height: u16, seed: u32) -> Vec<u8> {
    let mut state = seed;
    (0..usize::from(width) * usize::from(height) * 4)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect()
}

#[test]
fn a_full_screen_of_noise_splits_into_messages_that_fit() {
    let (w, h) = (640, 480);
    let data = noise(w, h, 0x1234_5678);
    let mut encoder = Encoder::new().unwrap();
    let frame = encoder.encode(&image(&data, w, h), 0).unwrap().unwrap();
    assert!(frame.updates.len() > 10);
    for update in &frame.updates {
        let bytes = ponte_wire::frame::encode(update, ponte_e2e::app::MAX_MESSAGE);
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
    // Tiles that together cover more than the screen: the same spot drawn over and over.
    let spot = Tile {
        x: 0,
        y: 0,
        width: 64,
        height: 64,
        codec: Codec::Raw,
        data: vec![0; 64 * 64 * 3],
    };
    assert_eq!(
        canvas.apply(ScreenUpdate::Tiles(vec![spot; 3])),
        Err(ScreenError::TileOutside)
    );
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

/// A BGRX photo-like picture: gradients under noise, which zstd cannot shrink much.
fn photo(width: u16, height: u16, seed: u32) -> Vec<u8> {
    let mut state = 0x9E37_79B9u32 ^ seed;
    let mut data = Vec::new();
    for y in 0..usize::from(height) {
        for x in 0..usize::from(width) {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let n = (state % 48) as usize;
            data.extend_from_slice(&[
                ((x + n) / 3) as u8,
                ((y + n) / 2) as u8,
                ((x + y) / 4 + n) as u8,
                0,
            ]);
        }
    }
    data
}

fn apply_frame(canvas: &mut Canvas, frame: &EncodedFrame) -> u64 {
    let mut answered = 0;
    for update in frame.updates.clone() {
        if let Applied::Frame { sync, .. } = canvas.apply(update).unwrap() {
            answered = sync;
        }
    }
    answered
}

#[test]
fn a_photo_on_a_small_budget_goes_lossy_then_exact() {
    let (w, h) = (512, 256);
    let data = photo(w, h, 1);
    let mut encoder = Encoder::new().unwrap();
    let mut canvas = Canvas::new().unwrap();
    let budget = 16 * 1024;
    let now = std::time::Instant::now();
    let first = encoder
        .encode_within(&image(&data, w, h), 1, budget, now)
        .unwrap()
        .unwrap();
    assert_eq!(first.tiles, 0, "nothing exact fits");
    assert!(first.lossy > 0);
    assert!(!first.still, "the first picture is a change");
    assert!(first.bytes <= budget, "{} bytes", first.bytes);
    assert_eq!(
        apply_frame(&mut canvas, &first),
        0,
        "a lossy picture does not answer a refresh"
    );
    let stats = first.updates.iter().find_map(|u| match u {
        ScreenUpdate::Stats(s) => Some(*s),
        _ => None,
    });
    assert_eq!(stats.unwrap().inexact_tiles, 8 * 4);
    assert!(!matches(&canvas, &data));
    // Close already: every pixel within a preview's error of the original.
    let exact_zstd = zstd::bulk::compress(&data, 3).unwrap().len();
    let mut frames = 1;
    let mut sent = first.bytes;
    loop {
        let frame = encoder
            .encode_within(&image(&data, w, h), 1, budget, now)
            .unwrap()
            .unwrap();
        assert!(frame.bytes <= budget, "{} bytes", frame.bytes);
        assert!(frame.still, "the picture only sharpens");
        sent += frame.bytes;
        frames += 1;
        if apply_frame(&mut canvas, &frame) == 1 {
            break;
        }
        assert!(frames < 100, "refinement does not end");
    }
    assert!(matches(&canvas, &data), "refined to exact pixels");
    assert!(frames > 2, "refined over several frames");
    assert!(
        sent < exact_zstd * 2,
        "refinement costs {sent} bytes, zstd alone {exact_zstd}"
    );
    assert_eq!(
        encoder
            .encode_within(&image(&data, w, h), 0, budget, now)
            .unwrap(),
        None
    );
}

#[test]
fn sharp_never_approximates_and_fast_approximates_even_what_would_fit() {
    let (w, h) = (512, 256);
    let data = photo(w, h, 2);
    let now = std::time::Instant::now();
    let encode = |quality, budget| {
        let mut encoder = Encoder::new().unwrap();
        encoder.set_quality(quality);
        let mut canvas = Canvas::new().unwrap();
        let mut frames = Vec::new();
        loop {
            let frame = encoder
                .encode_within(&image(&data, w, h), 1, budget, now)
                .unwrap()
                .unwrap();
            let answered = apply_frame(&mut canvas, &frame);
            frames.push(frame);
            if answered == 1 {
                break;
            }
            assert!(frames.len() < 200, "never exact");
        }
        assert!(matches(&canvas, &data), "every quality ends exact");
        frames
    };
    // Sharp on a small budget: exact tiles only, as many as fit, over several frames.
    let sharp = encode(Quality::Sharp, 16 * 1024);
    assert!(sharp.iter().all(|f| f.lossy == 0), "sharp sent an approximation");
    assert!(
        sharp.len() > 2,
        "the photo did not fit one frame: {}",
        sharp.len()
    );
    assert!(
        sharp.iter().all(|f| f.bytes <= 16 * 1024 || f.tiles == 1),
        "a frame over its budget beyond the one tile every frame carries"
    );
    // With room for all of it exactly: balanced sends it exact at once, fast a medium
    // preview first.
    let room = 4 << 20;
    let balanced = encode(Quality::Balanced, room);
    assert_eq!((balanced[0].lossy, balanced.len()), (0, 1));
    let fast = encode(Quality::Fast, room);
    assert!(
        fast[0].lossy > 0 && fast[0].tiles == 0,
        "fast sent the photo exact first"
    );
    let quality = fast[0].updates.iter().find_map(|u| match u {
        ScreenUpdate::Stats(s) => Some(s.quality),
        _ => None,
    });
    assert!(quality.unwrap() <= 40, "fast used the best rung: {quality:?}");
    assert!(fast[0].bytes < balanced[0].bytes / 2);
}

#[test]
fn refinement_sends_runs_of_photo_tiles_as_one_picture() {
    let (w, h) = (1024, 128);
    let data = photo(w, h, 3);
    let mut encoder = Encoder::new().unwrap();
    let mut canvas = Canvas::new().unwrap();
    let now = std::time::Instant::now();
    let mut widest = 0;
    for _ in 0..100 {
        let Some(frame) = encoder
            .encode_within(&image(&data, w, h), 0, 16 * 1024, now)
            .unwrap()
        else {
            break;
        };
        widest = tiles_of(&frame).map(|t| t.width).fold(widest, u16::max);
        apply_all(&mut canvas, frame);
    }
    assert!(!encoder.pending(), "refinement finished");
    assert!(matches(&canvas, &data));
    assert!(widest > TILE, "no run of tiles was refined at once");
    assert!(widest <= MAX_WEBP_TILE_WIDTH);
}

#[test]
fn only_webp_tiles_may_be_wider_than_a_tile() {
    let mut canvas = Canvas::new().unwrap();
    canvas
        .apply(ScreenUpdate::Size {
            width: 1024,
            height: 64,
        })
        .unwrap();
    let tile = |width: u16, codec, data| {
        ScreenUpdate::Tiles(vec![Tile {
            x: 0,
            y: 0,
            width,
            height: 1,
            codec,
            data,
        }])
    };
    let wide_raw = tile(128, Codec::Raw, vec![0; 128 * 3]);
    assert_eq!(canvas.apply(wide_raw), Err(ScreenError::TileOutside));
    let wide_zstd = tile(128, Codec::Zstd, zstd::bulk::compress(&[0; 128 * 3], 3).unwrap());
    assert_eq!(canvas.apply(wide_zstd), Err(ScreenError::TileOutside));
    let webp = |width: u16| {
        let rgb = vec![7u8; usize::from(width) * 3];
        webp::Encoder::from_rgb(&rgb, u32::from(width), 1)
            .encode_lossless()
            .to_vec()
    };
    let widest = MAX_WEBP_TILE_WIDTH;
    assert!(canvas.apply(tile(widest, Codec::Webp, webp(widest))).is_ok());
    let wider = widest + 1;
    assert_eq!(
        canvas.apply(tile(wider, Codec::Webp, webp(wider))),
        Err(ScreenError::TileOutside)
    );
}

#[test]
fn the_lowest_rung_is_small() {
    // A 1920×1080 photo on a budget that cannot take it: a preview of a few tens of KB.
    let (w, h) = (1920, 1080);
    let data = photo(w, h, 2);
    let mut encoder = Encoder::new().unwrap();
    let frame = encoder
        .encode_within(&image(&data, w, h), 0, 1, std::time::Instant::now())
        .unwrap()
        .unwrap();
    assert_eq!(frame.tiles, 0);
    assert!(frame.bytes < 40_000, "{} bytes", frame.bytes);
    let mut canvas = Canvas::new().unwrap();
    apply_frame(&mut canvas, &frame);
    // Usable: on average within a few levels of the original.
    let error: u64 = canvas
        .pixels()
        .iter()
        .zip(data.chunks_exact(4))
        .map(|(p, px)| u64::from((*p as u8).abs_diff(px[0])))
        .sum();
    let mean = error as f64 / (f64::from(w) * f64::from(h));
    assert!(mean < 24.0, "mean error {mean}");
}

/// Text-like rows: runs of dark "glyphs" on white that differ row by row.
fn page(width: u16, height: u16, seed: u32) -> Vec<u8> {
    let mut state = 0x1234_5678u32 ^ seed;
    let mut data = Vec::new();
    for _ in 0..usize::from(height) {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let row = state;
        for x in 0..usize::from(width) {
            let ink = (row.rotate_left((x / 5) as u32 % 32) & 3) == 0;
            let v = if ink { 0x20 } else { 0xff };
            data.extend_from_slice(&[v, v, v, 0]);
        }
    }
    data
}

fn scroll(data: &mut [u8], width: u16, by: usize, seed: u32) {
    let row = usize::from(width) * 4;
    data.copy_within(by * row.., 0);
    let fresh = page(width, by as u16, seed);
    let len = data.len();
    data[len - fresh.len()..].copy_from_slice(&fresh);
}

#[test]
fn text_changing_faster_than_the_budget_goes_lossy_and_stays_young() {
    // A page of text that changes completely every 100 ms, on a budget that carries a
    // fraction of it exactly: late tiles go lossy, so nothing waits for long.
    let (w, h) = (640, 480);
    let mut encoder = Encoder::new().unwrap();
    let mut canvas = Canvas::new().unwrap();
    let start = std::time::Instant::now();
    let mut worst = 0;
    for n in 0..30u32 {
        let data = page(w, h, n);
        let now = start + std::time::Duration::from_millis(100 * u64::from(n));
        let frame = encoder
            .encode_within(&image(&data, w, h), 0, 2 * 1024, now)
            .unwrap()
            .unwrap();
        apply_frame(&mut canvas, &frame);
        let stats = frame.updates.iter().find_map(|u| match u {
            ScreenUpdate::Stats(s) => Some(*s),
            _ => None,
        });
        worst = worst.max(stats.unwrap().backlog_us);
    }
    assert!(canvas.lossy > 0, "late text went lossy");
    assert!(worst <= 400_000, "a change waited {worst} µs");
    // Once the page stands still it is refined to exact text.
    let data = page(w, h, 99);
    let now = start + std::time::Duration::from_secs(5);
    for _ in 0..200 {
        let Some(frame) = encoder
            .encode_within(&image(&data, w, h), 0, 2 * 1024, now)
            .unwrap()
        else {
            break;
        };
        apply_frame(&mut canvas, &frame);
    }
    assert!(matches(&canvas, &data));
}

#[test]
fn text_short_of_budget_goes_in_runs_of_lossless_webp() {
    // A page of text: without a budget, zstd tiles (cheap to make); when the budget cannot
    // carry those, runs of tiles as lossless WebP pictures, in far fewer bytes, exact.
    let (w, h) = (640, 480);
    let data = page(w, h, 5);
    let now = std::time::Instant::now();
    let total = |budget: usize| {
        let mut encoder = Encoder::new().unwrap();
        let mut canvas = Canvas::new().unwrap();
        let (mut bytes, mut widest) = (0, 0);
        for _ in 0..100 {
            let Some(frame) = encoder
                .encode_within(&image(&data, w, h), 0, budget, now)
                .unwrap()
            else {
                break;
            };
            bytes += frame.bytes;
            widest = widest.max(tiles_of(&frame).map(|t| t.width).max().unwrap_or(0));
            apply_frame(&mut canvas, &frame);
        }
        assert!(matches(&canvas, &data), "exact with budget {budget}");
        (bytes, widest)
    };
    let (zstd, widest) = total(usize::MAX);
    assert_eq!(widest, TILE, "no budget, no packing");
    let (packed, widest) = total(16 * 1024);
    assert!(widest > TILE, "runs of tiles as one picture");
    assert!(
        packed * 2 < zstd,
        "{packed} bytes packed against {zstd} in zstd tiles"
    );
}

#[test]
fn changed_parts_of_neighbouring_tiles_pack_as_one_picture() {
    // Each tile of a row changes in a part at its own height (a scroll's uncovered rows,
    // edits): short of budget, the parts go as one picture of the rectangle holding them.
    // Sparse parts (a pixel here and there) are not worth a picture mostly of unchanged pixels.
    let (w, h) = (512, 64);
    let changed = |rows: &dyn Fn(usize) -> std::ops::Range<usize>,
                   cols: &dyn Fn(usize) -> std::ops::Range<usize>| {
        let mut data = page(w, h, 1);
        let (mut encoder, mut canvas) = shown(&data, w, h);
        let other = page(w, h, 2);
        let row = usize::from(w) * 4;
        for k in 0..8 {
            for y in rows(k) {
                let (from, to) = (
                    y * row + (k * 64 + cols(k).start) * 4,
                    y * row + (k * 64 + cols(k).end) * 4,
                );
                data[from..to].copy_from_slice(&other[from..to]);
            }
        }
        let now = std::time::Instant::now();
        let mut frames = Vec::new();
        while let Some(frame) = encoder.encode_within(&image(&data, w, h), 0, 1, now).unwrap() {
            apply_frame(&mut canvas, &frame);
            frames.push(frame);
            assert!(frames.len() < 20);
        }
        assert!(matches(&canvas, &data));
        tiles_of(&frames[0]).cloned().collect::<Vec<Tile>>()
    };
    let tiles = changed(&|k| 5 + k % 2..11 + k % 2, &|_| 10..60);
    assert_eq!(tiles.len(), 1, "{tiles:?}");
    let t = &tiles[0];
    assert_eq!((t.codec, t.y, t.height), (Codec::Webp, 5, 7));
    // From the first tile's part to the last's (where their pixels differ), nothing more.
    assert!(t.x >= 10 && t.x < 64 && t.x + t.width <= 7 * 64 + 60 && t.x + t.width > 7 * 64);
    let tiles = changed(&|k| 5 + 7 * k..6 + 7 * k, &|_| 20..21);
    assert!(tiles.iter().all(|t| t.codec != Codec::Webp), "{tiles:?}");
}

#[test]
fn noise_larger_than_the_smallest_budget_is_still_refined() {
    // Pure noise: every tile's exact form is the raw 12 KiB, more than a budget of 12 KiB
    // with framing. Refinement must still reach exact pixels, a tile per frame.
    let (w, h) = (256u16, 128u16);
    let data = noise(w, h, 0x2545_f491);
    let mut encoder = Encoder::new().unwrap();
    let mut canvas = Canvas::new().unwrap();
    let now = std::time::Instant::now();
    for _ in 0..40 {
        match encoder
            .encode_within(&image(&data, w, h), 0, 12 * 1024, now)
            .unwrap()
        {
            Some(frame) => apply_all(&mut canvas, frame),
            None => break,
        }
    }
    assert!(!encoder.pending(), "refinement finished");
    assert!(matches(&canvas, &data));
}

#[test]
fn a_scroll_is_a_move_plus_the_new_rows() {
    let (w, h) = (640, 480);
    let mut data = page(w, h, 1);
    let (mut encoder, mut canvas) = shown(&data, w, h);
    scroll(&mut data, w, 39, 2);
    let frame = encoder.encode(&image(&data, w, h), 0).unwrap().unwrap();
    assert_eq!(frame.copies, 1, "one move of the whole width");
    assert!(!frame.still);
    // The 39 new rows lie in the last two tile rows (416..480): 10 tiles each at most,
    // each no more than the new rows.
    assert!(frame.tiles <= 20, "{} tiles", frame.tiles);
    let rows: std::collections::BTreeSet<u16> = tiles_of(&frame).flat_map(|t| t.y..t.y + t.height).collect();
    assert!(rows.iter().all(|&y| y >= 480 - 39), "sent rows {rows:?}");
    let copied = frame.updates.iter().find_map(|u| match u {
        ScreenUpdate::Copy(c) => Some(c[0]),
        _ => None,
    });
    let c = copied.unwrap();
    assert_eq!((c.src_y - c.y, c.width), (39, 640));
    apply_all(&mut canvas, frame);
    assert!(matches(&canvas, &data));
}

#[test]
fn hostile_lossy_and_copies_are_errors() {
    let mut canvas = Canvas::new().unwrap();
    canvas
        .apply(ScreenUpdate::Size {
            width: 100,
            height: 100,
        })
        .unwrap();
    let lossy = |x, y, width, height, scale, data: Vec<u8>| {
        ScreenUpdate::Lossy(vec![ponte_e2e::screen::LossyRect {
            x,
            y,
            width,
            height,
            scale,
            data,
        }])
    };
    let ok = crate::lossy::LADDER[2];
    let src = photo(64, 64, 3);
    let img = image(&src, 64, 64);
    let good = crate::lossy::lossy_rects(&img, 0, 0, 64, 64, ok, 60_000)
        .unwrap()
        .remove(0)
        .data;
    assert!(canvas.apply(lossy(0, 0, 64, 64, 2, good.clone())).is_ok());
    // The image must be exactly the rectangle's size at its scale.
    assert_eq!(
        canvas.apply(lossy(0, 0, 64, 64, 1, good.clone())),
        Err(ScreenError::BadTile)
    );
    assert_eq!(
        canvas.apply(lossy(0, 0, 60, 64, 2, good.clone())),
        Err(ScreenError::BadTile)
    );
    assert_eq!(
        canvas.apply(lossy(50, 0, 64, 64, 2, good.clone())),
        Err(ScreenError::TileOutside)
    );
    assert_eq!(
        canvas.apply(lossy(0, 0, 64, 64, 0, good.clone())),
        Err(ScreenError::BadTile)
    );
    assert_eq!(
        canvas.apply(lossy(0, 0, 64, 64, 9, good.clone())),
        Err(ScreenError::BadTile)
    );
    let mut truncated = good.clone();
    truncated.truncate(good.len() / 2);
    assert_eq!(
        canvas.apply(lossy(0, 0, 64, 64, 2, truncated)),
        Err(ScreenError::BadTile)
    );
    assert_eq!(
        canvas.apply(lossy(0, 0, 8, 8, 1, b"RIFF\0\0\0\0WEBPVP8 ".to_vec())),
        Err(ScreenError::BadTile)
    );
    // The extended format (VP8X) is refused whatever its sizes say.
    let mut extended = good.clone();
    extended[12..16].copy_from_slice(b"VP8X");
    assert_eq!(
        canvas.apply(lossy(0, 0, 64, 64, 2, extended)),
        Err(ScreenError::BadTile)
    );
    // Rectangles that together cover more than the screen: refused before any drawing.
    let twice = ScreenUpdate::Lossy(vec![
        ponte_e2e::screen::LossyRect {
            x: 0,
            y: 0,
            width: 64,
            height: 64,
            scale: 2,
            data: good.clone(),
        };
        3
    ]);
    assert_eq!(canvas.apply(twice), Err(ScreenError::TileOutside));
    let whole = ponte_e2e::screen::CopyRect {
        src_x: 0,
        src_y: 1,
        x: 0,
        y: 0,
        width: 100,
        height: 99,
    };
    assert!(canvas.apply(ScreenUpdate::Copy(vec![whole])).is_ok());
    assert_eq!(
        canvas.apply(ScreenUpdate::Copy(vec![whole; 2])),
        Err(ScreenError::TileOutside),
        "a screen's worth of copying per message at most"
    );
    let webp_tile = Tile {
        x: 0,
        y: 0,
        width: 16,
        height: 32,
        codec: Codec::Webp,
        data: good,
    };
    assert_eq!(
        canvas.apply(ScreenUpdate::Tiles(vec![webp_tile])),
        Err(ScreenError::BadTile)
    );
    let copy = |src_x, src_y, x, y, width, height| {
        ScreenUpdate::Copy(vec![ponte_e2e::screen::CopyRect {
            src_x,
            src_y,
            x,
            y,
            width,
            height,
        }])
    };
    assert!(canvas.apply(copy(0, 10, 0, 0, 100, 90)).is_ok());
    assert_eq!(
        canvas.apply(copy(0, 11, 0, 0, 100, 90)),
        Err(ScreenError::TileOutside)
    );
    assert_eq!(
        canvas.apply(copy(0, 0, 1, 0, 100, 10)),
        Err(ScreenError::TileOutside)
    );
    assert_eq!(
        canvas.apply(copy(0, 0, 0, 0, 0, 10)),
        Err(ScreenError::TileOutside)
    );
    assert_eq!(
        canvas.apply(copy(u16::MAX, 0, 0, 0, 10, 10)),
        Err(ScreenError::TileOutside)
    );
}

/// FNV-1a over `bytes`, continuing from `hash`: a fingerprint of encoder output without a
/// hashing dependency.
fn fnv(mut hash: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// One picture of a fixed sequence: pixels, width, height, milliseconds after the start,
/// sync.
type Step = (Vec<u8>, u16, u16, u64, u64);

/// Encodes `steps` under `budget`, then the last picture again until nothing is left to send
/// (at most 60 frames); returns the number of messages and a fingerprint of every message's
/// wire bytes and every frame's counts, in order. The measured `diff_us` is the only clock
/// reading in a message and is zeroed.
fn fingerprint(steps: &[Step], budget: usize) -> (usize, u64) {
    let mut encoder = Encoder::new().unwrap();
    let start = std::time::Instant::now();
    let (mut messages, mut hash) = (0, 0xcbf2_9ce4_8422_2325);
    for (k, (data, w, h, ms, sync)) in steps.iter().enumerate() {
        let now = start + std::time::Duration::from_millis(*ms);
        let again = if k == steps.len() - 1 { 60 } else { 1 };
        for _ in 0..again {
            let Some(mut frame) = encoder
                .encode_within(&image(data, *w, *h), *sync, budget, now)
                .unwrap()
            else {
                break;
            };
            frame.stats_mut().unwrap().diff_us = 0;
            let counts = (
                frame.number,
                frame.tiles,
                frame.lossy,
                frame.copies,
                frame.bytes,
                frame.still,
            );
            hash = fnv(hash, format!("{counts:?}").as_bytes());
            for update in &frame.updates {
                let wire = ponte_wire::frame::encode(update, ponte_e2e::app::MAX_MESSAGE).unwrap();
                hash = fnv(hash, &wire);
                messages += 1;
            }
        }
    }
    (messages, hash)
}

/// Pins the encoder's output on fixed frame sequences, so a refactor cannot change a byte. A
/// change of behaviour on purpose (or of the zstd or WebP libraries) changes these values;
/// the failure shows the new ones to put here once the round-trip tests agree.
#[test]
fn output_is_pinned_on_fixed_sequences() {
    // A gradient, then a shifted one (every tile changes), with partial edge tiles.
    let gradient = [
        (picture(200, 130, 0), 200, 130, 0, 0),
        (picture(200, 130, 40), 200, 130, 100, 1),
    ];
    // A page of text scrolled three times, by uneven steps.
    let (w, h) = (640, 480);
    let mut data = page(w, h, 1);
    let mut scrolled = vec![(data.clone(), w, h, 0, 0)];
    for (k, by) in [39, 64, 7].into_iter().enumerate() {
        scroll(&mut data, w, by, k as u32 + 2);
        scrolled.push((data.clone(), w, h, 100 * (k as u64 + 1), 0));
    }
    // A photo-like region of a page changing twice, then an exact picture asked for.
    let (w, h) = (512, 256);
    let mut data = page(w, h, 3);
    let mut photos = vec![(data.clone(), w, h, 0, 0)];
    for (k, seed) in [11, 12].into_iter().enumerate() {
        let p = photo(w, 128, seed);
        let at = 64 * usize::from(w) * 4;
        data[at..at + p.len()].copy_from_slice(&p);
        photos.push((data.clone(), w, h, 300 * (k as u64 + 1), 0));
    }
    photos.push((data, w, h, 900, 7));
    // Resizes: a photo, then a smaller and a larger one.
    let resized = [
        (photo(300, 200, 1), 300, 200, 0, 0),
        (photo(120, 90, 2), 120, 90, 50, 0),
        (photo(320, 240, 3), 320, 240, 100, 0),
    ];
    let mut got = Vec::new();
    for steps in [&gradient[..], &scrolled, &photos, &resized] {
        for budget in [16 * 1024, usize::MAX] {
            got.push(fingerprint(steps, budget));
        }
    }
    let pinned = [
        (128, 0x77b4_5bb7_b6d9_cf59),
        (127, 0xd96c_d43e_22fc_326e),
        (16, 0xd170_cdf1_0046_cf46),
        (16, 0x7716_5d2f_a80d_036d),
        (136, 0x6eff_74d0_4cf0_dbc2),
        (134, 0x3695_1e62_a8df_c6bf),
        (34, 0x1117_24d4_17fa_d791),
        (17, 0xd821_c1b8_31f0_6b58),
    ];
    assert_eq!(got, pinned, "the encoder's output changed: {got:#x?}");
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

proptest::proptest! {
    // Each case encodes WebP in a debug build: fewer cases keep the suite quick.
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

    /// Scrolls, photos and text under any budgets: once the budget is lifted the picture
    /// is exact, whatever was lossy, stale or moved before.
    #[test]
    fn anything_under_any_budget_ends_exact(
        steps in proptest::collection::vec((0usize..70, 0usize..3, 1usize..40_000), 1..6),
        // Partial tiles at the right and bottom edges, rows longer than a packed run.
        w in 100u16..700,
        h in 192u16..260,
    ) {
        let mut data = page(w, h, 7);
        let photo_part = photo(w, 64, 5);
        data[..photo_part.len()].copy_from_slice(&photo_part);
        let mut encoder = Encoder::new().unwrap();
        let mut canvas = Canvas::new().unwrap();
        let now = std::time::Instant::now();
        for (k, (by, what, budget)) in steps.into_iter().enumerate() {
            match what {
                0 => scroll(&mut data, w, by.max(1), k as u32),
                1 => {
                    let p = photo(w, 64, k as u32);
                    let at = (by % 128) * usize::from(w) * 4;
                    data[at..at + p.len()].copy_from_slice(&p);
                }
                _ => {}
            }
            if let Some(frame) = encoder.encode_within(&image(&data, w, h), 0, budget, now).unwrap() {
                apply_frame(&mut canvas, &frame);
            }
        }
        let frame = encoder.encode_within(&image(&data, w, h), 9, usize::MAX, now).unwrap().unwrap();
        proptest::prop_assert_eq!(apply_frame(&mut canvas, &frame), 9);
        proptest::prop_assert!(matches(&canvas, &data));
    }
}

#[test]
fn why_sharing_ended_or_is_view_only_stays_inert_text() {
    // A hostile agent's reason: terminal escapes, a forged line of ours, a bidi override.
    let why = ponte_wire::PeerText::new("\x1b]0;owned\x07\n[ponte] saved as \u{202e}gpj.exe".to_owned());
    let mut canvas = Canvas::new().unwrap();
    let Ok(Applied::ViewOnly(got)) = canvas.apply(ScreenUpdate::ViewOnly(why.clone())) else {
        panic!("a view-only desktop is applied as one");
    };
    let Ok(Applied::Ended(ended)) = canvas.apply(ScreenUpdate::Ended(why)) else {
        panic!("an end of sharing is applied as one");
    };
    for shown in [got.to_string(), ended.to_string()] {
        assert!(
            !shown.chars().any(|c| c.is_control() || c == '\u{202e}'),
            "{shown:?}"
        );
    }
}

#[test]
fn a_hostile_agents_list_of_monitors_is_bounded_and_its_names_inert() {
    use ponte_e2e::screen::{MAX_MONITOR_NAME, MAX_MONITORS};
    let name = |s: &str| ponte_wire::PeerText::new(s.to_owned());
    let mut canvas = Canvas::new().unwrap();
    let monitors = |names: Vec<ponte_wire::PeerText>, current| ScreenUpdate::Monitors { names, current };
    let evil = name("\x1b[2J\u{202e}DP-1");
    let Ok(Applied::Monitors { names, current }) = canvas.apply(monitors(vec![name("eDP-1"), evil], 1))
    else {
        panic!("two monitors are a list");
    };
    assert_eq!(current, 1);
    assert!(
        !names[1]
            .to_string()
            .chars()
            .any(|c| c.is_control() || c == '\u{202e}')
    );
    for bad in [
        monitors(Vec::new(), 0),
        monitors(vec![name("a")], 1),
        monitors(vec![name("a"); MAX_MONITORS + 1], 0),
        monitors(vec![name(&"x".repeat(MAX_MONITOR_NAME + 1))], 0),
    ] {
        assert_eq!(canvas.apply(bad), Err(ScreenError::BadMonitors));
    }
    assert!(canvas.apply(monitors(vec![name("a"); MAX_MONITORS], 15)).is_ok());
}
