//! Resuming a session whose connection to the relay was lost: both sides connect again and
//! meet under the session's one-time resume tag, then prove the session's resume secret to
//! each other ([`ponte_e2e::resume`]). The agent waits under the tag; the viewer looks for it
//! until the agent is back. Any node of a relay cluster finds the tag, like a device tag.

use std::time::Duration;

use ponte_transport::client::{ClientError, JoinExtras, RelayClient};
use ponte_wire::rendezvous::{ClientMessage, Refusal, RelayMessage};
use tokio::time::Instant;

use crate::connect::{RESUME_CONNECT_TIMEOUT, RelayOptions, avoid, connect_within, prefer};
use crate::handshake::{agent_resume, context, viewer_resume};
use crate::{SecureStream, Session, SessionError};

/// How long a session whose connection was lost waits to be resumed, unless configured.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);

/// Least time from one attempt to the next: the agent's to reach the relay, the viewer's to
/// find the agent. A refused join costs the viewer's source one join token (20 a minute, a
/// burst of 10 by default), so looking once a second fits the first ten seconds of an outage,
/// and a relay that says to slow down is listened to. The relay holds each look for up to a
/// second while nobody is there, so the agent is found as soon as it is back.
const RETRY: Duration = Duration::from_secs(1);

/// How many secrets a viewer looks for its agent under at most (see [`viewer`]).
const MAX_SECRETS: usize = 4;

/// What a resumed session goes on with.
#[derive(Debug)]
pub struct Resumed {
    /// The new line to the relay (keep it: dropping it closes the connection).
    pub client: RelayClient,
    /// The new control stream.
    pub control: SecureStream,
}

/// The agent's side: waits under `session`'s resume tag until its viewer comes back and
/// proves the resume secret, or `deadline` passes; then `session` goes on over the new
/// connection. Whoever else joins under the tag (only the relay could know it) fails the
/// handshake, is let go and reported to `turned_away` (not a viewer whose network failed
/// during the handshake).
pub async fn agent(
    options: &RelayOptions,
    session: &Session,
    deadline: Instant,
    turned_away: impl Fn(&SessionError),
) -> Result<Resumed, SessionError> {
    let tag = session.resume_tag();
    let options = std::sync::Mutex::new(avoid(options, session.connection().remote_address()).await);
    retry(deadline, || async {
        let (mut client, _) = reach(&options).await?;
        client.register_resume(tag).await?;
        loop {
            match client.next().await? {
                RelayMessage::PairedDevice { session: id } => {
                    let ctx = context(&client, id)?;
                    match agent_resume(session, client.connection().clone(), ctx).await {
                        Ok(control) => return Ok(Resumed { client, control }),
                        Err(e) => {
                            tracing::warn!("a resume attempt failed: {e}");
                            // A wrong proof or a message that is none, not a network that
                            // failed mid-way: only the first is someone without the secret.
                            if matches!(e, SessionError::Handshake(_) | SessionError::Frame(_)) {
                                turned_away(&e);
                            }
                            client.send(&ClientMessage::Release).await?;
                        }
                    }
                }
                // Nobody knows this registration's ID: a join by it is a relay error.
                RelayMessage::Paired => client.send(&ClientMessage::Release).await?,
                RelayMessage::Refused(reason) => return Err(ClientError::Refused(reason).into()),
                _ => {}
            }
        }
    })
    .await
}

/// The viewer's side: looks for the agent under `session`'s resume tag until it is there and
/// proves the resume secret, or `deadline` passes; then `session` goes on over the new
/// connection.
///
/// An attempt whose proof was sent but not confirmed (the connection was lost just then) may
/// have moved the agent on to the next secret: from then on the viewer looks under that
/// secret's tag too, in turn with the session's.
pub async fn viewer(
    options: &RelayOptions,
    extras: &JoinExtras,
    session: &Session,
    deadline: Instant,
) -> Result<Resumed, SessionError> {
    let secrets = std::sync::Mutex::new(vec![session.resume_secret()]);
    let attempts = std::sync::atomic::AtomicUsize::new(0);
    let options = std::sync::Mutex::new(avoid(options, session.connection().remote_address()).await);
    retry(deadline, || async {
        let secret = {
            let secrets = secrets.lock().unwrap_or_else(|e| e.into_inner());
            let turn = attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            secrets[turn % secrets.len()].clone()
        };
        let (mut client, _) = reach(&options).await?;
        let id = match client.join_resume(ponte_e2e::resume::tag(&secret), extras).await {
            Ok(id) => id,
            Err(ClientError::ResumeEnded { proof }) => {
                return Err(match ponte_e2e::resume::is_end_proof(&secret, &proof) {
                    true => SessionError::CustomerEnded,
                    // Not from the agent: whoever made it up is not listened to.
                    false => ClientError::Refused(Refusal::UnknownSession).into(),
                });
            }
            Err(e) => return Err(e.into()),
        };
        let mut unconfirmed = None;
        let control = viewer_resume(session, &client, id, &secret, &mut unconfirmed).await;
        if let Some(next) = unconfirmed {
            let mut secrets = secrets.lock().unwrap_or_else(|e| e.into_inner());
            if !secrets.iter().any(|s| s[..] == next[..]) {
                secrets.push(next);
                // The session's own, and the latest few the agent may have gone on with.
                if secrets.len() > MAX_SECRETS {
                    secrets.remove(1);
                }
            }
        }
        Ok(Resumed {
            client,
            control: control?,
        })
    })
    .await
}

/// The agent's side, when the customer ends a session that waits to be resumed: leaves the
/// proof of it at the relay, so that its viewer hears the customer ended the session rather
/// than looking for it until its window passes. Tries once, briefly: a customer whose network
/// is down cannot tell anyone.
pub async fn tell_ended(options: &RelayOptions, session: &Session) -> Result<(), SessionError> {
    let told = async {
        let options = avoid(options, session.connection().remote_address()).await;
        let (mut client, _) = connect_within(&options, false, RESUME_CONNECT_TIMEOUT).await?;
        let proof = ponte_e2e::resume::end_proof(&session.resume_secret());
        client.end_resume(session.resume_tag(), proof).await?;
        Ok(())
    };
    tokio::time::timeout(RESUME_CONNECT_TIMEOUT, told)
        .await
        .map_err(|_| SessionError::Timeout)?
}

/// Connects to the relay (a node of a cluster that answers); the next attempt starts with the
/// node that answered this time, not with one that is down and costs a timeout each time.
async fn reach(
    options: &std::sync::Mutex<RelayOptions>,
) -> Result<(RelayClient, crate::connect::TrustNote), SessionError> {
    let current = options.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let reached = connect_within(&current, false, RESUME_CONNECT_TIMEOUT).await?;
    let preferred = prefer(&current, reached.0.connection().remote_address()).await;
    *options.lock().unwrap_or_else(|e| e.into_inner()) = preferred;
    Ok(reached)
}

/// Runs `attempt` until it succeeds or `deadline` passes (then the last failure), pausing
/// [`RETRY`] between attempts, or as long as the relay asks.
async fn retry<F, Fut>(deadline: Instant, mut attempt: F) -> Result<Resumed, SessionError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Resumed, SessionError>>,
{
    let mut last = SessionError::Timeout;
    loop {
        let started = Instant::now();
        match tokio::time::timeout_at(deadline, attempt()).await {
            Ok(Ok(resumed)) => return Ok(resumed),
            Ok(Err(e @ SessionError::CustomerEnded)) => return Err(e),
            Ok(Err(e)) => {
                tracing::debug!("not resumed yet: {e}");
                let pause = match (&e, e.refusal()) {
                    (_, Some(Refusal::RateLimited { retry_after_secs })) => {
                        Duration::from_secs(retry_after_secs.into()).max(RETRY)
                    }
                    // Nothing answered: the attempt waited already, and costs the relay nothing.
                    (SessionError::NoAnswer(_), _) => Duration::ZERO,
                    // A relay holds a resume lookup while nobody is there (a second): the
                    // next one goes at once.
                    _ => RETRY.saturating_sub(started.elapsed()),
                };
                last = e;
                if Instant::now() + pause >= deadline {
                    return Err(last);
                }
                tokio::time::sleep(pause).await;
            }
            Err(_) => return Err(last),
        }
    }
}
