//! Settings: command-line flags, `PONTE_RELAY_*` environment variables and a TOML file, in
//! that order of precedence, over safe embedded defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Deserialize;

use crate::registry::RegistryLimits;

/// Ponte relay: pairs a customer's agent with an assistant's viewer by session ID and
/// forwards their end-to-end encrypted QUIC streams. It holds no key that could decrypt them.
///
/// With no arguments it listens on UDP 0.0.0.0:4433 with a self-signed certificate kept in
/// its data directory and prints that certificate's fingerprint for clients to pin.
#[derive(Debug, Parser)]
#[command(name = "ponte-relay", version, about, long_about)]
pub struct Cli {
    /// What to do (default: run the relay).
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Settings, each also settable in the config file (same name) or environment.
    #[command(flatten)]
    pub settings: Settings,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the SHA-256 fingerprint of the relay's certificate (generating it on first use).
    Fingerprint,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// Every setting. In the TOML file the keys are the flag names (`listen = "0.0.0.0:4433"`,
/// `pairing-ttl-secs = 600`, …).
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Settings {
    /// TOML file with any of these settings; flags and environment override it.
    #[arg(long, env = "PONTE_RELAY_CONFIG", global = true)]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// UDP address to listen on [default: 0.0.0.0:4433].
    #[arg(long, env = "PONTE_RELAY_LISTEN")]
    pub listen: Option<SocketAddr>,

    /// Directory for the generated certificate and key [default: the user's data directory,
    /// e.g. ~/.local/share/ponte-relay].
    #[arg(long, env = "PONTE_RELAY_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,

    /// PEM certificate chain issued by a CA (with --key) instead of the self-signed one.
    #[arg(long, env = "PONTE_RELAY_CERT", requires = "key")]
    pub cert: Option<PathBuf>,

    /// PEM private key for --cert.
    #[arg(long, env = "PONTE_RELAY_KEY", requires = "cert")]
    pub key: Option<PathBuf>,

    /// Serve Prometheus metrics over HTTP on this address (e.g. 127.0.0.1:9433) [default: off].
    #[arg(long, env = "PONTE_RELAY_METRICS")]
    pub metrics: Option<SocketAddr>,

    /// Log format [default: human]. The level comes from RUST_LOG (default: info).
    #[arg(long, env = "PONTE_RELAY_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,

    /// Seconds a session ID can be joined after it is issued [default: 600].
    #[arg(long, env = "PONTE_RELAY_PAIRING_TTL_SECS")]
    pub pairing_ttl_secs: Option<u64>,

    /// Seconds without forwarded traffic after which a paired session is closed [default: 900].
    #[arg(long, env = "PONTE_RELAY_IDLE_TIMEOUT_SECS")]
    pub idle_timeout_secs: Option<u64>,

    /// Longest a paired session may last, in seconds [default: 43200 = 12 h].
    #[arg(long, env = "PONTE_RELAY_MAX_SESSION_SECS")]
    pub max_session_secs: Option<u64>,

    /// Join attempts per client IP per minute, sustained [default: 20].
    #[arg(long, env = "PONTE_RELAY_JOINS_PER_MINUTE")]
    pub joins_per_minute: Option<u32>,

    /// Join attempts per client IP in a burst [default: 10].
    #[arg(long, env = "PONTE_RELAY_JOIN_BURST")]
    pub join_burst: Option<u32>,

    /// Join attempts against one session ID over its life [default: 10].
    #[arg(long, env = "PONTE_RELAY_JOINS_PER_SESSION")]
    pub joins_per_session: Option<u32>,

    /// Unpaired sessions one IP may hold [default: 20].
    #[arg(long, env = "PONTE_RELAY_MAX_WAITING_PER_IP")]
    pub max_waiting_per_ip: Option<u32>,

    /// Unpaired sessions in total [default: 50000].
    #[arg(long, env = "PONTE_RELAY_MAX_WAITING")]
    pub max_waiting: Option<usize>,

    /// Bytes per second one session may forward, both directions together; 0 = unlimited
    /// [default: 268435456 = 256 MiB/s].
    #[arg(long, env = "PONTE_RELAY_SESSION_BANDWIDTH")]
    pub session_bandwidth: Option<u64>,

    /// Bytes per second the relay forwards in total; 0 = unlimited [default: 1073741824 = 1 GiB/s].
    #[arg(long, env = "PONTE_RELAY_TOTAL_BANDWIDTH")]
    pub total_bandwidth: Option<u64>,

    /// Concurrent QUIC connections; further ones are refused at accept [default: 20000].
    #[arg(long, env = "PONTE_RELAY_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,

    /// Seconds a client has to send its first request [default: 10].
    #[arg(long, env = "PONTE_RELAY_REQUEST_TIMEOUT_SECS")]
    pub request_timeout_secs: Option<u64>,

    /// Seconds paired sessions may go on after SIGTERM/SIGINT before they are closed [default: 30].
    #[arg(long, env = "PONTE_RELAY_SHUTDOWN_GRACE_SECS")]
    pub shutdown_grace_secs: Option<u64>,
}

impl Settings {
    /// Fills every unset field from `file`.
    pub fn or(self, file: Settings) -> Settings {
        Settings {
            config: self.config.or(file.config),
            listen: self.listen.or(file.listen),
            data_dir: self.data_dir.or(file.data_dir),
            cert: self.cert.or(file.cert),
            key: self.key.or(file.key),
            metrics: self.metrics.or(file.metrics),
            log_format: self.log_format.or(file.log_format),
            pairing_ttl_secs: self.pairing_ttl_secs.or(file.pairing_ttl_secs),
            idle_timeout_secs: self.idle_timeout_secs.or(file.idle_timeout_secs),
            max_session_secs: self.max_session_secs.or(file.max_session_secs),
            joins_per_minute: self.joins_per_minute.or(file.joins_per_minute),
            join_burst: self.join_burst.or(file.join_burst),
            joins_per_session: self.joins_per_session.or(file.joins_per_session),
            max_waiting_per_ip: self.max_waiting_per_ip.or(file.max_waiting_per_ip),
            max_waiting: self.max_waiting.or(file.max_waiting),
            session_bandwidth: self.session_bandwidth.or(file.session_bandwidth),
            total_bandwidth: self.total_bandwidth.or(file.total_bandwidth),
            max_connections: self.max_connections.or(file.max_connections),
            request_timeout_secs: self.request_timeout_secs.or(file.request_timeout_secs),
            shutdown_grace_secs: self.shutdown_grace_secs.or(file.shutdown_grace_secs),
        }
    }

    /// Reads the config file, if one is named, and merges it under these settings.
    pub fn with_file(self) -> anyhow::Result<Settings> {
        let Some(path) = self.config.clone() else {
            return Ok(self);
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("cannot read config file {}: {e}", path.display()))?;
        let file: Settings =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))?;
        Ok(self.or(file))
    }

    /// The settings with defaults applied.
    pub fn resolve(self) -> Config {
        let secs = |v: Option<u64>, d: u64| Duration::from_secs(v.unwrap_or(d));
        let rate = |v: Option<u64>, d: u64| match v.unwrap_or(d) {
            0 => None,
            n => Some(n),
        };
        Config {
            listen: self
                .listen
                .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], ponte_transport::DEFAULT_PORT))),
            data_dir: self.data_dir.unwrap_or_else(default_data_dir),
            cert: self.cert.zip(self.key),
            metrics: self.metrics,
            log_format: self.log_format.unwrap_or_default(),
            registry: RegistryLimits {
                pairing_ttl: secs(self.pairing_ttl_secs, 600),
                join_rate: f64::from(self.joins_per_minute.unwrap_or(20)) / 60.0,
                join_burst: f64::from(self.join_burst.unwrap_or(10)),
                joins_per_session: self.joins_per_session.unwrap_or(10),
                waiting_per_ip: self.max_waiting_per_ip.unwrap_or(20),
                waiting_total: self.max_waiting.unwrap_or(50_000),
            },
            idle_timeout: secs(self.idle_timeout_secs, 900),
            max_session: secs(self.max_session_secs, 12 * 3600),
            session_bandwidth: rate(self.session_bandwidth, 256 << 20),
            total_bandwidth: rate(self.total_bandwidth, 1 << 30),
            max_connections: self.max_connections.unwrap_or(20_000),
            request_timeout: secs(self.request_timeout_secs, 10),
            shutdown_grace: secs(self.shutdown_grace_secs, 30),
            tap: None,
        }
    }
}

/// The user's data directory for the relay.
pub fn default_data_dir() -> PathBuf {
    dirs::data_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("ponte-relay")
}

/// A copy of every forwarded byte, for tests that prove what the relay can see. Settable only
/// from code (never from the command line or a config file).
#[derive(Clone)]
pub struct Tap(pub std::sync::Arc<TapFn>);

/// The function a [`Tap`] calls with each forwarded chunk.
pub type TapFn = dyn Fn(&[u8]) + Send + Sync;

impl std::fmt::Debug for Tap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tap")
    }
}

/// The relay's resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// UDP listen address.
    pub listen: SocketAddr,
    /// Where the self-signed certificate lives.
    pub data_dir: PathBuf,
    /// A CA-issued certificate chain and key (PEM files) to use instead.
    pub cert: Option<(PathBuf, PathBuf)>,
    /// Prometheus endpoint address.
    pub metrics: Option<SocketAddr>,
    /// Log format.
    pub log_format: LogFormat,
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
    /// Concurrent connections.
    pub max_connections: usize,
    /// Time a client has for its first request.
    pub request_timeout: Duration,
    /// Grace period for paired sessions at shutdown.
    pub shutdown_grace: Duration,
    /// Observer of forwarded bytes (tests only).
    pub tap: Option<Tap>,
}

impl Config {
    /// Defaults, listening on `listen`, with state in `data_dir`.
    pub fn new(listen: SocketAddr, data_dir: PathBuf) -> Config {
        Settings {
            listen: Some(listen),
            data_dir: Some(data_dir),
            ..Settings::default()
        }
        .resolve()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_override_defaults() {
        let file: Settings =
            toml::from_str("listen = \"127.0.0.1:5000\"\npairing-ttl-secs = 30\nsession-bandwidth = 0")
                .unwrap();
        let cli = Settings {
            pairing_ttl_secs: Some(45),
            ..Settings::default()
        };
        let c = cli.or(file).resolve();
        assert_eq!(c.listen, "127.0.0.1:5000".parse().unwrap());
        assert_eq!(c.registry.pairing_ttl, Duration::from_secs(45));
        assert_eq!(c.session_bandwidth, None);
        assert_eq!(c.total_bandwidth, Some(1 << 30));
        assert_eq!(c.max_connections, 20_000);
    }

    #[test]
    fn unknown_keys_in_file_are_errors() {
        assert!(toml::from_str::<Settings>("lisen = \"x\"").is_err());
    }

    #[test]
    fn cli_parses_and_env_applies() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from(["ponte-relay", "--listen", "127.0.0.1:1", "fingerprint"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Fingerprint)));
        assert_eq!(cli.settings.listen, Some("127.0.0.1:1".parse().unwrap()));
    }
}
