//! The interactive terminal: the customer's shell on a pseudo-terminal, as the customer's
//! user, for as long as the assistant keeps the stream open and the grant stands.

use std::time::Duration;

use ponte_protocol::app::{MAX_CHUNK, Response, Transfer};
use ponte_session::SecureStream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::serve::Context;

/// Runs the shell until it exits or the assistant leaves; either way the shell is killed and
/// the pseudo-terminal closed, which hangs up everything the shell started on it.
#[cfg(unix)]
pub async fn shell(stream: &mut SecureStream, ctx: &Context, cols: u16, rows: u16) -> anyhow::Result<()> {
    let shell = user_shell();
    let started = (|| -> Result<_, pty_process::Error> {
        let (pty, pts) = pty_process::open()?;
        pty.resize(pty_process::Size::new(rows.max(1), cols.max(1)))?;
        let child = pty_process::Command::new(&shell)
            .current_dir(ctx.base())
            .env("TERM", "xterm-256color")
            .kill_on_drop(true)
            .spawn(pts)?;
        Ok((pty, child))
    })();
    let (pty, mut child) = match started {
        Ok(x) => x,
        Err(e) => {
            stream
                .send
                .send(&Response::Refused(format!("cannot start a terminal: {e}")))
                .await?;
            return Ok(stream.send.finish().await?);
        }
    };
    stream.send.send(&Response::Accepted).await?;
    ctx.ui.activity("command", &format!("terminal opened ({shell})"));
    let _session = SessionGuard {
        leader: child.id(),
        _terminal: None,
    };
    let (mut read, mut write) = pty.into_split();
    let mut buf = vec![0u8; MAX_CHUNK];
    let mut status = None;
    loop {
        tokio::select! {
            n = read.read(&mut buf) => match n {
                // EIO or EOF once nothing holds the terminal open any more.
                Ok(0) | Err(_) => break,
                Ok(n) => stream.send.send(&Transfer::Output { stderr: false, data: buf[..n].to_vec() }).await?,
            },
            exit = child.wait() => {
                status = exit.ok();
                // Pass on what the shell wrote just before it exited.
                while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(100), read.read(&mut buf)).await {
                    if n == 0 {
                        break;
                    }
                    stream.send.send(&Transfer::Output { stderr: false, data: buf[..n].to_vec() }).await?;
                }
                break;
            }
            message = stream.recv.recv::<Transfer>() => match message {
                Ok(Some(Transfer::Input(bytes))) => write.write_all(&bytes).await?,
                Ok(Some(Transfer::Resize { cols, rows })) => {
                    let _ = write.resize(pty_process::Size::new(rows.max(1), cols.max(1)));
                }
                // The assistant closed the terminal or left.
                _ => break,
            },
        }
    }
    drop(child); // kill_on_drop: the shell, if it still runs; the guard ends the rest.
    let code = status.and_then(|s| s.code());
    let _ = stream.send.send(&Transfer::Exit(code)).await;
    let _ = stream.send.finish().await;
    ctx.ui.activity("command", "terminal closed");
    Ok(())
}

/// Ends every process of a session when dropped (see [`hang_up`]).
pub struct SessionGuard {
    leader: Option<u32>,
    /// Keeps the session's terminal open while the guard lives.
    _terminal: Option<pty_process::Pty>,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        if let Some(leader) = self.leader {
            hang_up(leader);
        }
    }
}

/// Starts `command` with the customer's shell as the leader of a new session, with pipes for
/// output, so that everything it starts — pipelines, background jobs — ends with the guard.
#[cfg(unix)]
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

/// The customer's login shell.
pub fn user_shell() -> String {
    std::env::var("SHELL").unwrap_or_else(|_| "/bin/sh".into())
}

/// Kills every process of the session `session` leads (the shell was its leader), including
/// background jobs that would otherwise outlive the assistant's terminal or command.
#[cfg(unix)]
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

/// Terminals need a Unix pseudo-terminal here.
#[cfg(not(unix))]
pub async fn shell(stream: &mut SecureStream, _: &Context, _: u16, _: u16) -> anyhow::Result<()> {
    stream
        .send
        .send(&Response::Refused("no terminal support on this system".into()))
        .await?;
    Ok(stream.send.finish().await?)
}
