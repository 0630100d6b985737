//! Trust on first use: the fingerprint of each relay first seen, remembered per relay address
//! in the user's config directory (`known_relays`, one `address fingerprint` pair per line).

use std::path::PathBuf;

use ponte_transport::tls::CertFingerprint;

/// The remembered relays.
#[derive(Debug, Clone)]
pub struct KnownRelays {
    path: PathBuf,
}

/// What trust on first use concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// First time this relay is seen; its fingerprint was remembered.
    New,
    /// The relay presented the remembered fingerprint.
    Known,
    /// The relay presented a different fingerprint than the remembered one.
    Changed(CertFingerprint),
}

impl KnownRelays {
    /// The store in `~/.config/ponte/known_relays` (or the platform's config directory).
    pub fn default_location() -> KnownRelays {
        let dir = dirs::config_dir().unwrap_or_else(|| PathBuf::from("."));
        KnownRelays::at(dir.join("ponte").join("known_relays"))
    }

    /// A store in a specific file.
    pub fn at(path: impl Into<PathBuf>) -> KnownRelays {
        KnownRelays { path: path.into() }
    }

    fn read(&self) -> Vec<(String, CertFingerprint)> {
        std::fs::read_to_string(&self.path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let (addr, fp) = l.trim().split_once(' ')?;
                Some((addr.to_owned(), fp.trim().parse().ok()?))
            })
            .collect()
    }

    /// The fingerprint remembered for `address`.
    pub fn get(&self, address: &str) -> Option<CertFingerprint> {
        self.read()
            .into_iter()
            .find(|(a, _)| a == address)
            .map(|(_, fp)| fp)
    }

    /// Remembers (or replaces) the fingerprint of `address`.
    pub fn remember(&self, address: &str, fp: CertFingerprint) -> std::io::Result<()> {
        let mut entries: Vec<_> = self.read().into_iter().filter(|(a, _)| a != address).collect();
        entries.push((address.to_owned(), fp));
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let text: String = entries.iter().map(|(a, f)| format!("{a} {f}\n")).collect();
        std::fs::write(&self.path, text)
    }

    /// Compares what `address` presented with what was remembered, remembering it if new.
    pub fn check(&self, address: &str, seen: CertFingerprint) -> std::io::Result<Verdict> {
        match self.get(address) {
            None => {
                self.remember(address, seen)?;
                Ok(Verdict::New)
            }
            Some(known) if known == seen => Ok(Verdict::Known),
            Some(known) => Ok(Verdict::Changed(known)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_use_then_known_then_changed() {
        let dir = tempfile::tempdir().unwrap();
        let store = KnownRelays::at(dir.path().join("sub/known_relays"));
        let a = CertFingerprint([1; 32]);
        let b = CertFingerprint([2; 32]);
        assert_eq!(store.check("relay:4433", a).unwrap(), Verdict::New);
        assert_eq!(store.check("relay:4433", a).unwrap(), Verdict::Known);
        assert_eq!(store.check("relay:4433", b).unwrap(), Verdict::Changed(a));
        assert_eq!(store.check("other:4433", b).unwrap(), Verdict::New);
        store.remember("relay:4433", b).unwrap();
        assert_eq!(store.check("relay:4433", b).unwrap(), Verdict::Known);
        assert_eq!(store.get("other:4433"), Some(b));
    }
}
