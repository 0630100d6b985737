//! A redis-server of the caller's own on a loopback port, for relay clusters.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::free_tcp_port;

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
