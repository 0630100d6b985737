//! One session's ledger record as the relay learns it: the agent's task, the registry and
//! every viewer's task hold it; when the last of them lets go, the final row goes to the
//! writer, so bytes counted by a viewer task that outlives the agent's are never lost.

use std::sync::{Arc, Mutex};

use ponte_wire::SessionId;
use ponte_wire::rendezvous::Ticket;

use super::{Ledger, Row, now_ms};

/// Why a session (or its pairing) ended, as the ledger and the metrics name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The agent left (or its connection was lost).
    AgentLeft,
    /// The viewer left.
    ViewerLeft,
    /// Nobody joined in time.
    Expired,
    /// The agent burned the session ID (too many wrong codes, or done).
    Burned,
    /// No traffic for the idle timeout.
    IdleTimeout,
    /// The session reached its maximum length.
    LimitExceeded,
    /// The relay shut down.
    ShuttingDown,
    /// A peer broke the rendezvous protocol.
    BadRequest,
    /// An operator ended it from the console.
    EndedByOperator,
}

impl EndReason {
    /// The stable label used in the ledger and in metrics.
    pub fn label(self) -> &'static str {
        match self {
            EndReason::AgentLeft => "agent_left",
            EndReason::ViewerLeft => "viewer_left",
            EndReason::Expired => "expired",
            EndReason::Burned => "burned",
            EndReason::IdleTimeout => "idle_timeout",
            EndReason::LimitExceeded => "limit_exceeded",
            EndReason::ShuttingDown => "shutting_down",
            EndReason::BadRequest => "bad_request",
            EndReason::EndedByOperator => "ended_by_operator",
        }
    }
}

#[derive(Debug)]
struct PairingState {
    generation: u64,
    paired: i64,
    ended: Option<(i64, EndReason)>,
    assistant: Option<String>,
    ticket: Option<Ticket>,
    viewer_address: Option<String>,
    /// The agent turned this viewer away: it was an attempt, not a connection to bill.
    released: bool,
}

#[derive(Debug)]
struct State {
    id: i64,
    session: SessionId,
    registered: i64,
    agent_address: Option<String>,
    attempts: i32,
    bytes_agent_to_viewer: u64,
    bytes_viewer_to_agent: u64,
    last: Option<PairingState>,
    ended: Option<(i64, EndReason)>,
}

impl State {
    fn row(&self) -> Row {
        let stood = self.last.as_ref().filter(|p| !p.released);
        let ended = stood.and_then(|p| p.ended).or(self.ended);
        let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        Row {
            id: self.id,
            session: self.session.to_digits(),
            registered: self.registered,
            paired: stood.map(|p| p.paired),
            ended: ended.map(|e| e.0),
            end_reason: ended.map(|e| e.1.label().to_owned()),
            bytes_agent_to_viewer: clamp(self.bytes_agent_to_viewer),
            bytes_viewer_to_agent: clamp(self.bytes_viewer_to_agent),
            attempts: self.attempts,
            assistant: stood.and_then(|p| p.assistant.clone()),
            ticket: stood.and_then(|p| p.ticket.as_ref().map(|t| t.to_string())),
            agent_address: self.agent_address.clone(),
            viewer_address: stood.and_then(|p| p.viewer_address.clone()),
        }
    }
}

struct Inner {
    state: Mutex<State>,
    ledger: Ledger,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        if state.ended.is_none() {
            // Every path that ends a session says why; this is the agent's connection going
            // away without a word.
            state.ended = Some((now_ms(), EndReason::AgentLeft));
        }
        let row = state.row();
        if let Some(reason) = &row.end_reason {
            crate::metrics::session_ended(reason);
        }
        self.ledger.record(row);
        self.ledger.closed();
    }
}

/// A session's ledger record (cheap to clone; the final row is written when the last clone
/// is dropped).
#[derive(Clone)]
pub struct SessionRecord(Arc<Inner>);

impl std::fmt::Debug for SessionRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionRecord")
    }
}

/// What a viewer brought to a pairing.
#[derive(Debug, Clone, Default)]
pub struct ViewerFacts {
    /// Its assistant account, when it presented a credential.
    pub assistant: Option<String>,
    /// Its ticket reference.
    pub ticket: Option<Ticket>,
    /// Its address as the ledger keeps it.
    pub address: Option<String>,
}

impl SessionRecord {
    /// The record of a session registered now.
    pub fn new(ledger: &Ledger, session: SessionId, agent_address: Option<String>) -> SessionRecord {
        ledger.opened();
        let id = super::random_id();
        SessionRecord(Arc::new(Inner {
            state: Mutex::new(State {
                id,
                session,
                registered: now_ms(),
                agent_address,
                attempts: 0,
                bytes_agent_to_viewer: 0,
                bytes_viewer_to_agent: 0,
                last: None,
                ended: None,
            }),
            ledger: ledger.clone(),
        }))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Plain data, updated field by field: a panic cannot break an invariant here.
        self.0.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A viewer was paired (pairing `generation`); the open row is written at once.
    pub fn paired(&self, generation: u64, viewer: ViewerFacts) {
        let row = {
            let mut s = self.state();
            s.attempts = s.attempts.saturating_add(1);
            s.last = Some(PairingState {
                generation,
                paired: now_ms(),
                ended: None,
                assistant: viewer.assistant,
                ticket: viewer.ticket,
                viewer_address: viewer.address,
                released: false,
            });
            s.row()
        };
        self.0.ledger.record(row);
    }

    /// Pairing `generation` stopped forwarding, having moved these bytes.
    pub fn pairing_ended(
        &self,
        generation: u64,
        reason: EndReason,
        agent_to_viewer: u64,
        viewer_to_agent: u64,
    ) {
        let mut s = self.state();
        s.bytes_agent_to_viewer = s.bytes_agent_to_viewer.saturating_add(agent_to_viewer);
        s.bytes_viewer_to_agent = s.bytes_viewer_to_agent.saturating_add(viewer_to_agent);
        if let Some(p) = s
            .last
            .as_mut()
            .filter(|p| p.generation == generation && p.ended.is_none())
        {
            p.ended = Some((now_ms(), reason));
        }
    }

    /// The agent turned the last pairing's viewer away.
    pub fn released(&self) {
        if let Some(p) = self.state().last.as_mut() {
            p.released = true;
        }
    }

    /// The session ended (the first reason given counts).
    pub fn ended(&self, reason: EndReason) {
        let mut s = self.state();
        if s.ended.is_none() {
            s.ended = Some((now_ms(), reason));
        }
    }

    /// The row's key.
    pub fn id(&self) -> i64 {
        self.state().id
    }

    /// Whether the session has ended (the row has its end, if not yet its last counts).
    pub fn has_ended(&self) -> bool {
        self.state().ended.is_some()
    }

    /// The row as it stands (for tests and the open write).
    pub fn row(&self) -> Row {
        self.state().row()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> SessionRecord {
        SessionRecord::new(
            &Ledger::off(),
            "123456789".parse().unwrap(),
            Some("192.0.2.0".into()),
        )
    }

    #[test]
    fn a_released_attempt_is_not_a_connection_but_is_counted() {
        let r = record();
        r.paired(
            0,
            ViewerFacts {
                ticket: Some("T-1".parse().unwrap()),
                ..ViewerFacts::default()
            },
        );
        r.pairing_ended(0, EndReason::ViewerLeft, 100, 10);
        r.released();
        r.paired(
            1,
            ViewerFacts {
                assistant: Some("alice".into()),
                ticket: Some("T-2".parse().unwrap()),
                address: Some("198.51.100.0".into()),
            },
        );
        let open = r.row();
        assert!(open.paired.is_some() && open.ended.is_none() && open.end_reason.is_none());
        r.pairing_ended(1, EndReason::ViewerLeft, 1000, 50);
        r.ended(EndReason::AgentLeft);
        let row = r.row();
        assert_eq!(row.attempts, 2);
        assert_eq!((row.bytes_agent_to_viewer, row.bytes_viewer_to_agent), (1100, 60));
        assert_eq!(row.ticket.as_deref(), Some("T-2"));
        assert_eq!(row.assistant.as_deref(), Some("alice"));
        assert_eq!(
            row.end_reason.as_deref(),
            Some("viewer_left"),
            "the pairing's end is the connection's end"
        );
        assert!(row.paired <= row.ended);
        assert_eq!(row.session, "123456789");
    }

    #[test]
    fn a_session_whose_only_viewer_was_turned_away_has_no_pairing() {
        let r = record();
        r.paired(
            0,
            ViewerFacts {
                ticket: Some("T-1".parse().unwrap()),
                ..ViewerFacts::default()
            },
        );
        r.released();
        r.pairing_ended(0, EndReason::ViewerLeft, 5, 5);
        r.ended(EndReason::Expired);
        let row = r.row();
        assert_eq!((row.paired, row.ticket, row.attempts), (None, None, 1));
        assert_eq!(row.end_reason.as_deref(), Some("expired"));
        // A late pairing end of an older generation changes nothing but the byte count.
        r.pairing_ended(7, EndReason::IdleTimeout, 1, 1);
        assert_eq!(r.row().end_reason.as_deref(), Some("expired"));
        assert_eq!(r.row().bytes_agent_to_viewer, 6);
    }
}
