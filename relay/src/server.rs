//! The relay server: accepts QUIC connections, runs each client's rendezvous, pairs viewers
//! with waiting agents and forwards between them; shuts down gracefully.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ponte_protocol::SessionId;
use ponte_protocol::rendezvous::{self, ClientMessage, MAX_MESSAGE, Refusal, RelayMessage};
use ponte_transport::framed::{self, FramedError};
use ponte_transport::tls::CertFingerprint;
use quinn::{Connection, RecvStream, SendStream, VarInt};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use crate::bucket::TokenBucket;
use crate::config::Config;
use crate::forward::{self, Budget, End};
use crate::registry::Registry;

/// What the registry keeps of an agent: its connection and a line to its control task.
#[derive(Debug, Clone)]
struct AgentLink {
    connection: Connection,
    events: mpsc::Sender<RelayMessage>,
}

struct Shared {
    config: Config,
    registry: Mutex<Registry<AgentLink, Connection>>,
    total_bandwidth: Option<Arc<tokio::sync::Mutex<TokenBucket>>>,
    shutting_down: watch::Receiver<bool>,
    /// Set just before the relay closes every connection at the end of a shutdown.
    closing: std::sync::atomic::AtomicBool,
}

impl Shared {
    fn registry(&self) -> std::sync::MutexGuard<'_, Registry<AgentLink, Connection>> {
        // A panic while holding the lock cannot leave the table half-updated in a way that
        // matters more than stopping the relay would.
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish_counts(&self) {
        let r = self.registry();
        crate::metrics::sessions(r.waiting(), r.paired());
    }
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
    let closing = shared.closing.load(std::sync::atomic::Ordering::SeqCst);
    match connection.close_reason() {
        _ if closing => Refusal::ShuttingDown,
        Some(quinn::ConnectionError::LocallyClosed) => Refusal::ShuttingDown,
        _ => Refusal::PeerLeft,
    }
}

/// A running relay.
pub struct Relay {
    endpoint: quinn::Endpoint,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    fingerprint: CertFingerprint,
    accept: tokio::task::JoinHandle<()>,
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
        let mut transport = ponte_transport::tls::transport_config(Duration::from_secs(30));
        // Streams a peer may have open at once; mirrored streams count on both sides.
        transport.max_concurrent_bidi_streams(VarInt::from_u32(256));
        transport.max_concurrent_uni_streams(VarInt::from_u32(256));
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
        let shared = Arc::new(Shared {
            registry: Mutex::new(Registry::new(config.registry.clone())),
            config,
            total_bandwidth,
            shutting_down,
            closing: std::sync::atomic::AtomicBool::new(false),
        });
        tokio::spawn(sweep(shared.clone()));
        let accept = tokio::spawn(accept_loop(endpoint.clone(), shared.clone()));
        Ok(Relay {
            endpoint,
            shared,
            shutdown,
            fingerprint,
            accept,
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

    /// Sessions waiting and paired right now.
    pub fn counts(&self) -> (usize, usize) {
        let r = self.shared.registry();
        (r.waiting(), r.paired())
    }

    /// Graceful shutdown: stop accepting, tell waiting agents, let paired sessions finish for
    /// up to the grace period, then close everything with a reason.
    pub async fn shutdown(self) {
        info!("shutting down: no new connections");
        let _ = self.shutdown.send(true);
        let waiting = self.shared.registry().waiting_agents();
        for (_, agent) in waiting {
            let _ = agent
                .events
                .try_send(RelayMessage::Refused(Refusal::ShuttingDown));
        }
        let deadline = Instant::now() + self.shared.config.shutdown_grace;
        while self.shared.registry().paired() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let reason = Refusal::ShuttingDown;
        self.shared
            .closing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.endpoint.close(
            VarInt::from_u32(reason.close_code()),
            reason.to_string().as_bytes(),
        );
        self.accept.abort();
        let _ = tokio::time::timeout(Duration::from_secs(3), self.endpoint.wait_idle()).await;
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
        if endpoint.open_connections() >= shared.config.max_connections {
            crate::metrics::refused(&Refusal::Capacity);
            incoming.refuse();
            continue;
        }
        let shared = shared.clone();
        tokio::spawn(async move {
            let remote = incoming.remote_address();
            match incoming.await {
                Ok(connection) => handle(connection, shared).await,
                Err(e) => debug!(%remote, "handshake failed: {e}"),
            }
        });
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

async fn handle(connection: Connection, shared: Arc<Shared>) {
    let timeout = shared.config.request_timeout;
    let ip = connection.remote_address().ip();
    let (mut send, mut recv) = match tokio::time::timeout(timeout, connection.accept_bi()).await {
        Ok(Ok(streams)) => streams,
        Ok(Err(_)) => return,
        Err(_) => return close(&connection, Refusal::BadRequest),
    };
    let first = framed::read_timeout::<ClientMessage>(&mut recv, MAX_MESSAGE, timeout).await;
    match first {
        Ok(Some(ClientMessage::Register)) => agent(connection, send, recv, ip, shared).await,
        Ok(Some(ClientMessage::Join { session })) => viewer(connection, send, session, ip, shared).await,
        Ok(Some(_)) | Ok(None) => refuse(&connection, &mut send, Refusal::BadRequest).await,
        Err(FramedError::Frame(e)) => refuse(&connection, &mut send, rendezvous::refusal_for(&e)).await,
        Err(_) => close(&connection, Refusal::BadRequest),
    }
}

async fn send_relay(send: &mut SendStream, message: &RelayMessage) -> bool {
    framed::write(send, &rendezvous::encode_relay(message))
        .await
        .is_ok()
}

/// An agent's control line: register, then relay events to it and act on its requests.
async fn agent(
    connection: Connection,
    mut send: SendStream,
    mut recv: RecvStream,
    ip: IpAddr,
    shared: Arc<Shared>,
) {
    let (events, mut inbox) = mpsc::channel(8);
    let registered = shared.registry().register(
        AgentLink {
            connection: connection.clone(),
            events,
        },
        ip,
        Instant::now(),
        &mut ponte_protocol::os_rng(),
    );
    let (id, ttl) = match registered {
        Ok(x) => x,
        Err(reason) => return refuse(&connection, &mut send, reason).await,
    };
    shared.publish_counts();
    info!(session = %id, "agent registered");
    let registered = RelayMessage::Registered {
        session: id,
        expires_in_secs: ttl.as_secs() as u32,
    };
    let mut end = Refusal::PeerLeft;
    if send_relay(&mut send, &registered).await {
        end = agent_loop(id, &connection, &mut send, &mut recv, &mut inbox, &shared).await;
    }
    let viewer = shared.registry().remove(id, end, Instant::now());
    shared.publish_counts();
    if let Some(viewer) = viewer {
        close(
            &viewer,
            if end == Refusal::Burned {
                Refusal::Burned
            } else {
                Refusal::PeerLeft
            },
        );
    }
    info!(session = %id, reason = %end, "agent session ended");
}

/// Runs until the agent leaves or the session ends; returns why.
async fn agent_loop(
    id: SessionId,
    connection: &Connection,
    send: &mut SendStream,
    recv: &mut RecvStream,
    inbox: &mut mpsc::Receiver<RelayMessage>,
    shared: &Shared,
) -> Refusal {
    loop {
        tokio::select! {
            request = framed::read::<ClientMessage>(recv, MAX_MESSAGE) => match request {
                Ok(Some(ClientMessage::Release)) => {
                    let released = shared.registry().release(id, Instant::now());
                    let Some((viewer, ttl)) = released else { return Refusal::PeerLeft };
                    if let Some(viewer) = viewer {
                        close(&viewer, Refusal::Released);
                    }
                    shared.publish_counts();
                    let again = RelayMessage::Registered { session: id, expires_in_secs: ttl.as_secs() as u32 };
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

/// A viewer: join, then forward between it and the agent until the session ends.
async fn viewer(
    connection: Connection,
    mut send: SendStream,
    id: SessionId,
    ip: IpAddr,
    shared: Arc<Shared>,
) {
    let joined = shared.registry().join(id, connection.clone(), ip, Instant::now());
    let pairing = match joined {
        Ok(p) => p,
        Err(reason) => {
            crate::metrics::join(crate::metrics::reason_label(&reason));
            debug!(session = %id, %reason, "join refused");
            return refuse(&connection, &mut send, reason).await;
        }
    };
    crate::metrics::join("paired");
    crate::metrics::pairing_latency(pairing.latency);
    shared.publish_counts();
    info!(session = %id, "viewer paired");
    // Streams the agent opened for an earlier viewer (who left before the relay forwarded
    // them) must not reach this one: the agent opens this pairing's handshake stream only once
    // it hears `Paired`, so whatever is already waiting is stale.
    drop_stale_streams(&pairing.agent.connection).await;
    // Tell the agent first: it opens the handshake stream as soon as it hears of the viewer.
    if pairing.agent.events.send(RelayMessage::Paired).await.is_err()
        || !send_relay(&mut send, &RelayMessage::Paired).await
    {
        shared.registry().viewer_left(id, pairing.generation);
        return close(&connection, Refusal::PeerLeft);
    }
    let agent = pairing.agent.connection.clone();
    let budget = Arc::new(Budget::new(
        shared.config.session_bandwidth,
        shared.total_bandwidth.clone(),
        shared.config.tap.clone(),
    ));
    let end = forward::run(
        agent.clone(),
        connection.clone(),
        budget,
        shared.config.idle_timeout,
        shared.config.max_session,
    )
    .await;
    match end {
        End::ViewerGone => {
            if let Some(agent) = shared.registry().viewer_left(id, pairing.generation) {
                let _ = agent.events.try_send(RelayMessage::PeerLeft);
            }
        }
        End::AgentGone => close(&connection, departure(&shared, &agent)),
        End::Idle | End::MaxDuration => {
            let reason = if end == End::Idle {
                Refusal::IdleTimeout
            } else {
                Refusal::LimitExceeded
            };
            warn!(session = %id, %reason, "closing session");
            let _ = pairing.agent.events.try_send(RelayMessage::Refused(reason));
            close(&connection, reason);
        }
    }
    shared.publish_counts();
}
