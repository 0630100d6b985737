//! The customer's inputs, routed the moment they arrive — whatever the session is busy with.
//!
//! Answers go to the question desk; grants and revocations are applied to the live grants at
//! once (so a revocation stops what runs even while the session waits on a slow assistant);
//! chat, consent and "end" are handed to the session.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ponte_e2e::app::Grants;
use tokio::sync::{mpsc, watch};

use crate::desktop::InjectedInput;
use crate::events::Events;
use crate::frontend::{Event, Input, Kind};
use crate::grants::LiveGrants;
use crate::i18n::t;
use crate::questions::Questions;

/// What the session reads of the customer.
pub struct Customer {
    /// The answer to the consent question.
    pub consent: mpsc::Receiver<Grants>,
    /// Chat messages to send.
    pub chat: mpsc::Receiver<String>,
    /// Becomes true when the customer ends the session (or the front-end goes away).
    pub end: watch::Receiver<bool>,
    active: Arc<AtomicBool>,
}

impl Customer {
    /// From now on grants and revocations apply (the customer has consented).
    pub fn activate(&self) {
        self.active.store(true, Ordering::SeqCst);
    }
}

/// Waits until the customer ends the session (`customer.end`). Cancel-safe.
pub async fn ended(end: &mut watch::Receiver<bool>) {
    let _ = end.wait_for(|ended| *ended).await;
}

/// Takes a quick-access opt-in back (from the window's list) and shows the list as it is now.
async fn untrust(path: PathBuf, events: Events, entry: crate::quick_access::opt_ins::Entry) {
    let tr = events.tr();
    let removed = crate::quick_access::opt_ins::OptIns::update_async(path, {
        let entry = entry.clone();
        move |trusted| Ok((trusted.remove_entry(&entry), trusted.entries().to_vec()))
    })
    .await;
    match removed {
        Ok((removed, entries)) => {
            if removed {
                let who = crate::i18n::phrases::opt_in_who(tr, &entry);
                events.activity(Kind::Permissions, t!(tr, "quick-access-removed", who = who));
            }
            events.emit(Event::QuickAccess(entries));
        }
        Err(e) => events.emit(Event::Note(t!(tr, "quick-unavailable", error = e.to_string()))),
    }
}

/// Starts routing `inputs`; returns what the session reads.
pub fn route(
    mut inputs: mpsc::Receiver<crate::frontend::Input>,
    events: Events,
    questions: Questions,
    grants: LiveGrants,
    injected: InjectedInput,
    opt_ins: Option<PathBuf>,
) -> Customer {
    let (consent_tx, consent) = mpsc::channel(1);
    let (chat_tx, chat) = mpsc::channel(64);
    let (end_tx, end) = watch::channel(false);
    let active = Arc::new(AtomicBool::new(false));
    let is_active = active.clone();
    tokio::spawn(async move {
        while let Some(input) = inputs.recv().await {
            // What the assistant may have typed or clicked itself is not taken as the customer's.
            if input.widens() && injected.recent() {
                events.emit(Event::Note(t!(events.tr(), "not-taken")));
                continue;
            }
            match input {
                Input::Answer { question, reply } => {
                    questions.answer(question, reply);
                }
                // Off the router: a slow opt-ins file must not hold "end".
                Input::Untrust(entry) => {
                    if let Some(path) = opt_ins.clone() {
                        tokio::spawn(untrust(path, events.clone(), entry));
                    }
                }
                Input::Consent(g) => {
                    let _ = consent_tx.try_send(g);
                }
                Input::Grant(_) | Input::Revoke(_) | Input::Chat(_) if !is_active.load(Ordering::SeqCst) => {
                    events.emit(Event::Note(t!(events.tr(), "nobody-connected")));
                }
                Input::Grant(c) => {
                    grants.grant(c);
                }
                Input::Revoke(c) => {
                    grants.revoke(c);
                }
                Input::Chat(text) => {
                    let _ = chat_tx.try_send(text);
                }
                Input::End => {
                    let _ = end_tx.send(true);
                }
            }
        }
        // The front-end is gone: nobody can watch the session any more.
        let _ = end_tx.send(true);
    });
    Customer {
        consent,
        chat,
        end,
        active,
    }
}
