//! Screen sharing figures at 1920×1080 on an Xvfb display, in one run:
//! - per frame, bytes on the wire and encode time for (a) a full-screen change, (b) typing in a
//!   terminal, (c) scrolling a page — real X text rendering, captured with GetImage, encoded by
//!   `ponte_screen::Encoder`; beside it the same changed tiles under other codecs, which is how
//!   the tile codec was chosen;
//! - through the relay on loopback, with the release relay and agent binaries and an in-process
//!   viewer: sustained frames per second while the screen scrolls, and the latency from a
//!   change on the display to the viewer having the frame that shows it (p50/p99).
//!
//!
//! With `--link dsl|mobile|lan`, instead: the real agent reaches the relay through the link
//! emulator (`ponte_testbed::link`) and an in-process viewer measures what the assistant feels —
//! first usable and exact picture of a photo-like desktop, typing latency, scrolling frame
//! rate and frame age, frame age under full-screen changes every 100 ms — with per-stage
//! latency, printing a JSON line per scene.
//!
//! Run: `cargo run --release -p ponte-benches --bin screen-bench [-- --frames 200]`, or
//! `cargo run --release -p ponte-benches --bin screen-bench -- --link dsl [--seconds 30]`.
//! With `--wayland` too, the link scenes run on a headless GNOME session instead (the agent
//! shares through the portal and PipeWire; the scenes are an X window on its Xwayland; the
//! bench answers the system's dialog), and the photo's clock starts when the photo goes up on
//! the already shared screen.
//! `--scenes photo,text,mixed,typing,scrolling,full-screen` runs only those link scenes.
//! With `PONTE_BENCH_TRACE=1`, the scenes that wait for an exact picture also print each frame's arrival (size,
//! budget, the agent's rate and RTT, the link's bytes and drops so far) to stderr.

#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ponte_benches::program;
use ponte_e2e::app::{MAX_MESSAGE, Request};
use ponte_e2e::handshake::Credentials;
use ponte_e2e::identity::PrivateKey;
use ponte_e2e::screen::{FrameStats, ScreenFeedback, ScreenUpdate};
use ponte_screen::{Applied, Canvas, Encoder, Image};
use ponte_testbed::wayland::Customer;
use ponte_testbed::{Running, WaylandSession, Xvfb};
use ponte_transport::tls::CertFingerprint;
use ponte_wire::frame;
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    ConnectionExt as _, CreateGCAux, CreateWindowAux, ImageFormat, Rectangle, WindowClass,
};
use x11rb::rust_connection::RustConnection;

const W: u16 = 1920;
const H: u16 = 1080;
/// The core font "fixed" is 6×13.
const LINE: i16 = 13;
const COLUMN: i16 = 6;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A full-screen window to draw scenes in, with graphics contexts for text and fills.
struct Scene {
    conn: RustConnection,
    window: u32,
    text: u32,
    fill: u32,
    rng: u64,
}

impl Scene {
    fn new(conn: RustConnection) -> Scene {
        let root = conn.setup().roots[0].root;
        let window = conn.generate_id().unwrap();
        conn.create_window(
            24,
            window,
            root,
            0,
            0,
            W,
            H,
            0,
            WindowClass::INPUT_OUTPUT,
            0,
            &CreateWindowAux::new().override_redirect(1).background_pixel(0),
        )
        .unwrap();
        conn.map_window(window).unwrap();
        let font = conn.generate_id().unwrap();
        conn.open_font(font, b"fixed").unwrap();
        let (text, fill) = (conn.generate_id().unwrap(), conn.generate_id().unwrap());
        conn.create_gc(text, window, &CreateGCAux::new().font(font))
            .unwrap();
        conn.create_gc(fill, window, &CreateGCAux::new()).unwrap();
        let scene = Scene {
            conn,
            window,
            text,
            fill,
            rng: 0x9E37_79B9_7F4A_7C15,
        };
        scene.sync();
        scene
    }

    fn sync(&self) {
        self.conn.get_input_focus().unwrap().reply().unwrap();
    }

    fn random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn words(&mut self, n: usize) -> Vec<u8> {
        const WORDS: [&str; 12] = [
            "invoice", "ledger", "the", "customer", "total", "2026", "error:", "ok", "path", "/usr/lib",
            "and", "config",
        ];
        let mut s = Vec::new();
        while s.len() < n {
            s.extend_from_slice(WORDS[(self.random() % 12) as usize].as_bytes());
            s.push(b' ');
        }
        s.truncate(n);
        s
    }

    fn rect(&self, color: u32, x: i16, y: i16, width: u16, height: u16) {
        let aux = x11rb::protocol::xproto::ChangeGCAux::new().foreground(color);
        self.conn.change_gc(self.fill, &aux).unwrap();
        let r = Rectangle { x, y, width, height };
        self.conn
            .poly_fill_rectangle(self.window, self.fill, &[r])
            .unwrap();
    }

    fn line(&mut self, fg: u32, bg: u32, row_y: i16, len: usize) {
        let aux = x11rb::protocol::xproto::ChangeGCAux::new()
            .foreground(fg)
            .background(bg);
        self.conn.change_gc(self.text, &aux).unwrap();
        let text = self.words(len);
        self.conn
            .image_text8(self.window, self.text, 8, row_y + LINE - 3, &text)
            .unwrap();
    }

    /// A terminal: grey text on black, full of output.
    fn terminal(&mut self) {
        self.rect(0x00_1e_1e_1e, 0, 0, W, H);
        for row in 0..(H as i16 / LINE) - 1 {
            let len = (self.random() % 200) as usize;
            self.line(0x00_c0_c0_c0, 0x00_1e_1e_1e, row * LINE, len);
        }
        self.sync();
    }

    /// A web page: black text on white, coloured boxes.
    fn page(&mut self) {
        self.rect(0x00_ff_ff_ff, 0, 0, W, H);
        for row in 0..H as i16 / LINE {
            self.page_line(row * LINE, row);
        }
        self.sync();
    }

    fn page_line(&mut self, y: i16, row: i16) {
        if row % 17 == 0 {
            let color = (self.random() & 0x00ff_ffff) as u32;
            self.rect(color, 300, y, 600, LINE as u16);
        } else {
            let len = 150 + (self.random() % 100) as usize;
            self.line(0, 0x00_ff_ff_ff, y, len);
        }
    }

    /// Scrolls the page up by three lines, as a browser does.
    fn scroll(&mut self, step: i16) {
        let by = 3 * LINE;
        self.conn
            .copy_area(self.window, self.window, self.fill, 0, by, 0, 0, W, H - by as u16)
            .unwrap();
        self.rect(0x00_ff_ff_ff, 0, H as i16 - by, W, by as u16);
        for i in 0..3 {
            self.page_line(H as i16 - by + i * LINE, step * 3 + i);
        }
        self.sync();
    }

    /// Types one character at the terminal's prompt line.
    fn type_char(&mut self, n: usize) {
        let (col, row) = ((n % 250) as i16, (H as i16 / LINE) - 1);
        let c = [b"ls -la /var/log && grep -r error . | head\n"[n % 41].max(b' ')];
        let aux = x11rb::protocol::xproto::ChangeGCAux::new()
            .foreground(0x00_c0_c0_c0)
            .background(0x00_1e_1e_1e);
        self.conn.change_gc(self.text, &aux).unwrap();
        self.conn
            .image_text8(
                self.window,
                self.text,
                8 + col * COLUMN,
                row * LINE + LINE - 3,
                &c,
            )
            .unwrap();
        self.sync();
    }

    /// Shows a BGRX picture of the whole screen at once, as programs present a finished picture:
    /// drawn off screen (in strips: a request has a size limit), then copied in one request,
    /// so no capture sees half of it.
    fn put(&self, data: &[u8]) {
        self.put_part(data, 0, 0, usize::from(W), usize::from(H));
    }

    /// Shows the part `w`×`h` at `x`,`y` of a BGRX picture of the whole screen at its place,
    /// as [`Scene::put`] does.
    fn put_part(&self, data: &[u8], x: usize, y: usize, w: usize, h: usize) {
        let full = usize::from(W) * 4;
        let mut part = Vec::with_capacity(w * h * 4);
        for row in y..y + h {
            part.extend_from_slice(&data[row * full + x * 4..row * full + (x + w) * 4]);
        }
        let pixmap = self.conn.generate_id().unwrap();
        self.conn
            .create_pixmap(24, pixmap, self.window, w as u16, h as u16)
            .unwrap();
        let rows = 30;
        for r in (0..h).step_by(rows) {
            let n = rows.min(h - r);
            self.conn
                .put_image(
                    ImageFormat::Z_PIXMAP,
                    pixmap,
                    self.fill,
                    w as u16,
                    n as u16,
                    0,
                    r as i16,
                    0,
                    24,
                    &part[r * w * 4..(r + n) * w * 4],
                )
                .unwrap();
        }
        self.conn
            .copy_area(
                pixmap,
                self.window,
                self.fill,
                0,
                0,
                x as i16,
                y as i16,
                w as u16,
                h as u16,
            )
            .unwrap();
        self.conn.free_pixmap(pixmap).unwrap();
        self.sync();
    }

    /// The screen: the root window's pixels (with the agent's indicator bar on X11), or on
    /// rootless Xwayland, whose root has none, the scene's window (which covers the screen).
    fn capture(&self) -> Vec<u8> {
        let root = self.conn.setup().roots[0].root;
        let image = |drawable| {
            self.conn
                .get_image(ImageFormat::Z_PIXMAP, drawable, 0, 0, W, H, !0)
                .unwrap()
                .reply()
        };
        image(root).or_else(|_| image(self.window)).unwrap().data
    }
}

/// A photo-like desktop (BGRX): a sky gradient over hills of fractal value noise, with a
/// photo's grain — smooth to the eye, and nothing a lossless coder can shrink much.
fn photo(seed: u64) -> Vec<u8> {
    let (w, h) = (usize::from(W), usize::from(H));
    let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    // Three octaves of value noise on grids of 240, 60 and 15 pixels.
    let octaves: Vec<(usize, Vec<f32>)> = [240usize, 60, 15]
        .iter()
        .map(|&cell| {
            let (gw, gh) = (w / cell + 2, h / cell + 2);
            (
                cell,
                (0..gw * gh).map(|_| (next() % 1000) as f32 / 1000.0).collect(),
            )
        })
        .collect();
    let mut data = Vec::with_capacity(w * h * 4);
    for y in 0..h {
        for x in 0..w {
            let mut v = 0.0;
            let mut amp = 0.6;
            for (cell, grid) in &octaves {
                let gw = w / cell + 2;
                let (fx, fy) = (x as f32 / *cell as f32, y as f32 / *cell as f32);
                let (ix, iy) = (fx as usize, fy as usize);
                let (tx, ty) = (fx - ix as f32, fy - iy as f32);
                let at = |i: usize, j: usize| grid[j * gw + i];
                let top = at(ix, iy) * (1.0 - tx) + at(ix + 1, iy) * tx;
                let bottom = at(ix, iy + 1) * (1.0 - tx) + at(ix + 1, iy + 1) * tx;
                v += amp * (top * (1.0 - ty) + bottom * ty);
                amp /= 2.0;
            }
            let horizon = h as f32 * (0.45 + 0.2 * v);
            let grain = (next() % 13) as f32 - 6.0;
            let (r, g, b) = if (y as f32) < horizon {
                let t = y as f32 / horizon;
                (90.0 + 80.0 * t, 140.0 + 60.0 * t, 230.0 - 20.0 * t)
            } else {
                (60.0 + 120.0 * v, 90.0 + 110.0 * v, 40.0 + 60.0 * v)
            };
            let c = |f: f32| (f + grain).clamp(0.0, 255.0) as u8;
            data.extend_from_slice(&[c(b), c(g), c(r), 0]);
        }
    }
    data
}

/// Bytes on the wire (frames, before the record layer's 38 bytes each) of an encoded frame.
fn wire_bytes(updates: &[ScreenUpdate]) -> usize {
    updates
        .iter()
        .map(|u| frame::encode(u, MAX_MESSAGE).unwrap().len())
        .sum()
}

#[derive(Default)]
struct Stats {
    bytes: Vec<usize>,
    micros: Vec<f64>,
    tiles: Vec<u32>,
    /// Changed tiles' pixels (3 bytes per pixel), for the codec comparison.
    tile_pixels: Vec<Vec<u8>>,
}

fn percentile<T: Copy + PartialOrd>(values: &[T], p: f64) -> T {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = values.collect();
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// The 64×64 tiles (3 bytes per pixel) of `cur` that differ from `prev`.
fn changed_tiles(prev: &[u8], cur: &[u8]) -> Vec<Vec<u8>> {
    let (w, h) = (usize::from(W), usize::from(H));
    let mut out = Vec::new();
    for ty in (0..h).step_by(64) {
        for tx in (0..w).step_by(64) {
            let (tw, th) = (64.min(w - tx), 64.min(h - ty));
            let rows = (ty..ty + th).map(|y| (y * w + tx) * 4..(y * w + tx + tw) * 4);
            if rows.clone().all(|r| prev[r.clone()] == cur[r]) {
                continue;
            }
            let mut tile = Vec::with_capacity(tw * th * 3);
            for r in rows {
                for px in cur[r].chunks_exact(4) {
                    tile.extend_from_slice(&px[..3]);
                }
            }
            out.push(tile);
        }
    }
    out
}

/// Runs `frames` steps of a scene through the encoder.
fn measure(scene: &mut Scene, frames: usize, mut step: impl FnMut(&mut Scene, usize)) -> Stats {
    let mut encoder = Encoder::new().unwrap();
    let mut prev = scene.capture();
    fn image(data: &[u8]) -> Image<'_> {
        Image {
            width: W,
            height: H,
            stride: usize::from(W) * 4,
            data,
        }
    }
    encoder.encode(&image(&prev), 0).unwrap();
    let mut stats = Stats::default();
    for n in 0..frames {
        step(scene, n);
        let cur = scene.capture();
        let start = Instant::now();
        let frame = encoder.encode(&image(&cur), 1).unwrap().unwrap();
        stats.micros.push(start.elapsed().as_secs_f64() * 1e6);
        stats.bytes.push(wire_bytes(&frame.updates));
        stats.tiles.push(frame.tiles);
        stats.tile_pixels.extend(changed_tiles(&prev, &cur));
        prev = cur;
    }
    stats
}

fn report(name: &str, s: &Stats) {
    println!(
        "{name:<22} {:>6.0} tiles {:>10.0} B/frame (p99 {:>9}) {:>8.2} ms/frame encode (p99 {:.2})",
        mean(s.tiles.iter().map(|t| f64::from(*t))),
        mean(s.bytes.iter().map(|b| *b as f64)),
        percentile(&s.bytes, 0.99),
        mean(s.micros.iter().copied()) / 1e3,
        percentile(&s.micros, 0.99) / 1e3,
    );
}

/// Compresses every tile with `codec`; returns (compressed bytes, microseconds).
fn codec_cost(tiles: &[Vec<u8>], codec: &str) -> (usize, f64) {
    let start = Instant::now();
    let mut total = 0;
    let mut z1 = zstd::bulk::Compressor::new(1).unwrap();
    let mut z3 = zstd::bulk::Compressor::new(3).unwrap();
    for t in tiles {
        total += match codec {
            "raw" => t.len(),
            "zstd-1" => z1.compress(t).unwrap().len(),
            "zstd-3" => z3.compress(t).unwrap().len(),
            "lz4" => lz4_flex::block::compress(t).len(),
            _ => unreachable!(),
        };
    }
    (total, start.elapsed().as_secs_f64() * 1e6)
}

fn compare_codecs(scenes: &[(&str, &Stats)]) {
    println!("\ncodec comparison on the same changed tiles (total bytes, compression time):");
    for (name, s) in scenes {
        let raw: usize = s.tile_pixels.iter().map(Vec::len).sum();
        let mut line = format!("{name:<22}");
        for codec in ["lz4", "zstd-1", "zstd-3"] {
            // The second of two passes, so no codec pays for cold caches.
            codec_cost(&s.tile_pixels, codec);
            let (bytes, micros) = codec_cost(&s.tile_pixels, codec);
            line += &format!(
                "  {codec}: {:>5.1}% of raw, {:>7.1} ms",
                bytes as f64 * 100.0 / raw as f64,
                micros / 1e3
            );
        }
        println!("{line}");
    }
}

/// The release agent sharing `display` through the relay at `relay` (pinned by `fp`), with its
/// "ready" event (session ID and code).
fn start_agent(
    home: &std::path::Path,
    desktop: &Desktop,
    relay: std::net::SocketAddr,
    fp: &CertFingerprint,
) -> (Running, serde_json::Value) {
    let mut agent = std::process::Command::new(program("ponte-agent"));
    agent
        .env("HOME", home)
        .env("XDG_DATA_HOME", home)
        .env("XDG_CONFIG_HOME", home)
        .args(["--json", "--allow", "screen"])
        .args(["--relay", &relay.to_string(), "--fingerprint", &fp.to_string()]);
    match desktop {
        Desktop::X(x) => {
            agent.args(["--display", &x.display]);
        }
        Desktop::Wayland(session) => {
            session.apply(&mut agent);
            agent.args(["--desktop", "wayland"]);
        }
    }
    let agent = Running::start(agent);
    let ready = agent.event("ready", Duration::from_secs(30));
    (agent, ready)
}

/// An in-process viewer (the viewer core) joined to the agent's session with a screen stream.
async fn viewer(
    addr: std::net::SocketAddr,
    fp: CertFingerprint,
    id: &str,
    code: &str,
) -> ponte_session::SecureStream {
    let dir = tempfile::tempdir().unwrap();
    let options = ponte_viewer::JoinOptions {
        relay: ponte_session::connect::RelayOptions {
            address: addr.to_string(),
            fingerprint: Some(fp),
            ca: None,
            known_relays: ponte_session::known_relays::KnownRelays::at(dir.path().join("known")),
        },
        accept_new_fingerprint: false,
        session: id.parse().unwrap(),
        code: code.parse().unwrap(),
        credentials: Credentials {
            key: PrivateKey::generate(&mut ponte_wire::os_rng()).unwrap(),
            certificate: None,
        },
        extras: Default::default(),
    };
    let (viewer, _) = ponte_viewer::join(options).await.unwrap();
    viewer.consent(Duration::from_secs(60)).await.unwrap();
    let stream = viewer.request(&Request::Screen { max_fps: 60 }).await.unwrap();
    // Keep the session alive for the stream's lifetime.
    std::mem::forget(viewer);
    stream
}

fn unix_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// A frame as the bench's viewer received it.
#[derive(Debug, Clone, Copy)]
struct Arrival {
    at: Instant,
    unix_us: u64,
    stats: FrameStats,
    /// Applying the frame's updates, microseconds.
    decode_us: u64,
    /// Drawing the picture into a window buffer as the viewer window does, microseconds.
    present_us: u64,
    /// Bytes of its messages.
    bytes: usize,
}

impl Arrival {
    /// How old the oldest change the picture lacks is, now that this frame is shown (agent
    /// and viewer share the machine's clock here).
    fn age_ms(&self) -> f64 {
        let since = self
            .stats
            .captured_unix_us
            .saturating_sub(u64::from(self.stats.backlog_us));
        self.unix_us.saturating_sub(since) as f64 / 1e3
    }

    /// From the agent handing the frame to QUIC to the viewer holding all of it: the rest of
    /// the frame's time once the other stages are taken out.
    fn network_ms(&self) -> f64 {
        let s = &self.stats;
        let sent =
            s.captured_unix_us + u64::from(s.capture_us) + u64::from(s.encode_us) + u64::from(s.send_us);
        self.unix_us
            .saturating_sub(sent)
            .saturating_sub(self.decode_us + self.present_us) as f64
            / 1e3
    }
}

/// A picture's way to the viewer: from the change until it was usable (nothing stale) and
/// exact, with the bytes and frames that took.
struct ToExact {
    usable: Duration,
    exact: Duration,
    bytes: usize,
    frames: Vec<Arrival>,
    /// The customer's uplink until exact: bytes carried (payload, retransmissions, QUIC's own
    /// packets) and packets dropped (loss and a full queue).
    link_bytes: u64,
    link_dropped: u64,
}

/// Receives frames until the viewer's picture is exact; `requested` is when the change was
/// made. With `trace`, prints each frame's arrival.
async fn until_exact(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<Arrival>,
    requested: Instant,
    link: &ponte_testbed::link::Link,
    trace: bool,
) -> anyhow::Result<ToExact> {
    use std::sync::atomic::Ordering::Relaxed;
    let (up, dropped) = (
        link.counters.up_bytes.load(Relaxed),
        link.counters.up_dropped.load(Relaxed),
    );
    let (mut usable, mut bytes, mut frames) = (None, 0, Vec::new());
    loop {
        let a = tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await?
            .ok_or_else(|| anyhow::anyhow!("stream ended"))?;
        bytes += a.bytes;
        frames.push(a);
        if trace {
            eprintln!(
                "t={:5.0}ms bytes={:6} budget={:6} rate={:7} rtt={:4}ms up={:8} dropped={:4} inexact={}",
                (a.at - requested).as_secs_f64() * 1e3,
                a.bytes,
                a.stats.budget,
                a.stats.rate,
                a.stats.rtt_us / 1000,
                link.counters.up_bytes.load(Relaxed) - up,
                link.counters.up_dropped.load(Relaxed) - dropped,
                a.stats.inexact_tiles,
            );
        }
        if usable.is_none() && a.stats.backlog_us == 0 {
            usable = Some(a.at - requested);
        }
        if a.stats.inexact_tiles == 0 {
            return Ok(ToExact {
                usable: usable.unwrap_or(a.at - requested),
                exact: a.at - requested,
                bytes,
                frames,
                link_bytes: link.counters.up_bytes.load(Relaxed) - up,
                link_dropped: link.counters.up_dropped.load(Relaxed) - dropped,
            });
        }
    }
}

impl ToExact {
    /// Prints the scene's JSON line: the times, whether the viewer's picture is the screen's
    /// pixel for pixel, and the picture's size as one lossless WebP with the time the link's
    /// uplink needs for it.
    fn report(&self, link: &str, scene_name: &str, canvas: &Mutex<Canvas>, scene: &Scene) {
        let screen = scene.capture();
        let pixel_exact = canvas
            .lock()
            .unwrap()
            .pixels()
            .iter()
            .zip(screen.chunks_exact(4))
            .all(|(p, px)| *p == u32::from(px[2]) << 16 | u32::from(px[1]) << 8 | u32::from(px[0]));
        let image = Image {
            width: W,
            height: H,
            stride: usize::from(W) * 4,
            data: &screen,
        };
        let lossless =
            ponte_screen::lossy::lossless_tile(&image, 0, 0, W.into(), H.into()).map_or(0, |w| w.len());
        let uplink = ponte_testbed::link::Profile::named(link)
            .and_then(|p| p.up.rate_bps)
            .map_or(f64::INFINITY, |bits| bits as f64 / 8.0);
        let link_ms = lossless as f64 / uplink * 1e3;
        let first = self.frames[0].stats;
        println!(
            "{}",
            serde_json::json!({
                "link": link, "scene": scene_name,
                "first_usable_ms": self.usable.as_secs_f64() * 1e3,
                "exact_ms": self.exact.as_secs_f64() * 1e3,
                "pixel_exact": pixel_exact,
                "lossless_webp_bytes": lossless, "lossless_link_ms": link_ms,
                "exact_vs_lossless_link": self.exact.as_secs_f64() * 1e3 / link_ms,
                "first_frame_bytes": self.frames[0].bytes,
                "first_quality": first.quality, "first_scale": first.scale,
                "bytes_to_exact": self.bytes, "frames": self.frames.len(),
                "link_up_bytes": self.link_bytes, "link_up_dropped": self.link_dropped,
                "stages": stages(&self.frames),
            })
        );
    }
}

/// Per-stage means over frames, milliseconds.
fn stages(frames: &[Arrival]) -> serde_json::Value {
    let m = |f: &dyn Fn(&Arrival) -> f64| mean(frames.iter().map(f));
    serde_json::json!({
        "capture_ms": m(&|a| f64::from(a.stats.capture_us) / 1e3),
        "diff_ms": m(&|a| f64::from(a.stats.diff_us) / 1e3),
        "encode_ms": m(&|a| f64::from(a.stats.encode_us.saturating_sub(a.stats.diff_us)) / 1e3),
        "send_ms": m(&|a| f64::from(a.stats.send_us) / 1e3),
        "network_ms": m(&|a| a.network_ms()),
        "decode_ms": m(&|a| a.decode_us as f64 / 1e3),
        "present_ms": m(&|a| a.present_us as f64 / 1e3),
    })
}

/// Exact codings of a page of text (real X text, captured): the encoder's zstd tiles against
/// lossless WebP in runs of tiles of a tile row, bytes and encode time.
fn compare_text_codecs() {
    let x = Xvfb::start(W, H);
    let mut scene = Scene::new(x.connect());
    scene.page();
    let data = scene.capture();
    let img = Image {
        width: W,
        height: H,
        stride: usize::from(W) * 4,
        data: &data,
    };
    let mut encoder = Encoder::new().unwrap();
    let start = Instant::now();
    let frame = encoder.encode(&img, 0).unwrap().unwrap();
    println!(
        "{}",
        serde_json::json!({"scene": "text codec", "codec": "zstd-3 tiles", "bytes": wire_bytes(&frame.updates),
            "encode_ms": start.elapsed().as_secs_f64() * 1e3})
    );
    for run in [64usize, 256, 512, 1920] {
        let start = Instant::now();
        let mut bytes = 0;
        for ty in (0..usize::from(H)).step_by(64) {
            for tx in (0..usize::from(W)).step_by(run) {
                let (tw, th) = (run.min(usize::from(W) - tx), 64.min(usize::from(H) - ty));
                bytes += ponte_screen::lossy::lossless_tile(&img, tx, ty, tw, th)
                    .unwrap()
                    .len()
                    + 16;
            }
        }
        println!(
            "{}",
            serde_json::json!({"scene": "text codec", "codec": format!("webp lossless {run}x64"), "bytes": bytes,
                "encode_ms": start.elapsed().as_secs_f64() * 1e3})
        );
    }
}

/// Lossy and lossless codecs on the photo-like desktop: bytes, encode and decode time, error.
fn compare_photo_codecs() {
    use ponte_e2e::screen::{Codec, LossyRect, Tile};
    let data = photo(1);
    let img = Image {
        width: W,
        height: H,
        stride: usize::from(W) * 4,
        data: &data,
    };
    // Everything the viewer gets, decoded by the viewer's Canvas, against the original.
    let judge = |name: &str, updates: Vec<ScreenUpdate>, encode_ms: f64| {
        let bytes: usize = updates
            .iter()
            .map(|u| frame::encode(u, MAX_MESSAGE).unwrap().len())
            .sum();
        let mut canvas = Canvas::new().unwrap();
        canvas.apply(ScreenUpdate::Size { width: W, height: H }).unwrap();
        let start = Instant::now();
        for u in updates {
            canvas.apply(u).unwrap();
        }
        let decode_ms = start.elapsed().as_secs_f64() * 1e3;
        let mut sq = 0f64;
        for (p, px) in canvas.pixels().iter().zip(data.chunks_exact(4)) {
            for (shift, i) in [(16, 2), (8, 1), (0, 0)] {
                let d = f64::from((p >> shift) as u8) - f64::from(px[i]);
                sq += d * d;
            }
        }
        let mse = sq / (f64::from(W) * f64::from(H) * 3.0);
        let psnr = if mse == 0.0 {
            f64::INFINITY
        } else {
            10.0 * (255.0f64 * 255.0 / mse).log10()
        };
        let seconds_dsl = bytes as f64 * 8.0 / 5e6;
        println!(
            "{}",
            serde_json::json!({"scene": "codec", "codec": name, "bytes": bytes, "encode_ms": encode_ms,
                "decode_ms": decode_ms, "psnr_db": if psnr.is_finite() { psnr } else { 999.0 },
                "seconds_at_5_mbit": seconds_dsl})
        );
    };
    // Exact: what the encoder does without a budget (zstd tiles), and lossless WebP tiles.
    let mut encoder = Encoder::new().unwrap();
    let start = Instant::now();
    let frame = encoder.encode(&img, 0).unwrap().unwrap();
    judge(
        "zstd-3 tiles (exact)",
        frame.updates,
        start.elapsed().as_secs_f64() * 1e3,
    );
    let start = Instant::now();
    let mut tiles = Vec::new();
    for ty in (0..usize::from(H)).step_by(64) {
        for tx in (0..usize::from(W)).step_by(64) {
            let (tw, th) = (64.min(usize::from(W) - tx), 64.min(usize::from(H) - ty));
            let data = ponte_screen::lossy::lossless_tile(&img, tx, ty, tw, th).unwrap();
            tiles.push(Tile {
                x: tx as u16,
                y: ty as u16,
                width: tw as u16,
                height: th as u16,
                codec: Codec::Webp,
                data,
            });
        }
    }
    let encode_ms = start.elapsed().as_secs_f64() * 1e3;
    let updates: Vec<ScreenUpdate> = tiles.chunks(4).map(|c| ScreenUpdate::Tiles(c.to_vec())).collect();
    judge("webp lossless tiles (exact)", updates, encode_ms);
    // Every rung of the lossy ladder, over the whole screen in tile rows as the encoder sends.
    for rung in ponte_screen::lossy::LADDER {
        let start = Instant::now();
        let mut rects: Vec<LossyRect> = Vec::new();
        for ty in (0..usize::from(H)).step_by(64) {
            let th = 64.min(usize::from(H) - ty);
            rects.extend(ponte_screen::lossy::lossy_rects(&img, 0, ty, 1920, th, rung, 60_000).unwrap());
        }
        let encode_ms = start.elapsed().as_secs_f64() * 1e3;
        let updates = rects.chunks(2).map(|c| ScreenUpdate::Lossy(c.to_vec())).collect();
        judge(
            &format!("webp q{} scale 1/{}", rung.quality, rung.scale),
            updates,
            encode_ms,
        );
    }
}

/// The screen the scenes are drawn on and the agent shares.
enum Desktop {
    /// An Xvfb display, shared through X11.
    X(Xvfb),
    /// A headless GNOME session, shared through the portal and PipeWire; the scenes are an X
    /// program's window on its Xwayland.
    Wayland(WaylandSession),
}

/// Answers the portal's dialog ("Share", Alt+S) until `shared` is set. The scene's window may
/// cover the dialog, so the keys go out every second instead of when the dialog is seen.
async fn answer_dialog(customer: Customer, shared: Arc<std::sync::atomic::AtomicBool>) {
    while !shared.load(std::sync::atomic::Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        customer.keys(&[0xffe9, u32::from(b's')]).await;
    }
}

/// Waits until the picture is exact and nothing arrives for a while.
async fn settle(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Arrival>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(700), rx.recv()).await {
            Ok(Some(_)) => {}
            _ => return,
        }
    }
}

/// The emulated-link scenes, each a JSON line; on a Wayland session if `wayland`.
async fn link_scenes(name: &str, seconds: u64, wayland: bool) -> anyhow::Result<()> {
    // `--scenes photo,text,...`: only those (the photo's way to exact is always waited for).
    let args: Vec<String> = std::env::args().collect();
    let only = args
        .iter()
        .position(|a| a == "--scenes")
        .and_then(|i| args.get(i + 1))
        .map(|list| list.split(',').map(str::to_owned).collect::<Vec<_>>());
    let wanted = |scene: &str| only.as_ref().is_none_or(|o| o.iter().any(|s| s == scene));
    use ponte_testbed::link::{Link, Profile};
    let profile = Profile::named(name).ok_or_else(|| anyhow::anyhow!("unknown link {name}"))?;
    let desktop = if wayland {
        Desktop::Wayland(WaylandSession::start_with_xwayland(W, H))
    } else {
        Desktop::X(Xvfb::start(W, H))
    };
    let mut scene = Scene::new(match &desktop {
        Desktop::X(x) => x.connect(),
        Desktop::Wayland(session) => session.x_connect(),
    });
    let photos = [photo(1), photo(2)];
    if !wayland {
        scene.put(&photos[0]);
    }

    let dir = tempfile::tempdir()?;
    let (_relay, addr, fp) = ponte_benches::start_relay(&dir.path().join("relay"))?;
    let link = Link::start(addr, profile)?;
    let (agent, ready) = start_agent(dir.path(), &desktop, link.addr, &fp);
    let started = Instant::now();
    let shared = Arc::new(std::sync::atomic::AtomicBool::new(false));
    if let Desktop::Wayland(session) = &desktop {
        tokio::spawn(answer_dialog(session.customer().await, shared.clone()));
    }
    let stream = viewer(
        addr,
        fp,
        ready["session_id"].as_str().unwrap(),
        ready["code"].as_str().unwrap(),
    )
    .await;
    // The request's answer is in; the first frame's clock starts here.
    let mut requested = Instant::now();
    eprintln!(
        "joined through the link in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let canvas = Arc::new(Mutex::new(Canvas::new()?));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Arrival>();
    let (mut send, mut recv) = (stream.send, stream.recv);
    let picture = canvas.clone();
    tokio::spawn(async move {
        let (mut decode, mut bytes, mut stats) = (Duration::ZERO, 0, FrameStats::default());
        // About the window the viewer opens for a 1920×1080 screen (half size, with its border).
        let (ww, wh) = (980, 560);
        let mut window = vec![0u32; ww * wh];
        while let Ok(Some(update)) = recv.recv::<ScreenUpdate>().await {
            bytes += frame::encode(&update, MAX_MESSAGE).unwrap().len();
            let start = Instant::now();
            let applied = picture.lock().unwrap().apply(update).unwrap();
            decode += start.elapsed();
            match applied {
                Applied::Stats => stats = picture.lock().unwrap().stats.unwrap(),
                Applied::Frame { frame, .. } => {
                    let start = Instant::now();
                    ponte_viewer::window::compose(
                        &picture.lock().unwrap(),
                        &mut window,
                        ww as u32,
                        wh as u32,
                        false,
                    );
                    let arrival = Arrival {
                        at: Instant::now(),
                        unix_us: unix_us(),
                        stats,
                        decode_us: decode.as_micros() as u64,
                        present_us: start.elapsed().as_micros() as u64,
                        bytes,
                    };
                    (decode, bytes) = (Duration::ZERO, 0);
                    let _ = tx.send(arrival);
                    send.send(&ScreenFeedback::Ack { frame }).await.unwrap();
                }
                _ => {}
            }
        }
    });

    // On Wayland the customer answers the system's dialog first: the clock starts when the
    // photo goes up on the shared (black) screen.
    if wayland {
        tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await?
            .ok_or_else(|| anyhow::anyhow!("stream ended"))?;
        shared.store(true, std::sync::atomic::Ordering::Relaxed);
        eprintln!("shared after {:.1} s", requested.elapsed().as_secs_f64());
        settle(&mut rx).await;
        scene.put(&photos[0]);
        requested = Instant::now();
    }

    // (1) A photo-like desktop: first usable picture (nothing stale), then exact.
    let trace = std::env::var_os("PONTE_BENCH_TRACE").is_some();
    let photo = until_exact(&mut rx, requested, &link, trace).await?;
    if wanted("photo") {
        photo.report(name, "photo", &canvas, &scene);
    }

    // (1b) A page of text, and (1c) the page with a photo on it, drawn at once: the time to
    // the exact picture against the time the link needs for the picture as one lossless WebP.
    for (label, with_photo) in [("text", false), ("mixed", true)] {
        if !wanted(label) {
            continue;
        }
        settle(&mut rx).await;
        scene.page();
        if with_photo {
            scene.put_part(&photos[1], 900, 240, 800, 520);
        }
        let requested = Instant::now();
        let shown = until_exact(&mut rx, requested, &link, trace).await?;
        shown.report(name, label, &canvas, &scene);
    }

    // (2) Typing in a terminal: a glyph-sized change of a new colour, ten a second.
    if wanted("typing") {
        scene.terminal();
        settle(&mut rx).await;
        let mut latencies = Vec::new();
        let mut frames = Vec::new();
        for n in 0..100u32 {
            let color = 0x0030_0000 + n * 0x0101;
            let (px, py) = (8 + (n as i16 % 200) * COLUMN, (H as i16 / LINE - 1) * LINE);
            let start = Instant::now();
            scene.rect(color, px, py, COLUMN as u16, LINE as u16);
            scene.conn.flush()?;
            loop {
                let a = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("stream ended"))?;
                frames.push(a);
                let c = canvas.lock().unwrap();
                if c.pixels()[(py as usize + 6) * usize::from(W) + px as usize + 3] == color {
                    latencies.push(a.at.duration_since(start).as_secs_f64() * 1e3);
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        println!(
            "{}",
            serde_json::json!({
                "link": name, "scene": "typing",
                "p50_ms": percentile(&latencies, 0.5), "p95_ms": percentile(&latencies, 0.95),
                "max_ms": percentile(&latencies, 1.0),
                "bytes_per_frame": mean(frames.iter().map(|a| a.bytes as f64)),
                "stages": stages(&frames),
            })
        );
    }

    // (3) Scrolling a page three lines at a time, 60 times a second, for 5 s.
    if wanted("scrolling") {
        scene.page();
        settle(&mut rx).await;
        let copies_before = canvas.lock().unwrap().copies;
        let mut frames = Vec::new();
        let start = Instant::now();
        let mut n = 0;
        let mut tick = tokio::time::interval(Duration::from_millis(16));
        while start.elapsed() < Duration::from_secs(5) {
            tick.tick().await;
            scene.scroll(n);
            n += 1;
            while let Ok(a) = rx.try_recv() {
                frames.push(a);
            }
        }
        let secs = start.elapsed().as_secs_f64();
        let ages: Vec<f64> = frames.iter().map(Arrival::age_ms).collect();
        println!(
            "{}",
            serde_json::json!({
                "link": name, "scene": "scrolling",
                "fps": frames.len() as f64 / secs, "scrolls_drawn": n,
                "age_p50_ms": percentile(&ages, 0.5), "age_p95_ms": percentile(&ages, 0.95),
                "age_max_ms": percentile(&ages, 1.0),
                "bytes_per_s": frames.iter().map(|a| a.bytes).sum::<usize>() as f64 / secs,
                "copies": canvas.lock().unwrap().copies - copies_before,
                "stages": stages(&frames),
            })
        );
    }

    // (4) Full-screen changes every 100 ms: terminal, photo, page, other photo.
    if wanted("full-screen") {
        settle(&mut rx).await;
        let mut frames = Vec::new();
        let start = Instant::now();
        let mut n = 0;
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        while start.elapsed() < Duration::from_secs(seconds) {
            tick.tick().await;
            match n % 4 {
                0 => scene.terminal(),
                1 => scene.put(&photos[0]),
                2 => scene.page(),
                _ => scene.put(&photos[1]),
            }
            n += 1;
            while let Ok(a) = rx.try_recv() {
                frames.push(a);
            }
        }
        let secs = start.elapsed().as_secs_f64();
        let ages: Vec<f64> = frames.iter().map(Arrival::age_ms).collect();
        let qualities: Vec<f64> = frames
            .iter()
            .filter(|a| a.stats.quality > 0)
            .map(|a| f64::from(a.stats.quality))
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "link": name, "scene": "full-screen",
                "seconds": secs, "changes": n, "fps": frames.len() as f64 / secs,
                "age_p50_ms": percentile(&ages, 0.5), "age_p95_ms": percentile(&ages, 0.95),
                "age_max_ms": percentile(&ages, 1.0),
                "bytes_per_s": frames.iter().map(|a| a.bytes).sum::<usize>() as f64 / secs,
                "mean_quality_when_lossy": mean(qualities.into_iter()),
                "mean_budget": mean(frames.iter().map(|a| f64::from(a.stats.budget))),
                "mean_rate": mean(frames.iter().map(|a| f64::from(a.stats.rate))),
                "stages": stages(&frames),
            })
        );
    }
    let c = &link.counters;
    eprintln!(
        "link: {} B up ({} dropped), {} B down ({} dropped)",
        c.up_bytes.load(std::sync::atomic::Ordering::Relaxed),
        c.up_dropped.load(std::sync::atomic::Ordering::Relaxed),
        c.down_bytes.load(std::sync::atomic::Ordering::Relaxed),
        c.down_dropped.load(std::sync::atomic::Ordering::Relaxed),
    );
    drop(agent);
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--codecs") {
        compare_text_codecs();
        compare_photo_codecs();
        return Ok(());
    }
    if let Some(i) = args.iter().position(|a| a == "--link") {
        let name = args.get(i + 1).map_or("dsl", String::as_str);
        let wayland = args.iter().any(|a| a == "--wayland");
        return link_scenes(name, arg("--seconds", 30), wayland).await;
    }
    let frames = arg("--frames", 200) as usize;
    let x = Xvfb::start(W, H);
    let mut scene = Scene::new(x.connect());
    let desktop = Desktop::X(x);

    println!(
        "encoder at {W}×{H}, {frames} frames per scene (zstd level {}):",
        ponte_screen::ZSTD_LEVEL
    );
    scene.terminal();
    let typing = measure(&mut scene, frames, |s, n| s.type_char(n));
    report("(b) typing in terminal", &typing);
    scene.page();
    let scrolling = measure(&mut scene, frames, |s, n| s.scroll(n as i16));
    report("(c) scrolling a page", &scrolling);
    let full = measure(&mut scene, frames.min(40), |s, n| {
        if n % 2 == 0 { s.terminal() } else { s.page() }
    });
    report("(a) full-screen change", &full);
    compare_codecs(&[
        ("(a) full-screen change", &full),
        ("(b) typing", &typing),
        ("(c) scrolling", &scrolling),
    ]);

    // Through the relay.
    let dir = tempfile::tempdir()?;
    let (_relay, addr, fp) = ponte_benches::start_relay(&dir.path().join("relay"))?;
    let (agent, ready) = start_agent(dir.path(), &desktop, addr, &fp);
    let stream = viewer(
        addr,
        fp,
        ready["session_id"].as_str().unwrap(),
        ready["code"].as_str().unwrap(),
    )
    .await;

    // The viewer task: applies updates, acknowledges frames, publishes each frame's time.
    let canvas = Arc::new(Mutex::new(Canvas::new()?));
    let (frame_tx, mut frame_rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let (mut send, mut recv) = (stream.send, stream.recv);
    let picture = canvas.clone();
    let bytes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = bytes.clone();
    tokio::spawn(async move {
        while let Ok(Some(update)) = recv.recv::<ScreenUpdate>().await {
            counted.fetch_add(
                frame::encode(&update, MAX_MESSAGE).unwrap().len(),
                std::sync::atomic::Ordering::Relaxed,
            );
            let applied = picture.lock().unwrap().apply(update).unwrap();
            if let Applied::Frame { frame, .. } = applied {
                let _ = frame_tx.send(Instant::now());
                send.send(&ScreenFeedback::Ack { frame }).await.unwrap();
            }
        }
    });
    // Wait for the first full frame.
    frame_rx.recv().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    while frame_rx.try_recv().is_ok() {}

    // Latency: a square of a new colour at a new place; time until the viewer has it.
    let mut latencies = Vec::new();
    for n in 0..frames {
        let color = 0x0010_0000 + n as u32 * 0x0101;
        // Below the agent's indicator bar at the top.
        let (px, py) = (
            (scene.random() % 1800) as i16,
            40 + (scene.random() % 1000) as i16,
        );
        let start = Instant::now();
        scene.rect(color, px, py, 32, 32);
        scene.conn.flush()?;
        loop {
            let Ok(at) = tokio::time::timeout(Duration::from_secs(5), frame_rx.recv()).await else {
                let c = canvas.lock().unwrap();
                let pixel = c.pixels()[(py as usize + 16) * usize::from(W) + px as usize + 16];
                anyhow::bail!("change {n} at ({px}, {py}) never arrived: {pixel:#x} instead of {color:#x}");
            };
            let at = at.unwrap();
            let c = canvas.lock().unwrap();
            let pixel = c.pixels()[(py as usize + 16) * usize::from(W) + px as usize + 16];
            if pixel == color {
                latencies.push(at.duration_since(start).as_secs_f64() * 1e3);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!(
        "\nthrough the relay (loopback, release relay + agent, 60 fps cap):\nchange → viewer latency: p50 {:.1} ms, p99 {:.1} ms ({} changes)",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.len()
    );

    // Sustained frame rate while the page scrolls as fast as X draws it.
    for (name, full) in [("scrolling", false), ("full-screen changes", true)] {
        scene.page();
        tokio::time::sleep(Duration::from_millis(300)).await;
        while frame_rx.try_recv().is_ok() {}
        bytes.store(0, std::sync::atomic::Ordering::Relaxed);
        let start = Instant::now();
        let mut count = 0;
        let mut n = 0;
        while start.elapsed() < Duration::from_secs(5) {
            if full {
                if n % 2 == 0 {
                    scene.terminal()
                } else {
                    scene.page()
                }
            } else {
                scene.scroll(n);
            }
            n += 1;
            while frame_rx.try_recv().is_ok() {
                count += 1;
            }
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "sustained while {name}: {:.1} frames/s received ({:.1} MB/s), {} screen updates drawn",
            count as f64 / secs,
            bytes.load(std::sync::atomic::Ordering::Relaxed) as f64 / secs / 1e6,
            n
        );
    }
    drop(agent);
    Ok(())
}
