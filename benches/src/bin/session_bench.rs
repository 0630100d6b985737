//! End-to-end session figures with the real release binaries, in one run:
//! - `get` of a large file through the relay (viewer ← agent, E2E encrypted, hash checked)
//!   against a raw byte copy relayed by the same relay process (no E2E, no files);
//! - the time from starting `ponte-viewer connect` to a ready session (relay join, handshake,
//!   consent) — measured as a whole viewer run with an empty batch.
//!
//! Both transfer figures are the best of three runs, interleaved.
//!
//! With `--files N --size S`: a folder of N files of S bytes each, `get` and `put`, against one
//! file of the same total, in the same run (many small files vs one large one).
//!
//! With `--link dsl|mobile`: the agent reaches the relay through the link emulator
//! (`ponte_testbed::link`; its uplink is the customer's) and a `get` of `--mib` (default 20) is
//! measured against the link's uplink rate.
//!
//! Run: `cargo run --release -p ponte-benches --bin session-bench [-- --mib 1024]`,
//! `[-- --files 10000 --size 4096]`, `[-- --link dsl]`.

#![allow(clippy::unwrap_used, missing_docs)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ponte_benches::program;
use ponte_testbed::Running;
use ponte_transport::client::RelayClient;
use ponte_transport::tls::{self, CertFingerprint, RelayTrust};
use ponte_wire::rendezvous::RelayMessage;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn raw_relayed_copy(addr: std::net::SocketAddr, fp: CertFingerprint, bytes: usize) -> f64 {
    let ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let connect = || async {
        let (config, seen) = tls::client_config(
            &RelayTrust::Pinned(fp),
            tls::transport_config(Duration::from_secs(60)),
        )
        .unwrap();
        RelayClient::connect(&ep, addr, "ponte-relay", config, &seen)
            .await
            .unwrap()
    };
    let mut agent = connect().await;
    let (id, _) = agent.register().await.unwrap();
    let mut viewer = connect().await;
    viewer.join(id).await.unwrap();
    assert_eq!(agent.next().await.unwrap(), RelayMessage::Paired);
    let took = ponte_benches::stream_bytes(agent.connection(), viewer.connection(), bytes).await;
    bytes as f64 / took.as_secs_f64() / 1e6
}

/// Writes `bytes` pseudo-random bytes to `path`.
fn random_file(path: &std::path::Path, bytes: usize, seed: u64) -> anyhow::Result<()> {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ seed;
    let mut left = bytes;
    let mut buf = vec![0u8; (1 << 20).min(bytes.max(8))];
    while left > 0 {
        for c in buf.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let b = x.to_le_bytes();
            c.copy_from_slice(&b[..c.len()]);
        }
        let n = left.min(buf.len());
        f.write_all(&buf[..n])?;
        left -= n;
    }
    // On the disk before any run: a transfer's own sync must not write it out.
    f.into_inner()?.sync_all()?;
    Ok(())
}

/// A bench's world: a release relay, the programs' directories, the pinned fingerprint.
struct Bench {
    dir: tempfile::TempDir,
    addr: std::net::SocketAddr,
    fp: CertFingerprint,
    _relay: Running,
}

impl Bench {
    fn start() -> anyhow::Result<Bench> {
        let dir = tempfile::tempdir()?;
        for d in ["home", "config", "data", "agent", "viewer"] {
            std::fs::create_dir_all(dir.path().join(d))?;
        }
        let (relay, addr, fp) = ponte_benches::start_relay(&dir.path().join("relay"))?;
        let mut make_identity = Command::new(program("ponte-viewer"));
        make_identity
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .args(["identity", "new", "--name", "bench"]);
        make_identity.stdout(Stdio::null()).status()?;
        Ok(Bench {
            dir,
            addr,
            fp,
            _relay: relay,
        })
    }

    fn path(&self, p: &str) -> std::path::PathBuf {
        self.dir.path().join(p)
    }

    /// One session, the agent reaching the relay at `agent_relay`: the viewer runs `batch`;
    /// returns its wall time.
    fn session(&self, agent_relay: std::net::SocketAddr, batch: &str) -> anyhow::Result<f64> {
        let env = |cmd: &mut Command, relay: std::net::SocketAddr| {
            cmd.env("HOME", self.path("home"))
                .env("XDG_CONFIG_HOME", self.path("config"))
                .env("XDG_DATA_HOME", self.path("data"))
                .env("PONTE_RELAY", relay.to_string())
                .args(["--fingerprint", &self.fp.to_string()]);
        };
        let mut agent = Command::new(program("ponte-agent"));
        agent
            .args(["--json", "--allow", "all", "--dir"])
            .arg(self.path("agent"));
        env(&mut agent, agent_relay);
        let agent = Running::start(agent);
        let ready = agent.event("ready", Duration::from_secs(30));
        let (id, code) = (
            ready["session_id"].as_str().unwrap_or_default(),
            ready["code"].as_str().unwrap_or_default(),
        );
        let file = self.path("batch.txt");
        std::fs::write(&file, batch)?;
        let mut viewer = Command::new(program("ponte-viewer"));
        viewer.args(["connect", id, "--code", code, "--batch"]).arg(&file);
        env(&mut viewer, self.addr);
        let start = Instant::now();
        let out = viewer.stdin(Stdio::null()).output()?;
        let took = start.elapsed().as_secs_f64();
        anyhow::ensure!(
            out.status.success(),
            "viewer failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(took)
    }
}

/// `--files N --size S`: a folder of many small files against one file of the same total,
/// each way, best of two.
fn many_files(files: usize, size: usize) -> anyhow::Result<()> {
    let bench = Bench::start()?;
    let total = files * size;
    let many = bench.path("agent/many");
    std::fs::create_dir_all(&many)?;
    for i in 0..files {
        random_file(&many.join(format!("f{i:05}.bin")), size, i as u64)?;
    }
    random_file(&bench.path("agent/one.bin"), total, 7)?;
    let mine = bench.path("viewer");
    let connect = (0..2)
        .map(|_| bench.session(bench.addr, ""))
        .collect::<anyhow::Result<Vec<_>>>()?
        .into_iter()
        .fold(f64::MAX, f64::min);
    let mut rates = [0.0f64; 4];
    for round in 0..2 {
        let runs = [
            format!("get one.bin {}/one-{round}.bin\n", mine.display()),
            format!("get many {}/many-{round}\n", mine.display()),
            format!("put {}/one-{round}.bin up-one-{round}.bin\n", mine.display()),
            format!("put {}/many-{round} up-many-{round}\n", mine.display()),
        ];
        for (i, batch) in runs.iter().enumerate() {
            let took = bench.session(bench.addr, batch)?;
            rates[i] = rates[i].max(total as f64 / (took - connect).max(1e-3) / 1e6);
        }
    }
    let [get_one, get_many, put_one, put_many] = rates;
    println!(
        "## Many small files ({files} × {size} B = {:.1} MB, best of 2)\n",
        total as f64 / 1e6
    );
    println!("| transfer | one file | {files} files | ratio |\n|---|---|---|---|");
    println!(
        "| `get` | {get_one:.1} MB/s | {get_many:.1} MB/s | {:.2} |",
        get_many / get_one
    );
    println!(
        "| `put` | {put_one:.1} MB/s | {put_many:.1} MB/s | {:.2} |",
        put_many / put_one
    );
    Ok(())
}

/// `--link NAME`: a `get` of `mib` through the emulated customer uplink, against its rate.
async fn over_link(name: &str, mib: usize) -> anyhow::Result<()> {
    use ponte_testbed::link::{Link, Profile};
    let profile = Profile::named(name).ok_or_else(|| anyhow::anyhow!("unknown link {name}"))?;
    let bench = Bench::start()?;
    let link = Link::start(bench.addr, profile)?;
    random_file(&bench.path("agent/big.bin"), mib << 20, 3)?;
    let connect = bench.session(link.addr, "")?;
    let dest = bench.path("viewer/got.bin");
    let took = bench.session(link.addr, &format!("get big.bin {}\n", dest.display()))?;
    let goodput = (mib << 20) as f64 * 8.0 / (took - connect).max(1e-3);
    let rate = profile.up.rate_bps.map_or(f64::INFINITY, |r| r as f64);
    println!("## `get` over the emulated {name} link ({mib} MiB)\n");
    println!("| measure | value |\n|---|---|");
    println!("| the link's uplink | {:.1} Mbit/s |", rate / 1e6);
    println!(
        "| E2E `get` goodput (hash verified, written to disk) | {:.2} Mbit/s ({:.2} of the link) |",
        goodput / 1e6,
        goodput / rate
    );
    println!(
        "| connect to a ready session through the link | {:.0} ms |",
        connect * 1e3
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--files") {
        return many_files(arg("--files", 10_000) as usize, arg("--size", 4096) as usize);
    }
    if let Some(i) = args.iter().position(|a| a == "--link") {
        let name = args.get(i + 1).map_or("dsl", String::as_str);
        return over_link(name, arg("--mib", 20) as usize).await;
    }
    let mib = arg("--mib", 1024) as usize;
    let bench = Bench::start()?;
    random_file(&bench.path("agent/big.bin"), mib << 20, 0)?;
    let session = |batch: &str| bench.session(bench.addr, batch);

    let mut connect_times = Vec::new();
    let mut get_rates = Vec::new();
    let mut raw_rates = Vec::new();
    for run in 0..3 {
        let dest = bench.path(&format!("viewer/got{run}.bin"));
        let total = session(&format!("get big.bin {}\n", dest.display()))?;
        std::fs::remove_file(&dest)?;
        // The same with an empty batch: connect, handshake, consent, quit.
        let connect = session("")?;
        connect_times.push(connect);
        // The get's own time is the whole run minus a session set-up.
        get_rates.push((mib << 20) as f64 / (total - connect).max(1e-3) / 1e6);
        // Interleaved with the gets, so both see the same machine state.
        raw_rates.push(raw_relayed_copy(bench.addr, bench.fp, mib << 20).await);
    }
    let raw = raw_rates.iter().cloned().fold(0.0, f64::max);
    let best = get_rates.iter().cloned().fold(0.0, f64::max);
    let connect = connect_times.iter().cloned().fold(f64::MAX, f64::min);
    println!("## Session figures ({mib} MiB file, best of 3)\n");
    println!("| measure | value |\n|---|---|");
    println!("| raw byte copy relayed by the same relay | {raw:.0} MB/s |");
    println!(
        "| E2E `get` through the relay (hash verified, written to disk) | {best:.0} MB/s ({:.0}% of raw) |",
        100.0 * best / raw
    );
    println!(
        "| `ponte-viewer connect` to ready session (process start to exit, empty batch) | {:.0} ms |",
        connect * 1000.0
    );
    Ok(())
}
