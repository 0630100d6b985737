//! `ponte-agent`: see `ponte-agent --help`.

mod ui;

use std::path::PathBuf;
use std::process::ExitCode;

use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use ponte_agent::desktop::{DisplayOptions, IndicatorText, SessionKind};
use ponte_agent::i18n::{Lang, Tr, t};
use ponte_agent::{Config, frontend};
use ponte_e2e::app::Grants;
use ponte_session::connect::RelayArgs;

/// Ponte agent: lets an assistant help you on this computer, end-to-end encrypted.
///
/// It opens a window (or, without a display or with --text, works in this terminal) that shows
/// a session ID and a one-time code to read to your assistant. When they connect you see who
/// they are and choose what they may do; everything they do is shown and written to a log
/// file. Switch a permission off to take it back (whatever runs under it stops at once; in the
/// terminal type `revoke NAME`), and end the session at any time ("End session", `end` or
/// Ctrl-C). The agent installs nothing and exits when the session ends.
///
/// It speaks English, Italian and Polish, chosen from LC_ALL, LC_MESSAGES or LANG.
fn parse_lang(s: &str) -> Result<Lang, String> {
    Lang::parse(s).ok_or_else(|| format!("'{s}' is not one of en, it, pl"))
}

#[derive(Debug, Parser)]
#[command(name = "ponte-agent", version, about, long_about)]
struct Cli {
    #[command(flatten)]
    relay: RelayArgs,

    /// Work in this terminal instead of opening a window.
    #[arg(long, conflicts_with = "json")]
    text: bool,

    /// The language to speak: en, it or pl [default: from LC_ALL, LC_MESSAGES or LANG].
    #[arg(long, value_parser = parse_lang)]
    lang: Option<Lang>,

    /// Print JSON lines on stdout instead of text (for scripts); nothing is asked, so only
    /// what --allow grants is allowed, and only to whoever uses the code shown (quick access
    /// is off: nobody could be asked).
    #[arg(long)]
    json: bool,

    /// Grant these without asking: comma-separated terminal, upload, download, info, chat,
    /// screen, control (mouse and keyboard; includes screen), or all.
    #[arg(long, value_parser = Grants::parse_list)]
    allow: Option<Grants>,

    /// Trust certificates issued by this organisation public key (PEM), shown to you under
    /// NAME (without NAME=, under the file's name); repeatable. Keys listed in
    /// ponte-agent.toml beside the program (trust-org = ["NAME=FILE", …]) are trusted too.
    #[arg(long = "trust-org", value_name = "[NAME=]FILE")]
    trust_org: Vec<String>,

    /// Do not let the assistants you allowed quick access connect without a code this time:
    /// only the session ID and code shown work.
    #[arg(long)]
    no_quick_access: bool,

    /// Where to keep the activity log [default: ~/.local/share/ponte/sessions/…].
    #[arg(long)]
    log: Option<PathBuf>,

    /// The folder you share: the assistant's relative paths start here, and file permissions
    /// cover it (hidden files, startup places and anything outside are asked one by one —
    /// unless you allow the terminal, which reaches everything you can) [default: your home].
    #[arg(long)]
    dir: Option<PathBuf>,

    /// The kind of desktop to share: x11, or wayland (through the system's screen-sharing
    /// portal, which asks you in its own dialog) [default: your session's kind].
    #[arg(long, value_enum)]
    desktop: Option<SessionKind>,

    /// The X display to share [default: $DISPLAY]. The clipboard is always $DISPLAY's.
    #[arg(long)]
    display: Option<String>,

    /// On X11, share only this monitor: its number in the RandR list, from 0 [default: the
    /// primary monitor first, and the assistant may switch to the others]. On Wayland the
    /// customer picks in the system's dialog.
    #[arg(long)]
    monitor: Option<usize>,

    /// When the connection is lost (Wi-Fi drop, relay restart), keep the session this many
    /// seconds for the assistant to reconnect: no new code, your permissions kept, and you can
    /// end it meanwhile. 0: end the session at once.
    #[arg(long, value_name = "SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(0..=3600))]
    resume_secs: u64,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Quick access: the assistants you let connect without a code (list them, take one back).
    #[command(alias = "trusted")]
    QuickAccess {
        #[command(subcommand)]
        action: QuickAccessAction,
    },
}

#[derive(Debug, clap::Subcommand)]
enum QuickAccessAction {
    /// Show who may connect without a code, until when, with which remembered permissions.
    List,
    /// Take one back: from now on they need a new code again (NUMBER as in `quick-access list`).
    Remove {
        /// The entry's number in `ponte-agent quick-access list`.
        number: usize,
    },
}

/// `ponte-agent quick-access …`: works on the opt-ins file only; nothing connects anywhere.
fn quick_access(tr: &Tr, action: QuickAccessAction) -> anyhow::Result<()> {
    use ponte_agent::quick_access::opt_ins::{OptIns as Store, OptInsError};
    let path = Store::default_path().context("no configuration folder for this user")?;
    match action {
        QuickAccessAction::List => {
            let store = Store::load(&path)?;
            let now = ponte_session::now_unix();
            if store.entries().is_empty() {
                println!("{}", t!(tr, "quick-access-none"));
                return Ok(());
            }
            println!("{}", t!(tr, "quick-access-title"));
            for (i, entry) in store.entries().iter().enumerate() {
                println!(
                    "  {}",
                    ponte_agent::i18n::phrases::opt_in_line(tr, i + 1, entry, now)
                );
            }
            println!("{}", t!(tr, "quick-access-remove-hint"));
        }
        QuickAccessAction::Remove { number } => match Store::update(&path, |store| store.remove(number)) {
            Ok(entry) => {
                println!(
                    "{}",
                    t!(
                        tr,
                        "quick-access-removed",
                        who = ponte_agent::i18n::phrases::opt_in_who(tr, &entry)
                    )
                );
            }
            Err(OptInsError::NoSuchEntry(n)) => {
                anyhow::bail!("{}", t!(tr, "quick-access-no-such", number = n))
            }
            Err(e) => return Err(e.into()),
        },
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The chain may quote the relay (close reasons): inert.
            eprintln!("ponte-agent: {}", ponte_wire::PeerText::new(format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}

/// What the customer looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Look {
    Window,
    Text,
    Json,
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let look = if cli.json {
        Look::Json
    } else if cli.text || !ui::window::display_available() {
        Look::Text
    } else {
        Look::Window
    };
    let tr = Arc::new(Tr::new(cli.lang.unwrap_or_else(Lang::from_env)));
    if let Some(Command::QuickAccess { action }) = cli.command {
        return quick_access(&tr, action);
    }
    let config = Config {
        relay: cli.relay.options(),
        accept_new_fingerprint: cli.relay.accept_new_fingerprint,
        trust: ponte_agent::config::load_trust(&cli.trust_org)?,
        allow: cli.allow,
        interactive: look != Look::Json,
        scope: cli
            .dir
            .clone()
            .or_else(dirs::home_dir)
            .unwrap_or_else(|| PathBuf::from(".")),
        log: cli.log.clone(),
        resume: std::time::Duration::from_secs(cli.resume_secs),
        display: DisplayOptions {
            desktop: cli.desktop,
            display: cli.display.clone(),
            monitor: cli.monitor,
            indicator: IndicatorText {
                viewing: t!(tr, "indicator-viewing"),
                controlling: t!(tr, "indicator-controlling"),
            },
        },
        tr: tr.clone(),
        opt_ins: ponte_agent::quick_access::opt_ins::OptIns::default_path(),
        // Quick access lets in whom the customer opted in for, with the customer watching (and
        // asked, unless they chose otherwise): never for a script, whose --allow is for the code.
        quick_line: look != Look::Json && !cli.no_quick_access,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let (core, ends) = frontend::channel(tr);
    let core = runtime.spawn(ponte_agent::run(config, core));
    let ends = match look {
        // The window runs on this thread (toolkits want the main one); the core on the runtime.
        Look::Window => match ui::window::run(runtime.handle(), ends) {
            Ok(()) => None,
            Err(ui::window::NoWindow { ends, error }) => {
                let error = ponte_wire::PeerText::new(error);
                match ends {
                    Some(_) => {
                        eprintln!("ponte-agent: cannot open a window ({error}); using the terminal instead.")
                    }
                    None => eprintln!("ponte-agent: the window failed: {error}"),
                }
                ends
            }
        },
        _ => Some(ends),
    };
    runtime.block_on(async {
        if let Some(ends) = ends {
            let shown = if look == Look::Json {
                tokio::spawn(ui::json::run(ends))
            } else {
                tokio::spawn(ui::text::run(ends))
            };
            // The front-end ends after the last event (or when the core is gone).
            let _ = shown.await;
        }
        core.await.context("the agent's core")?
    })
}
