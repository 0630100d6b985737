//! Assistant keys and organisation certificates: files, verification and every rejection.

#![allow(clippy::unwrap_used)] // test helpers panic on setup failure by design

mod common;

use common::*;
use ponte_e2e::identity::{
    Certificate, CertificateError, IdentityError, PeerIdentity, PrivateKey, PublicKey, TrustStore,
};
use proptest::prelude::*;

fn cert(not_before: u64, not_after: u64) -> Certificate {
    Certificate::issue(
        &org_key(),
        "Bob",
        "Org",
        assistant_key().public_key(),
        not_before,
        not_after,
        &mut rng(1),
    )
    .unwrap()
}

#[test]
fn key_files_round_trip() {
    let key = assistant_key();
    let pem = key.to_pem().unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    let again = PrivateKey::from_pem(&pem).unwrap();
    assert_eq!(again.public_key(), key.public_key());
    let public_pem = key.public_key().to_pem();
    assert!(public_pem.starts_with("-----BEGIN PUBLIC KEY-----"));
    assert_eq!(&PublicKey::from_pem(&public_pem).unwrap(), key.public_key());
    assert!(PrivateKey::from_pem("not a key").is_err());
    assert!(PublicKey::from_pem(&pem).is_err());
    assert_eq!(key.public_key().fingerprint().to_string().len(), 64 + 15);
}

#[test]
fn certificate_files_round_trip() {
    let c = cert(0, u64::MAX);
    let pem = c.to_pem();
    assert!(pem.starts_with("-----BEGIN PONTE CERTIFICATE-----"), "{pem}");
    assert_eq!(Certificate::from_pem(&pem).unwrap(), c);
    assert_eq!(Certificate::from_pem("garbage"), Err(CertificateError::Malformed));
    let wrong_label = pem.replace("PONTE CERTIFICATE", "CERTIFICATE");
    assert_eq!(
        Certificate::from_pem(&wrong_label),
        Err(CertificateError::Malformed)
    );
}

#[test]
fn valid_certificate_verifies() {
    let c = cert(NOW - 10, NOW + 10);
    assert_eq!(
        c.verify(assistant_key().public_key(), &trust_org(), NOW).unwrap(),
        ("Bob", "Org")
    );
}

#[test]
fn expired_and_future_certificates_are_rejected() {
    let key = assistant_key();
    assert_eq!(
        cert(NOW - 10, NOW - 1).verify(key.public_key(), &trust_org(), NOW),
        Err(CertificateError::Expired { not_after: NOW - 1 })
    );
    assert_eq!(
        cert(NOW + 1, NOW + 10).verify(key.public_key(), &trust_org(), NOW),
        Err(CertificateError::NotYetValid { not_before: NOW + 1 })
    );
}

#[test]
fn wrongly_signed_certificate_is_rejected() {
    let key = assistant_key();
    // Altered after signing.
    let mut c = cert(0, u64::MAX);
    c.body.name = "Mallory".into();
    assert_eq!(
        c.verify(key.public_key(), &trust_org(), NOW),
        Err(CertificateError::BadSignature)
    );
    // Signed by another key that claims the trusted organisation as issuer.
    let mut forged = Certificate::issue(
        &other_key(),
        "Bob",
        "Org",
        key.public_key(),
        0,
        u64::MAX,
        &mut rng(2),
    )
    .unwrap();
    forged.body.issuer = org_key().public_key().fingerprint();
    assert_eq!(
        forged.verify(key.public_key(), &trust_org(), NOW),
        Err(CertificateError::BadSignature)
    );
    // Issued by an organisation the agent does not trust.
    let untrusted = Certificate::issue(
        &other_key(),
        "Bob",
        "Org",
        key.public_key(),
        0,
        u64::MAX,
        &mut rng(3),
    )
    .unwrap();
    assert!(matches!(
        untrusted.verify(key.public_key(), &trust_org(), NOW),
        Err(CertificateError::UnknownIssuer(_))
    ));
}

#[test]
fn mismatched_certificate_is_rejected() {
    let c = cert(0, u64::MAX);
    assert_eq!(
        c.verify(other_key().public_key(), &trust_org(), NOW),
        Err(CertificateError::KeyMismatch)
    );
}

#[test]
fn names_with_control_characters_are_refused() {
    let key = assistant_key();
    for bad in ["", "   ", "Bob\x1b[2J", "line\nbreak", &"x".repeat(200)] {
        let r = Certificate::issue(&org_key(), bad, "Org", key.public_key(), 0, 1, &mut rng(1));
        assert!(
            matches!(r, Err(IdentityError::Certificate(CertificateError::BadText))),
            "{bad:?}"
        );
    }
    // A certificate with such a name built by hand fails to verify and shows as unverified.
    let mut c = cert(0, u64::MAX);
    c.body.name = "evil\x1b]0;title\x07".into();
    assert_eq!(
        Certificate::from_bytes(&c.to_bytes()),
        Err(CertificateError::BadText)
    );
    let peer = PeerIdentity::evaluate(key.public_key(), Some(&c), &trust_org(), NOW);
    assert!(!peer.is_verified());
}

#[test]
fn small_keys_are_refused() {
    // A 1024-bit SPKI key (generated for this test).
    let small = rsa::PrivateKey::new(&mut rng(5), 1024).unwrap();
    use rsa::pkcs8::EncodePublicKey;
    let der = small.to_public_key().to_public_key_der().unwrap();
    assert_eq!(
        PublicKey::from_der(der.as_bytes()).unwrap_err(),
        IdentityError::KeySize(1024)
    );
}

#[test]
fn the_organisation_is_named_by_the_agents_trust_not_by_the_certificate() {
    // Two trusted organisations whose certificates both say "Org": the customer is shown the
    // names their own configuration gives the keys, and what the certificate claims beside.
    let mut trust = TrustStore::new();
    trust.add(other_key().public_key().clone(), "Rossi IT");
    trust.add(org_key().public_key().clone(), "ACME Support");
    let key = assistant_key();
    let peer = PeerIdentity::evaluate(key.public_key(), Some(&cert(0, u64::MAX)), &trust, NOW);
    let PeerIdentity::Verified {
        organisation,
        certified_as,
        issuer,
        ..
    } = &peer
    else {
        panic!("{peer}");
    };
    assert_eq!(organisation.as_raw(), "ACME Support");
    assert_eq!(certified_as.as_ref().map(|c| c.as_raw()), Some("Org"));
    assert_eq!(*issuer, org_key().public_key().fingerprint());
    assert_eq!(
        peer.to_string(),
        "verified: Bob, ACME Support (the certificate says Org)"
    );
    // When the names agree, only one is shown.
    let mut trust = TrustStore::new();
    trust.add(org_key().public_key().clone(), "Org");
    let peer = PeerIdentity::evaluate(key.public_key(), Some(&cert(0, u64::MAX)), &trust, NOW);
    assert_eq!(peer.to_string(), "verified: Bob, Org");
}

#[test]
fn trust_store_deduplicates() {
    let mut t = TrustStore::new();
    assert!(t.is_empty());
    t.add(org_key().public_key().clone(), "Example");
    t.add(org_key().public_key().clone(), "Another name");
    assert_eq!(t.name(&org_key().public_key().fingerprint()), Some("Example"));
    assert!(t.find(&org_key().public_key().fingerprint()).is_some());
    assert!(t.find(&other_key().public_key().fingerprint()).is_none());
}

proptest! {
    #[test]
    fn random_certificate_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..800)) {
        let _ = Certificate::from_bytes(&bytes);
        let _ = PublicKey::from_der(&bytes);
    }
}
