//! `ls` (under `download`): the names in a folder. A folder's names are its contents, so a
//! listing is judged like `get`: inside the shared folder, with `download` granted, it goes
//! without a question and leaves hidden entries out; anything else — no grant, outside the
//! folder, hidden, a startup place — is asked, showing the folder and how many entries it
//! holds, and a "yes" lists the hidden entries too.

use std::path::Path;
use std::time::UNIX_EPOCH;

use ponte_e2e::app::{Capability, ListEntry, ListedKind, MAX_CHUNK, MAX_LISTING, Transfer};
use ponte_session::SecureStream;
use ponte_wire::text::PeerText;

use super::{Context, Decision, Handler, Reason};
use crate::frontend::{Activity, Kind, Question, Why};
use crate::i18n::{Tr, t};
use crate::scope::{Last, Place};

/// Most entries read from one folder (their names are sorted before the first
/// [`MAX_LISTING`] are sent): a folder of millions costs a bounded time and memory.
const MAX_READ: usize = 10 * MAX_LISTING;

/// What one entry takes of a message at most, besides its name.
const ENTRY_OVERHEAD: usize = 32;

/// A request to list a folder of this computer.
pub struct List {
    path: PeerText,
    place: Option<Place>,
    /// What will be sent, in name order.
    entries: Vec<ListEntry>,
    /// Hidden entries left out.
    skipped: usize,
}

impl List {
    /// A request for the folder at `path`.
    pub fn new(path: PeerText) -> List {
        List {
            path,
            place: None,
            entries: Vec::new(),
            skipped: 0,
        }
    }
}

impl Handler for List {
    const GRANT: Capability = Capability::Download;

    fn describe(&self, tr: &Tr) -> String {
        t!(tr, "request-list", path = &self.path)
    }

    async fn decide(&mut self, ctx: &Context, granted: bool) -> Decision {
        let place = match ctx.scope.resolve(&self.path, Last::Follow) {
            Ok(place) => place,
            Err(e) => return Decision::Refuse(Reason::Unusable(e.0)),
        };
        let folder = place.path.clone();
        let entries = match tokio::task::spawn_blocking(move || read(&folder)).await {
            Ok(Ok(entries)) => entries,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotADirectory => {
                return Decision::Refuse(Reason::NotA {
                    path: place.shown(),
                    folder: true,
                });
            }
            Ok(Err(e)) => return Decision::Refuse(Reason::Error(e.to_string())),
            Err(e) => return Decision::Refuse(Reason::Error(e.to_string())),
        };
        let mut why = place.concerns();
        if !granted {
            why.insert(0, Why::NotGranted);
        }
        if why.is_empty() {
            let all = entries.len();
            self.entries = entries
                .into_iter()
                .filter(|(_, hidden)| !hidden)
                .map(|(entry, _)| entry)
                .collect();
            self.skipped = all - self.entries.len();
        } else {
            let question = Question::List {
                path: place.shown(),
                entries: entries.len() as u64,
                why,
            };
            if let Err(reason) = ctx.ask(question).await {
                return Decision::Refuse(reason);
            }
            self.entries = entries.into_iter().map(|(entry, _)| entry).collect();
        }
        self.entries.truncate(MAX_LISTING);
        self.place = Some(place);
        Decision::Allow
    }

    async fn run(self, stream: &mut SecureStream, ctx: &Context) -> anyhow::Result<Activity> {
        let place = self.place.ok_or_else(|| anyhow::anyhow!("no place"))?;
        let count = self.entries.len();
        for chunk in chunks(self.entries) {
            stream.send.send(&Transfer::Listing(chunk)).await?;
        }
        stream.send.send(&Transfer::Done).await?;
        stream.send.finish().await?;
        let tr = ctx.tr();
        let mut text = t!(tr, "listed", path = &place.shown(), count = count as u64);
        if self.skipped > 0 {
            let skipped = t!(tr, "sent-hidden-left-out", count = self.skipped as u64);
            text = format!("{text}; {skipped}");
        }
        Ok(Activity {
            kind: Kind::Download,
            text,
        })
    }
}

/// The entries of `folder` in name order (the first [`MAX_READ`] the system gives), symbolic
/// links not followed, each with whether it is hidden.
fn read(folder: &Path) -> std::io::Result<Vec<(ListEntry, bool)>> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(folder)?.take(MAX_READ) {
        let Ok(entry) = entry else { continue };
        let Ok(metadata) = entry.metadata() else {
            continue;
        };
        let kind = match metadata.file_type() {
            t if t.is_symlink() => ListedKind::Link,
            t if t.is_dir() => ListedKind::Dir,
            t if t.is_file() => ListedKind::File,
            _ => ListedKind::Other,
        };
        let name = entry.file_name();
        let hidden = ponte_session::files::is_hidden(&name);
        let entry = ListEntry {
            name: PeerText::path(Path::new(&name)),
            kind,
            size: if kind == ListedKind::File {
                metadata.len()
            } else {
                0
            },
            modified: metadata
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_secs()),
        };
        entries.push((entry, hidden));
    }
    entries.sort_by(|(a, _), (b, _)| a.name.as_raw().cmp(b.name.as_raw()));
    Ok(entries)
}

/// `entries` in groups that each fit one message.
fn chunks(entries: Vec<ListEntry>) -> Vec<Vec<ListEntry>> {
    let mut out = vec![Vec::new()];
    let mut used = 0;
    for entry in entries {
        let size = entry.name.len() + ENTRY_OVERHEAD;
        if used + size > MAX_CHUNK {
            out.push(Vec::new());
            used = 0;
        }
        used += size;
        if let Some(chunk) = out.last_mut() {
            chunk.push(entry);
        }
    }
    out.retain(|chunk| !chunk.is_empty());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_names_fit_a_message_each_chunk() {
        let long = PeerText::new("\\xff".repeat(255));
        let entries: Vec<ListEntry> = (0..2000)
            .map(|_| ListEntry {
                name: long.clone(),
                kind: ListedKind::Other,
                size: u64::MAX,
                modified: Some(u64::MAX),
            })
            .collect();
        let chunks = chunks(entries);
        assert_eq!(chunks.iter().map(Vec::len).sum::<usize>(), 2000);
        for chunk in chunks {
            let message = Transfer::Listing(chunk);
            ponte_wire::frame::encode(&message, ponte_e2e::app::MAX_MESSAGE).unwrap();
        }
    }
}
