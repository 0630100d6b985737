//! `exec`: one command with the customer's shell, its output streamed back and kept in the
//! transcript. Under `terminal`.

use std::time::Duration;

use ponte_e2e::app::{Capability, MAX_CHUNK, MAX_PATH, Transfer};
use ponte_session::SecureStream;
use ponte_wire::text::PeerText;
use tokio::io::AsyncReadExt;

use super::{Context, Decision, Handler, Reason, not_allowed};
use crate::frontend::{Activity, Kind};
use crate::i18n::{Tr, t};
use crate::transcript::Transcript;

/// A command request.
pub struct Exec {
    command: PeerText,
}

impl Exec {
    /// A request to run `command`.
    pub fn new(command: PeerText) -> Exec {
        Exec { command }
    }
}

impl Handler for Exec {
    const GRANT: Capability = Capability::Terminal;

    fn describe(&self, tr: &Tr) -> String {
        t!(tr, "request-exec", command = &self.command)
    }

    async fn decide(&mut self, _: &Context, granted: bool) -> Decision {
        if self.command.len() > MAX_PATH {
            Decision::Refuse(Reason::TooLong)
        } else if granted {
            Decision::Allow
        } else {
            not_allowed(Self::GRANT)
        }
    }

    async fn run(self, stream: &mut SecureStream, ctx: &Context) -> anyhow::Result<Activity> {
        let command = &self.command;
        // A session of its own: the command's whole process tree ends with the guard, which
        // this future owns — also when the dispatcher drops it on revocation.
        let (mut child, _session) = crate::process::spawn_command(command.as_raw(), ctx.scope.root())
            .map_err(|e| anyhow::anyhow!("cannot start {}: {e}", crate::process::user_shell()))?;
        let terminal = ctx.next_terminal();
        let started = t!(
            ctx.tr(),
            "command-started",
            command = command,
            terminal = terminal
        );
        ctx.events.activity(Kind::Command, started);
        let mut transcript = Transcript::new(terminal, ctx.events.clone());
        transcript.output(format!("$ {}\n", command.as_raw()).as_bytes());
        let (Some(mut out), Some(mut err)) = (child.stdout.take(), child.stderr.take()) else {
            anyhow::bail!("no output pipes");
        };
        let (mut out_buf, mut err_buf) = (vec![0u8; MAX_CHUNK], vec![0u8; MAX_CHUNK]);
        let (mut out_open, mut err_open) = (true, true);
        let mut exited = None;
        // Output until both pipes close, or until the command has exited and its last output
        // is passed on: background jobs it left holding the pipes end with its session.
        while out_open || err_open {
            let drain = async {
                match exited {
                    Some(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                    None => std::future::pending().await,
                }
            };
            let (data, stderr) = tokio::select! {
                n = out.read(&mut out_buf), if out_open => match n? {
                    0 => { out_open = false; continue }
                    n => (&out_buf[..n], false),
                },
                n = err.read(&mut err_buf), if err_open => match n? {
                    0 => { err_open = false; continue }
                    n => (&err_buf[..n], true),
                },
                status = child.wait(), if exited.is_none() => { exited = Some(status?); continue }
                _ = drain => break,
            };
            transcript.output(data);
            stream
                .send
                .send(&Transfer::Output {
                    stderr,
                    data: data.to_vec(),
                })
                .await?;
        }
        let status = match exited {
            Some(status) => status,
            None => child.wait().await?,
        };
        stream.send.send(&Transfer::Exit(status.code())).await?;
        Ok(Activity {
            kind: Kind::Command,
            text: t!(
                ctx.tr(),
                "command-finished",
                status = status.code().map_or_else(|| "✕".to_owned(), |c| c.to_string()),
                command = command
            ),
        })
    }
}
