//! The customer's desktop behind a seam: capture, pointer, input injection and the on-screen
//! indicator. X11 is the first back end; Windows and macOS ones implement the same trait.

mod worker;
mod x11;

pub use worker::{DesktopWorker, DisplayOptions, IndicatorText, Injected, Sharing, Step};

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// When the assistant last moved the pointer or pressed a key or a button on this computer.
/// Whatever the customer's side receives right after may have been typed or clicked by the
/// assistant (into the agent's own terminal, say), so grants and "yes" answers arriving then are
/// not taken.
#[derive(Debug, Clone, Default)]
pub struct InjectedInput(Arc<Mutex<Option<Instant>>>);

impl InjectedInput {
    /// How long after the assistant's last input the customer's grants and "yes"
    /// answers are not taken.
    pub const GUARD: Duration = Duration::from_secs(3);

    /// The assistant is about to move the pointer or press keys or buttons.
    pub fn mark(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    }

    /// Whether the assistant used the pointer or keyboard within [`InjectedInput::GUARD`].
    pub fn recent(&self) -> bool {
        self.within(Self::GUARD)
    }

    /// Whether the assistant used the pointer or keyboard within `span`.
    pub fn within(&self, span: Duration) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|t| t.elapsed() < span)
    }
}

use ponte_e2e::screen::InputEvent;
pub use ponte_screen::CursorImage;

/// The part of the desktop that is shared.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Monitor {
    /// Its name (RandR monitor name, or "screen").
    pub name: String,
    /// Left edge on the whole desktop.
    pub x: i16,
    /// Top edge on the whole desktop.
    pub y: i16,
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
}

/// A captured picture: rows of 4-byte pixels (blue, green, red, padding).
#[derive(Debug)]
pub struct Capture<'a> {
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
    /// Bytes per row.
    pub stride: usize,
    /// The pixels.
    pub data: &'a [u8],
}

/// Which picture a capture asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// A new picture only if the screen may have changed since the last capture.
    Changes,
    /// The current picture, grabbed again only if the screen may have changed (the encoder
    /// still has work on it: tiles to refine or that did not fit the last frame).
    Latest,
    /// A picture grabbed now whatever the change tracking says (a refresh).
    Fresh,
}

/// What the on-screen indicator tells the customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Indicator {
    /// The screen is shared, view only.
    Viewing,
    /// The assistant may use the mouse and keyboard.
    Controlling,
}

/// A desktop the agent can share.
pub trait Desktop: Send {
    /// The shared monitor.
    fn monitor(&self) -> &Monitor;
    /// Captures the shared monitor as `want` says; `None` when nothing changed and
    /// [`Want::Changes`] was asked.
    fn capture(&mut self, want: Want) -> anyhow::Result<Option<Capture<'_>>>;
    /// The pointer position relative to the shared monitor.
    fn pointer(&mut self) -> anyhow::Result<(i32, i32)>;
    /// The pointer's image, when it changed since the last call.
    fn cursor_shape(&mut self) -> anyhow::Result<Option<CursorImage>>;
    /// Whether the customer moved the pointer since our last injected event (or since the
    /// last time this said so).
    fn local_input_since_injection(&mut self) -> anyhow::Result<bool>;
    /// Injects one input event; returns once the display has processed it.
    fn inject(&mut self, event: &InputEvent) -> anyhow::Result<()>;
    /// Shows, changes or (with `None`) removes the indicator.
    fn show_indicator(&mut self, shown: Option<(Indicator, &str)>) -> anyhow::Result<()>;
    /// Gives back what input injection borrowed (keycodes remapped to type characters the
    /// keymap lacks).
    fn restore_keymap(&mut self) -> anyhow::Result<()>;
}

/// Opens the desktop on `display` (X11 display name; default `$DISPLAY`), sharing monitor
/// `monitor` (default the primary one).
pub fn open(display: Option<&str>, monitor: Option<usize>) -> anyhow::Result<Box<dyn Desktop>> {
    Ok(Box::new(x11::X11::open(display, monitor)?))
}
