//! [`Events`]: where everything the core tells the customer goes — into the session's journal,
//! then to the front-end.

use tokio::sync::mpsc;

use crate::frontend::{Activity, Event, Kind};
use crate::i18n::{Tr, t};
use crate::journal::Journal;

/// Longest activity line shown, in characters.
pub const MAX_ACTIVITY: usize = 600;

/// Where the core's events go: into the session's journal, then to the front-end. Everything
/// the customer is shown is therefore also in the log file.
#[derive(Clone)]
pub struct Events {
    to_frontend: mpsc::UnboundedSender<Event>,
    journal: Journal,
}

impl Events {
    /// Events for `to_frontend`, journaled in `journal`.
    pub fn new(to_frontend: mpsc::UnboundedSender<Event>, journal: Journal) -> Events {
        Events { to_frontend, journal }
    }

    /// Records and shows an event.
    pub fn emit(&self, event: Event) {
        if !self.journal.record(&event) {
            return; // Over the journal's budget for terminal output: not shown either.
        }
        let _ = self.to_frontend.send(event);
    }

    /// Records and shows an activity line, already in the customer's language (cut at
    /// [`MAX_ACTIVITY`] characters: a peer's 4 KiB of escapes must not bury everything else).
    pub fn activity(&self, kind: Kind, text: impl Into<String>) {
        let mut text = text.into();
        if let Some((cut, _)) = text.char_indices().nth(MAX_ACTIVITY) {
            let rest = text[cut..].chars().count();
            text.truncate(cut);
            text.push_str(&t!(self.tr(), "more-characters", count = rest));
        }
        self.emit(Event::Activity(Activity { kind, text }));
    }

    /// The session's journal.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// The customer's language.
    pub fn tr(&self) -> &Tr {
        self.journal.tr()
    }
}
