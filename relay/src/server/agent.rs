//! The agent's role: registration (by ID or, proven, by device tag), then its control line
//! until the session ends.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ponte_transport::framed::{self, FramedError};
use ponte_wire::rendezvous::{self, ClientMessage, MAX_MESSAGE, Refusal, RelayMessage};
use ponte_wire::{DeviceTag, SessionId};
use quinn::{Connection, RecvStream, SendStream};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::{
    AgentLink, Shared, ViewerLink, close, departure, end_reason, refuse, send_relay, tell_resume_ended,
};
use crate::cluster::{Cluster, Joinable, RateLimit, RegisterLimits};
use crate::directory::ClusterUpdate;
use crate::ledger::{EndReason, SessionRecord};
use crate::memory;
use crate::registry::RegistrationToken;
use crate::source::Source;

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

/// The registration tokens taken for an agent before anything was spent on it: always this
/// node's, and the cluster's when `cluster` says so (else the claim takes it).
pub(super) struct Paid {
    pub(super) local: RegistrationToken,
    pub(super) cluster: bool,
}

/// Takes every registration token a registration from `source` needs — the cluster's, then
/// this node's — before anything is spent on it.
pub(super) async fn pay_registration(shared: &Shared, source: Source) -> Result<Paid, Refusal> {
    if let Some(cluster) = shared.directory.cluster() {
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
        cluster: shared.directory.cluster().is_some(),
    })
}

/// The customer ended a session that waited to be resumed under `tag` (paid for like a
/// registration): its viewer, looking there through any node, hears `proof`.
pub(super) async fn end_resume(
    connection: Connection,
    mut send: SendStream,
    shared: Arc<Shared>,
    source: Source,
    (tag, proof): (DeviceTag, [u8; 32]),
) {
    let slot = ponte_wire::device::resume_slot(tag);
    shared.registry().end_resume(slot, proof, source, Instant::now());
    if let Some(cluster) = shared.directory.cluster()
        && let Err(e) = cluster.device(slot, true).await
    {
        debug!("cluster claim of an ended resume deferred to the next heartbeat: {e}");
    }
    info!("a session waiting to be resumed was ended by the customer");
    tell_resume_ended(&connection, &mut send, proof).await;
}

/// A quick-access registration: the agent first proves it holds the private key of the device
/// whose tag it registers — knowing the public key, as every assistant it was given to does,
/// is not enough to take the tag (docs/PROTOCOL.md § 9.5).
pub(super) async fn register_device(
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

/// An agent's control line: register (with the tokens already `paid`), then relay events to
/// it and act on its requests.
pub(super) async fn agent(
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
            operator_words: Arc::default(),
        };
        made = Some(link.clone());
        link
    };
    let registered = match shared.directory.cluster() {
        None => shared
            .registry()
            .register_with(paid.local, make, Instant::now(), &mut ponte_wire::os_rng()),
        Some(cluster) => match claim(cluster, &shared, source, paid.cluster).await {
            Ok(id) => {
                let local = shared
                    .registry()
                    .register_as(paid.local, id, make, Instant::now());
                if local.is_err() {
                    shared.directory.tell_cluster(id, source, ClusterUpdate::Ended);
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
        if let Some(cluster) = shared.directory.cluster()
            && let Err(e) = cluster.device(tag, true).await
        {
            debug!("cluster device claim deferred to the next heartbeat: {e}");
        }
        shared
            .directory
            .tell_cluster(id, source, ClusterUpdate::Joinable(Joinable::No));
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
    if link.operator_words.get().is_some() {
        // An operator ended it (`Control::end`), whatever the loop noticed first.
        end = Refusal::EndedByOperator;
    }
    link.record.ended(match end {
        Refusal::PeerLeft => match departure(&shared, &connection) {
            Refusal::ShuttingDown => EndReason::ShuttingDown,
            _ => EndReason::AgentLeft,
        },
        other => end_reason(other),
    });
    let viewer = shared.registry().remove(id, Instant::now());
    shared.directory.tell_cluster(id, source, ClusterUpdate::Ended);
    if let Some(tag) = device {
        shared.directory.release_device(tag);
    }
    shared.publish_counts();
    if let Some(viewer) = viewer {
        // At shutdown the endpoint's close reaches each connection in its own time; whichever
        // comes first, the viewer must hear that the relay is stopping, not that the agent left.
        match end {
            // `Control::end` closed it already, with the operator's words.
            Refusal::EndedByOperator => {}
            Refusal::Burned | Refusal::ShuttingDown | Refusal::PeerLost => close(&viewer.connection, end),
            _ => close(&viewer.connection, Refusal::PeerLeft),
        }
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
                            shared.directory.tell_cluster(id, link.source, ClusterUpdate::Joinable(Joinable::Yes));
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
