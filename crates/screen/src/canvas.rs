//! The viewer's side: the remote picture rebuilt from [`ScreenUpdate`]s. Every update comes
//! from the network, so every size and position is checked before it touches memory.

use ponte_e2e::screen::{
    BYTES_PER_PIXEL, Codec, CopyRect, FrameStats, LossyRect, MAX_CURSOR, MAX_LOSSY_SIDE, MAX_MONITOR_NAME,
    MAX_MONITORS, MAX_SCALE, MAX_SIDE, MAX_WEBP_TILE_WIDTH, ScreenUpdate, TILE, Tile,
};

use crate::error::ScreenError;

/// The pointer's image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorImage {
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
    /// Hot spot, horizontal.
    pub hot_x: u16,
    /// Hot spot, vertical.
    pub hot_y: u16,
    /// Premultiplied ARGB pixels.
    pub argb: Vec<u32>,
}

/// What applying an update did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The picture has a new size (and is black).
    Resized,
    /// This many tiles were drawn.
    Tiles(usize),
    /// This many lossy rectangles were drawn.
    Lossy(usize),
    /// This many rectangles were moved.
    Copied(usize),
    /// The agent's figures for the frame being received.
    Stats,
    /// The pointer moved or changed shape.
    Cursor,
    /// A frame is complete.
    Frame {
        /// Its number.
        frame: u64,
        /// The refresh it answers (0: none).
        sync: u64,
        /// Tiles it carried.
        tiles: u32,
    },
    /// The agent stopped sharing, for this reason (inert text); nothing follows.
    Ended(ponte_wire::PeerText),
    /// The shared desktop takes no input, for this reason (inert text).
    ViewOnly(ponte_wire::PeerText),
    /// The monitors one may switch among (inert names), and the shared one (an index into
    /// them).
    Monitors {
        /// Their names.
        names: Vec<ponte_wire::PeerText>,
        /// The shared one.
        current: usize,
    },
}

/// The remote screen as the viewer knows it.
pub struct Canvas {
    width: u16,
    height: u16,
    /// Pixels as `0x00RRGGBB`, rows top to bottom.
    pixels: Vec<u32>,
    /// Pointer position, if known.
    pub cursor_position: Option<(i32, i32)>,
    /// Pointer image, if known.
    pub cursor: Option<CursorImage>,
    decompressor: zstd::bulk::Decompressor<'static>,
    scratch: Vec<u8>,
    /// Complete frames received.
    pub frames: u64,
    /// Tiles received.
    pub tiles: u64,
    /// Lossy rectangles received.
    pub lossy: u64,
    /// Moved rectangles received.
    pub copies: u64,
    /// Bytes of pixel data (tiles and lossy images) received.
    pub bytes: u64,
    /// The agent's figures for the last frame that had them.
    pub stats: Option<FrameStats>,
}

impl std::fmt::Debug for Canvas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Canvas")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("frames", &self.frames)
            .field("tiles", &self.tiles)
            .finish_non_exhaustive()
    }
}

impl Canvas {
    /// An empty picture (0×0 until the first `Size`).
    pub fn new() -> Result<Canvas, ScreenError> {
        Ok(Canvas {
            width: 0,
            height: 0,
            pixels: Vec::new(),
            cursor_position: None,
            cursor: None,
            decompressor: zstd::bulk::Decompressor::new().map_err(|_| ScreenError::Codec)?,
            scratch: Vec::new(),
            frames: 0,
            tiles: 0,
            lossy: 0,
            copies: 0,
            bytes: 0,
            stats: None,
        })
    }

    /// Width in pixels.
    pub fn width(&self) -> u16 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u16 {
        self.height
    }

    /// Pixels as `0x00RRGGBB`, rows top to bottom.
    pub fn pixels(&self) -> &[u32] {
        &self.pixels
    }

    /// The picture as 8-bit RGB, rows top to bottom (for PNG).
    pub fn rgb(&self) -> Vec<u8> {
        self.pixels
            .iter()
            .flat_map(|p| [(p >> 16) as u8, (p >> 8) as u8, *p as u8])
            .collect()
    }

    /// Applies one update from the agent.
    pub fn apply(&mut self, update: ScreenUpdate) -> Result<Applied, ScreenError> {
        match update {
            ScreenUpdate::Size { width, height } => {
                if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE {
                    return Err(ScreenError::BadSize(width, height));
                }
                self.width = width;
                self.height = height;
                self.pixels.clear();
                self.pixels.resize(usize::from(width) * usize::from(height), 0);
                Ok(Applied::Resized)
            }
            ScreenUpdate::Tiles(tiles) => {
                self.check_area(tiles.iter().map(|t| t.width as usize * t.height as usize))?;
                let n = tiles.len();
                for tile in tiles {
                    self.draw(&tile)?;
                    self.bytes += tile.data.len() as u64;
                }
                self.tiles += n as u64;
                Ok(Applied::Tiles(n))
            }
            ScreenUpdate::Cursor { x, y } => {
                self.cursor_position = Some((x, y));
                Ok(Applied::Cursor)
            }
            ScreenUpdate::CursorShape {
                width,
                height,
                hot_x,
                hot_y,
                argb,
            } => {
                let n = usize::from(width) * usize::from(height);
                if width > MAX_CURSOR || height > MAX_CURSOR || argb.len() != n * 4 {
                    return Err(ScreenError::BadCursor);
                }
                let argb = argb
                    .chunks_exact(4)
                    .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                self.cursor = Some(CursorImage {
                    width,
                    height,
                    hot_x,
                    hot_y,
                    argb,
                });
                Ok(Applied::Cursor)
            }
            ScreenUpdate::Lossy(rects) => {
                let area = rects.iter().map(|r| r.width as usize * r.height as usize);
                self.check_area(area)?;
                let n = rects.len();
                for rect in rects {
                    self.draw_lossy(&rect)?;
                    self.bytes += rect.data.len() as u64;
                }
                self.lossy += n as u64;
                Ok(Applied::Lossy(n))
            }
            ScreenUpdate::Copy(rects) => {
                self.check_area(rects.iter().map(|r| r.width as usize * r.height as usize))?;
                let n = rects.len();
                for rect in rects {
                    self.copy(&rect)?;
                }
                self.copies += n as u64;
                Ok(Applied::Copied(n))
            }
            ScreenUpdate::Stats(stats) => {
                self.stats = Some(stats);
                Ok(Applied::Stats)
            }
            ScreenUpdate::FrameEnd { frame, sync, tiles } => {
                self.frames += 1;
                Ok(Applied::Frame { frame, sync, tiles })
            }
            ScreenUpdate::Ended(why) => Ok(Applied::Ended(why)),
            ScreenUpdate::ViewOnly(why) => Ok(Applied::ViewOnly(why)),
            ScreenUpdate::Monitors { names, current } => {
                let current = usize::from(current);
                if names.len() > MAX_MONITORS
                    || current >= names.len()
                    || names.iter().any(|n| n.len() > MAX_MONITOR_NAME)
                {
                    return Err(ScreenError::BadMonitors);
                }
                // Where the pointer was on another monitor says nothing about this one.
                self.cursor_position = None;
                Ok(Applied::Monitors { names, current })
            }
        }
    }

    fn draw(&mut self, tile: &Tile) -> Result<(), ScreenError> {
        let (x, y, w, h) = (
            usize::from(tile.x),
            usize::from(tile.y),
            usize::from(tile.width),
            usize::from(tile.height),
        );
        let inside = x + w <= usize::from(self.width) && y + h <= usize::from(self.height);
        let widest = match tile.codec {
            Codec::Webp => MAX_WEBP_TILE_WIDTH,
            Codec::Raw | Codec::Zstd => TILE,
        };
        if w == 0 || h == 0 || tile.width > widest || tile.height > TILE || !inside {
            return Err(ScreenError::TileOutside);
        }
        let len = w * h * BYTES_PER_PIXEL;
        let pixels: &[u8] = match tile.codec {
            Codec::Raw => &tile.data,
            Codec::Zstd => {
                // Exactly the tile's size: a bomb fails instead of writing more.
                self.scratch.clear();
                self.scratch.resize(len, 0);
                let n = self
                    .decompressor
                    .decompress_to_buffer(&tile.data, &mut self.scratch[..])
                    .map_err(|_| ScreenError::BadTile)?;
                self.scratch.truncate(n);
                &self.scratch
            }
            Codec::Webp => {
                decode_webp(&tile.data, w, h, &mut self.scratch)?;
                // WebP gives red, green, blue; tiles are blue, green, red.
                for px in self.scratch.chunks_exact_mut(BYTES_PER_PIXEL) {
                    px.swap(0, 2);
                }
                &self.scratch
            }
        };
        if pixels.len() != len {
            return Err(ScreenError::BadTile);
        }
        let stride = usize::from(self.width);
        for (r, row) in pixels.chunks_exact(w * BYTES_PER_PIXEL).enumerate() {
            let start = (y + r) * stride + x;
            for (dst, px) in self.pixels[start..start + w]
                .iter_mut()
                .zip(row.chunks_exact(BYTES_PER_PIXEL))
            {
                *dst = u32::from(px[2]) << 16 | u32::from(px[1]) << 8 | u32::from(px[0]);
            }
        }
        Ok(())
    }
}

impl Canvas {
    /// An honest agent's rectangles in one message never overlap, so together they cover at
    /// most the screen; more is a hostile agent making the viewer work (copies of a whole
    /// screen, thousands of times over) and is refused before anything is drawn.
    fn check_area(&self, areas: impl Iterator<Item = usize>) -> Result<(), ScreenError> {
        let screen = usize::from(self.width) * usize::from(self.height);
        if areas.sum::<usize>() > screen {
            return Err(ScreenError::TileOutside);
        }
        Ok(())
    }

    fn inside(&self, x: u16, y: u16, w: u16, h: u16) -> bool {
        usize::from(x) + usize::from(w) <= usize::from(self.width)
            && usize::from(y) + usize::from(h) <= usize::from(self.height)
    }

    fn draw_lossy(&mut self, rect: &LossyRect) -> Result<(), ScreenError> {
        let (w, h, scale) = (rect.width, rect.height, rect.scale);
        if w == 0 || h == 0 || w > MAX_LOSSY_SIDE || h > MAX_LOSSY_SIDE || !self.inside(rect.x, rect.y, w, h)
        {
            return Err(ScreenError::TileOutside);
        }
        if scale == 0 || scale > MAX_SCALE {
            return Err(ScreenError::BadTile);
        }
        let s = usize::from(scale);
        let (sw, sh) = (usize::from(w).div_ceil(s), usize::from(h).div_ceil(s));
        decode_webp(&rect.data, sw, sh, &mut self.scratch)?;
        let stride = usize::from(self.width);
        for r in 0..usize::from(h) {
            let src = &self.scratch[(r / s) * sw * BYTES_PER_PIXEL..][..sw * BYTES_PER_PIXEL];
            let start = (usize::from(rect.y) + r) * stride + usize::from(rect.x);
            // Nearest neighbour: a preview only has to be recognisable until the exact tiles come.
            for (c, dst) in self.pixels[start..start + usize::from(w)].iter_mut().enumerate() {
                let px = &src[(c / s) * BYTES_PER_PIXEL..][..BYTES_PER_PIXEL];
                *dst = u32::from(px[0]) << 16 | u32::from(px[1]) << 8 | u32::from(px[2]);
            }
        }
        Ok(())
    }

    fn copy(&mut self, rect: &CopyRect) -> Result<(), ScreenError> {
        let (w, h) = (usize::from(rect.width), usize::from(rect.height));
        if w == 0
            || h == 0
            || !self.inside(rect.src_x, rect.src_y, rect.width, rect.height)
            || !self.inside(rect.x, rect.y, rect.width, rect.height)
        {
            return Err(ScreenError::TileOutside);
        }
        let stride = usize::from(self.width);
        let (sx, sy, dx, dy) = (
            usize::from(rect.src_x),
            usize::from(rect.src_y),
            usize::from(rect.x),
            usize::from(rect.y),
        );
        // Overlapping moves: copy rows in the order that reads each source row before it is
        // overwritten (bottom-up when moving down).
        let rows: Box<dyn Iterator<Item = usize>> = if dy > sy {
            Box::new((0..h).rev())
        } else {
            Box::new(0..h)
        };
        for r in rows {
            let from = (sy + r) * stride + sx;
            self.pixels.copy_within(from..from + w, (dy + r) * stride + dx);
        }
        Ok(())
    }
}

/// Decodes a WebP image that must be `w`×`h` into `out` as red, green, blue rows. The size is
/// checked against the header before anything is allocated for pixels.
fn decode_webp(data: &[u8], w: usize, h: usize, out: &mut Vec<u8>) -> Result<(), ScreenError> {
    // Only the simple formats libwebp writes for opaque pictures: one VP8 (lossy) or VP8L
    // (lossless) chunk. The extended format's outer size could disagree with its frame's, and
    // the decoder would allocate for the frame's before noticing.
    if !matches!(data.get(12..16), Some(b"VP8 " | b"VP8L")) {
        return Err(ScreenError::BadTile);
    }
    let mut decoder =
        image_webp::WebPDecoder::new(std::io::Cursor::new(data)).map_err(|_| ScreenError::BadTile)?;
    let (dw, dh) = decoder.dimensions();
    if (dw as usize, dh as usize) != (w, h) || decoder.is_animated() {
        return Err(ScreenError::BadTile);
    }
    // Headers can claim anything; the decoder's own allocations are bounded to a few times the
    // picture, which is bounded by the checks above.
    decoder.set_memory_limit(w * h * 16 + (1 << 20));
    let size = decoder.output_buffer_size().ok_or(ScreenError::BadTile)?;
    let channels = if decoder.has_alpha() { 4 } else { 3 };
    if size != w * h * channels {
        return Err(ScreenError::BadTile);
    }
    out.clear();
    out.resize(size, 0);
    decoder.read_image(out).map_err(|_| ScreenError::BadTile)?;
    if channels == 4 {
        let mut to = 0;
        for from in (0..size).step_by(4) {
            out.copy_within(from..from + 3, to);
            to += 3;
        }
        out.truncate(to);
    }
    Ok(())
}
