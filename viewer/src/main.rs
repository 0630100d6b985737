//! `ponte-viewer`: see `ponte-viewer --help`.

mod commands;
mod identity;
mod screen;
mod window;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ponte_protocol::handshake::HandshakeError;
use ponte_protocol::{OneTimeCode, SessionId};
use ponte_session::SessionError;
use ponte_session::connect::{RelayArgs, TrustNote};

use crate::commands::{Command, HELP, Viewer};

/// Ponte viewer: help a customer on their computer — terminal, files, system information and
/// chat — end-to-end encrypted through a Ponte relay.
///
/// Ask the customer to start ponte-agent and read you the session ID and code, then run
/// `ponte-viewer connect ID --code CODE`.
#[derive(Debug, Parser)]
#[command(name = "ponte-viewer", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Top,
}

#[derive(Debug, Subcommand)]
enum Top {
    /// Join a customer's session and work in it (prompt, or --batch).
    Connect(Connect),
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
    session_id: SessionId,
    /// The one-time code the customer read out (e.g. "1234-5678").
    #[arg(long)]
    code: OneTimeCode,
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

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Top::Connect(c) => connect(c).await,
        Top::Identity {
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
        Top::Org { command } => match command {
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
    };
    result.unwrap_or_else(|e| {
        eprintln!("ponte-viewer: {e:#}");
        ExitCode::FAILURE
    })
}

fn explain(e: SessionError) -> anyhow::Error {
    match e {
        SessionError::Handshake(HandshakeError::WrongCode) => {
            anyhow::anyhow!(
                "wrong code: the customer's computer did not accept it. Ask them to read it again."
            )
        }
        SessionError::Handshake(HandshakeError::Burned) => anyhow::anyhow!(
            "the code was tried wrongly too often and is no longer valid; the customer now sees a new ID and code"
        ),
        other => match other.refusal() {
            Some(reason) => anyhow::anyhow!("the relay refused: {reason}"),
            None => anyhow::anyhow!(other),
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
    let (mut client, note) = ponte_session::connect::connect(
        &c.relay.options(),
        c.relay.accept_new_fingerprint,
    )
    .await
    .map_err(|e| match e {
        e @ SessionError::FingerprintChanged { .. } => anyhow::anyhow!(
            "WARNING: {e}. Someone may be intercepting the connection; rerun with --accept-new-fingerprint \
                 only after the relay's operator confirmed the new fingerprint."
        ),
        other => anyhow::anyhow!(other).context(format!("connecting to the relay {}", c.relay.relay)),
    })?;
    if let TrustNote::FirstUse(fp) = note {
        eprintln!(
            "[ponte] first connection to relay {}; remembered its fingerprint {fp}",
            c.relay.relay
        );
    }
    let extras = c.assistant.join_extras()?;
    client
        .join_with(c.session_id, &extras)
        .await
        .map_err(|e| explain(e.into()))?;
    eprintln!("[ponte] joined session {}; authenticating…", c.session_id);
    let (session, control) = ponte_session::handshake::viewer(&client, c.session_id, c.code, &credentials)
        .await
        .map_err(explain)?;
    eprintln!("[ponte] connected end-to-end; waiting for the customer to allow access…");
    let mut viewer = Viewer::new(session, control);
    // The customer's consent arrives as the first grants message.
    let answered = tokio::time::timeout(Duration::from_secs(600), async {
        loop {
            if viewer.ended().is_some() || viewer.grants.lock().unwrap_or_else(|e| e.into_inner()).is_some() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    if answered.is_err() {
        eprintln!("[ponte] the customer has not answered yet; requests will be refused until they do");
    }
    let code = match c.batch.as_deref() {
        Some(source) => batch(&mut viewer, source).await?,
        None => interactive(&mut viewer).await,
    };
    viewer.quit().await;
    drop(client);
    Ok(code)
}

async fn batch(viewer: &mut Viewer, source: &str) -> anyhow::Result<ExitCode> {
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
        match viewer.run(command).await {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                eprintln!("[ponte] line {n}: {line}: {e:#}");
                failed += 1;
                if viewer.ended().is_some() {
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

async fn interactive(viewer: &mut Viewer) -> ExitCode {
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
            Ok(Some(Command::Shell)) => viewer.shell(&mut rx).await,
            Ok(Some(command)) => viewer.run(command).await.map(|_| ()),
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            eprintln!("[ponte] {e:#}");
        }
        if let Some(reason) = viewer.ended() {
            eprintln!("[ponte] session ended: {reason}");
            return ExitCode::FAILURE;
        }
    }
}
