//! # ponte-session
//!
//! What the agent and the viewer share: connecting to the relay (with certificate pinning or
//! trust on first use), driving the code-gated handshake over the first relayed stream, and
//! sealed streams carrying typed messages afterwards.

#![forbid(unsafe_code)]

#[cfg(not(unix))]
compile_error!("ponte-session runs on Unix (Linux, macOS) only so far");

pub mod connect;
pub mod files;
pub mod handshake;
pub mod known_relays;
pub mod resume;
pub mod secure;

use ponte_e2e::handshake::HandshakeError;
use ponte_e2e::record::RecordError;
use ponte_transport::client::ClientError;
use ponte_wire::rendezvous::Refusal;
use ponte_wire::text::PeerText;

pub use secure::{Incoming, SecureRecv, SecureSend, SecureStream, Session};

/// What went wrong in a session. Errors that can quote the relay or the peer (QUIC close
/// reasons) are shown through [`PeerText`], inert.
///
/// Each message says its cause, and no variant exposes that cause again as its `source()`:
/// however an error is printed (`{}`, or `{:#}` with its sources), each cause appears once.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Talking to the relay failed.
    #[error("{}", PeerText::error(.0))]
    Relay(ClientError),
    /// The end-to-end handshake failed.
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    /// A record failed (tampering, truncation, …); [`SessionError::is_attack`] says whether it
    /// is an attack on the path.
    #[error("secure stream: {0}")]
    Record(RecordError),
    /// A message did not decode.
    #[error("bad message: {0}")]
    Frame(ponte_wire::frame::FrameError),
    /// The connection failed.
    #[error("connection lost: {}", PeerText::error(.0))]
    Connection(quinn::ConnectionError),
    /// Reading failed.
    #[error("read: {}", PeerText::error(.0))]
    Read(quinn::ReadError),
    /// Writing failed.
    #[error("write: {}", PeerText::error(.0))]
    Write(quinn::WriteError),
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
    /// The relay's address did not resolve (`None`: it resolved to nothing, or timed out).
    #[error("cannot resolve relay {relay}: {}", .error.as_ref().map_or("no address".to_owned(), |e| e.to_string()))]
    Resolve {
        /// The address as given.
        relay: String,
        /// Why.
        error: Option<std::io::Error>,
    },
    /// The CA file given to verify the relay is unreadable or holds no usable certificate.
    #[error("CA {}: {error}", path.display())]
    Ca {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        error: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The TLS configuration could not be built.
    #[error(transparent)]
    Tls(#[from] ponte_transport::tls::TlsError),
    /// No UDP socket could be opened.
    #[error("cannot open a UDP socket: {0}")]
    Socket(std::io::Error),
    /// The relay did not answer in time.
    #[error("relay {0} did not answer")]
    NoAnswer(std::net::SocketAddr),
    /// The relay's TLS connection carries no certificate to pin or bind the handshake to.
    #[error("the relay presented no certificate")]
    NoCertificate,
    /// The customer ended the session while it waited to be resumed (the agent's proof of it,
    /// left at the relay, checked).
    #[error("the customer ended the session while the connection was lost")]
    CustomerEnded,
    /// The known-relays file could not be updated.
    #[error("cannot update known relays: {0}")]
    KnownRelays(std::io::Error),
}

// By hand rather than `#[from]`, which would make each of these the error's `source()` too.
impl From<ClientError> for SessionError {
    fn from(e: ClientError) -> SessionError {
        SessionError::Relay(e)
    }
}

impl From<RecordError> for SessionError {
    fn from(e: RecordError) -> SessionError {
        SessionError::Record(e)
    }
}

impl From<ponte_wire::frame::FrameError> for SessionError {
    fn from(e: ponte_wire::frame::FrameError) -> SessionError {
        SessionError::Frame(e)
    }
}

impl From<quinn::ConnectionError> for SessionError {
    fn from(e: quinn::ConnectionError) -> SessionError {
        SessionError::Connection(e)
    }
}

impl From<quinn::ReadError> for SessionError {
    fn from(e: quinn::ReadError) -> SessionError {
        SessionError::Read(e)
    }
}

impl From<quinn::WriteError> for SessionError {
    fn from(e: quinn::WriteError) -> SessionError {
        SessionError::Write(e)
    }
}

impl SessionError {
    /// Whether this is a detected attack on the path between agent and viewer (a record
    /// altered, dropped, repeated, moved, or a stream cut before its end): the session ends.
    /// A stream reset or a lost connection is not one.
    pub fn is_attack(&self) -> bool {
        matches!(self, SessionError::Record(e) if e.is_attack())
    }

    /// The relay's reason, if the relay refused or closed with one.
    pub fn refusal(&self) -> Option<Refusal> {
        match self {
            SessionError::Relay(e) => e.refusal(),
            _ => self.connection().and_then(ponte_transport::client::refusal_of),
        }
    }

    /// The relay operator's words, if the operator ended the session from the relay's console.
    pub fn operator_words(&self) -> Option<ponte_wire::text::PeerText> {
        match self {
            SessionError::Relay(e) => e.operator_words(),
            _ => self
                .connection()
                .and_then(ponte_transport::client::operator_words),
        }
    }

    /// Whether the relay stopped answering: nothing came back for the idle timeout, so the
    /// relay (or its node of a cluster) died or the network was cut — not the peer leaving,
    /// which the relay would have said.
    pub fn relay_silent(&self) -> bool {
        matches!(self.connection(), Some(quinn::ConnectionError::TimedOut))
    }

    /// Whether the connection to the relay was lost in a way a resume ([`resume`]) may mend:
    /// the path fell silent, the relay (or its node) went away, or the relay says the other
    /// side left or lost its connection — it may be coming back. Not a relay's refusal (a limit, a release), not a
    /// close of our own, not an attack.
    pub fn resumable(&self) -> bool {
        use quinn::ConnectionError as C;
        if let SessionError::Read(quinn::ReadError::Reset(code)) = self {
            // The relay cut the stream: the other side's connection was lost.
            return code.into_inner() == u64::from(ponte_wire::rendezvous::LOST_CODE);
        }
        match self.connection() {
            Some(C::TimedOut | C::Reset | C::TransportError(_) | C::ConnectionClosed(_)) => true,
            Some(C::ApplicationClosed(_)) => {
                matches!(self.refusal(), Some(Refusal::PeerLost | Refusal::ShuttingDown))
            }
            _ => false,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// An error and its sources the way `anyhow` prints them with `{:#}`.
    fn with_sources(error: &dyn std::error::Error) -> String {
        let mut shown = error.to_string();
        let mut next = error.source();
        while let Some(cause) = next {
            shown = format!("{shown}: {cause}");
            next = cause.source();
        }
        shown
    }

    #[test]
    fn each_cause_is_printed_once() {
        let tampered = SessionError::from(RecordError::Tampered);
        let shown = with_sources(&tampered);
        assert_eq!(
            shown,
            "secure stream: record failed authentication (tampered or forged)"
        );
        let lost = SessionError::from(quinn::ReadError::ConnectionLost(quinn::ConnectionError::TimedOut));
        assert_eq!(with_sources(&lost), "read: connection lost: timed out");
        assert_eq!(
            lost.to_string(),
            "read: connection lost: timed out",
            "nothing is lost without the sources"
        );
        let transfer = files::TransferError::from(tampered);
        assert_eq!(
            with_sources(&transfer),
            "secure stream: record failed authentication (tampered or forged)"
        );
    }
}
