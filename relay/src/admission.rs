//! Who gets a connection slot: the total connection cap, a cap per source, and QUIC address
//! validation (Retry) so that the per-source counts are not filled with spoofed addresses. On
//! a relay cluster the per-source cap counts the source's connections on the other nodes too,
//! as they last reported them (every heartbeat, through Redis).
//!
//! Sans-IO: the server asks [`Admission::decide`] for each incoming connection and carries out
//! the decision (accept, send a Retry, refuse).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::source::Source;

/// When the relay makes clients prove their address with a QUIC Retry (one extra round trip)
/// before it keeps any state for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RetryMode {
    /// Every new connection.
    Always,
    /// When half the connection slots are taken or many handshakes are in progress.
    #[default]
    UnderLoad,
    /// Never (only behind something that validates addresses already).
    Never,
}

/// Handshakes in progress from which the relay counts as loaded.
pub const HANDSHAKE_LOAD: usize = 128;

/// How busy the endpoint is when a connection knocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    /// Connections open (handshaking or established).
    pub open: usize,
    /// Connections still in their handshake.
    pub handshaking: usize,
}

/// The limits admission enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionLimits {
    /// Connections in total.
    pub max_connections: usize,
    /// Connections from one source.
    pub per_source: u32,
    /// When to ask for address validation.
    pub retry: RetryMode,
}

/// Why a connection was refused at the door.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crowded {
    /// Every slot is taken.
    Full,
    /// Its source holds as many connections as one source may.
    Source,
}

/// What to do with a connection attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Accept it; the slot is counted until the [`Admitted`] guard is dropped.
    Accept(Admitted),
    /// Answer with a Retry: the client must come back from the address it claims.
    Retry,
    /// Refuse it.
    Refuse(Crowded),
}

#[derive(Debug)]
struct Counts {
    by_source: HashMap<Source, u32>,
    /// Connections of each source on the other nodes of the cluster.
    elsewhere: HashMap<Source, u32>,
}

/// Connection admission, shared by the accept loop and the connections it admitted.
#[derive(Debug, Clone)]
pub struct Admission {
    limits: AdmissionLimits,
    counts: Arc<Mutex<Counts>>,
}

/// A counted connection slot of one source; dropping it frees the slot.
#[derive(Debug)]
pub struct Admitted {
    counts: Arc<Mutex<Counts>>,
    source: Source,
}

impl PartialEq for Admitted {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source && Arc::ptr_eq(&self.counts, &other.counts)
    }
}

impl Eq for Admitted {}

impl Admission {
    /// Admission with these limits and no connections.
    pub fn new(limits: AdmissionLimits) -> Admission {
        Admission {
            limits,
            counts: Arc::new(Mutex::new(Counts {
                by_source: HashMap::new(),
                elsewhere: HashMap::new(),
            })),
        }
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        // A plain map of counters: nothing a panic could leave inconsistent.
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Decides about a connection from `source`. `validated` says the client already proved
    /// its address (it came back with a Retry token); only unvalidated clients are asked to.
    pub fn decide(&self, source: Source, validated: bool, load: Load) -> Decision {
        if load.open >= self.limits.max_connections {
            return Decision::Refuse(Crowded::Full);
        }
        let mut counts = self.counts();
        let here = counts.by_source.get(&source).copied().unwrap_or(0);
        let elsewhere = counts.elsewhere.get(&source).copied().unwrap_or(0);
        if here.saturating_add(elsewhere) >= self.limits.per_source {
            return Decision::Refuse(Crowded::Source);
        }
        let loaded = load.open >= self.limits.max_connections / 2 || load.handshaking >= HANDSHAKE_LOAD;
        let retry = match self.limits.retry {
            RetryMode::Always => true,
            RetryMode::UnderLoad => loaded,
            RetryMode::Never => false,
        };
        if retry && !validated {
            return Decision::Retry;
        }
        *counts.by_source.entry(source).or_insert(0) += 1;
        Decision::Accept(Admitted {
            counts: self.counts.clone(),
            source,
        })
    }

    /// Connections counted for `source` right now (on this node).
    pub fn connections_of(&self, source: Source) -> u32 {
        self.counts().by_source.get(&source).copied().unwrap_or(0)
    }

    /// Every source's connections on this node, for the other nodes of a cluster.
    pub fn local_counts(&self) -> Vec<(Source, u32)> {
        self.counts().by_source.iter().map(|(s, n)| (*s, *n)).collect()
    }

    /// The sources' connections on the other nodes, as the cluster has them now (empty when
    /// unknown: the cap then holds per node).
    pub fn set_elsewhere(&self, elsewhere: HashMap<Source, u32>) {
        self.counts().elsewhere = elsewhere;
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.by_source.get_mut(&self.source) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.by_source.remove(&self.source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceMask;

    fn src(s: &str) -> Source {
        SourceMask::default().source(s.parse().unwrap())
    }

    fn limits(retry: RetryMode) -> AdmissionLimits {
        AdmissionLimits {
            max_connections: 10,
            per_source: 2,
            retry,
        }
    }

    const IDLE: Load = Load {
        open: 0,
        handshaking: 0,
    };

    #[test]
    fn per_source_cap_counts_until_the_guard_drops() {
        let a = Admission::new(limits(RetryMode::Never));
        let first = a.decide(src("192.0.2.1"), false, IDLE);
        let second = a.decide(src("192.0.2.1"), false, IDLE);
        assert!(matches!(first, Decision::Accept(_)) && matches!(second, Decision::Accept(_)));
        assert_eq!(
            a.decide(src("192.0.2.1"), true, IDLE),
            Decision::Refuse(Crowded::Source)
        );
        assert!(matches!(
            a.decide(src("192.0.2.2"), false, IDLE),
            Decision::Accept(_)
        ));
        assert_eq!(a.connections_of(src("192.0.2.1")), 2);
        drop(first);
        assert_eq!(a.connections_of(src("192.0.2.1")), 1);
        assert!(matches!(
            a.decide(src("192.0.2.1"), false, IDLE),
            Decision::Accept(_)
        ));
        let full = Load {
            open: 10,
            handshaking: 0,
        };
        assert_eq!(
            a.decide(src("192.0.2.3"), true, full),
            Decision::Refuse(Crowded::Full)
        );
    }

    #[test]
    fn connections_on_other_nodes_count_against_the_cap() {
        let a = Admission::new(limits(RetryMode::Never));
        let s = src("192.0.2.1");
        let _here = a.decide(s, false, IDLE);
        assert_eq!(a.local_counts(), [(s, 1)], "what this node shares");
        a.set_elsewhere([(s, 1)].into_iter().collect());
        assert_eq!(a.decide(s, false, IDLE), Decision::Refuse(Crowded::Source));
        // Another source, and the same one once the other node's connection is gone.
        assert!(matches!(
            a.decide(src("192.0.2.2"), false, IDLE),
            Decision::Accept(_)
        ));
        a.set_elsewhere(HashMap::new());
        assert!(matches!(a.decide(s, false, IDLE), Decision::Accept(_)));
        // A count the source parses back from, as the nodes exchange it.
        assert_eq!(s.to_string().parse::<Source>().unwrap(), s);
    }

    #[test]
    fn one_ipv6_prefix_is_one_source() {
        let a = Admission::new(limits(RetryMode::Never));
        let _x = a.decide(src("2001:db8:0:1::a"), false, IDLE);
        let _y = a.decide(src("2001:db8:0:1::b"), false, IDLE);
        assert_eq!(
            a.decide(src("2001:db8:0:1::c"), false, IDLE),
            Decision::Refuse(Crowded::Source)
        );
        assert!(matches!(
            a.decide(src("2001:db8:0:2::a"), false, IDLE),
            Decision::Accept(_)
        ));
    }

    #[test]
    fn retry_modes() {
        let s = src("192.0.2.1");
        let always = Admission::new(limits(RetryMode::Always));
        assert_eq!(always.decide(s, false, IDLE), Decision::Retry);
        assert!(matches!(always.decide(s, true, IDLE), Decision::Accept(_)));

        let under_load = Admission::new(limits(RetryMode::UnderLoad));
        assert!(matches!(under_load.decide(s, false, IDLE), Decision::Accept(_)));
        let half = Load {
            open: 5,
            handshaking: 0,
        };
        assert_eq!(under_load.decide(s, false, half), Decision::Retry);
        let handshakes = Load {
            open: 1,
            handshaking: HANDSHAKE_LOAD,
        };
        assert_eq!(
            under_load.decide(src("192.0.2.2"), false, handshakes),
            Decision::Retry
        );
        assert!(matches!(
            under_load.decide(src("192.0.2.2"), true, half),
            Decision::Accept(_)
        ));

        let never = Admission::new(limits(RetryMode::Never));
        assert!(matches!(
            never.decide(src("192.0.2.3"), false, half),
            Decision::Accept(_)
        ));
    }
}
