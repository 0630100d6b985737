//! The connect page: the session ID and code the customer reads out (typed or pasted, with or
//! without spaces), a ticket for the operator's ledger, or a device from the address book
//! (quick access). Errors are said on the page; a relay whose certificate changed is a dialog
//! that only the assistant's explicit choice gets past.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc as std_mpsc;

use eframe::egui::{self, RichText};
use ponte_session::SessionError;
use ponte_session::connect::TrustNote;
use ponte_wire::rendezvous::{Refusal, Ticket};
use ponte_wire::{OneTimeCode, SessionId};

use super::{Outbox, RED, Settings};
use ponte_viewer::client::{DeviceJoinOptions, JoinOptions, Viewer, ViewerError};
use ponte_viewer::devices::Devices;
use ponte_viewer::identity;

/// Wrong codes an agent takes before it burns the pair and shows a new one.
const TRIES: u8 = ponte_e2e::handshake::CodeAttempts::MAX_FAILURES;

/// A joined session, for a new tab.
pub struct Joined {
    /// The session.
    pub viewer: Viewer,
    /// The tab's name: the session ID or the device's name.
    pub label: String,
    /// The ticket it was joined with, for the header.
    pub ticket: Option<String>,
    /// How the assistant shows to the customer.
    pub shows_as: ShowsAs,
    /// What became of the relay's fingerprint.
    pub note: TrustNote,
}

/// How the assistant shows to the customer: by the certificate in its identity, if any.
#[derive(Clone)]
pub enum ShowsAs {
    /// Certified by an organisation (verified where the customer's computer trusts it).
    Certified {
        /// The assistant's name in the certificate.
        name: String,
        /// The organisation that certified it.
        organisation: String,
    },
    /// No certificate: UNVERIFIED.
    Unverified,
}

/// The fingerprints of a relay whose certificate changed.
#[derive(Clone)]
struct Changed {
    known: String,
    seen: String,
}

/// Whom to join.
#[derive(Clone)]
enum Target {
    Code { session: SessionId, code: OneTimeCode },
    Device(String),
}

/// A join's outcome: the session, or why not (a [`ViewerError`] when the join itself failed).
type Attempt = Result<Joined, (Target, anyhow::Error)>;

/// The connect page's state.
pub struct ConnectForm {
    settings: Settings,
    session: String,
    code: String,
    ticket: String,
    devices: Vec<String>,
    results: std_mpsc::Receiver<Attempt>,
    outbox: Outbox<Attempt>,
    /// A join under way.
    busy: bool,
    error: Option<String>,
    note: Option<String>,
    /// Wrong codes tried per session ID.
    wrong: HashMap<SessionId, u8>,
    /// The relay's certificate changed: how, and whom the assistant was joining.
    changed: Option<(Changed, Target)>,
}

impl ConnectForm {
    /// The page, empty, with the devices of the address book.
    pub fn new(ctx: &egui::Context, settings: Settings) -> ConnectForm {
        let (outbox, results) = Outbox::new(ctx);
        let devices = Devices::load(&Devices::default_path())
            .map(|book| book.list().iter().map(|d| d.name.clone()).collect())
            .unwrap_or_default();
        ConnectForm {
            settings,
            session: String::new(),
            code: String::new(),
            ticket: String::new(),
            devices,
            results,
            outbox,
            busy: false,
            error: None,
            note: None,
            wrong: HashMap::new(),
            changed: None,
        }
    }

    /// Where the Files tab starts on the assistant's side.
    pub fn folder(&self) -> PathBuf {
        self.settings.folder.clone()
    }

    /// A session joined since the last frame, if any.
    pub fn poll(&mut self) -> Option<Joined> {
        let attempt = self.results.try_recv().ok()?;
        self.busy = false;
        match attempt {
            Ok(joined) => {
                self.note = match joined.note {
                    TrustNote::FirstUse(fp) => Some(format!(
                        "first connection to relay {}: its fingerprint {fp} is now remembered",
                        self.settings.relay.relay
                    )),
                    _ => None,
                };
                self.error = None;
                self.session.clear();
                self.code.clear();
                Some(joined)
            }
            Err((target, e)) => {
                self.error = Some(self.explain(&target, e));
                None
            }
        }
    }

    fn explain(&mut self, target: &Target, e: anyhow::Error) -> String {
        let e = match e.downcast::<ViewerError>() {
            Ok(e) => e,
            Err(other) => return format!("{other:#}"),
        };
        match (e, target) {
            (ViewerError::WrongCode, Target::Code { session, .. }) => {
                let tried = self.wrong.entry(*session).or_default();
                *tried = tried.saturating_add(1).min(TRIES);
                // The customer reads it again: the field is ready for it.
                self.code.clear();
                format!(
                    "Wrong code: the customer's computer did not accept it (try {tried} of {TRIES}; after the \
                     last one the customer gets a new ID and code). Ask them to read it again."
                )
            }
            (ViewerError::FingerprintChanged(SessionError::FingerprintChanged { known, seen }), target) => {
                self.changed = Some((Changed { known, seen }, target.clone()));
                "The relay's certificate changed: connection stopped.".to_owned()
            }
            (ViewerError::Relay(Refusal::UnknownSession), Target::Device(name)) => format!(
                "{name} is not waiting: ask the customer to start ponte-agent (quick access works only while it runs)"
            ),
            (ViewerError::Relay(Refusal::UnknownSession), Target::Code { .. }) => {
                "No such session at the relay: check the session ID with the customer (it changes every time \
                 ponte-agent starts)."
                    .to_owned()
            }
            (e @ (ViewerError::Session(_) | ViewerError::Timeout), _) => {
                format!("Cannot reach the relay {}: {e}", self.settings.relay.relay)
            }
            (e, _) => e.to_string(),
        }
    }

    /// Starts joining `target`.
    fn join(&mut self, runtime: &tokio::runtime::Handle, target: Target, accept_new_fingerprint: bool) {
        let ticket = match self.ticket.trim() {
            "" => None,
            t => match t.parse::<Ticket>() {
                Ok(ticket) => Some(ticket),
                Err(e) => {
                    self.error = Some(e.to_string());
                    return;
                }
            },
        };
        let mut assistant = self.settings.assistant.clone();
        assistant.ticket = ticket;
        let extras = match assistant.join_extras() {
            Ok(extras) => extras,
            Err(e) => {
                self.error = Some(e.to_string());
                return;
            }
        };
        let relay = self.settings.relay.options();
        let dir = self.settings.identity_dir.clone();
        let book = Devices::load(&Devices::default_path());
        let outbox = self.outbox.clone();
        self.busy = true;
        self.error = None;
        runtime.spawn(async move {
            let failed = |e: anyhow::Error| (target.clone(), e);
            let attempt: Attempt = async {
                // Creating a key takes a moment; it happens once.
                let loaded = tokio::task::spawn_blocking(move || identity::load_or_create(&dir))
                    .await
                    .map_err(|e| failed(e.into()))?;
                let (credentials, _) = loaded.map_err(failed)?;
                let shows_as = match &credentials.certificate {
                    Some(c) => ShowsAs::Certified {
                        name: c.body.name.clone(),
                        organisation: c.body.organisation.clone(),
                    },
                    None => ShowsAs::Unverified,
                };
                let ticket = extras.ticket.as_ref().map(ToString::to_string);
                let (joined, label) = match &target {
                    Target::Code { session, code } => {
                        let options = JoinOptions {
                            relay,
                            accept_new_fingerprint,
                            session: *session,
                            code: code.clone(),
                            credentials,
                            extras,
                        };
                        (ponte_viewer::client::join(options).await, session.to_string())
                    }
                    Target::Device(name) => {
                        let device = book
                            .map_err(|e| failed(e.into()))?
                            .get(name)
                            .map_err(|e| failed(e.into()))?
                            .key;
                        let options = DeviceJoinOptions {
                            relay,
                            accept_new_fingerprint,
                            device,
                            credentials,
                            extras,
                        };
                        (ponte_viewer::client::join_device(options).await, name.clone())
                    }
                };
                let (viewer, note) = joined.map_err(|e| failed(e.into()))?;
                Ok(Joined {
                    viewer,
                    label,
                    ticket,
                    shows_as,
                    note,
                })
            }
            .await;
            outbox.send(attempt);
        });
    }

    /// Draws the page (and the changed-relay dialog when it is open).
    pub fn show(&mut self, ui: &mut egui::Ui, runtime: &tokio::runtime::Handle) {
        const WIDTH: f32 = 520.0;
        ui.add_space(32.0);
        ui.horizontal(|ui| {
            ui.add_space(((ui.available_width() - WIDTH) / 2.0).max(0.0));
            ui.vertical(|ui| {
                ui.set_width(WIDTH);
                self.form(ui, runtime);
            });
        });
        self.fingerprint_dialog(ui.ctx(), runtime);
    }

    fn form(&mut self, ui: &mut egui::Ui, runtime: &tokio::runtime::Handle) {
        ui.heading("Connect to a customer");
        ui.label("Ask the customer to start Ponte and read you the session ID and code.");
        ui.add_space(12.0);
        let mut go = false;
        egui::Grid::new("connect-form")
            .num_columns(2)
            .spacing([12.0, 10.0])
            .show(ui, |ui| {
                ui.label("Session ID");
                let id = ui.add(
                    egui::TextEdit::singleline(&mut self.session)
                        .hint_text("123 456 789")
                        .desired_width(260.0),
                );
                ui.end_row();
                ui.label("Code");
                let code = ui.add(
                    egui::TextEdit::singleline(&mut self.code)
                        .hint_text("1234-5678")
                        .desired_width(260.0),
                );
                ui.end_row();
                ui.label("Ticket");
                let ticket = ui.add(
                    egui::TextEdit::singleline(&mut self.ticket)
                        .hint_text("optional, for the operator's ledger")
                        .desired_width(260.0),
                );
                ui.end_row();
                let entered = ui.input(|i| i.key_pressed(egui::Key::Enter));
                if entered && (id.lost_focus() || code.lost_focus() || ticket.lost_focus()) {
                    go = true;
                }
                // Regrouped once typed (not while: the cursor would jump).
                if id.lost_focus() {
                    self.session = group(&self.session, 3, ' ', 9);
                }
                if code.lost_focus() {
                    self.code = group(&self.code, 4, '-', 8);
                }
                ui.label("");
                ui.horizontal(|ui| {
                    go |= ui
                        .add_enabled(!self.busy, egui::Button::new(RichText::new("Connect").strong()))
                        .clicked();
                    if self.busy {
                        ui.spinner();
                        ui.label("connecting…");
                    }
                });
                ui.end_row();
            });
        if go && !self.busy {
            match (
                self.session.parse::<SessionId>(),
                self.code.parse::<OneTimeCode>(),
            ) {
                (Ok(session), Ok(code)) => {
                    let accept = self.settings.relay.accept_new_fingerprint;
                    self.join(runtime, Target::Code { session, code }, accept);
                }
                (Err(e), _) | (_, Err(e)) => self.error = Some(e.to_string()),
            }
        }
        if let Some(error) = &self.error {
            ui.add_space(8.0);
            ui.colored_label(RED, error);
        }
        if let Some(note) = &self.note {
            ui.label(RichText::new(note).small());
        }
        if !self.devices.is_empty() {
            ui.add_space(16.0);
            ui.separator();
            ui.strong(
                "Or reconnect to a customer's device (quick access: no code, the customer still decides)",
            );
            let mut chosen = None;
            ui.horizontal_wrapped(|ui| {
                for name in &self.devices {
                    if ui.add_enabled(!self.busy, egui::Button::new(name)).clicked() {
                        chosen = Some(name.clone());
                    }
                }
            });
            if let Some(name) = chosen {
                let accept = self.settings.relay.accept_new_fingerprint;
                self.join(runtime, Target::Device(name), accept);
            }
        }
        ui.add_space(16.0);
        ui.label(
            RichText::new(format!(
                "Relay: {}    Identity: {}",
                self.settings.relay.relay,
                self.settings.identity_dir.display()
            ))
            .small()
            .weak(),
        );
    }

    /// The relay's certificate changed: say so, and go on only if the assistant says the
    /// operator confirmed the new one.
    fn fingerprint_dialog(&mut self, ctx: &egui::Context, runtime: &tokio::runtime::Handle) {
        let Some((Changed { known, seen }, target)) = self.changed.clone() else {
            return;
        };
        let relay = self.settings.relay.relay.clone();
        let mut answer = None;
        egui::Modal::new(egui::Id::new("fingerprint-changed")).show(ctx, |ui| {
            ui.set_max_width(560.0);
            ui.heading(RichText::new("The relay's identity changed").color(RED));
            ui.label(format!(
                "The relay {relay} shows a different certificate than the last time."
            ));
            egui::Grid::new("fingerprints").show(ui, |ui| {
                ui.label("remembered");
                ui.label(RichText::new(known).monospace().size(11.0));
                ui.end_row();
                ui.label("now");
                ui.label(RichText::new(seen).monospace().size(11.0));
                ui.end_row();
            });
            ui.label("Someone may be intercepting the connection; nothing was sent through it.");
            ui.add_space(8.0);
            ui.label(
                "Go on only if the relay's operator told you its new fingerprint and it is the one above.",
            );
            ui.horizontal(|ui| {
                if ui.button("Cancel").clicked() {
                    answer = Some(false);
                }
                if ui.button("The operator confirmed it: connect").clicked() {
                    answer = Some(true);
                }
            });
        });
        match answer {
            Some(true) => {
                self.changed = None;
                self.join(runtime, target, true);
            }
            Some(false) => self.changed = None,
            None => {}
        }
    }
}

/// `text`'s digits (at most `max`) in groups of `size` joined by `separator`, as read aloud;
/// other characters are dropped, so a pasted "123456789" or "123-456-789" reads the same.
fn group(text: &str, size: usize, separator: char, max: usize) -> String {
    let digits: Vec<char> = text.chars().filter(char::is_ascii_digit).take(max).collect();
    digits
        .chunks(size)
        .map(|chunk| chunk.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join(&separator.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_codes_are_grouped_as_read_aloud_however_pasted() {
        assert_eq!(group("123456789", 3, ' ', 9), "123 456 789");
        assert_eq!(group(" 123-456 789 0", 3, ' ', 9), "123 456 789");
        assert_eq!(group("1234 5678", 4, '-', 8), "1234-5678");
        assert_eq!(group("12", 4, '-', 8), "12");
        assert_eq!(group("", 4, '-', 8), "");
        assert!(group("123 456 789", 3, ' ', 9).parse::<SessionId>().is_ok());
        assert!(group("1234 5678", 4, '-', 8).parse::<OneTimeCode>().is_ok());
    }
}
