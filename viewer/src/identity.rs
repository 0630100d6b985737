//! The assistant's identity files and an organisation's certificates.
//!
//! Layout of the identity directory (default `~/.config/ponte/identity`):
//! `assistant.key.pem` (PKCS#8, private, mode 0600), `assistant.pub.pem` (SPKI) and, once an
//! organisation certified the key, `assistant.cert.pem` (`PONTE CERTIFICATE`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use ponte_e2e::handshake::Credentials;
use ponte_e2e::identity::{Certificate, PrivateKey, PublicKey};
use ponte_wire::os_rng;

/// The default identity directory.
pub fn default_dir() -> PathBuf {
    dirs::config_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("ponte")
        .join("identity")
}

const KEY: &str = "assistant.key.pem";
const PUBLIC: &str = "assistant.pub.pem";
const CERT: &str = "assistant.cert.pem";
const NAME: &str = "assistant.name";

/// Writes a private key readable only by its owner.
pub fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    ponte_transport::private_file::create_new(path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// Creates a new identity in `dir` (refusing to replace one unless `force`).
pub fn create(dir: &Path, name: &str, force: bool) -> anyhow::Result<PrivateKey> {
    let key_path = dir.join(KEY);
    if key_path.exists() {
        anyhow::ensure!(
            force,
            "an identity already exists in {} (use --force to replace it)",
            dir.display()
        );
        std::fs::remove_file(&key_path)?;
        let _ = std::fs::remove_file(dir.join(CERT));
    }
    let key = PrivateKey::generate(&mut os_rng())?;
    write_private(&key_path, &key.to_pem()?)?;
    std::fs::write(dir.join(PUBLIC), key.public_key().to_pem())?;
    std::fs::write(dir.join(NAME), format!("{name}\n"))?;
    Ok(key)
}

/// Loads the identity from `dir`, creating an unnamed one on first use.
pub fn load_or_create(dir: &Path) -> anyhow::Result<(Credentials, bool)> {
    let key_path = dir.join(KEY);
    let created = if key_path.exists() {
        false
    } else {
        create(dir, "unnamed assistant", false)?;
        true
    };
    let pem =
        std::fs::read_to_string(&key_path).with_context(|| format!("reading {}", key_path.display()))?;
    let key = PrivateKey::from_pem(&pem).with_context(|| format!("{}", key_path.display()))?;
    let certificate = match std::fs::read_to_string(dir.join(CERT)) {
        Ok(text) => {
            Some(Certificate::from_pem(&text).with_context(|| format!("{}", dir.join(CERT).display()))?)
        }
        Err(_) => None,
    };
    Ok((Credentials { key, certificate }, created))
}

/// Describes the identity in `dir`.
pub fn show(dir: &Path) -> anyhow::Result<String> {
    let (creds, _) = load_or_create(dir)?;
    let name = std::fs::read_to_string(dir.join(NAME)).unwrap_or_default();
    let mut out = format!(
        "identity: {}\nname: {}\nkey fingerprint: {}\npublic key: {}\n",
        dir.display(),
        name.trim(),
        creds.key.public_key().fingerprint(),
        dir.join(PUBLIC).display()
    );
    match &creds.certificate {
        Some(c) => out.push_str(&format!(
            "certificate: {}, {} (valid {} to {}, unix time)\n",
            c.body.name, c.body.organisation, c.body.not_before, c.body.not_after
        )),
        None => out.push_str("certificate: none (customers will see UNVERIFIED)\n"),
    }
    Ok(out)
}

/// Creates an organisation key pair `<prefix>.key.pem` and `<prefix>.pub.pem`.
pub fn org_new(prefix: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let key = PrivateKey::generate(&mut os_rng())?;
    let key_path = PathBuf::from(format!("{}.key.pem", prefix.display()));
    let pub_path = PathBuf::from(format!("{}.pub.pem", prefix.display()));
    write_private(&key_path, &key.to_pem()?)?;
    std::fs::write(&pub_path, key.public_key().to_pem())?;
    Ok((key_path, pub_path))
}

/// Issues a certificate for an assistant's public key.
pub fn org_certify(
    org_key: &Path,
    assistant_key: &Path,
    name: &str,
    organisation: &str,
    days: u64,
    out: &Path,
) -> anyhow::Result<Certificate> {
    let org = PrivateKey::from_pem(
        &std::fs::read_to_string(org_key).with_context(|| format!("reading {}", org_key.display()))?,
    )?;
    let subject = PublicKey::from_pem(
        &std::fs::read_to_string(assistant_key)
            .with_context(|| format!("reading {}", assistant_key.display()))?,
    )?;
    let now = ponte_session::now_unix();
    let cert = Certificate::issue(
        &org,
        name,
        organisation,
        &subject,
        now,
        now + days * 86_400,
        &mut os_rng(),
    )?;
    std::fs::write(out, cert.to_pem()).with_context(|| format!("writing {}", out.display()))?;
    Ok(cert)
}

/// The certificate path inside an identity directory.
pub fn cert_path(dir: &Path) -> PathBuf {
    dir.join(CERT)
}

/// The public key path inside an identity directory.
pub fn public_path(dir: &Path) -> PathBuf {
    dir.join(PUBLIC)
}
