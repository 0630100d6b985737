//! Relay figures, all in one run so they compare on the same machine state:
//! throughput relayed vs direct, 64-byte round-trip latency relayed vs direct and vs direct through
//! a blind UDP forwarder (the least any middle hop costs) (p50/p99),
//! pairings per second, and the relay's resident memory per idle paired session.
//!
//! With `--baseline PATH` (a `ponte-relay` built from before the hardening of issue #10), the
//! same run also measures throughput and pairing rate through that relay, interleaved with
//! this one's, and prints the ratios.
//!
//! With `--memory`, only the pairing rate and the memory per idle paired session; with
//! `--relay PROGRAM`, that program is run as the relay (a wrapper that runs it under a heap
//! profiler, say: docs/BENCHMARKS.md has one).
//!
//! Run: `cargo run --release -p ponte-benches --bin relay-bench [-- --sessions 10000]
//! [--baseline PATH] [--memory] [--relay PROGRAM]`. The relays are real release binaries, each
//! in its own process.

#![allow(clippy::unwrap_used, missing_docs)]

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use ponte_benches::program;
use ponte_testbed::Running;
use ponte_transport::client::RelayClient;
use ponte_transport::tls::{self, CertFingerprint, RelayTrust};
use ponte_wire::rendezvous::RelayMessage;
use quinn::{Connection, Endpoint};
use tokio::sync::Semaphore;

const TRANSFER: usize = 1 << 30;
const ROUND_TRIPS: usize = 5000;

fn transport() -> quinn::TransportConfig {
    tls::transport_config(Duration::from_secs(60))
}

fn relay_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap_or(0)
}

struct Relay {
    running: Running,
    addr: SocketAddr,
    fp: CertFingerprint,
    _dir: tempfile::TempDir,
}

/// Starts a relay binary. Both kinds get the limits lifted that would stop one benchmark
/// client from opening thousands of sessions; the hardened one keeps its default windows,
/// Retry policy and (SQLite) ledger, which is what the comparison is about.
fn start_relay(program: &std::path::Path, hardened: bool) -> Relay {
    start_relay_with(program, hardened, &[])
}

fn start_relay_with(program: &std::path::Path, hardened: bool, extra: &[&str]) -> Relay {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(program);
    cmd.args(extra);
    if hardened {
        cmd.args([
            "--max-connections-per-source",
            "1000000",
            "--registration-burst",
            "1000000",
            "--registrations-per-minute",
            "100000000",
            "--max-buffered-mib",
            "100000000",
            "--max-buffered-per-source-mib",
            "100000000",
        ]);
    }
    cmd.args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .args([
            "--session-bandwidth",
            "0",
            "--total-bandwidth",
            "0",
            "--max-waiting-per-ip",
            "100000",
            "--max-waiting",
            "100000",
            "--join-burst",
            "1000000",
            "--joins-per-minute",
            "100000000",
            "--max-connections",
            "100000",
        ]);
    let running = Running::start(cmd);
    let addr = running
        .line_after("listening on ", Duration::from_secs(30))
        .parse()
        .unwrap();
    let fp = running
        .line_after("fingerprint: ", Duration::from_secs(30))
        .parse()
        .unwrap();
    Relay {
        running,
        addr,
        fp,
        _dir: dir,
    }
}

/// Where and how to reach the relay.
#[derive(Clone, Copy)]
struct Target {
    addr: SocketAddr,
    fp: CertFingerprint,
}

async fn client(ep: &Endpoint, relay: Target) -> RelayClient {
    let (config, seen) = tls::client_config(&RelayTrust::Pinned(relay.fp), transport()).unwrap();
    RelayClient::connect(ep, relay.addr, "ponte-relay", config, &seen)
        .await
        .unwrap()
}

async fn pair(ep: &Endpoint, relay: Target) -> (RelayClient, RelayClient) {
    let mut agent = client(ep, relay).await;
    let (id, _) = agent.register().await.unwrap();
    let mut viewer = client(ep, relay).await;
    viewer.join(id).await.unwrap();
    assert_eq!(agent.next().await.unwrap(), RelayMessage::Paired);
    (agent, viewer)
}

/// A direct quinn connection pair on loopback with the same TLS and transport settings.
/// Passes UDP datagrams between one client and `server` from the returned loopback address,
/// on two threads of its own (one per direction, blocking reads: no timer, no runtime) — the
/// least a middle hop can cost. The threads end with the process.
fn blind_forwarder(server: SocketAddr) -> SocketAddr {
    let front = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let back = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    back.connect(server).unwrap();
    let addr = front.local_addr().unwrap();
    let client = Arc::new(std::sync::OnceLock::<SocketAddr>::new());
    let (front2, back2, client2) = (
        front.try_clone().unwrap(),
        back.try_clone().unwrap(),
        client.clone(),
    );
    std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while let Ok((n, from)) = front.recv_from(&mut buf) {
            let _ = client.set(from);
            let _ = back.send(&buf[..n]);
        }
    });
    std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while let Ok(n) = back2.recv(&mut buf) {
            if let Some(to) = client2.get() {
                let _ = front2.send_to(&buf[..n], to);
            }
        }
    });
    addr
}

/// A direct quinn connection pair, with its endpoints; with `forwarded`, the client reaches the
/// server through a [`blind_forwarder`].
async fn direct(forwarded: bool) -> (Connection, Connection, Endpoint, Endpoint) {
    let cert = rcgen::generate_simple_self_signed(vec!["direct".into()]).unwrap();
    let fp = CertFingerprint::of(cert.cert.der());
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let server = tls::server_config(vec![cert.cert.der().clone()], key, transport()).unwrap();
    let server_ep = Endpoint::server(server, "127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = server_ep.local_addr().unwrap();
    let addr = if forwarded { blind_forwarder(addr) } else { addr };
    let client_ep = Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let (config, _) = tls::client_config(&RelayTrust::Pinned(fp), transport()).unwrap();
    let connecting = client_ep.connect_with(config, addr, "direct").unwrap();
    let (client, server) = tokio::join!(connecting, async {
        server_ep.accept().await.unwrap().await.unwrap()
    });
    (client.unwrap(), server, client_ep, server_ep)
}

/// Seconds to move TRANSFER bytes from `a` to `b` on a unidirectional stream.
async fn transfer(a: &Connection, b: &Connection) -> f64 {
    ponte_benches::stream_bytes(a, b, TRANSFER).await.as_secs_f64()
}

/// Round-trip times of 64-byte messages echoed by `b`.
async fn latencies(a: &Connection, b: &Connection) -> Vec<Duration> {
    let (mut send, mut recv) = a.open_bi().await.unwrap();
    send.write_all(&[0u8; 64]).await.unwrap();
    let (mut bs, mut br) = b.accept_bi().await.unwrap();
    let echo = tokio::spawn(async move {
        let mut buf = [0u8; 64];
        while br.read_exact(&mut buf).await.is_ok() {
            if bs.write_all(&buf).await.is_err() {
                break;
            }
        }
    });
    let mut buf = [0u8; 64];
    recv.read_exact(&mut buf).await.unwrap();
    let mut out = Vec::with_capacity(ROUND_TRIPS);
    for _ in 0..ROUND_TRIPS {
        let t = Instant::now();
        send.write_all(&buf).await.unwrap();
        recv.read_exact(&mut buf).await.unwrap();
        out.push(t.elapsed());
    }
    send.finish().unwrap();
    echo.abort();
    out.sort();
    out
}

/// Pairs `n` sessions (64 at a time) and returns them with the rate.
async fn pairings(endpoints: &[Endpoint], relay: Target, n: usize) -> (Vec<(RelayClient, RelayClient)>, f64) {
    let gate = Arc::new(Semaphore::new(64));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..n {
        let (gate, ep) = (gate.clone(), endpoints[i % endpoints.len()].clone());
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await.unwrap();
            pair(&ep, relay).await
        }));
    }
    let mut sessions = Vec::with_capacity(n);
    for t in tasks {
        sessions.push(t.await.unwrap());
    }
    (sessions, n as f64 / start.elapsed().as_secs_f64())
}

/// Closes sessions in batches (thousands of CONNECTION_CLOSE at once overflow loopback
/// buffers) and waits a moment for the relay to settle.
async fn close_all(sessions: Vec<(RelayClient, RelayClient)>) {
    for batch in sessions.chunks(50) {
        for (a, v) in batch {
            a.connection().close(0u32.into(), b"done");
            v.connection().close(0u32.into(), b"done");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Throughput, echo latency and pairing rate through the baseline relay and this one (with
/// and without its ledger), interleaved.
async fn before_after(baseline: &std::path::Path, ep: &Endpoint) -> anyhow::Result<()> {
    let relays = [
        start_relay(baseline, false),
        start_relay(&program("ponte-relay"), true),
        start_relay_with(&program("ponte-relay"), true, &["--ledger", "none"]),
    ];
    let targets: Vec<Target> = relays
        .iter()
        .map(|r| Target {
            addr: r.addr,
            fp: r.fp,
        })
        .collect();
    let mut best = [0f64; 3];
    let mut p99 = [f64::MAX; 3];
    let mut rates = [0f64; 3];
    let mut pairs = Vec::new();
    for t in &targets {
        pairs.push(pair(ep, *t).await);
    }
    for _ in 0..5 {
        for (i, (agent, viewer)) in pairs.iter().enumerate() {
            let mbps = TRANSFER as f64 / transfer(agent.connection(), viewer.connection()).await / 1e6;
            best[i] = best[i].max(mbps);
            let rtt = latencies(agent.connection(), viewer.connection()).await;
            p99[i] = p99[i].min(pct(&rtt, 0.99));
        }
    }
    drop(pairs);
    let endpoints: Vec<Endpoint> = (0..8)
        .map(|_| Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap())
        .collect();
    for _ in 0..3 {
        for (i, target) in targets.iter().enumerate() {
            let (sessions, rate) = pairings(&endpoints, *target, 1000).await;
            rates[i] = rates[i].max(rate);
            close_all(sessions).await;
        }
    }
    println!("## Before and after the hardening (issue #10), interleaved in one run\n");
    println!(
        "Throughput and echo p99: best of 5 runs each; pairings/s: best of 3 runs of 1,000 pairings, 64 at a time.\n"
    );
    println!("| relay | throughput | echo RTT p99 | pairings/s |\n|---|---|---|---|");
    let names = [
        "before hardening",
        "hardened, defaults (SQLite ledger)",
        "hardened, `--ledger none`",
    ];
    for i in 0..3 {
        println!(
            "| {} | {:.0} MB/s | {:.0} µs | {:.0} |",
            names[i], best[i], p99[i], rates[i]
        );
    }
    for i in 1..3 {
        println!(
            "| ratio {} / before | {:.1}% | {:.2}× | {:.1}% |",
            names[i],
            100.0 * best[i] / best[0],
            p99[i] / p99[0],
            100.0 * rates[i] / rates[0]
        );
    }
    println!();
    drop(relays);
    Ok(())
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e6
}

/// Throughput relayed vs direct (best of three, alternating) and echo latency.
async fn speed(ep: &Endpoint, relay: Target) {
    println!(
        "## Relay figures ({} MiB transfers, {ROUND_TRIPS} round trips)\n",
        TRANSFER >> 20
    );
    // Throughput: alternate relayed and direct runs, report the best of three each.
    let (agent, viewer) = pair(ep, relay).await;
    let (dc, ds, _e1, _e2) = direct(false).await;
    let mut relayed = Vec::new();
    let mut direct_t = Vec::new();
    for _ in 0..3 {
        relayed.push(transfer(agent.connection(), viewer.connection()).await);
        direct_t.push(transfer(&dc, &ds).await);
    }
    let mbps = |t: &[f64]| TRANSFER as f64 / t.iter().cloned().fold(f64::MAX, f64::min) / 1e6;
    let (r_mbps, d_mbps) = (mbps(&relayed), mbps(&direct_t));
    println!("| path | throughput | ratio |\n|---|---|---|");
    println!("| direct quinn | {d_mbps:.0} MB/s | 100% |");
    println!(
        "| through ponte-relay | {r_mbps:.0} MB/s | {:.0}% |\n",
        100.0 * r_mbps / d_mbps
    );

    let rl = latencies(agent.connection(), viewer.connection()).await;
    let dl = latencies(&dc, &ds).await;
    // The least any middle hop costs: a direct pair through a forwarder with no QUIC in it.
    let (fc, fs, _f1, _f2) = direct(true).await;
    let fl = latencies(&fc, &fs).await;
    println!("| path | RTT p50 | RTT p99 |\n|---|---|---|");
    println!(
        "| direct quinn | {:.0} µs | {:.0} µs |",
        pct(&dl, 0.5),
        pct(&dl, 0.99)
    );
    println!(
        "| direct quinn through a blind UDP forwarder | {:.0} µs | {:.0} µs |  (p99 ratio {:.2}×)",
        pct(&fl, 0.5),
        pct(&fl, 0.99),
        pct(&fl, 0.99) / pct(&dl, 0.99)
    );
    println!(
        "| through ponte-relay | {:.0} µs | {:.0} µs |  (p99 ratio {:.2}×)\n",
        pct(&rl, 0.5),
        pct(&rl, 0.99),
        pct(&rl, 0.99) / pct(&dl, 0.99)
    );
    drop((agent, viewer));
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let max_sessions: usize = args
        .iter()
        .position(|a| a == "--sessions")
        .and_then(|i| args.get(i + 1))
        .map(|s| s.parse().context("--sessions N"))
        .transpose()?
        .unwrap_or(10_000);
    let baseline = args
        .iter()
        .position(|a| a == "--baseline")
        .and_then(|i| args.get(i + 1))
        .map(std::path::PathBuf::from);
    let ep = Endpoint::client("127.0.0.1:0".parse().unwrap())?;
    if let Some(baseline) = &baseline {
        before_after(baseline, &ep).await?;
    }
    let relay_program = args
        .iter()
        .position(|a| a == "--relay")
        .and_then(|i| args.get(i + 1))
        .map_or_else(|| program("ponte-relay"), std::path::PathBuf::from);
    let running = start_relay(&relay_program, true);
    let pid = running.running.child.id();
    let relay = Target {
        addr: running.addr,
        fp: running.fp,
    };

    if !args.iter().any(|a| a == "--memory") {
        speed(&ep, relay).await;
    }

    // Pairings per second and memory per idle paired session.
    let base = relay_rss_kib(pid);
    let endpoints: Vec<Endpoint> = (0..8)
        .map(|_| Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap())
        .collect();
    let gate = Arc::new(Semaphore::new(64));
    let mut sessions = Vec::new();
    println!(
        "| paired idle sessions | pairings/s (this step) | relay RSS | relay bytes per session |\n|---|---|---|---|"
    );
    for target in [1000usize, max_sessions] {
        if target <= sessions.len() {
            continue;
        }
        let start = Instant::now();
        let mut tasks = Vec::new();
        for n in sessions.len()..target {
            let (gate, ep) = (gate.clone(), endpoints[n % endpoints.len()].clone());
            tasks.push(tokio::spawn(async move {
                let _permit = gate.acquire_owned().await.unwrap();
                pair(&ep, relay).await
            }));
        }
        let added = tasks.len();
        for t in tasks {
            sessions.push(t.await?);
        }
        let rate = added as f64 / start.elapsed().as_secs_f64();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let rss = relay_rss_kib(pid);
        println!(
            "| {target} | {rate:.0} | {} MiB | {} |",
            rss / 1024,
            (rss.saturating_sub(base)) * 1024 / target as u64
        );
    }
    drop(running);
    Ok(())
}
