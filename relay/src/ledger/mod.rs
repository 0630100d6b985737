//! The session ledger: one row of metadata per session — ID, registered, paired and ended
//! times (UTC), end reason, bytes each way, attempts, the assistant's account, the ticket and
//! the peers' addresses as configured. Never content, codes or keys.
//!
//! Rows go to an embedded SQLite file in the data directory by default, or to PostgreSQL.
//! Forwarding never waits for the database: sessions hand their rows to a bounded queue and a
//! single writer task stores them in batches. If the queue is full or the database fails, the
//! rows are dropped, logged, and counted (`ponte_relay_ledger_rows_failed_total`), and the
//! relay goes on relaying: an operator would rather lose a billing row than every session.
//! A row is written when a viewer is paired (so a crash leaves evidence of the open
//! connection) and again when the session ends.

mod record;
pub mod report;
mod store;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};

pub use record::{EndReason, SessionRecord, ViewerFacts};
pub use store::Store;

/// The ledger file's name in the data directory.
pub const SQLITE_FILE: &str = "ledger.sqlite3";

/// Rows waiting for the writer; beyond this, rows are dropped and counted as failed.
const QUEUE: usize = 8192;

/// Most rows stored in one transaction.
const BATCH: usize = 512;

/// How long the writer waits before trying an unreachable database again.
const RECONNECT_AFTER: Duration = Duration::from_secs(5);

/// Longest a batch or a purge may take before the writer gives up on the connection (a
/// database behind a dead network link would otherwise hold the writer forever).
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

async fn bounded<T>(
    work: impl std::future::Future<Output = Result<T, LedgerError>>,
) -> Result<T, LedgerError> {
    tokio::time::timeout(STATEMENT_TIMEOUT, work)
        .await
        .unwrap_or_else(|_| Err(LedgerError::Schema("the database did not answer in time".into())))
}

/// What went wrong with the ledger database.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// SQLite failed.
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL failed.
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// A file could not be created.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// The schema or the setting is unusable.
    #[error("{0}")]
    Schema(String),
}

/// One session's row. Times are milliseconds since 1970-01-01 UTC. (Serialized only for a
/// cluster's consoles: each node publishes its live sessions' rows in Redis.)
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Row {
    /// A random key: session IDs come back after a while, rows do not.
    pub id: i64,
    /// The 9-digit session ID.
    pub session: String,
    /// When the agent registered.
    pub registered: i64,
    /// When the viewer of the session's last pairing was paired; none if no pairing stood
    /// (every viewer was turned away by the agent, or none came).
    pub paired: Option<i64>,
    /// When that pairing ended, or the session if it had none; none while it is open.
    pub ended: Option<i64>,
    /// Why it ended ([`EndReason`] labels).
    pub end_reason: Option<String>,
    /// Bytes forwarded from the agent to viewers, over all pairings.
    pub bytes_agent_to_viewer: i64,
    /// Bytes forwarded from viewers to the agent, over all pairings.
    pub bytes_viewer_to_agent: i64,
    /// Viewers paired with the session.
    pub attempts: i32,
    /// The assistant account of the last pairing's viewer (with credentials).
    pub assistant: Option<String>,
    /// The ticket the last pairing's viewer gave.
    pub ticket: Option<String>,
    /// The agent's address as configured.
    pub agent_address: Option<String>,
    /// The last pairing's viewer's address as configured.
    pub viewer_address: Option<String>,
}

/// A random positive row key: session IDs come back after a while, rows do not.
pub(crate) fn random_id() -> i64 {
    use rand_core::Rng;
    (ponte_wire::os_rng().next_u64() >> 1) as i64
}

/// An operator account of the web console, as stored (see `crate::console::accounts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorRow {
    /// The login name.
    pub name: String,
    /// `admin` or `billing`.
    pub role: String,
    /// The password's argon2id hash in PHC string form (never the password).
    pub password_hash: String,
    /// The TOTP secret (base32), when the account has a second factor.
    pub totp_secret: Option<String>,
    /// When the account was made (ms since 1970 UTC).
    pub created: i64,
}

/// One action in the console's audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    /// When (ms since 1970 UTC).
    pub at: i64,
    /// The operator who acted (or tried to log in as).
    pub operator: String,
    /// What, e.g. `login`, `end-session`, `add-assistant`.
    pub action: String,
    /// Its object and details, e.g. the assistant's name or the reason given.
    pub detail: String,
}

/// Where the ledger lives.
#[derive(Clone)]
pub enum Target {
    /// No ledger.
    Off,
    /// An SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database.
    Postgres(Box<tokio_postgres::Config>),
}

impl Target {
    /// Parses `--ledger`: `postgres://…` (or `postgresql://…`), `sqlite:PATH`, or `none`;
    /// without a value, `ledger.sqlite3` in `data_dir`.
    pub fn parse(value: Option<&str>, data_dir: &Path) -> Result<Target, LedgerError> {
        let Some(value) = value.map(str::trim) else {
            return Ok(Target::Sqlite(data_dir.join(SQLITE_FILE)));
        };
        if value == "none" {
            Ok(Target::Off)
        } else if value.starts_with("postgres://") || value.starts_with("postgresql://") {
            tokio_postgres::Config::from_str(value)
                .map(|c| Target::Postgres(Box::new(c)))
                // The parser's message never includes the URL, which may hold a password.
                .map_err(|e| LedgerError::Schema(format!("--ledger: not a usable PostgreSQL URL: {e}")))
        } else if let Some(path) = value.strip_prefix("sqlite:") {
            Ok(Target::Sqlite(PathBuf::from(path)))
        } else {
            Err(LedgerError::Schema(
                "--ledger takes postgres://USER@HOST/DB, sqlite:PATH or none".into(),
            ))
        }
    }

    /// Opens the store (creating or migrating its schema); `None` when the ledger is off.
    pub async fn open(&self) -> Result<Option<Store>, LedgerError> {
        match self {
            Target::Off => Ok(None),
            Target::Sqlite(path) => Store::sqlite(path.clone()).await.map(Some),
            Target::Postgres(config) => Store::postgres(config).await.map(Some),
        }
    }
}

impl std::fmt::Display for Target {
    /// A description without secrets (no password).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Off => f.write_str("off"),
            Target::Sqlite(path) => write!(f, "SQLite {}", path.display()),
            Target::Postgres(c) => {
                let host = c.get_hosts().first().map_or_else(
                    || "localhost".to_owned(),
                    |h| match h {
                        tokio_postgres::config::Host::Tcp(name) => name.clone(),
                        #[cfg(unix)]
                        tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
                    },
                );
                let port = c.get_ports().first().copied().unwrap_or(5432);
                write!(
                    f,
                    "PostgreSQL database {} on {host}:{port}",
                    c.get_dbname().unwrap_or("(default)")
                )
            }
        }
    }
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Target({self})")
    }
}

/// How much of the peers' addresses the ledger keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AddressMode {
    /// The whole address.
    Full,
    /// The network only: IPv4 /24, IPv6 /48.
    #[default]
    Truncated,
    /// No address.
    None,
}

impl AddressMode {
    /// `ip` as this mode keeps it.
    pub fn keep(self, ip: std::net::IpAddr) -> Option<String> {
        match self {
            AddressMode::Full => Some(ip.to_string()),
            AddressMode::Truncated => Some(crate::source::truncate(ip, 24, 48).to_string()),
            AddressMode::None => None,
        }
    }
}

/// Milliseconds since 1970 UTC.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

enum Message {
    Row(Box<Row>),
    Flush(oneshot::Sender<()>),
}

/// Where sessions hand their rows: a cheap, cloneable sender to the writer (or nothing, when
/// the ledger is off).
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    queue: Option<mpsc::Sender<Message>>,
    open_records: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Message")
    }
}

/// Settings of the writer task.
#[derive(Debug, Clone)]
pub struct WriterSettings {
    /// Rows older than this are purged; `None` keeps them.
    pub retention: Option<Duration>,
    /// How often the purge runs (it also runs at start).
    pub purge_every: Duration,
}

impl Ledger {
    /// A ledger that records nothing.
    pub fn off() -> Ledger {
        Ledger::default()
    }

    /// Starts the writer for `target`. It connects (and migrates) in the background, so the
    /// relay starts even while the database is down; failures are logged and counted.
    pub fn start(target: Target, settings: WriterSettings) -> Ledger {
        if matches!(target, Target::Off) {
            return Ledger::off();
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(writer(target, rx, settings));
        Ledger {
            queue: Some(tx),
            open_records: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Hands a row to the writer without waiting; a full queue drops it (counted, and
    /// logged at most once a minute: a stalled database must not flood the log too).
    pub fn record(&self, row: Row) {
        static LAST_WARNING: std::sync::Mutex<Option<Instant>> = std::sync::Mutex::new(None);
        let Some(queue) = &self.queue else { return };
        if queue.try_send(Message::Row(Box::new(row))).is_err() {
            crate::metrics::ledger_failed(1);
            let mut last = LAST_WARNING.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                *last = Some(Instant::now());
                warn!("ledger: the writer is behind (queue full); rows are being dropped and counted");
            }
        }
    }

    /// Waits (up to `timeout`) until every session's final row is handed over and the writer
    /// has stored everything it was given (or given up on it).
    pub async fn flush(&self, timeout: Duration) {
        let Some(queue) = &self.queue else { return };
        let deadline = Instant::now() + timeout;
        while self.open_records.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (done, wait) = oneshot::channel();
        let left = deadline.saturating_duration_since(Instant::now());
        if tokio::time::timeout(left, queue.send(Message::Flush(done)))
            .await
            .is_ok()
        {
            let _ = tokio::time::timeout(left, wait).await;
        }
    }

    fn opened(&self) {
        self.open_records.fetch_add(1, Ordering::SeqCst);
    }

    fn closed(&self) {
        self.open_records.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The writer: owns the database connection, stores rows in batches, purges old rows.
async fn writer(target: Target, mut rx: mpsc::Receiver<Message>, settings: WriterSettings) {
    let mut store: Option<Store> = None;
    let mut retry_at = Instant::now();
    let mut last_complaint: Option<Instant> = None;
    let mut purge = tokio::time::interval(settings.purge_every);
    purge.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    crate::metrics::ledger_up(false);
    loop {
        let mut flushes = Vec::new();
        let mut rows = Vec::new();
        tokio::select! {
            message = rx.recv() => match message {
                None => return,
                Some(Message::Flush(done)) => flushes.push(done),
                Some(Message::Row(row)) => rows.push(*row),
            },
            _ = purge.tick() => {
                if let Some(retention) = settings.retention
                    && let Some(s) = connected(&target, &mut store, &mut retry_at).await
                {
                    let cutoff = now_ms().saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX));
                    match bounded(s.purge(cutoff)).await {
                        Ok(n) => {
                            crate::metrics::ledger_purged(n);
                            info!(rows = n, days = retention.as_secs() / 86_400, "ledger: purged sessions past the retention period");
                        }
                        Err(e) => {
                            error!("ledger: purge failed: {e}");
                            store = None;
                            crate::metrics::ledger_up(false);
                        }
                    }
                }
                continue;
            }
        }
        while rows.len() < BATCH {
            match rx.try_recv() {
                Ok(Message::Row(row)) => rows.push(*row),
                Ok(Message::Flush(done)) => flushes.push(done),
                Err(_) => break,
            }
        }
        if !rows.is_empty() {
            let n = rows.len() as u64;
            let result = match connected(&target, &mut store, &mut retry_at).await {
                Some(s) => bounded(s.upsert(rows)).await,
                None => Err(LedgerError::Schema("not connected".into())),
            };
            match result {
                Ok(()) => crate::metrics::ledger_written(n),
                Err(e) => {
                    crate::metrics::ledger_failed(n);
                    if last_complaint.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                        error!(rows = n, "ledger: cannot write to {target}: {e}");
                        last_complaint = Some(Instant::now());
                    }
                    // The connection may be gone or stuck: open a fresh one for the next batch.
                    store = None;
                    crate::metrics::ledger_up(false);
                }
            }
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

/// The open store, connecting first if needed (at most every [`RECONNECT_AFTER`]).
async fn connected<'a>(
    target: &Target,
    store: &'a mut Option<Store>,
    retry_at: &mut Instant,
) -> Option<&'a mut Store> {
    if store.is_none() && Instant::now() >= *retry_at {
        match bounded(target.open()).await {
            Ok(Some(s)) => {
                info!("ledger: {target}");
                crate::metrics::ledger_up(true);
                *store = Some(s);
            }
            Ok(None) => {}
            Err(e) => {
                error!("ledger: cannot open {target}: {e}");
                *retry_at = Instant::now() + RECONNECT_AFTER;
            }
        }
    }
    store.as_mut()
}
