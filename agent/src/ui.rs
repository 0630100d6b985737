//! What the customer sees and answers: the session ID and code, who is asking, the consent
//! prompt, the live activity log — on a terminal for people, or as JSON lines for scripts.
//! Every activity line is also appended to a log file the customer can read afterwards.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ponte_protocol::app::{Capability, Grants};
use ponte_protocol::identity::PeerIdentity;
use ponte_protocol::{OneTimeCode, SessionId};
use serde_json::json;
use tokio::sync::mpsc;

/// Output and input of the agent.
#[derive(Clone)]
pub struct Ui {
    json: bool,
    log: Arc<Mutex<Option<std::fs::File>>>,
    log_path: Arc<Mutex<Option<PathBuf>>>,
    /// Lines typed by the customer (interactive mode only).
    lines: Arc<tokio::sync::Mutex<mpsc::Receiver<String>>>,
    /// Yes/no questions waiting for the customer's next line, oldest first.
    questions: Arc<Mutex<std::collections::VecDeque<tokio::sync::oneshot::Sender<bool>>>>,
}

/// Strips control characters from peer-supplied text before it reaches the terminal, so an
/// assistant cannot rewrite the customer's screen with escape sequences.
pub fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() && c != '\n' { '?' } else { c })
        .collect()
}

impl Ui {
    /// A UI; in interactive mode a thread reads the customer's lines from stdin.
    pub fn new(json: bool) -> Ui {
        let (tx, rx) = mpsc::channel(16);
        if !json {
            std::thread::spawn(move || {
                let stdin = std::io::stdin();
                let mut line = String::new();
                while stdin.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                    if tx.blocking_send(line.trim().to_owned()).is_err() {
                        break;
                    }
                    line.clear();
                }
            });
        }
        Ui {
            json,
            log: Arc::new(Mutex::new(None)),
            log_path: Arc::new(Mutex::new(None)),
            lines: Arc::new(tokio::sync::Mutex::new(rx)),
            questions: Arc::new(Mutex::new(std::collections::VecDeque::new())),
        }
    }

    /// Whether output is JSON lines.
    pub fn is_json(&self) -> bool {
        self.json
    }

    fn emit(&self, value: serde_json::Value) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{value}");
        let _ = out.flush();
    }

    fn say(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }

    /// Starts the activity log file for a session.
    pub fn open_log(&self, path: &Path) {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Ok(file) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
            *self.log.lock().unwrap_or_else(|e| e.into_inner()) = Some(file);
            *self.log_path.lock().unwrap_or_else(|e| e.into_inner()) = Some(path.to_owned());
        }
    }

    /// Where the activity log is kept.
    pub fn log_path(&self) -> Option<PathBuf> {
        self.log_path.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn log_line(&self, text: &str) {
        if let Some(file) = self.log.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            let _ = writeln!(file, "{} {}", ponte_session::clock(), text);
        }
    }

    /// The session ID and code to read to the assistant.
    pub fn ready(&self, session: SessionId, code: &OneTimeCode, valid_secs: u64) {
        if self.json {
            self.emit(json!({
                "event": "ready",
                "session_id": session.to_digits(),
                "code": code.digits(),
                "expires_in_secs": valid_secs,
            }));
        } else {
            self.say(&format!(
                "\n  Read these to your assistant:\n\n      Session ID:  {session}\n      Code:        {}\n\n  \
                 They can be used for {} minutes. Nobody can connect without both.\n  \
                 Press Ctrl-C to quit.\n",
                code.reveal(),
                valid_secs.div_ceil(60)
            ));
        }
    }

    /// A wrong code was tried.
    pub fn wrong_code(&self, remaining: u8) {
        if self.json {
            self.emit(json!({"event": "wrong_code", "attempts_left": remaining}));
        } else {
            self.say(&format!(
                "  Someone tried to connect with a wrong code ({remaining} attempt(s) left)."
            ));
        }
    }

    /// The code was burned; a fresh pair follows.
    pub fn burned(&self) {
        if self.json {
            self.emit(json!({"event": "burned"}));
        } else {
            self.say("  The code was tried wrongly too often and is no longer valid. Here is a new one:");
        }
    }

    /// A note for the customer (relay trust, reconnects).
    /// In JSON mode notes go to stderr: stdout's first line is always the `ready` event.
    pub fn note(&self, text: &str) {
        if self.json {
            eprintln!("ponte-agent: {text}");
        } else {
            self.say(&format!("  {text}"));
        }
    }

    /// Who connected and what they are allowed, after consent.
    pub fn consent(&self, peer: &PeerIdentity, grants: Grants) {
        let verified = peer.is_verified();
        self.log_line(&format!("connected: {peer}; granted: {grants}"));
        if self.json {
            self.emit(json!({
                "event": "consent",
                "peer": printable(&peer.to_string()),
                "verified": verified,
                "granted": grants.list().iter().map(|c| c.name()).collect::<Vec<_>>(),
            }));
        } else {
            self.say(&format!(
                "  Allowed: {grants}.\n  Type 'revoke NAME', 'grant NAME', 'chat TEXT' or 'end'."
            ));
        }
    }

    /// Shows who is asking and asks which capabilities to grant (interactive mode).
    pub async fn ask_consent(&self, peer: &PeerIdentity) -> Option<Grants> {
        let who = match peer {
            PeerIdentity::Verified { .. } => format!("  {}", printable(&peer.to_string())),
            PeerIdentity::Unverified { fingerprint, reason } => format!(
                "  !!! UNVERIFIED ASSISTANT !!!\n  Nobody you trust vouches for this person ({reason}).\n  \
                 Only continue if you called them yourself. Key fingerprint: {fingerprint}"
            ),
        };
        self.say(&format!(
            "\n  An assistant has connected.\n{who}\n\n  What may they do?"
        ));
        let mut grants = Grants::NONE;
        for c in Capability::ALL {
            // Chat is always possible; control is only asked for once the screen is shared.
            let skip = match c {
                Capability::Chat => true,
                Capability::Control => !grants.allows(Capability::Screen),
                _ => false,
            };
            if skip {
                continue;
            }
            self.say(&format!("    Allow them to {}? [y/N]", c.describe()));
            match self.next_line().await {
                Some(answer) if answer.eq_ignore_ascii_case("y") || answer.eq_ignore_ascii_case("yes") => {
                    grants.grant(c)
                }
                Some(_) => {}
                None => return None,
            }
        }
        Some(grants)
    }

    /// Asks the customer a yes/no question while the session runs; the answer is the next
    /// line the customer types (see [`Ui::dispatch`]). JSON mode answers no.
    pub async fn ask(&self, question: &str) -> bool {
        if self.json {
            return false;
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.questions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(tx);
        self.say(&format!("  {question} [y/N]"));
        rx.await.unwrap_or(false)
    }

    /// Routes a typed line: the answer to the oldest open question, or else a command
    /// (returned).
    pub fn dispatch(&self, line: String) -> Option<String> {
        let question = self
            .questions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front();
        match question {
            Some(tx) => {
                let _ = tx.send(matches!(line.as_str(), "y" | "Y" | "yes"));
                None
            }
            None => Some(line),
        }
    }

    /// The next line the customer typed.
    pub async fn next_line(&self) -> Option<String> {
        self.lines.lock().await.recv().await
    }

    /// An activity the customer should see (and find in the log later).
    pub fn activity(&self, kind: &str, text: &str) {
        let text = printable(text);
        self.log_line(&text);
        if self.json {
            self.emit(json!({"event": "activity", "kind": kind, "text": text}));
        } else {
            self.say(&format!("  [{}] {text}", ponte_session::clock()));
        }
    }

    /// A progress bar for a transfer (hidden in JSON mode and when stdout is not a terminal).
    pub fn progress(&self, what: &str) -> indicatif::ProgressBar {
        if self.json {
            return indicatif::ProgressBar::hidden();
        }
        let bar = indicatif::ProgressBar::with_draw_target(Some(0), indicatif::ProgressDrawTarget::stdout());
        bar.set_style(
            indicatif::ProgressStyle::with_template("  {msg} {bar:30} {bytes}/{total_bytes} {bytes_per_sec}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_message(printable(what));
        bar
    }

    /// A chat message from the assistant.
    pub fn chat(&self, text: &str) {
        let text = printable(text);
        self.log_line(&format!("chat from assistant: {text}"));
        if self.json {
            self.emit(json!({"event": "chat", "from": "assistant", "text": text}));
        } else {
            self.say(&format!("  [{}] assistant: {text}", ponte_session::clock()));
        }
    }

    /// The session ended.
    pub fn ended(&self, reason: &str) {
        self.log_line(&format!("session ended: {reason}"));
        let log = self.log_path().map(|p| p.display().to_string());
        if self.json {
            self.emit(json!({"event": "ended", "reason": reason, "log": log}));
        } else {
            self.say(&format!("\n  Session ended: {reason}."));
            if let Some(log) = log {
                self.say(&format!("  What happened is recorded in {log}"));
            }
        }
    }
}
