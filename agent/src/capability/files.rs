//! `get` (under `download`) and `put` (under `upload`): files and folders, resolved and
//! classified against the shared folder before anything is read or written.
//!
//! - Reading: with `download` granted, files inside the shared folder go without a question;
//!   a folder's hidden entries are left out. Anything else — no grant, outside the folder,
//!   hidden, a startup place — is asked per request, showing the resolved path, file or
//!   folder, count and size; a "yes" copies the folder with its hidden entries.
//! - Writing needs `upload`. Inside the folder a new file or folder goes without a question;
//!   outside it, hidden or startup places, and replacing anything are asked (a script's agent,
//!   which nobody can ask, replaces only inside its folder, when the assistant asked for it).
//!   Missing folders are created only inside the shared folder or after a "yes". The
//!   assistant's announced count and size bind: more fails the transfer.

use std::time::{Duration, Instant};

use ponte_e2e::app::{Capability, EntryKind, MAX_PATH, Transfer};
use ponte_session::SecureStream;
use ponte_session::files::{self, Destination, Hidden, Progress, Totals};
use ponte_wire::text::PeerText;

use super::{Context, Decision, Handler, Reason, not_allowed};
use crate::frontend::{Activity, Event, Kind, Question, Why};
use crate::i18n::Tr;
use crate::i18n::{phrases, t};
use crate::scope::{Last, Place};

/// How long the assistant's reason is waited for when a download failed on the way (it
/// stopped reading: it has said why, or will not).
const ANSWER_AFTER_FAILURE: Duration = Duration::from_secs(2);

/// How often a transfer's progress is shown.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

/// Forwards a transfer's progress to the front-end, at most every [`PROGRESS_EVERY`].
fn progress(ctx: &Context, what: PeerText) -> impl FnMut(Progress) + Send + use<> {
    let events = ctx.events.clone();
    let transfer = ctx.next_transfer();
    let mut last = None::<Instant>;
    let mut done = 0u64;
    let mut total = 0u64;
    move |step| {
        match step {
            Progress::Started(t) => total = t.bytes,
            Progress::Advanced(n) => done += n,
        }
        let finished = done >= total;
        if finished || last.is_none_or(|t| t.elapsed() >= PROGRESS_EVERY) {
            last = Some(Instant::now());
            events.emit(Event::Transfer {
                transfer,
                what: what.clone(),
                progress: match step {
                    Progress::Started(t) => Progress::Started(t),
                    Progress::Advanced(_) => Progress::Advanced(done),
                },
            });
        }
    }
}

/// A request to copy from this computer.
pub struct Get {
    path: PeerText,
    place: Option<Place>,
    hidden: Hidden,
    /// Hidden entries of a folder that are left out.
    skipped: u64,
    kind: EntryKind,
    /// What was measured (and shown, if asked): no more is sent.
    approved: Totals,
}

impl Get {
    /// A request for `path`.
    pub fn new(path: PeerText) -> Get {
        Get {
            path,
            place: None,
            hidden: Hidden::Skip,
            skipped: 0,
            kind: EntryKind::File,
            approved: Totals::default(),
        }
    }
}

impl Handler for Get {
    const GRANT: Capability = Capability::Download;

    fn describe(&self, tr: &Tr) -> String {
        t!(tr, "request-get", path = &self.path)
    }

    async fn decide(&mut self, ctx: &Context, granted: bool) -> Decision {
        let place = match ctx.scope.resolve(&self.path, Last::Follow) {
            Ok(place) => place,
            Err(e) => return Decision::Refuse(Reason::Unusable(e.0)),
        };
        let mut why = place.concerns();
        if !granted {
            why.insert(0, Why::NotGranted);
        }
        // Asked, the customer sees everything that would go, hidden entries included.
        let hidden = if why.is_empty() {
            Hidden::Skip
        } else {
            Hidden::Include
        };
        let measured = match files::measure(&place.path, hidden).await {
            Ok(m) => m,
            Err(e) => return Decision::Refuse(Reason::Error(e.to_string())),
        };
        self.kind = measured.kind;
        self.approved = measured.totals;
        if hidden == Hidden::Skip {
            self.skipped = measured.hidden;
        } else {
            let question = Question::Copy {
                path: place.shown(),
                kind: measured.kind,
                totals: measured.totals,
                hidden: measured.hidden,
                why,
            };
            if let Err(reason) = ctx.ask(question).await {
                return Decision::Refuse(reason);
            }
            self.hidden = Hidden::Include;
        }
        self.place = Some(place);
        Decision::Allow
    }

    async fn run(self, stream: &mut SecureStream, ctx: &Context) -> anyhow::Result<Activity> {
        let place = self.place.ok_or_else(|| anyhow::anyhow!("no place"))?;
        let shown = place.shown();
        ctx.events
            .activity(Kind::Download, t!(ctx.tr(), "sending", path = &shown));
        let mut progress = progress(ctx, shown.clone());
        let approved = Some(self.approved);
        let sent = async {
            let totals = files::send_path(
                &mut stream.send,
                &place.path,
                self.hidden,
                approved,
                &mut progress,
            )
            .await?;
            stream.send.finish().await?;
            anyhow::Ok(totals)
        }
        .await;
        // Sent only once the assistant's computer has it verified and in place, as it answers
        // after the end of the stream; until then the customer is not told it went. When it
        // gave up first (and stopped reading), its answer says why.
        let answer = match &sent {
            Ok(_) => files::confirmed(&mut stream.recv).await,
            Err(_) => tokio::time::timeout(ANSWER_AFTER_FAILURE, files::confirmed(&mut stream.recv))
                .await
                .unwrap_or(Err(files::TransferError::Idle)),
        };
        let totals = match (sent, answer) {
            (Ok(totals), Ok(())) => totals,
            (_, Err(files::TransferError::Remote(reason))) => {
                anyhow::bail!("the assistant's computer did not keep it: {reason}")
            }
            (Err(e), _) => return Err(e),
            (Ok(_), Err(e)) => anyhow::bail!("the assistant's computer did not confirm it: {e}"),
        };
        let tr = ctx.tr();
        let mut what = phrases::totals(tr, self.kind, totals);
        if self.skipped > 0 {
            what = format!("{what}; {}", t!(tr, "sent-hidden-left-out", count = self.skipped));
        }
        let text = t!(tr, "sent", path = &shown, what = what);
        Ok(Activity {
            kind: Kind::Download,
            text,
        })
    }
}

/// A request to put something on this computer.
pub struct Put {
    path: PeerText,
    kind: EntryKind,
    totals: Totals,
    overwrite: bool,
    place: Option<Place>,
    /// The concerns the customer answered for the destination itself.
    asked: Vec<Why>,
}

impl Put {
    /// A request to put `files` files of `bytes` bytes as a `kind` at `path`.
    pub fn new(path: PeerText, kind: EntryKind, files: u64, bytes: u64, overwrite: bool) -> Put {
        Put {
            path,
            kind,
            totals: Totals { files, bytes },
            overwrite,
            place: None,
            asked: Vec::new(),
        }
    }
}

impl Handler for Put {
    const GRANT: Capability = Capability::Upload;

    fn describe(&self, tr: &Tr) -> String {
        let what = phrases::totals(tr, self.kind, self.totals);
        t!(tr, "request-put", path = &self.path, what = what)
    }

    async fn decide(&mut self, ctx: &Context, granted: bool) -> Decision {
        if !granted {
            return not_allowed(Self::GRANT);
        }
        if self.path.len() > MAX_PATH || (self.kind == EntryKind::File && self.totals.files != 1) {
            return Decision::Refuse(Reason::Malformed);
        }
        let place = match ctx.scope.resolve(&self.path, Last::Keep) {
            Ok(place) => place,
            Err(e) => return Decision::Refuse(Reason::Unusable(e.0)),
        };
        let existing = std::fs::symlink_metadata(&place.path).ok();
        let mut why = place.concerns();
        if let Some(meta) = &existing {
            if !self.overwrite {
                return Decision::Refuse(Reason::Exists(place.shown()));
            }
            if meta.is_dir() != (self.kind == EntryKind::Dir) {
                return Decision::Refuse(Reason::NotA {
                    path: place.shown(),
                    folder: !meta.is_dir(),
                });
            }
            why.push(Why::Replaces);
        }
        // A script's agent cannot ask: its upload grant covers replacing inside its folder.
        let scripted_replace = !ctx.interactive && why == [Why::Replaces];
        if !why.is_empty() && !scripted_replace {
            let question = Question::Put {
                path: place.shown(),
                kind: self.kind,
                totals: self.totals,
                creates: place.missing.as_deref().map(PeerText::path),
                why: why.clone(),
            };
            if let Err(reason) = ctx.ask(question).await {
                return Decision::Refuse(reason);
            }
        }
        self.asked = why;
        self.place = Some(place);
        Decision::Allow
    }

    async fn run(self, stream: &mut SecureStream, ctx: &Context) -> anyhow::Result<Activity> {
        let place = self.place.ok_or_else(|| anyhow::anyhow!("no place"))?;
        let shown = place.shown();
        if let Some(parent) = place.path.parent().filter(|_| place.missing.is_some()) {
            tokio::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(parent)
                .await
                .map_err(|e| anyhow::anyhow!("creating {}: {e}", PeerText::path(parent)))?;
        }
        ctx.events
            .activity(Kind::Upload, t!(ctx.tr(), "receiving", path = &shown));
        // Merging into an existing folder: an entry that is hidden, a startup place or
        // outside the folder needs its own question, which a running transfer cannot ask.
        // Whatever the folder, an entry that is Ponte itself (a ponte-agent.toml, a key it
        // trusts) needs the customer's "Ponte itself" yes for the folder.
        let asked = self.asked.clone();
        let asked_replace = asked.contains(&Why::Replaces);
        let scope = &ctx.scope;
        let merging = asked_replace && self.kind == EntryKind::Dir;
        let guard = move |target: &std::path::Path| -> Result<(), String> {
            let entry = scope
                .resolve(&PeerText::path(target), Last::Keep)
                .map_err(|e| e.to_string())?;
            let mut concerns = entry.concerns();
            if !merging {
                concerns.retain(|w| *w == Why::Program);
            }
            match concerns.into_iter().find(|w| !asked.contains(w)) {
                None => Ok(()),
                Some(why) => Err(format!("not written ({why:?}): put it on its own to be asked")),
            }
        };
        let mut progress = progress(ctx, shown.clone());
        let destination = Destination {
            path: &place.path,
            kind: Some(self.kind),
            // Only what existed when the customer was asked (or the script allowed it) is
            // replaced; anything appearing since is not.
            replace: asked_replace,
            limit: Some(self.totals),
            guard: &guard,
        };
        let received = files::receive_into(&mut stream.recv, destination, &mut progress).await?;
        stream.send.send(&Transfer::Done).await?;
        Ok(Activity {
            kind: Kind::Upload,
            text: t!(
                ctx.tr(),
                "received",
                path = &shown,
                what = phrases::totals(ctx.tr(), self.kind, received)
            ),
        })
    }
}
