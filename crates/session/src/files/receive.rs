//! The receiving side: every message of the sender checked against its announcement and the
//! destination, and what passes handed to the transfer's [`Disk`] thread.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use ponte_e2e::app::{EntryKind, Transfer};
use ponte_wire::text::PeerText;

use super::disk::{Disk, Op};
use super::{IDLE_TIMEOUT, MAX_EXTRA_DIRS, Progress, Totals, TransferError, safe_join};
use crate::secure::SecureRecv;

pub use super::disk::PARTIAL_SUFFIX;

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

/// The sender's next message, at most [`IDLE_TIMEOUT`] away.
pub(super) async fn next_message(recv: &mut SecureRecv) -> Result<Transfer, TransferError> {
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
    let mut into = Receiving::new(dest, announced)?;
    match into.receive(recv, progress).await {
        Ok(()) => Ok(into.received),
        // The disk thread's error, if it has one, came first in the transfer's order.
        Err(e) => Err(into.disk.failure().unwrap_or(e)),
    }
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

/// The data of the file just begun, up to its end; returns its size.
async fn receive_file(
    recv: &mut SecureRecv,
    disk: &mut Disk,
    size: u64,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<u64, TransferError> {
    let mut received = 0u64;
    loop {
        match next_message(recv).await? {
            Transfer::Data(bytes) => {
                let n = bytes.len() as u64;
                received += n;
                if received > size {
                    return Err(TransferError::TooMuch("bytes in a file"));
                }
                disk.send(Op::Data(bytes)).await?;
                progress(Progress::Advanced(n));
            }
            Transfer::FileEnd { blake3 } => {
                disk.send(Op::End { blake3 }).await?;
                return Ok(received);
            }
            Transfer::Failed(reason) => return Err(TransferError::Remote(reason)),
            _ => return Err(TransferError::Protocol),
        }
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
    /// A single file arrived: the destination is that file.
    single_taken: bool,
    /// Where the files go, to refuse one that comes twice (a set: a folder may hold 10,000, and
    /// comparing each with all before was quadratic).
    targets: HashSet<PathBuf>,
    disk: Disk,
}

impl<'d> Receiving<'d> {
    fn new(dest: Destination<'d>, announced: Totals) -> Result<Self, TransferError> {
        // A file stays a file and a folder a folder, as announced.
        let (single_file, tree) = match dest.kind {
            Some(EntryKind::File) => (true, false),
            Some(EntryKind::Dir) => (false, true),
            None => (true, true),
        };
        let disk = Disk::start(dest.path.to_owned(), dest.replace, tree)?;
        Ok(Receiving {
            dest,
            announced,
            received: Totals::default(),
            dirs: 0,
            root_is_dir: false,
            single_file,
            tree,
            single_taken: false,
            targets: HashSet::new(),
            disk,
        })
    }

    /// The transfer's entries up to its end, then everything put in place.
    async fn receive(
        &mut self,
        recv: &mut SecureRecv,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<(), TransferError> {
        loop {
            match next_message(recv).await? {
                Transfer::Done => {
                    if self.dest.kind == Some(EntryKind::Dir) {
                        self.root().await?; // An empty folder.
                    }
                    // Written while the end of the stream is awaited.
                    self.disk.flush().await?;
                    stream_end(recv).await?;
                    return self.disk.finish().await;
                }
                Transfer::Failed(reason) => return Err(TransferError::Remote(reason)),
                Transfer::Dir { path } if self.tree => self.dir(path).await?,
                Transfer::File { path, size, mode } => {
                    self.file(path, size, mode).await?;
                    self.received.bytes += receive_file(recv, &mut self.disk, size, progress).await?;
                }
                _ => return Err(TransferError::Protocol),
            }
        }
    }

    fn guard(&self, target: &Path) -> Result<(), TransferError> {
        (self.dest.guard)(target).map_err(|reason| TransferError::Refused {
            path: target.to_owned(),
            reason,
        })
    }

    /// Creates (or, replacing, merges into) the destination folder, once; never after the
    /// destination was taken by a single file.
    async fn root(&mut self) -> Result<(), TransferError> {
        if self.single_taken {
            return Err(TransferError::Protocol);
        }
        if !self.root_is_dir {
            self.guard(self.dest.path)?;
            self.disk.send(Op::Root).await?;
            self.root_is_dir = true;
        }
        Ok(())
    }

    /// A folder of the tree.
    async fn dir(&mut self, relative: PeerText) -> Result<(), TransferError> {
        self.dirs += 1;
        if self.dirs > self.announced.files.saturating_add(MAX_EXTRA_DIRS) {
            return Err(TransferError::TooMuch("folders"));
        }
        self.root().await?;
        let target = safe_join(self.dest.path, &relative)?;
        self.guard(&target)?;
        // One folder per message (parents come first): the count bounds what is made.
        self.disk.send(Op::Dir { target, relative }).await
    }

    /// An announced file begins, once it is known to fit what was announced and allowed.
    async fn file(&mut self, relative: PeerText, size: u64, mode: u32) -> Result<(), TransferError> {
        self.received.files += 1;
        if self.received.files > self.announced.files {
            return Err(TransferError::TooMuch("files"));
        }
        if size > self.announced.bytes - self.received.bytes {
            return Err(TransferError::TooMuch("bytes"));
        }
        let (target, relative) = if relative.is_empty() && self.single_file {
            if self.root_is_dir || self.received.files > 1 {
                return Err(TransferError::Protocol);
            }
            self.single_taken = true;
            (self.dest.path.to_owned(), None)
        } else if !relative.is_empty() && self.tree {
            self.root().await?;
            (safe_join(self.dest.path, &relative)?, Some(relative))
        } else {
            return Err(TransferError::Protocol);
        };
        self.guard(&target)?;
        // Each file once: they are all put in place at the end.
        if !self.targets.insert(target.clone()) {
            return Err(TransferError::Protocol);
        }
        self.disk
            .send(Op::File {
                target,
                relative,
                size,
                mode,
            })
            .await
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::secure::SecureSend;

    /// A fresh stream pair: its sending end, and a task receiving into `dest` what arrives.
    async fn receiver(
        dest: PathBuf,
        kind: Option<EntryKind>,
        replace: bool,
    ) -> (
        crate::secure::SecureStream,
        tokio::task::JoinHandle<Result<Totals, TransferError>>,
        Vec<quinn::Endpoint>,
    ) {
        let (agent, viewer, server, client) = crate::secure::tests::pair().await;
        let sender = agent.open().await.unwrap();
        let receiver = tokio::spawn(async move {
            let mut stream = viewer.accept().await.unwrap().open().await.unwrap();
            let destination = Destination {
                path: &dest,
                kind,
                replace,
                limit: None,
                guard: &no_guard,
            };
            receive_into(&mut stream.recv, destination, &mut |_| {}).await
        });
        (sender, receiver, vec![server, client])
    }

    /// A transfer of one five-byte file, its announcement sent.
    async fn transfer_to(
        dest: PathBuf,
        replace: bool,
    ) -> (
        crate::secure::SecureStream,
        tokio::task::JoinHandle<Result<Totals, TransferError>>,
        Vec<quinn::Endpoint>,
    ) {
        let (mut sender, receiver, endpoints) = receiver(dest, None, replace).await;
        sender
            .send
            .send(&Transfer::Total { files: 1, bytes: 5 })
            .await
            .unwrap();
        (sender, receiver, endpoints)
    }

    /// Sends one verified five-byte file and the transfer's `Done`.
    async fn send_one_file(send: &mut SecureSend) {
        send_hello(send, b"hello").await;
    }

    /// Sends the five-byte file "hello" with the hash of `hashed`, and the transfer's `Done`.
    async fn send_hello(send: &mut SecureSend, hashed: &[u8]) {
        send.send(&Transfer::File {
            path: String::new().into(),
            size: 5,
            mode: 0o644,
        })
        .await
        .unwrap();
        send.send(&Transfer::Data(b"hello".to_vec())).await.unwrap();
        let blake3 = blake3::hash(hashed).into();
        send.send(&Transfer::FileEnd { blake3 }).await.unwrap();
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

    /// A file of several write-back stretches and a partial last chunk arrives byte for byte
    /// through the sender's reader and the receiver's disk thread.
    #[tokio::test]
    async fn a_large_file_arrives_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("source.bin");
        let size = 2 * super::super::disk::WRITE_BACK as usize + ponte_e2e::app::MAX_CHUNK / 2 + 3;
        let bytes: Vec<u8> = (0..size).map(|i| (i * 7 + i / 4099) as u8).collect();
        std::fs::write(&source, &bytes).unwrap();
        let target = dir.path().join("target.bin");
        let (mut sender, receiver, _endpoints) = receiver(target.clone(), None, false).await;
        let sent = crate::files::send_path(
            &mut sender.send,
            &source,
            crate::files::Hidden::Include,
            None,
            &mut |_| {},
        )
        .await
        .unwrap();
        sender.send.finish().await.unwrap();
        let received = receiver.await.unwrap().unwrap();
        assert_eq!(sent, received);
        assert_eq!(received.bytes, size as u64);
        assert!(std::fs::read(&target).unwrap() == bytes, "the bytes differ");
    }

    /// A file whose bytes do not match the hash the sender gives is refused, and nothing of
    /// it is left.
    #[tokio::test]
    async fn a_file_not_matching_its_hash_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("file.txt");
        let (mut sender, receiver, _endpoints) = transfer_to(target.clone(), false).await;
        send_hello(&mut sender.send, b"hellO").await;
        let _ = sender.send.finish().await;
        let outcome = receiver.await.unwrap();
        assert!(
            matches!(outcome, Err(TransferError::HashMismatch(_))),
            "{outcome:?}"
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "nothing is left"
        );
    }

    /// A new folder is filled under a hidden name and appears, whole, only at the end; cut
    /// before its end, nothing of it is left.
    #[tokio::test]
    async fn a_new_folder_appears_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("tree");
        let blake3: [u8; 32] = blake3::hash(b"hello").into();
        let mut messages = vec![
            Transfer::Total { files: 2, bytes: 10 },
            Transfer::Dir { path: "sub".into() },
        ];
        for path in ["a.txt", "sub/b.txt"] {
            messages.push(Transfer::File {
                path: path.into(),
                size: 5,
                mode: 0o644,
            });
            messages.push(Transfer::Data(b"hello".to_vec()));
            messages.push(Transfer::FileEnd { blake3 });
        }
        messages.push(Transfer::Done);
        for cut in [true, false] {
            let (mut sender, receiver, _endpoints) =
                receiver(dest.clone(), Some(EntryKind::Dir), false).await;
            sender.send.send_all(&messages).await.unwrap();
            receiving_in(dir.path()).await;
            assert!(!dest.exists(), "the folder is there before the end");
            if cut {
                sender.send.reset();
                assert!(receiver.await.unwrap().is_err());
                assert_eq!(
                    std::fs::read_dir(dir.path()).unwrap().count(),
                    0,
                    "nothing is left"
                );
            } else {
                sender.send.finish().await.unwrap();
                let totals = receiver.await.unwrap().unwrap();
                assert_eq!(totals, Totals { files: 2, bytes: 10 });
                assert_eq!(std::fs::read(dest.join("sub/b.txt")).unwrap(), b"hello");
                let names: Vec<_> = std::fs::read_dir(dir.path())
                    .unwrap()
                    .map(|e| e.unwrap().file_name())
                    .collect();
                assert_eq!(names, ["tree"], "only the folder, by its name");
            }
        }
    }

    /// Where a file or a folder may arrive, a sender that sends a single file and then a
    /// folder's entry is refused (the file was reported received, then lost), and nothing is
    /// left.
    #[tokio::test]
    async fn a_single_file_then_a_folder_entry_is_refused() {
        let blake3: [u8; 32] = blake3::hash(b"hello").into();
        for second in [
            Transfer::Dir { path: "d".into() },
            Transfer::File {
                path: "a".into(),
                size: 5,
                mode: 0o644,
            },
        ] {
            let dir = tempfile::tempdir().unwrap();
            let dest = dir.path().join("got");
            let (mut sender, receiver, _endpoints) = receiver(dest.clone(), None, false).await;
            let mut messages = vec![
                Transfer::Total { files: 2, bytes: 10 },
                Transfer::File {
                    path: "".into(),
                    size: 5,
                    mode: 0o644,
                },
                Transfer::Data(b"hello".to_vec()),
                Transfer::FileEnd { blake3 },
                second,
            ];
            if matches!(messages[4], Transfer::File { .. }) {
                messages.push(Transfer::Data(b"hello".to_vec()));
                messages.push(Transfer::FileEnd { blake3 });
            }
            messages.push(Transfer::Done);
            let _ = sender.send.send_all(&messages).await;
            let _ = sender.send.finish().await;
            let outcome = receiver.await.unwrap();
            assert!(matches!(outcome, Err(TransferError::Protocol)), "{outcome:?}");
            assert_eq!(
                std::fs::read_dir(dir.path()).unwrap().count(),
                0,
                "nothing is left"
            );
        }
    }

    /// A sender that names the same file twice in a folder is refused, and nothing is left.
    #[tokio::test]
    async fn a_file_sent_twice_in_a_folder_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("tree");
        let (mut sender, receiver, _endpoints) = receiver(dest.clone(), Some(EntryKind::Dir), false).await;
        let blake3: [u8; 32] = blake3::hash(b"hello").into();
        let mut messages = vec![Transfer::Total { files: 2, bytes: 10 }];
        for _ in 0..2 {
            messages.push(Transfer::File {
                path: "a.txt".to_owned().into(),
                size: 5,
                mode: 0o644,
            });
            messages.push(Transfer::Data(b"hello".to_vec()));
            messages.push(Transfer::FileEnd { blake3 });
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
        let blake3 = blake3::hash(b"hello").into();
        sender.send.send(&Transfer::FileEnd { blake3 }).await.unwrap();
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
}
