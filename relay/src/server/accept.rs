//! The door: admission of QUIC connections, and each client's first request, which says
//! which role it plays.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use ponte_transport::framed::{self, FramedError};
use ponte_wire::rendezvous::{self, ClientMessage, JoinTarget, MAX_MESSAGE, Refusal};
use quinn::Connection;
use tracing::debug;

use super::agent::{Paid, agent, end_resume, pay_registration, register_device};
use super::viewer::{Join, JoinByTag, join_device, viewer};
use super::{Shared, close, refuse};
use crate::admission::{Admitted, Crowded, Decision, Load};
use crate::source::Source;

pub(super) async fn accept_loop(endpoint: quinn::Endpoint, shared: Arc<Shared>) {
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
                // This task lives as long as its connection, and a future keeps room for what
                // it captured all along: the Incoming (half a kilobyte) is boxed.
                let incoming = Box::new(incoming);
                tokio::spawn(async move {
                    let remote = incoming.remote_address();
                    // A handshake that does not finish in time gives its slot back.
                    let connected = tokio::time::timeout(shared.config.request_timeout, *incoming).await;
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

/// Each role's future is boxed, and so is every other wait longer than a few bytes: this
/// task lives as long as its connection, and it is as large as the largest thing it may wait
/// on (docs/BENCHMARKS.md, relay memory per idle session).
async fn handle(connection: Connection, source: Source, slot: Admitted, shared: Arc<Shared>) {
    // The connection holds its slot until this task ends.
    let _slot = slot;
    let timeout = shared.config.request_timeout;
    let (mut send, mut recv) = match tokio::time::timeout(timeout, connection.accept_bi()).await {
        Ok(Ok(streams)) => streams,
        Ok(Err(_)) => return,
        Err(_) => return close(&connection, Refusal::BadRequest),
    };
    let first = Box::pin(framed::read_timeout::<ClientMessage>(
        &mut recv,
        MAX_MESSAGE,
        timeout,
    ))
    .await;
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
                    Box::pin(agent(connection, send, recv, source, shared, paid, None)).await
                }
                Err(reason) => refuse(&connection, &mut send, reason).await,
            }
        }
        Ok(Some(ClientMessage::RegisterDevice { tag })) => {
            Box::pin(register_device(connection, send, recv, source, shared, tag)).await
        }
        Ok(Some(ClientMessage::JoinDevice { tag, ticket, proof })) => {
            let join = JoinByTag {
                tag,
                resume: false,
                ticket,
                proof,
            };
            Box::pin(join_device(connection, send, recv, join, source, shared)).await
        }
        // No proof of possession as for a device tag: a resume tag is one-time and derived
        // from a secret only the two ends hold, and whoever answers under it must still prove
        // that secret end to end.
        Ok(Some(ClientMessage::RegisterResume { tag })) => {
            match Box::pin(pay_registration(&shared, source)).await {
                Ok(paid) => {
                    let slot = ponte_wire::device::resume_slot(tag);
                    Box::pin(agent(connection, send, recv, source, shared, paid, Some(slot))).await
                }
                Err(reason) => refuse(&connection, &mut send, reason).await,
            }
        }
        // Only the holder of the session's secret has the proof whose tag this is.
        Ok(Some(ClientMessage::EndResume { tag, proof }))
            if ponte_wire::device::resume_tag(&proof) != tag =>
        {
            refuse(&connection, &mut send, Refusal::BadRequest).await
        }
        Ok(Some(ClientMessage::EndResume { tag, proof })) => {
            match Box::pin(pay_registration(&shared, source)).await {
                Ok(_) => Box::pin(end_resume(connection, send, shared, source, (tag, proof))).await,
                Err(reason) => refuse(&connection, &mut send, reason).await,
            }
        }
        Ok(Some(ClientMessage::JoinResume { tag, ticket, proof })) => {
            let join = JoinByTag {
                tag,
                resume: true,
                ticket,
                proof,
            };
            Box::pin(join_device(connection, send, recv, join, source, shared)).await
        }
        Ok(Some(ClientMessage::Join { session })) => {
            let join = Join {
                session,
                target: JoinTarget::Session(session),
                ticket: None,
                proof: None,
            };
            Box::pin(viewer(connection, send, recv, join, source, shared)).await
        }
        Ok(Some(ClientMessage::JoinAs {
            session,
            ticket,
            proof,
        })) => {
            let join = Join {
                session,
                target: JoinTarget::Session(session),
                ticket,
                proof,
            };
            Box::pin(viewer(connection, send, recv, join, source, shared)).await
        }
        Ok(Some(_)) | Ok(None) => refuse(&connection, &mut send, Refusal::BadRequest).await,
        Err(FramedError::Frame(e)) => refuse(&connection, &mut send, rendezvous::refusal_for(&e)).await,
        Err(_) => close(&connection, Refusal::BadRequest),
    }
}
