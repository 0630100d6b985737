//! The end-to-end handshakes driven over the first relayed stream: the code-gated one
//! ([`agent`], [`viewer`]) and the key-authenticated one of quick access ([`agent_key`],
//! [`viewer_key`]).

use std::time::Duration;

use ponte_e2e::device_key::DeviceKey;
use ponte_e2e::handshake::{
    AbortReason, AgentHandshake, AgentMessage, AgentOutcome, CodeAttempts, Credentials, HandshakeContext,
    HandshakeError, MAX_MESSAGE, ViewerHandshake, ViewerMessage,
};
use ponte_e2e::identity::{PeerIdentity, TrustStore};
use ponte_e2e::key_handshake::{
    Admission, KeyAgentHandshake, KeyAgentMessage, KeyAgentOutcome, KeyViewerHandshake, KeyViewerMessage,
};
use ponte_e2e::key_schedule::Secret;
use ponte_e2e::resume::{ResumeAgentHandshake, ResumeAgentMessage, ResumeViewerMessage};
use ponte_e2e::session_keys::SessionKeys;
use ponte_transport::client::RelayClient;
use ponte_transport::framed::{self, FramedError};
use ponte_wire::device::DevicePublic;
use ponte_wire::frame::FrameError;
use ponte_wire::rendezvous::Refusal;
use ponte_wire::{OneTimeCode, SessionId, os_rng};

use crate::secure::{SecureStream, Session};
use crate::{SessionError, now_unix};

/// How long either side waits for the other's handshake message.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// What a handshake over `client`'s relay for `session` is bound to.
pub fn context(client: &RelayClient, session: SessionId) -> Result<HandshakeContext, SessionError> {
    let relay = client.relay_fingerprint().ok_or(SessionError::NoCertificate)?;
    Ok(HandshakeContext {
        session,
        relay: relay.0,
    })
}

fn framed_error(e: FramedError) -> SessionError {
    match e {
        FramedError::Frame(f) => SessionError::Frame(f),
        FramedError::Read(r) => SessionError::Read(r),
        FramedError::Write(w) => SessionError::Write(w),
        FramedError::Timeout => SessionError::Timeout,
        FramedError::Truncated => SessionError::UnexpectedEnd,
    }
}

/// The agent's side of one handshake attempt with a freshly paired viewer, over the relay
/// connection `connection` (bound to `ctx`, see [`context`]). On failure the attempt is counted
/// in `attempts` and the viewer is told why; the caller then releases the session (or burns it
/// when `attempts.must_burn()`). Dropping the future abandons the attempt.
pub async fn agent(
    connection: quinn::Connection,
    ctx: HandshakeContext,
    code: &OneTimeCode,
    attempts: &mut CodeAttempts,
    trust: &TrustStore,
) -> Result<(Session, SecureStream, PeerIdentity), SessionError> {
    let (handshake, hello) = AgentHandshake::start(ctx, code, attempts, &mut os_rng())?;
    agent_exchange::<ViewerMessage, _>(connection, hello.encode(), None, |auth| {
        let auth = match auth {
            Ok(auth) => auth,
            Err(e) => {
                // Garbage in place of the viewer's proof counts like a wrong proof.
                let err = HandshakeError::Frame(e);
                handshake.reject_undecodable(attempts);
                return Err((
                    AgentMessage::Abort(err.abort_reason(attempts)).encode(),
                    err.into(),
                ));
            }
        };
        match handshake.receive(&auth, attempts, trust, now_unix()) {
            Ok((confirm, AgentOutcome { keys, peer })) => Ok((confirm.encode(), keys, peer)),
            Err(e) => Err((AgentMessage::Abort(e.abort_reason(attempts)).encode(), e.into())),
        }
    })
    .await
}

/// What the agent's side of either handshake makes of the viewer's message: the confirmation
/// to send, the session keys and who it let in — or the abort to send and the error.
type Verdict<T> = Result<(Vec<u8>, SessionKeys, T), (Vec<u8>, SessionError)>;

/// The agent's half of either handshake: opens the stream, sends `hello`, reads the viewer's
/// message within [`HANDSHAKE_TIMEOUT`] and lets `judge` decide (also about a message that
/// does not decode); sends the confirmation and sets the session up, or sends the abort.
async fn agent_exchange<M, T>(
    connection: quinn::Connection,
    hello: Vec<u8>,
    resumed: Option<&Session>,
    judge: impl FnOnce(Result<M, FrameError>) -> Verdict<T>,
) -> Result<(Session, SecureStream, T), SessionError>
where
    M: serde::Serialize + serde::de::DeserializeOwned,
{
    let (mut send, mut recv) = connection.open_bi().await?;
    framed::write(&mut send, &hello).await.map_err(framed_error)?;
    let auth = match framed::read_timeout::<M>(&mut recv, MAX_MESSAGE, HANDSHAKE_TIMEOUT).await {
        Ok(Some(auth)) => Ok(auth),
        // The viewer left or stalled before proving anything: no guess was made.
        Ok(None) => return Err(SessionError::UnexpectedEnd),
        Err(FramedError::Frame(e)) => Err(e),
        Err(e) => return Err(framed_error(e)),
    };
    match judge(auth) {
        Ok((confirm, keys, admitted)) => {
            framed::write(&mut send, &confirm).await.map_err(framed_error)?;
            let (session, control) = established(connection, keys, resumed, send, recv).await?;
            Ok((session, control, admitted))
        }
        Err((abort, e)) => {
            let _ = framed::write(&mut send, &abort).await;
            let _ = send.finish();
            Err(e)
        }
    }
}

/// The viewer's side: waits for the agent's hello on the first stream the agent opens.
pub async fn viewer(
    client: &RelayClient,
    session: SessionId,
    code: OneTimeCode,
    credentials: &Credentials,
) -> Result<(Session, SecureStream), SessionError> {
    let ctx = context(client, session)?;
    let connection = client.connection().clone();
    let released = |e: SessionError| match e.refusal() {
        // The agent released us: the code did not match.
        Some(Refusal::Released) => SessionError::Handshake(HandshakeError::WrongCode),
        Some(Refusal::Burned) => SessionError::Handshake(HandshakeError::Burned),
        _ => e,
    };
    let (send, recv, waiting, answer) = viewer_exchange::<AgentMessage, _>(
        &connection,
        released,
        |hello| {
            let (auth, waiting) =
                ViewerHandshake::new(ctx, code).receive_hello(hello, credentials, &mut os_rng())?;
            Ok((auth.encode(), waiting))
        },
        // The agent closed the stream without a word: a rejection if the relay says so.
        SessionError::UnexpectedEnd,
    )
    .await?;
    let keys = waiting.receive_confirm(&answer)?;
    established(connection, keys, None, send, recv).await
}

/// The agent's side of one key-authenticated handshake (quick access) with a viewer that
/// joined by device tag: the same stream and limits as [`agent`], with the device key and
/// the customer's opt-ins instead of the code. On failure the viewer is told why (no code
/// attempt is counted: there is none); the caller releases the session.
pub async fn agent_key(
    connection: quinn::Connection,
    ctx: HandshakeContext,
    device: &DeviceKey,
    trust: &TrustStore,
    admissions: &[Admission],
) -> Result<(Session, SecureStream, Admitted), SessionError> {
    let (handshake, hello) = KeyAgentHandshake::start(ctx, device, &mut os_rng());
    agent_exchange::<KeyViewerMessage, _>(connection, hello.encode(), None, |auth| {
        let abort = |reason| KeyAgentMessage::Abort(reason).encode();
        let auth = auth.map_err(|e| (abort(AbortReason::Invalid), SessionError::Frame(e)))?;
        match handshake.receive(&auth, device, trust, admissions, now_unix()) {
            Ok((
                confirm,
                KeyAgentOutcome {
                    keys,
                    peer,
                    admission,
                },
            )) => Ok((confirm.encode(), keys, Admitted { peer, admission })),
            Err(e) => Err((abort(e.abort_reason(&CodeAttempts::new())), e.into())),
        }
    })
    .await
}

/// Who a key-authenticated handshake let in, and under which opt-in.
#[derive(Debug)]
pub struct Admitted {
    /// The (verified) assistant.
    pub peer: PeerIdentity,
    /// Index of the admission that let it in.
    pub admission: usize,
}

/// The viewer's side of a key-authenticated handshake with the device `device`, after the
/// relay paired it by device tag with the agent's session `session`. Fails with
/// [`HandshakeError::WrongDevice`] when whoever answered does not hold the device key.
pub async fn viewer_key(
    client: &RelayClient,
    session: SessionId,
    device: DevicePublic,
    credentials: &Credentials,
) -> Result<(Session, SecureStream), SessionError> {
    let ctx = context(client, session)?;
    let connection = client.connection().clone();
    // The agent lets go of a viewer it refused (`Release`), and the relay's close may overtake
    // the agent's `Abort`: say what it most likely means.
    let released = |e: SessionError| match e.refusal() {
        Some(Refusal::Released) => SessionError::Handshake(HandshakeError::BadIdentity(
            "the customer's computer turned the connection away: this assistant may not reconnect \
             without a code there (not allowed, expired or removed), or it is not the device you remembered"
                .into(),
        )),
        _ => e,
    };
    let (send, recv, waiting, answer) = viewer_exchange::<KeyAgentMessage, _>(
        &connection,
        released,
        |hello| {
            let (auth, waiting) =
                KeyViewerHandshake::new(ctx, device).receive_hello(hello, credentials, &mut os_rng())?;
            Ok((auth.encode(), waiting))
        },
        // Closing without a word is no proof of holding the device key.
        SessionError::Handshake(HandshakeError::WrongDevice),
    )
    .await?;
    let keys = waiting.receive_confirm(&answer)?;
    established(connection, keys, None, send, recv).await
}

/// The session a handshake established over `connection`: a new one, or `resumed` going on
/// there; the handshake's stream becomes its control stream.
async fn established(
    connection: quinn::Connection,
    keys: SessionKeys,
    resumed: Option<&Session>,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
) -> Result<(Session, SecureStream), SessionError> {
    let session = match resumed {
        Some(session) => {
            session.resume(connection, keys);
            session.clone()
        }
        None => Session::new(connection, keys),
    };
    let control = session.control(send, recv).await?;
    Ok((session, control))
}

/// The agent's side of a resume handshake with the viewer that joined under `session`'s
/// resume tag over `connection` (bound to `ctx`): on success `session` goes on over
/// `connection` with new keys and this is its new control stream. On failure the viewer is
/// told, and `session` is unchanged (the caller lets the viewer go and waits again).
pub async fn agent_resume(
    session: &Session,
    connection: quinn::Connection,
    ctx: HandshakeContext,
) -> Result<SecureStream, SessionError> {
    let secret = session.resume_secret();
    let (handshake, hello) = ResumeAgentHandshake::start(ctx, &mut os_rng());
    let judged =
        agent_exchange::<ResumeViewerMessage, _>(connection, hello.encode(), Some(session), |auth| {
            let abort = || ResumeAgentMessage::Abort.encode();
            let auth = auth.map_err(|e| (abort(), SessionError::Frame(e)))?;
            match handshake.receive(&auth, &secret) {
                Ok((confirm, keys)) => Ok((confirm.encode(), keys, ())),
                Err(e) => Err((abort(), e.into())),
            }
        });
    let (_, control, ()) = judged.await?;
    Ok(control)
}

/// The viewer's side of a resume handshake proving `secret`, after the relay paired it under
/// its tag with the agent's new session `id`: on success `session` goes on over the new
/// connection and this is its new control stream. When the viewer's proof was sent but no
/// confirmation came, `unconfirmed` is set to the secret the agent may have gone on with.
pub async fn viewer_resume(
    session: &Session,
    client: &RelayClient,
    id: SessionId,
    secret: &Secret,
    unconfirmed: &mut Option<Secret>,
) -> Result<SecureStream, SessionError> {
    let ctx = context(client, id)?;
    let connection = client.connection().clone();
    let exchanged = viewer_exchange::<ResumeAgentMessage, _>(
        &connection,
        |e| e,
        |hello| {
            let (auth, waiting) = ponte_e2e::resume::viewer_answer(ctx, secret, hello, &mut os_rng())?;
            *unconfirmed = Some(waiting.unconfirmed_resume_secret());
            Ok((auth.encode(), waiting))
        },
        SessionError::Handshake(HandshakeError::WrongResume),
    )
    .await;
    let (send, recv, waiting, answer) = exchanged?;
    // An answer came: whatever it is, the agent told where it stands.
    *unconfirmed = None;
    let keys = waiting.receive_confirm(&answer)?;
    let (_, control) = established(connection, keys, Some(session), send, recv).await?;
    Ok(control)
}

/// The viewer's half of either handshake on the stream the agent opens: reads the agent's
/// hello, sends what `respond` makes of it, and reads the agent's answer — each within
/// [`HANDSHAKE_TIMEOUT`]. `released` explains a close by the relay; `silent` is the error when
/// the agent closes the stream without answering and the relay does not say why.
async fn viewer_exchange<M, W>(
    connection: &quinn::Connection,
    released: impl Fn(SessionError) -> SessionError,
    respond: impl FnOnce(&M) -> Result<(Vec<u8>, W), SessionError>,
    silent: SessionError,
) -> Result<(quinn::SendStream, quinn::RecvStream, W, M), SessionError>
where
    M: serde::Serialize + serde::de::DeserializeOwned,
{
    let (mut send, mut recv) = tokio::time::timeout(HANDSHAKE_TIMEOUT, connection.accept_bi())
        .await
        .map_err(|_| SessionError::Timeout)?
        .map_err(|e| released(e.into()))?;
    let hello = framed::read_timeout::<M>(&mut recv, MAX_MESSAGE, HANDSHAKE_TIMEOUT)
        .await
        .map_err(|e| released(framed_error(e)))?
        .ok_or(SessionError::UnexpectedEnd)?;
    let (auth, waiting) = respond(&hello)?;
    framed::write(&mut send, &auth)
        .await
        .map_err(|e| released(framed_error(e)))?;
    let answer = framed::read_timeout::<M>(&mut recv, MAX_MESSAGE, HANDSHAKE_TIMEOUT)
        .await
        .map_err(|e| released(framed_error(e)))?;
    let Some(answer) = answer else {
        let closed = tokio::time::timeout(Duration::from_secs(3), connection.closed()).await;
        return Err(match closed {
            Ok(e) => released(e.into()),
            Err(_) => silent,
        });
    };
    Ok((send, recv, waiting, answer))
}
