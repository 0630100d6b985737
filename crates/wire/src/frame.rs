//! Framing for typed messages: rendezvous, handshake and control messages all travel as
//! `length (u16, big endian) ‖ version (u8) ‖ postcard body`.
//!
//! [`FrameReader`] is sans-IO: it never takes a byte past the end of the frame it is
//! assembling, so a driver can hand the rest of a stream to another layer (the record layer
//! after the handshake, say) without losing or double-reading anything.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The wire version this crate speaks, carried in every frame.
pub const VERSION: u8 = 1;

/// Bytes of the length prefix.
pub const LENGTH_PREFIX: usize = 2;

/// The largest frame body (version byte included) the format can carry.
pub const MAX_BODY: usize = u16::MAX as usize;

/// What went wrong encoding or decoding a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The peer announced a frame longer than this reader accepts.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLong {
        /// Announced length.
        len: usize,
        /// Limit of this reader.
        max: usize,
    },
    /// A frame with no version byte.
    #[error("empty frame")]
    Empty,
    /// The frame is of a protocol version this build does not speak.
    #[error("unsupported protocol version {0} (this build speaks {VERSION})")]
    UnsupportedVersion(u8),
    /// The body does not decode as the expected message.
    #[error("malformed message")]
    Malformed,
    /// The body decoded but left bytes over; only one encoding of a message is valid.
    #[error("{0} trailing bytes after message")]
    TrailingBytes(usize),
    /// The body decoded but is not the canonical encoding (an overlong varint, say).
    #[error("non-canonical message encoding")]
    NonCanonical,
}

/// Encodes `message` as one frame appended to `out`.
///
/// Fails with [`FrameError::TooLong`] when the encoding exceeds `max_body`; that is a bug of
/// the caller (a message larger than its channel allows), reported rather than truncated.
pub fn encode_into<T: Serialize>(message: &T, max_body: usize, out: &mut Vec<u8>) -> Result<(), FrameError> {
    let start = out.len();
    out.extend_from_slice(&[0, 0, VERSION]);
    let mut out_vec = std::mem::take(out);
    out_vec = postcard::to_extend(message, out_vec).map_err(|_| FrameError::Malformed)?;
    *out = out_vec;
    let body = out.len() - start - LENGTH_PREFIX;
    let max = max_body.min(MAX_BODY);
    if body > max {
        out.truncate(start);
        return Err(FrameError::TooLong { len: body, max });
    }
    out[start..start + LENGTH_PREFIX].copy_from_slice(&(body as u16).to_be_bytes());
    Ok(())
}

/// Encodes `message` as one frame.
pub fn encode<T: Serialize>(message: &T, max_body: usize) -> Result<Vec<u8>, FrameError> {
    let mut out = Vec::new();
    encode_into(message, max_body, &mut out)?;
    Ok(out)
}

/// Decodes a frame body (version byte and message, without the length prefix).
///
/// Only the canonical encoding is accepted, so every message has exactly one wire form.
pub fn decode_body<T: DeserializeOwned + Serialize>(body: &[u8]) -> Result<T, FrameError> {
    let (&version, message) = body.split_first().ok_or(FrameError::Empty)?;
    if version != VERSION {
        return Err(FrameError::UnsupportedVersion(version));
    }
    let (value, rest) = postcard::take_from_bytes(message).map_err(|_| FrameError::Malformed)?;
    if !rest.is_empty() {
        return Err(FrameError::TrailingBytes(rest.len()));
    }
    // postcard accepts overlong varints. Those are its only other encodings, and each is
    // longer than the canonical one: counting the canonical size is enough (no re-encoding).
    if !matches!(postcard::experimental::serialized_size(&value), Ok(n) if n == message.len()) {
        return Err(FrameError::NonCanonical);
    }
    Ok(value)
}

/// Decodes exactly one complete frame (length prefix included).
pub fn decode<T: DeserializeOwned + Serialize>(frame: &[u8], max_body: usize) -> Result<T, FrameError> {
    let mut reader = FrameReader::new(max_body);
    let used = reader.push(frame)?;
    if used != frame.len() {
        return Err(FrameError::TrailingBytes(frame.len() - used));
    }
    reader.take()?.ok_or(FrameError::Malformed)
}

/// Assembles frames from a byte stream, one at a time, within a size limit.
#[derive(Debug)]
pub struct FrameReader {
    buf: Vec<u8>,
    max_body: usize,
}

impl FrameReader {
    /// A reader that refuses frames whose body exceeds `max_body` bytes.
    pub fn new(max_body: usize) -> Self {
        Self {
            buf: Vec::new(),
            max_body: max_body.min(MAX_BODY),
        }
    }

    fn body_len(&self) -> Option<usize> {
        (self.buf.len() >= LENGTH_PREFIX).then(|| usize::from(u16::from_be_bytes([self.buf[0], self.buf[1]])))
    }

    /// How many more bytes complete the current frame (or its length prefix); 0 when a frame
    /// is complete and waiting for [`FrameReader::take`].
    pub fn wanted(&self) -> usize {
        match self.body_len() {
            None => LENGTH_PREFIX - self.buf.len(),
            Some(len) => LENGTH_PREFIX + len - self.buf.len(),
        }
    }

    /// Takes bytes from `input` up to the end of the current frame and returns how many it
    /// took. Fails as soon as the length prefix exceeds the limit.
    pub fn push(&mut self, mut input: &[u8]) -> Result<usize, FrameError> {
        let mut used = 0;
        while !input.is_empty() {
            let n = self.wanted().min(input.len());
            if n == 0 {
                break;
            }
            self.buf.extend_from_slice(&input[..n]);
            input = &input[n..];
            used += n;
            if let Some(len) = self.body_len()
                && len > self.max_body
            {
                self.buf.clear();
                return Err(FrameError::TooLong {
                    len,
                    max: self.max_body,
                });
            }
        }
        Ok(used)
    }

    /// Decodes and removes the completed frame, or returns `None` if it is not complete yet.
    pub fn take<T: DeserializeOwned + Serialize>(&mut self) -> Result<Option<T>, FrameError> {
        if self.body_len().is_none() || self.wanted() != 0 {
            return Ok(None);
        }
        let result = decode_body(&self.buf[LENGTH_PREFIX..]);
        self.buf.clear();
        result.map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Msg {
        A(u32),
        B { text: String, bytes: Vec<u8> },
    }

    #[test]
    fn round_trip_and_layout() {
        let frame = encode(&Msg::A(5), 64).unwrap();
        assert_eq!(frame, [0, 3, VERSION, 0, 5]);
        assert_eq!(decode::<Msg>(&frame, 64).unwrap(), Msg::A(5));
    }

    #[test]
    fn reader_stops_at_frame_end() {
        let mut bytes = encode(&Msg::A(7), 64).unwrap();
        bytes.extend_from_slice(b"next layer");
        let mut reader = FrameReader::new(64);
        let used = reader.push(&bytes).unwrap();
        assert_eq!(&bytes[used..], b"next layer");
        assert_eq!(reader.take::<Msg>().unwrap(), Some(Msg::A(7)));
        assert_eq!(reader.take::<Msg>().unwrap(), None);
    }

    #[test]
    fn byte_at_a_time() {
        let msg = Msg::B {
            text: "hello".into(),
            bytes: vec![1, 2, 3],
        };
        let bytes = encode(&msg, 64).unwrap();
        let mut reader = FrameReader::new(64);
        for (i, b) in bytes.iter().enumerate() {
            assert_eq!(reader.take::<Msg>().unwrap(), None, "complete too early at {i}");
            assert_eq!(reader.push(std::slice::from_ref(b)).unwrap(), 1);
        }
        assert_eq!(reader.take::<Msg>().unwrap(), Some(msg));
    }

    #[test]
    fn limits_and_errors() {
        let big = Msg::B {
            text: String::new(),
            bytes: vec![0; 100],
        };
        assert!(matches!(encode(&big, 50), Err(FrameError::TooLong { .. })));
        let frame = encode(&big, 1000).unwrap();
        assert!(matches!(
            decode::<Msg>(&frame, 50),
            Err(FrameError::TooLong { len: 104, max: 50 })
        ));
        assert_eq!(decode::<Msg>(&[0, 0], 50), Err(FrameError::Empty));
        assert_eq!(
            decode::<Msg>(&[0, 2, 9, 0], 50),
            Err(FrameError::UnsupportedVersion(9))
        );
        assert_eq!(decode::<Msg>(&[0, 2, VERSION, 7], 50), Err(FrameError::Malformed));
        assert_eq!(
            decode::<Msg>(&[0, 4, VERSION, 0, 5, 0], 50),
            Err(FrameError::TrailingBytes(1))
        );
        // Variant 0 and value 5, with the variant as an overlong varint.
        assert_eq!(
            decode::<Msg>(&[0, 4, VERSION, 0x80, 0, 5], 50),
            Err(FrameError::NonCanonical)
        );
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut reader = FrameReader::new(256);
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                match reader.push(rest) {
                    Ok(0) => { let _ = reader.take::<Msg>(); }
                    Ok(n) => rest = &rest[n..],
                    Err(_) => break,
                }
                let _ = reader.take::<Msg>();
            }
        }
    }
}
