//! # ponte-protocol
//!
//! The sans-IO core of Ponte, an end-to-end encrypted remote-assistance system. Nothing here
//! touches a socket or a clock: state machines take bytes, messages and the current time, and
//! return what to send. The async drivers in the agent, viewer and relay are thin shells
//! around these types.
//!
//! - [`ids`]: session IDs and one-time codes.
//! - [`frame`] and [`rendezvous`]: the length-bounded, versioned messages agents and viewers
//!   exchange with the relay, and [`credential`], the text form of an operator's assistant
//!   credential. Always built.
//! - [`text`]: [`PeerText`], the one type every string from the other side travels in, shown
//!   only in an inert, escaped form.
//! - With the `e2e` feature (default, and off in the relay): [`handshake`] (SPAKE2 + X25519,
//!   key confirmation, assistant identity), [`key_handshake`] (quick access: the
//!   handshake authenticated by the customer's [`device`] key and the assistant's key instead
//!   of a code), [`key_schedule`], [`identity`] (RSA-PSS keys and
//!   organisation certificates), [`record`] (the AES-256-GCM record layer), [`session`]
//!   (per-stream keys), [`cipher`] (the AES-256-GCM backend seam) and [`app`] (the
//!   application messages inside a session) with [`screen`] (screen sharing and input).
//!
//! docs/PROTOCOL.md in the repository is the normative wire specification.

#![forbid(unsafe_code)]

pub mod credential;
pub mod frame;
pub mod ids;
pub mod rendezvous;
pub mod text;

#[cfg(feature = "e2e")]
pub mod app;
#[cfg(feature = "e2e")]
pub mod cipher;
#[cfg(feature = "e2e")]
pub mod device;
#[cfg(feature = "e2e")]
pub mod handshake;
#[cfg(feature = "e2e")]
pub mod identity;
#[cfg(feature = "e2e")]
pub mod key_handshake;
#[cfg(feature = "e2e")]
pub mod key_schedule;
#[cfg(feature = "e2e")]
pub mod record;
#[cfg(feature = "e2e")]
mod role;
#[cfg(feature = "e2e")]
pub mod screen;
#[cfg(feature = "e2e")]
pub mod session;

pub use ids::{DeviceTag, OneTimeCode, ParseIdError, SessionId, os_rng};
#[cfg(feature = "e2e")]
pub use role::Role;
pub use text::PeerText;
