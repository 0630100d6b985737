//! Rendezvous: what agents and viewers say to the relay, in cleartext inside the relay's TLS.
//!
//! Each peer opens one bidirectional stream to the relay and keeps it for the whole
//! session as its control line to the relay. The agent registers and receives a session ID;
//! the viewer joins with that ID; the relay answers both with [`RelayMessage::Paired`] and
//! from then on mirrors every *other* stream between them. The code never appears here.
//!
//! A viewer may also present an operator-issued assistant credential — a signature bound to
//! its TLS connection with the relay, see [`AssistantProof`] — and a [`Ticket`] reference that
//! the relay writes into its session ledger.
//!
//! Messages are [`frame`](crate::frame)s of at most [`MAX_MESSAGE`] bytes.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::frame::{self, FrameError};
use crate::{DeviceTag, SessionId};

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
    /// Viewer: [`ClientMessage::Join`] with what an operator may ask of assistants: a proof of
    /// an assistant credential and a ticket reference for the ledger.
    JoinAs {
        /// The ID the customer read out.
        session: SessionId,
        /// The operator's reference for this piece of work (visible to the operator).
        ticket: Option<Ticket>,
        /// Proof that the viewer holds an assistant credential of this relay.
        proof: Option<AssistantProof>,
    },
    /// Agent: register a session joined only by this device tag (quick access: the customer
    /// let some assistants reconnect without a code), never by its ID. The relay answers
    /// [`RelayMessage::DeviceChallenge`], and registers once [`ClientMessage::DeviceProof`]
    /// shows the agent holds the device's private key. The latest live registration of a tag
    /// holds it.
    RegisterDevice {
        /// Derived from the device's public key.
        tag: DeviceTag,
    },
    /// Viewer: pair me with the agent waiting under this device tag (quick access), with what
    /// [`ClientMessage::JoinAs`] carries. The relay answers [`RelayMessage::PairedDevice`].
    JoinDevice {
        /// The device the assistant's address book names.
        tag: DeviceTag,
        /// The operator's reference for this piece of work (visible to the operator).
        ticket: Option<Ticket>,
        /// Proof that the viewer holds an assistant credential of this relay.
        proof: Option<AssistantProof>,
    },
    /// Agent, answering [`RelayMessage::DeviceChallenge`]: the device's public key, whose
    /// tag it registers, and the proof that it holds the private half (docs/PROTOCOL.md § 9.5).
    DeviceProof {
        /// The device's X25519 public key.
        device: [u8; 32],
        /// HMAC over the connection's exporter, the key and the challenge, keyed by a
        /// Diffie-Hellman of the device key and the challenge.
        proof: [u8; 32],
    },
    /// Agent: the connection of a session was lost; wait under this one-time resume tag for
    /// its viewer (docs/PROTOCOL.md § Resume). Answered like [`ClientMessage::Register`] with
    /// a fresh session ID that nobody can join by ID; the viewer finds it by the tag.
    RegisterResume {
        /// Derived from the session's resume secret, which the relay never learns.
        tag: DeviceTag,
    },
    /// Viewer: pair me with the agent waiting under this resume tag, with what
    /// [`ClientMessage::JoinAs`] carries. Answered with [`RelayMessage::PairedDevice`].
    JoinResume {
        /// The session's current resume tag.
        tag: DeviceTag,
        /// The operator's reference for this piece of work (visible to the operator).
        ticket: Option<Ticket>,
        /// Proof that the viewer holds an assistant credential of this relay.
        proof: Option<AssistantProof>,
    },
    /// Agent: the customer ended a session that waits to be resumed under `tag`. The relay
    /// answers a [`ClientMessage::JoinResume`] under the tag with `proof`
    /// ([`RelayMessage::ResumeEnded`]) for as long as a session can be joined, and
    /// acknowledges with that same message.
    EndResume {
        /// The session's current resume tag.
        tag: DeviceTag,
        /// Derived from the session's resume secret: shows the viewer the end is the
        /// customer's (docs/PROTOCOL.md § 10).
        proof: [u8; 32],
    },
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
    /// Agent: a viewer asked to join this session and the relay turned it away for this
    /// reason. Sent for every refused join against a live session ID, so the customer sees
    /// every attempt; the session itself goes on.
    JoinRefused(Refusal),
    /// Viewer: the session lives on another node of this relay cluster; connect to `node`,
    /// verify it by the same cluster key, and join there again. The relay closes this
    /// connection after sending it. A client follows at most one redirect.
    Redirect {
        /// The owning node's public address.
        node: NodeAddress,
    },
    /// Both, instead of [`RelayMessage::Paired`]: a viewer joined by device tag; forwarding
    /// starts and the agent runs the key-authenticated handshake, bound to `session`.
    PairedDevice {
        /// The agent's current session ID (the viewer did not know it).
        session: SessionId,
    },
    /// Agent, after [`ClientMessage::RegisterDevice`]: prove you hold the device key by a
    /// Diffie-Hellman with this fresh X25519 public key ([`ClientMessage::DeviceProof`]).
    DeviceChallenge {
        /// The relay's ephemeral X25519 public key, for this registration only.
        challenge: [u8; 32],
    },
    /// Viewer, answering [`ClientMessage::JoinResume`]: the customer ended the session that
    /// waited under this tag; `proof` is the agent's, for the viewer to check. Agent: the
    /// relay keeps its [`ClientMessage::EndResume`].
    ResumeEnded {
        /// What the agent left.
        proof: [u8; 32],
    },
}

/// Why the relay refused a request or ended a session. Every limit the relay enforces has
/// its own reason so the client can tell its user what happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Refusal {
    /// No session with this ID can be joined. A relay answers this for unknown, expired,
    /// burned and already paired IDs alike, so that scanning IDs tells little.
    #[error("no session with this ID can be joined (wrong, expired, ended or already in use)")]
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
    /// The relay admits only assistants with a credential from its operator, and none was
    /// presented.
    #[error(
        "this relay admits only assistants with a credential from its operator (ponte-viewer --credential FILE)"
    )]
    CredentialRequired,
    /// The presented assistant credential is unknown to the relay, revoked, or its proof is
    /// invalid.
    #[error("the relay did not accept this assistant credential (unknown or revoked)")]
    CredentialRefused,
    /// A node of a relay cluster cannot reach the cluster's shared state, so it cannot issue
    /// a cluster-wide unique session ID or find a session on another node; sessions it
    /// already holds go on. Try again shortly (or another node).
    #[error("the relay cluster's shared state is unreachable; try again in a moment")]
    ClusterUnavailable,
    /// The other side's connection was lost (it fell silent or was reset), not closed: it may
    /// be coming back to resume the session.
    #[error("the other side's connection was lost")]
    PeerLost,
    /// The relay's operator ended the session. The connection's close reason carries the
    /// operator's words (at most [`MAX_OPERATOR_REASON`] bytes; peer text to the clients).
    #[error("the relay's operator ended the session")]
    EndedByOperator,
}

/// The longest reason an operator may give for ending a session, in bytes.
pub const MAX_OPERATOR_REASON: usize = 200;

/// An operator's reason for ending a session as both sides will see it: one line of visible
/// text (control and invisible characters become spaces, runs of space one), at most
/// [`MAX_OPERATOR_REASON`] bytes.
pub fn operator_reason(reason: &str) -> String {
    let mut words = reason
        .chars()
        .map(|c| {
            if c.is_control() || crate::text::is_invisible(c) {
                ' '
            } else {
                c
            }
        })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let mut end = words.len().min(MAX_OPERATOR_REASON);
    while !words.is_char_boundary(end) {
        end -= 1;
    }
    words.truncate(end);
    words
}

/// The longest ticket reference, in bytes.
pub const MAX_TICKET: usize = 64;

crate::validated_string! {
    /// An operator's reference for a piece of work (a support ticket number, say), sent by the
    /// viewer when it joins and written into the relay's ledger so sessions can be billed per
    /// ticket. The operator sees it; it is not end-to-end encrypted.
    ///
    /// 1 to [`MAX_TICKET`] characters from `A–Z a–z 0–9 space . _ - : / #`, starting with a
    /// letter, a digit or `#` and not ending in a space: enough for ticket numbers and safe to put
    /// in a log line, a CSV cell or a spreadsheet without escaping surprises.
    pub struct Ticket;
    error: BadTicket,
    valid: |s| {
        let allowed = |c: char| c.is_ascii_alphanumeric() || " ._-:/#".contains(c);
        let first_ok = s
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '#');
        s.len() <= MAX_TICKET && first_ok && !s.ends_with(' ') && s.chars().all(allowed)
    },
}

/// A ticket reference that breaks the rules of [`Ticket`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a ticket reference is 1 to 64 characters (letters, digits, space and . _ - : / #), starting with a letter, a digit or #"
)]
pub struct BadTicket;

/// The longest node address, in bytes.
pub const MAX_NODE_ADDRESS: usize = 128;

crate::validated_string! {
    /// Where a relay node can be reached: `host:port`, the host a DNS name (letters, digits, `.`
    /// and `-`), an IPv4 address or a bracketed IPv6 address, the port 1 to 65535. At most
    /// [`MAX_NODE_ADDRESS`] bytes. A relay sends it in [`RelayMessage::Redirect`]; the strict form
    /// keeps a hostile relay from handing a client anything but an address to connect to.
    pub struct NodeAddress;
    error: BadNodeAddress,
    valid: |s| {
        let Some((host, port)) = s.rsplit_once(':') else {
            return false;
        };
        let port_ok = !port.is_empty()
            && port.len() <= 5
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u16>().is_ok_and(|p| p != 0);
        let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
            None => {
                !host.is_empty()
                    && !host.starts_with(['-', '.'])
                    && host
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
            }
        };
        s.len() <= MAX_NODE_ADDRESS && port_ok && host_ok
    },
}

/// A node address that breaks the rules of [`NodeAddress`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a node address is host:port (a DNS name, an IPv4 address or [IPv6]), at most 128 characters")]
pub struct BadNodeAddress;

impl NodeAddress {
    /// The host part (without brackets for IPv6).
    pub fn host(&self) -> &str {
        let host = self.0.rsplit_once(':').map_or(self.0.as_str(), |(h, _)| h);
        host.trim_start_matches('[').trim_end_matches(']')
    }
}

/// Proof that a viewer holds an assistant credential: the credential's Ed25519 public key and
/// its signature over [`proof_message`], which binds the TLS connection to the relay (through
/// a keying-material exporter), the session ID and the ticket. Nothing in it is secret or
/// reusable on another connection; the relay keeps only public keys.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssistantProof {
    /// Ed25519 public key of the credential (32 bytes).
    pub key: [u8; 32],
    /// Ed25519 signature over [`proof_message`] (64 bytes, as two halves for serde).
    pub signature: [[u8; 32]; 2],
}

impl AssistantProof {
    /// A proof from a public key and a 64-byte signature.
    pub fn new(key: [u8; 32], signature: &[u8; 64]) -> AssistantProof {
        let mut halves = [[0u8; 32]; 2];
        halves[0].copy_from_slice(&signature[..32]);
        halves[1].copy_from_slice(&signature[32..]);
        AssistantProof {
            key,
            signature: halves,
        }
    }

    /// The signature as 64 contiguous bytes.
    pub fn signature_bytes(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        out[..32].copy_from_slice(&self.signature[0]);
        out[32..].copy_from_slice(&self.signature[1]);
        out
    }
}

impl fmt::Debug for AssistantProof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not secret, but long and useless in logs: the key's first bytes identify it.
        write!(
            f,
            "AssistantProof(key {:02x}{:02x}{:02x}{:02x}…)",
            self.key[0], self.key[1], self.key[2], self.key[3]
        )
    }
}

/// TLS exporter label whose output (32 bytes, empty context) a credential proof signs.
pub const PROOF_EXPORTER_LABEL: &[u8] = b"EXPORTER-ponte-assistant-proof";

/// Bytes of exporter output a proof signs.
pub const PROOF_EXPORTER_LEN: usize = 32;

/// What a viewer joins: a session by ID, or a device by tag (quick access).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinTarget {
    /// The session ID the customer read out.
    Session(SessionId),
    /// The device tag from the assistant's address book.
    Device(DeviceTag),
    /// The resume tag of a session whose connection was lost.
    Resume(DeviceTag),
}

impl JoinTarget {
    /// The tag joined by, unless the join is by session ID.
    pub fn tag(self) -> Option<DeviceTag> {
        match self {
            JoinTarget::Session(_) => None,
            JoinTarget::Device(tag) | JoinTarget::Resume(tag) => Some(tag),
        }
    }
}

impl From<SessionId> for JoinTarget {
    fn from(session: SessionId) -> JoinTarget {
        JoinTarget::Session(session)
    }
}

impl From<DeviceTag> for JoinTarget {
    fn from(tag: DeviceTag) -> JoinTarget {
        JoinTarget::Device(tag)
    }
}

/// What an assistant credential signs when its viewer joins: a fixed context string, the TLS
/// exporter value of the viewer's connection to the relay, what it joins and the ticket.
///
/// `"ponte/1 assistant proof" ‖ 0x00 ‖ exporter ‖ u32(session) ‖ lp(ticket)` (the empty
/// string when there is no ticket), for a device join
/// `"ponte/1 assistant device proof" ‖ 0x00 ‖ exporter ‖ tag (16 bytes) ‖ lp(ticket)`, and for
/// a resume the same with `"ponte/1 assistant resume proof"`.
pub fn proof_message(
    exporter: &[u8; PROOF_EXPORTER_LEN],
    target: impl Into<JoinTarget>,
    ticket: Option<&Ticket>,
) -> Vec<u8> {
    let ticket = ticket.map_or("", Ticket::as_str).as_bytes();
    let mut m = Vec::with_capacity(32 + PROOF_EXPORTER_LEN + 20 + ticket.len());
    match target.into() {
        JoinTarget::Session(session) => {
            m.extend_from_slice(b"ponte/1 assistant proof\0");
            m.extend_from_slice(exporter);
            m.extend_from_slice(&session.value().to_be_bytes());
        }
        JoinTarget::Device(tag) => {
            m.extend_from_slice(b"ponte/1 assistant device proof\0");
            m.extend_from_slice(exporter);
            m.extend_from_slice(&tag.0);
        }
        JoinTarget::Resume(tag) => {
            m.extend_from_slice(b"ponte/1 assistant resume proof\0");
            m.extend_from_slice(exporter);
            m.extend_from_slice(&tag.0);
        }
    }
    m.extend_from_slice(&(ticket.len() as u32).to_be_bytes());
    m.extend_from_slice(ticket);
    m
}

/// The QUIC reset code of a forwarded stream the relay cut because its sender's connection
/// was lost (not reset by the sender, whose own code is passed on): the other side may be
/// coming back, and the session may be resumed.
pub const LOST_CODE: u32 = 1;

/// Offset of [`Refusal`] close codes: a connection the relay closes for a reason carries
/// QUIC application error code `CLOSE_CODE_BASE + index of the reason`.
pub const CLOSE_CODE_BASE: u32 = 0x100;

impl Refusal {
    const ALL: [Refusal; 18] = [
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
        Refusal::CredentialRequired,
        Refusal::CredentialRefused,
        Refusal::ClusterUnavailable,
        Refusal::PeerLost,
        Refusal::EndedByOperator,
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

    #[test]
    fn an_operator_reason_is_one_bounded_line_of_visible_text() {
        assert_eq!(
            operator_reason("  fraud\n\x1b[31mred\u{202e}  stop "),
            "fraud [31mred stop"
        );
        let r = operator_reason(&"é".repeat(300));
        assert!(
            r.len() <= MAX_OPERATOR_REASON
                && r.len() > MAX_OPERATOR_REASON - 2
                && r.chars().all(|c| c == 'é')
        );
    }
    use proptest::prelude::*;

    fn all_client() -> Vec<ClientMessage> {
        vec![
            ClientMessage::Register,
            ClientMessage::Join {
                session: "987654321".parse().unwrap(),
            },
            ClientMessage::Release,
            ClientMessage::Burn,
            ClientMessage::JoinAs {
                session: "000000042".parse().unwrap(),
                ticket: None,
                proof: None,
            },
            // The largest message there is: the longest ticket and a proof.
            ClientMessage::JoinAs {
                session: "999999999".parse().unwrap(),
                ticket: Some("#".repeat(MAX_TICKET).parse().unwrap()),
                proof: Some(AssistantProof::new([0xff; 32], &[0xee; 64])),
            },
            ClientMessage::RegisterDevice {
                tag: DeviceTag([0xab; 16]),
            },
            ClientMessage::JoinDevice {
                tag: DeviceTag([0xcd; 16]),
                ticket: Some("#".repeat(MAX_TICKET).parse().unwrap()),
                proof: Some(AssistantProof::new([0xff; 32], &[0xee; 64])),
            },
            ClientMessage::DeviceProof {
                device: [0xff; 32],
                proof: [0xee; 32],
            },
            ClientMessage::RegisterResume {
                tag: DeviceTag([0x12; 16]),
            },
            ClientMessage::JoinResume {
                tag: DeviceTag([0x34; 16]),
                ticket: Some("#".repeat(MAX_TICKET).parse().unwrap()),
                proof: Some(AssistantProof::new([0xff; 32], &[0xee; 64])),
            },
            ClientMessage::EndResume {
                tag: DeviceTag([0x56; 16]),
                proof: [0xff; 32],
            },
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
            RelayMessage::PairedDevice {
                session: "999999999".parse().unwrap(),
            },
            RelayMessage::DeviceChallenge {
                challenge: [0xff; 32],
            },
            RelayMessage::ResumeEnded { proof: [0xff; 32] },
        ];
        v.extend(Refusal::ALL.into_iter().map(RelayMessage::Refused));
        v.push(RelayMessage::Refused(Refusal::RateLimited {
            retry_after_secs: 30,
        }));
        v.extend(Refusal::ALL.into_iter().map(RelayMessage::JoinRefused));
        v.push(RelayMessage::Redirect {
            node: "relay-b.example.com:4433".parse().unwrap(),
        });
        // The largest relay message there is.
        v.push(RelayMessage::Redirect {
            node: format!("{}:65535", "a".repeat(MAX_NODE_ADDRESS - 6))
                .parse()
                .unwrap(),
        });
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
    fn join_as_layout_is_stable() {
        // version 1, variant 4 (JoinAs), session ID 1, Some("T-1"), None.
        let bytes = encode_client(&ClientMessage::JoinAs {
            session: "000000001".parse().unwrap(),
            ticket: Some("T-1".parse().unwrap()),
            proof: None,
        });
        assert_eq!(bytes, [0, 9, 1, 4, 1, 1, 3, b'T', b'-', b'1', 0]);
        // A proof is the 32-byte key and the 64-byte signature, raw.
        let proof = AssistantProof::new([1; 32], &[2; 64]);
        let bytes = encode_client(&ClientMessage::JoinAs {
            session: "000000001".parse().unwrap(),
            ticket: None,
            proof: Some(proof.clone()),
        });
        assert_eq!(&bytes[..7], [0, 101, 1, 4, 1, 0, 1]);
        assert_eq!(&bytes[7..39], [1; 32]);
        assert_eq!(&bytes[39..], [2; 64]);
        assert_eq!(proof.signature_bytes(), [2; 64]);
    }

    #[test]
    fn tickets_are_bounded_and_plain() {
        for good in [
            "1",
            "#4711",
            "ACME-2026/11 42",
            "T:1.2_3",
            &"a".repeat(MAX_TICKET),
        ] {
            assert_eq!(good.parse::<Ticket>().unwrap().as_str(), good);
        }
        for bad in [
            "",
            " lead",
            "trail ",
            "-1",
            "=SUM(A1)",
            "@x",
            "a,b",
            "quo\"te",
            "new\nline",
            "tab\t",
            "\u{1b}[31m",
            "é",
            &"a".repeat(MAX_TICKET + 1),
        ] {
            assert_eq!(bad.parse::<Ticket>(), Err(BadTicket), "{bad:?}");
        }
        // The same rules hold on the wire: a bad ticket does not decode.
        let mut frame = encode_client(&ClientMessage::JoinAs {
            session: "000000001".parse().unwrap(),
            ticket: Some("T-1".parse().unwrap()),
            proof: None,
        });
        frame[7] = b'\n';
        assert_eq!(decode_client(&frame), Err(FrameError::Malformed));
    }

    #[test]
    fn node_addresses_are_host_and_port_only() {
        for good in [
            "relay-b.example.com:4433",
            "127.0.0.1:1",
            "[::1]:4433",
            "[2001:db8::7]:65535",
            "b:4433",
        ] {
            let a: NodeAddress = good.parse().unwrap();
            assert_eq!(a.as_str(), good);
        }
        assert_eq!("[::1]:4433".parse::<NodeAddress>().unwrap().host(), "::1");
        assert_eq!("b.example:1".parse::<NodeAddress>().unwrap().host(), "b.example");
        for bad in [
            "",
            "relay",
            "relay:",
            ":4433",
            "relay:0",
            "relay:65536",
            "relay:+44",
            "relay:004433",
            "-relay:1",
            ".relay:1",
            "re lay:1",
            "user@relay:1",
            "relay/x:1",
            "[::1:1",
            "[nonsense]:1",
            "relay:1\n",
            "\u{1b}[31m:1",
            "é:1",
            &format!("{}:1", "a".repeat(MAX_NODE_ADDRESS)),
        ] {
            assert_eq!(bad.parse::<NodeAddress>(), Err(BadNodeAddress), "{bad:?}");
        }
        // The same rules hold on the wire.
        let mut frame = encode_relay(&RelayMessage::Redirect {
            node: "b:4433".parse().unwrap(),
        });
        assert_eq!(frame, [0, 9, 1, 5, 6, b'b', b':', b'4', b'4', b'3', b'3']);
        frame[5] = b'/';
        assert_eq!(decode_relay(&frame), Err(FrameError::Malformed));
    }

    #[test]
    fn device_proofs_differ_from_session_proofs_and_bind_the_tag() {
        let exporter = [7u8; PROOF_EXPORTER_LEN];
        let a = proof_message(&exporter, DeviceTag([1; 16]), None);
        assert!(a.starts_with(b"ponte/1 assistant device proof\0"));
        assert_ne!(a, proof_message(&exporter, DeviceTag([2; 16]), None));
        assert_ne!(
            a,
            proof_message(&exporter, "000000001".parse::<SessionId>().unwrap(), None)
        );
    }

    #[test]
    fn proof_message_binds_exporter_session_and_ticket() {
        let exporter = [7u8; PROOF_EXPORTER_LEN];
        let id: SessionId = "123456789".parse().unwrap();
        let ticket: Ticket = "T-1".parse().unwrap();
        let m = proof_message(&exporter, id, Some(&ticket));
        let mut expected = b"ponte/1 assistant proof\0".to_vec();
        expected.extend_from_slice(&exporter);
        expected.extend_from_slice(&123_456_789u32.to_be_bytes());
        expected.extend_from_slice(&[0, 0, 0, 3]);
        expected.extend_from_slice(b"T-1");
        assert_eq!(m, expected);
        assert_ne!(m, proof_message(&exporter, id, None));
        assert_ne!(m, proof_message(&[8; 32], id, Some(&ticket)));
        assert_ne!(
            m,
            proof_message(
                &exporter,
                "123456780".parse::<SessionId>().unwrap(),
                Some(&ticket)
            )
        );
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
