//! How an agent runs: the relay, whom to trust, what is granted up front, what is shared.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use ponte_e2e::app::Grants;
use ponte_e2e::identity::{PublicKey, TrustStore};
use ponte_session::connect::RelayOptions;

use crate::desktop::DisplayOptions;

/// Everything the core needs to know.
pub struct Config {
    /// How to reach and trust the relay.
    pub relay: RelayOptions,
    /// Continue when the relay's certificate changed since the last time.
    pub accept_new_fingerprint: bool,
    /// Organisation keys whose certificates make an assistant "verified", and the files that
    /// decide them.
    pub trust: Trust,
    /// Permissions granted without asking (scripts, pre-configured agents).
    pub allow: Option<Grants>,
    /// Whether the customer can be asked. Without anyone to ask (scripts), nothing is granted
    /// beyond `allow` and what would need a question is refused.
    pub interactive: bool,
    /// The folder file permissions cover, and where commands start.
    pub scope: PathBuf,
    /// The session log [default: `<data dir>/ponte/sessions/<time>-<id>.log`].
    pub log: Option<PathBuf>,
    /// The desktop to share.
    pub display: DisplayOptions,
    /// The customer's language.
    pub tr: std::sync::Arc<crate::i18n::Tr>,
    /// The quick-access opt-ins file ([`crate::quick_access::opt_ins`]); `None`: no quick access at all.
    pub opt_ins: Option<PathBuf>,
    /// Whether to wait for the assistants the customer opted in for (quick access) besides the
    /// code. Only where the customer can be asked: never for a script's agent.
    pub quick_line: bool,
    /// How long a session whose connection was lost waits to be resumed by its assistant
    /// (no new code or consent); zero: it ends at once, as before.
    pub resume: std::time::Duration,
}

/// `ponte-agent.toml` beside the binary: organisation keys an installer pre-trusts.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct BesideConfig {
    /// `NAME=FILE` or `FILE`, as `--trust-org`; relative files are beside the program.
    #[serde(default)]
    trust_org: Vec<String>,
}

/// Whom the agent trusts, and every file that decides it.
pub struct Trust {
    /// The organisation keys, with the names the customer's configuration gives them.
    pub store: TrustStore,
    /// What the agent loaded (or would load) to decide whom it trusts: `ponte-agent.toml`
    /// beside the program and every organisation key named there or on the command line.
    /// Nothing the assistant sends may write them without the customer's "Ponte itself" yes.
    pub files: Vec<PathBuf>,
}

/// `NAME=FILE`, or a plain `FILE` named after the file (`acme.pub.pem`: "acme"). The name is
/// what the customer is shown for assistants the key certifies.
fn trusted_org(arg: &str) -> (String, PathBuf) {
    if let Some((name, file)) = arg.split_once('=')
        && !name.trim().is_empty()
        && !Path::new(arg).exists()
    {
        return (name.trim().to_owned(), PathBuf::from(file));
    }
    let file = PathBuf::from(arg);
    let stem = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = stem.trim_end_matches(".pem").trim_end_matches(".pub").to_owned();
    (name, file)
}

/// The organisation keys named by `orgs` (`NAME=FILE` or `FILE`) and by `ponte-agent.toml`
/// beside the running program (its files relative to it).
pub fn load_trust(orgs: &[String]) -> anyhow::Result<Trust> {
    let mut named: Vec<(String, PathBuf)> = orgs.iter().map(|o| trusted_org(o)).collect();
    let mut files = Vec::new();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_owned))
    {
        let path = dir.join("ponte-agent.toml");
        if let Ok(text) = std::fs::read_to_string(&path) {
            let config: BesideConfig =
                toml::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
            named.extend(config.trust_org.iter().map(|o| {
                let (name, file) = trusted_org(o);
                (name, dir.join(file))
            }));
        }
        files.push(path);
    }
    let mut store = TrustStore::new();
    for (name, file) in named {
        let pem = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
        let key =
            PublicKey::from_pem(&pem).with_context(|| format!("organisation key {}", file.display()))?;
        store.add(key, name);
        files.push(std::path::absolute(&file).unwrap_or(file));
    }
    Ok(Trust { store, files })
}

impl Config {
    /// Ponte's own files: everything that decides whom the agent trusts — the organisation
    /// keys and the configuration naming them, the customer's Ponte settings and opt-ins — and
    /// the program itself. Nothing the assistant sends may write them without the customer's
    /// "Ponte itself" yes, and what else changes them while the assistant has access is told.
    pub fn own_files(&self) -> Vec<PathBuf> {
        let mut files = self.trust.files.clone();
        files.extend(dirs::config_dir().map(|d| d.join("ponte")));
        files.extend(std::env::current_exe().ok());
        files
    }
}

/// Where a session's log goes by default.
pub fn default_log(session: ponte_wire::SessionId) -> PathBuf {
    dirs::data_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("ponte")
        .join("sessions")
        .join(format!(
            "{}-{}.log",
            ponte_session::now_unix(),
            session.to_digits()
        ))
}
