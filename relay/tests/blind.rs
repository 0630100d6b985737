//! The relay is blind by construction: what it links cannot open a session. Its normal
//! dependency graph (no dev-dependencies) holds ponte-wire, never the end-to-end layer.
//!
//! As this package's integration test, it is also what makes `cargo test` build the
//! `ponte-relay` program before any test runs: the end-to-end tests (tests/) start it.

use std::process::Command;

#[test]
fn the_relay_links_no_end_to_end_code() {
    let out = Command::new(env!("CARGO"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "tree",
            "--offline",
            "--locked",
            "-p",
            "ponte-relay",
            "-e",
            "normal",
        ])
        .args(["--prefix", "none", "--format", "{p}"])
        .output()
        .expect("cargo tree runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let tree = String::from_utf8(out.stdout).unwrap();
    let crates: Vec<&str> = tree.lines().filter_map(|l| l.split_whitespace().next()).collect();
    assert!(
        crates.contains(&"ponte-wire"),
        "the relay speaks the wire: {crates:?}"
    );
    for forbidden in ["ponte-e2e", "ponte-session", "spake2", "aes-gcm", "hkdf", "rsa"] {
        assert!(!crates.contains(&forbidden), "the relay links {forbidden}");
    }
}
