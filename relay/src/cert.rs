//! The relay's TLS identity: a CA-issued certificate from files, or a self-signed one that is
//! generated on first start and kept in the data directory so its fingerprint stays stable.
//!
//! A relay cluster has a cluster key instead ([`init_cluster`]): it signs one certificate per
//! node ([`certify_node`]), and clients pin the cluster key, not each node.

use std::path::Path;

use anyhow::Context;
use ponte_transport::private_file;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A certificate chain and its private key.
pub struct Identity {
    /// End-entity certificate first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The private key.
    pub key: PrivateKeyDer<'static>,
}

impl Identity {
    /// The fingerprint of the cluster key that signed this node's certificate, when the chain
    /// ends with a cluster certificate that verifies it (what clients pin for a cluster).
    pub fn cluster_fingerprint(&self) -> Option<ponte_transport::tls::CertFingerprint> {
        let (end_entity, rest) = self.chain.split_first()?;
        ponte_transport::tls::signing_cluster(end_entity, rest)
    }

    /// SHA-256 fingerprint of the end-entity certificate.
    pub fn fingerprint(&self) -> ponte_transport::tls::CertFingerprint {
        ponte_transport::tls::CertFingerprint::of(self.chain.first().map(|c| c.as_ref()).unwrap_or_default())
    }
}

const CERT_FILE: &str = "relay-cert.pem";
const KEY_FILE: &str = "relay-key.pem";

/// Loads a PEM certificate chain and key.
pub fn load(cert: &Path, key: &Path) -> anyhow::Result<Identity> {
    let chain = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading certificate {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing certificate {}", cert.display()))?;
    anyhow::ensure!(!chain.is_empty(), "no certificate in {}", cert.display());
    let key = PrivateKeyDer::from_pem_file(key).with_context(|| format!("reading key {}", key.display()))?;
    Ok(Identity { chain, key })
}

/// Loads the self-signed identity from `data_dir`, generating it on first use.
pub fn load_or_generate(data_dir: &Path) -> anyhow::Result<Identity> {
    let cert_path = data_dir.join(CERT_FILE);
    let key_path = data_dir.join(KEY_FILE);
    if cert_path.exists() && key_path.exists() {
        return load(&cert_path, &key_path);
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating data directory {}", data_dir.display()))?;
    let names = vec!["ponte-relay".to_owned(), "localhost".to_owned()];
    let certified = rcgen::generate_simple_self_signed(names).context("generating a certificate")?;
    write_private(&key_path, certified.signing_key.serialize_pem().as_bytes())?;
    std::fs::write(&cert_path, certified.cert.pem())
        .with_context(|| format!("writing {}", cert_path.display()))?;
    tracing::info!(path = %cert_path.display(), "generated a self-signed certificate");
    load(&cert_path, &key_path)
}

/// The cluster's certificate and key files in the cluster directory.
pub const CLUSTER_CERT_FILE: &str = "cluster-cert.pem";
/// The cluster key (private: only `cluster certify` needs it, never a running node).
pub const CLUSTER_KEY_FILE: &str = "cluster-key.pem";

/// The subject of every cluster certificate; node certificates name it as their issuer, so a
/// certificate re-made from the same key for signing matches the one clients hold.
fn cluster_params() -> anyhow::Result<rcgen::CertificateParams> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Ponte relay cluster");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

/// Creates the cluster key and its certificate in `dir` (refusing to replace an existing
/// one: every client pinned to it would be locked out). Returns the cluster fingerprint that
/// clients pin.
pub fn init_cluster(dir: &Path) -> anyhow::Result<ponte_transport::tls::CertFingerprint> {
    let cert_path = dir.join(CLUSTER_CERT_FILE);
    let key_path = dir.join(CLUSTER_KEY_FILE);
    anyhow::ensure!(
        !cert_path.exists() && !key_path.exists(),
        "a cluster key already exists in {} (clients pin it; remove it by hand to start over)",
        dir.display()
    );
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let key = rcgen::KeyPair::generate().context("generating the cluster key")?;
    let cert = cluster_params()?
        .self_signed(&key)
        .context("making the cluster certificate")?;
    write_new_private(&key_path, key.serialize_pem().as_bytes())?;
    std::fs::write(&cert_path, cert.pem()).with_context(|| format!("writing {}", cert_path.display()))?;
    ponte_transport::tls::cluster_fingerprint(cert.der()).context("reading the new cluster certificate")
}

/// The fingerprint of the cluster certificate in `dir`.
pub fn cluster_fingerprint(dir: &Path) -> anyhow::Result<ponte_transport::tls::CertFingerprint> {
    let path = dir.join(CLUSTER_CERT_FILE);
    let cert = CertificateDer::from_pem_file(&path).with_context(|| format!("reading {}", path.display()))?;
    ponte_transport::tls::cluster_fingerprint(&cert)
        .with_context(|| format!("{} is not a certificate", path.display()))
}

/// The files `certify_node` wrote.
#[derive(Debug)]
pub struct NodeFiles {
    /// The node's certificate chain (node certificate, then the cluster certificate).
    pub cert: std::path::PathBuf,
    /// The node's private key.
    pub key: std::path::PathBuf,
}

/// How a node certificate names the address it was certified for: a URI subject alternative
/// name `ponte-relay://HOST:PORT`. The other nodes of the cluster redirect viewers to a node
/// only at that address, so that whoever can write the cluster's Redis cannot send them
/// elsewhere (docs/PROTOCOL.md § 3.3). Clients ignore it: they check DNS names and addresses.
pub const NODE_ADDRESS_URI: &str = "ponte-relay://";

/// The addresses a node certificate (DER) was certified for (`HOST:PORT`, as written); none if
/// it is not a certificate or was certified without `--public-addr`.
pub fn certified_addresses(cert: &[u8]) -> Vec<String> {
    let der = CertificateDer::from(cert);
    let Ok(parsed) = webpki::EndEntityCert::try_from(&der) else {
        return Vec::new();
    };
    parsed
        .valid_uri_names()
        .filter_map(|uri| uri.strip_prefix(NODE_ADDRESS_URI))
        .map(str::to_owned)
        .collect()
}

/// Issues a certificate for node `name` signed by the cluster key in `dir`, valid for the
/// cluster name [`ponte_transport::tls::NODE_NAME`] (what clients pinning the cluster key
/// check), the node's name and the host of `public_addr` (for clients that use the cluster
/// certificate as a CA), and certified for `public_addr` ([`NODE_ADDRESS_URI`]), the only
/// address the other nodes send viewers to. Writes `node-NAME-cert.pem` and
/// `node-NAME-key.pem` into `out`.
pub fn certify_node(
    dir: &Path,
    name: &crate::cluster::NodeName,
    public_addr: Option<&ponte_wire::rendezvous::NodeAddress>,
    out: &Path,
) -> anyhow::Result<NodeFiles> {
    let key_path = dir.join(CLUSTER_KEY_FILE);
    let key_pem =
        std::fs::read_to_string(&key_path).with_context(|| format!("reading {}", key_path.display()))?;
    let cluster_key = rcgen::KeyPair::from_pem(&key_pem).context("parsing the cluster key")?;
    let cluster_cert_path = dir.join(CLUSTER_CERT_FILE);
    let cluster_cert = std::fs::read_to_string(&cluster_cert_path)
        .with_context(|| format!("reading {}", cluster_cert_path.display()))?;
    // The certificate must belong to this key, or clients would get a chain that fails.
    let cluster_der = CertificateDer::from_pem_slice(cluster_cert.as_bytes())
        .with_context(|| format!("parsing {}", cluster_cert_path.display()))?;
    use rcgen::PublicKeyData;
    anyhow::ensure!(
        ponte_transport::tls::cluster_fingerprint(&cluster_der)
            == Some(ponte_transport::tls::CertFingerprint::of(
                &cluster_key.subject_public_key_info()
            )),
        "{} does not belong to {}",
        cluster_cert_path.display(),
        key_path.display()
    );
    let issuer = rcgen::Issuer::new(cluster_params()?, cluster_key);
    let mut names = vec![
        ponte_transport::tls::NODE_NAME.to_owned(),
        name.as_str().to_owned(),
    ];
    if let Some(addr) = public_addr {
        names.push(addr.host().to_owned());
    }
    names.dedup();
    let mut params = rcgen::CertificateParams::new(names).context("node certificate names")?;
    if let Some(addr) = public_addr {
        let uri = format!("{NODE_ADDRESS_URI}{addr}");
        params
            .subject_alt_names
            .push(rcgen::SanType::URI(uri.try_into().context("node address")?));
    }
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("Ponte relay node {}", name.as_str()),
    );
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let node_key = rcgen::KeyPair::generate().context("generating the node key")?;
    let cert = params
        .signed_by(&node_key, &issuer)
        .context("signing the node certificate")?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let files = NodeFiles {
        cert: out.join(format!("node-{}-cert.pem", name.as_str())),
        key: out.join(format!("node-{}-key.pem", name.as_str())),
    };
    write_private(&files.key, node_key.serialize_pem().as_bytes())?;
    // The chain carries the cluster certificate so that clients can check the signature.
    std::fs::write(&files.cert, format!("{}{}", cert.pem(), cluster_cert))
        .with_context(|| format!("writing {}", files.cert.display()))?;
    Ok(files)
}

/// Writes a private key: readable by its owner only, replaced whole (never half-written).
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    private_file::replace(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// Like [`write_private`], but never replaces an existing file.
fn write_new_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    private_file::create_new(path, bytes).with_context(|| format!("creating {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_certificate_names_the_address_it_was_certified_for() {
        use rustls::client::danger::ServerCertVerifier;
        let dir = tempfile::tempdir().unwrap();
        let fingerprint = init_cluster(dir.path()).unwrap();
        let name: crate::cluster::NodeName = "eu_1.b".parse().unwrap();
        for (addr, host) in [
            ("relay-b.example.com:4433", "relay-b.example.com"),
            ("192.0.2.7:443", "192.0.2.7"),
            ("[2001:db8::7]:443", "2001:db8::7"),
        ] {
            let public = addr.parse().unwrap();
            let files = certify_node(dir.path(), &name, Some(&public), dir.path()).unwrap();
            let identity = load(&files.cert, &files.key).unwrap();
            assert_eq!(certified_addresses(&identity.chain[0]), [addr]);
            assert_eq!(identity.cluster_fingerprint(), Some(fingerprint));
            // Clients that use the cluster certificate as a CA still find the host.
            let mut roots = rustls::RootCertStore::empty();
            roots.add(identity.chain[1].clone()).unwrap();
            let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
                std::sync::Arc::new(roots),
                ponte_transport::tls::provider(),
            )
            .build()
            .unwrap();
            let server = rustls::pki_types::ServerName::try_from(host.to_owned()).unwrap();
            verifier
                .verify_server_cert(
                    &identity.chain[0],
                    &[],
                    &server,
                    &[],
                    rustls::pki_types::UnixTime::now(),
                )
                .unwrap();
        }
        let bare = certify_node(dir.path(), &name, None, dir.path()).unwrap();
        let identity = load(&bare.cert, &bare.key).unwrap();
        assert!(certified_addresses(&identity.chain[0]).is_empty());
        assert!(certified_addresses(b"not a certificate").is_empty());
    }

    #[test]
    fn generated_once_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_generate(dir.path()).unwrap();
        let b = load_or_generate(dir.path()).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "key readable by others: {mode:o}");
        }
        let other = tempfile::tempdir().unwrap();
        assert_ne!(
            load_or_generate(other.path()).unwrap().fingerprint(),
            a.fingerprint()
        );
    }
}
