//! The hot path of the end-to-end layer: the handshake and its phases, the raw AES-256-GCM
//! primitive of each backend, and the record layer over the same backends.
//!
//! Group names are fixed (`handshake`, `raw_aes256gcm`, `record_seal`, `record_open`) so
//! figures stay comparable over time. Run: `cargo bench -p ponte-benches --bench crypto`.

#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use chacha20::ChaCha20Rng;
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ponte_e2e::Role;
use ponte_e2e::cipher::Backend;
use ponte_e2e::handshake::{AgentHandshake, CodeAttempts, Credentials, HandshakeContext, ViewerHandshake};
use ponte_e2e::identity::{PrivateKey, TrustStore};
use ponte_e2e::key_schedule;
use ponte_e2e::record::HEADER_LEN;
use ponte_e2e::session_keys::SessionKeys;
use ponte_wire::OneTimeCode;
use rand_core::SeedableRng;

const SIZES: [usize; 3] = [1024, 16 * 1024, 64 * 1024];
const KEY_PEM: &str = include_str!("../../crates/e2e/tests/vectors/assistant.key.pem");

fn context() -> HandshakeContext {
    HandshakeContext {
        session: "123456789".parse().unwrap(),
        relay: [7; 32],
    }
}

fn handshake(c: &mut Criterion) {
    let mut g = c.benchmark_group("handshake");
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let code: OneTimeCode = "12345678".parse().unwrap();
    let creds = Credentials {
        key: PrivateKey::from_pem(KEY_PEM).unwrap(),
        certificate: None,
    };
    let trust = TrustStore::new();

    g.bench_function("full", |b| {
        b.iter(|| {
            let mut attempts = CodeAttempts::new();
            let (agent, hello) = AgentHandshake::start(context(), &code, &attempts, &mut rng).unwrap();
            let (auth, viewer) = ViewerHandshake::new(context(), code.clone())
                .receive_hello(&hello, &creds, &mut rng)
                .unwrap();
            let (confirm, outcome) = agent.receive(&auth, &mut attempts, &trust, 0).unwrap();
            let keys = viewer.receive_confirm(&confirm).unwrap();
            black_box((outcome, keys))
        })
    });

    // Phases, each as one side performs it.
    use spake2::{Ed25519Group, Identity, Password, Spake2};
    let pw = Password::new(b"12345678");
    let (ida, idb) = (Identity::new(b"agent"), Identity::new(b"viewer"));
    let (_, msg_b) = Spake2::<Ed25519Group>::start_b_with_rng(&pw, &ida, &idb, &mut rng);
    g.bench_function("spake2", |b| {
        b.iter(|| {
            let (s, msg) = Spake2::<Ed25519Group>::start_a_with_rng(&pw, &ida, &idb, &mut rng);
            black_box(msg);
            black_box(s.finish(&msg_b).unwrap())
        })
    });

    let peer = x25519_dalek::PublicKey::from(&x25519_dalek::EphemeralSecret::random_from_rng(&mut rng));
    g.bench_function("x25519", |b| {
        b.iter(|| {
            let secret = x25519_dalek::EphemeralSecret::random_from_rng(&mut rng);
            black_box(x25519_dalek::PublicKey::from(&secret));
            black_box(secret.diffie_hellman(&peer).to_bytes())
        })
    });

    g.bench_function("hkdf", |b| {
        b.iter(|| black_box(key_schedule::derive(black_box(&[1; 32]), &[2; 32], &[3; 32])))
    });

    let secrets = key_schedule::derive(&[1; 32], &[2; 32], &[3; 32]);
    g.bench_function("confirm", |b| {
        b.iter(|| {
            black_box(key_schedule::confirmation(
                &secrets.confirm_agent,
                black_box(&[4; 32]),
            ))
        })
    });

    let th = [5u8; 32];
    g.bench_function("rsa_sign", |b| {
        b.iter(|| black_box(creds.key.sign_transcript(&th, &mut rng).unwrap()))
    });
    let sig = creds.key.sign_transcript(&th, &mut rng).unwrap();
    let public = creds.key.public_key();
    g.bench_function("rsa_verify", |b| {
        b.iter(|| public.verify_transcript(&th, black_box(&sig)).unwrap())
    });
    g.finish();
}

/// The bare AES-256-GCM primitive of each backend, sealing and opening in place.
fn raw_aes256gcm(c: &mut Criterion) {
    let mut g = c.benchmark_group("raw_aes256gcm");
    let key = [3u8; 32];
    let aad = [0u8; HEADER_LEN];
    for size in SIZES {
        g.throughput(Throughput::Bytes(size as u64));

        {
            use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
            let k = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key).unwrap());
            let mut buf = vec![0u8; size];
            g.bench_with_input(BenchmarkId::new("aws-lc-rs/seal", size), &size, |b, _| {
                b.iter(|| {
                    k.seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key([0; 12]),
                        Aad::from(&aad),
                        &mut buf,
                    )
                    .unwrap()
                })
            });
            let tag = k
                .seal_in_place_separate_tag(Nonce::assume_unique_for_key([0; 12]), Aad::from(&aad), &mut buf)
                .unwrap();
            let tag = tag.as_ref().to_vec();
            g.bench_with_input(BenchmarkId::new("aws-lc-rs/open", size), &size, |b, _| {
                b.iter_batched_ref(
                    || buf.clone(),
                    |ct| {
                        k.open_in_place_separate_tag(
                            Nonce::assume_unique_for_key([0; 12]),
                            Aad::from(&aad),
                            &tag,
                            ct,
                        )
                        .unwrap();
                    },
                    BatchSize::SmallInput,
                )
            });
        }

        {
            use aes_gcm::{AeadInOut, Aes256Gcm, KeyInit};
            let k = Aes256Gcm::new((&key).into());
            let mut buf = vec![0u8; size];
            let nonce = [0u8; 12].into();
            g.bench_with_input(BenchmarkId::new("rustcrypto/seal", size), &size, |b, _| {
                b.iter(|| {
                    k.encrypt_inout_detached(&nonce, &aad, buf.as_mut_slice().into())
                        .unwrap()
                })
            });
            let tag = k
                .encrypt_inout_detached(&nonce, &aad, buf.as_mut_slice().into())
                .unwrap();
            g.bench_with_input(BenchmarkId::new("rustcrypto/open", size), &size, |b, _| {
                b.iter_batched_ref(
                    || buf.clone(),
                    |ct| {
                        k.decrypt_inout_detached(&nonce, &aad, ct.as_mut_slice().into(), &tag)
                            .unwrap()
                    },
                    BatchSize::SmallInput,
                )
            });
        }
    }
    g.finish();
}

fn keys(backend: Backend) -> (SessionKeys, SessionKeys) {
    let secrets = key_schedule::derive(&[1; 32], &[2; 32], &[3; 32]);
    let mut agent = SessionKeys::from_secrets(Role::Agent, &secrets);
    let mut viewer = SessionKeys::from_secrets(Role::Viewer, &secrets);
    agent.set_backend(backend);
    viewer.set_backend(backend);
    (agent, viewer)
}

fn record_seal(c: &mut Criterion) {
    let mut g = c.benchmark_group("record_seal");
    for &backend in Backend::ALL {
        for size in SIZES {
            g.throughput(Throughput::Bytes(size as u64));
            let (mut agent, _) = keys(backend);
            let mut stream = agent.open_stream().unwrap();
            let mut record = vec![0u8; HEADER_LEN + size];
            g.bench_with_input(BenchmarkId::new(backend.name(), size), &size, |b, _| {
                b.iter(|| {
                    record.truncate(HEADER_LEN + size);
                    stream.sealer.seal_in_place(&mut record).unwrap();
                })
            });
        }
    }
    g.finish();
}

fn record_open(c: &mut Criterion) {
    let mut g = c.benchmark_group("record_open");
    for &backend in Backend::ALL {
        for size in SIZES {
            g.throughput(Throughput::Bytes(size as u64));
            let (mut agent, mut viewer) = keys(backend);
            let mut sending = agent.open_stream().unwrap();
            let mut receiving = viewer.accept_stream(sending.number).unwrap();
            g.bench_with_input(BenchmarkId::new(backend.name(), size), &size, |b, _| {
                b.iter_batched_ref(
                    || {
                        let mut record = vec![0u8; HEADER_LEN + size];
                        sending.sealer.seal_in_place(&mut record).unwrap();
                        record
                    },
                    |record| {
                        black_box(receiving.opener.open_in_place(record).unwrap());
                    },
                    BatchSize::SmallInput,
                )
            });
        }
    }
    g.finish();
}

criterion_group!(benches, handshake, raw_aes256gcm, record_seal, record_open);
criterion_main!(benches);
