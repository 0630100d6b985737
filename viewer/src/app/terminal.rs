//! A terminal on the customer's computer, in the app: the shell's output parsed by a VT
//! emulator (`vt100`) and drawn cell by cell with its colours and cursor; keys typed while it
//! has focus go to the shell; its size follows the space it has; the wheel scrolls back.
//!
//! The shell's output is the customer's computer speaking, so it is hostile too: it only ever
//! reaches the emulator's grid (no sequence can set this window's title, touch the clipboard
//! or reach a real terminal), the grid is bounded, and so is the scrollback.

use std::num::NonZeroU16;
use std::sync::Arc;

use eframe::egui::{self, Color32, FontId, Key, Sense, Stroke};
use tokio::sync::mpsc;

use super::session::Update;
use super::{Outbox, Peer};
use ponte_viewer::client::Viewer;
use ponte_viewer::reply::TerminalOutput;

/// Lines kept above the screen.
const SCROLLBACK: usize = 2000;

/// Output received but not yet taken by the window: beyond this the terminal's task stops
/// reading, so a shell flooding its output (or a window that draws no frames) holds the stream
/// up instead of growing memory.
const MAX_UNSHOWN: usize = 4 << 20;

/// The terminal's output on its way to the window, bounded by [`MAX_UNSHOWN`].
#[derive(Clone)]
struct Unshown(Arc<tokio::sync::Semaphore>);

impl Unshown {
    fn new() -> Unshown {
        Unshown(Arc::new(tokio::sync::Semaphore::new(MAX_UNSHOWN)))
    }

    /// Waits until `n` more bytes may be on their way; `false` once the window closed it.
    async fn reserve(&self, n: usize) -> bool {
        match self.0.acquire_many(n.min(MAX_UNSHOWN) as u32).await {
            Ok(permit) => {
                permit.forget();
                true
            }
            Err(_) => false,
        }
    }

    /// `n` bytes reached the grid.
    fn shown(&self, n: usize) {
        self.0.add_permits(n.min(MAX_UNSHOWN));
    }
}

/// The largest grid drawn, whatever the window's size.
const MAX_COLS: u16 = 400;
const MAX_ROWS: u16 = 200;

/// What the app sends a terminal's task.
pub enum Input {
    /// Keystrokes.
    Bytes(Vec<u8>),
    /// The grid's new size (columns, rows).
    Resize(u16, u16),
}

/// What a terminal's task tells the app.
pub enum Output {
    /// The shell's output.
    Bytes(Vec<u8>),
    /// The terminal ended, saying why.
    Ended(String),
}

/// One terminal in the session's Terminal tab.
pub struct TerminalView {
    /// Its number among the session's terminals, for its sub-tab.
    pub number: usize,
    parser: vt100::Parser,
    /// Unbounded: keys come at a person's pace, and one must never be dropped or reordered
    /// while the link (or a customer's computer that stops reading) holds them up.
    input: Option<mpsc::UnboundedSender<Input>>,
    unshown: Unshown,
    ended: Option<String>,
    /// The grid's size (columns, rows).
    size: (u16, u16),
}

impl TerminalView {
    /// Opens a shell of `cols`×`rows` on the customer's computer; its output reaches the app
    /// as [`Update::Terminal`] with `number`.
    pub fn open(peer: &Peer, number: usize) -> TerminalView {
        let (cols, rows) = (80, 24);
        let (tx, rx) = mpsc::unbounded_channel();
        let unshown = Unshown::new();
        peer.runtime.spawn(drive(
            peer.viewer.clone(),
            (cols, rows),
            rx,
            unshown.clone(),
            peer.outbox.clone(),
            number,
        ));
        TerminalView {
            number,
            parser: vt100::Parser::new(nonzero(rows), nonzero(cols), SCROLLBACK),
            input: Some(tx),
            unshown,
            ended: None,
            size: (cols, rows),
        }
    }

    /// Whether the shell has ended, and why.
    pub fn ended(&self) -> Option<&str> {
        self.ended.as_deref()
    }

    /// Takes what its task said.
    pub fn apply(&mut self, output: Output) {
        match output {
            Output::Bytes(bytes) => {
                self.parser.process(&bytes);
                self.unshown.shown(bytes.len());
            }
            Output::Ended(why) => {
                self.ended = Some(why);
                self.input = None;
            }
        }
    }

    /// The visible text, for a copy.
    pub fn text(&self) -> String {
        self.parser.screen().contents()
    }

    /// Closes the shell (its task ends it on the customer's computer).
    pub fn close(&mut self) {
        self.input = None;
    }

    fn send(&self, input: Input) {
        if let Some(tx) = &self.input {
            let _ = tx.send(input);
        }
    }

    /// Draws the grid in all the space left and takes the keys typed into it.
    pub fn show(&mut self, ui: &mut egui::Ui) {
        let font = FontId::monospace(14.0);
        let (cell_w, cell_h) = ui.fonts_mut(|f| (f.glyph_width(&font, 'M'), f.row_height(&font)));
        let space = ui.available_size();
        let cols = ((space.x / cell_w).floor() as u16).clamp(20, MAX_COLS);
        let rows = ((space.y / cell_h).floor() as u16).clamp(5, MAX_ROWS);
        if (cols, rows) != self.size && self.ended.is_none() {
            self.size = (cols, rows);
            self.parser.screen_mut().set_size(nonzero(rows), nonzero(cols));
            self.send(Input::Resize(cols, rows));
        }
        let (rect, response) = ui.allocate_exact_size(
            egui::vec2(f32::from(cols) * cell_w, f32::from(rows) * cell_h),
            Sense::click(),
        );
        if response.clicked() {
            response.request_focus();
        }
        let focused = response.has_focus();
        if focused {
            // Tab, arrows and Escape belong to the shell while it has focus.
            ui.memory_mut(|m| {
                m.set_focus_lock_filter(
                    response.id,
                    egui::EventFilter {
                        tab: true,
                        horizontal_arrows: true,
                        vertical_arrows: true,
                        escape: true,
                    },
                );
            });
        }
        if response.hovered() {
            let scrolled = ui.input(|i| i.raw_scroll_delta.y);
            if scrolled != 0.0 {
                let lines = (scrolled / cell_h).round() as isize;
                let now = self.parser.screen().scrollback() as isize;
                self.parser
                    .screen_mut()
                    .set_scrollback(now.saturating_add(lines).max(0) as usize);
            }
        }
        if focused && self.ended.is_none() {
            let (events, modifiers) = ui.input(|i| (i.events.clone(), i.modifiers));
            let bytes = keys(&events, modifiers, self.parser.screen());
            if !bytes.is_empty() {
                self.parser.screen_mut().set_scrollback(0);
                self.send(Input::Bytes(bytes));
            }
            if modifiers.shift && events.iter().any(|e| matches!(e, egui::Event::Copy)) {
                ui.ctx().copy_text(self.text());
            }
        }
        self.paint(ui, rect, cell_w, cell_h, &font, focused);
    }

    fn paint(&self, ui: &egui::Ui, rect: egui::Rect, cell_w: f32, cell_h: f32, font: &FontId, focused: bool) {
        let painter = ui.painter_at(rect);
        painter.rect_filled(rect, 0.0, BACKGROUND);
        let screen = self.parser.screen();
        let (rows, cols) = screen.size();
        for row in 0..rows.get() {
            let y = rect.top() + f32::from(row) * cell_h;
            for col in 0..cols.get() {
                let Some(cell) = screen.cell(row, col) else {
                    continue;
                };
                if cell.is_wide_continuation() {
                    continue;
                }
                let (mut fg, mut bg) = (
                    colour(cell.fgcolor(), FOREGROUND),
                    colour(cell.bgcolor(), BACKGROUND),
                );
                if cell.inverse() {
                    std::mem::swap(&mut fg, &mut bg);
                }
                let x = rect.left() + f32::from(col) * cell_w;
                let width = if cell.is_wide() { 2.0 * cell_w } else { cell_w };
                if bg != BACKGROUND {
                    painter.rect_filled(
                        egui::Rect::from_min_size(egui::pos2(x, y), egui::vec2(width, cell_h)),
                        0.0,
                        bg,
                    );
                }
                let text = cell.contents();
                if !text.is_empty() && text != " " {
                    let fg = if cell.bold() { fg.gamma_multiply(1.2) } else { fg };
                    painter.text(egui::pos2(x, y), egui::Align2::LEFT_TOP, text, font.clone(), fg);
                }
            }
        }
        if screen.scrollback() == 0 && !screen.hide_cursor() && self.ended.is_none() {
            let (row, col) = screen.cursor_position();
            let at = egui::Rect::from_min_size(
                egui::pos2(
                    rect.left() + f32::from(col) * cell_w,
                    rect.top() + f32::from(row) * cell_h,
                ),
                egui::vec2(cell_w, cell_h),
            );
            if focused {
                painter.rect_filled(at, 0.0, FOREGROUND.gamma_multiply(0.6));
            } else {
                painter.rect_stroke(at, 0.0, Stroke::new(1.0, FOREGROUND), egui::StrokeKind::Inside);
            }
        }
    }
}

impl Drop for TerminalView {
    fn drop(&mut self) {
        // A task waiting for the window to take output stops.
        self.unshown.0.close();
    }
}

const BACKGROUND: Color32 = Color32::from_rgb(0x1e, 0x1e, 0x1e);
const FOREGROUND: Color32 = Color32::from_rgb(0xe0, 0xe0, 0xe0);

/// The xterm palette's first 16 colours.
const PALETTE: [(u8, u8, u8); 16] = [
    (0x00, 0x00, 0x00),
    (0xcd, 0x31, 0x31),
    (0x0d, 0xbc, 0x79),
    (0xe5, 0xe5, 0x10),
    (0x24, 0x72, 0xc8),
    (0xbc, 0x3f, 0xbc),
    (0x11, 0xa8, 0xcd),
    (0xe5, 0xe5, 0xe5),
    (0x66, 0x66, 0x66),
    (0xf1, 0x4c, 0x4c),
    (0x23, 0xd1, 0x8b),
    (0xf5, 0xf5, 0x43),
    (0x3b, 0x8e, 0xea),
    (0xd6, 0x70, 0xd6),
    (0x29, 0xb8, 0xdb),
    (0xff, 0xff, 0xff),
];

fn colour(c: vt100::Color, default: Color32) -> Color32 {
    match c {
        vt100::Color::Default => default,
        vt100::Color::Rgb(r, g, b) => Color32::from_rgb(r, g, b),
        vt100::Color::Idx(i) if i < 16 => {
            let (r, g, b) = PALETTE[usize::from(i)];
            Color32::from_rgb(r, g, b)
        }
        // The 6×6×6 cube, then 24 greys.
        vt100::Color::Idx(i) if i < 232 => {
            let i = i - 16;
            let level = |v: u8| if v == 0 { 0 } else { 55 + v * 40 };
            Color32::from_rgb(level(i / 36), level((i / 6) % 6), level(i % 6))
        }
        vt100::Color::Idx(i) => {
            let v = 8 + (i - 232) * 10;
            Color32::from_rgb(v, v, v)
        }
    }
}

/// The bytes a shell expects for what was typed (xterm's encoding).
fn keys(events: &[egui::Event], modifiers: egui::Modifiers, screen: &vt100::Screen) -> Vec<u8> {
    let mut out = Vec::new();
    let cursor = |normal: &[u8], application: &[u8]| {
        if screen.application_cursor() {
            application.to_vec()
        } else {
            normal.to_vec()
        }
    };
    for event in events {
        match event {
            egui::Event::Text(text) => out.extend_from_slice(text.as_bytes()),
            egui::Event::Paste(text) => {
                if screen.bracketed_paste() {
                    out.extend_from_slice(b"\x1b[200~");
                    out.extend_from_slice(text.replace('\x1b', "").as_bytes());
                    out.extend_from_slice(b"\x1b[201~");
                } else {
                    out.extend_from_slice(text.as_bytes());
                }
            }
            // Ctrl-C and Ctrl-X are the shell's (Ctrl-Shift-C copies).
            egui::Event::Copy if !modifiers.shift => out.push(0x03),
            egui::Event::Cut => out.push(0x18),
            egui::Event::Key {
                key,
                pressed: true,
                modifiers,
                ..
            } => {
                let bytes: Vec<u8> = match key {
                    Key::Enter => b"\r".to_vec(),
                    Key::Backspace => b"\x7f".to_vec(),
                    Key::Tab => b"\t".to_vec(),
                    Key::Escape => b"\x1b".to_vec(),
                    Key::ArrowUp => cursor(b"\x1b[A", b"\x1bOA"),
                    Key::ArrowDown => cursor(b"\x1b[B", b"\x1bOB"),
                    Key::ArrowRight => cursor(b"\x1b[C", b"\x1bOC"),
                    Key::ArrowLeft => cursor(b"\x1b[D", b"\x1bOD"),
                    Key::Home => cursor(b"\x1b[H", b"\x1bOH"),
                    Key::End => cursor(b"\x1b[F", b"\x1bOF"),
                    Key::PageUp => b"\x1b[5~".to_vec(),
                    Key::PageDown => b"\x1b[6~".to_vec(),
                    Key::Insert => b"\x1b[2~".to_vec(),
                    Key::Delete => b"\x1b[3~".to_vec(),
                    Key::F1 => b"\x1bOP".to_vec(),
                    Key::F2 => b"\x1bOQ".to_vec(),
                    Key::F3 => b"\x1bOR".to_vec(),
                    Key::F4 => b"\x1bOS".to_vec(),
                    // Ctrl with a letter: its control character (the letter's text does not come).
                    other if modifiers.ctrl && !modifiers.alt => {
                        control_byte(*other).map(|b| vec![b]).unwrap_or_default()
                    }
                    _ => Vec::new(),
                };
                out.extend(bytes);
            }
            _ => {}
        }
    }
    out
}

/// Ctrl with a key: A–Z are 1–26; [ \ ] are 27–29.
fn control_byte(key: Key) -> Option<u8> {
    let name = key.name();
    match name.as_bytes() {
        [c @ b'A'..=b'Z'] => Some(c - b'A' + 1),
        _ => match key {
            Key::OpenBracket => Some(0x1b),
            Key::Backslash => Some(0x1c),
            Key::CloseBracket => Some(0x1d),
            _ => None,
        },
    }
}

fn nonzero(n: u16) -> NonZeroU16 {
    NonZeroU16::new(n).unwrap_or(NonZeroU16::MIN)
}

/// The terminal's task: opens the shell, then passes keys one way and output the other until
/// either side ends.
async fn drive(
    viewer: Arc<Viewer>,
    (cols, rows): (u16, u16),
    mut input: mpsc::UnboundedReceiver<Input>,
    unshown: Unshown,
    outbox: Outbox<Update>,
    number: usize,
) {
    let tell = |output| outbox.send(Update::Terminal(number, output));
    let mut terminal = match viewer.shell(cols, rows).await {
        Ok(terminal) => terminal,
        Err(e) => return tell(Output::Ended(e.to_string())),
    };
    loop {
        tokio::select! {
            asked = input.recv() => {
                let sent = match asked {
                    Some(Input::Bytes(bytes)) => terminal.input(bytes).await,
                    Some(Input::Resize(cols, rows)) => terminal.resize(cols, rows).await,
                    None => {
                        let _ = terminal.close().await;
                        return;
                    }
                };
                if let Err(e) = sent {
                    return tell(Output::Ended(e.to_string()));
                }
            }
            output = terminal.output() => match output {
                Ok(TerminalOutput::Output(bytes)) => {
                    if !unshown.reserve(bytes.len()).await {
                        return; // The window closed the terminal.
                    }
                    tell(Output::Bytes(bytes));
                }
                Ok(TerminalOutput::Exit(code)) => {
                    return tell(Output::Ended(match code {
                        Some(code) => format!("the shell exited ({code})"),
                        None => "the shell ended".to_owned(),
                    }));
                }
                Err(e) => return tell(Output::Ended(e.to_string())),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn screen() -> vt100::Parser {
        vt100::Parser::new(nonzero(24), nonzero(80), 0)
    }

    #[test]
    fn typed_keys_become_what_a_shell_expects() {
        let key = |key, ctrl| egui::Event::Key {
            key,
            physical_key: None,
            pressed: true,
            repeat: false,
            modifiers: egui::Modifiers {
                ctrl,
                ..Default::default()
            },
        };
        let parser = screen();
        let events = [
            egui::Event::Text("ls".into()),
            key(Key::Enter, false),
            key(Key::D, true),
            key(Key::ArrowUp, false),
            egui::Event::Copy,
        ];
        assert_eq!(
            keys(&events, egui::Modifiers::default(), parser.screen()),
            b"ls\r\x04\x1b[A\x03"
        );
        let mut application = screen();
        application.process(b"\x1b[?1h\x1b[?2004h");
        let events = [key(Key::ArrowUp, false), egui::Event::Paste("a\x1b[201~b".into())];
        // Application cursor keys; a paste cannot end the bracket early.
        assert_eq!(
            keys(&events, egui::Modifiers::default(), application.screen()),
            b"\x1bOA\x1b[200~a[201~b\x1b[201~"
        );
    }

    #[tokio::test]
    async fn a_flooding_shell_waits_for_the_window() {
        let unshown = Unshown::new();
        assert!(unshown.reserve(MAX_UNSHOWN).await);
        let more = tokio::time::timeout(std::time::Duration::from_millis(100), unshown.reserve(1)).await;
        assert!(more.is_err(), "output beyond what the window took was read");
        unshown.shown(64 << 10);
        assert!(unshown.reserve(64 << 10).await, "what was shown frees room");
        unshown.0.close();
        assert!(!unshown.reserve(1).await, "a closed terminal stops its task");
    }

    #[test]
    fn a_hostile_shell_cannot_grow_the_grid_or_reach_outside_it() {
        let mut parser = vt100::Parser::new(nonzero(24), nonzero(80), SCROLLBACK);
        // A title, a clipboard write (OSC 52), a resize request and a flood of lines.
        parser.process(b"\x1b]0;owned\x07\x1b]52;c;ZXZpbA==\x07\x1b[8;999;999t");
        for _ in 0..10_000 {
            parser.process(b"line\r\n");
        }
        let (rows, cols) = parser.screen().size();
        assert_eq!((rows.get(), cols.get()), (24, 80));
        assert!(parser.screen().contents().contains("line"));
        assert!(!parser.screen().contents().contains("owned"));
        // What is kept above the screen is bounded however much comes.
        parser.screen_mut().set_scrollback(usize::MAX);
        assert_eq!(parser.screen().scrollback(), SCROLLBACK);
    }
}
