//! What the customer sees of the assistant's terminals: output cut into lines for the live
//! view and the session log, and the command lines the assistant types.

use ponte_protocol::text::PeerText;

use crate::frontend::{Event, Events, Kind};

/// Longest line kept whole; longer output is cut into pieces of this size.
const MAX_LINE: usize = 4096;

/// Terminal output as lines ([`Event::Terminal`]), for one terminal or command.
pub struct Transcript {
    terminal: u64,
    events: Events,
    pending: Vec<u8>,
}

impl Transcript {
    /// The transcript of terminal number `terminal`.
    pub fn new(terminal: u64, events: Events) -> Transcript {
        Transcript {
            terminal,
            events,
            pending: Vec::new(),
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

    fn flush(&mut self) {
        let mut line = std::mem::take(&mut self.pending);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        self.events.emit(Event::Terminal {
            terminal: self.terminal,
            line: PeerText::new(String::from_utf8_lossy(&line)),
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

/// Follows the keystrokes the assistant sends to a terminal and shows each command line it
/// enters as an activity line (with simple line editing: backspace, Ctrl-U; escape sequences
/// such as arrow keys are left out).
pub struct Keystrokes {
    terminal: u64,
    events: Events,
    line: Vec<u8>,
    escape: Escape,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Escape {
    None,
    /// After ESC.
    Started,
    /// Inside `ESC [` … until a final byte.
    Csi,
}

impl Keystrokes {
    /// Keystrokes for terminal number `terminal`.
    pub fn new(terminal: u64, events: Events) -> Keystrokes {
        Keystrokes {
            terminal,
            events,
            line: Vec::new(),
            escape: Escape::None,
        }
    }

    /// Bytes the assistant typed.
    pub fn typed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            match (self.escape, b) {
                (Escape::Started, b'[' | b'O') => self.escape = Escape::Csi,
                (Escape::Started, _) => self.escape = Escape::None,
                (Escape::Csi, 0x40..=0x7e) => self.escape = Escape::None,
                (Escape::Csi, _) => {}
                (Escape::None, 0x1b) => self.escape = Escape::Started,
                (Escape::None, b'\r' | b'\n') => self.enter(),
                (Escape::None, 0x7f | 0x08) => {
                    // One character back (a UTF-8 character may be several bytes).
                    while let Some(b) = self.line.pop() {
                        if b & 0xc0 != 0x80 {
                            break;
                        }
                    }
                }
                (Escape::None, 0x15) => self.line.clear(),
                (Escape::None, 0x03) => {
                    self.line.extend_from_slice(b"^C");
                    self.enter();
                }
                (Escape::None, b) if self.line.len() < MAX_LINE => self.line.push(b),
                (Escape::None, _) => {}
            }
        }
    }

    fn enter(&mut self) {
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            return;
        }
        let text = PeerText::new(String::from_utf8_lossy(&line));
        self.events.activity(
            Kind::Command,
            format!("terminal {}: the assistant entered: {text}", self.terminal),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Journal;

    fn events() -> (Events, tokio::sync::mpsc::UnboundedReceiver<Event>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (Events::new(tx, Journal::new()), rx)
    }

    fn drain(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Event>) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(event) = rx.try_recv() {
            out.push(match event {
                Event::Terminal { line, .. } => line.to_string(),
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
        t.output(b"$ ls\r\nfile\x1b[31mred");
        t.output(b"\x1b[0m\r\npartial");
        drop(t);
        assert_eq!(drain(&mut rx), ["$ ls", "file\\x1b[31mred\\x1b[0m", "partial"]);
    }

    #[test]
    fn typed_command_lines_are_activities() {
        let (events, mut rx) = events();
        let mut k = Keystrokes::new(2, events);
        k.typed(b"ls -l\x7f\x7fa\r");
        k.typed(b"\x1b[A\x1b[Bcat x\x1b]0;evil\x07\n");
        k.typed(b"sleep 9\x03");
        assert_eq!(
            drain(&mut rx),
            [
                "terminal 2: the assistant entered: ls a",
                "terminal 2: the assistant entered: cat x0;evil\\x07",
                "terminal 2: the assistant entered: sleep 9^C",
            ]
        );
    }
}
