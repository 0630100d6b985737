//! Text that came from the other side, made inert before anyone reads it.
//!
//! Every string an agent or a viewer receives — paths, commands, chat, names in certificates,
//! refusal reasons, system information — is a [`PeerText`] on the wire. Its `Display` and
//! `Debug` forms are printable: control characters (C0, DEL, C1, so every ANSI/CSI/OSC escape),
//! newlines, tabs, bidi overrides, the other invisible format characters and every character
//! that renders as nothing or as a blank other than the ASCII space ([`is_invisible`]) are shown
//! escaped (`\n`, `\x1b`, `\u{202e}`), and a backslash as `\\` so the escaped form is
//! unambiguous.
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

/// Characters shown escaped besides the C0 controls and DEL, as sorted, disjoint inclusive
/// ranges of code points: everything that renders as nothing or as a blank other than the
/// ASCII space, or rearranges or breaks what follows. That is the C1 controls, every format
/// (Cf) character and every `Default_Ignorable_Code_Point` of Unicode 16 (including the
/// reserved ones, so a later Unicode cannot make them visible-but-blank behind our back), and
/// the characters that draw a blank: spaces of other widths, the Hangul fillers, the braille
/// blank, the null notehead. A blank that is not a space would let two different strings
/// (paths, commands, names) look the same, or hide text inside one.
const INVISIBLE: &[(u32, u32)] = &[
    (0x80, 0x9f),       // C1 controls
    (0xa0, 0xa0),       // no-break space
    (0xad, 0xad),       // soft hyphen
    (0x34f, 0x34f),     // combining grapheme joiner
    (0x600, 0x605),     // Arabic number signs
    (0x61c, 0x61c),     // Arabic letter mark
    (0x6dd, 0x6dd),     // Arabic end of ayah
    (0x70f, 0x70f),     // Syriac abbreviation mark
    (0x890, 0x891),     // Arabic pound and piastre marks above
    (0x8e2, 0x8e2),     // Arabic disputed end of ayah
    (0x115f, 0x1160),   // Hangul choseong and jungseong fillers
    (0x1680, 0x1680),   // Ogham space mark
    (0x17b4, 0x17b5),   // Khmer inherent vowels
    (0x180b, 0x180f),   // Mongolian variation selectors, vowel separator
    (0x2000, 0x200f),   // spaces of other widths, zero-width space and joiners, LRM, RLM
    (0x2028, 0x202f),   // line, paragraph separators, bidi embeddings, overrides, narrow no-break space
    (0x205f, 0x206f),   // medium mathematical space, word joiner, invisible operators, bidi isolates
    (0x2800, 0x2800),   // braille pattern blank
    (0x3000, 0x3000),   // ideographic space
    (0x3164, 0x3164),   // Hangul filler
    (0xfe00, 0xfe0f),   // variation selectors
    (0xfeff, 0xfeff),   // zero-width no-break space (byte order mark)
    (0xffa0, 0xffa0),   // halfwidth Hangul filler
    (0xfff0, 0xfffb),   // reserved default-ignorables, interlinear annotation
    (0x110bd, 0x110bd), // Kaithi number sign
    (0x110cd, 0x110cd), // Kaithi number sign above
    (0x13430, 0x1343f), // Egyptian hieroglyph format controls
    (0x1bca0, 0x1bca3), // shorthand format controls
    (0x1d159, 0x1d159), // musical symbol null notehead
    (0x1d173, 0x1d17a), // musical symbol format controls
    (0xe0000, 0xe0fff), // tags, variation selectors supplement, reserved default-ignorables
];

/// Whether [`PeerText`] shows `c` escaped as `\u{…}` because it renders as nothing or as a
/// blank other than the ASCII space, or steers what follows: the C1 controls, every format
/// character and default-ignorable code point, and the blanks (no-break and other spaces,
/// Hangul fillers, braille blank). C0 controls and DEL are escaped too, as `\x..`, and are not
/// included here.
pub fn is_invisible(c: char) -> bool {
    let c = c as u32;
    let i = INVISIBLE.partition_point(|&(_, last)| last < c);
    INVISIBLE.get(i).is_some_and(|&(first, _)| first <= c)
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

    /// Every character that renders as nothing or as a blank (default-ignorable code points,
    /// fillers, blanks other than the ASCII space) is shown escaped, one by one: otherwise two
    /// different strings would look the same, or text could hide inside one.
    #[test]
    fn blank_and_default_ignorable_characters_are_escaped() {
        let listed: &[(u32, u32)] = &[
            // Default_Ignorable_Code_Point (DerivedCoreProperties.txt, Unicode 16).
            (0xad, 0xad),
            (0x34f, 0x34f),
            (0x61c, 0x61c),
            (0x115f, 0x1160),
            (0x17b4, 0x17b5),
            (0x180b, 0x180f),
            (0x200b, 0x200f),
            (0x202a, 0x202e),
            (0x2060, 0x206f),
            (0x3164, 0x3164),
            (0xfe00, 0xfe0f),
            (0xfeff, 0xfeff),
            (0xffa0, 0xffa0),
            (0xfff0, 0xfff8),
            (0x1bca0, 0x1bca3),
            (0x1d173, 0x1d17a),
            (0xe0000, 0xe0fff),
            // Blanks that are not the ASCII space: spaces of other widths, the braille blank,
            // the null notehead.
            (0xa0, 0xa0),
            (0x1680, 0x1680),
            (0x2000, 0x200a),
            (0x2028, 0x2029),
            (0x202f, 0x202f),
            (0x205f, 0x205f),
            (0x3000, 0x3000),
            (0x2800, 0x2800),
            (0x1d159, 0x1d159),
        ];
        let mut checked = 0;
        for &(first, last) in listed {
            for c in (first..=last).filter_map(char::from_u32) {
                let raw = format!("a{c}b");
                let shown = PeerText::from(raw.as_str()).to_string();
                assert_eq!(shown, format!("a\\u{{{:x}}}b", c as u32), "U+{:04X}", c as u32);
                checked += 1;
            }
        }
        assert!(checked > 4000, "{checked}");
        // The table is searched by bisection: sorted, disjoint, each range the right way round.
        assert!(INVISIBLE.iter().all(|(first, last)| first <= last));
        assert!(INVISIBLE.windows(2).all(|w| w[0].1 < w[1].0));
        // What the issue found unescaped, by name.
        for c in [
            '\u{115f}',
            '\u{1160}',
            '\u{3164}',
            '\u{ffa0}',
            '\u{2800}',
            '\u{34f}',
            '\u{fe00}',
            '\u{fe0f}',
            '\u{e0100}',
            '\u{e01ef}',
        ] {
            let shown = PeerText::from(format!("x{c}y")).to_string();
            assert!(!shown.contains(c), "U+{:04X} shown raw", c as u32);
        }
        // The ASCII space, letters with marks, other scripts and symbols stay as they are.
        for plain in ["a b", "e\u{301}", "żółw", "日本語", "✓ ok", "\u{2764}"] {
            assert_eq!(PeerText::from(plain).to_string(), plain);
        }
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
