//! The end-to-end handshake driven over the first relayed stream.

use std::time::Duration;

use ponte_protocol::handshake::{
    AgentHandshake, AgentMessage, AgentOutcome, CodeAttempts, Credentials, HandshakeContext, HandshakeError,
    MAX_MESSAGE, ViewerHandshake, ViewerMessage,
};
use ponte_protocol::identity::{PeerIdentity, TrustStore};
use ponte_protocol::rendezvous::Refusal;
use ponte_protocol::{OneTimeCode, SessionId, os_rng};
use ponte_transport::client::RelayClient;
use ponte_transport::framed::{self, FramedError};

use crate::secure::{SecureStream, Session};
use crate::{SessionError, now_unix};

/// How long either side waits for the other's handshake message.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// What a handshake over `client`'s relay for `session` is bound to.
pub fn context(client: &RelayClient, session: SessionId) -> Result<HandshakeContext, SessionError> {
    let relay = client
        .relay_fingerprint()
        .ok_or_else(|| SessionError::Setup("the relay presented no certificate".into()))?;
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
    let (mut send, mut recv) = connection.open_bi().await?;
    framed::write(&mut send, &hello.encode())
        .await
        .map_err(framed_error)?;
    let auth = match framed::read_timeout::<ViewerMessage>(&mut recv, MAX_MESSAGE, HANDSHAKE_TIMEOUT).await {
        Ok(Some(auth)) => auth,
        // The viewer left or stalled before proving anything: no guess was made.
        Ok(None) => return Err(SessionError::UnexpectedEnd),
        Err(FramedError::Frame(e)) => {
            // Garbage in place of the viewer's proof counts like a wrong proof.
            let err = HandshakeError::Frame(e);
            handshake.reject_undecodable(attempts);
            let _ = framed::write(
                &mut send,
                &AgentMessage::Abort(err.abort_reason(attempts)).encode(),
            )
            .await;
            return Err(err.into());
        }
        Err(e) => return Err(framed_error(e)),
    };
    match handshake.receive(&auth, attempts, trust, now_unix()) {
        Ok((confirm, AgentOutcome { keys, peer })) => {
            framed::write(&mut send, &confirm.encode())
                .await
                .map_err(framed_error)?;
            let session = Session::new(connection, keys);
            let control = session.control(send, recv).await?;
            Ok((session, control, peer))
        }
        Err(e) => {
            let abort = AgentMessage::Abort(e.abort_reason(attempts));
            let _ = framed::write(&mut send, &abort.encode()).await;
            let _ = send.finish();
            Err(e.into())
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
    let (mut send, mut recv) = tokio::time::timeout(HANDSHAKE_TIMEOUT, connection.accept_bi())
        .await
        .map_err(|_| SessionError::Timeout)?
        .map_err(|e| released(e.into()))?;
    let hello = framed::read_timeout::<AgentMessage>(&mut recv, MAX_MESSAGE, HANDSHAKE_TIMEOUT)
        .await
        .map_err(|e| released(framed_error(e)))?
        .ok_or(SessionError::UnexpectedEnd)?;
    let (auth, waiting) =
        ViewerHandshake::new(ctx, code).receive_hello(&hello, credentials, &mut os_rng())?;
    framed::write(&mut send, &auth.encode())
        .await
        .map_err(|e| released(framed_error(e)))?;
    let answer = framed::read_timeout::<AgentMessage>(&mut recv, MAX_MESSAGE, HANDSHAKE_TIMEOUT)
        .await
        .map_err(|e| released(framed_error(e)))?;
    let Some(answer) = answer else {
        // The agent closed the stream without a word: treat like a rejection if the relay says so.
        let closed = tokio::time::timeout(Duration::from_secs(3), connection.closed()).await;
        return Err(match closed {
            Ok(e) => released(e.into()),
            Err(_) => SessionError::UnexpectedEnd,
        });
    };
    let keys = waiting.receive_confirm(&answer)?;
    let session = Session::new(connection, keys);
    let control = session.control(send, recv).await?;
    Ok((session, control))
}
