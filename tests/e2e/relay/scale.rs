//! One relay process with 1,000 concurrent paired sessions, each verified end to end, and
//! memory that stays bounded and is given back.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use ponte_tests::*;
use ponte_wire::rendezvous::RelayMessage;
use tokio::sync::Semaphore;

const SESSIONS: usize = 1000;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_sessions_each_verified() {
    let r = Arc::new(
        relay_with(|c| {
            c.registry.waiting_per_source = SESSIONS as u32;
            c.registry.join_burst = SESSIONS as f64;
            c.registry.register_burst = SESSIONS as f64;
            c.admission.per_source = SESSIONS as u32;
            c.buffers.per_source = u64::MAX;
            c.buffers.total = u64::MAX;
        })
        .await,
    );
    let endpoints: Vec<quinn::Endpoint> = (0..4).map(|i| endpoint(20 + i)).collect();
    let before = rss_kib();
    let setup = Arc::new(Semaphore::new(64));
    let mut tasks = Vec::new();
    for n in 0..SESSIONS {
        let r = r.clone();
        let agent_ep = endpoints[n % 4].clone();
        let viewer_ep = endpoints[(n + 1) % 4].clone();
        let setup = setup.clone();
        tasks.push(tokio::spawn(async move {
            let permit = setup.acquire_owned().await.unwrap();
            let mut agent = r.connect_from(&agent_ep).await.unwrap();
            let (id, _) = agent.register().await.unwrap();
            let mut viewer = r.connect_from(&viewer_ep).await.unwrap();
            viewer.join(id).await.unwrap();
            assert_eq!(agent.next().await.unwrap(), RelayMessage::Paired);
            // Each session echoes its own payload through the relay.
            let data = payload(n as u64, 2048);
            let (mut send, mut recv) = agent.connection().open_bi().await.unwrap();
            send.write_all(&data).await.unwrap();
            send.finish().unwrap();
            let (mut vs, mut vr) = viewer.connection().accept_bi().await.unwrap();
            let got = vr.read_to_end(4096).await.unwrap();
            vs.write_all(&got).await.unwrap();
            vs.finish().unwrap();
            assert_eq!(recv.read_to_end(4096).await.unwrap(), data, "session {n}");
            drop(permit);
            (agent, viewer)
        }));
    }
    let mut sessions = Vec::new();
    for t in tasks {
        sessions.push(t.await.unwrap());
    }
    assert_eq!(r.relay.counts(), (0, SESSIONS), "all sessions paired at once");
    let grown = rss_kib().saturating_sub(before);
    let per_session = grown * 1024 / SESSIONS as u64;
    eprintln!(
        "RSS grew {grown} KiB for {SESSIONS} sessions: {per_session} bytes per session (relay and both clients)"
    );
    // Four QUIC connections per session live in this process (two client, two relay ends).
    assert!(per_session < 400 * 1024, "{per_session} bytes per session");

    // Close in batches: 2,000 CONNECTION_CLOSE packets at once would overflow the loopback
    // socket buffer and leave the dropped ones to the idle timeout.
    for batch in sessions.chunks(50) {
        for (agent, viewer) in batch {
            agent.connection().close(0u32.into(), b"done");
            viewer.connection().close(0u32.into(), b"done");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(sessions);
    eventually(20, || r.relay.counts() == (0, 0)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
}
