//! The sending side: the tree walked once, and its files read and hashed on one blocking
//! thread that runs ahead of the sealing and sending.

use std::path::Path;

use ponte_e2e::app::{EntryKind, MAX_CHUNK, Transfer};
use tokio::sync::mpsc;

use super::{Hidden, MAX_ENTRIES, Measured, Progress, Totals, TransferError, io, is_hidden};
use crate::secure::{SecureRecv, SecureSend};

/// Batches of messages the reading thread may be ahead of the sending.
const AHEAD: usize = 16;

/// A batch of messages is handed over once it holds this many bytes of data or this many
/// messages: one hand-off between threads for a run of small files, not three per file.
const BATCH_BYTES: usize = MAX_CHUNK;
const BATCH_MESSAGES: usize = 64;

/// What a transfer of `path` would carry (symbolic links are neither followed nor sent).
pub async fn measure(path: &Path, hidden: Hidden) -> Result<Measured, TransferError> {
    let at = path.to_owned();
    tokio::task::spawn_blocking(move || walk(&at, hidden, false).map(|(measured, _)| measured))
        .await
        .map_err(|e| io(path)(std::io::Error::other(e.to_string())))?
}

/// An entry of a walked tree, relative to its root: a folder comes before what is in it.
enum Entry {
    Dir(String),
    File(String),
}

/// Walks `path` on the calling thread (it blocks): what it holds and, with `list`, its
/// entries in sending order.
fn walk(path: &Path, hidden: Hidden, list: bool) -> Result<(Measured, Vec<Entry>), TransferError> {
    let meta = std::fs::symlink_metadata(path).map_err(io(path))?;
    if meta.is_file() {
        let totals = Totals {
            files: 1,
            bytes: meta.len(),
        };
        let measured = Measured {
            kind: EntryKind::File,
            totals,
            hidden: 0,
        };
        return Ok((measured, vec![Entry::File(String::new())]));
    }
    if !meta.is_dir() {
        return Err(io(path)(std::io::Error::other("not a regular file or directory")));
    }
    let mut measured = Measured {
        kind: EntryKind::Dir,
        totals: Totals::default(),
        hidden: 0,
    };
    let mut entries = Vec::new();
    let mut walked = 0u64;
    let mut stack = vec![(path.to_owned(), String::new())];
    while let Some((dir, relative)) = stack.pop() {
        if list && !relative.is_empty() {
            entries.push(Entry::Dir(relative.clone()));
        }
        let mut listed = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
            walked += 1;
            if walked > MAX_ENTRIES {
                return Err(TransferError::TooLarge(path.to_owned()));
            }
            listed.push(entry.map_err(io(&dir))?);
        }
        if list {
            listed.sort_by_key(std::fs::DirEntry::file_name);
        }
        for entry in listed {
            let file_name = entry.file_name();
            let Some(name) = file_name.to_str() else {
                continue; // Names that are not UTF-8 cannot be sent portably; skipped.
            };
            if is_hidden(&file_name) {
                measured.hidden += 1;
                if hidden == Hidden::Skip {
                    continue;
                }
            }
            let relative = if relative.is_empty() {
                name.to_owned()
            } else {
                format!("{relative}/{name}")
            };
            // Neither looks through a symbolic link.
            let kind = entry.file_type().map_err(io(&entry.path()))?;
            if kind.is_dir() {
                stack.push((entry.path(), relative));
            } else if kind.is_file() {
                let meta = entry.metadata().map_err(io(&entry.path()))?;
                measured.totals.files += 1;
                measured.totals.bytes += meta.len();
                if list {
                    entries.push(Entry::File(relative));
                }
            }
        }
    }
    Ok((measured, entries))
}

/// Opens a regular file for reading without following a symbolic link in its last component;
/// anything else is refused. What was measured as a file may have been swapped since: the
/// open never waits (a FIFO without a writer would block the thread for ever), and the type
/// is checked on the opened descriptor, not on the name.
fn open_source(path: &Path) -> std::io::Result<(std::fs::File, std::fs::Metadata)> {
    let file = {
        use rustix::fs::{Mode, OFlags};
        // Non-blocking only matters for the open: reads of a regular file never wait.
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
            Mode::empty(),
        )?;
        std::fs::File::from(fd)
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other(
            "not a regular file (a FIFO, device or socket is never sent)",
        ));
    }
    Ok((file, meta))
}

/// The messages of a transfer, produced on a blocking thread: its announcement, then every
/// entry, each file read and hashed, handed over in batches.
struct Reader<'a> {
    out: &'a mpsc::Sender<Vec<Transfer>>,
    batch: Vec<Transfer>,
    /// Bytes of data in `batch`.
    batched: usize,
    /// Bytes the announcement still allows.
    left: u64,
}

impl Reader<'_> {
    /// Walks `source` and produces its transfer into `out`; returns what was announced.
    fn run(
        source: &Path,
        hidden: Hidden,
        approved: Option<Totals>,
        out: &mpsc::Sender<Vec<Transfer>>,
    ) -> Result<Totals, TransferError> {
        let (measured, entries) = walk(source, hidden, true)?;
        let totals = measured.totals;
        if approved.is_some_and(|a| totals.files > a.files || totals.bytes > a.bytes) {
            return Err(TransferError::Changed(source.to_owned()));
        }
        let mut reader = Reader {
            out,
            batch: Vec::new(),
            batched: 0,
            left: totals.bytes,
        };
        reader.emit(
            source,
            Transfer::Total {
                files: totals.files,
                bytes: totals.bytes,
            },
        )?;
        for entry in entries {
            match entry {
                Entry::Dir(relative) => reader.emit(
                    source,
                    Transfer::Dir {
                        path: relative.into(),
                    },
                )?,
                Entry::File(relative) if relative.is_empty() => reader.file(source, relative)?,
                Entry::File(relative) => reader.file(&source.join(&relative), relative)?,
            }
        }
        reader.flush(source)?;
        Ok(totals)
    }

    fn emit(&mut self, path: &Path, message: Transfer) -> Result<(), TransferError> {
        if let Transfer::Data(chunk) = &message {
            self.batched += chunk.len();
        }
        self.batch.push(message);
        if self.batched >= BATCH_BYTES || self.batch.len() >= BATCH_MESSAGES {
            self.flush(path)?;
        }
        Ok(())
    }

    fn flush(&mut self, path: &Path) -> Result<(), TransferError> {
        self.batched = 0;
        self.out
            .blocking_send(std::mem::take(&mut self.batch))
            .map_err(|_| io(path)(std::io::Error::other("transfer abandoned")))
    }

    /// One file: exactly its size when opened goes, and no more than the announcement has
    /// left. A file that grew, or is not what its size says (a /proc file reads as more than
    /// its size of 0), fails rather than sending more.
    fn file(&mut self, path: &Path, relative: String) -> Result<(), TransferError> {
        use std::io::Read;
        let changed = || TransferError::Changed(path.to_owned());
        let (mut file, meta) = open_source(path).map_err(io(path))?;
        let size = meta.len();
        self.left = self.left.checked_sub(size).ok_or_else(changed)?;
        let mode = {
            use std::os::unix::fs::PermissionsExt;
            meta.permissions().mode() & 0o777
        };
        self.emit(
            path,
            Transfer::File {
                path: relative.into(),
                size,
                mode,
            },
        )?;
        let mut hasher = blake3::Hasher::new();
        let mut left = size;
        while left > 0 {
            let mut chunk = vec![0u8; MAX_CHUNK.min(usize::try_from(left).unwrap_or(MAX_CHUNK))];
            let mut filled = 0;
            while filled < chunk.len() {
                match file.read(&mut chunk[filled..]).map_err(io(path))? {
                    0 => break,
                    n => filled += n,
                }
            }
            if filled == 0 {
                return Err(changed()); // Shrank.
            }
            chunk.truncate(filled);
            left -= filled as u64;
            hasher.update(&chunk);
            self.emit(path, Transfer::Data(chunk))?;
        }
        if file.read(&mut [0u8; 1]).map_err(io(path))? > 0 {
            return Err(changed()); // Grew.
        }
        self.emit(
            path,
            Transfer::FileEnd {
                blake3: hasher.finalize().into(),
            },
        )
    }
}

/// Announces and streams the file or directory at `source`, then `Done`; returns what was
/// announced. With `approved`, nothing more than that is sent (what changed since it was
/// measured fails). On a local error the caller tells the receiver (`Transfer::Failed`).
///
/// Sent is not done: the caller then ends the stream ([`SecureSend::finish`]) and waits for
/// the receiver's answer ([`confirmed`]) before it reports the transfer done.
pub async fn send_path(
    send: &mut SecureSend,
    source: &Path,
    hidden: Hidden,
    approved: Option<Totals>,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<Totals, TransferError> {
    let (out, mut messages) = mpsc::channel(AHEAD);
    let from = source.to_owned();
    // Dropped with this future (a cancelled transfer), `messages` stops the reader too.
    let reader = tokio::task::spawn_blocking(move || Reader::run(&from, hidden, approved, &out));
    let mut sent = Ok(());
    while let Some(batch) = messages.recv().await {
        if let Some(Transfer::Total { files, bytes }) = batch.first() {
            progress(Progress::Started(Totals {
                files: *files,
                bytes: *bytes,
            }));
        }
        if let Err(e) = send.send_all(&batch).await {
            sent = Err(e);
            break;
        }
        let advanced = batch.iter().map(|m| match m {
            Transfer::Data(chunk) => chunk.len() as u64,
            _ => 0,
        });
        match advanced.sum() {
            0 => {}
            n => progress(Progress::Advanced(n)),
        }
    }
    drop(messages);
    let read = reader
        .await
        .map_err(|e| io(source)(std::io::Error::other(e.to_string())))?;
    sent?;
    let totals = read?;
    send.send(&Transfer::Done).await?;
    Ok(totals)
}

/// Waits for the receiver's answer after the end of a transfer stream: `Done` once the files
/// are verified and in place on its side, `Failed(why)` if not (at most
/// [`IDLE_TIMEOUT`](super::IDLE_TIMEOUT)).
pub async fn confirmed(recv: &mut SecureRecv) -> Result<(), TransferError> {
    match super::receive::next_message(recv).await? {
        Transfer::Done => Ok(()),
        Transfer::Failed(reason) => Err(TransferError::Remote(reason)),
        _ => Err(TransferError::Protocol),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file swapped for a FIFO after it was measured is refused at once, not waited on.
    #[test]
    fn a_fifo_is_refused_without_waiting_for_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(open_source(&fifo).map(|_| ()));
        });
        let opened = rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("opening a FIFO blocked");
        let err = opened.expect_err("a FIFO is not sent");
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }
}
