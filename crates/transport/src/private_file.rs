//! Files only their owner may read (a customer's opt-ins and session logs, an assistant's
//! keys and address book), in folders only their owner may open: replaced atomically so a
//! crash never leaves half a file, created once, or appended to.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

/// The folder of `path`, created 0700 if missing.
fn folder(path: &Path) -> std::io::Result<&Path> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    Ok(dir)
}

/// Replaces `path` with `bytes`: the folder is created 0700 if missing, the file is written
/// 0600 beside it, synced, then renamed over the old one.
pub fn replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = folder(path)?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let partial = dir.join(format!(".{name}.{}.partial", std::process::id()));
    let _ = std::fs::remove_file(&partial);
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)?;
    out.write_all(bytes).and_then(|()| out.sync_all())?;
    std::fs::rename(&partial, path)
}

/// Writes `bytes` to `path`, which must not exist yet (the folder is created 0700 if missing,
/// the file 0600).
pub fn create_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    folder(path)?;
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    out.write_all(bytes)
}

/// Opens `path` for appending, creating it (and its folder, 0700) if missing; a link is not
/// followed, and a file that exists already is made private (0600) too.
pub fn append(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::PermissionsExt;
    folder(path)?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)?;
    // An existing file keeps its mode on open.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(file)
}

/// Longest wait for another change of the same file to finish.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// An exclusive lock on changing `path` (on a lock file beside it: the file itself is
/// replaced by renaming), held until dropped. Whoever holds it only loads and saves a small
/// file: waiting longer than [`LOCK_WAIT`] means something is wrong there, and is an error.
/// Blocks: async callers take it on a blocking thread.
pub struct Lock(#[allow(dead_code)] std::fs::File);

impl Lock {
    /// Takes the lock for changing `path`, creating its folder (0700) if missing.
    pub fn acquire(path: &Path) -> std::io::Result<Lock> {
        let dir = folder(path)?;
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(dir.join(format!(".{name}.lock")))?;
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        loop {
            match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => return Ok(Lock(file)),
                Err(rustix::io::Errno::WOULDBLOCK) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn replaced_whole_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/file.json");
        replace(&path, b"one").unwrap();
        replace(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let mode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1,
            "no partial left"
        );
    }
}
