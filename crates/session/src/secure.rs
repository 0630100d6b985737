//! Sealed streams over quinn: each application message is one frame sealed as one record.
//!
//! Every stream of a session reports to one alarm: a record that fails authentication, comes
//! out of order or twice, or a stream cut before its end-of-stream record means someone
//! between the two programs attacks the path, and whoever runs the session ends all of it
//! ([`Session::attacked`]). Our own programs therefore never end a stream any other way than
//! with its end-of-stream record ([`SecureSend::finish`]) or a reset: a [`SecureSend`] dropped
//! unfinished resets its QUIC stream, which is not an attack (peers and the relay reset streams
//! for good reasons).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ponte_e2e::Role;
use ponte_e2e::app::MAX_MESSAGE;
use ponte_e2e::record::{HEADER_LEN, Opened, RecordError, RecordHeader, RecordOpener, RecordSealer};
use ponte_e2e::session_keys::{SessionKeys, StreamKeys};
use ponte_wire::frame;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use crate::SessionError;

/// The sending half of a sealed stream.
///
/// Cancel-safe: a `send` dropped half-way through writing its record leaves the rest in the
/// buffer, and the next `send` or `finish` writes it first. So a task that runs a request can
/// be stopped at any await point and the stream still carries whole records — the agent
/// relies on this to tell the assistant why it stopped something.
///
/// Dropped before [`SecureSend::finish`], it resets the stream: quinn's own drop would end it
/// with a FIN, which without the end-of-stream record is exactly what a truncating relay does.
#[derive(Debug)]
pub struct SecureSend {
    quic: quinn::SendStream,
    sealer: RecordSealer,
    buf: Vec<u8>,
    /// How much of `buf` is on the stream already.
    written: usize,
    /// The end-of-stream record is written and the QUIC stream finished.
    finished: bool,
}

impl Drop for SecureSend {
    fn drop(&mut self) {
        if !self.finished {
            // Fails harmlessly on a stream already reset or stopped, or a closed connection.
            let _ = self.quic.reset(0u32.into());
        }
    }
}

impl SecureSend {
    /// Sends one message as one record.
    pub async fn send<T: Serialize>(&mut self, message: &T) -> Result<(), SessionError> {
        self.send_all(std::iter::once(message)).await
    }

    /// Sends messages as one record each, written to the stream at once: a run of small
    /// messages leaves in full packets rather than one small packet each.
    pub async fn send_all<'m, T: Serialize + 'm>(
        &mut self,
        messages: impl IntoIterator<Item = &'m T>,
    ) -> Result<(), SessionError> {
        self.write_pending().await?;
        self.buf.clear();
        self.written = 0;
        let mut outcome = Ok(());
        for message in messages {
            let start = self.buf.len();
            self.buf.resize(start + HEADER_LEN, 0);
            let sealed = frame::encode_into(message, MAX_MESSAGE, &mut self.buf)
                .map_err(SessionError::from)
                .and_then(|()| Ok(self.sealer.seal_in_place_at(&mut self.buf, start)?));
            if let Err(e) = sealed {
                // Nothing of a message that could not be sealed (after `finish`, say) goes
                // out; the records sealed before it do.
                self.buf.truncate(start);
                outcome = Err(e);
                break;
            }
        }
        self.write_pending().await?;
        outcome
    }

    /// Writes what is left of the current record. quinn's `write` is cancel-safe (nothing
    /// is written unless it completes), so the count stays true whenever this is dropped.
    async fn write_pending(&mut self) -> Result<(), SessionError> {
        while self.written < self.buf.len() {
            self.written += self.quic.write(&self.buf[self.written..]).await?;
        }
        Ok(())
    }

    /// Sends the authenticated end of the stream and finishes the QUIC stream; nothing can be
    /// sent after. Finishing again does nothing.
    pub async fn finish(&mut self) -> Result<(), SessionError> {
        if self.finished {
            return Ok(());
        }
        self.write_pending().await?;
        // A `finish` cancelled half-way sealed the end record already; its rest was written.
        if !self.sealer.is_finished() {
            self.buf.clear();
            self.sealer.finish(&mut self.buf)?;
            self.written = 0;
        }
        self.write_pending().await?;
        let _ = self.quic.finish();
        self.finished = true;
        Ok(())
    }

    /// Abandons the stream (the peer sees a reset, never a clean end).
    pub fn reset(&mut self) {
        let _ = self.quic.reset(0u32.into());
    }

    /// Completes when the peer stops reading this stream (it reset or dropped its side), or
    /// the connection is lost. Cancel-safe.
    pub async fn stopped(&mut self) {
        let _ = self.quic.stopped().await;
    }

    /// Waits until the peer has received everything (or stopped the stream), at most `limit`.
    pub async fn flushed(&mut self, limit: Duration) {
        let _ = tokio::time::timeout(limit, self.quic.stopped()).await;
    }
}

/// The receiving half of a sealed stream: the QUIC stream's bytes fed to the record layer's
/// [`RecordOpener::decapsulate`] (the code the fuzzer runs). A detected attack on its records
/// raises the session's alarm before the error is returned.
#[derive(Debug)]
pub struct SecureRecv {
    quic: quinn::RecvStream,
    opener: RecordOpener,
    alarm: Alarm,
    /// Bytes read from the stream that the opener has not taken yet (the opener never takes
    /// bytes past the record it assembles).
    unread: Bytes,
}

impl SecureRecv {
    /// Receives the next message; `None` at the authenticated end of the stream.
    ///
    /// Cancel-safe: bytes read before the future is dropped are kept (in `unread` or in the
    /// opener's record), so `recv` can wait in `select!` beside other work without losing part
    /// of a message.
    pub async fn recv<T: DeserializeOwned + Serialize>(&mut self) -> Result<Option<T>, SessionError> {
        let received = self.receive().await;
        received.map_err(|e| self.alarm.check(Some(self.opener.stream()), e))
    }

    async fn receive<T: DeserializeOwned + Serialize>(&mut self) -> Result<Option<T>, SessionError> {
        loop {
            while !self.unread.is_empty() {
                let (used, opened) = self.opener.decapsulate(&self.unread)?;
                let _ = self.unread.split_to(used);
                match opened {
                    None => {}
                    Some(Opened::End) => return Ok(None),
                    Some(Opened::Data(plaintext)) => return Ok(Some(frame::decode(plaintext, MAX_MESSAGE)?)),
                }
            }
            // quinn's `read_chunk` is cancel-safe: bytes are only taken when it completes.
            match self.quic.read_chunk(usize::MAX, true).await? {
                Some(chunk) => self.unread = chunk.bytes,
                // The end of the QUIC stream: clean only after the end-of-stream record.
                None => {
                    self.opener.finish()?;
                    return Ok(None);
                }
            }
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
        alarm: Alarm,
    ) -> Self {
        SecureStream {
            number: keys.number,
            send: SecureSend {
                quic: send,
                sealer: keys.sealer,
                buf: Vec::new(),
                written: 0,
                finished: false,
            },
            recv: SecureRecv {
                quic: recv,
                opener: keys.opener,
                alarm,
                unread: header.map_or_else(Bytes::new, |h| Bytes::copy_from_slice(&h)),
            },
        }
    }
}

/// A session's alarm: raised by the first of its streams that detects an attack on the path
/// ([`RecordError::is_attack`]), watched by whoever runs the session.
#[derive(Debug, Clone)]
struct Alarm(Arc<watch::Sender<Option<RecordError>>>);

impl Alarm {
    fn new() -> Alarm {
        Alarm(Arc::new(watch::Sender::new(None)))
    }

    /// Raises the alarm if `error` is an attack on the path (the first one is kept); returns
    /// the error.
    fn check(&self, stream: Option<u64>, error: SessionError) -> SessionError {
        if let SessionError::Record(record) = &error
            && record.is_attack()
        {
            self.0.send_if_modified(|raised| {
                if raised.is_some() {
                    return false;
                }
                tracing::warn!(?stream, error = %record, "attack on the path detected; the session ends");
                *raised = Some(record.clone());
                true
            });
        }
        error
    }
}

/// An established end-to-end session over a relayed QUIC connection — the latest one: a
/// resumed session ([`crate::resume`]) goes on over a new connection with new keys, and every
/// clone sees the change.
#[derive(Debug, Clone)]
pub struct Session {
    /// The connection and its keys, changed together (one lock): a stream is never opened or
    /// accepted with the keys of one connection on another.
    inner: Arc<std::sync::Mutex<Inner>>,
    alarm: Alarm,
}

#[derive(Debug)]
struct Inner {
    connection: quinn::Connection,
    keys: SessionKeys,
}

impl Session {
    pub(crate) fn new(connection: quinn::Connection, keys: SessionKeys) -> Session {
        Session {
            inner: Arc::new(std::sync::Mutex::new(Inner { connection, keys })),
            alarm: Alarm::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Goes on over `connection` with the keys a resume handshake made (and so with the next
    /// resume secret: the one used is forgotten). Streams of the old connection are gone.
    pub(crate) fn resume(&self, connection: quinn::Connection, keys: SessionKeys) {
        *self.lock() = Inner { connection, keys };
    }

    /// Where the next resume of this session meets at the relay: the relay sees this tag, and
    /// whoever learns it (a hostile relay) still cannot resume without the secret.
    pub fn resume_tag(&self) -> ponte_wire::DeviceTag {
        ponte_e2e::resume::tag(self.lock().keys.resume_secret())
    }

    /// The secret the next resume of this session proves.
    pub(crate) fn resume_secret(&self) -> ponte_e2e::key_schedule::Secret {
        self.lock().keys.resume_secret().clone()
    }

    /// Completes once any stream of this session detected an attack on the path (at once if
    /// one did already), with what it detected; the session must then end, and tell the other
    /// side with `EndReason::Tampered`. Cancel-safe.
    pub async fn attacked(&self) -> RecordError {
        let mut raised = self.alarm.0.subscribe();
        loop {
            if let Some(attack) = raised.borrow_and_update().clone() {
                return attack;
            }
            // Never fails: `self` holds the sender.
            if raised.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// The attack on the path a stream of this session detected, if one did.
    pub fn attack(&self) -> Option<RecordError> {
        self.alarm.0.borrow().clone()
    }

    /// The QUIC connection to the relay (the latest, after a resume).
    pub fn connection(&self) -> quinn::Connection {
        self.lock().connection.clone()
    }

    /// The relay operator's words, if the relay closed the connection because its operator
    /// ended the session (however the end was noticed first: a stream the relay cut, say).
    pub fn operator_words(&self) -> Option<ponte_wire::text::PeerText> {
        self.connection()
            .close_reason()
            .as_ref()
            .and_then(ponte_transport::client::operator_words)
    }

    /// Turns the handshake's QUIC stream into the control stream (stream 0 of the agent).
    pub(crate) async fn control(
        &self,
        send: quinn::SendStream,
        recv: quinn::RecvStream,
    ) -> Result<SecureStream, SessionError> {
        let stream_keys = {
            let keys = &mut self.lock().keys;
            match keys.role() {
                Role::Agent => keys.open_stream()?,
                Role::Viewer => keys.accept_stream(0)?,
            }
        };
        debug_assert_eq!(stream_keys.number, 0);
        Ok(SecureStream::new(
            stream_keys,
            send,
            recv,
            None,
            self.alarm.clone(),
        ))
    }

    /// Opens a new sealed stream.
    pub async fn open(&self) -> Result<SecureStream, SessionError> {
        // Keys first: a QUIC stream dropped raw would end with a FIN the peer takes for a cut.
        let (keys, connection) = {
            let mut inner = self.lock();
            (inner.keys.open_stream()?, inner.connection.clone())
        };
        let (send, recv) = connection.open_bi().await?;
        Ok(SecureStream::new(keys, send, recv, None, self.alarm.clone()))
    }

    /// Accepts the next stream the peer opens. Cancel-safe (it waits for nothing but the
    /// stream itself); [`Incoming::open`] then reads its first record header.
    pub async fn accept(&self) -> Result<Incoming, SessionError> {
        let connection = self.connection();
        let halves = connection.accept_bi().await?;
        Ok(Incoming {
            session: self.clone(),
            connection: connection.stable_id(),
            halves: Some(halves),
        })
    }
}

/// A stream the peer opened, not read yet. Dropped unopened (or failing to open), its sending
/// half is reset, like an unfinished [`SecureSend`]'s.
#[derive(Debug)]
pub struct Incoming {
    session: Session,
    /// The connection it came on ([`quinn::Connection::stable_id`]).
    connection: usize,
    /// Both halves, until [`Incoming::open`] makes a [`SecureStream`] of them.
    halves: Option<(quinn::SendStream, quinn::RecvStream)>,
}

impl Drop for Incoming {
    fn drop(&mut self) {
        if let Some((send, _)) = &mut self.halves {
            let _ = send.reset(0u32.into());
        }
    }
}

impl Incoming {
    /// How long a peer's new stream may take to show its first record header.
    pub const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

    /// Reads the first record header: the stream number, which the session accepts only if
    /// it is the peer's and was not used before. A stream cut before its first header, a
    /// garbled header or a stream replayed whole raises the session's alarm.
    pub async fn open(mut self) -> Result<SecureStream, SessionError> {
        let alarm = self.session.alarm.clone();
        let (header, keys) = self.first_header().await?;
        let (send, recv) = self.halves.take().ok_or(SessionError::UnexpectedEnd)?;
        Ok(SecureStream::new(keys, send, recv, Some(header), alarm))
    }

    async fn first_header(&mut self) -> Result<([u8; HEADER_LEN], StreamKeys), SessionError> {
        let alarm = &self.session.alarm;
        let (_, recv) = self.halves.as_mut().ok_or(SessionError::UnexpectedEnd)?;
        let mut header = [0u8; HEADER_LEN];
        let read = tokio::time::timeout(Self::HEADER_TIMEOUT, recv.read_exact(&mut header));
        let read = read
            .await
            .map_err(|_| SessionError::Timeout)?
            .map_err(|e| match e {
                quinn::ReadExactError::FinishedEarly(_) => SessionError::Record(RecordError::Truncated),
                quinn::ReadExactError::ReadError(e) => e.into(),
            });
        read.map_err(|e| alarm.check(None, e))?;
        let parsed = RecordHeader::parse(&header).map_err(|e| alarm.check(None, e.into()))?;
        let keys = {
            let mut inner = self.session.lock();
            // A stream of a connection the session has left (resumed elsewhere) is no stream of
            // the session's any more; its number must not be spent under the new keys.
            if inner.connection.stable_id() != self.connection {
                return Err(SessionError::UnexpectedEnd);
            }
            inner.keys.accept_stream(parsed.stream)
        };
        let keys = keys.map_err(|e| alarm.check(Some(parsed.stream), e.into()))?;
        Ok((header, keys))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use ponte_e2e::key_schedule;
    use ponte_transport::tls::{self, CertFingerprint, RelayTrust};

    /// An agent and a viewer session over a direct loopback QUIC connection.
    pub(crate) async fn pair() -> (Session, Session, quinn::Endpoint, quinn::Endpoint) {
        let cert = rcgen::generate_simple_self_signed(vec!["ponte-relay".into()]).unwrap();
        let der = cert.cert.der().clone();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
        let transport = || tls::transport_config(Duration::from_secs(10));
        let server_config = tls::server_config(vec![der.clone()], key, transport()).unwrap();
        let server = quinn::Endpoint::server(server_config, "127.0.0.1:0".parse().unwrap()).unwrap();
        let (client_config, _) =
            tls::client_config(&RelayTrust::Pinned(CertFingerprint::of(&der)), transport()).unwrap();
        let mut client = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        client.set_default_client_config(client_config);
        let connecting = client
            .connect(server.local_addr().unwrap(), "ponte-relay")
            .unwrap();
        let (client_conn, server_conn) = tokio::join!(connecting, async {
            server.accept().await.unwrap().await.unwrap()
        });
        let secrets = key_schedule::derive(&[7; 32], b"pake key", &[9; 32]);
        let agent = Session::new(server_conn, SessionKeys::from_secrets(Role::Agent, &secrets));
        let viewer = Session::new(
            client_conn.unwrap(),
            SessionKeys::from_secrets(Role::Viewer, &secrets),
        );
        (agent, viewer, server, client)
    }

    /// Seals `message` as the next record, as `send` would, without writing it.
    fn record(send: &mut SecureSend, message: &str) -> Vec<u8> {
        let mut buf = vec![0; HEADER_LEN];
        frame::encode_into(&message.to_owned(), MAX_MESSAGE, &mut buf).unwrap();
        send.sealer.seal_in_place(&mut buf).unwrap();
        buf
    }

    #[tokio::test]
    async fn a_cancelled_recv_loses_nothing() {
        let (agent, viewer, _server, _client) = pair().await;
        let mut sender = agent.open().await.unwrap();
        sender.send.send(&"first".to_owned()).await.unwrap();
        let mut receiver = viewer.accept().await.unwrap().open().await.unwrap();
        assert_eq!(receiver.recv.expect::<String>().await.unwrap(), "first");

        let long = "x".repeat(30_000);
        // Cut inside the header, then inside the body; each time a waiting recv is cancelled.
        for (message, cut) in [(long.as_str(), HEADER_LEN / 2), ("second", HEADER_LEN + 3)] {
            let bytes = record(&mut sender.send, message);
            sender.send.quic.write_all(&bytes[..cut]).await.unwrap();
            let waited =
                tokio::time::timeout(Duration::from_millis(200), receiver.recv.recv::<String>()).await;
            assert!(
                waited.is_err(),
                "the record is incomplete, so recv is still waiting"
            );
            sender.send.quic.write_all(&bytes[cut..]).await.unwrap();
            assert_eq!(receiver.recv.expect::<String>().await.unwrap(), message);
        }
        sender.send.finish().await.unwrap();
        assert_eq!(receiver.recv.recv::<String>().await.unwrap(), None);
    }

    /// A batch whose third message cannot be sealed (too long) sends the two before it and
    /// nothing of the rest; the stream goes on without a gap.
    #[tokio::test]
    async fn a_batch_sends_what_precedes_a_message_that_cannot_be_sealed() {
        let (agent, viewer, _server, _client) = pair().await;
        let mut sender = agent.open().await.unwrap();
        let batch = [
            "one".to_owned(),
            "two".to_owned(),
            "x".repeat(MAX_MESSAGE + 1),
            "four".to_owned(),
        ];
        let refused = sender.send.send_all(&batch).await.unwrap_err();
        assert!(matches!(refused, SessionError::Frame(_)), "{refused}");
        sender.send.send(&"five".to_owned()).await.unwrap();
        sender.send.finish().await.unwrap();
        let mut receiver = viewer.accept().await.unwrap().open().await.unwrap();
        let mut got = Vec::new();
        while let Some(m) = receiver.recv.recv::<String>().await.unwrap() {
            got.push(m);
        }
        assert_eq!(got, ["one", "two", "five"]);
    }

    #[tokio::test]
    async fn a_cancelled_send_completes_its_record_first() {
        let (agent, viewer, _server, _client) = pair().await;
        let mut sender = agent.open().await.unwrap();
        sender.send.send(&"open".to_owned()).await.unwrap();
        let mut receiver = viewer.accept().await.unwrap().open().await.unwrap();
        assert_eq!(receiver.recv.expect::<String>().await.unwrap(), "open");
        // Nobody reads: flow control fills up and a send is cut off part-way.
        let big = "y".repeat(50_000);
        let mut whole = 0;
        loop {
            match tokio::time::timeout(Duration::from_millis(200), sender.send.send(&big)).await {
                Ok(sent) => {
                    sent.unwrap();
                    whole += 1;
                }
                Err(_) => break,
            }
            assert!(whole < 10_000, "flow control never pushed back");
        }
        assert!(sender.send.written > 0 && sender.send.written < sender.send.buf.len());
        // The next message follows the interrupted one, which arrives whole.
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(m) = receiver.recv.recv::<String>().await.unwrap() {
                got.push(m);
            }
            got
        });
        sender.send.send(&"after".to_owned()).await.unwrap();
        sender.send.finish().await.unwrap();
        let got = reader.await.unwrap();
        assert_eq!(got.len(), whole + 2);
        assert!(got[..=whole].iter().all(|m| *m == big));
        assert_eq!(got[whole + 1], "after");
    }

    /// A stream a task drops before finishing it (an aborted request) is reset, never ended
    /// with a FIN: a FIN without the end-of-stream record is what a truncating relay does.
    #[tokio::test]
    async fn an_unfinished_send_is_reset_when_dropped() {
        let (agent, viewer, _server, _client) = pair().await;
        let mut sender = agent.open().await.unwrap();
        sender.send.send(&"first".to_owned()).await.unwrap();
        let mut receiver = viewer.accept().await.unwrap().open().await.unwrap();
        assert_eq!(receiver.recv.expect::<String>().await.unwrap(), "first");
        drop(sender);
        let next = tokio::time::timeout(Duration::from_secs(5), receiver.recv.recv::<String>())
            .await
            .unwrap();
        assert!(
            matches!(next, Err(SessionError::Read(quinn::ReadError::Reset(_)))),
            "{next:?}"
        );
    }

    /// Every stream reports to its session's alarm: a stream ended before its end-of-stream
    /// record or an altered record raises it, a reset does not, and each side has its own.
    #[tokio::test]
    async fn an_attack_on_a_stream_raises_the_sessions_alarm() {
        let (agent, viewer, _server, _client) = pair().await;
        let mut reset = agent.open().await.unwrap();
        reset.send.send(&"a".to_owned()).await.unwrap();
        let mut receiver = viewer.accept().await.unwrap().open().await.unwrap();
        assert_eq!(receiver.recv.expect::<String>().await.unwrap(), "a");
        reset.send.reset();
        let next = receiver.recv.recv::<String>().await.unwrap_err();
        assert!(!next.is_attack(), "{next}");
        assert_eq!(viewer.attack(), None, "a reset is no attack");

        let mut cut = agent.open().await.unwrap();
        cut.send.send(&"b".to_owned()).await.unwrap();
        cut.send.quic.finish().unwrap();
        let mut receiver = viewer.accept().await.unwrap().open().await.unwrap();
        assert_eq!(receiver.recv.expect::<String>().await.unwrap(), "b");
        let next = receiver.recv.recv::<String>().await.unwrap_err();
        assert!(next.is_attack(), "{next}");
        let raised = tokio::time::timeout(Duration::from_secs(1), viewer.attacked()).await;
        assert_eq!(raised.unwrap(), RecordError::Truncated);
        assert_eq!(agent.attack(), None, "the other side's alarm is its own");

        // The other way: an altered record raises the agent's alarm; the viewer's keeps its own.
        let mut altered = viewer.open().await.unwrap();
        let mut bytes = record(&mut altered.send, "c");
        *bytes.last_mut().unwrap() ^= 1;
        altered.send.quic.write_all(&bytes).await.unwrap();
        let mut receiver = agent.accept().await.unwrap().open().await.unwrap();
        let next = receiver.recv.recv::<String>().await.unwrap_err();
        assert!(
            matches!(next, SessionError::Record(RecordError::Tampered)),
            "{next}"
        );
        assert_eq!(agent.attack(), Some(RecordError::Tampered));
        assert_eq!(viewer.attack(), Some(RecordError::Truncated));
    }
}
