//! Waiting for the assistant: connect to the relay, register, show the session ID and code,
//! and run the code-gated handshake with whoever joins — telling the customer about every
//! attempt — until one succeeds, the customer quits, or a relay error ends it. Wrong codes
//! burn the pair after three tries; an expired or burned pair is replaced by a new one.
//!
//! With unexpired quick-access opt-ins ([`crate::quick_access::opt_ins`]) the agent also registers its
//! device tag, on a second relay connection, and says whom it waits for; a viewer that joins
//! by the tag gets the key-authenticated handshake instead, and only the assistants those
//! opt-ins admit get in.

use std::time::Duration;

use anyhow::Context as _;
use ponte_e2e::handshake::{CodeAttempts, HandshakeError};
use ponte_e2e::identity::PeerIdentity;
use ponte_session::connect::TrustNote;
use ponte_session::{SecureStream, Session, SessionError};
use ponte_transport::client::RelayClient;
use ponte_wire::rendezvous::{ClientMessage, Refusal, RelayMessage};
use ponte_wire::{OneTimeCode, SessionId, os_rng};

use crate::config::{Config, default_log};
use crate::customer::Customer;
use crate::events::Events;
use crate::frontend::{Attempt, Event, Question};
use crate::i18n::t;
use crate::questions::{Answer, Questions};
use crate::quick_access::opt_ins::{Entry, OptIns};

/// A session that passed the handshake.
pub struct Paired {
    /// The relay connection (keep it alive).
    pub client: RelayClient,
    /// The end-to-end session.
    pub session: Session,
    /// The control stream.
    pub control: SecureStream,
    /// Who the assistant is.
    pub peer: PeerIdentity,
    /// The session ID.
    pub id: SessionId,
    /// The quick-access opt-in that let the assistant in without a code, if it did.
    pub quick: Option<Entry>,
}

/// The customer's quick-access opt-ins, if there are active ones (`Ok(None)`: none). A trust
/// file that cannot be used turns quick access off; the caller tells the customer why.
fn load_trusted(config: &Config) -> Result<Option<OptIns>, crate::quick_access::opt_ins::OptInsError> {
    let Some(path) = config.opt_ins.as_deref() else {
        return Ok(None);
    };
    let trusted = OptIns::load(path)?;
    Ok(Some(trusted).filter(|t| t.any_active(ponte_session::now_unix())))
}

/// Runs one handshake attempt while watching the relay line: the relay says when the viewer
/// leaves, so there is no need to wait out the handshake timeout.
async fn attempt<T>(
    client: &mut RelayClient,
    events: &Events,
    line: Line,
    attempt: impl std::future::Future<Output = Result<T, SessionError>>,
) -> anyhow::Result<Result<T, SessionError>> {
    tokio::pin!(attempt);
    loop {
        tokio::select! {
            outcome = &mut attempt => return Ok(outcome),
            message = client.next() => match message.context("connection to the relay")? {
                RelayMessage::PeerLeft => return Ok(Err(SessionError::UnexpectedEnd)),
                RelayMessage::JoinRefused(reason) => events.emit(Event::Attempt(line.turned_away(reason))),
                RelayMessage::Refused(reason) => {
                    anyhow::bail!("the relay ended the session: {reason}")
                }
                _ => {}
            },
        }
    }
}

async fn connect(config: &Config, events: &Events, questions: &Questions) -> anyhow::Result<RelayClient> {
    let address = &config.relay.address;
    let result = match ponte_session::connect::connect(&config.relay, config.accept_new_fingerprint).await {
        Err(SessionError::FingerprintChanged { known, seen }) if config.interactive => {
            let question = Question::RelayChanged {
                relay: address.clone(),
                known: known.clone(),
                seen: seen.clone(),
            };
            match questions.ask(question).await {
                Answer::Yes(_) => ponte_session::connect::connect(&config.relay, true).await,
                _ => Err(SessionError::FingerprintChanged { known, seen }),
            }
        }
        other => other,
    };
    let (client, note) = result.with_context(|| format!("connecting to the relay {address}"))?;
    match note {
        TrustNote::FirstUse(fp) => events.emit(Event::Note(t!(
            events.tr(),
            "first-relay",
            relay = address,
            fingerprint = fp.to_string()
        ))),
        TrustNote::AcceptedChange(fp) => events.emit(Event::Note(t!(
            events.tr(),
            "accepted-relay",
            fingerprint = fp.to_string()
        ))),
        TrustNote::Trusted => {}
    }
    Ok(client)
}

/// Waits for an assistant with the right code — or, with quick-access opt-ins, for one they
/// admit — whichever gets in first; `None` if the customer quit first.
///
/// The two ways in are two registrations on two relay connections: the session ID the
/// customer reads out, and the device tag. Whoever holds the device's public key (every
/// organisation the customer opted in for) can find the tag, so nothing done there may touch
/// the code session: a silent or failing joiner by tag holds only its own line, learns only
/// its own session ID (which no join by ID reaches), and costs the code nothing.
pub async fn pair(
    config: &Config,
    events: &Events,
    questions: &Questions,
    customer: &mut Customer,
) -> anyhow::Result<Option<Paired>> {
    let client = tokio::select! {
        client = connect(config, events, questions) => client?,
        () = crate::customer::ended(&mut customer.end) => return Ok(None),
    };
    let (loaded, trouble) = match config.opt_ins.as_deref().map(OptIns::load).transpose() {
        Ok(loaded) => (loaded, None),
        Err(e) => (None, Some(e)),
    };
    if config.opt_ins.is_some() {
        // All of them, expired too, for the window's list (an unusable file lists none).
        let entries = loaded.as_ref().map(|t| t.entries().to_vec()).unwrap_or_default();
        events.emit(Event::QuickAccess(entries));
    }
    let active = loaded.is_some_and(|t| t.any_active(ponte_session::now_unix()));
    // Only where someone can be asked, whatever the caller says.
    let line = config.quick_line && config.interactive;
    if active && !line {
        events.emit(Event::Note(t!(events.tr(), "quick-off")));
    }
    let active = active && line;
    // The quick-access line starts once the ID and code are shown (so the customer reads them
    // first, and the relay is pinned by the code line's connection).
    let shown = tokio::sync::Notify::new();
    let code = code_line(config, events, questions, client, &shown);
    let quick = async {
        shown.notified().await;
        if let Some(e) = trouble {
            events.emit(Event::Note(t!(
                events.tr(),
                "quick-unavailable",
                error = e.to_string()
            )));
        }
        if active {
            quick_line(config, events).await
        } else {
            std::future::pending().await
        }
    };
    tokio::pin!(code, quick);
    let mut quick_open = true;
    loop {
        tokio::select! {
            paired = &mut code => return paired.map(Some),
            paired = &mut quick, if quick_open => match paired {
                Ok(paired) => return Ok(Some(paired)),
                // The code still works: say why quick access stopped, and go on with it.
                Err(e) => {
                    quick_open = false;
                    events.emit(Event::Note(t!(
                        events.tr(),
                        "quick-unavailable",
                        error = format!("{e:#}")
                    )));
                }
            },
            () = crate::customer::ended(&mut customer.end) => return Ok(None),
        }
    }
}

/// The code session: register, show the ID and code, and run the code-gated handshake with
/// whoever joins, until one succeeds. Wrong codes burn the pair after three tries; an expired
/// or burned pair is replaced by a new one on a new connection.
async fn code_line(
    config: &Config,
    events: &Events,
    questions: &Questions,
    mut client: RelayClient,
    shown: &tokio::sync::Notify,
) -> anyhow::Result<Paired> {
    loop {
        let (id, ttl) = client.register().await.context("registering with the relay")?;
        let code = OneTimeCode::random(&mut os_rng());
        let mut attempts = CodeAttempts::new();
        if !events.journal().is_open() {
            let path = config.log.clone().unwrap_or_else(|| default_log(id));
            if let Err(e) = events.journal().open(&path) {
                events.emit(Event::Note(t!(
                    events.tr(),
                    "log-unwritable",
                    path = crate::i18n::phrases::path(&path),
                    error = e.to_string()
                )));
            }
        }
        events.emit(Event::Ready {
            session: id,
            code: code.clone(),
            valid_for: ttl,
        });
        shown.notify_one();
        loop {
            match client.next().await.context("connection to the relay")? {
                RelayMessage::Paired => {
                    events.emit(Event::Attempt(Attempt::Connecting));
                    let context = ponte_session::handshake::context(&client, id)?;
                    let connection = client.connection().clone();
                    let handshake = ponte_session::handshake::agent(
                        connection,
                        context,
                        &code,
                        &mut attempts,
                        &config.trust.store,
                    );
                    let error = match attempt(&mut client, events, Line::Code, handshake).await? {
                        Ok((session, control, peer)) => {
                            return Ok(Paired {
                                client,
                                session,
                                control,
                                peer,
                                id,
                                quick: None,
                            });
                        }
                        Err(e) => e,
                    };
                    if attempts.must_burn() {
                        let _ = client.send(&ClientMessage::Burn).await;
                        // The relay ends the session (telling the viewer why), then the control
                        // line; closing first would say "peer left".
                        let _ = tokio::time::timeout(Duration::from_secs(3), client.next()).await;
                        client.connection().close(0u32.into(), b"burned");
                        events.emit(Event::Attempt(Attempt::Burned));
                        break;
                    }
                    // Free the ID for the next attempt first, then tell the customer.
                    client.send(&ClientMessage::Release).await?;
                    events.emit(Event::Attempt(match error {
                        SessionError::Handshake(HandshakeError::WrongCode) => Attempt::WrongCode {
                            attempts_left: attempts.remaining(),
                        },
                        error => Line::Code.failed(error),
                    }));
                }
                // A join by tag never reaches a code session (the relay keeps them apart); a
                // relay that says otherwise gets the viewer back, unanswered.
                RelayMessage::PairedDevice { .. } => client.send(&ClientMessage::Release).await?,
                RelayMessage::Refused(Refusal::Expired) => {
                    events.emit(Event::Attempt(Attempt::Expired));
                    break;
                }
                other => other_news(events, Line::Code, other)?,
            }
        }
        client = connect(config, events, questions).await?;
    }
}

/// After a failure the quick-access line tries the relay again after this long, doubling up
/// to [`QUICK_RETRY_MAX`]: a relay that is briefly away must not turn quick access off until
/// the customer restarts the agent.
const QUICK_RETRY: Duration = Duration::from_secs(2);
const QUICK_RETRY_MAX: Duration = Duration::from_secs(60);

/// The quick-access line: register the device tag on a connection of its own and run the
/// key-authenticated handshake with whoever joins by it, until an assistant the opt-ins admit
/// gets in. The registration is renewed when it expires, and tried again (after a pause) when
/// the relay cannot be reached; each time the opt-ins file is read again, and the line stops
/// once no opt-in is left. Its attempts are told as quick access, not as the code's.
async fn quick_line(config: &Config, events: &Events) -> anyhow::Result<Paired> {
    let (mut told, mut warned, mut pause) = (false, false, QUICK_RETRY);
    loop {
        let Some(trusted) = load_trusted(config)? else {
            return std::future::pending().await;
        };
        let Some(key) = trusted.device() else {
            return std::future::pending().await;
        };
        match quick_registration(config, events, &trusted, key, &mut told).await {
            Ok(Some(paired)) => return Ok(paired),
            // Expired: registered again at once.
            Ok(None) => pause = QUICK_RETRY,
            Err(e) => {
                if !std::mem::replace(&mut warned, true) {
                    events.emit(Event::Note(t!(
                        events.tr(),
                        "quick-unavailable",
                        error = format!("{e:#}")
                    )));
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(QUICK_RETRY_MAX);
            }
        }
    }
}

/// One registration of the quick-access line, until a session (`Some`), its expiry (`None`)
/// or a failure.
async fn quick_registration(
    config: &Config,
    events: &Events,
    trusted: &OptIns,
    key: &ponte_e2e::device_key::DeviceKey,
    told: &mut bool,
) -> anyhow::Result<Option<Paired>> {
    let registered = key.public();
    let (mut client, _) = ponte_session::connect::connect(&config.relay, false)
        .await
        .context("connecting to the relay")?;
    let (id, _) = client
        .register_device(registered.0, registered.tag(), |challenge, exporter| {
            key.possession(challenge, exporter)
        })
        .await
        .context("registering for quick access")?;
    // Once findable, the customer hears whom the agent waits for.
    if !std::mem::replace(told, true) {
        let now = ponte_session::now_unix();
        for entry in trusted.entries().iter().filter(|e| e.is_active(now)) {
            let who = crate::i18n::phrases::opt_in_who(events.tr(), entry);
            events.emit(Event::Note(t!(events.tr(), "quick-waiting", who = who)));
        }
    }
    loop {
        match client.next().await.context("connection to the relay")? {
            RelayMessage::PairedDevice { session } => {
                events.emit(Event::Attempt(Attempt::QuickConnecting));
                // The customer may have taken an opt-in back (`ponte-agent quick-access remove`)
                // since the agent registered: every attempt reads the file again, and only the
                // key whose tag was registered answers.
                let current = load_trusted(config)
                    .ok()
                    .flatten()
                    .filter(|t| t.device().map(|d| d.public()) == Some(registered));
                // Only for this registration's session; anything else is a relay error and the
                // viewer is let go.
                let device = current
                    .as_ref()
                    .and_then(OptIns::device)
                    .filter(|_| session == id);
                let outcome = match (device, &current) {
                    (Some(device), Some(trusted)) => {
                        let context = ponte_session::handshake::context(&client, id)?;
                        let connection = client.connection().clone();
                        let admissions = trusted.admissions();
                        let handshake = ponte_session::handshake::agent_key(
                            connection,
                            context,
                            device,
                            &config.trust.store,
                            &admissions,
                        );
                        attempt(&mut client, events, Line::Quick, handshake).await?
                    }
                    _ => Err(SessionError::Handshake(HandshakeError::UnexpectedMessage)),
                };
                let error = match outcome {
                    Ok((session, control, admitted)) => {
                        let quick = current.and_then(|t| t.entries().get(admitted.admission).cloned());
                        return Ok(Some(Paired {
                            client,
                            session,
                            control,
                            peer: admitted.peer,
                            id,
                            quick,
                        }));
                    }
                    Err(e) => e,
                };
                client.send(&ClientMessage::Release).await?;
                events.emit(Event::Attempt(match error {
                    SessionError::Handshake(HandshakeError::NotTrusted(peer)) => Attempt::NotTrusted(*peer),
                    error => Line::Quick.failed(error),
                }));
            }
            // Nobody was given this registration's ID: a join by it is a relay error.
            RelayMessage::Paired => client.send(&ClientMessage::Release).await?,
            // Renewed quietly: the customer sees the code session's expiry, not this one's.
            RelayMessage::Refused(Refusal::Expired) => return Ok(None),
            other => other_news(events, Line::Quick, other)?,
        }
    }
}

/// Which of the agent's two waiting lines something happened on: what the customer is told
/// differs (the tag is known to every assistant the customer opted in for, the ID only to
/// whom the customer read it out).
#[derive(Clone, Copy)]
enum Line {
    /// The session ID and code.
    Code,
    /// The device tag (quick access).
    Quick,
}

impl Line {
    /// What the customer is told about a failed handshake (other than a wrong code or an
    /// assistant the opt-ins do not admit).
    fn failed(self, error: SessionError) -> Attempt {
        // A broken proof is shown as what it was; silence, or the connection going away, as
        // leaving before proving anything.
        let broken = matches!(
            error,
            SessionError::Handshake(_) | SessionError::Frame(_) | SessionError::Record(_)
        );
        let reason = broken.then(|| error.to_string().into());
        match (self, reason) {
            (Line::Code, Some(reason)) => Attempt::Failed(reason),
            (Line::Code, None) => Attempt::Abandoned,
            (Line::Quick, reason) => Attempt::QuickFailed(reason),
        }
    }

    /// The relay turned away someone who asked to join this line's session.
    fn turned_away(self, reason: Refusal) -> Attempt {
        match self {
            Line::Code => Attempt::TurnedAway(reason),
            Line::Quick => Attempt::QuickFailed(Some(reason.to_string().into())),
        }
    }
}

/// The relay's other news on a waiting line.
fn other_news(events: &Events, line: Line, message: RelayMessage) -> anyhow::Result<()> {
    match message {
        RelayMessage::JoinRefused(reason) => events.emit(Event::Attempt(line.turned_away(reason))),
        RelayMessage::Refused(reason) => anyhow::bail!("the relay ended the session: {reason}"),
        // Every failed attempt was released already; releasing again could turn away the next
        // viewer, whom the relay may have paired in the meantime. Only viewers are redirected
        // (to the node that holds the session).
        RelayMessage::PeerLeft | RelayMessage::Registered { .. } | RelayMessage::Redirect { .. } => {}
        // Pairings are the lines' own business; a challenge comes only while registering, an
        // ended resume only to a viewer.
        RelayMessage::Paired
        | RelayMessage::PairedDevice { .. }
        | RelayMessage::DeviceChallenge { .. }
        | RelayMessage::ResumeEnded { .. } => {}
    }
    Ok(())
}
