//! Rendezvous: what agents and viewers say to the relay, in cleartext inside the relay's TLS.
//!
//! Each peer opens one bidirectional stream to the relay and keeps it for the whole
//! session as its control line to the relay. The agent registers and receives a session ID;
//! the viewer joins with that ID; the relay answers both with [`RelayMessage::Paired`] and
//! from then on mirrors every *other* stream between them. The code never appears here.
//!
//! Messages are [`frame`](crate::frame)s of at most [`MAX_MESSAGE`] bytes.

use serde::{Deserialize, Serialize};

use crate::SessionId;
use crate::frame::{self, FrameError};

/// Upper bound of a rendezvous frame body. Real messages are a few bytes; the bound keeps a
/// hostile peer from making the relay buffer more.
pub const MAX_MESSAGE: usize = 256;

/// A message from an agent or a viewer to the relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientMessage {
    /// Agent: issue me a session ID and wait for a viewer.
    Register,
    /// Viewer: pair me with the agent waiting under this session ID.
    Join {
        /// The ID the customer read out.
        session: SessionId,
    },
    /// Agent: the paired viewer failed the end-to-end handshake; disconnect it and let
    /// another viewer join under the same ID.
    Release,
    /// Agent: this session ID is spent (the code was guessed wrong too often, or the session
    /// ended); forget it and refuse any further join.
    Burn,
}

/// A message from the relay to an agent or a viewer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RelayMessage {
    /// Agent: your session ID, valid for joining during `expires_in_secs` seconds.
    Registered {
        /// The new session ID.
        session: SessionId,
        /// Seconds until a viewer can no longer join (relative: clocks differ).
        expires_in_secs: u32,
    },
    /// Both: a viewer has joined; other streams are now forwarded between the two peers.
    Paired,
    /// Agent: the paired viewer left or was released; the session waits for a join again.
    PeerLeft,
    /// The request was refused, or the session ended, for this reason.
    Refused(Refusal),
}

/// Why the relay refused a request or ended a session. Every limit the relay enforces has
/// its own reason so the client can tell its user what happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Refusal {
    /// No session with this ID is waiting.
    #[error("no session with this ID is waiting")]
    UnknownSession,
    /// The session ID was valid but its joining window has passed.
    #[error("the session ID has expired")]
    Expired,
    /// Another viewer is already paired with this session.
    #[error("another viewer is already connected to this session")]
    AlreadyPaired,
    /// The agent burned this session ID.
    #[error("the session ID was withdrawn by the customer's side")]
    Burned,
    /// Too many requests; try again after the given number of seconds.
    #[error("too many attempts; try again in {retry_after_secs} s")]
    RateLimited {
        /// Seconds to wait before the next attempt.
        retry_after_secs: u32,
    },
    /// The client speaks a protocol version the relay does not.
    #[error("protocol version not supported by this relay (it speaks version {supported})")]
    VersionUnsupported {
        /// The version the relay speaks.
        supported: u8,
    },
    /// The relay holds as many waiting sessions or connections as it allows.
    #[error("the relay is at capacity")]
    Capacity,
    /// The session used up its bandwidth or duration allowance.
    #[error("the session exceeded a relay limit")]
    LimitExceeded,
    /// The session was idle for too long.
    #[error("the session was idle for too long")]
    IdleTimeout,
    /// The relay is shutting down.
    #[error("the relay is shutting down")]
    ShuttingDown,
    /// The client sent something that is not a valid rendezvous message here.
    #[error("malformed or unexpected request")]
    BadRequest,
    /// The other side of the session left.
    #[error("the other side left the session")]
    PeerLeft,
    /// The customer's side turned this viewer away (the end-to-end handshake failed).
    #[error("the customer's side rejected the connection (wrong code?)")]
    Released,
}

/// Offset of [`Refusal`] close codes: a connection the relay closes for a reason carries
/// QUIC application error code `CLOSE_CODE_BASE + index of the reason`.
pub const CLOSE_CODE_BASE: u32 = 0x100;

impl Refusal {
    const ALL: [Refusal; 13] = [
        Refusal::UnknownSession,
        Refusal::Expired,
        Refusal::AlreadyPaired,
        Refusal::Burned,
        Refusal::RateLimited { retry_after_secs: 0 },
        Refusal::VersionUnsupported {
            supported: frame::VERSION,
        },
        Refusal::Capacity,
        Refusal::LimitExceeded,
        Refusal::IdleTimeout,
        Refusal::ShuttingDown,
        Refusal::BadRequest,
        Refusal::PeerLeft,
        Refusal::Released,
    ];

    /// The QUIC application close code that carries this reason.
    pub fn close_code(&self) -> u32 {
        let index = Self::ALL
            .iter()
            .position(|r| std::mem::discriminant(r) == std::mem::discriminant(self))
            .unwrap_or(0);
        CLOSE_CODE_BASE + index as u32
    }

    /// The reason a close code carries (fields such as retry times are not carried).
    pub fn from_close_code(code: u64) -> Option<Refusal> {
        let index = code.checked_sub(u64::from(CLOSE_CODE_BASE))?;
        Self::ALL.get(usize::try_from(index).ok()?).copied()
    }
}

/// Encodes a client message as a frame.
pub fn encode_client(message: &ClientMessage) -> Vec<u8> {
    encode_checked(message)
}

/// Encodes a relay message as a frame.
pub fn encode_relay(message: &RelayMessage) -> Vec<u8> {
    encode_checked(message)
}

fn encode_checked<T: Serialize>(message: &T) -> Vec<u8> {
    // Every rendezvous message is a few bytes; only a change to this module could exceed the
    // bound, and the tests below would catch it.
    frame::encode(message, MAX_MESSAGE).unwrap_or_default()
}

/// Decodes one complete client frame.
pub fn decode_client(frame_bytes: &[u8]) -> Result<ClientMessage, FrameError> {
    frame::decode(frame_bytes, MAX_MESSAGE)
}

/// Decodes one complete relay frame.
pub fn decode_relay(frame_bytes: &[u8]) -> Result<RelayMessage, FrameError> {
    frame::decode(frame_bytes, MAX_MESSAGE)
}

/// The refusal a relay should answer a frame error with.
///
/// A frame of another version gets [`Refusal::VersionUnsupported`]; that refusal is always
/// encoded at version 1 so every client can read it. Anything else is a bad request.
pub fn refusal_for(error: &FrameError) -> Refusal {
    match error {
        FrameError::UnsupportedVersion(_) => Refusal::VersionUnsupported {
            supported: frame::VERSION,
        },
        _ => Refusal::BadRequest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn all_client() -> Vec<ClientMessage> {
        vec![
            ClientMessage::Register,
            ClientMessage::Join {
                session: "987654321".parse().unwrap(),
            },
            ClientMessage::Release,
            ClientMessage::Burn,
        ]
    }

    fn all_relay() -> Vec<RelayMessage> {
        let mut v = vec![
            RelayMessage::Registered {
                session: "000000001".parse().unwrap(),
                expires_in_secs: u32::MAX,
            },
            RelayMessage::Paired,
            RelayMessage::PeerLeft,
        ];
        v.extend(Refusal::ALL.into_iter().map(RelayMessage::Refused));
        v.push(RelayMessage::Refused(Refusal::RateLimited {
            retry_after_secs: 30,
        }));
        v
    }

    #[test]
    fn every_message_round_trips() {
        for m in all_client() {
            let bytes = encode_client(&m);
            assert!(!bytes.is_empty() && bytes.len() <= MAX_MESSAGE);
            assert_eq!(decode_client(&bytes).unwrap(), m);
        }
        for m in all_relay() {
            let bytes = encode_relay(&m);
            assert!(!bytes.is_empty() && bytes.len() <= MAX_MESSAGE);
            assert_eq!(decode_relay(&bytes).unwrap(), m);
        }
    }

    #[test]
    fn join_layout_is_stable() {
        // version 1, variant 1 (Join), session ID 123456789 as a postcard varint.
        let bytes = encode_client(&ClientMessage::Join {
            session: "123456789".parse().unwrap(),
        });
        assert_eq!(bytes, [0, 6, 1, 1, 0x95, 0x9a, 0xef, 0x3a]);
    }

    #[test]
    fn out_of_range_session_id_is_rejected() {
        // A varint of 10^9 where a session ID belongs.
        let mut body = vec![1u8, 1];
        let mut v = 1_000_000_000u32;
        while v >= 0x80 {
            body.push((v as u8) | 0x80);
            v >>= 7;
        }
        body.push(v as u8);
        let mut frame = (body.len() as u16).to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        assert_eq!(decode_client(&frame), Err(FrameError::Malformed));
    }

    #[test]
    fn close_codes_round_trip() {
        for m in all_relay() {
            if let RelayMessage::Refused(r) = m {
                let back = Refusal::from_close_code(u64::from(r.close_code())).unwrap();
                assert_eq!(std::mem::discriminant(&back), std::mem::discriminant(&r));
            }
        }
        assert_eq!(Refusal::from_close_code(0), None);
        assert_eq!(Refusal::from_close_code(u64::MAX), None);
    }

    #[test]
    fn foreign_version_maps_to_version_refusal() {
        let err = decode_client(&[0, 2, 2, 0]).unwrap_err();
        assert_eq!(refusal_for(&err), Refusal::VersionUnsupported { supported: 1 });
        assert_eq!(refusal_for(&FrameError::Malformed), Refusal::BadRequest);
    }

    proptest! {
        #[test]
        fn random_bytes_are_errors_not_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_client(&bytes);
            let _ = decode_relay(&bytes);
        }

        #[test]
        fn truncations_are_errors(cut in 0usize..8) {
            for m in all_client() {
                let bytes = encode_client(&m);
                if cut < bytes.len() {
                    prop_assert!(decode_client(&bytes[..cut]).is_err());
                }
            }
        }
    }
}
