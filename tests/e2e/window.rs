//! The customer's window, driven the way a customer does: the tests read the screen (a
//! screenshot of an Xvfb display, read with tesseract OCR), click words with xdotool, and
//! check with a real viewer through a real relay what the clicks did.

#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::Duration;

use ponte_e2e::app::Capability;
use ponte_e2e::screen::InputEvent;
use ponte_testbed::{Running, Xvfb};
use ponte_viewer::{QuickAccessReply, TerminalOutput, ViewerError};

use crate::ocr;
use crate::world;

use ocr::*;
use world::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_customer_reads_the_code_allows_by_clicking_revokes_and_ends_the_session() {
    let x = Xvfb::start(1024, 800);
    let w = World::new().await;
    let mut agent = window_agent(&w, &x, "C.UTF-8", &[]);
    // What the customer reads out works for the assistant.
    let mut viewer = join_shown(&w, &x, "waiting", id_and_code, test_assistant).await;
    let mut notices = viewer.notices().unwrap();
    wait_for_phrase(&x, "consent", "UNVERIFIED ASSISTANT");
    keep(&x, "agent-consent");
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
    wait_for_phrase(&x, "session", "refused");
    keep(&x, "agent-session");

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
    let ended = ended(&mut notices).await;
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
async fn the_assistants_clicks_cannot_widen_its_access_but_can_end_it() {
    let x = Xvfb::start(1024, 800);
    let w = World::new().await;
    let mut agent = window_agent(
        &w,
        &x,
        "C.UTF-8",
        &["--allow", "terminal,control", "--display", &x.display],
    );
    let mut viewer = join_shown(&w, &x, "control-waiting", id_and_code, test_assistant).await;
    let mut notices = viewer.notices().unwrap();
    viewer.consent(WAIT).await.unwrap();
    let upload = wait_for_phrase(&x, "control-session", "Put files here");
    // The assistant clicks the switch that would let it put files here, and presses Enter
    // and space (a focused switch's keys).
    viewer.input(click_at(upload)).await.unwrap();
    for keysym in [0xff0d_u32, 0x20] {
        for pressed in [true, false] {
            viewer
                .input(vec![InputEvent::Key { keysym, pressed }])
                .await
                .unwrap();
        }
    }
    // The window says why (for a few seconds).
    assert!(
        shown_within(&x, "control-after", "Not taken", Duration::from_secs(4)),
        "the window did not say the click was not taken"
    );
    let put = viewer
        .put(
            &w.path("home"),
            "uploaded",
            false,
            &mut |_: ponte_session::files::Progress| {},
        )
        .await;
    assert!(
        matches!(&put, Err(ViewerError::Refused(_))),
        "the assistant's click granted it the upload: {put:?}"
    );
    assert!(!viewer.state().grants.unwrap().allows(Capability::Upload));
    // Narrowing is never refused: the assistant's click on "End session" ends it.
    let end = wait_for_steady_phrase(&x, "control-after", "End session");
    // The click ends the session, so the answer to it may be the end itself.
    match viewer.input(click_at(end)).await {
        Ok(()) | Err(ViewerError::Ended(_)) => {}
        Err(e) => panic!("the click on End failed: {e}"),
    }
    let ended = ended(&mut notices).await;
    assert!(ended.contains("customer ended"), "{ended}");
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
    // Then: Tab to the terminal switch, Space; six Tabs on to "Allow selected" (past put,
    // copy, information, screen, clipboard; the control switch is off while the screen is),
    // Enter.
    let keys = Command::new("xdotool")
        .env("DISPLAY", &x.display)
        .args(["search", "--name", "^Ponte", "windowfocus", "--sync", "%1"])
        .args(["sleep", "0.3", "key", "--delay", "150", "Tab", "space"])
        .args(["Tab", "Tab", "Tab", "Tab", "Tab", "Tab", "Return"])
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

    // The assistant asks; the window puts the question to the customer once the session is
    // over, and the customer clicks Allow.
    assert_eq!(
        viewer.request_quick_access(true, 30).await.unwrap(),
        QuickAccessReply::Later
    );
    let quitting = tokio::spawn(async move { viewer.quit().await });
    wait_for_phrase(&x, "quick-question", "connect without a code");
    // The assistant proposed 30 days; the customer chooses a year, and lets the permissions
    // granted now apply next time without asking.
    click(&x, wait_for_phrase(&x, "quick-question", "365 days"));
    click(&x, wait_for_phrase(&x, "quick-question", "without asking me"));
    wait_for_phrase(&x, "quick-question-terms", "still see who connects");
    click(&x, wait_for(&x, "quick-question-terms", allow_button));
    let grant = quitting
        .await
        .unwrap()
        .expect("the customer said yes in the window");
    let now = ponte_session::now_unix();
    let days = grant.not_after.saturating_sub(now) / 86_400;
    assert!((364..=365).contains(&days), "{days} days");
    // Kept on the customer's computer, with what they granted, on their terms.
    let entry = &opt_ins(&w)[0];
    assert_eq!(entry["organisation"], "ACME Support", "{entry}");
    assert_eq!(entry["without_asking"], true, "{entry}");
    assert_eq!(
        entry["grants"],
        serde_json::json!(1),
        "Terminal, as granted: {entry}"
    );

    // After the session the window lists the opt-in, and the customer takes it back there.
    // Found and clicked again if the first click came as the window was redrawn (on a busy
    // machine it may have moved under the pointer).
    let deadline = std::time::Instant::now() + WAIT;
    while !opt_ins(&w).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "still there: {:?}",
            opt_ins(&w)
        );
        let remove = wait_for(&x, "quick-list", |seen| {
            seen.text()
                .contains("who may connect without a code")
                .then_some(())?;
            let w = seen.words.iter().find(|w| w.text == "Remove")?;
            Some((w.x + w.w / 2, w.y + w.h / 2))
        });
        click(&x, remove);
        let clicked = std::time::Instant::now();
        while !opt_ins(&w).is_empty() && clicked.elapsed() < Duration::from_secs(3) {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    wait_for(&x, "quick-list-empty", |seen| {
        (!seen.text().contains("who may connect without a code")).then_some(())
    });
    agent.terminate(WAIT);
}

/// The customer's network goes dark for longer than the relay waits: the window says plainly
/// that the connection is lost and the session waits to be resumed, then that it was — and
/// the session goes on with the same permissions.
#[tokio::test(flavor = "multi_thread")]
async fn the_window_says_when_the_connection_is_lost_and_when_it_is_back() {
    let x = Xvfb::start(1024, 800);
    let w = World::new().await;
    let link = ponte_testbed::link::Link::start(w.addr, ponte_testbed::link::Profile::lan()).unwrap();
    let fp = w.relay.as_ref().unwrap().fingerprint().to_string();
    let relay = link.addr.to_string();
    let mut agent = window_agent(
        &w,
        &x,
        "C.UTF-8",
        &["--allow", "terminal", "--relay", &relay, "--fingerprint", &fp],
    );
    let mut viewer = join_shown(&w, &x, "lost-waiting", id_and_code, test_assistant).await;
    let mut notices = viewer.notices().unwrap();
    viewer.consent(WAIT).await.unwrap();
    wait_for_phrase(&x, "lost-session", "End session");

    link.set_dark(true);
    wait_for_phrase(&x, "lost-gap", "reconnecting");
    keep(&x, "agent-reconnecting");
    link.set_dark(false);
    wait_for(&x, "lost-back", |seen| seen.find("Reconnected"));
    keep(&x, "agent-reconnected");
    let mut out = Vec::new();
    let status = viewer
        .exec("echo back-$((6*7))", |_, data| out.extend_from_slice(data))
        .await
        .unwrap();
    assert_eq!((status, text(&out).trim()), (Some(0), "back-42"));
    assert!(viewer.state().ended.is_none());
    while let Ok(notice) = notices.try_recv() {
        assert!(!matches!(notice, ponte_viewer::Notice::Ended(_)), "{notice:?}");
    }
    let end = wait_for_steady_phrase(&x, "lost-end", "End session");
    click(&x, end);
    let ended = ended(&mut notices).await;
    assert!(ended.contains("customer ended"), "{ended}");
    agent.terminate(WAIT);
}
