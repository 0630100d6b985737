//! The assistant's app, driven the way an assistant does: the tests read its window (an Xvfb
//! display, tesseract OCR), click and type with xdotool, and check on the customer's side — a
//! real agent through a real relay — what the clicks and keys did.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ponte_testbed::{Running, Xvfb};
use x11rb::connection::Connection;
use x11rb::protocol::Event;
use x11rb::protocol::xproto::{ChangeWindowAttributesAux, ConnectionExt as _, EventMask};

use crate::desktop::{xclip_in, xclip_read};
use crate::display;
use crate::ocr::*;
use crate::world::*;

/// Starts `ponte-viewer app` on `x`, its Files tab starting in `folder`.
fn app(w: &World, x: &Xvfb, folder: &Path) -> Running {
    let mut cmd = w.command("ponte-viewer");
    cmd.env("DISPLAY", &x.display)
        .arg("app")
        .arg("--folder")
        .arg(folder)
        .stdin(Stdio::null());
    Running::start(cmd)
}

fn xdotool(x: &Xvfb, args: &[&str]) {
    let status = Command::new("xdotool")
        .env("DISPLAY", &x.display)
        .args(args)
        .status()
        .expect("xdotool is needed for the window tests (apt-get install xdotool)");
    assert!(status.success(), "xdotool {args:?}");
}

/// Types `text` into the app (there is no window manager to give it the keyboard).
fn type_text(x: &Xvfb, text: &str) {
    xdotool(x, &["search", "--name", "^Ponte$", "windowfocus", "--sync"]);
    xdotool(x, &["type", "--delay", "40", text]);
    std::thread::sleep(Duration::from_millis(200));
}

fn key(x: &Xvfb, name: &str) {
    xdotool(x, &["search", "--name", "^Ponte$", "windowfocus", "--sync"]);
    xdotool(x, &["key", name]);
    std::thread::sleep(Duration::from_millis(200));
}

/// The last place (lowest, then rightmost) `word` is written: the second pane's button, a
/// dialog's button below the one it repeats.
fn last(seen: &Seen, word: &str) -> Option<(i32, i32)> {
    seen.words
        .iter()
        .filter(|w| w.text.trim_matches(|c: char| !c.is_alphanumeric()) == word)
        .max_by_key(|w| (w.y / 8, w.x))
        .map(|w| (w.x + w.w / 2, w.y + w.h / 2))
}

/// Only the digits of an ID or code, however written.
fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// Answers "End session" in the open "End the session?" dialog: its button is the "End" below
/// the dialog's title, read again until the dialog is gone.
fn confirm_end(x: &Xvfb, name: &str) {
    let mut asked = false;
    wait_for(x, name, |seen| {
        let Some(title) = seen.find("End the session?") else {
            return asked.then_some(());
        };
        asked = true;
        let button = seen
            .words
            .iter()
            .find(|w| w.text == "End" && w.y > title.1 + 20)?;
        click(x, (button.x + button.w / 2, button.y + button.h / 2));
        None
    });
}

/// Types the session ID and code into the connect page and connects.
fn connect(x: &Xvfb, name: &str, id: &str, code: &str) {
    let (id, code) = (digits(id), digits(code));
    let look = format!("{name}-connect");
    let at = wait_for_phrase(x, &look, "Session ID");
    click(x, (at.0 + 180, at.1));
    // What a field holds from an earlier try is replaced.
    key(x, "ctrl+a");
    type_text(x, &id);
    let at = wait_for_phrase(x, &look, "Code");
    click(x, (at.0 + 200, at.1));
    key(x, "ctrl+a");
    // As read aloud, with the hyphen.
    type_text(x, &format!("{}-{}", &code[..4], &code[4..]));
    keep(x, "viewer-connect");
    key(x, "Return");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_assistant_connects_in_the_app_and_works_with_files_side_by_side_and_a_terminal() {
    let x = Xvfb::start(1280, 800);
    let w = World::new().await;
    let report: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(w.path("agent-home/report.txt"), &report).unwrap();
    std::fs::write(w.path("agent-home/.hidden-notes"), "not listed").unwrap();
    std::fs::create_dir(w.path("agent-home/docs")).unwrap();
    let mine = w.path("mine");
    std::fs::create_dir(&mine).unwrap();
    std::fs::write(mine.join("upload-me.txt"), "from the assistant").unwrap();
    let (mut agent, id, code) = w.text_agent(&["--allow", "terminal,download,upload,info"]);
    let _app = app(&w, &x, &mine);
    connect(&x, "files", &id, &code);

    // The session's tab: how the assistant shows (no certificate here) and the Files view,
    // the first the customer allows, listing the shared folder without its hidden entry.
    let seen = wait_for(&x, "files-files", |seen| {
        (seen.find("UNVERIFIED").is_some() && seen.find("report.txt").is_some()).then(|| seen.text())
    });
    assert!(!seen.contains("hidden"), "a hidden entry was listed: {seen}");
    assert!(seen.contains("docs"), "{seen}");

    // Download by button: it arrives whole, hash verified.
    let row = wait_for_phrase(&x, "files-files", "report.txt");
    click(&x, row);
    let download = wait_for_phrase(&x, "files-files", "Download");
    click(&x, download);
    wait_for_phrase(&x, "files-download", "hash verified");
    assert_eq!(std::fs::read(mine.join("report.txt")).unwrap(), report);

    // Up from the shared folder is outside it: the customer is asked to show it, then to take
    // an upload there; meanwhile the app says it waits for the customer.
    let up = wait_for(&x, "files-files", |seen| last(seen, "Up"));
    click(&x, up);
    agent.expect("SEE WHAT IS IN");
    tokio::time::sleep(Duration::from_secs(1)).await;
    agent.send("y");
    wait_for_phrase(&x, "files-outside", "agent-home/");
    let row = wait_for_phrase(&x, "files-outside", "upload-me.txt");
    click(&x, row);
    let upload = wait_for_phrase(&x, "files-outside", "Upload");
    click(&x, upload);
    agent.expect("wants to PUT");
    wait_for_phrase(&x, "files-waiting", "waiting for the customer");
    // Cancelled while the customer is asked: the question goes away, nothing is written.
    let cancel = wait_for_phrase(&x, "files-waiting", "Cancel");
    click(&x, cancel);
    agent.expect("withdrawn");
    wait_for_phrase(&x, "files-cancelled", "cancelled");
    assert!(
        !w.path("upload-me.txt").exists(),
        "a cancelled upload was written"
    );
    // Again, answered this time.
    click(&x, upload);
    agent.expect("wants to PUT");
    wait_for_phrase(&x, "files-waiting", "waiting for the customer");
    keep(&x, "viewer-files");
    assert!(
        !w.path("upload-me.txt").exists(),
        "the upload went ahead before the customer answered"
    );
    agent.send("y");
    wait_for(&x, "files-uploaded", |seen| {
        (seen.text().matches("hash verified").count() >= 2).then_some(())
    });
    assert_eq!(
        std::fs::read_to_string(w.path("upload-me.txt")).unwrap(),
        "from the assistant"
    );

    // A terminal: typed keys reach the shell, its output the widget, and the widget's size
    // (larger than the 80×24 it opens with) the shell.
    let tab = wait_for_phrase(&x, "files-session", "Terminal");
    click(&x, tab);
    wait_for_phrase(&x, "files-terminal", "Terminal 1");
    click(&x, (640, 500));
    type_text(&x, "echo $((6*7)); stty size > size.txt");
    key(&x, "Return");
    wait_for(&x, "files-terminal", |seen| {
        seen.words.iter().any(|w| w.text == "42").then_some(())
    });
    keep(&x, "viewer-terminal");
    let size = std::fs::read_to_string(w.path("agent-home/size.txt")).unwrap();
    let (rows, cols) = size.trim().split_once(' ').unwrap();
    let (rows, cols): (u32, u32) = (rows.parse().unwrap(), cols.parse().unwrap());
    assert!(rows > 24 && cols > 80, "the shell is {rows}×{cols}");

    // End, confirmed: the customer's side ends.
    let end = wait_for_phrase(&x, "files-session", "End session");
    click(&x, end);
    confirm_end(&x, "files-end");
    agent.expect("Session ended");
    assert!(
        agent.wait(WAIT).success(),
        "the agent exits when the session ends"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_apps_screen_is_the_customers_and_its_clicks_reach_them_only_with_control_on() {
    let x = Xvfb::start(1280, 800);
    let customer = Xvfb::start(320, 240);
    let w = World::new().await;
    // A picture no other could be confused with: a magenta corner, then blocks of colour.
    let conn = customer.connect();
    let pattern = |px: usize, py: usize| {
        if px < 8 && py < 8 {
            0xff00ff
        } else {
            (((px / 8) * 40 % 256) << 16 | ((py / 8) * 50 % 256) << 8 | ((px + py) / 8 * 30 % 256)) as u32
        }
    };
    let window = display::draw(&conn, 320, 240, pattern);
    conn.change_window_attributes(
        window,
        &ChangeWindowAttributesAux::new().event_mask(EventMask::BUTTON_PRESS),
    )
    .unwrap();
    display::sync(&conn);
    // The customer's agent runs on their desktop: its clipboard is $DISPLAY's.
    let mut cmd = w.text_agent_command(
        &ponte_testbed::binary("ponte-agent"),
        &[
            "--allow",
            "screen,control,clipboard",
            "--display",
            &customer.display,
        ],
    );
    cmd.env("DISPLAY", &customer.display);
    let (mut agent, id, code) = crate::world::start_text_agent(cmd);
    let _app = app(&w, &x, &w.path("home"));
    connect(&x, "screen", &id, &code);
    wait_for_phrase(&x, "screen-screen", "VIEW ONLY");

    // The picture in the tab is the customer's screen, pixel for pixel.
    let deadline = Instant::now() + WAIT;
    let origin = loop {
        let (customer_w, _, theirs) = display::dump(&conn);
        let app_conn = x.connect();
        let (app_w, app_h, ours) = display::dump(&app_conn);
        let (cw, aw) = (usize::from(customer_w), usize::from(app_w));
        let corner = ours.iter().position(|&p| p == 0xff00ff);
        if let Some(at) = corner {
            let (ox, oy) = (at % aw, at / aw);
            let same = (0..240)
                .filter(|&y| oy + y < usize::from(app_h))
                .all(|y| (0..320).all(|x| ours[(oy + y) * aw + ox + x] == theirs[y * cw + x]));
            if same {
                break (ox as i32, oy as i32);
            }
        }
        assert!(
            Instant::now() < deadline,
            "the app never showed the customer's screen pixel-exact"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };

    // Control off (the default): a click on the picture does nothing there.
    let on_picture = (origin.0 + 160, origin.1 + 160);
    click(&x, on_picture);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pressed = |conn: &x11rb::rust_connection::RustConnection| {
        std::iter::from_fn(|| conn.poll_for_event().unwrap()).any(|e| matches!(e, Event::ButtonPress(_)))
    };
    assert!(!pressed(&conn), "a click went through with control off");

    // The guide: the assistant's pointer over the picture is a ring on the customer's screen,
    // around the same place, and clicks nothing.
    let guide = wait_for_phrase(&x, "screen-screen", "Guide");
    click(&x, (guide.0 - 30, guide.1));
    xdotool(
        &x,
        &["mousemove", &on_picture.0.to_string(), &on_picture.1.to_string()],
    );
    xdotool(&x, &["mousemove_relative", "--", "1", "1"]);
    let ring = |pixels: &[u32], width: usize| {
        // The top bar of the 40-pixel ring around (161, 161), and its untouched middle.
        (150..172).all(|px| pixels[142 * width + px] == 0xff8c00) && pixels[161 * width + 161] != 0xff8c00
    };
    let deadline = Instant::now() + WAIT;
    loop {
        let (width, _, theirs) = display::dump(&conn);
        if ring(&theirs, usize::from(width)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the guide never showed on the customer's screen"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The assistant sees it too, in the picture.
    let deadline = Instant::now() + WAIT;
    loop {
        let (width, _, ours) = display::dump(&x.connect());
        let at =
            |dx: i32, dy: i32| ours[(origin.1 + dy) as usize * usize::from(width) + (origin.0 + dx) as usize];
        if (150..172).all(|dx| at(dx, 142) == 0xff8c00) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the guide never showed in the assistant's picture"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    keep(&x, "viewer-screen");
    assert!(!pressed(&conn), "the guide clicked");
    // The customer's own click on the ring's bar goes through it to what is beneath.
    xdotool(&customer, &["mousemove", "161", "142", "click", "1"]);
    let deadline = Instant::now() + WAIT;
    while !pressed(&conn) {
        assert!(
            Instant::now() < deadline,
            "the guide's ring caught the customer's click"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Control on: the same click reaches the customer's desktop.
    let toggle = wait_for_phrase(&x, "screen-screen", "Control");
    click(&x, (toggle.0 - 30, toggle.1));
    wait_for_phrase(&x, "screen-control", "CONTROL");
    click(&x, on_picture);
    let deadline = Instant::now() + WAIT;
    while !pressed(&conn) {
        assert!(
            Instant::now() < deadline,
            "the click never reached the customer's desktop"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The clipboard, each way only when the assistant asks.
    xclip_in(&customer.display, "copied by the customer");
    assert_ne!(xclip_read(&x.display).as_deref(), Some("copied by the customer"));
    let get = wait_for_phrase(&x, "screen-clipboard", "Get the customer's clipboard");
    click(&x, get);
    wait_for_phrase(&x, "screen-clipboard", "is in yours");
    assert_eq!(xclip_read(&x.display).as_deref(), Some("copied by the customer"));
    agent.expect("clipboard");
    xclip_in(&x.display, "sent by the assistant");
    let send = wait_for_phrase(&x, "screen-clipboard", "Send my clipboard");
    click(&x, send);
    wait_for_phrase(&x, "screen-clipboard", "sent your clipboard");
    assert_eq!(
        xclip_read(&customer.display).as_deref(),
        Some("sent by the assistant")
    );

    agent.send("end");
    assert!(agent.wait(WAIT).success());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_app_says_what_went_wrong_stops_at_a_changed_relay_and_runs_two_sessions_apart() {
    let x = Xvfb::start(1280, 800);
    let w = World::new().await;
    let (mut first, id_1, code_1) =
        w.text_agent(&["--allow", "info", "--dir", w.path("home").to_str().unwrap()]);
    let (mut second, id_2, code_2) = w.text_agent(&["--allow", "info"]);
    let _app = app(&w, &x, &w.path("home"));

    // A misheard code: said in the window, with the tries left.
    let code = digits(&code_1);
    let wrong = format!("{}{}", &code[..7], (code.as_bytes()[7] - b'0' + 1) % 10);
    connect(&x, "two", &id_1, &wrong);
    wait_for_phrase(&x, "two-wrong", "try 1 of 3");

    // The relay now shows another certificate than the one remembered (someone in the
    // middle, or a relay reinstalled): the app stops and asks; Cancel joins nothing.
    let known = w.path("config/ponte/known_relays");
    std::fs::write(&known, format!("{} {}\n", w.addr, "ab".repeat(32))).unwrap();
    connect(&x, "two", &id_1, &code_1);
    let cancel = wait_for(&x, "two-changed", |seen| {
        seen.find("identity changed").and(seen.find("Cancel"))
    });
    keep(&x, "viewer-fingerprint");
    click(&x, cancel);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !first
            .lines_within(Duration::from_millis(500))
            .iter()
            .any(|l| l.contains("Connected")),
        "the app joined through a relay whose certificate changed"
    );
    // Only the assistant's explicit choice goes on.
    let connect_button = wait_for(&x, "two-connect", |seen| last(seen, "Connect"));
    click(&x, connect_button);
    let confirmed = wait_for_phrase(&x, "two-changed", "confirmed it");
    click(&x, confirmed);
    first.expect("Connected");

    // A second session in a second tab.
    let tab = wait_for_phrase(&x, "two-tabs", "Connect");
    click(&x, tab);
    connect(&x, "two", &id_2, &code_2);
    second.expect("Connected");
    let group = |id: &str| digits(id)[6..].to_owned();
    wait_for(&x, "two-two", |seen| {
        let text = seen.text();
        (text.contains(&group(&id_1)) && text.contains(&group(&id_2))).then_some(())
    });

    // The first customer turns a permission off: the app says so, and greys out its view.
    let tab = wait_for(&x, "two-tabs", |seen| {
        let label = seen
            .words
            .iter()
            .find(|w| w.y < 30 && w.text.contains(&group(&id_1)))?;
        Some((label.x + label.w / 2, label.y + label.h / 2))
    });
    click(&x, tab);
    first.send("revoke info");
    wait_for_phrase(&x, "two-revoked", "turned off: info");

    // The second customer ends theirs: that tab says so, the first session goes on.
    second.send("end");
    assert!(second.wait(WAIT).success());
    // Its tab says so (the first one is shown).
    wait_for(&x, "two-ended", |seen| {
        seen.text().contains("(ended)").then_some(())
    });
    assert!(
        !first
            .lines_within(Duration::from_secs(1))
            .iter()
            .any(|l| l.contains("Session ended")),
        "the other session ended too"
    );

    // Closing the first tab ends that session, after a confirmation.
    let close = wait_for(&x, "two-tabs", |seen| {
        let label = seen
            .words
            .iter()
            .find(|w| w.y < 30 && w.text.contains(&group(&id_1)))?;
        Some((label.x + label.w + 22, label.y + label.h / 2))
    });
    click(&x, close);
    confirm_end(&x, "two-close");
    first.expect("Session ended");
    assert!(first.wait(WAIT).success());
}

/// Without a desktop, `ponte-viewer` alone explains itself instead of failing to open a window.
#[tokio::test(flavor = "multi_thread")]
async fn without_a_desktop_the_viewer_alone_prints_its_help() {
    let w = World::new().await;
    let mut cmd = w.command("ponte-viewer");
    cmd.env_remove("DISPLAY").env_remove("WAYLAND_DISPLAY");
    let out = run_with_timeout(cmd, WAIT);
    let said = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        said.contains("Usage") && said.contains("connect") && said.contains("app"),
        "{said}"
    );
}
