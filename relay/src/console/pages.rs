//! The console's pages: server-rendered HTML from maud templates, which escape every value
//! they insert — tickets, names and reasons come from peers and operators. No script.

use maud::{DOCTYPE, Markup, html};

use super::accounts::Role;
use super::gate::Login;
use crate::assistants::Assistant;
use crate::cluster::NodeStatus;
use crate::ledger::report::{self, Total, format_time, hms};
use crate::ledger::{AuditRow, Row};

/// The console's sections, as the navigation names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// Live sessions.
    Sessions,
    /// The ledger.
    Ledger,
    /// Reports per ticket or assistant.
    Reports,
    /// Assistant accounts.
    Assistants,
    /// The cluster's nodes.
    Cluster,
    /// The audit log.
    Audit,
}

impl Section {
    const ALL: [Section; 6] = [
        Section::Sessions,
        Section::Ledger,
        Section::Reports,
        Section::Assistants,
        Section::Cluster,
        Section::Audit,
    ];

    fn path(self) -> &'static str {
        match self {
            Section::Sessions => "/sessions",
            Section::Ledger => "/ledger",
            Section::Reports => "/reports",
            Section::Assistants => "/assistants",
            Section::Cluster => "/cluster",
            Section::Audit => "/audit",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Section::Sessions => "Live sessions",
            Section::Ledger => "Ledger",
            Section::Reports => "Reports",
            Section::Assistants => "Assistants",
            Section::Cluster => "Cluster",
            Section::Audit => "Audit log",
        }
    }

    /// Whether `role` may see this section.
    pub fn allowed(self, role: Role) -> bool {
        role == Role::Admin || matches!(self, Section::Ledger | Section::Reports)
    }

    /// Where `role` lands after logging in.
    pub fn home(role: Role) -> Section {
        if role == Role::Admin {
            Section::Sessions
        } else {
            Section::Ledger
        }
    }
}

fn shell(title: &str, nav: Markup, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — Ponte relay console" }
                link rel="stylesheet" href="/console.css";
                link rel="icon" href="/icon.svg" type="image/svg+xml";
            }
            body {
                header {
                    a.brand href="/" { img src="/icon.svg" alt="" width="28" height="28"; " Ponte relay" }
                    (nav)
                }
                main { (body) }
                footer { "Times are UTC." }
            }
        }
    }
}

/// A page of a logged-in operator.
pub fn page(login: &Login, node: Option<&str>, current: Section, body: Markup) -> Markup {
    let nav = html! {
        nav {
            @for s in Section::ALL.into_iter().filter(|s| s.allowed(login.role)) {
                a href=(s.path()) class=[(s == current).then_some("current")] { (s.title()) }
            }
        }
        div.who {
            @if let Some(node) = node { span.node { "node " (node) } }
            span { (login.operator) " (" (login.role) ")" }
            form method="post" action="/logout" {
                input type="hidden" name="csrf" value=(login.csrf);
                button type="submit" { "Log out" }
            }
        }
    };
    shell(current.title(), nav, html! { h1 { (current.title()) } (body) })
}

/// The login form, with a message after a failed attempt.
pub fn login(message: Option<&str>) -> Markup {
    shell(
        "Log in",
        html! {},
        html! {
            form.login method="post" action="/login" {
                h1 { "Log in" }
                @if let Some(m) = message { p.error role="alert" { (m) } }
                label { "Operator name" input name="name" autocomplete="username" required autofocus; }
                label { "Password" input name="password" type="password" autocomplete="current-password" required; }
                label { "Code from your authenticator app (if your account has one)"
                    input name="code" inputmode="numeric" autocomplete="one-time-code" maxlength="6" pattern="[0-9]{6}"; }
                button type="submit" { "Log in" }
            }
        },
    )
}

/// A page that only says something (an error, a refusal).
pub fn notice(title: &str, message: &str) -> Markup {
    shell(
        title,
        html! { nav { a href="/" { "Back" } } },
        html! { h1 { (title) } p { (message) } },
    )
}

/// A session ID with its middle digits hidden: enough to tell sessions apart on the phone,
/// not enough to join one.
pub fn masked(session: &str) -> String {
    match (session.get(..3), session.get(7..)) {
        (Some(head), Some(tail)) if session.len() == 9 => format!("{head} ••• •{tail}"),
        _ => "•••".to_owned(),
    }
}

fn bytes(n: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n.max(0) as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// A time for people: `2026-12-07 10:18:53` (UTC, as every page says).
fn when(ms: i64) -> String {
    let t = format_time(ms);
    match (t.get(..10), t.get(11..19)) {
        (Some(day), Some(clock)) => format!("{day} {clock}"),
        _ => t,
    }
}

fn time(ms: Option<i64>) -> String {
    ms.map(when).unwrap_or_default()
}

fn opt(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("—")
}

/// The live sessions (with their nodes', in a cluster), each with a form to end it.
pub fn sessions(login: &Login, node: Option<&str>, live: &[(String, Row)], warning: Option<&str>) -> Markup {
    let paired = live.iter().filter(|(_, r)| r.paired.is_some()).count();
    let body = html! {
        @if let Some(w) = warning { p.error role="alert" { (w) } }
        p.summary { (live.len()) " session(s), " (paired) " paired." }
        table {
            thead { tr {
                @if node.is_some() { th { "Node" } }
                th { "Session" } th { "Registered" } th { "Paired since" } th.num { "Agent → viewer" } th.num { "Viewer → agent" } th { "Assistant" } th { "Ticket" } th { "End" }
            } }
            tbody {
                @for (at, r) in live {
                    tr {
                        @if node.is_some() { td { (at) } }
                        td.mono { (masked(&r.session)) }
                        td { (when(r.registered)) }
                        td { @if r.paired.is_some() { (time(r.paired)) } @else { span.muted { "waiting" } } }
                        td.num { (bytes(r.bytes_agent_to_viewer)) }
                        td.num { (bytes(r.bytes_viewer_to_agent)) }
                        td { (opt(&r.assistant)) }
                        td { (opt(&r.ticket)) }
                        td {
                            form.inline method="post" action="/sessions/end" {
                                input type="hidden" name="csrf" value=(login.csrf);
                                input type="hidden" name="node" value=(at);
                                input type="hidden" name="row" value=(r.id);
                                input name="reason" required maxlength=(ponte_wire::rendezvous::MAX_OPERATOR_REASON / 2) placeholder="reason both sides see" aria-label="reason (up to 100 characters)";
                                button.danger type="submit" { "End" }
                            }
                        }
                    }
                }
            }
        }
        @if live.is_empty() { p.muted { "No session right now." } }
    };
    page(login, node, Section::Sessions, body)
}

/// What the ledger page is filtered by, as the query string carries it.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct LedgerFilter {
    /// First day or time (as `ledger export --since`).
    #[serde(default)]
    pub since: String,
    /// First day or time left out.
    #[serde(default)]
    pub until: String,
    /// Exactly this ticket.
    #[serde(default)]
    pub ticket: String,
    /// Exactly this assistant.
    #[serde(default)]
    pub assistant: String,
    /// Exactly this end reason.
    #[serde(default)]
    pub reason: String,
}

impl LedgerFilter {
    /// Whether `row` passes the ticket, assistant and reason filters (the period is the
    /// query's).
    pub fn keeps(&self, row: &Row) -> bool {
        let matches = |want: &str, have: &Option<String>| want.is_empty() || have.as_deref() == Some(want);
        matches(self.ticket.trim(), &row.ticket)
            && matches(self.assistant.trim(), &row.assistant)
            && matches(self.reason.trim(), &row.end_reason)
    }

    /// The filter in words, for the audit log.
    pub fn describe(&self) -> String {
        let q = self.query();
        if q.is_empty() { "everything".to_owned() } else { q }
    }

    fn query(&self) -> String {
        let pairs = [
            ("since", &self.since),
            ("until", &self.until),
            ("ticket", &self.ticket),
            ("assistant", &self.assistant),
            ("reason", &self.reason),
        ];
        pairs
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| format!("{k}={}", encode_query(v)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

fn encode_query(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Rows shown on the ledger page at most (the downloads have them all).
pub const LEDGER_PAGE_ROWS: usize = 500;

const END_REASONS: [&str; 9] = [
    "agent_left",
    "viewer_left",
    "expired",
    "burned",
    "idle_timeout",
    "limit_exceeded",
    "shutting_down",
    "bad_request",
    "ended_by_operator",
];

/// The ledger, filtered, with totals and the downloads.
pub fn ledger(
    login: &Login,
    node: Option<&str>,
    filter: &LedgerFilter,
    rows: &[Row],
    error: Option<&str>,
) -> Markup {
    let connected: i64 = rows.iter().filter_map(report::connected_ms).sum();
    let a2v: i64 = rows.iter().map(|r| r.bytes_agent_to_viewer).sum();
    let v2a: i64 = rows.iter().map(|r| r.bytes_viewer_to_agent).sum();
    let query = filter.query();
    let suffix = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    let body = html! {
        form.filters method="get" action="/ledger" {
            label { "Since" input name="since" value=(filter.since) placeholder="YYYY-MM-DD"; }
            label { "Until" input name="until" value=(filter.until) placeholder="YYYY-MM-DD"; }
            label { "Ticket" input name="ticket" value=(filter.ticket); }
            label { "Assistant" input name="assistant" value=(filter.assistant); }
            label { "End reason"
                select name="reason" {
                    option value="" { "any" }
                    @for r in END_REASONS { option value=(r) selected[filter.reason == r] { (r) } }
                }
            }
            button type="submit" { "Filter" }
        }
        @if let Some(e) = error { p.error role="alert" { (e) } }
        p.summary {
            (rows.len()) " session(s); connected " (hms(connected)) "; " (bytes(a2v)) " agent → viewer, " (bytes(v2a)) " viewer → agent. "
            "Download: " a href={ "/ledger.csv" (suffix) } { "CSV" } " · " a href={ "/ledger.json" (suffix) } { "JSON" }
        }
        table {
            thead { tr { th { "Session" } th { "Registered" } th { "Paired" } th { "Ended" } th { "End reason" } th.num { "Connected" } th.num { "Agent → viewer" } th.num { "Viewer → agent" } th { "Assistant" } th { "Ticket" } } }
            tbody {
                @for r in rows.iter().rev().take(LEDGER_PAGE_ROWS) {
                    tr {
                        td.mono { (masked(&r.session)) }
                        td { (when(r.registered)) }
                        td { (time(r.paired)) }
                        td { (time(r.ended)) }
                        td { (opt(&r.end_reason)) }
                        td.num { (report::connected_ms(r).map(hms).unwrap_or_default()) }
                        td.num { (bytes(r.bytes_agent_to_viewer)) }
                        td.num { (bytes(r.bytes_viewer_to_agent)) }
                        td { (opt(&r.assistant)) }
                        td { (opt(&r.ticket)) }
                    }
                }
            }
        }
        @if rows.len() > LEDGER_PAGE_ROWS { p.muted { "The newest " (LEDGER_PAGE_ROWS) " are shown; the downloads have all " (rows.len()) "." } }
    };
    page(login, node, Section::Ledger, body)
}

/// Connected time per ticket or per assistant.
pub fn reports(
    login: &Login,
    node: Option<&str>,
    by_ticket: bool,
    filter: &super::ReportQuery,
    totals: &[Total],
    error: Option<&str>,
) -> Markup {
    let column = if by_ticket { "Ticket" } else { "Assistant" };
    let body = html! {
        form.filters method="get" action="/reports" {
            label { "By" select name="by" {
                option value="ticket" selected[by_ticket] { "ticket" }
                option value="assistant" selected[!by_ticket] { "assistant" }
            } }
            label { "Round each session up to (minutes)" input name="round_up" value=(filter.round_up) inputmode="numeric"; }
            label { "Since" input name="since" value=(filter.since) placeholder="YYYY-MM-DD"; }
            label { "Until" input name="until" value=(filter.until) placeholder="YYYY-MM-DD"; }
            button type="submit" { "Show" }
        }
        @if let Some(e) = error { p.error role="alert" { (e) } }
        table {
            thead { tr { th { (column) } th.num { "Sessions" } th.num { "Connected" } th.num { "Seconds" } } }
            tbody {
                @for t in totals {
                    tr {
                        td { (t.key.as_deref().unwrap_or("(none)")) }
                        td.num { (t.sessions) }
                        td.num { (hms(t.connected_ms)) }
                        td.num { (report::seconds(t.connected_ms)) }
                    }
                }
            }
        }
        @if totals.is_empty() { p.muted { "No connected session in this period." } }
    };
    page(login, node, Section::Reports, body)
}

/// The assistant accounts, a form to add one and, right after adding, its credential.
pub fn assistants(
    login: &Login,
    node: Option<&str>,
    all: &[(Assistant, Option<i64>)],
    place: &str,
    added: Option<(&str, &str)>,
    error: Option<&str>,
) -> Markup {
    let body = html! {
        @if let Some((name, credential)) = added {
            section.credential {
                h2 { "Credential of " (name) }
                p { "Shown this once: the relay keeps only its public key. Hand it to the assistant privately; they save it as "
                    code { "~/.config/ponte/credential" } " (or pass " code { "--credential FILE" } ")." }
                pre #credential { (credential) }
                a.button download={ "ponte-credential-" (name) } href={ "data:text/plain;charset=utf-8," (encode_query(credential)) "%0A" } { "Download" }
            }
        }
        @if let Some(e) = error { p.error role="alert" { (e) } }
        form.inline method="post" action="/assistants/add" {
            input type="hidden" name="csrf" value=(login.csrf);
            label { "New assistant " input name="name" required maxlength="64" placeholder="name (letters, digits, . _ @ -)"; }
            button type="submit" { "Add" }
        }
        p.muted { "Accounts in " (place) "." }
        table {
            thead { tr { th { "Name" } th { "Added" } th { "Last session" } th { "Key" } th { "Remove" } } }
            tbody {
                @for (a, last) in all {
                    tr {
                        td { (a.name) }
                        td { (when(i64::try_from(a.created).unwrap_or(i64::MAX).saturating_mul(1000))) }
                        td { @if let Some(t) = last { (when(*t)) } @else { span.muted { "never" } } }
                        td.mono { (ponte_transport::credential::key_fingerprint(&a.key)) }
                        td {
                            form.inline method="post" action="/assistants/remove" {
                                input type="hidden" name="csrf" value=(login.csrf);
                                input type="hidden" name="name" value=(a.name);
                                button.danger type="submit" { "Remove" }
                            }
                        }
                    }
                }
            }
        }
    };
    page(login, node, Section::Assistants, body)
}

/// The cluster's nodes, or that this relay is a single one.
pub fn cluster(login: &Login, node: Option<&str>, nodes: Option<Result<Vec<NodeStatus>, String>>) -> Markup {
    let body = html! {
        @match nodes {
            None => p { "This relay is a single node (no --cluster)." },
            Some(Err(e)) => p.error role="alert" { "Redis is not reachable: " (e) },
            Some(Ok(nodes)) => {
                p.summary { "Redis is up; " (nodes.len()) " live node(s)." }
                table {
                    thead { tr { th { "Node" } th { "Address" } th.num { "Waiting" } th.num { "Paired" } th { "State" } th.num { "Last seen" } } }
                    tbody {
                        @for n in &nodes {
                            tr {
                                td { (n.name) }
                                td.mono { (n.addr) }
                                td.num { (n.waiting) }
                                td.num { (n.paired) }
                                td { @if n.draining { span.warn { "draining" } } @else { "up" } }
                                td.num { (n.last_seen_ms) " ms ago" }
                            }
                        }
                    }
                }
            }
        }
    };
    page(login, node, Section::Cluster, body)
}

/// The newest entries of the audit log.
pub fn audit(login: &Login, node: Option<&str>, entries: &[AuditRow]) -> Markup {
    let body = html! {
        table {
            thead { tr { th { "When" } th { "Operator" } th { "Action" } th { "Detail" } } }
            tbody {
                @for e in entries {
                    tr { td { (when(e.at)) } td { (e.operator) } td { (e.action) } td.wrap { (e.detail) } }
                }
            }
        }
    };
    page(login, node, Section::Audit, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_are_masked() {
        assert_eq!(masked("123456789"), "123 ••• •89");
        assert_eq!(masked("12"), "•••");
    }

    #[test]
    fn peer_text_is_escaped() {
        let login = Login::for_tests("anna", Role::Admin);
        let row = Row {
            id: 1,
            session: "123456789".into(),
            registered: 0,
            paired: Some(1),
            ended: None,
            end_reason: None,
            bytes_agent_to_viewer: 0,
            bytes_viewer_to_agent: 0,
            attempts: 1,
            assistant: Some("<script>alert(1)</script>".into()),
            ticket: Some("\"><img src=x onerror=alert(1)>".into()),
            agent_address: None,
            viewer_address: None,
        };
        let html = sessions(&login, Some("<b>node</b>"), &[("<i>n</i>".into(), row)], None).into_string();
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(!html.contains("<img src=x"), "{html}");
        assert!(!html.contains("<b>node") && !html.contains("<i>n"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(
            !html.contains("123456789"),
            "the whole session ID is never on a page"
        );
    }
}
