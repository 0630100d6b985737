//! The real `ponte-relay` binary on loopback: start-up output, certificate persistence,
//! configuration layering, metrics, pairing and graceful shutdown.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use ponte_protocol::rendezvous::{Refusal, RelayMessage};
use ponte_tests::{Running, binary, free_tcp_port};
use ponte_transport::client::RelayClient;
use ponte_transport::tls::{self, CertFingerprint, RelayTrust};

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

#[test]
fn the_relay_dependency_graph_holds_no_session_cryptography() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "tree",
            "-p",
            "ponte-relay",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--offline",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let tree = String::from_utf8(out.stdout).unwrap();
    assert!(tree.contains("ponte-protocol"), "{tree}");
    for forbidden in ["spake2 ", "x25519-dalek ", "aes-gcm ", "rsa "] {
        assert!(
            !tree.lines().any(|l| l.starts_with(forbidden)),
            "ponte-relay depends on {forbidden}"
        );
    }
}
