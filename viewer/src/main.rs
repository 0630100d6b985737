//! `ponte-viewer`: see `ponte-viewer --help`.

mod app;
mod commands;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ponte_session::connect::{RelayArgs, TrustNote};
use ponte_viewer::devices::Devices;
use ponte_viewer::{DeviceJoinOptions, JoinOptions, Notice, identity};
use ponte_wire::rendezvous::Refusal;
use ponte_wire::{OneTimeCode, SessionId};

use crate::commands::{Command, HELP, Runner};

/// Ponte viewer: help a customer on their computer — terminal, files, system information and
/// chat — end-to-end encrypted through a Ponte relay.
///
/// Ask the customer to start ponte-agent and read you the session ID and code, then type them
/// into the app (`ponte-viewer` on a desktop opens it) or run `ponte-viewer connect ID --code
/// CODE`. A customer who allowed you quick access (`remember
/// NAME` in a session) only needs to start ponte-agent: `ponte-viewer connect --device NAME`.
#[derive(Debug, Parser)]
#[command(name = "ponte-viewer", version, about, long_about)]
struct Cli {
    /// Without one: the app on a desktop, this help elsewhere.
    #[command(subcommand)]
    command: Option<Top>,
}

#[derive(Debug, Subcommand)]
enum Top {
    /// The app: one window for your sessions — files side by side, terminals, chat, the
    /// customer's system, the clipboard (the default on a desktop).
    App(AppArgs),
    #[command(flatten)]
    Other(Other),
}

/// Everything but the app: it runs on the runtime.
#[derive(Debug, Subcommand)]
enum Other {
    /// Join a customer's session and work in it (prompt, or --batch).
    Connect(Connect),
    /// The customers' devices you may reconnect to without a code (quick access), by name.
    Devices,
    /// Your assistant identity (an RSA-3072 key customers see as your fingerprint).
    Identity {
        #[command(subcommand)]
        command: IdentityCommand,
        /// Identity directory [default: ~/.config/ponte/identity].
        #[arg(long, global = true)]
        identity_dir: Option<PathBuf>,
    },
    /// Organisation keys that certify assistants, so customers see "verified: NAME, ORG".
    Org {
        #[command(subcommand)]
        command: OrgCommand,
    },
}

#[derive(Debug, clap::Args)]
struct Connect {
    /// The session ID the customer read out (e.g. "123 456 789").
    #[arg(required_unless_present = "device")]
    session_id: Option<SessionId>,
    /// The one-time code the customer read out (e.g. "1234-5678").
    #[arg(long, required_unless_present = "device")]
    code: Option<OneTimeCode>,
    /// Quick access: connect without a code to the customer's device saved under NAME (see
    /// `ponte-viewer devices`). The customer must have started ponte-agent; they still see who
    /// connects and decide.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["session_id", "code"])]
    device: Option<String>,
    #[command(flatten)]
    relay: RelayArgs,
    #[command(flatten)]
    assistant: ponte_session::connect::AssistantArgs,
    /// Run the commands in FILE (or - for stdin), one per line, then quit; exit non-zero if any
    /// failed.
    #[arg(long)]
    batch: Option<String>,
    /// Identity directory [default: ~/.config/ponte/identity].
    #[arg(long)]
    identity_dir: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct AppArgs {
    #[command(flatten)]
    relay: RelayArgs,
    #[command(flatten)]
    assistant: ponte_session::connect::AssistantArgs,
    /// Identity directory [default: ~/.config/ponte/identity].
    #[arg(long)]
    identity_dir: Option<PathBuf>,
    /// Your folder in the Files tab [default: Ponte in your downloads folder, made if missing:
    /// what a customer's computer sends lands apart from your own files].
    #[arg(long)]
    folder: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum IdentityCommand {
    /// Create your identity key (RSA-3072).
    New {
        /// Your name as customers will see it once certified.
        #[arg(long)]
        name: String,
        /// Replace an existing identity.
        #[arg(long)]
        force: bool,
    },
    /// Show your identity: fingerprint, public key file, certificate.
    Show,
}

#[derive(Debug, Subcommand)]
enum OrgCommand {
    /// Create an organisation key pair: PREFIX.key.pem (keep secret) and PREFIX.pub.pem (give
    /// to customers' agents with --trust-org).
    New {
        /// File name prefix.
        #[arg(long)]
        out: PathBuf,
    },
    /// Certify an assistant's public key.
    Certify {
        /// The organisation's private key (PREFIX.key.pem).
        #[arg(long)]
        org_key: PathBuf,
        /// The assistant's public key (assistant.pub.pem from `identity show`).
        #[arg(long)]
        assistant: PathBuf,
        /// The assistant's name.
        #[arg(long)]
        name: String,
        /// The organisation's name.
        #[arg(long)]
        organisation: String,
        /// Days of validity.
        #[arg(long, default_value_t = 365)]
        days: u64,
        /// Where to write the certificate; the assistant puts it in their identity directory as
        /// assistant.cert.pem.
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let command = cli.command.or_else(|| {
        desktop()
            .then(|| Cli::parse_from(["ponte-viewer", "app"]).command)
            .flatten()
    });
    let Some(command) = command else {
        let _ = <Cli as clap::CommandFactory>::command().print_help();
        return ExitCode::SUCCESS;
    };
    // Two workers at least, also on one CPU: a command blocked on a write (stdout piped into
    // a paused pager) must never hold up the connection's tasks (see `commands::blocking`).
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("ponte-viewer: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match command {
        // The window runs on this thread (toolkits want the main one), sessions on the runtime.
        Top::App(args) => open_app(runtime.handle(), args),
        // On a worker like the tasks it talks to (the connection's driver, the streams'), not
        // on this thread: a wake-up between tasks of one worker needs no thread switch.
        Top::Other(other) => match runtime.block_on(runtime.spawn(run(other))) {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(anyhow::anyhow!("the session task failed: {e}")),
        },
    };
    result.unwrap_or_else(|e| {
        eprintln!("ponte-viewer: {e:#}");
        ExitCode::FAILURE
    })
}

/// Whether a window can be opened here.
fn desktop() -> bool {
    ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|var| std::env::var_os(var).is_some_and(|v| !v.is_empty()))
}

fn open_app(runtime: &tokio::runtime::Handle, args: AppArgs) -> anyhow::Result<ExitCode> {
    let folder = match args.folder {
        Some(folder) => folder,
        None => app::downloads()?,
    };
    app::run(
        runtime,
        app::Settings {
            relay: args.relay,
            assistant: args.assistant,
            identity_dir: args.identity_dir.unwrap_or_else(identity::default_dir),
            folder,
        },
    )?;
    Ok(ExitCode::SUCCESS)
}

async fn run(command: Other) -> anyhow::Result<ExitCode> {
    match command {
        Other::Connect(c) => connect(c).await,
        Other::Devices => devices(),
        Other::Identity {
            command,
            identity_dir,
        } => {
            let dir = identity_dir.unwrap_or_else(identity::default_dir);
            match command {
                IdentityCommand::New { name, force } => identity::create(&dir, &name, force).map(|key| {
                    println!("created identity in {}", dir.display());
                    println!("key fingerprint: {}", key.public_key().fingerprint());
                    println!("public key: {}", identity::public_path(&dir).display());
                    println!(
                        "To be shown as verified, have your organisation certify the public key and save the \
                         certificate as {}",
                        identity::cert_path(&dir).display()
                    );
                    ExitCode::SUCCESS
                }),
                IdentityCommand::Show => identity::show(&dir).map(|text| {
                    print!("{text}");
                    ExitCode::SUCCESS
                }),
            }
        }
        Other::Org { command } => match command {
            OrgCommand::New { out } => identity::org_new(&out).map(|(key, public)| {
                println!("organisation private key: {} (keep it secret)", key.display());
                println!(
                    "organisation public key: {} (customers' agents trust it with --trust-org)",
                    public.display()
                );
                ExitCode::SUCCESS
            }),
            OrgCommand::Certify {
                org_key,
                assistant,
                name,
                organisation,
                days,
                out,
            } => identity::org_certify(&org_key, &assistant, &name, &organisation, days, &out).map(|_| {
                println!(
                    "certificate for {name}, {organisation} written to {}",
                    out.display()
                );
                ExitCode::SUCCESS
            }),
        },
    }
}

async fn connect(c: Connect) -> anyhow::Result<ExitCode> {
    let dir = c.identity_dir.clone().unwrap_or_else(identity::default_dir);
    let (credentials, created) = identity::load_or_create(&dir)?;
    if created {
        eprintln!(
            "[ponte] created an identity in {} (customers will see you as UNVERIFIED; see `ponte-viewer identity`)",
            dir.display()
        );
    }
    let joined = match (&c.device, c.session_id, c.code.clone()) {
        (Some(name), _, _) => {
            let book = Devices::load(&Devices::default_path())?;
            let device = book.get(name)?;
            eprintln!(
                "[ponte] connecting to {name:?} at {} (quick access)…",
                c.relay.relay
            );
            let options = DeviceJoinOptions {
                relay: c.relay.options(),
                accept_new_fingerprint: c.relay.accept_new_fingerprint,
                device: device.key,
                credentials,
                extras: c.assistant.join_extras()?,
            };
            ponte_viewer::join_device(options).await
        }
        (None, Some(session), Some(code)) => {
            eprintln!("[ponte] joining session {session} at {}…", c.relay.relay);
            let options = JoinOptions {
                relay: c.relay.options(),
                accept_new_fingerprint: c.relay.accept_new_fingerprint,
                session,
                code,
                credentials,
                extras: c.assistant.join_extras()?,
            };
            ponte_viewer::join(options).await
        }
        _ => anyhow::bail!("give the session ID and --code, or --device NAME"),
    };
    let (mut viewer, note) = joined.map_err(|e| match e {
        e @ (ponte_viewer::ViewerError::WrongCode
        | ponte_viewer::ViewerError::Burned
        | ponte_viewer::ViewerError::WrongDevice
        | ponte_viewer::ViewerError::FingerprintChanged(_)) => anyhow::anyhow!(e),
        ponte_viewer::ViewerError::Relay(Refusal::UnknownSession) if c.device.is_some() => anyhow::anyhow!(
            "the customer's device is not waiting: ask them to start ponte-agent (quick access works only while it runs)"
        ),
        other => anyhow::anyhow!(other).context(format!("connecting to the relay {}", c.relay.relay)),
    })?;
    if let TrustNote::FirstUse(fp) = note {
        eprintln!(
            "[ponte] first connection to relay {}; remembered its fingerprint {fp}",
            c.relay.relay
        );
    }
    eprintln!("[ponte] connected end-to-end; waiting for the customer to allow access…");
    // What the customer's side says is printed as it arrives, inert.
    let printer = viewer.notices().map(|mut notices| {
        tokio::spawn(async move {
            while let Some(notice) = notices.recv().await {
                commands::say(&match notice {
                    Notice::Grants(g) => format!("[ponte] the customer allows: {g}"),
                    Notice::Chat(text) => format!("[ponte] {} customer: {text}", ponte_session::clock()),
                    Notice::Reconnecting(true) => "[ponte] connection lost — reconnecting…".to_owned(),
                    Notice::Reconnecting(false) => "[ponte] reconnected".to_owned(),
                    Notice::Ended(reason) => format!("[ponte] session ended: {reason}"),
                });
            }
        })
    });
    if viewer.consent(Duration::from_secs(600)).await.is_none() && viewer.state().ended.is_none() {
        eprintln!("[ponte] the customer has not answered yet; requests will be refused until they do");
    }
    let mut runner = Runner::new(viewer);
    let code = match c.batch.as_deref() {
        Some(source) => batch(&mut runner, source).await?,
        None => interactive(&mut runner).await,
    };
    let remembered = runner.finish().await?;
    if let Some(printer) = printer {
        // The last notices (why the session ended) are printed before the program exits.
        let _ = tokio::time::timeout(Duration::from_secs(3), printer).await;
    }
    // A detected attack on the path fails the run, whatever the commands did; so does a
    // quick-access request the customer did not allow.
    if runner.viewer().state().tampered || !remembered {
        return Ok(ExitCode::FAILURE);
    }
    Ok(code)
}

/// `ponte-viewer devices`: the address book.
fn devices() -> anyhow::Result<ExitCode> {
    let path = Devices::default_path();
    let book = Devices::load(&path)?;
    if book.list().is_empty() {
        println!("no devices yet: in a session, `remember NAME` asks the customer for quick access");
        return Ok(ExitCode::SUCCESS);
    }
    let now = ponte_session::now_unix();
    for device in book.list() {
        let left = match device.not_after.checked_sub(now) {
            Some(secs) => format!("{} day(s) left", secs.div_ceil(86_400)),
            None => "EXPIRED".to_owned(),
        };
        println!("{}  ({left})  relay tag {}", device.name, device.key.tag());
    }
    Ok(ExitCode::SUCCESS)
}

async fn batch(runner: &mut Runner, source: &str) -> anyhow::Result<ExitCode> {
    let reader: Box<dyn std::io::BufRead + Send> = if source == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        let file = std::fs::File::open(source).with_context(|| format!("reading {source}"))?;
        Box::new(std::io::BufReader::new(file))
    };
    // Lines are run as they arrive, so a script can drive the session step by step on stdin.
    let (tx, mut lines) = tokio::sync::mpsc::channel::<String>(16);
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(reader).map_while(Result::ok) {
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    let mut failed = 0;
    let mut n = 0;
    while let Some(line) = lines.recv().await {
        n += 1;
        let line = line.as_str();
        let command = match commands::parse(line) {
            Ok(Some(c)) => c,
            Ok(None) => continue,
            Err(e) => {
                eprintln!("[ponte] line {n}: {e}");
                failed += 1;
                continue;
            }
        };
        match runner.run(command).await {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                eprintln!("[ponte] line {n}: {line}: {e:#}");
                failed += 1;
                if runner.viewer().state().ended.is_some() {
                    break;
                }
            }
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn interactive(runner: &mut Runner) -> ExitCode {
    eprintln!("{HELP}");
    // Raw bytes from stdin: lines at the prompt, keystrokes in a shell.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match std::io::Read::read(&mut std::io::stdin(), &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.blocking_send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let mut pending = Vec::new();
    loop {
        eprint!("ponte> ");
        let line = loop {
            if let Some(end) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                break String::from_utf8_lossy(&line).into_owned();
            }
            match rx.recv().await {
                Some(bytes) => pending.extend_from_slice(&bytes),
                None => return ExitCode::SUCCESS,
            }
        };
        let result = match commands::parse(&line) {
            Ok(Some(Command::Quit)) => return ExitCode::SUCCESS,
            Ok(Some(Command::Shell)) => runner.shell(&mut rx).await,
            Ok(Some(command)) => runner.run(command).await.map(|_| ()),
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            eprintln!("[ponte] {e:#}");
        }
        if runner.viewer().state().ended.is_some() {
            return ExitCode::FAILURE;
        }
    }
}
