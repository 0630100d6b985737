//! The customer's desktop behind a seam: capture, which every back end has, and the parts a
//! back end may lack — input injection, a pointer it can read, and an on-screen indicator of
//! our own. X11 (in `x11.rs`) has them all. On a Wayland session, whose X display (XWayland)
//! shows only the X programs, the portal back end (`portal.rs`) shares the screen through the
//! xdg-desktop-portal and PipeWire: it reads the pointer only where the compositor sends it
//! beside the picture, the system shows its own indicator, and it takes input only if the
//! customer allowed it in the system's dialog.

#[cfg(target_os = "linux")]
mod portal;
#[cfg(target_os = "linux")]
mod screencast;
mod worker;
#[cfg(target_os = "linux")]
mod x11;

#[cfg(not(target_os = "linux"))]
compile_error!("ponte-agent has desktop back ends for Linux (X11, Wayland) only so far");

pub use worker::{DesktopWorker, DisplayOptions, IndicatorText, Injected, Opened, Sharing, Step};

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
pub use ponte_screen::{CursorImage, Image};

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

/// The monitors the assistant may switch among, and the shared one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Monitors {
    /// Their names, in the order they are numbered.
    pub names: Vec<String>,
    /// The shared one, an index into `names`.
    pub current: usize,
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
pub enum Indication {
    /// The screen is shared, view only.
    Viewing,
    /// The assistant may use the mouse and keyboard.
    Controlling,
}

/// A desktop the agent can share: its screen, and whichever other parts its back end has.
/// A part it lacks is `None` — said, never pretended — and the agent does without it.
pub trait Desktop: Capture {
    /// Input injection; `None` on a view-only desktop.
    fn input(&mut self) -> Option<&mut dyn Injector>;
    /// The pointer, where its position can be read.
    fn pointer(&mut self) -> Option<&mut dyn Pointer>;
    /// The indicator the agent shows; `None` where the system shows its own.
    fn indicator(&mut self) -> Option<&mut dyn Indicator>;
}

/// Capturing the shared monitor.
pub trait Capture: Send {
    /// The shared monitor.
    fn monitor(&self) -> &Monitor;
    /// The monitors that may be shared (on Wayland: those the customer picked in the system's
    /// dialog), and which of them is.
    fn monitors(&self) -> Monitors;
    /// Shares monitor `index` of [`Capture::monitors`] from the next capture on.
    fn select(&mut self, index: usize) -> anyhow::Result<()>;
    /// Captures the shared monitor as `want` says; `None` when nothing changed and
    /// [`Want::Changes`] was asked.
    fn capture(&mut self, want: Want) -> anyhow::Result<Option<Image<'_>>>;
    /// The pointer's image, when it changed since the last call.
    fn cursor_shape(&mut self) -> anyhow::Result<Option<CursorImage>>;
}

/// Injecting the assistant's input.
pub trait Injector {
    /// Injects one input event; returns once the display has processed it.
    fn inject(&mut self, event: &InputEvent) -> anyhow::Result<()>;
    /// Gives back what injection borrowed (keycodes remapped to type characters the keymap
    /// lacks).
    fn restore_keymap(&mut self) -> anyhow::Result<()>;
}

/// Reading the pointer, which the customer's mouse and the assistant's input both move.
pub trait Pointer {
    /// The pointer position relative to the shared monitor.
    fn position(&mut self) -> anyhow::Result<(i32, i32)>;
    /// Whether the customer moved the pointer since the assistant's last input (or since the
    /// last time this said so); never before the assistant's first input.
    fn customer_moved(&mut self) -> anyhow::Result<bool>;
}

/// The agent's own on-screen indicator.
pub trait Indicator {
    /// Shows, changes or (with `None`) removes the indicator (and the guide with it).
    fn show(&mut self, shown: Option<(Indication, &str)>) -> anyhow::Result<()>;
    /// Draws the assistant's guide — a ring the customer's clicks pass through the middle of —
    /// around this position on the shared monitor, or (with `None`) removes it.
    fn guide(&mut self, at: Option<(i32, i32)>) -> anyhow::Result<()>;
}

/// Why the desktop cannot do what is asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DesktopError {
    /// No xdg-desktop-portal with ScreenCast and RemoteDesktop answers on the session bus.
    #[error(
        "this Wayland desktop offers no screen-sharing portal (xdg-desktop-portal with ScreenCast and RemoteDesktop): {0}"
    )]
    NoPortal(String),
    /// The customer cancelled the system's sharing dialog.
    #[error("the customer did not allow sharing the screen in the system's dialog")]
    PortalCancelled,
    /// Nobody answered the system's sharing dialog in time (minutes).
    #[error("the system's screen-sharing dialog was not answered within {0} minutes")]
    PortalUnanswered(u64),
    /// The portal failed otherwise.
    #[error("the screen-sharing portal failed: {0}")]
    Portal(String),
    /// PipeWire, through which the desktop streams the screen, does not answer.
    #[error("this desktop's screen-sharing service (PipeWire) is not running: {0}")]
    NoPipeWire(String),
    /// The PipeWire stream of the shared screen failed.
    #[error("the screen stream (PipeWire) failed: {0}")]
    PipeWire(String),
    /// The desktop takes no input from Ponte: the assistant can see, not control.
    #[error(
        "the customer's desktop is view only: it takes no mouse or keyboard input from Ponte \
         (on Wayland: shared without \"allow remote interaction\" in the system's dialog, or the \
         desktop offers no remote control)"
    )]
    ViewOnly,
}

/// The kind of graphical session the agent runs in, as its environment (`getenv`) says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SessionKind {
    /// An X11 session (or no graphical session at all: opening the display says why).
    X11,
    /// A Wayland session.
    Wayland,
}

impl SessionKind {
    /// `XDG_SESSION_TYPE` when it says, otherwise Wayland when there is a `WAYLAND_DISPLAY` and
    /// no `DISPLAY`.
    pub fn detect(getenv: impl Fn(&str) -> Option<String>) -> SessionKind {
        let set = |name: &str| getenv(name).is_some_and(|v| !v.is_empty());
        match getenv("XDG_SESSION_TYPE").as_deref() {
            Some("wayland") => SessionKind::Wayland,
            Some("x11") => SessionKind::X11,
            _ if set("WAYLAND_DISPLAY") && !set("DISPLAY") => SessionKind::Wayland,
            _ => SessionKind::X11,
        }
    }
}

impl SessionKind {
    /// `kind` if given, else X11 when an X display is named (shared as asked), else as the
    /// session's environment says.
    pub fn resolve(kind: Option<SessionKind>, display: Option<&str>) -> SessionKind {
        kind.unwrap_or_else(|| match display {
            Some(_) => SessionKind::X11,
            None => SessionKind::detect(|name| std::env::var(name).ok()),
        })
    }

    /// Whether opening this desktop shows the system's own sharing dialog.
    pub fn asks_customer(self) -> bool {
        self == SessionKind::Wayland
    }
}

/// Opens the desktop of kind `kind`: on X11, `display` (default `$DISPLAY`) sharing monitor
/// `monitor` (default the primary one); on Wayland, through the portal, whose dialog picks the
/// monitor.
pub fn open(
    kind: SessionKind,
    display: Option<&str>,
    monitor: Option<usize>,
) -> anyhow::Result<Box<dyn Desktop>> {
    Ok(match kind {
        SessionKind::X11 => Box::new(x11::X11::open(display, monitor)?),
        SessionKind::Wayland => Box::new(portal::Portal::open()?),
    })
}

#[cfg(test)]
mod tests {
    use super::SessionKind;

    fn kind(vars: &[(&str, &str)]) -> SessionKind {
        SessionKind::detect(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn the_session_kind_follows_the_environment() {
        assert_eq!(
            kind(&[("XDG_SESSION_TYPE", "wayland"), ("DISPLAY", ":0")]),
            SessionKind::Wayland
        );
        assert_eq!(
            kind(&[("XDG_SESSION_TYPE", "x11"), ("WAYLAND_DISPLAY", "wayland-0")]),
            SessionKind::X11
        );
        assert_eq!(kind(&[("WAYLAND_DISPLAY", "wayland-0")]), SessionKind::Wayland);
        assert_eq!(
            kind(&[("WAYLAND_DISPLAY", "wayland-0"), ("DISPLAY", ":0")]),
            SessionKind::X11
        );
        assert_eq!(kind(&[("DISPLAY", ":0")]), SessionKind::X11);
        assert_eq!(kind(&[("XDG_SESSION_TYPE", "tty")]), SessionKind::X11);
    }
}
