//! The assistant's app (egui/eframe): connect to a customer's session by typing the session ID
//! and code the customer reads out (or pick a device from the address book), then work in it —
//! one tab per session, each with the customer's grants live in its header and Screen, Files,
//! Terminal, Chat and Info inside.
//!
//! The window runs on the main thread; sessions run on the tokio runtime. What their tasks
//! learn reaches the window through an [`Outbox`] that wakes it; each tab takes its updates at
//! the start of a frame. The app is a front-end of [`ponte_viewer::client::Viewer`] like the command
//! line; everything the customer's computer sends is shown through [`ponte_wire::PeerText`].

mod connect;
mod files;
mod screen;
mod session;
mod terminal;

use std::path::PathBuf;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use eframe::egui::{self, RichText};
use ponte_session::connect::{AssistantArgs, RelayArgs};

use connect::ConnectForm;
use session::SessionTab;

/// The app's colours for what went well, what went wrong or was taken away, and what waits.
const GREEN: egui::Color32 = egui::Color32::from_rgb(0x1b, 0x7a, 0x2e);
const RED: egui::Color32 = egui::Color32::from_rgb(0xc0, 0x1c, 0x1c);
const AMBER: egui::Color32 = egui::Color32::from_rgb(0x9a, 0x5b, 0x00);
/// The colour of control, as on the customer's indicator.
const ORANGE: egui::Color32 = egui::Color32::from_rgb(0xff, 0x8c, 0x00);

/// How long ending the sessions may take when the window closes.
const END_ON_CLOSE: Duration = Duration::from_secs(3);

/// What the app starts with: the command line's relay, credential and identity.
pub struct Settings {
    /// How to reach and trust the relay.
    pub relay: RelayArgs,
    /// The operator's credential (the ticket is asked per session).
    pub assistant: AssistantArgs,
    /// The assistant's identity directory.
    pub identity_dir: PathBuf,
    /// Where the Files tab starts on the assistant's side.
    pub folder: PathBuf,
}

/// Where a task sends what it learns: a channel whose every message wakes the window.
pub struct Outbox<T> {
    tx: std_mpsc::Sender<T>,
    ctx: egui::Context,
}

impl<T> Clone for Outbox<T> {
    fn clone(&self) -> Self {
        Outbox {
            tx: self.tx.clone(),
            ctx: self.ctx.clone(),
        }
    }
}

impl<T> Outbox<T> {
    fn new(ctx: &egui::Context) -> (Outbox<T>, std_mpsc::Receiver<T>) {
        let (tx, rx) = std_mpsc::channel();
        (Outbox { tx, ctx: ctx.clone() }, rx)
    }

    /// The window's context, to wake it or reach its clipboard.
    pub fn ctx(&self) -> &egui::Context {
        &self.ctx
    }

    /// Sends `message` and wakes the window (nothing, if the window is gone).
    pub fn send(&self, message: T) {
        if self.tx.send(message).is_ok() {
            self.ctx.request_repaint();
        }
    }
}

/// The Files tab's own folder: `Ponte` in the downloads folder, made if missing.
pub fn downloads() -> anyhow::Result<PathBuf> {
    let base = dirs::download_dir()
        .or_else(|| dirs::home_dir().map(|h| h.join("Downloads")))
        .ok_or_else(|| anyhow::anyhow!("no home folder: give --folder"))?;
    let folder = base.join("Ponte");
    std::fs::create_dir_all(&folder)
        .map_err(|e| anyhow::anyhow!("making {}: {e} (or give --folder)", folder.display()))?;
    Ok(folder)
}

/// What a session's views act through: the runtime their tasks run on, the session, and the
/// outbox their results come back by.
pub struct Peer {
    /// The runtime.
    pub runtime: tokio::runtime::Handle,
    /// The session.
    pub viewer: std::sync::Arc<ponte_viewer::client::Viewer>,
    /// Where results go.
    pub outbox: Outbox<session::Update>,
}

/// Runs the app until its window is closed; sessions still open then are ended. Must run on the
/// main thread, outside the runtime.
pub fn run(runtime: &tokio::runtime::Handle, settings: Settings) -> anyhow::Result<()> {
    let runtime = runtime.clone();
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("Ponte")
            .with_app_id("ponte-viewer")
            .with_inner_size([1100.0, 760.0])
            .with_min_inner_size([640.0, 480.0]),
        persist_window: false,
        ..Default::default()
    };
    eframe::run_native(
        "Ponte",
        options,
        Box::new(move |cc| Ok(Box::new(App::new(&cc.egui_ctx, runtime, settings)))),
    )
    .map_err(|e| anyhow::anyhow!("cannot open the app's window: {e}"))
}

struct App {
    runtime: tokio::runtime::Handle,
    connect: ConnectForm,
    sessions: Vec<SessionTab>,
    /// The tab shown: a session, or the connect page (`None`).
    current: Option<usize>,
    /// A session tab whose closing waits for a confirmation.
    closing: Option<usize>,
    /// The window's close waits for a confirmation (sessions are open).
    quitting: bool,
    /// The assistant confirmed closing the window.
    leaving: bool,
}

impl App {
    fn new(ctx: &egui::Context, runtime: tokio::runtime::Handle, settings: Settings) -> App {
        // Light, like the customer's window: easier to read for long, and in screenshots.
        ctx.set_visuals(egui::Visuals::light());
        ctx.style_mut(|style| {
            use egui::{FontFamily, FontId, TextStyle};
            style.text_styles = [
                (TextStyle::Heading, FontId::new(20.0, FontFamily::Proportional)),
                (TextStyle::Body, FontId::new(15.0, FontFamily::Proportional)),
                (TextStyle::Button, FontId::new(15.0, FontFamily::Proportional)),
                (TextStyle::Small, FontId::new(12.0, FontFamily::Proportional)),
                (TextStyle::Monospace, FontId::new(14.0, FontFamily::Monospace)),
            ]
            .into();
            style.spacing.item_spacing = egui::vec2(8.0, 6.0);
            style.spacing.button_padding = egui::vec2(8.0, 4.0);
        });
        App {
            connect: ConnectForm::new(ctx, settings),
            runtime,
            sessions: Vec::new(),
            current: None,
            closing: None,
            quitting: false,
            leaving: false,
        }
    }

    fn tabs(&mut self, ui: &mut egui::Ui) {
        ui.horizontal_wrapped(|ui| {
            if ui
                .selectable_label(self.current.is_none(), RichText::new("+ Connect").strong())
                .clicked()
            {
                self.current = None;
            }
            for (i, session) in self.sessions.iter().enumerate() {
                ui.separator();
                let label = if session.ended() {
                    RichText::new(format!("{} (ended)", session.label)).weak()
                } else {
                    RichText::new(&session.label)
                };
                if ui.selectable_label(self.current == Some(i), label).clicked() {
                    self.current = Some(i);
                }
                if ui
                    .small_button("✖")
                    .on_hover_text("close this session's tab")
                    .clicked()
                {
                    self.closing = Some(i);
                }
            }
        });
    }

    fn close_tab(&mut self, index: usize) {
        let session = self.sessions.remove(index);
        session.end();
        self.current = match self.current {
            Some(c) if c == index => None,
            Some(c) if c > index => Some(c - 1),
            other => other,
        };
    }
}

/// Asks whether to end a session (`what` says what ends and how); `Some` once answered.
fn confirm_end(ctx: &egui::Context, id: impl std::hash::Hash, what: &str) -> Option<bool> {
    let mut answer = None;
    egui::Modal::new(egui::Id::new(("confirm-end", id))).show(ctx, |ui| {
        ui.set_max_width(420.0);
        ui.heading("End the session?");
        ui.label(what);
        ui.add_space(8.0);
        ui.horizontal(|ui| {
            if ui.button("End session").clicked() {
                answer = Some(true);
            }
            if ui.button("Cancel").clicked() || ui.input(|i| i.key_pressed(egui::Key::Escape)) {
                answer = Some(false);
            }
        });
    });
    answer
}

impl eframe::App for App {
    fn update(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        if let Some(joined) = self.connect.poll() {
            self.sessions
                .push(SessionTab::new(ctx, &self.runtime, joined, self.connect.folder()));
            self.current = Some(self.sessions.len() - 1);
        }
        for session in &mut self.sessions {
            session.poll();
        }
        if ctx.input(|i| i.viewport().close_requested())
            && !self.leaving
            && self.sessions.iter().any(|s| !s.ended())
        {
            ctx.send_viewport_cmd(egui::ViewportCommand::CancelClose);
            self.quitting = true;
        }
        egui::TopBottomPanel::top("tabs").show(ctx, |ui| self.tabs(ui));
        egui::CentralPanel::default().show(ctx, |ui| {
            match self.current.and_then(|i| self.sessions.get_mut(i)) {
                Some(session) => session.show(ui),
                None => self.connect.show(ui, &self.runtime),
            }
        });
        if let Some(index) = self.closing {
            let live = self.sessions.get(index).is_some_and(|s| !s.ended());
            let answer = if live {
                confirm_end(
                    ctx,
                    "tab",
                    "Closing the tab ends the session: everything you started on the customer's computer stops.",
                )
            } else {
                Some(true)
            };
            match answer {
                Some(true) => {
                    self.closing = None;
                    if index < self.sessions.len() {
                        self.close_tab(index);
                    }
                }
                Some(false) => self.closing = None,
                None => {}
            }
        }
        if self.quitting {
            match confirm_end(ctx, "window", "Closing Ponte ends every open session.") {
                Some(true) => {
                    self.leaving = true;
                    ctx.send_viewport_cmd(egui::ViewportCommand::Close);
                }
                Some(false) => self.quitting = false,
                None => {}
            }
        }
    }

    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        // The customers' computers hear the end, rather than waiting for a connection to come
        // back.
        let ends: Vec<_> = self.sessions.drain(..).map(|s| s.end()).collect();
        self.runtime.block_on(async {
            let _ = tokio::time::timeout(END_ON_CLOSE, async {
                for end in ends {
                    let _ = end.await;
                }
            })
            .await;
        });
    }
}
