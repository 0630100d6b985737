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
    AgentLink, REFUSAL_LINGER, Shared, ViewerLink, close, departure, refuse, send_relay, tell_resume_ended,
};
use crate::cluster::{Joinable, RateLimit};
use crate::config::AssistantMode;
use crate::directory::{ClusterUpdate, Route};
use crate::forward::{self, Budget, Direction, End};
use crate::ledger::{EndReason, ViewerFacts};
use crate::memory::{self, Reservation};
use crate::registry::{Joining, Pairing, TurnedAway};
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
    /// What the viewer asked for: by ID, or by a device or resume tag (its credential proof
    /// binds the tag, and both peers hear `PairedDevice`).
    pub(super) target: JoinTarget,
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

/// How long a resume lookup is held while nobody waits under its tag (docs/PROTOCOL.md § 10):
/// the viewer looks once a second, so its agent is found the moment it is back.
const RESUME_HOLD: Duration = Duration::from_secs(1);

/// A join by device tag (quick access) or resume tag, before the tag is looked up.
pub(super) struct JoinByTag {
    pub(super) tag: DeviceTag,
    /// A resume tag: one-time and unguessable, so its lookups cost only the join limit, not
    /// the device-lookup limit that keeps long-lived tags from being probed.
    pub(super) resume: bool,
    pub(super) ticket: Option<Ticket>,
    pub(super) proof: Option<AssistantProof>,
}

/// A viewer joining by device tag: its credential first, as for joins by ID, so a viewer a
/// credential-only relay refuses learns nothing about the tag; then wherever the tag's agent
/// waits.
pub(super) async fn join_device(
    connection: Connection,
    mut send: SendStream,
    recv: RecvStream,
    join: JoinByTag,
    source: Source,
    shared: Arc<Shared>,
) {
    let JoinByTag {
        tag,
        resume,
        ticket,
        proof,
    } = join;
    let target = if resume {
        JoinTarget::Resume(tag)
    } else {
        JoinTarget::Device(tag)
    };
    if let Err(reason) = check_credential(&shared, &connection, target, proof.as_ref(), ticket.as_ref()) {
        crate::metrics::join(crate::metrics::reason_label(&reason));
        shared.counters.auth_refused.fetch_add(1, Ordering::Relaxed);
        crate::metrics::auth_refused(&reason);
        return refuse(&connection, &mut send, reason).await;
    }
    // A resume tag is found in its own namespace, and its lookup costs a join token here
    // (the join then takes none again): every miss is paid for.
    let slot = match resume {
        true => {
            let limit = RateLimit {
                rate: shared.config.registry.join_rate,
                burst: shared.config.registry.join_burst,
            };
            if let Err(refusal) = shared.directory.may_join(source, limit).await {
                crate::metrics::join(crate::metrics::reason_label(&refusal));
                return refuse(&connection, &mut send, refusal).await;
            }
            let slot = ponte_wire::device::resume_slot(tag);
            // The customer ended it while it waited: the viewer hears so, and the agent's proof.
            let ended = shared.registry().resume_ended(slot, Instant::now());
            if let Some(proof) = ended {
                crate::metrics::join("resume_ended");
                return tell_resume_ended(&connection, &mut send, proof).await;
            }
            slot
        }
        false => tag,
    };
    let route = match resume {
        true => shared.directory.route_resume(slot, source, RESUME_HOLD).await,
        false => {
            shared
                .directory
                .route_tag(slot, source, Instant::now(), true)
                .await
        }
    };
    match route {
        Route::Here(session) => {
            let join = Join {
                session,
                target,
                ticket,
                proof,
            };
            viewer(connection, send, recv, join, source, shared).await
        }
        Route::Redirect(node) => redirect(&connection, &mut send, tag, node).await,
        // The cluster's refusal of an entry it cannot trust, not an answer about the tag.
        Route::Refuse(reason @ Refusal::ClusterUnavailable) => refuse(&connection, &mut send, reason).await,
        Route::Refuse(reason) => {
            crate::metrics::join(crate::metrics::reason_label(&reason));
            debug!(%reason, "device join refused");
            refuse(&connection, &mut send, reason).await
        }
    }
}

/// A viewer: join, then forward between it and the agent until the session ends.
pub(super) async fn viewer(
    connection: Connection,
    mut send: SendStream,
    recv: RecvStream,
    join: Join,
    source: Source,
    shared: Arc<Shared>,
) {
    let id = join.session;
    let target = join.target;
    let credential = check_credential(
        &shared,
        &connection,
        target,
        join.proof.as_ref(),
        join.ticket.as_ref(),
    );
    let limit = RateLimit {
        rate: shared.config.registry.join_rate,
        burst: shared.config.registry.join_burst,
    };
    // (A resume paid for its lookup already.)
    if !matches!(target, JoinTarget::Resume(_))
        && let Err(refusal) = shared.directory.may_join(source, limit).await
    {
        crate::metrics::join(crate::metrics::reason_label(&refusal));
        return refuse(&connection, &mut send, refusal).await;
    }
    match shared.directory.route_id(id, credential.is_ok()).await {
        Route::Here(_) => {}
        Route::Redirect(node) => return redirect(&connection, &mut send, id, node).await,
        Route::Refuse(refusal) => return refuse(&connection, &mut send, refusal).await,
    }
    let budget = Budget::new(shared.config.session_bandwidth, shared.total_bandwidth.clone());
    #[cfg(feature = "test-tap")]
    let budget = budget.tapped(shared.config.tap.clone());
    let budget = Arc::new(budget);
    let pairing = match pair(&shared, &connection, &join, budget.clone(), source, &credential) {
        Ok(p) => p,
        Err(to_viewer) => return refuse(&connection, &mut send, to_viewer).await,
    };
    // Held for the life of this task, which is the life of the viewer's connection.
    let _reservation = pairing.reserved;
    let agent = pairing.agent;
    shared
        .directory
        .tell_cluster(id, agent.source, ClusterUpdate::Joinable(Joinable::No));
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
    if !announce(&shared, &agent, &mut send, id, join.target.tag()).await {
        agent
            .record
            .pairing_ended(generation, EndReason::ViewerLeft, 0, 0);
        if shared.registry().viewer_left(id, generation, false).is_some() {
            memory::close_down(&agent.connection);
        }
        return close(&connection, Refusal::PeerLeft);
    }
    let session = Session {
        id,
        generation,
        agent,
        viewer: connection,
        budget,
    };
    forward_until_end(&shared, &session, recv).await;
    shared.publish_counts();
}

/// Pairs the viewer on `connection` with the agent waiting under its join, opening up both
/// connections' windows; or the refusal the viewer hears (the agent is told when it should be).
fn pair(
    shared: &Shared,
    connection: &Connection,
    join: &Join,
    budget: Arc<Budget>,
    source: Source,
    credential: &Result<Option<String>, Refusal>,
) -> Result<Pairing<AgentLink, Reservation>, Refusal> {
    let link = ViewerLink {
        connection: connection.clone(),
        budget,
    };
    let joining = match join.target {
        JoinTarget::Session(_) => Joining::Id(join.session),
        JoinTarget::Device(_) => Joining::Device(join.session),
        JoinTarget::Resume(_) => Joining::Resume(join.session),
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
            memory::open_up(connection, mine.tier());
            Some(mine)
        },
    );
    joined.map_err(
        |TurnedAway {
             to_viewer,
             tell_agent,
         }| {
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
            debug!(session = %join.session, reason = %to_viewer, "join refused");
            to_viewer
        },
    )
}

/// Tells the agent, then the viewer, that they are paired; false when either does not hear it.
async fn announce(
    shared: &Shared,
    agent: &AgentLink,
    send: &mut SendStream,
    id: SessionId,
    device: Option<DeviceTag>,
) -> bool {
    // Streams the agent opened for an earlier viewer (who left before the relay forwarded
    // them) must not reach this one: the agent opens this pairing's handshake stream only once
    // it hears `Paired`, so whatever is already waiting is stale.
    drop_stale_streams(&agent.connection).await;
    // Tell the agent first: it opens the handshake stream as soon as it hears of the viewer.
    // Bounded: an agent that stopped reading its control line must not hold this viewer.
    let paired = match device {
        Some(_) => RelayMessage::PairedDevice { session: id },
        None => RelayMessage::Paired,
    };
    let told = tokio::time::timeout(shared.config.request_timeout, agent.events.send(paired.clone())).await;
    matches!(told, Ok(Ok(()))) && send_relay(send, &paired).await
}

/// A viewer paired with an agent.
struct Session {
    id: SessionId,
    generation: u64,
    agent: AgentLink,
    viewer: Connection,
    budget: Arc<Budget>,
}

/// Forwards between the peers of `session` until it ends, then records why and tells the
/// peer that stays.
async fn forward_until_end(shared: &Shared, session: &Session, mut recv: RecvStream) {
    let Session {
        id,
        generation,
        agent,
        viewer: connection,
        budget,
    } = session;
    let (id, generation) = (*id, *generation);
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
            close(connection, reason);
        }
    };
    match end {
        // An operator ended the session (`Control::end` closed both connections).
        Some(End::AgentGone | End::ViewerGone) if agent.operator_words.get().is_some() => {
            agent
                .record
                .pairing_ended(generation, EndReason::EndedByOperator, a2v, v2a);
        }
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
            let reason = departure(shared, &agent.connection);
            let ended = if reason == Refusal::ShuttingDown {
                EndReason::ShuttingDown
            } else {
                EndReason::AgentLeft
            };
            agent.record.pairing_ended(generation, ended, a2v, v2a);
            close(connection, reason);
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
            close(connection, reason);
        }
    }
}
