//! Where ledger rows live: an SQLite file or a PostgreSQL database, one schema with numbered
//! migrations, the same statements for both (only the parameter syntax differs).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{AuditRow, LedgerError, OperatorRow, Row};

/// Schema migrations, applied in order, each once. Never edit a released one: add another.
const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        "CREATE TABLE ponte_sessions (
        id BIGINT PRIMARY KEY,
        session_id TEXT NOT NULL,
        registered_ms BIGINT NOT NULL,
        paired_ms BIGINT,
        ended_ms BIGINT,
        end_reason TEXT,
        bytes_agent_to_viewer BIGINT NOT NULL,
        bytes_viewer_to_agent BIGINT NOT NULL,
        attempts INTEGER NOT NULL,
        assistant TEXT,
        ticket TEXT,
        agent_address TEXT,
        viewer_address TEXT
    );
    CREATE INDEX ponte_sessions_registered ON ponte_sessions (registered_ms);",
    ),
    // The web console's operator accounts and its audit log (kept with the ledger's
    // retention): in the ledger's database, so every node of a cluster shares them.
    (
        2,
        "CREATE TABLE ponte_console_operators (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        totp_secret TEXT,
        created_ms BIGINT NOT NULL
    );
    CREATE TABLE ponte_console_audit (
        id BIGINT PRIMARY KEY,
        at_ms BIGINT NOT NULL,
        operator TEXT NOT NULL,
        action TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE INDEX ponte_console_audit_at ON ponte_console_audit (at_ms);",
    ),
];

const COLUMNS: &str = "id, session_id, registered_ms, paired_ms, ended_ms, end_reason, \
    bytes_agent_to_viewer, bytes_viewer_to_agent, attempts, assistant, ticket, agent_address, viewer_address";

const UPDATE: &str = "session_id = excluded.session_id, registered_ms = excluded.registered_ms, \
    paired_ms = excluded.paired_ms, ended_ms = excluded.ended_ms, end_reason = excluded.end_reason, \
    bytes_agent_to_viewer = excluded.bytes_agent_to_viewer, bytes_viewer_to_agent = excluded.bytes_viewer_to_agent, \
    attempts = excluded.attempts, assistant = excluded.assistant, ticket = excluded.ticket, \
    agent_address = excluded.agent_address, viewer_address = excluded.viewer_address";

/// `$1, $2, …, $n` (PostgreSQL) or `?1, …, ?n` (SQLite).
fn placeholders(n: usize, sigil: char) -> String {
    (1..=n)
        .map(|i| format!("{sigil}{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn upsert_sql(sigil: char) -> String {
    format!(
        "INSERT INTO ponte_sessions ({COLUMNS}) VALUES ({}) ON CONFLICT (id) DO UPDATE SET {UPDATE}",
        placeholders(13, sigil)
    )
}

fn select_sql(sigil: char) -> String {
    format!(
        "SELECT {COLUMNS} FROM ponte_sessions WHERE registered_ms >= {sigil}1 AND registered_ms < {sigil}2 \
         ORDER BY registered_ms, id"
    )
}

fn purge_sql(sigil: char) -> String {
    format!("DELETE FROM ponte_sessions WHERE registered_ms < {sigil}1")
}

fn purge_audit_sql(sigil: char) -> String {
    format!("DELETE FROM ponte_console_audit WHERE at_ms < {sigil}1")
}

const OPERATORS_SQL: &str =
    "SELECT name, role, password_hash, totp_secret, created_ms FROM ponte_console_operators ORDER BY name";

fn add_operator_sql(sigil: char) -> String {
    format!(
        "INSERT INTO ponte_console_operators (name, role, password_hash, totp_secret, created_ms) \
         VALUES ({}) ON CONFLICT (name) DO NOTHING",
        placeholders(5, sigil)
    )
}

fn remove_operator_sql(sigil: char) -> String {
    format!("DELETE FROM ponte_console_operators WHERE name = {sigil}1")
}

fn audit_sql(sigil: char) -> String {
    format!(
        "INSERT INTO ponte_console_audit (id, at_ms, operator, action, detail) VALUES ({})",
        placeholders(5, sigil)
    )
}

fn audit_log_sql(sigil: char) -> String {
    format!(
        "SELECT at_ms, operator, action, detail FROM ponte_console_audit ORDER BY at_ms DESC, id LIMIT {sigil}1"
    )
}

const LAST_USE_SQL: &str = "SELECT assistant, MAX(paired_ms) FROM ponte_sessions \
    WHERE assistant IS NOT NULL AND paired_ms IS NOT NULL GROUP BY assistant";

const SCHEMA_TABLE: &str = "CREATE TABLE IF NOT EXISTS ponte_ledger_schema (version INTEGER NOT NULL)";

fn newest() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.0)
}

fn too_new(found: i32) -> LedgerError {
    LedgerError::Schema(format!(
        "the ledger's schema version {found} is newer than this relay's ({}); upgrade the relay",
        newest()
    ))
}

/// An open ledger database.
pub enum Store {
    /// An SQLite file (used from blocking threads: SQLite calls block).
    Sqlite(Arc<Mutex<rusqlite::Connection>>),
    /// A PostgreSQL connection.
    Postgres(tokio_postgres::Client),
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Store::Sqlite(_) => "Store::Sqlite",
            Store::Postgres(_) => "Store::Postgres",
        })
    }
}

async fn blocking<T: Send + 'static>(
    conn: &Arc<Mutex<rusqlite::Connection>>,
    f: impl FnOnce(&mut rusqlite::Connection) -> Result<T, rusqlite::Error> + Send + 'static,
) -> Result<T, LedgerError> {
    let conn = conn.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = conn.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut conn)
    })
    .await
    .map_err(|e| LedgerError::Schema(format!("ledger thread failed: {e}")))?
    .map_err(LedgerError::from)
}

fn open_sqlite(path: &Path) -> Result<rusqlite::Connection, LedgerError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| LedgerError::Io(path.display().to_string(), e))?;
    }
    // Created private: the ledger names addresses, assistants and tickets.
    if !path.exists() {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        options
            .open(path)
            .map_err(|e| LedgerError::Io(path.display().to_string(), e))?;
    }
    let mut conn = rusqlite::Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    // WAL: readers (export, report) do not block the relay's writes.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute_batch(SCHEMA_TABLE)?;
    let current: i32 = tx.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM ponte_ledger_schema",
        [],
        |r| r.get(0),
    )?;
    if current > newest() {
        return Err(too_new(current));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        tx.execute_batch(sql)?;
        tx.execute("INSERT INTO ponte_ledger_schema (version) VALUES (?1)", [version])?;
    }
    tx.commit()?;
    Ok(conn)
}

async fn open_postgres(config: &tokio_postgres::Config) -> Result<tokio_postgres::Client, LedgerError> {
    let mut config = config.clone();
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(5));
    }
    let (mut client, connection) = config.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!("ledger: PostgreSQL connection ended: {e}");
        }
    });
    let tx = client.transaction().await?;
    // Several relays may start at once against one database: migrate one at a time.
    tx.batch_execute("SELECT pg_advisory_xact_lock(7074736500)")
        .await?;
    tx.batch_execute(SCHEMA_TABLE).await?;
    let current: i32 = tx
        .query_one("SELECT COALESCE(MAX(version), 0) FROM ponte_ledger_schema", &[])
        .await?
        .get(0);
    if current > newest() {
        return Err(too_new(current));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO ponte_ledger_schema (version) VALUES ($1)",
            &[version],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(client)
}

fn sqlite_row(r: &rusqlite::Row<'_>) -> Result<Row, rusqlite::Error> {
    Ok(Row {
        id: r.get(0)?,
        session: r.get(1)?,
        registered: r.get(2)?,
        paired: r.get(3)?,
        ended: r.get(4)?,
        end_reason: r.get(5)?,
        bytes_agent_to_viewer: r.get(6)?,
        bytes_viewer_to_agent: r.get(7)?,
        attempts: r.get(8)?,
        assistant: r.get(9)?,
        ticket: r.get(10)?,
        agent_address: r.get(11)?,
        viewer_address: r.get(12)?,
    })
}

fn postgres_row(r: &tokio_postgres::Row) -> Result<Row, tokio_postgres::Error> {
    Ok(Row {
        id: r.try_get(0)?,
        session: r.try_get(1)?,
        registered: r.try_get(2)?,
        paired: r.try_get(3)?,
        ended: r.try_get(4)?,
        end_reason: r.try_get(5)?,
        bytes_agent_to_viewer: r.try_get(6)?,
        bytes_viewer_to_agent: r.try_get(7)?,
        attempts: r.try_get(8)?,
        assistant: r.try_get(9)?,
        ticket: r.try_get(10)?,
        agent_address: r.try_get(11)?,
        viewer_address: r.try_get(12)?,
    })
}

impl Store {
    /// Opens an SQLite ledger file, creating and migrating it as needed.
    pub async fn sqlite(path: PathBuf) -> Result<Store, LedgerError> {
        let conn = tokio::task::spawn_blocking(move || open_sqlite(&path))
            .await
            .map_err(|e| LedgerError::Schema(format!("ledger thread failed: {e}")))??;
        Ok(Store::Sqlite(Arc::new(Mutex::new(conn))))
    }

    /// Connects to a PostgreSQL ledger, migrating its schema as needed.
    pub async fn postgres(config: &tokio_postgres::Config) -> Result<Store, LedgerError> {
        Ok(Store::Postgres(open_postgres(config).await?))
    }

    /// Inserts or updates rows (by `id`) in one transaction.
    pub async fn upsert(&mut self, rows: Vec<Row>) -> Result<(), LedgerError> {
        match self {
            Store::Sqlite(conn) => {
                blocking(conn, move |conn| {
                    let tx = conn.transaction()?;
                    {
                        let mut stmt = tx.prepare_cached(&upsert_sql('?'))?;
                        for r in &rows {
                            stmt.execute(rusqlite::params![
                                r.id,
                                r.session,
                                r.registered,
                                r.paired,
                                r.ended,
                                r.end_reason,
                                r.bytes_agent_to_viewer,
                                r.bytes_viewer_to_agent,
                                r.attempts,
                                r.assistant,
                                r.ticket,
                                r.agent_address,
                                r.viewer_address
                            ])?;
                        }
                    }
                    tx.commit()
                })
                .await
            }
            Store::Postgres(client) => {
                let tx = client.transaction().await?;
                let stmt = tx.prepare(&upsert_sql('$')).await?;
                for r in &rows {
                    tx.execute(
                        &stmt,
                        &[
                            &r.id,
                            &r.session,
                            &r.registered,
                            &r.paired,
                            &r.ended,
                            &r.end_reason,
                            &r.bytes_agent_to_viewer,
                            &r.bytes_viewer_to_agent,
                            &r.attempts,
                            &r.assistant,
                            &r.ticket,
                            &r.agent_address,
                            &r.viewer_address,
                        ],
                    )
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }
        }
    }

    /// Deletes rows registered before `before_ms`, and console audit entries older than that;
    /// returns how many rows.
    pub async fn purge(&mut self, before_ms: i64) -> Result<u64, LedgerError> {
        match self {
            Store::Sqlite(conn) => {
                blocking(conn, move |conn| {
                    conn.execute(&purge_audit_sql('?'), [before_ms])?;
                    conn.execute(&purge_sql('?'), [before_ms]).map(|n| n as u64)
                })
                .await
            }
            Store::Postgres(client) => {
                client.execute(&purge_audit_sql('$'), &[&before_ms]).await?;
                Ok(client.execute(&purge_sql('$'), &[&before_ms]).await?)
            }
        }
    }

    /// Rows registered in `[since_ms, until_ms)`, oldest first.
    pub async fn rows(&mut self, since_ms: i64, until_ms: i64) -> Result<Vec<Row>, LedgerError> {
        match self {
            Store::Sqlite(conn) => {
                blocking(conn, move |conn| {
                    let mut stmt = conn.prepare(&select_sql('?'))?;
                    let rows = stmt.query_map([since_ms, until_ms], sqlite_row)?;
                    rows.collect()
                })
                .await
            }
            Store::Postgres(client) => client
                .query(&select_sql('$'), &[&since_ms, &until_ms])
                .await?
                .iter()
                .map(|r| postgres_row(r).map_err(LedgerError::from))
                .collect(),
        }
    }

    /// The console's operator accounts, by name.
    pub async fn operators(&mut self) -> Result<Vec<OperatorRow>, LedgerError> {
        let operator = |name, role, password_hash, totp_secret, created| OperatorRow {
            name,
            role,
            password_hash,
            totp_secret,
            created,
        };
        match self {
            Store::Sqlite(conn) => {
                blocking(conn, move |conn| {
                    let mut stmt = conn.prepare(OPERATORS_SQL)?;
                    let rows = stmt.query_map([], |r| {
                        Ok(operator(r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                    })?;
                    rows.collect()
                })
                .await
            }
            Store::Postgres(client) => client
                .query(OPERATORS_SQL, &[])
                .await?
                .iter()
                .map(|r| {
                    Ok(operator(
                        r.try_get(0)?,
                        r.try_get(1)?,
                        r.try_get(2)?,
                        r.try_get(3)?,
                        r.try_get(4)?,
                    ))
                })
                .collect(),
        }
    }

    /// Adds an operator account; `false` if one of that name exists (it is left as it is).
    pub async fn add_operator(&mut self, op: OperatorRow) -> Result<bool, LedgerError> {
        let n = match self {
            Store::Sqlite(conn) => {
                blocking(conn, move |conn| {
                    conn.execute(
                        &add_operator_sql('?'),
                        rusqlite::params![op.name, op.role, op.password_hash, op.totp_secret, op.created],
                    )
                })
                .await? as u64
            }
            Store::Postgres(client) => {
                client
                    .execute(
                        &add_operator_sql('$'),
                        &[
                            &op.name,
                            &op.role,
                            &op.password_hash,
                            &op.totp_secret,
                            &op.created,
                        ],
                    )
                    .await?
            }
        };
        Ok(n == 1)
    }

    /// Removes an operator account; `false` if there was none of that name.
    pub async fn remove_operator(&mut self, name: &str) -> Result<bool, LedgerError> {
        let n = match self {
            Store::Sqlite(conn) => {
                let name = name.to_owned();
                blocking(conn, move |conn| conn.execute(&remove_operator_sql('?'), [name])).await? as u64
            }
            Store::Postgres(client) => client.execute(&remove_operator_sql('$'), &[&name]).await?,
        };
        Ok(n > 0)
    }

    /// Appends an entry to the console's audit log.
    pub async fn audit(&mut self, entry: AuditRow) -> Result<(), LedgerError> {
        let id = super::random_id();
        match self {
            Store::Sqlite(conn) => {
                blocking(conn, move |conn| {
                    conn.execute(
                        &audit_sql('?'),
                        rusqlite::params![id, entry.at, entry.operator, entry.action, entry.detail],
                    )
                })
                .await?;
            }
            Store::Postgres(client) => {
                client
                    .execute(
                        &audit_sql('$'),
                        &[&id, &entry.at, &entry.operator, &entry.action, &entry.detail],
                    )
                    .await?;
            }
        }
        Ok(())
    }

    /// The newest `limit` entries of the console's audit log, newest first.
    pub async fn audit_log(&mut self, limit: i64) -> Result<Vec<AuditRow>, LedgerError> {
        let entry = |at, operator, action, detail| AuditRow {
            at,
            operator,
            action,
            detail,
        };
        match self {
            Store::Sqlite(conn) => {
                blocking(conn, move |conn| {
                    let mut stmt = conn.prepare(&audit_log_sql('?'))?;
                    let rows =
                        stmt.query_map([limit], |r| Ok(entry(r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
                    rows.collect()
                })
                .await
            }
            Store::Postgres(client) => client
                .query(&audit_log_sql('$'), &[&limit])
                .await?
                .iter()
                .map(|r| Ok(entry(r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))
                .collect(),
        }
    }

    /// When each assistant account was last paired with a session (ms since 1970).
    pub async fn last_use(&mut self) -> Result<Vec<(String, i64)>, LedgerError> {
        match self {
            Store::Sqlite(conn) => {
                blocking(conn, move |conn| {
                    let mut stmt = conn.prepare(LAST_USE_SQL)?;
                    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
                    rows.collect()
                })
                .await
            }
            Store::Postgres(client) => client
                .query(LAST_USE_SQL, &[])
                .await?
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect(),
        }
    }
}
