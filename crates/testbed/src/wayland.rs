//! A headless GNOME Wayland session of the caller's own, for screen sharing through the
//! xdg-desktop-portal: its own runtime folder and D-Bus session bus, then mutter (headless, one
//! virtual monitor), PipeWire, WirePlumber, the GNOME portal back end and the portal itself,
//! each started once the one before is ready, all stopped when dropped.
//!
//! The test plays the customer through mutter's own `org.gnome.Mutter.RemoteDesktop` and
//! `ScreenCast` D-Bus interfaces (no dialog): a mouse and keyboard to answer the portal's dialog
//! with, as a customer would, and a reference picture of the screen (pointer hidden).

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use pipewire as pw;
use pw::spa;
use spa::pod::{ChoiceValue, Object, Pod, Property, Value};
use spa::utils::{Choice, ChoiceEnum, ChoiceFlags, Id, SpaTypes};
use zbus::zvariant::{OwnedObjectPath, Value as Variant};

/// How long each service may take to be ready.
const READY: Duration = Duration::from_secs(30);

/// The Wayland socket's name in the session's runtime folder.
const DISPLAY_NAME: &str = "wayland-ponte";

/// The connector of mutter's (first) headless virtual monitor.
const CONNECTOR: &str = "Meta-0";

/// The connector of the second one.
const SECOND_CONNECTOR: &str = "Meta-1";

/// A running headless GNOME session, stopped (every process it started) when dropped.
pub struct WaylandSession {
    dir: PathBuf,
    /// The session's services, in the order they started.
    children: Vec<(&'static str, Child)>,
    env: Vec<(&'static str, String)>,
    bus: String,
}

impl WaylandSession {
    /// Starts a session whose one monitor is `width`×`height`. Panics, naming the service and
    /// its log, when one does not come up within 30 s.
    pub fn start(width: u16, height: u16) -> WaylandSession {
        WaylandSession::start_with(width, height, Setup::default())
    }

    /// Starts a session like [`WaylandSession::start`] whose portal offers screen casting but
    /// no RemoteDesktop, as on wlroots compositors and COSMIC: a view-only desktop.
    pub fn start_view_only(width: u16, height: u16) -> WaylandSession {
        let setup = Setup {
            remote_desktop: false,
            ..Setup::default()
        };
        WaylandSession::start_with(width, height, setup)
    }

    /// Starts a session like [`WaylandSession::start`] with Xwayland, so X programs draw on
    /// the Wayland screen ([`WaylandSession::x_connect`]); as a customer's X programs do.
    pub fn start_with_xwayland(width: u16, height: u16) -> WaylandSession {
        let setup = Setup {
            xwayland: true,
            ..Setup::default()
        };
        WaylandSession::start_with(width, height, setup)
    }

    /// Starts a session like [`WaylandSession::start`] with a second monitor of
    /// `second`'s size (connector `Meta-1`, right of the first).
    pub fn start_with_second_monitor(width: u16, height: u16, second: (u16, u16)) -> WaylandSession {
        let setup = Setup {
            second_monitor: Some(second),
            ..Setup::default()
        };
        WaylandSession::start_with(width, height, setup)
    }

    fn start_with(width: u16, height: u16, setup: Setup) -> WaylandSession {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("ponte-wayland-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("log")).unwrap();
        std::fs::create_dir_all(dir.join("portals")).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        // Only the GNOME back end, or the portal offers interfaces no running back end serves.
        let portal = std::fs::read_to_string("/usr/share/xdg-desktop-portal/portals/gnome.portal")
            .expect("xdg-desktop-portal-gnome is needed for the Wayland tests");
        let portal = if setup.remote_desktop {
            portal
        } else {
            portal.replace("org.freedesktop.impl.portal.RemoteDesktop;", "")
        };
        std::fs::write(dir.join("portals/gnome.portal"), portal).unwrap();
        let text = |p: &Path| p.to_str().unwrap().to_owned();
        let mut env = vec![
            ("XDG_RUNTIME_DIR", text(&dir)),
            ("XDG_SESSION_TYPE", "wayland".into()),
            ("XDG_CURRENT_DESKTOP", "GNOME".into()),
            ("XDG_SESSION_DESKTOP", "gnome".into()),
            ("XDG_DESKTOP_PORTAL_DIR", text(&dir.join("portals"))),
            ("WAYLAND_DISPLAY", DISPLAY_NAME.into()),
            // The portal's GTK dialog: software rendering, no accessibility bus, no dconf.
            ("GDK_BACKEND", "wayland".into()),
            ("GSK_RENDERER", "cairo".into()),
            ("GTK_A11Y", "none".into()),
            ("NO_AT_BRIDGE", "1".into()),
            ("GSETTINGS_BACKEND", "memory".into()),
        ];
        let mut session = WaylandSession {
            dir,
            children: Vec::new(),
            env: env.clone(),
            bus: String::new(),
        };
        session.bus = session.start_bus();
        env.push(("DBUS_SESSION_BUS_ADDRESS", session.bus.clone()));
        session.env = env;
        session.start_services(width, height, &setup);
        session
    }

    /// The session bus, ready when it has printed its address.
    fn start_bus(&mut self) -> String {
        let address = format!("unix:path={}", self.dir.join("bus").display());
        let mut child = self
            .command("dbus-daemon")
            .args(["--session", "--nofork", "--nopidfile", "--print-address=1"])
            .arg(format!("--address={address}"))
            .stdout(Stdio::piped())
            .stderr(self.log("dbus"))
            .spawn()
            .expect("dbus-daemon is needed for the Wayland tests");
        let stdout = child.stdout.take().unwrap();
        self.children.push(("dbus-daemon", child));
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        assert!(!line.trim().is_empty(), "dbus-daemon did not start");
        line.trim().to_owned()
    }

    fn start_services(&mut self, width: u16, height: u16, setup: &Setup) {
        let xwayland = setup.xwayland;
        let size = format!("{width}x{height}");
        let second = setup.second_monitor.map(|(w, h)| format!("{w}x{h}"));
        let socket = self.dir.join(DISPLAY_NAME);
        let display = format!("--wayland-display={DISPLAY_NAME}");
        let mut args = vec!["--headless", "--virtual-monitor", &size, "--wayland", &display];
        if let Some(second) = &second {
            args.extend(["--virtual-monitor", second]);
        }
        if !xwayland {
            args.push("--no-x11");
        }
        self.spawn("mutter", "mutter", &args);
        self.ready("mutter", |s| {
            s.has_name("org.gnome.Mutter.RemoteDesktop")
                && s.has_name("org.gnome.Mutter.ScreenCast")
                && socket.exists()
                && (!xwayland || s.xwayland().is_some())
        });
        self.spawn("pipewire", "pipewire", &[]);
        self.ready("pipewire", |s| {
            s.succeeds("pw-cli", &["-r", "pipewire-0", "info", "0"])
        });
        self.spawn("wireplumber", "wireplumber", &[]);
        self.ready("wireplumber", |s| {
            let out = s.command("pw-cli").args(["ls", "Metadata"]).output();
            out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("metadata.name = \"default\""))
        });
        self.spawn(
            "xdg-desktop-portal-gnome",
            "/usr/libexec/xdg-desktop-portal-gnome",
            &[],
        );
        self.ready("xdg-desktop-portal-gnome", |s| {
            s.has_name("org.freedesktop.impl.portal.desktop.gnome")
        });
        self.spawn("xdg-desktop-portal", "/usr/libexec/xdg-desktop-portal", &["-r"]);
        self.ready("xdg-desktop-portal", |s| {
            s.has_name("org.freedesktop.portal.Desktop")
        });
    }

    fn log(&self, name: &str) -> std::fs::File {
        std::fs::File::create(self.dir.join("log").join(format!("{name}.log"))).unwrap()
    }

    fn spawn(&mut self, name: &'static str, program: &str, args: &[&str]) {
        let log = self.log(name);
        let child = self
            .command(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{program} is needed for the Wayland tests: {e}"));
        self.children.push((name, child));
    }

    /// Polls `ready` every 50 ms until it holds; panics if the last service exited or took too
    /// long.
    fn ready(&mut self, name: &str, ready: impl Fn(&WaylandSession) -> bool) {
        let deadline = Instant::now() + READY;
        while !ready(self) {
            let (_, child) = self.children.last_mut().unwrap();
            let log = self.dir.join("log");
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "{name} exited ({status}) before it was ready; see {}",
                    log.display()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{name} not ready after {READY:?}; see {}",
                log.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn succeeds(&self, program: &str, args: &[&str]) -> bool {
        self.command(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn has_name(&self, name: &str) -> bool {
        let out = self
            .command("dbus-send")
            .args([
                "--session",
                "--print-reply",
                "--dest=org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus.NameHasOwner",
            ])
            .arg(format!("string:{name}"))
            .output();
        out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("boolean true"))
    }

    /// A command that runs inside the session (its environment, no X display).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        self.apply(&mut cmd);
        cmd
    }

    /// Puts `cmd` inside the session: its environment, and no X display.
    pub fn apply(&self, cmd: &mut Command) {
        cmd.env_remove("DISPLAY")
            .envs(self.env.iter().map(|(k, v)| (k, v)));
    }

    /// The session's runtime folder (`XDG_RUNTIME_DIR`), where its logs are too (`log/`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The X display mutter's Xwayland serves and its authority file, once it said so.
    fn xwayland(&self) -> Option<(u16, PathBuf)> {
        let log = std::fs::read_to_string(self.dir.join("log/mutter.log")).ok()?;
        let (_, rest) = log.split_once("Using public X11 display :")?;
        let number = rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()?;
        let authority = std::fs::read_dir(&self.dir)
            .ok()?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(".mutter-Xwaylandauth."))
            })?;
        Some((number, authority))
    }

    /// A connection to the session's Xwayland (a session started with
    /// [`WaylandSession::start_with_xwayland`]), authorised with mutter's cookie.
    pub fn x_connect(&self) -> x11rb::rust_connection::RustConnection {
        let (number, authority) = self.xwayland().expect("a session with Xwayland");
        let cookie = mit_cookie(&std::fs::read(authority).unwrap()).expect("an MIT-MAGIC-COOKIE-1");
        let socket = std::os::unix::net::UnixStream::connect(format!("/tmp/.X11-unix/X{number}")).unwrap();
        let (stream, _) = x11rb::rust_connection::DefaultStream::from_unix_stream(socket).unwrap();
        x11rb::rust_connection::RustConnection::connect_to_stream_with_auth_info(
            stream,
            0,
            b"MIT-MAGIC-COOKIE-1".to_vec(),
            cookie,
        )
        .unwrap()
    }

    /// The `node.name` of every PipeWire node in the session now (a screen cast's consumer
    /// among them while it streams), from `pw-dump`.
    pub fn pipewire_nodes(&self) -> Vec<String> {
        let out = self
            .command("pw-dump")
            .stderr(Stdio::null())
            .output()
            .expect("pw-dump (pipewire-bin) is needed for the Wayland tests");
        let objects: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        objects
            .as_array()
            .into_iter()
            .flatten()
            .filter(|o| o["type"] == "PipeWire:Interface:Node")
            .filter_map(|o| o["info"]["props"]["node.name"].as_str().map(str::to_owned))
            .collect()
    }

    /// The object paths of the xdg-desktop-portal's open sessions (every client's): they are
    /// `session/SENDER/TOKEN` under the portal's object.
    pub fn portal_sessions(&self) -> Vec<String> {
        let root = "/org/freedesktop/portal/desktop/session";
        self.object_children(root)
            .into_iter()
            .flat_map(|sender| {
                let folder = format!("{root}/{sender}");
                self.object_children(&folder)
                    .into_iter()
                    .map(move |token| format!("{folder}/{token}"))
            })
            .collect()
    }

    /// The child nodes of the portal's object `path`, as it introspects them.
    fn object_children(&self, path: &str) -> Vec<String> {
        let out = self
            .command("dbus-send")
            .args([
                "--session",
                "--print-reply",
                "--dest=org.freedesktop.portal.Desktop",
                path,
                "org.freedesktop.DBus.Introspectable.Introspect",
            ])
            .stderr(Stdio::null())
            .output()
            .expect("dbus-send is needed for the Wayland tests");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|line| line.trim().strip_prefix("<node name=\""))
            .filter_map(|rest| rest.split('"').next())
            .map(str::to_owned)
            .collect()
    }

    /// Stops the session's service `name` (`"pipewire"`, say), as a crash would.
    pub fn kill(&mut self, name: &str) {
        for (_, child) in self.children.iter_mut().filter(|(n, _)| *n == name) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The test's own mouse, keyboard and view of the screen, through mutter's D-Bus API.
    pub async fn customer(&self) -> Customer {
        Customer::start(self, CONNECTOR).await
    }

    /// Like [`WaylandSession::customer`], with the view of the second monitor (see
    /// [`WaylandSession::start_with_second_monitor`]); the pointer is absolute to it.
    pub async fn customer_on_second_monitor(&self) -> Customer {
        Customer::start(self, SECOND_CONNECTOR).await
    }
}

impl Drop for WaylandSession {
    fn drop(&mut self) {
        // In reverse order, each asked to stop, then killed if it did not within 3 s.
        for (_, child) in self.children.iter_mut().rev() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(3);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "the Wayland session's logs are kept in {}",
                self.dir.join("log").display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// How a session is set up.
struct Setup {
    /// The portal offers RemoteDesktop.
    remote_desktop: bool,
    /// mutter runs Xwayland.
    xwayland: bool,
    /// The size of a second virtual monitor, if there is one.
    second_monitor: Option<(u16, u16)>,
}

impl Default for Setup {
    fn default() -> Setup {
        Setup {
            remote_desktop: true,
            xwayland: false,
            second_monitor: None,
        }
    }
}

/// The first MIT-MAGIC-COOKIE-1 in an X authority file (entries of family, address, display
/// number, name and data, each but the family a big-endian u16 length and its bytes).
fn mit_cookie(file: &[u8]) -> Option<Vec<u8>> {
    let mut rest = file;
    let field = |rest: &mut &[u8]| -> Option<Vec<u8>> {
        let (len, tail) = rest.split_first_chunk::<2>()?;
        let len = usize::from(u16::from_be_bytes(*len));
        let (value, tail) = tail.split_at_checked(len)?;
        *rest = tail;
        Some(value.to_vec())
    };
    while !rest.is_empty() {
        rest = rest.get(2..)?; // family
        let _address = field(&mut rest)?;
        let _number = field(&mut rest)?;
        let name = field(&mut rest)?;
        let data = field(&mut rest)?;
        if name == b"MIT-MAGIC-COOKIE-1" {
            return Some(data);
        }
    }
    None
}

/// A picture of the screen: `width`×`height` pixels, each `0xRRGGBB`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Picture {
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
    /// The pixels, row by row.
    pub pixels: Vec<u32>,
}

const RD: &str = "org.gnome.Mutter.RemoteDesktop";
const SC: &str = "org.gnome.Mutter.ScreenCast";

/// The customer's side of the session: a mutter remote-desktop session with a screen cast of
/// the monitor. It lives as long as this value, so the seat keeps its pointer and keyboard.
pub struct Customer {
    session: zbus::Proxy<'static>,
    stream_path: OwnedObjectPath,
    screen: Screen,
}

impl Customer {
    async fn start(wayland: &WaylandSession, connector: &str) -> Customer {
        let bus = zbus::connection::Builder::address(wayland.bus.as_str())
            .unwrap()
            .build()
            .await
            .unwrap();
        let rd = zbus::Proxy::new(&bus, RD, "/org/gnome/Mutter/RemoteDesktop", RD)
            .await
            .unwrap();
        let path: OwnedObjectPath = rd.call("CreateSession", &()).await.unwrap();
        let session = zbus::Proxy::new(&bus, RD, path, format!("{RD}.Session"))
            .await
            .unwrap();
        let id: String = session.get_property("SessionId").await.unwrap();
        let sc = zbus::Proxy::new(&bus, SC, "/org/gnome/Mutter/ScreenCast", SC)
            .await
            .unwrap();
        let link = HashMap::from([("remote-desktop-session-id", Variant::from(id))]);
        let sc_path: OwnedObjectPath = sc.call("CreateSession", &(link,)).await.unwrap();
        let sc_session = zbus::Proxy::new(&bus, SC, sc_path, format!("{SC}.Session"))
            .await
            .unwrap();
        // Cursor hidden (0): the screen as the agent's stream shows it.
        let record = HashMap::from([("cursor-mode", Variant::U32(0))]);
        let stream_path: OwnedObjectPath = sc_session
            .call("RecordMonitor", &(connector, record))
            .await
            .unwrap();
        let stream = zbus::Proxy::new(&bus, SC, stream_path.clone(), format!("{SC}.Stream"))
            .await
            .unwrap();
        let mut added = stream.receive_signal("PipeWireStreamAdded").await.unwrap();
        session.call::<_, _, ()>("Start", &()).await.unwrap();
        let message = tokio::time::timeout(READY, added.next()).await.unwrap().unwrap();
        let (node,): (u32,) = message.body().deserialize().unwrap();
        let socket = std::os::unix::net::UnixStream::connect(wayland.dir.join("pipewire-0")).unwrap();
        let customer = Customer {
            session,
            stream_path,
            screen: Screen::start(socket.into(), node),
        };
        customer.warm_up().await;
        customer
    }

    /// Mutter makes its virtual pointer and keyboard on their first event, and only then do
    /// the programs on the screen bind them: the first real event would be lost. Make both
    /// now with events that change nothing, and give the programs a moment.
    async fn warm_up(&self) {
        self.session
            .call::<_, _, ()>("NotifyPointerMotionRelative", &(0.0f64, 0.0f64))
            .await
            .unwrap();
        self.keys(&[0xffe1]).await; // Shift_L
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    /// Presses the keys (X keysyms) in order, then releases them in reverse: `[0xffe9, 0x73]`
    /// is Alt+s.
    pub async fn keys(&self, combo: &[u32]) {
        for sym in combo {
            self.key(*sym, true).await;
        }
        for sym in combo.iter().rev() {
            self.key(*sym, false).await;
        }
    }

    async fn key(&self, keysym: u32, pressed: bool) {
        self.session
            .call::<_, _, ()>("NotifyKeyboardKeysym", &(keysym, pressed))
            .await
            .unwrap();
    }

    /// A left click at (`x`, `y`) on the monitor.
    pub async fn click(&self, x: f64, y: f64) {
        self.session
            .call::<_, _, ()>("NotifyPointerMotionAbsolute", &(self.stream_path.as_str(), x, y))
            .await
            .unwrap();
        for pressed in [true, false] {
            // BTN_LEFT
            self.session
                .call::<_, _, ()>("NotifyPointerButton", &(0x110i32, pressed))
                .await
                .unwrap();
        }
    }

    /// The screen now, once it held still for `still` (at most 30 s).
    pub async fn picture(&self, still: Duration) -> Picture {
        let screen = self.screen.shared.clone();
        tokio::task::spawn_blocking(move || screen.still(still, READY))
            .await
            .unwrap()
    }

    /// Waits until the screen differs from `before` and then holds still for 300 ms (a window
    /// appeared, the portal's dialog say); the picture then.
    pub async fn changed_from(&self, before: &Picture, limit: Duration) -> Picture {
        let screen = self.screen.shared.clone();
        let before = before.clone();
        tokio::task::spawn_blocking(move || {
            screen.until(limit, |p| *p != before);
            screen.still(Duration::from_millis(300), READY)
        })
        .await
        .unwrap()
    }
}

impl Drop for Customer {
    fn drop(&mut self) {
        // The seat's devices go when the session stops; mutter stops it when our bus
        // connection closes, so nothing more to do here than end the stream.
        self.screen.stop();
    }
}

#[derive(Default)]
struct Frames {
    latest: Mutex<(u64, Option<Picture>)>,
    arrived: Condvar,
}

impl Frames {
    fn until(&self, limit: Duration, done: impl Fn(&Picture) -> bool) {
        let deadline = Instant::now() + limit;
        let mut latest = self.latest.lock().unwrap();
        while !latest.1.as_ref().is_some_and(&done) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "the screen did not change as expected within {limit:?}"
            );
            latest = self.arrived.wait_timeout(latest, left).unwrap().0;
        }
    }

    /// The picture once no new one came for `still`.
    fn still(&self, still: Duration, limit: Duration) -> Picture {
        let deadline = Instant::now() + limit;
        let mut latest = self.latest.lock().unwrap();
        loop {
            let seen = latest.0;
            latest = self.arrived.wait_timeout(latest, still).unwrap().0;
            if latest.0 == seen && latest.1.is_some() {
                return latest.1.clone().unwrap();
            }
            assert!(Instant::now() < deadline, "the screen never held still");
        }
    }
}

/// Mutter's screen cast of the monitor, received on a thread of its own.
struct Screen {
    shared: Arc<Frames>,
    stop: Option<pw::channel::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Screen {
    fn start(fd: OwnedFd, node: u32) -> Screen {
        let shared = Arc::new(Frames::default());
        let (stop, stopped) = pw::channel::channel();
        let thread = std::thread::spawn({
            let shared = shared.clone();
            move || receive(fd, node, stopped, &shared)
        });
        Screen {
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct State {
    info: spa::param::video::VideoInfoRaw,
    shared: Arc<Frames>,
}

/// Receives BGRx frames of `node` until told to stop.
fn receive(fd: OwnedFd, node: u32, stopped: pw::channel::Receiver<()>, shared: &Arc<Frames>) {
    pw::init();
    let mainloop = pw::main_loop::MainLoopRc::new(None).unwrap();
    let context = pw::context::ContextRc::new(&mainloop, None).unwrap();
    let core = context.connect_fd_rc(fd, None).unwrap();
    let stream = pw::stream::StreamBox::new(
        &core,
        "ponte-testbed",
        pw::properties::properties! {
            *pw::keys::MEDIA_TYPE => "Video",
            *pw::keys::MEDIA_CATEGORY => "Capture",
            *pw::keys::MEDIA_ROLE => "Screen",
        },
    )
    .unwrap();
    let state = State {
        info: Default::default(),
        shared: shared.clone(),
    };
    let _listener = stream
        .add_local_listener_with_user_data(state)
        .param_changed(|_, st, id, param| {
            if let Some(param) = param
                && id == spa::param::ParamType::Format.as_raw()
            {
                let _ = st.info.parse(param);
            }
        })
        .process(|stream, st| {
            let mut newest = None;
            while let Some(buffer) = stream.dequeue_buffer() {
                newest = Some(buffer);
            }
            let Some(mut buffer) = newest else { return };
            let Some(data) = buffer.datas_mut().first_mut() else {
                return;
            };
            let (offset, size) = (data.chunk().offset() as usize, data.chunk().size() as usize);
            let stride = usize::try_from(data.chunk().stride()).unwrap_or(0);
            let (w, h) = (st.info.size().width as usize, st.info.size().height as usize);
            let Some(bytes) = data.data() else { return };
            if size == 0 || w == 0 || h == 0 || stride < w * 4 {
                return;
            }
            let Some(bytes) = bytes.get(offset..offset + (h - 1) * stride + w * 4) else {
                return;
            };
            let pixels = (0..h)
                .flat_map(|y| bytes[y * stride..][..w * 4].chunks_exact(4))
                .map(|p| u32::from(p[2]) << 16 | u32::from(p[1]) << 8 | u32::from(p[0]))
                .collect();
            let picture = Picture {
                width: w as u16,
                height: h as u16,
                pixels,
            };
            let mut latest = st.shared.latest.lock().unwrap();
            *latest = (latest.0 + 1, Some(picture));
            st.shared.arrived.notify_all();
        })
        .register()
        .unwrap();
    let format = serialize(Object {
        type_: SpaTypes::ObjectParamFormat.as_raw(),
        id: spa::param::ParamType::EnumFormat.as_raw(),
        properties: vec![
            Property::new(
                spa::sys::SPA_FORMAT_mediaType,
                Value::Id(Id(spa::sys::SPA_MEDIA_TYPE_video)),
            ),
            Property::new(
                spa::sys::SPA_FORMAT_mediaSubtype,
                Value::Id(Id(spa::sys::SPA_MEDIA_SUBTYPE_raw)),
            ),
            Property::new(
                spa::sys::SPA_FORMAT_VIDEO_format,
                Value::Choice(ChoiceValue::Id(Choice(
                    ChoiceFlags::empty(),
                    ChoiceEnum::Enum {
                        default: Id(spa::sys::SPA_VIDEO_FORMAT_BGRx),
                        alternatives: vec![
                            Id(spa::sys::SPA_VIDEO_FORMAT_BGRx),
                            Id(spa::sys::SPA_VIDEO_FORMAT_BGRA),
                        ],
                    },
                ))),
            ),
        ],
    });
    let mut params = [Pod::from_bytes(&format).unwrap()];
    stream
        .connect(
            spa::utils::Direction::Input,
            Some(node),
            pw::stream::StreamFlags::AUTOCONNECT | pw::stream::StreamFlags::MAP_BUFFERS,
            &mut params,
        )
        .unwrap();
    let ml = mainloop.clone();
    let _stop = stopped.attach(mainloop.loop_(), move |()| ml.quit());
    mainloop.run();
    let _ = stream.disconnect();
}

fn serialize(object: Object) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    spa::pod::serialize::PodSerializer::serialize(&mut out, &Value::Object(object)).unwrap();
    out.into_inner()
}
