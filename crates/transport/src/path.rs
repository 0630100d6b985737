//! A client's path to the relay going silent, and the way out: the connection moves to a fresh
//! UDP socket — a new local port, so a NAT makes a new mapping, on whatever interface the system
//! routes through now — and QUIC migrates to it (the relay accepts migration). A Wi-Fi that
//! came back, a laptop that moved to its phone's hotspot or a NAT that forgot the mapping is
//! then a pause, not the end of the session.
//!
//! [`Silence`] decides (sans IO); [`watch`] drives it for one connection.

use std::time::{Duration, Instant};

/// How often a client sends a keep-alive, which the relay acknowledges at once: an idle
/// session still hears from the relay every second, at one packet each way.
pub const KEEP_ALIVE: Duration = Duration::from_secs(1);

/// How long the path may be silent before the client moves to a new socket (two keep-alives
/// and a half unanswered), and again after each move while it stays silent.
pub const SILENCE: Duration = Duration::from_millis(2500);

/// How often the driver looks.
const LOOK: Duration = Duration::from_millis(250);

/// When to move to a new socket, from what the connection has received.
#[derive(Debug, Clone)]
pub struct Silence {
    received: u64,
    /// When something last arrived, or the client last moved.
    since: Instant,
}

impl Silence {
    /// Starts listening at `now`.
    pub fn new(now: Instant) -> Silence {
        Silence {
            received: 0,
            since: now,
        }
    }

    /// `received`: the datagrams the connection has received so far. Whether to move to a new
    /// socket now.
    pub fn observe(&mut self, received: u64, now: Instant) -> bool {
        if received != self.received {
            self.received = received;
            self.since = now;
            return false;
        }
        if now.saturating_duration_since(self.since) < SILENCE {
            return false;
        }
        self.since = now;
        true
    }
}

/// Watches `connection` until it closes or the returned guard is dropped, and moves `endpoint`
/// to a fresh socket whenever the path went silent for [`SILENCE`].
pub fn watch(endpoint: quinn::Endpoint, connection: quinn::Connection) -> Watching {
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let mut silence = Silence::new(Instant::now());
        let mut look = tokio::time::interval(LOOK);
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                _ = connection.closed() => break,
                _ = look.tick() => {}
            }
            if !silence.observe(connection.stats().udp_rx.datagrams, Instant::now()) {
                continue;
            }
            let any = match endpoint.local_addr() {
                Ok(a) if a.is_ipv6() => std::net::Ipv6Addr::UNSPECIFIED.into(),
                _ => std::net::IpAddr::from(std::net::Ipv4Addr::UNSPECIFIED),
            };
            match std::net::UdpSocket::bind((any, 0)).and_then(|s| endpoint.rebind(s)) {
                Ok(()) => tracing::info!(
                    "no answer from the relay for {} s: moved to a new local port",
                    SILENCE.as_secs_f32()
                ),
                Err(e) => tracing::warn!("moving to a new local port: {e}"),
            }
        }
    });
    Watching { _stop: stop }
}

/// Stops its [`watch`] when dropped.
#[derive(Debug)]
pub struct Watching {
    _stop: tokio::sync::oneshot::Sender<()>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silent_path_moves_after_the_silence_and_again_while_it_stays_silent() {
        let t = Instant::now();
        let at = |ms| t + Duration::from_millis(ms);
        let mut s = Silence::new(t);
        assert!(!s.observe(0, at(2000)), "not yet");
        assert!(s.observe(0, at(2500)), "silent for 2.5 s");
        assert!(!s.observe(0, at(4000)), "not again at once");
        assert!(s.observe(0, at(5000)), "again after another 2.5 s");
        // Heard from: the clock starts over.
        assert!(!s.observe(3, at(5100)));
        assert!(!s.observe(3, at(7500)));
        assert!(s.observe(3, at(7600)));
    }

    #[test]
    fn a_path_that_answers_never_moves() {
        let t = Instant::now();
        let mut s = Silence::new(t);
        for second in 1..100u64 {
            assert!(!s.observe(second, t + Duration::from_secs(second)));
        }
    }
}
