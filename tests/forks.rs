//! A fork across peers (spec/PROTOCOL.md §2.2 "Fork evidence"): a rogue
//! author gives entry 3a to node B and 3b to node C, then 4a to B. When B
//! relays 4a, C finds the fork instead of blaming B: both freeze the feed and
//! the B–C link stays up.

#[path = "common/fork.rs"]
mod fork;
#[path = "common/nodes.rs"]
mod nodes;

use std::path::Path;
use std::time::Duration;

use feedmesh::feed::{FeedId, Keypair};
use feedmesh::net::NetworkKey;
use feedmesh::node::Node;
use feedmesh::store::{Record, RedbStore, Store};
use feedmesh::sync::{ClockEntry, Message};
use nodes::{addr, make_dir, rogue_as, start};
use tokio::time::Instant;

/// Every wait in this test ends by this long.
const DEADLINE: Duration = Duration::from_secs(15);
/// The rogue author's key seed.
const ROGUE: u8 = 7;

/// Stores `records` in the store of the (stopped) node directory `dir`.
fn preload(dir: &Path, records: &[Record]) {
    let store = RedbStore::open(dir.join(feedmesh::node_dir::STORE_FILE)).expect("open store");
    store
        .append(&feedmesh::feed::verify_batch(records.to_vec()).expect("valid"))
        .expect("append");
}

/// Waits until `done` holds, polling.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn frozen(node: &Node, feed: &FeedId) -> bool {
    node.store().frozen_at(feed).expect("frozen_at") == Some(3)
}

/// Connects to `node` as the rogue author, claims its feed up to 4, waits
/// until the node wants it, and sends `record` (entry 4a).
async fn push_as_author(node: &Node, key: &NetworkKey, record: Record) {
    let keys = Keypair::from_seed([ROGUE; 32]);
    let feed = keys.feed_id();
    let mut stream = rogue_as(addr(node), key, &keys).await;
    let claim = vec![ClockEntry {
        feed,
        latest: 4,
        want: false,
        frozen: false,
        head: Some(record.0.hash()),
    }];
    stream
        .send(&Message::Clock { feeds: claim }.encode())
        .await
        .expect("send");
    tokio::time::timeout(DEADLINE, async {
        loop {
            let frame = stream.recv().await.expect("recv");
            if let Ok(Message::Clock { feeds }) = Message::decode(&frame)
                && feeds.iter().any(|line| line.feed == feed && line.want)
            {
                break;
            }
        }
    })
    .await
    .expect("the node wants the feed");
    let records = Message::Records { records: vec![record] };
    stream.send(&records.encode()).await.expect("send");
    // Keep the connection open until the node has the entry.
    until("B to store 4a", || {
        node.store().latest(&feed).expect("latest").is_some_and(|l| l >= 4)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_relayed_across_peers_is_proven_and_frozen_everywhere_without_dropping_the_link() {
    let root = tempfile::TempDir::new().expect("tempdir");
    let key = NetworkKey::generate().expect("key");
    let (dir_b, dir_c) = (make_dir(root.path(), "b", &key), make_dir(root.path(), "c", &key));
    let a = fork::branch(ROGUE, 4, 3, "a");
    let b = fork::branch(ROGUE, 3, 3, "b");
    let feed = a[0].0.author();
    // The rogue author gave 1, 2, 3a to B and 1, 2, 3b to C.
    preload(&dir_b, &a[..3]);
    preload(&dir_c, &b);
    let node_b = start(&dir_b, vec![]).await;
    let node_c = start(&dir_c, vec![addr(&node_b)]).await;
    until("B and C to connect", || {
        node_c.peers().iter().any(|p| p.id == node_b.id())
    })
    .await;

    push_as_author(&node_b, &key, a[3].clone()).await;
    until("both to hold the fork proof", || {
        frozen(&node_b, &feed) && frozen(&node_c, &feed)
    })
    .await;

    for node in [&node_b, &node_c] {
        let disconnects = node.disconnects();
        assert!(!disconnects.contains_key("invalid-entry"), "{disconnects:?}");
    }
    assert!(node_c.peers().iter().any(|p| p.id == node_b.id()), "the B–C link is up");
    node_b.shutdown().await;
    node_c.shutdown().await;
}
