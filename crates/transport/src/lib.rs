//! # ponte-transport
//!
//! The QUIC side of Ponte shared by the relay, the agent and the viewer:
//!
//! - [`tls`]: quinn/rustls configuration with one crypto provider (aws-lc-rs), relay
//!   certificates verified by CA or pinned by SHA-256 fingerprint.
//! - [`framed`]: reading and writing [`ponte_wire::frame`] messages on quinn streams.
//! - [`client`]: an agent's or viewer's control line to the relay (register, join, events).
//! - [`credential`]: assistant credentials (Ed25519), their proofs and their verification.
//! - [`bucket`]: the token bucket that paces what peers send (joins, bytes, chat).
//!
//! It depends on ponte-wire only, never on ponte-e2e: the relay builds on it.

#![forbid(unsafe_code)]

pub mod bucket;
pub mod client;
pub mod credential;
pub mod framed;
pub mod tls;

/// ALPN protocol name of Ponte's QUIC connections.
pub const ALPN: &[u8] = b"ponte/1";

/// Default UDP port of a relay.
pub const DEFAULT_PORT: u16 = 4433;
