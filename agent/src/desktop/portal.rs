//! The Wayland desktop, through the xdg-desktop-portal: one portal session with ScreenCast
//! (the picture, as a PipeWire stream) and RemoteDesktop (the assistant's pointer and keys), so
//! the customer sees one system dialog. The dialog is part of the customer's consent: its
//! "allow remote interaction" switch decides whether this desktop takes input at all. The
//! compositor draws its own sharing indicator, so this back end has none; where it sends the
//! pointer as cursor metadata beside the picture (mutter does), the pointer is read from it —
//! a frame late, so the customer's hand is told from the assistant's by where the assistant's
//! recent motions put it.

use std::future::Future;
use std::time::Duration;

use ashpd::desktop::remote_desktop::{Axis, DeviceType, KeyState, RemoteDesktop, SelectDevicesOptions};
use ashpd::desktop::screencast::{
    CursorMode, IsScreencastSession, Screencast, SelectSourcesOptions, SourceType, Stream as ScreenStream,
};
use ashpd::desktop::{ResponseError, Session};
use ponte_e2e::screen::{InputEvent, MAX_MONITORS, keysym_for_char};

use super::screencast::{Frame, Stream};
use super::{Capture, CursorImage, Desktop, DesktopError, Image, Injector, Monitor, Monitors, Want};

/// How long a portal call may take (every one but the dialog).
const CALL: Duration = Duration::from_secs(10);

/// How long the system dialog waits for the customer: long enough to read it, not forever.
pub const DIALOG: Duration = Duration::from_secs(180);

/// How long the first picture may take once the customer shared the screen.
const FIRST_FRAME: Duration = Duration::from_secs(10);

/// How many times a switched-to monitor's stream is connected, at most, until its first picture
/// comes: mutter sends a still monitor's picture once, as the stream starts, and now and then
/// (on a busy machine) that picture is lost; a stream connected again gets another. (The first
/// stream needs no second try: the system's dialog closing changes the screen.)
const ATTEMPTS: u32 = 3;

/// Linux evdev codes of the mouse buttons X numbers 1, 2, 3, 8 and 9.
const BTN_LEFT: i32 = 0x110;
const BTN_RIGHT: i32 = 0x111;
const BTN_MIDDLE: i32 = 0x112;
const BTN_SIDE: i32 = 0x113;
const BTN_EXTRA: i32 = 0x114;

/// A started portal session and the stream of the shared monitor.
pub struct Portal {
    /// Runs the portal's D-Bus calls; the desktop worker's thread blocks on it.
    runtime: tokio::runtime::Runtime,
    screencast: Screencast,
    session: Parts,
    /// The monitors the customer picked in the dialog.
    sources: Vec<Source>,
    /// Their names, as [`names`] gives them (the list stays as the dialog left it).
    names: Vec<String>,
    /// The shared one, in `sources`.
    current: usize,
    /// The PipeWire node of the shared monitor: pointer positions are relative to it.
    node: u32,
    /// The customer allowed remote interaction in the dialog.
    input: bool,
    monitor: Monitor,
    stream: Option<Stream>,
    frame: Frame,
    /// The number of the frame in `frame`.
    seen: u64,
    /// Whether `frame` is a monitor's first picture, not captured yet: the compositor sends
    /// the next only when that monitor changes.
    first: bool,
    /// Where the assistant's recent pointer motions put the pointer: the compositor reports
    /// them a frame later, beside any the customer makes.
    targets: std::collections::VecDeque<(i32, i32)>,
    /// Whether the assistant's input was injected since the shared monitor's stream started.
    injected: bool,
}

/// How many of the assistant's recent pointer motions are told apart from the customer's.
const TARGETS: usize = 32;

/// The portal session: screen and input together where the desktop offers RemoteDesktop (one
/// dialog), the screen alone where it does not (wlroots, COSMIC: view only).
enum Parts {
    Remote {
        remote: RemoteDesktop,
        session: Session<RemoteDesktop>,
    },
    ScreenOnly(Session<Screencast>),
}

impl Parts {
    async fn close(&self) -> ashpd::Result<()> {
        match self {
            Parts::Remote { session, .. } => session.close().await,
            Parts::ScreenOnly(session) => session.close().await,
        }
    }

    /// A connection to PipeWire that sees the session's streams (one per stream: a PipeWire
    /// connection is not handed from one stream to the next).
    async fn pipe_wire(&self, screencast: &Screencast) -> ashpd::Result<std::os::fd::OwnedFd> {
        match self {
            Parts::Remote { session, .. } => {
                screencast
                    .open_pipe_wire_remote(session, Default::default())
                    .await
            }
            Parts::ScreenOnly(session) => {
                screencast
                    .open_pipe_wire_remote(session, Default::default())
                    .await
            }
        }
    }
}

/// What the portal's `Start` gave.
struct Started {
    screencast: Screencast,
    session: Parts,
    shared: Shared,
}

/// One monitor the customer shared.
#[derive(Debug, Clone, Copy)]
struct Source {
    /// Its PipeWire node.
    node: u32,
    /// Where it is on the desktop, if the portal says.
    position: Option<(i32, i32)>,
}

/// What the assistant and the customer call the shared monitors: the system's dialog named
/// them, the portal does not say how, so by number and place (in no language).
fn names(sources: &[Source]) -> Vec<String> {
    let name = |(i, source): (usize, &Source)| match (sources.len(), source.position) {
        (1, _) => "screen".into(),
        (_, Some((x, y))) => format!("#{} ({x},{y})", i + 1),
        (_, None) => format!("#{}", i + 1),
    };
    sources.iter().enumerate().map(name).collect()
}

/// The monitors the customer shared, and how.
struct Shared {
    sources: Vec<Source>,
    /// Whether the customer allowed remote interaction.
    input: bool,
}

impl Portal {
    /// Asks the portal for the screen and, where the desktop offers it, the pointer and
    /// keyboard (the system shows its dialog), then waits for the first picture.
    pub fn open() -> anyhow::Result<Portal> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let Started {
            screencast,
            session,
            shared,
        } = runtime.block_on(start())?;
        let mut portal = Portal {
            runtime,
            screencast,
            session,
            names: names(&shared.sources),
            sources: shared.sources,
            current: 0,
            node: 0,
            input: shared.input,
            monitor: Monitor::default(),
            stream: None,
            frame: Frame::default(),
            seen: 0,
            first: false,
            targets: Default::default(),
            injected: false,
        };
        // From here on, dropping `portal` closes the portal session.
        portal.stream(0, 1)?;
        tracing::info!(
            monitors = portal.sources.len(),
            input = portal.input,
            "portal session started"
        );
        Ok(portal)
    }

    /// Streams the customer's monitor `index` (of those shared), once its first picture came
    /// (connecting up to `attempts` times within [`FIRST_FRAME`]).
    fn stream(&mut self, index: usize, attempts: u32) -> anyhow::Result<()> {
        let source = self.sources[index];
        let mut attempt = 1;
        let stream = loop {
            // One stream at a time: the old one ends before the next connects.
            self.stream = None;
            let fd = self.call(self.session.pipe_wire(&self.screencast))?;
            let stream = Stream::start(fd, source.node)?;
            match stream.wait_first(FIRST_FRAME / attempts) {
                Ok(()) => break stream,
                Err(e) if attempt == attempts => return Err(e.into()),
                Err(e) => tracing::info!("no first picture of monitor {index} ({e}): connecting again"),
            }
            attempt += 1;
        };
        (self.stream, self.seen, self.current, self.node) = (Some(stream), 0, index, source.node);
        // Where the assistant's motions went on the last monitor says nothing about this one,
        // nor does where the pointer was before the assistant's first input on it.
        self.targets.clear();
        self.injected = false;
        self.next_frame()?;
        self.first = true;
        let (x, y) = source.position.unwrap_or((0, 0));
        self.monitor = Monitor {
            name: self.names[index].clone(),
            x: i16::try_from(x).unwrap_or(0),
            y: i16::try_from(y).unwrap_or(0),
            width: self.frame.width,
            height: self.frame.height,
        };
        Ok(())
    }

    /// Takes the newest frame, if one arrived; whether one did.
    fn next_frame(&mut self) -> Result<bool, DesktopError> {
        let stream = self
            .stream
            .as_ref()
            .ok_or(DesktopError::PipeWire("no stream".into()))?;
        match stream.newest(self.seen, &mut self.frame)? {
            Some(seen) => {
                self.seen = seen;
                self.monitor.width = self.frame.width;
                self.monitor.height = self.frame.height;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Runs one portal call, bounded by [`CALL`].
    fn call<T>(&self, f: impl Future<Output = ashpd::Result<T>>) -> anyhow::Result<T> {
        Ok(self.runtime.block_on(within(CALL, f))?)
    }
}

/// A portal call within `limit`, its failure said plainly.
async fn within<T>(limit: Duration, f: impl Future<Output = ashpd::Result<T>>) -> Result<T, DesktopError> {
    match tokio::time::timeout(limit, f).await {
        Ok(result) => result.map_err(plain),
        Err(_) => Err(DesktopError::Portal(format!(
            "no answer within {} s",
            limit.as_secs()
        ))),
    }
}

/// A portal failure, in the customer's and the assistant's terms.
fn plain(e: ashpd::Error) -> DesktopError {
    match e {
        ashpd::Error::PortalNotFound(_) => DesktopError::NoPortal(e.to_string()),
        ashpd::Error::Response(ResponseError::Cancelled) => DesktopError::PortalCancelled,
        e => DesktopError::Portal(e.to_string()),
    }
}

/// Creates the portal session and shares through it; a session that did not start is closed
/// (the system's dialog with it).
async fn start() -> Result<Started, DesktopError> {
    // A connection of our own: ashpd's shared one would die with the first session's runtime.
    let bus = tokio::time::timeout(CALL, ashpd::zbus::Connection::session())
        .await
        .map_err(|_| DesktopError::NoPortal("the session bus does not answer".into()))?
        .map_err(|e| DesktopError::NoPortal(e.to_string()))?;
    let screencast = within(CALL, Screencast::with_connection(bus.clone())).await?;
    // Without PipeWire the portal could only fail after the customer answered its dialog.
    super::screencast::running().map_err(DesktopError::NoPipeWire)?;
    let session = match within(CALL, RemoteDesktop::with_connection(bus)).await {
        Ok(remote) => {
            let session = within(CALL, remote.create_session(Default::default())).await?;
            Parts::Remote { remote, session }
        }
        Err(DesktopError::NoPortal(why)) => {
            tracing::info!("no RemoteDesktop portal ({why}): the screen is shared view only");
            Parts::ScreenOnly(within(CALL, screencast.create_session(Default::default())).await?)
        }
        Err(e) => return Err(e),
    };
    let shared = match &session {
        Parts::Remote { remote, session } => share_with_input(remote, &screencast, session).await,
        Parts::ScreenOnly(session) => {
            let start = async {
                let selected = screencast
                    .start(session, None, Default::default())
                    .await?
                    .response()?;
                Ok((selected.streams().to_vec(), false))
            };
            share(&screencast, session, start).await
        }
    };
    match shared {
        Ok(shared) => Ok(Started {
            screencast,
            session,
            shared,
        }),
        Err(e) => {
            let _ = tokio::time::timeout(CALL, session.close()).await;
            Err(e)
        }
    }
}

/// Asks for the pointer and keyboard, then shares as [`share`] does, in the one dialog.
async fn share_with_input(
    remote: &RemoteDesktop,
    screencast: &Screencast,
    session: &Session<RemoteDesktop>,
) -> Result<Shared, DesktopError> {
    let devices = SelectDevicesOptions::default().set_devices(DeviceType::Keyboard | DeviceType::Pointer);
    within(CALL, async {
        remote.select_devices(session, devices).await?.response()
    })
    .await?;
    let start = async {
        let selected = remote
            .start(session, None, Default::default())
            .await?
            .response()?;
        let input = selected
            .devices()
            .contains(DeviceType::Keyboard | DeviceType::Pointer);
        Ok((selected.streams().to_vec(), input))
    };
    share(screencast, session, start).await
}

/// Asks for monitors (the customer may pick several), and shows the system's dialog through
/// `start`, which answers the streams and whether with input once the customer answered.
async fn share<S: IsScreencastSession>(
    screencast: &Screencast,
    session: &Session<S>,
    start: impl Future<Output = ashpd::Result<(Vec<ScreenStream>, bool)>>,
) -> Result<Shared, DesktopError> {
    // The pointer is not in the picture: it comes beside it where the desktop can (the viewer
    // draws it), and is left out where not.
    let modes = within(CALL, screencast.available_cursor_modes()).await?;
    let cursor = if modes.contains(CursorMode::Metadata) {
        CursorMode::Metadata
    } else {
        CursorMode::Hidden
    };
    let sources = SelectSourcesOptions::default()
        .set_cursor_mode(cursor)
        .set_sources(ashpd::enumflags2::BitFlags::from(SourceType::Monitor))
        .set_multiple(true);
    within(CALL, async {
        screencast.select_sources(session, sources).await?.response()
    })
    .await?;
    let (streams, input) = tokio::time::timeout(DIALOG, start)
        .await
        .map_err(|_| DesktopError::PortalUnanswered(DIALOG.as_secs() / 60))?
        .map_err(plain)?;
    let mut sources: Vec<Source> = streams
        .iter()
        .take(MAX_MONITORS)
        .map(|s| Source {
            node: s.pipe_wire_node_id(),
            position: s.position(),
        })
        .collect();
    // Numbered by where they stand, leftmost first (the portal's order is its own).
    sources.sort_by_key(|s| s.position);
    if sources.is_empty() {
        return Err(DesktopError::Portal("the customer shared no monitor".into()));
    }
    Ok(Shared { sources, input })
}

impl Drop for Portal {
    fn drop(&mut self) {
        // The stream first, then the portal session (the system's indicator goes away).
        self.stream = None;
        if let Err(e) = self.call(self.session.close()) {
            tracing::warn!("closing the portal session: {e:#}");
        }
    }
}

impl Desktop for Portal {
    fn input(&mut self) -> Option<&mut dyn Injector> {
        if self.input { Some(self) } else { None }
    }

    fn pointer(&mut self) -> Option<&mut dyn super::Pointer> {
        // Where the compositor sends cursor metadata (mutter does; xdg-desktop-portal-wlr not).
        let known = self.stream.as_ref().and_then(Stream::pointer).is_some();
        if known { Some(self) } else { None }
    }

    fn indicator(&mut self) -> Option<&mut dyn super::Indicator> {
        None
    }
}

impl Capture for Portal {
    fn monitor(&self) -> &Monitor {
        &self.monitor
    }

    fn monitors(&self) -> Monitors {
        Monitors {
            names: self.names.clone(),
            current: self.current,
        }
    }

    fn select(&mut self, index: usize) -> anyhow::Result<()> {
        anyhow::ensure!(index < self.sources.len(), "there is no monitor {index}");
        if index != self.current {
            self.stream(index, ATTEMPTS)?;
        }
        Ok(())
    }

    fn capture(&mut self, want: Want) -> anyhow::Result<Option<Image<'_>>> {
        // The compositor sends a picture only when the screen changed: without a new one, the
        // last one is the current picture (a refresh cannot ask for another).
        let first = std::mem::take(&mut self.first);
        if !self.next_frame()? && !first && want == Want::Changes {
            return Ok(None);
        }
        Ok(Some(Image {
            width: self.frame.width,
            height: self.frame.height,
            stride: self.frame.stride,
            data: &self.frame.data,
        }))
    }

    fn cursor_shape(&mut self) -> anyhow::Result<Option<CursorImage>> {
        Ok(self.stream.as_ref().and_then(Stream::take_shape))
    }
}

impl super::Pointer for Portal {
    fn position(&mut self) -> anyhow::Result<(i32, i32)> {
        let stream = self
            .stream
            .as_ref()
            .ok_or(DesktopError::PipeWire("no stream".into()))?;
        Ok(stream
            .pointer()
            .ok_or(DesktopError::PipeWire("no pointer position".into()))?)
    }

    fn customer_moved(&mut self) -> anyhow::Result<bool> {
        let Some(stream) = &self.stream else {
            return Ok(false);
        };
        let moves = stream.take_moves();
        // Any position the assistant's motions did not ask for is the customer's hand.
        Ok(self.injected && moves.iter().any(|at| !self.targets.contains(at)))
    }
}

impl Injector for Portal {
    fn inject(&mut self, event: &InputEvent) -> anyhow::Result<()> {
        if !self.injected {
            // What the pointer did before the assistant's first input is nobody's business.
            self.injected = true;
            self.stream.as_ref().map(Stream::take_moves);
        }
        if let InputEvent::Move { x, y } = *event {
            // Stream coordinates, on the shared monitor whatever the assistant sent.
            let at = (
                x.min(self.monitor.width.saturating_sub(1)),
                y.min(self.monitor.height.saturating_sub(1)),
            );
            if self.targets.len() == TARGETS {
                self.targets.pop_front();
            }
            self.targets.push_back((i32::from(at.0), i32::from(at.1)));
            let (r, s) = self.remote()?;
            let (x, y) = (f64::from(at.0), f64::from(at.1));
            return self.call(r.notify_pointer_motion_absolute(s, self.node, x, y, Default::default()));
        }
        let (r, s) = self.remote()?;
        match *event {
            InputEvent::Move { .. } => Ok(()),
            InputEvent::Button { button, pressed } => match (button, wheel(button)) {
                // A wheel step is one press; its release says nothing more.
                (_, Some((axis, steps))) if pressed => {
                    self.call(r.notify_pointer_axis_discrete(s, axis, steps, Default::default()))
                }
                (_, Some(_)) => Ok(()),
                (b, None) => {
                    let Some(code) = evdev_button(b) else {
                        return Ok(());
                    };
                    self.call(r.notify_pointer_button(s, code, state(pressed), Default::default()))
                }
            },
            InputEvent::Key { keysym, pressed } => self.key(keysym, pressed),
            InputEvent::Text(ref text) => {
                // The compositor types a keysym only if its keymap has it (mutter drops others).
                for c in text.as_raw().chars() {
                    let sym = keysym_for_char(c);
                    self.key(sym, true)?;
                    self.key(sym, false)?;
                }
                Ok(())
            }
        }
    }

    fn restore_keymap(&mut self) -> anyhow::Result<()> {
        // The portal borrows no keycodes.
        Ok(())
    }
}

impl Portal {
    /// The RemoteDesktop part of the session, through which input goes.
    fn remote(&self) -> Result<(&RemoteDesktop, &Session<RemoteDesktop>), DesktopError> {
        match &self.session {
            Parts::Remote { remote, session } if self.input => Ok((remote, session)),
            _ => Err(DesktopError::ViewOnly),
        }
    }

    fn key(&self, keysym: u32, pressed: bool) -> anyhow::Result<()> {
        let sym = i32::try_from(keysym).unwrap_or(0);
        let (remote, session) = self.remote()?;
        self.call(remote.notify_keyboard_keysym(session, sym, state(pressed), Default::default()))
    }
}

fn state(pressed: bool) -> KeyState {
    if pressed {
        KeyState::Pressed
    } else {
        KeyState::Released
    }
}

/// X buttons 4–7 are wheel steps: up, down, left, right.
fn wheel(button: u8) -> Option<(Axis, i32)> {
    match button {
        4 => Some((Axis::Vertical, -1)),
        5 => Some((Axis::Vertical, 1)),
        6 => Some((Axis::Horizontal, -1)),
        7 => Some((Axis::Horizontal, 1)),
        _ => None,
    }
}

/// The evdev code of X button `button`.
fn evdev_button(button: u8) -> Option<i32> {
    match button {
        1 => Some(BTN_LEFT),
        2 => Some(BTN_MIDDLE),
        3 => Some(BTN_RIGHT),
        8 => Some(BTN_SIDE),
        9 => Some(BTN_EXTRA),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x_buttons_map_to_evdev_buttons_and_wheel_steps() {
        assert_eq!(evdev_button(1), Some(BTN_LEFT));
        assert_eq!(evdev_button(3), Some(BTN_RIGHT));
        assert_eq!(evdev_button(4), None);
        assert!(matches!(wheel(4), Some((Axis::Vertical, -1))));
        assert!(matches!(wheel(7), Some((Axis::Horizontal, 1))));
        assert!(wheel(1).is_none());
    }
}
