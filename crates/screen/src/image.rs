//! [`Image`]: a captured picture, as the agent's capture hands it to the encoder.

use ponte_e2e::screen::MAX_SIDE;

use crate::error::ScreenError;

/// Bytes per captured pixel (blue, green, red, padding: X11's ZPixmap at depth 24).
pub const CAPTURE_BYTES_PER_PIXEL: usize = 4;

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
    pub(crate) fn row(&self, y: usize, x: usize, width: usize) -> &[u8] {
        let start = y * self.stride + x * CAPTURE_BYTES_PER_PIXEL;
        &self.data[start..start + width * CAPTURE_BYTES_PER_PIXEL]
    }

    pub(crate) fn check(&self) -> Result<(), ScreenError> {
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
