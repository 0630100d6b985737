//! What the assistant can ask the agent to do, one module per capability behind one small
//! trait, [`Handler`]. The dispatcher ([`crate::dispatch`]) runs every request the same way:
//! decide, refuse or accept, run under a lease on the live grants, finish.

pub mod clipboard;
pub mod exec;
pub mod files;
pub mod info;
pub mod input;
pub mod list;
pub mod parked;
pub mod screen;
pub mod shell;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use ponte_e2e::app::{Capability, Transfer};
use ponte_session::{SecureSend, SecureStream};

use crate::desktop::{DesktopWorker, Opened};
use crate::events::Events;
use crate::frontend::{Activity, Question};
use crate::grants::LiveGrants;
use crate::grants::Stop;
use crate::i18n::t;
use crate::questions::{Answer, Questions};
use crate::scope::Scope;
use ponte_wire::text::PeerText;

/// What every request of a session shares.
pub struct Context {
    /// Shown to the customer and journaled.
    pub events: Events,
    /// What the customer allows now.
    pub grants: LiveGrants,
    /// Questions, one at a time.
    pub questions: Questions,
    /// The shared folder.
    pub scope: Scope,
    /// Whether someone can be asked; if not (scripts), what needs a question is refused.
    pub interactive: bool,
    /// The desktop, for the screen and input.
    pub desktop: DesktopWorker,
    /// The session, whose QUIC path figures pace the screen (none in tests without one).
    pub session: Option<ponte_session::Session>,
    /// Terminals kept across a resume, and whether one is under way.
    pub parked: parked::Parked,
    /// The desktop's clipboard, once used.
    pub clipboard: clipboard::Board,
    terminals: AtomicU64,
    transfers: AtomicU64,
    refusals: AtomicU64,
}

impl Context {
    /// The context of a session.
    pub fn new(
        events: Events,
        grants: LiveGrants,
        questions: Questions,
        scope: Scope,
        interactive: bool,
        desktop: DesktopWorker,
        session: Option<ponte_session::Session>,
    ) -> Context {
        Context {
            events,
            grants,
            questions,
            scope,
            interactive,
            desktop,
            session,
            parked: parked::Parked::default(),
            clipboard: clipboard::Board::default(),
            terminals: AtomicU64::new(1),
            transfers: AtomicU64::new(1),
            refusals: AtomicU64::new(0),
        }
    }

    /// The number of the session's next terminal or command (1, 2, …).
    pub fn next_terminal(&self) -> u64 {
        self.terminals.fetch_add(1, Ordering::Relaxed)
    }

    /// The number of the session's next transfer.
    pub fn next_transfer(&self) -> u64 {
        self.transfers.fetch_add(1, Ordering::Relaxed)
    }

    /// Shows a refused request — each of the session's first [`LISTED_REFUSALS`], then only
    /// a running count at every [`LISTED_REFUSALS`]th — so a flood of refused requests cannot
    /// bury what matters. A share, not a rate: after the first ones, one refusal in
    /// [`LISTED_REFUSALS`] makes a line however slowly they come, and that line counts them all.
    pub fn refused(&self, text: String) {
        let n = self.refusals.fetch_add(1, Ordering::Relaxed) + 1;
        if n <= LISTED_REFUSALS {
            self.events.activity(crate::frontend::Kind::Refused, text);
        } else if n.is_multiple_of(LISTED_REFUSALS) {
            let text = t!(self.tr(), "refused-count", count = n);
            self.events.activity(crate::frontend::Kind::Refused, text);
        }
    }

    /// Asks the customer; `Err` says why the answer is no.
    pub async fn ask(&self, question: Question) -> Result<(), Reason> {
        if !self.interactive {
            return Err(Reason::CannotAsk);
        }
        match self.questions.ask(question).await {
            Answer::Yes(_) => Ok(()),
            Answer::No => Err(Reason::Declined),
            Answer::Busy => Err(Reason::Busy),
            Answer::NoAnswer => Err(Reason::NoAnswer),
        }
    }

    /// The customer's language.
    pub fn tr(&self) -> &crate::i18n::Tr {
        self.events.tr()
    }

    /// Opens the customer's desktop if needed, telling the customer first when their system
    /// is about to show its own sharing dialog (so they expect it, and know it is not Ponte's).
    pub async fn open_desktop(&self) -> anyhow::Result<Opened> {
        if self.desktop.announce_dialog() {
            let text = t!(self.tr(), "system-dialog");
            self.events.activity(crate::frontend::Kind::Screen, text);
        }
        self.desktop.open().await
    }
}

/// Why a request is refused or stopped: told to the assistant in English (the protocol's
/// language) and shown to the customer in theirs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The capability is not granted.
    NotAllowed(Capability),
    /// The customer said no.
    Declined,
    /// Nobody can be asked (a script's agent).
    CannotAsk,
    /// Too many questions wait.
    Busy,
    /// The customer did not answer in time.
    NoAnswer,
    /// The grant ended while it ran, or the session did.
    Stopped(Stop),
    /// The command is longer than allowed.
    TooLong,
    /// The request breaks the protocol's rules.
    Malformed,
    /// The desktop cannot be shared, failed, or takes no input.
    Desktop(crate::desktop::DesktopError),
    /// The destination exists and replacing was not asked for.
    Exists(PeerText),
    /// The destination exists as the other kind (file / folder).
    NotA {
        /// The destination.
        path: PeerText,
        /// It should have been a folder.
        folder: bool,
    },
    /// The path cannot be used at all.
    Unusable(PeerText),
    /// An error of the system (its own words).
    Error(String),
}

/// Why the desktop failed, for the customer.
fn desktop_failure(tr: &crate::i18n::Tr, e: &crate::desktop::DesktopError) -> String {
    use crate::desktop::DesktopError as E;
    match e {
        E::NoPortal(_) => t!(tr, "desktop-no-portal"),
        E::PortalCancelled => t!(tr, "desktop-portal-cancelled"),
        E::PortalUnanswered(minutes) => t!(tr, "desktop-portal-unanswered", minutes = *minutes),
        E::Portal(why) => t!(tr, "desktop-portal-failed", error = why),
        E::NoPipeWire(_) => t!(tr, "desktop-no-pipewire"),
        E::PipeWire(why) => t!(tr, "desktop-pipewire-failed", error = why),
        E::ViewOnly => t!(tr, "reason-view-only"),
    }
}

impl Reason {
    /// For the assistant.
    pub fn english(&self) -> String {
        match self {
            Reason::NotAllowed(c) => format!("the customer has not allowed '{c}'"),
            Reason::Declined => "the customer declined".into(),
            Reason::CannotAsk => {
                "nobody can be asked at the customer's computer (it runs for a script)".into()
            }
            Reason::Busy => "the customer has too many questions open; try again later".into(),
            Reason::NoAnswer => "the customer did not answer".into(),
            Reason::Stopped(stop) => stop.to_string(),
            Reason::TooLong => "command too long".into(),
            Reason::Malformed => "malformed request".into(),
            Reason::Desktop(e) => e.to_string(),
            Reason::Exists(path) => format!("{path} already exists on the customer's computer"),
            Reason::NotA { path, folder: true } => format!("{path} exists and is not a folder"),
            Reason::NotA { path, folder: false } => format!("{path} exists and is not a file"),
            Reason::Unusable(path) => format!("unusable path {path}"),
            Reason::Error(e) => e.clone(),
        }
    }

    /// For the customer.
    pub fn local(&self, tr: &crate::i18n::Tr) -> String {
        match self {
            Reason::NotAllowed(c) => t!(
                tr,
                "reason-not-allowed",
                capability = crate::i18n::phrases::capability_name(tr, *c)
            ),
            Reason::Declined => t!(tr, "reason-declined"),
            Reason::CannotAsk => t!(tr, "reason-cannot-ask"),
            Reason::Busy => t!(tr, "reason-busy"),
            Reason::NoAnswer => t!(tr, "reason-no-answer"),
            Reason::Stopped(stop) => stop.local(tr),
            Reason::TooLong => t!(tr, "reason-too-long"),
            Reason::Malformed => t!(tr, "reason-malformed"),
            Reason::Desktop(e) => desktop_failure(tr, e),
            Reason::Exists(path) => t!(tr, "reason-exists", path = path),
            Reason::NotA { path, folder: true } => t!(tr, "reason-not-a-folder", path = path),
            Reason::NotA { path, folder: false } => t!(tr, "reason-not-a-file", path = path),
            Reason::Unusable(path) => t!(tr, "reason-unusable", path = path),
            Reason::Error(e) => t!(tr, "reason-error", error = e),
        }
    }
}

/// Refused requests listed one by one.
pub const LISTED_REFUSALS: u64 = 50;

/// Whether a request may run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// It runs.
    Allow,
    /// It is refused.
    Refuse(Reason),
}

/// The refusal of a request whose capability is not granted.
pub fn not_allowed(c: Capability) -> Decision {
    Decision::Refuse(Reason::NotAllowed(c))
}

/// One kind of request.
pub trait Handler: Send + Sized {
    /// The capability it runs under: revoking it stops the request.
    const GRANT: Capability;

    /// What is asked, for the customer's activity list, in their language (peer text escaped).
    fn describe(&self, tr: &crate::i18n::Tr) -> String;

    /// Whether it may run, given whether [`Handler::GRANT`] is granted now. May look at the
    /// file system and ask the customer. The default allows exactly what is granted.
    fn decide(&mut self, ctx: &Context, granted: bool) -> impl Future<Output = Decision> + Send {
        let _ = ctx;
        async move {
            if granted {
                Decision::Allow
            } else {
                not_allowed(Self::GRANT)
            }
        }
    }

    /// Tells the assistant, as the last message of the stream, that the request failed or was
    /// stopped (`told`, in English). Streams carry `Transfer`s unless they say otherwise.
    fn tell_ended(send: &mut SecureSend, told: PeerText) -> impl Future<Output = ()> + Send {
        async move {
            let _ = send.send(&Transfer::Failed(told)).await;
        }
    }

    /// Runs the accepted request on its stream; the activity line says how it ended. The
    /// dispatcher may drop this future at any point (the grant was revoked): what it started
    /// must end with it (drop guards), and it must leave nothing half-done that looks done.
    fn run(
        self,
        stream: &mut SecureStream,
        ctx: &Context,
    ) -> impl Future<Output = anyhow::Result<Activity>> + Send;
}
