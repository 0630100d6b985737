//! A session with a connected assistant: consent, then serving requests under the live grants
//! until either side ends it. The session loop never waits on the assistant: messages to it go
//! through a writer task, so the customer's "end" and revocations always act at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ponte_e2e::app::{Capability, Control, EndReason, Grants, MAX_CHAT};
use ponte_e2e::identity::PeerIdentity;
use ponte_session::{SecureRecv, Session};
use ponte_transport::bucket::TokenBucket;
use ponte_transport::client::RelayClient;
use ponte_wire::text::PeerText;
use tokio::sync::mpsc;

use crate::capability::Context;
use crate::config::Config;
use crate::customer::Customer;
use crate::desktop::{DesktopWorker, InjectedInput};
use crate::events::Events;
use crate::frontend::{Attempt, Event, Kind, Party};
use crate::grants::LiveGrants;
use crate::i18n::t;
use crate::own_files::OwnFiles;
use crate::questions::Questions;
use crate::quick_access;
use crate::quick_access::opt_ins::Entry;
use crate::rendezvous::Paired;
use crate::scope::Scope;

/// How long the customer has to answer the consent question.
const CONSENT_TIMEOUT: Duration = Duration::from_secs(600);

/// How long requests get to wind down when the session ends.
const WIND_DOWN: Duration = Duration::from_secs(3);

/// The assistant's chat: a burst of [`ChatLimit::BURST`] messages, then one a second; more
/// are dropped (and the customer told once per flood), so chat cannot bury the screen.
struct ChatLimit {
    bucket: TokenBucket,
    dropping: bool,
}

impl ChatLimit {
    const BURST: f64 = 20.0;

    fn new(now: Instant) -> ChatLimit {
        ChatLimit {
            bucket: TokenBucket::new(1.0, Self::BURST, now),
            dropping: false,
        }
    }

    /// Whether to show the next message; `Err(true)` the first time one is dropped.
    fn admit(&mut self, now: Instant) -> Result<(), bool> {
        match self.bucket.try_take(1.0, now) {
            Ok(()) => {
                self.dropping = false;
                Ok(())
            }
            Err(_) => Err(!std::mem::replace(&mut self.dropping, true)),
        }
    }
}

/// Shows the assistant's chat message, within the limit.
fn assistant_chat(events: &Events, limit: &mut ChatLimit, text: ponte_wire::PeerText) {
    if text.len() > MAX_CHAT {
        events.activity(Kind::Refused, t!(events.tr(), "chat-too-long"));
        return;
    }
    match limit.admit(Instant::now()) {
        Ok(()) => events.emit(Event::Chat {
            from: Party::Assistant,
            text,
        }),
        Err(true) => events.activity(Kind::Refused, t!(events.tr(), "chat-too-fast")),
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
    let Paired {
        mut client,
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
    let (to_assistant, writer) = writer(control_send);
    let mut live = Live {
        config,
        events: parts.events,
        grants: parts.grants,
        to_assistant,
        writer,
        peer,
        quick_entry,
        chat_limit: ChatLimit::new(Instant::now()),
        quick: quick_access::QuickRequests::default(),
        last: Grants::NONE,
    };
    let granted = match live.consent(&scope, customer, &mut control_recv).await {
        Ok(granted) => granted,
        Err(reason) => {
            let reason = operator_ended(&live, &session).unwrap_or(reason);
            return Ok(close(client, live.writer, live.to_assistant, reason).await);
        }
    };
    live.connected(granted, customer);
    // As they are before the assistant can act here, to tell the customer what changed.
    let own_files = OwnFiles::snapshot(config.own_files());
    let desktop = DesktopWorker::start(config.display.clone(), live.grants.subscribe(), parts.injected);
    let ctx = Arc::new(Context::new(
        live.events.clone(),
        live.grants.clone(),
        parts.questions.clone(),
        scope,
        config.interactive,
        desktop,
        Some(session.clone()),
    ));
    let (reason, listening) = live
        .serve(&session, &mut client, &ctx, customer, &mut control_recv)
        .await;
    let reason = operator_ended(&live, &session).unwrap_or(reason);
    let ended = end_access(live.events, ctx, session, &reason).await;
    let changed = own_files.changed();
    for path in &changed {
        let path = crate::i18n::phrases::path(path);
        live.events
            .emit(Event::Note(t!(live.events.tr(), "own-file-changed", path = path)));
    }
    // Only now, and only then, may the customer be asked for what outlives the session.
    if let Some(request) = live.quick.later.take() {
        let tr = live.events.tr();
        let not_asked = if !listening {
            Some(t!(tr, "quick-not-asked-gone"))
        } else if !ended.clean {
            Some(t!(tr, "quick-not-asked-running"))
        } else if !changed.is_empty() {
            Some(t!(tr, "quick-not-asked-changed"))
        } else {
            None
        };
        let answer = match not_asked {
            Some(why) => {
                live.events.activity(Kind::Refused, why);
                None
            }
            None => {
                let (events, questions) = (live.events, parts.questions);
                quick_access::ask(
                    config,
                    events,
                    questions,
                    customer,
                    &mut client,
                    request,
                    live.last,
                )
                .await
            }
        };
        let _ = live.to_assistant.send(Control::QuickAccess(answer));
        // The relay acknowledges what it forwards, not the assistant, and closing now could
        // cut the answer on its way: the assistant's viewer leaves once it has read it.
        let _ = tokio::time::timeout(WIND_DOWN, quick_access::assistant_left(&mut client)).await;
    }
    Ok(close(client, live.writer, live.to_assistant, reason).await)
}

/// Starts the one writer everything for the assistant goes through, so that nothing in the
/// session waits on the assistant.
fn writer(
    control: ponte_session::SecureSend,
) -> (mpsc::UnboundedSender<Control>, tokio::task::JoinHandle<()>) {
    let (to_assistant, mut outbox) = mpsc::unbounded_channel::<Control>();
    let writer = tokio::spawn(async move {
        let mut send = control;
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
    (to_assistant, writer)
}

/// Why a session ended, and whether the assistant is still there to hear an answer.
type Ending = (String, bool);

/// What the session's phases and handlers share.
struct Live<'a> {
    config: &'a Config,
    events: &'a Events,
    grants: &'a LiveGrants,
    to_assistant: mpsc::UnboundedSender<Control>,
    /// The task that writes `to_assistant` on the control stream.
    writer: tokio::task::JoinHandle<()>,
    peer: PeerIdentity,
    /// The opt-in that let the assistant in without a code, if one did.
    quick_entry: Option<Entry>,
    chat_limit: ChatLimit,
    quick: quick_access::QuickRequests,
    /// The grants as last told.
    last: Grants,
}

impl Live<'_> {
    /// What the customer grants to start with (`Err`: why the session ends instead): a
    /// script's `--allow`, an opt-in's "without asking", or the customer's answer.
    async fn consent(
        &mut self,
        scope: &Scope,
        customer: &mut Customer,
        control: &mut SecureRecv,
    ) -> Result<Grants, String> {
        match (&self.quick_entry, self.config.allow) {
            // What a script's agent allows up front is for the code it showed: an assistant let
            // in by an opt-in never gets it.
            (None, Some(g)) => Ok(g),
            // The customer chose "allow without asking" for this opt-in: they still see who
            // connected and every action, and can revoke or end at any moment.
            (Some(entry), _) if entry.without_asking => Ok(entry.grants),
            _ if !self.config.interactive => Ok(Grants::NONE),
            _ => {
                self.events.emit(Event::ConsentNeeded {
                    peer: self.peer.clone(),
                    scope: scope.root().to_owned(),
                    remembered: self.quick_entry.as_ref().map_or(Grants::NONE, |e| e.grants),
                });
                self.ask_consent(customer, control).await
            }
        }
    }

    /// Waits for the customer's answer to the consent question; the assistant may chat, or
    /// leave, meanwhile.
    async fn ask_consent(
        &mut self,
        customer: &mut Customer,
        control: &mut SecureRecv,
    ) -> Result<Grants, String> {
        let tr = self.events.tr();
        let deadline = tokio::time::sleep(CONSENT_TIMEOUT);
        tokio::pin!(deadline);
        // The customer did not let the assistant in: it is told so.
        let declined = |to_assistant: &mpsc::UnboundedSender<Control>, why: String| {
            let _ = to_assistant.send(Control::End(EndReason::Declined));
            Err(why)
        };
        loop {
            tokio::select! {
                g = customer.consent.recv() => match g {
                    Some(g) => return Ok(g),
                    None => return declined(&self.to_assistant, t!(tr, "ended-you")),
                },
                () = crate::customer::ended(&mut customer.end) => return declined(&self.to_assistant, t!(tr, "ended-you")),
                () = &mut deadline => return declined(&self.to_assistant, t!(tr, "ended-no-answer")),
                message = control.recv::<Control>() => match message {
                    Ok(Some(Control::Chat { text })) => assistant_chat(self.events, &mut self.chat_limit, text),
                    // Nothing is granted yet, so there is nothing to remember.
                    Ok(Some(Control::QuickAccessRequest { .. })) => {
                        if !self.quick.refuse(&self.to_assistant) {
                            return Err(t!(tr, "ended-flooded"));
                        }
                    }
                    Ok(Some(_)) => {}
                    Err(e) if e.is_attack() => return Err(tampered(self.events, &self.to_assistant, &e.to_string())),
                    Ok(None) | Err(_) => return Err(t!(tr, "ended-left-before-answer")),
                },
            }
        }
    }

    /// The assistant is let in with `granted`: the customer and the assistant are told.
    fn connected(&mut self, granted: Grants, customer: &Customer) {
        self.grants.set(granted);
        customer.activate();
        self.events.emit(Event::Connected {
            peer: self.peer.clone(),
            granted,
        });
        let _ = self.to_assistant.send(Control::Grants(granted));
        let secs = self.config.resume.as_secs().try_into().unwrap_or(u32::MAX);
        let _ = self.to_assistant.send(Control::ResumeWindow { secs });
        self.last = granted;
    }

    /// Serves the assistant's requests and both sides' messages until one side ends the
    /// session.
    async fn serve(
        &mut self,
        session: &Session,
        client: &mut RelayClient,
        ctx: &Arc<Context>,
        customer: &mut Customer,
        control: &mut SecureRecv,
    ) -> Ending {
        let tr = self.events.tr();
        let mut requests = tokio::task::JoinSet::new();
        let mut changes = self.grants.subscribe();
        let ending = loop {
            tokio::select! {
                // Any stream of the session may detect an attack on the path.
                attack = session.attacked() => break (tampered(self.events, &self.to_assistant, &attack.to_string()), false),
                stream = session.accept() => match stream {
                    Ok(stream) => {
                        let ctx = ctx.clone();
                        requests.spawn(async move { crate::dispatch::serve(stream, &ctx).await });
                    }
                    Err(e) if self.may_resume(&e) => match self.resume(session, client, ctx, customer).await {
                        Ok(resumed) => *control = resumed,
                        Err(ending) => break ending,
                    },
                    Err(e) => break (lost(tr, &e), false),
                },
                message = control.recv::<Control>() => match message {
                    Err(e) if self.may_resume(&e) => match self.resume(session, client, ctx, customer).await {
                        Ok(resumed) => *control = resumed,
                        Err(ending) => break ending,
                    },
                    message => if let Some(ending) = self.on_control(message) {
                        break ending;
                    }
                },
                Ok(()) = changes.changed() => self.on_grants_changed(),
                Some(text) = customer.chat.recv() => self.on_customer_chat(text),
                () = crate::customer::ended(&mut customer.end) => {
                    let _ = self.to_assistant.send(Control::End(EndReason::CustomerEnded));
                    break (t!(tr, "ended-you"), true);
                }
                Some(_) = requests.join_next() => {}
            }
        };
        // Every lease ends: running requests stop, their processes and partial files with them.
        self.grants.end();
        let _ =
            tokio::time::timeout(WIND_DOWN, async { while requests.join_next().await.is_some() {} }).await;
        requests.shutdown().await;
        ending
    }

    /// Whether the session waits for its assistant after `error`: the connection was lost (not
    /// ended by either side), and the customer's agent keeps sessions for a resume.
    fn may_resume(&self, error: &ponte_session::SessionError) -> bool {
        !self.config.resume.is_zero() && error.resumable()
    }

    /// The connection was lost: waits for the assistant's viewer to resume the session (no new
    /// code or consent: the grants stay as the customer left them) — the new control stream —
    /// or for the customer to end it, or for the resume window to pass. Terminals wait for
    /// their viewer meanwhile (see [`crate::capability::parked`]); other requests that were
    /// running ended with the old connection.
    async fn resume(
        &mut self,
        session: &Session,
        client: &mut RelayClient,
        ctx: &Context,
        customer: &mut Customer,
    ) -> Result<SecureRecv, Ending> {
        ctx.parked.resuming();
        let resumed = self.resumed(session, client, customer).await;
        ctx.parked.resumed(resumed.is_ok());
        resumed
    }

    /// The resume itself, for [`Live::resume`], which tells the parked terminals how it went.
    async fn resumed(
        &mut self,
        session: &Session,
        client: &mut RelayClient,
        customer: &mut Customer,
    ) -> Result<SecureRecv, Ending> {
        let tr = self.events.tr();
        let window = self.config.resume;
        self.events.emit(Event::Reconnecting(Some(window)));
        client.connection().close(0u32.into(), b"resuming");
        let deadline = tokio::time::Instant::now() + window;
        let events = self.events;
        let turned_away = |e: &ponte_session::SessionError| {
            events.emit(Event::Attempt(Attempt::ResumeFailed(e.to_string().into())));
        };
        let resumed = tokio::select! {
            resumed = ponte_session::resume::agent(&self.config.relay, session, deadline, turned_away) => resumed,
            () = crate::customer::ended(&mut customer.end) => {
                // The assistant hears it when it looks for the session again.
                if let Err(e) = ponte_session::resume::tell_ended(&self.config.relay, session).await {
                    tracing::info!("the relay could not be told the session ended: {e}");
                }
                return Err((t!(tr, "ended-you"), false));
            }
        };
        let ponte_session::resume::Resumed {
            client: resumed,
            control,
        } = resumed.map_err(|e| {
            tracing::info!("the session was not resumed: {e}");
            (t!(tr, "ended-not-resumed", secs = window.as_secs()), false)
        })?;
        *client = resumed;
        let ponte_session::SecureStream { send, recv, .. } = control;
        // What was queued for the old stream is gone with it; the grants are told again.
        let (to_assistant, writer) = writer(send);
        self.to_assistant = to_assistant;
        std::mem::replace(&mut self.writer, writer).abort();
        let _ = self.to_assistant.send(Control::Grants(self.grants.now()));
        self.events.emit(Event::Reconnecting(None));
        Ok(recv)
    }

    /// A message from the assistant on the control stream; `Some` when the session ends.
    fn on_control(
        &mut self,
        message: Result<Option<Control>, ponte_session::SessionError>,
    ) -> Option<Ending> {
        let tr = self.events.tr();
        match message {
            Ok(Some(Control::Chat { text })) => assistant_chat(self.events, &mut self.chat_limit, text),
            Ok(Some(Control::End(reason))) => {
                return Some(match reason {
                    EndReason::AssistantEnded => (t!(tr, "ended-assistant"), true),
                    EndReason::CustomerEnded => (t!(tr, "ended-you"), true),
                    EndReason::Declined => (t!(tr, "ended-declined"), true),
                    // Nothing more is asked in a session someone attacked.
                    EndReason::Tampered => (t!(tr, "ended-tampered"), false),
                });
            }
            // Only the customer grants.
            Ok(Some(
                Control::Grants(_)
                | Control::QuickAccess(_)
                | Control::QuickAccessLater
                | Control::ResumeWindow { .. },
            )) => {}
            // Asked once per session, and only in a session opened with the code: an opt-in
            // never begets another.
            Ok(Some(Control::QuickAccessRequest { organisation, days })) => {
                if self.quick_entry.is_none() && !std::mem::replace(&mut self.quick.asked, true) {
                    self.quick.later =
                        quick_access::accept(self.config, self.events, &self.peer, organisation, days);
                    let _ = self.to_assistant.send(match self.quick.later {
                        Some(_) => Control::QuickAccessLater,
                        None => Control::QuickAccess(None),
                    });
                } else if !self.quick.refuse(&self.to_assistant) {
                    return Some((t!(tr, "ended-flooded"), false));
                }
            }
            Err(e) if e.is_attack() => {
                return Some((tampered(self.events, &self.to_assistant, &e.to_string()), false));
            }
            Err(e) if e.relay_silent() => return Some((lost(tr, &e), false)),
            Ok(None) | Err(_) => return Some((t!(tr, "ended-assistant-left"), false)),
        }
        None
    }

    /// The customer granted or revoked something: the assistant is told, and what leaves the
    /// terminal's reach ends with it.
    fn on_grants_changed(&mut self) {
        let tr = self.events.tr();
        let now = self.grants.now();
        if self.last.allows(Capability::Terminal) && !now.allows(Capability::Terminal) {
            // Whatever left its command's session (setsid, double forks) ends too — until the
            // customer grants the terminal again.
            let live = self.grants.clone();
            tokio::task::spawn_blocking(move || {
                crate::process::end_descendants(|| live.now().allows(Capability::Terminal))
            });
        }
        if now != self.last {
            self.last = now;
            self.events.emit(Event::Grants(now));
            self.events.activity(
                Kind::Permissions,
                t!(
                    tr,
                    "permissions-changed",
                    grants = crate::i18n::phrases::grants(tr, now)
                ),
            );
            let _ = self.to_assistant.send(Control::Grants(now));
        }
    }

    /// The customer's chat message, to the assistant.
    fn on_customer_chat(&self, text: String) {
        let text = truncate(text, MAX_CHAT);
        self.events.emit(Event::Chat {
            from: Party::Customer,
            text: PeerText::new(text.clone()),
        });
        let _ = self.to_assistant.send(Control::Chat { text: text.into() });
    }
}

/// Ends everything the assistant could act through: every process it started (however it
/// detached), the desktop (capture, injected input) and the session; then tells the customer
/// that access has ended, and what Ponte could not stop.
async fn end_access(
    events: &Events,
    ctx: Arc<Context>,
    session: Session,
    reason: &str,
) -> crate::process::Ended {
    let tr = events.tr();
    let ended = tokio::task::spawn_blocking(|| crate::process::end_descendants(|| false))
        .await
        .unwrap_or(crate::process::Ended {
            killed: 0,
            clean: false,
        });
    if ended.killed > 0 {
        events.activity(Kind::Command, t!(tr, "processes-ended", count = ended.killed));
    }
    if let Ok(ctx) = Arc::try_unwrap(ctx) {
        ctx.desktop.close().await;
    }
    drop(session);
    // Everything the assistant ran through Ponte has stopped and no input of theirs can arrive.
    events.emit(Event::AccessEnded {
        reason: reason.to_owned(),
    });
    // What Ponte cannot stop or undo, it tells.
    if !ended.clean {
        events.emit(Event::Note(t!(tr, "processes-still-running")));
    }
    ended
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
    events.activity(Kind::Failed, t!(events.tr(), "tampered-detected", error = what));
    let _ = to_assistant.send(Control::End(EndReason::Tampered));
    t!(events.tr(), "ended-tampered")
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

/// The relay's operator ended the session: whatever ended it first here (a stream the relay
/// cut, the assistant's side gone quiet), the customer hears that, with the operator's words.
fn operator_ended(live: &Live<'_>, session: &Session) -> Option<String> {
    let words = session.operator_words()?;
    Some(t!(
        live.events.tr(),
        "ended-by-operator",
        reason = words.to_string()
    ))
}

/// Why the session ended when its connection did: the relay falling silent is told apart from
/// other failures, so the customer knows to start again rather than wait for the assistant.
fn lost(tr: &crate::i18n::Tr, error: &ponte_session::SessionError) -> String {
    if error.relay_silent() {
        t!(tr, "ended-relay-lost")
    } else {
        t!(tr, "ended-connection-lost", error = error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_beyond_its_burst_is_dropped_and_told_once_per_flood() {
        let t0 = Instant::now();
        let mut limit = ChatLimit::new(t0);
        for _ in 0..20 {
            assert_eq!(limit.admit(t0), Ok(()));
        }
        assert_eq!(limit.admit(t0), Err(true), "the customer is told");
        assert_eq!(limit.admit(t0), Err(false), "once");
        // One message a second after that; a new flood is told again.
        assert_eq!(limit.admit(t0 + Duration::from_secs(1)), Ok(()));
        assert_eq!(limit.admit(t0 + Duration::from_secs(1)), Err(true));
        assert_eq!(limit.admit(t0 + Duration::from_millis(1500)), Err(false));
        // A quiet minute refills the burst, and no more.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..20 {
            assert_eq!(limit.admit(later), Ok(()));
        }
        assert_eq!(limit.admit(later), Err(true));
    }
}
