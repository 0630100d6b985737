//! The operator's assistants: who may join sessions when the relay requires a credential.
//!
//! Each assistant is a name and the Ed25519 public key of its credential, one line each in
//! `assistants` in the data directory (written whole and renamed into place, so a reader
//! never sees half a file, and changed under an exclusive lock, so that two changes at once
//! never undo each other) — or, for a relay cluster, one field each of a Redis hash, so that
//! every node knows the same accounts. The relay holds no secret: a credential's secret exists
//! only in the assistant's file, printed once by `ponte-relay assistant add`. A single relay
//! re-reads the file when it changes, so a removal takes effect at the next join; a cluster
//! node reads the hash at each heartbeat, so a removal takes effect on every node within
//! [`crate::cluster::HEARTBEAT`] (while Redis is unreachable, nodes keep the accounts they
//! last read).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use ponte_transport::credential::{AssistantCredential, CredentialError};
use ponte_transport::private_file::{self, Lock};

/// The file's name in the data directory.
pub const FILE: &str = "assistants";

/// Longest assistant name.
pub const MAX_NAME: usize = 64;

/// What went wrong with the assistants file.
#[derive(Debug, thiserror::Error)]
pub enum AssistantError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A line of the file is not `NAME KEY CREATED`.
    #[error("{path}, line {line}: not an assistant entry")]
    Corrupt {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
    },
    /// The name breaks the rules.
    #[error(
        "an assistant name is 1 to 64 characters (letters, digits and . _ @ -), starting with a letter or digit"
    )]
    BadName,
    /// The name is taken.
    #[error("there is already an assistant named {0}")]
    Exists(String),
    /// No such assistant.
    #[error("there is no assistant named {0}")]
    Unknown(String),
    /// A credential could not be made.
    #[error(transparent)]
    Credential(#[from] CredentialError),
    /// The cluster's Redis could not be used.
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
}

/// One assistant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assistant {
    /// The operator's name for the account (in the ledger and in `assistant list`).
    pub name: String,
    /// The credential's Ed25519 public key.
    pub key: [u8; 32],
    /// When it was added (seconds since 1970, UTC).
    pub created: u64,
}

impl Assistant {
    /// The account as one line of the assistants file (and one value of the cluster's hash).
    fn line(&self) -> String {
        format!("{} {} {}", self.name, hex::encode(self.key), self.created)
    }

    /// An account from its line; `None` if the line is not one.
    fn parse(line: &str) -> Option<Assistant> {
        let mut fields = line.split_whitespace();
        let (Some(name), Some(key), Some(created), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return None;
        };
        check_name(name).ok()?;
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(key, &mut bytes).ok()?;
        Some(Assistant {
            name: name.to_owned(),
            key: bytes,
            created: created.parse().ok()?,
        })
    }

    /// A new account for `name` and its credential (to hand over once).
    fn generate(name: &str) -> Result<(Assistant, AssistantCredential), AssistantError> {
        check_name(name)?;
        let credential = AssistantCredential::generate()?;
        let created = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let assistant = Assistant {
            name: name.to_owned(),
            key: credential.public_key(),
            created,
        };
        Ok((assistant, credential))
    }
}

/// Checks an assistant name: plain enough for a log line, a CSV cell and a shell.
pub fn check_name(name: &str) -> Result<(), AssistantError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._@-".contains(c);
    let first_ok = name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    if name.len() > MAX_NAME || !first_ok || !name.chars().all(allowed) {
        return Err(AssistantError::BadName);
    }
    Ok(())
}

/// The assistants file of a data directory.
#[derive(Debug, Clone)]
pub struct AssistantStore {
    path: PathBuf,
}

impl AssistantStore {
    /// The store in `data_dir`.
    pub fn in_dir(data_dir: &Path) -> AssistantStore {
        AssistantStore {
            path: data_dir.join(FILE),
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, source: std::io::Error) -> AssistantError {
        AssistantError::Io {
            path: self.path.display().to_string(),
            source,
        }
    }

    /// Every assistant; none if the file does not exist yet.
    pub fn load(&self) -> Result<Vec<Assistant>, AssistantError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.io(e)),
        };
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            out.push(Assistant::parse(line).ok_or_else(|| AssistantError::Corrupt {
                path: self.path.display().to_string(),
                line: i + 1,
            })?);
        }
        Ok(out)
    }

    fn save(&self, assistants: &[Assistant]) -> Result<(), AssistantError> {
        let mut text = String::from(
            "# ponte-relay assistants: name, credential public key (Ed25519, hex), added (Unix time)\n",
        );
        for a in assistants {
            text.push_str(&a.line());
            text.push('\n');
        }
        private_file::replace(&self.path, text.as_bytes()).map_err(|e| self.io(e))
    }

    /// Takes the exclusive lock on changing the file (see [`Lock`]).
    fn lock(&self) -> Result<Lock, AssistantError> {
        Lock::acquire(&self.path).map_err(|e| self.io(e))
    }

    /// Adds an assistant and returns its new credential (to hand over once; the relay keeps
    /// only the public key).
    pub fn add(&self, name: &str) -> Result<AssistantCredential, AssistantError> {
        let (assistant, credential) = Assistant::generate(name)?;
        // Held from reading to renaming: two changes at once would each save the list as
        // they read it, and the later one would undo the other (a lost account, or a removed
        // one back in).
        let _lock = self.lock()?;
        let mut all = self.load()?;
        if all.iter().any(|a| a.name == name) {
            return Err(AssistantError::Exists(name.to_owned()));
        }
        all.push(assistant);
        self.save(&all)?;
        Ok(credential)
    }

    /// Removes an assistant; its credential stops working at the next join.
    pub fn remove(&self, name: &str) -> Result<(), AssistantError> {
        let _lock = self.lock()?;
        let mut all = self.load()?;
        let before = all.len();
        all.retain(|a| a.name != name);
        if all.len() == before {
            return Err(AssistantError::Unknown(name.to_owned()));
        }
        self.save(&all)
    }
}

/// The lock file beside `path` (the file itself is replaced by renaming, so it cannot be the
/// one locked).
/// The cluster's accounts, for `ponte-relay assistant … --cluster`: the same operations as
/// [`AssistantStore`]'s, on the Redis hash every node reads.
impl crate::cluster::AssistantBook {
    /// Every account, by name. An entry that is not an account (written by hand) is skipped
    /// and reported, as the nodes skip it.
    pub async fn assistants(&self) -> Result<Vec<Assistant>, AssistantError> {
        Ok(parse_book(self.lines().await?))
    }

    /// Adds an account and returns its new credential (to hand over once).
    pub async fn add_assistant(&self, name: &str) -> Result<AssistantCredential, AssistantError> {
        let (assistant, credential) = Assistant::generate(name)?;
        if !self.add(name, &assistant.line()).await? {
            return Err(AssistantError::Exists(name.to_owned()));
        }
        Ok(credential)
    }

    /// Removes an account; its credential stops working on every node within a heartbeat.
    pub async fn remove_assistant(&self, name: &str) -> Result<(), AssistantError> {
        if !self.remove(name).await? {
            return Err(AssistantError::Unknown(name.to_owned()));
        }
        Ok(())
    }
}

/// The operator's assistants: the data directory's file, or the cluster's (with --cluster).
pub enum AssistantAccounts {
    /// The file in the data directory.
    File(AssistantStore),
    /// The cluster's (in its Redis).
    Cluster(crate::cluster::AssistantBook),
}

impl AssistantAccounts {
    /// The cluster's accounts when `cluster` names its Redis, else `data_dir`'s file.
    pub fn open(data_dir: &Path, cluster: Option<&str>) -> Result<AssistantAccounts, AssistantError> {
        Ok(match cluster {
            Some(url) => AssistantAccounts::Cluster(crate::cluster::AssistantBook::open(url)?),
            None => AssistantAccounts::File(AssistantStore::in_dir(data_dir)),
        })
    }

    /// Every account, by name.
    pub async fn load(&self) -> Result<Vec<Assistant>, AssistantError> {
        match self {
            AssistantAccounts::File(store) => store.load(),
            AssistantAccounts::Cluster(book) => book.assistants().await,
        }
    }

    /// Adds an account and returns its credential (to hand over once).
    pub async fn add(&self, name: &str) -> Result<AssistantCredential, AssistantError> {
        match self {
            AssistantAccounts::File(store) => store.add(name),
            AssistantAccounts::Cluster(book) => book.add_assistant(name).await,
        }
    }

    /// Removes an account.
    pub async fn remove(&self, name: &str) -> Result<(), AssistantError> {
        match self {
            AssistantAccounts::File(store) => store.remove(name),
            AssistantAccounts::Cluster(book) => book.remove_assistant(name).await,
        }
    }

    /// Where the accounts are, for messages.
    pub fn place(&self) -> String {
        match self {
            AssistantAccounts::File(store) => store.path().display().to_string(),
            AssistantAccounts::Cluster(_) => "the cluster".to_owned(),
        }
    }
}

/// The accounts of the cluster's hash (name and line, as bytes: whoever wrote Redis may have
/// written anything), sorted by name; entries that are not accounts (or whose line names
/// another account) are skipped, one by one — admitting nobody by them.
pub fn parse_book(lines: Vec<(Vec<u8>, Vec<u8>)>) -> Vec<Assistant> {
    let mut all: Vec<Assistant> = lines
        .into_iter()
        .filter_map(|(name, line)| {
            let name = String::from_utf8_lossy(&name);
            let parsed = std::str::from_utf8(&line)
                .ok()
                .and_then(Assistant::parse)
                .filter(|a| a.name == name);
            if parsed.is_none() {
                let name: String = name.chars().take(MAX_NAME + 1).collect();
                tracing::error!(name = ?name, "cluster assistant entry unusable, skipped");
            }
            parsed
        })
        .collect();
    all.sort_by(|a, b| a.name.cmp(&b.name));
    all
}

/// What identifies a version of the file: it is replaced by rename, so a new inode, size or
/// modification time means new contents.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp(Option<(SystemTime, u64, u64)>);

fn stamp(path: &Path) -> Stamp {
    let meta = std::fs::metadata(path).ok();
    Stamp(meta.map(|m| {
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&m);
        #[cfg(not(unix))]
        let inode = 0;
        (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len(), inode)
    }))
}

/// The running relay's view of the assistants: re-read when the file changes, or (on a
/// cluster node) replaced at each heartbeat.
#[derive(Debug)]
pub struct Assistants {
    /// The file (`None`: a cluster node, fed by [`Assistants::replace`]).
    store: Option<AssistantStore>,
    cache: Mutex<(Option<Stamp>, Vec<Assistant>)>,
}

impl Assistants {
    /// The assistants of `data_dir`, read at the first lookup.
    pub fn new(data_dir: &Path) -> Assistants {
        Assistants {
            store: Some(AssistantStore::in_dir(data_dir)),
            cache: Mutex::new((None, Vec::new())),
        }
    }

    /// A cluster node's: none until the first [`Assistants::replace`].
    pub fn shared() -> Assistants {
        Assistants {
            store: None,
            cache: Mutex::new((None, Vec::new())),
        }
    }

    /// The accounts as the cluster has them now.
    pub fn replace(&self, assistants: Vec<Assistant>) {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).1 = assistants;
    }

    /// The name of the assistant whose credential has this public key, if any.
    pub fn lookup(&self, key: &[u8; 32]) -> Option<String> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(store) = &self.store {
            reload(store, &mut cache);
        }
        // Public keys are not secret, but comparing every entry in constant time keeps the
        // answer's timing independent of which keys are registered.
        let mut found = None;
        for a in &cache.1 {
            if ct_eq(&a.key, key) {
                found = Some(a.name.clone());
            }
        }
        found
    }
}

/// Reads the file again if it changed.
fn reload(store: &AssistantStore, cache: &mut (Option<Stamp>, Vec<Assistant>)) {
    let now = stamp(store.path());
    if cache.0.as_ref() != Some(&now) {
        let loaded = store.load().unwrap_or_else(|e| {
            // Fail closed: a broken file admits nobody until the operator fixes it.
            tracing::error!("assistants file unusable, refusing every credential: {e}");
            Vec::new()
        });
        *cache = (Some(now), loaded);
    }
}

fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_list_remove_and_the_relay_sees_changes() {
        let dir = tempfile::tempdir().unwrap();
        let store = AssistantStore::in_dir(dir.path());
        let live = Assistants::new(dir.path());
        assert!(store.load().unwrap().is_empty());
        let alice = store.add("alice").unwrap();
        let bob = store.add("bob@acme.example").unwrap();
        assert!(matches!(store.add("alice"), Err(AssistantError::Exists(_))));
        let names: Vec<String> = store.load().unwrap().into_iter().map(|a| a.name).collect();
        assert_eq!(names, ["alice", "bob@acme.example"]);
        assert_eq!(live.lookup(&alice.public_key()).as_deref(), Some("alice"));
        assert_eq!(
            live.lookup(&bob.public_key()).as_deref(),
            Some("bob@acme.example")
        );
        store.remove("alice").unwrap();
        assert_eq!(
            live.lookup(&alice.public_key()),
            None,
            "removal takes effect at once"
        );
        assert_eq!(
            live.lookup(&bob.public_key()).as_deref(),
            Some("bob@acme.example")
        );
        assert!(matches!(store.remove("alice"), Err(AssistantError::Unknown(_))));
        // Only public keys are stored: the credential's secret is nowhere in the file.
        let text = std::fs::read_to_string(store.path()).unwrap();
        let secret = bob.to_text();
        assert!(!text.contains(&secret[ponte_wire::credential_text::PREFIX.len()..]));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(store.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "{mode:o}");
        }
    }

    #[test]
    fn names_are_plain_and_a_corrupt_file_admits_nobody() {
        for good in ["a", "alice", "bob@acme.example", "x-1_2.3", &"a".repeat(MAX_NAME)] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "-a",
            "@a",
            "a b",
            "a,b",
            "a\nb",
            "é",
            &"a".repeat(MAX_NAME + 1),
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        let dir = tempfile::tempdir().unwrap();
        let store = AssistantStore::in_dir(dir.path());
        let alice = store.add("alice").unwrap();
        let live = Assistants::new(dir.path());
        assert!(live.lookup(&alice.public_key()).is_some());
        let mut text = std::fs::read_to_string(store.path()).unwrap();
        text.push_str("mallory not-a-key 0\n");
        std::fs::write(store.path(), text).unwrap();
        assert!(matches!(
            store.load(),
            Err(AssistantError::Corrupt { line: 3, .. })
        ));
        assert_eq!(live.lookup(&alice.public_key()), None);
    }
}
