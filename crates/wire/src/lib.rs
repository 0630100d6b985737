//! # ponte-wire
//!
//! What Ponte's relay sees and speaks, sans-IO: nothing here touches a socket or a clock, and
//! nothing here can open an end-to-end session — the relay links only this crate, so its
//! dependency graph shows it holds no session cryptography (ponte-e2e has that).
//!
//! - [`ids`]: session IDs, one-time codes and device tags.
//! - [`frame`] and [`rendezvous`]: the length-bounded, versioned messages agents and viewers
//!   exchange with the relay, and [`credential_text`], the text form of an operator's assistant
//!   credential.
//! - [`device`]: a quick-access device's tag and the proof that an agent holds its key.
//! - [`text`]: [`PeerText`], the one type every string from the other side travels in, shown
//!   only in an inert, escaped form.
//! - [`validated`]: [`validated_string!`], the newtype of strings that exist only checked
//!   ([`rendezvous::Ticket`], [`rendezvous::NodeAddress`], the relay's node names).
//!
//! docs/PROTOCOL.md in the repository is the normative wire specification.

#![forbid(unsafe_code)]

pub mod credential_text;
pub mod device;
pub mod frame;
pub mod ids;
pub mod rendezvous;
pub mod text;
pub mod validated;

pub use ids::{DeviceTag, OneTimeCode, ParseIdError, SessionId, os_rng};
pub use text::PeerText;

/// Prefix of every label the protocol feeds to SHA-256, HKDF or a signature.
pub const LABEL_PREFIX: &str = "ponte/1 ";
