//! Benchmarks of Ponte live in `benches/` (criterion) and `src/bin/` (whole-program figures);
//! docs/BENCHMARKS.md records the figures and how they were measured.

use std::time::{Duration, Instant};

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
    ponte_tests::Running,
    std::net::SocketAddr,
    ponte_transport::tls::CertFingerprint,
)> {
    let mut relay = std::process::Command::new(ponte_tests::binary("ponte-relay"));
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
        .arg(data_dir);
    let relay = ponte_tests::Running::start(relay);
    let addr = relay
        .line_after("listening on ", Duration::from_secs(30))
        .parse()?;
    let fp = relay
        .line_after("fingerprint: ", Duration::from_secs(30))
        .parse()?;
    Ok((relay, addr, fp))
}
