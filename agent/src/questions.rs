//! Questions to the customer, one at a time. A question is shown only when the previous one
//! is closed, and an answer carries the id of the question it answers, so a "yes" can approve
//! only the question the customer saw. Other questions wait unseen in arrival order (at most
//! [`MAX_WAITING`]; beyond that a request is refused as busy); a question whose request goes
//! away is withdrawn, shown or not. The time to answer starts when a question is shown, so
//! nobody can time a swap to the moment a question expires.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::desktop::InjectedInput;
use crate::events::Events;
use crate::frontend::{Closed, Event, Input, Question, QuestionId, QuickTerms, Reply};

/// Questions that may wait behind the open one.
pub const MAX_WAITING: usize = 16;

/// How long a shown question waits for the customer before it counts as "no".
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(180);

/// How long a question must have been shown before an answer counts: neither type-ahead nor
/// a click meant for what was there a moment before answers it. Every front end applies it
/// ([`settled`]).
pub const SETTLE: Duration = Duration::from_millis(700);

/// How long after the assistant's last pointer movement, key or button a front end takes no
/// widening click or key as the customer's ([`taken_as_customers`]; the core's own, longer
/// guard is [`InjectedInput::GUARD`]).
pub const NOT_THEIRS: Duration = Duration::from_secs(1);

/// Whether an answer given at `at` to a question shown at `shown` counts ([`SETTLE`]).
pub fn settled(shown: Instant, at: Instant) -> bool {
    at.checked_duration_since(shown).is_some_and(|d| d >= SETTLE)
}

/// Whether a front end may take `input` as the customer's now. What widens the assistant's
/// access, or speaks for the customer as chat does, is not taken while the assistant may have
/// done it ([`NOT_THEIRS`]); what narrows it — End, a switch turned off, Deny, No, Remove —
/// always is.
pub fn taken_as_customers(input: &Input, injected: &InjectedInput) -> bool {
    let guarded = input.widens() || matches!(input, Input::Chat(_));
    !(guarded && injected.within(NOT_THEIRS))
}

/// The customer's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Yes (with the customer's terms, if they chose some for a quick-access question).
    Yes(Option<QuickTerms>),
    /// No.
    No,
    /// Not asked: too many questions wait already.
    Busy,
    /// Not answered in time.
    NoAnswer,
}

/// The question desk of a session (cheap to clone).
#[derive(Clone)]
pub struct Questions {
    inner: Arc<Mutex<Desk>>,
    events: Events,
}

struct Pending {
    id: QuestionId,
    question: Question,
    reply: oneshot::Sender<Reply>,
    shown: oneshot::Sender<()>,
}

#[derive(Default)]
struct Desk {
    next: u64,
    open: Option<(QuestionId, oneshot::Sender<Reply>)>,
    waiting: VecDeque<Pending>,
}

/// Withdraws its question when the asking request goes away (answered questions are gone
/// already, so this does nothing for them).
struct Withdraw<'a> {
    desk: &'a Questions,
    id: QuestionId,
}

impl Drop for Withdraw<'_> {
    fn drop(&mut self) {
        self.desk.withdraw(self.id);
    }
}

impl Questions {
    /// A desk that shows questions through `events`.
    pub fn new(events: Events) -> Questions {
        Questions {
            inner: Arc::new(Mutex::new(Desk::default())),
            events,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Desk> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks the customer and waits for the answer (or [`ANSWER_TIMEOUT`]). Cancel-safe: a
    /// dropped call withdraws its question.
    pub async fn ask(&self, question: Question) -> Answer {
        let (reply, answer) = oneshot::channel();
        let (shown, on_screen) = oneshot::channel();
        let id = {
            let mut desk = self.lock();
            if desk.waiting.len() >= MAX_WAITING {
                return Answer::Busy;
            }
            desk.next += 1;
            let id = QuestionId(desk.next);
            desk.waiting.push_back(Pending {
                id,
                question,
                reply,
                shown,
            });
            self.show_next(&mut desk);
            id
        };
        let _withdraw = Withdraw { desk: self, id };
        let _ = on_screen.await;
        match tokio::time::timeout(ANSWER_TIMEOUT, answer).await {
            Ok(Ok(Reply::Yes)) => Answer::Yes(None),
            Ok(Ok(Reply::QuickAccess(terms))) => Answer::Yes(Some(terms)),
            Ok(Ok(Reply::No)) | Ok(Err(_)) => Answer::No,
            Err(_) => Answer::NoAnswer,
        }
    }

    fn show_next(&self, desk: &mut Desk) {
        if desk.open.is_some() {
            return;
        }
        if let Some(next) = desk.waiting.pop_front() {
            let _ = next.shown.send(());
            desk.open = Some((next.id, next.reply));
            self.events.emit(Event::Question {
                id: next.id,
                question: next.question,
            });
        }
    }

    /// The customer's answer to question `id`; ignored (returns `false`) unless `id` is the
    /// open question.
    pub fn answer(&self, id: QuestionId, answer: Reply) -> bool {
        let mut desk = self.lock();
        match desk.open.take() {
            Some((open, reply)) if open == id => {
                let _ = reply.send(answer);
                self.events.emit(Event::QuestionClosed {
                    id,
                    outcome: Closed::Answered {
                        allow: answer.allows(),
                    },
                });
                self.show_next(&mut desk);
                true
            }
            other => {
                desk.open = other;
                false
            }
        }
    }

    fn withdraw(&self, id: QuestionId) {
        let mut desk = self.lock();
        if desk.open.as_ref().is_some_and(|(open, _)| *open == id) {
            desk.open = None;
            self.events.emit(Event::QuestionClosed {
                id,
                outcome: Closed::Withdrawn,
            });
            self.show_next(&mut desk);
        } else {
            desk.waiting.retain(|p| p.id != id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Journal;

    fn desk() -> (Questions, tokio::sync::mpsc::UnboundedReceiver<Event>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (
            Questions::new(Events::new(
                tx,
                Journal::new(std::sync::Arc::new(crate::i18n::Tr::new(crate::i18n::Lang::En))),
            )),
            rx,
        )
    }

    fn question(n: u64) -> Question {
        Question::RelayChanged {
            relay: format!("relay {n}"),
            known: String::new(),
            seen: String::new(),
        }
    }

    fn shown(event: Option<Event>) -> (QuestionId, Question) {
        match event {
            Some(Event::Question { id, question }) => (id, question),
            other => panic!("expected a question, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn an_answer_approves_only_the_question_shown() {
        let (desk, mut events) = desk();
        let first = tokio::spawn({
            let desk = desk.clone();
            async move { desk.ask(question(1)).await }
        });
        let (id1, q1) = shown(events.recv().await);
        assert_eq!(q1, question(1));
        let second = tokio::spawn({
            let desk = desk.clone();
            async move { desk.ask(question(2)).await }
        });
        tokio::task::yield_now().await;
        // The second waits unseen; an answer naming it does nothing.
        assert!(events.try_recv().is_err(), "only one question is shown");
        assert!(!desk.answer(QuestionId(id1.0 + 1), Reply::Yes));
        assert!(desk.answer(id1, Reply::Yes));
        assert_eq!(first.await.unwrap(), Answer::Yes(None));
        assert!(matches!(events.recv().await, Some(Event::QuestionClosed { id, .. }) if id == id1));
        let (id2, q2) = shown(events.recv().await);
        assert_eq!(q2, question(2));
        assert!(desk.answer(id2, Reply::No));
        assert_eq!(second.await.unwrap(), Answer::No);
        // An old id cannot answer a later question.
        let third = tokio::spawn({
            let desk = desk.clone();
            async move { desk.ask(question(3)).await }
        });
        let _ = events.recv().await; // closed
        let (id3, _) = shown(events.recv().await);
        assert!(!desk.answer(id1, Reply::Yes));
        third.abort();
        let _ = third.await;
        assert!(
            matches!(events.recv().await, Some(Event::QuestionClosed { id, outcome: Closed::Withdrawn }) if id == id3)
        );
    }

    #[tokio::test]
    async fn a_withdrawn_question_shows_the_next_and_a_flood_is_busy() {
        let (desk, mut events) = desk();
        let spawn = |n: u64| {
            let desk = desk.clone();
            tokio::spawn(async move { desk.ask(question(n)).await })
        };
        let first = spawn(0);
        let (id0, _) = shown(events.recv().await);
        let _rest: Vec<_> = (1..=MAX_WAITING as u64).map(spawn).collect();
        while desk.lock().waiting.len() < MAX_WAITING {
            tokio::task::yield_now().await;
        }
        assert_eq!(desk.ask(question(99)).await, Answer::Busy);
        first.abort();
        let _ = first.await;
        assert!(matches!(events.recv().await, Some(Event::QuestionClosed { id, .. }) if id == id0));
        let (id1, q1) = shown(events.recv().await);
        assert_ne!(id0, id1);
        assert_eq!(q1, question(1), "the next in arrival order");
    }
}
