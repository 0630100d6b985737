//! The real `ponte-relay` binary on loopback: start-up output, certificate persistence,
//! configuration layering, metrics, pairing and graceful shutdown; memory under a stream
//! flood (RSS from /proc); assistant credentials and what reaches the logs; a ledger that
//! cannot be written.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use ponte_testbed::{Running, binary, free_tcp_port};
use ponte_transport::client::RelayClient;
use ponte_transport::tls::{self, CertFingerprint, RelayTrust};
use ponte_wire::rendezvous::{Refusal, RelayMessage};

const START: Duration = Duration::from_secs(20);

fn relay(data_dir: &std::path::Path, extra: &[&str]) -> (Running, SocketAddr, CertFingerprint) {
    let mut cmd = Command::new(binary("ponte-relay"));
    cmd.args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(extra);
    let running = Running::start(cmd);
    let addr = running.line_after("listening on ", START).parse().unwrap();
    let fp = running.line_after("fingerprint: ", START).parse().unwrap();
    (running, addr, fp)
}

async fn client(addr: SocketAddr, fp: CertFingerprint) -> RelayClient {
    let (config, seen) = tls::client_config(
        &RelayTrust::Pinned(fp),
        tls::transport_config(Duration::from_secs(30)),
    )
    .unwrap();
    let ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    RelayClient::connect(&ep, addr, "ponte-relay", config, &seen)
        .await
        .unwrap()
}

fn scrape(addr: SocketAddr) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

fn metric(body: &str, name: &str) -> f64 {
    body.lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("metric {name} missing in:\n{body}"))
}

#[tokio::test]
async fn starts_pairs_forwards_reports_metrics_and_shuts_down_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
    let (mut running, addr, fp) = relay(
        dir.path(),
        &["--metrics", &metrics.to_string(), "--shutdown-grace-secs", "1"],
    );

    // The fingerprint subcommand agrees with what the running relay printed.
    let out = Command::new(binary("ponte-relay"))
        .args(["fingerprint", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), fp.to_string());

    let mut agent = client(addr, fp).await;
    let (id, _) = agent.register().await.unwrap();
    let mut viewer = client(addr, fp).await;
    viewer.join(id).await.unwrap();
    assert_eq!(agent.next().await.unwrap(), RelayMessage::Paired);
    let (mut s, _) = agent.connection().open_bi().await.unwrap();
    s.write_all(&[7u8; 100_000]).await.unwrap();
    s.finish().unwrap();
    let (_, mut r) = viewer.connection().accept_bi().await.unwrap();
    assert_eq!(r.read_to_end(1 << 20).await.unwrap(), vec![7u8; 100_000]);

    let mut waiting = client(addr, fp).await;
    waiting.register().await.unwrap();
    let body = tokio::task::spawn_blocking(move || scrape(metrics))
        .await
        .unwrap();
    assert_eq!(metric(&body, "ponte_relay_sessions_paired"), 1.0, "{body}");
    assert_eq!(metric(&body, "ponte_relay_joins_total{outcome=\"paired\"}"), 1.0);
    assert!(metric(&body, "ponte_relay_forwarded_bytes_total") >= 100_000.0);
    assert!(body.contains("ponte_relay_pairing_latency_seconds"));
    // The operator's series: memory reserved for the paired session, no credential refusals
    // on an open relay, nothing turned away at the door.
    assert!(metric(&body, "ponte_relay_buffer_reserved_bytes") > 0.0);
    assert_eq!(
        metric(
            &body,
            "ponte_relay_auth_refusals_total{reason=\"credential_required\"}"
        ),
        0.0
    );
    assert!(!body.contains("ponte_relay_connections_refused_total{"), "{body}");
    // An agent that gives up is a session ended by its agent; the ledger (SQLite in the data
    // directory) stores its row and the paired session's open row.
    let mut quitter = client(addr, fp).await;
    quitter.register().await.unwrap();
    quitter.connection().close(0u32.into(), b"bye");
    let mut body = String::new();
    for _ in 0..50 {
        body = tokio::task::spawn_blocking(move || scrape(metrics))
            .await
            .unwrap();
        if body.contains("ponte_relay_sessions_ended_total{reason=\"agent_left\"} 1")
            && metric(&body, "ponte_relay_ledger_rows_written_total") >= 2.0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        body.contains("ponte_relay_sessions_ended_total{reason=\"agent_left\"} 1"),
        "{body}"
    );
    assert!(
        metric(&body, "ponte_relay_ledger_rows_written_total") >= 2.0,
        "{body}"
    );
    assert_eq!(metric(&body, "ponte_relay_ledger_up"), 1.0);
    assert_eq!(metric(&body, "ponte_relay_ledger_rows_failed_total"), 0.0);

    // SIGTERM: the waiting agent is told; the paired viewer is closed after the grace period.
    let _ = Command::new("kill")
        .args(["-TERM", &running.child.id().to_string()])
        .status();
    let told = tokio::time::timeout(Duration::from_secs(5), waiting.next())
        .await
        .unwrap();
    assert!(
        matches!(&told, Ok(RelayMessage::Refused(Refusal::ShuttingDown)))
            || told.as_ref().err().and_then(|e| e.refusal()) == Some(Refusal::ShuttingDown),
        "{told:?}"
    );
    let closed = tokio::time::timeout(Duration::from_secs(5), viewer.connection().closed())
        .await
        .unwrap();
    assert_eq!(
        ponte_transport::client::refusal_of(&closed),
        Some(Refusal::ShuttingDown)
    );
    let status = running.terminate(Duration::from_secs(10));
    assert!(status.success(), "{status:?}");

    // A restart keeps the certificate, so pinned clients keep working.
    let (_again, _, fp2) = relay(dir.path(), &[]);
    assert_eq!(fp2, fp);
}

#[tokio::test]
async fn config_file_and_environment_layer_under_flags() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("relay.toml");
    std::fs::write(
        &config,
        "pairing-ttl-secs = 77\nmax-waiting-per-ip = 1\nlog-format = \"json\"\n",
    )
    .unwrap();
    let mut cmd = Command::new(binary("ponte-relay"));
    cmd.args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .arg("--config")
        .arg(&config)
        .env("PONTE_RELAY_PAIRING_TTL_SECS", "33");
    let running = Running::start(cmd);
    let addr: SocketAddr = running.line_after("listening on ", START).parse().unwrap();
    let fp = running.line_after("fingerprint: ", START).parse().unwrap();
    let mut agent = client(addr, fp).await;
    // The environment (33) overrides the file (77).
    assert_eq!(agent.register().await.unwrap().1, Duration::from_secs(33));
    // The file's max-waiting-per-ip = 1 applies.
    let mut second = client(addr, fp).await;
    assert_eq!(
        second.register().await.unwrap_err().refusal(),
        Some(Refusal::Capacity)
    );

    // A config file with a typo is a clear error, not a silent default.
    std::fs::write(&config, "pairing-tll-secs = 5\n").unwrap();
    let out = Command::new(binary("ponte-relay"))
        .args(["--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("pairing-tll-secs"),
        "{out:?}"
    );
}

/// A relay process whose log (stderr) goes to a file the test can read.
struct LoggedRelay {
    child: std::process::Child,
    addr: SocketAddr,
    fp: CertFingerprint,
    log: std::path::PathBuf,
}

impl LoggedRelay {
    fn start(data_dir: &std::path::Path, extra: &[&str]) -> LoggedRelay {
        use std::io::BufRead;
        let log = data_dir.with_extension("log");
        let mut child = Command::new(binary("ponte-relay"))
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env("RUST_LOG", "debug")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let mut next = |prefix: &str| loop {
            let line = lines.next().expect("relay exited early").unwrap();
            if let Some(rest) = line.strip_prefix(prefix) {
                return rest.trim().to_owned();
            }
        };
        let addr = next("listening on ").parse().unwrap();
        let fp = next("fingerprint: ").parse().unwrap();
        // Keep draining stdout so the relay never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.by_ref() {});
        LoggedRelay { child, addr, fp, log }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }
}

impl Drop for LoggedRelay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap()
}

/// A raw quinn connection (not the client library) with small receive windows, so nothing
/// the relay forwards to it can leave the relay quickly.
async fn raw_client(addr: SocketAddr, fp: CertFingerprint) -> quinn::Connection {
    let mut transport = tls::transport_config(Duration::from_secs(30));
    transport
        .receive_window(16_384u32.into())
        .stream_receive_window(16_384u32.into());
    let (config, _) = tls::client_config(&RelayTrust::Pinned(fp), transport).unwrap();
    let ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    ep.connect_with(config, addr, "ponte-relay")
        .unwrap()
        .await
        .unwrap()
}

/// Sends one rendezvous request on a new control line; returns the answer and the line (keep
/// it: dropping it ends the rendezvous).
async fn raw_request(
    c: &quinn::Connection,
    m: &ponte_wire::rendezvous::ClientMessage,
) -> (RelayMessage, (quinn::SendStream, quinn::RecvStream)) {
    let (mut send, mut recv) = c.open_bi().await.unwrap();
    send.write_all(&ponte_wire::rendezvous::encode_client(m))
        .await
        .unwrap();
    let answer = ponte_transport::framed::read::<RelayMessage>(&mut recv, 256).await;
    (answer.unwrap().unwrap(), (send, recv))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_flood_after_self_pairing_leaves_relay_memory_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
    let relay = LoggedRelay::start(&dir.path().join("relay"), &["--metrics", &metrics.to_string()]);
    let agent = raw_client(relay.addr, relay.fp).await;
    let (RelayMessage::Registered { session, .. }, _agent_line) =
        raw_request(&agent, &ponte_wire::rendezvous::ClientMessage::Register).await
    else {
        panic!("not registered")
    };
    let viewer = raw_client(relay.addr, relay.fp).await;
    let (paired, _viewer_line) =
        raw_request(&viewer, &ponte_wire::rendezvous::ClientMessage::Join { session }).await;
    assert_eq!(paired, RelayMessage::Paired);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = rss_kib(relay.pid());

    // 255 bidirectional and 256 unidirectional streams asked for from each side (more than
    // the relay allows open at once), written into for 3 seconds and never read.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let mut tasks = tokio::task::JoinSet::new();
    for c in [agent.clone(), viewer.clone()] {
        for i in 0..511 {
            let c = c.clone();
            tasks.spawn(async move {
                let chunk = vec![0xa5u8; 32 * 1024];
                let opened = tokio::time::timeout_at(deadline, async {
                    if i < 255 {
                        c.open_bi().await.map(|(s, _)| s)
                    } else {
                        c.open_uni().await
                    }
                })
                .await;
                let Ok(Ok(mut s)) = opened else { return 0u64 };
                let mut sent = 0;
                while let Ok(Ok(())) = tokio::time::timeout_at(deadline, s.write_all(&chunk)).await {
                    sent += chunk.len() as u64;
                }
                sent
            });
        }
    }
    let mut sent = 0;
    while let Some(n) = tasks.join_next().await {
        sent += n.unwrap();
    }
    let after = rss_kib(relay.pid());
    let grown = after.saturating_sub(before);
    let body = tokio::task::spawn_blocking(move || scrape(metrics))
        .await
        .unwrap();
    let reserved = metric(&body, "ponte_relay_buffer_reserved_bytes");
    eprintln!("flood: {sent} bytes accepted, relay RSS {before} -> {after} KiB, {reserved} bytes reserved");
    // Two connections' windows (2 x 4 MiB + datagram buffers) are all the relay promised.
    assert!(reserved > 0.0 && reserved <= 9.0 * 1024.0 * 1024.0, "{reserved}");
    assert!(sent <= 9 * 1024 * 1024, "the relay took in {sent} bytes");
    // Before the hardening this grew by ~90 MiB and more, bounded only by the sender.
    assert!(grown < 40 * 1024, "relay RSS grew by {grown} KiB");
    // The relay still serves others.
    let mut a = client(relay.addr, relay.fp).await;
    let (id, _) = a.register().await.unwrap();
    let mut v = client(relay.addr, relay.fp).await;
    v.join(id).await.unwrap();
}

fn relay_cli(data_dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(binary("ponte-relay"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

async fn join_with(
    relay: &LoggedRelay,
    id: ponte_wire::SessionId,
    credential: Option<&str>,
) -> Result<RelayClient, Option<Refusal>> {
    let mut v = client(relay.addr, relay.fp).await;
    let extras = ponte_transport::client::JoinExtras {
        credential: credential.map(|c| ponte_transport::credential::AssistantCredential::parse(c).unwrap()),
        ticket: Some("T-42".parse().unwrap()),
    };
    match v.join_with(id, &extras).await {
        Ok(()) => Ok(v),
        Err(e) => Err(e.refusal()),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn required_credentials_refuse_missing_and_removed_accept_valid_and_stay_out_of_logs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("relay");
    let cred_file = dir.path().join("alice.credential");
    let add = relay_cli(
        &data,
        &["assistant", "add", "alice", "--out", cred_file.to_str().unwrap()],
    );
    assert!(add.status.success(), "{add:?}");
    assert!(add.stdout.is_empty(), "with --out nothing is printed: {add:?}");
    let alice = std::fs::read_to_string(&cred_file).unwrap().trim().to_owned();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&cred_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{mode:o}");
    }
    let add = relay_cli(&data, &["assistant", "add", "bob"]);
    assert!(add.status.success(), "{add:?}");
    let bob = String::from_utf8(add.stdout).unwrap().trim().to_owned();
    assert!(bob.starts_with(ponte_wire::credential_text::PREFIX), "{bob}");
    assert!(
        !relay_cli(&data, &["assistant", "add", "bob"]).status.success(),
        "names are unique"
    );

    let relay = LoggedRelay::start(&data, &["--assistants", "required"]);
    let mut agent = client(relay.addr, relay.fp).await;
    let (id, _) = agent.register().await.unwrap();

    // No credential: refused with a reason the viewer can show.
    assert_eq!(
        join_with(&relay, id, None).await.err(),
        Some(Some(Refusal::CredentialRequired))
    );
    assert_eq!(
        agent.next().await.unwrap(),
        RelayMessage::JoinRefused(Refusal::CredentialRequired)
    );
    // A valid one: paired.
    let viewer = join_with(&relay, id, Some(&alice)).await.unwrap();
    assert_eq!(agent.next().await.unwrap(), RelayMessage::Paired);
    viewer.connection().close(0u32.into(), b"done");
    assert_eq!(agent.next().await.unwrap(), RelayMessage::PeerLeft);
    agent
        .send(&ponte_wire::rendezvous::ClientMessage::Release)
        .await
        .unwrap();
    assert!(matches!(
        agent.next().await.unwrap(),
        RelayMessage::Registered { .. }
    ));

    // Removed: refused at the next join, while another assistant still gets in.
    let list = relay_cli(&data, &["assistant", "list"]);
    let listed = String::from_utf8_lossy(&list.stdout).into_owned();
    assert!(listed.contains("alice") && listed.contains("bob"), "{listed}");
    let removed = relay_cli(&data, &["assistant", "remove", "alice"]);
    assert!(removed.status.success(), "{removed:?}");
    assert_eq!(
        join_with(&relay, id, Some(&alice)).await.err(),
        Some(Some(Refusal::CredentialRefused))
    );
    assert_eq!(
        agent.next().await.unwrap(),
        RelayMessage::JoinRefused(Refusal::CredentialRefused)
    );
    let _bob = join_with(&relay, id, Some(&bob)).await.unwrap();
    assert_eq!(agent.next().await.unwrap(), RelayMessage::Paired);

    // The real viewer tells its user plainly, and does not hang.
    let home = dir.path().join("home");
    let viewer_run = |credential: Option<&std::path::Path>| {
        let mut cmd = Command::new(binary("ponte-viewer"));
        cmd.args([
            "connect",
            "987654321",
            "--code",
            "12345678",
            "--relay",
            &relay.addr.to_string(),
        ])
        .args(["--fingerprint", &relay.fp.to_string()])
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env_remove("PONTE_CREDENTIAL")
        .stdin(std::process::Stdio::null());
        if let Some(c) = credential {
            cmd.arg("--credential").arg(c);
        }
        let start = std::time::Instant::now();
        let out = cmd.output().unwrap();
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the viewer took {:?}",
            start.elapsed()
        );
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let missing = viewer_run(None);
    assert!(missing.contains("credential from its operator"), "{missing}");
    let revoked = viewer_run(Some(&cred_file));
    assert!(
        revoked.contains("did not accept this assistant credential"),
        "{revoked}"
    );

    // The secrets appear nowhere in what the relay logged (at debug level) or the CLI said.
    let log = relay.log();
    assert!(log.contains("join refused"), "the log is being written:\n{log}");
    let cli_said = format!("{listed}{}", String::from_utf8_lossy(&removed.stderr));
    for secret in [&alice, &bob] {
        let hex = &secret[ponte_wire::credential_text::PREFIX.len()..];
        assert!(!log.contains(hex), "a credential reached the relay's log");
        assert!(!cli_said.contains(hex), "a credential reached the CLI's output");
        assert!(!missing.contains(hex) && !revoked.contains(hex));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ledger_that_cannot_be_written_is_counted_and_the_relay_keeps_relaying() {
    let dir = tempfile::tempdir().unwrap();
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
    // Nothing listens on port 1.
    let relay = LoggedRelay::start(
        &dir.path().join("relay"),
        &[
            "--metrics",
            &metrics.to_string(),
            "--ledger",
            "postgres://ponte:secret-password@127.0.0.1:1/ledger",
        ],
    );
    for _ in 0..2 {
        let mut a = client(relay.addr, relay.fp).await;
        let (id, _) = a.register().await.unwrap();
        let mut v = client(relay.addr, relay.fp).await;
        v.join(id).await.unwrap();
        assert_eq!(a.next().await.unwrap(), RelayMessage::Paired);
        let (mut s, _) = a.connection().open_bi().await.unwrap();
        s.write_all(b"still relaying").await.unwrap();
        s.finish().unwrap();
        let (_, mut r) = v.connection().accept_bi().await.unwrap();
        assert_eq!(r.read_to_end(100).await.unwrap(), b"still relaying");
    }
    let mut failed = 0.0;
    for _ in 0..50 {
        let body = tokio::task::spawn_blocking(move || scrape(metrics))
            .await
            .unwrap();
        failed = metric(&body, "ponte_relay_ledger_rows_failed_total");
        if failed >= 2.0 {
            assert_eq!(metric(&body, "ponte_relay_ledger_up"), 0.0);
            assert_eq!(metric(&body, "ponte_relay_ledger_rows_written_total"), 0.0);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(failed >= 2.0, "failed rows not counted: {failed}");
    let log = relay.log();
    assert!(log.contains("ledger"), "{log}");
    assert!(
        !log.contains("secret-password"),
        "the database password reached the log"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_join_by_device_needs_a_proof_made_for_that_device() {
    // A modified viewer holding a valid credential replays a proof made for another target (a
    // session ID, another device tag) in a join by device tag: refused before the tag is
    // looked up, and the agent hears nothing of it. The proof made for the tag gets in.
    use ponte_transport::credential::AssistantCredential;
    use ponte_wire::DeviceTag;
    use ponte_wire::rendezvous::{ClientMessage, JoinTarget};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("relay");
    let cred_file = dir.path().join("alice.credential");
    let add = relay_cli(
        &data,
        &["assistant", "add", "alice", "--out", cred_file.to_str().unwrap()],
    );
    assert!(add.status.success(), "{add:?}");
    let alice = AssistantCredential::read(&cred_file).unwrap();
    let relay = LoggedRelay::start(&data, &["--assistants", "required"]);
    let key = ponte_e2e::device_key::DeviceKey::generate(&mut ponte_wire::os_rng());
    let tag = key.public().tag();
    let mut agent = client(relay.addr, relay.fp).await;
    let (id, _) = agent
        .register_device(key.public().0, tag, |c, e| key.possession(c, e))
        .await
        .unwrap();
    for target in [JoinTarget::Session(id), JoinTarget::Device(DeviceTag([6; 16]))] {
        let mut v = client(relay.addr, relay.fp).await;
        let proof = alice.prove(v.connection(), target, None).unwrap();
        v.send(&ClientMessage::JoinDevice {
            tag,
            ticket: None,
            proof: Some(proof),
        })
        .await
        .unwrap();
        let refusal = match v.next().await {
            Ok(RelayMessage::Refused(r)) => Some(r),
            Ok(other) => panic!("{target:?}: {other:?}"),
            Err(e) => e.refusal(),
        };
        assert_eq!(refusal, Some(Refusal::CredentialRefused), "{target:?}");
    }
    let mut v = client(relay.addr, relay.fp).await;
    let extras = ponte_transport::client::JoinExtras {
        credential: Some(alice),
        ticket: None,
    };
    assert_eq!(v.join_device(tag, &extras).await.unwrap(), id);
    // The first thing the agent hears is the good join.
    assert_eq!(
        agent.next().await.unwrap(),
        RelayMessage::PairedDevice { session: id }
    );
}
