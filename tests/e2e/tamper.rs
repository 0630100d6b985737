//! A relay that attacks the path: the in-process relay's test hook alters, drops, repeats or
//! cuts the records it forwards on one stream, between `ponte-agent --json --allow …` and an
//! assistant on the viewer core (or the `ponte-viewer` binary). Each attack is detected, and
//! then both programs end the session at once with the same plain message; what each side
//! reports about the transfer it was in matches what is on its disk.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ponte_relay::forward::Direction;
use ponte_relay::tap::{Tap, Tapped};
use ponte_testbed::Running;
use ponte_viewer::Viewer;

use crate::world;

use world::*;

/// What both sides say when the path was attacked (the agent in English here).
const TAMPERED: &str = "the connection between the two computers was tampered with (by the relay or the \
                        network); the session was ended and nothing more was sent";

/// How long a side may take to end the session after an attack.
const ENDS_WITHIN: Duration = Duration::from_secs(20);

/// Which stream of a direction the relay attacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    /// The control stream (the handshake's stream, records after its frames).
    Control,
    /// The stream of the assistant's first request.
    FirstRequest,
}

/// What the relay does to the records of the attacked stream (records counted from 0; on the
/// control stream after the handshake, on a request stream from its `Request` or `Response`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attack {
    /// Nothing: a relay with the hook in place that forwards faithfully.
    None,
    /// Flip a bit of record n's authentication tag.
    Flip(u64),
    /// Leave record n out.
    Drop(u64),
    /// Send record n twice.
    Replay(u64),
    /// End the stream with a FIN where its end-of-stream record was.
    CutBeforeEnd,
    /// End the stream with a FIN right after the record before the one that precedes the
    /// end-of-stream record: for a transfer, after the last file's end and before `Done`.
    CutBeforeLast,
}

/// A relay's plan: which stream of which direction, and what it does there.
#[derive(Debug, Clone, Copy)]
struct Plan {
    direction: Direction,
    which: Which,
    attack: Attack,
}

/// Bytes of a handshake frame's length prefix, and of a record header.
const FRAME_PREFIX: usize = 2;
const RECORD_HEADER: usize = 22;

/// The relay's filter on the attacked stream: splits what it forwards into the handshake's
/// frames (passed on) and records (attacked as planned).
struct Records {
    attack: Attack,
    /// Handshake frames still to pass before the records start.
    frames: usize,
    buf: Vec<u8>,
    index: u64,
    /// For [`Attack::CutBeforeLast`]: the last complete record, held back until the next.
    held: Option<Vec<u8>>,
    cut: bool,
    fired: Arc<AtomicBool>,
}

impl Records {
    fn chunk(&mut self, bytes: &[u8]) -> Tapped {
        if self.cut {
            return Tapped::Replace(Vec::new());
        }
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        loop {
            let len = if self.frames > 0 {
                let Some(prefix) = self.buf.get(..FRAME_PREFIX) else {
                    break;
                };
                FRAME_PREFIX + usize::from(u16::from_be_bytes([prefix[0], prefix[1]]))
            } else {
                let Some(header) = self.buf.get(..RECORD_HEADER) else {
                    break;
                };
                RECORD_HEADER + u32::from_be_bytes(header[2..6].try_into().unwrap()) as usize
            };
            if self.buf.len() < len {
                break;
            }
            let unit: Vec<u8> = self.buf.drain(..len).collect();
            if self.frames > 0 {
                self.frames -= 1;
                out.extend_from_slice(&unit);
                continue;
            }
            let end_of_stream = unit[0] == 2;
            let index = self.index;
            self.index += 1;
            match self.attack {
                Attack::Flip(n) if index == n => {
                    let mut unit = unit;
                    *unit.last_mut().unwrap() ^= 0x01;
                    out.extend_from_slice(&unit);
                }
                Attack::Drop(n) if index == n => {}
                Attack::Replay(n) if index == n => {
                    out.extend_from_slice(&unit);
                    out.extend_from_slice(&unit);
                }
                Attack::CutBeforeEnd | Attack::CutBeforeLast if end_of_stream => {
                    // The held record (before the end) goes too.
                    self.fired.store(true, Ordering::SeqCst);
                    self.cut = true;
                    return Tapped::Finish(out);
                }
                // Held from the second record on: the first (a request) may wait for an answer.
                Attack::CutBeforeLast if index >= 1 => {
                    if let Some(held) = self.held.replace(unit) {
                        out.extend_from_slice(&held);
                    }
                    continue;
                }
                _ => {
                    out.extend_from_slice(&unit);
                    continue;
                }
            }
            self.fired.store(true, Ordering::SeqCst);
        }
        Tapped::Replace(out)
    }
}

/// A relay hook that carries out `plan`; the flag says whether the attack happened.
fn relay_attacking(plan: Plan) -> (Tap, Arc<AtomicBool>) {
    let fired = Arc::new(AtomicBool::new(false));
    let flag = fired.clone();
    let counts = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
    let tap = Tap(Arc::new(move |direction| {
        let slot = usize::from(direction == Direction::ViewerToAgent);
        // Streams of a direction in the order they are mirrored: the handshake's first.
        let which = match counts[slot].fetch_add(1, Ordering::SeqCst) {
            0 => Some(Which::Control),
            1 => Some(Which::FirstRequest),
            _ => None,
        };
        if direction != plan.direction || which != Some(plan.which) || plan.attack == Attack::None {
            return Box::new(|_: &[u8]| Tapped::Pass);
        }
        let mut records = Records {
            attack: plan.attack,
            // The code handshake: Hello and Confirm from the agent, Auth from the viewer.
            frames: match (plan.which, direction) {
                (Which::Control, Direction::AgentToViewer) => 2,
                (Which::Control, Direction::ViewerToAgent) => 1,
                (Which::FirstRequest, _) => 0,
            },
            buf: Vec::new(),
            index: 0,
            held: None,
            cut: false,
            fired: flag.clone(),
        };
        Box::new(move |bytes: &[u8]| records.chunk(bytes))
    }));
    (tap, fired)
}

/// A file of `len` bytes that do not compress.
fn write_noise(path: &Path, len: usize) {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let data: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(path, data).unwrap();
}

/// Waits until the viewer's session has ended; returns why.
async fn viewer_ended(viewer: &Viewer) -> String {
    let deadline = Instant::now() + ENDS_WITHIN;
    loop {
        if let Some(reason) = viewer.state().ended {
            return reason;
        }
        assert!(
            Instant::now() < deadline,
            "the viewer's session did not end within {ENDS_WITHIN:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The agent's activity lines so far, as (kind, text).
fn activities(agent: &Running) -> Vec<(String, String)> {
    agent
        .seen()
        .iter()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|v| v["event"] == "activity")
        .map(|v| {
            (
                v["kind"].as_str().unwrap().to_owned(),
                v["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The names in `dir` that are partial files of a transfer.
fn partials(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".ponte-partial"))
        .collect()
}

/// Both sides ended with the tamper message; the agent's ending is returned for more checks.
async fn both_end_tampered(agent: &Running, viewer: &Viewer) {
    assert_eq!(viewer_ended(viewer).await, TAMPERED, "the viewer's end");
    let ended = agent.event("ended", ENDS_WITHIN);
    assert_eq!(ended["reason"], TAMPERED, "the agent's end");
    let log = std::fs::read_to_string(ended["log"].as_str().unwrap()).unwrap();
    assert!(log.contains(TAMPERED), "the session log says so: {log}");
}

/// A `get` of a 1 MiB file while the relay attacks what the agent sends on its stream.
async fn attacked_get(attack: Attack) {
    let plan = Plan {
        direction: Direction::AgentToViewer,
        which: Which::FirstRequest,
        attack,
    };
    let (tap, fired) = relay_attacking(plan);
    let w = World::with_tap(tap).await;
    let (agent, id, code) = w.agent(&["--allow", "download"]);
    write_noise(&w.path("agent-home/file.bin"), 1 << 20);
    let viewer = w.assistant(&id, &code).await;
    assert!(viewer.consent(WAIT).await.is_some());
    std::fs::create_dir(w.path("got")).unwrap();
    let local = w.path("got/file.bin");
    let got = tokio::time::timeout(WAIT, viewer.get("file.bin", &local, false, &mut |_| {}))
        .await
        .expect("the get ends");
    if attack == Attack::None {
        got.unwrap();
        assert_eq!(sha256_file(&local), sha256_file(&w.path("agent-home/file.bin")));
        let sent = agent.event_where(
            "sent",
            |v| v["kind"] == "download" && v["text"].as_str().is_some_and(|t| t.starts_with("sent")),
            WAIT,
        );
        assert!(sent["text"].as_str().unwrap().contains("file.bin"), "{sent}");
        return;
    }
    let err = got.expect_err("an attacked get fails").to_string();
    assert!(fired.load(Ordering::SeqCst), "the relay never attacked");
    assert!(err.contains(TAMPERED), "the get's error: {err}");
    both_end_tampered(&agent, &viewer).await;
    // Nothing arrived on the assistant's disk, and the customer was not told it was sent.
    assert!(!local.exists(), "a file is in place after a failed get");
    assert_eq!(partials(&w.path("got")), Vec::<String>::new());
    let lines = activities(&agent);
    assert!(
        !lines
            .iter()
            .any(|(kind, text)| kind == "download" && text.starts_with("sent")),
        "{lines:#?}"
    );
}

/// A `put` of a 1 MiB file while the relay attacks what the viewer sends on its stream.
async fn attacked_put(attack: Attack) {
    let plan = Plan {
        direction: Direction::ViewerToAgent,
        which: Which::FirstRequest,
        attack,
    };
    let (tap, fired) = relay_attacking(plan);
    let w = World::with_tap(tap).await;
    let (agent, id, code) = w.agent(&["--allow", "upload"]);
    let source = w.path("file.bin");
    write_noise(&source, 1 << 20);
    let viewer = w.assistant(&id, &code).await;
    assert!(viewer.consent(WAIT).await.is_some());
    let put = tokio::time::timeout(WAIT, viewer.put(&source, "put.bin", false, &mut |_| {}))
        .await
        .expect("the put ends");
    let remote = w.path("agent-home/put.bin");
    if attack == Attack::None {
        put.unwrap();
        assert_eq!(sha256_file(&remote), sha256_file(&source));
        return;
    }
    let err = put.expect_err("an attacked put fails").to_string();
    assert!(fired.load(Ordering::SeqCst), "the relay never attacked");
    assert!(err.contains(TAMPERED), "the put's error: {err}");
    both_end_tampered(&agent, &viewer).await;
    // Nothing arrived on the customer's disk, and the customer was not told it was received.
    assert!(!remote.exists(), "a file is in place after a failed put");
    assert_eq!(partials(&w.path("agent-home")), Vec::<String>::new());
    let lines = activities(&agent);
    assert!(
        !lines
            .iter()
            .any(|(kind, text)| kind == "upload" && text.starts_with("received")),
        "{lines:#?}"
    );
    // The customer's log says what failed, each cause once.
    let failed: Vec<&String> = lines
        .iter()
        .filter(|(k, _)| k == "failed")
        .map(|(_, t)| t)
        .collect();
    for line in &failed {
        assert_each_cause_once(line);
    }
    if let Attack::Flip(_) = attack {
        assert!(
            failed.iter().any(|l| l.contains("record failed authentication")),
            "{lines:#?}"
        );
    }
}

/// Fails if a message repeats one of its causes (`a: b: b`), as errors printed with their
/// sources once did.
fn assert_each_cause_once(message: &str) {
    let causes: Vec<&str> = message.split(": ").map(str::trim).collect();
    for (i, cause) in causes.iter().enumerate() {
        assert!(
            cause.len() < 8
                || !causes[i + 1..]
                    .iter()
                    .any(|c| c.contains(cause) || (c.len() >= 8 && cause.contains(c))),
            "{cause:?} is repeated in {message:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_faithful_relay_with_the_hook_in_place_changes_nothing() {
    attacked_get(Attack::None).await;
    attacked_put(Attack::None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_get_with_an_altered_record_ends_the_session() {
    attacked_get(Attack::Flip(5)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_get_with_a_dropped_record_ends_the_session() {
    attacked_get(Attack::Drop(5)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_get_with_a_replayed_record_ends_the_session() {
    attacked_get(Attack::Replay(5)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_get_cut_before_its_end_of_stream_record_ends_the_session_and_leaves_nothing() {
    attacked_get(Attack::CutBeforeEnd).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_get_cut_after_the_last_file_leaves_nothing_in_place() {
    attacked_get(Attack::CutBeforeLast).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_put_with_an_altered_record_ends_the_session() {
    attacked_put(Attack::Flip(5)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_put_with_a_dropped_record_ends_the_session() {
    attacked_put(Attack::Drop(5)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_put_with_a_replayed_record_ends_the_session() {
    attacked_put(Attack::Replay(5)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_put_cut_before_its_end_of_stream_record_ends_the_session_and_leaves_nothing() {
    attacked_put(Attack::CutBeforeEnd).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_put_cut_after_the_last_file_leaves_nothing_in_place() {
    attacked_put(Attack::CutBeforeLast).await;
}

/// The control stream is watched like every other: an altered chat message from the assistant
/// ends the session at the customer's side, which tells the assistant why.
#[tokio::test(flavor = "multi_thread")]
async fn an_altered_control_message_to_the_agent_ends_the_session() {
    let (tap, fired) = relay_attacking(Plan {
        direction: Direction::ViewerToAgent,
        which: Which::Control,
        attack: Attack::Flip(0),
    });
    let w = World::with_tap(tap).await;
    let (agent, id, code) = w.agent(&["--allow", "download"]);
    let viewer = w.assistant(&id, &code).await;
    assert!(viewer.consent(WAIT).await.is_some());
    viewer.chat("hello").await.unwrap();
    both_end_tampered(&agent, &viewer).await;
    assert!(fired.load(Ordering::SeqCst));
    let chats = agent.seen().iter().filter(|l| l.contains("\"chat\"")).count();
    assert_eq!(chats, 0, "the altered chat was not shown");
}

/// The agent's first control message (the grants) altered: the viewer detects it, ends, and
/// tells the customer's side.
#[tokio::test(flavor = "multi_thread")]
async fn an_altered_control_message_to_the_viewer_ends_the_session() {
    let (tap, fired) = relay_attacking(Plan {
        direction: Direction::AgentToViewer,
        which: Which::Control,
        attack: Attack::Flip(0),
    });
    let w = World::with_tap(tap).await;
    let (agent, id, code) = w.agent(&["--allow", "download"]);
    let viewer = w.assistant(&id, &code).await;
    both_end_tampered(&agent, &viewer).await;
    assert!(fired.load(Ordering::SeqCst));
    assert_eq!(viewer.state().grants, None, "the altered grants were not taken");
}

/// The `ponte-viewer` command says it on stderr and exits non-zero; nothing is left on disk.
#[tokio::test(flavor = "multi_thread")]
async fn the_viewer_command_reports_the_attack_and_fails() {
    let (tap, fired) = relay_attacking(Plan {
        direction: Direction::AgentToViewer,
        which: Which::FirstRequest,
        attack: Attack::Flip(4),
    });
    let w = World::with_tap(tap).await;
    let (agent, id, code) = w.agent(&["--allow", "download"]);
    write_noise(&w.path("agent-home/file.bin"), 1 << 20);
    let local = w.path("cli.bin");
    let out = w.viewer(
        &id,
        &code,
        &format!("get file.bin {}\nexec echo never\n", local.display()),
    );
    assert!(fired.load(Ordering::SeqCst));
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains(TAMPERED), "{stderr}");
    assert!(!stderr.contains("received"), "{stderr}");
    assert!(!local.exists());
    assert_eq!(agent.event("ended", ENDS_WITHIN)["reason"], TAMPERED);
}
