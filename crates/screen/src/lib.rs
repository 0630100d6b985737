//! # ponte-screen
//!
//! Sans-IO screen sharing: the agent's [`Encoder`] turns captured pictures into what changed
//! since the last frame sent — moved content, exact tiles, lossy previews of photo-like regions
//! refined to exact pixels later — within the byte budget its [`Pacer`] sets from the path;
//! the viewer's [`Canvas`] rebuilds the picture from them. Capture, input injection and windows live in the agent and viewer; the wire
//! messages are [`ponte_e2e::screen`].

#![forbid(unsafe_code)]

mod canvas;
mod encoder;
mod error;
mod image;
pub mod lossy;
mod pacer;
mod scroll;

pub use canvas::{Applied, Canvas, CursorImage};
pub use encoder::{EncodedFrame, Encoder, ZSTD_LEVEL};
pub use error::ScreenError;
pub use image::{CAPTURE_BYTES_PER_PIXEL, Image};
pub use pacer::{FRAME_TIME, MAX_IN_FLIGHT, MIN_BUDGET, Pacer, PathSample};

#[cfg(test)]
mod tests;
