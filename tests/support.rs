//! What the end-to-end tests share beyond the testbed (`ponte-testbed`): a relay in the test's
//! own process, and rendezvous clients of it on loopback.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use ponte_relay::{Config, Relay};
use ponte_transport::client::{ClientError, Redirects, RelayClient};
use ponte_transport::tls::{self, RelayTrust};
use ponte_wire::rendezvous::{Refusal, RelayMessage};

/// A relay in this process on a loopback port, with a data directory of its own.
pub struct TestRelay {
    /// The relay.
    pub relay: Relay,
    /// Its address.
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

/// A relay started with the default configuration as changed by `tweak`.
pub async fn relay_with(tweak: impl FnOnce(&mut Config)) -> TestRelay {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new("127.0.0.1:0".parse().unwrap(), dir.path().to_owned());
    tweak(&mut config);
    let relay = Relay::start(config).await.unwrap();
    let addr = relay.local_addr().unwrap();
    TestRelay {
        relay,
        addr,
        _dir: dir,
    }
}

/// A relay with the default configuration.
pub async fn relay() -> TestRelay {
    relay_with(|_| {}).await
}

/// A client endpoint bound to a loopback address (127.0.0.x stands for different client IPs).
pub fn endpoint(last_octet: u8) -> quinn::Endpoint {
    let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, last_octet));
    quinn::Endpoint::client(SocketAddr::new(ip, 0)).unwrap()
}

impl TestRelay {
    /// A rendezvous client of it from `ep`, pinned to its certificate.
    pub async fn connect_from(&self, ep: &quinn::Endpoint) -> Result<RelayClient, ClientError> {
        let (config, seen) = tls::client_config(
            &RelayTrust::Pinned(self.relay.fingerprint()),
            tls::transport_config(Duration::from_secs(30)),
        )
        .unwrap();
        RelayClient::connect(ep, self.addr, "ponte-relay", config, &seen).await
    }

    /// A bare connection with no stream opened, for sending raw bytes.
    pub async fn raw_connection(&self) -> quinn::Connection {
        let (config, _) = tls::client_config(
            &RelayTrust::Pinned(self.relay.fingerprint()),
            tls::transport_config(Duration::from_secs(30)),
        )
        .unwrap();
        endpoint(1)
            .connect_with(config, self.addr, "ponte-relay")
            .unwrap()
            .await
            .unwrap()
    }

    /// A rendezvous client of it from 127.0.0.1.
    pub async fn connect(&self) -> RelayClient {
        self.connect_from(&endpoint(1)).await.unwrap()
    }

    /// A registered agent and a viewer paired with it; both have seen `Paired`.
    pub async fn pair(&self) -> (RelayClient, RelayClient) {
        let mut agent = self.connect().await;
        let (id, _) = agent.register().await.unwrap();
        let mut viewer = self.connect().await;
        viewer.join(id).await.unwrap();
        assert_eq!(agent.next().await.unwrap(), RelayMessage::Paired);
        (agent, viewer)
    }
}

/// The refusal carried by a client error (refused message or close reason).
pub fn refusal(e: &ClientError) -> Option<Refusal> {
    e.refusal()
}

/// Waits until `f` is true or panics after `secs`.
pub async fn eventually(secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met in {secs} s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Deterministic pseudo-random payload.
pub fn payload(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A rendezvous client pinned to `pin` (a relay's or a cluster key's fingerprint), following
/// redirects, that notices a silent relay within `idle`.
pub async fn relay_client(
    addr: SocketAddr,
    pin: tls::CertFingerprint,
    idle: Duration,
) -> Result<RelayClient, ClientError> {
    let (config, seen) = tls::client_config(&RelayTrust::Pinned(pin), tls::transport_config(idle)).unwrap();
    let ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let mut c = RelayClient::connect(&ep, addr, "ponte-relay", config.clone(), &seen).await?;
    c.follow_redirects(Redirects { endpoint: ep, config });
    Ok(c)
}
