//! The directory: this node's answer to "may this source join, and where is this session".
//!
//! It owns the session table ([`Registry`]) and, on a cluster node, the handle on the
//! cluster's shared state ([`Cluster`]). What a viewer gets from what they say — join here,
//! go to another node, or be refused — is decided by pure functions ([`may_join`],
//! [`asks_cluster`], [`route_id`], [`route_tag`]) tested without sockets or Redis; the async
//! methods only fetch the cluster's answers and feed them in.
//!
//! A viewer whose credential is refused is never told where a session lives (a redirect
//! would tell it the ID is live): it gets the registry's answer, the same as for any ID.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ponte_wire::rendezvous::{NodeAddress, Refusal};
use ponte_wire::{DeviceTag, SessionId};
use tracing::{debug, warn};

use crate::cluster::{Cluster, ClusterError, Joinable, Located, RateLimit};
use crate::registry::Registry;
use crate::source::Source;

/// Where a viewer goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// This node answers for the session: its registry pairs the viewer or refuses it (with
    /// the usual answer for an unknown ID when it does not hold the session).
    Here(SessionId),
    /// The session waits on the node at this address: the viewer is redirected there, where
    /// it proves its credential again.
    Redirect(NodeAddress),
    /// The viewer is refused.
    Refuse(Refusal),
}

/// What the cluster's join limit says of a join: refused only when Redis answered that the
/// source is over it. Without Redis the node's own join limits still hold.
pub fn may_join(taken: Result<Result<(), Refusal>, ClusterError>) -> Result<(), Refusal> {
    match taken {
        Ok(Err(refusal)) => Err(refusal),
        Ok(Ok(())) | Err(_) => Ok(()),
    }
}

/// Whether a join by ID needs the cluster's word: only for a session this node does not
/// hold, and only for a viewer whose credential passed.
pub fn asks_cluster(held_here: bool, credential_ok: bool) -> bool {
    credential_ok && !held_here
}

/// What to do with a viewer for an entry the cluster located: the session's node when it is
/// live and certified for its address; this node's answer when nobody else holds it (or its
/// node is gone); a refusal when the entry names a node that cannot be trusted with viewers.
pub fn follow(located: &Located) -> Option<Route> {
    match located {
        Located::Node(node) => Some(Route::Redirect(node.clone())),
        Located::Nowhere | Located::Gone { .. } => None,
        Located::Uncertified { .. } => Some(Route::Refuse(Refusal::ClusterUnavailable)),
    }
}

/// Where a viewer joining session `id`, which this node does not hold, goes, from what the
/// cluster said. A join by ID the cluster cannot place is refused: its session may wait on
/// another node.
pub fn route_id(id: SessionId, located: Result<&Located, &ClusterError>) -> Route {
    match located {
        Ok(located) => follow(located).unwrap_or(Route::Here(id)),
        Err(_) => Route::Refuse(Refusal::ClusterUnavailable),
    }
}

/// Where a viewer joining by device tag goes: `found` is this node's lookup, `located` what
/// the cluster said when the tag is not here (`None`: not asked, or Redis did not answer, and
/// this node's answer stands).
pub fn route_tag(found: Result<SessionId, Refusal>, located: Option<&Located>) -> Route {
    if let Some(route) = located.and_then(follow) {
        return route;
    }
    match found {
        Ok(session) => Route::Here(session),
        Err(reason) => Route::Refuse(reason),
    }
}

/// How often a held resume lookup ([`Directory::route_resume`]) looks again.
const RESUME_LOOK: Duration = Duration::from_millis(50);

/// A change of a session that the cluster must hear of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterUpdate {
    /// It became joinable, or not.
    Joinable(Joinable),
    /// It ended.
    Ended,
}

/// The session table, and the cluster when this node is one of a cluster's.
#[derive(Debug)]
pub struct Directory<A, V> {
    registry: Mutex<Registry<A, V>>,
    cluster: Option<Arc<Cluster>>,
    /// How long a session can be joined, which the cluster's claims outlive.
    pairing_ttl: Duration,
    /// Cluster entries not followed (see [`Directory::redirects_refused`]).
    redirects_refused: AtomicU64,
}

impl<A: Clone, V> Directory<A, V> {
    /// A directory over `registry`, sharing state with `cluster` if there is one.
    pub fn new(registry: Registry<A, V>, cluster: Option<Arc<Cluster>>, pairing_ttl: Duration) -> Self {
        Directory {
            registry: Mutex::new(registry),
            cluster,
            pairing_ttl,
            redirects_refused: AtomicU64::new(0),
        }
    }

    /// This node's session table.
    pub fn registry(&self) -> MutexGuard<'_, Registry<A, V>> {
        // A panic while holding the lock cannot leave the table half-updated in a way that
        // matters more than stopping the relay would.
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cluster, when this node is one of a cluster's.
    pub fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.cluster.as_ref()
    }

    /// Joins not redirected to the node the cluster named: it was gone, or its entry was not
    /// certified for its address.
    pub fn redirects_refused(&self) -> u64 {
        self.redirects_refused.load(Ordering::Relaxed)
    }

    /// Whether `source` may try a join now, by the cluster-wide join limit (`limit`).
    pub async fn may_join(&self, source: Source, limit: RateLimit) -> Result<(), Refusal> {
        match &self.cluster {
            Some(cluster) => may_join(cluster.take_join(source, limit).await),
            None => Ok(()),
        }
    }

    /// Where a viewer joining session `id` goes; `credential_ok`: its credential passed.
    pub async fn route_id(&self, id: SessionId, credential_ok: bool) -> Route {
        let Some(cluster) = &self.cluster else {
            return Route::Here(id);
        };
        if !asks_cluster(self.registry().contains(id), credential_ok) {
            return Route::Here(id);
        }
        let located = cluster.locate(id).await;
        match &located {
            Ok(l) => self.note(&id, l),
            Err(e) => debug!(session = %id, "join refused: {e}"),
        }
        route_id(id, located.as_ref())
    }

    /// Where a viewer from `source` joining by tag `tag` goes: a device tag (`metered`: each
    /// lookup costs a token of the source's device-lookup bucket) or a resume slot (a token of
    /// its join bucket).
    pub async fn route_tag(&self, tag: DeviceTag, source: Source, now: Instant, metered: bool) -> Route {
        let found = match metered {
            true => self.registry().find_device(tag, source, now),
            false => self.registry().find_resume(tag, source, now),
        };
        // Not here: on a cluster, the agent may wait on another node.
        let located = match &self.cluster {
            Some(cluster) if found == Err(Refusal::UnknownSession) => cluster.locate_device(tag).await.ok(),
            _ => None,
        };
        if let Some(l) = &located {
            self.note(&tag, l);
        }
        route_tag(found, located.as_ref())
    }

    /// Where a viewer from `source` looking under resume slot `slot` goes: as
    /// [`Directory::route_tag`] (one join token), but while nobody waits there the answer is
    /// held up to `hold`, looking again every [`RESUME_LOOK`] at no further cost — so a viewer
    /// is paired as soon as its agent is back rather than at its next try. The cluster is
    /// asked every tenth look (twice a second).
    pub async fn route_resume(&self, slot: DeviceTag, source: Source, hold: Duration) -> Route {
        let deadline = Instant::now() + hold;
        let mut route = self.route_tag(slot, source, Instant::now(), false).await;
        let mut looks = 0u32;
        while route == Route::Refuse(Refusal::UnknownSession) && Instant::now() < deadline {
            tokio::time::sleep(RESUME_LOOK).await;
            looks += 1;
            let found = self
                .registry()
                .resume_waiting(slot)
                .ok_or(Refusal::UnknownSession);
            let located = match &self.cluster {
                Some(cluster) if found.is_err() && looks.is_multiple_of(10) => {
                    cluster.locate_device(slot).await.ok()
                }
                _ => None,
            };
            route = route_tag(found, located.as_ref());
        }
        route
    }

    /// Counts and logs an entry not followed for `what`: a node that is gone is expected now
    /// and then, an uncertified one means a misconfigured node or someone writing the
    /// cluster's Redis.
    fn note(&self, what: &dyn std::fmt::Display, located: &Located) {
        match located {
            Located::Node(_) | Located::Nowhere => {}
            Located::Gone { node } => {
                self.redirects_refused.fetch_add(1, Ordering::Relaxed);
                crate::metrics::redirect_refused("node_gone");
                debug!(%what, ?node, "not redirected: its node no longer heartbeats");
            }
            Located::Uncertified { node, why } => {
                self.redirects_refused.fetch_add(1, Ordering::Relaxed);
                crate::metrics::redirect_refused("uncertified");
                warn!(%what, ?node, "not redirected to that node: {why}");
            }
        }
    }

    /// Tells the cluster, in the background, what became of session `id` (of an agent from
    /// `source`). A lost update is repaired by the next heartbeat, which rewrites every claim.
    pub fn tell_cluster(&self, id: SessionId, source: Source, update: ClusterUpdate) {
        let Some(cluster) = self.cluster.clone() else {
            return;
        };
        let ttl = self.pairing_ttl;
        tokio::spawn(async move {
            let done = match update {
                ClusterUpdate::Joinable(j) => cluster.set_joinable(id, source, j, ttl).await,
                ClusterUpdate::Ended => cluster.ended(id, source, ttl).await,
            };
            if let Err(e) = done {
                debug!(session = %id, "cluster update deferred to the next heartbeat: {e}");
            }
        });
    }

    /// Tells the cluster, in the background, that no agent of this node waits under `tag` any
    /// longer (unless one still does); the heartbeat repairs a lost update.
    pub fn release_device(&self, tag: DeviceTag) {
        if self.registry().holds_device(tag) {
            return;
        }
        let Some(cluster) = self.cluster.clone() else {
            return;
        };
        tokio::spawn(async move {
            if let Err(e) = cluster.device(tag, false).await {
                debug!("cluster device update deferred to the next heartbeat: {e}");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::Uncertified;

    fn id(n: u32) -> SessionId {
        SessionId::try_from(100_000_000 + n).unwrap()
    }

    fn node() -> NodeAddress {
        "relay-2.example:4433".parse().unwrap()
    }

    #[test]
    fn only_a_source_redis_says_is_over_the_limit_is_refused() {
        assert_eq!(may_join(Ok(Ok(()))), Ok(()));
        let limited = Refusal::RateLimited { retry_after_secs: 5 };
        assert_eq!(may_join(Ok(Err(limited))), Err(limited));
        // Without Redis the node's own limits are the ones that hold.
        let down = ClusterError::Unavailable("timed out".into());
        assert_eq!(may_join(Err(down)), Ok(()));
    }

    #[test]
    fn a_refused_credential_never_learns_where_a_session_lives() {
        assert!(asks_cluster(false, true));
        assert!(!asks_cluster(false, false));
        assert!(!asks_cluster(true, true));
        assert!(!asks_cluster(true, false));
    }

    #[test]
    fn joins_by_id_follow_only_live_certified_nodes() {
        let here = Route::Here(id(7));
        assert_eq!(
            route_id(id(7), Ok(&Located::Node(node()))),
            Route::Redirect(node())
        );
        assert_eq!(route_id(id(7), Ok(&Located::Nowhere)), here);
        let gone = Located::Gone { node: "b".into() };
        assert_eq!(route_id(id(7), Ok(&gone)), here);
        let forged = Located::Uncertified {
            node: "b".into(),
            why: Uncertified::NotSigned,
        };
        assert_eq!(
            route_id(id(7), Ok(&forged)),
            Route::Refuse(Refusal::ClusterUnavailable)
        );
        let down = ClusterError::Unavailable("timed out".into());
        assert_eq!(
            route_id(id(7), Err(&down)),
            Route::Refuse(Refusal::ClusterUnavailable)
        );
    }

    #[test]
    fn joins_by_tag_keep_this_nodes_answer_unless_the_cluster_places_them() {
        let unknown = Err(Refusal::UnknownSession);
        assert_eq!(route_tag(Ok(id(3)), None), Route::Here(id(3)));
        assert_eq!(route_tag(unknown, None), Route::Refuse(Refusal::UnknownSession));
        assert_eq!(
            route_tag(unknown, Some(&Located::Node(node()))),
            Route::Redirect(node())
        );
        assert_eq!(
            route_tag(unknown, Some(&Located::Nowhere)),
            Route::Refuse(Refusal::UnknownSession)
        );
        let gone = Located::Gone { node: "b".into() };
        assert_eq!(
            route_tag(unknown, Some(&gone)),
            Route::Refuse(Refusal::UnknownSession)
        );
        let forged = Located::Uncertified {
            node: "b".into(),
            why: Uncertified::NoClusterKey,
        };
        assert_eq!(
            route_tag(unknown, Some(&forged)),
            Route::Refuse(Refusal::ClusterUnavailable)
        );
        // A lookup over the limit is refused as such.
        let limited = Refusal::RateLimited { retry_after_secs: 9 };
        assert_eq!(route_tag(Err(limited), None), Route::Refuse(limited));
    }

    #[tokio::test]
    async fn a_single_relay_answers_every_join_itself() {
        let limits = crate::config::Config::new("127.0.0.1:0".parse().unwrap(), ".".into()).registry;
        let directory: Directory<u32, u32> =
            Directory::new(Registry::new(limits), None, Duration::from_secs(60));
        let source = crate::source::SourceMask::default().source([10, 0, 0, 1].into());
        let now = Instant::now();
        let (session, _) = directory
            .registry()
            .register(|_| 1, source, now, &mut ponte_wire::os_rng())
            .unwrap();
        let tag = DeviceTag([7; 16]);
        directory.registry().claim_device(session, tag);
        let limit = RateLimit {
            rate: 0.0,
            burst: 0.0,
        };
        assert_eq!(directory.may_join(source, limit).await, Ok(()));
        assert_eq!(directory.route_id(id(1), true).await, Route::Here(id(1)));
        assert_eq!(
            directory.route_tag(tag, source, now, true).await,
            Route::Here(session)
        );
        assert_eq!(
            directory.route_tag(DeviceTag([8; 16]), source, now, true).await,
            Route::Refuse(Refusal::UnknownSession)
        );
        // Device lookups are metered (3 at once by default); resume lookups are not.
        assert_eq!(
            directory.route_tag(tag, source, now, true).await,
            Route::Here(session)
        );
        let metered = directory.route_tag(tag, source, now, true).await;
        assert!(
            matches!(metered, Route::Refuse(Refusal::RateLimited { .. })),
            "{metered:?}"
        );
        for _ in 0..5 {
            assert_eq!(
                directory.route_tag(tag, source, now, false).await,
                Route::Here(session)
            );
        }
        assert_eq!(directory.redirects_refused(), 0);
    }
}
