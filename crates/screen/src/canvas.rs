//! The viewer's side: the remote picture rebuilt from [`ScreenUpdate`]s. Every update comes
//! from the network, so every size and position is checked before it touches memory.

use ponte_protocol::screen::{BYTES_PER_PIXEL, Codec, MAX_CURSOR, MAX_SIDE, ScreenUpdate, TILE, Tile};

use crate::ScreenError;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The picture has a new size (and is black).
    Resized,
    /// This many tiles were drawn.
    Tiles(usize),
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
                let n = tiles.len();
                for tile in tiles {
                    self.draw(&tile)?;
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
            ScreenUpdate::FrameEnd { frame, sync, tiles } => {
                self.frames += 1;
                Ok(Applied::Frame { frame, sync, tiles })
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
        if w == 0 || h == 0 || tile.width > TILE || tile.height > TILE || !inside {
            return Err(ScreenError::TileOutside);
        }
        let len = w * h * BYTES_PER_PIXEL;
        let pixels: &[u8] = match tile.codec {
            Codec::Raw => &tile.data,
            Codec::Zstd => {
                self.scratch.clear();
                self.scratch.reserve(len);
                // The capacity bounds the output: a bomb fails instead of allocating.
                self.decompressor
                    .decompress_to_buffer(&tile.data, &mut self.scratch)
                    .map_err(|_| ScreenError::BadTile)?;
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
