//! # ponte-session
//!
//! What the agent and the viewer share: connecting to the relay (with certificate pinning or
//! trust on first use), driving the code-gated handshake over the first relayed stream, and
//! sealed streams carrying typed messages afterwards.

#![forbid(unsafe_code)]

pub mod connect;
pub mod files;
pub mod handshake;
pub mod known_relays;
pub mod private_file;
pub mod secure;

use ponte_protocol::handshake::HandshakeError;
use ponte_protocol::record::RecordError;
use ponte_protocol::rendezvous::Refusal;
use ponte_protocol::text::PeerText;
use ponte_transport::client::ClientError;

pub use secure::{Incoming, SecureRecv, SecureSend, SecureStream, Session};

/// What went wrong in a session. Errors that can quote the relay or the peer (QUIC close
/// reasons) are shown through [`PeerText`], inert.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Talking to the relay failed.
    #[error("{}", PeerText::new(.0.to_string()))]
    Relay(#[from] ClientError),
    /// The end-to-end handshake failed.
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    /// A record failed (tampering, truncation, …).
    #[error("secure stream: {0}")]
    Record(#[from] RecordError),
    /// A message did not decode.
    #[error("bad message: {0}")]
    Frame(#[from] ponte_protocol::frame::FrameError),
    /// The connection failed.
    #[error("connection lost: {}", PeerText::new(.0.to_string()))]
    Connection(#[from] quinn::ConnectionError),
    /// Reading failed.
    #[error("read: {}", PeerText::new(.0.to_string()))]
    Read(#[from] quinn::ReadError),
    /// Writing failed.
    #[error("write: {}", PeerText::new(.0.to_string()))]
    Write(#[from] quinn::WriteError),
    /// A stream ended where a message was expected.
    #[error("the other side closed the stream unexpectedly")]
    UnexpectedEnd,
    /// Waiting for the peer took too long.
    #[error("timed out waiting for the other side")]
    Timeout,
    /// The relay's certificate changed since it was first seen, and the user did not accept it.
    #[error(
        "the relay's certificate fingerprint changed (was {known}, now {seen}); \
         refusing to continue. If the operator confirms the new fingerprint, pass --fingerprint {seen}"
    )]
    FingerprintChanged {
        /// What was remembered.
        known: String,
        /// What the relay presented.
        seen: String,
    },
    /// Setting up the connection failed.
    #[error("{0}")]
    Setup(String),
}

impl SessionError {
    /// The relay's reason, if the relay refused or closed with one.
    pub fn refusal(&self) -> Option<Refusal> {
        match self {
            SessionError::Relay(e) => e.refusal(),
            _ => self.connection().and_then(ponte_transport::client::refusal_of),
        }
    }

    /// Whether the relay stopped answering: nothing came back for the idle timeout, so the
    /// relay (or its node of a cluster) died or the network was cut — not the peer leaving,
    /// which the relay would have said.
    pub fn relay_silent(&self) -> bool {
        matches!(self.connection(), Some(quinn::ConnectionError::TimedOut))
    }

    /// Why the connection to the relay ended, if that is what failed.
    fn connection(&self) -> Option<&quinn::ConnectionError> {
        match self {
            SessionError::Connection(e)
            | SessionError::Read(quinn::ReadError::ConnectionLost(e))
            | SessionError::Write(quinn::WriteError::ConnectionLost(e)) => Some(e),
            _ => None,
        }
    }
}

/// The current time of day as `HH:MM:SS UTC`, for activity and chat lines.
pub fn clock() -> String {
    let secs = now_unix();
    format!(
        "{:02}:{:02}:{:02} UTC",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60
    )
}

/// Seconds since the Unix epoch, for certificate validity.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
