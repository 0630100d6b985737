//! File and directory transfer over a sealed stream, the same code for both directions.
//!
//! The sender measures the source, announces it ([`Transfer::Total`]) and streams
//! [`Transfer`] entries; every file ends with its hash (BLAKE3). The receiver holds the sender to its
//! announcement. A new folder is filled under a fresh, randomly named hidden name beside its
//! destination; a single file, or a file merged into a folder that was there, is written
//! through such a partial file of its own — created exclusively, never through a symbolic
//! link, readable only by its owner. What is verified waits there until the whole transfer
//! stream arrived (`Done` and the authenticated end of the stream); only then is the folder,
//! or every file, renamed into place. A failed,
//! cancelled or cut transfer therefore never leaves a file that looks complete, and a planted
//! link cannot redirect a write. Entry paths are relative and checked: nothing a peer sends
//! can write outside the destination or through a link inside it.
//!
//! Each side does its file system work on one thread of its own per transfer — the sender's
//! walks the tree once and reads and hashes the files ahead of the sealing, the receiver's
//! writes, hashes and places them — so that a folder of many small files costs no hand-off
//! between threads per file.
//!
//! [`Transfer`]: ponte_e2e::app::Transfer
//! [`Transfer::Total`]: ponte_e2e::app::Transfer::Total

mod disk;
mod receive;
mod send;

use std::path::{Component, Path, PathBuf};

use ponte_e2e::app::{EntryKind, MAX_PATH};
use ponte_wire::text::PeerText;

use crate::SessionError;

pub use receive::{Destination, PARTIAL_SUFFIX, no_guard, receive_into};
pub use send::{confirmed, measure, send_path};

/// What can go wrong in a transfer, besides the session itself.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The session failed.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// A local file operation failed.
    #[error("{}: {error}", PeerText::path(path))]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// What happened.
        error: std::io::Error,
    },
    /// The peer sent a path that would leave the destination, go through a symbolic link, or
    /// is otherwise unusable.
    #[error("unsafe path from the other side: {0:?}")]
    UnsafePath(PeerText),
    /// The received bytes do not match the sender's hash.
    #[error("{}: integrity check failed (its hash does not match); the partial file was removed", PeerText::path(.0))]
    HashMismatch(PathBuf),
    /// The sender reported a failure.
    #[error("the other side failed: {0}")]
    Remote(PeerText),
    /// The sender broke the entry sequence.
    #[error("unexpected message in the transfer")]
    Protocol,
    /// More files or bytes arrived than were announced (or allowed).
    #[error("the other side sent more than it announced ({0})")]
    TooMuch(&'static str),
    /// The sender went silent.
    #[error("the other side sent nothing for {} s", IDLE_TIMEOUT.as_secs())]
    Idle,
    /// A folder has more entries than a transfer walks.
    #[error("{}: more than {MAX_ENTRIES} entries", PeerText::path(.0))]
    TooLarge(PathBuf),
    /// A file changed while it was sent (or is not what its size says, like /proc files).
    #[error("{}: it changed while it was sent", PeerText::path(.0))]
    Changed(PathBuf),
    /// The destination exists and replacing it was not allowed.
    #[error("{} already exists (not replaced)", PeerText::path(.0))]
    Exists(PathBuf),
    /// The receiver's guard refused an entry.
    #[error("{}: {reason}", PeerText::path(path))]
    Refused {
        /// The entry's destination.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Moving the verified files into a folder that already existed failed part-way: the
    /// files before the failing one are in place, the rest are not.
    #[error("{error} ({placed} of {files} files were put in place before this)")]
    PartlyPlaced {
        /// Files in place.
        placed: usize,
        /// Files the transfer carried.
        files: usize,
        /// What failed.
        error: Box<TransferError>,
    },
}

/// Entries a transfer may walk (measuring a folder stops there, with an error).
pub const MAX_ENTRIES: u64 = 200_000;

/// Folders a transfer may create beyond one per announced file.
pub const MAX_EXTRA_DIRS: u64 = 1_000;

/// How long a receiver waits for the sender's next message.
pub const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TransferError + '_ {
    move |error| TransferError::Io {
        path: path.to_owned(),
        error,
    }
}

/// How many files and bytes a transfer carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Regular files.
    pub files: u64,
    /// Bytes in them.
    pub bytes: u64,
}

/// What is at a path, as far as a transfer would send it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measured {
    /// A single file or a directory tree.
    pub kind: EntryKind,
    /// What would be sent.
    pub totals: Totals,
    /// Hidden entries (names starting with `.`) inside a directory: included in `totals`
    /// with [`Hidden::Include`], otherwise what is left out.
    pub hidden: u64,
}

/// Whether a directory transfer includes hidden entries (names starting with `.`): a grant to
/// copy a folder is not a grant to copy the `.ssh` inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hidden {
    /// Send them too.
    Include,
    /// Leave them out.
    Skip,
}

/// How a transfer advances, for progress bars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The transfer announced its size.
    Started(Totals),
    /// This many more bytes went through.
    Advanced(u64),
}

/// Joins a peer-supplied relative path to `root`, refusing anything that could escape it:
/// absolute paths, `..`, drive prefixes, empty or over-long paths and NUL bytes.
pub fn safe_join(root: &Path, relative: &PeerText) -> Result<PathBuf, TransferError> {
    let unsafe_path =
        || TransferError::UnsafePath(relative.as_raw().chars().take(200).collect::<String>().into());
    let raw = relative.as_raw();
    if raw.is_empty() || raw.len() > MAX_PATH || raw.contains('\0') || raw.contains('\\') {
        return Err(unsafe_path());
    }
    let mut out = root.to_owned();
    for component in Path::new(raw).components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return Err(unsafe_path()),
        }
    }
    if out == root {
        return Err(unsafe_path());
    }
    Ok(out)
}

/// Whether a file name is hidden by convention.
pub fn is_hidden(name: &std::ffi::OsStr) -> bool {
    name.as_encoded_bytes().first() == Some(&b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_join_refuses_escapes() {
        let root = Path::new("/dest");
        let join = |p: &str| safe_join(root, &PeerText::from(p));
        assert_eq!(join("a/b.txt").unwrap(), Path::new("/dest/a/b.txt"));
        assert_eq!(join("./a").unwrap(), Path::new("/dest/a"));
        for bad in [
            "",
            "..",
            "../x",
            "a/../../x",
            "/etc/passwd",
            "a\0b",
            "a\\..\\b",
            ".",
            "./",
        ] {
            assert!(join(bad).is_err(), "{bad:?} accepted");
        }
        assert!(join(&"a/".repeat(3000)).is_err());
    }
}
