//! Ponte's own files — the program, its configuration, the organisation keys it trusts, the
//! customer's Ponte settings and opt-ins — as they were when the assistant's access began.
//!
//! With the terminal the assistant runs as the customer and could change any of them (trust
//! another organisation, add an opt-in of its own, replace the program). The agent cannot
//! prevent that, but the assistant cannot hide it either: every write, rename or new file
//! moves a file's status-change time (ctime), which no program without root can set back, and
//! a new file changes its folder's. When the session ends the customer is told what changed,
//! and nothing that outlives the session is asked for.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

/// How a file looked: its inode, size and status-change time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    ino: u64,
    len: u64,
    ctime: (i64, i64),
}

fn stamp(path: &Path) -> Option<Stamp> {
    // The link itself: pointing it elsewhere is a change too.
    let meta = std::fs::symlink_metadata(path).ok()?;
    Some(Stamp {
        ino: meta.ino(),
        len: meta.len(),
        ctime: (meta.ctime(), meta.ctime_nsec()),
    })
}

/// Ponte's own files as they were.
#[derive(Debug)]
pub struct OwnFiles {
    seen: Vec<(PathBuf, Option<Stamp>)>,
}

impl OwnFiles {
    /// Looks at `paths` now: files, and folders with the entries directly in them.
    pub fn snapshot(paths: impl IntoIterator<Item = PathBuf>) -> OwnFiles {
        let mut seen = Vec::new();
        for path in paths {
            if let Ok(entries) = std::fs::read_dir(&path) {
                seen.extend(entries.flatten().map(|e| e.path()).map(|p| {
                    let s = stamp(&p);
                    (p, s)
                }));
            }
            let s = stamp(&path);
            seen.push((path, s));
        }
        OwnFiles { seen }
    }

    /// Those that are not as they were (changed, replaced, created or removed since; a new
    /// file in a watched folder shows as a change of the folder).
    pub fn changed(&self) -> Vec<&Path> {
        self.seen
            .iter()
            .filter(|(path, was)| stamp(path) != *was)
            .map(|(path, _)| path.as_path())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_of_any_kind_is_seen_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let settings = dir.path().join("ponte");
        std::fs::create_dir(&settings).unwrap();
        std::fs::write(settings.join("trusted.json"), "{}").unwrap();
        let key = dir.path().join("acme.pub.pem");
        std::fs::write(&key, "key").unwrap();
        let toml = dir.path().join("ponte-agent.toml");
        let watched = || OwnFiles::snapshot([settings.clone(), key.clone(), toml.clone()]);

        let files = watched();
        assert!(files.changed().is_empty(), "{:?}", files.changed());

        // Rewritten with the same length and its modification time set back: still seen.
        let before = std::fs::metadata(&key).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&key, "KEY").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&key)
            .unwrap()
            .set_modified(before)
            .unwrap();
        assert_eq!(files.changed(), [key.as_path()]);

        // A file that was not there, one added to the settings folder.
        let files = watched();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&toml, "trust-org = []").unwrap();
        std::fs::write(settings.join("evil.pub.pem"), "key").unwrap();
        assert_eq!(files.changed(), [settings.as_path(), toml.as_path()]);
    }
}
