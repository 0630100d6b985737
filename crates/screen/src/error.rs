//! [`ScreenError`]: what goes wrong encoding a picture or applying an update.

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
    /// A list of monitors that is empty, too long, or whose shared one is not in it.
    #[error("malformed list of monitors")]
    BadMonitors,
    /// The compressor could not be set up.
    #[error("compressor unavailable")]
    Codec,
}
