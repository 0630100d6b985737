//! # ponte-e2e
//!
//! The end-to-end layer of Ponte, sans-IO: what agent and viewer share and the relay must never
//! hold. Nothing here touches a socket or a clock: state machines take bytes, messages and the
//! current time, and return what to send. The relay does not link this crate (its dependency
//! graph is tested); what it sees is in `ponte-wire`.
//!
//! - [`handshake`] (SPAKE2 + X25519, key confirmation, assistant identity) and
//!   [`key_handshake`] (quick access: the handshake authenticated by the customer's
//!   [`device_key`] and the assistant's key instead of a code), [`key_schedule`] and
//!   [`identity`] (RSA-PSS keys and organisation certificates).
//! - [`record`] (the AES-256-GCM record layer), [`session_keys`] (per-stream keys) and [`cipher`]
//!   (the AES-256-GCM backend seam).
//! - [`app`], the application messages inside a session, with [`screen`] (screen sharing and
//!   input).
//!
//! docs/PROTOCOL.md in the repository is the normative wire specification.

#![forbid(unsafe_code)]

pub mod app;
pub mod cipher;
pub mod device_key;
pub mod handshake;
pub mod identity;
pub mod key_handshake;
pub mod key_schedule;
pub mod record;
pub mod resume;
mod role;
pub mod screen;
pub mod session_keys;

pub use role::Role;

#[cfg(not(any(feature = "aws-lc", feature = "rustcrypto")))]
compile_error!("ponte-e2e needs an AES-256-GCM backend: the aws-lc or the rustcrypto feature");
