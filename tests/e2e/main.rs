//! Ponte's end-to-end tests: the real binaries on loopback (and Xvfb, Redis, PostgreSQL),
//! attacked the way a hostile assistant, agent or relay would, and the relay with real QUIC
//! clients (`relay`). One test binary, one module per area; `world`, `ocr` and `display` are
//! what they share.
//!
//! `cargo test --workspace` builds the programs these tests start before running any;
//! `ponte_testbed::binary` refuses a missing or stale one. One area, e.g. `quick`:
//!
//! ```sh
//! cargo build --workspace --bins --test e2e && cargo test --workspace --bins --test e2e -- quick::
//! ```

#![allow(clippy::unwrap_used)]

mod display;
mod ocr;
mod world;

mod app;
mod cluster;
mod consent;
mod console;
mod desktop;
mod ledger;
mod package;
mod path;
mod quick;
mod relay;
mod screen;
mod screen_link;
mod session;
mod tamper;
mod wayland;
mod window;
