//! `ponte-agent`: see `ponte-agent --help`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ponte_agent::desktop::DisplayOptions;
use ponte_agent::{Config, frontend, ui};
use ponte_protocol::app::Grants;
use ponte_session::connect::RelayArgs;

/// Ponte agent: lets an assistant help you on this computer, end-to-end encrypted.
///
/// It shows a session ID and a one-time code to read to your assistant. When they connect you
/// see who they are and choose what they may do; everything they do is shown here and written
/// to a log file. Type `revoke NAME` to take a permission back (whatever runs under it stops at
/// once) and `end` or Ctrl-C to end the session at any time. The agent installs nothing and
/// exits when the session ends.
#[derive(Debug, Parser)]
#[command(name = "ponte-agent", version, about, long_about)]
struct Cli {
    #[command(flatten)]
    relay: RelayArgs,

    /// Print JSON lines on stdout instead of text (for scripts); nothing is asked, so only
    /// what --allow grants is allowed.
    #[arg(long)]
    json: bool,

    /// Grant these without asking: comma-separated terminal, upload, download, info, chat,
    /// screen, control (mouse and keyboard; includes screen), or all.
    #[arg(long, value_parser = Grants::parse_list)]
    allow: Option<Grants>,

    /// Trust certificates issued by this organisation public key (PEM); repeatable. Keys
    /// listed in ponte-agent.toml beside the program are trusted too.
    #[arg(long = "trust-org")]
    trust_org: Vec<PathBuf>,

    /// Where to keep the activity log [default: ~/.local/share/ponte/sessions/…].
    #[arg(long)]
    log: Option<PathBuf>,

    /// The folder you share: the assistant's relative paths start here, and file permissions
    /// cover it (hidden files, startup places and anything outside are asked one by one)
    /// [default: your home].
    #[arg(long)]
    dir: Option<PathBuf>,

    /// The X display to share [default: $DISPLAY].
    #[arg(long)]
    display: Option<String>,

    /// Which monitor to share when there are several: its number in the RandR list, from 0
    /// [default: the primary monitor].
    #[arg(long)]
    monitor: Option<usize>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let json = cli.json;
    let result = async {
        let config = Config {
            relay: cli.relay.options(),
            accept_new_fingerprint: cli.relay.accept_new_fingerprint,
            trust: ponte_agent::config::load_trust(&cli.trust_org)?,
            allow: cli.allow,
            interactive: !json,
            scope: cli
                .dir
                .clone()
                .or_else(dirs::home_dir)
                .unwrap_or_else(|| PathBuf::from(".")),
            log: cli.log.clone(),
            display: DisplayOptions {
                display: cli.display.clone(),
                monitor: cli.monitor,
            },
        };
        let (core, ends) = frontend::channel();
        let shown = if json {
            tokio::spawn(ui::json::run(ends))
        } else {
            tokio::spawn(ui::text::run(ends))
        };
        let result = ponte_agent::run(config, core).await;
        // The front-end ends after the last event (or when the core is gone).
        let _ = shown.await;
        result
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The chain may quote the relay (close reasons): inert.
            eprintln!("ponte-agent: {}", ponte_protocol::PeerText::new(format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}
