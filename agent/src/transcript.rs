//! What the customer sees of the assistant's terminals: output cut into lines for the live
//! view and the session log, and every command line the assistant enters — as the terminal
//! showed it when Enter was pressed (so a command recalled from the history, completed with
//! Tab or edited with the arrow keys is shown as it really ran, not as it was typed).

use ponte_protocol::text::PeerText;

use crate::frontend::{Event, Events, Kind};

/// Longest line kept whole; longer output is cut into pieces of this size.
const MAX_LINE: usize = 4096;

/// A terminal (or a command's output) of the assistant's, as the customer follows it.
pub struct Transcript {
    terminal: u64,
    events: Events,
    pending: Vec<u8>,
    /// Enter presses whose echoed line has not come back yet.
    entered: u32,
}

impl Transcript {
    /// The transcript of terminal number `terminal`.
    pub fn new(terminal: u64, events: Events) -> Transcript {
        Transcript {
            terminal,
            events,
            pending: Vec::new(),
            entered: 0,
        }
    }

    /// Output as the terminal produced it.
    pub fn output(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' {
                self.flush();
            } else {
                self.pending.push(b);
                if self.pending.len() >= MAX_LINE {
                    self.flush();
                }
            }
        }
    }

    /// Keystrokes the assistant sent: each Enter makes the next line the terminal completes
    /// (its echo of the command line) an activity line.
    pub fn typed(&mut self, bytes: &[u8]) {
        let enters = bytes.iter().filter(|b| matches!(b, b'\r' | b'\n')).count();
        self.entered = self
            .entered
            .saturating_add(u32::try_from(enters).unwrap_or(u32::MAX))
            .min(64);
    }

    fn flush(&mut self) {
        let mut line = std::mem::take(&mut self.pending);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        let line = String::from_utf8_lossy(&line).into_owned();
        if self.entered > 0 {
            self.entered -= 1;
            self.events.activity(
                Kind::Command,
                crate::t!(
                    self.events.tr(),
                    "terminal-entered",
                    terminal = self.terminal,
                    line = &PeerText::new(visible(&line))
                ),
            );
        }
        self.events.emit(Event::Terminal {
            terminal: self.terminal,
            line: PeerText::new(line),
        });
    }
}

impl Drop for Transcript {
    fn drop(&mut self) {
        if !self.pending.is_empty() {
            self.flush();
        }
    }
}

/// The text a terminal line shows: escape sequences (colours, modes, titles) left out, and
/// what a carriage return overwrote left out. (The log keeps the line as it was, escaped.)
fn visible(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => match chars.next() {
                // CSI: parameters up to a final byte.
                Some('[') => {
                    for c in chars.by_ref() {
                        if ('\x40'..='\x7e').contains(&c) {
                            break;
                        }
                    }
                }
                // OSC: up to BEL or ST.
                Some(']') => {
                    while let Some(c) = chars.next() {
                        if c == '\x07' || (c == '\x1b' && chars.next_if_eq(&'\\').is_some()) {
                            break;
                        }
                    }
                }
                _ => {}
            },
            '\r' => out.clear(),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Journal;

    fn events() -> (Events, tokio::sync::mpsc::UnboundedReceiver<Event>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (
            Events::new(
                tx,
                Journal::new(std::sync::Arc::new(crate::i18n::Tr::new(crate::i18n::Lang::En))),
            ),
            rx,
        )
    }

    fn drain(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Event>) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(event) = rx.try_recv() {
            out.push(match event {
                Event::Terminal { line, .. } => format!("| {line}"),
                Event::Activity(a) => a.text,
                other => format!("{other:?}"),
            });
        }
        out
    }

    #[test]
    fn output_becomes_inert_lines() {
        let (events, mut rx) = events();
        let mut t = Transcript::new(1, events);
        t.output(b"file\x1b[31mred");
        t.output(b"\x1b[0m\r\npartial");
        drop(t);
        assert_eq!(drain(&mut rx), ["| file\\x1b[31mred\\x1b[0m", "| partial"]);
    }

    #[test]
    fn command_lines_are_shown_as_the_terminal_echoed_them() {
        let (events, mut rx) = events();
        let mut t = Transcript::new(2, events);
        // Up arrow and Enter: the shell echoes the command it recalled.
        t.typed(b"\x1b[A\r");
        t.output(b"\x1b[?2004h$ rm -rf ~/Documents\r\n");
        t.output(b"output line\r\n");
        // A title escape and an overwritten prompt in the echo.
        t.typed(b"ls\r");
        t.output(b"\x1b]0;evil\x07junk\r$ ls\r\n");
        assert_eq!(
            drain(&mut rx),
            [
                "terminal 2: the assistant entered: $ rm -rf ~/Documents",
                "| \\x1b[?2004h$ rm -rf ~/Documents",
                "| output line",
                "terminal 2: the assistant entered: $ ls",
                "| \\x1b]0;evil\\x07junk\\r$ ls",
            ]
        );
    }
}
