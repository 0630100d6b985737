//! A receiver's file system work, on one thread per transfer: folders made, every file
//! written through a fresh partial file, hashed, verified, and all put in place at the end —
//! or all of it removed again.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ponte_wire::text::PeerText;
use tokio::sync::{mpsc, oneshot};

use super::{TransferError, io};

/// Batches of operations the disk thread may have queued: 16 chunks of data are a few
/// milliseconds of a fast transfer, more than a scheduler's time slice on a busy machine, so
/// the network side rarely waits for the disk side (4 were about one).
const QUEUED: usize = 16;

/// A batch of operations is handed over once it holds this many bytes of data or this many
/// operations: one hand-off between threads for a run of small files, not three per file.
const BATCH_BYTES: usize = ponte_e2e::app::MAX_CHUNK;
const BATCH_OPS: usize = 64;

/// A large file's write-back to the disk is started after each stretch of this many bytes.
pub(super) const WRITE_BACK: u64 = 8 << 20;

/// The suffix of every partial file's name.
pub const PARTIAL_SUFFIX: &str = ".ponte-partial";

/// The bytes of a destination's name kept in its partial name.
const PARTIAL_NAME_MAX: usize = 200;

/// What the receiving side asks of its disk thread, in the order of the transfer.
pub(super) enum Op {
    /// Create the destination folder, or (replacing) merge into the one there.
    Root,
    /// Create a folder of the tree.
    Dir { target: PathBuf, relative: PeerText },
    /// A file begins (`relative` is `None` for a single-file transfer).
    File {
        target: PathBuf,
        relative: Option<PeerText>,
        size: u64,
        mode: u32,
    },
    /// Bytes of the current file.
    Data(Vec<u8>),
    /// The current file is complete: its hash must be this.
    End { blake3: [u8; 32] },
    /// Every file is here: put them all in place and make them durable.
    Commit,
}

/// The receiving side's handle on its disk thread. Dropped before [`Disk::finish`] (an
/// error, a cancelled transfer), it stops the thread and waits for it to remove what the
/// transfer wrote, so that nothing is left behind when the transfer returns.
pub(super) struct Disk {
    ops: Option<mpsc::Sender<Vec<Op>>>,
    batch: Vec<Op>,
    /// Bytes of data in `batch`.
    batched: usize,
    outcome: oneshot::Receiver<Result<(), TransferError>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Disk {
    /// Starts the thread for a transfer into `root`; `tree` when a folder may arrive.
    pub(super) fn start(root: PathBuf, replace: bool, tree: bool) -> Result<Disk, TransferError> {
        let (ops, queue) = mpsc::channel(QUEUED);
        let (report, outcome) = oneshot::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let at = root.clone();
        let writer = Writer {
            root,
            replace,
            tree,
            staging: Staging::default(),
            current: None,
        };
        let thread = std::thread::Builder::new()
            .name("ponte-receive".into())
            .spawn(move || {
                let _ = report.send(writer.run(queue, &stopped));
            })
            .map_err(io(&at))?;
        Ok(Disk {
            ops: Some(ops),
            batch: Vec::new(),
            batched: 0,
            outcome,
            stop,
            thread: Some(thread),
        })
    }

    /// The error that stopped the thread, if it stopped on one.
    pub(super) fn failure(&mut self) -> Option<TransferError> {
        self.outcome.try_recv().ok()?.err()
    }

    /// Queues an operation; an error is the one that stopped the thread (perhaps on an
    /// operation queued before).
    pub(super) async fn send(&mut self, op: Op) -> Result<(), TransferError> {
        if let Op::Data(bytes) = &op {
            self.batched += bytes.len();
        }
        let last = matches!(op, Op::Commit);
        self.batch.push(op);
        if last || self.batched >= BATCH_BYTES || self.batch.len() >= BATCH_OPS {
            self.flush().await?;
        }
        Ok(())
    }

    /// Hands over what is batched.
    pub(super) async fn flush(&mut self) -> Result<(), TransferError> {
        self.batched = 0;
        let Some(ops) = &self.ops else {
            return Err(TransferError::Protocol);
        };
        if ops.send(std::mem::take(&mut self.batch)).await.is_ok() {
            return Ok(());
        }
        self.ops = None;
        Err(match (&mut self.outcome).await {
            Ok(Err(e)) => e,
            _ => no_thread(),
        })
    }

    /// Every file is here: puts them all in place and makes them durable.
    pub(super) async fn finish(&mut self) -> Result<(), TransferError> {
        self.send(Op::Commit).await?;
        self.ops = None;
        (&mut self.outcome).await.unwrap_or_else(|_| Err(no_thread()))
    }
}

fn no_thread() -> TransferError {
    TransferError::Io {
        path: PathBuf::new(),
        error: std::io::Error::other("the receiving thread is gone"),
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.ops = None;
        if let Some(thread) = self.thread.take() {
            // At most the operation under way, then the clean-up.
            let _ = thread.join();
        }
    }
}

/// The disk thread's state: where the transfer goes, what it staged, the file being written.
struct Writer {
    root: PathBuf,
    replace: bool,
    /// A folder may arrive: its files are not synced one by one, the file system is once.
    tree: bool,
    staging: Staging,
    current: Option<Writing>,
}

/// A file being written.
struct Writing {
    /// Where it is written.
    path: PathBuf,
    /// Its partial file, when it does not go into a new folder.
    partial: Option<Partial>,
    file: std::fs::File,
    target: PathBuf,
    hasher: blake3::Hasher,
    size: u64,
    written: u64,
    mode: u32,
}

impl Writer {
    /// Applies the queued operations up to the commit. On the first error, or given up
    /// before the commit (stopped, the queue closed), what was staged is removed.
    fn run(mut self, mut queue: mpsc::Receiver<Vec<Op>>, stop: &AtomicBool) -> Result<(), TransferError> {
        while let Some(batch) = queue.blocking_recv() {
            for op in batch {
                if stop.load(Ordering::Relaxed) {
                    return Err(no_thread());
                }
                match op {
                    Op::Commit => return self.commit(),
                    op => self.apply(op)?,
                }
            }
        }
        Err(no_thread())
    }

    fn commit(&mut self) -> Result<(), TransferError> {
        if self.current.is_some() {
            return Err(TransferError::Protocol);
        }
        self.staging.commit(self.replace)?;
        if self.tree {
            // A folder's files were not synced one by one (an fsync each made 10,000 small
            // files 20 times slower than one large file): the whole file system is, once,
            // before anything says they are there.
            // What was just put in place (a folder, or a file), never through a link and
            // never waiting: a FIFO swapped in its place cannot hold the thread.
            use rustix::fs::{Mode, OFlags};
            let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
            let placed =
                rustix::fs::open(&self.root, flags, Mode::empty()).map_err(|e| io(&self.root)(e.into()))?;
            rustix::fs::syncfs(&placed).map_err(|e| io(&self.root)(e.into()))?;
        }
        Ok(())
    }

    fn apply(&mut self, op: Op) -> Result<(), TransferError> {
        match op {
            Op::Root => self.create_root(),
            Op::Dir { target, relative } => {
                let (base, at) = self.staging.place(&self.root, &target);
                refuse_links(base, &at, &relative)?;
                use std::os::unix::fs::DirBuilderExt;
                match std::fs::DirBuilder::new().mode(0o755).create(&at) {
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && self.replace => {}
                    Err(e) => return Err(io(&target)(e)),
                    Ok(()) => self.staging.dirs.push(at),
                }
                Ok(())
            }
            Op::File {
                target,
                relative,
                size,
                mode,
            } => {
                if self.current.is_some() {
                    return Err(TransferError::Protocol);
                }
                let (base, at) = self.staging.place(&self.root, &target);
                if let Some(relative) = &relative {
                    refuse_links(base, &at, relative)?;
                }
                let (path, partial) = if self.staging.folder.is_some() {
                    // Under its own name: nothing there yet looks complete.
                    (at, None)
                } else {
                    if !self.replace && std::fs::symlink_metadata(&target).is_ok() {
                        return Err(TransferError::Exists(target));
                    }
                    let partial = Partial {
                        path: partial_path(&target),
                        committed: false,
                    };
                    (partial.path.clone(), Some(partial))
                };
                let file = create_partial(&path).map_err(|e| match e.kind() {
                    std::io::ErrorKind::AlreadyExists => TransferError::Exists(target.clone()),
                    _ => io(&path)(e),
                })?;
                self.current = Some(Writing {
                    path,
                    partial,
                    file,
                    target,
                    hasher: blake3::Hasher::new(),
                    size,
                    written: 0,
                    mode,
                });
                Ok(())
            }
            Op::Data(bytes) => {
                let writing = self.current.as_mut().ok_or(TransferError::Protocol)?;
                writing.hasher.update(&bytes);
                let before = writing.written;
                writing.written += bytes.len() as u64;
                writing.file.write_all(&bytes).map_err(io(&writing.path))?;
                if before / WRITE_BACK != writing.written / WRITE_BACK {
                    // Start writing the last stretch to the disk now, so the sync before the
                    // file is reported holds up little (a 1 GiB file would otherwise wait for
                    // its whole write-back there, on an idle CPU). On Linux, DONTNEED starts
                    // the write-back of the stretch's dirty pages and returns without waiting
                    // for it to finish (it blocks only while the disk's queue is full); pages
                    // still being written stay cached. Its outcome changes nothing we rely on:
                    // the sync before the file is reported is what makes it durable.
                    let from = (writing.written / WRITE_BACK - 1) * WRITE_BACK;
                    let _ = rustix::fs::fadvise(
                        &writing.file,
                        from,
                        std::num::NonZeroU64::new(WRITE_BACK),
                        rustix::fs::Advice::DontNeed,
                    );
                }
                Ok(())
            }
            // `run` commits; nothing else may.
            Op::Commit => Err(TransferError::Protocol),
            Op::End { blake3 } => {
                let writing = self.current.take().ok_or(TransferError::Protocol)?;
                if writing.written != writing.size || writing.hasher.finalize() != blake3 {
                    return Err(TransferError::HashMismatch(writing.target));
                }
                let at = &writing.path;
                if !self.tree {
                    writing.file.sync_all().map_err(io(at))?;
                }
                use std::os::unix::fs::PermissionsExt;
                // On the open handle: the name could have been swapped since it was created.
                let mode = std::fs::Permissions::from_mode(received_mode(writing.mode));
                writing.file.set_permissions(mode).map_err(io(at))?;
                if let Some(partial) = writing.partial {
                    self.staging.files.push((partial, writing.target));
                }
                Ok(())
            }
        }
    }

    /// Merges into the destination folder (replacing), or begins a new one under a hidden
    /// name, renamed at the end: one rename for the whole tree, not one per file.
    fn create_root(&mut self) -> Result<(), TransferError> {
        match std::fs::symlink_metadata(&self.root) {
            Ok(meta) if meta.is_dir() && self.replace => Ok(()),
            Ok(_) => Err(TransferError::Exists(self.root.clone())),
            Err(_) => {
                use std::os::unix::fs::DirBuilderExt;
                let hidden = partial_path(&self.root);
                std::fs::DirBuilder::new()
                    .mode(0o755)
                    .create(&hidden)
                    .map_err(io(&hidden))?;
                self.staging.folder = Some((hidden, self.root.clone()));
                Ok(())
            }
        }
    }
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

/// A fresh, unpredictable hidden sibling name for receiving `dest`.
fn partial_path(dest: &Path) -> PathBuf {
    use rand_core::Rng as _;
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // The partial name adds 31 bytes: a long name is shortened so that it still fits the
    // file system's 255.
    let name: String = name
        .char_indices()
        .take_while(|(i, c)| i + c.len_utf8() <= PARTIAL_NAME_MAX)
        .map(|(_, c)| c)
        .collect();
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

/// What a transfer has put on disk so far: a new folder being filled under a hidden name, or
/// the verified files waiting in their partial files and the folders it created in one that
/// was there. Unless everything was put in place, all of it is removed again when this is
/// dropped — a failed, cancelled or cut transfer leaves nothing that looks complete.
#[derive(Default)]
struct Staging {
    files: Vec<(Partial, PathBuf)>,
    dirs: Vec<PathBuf>,
    /// A new folder: its hidden name while it is filled, and its name.
    folder: Option<(PathBuf, PathBuf)>,
    kept: bool,
}

impl Staging {
    /// Where an entry whose destination is `target` (below `root`) is made now, and the folder
    /// it is made in: the hidden one while a new folder is filled.
    fn place<'a>(&'a self, root: &'a Path, target: &Path) -> (&'a Path, PathBuf) {
        match &self.folder {
            Some((hidden, _)) => {
                let below = target.strip_prefix(root).unwrap_or(target);
                (hidden, hidden.join(below))
            }
            None => (root, target.to_owned()),
        }
    }

    /// Puts a new folder in place by its name (never over an entry that appeared meanwhile),
    /// or moves every verified file into place (without `replace`, never over an entry that
    /// appeared meanwhile); an error says what could not be placed, and what already was.
    fn commit(&mut self, replace: bool) -> Result<(), TransferError> {
        if let Some((hidden, name)) = &self.folder {
            if !self.files.is_empty() {
                // Every file of a new folder is in it already.
                return Err(TransferError::Protocol);
            }
            commit(hidden, name, false).map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => TransferError::Exists(name.clone()),
                _ => io(name)(e),
            })?;
            self.kept = true;
            return Ok(());
        }
        let files = self.files.len();
        for (placed, (partial, target)) in self.files.iter_mut().enumerate() {
            if let Err(e) = commit(&partial.path, target, replace) {
                let error = match e.kind() {
                    std::io::ErrorKind::AlreadyExists => TransferError::Exists(target.clone()),
                    _ => io(target)(e),
                };
                if placed == 0 {
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
        if let Some((hidden, _)) = &self.folder {
            // Never follows a link: a link put in its place is removed, not its target.
            let _ = std::fs::remove_dir_all(hidden);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn a_long_name_still_has_a_partial_name() {
        for name in ["é".repeat(127), "x".repeat(255)] {
            let partial = partial_path(&Path::new("/d").join(&name));
            let partial = partial.file_name().unwrap().to_str().unwrap();
            assert!(partial.len() <= 255, "{} bytes", partial.len());
            assert!(partial.starts_with(&format!(".{}", &name[..100])), "{partial}");
        }
    }

    #[test]
    fn received_files_are_private() {
        assert_eq!(received_mode(0o777), 0o700);
        assert_eq!(received_mode(0o666), 0o600);
        assert_eq!(received_mode(0o644), 0o600);
        assert_eq!(received_mode(0o4755), 0o700);
        assert_eq!(received_mode(0), 0o600);
    }

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
}
