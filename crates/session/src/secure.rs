//! Sealed streams over quinn: each application message is one frame sealed as one record.

use std::sync::Arc;
use std::time::Duration;

use ponte_protocol::Role;
use ponte_protocol::app::MAX_MESSAGE;
use ponte_protocol::frame;
use ponte_protocol::record::{HEADER_LEN, Opened, RecordError, RecordHeader, RecordOpener, RecordSealer};
use ponte_protocol::session::{SessionKeys, StreamKeys};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;

use crate::SessionError;

/// The sending half of a sealed stream.
#[derive(Debug)]
pub struct SecureSend {
    quic: quinn::SendStream,
    sealer: RecordSealer,
    buf: Vec<u8>,
}

impl SecureSend {
    /// Sends one message as one record.
    pub async fn send<T: Serialize>(&mut self, message: &T) -> Result<(), SessionError> {
        self.buf.clear();
        self.buf.resize(HEADER_LEN, 0);
        frame::encode_into(message, MAX_MESSAGE, &mut self.buf)?;
        self.sealer.seal_in_place(&mut self.buf)?;
        self.quic.write_all(&self.buf).await?;
        Ok(())
    }

    /// Sends the authenticated end of the stream and finishes the QUIC stream.
    pub async fn finish(&mut self) -> Result<(), SessionError> {
        self.buf.clear();
        self.sealer.finish(&mut self.buf)?;
        self.quic.write_all(&self.buf).await?;
        let _ = self.quic.finish();
        Ok(())
    }

    /// Abandons the stream (the peer sees a reset, never a clean end).
    pub fn reset(&mut self) {
        let _ = self.quic.reset(0u32.into());
    }

    /// Waits until the peer has received everything (or stopped the stream).
    pub async fn flushed(&mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(30), self.quic.stopped()).await;
    }
}

/// The receiving half of a sealed stream.
#[derive(Debug)]
pub struct SecureRecv {
    quic: quinn::RecvStream,
    opener: RecordOpener,
    buf: Vec<u8>,
    /// A header already read from the stream (the first one, read to learn the stream number).
    pending_header: Option<[u8; HEADER_LEN]>,
}

impl SecureRecv {
    /// Receives the next message; `None` at the authenticated end of the stream.
    pub async fn recv<T: DeserializeOwned + Serialize>(&mut self) -> Result<Option<T>, SessionError> {
        let mut header = [0u8; HEADER_LEN];
        match self.pending_header.take() {
            Some(h) => header = h,
            None => match self.quic.read_exact(&mut header).await {
                Ok(()) => {}
                Err(quinn::ReadExactError::FinishedEarly(0)) => {
                    self.opener.finish()?;
                    return Ok(None);
                }
                Err(quinn::ReadExactError::FinishedEarly(_)) => return Err(RecordError::Truncated.into()),
                Err(quinn::ReadExactError::ReadError(e)) => return Err(e.into()),
            },
        }
        let parsed = RecordHeader::parse(&header)?;
        self.buf.clear();
        self.buf.extend_from_slice(&header);
        self.buf.resize(HEADER_LEN + parsed.length as usize, 0);
        match self.quic.read_exact(&mut self.buf[HEADER_LEN..]).await {
            Ok(()) => {}
            Err(quinn::ReadExactError::FinishedEarly(_)) => return Err(RecordError::Truncated.into()),
            Err(quinn::ReadExactError::ReadError(e)) => return Err(e.into()),
        }
        match self.opener.open_in_place(&mut self.buf)? {
            Opened::End => Ok(None),
            Opened::Data(plaintext) => Ok(Some(frame::decode(plaintext, MAX_MESSAGE)?)),
        }
    }

    /// Receives the next message, which must exist.
    pub async fn expect<T: DeserializeOwned + Serialize>(&mut self) -> Result<T, SessionError> {
        self.recv().await?.ok_or(SessionError::UnexpectedEnd)
    }

    /// Tells the peer to stop sending.
    pub fn stop(&mut self) {
        let _ = self.quic.stop(0u32.into());
    }
}

/// Both halves of a sealed stream.
#[derive(Debug)]
pub struct SecureStream {
    /// The stream's number in the session.
    pub number: u64,
    /// Sending half.
    pub send: SecureSend,
    /// Receiving half.
    pub recv: SecureRecv,
}

impl SecureStream {
    fn new(
        keys: StreamKeys,
        send: quinn::SendStream,
        recv: quinn::RecvStream,
        header: Option<[u8; HEADER_LEN]>,
    ) -> Self {
        SecureStream {
            number: keys.number,
            send: SecureSend {
                quic: send,
                sealer: keys.sealer,
                buf: Vec::new(),
            },
            recv: SecureRecv {
                quic: recv,
                opener: keys.opener,
                buf: Vec::new(),
                pending_header: header,
            },
        }
    }
}

/// An established end-to-end session over a relayed QUIC connection.
#[derive(Debug, Clone)]
pub struct Session {
    connection: quinn::Connection,
    keys: Arc<Mutex<SessionKeys>>,
}

impl Session {
    pub(crate) fn new(connection: quinn::Connection, keys: SessionKeys) -> Session {
        Session {
            connection,
            keys: Arc::new(Mutex::new(keys)),
        }
    }

    /// This side's role.
    pub async fn role(&self) -> Role {
        self.keys.lock().await.role()
    }

    /// The QUIC connection to the relay.
    pub fn connection(&self) -> &quinn::Connection {
        &self.connection
    }

    /// Turns the handshake's QUIC stream into the control stream (stream 0 of the agent).
    pub(crate) async fn control(
        &self,
        send: quinn::SendStream,
        recv: quinn::RecvStream,
    ) -> Result<SecureStream, SessionError> {
        let mut keys = self.keys.lock().await;
        let stream_keys = match keys.role() {
            Role::Agent => keys.open_stream()?,
            Role::Viewer => keys.accept_stream(0)?,
        };
        debug_assert_eq!(stream_keys.number, 0);
        Ok(SecureStream::new(stream_keys, send, recv, None))
    }

    /// Opens a new sealed stream.
    pub async fn open(&self) -> Result<SecureStream, SessionError> {
        let (send, recv) = self.connection.open_bi().await?;
        let keys = self.keys.lock().await.open_stream()?;
        Ok(SecureStream::new(keys, send, recv, None))
    }

    /// Accepts the next sealed stream the peer opens. The stream number comes from the first
    /// record header, and the session refuses numbers that are not the peer's or were used.
    pub async fn accept(&self) -> Result<SecureStream, SessionError> {
        let (send, mut recv) = self.connection.accept_bi().await?;
        let mut header = [0u8; HEADER_LEN];
        recv.read_exact(&mut header).await.map_err(|e| match e {
            quinn::ReadExactError::FinishedEarly(_) => SessionError::Record(RecordError::Truncated),
            quinn::ReadExactError::ReadError(e) => e.into(),
        })?;
        let parsed = RecordHeader::parse(&header)?;
        let keys = self.keys.lock().await.accept_stream(parsed.stream)?;
        Ok(SecureStream::new(keys, send, recv, Some(header)))
    }
}
