//! The window that shows the customer's screen, scaled to fit, and forwards mouse and keyboard
//! while the customer grants control. winit allows one event loop per process, so a single
//! window thread owns it and runs it again for every `screen` command.

use std::num::NonZeroU32;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ponte_e2e::app::Capability;
use ponte_e2e::screen::{InputEvent, ScreenFeedback, keysym_for_char};
use ponte_screen::Canvas;
use tokio::sync::{mpsc, watch};
use winit::application::ApplicationHandler;
use winit::event::{ElementState, MouseButton, MouseScrollDelta, WindowEvent};
use winit::event_loop::{ActiveEventLoop, ControlFlow, EventLoop};
use winit::keyboard::{Key, NamedKey};
use winit::platform::run_on_demand::EventLoopExtRunOnDemand;
use winit::platform::x11::EventLoopBuilderExtX11;
use winit::window::{Window, WindowId};

use crate::client::State;
use crate::screen_client::{Progress, ScreenClient};

/// How often the window looks for a new frame.
const FRAME_INTERVAL: Duration = Duration::from_millis(8);

/// Colour of the frame around the picture: grey when viewing, orange while in control.
const VIEW_ONLY_BORDER: u32 = 0x0060_6060;
const CONTROL_BORDER: u32 = 0x00ff_8c00;
const BORDER: u32 = 4;

/// What a window shows and where its input goes.
struct Shared {
    canvas: Arc<Mutex<Canvas>>,
    progress: watch::Receiver<Progress>,
    state: watch::Receiver<State>,
    input: mpsc::Sender<ScreenFeedback>,
}

type Job = (Shared, std_mpsc::Sender<anyhow::Result<()>>);

/// Shows the screen in a window until the customer stops sharing or the assistant closes it.
pub async fn show(client: &ScreenClient, state: watch::Receiver<State>) -> anyhow::Result<()> {
    static WINDOW_THREAD: OnceLock<Mutex<std_mpsc::Sender<Job>>> = OnceLock::new();
    let jobs = WINDOW_THREAD.get_or_init(|| {
        let (tx, rx) = std_mpsc::channel::<Job>();
        std::thread::spawn(move || window_thread(rx));
        Mutex::new(tx)
    });
    let shared = Shared {
        canvas: client.canvas.clone(),
        progress: client.progress_receiver(),
        state,
        input: client.input_sender(),
    };
    let (done_tx, done_rx) = std_mpsc::channel();
    jobs.lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((shared, done_tx))
        .context("the window thread is gone")?;
    eprintln!("[ponte] showing the customer's screen; close the window to return");
    tokio::task::spawn_blocking(move || done_rx.recv().context("the window thread is gone")).await??
}

fn window_thread(jobs: std_mpsc::Receiver<Job>) {
    let mut event_loop = None;
    for (shared, done) in jobs {
        let result = (|| -> anyhow::Result<()> {
            if event_loop.is_none() {
                let built = EventLoop::builder()
                    .with_any_thread(true)
                    .build()
                    .context("cannot open a window (is $DISPLAY set?)")?;
                event_loop = Some(built);
            }
            let Some(event_loop) = event_loop.as_mut() else {
                unreachable!("set above")
            };
            let mut app = App::new(shared);
            event_loop.run_app_on_demand(&mut app)?;
            app.error.map_or(Ok(()), Err)
        })();
        let _ = done.send(result);
    }
}

struct Surface {
    window: Arc<Window>,
    surface: softbuffer::Surface<Arc<Window>, Arc<Window>>,
}

struct App {
    shared: Shared,
    surface: Option<Surface>,
    error: Option<anyhow::Error>,
    /// Frames drawn, to redraw only when something arrived.
    drawn: Option<(u64, Option<(i32, i32)>)>,
    /// Where the picture sits in the window: offset and scaled size.
    placement: (u32, u32, u32, u32),
    /// The window's title as last set.
    title: Option<String>,
    /// Whether the statistics overlay is shown (F2).
    overlay: bool,
    /// Frames and pixel bytes at the start of the current second, and the last second's rates.
    rates: (Instant, u64, u64, f64, f64),
    /// How long the last redraw took, milliseconds.
    present_ms: f64,
}

impl App {
    fn new(shared: Shared) -> App {
        App {
            shared,
            surface: None,
            error: None,
            drawn: None,
            placement: (0, 0, 0, 0),
            title: None,
            overlay: false,
            rates: (Instant::now(), 0, 0, 0.0, 0.0),
            present_ms: 0.0,
        }
    }

    /// Whether the assistant's input goes to the customer: `control` granted, on a desktop
    /// that takes input.
    fn control(&self) -> bool {
        self.shared.progress.borrow().view_only.is_none()
            && self
                .shared
                .state
                .borrow()
                .grants
                .is_some_and(|g| g.allows(Capability::Control))
    }

    fn fail(&mut self, event_loop: &ActiveEventLoop, e: anyhow::Error) {
        self.error = Some(e);
        event_loop.exit();
    }

    fn send(&self, event: InputEvent) {
        if self.control() {
            // Motion may be dropped when the link is busy; the next motion supersedes it.
            let _ = self.shared.input.try_send(ScreenFeedback::Input(event));
        }
    }

    /// The remote position under a window position, if it is on the picture.
    fn remote(&self, x: f64, y: f64) -> Option<(u16, u16)> {
        let (ox, oy, w, h) = self.placement;
        let canvas = self.shared.canvas.lock().unwrap_or_else(|e| e.into_inner());
        let (cw, ch) = (f64::from(canvas.width()), f64::from(canvas.height()));
        let (rx, ry) = (x - f64::from(ox), y - f64::from(oy));
        if w == 0 || h == 0 || rx < 0.0 || ry < 0.0 || rx >= f64::from(w) || ry >= f64::from(h) {
            return None;
        }
        Some(((rx * cw / f64::from(w)) as u16, (ry * ch / f64::from(h)) as u16))
    }

    fn redraw(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        let control = self.control();
        let Some(s) = self.surface.as_mut() else {
            return Ok(());
        };
        let size = s.window.inner_size();
        let (Some(ww), Some(wh)) = (NonZeroU32::new(size.width), NonZeroU32::new(size.height)) else {
            return Ok(());
        };
        let title = title(control, &self.shared.progress.borrow());
        if self.title.as_ref() != Some(&title) {
            s.window.set_title(&title);
            self.title = Some(title);
        }
        s.surface.resize(ww, wh).map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut buffer = s.surface.buffer_mut().map_err(|e| anyhow::anyhow!("{e}"))?;
        let canvas = self.shared.canvas.lock().unwrap_or_else(|e| e.into_inner());
        let (ww, wh) = (ww.get(), wh.get());
        if let Some(placement) = compose(&canvas, &mut buffer, ww, wh, control) {
            self.placement = placement;
        }
        let (since, frames, bytes, _, _) = self.rates;
        let elapsed = since.elapsed().as_secs_f64();
        if elapsed >= 1.0 {
            let fps = (canvas.frames - frames) as f64 / elapsed;
            let rate = (canvas.bytes - bytes) as f64 / elapsed;
            self.rates = (Instant::now(), canvas.frames, canvas.bytes, fps, rate);
        }
        if self.overlay {
            let lines =
                crate::overlay::lines(canvas.stats.as_ref(), self.rates.3, self.rates.4, self.present_ms);
            crate::overlay::draw(&mut buffer, ww, wh, &lines);
        }
        self.drawn = Some((canvas.frames, canvas.cursor_position));
        drop(canvas);
        buffer.present().map_err(|e| anyhow::anyhow!("{e}"))?;
        self.present_ms = started.elapsed().as_secs_f64() * 1e3;
        Ok(())
    }
}

/// The window's title: whether the assistant controls, and which monitor is shown when the
/// customer shares several.
fn title(control: bool, progress: &Progress) -> String {
    let mode = if control {
        "CONTROL: your mouse and keyboard act on it"
    } else {
        "VIEW ONLY"
    };
    match progress.monitors.get(progress.monitor) {
        Some(name) if progress.monitors.len() > 1 => format!(
            "Ponte — customer's screen — {mode} — monitor {} of {}: {name} (F3: next)",
            progress.monitor + 1,
            progress.monitors.len()
        ),
        _ => format!("Ponte — customer's screen — {mode}"),
    }
}

/// Draws the picture into a window buffer of `ww`×`wh` (0x00RRGGBB): the border that says
/// whether the assistant controls, the picture fitted inside keeping its aspect ratio, the
/// pointer over it. Returns where the picture went (left, top, width, height), if anywhere.
pub fn compose(
    canvas: &Canvas,
    buffer: &mut [u32],
    ww: u32,
    wh: u32,
    control: bool,
) -> Option<(u32, u32, u32, u32)> {
    let border = if control { CONTROL_BORDER } else { VIEW_ONLY_BORDER };
    buffer.fill(border);
    let (cw, ch) = (u32::from(canvas.width()), u32::from(canvas.height()));
    let (aw, ah) = (ww.saturating_sub(2 * BORDER), wh.saturating_sub(2 * BORDER));
    if cw == 0 || ch == 0 || aw == 0 || ah == 0 {
        return None;
    }
    // Fit, keeping the aspect ratio.
    let (dw, dh) = if u64::from(aw) * u64::from(ch) <= u64::from(ah) * u64::from(cw) {
        (aw, (u64::from(aw) * u64::from(ch) / u64::from(cw)).max(1) as u32)
    } else {
        ((u64::from(ah) * u64::from(cw) / u64::from(ch)).max(1) as u32, ah)
    };
    let (ox, oy) = (BORDER + (aw - dw) / 2, BORDER + (ah - dh) / 2);
    for y in BORDER..wh - BORDER {
        buffer[(y * ww + BORDER) as usize..(y * ww + ww - BORDER) as usize].fill(0);
    }
    scale(canvas.pixels(), cw, ch, buffer, ww, (ox, oy, dw, dh));
    if let (Some((px, py)), Some(cursor)) = (canvas.cursor_position, &canvas.cursor) {
        let at = |v: i32, o: u32, d: u32, c: u32| i64::from(o) + i64::from(v) * i64::from(d) / i64::from(c);
        let (x0, y0) = (
            at(px, ox, dw, cw) - i64::from(cursor.hot_x),
            at(py, oy, dh, ch) - i64::from(cursor.hot_y),
        );
        for (i, &argb) in cursor.argb.iter().enumerate() {
            let (x, y) = (
                x0 + (i % usize::from(cursor.width)) as i64,
                y0 + (i / usize::from(cursor.width)) as i64,
            );
            if x >= 0 && y >= 0 && x < i64::from(ww) && y < i64::from(wh) {
                let dst = &mut buffer[(y as u32 * ww + x as u32) as usize];
                *dst = blend(*dst, argb);
            }
        }
    }
    Some((ox, oy, dw, dh))
}

/// Nearest-neighbour scaling of `src` (cw×ch) into `dst` (stride `ww`) at `(ox, oy, dw, dh)`.
fn scale(src: &[u32], cw: u32, ch: u32, dst: &mut [u32], ww: u32, (ox, oy, dw, dh): (u32, u32, u32, u32)) {
    let xs: Vec<usize> = (0..dw)
        .map(|x| (u64::from(x) * u64::from(cw) / u64::from(dw)) as usize)
        .collect();
    for y in 0..dh {
        let sy = (u64::from(y) * u64::from(ch) / u64::from(dh)) as usize;
        let src_row = &src[sy * cw as usize..(sy + 1) * cw as usize];
        let start = ((oy + y) * ww + ox) as usize;
        for (d, &sx) in dst[start..start + dw as usize].iter_mut().zip(&xs) {
            *d = src_row[sx];
        }
    }
}

/// Draws a premultiplied ARGB pixel over an RGB one.
fn blend(under: u32, argb: u32) -> u32 {
    let a = argb >> 24;
    let channel = |shift: u32| {
        let over = (argb >> shift) & 0xff;
        let under = (under >> shift) & 0xff;
        (over + under * (255 - a) / 255).min(255) << shift
    };
    channel(16) | channel(8) | channel(0)
}

/// The X keysym for a key the assistant pressed.
fn keysym(key: &Key) -> Option<u32> {
    Some(match key {
        Key::Character(s) => keysym_for_char(s.chars().next()?),
        Key::Named(named) => match named {
            NamedKey::Enter => 0xff0d,
            NamedKey::Tab => 0xff09,
            NamedKey::Backspace => 0xff08,
            NamedKey::Escape => 0xff1b,
            NamedKey::Delete => 0xffff,
            NamedKey::Insert => 0xff63,
            NamedKey::Home => 0xff50,
            NamedKey::End => 0xff57,
            NamedKey::PageUp => 0xff55,
            NamedKey::PageDown => 0xff56,
            NamedKey::ArrowLeft => 0xff51,
            NamedKey::ArrowUp => 0xff52,
            NamedKey::ArrowRight => 0xff53,
            NamedKey::ArrowDown => 0xff54,
            NamedKey::Space => 0x20,
            NamedKey::Shift => 0xffe1,
            NamedKey::Control => 0xffe3,
            NamedKey::Alt => 0xffe9,
            NamedKey::Super => 0xffeb,
            NamedKey::CapsLock => 0xffe5,
            NamedKey::F1 => 0xffbe,
            NamedKey::F2 => 0xffbf,
            NamedKey::F3 => 0xffc0,
            NamedKey::F4 => 0xffc1,
            NamedKey::F5 => 0xffc2,
            NamedKey::F6 => 0xffc3,
            NamedKey::F7 => 0xffc4,
            NamedKey::F8 => 0xffc5,
            NamedKey::F9 => 0xffc6,
            NamedKey::F10 => 0xffc7,
            NamedKey::F11 => 0xffc8,
            NamedKey::F12 => 0xffc9,
            _ => return None,
        },
        _ => return None,
    })
}

impl ApplicationHandler for App {
    fn resumed(&mut self, event_loop: &ActiveEventLoop) {
        if self.surface.is_some() {
            return;
        }
        let (w, h) = {
            let c = self.shared.canvas.lock().unwrap_or_else(|e| e.into_inner());
            (u32::from(c.width()).max(640), u32::from(c.height()).max(360))
        };
        // Half the remote size (a 1080p screen opens at 960×540), larger on small screens.
        let (w, h) = ((w / 2).max(640), (h / 2).max(360));
        let attributes = Window::default_attributes()
            .with_title(title(self.control(), &self.shared.progress.borrow()))
            .with_inner_size(winit::dpi::PhysicalSize::new(w + 2 * BORDER, h + 2 * BORDER));
        let opened = (|| -> anyhow::Result<Surface> {
            let window = Arc::new(event_loop.create_window(attributes)?);
            let context = softbuffer::Context::new(window.clone()).map_err(|e| anyhow::anyhow!("{e}"))?;
            let surface =
                softbuffer::Surface::new(&context, window.clone()).map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(Surface { window, surface })
        })();
        match opened {
            Ok(s) => self.surface = Some(s),
            Err(e) => self.fail(event_loop, e.context("cannot open a window")),
        }
    }

    fn window_event(&mut self, event_loop: &ActiveEventLoop, _: WindowId, event: WindowEvent) {
        match event {
            WindowEvent::CloseRequested => event_loop.exit(),
            WindowEvent::RedrawRequested => {
                if let Err(e) = self.redraw() {
                    self.fail(event_loop, e);
                }
            }
            WindowEvent::Resized(_) => self.drawn = None,
            WindowEvent::CursorMoved { position, .. } => {
                if let Some((x, y)) = self.remote(position.x, position.y) {
                    self.send(InputEvent::Move { x, y });
                }
            }
            WindowEvent::MouseInput { state, button, .. } => {
                let button = match button {
                    MouseButton::Left => 1,
                    MouseButton::Middle => 2,
                    MouseButton::Right => 3,
                    _ => return,
                };
                let pressed = state == ElementState::Pressed;
                self.send(InputEvent::Button { button, pressed });
            }
            WindowEvent::MouseWheel { delta, .. } => {
                let up = match delta {
                    MouseScrollDelta::LineDelta(_, y) => y > 0.0,
                    MouseScrollDelta::PixelDelta(p) => p.y > 0.0,
                };
                let button = if up { 4 } else { 5 };
                self.send(InputEvent::Button {
                    button,
                    pressed: true,
                });
                self.send(InputEvent::Button {
                    button,
                    pressed: false,
                });
            }
            WindowEvent::KeyboardInput { event, .. } => {
                // F2 is the viewer's own: it shows or hides the statistics.
                if event.logical_key == Key::Named(NamedKey::F2) {
                    if event.state == ElementState::Pressed && !event.repeat {
                        self.overlay = !self.overlay;
                        self.drawn = None;
                    }
                    return;
                }
                // F3 too: it shows the customer's next monitor, when they share several.
                if event.logical_key == Key::Named(NamedKey::F3) {
                    if event.state == ElementState::Pressed && !event.repeat {
                        let p = self.shared.progress.borrow().clone();
                        if p.monitors.len() > 1 {
                            let next = (p.monitor + 1) % p.monitors.len();
                            let _ = self
                                .shared
                                .input
                                .try_send(ScreenFeedback::Monitor(u8::try_from(next).unwrap_or(0)));
                        }
                    }
                    return;
                }
                if let Some(keysym) = keysym(&event.logical_key) {
                    let pressed = event.state == ElementState::Pressed;
                    self.send(InputEvent::Key { keysym, pressed });
                }
            }
            _ => {}
        }
    }

    fn about_to_wait(&mut self, event_loop: &ActiveEventLoop) {
        if let Some(reason) = self.shared.progress.borrow().ended.clone() {
            eprintln!("[ponte] {reason}");
            event_loop.exit();
            return;
        }
        let now = {
            let c = self.shared.canvas.lock().unwrap_or_else(|e| e.into_inner());
            (c.frames, c.cursor_position)
        };
        let title = title(self.control(), &self.shared.progress.borrow());
        if (self.drawn != Some(now) || self.title.as_ref() != Some(&title))
            && let Some(s) = &self.surface
        {
            s.window.request_redraw();
        }
        event_loop.set_control_flow(ControlFlow::WaitUntil(Instant::now() + FRAME_INTERVAL));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_title_says_which_monitor_is_shown_when_there_are_several() {
        let mut progress = Progress {
            monitors: vec!["eDP-1".into()],
            ..Progress::default()
        };
        assert_eq!(title(false, &progress), "Ponte — customer's screen — VIEW ONLY");
        progress.monitors.push("HDMI-1".into());
        progress.monitor = 1;
        let shown = title(true, &progress);
        assert!(shown.contains("CONTROL"), "{shown}");
        assert!(shown.ends_with("monitor 2 of 2: HDMI-1 (F3: next)"), "{shown}");
        // A list the agent never sent right (the canvas refuses it) shows no monitor at all.
        progress.monitor = 7;
        assert!(!title(false, &progress).contains("monitor"));
    }

    #[test]
    fn scaling_keeps_corners() {
        let src: Vec<u32> = (0..16).collect(); // 4×4
        let mut dst = vec![u32::MAX; 10 * 3];
        scale(&src, 4, 4, &mut dst, 10, (1, 0, 2, 2));
        assert_eq!(dst[1], 0);
        assert_eq!(dst[2], 2);
        assert_eq!(dst[11], 8);
        assert_eq!(dst[12], 10);
        assert_eq!(dst[0], u32::MAX, "outside the placement untouched");
    }

    #[test]
    fn blending_premultiplied() {
        assert_eq!(blend(0x00ff_ffff, 0x0000_0000), 0x00ff_ffff, "transparent");
        assert_eq!(blend(0x00ff_ffff, 0xff00_0000), 0, "opaque black");
        assert_eq!(blend(0, 0xff12_3456), 0x0012_3456);
    }

    #[test]
    fn keys_map_to_keysyms() {
        assert_eq!(keysym(&Key::Named(NamedKey::Enter)), Some(0xff0d));
        assert_eq!(keysym(&Key::Character("a".into())), Some(0x61));
    }
}
