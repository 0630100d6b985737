//! The relay's configuration: plain data with safe defaults ([`Config::default`]). The
//! `ponte-relay` binary builds one from its flags, `PONTE_RELAY_*` environment variables and
//! TOML file; code that embeds the relay (tests, other front-ends) builds one directly.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::admission::{AdmissionLimits, RetryMode};
use crate::ledger::AddressMode;
use crate::memory::{BufferLimits, Tier};
use crate::registry::RegistryLimits;
use crate::source::SourceMask;

/// Who may join sessions as an assistant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AssistantMode {
    /// Anyone with a session ID (and the customer's code).
    #[default]
    Open,
    /// Only viewers presenting a credential from `ponte-relay assistant add`.
    Required,
}

/// The user's data directory for the relay.
pub fn default_data_dir() -> PathBuf {
    dirs::data_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("ponte-relay")
}

/// The relay's resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// UDP listen address.
    pub listen: SocketAddr,
    /// Where the self-signed certificate, the assistants and the SQLite ledger live.
    pub data_dir: PathBuf,
    /// A CA-issued certificate chain and key (PEM files) to use instead.
    pub cert: Option<(PathBuf, PathBuf)>,
    /// Prometheus endpoint address.
    pub metrics: Option<SocketAddr>,
    /// The web console's address (None: no console).
    pub console: Option<SocketAddr>,
    /// Registration and joining limits.
    pub registry: RegistryLimits,
    /// Idle time after which a paired session is closed.
    pub idle_timeout: Duration,
    /// Longest paired session.
    pub max_session: Duration,
    /// Per-session bandwidth in bytes per second (None: unlimited).
    pub session_bandwidth: Option<u64>,
    /// Total bandwidth in bytes per second (None: unlimited).
    pub total_bandwidth: Option<u64>,
    /// Connection slots, per source and in total, and address validation.
    pub admission: AdmissionLimits,
    /// How client addresses group into sources.
    pub sources: SourceMask,
    /// Receive window of each stream, in bytes.
    pub stream_window: u64,
    /// Windows of paired connections and the memory they may reserve.
    pub buffers: BufferLimits,
    /// Time a client has for its handshake and its first request.
    pub request_timeout: Duration,
    /// Grace period for paired sessions at shutdown.
    pub shutdown_grace: Duration,
    /// Who may join as an assistant.
    pub assistants: AssistantMode,
    /// The `--ledger` setting as given (see [`crate::ledger::Target::parse`]).
    pub ledger: Option<String>,
    /// How long ledger rows are kept (None: forever).
    pub ledger_retention: Option<Duration>,
    /// How much of the peers' addresses the ledger keeps.
    pub ledger_addresses: AddressMode,
    /// How often old ledger rows are purged (settable only from code, for tests).
    pub ledger_purge_every: Duration,
    /// A hook on forwarded bytes (tests only; see [`crate::tap::Tap`]).
    #[cfg(feature = "test-tap")]
    pub tap: Option<crate::tap::Tap>,
    /// The cluster this node belongs to (None: a single relay).
    pub cluster: Option<crate::cluster::ClusterSettings>,
}

impl Config {
    /// Where the ledger lives, from `--ledger` and the data directory.
    pub fn ledger_target(&self) -> Result<crate::ledger::Target, crate::ledger::LedgerError> {
        crate::ledger::Target::parse(self.ledger.as_deref(), &self.data_dir)
    }

    /// Defaults, listening on `listen`, with state in `data_dir`.
    pub fn new(listen: SocketAddr, data_dir: PathBuf) -> Config {
        Config {
            listen,
            data_dir,
            ..Config::default()
        }
    }
}

/// The relay's defaults: a single relay on UDP 0.0.0.0:4433 with its state in
/// [`default_data_dir`], limits sized for one modest host, and the ledger in the data directory.
/// `ponte-relay --help` states each of them; keep the two in step.
impl Default for Config {
    fn default() -> Config {
        Config {
            listen: SocketAddr::from(([0, 0, 0, 0], ponte_transport::DEFAULT_PORT)),
            data_dir: default_data_dir(),
            cert: None,
            metrics: None,
            console: None,
            registry: RegistryLimits {
                pairing_ttl: Duration::from_secs(600),
                join_rate: 20.0 / 60.0,
                join_burst: 10.0,
                register_rate: 30.0 / 60.0,
                register_burst: 10.0,
                attempts_per_session: 10,
                waiting_per_source: 20,
                waiting_total: 50_000,
                device_lookup_rate: 6.0 / 60.0,
                device_lookup_burst: 3.0,
            },
            idle_timeout: Duration::from_secs(900),
            max_session: Duration::from_secs(12 * 3600),
            session_bandwidth: Some(256 << 20),
            total_bandwidth: Some(1 << 30),
            admission: AdmissionLimits {
                max_connections: 20_000,
                per_source: 64,
                retry: RetryMode::default(),
            },
            sources: SourceMask::default(),
            stream_window: 1024 << 10,
            buffers: BufferLimits {
                total: 4096 << 20,
                per_source: 256 << 20,
                full: Tier { window: 2048 << 10 },
            },
            request_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(30),
            assistants: AssistantMode::default(),
            ledger: None,
            ledger_retention: Some(Duration::from_secs(365 * 86_400)),
            ledger_addresses: AddressMode::default(),
            ledger_purge_every: Duration::from_secs(3600),
            #[cfg(feature = "test-tap")]
            tap: None,
            cluster: None,
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_a_single_open_relay_with_a_local_ledger() {
        let c = Config::new("127.0.0.1:5000".parse().unwrap(), "/tmp/x".into());
        assert_eq!(c.listen, "127.0.0.1:5000".parse().unwrap());
        assert_eq!(c.registry.pairing_ttl, Duration::from_secs(600));
        assert_eq!(c.total_bandwidth, Some(1 << 30));
        assert_eq!(c.admission.max_connections, 20_000);
        assert_eq!(c.admission.retry, RetryMode::UnderLoad);
        assert_eq!(c.assistants, AssistantMode::Open);
        assert_eq!(c.ledger_retention, Some(Duration::from_secs(365 * 86_400)));
        assert!(c.cluster.is_none());
        assert!(matches!(
            c.ledger_target().unwrap(),
            crate::ledger::Target::Sqlite(_)
        ));
    }
}
