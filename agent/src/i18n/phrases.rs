//! What the core's events say, in the customer's language: the one place that turns attempts,
//! questions, identities and permissions into sentences (for the terminal UI, the window, the
//! log and JSON alike).

use ponte_e2e::app::{Capability, EntryKind, Grants};
use ponte_e2e::identity::{CertificateError, PeerIdentity};
use ponte_session::files::Totals;
use ponte_wire::text::PeerText;

use crate::frontend::{Attempt, Question, Why};
use crate::i18n::{Tr, t};

/// An attempt, as a sentence.
pub fn attempt(tr: &Tr, attempt: &Attempt) -> String {
    match attempt {
        Attempt::Connecting => t!(tr, "attempt-connecting"),
        Attempt::WrongCode { attempts_left } => t!(tr, "attempt-wrong-code", left = *attempts_left),
        Attempt::Abandoned => t!(tr, "attempt-abandoned"),
        Attempt::Failed(reason) => t!(tr, "attempt-failed", reason = reason),
        // The relay's reasons are the protocol's (English) words.
        Attempt::TurnedAway(reason) => t!(tr, "attempt-turned-away", reason = reason.to_string()),
        Attempt::Burned => t!(tr, "attempt-burned"),
        Attempt::Expired => t!(tr, "attempt-expired"),
        Attempt::NotTrusted(who) => t!(tr, "attempt-not-trusted", peer = peer(tr, who)),
        Attempt::QuickConnecting => t!(tr, "attempt-quick-connecting"),
        Attempt::QuickFailed(Some(reason)) => t!(tr, "attempt-quick-failed", reason = reason),
        Attempt::QuickFailed(None) => t!(tr, "attempt-quick-left"),
        Attempt::ResumeFailed(reason) => t!(tr, "attempt-resume-failed", reason = reason),
    }
}

/// Why a certificate does not make an assistant "verified".
pub fn certificate(tr: &Tr, error: &CertificateError) -> String {
    match error {
        CertificateError::Missing => t!(tr, "cert-missing"),
        CertificateError::Malformed => t!(tr, "cert-malformed"),
        CertificateError::BadText => t!(tr, "cert-bad-text"),
        CertificateError::UnknownIssuer(_) => t!(tr, "cert-unknown-issuer"),
        CertificateError::BadSignature => t!(tr, "cert-bad-signature"),
        CertificateError::KeyMismatch => t!(tr, "cert-key-mismatch"),
        CertificateError::Expired { .. } => t!(tr, "cert-expired"),
        CertificateError::NotYetValid { .. } => t!(tr, "cert-not-yet-valid"),
    }
}

/// Who the assistant is: "verified: NAME, ORGANISATION" or "UNVERIFIED (why); key …".
pub fn peer(tr: &Tr, peer: &PeerIdentity) -> String {
    match peer {
        PeerIdentity::Verified {
            name,
            organisation,
            certified_as: None,
            ..
        } => t!(tr, "peer-verified", name = name, organisation = organisation),
        // The organisation as the customer's trust names it, and what the certificate claims.
        PeerIdentity::Verified {
            name,
            organisation,
            certified_as: Some(claimed),
            ..
        } => t!(
            tr,
            "peer-verified-claims",
            name = name,
            organisation = organisation,
            claimed = claimed
        ),
        PeerIdentity::Unverified { fingerprint, reason } => t!(
            tr,
            "peer-unverified",
            reason = certificate(tr, reason),
            fingerprint = fingerprint.to_string()
        ),
    }
}

/// What a capability lets the assistant do ("run commands and a terminal as you").
pub fn capability(tr: &Tr, c: Capability) -> String {
    match c {
        Capability::Terminal => t!(tr, "cap-terminal"),
        Capability::Upload => t!(tr, "cap-upload"),
        Capability::Download => t!(tr, "cap-download"),
        Capability::Info => t!(tr, "cap-info"),
        Capability::Chat => t!(tr, "cap-chat"),
        Capability::Screen => t!(tr, "cap-screen"),
        Capability::Control => t!(tr, "cap-control"),
        Capability::Clipboard => t!(tr, "cap-clipboard"),
    }
}

/// A capability's short name ("Terminal").
pub fn capability_name(tr: &Tr, c: Capability) -> String {
    match c {
        Capability::Terminal => t!(tr, "name-terminal"),
        Capability::Upload => t!(tr, "name-upload"),
        Capability::Download => t!(tr, "name-download"),
        Capability::Info => t!(tr, "name-info"),
        Capability::Chat => t!(tr, "name-chat"),
        Capability::Screen => t!(tr, "name-screen"),
        Capability::Control => t!(tr, "name-control"),
        Capability::Clipboard => t!(tr, "name-clipboard"),
    }
}

/// What is granted, as a list of short names ("nothing" for none).
pub fn grants(tr: &Tr, grants: Grants) -> String {
    let names: Vec<String> = grants
        .list()
        .into_iter()
        .map(|c| capability_name(tr, c))
        .collect();
    if names.is_empty() {
        t!(tr, "grants-nothing")
    } else {
        names.join(", ")
    }
}

/// Whom a quick-access opt-in lets in ("Alice, Example Support (only this assistant)").
pub fn opt_in_who(tr: &Tr, entry: &crate::quick_access::opt_ins::Entry) -> String {
    // Names from a certificate are the peer's text: inert.
    let scope = match entry.admits {
        ponte_e2e::key_handshake::Admits::Assistant(_) => crate::quick_access::opt_ins::Scope::Assistant,
        ponte_e2e::key_handshake::Admits::Organisation(_) => {
            crate::quick_access::opt_ins::Scope::Organisation
        }
    };
    quick_who(
        tr,
        &PeerText::new(entry.name.clone()),
        &PeerText::new(entry.organisation.clone()),
        scope,
    )
}

/// Whom quick access would let in: the assistant, or any of its organisation.
pub fn quick_who(
    tr: &Tr,
    name: &PeerText,
    organisation: &PeerText,
    scope: crate::quick_access::opt_ins::Scope,
) -> String {
    match scope {
        crate::quick_access::opt_ins::Scope::Assistant => {
            t!(
                tr,
                "quick-access-assistant",
                name = name,
                organisation = organisation
            )
        }
        crate::quick_access::opt_ins::Scope::Organisation => {
            t!(
                tr,
                "quick-access-organisation",
                name = name,
                organisation = organisation
            )
        }
    }
}

/// One line of `ponte-agent quick-access list`.
pub fn opt_in_line(tr: &Tr, number: usize, entry: &crate::quick_access::opt_ins::Entry, now: u64) -> String {
    let mut line = t!(
        tr,
        "quick-access-line",
        number = number,
        who = opt_in_who(tr, entry),
        until = tr.date_time(entry.not_after),
        grants = grants(tr, entry.grants)
    );
    if entry.without_asking {
        line.push_str(&t!(tr, "quick-access-without-asking"));
    }
    // Two organisations may carry one name: the key tells them apart.
    let key = match entry.admits {
        ponte_e2e::key_handshake::Admits::Assistant(key)
        | ponte_e2e::key_handshake::Admits::Organisation(key) => key,
    };
    line.push_str(&t!(tr, "quick-access-key", fingerprint = key.to_string()));
    if !entry.is_active(now) {
        line.push_str(&t!(tr, "quick-access-expired"));
    }
    line
}

/// Why a question is asked.
pub fn why(tr: &Tr, why: Why) -> String {
    match why {
        Why::NotGranted => t!(tr, "why-not-granted"),
        Why::OutsideFolder => t!(tr, "why-outside"),
        Why::Hidden => t!(tr, "why-hidden"),
        Why::Startup => t!(tr, "why-startup"),
        Why::Replaces => t!(tr, "why-replaces"),
        Why::Program => t!(tr, "why-program"),
    }
}

/// Files and size ("3 files, 1.5 MiB"; a single file: its size).
pub fn totals(tr: &Tr, kind: EntryKind, totals: Totals) -> String {
    match kind {
        EntryKind::File => tr.size(totals.bytes),
        EntryKind::Dir => t!(
            tr,
            "files-and-size",
            files = totals.files,
            size = tr.size(totals.bytes)
        ),
    }
}

/// A question: its first line says what would happen, one line per reason follows.
pub fn question(tr: &Tr, question: &Question) -> Vec<String> {
    let mut lines = Vec::new();
    let (headline, reasons): (String, &[Why]) = match question {
        Question::RelayChanged { relay, known, seen } => (
            t!(
                tr,
                "question-relay-changed",
                relay = relay,
                known = known,
                seen = seen
            ),
            &[],
        ),
        Question::Copy {
            path,
            kind,
            totals,
            hidden,
            why,
        } => {
            let size = tr.size(totals.bytes);
            let mut line = match kind {
                EntryKind::File => t!(tr, "question-copy-file", path = path, size = size),
                EntryKind::Dir => t!(
                    tr,
                    "question-copy-folder",
                    path = path,
                    files = totals.files,
                    size = size
                ),
            };
            if *hidden > 0 {
                line = format!("{line} {}", t!(tr, "question-hidden-items", count = *hidden));
            }
            (line, why.as_slice())
        }
        Question::List { path, entries, why } => (
            t!(tr, "question-list", path = path, count = *entries),
            why.as_slice(),
        ),
        Question::Put {
            path,
            kind,
            totals,
            creates,
            why,
        } => {
            let size = tr.size(totals.bytes);
            let mut line = match kind {
                EntryKind::File => t!(tr, "question-put-file", path = path, size = size),
                EntryKind::Dir => t!(
                    tr,
                    "question-put-folder",
                    path = path,
                    files = totals.files,
                    size = size
                ),
            };
            if let Some(folder) = creates {
                line = format!("{line} {}", t!(tr, "question-creates", folder = folder));
            }
            (line, why.as_slice())
        }
        Question::QuickAccess {
            who,
            key,
            days,
            grants: g,
        } => {
            lines.push(t!(tr, "question-quick-access", who = who));
            lines.push(t!(tr, "key-fingerprint", fingerprint = key));
            lines.push(t!(tr, "question-quick-access-after"));
            lines.push(t!(
                tr,
                "question-quick-access-until",
                days = *days,
                until = tr.date_time(crate::quick_access::opt_ins::ends(
                    ponte_session::now_unix(),
                    *days
                ))
            ));
            lines.push(t!(tr, "question-quick-access-grants", grants = grants(tr, *g)));
            lines.push(t!(tr, "question-quick-access-revoke"));
            return lines;
        }
    };
    lines.push(headline);
    lines.extend(reasons.iter().map(|w| format!("- {}", why(tr, *w))));
    lines
}

/// A path for the customer (escaped, as everything that came from the assistant).
pub fn path(path: &std::path::Path) -> String {
    PeerText::path(path).to_string()
}

/// The connection was lost and the session waits `window` to be resumed (`Some`), or it was
/// resumed (`None`).
pub fn reconnecting(tr: &Tr, window: Option<std::time::Duration>) -> String {
    match window {
        Some(window) => t!(tr, "reconnecting", secs = window.as_secs()),
        None => t!(tr, "reconnected"),
    }
}
