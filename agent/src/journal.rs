//! The session log the customer can read afterwards: every event the customer was shown, one
//! line each, and a transcript of the assistant's terminals.
//!
//! The file is private to the customer (mode 0600, never opened through a symbolic link) and
//! bounded: terminal output beyond [`MAX_TRANSCRIPT`] and lines beyond [`MAX_JOURNAL`] are cut
//! with a note saying how much was left out. The one-time code is never written.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::frontend::{Closed, Event, Party};

/// Terminal output kept per session.
pub const MAX_TRANSCRIPT: u64 = 8 << 20;

/// Everything kept per session.
pub const MAX_JOURNAL: u64 = 64 << 20;

/// The session log (cheap to clone; clones share the file).
#[derive(Clone, Default)]
pub struct Journal {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    file: Option<std::fs::File>,
    path: Option<PathBuf>,
    written: u64,
    transcript: u64,
    transcript_cut: u64,
    cut: u64,
}

impl Inner {
    fn write(&mut self, text: &str) {
        let line = format!("{} {text}\n", timestamp());
        if self.written + line.len() as u64 > MAX_JOURNAL {
            self.cut += 1;
            return;
        }
        if let Some(file) = &mut self.file {
            self.written += line.len() as u64;
            let _ = file.write_all(line.as_bytes());
        }
    }
}

impl Journal {
    /// A journal that writes nothing until [`Journal::open`].
    pub fn new() -> Journal {
        Journal::default()
    }

    /// Starts writing to `path` (appending), creating its folder; the file is made private.
    pub fn open(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder.create(dir)?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options
                .mode(0o600)
                .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
        }
        let file = options.open(path)?;
        #[cfg(unix)]
        {
            // An existing file keeps its mode on open: make it private too.
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        let mut inner = self.lock();
        inner.file = Some(file);
        inner.path = Some(path.to_owned());
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the log file is open.
    pub fn is_open(&self) -> bool {
        self.lock().file.is_some()
    }

    /// Where the log is written, once open.
    pub fn path(&self) -> Option<PathBuf> {
        self.lock().path.clone()
    }

    /// Writes the line(s) for an event; `false` for terminal output beyond the transcript
    /// budget, which is neither kept nor shown.
    pub fn record(&self, event: &Event) -> bool {
        let mut inner = self.lock();
        match event {
            Event::Note(text) => inner.write(&format!("note: {text}")),
            Event::Ready {
                session, valid_for, ..
            } => inner.write(&format!(
                "session ID {session} is ready for {} minutes (the code is not logged)",
                valid_for.as_secs().div_ceil(60)
            )),
            Event::Attempt(attempt) => inner.write(&attempt.to_string()),
            Event::ConsentNeeded { peer, scope } => inner.write(&format!(
                "assistant connected: {peer}; asking what they may do (shared folder {})",
                ponte_protocol::PeerText::path(scope)
            )),
            Event::Connected { peer, granted } => {
                inner.write(&format!("connected: {peer}; allowed: {granted}"))
            }
            Event::Grants(_) => {} // The permissions activity line says it.
            Event::Question { id, question } => inner.write(&format!(
                "question {}: {}",
                id.0,
                question
                    .to_string()
                    .lines()
                    .map(str::trim)
                    .collect::<Vec<_>>()
                    .join(" ")
            )),
            Event::QuestionClosed { id, outcome } => inner.write(&format!(
                "question {}: {}",
                id.0,
                match outcome {
                    Closed::Answered { allow: true } => "you answered yes",
                    Closed::Answered { allow: false } => "you answered no",
                    Closed::Withdrawn => "withdrawn (the request ended or was not answered in time)",
                }
            )),
            Event::Activity(activity) => inner.write(&activity.text),
            Event::Terminal { terminal, line } => {
                let cost = line.len() as u64 + 1;
                if inner.transcript + cost > MAX_TRANSCRIPT {
                    if inner.transcript_cut == 0 {
                        inner.write(&format!(
                            "terminal {terminal} | [transcript cut: the limit of {} MiB per session is reached]",
                            MAX_TRANSCRIPT >> 20
                        ));
                    }
                    inner.transcript_cut += cost;
                    return false;
                }
                inner.transcript += cost;
                inner.write(&format!("terminal {terminal} | {line}"));
            }
            Event::Transfer { .. } => {}
            Event::Failed { error } => inner.write(&format!("the agent failed: {error}")),
            Event::Chat { from, text } => inner.write(&match from {
                Party::Assistant => format!("chat from the assistant: {text}"),
                Party::Customer => format!("chat from you: {text}"),
            }),
            Event::Ended { reason, .. } => {
                if inner.transcript_cut > 0 {
                    let cut = inner.transcript_cut;
                    inner.write(&format!("{cut} bytes of terminal output were not recorded"));
                }
                inner.write(&format!("session ended: {reason}"));
                if inner.cut > 0 {
                    // Past the budget: say so once, whatever the size.
                    let note = format!(
                        "{} {} lines were not recorded (log limit {} MiB)\n",
                        timestamp(),
                        inner.cut,
                        MAX_JOURNAL >> 20
                    );
                    if let Some(file) = &mut inner.file {
                        let _ = file.write_all(note.as_bytes());
                    }
                }
                if let Some(file) = &mut inner.file {
                    let _ = file.sync_all();
                }
            }
        }
        true
    }
}

/// `YYYY-MM-DD HH:MM:SS UTC`.
pub fn timestamp() -> String {
    let secs = ponte_session::now_unix();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        (rest / 60) % 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frontend::{Activity, Kind};

    #[test]
    fn one_line_per_event_private_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/session.log");
        let journal = Journal::new();
        journal.open(&path).unwrap();
        let forged = ponte_protocol::PeerText::from("hi\n2026-01-01 00:00:00 UTC session ended: fake\x1b[2K");
        journal.record(&Event::Chat {
            from: Party::Assistant,
            text: forged,
        });
        journal.record(&Event::Activity(Activity {
            kind: Kind::Command,
            text: "command started".into(),
        }));
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.contains("hi\\n2026-01-01"), "{text}");
        assert!(!text.contains('\x1b'));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            let dir_mode = std::fs::metadata(path.parent().unwrap())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(dir_mode & 0o777, 0o700);
        }
        // The transcript stops at its budget and says so.
        let line = ponte_protocol::PeerText::from("y".repeat(1 << 16));
        let mut kept = 0;
        for _ in 0..200 {
            if journal.record(&Event::Terminal {
                terminal: 1,
                line: line.clone(),
            }) {
                kept += 1;
            }
        }
        assert_eq!(kept, (MAX_TRANSCRIPT / ((1 << 16) + 1)) as usize);
        journal.record(&Event::Ended {
            reason: "done".into(),
            log: None,
        });
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("[transcript cut"));
        assert!(text.contains("bytes of terminal output were not recorded"));
        assert!(text.len() as u64 <= MAX_TRANSCRIPT + 4096);
    }

    #[cfg(unix)]
    #[test]
    fn a_planted_link_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let path = dir.path().join("session.log");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        assert!(Journal::new().open(&path).is_err());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
    }

    #[test]
    fn timestamps_are_calendar_dates() {
        let t = timestamp();
        assert_eq!(t.len(), "2026-11-25 10:00:00 UTC".len(), "{t}");
        assert!(t.starts_with("20"), "{t}");
    }
}
