//! Connecting to a relay: resolve the address, choose how to trust its certificate (pinned
//! fingerprint, a CA, or trust on first use), connect and open the control line.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ponte_transport::client::{ClientError, JoinExtras, Redirects, RelayClient};
use ponte_transport::tls::{self, CertFingerprint, RelayTrust};
use ponte_wire::rendezvous::Ticket;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::SessionError;
use crate::known_relays::{KnownRelays, Verdict};

/// Default relay address.
pub const DEFAULT_RELAY: &str = "127.0.0.1:4433";

/// How to reach and trust a relay.
#[derive(Debug, Clone)]
pub struct RelayOptions {
    /// `host:port`, or several separated by commas (the nodes of a relay cluster), tried in
    /// order; every address a name resolves to is tried too.
    pub address: String,
    /// Accept exactly this certificate.
    pub fingerprint: Option<CertFingerprint>,
    /// Verify the relay's certificate against this CA (PEM file).
    pub ca: Option<PathBuf>,
    /// Where trust-on-first-use fingerprints are remembered.
    pub known_relays: KnownRelays,
}

/// The command-line options of agent and viewer that choose and verify the relay.
#[derive(Debug, Clone, clap::Args)]
pub struct RelayArgs {
    /// The relay (host:port), or several (a,b,c: the nodes of a relay cluster), tried in order
    /// until one answers.
    #[arg(long, env = "PONTE_RELAY", default_value = DEFAULT_RELAY)]
    pub relay: String,

    /// Accept only the relay certificate with this SHA-256 fingerprint (64 hex digits, as
    /// printed by ponte-relay), or, for a relay cluster, any node certified by the cluster key
    /// with this fingerprint (`cluster fingerprint:` as printed by `ponte-relay cluster init`). Without it or --ca, the first fingerprint seen is remembered
    /// and a later change is refused.
    #[arg(long)]
    pub fingerprint: Option<CertFingerprint>,

    /// Verify the relay's certificate with this CA certificate (PEM).
    #[arg(long)]
    pub ca: Option<PathBuf>,

    /// Continue even if the relay's certificate changed since the last time (only after the
    /// relay's operator confirmed the new fingerprint).
    #[arg(long)]
    pub accept_new_fingerprint: bool,
}

impl RelayArgs {
    /// The connection options, remembering first-use fingerprints in the user's config dir.
    pub fn options(&self) -> RelayOptions {
        RelayOptions {
            address: self.relay.clone(),
            fingerprint: self.fingerprint,
            ca: self.ca.clone(),
            known_relays: KnownRelays::default_location(),
        }
    }
}

/// What an assistant's viewer presents to a relay that asks: the operator's credential and a
/// ticket reference for the operator's ledger.
#[derive(Debug, Clone, clap::Args)]
pub struct AssistantArgs {
    /// The assistant credential from the relay's operator (`ponte-relay assistant add`).
    /// Without it: the PONTE_CREDENTIAL environment variable (the credential itself or a file
    /// path), else the file `credential` in Ponte's config directory (~/.config/ponte) if there.
    #[arg(long, value_name = "FILE")]
    pub credential: Option<PathBuf>,

    /// The operator's reference for this work (a ticket number, say: letters, digits, space
    /// and . _ - : / #, at most 64), written into the relay's session ledger. The relay's
    /// operator sees it; the customer's data does not go with it.
    #[arg(long, value_name = "REF")]
    pub ticket: Option<Ticket>,
}

impl AssistantArgs {
    /// Where the credential is looked for when neither the flag nor the environment names one.
    pub fn default_credential_file() -> Option<PathBuf> {
        dirs::config_dir().map(|d| d.join("ponte").join("credential"))
    }

    /// What to present with the join ([`RelayClient::join_with`]).
    pub fn join_extras(&self) -> Result<JoinExtras, SessionError> {
        let env = std::env::var(ponte_transport::credential::ENV).ok();
        let credential = ponte_transport::credential::find(
            self.credential.as_deref(),
            env.as_deref(),
            Self::default_credential_file().as_deref(),
        )
        .map_err(|e| SessionError::Relay(ClientError::Credential(e)))?;
        Ok(JoinExtras {
            credential,
            ticket: self.ticket.clone(),
        })
    }
}

/// How a first-use or changed fingerprint went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustNote {
    /// Verified by pin or CA, or matched the remembered fingerprint.
    Trusted,
    /// First connection to this relay: its fingerprint is now remembered.
    FirstUse(CertFingerprint),
    /// The fingerprint changed and the user accepted the new one.
    AcceptedChange(CertFingerprint),
}

/// Silence after which the relay counts as lost (the shorter of the two sides' timeouts holds
/// for both, so the relay drops a silent client as soon). Keep-alives go every second and a
/// silent path is left for a fresh socket after 2.5 s ([`ponte_transport::path`]), so only a
/// relay (node) that died or a network cut for longer is silent this long; short, so that a
/// session is resumed ([`crate::resume`]) seconds after its path died, not tens.
fn idle_timeout() -> Duration {
    Duration::from_secs(5)
}

/// The transport of an agent's or viewer's connection to the relay. Their uplinks are the
/// slow and lossy legs of a session (a customer's DSL or 4G line), where BBR keeps sending at
/// the path's rate through random loss that makes Cubic back off (docs/BENCHMARKS.md § Screen
/// over slow uplinks). The relay, in a data centre, keeps quinn's default.
fn client_transport() -> quinn::TransportConfig {
    let mut t = tls::transport_config(idle_timeout());
    t.congestion_controller_factory(Arc::new(quinn::congestion::BbrConfig::default()));
    // Heard from every second, a silent path is noticed in seconds (and moved from).
    t.keep_alive_interval(Some(ponte_transport::path::KEEP_ALIVE));
    t
}

/// How long one address gets to answer before the next is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one address gets to answer while a session waits to be resumed, where the
/// attempt is simply made again. QUIC resends a first packet that got no answer after ~1 s,
/// then 2 s, 4 s later: a fresh attempt every 2 s keeps a packet going out every second, so
/// a network that comes back is noticed within one, not after the next doubled wait.
pub(crate) const RESUME_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The addresses to try, in order: each comma-separated entry, each address it resolves to.
async fn candidates(address: &str) -> Result<Vec<(std::net::SocketAddr, String)>, SessionError> {
    let mut out = Vec::new();
    let mut failure = SessionError::Resolve {
        relay: address.to_owned(),
        error: None,
    };
    for entry in address.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let host = entry.rsplit_once(':').map_or(entry, |(h, _)| h);
        let server_name = host.trim_start_matches('[').trim_end_matches(']').to_owned();
        let error = match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::lookup_host(entry)).await {
            Ok(Ok(addrs)) => {
                out.extend(addrs.map(|a| (a, server_name.clone())));
                continue;
            }
            Ok(Err(e)) => e,
            Err(_) => std::io::ErrorKind::TimedOut.into(),
        };
        failure = SessionError::Resolve {
            relay: entry.to_owned(),
            error: Some(error),
        };
    }
    if out.is_empty() {
        return Err(failure);
    }
    Ok(out)
}

/// `options` with the entry that reached `remote` first, so that trying again (a resume)
/// starts with the node that answered, not with one that is down.
pub async fn prefer(options: &RelayOptions, remote: std::net::SocketAddr) -> RelayOptions {
    moved(options, remote, true).await
}

/// `options` with the entry that reached `remote` last: a resume after the connection to it
/// was lost tries the other nodes of a cluster first, as that node may be the one that died.
pub async fn avoid(options: &RelayOptions, remote: std::net::SocketAddr) -> RelayOptions {
    moved(options, remote, false).await
}

/// `options` with the entry that reaches `remote` moved to the front (or the back).
async fn moved(options: &RelayOptions, remote: std::net::SocketAddr, front: bool) -> RelayOptions {
    let mut entries: Vec<&str> = options.address.split(',').map(str::trim).collect();
    // Nothing to reorder, nothing to look up (a resume's DNS may be what is down).
    if entries.len() < 2 {
        return options.clone();
    }
    for (i, entry) in entries.iter().enumerate() {
        let resolved = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::lookup_host(*entry)).await;
        if let Ok(Ok(mut addrs)) = resolved
            && addrs.any(|a| a == remote)
        {
            let entry = entries.remove(i);
            match front {
                true => entries.insert(0, entry),
                false => entries.push(entry),
            }
            break;
        }
    }
    RelayOptions {
        address: entries.join(","),
        ..options.clone()
    }
}

/// Connects to the relay. When trust on first use meets a changed fingerprint, the
/// connection is refused with [`SessionError::FingerprintChanged`] unless `accept_change`
/// (the user confirmed the new fingerprint after being warned).
pub async fn connect(
    options: &RelayOptions,
    accept_change: bool,
) -> Result<(RelayClient, TrustNote), SessionError> {
    connect_within(options, accept_change, CONNECT_TIMEOUT).await
}

/// [`connect`], giving each address `per_address` to answer.
pub(crate) async fn connect_within(
    options: &RelayOptions,
    accept_change: bool,
    per_address: Duration,
) -> Result<(RelayClient, TrustNote), SessionError> {
    let candidates = candidates(&options.address).await?;
    let trust = match (&options.fingerprint, &options.ca) {
        (Some(fp), _) => RelayTrust::Pinned(*fp),
        (None, Some(ca)) => {
            let bad_ca = |error: Box<dyn std::error::Error + Send + Sync>| SessionError::Ca {
                path: ca.clone(),
                error,
            };
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca).map_err(|e| bad_ca(e.into()))? {
                roots
                    .add(cert.map_err(|e| bad_ca(e.into()))?)
                    .map_err(|e| bad_ca(e.into()))?;
            }
            RelayTrust::Roots(Arc::new(roots))
        }
        (None, None) => RelayTrust::FirstUse,
    };
    let mut last_error = None;
    let mut connected = None;
    for (addr, server_name) in candidates {
        let (config, seen) = tls::client_config(&trust, client_transport())?;
        let any: std::net::IpAddr = if addr.is_ipv6() {
            std::net::Ipv6Addr::UNSPECIFIED.into()
        } else {
            std::net::Ipv4Addr::UNSPECIFIED.into()
        };
        let endpoint = quinn::Endpoint::client((any, 0).into()).map_err(SessionError::Socket)?;
        let attempt = RelayClient::connect(&endpoint, addr, &server_name, config.clone(), &seen);
        match tokio::time::timeout(per_address, attempt).await {
            Ok(Ok(client)) => {
                connected = Some((client, endpoint, config));
                break;
            }
            Ok(Err(e)) => last_error = Some(SessionError::Relay(e)),
            Err(_) => last_error = Some(SessionError::NoAnswer(addr)),
        }
    }
    let Some((mut client, endpoint, config)) = connected else {
        // (`candidates` is never empty, so one attempt failed.)
        return Err(last_error.unwrap_or(SessionError::Timeout));
    };
    // A cluster node may send the viewer to the node holding its session: trust that node
    // exactly as this one (the pinned key, the CA, or what first use just recorded).
    let redirect_config = match &trust {
        RelayTrust::FirstUse => match client.trust_anchor() {
            Some(anchor) => tls::client_config(&RelayTrust::Pinned(anchor), client_transport())?.0,
            None => config,
        },
        _ => config,
    };
    // The endpoint is this client's alone, and its keep-alives go every second.
    client.move_when_silent(endpoint.clone());
    client.follow_redirects(Redirects {
        endpoint,
        config: redirect_config,
    });
    let note = match trust {
        RelayTrust::FirstUse => {
            // For a cluster this is the cluster key: every node of it is the same relay.
            let fp = client.trust_anchor().ok_or(SessionError::NoCertificate)?;
            let verdict = options
                .known_relays
                .check(&options.address, fp)
                .map_err(SessionError::KnownRelays)?;
            match verdict {
                Verdict::New => TrustNote::FirstUse(fp),
                Verdict::Known => TrustNote::Trusted,
                Verdict::Changed(known) => {
                    if !accept_change {
                        client.connection().close(0u32.into(), b"certificate changed");
                        return Err(SessionError::FingerprintChanged {
                            known: known.to_string(),
                            seen: fp.to_string(),
                        });
                    }
                    options
                        .known_relays
                        .remember(&options.address, fp)
                        .map_err(SessionError::KnownRelays)?;
                    TrustNote::AcceptedChange(fp)
                }
            }
        }
        _ => TrustNote::Trusted,
    };
    Ok((client, note))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Viewer {
        #[command(flatten)]
        assistant: AssistantArgs,
    }

    #[test]
    fn tickets_are_checked_when_parsed_and_credentials_when_read() {
        let ok = Viewer::try_parse_from(["viewer", "--ticket", "ACME-4711"]).unwrap();
        assert_eq!(ok.assistant.ticket.unwrap().as_str(), "ACME-4711");
        for bad in ["=cmd()", "two\nlines", ""] {
            assert!(
                Viewer::try_parse_from(["viewer", "--ticket", bad]).is_err(),
                "{bad:?}"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credential");
        std::fs::write(&path, "not a credential").unwrap();
        let args = Viewer::try_parse_from(["viewer", "--credential", path.to_str().unwrap()]).unwrap();
        let err = args.assistant.join_extras().unwrap_err();
        assert!(err.to_string().contains("not an assistant credential"), "{err}");
    }

    #[tokio::test]
    async fn a_resume_tries_the_node_it_lost_last_and_then_the_one_that_answered_first() {
        let dir = tempfile::tempdir().unwrap();
        let options = RelayOptions {
            address: "127.0.0.1:1, 127.0.0.2:2,127.0.0.3:3".to_owned(),
            fingerprint: None,
            ca: None,
            known_relays: crate::known_relays::KnownRelays::at(dir.path().join("kr")),
        };
        let lost = "127.0.0.1:1".parse().unwrap();
        let avoided = avoid(&options, lost).await;
        assert_eq!(avoided.address, "127.0.0.2:2,127.0.0.3:3,127.0.0.1:1");
        let answered = "127.0.0.3:3".parse().unwrap();
        assert_eq!(
            prefer(&avoided, answered).await.address,
            "127.0.0.3:3,127.0.0.2:2,127.0.0.1:1"
        );
        let elsewhere = "127.0.0.9:9".parse().unwrap();
        assert_eq!(
            avoid(&options, elsewhere).await.address,
            "127.0.0.1:1,127.0.0.2:2,127.0.0.3:3"
        );
    }
}
