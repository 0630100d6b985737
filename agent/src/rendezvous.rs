//! Waiting for the assistant: connect to the relay, register, show the session ID and code,
//! and run the code-gated handshake with whoever joins — telling the customer about every
//! attempt — until one succeeds, the customer quits, or a relay error ends it. Wrong codes
//! burn the pair after three tries; an expired or burned pair is replaced by a new one.
//!
//! With unexpired quick-access opt-ins ([`crate::trusted`]) the agent also registers its
//! device tag and says whom it waits for; a viewer that joins by the tag gets the
//! key-authenticated handshake instead, and only the assistants those opt-ins admit get in.

use std::time::Duration;

use anyhow::Context as _;
use ponte_protocol::handshake::{CodeAttempts, HandshakeError};
use ponte_protocol::identity::PeerIdentity;
use ponte_protocol::rendezvous::{ClientMessage, Refusal, RelayMessage};
use ponte_protocol::{OneTimeCode, SessionId, os_rng};
use ponte_session::connect::TrustNote;
use ponte_session::{SecureStream, Session, SessionError};
use ponte_transport::client::RelayClient;

use crate::config::{Config, default_log};
use crate::customer::Customer;
use crate::frontend::{Attempt, Event, Events, Question};
use crate::questions::{Answer, Questions};
use crate::trusted::{Entry, Trusted};

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
fn load_trusted(config: &Config) -> Result<Option<Trusted>, crate::trusted::TrustedError> {
    let Some(path) = config.trusted.as_deref() else {
        return Ok(None);
    };
    let trusted = Trusted::load(path)?;
    Ok(Some(trusted).filter(|t| t.any_active(ponte_session::now_unix())))
}

/// Runs one handshake attempt while watching the relay line: the relay says when the viewer
/// leaves, so there is no need to wait out the handshake timeout. `None`: the customer quit.
async fn attempt<T>(
    client: &mut RelayClient,
    events: &Events,
    customer: &mut Customer,
    attempt: impl std::future::Future<Output = Result<T, SessionError>>,
) -> anyhow::Result<Option<Result<T, SessionError>>> {
    tokio::pin!(attempt);
    loop {
        tokio::select! {
            outcome = &mut attempt => return Ok(Some(outcome)),
            message = client.next() => match message.context("connection to the relay")? {
                RelayMessage::PeerLeft => return Ok(Some(Err(SessionError::UnexpectedEnd))),
                RelayMessage::JoinRefused(reason) => {
                    events.emit(Event::Attempt(Attempt::TurnedAway(reason)));
                }
                RelayMessage::Refused(reason) => {
                    anyhow::bail!("the relay ended the session: {reason}")
                }
                _ => {}
            },
            () = crate::customer::ended(&mut customer.end) => return Ok(None),
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
        TrustNote::FirstUse(fp) => events.emit(Event::Note(crate::t!(
            events.tr(),
            "first-relay",
            relay = address,
            fingerprint = fp.to_string()
        ))),
        TrustNote::AcceptedChange(fp) => events.emit(Event::Note(crate::t!(
            events.tr(),
            "accepted-relay",
            fingerprint = fp.to_string()
        ))),
        TrustNote::Trusted => {}
    }
    Ok(client)
}

/// Waits for an assistant with the right code; `None` if the customer quit first.
pub async fn pair(
    config: &Config,
    events: &Events,
    questions: &Questions,
    customer: &mut Customer,
) -> anyhow::Result<Option<Paired>> {
    loop {
        let mut client = tokio::select! {
            client = connect(config, events, questions) => client?,
            () = crate::customer::ended(&mut customer.end) => return Ok(None),
        };
        let (loaded, trouble) = match config.trusted.as_deref().map(Trusted::load).transpose() {
            Ok(loaded) => (loaded, None),
            Err(e) => (None, Some(e)),
        };
        if config.trusted.is_some() {
            // All of them, expired too, for the window's list (an unusable file lists none).
            let entries = loaded.as_ref().map(|t| t.entries().to_vec()).unwrap_or_default();
            events.emit(Event::QuickAccess(entries));
        }
        let trusted = loaded.filter(|t| t.any_active(ponte_session::now_unix()));
        let registered = match trusted.as_ref().and_then(Trusted::device) {
            Some(device) => client.register_device(device.public().tag()).await,
            None => client.register().await,
        };
        let (id, ttl) = registered.context("registering with the relay")?;
        let code = OneTimeCode::random(&mut os_rng());
        let mut attempts = CodeAttempts::new();
        if !events.journal().is_open() {
            let path = config.log.clone().unwrap_or_else(|| default_log(id));
            if let Err(e) = events.journal().open(&path) {
                events.emit(Event::Note(crate::t!(
                    events.tr(),
                    "log-unwritable",
                    path = crate::phrases::path(&path),
                    error = e.to_string()
                )));
            }
        }
        events.emit(Event::Ready {
            session: id,
            code: code.clone(),
            valid_for: ttl,
        });
        if let Some(e) = trouble {
            events.emit(Event::Note(crate::t!(
                events.tr(),
                "quick-unavailable",
                error = e.to_string()
            )));
        }
        if let Some(trusted) = &trusted {
            let now = ponte_session::now_unix();
            for entry in trusted.entries().iter().filter(|e| e.is_active(now)) {
                let who = crate::phrases::trusted_who(events.tr(), entry);
                events.emit(Event::Note(crate::t!(events.tr(), "quick-waiting", who = who)));
            }
        }
        loop {
            let message = tokio::select! {
                m = client.next() => m.context("connection to the relay")?,
                () = crate::customer::ended(&mut customer.end) => return Ok(None),
            };
            match message {
                RelayMessage::Paired => {
                    events.emit(Event::Attempt(Attempt::Connecting));
                    let context = ponte_session::handshake::context(&client, id)?;
                    let connection = client.connection().clone();
                    let handshake = ponte_session::handshake::agent(
                        connection,
                        context,
                        &code,
                        &mut attempts,
                        &config.trust,
                    );
                    let Some(outcome) = attempt(&mut client, events, customer, handshake).await? else {
                        return Ok(None);
                    };
                    let error = match outcome {
                        Ok((session, control, peer)) => {
                            return Ok(Some(Paired {
                                client,
                                session,
                                control,
                                peer,
                                id,
                                quick: None,
                            }));
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
                        // A broken proof: counted, and shown as what it was.
                        e @ (SessionError::Handshake(_)
                        | SessionError::Frame(_)
                        | SessionError::Record(_)) => Attempt::Failed(e.to_string().into()),
                        // Silence, or the connection went away: they left before proving anything.
                        _ => Attempt::Abandoned,
                    }));
                }
                // Every failed attempt was released already; releasing again could turn away
                // the next viewer, whom the relay may have paired in the meantime.
                RelayMessage::PeerLeft => {}
                RelayMessage::Registered { .. } => {}
                RelayMessage::JoinRefused(reason) => {
                    events.emit(Event::Attempt(Attempt::TurnedAway(reason)));
                }
                RelayMessage::Refused(Refusal::Expired) => {
                    events.emit(Event::Attempt(Attempt::Expired));
                    break;
                }
                RelayMessage::Refused(reason) => anyhow::bail!("the relay ended the session: {reason}"),
                // Only viewers are redirected (to the node that holds the session).
                RelayMessage::Redirect { .. } => {}
                RelayMessage::PairedDevice { session } => {
                    events.emit(Event::Attempt(Attempt::Connecting));
                    // The customer may have taken an opt-in back (`ponte-agent trusted remove`)
                    // since the agent registered: every attempt reads the file again, and only
                    // the key whose tag was registered answers.
                    let registered = trusted.as_ref().and_then(Trusted::device).map(|d| d.public());
                    let current = load_trusted(config)
                        .ok()
                        .flatten()
                        .filter(|t| t.device().map(|d| d.public()) == registered);
                    // Only an agent that registered its device tag, for this session, runs the
                    // key handshake; anything else is a relay error and the viewer is let go.
                    let device = current
                        .as_ref()
                        .and_then(Trusted::device)
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
                                &config.trust,
                                &admissions,
                            );
                            match attempt(&mut client, events, customer, handshake).await? {
                                Some(outcome) => outcome,
                                None => return Ok(None),
                            }
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
                        SessionError::Handshake(HandshakeError::NotTrusted(peer)) => {
                            Attempt::NotTrusted(*peer)
                        }
                        e @ (SessionError::Handshake(_)
                        | SessionError::Frame(_)
                        | SessionError::Record(_)) => Attempt::Failed(e.to_string().into()),
                        _ => Attempt::Abandoned,
                    }));
                }
            }
        }
    }
}
