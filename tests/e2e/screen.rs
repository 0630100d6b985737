//! Screen sharing and remote control end to end, on Xvfb displays the tests start themselves:
//! the agent shares one, the viewer's window opens on another, and the tests draw on and
//! query both X servers directly to check what arrived.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use x11rb::connection::Connection;
use x11rb::protocol::Event;
use x11rb::protocol::randr::ConnectionExt as _;
use x11rb::protocol::xproto::{
    AtomEnum, ConnectionExt as _, CreateGCAux, CreateWindowAux, EventMask, InputFocus, Rectangle, WindowClass,
};
use x11rb::protocol::xtest::ConnectionExt as _;
use x11rb::rust_connection::RustConnection;

use crate::display;
use crate::world;

use ponte_testbed::Xvfb;

use display::*;
use world::*;

pub(crate) fn read_png(path: &Path) -> (u16, u16, Vec<u32>) {
    let decoder = png::Decoder::new(BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    let pixels = buf[..info.buffer_size()]
        .chunks_exact(3)
        .map(|p| u32::from(p[0]) << 16 | u32::from(p[1]) << 8 | u32::from(p[2]))
        .collect();
    (info.width as u16, info.height as u16, pixels)
}

/// A viewer driven line by line on stdin (`--batch -`), its messages read from stderr.
pub(crate) struct Scripted {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
}

impl Scripted {
    pub(crate) fn start(w: &World, id: &str, code: &str, display: Option<&str>) -> Scripted {
        let mut cmd = w.command("ponte-viewer");
        cmd.args(["connect", id, "--code", code, "--batch", "-"]);
        match display {
            Some(d) => cmd.env("DISPLAY", d),
            None => cmd.env_remove("DISPLAY"),
        };
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var_os("PONTE_TEST_LOGS").is_some() {
                    eprintln!("viewer: {line}");
                }
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Scripted { child, stdin, lines }
    }

    pub(crate) fn send(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
    }

    /// The next stderr line containing `needle`; a failed command fails the test.
    pub(crate) fn expect(&self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("the viewer never said {needle:?}"));
            if line.contains(needle) {
                return line;
            }
            assert!(!line.starts_with("[ponte] line"), "a command failed: {line}");
        }
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// "N tiles in M frames" from a screenshot line.
fn tiles(line: &str) -> u64 {
    let before = line.split(" tiles in ").next().unwrap();
    before.rsplit(' ').next().unwrap().parse().unwrap()
}

fn pattern(x: usize, y: usize) -> u32 {
    // Smooth areas and sharp edges, like a desktop; every channel varies.
    let block = if (x / 40 + y / 30).is_multiple_of(3) {
        0x20_40_80
    } else {
        0
    };
    ((x as u32 * 3) & 0xff) << 16 | ((y as u32 * 5) & 0xff) << 8 | ((x ^ y) as u32 & 0xff) ^ block
}

#[tokio::test(flavor = "multi_thread")]
async fn screenshots_match_the_display_and_only_changed_tiles_follow() {
    let x = Xvfb::start(640, 480);
    let conn = x.connect();
    let window = draw(&conn, 640, 480, pattern);
    let w = World::new().await;
    let (agent, id, code) = w.agent(&["--allow", "screen", "--display", &x.display]);
    let mut viewer = Scripted::start(&w, &id, &code, None);

    let first = w.path("first.png");
    viewer.send(&format!("screenshot {}", first.display()));
    let line = viewer.expect("saved");
    assert!(
        tiles(&line) >= 80,
        "the first frames cover all 10×8 tiles: {line}"
    );
    let started = agent.event("activity", WAIT);
    assert!(
        started["text"]
            .as_str()
            .unwrap()
            .contains("screen sharing started"),
        "{started}"
    );
    assert_eq!(
        read_png(&first),
        dump(&conn),
        "the screenshot is the display, pixel for pixel"
    );

    // A 10×10 square inside one tile.
    let gc = conn.generate_id().unwrap();
    conn.create_gc(gc, window, &CreateGCAux::new().foreground(0x00ff00))
        .unwrap();
    let square = Rectangle {
        x: 100,
        y: 100,
        width: 10,
        height: 10,
    };
    conn.poly_fill_rectangle(window, gc, &[square]).unwrap();
    sync(&conn);
    let second = w.path("second.png");
    viewer.send(&format!("screenshot {}", second.display()));
    let line = viewer.expect("saved");
    assert_eq!(tiles(&line), 1, "only the changed tile is sent: {line}");
    let (width, _, pixels) = read_png(&second);
    assert_eq!(
        pixels[105 * usize::from(width) + 105],
        0x00ff00,
        "the change arrived"
    );
    assert_eq!(read_png(&second), dump(&conn));
}

/// The keys a window received, as text.
fn typed(conn: &RustConnection, events: &[Event]) -> String {
    let setup = conn.setup();
    let (min, max) = (setup.min_keycode, setup.max_keycode);
    let map = conn
        .get_keyboard_mapping(min, max - min + 1)
        .unwrap()
        .reply()
        .unwrap();
    let per = usize::from(map.keysyms_per_keycode);
    let mut shift = false;
    let mut text = String::new();
    for e in events {
        match e {
            Event::KeyPress(k) | Event::KeyRelease(k) => {
                let syms = &map.keysyms[usize::from(k.detail - min) * per..][..per];
                let pressed = matches!(e, Event::KeyPress(_));
                match syms[0] {
                    0xffe1 | 0xffe2 => shift = pressed,
                    _ if pressed => {
                        let sym = if shift && per > 1 && syms[1] != 0 {
                            syms[1]
                        } else {
                            syms[0]
                        };
                        text.push(char::from_u32(sym).unwrap_or('?'));
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    text
}

/// Events for `window` until `done` says enough, or 10 s.
fn collect(conn: &RustConnection, done: impl Fn(&[Event]) -> bool) -> Vec<Event> {
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && !done(&events) {
        match conn.poll_for_event().unwrap() {
            Some(e) => events.push(e),
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    events
}

#[tokio::test(flavor = "multi_thread")]
async fn click_and_type_reach_the_display_only_with_control() {
    let x = Xvfb::start(640, 480);
    let conn = x.connect();
    let window = conn.generate_id().unwrap();
    conn.create_window(
        24,
        window,
        root(&conn),
        50,
        50,
        300,
        200,
        0,
        WindowClass::INPUT_OUTPUT,
        0,
        &CreateWindowAux::new()
            .override_redirect(1)
            .event_mask(EventMask::KEY_PRESS | EventMask::KEY_RELEASE | EventMask::BUTTON_PRESS),
    )
    .unwrap();
    conn.map_window(window).unwrap();
    conn.set_input_focus(InputFocus::POINTER_ROOT, window, 0u32)
        .unwrap();
    sync(&conn);

    let w = World::new().await;
    let (agent, id, code) = w.agent(&["--allow", "control", "--display", &x.display]);
    let out = w.viewer(&id, &code, "click 120 130\ntype Hi there, 1+1=2!\n");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let events = collect(&conn, |e| typed(&conn, e).len() >= 17);
    let click = events.iter().find_map(|e| match e {
        Event::ButtonPress(b) => Some((b.detail, b.root_x, b.root_y, b.event_x, b.event_y)),
        _ => None,
    });
    assert_eq!(
        click,
        Some((1, 120, 130, 70, 80)),
        "the left click landed in the window"
    );
    assert_eq!(typed(&conn, &events), "Hi there, 1+1=2!");
    let p = conn.query_pointer(root(&conn)).unwrap().reply().unwrap();
    assert_eq!((p.root_x, p.root_y), (120, 130));
    let activity = agent.event("activity", WAIT);
    assert!(
        activity["text"]
            .as_str()
            .unwrap()
            .contains("pointer to (120, 130)"),
        "{activity}"
    );
    drop(agent);

    // View only: refused, logged, and nothing moves.
    let (agent, id, code) = w.agent(&["--allow", "screen", "--display", &x.display]);
    let out = w.viewer(&id, &code, "click 10 10\n");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("has not allowed 'control'"), "{stderr}");
    let refused = agent.event("activity", WAIT);
    assert_eq!(refused["kind"], "refused");
    assert!(
        refused["text"].as_str().unwrap().contains("mouse and keyboard"),
        "{refused}"
    );
    let p = conn.query_pointer(root(&conn)).unwrap().reply().unwrap();
    assert_eq!((p.root_x, p.root_y), (120, 130), "the pointer did not move");
}

/// Top-level windows on `conn` whose title contains `needle`, with their geometry.
fn window_titled(conn: &RustConnection, needle: &str) -> Option<(String, i16, i16, u16, u16)> {
    let net_wm_name = conn
        .intern_atom(false, b"_NET_WM_NAME")
        .unwrap()
        .reply()
        .unwrap()
        .atom;
    let tree = conn.query_tree(root(conn)).unwrap().reply().unwrap();
    for child in tree.children {
        for property in [net_wm_name, AtomEnum::WM_NAME.into()] {
            let title = conn
                .get_property(false, child, property, AtomEnum::ANY, 0, 1024)
                .unwrap()
                .reply()
                .unwrap();
            let title = String::from_utf8_lossy(&title.value).into_owned();
            if title.contains(needle) {
                let g = conn.get_geometry(child).unwrap().reply().unwrap();
                return Some((title, g.x, g.y, g.width, g.height));
            }
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread")]
async fn the_viewer_window_shows_the_remote_screen_and_forwards_the_mouse() {
    let customer = Xvfb::start(640, 480);
    let assistant = Xvfb::start(1280, 720);
    let remote = customer.connect();
    // Red left half, blue right half: easy to find again after scaling.
    draw(
        &remote,
        640,
        480,
        |x, _| if x < 320 { 0xff0000 } else { 0x0000ff },
    );
    let local = assistant.connect();

    let w = World::new().await;
    let (_agent, id, code) = w.agent(&["--allow", "control", "--display", &customer.display]);
    let mut viewer = Scripted::start(&w, &id, &code, Some(&assistant.display));
    viewer.send("screen");
    viewer.expect("showing the customer's screen");

    let deadline = Instant::now() + WAIT;
    let (red, blue) = loop {
        let (_, _, pixels) = dump(&local);
        let count = |c: u32| pixels.iter().filter(|p| **p == c).count();
        let (red, blue) = (count(0xff0000), count(0x0000ff));
        if red > 50_000 && blue > 50_000 || Instant::now() > deadline {
            break (red, blue);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        red > 50_000 && blue > 50_000,
        "the window shows the remote screen: {red} red, {blue} blue"
    );
    let (title, x, y, width, height) = window_titled(&local, "Ponte").expect("a Ponte window");
    assert!(title.contains("CONTROL"), "{title}");

    // A click in the middle of the window lands in the middle of the customer's screen.
    let (cx, cy) = (x + (width / 2) as i16, y + (height / 2) as i16);
    local.xtest_fake_input(6, 0, 0, root(&local), cx, cy, 0).unwrap();
    local.xtest_fake_input(4, 1, 0, root(&local), 0, 0, 0).unwrap();
    local.xtest_fake_input(5, 1, 0, root(&local), 0, 0, 0).unwrap();
    sync(&local);
    let deadline = Instant::now() + Duration::from_secs(10);
    let at = loop {
        let p = remote.query_pointer(root(&remote)).unwrap().reply().unwrap();
        if (p.root_x - 320).abs() <= 2 && (p.root_y - 240).abs() <= 2 || Instant::now() > deadline {
            break (p.root_x, p.root_y);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        (at.0 - 320).abs() <= 2 && (at.1 - 240).abs() <= 2,
        "pointer at {at:?}"
    );

    // F2 (the viewer's own key, not forwarded) shows the statistics overlay: yellow figures
    // on a darkened box at the window's top left. Xvfb has no window manager to give the
    // window the keyboard, so xdotool does.
    let keys = std::process::Command::new("xdotool")
        .env("DISPLAY", &assistant.display)
        .args(["search", "--name", "^Ponte", "windowfocus", "--sync", "%1"])
        .args(["sleep", "0.3", "key", "F2"])
        .status()
        .expect("xdotool is needed (apt-get install xdotool)");
    assert!(keys.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let (lit, pixels) = loop {
        let (_, _, pixels) = dump(&local);
        let lit = pixels.iter().filter(|p| **p == 0xffff60).count();
        if lit > 200 || Instant::now() > deadline {
            break (lit, pixels);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let shot = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("viewer-overlay.png");
    let rgb: Vec<u8> = pixels
        .iter()
        .flat_map(|p| [(p >> 16) as u8, (p >> 8) as u8, *p as u8])
        .collect();
    let mut encoder = png::Encoder::new(std::fs::File::create(&shot).unwrap(), 1280, 720);
    encoder.set_color(png::ColorType::Rgb);
    encoder.write_header().unwrap().write_image_data(&rgb).unwrap();
    assert!(
        lit > 200,
        "the overlay's figures are drawn ({lit} pixels; {shot:?})"
    );
}

/// An Xvfb display of 640×480 with a second RandR monitor, `PONTE-RIGHT`, on its right half;
/// the display's monitors and the index of ours among them.
fn two_monitors(x: &Xvfb) -> (Vec<x11rb::protocol::randr::MonitorInfo>, usize) {
    let conn = x.connect();
    draw(&conn, 640, 480, pattern);
    let name = conn
        .intern_atom(false, b"PONTE-RIGHT")
        .unwrap()
        .reply()
        .unwrap()
        .atom;
    let right = x11rb::protocol::randr::MonitorInfo {
        name,
        primary: false,
        automatic: false,
        x: 320,
        y: 0,
        width: 320,
        height: 480,
        width_in_millimeters: 80,
        height_in_millimeters: 120,
        outputs: vec![],
    };
    conn.randr_set_monitor(root(&conn), right)
        .unwrap()
        .check()
        .unwrap();
    let monitors = conn
        .randr_get_monitors(root(&conn), true)
        .unwrap()
        .reply()
        .unwrap()
        .monitors;
    let index = monitors
        .iter()
        .position(|m| m.name == name)
        .expect("the monitor was added");
    assert_eq!(monitors.len(), 2, "Xvfb's own monitor and ours");
    (monitors, index)
}

/// Whether `shot` shows `monitor` of the display at `conn` (below the indicator's 20 rows).
fn shows(conn: &RustConnection, shot: &std::path::Path, monitor: &x11rb::protocol::randr::MonitorInfo) {
    let (width, height, pixels) = read_png(shot);
    assert_eq!((width, height), (monitor.width, monitor.height));
    let (_, _, whole) = dump(conn);
    let (w, h) = (usize::from(width), usize::from(height));
    let (ox, oy) = (monitor.x as usize, monitor.y as usize);
    for y in 20..h {
        for x in 0..w {
            assert_eq!(
                pixels[y * w + x],
                whole[(y + oy) * 640 + x + ox],
                "pixel ({x}, {y})"
            );
        }
    }
}

/// The customer pins one monitor with `--monitor`: it is shared alone, the assistant can
/// switch to no other, and positions are relative to it.
#[tokio::test(flavor = "multi_thread")]
async fn a_chosen_monitor_is_shared_alone_even_without_shared_memory() {
    let x = Xvfb::start_with(640, 480, &["-extension", "MIT-SHM"]);
    let (monitors, index) = two_monitors(&x);
    let conn = x.connect();
    let w = World::new().await;
    let display = ["--display", &x.display, "--monitor", &index.to_string()];
    let (_agent, id, code) = w.agent(&[&["--allow", "control"][..], &display].concat());
    let shot = w.path("right.png");
    let script = format!("screenshot {}\nclick 10 20\nmonitor\nmonitor 2\n", shot.display());
    let out = w.viewer(&id, &code, &script);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(stdout, " 1  PONTE-RIGHT  (shared)\n", "{stderr}");
    assert!(
        stderr.contains("shares 1 monitor(s); there is no monitor 2"),
        "{stderr}"
    );
    let (_, _, pixels) = read_png(&shot);
    // The top 20 rows showed the agent's indicator bar, removed when the viewer left.
    assert_eq!(
        pixels[5 * 320 + 300],
        0xd0_20_20,
        "the red 'control' indicator was on the screen"
    );
    shows(&conn, &shot, &monitors[index]);
    let p = conn.query_pointer(root(&conn)).unwrap().reply().unwrap();
    assert_eq!(
        (p.root_x, p.root_y),
        (330, 20),
        "positions are relative to the monitor"
    );
}

/// Without a pinned monitor the primary one is shared first; the assistant sees which
/// monitors there are and switches to another, whose pixels and pointer positions are then
/// its own.
#[tokio::test(flavor = "multi_thread")]
async fn the_assistant_switches_to_another_monitor_and_sees_and_clicks_there() {
    let x = Xvfb::start(640, 480);
    let (monitors, _) = two_monitors(&x);
    let conn = x.connect();
    let first = monitors.iter().position(|m| m.primary).unwrap_or(0);
    let other = 1 - first;
    let name = |i: usize| {
        let atom = conn.get_atom_name(monitors[i].name).unwrap().reply().unwrap();
        String::from_utf8(atom.name).unwrap()
    };
    let w = World::new().await;
    let (_agent, id, code) = w.agent(&["--allow", "control", "--display", &x.display]);
    let (first_shot, other_shot) = (w.path("first.png"), w.path("other.png"));
    let script = format!(
        "screenshot {}\nmonitor\nmonitor {}\nscreenshot {}\nclick 30 40\nmonitor 3\n",
        first_shot.display(),
        other + 1,
        other_shot.display()
    );
    let out = w.viewer(&id, &code, &script);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        stdout.contains(&format!("{:>2}  {}  (shared)\n", first + 1, name(first))),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{:>2}  {}\n", other + 1, name(other))),
        "{stdout}"
    );
    assert!(
        stderr.contains(&format!("now sharing monitor {}: {}", other + 1, name(other))),
        "{stderr}"
    );
    assert!(
        stderr.contains("shares 2 monitor(s); there is no monitor 3"),
        "{stderr}"
    );
    shows(&conn, &first_shot, &monitors[first]);
    shows(&conn, &other_shot, &monitors[other]);
    let p = conn.query_pointer(root(&conn)).unwrap().reply().unwrap();
    assert_eq!(
        (p.root_x, p.root_y),
        (monitors[other].x + 30, monitors[other].y + 40),
        "positions are relative to the monitor switched to: {stderr}"
    );
}

/// Reads screen updates until none arrives for `quiet`, applying them to `canvas`; returns how
/// many frames ended and the last pointer position and whether a pointer image came.
async fn drain(
    recv: &mut ponte_session::SecureRecv,
    canvas: &mut ponte_screen::Canvas,
    quiet: Duration,
) -> (Vec<u64>, Option<(i32, i32)>, bool) {
    use ponte_e2e::screen::ScreenUpdate;
    let (mut frames, mut pointer, mut shape) = (Vec::new(), None, false);
    while let Ok(update) = tokio::time::timeout(quiet, recv.expect::<ScreenUpdate>()).await {
        let update = update.unwrap();
        match &update {
            ScreenUpdate::FrameEnd { frame, .. } => frames.push(*frame),
            ScreenUpdate::Cursor { x, y } => pointer = Some((*x, *y)),
            ScreenUpdate::CursorShape { .. } => shape = true,
            _ => {}
        }
        canvas.apply(update).unwrap();
    }
    (frames, pointer, shape)
}

/// Drives the screen stream through the library: what a stalled viewer receives, the pointer,
/// and input on the stream without the `control` grant.
#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_viewer_gets_fewer_newer_frames_and_input_without_control_is_dropped() {
    use ponte_e2e::app::Request;
    use ponte_e2e::screen::{InputEvent, ScreenFeedback};

    let x = Xvfb::start(320, 240);
    let conn = x.connect();
    let window = draw(&conn, 320, 240, pattern);
    let w = World::new().await;
    let (agent, id, code) = w.agent(&["--allow", "screen", "--display", &x.display]);
    let viewer = w.assistant(&id, &code).await;
    let mut stream = viewer.request(&Request::Screen { max_fps: 60 }).await.unwrap();

    // The viewer acknowledges nothing while the screen keeps changing.
    let gc = conn.generate_id().unwrap();
    conn.create_gc(gc, window, &CreateGCAux::new()).unwrap();
    let paint = |color: u32| {
        let aux = x11rb::protocol::xproto::ChangeGCAux::new().foreground(color);
        conn.change_gc(gc, &aux).unwrap();
        let square = Rectangle {
            x: 100,
            y: 100,
            width: 50,
            height: 50,
        };
        conn.poly_fill_rectangle(window, gc, &[square]).unwrap();
        sync(&conn);
    };
    for step in 0..40u32 {
        paint(0x0010_2030 + step);
        std::thread::sleep(Duration::from_millis(20));
    }
    conn.warp_pointer(0u32, root(&conn), 0, 0, 0, 0, 200, 50).unwrap();
    sync(&conn);
    let mut canvas = ponte_screen::Canvas::new().unwrap();
    let (frames, pointer, shape) = drain(&mut stream.recv, &mut canvas, Duration::from_secs(1)).await;
    let most = ponte_screen::MAX_IN_FLIGHT as u64;
    assert_eq!(
        frames,
        (1..=most).collect::<Vec<_>>(),
        "at most {most} unacknowledged frames, however much changed"
    );
    assert_eq!(pointer, Some((200, 50)), "the pointer still follows");
    assert!(shape, "the pointer's image was sent");

    // Acknowledged: the next frame is the newest picture, not the backlog.
    stream
        .send
        .send(&ScreenFeedback::Ack { frame: most })
        .await
        .unwrap();
    let (frames, _, _) = drain(&mut stream.recv, &mut canvas, Duration::from_secs(1)).await;
    assert_eq!(frames, vec![most + 1], "one frame catches up");
    let newest = canvas.pixels()[120 * 320 + 120];
    assert_eq!(newest, 0x0010_2030 + 39, "it shows the last change");

    // Input on the stream without `control` is dropped, reported, and does nothing.
    let click = InputEvent::Move { x: 5, y: 5 };
    stream.send.send(&ScreenFeedback::Input(click)).await.unwrap();
    let dropped = loop {
        let activity = agent.event("activity", WAIT);
        if activity["kind"] == "refused" {
            break activity;
        }
    };
    assert!(
        dropped["text"]
            .as_str()
            .unwrap()
            .contains("dropped one input event"),
        "{dropped}"
    );
    let p = conn.query_pointer(root(&conn)).unwrap().reply().unwrap();
    assert_eq!((p.root_x, p.root_y), (200, 50));
}

/// Changes the display's resolution as xrandr does: a new mode on the output, the CRTC set
/// to it, the screen resized.
fn resize(conn: &RustConnection, width: u16, height: u16) {
    use x11rb::protocol::randr::{ModeInfo, Rotation};
    let res = conn
        .randr_get_screen_resources(root(conn))
        .unwrap()
        .reply()
        .unwrap();
    let name = format!("{width}x{height}");
    let info = ModeInfo {
        width,
        height,
        htotal: width,
        vtotal: height,
        name_len: name.len() as u16,
        ..Default::default()
    };
    let mode = conn
        .randr_create_mode(root(conn), info, name.as_bytes())
        .unwrap()
        .reply()
        .unwrap()
        .mode;
    conn.randr_add_output_mode(res.outputs[0], mode)
        .unwrap()
        .check()
        .unwrap();
    conn.randr_set_crtc_config(
        res.crtcs[0],
        0,
        res.config_timestamp,
        0,
        0,
        mode,
        Rotation::ROTATE0,
        &res.outputs,
    )
    .unwrap()
    .reply()
    .unwrap();
    conn.randr_set_screen_size(root(conn), width, height, 100, 100)
        .unwrap()
        .check()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn on_a_wayland_session_without_a_portal_the_x_display_is_not_shared_and_both_sides_are_told_why() {
    // An X display is there (as XWayland would be), with something on it, and no session bus
    // (so no screen-sharing portal).
    let x = Xvfb::start(320, 240);
    draw(&x.connect(), 320, 240, pattern);
    let w = World::new().await;
    let mut cmd = w.agent_command(&["--allow", "screen"]);
    cmd.env("DISPLAY", &x.display)
        .env("XDG_SESSION_TYPE", "wayland")
        .env("WAYLAND_DISPLAY", "wayland-0")
        .env(
            "DBUS_SESSION_BUS_ADDRESS",
            "unix:path=/nonexistent/ponte-test-bus",
        );
    let (agent, id, code) = w.start_agent(cmd);
    let mut viewer = Scripted::start(&w, &id, &code, None);
    let shot = w.path("shot.png");
    viewer.send(&format!("screenshot {}", shot.display()));
    let line = viewer.expect("Wayland");
    assert!(line.contains("stopped sharing the screen"), "{line}");
    assert!(line.contains("no screen-sharing portal"), "{line}");
    assert!(!shot.exists(), "the X display of a Wayland session was shared");
    let failed = loop {
        let activity = agent.event("activity", WAIT);
        if activity["kind"] == "failed" {
            break activity;
        }
    };
    // In the customer's words (English here).
    let text = failed["text"].as_str().unwrap();
    assert!(
        text.contains("your desktop offers no way to share the screen"),
        "{failed}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sharing_follows_a_resolution_change() {
    let x = Xvfb::start(640, 480);
    let conn = x.connect();
    draw(&conn, 640, 480, pattern);
    let w = World::new().await;
    let (_agent, id, code) = w.agent(&["--allow", "screen", "--display", &x.display]);
    let mut viewer = Scripted::start(&w, &id, &code, None);
    let before = w.path("before.png");
    viewer.send(&format!("screenshot {}", before.display()));
    assert!(viewer.expect("saved").contains("640×480"));

    resize(&conn, 320, 240);
    let after = w.path("after.png");
    viewer.send(&format!("screenshot {}", after.display()));
    let line = viewer.expect("saved");
    assert!(line.contains("320×240"), "{line}");
    // (A frame captured while the server resized can follow with a few more.)
    assert!(
        tiles(&line) >= 5 * 4,
        "every tile of the new size is sent again: {line}"
    );
    let (got, want) = (read_png(&after), dump(&conn));
    let differ: Vec<usize> = (0..got.2.len()).filter(|&i| got.2[i] != want.2[i]).collect();
    assert!(
        differ.is_empty(),
        "{} pixels differ, first {:?}: {:x} vs {:x}",
        differ.len(),
        differ.first(),
        got.2[differ[0]],
        want.2[differ[0]]
    );
}

/// Where the pointer is on the display, once it settles at `want` or after 5 s.
fn pointer_at(conn: &RustConnection, want: (i16, i16)) -> (i16, i16) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let p = conn.query_pointer(root(conn)).unwrap().reply().unwrap();
        if (p.root_x, p.root_y) == want || Instant::now() > deadline {
            return (p.root_x, p.root_y);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_customers_mouse_wins_over_the_assistants() {
    use ponte_e2e::app::Request;
    use ponte_e2e::screen::{InputEvent, ScreenFeedback};

    let x = Xvfb::start(320, 240);
    let conn = x.connect();
    let w = World::new().await;
    let (agent, id, code) = w.agent(&["--allow", "control", "--display", &x.display]);
    let viewer = w.assistant(&id, &code).await;
    let mut stream = viewer.request(&Request::Screen { max_fps: 60 }).await.unwrap();
    let to = |x, y| ScreenFeedback::Input(InputEvent::Move { x, y });

    stream.send.send(&to(10, 10)).await.unwrap();
    assert_eq!(
        pointer_at(&conn, (10, 10)),
        (10, 10),
        "the assistant moves the pointer"
    );
    // The customer moves the mouse (another client's XTest input, as a real mouse would).
    conn.xtest_fake_input(6, 0, 0, root(&conn), 300, 200, 0).unwrap();
    sync(&conn);
    stream.send.send(&to(20, 20)).await.unwrap();
    let paused = loop {
        let activity = agent.event("activity", WAIT);
        if activity["text"].as_str().unwrap().contains("you moved the mouse") {
            break activity;
        }
    };
    assert_eq!(paused["kind"], "control");
    assert_eq!(
        pointer_at(&conn, (300, 200)),
        (300, 200),
        "the customer's position stands"
    );
    // After the pause the assistant's input works again.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    stream.send.send(&to(30, 30)).await.unwrap();
    assert_eq!(pointer_at(&conn, (30, 30)), (30, 30));
}

/// The colour of the indicator bar's middle (top centre of the screen), if any.
fn indicator(conn: &RustConnection) -> u32 {
    let (w, _, pixels) = dump(conn);
    pixels[5 * usize::from(w) + usize::from(w) / 2]
}

/// Waits up to `limit` for `done` to hold.
fn within(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

const RED: u32 = 0xd0_20_20;
const BLUE: u32 = 0x1f_6f_d0;

#[tokio::test(flavor = "multi_thread")]
async fn click_and_type_go_through_the_indicator_and_the_customers_mouse_pause() {
    use ponte_e2e::screen::InputEvent;
    use ponte_viewer::ViewerError;

    let x = Xvfb::start(320, 240);
    let conn = x.connect();
    let w = World::new().await;
    let (agent, id, code) = w.agent(&["--allow", "control", "--display", &x.display]);
    let viewer = w.assistant(&id, &code).await;
    viewer.consent(WAIT).await.unwrap();
    let click = |x, y| {
        vec![
            InputEvent::Move { x, y },
            InputEvent::Button {
                button: 1,
                pressed: true,
            },
            InputEvent::Button {
                button: 1,
                pressed: false,
            },
        ]
    };
    assert_ne!(indicator(&conn), RED);
    viewer.input(click(10, 10)).await.unwrap();
    assert!(
        within(Duration::from_secs(2), || indicator(&conn) == RED),
        "a click without a shared screen shows the red control bar"
    );
    assert_eq!(pointer_at(&conn, (10, 10)), (10, 10));
    // The customer moves the mouse: the next click waits, and the customer's position stands.
    conn.xtest_fake_input(6, 0, 0, root(&conn), 300, 200, 0).unwrap();
    sync(&conn);
    let paused = viewer.input(click(20, 20)).await.unwrap_err();
    assert!(
        matches!(&paused, ViewerError::Failed(r) if r.as_raw().contains("using the mouse")),
        "{paused}"
    );
    assert_eq!(pointer_at(&conn, (300, 200)), (300, 200));
    let shown = agent.event_where(
        "paused",
        |v| {
            v["text"]
                .as_str()
                .is_some_and(|t| t.contains("you moved the mouse"))
        },
        WAIT,
    );
    assert_eq!(shown["kind"], "control");
    // Typing waits too, then works once the pause is over.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    viewer.input(vec![InputEvent::Text("ok".into())]).await.unwrap();
    viewer.input(click(30, 30)).await.unwrap();
    assert_eq!(pointer_at(&conn, (30, 30)), (30, 30));
}

#[tokio::test(flavor = "multi_thread")]
async fn revoking_control_releases_held_keys_and_buttons_at_once() {
    use ponte_e2e::app::Request;
    use ponte_e2e::screen::{InputEvent, ScreenFeedback, ScreenUpdate};

    let x = Xvfb::start(320, 240);
    let conn = x.connect();
    let w = World::new().await;
    let (mut agent, id, code) = w.text_agent(&["--allow", "control", "--display", &x.display]);
    let viewer = w.assistant(&id, &code).await;
    viewer.consent(WAIT).await.unwrap();
    let mut stream = viewer.request(&Request::Screen { max_fps: 30 }).await.unwrap();
    let keys_down = || {
        let keymap = conn.query_keymap().unwrap().reply().unwrap();
        keymap.keys.iter().map(|b| b.count_ones()).sum::<u32>()
    };
    let button_down = || {
        let p = conn.query_pointer(root(&conn)).unwrap().reply().unwrap();
        u16::from(p.mask) & u16::from(x11rb::protocol::xproto::KeyButMask::BUTTON1) != 0
    };
    assert_eq!(keys_down(), 0);
    for event in [
        InputEvent::Key {
            keysym: 0x61,
            pressed: true,
        },
        InputEvent::Button {
            button: 1,
            pressed: true,
        },
    ] {
        stream.send.send(&ScreenFeedback::Input(event)).await.unwrap();
    }
    assert!(
        within(Duration::from_secs(5), || keys_down() == 1 && button_down()),
        "the assistant holds a key and a button"
    );
    assert!(within(Duration::from_secs(2), || indicator(&conn) == RED));
    agent.send("revoke control");
    let revoked = Instant::now();
    assert!(
        within(Duration::from_secs(1), || keys_down() == 0 && !button_down()),
        "released within a second"
    );
    assert!(revoked.elapsed() < Duration::from_secs(1));
    // The screen is still shared, view only: the bar turns blue.
    assert!(within(Duration::from_secs(2), || indicator(&conn) == BLUE));
    agent.expect("permissions changed: now allowed See the screen");
    // Revoking the screen ends the stream with the reason, and the bar goes away.
    agent.send("revoke screen");
    let revoked = Instant::now();
    let reason = loop {
        match stream.recv.recv::<ScreenUpdate>().await {
            Ok(Some(ScreenUpdate::Ended(reason))) => break reason,
            Ok(Some(_)) => continue,
            other => panic!("the stream ended without a reason: {other:?}"),
        }
    };
    assert!(
        revoked.elapsed() < Duration::from_secs(1),
        "{:?}",
        revoked.elapsed()
    );
    assert!(reason.as_raw().contains("revoked 'screen'"), "{reason}");
    assert!(within(Duration::from_secs(2), || indicator(&conn) != BLUE
        && indicator(&conn) != RED));
    agent.expect("stopped: see the screen");
}

/// The agent's own terminal is on the shared screen: whatever the assistant types there (a
/// "grant", a "y") is not taken as the customer's; the customer's own typing is.
#[tokio::test(flavor = "multi_thread")]
async fn the_assistant_cannot_grant_or_answer_through_the_agents_own_terminal() {
    use ponte_e2e::app::Capability;
    use ponte_e2e::screen::InputEvent;

    let x = Xvfb::start(800, 600);
    let w = World::new().await;
    std::fs::write(w.path("agent-home/secret.txt"), "secret").unwrap();
    let screen = w.path("agent-screen.txt");
    let agent = format!(
        "{} --text --dir {} --allow control --display {} | tee {}",
        ponte_testbed::binary("ponte-agent").display(),
        w.path("agent-home").display(),
        x.display,
        screen.display()
    );
    let mut xterm = w
        .program("xterm")
        .env("DISPLAY", &x.display)
        .args(["-geometry", "120x30+0+0", "-e", "sh", "-c", &agent])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("xterm is needed for this test (apt-get install xterm)");
    let shown = || std::fs::read_to_string(&screen).unwrap_or_default();
    assert!(
        within(WAIT, || shown().contains("Code:")),
        "the agent started in its terminal"
    );
    let field = |name: &str| {
        let text = shown();
        let line = text.lines().find(|l| l.contains(name)).unwrap().to_owned();
        line.split(name).nth(1).unwrap().trim().to_owned()
    };
    let (id, code) = (field("Session ID:"), field("Code:"));
    let viewer = std::sync::Arc::new(w.assistant(&id, &code).await);
    viewer.consent(WAIT).await.unwrap();
    let screen_lines = |needle: &str| shown().matches(needle).count();
    // The customer's own keyboard (another X client, like a real keyboard).
    let customer_types = |text: &str| {
        let status = std::process::Command::new("xdotool")
            .env("DISPLAY", &x.display)
            .args(["type", "--delay", "20", text])
            .status()
            .expect("xdotool is needed for this test (apt-get install xdotool)");
        assert!(status.success());
    };
    // The pointer over the agent's terminal gives it the keyboard (no window manager here).
    viewer
        .input(vec![InputEvent::Move { x: 200, y: 200 }])
        .await
        .unwrap();
    viewer
        .input(vec![InputEvent::Text("grant terminal\n".into())])
        .await
        .unwrap();
    assert!(
        within(Duration::from_secs(5), || screen_lines("Not taken") == 1),
        "{}",
        shown()
    );
    assert!(!viewer.state().grants.unwrap().allows(Capability::Terminal));
    // The customer's own typing, once the assistant has stopped, is taken.
    tokio::time::sleep(Duration::from_secs(3)).await;
    customer_types("grant info\n");
    assert!(
        within(Duration::from_secs(5), || viewer
            .state()
            .grants
            .is_some_and(|g| g.allows(Capability::Info))),
        "{}",
        shown()
    );
    assert!(!viewer.state().grants.unwrap().allows(Capability::Terminal));

    // A question: the assistant's "y" is not taken; the customer's "n" is.
    let get = tokio::spawn({
        let viewer = viewer.clone();
        let local = w.path("stolen.txt");
        async move { viewer.get("secret.txt", &local, false, &mut |_| {}).await }
    });
    assert!(within(Duration::from_secs(10), || shown().contains("wants to COPY")));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    viewer.input(vec![InputEvent::Text("y\n".into())]).await.unwrap();
    assert!(
        within(Duration::from_secs(5), || screen_lines("Not taken") == 2),
        "{}",
        shown()
    );
    assert!(!get.is_finished(), "the question is still open");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        shown().contains("(still asking)"),
        "the question is reminded under the note"
    );
    customer_types("n\n");
    let refused = tokio::time::timeout(WAIT, get)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(refused.to_string().contains("declined"), "{refused}");
    assert!(!w.path("stolen.txt").exists());
    let _ = xterm.kill();
    let _ = xterm.wait();
}

/// A hostile viewer floods monitor switches (201, alternating, the last to the other monitor):
/// the stream goes on answering at once, the customer reads a switch or two, not one per
/// request, and the last one asked is what is shared.
#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_monitor_switches_is_coalesced_and_the_stream_goes_on() {
    use ponte_e2e::app::Request;
    use ponte_e2e::screen::{ScreenFeedback, ScreenUpdate};
    let x = Xvfb::start(640, 480);
    let _ = two_monitors(&x);
    let w = World::new().await;
    let (agent, id, code) = w.agent(&["--allow", "screen", "--display", &x.display]);
    let viewer = w.assistant(&id, &code).await;
    let mut stream = viewer.request(&Request::Screen { max_fps: 30 }).await.unwrap();
    let mut next = async || match tokio::time::timeout(WAIT, stream.recv.recv::<ScreenUpdate>()).await {
        Ok(Ok(Some(update))) => update,
        other => panic!("the screen stream ended: {other:?}"),
    };
    let first = loop {
        if let ScreenUpdate::Monitors { current, .. } = next().await {
            break current;
        }
    };
    let other = 1 - first;
    for n in 0..=200u32 {
        let to = if n % 2 == 0 { other } else { first };
        stream.send.send(&ScreenFeedback::Monitor(to)).await.unwrap();
    }
    let asked = Instant::now();
    stream
        .send
        .send(&ScreenFeedback::Refresh { sync: 1 })
        .await
        .unwrap();
    let (mut shared, mut answered) = (first, false);
    while !(answered && shared == other) {
        match next().await {
            ScreenUpdate::Monitors { current, .. } => shared = current,
            ScreenUpdate::FrameEnd { sync: 1, .. } if !answered => {
                answered = true;
                assert!(asked.elapsed() < Duration::from_secs(5), "{:?}", asked.elapsed());
            }
            _ => {}
        }
    }
    let switches = agent
        .lines_within(Duration::from_secs(1))
        .iter()
        .filter(|l| l.contains("switched to monitor"))
        .count();
    assert!(
        (1..=2).contains(&switches),
        "{switches} switches told for 201 asked"
    );
}

/// Frames until the screen is quiet, acknowledged as a viewer does: how many, and whether any
/// was lossy.
async fn follow(stream: &mut ponte_session::SecureStream, canvas: &mut ponte_screen::Canvas) -> (u64, bool) {
    use ponte_e2e::screen::{ScreenFeedback, ScreenUpdate};
    let (mut frames, mut lossy) = (0, false);
    while let Ok(update) =
        tokio::time::timeout(Duration::from_secs(2), stream.recv.expect::<ScreenUpdate>()).await
    {
        let update = update.unwrap();
        lossy |= matches!(update, ScreenUpdate::Lossy(_));
        if let ScreenUpdate::FrameEnd { frame, .. } = &update {
            frames += 1;
            let ack = ScreenFeedback::Ack { frame: *frame };
            stream.send.send(&ack).await.unwrap();
        }
        canvas.apply(update).unwrap();
    }
    (frames, lossy)
}

/// The assistant's quality choice reaches the agent's encoder: "fast" previews a changed
/// photo-like picture lossily even on a link that would carry it exactly, "sharp" never
/// approximates; both end exact.
#[tokio::test(flavor = "multi_thread")]
async fn the_assistants_quality_choice_decides_between_previews_and_exact_pixels() {
    use ponte_e2e::app::Request;
    use ponte_e2e::screen::{Quality, ScreenFeedback};

    let x = Xvfb::start(320, 240);
    let conn = x.connect();
    let window = window(&conn, 320, 240);
    paint(&conn, window, 320, 240, pattern);
    let w = World::new().await;
    let (_agent, id, code) = w.agent(&["--allow", "screen", "--display", &x.display]);
    let viewer = w.assistant(&id, &code).await;
    let mut stream = viewer.request(&Request::Screen { max_fps: 30 }).await.unwrap();
    let mut canvas = ponte_screen::Canvas::new().unwrap();
    let noise = |seed: u32| {
        move |x: usize, y: usize| {
            let mut v = (x as u32).wrapping_mul(0x9E37_79B1) ^ (y as u32).wrapping_mul(0x85EB_CA77) ^ seed;
            v ^= v >> 15;
            v = v.wrapping_mul(0x2C1B_3C6D);
            (v ^ (v >> 12)) & 0x00ff_ffff
        }
    };
    follow(&mut stream, &mut canvas).await;
    for (quality, seed, previews) in [
        (Quality::Balanced, 1, false),
        (Quality::Fast, 2, true),
        (Quality::Sharp, 3, false),
    ] {
        stream.send.send(&ScreenFeedback::Quality(quality)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        paint(&conn, window, 320, 240, noise(seed));
        let (_, lossy) = follow(&mut stream, &mut canvas).await;
        assert_eq!(lossy, previews, "{quality:?}: lossy previews {lossy}");
        let (_, _, shown) = dump(&conn);
        assert!(
            canvas.pixels() == shown.as_slice(),
            "{quality:?} did not end exact"
        );
    }
}

/// A hostile assistant's guide: off the shared monitor it draws nothing, a flood moves one
/// ring and the stream goes on, and the ring goes when the stream ends.
#[tokio::test(flavor = "multi_thread")]
async fn a_hostile_guide_stays_on_the_shared_screen_and_goes_with_the_stream() {
    use ponte_e2e::app::Request;
    use ponte_e2e::screen::ScreenFeedback;

    let x = Xvfb::start(320, 240);
    let conn = x.connect();
    draw(&conn, 320, 240, |_, _| 0x0020_4060);
    let w = World::new().await;
    let (_agent, id, code) = w.agent(&["--allow", "screen", "--display", &x.display]);
    let viewer = w.assistant(&id, &code).await;
    let mut stream = viewer.request(&Request::Screen { max_fps: 30 }).await.unwrap();
    let ring = |at: (usize, usize)| {
        let (width, _, shown) = dump(&conn);
        let orange = |px: usize, py: usize| shown[py * usize::from(width) + px] == 0x00ff_8c00;
        (
            orange(at.0, at.1 - 19),
            shown.iter().filter(|&&p| p == 0x00ff_8c00).count(),
        )
    };
    let mut canvas = ponte_screen::Canvas::new().unwrap();
    follow(&mut stream, &mut canvas).await;
    for far in [(65535, 65535), (320, 10), (10, 240)] {
        stream.send.send(&ScreenFeedback::Guide(Some(far))).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(ring((0, 20)).1, 0, "a guide off the shared screen was drawn");
    // A flood, ending at (100, 100).
    for i in 0..10_000u16 {
        let at = (i % 300, i % 200);
        stream.send.send(&ScreenFeedback::Guide(Some(at))).await.unwrap();
    }
    stream
        .send
        .send(&ScreenFeedback::Guide(Some((100, 100))))
        .await
        .unwrap();
    let deadline = Instant::now() + WAIT;
    while !ring((100, 100)).0 {
        assert!(
            Instant::now() < deadline,
            "the guide never settled where it was last put"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (frames, _) = follow(&mut stream, &mut canvas).await;
    assert!(frames > 0, "the stream stopped after the flood");
    // Ending the stream takes the ring away.
    stream.send.finish().await.unwrap();
    let deadline = Instant::now() + WAIT;
    while ring((100, 100)).1 > 0 {
        assert!(
            Instant::now() < deadline,
            "the guide stayed after the stream ended"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
