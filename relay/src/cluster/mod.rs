//! Relay clusters: several nodes behind one name share their session registry and per-source
//! limits in Redis. No consensus of our own: every decision that must hold cluster-wide is one
//! atomic Lua script on the Redis server (claim an ID, take a token, count a waiting session).
//!
//! What lives where:
//! - each node keeps its own sessions in memory ([`crate::registry`]) and forwards them itself;
//!   a session never spans nodes, because a viewer that joins on another node is *redirected*
//!   to the owning node ([`ponte_wire::rendezvous::RelayMessage::Redirect`]) — see
//!   docs/PROTOCOL.md for why redirect and not forwarding;
//! - Redis holds, per session ID, which node owns it and whether it can be joined; per node,
//!   its public address, certificate and health and how many connections each source holds
//!   there; per
//!   source, token buckets and its waiting sessions; and the operator's assistant accounts,
//!   which every node reads again at each heartbeat.
//!
//! Whoever can write the Redis can write any of it, so a node sends a viewer only to a node
//! that heartbeats, at the address that node's certificate — signed by the cluster key — was
//! certified for ([`Located`]); it does not take an address from Redis on trust.
//!
//! Every entry expires: a node renews its own every [`HEARTBEAT`], so the entries of a node
//! that dies are gone within [`SESSION_LEASE`] and its ID claims with them. When Redis cannot
//! be reached, a node keeps forwarding what it holds, refuses what needs the cluster
//! ([`Refusal::ClusterUnavailable`]) and rewrites its entries as soon as Redis answers again.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use ponte_transport::tls::CertFingerprint;
use ponte_wire::rendezvous::{MAX_NODE_ADDRESS, NodeAddress, Refusal};
use ponte_wire::{DeviceTag, SessionId};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use rustls::pki_types::CertificateDer;
use tracing::{info, warn};

use crate::source::Source;

/// How long a node's claim on a session ID lasts without renewal: the time after which the
/// sessions of a dead node are forgotten by the cluster.
pub const SESSION_LEASE: Duration = Duration::from_secs(15);

/// How long a node's own entry (address, health) lasts without renewal: after this, a dead
/// node is no longer a redirect target.
pub const NODE_LEASE: Duration = Duration::from_secs(6);

/// How often a node renews its entries and its sessions' claims.
pub const HEARTBEAT: Duration = Duration::from_secs(2);

/// The longest a node waits for Redis in one operation before treating it as unreachable.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(1);

/// Most session claims renewed in one script call (bounds one Redis command's size).
const RENEW_CHUNK: usize = 1000;

/// Key prefix of everything Ponte keeps in Redis.
pub const PREFIX: &str = "ponte:";

ponte_wire::validated_string! {
    /// A node's name in the cluster: 1 to 63 letters, digits, `-`, `_` or `.`.
    pub struct NodeName;
    error: BadNodeName,
    valid: |s| {
        (1..=63).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    },
}

/// A node name that breaks the rules of [`NodeName`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a node name is 1 to 63 letters, digits, '-', '_' or '.'")]
pub struct BadNodeName;

/// How a node joins its cluster.
#[derive(Clone)]
pub struct ClusterSettings {
    /// `redis://HOST:PORT/DB` (or `rediss://`, `redis+unix://`).
    pub url: String,
    /// This node's name.
    pub node: NodeName,
    /// Where clients reach this node (sent to viewers redirected here).
    pub public_addr: NodeAddress,
}

impl fmt::Debug for ClusterSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a password.
        f.debug_struct("ClusterSettings")
            .field("node", &self.node)
            .field("public_addr", &self.public_addr)
            .finish_non_exhaustive()
    }
}

/// The cluster's shared state could not be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClusterError {
    /// Redis did not answer in time or refused the operation.
    #[error("the cluster's Redis is unreachable: {0}")]
    Unavailable(String),
    /// The Redis URL is not usable.
    #[error("bad cluster URL: {0}")]
    BadUrl(String),
}

impl From<redis::RedisError> for ClusterError {
    fn from(e: redis::RedisError) -> Self {
        ClusterError::Unavailable(e.to_string())
    }
}

/// A token-bucket limit as Redis applies it (GCRA): one request every `interval`, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Sustained rate, per second.
    pub rate: f64,
    /// Requests allowed at once.
    pub burst: f64,
}

impl RateLimit {
    fn interval_ms(&self) -> u64 {
        if self.rate <= 0.0 {
            return u64::MAX / 4;
        }
        ((1000.0 / self.rate).ceil() as u64).max(1)
    }

    fn tolerance_ms(&self) -> u64 {
        (self.interval_ms() as f64 * self.burst.max(1.0)).min((u64::MAX / 4) as f64) as u64
    }
}

/// What a registration asks of the cluster.
#[derive(Debug, Clone, Copy)]
pub struct RegisterLimits {
    /// Registrations per source; `None` when the caller took the source's registration token
    /// already ([`Cluster::take_registration`]).
    pub rate: Option<RateLimit>,
    /// Waiting sessions one source may hold, cluster-wide.
    pub waiting_per_source: u32,
    /// How long the new session can be joined.
    pub pairing_ttl: Duration,
}

/// The state of a session as the cluster sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Joinable {
    /// A viewer may join it (on its node).
    Yes,
    /// Paired, vacated or used up: joins get the same answer as an unknown ID.
    No,
}

/// One node's entry, as `cluster status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    /// The node's name.
    pub name: String,
    /// Its public address.
    pub addr: String,
    /// Sessions waiting for a viewer.
    pub waiting: u64,
    /// Sessions paired.
    pub paired: u64,
    /// Whether it is draining (stopping after its sessions end).
    pub draining: bool,
    /// Milliseconds since its last heartbeat (by Redis' clock).
    pub last_seen_ms: u64,
}

/// What a node reports about itself at each heartbeat.
#[derive(Debug, Clone, Copy, Default)]
pub struct Health {
    /// Sessions waiting for a viewer.
    pub waiting: usize,
    /// Sessions paired.
    pub paired: usize,
    /// Stopping: takes no new sessions.
    pub draining: bool,
}

/// The scripts' shared functions: `clock()`, milliseconds by the Redis server's clock (so
/// that every node agrees on expiry), and `gcra(...)`, a token bucket in one key.
macro_rules! script {
    ($file:literal) => {
        concat!(
            include_str!("clock.lua"),
            include_str!("gcra.lua"),
            include_str!($file)
        )
    };
}

/// Each script's keys, arguments and answer are described at the top of its file.
const REGISTER_LUA: &str = script!("register.lua");
const RATE_LUA: &str = script!("rate.lua");
const LOCATE_LUA: &str = script!("locate.lua");
const DEVICE_LUA: &str = script!("device.lua");
const UPDATE_LUA: &str = script!("update.lua");
const RENEW_LUA: &str = script!("renew.lua");
const HEARTBEAT_LUA: &str = script!("heartbeat.lua");
const CONNECTIONS_LUA: &str = script!("connections.lua");

/// Where the cluster says a viewer can join a session (or a device tag's session) that this
/// node does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Located {
    /// On the live node at this address, the one its certificate was certified for.
    Node(NodeAddress),
    /// Nowhere else: unknown, ended, paired, used up, or held by this node.
    Nowhere,
    /// Held by a node that no longer heartbeats (dead or stopped): its sessions are gone.
    Gone {
        /// The node's name, as the entry has it.
        node: String,
    },
    /// Held by a node whose entry cannot be trusted with a viewer: not redirected.
    Uncertified {
        /// The node's name, as the entry has it.
        node: String,
        /// What is wrong with its entry.
        why: Uncertified,
    },
}

/// Why a node's entry in the cluster's Redis is not one this node redirects viewers to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Uncertified {
    /// This node has no cluster certificate to check other nodes' certificates with.
    #[error("this node's certificate is not signed by a cluster key, so it cannot check any other node's")]
    NoClusterKey,
    /// The published certificate is missing, or not signed (now) by this cluster's key.
    #[error("its published certificate is missing or not signed by this cluster's key")]
    NotSigned,
    /// The published address is not one the certificate was certified for.
    #[error(
        "its published address {published:?} is not the one its certificate was certified for ({certified:?})"
    )]
    OtherAddress {
        /// The address the entry publishes (as text, whatever was written).
        published: String,
        /// The addresses its certificate names.
        certified: Vec<String>,
    },
}

/// A node's entry as the locate script returns it: name, published address, published
/// certificate, live (1) or not. Bytes: whoever can write Redis may have written anything.
type NodeEntry = (Vec<u8>, Vec<u8>, Vec<u8>, u8);

/// This node's certificate as the cluster sees it: published at each heartbeat, and the
/// cluster certificate other nodes' are checked against.
#[derive(Default)]
struct Certification {
    /// This node's own certificate (DER).
    node: Vec<u8>,
    /// The cluster certificate that signed it, and its key's fingerprint (none without a
    /// cluster key).
    cluster: Option<(CertificateDer<'static>, CertFingerprint)>,
}

/// A node's handle on the cluster's shared state.
pub struct Cluster {
    settings: ClusterSettings,
    certification: Certification,
    redis: ConnectionManager,
    register: redis::Script,
    rate: redis::Script,
    locate: redis::Script,
    update: redis::Script,
    renew: redis::Script,
    heartbeat: redis::Script,
    connections: redis::Script,
    device: redis::Script,
    /// Round trips to Redis so far (the benchmark's "Redis operations per session").
    operations: AtomicU64,
    /// Whether the last operation reached Redis (logged on each change).
    reachable: AtomicBool,
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn session_key(id: SessionId) -> String {
    format!("{PREFIX}session:{id}")
}

fn node_key(name: &str) -> String {
    format!("{PREFIX}node:{name}")
}

fn nodes_key() -> String {
    format!("{PREFIX}nodes")
}

fn device_key(tag: DeviceTag) -> String {
    format!("{PREFIX}device:{tag}")
}

fn connections_key(node: &str) -> String {
    format!("{PREFIX}connections:{node}")
}

fn live_key(node: &str) -> String {
    format!("{PREFIX}live:{node}")
}

fn ends_key(node: &str) -> String {
    format!("{PREFIX}ends:{node}")
}

fn assistants_key() -> String {
    format!("{PREFIX}assistants")
}

fn waiting_key(source: Source) -> String {
    format!("{PREFIX}waiting:{source}")
}

fn bucket_key(kind: &str, source: Source) -> String {
    format!("{PREFIX}rate:{kind}:{source}")
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 4).max(1)
}

/// A connection manager that reconnects by itself and gives up on each operation quickly,
/// so a node never waits long on a Redis that is gone.
fn connect(url: &str) -> Result<ConnectionManager, ClusterError> {
    let client = redis::Client::open(url).map_err(|e| ClusterError::BadUrl(e.to_string()))?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(OPERATION_TIMEOUT))
        .set_response_timeout(Some(OPERATION_TIMEOUT))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500));
    ConnectionManager::new_lazy_with_config(client, config).map_err(|e| ClusterError::BadUrl(e.to_string()))
}

impl Cluster {
    /// A handle for this node, whose TLS certificate chain is `chain` (node certificate
    /// first, then the cluster certificate that signed it). Does not wait for Redis: a node
    /// starts (and holds its own sessions) while Redis is down, and uses it once it answers.
    pub fn new(
        settings: ClusterSettings,
        chain: &[CertificateDer<'static>],
    ) -> Result<Arc<Cluster>, ClusterError> {
        let redis = connect(&settings.url)?;
        let certification = match chain.split_first() {
            Some((node, rest)) => Certification {
                node: node.to_vec(),
                cluster: ponte_transport::tls::signing_cluster(node, rest)
                    .and_then(|fingerprint| Some((rest.last()?.clone(), fingerprint))),
            },
            None => Certification::default(),
        };
        Ok(Arc::new(Cluster {
            settings,
            certification,
            redis,
            register: redis::Script::new(REGISTER_LUA),
            rate: redis::Script::new(RATE_LUA),
            locate: redis::Script::new(LOCATE_LUA),
            update: redis::Script::new(UPDATE_LUA),
            renew: redis::Script::new(RENEW_LUA),
            heartbeat: redis::Script::new(HEARTBEAT_LUA),
            connections: redis::Script::new(CONNECTIONS_LUA),
            device: redis::Script::new(DEVICE_LUA),
            operations: AtomicU64::new(0),
            reachable: AtomicBool::new(true),
        }))
    }

    /// This node's name.
    pub fn node(&self) -> &NodeName {
        &self.settings.node
    }

    /// This node's public address.
    pub fn public_addr(&self) -> &NodeAddress {
        &self.settings.public_addr
    }

    /// Round trips to Redis made so far.
    pub fn operations(&self) -> u64 {
        self.operations.load(Ordering::Relaxed)
    }

    /// Whether the last operation reached Redis.
    pub fn reachable(&self) -> bool {
        self.reachable.load(Ordering::Relaxed)
    }

    /// Runs one script invocation with a deadline, noting whether Redis answered.
    async fn run<T: redis::FromRedisValue>(
        &self,
        invocation: redis::ScriptInvocation<'_>,
    ) -> Result<T, ClusterError> {
        self.operations.fetch_add(1, Ordering::Relaxed);
        crate::metrics::cluster_operation();
        let mut redis = self.redis.clone();
        let result =
            match tokio::time::timeout(OPERATION_TIMEOUT * 2, invocation.invoke_async(&mut redis)).await {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(e)) => Err(ClusterError::from(e)),
                Err(_) => Err(ClusterError::Unavailable("timed out".into())),
            };
        let ok = result.is_ok();
        if self.reachable.swap(ok, Ordering::Relaxed) != ok {
            match &result {
                Ok(_) => info!("cluster state reachable again"),
                Err(e) => warn!("{e}; holding current sessions, refusing new ones"),
            }
            crate::metrics::cluster_up(ok);
        }
        result
    }

    /// Claims `id` for a new session of `source` on this node, after the cluster-wide
    /// registration limits. `Ok(None)`: the ID is taken (pick another).
    pub async fn register(
        &self,
        id: SessionId,
        source: Source,
        limits: &RegisterLimits,
    ) -> Result<Option<Result<(), Refusal>>, ClusterError> {
        let mut call = self.register.prepare_invoke();
        call.key(session_key(id))
            .key(bucket_key("register", source))
            .key(waiting_key(source))
            .arg(self.settings.node.as_str())
            .arg(millis(SESSION_LEASE.max(limits.pairing_ttl)))
            .arg(limits.rate.map_or(0, |r| r.interval_ms()))
            .arg(limits.rate.map_or(0, |r| r.tolerance_ms()))
            .arg(limits.waiting_per_source)
            .arg(millis(limits.pairing_ttl))
            .arg(id.to_string())
            .arg(if limits.rate.is_some() { "take" } else { "paid" });
        let (code, wait): (u8, u64) = self.run(call).await?;
        Ok(match code {
            0 => None,
            1 => Some(Err(rate_limited(wait))),
            2 => Some(Err(Refusal::Capacity)),
            _ => Some(Ok(())),
        })
    }

    /// Takes a registration token for `source` from the cluster-wide bucket, before anything
    /// is spent on the registration; [`Cluster::register`] with `rate: None` then does not take
    /// another.
    pub async fn take_registration(
        &self,
        source: Source,
        limit: RateLimit,
    ) -> Result<Result<(), Refusal>, ClusterError> {
        self.take("register", source, limit).await
    }

    /// Takes a join token for `source` from the cluster-wide bucket.
    pub async fn take_join(
        &self,
        source: Source,
        limit: RateLimit,
    ) -> Result<Result<(), Refusal>, ClusterError> {
        self.take("join", source, limit).await
    }

    /// Takes a token from `source`'s cluster-wide bucket of `kind`.
    async fn take(
        &self,
        kind: &str,
        source: Source,
        limit: RateLimit,
    ) -> Result<Result<(), Refusal>, ClusterError> {
        let mut call = self.rate.prepare_invoke();
        call.key(bucket_key(kind, source))
            .arg(limit.interval_ms())
            .arg(limit.tolerance_ms());
        let wait: u64 = self.run(call).await?;
        Ok(if wait == 0 {
            Ok(())
        } else {
            Err(rate_limited(wait))
        })
    }

    /// Where session `id` can be joined, if on another node.
    pub async fn locate(&self, id: SessionId) -> Result<Located, ClusterError> {
        self.locate_key(session_key(id)).await
    }

    /// Where the agent waiting under device tag `tag` can be joined, if on another node.
    pub async fn locate_device(&self, tag: DeviceTag) -> Result<Located, ClusterError> {
        self.locate_key(device_key(tag)).await
    }

    async fn locate_key(&self, key: String) -> Result<Located, ClusterError> {
        let mut call = self.locate.prepare_invoke();
        call.key(key)
            .key(nodes_key())
            .arg(format!("{PREFIX}node:"))
            .arg(millis(NODE_LEASE));
        let found: Option<NodeEntry> = self.run(call).await?;
        Ok(match found {
            None => Located::Nowhere,
            Some((node, addr, cert, live)) => self.judge(&node, &addr, &cert, live == 1),
        })
    }

    /// Whether a viewer may be sent to the node `node` holding a session, from its entry:
    /// only to a live node, at the address its certificate, signed by this cluster's key, was
    /// certified for. The nodes wrote their entries, but whoever can write Redis could have
    /// too: an address alone could send viewers anywhere.
    fn judge(&self, node: &[u8], addr: &[u8], cert: &[u8], live: bool) -> Located {
        let node = String::from_utf8_lossy(node).into_owned();
        if node == self.settings.node.as_str() {
            return Located::Nowhere;
        }
        if !live {
            return Located::Gone { node };
        }
        let uncertified = |why| Located::Uncertified {
            node: node.clone(),
            why,
        };
        let Some((cluster_cert, fingerprint)) = &self.certification.cluster else {
            return uncertified(Uncertified::NoClusterKey);
        };
        let signed = ponte_transport::tls::signing_cluster(
            &CertificateDer::from(cert),
            std::slice::from_ref(cluster_cert),
        );
        if signed != Some(*fingerprint) {
            return uncertified(Uncertified::NotSigned);
        }
        let published = String::from_utf8_lossy(addr).into_owned();
        let certified = crate::cert::certified_addresses(cert);
        match published.parse::<NodeAddress>() {
            Ok(addr) if certified.iter().any(|c| c.eq_ignore_ascii_case(addr.as_str())) => {
                Located::Node(addr)
            }
            _ => uncertified(Uncertified::OtherAddress {
                published: published.chars().take(MAX_NODE_ADDRESS + 1).collect(),
                certified,
            }),
        }
    }

    /// An agent on this node registered under `tag` (`claim`), or the last one did no longer.
    pub async fn device(&self, tag: DeviceTag, claim: bool) -> Result<(), ClusterError> {
        let mut call = self.device.prepare_invoke();
        call.key(device_key(tag))
            .arg(self.settings.node.as_str())
            .arg(millis(SESSION_LEASE))
            .arg(if claim { "claim" } else { "release" });
        let _: u8 = self.run(call).await?;
        Ok(())
    }

    /// Records that session `id` (of an agent from `source`) became joinable or not.
    pub async fn set_joinable(
        &self,
        id: SessionId,
        source: Source,
        joinable: Joinable,
        pairing_ttl: Duration,
    ) -> Result<(), ClusterError> {
        let node = self.settings.node.as_str();
        let (value, op) = match joinable {
            Joinable::Yes => (node.to_owned(), "2"),
            Joinable::No => (format!("{node}!"), "1"),
        };
        let mut call = self.update.prepare_invoke();
        call.key(session_key(id))
            .key(waiting_key(source))
            .arg(node)
            .arg(value)
            .arg(millis(SESSION_LEASE.max(pairing_ttl)))
            .arg(op)
            .arg(id.to_string())
            .arg(millis(pairing_ttl));
        let _: u8 = self.run(call).await?;
        Ok(())
    }

    /// Session `id` ended: its ID stays out of reuse for `quarantine` (an assistant with an
    /// old ID must never land in a new customer's session), then is forgotten.
    pub async fn ended(
        &self,
        id: SessionId,
        source: Source,
        quarantine: Duration,
    ) -> Result<(), ClusterError> {
        let mut call = self.update.prepare_invoke();
        call.key(session_key(id))
            .key(waiting_key(source))
            .arg(self.settings.node.as_str())
            .arg("-")
            .arg(millis(quarantine))
            .arg("1")
            .arg(id.to_string())
            .arg(0);
        let _: u8 = self.run(call).await?;
        Ok(())
    }

    /// Renews this node's entry and the claims of the sessions and device tags it holds.
    pub async fn heartbeat(
        &self,
        health: Health,
        sessions: &[(SessionId, Joinable)],
        devices: &[DeviceTag],
    ) -> Result<(), ClusterError> {
        let node = self.settings.node.as_str();
        let mut call = self.heartbeat.prepare_invoke();
        call.key(node_key(node))
            .key(nodes_key())
            .arg(node)
            .arg(self.settings.public_addr.as_str())
            .arg(health.waiting)
            .arg(health.paired)
            .arg(u8::from(health.draining))
            .arg(millis(NODE_LEASE))
            .arg(self.certification.node.as_slice());
        let _: u8 = self.run(call).await?;
        let busy = format!("{node}!");
        for chunk in sessions.chunks(RENEW_CHUNK) {
            let mut call = self.renew.prepare_invoke();
            call.arg(node).arg(millis(SESSION_LEASE));
            for (id, _) in chunk {
                call.key(session_key(*id));
            }
            for (_, joinable) in chunk {
                call.arg(if *joinable == Joinable::Yes {
                    node
                } else {
                    busy.as_str()
                });
            }
            let _: u64 = self.run(call).await?;
        }
        // A tag another node claimed since is left to it.
        for chunk in devices.chunks(RENEW_CHUNK) {
            let mut call = self.renew.prepare_invoke();
            call.arg(node).arg(millis(SESSION_LEASE));
            for tag in chunk {
                call.key(device_key(*tag));
            }
            for _ in chunk {
                call.arg(node);
            }
            let _: u64 = self.run(call).await?;
        }
        Ok(())
    }

    /// Tells the cluster how many connections each source holds on this node, and returns
    /// how many each holds on the other nodes (sources the cluster does not know are left
    /// out).
    pub async fn share_connections(
        &self,
        here: &[(Source, u32)],
    ) -> Result<HashMap<Source, u32>, ClusterError> {
        let node = self.settings.node.as_str();
        let mut call = self.connections.prepare_invoke();
        call.key(connections_key(node))
            .key(nodes_key())
            .arg(node)
            .arg(millis(NODE_LEASE));
        for (source, n) in here {
            call.arg(source.to_string()).arg(*n);
        }
        let flat: Vec<(String, u64)> = self.run(call).await?;
        Ok(flat
            .into_iter()
            .filter_map(|(s, n)| Some((s.parse().ok()?, u32::try_from(n).unwrap_or(u32::MAX))))
            .collect())
    }

    /// Publishes this node's live sessions (their ledger rows as they stand) for the consoles
    /// of every node; the entry expires with the node's lease.
    pub async fn publish_live(&self, rows: &[crate::ledger::Row]) -> Result<(), ClusterError> {
        let mut rows: Vec<&crate::ledger::Row> = rows.iter().collect();
        rows.sort_by_key(|r| std::cmp::Reverse(r.registered));
        rows.truncate(MAX_LIVE_PUBLISHED);
        let json = serde_json::to_vec(&rows).map_err(|e| ClusterError::Unavailable(e.to_string()))?;
        self.operations.fetch_add(1, Ordering::Relaxed);
        crate::metrics::cluster_operation();
        let set = redis::cmd("SET")
            .arg(live_key(self.settings.node.as_str()))
            .arg(json)
            .arg("PX")
            .arg(millis(NODE_LEASE))
            .clone();
        query(&self.redis, &set, OPERATION_TIMEOUT * 2).await
    }

    /// The sessions other nodes' consoles asked this node to end: `(ledger row, words)`.
    /// Entries that are not such requests are dropped.
    pub async fn take_ends(&self) -> Result<Vec<(i64, String)>, ClusterError> {
        self.operations.fetch_add(1, Ordering::Relaxed);
        crate::metrics::cluster_operation();
        // LRANGE and LTRIM in one transaction (LPOP with a count needs Redis 6.2).
        let key = ends_key(self.settings.node.as_str());
        let mut pipe = redis::pipe();
        pipe.atomic()
            .lrange(&key, 0, ENDS_PER_HEARTBEAT as isize - 1)
            .ltrim(&key, ENDS_PER_HEARTBEAT as isize, -1)
            .ignore();
        let mut redis = self.redis.clone();
        let taken = tokio::time::timeout(OPERATION_TIMEOUT, pipe.query_async::<(Vec<Vec<u8>>,)>(&mut redis));
        let (entries,) = match taken.await {
            Ok(r) => r?,
            Err(_) => return Err(ClusterError::Unavailable("timed out".into())),
        };
        Ok(entries
            .iter()
            .filter_map(|entry| serde_json::from_slice(entry).ok())
            .collect())
    }

    /// The cluster's assistant accounts, as the lines of an assistants file (field: name).
    pub async fn assistant_lines(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>, ClusterError> {
        self.operations.fetch_add(1, Ordering::Relaxed);
        crate::metrics::cluster_operation();
        let read = redis::cmd("HGETALL").arg(assistants_key()).clone();
        query(&self.redis, &read, OPERATION_TIMEOUT * 2).await
    }

    /// Removes this node's entry (a node that stops cleanly is no redirect target).
    pub async fn leave(&self) -> Result<(), ClusterError> {
        let mut redis = self.redis.clone();
        let node = self.settings.node.as_str();
        let mut pipe = redis::pipe();
        pipe.del(node_key(node))
            .del(connections_key(node))
            .srem(nodes_key(), node);
        let removed = pipe.query_async::<()>(&mut redis);
        match tokio::time::timeout(OPERATION_TIMEOUT * 2, removed).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(ClusterError::Unavailable("timed out".into())),
        }
    }
}

fn rate_limited(wait_ms: u64) -> Refusal {
    Refusal::RateLimited {
        retry_after_secs: u32::try_from(wait_ms.div_ceil(1000).max(1)).unwrap_or(u32::MAX),
    }
}

/// One command, given up after `limit`.
async fn query<T: redis::FromRedisValue>(
    redis: &ConnectionManager,
    cmd: &redis::Cmd,
    limit: Duration,
) -> Result<T, ClusterError> {
    let mut redis = redis.clone();
    match tokio::time::timeout(limit, cmd.query_async(&mut redis)).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(ClusterError::Unavailable("timed out".into())),
    }
}

/// Most live sessions a node publishes for the consoles (the newest).
pub const MAX_LIVE_PUBLISHED: usize = 2_000;

/// Largest live-sessions entry a console reads, in bytes (what a node publishes is far less).
const MAX_LIVE_ENTRY: u64 = 4 << 20;

/// Most nodes whose live sessions a console shows.
pub const MAX_NODES_SHOWN: usize = 64;

/// The cluster's live sessions, as a console reads them from Redis.
#[derive(Debug, Default)]
pub struct LiveSessions {
    /// Each node's sessions, by node name.
    pub nodes: Vec<(String, Vec<crate::ledger::Row>)>,
    /// Nodes whose entry could not be read (too large, or not what a node writes).
    pub unreadable: Vec<String>,
}

/// Most end requests a node takes at one heartbeat (more wait for the next).
const ENDS_PER_HEARTBEAT: usize = 64;

/// A console's view of the cluster: every node's live sessions, and ending one on its node.
#[derive(Clone)]
pub struct ConsoleView {
    redis: ConnectionManager,
}

impl ConsoleView {
    /// The view of the cluster whose Redis is at `url`.
    pub fn open(url: &str) -> Result<ConsoleView, ClusterError> {
        Ok(ConsoleView { redis: connect(url)? })
    }

    /// The live sessions each live node published at its last heartbeat, by node name (at
    /// most [`MAX_NODES_SHOWN`] nodes). A node's entry that is too large or does not parse
    /// (Redis may hold anything) is left out and named in the second list.
    pub async fn live(&self) -> Result<LiveSessions, ClusterError> {
        let limit = Duration::from_secs(5);
        let mut names: Vec<String> =
            query(&self.redis, redis::cmd("SMEMBERS").arg(nodes_key()), limit).await?;
        names.sort();
        names.truncate(MAX_NODES_SHOWN);
        if names.is_empty() {
            return Ok(LiveSessions::default());
        }
        let keys: Vec<String> = names.iter().map(|n| live_key(n)).collect();
        let sizes: Vec<u64> = {
            let mut pipe = redis::pipe();
            for key in &keys {
                pipe.strlen(key);
            }
            let mut redis = self.redis.clone();
            match tokio::time::timeout(limit, pipe.query_async(&mut redis)).await {
                Ok(r) => r?,
                Err(_) => return Err(ClusterError::Unavailable("timed out".into())),
            }
        };
        let mut live = LiveSessions::default();
        for ((name, key), size) in names.into_iter().zip(keys).zip(sizes) {
            if size == 0 {
                continue;
            }
            if size > MAX_LIVE_ENTRY {
                live.unreadable.push(name);
                continue;
            }
            let entry: Option<Vec<u8>> = query(&self.redis, redis::cmd("GET").arg(key), limit).await?;
            match entry.map(|e| serde_json::from_slice::<Vec<crate::ledger::Row>>(&e)) {
                Some(Ok(mut rows)) => {
                    rows.truncate(MAX_LIVE_PUBLISHED);
                    live.nodes.push((name, rows));
                }
                Some(Err(_)) => live.unreadable.push(name),
                None => {}
            }
        }
        Ok(live)
    }

    /// Asks `node` to end the session of ledger row `row` with `words`; it does at its next
    /// heartbeat. A request for a node that does not take it soon expires.
    pub async fn request_end(&self, node: &str, row: i64, words: &str) -> Result<(), ClusterError> {
        let entry =
            serde_json::to_vec(&(row, words)).map_err(|e| ClusterError::Unavailable(e.to_string()))?;
        let mut pipe = redis::pipe();
        pipe.rpush(ends_key(node), entry)
            .ignore()
            .pexpire(
                ends_key(node),
                i64::try_from(millis(NODE_LEASE)).unwrap_or(i64::MAX),
            )
            .ignore();
        let mut redis = self.redis.clone();
        match tokio::time::timeout(Duration::from_secs(5), pipe.query_async::<()>(&mut redis)).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(ClusterError::Unavailable("timed out".into())),
        }
    }
}

/// The operator's side of the cluster's assistant accounts (`ponte-relay assistant …
/// --cluster`): one Redis hash, name → the account's line of an assistants file.
#[derive(Clone)]
pub struct AssistantBook {
    redis: ConnectionManager,
}

impl AssistantBook {
    /// The book in the cluster's Redis at `url`.
    pub fn open(url: &str) -> Result<AssistantBook, ClusterError> {
        Ok(AssistantBook { redis: connect(url)? })
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, ClusterError> {
        query(&self.redis, cmd, Duration::from_secs(5)).await
    }

    /// Every account: name → line.
    pub async fn lines(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>, ClusterError> {
        self.query(redis::cmd("HGETALL").arg(assistants_key())).await
    }

    /// Adds an account unless the name is taken; whether it was added.
    pub async fn add(&self, name: &str, line: &str) -> Result<bool, ClusterError> {
        self.query(redis::cmd("HSETNX").arg(assistants_key()).arg(name).arg(line))
            .await
    }

    /// Removes an account; whether there was one.
    pub async fn remove(&self, name: &str) -> Result<bool, ClusterError> {
        self.query(redis::cmd("HDEL").arg(assistants_key()).arg(name))
            .await
    }
}

/// Reads every node's entry (for `ponte-relay cluster status`), dropping names whose entry
/// has expired (dead nodes).
pub async fn status(url: &str) -> Result<Vec<NodeStatus>, ClusterError> {
    let mut redis = connect(url)?;
    let fetch = async {
        let names: Vec<String> = redis::cmd("SMEMBERS")
            .arg(nodes_key())
            .query_async(&mut redis)
            .await?;
        let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut redis).await?;
        let now = secs * 1000 + micros / 1000;
        let mut nodes = Vec::new();
        for name in names {
            // Bytes, not text: the entry holds the node's certificate (DER), and whoever can
            // write Redis may have written anything.
            let fields: std::collections::HashMap<Vec<u8>, Vec<u8>> = redis::cmd("HGETALL")
                .arg(node_key(&name))
                .query_async(&mut redis)
                .await?;
            let text = |k: &str| {
                fields
                    .get(k.as_bytes())
                    .map(|v| String::from_utf8_lossy(v).into_owned())
            };
            if fields.is_empty() {
                let _: () = redis::cmd("SREM")
                    .arg(nodes_key())
                    .arg(&name)
                    .query_async(&mut redis)
                    .await?;
                continue;
            }
            let num = |k: &str| text(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            nodes.push(NodeStatus {
                addr: text("addr").unwrap_or_default(),
                waiting: num("waiting"),
                paired: num("paired"),
                draining: num("draining") == 1,
                last_seen_ms: now.saturating_sub(num("seen")),
                name,
            });
        }
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        Ok::<_, ClusterError>(nodes)
    };
    tokio::time::timeout(Duration::from_secs(5), fetch)
        .await
        .map_err(|_| ClusterError::Unavailable("timed out".into()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_are_plain() {
        for good in ["a", "relay-b", "eu_1.prod", &"x".repeat(63)] {
            assert_eq!(good.parse::<NodeName>().unwrap().as_str(), good);
        }
        for bad in ["", "a b", "a:b", "é", "a\n", &"x".repeat(64), "a!"] {
            assert_eq!(bad.parse::<NodeName>(), Err(BadNodeName), "{bad:?}");
        }
    }

    #[test]
    fn gcra_parameters() {
        let l = RateLimit {
            rate: 20.0 / 60.0,
            burst: 10.0,
        };
        assert_eq!(l.interval_ms(), 3000);
        assert_eq!(l.tolerance_ms(), 30_000);
        assert!(
            RateLimit {
                rate: 0.0,
                burst: 1.0
            }
            .interval_ms()
                > 1 << 40
        );
        assert_eq!(rate_limited(1), Refusal::RateLimited { retry_after_secs: 1 });
        assert_eq!(rate_limited(2001), Refusal::RateLimited { retry_after_secs: 3 });
    }
}
