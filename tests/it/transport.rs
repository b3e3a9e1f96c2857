//! The transport (spec/PROTOCOL.md part 3) over real loopback TCP.

use crate::common::keys::keys;

use std::time::Duration;

use feedmesh::feed::{FeedId, Keypair};
use feedmesh::net::{
    self, BufferBudget, FramingError, HandshakeConfig, HandshakeError, MAX_FRAME_PLAINTEXT, MIN_MAX_MESSAGE,
    NetworkKey, SecureStream, StreamError,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Generous bound on every step, so a hang fails the test instead of blocking it.
const STEP: Duration = Duration::from_secs(20);

fn network_key() -> NetworkKey {
    NetworkKey::from_bytes([42; 32])
}

fn quick() -> HandshakeConfig {
    HandshakeConfig {
        timeout: Duration::from_millis(200),
        ..HandshakeConfig::default()
    }
}

async fn bind() -> (TcpListener, std::net::SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    (listener, addr)
}

/// Accepts one connection and runs the listener's side of the handshake.
fn serve_one(
    listener: TcpListener,
    key: NetworkKey,
    local: Keypair,
    config: HandshakeConfig,
) -> JoinHandle<Result<SecureStream<TcpStream>, HandshakeError>> {
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.expect("accept");
        net::respond(stream, &key, &local, &config).await
    })
}

async fn within<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP, future).await.expect("step timed out")
}

/// Two connected, authenticated streams: (dialer's, listener's).
async fn connected(
    dialer_config: HandshakeConfig,
    listener_config: HandshakeConfig,
) -> (SecureStream<TcpStream>, SecureStream<TcpStream>) {
    let (listener, addr) = bind().await;
    let server = serve_one(listener, network_key(), keys(2), listener_config);
    let stream = TcpStream::connect(addr).await.expect("connect");
    let dialer = within(net::initiate(
        stream,
        &network_key(),
        &keys(1),
        Some(keys(2).feed_id()),
        &dialer_config,
    ))
    .await
    .expect("dialer handshake");
    let listener = within(server).await.expect("join").expect("listener handshake");
    (dialer, listener)
}

fn big_message(len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(salt))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_exchange_messages_both_ways() {
    let (mut a, mut b) = connected(HandshakeConfig::default(), HandshakeConfig::default()).await;
    assert_eq!(a.remote_id(), keys(2).feed_id());
    assert_eq!(b.remote_id(), keys(1).feed_id());
    assert_eq!(a.handshake_hash(), b.handshake_hash());

    within(a.send(b"hello from a")).await.expect("send");
    within(a.send(b"")).await.expect("send empty");
    assert_eq!(within(b.recv()).await.expect("recv"), b"hello from a");
    assert_eq!(within(b.recv()).await.expect("recv"), b"");
    within(b.send(b"hello from b")).await.expect("send");
    assert_eq!(within(a.recv()).await.expect("recv"), b"hello from b");

    // ~3 MiB both ways at once, from separate reader and writer tasks; the
    // readers poll `recv` inside a `select!` against a fast timer, so a
    // cancelled `recv` must lose nothing.
    let (mut a_read, mut a_write) = a.split_with(TcpStream::into_split);
    let (mut b_read, mut b_write) = b.into_split();
    assert_eq!(a_read.remote_id(), keys(2).feed_id());
    assert_eq!(b_write.remote_id(), keys(1).feed_id());
    let (from_a, from_b) = (big_message(3 << 20, 1), big_message((3 << 20) + 12345, 2));
    let sends = {
        let (from_a, from_b) = (from_a.clone(), from_b.clone());
        tokio::spawn(async move {
            let (x, y) = tokio::join!(a_write.send(&from_a), b_write.send(&from_b));
            x.expect("a sends");
            y.expect("b sends");
            a_write.send(b"after").await.expect("a sends after");
            (a_write, b_write)
        })
    };
    async fn recv_with_interruptions<R: tokio::io::AsyncRead + Unpin>(reader: &mut net::SecureReader<R>) -> Vec<u8> {
        loop {
            tokio::select! {
                message = reader.recv() => return message.expect("recv"),
                _ = tokio::time::sleep(Duration::from_micros(200)) => {}
            }
        }
    }
    let (got_at_b, got_at_a) = within(async {
        tokio::join!(
            recv_with_interruptions(&mut b_read),
            recv_with_interruptions(&mut a_read)
        )
    })
    .await;
    assert!(got_at_b == from_a, "a's 3 MiB message arrived intact");
    assert!(got_at_a == from_b, "b's 3 MiB message arrived intact");
    assert_eq!(within(b_read.recv()).await.expect("recv"), b"after");

    // Closing one direction is a clean end at a message boundary.
    let (mut a_write, _b_write) = within(sends).await.expect("join");
    a_write.shutdown().await.expect("shutdown");
    assert!(matches!(within(b_read.recv()).await, Err(StreamError::Closed)));
    assert!(matches!(within(b_read.recv()).await, Err(StreamError::Broken)));
}

#[tokio::test]
async fn wrong_network_key_fails_on_both_sides() {
    let (listener, addr) = bind().await;
    let server = serve_one(
        listener,
        NetworkKey::from_bytes([1; 32]),
        keys(2),
        HandshakeConfig::default(),
    );
    let stream = TcpStream::connect(addr).await.expect("connect");
    let dialer = within(net::initiate(
        stream,
        &NetworkKey::from_bytes([9; 32]),
        &keys(1),
        None,
        &HandshakeConfig::default(),
    ))
    .await;
    let listener = within(server).await.expect("join");
    assert!(
        matches!(dialer, Err(HandshakeError::WrongNetworkKeyOrCorrupt)),
        "dialer: {dialer:?}"
    );
    assert!(
        matches!(listener, Err(HandshakeError::WrongNetworkKeyOrCorrupt)),
        "listener: {listener:?}"
    );
}

#[tokio::test]
async fn dialer_refuses_a_peer_other_than_the_expected_one() {
    let (listener, addr) = bind().await;
    let _server = serve_one(listener, network_key(), keys(3), HandshakeConfig::default());
    let stream = TcpStream::connect(addr).await.expect("connect");
    let expected = keys(2).feed_id();
    let result = within(net::initiate(
        stream,
        &network_key(),
        &keys(1),
        Some(expected),
        &HandshakeConfig::default(),
    ))
    .await;
    match result {
        Err(HandshakeError::UnexpectedPeer { expected: e, found }) => {
            assert_eq!(e, expected);
            assert_eq!(found, keys(3).feed_id());
        }
        other => panic!("expected UnexpectedPeer, got {other:?}"),
    }
}

#[tokio::test]
async fn an_impostor_dialer_is_refused() {
    let victim: FeedId = keys(5).feed_id();
    let (listener, addr) = bind().await;
    let server = serve_one(listener, network_key(), keys(2), HandshakeConfig::default());
    let stream = TcpStream::connect(addr).await.expect("connect");
    // Holds the network key, claims the victim's id, signs with its own key.
    let _impostor = within(net::impostor::initiate(
        stream,
        &network_key(),
        &keys(6),
        victim,
        &HandshakeConfig::default(),
    ))
    .await;
    let listener = within(server).await.expect("join");
    assert!(
        matches!(listener, Err(HandshakeError::BadIdentityProof)),
        "listener: {listener:?}"
    );
}

#[tokio::test]
async fn an_impostor_listener_is_refused() {
    let victim: FeedId = keys(5).feed_id();
    let (listener, addr) = bind().await;
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.expect("accept");
        net::impostor::respond(stream, &network_key(), &keys(6), victim, &HandshakeConfig::default()).await
    });
    let stream = TcpStream::connect(addr).await.expect("connect");
    let dialer = within(net::initiate(
        stream,
        &network_key(),
        &keys(1),
        Some(victim),
        &HandshakeConfig::default(),
    ))
    .await;
    assert!(
        matches!(dialer, Err(HandshakeError::BadIdentityProof)),
        "dialer: {dialer:?}"
    );
    drop(server);
}

#[tokio::test]
async fn a_node_refuses_a_connection_to_itself() {
    let (listener, addr) = bind().await;
    let server = serve_one(listener, network_key(), keys(1), HandshakeConfig::default());
    let stream = TcpStream::connect(addr).await.expect("connect");
    let dialer = within(net::initiate(
        stream,
        &network_key(),
        &keys(1),
        None,
        &HandshakeConfig::default(),
    ))
    .await;
    assert!(
        matches!(dialer, Err(HandshakeError::SelfConnection)),
        "dialer: {dialer:?}"
    );
    let listener = within(server).await.expect("join");
    assert!(
        matches!(listener, Err(HandshakeError::SelfConnection)),
        "listener: {listener:?}"
    );
}

#[tokio::test]
async fn a_silent_peer_hits_the_handshake_timeout() {
    // A listener that accepts and never answers.
    let (listener, addr) = bind().await;
    let hold = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.expect("accept");
        tokio::time::sleep(STEP).await;
        drop(stream);
    });
    let stream = TcpStream::connect(addr).await.expect("connect");
    let dialer = within(net::initiate(stream, &network_key(), &keys(1), None, &quick())).await;
    assert!(matches!(dialer, Err(HandshakeError::Timeout(_))), "dialer: {dialer:?}");
    hold.abort();

    // A dialer that connects and never speaks.
    let (listener, addr) = bind().await;
    let server = serve_one(listener, network_key(), keys(2), quick());
    let _silent = TcpStream::connect(addr).await.expect("connect");
    let listener = within(server).await.expect("join");
    assert!(
        matches!(listener, Err(HandshakeError::Timeout(_))),
        "listener: {listener:?}"
    );
}

#[tokio::test]
async fn an_oversized_message_is_refused_before_buffering() {
    let small = HandshakeConfig {
        max_message: MIN_MAX_MESSAGE,
        ..HandshakeConfig::default()
    };
    let (mut a, mut b) = connected(HandshakeConfig::default(), small.clone()).await;

    // The sender refuses a message over its own limit and stays usable.
    let huge = vec![0u8; net::MAX_MESSAGE + 1];
    assert!(matches!(
        within(a.send(&huge)).await,
        Err(StreamError::Framing(FramingError::MessageTooLarge { .. }))
    ));
    within(a.send(b"still fine")).await.expect("send");
    assert_eq!(within(b.recv()).await.expect("recv"), b"still fine");

    // A message over the receiver's limit is refused.
    within(a.send(&vec![7u8; MIN_MAX_MESSAGE + 1])).await.expect("send");
    match within(b.recv()).await {
        Err(StreamError::Framing(FramingError::MessageTooLarge { len, max })) => {
            assert_eq!(len, (MIN_MAX_MESSAGE + 1) as u64);
            assert_eq!(max, MIN_MAX_MESSAGE);
        }
        other => panic!("expected MessageTooLarge, got {other:?}"),
    }

    // A declared length of 4 GiB - 1 is refused as soon as its 4 bytes
    // arrive: the receiver neither waits for nor allocates the body.
    let (mut a, mut b) = connected(HandshakeConfig::default(), HandshakeConfig::default()).await;
    within(a.send_raw_frame(&u32::MAX.to_be_bytes()))
        .await
        .expect("send raw");
    match within(b.recv()).await {
        Err(StreamError::Framing(FramingError::MessageTooLarge { len, .. })) => assert_eq!(len, u64::from(u32::MAX)),
        other => panic!("expected MessageTooLarge, got {other:?}"),
    }
}

#[tokio::test]
async fn a_tampered_frame_fails_to_decrypt() {
    // A raw TCP relay that flips one bit of the first transport frame after the handshake.
    let (listener, addr) = bind().await;
    let server = serve_one(listener, network_key(), keys(2), HandshakeConfig::default());
    let (relay_listener, relay_addr) = bind().await;
    let relay = tokio::spawn(async move {
        let (mut client, _) = relay_listener.accept().await.expect("accept");
        let mut upstream = TcpStream::connect(addr).await.expect("connect");
        let (mut cr, mut cw) = client.split();
        let (mut ur, mut uw) = upstream.split();
        let down = tokio::io::copy(&mut ur, &mut cw);
        let up = async {
            // Dialer to listener: msg1 (2+48), msg3 (2+64), proof (2+112), then the message.
            for len in [50, 66 + 114] {
                let mut handshake = vec![0u8; len];
                cr.read_exact(&mut handshake).await.expect("handshake bytes");
                uw.write_all(&handshake).await.expect("forward");
            }
            let mut rest = Vec::new();
            cr.read_to_end(&mut rest).await.expect("message");
            if let Some(byte) = rest.get_mut(10) {
                *byte ^= 1;
            }
            uw.write_all(&rest).await.expect("forward");
            uw.shutdown().await.expect("shutdown");
        };
        let _ = tokio::join!(down, up);
    });
    let stream = TcpStream::connect(relay_addr).await.expect("connect");
    let mut a = within(net::initiate(
        stream,
        &network_key(),
        &keys(1),
        None,
        &HandshakeConfig::default(),
    ))
    .await
    .expect("dialer");
    let mut b = within(server).await.expect("join").expect("listener");
    a.send(b"tamper with me").await.expect("send");
    let (_a_read, mut a_write) = a.split_with(TcpStream::into_split);
    a_write.shutdown().await.expect("shutdown");
    assert!(matches!(within(b.recv()).await, Err(StreamError::Decrypt)));
    relay.abort();
}

#[tokio::test]
async fn garbage_instead_of_a_handshake_is_an_error() {
    let mut bad_e = vec![0x00, 0x30];
    bad_e.extend_from_slice(&[0x5a; 48]);
    let garbage: Vec<Vec<u8>> = vec![
        b"GET / HTTP/1.1\r\nHost: example\r\n\r\n".to_vec(),
        vec![0, 0],
        vec![0, 48, 1, 2, 3],
        vec![0xff; 300],
        bad_e,
    ];
    for bytes in garbage {
        // Garbage sent to a listener.
        let (listener, addr) = bind().await;
        let server = serve_one(listener, network_key(), keys(2), quick());
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.write_all(&bytes).await.expect("write");
        let listener = within(server).await.expect("join (no panic)");
        assert!(listener.is_err(), "listener accepted garbage {bytes:?}");
        drop(stream);

        // Garbage sent back to a dialer.
        let (listener, addr) = bind().await;
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.expect("accept");
            let _ = stream.write_all(&bytes).await;
            let _ = stream.shutdown().await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        });
        let stream = TcpStream::connect(addr).await.expect("connect");
        let dialer = within(net::initiate(stream, &network_key(), &keys(1), None, &quick())).await;
        assert!(dialer.is_err(), "dialer accepted garbage");
        server.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalives_are_skipped_by_the_reader_but_counted() {
    let (a, b) = connected(HandshakeConfig::default(), HandshakeConfig::default()).await;
    let (_a_read, mut a_write) = a.into_split();
    let (mut b_read, _b_write) = b.into_split();
    let before = b_read.frames_received();
    within(a_write.send_keepalive()).await.expect("keepalive");
    within(a_write.send_keepalive()).await.expect("keepalive");
    within(a_write.send(b"after two keepalives")).await.expect("send");
    assert_eq!(within(b_read.recv()).await.expect("recv"), b"after two keepalives");
    assert_eq!(
        b_read.frames_received(),
        before + 3,
        "two empty frames and one message frame"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_messages_share_the_buffer_budget_and_must_arrive_within_its_deadline() {
    const LARGE: usize = 200_000;
    let budget = BufferBudget::new(LARGE, Duration::from_millis(300));
    let (mut a1, b1) = connected(HandshakeConfig::default(), HandshakeConfig::default()).await;
    let (mut a2, b2) = connected(HandshakeConfig::default(), HandshakeConfig::default()).await;
    let (mut b1, _w1) = b1.into_split();
    let (mut b2, _w2) = b2.into_split();
    b1.set_budget(budget.clone());
    b2.set_budget(budget.clone());

    // b1's message holds the whole pool until b1 asks for its next one.
    within(a1.send(&big_message(LARGE, 1))).await.expect("send");
    assert_eq!(within(b1.recv()).await.expect("recv"), big_message(LARGE, 1));
    assert_eq!(budget.used(), LARGE);

    // b2's large message waits: b2 stops reading, and is not at fault.
    let sender = tokio::spawn(async move {
        a2.send(&big_message(LARGE / 2, 2)).await.expect("send");
        a2
    });
    assert!(
        tokio::time::timeout(Duration::from_millis(200), b2.recv())
            .await
            .is_err()
    );
    assert!(b2.is_waiting_for_budget());

    // Small messages need no reservation; asking for the next one frees the pool.
    within(a1.send(b"small")).await.expect("send");
    assert_eq!(within(b1.recv()).await.expect("recv"), b"small");
    assert_eq!(within(b2.recv()).await.expect("recv"), big_message(LARGE / 2, 2));
    assert!(!b2.is_waiting_for_budget());

    // A granted message that stalls one byte short is dropped after the deadline.
    let mut a2 = within(sender).await.expect("sender");
    let mut partial = (LARGE as u32).to_be_bytes().to_vec();
    partial.resize(LARGE - 1, 0);
    for frame in partial.chunks(MAX_FRAME_PLAINTEXT) {
        within(a2.send_raw_frame(frame)).await.expect("send raw");
    }
    assert!(matches!(within(b2.recv()).await, Err(StreamError::SlowMessage(_))));
    assert_eq!(budget.used(), 0, "a dropped message frees its reservation");
}
