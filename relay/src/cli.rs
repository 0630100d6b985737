//! The command line: flags, `PONTE_RELAY_*` environment variables and a TOML file, in that
//! order of precedence, over the library's defaults ([`Config::default`]). Clap lives here,
//! not in the library, so that code embedding the relay builds a [`Config`] without it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ponte_relay::Config;
use ponte_relay::admission::AdmissionLimits;
use ponte_relay::cluster::{ClusterSettings, NodeName};
use ponte_relay::memory::{BufferLimits, Tier};
use ponte_relay::registry::RegistryLimits;
use ponte_relay::source::SourceMask;
use ponte_wire::rendezvous::NodeAddress;
use serde::Deserialize;

/// Declares a command-line (and config-file) twin of a library enum, variant for variant, and
/// its conversion into the library's. The doc comments are the `--help` text of the values.
macro_rules! twin {
    ($(#[$meta:meta])* $name:ident => $lib:path {
        $($(#[$vmeta:meta])* $variant:ident),* $(,)?
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
        #[serde(rename_all = "kebab-case")]
        pub enum $name {
            $($(#[$vmeta])* $variant),*
        }

        impl From<$name> for $lib {
            fn from(value: $name) -> Self {
                match value {
                    $($name::$variant => Self::$variant),*
                }
            }
        }
    };
}

twin! {
    /// Who may join sessions as an assistant.
    Assistants => ponte_relay::config::AssistantMode {
        /// Anyone with a session ID (and the customer's code).
        Open,
        /// Only viewers presenting a credential from `ponte-relay assistant add`.
        Required,
    }
}

twin! {
    /// When the relay makes clients prove their address with a QUIC Retry.
    Retry => ponte_relay::admission::RetryMode {
        /// Every new connection.
        Always,
        /// When half the connection slots are taken or many handshakes are in progress.
        UnderLoad,
        /// Never (only behind something that validates addresses already).
        Never,
    }
}

twin! {
    /// How much of the peers' addresses the ledger keeps.
    LedgerAddresses => ponte_relay::ledger::AddressMode {
        /// The whole address.
        Full,
        /// The network only: IPv4 /24, IPv6 /48.
        Truncated,
        /// No address.
        None,
    }
}

twin! {
    /// Export format.
    #[derive(Default)]
    ExportFormat => ponte_relay::ledger::report::Format {
        /// Comma-separated values with a header line.
        #[default]
        Csv,
        /// A JSON array of objects.
        Json,
    }
}

twin! {
    /// Report format.
    #[derive(Default)]
    ReportFormat => ponte_relay::ledger::report::ReportFormat {
        /// Aligned columns for people.
        #[default]
        Table,
        /// Comma-separated values with a header line.
        Csv,
        /// A JSON array of objects.
        Json,
    }
}

twin! {
    /// What a report groups by.
    GroupBy => ponte_relay::ledger::report::GroupBy {
        /// The ticket reference viewers gave.
        Ticket,
        /// The assistant account of the viewer.
        Assistant,
    }
}

/// Log output format (the binary's alone: the library only emits `tracing` events).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

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

/// Subcommands. Each reads the same `--data-dir`, `--config` and environment as the server,
/// so it finds the server's assistants file and ledger.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the SHA-256 fingerprint of the relay's certificate (generating it on first use).
    Fingerprint,
    /// Manage the assistants allowed to join when `--assistants required`.
    Assistant {
        /// What to do.
        #[command(subcommand)]
        command: AssistantCommand,
    },
    /// Read the session ledger.
    Ledger {
        /// What to do.
        #[command(subcommand)]
        command: LedgerCommand,
    },
    /// Set up and watch a relay cluster (several nodes sharing state in Redis).
    Cluster {
        /// What to do.
        #[command(subcommand)]
        command: ClusterCommand,
    },
    /// Manage the web console's operator accounts (kept in the ledger's database).
    ConsoleUser {
        /// What to do.
        #[command(subcommand)]
        command: ConsoleUserCommand,
    },
}

twin! {
    /// What an operator may do in the console.
    ConsoleRole => ponte_relay::console::accounts::Role {
        /// Everything: live sessions, the ledger, assistants, the cluster, the audit log.
        Admin,
        /// Read the ledger and its reports.
        Billing,
    }
}

/// `ponte-relay console-user …`
#[derive(Debug, Subcommand)]
pub enum ConsoleUserCommand {
    /// Add an operator account. The password is read from standard input (one line), or asked
    /// for twice without echo on a terminal; at least 12 characters.
    Add {
        /// The login name (letters, digits and . _ @ -).
        name: String,
        /// What the operator may do.
        #[arg(long, value_enum)]
        role: ConsoleRole,
        /// Also ask for a TOTP code at login: prints the secret and its otpauth:// link once,
        /// for an authenticator app.
        #[arg(long)]
        totp: bool,
    },
    /// List the operator accounts.
    List,
    /// Remove an operator account (its open logins end at their next request).
    Remove {
        /// The login name.
        name: String,
    },
}

/// `ponte-relay cluster …`
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Create the cluster key and certificate, and print the fingerprint clients pin. Keep the
    /// key off the nodes: only `certify` needs it.
    Init {
        /// Directory for cluster-key.pem and cluster-cert.pem [default: DATA_DIR/cluster].
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Issue a node's certificate, signed by the cluster key; start the node with
    /// `--cert node-NAME-cert.pem --key node-NAME-key.pem`.
    Certify {
        /// The node's name (as given to the node with --node-name).
        #[arg(long)]
        node_name: NodeName,
        /// The node's public address (as given to the node with --public-addr): the
        /// certificate is certified for it, and the other nodes redirect viewers to this node
        /// only there; its host is also a name for clients that use the cluster certificate as
        /// a CA.
        #[arg(long)]
        public_addr: Option<NodeAddress>,
        /// Directory with the cluster key [default: DATA_DIR/cluster].
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Where to write the node's certificate and key [default: the cluster directory].
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// List the cluster's live nodes, their sessions and health (needs --cluster).
    Status,
}

/// `ponte-relay assistant …`
#[derive(Debug, Subcommand)]
pub enum AssistantCommand {
    /// Add an assistant and print its credential once (the relay keeps only its public key).
    Add {
        /// The account name (letters, digits and . _ @ -), shown in the ledger.
        name: String,
        /// Write the credential to this file (created, owner-only) instead of printing it.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// List the assistants.
    List,
    /// Remove an assistant: its credential stops working at its next join.
    Remove {
        /// The account name.
        name: String,
    },
}

/// `ponte-relay ledger …`
#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Print the sessions registered in a period, as CSV or JSON.
    Export {
        /// First day (YYYY-MM-DD, UTC) or time (RFC 3339) to include [default: everything].
        #[arg(long)]
        since: Option<String>,
        /// First day or time to leave out [default: now and later are included].
        #[arg(long)]
        until: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: ExportFormat,
    },
    /// Print the total connected time (paired to ended) per ticket or per assistant.
    Report {
        /// Group by ticket reference or by assistant account.
        #[arg(long, value_enum)]
        by: GroupBy,
        /// Round each session up to a multiple of this many minutes first.
        #[arg(long, value_name = "MINUTES")]
        round_up: Option<u32>,
        /// First day (YYYY-MM-DD, UTC) or time (RFC 3339) to include.
        #[arg(long)]
        since: Option<String>,
        /// First day or time to leave out.
        #[arg(long)]
        until: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: ReportFormat,
    },
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

    /// Serve the web console on this TCP address (e.g. 127.0.0.1:9444) [default: off]. Beyond
    /// loopback it speaks only HTTPS, with the relay's certificate. Accounts: `console-user add`.
    #[arg(long, env = "PONTE_RELAY_CONSOLE")]
    pub console: Option<SocketAddr>,

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

    /// Join attempts per source per minute, sustained [default: 20].
    #[arg(long, env = "PONTE_RELAY_JOINS_PER_MINUTE")]
    pub joins_per_minute: Option<u32>,

    /// Join attempts per source in a burst [default: 10].
    #[arg(long, env = "PONTE_RELAY_JOIN_BURST")]
    pub join_burst: Option<u32>,

    /// Quick-access device lookups (a viewer joining by device tag) per source per minute,
    /// sustained [default: 6].
    #[arg(long, env = "PONTE_RELAY_DEVICE_LOOKUPS_PER_MINUTE")]
    pub device_lookups_per_minute: Option<u32>,

    /// Quick-access device lookups per source in a burst [default: 3].
    #[arg(long, env = "PONTE_RELAY_DEVICE_LOOKUP_BURST")]
    pub device_lookup_burst: Option<u32>,

    /// Viewers that may try the code of one session ID (pairings in which the viewer sent
    /// something); refused joins and viewers that leave without a word do not count
    /// [default: 10].
    #[arg(long, env = "PONTE_RELAY_ATTEMPTS_PER_SESSION", alias = "joins-per-session")]
    #[serde(alias = "joins-per-session")]
    pub attempts_per_session: Option<u32>,

    /// Agent registrations per source per minute, sustained [default: 30].
    #[arg(long, env = "PONTE_RELAY_REGISTRATIONS_PER_MINUTE")]
    pub registrations_per_minute: Option<u32>,

    /// Agent registrations per source in a burst [default: 10].
    #[arg(long, env = "PONTE_RELAY_REGISTRATION_BURST")]
    pub registration_burst: Option<u32>,

    /// Unpaired sessions one source may hold [default: 20].
    #[arg(
        long,
        env = "PONTE_RELAY_MAX_WAITING_PER_SOURCE",
        alias = "max-waiting-per-ip"
    )]
    #[serde(alias = "max-waiting-per-ip")]
    pub max_waiting_per_source: Option<u32>,

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

    /// Concurrent QUIC connections from one source [default: 64].
    #[arg(long, env = "PONTE_RELAY_MAX_CONNECTIONS_PER_SOURCE")]
    pub max_connections_per_source: Option<u32>,

    /// When clients must prove their address with a QUIC Retry before the relay keeps state
    /// for them [default: under-load: half the connection slots taken, or many handshakes in
    /// progress].
    #[arg(long, env = "PONTE_RELAY_RETRY", value_enum)]
    pub retry: Option<Retry>,

    /// IPv6 prefix length that counts as one source for every per-source limit [default: 64].
    #[arg(long, env = "PONTE_RELAY_IPV6_PREFIX", value_parser = clap::value_parser!(u8).range(16..=128))]
    pub ipv6_prefix: Option<u8>,

    /// Receive window of each forwarded stream, in KiB [default: 1024].
    #[arg(long, env = "PONTE_RELAY_STREAM_WINDOW_KIB", value_parser = clap::value_parser!(u64).range(16..=65536))]
    pub stream_window_kib: Option<u64>,

    /// Receive and send window of each paired connection, in KiB [default: 2048].
    #[arg(long, env = "PONTE_RELAY_CONNECTION_WINDOW_KIB", value_parser = clap::value_parser!(u64).range(64..=262144))]
    pub connection_window_kib: Option<u64>,

    /// Memory all paired connections' windows may reserve together, in MiB [default: 4096].
    #[arg(long, env = "PONTE_RELAY_MAX_BUFFERED_MIB")]
    pub max_buffered_mib: Option<u64>,

    /// Memory the paired connections of one source may reserve, in MiB [default: 256].
    #[arg(long, env = "PONTE_RELAY_MAX_BUFFERED_PER_SOURCE_MIB")]
    pub max_buffered_per_source_mib: Option<u64>,

    /// Seconds a client has to finish its handshake and to send its first request [default: 10].
    #[arg(long, env = "PONTE_RELAY_REQUEST_TIMEOUT_SECS")]
    pub request_timeout_secs: Option<u64>,

    /// Seconds paired sessions may go on after SIGTERM/SIGINT before they are closed [default: 30].
    #[arg(long, env = "PONTE_RELAY_SHUTDOWN_GRACE_SECS")]
    pub shutdown_grace_secs: Option<u64>,

    /// Who may join: `open` (anyone with the ID and code) or `required` (only assistants with
    /// a credential from `ponte-relay assistant add`) [default: open].
    #[arg(long, env = "PONTE_RELAY_ASSISTANTS", value_enum)]
    pub assistants: Option<Assistants>,

    /// The session ledger: `postgres://USER:PASSWORD@HOST/DB`, `sqlite:PATH` or `none`
    /// [default: ledger.sqlite3 in the data directory].
    #[arg(long, env = "PONTE_RELAY_LEDGER", global = true, hide_env_values = true)]
    pub ledger: Option<String>,

    /// Days ledger rows are kept; older ones are purged hourly; 0 keeps them [default: 365].
    #[arg(long, env = "PONTE_RELAY_LEDGER_RETENTION_DAYS")]
    pub ledger_retention_days: Option<u32>,

    /// How much of the peers' IP addresses the ledger keeps: `full`, `truncated` (/24 and
    /// /48) or `none` [default: truncated].
    #[arg(long, env = "PONTE_RELAY_LEDGER_ADDRESSES", value_enum)]
    pub ledger_addresses: Option<LedgerAddresses>,

    /// Join a relay cluster whose shared state is this Redis (`redis://HOST:PORT/DB`); needs
    /// --node-name and --public-addr [default: a single relay].
    #[arg(long, env = "PONTE_RELAY_CLUSTER", global = true, hide_env_values = true)]
    pub cluster: Option<String>,

    /// This node's name in the cluster (letters, digits, - _ .).
    #[arg(long, env = "PONTE_RELAY_NODE_NAME")]
    pub node_name: Option<NodeName>,

    /// Where clients reach this node (host:port); viewers that join on another node are sent
    /// here, if the node's certificate was certified for it (cluster certify --public-addr).
    #[arg(long, env = "PONTE_RELAY_PUBLIC_ADDR")]
    pub public_addr: Option<NodeAddress>,
}

impl Settings {
    /// Fills every unset field from `file`.
    pub fn or(self, file: Settings) -> Settings {
        macro_rules! merge {
            ($($field:ident),* $(,)?) => { Settings { $($field: self.$field.or(file.$field)),* } };
        }
        merge!(
            config,
            listen,
            data_dir,
            cert,
            key,
            metrics,
            console,
            log_format,
            pairing_ttl_secs,
            idle_timeout_secs,
            max_session_secs,
            joins_per_minute,
            join_burst,
            device_lookups_per_minute,
            device_lookup_burst,
            attempts_per_session,
            registrations_per_minute,
            registration_burst,
            max_waiting_per_source,
            max_waiting,
            session_bandwidth,
            total_bandwidth,
            max_connections,
            max_connections_per_source,
            retry,
            ipv6_prefix,
            stream_window_kib,
            connection_window_kib,
            max_buffered_mib,
            max_buffered_per_source_mib,
            request_timeout_secs,
            shutdown_grace_secs,
            assistants,
            ledger,
            ledger_retention_days,
            ledger_addresses,
            cluster,
            node_name,
            public_addr,
        )
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

    /// Checks what `resolve` cannot default: a cluster node needs its name and address.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.cluster.is_some() {
            anyhow::ensure!(
                self.node_name.is_some() && self.public_addr.is_some(),
                "--cluster needs --node-name and --public-addr"
            );
        }
        Ok(())
    }

    /// The relay's configuration: these settings over the library's defaults.
    pub fn resolve(self) -> Config {
        let defaults = Config::default();
        let secs = |v: Option<u64>, d: Duration| v.map_or(d, Duration::from_secs);
        let per_second = |per_minute: Option<u32>, d: f64| per_minute.map_or(d, |n| f64::from(n) / 60.0);
        let burst = |v: Option<u32>, d: f64| v.map_or(d, f64::from);
        // 0 means unlimited (None) for bandwidths and forever (None) for the ledger's retention.
        let nonzero = |v: Option<u64>, d: Option<u64>| v.map_or(d, |n| (n != 0).then_some(n));
        let mib = |v: Option<u64>, d: u64| v.map_or(d, |n| n.saturating_mul(1 << 20));
        let registry = defaults.registry;
        let admission = defaults.admission;
        let buffers = defaults.buffers;
        Config {
            listen: self.listen.unwrap_or(defaults.listen),
            data_dir: self.data_dir.unwrap_or(defaults.data_dir),
            cert: self.cert.zip(self.key),
            metrics: self.metrics,
            console: self.console,
            registry: RegistryLimits {
                pairing_ttl: secs(self.pairing_ttl_secs, registry.pairing_ttl),
                join_rate: per_second(self.joins_per_minute, registry.join_rate),
                join_burst: burst(self.join_burst, registry.join_burst),
                register_rate: per_second(self.registrations_per_minute, registry.register_rate),
                register_burst: burst(self.registration_burst, registry.register_burst),
                attempts_per_session: self.attempts_per_session.unwrap_or(registry.attempts_per_session),
                waiting_per_source: self.max_waiting_per_source.unwrap_or(registry.waiting_per_source),
                waiting_total: self.max_waiting.unwrap_or(registry.waiting_total),
                device_lookup_rate: per_second(self.device_lookups_per_minute, registry.device_lookup_rate),
                device_lookup_burst: burst(self.device_lookup_burst, registry.device_lookup_burst),
            },
            idle_timeout: secs(self.idle_timeout_secs, defaults.idle_timeout),
            max_session: secs(self.max_session_secs, defaults.max_session),
            session_bandwidth: nonzero(self.session_bandwidth, defaults.session_bandwidth),
            total_bandwidth: nonzero(self.total_bandwidth, defaults.total_bandwidth),
            admission: AdmissionLimits {
                max_connections: self.max_connections.unwrap_or(admission.max_connections),
                per_source: self.max_connections_per_source.unwrap_or(admission.per_source),
                retry: self.retry.map_or(admission.retry, Into::into),
            },
            sources: self.ipv6_prefix.map_or(defaults.sources, SourceMask::new),
            stream_window: self
                .stream_window_kib
                .map_or(defaults.stream_window, |kib| kib << 10),
            buffers: BufferLimits {
                total: mib(self.max_buffered_mib, buffers.total),
                per_source: mib(self.max_buffered_per_source_mib, buffers.per_source),
                full: self
                    .connection_window_kib
                    .map_or(buffers.full, |kib| Tier { window: kib << 10 }),
            },
            request_timeout: secs(self.request_timeout_secs, defaults.request_timeout),
            shutdown_grace: secs(self.shutdown_grace_secs, defaults.shutdown_grace),
            assistants: self.assistants.map_or(defaults.assistants, Into::into),
            ledger: self.ledger.or(defaults.ledger),
            ledger_retention: match self.ledger_retention_days {
                None => defaults.ledger_retention,
                Some(0) => None,
                Some(days) => Some(Duration::from_secs(u64::from(days) * 86_400)),
            },
            ledger_addresses: self
                .ledger_addresses
                .map_or(defaults.ledger_addresses, Into::into),
            cluster: match (self.cluster, self.node_name, self.public_addr) {
                (Some(url), Some(node), Some(public_addr)) => Some(ClusterSettings {
                    url,
                    node,
                    public_addr,
                }),
                _ => None,
            },
            // What no setting reaches (the purge period; the test tap, with test-tap).
            ..defaults
        }
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
        assert_eq!(c.admission.max_connections, 20_000);
        assert_eq!(c.admission.retry, ponte_relay::admission::RetryMode::UnderLoad);
        assert_eq!(c.assistants, ponte_relay::config::AssistantMode::Open);
        assert_eq!(c.ledger_retention, Some(Duration::from_secs(365 * 86_400)));
        assert!(matches!(
            c.ledger_target().unwrap(),
            ponte_relay::ledger::Target::Sqlite(_)
        ));
    }

    /// The packaged `relay.toml`: each `# key = value` line in it is the default, and with
    /// all of them uncommented the file parses (no unknown or misspelt setting) and changes
    /// nothing.
    #[test]
    fn the_shipped_config_file_states_the_defaults() {
        let setting = |line: &&str| {
            line.split_once(" = ").is_some_and(|(key, _)| {
                !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '-')
            })
        };
        let uncommented: String = include_str!("../relay.toml")
            .lines()
            .filter_map(|line| line.strip_prefix("# "))
            .filter(setting)
            .map(|line| format!("{line}\n"))
            .collect();
        assert!(uncommented.lines().count() >= 28, "{uncommented}");
        let file: Settings = toml::from_str(&uncommented).unwrap();
        assert_eq!(file.log_format, Some(LogFormat::default()));
        let (shipped, defaults) = (file.resolve(), Settings::default().resolve());
        assert_eq!(format!("{shipped:?}"), format!("{defaults:?}"));
        // As shipped, it sets the package's data directory and nothing else.
        let as_shipped: Settings = toml::from_str(include_str!("../relay.toml")).unwrap();
        assert_eq!(as_shipped.data_dir, Some(PathBuf::from("/var/lib/ponte-relay")));
        let mut rest = as_shipped.resolve();
        rest.data_dir = Settings::default().resolve().data_dir;
        assert_eq!(format!("{rest:?}"), format!("{defaults:?}"));
    }

    #[test]
    fn old_names_of_renamed_settings_still_work() {
        let file: Settings = toml::from_str("joins-per-session = 4\nmax-waiting-per-ip = 3").unwrap();
        let c = file.resolve();
        assert_eq!(c.registry.attempts_per_session, 4);
        assert_eq!(c.registry.waiting_per_source, 3);
        let cli = Cli::try_parse_from(["ponte-relay", "--joins-per-session", "5"]).unwrap();
        assert_eq!(cli.settings.attempts_per_session, Some(5));
    }

    #[test]
    fn subcommands_take_the_server_settings() {
        let cli = Cli::try_parse_from([
            "ponte-relay",
            "ledger",
            "report",
            "--by",
            "ticket",
            "--round-up",
            "15",
            "--data-dir",
            "/tmp/x",
            "--ledger",
            "postgres://u@h/db",
        ])
        .unwrap();
        assert_eq!(cli.settings.data_dir, Some(PathBuf::from("/tmp/x")));
        assert!(matches!(
            cli.command,
            Some(Command::Ledger {
                command: LedgerCommand::Report {
                    round_up: Some(15),
                    ..
                }
            })
        ));
        let cli = Cli::try_parse_from(["ponte-relay", "assistant", "add", "alice", "--out", "f"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Assistant {
                command: AssistantCommand::Add { .. }
            })
        ));
        assert!(Cli::try_parse_from(["ponte-relay", "--ipv6-prefix", "8"]).is_err());
    }

    #[test]
    fn no_settings_are_the_library_defaults() {
        // Config has no PartialEq (it may carry hooks); every field is Debug, which suffices.
        let resolved = Settings::default().resolve();
        assert_eq!(format!("{resolved:?}"), format!("{:?}", Config::default()));
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
