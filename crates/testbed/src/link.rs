//! A link emulator: a UDP forwarder that puts a customer's uplink between a peer and the relay
//! — rate per direction, one-way delay, jitter, random loss and a drop-tail queue — with no
//! root and no netem (the kernel here has none). QUIC runs over it unchanged: the peer
//! connects to [`Link::addr`] instead of the relay.
//!
//! "Up" is from the peer that connects through the link (the agent, the customer's side) to
//! the relay; "down" is back.
//!
//! A link can also fail as real ones do: go dark (every packet lost, both ways) and come back
//! ([`Link::set_dark`]), rebind like a NAT that forgot its mapping, so the relay sees the
//! peer's packets come from a new address ([`Link::rebind`]), or lose the peer's address, so
//! only a peer that moves to a new one gets through again ([`Link::lose_addresses`]).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// One direction of a link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Direction {
    /// Bits per second (`None`: unlimited).
    pub rate_bps: Option<u64>,
    /// One-way delay.
    pub delay: Duration,
    /// Extra delay, uniformly random up to this (packets stay in order).
    pub jitter: Duration,
    /// Share of packets lost, 0 to 1.
    pub loss: f64,
    /// Bytes that may wait for the link before packets are dropped (drop-tail).
    pub queue_bytes: usize,
}

impl Direction {
    const UNLIMITED: Direction = Direction {
        rate_bps: None,
        delay: Duration::ZERO,
        jitter: Duration::ZERO,
        loss: 0.0,
        queue_bytes: usize::MAX,
    };

    /// A direction of `mbps` megabits per second, `delay_ms` one way, `loss` share lost, with
    /// a queue of `queue_ms` at that rate.
    pub fn new(mbps: f64, delay_ms: u64, jitter_ms: u64, loss: f64, queue_ms: u64) -> Direction {
        let rate = (mbps * 1e6) as u64;
        Direction {
            rate_bps: Some(rate),
            delay: Duration::from_millis(delay_ms),
            jitter: Duration::from_millis(jitter_ms),
            loss,
            queue_bytes: (rate / 8 * queue_ms / 1000) as usize,
        }
    }
}

/// Both directions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Profile {
    /// From the peer behind the link to the relay (the customer's uplink).
    pub up: Direction,
    /// From the relay to the peer.
    pub down: Direction,
}

impl Profile {
    /// DSL: 5 Mbit/s up, 25 Mbit/s down, 50 ms RTT, a modem queue of 200 ms.
    pub fn dsl() -> Profile {
        Profile {
            up: Direction::new(5.0, 25, 1, 0.0, 200),
            down: Direction::new(25.0, 25, 1, 0.0, 200),
        }
    }

    /// Mobile: 2 Mbit/s up, 10 Mbit/s down, 80 ms RTT with 10 ms of jitter, 1 % loss each
    /// way.
    pub fn mobile() -> Profile {
        Profile {
            up: Direction::new(2.0, 40, 10, 0.01, 200),
            down: Direction::new(10.0, 40, 10, 0.01, 200),
        }
    }

    /// No limits (the forwarder alone).
    pub fn lan() -> Profile {
        Profile {
            up: Direction::UNLIMITED,
            down: Direction::UNLIMITED,
        }
    }

    /// A profile by name: `dsl`, `mobile` or `lan`.
    pub fn named(name: &str) -> Option<Profile> {
        match name {
            "dsl" => Some(Profile::dsl()),
            "mobile" => Some(Profile::mobile()),
            "lan" => Some(Profile::lan()),
            _ => None,
        }
    }
}

/// What a link has carried.
#[derive(Debug, Default)]
pub struct Counters {
    /// Bytes delivered up.
    pub up_bytes: AtomicU64,
    /// Packets dropped up (loss or full queue).
    pub up_dropped: AtomicU64,
    /// Bytes delivered down.
    pub down_bytes: AtomicU64,
    /// Packets dropped down.
    pub down_dropped: AtomicU64,
}

/// A running link; it stops when dropped.
pub struct Link {
    /// Where peers connect instead of the relay.
    pub addr: SocketAddr,
    /// What it carried.
    pub counters: Arc<Counters>,
    /// Whether every packet is lost.
    dark: Arc<AtomicBool>,
    /// How many times the link rebound towards the relay.
    rebinds: watch::Sender<u64>,
    /// How many times the peers' addresses were lost.
    losses: watch::Sender<u64>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Link {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Most peers one link forwards for (each gets its own socket towards the relay).
const MAX_PEERS: usize = 16;

impl Link {
    /// Starts forwarding from a loopback port to `relay` under `profile`, on threads of its own.
    pub fn start(relay: SocketAddr, profile: Profile) -> std::io::Result<Link> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        // Bound here with std so that starting a link works inside a caller's runtime too
        // (blocking on our own runtime there would panic).
        let listen = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
        listen.set_nonblocking(true)?;
        let addr = listen.local_addr()?;
        let counters = Arc::new(Counters::default());
        let dark = Arc::new(AtomicBool::new(false));
        let (rebinds, rebound) = watch::channel(0);
        let (losses, lost) = watch::channel(0);
        let state = State {
            relay,
            profile,
            counters: counters.clone(),
            dark: dark.clone(),
            rebound,
            lost,
        };
        runtime.spawn(async move {
            match UdpSocket::from_std(listen) {
                Ok(listen) => serve(Arc::new(listen), state).await,
                Err(e) => eprintln!("link: cannot listen: {e}"),
            }
        });
        Ok(Link {
            addr,
            counters,
            dark,
            rebinds,
            losses,
            runtime: Some(runtime),
        })
    }

    /// Loses every packet, both ways, from now until called with `false`.
    pub fn set_dark(&self, dark: bool) {
        self.dark.store(dark, Ordering::SeqCst);
    }

    /// From now on every peer's packets reach the relay from a new address, and the old one
    /// hears nothing more (a NAT that rebound).
    pub fn rebind(&self) {
        self.rebinds.send_modify(|n| *n += 1);
    }

    /// The addresses the peers use now are gone (a laptop left the Wi-Fi): nothing sent from
    /// them, or to them, gets through any more; a peer that sends from a new address does.
    pub fn lose_addresses(&self) {
        self.losses.send_modify(|n| *n += 1);
    }
}

/// What the forwarding tasks share.
struct State {
    relay: SocketAddr,
    profile: Profile,
    counters: Arc<Counters>,
    dark: Arc<AtomicBool>,
    rebound: watch::Receiver<u64>,
    lost: watch::Receiver<u64>,
}

/// A peer's way up to the relay, made at the rebinding count `epoch`.
struct Peer {
    up: mpsc::UnboundedSender<Vec<u8>>,
    epoch: u64,
}

async fn serve(listen: Arc<UdpSocket>, mut state: State) {
    let mut peers: HashMap<SocketAddr, Peer> = HashMap::new();
    let mut gone = std::collections::HashSet::new();
    let mut buf = vec![0u8; 65_536];
    while let Ok((n, from)) = listen.recv_from(&mut buf).await {
        if state.lost.has_changed().unwrap_or(false) {
            state.lost.mark_unchanged();
            gone.extend(peers.drain().map(|(from, _)| from));
        }
        if state.dark.load(Ordering::SeqCst) || gone.contains(&from) {
            continue;
        }
        let epoch = *state.rebound.borrow();
        let known = peers.get(&from).is_some_and(|p| p.epoch == epoch);
        if !known {
            if !peers.contains_key(&from) && peers.len() >= MAX_PEERS {
                continue;
            }
            match connect(&listen, from, &state).await {
                Some(up) => {
                    peers.insert(from, Peer { up, epoch });
                }
                None => continue,
            }
        }
        if let Some(peer) = peers.get(&from) {
            let _ = peer.up.send(buf[..n].to_vec());
        }
    }
}

/// A new socket towards the relay for the peer at `from`, with the tasks that forward both
/// ways through it until the link rebinds; the way up.
async fn connect(
    listen: &Arc<UdpSocket>,
    from: SocketAddr,
    state: &State,
) -> Option<mpsc::UnboundedSender<Vec<u8>>> {
    let upstream = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.ok()?;
    upstream.connect(state.relay).await.ok()?;
    let upstream = Arc::new(upstream);
    let counters = &state.counters;
    let (up_tx, up_rx) = mpsc::unbounded_channel();
    let up = Shaper::new(state.profile.up, 1);
    tokio::spawn(forward(up_rx, up, upstream.clone(), None, counters.clone(), true));
    let (down_tx, down_rx) = mpsc::unbounded_channel();
    let down = Shaper::new(state.profile.down, 2);
    tokio::spawn(forward(
        down_rx,
        down,
        listen.clone(),
        Some(from),
        counters.clone(),
        false,
    ));
    let dark = state.dark.clone();
    let mut rebound = state.rebound.clone();
    rebound.mark_unchanged();
    let mut lost = state.lost.clone();
    lost.mark_unchanged();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_536];
        loop {
            tokio::select! {
                received = upstream.recv(&mut buf) => {
                    let Ok(n) = received else { break };
                    if !dark.load(Ordering::SeqCst) && down_tx.send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
                // The old mapping is gone: nothing more comes down through it.
                _ = rebound.changed() => break,
                _ = lost.changed() => break,
            }
        }
    });
    Some(up_tx)
}

/// One direction's state: when the link is next free, and a small random generator.
struct Shaper {
    dir: Direction,
    free_at: Instant,
    last_delivery: Instant,
    rng: u64,
}

impl Shaper {
    fn new(dir: Direction, seed: u64) -> Shaper {
        let now = Instant::now();
        Shaper {
            dir,
            free_at: now,
            last_delivery: now,
            rng: 0x9E37_79B9_7F4A_7C15 ^ seed,
        }
    }

    fn random(&mut self) -> f64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng >> 11) as f64 / (1u64 << 53) as f64
    }

    /// When a packet of `len` bytes arriving now is delivered, or `None` if it is dropped.
    fn admit(&mut self, len: usize, now: Instant) -> Option<Instant> {
        if self.dir.loss > 0.0 && self.random() < self.dir.loss {
            return None;
        }
        let mut at = now;
        if let Some(rate) = self.dir.rate_bps {
            let start = self.free_at.max(now);
            let waiting = (start - now).as_secs_f64() * rate as f64 / 8.0;
            if waiting > self.dir.queue_bytes as f64 {
                return None;
            }
            self.free_at = start + Duration::from_secs_f64(len as f64 * 8.0 / rate as f64);
            at = self.free_at;
        }
        let jitter = self.dir.jitter.mul_f64(self.random());
        // Jitter delays, it does not reorder (reordering would look like loss to QUIC).
        let delivery = (at + self.dir.delay + jitter).max(self.last_delivery);
        self.last_delivery = delivery;
        Some(delivery)
    }
}

async fn forward(
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
    mut shaper: Shaper,
    socket: Arc<UdpSocket>,
    to: Option<SocketAddr>,
    counters: Arc<Counters>,
    up: bool,
) {
    let (tx, mut delayed) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let drops = counters.clone();
    // Packets in flight on the wire are bounded by the rate times the delay.
    tokio::spawn(async move {
        let dropped = if up {
            &drops.up_dropped
        } else {
            &drops.down_dropped
        };
        while let Some(packet) = rx.recv().await {
            match shaper.admit(packet.len(), Instant::now()) {
                Some(at) => {
                    if tx.send((at, packet)).is_err() {
                        break;
                    }
                }
                None => {
                    dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    });
    let bytes = if up {
        &counters.up_bytes
    } else {
        &counters.down_bytes
    };
    while let Some((at, packet)) = delayed.recv().await {
        tokio::time::sleep_until(at).await;
        let sent = match to {
            Some(to) => socket.send_to(&packet, to).await,
            None => socket.send(&packet).await,
        };
        if sent.is_ok() {
            bytes.fetch_add(packet.len() as u64, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shaper_paces_delays_and_drops_at_the_tail() {
        let dir = Direction::new(8.0, 20, 0, 0.0, 10); // 1 MB/s, 10 KB of queue.
        let mut s = Shaper::new(dir, 1);
        let t = Instant::now();
        let first = s.admit(1000, t).unwrap();
        assert_eq!(
            first - t,
            Duration::from_millis(21),
            "1 ms on the wire, 20 ms of delay"
        );
        let second = s.admit(1000, t).unwrap();
        assert_eq!(second - first, Duration::from_millis(1));
        // The queue holds about 10 KB; past that, the tail drops.
        let admitted = (0..30).filter(|_| s.admit(1000, t).is_some()).count();
        assert_eq!(admitted, 9);
        // Once the queue drains, packets pass again.
        assert!(s.admit(1000, t + Duration::from_millis(40)).is_some());
    }

    #[test]
    fn loss_is_about_the_share_asked() {
        let mut s = Shaper::new(Direction::new(1000.0, 0, 0, 0.01, 1000), 7);
        let t = Instant::now();
        let lost = (0..100_000)
            .filter(|i| s.admit(100, t + Duration::from_millis(*i)).is_none())
            .count();
        assert!((700..1300).contains(&lost), "{lost} of 100000");
    }
}
