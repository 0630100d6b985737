//! Benchmarks of Ponte live in `benches/` (criterion) and `src/bin/` (whole-program figures);
//! docs/BENCHMARKS.md records the figures and how they were measured.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// The path of one of Ponte's programs (`ponte-relay`, `ponte-agent`, `ponte-viewer`), built
/// first by cargo in this benchmark's profile (release, as docs/BENCHMARKS.md runs them).
///
/// Built here because a benchmark runs by hand (never in CI) and `cargo run -p ponte-benches`
/// cannot build another package's program: each benchmark stays one command. Built on its own
/// (`-p`), the program has the features it ships with, not the workspace tests' (`test-tap`).
pub fn program(name: &str) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if built.iter().any(|b| b == name) {
        return ponte_testbed::binary(name);
    }
    let release = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.ends_with("release")))
        .unwrap_or(false);
    let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    build.args(["build", "--quiet", "-p", name, "--bin", name]);
    if release {
        build.arg("--release");
    }
    let status = build.status();
    assert!(status.is_ok_and(|s| s.success()), "building {name} failed");
    built.push(name.to_owned());
    ponte_testbed::binary(name)
}

/// Moves `bytes` from `a` to `b` on one unidirectional stream and returns how long it took,
/// from opening the stream until the writer saw everything acknowledged.
pub async fn stream_bytes(a: &quinn::Connection, b: &quinn::Connection, bytes: usize) -> Duration {
    let start = Instant::now();
    let a = a.clone();
    let writer = tokio::spawn(async move {
        let chunk = vec![0x5au8; 256 * 1024];
        let mut s = a.open_uni().await.expect("open stream");
        let mut left = bytes;
        while left > 0 {
            let n = left.min(chunk.len());
            s.write_all(&chunk[..n]).await.expect("write");
            left -= n;
        }
        s.finish().expect("finish");
        let _ = s.stopped().await;
    });
    let mut r = b.accept_uni().await.expect("accept stream");
    let mut got = 0usize;
    while let Some(c) = r.read_chunk(1 << 20, true).await.expect("read") {
        got += c.bytes.len();
    }
    writer.await.expect("writer");
    assert_eq!(got, bytes, "every byte arrives");
    start.elapsed()
}

/// Starts the release relay binary on a loopback port with no bandwidth limits; returns it with
/// its address and certificate fingerprint.
pub fn start_relay(
    data_dir: &std::path::Path,
) -> anyhow::Result<(
    ponte_testbed::Running,
    std::net::SocketAddr,
    ponte_transport::tls::CertFingerprint,
)> {
    start_relay_with(data_dir, &[])
}

/// [`start_relay`] with `extra` arguments.
pub fn start_relay_with(
    data_dir: &std::path::Path,
    extra: &[&str],
) -> anyhow::Result<(
    ponte_testbed::Running,
    std::net::SocketAddr,
    ponte_transport::tls::CertFingerprint,
)> {
    let mut relay = std::process::Command::new(program("ponte-relay"));
    relay
        .args([
            "--listen",
            "127.0.0.1:0",
            "--session-bandwidth",
            "0",
            "--total-bandwidth",
            "0",
        ])
        .arg("--data-dir")
        .arg(data_dir)
        .args(extra);
    let relay = ponte_testbed::Running::start(relay);
    let addr = relay
        .line_after("listening on ", Duration::from_secs(30))
        .parse()?;
    let fp = relay
        .line_after("fingerprint: ", Duration::from_secs(30))
        .parse()?;
    Ok((relay, addr, fp))
}
