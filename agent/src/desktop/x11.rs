//! The X11 back end: capture with MIT-SHM (plain GetImage when shared memory is unavailable),
//! change notification with DAMAGE, monitors with RandR, the pointer with XFixes, input with
//! XTest, and the on-screen indicator as an override-redirect window.

use std::fs::File;
use std::os::unix::fs::FileExt;

use anyhow::{Context, bail};
use ponte_e2e::screen::{InputEvent, MAX_CURSOR, MAX_MONITORS, keysym_for_char};
use x11rb::connection::{Connection, RequestConnection};
use x11rb::protocol::Event;
use x11rb::protocol::damage::{ConnectionExt as _, ReportLevel};
use x11rb::protocol::randr::{ConnectionExt as _, NotifyMask};
use x11rb::protocol::shm::ConnectionExt as _;
use x11rb::protocol::xfixes::{ConnectionExt as _, CursorNotifyMask};
use x11rb::protocol::xproto::{
    self, ConnectionExt as _, CreateGCAux, CreateWindowAux, EventMask, ImageFormat, WindowClass,
};
use x11rb::protocol::xtest::ConnectionExt as _;
use x11rb::rust_connection::RustConnection;

use super::{
    Capture, CursorImage, Desktop, Image, Indication, Indicator, Injector, Monitor, Monitors, Pointer, Want,
};

/// XTest event types (core protocol event codes).
const KEY_PRESS: u8 = 2;
const KEY_RELEASE: u8 = 3;
const BUTTON_PRESS: u8 = 4;
const BUTTON_RELEASE: u8 = 5;
const MOTION_NOTIFY: u8 = 6;
const SHIFT_L: u32 = 0xffe1;

/// Where captured pixels arrive.
enum Grabber {
    /// A shared memory segment the server writes into; read back with `pread`, so no unsafe
    /// mapping is needed.
    Shm { seg: u32, file: File, size: usize },
    /// Pixels in the GetImage reply.
    Plain,
}

/// A connection to an X display.
pub struct X11 {
    conn: RustConnection,
    root: u32,
    /// The RandR monitor (index) the customer pinned with `--monitor`: the only one shared.
    pinned: Option<usize>,
    /// The monitor (name) the assistant switched to, when none is pinned.
    chosen: Option<String>,
    /// The display's monitors (the whole screen as one without RandR monitors).
    monitors: Vec<Monitor>,
    /// The shared one, in `monitors`.
    current: usize,
    monitor: Monitor,
    grabber: Grabber,
    shm_available: bool,
    buffer: Vec<u8>,
    /// Set by DAMAGE (or always, without it): something may have changed since the last capture.
    dirty: bool,
    damage: bool,
    cursor_changed: bool,
    xfixes: bool,
    keymap: Keymap,
    /// Keycodes remapped to type characters the keymap lacks, restored when dropped.
    remapped: Vec<u8>,
    indicator: Option<IndicatorWindow>,
    /// The assistant's guide: the four bars of a ring, when shown.
    guide: Option<[u32; 4]>,
    /// Where the pointer was right after the assistant's last input: if it is elsewhere
    /// later, the customer moved it.
    left_at: Option<(i32, i32)>,
}

struct Keymap {
    min: u8,
    per_keycode: usize,
    keysyms: Vec<u32>,
}

impl Keymap {
    fn load(conn: &RustConnection) -> anyhow::Result<Keymap> {
        let setup = conn.setup();
        let (min, max) = (setup.min_keycode, setup.max_keycode);
        let reply = conn.get_keyboard_mapping(min, max - min + 1)?.reply()?;
        Ok(Keymap {
            min,
            per_keycode: usize::from(reply.keysyms_per_keycode).max(1),
            keysyms: reply.keysyms,
        })
    }

    /// The keycode and shift level (0 or 1) that produce `keysym`.
    fn find(&self, keysym: u32) -> Option<(u8, usize)> {
        for level in 0..self.per_keycode.min(2) {
            for (i, syms) in self.keysyms.chunks(self.per_keycode).enumerate() {
                if syms.get(level) == Some(&keysym) {
                    return Some((self.min + i as u8, level));
                }
            }
        }
        None
    }

    /// A keycode with no keysyms, free to remap.
    fn spare(&self, taken: &[u8]) -> Option<u8> {
        self.keysyms
            .chunks(self.per_keycode)
            .enumerate()
            .rev()
            .map(|(i, syms)| (self.min + i as u8, syms))
            .find(|(code, syms)| syms.iter().all(|s| *s == 0) && !taken.contains(code))
            .map(|(code, _)| code)
    }
}

struct IndicatorWindow {
    window: u32,
    gc: u32,
    state: Indication,
    /// Its width in pixels.
    width: u16,
    /// What it says, as 16-bit characters for an ISO 10646 font (Latin-1 for `fixed`).
    text: Vec<xproto::Char2b>,
}

impl X11 {
    /// Connects to `display` (or `$DISPLAY`) and selects monitor `monitor` (index in the RandR
    /// list; default the primary one).
    pub fn open(display: Option<&str>, monitor: Option<usize>) -> anyhow::Result<X11> {
        let (conn, screen_num) = x11rb::connect(display).with_context(|| match display {
            Some(d) => format!("cannot open X display {d}"),
            None => "cannot open the X display (is $DISPLAY set? use --display)".into(),
        })?;
        let screen = &conn.setup().roots[screen_num];
        let root = screen.root;
        let format = conn
            .setup()
            .pixmap_formats
            .iter()
            .find(|f| f.depth == screen.root_depth)
            .map(|f| f.bits_per_pixel);
        if screen.root_depth != 24 && screen.root_depth != 32 || format != Some(32) {
            bail!(
                "unsupported display format (depth {}, {:?} bits per pixel; 24/32 needed)",
                screen.root_depth,
                format
            );
        }
        if conn.setup().image_byte_order != xproto::ImageOrder::LSB_FIRST {
            bail!("unsupported display byte order (big-endian)");
        }
        let has = |name: &'static str| conn.extension_information(name).ok().flatten().is_some();
        let damage = has("DAMAGE") && conn.damage_query_version(1, 1)?.reply().is_ok();
        if damage {
            let id = conn.generate_id()?;
            conn.damage_create(id, root, ReportLevel::NON_EMPTY)?;
        }
        if has("RANDR") && conn.randr_query_version(1, 5)?.reply().is_ok() {
            conn.randr_select_input(root, NotifyMask::SCREEN_CHANGE)?;
        }
        let xfixes = has("XFIXES") && conn.xfixes_query_version(4, 0)?.reply().is_ok();
        if xfixes {
            conn.xfixes_select_cursor_input(root, CursorNotifyMask::DISPLAY_CURSOR)?;
        }
        let shm_available = has("MIT-SHM") && conn.shm_query_version()?.reply().is_ok();
        let keymap = Keymap::load(&conn)?;
        let mut x11 = X11 {
            conn,
            root,
            pinned: monitor,
            chosen: None,
            monitors: Vec::new(),
            current: 0,
            monitor: Monitor::default(),
            grabber: Grabber::Plain,
            shm_available,
            buffer: Vec::new(),
            dirty: true,
            damage,
            cursor_changed: xfixes,
            xfixes,
            keymap,
            remapped: Vec::new(),
            indicator: None,
            guide: None,
            left_at: None,
        };
        x11.find_monitor()?;
        Ok(x11)
    }

    /// Finds the display's monitors and the shared one again; when the shared one changed,
    /// captures it from now on (the indicator moves to it).
    fn find_monitor(&mut self) -> anyhow::Result<()> {
        let (monitors, current) = self.list_monitors()?;
        let monitor = monitors[current].clone();
        (self.monitors, self.current) = (monitors, current);
        if monitor != self.monitor {
            self.monitor = monitor;
            self.setup_grabber()?;
            self.dirty = true;
            self.place_indicator()?;
            // The pointer did not move: only its position relative to the shared monitor did.
            if self.left_at.is_some() {
                self.left_at = Some(self.position()?);
            }
        }
        Ok(())
    }

    /// The monitors that may be shared, and which is: the one the customer pinned alone, else
    /// all the display's, sharing the one the assistant chose (while it is there), else the
    /// primary one.
    fn list_monitors(&self) -> anyhow::Result<(Vec<Monitor>, usize)> {
        let geometry = self.conn.get_geometry(self.root)?.reply()?;
        let whole = Monitor {
            name: "screen".into(),
            x: 0,
            y: 0,
            width: geometry.width,
            height: geometry.height,
        };
        let found = match self.conn.randr_get_monitors(self.root, true) {
            Ok(cookie) => cookie.reply().map(|r| r.monitors).unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        let found: Vec<_> = found
            .into_iter()
            .filter(|m| m.width > 0 && m.height > 0)
            .take(MAX_MONITORS)
            .collect();
        if let Some(i) = self.pinned
            && i >= found.len().max(1)
        {
            bail!("there is no monitor {i} (this display has {})", found.len());
        }
        if found.is_empty() {
            return Ok((vec![whole], 0));
        }
        let primary = found.iter().position(|m| m.primary).unwrap_or(0);
        let monitors: Vec<Monitor> = found
            .iter()
            .map(|m| Monitor {
                name: self
                    .conn
                    .get_atom_name(m.name)
                    .ok()
                    .and_then(|c| c.reply().ok())
                    .map(|r| String::from_utf8_lossy(&r.name).into_owned())
                    .unwrap_or_else(|| "monitor".into()),
                x: m.x,
                y: m.y,
                width: m.width,
                height: m.height,
            })
            .collect();
        if let Some(i) = self.pinned {
            return Ok((vec![monitors[i].clone()], 0));
        }
        let chosen = self
            .chosen
            .as_ref()
            .and_then(|name| monitors.iter().position(|m| &m.name == name));
        Ok((monitors, chosen.unwrap_or(primary)))
    }

    /// Sets up shared memory for the current monitor size, or plain GetImage without it.
    fn setup_grabber(&mut self) -> anyhow::Result<()> {
        if let Grabber::Shm { seg, .. } = self.grabber {
            let _ = self.conn.shm_detach(seg);
        }
        self.grabber = Grabber::Plain;
        let size = usize::from(self.monitor.width) * usize::from(self.monitor.height) * 4;
        self.buffer.resize(size, 0);
        if !self.shm_available {
            return Ok(());
        }
        let attempt = || -> anyhow::Result<Grabber> {
            let fd = rustix::fs::memfd_create("ponte-screen", rustix::fs::MemfdFlags::CLOEXEC)?;
            let file = File::from(fd);
            file.set_len(size as u64)?;
            let seg = self.conn.generate_id()?;
            self.conn
                .shm_attach_fd(seg, std::os::fd::OwnedFd::from(file.try_clone()?), false)?
                .check()?;
            Ok(Grabber::Shm { seg, file, size })
        };
        match attempt() {
            Ok(g) => self.grabber = g,
            // A remote display cannot share memory with us; GetImage works everywhere.
            Err(e) => {
                tracing::info!("MIT-SHM unavailable ({e:#}); capturing with GetImage");
                self.shm_available = false;
            }
        }
        Ok(())
    }

    fn drain_events(&mut self) -> anyhow::Result<bool> {
        let mut resized = false;
        while let Some(event) = self.conn.poll_for_event()? {
            match event {
                Event::DamageNotify(e) => {
                    self.dirty = true;
                    self.conn.damage_subtract(e.damage, 0u32, 0u32)?;
                }
                Event::RandrScreenChangeNotify(_) => resized = true,
                Event::XfixesCursorNotify(_) => self.cursor_changed = true,
                Event::Expose(_) => self.draw_indicator()?,
                _ => {}
            }
        }
        Ok(resized)
    }

    fn grab(&mut self) -> anyhow::Result<()> {
        let m = &self.monitor;
        match &self.grabber {
            Grabber::Shm { seg, file, size } => {
                self.conn
                    .shm_get_image(
                        self.root,
                        m.x,
                        m.y,
                        m.width,
                        m.height,
                        !0,
                        ImageFormat::Z_PIXMAP.into(),
                        *seg,
                        0,
                    )?
                    .reply()?;
                file.read_exact_at(&mut self.buffer[..*size], 0)?;
            }
            Grabber::Plain => {
                let reply = self
                    .conn
                    .get_image(ImageFormat::Z_PIXMAP, self.root, m.x, m.y, m.width, m.height, !0)?
                    .reply()?;
                if reply.data.len() < self.buffer.len() {
                    bail!("short image from the X server");
                }
                let len = self.buffer.len();
                self.buffer.copy_from_slice(&reply.data[..len]);
            }
        }
        Ok(())
    }

    fn key(&mut self, keycode: u8, pressed: bool) -> anyhow::Result<()> {
        let kind = if pressed { KEY_PRESS } else { KEY_RELEASE };
        self.conn.xtest_fake_input(kind, keycode, 0, self.root, 0, 0, 0)?;
        Ok(())
    }

    /// The keycode and level for `keysym`, remapping a spare keycode when the keymap has none.
    fn keycode(&mut self, keysym: u32) -> anyhow::Result<(u8, usize)> {
        if let Some(found) = self.keymap.find(keysym) {
            return Ok(found);
        }
        let code = self
            .keymap
            .spare(&self.remapped)
            .context("no free keycode to type this character")?;
        let per = self.keymap.per_keycode;
        let syms = vec![keysym; per];
        self.conn
            .change_keyboard_mapping(1, code, per as u8, &syms)?
            .check()?;
        let at = usize::from(code - self.keymap.min) * per;
        self.keymap.keysyms[at..at + per].copy_from_slice(&syms);
        self.remapped.push(code);
        // Clients apply the new mapping when they see MappingNotify; give them a moment.
        std::thread::sleep(std::time::Duration::from_millis(20));
        Ok((code, 0))
    }

    fn type_keysym(&mut self, keysym: u32) -> anyhow::Result<()> {
        let (code, level) = self.keycode(keysym)?;
        let shift = match level {
            1 => Some(self.keycode(SHIFT_L)?.0),
            _ => None,
        };
        if let Some(s) = shift {
            self.key(s, true)?;
        }
        self.key(code, true)?;
        self.key(code, false)?;
        if let Some(s) = shift {
            self.key(s, false)?;
        }
        Ok(())
    }

    fn draw_indicator(&mut self) -> anyhow::Result<()> {
        let Some(ind) = &self.indicator else { return Ok(()) };
        let color = match ind.state {
            Indication::Viewing => 0x00_1f_6f_d0,
            Indication::Controlling => 0x00_d0_20_20,
        };
        self.conn.change_gc(
            ind.gc,
            &xproto::ChangeGCAux::new().background(color).foreground(0xffffff),
        )?;
        self.conn.change_window_attributes(
            ind.window,
            &xproto::ChangeWindowAttributesAux::new().background_pixel(color),
        )?;
        self.conn.clear_area(false, ind.window, 0, 0, 0, 0)?;
        // At most 255 characters go in one request.
        let text = &ind.text[..ind.text.len().min(255)];
        self.conn.image_text16(ind.window, ind.gc, 4, 15, text)?;
        self.conn.flush()?;
        Ok(())
    }
}

impl Drop for X11 {
    fn drop(&mut self) {
        let _ = self.restore_keymap();
        if let Grabber::Shm { seg, .. } = self.grabber {
            let _ = self.conn.shm_detach(seg);
        }
        let _ = self.conn.flush();
    }
}

impl Desktop for X11 {
    fn input(&mut self) -> Option<&mut dyn Injector> {
        Some(self)
    }

    fn pointer(&mut self) -> Option<&mut dyn Pointer> {
        Some(self)
    }

    fn indicator(&mut self) -> Option<&mut dyn Indicator> {
        Some(self)
    }
}

impl Capture for X11 {
    fn monitor(&self) -> &Monitor {
        &self.monitor
    }

    fn monitors(&self) -> Monitors {
        Monitors {
            names: self.monitors.iter().map(|m| m.name.clone()).collect(),
            current: self.current,
        }
    }

    fn select(&mut self, index: usize) -> anyhow::Result<()> {
        let Some(monitor) = self.monitors.get(index) else {
            bail!("there is no monitor {index}");
        };
        self.chosen = Some(monitor.name.clone());
        self.find_monitor()
    }

    fn capture(&mut self, want: Want) -> anyhow::Result<Option<Image<'_>>> {
        if self.drain_events()? {
            self.find_monitor()?;
        }
        let changed = self.dirty || !self.damage;
        match want {
            Want::Changes if !changed => return Ok(None),
            Want::Latest if !changed => {}
            _ => {
                // Damage arriving from here on belongs to the next capture.
                self.dirty = false;
                self.grab()?;
            }
        }
        Ok(Some(Image {
            width: self.monitor.width,
            height: self.monitor.height,
            stride: usize::from(self.monitor.width) * 4,
            data: &self.buffer,
        }))
    }

    fn cursor_shape(&mut self) -> anyhow::Result<Option<CursorImage>> {
        if !(self.xfixes && std::mem::take(&mut self.cursor_changed)) {
            return Ok(None);
        }
        let c = self.conn.xfixes_get_cursor_image()?.reply()?;
        if c.width > MAX_CURSOR || c.height > MAX_CURSOR {
            return Ok(None);
        }
        Ok(Some(CursorImage {
            width: c.width,
            height: c.height,
            hot_x: c.xhot,
            hot_y: c.yhot,
            argb: c.cursor_image,
        }))
    }
}

impl Pointer for X11 {
    fn position(&mut self) -> anyhow::Result<(i32, i32)> {
        let p = self.conn.query_pointer(self.root)?.reply()?;
        Ok((
            i32::from(p.root_x) - i32::from(self.monitor.x),
            i32::from(p.root_y) - i32::from(self.monitor.y),
        ))
    }

    fn customer_moved(&mut self) -> anyhow::Result<bool> {
        let Some(left_at) = self.left_at else {
            return Ok(false);
        };
        let now = self.position()?;
        // Where the customer left it is the new baseline: only further movement counts again.
        self.left_at = Some(now);
        Ok(now != left_at)
    }
}

impl Injector for X11 {
    fn inject(&mut self, event: &InputEvent) -> anyhow::Result<()> {
        match event {
            InputEvent::Move { x, y } => {
                // On the shared monitor, whatever the assistant sent.
                let on = |v: u16, size: u16, origin: i16| {
                    i16::try_from(v.min(size.saturating_sub(1)))
                        .map_or(i16::MAX, |v| v.saturating_add(origin))
                };
                let m = &self.monitor;
                let (x, y) = (on(*x, m.width, m.x), on(*y, m.height, m.y));
                self.conn
                    .xtest_fake_input(MOTION_NOTIFY, 0, 0, self.root, x, y, 0)?;
            }
            InputEvent::Button { button, pressed } => {
                let kind = if *pressed { BUTTON_PRESS } else { BUTTON_RELEASE };
                self.conn.xtest_fake_input(kind, *button, 0, self.root, 0, 0, 0)?;
            }
            InputEvent::Key { keysym, pressed } => {
                let (code, _) = self.keycode(*keysym)?;
                self.key(code, *pressed)?;
            }
            InputEvent::Text(text) => {
                for c in text.as_raw().chars() {
                    self.type_keysym(keysym_for_char(c))?;
                }
            }
        }
        // Its reply comes after the server processed the events: any other movement from now
        // on is the customer's.
        self.left_at = Some(self.position()?);
        Ok(())
    }

    fn restore_keymap(&mut self) -> anyhow::Result<()> {
        let per = self.keymap.per_keycode;
        for code in std::mem::take(&mut self.remapped) {
            self.conn
                .change_keyboard_mapping(1, code, per as u8, &vec![0; per])?;
            let at = usize::from(code - self.keymap.min) * per;
            self.keymap.keysyms[at..at + per].fill(0);
        }
        self.conn.flush()?;
        Ok(())
    }
}

/// How wide the indicator is for `chars` characters (both fonts are 6 pixels wide).
fn indicator_width(chars: usize) -> u16 {
    u16::try_from(chars.min(255)).unwrap_or(255) * 6 + 8
}

impl X11 {
    /// The guide's four bars around `(x, y)` (root coordinates), mapped, each with an empty
    /// input region so that clicks on them reach what is beneath. Nothing is left behind if
    /// one fails.
    fn guide_windows(&mut self, x: i32, y: i32) -> anyhow::Result<[u32; 4]> {
        let mut made = Vec::with_capacity(4);
        let result = (|| -> anyhow::Result<()> {
            let nothing = self.conn.generate_id()?;
            self.conn.xfixes_create_region(nothing, &[])?.check()?;
            for (bx, by, w, h) in guide_bars(x, y) {
                let bar = self.conn.generate_id()?;
                self.conn.create_window(
                    x11rb::COPY_DEPTH_FROM_PARENT,
                    bar,
                    self.root,
                    bx.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16,
                    by.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16,
                    w as u16,
                    h as u16,
                    0,
                    WindowClass::INPUT_OUTPUT,
                    x11rb::COPY_FROM_PARENT,
                    &CreateWindowAux::new()
                        .override_redirect(1)
                        .background_pixel(GUIDE_COLOUR),
                )?;
                made.push(bar);
                // Checked: a bar that would catch clicks must not be shown.
                self.conn
                    .xfixes_set_window_shape_region(bar, x11rb::protocol::shape::SK::INPUT, 0, 0, nothing)?
                    .check()?;
                self.conn.map_window(bar)?;
            }
            self.conn.xfixes_destroy_region(nothing)?;
            Ok(())
        })();
        match (result, <[u32; 4]>::try_from(made.as_slice())) {
            (Ok(()), Ok(bars)) => Ok(bars),
            (result, _) => {
                for bar in made {
                    let _ = self.conn.destroy_window(bar);
                }
                let _ = self.conn.flush();
                result.and_then(|()| anyhow::bail!("the guide's windows were not all made"))
            }
        }
    }

    /// Moves the indicator, if shown, to the top middle of the shared monitor.
    fn place_indicator(&mut self) -> anyhow::Result<()> {
        let Some(ind) = &mut self.indicator else {
            return Ok(());
        };
        let m = &self.monitor;
        ind.width = indicator_width(ind.text.len()).min(m.width);
        let at = xproto::ConfigureWindowAux::new()
            .x(i32::from(m.x) + i32::from(m.width.saturating_sub(ind.width) / 2))
            .y(i32::from(m.y))
            .width(u32::from(ind.width));
        self.conn.configure_window(ind.window, &at)?;
        // Drawn at once and waited for: the next capture must show it where it is now.
        self.draw_indicator()?;
        self.conn.get_input_focus()?.reply()?;
        Ok(())
    }
}

/// The guide's ring: its outer size and its bars' thickness, in pixels, and its colour (the
/// indicator's "controlling" orange).
const GUIDE_SIZE: i32 = 40;
const GUIDE_BAR: i32 = 4;
const GUIDE_COLOUR: u32 = 0x00ff_8c00;

/// The guide's four bars around `(x, y)`: (left, top, width, height) each.
fn guide_bars(x: i32, y: i32) -> [(i32, i32, i32, i32); 4] {
    let (half, bar) = (GUIDE_SIZE / 2, GUIDE_BAR);
    [
        (x - half, y - half, GUIDE_SIZE, bar),
        (x - half, y + half - bar, GUIDE_SIZE, bar),
        (x - half, y - half + bar, bar, GUIDE_SIZE - 2 * bar),
        (x + half - bar, y - half + bar, bar, GUIDE_SIZE - 2 * bar),
    ]
}

impl Indicator for X11 {
    fn guide(&mut self, at: Option<(i32, i32)>) -> anyhow::Result<()> {
        // Only on the shared monitor, and only where the ring can let clicks through (XFixes
        // gives its bars an empty input region): the customer's clicks must never be caught.
        let m = &self.monitor;
        let at = at.filter(|&(x, y)| {
            self.xfixes && (0..i32::from(m.width)).contains(&x) && (0..i32::from(m.height)).contains(&y)
        });
        let Some((x, y)) = at else {
            if let Some(bars) = self.guide.take() {
                for bar in bars {
                    self.conn.destroy_window(bar)?;
                }
                self.conn.flush()?;
            }
            return Ok(());
        };
        let (x, y) = (x + i32::from(m.x), y + i32::from(m.y));
        let bars = match self.guide {
            Some(bars) => bars,
            None => {
                let bars = self.guide_windows(x, y)?;
                self.guide = Some(bars);
                bars
            }
        };
        for (bar, (bx, by, _, _)) in bars.into_iter().zip(guide_bars(x, y)) {
            self.conn.configure_window(
                bar,
                &xproto::ConfigureWindowAux::new()
                    .x(bx)
                    .y(by)
                    .stack_mode(xproto::StackMode::ABOVE),
            )?;
        }
        self.conn.flush()?;
        Ok(())
    }

    fn show(&mut self, shown: Option<(Indication, &str)>) -> anyhow::Result<()> {
        if shown.is_none() {
            self.guide(None)?;
        }
        match (shown, &mut self.indicator) {
            (None, None) => return Ok(()),
            (None, Some(ind)) => {
                self.conn.destroy_window(ind.window)?;
                self.indicator = None;
            }
            (Some((state, _)), Some(ind)) if ind.state == state => return Ok(()),
            // The bar is made anew for a new sentence: its width follows the text.
            (Some(_), Some(ind)) => {
                self.conn.destroy_window(ind.window)?;
                self.indicator = None;
                return self.show(shown);
            }
            (Some((state, sentence)), None) => {
                let window = self.conn.generate_id()?;
                let gc = self.conn.generate_id()?;
                // A font with every character of every language the agent speaks, if the
                // display has one; else `fixed` (Latin-1: other characters become '?').
                let font = self.conn.generate_id()?;
                let unicode = self
                    .conn
                    .open_font(
                        font,
                        b"-misc-fixed-medium-r-semicondensed--13-*-*-*-*-*-iso10646-1",
                    )?
                    .check()
                    .is_ok();
                let latin1 = !unicode && self.conn.open_font(font, b"fixed")?.check().is_ok();
                let text: Vec<xproto::Char2b> = format!(" {sentence} ")
                    .chars()
                    .map(|c| match u16::try_from(u32::from(c)) {
                        Ok(code) if unicode || code < 256 => code,
                        _ => u16::from(b'?'),
                    })
                    .map(|code| xproto::Char2b {
                        byte1: (code >> 8) as u8,
                        byte2: code as u8,
                    })
                    .collect();
                let m = &self.monitor;
                let width = indicator_width(text.len()).min(m.width);
                self.conn.create_window(
                    x11rb::COPY_DEPTH_FROM_PARENT,
                    window,
                    self.root,
                    m.x + (m.width.saturating_sub(width) / 2) as i16,
                    m.y,
                    width,
                    20,
                    0,
                    WindowClass::INPUT_OUTPUT,
                    x11rb::COPY_FROM_PARENT,
                    &CreateWindowAux::new()
                        .override_redirect(1)
                        .background_pixel(0)
                        .event_mask(EventMask::EXPOSURE),
                )?;
                let aux = if unicode || latin1 {
                    CreateGCAux::new().font(font)
                } else {
                    CreateGCAux::new()
                };
                self.conn.create_gc(gc, window, &aux)?;
                self.conn.map_window(window)?;
                self.indicator = Some(IndicatorWindow {
                    window,
                    gc,
                    state,
                    width,
                    text,
                });
            }
        }
        if let Some(ind) = &self.indicator {
            // Keep it above whatever the customer raises.
            self.conn.configure_window(
                ind.window,
                &xproto::ConfigureWindowAux::new().stack_mode(xproto::StackMode::ABOVE),
            )?;
        }
        self.draw_indicator()?;
        self.conn.get_input_focus()?.reply()?;
        Ok(())
    }
}
