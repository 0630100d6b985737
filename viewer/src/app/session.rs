//! One session's tab: a header with what the customer allows now (a revoke greys out the
//! matching view at once and says so), how the assistant shows to the customer, the ticket,
//! the time connected and End; then the views — Screen, Files, Terminal, Chat, Info — and the
//! clipboard buttons.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::time::Instant;

use eframe::egui::{self, Color32, RichText};
use ponte_e2e::app::{Capability, Grants};
use ponte_wire::PeerText;
use tokio::sync::watch;

use super::connect::{Joined, ShowsAs};
use super::files::{Files, FilesUpdate};
use super::screen::ScreenView;
use super::terminal::{self, TerminalView};
use super::{AMBER, GREEN, Outbox, Peer, RED};
use ponte_viewer::client::{Notice, State};
use ponte_viewer::screen_client::ScreenClient;

/// Terminals open at once in one session: each holds a stream of the session, and the relay
/// lets a peer have 64 open (the views and requests need the rest).
const MAX_TERMINALS: usize = 16;

/// The customer's system facts as shown, or why they could not be read.
type Facts = Result<Vec<(String, String)>, String>;

/// Chat lines kept.
const KEPT: usize = 500;

/// What a session's tasks tell its tab.
pub enum Update {
    /// What the customer's side said on the control stream.
    Notice(Notice),
    /// The customer's system facts, or why not.
    Info(Result<Vec<(PeerText, PeerText)>, String>),
    /// A terminal's output or end.
    Terminal(usize, terminal::Output),
    /// A listing or transfer.
    Files(FilesUpdate),
    /// A clipboard exchange: what to say about it and the customer's text to put on the
    /// assistant's clipboard, if it brought some; or why it failed.
    Clipboard(Result<(String, Option<String>), String>),
    /// A chat message could not be sent.
    ChatFailed(String),
    /// The screen stream started, or why not.
    Screen(Result<ScreenClient, String>),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum View {
    Screen,
    Files,
    Terminal,
    Chat,
    Info,
}

impl View {
    const ALL: [View; 5] = [View::Screen, View::Files, View::Terminal, View::Chat, View::Info];

    fn name(self) -> &'static str {
        match self {
            View::Screen => "Screen",
            View::Files => "Files",
            View::Terminal => "Terminal",
            View::Chat => "Chat",
            View::Info => "Info",
        }
    }

    /// Whether the customer's grants let it be used.
    fn allowed(self, grants: Grants) -> bool {
        match self {
            View::Screen => grants.allows(Capability::Screen),
            View::Files => grants.allows(Capability::Download) || grants.allows(Capability::Upload),
            View::Terminal => grants.allows(Capability::Terminal),
            View::Chat => grants.allows(Capability::Chat),
            View::Info => grants.allows(Capability::Info),
        }
    }
}

/// One session's tab.
pub struct SessionTab {
    /// Its name in the tab strip.
    pub label: String,
    /// The session and how its tasks run and report.
    peer: Peer,
    state: watch::Receiver<State>,
    updates: std_mpsc::Receiver<Update>,
    since: Instant,
    ticket: Option<String>,
    shows_as: ShowsAs,
    view: View,
    /// The grants last seen, and what changed then (shown in the header).
    grants: Option<Grants>,
    change: Option<(String, Color32)>,
    chat: Vec<(String, bool, String)>,
    draft: String,
    unread: usize,
    /// The customer's system facts: not asked yet (`None`), being asked (`Some(None)`), or
    /// the answer.
    info: Option<Option<Facts>>,
    files: Files,
    screen: ScreenView,
    terminals: Vec<TerminalView>,
    terminal: usize,
    opened_terminals: usize,
    clipboard: Option<(String, Color32)>,
    /// The assistant ended the session.
    ending: bool,
    confirm_end: bool,
}

impl SessionTab {
    /// The tab of a session just joined; what the customer's side says and every change of
    /// the session's state wake the window.
    pub fn new(
        ctx: &egui::Context,
        runtime: &tokio::runtime::Handle,
        joined: Joined,
        folder: PathBuf,
    ) -> SessionTab {
        let Joined {
            mut viewer,
            label,
            ticket,
            shows_as,
            ..
        } = joined;
        let (outbox, updates) = Outbox::new(ctx);
        if let Some(mut notices) = viewer.notices() {
            let outbox = outbox.clone();
            runtime.spawn(async move {
                while let Some(notice) = notices.recv().await {
                    outbox.send(Update::Notice(notice));
                }
            });
        }
        // A state change (an end, a resume) wakes the window too.
        let mut watched = viewer.watch();
        let waker = ctx.clone();
        runtime.spawn(async move {
            while watched.changed().await.is_ok() {
                waker.request_repaint();
            }
        });
        SessionTab {
            label,
            state: viewer.watch(),
            peer: Peer {
                runtime: runtime.clone(),
                viewer: Arc::new(viewer),
                outbox,
            },
            updates,
            since: Instant::now(),
            ticket,
            shows_as,
            view: View::Chat,
            grants: None,
            change: None,
            chat: Vec::new(),
            draft: String::new(),
            unread: 0,
            info: None,
            files: Files::new(folder),
            screen: ScreenView::default(),
            terminals: Vec::new(),
            terminal: 0,
            opened_terminals: 0,
            clipboard: None,
            ending: false,
            confirm_end: false,
        }
    }

    /// Whether the session has ended.
    pub fn ended(&self) -> bool {
        self.state.borrow().ended.is_some()
    }

    /// Ends the session (the customer's computer is told); the returned task finishes when it
    /// has been.
    pub fn end(&self) -> tokio::task::JoinHandle<()> {
        let viewer = self.peer.viewer.clone();
        self.peer.runtime.spawn(async move {
            viewer.quit().await;
        })
    }

    /// Takes what the session's tasks said.
    pub fn poll(&mut self) {
        while let Ok(update) = self.updates.try_recv() {
            match update {
                Update::Notice(Notice::Chat(text)) => {
                    self.chat.push((ponte_session::clock(), false, text.to_string()));
                    if self.view != View::Chat {
                        self.unread += 1;
                    }
                }
                Update::Notice(_) => {}
                Update::Info(result) => {
                    self.info = Some(Some(result.map(|facts| {
                        facts
                            .into_iter()
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                            .collect()
                    })));
                }
                Update::Terminal(number, output) => {
                    if let Some(t) = self.terminals.iter_mut().find(|t| t.number == number) {
                        t.apply(output);
                    }
                }
                Update::Files(update) => self.files.apply(update),
                Update::Clipboard(Ok((said, text))) => {
                    if let Some(text) = text {
                        self.peer.outbox.ctx().copy_text(text);
                    }
                    self.clipboard = Some((said, GREEN));
                }
                Update::Clipboard(Err(why)) => self.clipboard = Some((why, RED)),
                Update::Screen(client) => self.screen.started(client),
                Update::ChatFailed(why) => {
                    self.chat
                        .push((ponte_session::clock(), true, format!("(not sent: {why})")))
                }
            }
        }
        if self.chat.len() > KEPT {
            self.chat.drain(..self.chat.len() - KEPT);
        }
        let grants = self.state.borrow().grants;
        if grants != self.grants {
            if let (Some(before), Some(now)) = (self.grants, grants) {
                let off: Vec<&str> = before
                    .list()
                    .into_iter()
                    .filter(|c| !now.allows(*c))
                    .map(Capability::name)
                    .collect();
                let on: Vec<&str> = now
                    .list()
                    .into_iter()
                    .filter(|c| !before.allows(*c))
                    .map(Capability::name)
                    .collect();
                self.change = if !off.is_empty() {
                    Some((format!("The customer turned off: {}", off.join(", ")), RED))
                } else if !on.is_empty() {
                    Some((format!("The customer allowed: {}", on.join(", ")), GREEN))
                } else {
                    None
                };
            }
            if self.grants.is_none()
                && let Some(now) = grants
                && let Some(first) = View::ALL.into_iter().find(|v| v.allowed(now))
            {
                self.view = first;
            }
            self.grants = grants;
        }
    }

    /// Draws the header and the view chosen.
    pub fn show(&mut self, ui: &mut egui::Ui) {
        let state = self.state.borrow().clone();
        let grants = state.grants.unwrap_or(Grants::NONE);
        self.header(ui, &state, grants);
        ui.separator();
        ui.horizontal(|ui| {
            for view in View::ALL {
                let label = match view {
                    View::Chat if self.unread > 0 => format!("Chat ({})", self.unread),
                    _ => view.name().to_owned(),
                };
                let enabled = view.allowed(grants) && state.ended.is_none();
                let response = ui
                    .add_enabled(enabled, egui::Button::selectable(self.view == view, label))
                    .on_disabled_hover_text("the customer does not allow this now");
                if response.clicked() {
                    self.view = view;
                }
            }
        });
        ui.separator();
        let usable = self.view.allowed(grants) && state.ended.is_none();
        if !usable {
            ui.add_space(20.0);
            ui.label(
                RichText::new(match state.ended {
                    Some(_) => "The session has ended.",
                    None if state.grants.is_none() => "Waiting for the customer to allow access…",
                    None => "The customer does not allow this now.",
                })
                .size(16.0),
            );
            return;
        }
        if self.view != View::Screen {
            self.screen.hide();
        }
        match self.view {
            View::Screen => self
                .screen
                .show(ui, &self.peer, grants.allows(Capability::Control)),
            View::Files => self.files.show(
                ui,
                &self.peer,
                (
                    grants.allows(Capability::Download),
                    grants.allows(Capability::Upload),
                ),
            ),
            View::Terminal => self.terminals_view(ui),
            View::Chat => self.chat_view(ui, state.ended.is_none()),
            View::Info => self.info_view(ui),
        }
    }

    fn header(&mut self, ui: &mut egui::Ui, state: &State, grants: Grants) {
        ui.horizontal_wrapped(|ui| {
            ui.heading(format!("Session {}", self.label));
            if let Some(ticket) = &self.ticket {
                ui.label(format!("ticket {ticket}"));
            }
            match &self.shows_as {
                ShowsAs::Certified { name, organisation } => {
                    ui.label(RichText::new(format!("verified: {name}, {organisation}")).color(GREEN))
                        .on_hover_text(format!("as the customer sees you where their computer trusts {organisation}"));
                }
                ShowsAs::Unverified => {
                    ui.label(RichText::new("UNVERIFIED").color(RED).strong())
                        .on_hover_text("the customer sees you as an unverified assistant: your identity has no organisation's certificate");
                }
            }
            let secs = self.since.elapsed().as_secs();
            ui.label(format!("connected {:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60));
            ui.ctx().request_repaint_after(std::time::Duration::from_secs(1));
            if state.ended.is_none()
                && ui
                    .add_enabled(!self.ending, egui::Button::new(RichText::new("End session").color(RED)))
                    .clicked()
            {
                self.confirm_end = true;
            }
        });
        ui.horizontal_wrapped(|ui| {
            if let Some(reason) = &state.ended {
                ui.label(
                    RichText::new(format!("Session ended: {reason}"))
                        .color(RED)
                        .strong(),
                );
                return;
            }
            if state.reconnecting {
                ui.label(
                    RichText::new("connection lost — reconnecting…")
                        .color(AMBER)
                        .strong(),
                );
            }
            if state.grants.is_none() {
                ui.spinner();
                ui.label("Waiting for the customer to allow access…");
                return;
            }
            ui.label("The customer allows:");
            for capability in Capability::ALL {
                let (mark, colour) = if grants.allows(capability) {
                    ("✔", GREEN)
                } else {
                    ("✖", Color32::GRAY)
                };
                ui.label(RichText::new(format!("{mark} {}", capability.name())).color(colour));
            }
        });
        ui.horizontal_wrapped(|ui| {
            let clipboard = grants.allows(Capability::Clipboard) && state.ended.is_none();
            if ui
                .add_enabled(clipboard, egui::Button::new("Send my clipboard"))
                .on_disabled_hover_text("the customer does not allow the clipboard")
                .clicked()
            {
                self.send_clipboard();
            }
            if ui
                .add_enabled(clipboard, egui::Button::new("Get the customer's clipboard"))
                .on_disabled_hover_text("the customer does not allow the clipboard")
                .clicked()
            {
                self.get_clipboard();
            }
            if let Some((said, colour)) = &self.clipboard {
                ui.label(RichText::new(said).color(*colour));
            }
            if let Some((change, colour)) = &self.change {
                ui.label(RichText::new(change).color(*colour).strong());
            }
        });
        if self.confirm_end
            && let Some(end) = super::confirm_end(
                ui.ctx(),
                &self.label,
                "Everything you started on the customer's computer stops.",
            )
        {
            self.confirm_end = false;
            if end {
                self.ending = true;
                self.end();
            }
        }
    }

    fn send_clipboard(&mut self) {
        let (viewer, outbox) = (self.peer.viewer.clone(), self.peer.outbox.clone());
        self.peer.runtime.spawn(async move {
            // Reading the clipboard is X11 round trips (seconds, if its owner is slow).
            let read =
                tokio::task::spawn_blocking(|| arboard::Clipboard::new().and_then(|mut c| c.get_text()))
                    .await;
            let result = match read {
                Ok(Ok(text)) => {
                    let chars = text.chars().count();
                    viewer
                        .set_clipboard(&text)
                        .await
                        .map(|()| (format!("sent your clipboard ({chars} characters)"), None))
                        .map_err(|e| e.to_string())
                }
                Ok(Err(e)) => Err(format!("your clipboard has no text ({e})")),
                Err(e) => Err(e.to_string()),
            };
            outbox.send(Update::Clipboard(result));
        });
    }

    fn get_clipboard(&mut self) {
        let (viewer, outbox) = (self.peer.viewer.clone(), self.peer.outbox.clone());
        self.peer.runtime.spawn(async move {
            let result = viewer
                .clipboard()
                .await
                .map(|text| (said_of(&text), Some(text.as_raw().to_owned())))
                .map_err(|e| e.to_string());
            outbox.send(Update::Clipboard(result));
        });
    }

    fn terminals_view(&mut self, ui: &mut egui::Ui) {
        // The first visit opens one; closing the last one opens none.
        if self.opened_terminals == 0 {
            self.open_terminal();
        }
        let mut close = None;
        ui.horizontal(|ui| {
            for (i, t) in self.terminals.iter().enumerate() {
                let label = match t.ended() {
                    Some(_) => format!("Terminal {} (ended)", t.number),
                    None => format!("Terminal {}", t.number),
                };
                if ui.selectable_label(self.terminal == i, label).clicked() {
                    self.terminal = i;
                }
                if ui
                    .small_button("✖")
                    .on_hover_text("close this terminal")
                    .clicked()
                {
                    close = Some(i);
                }
            }
            let live = self.terminals.iter().filter(|t| t.ended().is_none()).count();
            let new = ui
                .add_enabled(live < MAX_TERMINALS, egui::Button::new("+ New terminal"))
                .on_disabled_hover_text(format!(
                    "at most {MAX_TERMINALS} terminals at once: close one first"
                ));
            if new.clicked() {
                self.open_terminal();
            }
            if let Some(t) = self.terminals.get(self.terminal)
                && ui
                    .button("Copy")
                    .on_hover_text("copy what the terminal shows (also Ctrl-Shift-C)")
                    .clicked()
            {
                ui.ctx().copy_text(t.text());
            }
        });
        if let Some(i) = close {
            let mut t = self.terminals.remove(i);
            t.close();
            if i < self.terminal {
                self.terminal -= 1;
            }
            self.terminal = self.terminal.min(self.terminals.len().saturating_sub(1));
        }
        let Some(t) = self.terminals.get_mut(self.terminal) else {
            return;
        };
        if let Some(why) = t.ended() {
            ui.label(RichText::new(why.to_owned()).color(AMBER));
        }
        t.show(ui);
    }

    fn open_terminal(&mut self) {
        self.opened_terminals += 1;
        let t = TerminalView::open(&self.peer, self.opened_terminals);
        self.terminals.push(t);
        self.terminal = self.terminals.len() - 1;
    }

    fn chat_view(&mut self, ui: &mut egui::Ui, live: bool) {
        self.unread = 0;
        let height = ui.available_height() - 40.0;
        egui::ScrollArea::vertical()
            .max_height(height)
            .auto_shrink([false, false])
            .stick_to_bottom(true)
            .show(ui, |ui| {
                if self.chat.is_empty() {
                    ui.weak("No messages yet. What you write here appears in the customer's window.");
                }
                for (at, mine, text) in &self.chat {
                    let who = if *mine { "you" } else { "customer" };
                    ui.label(format!("{at} {who}: {text}"));
                }
            });
        ui.horizontal(|ui| {
            let edit = ui.add_enabled(
                live,
                egui::TextEdit::singleline(&mut self.draft)
                    .hint_text("message to the customer")
                    .desired_width(ui.available_width() - 80.0),
            );
            let enter = edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            if (ui.add_enabled(live, egui::Button::new("Send")).clicked() || enter)
                && !self.draft.trim().is_empty()
            {
                let text = std::mem::take(&mut self.draft);
                self.chat.push((ponte_session::clock(), true, text.clone()));
                let (viewer, outbox) = (self.peer.viewer.clone(), self.peer.outbox.clone());
                self.peer.runtime.spawn(async move {
                    if let Err(e) = viewer.chat(&text).await {
                        outbox.send(Update::ChatFailed(e.to_string()));
                    }
                });
                edit.request_focus();
            }
        });
    }

    fn info_view(&mut self, ui: &mut egui::Ui) {
        let asking = matches!(self.info, Some(None));
        let refresh = ui.add_enabled(!asking, egui::Button::new("⟳ Refresh")).clicked();
        if refresh || self.info.is_none() {
            self.info = Some(None);
            let (viewer, outbox) = (self.peer.viewer.clone(), self.peer.outbox.clone());
            self.peer.runtime.spawn(async move {
                outbox.send(Update::Info(viewer.info().await.map_err(|e| e.to_string())));
            });
        }
        match &self.info {
            Some(Some(Err(e))) => {
                ui.colored_label(RED, e);
            }
            Some(None) => {
                ui.spinner();
            }
            Some(Some(Ok(facts))) => {
                egui::ScrollArea::vertical().show(ui, |ui| {
                    egui::Grid::new("info")
                        .striped(true)
                        .num_columns(2)
                        .show(ui, |ui| {
                            for (key, value) in facts {
                                ui.strong(key);
                                ui.label(value);
                                ui.end_row();
                            }
                        });
                });
            }
            None => {}
        }
    }
}

/// What the assistant reads about the customer's clipboard text that is now on theirs: its
/// length, its beginning (inert), and a warning when it holds what a terminal would act on —
/// it goes raw to the assistant's clipboard, where they chose to put it.
fn said_of(text: &PeerText) -> String {
    let raw = text.as_raw();
    let start: String = raw.chars().take(40).collect();
    let mut said = format!(
        "the customer's clipboard is in yours ({} characters): {}",
        raw.chars().count(),
        PeerText::new(start)
    );
    if raw
        .chars()
        .any(|c| (c.is_control() && c != '\n' && c != '\t') || ponte_wire::text::is_invisible(c))
    {
        said.push_str(" — it holds control or invisible characters: paste it with care");
    }
    said
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hostile_clipboard_is_shown_inert_and_flagged() {
        let said = said_of(&PeerText::new("ls\u{1b}[201~\nrm -rf ~\n"));
        assert!(!said.contains('\u{1b}'), "{said}");
        assert!(said.contains("paste it with care"), "{said}");
        assert!(!said_of(&PeerText::new("plain text\n")).contains("care"));
    }
}
