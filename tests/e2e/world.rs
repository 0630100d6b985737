//! The world of an end-to-end test: an in-process relay with a tap on every forwarded byte,
//! private home/config/data directories, and the real agent and viewer binaries.

#![allow(clippy::unwrap_used, dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ponte_relay::tap::Tap;
use ponte_relay::{Config, Relay};
use ponte_testbed::{Running, binary};
use sha2::{Digest, Sha256};

pub const WAIT: Duration = Duration::from_secs(60);

/// One test's world: a relay, and private home/config/data directories for the programs.
pub struct World {
    pub relay: Option<Relay>,
    pub addr: std::net::SocketAddr,
    pub seen: Arc<Mutex<Vec<u8>>>,
    pub dir: tempfile::TempDir,
}

impl World {
    pub async fn new() -> World {
        World::start(None).await
    }

    /// A world whose relay passes what it forwards through `tap` — a relay that attacks the
    /// path — instead of recording it in `seen` (which then stays empty).
    pub async fn with_tap(tap: Tap) -> World {
        World::start(Some(tap)).await
    }

    async fn start(tap: Option<Tap>) -> World {
        let dir = tempfile::tempdir().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let tap_seen = seen.clone();
        let mut config = Config::new("127.0.0.1:0".parse().unwrap(), dir.path().join("relay"));
        config.tap =
            Some(tap.unwrap_or_else(|| {
                Tap::observe(move |bytes| tap_seen.lock().unwrap().extend_from_slice(bytes))
            }));
        let relay = Relay::start(config).await.unwrap();
        for d in ["home", "agent-home", "config", "data"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        let addr = relay.local_addr().unwrap();
        World {
            relay: Some(relay),
            addr,
            seen,
            dir,
        }
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// A command for one of Ponte's binaries in this world.
    pub fn command(&self, bin: &str) -> Command {
        self.program(binary(bin))
    }

    /// Runs `ponte-viewer ARGS` and checks it succeeded; returns its standard output.
    pub fn viewer_cli(&self, args: &[&str]) -> String {
        let mut cmd = self.command("ponte-viewer");
        cmd.args(args);
        let out = run_with_timeout(cmd, WAIT);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    }

    /// An assistant identity in `dir`, certified as `name` of `organisation` by the organisation
    /// key at `org` (created if missing); returns `--trust-org`'s argument for the organisation's
    /// public key, named `organisation` as the customer's trust names it.
    pub fn certified(&self, dir: &str, name: &str, org: &str, organisation: &str) -> String {
        let identity = self.path(dir);
        let identity_dir = identity.to_str().unwrap();
        self.viewer_cli(&["identity", "new", "--name", name, "--identity-dir", identity_dir]);
        let org = self.path(org);
        if !PathBuf::from(format!("{}.key.pem", org.display())).exists() {
            self.viewer_cli(&["org", "new", "--out", org.to_str().unwrap()]);
        }
        self.viewer_cli(&[
            "org",
            "certify",
            "--org-key",
            &format!("{}.key.pem", org.display()),
            "--assistant",
            identity.join("assistant.pub.pem").to_str().unwrap(),
            "--name",
            name,
            "--organisation",
            organisation,
            "--out",
            identity.join("assistant.cert.pem").to_str().unwrap(),
        ]);
        format!("{organisation}={}.pub.pem", org.display())
    }

    /// Any program with this world's home, config and data directories and relay.
    pub fn program(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("HOME", self.path("home"))
            .env("XDG_CONFIG_HOME", self.path("config"))
            .env("XDG_DATA_HOME", self.path("data"))
            .env("PONTE_RELAY", self.addr.to_string())
            // English, whatever the machine's locale; tests of other languages set their own.
            .env("LANG", "C.UTF-8")
            // A customer's time zone: logs and the window show local time with the date.
            .env("TZ", "Europe/Rome")
            .env_remove("LC_ALL")
            .env_remove("LC_MESSAGES")
            .env_remove("RUST_LOG");
        cmd
    }

    /// Starts an agent with `--json` and the given extra arguments; returns it with its ID
    /// and code.
    pub fn agent(&self, args: &[&str]) -> (Running, String, String) {
        self.start_agent(self.agent_command(args))
    }

    /// The command [`World::agent`] runs, to change before [`World::start_agent`].
    pub fn agent_command(&self, args: &[&str]) -> Command {
        let mut cmd = self.command("ponte-agent");
        cmd.arg("--json")
            .arg("--dir")
            .arg(self.path("agent-home"))
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    /// Starts an agent command made by [`World::agent_command`]; returns it with its ID and code.
    pub fn start_agent(&self, cmd: Command) -> (Running, String, String) {
        let agent = Running::start(cmd);
        let ready = agent.event("ready", WAIT);
        let first: serde_json::Value = serde_json::from_str(&agent.first_line().unwrap()).unwrap();
        assert_eq!(
            first["event"], "ready",
            "the first stdout line is the ready event"
        );
        let id = ready["session_id"].as_str().unwrap().to_owned();
        let code = ready["code"].as_str().unwrap().to_owned();
        (agent, id, code)
    }

    pub fn viewer(&self, id: &str, code: &str, batch: &str) -> Output {
        let file = self.path(&format!("batch-{}.txt", rand_suffix()));
        std::fs::write(&file, batch).unwrap();
        let mut cmd = self.command("ponte-viewer");
        cmd.args(["connect", id, "--code", code, "--batch"]).arg(&file);
        run_with_timeout(cmd, WAIT)
    }

    /// Joins the agent's session as an assistant through the viewer core (with the test
    /// vectors' assistant key) — the base of the tests' hostile viewers. Returns once the
    /// customer answered (or `consent` is false).
    pub async fn assistant(&self, id: &str, code: &str) -> ponte_viewer::Viewer {
        self.assistant_as(id, code, test_assistant()).await
    }

    /// [`World::assistant`] with these credentials.
    pub async fn assistant_as(
        &self,
        id: &str,
        code: &str,
        credentials: ponte_e2e::handshake::Credentials,
    ) -> ponte_viewer::Viewer {
        let (viewer, _) = ponte_viewer::join(self.join_options(id, code, credentials))
            .await
            .unwrap();
        viewer
    }

    /// What an assistant joining session `id` with `code` as `credentials` through the
    /// in-process relay passes to [`ponte_viewer::join`].
    pub fn join_options(
        &self,
        id: &str,
        code: &str,
        credentials: ponte_e2e::handshake::Credentials,
    ) -> ponte_viewer::JoinOptions {
        ponte_viewer::JoinOptions {
            relay: self.relay_options(),
            accept_new_fingerprint: false,
            session: id.parse().unwrap(),
            code: code.parse().unwrap(),
            credentials,
            extras: Default::default(),
        }
    }

    /// How the in-process relay is reached and pinned.
    pub fn relay_options(&self) -> ponte_session::connect::RelayOptions {
        ponte_session::connect::RelayOptions {
            address: self.addr.to_string(),
            fingerprint: Some(self.relay.as_ref().unwrap().fingerprint()),
            ca: None,
            known_relays: ponte_session::known_relays::KnownRelays::at(self.path("kr")),
        }
    }

    /// Starts an agent with its terminal UI, driven on stdin as the customer would; returns it
    /// with its ID and code.
    pub fn text_agent(&self, args: &[&str]) -> (Running, String, String) {
        self.text_agent_at(&binary("ponte-agent"), args)
    }

    /// [`World::text_agent`] with the agent program at `program` (a copy the customer runs
    /// from a folder of theirs).
    pub fn text_agent_at(&self, program: &Path, args: &[&str]) -> (Running, String, String) {
        start_text_agent(self.text_agent_command(program, args))
    }

    /// The command [`World::text_agent_at`] runs, to change before [`start_text_agent`].
    pub fn text_agent_command(&self, program: &Path, args: &[&str]) -> Command {
        let mut cmd = self.program(program);
        cmd.arg("--text");
        if !args.contains(&"--dir") {
            cmd.arg("--dir").arg(self.path("agent-home"));
        }
        cmd.args(args).stdin(Stdio::piped());
        cmd
    }

    pub fn relay_saw(&self, needle: &[u8]) -> bool {
        self.seen
            .lock()
            .unwrap()
            .windows(needle.len())
            .any(|w| w == needle)
    }
}

/// Starts a text agent (`ponte-agent --text`, say made by [`World::text_agent_command`]);
/// returns it with its ID and code as it shows them.
pub fn start_text_agent(cmd: Command) -> (Running, String, String) {
    let agent = Running::start(cmd);
    let shown = |label: &str| agent.expect(label).split(label).nth(1).unwrap().trim().to_owned();
    let (id, code) = (shown("Session ID:"), shown("Code:"));
    (agent, id, code)
}

/// The test vectors' assistant key, without a certificate (an UNVERIFIED assistant).
pub fn test_assistant() -> ponte_e2e::handshake::Credentials {
    let pem = include_str!("../../crates/e2e/tests/vectors/assistant.key.pem");
    ponte_e2e::handshake::Credentials {
        key: ponte_e2e::identity::PrivateKey::from_pem(pem).unwrap(),
        certificate: None,
    }
}

/// The PID printed as `bg=PID` by a command (the first `bg=` may be the terminal echoing it).
pub fn background_pid(output: &str) -> u32 {
    output
        .split("bg=")
        .filter_map(|s| s.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
        .next()
        .unwrap_or_else(|| panic!("no bg=PID in {output}"))
}

/// Waits up to 5 s for process `pid` to be gone.
pub async fn assert_gone(pid: u32) {
    for _ in 0..50 {
        if !Path::new(&format!("/proc/{pid}")).exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("background process {pid} outlived its terminal or command");
}

/// The customer's quick-access opt-ins as stored (none when the file is absent).
pub fn opt_ins(w: &World) -> Vec<serde_json::Value> {
    match std::fs::read_to_string(w.path("config/ponte/trusted.json")) {
        Ok(text) => serde_json::from_str::<serde_json::Value>(&text).unwrap()["entries"]
            .as_array()
            .unwrap()
            .clone(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("{e}"),
    }
}

/// Waits (at most 40 s) until the viewer's notices say the session is being resumed (`now`)
/// or was resumed (`!now`); panics if the session ends first.
pub async fn reconnecting(
    notices: &mut tokio::sync::mpsc::UnboundedReceiver<ponte_viewer::Notice>,
    now: bool,
) {
    let said = tokio::time::timeout(Duration::from_secs(40), async {
        loop {
            match notices.recv().await.unwrap() {
                ponte_viewer::Notice::Reconnecting(r) if r == now => return,
                ponte_viewer::Notice::Ended(why) => panic!("the session ended: {why}"),
                _ => {}
            }
        }
    });
    said.await.unwrap_or_else(|_| {
        panic!(
            "no notice that it is {}",
            if now { "resuming" } else { "resumed" }
        )
    });
}

/// Why the session ended, as the viewer's notices say (waiting up to [`WAIT`]).
pub async fn ended(notices: &mut tokio::sync::mpsc::UnboundedReceiver<ponte_viewer::Notice>) -> String {
    let ended = tokio::time::timeout(WAIT, async {
        loop {
            match notices.recv().await {
                Some(ponte_viewer::Notice::Ended(reason)) => break reason,
                Some(_) => continue,
                None => panic!("the session went away without a reason"),
            }
        }
    });
    ended.await.expect("the session did not end")
}

pub fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

pub fn run_with_timeout(mut cmd: Command, timeout: Duration) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (done, finished) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        // Only a child still running is killed: after it ended, its pid may be another's.
        if finished.recv_timeout(timeout) == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    });
    let out = child.wait_with_output().unwrap();
    drop(done);
    out
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn sha256_file(path: &Path) -> [u8; 32] {
    Sha256::digest(std::fs::read(path).unwrap()).into()
}
