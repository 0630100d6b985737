//! Prometheus metrics. Names are prefixed `ponte_relay_`; no label ever carries a session ID,
//! an address or anything from a client.

use std::net::SocketAddr;
use std::time::Duration;

use ponte_protocol::rendezvous::Refusal;

/// Starts the HTTP exporter on `addr` (GET /metrics).
pub fn serve(addr: SocketAddr) -> anyhow::Result<()> {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(addr)
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
    // Publish zeros so dashboards see every series from the start.
    sessions(0, 0);
    forwarded(0);
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
