//! [`ponte_wire::frame`] messages over quinn streams.

use std::time::Duration;

use ponte_wire::frame::{FrameError, FrameReader};
use ponte_wire::text::error_text;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// What went wrong reading or writing a framed message.
#[derive(Debug, thiserror::Error)]
pub enum FramedError {
    /// The peer sent a bad frame.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// Reading failed (connection lost, stream reset).
    #[error("read: {}", error_text(.0))]
    Read(quinn::ReadError),
    /// Writing failed (connection lost, stream stopped).
    #[error("write: {}", error_text(.0))]
    Write(quinn::WriteError),
    /// The stream ended in the middle of a frame.
    #[error("stream ended in the middle of a message")]
    Truncated,
    /// No complete message arrived in time.
    #[error("timed out waiting for a message")]
    Timeout,
}

// By hand rather than `#[from]`, which would make the cause the error's `source()` too: each
// message already says its cause (see `error_text`).
impl From<quinn::ReadError> for FramedError {
    fn from(e: quinn::ReadError) -> FramedError {
        FramedError::Read(e)
    }
}

impl From<quinn::WriteError> for FramedError {
    fn from(e: quinn::WriteError) -> FramedError {
        FramedError::Write(e)
    }
}

/// Reads one message of at most `max_body` bytes. Returns `None` if the stream ended cleanly
/// before the first byte of a message. Never reads past the end of the message.
pub async fn read<T: DeserializeOwned + Serialize>(
    recv: &mut quinn::RecvStream,
    max_body: usize,
) -> Result<Option<T>, FramedError> {
    let mut reader = FrameReader::new(max_body);
    let mut buf = vec![0u8; max_body.min(4096) + ponte_wire::frame::LENGTH_PREFIX];
    let mut started = false;
    loop {
        if let Some(message) = reader.take()? {
            return Ok(Some(message));
        }
        let want = reader.wanted().min(buf.len());
        match recv.read(&mut buf[..want]).await? {
            None if !started => return Ok(None),
            None => return Err(FramedError::Truncated),
            Some(n) => {
                started = true;
                reader.push(&buf[..n])?;
            }
        }
    }
}

/// [`read`] with a deadline.
pub async fn read_timeout<T: DeserializeOwned + Serialize>(
    recv: &mut quinn::RecvStream,
    max_body: usize,
    timeout: Duration,
) -> Result<Option<T>, FramedError> {
    tokio::time::timeout(timeout, read(recv, max_body))
        .await
        .map_err(|_| FramedError::Timeout)?
}

/// Writes an already encoded frame.
pub async fn write(send: &mut quinn::SendStream, frame: &[u8]) -> Result<(), FramedError> {
    send.write_all(frame).await?;
    Ok(())
}
