//! Prometheus metrics. Names are prefixed `ponte_relay_`; no label ever carries a session ID,
//! an address or anything from a client.

use std::net::SocketAddr;
use std::time::Duration;

use ponte_wire::rendezvous::Refusal;

/// Starts the HTTP exporter on `addr` (GET /metrics). A cluster node labels every series with
/// `node="NAME"`, so one dashboard can sum or split the nodes.
pub fn serve(addr: SocketAddr, node: Option<&str>) -> anyhow::Result<()> {
    let mut builder = metrics_exporter_prometheus::PrometheusBuilder::new().with_http_listener(addr);
    if let Some(node) = node {
        builder = builder.add_global_label("node", node);
    }
    builder
        .install()
        .map_err(|e| anyhow::anyhow!("metrics endpoint on {addr}: {e}"))?;
    metrics::describe_gauge!("ponte_relay_sessions_waiting", "Sessions waiting for a viewer");
    metrics::describe_gauge!("ponte_relay_sessions_paired", "Sessions with a paired viewer");
    metrics::describe_counter!("ponte_relay_joins_total", "Join attempts by outcome");
    metrics::describe_counter!(
        "ponte_relay_forwarded_bytes_total",
        "Bytes forwarded between peers"
    );
    metrics::describe_counter!("ponte_relay_refusals_total", "Refusals and closes by reason");
    metrics::describe_histogram!(
        "ponte_relay_pairing_latency_seconds",
        "Time from registration to pairing"
    );
    metrics::describe_counter!(
        "ponte_relay_sessions_ended_total",
        "Sessions ended, by end reason"
    );
    metrics::describe_counter!("ponte_relay_ledger_rows_written_total", "Ledger rows stored");
    metrics::describe_counter!(
        "ponte_relay_ledger_rows_failed_total",
        "Ledger rows lost (queue full or database failing)"
    );
    metrics::describe_counter!(
        "ponte_relay_ledger_rows_purged_total",
        "Ledger rows purged by retention"
    );
    metrics::describe_gauge!(
        "ponte_relay_ledger_up",
        "1 while the ledger database is connected"
    );
    metrics::describe_counter!(
        "ponte_relay_auth_refusals_total",
        "Joins refused for a missing or refused assistant credential"
    );
    metrics::describe_counter!(
        "ponte_relay_connections_refused_total",
        "Connections refused at the door, by reason"
    );
    metrics::describe_counter!(
        "ponte_relay_retries_total",
        "QUIC Retry packets sent (address validation)"
    );
    metrics::describe_gauge!(
        "ponte_relay_buffer_reserved_bytes",
        "Memory reserved for paired connections' windows"
    );
    metrics::describe_counter!(
        "ponte_relay_cluster_operations_total",
        "Round trips to the cluster's Redis"
    );
    metrics::describe_gauge!(
        "ponte_relay_cluster_up",
        "1 while the cluster's Redis answers (cluster nodes only)"
    );
    metrics::describe_counter!(
        "ponte_relay_redirects_total",
        "Viewers sent to the cluster node that holds their session"
    );
    metrics::describe_counter!(
        "ponte_relay_redirects_refused_total",
        "Joins not sent to the node the cluster named: gone, or not certified for its address"
    );
    // Publish zeros so dashboards see every series from the start.
    sessions(0, 0);
    forwarded(0);
    ledger_written(0);
    ledger_failed(0);
    buffers_reserved(0);
    for reason in ["credential_required", "credential_refused"] {
        metrics::counter!("ponte_relay_auth_refusals_total", "reason" => reason).increment(0);
    }
    for reason in ["node_gone", "uncertified"] {
        metrics::counter!("ponte_relay_redirects_refused_total", "reason" => reason).increment(0);
    }
    Ok(())
}

/// A short, stable label for a refusal reason.
pub fn reason_label(r: &Refusal) -> &'static str {
    match r {
        Refusal::UnknownSession => "unknown_session",
        Refusal::Expired => "expired",
        Refusal::AlreadyPaired => "already_paired",
        Refusal::Burned => "burned",
        Refusal::RateLimited { .. } => "rate_limited",
        Refusal::VersionUnsupported { .. } => "version_unsupported",
        Refusal::Capacity => "capacity",
        Refusal::LimitExceeded => "limit_exceeded",
        Refusal::IdleTimeout => "idle_timeout",
        Refusal::ShuttingDown => "shutting_down",
        Refusal::BadRequest => "bad_request",
        Refusal::PeerLeft => "peer_left",
        Refusal::Released => "released",
        Refusal::CredentialRequired => "credential_required",
        Refusal::CredentialRefused => "credential_refused",
        Refusal::ClusterUnavailable => "cluster_unavailable",
        Refusal::PeerLost => "peer_lost",
        Refusal::EndedByOperator => "ended_by_operator",
    }
}

/// Counts a refusal.
pub fn refused(r: &Refusal) {
    metrics::counter!("ponte_relay_refusals_total", "reason" => reason_label(r)).increment(1);
}

/// Counts a join by outcome (`paired` or a refusal reason).
pub fn join(outcome: &'static str) {
    metrics::counter!("ponte_relay_joins_total", "outcome" => outcome).increment(1);
}

/// Records the session counts.
pub fn sessions(waiting: usize, paired: usize) {
    metrics::gauge!("ponte_relay_sessions_waiting").set(waiting as f64);
    metrics::gauge!("ponte_relay_sessions_paired").set(paired as f64);
}

/// Records a pairing latency.
pub fn pairing_latency(d: Duration) {
    metrics::histogram!("ponte_relay_pairing_latency_seconds").record(d.as_secs_f64());
}

/// Counts forwarded bytes.
pub fn forwarded(bytes: usize) {
    metrics::counter!("ponte_relay_forwarded_bytes_total").increment(bytes as u64);
}

/// Counts a session that ended, by its ledger end reason.
pub fn session_ended(reason: &str) {
    let label = match reason {
        "agent_left" => "agent_left",
        "viewer_left" => "viewer_left",
        "expired" => "expired",
        "burned" => "burned",
        "idle_timeout" => "idle_timeout",
        "limit_exceeded" => "limit_exceeded",
        "shutting_down" => "shutting_down",
        "bad_request" => "bad_request",
        _ => "other",
    };
    metrics::counter!("ponte_relay_sessions_ended_total", "reason" => label).increment(1);
}

/// Counts ledger rows stored.
pub fn ledger_written(rows: u64) {
    metrics::counter!("ponte_relay_ledger_rows_written_total").increment(rows);
}

/// Counts ledger rows lost.
pub fn ledger_failed(rows: u64) {
    metrics::counter!("ponte_relay_ledger_rows_failed_total").increment(rows);
}

/// Counts ledger rows purged.
pub fn ledger_purged(rows: u64) {
    metrics::counter!("ponte_relay_ledger_rows_purged_total").increment(rows);
}

/// Whether the ledger database is connected.
pub fn ledger_up(up: bool) {
    metrics::gauge!("ponte_relay_ledger_up").set(if up { 1.0 } else { 0.0 });
}

/// Counts a join refused for its credential.
pub fn auth_refused(r: &Refusal) {
    metrics::counter!("ponte_relay_auth_refusals_total", "reason" => reason_label(r)).increment(1);
}

/// Counts a connection refused at the door (`full` or `per_source`).
pub fn connection_refused(reason: &'static str) {
    metrics::counter!("ponte_relay_connections_refused_total", "reason" => reason).increment(1);
}

/// Counts a Retry sent.
pub fn retry() {
    metrics::counter!("ponte_relay_retries_total").increment(1);
}

/// Records the bytes reserved for windows.
pub fn buffers_reserved(bytes: u64) {
    metrics::gauge!("ponte_relay_buffer_reserved_bytes").set(bytes as f64);
}

/// Counts a round trip to the cluster's Redis.
pub fn cluster_operation() {
    metrics::counter!("ponte_relay_cluster_operations_total").increment(1);
}

/// Whether the cluster's Redis answers.
pub fn cluster_up(up: bool) {
    metrics::gauge!("ponte_relay_cluster_up").set(if up { 1.0 } else { 0.0 });
}

/// Counts a viewer redirected to another node.
pub fn redirect() {
    metrics::counter!("ponte_relay_redirects_total").increment(1);
}

/// Counts a join not redirected to the node the cluster named (`node_gone` or `uncertified`).
pub fn redirect_refused(reason: &'static str) {
    metrics::counter!("ponte_relay_redirects_refused_total", "reason" => reason).increment(1);
}
