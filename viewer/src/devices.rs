//! The assistant's address book of quick-access devices: a name the assistant chose for each
//! customer's device, and the device's public key the customer's agent gave when the customer
//! allowed quick access (`remember NAME` in a session). `ponte-viewer connect --device NAME`
//! finds the device on the relay by its tag and authenticates it by the key.
//!
//! One JSON file (`<config dir>/ponte/devices.json`), written 0600: it tells who the
//! assistant's customers are.

use std::path::{Path, PathBuf};

use ponte_e2e::app::QuickAccessGrant;
use ponte_wire::device::DevicePublic;
use serde::{Deserialize, Serialize};

/// Longest device name, in characters.
pub const MAX_NAME: usize = 64;
/// Most devices one address book holds.
pub const MAX_DEVICES: usize = 10_000;
const MAX_FILE: u64 = 4 << 20;

/// What can go wrong with the address book.
#[derive(Debug, thiserror::Error)]
pub enum DevicesError {
    /// Reading or writing failed.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed (part of the message, not a `source()`: each cause is said once).
        error: std::io::Error,
    },
    /// The file does not parse.
    #[error("{0}: not a valid address book")]
    Malformed(PathBuf),
    /// A name that is empty, too long or not plain text.
    #[error("a device name is 1 to {MAX_NAME} letters, digits, spaces or . _ - (got {0:?})")]
    BadName(String),
    /// No device has this name.
    #[error("no device named {0:?} in the address book (see ponte-viewer devices)")]
    Unknown(String),
    /// The address book is full.
    #[error("the address book is full ({MAX_DEVICES} devices)")]
    Full,
}

/// One remembered device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// The assistant's name for it.
    pub name: String,
    /// Its public key (64 hex digits in the file).
    #[serde(with = "hex_key")]
    pub key: DevicePublic,
    /// Until when the customer allowed quick access (seconds since the Unix epoch).
    pub not_after: u64,
}

/// A device key in the file as its 64 hex digits (docs/PROTOCOL.md § 9.1), readable and
/// comparable with what the agent shows, rather than 32 numbers.
mod hex_key {
    use ponte_wire::device::DevicePublic;
    use serde::Deserialize as _;

    pub fn serialize<S: serde::Serializer>(key: &DevicePublic, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(key)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<DevicePublic, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// The address book.
#[derive(Debug)]
pub struct Devices {
    path: PathBuf,
    devices: Vec<Device>,
}

fn check_name(name: &str) -> Result<(), DevicesError> {
    let ok = !name.trim().is_empty()
        && name.chars().count() <= MAX_NAME
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, ' ' | '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(DevicesError::BadName(name.to_owned()))
    }
}

impl Devices {
    /// `<config dir>/ponte/devices.json`.
    pub fn default_path() -> PathBuf {
        dirs::config_dir()
            .unwrap_or_else(|| PathBuf::from("."))
            .join("ponte")
            .join("devices.json")
    }

    /// Reads the address book; a missing file is an empty one.
    pub fn load(path: &Path) -> Result<Devices, DevicesError> {
        let io = |error| DevicesError::Io {
            path: path.to_owned(),
            error,
        };
        let devices = match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io(e)),
            Ok(meta) if meta.len() > MAX_FILE => return Err(DevicesError::Malformed(path.to_owned())),
            Ok(_) => {
                let text = std::fs::read_to_string(path).map_err(io)?;
                let devices: Vec<Device> =
                    serde_json::from_str(&text).map_err(|_| DevicesError::Malformed(path.to_owned()))?;
                if devices.len() > MAX_DEVICES || devices.iter().any(|d| check_name(&d.name).is_err()) {
                    return Err(DevicesError::Malformed(path.to_owned()));
                }
                devices
            }
        };
        Ok(Devices {
            path: path.to_owned(),
            devices,
        })
    }

    /// Loads the address book, lets `change` modify it and saves it, under the file's lock:
    /// two viewers remembering devices at once both keep theirs. Blocks (briefly).
    pub fn update<T>(
        path: &Path,
        change: impl FnOnce(&mut Devices) -> Result<T, DevicesError>,
    ) -> Result<T, DevicesError> {
        let _lock = ponte_transport::private_file::Lock::acquire(path).map_err(|error| DevicesError::Io {
            path: path.to_owned(),
            error,
        })?;
        let mut book = Devices::load(path)?;
        let out = change(&mut book)?;
        book.save()?;
        Ok(out)
    }

    /// Writes the address book (0600, replaced atomically).
    pub fn save(&self) -> Result<(), DevicesError> {
        let text = serde_json::to_string_pretty(&self.devices).unwrap_or_default();
        ponte_transport::private_file::replace(&self.path, text.as_bytes()).map_err(|error| {
            DevicesError::Io {
                path: self.path.clone(),
                error,
            }
        })
    }

    /// Every device, in the order added.
    pub fn list(&self) -> &[Device] {
        &self.devices
    }

    /// The device named `name`.
    pub fn get(&self, name: &str) -> Result<&Device, DevicesError> {
        self.devices
            .iter()
            .find(|d| d.name == name)
            .ok_or_else(|| DevicesError::Unknown(name.to_owned()))
    }

    /// Whether a device can be kept under `name` (new, or replacing the one of that name):
    /// checked before the customer is asked, so their yes is never lost to a bad name or a
    /// full address book.
    pub fn can_add(&self, name: &str) -> Result<(), DevicesError> {
        check_name(name)?;
        if self.devices.len() >= MAX_DEVICES && !self.devices.iter().any(|d| d.name == name) {
            return Err(DevicesError::Full);
        }
        Ok(())
    }

    /// Remembers `grant` under `name`, replacing a device of that name.
    pub fn add(&mut self, name: &str, grant: QuickAccessGrant) -> Result<(), DevicesError> {
        self.can_add(name)?;
        self.devices.retain(|d| d.name != name);
        self.devices.push(Device {
            name: name.to_owned(),
            key: grant.device,
            not_after: grant.not_after,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn devices_are_remembered_by_name_in_a_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ponte").join("devices.json");
        let mut book = Devices::load(&path).unwrap();
        assert!(book.list().is_empty());
        let grant = QuickAccessGrant {
            device: DevicePublic([3; 32]),
            not_after: 99,
        };
        book.add("Rossi office", grant).unwrap();
        book.add(
            "Rossi office",
            QuickAccessGrant {
                not_after: 100,
                ..grant
            },
        )
        .unwrap();
        assert!(matches!(
            book.add("bad\u{1b}[31m", grant),
            Err(DevicesError::BadName(_))
        ));
        assert!(matches!(book.add("", grant), Err(DevicesError::BadName(_))));
        book.save().unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(&"03".repeat(32)), "the key as hex: {text}");
        let again = Devices::load(&path).unwrap();
        assert_eq!(again.list().len(), 1);
        assert_eq!(again.get("Rossi office").unwrap().key, DevicePublic([3; 32]));
        assert_eq!(again.get("Rossi office").unwrap().not_after, 100);
        assert!(matches!(again.get("nobody"), Err(DevicesError::Unknown(_))));
        std::fs::write(&path, "[{\"name\": \"x\"}]").unwrap();
        assert!(matches!(Devices::load(&path), Err(DevicesError::Malformed(_))));
    }

    #[test]
    fn two_viewers_remembering_at_once_both_keep_theirs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ponte").join("devices.json");
        let writers: Vec<_> = (0..8u8)
            .map(|n| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let grant = QuickAccessGrant {
                        device: DevicePublic([n; 32]),
                        not_after: 99,
                    };
                    Devices::update(&path, |book| book.add(&format!("device {n}"), grant)).unwrap();
                })
            })
            .collect();
        writers.into_iter().for_each(|w| w.join().unwrap());
        assert_eq!(Devices::load(&path).unwrap().list().len(), 8);
    }
}
