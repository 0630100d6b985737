//! `ponte-agent`: see `ponte-agent --help`.

mod desktop;
mod screen;
mod serve;
mod shell;
mod sysinfo;
mod ui;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use ponte_protocol::app::{Capability, Control, EndReason, Grants};
use ponte_protocol::handshake::{CodeAttempts, HandshakeError};
use ponte_protocol::identity::{PeerIdentity, PublicKey, TrustStore};
use ponte_protocol::rendezvous::{ClientMessage, Refusal, RelayMessage};
use ponte_protocol::{OneTimeCode, os_rng};
use ponte_session::connect::{RelayArgs, TrustNote};
use ponte_session::{SecureStream, Session, SessionError};

use crate::ui::Ui;

/// Ponte agent: lets an assistant help you on this computer, end-to-end encrypted.
///
/// It shows a session ID and a one-time code to read to your assistant. When they connect you
/// see who they are and choose what they may do; everything they do is shown here and written
/// to a log file. Ctrl-C ends the session at any time. The agent installs nothing and exits
/// when the session ends.
#[derive(Debug, Parser)]
#[command(name = "ponte-agent", version, about, long_about)]
struct Cli {
    #[command(flatten)]
    relay: RelayArgs,

    /// Print JSON lines on stdout instead of text (for scripts); nothing is asked.
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

    /// Directory that relative paths of the assistant refer to [default: your home].
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

/// `ponte-agent.toml` beside the binary: organisation keys an installer pre-trusts.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct BesideConfig {
    #[serde(default)]
    trust_org: Vec<PathBuf>,
}

fn load_trust(cli: &Cli) -> anyhow::Result<TrustStore> {
    let mut files = cli.trust_org.clone();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(ToOwned::to_owned))
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

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let ui = Ui::new(cli.json);
    match run(&cli, &ui).await {
        Ok(code) => code,
        Err(e) => {
            if ui.is_json() {
                println!(
                    "{}",
                    serde_json::json!({"event": "error", "message": format!("{e:#}")})
                );
            }
            eprintln!("ponte-agent: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn connect(cli: &Cli, ui: &Ui) -> anyhow::Result<ponte_transport::client::RelayClient> {
    let options = cli.relay.options();
    let result = match ponte_session::connect::connect(&options, cli.relay.accept_new_fingerprint).await {
        Err(SessionError::FingerprintChanged { known, seen }) if !ui.is_json() => {
            ui.note(&format!(
                "WARNING: the relay {} presents a DIFFERENT certificate than before.\n  \
                 before: {known}\n  now:    {seen}\n  \
                 Someone may be intercepting the connection. Only continue if the relay's operator \
                 confirms the new fingerprint. Continue? [y/N]",
                cli.relay.relay
            ));
            if matches!(ui.next_line().await.as_deref(), Some("y" | "Y" | "yes")) {
                ponte_session::connect::connect(&options, true).await
            } else {
                Err(SessionError::FingerprintChanged { known, seen })
            }
        }
        other => other,
    };
    let (client, note) = result.with_context(|| format!("connecting to the relay {}", cli.relay.relay))?;
    match note {
        TrustNote::FirstUse(fp) => ui.note(&format!(
            "First connection to relay {}; remembered its fingerprint {fp}",
            cli.relay.relay
        )),
        TrustNote::AcceptedChange(fp) => ui.note(&format!("Accepted the relay's new fingerprint {fp}")),
        TrustNote::Trusted => {}
    }
    Ok(client)
}

async fn run(cli: &Cli, ui: &Ui) -> anyhow::Result<ExitCode> {
    let trust = load_trust(cli)?;
    loop {
        let mut client = connect(cli, ui).await?;
        let (id, ttl) = client.register().await.context("registering with the relay")?;
        let code = OneTimeCode::random(&mut os_rng());
        let mut attempts = CodeAttempts::new();
        ui.ready(id, &code, ttl.as_secs());
        let established = loop {
            let message = tokio::select! {
                m = client.next() => m.context("connection to the relay")?,
                _ = tokio::signal::ctrl_c() => {
                    ui.ended("you quit before anyone connected");
                    return Ok(ExitCode::SUCCESS);
                }
            };
            match message {
                RelayMessage::Paired => {
                    match ponte_session::handshake::agent(&client, id, &code, &mut attempts, &trust).await {
                        Ok(established) => break Some(established),
                        Err(e) => {
                            if attempts.must_burn() {
                                let _ = client.send(&ClientMessage::Burn).await;
                                // The relay ends the session (telling the viewer why), then
                                // the control line; closing first would say "peer left".
                                let _ = tokio::time::timeout(Duration::from_secs(3), client.next()).await;
                                client.connection().close(0u32.into(), b"burned");
                                ui.burned();
                                break None;
                            }
                            match e {
                                SessionError::Handshake(HandshakeError::WrongCode) => {
                                    ui.wrong_code(attempts.remaining())
                                }
                                other => ui.note(&format!("A connection attempt failed: {other}")),
                            }
                            client.send(&ClientMessage::Release).await?;
                        }
                    }
                }
                RelayMessage::PeerLeft => client.send(&ClientMessage::Release).await?,
                RelayMessage::Registered { .. } => {}
                // The relay turned a viewer away; the session goes on (to be shown to the customer).
                RelayMessage::JoinRefused(_) => {}
                RelayMessage::Refused(Refusal::Expired) => {
                    ui.note("The code expired unused; here is a new one.");
                    break None;
                }
                RelayMessage::Refused(reason) => anyhow::bail!("the relay ended the session: {reason}"),
            }
        };
        if let Some((session, control, peer)) = established {
            return run_session(cli, ui, session, control, peer, id).await;
        }
    }
}

fn log_path(cli: &Cli, id: ponte_protocol::SessionId) -> PathBuf {
    cli.log.clone().unwrap_or_else(|| {
        dirs::data_dir()
            .unwrap_or_else(|| PathBuf::from("."))
            .join("ponte")
            .join("sessions")
            .join(format!("{}-{}.log", ponte_session::now_unix(), id.to_digits()))
    })
}

async fn run_session(
    cli: &Cli,
    ui: &Ui,
    session: Session,
    mut control: SecureStream,
    peer: PeerIdentity,
    id: ponte_protocol::SessionId,
) -> anyhow::Result<ExitCode> {
    ui.open_log(&log_path(cli, id));
    let grants = match cli.allow {
        Some(g) => g,
        None if ui.is_json() => Grants::NONE,
        None => ui.ask_consent(&peer).await.unwrap_or(Grants::NONE),
    };
    ui.consent(&peer, grants);
    control.send.send(&Control::Grants(grants)).await?;
    let ctx = serve::Context {
        grants: Arc::new(Mutex::new(grants)),
        ui: ui.clone(),
        base: cli
            .dir
            .clone()
            .or_else(dirs::home_dir)
            .unwrap_or_else(|| PathBuf::from(".")),
        display: screen::DisplayOptions {
            display: cli.display.clone(),
            monitor: cli.monitor,
        },
    };
    let reason = loop {
        tokio::select! {
            stream = session.accept() => match stream {
                Ok(stream) => { tokio::spawn(serve::serve(stream, ctx.clone())); }
                Err(e) => break format!("connection lost ({e})"),
            },
            message = control.recv.recv::<Control>() => match message {
                Ok(Some(Control::Chat { text, .. })) => ui.chat(&text),
                Ok(Some(Control::End(reason))) => break reason.to_string(),
                Ok(Some(Control::Grants(_))) => {} // Only the customer grants.
                Ok(None) | Err(_) => break "the assistant disconnected".into(),
            },
            line = ui.next_line(), if !ui.is_json() => {
                let Some(line) = line else { continue };
                let Some(command) = ui.dispatch(line) else { continue };
                if let Some(reason) = customer_command(&command, &ctx, &mut control, ui).await? {
                    break reason;
                }
            }
            _ = tokio::signal::ctrl_c() => {
                let _ = control.send.send(&Control::End(EndReason::CustomerEnded)).await;
                break "you ended the session".into();
            }
        }
    };
    let _ = control.send.finish().await;
    // Closing discards unacknowledged data: let the assistant receive why the session ended.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(3), control.send.flushed()).await;
    ui.ended(&reason);
    session.connection().close(0u32.into(), b"session ended");
    // Give the close a moment to reach the relay so the assistant hears it promptly.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    Ok(ExitCode::SUCCESS)
}

/// Handles a line the customer typed during the session; returns Some(reason) to end it.
async fn customer_command(
    line: &str,
    ctx: &serve::Context,
    control: &mut SecureStream,
    ui: &Ui,
) -> anyhow::Result<Option<String>> {
    let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
    match word {
        "end" | "quit" | "q" => {
            control.send.send(&Control::End(EndReason::CustomerEnded)).await?;
            return Ok(Some("you ended the session".into()));
        }
        "revoke" | "grant" => {
            let capability: Capability = match rest.parse() {
                Ok(c) => c,
                Err(e) => {
                    ui.note(&e.to_string());
                    return Ok(None);
                }
            };
            let grants = {
                let mut g = ctx.grants.lock().unwrap_or_else(|e| e.into_inner());
                if word == "revoke" {
                    g.revoke(capability)
                } else {
                    g.grant(capability)
                }
                *g
            };
            ui.activity(
                "permissions",
                &format!("permissions changed: now allowed {grants}"),
            );
            control.send.send(&Control::Grants(grants)).await?;
        }
        "chat" if !rest.is_empty() => {
            control
                .send
                .send(&Control::Chat {
                    text: rest.to_owned(),
                    sent_unix_ms: ponte_session::now_unix() * 1000,
                })
                .await?;
            ui.activity("chat", &format!("you: {rest}"));
        }
        "" => {}
        _ => ui.note("Commands: revoke NAME, grant NAME, chat TEXT, end"),
    }
    Ok(None)
}
