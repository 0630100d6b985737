//! A session with a connected assistant: consent, then serving requests under the live grants
//! until either side ends it. The session loop never waits on the assistant: messages to it go
//! through a writer task, so the customer's "end" and revocations always act at once.

use std::sync::Arc;
use std::time::Duration;

use ponte_protocol::app::{Capability, Control, EndReason, Grants, MAX_CHAT};
use ponte_protocol::text::PeerText;
use tokio::sync::mpsc;

use crate::capability::Context;
use crate::config::Config;
use crate::customer::Customer;
use crate::desktop::{DesktopWorker, InjectedInput};
use crate::frontend::{Event, Events, Kind, Party};
use crate::grants::LiveGrants;
use crate::questions::Questions;
use crate::rendezvous::Paired;
use crate::scope::Scope;

/// How long the customer has to answer the consent question.
const CONSENT_TIMEOUT: Duration = Duration::from_secs(600);

/// How long requests get to wind down when the session ends.
const WIND_DOWN: Duration = Duration::from_secs(3);

/// The assistant's chat: a burst of [`ChatLimit::BURST`] messages, then one a second; more
/// are dropped (and the customer told once per flood), so chat cannot bury the screen.
struct ChatLimit {
    tokens: f64,
    last: std::time::Instant,
    dropping: bool,
}

impl ChatLimit {
    const BURST: f64 = 20.0;

    fn new() -> ChatLimit {
        ChatLimit {
            tokens: Self::BURST,
            last: std::time::Instant::now(),
            dropping: false,
        }
    }

    /// Whether to show the next message; `Err(true)` the first time one is dropped.
    fn admit(&mut self) -> Result<(), bool> {
        let now = std::time::Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64()).min(Self::BURST);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.dropping = false;
            Ok(())
        } else {
            Err(!std::mem::replace(&mut self.dropping, true))
        }
    }
}

/// Shows the assistant's chat message, within the limit.
fn assistant_chat(events: &Events, limit: &mut ChatLimit, text: ponte_protocol::PeerText) {
    if text.len() > MAX_CHAT {
        events.activity(Kind::Refused, crate::t!(events.tr(), "chat-too-long"));
        return;
    }
    match limit.admit() {
        Ok(()) => events.emit(Event::Chat {
            from: Party::Assistant,
            text,
        }),
        Err(true) => events.activity(Kind::Refused, crate::t!(events.tr(), "chat-too-fast")),
        Err(false) => {}
    }
}

/// The core's parts a session uses.
pub struct Parts<'a> {
    /// Shown and journaled.
    pub events: &'a Events,
    /// The question desk.
    pub questions: &'a Questions,
    /// The live grants.
    pub grants: &'a LiveGrants,
    /// When the assistant last typed or clicked.
    pub injected: InjectedInput,
}

/// Runs the session to its end; returns why it ended.
pub async fn run(
    config: &Config,
    scope: Scope,
    paired: Paired,
    parts: Parts<'_>,
    customer: &mut Customer,
) -> anyhow::Result<String> {
    let Parts {
        events,
        questions,
        grants,
        injected,
    } = parts;
    let Paired {
        client,
        session,
        control,
        peer,
        ..
    } = paired;
    let ponte_session::SecureStream {
        send: control_send,
        recv: mut control_recv,
        ..
    } = control;
    // Everything for the assistant goes through one writer, so nothing here waits on it.
    let (to_assistant, mut outbox) = mpsc::unbounded_channel::<Control>();
    let writer = tokio::spawn(async move {
        let mut send = control_send;
        while let Some(message) = outbox.recv().await {
            if send.send(&message).await.is_err() {
                return;
            }
        }
        if send.finish().await.is_ok() {
            // Closing discards unacknowledged data: let the assistant hear why it ended.
            send.flushed(WIND_DOWN).await;
        }
    });

    let mut chat_limit = ChatLimit::new();
    let tr = events.tr();
    let granted = match config.allow {
        Some(g) => Ok(g),
        None if !config.interactive => Ok(Grants::NONE),
        None => {
            events.emit(Event::ConsentNeeded {
                peer: peer.clone(),
                scope: scope.root().to_owned(),
            });
            let deadline = tokio::time::sleep(CONSENT_TIMEOUT);
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    g = customer.consent.recv() => break g.ok_or_else(|| crate::t!(tr, "ended-you")),
                    () = crate::customer::ended(&mut customer.end) => break Err(crate::t!(tr, "ended-you")),
                    () = &mut deadline => break Err(crate::t!(tr, "ended-no-answer")),
                    // The assistant may chat, or leave, while the customer reads.
                    message = control_recv.recv::<Control>() => match message {
                        Ok(Some(Control::Chat { text })) => assistant_chat(events, &mut chat_limit, text),
                        Ok(Some(_)) => {}
                        Ok(None) | Err(_) => {
                            let reason = crate::t!(tr, "ended-left-before-answer");
                            return Ok(close(client, writer, to_assistant, reason).await);
                        }
                    },
                }
            }
        }
    };
    let granted = match granted {
        Ok(granted) => granted,
        Err(reason) => {
            let _ = to_assistant.send(Control::End(EndReason::Declined));
            return Ok(close(client, writer, to_assistant, reason).await);
        }
    };
    grants.set(granted);
    customer.activate();
    events.emit(Event::Connected { peer, granted });
    let _ = to_assistant.send(Control::Grants(granted));

    let desktop = DesktopWorker::start(config.display.clone(), grants.subscribe(), injected);
    let ctx = Arc::new(Context::new(
        events.clone(),
        grants.clone(),
        questions.clone(),
        scope,
        config.interactive,
        desktop,
        Some(session.clone()),
    ));
    let mut requests = tokio::task::JoinSet::new();
    let mut changes = grants.subscribe();
    let mut last = granted;
    let reason = loop {
        tokio::select! {
            stream = session.accept() => match stream {
                Ok(stream) => {
                    let ctx = ctx.clone();
                    requests.spawn(async move { crate::dispatch::serve(stream, &ctx).await });
                }
                Err(e) => break crate::t!(tr, "ended-connection-lost", error = e.to_string()),
            },
            message = control_recv.recv::<Control>() => match message {
                Ok(Some(Control::Chat { text })) => assistant_chat(events, &mut chat_limit, text),

                Ok(Some(Control::End(reason))) => break match reason {
                    EndReason::AssistantEnded => crate::t!(tr, "ended-assistant"),
                    EndReason::CustomerEnded => crate::t!(tr, "ended-you"),
                    EndReason::Declined => crate::t!(tr, "ended-declined"),
                },
                Ok(Some(Control::Grants(_))) => {} // Only the customer grants.
                Ok(None) | Err(_) => break crate::t!(tr, "ended-assistant-left"),
            },
            Ok(()) = changes.changed() => {
                let now = grants.now();
                if last.allows(Capability::Terminal) && !now.allows(Capability::Terminal) {
                    // Whatever left its command's session (setsid, double forks) ends too —
                    // until the customer grants the terminal again.
                    let live = grants.clone();
                    tokio::task::spawn_blocking(move || {
                        crate::process::end_descendants(|| live.now().allows(Capability::Terminal))
                    });
                }
                if now != last {
                    last = now;
                    events.emit(Event::Grants(now));
                    events.activity(
                        Kind::Permissions,
                        crate::t!(tr, "permissions-changed", grants = crate::phrases::grants(tr, now)),
                    );
                    let _ = to_assistant.send(Control::Grants(now));
                }
            }
            Some(text) = customer.chat.recv() => {
                let text = truncate(text, MAX_CHAT);
                events.emit(Event::Chat { from: Party::Customer, text: PeerText::new(text.clone()) });
                let _ = to_assistant.send(Control::Chat { text: text.into() });
            }
            () = crate::customer::ended(&mut customer.end) => {
                let _ = to_assistant.send(Control::End(EndReason::CustomerEnded));
                break crate::t!(tr, "ended-you");
            }
            Some(_) = requests.join_next() => {}
        }
    };
    // Every lease ends: running requests stop, their processes and partial files with them.
    grants.end();
    let _ = tokio::time::timeout(WIND_DOWN, async { while requests.join_next().await.is_some() {} }).await;
    requests.shutdown().await;
    // Nothing the assistant started outlives the session, however it detached.
    let ended = tokio::task::spawn_blocking(|| crate::process::end_descendants(|| false))
        .await
        .unwrap_or(0);
    if ended > 0 {
        events.activity(Kind::Command, crate::t!(tr, "processes-ended", count = ended));
    }
    if let Ok(ctx) = Arc::try_unwrap(ctx) {
        ctx.desktop.close().await;
    }
    drop(session);
    Ok(close(client, writer, to_assistant, reason).await)
}

/// Lets the writer deliver what is queued, then closes the connection; returns `reason`.
async fn close(
    client: ponte_transport::client::RelayClient,
    writer: tokio::task::JoinHandle<()>,
    to_assistant: mpsc::UnboundedSender<Control>,
    reason: String,
) -> String {
    drop(to_assistant);
    let _ = tokio::time::timeout(WIND_DOWN + Duration::from_secs(1), writer).await;
    client.connection().close(0u32.into(), b"session ended");
    // Give the close a moment to reach the relay so the assistant hears it promptly.
    tokio::time::sleep(Duration::from_millis(100)).await;
    reason
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}
