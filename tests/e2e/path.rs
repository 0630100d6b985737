//! The customer's path to the relay failing as real ones do, through the link emulator
//! (`ponte_testbed::link`) between the agent and the relay: a NAT that rebinds, so the relay
//! sees the customer's packets arrive from a new address, an address that is gone, and a few
//! seconds without network.
//! What must hold: none of them interrupts the session — a transfer under way completes with its
//! hash verified, the shell still answers.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ponte_session::files::Progress;
use ponte_testbed::link::{Direction, Link, Profile};

use crate::world::*;

/// A fast link (80 Mbit/s each way, 5 ms one way), so a transfer takes a second or two.
fn fast() -> Profile {
    let way = Direction::new(80.0, 5, 0, 0.0, 50);
    Profile { up: way, down: way }
}

/// An agent (`--allow download,terminal`) whose relay is reached through `link`, and the assistant in
/// its session.
async fn behind(w: &World, link: &Link) -> (ponte_testbed::Running, ponte_viewer::Viewer) {
    let fp = w.relay.as_ref().unwrap().fingerprint().to_string();
    let relay = link.addr.to_string();
    let args = [
        "--allow",
        "download,terminal",
        "--relay",
        &relay,
        "--fingerprint",
        &fp,
    ];
    let (agent, id, code) = w.agent(&args);
    let viewer = w.assistant(&id, &code).await;
    viewer.consent(WAIT).await.unwrap();
    (agent, viewer)
}

/// Runs `echo` on the customer's computer; what it printed.
async fn echo(viewer: &ponte_viewer::Viewer, word: &str) -> String {
    let mut out = Vec::new();
    let status = viewer
        .exec(&format!("echo {word}"), |_, data| out.extend_from_slice(data))
        .await
        .unwrap();
    assert_eq!(status, Some(0));
    String::from_utf8(out).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_nat_rebinding_in_the_middle_of_a_transfer_does_not_interrupt_the_session() {
    let w = World::new().await;
    let data: Vec<u8> = (0..16u32 << 20).map(|i| (i / 4093) as u8).collect();
    std::fs::write(w.path("agent-home/big.bin"), &data).unwrap();
    let link = Link::start(w.addr, fast()).unwrap();
    let (_agent, viewer) = behind(&w, &link).await;

    // Half-way through the download, the customer's NAT rebinds.
    let received = AtomicU64::new(0);
    let rebound = AtomicBool::new(false);
    let mut progress = |step| {
        if let Progress::Advanced(n) = step {
            let now = received.fetch_add(n, Ordering::SeqCst) + n;
            if now >= data.len() as u64 / 2 && !rebound.swap(true, Ordering::SeqCst) {
                link.rebind();
            }
        }
    };
    let local = w.path("big.bin");
    let totals = viewer.get("big.bin", &local, false, &mut progress).await.unwrap();
    assert!(
        rebound.load(Ordering::SeqCst),
        "the link rebound during the transfer"
    );
    assert_eq!(totals.bytes, data.len() as u64);
    assert!(std::fs::read(&local).unwrap() == data, "the file arrived whole");
    assert_eq!(echo(&viewer, "still-here").await, "still-here\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn five_seconds_without_network_do_not_end_the_session() {
    let w = World::new().await;
    let link = Link::start(w.addr, fast()).unwrap();
    let (_agent, viewer) = behind(&w, &link).await;
    assert_eq!(echo(&viewer, "before").await, "before\n");

    link.set_dark(true);
    tokio::time::sleep(Duration::from_secs(5)).await;
    link.set_dark(false);
    let back = Instant::now();
    assert_eq!(echo(&viewer, "after").await, "after\n");
    eprintln!(
        "the shell answered {:?} after the network came back",
        back.elapsed()
    );
    assert!(viewer.state().ended.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn when_the_customers_address_is_gone_the_agent_moves_to_a_new_one_within_seconds() {
    let w = World::new().await;
    let link = Link::start(w.addr, fast()).unwrap();
    let (_agent, viewer) = behind(&w, &link).await;
    assert_eq!(echo(&viewer, "before").await, "before\n");

    // The laptop left the Wi-Fi: its address is gone, the agent must send from a new one.
    link.lose_addresses();
    let lost = Instant::now();
    assert_eq!(echo(&viewer, "after").await, "after\n");
    let took = lost.elapsed();
    eprintln!("the shell answered {took:?} after the address was lost");
    // Well inside the 10 s after which a silent relay counts as lost.
    assert!(took < Duration::from_secs(6), "{took:?}");
    assert!(viewer.state().ended.is_none());
}
