//! File and directory transfer over a sealed stream, the same code for both directions.
//!
//! The sender walks the source and streams [`Transfer`] entries; every file ends with its
//! SHA-256. The receiver writes each file to a hidden partial file beside its destination and
//! renames it into place only after the hash matched, so a failed or cancelled transfer never
//! leaves a file that looks complete. Entry paths are relative and checked: nothing a peer
//! sends can write outside the destination.

use std::path::{Component, Path, PathBuf};

use ponte_protocol::app::{EntryKind, MAX_CHUNK, MAX_PATH, Transfer};
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
    #[error("{path}: {error}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// What happened.
        error: std::io::Error,
    },
    /// The peer sent a path that would leave the destination (or is otherwise unusable).
    #[error("unsafe path from the other side: {0:?}")]
    UnsafePath(String),
    /// The received bytes do not match the sender's hash.
    #[error("{0}: integrity check failed (SHA-256 mismatch); the partial file was removed")]
    HashMismatch(PathBuf),
    /// The sender reported a failure.
    #[error("the other side failed: {0}")]
    Remote(String),
    /// The sender broke the entry sequence.
    #[error("unexpected message in the transfer")]
    Protocol,
    /// The destination exists and overwriting was not allowed.
    #[error("{0} already exists (not overwritten)")]
    Exists(PathBuf),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TransferError + '_ {
    move |error| TransferError::Io {
        path: path.to_owned(),
        error,
    }
}

/// Joins a peer-supplied relative path to `root`, refusing anything that could escape it:
/// absolute paths, `..`, drive prefixes, empty or over-long paths and NUL bytes.
pub fn safe_join(root: &Path, relative: &str) -> Result<PathBuf, TransferError> {
    let unsafe_path = || TransferError::UnsafePath(relative.chars().take(200).collect());
    if relative.is_empty() || relative.len() > MAX_PATH || relative.contains('\0') || relative.contains('\\')
    {
        return Err(unsafe_path());
    }
    let mut out = root.to_owned();
    for component in Path::new(relative).components() {
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

/// The kind and total size of what is at `path` (symbolic links are not followed).
pub async fn measure(path: &Path) -> Result<(EntryKind, u64), TransferError> {
    let meta = tokio::fs::symlink_metadata(path).await.map_err(io(path))?;
    if meta.is_dir() {
        let mut total = 0;
        let mut stack = vec![path.to_owned()];
        while let Some(dir) = stack.pop() {
            let mut entries = tokio::fs::read_dir(&dir).await.map_err(io(&dir))?;
            while let Some(entry) = entries.next_entry().await.map_err(io(&dir))? {
                let meta = entry.metadata().await.map_err(io(&entry.path()))?;
                if meta.is_dir() {
                    stack.push(entry.path());
                } else if meta.is_file() {
                    total += meta.len();
                }
            }
        }
        Ok((EntryKind::Dir, total))
    } else if meta.is_file() {
        Ok((EntryKind::File, meta.len()))
    } else {
        Err(TransferError::Io {
            path: path.to_owned(),
            error: std::io::Error::other("not a regular file or directory"),
        })
    }
}

#[cfg(unix)]
fn mode_of(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o777
}

#[cfg(not(unix))]
fn mode_of(_: &std::fs::Metadata) -> u32 {
    0o644
}

async fn send_file(
    send: &mut SecureSend,
    path: &Path,
    relative: String,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<(), TransferError> {
    let meta = tokio::fs::metadata(path).await.map_err(io(path))?;
    send.send(&Transfer::File {
        path: relative,
        size: meta.len(),
        mode: mode_of(&meta),
    })
    .await?;
    // Reading and hashing run on a blocking thread, a few chunks ahead of sealing and sending.
    let (chunks, mut next) = tokio::sync::mpsc::channel::<Vec<u8>>(8);
    let source = path.to_owned();
    let reader = tokio::task::spawn_blocking(move || -> std::io::Result<[u8; 32]> {
        use std::io::Read;
        let mut file = std::fs::File::open(&source)?;
        let mut hasher = Sha256::new();
        loop {
            let mut chunk = vec![0u8; MAX_CHUNK];
            let mut filled = 0;
            while filled < chunk.len() {
                match file.read(&mut chunk[filled..])? {
                    0 => break,
                    n => filled += n,
                }
            }
            if filled == 0 {
                return Ok(hasher.finalize().into());
            }
            chunk.truncate(filled);
            hasher.update(&chunk);
            if chunks.blocking_send(chunk).is_err() {
                return Err(std::io::Error::other("transfer abandoned"));
            }
        }
    });
    while let Some(chunk) = next.recv().await {
        let n = chunk.len() as u64;
        send.send(&Transfer::Data(chunk)).await?;
        progress(n);
    }
    let sha256 = reader
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))
        .and_then(|r| r)
        .map_err(io(path))?;
    send.send(&Transfer::FileEnd { sha256 }).await?;
    Ok(())
}

/// Streams the file or directory at `source`, then `Done`. `progress` gets byte counts.
/// On a local error the receiver is told with `Failed` before the error is returned.
pub async fn send_path(
    send: &mut SecureSend,
    source: &Path,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<(), TransferError> {
    let result = send_entries(send, source, progress).await;
    if let Err(TransferError::Io { path, error }) = &result {
        let _ = send
            .send(&Transfer::Failed(format!("{}: {error}", path.display())))
            .await;
    }
    result?;
    send.send(&Transfer::Done).await?;
    Ok(())
}

async fn send_entries(
    send: &mut SecureSend,
    source: &Path,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<(), TransferError> {
    let meta = tokio::fs::symlink_metadata(source).await.map_err(io(source))?;
    if !meta.is_dir() {
        return send_file(send, source, String::new(), progress).await;
    }
    let mut stack = vec![(source.to_owned(), String::new())];
    while let Some((dir, relative)) = stack.pop() {
        if !relative.is_empty() {
            send.send(&Transfer::Dir {
                path: relative.clone(),
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

fn partial_path(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dest.with_file_name(format!(".{name}.ponte-partial"))
}

/// Receives a transfer into `dest` (a file path for a single file, a directory for a tree)
/// and returns the bytes received. Existing files are replaced only with `overwrite`.
pub async fn receive_into(
    recv: &mut SecureRecv,
    dest: &Path,
    overwrite: bool,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<u64, TransferError> {
    let mut total = 0u64;
    let mut root_is_dir = false;
    loop {
        match recv.expect::<Transfer>().await? {
            Transfer::Done => return Ok(total),
            Transfer::Failed(reason) => return Err(TransferError::Remote(reason)),
            Transfer::Dir { path } => {
                if !root_is_dir {
                    create_root(dest, overwrite).await?;
                    root_is_dir = true;
                }
                let target = safe_join(dest, &path)?;
                tokio::fs::create_dir_all(&target).await.map_err(io(&target))?;
            }
            Transfer::File { path, size, mode } => {
                let target = if path.is_empty() {
                    dest.to_owned()
                } else {
                    if !root_is_dir {
                        create_root(dest, overwrite).await?;
                        root_is_dir = true;
                    }
                    safe_join(dest, &path)?
                };
                if !overwrite && tokio::fs::symlink_metadata(&target).await.is_ok() {
                    return Err(TransferError::Exists(target));
                }
                total += receive_file(recv, &target, size, mode, progress).await?;
            }
            _ => return Err(TransferError::Protocol),
        }
    }
}

async fn create_root(dest: &Path, overwrite: bool) -> Result<(), TransferError> {
    match tokio::fs::symlink_metadata(dest).await {
        Ok(meta) if meta.is_dir() && overwrite => Ok(()),
        Ok(_) => Err(TransferError::Exists(dest.to_owned())),
        Err(_) => tokio::fs::create_dir_all(dest).await.map_err(io(dest)),
    }
}

async fn receive_file(
    recv: &mut SecureRecv,
    target: &Path,
    size: u64,
    mode: u32,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<u64, TransferError> {
    if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(parent).await.map_err(io(parent))?;
    }
    let mut partial = Partial {
        path: partial_path(target),
        committed: false,
    };
    // Hashing and writing run on a blocking thread while the next records arrive.
    let (chunks, mut next) = tokio::sync::mpsc::channel::<Vec<u8>>(8);
    let partial_file = partial.path.clone();
    let writer = tokio::task::spawn_blocking(move || -> std::io::Result<[u8; 32]> {
        use std::io::Write;
        let mut file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&partial_file)?);
        let mut hasher = Sha256::new();
        while let Some(chunk) = next.blocking_recv() {
            hasher.update(&chunk);
            file.write_all(&chunk)?;
        }
        file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        Ok(hasher.finalize().into())
    });
    let mut received = 0u64;
    let outcome = loop {
        match recv.expect::<Transfer>().await {
            Ok(Transfer::Data(bytes)) => {
                received += bytes.len() as u64;
                if received > size {
                    break Err(TransferError::Protocol);
                }
                let n = bytes.len() as u64;
                if chunks.send(bytes).await.is_err() {
                    break Ok(None); // The writer failed; its error is reported below.
                }
                progress(n);
            }
            Ok(Transfer::FileEnd { sha256 }) => break Ok(Some(sha256)),
            Ok(Transfer::Failed(reason)) => break Err(TransferError::Remote(reason)),
            Ok(_) => break Err(TransferError::Protocol),
            Err(e) => break Err(e.into()),
        }
    };
    drop(chunks);
    let written = writer
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))
        .and_then(|r| r)
        .map_err(io(&partial.path));
    match (outcome?, written) {
        (Some(expected), Ok(actual)) if actual == expected && received == size => {}
        (_, Err(e)) => return Err(e),
        _ => return Err(TransferError::HashMismatch(target.to_owned())),
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let perms = std::fs::Permissions::from_mode(mode & 0o777 | 0o600);
        tokio::fs::set_permissions(&partial.path, perms)
            .await
            .map_err(io(&partial.path))?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    tokio::fs::rename(&partial.path, target)
        .await
        .map_err(io(target))?;
    partial.committed = true;
    Ok(received)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_join_refuses_escapes() {
        let root = Path::new("/dest");
        assert_eq!(safe_join(root, "a/b.txt").unwrap(), Path::new("/dest/a/b.txt"));
        assert_eq!(safe_join(root, "./a").unwrap(), Path::new("/dest/a"));
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
            assert!(safe_join(root, bad).is_err(), "{bad:?} accepted");
        }
        assert!(safe_join(root, &"a/".repeat(3000)).is_err());
    }

    #[test]
    fn partial_names_are_hidden_siblings() {
        assert_eq!(
            partial_path(Path::new("/d/file.bin")),
            Path::new("/d/.file.bin.ponte-partial")
        );
    }
}
