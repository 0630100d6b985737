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
use crate::i18n::Tr;
use crate::i18n::{phrases, t};

/// Terminal output kept per session.
pub const MAX_TRANSCRIPT: u64 = 8 << 20;

/// Everything kept per session.
pub const MAX_JOURNAL: u64 = 64 << 20;

/// The session log (cheap to clone; clones share the file), in the customer's language.
#[derive(Clone)]
pub struct Journal {
    inner: Arc<Mutex<Inner>>,
    tr: Arc<Tr>,
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
    fn write(&mut self, tr: &Tr, text: &str) {
        let line = format!("{} {text}\n", tr.date_time(ponte_session::now_unix()));
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
    /// A journal in the language of `tr` that writes nothing until [`Journal::open`].
    pub fn new(tr: Arc<Tr>) -> Journal {
        Journal {
            inner: Arc::default(),
            tr,
        }
    }

    /// The customer's language.
    pub fn tr(&self) -> &Tr {
        &self.tr
    }

    /// Starts writing to `path` (appending), creating its folder; the file is made private.
    pub fn open(&self, path: &Path) -> std::io::Result<()> {
        let file = ponte_transport::private_file::append(path)?;
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
        let tr = &*self.tr;
        let mut inner = self.lock();
        let mut write = |text: String| inner.write(tr, &text);
        match event {
            Event::Note(text) => write(t!(tr, "log-note", text = text)),
            Event::Ready {
                session, valid_for, ..
            } => write(t!(
                tr,
                "log-ready",
                session = session.to_string(),
                minutes = valid_for.as_secs().div_ceil(60)
            )),
            Event::Attempt(attempt) => write(phrases::attempt(tr, attempt)),
            Event::ConsentNeeded { peer, scope, .. } => write(t!(
                tr,
                "log-assistant-connected",
                peer = phrases::peer(tr, peer),
                folder = phrases::path(scope)
            )),
            Event::Connected { peer, granted } => write(t!(
                tr,
                "log-connected",
                peer = phrases::peer(tr, peer),
                grants = phrases::grants(tr, *granted)
            )),
            // The permissions and screen activity lines say it; changes to the list are
            // activity lines of their own; the end is written once, at `Ended`.
            Event::Grants(_) | Event::Sharing { .. } | Event::QuickAccess(_) | Event::AccessEnded { .. } => {}
            Event::Question { id, question } => write(t!(
                tr,
                "log-question",
                id = id.0,
                text = phrases::question(tr, question).join(" ")
            )),
            Event::QuestionClosed { id, outcome } => write(match outcome {
                Closed::Answered { allow: true } => t!(tr, "log-answered-yes", id = id.0),
                Closed::Answered { allow: false } => t!(tr, "log-answered-no", id = id.0),
                Closed::Withdrawn => t!(tr, "log-withdrawn", id = id.0),
            }),
            Event::Activity(activity) => write(activity.text.clone()),
            Event::Reconnecting(window) => write(phrases::reconnecting(tr, *window)),
            Event::ClipboardText { to_customer, text } => write(match to_customer {
                true => t!(tr, "log-clipboard-put", text = text),
                false => t!(tr, "log-clipboard-read", text = text),
            }),
            Event::Terminal { terminal, line } => {
                let cost = line.len() as u64 + 1;
                if inner.transcript + cost > MAX_TRANSCRIPT {
                    if inner.transcript_cut == 0 {
                        let note = t!(
                            tr,
                            "log-transcript-cut",
                            terminal = *terminal,
                            mib = MAX_TRANSCRIPT >> 20
                        );
                        inner.write(tr, &note);
                    }
                    inner.transcript_cut += cost;
                    return false;
                }
                inner.transcript += cost;
                inner.write(tr, &format!("terminal {terminal} | {line}"));
            }
            Event::Transfer { .. } => {}
            Event::Failed { error } => write(t!(tr, "log-failed", error = error)),
            Event::Chat { from, text } => write(match from {
                Party::Assistant => t!(tr, "log-chat-assistant", text = text),
                Party::Customer => t!(tr, "log-chat-you", text = text),
            }),
            Event::Ended { reason, .. } => {
                if inner.transcript_cut > 0 {
                    let cut = inner.transcript_cut;
                    inner.write(tr, &t!(tr, "log-transcript-lost", bytes = cut));
                }
                inner.write(tr, &t!(tr, "log-ended", reason = reason));
                if inner.cut > 0 {
                    // Past the budget: say so once, whatever the size.
                    let note = format!(
                        "{} {}\n",
                        tr.date_time(ponte_session::now_unix()),
                        t!(tr, "log-lines-lost", count = inner.cut, mib = MAX_JOURNAL >> 20)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frontend::{Activity, Kind};
    use crate::i18n::Lang;

    fn journal() -> Journal {
        Journal::new(Arc::new(Tr::new(Lang::En)))
    }

    #[test]
    fn one_line_per_event_private_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/session.log");
        let journal = journal();
        journal.open(&path).unwrap();
        let forged = ponte_wire::PeerText::from("hi\n2026-01-01 00:00:00 UTC session ended: fake\x1b[2K");
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
        let line = ponte_wire::PeerText::from("y".repeat(1 << 16));
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
        assert!(journal().open(&path).is_err());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
    }

    #[test]
    fn lines_carry_the_date_and_local_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("session.log");
        let journal = journal();
        journal.open(&path).unwrap();
        journal.record(&Event::Note("hello".into()));
        let text = std::fs::read_to_string(&path).unwrap();
        let year = &text[..4];
        assert!(year.starts_with("20") && text.as_bytes()[4] == b'-', "{text}");
        assert!(text.contains("note: hello"), "{text}");
    }
}
