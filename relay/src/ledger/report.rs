//! What operators get out of the ledger: rows as CSV or JSON, and connected time per ticket
//! or per assistant for billing.

use std::collections::BTreeMap;
use std::io::Write;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::Row;

/// Export format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Comma-separated values with a header line.
    #[default]
    Csv,
    /// A JSON array of objects.
    Json,
}

/// Report format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReportFormat {
    /// Aligned columns for people.
    #[default]
    Table,
    /// Comma-separated values with a header line.
    Csv,
    /// A JSON array of objects.
    Json,
}

/// What a report groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    /// The ticket reference viewers gave.
    Ticket,
    /// The assistant account of the viewer.
    Assistant,
}

/// A date or time that is not `YYYY-MM-DD` or RFC 3339.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a date (YYYY-MM-DD, UTC) or an RFC 3339 time (2026-11-25T14:00:00Z): {0:?}")]
pub struct BadDate(pub String);

/// Milliseconds since 1970 UTC of `YYYY-MM-DD` (midnight UTC) or an RFC 3339 time.
pub fn parse_time(s: &str) -> Result<i64, BadDate> {
    let bad = || BadDate(s.chars().take(64).collect());
    let s = s.trim();
    let t = if s.len() == 10 {
        let mut parts = s.split('-');
        let (Some(y), Some(m), Some(d), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let year: i32 = y.parse().map_err(|_| bad())?;
        let month: u8 = m.parse().map_err(|_| bad())?;
        let day: u8 = d.parse().map_err(|_| bad())?;
        let month = time::Month::try_from(month).map_err(|_| bad())?;
        time::Date::from_calendar_date(year, month, day)
            .map_err(|_| bad())?
            .midnight()
            .assume_utc()
    } else {
        OffsetDateTime::parse(s, &Rfc3339).map_err(|_| bad())?
    };
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).map_err(|_| bad())
}

/// RFC 3339 UTC with milliseconds, e.g. `2026-11-25T14:03:07.125Z`.
pub fn format_time(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}

const HEADER: [&str; 13] = [
    "session_id",
    "registered",
    "paired",
    "ended",
    "end_reason",
    "connected_secs",
    "bytes_agent_to_viewer",
    "bytes_viewer_to_agent",
    "attempts",
    "assistant",
    "ticket",
    "agent_address",
    "viewer_address",
];

/// Milliseconds from pairing to end, when the row has both.
pub fn connected_ms(row: &Row) -> Option<i64> {
    Some(row.ended?.saturating_sub(row.paired?).max(0))
}

fn csv_field(s: &str) -> String {
    // Tickets and names are plain by construction; escape anyway so the format never depends
    // on that. A cell a spreadsheet would take for a formula (=, +, -, @, tab, CR first) gets
    // a leading apostrophe (OWASP's advice against CSV injection).
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

fn fields(row: &Row) -> [String; 13] {
    let opt = |v: &Option<String>| v.as_deref().map(csv_field).unwrap_or_default();
    let time = |t: Option<i64>| t.map(format_time).unwrap_or_default();
    [
        row.session.clone(),
        format_time(row.registered),
        time(row.paired),
        time(row.ended),
        opt(&row.end_reason),
        connected_ms(row)
            .map(|ms| format!("{:.3}", ms as f64 / 1000.0))
            .unwrap_or_default(),
        row.bytes_agent_to_viewer.to_string(),
        row.bytes_viewer_to_agent.to_string(),
        row.attempts.to_string(),
        opt(&row.assistant),
        opt(&row.ticket),
        opt(&row.agent_address),
        opt(&row.viewer_address),
    ]
}

/// Writes `rows` in `format`.
pub fn export(rows: &[Row], format: Format, out: &mut impl Write) -> std::io::Result<()> {
    match format {
        Format::Csv => {
            writeln!(out, "{}", HEADER.join(","))?;
            for row in rows {
                writeln!(out, "{}", fields(row).join(","))?;
            }
        }
        Format::Json => {
            let items: Vec<serde_json::Value> = rows
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "session_id": r.session,
                        "registered": format_time(r.registered),
                        "paired": r.paired.map(format_time),
                        "ended": r.ended.map(format_time),
                        "end_reason": r.end_reason,
                        "connected_secs": connected_ms(r).map(|ms| ms as f64 / 1000.0),
                        "bytes_agent_to_viewer": r.bytes_agent_to_viewer,
                        "bytes_viewer_to_agent": r.bytes_viewer_to_agent,
                        "attempts": r.attempts,
                        "assistant": r.assistant,
                        "ticket": r.ticket,
                        "agent_address": r.agent_address,
                        "viewer_address": r.viewer_address,
                    })
                })
                .collect();
            serde_json::to_writer_pretty(&mut *out, &items)?;
            writeln!(out)?;
        }
    }
    Ok(())
}

/// Connected time of one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Total {
    /// The ticket or assistant; `None` for sessions without one.
    pub key: Option<String>,
    /// Sessions with a connection.
    pub sessions: u64,
    /// Their connected time in milliseconds, each rounded up as asked.
    pub connected_ms: i64,
}

/// Sums connected time (paired → ended) per ticket or assistant. With `round_up_minutes`,
/// each session's time is first rounded up to a multiple of that many minutes (as support
/// contracts bill). Sessions that never stood paired, or are still open, are left out.
pub fn totals(rows: &[Row], by: GroupBy, round_up_minutes: Option<u32>) -> Vec<Total> {
    let step = round_up_minutes.filter(|&m| m > 0).map(|m| i64::from(m) * 60_000);
    let mut groups: BTreeMap<Option<String>, (u64, i64)> = BTreeMap::new();
    for row in rows {
        let Some(ms) = connected_ms(row) else { continue };
        let ms = match step {
            Some(step) => ceil_div(ms, step).saturating_mul(step),
            None => ms,
        };
        let key = match by {
            GroupBy::Ticket => row.ticket.clone(),
            GroupBy::Assistant => row.assistant.clone(),
        };
        let entry = groups.entry(key).or_insert((0, 0));
        entry.0 += 1;
        entry.1 = entry.1.saturating_add(ms);
    }
    groups
        .into_iter()
        .map(|(key, (sessions, connected_ms))| Total {
            key,
            sessions,
            connected_ms,
        })
        .collect()
}

/// `a / b` rounded up, for `a >= 0`, `b > 0` (i64::div_ceil is not stable).
fn ceil_div(a: i64, b: i64) -> i64 {
    if a <= 0 { 0 } else { (a - 1) / b + 1 }
}

/// Whole seconds of a duration in milliseconds, rounded up.
pub fn seconds(ms: i64) -> i64 {
    ceil_div(ms, 1000)
}

/// `H:MM:SS` of a duration in milliseconds, rounded up to the second.
pub fn hms(ms: i64) -> String {
    let secs = seconds(ms);
    format!("{}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

/// Writes report totals in `format`.
pub fn write_totals(
    totals: &[Total],
    by: GroupBy,
    format: ReportFormat,
    out: &mut impl Write,
) -> std::io::Result<()> {
    let column = match by {
        GroupBy::Ticket => "ticket",
        GroupBy::Assistant => "assistant",
    };
    let key = |t: &Total| t.key.clone().unwrap_or_else(|| "(none)".into());
    match format {
        ReportFormat::Table => {
            let width = totals
                .iter()
                .map(|t| key(t).len())
                .chain([column.len()])
                .max()
                .unwrap_or(0);
            writeln!(out, "{column:<width$}  sessions  connected  seconds")?;
            for t in totals {
                writeln!(
                    out,
                    "{:<width$}  {:>8}  {:>9}  {}",
                    key(t),
                    t.sessions,
                    hms(t.connected_ms),
                    ceil_div(t.connected_ms, 1000)
                )?;
            }
        }
        ReportFormat::Csv => {
            writeln!(out, "{column},sessions,connected_secs")?;
            for t in totals {
                let k = t.key.as_deref().map(csv_field).unwrap_or_default();
                writeln!(out, "{k},{},{:.3}", t.sessions, t.connected_ms as f64 / 1000.0)?;
            }
        }
        ReportFormat::Json => {
            let items: Vec<serde_json::Value> = totals
                .iter()
                .map(|t| {
                    serde_json::json!({
                        column: t.key,
                        "sessions": t.sessions,
                        "connected_secs": t.connected_ms as f64 / 1000.0,
                    })
                })
                .collect();
            serde_json::to_writer_pretty(&mut *out, &items)?;
            writeln!(out)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(ticket: Option<&str>, paired: Option<i64>, ended: Option<i64>) -> Row {
        Row {
            id: 1,
            session: "123456789".into(),
            registered: 0,
            paired,
            ended,
            end_reason: Some("viewer_left".into()),
            bytes_agent_to_viewer: 1,
            bytes_viewer_to_agent: 2,
            attempts: 1,
            assistant: Some("alice".into()),
            ticket: ticket.map(Into::into),
            agent_address: None,
            viewer_address: None,
        }
    }

    #[test]
    fn no_text_field_reaches_a_csv_cell_as_a_formula() {
        let hostile = [
            "=HYPERLINK(\"http://x\",\"y\")",
            "+1+1",
            "-2-3",
            "@SUM(A1)",
            "\tx",
            "\r=1",
        ];
        for text in hostile {
            let mut r = row(Some(text), Some(1), Some(2));
            r.assistant = Some(text.into());
            r.end_reason = Some(text.into());
            r.agent_address = Some(text.into());
            r.viewer_address = Some(text.into());
            let mut out = Vec::new();
            export(&[r], Format::Csv, &mut out).unwrap();
            let csv = String::from_utf8(out).unwrap();
            let line = csv.lines().nth(1).unwrap();
            // Every cell after the times: none starts with a formula character, quoted or not.
            let cells: Vec<&str> = line.split(',').collect();
            for cell in &cells[4..] {
                let cell = cell.trim_start_matches('"');
                assert!(
                    !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                    "{text:?} → {line:?}"
                );
            }
            assert_eq!(
                line.matches('\'').count(),
                5,
                "each of the five text fields escaped: {line}"
            );
        }
    }

    #[test]
    fn dates_parse_and_print_in_utc() {
        assert_eq!(parse_time("1970-01-02").unwrap(), 86_400_000);
        assert_eq!(
            parse_time("2026-11-25T14:00:00Z").unwrap(),
            parse_time("2026-11-25T15:00:00+01:00").unwrap()
        );
        assert_eq!(format_time(86_400_123), "1970-01-02T00:00:00.123Z");
        for bad in [
            "",
            "2026-13-01",
            "2026-02-30",
            "yesterday",
            "2026-1-1",
            "2026-11-25T14:00",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn totals_sum_per_ticket_with_optional_rounding() {
        let rows = [
            row(Some("T-1"), Some(0), Some(61_000)),
            row(Some("T-1"), Some(0), Some(1_000)),
            row(Some("T-2"), Some(0), Some(900_000)),
            row(None, Some(0), Some(30_000)),
            // Never paired, or still open: not billed.
            row(Some("T-1"), None, Some(5_000)),
            row(Some("T-1"), Some(0), None),
        ];
        let plain = totals(&rows, GroupBy::Ticket, None);
        assert_eq!(
            plain,
            [
                Total {
                    key: None,
                    sessions: 1,
                    connected_ms: 30_000
                },
                Total {
                    key: Some("T-1".into()),
                    sessions: 2,
                    connected_ms: 62_000
                },
                Total {
                    key: Some("T-2".into()),
                    sessions: 1,
                    connected_ms: 900_000
                },
            ]
        );
        let rounded = totals(&rows, GroupBy::Ticket, Some(15));
        assert_eq!(
            rounded[1].connected_ms,
            2 * 900_000,
            "each session rounds up to 15 min"
        );
        assert_eq!(rounded[2].connected_ms, 900_000, "exactly 15 min stays 15 min");
        let by_assistant = totals(&rows, GroupBy::Assistant, None);
        assert_eq!(by_assistant.len(), 1);
        assert_eq!(by_assistant[0].sessions, 4);
        let mut table = Vec::new();
        write_totals(&plain, GroupBy::Ticket, ReportFormat::Table, &mut table).unwrap();
        let table = String::from_utf8(table).unwrap();
        assert!(table.contains("T-1") && table.contains("0:01:02"), "{table}");
    }

    #[test]
    fn export_quotes_what_needs_quoting() {
        let mut r = row(Some("T-1"), Some(0), Some(1000));
        r.assistant = Some("a,\"b\"".into());
        let mut out = Vec::new();
        export(&[r], Format::Csv, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.lines().nth(1).unwrap().contains("\"a,\"\"b\"\"\""), "{text}");
        assert_eq!(text.lines().next().unwrap().split(',').count(), 13);
    }
}
