//! Processes started for the assistant: each command or shell leads a session of its own on a
//! pseudo-terminal, so that everything it starts — pipelines, background jobs — is found and
//! ended with it.

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

/// Starts `command` with the customer's shell as the leader of a new session, with pipes for
/// output, so that everything it starts ends with the guard.
pub fn spawn_command(
    command: &str,
    dir: &std::path::Path,
) -> std::io::Result<(tokio::process::Child, SessionGuard)> {
    use std::process::Stdio;
    let (pty, pts) = pty_process::open().map_err(std::io::Error::other)?;
    let child = pty_process::Command::new(user_shell())
        .arg("-c")
        .arg(command)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn(pts)
        .map_err(std::io::Error::other)?;
    let guard = SessionGuard {
        leader: child.id(),
        _terminal: Some(pty),
    };
    Ok((child, guard))
}

/// Kills every process of the session `session` leads (the shell was its leader), including
/// background jobs that would otherwise outlive the assistant's terminal or command.
fn hang_up(session: u32) {
    let Ok(mut system) = sysinfo::System::new() else {
        return;
    };
    system.refresh_processes(sysinfo::ProcessesToUpdate::All, true);
    let leader = sysinfo::Pid::from_u32(session);
    for process in system.processes().values() {
        if process.session_id() == Some(leader) {
            process.kill();
        }
    }
}
