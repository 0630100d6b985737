//! Screen sharing figures at 1920×1080 on an Xvfb display, in one run:
//! - per frame, bytes on the wire and encode time for (a) a full-screen change, (b) typing in a
//!   terminal, (c) scrolling a page — real X text rendering, captured with GetImage, encoded by
//!   `ponte_screen::Encoder`; beside it the same changed tiles under other codecs, which is how
//!   the tile codec was chosen;
//! - through the relay on loopback, with the release relay and agent binaries and an in-process
//!   viewer: sustained frames per second while the screen scrolls, and the latency from a
//!   change on the display to the viewer having the frame that shows it (p50/p99).
//!
//! Run: `cargo run --release -p ponte-benches --bin screen-bench [-- --frames 200]`.

#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ponte_protocol::app::{MAX_MESSAGE, Request};
use ponte_protocol::frame;
use ponte_protocol::handshake::Credentials;
use ponte_protocol::identity::PrivateKey;
use ponte_protocol::screen::{ScreenFeedback, ScreenUpdate};
use ponte_screen::{Applied, Canvas, Encoder, Image};
use ponte_tests::{Running, Xvfb, binary};
use ponte_transport::tls::CertFingerprint;
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

    fn capture(&self) -> Vec<u8> {
        let root = self.conn.setup().roots[0].root;
        let reply = self
            .conn
            .get_image(ImageFormat::Z_PIXMAP, root, 0, 0, W, H, !0)
            .unwrap()
            .reply()
            .unwrap();
        reply.data
    }
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
            key: PrivateKey::generate(&mut ponte_protocol::os_rng()).unwrap(),
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let frames = arg("--frames", 200) as usize;
    let x = Xvfb::start(W, H);
    let mut scene = Scene::new(x.connect());

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
    let mut agent = std::process::Command::new(binary("ponte-agent"));
    agent
        .env("HOME", dir.path())
        .env("XDG_DATA_HOME", dir.path())
        .env("XDG_CONFIG_HOME", dir.path())
        .args([
            "--json",
            "--allow",
            "screen",
            "--display",
            &x.display,
            "--relay",
            &addr.to_string(),
        ])
        .args(["--fingerprint", &fp.to_string()]);
    let agent = Running::start(agent);
    let ready = agent.event("ready", Duration::from_secs(30));
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
