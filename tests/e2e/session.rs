//! A whole remote-assistance session with the real binaries: an in-process relay (so the test
//! can see every byte it forwards), `ponte-agent --json --allow …` and `ponte-viewer --batch`.

#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::Duration;

use ponte_relay::{Config, Relay};
use ponte_testbed::Running;

use crate::world;

use world::*;

#[tokio::test(flavor = "multi_thread")]
async fn exec_output_status_and_the_relay_sees_no_plaintext() {
    let w = World::new().await;
    let (agent, id, code) = w.agent(&["--allow", "terminal"]);
    let marker = "PLAINTEXT-MARKER-91f3e";
    let out = w.viewer(
        &id,
        &code,
        &format!("exec echo {marker}-$((40+2))\nexec echo to-stderr >&2; exit 3\n"),
    );
    assert!(text(&out.stdout).contains(&format!("{marker}-42")), "{out:?}");
    assert!(text(&out.stderr).contains("to-stderr"), "{out:?}");
    assert!(text(&out.stderr).contains("exit status 3"), "{out:?}");
    assert!(!out.status.success(), "a failed command fails the batch");
    // The relay forwarded the session but never saw the marker, the output or the code.
    assert!(w.seen.lock().unwrap().len() > 1000);
    assert!(!w.relay_saw(marker.as_bytes()));
    assert!(!w.relay_saw(code.as_bytes()));
    let consent = agent.event("activity", WAIT);
    assert!(
        consent["text"].as_str().unwrap().contains("command started"),
        "{consent}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn put_then_get_100_mb_with_matching_hashes() {
    let w = World::new().await;
    let (_agent, id, code) = w.agent(&["--allow", "upload,download"]);
    let src = w.path("big.bin");
    let mut data = vec![0u8; 100 << 20];
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    std::fs::write(&src, &data).unwrap();
    let back = w.path("back.bin");
    let out = w.viewer(
        &id,
        &code,
        &format!(
            "put {} big-remote.bin\nget big-remote.bin {}\n",
            src.display(),
            back.display()
        ),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let remote = w.path("agent-home/big-remote.bin");
    assert_eq!(sha256_file(&remote), sha256_file(&src));
    assert_eq!(sha256_file(&back), sha256_file(&src));
    // No partial files are left behind.
    assert!(!w.path("agent-home/.big-remote.bin.ponte-partial").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_directory_round_trip_and_no_overwrite_without_asking() {
    let w = World::new().await;
    let (_agent, id, code) = w.agent(&["--allow", "upload,download"]);
    let tree = w.path("tree");
    std::fs::create_dir_all(tree.join("a/b")).unwrap();
    std::fs::create_dir_all(tree.join("empty")).unwrap();
    std::fs::write(tree.join("top.txt"), "top").unwrap();
    std::fs::write(tree.join("a/mid.txt"), "middle").unwrap();
    std::fs::write(tree.join("a/b/deep.bin"), vec![7u8; 70_000]).unwrap();
    let back = w.path("tree-back");
    let out = w.viewer(
        &id,
        &code,
        &format!(
            "put {} remote-tree\nget remote-tree {}\nput {} remote-tree\n",
            tree.display(),
            back.display(),
            tree.display()
        ),
    );
    for rel in ["top.txt", "a/mid.txt", "a/b/deep.bin"] {
        assert_eq!(
            std::fs::read(tree.join(rel)).unwrap(),
            std::fs::read(back.join(rel)).unwrap(),
            "{rel}"
        );
    }
    assert!(back.join("empty").is_dir());
    // The third command would overwrite the remote tree: refused, so the batch fails.
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("already exists"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_capability_is_refused_clearly_and_logged() {
    let w = World::new().await;
    let (agent, id, code) = w.agent(&["--allow", "terminal"]);
    let out = w.viewer(&id, &code, "info\n");
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("refused") && err.contains("info"), "{err}");
    let logged = agent.event("activity", WAIT);
    assert_eq!(logged["kind"], "refused", "{logged}");
    // Downloads without the grant are asked per file; a scripted agent cannot ask: refused.
    let (_agent2, id2, code2) = w.agent(&["--allow", "terminal"]);
    std::fs::write(w.path("agent-home/secret.txt"), "secret").unwrap();
    let out = w.viewer(
        &id2,
        &code2,
        &format!("get secret.txt {}\n", w.path("stolen.txt").display()),
    );
    assert!(!out.status.success());
    assert!(!w.path("stolen.txt").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn three_wrong_codes_burn_the_session() {
    let w = World::new().await;
    let (agent, id, code) = w.agent(&["--allow", "all"]);
    let wrong = if code == "00000000" {
        "11111111"
    } else {
        "00000000"
    };
    for attempt in 1..=3 {
        let out = w.viewer(&id, wrong, "exec echo should-not-run\n");
        assert!(!out.status.success());
        let err = text(&out.stderr);
        if attempt < 3 {
            assert!(err.contains("wrong code"), "attempt {attempt}: {err}");
            assert_eq!(agent.attempt("wrong_code", WAIT)["attempts_left"], 3 - attempt);
        } else {
            assert!(
                err.contains("no longer valid") || err.contains("wrong code"),
                "attempt 3: {err}"
            );
        }
        assert!(!text(&out.stdout).contains("should-not-run"));
    }
    agent.attempt("burned", WAIT);
    let fresh = agent.event("ready", WAIT);
    assert_ne!(fresh["session_id"].as_str().unwrap(), id);
    // The burned pair no longer works, even with the right code.
    let out = w.viewer(&id, &code, "exec echo late\n");
    assert!(!out.status.success());
    assert!(!text(&out.stdout).contains("late"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_customer_ending_the_session_ends_the_viewer_with_the_reason() {
    let w = World::new().await;
    let (mut agent, id, code) = w.agent(&["--allow", "terminal"]);
    let mut cmd = w.command("ponte-viewer");
    let batch = w.path("long.txt");
    std::fs::write(&batch, "exec sleep 30\nexec echo after\n").unwrap();
    cmd.args(["connect", &id, "--code", &code, "--batch"]).arg(&batch);
    let viewer = std::thread::spawn(move || run_with_timeout(cmd, WAIT));
    agent.event("activity", WAIT); // the command started
    let _ = Command::new("kill")
        .args(["-INT", &agent.child.id().to_string()])
        .status();
    let ended = agent.event("ended", WAIT);
    assert_eq!(ended["reason"], "you ended the session");
    let log = ended["log"].as_str().unwrap();
    assert!(
        std::fs::read_to_string(log)
            .unwrap()
            .contains("command started: sleep 30")
    );
    let out = viewer.join().unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("the customer ended the session"),
        "{}",
        text(&out.stderr)
    );
    assert!(!text(&out.stdout).contains("after"));
    let status = agent.wait(Duration::from_secs(10));
    assert!(
        status.success(),
        "the agent exits cleanly when the session ends: {status:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn trust_on_first_use_catches_a_changed_relay_certificate() {
    let mut w = World::new().await;
    let (agent, _id, _code) = w.agent(&[]);
    drop(agent);
    // The same address now answers with another certificate.
    w.relay.take().unwrap().shutdown().await;
    // The old endpoint may hold the port for a moment while its connections drain.
    let mut impostor = None;
    for _ in 0..100 {
        match Relay::start(Config::new(w.addr, w.path("impostor"))).await {
            Ok(r) => {
                impostor = Some(r);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let impostor = impostor.expect("port reusable");
    let mut cmd = w.command("ponte-agent");
    cmd.arg("--json").stdin(Stdio::null());
    let out = run_with_timeout(cmd, WAIT);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("fingerprint changed"),
        "{}",
        text(&out.stderr)
    );
    // The viewer refuses too, and accepting the new fingerprint explicitly works.
    let mut cmd = w.command("ponte-viewer");
    cmd.args(["connect", "123456789", "--code", "12345678"]);
    let out = run_with_timeout(cmd, WAIT);
    assert!(
        text(&out.stderr).contains("fingerprint changed"),
        "{}",
        text(&out.stderr)
    );
    let mut cmd = w.command("ponte-agent");
    cmd.args(["--json", "--accept-new-fingerprint"]);
    let accepted = Running::start(cmd);
    accepted.event("ready", WAIT);
    drop(impostor);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certified_assistant_shows_as_verified() {
    let w = World::new().await;
    // The identity where the viewer looks by default.
    let org_pub = w.certified("config/ponte/identity", "Alice Example", "acme", "ACME Support");
    assert!(w.viewer_cli(&["identity", "show"]).contains("ACME Support"));

    let (agent, id, code) = w.agent(&["--allow", "chat", "--trust-org", &org_pub]);
    let out = w.viewer(&id, &code, "chat hello from Alice\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let consent = agent.event("consent", WAIT);
    assert_eq!(consent["verified"], true, "{consent}");
    assert_eq!(consent["peer"], "verified: Alice Example, ACME Support");
    assert_eq!(agent.event("chat", WAIT)["text"], "hello from Alice");

    // The same assistant at an agent that does not trust ACME is UNVERIFIED.
    let (agent, id, code) = w.agent(&["--allow", "chat"]);
    let _ = w.viewer(&id, &code, "quit\n");
    let consent = agent.event("consent", WAIT);
    assert_eq!(consent["verified"], false);
    assert!(
        consent["peer"].as_str().unwrap().starts_with("UNVERIFIED"),
        "{consent}"
    );
}

/// Acts as a viewer through the library to drive the agent's pseudo-terminal.
#[tokio::test(flavor = "multi_thread")]
async fn the_terminal_runs_a_real_shell_and_cleans_up() {
    use ponte_viewer::TerminalOutput;

    let w = World::new().await;
    let (agent, id, code) = w.agent(&["--allow", "terminal"]);
    let viewer = w.assistant(&id, &code).await;
    let mut terminal = viewer.shell(100, 30).await.unwrap();
    let input = "stty size; echo $((6*7))-ok; sleep 300 & echo bg=$!; exit 7\n";
    terminal.input(input.as_bytes().to_vec()).await.unwrap();
    let mut output = Vec::new();
    let status = loop {
        match terminal.output().await.unwrap() {
            TerminalOutput::Output(data) => output.extend_from_slice(&data),
            TerminalOutput::Exit(code) => break code,
        }
    };
    let output = text(&output);
    assert!(output.contains("30 100"), "{output}");
    assert!(output.contains("42-ok"), "{output}");
    assert_eq!(status, Some(7));
    agent.event("activity", WAIT);
    // The background job started on the terminal does not outlive it.
    assert_gone(background_pid(&output)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_command_does_not_leave_processes_behind() {
    let w = World::new().await;
    let (_agent, id, code) = w.agent(&["--allow", "terminal"]);
    let out = w.viewer(&id, &code, "exec sleep 300 & echo bg=$!\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_gone(background_pid(&text(&out.stdout))).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_nothing_granted_the_session_still_carries_chat() {
    let w = World::new().await;
    let (agent, id, code) = w.agent(&[]);
    let started = std::time::Instant::now();
    let out = w.viewer(&id, &code, "chat anyone there?\nexec true\n");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the viewer waited for consent it had"
    );
    let err = text(&out.stderr);
    assert!(err.contains("the customer allows: nothing"), "{err}");
    assert!(err.contains("refused"), "{err}");
    assert_eq!(agent.event("chat", WAIT)["text"], "anyone there?");
}

/// A get the assistant's side did not keep (the name was taken while it arrived) is reported
/// as failed on the customer's side too — "sent" only once the viewer confirmed it. Not an
/// attack: the session goes on.
#[tokio::test(flavor = "multi_thread")]
async fn a_get_the_viewer_did_not_keep_is_not_reported_sent() {
    let w = World::new().await;
    let (agent, id, code) = w.agent(&["--allow", "download"]);
    std::fs::write(w.path("agent-home/small.txt"), "customer's file").unwrap();
    let viewer = w.assistant(&id, &code).await;
    assert!(viewer.consent(WAIT).await.is_some());
    let local = w.path("taken.txt");
    let appear = local.clone();
    let mut progress = move |step| {
        if let ponte_session::files::Progress::Started(_) = step {
            std::fs::write(&appear, "the assistant's own file").unwrap();
        }
    };
    let got = tokio::time::timeout(WAIT, viewer.get("small.txt", &local, false, &mut progress))
        .await
        .expect("the get ends");
    let err = got.expect_err("the name was taken").to_string();
    assert!(err.contains("exists"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&local).unwrap(),
        "the assistant's own file"
    );
    let failed = agent.event_where("failed", |v| v["kind"] == "failed", WAIT);
    assert!(failed["text"].as_str().unwrap().contains("exists"), "{failed}");
    let sent = agent.seen().into_iter().find(|l| l.contains("\"text\":\"sent "));
    assert_eq!(sent, None, "reported sent");
    // Not an attack: the session goes on.
    assert_eq!(viewer.state().ended, None);
    assert!(
        viewer.info().await.is_err(),
        "info is not granted, but the request is answered"
    );
    assert_eq!(viewer.state().ended, None);
}

/// A hostile agent, built here from the session library and registered at `w`'s relay:
/// `viewer` is started with the session ID and code the customer would read out; returns once
/// that viewer joined and the code handshake is done, every permission "granted".
async fn hostile_agent<T>(
    w: &World,
    viewer: impl FnOnce(String, String) -> T,
) -> (
    ponte_transport::client::RelayClient,
    ponte_session::Session,
    ponte_session::SecureStream,
    T,
) {
    use ponte_e2e::app::{Control, Grants};
    let (mut client, _) = ponte_session::connect::connect(&w.relay_options(), false)
        .await
        .unwrap();
    let (id, _) = client.register().await.unwrap();
    let code = ponte_wire::OneTimeCode::random(&mut ponte_wire::os_rng());
    let started = viewer(id.to_digits(), code.digits());
    assert_eq!(
        client.next().await.unwrap(),
        ponte_wire::rendezvous::RelayMessage::Paired
    );
    let (session, mut control, _) = ponte_session::handshake::agent(
        client.connection().clone(),
        ponte_session::handshake::context(&client, id).unwrap(),
        &code,
        &mut ponte_e2e::handshake::CodeAttempts::new(),
        &ponte_e2e::identity::TrustStore::new(),
    )
    .await
    .unwrap();
    control.send.send(&Control::Grants(Grants::all())).await.unwrap();
    (client, session, control, started)
}

/// A hostile agent — built here from the session library — answers the real viewer with
/// escape sequences in every string it sends back; the assistant's terminal shows them inert.
/// It also sends a quick-access grant nobody asked for, which the viewer does not keep.
#[tokio::test(flavor = "multi_thread")]
async fn a_hostile_agents_strings_reach_the_assistant_inert() {
    use ponte_e2e::app::{Control, Request, Response, Transfer};

    const EVIL: &str = "\x1b]0;pwned\x07\x1b[2J\x1b[31m\r\nforged\u{202e}line";
    let w = World::new().await;
    let batch = w.path("hostile.txt");
    std::fs::write(&batch, "info\nexec ls\nchat hello\n").unwrap();
    let (client, session, mut control, viewer) = hostile_agent(&w, |id, code| {
        let mut cmd = w.command("ponte-viewer");
        cmd.args(["connect", &id, "--code", &code, "--batch"]).arg(&batch);
        std::thread::spawn(move || run_with_timeout(cmd, WAIT))
    })
    .await;
    // A quick-access grant nobody asked for: the assistant's address book must not take it.
    let unasked = ponte_e2e::app::QuickAccessGrant {
        device: ponte_wire::device::DevicePublic([7; 32]),
        not_after: u64::MAX,
    };
    control
        .send
        .send(&Control::QuickAccess(Some(unasked)))
        .await
        .unwrap();
    control
        .send
        .send(&Control::Chat { text: EVIL.into() })
        .await
        .unwrap();
    for _ in 0..2 {
        let mut stream = session.accept().await.unwrap().open().await.unwrap();
        match stream.recv.expect::<Request>().await.unwrap() {
            Request::Info => {
                stream.send.send(&Response::Accepted).await.unwrap();
                let facts = vec![(EVIL.into(), EVIL.into())];
                stream.send.send(&Transfer::Info(facts)).await.unwrap();
            }
            _ => stream.send.send(&Response::Refused(EVIL.into())).await.unwrap(),
        }
        // The viewer may have read the answer and stopped the stream already.
        let _ = stream.send.finish().await;
    }
    let out = viewer.join().unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    for shown in [&stdout, &stderr] {
        assert!(
            !shown.contains('\x1b') && !shown.contains('\r') && !shown.contains('\u{202e}'),
            "{shown:?}"
        );
        assert!(!shown.lines().any(|l| l.starts_with("forged")), "{shown}");
    }
    let escaped = "\\x1b]0;pwned\\x07\\x1b[2J\\x1b[31m\\r\\nforged\\u{202e}line";
    assert!(stdout.contains(escaped), "info values: {stdout}");
    assert!(
        stderr.contains(&format!("refused by the customer's computer: {escaped}")),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("customer: {escaped}")), "chat: {stderr}");
    assert!(
        w.viewer_cli(&["devices"]).starts_with("no devices yet"),
        "an unasked grant was remembered"
    );
    drop(client);
}

/// A hostile agent — built here from the session library — answers each of the real viewer's
/// requests with a message of another kind: each request fails with an error naming what it
/// waited for, and the session goes on.
#[tokio::test(flavor = "multi_thread")]
async fn an_answer_of_the_wrong_kind_fails_the_request_with_a_clear_error() {
    use ponte_e2e::app::{Request, Response, Transfer};
    use ponte_viewer::ViewerError;

    let w = World::new().await;
    let (client, session, control, joining) = hostile_agent(&w, |id, code| {
        tokio::spawn(ponte_viewer::join(w.join_options(&id, &code, test_assistant())))
    })
    .await;
    let (viewer, _) = joining.await.unwrap().unwrap();
    viewer.consent(WAIT).await.unwrap();

    let asking = tokio::spawn(async move {
        let info = viewer.info().await.map(drop);
        let input = viewer.input(Vec::new()).await;
        let exec = viewer.exec("true", |_, _| {}).await.map(drop);
        let mut terminal = viewer.shell(80, 24).await.unwrap();
        let shell = terminal.output().await.map(drop);
        (vec![info, input, exec, shell], viewer.state().ended)
    });
    for _ in 0..4 {
        let mut stream = session.accept().await.unwrap().open().await.unwrap();
        // Each an answer to another request.
        let wrong = match stream.recv.expect::<Request>().await.unwrap() {
            Request::Info => Transfer::Done,
            Request::Input(_) => Transfer::Info(Vec::new()),
            Request::Exec { .. } => Transfer::Done,
            Request::Shell { .. } => Transfer::Info(Vec::new()),
            other => panic!("not asked: {other:?}"),
        };
        stream.send.send(&Response::Accepted).await.unwrap();
        stream.send.send(&wrong).await.unwrap();
        // The viewer may already have read the wrong answer and stopped the
        // stream; finishing it then fails, which is not what is tested here.
        let _ = stream.send.finish().await;
    }
    let (answers, ended) = tokio::time::timeout(WAIT, asking).await.unwrap().unwrap();
    let expected = [
        "system information",
        "the confirmation that it was done",
        "the command's output or its exit status",
        "the terminal's output or its end",
    ];
    for (answer, expected) in answers.into_iter().zip(expected) {
        let e = answer.expect_err(expected);
        assert!(
            matches!(e, ViewerError::Unexpected { expected: said } if said == expected),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            format!("unexpected message from the customer's computer (expected {expected})")
        );
    }
    assert_eq!(ended, None, "not an attack on the path: the session goes on");
    drop((session, control, client));
}

/// A hostile agent answers the real viewer's `ls` with names full of escape sequences, then
/// with a listing longer than any agent sends: the names reach the assistant's terminal inert,
/// the endless listing fails with a clear error, and the session goes on.
#[tokio::test(flavor = "multi_thread")]
async fn a_hostile_agents_listing_reaches_the_assistant_inert_and_bounded() {
    use ponte_e2e::app::{ListEntry, ListedKind, MAX_LISTING, Request, Response, Transfer};

    const EVIL: &str = "\x1b]0;pwned\x07\x1b[2J\r\nforged\u{202e}line";
    let w = World::new().await;
    let batch = w.path("hostile.txt");
    std::fs::write(&batch, "ls\nls big\ninfo\n").unwrap();
    let (client, session, control, viewer) = hostile_agent(&w, |id, code| {
        let mut cmd = w.command("ponte-viewer");
        cmd.args(["connect", &id, "--code", &code, "--batch"]).arg(&batch);
        std::thread::spawn(move || run_with_timeout(cmd, WAIT))
    })
    .await;
    let entry = |name: &str| ListEntry {
        name: name.into(),
        kind: ListedKind::File,
        size: 1,
        modified: Some(0),
    };
    for _ in 0..3 {
        let mut stream = session.accept().await.unwrap().open().await.unwrap();
        let request = stream.recv.expect::<Request>().await.unwrap();
        stream.send.send(&Response::Accepted).await.unwrap();
        match request {
            Request::List { path } if path.as_raw() == "." => {
                let listing = Transfer::Listing(vec![entry(EVIL)]);
                stream.send.send(&listing).await.unwrap();
                stream.send.send(&Transfer::Done).await.unwrap();
            }
            Request::List { .. } => {
                // More than any agent sends, and never done: the viewer stops reading.
                for _ in 0..=MAX_LISTING / 100 {
                    let chunk = (0..100).map(|n| entry(&format!("f{n}"))).collect();
                    if stream.send.send(&Transfer::Listing(chunk)).await.is_err() {
                        break;
                    }
                }
            }
            Request::Info => {
                let facts = vec![("os".into(), "still here".into())];
                stream.send.send(&Transfer::Info(facts)).await.unwrap();
            }
            other => panic!("not asked: {other:?}"),
        }
        let _ = stream.send.finish().await;
    }
    let out = viewer.join().unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    for shown in [&stdout, &stderr] {
        assert!(
            !shown.contains('\x1b') && !shown.contains('\r') && !shown.contains('\u{202e}'),
            "{shown:?}"
        );
        assert!(!shown.lines().any(|l| l.starts_with("forged")), "{shown}");
    }
    assert!(stdout.contains("\\x1b]0;pwned"), "the name, escaped: {stdout}");
    assert!(
        stderr.contains(
            "ls big: unexpected message from the customer's computer (expected at most 10000 entries)"
        ),
        "{stderr}"
    );
    assert!(stdout.contains("still here"), "the session went on: {stdout}");
    drop((session, control, client));
}
