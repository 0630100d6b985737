//! The testbed of Ponte's end-to-end tests and benchmarks: what they run the real programs in.
//!
//! - [`binary`] and [`Running`]: Ponte's programs, as cargo built them, started as processes
//!   whose output the caller reads line by line;
//! - [`RedisServer`]: a redis-server of the caller's own, for relay clusters;
//! - [`Xvfb`]: an X display of the caller's own, for screen sharing;
//! - [`WaylandSession`]: a headless GNOME Wayland session of the caller's own, with the
//!   screen-sharing portal, and the test's [`wayland::Customer`] in it;
//! - [`link`]: an emulated network link (rate, delay, jitter, loss) in front of a relay.
//!
//! It holds no Ponte code, so a benchmark measures the programs as they ship.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

pub mod link;
mod program;
mod redis;
mod sources;
pub mod wayland;
mod xvfb;

pub use program::{LINE_WAIT, Running, binary};
pub use redis::RedisServer;
pub use wayland::WaylandSession;
pub use xvfb::Xvfb;

/// A free TCP port on 127.0.0.1 (for endpoints that need a fixed address up front).
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A free UDP port on loopback, for a relay node that must know its address before it starts.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
