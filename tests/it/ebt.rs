//! One sender per feed between real in-process nodes over loopback
//! (spec/PROTOCOL.md §2.2 "Senders"): a full mesh receives each entry about
//! once, and a sender leaving does not stop replication.

use crate::common::nodes;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use feedmesh::feed::FeedId;
use feedmesh::net::NetworkKey;
use feedmesh::node::Node;
use nodes::{addr, make_dir};
use tempfile::TempDir;
use tokio::time::Instant;

/// Every wait in these tests ends by this long.
const DEADLINE: Duration = Duration::from_secs(30);

struct Net {
    _root: TempDir,
    key: NetworkKey,
    root: PathBuf,
}

fn net() -> Net {
    let root = tempfile::tempdir().expect("tempdir");
    let key = NetworkKey::generate().expect("key");
    Net {
        root: root.path().to_path_buf(),
        _root: root,
        key,
    }
}

impl Net {
    async fn start(&self, name: &str, peers: Vec<SocketAddr>) -> Node {
        let dir = self.root.join(name);
        if !dir.exists() {
            make_dir(&self.root, name, &self.key);
        }
        nodes::start(&dir, peers).await
    }
}

async fn wait(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < DEADLINE, "waited {DEADLINE:?} for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn received(node: &Node) -> u64 {
    node.traffic().values().map(|&(bytes_in, _)| bytes_in).sum()
}

async fn append(node: &Node, tag: &str, count: usize) {
    let payloads: Vec<Vec<u8>> = (0..count)
        .map(|i| {
            let mut payload = format!("{tag} {i}").into_bytes();
            payload.resize(200, b'.');
            payload
        })
        .collect();
    let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
    node.append_batch(&refs).await.expect("append");
}

/// Message bytes each of `n` fully connected nodes receives per entry it did
/// not write, when each appends `rounds` batches of 20 entries (mean).
async fn bytes_per_foreign_entry(n: usize, rounds: usize) -> f64 {
    let net = net();
    let mut nodes: Vec<Node> = Vec::new();
    for i in 0..n {
        let peers = nodes.iter().map(addr).collect();
        nodes.push(net.start(&format!("n{i}"), peers).await);
    }
    wait("the mesh", || nodes.iter().all(|node| node.peers().len() == n - 1)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before: Vec<u64> = nodes.iter().map(received).collect();
    let mut writers = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let node = node.clone();
        writers.push(tokio::spawn(async move {
            for round in 0..rounds {
                append(&node, &format!("{i}:{round}"), 20).await;
            }
        }));
    }
    for writer in writers {
        writer.await.expect("writer");
    }
    let expected: BTreeMap<FeedId, u64> = nodes.iter().map(|node| (node.id(), 20 * rounds as u64)).collect();
    wait("convergence", || {
        nodes.iter().all(|node| node.clock().expect("clock") == expected)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let foreign = (20 * rounds * (n - 1)) as f64;
    let total: f64 = nodes
        .iter()
        .zip(before)
        .map(|(node, before)| (received(node) - before) as f64 / foreign)
        .sum();
    for node in &nodes {
        node.shutdown().await;
    }
    total / n as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_mesh_receives_each_entry_about_once() {
    let pair = bytes_per_foreign_entry(2, 10).await;
    let mesh = bytes_per_foreign_entry(5, 10).await;
    let factor = mesh / pair;
    eprintln!("bytes per foreign entry: pair {pair:.1}, 5-node mesh {mesh:.1}; duplication factor {factor:.3}");
    assert!(factor <= 1.25, "duplication factor {factor}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_leaving_hands_its_feeds_over() {
    // A feeds two relays; C hears A's feed only through them.
    let net = net();
    let a = net.start("a", vec![]).await;
    let b = net.start("b", vec![addr(&a)]).await;
    let d = net.start("d", vec![addr(&a)]).await;
    let c = net.start("c", vec![addr(&b), addr(&d)]).await;
    append(&a, "first", 30).await;
    let held = |node: &Node, seq: u64| node.clock().expect("clock").get(&a.id()) == Some(&seq);
    wait("C to get A's feed", || held(&c, 30)).await;
    // Whichever relay C chose, each one leaving in turn does not stop it.
    b.shutdown().await;
    drop(b);
    append(&a, "second", 30).await;
    wait("C to get A's feed without B", || held(&c, 60)).await;
    let b = net.start("b", vec![addr(&a), addr(&c)]).await;
    wait("B back", || c.peers().len() == 2).await;
    d.shutdown().await;
    append(&a, "third", 30).await;
    wait("C to get A's feed without D", || held(&c, 90)).await;
    for node in [&a, &b, &c] {
        node.shutdown().await;
    }
}
