//! The seam between the agent core and what the customer looks at: the core sends
//! [`Event`]s, the front-end sends back [`Input`]s (answers and the customer's commands).
//!
//! A front-end (the terminal UI, JSON lines for scripts, a window) is a task or thread that
//! owns a [`Frontend`]'s two channel ends. Everything in an event that came from the assistant
//! is a [`PeerText`], shown escaped; a front-end never needs to clean anything itself.

use std::path::PathBuf;
use std::time::Duration;

use ponte_e2e::app::{Capability, EntryKind, Grants};
use ponte_e2e::identity::PeerIdentity;
use ponte_session::files::{Progress, Totals};
use ponte_wire::text::PeerText;
use ponte_wire::{OneTimeCode, SessionId};
use tokio::sync::mpsc;

use crate::desktop::InjectedInput;
use crate::i18n::Tr;

/// What the core tells the customer.
#[derive(Debug, Clone)]
pub enum Event {
    /// A note about the connection (relay trust, a new code).
    Note(String),
    /// The session ID and code to read to the assistant.
    Ready {
        /// The relay's session ID.
        session: SessionId,
        /// The one-time code (shown, never logged).
        code: OneTimeCode,
        /// How long the pair can be used.
        valid_for: Duration,
    },
    /// Someone tried to connect.
    Attempt(Attempt),
    /// An assistant proved the code: who it is. Answer with [`Input::Consent`].
    ConsentNeeded {
        /// Who is asking.
        peer: PeerIdentity,
        /// The folder file permissions cover.
        scope: PathBuf,
        /// Permissions to pre-select: what the customer granted when they allowed this
        /// assistant quick access (nothing for a session with a code).
        remembered: Grants,
    },
    /// The session started with these permissions.
    Connected {
        /// Who connected.
        peer: PeerIdentity,
        /// What they may do.
        granted: Grants,
    },
    /// The permissions changed.
    Grants(Grants),
    /// A yes/no question. At most one is open; answer it with [`Input::Answer`] and its id.
    Question {
        /// Binds the answer to this question.
        id: QuestionId,
        /// What is asked.
        question: Question,
    },
    /// The open question is closed.
    QuestionClosed {
        /// Which one.
        id: QuestionId,
        /// How.
        outcome: Closed,
    },
    /// Something the assistant did, or the agent did on its behalf.
    Activity(Activity),
    /// A line of a terminal the assistant uses (output as the pseudo-terminal produced it).
    Terminal {
        /// Which terminal or command (numbered per session).
        terminal: u64,
        /// The line.
        line: PeerText,
    },
    /// Text that went to or from the customer's clipboard (`to_customer`: put on it): the
    /// session log keeps it; the live list shows only its length (an activity line).
    ClipboardText {
        /// Put on the customer's clipboard (`true`) or read from it.
        to_customer: bool,
        /// The text.
        text: PeerText,
    },
    /// A file transfer advanced.
    Transfer {
        /// Which transfer (numbered per session).
        transfer: u64,
        /// What is transferred, for a progress bar.
        what: PeerText,
        /// How far.
        progress: Progress,
    },
    /// A screen stream started (`true`) or ended (`false`); several may run at once.
    Sharing {
        /// Started or ended.
        active: bool,
        /// Whether the shared desktop takes the assistant's input when `control` is granted
        /// (not on a view-only Wayland desktop).
        input: bool,
    },
    /// A chat message.
    Chat {
        /// Who wrote it.
        from: Party,
        /// The text.
        text: PeerText,
    },
    /// The connection to the assistant was lost and the session waits this long to be
    /// resumed (`Some`), or it is back (`None`: resumed, with the same permissions).
    Reconnecting(Option<Duration>),
    /// The agent failed (e.g. the relay cannot be reached); it exits. The last event.
    Failed {
        /// What went wrong (it may quote the relay).
        error: PeerText,
    },
    /// The customer's quick-access opt-ins, as stored now (sent before the session ID and
    /// after every change); take one back with [`Input::Untrust`].
    QuickAccess(Vec<crate::quick_access::opt_ins::Entry>),
    /// The assistant's access has ended: the session is over, nothing the assistant started
    /// runs any more and no input of theirs can arrive. A last question (quick access) may
    /// follow; then [`Event::Ended`].
    AccessEnded {
        /// Why the session ended.
        reason: String,
    },
    /// The session (or the wait for one) ended; the agent exits. The last event.
    Ended {
        /// Why.
        reason: String,
        /// The session's log file, if one was written.
        log: Option<PathBuf>,
    },
}

/// Who wrote a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    /// The customer.
    Customer,
    /// The assistant.
    Assistant,
}

/// A connection attempt of someone who had the session ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// Someone joined and is proving the code.
    Connecting,
    /// They tried a wrong code.
    WrongCode {
        /// Tries left before the code is burned.
        attempts_left: u8,
    },
    /// They left before proving anything.
    Abandoned,
    /// The attempt failed for another reason (which may quote the relay or the peer).
    Failed(PeerText),
    /// The relay turned someone away who asked to join (the session goes on).
    TurnedAway(ponte_wire::rendezvous::Refusal),
    /// The code was tried wrongly too often; a new pair follows.
    Burned,
    /// The pair expired unused; a new one follows.
    Expired,
    /// A verified assistant tried to connect without a code, but no opt-in of the customer's
    /// lets it (none, expired, removed, or another organisation's): turned away.
    NotTrusted(PeerIdentity),
    /// Someone joined by the device tag (quick access) and runs the key handshake.
    QuickConnecting,
    /// A join by the device tag did not succeed: why (`None`: they left before proving
    /// anything). Told apart from the code's attempts: the tag is known to every assistant the
    /// customer opted in for, not to whoever has the ID they read out.
    QuickFailed(Option<PeerText>),
    /// While the session waited to be resumed, someone joined under its resume tag (only the
    /// relay could know it) and did not prove the session's secret: turned away, the session
    /// goes on waiting for its assistant.
    ResumeFailed(PeerText),
}

/// What an activity line is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Commands and terminals.
    Command,
    /// Files copied from this computer.
    Download,
    /// Files put on this computer.
    Upload,
    /// System information.
    Info,
    /// Screen sharing.
    Screen,
    /// Mouse and keyboard.
    Control,
    /// The clipboard.
    Clipboard,
    /// Permission changes.
    Permissions,
    /// A request the agent refused.
    Refused,
    /// A request that failed.
    Failed,
    /// A request stopped because the customer revoked its permission or the session ended.
    Stopped,
}

impl Kind {
    /// The name in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Command => "command",
            Kind::Download => "download",
            Kind::Upload => "upload",
            Kind::Info => "info",
            Kind::Screen => "screen",
            Kind::Control => "control",
            Kind::Clipboard => "clipboard",
            Kind::Permissions => "permissions",
            Kind::Refused => "refused",
            Kind::Failed => "failed",
            Kind::Stopped => "stopped",
        }
    }
}

/// One line of the activity list. Peer text inside `text` is already escaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activity {
    /// What it is about.
    pub kind: Kind,
    /// What happened.
    pub text: String,
}

/// Identifies a question, so an answer approves only the question it was given to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QuestionId(pub u64);

/// How a question was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// The customer answered.
    Answered {
        /// Yes or no.
        allow: bool,
    },
    /// The request went away or nobody answered in time.
    Withdrawn,
}

/// Why a file question is asked although the permission may be granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// The permission is not granted for the session.
    NotGranted,
    /// Outside the folder the customer shares.
    OutsideFolder,
    /// A hidden file or folder (settings, keys, browser profiles).
    Hidden,
    /// A place programs start from automatically.
    Startup,
    /// It replaces something that exists.
    Replaces,
    /// The Ponte program, or its configuration or keys: they decide whom Ponte trusts.
    Program,
}

/// A yes/no question for the customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Question {
    /// The relay presents another certificate than the one remembered.
    RelayChanged {
        /// The relay address.
        relay: String,
        /// The remembered fingerprint.
        known: String,
        /// The one presented now.
        seen: String,
    },
    /// The assistant wants to copy something from this computer.
    Copy {
        /// The resolved absolute path.
        path: PeerText,
        /// File or folder.
        kind: EntryKind,
        /// What would be copied.
        totals: Totals,
        /// Hidden entries inside a folder (copied when allowed here).
        hidden: u64,
        /// Why this is asked.
        why: Vec<Why>,
    },
    /// The assistant wants to see the names in a folder of this computer.
    List {
        /// The resolved absolute path.
        path: PeerText,
        /// How many entries it holds (hidden ones included, as they are shown when allowed).
        entries: u64,
        /// Why this is asked.
        why: Vec<Why>,
    },
    /// The assistant wants to put something on this computer.
    Put {
        /// The resolved absolute path.
        path: PeerText,
        /// File or folder.
        kind: EntryKind,
        /// What the assistant announced.
        totals: Totals,
        /// Folders that would be created first.
        creates: Option<PeerText>,
        /// Why this is asked.
        why: Vec<Why>,
    },
    /// The (verified) assistant asked to connect later without a code; asked only once the
    /// assistant's access has ended. The customer sets the terms — for how long, which
    /// permissions to remember, whether to allow them without asking — and answers with
    /// [`Reply::QuickAccess`] (a plain yes takes the proposal: `days`, `grants`, asking).
    QuickAccess {
        /// Who would be let in (already a sentence: the assistant, or their organisation).
        who: String,
        /// The fingerprint of the key that would be let in (the organisation's, or the
        /// assistant's), so that two organisations of one name are told apart.
        key: String,
        /// The period proposed, in days (1 to [`crate::quick_access::opt_ins::MAX_DAYS`]).
        days: u32,
        /// The permissions the session had at its end: offered to remember for next time.
        grants: Grants,
    },
}

/// The customer's terms for a quick-access opt-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuickTerms {
    /// How long it lasts (clamped to 1 to [`crate::quick_access::opt_ins::MAX_DAYS`]).
    pub days: u32,
    /// The remembered permissions apply next time without the consent screen (the customer
    /// still sees who connected and can stop everything).
    pub without_asking: bool,
    /// The permissions to remember (pre-selected, or applied without asking); never more than
    /// the question offered.
    pub grants: Grants,
}

/// The customer's answer to a question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// No.
    No,
    /// Yes (to a quick-access question: on the terms proposed).
    Yes,
    /// Yes to a quick-access question, on the customer's own terms.
    QuickAccess(QuickTerms),
}

impl Reply {
    /// Whether it is a yes.
    pub fn allows(self) -> bool {
        self != Reply::No
    }
}

/// What the customer tells the core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// The answer to [`Event::ConsentNeeded`]: what the assistant may do.
    Consent(Grants),
    /// The answer to a question.
    Answer {
        /// The question answered.
        question: QuestionId,
        /// Yes or no.
        reply: Reply,
    },
    /// Take back a quick-access opt-in (as listed in [`Event::QuickAccess`]).
    Untrust(crate::quick_access::opt_ins::Entry),
    /// Allow this from now on.
    Grant(Capability),
    /// Stop allowing this, and stop whatever runs under it.
    Revoke(Capability),
    /// Send a chat message.
    Chat(String),
    /// End the session (or stop waiting for one).
    End,
}

impl Input {
    /// Whether it gives the assistant more than it has: a grant, consent with permissions, a
    /// "yes". Such inputs are not taken while the assistant may have typed or clicked them
    /// itself; everything that narrows the assistant's access (end, revoke, deny, no, removing
    /// an opt-in) is always taken, however busy the assistant's input is.
    pub fn widens(&self) -> bool {
        match self {
            Input::Grant(_) => true,
            Input::Consent(grants) => *grants != Grants::NONE,
            Input::Answer { reply, .. } => reply.allows(),
            Input::Untrust(_) | Input::Revoke(_) | Input::Chat(_) | Input::End => false,
        }
    }
}

/// The core's ends of a front-end's channels.
pub struct Frontend {
    /// Where events go.
    pub events: mpsc::UnboundedSender<Event>,
    /// Where the customer's inputs come from. When it closes, the session ends.
    pub inputs: mpsc::Receiver<Input>,
    /// When the assistant last used the pointer or keyboard here.
    pub injected: InjectedInput,
}

/// The front-end's ends: events to show, inputs to send.
pub struct FrontendEnds {
    /// Events to show, in order.
    pub events: mpsc::UnboundedReceiver<Event>,
    /// The customer's inputs.
    pub inputs: mpsc::Sender<Input>,
    /// The customer's language.
    pub tr: std::sync::Arc<Tr>,
    /// When the assistant last used the pointer or keyboard on this desktop: a window on it must
    /// not take such presses as the customer's.
    pub injected: InjectedInput,
}

/// A connected pair of ends; the front-end speaks `tr`.
pub fn channel(tr: std::sync::Arc<Tr>) -> (Frontend, FrontendEnds) {
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let (inputs_tx, inputs_rx) = mpsc::channel(64);
    let injected = InjectedInput::default();
    (
        Frontend {
            events: events_tx,
            inputs: inputs_rx,
            injected: injected.clone(),
        },
        FrontendEnds {
            events: events_rx,
            inputs: inputs_tx,
            tr,
            injected,
        },
    )
}
