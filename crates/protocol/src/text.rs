//! Text that came from the other side, made inert before anyone reads it.
//!
//! Every string an agent or a viewer receives — paths, commands, chat, names in certificates,
//! refusal reasons, system information — is a [`PeerText`] on the wire. Its `Display` and
//! `Debug` forms are printable: control characters (C0, DEL, C1, so every ANSI/CSI/OSC escape),
//! newlines, tabs, bidi overrides and the other invisible format characters are shown escaped
//! (`\n`, `\x1b`, `\u{202e}`), and a backslash as `\\` so the escaped form is unambiguous.
//! What a peer sends can therefore neither move a cursor, recolour or retitle a terminal,
//! reorder a line, nor start a new log line. The raw string is available only through
//! [`PeerText::as_raw`], for machine use (a path to open, a command to run).

use std::fmt::{self, Write as _};

use serde::{Deserialize, Serialize};

/// A string received from the peer (or sent to it). See the [module docs](self).
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PeerText(String);

impl PeerText {
    /// Wraps a string.
    pub fn new(text: impl Into<String>) -> PeerText {
        PeerText(text.into())
    }

    /// A local path that was derived from peer input (e.g. a resolved destination), for
    /// display. Bytes that are not UTF-8 are replaced.
    pub fn path(path: &std::path::Path) -> PeerText {
        PeerText(path.to_string_lossy().into_owned())
    }

    /// An error and the causes behind it ([`error_text`]), shown inert: for errors that may
    /// quote the other side or the relay (a QUIC close reason, say).
    pub fn error(error: &dyn std::error::Error) -> PeerText {
        PeerText(error_text(error))
    }

    /// The string exactly as received. Only for machine use — opening a file, running a
    /// command — never for showing or logging: use `Display` for that.
    pub fn as_raw(&self) -> &str {
        &self.0
    }

    /// The raw string (see [`PeerText::as_raw`]).
    pub fn into_raw(self) -> String {
        self.0
    }

    /// Length of the raw string in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the raw string is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// An error and the causes behind it as one message (`error: cause: cause…`), each said once.
/// Ponte's errors that carry a cause say it this way and expose no `source()` of their own, so
/// however they are printed (`{}`, or `{:#}` with the sources), no cause appears twice.
pub fn error_text(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(cause) = next {
        let shown = cause.to_string();
        // Some errors already end with what their cause says.
        if !text.ends_with(&shown) {
            text.push_str(": ");
            text.push_str(&shown);
        }
        next = cause.source();
    }
    text
}

impl From<String> for PeerText {
    fn from(text: String) -> PeerText {
        PeerText(text)
    }
}

impl From<&str> for PeerText {
    fn from(text: &str) -> PeerText {
        PeerText(text.to_owned())
    }
}

impl fmt::Display for PeerText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            write_inert(f, c)?;
        }
        Ok(())
    }
}

impl fmt::Debug for PeerText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('"')?;
        for c in self.0.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                c => write_inert(f, c)?,
            }
        }
        f.write_char('"')
    }
}

fn write_inert(f: &mut fmt::Formatter<'_>, c: char) -> fmt::Result {
    match c {
        '\\' => f.write_str("\\\\"),
        '\n' => f.write_str("\\n"),
        '\r' => f.write_str("\\r"),
        '\t' => f.write_str("\\t"),
        c if (c as u32) < 0x20 || c == '\x7f' => write!(f, "\\x{:02x}", c as u32),
        c if is_invisible(c) => write!(f, "\\u{{{:x}}}", c as u32),
        c => f.write_char(c),
    }
}

/// C1 controls, bidi controls, line and paragraph separators and the other format (Cf)
/// characters of Unicode 16: they render as nothing, or rearrange or break what follows.
fn is_invisible(c: char) -> bool {
    matches!(c as u32,
        0x80..=0x9f
        | 0xad
        | 0x600..=0x605
        | 0x61c
        | 0x6dd
        | 0x70f
        | 0x890..=0x891
        | 0x8e2
        | 0x180e
        | 0x200b..=0x200f
        | 0x2028..=0x202e
        | 0x2060..=0x2064
        | 0x2066..=0x206f
        | 0xfeff
        | 0xfff9..=0xfffb
        | 0x110bd
        | 0x110cd
        | 0x13430..=0x1343f
        | 0x1bca0..=0x1bca3
        | 0x1d173..=0x1d17a
        | 0xe0001
        | 0xe0020..=0xe007f
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn escapes_what_could_steer_a_terminal_or_a_log() {
        let cases = [
            ("plain text", "plain text"),
            ("a\nb", "a\\nb"),
            (
                "\r\x1b[2K\x1b[1Acopy notes.txt?",
                "\\r\\x1b[2K\\x1b[1Acopy notes.txt?",
            ),
            ("\x1b]0;title\x07", "\\x1b]0;title\\x07"),
            ("tab\there", "tab\\there"),
            ("del\x7f", "del\\x7f"),
            ("c1\u{9b}31m", "c1\\u{9b}31m"),
            ("evil\u{202e}txt.exe", "evil\\u{202e}txt.exe"),
            ("zero\u{200b}width\u{feff}", "zero\\u{200b}width\\u{feff}"),
            ("isolate\u{2066}x\u{2069}", "isolate\\u{2066}x\\u{2069}"),
            ("line\u{2028}sep", "line\\u{2028}sep"),
            ("C:\\Users", "C:\\\\Users"),
            ("già żółw ✓", "già żółw ✓"),
        ];
        for (raw, shown) in cases {
            let text = PeerText::from(raw);
            assert_eq!(text.to_string(), shown, "{raw:?}");
            assert_eq!(text.as_raw(), raw);
        }
        assert_eq!(
            format!("{:?}", PeerText::from("say \"hi\"\n")),
            "\"say \\\"hi\\\"\\n\""
        );
    }

    #[test]
    fn travels_as_a_plain_string() {
        let bytes = postcard::to_allocvec(&PeerText::from("x\ny")).unwrap();
        assert_eq!(bytes, postcard::to_allocvec("x\ny").unwrap());
        let back: PeerText = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back.as_raw(), "x\ny");
    }

    proptest! {
        /// Whatever the peer sends, the shown form is one line of visible characters.
        #[test]
        fn shown_text_is_always_inert(raw in any::<String>()) {
            let shown = PeerText::from(raw.as_str()).to_string();
            for c in shown.chars() {
                prop_assert!(!c.is_control(), "{c:?} in {shown:?}");
                prop_assert!(!is_invisible(c), "{c:?} in {shown:?}");
            }
        }
    }
}
