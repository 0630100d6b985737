//! The file scope: the folder the customer shares (`--dir`, default their home), and what a
//! path the assistant names really is — resolved, absolute, and classified — before anything is
//! read or written. Grants cover the folder; hidden files and folders, places programs start
//! from, and anything outside the folder are asked per file whatever the grants.

use std::path::{Component, Path, PathBuf};

use ponte_e2e::app::MAX_PATH;
use ponte_wire::text::PeerText;

use crate::frontend::Why;

/// Places programs are started from automatically, relative to the home folder. Hidden ones
/// are caught by the hidden rule too; they are listed so the question can say what they are.
const HOME_STARTUP: &[&str] = &[
    ".bashrc",
    ".bash_profile",
    ".bash_login",
    ".bash_logout",
    ".profile",
    ".zshrc",
    ".zprofile",
    ".zshenv",
    ".zlogin",
    ".xprofile",
    ".xsession",
    ".xsessionrc",
    ".xinitrc",
    ".config/autostart",
    ".config/systemd",
    ".config/fish",
    ".config/environment.d",
    ".config/plasma-workspace",
    ".local/share/applications",
    ".local/share/systemd",
    ".local/share/dbus-1",
    ".local/bin",
    ".gitconfig",
    ".config/git",
    ".pam_environment",
    ".ssh",
    "bin",
    "Library/LaunchAgents",
    "AppData/Roaming/Microsoft/Windows/Start Menu/Programs/Startup",
];

/// Folders below the home folder that hold what hidden folders hold elsewhere (application
/// data, keys, browser profiles): treated as hidden.
const HOME_PRIVATE: &[&str] = &["snap", "Library", "AppData"];

/// System-wide startup places (writable only by administrators, but never without a question).
const SYSTEM_STARTUP: &[&str] = &[
    "/etc/xdg/autostart",
    "/etc/profile",
    "/etc/profile.d",
    "/etc/bash.bashrc",
    "/etc/environment",
    "/etc/crontab",
    "/etc/cron.d",
    "/etc/cron.hourly",
    "/etc/cron.daily",
    "/etc/cron.weekly",
    "/etc/cron.monthly",
    "/etc/systemd",
    "/etc/init.d",
    "/etc/rc.local",
    "/var/spool/cron",
    "/usr/local/bin",
    "/Library/LaunchAgents",
    "/Library/LaunchDaemons",
];

/// How the last component of a path is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Last {
    /// Followed if it is a link: reads open what the link points to.
    Follow,
    /// Kept: a write replaces the entry itself, never what a link points to.
    Keep,
}

/// A path the assistant named, as the agent will really use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// Absolute, with `.`/`..` and every existing link resolved.
    pub path: PathBuf,
    /// Inside the shared folder.
    pub inside: bool,
    /// A hidden file or folder, or inside one (below the shared folder, or anywhere outside it).
    pub hidden: bool,
    /// A place programs start from, or inside one.
    pub startup: bool,
    /// Ponte itself: the agent program, its folder as a whole, or anything that decides whom
    /// it trusts (its configuration, the organisation keys it names wherever they are, the
    /// customer's Ponte settings and opt-ins).
    pub program: bool,
    /// The first folder that does not exist yet and would have to be created.
    pub missing: Option<PathBuf>,
}

impl Place {
    /// Why a question is needed even with the grant (empty: the grant covers it).
    pub fn concerns(&self) -> Vec<Why> {
        let mut why = Vec::new();
        if self.program {
            why.push(Why::Program);
        }
        if !self.inside {
            why.push(Why::OutsideFolder);
        }
        if self.startup {
            why.push(Why::Startup);
        } else if self.hidden {
            why.push(Why::Hidden);
        }
        why
    }

    /// The path for the customer to read.
    pub fn shown(&self) -> PeerText {
        PeerText::path(&self.path)
    }
}

/// The shared folder.
#[derive(Debug, Clone)]
pub struct Scope {
    root: PathBuf,
    home: Option<PathBuf>,
    /// Where the agent program is: files there (the program, ponte-agent.toml, organisation
    /// keys) decide whom it trusts.
    program: Option<PathBuf>,
    /// Files and folders elsewhere that decide whom it trusts, resolved as paths are.
    protected: Vec<PathBuf>,
}

/// A path that cannot be used at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unusable path {0}")]
pub struct BadPath(pub PeerText);

impl Scope {
    /// The folder `root` (resolved), with `home` for the startup places; `protected` are the
    /// files and folders besides the program's own that decide whom the agent trusts (they
    /// need not exist: creating one changes whom it trusts as much as replacing it).
    pub fn new(root: &Path, home: Option<PathBuf>, protected: &[PathBuf]) -> std::io::Result<Scope> {
        let program = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().and_then(|dir| std::fs::canonicalize(dir).ok()));
        // A protected file that is a link is protected as the link and as what it points to.
        let protected = protected
            .iter()
            .filter_map(|p| std::path::absolute(p).ok())
            .flat_map(|p| [resolve_links(&p, Last::Keep), resolve_links(&p, Last::Follow)])
            .collect();
        Ok(Scope {
            root: std::fs::canonicalize(root)?,
            home: home.and_then(|h| std::fs::canonicalize(h).ok()),
            program,
            protected,
        })
    }

    /// The shared folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Resolves a path of the assistant's (relative ones start in the shared folder).
    pub fn resolve(&self, peer: &PeerText, last: Last) -> Result<Place, BadPath> {
        let raw = peer.as_raw();
        if raw.is_empty() || raw.len() > MAX_PATH || raw.contains('\0') {
            return Err(BadPath(peer.clone()));
        }
        let mut lexical = self.root.clone();
        for component in Path::new(raw).components() {
            match component {
                Component::Prefix(_) | Component::RootDir => lexical = PathBuf::from(component.as_os_str()),
                Component::CurDir => {}
                Component::ParentDir => {
                    lexical.pop();
                }
                Component::Normal(part) => lexical.push(part),
            }
        }
        let path = resolve_links(&lexical, last);
        let missing = first_missing(&path);
        let inside = path.starts_with(&self.root);
        let below = if inside {
            path.strip_prefix(&self.root).unwrap_or(&path)
        } else {
            &path
        };
        let hidden = below
            .components()
            .any(|c| matches!(c, Component::Normal(n) if ponte_session::files::is_hidden(n)))
            || self
                .home
                .as_ref()
                .is_some_and(|home| HOME_PRIVATE.iter().any(|p| path.starts_with(home.join(p))));
        let startup = SYSTEM_STARTUP.iter().any(|p| path.starts_with(p))
            || self
                .home
                .as_ref()
                .is_some_and(|home| HOME_STARTUP.iter().any(|p| path.starts_with(home.join(p))));
        // The program, its ponte-agent.toml and the keys beside it, or the folder as a whole;
        // and whatever else decides whom it trusts, or is inside such a folder.
        let program = self.program.as_ref().is_some_and(|dir| {
            let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
            *dir == path
                || path.parent() == Some(dir.as_path())
                    && (name.starts_with("ponte-agent") || name.ends_with(".pem"))
        }) || self.protected.iter().any(|p| path.starts_with(p));
        Ok(Place {
            path,
            inside,
            hidden,
            startup,
            program,
            missing,
        })
    }
}

/// `path` with the links of its existing part resolved: every existing ancestor is
/// canonicalised, and the last component too with [`Last::Follow`].
fn resolve_links(path: &Path, last: Last) -> PathBuf {
    let (base, tail): (&Path, Option<&std::ffi::OsStr>) = match last {
        Last::Follow => (path, None),
        Last::Keep => match (path.parent(), path.file_name()) {
            (Some(parent), Some(name)) => (parent, Some(name)),
            _ => (path, None),
        },
    };
    // The deepest existing ancestor, canonicalised, and the rest as named.
    let mut rest = Vec::new();
    let mut at = base;
    let mut resolved = loop {
        if let Ok(canonical) = std::fs::canonicalize(at) {
            break canonical;
        }
        match (at.parent(), at.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                at = parent;
            }
            _ => break at.to_owned(),
        }
    };
    for part in rest.iter().rev() {
        resolved.push(part);
    }
    if let Some(name) = tail {
        resolved.push(name);
    }
    resolved
}

/// The first folder on the way to `path` that does not exist.
fn first_missing(path: &Path) -> Option<PathBuf> {
    let parent = path.parent()?;
    let mut missing = None;
    for ancestor in parent.ancestors() {
        if std::fs::symlink_metadata(ancestor).is_ok() {
            break;
        }
        missing = Some(ancestor.to_owned());
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, Scope) {
        // Not the default ".tmp…" name: a hidden folder outside the scope counts as hidden.
        let dir = tempfile::Builder::new().prefix("scope").tempdir().unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(home.join("Documents")).unwrap();
        std::fs::create_dir_all(home.join(".ssh")).unwrap();
        std::fs::create_dir_all(dir.path().join("elsewhere")).unwrap();
        let protected = [home.join(".config/ponte"), dir.path().join("keys/acme.pub.pem")];
        let scope = Scope::new(&home, Some(home.clone()), &protected).unwrap();
        (dir, scope)
    }

    fn place(scope: &Scope, p: &str, last: Last) -> Place {
        scope.resolve(&PeerText::from(p), last).unwrap()
    }

    #[test]
    fn paths_are_resolved_and_classified() {
        let (dir, scope) = setup();
        let root = scope.root().to_owned();
        let doc = place(&scope, "Documents/a.txt", Last::Keep);
        assert_eq!(doc.path, root.join("Documents/a.txt"));
        assert!(doc.inside && !doc.hidden && !doc.startup && doc.missing.is_none());
        assert!(doc.concerns().is_empty());

        let up = place(&scope, "Documents/../../elsewhere/x", Last::Keep);
        assert!(!up.inside, "{up:?}");
        assert_eq!(up.concerns(), vec![Why::OutsideFolder]);
        let absolute = place(&scope, "/etc/passwd", Last::Follow);
        assert!(!absolute.inside);

        let key = place(&scope, ".ssh/authorized_keys", Last::Keep);
        assert!(key.inside && key.hidden && key.startup);
        let rc = place(&scope, "Documents/../.bashrc", Last::Keep);
        assert_eq!(rc.concerns(), vec![Why::Startup]);
        let autostart = place(&scope, ".config/autostart/evil.desktop", Last::Keep);
        assert!(autostart.startup);
        assert_eq!(autostart.missing, Some(root.join(".config")));
        let hidden = place(&scope, "Documents/.secret/x", Last::Keep);
        assert_eq!(hidden.concerns(), vec![Why::Hidden]);

        // A link inside the folder that leads out is judged by where it leads.
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(dir.path().join("elsewhere"), root.join("Documents/out")).unwrap();
            let through = place(&scope, "Documents/out/file", Last::Keep);
            assert!(!through.inside, "{through:?}");
            std::os::unix::fs::symlink(root.join(".ssh"), root.join("keys")).unwrap();
            let read = place(&scope, "keys", Last::Follow);
            assert!(read.hidden, "reading through a link reads .ssh: {read:?}");
            let write = place(&scope, "keys", Last::Keep);
            assert!(!write.hidden, "writing replaces the link itself");
        }
        // What decides whom Ponte trusts, existing or not, is Ponte itself wherever it is.
        let key = place(&scope, "../keys/acme.pub.pem", Last::Keep);
        assert!(key.program, "{key:?}");
        assert_eq!(key.concerns(), vec![Why::Program, Why::OutsideFolder]);
        let opt_ins = place(&scope, ".config/ponte/trusted.json", Last::Keep);
        assert_eq!(opt_ins.concerns(), vec![Why::Program, Why::Hidden]);
        // Reached through a link or at the link's target, a protected file is protected.
        #[cfg(unix)]
        {
            std::fs::create_dir_all(dir.path().join("dotfiles/ponte")).unwrap();
            std::fs::create_dir_all(dir.path().join("keys")).unwrap();
            std::fs::write(dir.path().join("dotfiles/ponte/acme.pub.pem"), "key").unwrap();
            std::os::unix::fs::symlink(
                dir.path().join("dotfiles/ponte/acme.pub.pem"),
                dir.path().join("keys/linked.pem"),
            )
            .unwrap();
            let protected = [dir.path().join("keys/linked.pem")];
            let scope = Scope::new(&root, None, &protected).unwrap();
            assert!(place(&scope, "../keys/linked.pem", Last::Keep).program);
            assert!(place(&scope, "../dotfiles/ponte/acme.pub.pem", Last::Keep).program);
        }
        assert!(!place(&scope, "../keys/other.pem", Last::Keep).program);
        assert!(scope.resolve(&PeerText::from(""), Last::Keep).is_err());
        assert!(scope.resolve(&PeerText::from("a\0b"), Last::Keep).is_err());
    }
}
