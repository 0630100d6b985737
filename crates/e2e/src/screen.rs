//! Screen sharing and remote control messages.
//!
//! The viewer opens a stream with [`Request::Screen`](crate::app::Request::Screen); after an
//! accepting response the agent sends [`ScreenUpdate`]s and the viewer sends
//! [`ScreenFeedback`]. A frame is a run of updates closed by [`ScreenUpdate::FrameEnd`]; the
//! viewer acknowledges each frame, and the agent keeps at most a few frames unacknowledged, so
//! a slow viewer receives fewer, newer frames instead of a growing queue.
//!
//! Pixels travel in tiles of at most [`TILE`]×[`TILE`] (lossless WebP ones up to
//! [`MAX_WEBP_TILE_WIDTH`] wide). A tile's pixels, after decompression,
//! are rows top to bottom of 3 bytes per pixel in blue, green, red order ([`BYTES_PER_PIXEL`]).

use serde::{Deserialize, Serialize};

/// Side of a full tile, in pixels.
pub const TILE: u16 = 64;

/// Bytes per pixel of decompressed tile data (blue, green, red).
pub const BYTES_PER_PIXEL: usize = 3;

/// Widest [`Tile`] coded as [`Codec::Webp`], in pixels: the agent refines a run of
/// neighbouring photo-like tiles as one lossless picture, which WebP predicts across.
pub const MAX_WEBP_TILE_WIDTH: u16 = 8 * TILE;

/// Largest screen side accepted, in pixels.
pub const MAX_SIDE: u16 = 8192;

/// Largest cursor image side, in pixels (larger cursors are not sent).
pub const MAX_CURSOR: u16 = 96;

/// Longest text of one [`InputEvent::Text`], in bytes.
pub const MAX_TEXT: usize = 4096;

/// Most input events in one [`Request::Input`](crate::app::Request::Input).
pub const MAX_EVENTS: usize = 256;

/// Largest side of a [`LossyRect`] on the screen, in pixels.
pub const MAX_LOSSY_SIDE: u16 = 2048;

/// Most monitors in one [`ScreenUpdate::Monitors`].
pub const MAX_MONITORS: usize = 16;

/// Longest monitor name in [`ScreenUpdate::Monitors`], in bytes.
pub const MAX_MONITOR_NAME: usize = 128;

/// Largest downscaling factor of a [`LossyRect`].
pub const MAX_SCALE: u8 = 8;

/// How a tile's bytes are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Codec {
    /// Uncompressed pixels.
    Raw,
    /// One zstd frame of the pixels.
    Zstd,
    /// One still WebP image of the tile's size (lossless when the agent means it exact:
    /// photo-like tiles, where WebP's prediction beats zstd on raw pixels by far).
    Webp,
}

/// An approximation of a rectangle of the screen: one lossy WebP image, possibly downscaled,
/// that exact [`Tile`]s replace later. Sent where exact pixels would take too long to arrive.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LossyRect {
    /// Left edge on the screen.
    pub x: u16,
    /// Top edge on the screen.
    pub y: u16,
    /// Width on the screen (at most [`MAX_LOSSY_SIDE`]).
    pub width: u16,
    /// Height on the screen (at most [`MAX_LOSSY_SIDE`]).
    pub height: u16,
    /// The image is `ceil(width / scale) × ceil(height / scale)`, stretched back by the viewer
    /// (1 to [`MAX_SCALE`]).
    pub scale: u8,
    /// The WebP image.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

impl std::fmt::Debug for LossyRect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LossyRect")
            .field("x", &self.x)
            .field("y", &self.y)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("scale", &self.scale)
            .field("bytes", &self.data.len())
            .finish()
    }
}

/// Pixels that moved on the screen (scrolling, a dragged window): the viewer copies them from
/// its own picture instead of receiving them again. Source and destination may overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyRect {
    /// Left edge of the source.
    pub src_x: u16,
    /// Top edge of the source.
    pub src_y: u16,
    /// Left edge of the destination.
    pub x: u16,
    /// Top edge of the destination.
    pub y: u16,
    /// Width.
    pub width: u16,
    /// Height.
    pub height: u16,
}

/// What a frame cost on the agent, for the viewer's statistics (sent just before its
/// [`ScreenUpdate::FrameEnd`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameStats {
    /// When the picture was captured, microseconds since the Unix epoch on the agent's clock
    /// (comparable with the viewer's only when both run on one machine, as in benchmarks).
    pub captured_unix_us: u64,
    /// Capturing the picture, microseconds.
    pub capture_us: u32,
    /// Finding changes and encoding them, microseconds.
    pub encode_us: u32,
    /// Of `encode_us`: finding what changed since the last frame (comparing, detecting moved
    /// content), microseconds.
    pub diff_us: u32,
    /// Handing the frame's pixel messages to the connection, microseconds (waiting for QUIC
    /// flow control shows here).
    pub send_us: u32,
    /// How long the oldest change not yet sent had waited at capture, microseconds (0: the
    /// picture is complete after this frame).
    pub backlog_us: u32,
    /// The byte budget the pacer gave this frame.
    pub budget: u32,
    /// The agent's estimate of the path: round-trip time, microseconds.
    pub rtt_us: u32,
    /// The agent's estimate of the path: bytes per second.
    pub rate: u32,
    /// Tiles still approximate (lossy) or not yet sent after this frame.
    pub inexact_tiles: u32,
    /// Lossy WebP quality used in this frame (0: none).
    pub quality: u8,
    /// Downscaling of lossy rectangles in this frame (0: none).
    pub scale: u8,
    /// Pixels moved by [`CopyRect`]s in this frame.
    pub copied_pixels: u32,
}

/// A rectangle of changed pixels.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tile {
    /// Left edge.
    pub x: u16,
    /// Top edge.
    pub y: u16,
    /// Width (at most [`TILE`]; at most [`MAX_WEBP_TILE_WIDTH`] for [`Codec::Webp`]).
    pub width: u16,
    /// Height (at most [`TILE`]).
    pub height: u16,
    /// Compression of `data`.
    pub codec: Codec,
    /// The compressed pixels.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

impl std::fmt::Debug for Tile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tile")
            .field("x", &self.x)
            .field("y", &self.y)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("codec", &self.codec)
            .field("bytes", &self.data.len())
            .finish()
    }
}

/// Agent → viewer on a screen stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScreenUpdate {
    /// The shared screen has this size (first, and after every resolution change); the
    /// viewer's picture is reset to black and the next frame covers every tile.
    Size {
        /// Width in pixels.
        width: u16,
        /// Height in pixels.
        height: u16,
    },
    /// Changed tiles of the frame being sent.
    Tiles(Vec<Tile>),
    /// Where the pointer is, relative to the shared screen (may lie outside it).
    Cursor {
        /// Horizontal position.
        x: i32,
        /// Vertical position.
        y: i32,
    },
    /// The pointer's image changed.
    CursorShape {
        /// Width (at most [`MAX_CURSOR`]).
        width: u16,
        /// Height (at most [`MAX_CURSOR`]).
        height: u16,
        /// Hot spot, horizontal.
        hot_x: u16,
        /// Hot spot, vertical.
        hot_y: u16,
        /// Pixels as premultiplied ARGB, 4 bytes per pixel (little-endian u32 each).
        #[serde(with = "serde_bytes")]
        argb: Vec<u8>,
    },
    /// The frame is complete.
    FrameEnd {
        /// Frame number, counting from 1.
        frame: u64,
        /// The highest [`ScreenFeedback::Refresh`] number this frame answers (0: none).
        sync: u64,
        /// Tiles sent in this frame.
        tiles: u32,
    },
    /// Lossy approximations of the frame being sent.
    Lossy(Vec<LossyRect>),
    /// Moved pixels of the frame being sent, applied in order before its tiles.
    Copy(Vec<CopyRect>),
    /// What the frame being sent cost.
    Stats(FrameStats),
    /// The agent stopped sharing (a revocation, or a failure), and why; nothing follows. (A
    /// screen stream carries no `Transfer::Failed`: this is its last word.)
    Ended(ponte_wire::PeerText),
    /// The shared desktop takes no mouse or keyboard input from Ponte, and why (the customer
    /// shared the screen without allowing remote interaction in the system's dialog, or the
    /// desktop has no way to take it): the viewer offers no control on this stream. Sent at
    /// most once, before the first frame.
    ViewOnly(ponte_wire::PeerText),
    /// The monitors the assistant may switch among with [`ScreenFeedback::Monitor`] (at most
    /// [`MAX_MONITORS`], names at most [`MAX_MONITOR_NAME`] bytes) and which of them is shared
    /// (`current`, an index into `names`): sent before the first frame and after every switch.
    /// On Wayland these are the monitors the customer picked in the system's dialog.
    Monitors {
        /// The monitors' names, in the customer's terms.
        names: Vec<ponte_wire::PeerText>,
        /// The shared one.
        current: u8,
    },
}

/// Viewer → agent on a screen stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScreenFeedback {
    /// The viewer has shown this frame.
    Ack {
        /// The frame's number.
        frame: u64,
    },
    /// Send a frame captured after this message arrived, answering `sync`, even if nothing
    /// changed (for screenshots).
    Refresh {
        /// Increasing number chosen by the viewer.
        sync: u64,
    },
    /// Mouse or keyboard input (injected only while the customer grants control).
    Input(InputEvent),
    /// Share this monitor of the last [`ScreenUpdate::Monitors`] instead (the whole session's
    /// screen streams switch; input goes to it). An index not in the list changes nothing.
    Monitor(u8),
    /// Show the customer where the assistant points: a highlight drawn at this position of the
    /// shared screen (`None`: none). It clicks nothing, so the `screen` grant alone allows it.
    Guide(Option<(u16, u16)>),
    /// What to give up first when the link cannot carry every change exactly at once.
    Quality(Quality),
}

/// The assistant's choice between sharpness and speed on a slow link
/// ([`ScreenFeedback::Quality`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Quality {
    /// Exact pixels only: what does not fit a frame waits for the next (slower on photos).
    Sharp,
    /// Exact when it fits, else lossy previews refined to exact when still (the default).
    #[default]
    Balanced,
    /// Lossy previews of photo-like regions whenever they change, at most of medium quality,
    /// in frames half as large (smoother motion); refined to exact when still.
    Fast,
}

/// One mouse or keyboard event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum InputEvent {
    /// Move the pointer to this position on the shared screen.
    Move {
        /// Horizontal position.
        x: u16,
        /// Vertical position.
        y: u16,
    },
    /// Press or release a mouse button (1 left, 2 middle, 3 right, 4/5 wheel up/down).
    Button {
        /// X button number.
        button: u8,
        /// Pressed (true) or released.
        pressed: bool,
    },
    /// Press or release a key, named by its X keysym.
    Key {
        /// X keysym (e.g. 0xff0d Return).
        keysym: u32,
        /// Pressed (true) or released.
        pressed: bool,
    },
    /// Type this text.
    Text(ponte_wire::text::PeerText),
}

impl InputEvent {
    /// Whether the event is within the protocol's bounds.
    pub fn is_valid(&self) -> bool {
        match self {
            InputEvent::Move { .. } | InputEvent::Key { .. } => true,
            InputEvent::Button { button, .. } => (1..=9).contains(button),
            InputEvent::Text(text) => text.len() <= MAX_TEXT,
        }
    }
}

/// A keysym for a character: Latin-1 characters are their own keysym, control characters the
/// keys that type them, everything else Unicode keysyms (`0x0100_0000 + code point`).
pub fn keysym_for_char(c: char) -> u32 {
    match c {
        '\n' | '\r' => 0xff0d,
        '\t' => 0xff09,
        '\u{8}' => 0xff08,
        '\u{1b}' => 0xff1b,
        c if (' '..='~').contains(&c) || ('\u{a0}'..='\u{ff}').contains(&c) => c as u32,
        c => 0x0100_0000 + c as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::MAX_MESSAGE;
    use ponte_wire::frame;

    #[test]
    fn an_uncompressed_full_tile_fits_a_message() {
        let side = usize::from(TILE);
        let tile = Tile {
            x: MAX_SIDE,
            y: MAX_SIDE,
            width: TILE,
            height: TILE,
            codec: Codec::Raw,
            data: vec![0xff; side * side * BYTES_PER_PIXEL],
        };
        let m = ScreenUpdate::Tiles(vec![tile]);
        let bytes = frame::encode(&m, MAX_MESSAGE).unwrap();
        assert_eq!(frame::decode::<ScreenUpdate>(&bytes, MAX_MESSAGE).unwrap(), m);
    }

    #[test]
    fn the_largest_cursor_fits_a_message() {
        let side = usize::from(MAX_CURSOR);
        let m = ScreenUpdate::CursorShape {
            width: MAX_CURSOR,
            height: MAX_CURSOR,
            hot_x: 0,
            hot_y: 0,
            argb: vec![0xff; side * side * 4],
        };
        assert!(frame::encode(&m, MAX_MESSAGE).is_ok());
    }

    #[test]
    fn keysyms_for_characters() {
        assert_eq!(keysym_for_char('a'), 0x61);
        assert_eq!(keysym_for_char('\n'), 0xff0d);
        assert_eq!(keysym_for_char('é'), 0xe9);
        assert_eq!(keysym_for_char('€'), 0x0100_20ac);
        assert!(
            !InputEvent::Button {
                button: 0,
                pressed: true
            }
            .is_valid()
        );
        assert!(!InputEvent::Text("x".repeat(MAX_TEXT + 1).into()).is_valid());
    }
}
