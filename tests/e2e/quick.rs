//! Quick access end to end, with the real relay, agent and viewer: the customer opts in at the
//! assistant's request, starts the agent by hand again later, and the assistant reconnects by
//! device name without a code — still through the consent screen. And everything that must
//! not get in does not: unverified assistants, removed or expired opt-ins, another
//! organisation's assistant, and a device whose agent is not running.

#![allow(clippy::unwrap_used)]

use crate::world;

use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use ponte_viewer::QuickAccessReply;
use world::*;

/// Long enough after a prompt appears for the agent to take the answer.
const SETTLE: Duration = Duration::from_millis(800);

/// Starts a viewer with a batch of commands in a thread (the test meanwhile plays the
/// customer); join it for its output.
fn viewer_in_background(w: &World, connect: &[&str], batch: &str) -> std::thread::JoinHandle<Output> {
    let file = w.path(&format!("batch-{}.txt", rand_suffix()));
    std::fs::write(&file, batch).unwrap();
    let mut cmd: Command = w.command("ponte-viewer");
    cmd.arg("connect").args(connect).arg("--batch").arg(&file);
    std::thread::spawn(move || run_with_timeout(cmd, WAIT))
}

/// `ponte-viewer connect --device DEVICE` as the assistant whose identity is in `identity`,
/// running `batch`; waits for it.
fn by_device(w: &World, device: &str, identity: &str, batch: &str) -> Output {
    let identity = w.path(identity);
    viewer_in_background(
        w,
        &["--device", device, "--identity-dir", identity.to_str().unwrap()],
        batch,
    )
    .join()
    .unwrap()
}

fn answer(agent: &mut ponte_testbed::Running, prompt: &str, yes: bool) -> String {
    reply(agent, prompt, if yes { "y" } else { "n" })
}

/// Types `typed` once the line containing `prompt` has been on screen long enough.
fn reply(agent: &mut ponte_testbed::Running, prompt: &str, typed: &str) -> String {
    let line = agent.expect(prompt);
    std::thread::sleep(SETTLE);
    agent.send(typed);
    line
}

/// The customer was not asked about quick access.
fn never_asked(agent: &ponte_testbed::Running) {
    let asked = agent
        .seen()
        .iter()
        .any(|l| l.contains("connect without a code whenever"));
    assert!(!asked, "the customer was asked: {:#?}", agent.seen());
}

/// The quick-access question as the terminal asks it once the session is over: `days` for
/// how long ("y": the proposal), then — with permissions to remember — `how` ("1": ask me each
/// time, "2": without asking).
fn answer_quick(agent: &mut ponte_testbed::Running, days: &str, how: Option<&str>) -> String {
    let question = agent.expect("connect without a code whenever you start Ponte");
    reply(agent, "For how many days?", days);
    if let Some(how) = how {
        reply(agent, "Type 1 to be asked each time", how);
    }
    question
}

fn trusted_file(w: &World) -> PathBuf {
    w.path("config/ponte/trusted.json")
}

/// A session with the code between a text agent that trusts ACME Support and Alice, a
/// verified assistant of ACME, through the viewer library (the test plays the viewer,
/// modified or not).
async fn alice_in_a_code_session(w: &World) -> (ponte_testbed::Running, ponte_viewer::Viewer) {
    let acme = w.certified("alice", "Alice Example", "acme", "ACME Support");
    let (agent, id, code) = w.text_agent(&["--allow", "terminal", "--trust-org", &acme]);
    let (credentials, _) = ponte_viewer::identity::load_or_create(&w.path("alice")).unwrap();
    (agent, w.assistant_as(&id, &code, credentials).await)
}

/// Session 1 with a code: the assistant asks with `remember`, the customer says yes, and
/// whether to allow the remembered permissions next time without asking.
fn opt_in(w: &World, org_pub: &str, identity: &str, remember: &str, without_asking: bool) {
    let (mut agent, id, code) = w.text_agent(&["--allow", "terminal", "--trust-org", org_pub]);
    let batch = format!("remember {remember}\nquit\n");
    let viewer = viewer_in_background(
        w,
        &[
            &id,
            "--code",
            &code,
            "--identity-dir",
            w.path(identity).to_str().unwrap(),
        ],
        &batch,
    );
    // Asked only once the session is over and nothing of the assistant's runs any more.
    agent.expect("asked when the session has ended");
    agent.expect("Session ended");
    let question = answer_quick(&mut agent, "y", Some(if without_asking { "2" } else { "1" }));
    assert!(question.contains("ACME Support"), "{question}");
    // Whom it lets in, told apart by the key (two organisations can share a name).
    assert!(
        agent.seen().iter().any(|l| l.contains("Key fingerprint: ")),
        "{:#?}",
        agent.seen()
    );
    agent.expect("may now connect without a code until");
    let out = viewer.join().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("saved as"), "{}", text(&out.stderr));
    agent.expect("What happened is recorded in");
    assert!(agent.wait(WAIT).success());
}

#[tokio::test(flavor = "multi_thread")]
async fn after_opting_in_the_assistant_reconnects_by_device_without_a_code() {
    let w = World::new().await;
    let org_pub = w.certified("alice", "Alice Example", "acme", "ACME Support");
    opt_in(&w, &org_pub, "alice", "--org Rossi office", false);

    // What the customer's side keeps: one entry, readable by the customer only, listed.
    let mode = std::fs::metadata(trusted_file(&w)).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    // The command's old name, `trusted`, still works.
    let mut list = w.command("ponte-agent");
    list.args(["trusted", "list"]);
    let listed = text(&run_with_timeout(list, WAIT).stdout);
    assert!(
        listed.contains("1. any verified assistant of ACME Support (asked by Alice Example)"),
        "{listed}"
    );
    assert!(listed.contains("Terminal"), "the grants to pre-select: {listed}");
    assert!(
        listed.contains("; key "),
        "the organisation key's fingerprint: {listed}"
    );
    // …and the assistant's address book.
    assert!(w.viewer_cli(&["devices"]).contains("Rossi office"));

    // Later: the customer starts the agent by hand; the assistant connects with no code and
    // the customer still sees who it is and decides, with last time's grants pre-selected.
    let (mut agent, _, _) = w.text_agent(&["--trust-org", &org_pub]);
    agent.expect("Also waiting for any verified assistant of ACME Support");
    let viewer = viewer_in_background(
        &w,
        &[
            "--device",
            "Rossi office",
            "--identity-dir",
            w.path("alice").to_str().unwrap(),
        ],
        "exec echo quick-$((40+2))\nquit\n",
    );
    agent.expect("verified: Alice Example, ACME Support");
    agent.expect("Pre-selected from last time (quick access): Terminal");
    // Enter keeps what is pre-selected ([Y/n]); the others still default to no.
    let line = agent.expect("run commands and a terminal");
    assert!(line.contains("[Y/n]"), "{line}");
    std::thread::sleep(SETTLE);
    agent.send("");
    for prompt in [
        "put files",
        "copy files",
        "read system information",
        "see your screen",
        "your clipboard",
    ] {
        answer(&mut agent, prompt, false);
    }
    let out = viewer.join().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("quick-42"), "{}", text(&out.stdout));
    agent.expect("Session ended");
    assert!(
        agent.wait(WAIT).success(),
        "the agent exits when the session ends"
    );

    // Nothing runs now: the device cannot be reached, and the viewer says why.
    let mut cmd = w.command("ponte-viewer");
    cmd.args(["connect", "--device", "Rossi office", "--identity-dir"])
        .arg(w.path("alice"))
        .args(["--batch", "-"]);
    let started = std::time::Instant::now();
    let out = run_with_timeout(cmd, WAIT);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("ask them to start ponte-agent"),
        "{}",
        text(&out.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(20), "fails promptly");
}

#[tokio::test(flavor = "multi_thread")]
async fn no_quick_access_for_unverified_assistants() {
    let w = World::new().await;
    let (mut agent, id, code) = w.text_agent(&["--allow", "terminal"]);
    // An identity without a certificate: UNVERIFIED to this agent.
    let viewer = viewer_in_background(&w, &[&id, "--code", &code], "remember Rossi\nquit\n");
    agent.expect("only for verified assistants");
    let out = viewer.join().unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("did not allow quick access"),
        "{}",
        text(&out.stderr)
    );
    agent.expect("Session ended");
    agent.wait(WAIT);
    assert!(!trusted_file(&w).exists(), "nothing was stored");
    assert!(!w.viewer_cli(&["devices"]).contains("Rossi"));
}

#[tokio::test(flavor = "multi_thread")]
async fn removed_expired_and_other_organisations_are_turned_away() {
    let w = World::new().await;
    let acme = w.certified("alice", "Alice Example", "acme", "ACME Support");
    let other = w.certified("mallory", "Mallory", "other", "Other Support");
    opt_in(&w, &acme, "alice", "Rossi", false);

    // Another organisation's assistant (trusted by the customer as verified, but never
    // allowed quick access) who got hold of the device's key: refused, and the customer is told.
    let (mut agent, _, _) = w.text_agent(&["--trust-org", &acme, "--trust-org", &other]);
    agent.expect("Also waiting for Alice Example, ACME Support (only this assistant)");
    let out = by_device(&w, "Rossi", "mallory", "quit\n");
    assert!(!out.status.success());
    agent.expect("verified: Mallory, Other Support tried to connect without a code");
    assert!(
        text(&out.stderr).contains("reconnect without a code"),
        "{}",
        text(&out.stderr)
    );

    // The customer's entry has expired (and another, for someone else, still holds): the
    // assistant is refused by the agent.
    let mut file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(trusted_file(&w)).unwrap()).unwrap();
    let mut someone_else = file["entries"][0].clone();
    someone_else["admits"] = serde_json::json!({ "Assistant": vec![7u8; 32] });
    file["entries"][0]["not_after"] = serde_json::json!(1);
    file["entries"].as_array_mut().unwrap().push(someone_else);
    std::fs::write(trusted_file(&w), file.to_string()).unwrap();
    // Restarted by hand, as every time.
    agent.send("end");
    agent.wait(WAIT);
    let (mut agent, _, _) = w.text_agent(&["--trust-org", &acme]);
    agent.expect("Also waiting for");
    let out = by_device(&w, "Rossi", "alice", "quit\n");
    assert!(!out.status.success());
    agent.expect("verified: Alice Example, ACME Support tried to connect without a code");

    // Removed: `quick-access list` numbers them, `quick-access remove` takes one back; with nothing
    // left the device key is gone and the agent no longer waits for anyone but a code.
    agent.send("end");
    agent.wait(WAIT);
    for _ in 0..2 {
        let mut remove = w.command("ponte-agent");
        remove.args(["quick-access", "remove", "1"]);
        let out = run_with_timeout(remove, WAIT);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(text(&out.stdout).contains("Removed:"), "{}", text(&out.stdout));
    }
    assert!(!trusted_file(&w).exists());
    let mut list = w.command("ponte-agent");
    list.args(["quick-access", "list"]);
    assert!(text(&run_with_timeout(list, WAIT).stdout).contains("No assistant may connect without a code"));
    let mut remove = w.command("ponte-agent");
    remove.args(["quick-access", "remove", "1"]);
    assert!(!run_with_timeout(remove, WAIT).status.success());
    let (agent, _, _) = w.text_agent(&["--trust-org", &acme]);
    let out = by_device(&w, "Rossi", "alice", "quit\n");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("ask them to start ponte-agent"),
        "{}",
        text(&out.stderr)
    );
    agent.lines_within(Duration::from_millis(500));
    assert!(
        !agent.seen().iter().any(|l| l.contains("Also waiting")),
        "{:#?}",
        agent.seen()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_opt_in_removed_while_the_agent_waits_no_longer_opens_it() {
    let w = World::new().await;
    let acme = w.certified("alice", "Alice Example", "acme", "ACME Support");
    opt_in(&w, &acme, "alice", "Rossi", false);
    let (mut agent, _, _) = w.text_agent(&["--trust-org", &acme]);
    agent.expect("Also waiting for Alice Example");
    // The customer takes it back without closing Ponte.
    let mut remove = w.command("ponte-agent");
    remove.args(["quick-access", "remove", "1"]);
    let out = run_with_timeout(remove, WAIT);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = by_device(&w, "Rossi", "alice", "exec echo opened\nquit\n");
    assert!(!out.status.success(), "{}", text(&out.stdout));
    assert!(!text(&out.stdout).contains("opened"));
    agent.lines_within(Duration::from_millis(500));
    assert!(
        !agent.seen().iter().any(|l| l.contains("verified: Alice Example")),
        "no consent question for a removed opt-in: {:#?}",
        agent.seen()
    );
    agent.send("end");
    agent.wait(WAIT);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_question_goes_away_with_the_assistant() {
    let w = World::new().await;
    let (mut agent, viewer) = alice_in_a_code_session(&w).await;
    viewer.consent(WAIT).await.expect("allowed by --allow");
    assert_eq!(
        viewer.request_quick_access(false, 30).await.unwrap(),
        QuickAccessReply::Later
    );
    // The assistant ends the session and waits for the answer, then goes away before the
    // customer gives it: the question is withdrawn and a late yes stores nothing.
    let connection = viewer.session().connection().clone();
    let quitting = tokio::spawn(async move { viewer.quit().await });
    agent.expect("connect without a code whenever you start Ponte");
    connection.close(0u32.into(), b"gone");
    agent.expect("That question was withdrawn");
    agent.expect("disconnected before you answered");
    agent.send("y");
    agent.expect("What happened is recorded in");
    agent.wait(WAIT);
    quitting.abort();
    assert!(!trusted_file(&w).exists(), "nothing was stored");

    // An assistant that drops the connection instead of ending the session is not asked
    // about at all.
    let w = World::new().await;
    let (mut agent, viewer) = alice_in_a_code_session(&w).await;
    viewer.consent(WAIT).await.expect("allowed by --allow");
    viewer.request_quick_access(false, 30).await.unwrap();
    viewer.session().connection().close(0u32.into(), b"gone");
    agent.expect("Session ended");
    agent.expect("What happened is recorded in");
    agent.wait(WAIT);
    never_asked(&agent);
    assert!(!trusted_file(&w).exists(), "nothing was stored");
}

#[tokio::test(flavor = "multi_thread")]
async fn no_enter_or_end_at_any_step_means_no_opt_in() {
    // "n" for how long; Enter for how long; Enter, then "n" at the second step; "end" at the
    // second step: nothing stored, and the assistant is told no.
    for steps in [&["n"][..], &[""], &["30", ""], &["30", "n"], &["y", "end"]] {
        let w = World::new().await;
        let (mut agent, viewer) = alice_in_a_code_session(&w).await;
        viewer.consent(WAIT).await.expect("allowed by --allow");
        viewer.request_quick_access(true, 30).await.unwrap();
        let quitting = tokio::spawn(async move { viewer.quit().await });
        agent.expect("connect without a code whenever you start Ponte");
        reply(&mut agent, "For how many days?", steps[0]);
        if let Some(second) = steps.get(1) {
            reply(&mut agent, "Type 1 to be asked each time", second);
        }
        agent.expect("What happened is recorded in");
        agent.wait(WAIT);
        assert_eq!(quitting.await.unwrap(), None, "{steps:?}");
        assert!(!trusted_file(&w).exists(), "{steps:?}: stored");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_name_the_address_book_cannot_keep_is_refused_before_the_customer_is_asked() {
    let w = World::new().await;
    let acme = w.certified("alice", "Alice Example", "acme", "ACME Support");
    let (mut agent, id, code) = w.text_agent(&["--allow", "terminal", "--trust-org", &acme]);
    let out = viewer_in_background(
        &w,
        &[
            &id,
            "--code",
            &code,
            "--identity-dir",
            w.path("alice").to_str().unwrap(),
        ],
        "remember ../../etc/Rossi\nquit\n",
    )
    .join()
    .unwrap();
    assert!(!out.status.success());
    agent.expect("Session ended");
    never_asked(&agent);
    agent.wait(WAIT);
    assert!(!trusted_file(&w).exists(), "nothing was stored");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_requests_asks_the_customer_once() {
    // A modified viewer sends the request twenty times at once: one question, the rest
    // refused without bothering the customer.
    let w = World::new().await;
    let (mut agent, viewer) = alice_in_a_code_session(&w).await;
    let viewer = std::sync::Arc::new(viewer);
    viewer.consent(WAIT).await.expect("allowed by --allow");
    let asks: Vec<_> = (0..20)
        .map(|n| {
            let viewer = viewer.clone();
            tokio::spawn(async move { viewer.request_quick_access(n % 2 == 0, u32::MAX).await })
        })
        .collect();
    for ask in asks {
        let reply = ask.await.unwrap().unwrap();
        assert!(
            matches!(reply, QuickAccessReply::Later | QuickAccessReply::Refused),
            "{reply:?}"
        );
    }
    let quitting = tokio::spawn(async move { viewer.quit().await });
    answer(
        &mut agent,
        "connect without a code whenever you start Ponte",
        false,
    );
    quitting.await.unwrap();
    agent.expect("What happened is recorded in");
    let questions = agent
        .seen()
        .iter()
        .filter(|l| l.contains("connect without a code whenever"))
        .count();
    assert_eq!(questions, 1, "{:#?}", agent.seen());
    assert!(!trusted_file(&w).exists(), "nothing was stored");
    agent.wait(WAIT);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_customer_chooses_how_long() {
    // The assistant proposes 90 days; when the session is over the customer answers 30
    // (after a period the agent does not take), and the opt-in lasts 30 days, on both sides.
    let w = World::new().await;
    let (mut agent, viewer) = alice_in_a_code_session(&w).await;
    viewer.consent(WAIT).await.expect("allowed by --allow");
    assert_eq!(
        viewer.request_quick_access(true, 90).await.unwrap(),
        QuickAccessReply::Later
    );
    // One opt-in per session: a second request is refused at once.
    assert_eq!(
        viewer.request_quick_access(true, 90).await.unwrap(),
        QuickAccessReply::Refused
    );
    let quitting = tokio::spawn(async move { viewer.quit().await });
    agent.expect("For 90 days, until");
    reply(&mut agent, "For how many days?", "400");
    agent.expect("a number of days from 1 to 365");
    agent.send("30");
    // The permissions (Terminal) are remembered; asked each time.
    reply(&mut agent, "Type 1 to be asked each time", "1");
    let grant = quitting.await.unwrap().expect("the customer said yes");
    let trusted: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(trusted_file(&w)).unwrap()).unwrap();
    let entry = &trusted["entries"][0];
    let (created, not_after) = (
        entry["created"].as_u64().unwrap(),
        entry["not_after"].as_u64().unwrap(),
    );
    assert_eq!(not_after - created, 30 * 86_400, "{trusted}");
    assert_eq!(
        grant.not_after, not_after,
        "the assistant is told the customer's period"
    );
    assert_eq!(entry["without_asking"], false, "{trusted}");
    agent.expect("What happened is recorded in");
    agent.wait(WAIT);
}

#[tokio::test(flavor = "multi_thread")]
async fn allowed_without_asking_skips_the_consent_screen_not_the_customers_eyes() {
    let w = World::new().await;
    let acme = w.certified("alice", "Alice Example", "acme", "ACME Support");
    opt_in(&w, &acme, "alice", "Rossi", true);

    let (mut agent, _, _) = w.text_agent(&["--trust-org", &acme]);
    agent.expect("Also waiting for Alice Example, ACME Support (only this assistant)");
    let out = by_device(&w, "Rossi", "alice", "exec echo auto-$((40+2))\nquit\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("auto-42"), "{}", text(&out.stdout));
    // The customer is not asked, but sees who connected and what they may do.
    agent.expect("Alice Example");
    agent.expect("Allowed: Terminal");
    agent.expect("Session ended");
    agent.wait(WAIT);
    assert!(
        !agent
            .seen()
            .iter()
            .any(|l| l.contains("[y/N]") || l.contains("[Y/n]")),
        "{:#?}",
        agent.seen()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_opt_in_never_begets_another() {
    // In a session opened by quick access, the assistant cannot ask for a new (longer, wider)
    // opt-in: refused without asking the customer; only a session with the code can.
    let w = World::new().await;
    let acme = w.certified("alice", "Alice Example", "acme", "ACME Support");
    opt_in(&w, &acme, "alice", "Rossi", true);
    let before = std::fs::read_to_string(trusted_file(&w)).unwrap();
    let (mut agent, _, _) = w.text_agent(&["--trust-org", &acme]);
    agent.expect("Also waiting for Alice Example");
    let out = by_device(&w, "Rossi", "alice", "remember --org --days 365 Again\nquit\n");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("did not allow quick access"),
        "{}",
        text(&out.stderr)
    );
    agent.send("end");
    agent.wait(WAIT);
    never_asked(&agent);
    assert_eq!(std::fs::read_to_string(trusted_file(&w)).unwrap(), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_viewer_that_keeps_asking_is_cut_off() {
    // A modified viewer sends quick-access requests without end. Beyond the first (put to
    // the customer) each is refused at once — and a viewer that does not read would pile the
    // refusals up in the agent's memory — so after a bounded number the agent ends the
    // session, and nothing is stored.
    let w = World::new().await;
    let (mut agent, viewer) = alice_in_a_code_session(&w).await;
    let viewer = std::sync::Arc::new(viewer);
    viewer.consent(WAIT).await.expect("allowed by --allow");
    let asks: Vec<_> = (0..100)
        .map(|_| {
            let viewer = viewer.clone();
            tokio::spawn(async move { viewer.request_quick_access(false, 30).await })
        })
        .collect();
    agent.expect("sent request after request");
    assert!(agent.wait(WAIT).success());
    for ask in asks {
        let answer = tokio::time::timeout(WAIT, ask).await.unwrap().unwrap();
        assert!(
            matches!(
                answer,
                Ok(QuickAccessReply::Later | QuickAccessReply::Refused) | Err(_)
            ),
            "{answer:?}"
        );
    }
    // A flooding assistant is not asked about.
    never_asked(&agent);
    assert!(!trusted_file(&w).exists(), "nothing was stored");
}

#[tokio::test(flavor = "multi_thread")]
async fn whoever_holds_the_device_key_cannot_hold_up_the_code_session() {
    // Every organisation the customer opted in for knows the device's public key, and so its
    // tag. One of them (or whoever copied an address book) joins by the tag and says nothing,
    // holding its line for the handshake timeout; meanwhile the assistant the customer is on
    // the phone with joins with the ID and code and gets in at once. The session ID the tag
    // joiner learns is not the code session's, and a join by it is refused.
    let w = World::new().await;
    let acme = w.certified("alice", "Alice Example", "acme", "ACME Support");
    opt_in(&w, &acme, "alice", "Rossi", false);
    let book = ponte_viewer::devices::Devices::load(&w.path("config/ponte/devices.json")).unwrap();
    let tag = book.list()[0].key.tag();
    let (mut agent, id, code) = w.text_agent(&["--trust-org", &acme, "--allow", "terminal"]);
    agent.expect("Also waiting for");
    let relay = w.relay_options();
    let client = || ponte_session::connect::connect(&relay, false);
    let (mut silent, _) = client().await.unwrap();
    let quick_id = silent
        .join_device(tag, &Default::default())
        .await
        .expect("the tag is found");
    assert_ne!(quick_id.to_string(), id, "the tag leads to a session of its own");
    // The customer is told it is about quick access, not about the ID they read out.
    let line = agent.expect("connecting without a code (quick access)");
    assert!(!line.contains("session ID"), "{line}");
    let (mut by_id, _) = client().await.unwrap();
    let refused = match by_id.join(quick_id).await {
        Err(e) => e.refusal(),
        Ok(()) => None,
    };
    assert_eq!(refused, Some(ponte_wire::rendezvous::Refusal::UnknownSession));

    let started = std::time::Instant::now();
    let viewer = viewer_in_background(&w, &[&id, "--code", &code], "exec echo by-code-$((40+2))\nquit\n");
    let out = viewer.join().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("by-code-42"), "{}", text(&out.stdout));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the code session did not wait for the silent joiner's handshake timeout ({:?})",
        started.elapsed()
    );
    drop(silent);
    agent.expect("Session ended");
    assert!(agent.wait(WAIT).success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scripts_agent_or_no_quick_access_never_lets_an_opt_in_in() {
    // The customer opted in, asking to be asked. An agent run for a script (JSON, --allow
    // terminal) has nobody to ask: it does not wait for the device at all, and --allow is for
    // the code it shows. --no-quick-access turns the line off in the terminal UI too.
    let w = World::new().await;
    let acme = w.certified("alice", "Alice Example", "acme", "ACME Support");
    opt_in(&w, &acme, "alice", "Rossi", false);
    for args in [
        &["--json", "--allow", "terminal"][..],
        &["--text", "--no-quick-access", "--allow", "terminal"],
    ] {
        let mut cmd = w.command("ponte-agent");
        cmd.args(args)
            .args(["--trust-org", &acme, "--dir"])
            .arg(w.path("agent-home"))
            .stdin(std::process::Stdio::piped());
        let agent = ponte_testbed::Running::start(cmd);
        agent.expect(if args[0] == "--json" { "\"ready\"" } else { "Code:" });
        let out = by_device(&w, "Rossi", "alice", "exec echo in-$((6*7))\nquit\n");
        assert!(!out.status.success(), "{args:?}: {}", text(&out.stdout));
        assert!(!text(&out.stdout).contains("in-42"), "{args:?}");
        assert!(
            text(&out.stderr).contains("ask them to start ponte-agent"),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ponte_settings_changed_from_the_terminal_are_told_and_nothing_is_asked() {
    // With the terminal the assistant runs as the customer: it plants an opt-in of its own in
    // the customer's Ponte settings by hand, then asks for quick access. Ponte cannot prevent
    // the write, but it sees it: the customer is told, and not asked anything.
    let w = World::new().await;
    let (mut agent, viewer) = alice_in_a_code_session(&w).await;
    viewer.consent(WAIT).await.expect("allowed by --allow");
    let planted = "printf '{\"device_key\":null,\"entries\":[]}' > \"$XDG_CONFIG_HOME/ponte/trusted.json\" && chmod 600 \"$XDG_CONFIG_HOME/ponte/trusted.json\"";
    let status = viewer
        .exec(
            &format!("mkdir -p \"$XDG_CONFIG_HOME/ponte\" && {planted}"),
            |_, _| {},
        )
        .await
        .unwrap();
    assert_eq!(status, Some(0));
    assert_eq!(
        viewer.request_quick_access(true, 30).await.unwrap(),
        QuickAccessReply::Later
    );
    assert_eq!(viewer.quit().await, None, "the assistant was told yes");
    agent.expect("something other than Ponte changed");
    agent.expect("was not put to you: Ponte's own files changed");
    agent.expect("What happened is recorded in");
    agent.wait(WAIT);
    never_asked(&agent);
}

/// Whoever knows a device's tag (every assistant given its key does) registers it as a resume
/// tag, without the device's key: the device keeps its tag — joins by it still reach the
/// device — and a resume lookup of the device's tag finds only what was registered as a resume.
#[tokio::test(flavor = "multi_thread")]
async fn a_resume_registration_cannot_take_or_probe_a_device_tag() {
    let w = World::new().await;
    let connect = async || {
        ponte_session::connect::connect(&w.relay_options(), false)
            .await
            .unwrap()
            .0
    };
    let key = ponte_e2e::device_key::DeviceKey::generate(&mut ponte_wire::os_rng());
    let tag = key.public().tag();
    let mut device = connect().await;
    let (id, _) = device
        .register_device(key.public().0, tag, |c, e| key.possession(c, e))
        .await
        .unwrap();
    let mut thief = connect().await;
    let (stolen, _) = thief.register_resume(tag).await.unwrap();
    assert_ne!(stolen, id);

    let mut prober = connect().await;
    let found = prober.join_resume(tag, &Default::default()).await.unwrap();
    assert_eq!(found, stolen, "a resume lookup never finds the device");
    let mut assistant = connect().await;
    assert_eq!(
        assistant.join_device(tag, &Default::default()).await.unwrap(),
        id,
        "the device keeps its tag"
    );
}

/// A flood of resume lookups from one source (random tags, as an internet client scanning
/// for sessions would send), all at once: each costs a join token, found or not, so the source
/// is told to slow down after its burst instead of making the relay look tags up at its pace.
#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_resume_lookups_is_rate_limited() {
    let w = World::new().await;
    let lookups = (0..30u8).map(|n| {
        let options = w.relay_options();
        tokio::spawn(async move {
            let (mut scanner, _) = ponte_session::connect::connect(&options, false).await.unwrap();
            let tag = ponte_wire::DeviceTag([n; 16]);
            scanner
                .join_resume(tag, &Default::default())
                .await
                .unwrap_err()
                .refusal()
        })
    });
    let mut limited = 0;
    for lookup in lookups.collect::<Vec<_>>() {
        match lookup.await.unwrap() {
            Some(ponte_wire::rendezvous::Refusal::UnknownSession) => {}
            Some(ponte_wire::rendezvous::Refusal::RateLimited { .. }) => limited += 1,
            other => panic!("{other:?}"),
        }
    }
    // The burst is 10 (and a token comes back every 3 s).
    assert!(limited >= 18, "only {limited} of 30 lookups at once were limited");
}
