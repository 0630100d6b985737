//! The customer's language. Everything the customer reads — the window, the terminal UI,
//! questions, the bar on the shared screen, the log — comes from the Fluent files in
//! `locales/` beside this module (English, Italian, Polish), chosen from the system locale (`LC_ALL`,
//! `LC_MESSAGES`, `LANG`) or `--lang`; plurals follow each language's rules, sizes use its
//! decimal mark, and times are shown in the customer's own time zone with the date.
//!
//! Messages are looked up with [`t!`](crate::t); a test checks that every language has exactly
//! the keys the code uses.

pub mod phrases;

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};
use ponte_wire::text::PeerText;

/// A language the agent speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// English.
    En,
    /// Italian.
    It,
    /// Polish.
    Pl,
}

impl Lang {
    /// Every language, English first (the fallback).
    pub const ALL: [Lang; 3] = [Lang::En, Lang::It, Lang::Pl];

    /// Its ISO 639-1 code.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::It => "it",
            Lang::Pl => "pl",
        }
    }

    /// The language of a locale name (`it`, `it_IT.UTF-8`, `pl-PL`, `en_GB@euro`); `None` for
    /// one the agent does not speak.
    pub fn parse(locale: &str) -> Option<Lang> {
        let language = locale
            .split(['_', '-', '.', '@'])
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        Lang::ALL.into_iter().find(|l| l.code() == language)
    }

    /// The language of the environment: the first of `LC_ALL`, `LC_MESSAGES`, `LANG` that is
    /// set and not empty decides (as the C library does); English when it names another one.
    pub fn from_env() -> Lang {
        ["LC_ALL", "LC_MESSAGES", "LANG"]
            .into_iter()
            .filter_map(|var| std::env::var(var).ok())
            .find(|value| !value.is_empty())
            .and_then(|value| Lang::parse(&value))
            .unwrap_or(Lang::En)
    }

    /// The Fluent source.
    pub fn source(self) -> &'static str {
        match self {
            Lang::En => include_str!("locales/en.ftl"),
            Lang::It => include_str!("locales/it.ftl"),
            Lang::Pl => include_str!("locales/pl.ftl"),
        }
    }

    fn decimal_mark(self) -> char {
        match self {
            Lang::En => '.',
            Lang::It | Lang::Pl => ',',
        }
    }
}

/// One argument of a message.
pub struct Arg(FluentValue<'static>);

impl From<String> for Arg {
    fn from(s: String) -> Arg {
        Arg(FluentValue::from(s))
    }
}

impl From<&str> for Arg {
    fn from(s: &str) -> Arg {
        Arg(FluentValue::from(s.to_owned()))
    }
}

impl From<&String> for Arg {
    fn from(s: &String) -> Arg {
        Arg(FluentValue::from(s.clone()))
    }
}

/// Peer text goes in only in its inert form.
impl From<&PeerText> for Arg {
    fn from(s: &PeerText) -> Arg {
        Arg(FluentValue::from(s.to_string()))
    }
}

macro_rules! number_args {
    ($($t:ty),*) => {$(
        impl From<$t> for Arg {
            fn from(n: $t) -> Arg {
                Arg(FluentValue::from(n))
            }
        }
    )*};
}
number_args!(u8, u16, u32, u64, usize, i32, i64);

/// Translations for one language (falling back to English for anything missing).
pub struct Tr {
    lang: Lang,
    bundle: FluentBundle<FluentResource>,
    english: FluentBundle<FluentResource>,
}

impl std::fmt::Debug for Tr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tr").field("lang", &self.lang).finish()
    }
}

fn bundle(lang: Lang) -> FluentBundle<FluentResource> {
    let id = lang.code().parse().unwrap_or_default();
    let mut bundle = FluentBundle::new_concurrent(vec![id]);
    // No invisible bidi isolation marks around arguments: the terminal would show them.
    bundle.set_use_isolating(false);
    // The sources are the project's own and checked by a test; a broken entry is left out.
    let resource = FluentResource::try_new(lang.source().to_owned()).unwrap_or_else(|(partial, _)| partial);
    let _ = bundle.add_resource(resource);
    bundle
}

impl Tr {
    /// Translations for `lang`.
    pub fn new(lang: Lang) -> Tr {
        Tr {
            lang,
            bundle: bundle(lang),
            english: bundle(Lang::En),
        }
    }

    /// The language.
    pub fn lang(&self) -> Lang {
        self.lang
    }

    /// The message `id` with these arguments (the key itself if no language has it).
    pub fn t_with(&self, id: &str, args: &[(&str, Arg)]) -> String {
        let mut fluent_args = FluentArgs::new();
        for (name, Arg(value)) in args {
            fluent_args.set(*name, value.clone());
        }
        for bundle in [&self.bundle, &self.english] {
            if let Some(pattern) = bundle.get_message(id).and_then(|m| m.value()) {
                let mut errors = Vec::new();
                return bundle
                    .format_pattern(pattern, Some(&fluent_args), &mut errors)
                    .into_owned();
            }
        }
        id.to_owned()
    }

    /// A size in bytes, as the customer reads it (`1,5 MiB` in Italian and Polish).
    pub fn size(&self, bytes: u64) -> String {
        let (value, unit) = match bytes {
            b if b >= 1 << 30 => (b as f64 / (1u64 << 30) as f64, "GiB"),
            b if b >= 1 << 20 => (b as f64 / (1u64 << 20) as f64, "MiB"),
            b if b >= 1 << 10 => (b as f64 / 1024.0, "KiB"),
            b => return format!("{b} B"),
        };
        format!("{value:.1} {unit}").replace('.', &self.lang.decimal_mark().to_string())
    }

    /// A moment as the customer reads it: date and time in their time zone.
    pub fn date_time(&self, unix: u64) -> String {
        local(unix, "%Y-%m-%d %H:%M:%S %Z")
    }

    /// The time of day in the customer's time zone.
    pub fn time_of_day(&self, unix: u64) -> String {
        local(unix, "%H:%M:%S")
    }

    /// Whether `word` answers yes (`Some(true)`), no (`Some(false)`) or neither, in English or
    /// in the customer's language (an empty answer is no, as `[y/N]` says).
    pub fn yes_no(&self, word: &str) -> Option<bool> {
        let word = word.trim().to_lowercase();
        if word.is_empty() {
            return Some(false);
        }
        let listed = |local: String, id: &str| {
            [local, self.english_words(id)]
                .iter()
                .any(|list| list.split(',').any(|w| w.trim() == word))
        };
        if listed(t!(self, "answer-yes-words"), "answer-yes-words") {
            Some(true)
        } else if listed(t!(self, "answer-no-words"), "answer-no-words") {
            Some(false)
        } else {
            None
        }
    }

    fn english_words(&self, id: &str) -> String {
        self.english
            .get_message(id)
            .and_then(|m| m.value())
            .map(|p| self.english.format_pattern(p, None, &mut Vec::new()).into_owned())
            .unwrap_or_default()
    }
}

fn local(unix: u64, format: &str) -> String {
    let Ok(timestamp) = jiff::Timestamp::from_second(i64::try_from(unix).unwrap_or(i64::MAX)) else {
        return unix.to_string();
    };
    timestamp
        .to_zoned(jiff::tz::TimeZone::system())
        .strftime(format)
        .to_string()
}

/// Looks up a message: `t!(tr, "key")` or `t!(tr, "key", name = value, …)`. The key is a
/// literal, so that a test can find every key the code uses.
#[macro_export]
#[doc(hidden)]
macro_rules! __t {
    ($tr:expr, $id:literal $(, $name:ident = $value:expr)* $(,)?) => {
        $tr.t_with($id, &[$((stringify!($name), $crate::i18n::Arg::from($value))),*])
    };
}
// (A `macro_rules!` can only be exported at the crate root; it is used from here.)
#[doc(inline)]
pub use crate::__t as t;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// The message ids of a Fluent source (the source must parse).
    fn keys(source: &str) -> BTreeSet<String> {
        if let Err((_, errors)) = FluentResource::try_new(source.to_owned()) {
            panic!("a Fluent file does not parse: {errors:?}");
        }
        source
            .lines()
            .filter_map(|line| line.split_once(" ="))
            .map(|(id, _)| id)
            .filter(|id| id.chars().next().is_some_and(|c| c.is_ascii_lowercase()))
            .filter(|id| {
                id.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            })
            .map(str::to_owned)
            .collect()
    }

    /// Every `t!(…, "key"` in the agent's sources.
    fn used_keys() -> BTreeSet<String> {
        let mut used = BTreeSet::new();
        let mut dirs = vec![std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().map(Result::unwrap) {
                let path = entry.path();
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                for (at, _) in text.match_indices("t!(") {
                    // Exactly the `t!` macro, not `assert!(`.
                    let before = text[..at].chars().next_back();
                    if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                        continue;
                    }
                    let rest = &text[at + 3..];
                    let Some(quote) = rest.find('"') else { continue };
                    // The key is the first string literal after the translator argument (which
                    // may be a call, `ctx.tr()`); documentation examples do not count.
                    let line_start = text[..at].rfind('\n').map_or(0, |n| n + 1);
                    if rest[..quote].contains(';')
                        || quote > 80
                        || text[line_start..at].trim_start().starts_with("//")
                    {
                        continue;
                    }
                    let key: String = rest[quote + 1..].chars().take_while(|c| *c != '"').collect();
                    if !key.is_empty()
                        && key
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    {
                        used.insert(key);
                    }
                }
            }
        }
        used
    }

    #[test]
    fn every_language_has_exactly_the_keys_the_code_uses() {
        let used = used_keys();
        assert!(
            used.len() > 100,
            "found only {} keys: the scan is broken",
            used.len()
        );
        for lang in Lang::ALL {
            let have = keys(lang.source());
            let missing: Vec<_> = used.difference(&have).collect();
            let unused: Vec<_> = have.difference(&used).collect();
            assert!(missing.is_empty(), "{}.ftl misses {missing:?}", lang.code());
            assert!(
                unused.is_empty(),
                "{}.ftl has keys the code no longer uses: {unused:?}",
                lang.code()
            );
        }
    }

    #[test]
    fn plurals_and_numbers_follow_the_language() {
        let (en, it, pl) = (Tr::new(Lang::En), Tr::new(Lang::It), Tr::new(Lang::Pl));
        assert_eq!(
            t!(en, "attempt-wrong-code", left = 1u8),
            "Someone tried a wrong code — one try left."
        );
        assert!(t!(en, "attempt-wrong-code", left = 2u8).contains("2 tries left"));
        // Polish has one, few (2–4) and many (5+) forms.
        let (one, few, many) = (
            t!(pl, "processes-ended", count = 1u64),
            t!(pl, "processes-ended", count = 3u64),
            t!(pl, "processes-ended", count = 5u64),
        );
        assert!(one != few && few != many && one != many, "{one} / {few} / {many}");
        assert_eq!(en.size(1536 << 10), "1.5 MiB");
        assert_eq!(it.size(1536 << 10), "1,5 MiB");
        assert_eq!(pl.size(1536 << 10), "1,5 MiB");
        assert_ne!(t!(it, "ready-title"), t!(en, "ready-title"));
        // No invisible isolation marks around arguments.
        assert!(!t!(en, "sending", path = "x").contains('\u{2068}'));
        assert_eq!(it.yes_no("sì"), Some(true));
        assert_eq!(pl.yes_no("tak"), Some(true));
        assert_eq!(pl.yes_no("y"), Some(true), "English answers always work");
        assert_eq!(it.yes_no("forse"), None);
    }

    #[test]
    fn the_locale_picks_the_language() {
        assert_eq!(Lang::parse("it_IT.UTF-8"), Some(Lang::It));
        assert_eq!(Lang::parse("pl-PL"), Some(Lang::Pl));
        assert_eq!(Lang::parse("en_GB@euro"), Some(Lang::En));
        assert_eq!(Lang::parse("C.UTF-8"), None);
        assert_eq!(Lang::parse("de_DE.UTF-8"), None);
    }
}
