//! The customer's window as the customer sees it: screenshots of an Xvfb display read with
//! tesseract OCR, words found and clicked with xdotool, and the session ID and code read off
//! the window to join with.

#![allow(clippy::unwrap_used, dead_code)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ponte_testbed::{Running, Xvfb};
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{ConnectionExt as _, ImageFormat};

use crate::world::World;

/// How long the window may take to show something.
pub const SHOW: Duration = Duration::from_secs(30);

/// A word tesseract read, with its box.
#[derive(Debug, Clone)]
pub struct Word {
    pub text: String,
    pub line: (u32, u32, u32, u32),
    pub x: i32,
    pub y: i32,
    pub w: i32,
    pub h: i32,
}

/// What is on the display: its words and where they are.
pub struct Seen {
    pub words: Vec<Word>,
}

impl Seen {
    pub fn text(&self) -> String {
        self.words
            .iter()
            .map(|w| w.text.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The centre of the first place `phrase` is written (consecutive words of one line).
    pub fn find(&self, phrase: &str) -> Option<(i32, i32)> {
        let wanted: Vec<&str> = phrase.split_whitespace().collect();
        let clean = |s: &str| s.trim_matches(|c: char| !c.is_alphanumeric()).to_owned();
        self.words.windows(wanted.len()).find_map(|run| {
            let same_line = run.iter().all(|w| w.line == run[0].line);
            let matches = run
                .iter()
                .zip(&wanted)
                .all(|(w, want)| clean(&w.text) == clean(want));
            (same_line && matches).then(|| {
                let (first, last) = (&run[0], &run[run.len() - 1]);
                ((first.x + last.x + last.w) / 2, first.y + first.h / 2)
            })
        })
    }
}

/// The display's pixels as RGB, cropped to what is not black (the window: there is no
/// window manager, so nothing else is drawn).
fn screenshot(x: &Xvfb) -> (Vec<u8>, usize, usize) {
    let (conn, screen) = x11rb::connect(Some(&x.display)).unwrap();
    let root = &conn.setup().roots[screen];
    let (width, height) = (
        usize::from(root.width_in_pixels),
        usize::from(root.height_in_pixels),
    );
    let image = conn
        .get_image(
            ImageFormat::Z_PIXMAP,
            root.root,
            0,
            0,
            root.width_in_pixels,
            root.height_in_pixels,
            !0,
        )
        .unwrap()
        .reply()
        .unwrap();
    let rgb: Vec<u8> = image
        .data
        .chunks_exact(4)
        .flat_map(|p| [p[2], p[1], p[0]])
        .collect();
    let lit = |x: usize, y: usize| rgb[(y * width + x) * 3..][..3].iter().any(|&c| c > 16);
    let w = (0..width)
        .rev()
        .find(|&x| (0..height).any(|y| lit(x, y)))
        .map_or(width, |x| x + 1);
    let h = (0..height)
        .rev()
        .find(|&y| (0..w).any(|x| lit(x, y)))
        .map_or(height, |y| y + 1);
    let cropped = (0..h)
        .flat_map(|y| rgb[y * width * 3..][..w * 3].to_vec())
        .collect();
    (cropped, w, h)
}

fn write_png(path: &std::path::Path, data: &[u8], width: usize, height: usize, color: png::ColorType) {
    let file = std::fs::File::create(path).unwrap();
    let mut encoder = png::Encoder::new(file, width as u32, height as u32);
    encoder.set_color(color);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.write_header().unwrap().write_image_data(data).unwrap();
}

/// A grey picture for OCR, `scale` times larger: tesseract reads UI-sized text far better
/// enlarged. `invert` turns light text on coloured ground (the red warning, the buttons)
/// into dark on light: the darkest channel, inverted.
fn for_ocr(rgb: &[u8], width: usize, height: usize, scale: usize, invert: bool) -> Vec<u8> {
    let grey = |p: &[u8]| {
        if invert {
            255 - p[0].min(p[1]).min(p[2])
        } else {
            ((u32::from(p[0]) * 30 + u32::from(p[1]) * 59 + u32::from(p[2]) * 11) / 100) as u8
        }
    };
    let mut out = Vec::with_capacity(width * height * scale * scale);
    for y in 0..height * scale {
        for x in 0..width * scale {
            out.push(grey(&rgb[((y / scale) * width + x / scale) * 3..][..3]));
        }
    }
    out
}

/// Writes the display as a PNG to `$PONTE_SCREENSHOTS/<name>.png` when that variable names a
/// folder (to look at what a test saw, and for the README's pictures); nothing otherwise.
pub fn keep(x: &Xvfb, name: &str) {
    let Some(dir) = std::env::var_os("PONTE_SCREENSHOTS") else {
        return;
    };
    let (rgb, width, height) = screenshot(x);
    let file = std::fs::File::create(std::path::Path::new(&dir).join(format!("{name}.png"))).unwrap();
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), width as u32, height as u32);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.write_header().unwrap().write_image_data(&rgb).unwrap();
}

/// Reads the display. Each `attempt` prepares the picture differently (scale), so that
/// waiting for something is not asking the same question of the same picture again.
pub fn look(x: &Xvfb, name: &str, attempt: usize) -> Seen {
    read(screenshot(x), name, attempt)
}

/// Whether `phrase` was on the display at some moment in the next `span`: the screenshots are
/// taken first (a few a second), then read, so that something shown for a few seconds is seen
/// however slow reading is.
pub fn shown_within(x: &Xvfb, name: &str, phrase: &str, span: Duration) -> bool {
    let deadline = Instant::now() + span;
    let mut shots = Vec::new();
    while Instant::now() < deadline {
        shots.push(screenshot(x));
        std::thread::sleep(Duration::from_millis(250));
    }
    // The middle first: by then it is shown, and not gone yet.
    let middle = shots.len() / 2;
    let order = (middle..shots.len()).chain((0..middle).rev());
    let mut shots: Vec<Option<_>> = shots.into_iter().map(Some).collect();
    order.enumerate().any(|(attempt, i)| {
        let shot = shots[i].take().unwrap();
        read(shot, name, attempt).find(phrase).is_some()
    })
}

/// Reads a picture of a Wayland session's screen (see [`look`]).
pub fn look_at(picture: &ponte_testbed::wayland::Picture, name: &str, attempt: usize) -> Seen {
    let rgb = picture
        .pixels
        .iter()
        .flat_map(|p| [(p >> 16) as u8, (p >> 8) as u8, *p as u8])
        .collect();
    let size = (usize::from(picture.width), usize::from(picture.height));
    read((rgb, size.0, size.1), name, attempt)
}

/// Reads a screenshot (see [`look`]).
fn read((rgb, width, height): (Vec<u8>, usize, usize), name: &str, attempt: usize) -> Seen {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("window");
    std::fs::create_dir_all(&dir).unwrap();
    write_png(
        &dir.join(format!("{name}.png")),
        &rgb,
        width,
        height,
        png::ColorType::Rgb,
    );
    let scale = [2, 3, 1][attempt % 3];
    let mut words = Vec::new();
    // Page segmentation 3 (automatic) reads the large session ID and code; 6 (one uniform
    // block) the widgets' text; the inverted picture the white text on red and green. All
    // are kept, their lines apart.
    for (pass, (psm, invert)) in [(3, false), (6, false), (6, true)].into_iter().enumerate() {
        let path = dir.join(format!("{name}-ocr{pass}.png"));
        let grey = for_ocr(&rgb, width, height, scale, invert);
        write_png(
            &path,
            &grey,
            width * scale,
            height * scale,
            png::ColorType::Grayscale,
        );
        let out = Command::new("tesseract")
            // One thread: several fight over two cores and are many times slower.
            .env("OMP_THREAD_LIMIT", "1")
            .arg(&path)
            .args(["-", "--psm", &psm.to_string(), "tsv"])
            .stderr(Stdio::null())
            .output()
            .expect("tesseract is needed for the window tests (apt-get install tesseract-ocr)");
        assert!(out.status.success(), "tesseract failed on {}", path.display());
        let pass = pass as u32;
        let at = |v: i32| v / scale as i32;
        words.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .skip(1)
                .filter_map(|line| {
                    let f: Vec<&str> = line.split('\t').collect();
                    let n = |i: usize| f.get(i).and_then(|v| v.parse::<i32>().ok());
                    let text = f.get(11)?.trim();
                    if f.len() != 12 || text.is_empty() {
                        return None;
                    }
                    Some(Word {
                        text: text.to_owned(),
                        line: (pass, n(2)? as u32, n(3)? as u32, n(4)? as u32),
                        x: at(n(6)?),
                        y: at(n(7)?),
                        w: at(n(8)?),
                        h: at(n(9)?),
                    })
                }),
        );
    }
    Seen { words }
}

/// Reads the display until `found` finds something in it.
pub fn wait_for<T>(x: &Xvfb, name: &str, mut found: impl FnMut(&Seen) -> Option<T>) -> T {
    let deadline = Instant::now() + SHOW;
    for attempt in 0.. {
        let seen = look(x, name, attempt);
        if let Some(t) = found(&seen) {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "the window never showed what {name} looks for; it shows: {}",
            seen.text()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    unreachable!()
}

/// Where `phrase` is, once the window shows it.
pub fn wait_for_phrase(x: &Xvfb, name: &str, phrase: &str) -> (i32, i32) {
    wait_for(x, name, |seen| seen.find(phrase))
}

/// Where `phrase` is, once two looks in a row find it in the same place: a screenshot taken
/// while the window repaints can show it elsewhere for a moment.
pub fn wait_for_steady_phrase(x: &Xvfb, name: &str, phrase: &str) -> (i32, i32) {
    let mut last: Option<(i32, i32)> = None;
    wait_for(x, name, |seen| {
        let now = seen.find(phrase);
        let steady =
            matches!((last, now), (Some((a, b)), Some((c, d))) if (a - c).abs() + (b - d).abs() <= 4);
        last = now;
        steady.then_some(now).flatten()
    })
}

/// The customer clicks at `(px, py)` (a local click: xdotool, not the assistant).
pub fn click(x: &Xvfb, (px, py): (i32, i32)) {
    let status = Command::new("xdotool")
        .env("DISPLAY", &x.display)
        // As a hand clicks: the button is down for a moment, not for no time at all.
        .args(["mousemove", &px.to_string(), &py.to_string(), "sleep", "0.2"])
        .args(["mousedown", "1", "sleep", "0.1", "mouseup", "1"])
        .status()
        .expect("xdotool is needed for the window tests (apt-get install xdotool)");
    assert!(status.success());
    std::thread::sleep(Duration::from_millis(300));
}

/// The session ID (`123 456 789`) and code (`1234-5678`) in what the window shows.
pub fn id_and_code(seen: &Seen) -> Option<(String, String)> {
    let words: Vec<&str> = seen.words.iter().map(|w| w.text.as_str()).collect();
    let digits = |s: &str, n: usize| s.len() == n && s.chars().all(|c| c.is_ascii_digit());
    let id = words
        .windows(3)
        .find(|w| w.iter().all(|p| digits(p, 3)))
        .map(|w| w.concat())?;
    // The code as one word, or as two when the OCR sees a space beside the hyphen ("8333- 0859").
    let code = words.iter().enumerate().find_map(|(i, w)| {
        let next = words.get(i + 1).copied().unwrap_or_default();
        let joined = if w.ends_with('-') || next.starts_with('-') {
            format!("{w}{next}")
        } else {
            (*w).to_owned()
        };
        let (a, b) = joined.split_once('-')?;
        (digits(a, 4) && digits(b, 4)).then(|| format!("{a}{b}"))
    })?;
    Some((id, code))
}

/// `read`, but only once two looks (at different times, often at different OCR scales) read
/// the same: a digit misread once would send the assistant to a session nobody holds.
pub fn agreed<T: Clone + PartialEq>(
    mut read: impl FnMut(&Seen) -> Option<T>,
) -> impl FnMut(&Seen) -> Option<T> {
    let mut readings = Vec::new();
    move |seen| {
        let now = read(seen)?;
        if readings.contains(&now) {
            return Some(now);
        }
        readings.push(now);
        None
    }
}

/// Reads the session ID and code the window shows (`read`, agreed by two looks) and joins
/// with the credentials `credentials` makes. OCR can misread a digit alike twice; the join
/// then fails (no such session, or a failed handshake) and the test reads again, never taking
/// a refused reading twice — at most twice, since failed handshakes use up the customer's
/// attempts.
pub async fn join_shown(
    w: &World,
    x: &Xvfb,
    name: &str,
    read: impl Fn(&Seen) -> Option<(String, String)>,
    credentials: impl Fn() -> ponte_e2e::handshake::Credentials,
) -> ponte_viewer::Viewer {
    let look = async |refused: &[(String, String)]| {
        wait_for(
            x,
            name,
            agreed(|seen| read(seen).filter(|r| !refused.contains(r))),
        )
    };
    join_read(w, name, look, credentials).await
}

/// Joins with the ID and code `look` reads, never one of those it is given (refused before),
/// reading again when the join is refused, as [`join_shown`] says.
pub async fn join_read(
    w: &World,
    name: &str,
    mut look: impl AsyncFnMut(&[(String, String)]) -> (String, String),
    credentials: impl Fn() -> ponte_e2e::handshake::Credentials,
) -> ponte_viewer::Viewer {
    let mut refused: Vec<(String, String)> = Vec::new();
    loop {
        let (id, code) = look(&refused).await;
        match ponte_viewer::join(w.join_options(&id, &code, credentials())).await {
            Ok((viewer, _)) => return viewer,
            Err(e) if refused.len() < 2 => {
                eprintln!("{name}: the reading {id} {code} was refused ({e}); reading again");
                refused.push((id, code));
            }
            Err(e) => panic!("{name}: joining with what the window shows failed: {e}"),
        }
    }
}

/// Starts the agent with its window on `x`.
pub fn window_agent(w: &World, x: &Xvfb, lang: &str, args: &[&str]) -> Running {
    let mut cmd = w.command("ponte-agent");
    cmd.env("DISPLAY", &x.display)
        .env("LANG", lang)
        .arg("--dir")
        .arg(w.path("agent-home"))
        .args(args)
        .stdin(Stdio::null());
    Running::start(cmd)
}

/// The Allow button of the open question dialog. OCR does not read the short button labels on
/// their fills; Allow sits below and right of the "Allow?" line (Deny, then Allow, each 140 px
/// wide).
pub fn allow_button(seen: &Seen) -> Option<(i32, i32)> {
    let w = seen.words.iter().find(|w| w.text == "Allow?")?;
    Some((w.x + 244, w.y + w.h / 2 + 39))
}

/// The Deny button of the open question dialog (see [`allow_button`]).
pub fn deny_button(seen: &Seen) -> Option<(i32, i32)> {
    let w = seen.words.iter().find(|w| w.text == "Allow?")?;
    Some((w.x + 70, w.y + w.h / 2 + 39))
}

/// The input events of a left click at `(px, py)`, for the assistant to inject.
pub fn click_at((px, py): (i32, i32)) -> Vec<ponte_e2e::screen::InputEvent> {
    use ponte_e2e::screen::InputEvent;
    let (x, y) = (u16::try_from(px).unwrap(), u16::try_from(py).unwrap());
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
}

/// The End session button a question's dialog shows during a session, below its Deny button.
pub fn dialog_end_button(seen: &Seen) -> Option<(i32, i32)> {
    let w = seen.words.iter().find(|w| w.text == "Allow?")?;
    Some((w.x + 70, w.y + w.h / 2 + 95))
}
