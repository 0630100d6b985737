//! The record layer: one direction of one logical stream as a sequence of AES-256-GCM
//! records, closed by an authenticated end-of-stream record.
//!
//! ```text
//! record  = header ‖ ciphertext ‖ tag(16)
//! header  = kind(1) ‖ sender(1) ‖ length(u32) ‖ stream(u64) ‖ sequence(u64)    all big endian
//! nonce   = 0x00000000 ‖ sequence(u64)
//! aad     = header
//! key     = HKDF-Expand(traffic secret of sender, "ponte/1 stream" ‖ stream, 32)
//! ```
//!
//! The header is cleartext but authenticated. Its stream, sender and sequence fields let the
//! opener name what went wrong (a record replayed, reordered, spliced from another stream or
//! reflected back from the other direction) before authentication decides whether the bytes
//! are genuine; the per-stream key and the nonce would reject every such record anyway.

use crate::Role;
use crate::cipher::{AeadKey, Backend, NONCE_LEN, TAG_LEN};
use crate::key_schedule::{Secret, stream_key};

/// Bytes of a record header.
pub const HEADER_LEN: usize = 22;
/// The largest plaintext one record carries.
pub const MAX_PLAINTEXT: usize = 64 * 1024;
/// The largest record on the wire.
pub const MAX_RECORD: usize = HEADER_LEN + MAX_PLAINTEXT + TAG_LEN;

const KIND_DATA: u8 = 1;
const KIND_END: u8 = 2;

/// Why a record could not be sealed or opened. Each attack on a stream has its own variant,
/// and none of them ever yields plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The header has an unknown kind or sender byte.
    #[error("malformed record header")]
    Malformed,
    /// The header announces more than [`MAX_PLAINTEXT`] bytes (or less than a tag).
    #[error("record length {0} out of bounds")]
    BadLength(u32),
    /// A plaintext larger than one record was given to a single-record call.
    #[error("plaintext of {0} bytes exceeds the record limit")]
    PlaintextTooLarge(usize),
    /// The record was sent by this side, reflected back by someone in the middle.
    #[error("record reflected from the other direction")]
    Reflected,
    /// The record belongs to another stream.
    #[error("record of stream {found} spliced into stream {expected}")]
    Spliced {
        /// This stream's number.
        expected: u64,
        /// The number in the record.
        found: u64,
    },
    /// A record that was already accepted arrived again.
    #[error("record {found} replayed (expected {expected})")]
    Replayed {
        /// The next sequence number this stream expects.
        expected: u64,
        /// The sequence number in the record.
        found: u64,
    },
    /// A record arrived ahead of its turn (records were dropped or reordered).
    #[error("record {found} out of order (expected {expected})")]
    Reordered {
        /// The next sequence number this stream expects.
        expected: u64,
        /// The sequence number in the record.
        found: u64,
    },
    /// The record failed authentication: its bytes were altered or forged.
    #[error("record failed authentication (tampered or forged)")]
    Tampered,
    /// The transport ended before the authenticated end-of-stream record.
    #[error("stream truncated before its end-of-stream record")]
    Truncated,
    /// Bytes arrived after the end-of-stream record.
    #[error("data after the end of the stream")]
    AfterEnd,
    /// The 64-bit sequence space of this direction is used up; only `finish` is allowed.
    #[error("record counter exhausted; the stream must be closed")]
    CounterExhausted,
    /// Sealing after the stream was finished.
    #[error("stream already finished")]
    Finished,
    /// The peer opened a stream with a number from this side's number space.
    #[error("stream {0} is not in the peer's number space")]
    WrongStreamSpace(u64),
    /// The peer opened a stream number that was used before (a replayed stream).
    #[error("stream {0} was already used")]
    StreamReused(u64),
    /// The peer opened more streams than one session allows.
    #[error("too many streams in one session")]
    TooManyStreams,
}

impl RecordError {
    /// Whether this is what a record looks like after someone between the two ends altered,
    /// dropped, repeated, moved or cut the stream — a detected attack on the path, which ends
    /// the session — rather than a limit of this side or of the peer.
    pub fn is_attack(&self) -> bool {
        match self {
            RecordError::Malformed
            | RecordError::BadLength(_)
            | RecordError::Reflected
            | RecordError::Spliced { .. }
            | RecordError::Replayed { .. }
            | RecordError::Reordered { .. }
            | RecordError::Tampered
            | RecordError::Truncated
            | RecordError::AfterEnd
            | RecordError::WrongStreamSpace(_)
            | RecordError::StreamReused(_) => true,
            RecordError::PlaintextTooLarge(_)
            | RecordError::CounterExhausted
            | RecordError::Finished
            | RecordError::TooManyStreams => false,
        }
    }
}

/// The parsed cleartext header of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// True for the end-of-stream record.
    pub end: bool,
    /// Who sealed the record.
    pub sender: Role,
    /// Bytes of ciphertext and tag that follow the header.
    pub length: u32,
    /// The logical stream the record claims to belong to.
    pub stream: u64,
    /// The record's sequence number within its direction of the stream.
    pub sequence: u64,
}

impl RecordHeader {
    /// Parses and bounds-checks a header from the first [`HEADER_LEN`] bytes of `bytes`.
    ///
    /// A driver reads this from the first record of an incoming stream to learn the stream
    /// number before it asks the session for keys.
    pub fn parse(bytes: &[u8]) -> Result<RecordHeader, RecordError> {
        let h: &[u8; HEADER_LEN] = bytes
            .get(..HEADER_LEN)
            .and_then(|b| b.try_into().ok())
            .ok_or(RecordError::Malformed)?;
        let end = match h[0] {
            KIND_DATA => false,
            KIND_END => true,
            _ => return Err(RecordError::Malformed),
        };
        let sender = Role::from_wire_byte(h[1]).ok_or(RecordError::Malformed)?;
        let length = u32::from_be_bytes([h[2], h[3], h[4], h[5]]);
        if (length as usize) < TAG_LEN || length as usize > MAX_PLAINTEXT + TAG_LEN {
            return Err(RecordError::BadLength(length));
        }
        let stream = u64::from_be_bytes(h[6..14].try_into().unwrap_or_default());
        let sequence = u64::from_be_bytes(h[14..22].try_into().unwrap_or_default());
        Ok(RecordHeader {
            end,
            sender,
            length,
            stream,
            sequence,
        })
    }

    fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0] = if self.end { KIND_END } else { KIND_DATA };
        h[1] = self.sender.wire_byte();
        h[2..6].copy_from_slice(&self.length.to_be_bytes());
        h[6..14].copy_from_slice(&self.stream.to_be_bytes());
        h[14..22].copy_from_slice(&self.sequence.to_be_bytes());
        h
    }
}

fn nonce(sequence: u64) -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    n[4..].copy_from_slice(&sequence.to_be_bytes());
    n
}

/// Seals what this side sends on one stream.
#[derive(Debug)]
pub struct RecordSealer {
    key: AeadKey,
    sender: Role,
    stream: u64,
    next_sequence: u64,
    finished: bool,
}

impl RecordSealer {
    /// A sealer for `stream`, sending as `sender` under `traffic_secret`.
    pub(crate) fn new(backend: Backend, traffic_secret: &Secret, sender: Role, stream: u64) -> Self {
        Self {
            key: AeadKey::new(backend, &stream_key(traffic_secret, stream)),
            sender,
            stream,
            next_sequence: 0,
            finished: false,
        }
    }

    /// The logical stream number.
    pub fn stream(&self) -> u64 {
        self.stream
    }

    /// Seals the record that starts at `start` in `buf`: [`HEADER_LEN`] placeholder bytes,
    /// then the plaintext up to the end of `buf`. Appends the tag.
    fn seal_at(&mut self, end: bool, buf: &mut Vec<u8>, start: usize) -> Result<(), RecordError> {
        if self.finished {
            return Err(RecordError::Finished);
        }
        if !end && self.next_sequence == u64::MAX {
            // The last sequence number is kept for the end-of-stream record.
            return Err(RecordError::CounterExhausted);
        }
        let Some(record) = buf.get_mut(start..).filter(|r| r.len() >= HEADER_LEN) else {
            return Err(RecordError::PlaintextTooLarge(0));
        };
        let plaintext_len = record.len() - HEADER_LEN;
        if plaintext_len > MAX_PLAINTEXT {
            return Err(RecordError::PlaintextTooLarge(plaintext_len));
        }
        let header = RecordHeader {
            end,
            sender: self.sender,
            length: (plaintext_len + TAG_LEN) as u32,
            stream: self.stream,
            sequence: self.next_sequence,
        }
        .encode();
        let (head, body) = record.split_at_mut(HEADER_LEN);
        head.copy_from_slice(&header);
        let tag = self.key.seal_in_place(nonce(self.next_sequence), &header, body);
        buf.extend_from_slice(&tag);
        // Saturates only after the end record at the last sequence number; nothing follows it.
        self.next_sequence = self.next_sequence.saturating_add(1);
        self.finished = end;
        Ok(())
    }

    /// Seals one record in place. On entry `record` holds [`HEADER_LEN`] bytes of any value
    /// followed by at most [`MAX_PLAINTEXT`] bytes of plaintext; on success it holds the
    /// complete record. This is the zero-copy path for drivers that build records directly.
    pub fn seal_in_place(&mut self, record: &mut Vec<u8>) -> Result<(), RecordError> {
        self.seal_at(false, record, 0)
    }

    /// Seals, in place, the record that begins at `start` in `buf` ([`HEADER_LEN`] bytes of
    /// any value, then at most [`MAX_PLAINTEXT`] bytes of plaintext up to the end of `buf`),
    /// after the records already there: several records built in one buffer.
    pub fn seal_in_place_at(&mut self, buf: &mut Vec<u8>, start: usize) -> Result<(), RecordError> {
        self.seal_at(false, buf, start)
    }

    /// Appends `plaintext` to `out` as one or more records of at most `record_size` bytes of
    /// plaintext each (clamped to 1..=[`MAX_PLAINTEXT`]). On error `out` is left as it was.
    pub fn seal(
        &mut self,
        plaintext: &[u8],
        record_size: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), RecordError> {
        let size = record_size.clamp(1, MAX_PLAINTEXT);
        let before = out.len();
        for chunk in plaintext.chunks(size) {
            let start = out.len();
            out.resize(start + HEADER_LEN, 0);
            out.extend_from_slice(chunk);
            if let Err(e) = self.seal_at(false, out, start) {
                out.truncate(before);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Appends the authenticated end-of-stream record to `out`; nothing can be sealed after.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), RecordError> {
        let start = out.len();
        out.resize(start + HEADER_LEN, 0);
        self.seal_at(true, out, start)
            .inspect_err(|_| out.truncate(start))
    }

    /// Whether the end-of-stream record has been sealed.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    #[cfg(test)]
    pub(crate) fn set_next_sequence(&mut self, sequence: u64) {
        self.next_sequence = sequence;
    }
}

/// What opening a record produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Opened<'a> {
    /// Authenticated plaintext, in order.
    Data(&'a [u8]),
    /// The authenticated end of the stream: everything the peer sent has arrived.
    End,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum OpenerState {
    Open,
    Ended,
    Failed(RecordError),
}

/// Opens what the peer sends on one stream, strictly in order.
///
/// After the first error the opener stays failed: a stream that was attacked once yields
/// nothing more.
#[derive(Debug)]
pub struct RecordOpener {
    key: AeadKey,
    sender: Role,
    stream: u64,
    next_sequence: u64,
    state: OpenerState,
    buf: Vec<u8>,
    /// The record in `buf` was handed out and is cleared before the next one is assembled.
    delivered: bool,
}

impl RecordOpener {
    /// An opener for `stream`, receiving from `sender` under `traffic_secret`.
    pub(crate) fn new(backend: Backend, traffic_secret: &Secret, sender: Role, stream: u64) -> Self {
        Self {
            key: AeadKey::new(backend, &stream_key(traffic_secret, stream)),
            sender,
            stream,
            next_sequence: 0,
            state: OpenerState::Open,
            buf: Vec::new(),
            delivered: false,
        }
    }

    /// The logical stream number.
    pub fn stream(&self) -> u64 {
        self.stream
    }

    fn fail(&mut self, e: RecordError) -> RecordError {
        self.state = OpenerState::Failed(e.clone());
        e
    }

    fn check_state(&self) -> Result<(), RecordError> {
        match &self.state {
            OpenerState::Open => Ok(()),
            OpenerState::Ended => Err(RecordError::AfterEnd),
            OpenerState::Failed(e) => Err(e.clone()),
        }
    }

    fn check_header(&self, h: &RecordHeader) -> Result<(), RecordError> {
        if h.sender != self.sender {
            return Err(RecordError::Reflected);
        }
        if h.stream != self.stream {
            return Err(RecordError::Spliced {
                expected: self.stream,
                found: h.stream,
            });
        }
        let expected = self.next_sequence;
        match h.sequence.cmp(&expected) {
            std::cmp::Ordering::Less => Err(RecordError::Replayed {
                expected,
                found: h.sequence,
            }),
            std::cmp::Ordering::Greater => Err(RecordError::Reordered {
                expected,
                found: h.sequence,
            }),
            std::cmp::Ordering::Equal => Ok(()),
        }
    }

    /// Opens exactly one complete record in place and returns its plaintext.
    pub fn open_in_place<'a>(&mut self, record: &'a mut [u8]) -> Result<Opened<'a>, RecordError> {
        self.check_state()?;
        let header = RecordHeader::parse(record).map_err(|e| self.fail(e))?;
        if record.len() != HEADER_LEN + header.length as usize {
            return Err(self.fail(RecordError::BadLength(header.length)));
        }
        self.check_header(&header).map_err(|e| self.fail(e))?;
        let (head, rest) = record.split_at_mut(HEADER_LEN);
        let (body, tag) = rest.split_at_mut(rest.len() - TAG_LEN);
        let tag: &[u8; TAG_LEN] = (&*tag).try_into().map_err(|_| RecordError::Malformed)?;
        if self
            .key
            .open_in_place(nonce(header.sequence), head, body, tag)
            .is_err()
        {
            return Err(self.fail(RecordError::Tampered));
        }
        self.next_sequence = self.next_sequence.saturating_add(1);
        if header.end {
            if !body.is_empty() {
                return Err(self.fail(RecordError::Malformed));
            }
            self.state = OpenerState::Ended;
            return Ok(Opened::End);
        }
        Ok(Opened::Data(body))
    }

    /// How many more bytes complete the record being assembled by
    /// [`RecordOpener::decapsulate`] (the header first, then the rest).
    pub fn wanted(&self) -> usize {
        if self.delivered {
            return HEADER_LEN;
        }
        if self.buf.len() < HEADER_LEN {
            return HEADER_LEN - self.buf.len();
        }
        match RecordHeader::parse(&self.buf) {
            Ok(h) => HEADER_LEN + h.length as usize - self.buf.len(),
            Err(_) => 0,
        }
    }

    /// Streaming input: takes bytes from `input` up to the end of the current record and
    /// returns how many it took, with the record's plaintext once the record is complete.
    ///
    /// It never takes bytes past the current record and never buffers more than
    /// [`MAX_RECORD`] bytes.
    pub fn decapsulate(&mut self, input: &[u8]) -> Result<(usize, Option<Opened<'_>>), RecordError> {
        self.check_state()?;
        if self.delivered {
            self.buf.clear();
            self.delivered = false;
        }
        let mut used = 0;
        if self.buf.len() < HEADER_LEN {
            let n = (HEADER_LEN - self.buf.len()).min(input.len());
            self.buf.extend_from_slice(&input[..n]);
            used = n;
            if self.buf.len() < HEADER_LEN {
                return Ok((used, None));
            }
            // Reject a hostile length before buffering the body.
            RecordHeader::parse(&self.buf).map_err(|e| self.fail(e))?;
        }
        let n = self.wanted().min(input.len() - used);
        self.buf.extend_from_slice(&input[used..used + n]);
        used += n;
        if self.wanted() > 0 {
            return Ok((used, None));
        }
        self.delivered = true;
        let mut buf = std::mem::take(&mut self.buf);
        let result = self.open_in_place(&mut buf).map(|o| match o {
            Opened::Data(p) => p.len(),
            Opened::End => usize::MAX,
        });
        self.buf = buf;
        match result? {
            usize::MAX => Ok((used, Some(Opened::End))),
            len => Ok((used, Some(Opened::Data(&self.buf[HEADER_LEN..HEADER_LEN + len])))),
        }
    }

    /// The transport stream ended: fine only after the end-of-stream record, otherwise the
    /// stream was truncated.
    pub fn finish(&mut self) -> Result<(), RecordError> {
        match &self.state {
            OpenerState::Ended => Ok(()),
            OpenerState::Failed(e) => Err(e.clone()),
            OpenerState::Open => Err(self.fail(RecordError::Truncated)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealing_at_a_place_past_the_buffer_is_an_error() {
        let (mut sealer, _) = pair();
        let mut buf = vec![0u8; 10];
        assert!(sealer.seal_in_place_at(&mut buf, 50).is_err());
        assert!(
            sealer.seal_in_place_at(&mut buf, 5).is_err(),
            "no room for a header"
        );
        assert_eq!(buf.len(), 10);
    }
    use zeroize::Zeroizing;

    fn pair() -> (RecordSealer, RecordOpener) {
        let secret = Zeroizing::new([9u8; 32]);
        (
            RecordSealer::new(Backend::default(), &secret, Role::Viewer, 5),
            RecordOpener::new(Backend::default(), &secret, Role::Viewer, 5),
        )
    }

    #[test]
    fn counter_exhaustion_closes_the_stream() {
        let (mut sealer, mut opener) = pair();
        sealer.set_next_sequence(u64::MAX - 1);
        opener.next_sequence = u64::MAX - 1;
        let mut wire = Vec::new();
        sealer.seal(b"last", 100, &mut wire).unwrap();
        let len = wire.len();
        assert_eq!(
            sealer.seal(b"one too many", 100, &mut wire),
            Err(RecordError::CounterExhausted)
        );
        assert_eq!(wire.len(), len, "nothing appended on failure");
        // The end-of-stream record still uses the reserved last sequence number.
        sealer.finish(&mut wire).unwrap();
        assert!(sealer.is_finished());
        let mut rest = &wire[..];
        let mut got = Vec::new();
        while !rest.is_empty() {
            let (used, opened) = opener.decapsulate(rest).unwrap();
            rest = &rest[used..];
            got.push(matches!(opened, Some(Opened::End)));
        }
        assert_eq!(got, [false, true]);
        opener.finish().unwrap();
    }

    #[test]
    fn header_layout() {
        let (mut sealer, _) = pair();
        let mut wire = Vec::new();
        sealer.seal(b"abc", 100, &mut wire).unwrap();
        assert_eq!(wire.len(), HEADER_LEN + 3 + TAG_LEN);
        assert_eq!(&wire[..2], &[KIND_DATA, b'V']);
        assert_eq!(&wire[2..6], &(3 + TAG_LEN as u32).to_be_bytes());
        assert_eq!(&wire[6..14], &5u64.to_be_bytes());
        assert_eq!(&wire[14..22], &0u64.to_be_bytes());
    }
}
