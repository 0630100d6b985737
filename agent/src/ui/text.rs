//! The terminal front-end: shows the session ID and code, who connected, a consent dialog, the
//! activity list and questions; reads the customer's lines. Commands (`revoke NAME`,
//! `grant NAME`, `chat TEXT`, `end`) are recognised before anything is taken as an answer, and
//! an answer goes to the one prompt on screen (a question, or a step of the consent dialog) —
//! only if it was typed at least [`SETTLE`](ponte_agent::questions::SETTLE) after the prompt appeared (so neither type-ahead
//! nor a prompt swapped under the customer's fingers catches a "y"). The prompt stays the last
//! thing on screen: whatever else is printed while it is open is followed by a reminder of it.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::Path;
use std::time::Instant;

use ponte_e2e::app::{Capability, Grants};
use ponte_e2e::identity::PeerIdentity;
use ponte_session::files::Progress;
use tokio::sync::mpsc;

use std::sync::Arc;

use ponte_agent::frontend::{
    Closed, Event, FrontendEnds, Input, Party, Question, QuestionId, QuickTerms, Reply,
};
use ponte_agent::i18n::Tr;
use ponte_agent::i18n::{phrases, t};
use ponte_agent::questions;

fn say(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

/// A line the customer typed, and when it was read.
struct Typed {
    at: Instant,
    text: String,
}

/// The time of day now, in the customer's time zone.
fn clock(tr: &Tr) -> String {
    tr.time_of_day(ponte_session::now_unix())
}

/// The consent dialog's question about `c`; Enter keeps what is pre-selected.
fn consent_prompt(tr: &Tr, c: Capability, preselected: bool) -> String {
    let what = t!(tr, "consent-allow-cap", what = phrases::capability(tr, c));
    format!("    {what} {}", if preselected { "[Y/n]" } else { "[y/N]" })
}

/// Runs the terminal front-end until the session has ended.
pub async fn run(ends: FrontendEnds) {
    let FrontendEnds {
        mut events,
        inputs,
        tr,
        ..
    } = ends;
    let (line_tx, mut lines) = mpsc::channel::<Typed>(16);
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut line = String::new();
        while stdin.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
            let typed = Typed {
                at: Instant::now(),
                text: line.trim().to_owned(),
            };
            if line_tx.blocking_send(typed).is_err() {
                break;
            }
            line.clear();
        }
    });
    let mut ui = TextUi {
        tr,
        inputs,
        prompt: None,
        consent: None,
        bars: HashMap::new(),
        told_end: false,
    };
    let mut stdin_open = true;
    let mut stop = super::StopSignals::listen();
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(Event::Ended { reason, log }) => {
                    ui.ended(&reason, log);
                    break;
                }
                Some(Event::Failed { .. }) | None => break, // main prints the error.
                Some(event) => ui.show(event),
            },
            line = lines.recv(), if stdin_open => match line {
                Some(typed) => ui.line(typed).await,
                None => stdin_open = false,
            },
            () = stop.recv() => ui.send(Input::End).await,
        }
    }
}

/// What the customer is asked right now.
struct Prompt {
    /// The question it answers, or `None` for a step of the consent dialog.
    question: Option<QuestionId>,
    /// For a quick-access question, its terms so far.
    quick: Option<Quick>,
    /// As shown.
    text: String,
    /// When it was shown.
    shown: Instant,
}

/// A quick-access question in the terminal, in steps: for how many days (a number, or yes for
/// the proposal), then — when there are permissions to remember — whether next time the
/// customer is asked what the assistant may do, or the permissions apply without asking. No,
/// Enter or anything but those answers, at any step, means no opt-in.
#[derive(Clone, Copy)]
struct Quick {
    /// The days the assistant proposed.
    proposed: u32,
    /// The permissions offered to remember (only with some is the second step asked).
    grants: Grants,
    /// The days the customer chose: the prompt now asks how the permissions apply.
    days: Option<u32>,
}

struct Consent {
    grants: Grants,
    /// What the customer granted when they allowed quick access: pre-selected.
    remembered: Grants,
    asking: Option<Capability>,
}

impl Consent {
    /// The next capability to ask about: chat always works, control only with the screen.
    fn next(&mut self) -> Option<Capability> {
        let after = self
            .asking
            .and_then(|c| Capability::ALL.iter().position(|x| *x == c));
        let start = after.map_or(0, |i| i + 1);
        self.asking = Capability::ALL[start..].iter().copied().find(|c| match c {
            Capability::Chat => false,
            Capability::Control => self.grants.allows(Capability::Screen),
            _ => true,
        });
        self.asking
    }
}

struct TextUi {
    tr: Arc<Tr>,
    inputs: mpsc::Sender<Input>,
    /// The prompt on screen.
    prompt: Option<Prompt>,
    consent: Option<Consent>,
    bars: HashMap<u64, indicatif::ProgressBar>,
    /// The end of the session was told already.
    told_end: bool,
}

/// A customer's command, if the line is one (the words are English in every language, as
/// `--help` and the hint say).
fn command(tr: &Tr, line: &str) -> Option<Result<Input, String>> {
    let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
    let rest = rest.trim();
    Some(match word {
        "end" | "quit" | "q" | "stop" => Ok(Input::End),
        "revoke" | "grant" => match rest.parse::<Capability>() {
            Ok(c) if word == "revoke" => Ok(Input::Revoke(c)),
            Ok(c) => Ok(Input::Grant(c)),
            Err(e) => Err(e.to_string()),
        },
        "chat" if !rest.is_empty() => Ok(Input::Chat(rest.to_owned())),
        "help" | "?" => Err(t!(tr, "commands-help")),
        _ => return None,
    })
}

impl TextUi {
    async fn send(&self, input: Input) {
        let _ = self.inputs.send(input).await;
    }

    /// Prints a line that is not the prompt; an open prompt is reminded below it, so that
    /// what the customer answers is always what they see last.
    fn say(&mut self, text: &str) {
        say(text);
        if let Some(prompt) = &self.prompt {
            let first = prompt.text.trim_start().lines().next().unwrap_or_default();
            let reminder = first.trim_start_matches("? ");
            say(&format!(
                "    {}",
                t!(self.tr, "question-still-asking", question = reminder)
            ));
        }
    }

    /// Shows a prompt; answers count from [`SETTLE`](ponte_agent::questions::SETTLE) after now.
    fn ask(&mut self, question: Option<QuestionId>, quick: Option<Quick>, text: String) {
        say(&text);
        self.prompt = Some(Prompt {
            question,
            quick,
            text,
            shown: Instant::now(),
        });
    }

    async fn line(&mut self, typed: Typed) {
        let line = typed.text.as_str();
        match command(&self.tr, line) {
            Some(Ok(input)) => return self.send(input).await,
            Some(Err(help)) => return self.say(&format!("  {help}")),
            None => {}
        }
        let Some(prompt) = &mut self.prompt else {
            if !line.is_empty() {
                let help = t!(self.tr, "commands-help");
                self.say(&format!("  {help}"));
            }
            return;
        };
        if !questions::settled(prompt.shown, typed.at) {
            return say(&format!("    {}", t!(self.tr, "question-changed")));
        }
        if let (Some(question), Some(quick)) = (prompt.question, prompt.quick) {
            return self.quick_step(question, quick, line).await;
        }
        let Some(allow) = self.tr.yes_no(line) else {
            return say(&format!("    {}", t!(self.tr, "question-answer-yn")));
        };
        match (prompt.question, &mut self.consent) {
            // The prompt stays until the core closes the question (it may not take the answer).
            (Some(question), _) => {
                let reply = if allow { Reply::Yes } else { Reply::No };
                self.send(Input::Answer { question, reply }).await;
            }
            (None, Some(consent)) => {
                // Enter keeps a pre-selected permission.
                let keep = line.is_empty() && consent.asking.is_some_and(|c| consent.remembered.allows(c));
                if let (true, Some(c)) = (allow || keep, consent.asking) {
                    consent.grants.grant(c);
                }
                match consent.next() {
                    Some(c) => {
                        let text = consent_prompt(&self.tr, c, consent.remembered.allows(c));
                        self.ask(None, None, text);
                    }
                    None => {
                        let grants = consent.grants;
                        self.consent = None;
                        self.prompt = None;
                        self.send(Input::Consent(grants)).await;
                    }
                }
            }
            (None, None) => self.prompt = None,
        }
    }

    /// A line typed at a step of a quick-access question.
    async fn quick_step(&mut self, question: QuestionId, quick: Quick, line: &str) {
        let no = Input::Answer {
            question,
            reply: Reply::No,
        };
        let Some(days) = quick.days else {
            // For how many days: a number, or yes for the proposal; no or Enter: none.
            let days = match (line.parse::<u32>(), self.tr.yes_no(line)) {
                (Ok(days), _) if (1..=ponte_agent::quick_access::opt_ins::MAX_DAYS).contains(&days) => days,
                (_, Some(true)) => quick.proposed,
                (_, Some(false)) => return self.send(no).await,
                _ => return say(&format!("    {}", t!(self.tr, "question-quick-days"))),
            };
            if quick.grants == Grants::NONE {
                let reply = Reply::QuickAccess(QuickTerms {
                    days,
                    without_asking: false,
                    grants: Grants::NONE,
                });
                return self.send(Input::Answer { question, reply }).await;
            }
            let grants = phrases::grants(&self.tr, quick.grants);
            let text = format!(
                "\n  ? {}\n    {}\n    {}",
                t!(self.tr, "question-quick-how", grants = &grants),
                t!(self.tr, "quick-without-asking-note"),
                t!(self.tr, "question-quick-how-text"),
            );
            let quick = Quick {
                days: Some(days),
                ..quick
            };
            return self.ask(Some(question), Some(quick), text);
        };
        // How the remembered permissions apply: asked each time, or without asking.
        let without_asking = match line {
            "1" => false,
            "2" => true,
            _ if matches!(self.tr.yes_no(line), Some(false)) => return self.send(no).await,
            _ => return say(&format!("    {}", t!(self.tr, "question-quick-how-text"))),
        };
        let reply = Reply::QuickAccess(QuickTerms {
            days,
            without_asking,
            grants: quick.grants,
        });
        self.send(Input::Answer { question, reply }).await;
    }

    fn show(&mut self, event: Event) {
        let tr = self.tr.clone();
        match event {
            Event::Note(text) => self.say(&format!("  {text}")),
            Event::Ready {
                session,
                code,
                valid_for,
            } => self.say(&format!(
                "\n  {}\n\n      {:<12} {session}\n      {:<12} {}\n\n  {}\n  {}\n",
                t!(tr, "ready-title"),
                t!(tr, "ready-session"),
                t!(tr, "ready-code"),
                code.reveal(),
                t!(tr, "ready-valid", minutes = valid_for.as_secs().div_ceil(60)),
                t!(tr, "ready-quit"),
            )),
            Event::Attempt(attempt) => self.say(&format!("  {}", phrases::attempt(&tr, &attempt))),
            Event::ConsentNeeded {
                peer,
                scope,
                remembered,
            } => self.consent_needed(&peer, &scope, remembered),
            Event::Connected { peer, granted } => {
                self.say(&format!(
                    "  {}\n  {}",
                    t!(tr, "connected", peer = phrases::peer(&tr, &peer)),
                    t!(tr, "allowed", grants = phrases::grants(&tr, granted)),
                ));
                if granted.allows(Capability::Terminal) {
                    self.say(&format!("  {}", t!(tr, "terminal-means-all")));
                }
                self.say(&format!("  {}", t!(tr, "commands-hint")));
            }
            // The permissions and screen activity lines say it; `ponte-agent quick-access list` lists.
            Event::Grants(_) | Event::Sharing { .. } | Event::QuickAccess(_) => {}
            Event::Question { id, question } => self.question(id, question),
            Event::QuestionClosed { id, outcome } => {
                if self.prompt.as_ref().is_some_and(|p| p.question == Some(id)) {
                    self.prompt = None;
                }
                if outcome == Closed::Withdrawn {
                    self.say(&format!("    {}", t!(tr, "question-withdrawn")));
                }
            }
            Event::Activity(activity) => self.say(&format!("  [{}] {}", clock(&tr), activity.text)),
            Event::Reconnecting(window) => self.say(&format!(
                "  [{}] {}",
                clock(&tr),
                phrases::reconnecting(&tr, window)
            )),
            // Command lines and clipboard uses are activities; what they carried is in the log.
            Event::Terminal { .. } | Event::ClipboardText { .. } => {}
            Event::Transfer {
                transfer,
                what,
                progress,
            } => self.progress(transfer, &what, progress),
            Event::Chat { from, text } => {
                let line = match from {
                    Party::Assistant => t!(tr, "chat-assistant", text = &text),
                    Party::Customer => t!(tr, "chat-you", text = &text),
                };
                self.say(&format!("  [{}] {line}", clock(&tr)));
            }
            Event::AccessEnded { reason } => self.access_ended(&reason),
            Event::Ended { reason, log } => self.ended(&reason, log),
            Event::Failed { error } => self.say(&format!("  {}", t!(tr, "agent-failed", error = &error))),
        }
    }

    /// Who is asking, what the folder is, and the first permission question.
    fn consent_needed(&mut self, peer: &PeerIdentity, scope: &Path, remembered: Grants) {
        let tr = self.tr.clone();
        let who = match peer {
            PeerIdentity::Verified { .. } => format!("  {}", phrases::peer(&tr, peer)),
            PeerIdentity::Unverified { fingerprint, reason } => format!(
                "  !!! {} !!!\n  {}\n  {}\n  {}",
                t!(tr, "unverified-title"),
                t!(tr, "unverified-body", reason = phrases::certificate(&tr, reason)),
                t!(tr, "unverified-stop-text"),
                t!(tr, "key-fingerprint", fingerprint = fingerprint.to_string()),
            ),
        };
        self.say(&format!(
            "\n  {}\n{who}\n\n  {}\n\n  {}",
            t!(tr, "consent-connected"),
            t!(tr, "consent-files", folder = phrases::path(scope)),
            t!(tr, "consent-what-text"),
        ));
        if remembered != Grants::NONE {
            let grants = phrases::grants(&tr, remembered);
            self.say(&format!("  {}", t!(tr, "consent-remembered", grants = grants)));
        }
        let mut consent = Consent {
            grants: Grants::NONE,
            remembered,
            asking: None,
        };
        if let Some(c) = consent.next() {
            self.ask(None, None, consent_prompt(&tr, c, remembered.allows(c)));
        }
        self.consent = Some(consent);
    }

    /// A question of the agent's, with the answers this prompt takes.
    fn question(&mut self, id: QuestionId, question: Question) {
        let tr = self.tr.clone();
        let lines = phrases::question(&tr, &question).join("\n    ");
        let (quick, hint) = match question {
            Question::QuickAccess { days, grants, .. } => {
                let quick = Quick {
                    proposed: days,
                    grants,
                    days: None,
                };
                (Some(quick), t!(tr, "question-quick-text", days = days))
            }
            _ => (None, t!(tr, "question-allow-text")),
        };
        self.ask(Some(id), quick, format!("\n  ? {lines}\n    {hint}"));
    }

    fn progress(&mut self, transfer: u64, what: &ponte_wire::PeerText, progress: Progress) {
        match progress {
            Progress::Started(totals) => {
                let bar = indicatif::ProgressBar::with_draw_target(
                    Some(totals.bytes),
                    indicatif::ProgressDrawTarget::stdout(),
                );
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "  {msg} {bar:30} {bytes}/{total_bytes} {bytes_per_sec}",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                );
                bar.set_message(what.to_string());
                self.bars.insert(transfer, bar);
            }
            Progress::Advanced(done) => {
                if let Some(bar) = self.bars.get(&transfer) {
                    bar.set_position(done);
                    if Some(done) >= bar.length() {
                        bar.finish_and_clear();
                        self.bars.remove(&transfer);
                    }
                }
            }
        }
    }

    /// The session is over (said once: when the assistant's access ended, or at the very end).
    fn access_ended(&mut self, reason: &str) {
        if std::mem::replace(&mut self.told_end, true) {
            return;
        }
        for (_, bar) in self.bars.drain() {
            bar.abandon();
        }
        say(&format!("\n  {}", t!(self.tr, "ended", reason = reason)));
    }

    fn ended(&mut self, reason: &str, log: Option<std::path::PathBuf>) {
        self.access_ended(reason);
        if let Some(log) = log {
            say(&format!(
                "  {}",
                t!(self.tr, "ended-log", path = phrases::path(&log))
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_come_before_answers() {
        let tr = Tr::new(ponte_agent::i18n::Lang::En);
        let command = |line| command(&tr, line);
        assert_eq!(command("end"), Some(Ok(Input::End)));
        assert_eq!(
            command("revoke terminal"),
            Some(Ok(Input::Revoke(Capability::Terminal)))
        );
        assert_eq!(
            command("grant control"),
            Some(Ok(Input::Grant(Capability::Control)))
        );
        assert!(matches!(command("revoke sudo"), Some(Err(_))));
        assert_eq!(
            command("chat hello there"),
            Some(Ok(Input::Chat("hello there".into())))
        );
        assert_eq!(command("y"), None);
        assert_eq!(tr.yes_no("Y"), Some(true));
        assert_eq!(tr.yes_no(""), Some(false));
        assert_eq!(tr.yes_no("maybe"), None);
    }

    #[test]
    fn consent_asks_control_only_with_the_screen() {
        let mut consent = Consent {
            grants: Grants::NONE,
            remembered: Grants::NONE,
            asking: None,
        };
        let mut asked = Vec::new();
        while let Some(c) = consent.next() {
            asked.push(c);
        }
        assert!(!asked.contains(&Capability::Chat) && !asked.contains(&Capability::Control));
        let mut consent = Consent {
            grants: Grants::parse_list("screen").unwrap(),
            remembered: Grants::NONE,
            asking: None,
        };
        let mut asked = Vec::new();
        while let Some(c) = consent.next() {
            asked.push(c);
        }
        let screen = asked.iter().position(|c| *c == Capability::Screen).unwrap();
        assert_eq!(
            asked.get(screen + 1),
            Some(&Capability::Control),
            "right after the screen"
        );
    }
}
