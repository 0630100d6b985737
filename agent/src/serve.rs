//! Serving the assistant's requests — each checked here, on the customer's machine, against
//! what the customer granted. The viewer's requests are only requests.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ponte_protocol::app::{Capability, Grants, MAX_CHUNK, MAX_PATH, Request, Response, Transfer};
use ponte_protocol::screen::{InputEvent, MAX_EVENTS};
use ponte_session::SecureStream;
use ponte_session::files::{self, TransferError};
use tokio::io::AsyncReadExt;

use crate::ui::Ui;

/// What the agent decides about a request before doing anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Granted for the session.
    Allow,
    /// Not granted for the session, but the customer may allow this one.
    Ask(String),
    /// Refused, with the reason the assistant will see.
    Refuse(String),
}

fn refused(c: Capability) -> Decision {
    Decision::Refuse(format!("the customer has not allowed '{c}'"))
}

/// The permission check for a request under `grants`.
pub fn authorize(request: &Request, grants: Grants) -> Decision {
    match request {
        Request::Exec { command } if command.len() > MAX_PATH => Decision::Refuse("command too long".into()),
        Request::Exec { .. } if grants.allows(Capability::Terminal) => Decision::Allow,
        Request::Exec { .. } => refused(Capability::Terminal),
        Request::Put { .. } if grants.allows(Capability::Upload) => Decision::Allow,
        Request::Put { .. } => refused(Capability::Upload),
        Request::Get { .. } if grants.allows(Capability::Download) => Decision::Allow,
        Request::Get { path } => Decision::Ask(format!(
            "The assistant wants to copy {path} from this computer. Allow?"
        )),
        Request::Info if grants.allows(Capability::Info) => Decision::Allow,
        Request::Info => refused(Capability::Info),
        Request::Shell { .. } if grants.allows(Capability::Terminal) => Decision::Allow,
        Request::Shell { .. } => refused(Capability::Terminal),
        Request::Screen { .. } if grants.allows(Capability::Screen) => Decision::Allow,
        Request::Screen { .. } => refused(Capability::Screen),
        Request::Input(events) if events.len() > MAX_EVENTS || !events.iter().all(InputEvent::is_valid) => {
            Decision::Refuse("malformed input events".into())
        }
        Request::Input(_) if grants.allows(Capability::Control) => Decision::Allow,
        Request::Input(_) => refused(Capability::Control),
    }
}

/// Shared state of the running session.
#[derive(Clone)]
pub struct Context {
    /// What the customer currently allows.
    pub grants: Arc<Mutex<Grants>>,
    /// Output and prompts.
    pub ui: Ui,
    /// Where relative paths of the assistant are resolved.
    pub base: PathBuf,
    /// The desktop to share.
    pub display: crate::screen::DisplayOptions,
}

impl Context {
    /// What the customer allows now.
    pub fn grants(&self) -> Grants {
        *self.grants.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The directory commands and shells start in.
    pub fn base(&self) -> &Path {
        &self.base
    }

    fn resolve(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        if p.is_absolute() {
            p.to_owned()
        } else {
            self.base.join(p)
        }
    }
}

fn describe(request: &Request) -> String {
    match request {
        Request::Exec { command } => format!("run command: {command}"),
        Request::Get { path } => format!("copy from this computer: {path}"),
        Request::Put {
            path, total_bytes, ..
        } => format!("put on this computer: {path} ({})", size(*total_bytes)),
        Request::Info => "read system information".into(),
        Request::Shell { .. } => "open a terminal".into(),
        Request::Screen { .. } => "see the screen".into(),
        Request::Input(events) => format!("use the mouse and keyboard: {}", crate::screen::describe(events)),
    }
}

/// A human size.
pub fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} bytes"),
    }
}

/// Serves one request stream to its end.
pub async fn serve(mut stream: SecureStream, ctx: Context) {
    let request = match stream.recv.recv::<Request>().await {
        Ok(Some(r)) => r,
        _ => return,
    };
    let what = describe(&request);
    let decision = match authorize(&request, ctx.grants()) {
        Decision::Ask(question) => {
            if ctx.ui.ask(&question).await {
                Decision::Allow
            } else {
                Decision::Refuse("the customer declined".into())
            }
        }
        d => d,
    };
    if let Decision::Refuse(reason) = decision {
        ctx.ui.activity("refused", &format!("refused: {what} ({reason})"));
        let _ = stream.send.send(&Response::Refused(reason)).await;
        let _ = stream.send.finish().await;
        return;
    }
    let result = match request {
        Request::Exec { command } => exec(&mut stream, &ctx, &command).await,
        Request::Get { path } => get(&mut stream, &ctx, &path).await,
        Request::Put {
            path,
            overwrite,
            total_bytes,
            ..
        } => put(&mut stream, &ctx, &path, overwrite, total_bytes).await,
        Request::Info => info(&mut stream, &ctx).await,
        Request::Shell { cols, rows } => crate::shell::shell(&mut stream, &ctx, cols, rows).await,
        Request::Screen { max_fps } => crate::screen::share(stream, &ctx, max_fps).await,
        Request::Input(events) => crate::screen::input(&mut stream, &ctx, events).await,
    };
    if let Err(e) = result {
        ctx.ui.activity("failed", &format!("failed: {what}: {e}"));
    }
}

async fn exec(stream: &mut SecureStream, ctx: &Context, command: &str) -> anyhow::Result<()> {
    // A session of its own, so the command's whole process tree ends with this request.
    let (mut child, _session) = match crate::shell::spawn_command(command, &ctx.base) {
        Ok(c) => c,
        Err(e) => {
            let shell = crate::shell::user_shell();
            stream
                .send
                .send(&Response::Refused(format!("cannot start {shell}: {e}")))
                .await?;
            return Ok(stream.send.finish().await?);
        }
    };
    stream.send.send(&Response::Accepted).await?;
    ctx.ui.activity("command", &format!("command started: {command}"));
    let (Some(mut out), Some(mut err)) = (child.stdout.take(), child.stderr.take()) else {
        anyhow::bail!("no output pipes");
    };
    let (mut out_buf, mut err_buf) = (vec![0u8; MAX_CHUNK], vec![0u8; MAX_CHUNK]);
    let (mut out_open, mut err_open) = (true, true);
    let mut exited = None;
    // Output until both pipes close, or until the command has exited and its last output is
    // passed on: background jobs it left holding the pipes are ended with its session.
    while out_open || err_open {
        let drain = async {
            match exited {
                Some(_) => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            n = out.read(&mut out_buf), if out_open => match n? {
                0 => out_open = false,
                n => stream.send.send(&Transfer::Output { stderr: false, data: out_buf[..n].to_vec() }).await?,
            },
            n = err.read(&mut err_buf), if err_open => match n? {
                0 => err_open = false,
                n => stream.send.send(&Transfer::Output { stderr: true, data: err_buf[..n].to_vec() }).await?,
            },
            status = child.wait(), if exited.is_none() => exited = Some(status?),
            _ = drain => break,
        }
    }
    let status = match exited {
        Some(status) => status,
        None => child.wait().await?,
    };
    stream.send.send(&Transfer::Exit(status.code())).await?;
    stream.send.finish().await?;
    ctx.ui
        .activity("command", &format!("command finished ({status}): {command}"));
    Ok(())
}

async fn get(stream: &mut SecureStream, ctx: &Context, path: &str) -> anyhow::Result<()> {
    let source = ctx.resolve(path);
    let (_, total) = match files::measure(&source).await {
        Ok(m) => m,
        Err(e) => {
            stream.send.send(&Response::Refused(e.to_string())).await?;
            return Ok(stream.send.finish().await?);
        }
    };
    stream.send.send(&Response::Accepted).await?;
    ctx.ui.activity(
        "download",
        &format!("sending {} ({})", source.display(), size(total)),
    );
    let bar = ctx.ui.progress(&format!("sending {}", source.display()));
    bar.set_length(total);
    files::send_path(&mut stream.send, &source, &mut |n| bar.inc(n)).await?;
    bar.finish_and_clear();
    stream.send.finish().await?;
    stream.send.flushed().await;
    ctx.ui.activity(
        "download",
        &format!("sent {} ({})", source.display(), size(total)),
    );
    Ok(())
}

async fn put(
    stream: &mut SecureStream,
    ctx: &Context,
    path: &str,
    overwrite: bool,
    total_bytes: u64,
) -> anyhow::Result<()> {
    let dest = ctx.resolve(path);
    let exists = tokio::fs::symlink_metadata(&dest).await.is_ok();
    // Replacing the customer's files needs the assistant to ask for it (-f) and, when someone
    // is at the keyboard, the customer's yes; a scripted agent's --allow upload is that yes.
    let refusal = match (exists, overwrite) {
        (true, false) => Some(format!(
            "{} already exists on the customer's computer",
            dest.display()
        )),
        (true, true) if !ctx.ui.is_json() => {
            let question = format!(
                "The assistant wants to REPLACE {} on this computer. Allow?",
                dest.display()
            );
            (!ctx.ui.ask(&question).await).then(|| "the customer declined to replace the file".to_owned())
        }
        _ => None,
    };
    if let Some(reason) = refusal {
        ctx.ui.activity("refused", &format!("refused upload: {reason}"));
        stream.send.send(&Response::Refused(reason)).await?;
        return Ok(stream.send.finish().await?);
    }
    stream.send.send(&Response::Accepted).await?;
    ctx.ui
        .activity("upload", &format!("receiving {}", dest.display()));
    let bar = ctx.ui.progress(&format!("receiving {}", dest.display()));
    bar.set_length(total_bytes);
    let result = files::receive_into(&mut stream.recv, &dest, overwrite, &mut |n| bar.inc(n)).await;
    bar.finish_and_clear();
    // Tell the assistant whether the files arrived intact.
    let outcome = match &result {
        Ok(_) => Transfer::Done,
        Err(e) => Transfer::Failed(e.to_string()),
    };
    let _ = stream.send.send(&outcome).await;
    let _ = stream.send.finish().await;
    let bytes = result.map_err(|e: TransferError| anyhow::anyhow!(e))?;
    ctx.ui.activity(
        "upload",
        &format!("received {} ({}, verified)", dest.display(), size(bytes)),
    );
    Ok(())
}

async fn info(stream: &mut SecureStream, ctx: &Context) -> anyhow::Result<()> {
    stream.send.send(&Response::Accepted).await?;
    let facts = tokio::task::spawn_blocking(crate::sysinfo::collect).await?;
    stream.send.send(&Transfer::Info(facts)).await?;
    stream.send.finish().await?;
    ctx.ui.activity("info", "system information read");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_request_needs_its_grant() {
        let none = Grants::NONE;
        let exec = Request::Exec { command: "ls".into() };
        let put = Request::Put {
            path: "x".into(),
            kind: ponte_protocol::app::EntryKind::File,
            total_bytes: 1,
            overwrite: false,
        };
        let get = Request::Get { path: "x".into() };
        assert!(matches!(authorize(&exec, none), Decision::Refuse(r) if r.contains("terminal")));
        assert!(matches!(authorize(&put, none), Decision::Refuse(r) if r.contains("upload")));
        assert!(matches!(authorize(&Request::Info, none), Decision::Refuse(r) if r.contains("info")));
        // Downloads without a session grant are asked per file.
        assert!(matches!(authorize(&get, none), Decision::Ask(_)));

        let screen = Request::Screen { max_fps: 30 };
        let click = Request::Input(vec![InputEvent::Button {
            button: 1,
            pressed: true,
        }]);
        assert!(matches!(authorize(&screen, none), Decision::Refuse(r) if r.contains("screen")));
        assert!(matches!(authorize(&click, none), Decision::Refuse(r) if r.contains("control")));
        let view_only = Grants::parse_list("screen").unwrap();
        assert_eq!(authorize(&screen, view_only), Decision::Allow);
        assert!(matches!(authorize(&click, view_only), Decision::Refuse(r) if r.contains("control")));
        let flood = Request::Input(vec![InputEvent::Move { x: 1, y: 1 }; MAX_EVENTS + 1]);
        assert!(matches!(authorize(&flood, Grants::all()), Decision::Refuse(_)));

        let all = Grants::all();
        let shell = Request::Shell { cols: 80, rows: 24 };
        assert!(matches!(authorize(&shell, none), Decision::Refuse(r) if r.contains("terminal")));
        for r in [&exec, &put, &get, &Request::Info, &shell, &screen, &click] {
            assert_eq!(authorize(r, all), Decision::Allow);
        }
        // One grant does not open another.
        let terminal = Grants::parse_list("terminal").unwrap();
        assert_eq!(authorize(&exec, terminal), Decision::Allow);
        assert!(matches!(authorize(&put, terminal), Decision::Refuse(_)));
        let long = Request::Exec {
            command: "x".repeat(MAX_PATH + 1),
        };
        assert!(matches!(authorize(&long, all), Decision::Refuse(_)));
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(size(10), "10 bytes");
        assert_eq!(size(2048), "2.0 KiB");
        assert_eq!(size(100 << 20), "100.0 MiB");
    }
}
