//! Ponte's end-to-end tests: the real binaries on loopback (and Xvfb, Redis, PostgreSQL),
//! attacked the way a hostile assistant, agent or relay would. One test binary, one module per
//! area; `world`, `ocr` and `display` are what they share.

#![allow(clippy::unwrap_used)]

mod display;
mod ocr;
mod world;

mod cluster;
mod consent;
mod desktop;
mod ledger;
mod quick;
mod relay_binary;
mod screen;
mod screen_link;
mod session;
mod tamper;
mod window;
