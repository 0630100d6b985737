//! How an agent runs: the relay, whom to trust, what is granted up front, what is shared.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use ponte_protocol::app::Grants;
use ponte_protocol::identity::{PublicKey, TrustStore};
use ponte_session::connect::RelayOptions;

use crate::desktop::DisplayOptions;

/// Everything the core needs to know.
pub struct Config {
    /// How to reach and trust the relay.
    pub relay: RelayOptions,
    /// Continue when the relay's certificate changed since the last time.
    pub accept_new_fingerprint: bool,
    /// Organisation keys whose certificates make an assistant "verified".
    pub trust: TrustStore,
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
    /// The quick-access trust file ([`crate::trusted`]); `None`: no quick access at all.
    pub trusted: Option<PathBuf>,
}

/// `ponte-agent.toml` beside the binary: organisation keys an installer pre-trusts.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct BesideConfig {
    #[serde(default)]
    trust_org: Vec<PathBuf>,
}

/// The organisation keys in `files`, plus those listed in `ponte-agent.toml` beside the
/// running program (paths there are relative to it).
pub fn load_trust(files: &[PathBuf]) -> anyhow::Result<TrustStore> {
    let mut files = files.to_vec();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_owned))
    {
        let path = dir.join("ponte-agent.toml");
        if let Ok(text) = std::fs::read_to_string(&path) {
            let config: BesideConfig =
                toml::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
            files.extend(config.trust_org.into_iter().map(|p| dir.join(p)));
        }
    }
    let mut trust = TrustStore::new();
    for file in files {
        let pem = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
        trust.add(PublicKey::from_pem(&pem).with_context(|| format!("organisation key {}", file.display()))?);
    }
    Ok(trust)
}

/// Where a session's log goes by default.
pub fn default_log(session: ponte_protocol::SessionId) -> PathBuf {
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
