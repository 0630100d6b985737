//! An agent's or viewer's control line to the relay: connect, register or join, and the
//! relay's events for the rest of the session.

use std::net::SocketAddr;
use std::time::Duration;

use ponte_wire::rendezvous::{
    self, ClientMessage, JoinTarget, MAX_MESSAGE, NodeAddress, Refusal, RelayMessage, Ticket,
};
use ponte_wire::text::{PeerText, error_text};
use ponte_wire::{DeviceTag, SessionId};

use crate::credential::{AssistantCredential, CredentialError};
use crate::framed::{self, FramedError};
use crate::tls::{CertFingerprint, SeenFingerprint};

/// How long a client waits for the relay to answer a request.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);

/// What went wrong talking to the relay.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The relay refused the request or ended the session.
    #[error("the relay refused: {0}")]
    Refused(Refusal),
    /// The QUIC connection could not be set up.
    #[error("could not connect to the relay: {}", error_text(.0))]
    Connect(quinn::ConnectError),
    /// The connection failed or was closed.
    #[error("connection to the relay lost: {}", error_text(.0))]
    Connection(quinn::ConnectionError),
    /// A message could not be read or written.
    #[error(transparent)]
    Framed(#[from] FramedError),
    /// The relay sent something that makes no sense here.
    #[error("unexpected answer from the relay: {0:?}")]
    Unexpected(RelayMessage),
    /// The relay closed the control line.
    #[error("the relay closed the session")]
    Closed,
    /// The assistant credential could not be used.
    #[error(transparent)]
    Credential(#[from] CredentialError),
    /// The customer ended the session that waited under this resume tag; `proof` is what its
    /// agent left, to be checked against the session's secret.
    #[error("the customer's side ended the session")]
    ResumeEnded {
        /// [`ponte_wire::rendezvous::RelayMessage::ResumeEnded`]'s proof.
        proof: [u8; 32],
    },
    /// The node the relay redirected to could not be reached (or verified).
    #[error("the relay sent this session to its node {node}, which cannot be reached: {reason}")]
    Redirect {
        /// The node's address.
        node: NodeAddress,
        /// Why.
        reason: String,
    },
}

// By hand rather than `#[from]`, which would make the cause the error's `source()` too: each
// message already says its cause (see `error_text`).
impl From<quinn::ConnectError> for ClientError {
    fn from(e: quinn::ConnectError) -> ClientError {
        ClientError::Connect(e)
    }
}

impl From<quinn::ConnectionError> for ClientError {
    fn from(e: quinn::ConnectionError) -> ClientError {
        ClientError::Connection(e)
    }
}

/// What a viewer presents with its join besides the session ID.
#[derive(Debug, Default)]
pub struct JoinExtras {
    /// The operator-issued assistant credential, for relays that require one.
    pub credential: Option<AssistantCredential>,
    /// The operator's reference for this work, written into the relay's ledger.
    pub ticket: Option<Ticket>,
}

impl ClientError {
    /// The relay's reason, if the relay refused or closed with one.
    pub fn refusal(&self) -> Option<Refusal> {
        match self {
            ClientError::Refused(r) => Some(*r),
            _ => self.connection().and_then(refusal_of),
        }
    }

    /// The relay operator's words, if the operator ended the session ([`operator_words`]).
    pub fn operator_words(&self) -> Option<PeerText> {
        self.connection().and_then(operator_words)
    }

    fn connection(&self) -> Option<&quinn::ConnectionError> {
        match self {
            ClientError::Connection(e)
            | ClientError::Framed(FramedError::Read(quinn::ReadError::ConnectionLost(e)))
            | ClientError::Framed(FramedError::Write(quinn::WriteError::ConnectionLost(e))) => Some(e),
            _ => None,
        }
    }
}

/// The reason a relay gave when it closed a connection.
pub fn refusal_of(error: &quinn::ConnectionError) -> Option<Refusal> {
    match error {
        quinn::ConnectionError::ApplicationClosed(close) => {
            Refusal::from_close_code(close.error_code.into_inner())
        }
        _ => None,
    }
}

/// The words the relay's operator gave for ending the session, when that is why the relay
/// closed the connection ([`Refusal::EndedByOperator`]); bounded and inert.
pub fn operator_words(error: &quinn::ConnectionError) -> Option<PeerText> {
    match error {
        quinn::ConnectionError::ApplicationClosed(close)
            if Refusal::from_close_code(close.error_code.into_inner()) == Some(Refusal::EndedByOperator) =>
        {
            let words = &close.reason[..close
                .reason
                .len()
                .min(ponte_wire::rendezvous::MAX_OPERATOR_REASON)];
            Some(PeerText::new(String::from_utf8_lossy(words)))
        }
        _ => None,
    }
}

/// How a client reaches the node a relay cluster redirects it to: its endpoint and a
/// configuration that trusts exactly what the first node was trusted as (the same pinned
/// cluster key, or the same CA).
#[derive(Debug, Clone)]
pub struct Redirects {
    /// The client's endpoint.
    pub endpoint: quinn::Endpoint,
    /// TLS and transport settings for the node.
    pub config: quinn::ClientConfig,
}

/// A connection to the relay with its control stream.
#[derive(Debug)]
pub struct RelayClient {
    connection: quinn::Connection,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    fingerprint: Option<CertFingerprint>,
    anchor: Option<CertFingerprint>,
    redirects: Option<Redirects>,
    /// Moves the connection to a fresh socket when the path goes silent, while this lives
    /// (see [`RelayClient::move_when_silent`]).
    watching: Option<crate::path::Watching>,
}

impl RelayClient {
    /// Connects to the relay at `addr` and opens the control stream.
    pub async fn connect(
        endpoint: &quinn::Endpoint,
        addr: SocketAddr,
        server_name: &str,
        config: quinn::ClientConfig,
        seen: &SeenFingerprint,
    ) -> Result<RelayClient, ClientError> {
        let connection = endpoint.connect_with(config, addr, server_name)?.await?;
        let (send, recv) = connection.open_bi().await?;
        let fingerprint = crate::tls::peer_fingerprint(&connection).or_else(|| seen.get());
        let anchor = crate::tls::peer_anchor(&connection).or_else(|| seen.anchor());
        Ok(RelayClient {
            watching: None,
            connection,
            send,
            recv,
            fingerprint,
            anchor,
            redirects: None,
        })
    }

    /// Moves this client's connection (and a redirected one) to a fresh socket of `endpoint`
    /// whenever the path to the relay went silent for [`crate::path::SILENCE`]. The endpoint
    /// must be this client's alone (a move rebinds every connection on it), and the connection
    /// must send keep-alives at least every [`crate::path::KEEP_ALIVE`], or an idle path looks
    /// silent.
    pub fn move_when_silent(&mut self, endpoint: quinn::Endpoint) {
        self.watching = Some(crate::path::watch(endpoint, self.connection.clone()));
    }

    /// Lets [`RelayClient::join_with`] follow a cluster's redirect (one, at most) with these
    /// settings. Without them a redirect is an [`ClientError::Unexpected`] answer.
    pub fn follow_redirects(&mut self, redirects: Redirects) {
        self.redirects = Some(redirects);
    }

    /// Moves this client to the node at `node`: connects (bounded by [`ANSWER_TIMEOUT`]),
    /// opens the control line there and closes the old connection.
    async fn move_to(&mut self, node: &NodeAddress) -> Result<(), ClientError> {
        let Some(redirects) = self.redirects.clone() else {
            return Err(ClientError::Unexpected(RelayMessage::Redirect {
                node: node.clone(),
            }));
        };
        let failed = |reason: String| ClientError::Redirect {
            node: node.clone(),
            reason,
        };
        let moved = tokio::time::timeout(ANSWER_TIMEOUT, async {
            let addr = tokio::net::lookup_host(node.as_str())
                .await
                .map_err(|e| failed(e.to_string()))?
                .next()
                .ok_or_else(|| failed("no address".into()))?;
            let connection = redirects
                .endpoint
                .connect_with(redirects.config, addr, node.host())
                .map_err(|e| failed(e.to_string()))?
                .await
                .map_err(|e| failed(e.to_string()))?;
            let (send, recv) = connection.open_bi().await?;
            Ok::<_, ClientError>((connection, send, recv))
        })
        .await
        .map_err(|_| failed("timed out".into()))??;
        let (connection, send, recv) = moved;
        self.connection.close(0u32.into(), b"redirected");
        self.fingerprint = crate::tls::peer_fingerprint(&connection);
        self.anchor = crate::tls::peer_anchor(&connection);
        if self.watching.is_some() {
            self.watching = Some(crate::path::watch(redirects.endpoint, connection.clone()));
        }
        self.connection = connection;
        self.send = send;
        self.recv = recv;
        Ok(())
    }

    /// The QUIC connection (for the forwarded streams after pairing).
    pub fn connection(&self) -> &quinn::Connection {
        &self.connection
    }

    /// The fingerprint of the relay's certificate, bound into the end-to-end handshake.
    pub fn relay_fingerprint(&self) -> Option<CertFingerprint> {
        self.fingerprint
    }

    /// What to pin for this relay: the fingerprint of the cluster key that signed the node's
    /// certificate for a relay cluster, else the certificate's own fingerprint.
    pub fn trust_anchor(&self) -> Option<CertFingerprint> {
        self.anchor
    }

    /// Sends one request.
    pub async fn send(&mut self, message: &ClientMessage) -> Result<(), ClientError> {
        framed::write(&mut self.send, &rendezvous::encode_client(message)).await?;
        Ok(())
    }

    /// Waits for the relay's next message. A refusal is returned as a message, not an error.
    pub async fn next(&mut self) -> Result<RelayMessage, ClientError> {
        match framed::read::<RelayMessage>(&mut self.recv, MAX_MESSAGE).await {
            Ok(Some(m)) => Ok(m),
            Ok(None) => Err(self.closed_reason().await),
            Err(FramedError::Read(quinn::ReadError::ConnectionLost(e))) => Err(e.into()),
            Err(e) => Err(e.into()),
        }
    }

    /// The control stream ended: the relay closes the connection right after, with the reason.
    async fn closed_reason(&self) -> ClientError {
        match tokio::time::timeout(Duration::from_secs(3), self.connection.closed()).await {
            Ok(e) => ClientError::Connection(e),
            Err(_) => ClientError::Closed,
        }
    }

    async fn answer(&mut self) -> Result<RelayMessage, ClientError> {
        match tokio::time::timeout(ANSWER_TIMEOUT, self.next()).await {
            Ok(Ok(RelayMessage::Refused(r))) => Err(ClientError::Refused(r)),
            Ok(other) => other,
            Err(_) => Err(FramedError::Timeout.into()),
        }
    }

    /// Agent: registers and returns the new session ID and how long it can be joined.
    pub async fn register(&mut self) -> Result<(SessionId, Duration), ClientError> {
        self.register_with(ClientMessage::Register).await
    }

    /// Agent (quick access): registers a session joined by the tag of the device key `device`
    /// only. `prove` answers the relay's challenge with the connection's TLS exporter value
    /// (`DeviceKey::possession` of the protocol crate), showing the agent holds the key.
    pub async fn register_device(
        &mut self,
        device: [u8; 32],
        tag: DeviceTag,
        prove: impl FnOnce(&[u8; 32], &[u8]) -> [u8; 32],
    ) -> Result<(SessionId, Duration), ClientError> {
        self.send(&ClientMessage::RegisterDevice { tag }).await?;
        let challenge = match self.answer().await? {
            RelayMessage::DeviceChallenge { challenge } => challenge,
            other => return Err(ClientError::Unexpected(other)),
        };
        let exporter = crate::credential::exporter(&self.connection).ok_or(ClientError::Closed)?;
        let proof = prove(&challenge, &exporter);
        self.register_with(ClientMessage::DeviceProof { device, proof })
            .await
    }

    /// Agent: waits under the resume tag `tag` for the viewer of a session whose connection
    /// was lost; returns the new session ID (nobody can join it by that ID).
    pub async fn register_resume(&mut self, tag: DeviceTag) -> Result<(SessionId, Duration), ClientError> {
        self.register_with(ClientMessage::RegisterResume { tag }).await
    }

    async fn register_with(&mut self, message: ClientMessage) -> Result<(SessionId, Duration), ClientError> {
        self.send(&message).await?;
        match self.answer().await? {
            RelayMessage::Registered {
                session,
                expires_in_secs,
            } => Ok((session, Duration::from_secs(expires_in_secs.into()))),
            other => Err(ClientError::Unexpected(other)),
        }
    }

    /// Viewer: joins the session and waits until the relay has paired it.
    pub async fn join(&mut self, session: SessionId) -> Result<(), ClientError> {
        self.join_with(session, &JoinExtras::default()).await
    }

    /// Viewer: joins the session presenting a credential and a ticket, if given, and waits
    /// until the relay has paired it. A relay that refuses the credential says so
    /// ([`Refusal::CredentialRequired`], [`Refusal::CredentialRefused`]).
    ///
    /// A node of a relay cluster that does not hold the session redirects the viewer to the one
    /// that does ([`RelayMessage::Redirect`]); with [`RelayClient::follow_redirects`] the
    /// client moves there and joins again, once.
    pub async fn join_with(&mut self, session: SessionId, options: &JoinExtras) -> Result<(), ClientError> {
        match self.join_target(JoinTarget::Session(session), options).await? {
            RelayMessage::Paired => Ok(()),
            other => Err(ClientError::Unexpected(other)),
        }
    }

    /// Viewer (quick access): joins the agent waiting under the device tag `tag` and returns
    /// its session ID, which the key-authenticated handshake binds. Whoever answers under the
    /// tag must still prove it holds the device key.
    pub async fn join_device(
        &mut self,
        tag: DeviceTag,
        options: &JoinExtras,
    ) -> Result<SessionId, ClientError> {
        match self.join_target(JoinTarget::Device(tag), options).await? {
            RelayMessage::PairedDevice { session } => Ok(session),
            other => Err(ClientError::Unexpected(other)),
        }
    }

    /// Viewer: joins the agent waiting under the resume tag `tag` (its session's connection
    /// was lost) and returns the new session ID, which the resume handshake binds. The relay
    /// answers [`Refusal::UnknownSession`] until the agent is back.
    pub async fn join_resume(
        &mut self,
        tag: DeviceTag,
        options: &JoinExtras,
    ) -> Result<SessionId, ClientError> {
        match self.join_target(JoinTarget::Resume(tag), options).await? {
            RelayMessage::PairedDevice { session } => Ok(session),
            RelayMessage::ResumeEnded { proof } => Err(ClientError::ResumeEnded { proof }),
            other => Err(ClientError::Unexpected(other)),
        }
    }

    /// Agent: the customer ended the session that waits to be resumed under `tag`; the relay
    /// keeps `proof` for its viewer. Returns once the relay has it.
    pub async fn end_resume(&mut self, tag: DeviceTag, proof: [u8; 32]) -> Result<(), ClientError> {
        self.send(&ClientMessage::EndResume { tag, proof }).await?;
        match self.answer().await? {
            RelayMessage::ResumeEnded { proof: kept } if kept == proof => Ok(()),
            other => Err(ClientError::Unexpected(other)),
        }
    }

    /// Joins `target`, following at most one redirect; returns the relay's pairing answer.
    async fn join_target(
        &mut self,
        target: JoinTarget,
        options: &JoinExtras,
    ) -> Result<RelayMessage, ClientError> {
        match self.join_here(target, options).await? {
            RelayMessage::Redirect { node } => {
                self.move_to(&node).await?;
                self.join_here(target, options).await
            }
            other => Ok(other),
        }
    }

    /// One join on the current connection: the relay's answer (a refusal is an error).
    async fn join_here(
        &mut self,
        target: JoinTarget,
        options: &JoinExtras,
    ) -> Result<RelayMessage, ClientError> {
        let proof = options
            .credential
            .as_ref()
            .map(|c| c.prove(&self.connection, target, options.ticket.as_ref()))
            .transpose()?;
        let ticket = options.ticket.clone();
        let message = match target {
            // The plain form keeps working with relays that predate `JoinAs`.
            JoinTarget::Session(session) if proof.is_none() && ticket.is_none() => {
                ClientMessage::Join { session }
            }
            JoinTarget::Session(session) => ClientMessage::JoinAs {
                session,
                ticket,
                proof,
            },
            JoinTarget::Device(tag) => ClientMessage::JoinDevice { tag, ticket, proof },
            JoinTarget::Resume(tag) => ClientMessage::JoinResume { tag, ticket, proof },
        };
        self.send(&message).await?;
        self.answer().await
    }
}
