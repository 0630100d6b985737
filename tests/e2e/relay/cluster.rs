//! Relay clusters in one process: three nodes sharing a real redis-server on loopback, clients
//! that pin the cluster key. Node death and SIGTERM with real processes are in the top-level
//! `cluster` module.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ponte_relay::cluster::{Cluster, ClusterSettings, NodeName, RateLimit, RegisterLimits};
use ponte_relay::{Config, Relay, cert};
use ponte_testbed::RedisServer;
use ponte_tests::{endpoint, eventually, refusal};
use ponte_transport::client::{ClientError, Redirects, RelayClient};
use ponte_transport::tls::{self, CertFingerprint, RelayTrust};
use ponte_wire::SessionId;
use ponte_wire::rendezvous::{Refusal, RelayMessage};

struct Node {
    relay: Relay,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A cluster key in a directory of its own.
struct ClusterKey {
    dir: tempfile::TempDir,
    fingerprint: CertFingerprint,
}

impl ClusterKey {
    fn new() -> ClusterKey {
        let dir = tempfile::tempdir().unwrap();
        let fingerprint = cert::init_cluster(dir.path()).unwrap();
        ClusterKey { dir, fingerprint }
    }
}

async fn node_with(key: &ClusterKey, redis: &str, name: &str, tweak: impl FnOnce(&mut Config)) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], free_udp_port()));
    let node: NodeName = name.parse().unwrap();
    let public = addr.to_string().parse().unwrap();
    let files = cert::certify_node(key.dir.path(), &node, Some(&public), dir.path()).unwrap();
    let mut config = Config::new(addr, dir.path().to_owned());
    config.cert = Some((files.cert, files.key));
    config.cluster = Some(ClusterSettings {
        url: redis.to_owned(),
        node,
        public_addr: public,
    });
    tweak(&mut config);
    let relay = Relay::start(config).await.unwrap();
    assert_eq!(relay.cluster_fingerprint(), Some(key.fingerprint));
    Node {
        addr: relay.local_addr().unwrap(),
        relay,
        _dir: dir,
    }
}

async fn node(key: &ClusterKey, redis: &str, name: &str) -> Node {
    node_with(key, redis, name, |_| {}).await
}

/// A client that pins the cluster key and follows redirects with the same trust.
async fn client_pinned(addr: SocketAddr, pin: CertFingerprint, from: u8) -> Result<RelayClient, ClientError> {
    let (config, seen) = tls::client_config(
        &RelayTrust::Pinned(pin),
        tls::transport_config(Duration::from_secs(30)),
    )
    .unwrap();
    let ep = endpoint(from);
    let mut client = RelayClient::connect(&ep, addr, "ponte-relay", config.clone(), &seen).await?;
    client.follow_redirects(Redirects { endpoint: ep, config });
    Ok(client)
}

async fn client(node: &Node, key: &ClusterKey) -> RelayClient {
    client_pinned(node.addr, key.fingerprint, 1).await.unwrap()
}

/// Sends `data` from `from` to `to` over a new forwarded stream and checks it arrives.
async fn forwarded(from: &RelayClient, to: &RelayClient, data: &[u8]) {
    let (mut send, _recv) = from.connection().open_bi().await.unwrap();
    send.write_all(data).await.unwrap();
    send.finish().unwrap();
    let (_s, mut recv) = tokio::time::timeout(Duration::from_secs(10), to.connection().accept_bi())
        .await
        .unwrap()
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), recv.read_to_end(1 << 20))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, data);
}

#[tokio::test]
async fn viewers_joining_on_other_nodes_are_redirected_to_the_agents_node() {
    let redis = RedisServer::start();
    let key = ClusterKey::new();
    let (a, b, c) = (
        node(&key, &redis.url(), "a").await,
        node(&key, &redis.url(), "b").await,
        node(&key, &redis.url(), "c").await,
    );
    for (n, via) in [(1u64, &b), (2, &c)] {
        let mut agent = client(&a, &key).await;
        let (id, _) = agent.register().await.unwrap();
        let mut viewer = client(via, &key).await;
        viewer.join(id).await.unwrap();
        assert_eq!(agent.next().await.unwrap(), RelayMessage::Paired);
        // The viewer now talks to node A, the one that holds the session.
        assert_eq!(viewer.connection().remote_address(), a.addr);
        assert_eq!(a.relay.counts(), (0, 1));
        assert_eq!(via.relay.counts(), (0, 0));
        forwarded(&viewer, &agent, &ponte_tests::payload(n, 100_000)).await;
        forwarded(&agent, &viewer, &ponte_tests::payload(n + 10, 1000)).await;
        viewer.connection().close(0u32.into(), b"done");
        agent.connection().close(0u32.into(), b"done");
        eventually(5, || a.relay.counts() == (0, 0)).await;
    }

    // A client that does not follow redirects is told where to go and nothing else.
    let mut agent = client(&a, &key).await;
    let (id, _) = agent.register().await.unwrap();
    let (config, seen) = tls::client_config(
        &RelayTrust::Pinned(key.fingerprint),
        tls::transport_config(Duration::from_secs(30)),
    )
    .unwrap();
    let mut plain = RelayClient::connect(&endpoint(1), b.addr, "ponte-relay", config, &seen)
        .await
        .unwrap();
    match plain.join(id).await {
        Err(ClientError::Unexpected(RelayMessage::Redirect { node })) => {
            assert_eq!(node.as_str(), a.addr.to_string())
        }
        other => panic!("expected a redirect, got {other:?}"),
    }
    // Unknown IDs get the usual answer on every node, not a redirect.
    let mut viewer = client(&c, &key).await;
    let err = viewer.join("123456789".parse().unwrap()).await.unwrap_err();
    assert_eq!(refusal(&err), Some(Refusal::UnknownSession));
    // A paired session is not advertised either: same answer as an unknown ID.
    let mut first = client(&b, &key).await;
    first.join(id).await.unwrap();
    eventually(5, || a.relay.counts() == (0, 1)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut second = client(&c, &key).await;
    let err = second.join(id).await.unwrap_err();
    assert_eq!(refusal(&err), Some(Refusal::UnknownSession), "{err}");
    assert!(a.relay.cluster_operations() > 0);
}

#[tokio::test]
async fn session_ids_are_claimed_atomically_cluster_wide() {
    let redis = RedisServer::start();
    let handles: Vec<Arc<Cluster>> = ["a", "b", "c"]
        .iter()
        .enumerate()
        .map(|(i, name)| {
            Cluster::new(
                ClusterSettings {
                    url: redis.url(),
                    node: name.parse().unwrap(),
                    public_addr: format!("127.0.0.1:{}", 5000 + i).parse().unwrap(),
                },
                &[],
            )
            .unwrap()
        })
        .collect();
    let limits = RegisterLimits {
        rate: Some(RateLimit {
            rate: 1e6,
            burst: 1e6,
        }),
        waiting_per_source: 1_000_000,
        pairing_ttl: Duration::from_secs(60),
    };
    let source = ponte_relay::source::SourceMask::default().source("10.0.0.1".parse().unwrap());
    // Every node races for the same 100 IDs at once: each ID must go to exactly one.
    let mut tasks = Vec::new();
    for n in 0..100u32 {
        let id: SessionId = format!("{:09}", 100_000_000 + n).parse().unwrap();
        for cluster in &handles {
            let cluster = cluster.clone();
            tasks.push(tokio::spawn(async move {
                let won = cluster.register(id, source, &limits).await.unwrap();
                (id, won.is_some())
            }));
        }
    }
    let mut winners = std::collections::HashMap::new();
    for t in tasks {
        let (id, won) = t.await.unwrap();
        *winners.entry(id).or_insert(0) += u32::from(won);
    }
    assert_eq!(winners.len(), 100);
    assert!(winners.values().all(|w| *w == 1), "{winners:?}");
}

#[tokio::test]
async fn ids_stay_unique_under_concurrent_registration_on_all_nodes() {
    let redis = RedisServer::start();
    let key = ClusterKey::new();
    let open = |c: &mut Config| {
        c.registry.register_burst = 1e6;
        c.registry.register_rate = 1e6;
        c.registry.waiting_per_source = 1_000_000;
        c.admission.per_source = 1000;
    };
    let nodes = [
        node_with(&key, &redis.url(), "a", open).await,
        node_with(&key, &redis.url(), "b", open).await,
        node_with(&key, &redis.url(), "c", open).await,
    ];
    let mut tasks = Vec::new();
    for node in &nodes {
        for _ in 0..100 {
            let (addr, pin) = (node.addr, key.fingerprint);
            tasks.push(tokio::spawn(async move {
                let mut agent = client_pinned(addr, pin, 1).await.unwrap();
                let (id, _) = agent.register().await.unwrap();
                (id, agent)
            }));
        }
    }
    let mut ids = std::collections::HashSet::new();
    let mut agents = Vec::new();
    for t in tasks {
        let (id, agent) = t.await.unwrap();
        assert!(ids.insert(id), "duplicate session ID {id}");
        agents.push(agent);
    }
    assert_eq!(ids.len(), 300);
    for node in &nodes {
        assert_eq!(node.relay.counts(), (100, 0));
    }
}

#[tokio::test]
async fn a_join_flood_spread_over_the_nodes_is_limited_as_if_it_hit_one() {
    let redis = RedisServer::start();
    let key = ClusterKey::new();
    let limits = |c: &mut Config| {
        c.registry.join_burst = 5.0;
        c.registry.join_rate = 1.0 / 60.0;
    };
    let nodes = [
        node_with(&key, &redis.url(), "a", limits).await,
        node_with(&key, &redis.url(), "b", limits).await,
        node_with(&key, &redis.url(), "c", limits).await,
    ];
    let mut unknown = 0;
    let mut limited = 0;
    for i in 0..15 {
        let mut viewer = client(&nodes[i % 3], &key).await;
        let err = viewer.join("123456789".parse().unwrap()).await.unwrap_err();
        match refusal(&err) {
            Some(Refusal::UnknownSession) => unknown += 1,
            Some(Refusal::RateLimited { .. }) => limited += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    // Each node alone would have let 5 through (15 in all).
    assert_eq!((unknown, limited), (5, 10));
    // Another source still has its own budget.
    let mut other = client_pinned(nodes[0].addr, key.fingerprint, 2).await.unwrap();
    let err = other.join("123456789".parse().unwrap()).await.unwrap_err();
    assert_eq!(refusal(&err), Some(Refusal::UnknownSession));
}

#[tokio::test]
async fn waiting_sessions_per_source_are_capped_cluster_wide() {
    let redis = RedisServer::start();
    let key = ClusterKey::new();
    let limits = |c: &mut Config| c.registry.waiting_per_source = 2;
    let (a, b) = (
        node_with(&key, &redis.url(), "a", limits).await,
        node_with(&key, &redis.url(), "b", limits).await,
    );
    let mut first = client(&a, &key).await;
    first.register().await.unwrap();
    let mut second = client(&b, &key).await;
    second.register().await.unwrap();
    let mut third = client(&a, &key).await;
    let err = third.register().await.unwrap_err();
    assert_eq!(refusal(&err), Some(Refusal::Capacity));
}

#[tokio::test]
async fn established_sessions_survive_a_redis_outage_and_new_ones_resume_after_it() {
    let mut redis = RedisServer::start();
    let key = ClusterKey::new();
    let (a, b) = (
        node(&key, &redis.url(), "a").await,
        node(&key, &redis.url(), "b").await,
    );
    let mut agent = client(&a, &key).await;
    let (id, _) = agent.register().await.unwrap();
    let mut viewer = client(&b, &key).await;
    viewer.join(id).await.unwrap();
    assert_eq!(agent.next().await.unwrap(), RelayMessage::Paired);
    // A session still waiting when Redis goes away.
    let mut waiting = client(&a, &key).await;
    let (waiting_id, _) = waiting.register().await.unwrap();

    redis.stop();
    forwarded(&viewer, &agent, b"still here").await;
    let mut late = client(&a, &key).await;
    let err = late.register().await.unwrap_err();
    assert_eq!(refusal(&err), Some(Refusal::ClusterUnavailable), "{err}");
    // A join for a session held elsewhere cannot be placed either; one held here still works.
    let mut lost = client(&b, &key).await;
    let err = lost.join(waiting_id).await.unwrap_err();
    assert_eq!(refusal(&err), Some(Refusal::ClusterUnavailable), "{err}");

    redis.restart();
    // The nodes reconnect by themselves and rewrite their claims into the empty Redis.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let again = loop {
        let mut c = client(&a, &key).await;
        match c.register().await {
            Ok(_) => break c,
            Err(e) => {
                assert_eq!(refusal(&e), Some(Refusal::ClusterUnavailable), "{e}");
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "registration did not recover"
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    };
    tokio::time::sleep(ponte_relay::cluster::HEARTBEAT * 2).await;
    let mut v = client(&b, &key).await;
    v.join(waiting_id).await.unwrap();
    assert_eq!(waiting.next().await.unwrap(), RelayMessage::Paired);
    forwarded(&viewer, &agent, b"and after").await;
    again.connection().close(0u32.into(), b"");
}

/// A node of the cluster `key` gone rogue: it answers every join with a redirect to `to`.
async fn rogue_node(key: &ClusterKey, to: ponte_wire::rendezvous::NodeAddress) -> SocketAddr {
    use ponte_transport::framed;
    use ponte_wire::rendezvous::{self, ClientMessage, MAX_MESSAGE};
    let dir = tempfile::tempdir().unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], free_udp_port()));
    let files = cert::certify_node(
        key.dir.path(),
        &"rogue".parse().unwrap(),
        Some(&addr.to_string().parse().unwrap()),
        dir.path(),
    )
    .unwrap();
    let identity = cert::load(&files.cert, &files.key).unwrap();
    let config = tls::server_config(
        identity.chain,
        identity.key,
        tls::transport_config(Duration::from_secs(30)),
    )
    .unwrap();
    let endpoint = quinn::Endpoint::server(config, addr).unwrap();
    let addr = endpoint.local_addr().unwrap();
    tokio::spawn(async move {
        let _dir = dir;
        while let Some(incoming) = endpoint.accept().await {
            let to = to.clone();
            tokio::spawn(async move {
                let connection = incoming.await?;
                let (mut send, mut recv) = connection.accept_bi().await?;
                let _ = framed::read::<ClientMessage>(&mut recv, MAX_MESSAGE).await;
                let redirect = RelayMessage::Redirect { node: to };
                let _ = framed::write(&mut send, &rendezvous::encode_relay(&redirect)).await;
                let _ = send.finish();
                connection.closed().await;
                Ok::<_, quinn::ConnectionError>(())
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_node_certified_by_another_cluster_key_is_refused() {
    let redis = RedisServer::start();
    let ours = ClusterKey::new();
    let theirs = ClusterKey::new();
    let good = node(&ours, &redis.url(), "good").await;
    let foreign = node(&theirs, &redis.url(), "foreign").await;
    // Pinned to our key: any of our nodes, never theirs.
    client_pinned(good.addr, ours.fingerprint, 1).await.unwrap();
    let err = client_pinned(foreign.addr, ours.fingerprint, 1)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Connect(_) | ClientError::Connection(_)),
        "{err:?}"
    );
    // The node's own certificate fingerprint is not the cluster key's.
    assert_ne!(good.relay.fingerprint(), ours.fingerprint);

    // A foreign node sharing the Redis is no redirect target: its certificate is not signed
    // by our key, so our node refuses rather than send the viewer there.
    let mut agent = client(&foreign, &theirs).await;
    let (id, _) = agent.register().await.unwrap();
    let mut viewer = client(&good, &ours).await;
    let err = viewer.join(id).await.unwrap_err();
    assert_eq!(refusal(&err), Some(Refusal::ClusterUnavailable), "{err:?}");
    // And a rogue node of ours that redirects there anyway gets nowhere: the client checks
    // the node it is sent to with the same pin.
    let rogue = rogue_node(&ours, foreign.addr.to_string().parse().unwrap()).await;
    let mut viewer = client_pinned(rogue, ours.fingerprint, 1).await.unwrap();
    let err = viewer.join(id).await.unwrap_err();
    assert!(matches!(err, ClientError::Redirect { .. }), "{err:?}");

    // First use remembers the cluster key, not the node's certificate.
    let (config, seen) = tls::client_config(
        &RelayTrust::FirstUse,
        tls::transport_config(Duration::from_secs(30)),
    )
    .unwrap();
    let c = RelayClient::connect(&endpoint(1), good.addr, "ponte-relay", config, &seen)
        .await
        .unwrap();
    assert_eq!(c.trust_anchor(), Some(ours.fingerprint));
    assert_eq!(c.relay_fingerprint(), Some(good.relay.fingerprint()));
}

#[tokio::test]
async fn a_register_device_flood_spread_over_the_nodes_is_limited_before_any_challenge() {
    use ponte_e2e::device_key::DeviceKey;
    use ponte_wire::rendezvous::ClientMessage;
    let redis = RedisServer::start();
    let key = ClusterKey::new();
    let limits = |c: &mut Config| {
        c.registry.register_burst = 2.0;
        c.registry.register_rate = 1.0 / 60.0;
        c.admission.per_source = 100;
    };
    let nodes = [
        node_with(&key, &redis.url(), "a", limits).await,
        node_with(&key, &redis.url(), "b", limits).await,
    ];
    let mut held = Vec::new();
    let (mut challenged, mut limited) = (0, 0);
    for i in 0..8 {
        let tag = DeviceKey::generate(&mut ponte_wire::os_rng()).public().tag();
        let mut agent = client(&nodes[i % 2], &key).await;
        agent.send(&ClientMessage::RegisterDevice { tag }).await.unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(10), agent.next())
            .await
            .expect("the node answers RegisterDevice at once")
            .unwrap();
        match answer {
            RelayMessage::DeviceChallenge { .. } => challenged += 1,
            RelayMessage::Refused(Refusal::RateLimited { .. }) => limited += 1,
            other => panic!("unexpected answer {other:?}"),
        }
        held.push(agent);
    }
    // Each node alone would have challenged two (four in all).
    assert_eq!((challenged, limited), (2, 6));
}

/// A client of `node` that does not follow redirects: it sees exactly what the node answers.
async fn probe(node: &Node, key: &ClusterKey, from: u8) -> RelayClient {
    let (config, seen) = tls::client_config(
        &RelayTrust::Pinned(key.fingerprint),
        tls::transport_config(Duration::from_secs(30)),
    )
    .unwrap();
    RelayClient::connect(&endpoint(from), node.addr, "ponte-relay", config, &seen)
        .await
        .unwrap()
}

/// What a join answered, as the test compares it: the refusal, or the whole error (a redirect
/// is not a refusal).
fn answer(result: Result<(), ClientError>) -> String {
    match result {
        Ok(()) => "paired".to_owned(),
        Err(e) => match refusal(&e) {
            Some(r) => format!("{r:?}"),
            None => format!("{e:?}"),
        },
    }
}

#[tokio::test]
async fn without_a_credential_a_session_on_another_node_is_answered_like_an_unknown_id() {
    // docs/PROTOCOL.md § 3.2: on a relay that requires credentials the credential is checked
    // before the ID is looked up. A redirect before that check told a scanner without a
    // credential which IDs are live somewhere in the cluster.
    use ponte_e2e::device_key::DeviceKey;
    use ponte_relay::cluster::AssistantBook;
    use ponte_relay::config::AssistantMode;
    use ponte_transport::client::JoinExtras;
    use ponte_transport::credential::AssistantCredential;
    let redis = RedisServer::start();
    // The nodes read the cluster's accounts when they start.
    let alice = AssistantBook::open(&redis.url())
        .unwrap()
        .add_assistant("alice")
        .await
        .unwrap()
        .to_text();
    let key = ClusterKey::new();
    let required = |c: &mut Config| c.assistants = AssistantMode::Required;
    let a = node_with(&key, &redis.url(), "a", required).await;
    let b = node_with(&key, &redis.url(), "b", required).await;
    let mut agent = client(&a, &key).await;
    let (live, _) = agent.register().await.unwrap();
    let unknown: SessionId = if live.to_string() == "123456789" {
        "987654321"
    } else {
        "123456789"
    }
    .parse()
    .unwrap();
    let device = DeviceKey::generate(&mut ponte_wire::os_rng());
    let tag = device.public().tag();
    let mut quick = client(&a, &key).await;
    quick
        .register_device(device.public().0, tag, |c, e| device.possession(c, e))
        .await
        .unwrap();

    // Through node B, with no credential and with one the cluster does not know: the live ID
    // gets exactly the unknown ID's answer, and so does the live device tag.
    let mut from = 10;
    for (credential, expected) in [(false, "CredentialRequired"), (true, "CredentialRefused")] {
        let extras = || JoinExtras {
            credential: credential.then(|| AssistantCredential::generate().unwrap()),
            ticket: None,
        };
        let mut answers = Vec::new();
        for id in [live, unknown] {
            from += 1;
            let mut p = probe(&b, &key, from).await;
            answers.push(answer(p.join_with(id, &extras()).await));
        }
        for t in [tag, ponte_wire::DeviceTag([3; 16])] {
            from += 1;
            let mut p = probe(&b, &key, from).await;
            answers.push(answer(p.join_device(t, &extras()).await.map(|_| ())));
        }
        assert_eq!(answers, [expected; 4], "credential presented: {credential}");
    }
    assert!(b.relay.stats().auth_refused >= 8);

    // A valid credential is redirected, and joins on node A with a proof made for that
    // connection.
    let mut viewer = client(&b, &key).await;
    let extras = JoinExtras {
        credential: Some(AssistantCredential::parse(&alice).unwrap()),
        ticket: None,
    };
    viewer.join_with(live, &extras).await.unwrap();
    assert_eq!(agent.next().await.unwrap(), RelayMessage::Paired);
    assert_eq!(viewer.connection().remote_address(), a.addr);
}

/// Writes into the cluster's Redis what whoever can write it may: an entry for node `node`
/// (published address `addr`, certificate `cert`, last heartbeat `age_ms` ago by Redis's
/// clock, in the node set) and `claims` (session or device keys) pointing at it.
async fn forge(url: &str, node: &str, addr: &str, cert: &[u8], age_ms: u64, claims: &[String]) {
    use ponte_relay::cluster::PREFIX;
    let mut redis = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let script = redis::Script::new(
        "local t = redis.call('TIME') \
         local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) \
         redis.call('HSET', KEYS[1], 'addr', ARGV[1], 'cert', ARGV[2], 'seen', now - tonumber(ARGV[3]), \
             'waiting', 1, 'paired', 0, 'draining', 0) \
         redis.call('SADD', KEYS[2], ARGV[4]) \
         for i = 3, #KEYS do redis.call('SET', KEYS[i], ARGV[4]) end \
         return 1",
    );
    let mut call = script.prepare_invoke();
    call.key(format!("{PREFIX}node:{node}"))
        .key(format!("{PREFIX}nodes"));
    for claim in claims {
        call.key(claim);
    }
    call.arg(addr).arg(cert).arg(age_ms).arg(node);
    let _: i64 = call.invoke_async(&mut redis).await.unwrap();
}

/// A node's certificate as it publishes it in the cluster's Redis (empty if it does not).
async fn published_certificate(url: &str, node: &str) -> Vec<u8> {
    let mut redis = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let cert: Option<Vec<u8>> = redis::cmd("HGET")
        .arg(format!("{}node:{node}", ponte_relay::cluster::PREFIX))
        .arg("cert")
        .query_async(&mut redis)
        .await
        .unwrap();
    cert.unwrap_or_default()
}

#[tokio::test]
async fn a_redis_entry_is_followed_only_to_a_live_node_at_the_address_it_was_certified_for() {
    // Whoever can write the cluster's Redis could send viewers anywhere (their TLS pinning
    // holds, but they would be sent away from the session). A node redirects only to a node
    // that heartbeats, and only to the address its certificate — signed by this cluster's
    // key — was certified for (`ponte-relay cluster certify --public-addr`).
    use ponte_relay::cluster::PREFIX;
    use ponte_transport::client::JoinExtras;
    use ponte_wire::DeviceTag;
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let redis = RedisServer::start();
    let url = redis.url();
    let key = ClusterKey::new();
    let a = node(&key, &url, "a").await;
    let b = node(&key, &url, "b").await;
    // Node A's own certificate, as A publishes it at its first heartbeat: genuine, certified
    // for A's address.
    let mut a_cert = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while a_cert.is_empty() && tokio::time::Instant::now() < deadline {
        a_cert = published_certificate(&url, "a").await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!a_cert.is_empty(), "node A publishes its certificate");
    // A certificate of another cluster key, certified for the attacker's address.
    let theirs = ClusterKey::new();
    let evil_addr = "evil.example:443";
    let out = tempfile::tempdir().unwrap();
    let files = cert::certify_node(
        theirs.dir.path(),
        &"evil".parse().unwrap(),
        Some(&evil_addr.parse().unwrap()),
        out.path(),
    )
    .unwrap();
    let foreign = CertificateDer::pem_file_iter(&files.cert)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .to_vec();

    let session = |n: u32| -> SessionId { format!("{:09}", 111_111_111 * n).parse().unwrap() };
    let claim = |id: SessionId| format!("{PREFIX}session:{id}");
    let evil_tag = DeviceTag([0xee; 16]);
    let a_addr = a.addr.to_string();
    // A's genuine certificate, published with another address.
    let evil_claims = [claim(session(1)), format!("{PREFIX}device:{evil_tag}")];
    forge(&url, "evil", evil_addr, &a_cert, 0, &evil_claims).await;
    // Another cluster's certificate, certified for the address it is published with.
    forge(&url, "mallory", evil_addr, &foreign, 0, &[claim(session(2))]).await;
    // A's certificate and address, but no heartbeat for a minute.
    forge(&url, "ghost", &a_addr, &a_cert, 60_000, &[claim(session(3))]).await;
    // A's certificate and address, heartbeating: a genuine node's place, so followed.
    forge(&url, "twin", &a_addr, &a_cert, 0, &[claim(session(4))]).await;

    let mut answers = Vec::new();
    for (n, from) in [(1, 21), (2, 22), (3, 23), (4, 24)] {
        let mut p = probe(&b, &key, from).await;
        answers.push(answer(p.join(session(n)).await));
    }
    let mut p = probe(&b, &key, 25).await;
    answers.push(answer(
        p.join_device(evil_tag, &JoinExtras::default()).await.map(|_| ()),
    ));
    assert_eq!(
        answers,
        [
            "ClusterUnavailable".to_owned(),
            "ClusterUnavailable".to_owned(),
            "UnknownSession".to_owned(),
            format!("Unexpected(Redirect {{ node: NodeAddress({a_addr:?}) }})"),
            "ClusterUnavailable".to_owned(),
        ]
    );
    assert_eq!(b.relay.stats().redirects_refused, 4);
    // `cluster status` reads entries that hold a certificate (bytes), forged ones included.
    let names: Vec<String> = ponte_relay::cluster::status(&url)
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.name)
        .collect();
    assert_eq!(names, ["a", "b", "evil", "ghost", "mallory", "twin"]);
}

/// The customer's End of a session that waited to be resumed, left on one node, is what its
/// viewer hears through any other node (redirected to the node that keeps it), and a session
/// waiting under another tag is not disturbed.
#[tokio::test]
async fn an_ended_resume_is_heard_through_any_node() {
    let redis = RedisServer::start();
    let key = ClusterKey::new();
    let (a, b) = (
        node(&key, &redis.url(), "a").await,
        node(&key, &redis.url(), "b").await,
    );
    let tag = ponte_wire::device::resume_tag(&[7; 32]);
    let mut ender = client(&a, &key).await;
    ender.end_resume(tag, [7; 32]).await.unwrap();
    let other = ponte_wire::DeviceTag([0x43; 16]);
    let mut waiting = client(&a, &key).await;
    waiting.register_resume(other).await.unwrap();

    for via in [&b, &a] {
        let mut viewer = client(via, &key).await;
        match viewer.join_resume(tag, &Default::default()).await {
            Err(ClientError::ResumeEnded { proof }) => assert_eq!(proof, [7; 32]),
            other => panic!("{other:?}"),
        }
    }
    let mut viewer = client(&b, &key).await;
    viewer.join_resume(other, &Default::default()).await.unwrap();
}
