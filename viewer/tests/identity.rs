//! `ponte-viewer identity new`, the real program: an assistant's identity is the key its
//! customers already trust (they were shown its fingerprint), so creating one again keeps it
//! unless told to replace it, and the private key is the assistant's alone.
//!
//! As this package's integration test, it is also what makes `cargo test` build the
//! `ponte-viewer` program before any test runs: the end-to-end tests (tests/) start it.

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output};

/// `ponte-viewer identity new --name NAME --identity-dir DIR [--force]`, run to its end.
fn identity_new(home: &Path, name: &str, force: bool) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ponte-viewer"));
    cmd.args(["identity", "new", "--name", name, "--identity-dir"])
        .arg(home.join("identity"))
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"));
    if force {
        cmd.arg("--force");
    }
    cmd.output().unwrap()
}

/// The key fingerprint the program printed.
fn fingerprint(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().find_map(|l| l.strip_prefix("key fingerprint: "));
    line.unwrap_or_else(|| panic!("no fingerprint in {stdout}"))
        .to_owned()
}

#[test]
fn an_identity_is_replaced_only_when_asked_and_its_key_is_private() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("identity");
    let key = dir.join("assistant.key.pem");
    let first = identity_new(home.path(), "Alice", false);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the private key is the assistant's alone");
    let pem = std::fs::read(&key).unwrap();

    // Run again (by mistake, or by someone else at this desk): refused, nothing changed.
    let again = identity_new(home.path(), "Mallory", false);
    assert!(!again.status.success());
    let said = String::from_utf8_lossy(&again.stderr);
    assert!(
        said.contains("already exists") && said.contains("--force"),
        "{said}"
    );
    assert_eq!(
        std::fs::read(&key).unwrap(),
        pem,
        "the key customers trust is kept"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("assistant.name")).unwrap(),
        "Alice\n"
    );

    // Asked for: a new key, and the old key's certificate is gone (it would not match).
    std::fs::write(dir.join("assistant.cert.pem"), "a certificate of the old key").unwrap();
    let forced = identity_new(home.path(), "Alice", true);
    assert!(
        forced.status.success(),
        "{}",
        String::from_utf8_lossy(&forced.stderr)
    );
    assert_ne!(fingerprint(&forced), fingerprint(&first));
    assert_ne!(std::fs::read(&key).unwrap(), pem);
    assert!(!dir.join("assistant.cert.pem").exists());
}
