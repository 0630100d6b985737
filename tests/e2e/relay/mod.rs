//! The relay on loopback: in this process with real quinn clients (pairing, forwarding,
//! refusals, limits, hostile raw-QUIC clients, quick access by device, clusters, scale), and
//! as the real `ponte-relay` binary.

mod assistants;
mod binary;
mod ciphertext;
mod cluster;
mod device;
mod hardening;
mod pairing;
mod scale;
