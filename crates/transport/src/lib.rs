//! # ponte-transport
//!
//! What the relay, the agent and the viewer share below the end-to-end layer: QUIC, the relay
//! line, credentials, owner-only files and pacing.
//!
//! - [`tls`]: quinn/rustls configuration with one crypto provider (aws-lc-rs), relay
//!   certificates verified by CA or pinned by SHA-256 fingerprint.
//! - [`framed`]: reading and writing [`ponte_wire::frame`] messages on quinn streams.
//! - [`client`]: an agent's or viewer's control line to the relay (register, join, events).
//! - [`path`]: a client's path to the relay going silent, and the move to a fresh socket.
//! - [`credential`]: assistant credentials (Ed25519), their proofs and their verification.
//! - [`private_file`]: files only their owner may read, for the keys and records of all three
//!   programs (the relay's keys and accounts, the customer's opt-ins and logs, the assistant's
//!   identity and address book).
//! - [`bucket`]: the token bucket that paces what peers send (joins, bytes, chat).
//!
//! It depends on ponte-wire only, never on ponte-e2e: the relay builds on it.

#![forbid(unsafe_code)]

pub mod bucket;
pub mod client;
pub mod credential;
pub mod framed;
pub mod path;
#[cfg(unix)]
pub mod private_file;
pub mod tls;

/// ALPN protocol name of Ponte's QUIC connections.
pub const ALPN: &[u8] = b"ponte/1";

/// Default UDP port of a relay.
pub const DEFAULT_PORT: u16 = 4433;
