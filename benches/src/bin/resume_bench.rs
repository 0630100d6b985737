//! How fast a session comes back after its connections were lost (docs/BENCHMARKS.md § Resume),
//! with the real release agent and relay and the viewer core, in one run:
//! - the customer's link to the relay dark for 6.5 to 8.5 s (past the 5 s after which a silent relay
//!   counts as lost): from the link's return to the resumed session, and to the first byte of a
//!   command run on it — against joining a new session from scratch (code handshake, consent);
//! - the cluster node holding a session killed: from the kill to the resumed session (through
//!   the other node), and the part of it spent noticing the loss.
//!
//! `cargo run --release -p ponte-benches --bin resume-bench [-- --rounds 5]`

#![allow(clippy::unwrap_used, missing_docs)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;
use ponte_benches::program;
use ponte_e2e::handshake::Credentials;
use ponte_e2e::identity::PrivateKey;
use ponte_testbed::link::{Direction, Link, Profile};
use ponte_testbed::{RedisServer, Running};
use ponte_transport::tls::CertFingerprint;

const WAIT: Duration = Duration::from_secs(60);

/// Every round comes from one address, which the relay's per-source limits are not for.
const OPEN_LIMITS: &[&str] = &[
    "--joins-per-minute",
    "600000",
    "--join-burst",
    "100000",
    "--registrations-per-minute",
    "600000",
    "--registration-burst",
    "100000",
];

fn rounds() -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
}

/// An agent (`--allow terminal`) reaching the relay at `relay` (a comma-separated list).
fn agent(home: &Path, relay: &str, pin: CertFingerprint) -> (Running, String, String) {
    std::fs::create_dir_all(home).unwrap();
    let mut cmd = Command::new(program("ponte-agent"));
    cmd.args(["--json", "--allow", "terminal", "--relay", relay])
        .args(["--fingerprint", &pin.to_string(), "--dir"])
        .arg(home)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("LANG", "C.UTF-8")
        .stdin(std::process::Stdio::null());
    let agent = Running::start(cmd);
    let ready = agent.event("ready", WAIT);
    let id = ready["session_id"].as_str().unwrap().to_owned();
    let code = ready["code"].as_str().unwrap().to_owned();
    (agent, id, code)
}

/// A new assistant's key (made before any clock starts: RSA keys take a while).
fn assistant() -> Credentials {
    Credentials {
        key: PrivateKey::generate(&mut ponte_wire::os_rng()).unwrap(),
        certificate: None,
    }
}

async fn join(
    dir: &Path,
    relay: &str,
    pin: CertFingerprint,
    (id, code): (&str, &str),
    credentials: Credentials,
) -> ponte_viewer::Viewer {
    let (viewer, _) = ponte_viewer::join(ponte_viewer::JoinOptions {
        relay: ponte_session::connect::RelayOptions {
            address: relay.to_owned(),
            fingerprint: Some(pin),
            ca: None,
            known_relays: ponte_session::known_relays::KnownRelays::at(dir.join("known-relays")),
        },
        accept_new_fingerprint: false,
        session: id.parse().unwrap(),
        code: code.parse().unwrap(),
        credentials,
        extras: Default::default(),
    })
    .await
    .unwrap();
    viewer.consent(WAIT).await.unwrap();
    viewer
}

/// Waits for the viewer's notice that the session was resumed; or why it was not.
async fn resumed(
    notices: &mut tokio::sync::mpsc::UnboundedReceiver<ponte_viewer::Notice>,
) -> Result<(), String> {
    let waited = tokio::time::timeout(WAIT, async {
        loop {
            match notices.recv().await {
                Some(ponte_viewer::Notice::Reconnecting(false)) => return Ok(()),
                Some(ponte_viewer::Notice::Ended(why)) => return Err(format!("the session ended: {why}")),
                Some(_) => {}
                None => return Err("the viewer went away".to_owned()),
            }
        }
    });
    waited
        .await
        .unwrap_or_else(|_| Err("not resumed in time".to_owned()))
}

/// Runs `echo` on the customer's computer; when its first byte came.
async fn first_byte(viewer: &ponte_viewer::Viewer) -> Instant {
    let mut first = None;
    viewer
        .exec("echo back", |_, _| {
            first.get_or_insert_with(Instant::now);
        })
        .await
        .unwrap();
    first.expect("output")
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

async fn dark_link(dir: &Path, rounds: usize) -> anyhow::Result<()> {
    let (_relay, addr, pin) = ponte_benches::start_relay_with(&dir.join("relay"), OPEN_LIMITS)?;
    // The customer's fast home line (80 Mbit/s, 5 ms each way), new for each round (a link
    // forwards for a bounded number of sockets, and each attempt while dark opens one); the
    // assistant reaches the relay directly.
    let way = Direction::new(80.0, 5, 0, 0.0, 50);
    let (mut resumes, mut bytes, mut fresh) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let link = Link::start(addr, Profile { up: way, down: way })?;
        let home = dir.join(format!("dark-{round}"));
        let (mut agent, id, code) = agent(&home, &link.addr.to_string(), pin);
        let credentials = assistant();
        let started = Instant::now();
        let mut viewer = join(&home, &addr.to_string(), pin, (&id, &code), credentials).await;
        fresh.push(started.elapsed());
        let mut notices = viewer.notices().context("notices")?;
        link.set_dark(true);
        agent.event("reconnecting", WAIT);
        // Back at a different moment of the agent's 2 s cycle of attempts each round.
        tokio::time::sleep(Duration::from_millis(1500 + (450 * round as u64) % 2000)).await;
        link.set_dark(false);
        let back = Instant::now();
        if let Err(why) = resumed(&mut notices).await {
            anyhow::bail!("round {round}: {why}; the agent said: {:#?}", agent.seen());
        }
        resumes.push(back.elapsed());
        eprintln!("round {round}: resumed after {:?}", back.elapsed());
        bytes.push(first_byte(&viewer).await - back);
        viewer.quit().await;
        agent.wait(WAIT);
    }
    let (r, b, f) = (median(resumes.clone()), median(bytes.clone()), median(fresh));
    println!(
        "link dark 6.5-8.5 s, {rounds} rounds: resumed {} after the link's return (median; all: {:?}), first byte of a command {} (all: {:?}); the handshakes of a new session (code, consent) {} (resume / new session {:.2})",
        ms(r),
        resumes.iter().map(|d| ms(*d)).collect::<Vec<_>>(),
        ms(b),
        bytes.iter().map(|d| ms(*d)).collect::<Vec<_>>(),
        ms(f),
        r.as_secs_f64() / f.as_secs_f64()
    );
    Ok(())
}

fn output(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output()?;
    anyhow::ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A cluster node `name` of the cluster in `dir`; its address.
fn node(dir: &Path, redis: &RedisServer, name: &str) -> anyhow::Result<(Running, SocketAddr)> {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let certs = output(
        Command::new(program("ponte-relay"))
            .args(["cluster", "certify", "--node-name", name])
            .args(["--public-addr", &addr.to_string(), "--dir"])
            .arg(dir),
    )?;
    let mut cmd = Command::new(program("ponte-relay"));
    cmd.args(["--listen", &addr.to_string(), "--data-dir"])
        .arg(dir.join(name))
        .args(["--cluster", &redis.url(), "--node-name", name])
        .args(["--public-addr", &addr.to_string(), "--ledger", "none"])
        .args(OPEN_LIMITS)
        .args(certs.split_whitespace());
    let running = Running::start(cmd);
    running.line_after("listening on ", WAIT);
    Ok((running, addr))
}

async fn node_kill(dir: &Path, rounds: usize) -> anyhow::Result<()> {
    let redis = RedisServer::start();
    let init = output(
        Command::new(program("ponte-relay"))
            .args(["cluster", "init", "--dir"])
            .arg(dir),
    )?;
    let pin: CertFingerprint = init
        .trim()
        .strip_prefix("cluster fingerprint: ")
        .context("no fingerprint")?
        .parse()?;
    let (mut resumes, mut noticed) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        // The session lands on the first node of the list, which is then killed.
        let (mut doomed, first) = node(dir, &redis, &format!("k{round}"))?;
        let (_other, second) = node(dir, &redis, &format!("o{round}"))?;
        let nodes = format!("{first},{second}");
        let home = dir.join(format!("kill-{round}"));
        let (mut agent, id, code) = agent(&home, &nodes, pin);
        let mut viewer = join(&home, &nodes, pin, (&id, &code), assistant()).await;
        let mut notices = viewer.notices().context("notices")?;
        doomed.child.kill()?;
        let killed = Instant::now();
        agent.event("reconnecting", WAIT);
        noticed.push(killed.elapsed());
        if let Err(why) = resumed(&mut notices).await {
            anyhow::bail!("round {round}: {why}; the agent said: {:#?}", agent.seen());
        }
        resumes.push(killed.elapsed());
        first_byte(&viewer).await;
        viewer.quit().await;
        agent.wait(WAIT);
    }
    println!(
        "cluster node killed, {rounds} rounds: resumed through the other node {} after the kill (median; all: {:?}), of which noticing the loss {} (the 5 s idle timeout)",
        ms(median(resumes.clone())),
        resumes.iter().map(|d| ms(*d)).collect::<Vec<_>>(),
        ms(median(noticed)),
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rounds = rounds();
    let dir = tempfile::tempdir()?;
    dark_link(dir.path(), rounds).await?;
    node_kill(dir.path(), rounds.min(3)).await?;
    Ok(())
}
