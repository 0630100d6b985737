//! The relay with real quinn clients on loopback: pairing, forwarding, refusals, limits.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use ponte_tests::*;
use ponte_transport::client::ClientError;
use ponte_wire::frame::VERSION;
use ponte_wire::rendezvous::{self, ClientMessage, Refusal, RelayMessage};

#[tokio::test]
async fn pairs_and_forwards_many_streams_both_ways_in_order() {
    let r = relay().await;
    let (agent, viewer) = r.pair().await;
    let (a, v) = (agent.connection().clone(), viewer.connection().clone());

    // 20 bidirectional streams from each side, each carrying a distinct payload one way and
    // its echo back; 5 unidirectional streams each way.
    let mut tasks = Vec::new();
    for (opener, acceptor, base) in [(a.clone(), v.clone(), 0u64), (v.clone(), a.clone(), 1000)] {
        tasks.push(tokio::spawn(async move {
            for i in 0..20u64 {
                let data = payload(base + i, 10_000 + (i as usize) * 3_000);
                let (mut send, mut recv) = opener.open_bi().await.unwrap();
                send.write_all(&data).await.unwrap();
                send.finish().unwrap();
                let (mut back_send, mut back_recv) = acceptor.accept_bi().await.unwrap();
                let got = back_recv.read_to_end(1 << 20).await.unwrap();
                assert_eq!(got, data, "stream {i} from {base}");
                back_send.write_all(&got).await.unwrap();
                back_send.finish().unwrap();
                assert_eq!(recv.read_to_end(1 << 20).await.unwrap(), data);
            }
            for i in 0..5u64 {
                let data = payload(base + 500 + i, 50_000);
                let mut send = opener.open_uni().await.unwrap();
                send.write_all(&data).await.unwrap();
                send.finish().unwrap();
                let mut recv = acceptor.accept_uni().await.unwrap();
                assert_eq!(recv.read_to_end(1 << 20).await.unwrap(), data);
            }
        }));
        // Run the two directions one after the other so accepts match opens.
        tasks.pop().unwrap().await.unwrap();
    }

    // Datagrams both ways.
    a.send_datagram(b"ping".to_vec().into()).unwrap();
    assert_eq!(&v.read_datagram().await.unwrap()[..], b"ping");
    v.send_datagram(b"pong".to_vec().into()).unwrap();
    assert_eq!(&a.read_datagram().await.unwrap()[..], b"pong");
}

/// A peer that opens many streams at once — more than a pairing's first credit — gets them
/// all through, each whole, while the relay's credit grows (`memory::StreamCredit`); none
/// waits for credit that never comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_streams_opened_at_once_all_get_through() {
    use ponte_relay::memory::{FIRST_BI_STREAMS, FIRST_UNI_STREAMS, PAIRED_BI_STREAMS};
    let r = relay().await;
    let (agent, viewer) = r.pair().await;
    let (a, v) = (agent.connection().clone(), viewer.connection().clone());
    // All open at once, none finished before the last is open: the control line and these
    // are as many as the paired limit allows.
    let bi = PAIRED_BI_STREAMS as u64 - 1;
    let uni = 4 * FIRST_UNI_STREAMS as u64;
    assert!(bi > 4 * FIRST_BI_STREAMS as u64);
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new((bi + uni) as usize));
    let mut opened = tokio::task::JoinSet::new();
    for i in 0..bi + uni {
        let (v, barrier) = (v.clone(), barrier.clone());
        opened.spawn(async move {
            let mut send = if i < bi {
                v.open_bi().await.unwrap().0
            } else {
                v.open_uni().await.unwrap()
            };
            send.write_all(&payload(i, 2_000)).await.unwrap();
            barrier.wait().await;
            send.finish().unwrap();
            // Kept until the other side has read it all.
            let _ = send.stopped().await;
        });
    }
    let mut got = Vec::new();
    let received = async {
        loop {
            let recv = tokio::select! {
                s = a.accept_bi() => s.unwrap().1,
                s = a.accept_uni() => s.unwrap(),
            };
            let mut recv = recv;
            got.push(recv.read_to_end(1 << 20).await.unwrap());
            if got.len() as u64 == bi + uni {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), received)
        .await
        .unwrap_or_else(|_| panic!("only {} of {} streams arrived", got.len(), bi + uni));
    got.sort();
    let mut sent: Vec<_> = (0..bi + uni).map(|i| payload(i, 2_000)).collect();
    sent.sort();
    assert_eq!(got, sent);
    opened.abort_all();
}

#[tokio::test]
async fn fin_reset_and_stop_sending_propagate() {
    let r = relay().await;
    let (agent, viewer) = r.pair().await;
    let (a, v) = (agent.connection().clone(), viewer.connection().clone());

    // RESET_STREAM with its code.
    let (mut send, _recv) = a.open_bi().await.unwrap();
    send.write_all(b"partial").await.unwrap();
    let (_vs, mut vr) = v.accept_bi().await.unwrap();
    let mut buf = [0u8; 7];
    vr.read_exact(&mut buf).await.unwrap();
    send.reset(quinn::VarInt::from_u32(7)).unwrap();
    assert!(
        matches!(vr.read_to_end(100).await, Err(quinn::ReadToEndError::Read(quinn::ReadError::Reset(c))) if c.into_inner() == 7)
    );

    // STOP_SENDING with its code reaches the writer.
    let (mut send, _recv) = a.open_bi().await.unwrap();
    send.write_all(b"x").await.unwrap();
    let (_vs, mut vr) = v.accept_bi().await.unwrap();
    vr.stop(quinn::VarInt::from_u32(9)).unwrap();
    let stopped = tokio::time::timeout(Duration::from_secs(5), send.stopped())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stopped.map(|c| c.into_inner()), Some(9));

    // FIN: the reader sees a clean end after the data.
    let (mut send, _recv) = v.open_bi().await.unwrap();
    send.write_all(b"done").await.unwrap();
    send.finish().unwrap();
    let (_as, mut ar) = a.accept_bi().await.unwrap();
    assert_eq!(ar.read_to_end(100).await.unwrap(), b"done");
}

/// What a leaving viewer sent (and the relay acknowledged) before it left — its last chat
/// line, why it ended — still reaches the agent, even when the session's bandwidth limit
/// holds it at the relay for a while.
#[tokio::test]
async fn what_a_leaving_peer_sent_before_it_left_still_arrives() {
    let r = relay_with(|c| c.session_bandwidth = Some(200_000)).await;
    let (agent, viewer) = r.pair().await;
    let data = payload(3, 300_000);
    let (mut send, _recv) = viewer.connection().open_bi().await.unwrap();
    send.write_all(&data).await.unwrap();
    send.finish().unwrap();
    // Acknowledged by the relay: leaving now is what a well-behaved viewer does.
    let acked = tokio::time::timeout(Duration::from_secs(10), send.stopped()).await;
    assert!(matches!(acked, Ok(Ok(None))), "{acked:?}");
    viewer.connection().close(0u32.into(), b"bye");
    let (_s, mut recv) = agent.connection().accept_bi().await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), recv.read_to_end(1 << 20))
        .await
        .unwrap();
    assert_eq!(got.map(|g| g == data), Ok(true), "the agent got a cut stream");
}

/// A stream its sender never finished, or one the relay could not pass on before giving up
/// on a departed peer, arrives reset: never as a clean end of a truncated stream.
#[tokio::test]
async fn a_stream_cut_by_a_departure_is_reset_never_ended_cleanly() {
    // 10 kB/s after a 64 kB burst: 100 kB cannot cross before the relay stops draining (3 s).
    let r = relay_with(|c| c.session_bandwidth = Some(10_000)).await;
    for finished in [false, true] {
        let (agent, viewer) = r.pair().await;
        let data = payload(4, 100_000);
        let (mut send, _recv) = viewer.connection().open_bi().await.unwrap();
        send.write_all(&data).await.unwrap();
        if finished {
            send.finish().unwrap();
        }
        let (_s, mut recv) = agent.connection().accept_bi().await.unwrap();
        let mut first = [0u8; 1000];
        recv.read_exact(&mut first).await.unwrap();
        // Let loopback carry and acknowledge all of it: quinn 0.11 sends no CONNECTION_CLOSE
        // while congestion-blocked (quinn#2785), and the relay would wait for the idle timeout.
        tokio::time::sleep(Duration::from_millis(300)).await;
        viewer.connection().close(0u32.into(), b"bye");
        let end = tokio::time::timeout(Duration::from_secs(10), recv.read_to_end(1 << 20))
            .await
            .unwrap();
        assert!(
            matches!(end, Err(quinn::ReadToEndError::Read(quinn::ReadError::Reset(_)))),
            "finished {finished}: {:?}",
            end.map(|d| d.len())
        );
    }
}

async fn join_error(r: &TestRelay, session: ponte_wire::SessionId, from: u8) -> Refusal {
    let mut viewer = r.connect_from(&endpoint(from)).await.unwrap();
    let err = viewer.join(session).await.unwrap_err();
    refusal(&err).unwrap_or_else(|| panic!("no refusal in {err:?}"))
}

#[tokio::test]
async fn unknown_paired_and_burned_ids_get_one_answer_and_the_agent_hears_why() {
    let r = relay().await;
    assert_eq!(
        join_error(&r, "123456789".parse().unwrap(), 1).await,
        Refusal::UnknownSession
    );

    let mut agent = r.connect().await;
    let (id, _) = agent.register().await.unwrap();
    let mut viewer = r.connect().await;
    viewer.join(id).await.unwrap();
    assert_eq!(agent.next().await.unwrap(), RelayMessage::Paired);
    // A second viewer learns nothing about the ID; the customer's side is told.
    assert_eq!(join_error(&r, id, 2).await, Refusal::UnknownSession);
    assert_eq!(
        agent.next().await.unwrap(),
        RelayMessage::JoinRefused(Refusal::AlreadyPaired)
    );

    // Burning ends the session, disconnects the viewer with the reason, refuses later joins.
    agent.send(&ClientMessage::Burn).await.unwrap();
    let closed = viewer.connection().closed().await;
    assert_eq!(
        ponte_transport::client::refusal_of(&closed),
        Some(Refusal::Burned)
    );
    assert_eq!(join_error(&r, id, 3).await, Refusal::UnknownSession);
}

#[tokio::test]
async fn session_ids_expire_and_the_agent_is_told() {
    let r = relay_with(|c| c.registry.pairing_ttl = Duration::from_secs(1)).await;
    let mut agent = r.connect().await;
    let (id, ttl) = agent.register().await.unwrap();
    assert_eq!(ttl, Duration::from_secs(1));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Either the join sees it expire or the sweep got there first: the viewer hears only
    // that the ID cannot be joined.
    assert_eq!(join_error(&r, id, 2).await, Refusal::UnknownSession);
    let msg = tokio::time::timeout(Duration::from_secs(5), agent.next())
        .await
        .unwrap();
    match msg {
        Ok(RelayMessage::Refused(Refusal::Expired)) => {}
        Err(e) => assert_eq!(refusal(&e), Some(Refusal::Expired), "{e:?}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn version_mismatch_and_garbage_are_refused_with_reasons() {
    let r = relay().await;
    for (bytes, expected) in [
        (
            vec![0, 2, VERSION + 1, 0],
            Refusal::VersionUnsupported { supported: VERSION },
        ),
        (vec![0, 3, VERSION, 0xff, 0xff], Refusal::BadRequest),
        (vec![0xff, 0xff], Refusal::BadRequest),
        (
            rendezvous::encode_client(&ClientMessage::Release),
            Refusal::BadRequest,
        ),
    ] {
        let connection = r.raw_connection().await;
        let (mut send, mut recv) = connection.open_bi().await.unwrap();
        send.write_all(&bytes).await.unwrap();
        let answer = ponte_transport::framed::read::<RelayMessage>(&mut recv, rendezvous::MAX_MESSAGE).await;
        assert_eq!(
            answer.unwrap(),
            Some(RelayMessage::Refused(expected)),
            "{bytes:?}"
        );
        // The connection is then closed with the same reason.
        let closed = connection.closed().await;
        assert_eq!(
            ponte_transport::client::refusal_of(&closed).map(|r| r.close_code()),
            Some(expected.close_code())
        );
    }
    // The relay still serves normal clients.
    r.pair().await;
}

#[tokio::test]
async fn a_join_flood_from_one_ip_is_throttled_while_another_ip_gets_through() {
    let r = relay_with(|c| {
        c.registry.join_burst = 5.0;
        c.registry.join_rate = 0.1;
    })
    .await;
    let mut agent = r.connect().await;
    let (id, _) = agent.register().await.unwrap();
    let flooder = endpoint(7);
    let mut limited = 0;
    for n in 0..12u32 {
        let guess = ponte_wire::SessionId::try_from(n).unwrap();
        let mut v = r.connect_from(&flooder).await.unwrap();
        if let Some(Refusal::RateLimited { retry_after_secs }) =
            v.join(guess).await.err().as_ref().and_then(refusal)
        {
            assert!(retry_after_secs >= 1);
            limited += 1;
        }
    }
    assert_eq!(limited, 7);
    let mut honest = r.connect_from(&endpoint(8)).await.unwrap();
    honest.join(id).await.unwrap();
}

#[tokio::test]
async fn attempts_per_session_and_waiting_sessions_are_capped() {
    let r = relay_with(|c| {
        c.registry.attempts_per_session = 1;
        c.registry.waiting_per_source = 2;
    })
    .await;
    let ep = endpoint(9);
    let mut agents = Vec::new();
    for _ in 0..2 {
        let mut a = r.connect_from(&ep).await.unwrap();
        a.register().await.unwrap();
        agents.push(a);
    }
    let mut third = r.connect_from(&ep).await.unwrap();
    assert_eq!(
        refusal(&third.register().await.unwrap_err()),
        Some(Refusal::Capacity)
    );
    // Another source may still register.
    let mut other = r.connect_from(&endpoint(10)).await.unwrap();
    let (id, _) = other.register().await.unwrap();
    // A viewer that pairs and leaves without a word costs nothing...
    for _ in 0..3 {
        let mut v = r.connect().await;
        v.join(id).await.unwrap();
        assert_eq!(other.next().await.unwrap(), RelayMessage::Paired);
        v.connection().close(0u32.into(), b"bye");
        assert_eq!(other.next().await.unwrap(), RelayMessage::PeerLeft);
        other.send(&ClientMessage::Release).await.unwrap();
        assert!(
            matches!(other.next().await.unwrap(), RelayMessage::Registered { session, .. } if session == id)
        );
    }
    // ...one that sent something (it could have tried the code) uses up the one attempt.
    let mut v = r.connect().await;
    v.join(id).await.unwrap();
    assert_eq!(other.next().await.unwrap(), RelayMessage::Paired);
    let mut s = v.connection().open_uni().await.unwrap();
    s.write_all(b"a guess").await.unwrap();
    s.finish().unwrap();
    let mut got = other.connection().accept_uni().await.unwrap();
    assert_eq!(got.read_to_end(100).await.unwrap(), b"a guess");
    other.send(&ClientMessage::Release).await.unwrap();
    assert!(matches!(
        other.next().await.unwrap(),
        RelayMessage::Registered { .. }
    ));
    assert_eq!(join_error(&r, id, 11).await, Refusal::UnknownSession);
    assert_eq!(
        other.next().await.unwrap(),
        RelayMessage::JoinRefused(Refusal::LimitExceeded)
    );
}

#[tokio::test]
async fn release_disconnects_the_viewer_and_lets_another_join() {
    let r = relay().await;
    let mut agent = r.connect().await;
    let (id, _) = agent.register().await.unwrap();
    let mut first = r.connect().await;
    first.join(id).await.unwrap();
    assert_eq!(agent.next().await.unwrap(), RelayMessage::Paired);
    agent.send(&ClientMessage::Release).await.unwrap();
    let closed = first.connection().closed().await;
    assert_eq!(
        ponte_transport::client::refusal_of(&closed),
        Some(Refusal::Released)
    );
    assert!(matches!(
        agent.next().await.unwrap(),
        RelayMessage::Registered { .. }
    ));
    let mut second = r.connect().await;
    second.join(id).await.unwrap();
    assert_eq!(agent.next().await.unwrap(), RelayMessage::Paired);
}

#[tokio::test]
async fn when_one_side_leaves_the_other_hears_why() {
    let r = relay().await;
    // Viewer leaves: the agent is told and the ID cannot be joined again.
    let (mut agent, viewer) = r.pair().await;
    viewer.connection().close(0u32.into(), b"bye");
    assert_eq!(agent.next().await.unwrap(), RelayMessage::PeerLeft);
    // Agent leaves: the viewer is closed with "peer left".
    let (agent, viewer) = r.pair().await;
    agent.connection().close(0u32.into(), b"bye");
    let closed = viewer.connection().closed().await;
    assert_eq!(
        ponte_transport::client::refusal_of(&closed),
        Some(Refusal::PeerLeft)
    );
    eventually(5, || r.relay.counts() == (0, 0) || r.relay.counts().1 == 0).await;
}

#[tokio::test]
async fn idle_and_overlong_sessions_are_closed_with_reasons() {
    let r = relay_with(|c| c.idle_timeout = Duration::from_millis(500)).await;
    let (mut agent, viewer) = r.pair().await;
    let closed = tokio::time::timeout(Duration::from_secs(5), viewer.connection().closed())
        .await
        .unwrap();
    assert_eq!(
        ponte_transport::client::refusal_of(&closed),
        Some(Refusal::IdleTimeout)
    );
    let end = agent.next().await;
    assert!(
        matches!(&end, Ok(RelayMessage::Refused(Refusal::IdleTimeout)))
            || end.as_ref().err().and_then(refusal) == Some(Refusal::IdleTimeout),
        "{end:?}"
    );

    let r = relay_with(|c| c.max_session = Duration::from_millis(500)).await;
    let (_agent, viewer) = r.pair().await;
    let closed = tokio::time::timeout(Duration::from_secs(5), viewer.connection().closed())
        .await
        .unwrap();
    assert_eq!(
        ponte_transport::client::refusal_of(&closed),
        Some(Refusal::LimitExceeded)
    );
}

#[tokio::test]
async fn session_bandwidth_is_limited() {
    let rate = 1_000_000u64;
    let r = relay_with(|c| c.session_bandwidth = Some(rate)).await;
    let (agent, viewer) = r.pair().await;
    let data = payload(1, 1_500_000);
    let start = std::time::Instant::now();
    let (mut send, _) = agent.connection().open_bi().await.unwrap();
    let writer = tokio::spawn(async move {
        send.write_all(&data).await.unwrap();
        send.finish().unwrap();
        send
    });
    let (_s, mut recv) = viewer.connection().accept_bi().await.unwrap();
    let got = recv.read_to_end(2_000_000).await.unwrap();
    let elapsed = start.elapsed();
    let _ = writer.await;
    assert_eq!(got.len(), 1_500_000);
    // 250 kB of burst, then 1 MB/s: at least ~1.25 s.
    assert!(elapsed >= Duration::from_millis(1100), "too fast: {elapsed:?}");
}

#[tokio::test]
async fn connections_beyond_the_limit_are_refused_at_accept() {
    let r = relay_with(|c| c.admission.max_connections = 2).await;
    let _a = r.connect().await;
    let _b = r.connect().await;
    let third = r.connect_from(&endpoint(12)).await;
    assert!(
        matches!(
            third,
            Err(ClientError::Connection(quinn::ConnectionError::ConnectionClosed(
                _
            )))
        ),
        "{third:?}"
    );
}

#[tokio::test]
async fn half_open_and_silent_clients_do_not_leak_sessions() {
    let r = relay_with(|c| c.request_timeout = Duration::from_millis(300)).await;
    // Connects but never opens a stream.
    let silent = r.raw_connection().await;
    let closed = tokio::time::timeout(Duration::from_secs(5), silent.closed())
        .await
        .unwrap();
    assert!(
        matches!(closed, quinn::ConnectionError::ApplicationClosed(_)),
        "{closed:?}"
    );
    // Opens a stream but sends half a frame.
    let half = r.raw_connection().await;
    let (mut send, _recv) = half.open_bi().await.unwrap();
    send.write_all(&[0, 10, VERSION]).await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(5), half.closed())
        .await
        .unwrap();
    assert!(
        matches!(closed, quinn::ConnectionError::ApplicationClosed(_)),
        "{closed:?}"
    );
    // An oversized length prefix is refused at once.
    let big = r.raw_connection().await;
    let (mut send, mut recv) = big.open_bi().await.unwrap();
    send.write_all(&[0xff, 0xff, VERSION]).await.unwrap();
    let answer = ponte_transport::framed::read::<RelayMessage>(&mut recv, rendezvous::MAX_MESSAGE)
        .await
        .unwrap();
    assert_eq!(answer, Some(RelayMessage::Refused(Refusal::BadRequest)));
    assert_eq!(r.relay.counts(), (0, 0));
    r.pair().await;
}

#[tokio::test]
async fn shutdown_tells_waiting_agents_and_lets_paired_sessions_finish() {
    let r = relay_with(|c| c.shutdown_grace = Duration::from_secs(1)).await;
    let mut waiting = r.connect().await;
    waiting.register().await.unwrap();
    let (_agent, viewer) = r.pair().await;
    let relay = r.relay;
    let shutdown = tokio::spawn(relay.shutdown());
    let msg = tokio::time::timeout(Duration::from_secs(5), waiting.next())
        .await
        .unwrap();
    assert!(
        matches!(&msg, Ok(RelayMessage::Refused(Refusal::ShuttingDown)))
            || msg.as_ref().err().and_then(refusal) == Some(Refusal::ShuttingDown),
        "{msg:?}"
    );
    // The paired session still forwards during the grace period...
    let (mut s, _) = viewer.connection().open_bi().await.unwrap();
    s.write_all(b"still here").await.unwrap();
    // ...and is closed with the reason after it.
    let closed = tokio::time::timeout(Duration::from_secs(5), viewer.connection().closed())
        .await
        .unwrap();
    assert_eq!(
        ponte_transport::client::refusal_of(&closed),
        Some(Refusal::ShuttingDown)
    );
    shutdown.await.unwrap();
}

#[tokio::test]
async fn total_bandwidth_is_limited_across_sessions() {
    let rate = 1_000_000u64;
    let r = relay_with(|c| {
        c.session_bandwidth = None;
        c.total_bandwidth = Some(rate);
    })
    .await;
    let start = std::time::Instant::now();
    let mut tasks = Vec::new();
    for n in 0..2u64 {
        let (agent, viewer) = r.pair().await;
        tasks.push(tokio::spawn(async move {
            let (mut send, _) = agent.connection().open_bi().await.unwrap();
            send.write_all(&payload(n, 750_000)).await.unwrap();
            send.finish().unwrap();
            let (_s, mut recv) = viewer.connection().accept_bi().await.unwrap();
            let got = recv.read_to_end(1_000_000).await.unwrap();
            assert_eq!(got.len(), 750_000);
            (agent, viewer)
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // 1.5 MB in total at 1 MB/s after a 250 kB burst.
    assert!(
        start.elapsed() >= Duration::from_millis(1100),
        "too fast: {:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_ca_issued_certificate_is_served_and_verified_by_roots() {
    use rustls::pki_types::CertificateDer;
    let dir = tempfile::tempdir().unwrap();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["relay.example".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &rcgen::Issuer::new(ca_params, &ca_key))
        .unwrap();
    let (cert_path, key_path) = (dir.path().join("chain.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, leaf.pem() + &ca.pem()).unwrap();
    std::fs::write(&key_path, leaf_key.serialize_pem()).unwrap();

    let r = relay_with(|c| c.cert = Some((cert_path, key_path))).await;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(ca.der().to_vec())).unwrap();
    let trust = ponte_transport::tls::RelayTrust::Roots(std::sync::Arc::new(roots));
    let connect = |name: &'static str| {
        let (config, seen) = ponte_transport::tls::client_config(
            &trust,
            ponte_transport::tls::transport_config(Duration::from_secs(30)),
        )
        .unwrap();
        let addr = r.addr;
        async move { ponte_transport::client::RelayClient::connect(&endpoint(1), addr, name, config, &seen).await }
    };
    let mut client = connect("relay.example").await.unwrap();
    client.register().await.unwrap();
    assert_eq!(client.relay_fingerprint(), Some(r.relay.fingerprint()));
    // The wrong name fails verification.
    assert!(connect("other.example").await.is_err());
}
