//! # ponte-viewer
//!
//! The assistant's side of a Ponte session as a library: [`client::join`] a customer's session
//! and use it through typed operations ([`client::Viewer`]: exec, shell, get, put, info,
//! screen, input, chat), each answered in a type of its own ([`reply`]); [`screen_client`] rebuilds
//! the customer's screen, [`window`] shows it, and [`identity`] keeps the assistant's key and
//! certificate. The `ponte-viewer` command, the end-to-end tests and the benchmarks are
//! front-ends of this library.
//!
//! The customer's computer may be hostile too: what it sends is shown only through
//! [`ponte_wire::PeerText`], files it sends are written link-safe and private, and every
//! wait is bounded.

#![forbid(unsafe_code)]

pub mod client;
pub mod devices;
pub mod identity;
pub mod overlay;
pub mod reply;
pub mod screen_client;
pub mod window;

pub use client::{
    DeviceJoinOptions, JoinOptions, Notice, QuickAccessReply, State, Terminal, Viewer, ViewerError, join,
    join_device,
};
pub use reply::TerminalOutput;
