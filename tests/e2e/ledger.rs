//! The session ledger with the real binaries, on SQLite (the default) and on a real
//! PostgreSQL server: a real session becomes one plausible row; export as CSV and JSON;
//! reports per ticket and per assistant; retention purges old rows; a relay cluster's nodes
//! sharing one PostgreSQL ledger write one row per session.
//!
//! PostgreSQL comes from `PONTE_TEST_POSTGRES` (`postgres://USER:PASSWORD@HOST:PORT/DB`, a
//! role that may create databases); `bash .ci/run` starts a server on loopback and sets it.
//! Without it the PostgreSQL tests fail: a missing server is not a reason to skip them.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ponte_relay::ledger::{Row, Target};
use ponte_testbed::{Running, binary};

const WAIT: Duration = Duration::from_secs(60);

/// Where a test's ledger lives.
enum Backend {
    /// The default: ledger.sqlite3 in the relay's data directory.
    Sqlite,
    /// A database of this test's own on the CI server.
    Postgres {
        url: String,
        name: String,
        admin: String,
    },
}

impl Backend {
    async fn postgres() -> Backend {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let admin = std::env::var("PONTE_TEST_POSTGRES").unwrap_or_else(|_| {
            panic!(
                "PONTE_TEST_POSTGRES is not set. The ledger tests need a PostgreSQL server: run \
                 `bash .ci/run`, which starts one on loopback, or set it to \
                 postgres://USER:PASSWORD@127.0.0.1:5432/postgres for a role that may create databases"
            )
        });
        let (client, connection) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at PONTE_TEST_POSTGRES: {e}"));
        tokio::spawn(connection);
        let name = format!(
            "ponte_ledger_test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        // One statement per call: several in one string run as a transaction, which
        // CREATE DATABASE refuses.
        for sql in [
            format!("DROP DATABASE IF EXISTS {name}"),
            format!("CREATE DATABASE {name}"),
        ] {
            client.batch_execute(&sql).await.unwrap();
        }
        let base = admin.split('?').next().unwrap();
        let url = format!("{}/{name}", &base[..base.rfind('/').unwrap()]);
        Backend::Postgres { url, name, admin }
    }

    /// The `--ledger` arguments for the relay.
    fn args(&self) -> Vec<String> {
        match self {
            Backend::Sqlite => Vec::new(),
            Backend::Postgres { url, .. } => vec!["--ledger".into(), url.clone()],
        }
    }

    async fn store(&self, data_dir: &Path) -> ponte_relay::ledger::Store {
        let setting = match self {
            Backend::Sqlite => None,
            Backend::Postgres { url, .. } => Some(url.as_str()),
        };
        Target::parse(setting, data_dir)
            .unwrap()
            .open()
            .await
            .unwrap()
            .unwrap()
    }

    async fn drop_database(self) {
        if let Backend::Postgres { name, admin, .. } = self {
            let (client, connection) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(connection);
            client
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await
                .unwrap();
        }
    }
}

fn relay(data_dir: &Path, backend: &Backend, extra: &[&str]) -> (Running, SocketAddr, String) {
    let mut cmd = Command::new(binary("ponte-relay"));
    cmd.args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(backend.args())
        .args(extra)
        .stdin(Stdio::null());
    let running = Running::start(cmd);
    let addr = running.line_after("listening on ", WAIT).parse().unwrap();
    let fp = running.line_after("fingerprint: ", WAIT);
    (running, addr, fp)
}

fn relay_cli(data_dir: &Path, backend: &Backend, args: &[&str]) -> Output {
    let out = Command::new(binary("ponte-relay"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .args(backend.args())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ponte-relay {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn export_json(data_dir: &Path, backend: &Backend, extra: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec!["ledger", "export", "--format", "json"];
    args.extend_from_slice(extra);
    let out = relay_cli(data_dir, backend, &args);
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn program(home: &Path, bin: &str, relay: SocketAddr) -> Command {
    let mut cmd = Command::new(binary(bin));
    cmd.env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("PONTE_RELAY", relay.to_string())
        .env_remove("PONTE_CREDENTIAL")
        .env_remove("RUST_LOG");
    cmd
}

fn time(v: &serde_json::Value) -> i64 {
    ponte_relay::ledger::report::parse_time(v.as_str().unwrap()).unwrap()
}

async fn a_real_session_becomes_one_row(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("relay");
    let credential = dir.path().join("alice.credential");
    relay_cli(
        &data,
        &backend,
        &["assistant", "add", "alice", "--out", credential.to_str().unwrap()],
    );
    let (mut relay, addr, fp) = relay(
        &data,
        &backend,
        &[
            "--assistants",
            "required",
            "--ledger-addresses",
            "full",
            "--shutdown-grace-secs",
            "1",
        ],
    );
    let home = dir.path().join("home");
    std::fs::create_dir_all(home.join("agent-dir")).unwrap();
    let mut agent = program(&home, "ponte-agent", addr);
    agent
        .args(["--json", "--allow", "terminal", "--fingerprint", &fp, "--dir"])
        .arg(home.join("agent-dir"))
        .stdin(Stdio::null());
    let mut agent = Running::start(agent);
    let ready = agent.event("ready", WAIT);
    let id = ready["session_id"].as_str().unwrap().replace(' ', "");
    let code = ready["code"].as_str().unwrap().to_owned();
    let batch = dir.path().join("batch");
    std::fs::write(&batch, "exec echo ledger-test\n").unwrap();
    let mut viewer = program(&home, "ponte-viewer", addr);
    viewer
        .args([
            "connect",
            &id,
            "--code",
            &code,
            "--fingerprint",
            &fp,
            "--ticket",
            "ACME-4711",
        ])
        .arg("--credential")
        .arg(&credential)
        .arg("--batch")
        .arg(&batch)
        .stdin(Stdio::null());
    let out = viewer.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ledger-test"));
    agent.wait(WAIT);
    // A graceful stop hands the last rows to the database before the relay exits.
    assert!(relay.terminate(WAIT).success());

    let rows = export_json(&data, &backend, &[]);
    assert_eq!(rows.len(), 1, "{rows:#?}");
    let row = &rows[0];
    assert_eq!(row["session_id"], id.as_str());
    assert_eq!(row["ticket"], "ACME-4711");
    assert_eq!(row["assistant"], "alice");
    assert_eq!(row["attempts"], 1);
    assert_eq!(row["agent_address"], "127.0.0.1");
    assert_eq!(row["viewer_address"], "127.0.0.1");
    let reason = row["end_reason"].as_str().unwrap();
    assert!(["viewer_left", "agent_left"].contains(&reason), "{row}");
    let (registered, paired, ended) = (
        time(&row["registered"]),
        time(&row["paired"]),
        time(&row["ended"]),
    );
    assert!(registered <= paired && paired <= ended, "{row}");
    assert!(ended - registered < 120_000, "{row}");
    let now = ponte_relay::ledger::now_ms();
    assert!(now - registered < 600_000, "registered in this test: {row}");
    // Both directions carried the handshake (the viewer's side with its RSA signature) and
    // the exec; no content or code is in the row, only counts.
    let (a2v, v2a) = (
        row["bytes_agent_to_viewer"].as_i64().unwrap(),
        row["bytes_viewer_to_agent"].as_i64().unwrap(),
    );
    assert!(
        a2v > 100 && v2a > 500 && a2v < 10_000_000 && v2a < 10_000_000,
        "{row}"
    );
    assert!(!row.to_string().contains(&code));

    // The same row as CSV.
    let csv = String::from_utf8(relay_cli(&data, &backend, &["ledger", "export"]).stdout).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let cells: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header.len(), cells.len());
    let cell = |name| cells[header.iter().position(|h| *h == name).unwrap()];
    assert_eq!(cell("session_id"), id);
    assert_eq!(cell("ticket"), "ACME-4711");
    assert_eq!(cell("bytes_viewer_to_agent"), v2a.to_string());
    assert!(lines.next().is_none());

    // The report has the ticket's connected time.
    let report = relay_cli(
        &data,
        &backend,
        &["ledger", "report", "--by", "ticket", "--format", "json"],
    );
    let report: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(report[0]["ticket"], "ACME-4711");
    assert_eq!(report[0]["sessions"], 1);
    let secs = report[0]["connected_secs"].as_f64().unwrap();
    assert!((secs - (ended - paired) as f64 / 1000.0).abs() < 0.01, "{report}");
    backend.drop_database().await;
}

fn row(
    n: i64,
    ticket: Option<&str>,
    assistant: Option<&str>,
    registered: i64,
    connected_secs: Option<i64>,
) -> Row {
    Row {
        id: n,
        session: format!("{n:09}"),
        registered,
        paired: connected_secs.map(|_| registered + 1_000),
        ended: Some(registered + 1_000 + connected_secs.unwrap_or(0) * 1000),
        end_reason: Some("viewer_left".into()),
        bytes_agent_to_viewer: 10,
        bytes_viewer_to_agent: 20,
        attempts: 1,
        assistant: assistant.map(Into::into),
        ticket: ticket.map(Into::into),
        agent_address: Some("192.0.2.0".into()),
        viewer_address: None,
    }
}

async fn reports_sum_connected_time_per_ticket_and_assistant(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let data: PathBuf = dir.path().join("relay");
    let day = 86_400_000;
    let t0 = ponte_relay::ledger::report::parse_time("2026-11-02").unwrap();
    let mut store = backend.store(&data).await;
    store
        .upsert(vec![
            row(1, Some("T-1"), Some("alice"), t0, Some(61)),
            row(2, Some("T-1"), Some("bob"), t0 + 3_600_000, Some(600)),
            row(3, Some("T-2"), Some("alice"), t0 + day, Some(900)),
            row(4, None, Some("alice"), t0 + day, Some(30)),
            // Turned away by the agent: no connection to bill.
            row(5, Some("T-1"), Some("bob"), t0 + day, None),
            // Another month.
            row(6, Some("T-1"), Some("alice"), t0 + 40 * day, Some(100)),
        ])
        .await
        .unwrap();
    // Writing a row again replaces it (the relay writes a session when it opens and ends).
    store
        .upsert(vec![row(2, Some("T-1"), Some("bob"), t0 + 3_600_000, Some(60))])
        .await
        .unwrap();
    drop(store);

    let november = ["--since", "2026-11-01", "--until", "2026-12-01"];
    let report = |extra: &[&str]| {
        let mut args = vec!["ledger", "report", "--format", "json"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&november);
        let out = relay_cli(&data, &backend, &args);
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let by_ticket = report(&["--by", "ticket"]);
    let find = |v: &serde_json::Value, key: &str, name: Option<&str>| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|t| t[key].as_str() == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name:?} missing in {v}"))
    };
    let t1 = find(&by_ticket, "ticket", Some("T-1"));
    assert_eq!(
        (t1["sessions"].as_u64(), t1["connected_secs"].as_f64()),
        (Some(2), Some(121.0))
    );
    let t2 = find(&by_ticket, "ticket", Some("T-2"));
    assert_eq!(t2["connected_secs"].as_f64(), Some(900.0));
    assert_eq!(
        find(&by_ticket, "ticket", None)["connected_secs"].as_f64(),
        Some(30.0)
    );
    // Rounded up to 15 minutes per session.
    let rounded = report(&["--by", "ticket", "--round-up", "15"]);
    assert_eq!(
        find(&rounded, "ticket", Some("T-1"))["connected_secs"].as_f64(),
        Some(1800.0)
    );
    assert_eq!(
        find(&rounded, "ticket", Some("T-2"))["connected_secs"].as_f64(),
        Some(900.0)
    );
    let by_assistant = report(&["--by", "assistant"]);
    let alice = find(&by_assistant, "assistant", Some("alice"));
    assert_eq!(
        (alice["sessions"].as_u64(), alice["connected_secs"].as_f64()),
        (Some(3), Some(991.0))
    );
    // The table for people says the same.
    let mut args = vec!["ledger", "report", "--by", "ticket"];
    args.extend_from_slice(&november);
    let table = String::from_utf8(relay_cli(&data, &backend, &args).stdout).unwrap();
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("T-1") && l.contains("0:02:01")),
        "{table}"
    );
    // Export honours the period too.
    assert_eq!(export_json(&data, &backend, &november).len(), 5);
    assert_eq!(export_json(&data, &backend, &[]).len(), 6);
    backend.drop_database().await;
}

async fn retention_purges_old_rows(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("relay");
    let now = ponte_relay::ledger::now_ms();
    let day = 86_400_000;
    let mut store = backend.store(&data).await;
    store
        .upsert(vec![
            row(1, Some("old"), None, now - 400 * day, Some(10)),
            row(2, Some("older"), None, now - 31 * day, Some(10)),
            row(3, Some("recent"), None, now - 29 * day, Some(10)),
            row(4, Some("today"), None, now - 1000, Some(10)),
        ])
        .await
        .unwrap();
    // The console's audit log is kept as long as the ledger.
    for (at, detail) in [(now - 400 * day, "old"), (now - 1000, "today")] {
        let entry = ponte_relay::ledger::AuditRow {
            at,
            operator: "anna".into(),
            action: "login".into(),
            detail: detail.into(),
        };
        store.audit(entry).await.unwrap();
    }
    drop(store);
    // The relay purges at start and every hour after.
    let (mut relay, _, _) = relay(&data, &backend, &["--ledger-retention-days", "30"]);
    let mut left = Vec::new();
    for _ in 0..100 {
        left = export_json(&data, &backend, &[]);
        if left.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let tickets: Vec<&str> = left.iter().map(|r| r["ticket"].as_str().unwrap()).collect();
    assert_eq!(tickets, ["recent", "today"]);
    let audit = backend.store(&data).await.audit_log(10).await.unwrap();
    let details: Vec<&str> = audit.iter().map(|e| e.detail.as_str()).collect();
    assert_eq!(details, ["today"]);
    assert!(relay.terminate(WAIT).success());
    backend.drop_database().await;
}

/// The console's operator accounts live in the ledger's database: made with the library or
/// `console-user add` (password on standard input), listed and removed by the CLI, checked
/// by their argon2id hash.
async fn console_accounts_live_in_the_ledger_database(backend: Backend) {
    use ponte_relay::console::accounts::{self, AccountError, Role};
    const PASSWORD: &str = "correct horse battery staple";
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("relay");
    let mut store = backend.store(&data).await;
    accounts::add(&mut store, "anna", Role::Admin, PASSWORD, None)
        .await
        .unwrap();
    let again = accounts::add(&mut store, "anna", Role::Billing, PASSWORD, None).await;
    assert!(matches!(again, Err(AccountError::Exists(_))), "{again:?}");
    let mut add = Command::new(binary("ponte-relay"));
    add.args(["console-user", "add", "bea", "--role", "billing", "--data-dir"])
        .arg(&data)
        .args(backend.args())
        .stdin(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = add.spawn().unwrap();
    std::io::Write::write_all(
        &mut child.stdin.take().unwrap(),
        format!("{PASSWORD}\n").as_bytes(),
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let list = String::from_utf8(relay_cli(&data, &backend, &["console-user", "list"]).stdout).unwrap();
    assert!(
        list.contains("anna  admin") && list.contains("bea  billing"),
        "{list}"
    );
    let all = accounts::operators(&mut store).await.unwrap();
    assert_eq!(
        accounts::authenticate(&all, "bea", PASSWORD).map(|o| o.role),
        Some(Role::Billing)
    );
    assert!(accounts::authenticate(&all, "bea", "correct horse battery stapler").is_none());
    relay_cli(&data, &backend, &["console-user", "remove", "anna"]);
    let list = String::from_utf8(relay_cli(&data, &backend, &["console-user", "list"]).stdout).unwrap();
    assert!(!list.contains("anna") && list.contains("bea"), "{list}");
    drop(store);
    backend.drop_database().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_console_accounts_live_in_the_ledger_database() {
    console_accounts_live_in_the_ledger_database(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_console_accounts_live_in_the_ledger_database() {
    console_accounts_live_in_the_ledger_database(Backend::postgres().await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_a_real_session_becomes_one_row() {
    a_real_session_becomes_one_row(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_a_real_session_becomes_one_row() {
    a_real_session_becomes_one_row(Backend::postgres().await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_reports_sum_connected_time_per_ticket_and_assistant() {
    reports_sum_connected_time_per_ticket_and_assistant(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_reports_sum_connected_time_per_ticket_and_assistant() {
    reports_sum_connected_time_per_ticket_and_assistant(Backend::postgres().await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_retention_purges_old_rows() {
    retention_purges_old_rows(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_retention_purges_old_rows() {
    retention_purges_old_rows(Backend::postgres().await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_one_row_per_session_across_a_relay_cluster() {
    // Three nodes write one PostgreSQL ledger. Viewers that join through another node are
    // redirected to the node holding the session: each session is one row, with its ticket,
    // whichever nodes the viewer touched — the redirecting node writes nothing.
    use ponte_relay::cluster::ClusterSettings;
    use ponte_relay::{Config, Relay, cert};
    use ponte_transport::client::JoinExtras;
    let backend = Backend::postgres().await;
    let Backend::Postgres { url, .. } = &backend else {
        unreachable!()
    };
    let redis = ponte_testbed::RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("cluster");
    let pin = cert::init_cluster(&keys).unwrap();
    let mut nodes = Vec::new();
    for name in ["a", "b", "c"] {
        let addr = SocketAddr::from(([127, 0, 0, 1], ponte_testbed::free_udp_port()));
        let public = addr.to_string().parse().unwrap();
        let node = name.parse().unwrap();
        let files = cert::certify_node(&keys, &node, Some(&public), &dir.path().join(name)).unwrap();
        let mut config = Config::new(addr, dir.path().join(name));
        config.cert = Some((files.cert, files.key));
        config.ledger = Some(url.clone());
        // Every client here comes from 127.0.0.1: lift the per-source limits.
        config.registry.join_burst = 1000.0;
        config.registry.register_burst = 1000.0;
        config.cluster = Some(ClusterSettings {
            url: redis.url(),
            node,
            public_addr: public,
        });
        nodes.push(Relay::start(config).await.unwrap());
    }
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.local_addr().unwrap()).collect();
    let idle = Duration::from_secs(5);
    let mut sessions = Vec::new();
    for (via, ticket) in [(1, "T-via-b"), (2, "T-via-c"), (0, "T-on-a")] {
        let mut agent = ponte_tests::relay_client(addrs[0], pin, idle).await.unwrap();
        let (id, _) = agent.register().await.unwrap();
        let mut viewer = ponte_tests::relay_client(addrs[via], pin, idle).await.unwrap();
        let extras = JoinExtras {
            credential: None,
            ticket: Some(ticket.parse().unwrap()),
        };
        viewer.join_with(id, &extras).await.unwrap();
        assert_eq!(
            agent.next().await.unwrap(),
            ponte_wire::rendezvous::RelayMessage::Paired
        );
        assert_eq!(
            viewer.connection().remote_address(),
            addrs[0],
            "moved to the owning node"
        );
        viewer.connection().close(0u32.into(), b"done");
        agent.connection().close(0u32.into(), b"done");
        sessions.push((id.to_string().replace(' ', ""), ticket));
    }
    // A graceful stop hands the last rows to the database.
    for node in nodes {
        node.shutdown().await;
    }
    let mut rows = backend
        .store(dir.path())
        .await
        .rows(i64::MIN, i64::MAX)
        .await
        .unwrap();
    rows.sort_by_key(|r| r.registered);
    let got: Vec<(String, &str)> = rows
        .iter()
        .map(|r| (r.session.clone(), r.ticket.as_deref().unwrap_or("-")))
        .collect();
    assert_eq!(got, sessions, "{rows:#?}");
    for r in &rows {
        assert!(r.paired.is_some() && r.ended.is_some(), "{r:?}");
        assert_eq!(r.attempts, 1, "{r:?}");
    }
    backend.drop_database().await;
}
