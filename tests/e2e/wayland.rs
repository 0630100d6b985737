//! The agent on a headless GNOME Wayland session (mutter, PipeWire, WirePlumber and the GNOME
//! portal, started by the test): the screen through the xdg-desktop-portal, with the system's
//! own dialog answered by the test as the customer would, with mutter's keyboard.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ponte_testbed::WaylandSession;
use ponte_testbed::wayland::{Customer, Picture};

use crate::screen::{Scripted, read_png};
use crate::world::*;

/// X keysyms the customer presses in the dialog.
const ALT_L: u32 = 0xffe9;
const ESCAPE: u32 = 0xff1b;
const TAB: u32 = 0xff09;
const SPACE: u32 = 0x20;

/// wev, a program that prints what input its window receives, stopped when dropped.
struct Client {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Client {
    /// Waits until wev printed lines containing each of `needles` in order.
    fn expect(&self, needles: &[&str]) {
        let deadline = Instant::now() + WAIT;
        for needle in needles {
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                let line = self
                    .lines
                    .recv_timeout(left)
                    .unwrap_or_else(|_| panic!("the window never received {needle:?}"));
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

/// A session whose screen shows a window (wev's), and the customer in it.
async fn desktop() -> (WaylandSession, Customer, Client, Picture) {
    let wayland = WaylandSession::start(1280, 800);
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
    let shown = customer.changed_from(&empty, WAIT).await;
    (wayland, customer, client, shown)
}

#[tokio::test(flavor = "multi_thread")]
async fn through_the_portal_the_screenshot_is_the_screen_pixel_for_pixel() {
    let (wayland, customer, _client, screen) = desktop().await;
    let w = World::new().await;
    let mut cmd = w.agent_command(&["--allow", "screen"]);
    wayland.apply(&mut cmd);
    let (agent, id, code) = w.start_agent(cmd);
    let mut viewer = Scripted::start(&w, &id, &code, None);
    let shot = w.path("shot.png");
    viewer.send(&format!("screenshot {}", shot.display()));

    // The system asks; the customer shares the screen (Alt+S: "Share"), without control.
    customer.changed_from(&screen, WAIT).await;
    customer.keys(&[ALT_L, u32::from(b's')]).await;
    viewer.expect("saved");
    let started = agent.event("activity", WAIT);
    assert!(
        started["text"]
            .as_str()
            .unwrap()
            .contains("screen sharing started"),
        "{started}"
    );
    let reference = customer.picture(Duration::from_millis(300)).await;
    assert_eq!(reference, screen, "the dialog has gone");
    assert_eq!(
        read_png(&shot),
        (reference.width, reference.height, reference.pixels),
        "the screenshot is mutter's own picture of the screen, pixel for pixel"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_system_dialog_tells_both_sides_why() {
    let (wayland, customer, _client, screen) = desktop().await;
    let w = World::new().await;
    let mut cmd = w.agent_command(&["--allow", "screen"]);
    wayland.apply(&mut cmd);
    let (agent, id, code) = w.start_agent(cmd);
    let mut viewer = Scripted::start(&w, &id, &code, None);
    let shot = w.path("shot.png");
    viewer.send(&format!("screenshot {}", shot.display()));

    customer.changed_from(&screen, WAIT).await;
    customer.keys(&[ESCAPE]).await;
    let line = viewer.expect("did not allow sharing the screen");
    assert!(line.contains("cannot share the screen"), "{line}");
    assert!(!shot.exists());
    let failed = loop {
        let activity = agent.event("activity", WAIT);
        if activity["kind"] == "failed" {
            break activity;
        }
    };
    assert!(
        failed["text"].as_str().unwrap().contains("system's dialog"),
        "{failed}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_control_allowed_in_the_system_dialog_a_click_and_keys_reach_a_window() {
    let (wayland, customer, client, screen) = desktop().await;
    let w = World::new().await;
    let mut cmd = w.agent_command(&["--allow", "control"]);
    wayland.apply(&mut cmd);
    let (_agent, id, code) = w.start_agent(cmd);
    let mut viewer = Scripted::start(&w, &id, &code, None);
    // Inside wev's window, which mutter centres on the 1280×800 screen.
    viewer.send("click 640 400");

    // The customer turns on "Allow remote interaction" (Tab to the switch, Space), then
    // shares (Alt+S).
    customer.changed_from(&screen, WAIT).await;
    customer.keys(&[TAB]).await;
    customer.keys(&[SPACE]).await;
    customer.keys(&[ALT_L, u32::from(b's')]).await;
    client.expect(&[
        "button: 272 (left), state: 1 (pressed)",
        "button: 272 (left), state: 0 (released)",
    ]);
    viewer.send("type hi");
    client.expect(&["sym: h", "sym: i"]);
}
