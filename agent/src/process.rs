//! Processes started for the assistant: each command or shell leads a session of its own on a
//! pseudo-terminal, so that everything it starts — pipelines, background jobs — is found and
//! ended with it. What leaves that session (`setsid`, double forks) is still the agent's:
//! the agent is the reaper of its descendants ([`adopt_orphans`]), and revoking `terminal` or
//! ending the session ends every one of them ([`end_descendants`]).

use std::collections::HashMap;

/// The customer's login shell.
pub fn user_shell() -> String {
    std::env::var("SHELL").unwrap_or_else(|_| "/bin/sh".into())
}

/// Ends every process of a session when dropped (see [`hang_up`]).
pub struct SessionGuard {
    leader: Option<u32>,
    /// Keeps the session's terminal open while the guard lives.
    _terminal: Option<pty_process::Pty>,
}

impl SessionGuard {
    /// A guard for the session led by process `leader`.
    pub fn new(leader: Option<u32>) -> SessionGuard {
        SessionGuard {
            leader,
            _terminal: None,
        }
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        if let Some(leader) = self.leader {
            hang_up(leader);
        }
    }
}

/// Starts the customer's shell, made by `shell` from its command, in `dir` as the leader of
/// a new session on a new pseudo-terminal (of `size`, else the default): the one way Ponte
/// starts a process for the assistant.
fn spawn_shell(
    dir: &std::path::Path,
    size: Option<pty_process::Size>,
    shell: impl FnOnce(pty_process::Command) -> pty_process::Command,
) -> std::io::Result<(tokio::process::Child, pty_process::Pty)> {
    let (pty, pts) = pty_process::open().map_err(std::io::Error::other)?;
    if let Some(size) = size {
        pty.resize(size).map_err(std::io::Error::other)?;
    }
    let command = pty_process::Command::new(user_shell())
        .current_dir(dir)
        .kill_on_drop(true);
    let child = shell(command).spawn(pts).map_err(std::io::Error::other)?;
    Ok((child, pty))
}

/// Starts `command` with the customer's shell as the leader of a new session, with pipes for
/// output, so that everything it starts ends with the guard.
pub fn spawn_command(
    command: &str,
    dir: &std::path::Path,
) -> std::io::Result<(tokio::process::Child, SessionGuard)> {
    use std::process::Stdio;
    let (child, pty) = spawn_shell(dir, None, |shell| {
        shell
            .arg("-c")
            .arg(command)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
    })?;
    let guard = SessionGuard {
        leader: child.id(),
        _terminal: Some(pty),
    };
    Ok((child, guard))
}

/// Starts the customer's shell, interactive on a pseudo-terminal of `rows` × `cols`, as the
/// leader of a new session; everything it starts ends with the guard (and the terminal).
pub fn spawn_terminal(
    dir: &std::path::Path,
    rows: u16,
    cols: u16,
) -> std::io::Result<(tokio::process::Child, pty_process::Pty, SessionGuard)> {
    let size = pty_process::Size::new(rows.max(1), cols.max(1));
    let (child, pty) = spawn_shell(dir, Some(size), |shell| shell.env("TERM", "xterm-256color"))?;
    let guard = SessionGuard::new(child.id());
    Ok((child, pty, guard))
}

/// Kills every process of the session `session` leads (the shell was its leader), including
/// background jobs that would otherwise outlive the assistant's terminal or command.
fn hang_up(session: u32) {
    let Ok(mut system) = sysinfo::System::new() else {
        return;
    };
    system.refresh_processes(sysinfo::ProcessesToUpdate::All, true);
    let leader = sysinfo::Pid::from_u32(session);
    let me = sysinfo::Pid::from_u32(std::process::id());
    let mut adopted = Vec::new();
    for process in system.processes().values() {
        if process.thread_kind().is_none() && process.session_id() == Some(leader) {
            process.kill();
            // Orphans of the session were adopted by the agent: it reaps them. (The leader is
            // tokio's child; tokio reaps it.)
            if process.parent() == Some(me) && process.pid() != leader {
                adopted.push(process.pid());
            }
        }
    }
    for _ in 0..10 {
        if adopted.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
        adopted.retain(|pid| !reap(*pid));
    }
}

/// Makes the agent the reaper of everything it starts: a process that detaches (double fork,
/// `setsid -f`, `nohup … &`) is re-parented to the agent instead of to init, so it remains
/// among the agent's descendants.
#[cfg(target_os = "linux")]
pub fn adopt_orphans() -> std::io::Result<()> {
    rustix::process::set_child_subreaper(Some(rustix::process::getpid()))?;
    Ok(())
}

/// Without a subreaper (Linux's alone), a process that detaches is re-parented to init and no
/// longer found among the agent's descendants: said, not silent.
#[cfg(not(target_os = "linux"))]
pub fn adopt_orphans() -> std::io::Result<()> {
    tracing::warn!(
        "this system cannot make Ponte the reaper of the assistant's processes: one that \
         detaches (setsid, double fork, nohup) may outlive the session"
    );
    Ok(())
}

/// What [`end_descendants`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    /// How many processes it killed.
    pub killed: usize,
    /// Whether it saw none left at the end (not so when processes kept forking faster than it
    /// could kill them, or the process table could not be read).
    pub clean: bool,
}

/// Kills every process descended from the agent, however it detached, until none is left
/// (bounded rounds, for processes forking while they are killed) or `until()` says to stop
/// (the customer granted `terminal` again: what runs from then on is allowed).
pub fn end_descendants(until: impl Fn() -> bool) -> Ended {
    let me = sysinfo::Pid::from_u32(std::process::id());
    let mut killed = 0;
    for _ in 0..20 {
        if until() {
            break;
        }
        let Ok(mut system) = sysinfo::System::new() else {
            return Ended { killed, clean: false };
        };
        system.refresh_processes(sysinfo::ProcessesToUpdate::All, true);
        let mut children: HashMap<sysinfo::Pid, Vec<&sysinfo::Process>> = HashMap::new();
        for process in system.processes().values() {
            // Threads (of the agent too) are listed as tasks: never "kill" a thread.
            if process.thread_kind().is_none()
                && let Some(parent) = process.parent()
            {
                children.entry(parent).or_default().push(process);
            }
        }
        let mut found = Vec::new();
        let mut stack = vec![me];
        while let Some(pid) = stack.pop() {
            for child in children.get(&pid).into_iter().flatten() {
                stack.push(child.pid());
                if child.status() != sysinfo::ProcessStatus::Zombie {
                    found.push(*child);
                } else if pid == me {
                    reap(child.pid());
                }
            }
        }
        if found.is_empty() {
            return Ended { killed, clean: true };
        }
        for process in found {
            if process.kill() {
                killed += 1;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Ended { killed, clean: false }
}

/// Collects the exit status of an adopted orphan that has died, so it does not linger as a
/// zombie. (Children the agent started itself are reaped by tokio; by the time this runs for
/// them, their requests have ended.)
/// Returns whether it is gone (reaped now, or not a child to wait for).
fn reap(pid: sysinfo::Pid) -> bool {
    if let Some(pid) = rustix::process::Pid::from_raw(pid.as_u32() as i32) {
        return !matches!(
            rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::NOHANG),
            Ok(None)
        );
    }
    true
}
