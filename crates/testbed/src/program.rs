//! Ponte's programs as processes: where cargo put them, checked against their sources, and
//! started with their output read line by line.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What builds the debug programs, as `cargo test --workspace` does, with the features it
/// resolves (so that nothing compiles twice): named when a test finds one missing or stale.
const BUILD_DEBUG: &str = "cargo build --workspace --bins --test e2e";

/// The path of a Ponte program (`ponte-agent`, `ponte-viewer`, `ponte-relay`, each in the
/// package of the same name) that cargo built beside the running test or benchmark executable.
///
/// Nothing here builds: `cargo test` builds a package's programs before running any test
/// (each of these packages has an integration test for that). A program that is missing, or
/// older than a source file it is built from, is refused with the command that builds it — a
/// test never runs a stale program.
pub fn binary(name: &str) -> PathBuf {
    static CHECKED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let exe = std::env::current_exe().unwrap();
    // Tests run from target/<profile>/deps/, benchmark programs from target/<profile>/.
    let mut dir = exe.parent().unwrap().to_owned();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    let mut checked = CHECKED.lock().unwrap_or_else(|e| e.into_inner());
    if checked.iter().any(|c| c == name) {
        return path;
    }
    if let Err(why) = up_to_date(name, &path) {
        let build = if dir.ends_with("release") {
            format!("cargo build --release -p {name} --bin {name}")
        } else {
            BUILD_DEBUG.to_owned()
        };
        panic!("{name} {why}: build it with `{build}`");
    }
    checked.push(name.to_owned());
    path
}

/// Whether the program `name` at `path` is newer than every source file it is built from.
fn up_to_date(name: &str, path: &Path) -> Result<(), String> {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified());
    let built = modified(path).map_err(|_| format!("is missing ({})", path.display()))?;
    for source in crate::sources::sources(name)? {
        if modified(&source).is_ok_and(|changed| changed > built) {
            return Err(format!(
                "is stale ({} changed since it was built)",
                source.display()
            ));
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_older_than_a_source_is_stale_and_a_missing_one_is_missing() {
        let dir = std::env::temp_dir().join(format!("ponte-testbed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let program = dir.join("ponte-relay");
        assert!(
            up_to_date("ponte-relay", &program)
                .unwrap_err()
                .starts_with("is missing")
        );
        let old = std::fs::File::create(&program).unwrap();
        old.set_modified(std::time::SystemTime::now() + Duration::from_secs(3600))
            .unwrap();
        assert_eq!(up_to_date("ponte-relay", &program), Ok(()));
        old.set_modified(std::time::SystemTime::UNIX_EPOCH).unwrap();
        assert!(
            up_to_date("ponte-relay", &program)
                .unwrap_err()
                .starts_with("is stale")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
