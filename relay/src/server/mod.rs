//! The relay server: admits QUIC connections, runs each client's rendezvous, pairs viewers
//! with waiting agents and forwards between them, keeps the ledger; shuts down gracefully.

mod accept;
mod agent;
mod heartbeat;
mod viewer;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ponte_transport::bucket::TokenBucket;
use ponte_transport::framed;
use ponte_transport::tls::CertFingerprint;
use ponte_wire::rendezvous::{self, Refusal, RelayMessage};
use quinn::{Connection, SendStream, VarInt};
use tokio::sync::{mpsc, watch};
use tracing::{debug, error, info, warn};

use crate::admission::Admission;
use crate::assistants::Assistants;
use crate::cluster::Cluster;
use crate::config::Config;
use crate::directory::{ClusterUpdate, Directory};
use crate::forward::{Budget, Direction};
use crate::ledger::{EndReason, Ledger, SessionRecord, WriterSettings};
use crate::memory::{self, Buffers, Reservation};
use crate::registry::Registry;
use crate::source::Source;
use heartbeat::{health, heartbeat, refresh_assistants};

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
    /// What an operator said when ending the session from the console, for both sides.
    operator_words: Arc<std::sync::OnceLock<String>>,
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
    /// The session table, and the cluster when this node is one of a cluster's.
    directory: Directory<AgentLink, ViewerLink>,
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
    /// Set at SIGTERM: the node takes no new sessions and tells the cluster so.
    draining: AtomicBool,
}

impl Shared {
    fn registry(&self) -> std::sync::MutexGuard<'_, Registry<AgentLink, ViewerLink>> {
        self.directory.registry()
    }

    fn publish_counts(&self) {
        let r = self.registry();
        crate::metrics::sessions(r.waiting(), r.paired());
    }
}

/// Warns when other nodes will not redirect viewers to this one: its certificate is not
/// signed by a cluster key (`signed`), or not certified for its public address.
fn check_certification(
    cluster: &Cluster,
    chain: &[rustls::pki_types::CertificateDer<'static>],
    signed: bool,
) {
    let public = cluster.public_addr();
    let certified = chain
        .first()
        .map(|c| crate::cert::certified_addresses(c))
        .unwrap_or_default();
    if !signed {
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
        // It fell silent or was reset, not closed: it may be back to resume the session.
        Some(
            quinn::ConnectionError::TimedOut
            | quinn::ConnectionError::Reset
            | quinn::ConnectionError::TransportError(_),
        ) => Refusal::PeerLost,
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
        Refusal::EndedByOperator => EndReason::EndedByOperator,
        _ => EndReason::AgentLeft,
    }
}

/// The console's handle on a running relay: its configuration, its live sessions, and ending
/// one of them.
#[derive(Clone)]
pub struct Control(Arc<Shared>);

impl Control {
    /// The relay's configuration.
    pub fn config(&self) -> &Config {
        &self.0.config
    }

    /// The sessions this node holds now, as their ledger rows stand, with the bytes of the
    /// current pairing counted in.
    pub fn live(&self) -> Vec<crate::ledger::Row> {
        // The records and counters are taken under the registry's lock, the rows made after.
        let held: Vec<_> = self
            .0
            .registry()
            .entries()
            .map(|(_, agent, viewer)| (agent.record.clone(), viewer.map(|v| v.budget.clone())))
            .collect();
        held.into_iter()
            .map(|(record, budget)| {
                let mut row = record.row();
                if let Some(budget) = budget {
                    let add = |total: i64, d| {
                        total.saturating_add(i64::try_from(budget.forwarded(d)).unwrap_or(i64::MAX))
                    };
                    row.bytes_agent_to_viewer = add(row.bytes_agent_to_viewer, Direction::AgentToViewer);
                    row.bytes_viewer_to_agent = add(row.bytes_viewer_to_agent, Direction::ViewerToAgent);
                }
                row
            })
            .collect()
    }

    /// Ends the session whose ledger row is `row`: both sides are told the relay's operator
    /// ended it, with `words`. Returns its ID, or `None` if this node holds no such session
    /// still going.
    pub fn end(&self, row: i64, words: &str) -> Option<ponte_wire::SessionId> {
        let registry = self.0.registry();
        let (id, agent, viewer) = registry
            .entries()
            .find(|(_, agent, _)| agent.record.id() == row && !agent.record.has_ended())?;
        // Both connections close at once, so each side hears the words before anything else
        // (a stream reset forwarded from the other side, say); the session's tasks see the
        // words set and record why it ended.
        agent.operator_words.set(words.to_owned()).ok()?;
        crate::metrics::refused(&Refusal::EndedByOperator);
        let code = VarInt::from_u32(Refusal::EndedByOperator.close_code());
        agent.connection.close(code, words.as_bytes());
        if let Some(viewer) = viewer {
            viewer.connection.close(code, words.as_bytes());
        }
        Some(id)
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
    console: Option<crate::console::ConsoleServer>,
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
            check_certification(cluster, &identity.chain, cluster_fingerprint.is_some());
        }
        let ledger_target = config.ledger_target()?;
        let transport = memory::unpaired_transport(config.stream_window);
        let console_identity = config.console.map(|_| crate::cert::Identity {
            chain: identity.chain.clone(),
            key: identity.key.clone_key(),
        });
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
            directory: Directory::new(
                Registry::new(config.registry.clone()),
                cluster,
                config.registry.pairing_ttl,
            ),
            admission: Admission::new(config.admission),
            buffers: Buffers::new(config.buffers),
            assistants: match &config.cluster {
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
            draining: AtomicBool::new(false),
        });
        if let Some(cluster) = shared.directory.cluster() {
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
            .directory
            .cluster()
            .cloned()
            .map(|cluster| tokio::spawn(heartbeat(shared.clone(), cluster)));
        let accept = tokio::spawn(accept::accept_loop(endpoint.clone(), shared.clone()));
        let console = match shared.config.console {
            Some(addr) => Some(crate::console::start(addr, Control(shared.clone()), console_identity).await?),
            None => None,
        };
        Ok(Relay {
            endpoint,
            shared,
            shutdown,
            fingerprint,
            cluster_fingerprint,
            accept,
            heartbeat,
            console,
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

    /// Where the web console listens, if it was started (`Config::console`).
    pub fn console_addr(&self) -> Option<SocketAddr> {
        self.console.as_ref().map(|c| c.local_addr())
    }

    /// Round trips this node made to the cluster's Redis (0 outside a cluster).
    pub fn cluster_operations(&self) -> u64 {
        self.shared.directory.cluster().map_or(0, |c| c.operations())
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
            redirects_refused: self.shared.directory.redirects_refused(),
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
        if let Some(cluster) = self.shared.directory.cluster() {
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
        if let Some(cluster) = self.shared.directory.cluster() {
            // The claims of sessions still held expire with their lease.
            if let Err(e) = cluster.leave().await {
                warn!("could not leave the cluster cleanly (its entry expires by itself): {e}");
            }
        }
        self.shared.ledger.flush(Duration::from_secs(5)).await;
        info!("relay stopped");
    }
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
            shared
                .directory
                .tell_cluster(id, agent.source, ClusterUpdate::Ended);
            let _ = agent.events.try_send(RelayMessage::Refused(Refusal::Expired));
        }
        shared.publish_counts();
    }
}

/// How long a refused client gets to read the refusal and hang up before it is closed.
pub(super) const REFUSAL_LINGER: Duration = Duration::from_secs(1);

async fn refuse(connection: &Connection, send: &mut SendStream, reason: Refusal) {
    let _ = framed::write(send, &rendezvous::encode_relay(&RelayMessage::Refused(reason))).await;
    let _ = send.finish();
    // A close discards data the client has not read yet, so let the client hang up first;
    // the close carries the same reason for clients that do not.
    let _ = tokio::time::timeout(REFUSAL_LINGER, connection.closed()).await;
    close(connection, reason);
}

/// Answers with `ResumeEnded { proof }` — to the agent that left it, or a viewer looking for
/// the session — lets the client read it and hang up, then closes.
async fn tell_resume_ended(connection: &Connection, send: &mut SendStream, proof: [u8; 32]) {
    if send_relay(send, &RelayMessage::ResumeEnded { proof }).await {
        let _ = send.finish();
        let _ = tokio::time::timeout(REFUSAL_LINGER, connection.closed()).await;
    }
    connection.close(0u32.into(), b"ended");
}

async fn send_relay(send: &mut SendStream, message: &RelayMessage) -> bool {
    framed::write(send, &rendezvous::encode_relay(message))
        .await
        .is_ok()
}
