//! Application messages inside an established session.
//!
//! Every message is one [`frame`](ponte_wire::frame) sealed as one record, so message boundaries are
//! record boundaries. Stream 0 (the handshake stream, continued under the record layer) is the
//! control channel; every request of the viewer opens a stream of its own whose first message
//! is a [`Request`] and whose first answer is a [`Response`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use ponte_wire::text::PeerText;

/// Largest application message (frame body). Leaves room in a 64 KiB record.
pub const MAX_MESSAGE: usize = 60 * 1024;

/// Largest data chunk in one message.
pub const MAX_CHUNK: usize = 56 * 1024;

/// Longest chat message, in bytes.
pub const MAX_CHAT: usize = 4096;

/// Longest path or command, in bytes.
pub const MAX_PATH: usize = 4096;

/// Something the customer can allow the assistant to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Capability {
    /// Run commands and an interactive shell as the customer's user.
    Terminal,
    /// Put files on the customer's machine.
    Upload,
    /// Get files from the customer's machine without asking per file.
    Download,
    /// Read system information.
    Info,
    /// Chat (always possible; listed so it can be named).
    Chat,
    /// See the screen.
    Screen,
    /// Move the mouse and type.
    Control,
    /// Read the customer's clipboard and put text on it, each time on the assistant's request
    /// (never synchronised by itself).
    Clipboard,
}

impl Capability {
    /// Every capability, in display order.
    pub const ALL: [Capability; 8] = [
        Capability::Terminal,
        Capability::Upload,
        Capability::Download,
        Capability::Info,
        Capability::Chat,
        Capability::Screen,
        Capability::Control,
        Capability::Clipboard,
    ];

    /// The name used on command lines and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Capability::Terminal => "terminal",
            Capability::Upload => "upload",
            Capability::Download => "download",
            Capability::Info => "info",
            Capability::Chat => "chat",
            Capability::Screen => "screen",
            Capability::Control => "control",
            Capability::Clipboard => "clipboard",
        }
    }

    /// What it means, for the consent prompt.
    pub fn describe(self) -> &'static str {
        match self {
            Capability::Terminal => "run commands and a terminal as you",
            Capability::Upload => "put files on this computer",
            Capability::Download => "copy files from this computer (otherwise you are asked per file)",
            Capability::Info => "read system information (OS, CPU, memory, disks, network)",
            Capability::Chat => "chat with you",
            Capability::Screen => "see your screen",
            Capability::Control => "use your mouse and keyboard",
            Capability::Clipboard => "read your clipboard and put text on it, when they ask",
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A capability name that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown permission {0:?} (known: terminal, upload, download, info, chat, screen, control, clipboard, all)"
)]
pub struct UnknownCapability(pub String);

impl FromStr for Capability {
    type Err = UnknownCapability;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Capability::ALL
            .into_iter()
            .find(|c| c.name() == s.trim())
            .ok_or_else(|| UnknownCapability(s.trim().to_owned()))
    }
}

/// A set of granted capabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Grants(u8);

impl Grants {
    /// Nothing granted.
    pub const NONE: Grants = Grants(0);

    /// Everything granted.
    pub fn all() -> Grants {
        Capability::ALL.into_iter().collect()
    }

    fn bit(c: Capability) -> u8 {
        1 << (c as u8)
    }

    /// Whether `c` is granted.
    pub fn allows(self, c: Capability) -> bool {
        self.0 & Self::bit(c) != 0
    }

    /// Grants `c` (control implies screen).
    pub fn grant(&mut self, c: Capability) {
        self.0 |= Self::bit(c);
        if c == Capability::Control {
            self.0 |= Self::bit(Capability::Screen);
        }
    }

    /// Revokes `c` (screen takes control with it).
    pub fn revoke(&mut self, c: Capability) {
        self.0 &= !Self::bit(c);
        if c == Capability::Screen {
            self.0 &= !Self::bit(Capability::Control);
        }
    }

    /// The granted capabilities in display order.
    pub fn list(self) -> Vec<Capability> {
        Capability::ALL.into_iter().filter(|c| self.allows(*c)).collect()
    }

    /// Parses `terminal,upload` or `all` (empty: nothing).
    pub fn parse_list(s: &str) -> Result<Grants, UnknownCapability> {
        let mut g = Grants::NONE;
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part == "all" {
                g = Grants::all();
            } else {
                g.grant(part.parse()?);
            }
        }
        Ok(g)
    }
}

impl FromIterator<Capability> for Grants {
    fn from_iter<I: IntoIterator<Item = Capability>>(iter: I) -> Self {
        let mut g = Grants::NONE;
        for c in iter {
            g.grant(c);
        }
        g
    }
}

impl fmt::Display for Grants {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.list().into_iter().map(Capability::name).collect();
        if names.is_empty() {
            f.write_str("nothing")
        } else {
            f.write_str(&names.join(", "))
        }
    }
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EndReason {
    /// The customer ended it.
    CustomerEnded,
    /// The assistant ended it.
    AssistantEnded,
    /// The customer declined to let the assistant in.
    Declined,
    /// The side that says so detected an attack on the path between the two: a record that
    /// failed authentication, came out of order or twice, or a stream cut before its
    /// end-of-stream record ([`crate::record::RecordError::is_attack`]).
    Tampered,
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EndReason::CustomerEnded => "the customer ended the session",
            EndReason::AssistantEnded => "the assistant ended the session",
            EndReason::Declined => "the customer declined the session",
            EndReason::Tampered => {
                "the connection between the two computers was tampered with (by the relay or the \
                 network); the session was ended and nothing more was sent"
            }
        })
    }
}

/// Messages on the control stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Control {
    /// Agent → viewer: what the customer allows now (sent after consent and on every change).
    Grants(Grants),
    /// Either way: a chat message.
    Chat {
        /// The text (at most [`MAX_CHAT`] bytes).
        text: PeerText,
    },
    /// Either way: the session ends now.
    End(EndReason),
    /// Viewer → agent: the assistant asks to reconnect later without a code (quick access).
    /// The agent asks the customer — only for a verified assistant, and only once the
    /// assistant's access has ended (so that nothing it runs or types can answer): it replies
    /// [`Control::QuickAccessLater`] at once and [`Control::QuickAccess`] after the session's
    /// end, or [`Control::QuickAccess`]`(None)` at once when it will not ask.
    QuickAccessRequest {
        /// Any verified assistant of the organisation (`true`), or only this one.
        organisation: bool,
        /// How long, in days (the agent allows 1 to 365).
        days: u32,
    },
    /// Agent → viewer: the customer's answer to [`Control::QuickAccessRequest`]: the device
    /// to reconnect to and until when, or `None` (declined, unverified, or nobody to ask).
    QuickAccess(Option<QuickAccessGrant>),
    /// Agent → viewer: the customer will be asked about the [`Control::QuickAccessRequest`]
    /// when the session ends; the answer, [`Control::QuickAccess`], follows the end (after
    /// [`Control::End`], on the same stream) — a viewer that wants it keeps the connection
    /// open until then.
    QuickAccessLater,
    /// Agent → viewer, after consent: how long the session waits to be resumed when its
    /// connection is lost, in seconds (0: it ends at once) — so the viewer looks for it as long
    /// and no longer (docs/PROTOCOL.md § 10; a viewer caps it at an hour).
    ResumeWindow {
        /// Seconds.
        secs: u32,
    },
}

/// What a viewer keeps in its address book when the customer allows quick access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuickAccessGrant {
    /// The device's public key (`ponte-viewer connect --device` finds and authenticates it).
    pub device: ponte_wire::device::DevicePublic,
    /// End of the opt-in, seconds since the Unix epoch.
    pub not_after: u64,
}

/// Whether a file is copied as a single file or a directory tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
}

/// The first message on a request stream (viewer → agent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Run a command with the customer's shell; the agent streams [`Transfer::Output`] and
    /// finishes with [`Transfer::Exit`].
    Exec {
        /// The command line.
        command: PeerText,
    },
    /// Send the file or directory at `path` (on the customer's machine).
    Get {
        /// Path on the customer's machine.
        path: PeerText,
    },
    /// Receive a file or directory into `path` on the customer's machine; the viewer streams
    /// [`Transfer`] entries after an accepting [`Response`]. The customer may be asked with
    /// these numbers, so they bind: a transfer that exceeds them fails.
    Put {
        /// Destination path on the customer's machine.
        path: PeerText,
        /// File or directory.
        kind: EntryKind,
        /// How many files will follow.
        files: u64,
        /// Total bytes that will follow.
        total_bytes: u64,
        /// Replace an existing destination.
        overwrite: bool,
    },
    /// Send system information.
    Info,
    /// Start the customer's shell on a pseudo-terminal of this size; output comes as
    /// [`Transfer::Output`], keystrokes go as [`Transfer::Input`], and [`Transfer::Exit`] ends it.
    Shell {
        /// Columns.
        cols: u16,
        /// Rows.
        rows: u16,
    },
    /// Share the screen: the agent streams [`ScreenUpdate`](crate::screen::ScreenUpdate)s, the
    /// viewer answers with [`ScreenFeedback`](crate::screen::ScreenFeedback).
    Screen {
        /// Most frames per second the viewer wants (the agent caps it too).
        max_fps: u8,
    },
    /// Inject these input events; the agent answers [`Transfer::Done`] once they are injected.
    Input(Vec<crate::screen::InputEvent>),
    /// After a resume: go on with the terminal numbered `terminal` (its
    /// [`Transfer::Terminal`]) on this stream, its output of the gap first.
    Reattach {
        /// The terminal's number in the session.
        terminal: u64,
    },
    /// List the folder at `path` (on the customer's machine). Names are contents, so this is
    /// reading: judged like [`Request::Get`] under `download`. The agent answers with
    /// [`Transfer::Listing`] messages in name order (at most [`MAX_LISTING`] entries), then
    /// [`Transfer::Done`].
    List {
        /// Path on the customer's machine.
        path: PeerText,
    },
    /// Send the text on the customer's clipboard (under `clipboard`): answered with
    /// [`Transfer::Clipboard`].
    ClipboardGet,
    /// Put `text` on the customer's clipboard (under `clipboard`; at most [`MAX_CLIPBOARD`]
    /// bytes): answered with [`Transfer::Done`].
    ClipboardSet {
        /// The text.
        text: PeerText,
    },
}

/// Most bytes of text one clipboard request carries either way.
pub const MAX_CLIPBOARD: usize = 48 * 1024;

/// Most entries one [`Request::List`] answers with; a folder with more is listed up to here.
pub const MAX_LISTING: usize = 10_000;

/// One entry of a folder listing ([`Transfer::Listing`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListEntry {
    /// Its name in the folder (not a path).
    pub name: PeerText,
    /// What it is (a symbolic link is not followed).
    pub kind: ListedKind,
    /// Size in bytes (of a file; 0 otherwise).
    pub size: u64,
    /// Last modified, in seconds since the Unix epoch, when known.
    pub modified: Option<u64>,
}

/// What a listed entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ListedKind {
    /// A regular file.
    File,
    /// A folder.
    Dir,
    /// A symbolic link.
    Link,
    /// Anything else (a device, a socket, a pipe).
    Other,
}

/// The agent's answer to a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// The request goes ahead.
    Accepted,
    /// The request was refused, with a reason for the assistant.
    Refused(PeerText),
}

/// Messages after the response on a request stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Transfer {
    /// A directory to create (path relative to the transfer root, `/`-separated).
    Dir {
        /// Relative path.
        path: PeerText,
    },
    /// A file begins; [`Transfer::Data`] follows, then [`Transfer::FileEnd`].
    File {
        /// Relative path (empty for a single-file transfer).
        path: PeerText,
        /// Size in bytes.
        size: u64,
        /// Unix permission bits.
        mode: u32,
    },
    /// Bytes of the current file or command output.
    Data(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The current file is complete; its hash.
    FileEnd {
        /// BLAKE3 of the file's bytes.
        blake3: [u8; 32],
    },
    /// Everything was sent.
    Done,
    /// The sender gave up (or the agent stopped the request); the receiver must discard
    /// partial results.
    Failed(PeerText),
    /// Command output.
    Output {
        /// True for standard error.
        stderr: bool,
        /// The bytes.
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// The command exited with this status (`None`: killed by a signal).
    Exit(Option<i32>),
    /// System information as key/value lines.
    Info(Vec<(PeerText, PeerText)>),
    /// Keystrokes for an interactive shell.
    Input(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The viewer's terminal changed size.
    Resize {
        /// Columns.
        cols: u16,
        /// Rows.
        rows: u16,
    },
    /// First message of every file transfer: what will follow. The receiver fails the
    /// transfer if more files or bytes arrive.
    Total {
        /// Number of files.
        files: u64,
        /// Bytes in all files.
        bytes: u64,
    },
    /// First message of a terminal after the response: its number in the session, which a
    /// [`Request::Reattach`] names after a resume.
    Terminal(u64),
    /// Entries of a folder listing ([`Request::List`]), as many as fit a message.
    Listing(Vec<ListEntry>),
    /// The text on the customer's clipboard ([`Request::ClipboardGet`]).
    Clipboard(PeerText),
}

#[cfg(test)]
mod tests {
    use super::*;
    use ponte_wire::frame;

    #[test]
    fn grants_parse_and_imply() {
        let g = Grants::parse_list("terminal, upload").unwrap();
        assert!(g.allows(Capability::Terminal) && g.allows(Capability::Upload));
        assert!(!g.allows(Capability::Download));
        assert_eq!(g.to_string(), "terminal, upload");
        assert_eq!(Grants::parse_list("all").unwrap(), Grants::all());
        assert_eq!(Grants::parse_list("").unwrap(), Grants::NONE);
        assert!(Grants::parse_list("terminal,sudo").is_err());
        let mut c = Grants::parse_list("control").unwrap();
        assert!(c.allows(Capability::Screen), "control requires screen");
        c.revoke(Capability::Screen);
        assert!(!c.allows(Capability::Control), "no control without screen");
    }

    #[test]
    fn largest_data_message_fits_a_frame() {
        let m = Transfer::Data(vec![0xff; MAX_CHUNK]);
        let bytes = frame::encode(&m, MAX_MESSAGE).unwrap();
        assert!(bytes.len() <= MAX_MESSAGE + frame::LENGTH_PREFIX);
        assert_eq!(frame::decode::<Transfer>(&bytes, MAX_MESSAGE).unwrap(), m);
    }
}
