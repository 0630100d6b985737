//! The assistant on the customer's desktop. Given the mouse and keyboard it acts as the
//! customer does; given the terminal it runs as the customer, and can start `xdotool` to click
//! and type anywhere, in the background, for as long as it runs. These tests attack the
//! customer's consent the way such an assistant would — through the stock viewer core, with
//! injected input and with processes left running — against the real agent's window and its
//! terminal UI in an xterm, on Xvfb. What must hold: nothing that outlives the session is
//! granted while the assistant can act here, and whatever narrows its access always works.

#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ponte_e2e::screen::InputEvent;
use ponte_testbed::{Running, Xvfb};
use ponte_viewer::{QuickAccessReply, Viewer, ViewerError};

use crate::ocr;
use crate::world;

use ocr::*;
use world::*;

/// Alice, verified by ACME Support whom the customer trusts, in a session with the agent's
/// window on `x` that allows `allow` up front.
async fn alice_at_the_window(w: &World, x: &Xvfb, name: &str, allow: &str) -> (Running, Viewer) {
    let org = w.certified("alice", "Alice Example", "acme", "ACME Support");
    let agent = window_agent(
        w,
        x,
        "C.UTF-8",
        &["--trust-org", &org, "--allow", allow, "--display", &x.display],
    );
    let identity = w.path("alice");
    let alice = || ponte_viewer::identity::load_or_create(&identity).unwrap().0;
    let viewer = join_shown(w, x, name, id_and_code, alice).await;
    viewer.consent(WAIT).await.expect("allowed up front");
    (agent, viewer)
}

/// The quick-access question's Allow button, if the question is on the window.
fn quick_question(seen: &Seen) -> Option<(i32, i32)> {
    seen.text()
        .contains("whenever you start")
        .then(|| allow_button(seen))
        .flatten()
}

/// The quick-access question's Allow button, if the question is on the window now (looked at
/// a few times).
fn quick_question_shown(x: &Xvfb, name: &str) -> Option<(i32, i32)> {
    (0..3).find_map(|attempt| quick_question(&look(x, name, attempt)))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_assistants_input_cannot_set_the_terms_of_quick_access() {
    // With the mouse and keyboard, the assistant asks for quick access and, if the question
    // is on the screen, picks "a year" and "without asking" in it; the customer then clicks
    // Allow. What is stored must be what the customer chose: the proposal, asking each time.
    let x = Xvfb::start(1024, 800);
    let w = World::new().await;
    let (mut agent, viewer) = alice_at_the_window(&w, &x, "terms", "control").await;
    let viewer = Arc::new(viewer);
    let asking = tokio::spawn({
        let viewer = viewer.clone();
        async move { viewer.request_quick_access(true, 30).await }
    });
    let during = (0..3).find_map(|attempt| {
        let seen = look(&x, "terms-attack", attempt);
        quick_question(&seen).map(|_| seen)
    });
    if let Some(seen) = during {
        for phrase in ["365 days", "without asking me"] {
            if let Some(at) = seen.find(phrase) {
                viewer.input(click_at(at)).await.unwrap();
            }
        }
    }
    // The customer comes to the question after the assistant's input has stopped.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let quitting = match quick_question_shown(&x, "terms-during") {
        Some(allow) => {
            click(&x, allow);
            None
        }
        None => {
            assert_eq!(asking.await.unwrap().unwrap(), QuickAccessReply::Later);
            let viewer = viewer.clone();
            let quitting = tokio::spawn(async move { viewer.quit().await });
            click(&x, wait_for(&x, "terms-after", quick_question));
            Some(quitting)
        }
    };
    let deadline = Instant::now() + WAIT;
    while opt_ins(&w).is_empty() {
        assert!(Instant::now() < deadline, "the customer's Allow stored nothing");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let entry = &opt_ins(&w)[0];
    let days = (entry["not_after"].as_u64().unwrap() - entry["created"].as_u64().unwrap()) / 86_400;
    assert_eq!(days, 30, "the assistant chose the period: {entry}");
    assert_eq!(
        entry["without_asking"], false,
        "the assistant chose 'without asking': {entry}"
    );
    if let Some(quitting) = quitting {
        quitting.await.unwrap();
    }
    agent.terminate(WAIT);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_process_the_assistant_left_running_cannot_answer_in_the_window() {
    // With only the terminal, the assistant leaves a process behind that waits for the
    // quick-access question in the customer's own session log, then clicks Allow (where the
    // test, as the attacker's eyes, says the button is). It must be gone before the customer
    // is asked.
    let x = Xvfb::start(1024, 800);
    let w = World::new().await;
    let (mut agent, viewer) = alice_at_the_window(&w, &x, "left", "terminal").await;
    let target = w.path("allow-at");
    let script = format!(
        "until grep -qs 'without a code when''ever' {log}/*.log && [ -s {target} ]; do sleep 0.2; done; \
         sleep 1.5; xdotool mousemove \\$(cat {target}) mousedown 1 sleep 0.1 mouseup 1",
        log = w.path("data/ponte/sessions").display(),
        target = target.display(),
    );
    let status = viewer.exec(&leave_running(&script), |_, _| {}).await.unwrap();
    assert_eq!(status, Some(0));
    let viewer = Arc::new(viewer);
    let asking = tokio::spawn({
        let viewer = viewer.clone();
        async move { viewer.request_quick_access(true, 30).await }
    });
    // The attacker's eyes: wherever the question shows — during the session or after it —
    // the process learns where Allow is.
    let quitting = match quick_question_shown(&x, "left-during") {
        Some(_) => None,
        None => {
            assert_eq!(asking.await.unwrap().unwrap(), QuickAccessReply::Later);
            let viewer = viewer.clone();
            Some(tokio::spawn(async move { viewer.quit().await }))
        }
    };
    let allow = wait_for(&x, "left-question", quick_question);
    std::fs::write(&target, format_at(allow)).unwrap();
    // Long past when the process would have clicked.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        opt_ins(&w).is_empty(),
        "a process the assistant left running answered for the customer: {:?}",
        opt_ins(&w)
    );
    // The customer says no (Deny is left of Allow).
    click(&x, (allow.0 - 174, allow.1));
    if let Some(quitting) = quitting {
        quitting.await.unwrap();
    }
    assert_eq!(viewer.state().quick_access, None, "the assistant was told yes");
    assert!(opt_ins(&w).is_empty());
    agent.terminate(WAIT);
}

/// A command line that starts `script` in the background, out of the command's session (so it
/// outlives the command), as an attacker would.
fn leave_running(script: &str) -> String {
    // The command waits a moment, so that the child has left its session before the command
    // ends (and the agent ends what is left in it).
    format!("nohup setsid -f sh -c \"{script}\" >/dev/null 2>&1; sleep 1")
}

/// `x y` for `xdotool mousemove`.
fn format_at((x, y): (i32, i32)) -> String {
    format!("{x} {y}")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_process_the_assistant_left_running_cannot_answer_in_the_terminal() {
    // The same attack on the terminal UI in an xterm: the process waits for the question in
    // the session log and types the answers a year and "without asking" would need.
    let x = Xvfb::start(1024, 768);
    let w = World::new().await;
    let org = w.certified("alice", "Alice Example", "acme", "ACME Support");
    let shown = w.path("agent-output.txt");
    let agent = format!(
        "{} --text --dir {} --allow terminal --trust-org '{org}' | tee {}",
        ponte_testbed::binary("ponte-agent").display(),
        w.path("agent-home").display(),
        shown.display(),
    );
    let mut xterm = w.program("xterm");
    xterm
        .env("DISPLAY", &x.display)
        .args(["-geometry", "120x40+0+0", "-e", "sh", "-c", &agent])
        .stdin(Stdio::null());
    let mut xterm = Running::start(xterm);
    let read = || std::fs::read_to_string(&shown).unwrap_or_default();
    let deadline = Instant::now() + WAIT;
    let (id, code) = loop {
        let text = read();
        let after = |label: &str| {
            text.split(label)
                .nth(1)?
                .lines()
                .next()
                .map(|v| v.trim().to_owned())
        };
        if let (Some(id), Some(code)) = (after("Session ID:"), after("Code:")) {
            break (id, code);
        }
        assert!(Instant::now() < deadline, "the agent in the xterm printed {text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (credentials, _) = ponte_viewer::identity::load_or_create(&w.path("alice")).unwrap();
    let viewer = Arc::new(w.assistant_as(&id, &code, credentials).await);
    viewer.consent(WAIT).await.expect("allowed up front");
    let script = format!(
        "until grep -qs 'without a code when''ever' {log}/*.log; do sleep 0.2; done; sleep 1.5; \
         xdotool search --class xterm windowfocus --sync type --delay 50 'y 365'; xdotool key Return; \
         sleep 1.5; xdotool type y; xdotool key Return; sleep 1.5; xdotool type 2; xdotool key Return",
        log = w.path("data/ponte/sessions").display(),
    );
    let status = viewer.exec(&leave_running(&script), |_, _| {}).await.unwrap();
    assert_eq!(status, Some(0));
    let asking = tokio::spawn({
        let viewer = viewer.clone();
        async move { viewer.request_quick_access(true, 30).await }
    });
    // Time for the process to answer a question asked during the session.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let quitting = asking.is_finished().then(|| {
        let viewer = viewer.clone();
        tokio::spawn(async move { viewer.quit().await })
    });
    let deadline = Instant::now() + WAIT;
    while !read().contains("connect without a code") {
        assert!(Instant::now() < deadline, "never asked: {}", read());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(
        opt_ins(&w).is_empty(),
        "a process the assistant left running answered for the customer: {:?}\n{}",
        opt_ins(&w),
        read()
    );
    // The customer types no.
    let typed = Command::new("xdotool")
        .env("DISPLAY", &x.display)
        .args(["search", "--class", "xterm", "windowfocus", "--sync", "type", "n"])
        .status()
        .unwrap();
    assert!(typed.success());
    let enter = Command::new("xdotool")
        .env("DISPLAY", &x.display)
        .args(["key", "Return"])
        .status()
        .unwrap();
    assert!(enter.success());
    if let Some(quitting) = quitting {
        quitting.await.unwrap();
    }
    let deadline = Instant::now() + WAIT;
    while !read().contains("What happened is recorded in") {
        assert!(Instant::now() < deadline, "the agent did not end: {}", read());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(opt_ins(&w).is_empty(), "{:?}", opt_ins(&w));
    assert!(read().contains("Quick access was not allowed"), "{}", read());
    xterm.wait(WAIT);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pointer_warped_onto_allow_right_before_the_customers_click_is_the_assistants() {
    let x = Xvfb::start(1024, 800);
    let w = World::new().await;
    std::fs::write(w.path("agent-home/.secret"), "the customer's secret").unwrap();
    let (mut agent, viewer) = alice_at_the_window(&w, &x, "warp", "control").await;
    let viewer = Arc::new(viewer);
    // A hidden file: asked, whatever is granted.
    let getting = tokio::spawn({
        let viewer = viewer.clone();
        let local = w.path("stolen");
        async move {
            viewer
                .get(
                    ".secret",
                    &local,
                    false,
                    &mut |_: ponte_session::files::Progress| {},
                )
                .await
        }
    });
    let (allow, deny) = wait_for(&x, "warp-question", |seen| {
        Some((allow_button(seen)?, deny_button(seen)?))
    });
    // The assistant moves the pointer onto Allow; the customer clicks where the pointer is.
    viewer
        .input(vec![InputEvent::Move {
            x: u16::try_from(allow.0).unwrap(),
            y: u16::try_from(allow.1).unwrap(),
        }])
        .await
        .unwrap();
    let clicked = Command::new("xdotool")
        .env("DISPLAY", &x.display)
        .args(["mousedown", "1", "sleep", "0.1", "mouseup", "1"])
        .status()
        .unwrap();
    assert!(clicked.success());
    // The window saw the click and did not take it.
    assert!(
        shown_within(&x, "warp-not-taken", "Not taken", Duration::from_secs(4)),
        "the window did not say the click was not taken"
    );
    assert!(
        !getting.is_finished(),
        "the click on the warped pointer answered: {:?}",
        getting.await
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // The customer's own no, later, is taken.
    click(&x, deny);
    let got = tokio::time::timeout(WAIT, getting).await.unwrap().unwrap();
    assert!(matches!(got, Err(ViewerError::Refused(_))), "{got:?}");
    assert!(!w.path("stolen").exists());
    agent.terminate(WAIT);
}

#[tokio::test(flavor = "multi_thread")]
async fn end_session_works_while_the_assistant_jams_the_keyboard() {
    let x = Xvfb::start(1024, 800);
    let w = World::new().await;
    let (mut agent, mut viewer) = alice_at_the_window(&w, &x, "jam", "control").await;
    let mut notices = viewer.notices().unwrap();
    let end = wait_for_steady_phrase(&x, "jam-session", "End session");
    let viewer = Arc::new(viewer);
    // Shift pressed and released every 300 ms, for as long as the session lasts; each
    // result is kept.
    let jam = tokio::spawn({
        let viewer = viewer.clone();
        async move {
            let mut results = Vec::new();
            for _ in 0..200 {
                let mut result = Ok(());
                for pressed in [true, false] {
                    let events = vec![InputEvent::Key {
                        keysym: 0xffe1,
                        pressed,
                    }];
                    result = result.and(viewer.input(events).await);
                }
                let ended = matches!(result, Err(ViewerError::Ended(_) | ViewerError::Session(_)));
                results.push((Instant::now(), result));
                if ended {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            results
        }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    // The customer moves the mouse towards End: the assistant's input pauses.
    let moved_at = Instant::now();
    let moved = Command::new("xdotool")
        .env("DISPLAY", &x.display)
        .args(["mousemove", &end.0.to_string(), &(end.1 - 40).to_string()])
        .status()
        .unwrap();
    assert!(moved.success());
    tokio::time::sleep(Duration::from_millis(700)).await;
    // And clicks End, pressing the button as a hand does.
    let clicked = Command::new("xdotool")
        .env("DISPLAY", &x.display)
        .args(["mousemove", &end.0.to_string(), &end.1.to_string()])
        .args(["mousedown", "1", "sleep", "0.1", "mouseup", "1"])
        .status()
        .unwrap();
    assert!(clicked.success());
    let clicked_at = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(10), ended(&mut notices))
        .await
        .expect("End session did not end the session while the assistant typed");
    let took = clicked_at.elapsed();
    assert!(ended.contains("customer ended"), "{ended}");
    assert!(took < Duration::from_secs(1), "ending took {took:?}");
    let results = jam.await.unwrap();
    assert!(
        results.iter().any(|(at, r)| *at > moved_at
            && matches!(r, Err(ViewerError::Failed(reason)) if reason.as_raw().contains("using the mouse"))),
        "the customer's mouse did not pause the assistant's input: {:?}",
        results.iter().map(|(_, r)| r).collect::<Vec<_>>()
    );
    agent.terminate(WAIT);
}

#[tokio::test(flavor = "multi_thread")]
async fn end_session_works_while_the_assistant_keeps_questions_coming() {
    // The assistant asks for one hidden file after another: a question is always open, and
    // its dialog covers the window's End button. The customer ends the session from the
    // dialog itself.
    let x = Xvfb::start(1024, 800);
    let w = World::new().await;
    for n in 0..16 {
        std::fs::write(w.path(&format!("agent-home/.secret{n}")), "the customer's secret").unwrap();
    }
    let (mut agent, mut viewer) = alice_at_the_window(&w, &x, "questions", "chat").await;
    let mut notices = viewer.notices().unwrap();
    let viewer = Arc::new(viewer);
    let asking: Vec<_> = (0..16)
        .map(|n| {
            let viewer = viewer.clone();
            let local = w.path(&format!("stolen{n}"));
            tokio::spawn(async move {
                let path = format!(".secret{n}");
                viewer
                    .get(&path, &local, false, &mut |_: ponte_session::files::Progress| {})
                    .await
            })
        })
        .collect();
    // (OCR does not read the label on its red fill: where the dialog puts it.)
    let end = wait_for(&x, "questions-open", |seen| {
        seen.text().contains("wants to COPY").then_some(())?;
        dialog_end_button(seen)
    });
    click(&x, end);
    let ended = tokio::time::timeout(Duration::from_secs(10), ended(&mut notices))
        .await
        .expect("the customer could not end the session while questions kept coming");
    assert!(ended.contains("customer ended"), "{ended}");
    for ask in asking {
        assert!(ask.await.unwrap().is_err(), "a file was copied");
    }
    agent.terminate(WAIT);
}

/// The customer's clipboard (X11's CLIPBOARD selection, as Ctrl+C and Ctrl+V use it), read by
/// another program with `xclip`.
fn xclip_out(display: &str) -> String {
    xclip_read(display).expect("something is on the clipboard")
}

/// [`xclip_out`], `None` while nothing is on the clipboard.
pub(crate) fn xclip_read(display: &str) -> Option<String> {
    let out = Command::new("xclip")
        .args(["-selection", "clipboard", "-o"])
        .env("DISPLAY", display)
        .output()
        .expect("xclip is installed");
    out.status.success().then(|| text(&out.stdout))
}

/// The customer copies `copied` (xclip keeps serving it in the background).
pub(crate) fn xclip_in(display: &str, copied: &str) {
    use std::io::Write;
    let mut xclip = Command::new("xclip")
        .args(["-selection", "clipboard", "-i"])
        .env("DISPLAY", display)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("xclip is installed");
    xclip.stdin.take().unwrap().write_all(copied.as_bytes()).unwrap();
    assert!(xclip.wait().unwrap().success());
    // Its background copy takes the selection a moment later.
    let deadline = Instant::now() + Duration::from_secs(10);
    while xclip_read(display).as_deref() != Some(copied) {
        assert!(Instant::now() < deadline, "xclip never held {copied:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The clipboard, granted: the assistant puts text on the customer's clipboard (another
/// program pastes it) and reads what the customer copied, each time it asks — each use an
/// activity line with its length, the text only in the session log; escape sequences in it
/// reach the assistant inert; too much text is refused. Without the grant both are refused.
#[tokio::test(flavor = "multi_thread")]
async fn the_clipboard_goes_either_way_only_when_asked_and_granted() {
    let x = Xvfb::start(320, 240);
    let w = World::new().await;
    let mut cmd = w.agent_command(&["--allow", "clipboard"]);
    cmd.env("DISPLAY", &x.display);
    let (agent, id, code) = w.start_agent(cmd);
    let viewer = w.assistant(&id, &code).await;
    viewer.consent(WAIT).await.unwrap();

    // Nothing copied yet: empty text, not an error.
    assert_eq!(viewer.clipboard().await.unwrap().as_raw(), "");
    viewer.set_clipboard("from the assistant ✓").await.unwrap();
    assert_eq!(xclip_out(&x.display), "from the assistant ✓");
    let is_clipboard = |v: &serde_json::Value| v["event"] == "activity" && v["kind"] == "clipboard";
    // The read and the put are two requests, each on a stream of its own, run side by side by
    // the agent: their activity lines may come in either order.
    let lines: Vec<serde_json::Value> = (0..2)
        .map(|_| agent.event_where("clipboard activity", is_clipboard, WAIT))
        .collect();
    let line = |what: &str| {
        lines
            .iter()
            .find(|v| v["text"].as_str().unwrap().contains(what))
            .unwrap_or_else(|| panic!("no activity with {what:?} in {lines:?}"))
    };
    line("(0 characters)");
    let put = line("put 20 characters");
    assert!(
        !put.to_string().contains("from the assistant"),
        "only the length: {put}"
    );

    xclip_in(&x.display, "copied by the customer \x1b[2J\u{202e}");
    let read = viewer.clipboard().await.unwrap();
    assert_eq!(read.as_raw(), "copied by the customer \x1b[2J\u{202e}");
    let shown = read.to_string();
    assert!(
        !shown.contains('\x1b') && !shown.contains('\u{202e}'),
        "{shown:?}"
    );
    let got = agent.event_where("clipboard activity", is_clipboard, WAIT);
    assert!(
        got["text"]
            .as_str()
            .unwrap()
            .contains("read your clipboard (28 characters)"),
        "{got}"
    );

    let long = "x".repeat(ponte_e2e::app::MAX_CLIPBOARD + 1);
    let refused = viewer.set_clipboard(&long).await.unwrap_err();
    assert!(matches!(refused, ViewerError::Refused(_)), "{refused}");
    assert_eq!(xclip_out(&x.display), "copied by the customer \x1b[2J\u{202e}");

    viewer.quit().await;
    let ended = agent.event("ended", WAIT);
    let log = std::fs::read_to_string(ended["log"].as_str().unwrap()).unwrap();
    assert!(log.contains("from the assistant ✓"), "{log}");
    assert!(log.contains("copied by the customer \\x1b[2J\\u{202e}"), "{log}");

    // Not granted: neither way.
    let mut cmd = w.agent_command(&["--allow", "info"]);
    cmd.env("DISPLAY", &x.display);
    let (_agent, id, code) = w.start_agent(cmd);
    let viewer = w.assistant(&id, &code).await;
    viewer.consent(WAIT).await.unwrap();
    assert!(matches!(viewer.clipboard().await, Err(ViewerError::Refused(_))));
    let refused = viewer.set_clipboard("sneaky").await;
    assert!(matches!(refused, Err(ViewerError::Refused(_))), "{refused:?}");
    assert_eq!(xclip_out(&x.display), "copied by the customer \x1b[2J\u{202e}");
}
