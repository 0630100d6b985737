//! The agent on a headless GNOME Wayland session (mutter, PipeWire, WirePlumber and the GNOME
//! portal, started by the test): the screen through the xdg-desktop-portal, with the system's
//! own dialog answered by the test as the customer would, with mutter's keyboard.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ponte_e2e::app::Request;
use ponte_e2e::screen::{InputEvent, ScreenFeedback, ScreenUpdate};
use ponte_session::SecureStream;
use ponte_testbed::WaylandSession;
use ponte_testbed::wayland::{Customer, Picture};

use crate::ocr;
use crate::screen::{Scripted, read_png};
use crate::world::*;

/// X keysyms the customer presses in the dialog.
const ALT_L: u32 = 0xffe9;
const ESCAPE: u32 = 0xff1b;
const TAB: u32 = 0xff09;
const SPACE: u32 = 0x20;

/// The middle of wev's window, which mutter centres on the 1280×800 screen.
const IN_WINDOW: (u16, u16) = (640, 400);

/// How the customer answers the system's dialog.
#[derive(Clone, Copy)]
enum Answer {
    /// "Share", leaving "Allow remote interaction" off.
    Share,
    /// "Allow remote interaction" on (Tab to the switch, Space), then "Share".
    ShareWithControl,
    /// Escape.
    Cancel,
}

/// wev, a program that prints what input its window receives, stopped when dropped.
struct Client {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Client {
    /// Waits until wev printed lines containing each of `needles` in order.
    fn expect(&self, needles: &[&str]) {
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::new();
        for needle in needles {
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                let line = self
                    .lines
                    .recv_timeout(left)
                    .unwrap_or_else(|_| panic!("the window never received {needle:?}; it printed {seen:#?}"));
                seen.push(line.clone());
                if line.contains(needle) {
                    break;
                }
            }
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A headless session whose screen shows a window (wev's), and the customer at it.
struct Desktop {
    wayland: WaylandSession,
    customer: Customer,
    client: Client,
    /// The screen with the window, before anything of Ponte's.
    screen: Picture,
}

impl Desktop {
    /// A GNOME session; without a RemoteDesktop portal (as on wlroots) if `view_only`.
    async fn start(view_only: bool) -> Desktop {
        let wayland = if view_only {
            WaylandSession::start_view_only(1280, 800)
        } else {
            WaylandSession::start(1280, 800)
        };
        let customer = wayland.customer().await;
        let empty = customer.picture(Duration::from_millis(300)).await;
        // Line-buffered, or its output waits in a pipe buffer.
        let mut child = wayland
            .command("stdbuf")
            .args(["-oL", "wev"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("wev is needed for the Wayland tests");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let client = Client { child, lines };
        let screen = customer.changed_from(&empty, WAIT).await;
        Desktop {
            wayland,
            customer,
            client,
            screen,
        }
    }

    /// An agent command (`--json`) inside the session.
    fn agent(&self, w: &World, allow: &str) -> Command {
        let mut cmd = w.agent_command(&["--allow", allow]);
        self.wayland.apply(&mut cmd);
        cmd
    }

    /// Answers the system's dialog once it shows.
    async fn answer(&self, answer: Answer) {
        self.customer.changed_from(&self.screen, WAIT).await;
        let keys: &[&[u32]] = match answer {
            Answer::Share => &[&[ALT_L, u32::from(b's')]],
            Answer::ShareWithControl => &[&[TAB], &[SPACE], &[ALT_L, u32::from(b's')]],
            Answer::Cancel => &[&[ESCAPE]],
        };
        for combo in keys {
            self.customer.keys(combo).await;
        }
    }

    /// Whether the agent's PipeWire stream of the screen runs.
    fn agent_streams(&self) -> bool {
        self.wayland.pipewire_nodes().iter().any(|n| n == "ponte-agent")
    }

    /// Waits until no portal session is open and the agent's stream has gone; how long that took.
    fn wait_portal_closed(&self, limit: Duration) -> Duration {
        let started = Instant::now();
        while !self.wayland.portal_sessions().is_empty() || self.agent_streams() {
            assert!(
                started.elapsed() < limit,
                "a portal session is still open ({:?}) or the stream runs ({})",
                self.wayland.portal_sessions(),
                self.agent_streams()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        started.elapsed()
    }
}

/// The next activity line of a `--json` agent whose text contains `needle`.
fn activity(agent: &ponte_testbed::Running, needle: &str) -> serde_json::Value {
    agent.event_where(
        needle,
        |v| v["event"] == "activity" && v["text"].as_str().is_some_and(|t| t.contains(needle)),
        WAIT,
    )
}

/// The next message on a screen stream that is neither a frame's part nor the list of
/// monitors, or the first `Size`.
async fn next_update(stream: &mut SecureStream) -> ScreenUpdate {
    until(stream, |update| match update {
        ScreenUpdate::Tiles(_)
        | ScreenUpdate::Lossy(_)
        | ScreenUpdate::Copy(_)
        | ScreenUpdate::Stats(_)
        | ScreenUpdate::FrameEnd { .. }
        | ScreenUpdate::Cursor { .. }
        | ScreenUpdate::CursorShape { .. }
        | ScreenUpdate::Monitors { .. } => None,
        update => Some(update),
    })
    .await
}

/// Reads a screen stream until `take` takes an update; an `Ended` it does not take, or the
/// stream's end, fails the test with the reason.
async fn until<T>(stream: &mut SecureStream, mut take: impl FnMut(ScreenUpdate) -> Option<T>) -> T {
    loop {
        match tokio::time::timeout(WAIT, stream.recv.recv::<ScreenUpdate>()).await {
            Ok(Ok(Some(update))) => {
                let ended = matches!(update, ScreenUpdate::Ended(_)).then(|| format!("{update:?}"));
                if let Some(taken) = take(update) {
                    return taken;
                }
                if let Some(ended) = ended {
                    panic!("the agent stopped sharing: {ended}");
                }
            }
            other => panic!("the screen stream ended: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn through_the_portal_the_screenshot_is_the_screen_pixel_for_pixel() {
    let desktop = Desktop::start(false).await;
    let w = World::new().await;
    let (agent, id, code) = w.start_agent(desktop.agent(&w, "screen"));
    let mut viewer = Scripted::start(&w, &id, &code, None);
    let shot = w.path("shot.png");
    viewer.send(&format!("screenshot {}", shot.display()));

    // Ponte tells the customer the system's dialog comes, before it does.
    activity(&agent, "Your system will now ask");
    desktop.answer(Answer::Share).await;
    viewer.expect("saved");
    activity(&agent, "screen sharing started");
    let reference = desktop.customer.picture(Duration::from_millis(300)).await;
    assert_eq!(reference, desktop.screen, "the dialog has gone");
    assert_eq!(
        read_png(&shot),
        (reference.width, reference.height, reference.pixels),
        "the screenshot is mutter's own picture of the screen, pixel for pixel"
    );

    // Ending the session leaves no portal session and no stream behind.
    assert_eq!(desktop.wayland.portal_sessions().len(), 1);
    assert!(desktop.agent_streams());
    viewer.send("quit");
    agent.event("ended", WAIT);
    desktop.wait_portal_closed(Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_system_dialog_tells_both_sides_why() {
    let desktop = Desktop::start(false).await;
    let w = World::new().await;
    let (agent, id, code) = w.start_agent(desktop.agent(&w, "screen"));
    let mut viewer = Scripted::start(&w, &id, &code, None);
    let shot = w.path("shot.png");
    viewer.send(&format!("screenshot {}", shot.display()));

    desktop.answer(Answer::Cancel).await;
    let line = viewer.expect("did not allow sharing the screen");
    assert!(line.contains("stopped sharing the screen"), "{line}");
    assert!(!shot.exists());
    // The customer reads it in their language (English here), not the assistant's words.
    activity(
        &agent,
        "you did not allow sharing the screen in the system's dialog",
    );
    desktop.wait_portal_closed(Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread")]
async fn with_control_allowed_in_the_system_dialog_a_click_and_keys_reach_a_window() {
    let desktop = Desktop::start(false).await;
    let w = World::new().await;
    let (_agent, id, code) = w.start_agent(desktop.agent(&w, "control"));
    let mut viewer = Scripted::start(&w, &id, &code, None);
    viewer.send(&format!("click {} {}", IN_WINDOW.0, IN_WINDOW.1));

    desktop.answer(Answer::ShareWithControl).await;
    desktop.client.expect(&[
        "button: 272 (left), state: 1 (pressed)",
        "button: 272 (left), state: 0 (released)",
    ]);
    viewer.send("type hi");
    desktop.client.expect(&["sym: h", "sym: i"]);
}

/// Shared view only — by the customer's choice in GNOME's dialog, or by a desktop without a
/// RemoteDesktop portal — with `control` granted: both sides are told plainly, and the
/// assistant's click is refused with the reason.
async fn view_only(portal_without_remote_desktop: bool) {
    let desktop = Desktop::start(portal_without_remote_desktop).await;
    let w = World::new().await;
    let (agent, id, code) = w.start_agent(desktop.agent(&w, "screen,control"));
    let mut viewer = Scripted::start(&w, &id, &code, None);
    let shot = w.path("shot.png");
    viewer.send(&format!("screenshot {}", shot.display()));
    // Even with the switch at hand, the customer leaves it off.
    desktop.answer(Answer::Share).await;
    let said = viewer.expect("view only");
    assert!(said.contains("the customer's desktop is view only"), "{said}");
    viewer.expect("saved");
    activity(&agent, "your desktop shares the screen view only");

    viewer.send(&format!("click {} {}", IN_WINDOW.0, IN_WINDOW.1));
    let refused = viewer.expect("refused");
    assert!(refused.contains("view only"), "{refused}");
    activity(&agent, "refused: use the mouse and keyboard");
}

#[tokio::test(flavor = "multi_thread")]
async fn shared_without_remote_interaction_the_screen_is_view_only_and_both_sides_are_told() {
    view_only(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_remote_desktop_portal_the_screen_is_shared_view_only() {
    view_only(true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn revoking_control_releases_held_keys_and_revoking_the_screen_closes_the_portal_session() {
    let desktop = Desktop::start(false).await;
    let w = World::new().await;
    let mut cmd = w.text_agent_command(
        &ponte_testbed::binary("ponte-agent"),
        &["--allow", "screen,control"],
    );
    desktop.wayland.apply(&mut cmd);
    let (mut agent, id, code) = crate::world::start_text_agent(cmd);
    let viewer = w.assistant(&id, &code).await;
    viewer.consent(WAIT).await.unwrap();
    let mut stream = viewer.request(&Request::Screen { max_fps: 30 }).await.unwrap();
    desktop.answer(Answer::ShareWithControl).await;
    assert!(matches!(
        next_update(&mut stream).await,
        ScreenUpdate::Size { .. }
    ));
    assert_eq!(desktop.wayland.portal_sessions().len(), 1);
    assert!(desktop.agent_streams());

    // The assistant clicks into the window and holds "a" down.
    let (x, y) = IN_WINDOW;
    let hold = InputEvent::Key {
        keysym: 0x61,
        pressed: true,
    };
    for event in ocr::click_at((i32::from(x), i32::from(y)))
        .into_iter()
        .chain([hold])
    {
        stream.send.send(&ScreenFeedback::Input(event)).await.unwrap();
    }
    // wev prints the X keycode of "a" (evdev KEY_A, 30, plus 8).
    desktop.client.expect(&["key: 38; state: 1 (pressed)"]);
    agent.send("revoke control");
    let revoked = Instant::now();
    desktop.client.expect(&["key: 38; state: 0 (released)"]);
    assert!(
        revoked.elapsed() < Duration::from_secs(1),
        "released within a second: {:?}",
        revoked.elapsed()
    );
    // The screen is still shared: the portal session stays.
    agent.expect("permissions changed: now allowed See the screen");
    assert_eq!(desktop.wayland.portal_sessions().len(), 1);
    assert!(desktop.agent_streams());

    // Revoking the screen ends the stream and closes the portal session within a second: the
    // system's own sharing indicator goes away, and the compositor stops streaming.
    agent.send("revoke screen");
    let revoked = Instant::now();
    let ScreenUpdate::Ended(reason) = next_update(&mut stream).await else {
        panic!("the stream ends with a reason");
    };
    assert!(reason.as_raw().contains("revoked 'screen'"), "{reason}");
    desktop.wait_portal_closed(Duration::from_secs(1).saturating_sub(revoked.elapsed()));
}

/// Reads the session's screen until `found` finds something in it.
async fn wait_for_words<T>(
    customer: &Customer,
    name: &str,
    mut found: impl FnMut(&ocr::Seen) -> Option<T>,
) -> T {
    let deadline = Instant::now() + ocr::SHOW;
    for attempt in 0.. {
        let picture = customer.picture(Duration::from_millis(200)).await;
        let seen = tokio::task::block_in_place(|| ocr::look_at(&picture, name, attempt));
        if let Some(t) = found(&seen) {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "the screen never showed what {name} looks for; it shows: {}",
            seen.text()
        );
    }
    unreachable!()
}

/// Whether `phrase` was on the screen at some moment in the next `span`: the pictures are
/// taken first (a few a second), then read, so that something shown for a few seconds is seen
/// however slow reading is on a busy machine (as [`ocr::shown_within`] on X11).
async fn shown_within(customer: &Customer, name: &str, phrase: &str, span: Duration) -> bool {
    let deadline = Instant::now() + span;
    let mut pictures = Vec::new();
    while Instant::now() < deadline {
        pictures.push(customer.picture(Duration::ZERO).await);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The middle first: by then it is shown, and not gone yet.
    let middle = pictures.len() / 2;
    let order = (middle..pictures.len()).chain((0..middle).rev());
    tokio::task::block_in_place(|| {
        order
            .enumerate()
            .any(|(attempt, i)| ocr::look_at(&pictures[i], name, attempt).find(phrase).is_some())
    })
}

/// Starts the agent with its window (in English) in the session, and joins it with the
/// credentials `credentials` makes and the ID and code the window shows (read as `name`, unique
/// per test; a reading the join refuses is read again, as [`ocr::join_shown`] does).
async fn join_window(
    name: &str,
    wayland: &WaylandSession,
    customer: &Customer,
    w: &World,
    args: &[&str],
    credentials: impl Fn() -> ponte_e2e::handshake::Credentials,
) -> (ponte_testbed::Running, ponte_viewer::Viewer) {
    let mut cmd = w.command("ponte-agent");
    wayland.apply(&mut cmd);
    cmd.env("LANG", "C.UTF-8")
        .arg("--dir")
        .arg(w.path("agent-home"))
        .args(args)
        .stdin(Stdio::null());
    let agent = ponte_testbed::Running::start(cmd);
    let look = async |refused: &[(String, String)]| {
        let read = ocr::agreed(|seen| ocr::id_and_code(seen).filter(|r| !refused.contains(r)));
        wait_for_words(customer, name, read).await
    };
    (agent, ocr::join_read(w, name, look, credentials).await)
}

/// The customer clicks where `phrase` is written, once the screen shows it.
async fn click_phrase(customer: &Customer, name: &str, phrase: &str) {
    let (x, y) = wait_for_words(customer, name, |seen| seen.find(phrase)).await;
    customer.click(f64::from(x), f64::from(y)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn in_its_window_on_wayland_the_customer_allows_the_screen_and_is_told_of_the_systems_dialog() {
    let wayland = WaylandSession::start(1280, 800);
    let customer = wayland.customer().await;
    let w = World::new().await;
    // The window opens on the Wayland display itself: there is no X display in the session.
    let (_agent, viewer) = join_window("wayland-waiting", &wayland, &customer, &w, &[], test_assistant).await;
    click_phrase(&customer, "wayland-consent", "See the screen").await;
    click_phrase(&customer, "wayland-consent", "Allow selected").await;
    let granted = viewer.consent(WAIT).await.expect("the customer allowed");
    assert!(granted.allows(ponte_e2e::app::Capability::Screen));

    let mut stream = viewer.request(&Request::Screen { max_fps: 30 }).await.unwrap();
    // The system's dialog, over Ponte's window that said it would come (the dialog may cover
    // the beginning of what the window says, or its end).
    wait_for_words(&customer, "wayland-dialog", |seen| {
        let said = seen
            .find("Your system will now ask")
            .or(seen.find("to share nothing"));
        seen.find("Share").and(said)
    })
    .await;
    customer.keys(&[ALT_L, u32::from(b's')]).await;
    // Shared without remote interaction (only `screen` was allowed): view only, then the picture.
    assert!(matches!(
        next_update(&mut stream).await,
        ScreenUpdate::ViewOnly(_)
    ));
    assert!(matches!(
        next_update(&mut stream).await,
        ScreenUpdate::Size { .. }
    ));
    wait_for_words(&customer, "wayland-shared", |seen| {
        seen.find("Your screen is being shared (view only)")
            .and(seen.find("shares the screen view only"))
    })
    .await;
}

/// The next pointer position on a screen stream (frames' parts are skipped); keeps the last
/// pointer image (its pixels, 4 bytes each, alpha last) that came before it in `shape`.
async fn next_cursor(stream: &mut SecureStream, shape: &mut Option<Vec<u8>>) -> (i32, i32) {
    loop {
        let taken = until(stream, |update| match update {
            ScreenUpdate::Cursor { x, y } => Some(Ok((x, y))),
            ScreenUpdate::CursorShape { argb, .. } => {
                *shape = Some(argb);
                None
            }
            ScreenUpdate::FrameEnd { frame, .. } => Some(Err(frame)),
            _ => None,
        })
        .await;
        match taken {
            Ok(at) => return at,
            // Acknowledged as a viewer does: without it the agent stops capturing after a few
            // frames, and the pointer's moves with it.
            Err(frame) => stream.send.send(&ScreenFeedback::Ack { frame }).await.unwrap(),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_customers_pointer_is_seen_and_moving_it_pauses_the_assistant() {
    let desktop = Desktop::start(false).await;
    let w = World::new().await;
    let (_agent, id, code) = w.start_agent(desktop.agent(&w, "screen,control"));
    let viewer = w.assistant(&id, &code).await;
    viewer.consent(WAIT).await.unwrap();
    let mut stream = viewer.request(&Request::Screen { max_fps: 30 }).await.unwrap();
    desktop.answer(Answer::ShareWithControl).await;

    // The assistant points: the compositor's cursor metadata says where the pointer went, and
    // what it looks like.
    let (x, y) = IN_WINDOW;
    let to = InputEvent::Move { x, y };
    stream.send.send(&ScreenFeedback::Input(to)).await.unwrap();
    let mut shape = None;
    while next_cursor(&mut stream, &mut shape).await != (i32::from(x), i32::from(y)) {}
    let shape = shape.expect("the viewer has a picture of the pointer to draw");
    let alphas: Vec<u8> = shape.chunks_exact(4).map(|p| p[3]).collect();
    assert!(
        alphas.contains(&0) && alphas.contains(&0xff),
        "a pointer is opaque where drawn, clear around: {alphas:?}"
    );
    let mut shape = None;
    // The assistant's own motions never count as the customer's.
    viewer
        .input(vec![InputEvent::Move { x: x + 5, y }])
        .await
        .unwrap();

    // The customer takes the mouse: the assistant sees it move, and its input waits.
    desktop.customer.click(900.0, 700.0).await;
    while next_cursor(&mut stream, &mut shape).await != (900, 700) {}
    let paused = viewer.input(vec![InputEvent::Move { x, y }]).await.unwrap_err();
    assert!(
        paused.to_string().contains("the customer is using the mouse"),
        "{paused}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn on_wayland_the_assistants_click_on_pontes_own_switch_is_not_taken() {
    // A verified assistant the customer allowed the screen and control up front.
    let wayland = WaylandSession::start(1280, 800);
    let customer = wayland.customer().await;
    let w = World::new().await;
    let org = w.certified("alice", "Alice Example", "acme", "ACME Support");
    let alice = || {
        ponte_viewer::identity::load_or_create(&w.path("alice"))
            .unwrap()
            .0
    };
    let allow = ["--trust-org", &org, "--allow", "screen,control"];
    let (_agent, viewer) = join_window("wl-hostile-waiting", &wayland, &customer, &w, &allow, alice).await;
    viewer.consent(WAIT).await.expect("allowed up front");
    let mut stream = viewer.request(&Request::Screen { max_fps: 30 }).await.unwrap();
    wait_for_words(&customer, "wl-hostile-dialog", |seen| seen.find("Share")).await;
    for combo in [&[TAB][..], &[SPACE], &[ALT_L, u32::from(b's')]] {
        customer.keys(combo).await;
    }
    assert!(matches!(
        next_update(&mut stream).await,
        ScreenUpdate::Size { .. }
    ));

    // The assistant clicks Ponte's own "Terminal" switch on the customer's screen.
    let switch = wait_for_words(&customer, "wl-hostile-session", |seen| seen.find("Terminal")).await;
    for event in ocr::click_at(switch) {
        stream.send.send(&ScreenFeedback::Input(event)).await.unwrap();
    }
    assert!(
        shown_within(
            &customer,
            "wl-hostile-not-taken",
            "Not taken",
            Duration::from_secs(4)
        )
        .await,
        "the window did not say the click was not taken"
    );
    let grants = viewer.watch().borrow().grants;
    assert!(
        grants.is_some_and(|g| !g.allows(ponte_e2e::app::Capability::Terminal)),
        "the assistant granted itself the terminal: {grants:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_input_while_the_system_asks_gets_one_dialog_and_the_customers_no_holds() {
    let desktop = Desktop::start(false).await;
    let w = World::new().await;
    let (agent, id, code) = w.start_agent(desktop.agent(&w, "control"));
    let viewer = std::sync::Arc::new(w.assistant(&id, &code).await);
    viewer.consent(WAIT).await.unwrap();
    // A modified viewer sends many input requests at once, each needing the desktop.
    let clicks: Vec<_> = (0..24)
        .map(|_| {
            let viewer = viewer.clone();
            tokio::spawn(async move { viewer.input(ocr::click_at((640, 400))).await })
        })
        .collect();
    desktop.answer(Answer::Cancel).await;
    for click in clicks {
        let refused = tokio::time::timeout(WAIT, click)
            .await
            .unwrap()
            .unwrap()
            .unwrap_err();
        assert!(
            refused.to_string().contains("did not allow sharing the screen"),
            "{refused}"
        );
    }
    // No second dialog: the customer's no stands until they allow anew.
    let after = desktop.customer.picture(Duration::from_secs(3)).await;
    assert_eq!(after, desktop.screen, "the system asked again");
    assert!(desktop.wayland.portal_sessions().is_empty());
    // The customer was told once that their system would ask, not once per request.
    agent.lines_within(Duration::from_millis(500));
    let told = agent
        .seen()
        .iter()
        .filter(|line| line.contains("Your system will now ask"))
        .count();
    assert_eq!(told, 1);
}

/// The next list of monitors on a screen stream, and the size that follows it (every other
/// message is skipped).
async fn next_monitors(stream: &mut SecureStream) -> (Vec<String>, u8, (u16, u16)) {
    let mut monitors = None;
    until(stream, |update| match update {
        ScreenUpdate::Monitors { names, current } => {
            monitors = Some((names.iter().map(ToString::to_string).collect(), current));
            None
        }
        ScreenUpdate::Size { width, height } => {
            let (names, current) = monitors.take()?;
            Some((names, current, (width, height)))
        }
        _ => None,
    })
    .await
}

/// Two monitors: the customer picks both in the system's dialog; the assistant is told which
/// are shared, switches to the second, sees it and points on it; an index out of the list
/// (a hostile viewer's) switches nothing.
#[tokio::test(flavor = "multi_thread")]
async fn with_two_monitors_picked_in_the_dialog_the_assistant_switches_between_them() {
    let wayland = WaylandSession::start_with_second_monitor(1280, 800, (1024, 768));
    let customer = wayland.customer().await;
    let w = World::new().await;
    let mut cmd = w.agent_command(&["--allow", "screen,control"]);
    wayland.apply(&mut cmd);
    let (agent, id, code) = w.start_agent(cmd);
    let viewer = w.assistant(&id, &code).await;
    viewer.consent(WAIT).await.unwrap();
    let mut stream = viewer.request(&Request::Screen { max_fps: 30 }).await.unwrap();

    // GNOME's dialog lists both monitors, the first picked: the customer picks the second
    // too, allows remote interaction, and shares.
    let (x, y) = wait_for_words(&customer, "wl-two-monitors-dialog", |seen| seen.find("Share")).await;
    let (sx, sy) = (f64::from(x), f64::from(y));
    // Each click once the dialog has settled from the last (it grows a scroll bar).
    let still = Duration::from_millis(300);
    customer.click(sx - 212.0, sy + 168.0).await; // the second row
    customer.picture(still).await;
    customer.click(sx - 22.0, sy + 255.0).await; // "Allow remote interaction"
    customer.picture(still).await;
    customer.click(sx, sy).await;

    let (names, current, size) = next_monitors(&mut stream).await;
    assert_eq!(names.len(), 2, "{names:?}");
    assert_eq!((current, size), (0, (1280, 800)));
    assert!(
        names[0].starts_with("#1") && names[1].starts_with("#2"),
        "{names:?}"
    );

    for index in [2, 255, 1] {
        let switch = ScreenFeedback::Monitor(index);
        stream.send.send(&switch).await.unwrap();
    }
    let (names_then, current, size) = next_monitors(&mut stream).await;
    assert_eq!(names_then, names);
    assert_eq!(
        (current, size),
        (1, (1024, 768)),
        "the second monitor, not one out of the list"
    );
    activity(&agent, &format!("switched to monitor {}", names[1]));

    // The assistant's pointer goes to the monitor shown: the second stream's cursor says so.
    let to = InputEvent::Move { x: 100, y: 120 };
    stream.send.send(&ScreenFeedback::Input(to)).await.unwrap();
    let mut shape = None;
    while next_cursor(&mut stream, &mut shape).await != (100, 120) {}

    // And back.
    stream.send.send(&ScreenFeedback::Monitor(0)).await.unwrap();
    let (_, current, size) = next_monitors(&mut stream).await;
    assert_eq!((current, size), (0, (1280, 800)));
}

/// PipeWire gone (crashed, or never installed): both sides read one plain sentence at once,
/// and the customer is not shown a system dialog that could only fail.
#[tokio::test(flavor = "multi_thread")]
async fn without_pipewire_sharing_fails_at_once_with_a_plain_sentence() {
    let mut desktop = Desktop::start(false).await;
    desktop.wayland.kill("wireplumber");
    desktop.wayland.kill("pipewire");
    let w = World::new().await;
    let (agent, id, code) = w.start_agent(desktop.agent(&w, "screen"));
    let mut viewer = Scripted::start(&w, &id, &code, None);
    let shot = w.path("shot.png");
    let asked = Instant::now();
    viewer.send(&format!("screenshot {}", shot.display()));
    let line = viewer.expect("stopped sharing the screen");
    assert!(
        line.contains("screen-sharing service (PipeWire) is not running"),
        "{line}"
    );
    assert!(asked.elapsed() < Duration::from_secs(10), "{:?}", asked.elapsed());
    activity(
        &agent,
        "your desktop's screen-sharing service (PipeWire) is not running",
    );
    assert!(
        desktop.wayland.portal_sessions().is_empty(),
        "no dialog was shown"
    );
    assert!(
        !agent
            .seen()
            .iter()
            .any(|l| l.contains("Your system will now ask")),
        "nor announced: {:#?}",
        agent.seen()
    );
    assert!(!shot.exists());
}
