//! The relay server: admits QUIC connections, runs each client's rendezvous, pairs viewers
//! with waiting agents and forwards between them, keeps the ledger; shuts down gracefully.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ponte_transport::framed::{self, FramedError};
use ponte_transport::tls::CertFingerprint;
use ponte_wire::rendezvous::{
    self, AssistantProof, ClientMessage, JoinTarget, MAX_MESSAGE, Refusal, RelayMessage, Ticket,
};
use ponte_wire::{DeviceTag, SessionId};
use quinn::{Connection, RecvStream, SendStream, VarInt};
use tokio::sync::{mpsc, watch};
use tracing::{debug, error, info, warn};

use crate::admission::{Admission, Admitted, Crowded, Decision, Load};
use crate::assistants::Assistants;
use crate::bucket::TokenBucket;
use crate::cluster::{Cluster, Health, Joinable, Located, RateLimit, RegisterLimits};
use crate::config::{AssistantMode, Config};
use crate::forward::{self, Budget, Direction, End};
use crate::ledger::{EndReason, Ledger, SessionRecord, ViewerFacts, WriterSettings};
use crate::memory::{self, Buffers, Reservation};
use crate::registry::{Joining, RegistrationToken, Registry, TurnedAway};
use crate::source::Source;

/// What the registry keeps of an agent.
#[derive(Debug, Clone)]
struct AgentLink {
    connection: Connection,
    source: Source,
    /// A line to the agent's control task.
    events: mpsc::Sender<RelayMessage>,
    record: SessionRecord,
    /// The agent connection's windows, reserved at its first pairing and kept until it
    /// closes: credit granted to a QUIC peer cannot be taken back.
    reservation: Arc<Mutex<Option<Reservation>>>,
}

/// What the registry keeps of a paired viewer.
#[derive(Debug)]
struct ViewerLink {
    connection: Connection,
    budget: Arc<Budget>,
}

impl ViewerLink {
    /// Whether it sent anything towards the agent, that is, could have tried the code.
    fn spoke(&self) -> bool {
        self.budget.forwarded(Direction::ViewerToAgent) > 0
    }
}

/// Counters for what the relay turned away at the door (tests and logs read them; the same
/// events go to the metrics).
#[derive(Debug, Default)]
struct Counters {
    retries: AtomicU64,
    refused_full: AtomicU64,
    refused_source: AtomicU64,
    auth_refused: AtomicU64,
    device_challenges: AtomicU64,
    redirects_refused: AtomicU64,
}

/// A snapshot of the relay's own accounting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Sessions waiting for a viewer.
    pub waiting: usize,
    /// Sessions with a paired viewer.
    pub paired: usize,
    /// Bytes of windows reserved for paired connections.
    pub buffers_reserved: u64,
    /// QUIC Retry packets sent.
    pub retries: u64,
    /// Connections refused because every slot was taken.
    pub refused_full: u64,
    /// Connections refused because their source held its share.
    pub refused_source: u64,
    /// Joins refused for their credential.
    pub auth_refused: u64,
    /// Quick-access registrations that got a challenge (an ephemeral key pair each).
    pub device_challenges: u64,
    /// Joins not redirected to the node the cluster's Redis named: it was gone, or its entry
    /// was not certified for its address.
    pub redirects_refused: u64,
}

struct Shared {
    config: Config,
    registry: Mutex<Registry<AgentLink, ViewerLink>>,
    total_bandwidth: Option<Arc<tokio::sync::Mutex<TokenBucket>>>,
    shutting_down: watch::Receiver<bool>,
    /// Set just before the relay closes every connection at the end of a shutdown.
    closing: AtomicBool,
    admission: Admission,
    buffers: Buffers,
    assistants: Assistants,
    ledger: Ledger,
    handshaking: AtomicUsize,
    counters: Counters,
    /// The cluster's shared state, when this relay is a node of one.
    cluster: Option<Arc<Cluster>>,
    /// Set at SIGTERM: the node takes no new sessions and tells the cluster so.
    draining: AtomicBool,
}

impl Shared {
    fn registry(&self) -> std::sync::MutexGuard<'_, Registry<AgentLink, ViewerLink>> {
        // A panic while holding the lock cannot leave the table half-updated in a way that
        // matters more than stopping the relay would.
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tells the cluster, in the background, what became of session `id` (of an agent from
    /// `source`). A lost update is repaired by the next heartbeat, which rewrites every claim.
    fn cluster_update(&self, id: SessionId, source: Source, update: ClusterUpdate) {
        let Some(cluster) = self.cluster.clone() else {
            return;
        };
        let ttl = self.config.registry.pairing_ttl;
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
    /// longer; the heartbeat repairs a lost update.
    fn cluster_release_device(&self, tag: DeviceTag) {
        let Some(cluster) = self.cluster.clone() else {
            return;
        };
        tokio::spawn(async move {
            if let Err(e) = cluster.device(tag, false).await {
                debug!("cluster device update deferred to the next heartbeat: {e}");
            }
        });
    }

    fn publish_counts(&self) {
        let r = self.registry();
        crate::metrics::sessions(r.waiting(), r.paired());
    }
}

/// A change of a session that the cluster must hear of.
#[derive(Debug, Clone, Copy)]
enum ClusterUpdate {
    Joinable(Joinable),
    Ended,
}

/// Closes a connection with a reason the client can show.
fn close(connection: &Connection, reason: Refusal) {
    crate::metrics::refused(&reason);
    connection.close(
        VarInt::from_u32(reason.close_code()),
        reason.to_string().as_bytes(),
    );
}

/// Why a peer's connection ended, as told to the other peer: the relay closing everything
/// at shutdown is not the peer leaving. The flag covers connections whose close the relay has
/// begun but that do not report it yet, whichever side of a pair notices first.
fn departure(shared: &Shared, connection: &Connection) -> Refusal {
    let closing = shared.closing.load(Ordering::SeqCst);
    match connection.close_reason() {
        _ if closing => Refusal::ShuttingDown,
        Some(quinn::ConnectionError::LocallyClosed) => Refusal::ShuttingDown,
        _ => Refusal::PeerLeft,
    }
}

/// The ledger's name for why a session ended, from the reason its agent's task stopped.
fn end_reason(reason: Refusal) -> EndReason {
    match reason {
        Refusal::Burned => EndReason::Burned,
        Refusal::Expired => EndReason::Expired,
        Refusal::IdleTimeout => EndReason::IdleTimeout,
        Refusal::LimitExceeded => EndReason::LimitExceeded,
        Refusal::ShuttingDown => EndReason::ShuttingDown,
        Refusal::BadRequest | Refusal::VersionUnsupported { .. } => EndReason::BadRequest,
        _ => EndReason::AgentLeft,
    }
}

/// A running relay.
pub struct Relay {
    endpoint: quinn::Endpoint,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    fingerprint: CertFingerprint,
    cluster_fingerprint: Option<CertFingerprint>,
    accept: tokio::task::JoinHandle<()>,
    heartbeat: Option<tokio::task::JoinHandle<()>>,
}

impl Relay {
    /// Binds the endpoint and starts accepting. The certificate comes from `config.cert` or
    /// the data directory (generated on first start).
    pub async fn start(config: Config) -> anyhow::Result<Relay> {
        let identity = match &config.cert {
            Some((cert, key)) => crate::cert::load(cert, key)?,
            None => crate::cert::load_or_generate(&config.data_dir)?,
        };
        let fingerprint = identity.fingerprint();
        let cluster_fingerprint = identity.cluster_fingerprint();
        let cluster = config
            .cluster
            .clone()
            .map(|settings| Cluster::new(settings, &identity.chain))
            .transpose()?;
        if let Some(cluster) = &cluster {
            let public = cluster.public_addr();
            let certified = identity
                .chain
                .first()
                .map(|c| crate::cert::certified_addresses(c))
                .unwrap_or_default();
            if cluster_fingerprint.is_none() {
                warn!(
                    "this cluster node's certificate is not signed by a cluster key: clients must pin each node, and no node redirects viewers to another"
                );
            } else if !certified.iter().any(|c| c.eq_ignore_ascii_case(public.as_str())) {
                // It still serves whoever reaches it directly; a rolling upgrade of nodes
                // certified before certificates named their address must not stop them.
                error!(
                    %public,
                    ?certified,
                    "this node's certificate is not certified for its public address: the other nodes will not redirect viewers here (ponte-relay cluster certify --node-name {} --public-addr {public})",
                    cluster.node()
                );
            }
            info!(node = %cluster.node(), public_addr = %public, "joining the relay cluster");
        }
        let ledger_target = config.ledger_target()?;
        let transport = memory::unpaired_transport(config.stream_window);
        let server = ponte_transport::tls::server_config(identity.chain, identity.key, transport)?;
        let endpoint = quinn::Endpoint::server(server, config.listen)?;
        let (shutdown, shutting_down) = watch::channel(false);
        let total_bandwidth = config.total_bandwidth.map(|r| {
            Arc::new(tokio::sync::Mutex::new(TokenBucket::new(
                r as f64,
                r as f64 / 4.0,
                Instant::now(),
            )))
        });
        info!(ledger = %ledger_target, assistants = ?config.assistants, "relay starting");
        let ledger = Ledger::start(
            ledger_target,
            WriterSettings {
                retention: config.ledger_retention,
                purge_every: config.ledger_purge_every,
            },
        );
        let shared = Arc::new(Shared {
            registry: Mutex::new(Registry::new(config.registry.clone())),
            admission: Admission::new(config.admission),
            buffers: Buffers::new(config.buffers),
            assistants: match &cluster {
                Some(_) => Assistants::shared(),
                None => Assistants::new(&config.data_dir),
            },
            ledger,
            config,
            total_bandwidth,
            shutting_down,
            closing: AtomicBool::new(false),
            handshaking: AtomicUsize::new(0),
            counters: Counters::default(),
            cluster,
            draining: AtomicBool::new(false),
        });
        if let Some(cluster) = &shared.cluster {
            let local = crate::assistants::AssistantStore::in_dir(&shared.config.data_dir);
            if local.load().is_ok_and(|a| !a.is_empty()) {
                warn!(
                    file = %local.path().display(),
                    "a cluster node uses the cluster's assistants, not this file's (ponte-relay assistant add NAME --cluster URL)"
                );
            }
            // Before the first join; without Redis, credentials wait for the first heartbeat.
            refresh_assistants(&shared, cluster).await;
        }
        tokio::spawn(sweep(shared.clone()));
        let heartbeat = shared
            .cluster
            .clone()
            .map(|cluster| tokio::spawn(heartbeat(shared.clone(), cluster)));
        let accept = tokio::spawn(accept_loop(endpoint.clone(), shared.clone()));
        Ok(Relay {
            endpoint,
            shared,
            shutdown,
            fingerprint,
            cluster_fingerprint,
            accept,
            heartbeat,
        })
    }

    /// The address the relay listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// SHA-256 fingerprint of the relay's certificate.
    pub fn fingerprint(&self) -> CertFingerprint {
        self.fingerprint
    }

    /// The fingerprint of the cluster key that signed this node's certificate, if it did:
    /// what clients of a cluster pin.
    pub fn cluster_fingerprint(&self) -> Option<CertFingerprint> {
        self.cluster_fingerprint
    }

    /// Round trips this node made to the cluster's Redis (0 outside a cluster).
    pub fn cluster_operations(&self) -> u64 {
        self.shared.cluster.as_ref().map_or(0, |c| c.operations())
    }

    /// Sessions waiting and paired right now.
    pub fn counts(&self) -> (usize, usize) {
        let r = self.shared.registry();
        (r.waiting(), r.paired())
    }

    /// The relay's own accounting right now.
    pub fn stats(&self) -> Stats {
        let (waiting, paired) = self.counts();
        let c = &self.shared.counters;
        Stats {
            waiting,
            paired,
            buffers_reserved: self.shared.buffers.used(),
            retries: c.retries.load(Ordering::Relaxed),
            refused_full: c.refused_full.load(Ordering::Relaxed),
            refused_source: c.refused_source.load(Ordering::Relaxed),
            auth_refused: c.auth_refused.load(Ordering::Relaxed),
            device_challenges: c.device_challenges.load(Ordering::Relaxed),
            redirects_refused: c.redirects_refused.load(Ordering::Relaxed),
        }
    }

    /// Bytes reserved for the paired connections of the source `ip` belongs to.
    pub fn buffers_reserved_by(&self, ip: std::net::IpAddr) -> u64 {
        self.shared.buffers.used_by(self.shared.config.sources.source(ip))
    }

    /// Graceful shutdown: stop accepting, tell waiting agents, let paired sessions finish for
    /// up to the grace period, close everything with a reason, and store the ledger's last rows.
    pub async fn shutdown(self) {
        info!("shutting down: no new connections");
        self.shared.draining.store(true, Ordering::SeqCst);
        let _ = self.shutdown.send(true);
        if let Some(cluster) = &self.shared.cluster {
            // Tell the cluster at once rather than at the next heartbeat.
            let _ = cluster.heartbeat(health(&self.shared), &[], &[]).await;
        }
        let waiting = self.shared.registry().waiting_agents();
        for (_, agent) in waiting {
            agent.record.ended(EndReason::ShuttingDown);
            let _ = agent
                .events
                .try_send(RelayMessage::Refused(Refusal::ShuttingDown));
        }
        let deadline = Instant::now() + self.shared.config.shutdown_grace;
        while self.shared.registry().paired() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let reason = Refusal::ShuttingDown;
        self.shared.closing.store(true, Ordering::SeqCst);
        self.endpoint.close(
            VarInt::from_u32(reason.close_code()),
            reason.to_string().as_bytes(),
        );
        self.accept.abort();
        let _ = tokio::time::timeout(Duration::from_secs(3), self.endpoint.wait_idle()).await;
        if let Some(heartbeat) = self.heartbeat {
            heartbeat.abort();
        }
        if let Some(cluster) = &self.shared.cluster {
            // The claims of sessions still held expire with their lease.
            if let Err(e) = cluster.leave().await {
                warn!("could not leave the cluster cleanly (its entry expires by itself): {e}");
            }
        }
        self.shared.ledger.flush(Duration::from_secs(5)).await;
        info!("relay stopped");
    }
}

fn health(shared: &Shared) -> Health {
    let r = shared.registry();
    Health {
        waiting: r.waiting(),
        paired: r.paired(),
        draining: shared.draining.load(Ordering::SeqCst),
    }
}

/// Renews this node's cluster entry and its sessions' claims until the relay stops.
async fn heartbeat(shared: Arc<Shared>, cluster: Arc<Cluster>) {
    let mut tick = tokio::time::interval(crate::cluster::HEARTBEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let sessions: Vec<_> = shared
            .registry()
            .sessions()
            .into_iter()
            .map(|(id, open)| (id, if open { Joinable::Yes } else { Joinable::No }))
            .collect();
        let devices = shared.registry().device_tags();
        if let Err(e) = cluster.heartbeat(health(&shared), &sessions, &devices).await {
            debug!("cluster heartbeat failed: {e}");
        }
        // At once, not one after the other: each may take up to its timeout, and the next
        // heartbeat must come well within the node's lease.
        let here = shared.admission.local_counts();
        let (shared_counts, ()) = tokio::join!(
            cluster.share_connections(&here),
            refresh_assistants(&shared, &cluster)
        );
        match shared_counts {
            Ok(elsewhere) => shared.admission.set_elsewhere(elsewhere),
            // Without the cluster's counts the cap holds per node, not on stale numbers.
            Err(e) => {
                debug!("connection counts not shared: {e}");
                shared.admission.set_elsewhere(Default::default());
            }
        }
    }
}

/// Reads the cluster's assistant accounts; while Redis cannot be read, the last ones read stay.
async fn refresh_assistants(shared: &Shared, cluster: &Cluster) {
    match cluster.assistant_lines().await {
        Ok(lines) => shared.assistants.replace(crate::assistants::parse_book(lines)),
        Err(e) => debug!("cluster assistants not read, keeping the last known: {e}"),
    }
}

/// The cluster-wide registration rate limit.
fn register_rate(shared: &Shared) -> RateLimit {
    RateLimit {
        rate: shared.config.registry.register_rate,
        burst: shared.config.registry.register_burst,
    }
}

/// Claims a cluster-wide unique session ID for a new agent from `source`, within the
/// cluster-wide registration limits; `paid`: its cluster-wide registration token was taken
/// already.
async fn claim(cluster: &Cluster, shared: &Shared, source: Source, paid: bool) -> Result<SessionId, Refusal> {
    let limits = &shared.config.registry;
    let wanted = RegisterLimits {
        rate: (!paid).then(|| register_rate(shared)),
        waiting_per_source: limits.waiting_per_source,
        pairing_ttl: limits.pairing_ttl,
    };
    // With a billion IDs a collision is rare; a few tries bound the work anyway.
    for _ in 0..8 {
        let id = SessionId::random(&mut ponte_wire::os_rng());
        if !shared.registry().is_free(id) {
            continue;
        }
        match cluster.register(id, source, &wanted).await {
            Ok(None) => continue,
            Ok(Some(verdict)) => return verdict.map(|()| id),
            Err(e) => {
                warn!("registration refused: {e}");
                return Err(Refusal::ClusterUnavailable);
            }
        }
    }
    Err(Refusal::Capacity)
}

async fn sweep(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut shutting_down = shared.shutting_down.clone();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutting_down.wait_for(|s| *s) => return,
        }
        let expired = shared.registry().sweep(Instant::now());
        for (id, agent) in expired {
            debug!(session = %id, "session expired unpaired");
            agent.record.ended(EndReason::Expired);
            shared.cluster_update(id, agent.source, ClusterUpdate::Ended);
            let _ = agent.events.try_send(RelayMessage::Refused(Refusal::Expired));
        }
        shared.publish_counts();
    }
}

async fn accept_loop(endpoint: quinn::Endpoint, shared: Arc<Shared>) {
    let mut shutting_down = shared.shutting_down.clone();
    loop {
        let incoming = tokio::select! {
            incoming = endpoint.accept() => incoming,
            _ = shutting_down.wait_for(|s| *s) => None,
        };
        let Some(incoming) = incoming else { break };
        let source = shared.config.sources.source(incoming.remote_address().ip());
        let load = Load {
            open: endpoint.open_connections(),
            handshaking: shared.handshaking.load(Ordering::Relaxed),
        };
        let counters = &shared.counters;
        match shared
            .admission
            .decide(source, incoming.remote_address_validated(), load)
        {
            Decision::Refuse(crowded) => {
                let (counter, label) = match crowded {
                    Crowded::Full => (&counters.refused_full, "full"),
                    Crowded::Source => (&counters.refused_source, "per_source"),
                };
                counter.fetch_add(1, Ordering::Relaxed);
                crate::metrics::connection_refused(label);
                incoming.refuse();
            }
            Decision::Retry if incoming.may_retry() => {
                counters.retries.fetch_add(1, Ordering::Relaxed);
                crate::metrics::retry();
                let _ = incoming.retry();
            }
            Decision::Retry => incoming.refuse(),
            Decision::Accept(slot) => {
                let shared = shared.clone();
                shared.handshaking.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    let remote = incoming.remote_address();
                    // A handshake that does not finish in time gives its slot back.
                    let connected = tokio::time::timeout(shared.config.request_timeout, incoming).await;
                    shared.handshaking.fetch_sub(1, Ordering::Relaxed);
                    match connected {
                        Ok(Ok(connection)) => handle(connection, source, slot, shared).await,
                        Ok(Err(e)) => debug!(%remote, "handshake failed: {e}"),
                        Err(_) => debug!(%remote, "handshake timed out"),
                    }
                });
            }
        }
    }
    // Refuse whatever still knocks until the endpoint closes.
    while let Some(incoming) = endpoint.accept().await {
        incoming.refuse();
    }
}

/// How long a refused client gets to read the refusal and hang up before it is closed.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

async fn refuse(connection: &Connection, send: &mut SendStream, reason: Refusal) {
    let _ = framed::write(send, &rendezvous::encode_relay(&RelayMessage::Refused(reason))).await;
    let _ = send.finish();
    // A close discards data the client has not read yet, so let the client hang up first;
    // the close carries the same reason for clients that do not.
    let _ = tokio::time::timeout(REFUSAL_LINGER, connection.closed()).await;
    close(connection, reason);
}

async fn handle(connection: Connection, source: Source, slot: Admitted, shared: Arc<Shared>) {
    // The connection holds its slot until this task ends.
    let _slot = slot;
    let timeout = shared.config.request_timeout;
    let (mut send, mut recv) = match tokio::time::timeout(timeout, connection.accept_bi()).await {
        Ok(Ok(streams)) => streams,
        Ok(Err(_)) => return,
        Err(_) => return close(&connection, Refusal::BadRequest),
    };
    let first = framed::read_timeout::<ClientMessage>(&mut recv, MAX_MESSAGE, timeout).await;
    match first {
        Ok(Some(ClientMessage::Register)) => {
            let taken = shared.registry().take_registration(source, Instant::now());
            match taken {
                // On a cluster the claim script takes the cluster-wide token with the ID, in
                // the same round trip.
                Ok(local) => {
                    let paid = Paid {
                        local,
                        cluster: false,
                    };
                    agent(connection, send, recv, source, shared, paid, None).await
                }
                Err(reason) => refuse(&connection, &mut send, reason).await,
            }
        }
        Ok(Some(ClientMessage::RegisterDevice { tag })) => {
            register_device(connection, send, recv, source, shared, tag).await
        }
        Ok(Some(ClientMessage::JoinDevice { tag, ticket, proof })) => {
            // The credential first, as for joins by ID: a viewer a credential-only relay
            // refuses learns nothing about the tag.
            let target = JoinTarget::Device(tag);
            if let Err(reason) =
                check_credential(&shared, &connection, target, proof.as_ref(), ticket.as_ref())
            {
                crate::metrics::join(crate::metrics::reason_label(&reason));
                shared.counters.auth_refused.fetch_add(1, Ordering::Relaxed);
                crate::metrics::auth_refused(&reason);
                return refuse(&connection, &mut send, reason).await;
            }
            let found = shared.registry().find_device(tag, source, Instant::now());
            // Not here: on a cluster, the agent may wait on another node.
            if found == Err(Refusal::UnknownSession)
                && let Some(cluster) = &shared.cluster
                && let Ok(located) = cluster.locate_device(tag).await
            {
                match redirect_target(&shared, &tag, located) {
                    Ok(Some(node)) => return redirect(&connection, &mut send, tag, node).await,
                    Ok(None) => {}
                    Err(refusal) => return refuse(&connection, &mut send, refusal).await,
                }
            }
            match found {
                Ok(session) => {
                    let join = Join {
                        session,
                        device: Some(tag),
                        ticket,
                        proof,
                    };
                    viewer(connection, send, recv, join, source, shared).await
                }
                Err(reason) => {
                    crate::metrics::join(crate::metrics::reason_label(&reason));
                    debug!(%reason, "device join refused");
                    refuse(&connection, &mut send, reason).await
                }
            }
        }
        Ok(Some(ClientMessage::Join { session })) => {
            let join = Join {
                session,
                device: None,
                ticket: None,
                proof: None,
            };
            viewer(connection, send, recv, join, source, shared).await
        }
        Ok(Some(ClientMessage::JoinAs {
            session,
            ticket,
            proof,
        })) => {
            let join = Join {
                session,
                device: None,
                ticket,
                proof,
            };
            viewer(connection, send, recv, join, source, shared).await
        }
        Ok(Some(_)) | Ok(None) => refuse(&connection, &mut send, Refusal::BadRequest).await,
        Err(FramedError::Frame(e)) => refuse(&connection, &mut send, rendezvous::refusal_for(&e)).await,
        Err(_) => close(&connection, Refusal::BadRequest),
    }
}

/// The registration tokens taken for an agent before anything was spent on it: always this
/// node's, and the cluster's when `cluster` says so (else the claim takes it).
struct Paid {
    local: RegistrationToken,
    cluster: bool,
}

/// Takes every registration token a registration from `source` needs — the cluster's, then
/// this node's — before anything is spent on it.
async fn pay_registration(shared: &Shared, source: Source) -> Result<Paid, Refusal> {
    if let Some(cluster) = &shared.cluster {
        match cluster.take_registration(source, register_rate(shared)).await {
            Ok(Ok(())) => {}
            Ok(Err(refusal)) => return Err(refusal),
            Err(e) => {
                warn!("registration refused: {e}");
                return Err(Refusal::ClusterUnavailable);
            }
        }
    }
    let local = shared.registry().take_registration(source, Instant::now())?;
    Ok(Paid {
        local,
        cluster: shared.cluster.is_some(),
    })
}

/// A quick-access registration: the agent first proves it holds the private key of the device
/// whose tag it registers — knowing the public key, as every assistant it was given to does,
/// is not enough to take the tag (docs/PROTOCOL.md § 9.5).
async fn register_device(
    connection: Connection,
    mut send: SendStream,
    mut recv: RecvStream,
    source: Source,
    shared: Arc<Shared>,
    tag: DeviceTag,
) {
    // The rate limit first: a challenge costs a key pair and a line held open for the proof,
    // which a source past its limits must not get.
    let paid = match pay_registration(&shared, source).await {
        Ok(paid) => paid,
        Err(reason) => {
            debug!(%reason, "device registration refused before its challenge");
            return refuse(&connection, &mut send, reason).await;
        }
    };
    let challenge = ponte_wire::device::Challenge::new(&mut ponte_wire::os_rng());
    shared.counters.device_challenges.fetch_add(1, Ordering::Relaxed);
    let asked = RelayMessage::DeviceChallenge {
        challenge: challenge.public(),
    };
    if !send_relay(&mut send, &asked).await {
        return;
    }
    let timeout = shared.config.request_timeout;
    let proven = match framed::read_timeout::<ClientMessage>(&mut recv, MAX_MESSAGE, timeout).await {
        Ok(Some(ClientMessage::DeviceProof { device, proof })) => {
            ponte_transport::credential::exporter(&connection)
                .is_some_and(|exporter| challenge.verify(&exporter, tag, &device, &proof))
        }
        _ => false,
    };
    if !proven {
        debug!("device registration without a valid proof refused");
        return refuse(&connection, &mut send, Refusal::BadRequest).await;
    }
    agent(connection, send, recv, source, shared, paid, Some(tag)).await
}

async fn send_relay(send: &mut SendStream, message: &RelayMessage) -> bool {
    framed::write(send, &rendezvous::encode_relay(message))
        .await
        .is_ok()
}

/// An agent's control line: register (with the tokens already `paid`), then relay events to
/// it and act on its requests.
async fn agent(
    connection: Connection,
    mut send: SendStream,
    mut recv: RecvStream,
    source: Source,
    shared: Arc<Shared>,
    paid: Paid,
    device: Option<DeviceTag>,
) {
    let (events, mut inbox) = mpsc::channel(16);
    let address = shared
        .config
        .ledger_addresses
        .keep(connection.remote_address().ip());
    let mut made = None;
    let make = |id| {
        let link = AgentLink {
            connection: connection.clone(),
            source,
            events,
            record: SessionRecord::new(&shared.ledger, id, address),
            reservation: Arc::new(Mutex::new(None)),
        };
        made = Some(link.clone());
        link
    };
    let registered = match &shared.cluster {
        None => shared
            .registry()
            .register_with(paid.local, make, Instant::now(), &mut ponte_wire::os_rng()),
        Some(cluster) => match claim(cluster, &shared, source, paid.cluster).await {
            Ok(id) => {
                let local = shared
                    .registry()
                    .register_as(paid.local, id, make, Instant::now());
                if local.is_err() {
                    shared.cluster_update(id, source, ClusterUpdate::Ended);
                }
                local.map(|ttl| (id, ttl))
            }
            Err(reason) => Err(reason),
        },
    };
    let (id, ttl) = match registered {
        Ok(x) => x,
        Err(reason) => return refuse(&connection, &mut send, reason).await,
    };
    // A successful registration made the link.
    let Some(link) = made else { return };
    if let Some(tag) = device {
        shared.registry().claim_device(id, tag);
        // Found by its tag through any node (redirected here) as soon as the agent hears it is
        // registered, so the claim is written before that; nobody joins it by ID, here or
        // through another node.
        if let Some(cluster) = &shared.cluster
            && let Err(e) = cluster.device(tag, true).await
        {
            debug!("cluster device claim deferred to the next heartbeat: {e}");
        }
        shared.cluster_update(id, source, ClusterUpdate::Joinable(Joinable::No));
    }
    shared.publish_counts();
    info!(session = %id, "agent registered");
    let registered = RelayMessage::Registered {
        session: id,
        expires_in_secs: ttl.as_secs().try_into().unwrap_or(u32::MAX),
    };
    let mut end = Refusal::PeerLeft;
    if send_relay(&mut send, &registered).await {
        end = agent_loop(id, &link, &mut send, &mut recv, &mut inbox, &shared).await;
    }
    link.record.ended(match end {
        Refusal::PeerLeft => match departure(&shared, &connection) {
            Refusal::ShuttingDown => EndReason::ShuttingDown,
            _ => EndReason::AgentLeft,
        },
        other => end_reason(other),
    });
    let viewer = shared.registry().remove(id, Instant::now());
    shared.cluster_update(id, source, ClusterUpdate::Ended);
    if let Some(tag) = device
        && !shared.registry().holds_device(tag)
    {
        shared.cluster_release_device(tag);
    }
    shared.publish_counts();
    if let Some(viewer) = viewer {
        // At shutdown the endpoint's close reaches each connection in its own time; whichever
        // comes first, the viewer must hear that the relay is stopping, not that the agent left.
        let reason = match end {
            Refusal::Burned | Refusal::ShuttingDown => end,
            _ => Refusal::PeerLeft,
        };
        close(&viewer.connection, reason);
    }
    info!(session = %id, reason = %end, "agent session ended");
}

/// Runs until the agent leaves or the session ends; returns why.
async fn agent_loop(
    id: SessionId,
    link: &AgentLink,
    send: &mut SendStream,
    recv: &mut RecvStream,
    inbox: &mut mpsc::Receiver<RelayMessage>,
    shared: &Shared,
) -> Refusal {
    let connection = &link.connection;
    loop {
        tokio::select! {
            request = framed::read::<ClientMessage>(recv, MAX_MESSAGE) => match request {
                Ok(Some(ClientMessage::Release)) => {
                    let released = {
                        let mut r = shared.registry();
                        let spoke = r.viewer(id).is_some_and(ViewerLink::spoke);
                        let released = r.release(id, Instant::now(), spoke);
                        if released.as_ref().is_some_and(|r| r.pairing) {
                            // Under the lock, so a new pairing cannot open the windows first.
                            memory::close_down(connection);
                        }
                        released
                    };
                    let Some(released) = released else { return Refusal::PeerLeft };
                    if released.pairing {
                        link.record.released();
                        let open = shared.registry().joinable(id);
                        if open {
                            shared.cluster_update(id, link.source, ClusterUpdate::Joinable(Joinable::Yes));
                        }
                    }
                    if let Some(viewer) = released.viewer {
                        close(&viewer.connection, Refusal::Released);
                    }
                    shared.publish_counts();
                    let again = RelayMessage::Registered {
                        session: id,
                        expires_in_secs: released.window.as_secs().try_into().unwrap_or(u32::MAX),
                    };
                    if !send_relay(send, &again).await {
                        return Refusal::PeerLeft;
                    }
                }
                Ok(Some(ClientMessage::Burn)) => {
                    let _ = send.finish();
                    return Refusal::Burned;
                }
                Ok(Some(_)) => {
                    refuse(connection, send, Refusal::BadRequest).await;
                    return Refusal::BadRequest;
                }
                Err(FramedError::Frame(e)) => {
                    let reason = rendezvous::refusal_for(&e);
                    refuse(connection, send, reason).await;
                    return reason;
                }
                Ok(None) | Err(_) => return departure(shared, connection),
            },
            event = inbox.recv() => match event {
                Some(RelayMessage::Refused(reason)) => {
                    refuse(connection, send, reason).await;
                    return reason;
                }
                Some(message) => {
                    if !send_relay(send, &message).await {
                        return Refusal::PeerLeft;
                    }
                }
                None => return Refusal::PeerLeft,
            },
            _ = connection.closed() => return departure(shared, connection),
        }
    }
}

/// Refuses every stream the peer has opened that the relay has not taken yet.
async fn drop_stale_streams(connection: &Connection) {
    // A zero timeout polls each accept once: only streams already there are taken.
    while let Ok(Ok((mut send, mut recv))) =
        tokio::time::timeout(Duration::ZERO, connection.accept_bi()).await
    {
        let _ = send.reset(VarInt::from_u32(0));
        let _ = recv.stop(VarInt::from_u32(0));
    }
    while let Ok(Ok(mut recv)) = tokio::time::timeout(Duration::ZERO, connection.accept_uni()).await {
        let _ = recv.stop(VarInt::from_u32(0));
    }
}

/// What a viewer asked for.
struct Join {
    session: SessionId,
    /// Set when the viewer joined by device tag (quick access): its credential proof binds the
    /// tag, and both peers hear `PairedDevice`.
    device: Option<DeviceTag>,
    ticket: Option<Ticket>,
    proof: Option<AssistantProof>,
}

/// The verdict on a join's credential: the assistant's name, none (open relay, none
/// presented), or a refusal. A credential presented to an open relay is still checked, so a
/// revoked one is never silently ignored.
fn check_credential(
    shared: &Shared,
    connection: &Connection,
    target: JoinTarget,
    proof: Option<&AssistantProof>,
    ticket: Option<&Ticket>,
) -> Result<Option<String>, Refusal> {
    let Some(proof) = proof else {
        return match shared.config.assistants {
            AssistantMode::Required => Err(Refusal::CredentialRequired),
            AssistantMode::Open => Ok(None),
        };
    };
    let verified = ponte_transport::credential::exporter(connection)
        .is_some_and(|exporter| ponte_transport::credential::verify(proof, &exporter, target, ticket));
    // Looked up even after a bad signature, so the time taken does not say which failed.
    let name = shared.assistants.lookup(&proof.key);
    match name {
        Some(name) if verified => Ok(Some(name)),
        _ => Err(Refusal::CredentialRefused),
    }
}

/// Waits until the viewer breaks the rendezvous protocol: after its join it has nothing more
/// to say on its control line. A clean end of the line is fine and waits forever.
async fn misbehaves(recv: &mut RecvStream) {
    match framed::read::<ClientMessage>(recv, MAX_MESSAGE).await {
        Ok(Some(_)) | Err(FramedError::Frame(_) | FramedError::Truncated) => {}
        Ok(None) | Err(_) => std::future::pending().await,
    }
}

/// Where to send a viewer for a session or device tag (`what`) that this node does not hold,
/// from what the cluster says: `Some` node, `None` (the usual answer for an unknown ID
/// follows), or a refusal when the entry names a node that cannot be trusted with viewers.
/// Every entry not followed is counted and logged: a node that is gone is expected now and
/// then, an uncertified one means a misconfigured node or someone writing the cluster's Redis.
fn redirect_target(
    shared: &Shared,
    what: &dyn std::fmt::Display,
    located: Located,
) -> Result<Option<rendezvous::NodeAddress>, Refusal> {
    match located {
        Located::Node(node) => Ok(Some(node)),
        Located::Nowhere => Ok(None),
        Located::Gone { node } => {
            shared.counters.redirects_refused.fetch_add(1, Ordering::Relaxed);
            crate::metrics::redirect_refused("node_gone");
            debug!(%what, ?node, "not redirected: its node no longer heartbeats");
            Ok(None)
        }
        Located::Uncertified { node, why } => {
            shared.counters.redirects_refused.fetch_add(1, Ordering::Relaxed);
            crate::metrics::redirect_refused("uncertified");
            warn!(%what, ?node, "not redirected to that node: {why}");
            Err(Refusal::ClusterUnavailable)
        }
    }
}

/// Sends a viewer to the node that holds its session, and lets it hang up first (like a
/// refusal) so the redirect is read before the connection closes.
async fn redirect(
    connection: &Connection,
    send: &mut SendStream,
    target: impl std::fmt::Display,
    node: rendezvous::NodeAddress,
) {
    crate::metrics::redirect();
    crate::metrics::join("redirected");
    debug!(%target, %node, "viewer redirected");
    let _ = send_relay(send, &RelayMessage::Redirect { node }).await;
    let _ = send.finish();
    let _ = tokio::time::timeout(REFUSAL_LINGER, connection.closed()).await;
    connection.close(VarInt::from_u32(0), b"redirected");
}

/// A viewer: join, then forward between it and the agent until the session ends.
async fn viewer(
    connection: Connection,
    mut send: SendStream,
    mut recv: RecvStream,
    join: Join,
    source: Source,
    shared: Arc<Shared>,
) {
    let id = join.session;
    let target = match join.device {
        Some(tag) => JoinTarget::Device(tag),
        None => JoinTarget::Session(join.session),
    };
    let credential = check_credential(
        &shared,
        &connection,
        target,
        join.proof.as_ref(),
        join.ticket.as_ref(),
    );
    if let Some(cluster) = shared.cluster.clone() {
        let limit = RateLimit {
            rate: shared.config.registry.join_rate,
            burst: shared.config.registry.join_burst,
        };
        // Without Redis the node's own join limits below still hold.
        if let Ok(Err(refusal)) = cluster.take_join(source, limit).await {
            crate::metrics::join(crate::metrics::reason_label(&refusal));
            return refuse(&connection, &mut send, refusal).await;
        }
        // A viewer whose credential is refused is not told where a session lives (a redirect
        // would tell it the ID is live): the registry below refuses it with the same answer
        // as for any ID. A redirected viewer proves its credential again on the other node,
        // on that connection.
        if credential.is_ok() && !shared.registry().contains(id) {
            match cluster.locate(id).await.map(|l| redirect_target(&shared, &id, l)) {
                Ok(Ok(Some(node))) => return redirect(&connection, &mut send, id, node).await,
                // Not joinable elsewhere: the registry gives the usual answer below.
                Ok(Ok(None)) => {}
                Ok(Err(refusal)) => return refuse(&connection, &mut send, refusal).await,
                Err(e) => {
                    debug!(session = %id, "join refused: {e}");
                    return refuse(&connection, &mut send, Refusal::ClusterUnavailable).await;
                }
            }
        }
    }
    let budget = Arc::new(Budget::new(
        shared.config.session_bandwidth,
        shared.total_bandwidth.clone(),
        shared.config.tap.clone(),
    ));
    let link = ViewerLink {
        connection: connection.clone(),
        budget: budget.clone(),
    };
    let joining = match join.device {
        Some(_) => Joining::Device(id),
        None => Joining::Id(id),
    };
    let joined = shared.registry().join(
        joining,
        link,
        source,
        Instant::now(),
        credential.as_ref().map(|_| ()).map_err(|r| *r),
        |agent: &AgentLink| {
            let mine = shared.buffers.reserve(source)?;
            let mut theirs = agent.reservation.lock().unwrap_or_else(|e| e.into_inner());
            if theirs.is_none() {
                *theirs = Some(shared.buffers.reserve(agent.source)?);
            }
            memory::open_up(
                &agent.connection,
                theirs.as_ref().map_or(mine.tier(), Reservation::tier),
            );
            memory::open_up(&connection, mine.tier());
            Some(mine)
        },
    );
    let pairing = match joined {
        Ok(p) => p,
        Err(TurnedAway {
            to_viewer,
            tell_agent,
        }) => {
            crate::metrics::join(crate::metrics::reason_label(&to_viewer));
            if matches!(
                to_viewer,
                Refusal::CredentialRequired | Refusal::CredentialRefused
            ) {
                shared.counters.auth_refused.fetch_add(1, Ordering::Relaxed);
                crate::metrics::auth_refused(&to_viewer);
            }
            if let Some((agent, reason)) = tell_agent {
                let _ = agent.events.try_send(RelayMessage::JoinRefused(reason));
            }
            debug!(session = %id, reason = %to_viewer, "join refused");
            return refuse(&connection, &mut send, to_viewer).await;
        }
    };
    // Held for the life of this task, which is the life of the viewer's connection.
    let _reservation = pairing.reserved;
    let agent = pairing.agent;
    shared.cluster_update(id, agent.source, ClusterUpdate::Joinable(Joinable::No));
    let generation = pairing.generation;
    crate::metrics::join("paired");
    crate::metrics::pairing_latency(pairing.latency);
    shared.publish_counts();
    let assistant = credential.ok().flatten();
    info!(session = %id, assistant = assistant.as_deref().unwrap_or("-"), "viewer paired");
    agent.record.paired(
        generation,
        ViewerFacts {
            assistant,
            ticket: join.ticket,
            address: shared
                .config
                .ledger_addresses
                .keep(connection.remote_address().ip()),
        },
    );
    // Streams the agent opened for an earlier viewer (who left before the relay forwarded
    // them) must not reach this one: the agent opens this pairing's handshake stream only once
    // it hears `Paired`, so whatever is already waiting is stale.
    drop_stale_streams(&agent.connection).await;
    // Tell the agent first: it opens the handshake stream as soon as it hears of the viewer.
    // Bounded: an agent that stopped reading its control line must not hold this viewer.
    let paired = match join.device {
        Some(_) => RelayMessage::PairedDevice { session: id },
        None => RelayMessage::Paired,
    };
    let told = tokio::time::timeout(shared.config.request_timeout, agent.events.send(paired.clone())).await;
    if !matches!(told, Ok(Ok(()))) || !send_relay(&mut send, &paired).await {
        agent
            .record
            .pairing_ended(generation, EndReason::ViewerLeft, 0, 0);
        if shared.registry().viewer_left(id, generation, false).is_some() {
            memory::close_down(&agent.connection);
        }
        return close(&connection, Refusal::PeerLeft);
    }
    let forwarded = forward::run(
        agent.connection.clone(),
        connection.clone(),
        budget.clone(),
        shared.config.idle_timeout,
        shared.config.max_session,
    );
    let end = tokio::select! {
        end = forwarded => Some(end),
        () = misbehaves(&mut recv) => None,
    };
    let (a2v, v2a) = (
        budget.forwarded(Direction::AgentToViewer),
        budget.forwarded(Direction::ViewerToAgent),
    );
    let spoke = v2a > 0;
    let viewer_gone = |reason: Refusal| {
        let mut r = shared.registry();
        if let Some(agent) = r.viewer_left(id, generation, spoke) {
            memory::close_down(&agent.connection);
            let _ = agent.events.try_send(RelayMessage::PeerLeft);
        }
        drop(r);
        if reason != Refusal::PeerLeft {
            close(&connection, reason);
        }
    };
    match end {
        None => {
            warn!(session = %id, "viewer broke the rendezvous protocol");
            agent
                .record
                .pairing_ended(generation, EndReason::BadRequest, a2v, v2a);
            viewer_gone(Refusal::BadRequest);
        }
        Some(End::ViewerGone) => {
            agent
                .record
                .pairing_ended(generation, EndReason::ViewerLeft, a2v, v2a);
            viewer_gone(Refusal::PeerLeft);
        }
        Some(End::AgentGone) => {
            let reason = departure(&shared, &agent.connection);
            let ended = if reason == Refusal::ShuttingDown {
                EndReason::ShuttingDown
            } else {
                EndReason::AgentLeft
            };
            agent.record.pairing_ended(generation, ended, a2v, v2a);
            close(&connection, reason);
        }
        Some(end @ (End::Idle | End::MaxDuration)) => {
            let (reason, ended) = if end == End::Idle {
                (Refusal::IdleTimeout, EndReason::IdleTimeout)
            } else {
                (Refusal::LimitExceeded, EndReason::LimitExceeded)
            };
            warn!(session = %id, %reason, "closing session");
            agent.record.pairing_ended(generation, ended, a2v, v2a);
            agent.record.ended(ended);
            let _ = agent.events.try_send(RelayMessage::Refused(reason));
            close(&connection, reason);
        }
    }
    shared.publish_counts();
}
