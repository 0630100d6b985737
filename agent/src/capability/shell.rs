//! The interactive terminal: the customer's shell on a pseudo-terminal, as the customer's user.
//! Under `terminal`. The customer sees every command line the assistant enters, and the
//! session log keeps the whole transcript.

use std::time::Duration;

use ponte_e2e::app::{Capability, MAX_CHUNK, Transfer};
use ponte_session::SecureStream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Context, Handler};
use crate::frontend::{Activity, Kind};
use crate::i18n::Tr;
use crate::i18n::t;
use crate::process::{spawn_terminal, user_shell};
use crate::transcript::Transcript;

/// A terminal request.
pub struct Shell {
    cols: u16,
    rows: u16,
}

impl Shell {
    /// A terminal of this size.
    pub fn new(cols: u16, rows: u16) -> Shell {
        Shell { cols, rows }
    }
}

impl Handler for Shell {
    const GRANT: Capability = Capability::Terminal;

    fn describe(&self, tr: &Tr) -> String {
        t!(tr, "request-shell")
    }

    /// Runs the shell until it exits or the assistant leaves; either way the shell is killed
    /// and the pseudo-terminal closed, which hangs up everything started on it.
    async fn run(self, stream: &mut SecureStream, ctx: &Context) -> anyhow::Result<Activity> {
        let shell = user_shell();
        // The guard is dropped with this future: the shell and everything it started end.
        let (mut child, pty, _session) = spawn_terminal(ctx.scope.root(), self.rows, self.cols)
            .map_err(|e| anyhow::anyhow!("cannot start a terminal ({shell}): {e}"))?;
        let terminal = ctx.next_terminal();
        let opened = t!(ctx.tr(), "terminal-opened", terminal = terminal, shell = &shell);
        ctx.events.activity(Kind::Command, opened);
        let mut transcript = Transcript::new(terminal, ctx.events.clone());
        let (mut read, mut write) = pty.into_split();
        let mut buf = vec![0u8; MAX_CHUNK];
        let mut status = None;
        stream.send.send(&Transfer::Terminal(terminal)).await?;
        // Output the viewer has not received: what a cut stream lost, and the gap's output.
        let mut unsent = Vec::new();
        let mut resumes = ctx.parked.resumes();
        loop {
            let cut = tokio::select! {
                n = read.read(&mut buf) => match n {
                    // EIO or EOF once nothing holds the terminal open any more.
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        transcript.output(&buf[..n]);
                        let sent = stream.send.send(&Transfer::Output { stderr: false, data: buf[..n].to_vec() }).await;
                        sent.err().inspect(|_| unsent.extend_from_slice(&buf[..n]))
                    }
                },
                exit = child.wait() => {
                    status = exit.ok();
                    // Pass on what the shell wrote just before it exited.
                    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(100), read.read(&mut buf)).await {
                        if n == 0 {
                            break;
                        }
                        transcript.output(&buf[..n]);
                        stream.send.send(&Transfer::Output { stderr: false, data: buf[..n].to_vec() }).await?;
                    }
                    break;
                }
                message = stream.recv.recv::<Transfer>() => match message {
                    Ok(Some(Transfer::Input(bytes))) => {
                        transcript.typed(&bytes);
                        write.write_all(&bytes).await?;
                        None
                    }
                    Ok(Some(Transfer::Resize { cols, rows })) => {
                        let _ = write.resize(pty_process::Size::new(rows.max(1), cols.max(1)));
                        None
                    }
                    // The assistant closed the terminal, left, or sent something else.
                    Ok(_) => break,
                    Err(e) => Some(e),
                },
            };
            let Some(error) = cut else { continue };
            // Cut by a lost connection: the shell waits for its viewer on the resumed session.
            if !ctx.parked.cut_by_resume(resumes).await {
                return Err(error.into());
            }
            let mut waiting = ctx.parked.park(terminal);
            let limit = tokio::time::sleep(super::parked::PARK_LIMIT);
            tokio::pin!(limit);
            let fresh = loop {
                tokio::select! {
                    fresh = &mut waiting.reattached => match fresh {
                        Ok(fresh) => break fresh,
                        Err(_) => return Err(error.into()),
                    },
                    n = read.read(&mut buf) => match n {
                        Ok(0) | Err(_) => return Err(error.into()),
                        Ok(n) => {
                            transcript.output(&buf[..n]);
                            unsent.extend_from_slice(&buf[..n]);
                            let over = unsent.len().saturating_sub(super::parked::MAX_PARKED_OUTPUT);
                            unsent.drain(..over);
                        }
                    },
                    () = &mut limit => return Err(error.into()),
                }
            };
            drop(waiting);
            *stream = fresh;
            resumes = ctx.parked.resumes();
            for chunk in std::mem::take(&mut unsent).chunks(MAX_CHUNK) {
                stream
                    .send
                    .send(&Transfer::Output {
                        stderr: false,
                        data: chunk.to_vec(),
                    })
                    .await?;
            }
        }
        let code = status.and_then(|s| s.code());
        stream.send.send(&Transfer::Exit(code)).await?;
        Ok(Activity {
            kind: Kind::Command,
            text: t!(ctx.tr(), "terminal-closed", terminal = terminal),
        })
    }
}
