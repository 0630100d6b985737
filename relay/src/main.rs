//! `ponte-relay`: see `ponte-relay --help`.

use clap::Parser;
use ponte_relay::config::{Cli, Command, LogFormat};
use ponte_relay::{Relay, cert};
use tracing_subscriber::EnvFilter;

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = cli.settings.with_file()?.resolve();
    if let Some(Command::Fingerprint) = cli.command {
        let identity = match &config.cert {
            Some((c, k)) => cert::load(c, k)?,
            None => cert::load_or_generate(&config.data_dir)?,
        };
        println!("{}", identity.fingerprint());
        return Ok(());
    }
    init_logging(config.log_format);
    if let Some(addr) = config.metrics {
        ponte_relay::metrics::serve(addr)?;
    }
    let relay = Relay::start(config.clone()).await?;
    // These two lines are the operator's (and scripts') way to find and pin the relay.
    println!("listening on {}", relay.local_addr()?);
    println!("fingerprint: {}", relay.fingerprint());
    if let Some(addr) = config.metrics {
        println!("metrics on http://{addr}/metrics");
    }
    shutdown_signal().await;
    relay.shutdown().await;
    Ok(())
}
