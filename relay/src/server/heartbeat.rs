//! The node's side of a cluster: its heartbeat, which renews its entry and its sessions'
//! claims, shares its connection counts, reads the cluster's assistants, publishes its live
//! sessions for the consoles and ends those a console asked to end.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tracing::{debug, info};

use super::Shared;
use crate::cluster::{Cluster, Health, Joinable};

pub(super) fn health(shared: &Shared) -> Health {
    let r = shared.registry();
    Health {
        waiting: r.waiting(),
        paired: r.paired(),
        draining: shared.draining.load(Ordering::SeqCst),
    }
}

/// Renews this node's cluster entry and its sessions' claims until the relay stops.
pub(super) async fn heartbeat(shared: Arc<Shared>, cluster: Arc<Cluster>) {
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
        let (shared_counts, (), ()) = tokio::join!(
            cluster.share_connections(&here),
            refresh_assistants(&shared, &cluster),
            consoles(&shared, &cluster)
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

/// The consoles' part: publishes this node's live sessions and ends those a console of
/// another node asked to end.
async fn consoles(shared: &Arc<Shared>, cluster: &Cluster) {
    let control = super::Control(shared.clone());
    if let Err(e) = cluster.publish_live(&control.live()).await {
        debug!("live sessions not published: {e}");
    }
    match cluster.take_ends().await {
        Ok(ends) => {
            for (row, words) in ends {
                // The console made the words one bounded line; whoever wrote Redis may not have.
                let words = ponte_wire::rendezvous::operator_reason(&words);
                if let Some(id) = control.end(row, &words) {
                    info!(session = %id, reason = %words.escape_debug(), "session ended at a console's request through the cluster");
                }
            }
        }
        Err(e) => debug!("end requests not read: {e}"),
    }
}

/// Reads the cluster's assistant accounts; while Redis cannot be read, the last ones read stay.
pub(super) async fn refresh_assistants(shared: &Shared, cluster: &Cluster) {
    match cluster.assistant_lines().await {
        Ok(lines) => shared.assistants.replace(crate::assistants::parse_book(lines)),
        Err(e) => debug!("cluster assistants not read, keeping the last known: {e}"),
    }
}
