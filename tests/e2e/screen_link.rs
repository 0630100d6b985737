//! Screen sharing through the link emulator (`ponte_testbed::link`) between the agent and the
//! relay: short, bounded runs that check behaviour, not figures (those are in screen-bench).

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use ponte_e2e::app::Request;
use ponte_e2e::screen::{FrameStats, ScreenFeedback, ScreenUpdate};
use ponte_screen::{Applied, Canvas};
use ponte_testbed::Xvfb;
use ponte_testbed::link::{Link, Profile};
use x11rb::protocol::xproto::{ConnectionExt as _, Rectangle};

use crate::display;
use crate::world;

use display::*;
use world::*;

/// Photo-like: gradients under strong grain, which no lossless coder shrinks much.
fn photo(seed: u32) -> impl Fn(usize, usize) -> u32 {
    move |x, y| {
        let mut h = (x as u32).wrapping_mul(0x9E37_79B9) ^ (y as u32).wrapping_mul(0x85EB_CA6B) ^ seed;
        h ^= h >> 15;
        h = h.wrapping_mul(0x2C1B_3C6D);
        h ^= h >> 12;
        let n = h % 40;
        let c = |v: usize| (v as u32 + n).min(255);
        c(x / 5) << 16 | c(y / 4) << 8 | c((x + y) / 10)
    }
}

fn unix_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// An agent sharing `display` whose relay is reached through a link of `profile`, and a
/// screen stream to it.
struct Shared {
    _agent: ponte_testbed::Running,
    _link: Link,
    _viewer: ponte_viewer::Viewer,
    stream: ponte_session::SecureStream,
    canvas: Canvas,
}

impl Shared {
    async fn start(w: &World, display: &str, profile: Profile) -> Shared {
        let link = Link::start(w.addr, profile).unwrap();
        let fp = w.relay.as_ref().unwrap().fingerprint().to_string();
        let relay = link.addr.to_string();
        let (agent, id, code) = w.agent(&[
            "--allow",
            "screen",
            "--display",
            display,
            "--relay",
            &relay,
            "--fingerprint",
            &fp,
        ]);
        let viewer = w.assistant(&id, &code).await;
        let stream = viewer.request(&Request::Screen { max_fps: 30 }).await.unwrap();
        Shared {
            _agent: agent,
            _link: link,
            _viewer: viewer,
            stream,
            canvas: Canvas::new().unwrap(),
        }
    }

    /// Applies updates until a frame ends (acknowledging it); returns its figures.
    async fn frame(&mut self) -> FrameStats {
        loop {
            let update = tokio::time::timeout(WAIT, self.stream.recv.expect::<ScreenUpdate>())
                .await
                .expect("a frame in time")
                .unwrap();
            if let Applied::Frame { frame, .. } = self.canvas.apply(update).unwrap() {
                self.stream
                    .send
                    .send(&ScreenFeedback::Ack { frame })
                    .await
                    .unwrap();
                return self.canvas.stats.unwrap();
            }
        }
    }
}

/// Over DSL (5 Mbit/s up), a photo-like screen is first a complete lossy picture, well before
/// its lossless size could have crossed the uplink, and later exactly the display.
#[tokio::test(flavor = "multi_thread")]
async fn over_a_slow_uplink_a_photo_is_usable_first_and_exact_later() {
    let (width, height) = (1024, 768);
    let x = Xvfb::start(width, height);
    let conn = x.connect();
    paint(&conn, window(&conn, width, height), width, height, photo(1));
    let display = dump(&conn).2;
    let raw: Vec<u8> = display
        .iter()
        .flat_map(|p| p.to_le_bytes()[..3].to_vec())
        .collect();
    let lossless = zstd::bulk::compress(&raw, 3).unwrap().len();
    // What the lossless picture alone needs on 5 Mbit/s.
    let lossless_time = Duration::from_secs_f64(lossless as f64 * 8.0 / 5e6);
    assert!(
        lossless_time > Duration::from_secs(1),
        "the test picture is photo-like: {lossless} B"
    );

    let w = World::new().await;
    let mut shared = Shared::start(&w, &x.display, Profile::dsl()).await;
    let start = Instant::now();
    let usable = loop {
        let stats = shared.frame().await;
        if stats.backlog_us == 0 {
            break start.elapsed();
        }
    };
    assert!(shared.canvas.lossy > 0, "the first picture is lossy");
    // The display now, with the agent's indicator bar on it.
    let display = dump(&conn).2;
    assert!(
        usable < lossless_time / 2,
        "usable after {usable:?}; lossless alone takes {lossless_time:?}"
    );
    let error: u64 = shared
        .canvas
        .pixels()
        .iter()
        .zip(&display)
        .map(|(a, b)| u64::from(((a >> 8) as u8).abs_diff((b >> 8) as u8)))
        .sum();
    let mean = error as f64 / display.len() as f64;
    assert!(mean < 30.0, "a recognisable picture (mean error {mean:.1})");
    assert_ne!(shared.canvas.pixels(), &display[..], "not exact yet");

    let deadline = Instant::now() + Duration::from_secs(40);
    while shared.frame().await.inexact_tiles > 0 {
        assert!(Instant::now() < deadline, "never refined to exact");
    }
    assert!(shared.canvas.tiles > 0, "refined with exact tiles");
    assert_eq!(
        shared.canvas.pixels(),
        &display[..],
        "refined to the display, pixel for pixel"
    );
}

/// Over DSL, a screen that changes completely every 100 ms: frames keep coming and the
/// picture's age stays bounded instead of growing with a queue.
#[tokio::test(flavor = "multi_thread")]
async fn over_a_slow_uplink_constant_change_keeps_the_frame_age_bounded() {
    let (width, height) = (800, 600);
    let x = Xvfb::start(width, height);
    let conn = x.connect();
    let win = window(&conn, width, height);
    paint(&conn, win, width, height, photo(0));
    let w = World::new().await;
    let mut shared = Shared::start(&w, &x.display, Profile::dsl()).await;
    shared.frame().await;

    // The painter: a new full-screen photo every 100 ms for 6 s (on its own connection).
    let display = x.display.clone();
    let painter = std::thread::spawn(move || {
        let (conn, _) = x11rb::connect(Some(&display)).unwrap();
        let win = window(&conn, width, height);
        for seed in 1..=60 {
            let started = Instant::now();
            paint(&conn, win, width, height, photo(seed));
            std::thread::sleep(Duration::from_millis(100).saturating_sub(started.elapsed()));
        }
    });
    let start = Instant::now();
    let mut ages = Vec::new();
    while !painter.is_finished() {
        let stats = shared.frame().await;
        let since = stats.captured_unix_us.saturating_sub(u64::from(stats.backlog_us));
        ages.push((
            start.elapsed(),
            Duration::from_micros(unix_us().saturating_sub(since)),
        ));
    }
    painter.join().unwrap();
    assert!(ages.len() >= 20, "frames kept coming: {}", ages.len());
    let late: Vec<Duration> = ages
        .iter()
        .filter(|(t, _)| *t > Duration::from_secs(2))
        .map(|(_, a)| *a)
        .collect();
    let worst = late.iter().max().unwrap();
    assert!(
        *worst < Duration::from_secs(2),
        "frame age reached {worst:?}: {ages:?}"
    );
}

/// Through the link, a page scrolled by CopyArea travels as a move plus the new rows.
#[tokio::test(flavor = "multi_thread")]
async fn a_scroll_travels_as_a_move_and_the_new_rows() {
    let (width, height) = (640, 480);
    let x = Xvfb::start(width, height);
    let conn = x.connect();
    let win = window(&conn, width, height);
    // Text-like rows: dark marks on white that differ from row to row.
    let page = |x: usize, y: usize| {
        let h = (y as u32)
            .wrapping_mul(0x9E37_79B9)
            .rotate_left((x / 6) as u32 % 32);
        if h & 3 == 0 { 0x20_20_20 } else { 0xff_ff_ff }
    };
    paint(&conn, win, width, height, page);
    let w = World::new().await;
    let mut shared = Shared::start(&w, &x.display, Profile::lan()).await;
    while shared.frame().await.inexact_tiles > 0 {}
    let tiles = shared.canvas.tiles;

    // Scroll up by 40 rows and draw the new ones, as a browser does.
    conn.copy_area(win.0, win.0, win.1, 0, 40, 0, 0, width, height - 40)
        .unwrap();
    let aux = x11rb::protocol::xproto::ChangeGCAux::new().foreground(0x00ff_ffff);
    conn.change_gc(win.1, &aux).unwrap();
    let fresh = Rectangle {
        x: 0,
        y: 440,
        width,
        height: 40,
    };
    conn.poly_fill_rectangle(win.0, win.1, &[fresh]).unwrap();
    sync(&conn);
    let display = dump(&conn).2;
    let deadline = Instant::now() + Duration::from_secs(20);
    while shared.canvas.pixels() != &display[..] {
        assert!(Instant::now() < deadline, "the scroll never arrived");
        shared.frame().await;
    }
    let copies = shared.canvas.copies;
    // One move, or a few where the agent's indicator at the top splits the page's stripes.
    assert!((1..=4).contains(&copies), "{copies} moves");
    let sent = shared.canvas.tiles - tiles;
    // The 40 new rows lie in the last two tile rows: 2 × 10 tiles, not 80 — plus the top
    // tiles of the two stripes the indicator bar's edges cut (their page rows beside the bar
    // did not move as a whole stripe).
    assert!(sent <= 22, "{sent} tiles sent for a scroll");
}
