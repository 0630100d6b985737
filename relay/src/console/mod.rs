//! The relay's web console (`--console ADDR`): live sessions (and ending one), the ledger
//! with filters and downloads, reports, assistant accounts, the cluster and an audit log of
//! what operators did, for operators with an account (`ponte-relay console-user add`).
//!
//! Server-rendered pages ([`pages`]) without script. Logins are cookies
//! (`HttpOnly; Secure; SameSite=Strict`) naming a login in memory ([`gate`]); every change is
//! a POST carrying the login's CSRF token; login attempts are rate-limited per source and per
//! name; every answer carries a strict Content-Security-Policy. Nothing but `/health` (and
//! the login page with its style sheet and icon) answers without a login. Beyond loopback the
//! console speaks only TLS, with the relay's certificate.

// A handler's early answer is an axum `Response`, as axum's own rejections are.
#![allow(clippy::result_large_err)]

pub mod accounts;
pub mod gate;
pub mod pages;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, Form, FromRequestParts, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use maud::Markup;
use serde::Deserialize;
use tokio::sync::MappedMutexGuard;
use tracing::{debug, info, warn};

use self::accounts::Role;
use self::gate::{Gate, Login};
use self::pages::{LedgerFilter, Section};
use crate::assistants::AssistantAccounts;
use crate::cluster::ConsoleView;
use crate::ledger::report::{self, GroupBy};
use crate::ledger::{AuditRow, Row, Store, Target, now_ms};
use crate::server::Control;

/// The login cookie's name.
const COOKIE: &str = "ponte_console";

/// Longest a page may wait for the ledger's database.
const DATABASE_TIMEOUT: Duration = Duration::from_secs(10);

/// Entries shown on the audit page.
const AUDIT_PAGE: i64 = 500;

/// What went wrong serving the console.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// The address could not be bound.
    #[error("the console cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    /// TLS could not be set up with the relay's certificate.
    #[error("the console's TLS: {0}")]
    Tls(String),
    /// The ledger, the assistants or the cluster's Redis setting is unusable.
    #[error("the console: {0}")]
    Setup(String),
}

struct Console {
    control: Control,
    ledger: Target,
    store: tokio::sync::Mutex<Option<Store>>,
    gate: Mutex<Gate>,
    assistants: AssistantAccounts,
    /// The cluster's Redis URL and the view of its other nodes (None: a single relay).
    cluster: Option<(String, ConsoleView)>,
    node: Option<String>,
    /// Served over TLS (beyond loopback).
    tls: bool,
}

type Shared = Arc<Console>;

/// A running console.
#[derive(Debug)]
pub struct ConsoleServer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl ConsoleServer {
    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for ConsoleServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the console on `addr` for the relay behind `control`. Beyond loopback it serves
/// TLS with `identity` (the relay's certificate chain and key).
pub async fn start(
    addr: SocketAddr,
    control: Control,
    identity: Option<crate::cert::Identity>,
) -> Result<ConsoleServer, ConsoleError> {
    let config = control.config();
    let ledger = config
        .ledger_target()
        .map_err(|e| ConsoleError::Setup(e.to_string()))?;
    let cluster_url = config.cluster.as_ref().map(|c| c.url.clone());
    let assistants = AssistantAccounts::open(&config.data_dir, cluster_url.as_deref())
        .map_err(|e| ConsoleError::Setup(e.to_string()))?;
    let cluster = match cluster_url {
        Some(url) => {
            let view = ConsoleView::open(&url).map_err(|e| ConsoleError::Setup(e.to_string()))?;
            Some((url, view))
        }
        None => None,
    };
    let console = Arc::new(Console {
        node: config.cluster.as_ref().map(|c| c.node.to_string()),
        control,
        ledger,
        store: tokio::sync::Mutex::new(None),
        gate: Mutex::new(Gate::default()),
        assistants,
        cluster,
        tls: !addr.ip().is_loopback(),
    });
    let app = router(console).into_make_service_with_connect_info::<SocketAddr>();
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| ConsoleError::Bind(addr, e))?;
    let local = listener.local_addr().map_err(|e| ConsoleError::Bind(addr, e))?;
    // `tap_io` (doing nothing) gives the listener the connect info the login limits need.
    let task = if addr.ip().is_loopback() {
        let listener = limit::Limited::new(listener).tap_io(|_| {});
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                warn!("console stopped: {e}");
            }
        })
    } else {
        let identity = identity.ok_or_else(|| ConsoleError::Tls("no certificate".into()))?;
        let tls = tls::Listener::new(listener, identity).map_err(|e| ConsoleError::Tls(e.to_string()))?;
        let listener = limit::Limited::new(tls).tap_io(|_| {});
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                warn!("console stopped: {e}");
            }
        })
    };
    info!(addr = %local, tls = !addr.ip().is_loopback(), "console listening");
    Ok(ConsoleServer { addr: local, task })
}

fn router(console: Shared) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok\n" }))
        .route("/console.css", get(stylesheet))
        .route("/icon.svg", get(icon))
        .route("/login", get(login_form).post(log_in))
        .route("/logout", post(log_out))
        .route("/", get(home))
        .route("/sessions", get(sessions))
        .route("/sessions/end", post(end_session))
        .route("/ledger", get(ledger))
        .route("/ledger.csv", get(ledger_csv))
        .route("/ledger.json", get(ledger_json))
        .route("/reports", get(reports))
        .route("/assistants", get(assistants))
        .route("/assistants/add", post(add_assistant))
        .route("/assistants/remove", post(remove_assistant))
        .route("/cluster", get(cluster))
        .route("/audit", get(audit))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                pages::notice("Not found", "There is no such page."),
            )
        })
        .layer(axum::middleware::map_response_with_state(
            console.clone(),
            secure_headers,
        ))
        .layer(axum::middleware::from_fn_with_state(console.clone(), known_host))
        .with_state(console)
}

/// Headers on every answer: no script, no framing, nothing cached, no referrer; over TLS,
/// HTTPS only from then on.
async fn secure_headers(State(console): State<Shared>, mut response: Response) -> Response {
    let h = response.headers_mut();
    let set = |h: &mut HeaderMap, name: header::HeaderName, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(h, header::CACHE_CONTROL, "no-store");
    if console.tls {
        set(h, header::STRICT_TRANSPORT_SECURITY, "max-age=31536000");
    }
    response
}

/// On loopback (plain HTTP), only requests addressed to an IP address or `localhost`: a web
/// page whose name an attacker re-points at 127.0.0.1 (DNS rebinding) gets nothing. Over TLS
/// a re-pointed name fails the certificate instead.
async fn known_host(
    State(console): State<Shared>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    if console.tls || loopback_host(host) {
        next.run(request).await
    } else {
        (
            StatusCode::MISDIRECTED_REQUEST,
            pages::notice(
                "Wrong address",
                "Open the console by its IP address or as localhost.",
            ),
        )
            .into_response()
    }
}

/// Whether a Host header names an IP address or `localhost` (with or without a port).
fn loopback_host(host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        // `[::1]:9444`, `127.0.0.1:9444`, `localhost:9444`
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) && !name.ends_with(':') => name,
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok()
}

async fn stylesheet() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("console.css"),
    )
}

async fn icon() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "image/svg+xml")],
        include_str!("../../../agent/ponte-agent.svg"),
    )
}

/// The login cookie's value, if the request has one.
fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// A logged-in operator: extracting it from a request without a live login redirects to the
/// login page.
struct Operator(Login);

impl FromRequestParts<Shared> for Operator {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, console: &Shared) -> Result<Self, Self::Rejection> {
        let to_login = || Redirect::to("/login").into_response();
        let token = cookie(&parts.headers).ok_or_else(to_login)?;
        let login = console
            .gate
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .login(&token, Instant::now())
            .ok_or_else(to_login)?;
        // The account may have been removed (and perhaps made again, with a new password), or
        // its role changed, since (by `console-user`, in another process, or on another node).
        let current = console.operators().await?;
        if !current
            .iter()
            .any(|o| o.name == login.operator && o.role == login.role && o.created == login.created)
        {
            console
                .gate
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .close(&token);
            return Err(to_login());
        }
        Ok(Operator(login))
    }
}

/// A logged-in admin: other operators get a 403 page (the sections [`Section::allowed`] gives
/// admins only).
struct Admin(Login);

impl FromRequestParts<Shared> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, console: &Shared) -> Result<Self, Self::Rejection> {
        let Operator(login) = Operator::from_request_parts(parts, console).await?;
        if login.role == Role::Admin {
            Ok(Admin(login))
        } else {
            Err(forbidden())
        }
    }
}

/// A 403 page unless `csrf` is the login's token (every change carries it).
fn stale(login: &Login, csrf: &str) -> Option<Response> {
    (!gate::same_secret(csrf, &login.csrf)).then(|| {
        (
            StatusCode::FORBIDDEN,
            pages::notice(
                "Refused",
                "This form is stale or came from another site; reload the page and try again.",
            ),
        )
            .into_response()
    })
}

fn forbidden() -> Response {
    (
        StatusCode::FORBIDDEN,
        pages::notice("Not allowed", "Your role does not include this page."),
    )
        .into_response()
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> Response {
    warn!("console: {what}: {e}");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        pages::notice("Unavailable", &format!("{what} failed; see the relay's log.")),
    )
        .into_response()
}

impl Console {
    /// The ledger's database, connected (again) if needed.
    async fn store(&self) -> Result<MappedMutexGuard<'_, Store>, Response> {
        let mut guard = self.store.lock().await;
        if guard.is_none() {
            match tokio::time::timeout(DATABASE_TIMEOUT, self.ledger.open()).await {
                Ok(Ok(Some(store))) => *guard = Some(store),
                Ok(Ok(None)) => return Err(unavailable("the ledger", "it is off (--ledger none)")),
                Ok(Err(e)) => return Err(unavailable("opening the ledger", e)),
                Err(_) => return Err(unavailable("opening the ledger", "timed out")),
            }
        }
        tokio::sync::MutexGuard::try_map(guard, Option::as_mut)
            .map_err(|_| unavailable("the ledger", "not open"))
    }

    /// Runs a database operation; a failure drops the connection so the next one reconnects.
    async fn database<T>(
        &self,
        what: &str,
        work: impl AsyncFnOnce(&mut Store) -> Result<T, crate::ledger::LedgerError>,
    ) -> Result<T, Response> {
        let mut store = self.store().await?;
        match tokio::time::timeout(DATABASE_TIMEOUT, work(&mut store)).await {
            Ok(Ok(v)) => Ok(v),
            failed => {
                drop(store);
                *self.store.lock().await = None;
                Err(match failed {
                    Ok(Err(e)) => unavailable(what, e),
                    _ => unavailable(what, "timed out"),
                })
            }
        }
    }

    /// Writes an entry to the audit log; a failure is logged (the action was done).
    async fn audit(&self, operator: &str, action: &str, detail: String) {
        let entry = AuditRow {
            at: now_ms(),
            operator: operator.to_owned(),
            action: action.to_owned(),
            detail,
        };
        info!(operator, action, detail = %entry.detail.escape_debug(), "console");
        let _ = self
            .database("writing the audit log", async |s| s.audit(entry).await)
            .await;
    }

    /// The operator accounts as the database has them now.
    async fn operators(&self) -> Result<Vec<accounts::Operator>, Response> {
        self.database("reading the operator accounts", async |s| {
            accounts::operators(s).await.map_err(|e| match e {
                accounts::AccountError::Ledger(e) => e,
                other => crate::ledger::LedgerError::Schema(other.to_string()),
            })
        })
        .await
    }

    fn node(&self) -> Option<&str> {
        self.node.as_deref()
    }
}

async fn home(Operator(login): Operator) -> Redirect {
    let home = Section::home(login.role);
    Redirect::to(match home {
        Section::Sessions => "/sessions",
        _ => "/ledger",
    })
}

async fn login_form() -> Markup {
    pages::login(None)
}

#[derive(Deserialize)]
struct Credentials {
    name: String,
    password: String,
    /// The TOTP code, for accounts with a second factor.
    #[serde(default)]
    code: String,
}

async fn log_in(
    State(console): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Form(form): Form<Credentials>,
) -> Response {
    let name: String = form
        .name
        .trim()
        .chars()
        .take(crate::assistants::MAX_NAME)
        .collect();
    // The source's allowance first: a flood costs no database work.
    let source = console.control.config().sources.source(peer.ip());
    let too_many = |wait: Duration| {
        let message = format!("Too many attempts; try again in {} s.", wait.as_secs().max(1));
        (StatusCode::TOO_MANY_REQUESTS, pages::login(Some(&message))).into_response()
    };
    let from_source = console
        .gate
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .attempt_from(source, Instant::now());
    if let Err(wait) = from_source {
        debug!(source = %peer.ip(), "console login refused: too many from this source");
        return too_many(wait);
    }
    let operators = match console.operators().await {
        Ok(all) => all,
        Err(response) => return response,
    };
    let known = operators.iter().any(|o| o.name == name);
    // What someone typed as a name may be a password typed in the wrong field: only account
    // names are written down.
    let who = if known { name.as_str() } else { "(unknown)" };
    let on_name =
        console
            .gate
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .attempt_on(&name, known, Instant::now());
    if let Err(wait) = on_name {
        info!(operator = who, source = %peer.ip(), "console login refused: too many attempts on this name");
        return too_many(wait);
    }
    let password = form.password;
    let checked = {
        let name = name.clone();
        tokio::task::spawn_blocking(move || accounts::authenticate(&operators, &name, &password)).await
    };
    // The second factor, where the account has one: this code, not used before. Its failure
    // reads like a wrong password, so a guesser learns nothing about which part was wrong.
    let unix_secs = u64::try_from(now_ms() / 1000).unwrap_or(0);
    let verified = checked.ok().flatten().filter(|op| {
        op.totp_step(&form.code, unix_secs).is_some_and(|step| {
            !op.has_totp()
                || console
                    .gate
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .spend_totp(&op.name, step)
        })
    });
    let Some(operator) = verified else {
        console
            .audit(who, "login-failed", format!("from {}", peer.ip()))
            .await;
        return (
            StatusCode::UNAUTHORIZED,
            pages::login(Some("Wrong name, password or code.")),
        )
            .into_response();
    };
    let token = console
        .gate
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .open(&operator, Instant::now());
    console
        .audit(&operator.name, "login", format!("from {}", peer.ip()))
        .await;
    let cookie = format!("{COOKIE}={token}; Path=/; HttpOnly; Secure; SameSite=Strict");
    let mut response = Redirect::to("/").into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

#[derive(Deserialize)]
struct Csrf {
    csrf: String,
}

async fn log_out(
    State(console): State<Shared>,
    headers: HeaderMap,
    Operator(login): Operator,
    Form(form): Form<Csrf>,
) -> Response {
    if let Some(refused) = stale(&login, &form.csrf) {
        return refused;
    }
    if let Some(c) = cookie(&headers) {
        console.gate.lock().unwrap_or_else(|e| e.into_inner()).close(&c);
    }
    console.audit(&login.operator, "logout", String::new()).await;
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("ponte_console=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0"),
    );
    response
}

async fn sessions(State(console): State<Shared>, Admin(login): Admin) -> Response {
    let here = console.node.clone().unwrap_or_default();
    let mut live: Vec<(String, Row)> = console
        .control
        .live()
        .into_iter()
        .map(|r| (here.clone(), r))
        .collect();
    let mut warning = None;
    if let Some((_, view)) = &console.cluster {
        match view.live().await {
            Ok(cluster) => {
                if !cluster.unreadable.is_empty() {
                    warning = Some(format!(
                        "The sessions of node(s) {} are not shown: their entry in Redis is not what a node writes.",
                        cluster.unreadable.join(", ")
                    ));
                }
                live.extend(
                    cluster
                        .nodes
                        .into_iter()
                        .filter(|(node, _)| *node != here)
                        .flat_map(|(node, rows)| rows.into_iter().map(move |r| (node.clone(), r))),
                );
            }
            Err(e) => {
                warning = Some(format!(
                    "The other nodes' sessions are not shown: Redis failed ({e})."
                ))
            }
        }
    }
    live.sort_by_key(|(_, r)| std::cmp::Reverse(r.registered));
    pages::sessions(&login, console.node(), &live, warning.as_deref()).into_response()
}

#[derive(Deserialize)]
struct EndForm {
    csrf: String,
    /// The node that holds the session ("" for a single relay).
    #[serde(default)]
    node: String,
    row: i64,
    reason: String,
}

async fn end_session(
    State(console): State<Shared>,
    Admin(login): Admin,
    Form(form): Form<EndForm>,
) -> Response {
    if let Some(refused) = stale(&login, &form.csrf) {
        return refused;
    }
    let reason = ponte_wire::rendezvous::operator_reason(&form.reason);
    if reason.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            pages::notice("Not ended", "Say why: both sides see the reason."),
        )
            .into_response();
    }
    let here = console.node.as_deref().unwrap_or_default();
    if form.node != here
        && let Some((_, view)) = &console.cluster
    {
        // Another node's session: that node ends it at its next heartbeat.
        let node: String = form.node.chars().take(64).collect();
        if let Err(e) = view.request_end(&node, form.row, &reason).await {
            return unavailable("asking the node to end the session", e);
        }
        console
            .audit(
                &login.operator,
                "end-session-requested",
                format!("on node {node}: {reason}"),
            )
            .await;
        return Redirect::to("/sessions").into_response();
    }
    match console.control.end(form.row, &reason) {
        Some(id) => {
            console
                .audit(
                    &login.operator,
                    "end-session",
                    format!("{}: {reason}", pages::masked(&id.to_digits())),
                )
                .await;
            Redirect::to("/sessions").into_response()
        }
        None => (
            StatusCode::NOT_FOUND,
            pages::notice("Not ended", "That session has ended already."),
        )
            .into_response(),
    }
}

/// The period of a filter: `(since, until)` in ms, or what is wrong with it.
fn period(since: &str, until: &str) -> Result<(i64, i64), String> {
    let parse = |s: &str, default: i64| {
        let s = s.trim();
        if s.is_empty() {
            Ok(default)
        } else {
            report::parse_time(s).map_err(|e| e.to_string())
        }
    };
    Ok((parse(since, i64::MIN)?, parse(until, i64::MAX)?))
}

/// The ledger's rows that pass `filter`, or why there are none to show.
async fn filtered(
    console: &Console,
    filter: &LedgerFilter,
) -> Result<Result<Vec<crate::ledger::Row>, String>, Response> {
    let (since, until) = match period(&filter.since, &filter.until) {
        Ok(p) => p,
        Err(e) => return Ok(Err(e)),
    };
    let rows = console
        .database("reading the ledger", async |s| s.rows(since, until).await)
        .await?;
    Ok(Ok(rows.into_iter().filter(|r| filter.keeps(r)).collect()))
}

async fn ledger(
    State(console): State<Shared>,
    Operator(login): Operator,
    Query(filter): Query<LedgerFilter>,
) -> Response {
    match filtered(&console, &filter).await {
        Ok(Ok(rows)) => pages::ledger(&login, console.node(), &filter, &rows, None).into_response(),
        Ok(Err(e)) => (
            StatusCode::BAD_REQUEST,
            pages::ledger(&login, console.node(), &filter, &[], Some(&e)),
        )
            .into_response(),
        Err(r) => r,
    }
}

async fn download(
    console: &Console,
    login: Login,
    filter: &LedgerFilter,
    format: report::Format,
) -> Response {
    let rows = match filtered(console, filter).await {
        Ok(Ok(rows)) => rows,
        Ok(Err(e)) => return (StatusCode::BAD_REQUEST, e).into_response(),
        Err(r) => return r,
    };
    // The ledger names addresses, assistants and tickets: who took a copy is written down.
    let what = match format {
        report::Format::Csv => "download-csv",
        report::Format::Json => "download-json",
    };
    console
        .audit(
            &login.operator,
            what,
            format!("{} rows; {}", rows.len(), filter.describe()),
        )
        .await;
    let mut body = Vec::new();
    if let Err(e) = report::export(&rows, format, &mut body) {
        return unavailable("the export", e);
    }
    let (kind, file) = match format {
        report::Format::Csv => (
            "text/csv; charset=utf-8",
            "attachment; filename=\"ponte-ledger.csv\"",
        ),
        report::Format::Json => ("application/json", "attachment; filename=\"ponte-ledger.json\""),
    };
    (
        [(header::CONTENT_TYPE, kind), (header::CONTENT_DISPOSITION, file)],
        body,
    )
        .into_response()
}

async fn ledger_csv(
    State(console): State<Shared>,
    Operator(login): Operator,
    Query(filter): Query<LedgerFilter>,
) -> Response {
    download(&console, login, &filter, report::Format::Csv).await
}

async fn ledger_json(
    State(console): State<Shared>,
    Operator(login): Operator,
    Query(filter): Query<LedgerFilter>,
) -> Response {
    download(&console, login, &filter, report::Format::Json).await
}

/// The reports page's query.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ReportQuery {
    /// `ticket` (default) or `assistant`.
    #[serde(default)]
    pub by: String,
    /// Minutes each session is rounded up to, if any.
    #[serde(default)]
    pub round_up: String,
    /// First day or time.
    #[serde(default)]
    pub since: String,
    /// First day or time left out.
    #[serde(default)]
    pub until: String,
}

async fn reports(
    State(console): State<Shared>,
    Operator(login): Operator,
    Query(query): Query<ReportQuery>,
) -> Response {
    let by_ticket = query.by != "assistant";
    let round_up = query.round_up.trim();
    let checked = period(&query.since, &query.until).and_then(|p| {
        let minutes = if round_up.is_empty() {
            None
        } else {
            Some(
                round_up
                    .parse::<u32>()
                    .map_err(|_| "round up: a whole number of minutes".to_owned())?,
            )
        };
        Ok((p, minutes))
    });
    let ((since, until), minutes) = match checked {
        Ok(x) => x,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                pages::reports(&login, console.node(), by_ticket, &query, &[], Some(&e)),
            )
                .into_response();
        }
    };
    let rows = match console
        .database("reading the ledger", async |s| s.rows(since, until).await)
        .await
    {
        Ok(rows) => rows,
        Err(r) => return r,
    };
    let by = if by_ticket {
        GroupBy::Ticket
    } else {
        GroupBy::Assistant
    };
    let totals = report::totals(&rows, by, minutes);
    pages::reports(&login, console.node(), by_ticket, &query, &totals, None).into_response()
}

async fn assistants_page(
    console: &Console,
    login: &Login,
    added: Option<(&str, &str)>,
    error: Option<&str>,
) -> Response {
    let all = match console.assistants.load().await {
        Ok(all) => all,
        Err(e) => return unavailable("reading the assistants", e),
    };
    let last_use = console
        .database("reading the ledger", async |s| s.last_use().await)
        .await
        .unwrap_or_default();
    let listed: Vec<_> = all
        .into_iter()
        .map(|a| {
            let last = last_use.iter().find(|(n, _)| *n == a.name).map(|(_, t)| *t);
            (a, last)
        })
        .collect();
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    (
        status,
        pages::assistants(
            login,
            console.node(),
            &listed,
            &console.assistants.place(),
            added,
            error,
        ),
    )
        .into_response()
}

async fn assistants(State(console): State<Shared>, Admin(login): Admin) -> Response {
    assistants_page(&console, &login, None, None).await
}

#[derive(Deserialize)]
struct NameForm {
    csrf: String,
    name: String,
}

async fn add_assistant(
    State(console): State<Shared>,
    Admin(login): Admin,
    Form(form): Form<NameForm>,
) -> Response {
    if let Some(refused) = stale(&login, &form.csrf) {
        return refused;
    }
    let name = form.name.trim();
    match console.assistants.add(name).await {
        Ok(credential) => {
            console
                .audit(&login.operator, "add-assistant", name.to_owned())
                .await;
            let text = credential.to_text();
            assistants_page(&console, &login, Some((name, &text)), None).await
        }
        Err(e) => assistants_page(&console, &login, None, Some(&e.to_string())).await,
    }
}

async fn remove_assistant(
    State(console): State<Shared>,
    Admin(login): Admin,
    Form(form): Form<NameForm>,
) -> Response {
    if let Some(refused) = stale(&login, &form.csrf) {
        return refused;
    }
    match console.assistants.remove(&form.name).await {
        Ok(()) => {
            console
                .audit(&login.operator, "remove-assistant", form.name.clone())
                .await;
            Redirect::to("/assistants").into_response()
        }
        Err(e) => assistants_page(&console, &login, None, Some(&e.to_string())).await,
    }
}

async fn cluster(State(console): State<Shared>, Admin(login): Admin) -> Response {
    let nodes = match &console.cluster {
        None => None,
        Some((url, _)) => Some(crate::cluster::status(url).await.map_err(|e| e.to_string())),
    };
    pages::cluster(&login, console.node(), nodes).into_response()
}

async fn audit(State(console): State<Shared>, Admin(login): Admin) -> Response {
    match console
        .database("reading the audit log", async |s| s.audit_log(AUDIT_PAGE).await)
        .await
    {
        Ok(entries) => pages::audit(&login, console.node(), &entries).into_response(),
        Err(r) => r,
    }
}

mod limit {
    //! A cap on the console's connections, each closed after a while without a byte from its
    //! client: slow or idle clients cannot take every file descriptor the relay shares.

    use std::future::Future;
    use std::io;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::task::{Context, Poll};
    use std::time::Duration;

    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
    use tokio::sync::{OwnedSemaphorePermit, Semaphore};

    /// Connections open at once.
    const SLOTS: usize = 64;
    /// A connection whose client sends nothing for this long is closed.
    const IDLE: Duration = Duration::from_secs(60);

    pub(super) struct Limited<L> {
        inner: L,
        slots: Arc<Semaphore>,
    }

    impl<L> Limited<L> {
        pub(super) fn new(inner: L) -> Limited<L> {
            Limited {
                inner,
                slots: Arc::new(Semaphore::new(SLOTS)),
            }
        }
    }

    impl<L: axum::serve::Listener> axum::serve::Listener for Limited<L>
    where
        L::Io: Unpin,
    {
        type Io = Slotted<L::Io>;
        type Addr = L::Addr;

        async fn accept(&mut self) -> (Self::Io, Self::Addr) {
            let permit = match self.slots.clone().acquire_owned().await {
                Ok(permit) => permit,
                // The semaphore is never closed.
                Err(_) => std::future::pending().await,
            };
            let (io, addr) = self.inner.accept().await;
            let idle = Box::pin(tokio::time::sleep(IDLE));
            (
                Slotted {
                    io,
                    idle,
                    _permit: permit,
                },
                addr,
            )
        }

        fn local_addr(&self) -> io::Result<Self::Addr> {
            self.inner.local_addr()
        }
    }

    /// A connection holding one of the slots until it closes.
    pub(super) struct Slotted<T> {
        io: T,
        idle: Pin<Box<tokio::time::Sleep>>,
        _permit: OwnedSemaphorePermit,
    }

    impl<T: AsyncRead + Unpin> AsyncRead for Slotted<T> {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let before = buf.filled().len();
            match Pin::new(&mut self.io).poll_read(cx, buf) {
                Poll::Ready(Ok(())) if buf.filled().len() > before => {
                    let deadline = tokio::time::Instant::now() + IDLE;
                    self.idle.as_mut().reset(deadline);
                    Poll::Ready(Ok(()))
                }
                Poll::Pending => match self.idle.as_mut().poll(cx) {
                    // Silent too long: an end of stream, and the server closes the connection.
                    Poll::Ready(()) => Poll::Ready(Ok(())),
                    Poll::Pending => Poll::Pending,
                },
                other => other,
            }
        }
    }

    impl<T: AsyncWrite + Unpin> AsyncWrite for Slotted<T> {
        fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            Pin::new(&mut self.io).poll_write(cx, buf)
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.io).poll_flush(cx)
        }

        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.io).poll_shutdown(cx)
        }
    }
}

mod tls {
    //! The console's TLS beyond loopback: handshakes run beside the accept loop (bounded in
    //! time), so a client that never finishes one holds up nobody else.

    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::net::{TcpListener, TcpStream};
    use tokio::task::JoinSet;
    use tokio_rustls::TlsAcceptor;
    use tokio_rustls::server::TlsStream;

    const HANDSHAKE: Duration = Duration::from_secs(10);
    const PENDING: usize = 256;

    pub(super) struct Listener {
        tcp: TcpListener,
        acceptor: TlsAcceptor,
        pending: JoinSet<Option<(TlsStream<TcpStream>, SocketAddr)>>,
    }

    impl Listener {
        pub(super) fn new(
            tcp: TcpListener,
            identity: crate::cert::Identity,
        ) -> Result<Listener, rustls::Error> {
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let config = rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()?
                .with_no_client_auth()
                .with_single_cert(identity.chain, identity.key)?;
            Ok(Listener {
                tcp,
                acceptor: TlsAcceptor::from(Arc::new(config)),
                pending: JoinSet::new(),
            })
        }
    }

    impl axum::serve::Listener for Listener {
        type Io = TlsStream<TcpStream>;
        type Addr = SocketAddr;

        async fn accept(&mut self) -> (Self::Io, Self::Addr) {
            loop {
                tokio::select! {
                    accepted = self.tcp.accept(), if self.pending.len() < PENDING => {
                        let Ok((stream, peer)) = accepted else {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        };
                        let acceptor = self.acceptor.clone();
                        self.pending.spawn(async move {
                            let tls = tokio::time::timeout(HANDSHAKE, acceptor.accept(stream)).await;
                            Some((tls.ok()?.ok()?, peer))
                        });
                    }
                    Some(done) = self.pending.join_next() => {
                        if let Ok(Some(ready)) = done {
                            return ready;
                        }
                    }
                }
            }
        }

        fn local_addr(&self) -> std::io::Result<SocketAddr> {
            self.tcp.local_addr()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ip_addresses_and_localhost_are_hosts_on_loopback() {
        for good in [
            "127.0.0.1:9444",
            "127.0.0.1",
            "localhost:8080",
            "LOCALHOST",
            "[::1]:9444",
            "[::1]",
        ] {
            assert!(loopback_host(good), "{good}");
        }
        for bad in [
            "evil.example:9444",
            "evil.example",
            "",
            "127.0.0.1.evil.example:80",
            "localhost.evil:1",
        ] {
            assert!(!loopback_host(bad), "{bad}");
        }
    }

    #[test]
    fn the_login_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; ponte_console=abc; b=2"),
        );
        assert_eq!(cookie(&h).as_deref(), Some("abc"));
        h.insert(header::COOKIE, HeaderValue::from_static("ponte_consolex=abc"));
        assert_eq!(cookie(&h), None);
    }
}
