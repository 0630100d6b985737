//! The customer's window, driven the way a customer does: the tests read the screen (a
//! screenshot of an Xvfb display, read with tesseract OCR), click words with xdotool, and
//! check with a real viewer through a real relay what the clicks did.

#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ponte_protocol::app::Capability;
use ponte_protocol::screen::InputEvent;
use ponte_tests::{Running, Xvfb};
use ponte_viewer::{Notice, TerminalOutput, ViewerError};
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{ConnectionExt as _, ImageFormat};

mod world;

use world::*;

/// How long the window may take to show something.
const SHOW: Duration = Duration::from_secs(30);

/// A word tesseract read, with its box.
#[derive(Debug, Clone)]
struct Word {
    text: String,
    line: (u32, u32, u32, u32),
    x: i32,
    y: i32,
    w: i32,
    h: i32,
}

/// What is on the display: its words and where they are.
struct Seen {
    words: Vec<Word>,
}

impl Seen {
    fn text(&self) -> String {
        self.words
            .iter()
            .map(|w| w.text.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The centre of the first place `phrase` is written (consecutive words of one line).
    fn find(&self, phrase: &str) -> Option<(i32, i32)> {
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

/// Reads the display. Each `attempt` prepares the picture differently (scale), so that
/// waiting for something is not asking the same question of the same picture again.
fn look(x: &Xvfb, name: &str, attempt: usize) -> Seen {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("window");
    std::fs::create_dir_all(&dir).unwrap();
    let (rgb, width, height) = screenshot(x);
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
fn wait_for<T>(x: &Xvfb, name: &str, mut found: impl FnMut(&Seen) -> Option<T>) -> T {
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
fn wait_for_phrase(x: &Xvfb, name: &str, phrase: &str) -> (i32, i32) {
    wait_for(x, name, |seen| seen.find(phrase))
}

/// The customer clicks at `(px, py)` (a local click: xdotool, not the assistant).
fn click(x: &Xvfb, (px, py): (i32, i32)) {
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
fn id_and_code(seen: &Seen) -> Option<(String, String)> {
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
fn agreed<T: Clone + PartialEq>(mut read: impl FnMut(&Seen) -> Option<T>) -> impl FnMut(&Seen) -> Option<T> {
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
async fn join_shown(
    w: &World,
    x: &Xvfb,
    name: &str,
    read: impl Fn(&Seen) -> Option<(String, String)>,
    credentials: impl Fn() -> ponte_protocol::handshake::Credentials,
) -> ponte_viewer::Viewer {
    let mut refused: Vec<(String, String)> = Vec::new();
    loop {
        let (id, code) = wait_for(
            x,
            name,
            agreed(|seen| read(seen).filter(|r| !refused.contains(r))),
        );
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
fn window_agent(w: &World, x: &Xvfb, lang: &str, args: &[&str]) -> Running {
    let mut cmd = w.command("ponte-agent");
    cmd.env("DISPLAY", &x.display)
        .env("LANG", lang)
        .arg("--dir")
        .arg(w.path("agent-home"))
        .args(args)
        .stdin(Stdio::null());
    Running::start(cmd)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_customer_reads_the_code_allows_by_clicking_revokes_and_ends_the_session() {
    let x = Xvfb::start(1024, 800);
    let w = World::new().await;
    let mut agent = window_agent(&w, &x, "C.UTF-8", &[]);
    // What the customer reads out works for the assistant.
    let mut viewer = join_shown(&w, &x, "waiting", id_and_code, test_assistant).await;
    let mut notices = viewer.notices().unwrap();
    wait_for_phrase(&x, "consent", "UNVERIFIED ASSISTANT");
    for phrase in ["Terminal", "Copy files from here"] {
        let at = wait_for_phrase(&x, "consent", phrase);
        click(&x, at);
    }
    let allow = wait_for_phrase(&x, "consent", "Allow selected");
    click(&x, allow);
    let granted = viewer.consent(WAIT).await.expect("the customer allowed");
    assert!(granted.allows(Capability::Terminal) && granted.allows(Capability::Download));
    assert!(!granted.allows(Capability::Info) && !granted.allows(Capability::Upload));
    let mut out = Vec::new();
    let status = viewer
        .exec("echo clicked-$((6*7))", |_, data| out.extend_from_slice(data))
        .await
        .unwrap();
    assert_eq!((status, text(&out).trim()), (Some(0), "clicked-42"));
    let refused = viewer.info().await.unwrap_err();
    assert!(
        matches!(&refused, ViewerError::Refused(r) if r.as_raw().contains("info")),
        "{refused}"
    );

    // Switching the terminal off stops a running shell.
    let mut terminal = viewer.shell(80, 24).await.unwrap();
    terminal
        .input(b"while :; do echo tick; sleep 0.1; done\n".to_vec())
        .await
        .unwrap();
    let mut output = Vec::new();
    while text(&output).matches("tick").count() < 3 {
        match tokio::time::timeout(WAIT, terminal.output())
            .await
            .unwrap()
            .unwrap()
        {
            TerminalOutput::Output(data) => output.extend_from_slice(&data),
            TerminalOutput::Exit(code) => panic!("the shell exited ({code:?})"),
        }
    }
    let switch = wait_for_phrase(&x, "session", "Terminal");
    click(&x, switch);
    let reason = loop {
        match tokio::time::timeout(Duration::from_secs(10), terminal.output()).await {
            Ok(Ok(TerminalOutput::Output(_))) => continue,
            Ok(Err(ViewerError::Failed(reason))) => break reason,
            other => panic!("the shell went on after the switch was clicked off: {other:?}"),
        }
    };
    assert!(reason.as_raw().contains("revoked 'terminal'"), "{reason}");

    // "End session" ends the viewer's session with the reason.
    let end = wait_for_phrase(&x, "session", "End session");
    click(&x, end);
    let ended = tokio::time::timeout(WAIT, async {
        loop {
            match notices.recv().await {
                Some(Notice::Ended(reason)) => break reason,
                Some(_) => continue,
                None => panic!("the session went away without a reason"),
            }
        }
    })
    .await
    .unwrap();
    assert!(ended.contains("customer ended"), "{ended}");
    let close = wait_for(&x, "ended", |seen| {
        seen.text()
            .contains("Session ended")
            .then(|| seen.find("Close"))
            .flatten()
    });
    click(&x, close);
    assert!(
        agent.wait(WAIT).success(),
        "the agent exits when the customer closes the window"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_assistants_clicks_on_the_window_do_nothing() {
    let x = Xvfb::start(1024, 800);
    let w = World::new().await;
    let mut agent = window_agent(
        &w,
        &x,
        "C.UTF-8",
        &["--allow", "terminal,control", "--display", &x.display],
    );
    let viewer = join_shown(&w, &x, "control-waiting", id_and_code, test_assistant).await;
    viewer.consent(WAIT).await.unwrap();
    let end = wait_for_phrase(&x, "control-session", "End session");
    let switch = wait_for_phrase(&x, "control-session", "Terminal");
    let click_at = |(px, py): (i32, i32)| {
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
    };
    // The assistant clicks the terminal switch, "End session", and presses Enter and space
    // (a focused button's keys).
    viewer.input(click_at(switch)).await.unwrap();
    viewer.input(click_at(end)).await.unwrap();
    for keysym in [0xff0d_u32, 0x20] {
        for pressed in [true, false] {
            viewer
                .input(vec![InputEvent::Key { keysym, pressed }])
                .await
                .unwrap();
        }
    }
    // The window says why (for a few seconds).
    wait_for_phrase(&x, "control-after", "Not taken");
    let mut out = Vec::new();
    let status = viewer
        .exec("echo still-here", |_, d| out.extend_from_slice(d))
        .await;
    assert!(
        matches!(status, Ok(Some(0))) && text(&out).contains("still-here"),
        "the session and the terminal permission survive the assistant's clicks: {status:?}"
    );
    assert!(agent.child.try_wait().unwrap().is_none(), "the agent still runs");
    // The customer's own click, a moment later, works.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    click(&x, end);
    let close = wait_for(&x, "control-ended", |seen| {
        seen.text()
            .contains("Session ended")
            .then(|| seen.find("Close"))
            .flatten()
    });
    click(&x, close);
    assert!(agent.wait(WAIT).success());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_window_and_the_terminal_speak_italian_and_polish() {
    for (lang, session, unverified) in [
        ("it_IT.UTF-8", "ID sessione", "ASSISTENTE NON VERIFICATO"),
        ("pl_PL.UTF-8", "ID sesji", "NIEZWERYFIKOWANY ASYSTENT"),
    ] {
        let x = Xvfb::start(1024, 800);
        let w = World::new().await;
        let mut agent = window_agent(&w, &x, lang, &[]);
        let read = |seen: &Seen| seen.text().contains(session).then(|| id_and_code(seen)).flatten();
        let viewer = join_shown(&w, &x, &format!("{lang}-waiting"), read, test_assistant).await;
        wait_for_phrase(&x, &format!("{lang}-consent"), unverified);
        drop(viewer);
        agent.terminate(WAIT);

        // The terminal UI too.
        let mut cmd = w.command("ponte-agent");
        cmd.env("LANG", lang).arg("--text").stdin(Stdio::piped());
        let mut text_agent = Running::start(cmd);
        text_agent.expect(session);
        text_agent.terminate(WAIT);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_window_works_with_the_keyboard_alone() {
    let x = Xvfb::start(1024, 800);
    let w = World::new().await;
    let mut agent = window_agent(&w, &x, "C.UTF-8", &[]);
    let viewer = join_shown(&w, &x, "keyboard-waiting", id_and_code, test_assistant).await;
    wait_for_phrase(&x, "keyboard-consent", "UNVERIFIED ASSISTANT");
    // A window manager gives a new window the keyboard; Xvfb has none, so the test does.
    // Then: Tab to the terminal switch, Space; five Tabs on to "Allow selected" (past put,
    // copy, information, screen; the control switch is off while the screen is), Enter.
    let keys = Command::new("xdotool")
        .env("DISPLAY", &x.display)
        .args(["search", "--name", "^Ponte", "windowfocus", "--sync", "%1"])
        .args(["sleep", "0.3", "key", "--delay", "150", "Tab", "space"])
        .args(["Tab", "Tab", "Tab", "Tab", "Tab", "Return"])
        .status()
        .unwrap();
    assert!(keys.success());
    let granted = viewer.consent(WAIT).await.expect("allowed from the keyboard");
    assert_eq!(
        granted.list(),
        vec![Capability::Terminal],
        "exactly the switch turned on"
    );
    agent.terminate(WAIT);
}

/// Runs `ponte-viewer` with `args` in `w` and checks it succeeded.
#[tokio::test(flavor = "multi_thread")]
async fn the_window_asks_about_quick_access_and_keeps_the_customers_yes() {
    let x = Xvfb::start(1024, 800);
    let w = World::new().await;
    // A verified assistant: Alice, certified by ACME Support, whom the customer's agent trusts.
    let org_pub = w.certified("alice", "Alice Example", "acme", "ACME Support");
    let identity = w.path("alice");

    let mut agent = window_agent(&w, &x, "C.UTF-8", &["--trust-org", &org_pub]);
    let (_, created) = ponte_viewer::identity::load_or_create(&identity).unwrap();
    assert!(!created);
    let alice = || ponte_viewer::identity::load_or_create(&identity).unwrap().0;
    let viewer = join_shown(&w, &x, "quick-waiting", id_and_code, alice).await;
    wait_for_phrase(&x, "quick-consent", "ACME Support");
    click(&x, wait_for_phrase(&x, "quick-consent", "Terminal"));
    click(&x, wait_for_phrase(&x, "quick-consent", "Allow selected"));
    viewer.consent(WAIT).await.expect("the customer allowed");

    // The assistant asks; the window puts the question to the customer, who clicks Allow.
    let asking = tokio::spawn(async move {
        let answer = viewer.request_quick_access(true, 30).await;
        (answer, viewer)
    });
    wait_for_phrase(&x, "quick-question", "connect without a code");
    // The assistant proposed 30 days; the customer chooses a year, and lets the permissions
    // granted now apply next time without asking.
    click(&x, wait_for_phrase(&x, "quick-question", "365 days"));
    click(&x, wait_for_phrase(&x, "quick-question", "without asking me"));
    wait_for_phrase(&x, "quick-question-terms", "still see who connects");
    // OCR does not read the short button labels on their fills; the Allow button sits
    // below and right of the "Allow?" line (Deny, then Allow, each 140 px wide).
    let allow = wait_for(&x, "quick-question-terms", |seen| {
        let w = seen.words.iter().find(|w| w.text == "Allow?")?;
        Some((w.x + 244, w.y + w.h / 2 + 39))
    });
    click(&x, allow);
    let (answer, viewer) = asking.await.unwrap();
    let grant = answer.unwrap().expect("the customer said yes in the window");
    let now = ponte_session::now_unix();
    let days = grant.not_after.saturating_sub(now) / 86_400;
    assert!((364..=365).contains(&days), "{days} days");
    // Kept on the customer's computer, with what they granted, on their terms.
    let trusted_file = w.path("config/ponte/trusted.json");
    // (The file goes with its last entry.)
    let entries = || match std::fs::read_to_string(&trusted_file) {
        Ok(text) => serde_json::from_str::<serde_json::Value>(&text).unwrap()["entries"]
            .as_array()
            .unwrap()
            .clone(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("{e}"),
    };
    let entry = &entries()[0];
    assert_eq!(entry["organisation"], "ACME Support", "{entry}");
    assert_eq!(entry["without_asking"], true, "{entry}");
    // The activity log says so (the line wraps: read the text, not a phrase on one line).
    wait_for(&x, "quick-granted", |seen| {
        seen.text()
            .contains("may now connect without a code")
            .then_some(())
    });
    viewer.quit().await;

    // After the session the window lists the opt-in, and the customer takes it back there.
    let remove = wait_for(&x, "quick-list", |seen| {
        seen.text()
            .contains("who may connect without a code")
            .then_some(())?;
        let w = seen.words.iter().find(|w| w.text == "Remove")?;
        Some((w.x + w.w / 2, w.y + w.h / 2))
    });
    click(&x, remove);
    let deadline = std::time::Instant::now() + WAIT;
    while !entries().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "still there: {:?}",
            entries()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    wait_for(&x, "quick-list-empty", |seen| {
        (!seen.text().contains("who may connect without a code")).then_some(())
    });
    agent.terminate(WAIT);
}
