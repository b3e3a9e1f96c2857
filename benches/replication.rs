//! Replication benchmark: the duplication factor of a full mesh.
//!
//! Real in-process nodes over loopback TCP. Every node of a 5-node full mesh
//! appends `N` entries at once; each node's received message bytes
//! ([`Node::traffic`], summed over its peers, counted from when the mesh is
//! connected) are divided by the entries it did not write, averaged over the
//! nodes, and divided by the same figure for a 2-node pair. 1.0 means every
//! node receives each entry once, as in a pair; the flood (every peer sends
//! every entry) would be about 4 in a 5-node mesh. The received bytes
//! include the Clock lines (acknowledgements), which a mesh has more of.
//!
//! Run: `cargo bench --bench replication` (add `-- --quick` for a short run).
//! Each phase is bounded by [`DEADLINE`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use feedmesh::feed::FeedId;
use feedmesh::net::NetworkKey;
use feedmesh::node::{Node, NodeConfig};
use feedmesh::node_dir::NodeDir;

/// Each phase (connecting, converging) gives up after this long.
const DEADLINE: Duration = Duration::from_secs(120);
/// Payload bytes per entry.
const PAYLOAD: usize = 200;

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let entries = if quick { 300 } else { 2_000 };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        for batch in [1, 50] {
            let pair = bytes_per_foreign_entry(2, entries, batch).await;
            let mesh = bytes_per_foreign_entry(5, entries, batch).await;
            println!(
                "{entries} entries per node of {PAYLOAD} B, appended {}: bytes received per foreign entry: \
                 2-node pair {pair:.1}, 5-node full mesh {mesh:.1}; duplication factor {:.3}",
                if batch == 1 {
                    "one at a time".to_string()
                } else {
                    format!("in batches of {batch}")
                },
                mesh / pair
            );
        }
    });
}

/// Starts `n` fully connected nodes, lets each append `entries` entries (in
/// batches of `batch`), waits until all hold everything, and returns the
/// message bytes each node received per entry it did not write (mean).
async fn bytes_per_foreign_entry(n: usize, entries: usize, batch: usize) -> f64 {
    let root = tempfile::tempdir().expect("tempdir");
    let key = NetworkKey::generate().expect("network key");
    let mut nodes: Vec<Node> = Vec::new();
    for i in 0..n {
        let dir = make_dir(root.path(), &format!("n{i}"), &key);
        let peers = nodes.iter().map(|node| node.local_addr().expect("listening")).collect();
        nodes.push(start(&dir, peers).await);
    }
    wait("the mesh to connect", || {
        nodes.iter().all(|node| node.peers().len() == n - 1)
    })
    .await;
    // Let the first Clocks (and any duplicate connection) settle.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before: Vec<u64> = nodes.iter().map(received).collect();
    let started = Instant::now();
    let mut writers = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let node = node.clone();
        writers.push(tokio::spawn(async move {
            let mut written = 0;
            while written < entries {
                let count = batch.min(entries - written);
                let payloads: Vec<Vec<u8>> = (0..count)
                    .map(|k| {
                        let mut payload = format!("node {i} entry {}", written + k).into_bytes();
                        payload.resize(PAYLOAD, b'.');
                        payload
                    })
                    .collect();
                let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
                node.append_batch(&refs).await.expect("append");
                written += count;
            }
        }));
    }
    for writer in writers {
        writer.await.expect("writer");
    }
    let expected: BTreeMap<FeedId, u64> = nodes.iter().map(|node| (node.id(), entries as u64)).collect();
    wait("convergence", || {
        nodes.iter().all(|node| node.clock().expect("clock") == expected)
    })
    .await;
    // Let the last acknowledgements arrive.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let elapsed = started.elapsed();
    let foreign = (entries * (n - 1)) as f64;
    let per_entry: Vec<f64> = nodes
        .iter()
        .zip(&before)
        .map(|(node, &before)| (received(node) - before) as f64 / foreign)
        .collect();
    eprintln!(
        "  {n} nodes, batches of {batch}: converged in {elapsed:.2?}; bytes per foreign entry per node: {}",
        per_entry
            .iter()
            .map(|b| format!("{b:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for node in &nodes {
        node.shutdown().await;
    }
    per_entry.iter().sum::<f64>() / n as f64
}

/// Message bytes `node` received from all its peers.
fn received(node: &Node) -> u64 {
    node.traffic().values().map(|&(bytes_in, _)| bytes_in).sum()
}

async fn wait(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < DEADLINE, "waited {DEADLINE:?} for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn make_dir(root: &Path, name: &str, key: &NetworkKey) -> PathBuf {
    let dir = root.join(name);
    NodeDir::create_with_network_key(&dir, Some(key)).expect("create node dir");
    dir
}

async fn start(dir: &Path, peers: Vec<SocketAddr>) -> Node {
    let mut config = NodeConfig::new(dir);
    config.listen = Some("127.0.0.1:0".parse().expect("addr"));
    config.peers = peers;
    config.reconnect_min = Duration::from_millis(20);
    config.reconnect_max = Duration::from_millis(300);
    Node::start(config).await.expect("start node")
}
