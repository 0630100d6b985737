//! The Debian packages (issue #28), built by cargo-deb from the programs this test run built:
//! what each holds; the relay's unit checked by `systemd-analyze verify`; all three installed
//! with `dpkg -i` on this machine; the relay started as the package's user with the unit's
//! environment, serving a session of the real agent and viewer; removed (its data kept), then
//! purged without a trace.
//!
//! Needs root, `cargo-deb`, `dpkg`, `systemd-analyze` and `desktop-file-validate`: `.ci/run`
//! installs them. It refuses to run where Ponte is installed for real. No systemd runs here,
//! so the unit is verified, not started by systemd: the relay is started the way the unit says
//! (its `User=`, `Environment=` and `ExecStart=`), without the unit's sandbox (system call
//! filter, address families, W^X), which only systemd applies.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use ponte_testbed::Running;

use crate::world::{WAIT, World, run_with_timeout, text};

const PACKAGES: [&str; 3] = ["ponte-relay", "ponte-agent", "ponte-viewer"];
const UNIT: &str = "ponte-relay.service";
/// The Debian revision of the packages this test builds: what marks an installed package as
/// one of its own, which it may purge (never a real installation's).
const REVISION: &str = "0ponte.test";

/// Runs `cmd` (at most two minutes) and checks it succeeded.
fn run(mut cmd: Command) -> Output {
    let shown = format!("{cmd:?}");
    cmd.stdin(std::process::Stdio::null());
    let out = run_with_timeout(cmd, Duration::from_secs(120));
    assert!(
        out.status.success(),
        "{shown}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

fn command(program: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args);
    cmd
}

/// Whether dpkg knows `package` (installed, or removed with its configuration left).
fn known(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|o| o.status.success() && !text(&o.stdout).contains("not-installed"))
}

fn purge_all() {
    let known: Vec<&str> = PACKAGES.into_iter().filter(|p| known(p)).collect();
    if !known.is_empty() {
        run(command("dpkg", &[&["--purge"], known.as_slice()].concat()));
    }
}

/// Purges this test's packages when dropped, also when the test fails half-way.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        purge_all();
    }
}

/// Refuses to run over a real installation of Ponte; purges what an earlier run of this test
/// left (killed before its clean-up).
fn claim_machine() -> Installed {
    for name in PACKAGES.into_iter().filter(|p| known(p)) {
        let version = Command::new("dpkg-query")
            .args(["-W", "-f=${Version}", name])
            .output()
            .unwrap();
        let version = text(&version.stdout);
        assert!(
            version.ends_with(REVISION),
            "{name} {version} is installed on this machine: this test installs and purges \
             Ponte's packages, so it does not run here (purge it first, or run elsewhere)"
        );
    }
    assert!(
        !Path::new("/var/lib/ponte-relay").exists() || known("ponte-relay"),
        "/var/lib/ponte-relay exists without the package: a relay's data is there"
    );
    purge_all();
    Installed
}

/// Builds the package of `name` from this test run's program into `out`; returns its path.
fn build(name: &str, out: &Path) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut cmd = Command::new(cargo);
    // The test run's (debug) programs: cargo-deb warns that it is meant for release builds.
    cmd.current_dir(workspace)
        .args([
            "deb",
            "-p",
            name,
            "--no-build",
            "--profile",
            "dev",
            "--fast",
            "-q",
            "--deb-revision",
            REVISION,
            "-o",
        ])
        .arg(out);
    // It prints the path of the package it made.
    PathBuf::from(text(&run(cmd).stdout).trim())
}

/// The paths a package holds (`./usr/bin/…`, without the leading dot).
fn contents(deb: &Path) -> Vec<String> {
    let out = run(command("dpkg-deb", &["--contents", deb.to_str().unwrap()]));
    text(&out.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .map(|path| path.trim_start_matches('.').to_owned())
        .collect()
}

fn field(deb: &Path, name: &str) -> String {
    let out = run(command("dpkg-deb", &["-f", deb.to_str().unwrap(), name]));
    text(&out.stdout).trim().to_owned()
}

/// The values of `key=` lines in a unit file.
fn unit_values(unit: &str, key: &str) -> Vec<String> {
    unit.lines()
        .filter_map(|line| line.strip_prefix(key)?.strip_prefix('='))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_packages_install_serve_a_session_and_purge_without_a_trace() {
    let installed = claim_machine();
    let out = tempfile::tempdir().unwrap();
    let debs: Vec<PathBuf> = PACKAGES.iter().map(|p| build(p, out.path())).collect();

    // What each package holds and says.
    let version = env!("CARGO_PKG_VERSION");
    let mut unit_path = None;
    for (deb, name) in debs.iter().zip(PACKAGES) {
        assert_eq!(field(deb, "Package"), name);
        let deb_version = field(deb, "Version");
        assert!(deb_version.starts_with(version), "{deb_version}");
        let paths = contents(deb);
        assert!(paths.contains(&format!("/usr/bin/{name}")), "{paths:?}");
        // Nothing of Ponte starts by itself: no autostart entry, no user unit.
        assert!(
            !paths
                .iter()
                .any(|p| p.contains("autostart") || p.contains("systemd/user")),
            "{paths:?}"
        );
        if name == "ponte-relay" {
            unit_path = paths
                .iter()
                .find(|p| p.ends_with(&format!("systemd/system/{UNIT}")))
                .cloned();
            assert!(
                paths.contains(&"/etc/ponte-relay/relay.toml".to_owned()),
                "{paths:?}"
            );
            let depends = field(deb, "Depends");
            assert!(
                depends.contains("adduser") && depends.contains("libc6"),
                "{depends}"
            );
            let conffiles = run(command("dpkg-deb", &["-I", deb.to_str().unwrap(), "conffiles"]));
            assert!(text(&conffiles.stdout).contains("/etc/ponte-relay/relay.toml"));
        } else {
            for menu in [
                format!("/usr/share/applications/{name}.desktop"),
                format!("/usr/share/icons/hicolor/scalable/apps/{name}.svg"),
            ] {
                assert!(paths.contains(&menu), "{paths:?}");
            }
        }
    }
    let unit_path = unit_path.expect("the relay's package holds its unit");

    // Installed here.
    run(command(
        "dpkg",
        &[
            &["-i"],
            &debs.iter().map(|d| d.to_str().unwrap()).collect::<Vec<_>>()[..],
        ]
        .concat(),
    ));
    let verify = run(command("systemd-analyze", &["verify", &unit_path]));
    assert!(
        text(&verify.stderr).trim().is_empty() && text(&verify.stdout).trim().is_empty(),
        "systemd-analyze verify: {}{}",
        text(&verify.stdout),
        text(&verify.stderr)
    );
    for name in ["ponte-agent", "ponte-viewer"] {
        run(command(
            "desktop-file-validate",
            &[&format!("/usr/share/applications/{name}.desktop")],
        ));
    }
    // Enabled (where systemd runs, also started): the link systemd follows at boot.
    let wanted = Path::new("/etc/systemd/system/multi-user.target.wants").join(UNIT);
    assert!(wanted.exists(), "{} is missing", wanted.display());
    let unit = std::fs::read_to_string(&unit_path).unwrap();
    let [user] = &unit_values(&unit, "User")[..] else {
        panic!("one User= in {unit}")
    };
    let uid = text(&run(command("id", &["-u", user])).stdout).trim().to_owned();
    let data = Path::new("/var/lib/ponte-relay");
    {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(data).unwrap();
        assert_eq!(meta.uid().to_string(), uid);
        assert_eq!(meta.mode() & 0o777, 0o700);
        // The settings may hold passwords: root's, readable by the relay's group only.
        let config = std::fs::metadata("/etc/ponte-relay/relay.toml").unwrap();
        let gid = text(&run(command("id", &["-g", user])).stdout).trim().to_owned();
        assert_eq!((config.uid(), config.gid().to_string()), (0, gid));
        assert_eq!(config.mode() & 0o777, 0o640);
    }

    // The relay as the unit starts it: its user, its environment, its command — listening on
    // loopback (as a drop-in would set it) for the test.
    let [exec] = &unit_values(&unit, "ExecStart")[..] else {
        panic!("one ExecStart= in {unit}")
    };
    let as_the_unit = |extra: &[&str]| {
        let mut cmd = Command::new("setpriv");
        cmd.args([
            "--reuid",
            user,
            "--regid",
            user,
            "--init-groups",
            "--",
            "env",
            "-i",
        ])
        .args(unit_values(&unit, "Environment"))
        .arg("PONTE_RELAY_LISTEN=127.0.0.1:0")
        .args(exec.split_whitespace())
        .args(extra);
        cmd
    };
    let mut relay = Running::start(as_the_unit(&[]));
    let addr = relay.line_after("listening on ", WAIT);
    let status = std::fs::read_to_string(format!("/proc/{}/status", relay.child.id())).unwrap();
    let uids = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uids.split_whitespace().skip(1).all(|u| u == uid),
        "the relay runs as {uids}, not {user} ({uid})"
    );

    // A session of the real agent and viewer through it.
    let mut w = World::new().await;
    w.addr = addr.parse().unwrap();
    let (mut agent, id, code) = w.agent(&["--allow", "all"]);
    let session = w.viewer(&id, &code, "exec echo served by the package\n");
    assert!(session.status.success(), "{}", text(&session.stderr));
    assert!(text(&session.stdout).contains("served by the package"));
    agent.wait(WAIT);
    relay.terminate(WAIT);
    // Its ledger, in the state directory, has the session.
    let ledger = run(as_the_unit(&["ledger", "export", "--format", "json"]));
    let rows: serde_json::Value = serde_json::from_slice(&ledger.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert!(
        rows.iter().any(|row| row["session_id"] == id.as_str()),
        "{rows:?}"
    );

    // Removed, the relay keeps its data; purged, nothing is left.
    run(command("dpkg", &["-r", "ponte-relay"]));
    assert!(!Path::new("/usr/bin/ponte-relay").exists());
    assert!(data.join("ledger.sqlite3").exists(), "removing deleted the data");
    drop(installed);
    for gone in [
        "/usr/bin/ponte-relay",
        "/usr/bin/ponte-agent",
        "/usr/bin/ponte-viewer",
        "/etc/ponte-relay",
        "/var/lib/ponte-relay",
        unit_path.as_str(),
        "/usr/share/applications/ponte-agent.desktop",
        "/usr/share/applications/ponte-viewer.desktop",
        "/usr/share/icons/hicolor/scalable/apps/ponte-agent.svg",
        "/usr/share/icons/hicolor/scalable/apps/ponte-viewer.svg",
        wanted.to_str().unwrap(),
        // The link that masks a removed package's unit, and deb-systemd-helper's records.
        "/etc/systemd/system/ponte-relay.service",
        "/var/lib/systemd/deb-systemd-helper-enabled/ponte-relay.service.dsh-also",
        "/var/lib/systemd/deb-systemd-helper-masked/ponte-relay.service",
    ] {
        // Not `exists`, which follows links: a dangling link is left too.
        assert!(
            std::fs::symlink_metadata(gone).is_err(),
            "{gone} is left after purging"
        );
    }
    let statoverride = Command::new("dpkg-statoverride")
        .args(["--list", "/etc/ponte-relay/relay.toml"])
        .output()
        .unwrap();
    assert!(
        !statoverride.status.success(),
        "the settings' owner override is left"
    );
    for database in ["passwd", "group"] {
        let entry = Command::new("getent").args([database, user]).output().unwrap();
        assert!(!entry.status.success(), "the {database} entry {user} is left");
    }
    for name in PACKAGES {
        assert!(!known(name), "dpkg still knows {name}");
    }
}
