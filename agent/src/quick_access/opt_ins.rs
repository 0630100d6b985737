//! The customer's quick-access opt-ins: which verified assistants (or organisations) may
//! reconnect without a code, until when, and the device key they reconnect to.
//!
//! Kept only on this machine, in one file readable by the user alone
//! (`<config dir>/ponte/trusted.json` — the name it had before, so existing opt-ins stay —
//! mode 0600 in a 0700 folder), listed and revoked with `ponte-agent quick-access list` /
//! `remove N`. A file that others could read or change is refused: whoever can write it could let themselves in. When the last opt-in goes, the device key
//! goes with it, so a stolen copy of an old key stops being worth anything to the thief once
//! assistants are given a new one.

use std::io::Read as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use ponte_e2e::app::Grants;
use ponte_e2e::device_key::DeviceKey;
use ponte_e2e::identity::PeerIdentity;
use ponte_e2e::key_handshake::{Admission, Admits};
use ponte_wire::device::DevicePublic;
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};

/// Days an opt-in lasts unless the customer chooses otherwise.
pub const DEFAULT_DAYS: u32 = 90;
/// The longest an opt-in may last.
pub const MAX_DAYS: u32 = 365;
/// Most opt-ins one file holds: bounds the file and the handshake's work.
pub const MAX_ENTRIES: usize = 64;
/// Largest opt-ins file read.
const MAX_FILE: u64 = 256 * 1024;
const DAY: u64 = 86_400;

/// What can go wrong with the opt-ins file.
#[derive(Debug, thiserror::Error)]
pub enum OptInsError {
    /// Reading or writing failed.
    #[error("{path}: {error}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What failed (part of the message, not a `source()`: each cause is said once).
        error: std::io::Error,
    },
    /// The file is not ours to trust: others may read or write it.
    #[error("{0}: readable or writable by other users (must be 0600); quick access is off until it is fixed")]
    Permissions(PathBuf),
    /// The file does not parse.
    #[error("{0}: not a valid opt-ins file")]
    Malformed(PathBuf),
    /// Quick access is only for assistants a trusted organisation vouches for.
    #[error("quick access is only offered to verified assistants")]
    Unverified,
    /// The file holds as many opt-ins as it may.
    #[error("too many quick-access entries (at most {MAX_ENTRIES}); remove one first")]
    Full,
    /// No entry has that number.
    #[error("no entry number {0}")]
    NoSuchEntry(usize),
}

/// Whom an opt-in is for, as the customer chose at the end of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Only the assistant who helped.
    Assistant,
    /// Any verified assistant of that assistant's organisation.
    Organisation,
}

/// One opt-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Whom it admits.
    pub admits: Admits,
    /// The assistant's name from the certificate at opt-in (peer text: show it inert).
    pub name: String,
    /// The organisation's name at opt-in, as the customer's trust names its key (opt-ins
    /// stored by older agents: the certificate's text). Shown inert.
    pub organisation: String,
    /// When the customer opted in, seconds since the Unix epoch.
    pub created: u64,
    /// When it ends, seconds since the Unix epoch.
    pub not_after: u64,
    /// The permissions granted in that session: pre-selected on the consent screen next time.
    pub grants: Grants,
    /// Whether the remembered permissions apply without asking (the customer still sees who
    /// connected and can stop everything).
    pub without_asking: bool,
}

impl Entry {
    /// Whether the opt-in still holds at `now`.
    pub fn is_active(&self, now: u64) -> bool {
        now <= self.not_after
    }

    /// The handshake's view of it.
    pub fn admission(&self) -> Admission {
        Admission {
            admits: self.admits,
            not_after: self.not_after,
        }
    }
}

/// The file as stored. No `Debug`: it holds the device's secret.
#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFormat {
    /// The device's X25519 secret (hex), present while there is an entry.
    device_key: Option<String>,
    entries: Vec<Entry>,
}

/// The opt-ins and the device key, as stored.
#[derive(Debug)]
pub struct OptIns {
    path: PathBuf,
    device: Option<DeviceKey>,
    entries: Vec<Entry>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> OptInsError + '_ {
    move |error| OptInsError::Io {
        path: path.to_owned(),
        error,
    }
}

impl OptIns {
    /// `<config dir>/ponte/trusted.json`.
    pub fn default_path() -> Option<PathBuf> {
        dirs::config_dir().map(|d| d.join("ponte").join("trusted.json"))
    }

    /// Reads the file at `path`; a missing file is an empty list.
    pub fn load(path: &Path) -> Result<OptIns, OptInsError> {
        let mut trusted = OptIns {
            path: path.to_owned(),
            device: None,
            entries: Vec::new(),
        };
        // Opened without following a link, then checked on the open file itself: nothing can
        // be swapped in between the check and the read.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32)
            .open(path);
        let file = match file {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(trusted),
            // A symbolic link (ELOOP) is not ours to trust.
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
                return Err(OptInsError::Permissions(path.to_owned()));
            }
            Err(e) => return Err(io(path)(e)),
        };
        let meta = file.metadata().map_err(io(path))?;
        if !meta.is_file()
            || meta.permissions().mode() & 0o077 != 0
            || meta.uid() != rustix::process::getuid().as_raw()
        {
            return Err(OptInsError::Permissions(path.to_owned()));
        }
        // The text holds the device's secret: wiped when dropped, as is the key's hex below.
        // Room for the largest file there is, so reading never reallocates and leaves a copy.
        let mut text = zeroize::Zeroizing::new(String::with_capacity(MAX_FILE as usize + 1));
        file.take(MAX_FILE + 1)
            .read_to_string(&mut text)
            .map_err(io(path))?;
        if text.len() as u64 > MAX_FILE {
            return Err(OptInsError::Malformed(path.to_owned()));
        }
        let mut file: FileFormat =
            serde_json::from_str(&text).map_err(|_| OptInsError::Malformed(path.to_owned()))?;
        let key_text = file.device_key.take().map(zeroize::Zeroizing::new);
        if file.entries.len() > MAX_ENTRIES {
            return Err(OptInsError::Malformed(path.to_owned()));
        }
        trusted.device = match key_text {
            Some(text) => {
                let mut key = zeroize::Zeroizing::new([0u8; 32]);
                hex::decode_to_slice(&text, &mut *key)
                    .map_err(|_| OptInsError::Malformed(path.to_owned()))?;
                Some(DeviceKey::from_bytes(*key))
            }
            None => None,
        };
        trusted.entries = file.entries;
        Ok(trusted)
    }

    /// Loads the file at `path`, lets `change` modify it and saves it, all under a lock
    /// beside the file: an opt-in being stored, a removal in the window and `ponte-agent
    /// trusted remove` in another process never lose each other's change. Blocks (at most
    /// [`ponte_transport::private_file::LOCK_WAIT`] for the lock): async callers use
    /// [`OptIns::update_async`].
    pub fn update<T>(
        path: &Path,
        change: impl FnOnce(&mut OptIns) -> Result<T, OptInsError>,
    ) -> Result<T, OptInsError> {
        let _lock = ponte_transport::private_file::Lock::acquire(path).map_err(io(path))?;
        let mut trusted = OptIns::load(path)?;
        let out = change(&mut trusted)?;
        trusted.save()?;
        Ok(out)
    }

    /// [`OptIns::update`] for async callers: on a blocking thread, so a slow lock never
    /// holds the runtime's workers.
    pub async fn update_async<T: Send + 'static>(
        path: PathBuf,
        change: impl FnOnce(&mut OptIns) -> Result<T, OptInsError> + Send + 'static,
    ) -> Result<T, OptInsError> {
        let at = path.clone();
        tokio::task::spawn_blocking(move || OptIns::update(&path, change))
            .await
            .unwrap_or_else(|e| Err(io(&at)(std::io::Error::other(e))))
    }

    /// Writes the file (0600, replaced atomically), or deletes it when no entry is left.
    pub fn save(&self) -> Result<(), OptInsError> {
        let path = &self.path;
        if self.entries.is_empty() {
            return match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(path)(e)),
                _ => Ok(()),
            };
        }
        let mut file = FileFormat {
            device_key: self.device.as_ref().map(|d| hex::encode(&d.to_bytes()[..])),
            entries: self.entries.clone(),
        };
        // Written into room for the largest file there is, so the text never reallocates and
        // leaves a copy of the key behind.
        let mut text = zeroize::Zeroizing::new(Vec::with_capacity(MAX_FILE as usize));
        let written = serde_json::to_writer_pretty(&mut *text, &file);
        drop(file.device_key.take().map(zeroize::Zeroizing::new));
        written.map_err(|e| io(path)(std::io::Error::other(e)))?;
        ponte_transport::private_file::replace(path, &text).map_err(io(path))
    }

    /// Every opt-in, expired ones included (the customer may want to see and remove them).
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The device key, if the customer ever opted in.
    pub fn device(&self) -> Option<&DeviceKey> {
        self.device.as_ref()
    }

    /// Whether any opt-in still holds at `now`: then the agent also waits for those assistants.
    pub fn any_active(&self, now: u64) -> bool {
        self.device.is_some() && self.entries.iter().any(|e| e.is_active(now))
    }

    /// The admissions for the handshake, index for index with [`OptIns::entries`].
    pub fn admissions(&self) -> Vec<Admission> {
        self.entries.iter().map(Entry::admission).collect()
    }

    /// Lets a verified `peer` reconnect for `days` (clamped to 1..=[`MAX_DAYS`]); creates the
    /// device key on the first opt-in. Returns the device's public key for the assistant. A
    /// second opt-in for the same assistant or organisation replaces the first.
    #[allow(clippy::too_many_arguments)] // each is one of the customer's choices
    pub fn add(
        &mut self,
        peer: &PeerIdentity,
        scope: Scope,
        days: u32,
        grants: Grants,
        without_asking: bool,
        now: u64,
        rng: &mut impl CryptoRng,
    ) -> Result<DevicePublic, OptInsError> {
        let PeerIdentity::Verified {
            name,
            organisation,
            fingerprint,
            issuer,
            ..
        } = peer
        else {
            return Err(OptInsError::Unverified);
        };
        let admits = match scope {
            Scope::Assistant => Admits::Assistant(*fingerprint),
            Scope::Organisation => Admits::Organisation(*issuer),
        };
        self.entries.retain(|e| e.admits != admits);
        if self.entries.len() >= MAX_ENTRIES {
            return Err(OptInsError::Full);
        }
        self.entries.push(Entry {
            admits,
            name: name.as_raw().to_owned(),
            organisation: organisation.as_raw().to_owned(),
            created: now,
            not_after: ends(now, days),
            grants,
            without_asking,
        });
        let device = self.device.get_or_insert_with(|| DeviceKey::generate(rng));
        Ok(device.public())
    }

    /// Removes entry `number` (1-based, as listed). The device key goes with the last one.
    pub fn remove(&mut self, number: usize) -> Result<Entry, OptInsError> {
        if number == 0 || number > self.entries.len() {
            return Err(OptInsError::NoSuchEntry(number));
        }
        let entry = self.entries.remove(number - 1);
        if self.entries.is_empty() {
            self.device = None;
        }
        Ok(entry)
    }

    /// Removes the entry equal to `entry`, wherever it is now (the file may have changed since
    /// it was listed); `false` if there is none. The device key goes with the last one.
    pub fn remove_entry(&mut self, entry: &Entry) -> bool {
        match self.entries.iter().position(|e| e == entry) {
            Some(i) => self.remove(i + 1).is_ok(),
            None => false,
        }
    }
}

/// When an opt-in of `days` (clamped to 1..=[`MAX_DAYS`]) made at `now` ends, seconds since
/// the Unix epoch.
pub fn ends(now: u64, days: u32) -> u64 {
    now.saturating_add(u64::from(days.clamp(1, MAX_DAYS)) * DAY)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use ponte_e2e::identity::{CertificateError, Fingerprint};

    fn rng() -> impl CryptoRng {
        ponte_wire::os_rng()
    }

    fn verified() -> PeerIdentity {
        PeerIdentity::Verified {
            name: "Alice".into(),
            organisation: "Example Support".into(),
            certified_as: None,
            fingerprint: Fingerprint([1; 32]),
            issuer: Fingerprint([2; 32]),
        }
    }

    #[test]
    fn concurrent_changes_are_all_kept() {
        // Eight writers (as an opt-in being stored, the window's Remove and `trusted remove`
        // in other processes would be) each add their own assistant: none is lost.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ponte").join("trusted.json");
        let writers: Vec<_> = (0..8u8)
            .map(|n| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let peer = PeerIdentity::Verified {
                        name: format!("Assistant {n}").into(),
                        organisation: "Example Support".into(),
                        certified_as: None,
                        fingerprint: Fingerprint([n; 32]),
                        issuer: Fingerprint([99; 32]),
                    };
                    OptIns::update(&path, |t| {
                        t.add(&peer, Scope::Assistant, 30, Grants::NONE, false, 1000, &mut rng())
                    })
                    .unwrap();
                })
            })
            .collect();
        writers.into_iter().for_each(|w| w.join().unwrap());
        assert_eq!(OptIns::load(&path).unwrap().entries().len(), 8);
    }

    #[test]
    fn a_link_or_someone_elses_file_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("elsewhere.json");
        std::fs::write(&real, r#"{"device_key":null,"entries":[]}"#).unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o600)).unwrap();
        let link = dir.path().join("trusted.json");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(matches!(OptIns::load(&link), Err(OptInsError::Permissions(_))));
        assert!(OptIns::load(&real).is_ok());
    }

    #[test]
    fn opt_in_is_saved_0600_listed_and_removed_with_the_device_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ponte").join("trusted.json");
        let mut t = OptIns::load(&path).unwrap();
        assert!(t.entries().is_empty() && t.device().is_none());
        let d = t
            .add(
                &verified(),
                Scope::Organisation,
                DEFAULT_DAYS,
                Grants::all(),
                false,
                1000,
                &mut rng(),
            )
            .unwrap();
        t.save().unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);

        let mut again = OptIns::load(&path).unwrap();
        assert_eq!(again.device().unwrap().public(), d);
        assert_eq!(again.entries().len(), 1);
        let e = &again.entries()[0];
        assert_eq!(e.admits, Admits::Organisation(Fingerprint([2; 32])));
        assert_eq!(e.not_after, 1000 + 90 * DAY);
        assert!(again.any_active(1000 + 90 * DAY) && !again.any_active(1001 + 90 * DAY));

        assert!(matches!(again.remove(2), Err(OptInsError::NoSuchEntry(2))));
        assert!(matches!(again.remove(0), Err(OptInsError::NoSuchEntry(0))));
        again.remove(1).unwrap();
        assert!(again.device().is_none());
        again.save().unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn only_verified_assistants_and_at_most_a_year() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = OptIns::load(&dir.path().join("t.json")).unwrap();
        let unverified = PeerIdentity::Unverified {
            fingerprint: Fingerprint([1; 32]),
            reason: CertificateError::Missing,
        };
        assert!(matches!(
            t.add(
                &unverified,
                Scope::Assistant,
                30,
                Grants::NONE,
                false,
                0,
                &mut rng()
            ),
            Err(OptInsError::Unverified)
        ));
        assert!(t.device().is_none());
        t.add(
            &verified(),
            Scope::Assistant,
            10_000,
            Grants::NONE,
            false,
            0,
            &mut rng(),
        )
        .unwrap();
        assert_eq!(t.entries()[0].not_after, 365 * DAY);
        // The same assistant again replaces, not duplicates.
        t.add(
            &verified(),
            Scope::Assistant,
            0,
            Grants::NONE,
            false,
            0,
            &mut rng(),
        )
        .unwrap();
        assert_eq!(t.entries().len(), 1);
        assert_eq!(t.entries()[0].not_after, DAY);
    }

    #[test]
    fn a_file_others_can_read_or_a_broken_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trusted.json");
        let mut t = OptIns::load(&path).unwrap();
        t.add(
            &verified(),
            Scope::Assistant,
            1,
            Grants::NONE,
            false,
            0,
            &mut rng(),
        )
        .unwrap();
        t.save().unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(OptIns::load(&path), Err(OptInsError::Permissions(_))));
        std::fs::write(&path, "{not json").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(OptIns::load(&path), Err(OptInsError::Malformed(_))));
        // A symlink is not followed.
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(matches!(OptIns::load(&link), Err(OptInsError::Permissions(_))));
    }
}
