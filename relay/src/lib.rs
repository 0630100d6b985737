//! # ponte-relay
//!
//! The relay operators self-host: it pairs an agent and a viewer by session ID and forwards
//! their QUIC streams, decides who may connect and join ([`admission`], [`assistants`]), bounds
//! what peers can make it hold ([`memory`]) and keeps a [`ledger`] of sessions. It uses only the
//! rendezvous part of ponte-protocol — the end-to-end feature is off, so nothing in this crate
//! could decrypt a session.

#![forbid(unsafe_code)]

pub mod admission;
pub mod assistants;
pub mod cert;
pub mod cluster;
pub mod config;
pub mod console;
pub mod directory;
pub mod forward;
pub mod ledger;
pub mod memory;
pub mod metrics;
pub mod registry;
pub mod server;
pub mod source;
#[cfg(feature = "test-tap")]
pub mod tap;

pub use config::Config;
pub use server::Relay;
