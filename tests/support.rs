//! Helpers for the end-to-end tests: find and start Ponte's binaries, read what they print.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

pub mod link;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Ponte's programs, each in the package of the same name.
const PROGRAMS: &[&str] = &["ponte-agent", "ponte-viewer", "ponte-relay"];

/// The path of a workspace binary, built (or confirmed up to date) once per test process so
/// a test never runs a stale binary.
pub fn binary(name: &str) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let exe = std::env::current_exe().unwrap();
    // Tests run from target/<profile>/deps/, bench binaries from target/<profile>/.
    let mut dir = exe.parent().unwrap().to_owned();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if !built.iter().any(|b| b == name) {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        let names: &[&str] = if dir.ends_with("release") {
            // A benchmark: each binary lives in the package of the same name.
            cmd.args(["build", "--quiet", "--release", "-p", name, "--bin", name]);
            &[name]
        } else {
            // The packages and targets of `cargo test --workspace`, so that the programs are
            // built with the features that build resolved and nothing is compiled twice: a
            // build of one package alone resolves other features and rebuilds half the tree
            // (minutes on two cores).
            cmd.args(["build", "--quiet", "--workspace", "--tests"]);
            for program in PROGRAMS {
                cmd.args(["--bin", program]);
            }
            PROGRAMS
        };
        let status = cmd.status().unwrap();
        assert!(status.success(), "building {names:?} failed");
        built.extend(names.iter().map(|n| (*n).to_owned()));
    }
    dir.join(name)
}

/// How long [`Running::expect`] waits for a line.
pub const LINE_WAIT: Duration = Duration::from_secs(60);

/// A child process whose stdout lines are collected in the background (and kept), with its
/// stdin at hand when the command was given a piped one.
pub struct Running {
    /// The process.
    pub child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    /// Every stdout line read so far.
    seen: std::cell::RefCell<Vec<String>>,
}

impl Running {
    /// Starts `command` with stdout collected; set PONTE_TEST_LOGS=1 to see its stderr and
    /// stdout.
    pub fn start(mut command: Command) -> Running {
        let logs = std::env::var_os("PONTE_TEST_LOGS").is_some();
        // Logs go nowhere unless PONTE_TEST_LOGS is set (an undrained pipe would block the child).
        let stderr = if logs { Stdio::inherit() } else { Stdio::null() };
        let mut child = command.stdout(Stdio::piped()).stderr(stderr).spawn().unwrap();
        let stdout: ChildStdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if logs {
                    eprintln!("stdout: {line}");
                }
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            stdin: child.stdin.take(),
            child,
            lines,
            seen: std::cell::RefCell::new(Vec::new()),
        }
    }

    /// The next stdout line, if one comes before `deadline`.
    fn next_line(&self, deadline: Instant) -> Option<String> {
        let line = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .ok()?;
        self.seen.borrow_mut().push(line.clone());
        Some(line)
    }

    /// Every stdout line read so far.
    pub fn seen(&self) -> Vec<String> {
        self.seen.borrow().clone()
    }

    /// Types a line on the process's stdin (started with `Stdio::piped()`).
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("started with a piped stdin");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// The next stdout line containing `needle`, waiting up to [`LINE_WAIT`].
    pub fn expect(&self, needle: &str) -> String {
        let deadline = Instant::now() + LINE_WAIT;
        loop {
            match self.next_line(deadline) {
                Some(line) if line.contains(needle) => return line,
                Some(_) => {}
                None => panic!("never printed {needle:?}; printed {:#?}", self.seen()),
            }
        }
    }

    /// The stdout lines printed within `wait` from now.
    pub fn lines_within(&self, wait: Duration) -> Vec<String> {
        let deadline = Instant::now() + wait;
        std::iter::from_fn(|| self.next_line(deadline)).collect()
    }

    /// The next JSON line on stdout whose `event` is `name`, waiting up to `timeout`.
    pub fn event(&self, name: &str, timeout: Duration) -> serde_json::Value {
        self.event_where(&format!("{name:?}"), |v| v["event"] == name, timeout)
    }

    /// The next `attempt` event with this `outcome`, waiting up to `timeout`.
    pub fn attempt(&self, outcome: &str, timeout: Duration) -> serde_json::Value {
        let what = format!("attempt {outcome:?}");
        self.event_where(
            &what,
            |v| v["event"] == "attempt" && v["outcome"] == outcome,
            timeout,
        )
    }

    /// The next JSON line on stdout that `wanted` accepts, waiting up to `timeout`.
    pub fn event_where(
        &self,
        what: &str,
        wanted: impl Fn(&serde_json::Value) -> bool,
        timeout: Duration,
    ) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            let Some(line) = self.next_line(deadline) else {
                panic!("no {what} event within {timeout:?}");
            };
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                && wanted(&v)
            {
                return v;
            }
        }
    }

    /// The first line the process printed on stdout (once something was read).
    pub fn first_line(&self) -> Option<String> {
        self.seen.borrow().first().cloned()
    }

    /// The rest of the first stdout line starting with `prefix`, waiting up to `timeout`.
    pub fn line_after(&self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            match self.next_line(deadline) {
                Some(line) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return rest.trim().to_owned();
                    }
                }
                None => panic!("no line starting with {prefix:?} within {timeout:?}"),
            }
        }
    }

    /// Sends SIGTERM (Unix) and waits for the exit status, up to `timeout`.
    pub fn terminate(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.wait(timeout)
    }

    /// Waits for the process to exit by itself, up to `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "process did not exit in {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free TCP port on 127.0.0.1 (for endpoints that need a fixed address up front).
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A redis-server of the test's own on a loopback port (Debian's `redis-server`, installed by
/// .ci/run); a missing binary fails the test, never skips it.
pub struct RedisServer {
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one on a free port.
    pub fn start() -> RedisServer {
        let mut server = RedisServer {
            port: free_tcp_port(),
            child: None,
        };
        server.restart();
        server
    }

    /// Its URL for `--cluster`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Starts (again) on the same port, with empty state, and waits until it answers.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "redis-server is required for the cluster tests (apt-get install redis-server; .ci/run does)",
            );
        self.child = Some(child);
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops it hard (SIGKILL), as a crash or a network cut would.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An Xvfb server on a free display number, stopped when dropped.
pub struct Xvfb {
    child: Child,
    /// Its display name (`:N`).
    pub display: String,
}

impl Xvfb {
    /// Starts a server with one screen of this size at 24-bit depth.
    pub fn start(width: u16, height: u16) -> Xvfb {
        Xvfb::start_with(width, height, &[])
    }

    /// Starts a server with extra arguments (e.g. `-extension MIT-SHM`).
    pub fn start_with(width: u16, height: u16, args: &[&str]) -> Xvfb {
        // Tests in one process start servers concurrently: each takes its own numbers.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let base = 100 + (std::process::id() % 500) as usize * 10;
        for _ in 0..200 {
            let n = base + NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 5000;
            let taken = |p: String| Path::new(&p).exists();
            if taken(format!("/tmp/.X11-unix/X{n}")) || taken(format!("/tmp/.X{n}-lock")) {
                continue;
            }
            let mut child = Command::new("Xvfb")
                .arg(format!(":{n}"))
                .args([
                    "-screen",
                    "0",
                    &format!("{width}x{height}x24"),
                    "-nolisten",
                    "tcp",
                    "-noreset",
                ])
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("Xvfb is needed for the screen tests (apt-get install xvfb)");
            let display = format!(":{n}");
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if child.try_wait().unwrap().is_some() {
                    break; // Display taken by someone else: try the next one.
                }
                if x11rb::connect(Some(&display)).is_ok() {
                    return Xvfb { child, display };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("could not start Xvfb");
    }

    /// A new connection to it.
    pub fn connect(&self) -> x11rb::rust_connection::RustConnection {
        x11rb::connect(Some(&self.display)).unwrap().0
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free UDP port on loopback, for a relay node that must know its address before it starts.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A rendezvous client pinned to `pin` (a relay's or a cluster key's fingerprint), following
/// redirects, that notices a silent relay within `idle`.
pub async fn relay_client(
    addr: std::net::SocketAddr,
    pin: ponte_transport::tls::CertFingerprint,
    idle: Duration,
) -> Result<ponte_transport::client::RelayClient, ponte_transport::client::ClientError> {
    use ponte_transport::client::{Redirects, RelayClient};
    use ponte_transport::tls::{self, RelayTrust};
    let (config, seen) = tls::client_config(&RelayTrust::Pinned(pin), tls::transport_config(idle)).unwrap();
    let ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let mut c = RelayClient::connect(&ep, addr, "ponte-relay", config.clone(), &seen).await?;
    c.follow_redirects(Redirects { endpoint: ep, config });
    Ok(c)
}
