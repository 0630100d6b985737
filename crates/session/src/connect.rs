//! Connecting to a relay: resolve the address, choose how to trust its certificate (pinned
//! fingerprint, a CA, or trust on first use), connect and open the control line.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ponte_protocol::rendezvous::Ticket;
use ponte_transport::client::{ClientError, JoinExtras, RelayClient};
use ponte_transport::tls::{self, CertFingerprint, RelayTrust};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::SessionError;
use crate::known_relays::{KnownRelays, Verdict};

/// Default relay address.
pub const DEFAULT_RELAY: &str = "127.0.0.1:4433";

/// How to reach and trust a relay.
#[derive(Debug, Clone)]
pub struct RelayOptions {
    /// `host:port`.
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
    /// The relay (host:port).
    #[arg(long, env = "PONTE_RELAY", default_value = DEFAULT_RELAY)]
    pub relay: String,

    /// Accept only the relay certificate with this SHA-256 fingerprint (64 hex digits, as
    /// printed by ponte-relay). Without it or --ca, the first fingerprint seen is remembered
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

fn idle_timeout() -> Duration {
    Duration::from_secs(30)
}

/// Connects to the relay. When trust on first use meets a changed fingerprint, the
/// connection is refused with [`SessionError::FingerprintChanged`] unless `accept_change`
/// (the user confirmed the new fingerprint after being warned).
pub async fn connect(
    options: &RelayOptions,
    accept_change: bool,
) -> Result<(RelayClient, TrustNote), SessionError> {
    let addr = tokio::net::lookup_host(&options.address)
        .await
        .map_err(|e| SessionError::Setup(format!("cannot resolve relay {}: {e}", options.address)))?
        .next()
        .ok_or_else(|| SessionError::Setup(format!("relay {} has no address", options.address)))?;
    let host = options
        .address
        .rsplit_once(':')
        .map_or(options.address.as_str(), |(h, _)| h);
    let server_name = host.trim_start_matches('[').trim_end_matches(']');
    let trust = match (&options.fingerprint, &options.ca) {
        (Some(fp), _) => RelayTrust::Pinned(*fp),
        (None, Some(ca)) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca)
                .map_err(|e| SessionError::Setup(format!("reading CA {}: {e}", ca.display())))?
            {
                let cert =
                    cert.map_err(|e| SessionError::Setup(format!("reading CA {}: {e}", ca.display())))?;
                roots
                    .add(cert)
                    .map_err(|e| SessionError::Setup(format!("CA {}: {e}", ca.display())))?;
            }
            RelayTrust::Roots(Arc::new(roots))
        }
        (None, None) => RelayTrust::FirstUse,
    };
    let (config, seen) = tls::client_config(&trust, tls::transport_config(idle_timeout()))
        .map_err(|e| SessionError::Setup(e.to_string()))?;
    let bind = if addr.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" };
    let endpoint = quinn::Endpoint::client(bind.parse().map_err(|_| SessionError::Setup("bind".into()))?)
        .map_err(|e| SessionError::Setup(format!("cannot open a UDP socket: {e}")))?;
    let client = RelayClient::connect(&endpoint, addr, server_name, config, &seen).await?;
    let note = match trust {
        RelayTrust::FirstUse => {
            let fp = client
                .relay_fingerprint()
                .ok_or_else(|| SessionError::Setup("the relay presented no certificate".into()))?;
            let verdict = options
                .known_relays
                .check(&options.address, fp)
                .map_err(|e| SessionError::Setup(format!("cannot update known relays: {e}")))?;
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
                        .map_err(|e| SessionError::Setup(format!("cannot update known relays: {e}")))?;
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
}
