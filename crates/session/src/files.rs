//! File and directory transfer over a sealed stream, the same code for both directions.
//!
//! The sender measures the source, announces it ([`Transfer::Total`]) and streams
//! [`Transfer`] entries; every file ends with its SHA-256. The receiver holds the sender to its
//! announcement, and writes each file through a fresh, randomly named partial file beside its
//! destination — created exclusively, never through a symbolic link, readable only by its
//! owner. A verified file waits there until the whole transfer stream arrived (`Done` and the
//! authenticated end of the stream); only then is every file renamed into place. A failed,
//! cancelled or cut transfer therefore never leaves a file that looks complete, and a planted
//! link cannot redirect a write. Entry paths are relative and checked: nothing a peer sends
//! can write outside the destination or through a link inside it.

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};

use ponte_e2e::app::{EntryKind, MAX_CHUNK, MAX_PATH, Transfer};
use ponte_wire::text::PeerText;
use sha2::{Digest, Sha256};

use crate::SessionError;
use crate::secure::{SecureRecv, SecureSend};

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
    #[error("{}: integrity check failed (SHA-256 mismatch); the partial file was removed", PeerText::path(.0))]
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

/// What a transfer of `path` would carry (symbolic links are neither followed nor sent).
pub async fn measure(path: &Path, hidden: Hidden) -> Result<Measured, TransferError> {
    let meta = tokio::fs::symlink_metadata(path).await.map_err(io(path))?;
    if meta.is_file() {
        return Ok(Measured {
            kind: EntryKind::File,
            totals: Totals {
                files: 1,
                bytes: meta.len(),
            },
            hidden: 0,
        });
    }
    if !meta.is_dir() {
        return Err(TransferError::Io {
            path: path.to_owned(),
            error: std::io::Error::other("not a regular file or directory"),
        });
    }
    let mut measured = Measured {
        kind: EntryKind::Dir,
        totals: Totals::default(),
        hidden: 0,
    };
    let mut stack = vec![path.to_owned()];
    let mut walked = 0u64;
    while let Some(dir) = stack.pop() {
        let mut entries = tokio::fs::read_dir(&dir).await.map_err(io(&dir))?;
        while let Some(entry) = entries.next_entry().await.map_err(io(&dir))? {
            walked += 1;
            if walked > MAX_ENTRIES {
                return Err(TransferError::TooLarge(path.to_owned()));
            }
            if entry.file_name().to_str().is_none() {
                continue; // Not sent (see send_entries).
            }
            let hidden_entry = is_hidden(&entry.file_name());
            if hidden_entry {
                measured.hidden += 1;
                if hidden == Hidden::Skip {
                    continue;
                }
            }
            // DirEntry::metadata does not follow symbolic links.
            let meta = entry.metadata().await.map_err(io(&entry.path()))?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() {
                measured.totals.files += 1;
                measured.totals.bytes += meta.len();
            }
        }
    }
    Ok(measured)
}

fn mode_of(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o777
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

async fn send_file(
    send: &mut SecureSend,
    path: &Path,
    relative: String,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<(), TransferError> {
    let (source, meta) = open_source(path).map_err(io(path))?;
    send.send(&Transfer::File {
        path: relative.into(),
        size: meta.len(),
        mode: mode_of(&meta),
    })
    .await?;
    // Reading and hashing run on a blocking thread, a few chunks ahead of sealing and sending.
    // Exactly the announced size goes: a file that grew, or is not what its size says (a
    // /proc file reads as more than its size of 0), fails rather than sending more.
    let size = meta.len();
    let (chunks, mut next) = tokio::sync::mpsc::channel::<Vec<u8>>(8);
    let reader = tokio::task::spawn_blocking(move || -> std::io::Result<Option<[u8; 32]>> {
        use std::io::Read;
        let mut file = source;
        let mut hasher = Sha256::new();
        let mut left = size;
        while left > 0 {
            let mut chunk = vec![0u8; MAX_CHUNK.min(usize::try_from(left).unwrap_or(MAX_CHUNK))];
            let mut filled = 0;
            while filled < chunk.len() {
                match file.read(&mut chunk[filled..])? {
                    0 => break,
                    n => filled += n,
                }
            }
            if filled == 0 {
                return Ok(None); // Shrank.
            }
            chunk.truncate(filled);
            left -= filled as u64;
            hasher.update(&chunk);
            if chunks.blocking_send(chunk).is_err() {
                return Err(std::io::Error::other("transfer abandoned"));
            }
        }
        let grew = file.read(&mut [0u8; 1])? > 0;
        Ok((!grew).then(|| hasher.finalize().into()))
    });
    while let Some(chunk) = next.recv().await {
        let n = chunk.len() as u64;
        send.send(&Transfer::Data(chunk)).await?;
        progress(Progress::Advanced(n));
    }
    let sha256 = reader
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))
        .and_then(|r| r)
        .map_err(io(path))?
        .ok_or_else(|| TransferError::Changed(path.to_owned()))?;
    send.send(&Transfer::FileEnd { sha256 }).await?;
    Ok(())
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
    let result = async {
        let measured = measure(source, hidden).await?;
        if approved.is_some_and(|a| measured.totals.files > a.files || measured.totals.bytes > a.bytes) {
            return Err(TransferError::Changed(source.to_owned()));
        }
        send.send(&Transfer::Total {
            files: measured.totals.files,
            bytes: measured.totals.bytes,
        })
        .await?;
        progress(Progress::Started(measured.totals));
        send_entries(send, source, measured.kind, hidden, progress).await?;
        Ok(measured.totals)
    }
    .await;
    let totals = result?;
    send.send(&Transfer::Done).await?;
    Ok(totals)
}

/// Waits for the receiver's answer after the end of a transfer stream: `Done` once the files
/// are verified and in place on its side, `Failed(why)` if not (at most [`IDLE_TIMEOUT`]).
pub async fn confirmed(recv: &mut SecureRecv) -> Result<(), TransferError> {
    match next_message(recv).await? {
        Transfer::Done => Ok(()),
        Transfer::Failed(reason) => Err(TransferError::Remote(reason)),
        _ => Err(TransferError::Protocol),
    }
}

async fn send_entries(
    send: &mut SecureSend,
    source: &Path,
    kind: EntryKind,
    hidden: Hidden,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<(), TransferError> {
    if kind == EntryKind::File {
        return send_file(send, source, String::new(), progress).await;
    }
    let mut stack = vec![(source.to_owned(), String::new())];
    while let Some((dir, relative)) = stack.pop() {
        if !relative.is_empty() {
            send.send(&Transfer::Dir {
                path: relative.clone().into(),
            })
            .await?;
        }
        let mut entries = Vec::new();
        let mut reader = tokio::fs::read_dir(&dir).await.map_err(io(&dir))?;
        while let Some(entry) = reader.next_entry().await.map_err(io(&dir))? {
            entries.push(entry);
        }
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue; // Names that are not UTF-8 cannot be sent portably; skipped.
            };
            if hidden == Hidden::Skip && is_hidden(entry.file_name().as_os_str()) {
                continue;
            }
            let rel = if relative.is_empty() {
                name
            } else {
                format!("{relative}/{name}")
            };
            let meta = entry.metadata().await.map_err(io(&entry.path()))?;
            if meta.is_dir() {
                stack.push((entry.path(), rel));
            } else if meta.is_file() {
                send_file(send, &entry.path(), rel, progress).await?;
            }
        }
    }
    Ok(())
}

/// Where and how a transfer is received.
pub struct Destination<'a> {
    /// The file (single-file transfer) or directory (tree) to create. Its parent must exist.
    pub path: &'a Path,
    /// What must arrive, if that was agreed: a file, or a folder.
    pub kind: Option<EntryKind>,
    /// Replace an existing file, or merge into an existing directory.
    pub replace: bool,
    /// At most this much may arrive, whatever the sender announces.
    pub limit: Option<Totals>,
    /// Asked before every directory or file is created (with its full path); an error fails
    /// the transfer with that reason.
    pub guard: &'a (dyn Fn(&Path) -> Result<(), String> + Sync),
}

/// Accepts every entry (a destination the receiving user chose).
pub fn no_guard(_: &Path) -> Result<(), String> {
    Ok(())
}

/// A partial file that removes itself unless committed.
struct Partial {
    path: PathBuf,
    committed: bool,
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The suffix of every partial file's name.
pub const PARTIAL_SUFFIX: &str = ".ponte-partial";

/// A fresh, unpredictable hidden sibling name for receiving `dest`.
fn partial_path(dest: &Path) -> PathBuf {
    use rand_core::Rng as _;
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut random = [0u8; 8];
    ponte_wire::os_rng().fill_bytes(&mut random);
    let tag: String = random.iter().map(|b| format!("{b:02x}")).collect();
    dest.with_file_name(format!(".{name}.{tag}{PARTIAL_SUFFIX}"))
}

/// Creates `path` exclusively (never through a symbolic link), readable only by its owner.
fn create_partial(path: &Path) -> std::io::Result<std::fs::File> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::open(path, flags, Mode::from_raw_mode(0o600))?;
    Ok(std::fs::File::from(fd))
}

/// The permissions a received file gets: the owner's read and write, execute if the sender's
/// file was executable by its owner — never anything for group or others, whatever the peer says.
fn received_mode(peer_mode: u32) -> u32 {
    0o600 | (peer_mode & 0o100)
}

/// Moves a verified partial file into place; without `replace`, never over an existing entry
/// (even one that appeared during the transfer).
fn commit(partial: &Path, target: &Path, replace: bool) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    if !replace {
        use rustix::fs::{CWD, RenameFlags};
        return Ok(rustix::fs::renameat_with(
            CWD,
            partial,
            CWD,
            target,
            RenameFlags::NOREPLACE,
        )?);
    }
    if !replace && std::fs::symlink_metadata(target).is_ok() {
        return Err(std::io::ErrorKind::AlreadyExists.into());
    }
    std::fs::rename(partial, target)
}

/// Fails if an existing component of `target` below `root` is a symbolic link, so that a tree
/// merged into an existing directory cannot be redirected elsewhere.
fn refuse_links(root: &Path, target: &Path, relative: &PeerText) -> Result<(), TransferError> {
    let Ok(below) = target.strip_prefix(root) else {
        return Err(TransferError::UnsafePath(relative.clone()));
    };
    let mut at = root.to_owned();
    for part in below.parent().into_iter().flat_map(Path::components) {
        at.push(part);
        match std::fs::symlink_metadata(&at) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(TransferError::UnsafePath(relative.clone()));
            }
            Ok(_) => {}
            Err(_) => break, // Not there yet: created by this transfer.
        }
    }
    Ok(())
}

/// The sender's next message, at most [`IDLE_TIMEOUT`] away.
async fn next_message(recv: &mut SecureRecv) -> Result<Transfer, TransferError> {
    match tokio::time::timeout(IDLE_TIMEOUT, recv.expect::<Transfer>()).await {
        Ok(message) => Ok(message?),
        Err(_) => Err(TransferError::Idle),
    }
}

/// Receives a transfer into `dest` and returns what arrived. Nothing is put in place before
/// the whole transfer stream arrived — its `Done` and the authenticated end of the stream
/// after it — so a stream cut anywhere, even after the last file, leaves nothing behind.
pub async fn receive_into(
    recv: &mut SecureRecv,
    dest: Destination<'_>,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<Totals, TransferError> {
    let announced = match next_message(recv).await? {
        Transfer::Total { files, bytes } => Totals { files, bytes },
        Transfer::Failed(reason) => return Err(TransferError::Remote(reason)),
        _ => return Err(TransferError::Protocol),
    };
    if let Some(limit) = dest.limit
        && (announced.files > limit.files || announced.bytes > limit.bytes)
    {
        return Err(TransferError::TooMuch("it announced more than allowed"));
    }
    progress(Progress::Started(announced));
    let mut into = Receiving::new(dest, announced);
    loop {
        match next_message(recv).await? {
            Transfer::Done => {
                if into.dest.kind == Some(EntryKind::Dir) {
                    into.root().await?; // An empty folder.
                }
                stream_end(recv).await?;
                into.staging.commit(into.dest.replace)?;
                if into.tree {
                    // A folder's files were not synced one by one (an fsync each made 10,000
                    // small files 20 times slower than one large file): the whole file system
                    // is, once, before anything says they are there.
                    sync_filesystem(into.dest.path).await?;
                }
                return Ok(into.received);
            }
            Transfer::Failed(reason) => return Err(TransferError::Remote(reason)),
            Transfer::Dir { path } if into.tree => into.dir(&path).await?,
            Transfer::File { path, size, mode } => {
                let target = into.file(&path, size).await?;
                let (bytes, partial) = receive_file(recv, &target, size, mode, !into.tree, progress).await?;
                into.received.bytes += bytes;
                into.staging.files.push((partial, target));
            }
            _ => return Err(TransferError::Protocol),
        }
    }
}

/// Makes everything written to the file system that holds `path` durable (`syncfs`), on a
/// blocking thread.
async fn sync_filesystem(path: &Path) -> Result<(), TransferError> {
    let at = path.to_owned();
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let dir = std::fs::File::open(&at)?;
        rustix::fs::syncfs(&dir)?;
        Ok(())
    })
    .await
    .map_err(|e| std::io::Error::other(e.to_string()))
    .and_then(|r| r)
    .map_err(io(path))
}

/// Only the end-of-stream record after `Done` says nobody cut the stream there.
async fn stream_end(recv: &mut SecureRecv) -> Result<(), TransferError> {
    match tokio::time::timeout(IDLE_TIMEOUT, recv.recv::<Transfer>()).await {
        Ok(Ok(None)) => Ok(()),
        Ok(Ok(Some(_))) => Err(TransferError::Protocol),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(TransferError::Idle),
    }
}

/// A transfer being received: what was announced, what arrived, and where it goes.
struct Receiving<'d> {
    dest: Destination<'d>,
    announced: Totals,
    received: Totals,
    dirs: u64,
    root_is_dir: bool,
    /// A single file may arrive (an entry without a path).
    single_file: bool,
    /// A folder may arrive (entries with paths).
    tree: bool,
    staging: Staging,
}

impl<'d> Receiving<'d> {
    fn new(dest: Destination<'d>, announced: Totals) -> Self {
        // A file stays a file and a folder a folder, as announced.
        let (single_file, tree) = match dest.kind {
            Some(EntryKind::File) => (true, false),
            Some(EntryKind::Dir) => (false, true),
            None => (true, true),
        };
        Receiving {
            dest,
            announced,
            received: Totals::default(),
            dirs: 0,
            root_is_dir: false,
            single_file,
            tree,
            staging: Staging::default(),
        }
    }

    /// Creates the destination folder, once.
    async fn root(&mut self) -> Result<(), TransferError> {
        if !self.root_is_dir {
            self.staging.root = create_root(&self.dest).await?;
            self.root_is_dir = true;
        }
        Ok(())
    }

    /// A folder of the tree.
    async fn dir(&mut self, path: &PeerText) -> Result<(), TransferError> {
        self.dirs += 1;
        if self.dirs > self.announced.files.saturating_add(MAX_EXTRA_DIRS) {
            return Err(TransferError::TooMuch("folders"));
        }
        self.root().await?;
        let target = safe_join(self.dest.path, path)?;
        refuse_links(self.dest.path, &target, path)?;
        guard(&self.dest, &target)?;
        // One folder per message (parents come first): the count bounds what is made.
        match tokio::fs::DirBuilder::new().mode(0o755).create(&target).await {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && self.dest.replace => {}
            Err(e) => return Err(io(&target)(e)),
            Ok(()) => self.staging.dirs.push(target),
        }
        Ok(())
    }

    /// Where an announced file goes, once it is known to fit what was announced and allowed.
    async fn file(&mut self, path: &PeerText, size: u64) -> Result<PathBuf, TransferError> {
        self.received.files += 1;
        if self.received.files > self.announced.files {
            return Err(TransferError::TooMuch("files"));
        }
        if size > self.announced.bytes - self.received.bytes {
            return Err(TransferError::TooMuch("bytes"));
        }
        let target = if path.is_empty() && self.single_file {
            if self.root_is_dir || self.received.files > 1 {
                return Err(TransferError::Protocol);
            }
            self.dest.path.to_owned()
        } else if !path.is_empty() && self.tree {
            self.root().await?;
            let target = safe_join(self.dest.path, path)?;
            refuse_links(self.dest.path, &target, path)?;
            target
        } else {
            return Err(TransferError::Protocol);
        };
        guard(&self.dest, &target)?;
        if !self.dest.replace && tokio::fs::symlink_metadata(&target).await.is_ok() {
            return Err(TransferError::Exists(target));
        }
        // Each file once: they are all put in place at the end.
        if !self.staging.targets.insert(target.clone()) {
            return Err(TransferError::Protocol);
        }
        Ok(target)
    }
}

fn guard(dest: &Destination<'_>, target: &Path) -> Result<(), TransferError> {
    (dest.guard)(target).map_err(|reason| TransferError::Refused {
        path: target.to_owned(),
        reason,
    })
}

/// What a transfer has put on disk so far: the verified files waiting in their partial files,
/// the folders it created, and its root folder if it created that. Unless every file was put
/// in place, all of it is removed again when this is dropped — a failed, cancelled or cut
/// transfer leaves nothing that looks complete.
#[derive(Default)]
struct Staging {
    files: Vec<(Partial, PathBuf)>,
    /// Where the files go, to refuse one that comes twice (a set: a folder may hold 10,000, and
    /// comparing each with all before was quadratic).
    targets: HashSet<PathBuf>,
    dirs: Vec<PathBuf>,
    root: Option<PathBuf>,
    kept: bool,
}

impl Staging {
    /// Moves every verified file into place (without `replace`, never over an entry that
    /// appeared meanwhile); an error says what could not be placed, and what already was.
    fn commit(&mut self, replace: bool) -> Result<(), TransferError> {
        let files = self.files.len();
        for (placed, (partial, target)) in self.files.iter_mut().enumerate() {
            if let Err(e) = commit(&partial.path, target, replace) {
                let error = match e.kind() {
                    std::io::ErrorKind::AlreadyExists => TransferError::Exists(target.clone()),
                    _ => io(target)(e),
                };
                // A folder this transfer created goes with everything in it (see `Drop`).
                if placed == 0 || self.root.is_some() {
                    return Err(error);
                }
                return Err(TransferError::PartlyPlaced {
                    placed,
                    files,
                    error: Box::new(error),
                });
            }
            partial.committed = true;
        }
        self.kept = true;
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        // Partial files remove themselves; then the folders, which only a file already
        // placed (in a folder that existed before) keeps.
        self.files.clear();
        for dir in self.dirs.iter().rev() {
            let _ = std::fs::remove_dir(dir);
        }
        if let Some(root) = &self.root {
            // Never follows a link: a link put in its place is removed, not its target.
            let _ = std::fs::remove_dir_all(root);
        }
    }
}

/// Creates (or, replacing, merges into) the destination folder; `Some` when it was created.
async fn create_root(dest: &Destination<'_>) -> Result<Option<PathBuf>, TransferError> {
    guard(dest, dest.path)?;
    match tokio::fs::symlink_metadata(dest.path).await {
        Ok(meta) if meta.is_dir() && dest.replace => Ok(None),
        Ok(_) => Err(TransferError::Exists(dest.path.to_owned())),
        Err(_) => {
            tokio::fs::DirBuilder::new()
                .mode(0o755)
                .create(dest.path)
                .await
                .map_err(io(dest.path))?;
            Ok(Some(dest.path.to_owned()))
        }
    }
}

/// Receives one file into a fresh partial file beside `target`; returns its size and the
/// partial file, verified (size and hash) and with its final mode, for [`Staging`] to place.
async fn receive_file(
    recv: &mut SecureRecv,
    target: &Path,
    size: u64,
    mode: u32,
    sync: bool,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<(u64, Partial), TransferError> {
    let partial = Partial {
        path: partial_path(target),
        committed: false,
    };
    let file = create_partial(&partial.path).map_err(io(&partial.path))?;
    // Hashing and writing run on a blocking thread while the next records arrive.
    let (chunks, mut next) = tokio::sync::mpsc::channel::<Vec<u8>>(8);
    let writer = tokio::task::spawn_blocking(move || -> std::io::Result<([u8; 32], std::fs::File)> {
        use std::io::Write;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        let mut hasher = Sha256::new();
        while let Some(chunk) = next.blocking_recv() {
            hasher.update(&chunk);
            out.write_all(&chunk)?;
        }
        let file = out.into_inner().map_err(|e| e.into_error())?;
        if sync {
            file.sync_all()?;
        }
        Ok((hasher.finalize().into(), file))
    });
    let mut received = 0u64;
    let outcome = loop {
        match next_message(recv).await {
            Ok(Transfer::Data(bytes)) => {
                received += bytes.len() as u64;
                if received > size {
                    break Err(TransferError::TooMuch("bytes in a file"));
                }
                let n = bytes.len() as u64;
                if chunks.send(bytes).await.is_err() {
                    break Ok(None); // The writer failed; its error is reported below.
                }
                progress(Progress::Advanced(n));
            }
            Ok(Transfer::FileEnd { sha256 }) => break Ok(Some(sha256)),
            Ok(Transfer::Failed(reason)) => break Err(TransferError::Remote(reason)),
            Ok(_) => break Err(TransferError::Protocol),
            Err(e) => break Err(e),
        }
    };
    drop(chunks);
    let written = writer
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))
        .and_then(|r| r)
        .map_err(io(&partial.path));
    let file = match (outcome?, written) {
        (Some(expected), Ok((actual, file))) if actual == expected && received == size => file,
        (_, Err(e)) => return Err(e),
        _ => return Err(TransferError::HashMismatch(target.to_owned())),
    };
    {
        use std::os::unix::fs::PermissionsExt;
        // On the open handle: the name could have been swapped since it was created.
        file.set_permissions(std::fs::Permissions::from_mode(received_mode(mode)))
            .map_err(io(&partial.path))?;
    }
    drop(file);
    Ok((received, partial))
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

    #[test]
    fn partial_names_are_hidden_unpredictable_siblings() {
        let a = partial_path(Path::new("/d/file.bin"));
        let b = partial_path(Path::new("/d/file.bin"));
        assert_ne!(a, b);
        assert_eq!(a.parent(), Some(Path::new("/d")));
        let name = a.file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with(".file.bin.") && name.ends_with(PARTIAL_SUFFIX),
            "{name}"
        );
    }

    #[test]
    fn received_files_are_private() {
        assert_eq!(received_mode(0o777), 0o700);
        assert_eq!(received_mode(0o666), 0o600);
        assert_eq!(received_mode(0o644), 0o600);
        assert_eq!(received_mode(0o4755), 0o700);
        assert_eq!(received_mode(0), 0o600);
    }

    #[cfg(unix)]
    #[test]
    fn a_planted_link_is_never_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let link = dir.path().join("planted");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        assert!(create_partial(&link).is_err(), "a link is not created through");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        // Committing without replace never lands on an existing entry, link or not.
        let partial = dir.path().join("p");
        std::fs::write(&partial, "new").unwrap();
        let err = commit(&partial, &link, false).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        // Links inside a destination tree refuse entries below them.
        std::fs::create_dir(dir.path().join("tree")).unwrap();
        std::os::unix::fs::symlink(dir.path(), dir.path().join("tree/out")).unwrap();
        let target = dir.path().join("tree/out/x");
        assert!(refuse_links(&dir.path().join("tree"), &target, &"out/x".into()).is_err());
        assert!(
            refuse_links(
                &dir.path().join("tree"),
                &dir.path().join("tree/new/x"),
                &"new/x".into()
            )
            .is_ok()
        );
    }

    /// A sender's messages on a fresh stream pair, and the receiver of what arrives.
    async fn transfer_to(
        dest: PathBuf,
        replace: bool,
    ) -> (
        crate::secure::SecureStream,
        tokio::task::JoinHandle<Result<Totals, TransferError>>,
        Vec<quinn::Endpoint>,
    ) {
        let (agent, viewer, server, client) = crate::secure::tests::pair().await;
        let mut sender = agent.open().await.unwrap();
        sender
            .send
            .send(&Transfer::Total { files: 1, bytes: 5 })
            .await
            .unwrap();
        let receiver = tokio::spawn(async move {
            let mut stream = viewer.accept().await.unwrap().open().await.unwrap();
            let destination = Destination {
                path: &dest,
                kind: None,
                replace,
                limit: None,
                guard: &no_guard,
            };
            receive_into(&mut stream.recv, destination, &mut |_| {}).await
        });
        (sender, receiver, vec![server, client])
    }

    /// Sends one verified five-byte file and the transfer's `Done`.
    async fn send_one_file(send: &mut SecureSend) {
        send.send(&Transfer::File {
            path: String::new().into(),
            size: 5,
            mode: 0o644,
        })
        .await
        .unwrap();
        send.send(&Transfer::Data(b"hello".to_vec())).await.unwrap();
        let sha256 = Sha256::digest(b"hello").into();
        send.send(&Transfer::FileEnd { sha256 }).await.unwrap();
        send.send(&Transfer::Done).await.unwrap();
    }

    /// Waits (at most 5 s) until a partial file is being written in `dir`: the receiver has
    /// opened the stream, so a reset now cuts a transfer under way.
    async fn receiving_in(dir: &Path) {
        for _ in 0..100 {
            let partial = std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().ends_with(PARTIAL_SUFFIX)));
            if partial {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("nothing is received in {}", dir.display());
    }

    /// A verified file is put in place only once the whole transfer stream arrived (its `Done`
    /// and its end-of-stream record): a stream cut after the last file leaves nothing.
    #[tokio::test]
    async fn files_are_put_in_place_only_when_the_transfer_stream_is_complete() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("file.txt");
        let (mut sender, receiver, _endpoints) = transfer_to(target.clone(), false).await;
        send_one_file(&mut sender.send).await;
        receiving_in(dir.path()).await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(!target.exists(), "in place before the end of the stream");
        assert!(!receiver.is_finished(), "done before the end of the stream");
        sender.send.reset();
        let outcome = receiver.await.unwrap();
        assert!(outcome.is_err(), "{outcome:?}");
        assert!(!target.exists(), "a cut transfer left its file in place");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "nothing is left"
        );

        let (mut sender, receiver, _endpoints) = transfer_to(target.clone(), false).await;
        send_one_file(&mut sender.send).await;
        sender.send.finish().await.unwrap();
        let totals = receiver.await.unwrap().unwrap();
        assert_eq!(totals, Totals { files: 1, bytes: 5 });
        assert_eq!(std::fs::read(&target).unwrap(), b"hello");
    }

    /// A sender that names the same file twice in a folder is refused, and nothing is left.
    #[tokio::test]
    async fn a_file_sent_twice_in_a_folder_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("tree");
        let (agent, viewer, _server, _client) = crate::secure::tests::pair().await;
        let mut sender = agent.open().await.unwrap();
        let into = dest.clone();
        let receiver = tokio::spawn(async move {
            let mut stream = viewer.accept().await.unwrap().open().await.unwrap();
            let destination = Destination {
                path: &into,
                kind: Some(EntryKind::Dir),
                replace: false,
                limit: None,
                guard: &no_guard,
            };
            receive_into(&mut stream.recv, destination, &mut |_| {}).await
        });
        let sha256: [u8; 32] = Sha256::digest(b"hello").into();
        let mut messages = vec![Transfer::Total { files: 2, bytes: 10 }];
        for _ in 0..2 {
            messages.push(Transfer::File {
                path: "a.txt".to_owned().into(),
                size: 5,
                mode: 0o644,
            });
            messages.push(Transfer::Data(b"hello".to_vec()));
            messages.push(Transfer::FileEnd { sha256 });
        }
        messages.push(Transfer::Done);
        for message in &messages {
            // The receiver may stop reading at the second one.
            let _ = sender.send.send(message).await;
        }
        let _ = sender.send.finish().await;
        let outcome = receiver.await.unwrap();
        assert!(matches!(outcome, Err(TransferError::Protocol)), "{outcome:?}");
        assert!(!dest.exists(), "a refused folder was left");
    }

    /// Merging into a folder that was there: a cut transfer takes the folders it made with it
    /// and leaves the folder as it was.
    #[tokio::test]
    async fn a_cut_merge_leaves_the_existing_folder_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("tree");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(root.join("kept.txt"), "mine").unwrap();
        let (mut sender, receiver, _endpoints) = transfer_to(root.clone(), true).await;
        sender
            .send
            .send(&Transfer::Dir { path: "sub".into() })
            .await
            .unwrap();
        let file = Transfer::File {
            path: "sub/new.txt".into(),
            size: 5,
            mode: 0o644,
        };
        sender.send.send(&file).await.unwrap();
        sender
            .send
            .send(&Transfer::Data(b"hello".to_vec()))
            .await
            .unwrap();
        let sha256 = Sha256::digest(b"hello").into();
        sender.send.send(&Transfer::FileEnd { sha256 }).await.unwrap();
        sender.send.send(&Transfer::Done).await.unwrap();
        receiving_in(&root.join("sub")).await;
        sender.send.reset();
        assert!(receiver.await.unwrap().is_err());
        let left: Vec<_> = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["kept.txt"]);
        assert_eq!(std::fs::read_to_string(root.join("kept.txt")).unwrap(), "mine");
    }

    /// A file swapped for a FIFO after it was measured is refused at once, not waited on.
    #[cfg(unix)]
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
