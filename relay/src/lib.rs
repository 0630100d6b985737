//! # ponte-relay
//!
//! The relay operators self-host: it pairs an agent and a viewer by session ID and forwards
//! their QUIC streams. It uses only the rendezvous part of ponte-protocol — the end-to-end
//! feature is off, so nothing in this crate could decrypt a session.

#![forbid(unsafe_code)]

pub mod bucket;
pub mod cert;
pub mod config;
pub mod forward;
pub mod metrics;
pub mod registry;
pub mod server;

pub use config::Config;
pub use server::Relay;
