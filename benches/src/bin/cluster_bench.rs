//! Relay cluster figures (docs/BENCHMARKS.md § Relay cluster), with real `ponte-relay`
//! processes and a redis-server of its own on loopback: pairings per second and relayed
//! throughput on one node vs spread over three (one run, as a ratio), join latency through
//! another node (redirect) vs the owning node, and Redis round trips per session.
//!
//! `cargo run --release -p ponte-benches --bin cluster-bench`

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;
use ponte_benches::program;
use ponte_testbed::{RedisServer, Running, free_tcp_port};
use ponte_transport::client::{Redirects, RelayClient};
use ponte_transport::tls::{self, CertFingerprint, RelayTrust};
use ponte_wire::rendezvous::RelayMessage;

struct Node {
    _running: Running,
    addr: SocketAddr,
    metrics: SocketAddr,
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

fn output(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output()?;
    anyhow::ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn node(dir: &Path, redis: &RedisServer, name: &str) -> anyhow::Result<Node> {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_udp_port()));
    let metrics = SocketAddr::from(([127, 0, 0, 1], free_tcp_port()));
    let certs = output(
        Command::new(program("ponte-relay"))
            .args([
                "cluster",
                "certify",
                "--node-name",
                name,
                "--public-addr",
                &addr.to_string(),
            ])
            .arg("--dir")
            .arg(dir),
    )?;
    let mut cmd = Command::new(program("ponte-relay"));
    cmd.args(["--listen", &addr.to_string(), "--data-dir"])
        .arg(dir.join(name))
        .args([
            "--cluster",
            &redis.url(),
            "--node-name",
            name,
            "--public-addr",
            &addr.to_string(),
        ])
        .args(["--metrics", &metrics.to_string(), "--ledger", "none"])
        // The bench is one source; it must not be rate-limited.
        .args(["--joins-per-minute", "6000000", "--join-burst", "1000000"])
        .args([
            "--registrations-per-minute",
            "6000000",
            "--registration-burst",
            "1000000",
        ])
        .args([
            "--max-waiting-per-source",
            "1000000",
            "--max-connections-per-source",
            "100000",
        ])
        .args(["--session-bandwidth", "0", "--total-bandwidth", "0"])
        .args(certs.split_whitespace());
    let running = Running::start(cmd);
    running.line_after("listening on ", Duration::from_secs(30));
    Ok(Node {
        _running: running,
        addr,
        metrics,
    })
}

fn scrape(addr: SocketAddr, name: &str) -> f64 {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return 0.0;
    };
    let _ = s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n");
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

async fn client(ep: &quinn::Endpoint, addr: SocketAddr, pin: CertFingerprint) -> anyhow::Result<RelayClient> {
    let (config, seen) = tls::client_config(
        &RelayTrust::Pinned(pin),
        tls::transport_config(Duration::from_secs(30)),
    )?;
    let mut c = RelayClient::connect(ep, addr, "ponte-relay", config.clone(), &seen).await?;
    c.follow_redirects(Redirects {
        endpoint: ep.clone(),
        config,
    });
    Ok(c)
}

/// One pairing: agent on `at`, viewer joining through `via`; returns the join latency.
async fn pair(
    ep: &quinn::Endpoint,
    at: SocketAddr,
    via: SocketAddr,
    pin: CertFingerprint,
) -> anyhow::Result<(RelayClient, RelayClient, Duration)> {
    let mut agent = client(ep, at, pin).await?;
    let (id, _) = agent.register().await?;
    let started = Instant::now();
    let mut viewer = client(ep, via, pin).await?;
    viewer.join(id).await?;
    let took = started.elapsed();
    anyhow::ensure!(agent.next().await? == RelayMessage::Paired, "agent not paired");
    Ok((agent, viewer, took))
}

/// Pairings per second with `concurrency` workers, worker `i` using node `nodes[i % n]`.
async fn pairings_per_sec(nodes: &[SocketAddr], pin: CertFingerprint, total: usize) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    let workers = 16;
    for w in 0..workers {
        let node = nodes[w % nodes.len()];
        tasks.push(tokio::spawn(async move {
            let ep = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
            for _ in 0..total / workers {
                let (a, v, _) = pair(&ep, node, node, pin).await?;
                a.connection().close(0u32.into(), b"");
                v.connection().close(0u32.into(), b"");
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok((total / workers * workers) as f64 / started.elapsed().as_secs_f64())
}

/// Aggregate relayed MB/s of `sessions` sessions each sending `mb` MiB viewer → agent.
async fn throughput(
    nodes: &[SocketAddr],
    pin: CertFingerprint,
    sessions: usize,
    mb: usize,
) -> anyhow::Result<f64> {
    let ep = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
    let mut pairs = Vec::new();
    for i in 0..sessions {
        let node = nodes[i % nodes.len()];
        let (a, v, _) = pair(&ep, node, node, pin).await?;
        pairs.push((a, v));
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (a, v) in pairs {
        tasks.push(tokio::spawn(async move {
            let (mut send, _r) = v.connection().open_bi().await?;
            let chunk = vec![7u8; 1 << 20];
            let writer = async {
                for _ in 0..mb {
                    send.write_all(&chunk).await?;
                }
                send.finish()?;
                Ok::<_, anyhow::Error>(())
            };
            let reader = async {
                let (_s, mut recv) = a.connection().accept_bi().await?;
                let mut n = 0usize;
                let mut buf = vec![0u8; 1 << 16];
                while let Some(k) = recv.read(&mut buf).await? {
                    n += k;
                }
                Ok::<_, anyhow::Error>(n)
            };
            let (w, r) = tokio::join!(writer, reader);
            w?;
            let n = r?;
            drop((a, v));
            Ok::<_, anyhow::Error>(n)
        }));
    }
    let mut bytes = 0;
    for t in tasks {
        bytes += t.await??;
    }
    Ok(bytes as f64 / started.elapsed().as_secs_f64() / 1e6)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir()?;
    let init = output(
        Command::new(program("ponte-relay"))
            .args(["cluster", "init", "--dir"])
            .arg(dir.path()),
    )?;
    let pin: CertFingerprint = init
        .trim()
        .strip_prefix("cluster fingerprint: ")
        .context("no fingerprint")?
        .parse()?;
    let nodes = [
        node(dir.path(), &redis, "a")?,
        node(dir.path(), &redis, "b")?,
        node(dir.path(), &redis, "c")?,
    ];
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();
    // Warm up.
    pairings_per_sec(&addrs, pin, 48).await?;

    let one = pairings_per_sec(&addrs[..1], pin, 800).await?;
    let three = pairings_per_sec(&addrs, pin, 800).await?;
    println!(
        "pairings/s: one node {one:.0}, three nodes {three:.0} (ratio {:.2})",
        three / one
    );

    let t1 = throughput(&addrs[..1], pin, 6, 64).await?;
    let t3 = throughput(&addrs, pin, 6, 64).await?;
    println!(
        "relayed MB/s (6 sessions x 64 MiB): one node {t1:.0}, three nodes {t3:.0} (ratio {:.2})",
        t3 / t1
    );

    let ep = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
    let mut same = Vec::new();
    let mut cross = Vec::new();
    for i in 0..200 {
        let (a, v, took) = pair(&ep, addrs[0], addrs[0], pin).await?;
        same.push(took);
        drop((a, v));
        let (a, v, took) = pair(&ep, addrs[0], addrs[1 + i % 2], pin).await?;
        cross.push(took);
        drop((a, v));
    }
    same.sort();
    cross.sort();
    println!(
        "join latency (connect + join to Paired, 200 each): same node p50 {:?} p99 {:?}; through another node (redirect) p50 {:?} p99 {:?}",
        percentile(&same, 0.5),
        percentile(&same, 0.99),
        percentile(&cross, 0.5),
        percentile(&cross, 0.99)
    );

    // Redis round trips per session: idle heartbeat rate first, then a batch of sessions.
    let ops = || {
        nodes
            .iter()
            .map(|n| scrape(n.metrics, "ponte_relay_cluster_operations_total"))
            .sum::<f64>()
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = ops();
    let idle = Instant::now();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let heartbeat_rate = (ops() - before) / idle.elapsed().as_secs_f64();
    let sessions = 300;
    let before = ops();
    let started = Instant::now();
    for i in 0..sessions {
        let (a, v, _) = pair(&ep, addrs[i % 3], addrs[(i + 1) % 3], pin).await?;
        a.connection().close(0u32.into(), b"");
        v.connection().close(0u32.into(), b"");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let spent = ops() - before - heartbeat_rate * started.elapsed().as_secs_f64();
    println!(
        "Redis round trips per session (register, cross-node join, end): {:.1}; heartbeats: {heartbeat_rate:.1}/s for 3 nodes",
        spent / sessions as f64
    );
    Ok(())
}
