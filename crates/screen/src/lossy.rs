//! WebP on the agent's side (libwebp): lossy, possibly downscaled pictures of photo-like
//! regions, and lossless tiles for refining them to exact pixels.

use ponte_e2e::screen::{LossyRect, TILE};

use crate::error::ScreenError;
use crate::image::{CAPTURE_BYTES_PER_PIXEL, Image};

/// One rung of the quality ladder.
#[derive(Debug, Clone, Copy)]
pub struct Rung {
    /// Downscaling factor.
    pub scale: u8,
    /// WebP quality, 0 to 100.
    pub quality: f32,
    /// First guess of bytes per screen pixel on photo-like content (learned from then on).
    pub cost: f64,
}

/// Qualities from best to cheapest; the encoder takes the best whose expected size fits the
/// frame's budget, the last one when none does. The cheap end matters most: it is the first
/// picture of a photo desktop on a slow uplink, which must arrive in well under a second.
pub const LADDER: [Rung; 5] = [
    Rung {
        scale: 1,
        quality: 75.0,
        cost: 0.25,
    },
    Rung {
        scale: 1,
        quality: 40.0,
        cost: 0.12,
    },
    Rung {
        scale: 2,
        quality: 50.0,
        cost: 0.05,
    },
    Rung {
        scale: 4,
        quality: 40.0,
        cost: 0.015,
    },
    Rung {
        scale: 8,
        quality: 30.0,
        cost: 0.005,
    },
];

/// libwebp's fastest method: these pictures live a fraction of a second before refinement.
const METHOD: i32 = 0;

/// Effort (WebP's quality, for lossless) and method of refinement tiles. They stay on screen
/// and their bytes dominate a photo's time to exact on a slow uplink: on the bench's photo,
/// 50/1 makes 64×64 tiles 22 % smaller than 0/0 (1.56 MB against 1.99 MB for 1920×1080) at
/// about 2 ms a tile instead of 0.6; more effort gains under 1 % for twice the time.
const LOSSLESS_EFFORT: f32 = 50.0;
const LOSSLESS_METHOD: i32 = 1;

/// The rectangle (`w`×`h` at `x`,`y`) as red, green, blue, averaged over `scale`×`scale`
/// blocks; returns the picture's width and height.
fn pack(
    image: &Image<'_>,
    x: usize,
    y: usize,
    w: usize,
    h: usize,
    scale: usize,
    out: &mut Vec<u8>,
) -> (usize, usize) {
    let (sw, sh) = (w.div_ceil(scale), h.div_ceil(scale));
    out.clear();
    out.reserve(sw * sh * 3);
    let mut sums = vec![[0u32; 4]; sw];
    for by in 0..sh {
        sums.iter_mut().for_each(|s| *s = [0; 4]);
        for r in by * scale..((by + 1) * scale).min(h) {
            for (c, px) in image
                .row(y + r, x, w)
                .chunks_exact(CAPTURE_BYTES_PER_PIXEL)
                .enumerate()
            {
                let s = &mut sums[c / scale];
                s[0] += u32::from(px[2]);
                s[1] += u32::from(px[1]);
                s[2] += u32::from(px[0]);
                s[3] += 1;
            }
        }
        for s in &sums {
            let n = s[3].max(1);
            out.extend_from_slice(&[(s[0] / n) as u8, (s[1] / n) as u8, (s[2] / n) as u8]);
        }
    }
    (sw, sh)
}

fn encode(rgb: &[u8], w: usize, h: usize, quality: f32, lossless: bool) -> Option<Vec<u8>> {
    let mut config = webp::WebPConfig::new().ok()?;
    config.lossless = i32::from(lossless);
    config.quality = quality;
    config.method = if lossless { LOSSLESS_METHOD } else { METHOD };
    let encoder = webp::Encoder::from_rgb(rgb, u32::try_from(w).ok()?, u32::try_from(h).ok()?);
    encoder.encode_advanced(&config).ok().map(|m| m.to_vec())
}

/// The rectangle (`w`×`h` at `x`,`y` of `image`) as lossy images at `rung`, split in halves
/// on tile boundaries until each fits `max_bytes`.
pub fn lossy_rects(
    image: &Image<'_>,
    x: usize,
    y: usize,
    w: usize,
    h: usize,
    rung: Rung,
    max_bytes: usize,
) -> Result<Vec<LossyRect>, ScreenError> {
    let mut rgb = Vec::new();
    let scale = usize::from(rung.scale);
    let (sw, sh) = pack(image, x, y, w, h, scale, &mut rgb);
    let data = encode(&rgb, sw, sh, rung.quality, false).ok_or(ScreenError::Codec)?;
    if data.len() <= max_bytes || w <= usize::from(TILE) {
        // Coordinates are within the screen (checked), so they fit u16.
        return Ok(vec![LossyRect {
            x: x as u16,
            y: y as u16,
            width: w as u16,
            height: h as u16,
            scale: rung.scale,
            data,
        }]);
    }
    // Split on a tile boundary, so both halves stay tile-aligned.
    let half = (w / 2)
        .next_multiple_of(usize::from(TILE))
        .min(w - usize::from(TILE));
    let mut out = lossy_rects(image, x, y, half, h, rung, max_bytes)?;
    out.extend(lossy_rects(image, x + half, y, w - half, h, rung, max_bytes)?);
    Ok(out)
}

/// A tile (`w`×`h` at `x`,`y` of `image`) as a lossless WebP image, if libwebp manages.
pub fn lossless_tile(image: &Image<'_>, x: usize, y: usize, w: usize, h: usize) -> Option<Vec<u8>> {
    let mut rgb = Vec::new();
    pack(image, x, y, w, h, 1, &mut rgb);
    encode(&rgb, w, h, LOSSLESS_EFFORT, true)
}
