//! The one dispatcher: every request stream of the assistant goes through [`serve`], which
//! decides, refuses or accepts, runs the capability under a lease on the live grants, and
//! finishes — the same sequence for every capability, written once.
//!
//! A request runs only while its capability's lease holds: when the customer revokes it, the
//! dispatcher drops the running capability at once (its processes, partial files and input die
//! with it), tells the assistant why on the same stream, and the customer sees what stopped.

use std::time::Duration;

use ponte_e2e::app::{Request, Response};
use ponte_session::{Incoming, SecureStream};
use ponte_wire::text::PeerText;

use crate::capability::{
    Context, Decision, Handler, Reason, clipboard, exec, files, info, input, list, screen, shell,
};
use crate::frontend::Kind;
use crate::i18n::t;

/// How long a new stream may take to say what it requests.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the assistant gets to receive the end of a request before the stream is dropped.
const FINISH_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves one request stream to its end.
pub async fn serve(incoming: Incoming, ctx: &Context) {
    // A stream with no valid first record is dropped (quinn resets it); the session goes on.
    let Ok(mut stream) = incoming.open().await else {
        return;
    };
    let request = match tokio::time::timeout(REQUEST_TIMEOUT, stream.recv.recv::<Request>()).await {
        Ok(Ok(Some(request))) => request,
        // Silence, garbage or a closed stream: nothing was asked.
        _ => {
            stream.send.reset();
            return;
        }
    };
    match request {
        Request::Exec { command } => run(exec::Exec::new(command), stream, ctx).await,
        Request::Shell { cols, rows } => run(shell::Shell::new(cols, rows), stream, ctx).await,
        Request::Get { path } => run(files::Get::new(path), stream, ctx).await,
        Request::Put {
            path,
            kind,
            files,
            total_bytes,
            overwrite,
        } => {
            let put = files::Put::new(path, kind, files, total_bytes, overwrite);
            run(put, stream, ctx).await
        }
        Request::Info => run(info::Info, stream, ctx).await,
        Request::Screen { max_fps } => run(screen::Screen::new(max_fps), stream, ctx).await,
        Request::Input(events) => run(input::Input::new(events), stream, ctx).await,
        Request::Reattach { terminal } => reattach(terminal, stream, ctx).await,
        Request::List { path } => run(list::List::new(path), stream, ctx).await,
        Request::ClipboardGet => run(clipboard::Clipboard::Get, stream, ctx).await,
        Request::ClipboardSet { text } => run(clipboard::Clipboard::Set(text), stream, ctx).await,
    }
}

/// A terminal parked by a resume goes on on this stream — only while the terminal is granted
/// (the parked shell runs under its own request's lease).
async fn reattach(terminal: u64, mut stream: SecureStream, ctx: &Context) {
    let parked = match ctx.grants.now().allows(ponte_e2e::app::Capability::Terminal) {
        true => ctx.parked.take(terminal).await,
        false => None,
    };
    let Some(parked) = parked else {
        let refused = Response::Refused("no terminal with this number waits to go on".into());
        let _ = stream.send.send(&refused).await;
        return finish(stream).await;
    };
    if stream.send.send(&Response::Accepted).await.is_ok() {
        // A terminal that ended meanwhile drops the stream (a reset).
        let _ = parked.send(stream);
    }
}

async fn run<H: Handler>(mut handler: H, mut stream: SecureStream, ctx: &Context) {
    let tr = ctx.tr();
    let what = handler.describe(tr);
    let mut lease = ctx.grants.lease(H::GRANT);
    let granted = ctx.grants.now().allows(H::GRANT);
    let decision = tokio::select! {
        biased;
        stop = lease.ended() => Decision::Refuse(Reason::Stopped(stop)),
        // The assistant gave up on the request: its question, if any, is withdrawn.
        () = stream.send.stopped() => return,
        decision = handler.decide(ctx, granted) => decision,
    };
    if let Decision::Refuse(reason) = decision {
        ctx.refused(t!(tr, "refused", what = &what, reason = reason.local(tr)));
        let _ = stream
            .send
            .send(&Response::Refused(reason.english().into()))
            .await;
        finish(stream).await;
        return;
    }
    if stream.send.send(&Response::Accepted).await.is_err() {
        return;
    }
    let outcome = tokio::select! {
        biased;
        stop = lease.ended() => Err((Kind::Stopped, Reason::Stopped(stop))),
        // Errors may quote the peer (or the relay, through quinn): shown inert.
        result = handler.run(&mut stream, ctx) => result.map_err(|e| (Kind::Failed, failure(&e))),
    };
    match outcome {
        Ok(done) => ctx.events.emit(crate::frontend::Event::Activity(done)),
        Err((kind, reason)) => {
            let (line, verb) = match kind {
                Kind::Stopped => (
                    t!(tr, "stopped", what = &what, reason = reason.local(tr)),
                    "stopped",
                ),
                _ => (
                    t!(tr, "failed", what = &what, reason = reason.local(tr)),
                    "failed",
                ),
            };
            ctx.events.activity(kind, line);
            if ctx.session.as_ref().is_some_and(|s| s.attack().is_some()) {
                // The path was attacked: the session ends, and nothing more is sent.
                stream.send.reset();
                return;
            }
            // Complete records only (SecureSend is cancel-safe), so this arrives intact.
            let told = format!("{verb}: {}", reason.english());
            H::tell_ended(&mut stream.send, told.into()).await;
        }
    }
    finish(stream).await;
}

/// Why a request failed: the desktop's failures are said in the customer's language too.
fn failure(e: &anyhow::Error) -> Reason {
    match e.downcast_ref::<crate::desktop::DesktopError>() {
        Some(desktop) => Reason::Desktop(desktop.clone()),
        None => Reason::Error(PeerText::new(format!("{e:#}")).to_string()),
    }
}

async fn finish(mut stream: SecureStream) {
    if stream.send.finish().await.is_ok() {
        stream.send.flushed(FINISH_TIMEOUT).await;
    }
}
