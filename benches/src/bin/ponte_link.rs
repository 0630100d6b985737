//! `ponte-link`: the link emulator on its own — a UDP forwarder that puts a customer's uplink
//! (rate, delay, jitter, loss, drop-tail queue) between a peer and the relay.
//!
//! `ponte-link --relay 127.0.0.1:4433 --link dsl` prints the address to give the agent as its
//! relay, then forwards until interrupted. The screen benchmark and tests use the same
//! emulator in-process (`ponte_testbed::link`).

#![allow(missing_docs)]

use std::net::SocketAddr;

use clap::Parser;
use ponte_testbed::link::{Link, Profile};

#[derive(Parser)]
#[command(about = "Emulates a customer's uplink between a Ponte peer and the relay")]
struct Args {
    /// The relay's UDP address.
    #[arg(long)]
    relay: SocketAddr,
    /// Link profile: dsl (5 Mbit/s up, 50 ms RTT), mobile (2 Mbit/s up, 80 ms RTT, 1 % loss)
    /// or lan (no limits).
    #[arg(long, default_value = "dsl")]
    link: String,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let profile = Profile::named(&args.link).ok_or_else(|| anyhow::anyhow!("unknown link {}", args.link))?;
    let link = Link::start(args.relay, profile)?;
    println!("{}", link.addr);
    loop {
        std::thread::park();
    }
}
