//! The agent's side: finds the tiles that changed since the last frame sent and compresses them.

use ponte_protocol::app::MAX_MESSAGE;
use ponte_protocol::screen::{BYTES_PER_PIXEL, Codec, MAX_SIDE, ScreenUpdate, TILE, Tile};

use crate::ScreenError;

/// Bytes per captured pixel (blue, green, red, padding: X11's ZPixmap at depth 24).
pub const CAPTURE_BYTES_PER_PIXEL: usize = 4;

/// Room left in a message for the tile list's framing.
const MESSAGE_BUDGET: usize = MAX_MESSAGE - 256;

/// Per-tile framing overhead in a message (coordinates, codec, length).
const TILE_OVERHEAD: usize = 16;

/// A captured picture: rows of 4-byte pixels (blue, green, red, padding).
#[derive(Debug, Clone, Copy)]
pub struct Image<'a> {
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
    /// Bytes from one row to the next (at least `width * 4`).
    pub stride: usize,
    /// The pixels.
    pub data: &'a [u8],
}

impl Image<'_> {
    fn row(&self, y: usize, x: usize, width: usize) -> &[u8] {
        let start = y * self.stride + x * CAPTURE_BYTES_PER_PIXEL;
        &self.data[start..start + width * CAPTURE_BYTES_PER_PIXEL]
    }

    fn check(&self) -> Result<(), ScreenError> {
        let (w, h) = (usize::from(self.width), usize::from(self.height));
        if w == 0 || h == 0 || self.width > MAX_SIDE || self.height > MAX_SIDE {
            return Err(ScreenError::BadSize(self.width, self.height));
        }
        if self.stride < w * CAPTURE_BYTES_PER_PIXEL || self.data.len() < (h - 1) * self.stride + w * 4 {
            return Err(ScreenError::ShortImage);
        }
        Ok(())
    }
}

/// One encoded frame, ready to send in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedFrame {
    /// The messages: possibly `Size`, then `Tiles` batches that each fit a message, then
    /// `FrameEnd`.
    pub updates: Vec<ScreenUpdate>,
    /// Tiles in the frame.
    pub tiles: u32,
}

/// Keeps the last frame sent and encodes the next one as the tiles that differ from it.
pub struct Encoder {
    width: u16,
    height: u16,
    /// The last frame sent, packed (stride = width * 4).
    previous: Vec<u8>,
    frame: u64,
    compressor: zstd::bulk::Compressor<'static>,
    /// Scratch: one tile's pixels in wire order.
    packed: Vec<u8>,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("frame", &self.frame)
            .finish_non_exhaustive()
    }
}

/// zstd level for tiles. On 64×64 screen tiles level 3 is both smaller and faster than level
/// 1 (docs/BENCHMARKS.md § Screen), and half the size of lz4 at about twice its time.
pub const ZSTD_LEVEL: i32 = 3;

impl Encoder {
    /// An encoder whose first frame is sent whole.
    pub fn new() -> Result<Encoder, ScreenError> {
        Ok(Encoder {
            width: 0,
            height: 0,
            previous: Vec::new(),
            frame: 0,
            compressor: zstd::bulk::Compressor::new(ZSTD_LEVEL).map_err(|_| ScreenError::Codec)?,
            packed: Vec::new(),
        })
    }

    /// Encodes `image` as the tiles that changed since the last frame. Returns `None` when
    /// nothing changed, unless `sync` is non-zero (a frame that answers a refresh is always
    /// sent, if need be with no tiles).
    pub fn encode(&mut self, image: &Image<'_>, sync: u64) -> Result<Option<EncodedFrame>, ScreenError> {
        image.check()?;
        let mut updates = Vec::new();
        let resized = (image.width, image.height) != (self.width, self.height);
        if resized {
            self.width = image.width;
            self.height = image.height;
            self.previous.clear();
            self.previous.resize(
                usize::from(image.width) * usize::from(image.height) * CAPTURE_BYTES_PER_PIXEL,
                0,
            );
            updates.push(ScreenUpdate::Size {
                width: image.width,
                height: image.height,
            });
        }
        let (w, h) = (usize::from(self.width), usize::from(self.height));
        let row_bytes = w * CAPTURE_BYTES_PER_PIXEL;
        let side = usize::from(TILE);
        let mut batch = Vec::new();
        let mut batch_bytes = 0;
        let mut tiles = 0u32;
        for ty in (0..h).step_by(side) {
            let th = side.min(h - ty);
            for tx in (0..w).step_by(side) {
                let tw = side.min(w - tx);
                let changed = resized
                    || (0..th).any(|r| {
                        let start = (ty + r) * row_bytes + tx * CAPTURE_BYTES_PER_PIXEL;
                        image.row(ty + r, tx, tw)
                            != &self.previous[start..start + tw * CAPTURE_BYTES_PER_PIXEL]
                    });
                if !changed {
                    continue;
                }
                let tile = self.encode_tile(image, tx, ty, tw, th)?;
                // Keep what the viewer will have.
                for r in 0..th {
                    let start = (ty + r) * row_bytes + tx * CAPTURE_BYTES_PER_PIXEL;
                    self.previous[start..start + tw * CAPTURE_BYTES_PER_PIXEL].copy_from_slice(image.row(
                        ty + r,
                        tx,
                        tw,
                    ));
                }
                let size = tile.data.len() + TILE_OVERHEAD;
                if batch_bytes + size > MESSAGE_BUDGET {
                    updates.push(ScreenUpdate::Tiles(std::mem::take(&mut batch)));
                    batch_bytes = 0;
                }
                batch_bytes += size;
                tiles += 1;
                batch.push(tile);
            }
        }
        if !batch.is_empty() {
            updates.push(ScreenUpdate::Tiles(batch));
        }
        if tiles == 0 && sync == 0 {
            return Ok(None);
        }
        self.frame += 1;
        updates.push(ScreenUpdate::FrameEnd {
            frame: self.frame,
            sync,
            tiles,
        });
        Ok(Some(EncodedFrame { updates, tiles }))
    }

    fn encode_tile(
        &mut self,
        image: &Image<'_>,
        x: usize,
        y: usize,
        w: usize,
        h: usize,
    ) -> Result<Tile, ScreenError> {
        self.packed.clear();
        for r in 0..h {
            for px in image.row(y + r, x, w).chunks_exact(CAPTURE_BYTES_PER_PIXEL) {
                self.packed.extend_from_slice(&px[..BYTES_PER_PIXEL]);
            }
        }
        let compressed = self
            .compressor
            .compress(&self.packed)
            .map_err(|_| ScreenError::Codec)?;
        // Noise does not compress; the raw tile is then smaller and cheaper to decode.
        let (codec, data) = if compressed.len() < self.packed.len() {
            (Codec::Zstd, compressed)
        } else {
            (Codec::Raw, self.packed.clone())
        };
        // Tile coordinates and sides are below MAX_SIDE (checked), so they fit u16.
        Ok(Tile {
            x: x as u16,
            y: y as u16,
            width: w as u16,
            height: h as u16,
            codec,
            data,
        })
    }
}
