//! The record layer under attack: every manipulation is detected and reported as its own error.

#![allow(clippy::unwrap_used)] // test helpers panic on setup failure by design

mod common;

use common::*;
use ponte_e2e::cipher::Backend;
use ponte_e2e::handshake::CodeAttempts;
use ponte_e2e::identity::TrustStore;
use ponte_e2e::key_schedule;
use ponte_e2e::record::{HEADER_LEN, MAX_PLAINTEXT, Opened, RecordError, RecordHeader, RecordOpener};
use ponte_e2e::session_keys::{SessionKeys, StreamKeys};
use ponte_e2e::{Role, handshake::Credentials};
use proptest::prelude::*;

/// A pair of session keys from a real handshake.
fn session() -> (SessionKeys, SessionKeys) {
    let c = code("12121212");
    let creds = Credentials {
        key: assistant_key(),
        certificate: None,
    };
    let (agent, viewer) = handshake(&c, &c, &mut CodeAttempts::new(), &creds, &TrustStore::new(), 21);
    (agent.unwrap().keys, viewer.unwrap())
}

/// Splits a wire buffer into its records.
fn records(wire: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = wire;
    while !rest.is_empty() {
        let h = RecordHeader::parse(rest).unwrap();
        let len = HEADER_LEN + h.length as usize;
        out.push(rest[..len].to_vec());
        rest = &rest[len..];
    }
    out
}

/// Agent stream 0 with three data records and an end record, and the viewer's side of it.
fn three_records() -> (Vec<Vec<u8>>, StreamKeys, StreamKeys) {
    let (mut agent, mut viewer) = session();
    let mut a = agent.open_stream().unwrap();
    let mut wire = Vec::new();
    a.sealer.seal(b"first|second|third", 6, &mut wire).unwrap();
    a.sealer.finish(&mut wire).unwrap();
    let v = viewer.accept_stream(a.number).unwrap();
    (records(&wire), a, v)
}

fn open_all(opener: &mut RecordOpener, recs: &[Vec<u8>]) -> Result<Vec<u8>, RecordError> {
    let mut out = Vec::new();
    for r in recs {
        let mut r = r.clone();
        if let Opened::Data(p) = opener.open_in_place(&mut r)? {
            out.extend_from_slice(p);
        }
    }
    opener.finish()?;
    Ok(out)
}

#[test]
fn intact_stream_opens() {
    let (recs, _, mut v) = three_records();
    assert_eq!(recs.len(), 4);
    assert_eq!(open_all(&mut v.opener, &recs).unwrap(), b"first|second|third");
}

#[test]
fn tampering_is_detected() {
    let (recs, _, _) = three_records();
    // Every single byte of the ciphertext, tag and the authenticated header fields that the
    // sequence/stream checks do not catch first.
    for i in 0..recs[1].len() {
        let (recs, _, mut v) = three_records();
        let mut r = recs[1].clone();
        r[i] ^= 0x01;
        let mut first = recs[0].clone();
        v.opener.open_in_place(&mut first).unwrap();
        let err = v.opener.open_in_place(&mut r).unwrap_err();
        let expected_kind = match i {
            0 | 1 => matches!(err, RecordError::Malformed),
            2..=5 => matches!(err, RecordError::BadLength(_)),
            6..=13 => matches!(err, RecordError::Spliced { .. }),
            14..=21 => matches!(err, RecordError::Replayed { .. } | RecordError::Reordered { .. }),
            _ => err == RecordError::Tampered,
        };
        assert!(expected_kind, "byte {i}: {err:?}");
    }
}

#[test]
fn reordering_is_detected() {
    let (recs, _, mut v) = three_records();
    let swapped = [recs[1].clone(), recs[0].clone()];
    assert_eq!(
        open_all(&mut v.opener, &swapped).unwrap_err(),
        RecordError::Reordered {
            expected: 0,
            found: 1
        }
    );
}

#[test]
fn dropping_a_record_is_detected() {
    let (recs, _, mut v) = three_records();
    let dropped = [recs[0].clone(), recs[2].clone()];
    assert!(matches!(
        open_all(&mut v.opener, &dropped),
        Err(RecordError::Reordered {
            expected: 1,
            found: 2
        })
    ));
}

#[test]
fn replay_is_detected() {
    let (recs, _, mut v) = three_records();
    let replayed = [recs[0].clone(), recs[0].clone()];
    assert_eq!(
        open_all(&mut v.opener, &replayed).unwrap_err(),
        RecordError::Replayed {
            expected: 1,
            found: 0
        }
    );
}

#[test]
fn truncation_is_detected() {
    let (recs, _, mut v) = three_records();
    assert_eq!(
        open_all(&mut v.opener, &recs[..3]).unwrap_err(),
        RecordError::Truncated
    );
    // Also when the stream is cut in the middle of a record.
    let (recs, _, mut v) = three_records();
    let wire: Vec<u8> = recs.concat();
    let (used, _) = v.opener.decapsulate(&wire[..30]).unwrap();
    assert_eq!(used, 30);
    assert_eq!(v.opener.finish().unwrap_err(), RecordError::Truncated);
}

#[test]
fn data_after_end_is_rejected() {
    let (recs, mut a, mut v) = three_records();
    open_all(&mut v.opener, &recs).unwrap();
    let mut r = recs[0].clone();
    assert_eq!(v.opener.open_in_place(&mut r).unwrap_err(), RecordError::AfterEnd);
    let mut more = Vec::new();
    assert_eq!(
        a.sealer.seal(b"late", 100, &mut more).unwrap_err(),
        RecordError::Finished
    );
}

#[test]
fn splicing_between_streams_is_detected() {
    let (mut agent, mut viewer) = session();
    let mut s0 = agent.open_stream().unwrap();
    let mut s2 = agent.open_stream().unwrap();
    assert_eq!((s0.number, s2.number), (0, 2));
    let mut w0 = Vec::new();
    let mut w2 = Vec::new();
    s0.sealer.seal(b"stream zero", 100, &mut w0).unwrap();
    s2.sealer.seal(b"stream two", 100, &mut w2).unwrap();
    let mut v0 = viewer.accept_stream(0).unwrap();
    assert_eq!(
        v0.opener.open_in_place(&mut w2.clone()).unwrap_err(),
        RecordError::Spliced {
            expected: 0,
            found: 2
        }
    );
    // With the stream field rewritten to match, authentication still fails: the key differs.
    // (`session()` is deterministic, so a fresh pair has the same keys.)
    let (_, mut viewer) = session();
    let mut v0 = viewer.accept_stream(0).unwrap();
    w2[6..14].copy_from_slice(&0u64.to_be_bytes());
    assert_eq!(
        v0.opener.open_in_place(&mut w2).unwrap_err(),
        RecordError::Tampered
    );
    // The genuine record opens.
    let (_, mut viewer) = session();
    let mut v0 = viewer.accept_stream(0).unwrap();
    assert_eq!(
        v0.opener.open_in_place(&mut w0).unwrap(),
        Opened::Data(b"stream zero")
    );
}

#[test]
fn reflection_between_directions_is_detected() {
    let (mut agent, mut viewer) = session();
    let mut a = agent.open_stream().unwrap();
    let mut v = viewer.accept_stream(a.number).unwrap();
    // The viewer's own reply on stream 0, reflected back to the viewer.
    let mut reply = Vec::new();
    v.sealer.seal(b"reply", 100, &mut reply).unwrap();
    assert_eq!(
        v.opener.open_in_place(&mut reply.clone()).unwrap_err(),
        RecordError::Reflected
    );
    // With the sender byte rewritten, authentication fails: each direction has its own key.
    let (_, mut viewer) = session();
    let mut v = viewer.accept_stream(0).unwrap();
    reply[1] = b'A';
    assert_eq!(
        v.opener.open_in_place(&mut reply).unwrap_err(),
        RecordError::Tampered
    );
    // The genuine direction works.
    let (_, mut viewer) = session();
    let mut v = viewer.accept_stream(0).unwrap();
    let mut ok = Vec::new();
    a.sealer.seal(b"hello", 100, &mut ok).unwrap();
    assert_eq!(v.opener.open_in_place(&mut ok).unwrap(), Opened::Data(b"hello"));
}

#[test]
fn streams_are_accepted_once_and_only_from_the_peer_space() {
    let (_, mut viewer) = session();
    assert_eq!(
        viewer.accept_stream(1).unwrap_err(),
        RecordError::WrongStreamSpace(1)
    );
    viewer.accept_stream(4).unwrap();
    assert_eq!(viewer.accept_stream(4).unwrap_err(), RecordError::StreamReused(4));
    assert_eq!(viewer.open_stream().unwrap().number, 1);
    assert_eq!(viewer.open_stream().unwrap().number, 3);
}

#[test]
fn opener_stays_failed_after_an_attack() {
    let (recs, _, mut v) = three_records();
    let mut bad = recs[0].clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert_eq!(
        v.opener.open_in_place(&mut bad).unwrap_err(),
        RecordError::Tampered
    );
    let mut good = recs[0].clone();
    assert_eq!(
        v.opener.open_in_place(&mut good).unwrap_err(),
        RecordError::Tampered
    );
}

#[test]
fn oversized_records_are_refused_before_buffering() {
    let (_, _, mut v) = three_records();
    let mut header = [0u8; HEADER_LEN];
    header[0] = 1;
    header[1] = b'A';
    header[2..6].copy_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(
        v.opener.decapsulate(&header).unwrap_err(),
        RecordError::BadLength(u32::MAX)
    );
    let (mut agent, _) = session();
    let mut s = agent.open_stream().unwrap();
    let mut rec = vec![0u8; HEADER_LEN + MAX_PLAINTEXT + 1];
    assert_eq!(
        s.sealer.seal_in_place(&mut rec).unwrap_err(),
        RecordError::PlaintextTooLarge(MAX_PLAINTEXT + 1)
    );
}

#[test]
fn backends_produce_identical_records() {
    let secrets = key_schedule::derive(&[1; 32], &[2; 32], &[3; 32]);
    let wire_of = |backend: Backend| {
        let mut keys = SessionKeys::from_secrets(Role::Agent, &secrets);
        keys.set_backend(backend);
        let mut s = keys.open_stream().unwrap();
        let mut wire = Vec::new();
        s.sealer
            .seal(&vec![0xabu8; 100_000], 16 * 1024, &mut wire)
            .unwrap();
        s.sealer.finish(&mut wire).unwrap();
        wire
    };
    let reference = wire_of(Backend::fastest());
    for &b in Backend::ALL {
        assert_eq!(wire_of(b), reference, "backend {}", b.name());
        // And each backend opens what any other sealed.
        let mut viewer = SessionKeys::from_secrets(Role::Viewer, &secrets);
        viewer.set_backend(b);
        let mut v = viewer.accept_stream(0).unwrap();
        let mut n = 0;
        let mut rest = &reference[..];
        while !rest.is_empty() {
            let (used, opened) = v.opener.decapsulate(rest).unwrap();
            rest = &rest[used..];
            if let Some(Opened::Data(p)) = opened {
                n += p.len();
            }
        }
        v.opener.finish().unwrap();
        assert_eq!(n, 100_000);
    }
    // The crate's dev-dependency on itself enables both backends for tests.
    assert_eq!(Backend::ALL.len(), 2, "both backends must be compared");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Any chunking of the wire bytes yields the same plaintext.
    #[test]
    fn streaming_any_chunking(data in proptest::collection::vec(any::<u8>(), 0..5000), size in 1usize..3000, cuts in proptest::collection::vec(1usize..500, 1..50)) {
        let (mut agent, mut viewer) = session();
        let mut a = agent.open_stream().unwrap();
        let mut wire = Vec::new();
        a.sealer.seal(&data, size, &mut wire).unwrap();
        a.sealer.finish(&mut wire).unwrap();
        let mut v = viewer.accept_stream(0).unwrap();
        let mut out = Vec::new();
        let mut rest = &wire[..];
        let mut i = 0;
        while !rest.is_empty() {
            let n = cuts[i % cuts.len()].min(rest.len());
            i += 1;
            let mut chunk = &rest[..n];
            while !chunk.is_empty() {
                let (used, opened) = v.opener.decapsulate(chunk).unwrap();
                chunk = &chunk[used..];
                if let Some(Opened::Data(p)) = opened { out.extend_from_slice(p); }
            }
            rest = &rest[n..];
        }
        v.opener.finish().unwrap();
        prop_assert_eq!(out, data);
    }

    /// Random bytes into the opener: errors, never a panic and never data.
    #[test]
    fn random_bytes_never_yield_data(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let (_, _, mut v) = three_records();
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            match v.opener.decapsulate(rest) {
                Ok((used, opened)) => {
                    prop_assert!(opened.is_none());
                    rest = &rest[used..];
                }
                Err(_) => break,
            }
        }
        let _ = RecordHeader::parse(&bytes);
    }

    /// Flipping any bit anywhere in the stream is an error, never different plaintext.
    #[test]
    fn any_bit_flip_is_detected(pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let (recs, _, mut v) = three_records();
        let mut wire: Vec<u8> = recs.concat();
        let i = pos.index(wire.len());
        wire[i] ^= 1 << bit;
        let mut out = Vec::new();
        let mut rest = &wire[..];
        let mut result = Ok(());
        while !rest.is_empty() {
            match v.opener.decapsulate(rest) {
                Ok((used, opened)) => {
                    if let Some(Opened::Data(p)) = opened { out.extend_from_slice(p); }
                    rest = &rest[used..];
                }
                Err(e) => { result = Err(e); break; }
            }
        }
        let result = result.and_then(|_| v.opener.finish());
        prop_assert!(result.is_err());
        prop_assert!(b"first|second|third".starts_with(&out));
    }
}
