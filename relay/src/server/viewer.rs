//! The viewer's role: its credential, the cluster's redirect, the pairing, then forwarding
//! until the session ends.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ponte_transport::framed::{self, FramedError};
use ponte_wire::rendezvous::{
    self, AssistantProof, ClientMessage, JoinTarget, MAX_MESSAGE, Refusal, RelayMessage, Ticket,
};
use ponte_wire::{DeviceTag, SessionId};
use quinn::{Connection, RecvStream, SendStream, VarInt};
use tracing::{debug, info, warn};

use super::{
    AgentLink, ClusterUpdate, REFUSAL_LINGER, Shared, ViewerLink, close, departure, refuse, send_relay,
};
use crate::cluster::{Joinable, Located, RateLimit};
use crate::config::AssistantMode;
use crate::forward::{self, Budget, Direction, End};
use crate::ledger::{EndReason, ViewerFacts};
use crate::memory::{self, Reservation};
use crate::registry::{Joining, TurnedAway};
use crate::source::Source;

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
pub(super) struct Join {
    pub(super) session: SessionId,
    /// Set when the viewer joined by device tag (quick access): its credential proof binds the
    /// tag, and both peers hear `PairedDevice`.
    pub(super) device: Option<DeviceTag>,
    pub(super) ticket: Option<Ticket>,
    pub(super) proof: Option<AssistantProof>,
}

/// The verdict on a join's credential: the assistant's name, none (open relay, none
/// presented), or a refusal. A credential presented to an open relay is still checked, so a
/// revoked one is never silently ignored.
pub(super) fn check_credential(
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
pub(super) fn redirect_target(
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
pub(super) async fn redirect(
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
pub(super) async fn viewer(
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
