//! Nodes replicating over real loopback sockets (ports chosen by the OS),
//! in-process: line, star and mesh topologies, a late joiner under load,
//! acknowledged writes, and a wrong network key.

use crate::common::hostile;
use crate::common::nodes;

use std::collections::BTreeMap;
use std::time::Duration;

use feedmesh::feed::{FeedId, MAX_PAYLOAD, record_len};
use feedmesh::net::NetworkKey;
use feedmesh::node::{AckTimeout, Node, NodeConfig, NodeError};
use feedmesh::sessions::Sessions;
use feedmesh::store::Store;
use feedmesh::sync::MAX_FRAME;
use hostile::Rogue;
use nodes::{addr, localhost, make_dir, net, start};
use tokio::time::Instant;

/// Every wait in these tests ends by this long.
const DEADLINE: Duration = Duration::from_secs(15);

/// Every record of `feed` in `store`: entry bytes and payload.
fn records(store: &dyn Store, feed: &FeedId) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    store
        .range(feed, 1, u64::MAX, usize::MAX)
        .expect("range")
        .into_iter()
        .map(|(entry, payload)| (entry.as_bytes().to_vec(), payload))
        .collect()
}

/// Waits until every node's clock equals `expected`, then checks that all
/// hold byte-identical records.
async fn converge(nodes: &[&Node], expected: &BTreeMap<FeedId, u64>) {
    let start = Instant::now();
    loop {
        let clocks: Vec<_> = nodes.iter().map(|n| n.clock().expect("clock")).collect();
        if clocks.iter().all(|c| c == expected) {
            break;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "no convergence in {DEADLINE:?}: expected {expected:?}, got {clocks:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reference = nodes[0].store();
    for node in &nodes[1..] {
        let store = node.store();
        for feed in expected.keys() {
            assert_eq!(records(&*reference, feed), records(&*store, feed), "feed {feed}");
        }
    }
}

async fn write(node: &Node, count: usize, tag: &str) {
    for i in 0..count {
        node.append(format!("{tag} {i}").as_bytes()).await.expect("append");
    }
}

async fn shutdown(nodes: &[&Node]) {
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_in_a_line_converge() {
    let net = net(3);
    let a = start(&net.dirs[0], vec![]).await;
    let b = start(&net.dirs[1], vec![addr(&a)]).await;
    let c = start(&net.dirs[2], vec![addr(&b)]).await;
    write(&a, 20, "a").await;
    let batch: Vec<Vec<u8>> = (0..300).map(|i| vec![i as u8; 100 + i]).collect();
    let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
    a.append_batch(&refs).await.expect("batch");
    write(&c, 5, "c").await;
    let expected = BTreeMap::from([(a.id(), 320), (c.id(), 5)]);
    converge(&[&a, &b, &c], &expected).await;
    // A and C never connected: everything went through B.
    assert!(a.peers().iter().all(|p| p.id != c.id()));
    assert_eq!(b.peers().len(), 2);
    shutdown(&[&a, &b, &c]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn star_and_full_mesh_converge_with_several_writers() {
    // Star: a hub and three leaves dialing it.
    let net1 = net(4);
    let hub = start(&net1.dirs[0], vec![]).await;
    let mut leaves = Vec::new();
    for dir in &net1.dirs[1..] {
        leaves.push(start(dir, vec![addr(&hub)]).await);
    }
    let mut writers = Vec::new();
    for (i, node) in leaves.iter().chain(std::iter::once(&hub)).enumerate() {
        let node = node.clone();
        writers.push(tokio::spawn(async move { write(&node, 30, &format!("w{i}")).await }));
    }
    for writer in writers {
        writer.await.expect("writer");
    }
    let all: Vec<&Node> = std::iter::once(&hub).chain(leaves.iter()).collect();
    let expected: BTreeMap<FeedId, u64> = all.iter().map(|n| (n.id(), 30)).collect();
    converge(&all, &expected).await;
    shutdown(&all).await;

    // Full mesh: every node dials every earlier one.
    let net2 = net(4);
    let mut mesh: Vec<Node> = Vec::new();
    for dir in &net2.dirs {
        let peers = mesh.iter().map(addr).collect();
        mesh.push(start(dir, peers).await);
    }
    let mut writers = Vec::new();
    for (i, node) in mesh.iter().enumerate() {
        let node = node.clone();
        writers.push(tokio::spawn(async move { write(&node, 25, &format!("m{i}")).await }));
    }
    for writer in writers {
        writer.await.expect("writer");
    }
    let all: Vec<&Node> = mesh.iter().collect();
    let expected: BTreeMap<FeedId, u64> = all.iter().map(|n| (n.id(), 25)).collect();
    converge(&all, &expected).await;
    for node in &all {
        assert_eq!(node.peers().len(), 3, "one connection per peer");
    }
    shutdown(&all).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_joiner_under_load_gets_everything() {
    let net = net(3);
    let a = start(&net.dirs[0], vec![]).await;
    let b = start(&net.dirs[1], vec![addr(&a)]).await;
    let writer = {
        let a = a.clone();
        tokio::spawn(async move {
            let mut written = 0u64;
            let start = Instant::now();
            while start.elapsed() < Duration::from_millis(1500) {
                let batch: Vec<Vec<u8>> = (0..50).map(|i| format!("load {written} {i}").into_bytes()).collect();
                let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
                written += a.append_batch(&refs).await.expect("batch").len() as u64;
            }
            written
        })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    let c = start(&net.dirs[2], vec![addr(&b)]).await;
    let mut seen = c.subscribe();
    let written = writer.await.expect("writer");
    assert!(written > 100, "wrote {written}");
    converge(&[&a, &b, &c], &BTreeMap::from([(a.id(), written)])).await;
    // The subscription saw entries in order, without gaps, until it lagged.
    let (mut last, mut received) = (0, 0);
    loop {
        match seen.try_recv() {
            Ok(entry) => {
                assert_eq!(entry.author(), a.id());
                if last > 0 {
                    assert_eq!(entry.seq(), last + 1);
                }
                last = entry.seq();
                received += 1;
            }
            Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => last = 0,
            Err(_) => break,
        }
    }
    assert!(received > 0, "the subscriber saw entries");
    assert_eq!(last, written, "the subscriber saw the last entry");
    shutdown(&[&a, &b, &c]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_wait_for_peers_and_time_out() {
    let net = net(2);
    let a = start(&net.dirs[0], vec![]).await;
    let b = start(&net.dirs[1], vec![addr(&a)]).await;
    let entry = a.append(b"ack me").await.expect("append");
    let acked = a
        .wait_for_acks(entry.seq(), 1, DEADLINE)
        .await
        .expect("one peer acknowledges");
    assert_eq!(acked, 1);
    assert_eq!(b.store().latest(&a.id()).expect("latest"), Some(entry.seq()));
    let peers = a.peers();
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].id, b.id());
    assert_eq!(peers[0].clock.get(&a.id()), Some(&entry.seq()));

    // Two acknowledgements cannot come: there is one peer.
    let started = Instant::now();
    let error = a
        .wait_for_acks(entry.seq(), 2, Duration::from_millis(300))
        .await
        .expect_err("times out");
    assert_eq!(error, AckTimeout { acked: 1, wanted: 2 });
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(started.elapsed() < Duration::from_secs(3));

    // With the peer gone, a new entry is acknowledged by no one.
    b.shutdown().await;
    let entry = a.append(b"alone").await.expect("append");
    let error = a
        .wait_for_acks(entry.seq(), 1, Duration::from_millis(300))
        .await
        .expect_err("times out");
    assert_eq!(error, AckTimeout { acked: 0, wanted: 1 });
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_the_wrong_network_key_is_refused_and_gets_nothing() {
    let net = net(1);
    let root = tempfile::tempdir().expect("tempdir");
    let other_key = NetworkKey::generate().expect("key");
    assert_ne!(other_key, net.key);
    let outsider_dir = make_dir(root.path(), "outsider", &other_key);
    let a = start(&net.dirs[0], vec![]).await;
    write(&a, 5, "secret").await;
    let outsider = start(&outsider_dir, vec![addr(&a)]).await;
    write(&outsider, 2, "intruder").await;
    let start_time = Instant::now();
    while !a.disconnects().keys().any(|k| k.starts_with("handshake:")) {
        assert!(start_time.elapsed() < DEADLINE, "the handshake never failed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(a.peers().is_empty());
    assert!(outsider.peers().is_empty());
    assert_eq!(outsider.clock().expect("clock"), BTreeMap::from([(outsider.id(), 2)]));
    assert_eq!(a.clock().expect("clock"), BTreeMap::from([(a.id(), 5)]));
    shutdown(&[&a, &outsider]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_catches_up_with_what_it_missed() {
    let net = net(2);
    let a = start(&net.dirs[0], vec![]).await;
    let b = start(&net.dirs[1], vec![addr(&a)]).await;
    write(&a, 10, "before").await;
    converge(&[&a, &b], &BTreeMap::from([(a.id(), 10)])).await;
    b.shutdown().await;
    drop(b);
    write(&a, 10, "while away").await;
    let b = start(&net.dirs[1], vec![addr(&a)]).await;
    write(&b, 3, "back").await;
    converge(&[&a, &b], &BTreeMap::from([(a.id(), 20), (b.id(), 3)])).await;
    shutdown(&[&a, &b]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_dialing_each_other_keep_one_connection() {
    let net = net(2);
    // Bind both listeners first, then start nodes that dial each other.
    let a_listener = std::net::TcpListener::bind(localhost()).expect("bind");
    let b_listener = std::net::TcpListener::bind(localhost()).expect("bind");
    let (a_addr, b_addr) = (
        a_listener.local_addr().expect("addr"),
        b_listener.local_addr().expect("addr"),
    );
    drop((a_listener, b_listener));
    let mut config_a = NodeConfig::new(&net.dirs[0]);
    config_a.listen = Some(a_addr);
    config_a.peers = vec![b_addr];
    config_a.reconnect_min = Duration::from_millis(20);
    config_a.reconnect_max = Duration::from_millis(300);
    let mut config_b = config_a.clone();
    config_b.dir = net.dirs[1].clone();
    config_b.listen = Some(b_addr);
    config_b.peers = vec![a_addr];
    let (a, b) = tokio::join!(Sessions::start(config_a), Sessions::start(config_b));
    let (a, b) = (a.expect("start a").node().clone(), b.expect("start b").node().clone());
    write(&a, 5, "a").await;
    write(&b, 5, "b").await;
    converge(&[&a, &b], &BTreeMap::from([(a.id(), 5), (b.id(), 5)])).await;
    // Give duplicate connections time to be resolved, then check there is one.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(a.peers().len(), 1);
    assert_eq!(b.peers().len(), 1);
    let entry = a.append(b"still connected").await.expect("append");
    a.wait_for_acks(entry.seq(), 1, DEADLINE).await.expect("acknowledged");
    shutdown(&[&a, &b]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_peers_are_cut_off_while_honest_ones_converge() {
    use feedmesh::feed::{NewEntry, Timestamp, sign};
    use feedmesh::sync::Message;

    let net = net(2);
    let a = start(&net.dirs[0], vec![]).await;
    let b = start(&net.dirs[1], vec![addr(&a)]).await;
    write(&a, 5, "a").await;

    // Garbage instead of a message.
    let mut garbage = Rogue::connect(addr(&a), &net.key).await;
    garbage.stream.send(b"\xff\x00 not a message").await.expect("send");
    garbage.until_closed().await;

    // Records of a feed nobody asked for.
    let mut pushy = Rogue::connect(addr(&a), &net.key).await;
    let keys = pushy.keys.clone();
    let record = sign(
        &keys,
        &NewEntry {
            seq: 1,
            prev: None,
            skip: None,
            timestamp: Timestamp::new(1_767_225_600_000, 0),
            payload: b"unasked",
        },
    )
    .expect("sign");
    let (entry, payload) = record.into_parts();
    let message = Message::Records {
        records: vec![(entry, payload)],
    };
    pushy.send(&message).await;
    pushy.until_closed().await;

    let disconnects = a.disconnects();
    assert_eq!(disconnects.get("malformed"), Some(&1), "{disconnects:?}");
    assert_eq!(disconnects.get("unrequested"), Some(&1), "{disconnects:?}");
    assert_eq!(
        a.store().latest(&keys.feed_id()).expect("latest"),
        None,
        "nothing stored"
    );

    // The honest peer is still connected and replicating.
    write(&b, 2, "b").await;
    write(&a, 2, "a more").await;
    converge(&[&a, &b], &BTreeMap::from([(a.id(), 7), (b.id(), 2)])).await;
    assert_eq!(a.peers().len(), 1);
    shutdown(&[&a, &b]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_cap_refuses_extra_peers() {
    let net = net(3);
    let mut config = NodeConfig::new(&net.dirs[0]);
    config.listen = Some(localhost());
    config.max_connections = 1;
    let hub = Sessions::start(config).await.expect("start").node().clone();
    let first = start(&net.dirs[1], vec![addr(&hub)]).await;
    let started = Instant::now();
    while hub.peers().is_empty() {
        assert!(started.elapsed() < DEADLINE, "first peer never connected");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let second = start(&net.dirs[2], vec![addr(&hub)]).await;
    while !hub.disconnects().contains_key("connection-cap") {
        assert!(started.elapsed() < DEADLINE, "the cap never refused anyone");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let peers = hub.peers();
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].id, first.id());
    shutdown(&[&hub, &first, &second]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_fetches_a_verified_range_from_one_peer() {
    let net = net(2);
    let a = start(&net.dirs[0], vec![]).await;
    let batch: Vec<Vec<u8>> = (0..600).map(|i| format!("a {i}").into_bytes()).collect();
    let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
    a.append_batch(&refs).await.expect("batch");
    let b = start(&net.dirs[1], vec![addr(&a)]).await;
    let start_wait = Instant::now();
    while !b.peers().iter().any(|p| p.id == a.id()) {
        assert!(start_wait.elapsed() < DEADLINE, "B never connected to A");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let fetched = b.fetch_range(a.id(), a.id(), 500, 520, DEADLINE).await.expect("fetch");
    let expected = a.store().range(&a.id(), 500, 520, usize::MAX).expect("range");
    assert_eq!(fetched, expected);
    assert!(fetched.iter().all(|(_, payload)| payload.is_some()));
    // Past the end of A's feed: what A holds, then nothing.
    let tail = b.fetch_range(a.id(), a.id(), 595, 700, DEADLINE).await.expect("fetch");
    assert_eq!(
        tail.iter().map(|(e, _)| e.seq()).collect::<Vec<_>>(),
        (595..=600).collect::<Vec<_>>()
    );
    let none = b.fetch_range(a.id(), a.id(), 601, 700, DEADLINE).await.expect("fetch");
    assert!(none.is_empty());
    // Only from a connected peer.
    let stranger = FeedId([7; 32]);
    assert!(matches!(
        b.fetch_range(stranger, a.id(), 1, 2, DEADLINE).await,
        Err(NodeError::NotConnected(peer)) if peer == stranger
    ));
    shutdown(&[&a, &b]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_largest_payloads_replicate_and_fetch_one_message_at_a_time() {
    let net = net(2);
    let a = start(&net.dirs[0], vec![]).await;
    // Small entries first (the sender's chunk grows), then entries with the
    // largest payloads: one read must still hold one message within the
    // connection's outbox share, not a chunk of a thousand megabyte records.
    let small: Vec<Vec<u8>> = (0..300).map(|i| format!("small {i}").into_bytes()).collect();
    a.append_batch(&small.iter().map(Vec::as_slice).collect::<Vec<_>>())
        .await
        .expect("small");
    let large: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; MAX_PAYLOAD as usize]).collect();
    for payload in &large {
        a.append(payload).await.expect("large");
    }
    let b = start(&net.dirs[1], vec![addr(&a)]).await;
    converge(&[&a, &b], &a.clock().expect("clock")).await;

    // A fetch across them is cut to what one connection's share of the
    // outbox holds (about 1.8 MiB by default: one megabyte entry), and goes
    // on from there.
    let share = a.outbox_share();
    let first = b.fetch_range(a.id(), a.id(), 299, 310, DEADLINE).await.expect("fetch");
    let seqs: Vec<u64> = first.iter().map(|(e, _)| e.seq()).collect();
    assert_eq!(
        seqs,
        vec![299, 300, 301],
        "two small and the one large that the share holds"
    );
    let size: usize = first.iter().map(|(e, p)| record_len(e, p.as_deref())).sum();
    assert!(size <= share.min(MAX_FRAME), "{size}");
    let rest = b.fetch_range(a.id(), a.id(), 302, 310, DEADLINE).await.expect("fetch");
    assert_eq!(rest.iter().map(|(e, _)| e.seq()).collect::<Vec<_>>(), vec![302]);
    assert_eq!(rest[0].1.as_deref(), Some(&large[1][..]));
    shutdown(&[&a, &b]).await;
}
