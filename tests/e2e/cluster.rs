//! A relay cluster with a real redis-server on loopback: the agent and viewer binaries across
//! three in-process nodes (whose taps show what a relay sees), and three `ponte-relay`
//! processes for node death (SIGKILL) and draining (SIGTERM).

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ponte_relay::cluster::ClusterSettings;
use ponte_relay::tap::Tap;
use ponte_relay::{Config, Relay, cert};
use ponte_testbed::{RedisServer, Running, binary, free_udp_port};
use ponte_tests::relay_client as client;
use ponte_transport::client::RelayClient;
use ponte_transport::tls::CertFingerprint;
use ponte_wire::rendezvous::{Refusal, RelayMessage};

use crate::world;

use world::{WAIT, rand_suffix, reconnecting, run_with_timeout, sha256_file, text};

const START: Duration = Duration::from_secs(30);

/// `ponte-relay cluster init` in `dir`; returns the cluster fingerprint it printed.
fn cluster_init(dir: &Path) -> CertFingerprint {
    let out = Command::new(binary("ponte-relay"))
        .args(["cluster", "init", "--dir"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .trim()
        .strip_prefix("cluster fingerprint: ")
        .unwrap()
        .parse()
        .unwrap()
}

/// `ponte-relay cluster certify`; returns the `--cert … --key …` arguments it printed.
fn cluster_certify(dir: &Path, name: &str, public: SocketAddr) -> Vec<String> {
    let out = Command::new(binary("ponte-relay"))
        .args(["cluster", "certify", "--node-name", name, "--public-addr"])
        .arg(public.to_string())
        .arg("--dir")
        .arg(dir)
        .arg("--out")
        .arg(dir.join(name))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).split_whitespace().map(str::to_owned).collect()
}

/// A node as a process.
struct NodeProcess {
    running: Running,
    addr: SocketAddr,
}

fn node_process(dir: &Path, redis: &RedisServer, name: &str, extra: &[&str]) -> NodeProcess {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_udp_port()));
    let cert_args = cluster_certify(dir, name, addr);
    let mut cmd = Command::new(binary("ponte-relay"));
    cmd.args(["--listen", &addr.to_string(), "--data-dir"])
        .arg(dir.join(name))
        .args(["--cluster", &redis.url(), "--node-name", name])
        .args(["--public-addr", &addr.to_string()])
        .args(&cert_args)
        .args(extra);
    let running = Running::start(cmd);
    assert_eq!(running.line_after("listening on ", START), addr.to_string());
    running.line_after("cluster fingerprint: ", START);
    NodeProcess { running, addr }
}

/// An agent on `at` and a viewer joined through `via`, paired.
async fn session(at: SocketAddr, via: SocketAddr, pin: CertFingerprint) -> (RelayClient, RelayClient) {
    let idle = Duration::from_secs(3);
    let mut agent = client(at, pin, idle).await.unwrap();
    let (id, _) = agent.register().await.unwrap();
    let mut viewer = client(via, pin, idle).await.unwrap();
    viewer.join(id).await.unwrap();
    assert_eq!(agent.next().await.unwrap(), RelayMessage::Paired);
    (agent, viewer)
}

/// Whether bytes still go from `from` to `to`.
async fn flows(from: &RelayClient, to: &RelayClient) -> Result<(), String> {
    let go = async {
        let (mut send, _r) = from.connection().open_bi().await.map_err(|e| e.to_string())?;
        send.write_all(b"ping").await.map_err(|e| e.to_string())?;
        send.finish().map_err(|e| e.to_string())?;
        let (_s, mut recv) = to.connection().accept_bi().await.map_err(|e| e.to_string())?;
        let got = recv.read_to_end(16).await.map_err(|e| e.to_string())?;
        if got == b"ping" {
            Ok(())
        } else {
            Err("wrong bytes".into())
        }
    };
    tokio::time::timeout(Duration::from_secs(10), go)
        .await
        .map_err(|_| "timed out".to_string())?
}

/// An in-process node of the cluster whose key is in `key_dir`, configured further by
/// `configure`.
async fn in_process_node(
    key_dir: &Path,
    redis: &RedisServer,
    name: &str,
    configure: impl FnOnce(&mut Config),
) -> (Relay, SocketAddr) {
    let dir = key_dir.join(name);
    let addr = SocketAddr::from(([127, 0, 0, 1], free_udp_port()));
    let public = addr.to_string().parse().unwrap();
    let node = name.parse().unwrap();
    let files = cert::certify_node(key_dir, &node, Some(&public), &dir).unwrap();
    let mut config = Config::new(addr, dir);
    config.cert = Some((files.cert, files.key));
    config.cluster = Some(ClusterSettings {
        url: redis.url(),
        node,
        public_addr: public,
    });
    configure(&mut config);
    let relay = Relay::start(config).await.unwrap();
    let addr = relay.local_addr().unwrap();
    (relay, addr)
}

/// An in-process node with a tap on what it forwards.
async fn tapped_node(
    key_dir: &Path,
    redis: &RedisServer,
    name: &str,
    seen: Arc<Mutex<Vec<u8>>>,
) -> (Relay, SocketAddr) {
    in_process_node(key_dir, redis, name, |config| {
        config.tap = Some(Tap::observe(move |b| seen.lock().unwrap().extend_from_slice(b)));
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_on_node_a_is_joined_through_b_and_c_end_to_end() {
    let redis = RedisServer::start();
    let w = world::World::new().await;
    let keys = w.path("cluster");
    let pin = cert::init_cluster(&keys).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (_a, a) = tapped_node(&keys, &redis, "a", seen.clone()).await;
    let (_b, b) = tapped_node(&keys, &redis, "b", seen.clone()).await;
    let (_c, c) = tapped_node(&keys, &redis, "c", seen.clone()).await;
    let marker = format!("CLUSTER-PLAINTEXT-{}", rand_suffix());
    let file = w.path("upload.bin");
    std::fs::write(&file, format!("{marker} in a file").repeat(10_000)).unwrap();

    for (via, batch) in [
        (b, format!("exec echo {marker}-$((40+2))\n")),
        (c, format!("put {} remote.bin\n", file.display())),
    ] {
        // The agent pins the cluster key; the viewer trusts on first use through another node.
        let mut cmd = w.command("ponte-agent");
        cmd.env("PONTE_RELAY", a.to_string())
            .args([
                "--json",
                "--allow",
                "terminal,upload",
                "--fingerprint",
                &pin.to_string(),
            ])
            .arg("--dir")
            .arg(w.path("agent-home"))
            .stdin(std::process::Stdio::null());
        let agent = Running::start(cmd);
        let ready = agent.event("ready", WAIT);
        let (id, code) = (
            ready["session_id"].as_str().unwrap().to_owned(),
            ready["code"].as_str().unwrap().to_owned(),
        );
        let batch_file = w.path(&format!("batch-{}", rand_suffix()));
        std::fs::write(&batch_file, batch).unwrap();
        let mut viewer = w.command("ponte-viewer");
        viewer
            .env("PONTE_RELAY", via.to_string())
            .args(["connect", &id, "--code", &code, "--batch"])
            .arg(&batch_file);
        let out = run_with_timeout(viewer, WAIT);
        assert!(out.status.success(), "{}", text(&out.stderr));
        if via == b {
            assert!(text(&out.stdout).contains(&format!("{marker}-42")), "{out:?}");
        }
        assert!(
            !seen
                .lock()
                .unwrap()
                .windows(code.len())
                .any(|w| w == code.as_bytes())
        );
    }
    assert_eq!(sha256_file(&w.path("agent-home/remote.bin")), sha256_file(&file));
    // The viewer remembered the cluster key for the node it first used.
    let known = std::fs::read_to_string(w.path("config/ponte/known_relays")).unwrap();
    assert!(known.contains(&pin.to_string()), "{known}");
    let seen = seen.lock().unwrap();
    assert!(seen.len() > 100_000, "the nodes forwarded the sessions");
    assert!(!seen.windows(marker.len()).any(|w| w == marker.as_bytes()));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_node_ends_only_its_own_sessions_and_the_real_ones_resume_on_another_node() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let pin = cluster_init(dir.path());
    let a = node_process(dir.path(), &redis, "a", &[]);
    let mut b = node_process(dir.path(), &redis, "b", &[]);
    let c = node_process(dir.path(), &redis, "c", &[]);

    let (on_a, v_a) = session(a.addr, c.addr, pin).await;
    let (on_b, v_b) = session(b.addr, a.addr, pin).await;
    let (on_c, v_c) = session(c.addr, b.addr, pin).await;
    // And the real agent and viewer in a session on B, given every node (B first).
    let nodes = format!("{},{},{}", b.addr, a.addr, c.addr);
    let home = dir.path().join("customer");
    std::fs::create_dir_all(&home).unwrap();
    let mut cmd = Command::new(binary("ponte-agent"));
    cmd.args(["--json", "--allow", "terminal", "--relay", &nodes])
        .args(["--fingerprint", &pin.to_string(), "--dir"])
        .arg(&home)
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("LANG", "C.UTF-8")
        .stdin(std::process::Stdio::null());
    let mut agent = Running::start(cmd);
    let ready = agent.event("ready", WAIT);
    let (mut viewer, _) = ponte_viewer::join(ponte_viewer::JoinOptions {
        relay: ponte_session::connect::RelayOptions {
            address: nodes.clone(),
            fingerprint: Some(pin),
            ca: None,
            known_relays: ponte_session::known_relays::KnownRelays::at(dir.path().join("kr-viewer")),
        },
        accept_new_fingerprint: false,
        session: ready["session_id"].as_str().unwrap().parse().unwrap(),
        code: ready["code"].as_str().unwrap().parse().unwrap(),
        credentials: world::test_assistant(),
        extras: Default::default(),
    })
    .await
    .unwrap();
    viewer.consent(WAIT).await.expect("allowed by --allow");
    // A session still waiting on B, to be forgotten by the cluster.
    let mut waiting_b = client(b.addr, pin, Duration::from_secs(3)).await.unwrap();
    let (waiting_id, _) = waiting_b.register().await.unwrap();
    for (x, y) in [(&on_a, &v_a), (&on_b, &v_b), (&on_c, &v_c)] {
        flows(y, x).await.unwrap();
    }

    b.running.child.kill().unwrap();
    let killed = Instant::now();
    // B's sessions end on both sides, each with an error, in seconds (the clients' idle
    // timeout), not after the relay's 15-minute idle timeout.
    for side in [&on_b, &v_b] {
        let reason = tokio::time::timeout(Duration::from_secs(10), side.connection().closed())
            .await
            .expect("B's clients notice the node is gone");
        assert!(matches!(reason, quinn::ConnectionError::TimedOut), "{reason:?}");
    }
    assert!(killed.elapsed() < Duration::from_secs(10));
    // The real session lost its connections too, and resumes through another node: no new
    // code, the same shell access, within seconds of the clients noticing.
    let mut notices = viewer.notices().unwrap();
    agent.event("reconnecting", Duration::from_secs(20));
    reconnecting(&mut notices, false).await;
    agent.event("reconnected", Duration::from_secs(10));
    eprintln!("resumed {:?} after the node was killed", killed.elapsed());
    let mut out = Vec::new();
    let status = viewer
        .exec("echo resumed", |_, data| out.extend_from_slice(data))
        .await
        .unwrap();
    assert_eq!((status, text(&out)), (Some(0), "resumed\n".to_owned()));
    viewer.quit().await;
    assert!(agent.wait(WAIT).success(), "the agent exits");
    // The others go on.
    flows(&v_a, &on_a).await.unwrap();
    flows(&v_c, &on_c).await.unwrap();
    // New sessions work on A and C, across them too.
    let (x, y) = session(a.addr, c.addr, pin).await;
    flows(&y, &x).await.unwrap();
    // The dead node is no redirect target once its entry expired.
    tokio::time::sleep(ponte_relay::cluster::NODE_LEASE + Duration::from_secs(1)).await;
    let mut v = client(a.addr, pin, Duration::from_secs(3)).await.unwrap();
    let err = v.join(waiting_id).await.unwrap_err();
    assert_eq!(err.refusal(), Some(Refusal::UnknownSession), "{err}");
    // A client given every node's address reaches a live one.
    let kr = dir.path().join("known_relays");
    let options = ponte_session::connect::RelayOptions {
        address: format!("{},{},{}", b.addr, a.addr, c.addr),
        fingerprint: Some(pin),
        ca: None,
        known_relays: ponte_session::known_relays::KnownRelays::at(kr),
    };
    let (mut agent, _) = ponte_session::connect::connect(&options, false).await.unwrap();
    assert_eq!(agent.connection().remote_address(), a.addr);
    agent.register().await.unwrap();
    // `cluster status` lists the live nodes only.
    let out = Command::new(binary("ponte-relay"))
        .args(["cluster", "status", "--cluster", &redis.url()])
        .output()
        .unwrap();
    let status = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        status.contains(&a.addr.to_string()) && status.contains(&c.addr.to_string()),
        "{status}"
    );
    assert!(!status.contains(&b.addr.to_string()), "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_a_node_its_session_finishes_and_it_exits() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let pin = cluster_init(dir.path());
    let a = node_process(dir.path(), &redis, "a", &[]);
    let mut c = node_process(dir.path(), &redis, "c", &["--shutdown-grace-secs", "60"]);
    let (agent, viewer) = session(c.addr, a.addr, pin).await;

    let _ = Command::new("kill")
        .args(["-TERM", &c.running.child.id().to_string()])
        .status();
    // The cluster hears that C drains; C takes no new session; its session goes on.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = Command::new(binary("ponte-relay"))
            .args(["cluster", "status", "--cluster", &redis.url()])
            .output()
            .unwrap();
        let status = text(&out.stdout);
        if status
            .lines()
            .any(|l| l.starts_with("c ") && l.contains("draining"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "C never reported draining:\n{status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let refused = match client(c.addr, pin, Duration::from_secs(3)).await {
        Err(_) => true,
        Ok(mut late) => late.register().await.is_err(),
    };
    assert!(refused, "a draining node took a new session");
    flows(&viewer, &agent).await.unwrap();
    // New sessions land on A.
    let (x, y) = session(a.addr, a.addr, pin).await;
    flows(&y, &x).await.unwrap();
    // The session ends; C exits well before its grace period.
    viewer.connection().close(0u32.into(), b"done");
    agent.connection().close(0u32.into(), b"done");
    let status = c.running.wait(Duration::from_secs(20));
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn assistant_accounts_belong_to_the_cluster_and_a_removal_reaches_every_node() {
    // The operator adds an assistant once, for the cluster; every node (credentials required)
    // admits it, whichever node holds the session and whichever the viewer reaches first. A
    // removal stops it on every node within a heartbeat or so.
    use ponte_transport::client::JoinExtras;
    use ponte_transport::credential::AssistantCredential;
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let pin = cluster_init(dir.path());
    let relay_cli = |args: &[&str]| {
        let out = Command::new(binary("ponte-relay"))
            .args(args)
            .args(["--cluster", &redis.url(), "--data-dir"])
            .arg(dir.path().join("operator"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    let file = dir.path().join("alice.credential");
    relay_cli(&["assistant", "add", "alice", "--out", file.to_str().unwrap()]);
    assert!(relay_cli(&["assistant", "list"]).starts_with("alice "));
    assert!(
        !dir.path().join("operator/assistants").exists(),
        "the account is the cluster's, not a local file's"
    );

    let credentials_required = |config: &mut Config| {
        config.assistants = ponte_relay::config::AssistantMode::Required;
        // Every client here comes from 127.0.0.1: lift the per-source limits.
        config.registry.join_burst = 1000.0;
        config.registry.register_burst = 1000.0;
    };
    let (_a, a) = in_process_node(dir.path(), &redis, "a", credentials_required).await;
    let (_b, b) = in_process_node(dir.path(), &redis, "b", credentials_required).await;
    let idle = Duration::from_secs(3);
    let alice = || JoinExtras {
        credential: Some(AssistantCredential::read(&file).unwrap()),
        ticket: None,
    };
    // Joins of alice to an agent on `at`, through `via`: the refusal, if any.
    let join = |at, via, extras: JoinExtras| async move {
        let mut agent = client(at, pin, idle).await.unwrap();
        let (id, _) = agent.register().await.unwrap();
        let mut viewer = client(via, pin, idle).await.unwrap();
        match viewer.join_with(id, &extras).await {
            Ok(()) => {
                assert_eq!(agent.next().await.unwrap(), RelayMessage::Paired);
                None
            }
            Err(e) => Some(e.refusal().unwrap_or_else(|| panic!("{e}"))),
        }
    };
    for (at, via) in [(a, b), (b, b), (b, a)] {
        assert_eq!(join(at, via, alice()).await, None, "{at} via {via}");
        assert_eq!(
            join(at, via, JoinExtras::default()).await,
            Some(Refusal::CredentialRequired)
        );
    }

    relay_cli(&["assistant", "remove", "alice"]);
    let removed = Instant::now();
    for at in [a, b] {
        loop {
            match join(at, at, alice()).await {
                Some(refusal) => {
                    assert_eq!(refusal, Refusal::CredentialRefused);
                    break;
                }
                None => assert!(
                    removed.elapsed() < ponte_relay::cluster::HEARTBEAT * 3,
                    "{at} still admits a removed assistant"
                ),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_source_holds_no_more_connections_across_the_nodes_than_on_one() {
    // At most 4 connections per source: two on A and two on B fill the cap, and once the
    // nodes have shared their counts (a heartbeat), C and A turn the fifth away; when one
    // closes, there is room again.
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let pin = cluster_init(dir.path());
    let cap = |config: &mut Config| config.admission.per_source = 4;
    let (_a, a) = in_process_node(dir.path(), &redis, "a", cap).await;
    let (_b, b) = in_process_node(dir.path(), &redis, "b", cap).await;
    let (_c, c) = in_process_node(dir.path(), &redis, "c", cap).await;
    let idle = Duration::from_secs(5);
    let mut held = Vec::new();
    for at in [a, a, b, b] {
        held.push(client(at, pin, idle).await.unwrap());
    }
    let shared = ponte_relay::cluster::HEARTBEAT * 2 + Duration::from_millis(500);
    tokio::time::sleep(shared).await;
    for at in [c, a] {
        assert!(
            client(at, pin, idle).await.is_err(),
            "{at} let a fifth connection in"
        );
    }
    held.pop().unwrap().connection().close(0u32.into(), b"bye");
    tokio::time::sleep(shared).await;
    held.push(client(c, pin, idle).await.expect("room again"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_device_waiting_on_one_node_is_found_through_another() {
    // Quick access on a cluster: the agent's device registration lands on A, the returning
    // assistant's viewer on B (a DNS name with several records may send them anywhere); B
    // redirects the join by tag to A. Once the agent leaves, the tag leads nowhere.
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let pin = cluster_init(dir.path());
    // Every client here comes from 127.0.0.1: lift the per-source lookup limit.
    let lookups = |config: &mut Config| config.registry.device_lookup_burst = 1000.0;
    let (_a, a) = in_process_node(dir.path(), &redis, "a", lookups).await;
    let (_b, b) = in_process_node(dir.path(), &redis, "b", lookups).await;
    let idle = Duration::from_secs(5);
    let key = ponte_e2e::device_key::DeviceKey::generate(&mut ponte_wire::os_rng());
    let tag = key.public().tag();
    let mut agent = client(a, pin, idle).await.unwrap();
    let (id, _) = agent
        .register_device(key.public().0, tag, |c, e| key.possession(c, e))
        .await
        .unwrap();
    let extras = ponte_transport::client::JoinExtras::default();
    let mut viewer = client(b, pin, idle).await.unwrap();
    assert_eq!(viewer.join_device(tag, &extras).await.unwrap(), id);
    assert_eq!(
        viewer.connection().remote_address(),
        a,
        "moved to the agent's node"
    );
    assert_eq!(
        agent.next().await.unwrap(),
        RelayMessage::PairedDevice { session: id }
    );
    drop((agent, viewer));
    // The release reaches Redis in the background.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut late = client(b, pin, idle).await.unwrap();
        match late.join_device(tag, &extras).await {
            Err(e) if e.refusal() == Some(Refusal::UnknownSession) => break,
            other => assert!(Instant::now() < deadline, "still found: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// A console on node a lists the session held by node b (published at b's heartbeat) and ends
/// it: b closes both peers' connections with the operator's words, and b's ledger says why.
#[tokio::test(flavor = "multi_thread")]
async fn any_nodes_console_lists_and_ends_the_sessions_of_every_node() {
    use crate::console::{PASSWORD, field_after, http, log_in};
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let pin = cluster_init(dir.path());
    let (a, _) = in_process_node(dir.path(), &redis, "a", |c| {
        c.console = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let (b, b_addr) = in_process_node(dir.path(), &redis, "b", |_| {}).await;
    let mut store = ponte_relay::ledger::Target::parse(None, &dir.path().join("a"))
        .unwrap()
        .open()
        .await
        .unwrap()
        .unwrap();
    ponte_relay::console::accounts::add(
        &mut store,
        "anna",
        ponte_relay::console::accounts::Role::Admin,
        PASSWORD,
        None,
    )
    .await
    .unwrap();
    let (agent, viewer) = session(b_addr, b_addr, pin).await;

    let base = format!("http://{}/", a.console_addr().unwrap());
    let cookie = log_in(&base, "anna", PASSWORD).await;
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, _, page) = http(&base, "/sessions", Some(&cookie), None).await;
        assert_eq!(status, 200);
        if page.contains("name=\"node\" value=\"b\"") && page.contains("1 session(s), 1 paired") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node b's session never listed on a's console:\n{page}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The cluster page: both nodes, Redis up.
    let (_, _, nodes) = http(&base, "/cluster", Some(&cookie), None).await;
    assert!(nodes.contains("Redis is up; 2 live node(s)."), "{nodes}");
    assert!(
        nodes.contains("<td>a</td>") && nodes.contains("<td>b</td>"),
        "{nodes}"
    );
    // Whoever can write Redis may write anything there: a live entry that is not a node's is
    // named and left out; an end request that is not one is dropped.
    let redis_cli = |args: &[&str]| {
        let out = Command::new("redis-cli")
            .arg("-u")
            .arg(redis.url())
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    };
    redis_cli(&["SADD", "ponte:nodes", "z"]);
    redis_cli(&["SET", "ponte:live:z", "<script>not json"]);
    redis_cli(&["RPUSH", "ponte:ends:b", "not a request", "[1]", "[\"x\", 2]"]);
    let (_, _, page) = http(&base, "/sessions", Some(&cookie), None).await;
    assert!(
        page.contains("node(s) z are not shown") && !page.contains("<script>not"),
        "{page}"
    );
    tokio::time::sleep(ponte_relay::cluster::HEARTBEAT * 2).await;
    assert!(
        flows(&agent, &viewer).await.is_ok(),
        "junk in Redis ended nothing"
    );
    let csrf = field_after(&page, "<body", "csrf");
    let row = field_after(&page, "name=\"node\" value=\"b\"", "row");
    let words = "Maintenance on node b";
    let form = format!("csrf={csrf}&node=b&row={row}&reason={}", words.replace(' ', "+"));
    let (status, head, _) = http(&base, "/sessions/end", Some(&cookie), Some(&form)).await;
    assert_eq!(status, 303, "{head}");
    for (side, client) in [("agent", &agent), ("viewer", &viewer)] {
        let closed = tokio::time::timeout(Duration::from_secs(15), client.connection().closed())
            .await
            .unwrap_or_else(|_| panic!("the {side} was not disconnected"));
        assert_eq!(
            ponte_transport::client::operator_words(&closed)
                .map(|w| w.into_raw())
                .as_deref(),
            Some(words),
            "{side}: {closed}"
        );
    }
    let mut ledger = ponte_relay::ledger::Target::parse(None, &dir.path().join("b"))
        .unwrap()
        .open()
        .await
        .unwrap()
        .unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let rows = ledger.rows(i64::MIN, i64::MAX).await.unwrap();
        if let [row] = rows.as_slice()
            && row.end_reason.is_some()
        {
            assert_eq!(row.end_reason.as_deref(), Some("ended_by_operator"), "{row:?}");
            break;
        }
        assert!(Instant::now() < deadline, "{rows:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(b);
    drop(a);
}
