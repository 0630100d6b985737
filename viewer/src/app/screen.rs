//! The Screen tab: the customer's screen as the viewer core rebuilds it, scaled to fit or 1:1,
//! with the figures (F2), the monitor choice when the customer has several, and — only while
//! the customer grants control and the assistant switches it on — the assistant's mouse and
//! keyboard on the picture going to the customer's desktop, and a "send keys" menu for
//! combinations the assistant's own desktop would catch. With control off, the assistant's
//! pointer can guide the customer instead: drawn on their screen, it clicks nothing.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eframe::egui::{self, Color32, Key, RichText};
use ponte_e2e::screen::{InputEvent, Quality, ScreenFeedback};
use ponte_screen::Canvas;
use ponte_viewer::screen_client::{FPS, Progress, ScreenClient};
use ponte_wire::PeerText;
use tokio::sync::{mpsc, watch};

use super::session::Update;
use super::{ORANGE, Peer, RED};

/// How soon input, a guide or a quality the stream had no room for is tried again.
const RETRY: Duration = Duration::from_millis(16);

const SHIFT: u32 = 0xffe1;
const CONTROL: u32 = 0xffe3;
const ALT: u32 = 0xffe9;
const SUPER: u32 = 0xffeb;

/// Combinations the assistant's desktop would take for itself, sent from a menu instead.
const SEND_KEYS: [(&str, &[u32]); 6] = [
    ("Alt+Tab (switch windows)", &[ALT, 0xff09]),
    ("Alt+F4 (close the window)", &[ALT, 0xffc1]),
    ("Super (the desktop's menu)", &[SUPER]),
    ("Ctrl+Esc", &[CONTROL, 0xff1b]),
    ("Print Screen", &[0xff61]),
    ("Ctrl+Alt+T (a terminal on many desktops)", &[CONTROL, ALT, 0x74]),
];

/// The screen stream, once started.
struct Stream {
    canvas: Arc<Mutex<Canvas>>,
    progress: watch::Receiver<Progress>,
    input: mpsc::Sender<ScreenFeedback>,
}

/// Input events waiting for room on the stream; more than this and motion is dropped (keys
/// and buttons never are: a lost release would leave one held on the customer's desktop).
const MAX_PENDING: usize = 4096;

/// The Screen tab of one session.
pub struct ScreenView {
    stream: Option<Result<Stream, String>>,
    asked: bool,
    texture: Option<egui::TextureHandle>,
    /// The frame in the texture.
    shown: Option<u64>,
    /// Whether the assistant's input goes to the customer (when the customer allows it).
    control: bool,
    /// Whether the assistant's pointer is drawn on the customer's screen as a guide.
    guide: bool,
    /// Where the agent was last told the guide is.
    guided: Option<(u16, u16)>,
    /// Sharp, balanced or fast, as chosen, and as the agent was last told.
    quality: Quality,
    told_quality: Quality,
    one_to_one: bool,
    figures: bool,
    /// Frames and bytes at the start of the current second, and the last second's rates.
    rates: (Instant, u64, u64, f64, f64),
    /// Input waiting for room on the stream, in order.
    pending: VecDeque<InputEvent>,
    /// Keys and buttons pressed on the customer's desktop and not released yet.
    keys_down: Vec<u32>,
    buttons_down: Vec<u8>,
    /// Modifiers last sent as held.
    held: egui::Modifiers,
}

impl Default for ScreenView {
    fn default() -> Self {
        ScreenView {
            stream: None,
            asked: false,
            texture: None,
            shown: None,
            control: false,
            guide: false,
            guided: None,
            quality: Quality::Balanced,
            told_quality: Quality::Balanced,
            one_to_one: false,
            figures: false,
            rates: (Instant::now(), 0, 0, 0.0, 0.0),
            pending: VecDeque::new(),
            keys_down: Vec::new(),
            buttons_down: Vec::new(),
            held: egui::Modifiers::NONE,
        }
    }
}

impl ScreenView {
    /// Takes the started stream, or why it did not start.
    pub fn started(&mut self, client: Result<ScreenClient, String>) {
        // Left before it started: dropped, which ends it.
        if !self.asked {
            return;
        }
        self.stream = Some(client.map(|c| Stream {
            canvas: c.canvas.clone(),
            progress: c.progress_receiver(),
            input: c.input_sender(),
        }));
        // A new stream starts at the agent's defaults.
        self.told_quality = Quality::default();
        self.guided = None;
    }

    fn ask(&mut self, peer: &Peer) {
        self.asked = true;
        self.stream = None;
        self.shown = None;
        self.rates = (Instant::now(), 0, 0, 0.0, 0.0);
        let (viewer, outbox) = (peer.viewer.clone(), peer.outbox.clone());
        peer.runtime.spawn(async move {
            let client = viewer.screen(FPS).await.map_err(|e| e.to_string());
            if let Ok(client) = &client {
                // Every frame, and the stream's end, wakes the window.
                let mut progress = client.progress_receiver();
                let ctx = outbox.ctx().clone();
                tokio::spawn(async move {
                    while progress.changed().await.is_ok() {
                        ctx.request_repaint();
                    }
                });
            }
            outbox.send(Update::Screen(client));
        });
    }

    /// The tab is not shown: whatever the assistant holds down is released, and the stream
    /// ends (it would spend the customer's uplink on a picture nobody looks at); showing the
    /// tab again asks anew.
    pub fn hide(&mut self) {
        if !self.asked {
            return;
        }
        self.release_all();
        self.flush();
        *self = ScreenView {
            control: self.control,
            guide: self.guide,
            quality: self.quality,
            one_to_one: self.one_to_one,
            figures: self.figures,
            ..ScreenView::default()
        };
    }

    /// Draws the tab; `may_control`: the customer allows control now.
    pub fn show(&mut self, ui: &mut egui::Ui, peer: &Peer, may_control: bool) {
        if !self.asked {
            self.ask(peer);
        }
        let stream = match &self.stream {
            None => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("Asking for the customer's screen…");
                });
                return;
            }
            Some(Err(e)) => {
                ui.colored_label(RED, e);
                if ui.button("Ask again").clicked() {
                    self.ask(peer);
                }
                return;
            }
            Some(Ok(stream)) => stream,
        };
        let progress = stream.progress.borrow().clone();
        if let Some(ended) = &progress.ended {
            ui.colored_label(RED, ended);
            if ui.button("Ask again").clicked() {
                self.ask(peer);
            }
            return;
        }
        let canvas = stream.canvas.clone();
        let can_control = may_control && progress.view_only.is_none();
        self.toolbar(ui, &progress, can_control);
        let control = self.control && can_control;
        if !control {
            self.release_all();
        }
        let mut guide_at = None;
        if let Some((response, size)) = self.picture(ui, &canvas) {
            if control {
                self.forward(ui, &response, size);
            } else if self.guide {
                guide_at = ui
                    .input(|i| i.pointer.hover_pos())
                    .and_then(|p| remote(response.rect, size, p));
            }
            if self.figures {
                self.figures_over(ui, response.rect, &canvas);
            }
        }
        self.tell(ScreenFeedback::Guide(guide_at));
        self.tell(ScreenFeedback::Quality(self.quality));
        self.flush();
        if !self.pending.is_empty() || self.guided != guide_at || self.told_quality != self.quality {
            ui.ctx().request_repaint_after(RETRY);
        } else if self.figures {
            ui.ctx().request_repaint_after(Duration::from_secs(1));
        }
    }

    /// Tells the agent where the guide is or which quality is chosen, if it was not told yet
    /// (tried again at the next frame when the stream has no room).
    fn tell(&mut self, message: ScreenFeedback) {
        let Some(Ok(stream)) = &self.stream else { return };
        let told = match message {
            ScreenFeedback::Guide(at) => at == self.guided,
            ScreenFeedback::Quality(q) => q == self.told_quality,
            _ => false,
        };
        if told || stream.input.try_send(message.clone()).is_err() {
            return;
        }
        match message {
            ScreenFeedback::Guide(at) => self.guided = at,
            ScreenFeedback::Quality(q) => self.told_quality = q,
            _ => {}
        }
    }

    fn figures_over(&self, ui: &egui::Ui, rect: egui::Rect, canvas: &Mutex<Canvas>) {
        let lines = {
            let c = canvas.lock().unwrap_or_else(|e| e.into_inner());
            ponte_viewer::overlay::lines(c.stats.as_ref(), self.rates.3, self.rates.4, 0.0)
        };
        let at = rect.left_top() + egui::vec2(8.0, 8.0);
        let galley =
            ui.painter()
                .layout_no_wrap(lines.join("\n"), egui::FontId::monospace(12.0), Color32::WHITE);
        ui.painter().rect_filled(
            egui::Rect::from_min_size(at, galley.size()).expand(4.0),
            2.0,
            Color32::from_black_alpha(180),
        );
        ui.painter().galley(at, galley, Color32::WHITE);
    }

    fn toolbar(&mut self, ui: &mut egui::Ui, progress: &Progress, can_control: bool) {
        ui.horizontal_wrapped(|ui| {
            let hint = match &progress.view_only {
                Some(why) => format!("the customer's desktop takes no input: {why}"),
                None => "the customer does not allow control".to_owned(),
            };
            ui.add_enabled(can_control, egui::Checkbox::new(&mut self.control, "Control"))
                .on_hover_text("your mouse and keyboard on the picture act on the customer's computer")
                .on_disabled_hover_text(hint);
            if self.control && can_control {
                ui.label(RichText::new("CONTROL").color(ORANGE).strong());
            } else {
                ui.label(RichText::new("VIEW ONLY").weak());
            }
            ui.checkbox(&mut self.guide, "Guide")
                .on_hover_text("your pointer on the picture shows on the customer's screen as a ring; it clicks nothing");
            ui.separator();
            egui::ComboBox::from_id_salt("quality")
                .selected_text(match self.quality {
                    Quality::Sharp => "Sharp",
                    Quality::Balanced => "Balanced",
                    Quality::Fast => "Fast",
                })
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut self.quality, Quality::Sharp, "Sharp: exact pixels only");
                    ui.selectable_value(&mut self.quality, Quality::Balanced, "Balanced");
                    ui.selectable_value(&mut self.quality, Quality::Fast, "Fast: smoother, sharpens when still");
                })
                .response
                .on_hover_text("what the picture gives up first when the customer's link is slow");
            ui.checkbox(&mut self.one_to_one, "1:1");
            ui.checkbox(&mut self.figures, "Figures (F2)");
            if ui.input(|i| i.key_pressed(Key::F2)) {
                self.figures = !self.figures;
            }
            if progress.monitors.len() > 1 {
                ui.separator();
                let current = progress.monitors.get(progress.monitor).cloned().unwrap_or_default();
                egui::ComboBox::from_label("monitor")
                    .selected_text(format!("{} of {}: {current}", progress.monitor + 1, progress.monitors.len()))
                    .show_ui(ui, |ui| {
                        for (i, name) in progress.monitors.iter().enumerate() {
                            if ui.selectable_label(i == progress.monitor, format!("{}: {name}", i + 1)).clicked()
                                && let Some(Ok(stream)) = &self.stream
                            {
                                let _ = stream.input.try_send(ScreenFeedback::Monitor(u8::try_from(i).unwrap_or(0)));
                            }
                        }
                    });
            }
            ui.separator();
            ui.add_enabled_ui(self.control && can_control, |ui| {
                ui.menu_button("Send keys", |ui| {
                    for (name, keys) in SEND_KEYS {
                        if ui.button(name).clicked() {
                            for &keysym in keys {
                                self.queue(InputEvent::Key { keysym, pressed: true });
                            }
                            for &keysym in keys.iter().rev() {
                                self.queue(InputEvent::Key { keysym, pressed: false });
                            }
                            ui.close();
                        }
                    }
                    ui.add_enabled(false, egui::Button::new("Ctrl+Alt+Del")).on_disabled_hover_text(
                        "not sendable: on X11 no program can send it in place of the keyboard; ask the customer to \
                         press it",
                    );
                });
            });
        });
    }

    /// Draws the latest picture; returns its response (where it is, whether it has focus)
    /// and the remote size.
    fn picture(&mut self, ui: &mut egui::Ui, canvas: &Mutex<Canvas>) -> Option<(egui::Response, egui::Vec2)> {
        let max_side = ui.ctx().input(|i| i.max_texture_side);
        let (size, frames, pixels) = {
            let c = canvas.lock().unwrap_or_else(|e| e.into_inner());
            let (since, frames, bytes, _, _) = self.rates;
            let elapsed = since.elapsed().as_secs_f64();
            if elapsed >= 1.0 {
                // Counts start again with a new canvas (a resume, a new stream).
                let fps = c.frames.saturating_sub(frames) as f64 / elapsed;
                let rate = c.bytes.saturating_sub(bytes) as f64 / elapsed;
                self.rates = (Instant::now(), c.frames, c.bytes, fps, rate);
            }
            let size = [usize::from(c.width()), usize::from(c.height())];
            // Copied under the lock, converted outside it: the lock is the frame decoder's too.
            let fresh = c.frames > 0 && self.shown != Some(c.frames) && size[0].max(size[1]) <= max_side;
            (size, c.frames, fresh.then(|| c.pixels().to_vec()))
        };
        if size[0] == 0 || size[1] == 0 || frames == 0 {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("Waiting for the first picture…");
            });
            return None;
        }
        if size[0].max(size[1]) > max_side {
            ui.colored_label(
                RED,
                format!(
                    "The customer's screen ({}×{}) is larger than this computer's graphics can show ({max_side}).",
                    size[0], size[1]
                ),
            );
            return None;
        }
        if let Some(pixels) = pixels {
            let image = image(size, &pixels);
            match &mut self.texture {
                Some(t) => t.set(image, egui::TextureOptions::LINEAR),
                None => {
                    self.texture = Some(ui.ctx().load_texture(
                        "customer-screen",
                        image,
                        egui::TextureOptions::LINEAR,
                    ));
                }
            }
            self.shown = Some(frames);
        }
        let texture = self.texture.as_ref()?;
        let size = egui::vec2(size[0] as f32, size[1] as f32);
        let image = egui::Image::new(texture).sense(egui::Sense::click_and_drag());
        let response = if self.one_to_one {
            egui::ScrollArea::both()
                .show(ui, |ui| ui.add(image.fit_to_exact_size(size)))
                .inner
        } else {
            let space = ui.available_size();
            let scale = (space.x / size.x).min(space.y / size.y).min(1.0);
            ui.add(image.fit_to_exact_size(size * scale))
        };
        if response.clicked() || response.drag_started() {
            response.request_focus();
        }
        Some((response, size))
    }

    /// Sends the assistant's pointer over the picture, and keys while the picture has focus, to
    /// the customer's desktop; a release always goes, wherever the pointer is.
    fn forward(&mut self, ui: &egui::Ui, picture: &egui::Response, size: egui::Vec2) {
        let focused = picture.has_focus();
        if focused {
            // Tab, arrows and Escape are the customer's desktop's, not this window's.
            ui.memory_mut(|m| {
                m.set_focus_lock_filter(
                    picture.id,
                    egui::EventFilter {
                        tab: true,
                        horizontal_arrows: true,
                        vertical_arrows: true,
                        escape: true,
                    },
                );
            });
        }
        let rect = picture.rect;
        let (events, modifiers) = ui.input(|i| (i.events.clone(), i.modifiers));
        for event in events {
            match event {
                egui::Event::PointerMoved(p) => {
                    if let Some((x, y)) = remote(rect, size, p) {
                        self.queue(InputEvent::Move { x, y });
                    }
                }
                egui::Event::PointerButton {
                    pos, button, pressed, ..
                } => {
                    let button = match button {
                        egui::PointerButton::Primary => 1,
                        egui::PointerButton::Middle => 2,
                        egui::PointerButton::Secondary => 3,
                        _ => continue,
                    };
                    let inside = remote(rect, size, pos).is_some();
                    if (pressed && inside) || (!pressed && self.buttons_down.contains(&button)) {
                        self.queue(InputEvent::Button { button, pressed });
                    }
                }
                egui::Event::MouseWheel { delta, .. } if delta.y != 0.0 && picture.hovered() => {
                    let button = if delta.y > 0.0 { 4 } else { 5 };
                    self.queue(InputEvent::Button {
                        button,
                        pressed: true,
                    });
                    self.queue(InputEvent::Button {
                        button,
                        pressed: false,
                    });
                }
                egui::Event::Text(text) if focused && !modifiers.ctrl && !modifiers.alt => {
                    self.queue(InputEvent::Text(PeerText::new(text)));
                }
                egui::Event::Key {
                    key,
                    pressed,
                    modifiers,
                    ..
                } => {
                    let keysym = named(key).or_else(|| {
                        // A letter or digit only with Ctrl or Alt (without, it comes as text).
                        (modifiers.ctrl || modifiers.alt)
                            .then(|| character(key))
                            .flatten()
                    });
                    let Some(keysym) = keysym else { continue };
                    if (pressed && focused) || (!pressed && self.keys_down.contains(&keysym)) {
                        self.hold(modifiers);
                        self.queue(InputEvent::Key { keysym, pressed });
                    }
                }
                // Ctrl-C, Ctrl-X and Ctrl-V are the customer's desktop's, like any Ctrl combination.
                egui::Event::Copy | egui::Event::Cut | egui::Event::Paste(_) if focused => {
                    let letter = match event {
                        egui::Event::Copy => 0x63,
                        egui::Event::Cut => 0x78,
                        _ => 0x76,
                    };
                    self.hold(modifiers);
                    self.queue(InputEvent::Key {
                        keysym: letter,
                        pressed: true,
                    });
                    self.queue(InputEvent::Key {
                        keysym: letter,
                        pressed: false,
                    });
                }
                _ => {}
            }
        }
        if focused || self.held != egui::Modifiers::NONE {
            self.hold(if focused { modifiers } else { egui::Modifiers::NONE });
        }
    }

    /// Presses or releases the modifiers whose state changed.
    fn hold(&mut self, now: egui::Modifiers) {
        for (before, after, keysym) in [
            (self.held.shift, now.shift, SHIFT),
            (self.held.ctrl, now.ctrl, CONTROL),
            (self.held.alt, now.alt, ALT),
        ] {
            if before != after {
                self.queue(InputEvent::Key {
                    keysym,
                    pressed: after,
                });
            }
        }
        self.held = now;
    }

    /// Releases every key, button and modifier the assistant holds on the customer's desktop.
    fn release_all(&mut self) {
        self.hold(egui::Modifiers::NONE);
        for keysym in std::mem::take(&mut self.keys_down) {
            self.pending.push_back(InputEvent::Key {
                keysym,
                pressed: false,
            });
        }
        for button in std::mem::take(&mut self.buttons_down) {
            self.pending.push_back(InputEvent::Button {
                button,
                pressed: false,
            });
        }
    }

    /// Queues an input event for the customer's desktop, remembering what it holds down.
    fn queue(&mut self, event: InputEvent) {
        match &event {
            InputEvent::Key { keysym, pressed } => {
                self.keys_down.retain(|k| k != keysym);
                if *pressed {
                    self.keys_down.push(*keysym);
                }
            }
            InputEvent::Button { button, pressed } => {
                self.buttons_down.retain(|b| b != button);
                if *pressed {
                    self.buttons_down.push(*button);
                }
            }
            InputEvent::Move { .. } => {
                // The next motion supersedes one still waiting.
                if matches!(self.pending.back(), Some(InputEvent::Move { .. })) {
                    self.pending.pop_back();
                } else if self.pending.len() >= MAX_PENDING {
                    return;
                }
            }
            InputEvent::Text(_) => {}
        }
        self.pending.push_back(event);
    }

    /// Hands waiting input to the stream while it has room.
    fn flush(&mut self) {
        let Some(Ok(stream)) = &self.stream else {
            self.pending.clear();
            return;
        };
        while let Some(event) = self.pending.front() {
            match stream.input.try_send(ScreenFeedback::Input(event.clone())) {
                Ok(()) => {
                    self.pending.pop_front();
                }
                Err(mpsc::error::TrySendError::Full(_)) => break,
                Err(mpsc::error::TrySendError::Closed(_)) => self.pending.clear(),
            }
        }
    }
}

/// The position on the customer's screen (`size`) under `p`, if the picture (drawn in `rect`) is
/// there.
fn remote(rect: egui::Rect, size: egui::Vec2, p: egui::Pos2) -> Option<(u16, u16)> {
    (rect.contains(p) && size.x >= 1.0 && size.y >= 1.0).then(|| {
        let x = (p.x - rect.left()) / rect.width() * size.x;
        let y = (p.y - rect.top()) / rect.height() * size.y;
        (
            x.clamp(0.0, size.x - 1.0) as u16,
            y.clamp(0.0, size.y - 1.0) as u16,
        )
    })
}

/// The canvas's pixels (0x00RRGGBB) as an image for a texture.
fn image(size: [usize; 2], pixels: &[u32]) -> egui::ColorImage {
    let pixels = pixels
        .iter()
        .map(|&p| Color32::from_rgb((p >> 16) as u8, (p >> 8) as u8, p as u8))
        .collect();
    egui::ColorImage::new(size, pixels)
}

/// The X keysym of a key that is not text.
fn named(key: Key) -> Option<u32> {
    Some(match key {
        Key::Enter => 0xff0d,
        Key::Backspace => 0xff08,
        Key::Tab => 0xff09,
        Key::Escape => 0xff1b,
        Key::Delete => 0xffff,
        Key::Insert => 0xff63,
        Key::Home => 0xff50,
        Key::ArrowLeft => 0xff51,
        Key::ArrowUp => 0xff52,
        Key::ArrowRight => 0xff53,
        Key::ArrowDown => 0xff54,
        Key::PageUp => 0xff55,
        Key::PageDown => 0xff56,
        Key::End => 0xff57,
        Key::F1 => 0xffbe,
        Key::F3 => 0xffc0,
        Key::F4 => 0xffc1,
        Key::F5 => 0xffc2,
        Key::F6 => 0xffc3,
        Key::F7 => 0xffc4,
        Key::F8 => 0xffc5,
        Key::F9 => 0xffc6,
        Key::F10 => 0xffc7,
        Key::F11 => 0xffc8,
        Key::F12 => 0xffc9,
        _ => return None,
    })
}

/// The keysym of a letter or digit key (lower case: Shift is sent as held).
fn character(key: Key) -> Option<u32> {
    match key.name().as_bytes() {
        [c @ b'A'..=b'Z'] => Some(u32::from(c.to_ascii_lowercase())),
        [c @ b'0'..=b'9'] => Some(u32::from(*c)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_keysyms() {
        assert_eq!(named(Key::Enter), Some(0xff0d));
        assert_eq!(named(Key::F2), None, "F2 is the viewer's own");
        assert_eq!(character(Key::C), Some(0x63));
        assert_eq!(character(Key::Num7), Some(0x37));
        assert_eq!(character(Key::Enter), None);
    }
}
