//! A session with a connected assistant: consent, then serving requests under the live grants
//! until either side ends it. The session loop never waits on the assistant: messages to it go
//! through a writer task, so the customer's "end" and revocations always act at once.

use std::sync::Arc;
use std::time::Duration;

use ponte_protocol::app::{Capability, Control, EndReason, Grants, MAX_CHAT, QuickAccessGrant};
use ponte_protocol::identity::PeerIdentity;
use ponte_protocol::os_rng;
use ponte_protocol::text::PeerText;
use tokio::sync::mpsc;

use crate::capability::Context;
use crate::config::Config;
use crate::customer::Customer;
use crate::desktop::{DesktopWorker, InjectedInput};
use crate::frontend::{Event, Events, Kind, Party, Question, QuickTerms};
use crate::grants::LiveGrants;
use crate::questions::{Answer, Questions};
use crate::rendezvous::Paired;
use crate::scope::Scope;
use crate::trusted::{Scope as TrustScope, Trusted};

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
        quick: quick_entry,
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
    let mut quick = QuickRequests::default();
    let tr = events.tr();
    let granted = match config.allow {
        Some(g) => Ok(g),
        None if !config.interactive => Ok(Grants::NONE),
        // The customer chose "allow without asking" for this opt-in: they still see who
        // connected and every action, and can revoke or end at any moment.
        None if quick_entry.as_ref().is_some_and(|e| e.without_asking) => {
            Ok(quick_entry.as_ref().map_or(Grants::NONE, |e| e.grants))
        }
        None => {
            events.emit(Event::ConsentNeeded {
                peer: peer.clone(),
                scope: scope.root().to_owned(),
                remembered: quick_entry.as_ref().map_or(Grants::NONE, |e| e.grants),
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
                        // Nothing is granted yet, so there is nothing to remember.
                        Ok(Some(Control::QuickAccessRequest { .. })) => {
                            if !quick.refuse(&to_assistant) {
                                let reason = crate::t!(tr, "ended-flooded");
                                return Ok(close(client, writer, to_assistant, reason).await);
                            }
                        }
                        Ok(Some(_)) => {}
                        Err(e) if e.is_attack() => {
                            let reason = tampered(events, &to_assistant, &e.to_string());
                            return Ok(close(client, writer, to_assistant, reason).await);
                        }
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
    events.emit(Event::Connected {
        peer: peer.clone(),
        granted,
    });
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
    // The question outlives no session: aborted at the end, which withdraws it.
    let mut quick_question: Option<tokio::task::JoinHandle<()>> = None;
    let reason = loop {
        tokio::select! {
            // Any stream of the session may detect an attack on the path.
            attack = session.attacked() => break tampered(events, &to_assistant, &attack.to_string()),
            stream = session.accept() => match stream {
                Ok(stream) => {
                    let ctx = ctx.clone();
                    requests.spawn(async move { crate::dispatch::serve(stream, &ctx).await });
                }
                Err(e) => break lost(tr, &e),
            },
            message = control_recv.recv::<Control>() => match message {
                Ok(Some(Control::Chat { text })) => assistant_chat(events, &mut chat_limit, text),

                Ok(Some(Control::End(reason))) => break match reason {
                    EndReason::AssistantEnded => crate::t!(tr, "ended-assistant"),
                    EndReason::CustomerEnded => crate::t!(tr, "ended-you"),
                    EndReason::Declined => crate::t!(tr, "ended-declined"),
                    EndReason::Tampered => crate::t!(tr, "ended-tampered"),
                },
                Ok(Some(Control::Grants(_) | Control::QuickAccess(_))) => {} // Only the customer grants.
                // Asked once per session, and only in a session opened with the code: an
                // opt-in never begets another.
                Ok(Some(Control::QuickAccessRequest { organisation, days })) => {
                    if quick_entry.is_none() && !std::mem::replace(&mut quick.asked, true) {
                        let request = QuickRequest { organisation, days, grants: grants.now() };
                        quick_question =
                            offer_quick_access(config, events, questions, &peer, request, to_assistant.clone());
                    } else if !quick.refuse(&to_assistant) {
                        break crate::t!(tr, "ended-flooded");
                    }
                }
                Err(e) if e.is_attack() => break tampered(events, &to_assistant, &e.to_string()),
                Err(e) if e.relay_silent() => break lost(tr, &e),
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
    if let Some(question) = quick_question {
        question.abort();
    }
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

/// Quick-access requests that are refused at once (a second one, one before consent, one in
/// a session opened by quick access) get an answer each — up to this many in a session; a
/// viewer that sends more (each answer would wait in memory while a viewer that does not read
/// holds the writer) ends the session.
const MAX_QUICK_REFUSALS: u32 = 32;

/// The viewer's quick-access requests in this session.
#[derive(Default)]
struct QuickRequests {
    /// One was put to the customer.
    asked: bool,
    refused: u32,
}

impl QuickRequests {
    /// Answers a request "no" without asking; `false` when the viewer has sent too many.
    fn refuse(&mut self, to_assistant: &mpsc::UnboundedSender<Control>) -> bool {
        self.refused += 1;
        if self.refused > MAX_QUICK_REFUSALS {
            return false;
        }
        let _ = to_assistant.send(Control::QuickAccess(None));
        true
    }
}

/// What the assistant asked for with [`Control::QuickAccessRequest`].
struct QuickRequest {
    organisation: bool,
    days: u32,
    /// What the customer allows now: pre-selected next time.
    grants: Grants,
}

/// The assistant asked to reconnect later without a code: asks the customer (only for a
/// verified assistant, and only if someone can be asked), keeps the opt-in and gives the
/// assistant the device's key. Runs beside the session loop, which never waits on a question.
fn offer_quick_access(
    config: &Config,
    events: &Events,
    questions: &Questions,
    peer: &PeerIdentity,
    request: QuickRequest,
    to_assistant: mpsc::UnboundedSender<Control>,
) -> Option<tokio::task::JoinHandle<()>> {
    let tr = events.tr();
    let (
        PeerIdentity::Verified {
            name, organisation, ..
        },
        Some(path),
        true,
    ) = (peer, config.trusted.clone(), config.interactive)
    else {
        if !peer.is_verified() {
            events.activity(Kind::Refused, crate::t!(tr, "quick-unverified"));
        }
        let _ = to_assistant.send(Control::QuickAccess(None));
        return None;
    };
    let scope = if request.organisation {
        TrustScope::Organisation
    } else {
        TrustScope::Assistant
    };
    let proposed = request.days.clamp(1, crate::trusted::MAX_DAYS);
    let who = crate::phrases::quick_who(tr, name, organisation, scope);
    let question = Question::QuickAccess {
        who: who.clone(),
        days: proposed,
        grants: request.grants,
    };
    let (events, questions, peer) = (events.clone(), questions.clone(), peer.clone());
    // Only the answer is awaited: once it came, storing and telling the assistant run to the
    // end, so an abort never leaves an opt-in the assistant did not hear of.
    Some(tokio::spawn(async move {
        let tr = events.tr();
        // Within the time the assistant's viewer waits for the answer, counted from now (a
        // question may wait behind others before it is shown): a later "yes" would store an
        // opt-in the assistant never heard of.
        let answer = tokio::time::timeout(crate::questions::ANSWER_TIMEOUT, questions.ask(question)).await;
        let grant = if let Ok(Answer::Yes(terms)) = answer {
            // The customer's terms, or the proposal; "without asking" only means something
            // with permissions to apply.
            let terms = terms.unwrap_or(QuickTerms {
                days: proposed,
                without_asking: false,
            });
            let without_asking = terms.without_asking && request.grants != Grants::NONE;
            let now = ponte_session::now_unix();
            let until = crate::trusted::ends(now, terms.days);
            let (opt_in, grants) = (peer.clone(), request.grants);
            let stored = Trusted::update_async(path, move |trusted| {
                let device = trusted.add(
                    &opt_in,
                    scope,
                    terms.days,
                    grants,
                    without_asking,
                    now,
                    &mut os_rng(),
                )?;
                Ok((device, trusted.entries().to_vec()))
            })
            .await;
            match stored {
                Ok((device, entries)) => {
                    events.emit(Event::QuickAccess(entries));
                    let mut line = crate::t!(tr, "quick-granted", who = who, until = tr.date_time(until));
                    if without_asking {
                        line.push_str(&crate::t!(tr, "trusted-without-asking"));
                    }
                    events.activity(Kind::Permissions, line);
                    Some(QuickAccessGrant {
                        device,
                        not_after: until,
                    })
                }
                Err(e) => {
                    events.activity(
                        Kind::Failed,
                        crate::t!(tr, "quick-unavailable", error = e.to_string()),
                    );
                    None
                }
            }
        } else {
            events.activity(Kind::Refused, crate::t!(tr, "quick-declined"));
            None
        };
        let _ = to_assistant.send(Control::QuickAccess(grant));
    }))
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

/// A stream of the session detected an attack on the path (`what`): the customer's log says
/// what, the assistant is told the session ends (best effort: the relay may drop it), and the
/// customer's reason for the end is returned.
fn tampered(events: &Events, to_assistant: &mpsc::UnboundedSender<Control>, what: &str) -> String {
    events.activity(
        Kind::Failed,
        crate::t!(events.tr(), "tampered-detected", error = what),
    );
    let _ = to_assistant.send(Control::End(EndReason::Tampered));
    crate::t!(events.tr(), "ended-tampered")
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

/// Why the session ended when its connection did: the relay falling silent is told apart from
/// other failures, so the customer knows to start again rather than wait for the assistant.
fn lost(tr: &crate::i18n::Tr, error: &ponte_session::SessionError) -> String {
    if error.relay_silent() {
        crate::t!(tr, "ended-relay-lost")
    } else {
        crate::t!(tr, "ended-connection-lost", error = error.to_string())
    }
}
