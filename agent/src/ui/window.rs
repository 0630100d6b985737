//! The customer's window (egui/eframe): the session ID and code to read aloud, who connects and
//! what they may do, then the session as it happens — live permission switches, activity,
//! the assistant's terminal, transfers, chat, questions as dialogs and a big "End session".
//!
//! The window runs on the main thread; the core runs on the tokio runtime. Events reach the
//! window through a channel that wakes it; the customer's clicks go back as [`Input`]s.
//!
//! The assistant may control this desktop's mouse and keyboard, and so could click this
//! window. What would widen its access (a switch turned on, Allow, a yes) is therefore not
//! taken while the assistant is using the pointer or keyboard ([`NOT_THEIRS`](ponte_agent::questions::NOT_THEIRS); the core's
//! guard is longer still); what narrows it (End session, a switch turned off, Deny, No,
//! Remove) is always taken, so a jammed keyboard cannot lock the customer out of stopping it.
//! A question's buttons only work once it has been on screen for [`SETTLE`](ponte_agent::questions::SETTLE).

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eframe::egui::{self, Color32, RichText};
use ponte_e2e::app::{Capability, Grants};
use ponte_e2e::identity::PeerIdentity;
use ponte_session::files::Progress;
use ponte_wire::PeerText;
use tokio::sync::mpsc;

use ponte_agent::desktop::InjectedInput;
use ponte_agent::frontend::{
    Attempt, Closed, Event, FrontendEnds, Input, Kind, Party, QuestionId, QuickTerms, Reply,
};
use ponte_agent::i18n::Tr;
use ponte_agent::i18n::{phrases, t};
use ponte_agent::questions;
use ponte_agent::quick_access::opt_ins::Entry;

/// Lines kept in the activity list, the terminal view and the chat.
const KEPT: usize = 500;

const GREEN: Color32 = Color32::from_rgb(0x1b, 0x7a, 0x2e);
const RED: Color32 = Color32::from_rgb(0xc0, 0x1c, 0x1c);
const AMBER: Color32 = Color32::from_rgb(0x9a, 0x5b, 0x00);

/// Whether a window can be opened here (an X or Wayland display is set).
pub fn display_available() -> bool {
    ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|var| std::env::var_os(var).is_some_and(|v| !v.is_empty()))
}

/// The window could not be opened.
pub struct NoWindow {
    /// The front-end's ends, for another front-end (`None` if the window took them).
    pub ends: Option<FrontendEnds>,
    /// Why.
    pub error: String,
}

/// Shows the window until the customer closes it; the session ends when it closes (or
/// Ctrl-C, SIGTERM or SIGHUP arrive). Must run on the main thread.
pub fn run(runtime: &tokio::runtime::Handle, ends: FrontendEnds) -> Result<(), NoWindow> {
    let title = t!(ends.tr, "window-title");
    let slot = Arc::new(Mutex::new(Some(ends)));
    let taken = slot.clone();
    let runtime = runtime.clone();
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title(title.clone())
            .with_app_id("ponte-agent")
            .with_inner_size([640.0, 760.0])
            .with_min_inner_size([420.0, 480.0]),
        // Nothing of the session is kept anywhere but in the log.
        persist_window: false,
        ..Default::default()
    };
    let result = eframe::run_native(
        &title,
        options,
        Box::new(move |cc| {
            let ends = taken
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .ok_or("the window was created twice")?;
            Ok(Box::new(Window::new(cc, &runtime, ends)))
        }),
    );
    match result {
        Ok(()) => Ok(()),
        Err(e) => Err(NoWindow {
            ends: slot.lock().unwrap_or_else(|e| e.into_inner()).take(),
            error: e.to_string(),
        }),
    }
}

/// Where the session is.
enum Stage {
    /// Connecting to the relay.
    Starting,
    /// The ID and code are shown.
    Waiting(Ready),
    /// An assistant proved the code: may they, and what?
    Consent {
        peer: PeerIdentity,
        scope: PathBuf,
        selected: Grants,
    },
    /// The session runs (since this date and time).
    Session { peer: PeerIdentity, since: String },
    /// It is over (at this date and time).
    Ended {
        reason: String,
        log: Option<PathBuf>,
        at: String,
    },
}

impl Stage {
    /// The session ended (now) for `reason`.
    fn ended(tr: &Tr, reason: String, log: Option<PathBuf>) -> Stage {
        Stage::Ended {
            reason,
            log,
            at: tr.date_time(ponte_session::now_unix()),
        }
    }
}

struct Ready {
    session: String,
    code: String,
    expires: Instant,
}

struct Question {
    id: QuestionId,
    lines: Vec<String>,
    shown: Instant,
    /// For a quick-access question: the customer's choices so far.
    quick: Option<QuickChoice>,
}

/// The terms of a quick-access opt-in as the customer sets them in its dialog.
struct QuickChoice {
    who: String,
    /// The fingerprint of the key it would let in.
    key: String,
    /// The permissions offered to remember.
    offered: Grants,
    /// Those chosen.
    grants: Grants,
    /// The periods offered (the assistant's proposal among them), in days.
    periods: Vec<u32>,
    days: u32,
    without_asking: bool,
}

impl QuickChoice {
    /// A week, a month, three months, a year, and what the assistant proposed (chosen); the
    /// permissions offered, all chosen; asking each time.
    fn new(who: String, key: String, proposed: u32, grants: Grants) -> QuickChoice {
        let mut periods = vec![
            7,
            30,
            ponte_agent::quick_access::opt_ins::DEFAULT_DAYS,
            ponte_agent::quick_access::opt_ins::MAX_DAYS,
            proposed,
        ];
        periods.sort_unstable();
        periods.dedup();
        QuickChoice {
            who,
            key,
            offered: grants,
            grants,
            periods,
            days: proposed,
            without_asking: false,
        }
    }
}

struct Transfer {
    what: String,
    total: u64,
    done: u64,
}

struct Window {
    tr: Arc<Tr>,
    inputs: mpsc::Sender<Input>,
    events: std::sync::mpsc::Receiver<Event>,
    injected: InjectedInput,
    stage: Stage,
    /// Attempts and notes while waiting (the latest last).
    notes: VecDeque<(String, Color32)>,
    grants: Grants,
    sharing: u32,
    /// Whether the shared desktop takes the assistant's input.
    sharing_input: bool,
    activity: VecDeque<(String, Kind)>,
    terminal: VecDeque<String>,
    transfers: BTreeMap<u64, Transfer>,
    chat: VecDeque<String>,
    draft: String,
    question: Option<Question>,
    /// The customer's quick-access opt-ins, to list and take back.
    opt_ins: Vec<Entry>,
    copied: Option<Instant>,
    /// A click or key the window did not take (the assistant was using this desktop).
    refused_at: Option<Instant>,
    /// The connection is lost and the session waits this long to be resumed.
    reconnecting: Option<std::time::Duration>,
}

fn push<T>(list: &mut VecDeque<T>, item: T) {
    if list.len() == KEPT {
        list.pop_front();
    }
    list.push_back(item);
}

impl Window {
    fn new(cc: &eframe::CreationContext<'_>, runtime: &tokio::runtime::Handle, ends: FrontendEnds) -> Window {
        let FrontendEnds {
            events,
            inputs,
            tr,
            injected,
        } = ends;
        style(&cc.egui_ctx);
        // Events wake the window; a stop signal closes it (which ends the session).
        let (tx, rx) = std::sync::mpsc::channel();
        let ctx = cc.egui_ctx.clone();
        runtime.spawn(async move {
            let mut events = events;
            let mut stop = super::StopSignals::listen();
            loop {
                tokio::select! {
                    event = events.recv() => {
                        let Some(event) = event else { break };
                        if tx.send(event).is_err() {
                            break;
                        }
                        ctx.request_repaint();
                    }
                    () = stop.recv() => {
                        ctx.send_viewport_cmd(egui::ViewportCommand::Close);
                        ctx.request_repaint();
                    }
                }
            }
        });
        Window {
            tr,
            inputs,
            events: rx,
            injected,
            stage: Stage::Starting,
            notes: VecDeque::new(),
            grants: Grants::NONE,
            sharing: 0,
            sharing_input: true,
            activity: VecDeque::new(),
            terminal: VecDeque::new(),
            transfers: BTreeMap::new(),
            chat: VecDeque::new(),
            draft: String::new(),
            question: None,
            opt_ins: Vec::new(),
            copied: None,
            refused_at: None,
            reconnecting: None,
        }
    }

    /// Sends what the customer did. What widens the assistant's access (or speaks for the
    /// customer, as chat does) is not taken while the assistant may have done it; what narrows
    /// it — End, a switch turned off, Deny, No, Remove — always is.
    fn send(&mut self, input: Input) {
        if !questions::taken_as_customers(&input, &self.injected) {
            self.refused_at = Some(Instant::now());
            return;
        }
        // The core reads inputs at once; a full queue means it is gone.
        let _ = self.inputs.try_send(input);
    }

    fn take(&mut self, event: Event) {
        let tr = self.tr.clone();
        match event {
            Event::Note(text) => push(&mut self.notes, (text, Color32::PLACEHOLDER)),
            Event::Ready {
                session,
                code,
                valid_for,
            } => {
                self.stage = Stage::Waiting(Ready {
                    session: session.to_string(),
                    code: code.reveal(),
                    expires: Instant::now() + valid_for,
                });
            }
            Event::Attempt(attempt) => {
                let color = match attempt {
                    Attempt::Connecting | Attempt::QuickConnecting => Color32::PLACEHOLDER,
                    Attempt::Burned | Attempt::Expired => AMBER,
                    _ => RED,
                };
                push(&mut self.notes, (phrases::attempt(&tr, &attempt), color));
            }
            Event::ConsentNeeded {
                peer,
                scope,
                remembered,
            } => {
                // Quick access pre-selects what the customer granted last time; they still
                // confirm (or change) it.
                self.stage = Stage::Consent {
                    peer,
                    scope,
                    selected: remembered,
                };
            }
            Event::Connected { peer, granted } => {
                self.grants = granted;
                let since = tr.date_time(ponte_session::now_unix());
                self.stage = Stage::Session { peer, since };
            }
            Event::Grants(grants) => self.grants = grants,
            Event::Question { id, question } => self.ask(id, &question),
            Event::QuickAccess(entries) => self.opt_ins = entries,
            Event::QuestionClosed { id, outcome } => {
                if self.question.as_ref().is_some_and(|q| q.id == id) {
                    self.question = None;
                }
                if outcome == Closed::Withdrawn {
                    push(&mut self.activity, (t!(tr, "question-withdrawn"), Kind::Refused));
                }
            }
            Event::Activity(activity) => {
                let line = format!("{}  {}", clock(&tr), activity.text);
                push(&mut self.activity, (line, activity.kind));
            }
            Event::Reconnecting(window) => {
                self.reconnecting = window;
                let line = format!("{}  {}", clock(&tr), phrases::reconnecting(&tr, window));
                push(&mut self.activity, (line, Kind::Permissions));
            }
            Event::Terminal { terminal, line } => push(&mut self.terminal, format!("[{terminal}] {line}")),
            // Its length is an activity line; the text is in the session log only.
            Event::ClipboardText { .. } => {}
            Event::Transfer {
                transfer,
                what,
                progress,
            } => self.transfer(transfer, &what, progress),
            Event::Sharing { active, input } => {
                self.sharing_input = input;
                self.sharing = if active {
                    self.sharing.saturating_add(1)
                } else {
                    self.sharing.saturating_sub(1)
                };
            }
            Event::Chat { from, text } => {
                let line = match from {
                    Party::Assistant => t!(tr, "chat-assistant", text = &text),
                    Party::Customer => t!(tr, "chat-you", text = &text),
                };
                push(&mut self.chat, format!("{}  {line}", clock(&tr)));
            }
            Event::Failed { error } => {
                self.question = None;
                self.stage = Stage::ended(&tr, t!(tr, "agent-failed", error = &error), None);
            }
            // The session is over; a last question (quick access) may still come.
            Event::AccessEnded { reason } => {
                self.notes.clear();
                self.stage = Stage::ended(&tr, t!(tr, "ended", reason = reason), None);
            }
            Event::Ended { reason, log } => {
                self.question = None;
                match &mut self.stage {
                    Stage::Ended { log: shown, .. } => *shown = log,
                    _ => self.stage = Stage::ended(&tr, t!(tr, "ended", reason = reason), log),
                }
            }
        }
    }

    /// Shows `question` as the open dialog, bound to `id`.
    fn ask(&mut self, id: QuestionId, question: &ponte_agent::frontend::Question) {
        let quick = match question {
            ponte_agent::frontend::Question::QuickAccess {
                who,
                key,
                days,
                grants,
            } => Some(QuickChoice::new(who.clone(), key.clone(), *days, *grants)),
            _ => None,
        };
        self.question = Some(Question {
            id,
            lines: phrases::question(&self.tr, question),
            shown: Instant::now(),
            quick,
        });
    }

    /// A transfer started or advanced.
    fn transfer(&mut self, transfer: u64, what: &PeerText, progress: Progress) {
        match progress {
            Progress::Started(totals) => {
                self.transfers.insert(
                    transfer,
                    Transfer {
                        what: what.to_string(),
                        total: totals.bytes,
                        done: 0,
                    },
                );
            }
            Progress::Advanced(done) => {
                if let Some(t) = self.transfers.get_mut(&transfer) {
                    t.done = done;
                }
            }
        }
    }
}

fn clock(tr: &Tr) -> String {
    tr.time_of_day(ponte_session::now_unix())
}

/// Large, plain text: the customer reads it while on the phone.
fn style(ctx: &egui::Context) {
    ctx.set_visuals(egui::Visuals::light());
    ctx.style_mut(|style| {
        use egui::{FontFamily, FontId, TextStyle};
        style.text_styles = [
            (TextStyle::Heading, FontId::new(24.0, FontFamily::Proportional)),
            (TextStyle::Body, FontId::new(17.0, FontFamily::Proportional)),
            (TextStyle::Button, FontId::new(17.0, FontFamily::Proportional)),
            (TextStyle::Small, FontId::new(14.0, FontFamily::Proportional)),
            (TextStyle::Monospace, FontId::new(15.0, FontFamily::Monospace)),
        ]
        .into();
        style.spacing.item_spacing = egui::vec2(10.0, 8.0);
        // Switches big enough to see and hit.
        style.spacing.icon_width = 22.0;
        style.spacing.icon_width_inner = 14.0;
        style.spacing.button_padding = egui::vec2(12.0, 6.0);
    });
}

impl eframe::App for Window {
    fn update(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        while let Ok(event) = self.events.try_recv() {
            self.take(event);
        }
        // The countdown and the question's settle time move on their own.
        ctx.request_repaint_after(Duration::from_millis(250));
        let tr = self.tr.clone();
        let refused = self
            .refused_at
            .is_some_and(|t| t.elapsed() < Duration::from_secs(6));
        if refused || matches!(self.stage, Stage::Session { .. }) {
            // At the bottom: the indicator bar of a shared screen covers the top.
            egui::TopBottomPanel::bottom("end").show(ctx, |ui| {
                if refused {
                    ui.colored_label(AMBER, t!(tr, "not-taken"));
                }
                if !matches!(self.stage, Stage::Session { .. }) {
                    return;
                }
                ui.add_space(6.0);
                let end = filled(t!(tr, "window-end-session"), 22.0, RED)
                    .min_size(egui::vec2(ui.available_width(), 48.0));
                if ui.add(end).clicked() {
                    self.send(Input::End);
                }
                ui.add_space(6.0);
            });
        }
        egui::CentralPanel::default().show(ctx, |ui| {
            egui::ScrollArea::vertical()
                .auto_shrink([false, false])
                .show(ui, |ui| {
                    match &self.stage {
                        Stage::Starting => {
                            ui.heading(t!(tr, "window-title"));
                            ui.spinner();
                        }
                        Stage::Waiting(_) => self.waiting(ui),
                        Stage::Consent { .. } => self.consent(ui),
                        Stage::Session { .. } => self.session(ui),
                        Stage::Ended { .. } => self.ended(ui),
                    }
                    // (In a session the activity list says it all; after it, only what came
                    // after its end is left in the notes.)
                    if !matches!(self.stage, Stage::Session { .. }) {
                        self.show_notes(ui);
                    }
                    if matches!(self.stage, Stage::Waiting(_) | Stage::Ended { .. }) {
                        self.opt_ins(ui);
                    }
                });
        });
        self.question(ctx);
    }
}

impl Window {
    fn waiting(&mut self, ui: &mut egui::Ui) {
        let tr = self.tr.clone();
        let Stage::Waiting(ready) = &self.stage else {
            return;
        };
        ui.heading(t!(tr, "ready-title"));
        ui.add_space(8.0);
        let big = |text: &str| RichText::new(text).size(46.0).monospace().strong();
        ui.label(t!(tr, "ready-session"));
        ui.label(big(&ready.session));
        ui.label(t!(tr, "ready-code"));
        ui.label(big(&ready.code));
        let both = format!("{}  {}", ready.session, ready.code);
        let left = ready.expires.saturating_duration_since(Instant::now()).as_secs();
        ui.horizontal(|ui| {
            let copied = self.copied.is_some_and(|t| t.elapsed() < Duration::from_secs(2));
            let label = if copied {
                t!(tr, "ready-copied")
            } else {
                t!(tr, "ready-copy")
            };
            if ui.button(label).clicked() {
                ui.ctx().copy_text(both);
                self.copied = Some(Instant::now());
            }
            let time = format!("{}:{:02}", left / 60, left % 60);
            ui.label(t!(tr, "ready-countdown", time = time));
        });
        ui.add_space(8.0);
        ui.label(t!(tr, "ready-instruction"));
    }

    fn show_notes(&self, ui: &mut egui::Ui) {
        if self.notes.is_empty() {
            return;
        }
        ui.separator();
        for (note, color) in self.notes.iter().rev().take(6) {
            if *color == Color32::PLACEHOLDER {
                ui.label(note);
            } else {
                ui.colored_label(*color, note);
            }
        }
    }

    fn consent(&mut self, ui: &mut egui::Ui) {
        let tr = self.tr.clone();
        let Stage::Consent {
            peer,
            scope,
            selected,
        } = &mut self.stage
        else {
            return;
        };
        ui.heading(t!(tr, "consent-connected"));
        who(ui, &tr, peer);
        ui.add_space(6.0);
        ui.label(t!(tr, "consent-files", folder = phrases::path(scope)));
        ui.add_space(6.0);
        ui.label(RichText::new(t!(tr, "consent-what")).strong());
        let mut chosen = *selected;
        switches(ui, &tr, &mut chosen, true);
        // A switch turned on by the assistant's click would be allowed with the customer's.
        let widened = chosen.list().iter().any(|c| !selected.allows(*c));
        if widened && self.injected.within(questions::NOT_THEIRS) {
            self.refused_at = Some(Instant::now());
            chosen = *selected;
        }
        *selected = chosen;
        terminal_means_all(ui, &tr, chosen);
        ui.add_space(10.0);
        let mut answer = None;
        ui.horizontal(|ui| {
            let allow = filled(t!(tr, "consent-allow-selected"), ANSWER_TEXT, GREEN).min_size(ANSWER);
            if ui.add(allow).clicked() {
                answer = Some(chosen);
            }
            ui.add_space(24.0);
            let deny =
                egui::Button::new(RichText::new(t!(tr, "consent-deny")).size(ANSWER_TEXT)).min_size(ANSWER);
            if ui.add(deny).clicked() {
                answer = Some(Grants::NONE);
            }
        });
        if let Some(grants) = answer {
            self.send(Input::Consent(grants));
        }
    }

    fn session(&mut self, ui: &mut egui::Ui) {
        let tr = self.tr.clone();
        let Stage::Session { peer, since } = &self.stage else {
            return;
        };
        let since = t!(tr, "window-since", time = since);
        who(ui, &tr, &peer.clone());
        ui.label(since);
        if let Some(window) = self.reconnecting {
            let text = phrases::reconnecting(&tr, Some(window));
            ui.label(RichText::new(text).strong().color(AMBER));
        }
        if self.sharing > 0 {
            let (text, color) = if self.grants.allows(Capability::Control) && self.sharing_input {
                (t!(tr, "window-screen-controlling"), RED)
            } else {
                (
                    t!(tr, "window-screen-viewing"),
                    Color32::from_rgb(0x1f, 0x6f, 0xd0),
                )
            };
            ui.label(RichText::new(text).strong().color(color));
        }
        ui.add_space(4.0);
        egui::CollapsingHeader::new(RichText::new(t!(tr, "window-permissions")).strong())
            .default_open(true)
            .show(ui, |ui| {
                let before = self.grants;
                let mut now = before;
                // Short names: what each means was shown when they were chosen, and the
                // session's activity needs the room.
                switches(ui, &tr, &mut now, false);
                terminal_means_all(ui, &tr, before);
                for c in Capability::ALL {
                    match (before.allows(c), now.allows(c)) {
                        (false, true) => self.send(Input::Grant(c)),
                        (true, false) => self.send(Input::Revoke(c)),
                        _ => {}
                    }
                }
            });
        if !self.transfers.is_empty() {
            ui.label(RichText::new(t!(tr, "window-transfers")).strong());
            for t in self.transfers.values() {
                let fraction = if t.total == 0 {
                    1.0
                } else {
                    t.done as f32 / t.total as f32
                };
                let text = format!("{}  {} / {}", t.what, tr.size(t.done), tr.size(t.total));
                ui.add(egui::ProgressBar::new(fraction.min(1.0)).text(text));
            }
        }
        ui.label(RichText::new(t!(tr, "window-activity")).strong());
        let plain = ui.visuals().text_color();
        list(
            ui,
            "activity",
            140.0,
            self.activity.iter().map(|(line, kind)| {
                let color = match kind {
                    Kind::Refused | Kind::Stopped | Kind::Failed => RED,
                    Kind::Control => AMBER,
                    _ => plain,
                };
                RichText::new(line).color(color)
            }),
        );
        if !self.terminal.is_empty() {
            ui.label(RichText::new(t!(tr, "window-terminal")).strong());
            list(
                ui,
                "terminal",
                120.0,
                self.terminal.iter().map(|l| RichText::new(l).monospace()),
            );
        }
        ui.label(RichText::new(t!(tr, "window-chat")).strong());
        list(ui, "chat", 80.0, self.chat.iter().map(RichText::new));
        ui.horizontal(|ui| {
            let field = ui
                .add(egui::TextEdit::singleline(&mut self.draft).desired_width(ui.available_width() - 90.0));
            let entered = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            if (ui.button(t!(tr, "chat-send")).clicked() || entered) && !self.draft.trim().is_empty() {
                let text = std::mem::take(&mut self.draft);
                self.send(Input::Chat(text.trim().to_owned()));
                field.request_focus();
            }
        });
    }

    fn ended(&mut self, ui: &mut egui::Ui) {
        let tr = self.tr.clone();
        let Stage::Ended { reason, log, at } = &self.stage else {
            return;
        };
        ui.heading(reason);
        ui.label(t!(tr, "window-ended-at", time = at));
        ui.add_space(8.0);
        if let Some(log) = log {
            ui.label(t!(tr, "ended-log", path = phrases::path(log)));
            if ui.button(t!(tr, "ended-open-log")).clicked() {
                // The desktop's viewer for text files; nothing waits for it.
                if let Err(e) = std::process::Command::new("xdg-open").arg(log).spawn() {
                    tracing::warn!("opening the log: {e}");
                }
            }
        }
        ui.add_space(8.0);
        // Closing is the customer's own business: the session is over, nothing to guard.
        if ui.button(t!(tr, "window-close")).clicked() {
            ui.ctx().send_viewport_cmd(egui::ViewportCommand::Close);
        }
    }

    /// The open question, as a dialog bound to its id.
    fn question(&mut self, ctx: &egui::Context) {
        let tr = self.tr.clone();
        let Some(question) = &mut self.question else {
            return;
        };
        let (id, settled) = (question.id, questions::settled(question.shown, Instant::now()));
        let mut answer = None;
        let mut end = false;
        let in_session = matches!(self.stage, Stage::Session { .. });
        let modal = egui::Modal::new(egui::Id::new(("question", id.0))).show(ctx, |ui| {
            ui.set_max_width(520.0);
            if let Some(quick) = &mut question.quick {
                // Asked only once the assistant's access has ended: no input of theirs arrives.
                quick_terms(ui, &tr, quick);
            } else {
                let mut lines = question.lines.iter();
                if let Some(headline) = lines.next() {
                    ui.label(RichText::new(headline).strong());
                }
                for line in lines {
                    ui.colored_label(RED, line);
                }
            }
            ui.add_space(8.0);
            ui.label(t!(tr, "question-allow"));
            // Large buttons, well apart: this answer matters.
            ui.horizontal(|ui| {
                let deny = egui::Button::new(RichText::new(t!(tr, "consent-deny")).size(ANSWER_TEXT))
                    .min_size(ANSWER);
                if ui.add_enabled(settled, deny).clicked() {
                    answer = Some(Reply::No);
                }
                ui.add_space(24.0);
                let allow = filled(t!(tr, "question-allow-button"), ANSWER_TEXT, GREEN).min_size(ANSWER);
                if ui.add_enabled(settled, allow).clicked() {
                    answer = Some(match &question.quick {
                        Some(quick) => Reply::QuickAccess(QuickTerms {
                            days: quick.days,
                            without_asking: quick.without_asking && quick.grants != Grants::NONE,
                            grants: quick.grants,
                        }),
                        None => Reply::Yes,
                    });
                }
            });
            // The dialog covers the window's own End button: a stream of questions from the
            // assistant must not keep the customer from ending the session.
            if in_session {
                ui.add_space(8.0);
                let button = filled(t!(tr, "window-end-session"), ANSWER_TEXT, RED).min_size(ANSWER);
                end = ui.add(button).clicked();
            }
        });
        // Escape (or a click beside the dialog) is a no, as closing the window is.
        if answer.is_none() && modal.should_close() {
            answer = Some(Reply::No);
        }
        if end {
            self.send(Input::End);
        } else if let Some(reply) = answer {
            self.send(Input::Answer { question: id, reply });
        }
    }

    /// The customer's quick-access opt-ins, each with a button to take it back.
    fn opt_ins(&mut self, ui: &mut egui::Ui) {
        if self.opt_ins.is_empty() {
            return;
        }
        let tr = self.tr.clone();
        let now = ponte_session::now_unix();
        let mut remove = None;
        ui.separator();
        ui.label(RichText::new(t!(tr, "quick-list-title")).strong());
        for (i, entry) in self.opt_ins.iter().enumerate() {
            ui.horizontal_wrapped(|ui| {
                if ui.button(t!(tr, "quick-list-remove")).clicked() {
                    remove = Some(entry.clone());
                }
                ui.label(phrases::opt_in_line(&tr, i + 1, entry, now));
            });
        }
        if let Some(entry) = remove {
            self.send(Input::Untrust(entry));
        }
    }
}

/// The quick-access question, asked once the assistant's access has ended: who (with the
/// key's fingerprint), for how long, which permissions to remember and whether they apply
/// without asking, and how to take it back.
fn quick_terms(ui: &mut egui::Ui, tr: &Tr, quick: &mut QuickChoice) {
    ui.label(RichText::new(t!(tr, "question-quick-access", who = &quick.who)).strong());
    ui.label(RichText::new(t!(tr, "key-fingerprint", fingerprint = &quick.key)).small());
    ui.label(t!(tr, "question-quick-access-after"));
    ui.add_space(4.0);
    ui.label(t!(tr, "quick-period"));
    let now = ponte_session::now_unix();
    for &days in &quick.periods {
        let until = tr.date_time(ponte_agent::quick_access::opt_ins::ends(now, days));
        ui.radio_value(
            &mut quick.days,
            days,
            t!(tr, "quick-period-option", days = days, until = until),
        );
    }
    ui.add_space(4.0);
    if quick.offered != Grants::NONE {
        ui.label(t!(tr, "quick-remember"));
        for c in quick.offered.list() {
            let mut on = quick.grants.allows(c);
            if ui.checkbox(&mut on, phrases::capability_name(tr, c)).changed() {
                if on {
                    quick.grants.grant(c);
                } else {
                    quick.grants.revoke(c);
                }
            }
        }
        if quick.grants != Grants::NONE {
            ui.checkbox(&mut quick.without_asking, t!(tr, "quick-without-asking"));
            if quick.without_asking {
                ui.colored_label(AMBER, t!(tr, "quick-without-asking-note"));
            }
        }
    }
    ui.label(t!(tr, "question-quick-access-revoke"));
}

/// The size of an answer button (allow, deny) and of its text: large, because it matters.
const ANSWER: egui::Vec2 = egui::vec2(140.0, 40.0);
const ANSWER_TEXT: f32 = 20.0;

/// A button in a strong colour with white text of `size`.
fn filled(text: String, size: f32, fill: Color32) -> egui::Button<'static> {
    egui::Button::new(RichText::new(text).size(size).color(Color32::WHITE)).fill(fill)
}

/// Who is asking: verified on green, or the red UNVERIFIED warning.
fn who(ui: &mut egui::Ui, tr: &Tr, peer: &PeerIdentity) {
    egui::Frame::new()
        .fill(if peer.is_verified() { GREEN } else { RED })
        .inner_margin(10.0)
        .corner_radius(6.0)
        .show(ui, |ui| {
            ui.set_width(ui.available_width());
            let white = |text: String| RichText::new(text).color(Color32::WHITE);
            match peer {
                PeerIdentity::Verified { .. } => {
                    ui.label(white(phrases::peer(tr, peer)).size(20.0).strong());
                }
                PeerIdentity::Unverified { fingerprint, reason } => {
                    ui.label(white(t!(tr, "unverified-title")).size(22.0).strong());
                    ui.label(white(t!(
                        tr,
                        "unverified-body",
                        reason = phrases::certificate(tr, reason)
                    )));
                    ui.label(white(t!(tr, "unverified-stop")).strong());
                    ui.label(white(t!(tr, "key-fingerprint", fingerprint = fingerprint.to_string())).small());
                }
            }
        });
}

/// One switch per capability (`explained`: with what it allows); control only with the screen.
fn switches(ui: &mut egui::Ui, tr: &Tr, grants: &mut Grants, explained: bool) {
    for c in Capability::ALL {
        if c == Capability::Chat {
            continue; // Chat always works.
        }
        let mut on = grants.allows(c);
        let enabled = c != Capability::Control || grants.allows(Capability::Screen);
        let label = match explained {
            true => format!(
                "{} — {}",
                phrases::capability_name(tr, c),
                phrases::capability(tr, c)
            ),
            false => phrases::capability_name(tr, c),
        };
        if ui
            .add_enabled(enabled, egui::Checkbox::new(&mut on, label))
            .changed()
        {
            if on {
                grants.grant(c);
            } else {
                grants.revoke(c);
                if c == Capability::Screen {
                    grants.revoke(Capability::Control);
                }
            }
        }
    }
}

/// With the terminal the assistant runs as the customer: the screen, the mouse and keyboard
/// and every file come with it, whatever the other switches say.
fn terminal_means_all(ui: &mut egui::Ui, tr: &Tr, grants: Grants) {
    if grants.allows(Capability::Terminal) {
        ui.colored_label(AMBER, t!(tr, "terminal-means-all"));
    }
}

/// A list that follows its newest line.
fn list(ui: &mut egui::Ui, id: &str, height: f32, lines: impl Iterator<Item = RichText>) {
    egui::Frame::group(ui.style()).show(ui, |ui| {
        egui::ScrollArea::vertical()
            .id_salt(id)
            .max_height(height)
            .stick_to_bottom(true)
            .auto_shrink([false, true])
            .show(ui, |ui| {
                for line in lines {
                    ui.label(line);
                }
            });
    });
}
