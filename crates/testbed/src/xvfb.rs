//! An Xvfb server of the caller's own, for screen sharing.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
