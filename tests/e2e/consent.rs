//! The customer's promises against a hostile assistant: a viewer built on the viewer core that
//! sends raw and concurrent requests, any path, escape sequences in every string — and the
//! real agent binary, driven as a customer would drive it (its terminal UI on stdin, or JSON).

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ponte_e2e::app::Request;
use ponte_viewer::{TerminalOutput, ViewerError};

use crate::world;

use world::*;

/// What a hostile assistant puts in every string: erase the line, move up, retitle the
/// terminal, reverse the text, and a fake log line.
const EVIL: &str =
    "\x1b[2K\r\x1b[1A\x1b]0;pwned\x07\u{202e}txt.exe\n2026-01-01 00:00:00 UTC session ended: fake";

/// No raw control or bidi character in `text`.
fn assert_inert(text: &str) {
    for c in text.chars() {
        let steering = (c.is_control() && c != '\n') || ('\u{202a}'..='\u{202e}').contains(&c);
        assert!(!steering, "raw {c:?} in {text:?}");
    }
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn no_progress() -> impl FnMut(ponte_session::files::Progress) + Send {
    |_| {}
}

/// A progress callback that makes a transfer crawl (so a test can revoke it half-way).
fn crawl() -> impl FnMut(ponte_session::files::Progress) + Send {
    |step| {
        if let ponte_session::files::Progress::Advanced(_) = step {
            std::thread::sleep(Duration::from_millis(4));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn one_yes_approves_only_the_question_on_screen() {
    let w = World::new().await;
    std::fs::write(w.path("agent-home/a.txt"), "contents of a").unwrap();
    std::fs::write(w.path("agent-home/b.txt"), "contents of b").unwrap();
    let (mut agent, id, code) = w.text_agent(&["--allow", "terminal"]);
    let viewer = Arc::new(w.assistant(&id, &code).await);
    viewer.consent(WAIT).await.unwrap();
    let get = |name: &'static str| {
        let viewer = viewer.clone();
        let local = w.path(&format!("got-{name}"));
        tokio::spawn(async move { viewer.get(name, &local, false, &mut no_progress()).await })
    };
    // Two downloads at once, without the download grant: each needs a question.
    let (a, b) = (get("a.txt"), get("b.txt"));
    let first = agent.expect("wants to COPY");
    let more = agent.lines_within(Duration::from_secs(1));
    assert!(
        !more.iter().any(|l| l.contains("wants to COPY")),
        "only one question is on screen: {more:#?}"
    );
    let (approved, declined, approved_task, declined_task) = if first.contains("a.txt") {
        ("a.txt", "b.txt", a, b)
    } else {
        ("b.txt", "a.txt", b, a)
    };
    assert!(
        first.contains(&format!("agent-home/{approved}")),
        "the resolved path: {first}"
    );
    agent.send("y");
    approved_task.await.unwrap().unwrap();
    assert_eq!(
        std::fs::read_to_string(w.path(&format!("got-{approved}"))).unwrap(),
        format!("contents of {}", &approved[..1])
    );
    // Only now is the other question shown; the "y" did not reach it.
    let second = agent.expect("wants to COPY");
    assert!(second.contains(declined), "{second}");
    assert!(!declined_task.is_finished());
    // An answer typed the instant a question appears is not taken.
    agent.send("y");
    agent.expect("The question just changed");
    tokio::time::sleep(Duration::from_millis(800)).await;
    agent.send("n");
    let refused = declined_task.await.unwrap().unwrap_err();
    assert!(
        matches!(&refused, ViewerError::Refused(r) if r.as_raw().contains("declined")),
        "{refused}"
    );
    assert!(
        !w.path(&format!("got-{declined}")).exists(),
        "the other file was never sent"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn peer_text_is_inert_on_screen_and_cannot_forge_log_lines() {
    use ponte_e2e::identity::{Certificate, PrivateKey};
    let w = World::new().await;
    // A certified assistant whose name reverses the text after it.
    let org = PrivateKey::from_pem(include_str!(
        "../../crates/e2e/tests/vectors/organisation.key.pem"
    ))
    .unwrap();
    let key = PrivateKey::from_pem(include_str!("../../crates/e2e/tests/vectors/assistant.key.pem")).unwrap();
    let now = ponte_session::now_unix();
    let cert = Certificate::issue(
        &org,
        "Alice \u{202e}evil",
        "ACME \u{2066}Support",
        key.public_key(),
        now - 60,
        now + 3600,
        &mut ponte_wire::os_rng(),
    )
    .unwrap();
    let org_pub = w.path("org.pub.pem");
    std::fs::write(&org_pub, org.public_key().to_pem()).unwrap();
    let log = w.path("session.log");
    let (mut agent, id, code) = w.text_agent(&[
        "--allow",
        "terminal",
        "--trust-org",
        org_pub.to_str().unwrap(),
        "--log",
        log.to_str().unwrap(),
    ]);
    let credentials = ponte_e2e::handshake::Credentials {
        key,
        certificate: Some(cert),
    };
    let viewer = Arc::new(w.assistant_as(&id, &code, credentials).await);
    let connected = agent.expect("Connected: verified");
    // The organisation as the customer's trust names it (after the key's file, "org"), and
    // what the certificate claims beside it: both inert.
    assert!(
        connected.contains("Alice \\u{202e}evil, org (their certificate calls it ACME \\u{2066}Support)"),
        "{connected}"
    );

    viewer.chat(EVIL).await.unwrap();
    agent.expect("assistant: ");
    let status = viewer.exec(&format!("true '{EVIL}'"), |_, _| {}).await.unwrap();
    assert_eq!(status, Some(0));
    agent.expect("command finished");
    // A download with an evil path: asked (no download grant), shown escaped, declined.
    let evil_path = format!("{EVIL}notes.txt");
    std::fs::write(w.path("agent-home").join(&evil_path), "secret").unwrap();
    let get = tokio::spawn({
        let viewer = viewer.clone();
        let local = w.path("stolen");
        async move { viewer.get(&evil_path, &local, false, &mut no_progress()).await }
    });
    let question = agent.expect("wants to COPY");
    assert!(
        question.contains("\\x1b[2K\\r\\x1b[1A\\x1b]0;pwned\\x07\\u{202e}txt.exe\\n2026"),
        "{question}"
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    agent.send("n");
    assert!(get.await.unwrap().is_err());
    agent.send("end");
    agent.expect("Session ended");
    agent.wait(WAIT);

    for line in agent.seen().iter() {
        assert_inert(line);
    }
    let text = std::fs::read_to_string(&log).unwrap();
    assert_inert(&text);
    for line in text.lines() {
        // Every line is one event with its own timestamp: nothing a peer sent starts a line.
        // …in the customer's time zone (the tests' agents run in Europe/Rome), with the date.
        let stamp: Vec<&str> = line.splitn(4, ' ').collect();
        assert!(
            stamp.len() == 4
                && stamp[0].len() == 10
                && stamp[0].starts_with("20")
                && stamp[1].len() == 8
                && ["CET", "CEST"].contains(&stamp[2]),
            "forged or broken line: {line:?}"
        );
        assert!(!line.starts_with("2026-01-01 00:00:00"), "forged line: {line:?}");
    }
    assert!(text.contains("chat from the assistant: \\x1b[2K"), "{text}");
    assert!(text.contains("command started: true '\\x1b[2K"), "{text}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&log).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the log is the customer's alone");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn revoking_terminal_stops_a_running_shell_and_command_within_a_second() {
    let w = World::new().await;
    let (mut agent, id, code) = w.text_agent(&["--allow", "terminal"]);
    let viewer = Arc::new(w.assistant(&id, &code).await);
    viewer.consent(WAIT).await.unwrap();

    let mut terminal = viewer.shell(80, 24).await.unwrap();
    terminal
        .input(b"sleep 300 & echo bg=$!; while :; do echo tick; sleep 0.05; done\n".to_vec())
        .await
        .unwrap();
    let mut output = Vec::new();
    while text(&output).matches("tick").count() < 3 {
        match terminal.output().await.unwrap() {
            TerminalOutput::Output(data) => output.extend_from_slice(&data),
            TerminalOutput::Exit(code) => panic!("the shell exited ({code:?}): {}", text(&output)),
        }
    }
    let job = background_pid(&text(&output));
    agent.send("revoke terminal");
    let revoked = Instant::now();
    let reason = loop {
        match tokio::time::timeout(WAIT, terminal.output()).await.unwrap() {
            Ok(TerminalOutput::Output(_)) => continue,
            Err(ViewerError::Failed(reason)) => break reason,
            other => panic!("{other:?}"),
        }
    };
    assert!(
        revoked.elapsed() < Duration::from_secs(1),
        "stopped after {:?}",
        revoked.elapsed()
    );
    assert!(reason.as_raw().contains("revoked 'terminal'"), "{reason}");
    // Nothing follows the reason, and the shell's process tree is gone.
    assert!(matches!(
        terminal.output().await,
        Ok(TerminalOutput::Exit(None)) | Err(_)
    ));
    assert_gone(job).await;
    agent.expect("stopped: open a terminal");

    // The same for a long command.
    agent.send("grant terminal");
    agent.expect("permissions changed: now allowed Terminal");
    let (tx, mut ticks) = tokio::sync::mpsc::unbounded_channel();
    let exec = tokio::spawn({
        let viewer = viewer.clone();
        async move {
            viewer
                .exec(
                    "echo pid=$$; while :; do echo tick; sleep 0.05; done",
                    move |_, data| {
                        let _ = tx.send(text(data));
                    },
                )
                .await
        }
    });
    let mut seen = String::new();
    while seen.matches("tick").count() < 3 {
        seen.push_str(&ticks.recv().await.unwrap());
    }
    let pid: u32 = seen
        .split("pid=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    agent.send("revoke terminal");
    let revoked = Instant::now();
    let result = tokio::time::timeout(WAIT, exec).await.unwrap().unwrap();
    assert!(
        revoked.elapsed() < Duration::from_secs(1),
        "stopped after {:?}",
        revoked.elapsed()
    );
    assert!(
        matches!(&result, Err(ViewerError::Failed(r)) if r.as_raw().contains("revoked 'terminal'")),
        "{result:?}"
    );
    assert_gone(pid).await;
    agent.expect("stopped: run the command");
}

#[tokio::test(flavor = "multi_thread")]
async fn revoking_a_transfer_aborts_it_and_leaves_no_partial_file() {
    let w = World::new().await;
    let mut data = vec![0u8; 48 << 20];
    for (i, chunk) in data.chunks_mut(4096).enumerate() {
        chunk.fill(i as u8);
    }
    std::fs::write(w.path("agent-home/big.bin"), &data).unwrap();
    std::fs::write(w.path("big-local.bin"), &data).unwrap();
    let (mut agent, id, code) = w.text_agent(&["--allow", "download,upload"]);
    let viewer = Arc::new(w.assistant(&id, &code).await);
    viewer.consent(WAIT).await.unwrap();

    // A download the assistant receives slowly, revoked half-way.
    std::fs::create_dir(w.path("downloads")).unwrap();
    let download = tokio::spawn({
        let viewer = viewer.clone();
        let local = w.path("downloads/big.bin");
        async move { viewer.get("big.bin", &local, false, &mut crawl()).await }
    });
    agent.expect("sending");
    tokio::time::sleep(Duration::from_millis(500)).await;
    agent.send("revoke download");
    let result = tokio::time::timeout(WAIT, download).await.unwrap().unwrap();
    assert!(
        matches!(&result, Err(ViewerError::Failed(r)) if r.as_raw().contains("revoked 'download'")),
        "{result:?}"
    );
    assert_eq!(
        entries(&w.path("downloads")),
        Vec::<String>::new(),
        "no partial file on the viewer"
    );
    agent.expect("stopped: copy big.bin");

    // An upload the assistant sends slowly, revoked half-way.
    let upload = tokio::spawn({
        let viewer = viewer.clone();
        let local = w.path("big-local.bin");
        async move { viewer.put(&local, "uploaded.bin", false, &mut crawl()).await }
    });
    agent.expect("receiving");
    tokio::time::sleep(Duration::from_millis(500)).await;
    agent.send("revoke upload");
    agent.expect("stopped: put uploaded.bin");
    let result = tokio::time::timeout(WAIT, upload).await.unwrap().unwrap();
    assert!(result.is_err(), "{result:?}");
    let left = entries(&w.path("agent-home"));
    assert_eq!(
        left,
        ["big.bin"],
        "no partial or half file on the customer's computer"
    );

    // A folder, revoked half-way: the folder it made goes too (its first file was complete).
    std::fs::create_dir(w.path("tree")).unwrap();
    std::fs::write(w.path("tree/a.bin"), &data[..4 << 20]).unwrap();
    std::fs::write(w.path("tree/b.bin"), &data).unwrap();
    agent.send("grant upload");
    agent.expect("permissions changed: now allowed Put files here");
    let upload = tokio::spawn({
        let viewer = viewer.clone();
        let local = w.path("tree");
        async move { viewer.put(&local, "uploaded-tree", false, &mut crawl()).await }
    });
    agent.expect("receiving");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    agent.send("revoke upload");
    agent.expect("stopped: put uploaded-tree");
    assert!(
        tokio::time::timeout(WAIT, upload)
            .await
            .unwrap()
            .unwrap()
            .is_err()
    );
    assert_eq!(
        entries(&w.path("agent-home")),
        ["big.bin"],
        "no half folder either"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn revoke_and_end_typed_while_a_question_is_open_are_obeyed() {
    let w = World::new().await;
    std::fs::write(w.path("agent-home/a.txt"), "a").unwrap();
    let (mut agent, id, code) = w.text_agent(&["--allow", "terminal"]);
    let viewer = Arc::new(w.assistant(&id, &code).await);
    viewer.consent(WAIT).await.unwrap();
    let get = tokio::spawn({
        let viewer = viewer.clone();
        let local = w.path("got-a");
        async move { viewer.get("a.txt", &local, false, &mut no_progress()).await }
    });
    agent.expect("wants to COPY");
    tokio::time::sleep(Duration::from_millis(800)).await;
    agent.send("revoke terminal");
    agent.expect("permissions changed: now allowed nothing");
    assert!(!get.is_finished(), "'revoke' is a command, not an answer");
    let refused = viewer.exec("true", |_, _| {}).await.unwrap_err();
    assert!(
        matches!(&refused, ViewerError::Refused(r) if r.as_raw().contains("'terminal'")),
        "{refused}"
    );
    agent.send("end");
    agent.expect("Session ended: you ended the session");
    assert!(agent.wait(WAIT).success());
    assert!(get.await.unwrap().is_err());
    assert!(!w.path("got-a").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn uploads_outside_the_folder_or_to_hidden_and_startup_places_are_asked() {
    let w = World::new().await;
    let home = w.path("home");
    let local = w.path("payload.sh");
    std::fs::write(&local, "#!/bin/sh\necho owned\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&local, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    // The shared folder is the home folder, where the startup places are.
    let (mut agent, id, code) = w.text_agent(&["--allow", "upload", "--dir", home.to_str().unwrap()]);
    let viewer = Arc::new(w.assistant(&id, &code).await);
    viewer.consent(WAIT).await.unwrap();
    let put = |remote: &'static str| {
        let viewer = viewer.clone();
        let local = local.clone();
        tokio::spawn(async move { viewer.put(&local, remote, false, &mut no_progress()).await })
    };
    for (remote, why) in [
        ("../outside.sh", "OUTSIDE"),
        (".ssh/authorized_keys", "START AUTOMATICALLY"),
        (".config/autostart/evil.desktop", "START AUTOMATICALLY"),
        ("Documents/.hidden/x.sh", "HIDDEN"),
    ] {
        let task = put(remote);
        agent.expect("wants to PUT");
        agent.expect(why);
        tokio::time::sleep(Duration::from_millis(800)).await;
        agent.send("n");
        let refused = task.await.unwrap().unwrap_err();
        assert!(
            matches!(&refused, ViewerError::Refused(r) if r.as_raw().contains("declined")),
            "{remote}: {refused}"
        );
        assert!(!home.join(remote).exists(), "{remote} was written");
    }
    assert!(
        !home.join(".ssh").exists() && !home.join(".config").exists(),
        "no folder was created"
    );
    assert!(!w.path("outside.sh").exists());

    // Inside the folder it goes without a question, and the peer's 0777 is not applied.
    put("Documents/run.sh").await.unwrap().unwrap();
    // Outside, after a yes, it goes too.
    let task = put("../outside.sh");
    agent.expect("wants to PUT");
    tokio::time::sleep(Duration::from_millis(800)).await;
    agent.send("y");
    task.await.unwrap().unwrap();
    #[cfg(unix)]
    for path in [home.join("Documents/run.sh"), w.path("outside.sh")] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}: the owner's bits only", path.display());
    }
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn planted_links_are_never_written_through_on_either_side() {
    use std::os::unix::fs::symlink;
    let w = World::new().await;
    let victim = w.path("victim");
    std::fs::write(&victim, "precious").unwrap();
    let payload = w.path("payload");
    std::fs::write(&payload, "payload").unwrap();
    // The agent: a link where a partial file used to be named, and a link at the destination.
    symlink(&victim, w.path("agent-home/.x.ponte-partial")).unwrap();
    symlink(&victim, w.path("agent-home/y")).unwrap();
    let (_agent, id, code) = w.agent(&["--allow", "upload,download"]);
    let viewer = w.assistant(&id, &code).await;
    viewer.consent(WAIT).await.unwrap();
    viewer
        .put(&payload, "x", false, &mut no_progress())
        .await
        .unwrap();
    viewer.put(&payload, "y", true, &mut no_progress()).await.unwrap();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert_eq!(
        std::fs::read_to_string(w.path("agent-home/x")).unwrap(),
        "payload"
    );
    let y = std::fs::symlink_metadata(w.path("agent-home/y")).unwrap();
    assert!(y.is_file(), "the link itself was replaced, not what it points to");

    // The viewer: the same against a hostile agent's files.
    std::fs::create_dir(w.path("mine")).unwrap();
    symlink(&victim, w.path("mine/.got.ponte-partial")).unwrap();
    symlink(&victim, w.path("mine/link")).unwrap();
    viewer
        .get("x", &w.path("mine/got"), false, &mut no_progress())
        .await
        .unwrap();
    viewer
        .get("x", &w.path("mine/link"), true, &mut no_progress())
        .await
        .unwrap();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert_eq!(std::fs::read_to_string(w.path("mine/got")).unwrap(), "payload");
    assert!(std::fs::symlink_metadata(w.path("mine/link")).unwrap().is_file());
    // Without -f a link is not replaced at all.
    symlink(&victim, w.path("mine/kept")).unwrap();
    assert!(
        viewer
            .get("x", &w.path("mine/kept"), false, &mut no_progress())
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_log_has_the_shell_transcript_and_every_connection_attempt() {
    let w = World::new().await;
    let log = w.path("session.log");
    let (agent, id, code) = w.agent(&["--allow", "terminal", "--log", log.to_str().unwrap()]);
    // Someone joins with the ID and leaves without a code.
    let (mut intruder, _) = ponte_session::connect::connect(&w.relay_options(), false)
        .await
        .unwrap();
    intruder.join(id.parse().unwrap()).await.unwrap();
    agent.attempt("connecting", WAIT);
    intruder.connection().close(0u32.into(), b"bye");
    agent.attempt("abandoned", WAIT);
    // Someone tries a wrong code. The relay may not have freed the ID from the intruder yet:
    // such a join is refused, and tried again.
    let wrong = if code == "00000000" {
        "11111111"
    } else {
        "00000000"
    };
    let mut result = None;
    for _ in 0..50 {
        match ponte_viewer::join(w.join_options(&id, wrong, test_assistant())).await {
            Err(ViewerError::Relay(ponte_wire::rendezvous::Refusal::AlreadyPaired)) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => {
                result = Some(other.map(|_| ()));
                break;
            }
        }
    }
    assert!(matches!(result, Some(Err(ViewerError::WrongCode))), "{result:?}");
    assert_eq!(agent.attempt("wrong_code", WAIT)["attempts_left"], 2);

    let viewer = w.assistant(&id, &code).await;
    viewer.consent(WAIT).await.unwrap();
    let mut terminal = viewer.shell(80, 24).await.unwrap();
    terminal
        .input(b"echo transcript-$((6*7))\nexit\n".to_vec())
        .await
        .unwrap();
    while let Ok(TerminalOutput::Output(_)) = terminal.output().await {}
    let entered = agent.event_where(
        "entered",
        |v| {
            v["text"]
                .as_str()
                .is_some_and(|t| t.contains("the assistant entered"))
        },
        WAIT,
    );
    assert!(
        entered["text"]
            .as_str()
            .unwrap()
            .ends_with("echo transcript-$((6*7))"),
        "{entered}"
    );
    viewer.quit().await;
    agent.event("ended", WAIT);
    let text = std::fs::read_to_string(&log).unwrap();
    let transcript: Vec<&str> = text.lines().filter(|l| l.contains(" terminal 1 | ")).collect();
    assert!(transcript.iter().any(|l| l.ends_with("transcript-42")), "{text}");
    assert!(
        transcript.iter().any(|l| l.contains("echo transcript-$((6*7))")),
        "{text}"
    );
    assert!(text.contains("left without a code"), "{text}");
    assert!(text.contains("wrong code — 2 tries left"), "{text}");
    assert!(!text.contains(&code), "the code is never logged");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_requests_waits_its_turn_and_nothing_runs_ungranted() {
    let w = World::new().await;
    let (agent, id, code) = w.agent(&["--allow", "info"]);
    let viewer = Arc::new(w.assistant(&id, &code).await);
    viewer.consent(WAIT).await.unwrap();
    // Many raw requests at once, of every kind the customer did not allow.
    let mut tasks = Vec::new();
    for n in 0..40 {
        let viewer = viewer.clone();
        let request = match n % 4 {
            0 => Request::Exec {
                command: format!("touch {}", w.path(&format!("ran-{n}")).display()).into(),
            },
            1 => Request::Shell { cols: 80, rows: 24 },
            2 => Request::Get {
                path: "/etc/hostname".into(),
            },
            _ => Request::Input(vec![]),
        };
        tasks.push(tokio::spawn(
            async move { viewer.request(&request).await.map(|_| ()) },
        ));
    }
    for task in tasks {
        assert!(task.await.unwrap().is_err());
    }
    assert!(viewer.info().await.is_ok(), "the session still works");
    assert!((0..40).all(|n| !w.path(&format!("ran-{n}")).exists()));
    drop(agent);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_download_grant_does_not_cover_hidden_files_or_the_world_outside() {
    let w = World::new().await;
    let home = w.path("agent-home");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::write(home.join(".ssh/id_ed25519"), "PRIVATE KEY").unwrap();
    std::fs::create_dir_all(home.join("project/.git")).unwrap();
    std::fs::write(home.join("project/readme.txt"), "read me").unwrap();
    std::fs::write(home.join("project/.env"), "PASSWORD=x").unwrap();
    std::fs::write(home.join("project/.git/config"), "[core]").unwrap();
    std::fs::write(w.path("outside.txt"), "outside").unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(home.join(".ssh"), home.join("keys")).unwrap();
    // Scripted: nobody can be asked, so what needs a question is refused.
    let (_agent, id, code) = w.agent(&["--allow", "download"]);
    let viewer = w.assistant(&id, &code).await;
    viewer.consent(WAIT).await.unwrap();
    let local = |name: &str| w.path(&format!("got/{name}"));
    for remote in [
        ".ssh/id_ed25519",
        "keys/id_ed25519",
        "../outside.txt",
        "project/.env",
    ] {
        let refused = viewer
            .get(remote, &local("x"), false, &mut no_progress())
            .await
            .unwrap_err();
        assert!(matches!(&refused, ViewerError::Refused(_)), "{remote}: {refused}");
        assert!(!local("x").exists(), "{remote} was sent");
    }
    // A folder goes without its hidden entries.
    viewer
        .get("project", &local("project"), false, &mut no_progress())
        .await
        .unwrap();
    assert_eq!(entries(&local("project")), ["readme.txt"]);
}

/// Reads a PID the command wrote to `file`, waiting for it to appear.
async fn pid_in(file: &Path) -> u32 {
    for _ in 0..100 {
        if let Ok(text) = std::fs::read_to_string(file)
            && let Ok(pid) = text.trim().parse()
        {
            return pid;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no PID in {}", file.display());
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_the_assistant_starts_outlives_a_revocation_or_the_session() {
    let w = World::new().await;
    let (mut agent, id, code) = w.text_agent(&["--allow", "terminal"]);
    let viewer = w.assistant(&id, &code).await;
    viewer.consent(WAIT).await.unwrap();
    // A process that leaves its command's session and parent, as a daemon would.
    // (The command waits until the detached process is on its own, then ends.)
    let detach = |name: &str| {
        let file = w.path(name);
        format!(
            "setsid -f sh -c 'echo $$ > {0}; exec sleep 300' </dev/null >/dev/null 2>&1; \
             while [ ! -s {0} ]; do sleep 0.05; done",
            file.display()
        )
    };
    assert_eq!(
        viewer.exec(&detach("first.pid"), |_, _| {}).await.unwrap(),
        Some(0)
    );
    let first = pid_in(&w.path("first.pid")).await;
    assert!(
        Path::new(&format!("/proc/{first}")).exists(),
        "it survived its command"
    );
    agent.send("revoke terminal");
    agent.expect("permissions changed");
    assert_gone(first).await;

    agent.send("grant terminal");
    agent.expect("permissions changed: now allowed Terminal");
    assert_eq!(
        viewer.exec(&detach("second.pid"), |_, _| {}).await.unwrap(),
        Some(0)
    );
    let second = pid_in(&w.path("second.pid")).await;
    // The customer closes the agent's terminal window: SIGHUP ends the session properly.
    let _ = std::process::Command::new("kill")
        .args(["-HUP", &agent.child.id().to_string()])
        .status();
    agent.expect("Session ended");
    assert!(agent.wait(WAIT).success());
    assert_gone(second).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_yes_typed_as_the_consent_question_appears_is_not_taken() {
    let w = World::new().await;
    let (mut agent, id, code) = w.text_agent(&[]);
    let viewer = tokio::spawn({
        let options = w.join_options(&id, &code, test_assistant());
        async move {
            let (viewer, _) = ponte_viewer::join(options).await.unwrap();
            viewer.consent(WAIT).await;
            viewer
        }
    });
    // "Press y and Enter now", says the assistant on the phone as the question appears. (The
    // question says what the terminal really means.)
    let terminal = agent.expect("Allow them to run commands");
    assert!(
        terminal.contains("that is everything you can do on this computer"),
        "{terminal}"
    );
    agent.send("y");
    agent.expect("The question just changed");
    // Read, then answered: no to everything (terminal, upload, download, info, screen,
    // clipboard).
    for next in [
        "put files",
        "copy files",
        "system information",
        "see your screen",
        "your clipboard",
        "Connected:",
    ] {
        tokio::time::sleep(Duration::from_millis(800)).await;
        agent.send("n");
        agent.expect(next);
    }
    let viewer = viewer.await.unwrap();
    assert_eq!(viewer.state().grants, Some(ponte_e2e::app::Grants::NONE));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_programs_own_folder_is_never_written_without_a_question() {
    let w = World::new().await;
    // The customer runs the agent from their Downloads folder, inside the shared folder.
    let downloads = w.path("agent-home/Downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    let agent_copy = downloads.join("ponte-agent");
    std::fs::copy(ponte_testbed::binary("ponte-agent"), &agent_copy).unwrap();
    let mut cmd = w.program(&agent_copy);
    cmd.args(["--json", "--allow", "upload", "--dir"])
        .arg(w.path("agent-home"))
        .stdin(std::process::Stdio::null());
    let agent = ponte_testbed::Running::start(cmd);
    let ready = agent.event("ready", WAIT);
    let (id, code) = (
        ready["session_id"].as_str().unwrap().to_owned(),
        ready["code"].as_str().unwrap().to_owned(),
    );
    let viewer = w.assistant(&id, &code).await;
    viewer.consent(WAIT).await.unwrap();
    let planted = w.path("trust.toml");
    std::fs::write(&planted, "trust-org = [\"evil.pub.pem\"]\n").unwrap();
    // Anywhere else in Downloads is fine; beside the program, what decides whom it trusts
    // needs the customer's own yes (a script's agent, which cannot ask, refuses).
    viewer
        .put(&planted, "Downloads/notes.toml", false, &mut no_progress())
        .await
        .unwrap();
    let refused = viewer
        .put(&planted, "Downloads/ponte-agent.toml", false, &mut no_progress())
        .await
        .unwrap_err();
    assert!(matches!(refused, ViewerError::Refused(_)), "{refused}");
    assert!(!downloads.join("ponte-agent.toml").exists());
    drop(agent);
}

#[tokio::test(flavor = "multi_thread")]
async fn what_decides_whom_ponte_trusts_is_ponte_itself_for_every_way_of_writing() {
    // An installer put the agent in Downloads with a ponte-agent.toml that trusts ACME's key
    // in a folder of its own. The assistant tries to change whom the agent trusts.
    let w = World::new().await;
    let downloads = w.path("agent-home/Downloads");
    std::fs::create_dir_all(downloads.join("keys")).unwrap();
    let program = downloads.join("ponte-agent");
    std::fs::copy(ponte_testbed::binary("ponte-agent"), &program).unwrap();
    let org = ponte_e2e::identity::PrivateKey::from_pem(include_str!(
        "../../crates/e2e/tests/vectors/organisation.key.pem"
    ))
    .unwrap();
    let acme_key = org.public_key().to_pem();
    std::fs::write(downloads.join("keys/acme.pub.pem"), &acme_key).unwrap();
    let toml = "trust-org = [\"ACME Support=keys/acme.pub.pem\"]\n";
    std::fs::write(downloads.join("ponte-agent.toml"), toml).unwrap();
    let (mut agent, id, code) = w.text_agent_at(&program, &["--allow", "upload"]);
    let viewer = w.assistant(&id, &code).await;
    viewer.consent(WAIT).await.unwrap();

    // 1. A folder merged into the shared folder, carrying a ponte-agent.toml and a key for
    //    beside the program: the customer is asked about replacing what is there, and says
    //    yes — but the entries that are Ponte itself are not written that way.
    let payload = w.path("payload");
    std::fs::create_dir_all(payload.join("Downloads")).unwrap();
    std::fs::write(
        payload.join("Downloads/ponte-agent.toml"),
        "trust-org = [\"evil.pub.pem\"]\n",
    )
    .unwrap();
    std::fs::write(payload.join("Downloads/evil.pub.pem"), &acme_key).unwrap();
    std::fs::write(payload.join("notes.txt"), "harmless").unwrap();
    let putting = tokio::spawn({
        let viewer = Arc::new(viewer);
        let payload = payload.clone();
        let v = viewer.clone();
        async move { (v.put(&payload, ".", true, &mut no_progress()).await, viewer) }
    });
    let question = agent.expect("wants to PUT the folder");
    assert!(question.contains("agent-home"), "{question}");
    agent.expect("REPLACES what is there");
    tokio::time::sleep(Duration::from_millis(800)).await;
    agent.send("y");
    let (put, viewer) = putting.await.unwrap();
    assert!(put.is_err(), "the merge wrote Ponte's own files: {put:?}");
    assert_eq!(
        std::fs::read_to_string(downloads.join("ponte-agent.toml")).unwrap(),
        toml
    );
    assert!(!downloads.join("evil.pub.pem").exists());

    // 2. The key the configuration names, in a folder of its own, replaced on its own: asked
    //    as Ponte itself (and refused here).
    let planted = w.path("planted.pem");
    std::fs::write(
        &planted,
        "-----BEGIN PUBLIC KEY-----\nnot ACME's\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    let putting = tokio::spawn({
        let planted = planted.clone();
        async move {
            let put = viewer
                .put(&planted, "Downloads/keys/acme.pub.pem", true, &mut no_progress())
                .await;
            (put, viewer)
        }
    });
    agent.expect("wants to PUT the file");
    agent.expect("PONTE ITSELF");
    tokio::time::sleep(Duration::from_millis(800)).await;
    agent.send("n");
    let (put, _viewer) = putting.await.unwrap();
    assert!(matches!(put, Err(ViewerError::Refused(_))), "{put:?}");
    assert_eq!(
        std::fs::read_to_string(downloads.join("keys/acme.pub.pem")).unwrap(),
        acme_key
    );
    agent.send("end");
    agent.wait(WAIT);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_command_typed_after_stty_echo_off_is_still_shown_and_logged() {
    // The assistant turns the terminal's echo off and runs a command: nothing echoes it, but
    // the customer's activity list and log show what was typed.
    let w = World::new().await;
    let log = w.path("session.log");
    let (agent, id, code) = w.agent(&["--allow", "terminal", "--log", log.to_str().unwrap()]);
    let viewer = w.assistant(&id, &code).await;
    viewer.consent(WAIT).await.unwrap();
    let mut terminal = viewer.shell(80, 24).await.unwrap();
    terminal.input(b"stty -echo\n".to_vec()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    terminal
        .input(b"echo hidden-$((6*7)) > /dev/null; echo done-$((6*7))\nexit\n".to_vec())
        .await
        .unwrap();
    while let Ok(TerminalOutput::Output(_)) = terminal.output().await {}
    let typed = agent.event_where(
        "typed",
        |v| v["text"].as_str().is_some_and(|t| t.contains("hidden-")),
        WAIT,
    );
    assert!(
        typed["text"]
            .as_str()
            .unwrap()
            .contains("the assistant typed: echo hidden-$((6*7)) > /dev/null; echo done-$((6*7))"),
        "{typed}"
    );
    viewer.quit().await;
    agent.event("ended", WAIT);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("the assistant typed: echo hidden-$((6*7)) > /dev/null"),
        "{text}"
    );
}

/// `ls` is reading — names are contents — so it is judged like `get`: inside the shared folder
/// it lists without hidden entries; a hidden folder, a link out of the folder, the world
/// outside and a folder without the `download` grant are asked (and refused by a script's
/// agent, which nobody can ask); a "yes" shows the hidden entries too, and every name arrives
/// inert whatever bytes it holds.
#[tokio::test(flavor = "multi_thread")]
async fn a_listing_is_judged_like_a_download() {
    let w = World::new().await;
    let home = w.path("agent-home");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::write(home.join(".ssh/id_ed25519"), "PRIVATE KEY").unwrap();
    std::fs::create_dir_all(home.join("project")).unwrap();
    std::fs::write(home.join("project/readme.txt"), "read me").unwrap();
    std::fs::write(home.join("project/.env"), "PASSWORD=x").unwrap();
    let evil_name = EVIL.replace('/', "|").replace('\n', " ");
    std::fs::write(home.join(&evil_name), "x").unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(home.join(".ssh"), home.join("keys")).unwrap();

    let (_agent, id, code) = w.agent(&["--allow", "download"]);
    let viewer = w.assistant(&id, &code).await;
    viewer.consent(WAIT).await.unwrap();
    let names = |entries: &[ponte_e2e::app::ListEntry]| -> Vec<String> {
        entries.iter().map(|e| e.name.to_string()).collect()
    };
    let top = viewer.list(".").await.unwrap();
    assert!(
        !names(&top).iter().any(|n| n.starts_with('.')),
        "{:?}",
        names(&top)
    );
    assert!(names(&top).contains(&"project".to_owned()));
    let keys = top.iter().find(|e| e.name.as_raw() == "keys").unwrap();
    assert_eq!(
        keys.kind,
        ponte_e2e::app::ListedKind::Link,
        "a link is not followed"
    );
    let evil = top
        .iter()
        .find(|e| e.name.as_raw().contains("pwned"))
        .expect("the odd name is listed");
    assert_inert(&evil.name.to_string());
    let project = viewer.list("project").await.unwrap();
    assert_eq!(names(&project), ["readme.txt"]);
    assert_eq!(project[0].size, 7);
    assert_eq!(project[0].kind, ponte_e2e::app::ListedKind::File);
    // (A script's agent cannot ask, so what would be asked is refused.)
    for (path, why) in [
        (".ssh", ""),
        ("keys", ""),
        ("..", ""),
        ("/etc", ""),
        ("project/readme.txt", "folder"),
    ] {
        let refused = viewer.list(path).await.unwrap_err();
        assert!(
            matches!(&refused, ViewerError::Refused(r) if r.as_raw().contains(why)),
            "{path}: {refused}"
        );
    }

    // Asked on the customer's screen, and allowed: everything, hidden entries included.
    let (mut agent, id, code) = w.text_agent(&["--allow", "terminal"]);
    let viewer = Arc::new(w.assistant(&id, &code).await);
    viewer.consent(WAIT).await.unwrap();
    let asked = {
        let viewer = viewer.clone();
        tokio::spawn(async move { viewer.list("project").await })
    };
    let question = agent.expect("SEE WHAT IS IN the folder");
    assert!(
        question.contains("project") && question.contains("2 entries"),
        "{question}"
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    agent.send("y");
    let listed = asked.await.unwrap().unwrap();
    assert_eq!(names(&listed), [".env", "readme.txt"]);
    agent.expect("showed the folder");
}
