//! The relay against hostile clients speaking raw QUIC (quinn directly, frames by hand): no
//! streams before pairing, bounded buffers after self-pairing, per-source connection caps,
//! address validation, join floods that must not lock out the real viewer, and protocol
//! violations answered with a reason.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use ponte_relay::admission::RetryMode;
use ponte_tests::*;
use ponte_transport::tls::{self, RelayTrust};
use ponte_wire::SessionId;
use ponte_wire::frame::VERSION;
use ponte_wire::rendezvous::{self, ClientMessage, MAX_MESSAGE, Refusal, RelayMessage};
use quinn::{Connection, Endpoint, RecvStream, SendStream};

/// A raw client: quinn with TLS pinned to the relay and the given receive windows.
async fn raw(r: &TestRelay, ep: &Endpoint, window: u32) -> Result<Connection, quinn::ConnectionError> {
    let mut transport = tls::transport_config(Duration::from_secs(30));
    transport
        .receive_window(window.into())
        .stream_receive_window(window.into());
    let (config, _) = tls::client_config(&RelayTrust::Pinned(r.relay.fingerprint()), transport).unwrap();
    ep.connect_with(config, r.addr, "ponte-relay").unwrap().await
}

async fn say(send: &mut SendStream, m: &ClientMessage) {
    send.write_all(&rendezvous::encode_client(m)).await.unwrap();
}

async fn hear(recv: &mut RecvStream) -> Option<RelayMessage> {
    tokio::time::timeout(
        Duration::from_secs(5),
        ponte_transport::framed::read::<RelayMessage>(recv, MAX_MESSAGE),
    )
    .await
    .unwrap()
    .unwrap()
}

/// Registers over a raw connection; returns the control stream and the ID.
async fn register(c: &Connection) -> (SendStream, RecvStream, SessionId) {
    let (mut send, mut recv) = c.open_bi().await.unwrap();
    say(&mut send, &ClientMessage::Register).await;
    match hear(&mut recv).await {
        Some(RelayMessage::Registered { session, .. }) => (send, recv, session),
        other => panic!("{other:?}"),
    }
}

async fn join(c: &Connection, session: SessionId) -> (SendStream, RecvStream, Option<RelayMessage>) {
    let (mut send, mut recv) = c.open_bi().await.unwrap();
    say(&mut send, &ClientMessage::Join { session }).await;
    let answer = hear(&mut recv).await;
    (send, recv, answer)
}

async fn blocked<T>(f: impl std::future::Future<Output = T>) -> bool {
    tokio::time::timeout(Duration::from_millis(300), f).await.is_err()
}

#[tokio::test]
async fn no_stream_can_be_opened_before_pairing() {
    let r = relay().await;
    let ep = endpoint(30);
    let agent = raw(&r, &ep, 1 << 20).await.unwrap();
    let (_a_send, _a_recv, id) = register(&agent).await;
    // The control line is the only stream a connection gets before it is paired.
    assert!(
        blocked(agent.open_bi()).await,
        "a second bidirectional stream opened"
    );
    assert!(blocked(agent.open_uni()).await, "a unidirectional stream opened");
    let viewer = raw(&r, &ep, 1 << 20).await.unwrap();
    let (mut v_send, mut v_recv) = viewer.open_bi().await.unwrap();
    assert!(
        blocked(viewer.open_uni()).await,
        "a viewer opened a stream before joining"
    );
    assert_eq!(
        r.relay.stats().buffers_reserved,
        0,
        "nothing reserved before pairing"
    );

    // Once paired both may open streams, and what they send arrives.
    say(&mut v_send, &ClientMessage::Join { session: id }).await;
    assert_eq!(hear(&mut v_recv).await, Some(RelayMessage::Paired));
    assert!(r.relay.stats().buffers_reserved > 0);
    let mut s = tokio::time::timeout(Duration::from_secs(5), viewer.open_uni())
        .await
        .unwrap()
        .unwrap();
    s.write_all(b"after pairing").await.unwrap();
    s.finish().unwrap();
    let mut got = agent.accept_uni().await.unwrap();
    assert_eq!(got.read_to_end(100).await.unwrap(), b"after pairing");
    agent.close(0u32.into(), b"");
    viewer.close(0u32.into(), b"");
    eventually(5, || r.relay.stats().buffers_reserved == 0).await;
}

/// A paired peer opening stream after stream, never ending one, gets the relay's paired
/// limits and no more (quinn keeps state for every stream a peer may open: the limit is the
/// relay's memory at rest).
#[tokio::test]
async fn a_paired_peer_has_at_most_the_paired_streams_open_at_once() {
    use ponte_relay::memory::{PAIRED_BI_STREAMS, PAIRED_UNI_STREAMS};
    let r = relay().await;
    let ep = endpoint(30);
    let agent = raw(&r, &ep, 1 << 20).await.unwrap();
    let (_a_send, _a_recv, id) = register(&agent).await;
    let viewer = raw(&r, &ep, 1 << 20).await.unwrap();
    let (_v_send, _v_recv, answer) = join(&viewer, id).await;
    assert_eq!(answer, Some(RelayMessage::Paired));
    let mut open = Vec::new();
    // The control line is one of the bidirectional streams.
    for n in 1..PAIRED_BI_STREAMS {
        let Ok(Ok((mut send, _recv))) = tokio::time::timeout(Duration::from_secs(5), viewer.open_bi()).await
        else {
            panic!("bidirectional stream {n} of {PAIRED_BI_STREAMS} not opened");
        };
        send.write_all(b"x").await.unwrap();
        open.push(send);
    }
    assert!(
        blocked(viewer.open_bi()).await,
        "a stream beyond the limit opened"
    );
    let mut uni = Vec::new();
    for n in 0..PAIRED_UNI_STREAMS {
        let Ok(Ok(mut send)) = tokio::time::timeout(Duration::from_secs(5), viewer.open_uni()).await else {
            panic!("unidirectional stream {n} of {PAIRED_UNI_STREAMS} not opened");
        };
        send.write_all(b"x").await.unwrap();
        uni.push(send);
    }
    assert!(
        blocked(viewer.open_uni()).await,
        "a stream beyond the limit opened"
    );
}

/// Opens `n` streams of each kind on `c` and writes into them until `deadline`, never reading.
fn flood(c: &Connection, n: usize, deadline: tokio::time::Instant) -> tokio::task::JoinSet<u64> {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..2 * n {
        let c = c.clone();
        tasks.spawn(async move {
            let chunk = vec![0x5a; 16 * 1024];
            let opened = tokio::time::timeout_at(deadline, async {
                if i % 2 == 0 {
                    c.open_bi().await.map(|(s, _)| s)
                } else {
                    c.open_uni().await
                }
            })
            .await;
            let Ok(Ok(mut s)) = opened else { return 0 };
            let mut sent = 0u64;
            while let Ok(Ok(())) = tokio::time::timeout_at(deadline, s.write_all(&chunk)).await {
                sent += chunk.len() as u64;
            }
            sent
        });
    }
    tasks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_paired_client_filling_every_stream_gets_only_its_reservation() {
    let r = relay().await;
    let ep = endpoint(31);
    // Small client windows: the relay cannot push what it receives onwards, so everything the
    // attacker sends piles up in the relay as far as the relay lets it.
    let agent = raw(&r, &ep, 16 * 1024).await.unwrap();
    let (_a_send, _a_recv, id) = register(&agent).await;
    let viewer = raw(&r, &ep, 16 * 1024).await.unwrap();
    let (_v_send, _v_recv, answer) = join(&viewer, id).await;
    assert_eq!(answer, Some(RelayMessage::Paired));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    let mut a = flood(&agent, 255, deadline);
    let mut v = flood(&viewer, 255, deadline);
    let mut sent = 0;
    while let Some(n) = a.join_next().await {
        sent += n.unwrap();
    }
    while let Some(n) = v.join_next().await {
        sent += n.unwrap();
    }
    let stats = r.relay.stats();
    eprintln!("the attacker got {sent} bytes into the relay; {stats:?}");
    let tier = ponte_relay::memory::Tier {
        window: ponte_relay::config::Config::new("127.0.0.1:0".parse().unwrap(), ".".into())
            .buffers
            .full
            .window,
    };
    // Each connection's windows are reserved once, and that is all the attacker got to send
    // beyond what the relay could pass on (16 KiB per client stream, 16 KiB per connection).
    assert_eq!(stats.buffers_reserved, 2 * tier.bytes(), "{stats:?}");
    assert_eq!(
        r.relay.buffers_reserved_by("127.0.0.31".parse().unwrap()),
        2 * tier.bytes()
    );
    assert!(
        sent <= 2 * tier.bytes() + 4 * 16 * 1024,
        "the attacker pushed {sent} bytes into the relay"
    );
    agent.close(0u32.into(), b"");
    viewer.close(0u32.into(), b"");
    eventually(10, || r.relay.stats().buffers_reserved == 0).await;
}

#[tokio::test]
async fn each_source_gets_only_its_share_of_connections() {
    let r = relay_with(|c| {
        c.admission.per_source = 3;
        c.admission.retry = RetryMode::Never;
    })
    .await;
    let ep = endpoint(32);
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(raw(&r, &ep, 1 << 20).await.unwrap());
    }
    let fourth = raw(&r, &ep, 1 << 20).await;
    assert!(
        matches!(fourth, Err(quinn::ConnectionError::ConnectionClosed(ref c)) if c.error_code == quinn::TransportErrorCode::CONNECTION_REFUSED),
        "{fourth:?}"
    );
    assert_eq!(r.relay.stats().refused_source, 1);
    // Another source is not affected.
    let other = raw(&r, &endpoint(33), 1 << 20).await.unwrap();
    // A slot given back can be taken again.
    held.pop().unwrap().close(0u32.into(), b"");
    let mut again = None;
    for _ in 0..50 {
        if let Ok(c) = raw(&r, &ep, 1 << 20).await {
            again = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(again.is_some(), "the freed slot was never given back");
    drop(other);
}

#[tokio::test]
async fn retry_always_and_under_load_work_with_our_clients() {
    let r = relay_with(|c| c.admission.retry = RetryMode::Always).await;
    let (agent, viewer) = r.pair().await;
    assert!(r.relay.stats().retries >= 2, "{:?}", r.relay.stats());
    let (mut s, _) = agent.connection().open_bi().await.unwrap();
    s.write_all(b"validated").await.unwrap();
    s.finish().unwrap();
    let (_, mut got) = viewer.connection().accept_bi().await.unwrap();
    assert_eq!(got.read_to_end(100).await.unwrap(), b"validated");

    // Under load (half of the 4 slots taken) new clients are asked to validate; below it not.
    let r = relay_with(|c| {
        c.admission.retry = RetryMode::UnderLoad;
        c.admission.max_connections = 4;
    })
    .await;
    let first = r.connect().await;
    assert_eq!(r.relay.stats().retries, 0);
    let second = r.connect().await;
    assert_eq!(r.relay.stats().retries, 0);
    let mut third = r.connect().await;
    assert_eq!(r.relay.stats().retries, 1);
    third.register().await.unwrap();
    drop((first, second));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_floods_do_not_lock_out_the_real_viewer() {
    let r = relay_with(|c| c.registry.attempts_per_session = 3).await;
    let mut agent = r.connect().await;
    let (id, _) = agent.register().await.unwrap();
    // The agent does what the real one does: it releases a viewer that left before the
    // handshake, and it shows every attempt.
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
    let agent_task = tokio::spawn(async move {
        loop {
            let m = agent.next().await.unwrap();
            if m == RelayMessage::PeerLeft {
                agent.send(&ClientMessage::Release).await.unwrap();
            }
            if seen_tx.send(m).is_err() {
                return agent;
            }
        }
    });
    // Flooders from many sources: each pairs and leaves without a word while another one,
    // joining meanwhile, is turned away.
    let mut refused = 0;
    for n in 0..16u8 {
        let ep = endpoint(100 + n);
        let first = raw(&r, &ep, 1 << 20).await.unwrap();
        let (_s, _r, answer) = join(&first, id).await;
        if answer != Some(RelayMessage::Paired) {
            // Still vacated by the previous flooder: the agent has not released yet.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        let second = raw(&r, &ep, 1 << 20).await.unwrap();
        let (_s2, _r2, turned) = join(&second, id).await;
        assert_eq!(turned, Some(RelayMessage::Refused(Refusal::UnknownSession)));
        refused += 1;
        first.close(0u32.into(), b"");
        second.close(0u32.into(), b"");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused >= 8, "only {refused} flood rounds ran");
    // The real assistant still gets in.
    let mut joined = false;
    for _ in 0..20 {
        let mut viewer = r.connect_from(&endpoint(99)).await.unwrap();
        match viewer.join(id).await {
            Ok(()) => {
                joined = true;
                break;
            }
            Err(e) => {
                assert_eq!(refusal(&e), Some(Refusal::UnknownSession), "{e:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    assert!(joined, "the real viewer was locked out");
    // The customer's side heard of every turned-away join.
    let mut heard = Vec::new();
    while let Ok(m) = seen_rx.try_recv() {
        heard.push(m);
    }
    let told = heard
        .iter()
        .filter(|m| **m == RelayMessage::JoinRefused(Refusal::AlreadyPaired))
        .count();
    assert_eq!(told, refused, "{heard:?}");
    drop(seen_rx);
    agent_task.abort();
}

#[tokio::test]
async fn bad_frames_after_register_and_after_join_get_a_reason() {
    let r = relay().await;
    for (bytes, expected) in [
        (vec![0, 3, VERSION, 0xff, 0xff], Refusal::BadRequest),
        (
            vec![0, 2, VERSION + 1, 0],
            Refusal::VersionUnsupported { supported: VERSION },
        ),
        (
            rendezvous::encode_client(&ClientMessage::Register),
            Refusal::BadRequest,
        ),
    ] {
        let agent = raw(&r, &endpoint(34), 1 << 20).await.unwrap();
        let (mut send, mut recv, _) = register(&agent).await;
        send.write_all(&bytes).await.unwrap();
        assert_eq!(
            hear(&mut recv).await,
            Some(RelayMessage::Refused(expected)),
            "{bytes:?}"
        );
        let closed = agent.closed().await;
        assert_eq!(
            ponte_transport::client::refusal_of(&closed).map(|r| r.close_code()),
            Some(expected.close_code())
        );
    }
    // A viewer has nothing to say after its join: saying something ends its pairing.
    let mut agent = r.connect().await;
    let (id, _) = agent.register().await.unwrap();
    let viewer = raw(&r, &endpoint(35), 1 << 20).await.unwrap();
    let (mut send, _recv, answer) = join(&viewer, id).await;
    assert_eq!(answer, Some(RelayMessage::Paired));
    assert_eq!(agent.next().await.unwrap(), RelayMessage::Paired);
    say(&mut send, &ClientMessage::Burn).await;
    let closed = tokio::time::timeout(Duration::from_secs(5), viewer.closed())
        .await
        .unwrap();
    assert_eq!(
        ponte_transport::client::refusal_of(&closed),
        Some(Refusal::BadRequest)
    );
    assert_eq!(agent.next().await.unwrap(), RelayMessage::PeerLeft);
    let _: SocketAddr = r.addr;
}
