//! The live grants: one observable value of what the customer allows now. Everything that runs
//! for the assistant holds a [`Lease`] on the capability it needs and is stopped the moment
//! that capability is revoked — not at its next request.

use crate::i18n::t;
use ponte_e2e::app::{Capability, Grants};
use tokio::sync::watch;

/// What the grants are now, and how often each capability was revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct State {
    /// What the customer allows.
    pub grants: Grants,
    /// Revocations per capability (index: position in [`Capability::ALL`]). A revocation of
    /// something not granted still counts: it stops what the customer allowed once, by answer.
    revocations: [u32; Capability::ALL.len()],
    /// The session is over: every lease ends.
    ended: bool,
}

impl State {
    /// Whether the session is over.
    pub fn ended(&self) -> bool {
        self.ended
    }
}

fn index(c: Capability) -> usize {
    Capability::ALL.iter().position(|x| *x == c).unwrap_or(0)
}

/// The customer's grants, shared by the session and everything it runs.
#[derive(Debug, Clone)]
pub struct LiveGrants {
    state: watch::Sender<State>,
}

/// Why a lease ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The customer revoked the capability.
    Revoked(Capability),
    /// The session ended.
    SessionEnded,
}

impl Stop {
    /// For the customer.
    pub fn local(&self, tr: &crate::i18n::Tr) -> String {
        match self {
            Stop::Revoked(c) => {
                t!(
                    tr,
                    "reason-revoked",
                    capability = crate::i18n::phrases::capability_name(tr, *c)
                )
            }
            Stop::SessionEnded => t!(tr, "reason-session-ended"),
        }
    }
}

/// For the assistant (the protocol's language).
impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::Revoked(c) => write!(f, "the customer revoked '{c}'"),
            Stop::SessionEnded => f.write_str("the session ended"),
        }
    }
}

impl Default for LiveGrants {
    fn default() -> LiveGrants {
        LiveGrants::new()
    }
}

impl LiveGrants {
    /// Nothing granted yet.
    pub fn new() -> LiveGrants {
        LiveGrants {
            state: watch::Sender::new(State::default()),
        }
    }

    /// What is granted now.
    pub fn now(&self) -> Grants {
        self.state.borrow().grants
    }

    /// Sets the grants the customer chose at the start.
    pub fn set(&self, grants: Grants) {
        self.state.send_modify(|s| s.grants = grants);
    }

    /// Grants `c` (control brings screen with it); returns the new grants.
    pub fn grant(&self, c: Capability) -> Grants {
        self.state.send_modify(|s| s.grants.grant(c));
        self.now()
    }

    /// Revokes `c` (screen takes control with it) and stops what runs under it; returns the
    /// new grants.
    pub fn revoke(&self, c: Capability) -> Grants {
        self.state.send_modify(|s| {
            s.grants.revoke(c);
            s.revocations[index(c)] += 1;
            if c == Capability::Screen {
                s.revocations[index(Capability::Control)] += 1;
            }
        });
        self.now()
    }

    /// Ends every lease: the session is over.
    pub fn end(&self) {
        self.state.send_modify(|s| s.ended = true);
    }

    /// Watches the whole state.
    pub fn subscribe(&self) -> watch::Receiver<State> {
        self.state.subscribe()
    }

    /// A lease on `c` from now on: it ends when `c` is next revoked or the session ends.
    pub fn lease(&self, c: Capability) -> Lease {
        let rx = self.state.subscribe();
        let start = rx.borrow().revocations[index(c)];
        Lease {
            rx,
            capability: c,
            start,
        }
    }
}

/// The right to keep running something that needs one capability.
#[derive(Debug)]
pub struct Lease {
    rx: watch::Receiver<State>,
    capability: Capability,
    start: u32,
}

impl Lease {
    /// Why the lease has ended, if it has.
    pub fn stopped(&self) -> Option<Stop> {
        let state = self.rx.borrow();
        if state.ended {
            Some(Stop::SessionEnded)
        } else if state.revocations[index(self.capability)] != self.start {
            Some(Stop::Revoked(self.capability))
        } else {
            None
        }
    }

    /// Waits until the lease ends. Cancel-safe.
    pub async fn ended(&mut self) -> Stop {
        loop {
            if let Some(stop) = self.stopped() {
                return stop;
            }
            if self.rx.changed().await.is_err() {
                return Stop::SessionEnded;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_lease_ends_on_revocation_of_its_capability_only() {
        let live = LiveGrants::new();
        live.set(Grants::all());
        let mut terminal = live.lease(Capability::Terminal);
        let mut control = live.lease(Capability::Control);
        live.revoke(Capability::Upload);
        assert_eq!(terminal.stopped(), None);
        live.revoke(Capability::Screen);
        assert_eq!(control.ended().await, Stop::Revoked(Capability::Control));
        assert!(!live.now().allows(Capability::Control));
        // Revoking what was never granted still stops what ran on a one-time yes.
        let mut download = live.lease(Capability::Download);
        live.revoke(Capability::Download);
        live.revoke(Capability::Download);
        assert_eq!(download.ended().await, Stop::Revoked(Capability::Download));
        live.end();
        assert_eq!(terminal.ended().await, Stop::SessionEnded);
    }
}
