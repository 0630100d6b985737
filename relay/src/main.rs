//! `ponte-relay`: see `ponte-relay --help`.

mod cli;

use std::io::Write;

use anyhow::Context;
use clap::Parser;
use cli::{AssistantCommand, Cli, ClusterCommand, Command, ConsoleUserCommand, LedgerCommand, LogFormat};
use ponte_relay::assistants::AssistantAccounts;
use ponte_relay::ledger::report;
use ponte_relay::{Config, Relay, cert};
use tracing_subscriber::EnvFilter;

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

async fn assistant(config: &Config, cluster: Option<&str>, command: AssistantCommand) -> anyhow::Result<()> {
    let store = AssistantAccounts::open(&config.data_dir, cluster)?;
    match command {
        AssistantCommand::Add { name, out } => {
            // Claim the output file first, so a failure there leaves no assistant behind.
            let file = out
                .as_ref()
                .map(|path| {
                    let mut options = std::fs::OpenOptions::new();
                    options.write(true).create_new(true);
                    #[cfg(unix)]
                    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                    options
                        .open(path)
                        .with_context(|| format!("creating {}", path.display()))
                })
                .transpose()?;
            let credential = store.add(&name).await?;
            let text = credential.to_text();
            match (file, out) {
                (Some(mut file), Some(path)) => {
                    if let Err(e) = file.write_all(format!("{}\n", *text).as_bytes()) {
                        let _ = store.remove(&name).await;
                        let _ = std::fs::remove_file(&path);
                        return Err(e).with_context(|| format!("writing {}", path.display()));
                    }
                    eprintln!(
                        "added assistant {name}; credential written to {} (hand it over privately, then delete your copy)",
                        path.display()
                    );
                }
                _ => {
                    eprintln!(
                        "added assistant {name}; its credential follows and is shown only this once.\n\
                         The assistant saves it as ~/.config/ponte/credential (or passes --credential FILE)."
                    );
                    println!("{}", *text);
                }
            }
        }
        AssistantCommand::List => {
            let all = store.load().await?;
            if all.is_empty() {
                eprintln!("no assistants in {}", store.place());
            }
            for a in all {
                let added =
                    report::format_time(i64::try_from(a.created).unwrap_or(i64::MAX).saturating_mul(1000));
                println!(
                    "{}  added {}  key {}",
                    a.name,
                    added,
                    ponte_transport::credential::key_fingerprint(&a.key)
                );
            }
        }
        AssistantCommand::Remove { name } => {
            store.remove(&name).await?;
            match store {
                AssistantAccounts::File(_) => {
                    eprintln!("removed assistant {name}; its credential stops working at its next join")
                }
                AssistantAccounts::Cluster(_) => eprintln!(
                    "removed assistant {name}; its credential stops working on every node within {} s",
                    ponte_relay::cluster::HEARTBEAT.as_secs()
                ),
            }
        }
    }
    Ok(())
}

fn period(since: Option<&str>, until: Option<&str>) -> anyhow::Result<(i64, i64)> {
    let since = since.map(report::parse_time).transpose()?.unwrap_or(i64::MIN);
    let until = until.map(report::parse_time).transpose()?.unwrap_or(i64::MAX);
    Ok((since, until))
}

async fn ledger(config: &Config, command: LedgerCommand) -> anyhow::Result<()> {
    let target = config.ledger_target()?;
    let mut store = target
        .open()
        .await
        .with_context(|| format!("opening the ledger ({target})"))?
        .context("the ledger is off (--ledger none)")?;
    let mut out = std::io::stdout().lock();
    match command {
        LedgerCommand::Export { since, until, format } => {
            let (since, until) = period(since.as_deref(), until.as_deref())?;
            let rows = store.rows(since, until).await?;
            report::export(&rows, format.into(), &mut out)?;
        }
        LedgerCommand::Report {
            by,
            round_up,
            since,
            until,
            format,
        } => {
            let (since, until) = period(since.as_deref(), until.as_deref())?;
            let rows = store.rows(since, until).await?;
            let by = by.into();
            report::write_totals(&report::totals(&rows, by, round_up), by, format.into(), &mut out)?;
        }
    }
    out.flush()?;
    Ok(())
}

/// The console password: one line of standard input, or asked twice without echo on a terminal.
fn read_password() -> anyhow::Result<String> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("password (at least 12 characters): ")?;
        let again = rpassword::prompt_password("the same again: ")?;
        anyhow::ensure!(first == again, "the two passwords differ; nothing was changed");
        Ok(first)
    } else {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        Ok(line.trim_end_matches(['\n', '\r']).to_owned())
    }
}

async fn console_user(config: &Config, command: ConsoleUserCommand) -> anyhow::Result<()> {
    use ponte_relay::console::accounts;
    let target = config.ledger_target()?;
    let open = || async {
        target
            .open()
            .await
            .with_context(|| format!("opening the ledger ({target})"))?
            .context("console accounts live in the ledger's database, and the ledger is off (--ledger none)")
    };
    match command {
        ConsoleUserCommand::Add { name, role, totp } => {
            accounts::check_name(&name)?;
            let password = read_password()?;
            let mut store = open().await?;
            let secret = totp.then(accounts::new_totp_secret);
            accounts::add(&mut store, &name, role.into(), &password, secret.as_deref()).await?;
            eprintln!("added console operator {name} ({})", accounts::Role::from(role));
            if let Some(secret) = secret {
                eprintln!(
                    "its TOTP secret follows, shown only this once: add it to the operator's authenticator app"
                );
                println!("{}", accounts::totp_uri(&name, &secret));
                println!("{secret}");
            }
        }
        ConsoleUserCommand::List => {
            let all = accounts::operators(&mut open().await?).await?;
            if all.is_empty() {
                eprintln!("no console operators in {target}");
            }
            for op in all {
                println!(
                    "{}  {}  added {}",
                    op.name,
                    op.role,
                    report::format_time(op.created)
                );
            }
        }
        ConsoleUserCommand::Remove { name } => {
            accounts::remove(&mut open().await?, &name).await?;
            eprintln!("removed console operator {name}; its logins end at their next request");
        }
    }
    Ok(())
}

async fn cluster(config: &Config, url: Option<&str>, command: ClusterCommand) -> anyhow::Result<()> {
    let default_dir = || config.data_dir.join("cluster");
    match command {
        ClusterCommand::Init { dir } => {
            let dir = dir.unwrap_or_else(default_dir);
            let fp = cert::init_cluster(&dir)?;
            eprintln!(
                "created the cluster key in {}; keep cluster-key.pem off the nodes and certify each node with\n  ponte-relay cluster certify --node-name NAME --public-addr HOST:PORT",
                dir.display()
            );
            println!("cluster fingerprint: {fp}");
        }
        ClusterCommand::Certify {
            node_name,
            public_addr,
            dir,
            out,
        } => {
            let dir = dir.unwrap_or_else(default_dir);
            let out = out.unwrap_or_else(|| dir.clone());
            let files = cert::certify_node(&dir, &node_name, public_addr.as_ref(), &out)?;
            eprintln!("certified node {node_name}; start it with:");
            println!("--cert {} --key {}", files.cert.display(), files.key.display());
        }
        ClusterCommand::Status => {
            let url = url.context("cluster status needs --cluster redis://HOST:PORT/DB")?;
            let nodes = ponte_relay::cluster::status(url).await?;
            if nodes.is_empty() {
                eprintln!("no live nodes");
            }
            println!(
                "{:<20} {:<28} {:>8} {:>8}  {:<8} last seen",
                "node", "address", "waiting", "paired", "state"
            );
            for n in nodes {
                let state = if n.draining { "draining" } else { "up" };
                println!(
                    "{:<20} {:<28} {:>8} {:>8}  {:<8} {} ms ago",
                    n.name, n.addr, n.waiting, n.paired, state, n.last_seen_ms
                );
            }
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = cli.settings.with_file()?;
    let cluster_url = settings.cluster.clone();
    if cli.command.is_none() {
        settings.check()?;
    }
    let log_format = settings.log_format.unwrap_or_default();
    let config = settings.resolve();
    match cli.command {
        Some(Command::Fingerprint) => {
            let identity = match &config.cert {
                Some((c, k)) => cert::load(c, k)?,
                None => cert::load_or_generate(&config.data_dir)?,
            };
            println!("{}", identity.fingerprint());
            return Ok(());
        }
        Some(Command::Assistant { command }) => {
            return assistant(&config, cluster_url.as_deref(), command).await;
        }
        Some(Command::Ledger { command }) => return ledger(&config, command).await,
        Some(Command::Cluster { command }) => return cluster(&config, cluster_url.as_deref(), command).await,
        Some(Command::ConsoleUser { command }) => return console_user(&config, command).await,
        None => {}
    }
    init_logging(log_format);
    if let Some(addr) = config.metrics {
        let node = config.cluster.as_ref().map(|c| c.node.as_str());
        ponte_relay::metrics::serve(addr, node)?;
    }
    let relay = Relay::start(config.clone()).await?;
    // These two lines are the operator's (and scripts') way to find and pin the relay.
    println!("listening on {}", relay.local_addr()?);
    println!("fingerprint: {}", relay.fingerprint());
    if let Some(fp) = relay.cluster_fingerprint() {
        println!("cluster fingerprint: {fp}");
    }
    if let Some(addr) = config.metrics {
        println!("metrics on http://{addr}/metrics");
    }
    if let Some(addr) = relay.console_addr() {
        let scheme = if addr.ip().is_loopback() { "http" } else { "https" };
        println!("console on {scheme}://{addr}/");
    }
    shutdown_signal().await;
    relay.shutdown().await;
    Ok(())
}
