//! A fork across peers (spec/PROTOCOL.md §2.2 "Fork evidence"): a rogue
//! author gives entry 3a to node B and 3b to node C (then, in one test, 4a
//! to B). C finds the fork by comparing heads in Clocks, or when B relays
//! 4a, instead of blaming B: both freeze the feed and the B–C link stays up.

use crate::common::fork;
use crate::common::nodes;

use std::path::Path;
use std::time::Duration;

use feedmesh::feed::{FeedId, Keypair};
use feedmesh::net::NetworkKey;
use feedmesh::node::Node;
use feedmesh::store::{Record, RedbStore, Store};
use feedmesh::sync::{ClockEntry, Message};
use nodes::{addr, eventually, make_dir, rogue_as, start};

/// How long a rogue connection waits for what the node sends it.
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
    eventually("B to store 4a", || {
        node.store().latest(&feed).expect("latest").is_some_and(|l| l >= 4)
    })
    .await;
}

/// Nodes B and C, connected, after the rogue author gave 1, 2, 3a to B and
/// 1, 2, 3b to C (and, with `relay`, 4a to B before C started, so that C
/// gets 4a from B); branch "a" up to 4a; the network key.
struct Forked {
    _root: tempfile::TempDir,
    key: NetworkKey,
    a: Vec<Record>,
    node_b: Node,
    node_c: Node,
}

async fn forked_pair(relay: bool) -> Forked {
    let root = tempfile::TempDir::new().expect("tempdir");
    let key = NetworkKey::generate().expect("key");
    let (dir_b, dir_c) = (make_dir(root.path(), "b", &key), make_dir(root.path(), "c", &key));
    let a = fork::branch(ROGUE, 4, 3, "a");
    preload(&dir_b, &a[..3]);
    preload(&dir_c, &fork::branch(ROGUE, 3, 3, "b"));
    let node_b = start(&dir_b, vec![]).await;
    if relay {
        push_as_author(&node_b, &key, a[3].clone()).await;
    }
    let node_c = start(&dir_c, vec![addr(&node_b)]).await;
    eventually("B and C to connect", || {
        node_c.peers().iter().any(|p| p.id == node_b.id())
    })
    .await;
    Forked {
        _root: root,
        key,
        a,
        node_b,
        node_c,
    }
}

impl Forked {
    fn feed(&self) -> FeedId {
        self.a[0].0.author()
    }

    /// Waits until both nodes hold the proof, checks that neither dropped
    /// the other for it and that the B–C link is up, and shuts both down.
    async fn assert_frozen_on_both_with_the_link_kept(self) {
        let feed = self.feed();
        eventually("both to hold the fork proof", || {
            frozen(&self.node_b, &feed) && frozen(&self.node_c, &feed)
        })
        .await;
        // C talks only to B: it closed no connection, nor had one closed.
        // B's only closed connections are the rogue author's or a newcomer's
        // leaving.
        let disconnects = self.node_c.disconnects();
        assert!(disconnects.is_empty(), "C: {disconnects:?}");
        let disconnects = self.node_b.disconnects();
        assert!(
            disconnects.keys().all(|reason| ["io", "peer-closed"].contains(reason)),
            "B: {disconnects:?}"
        );
        assert!(
            self.node_c.peers().iter().any(|p| p.id == self.node_b.id()),
            "the B–C link is up"
        );
        self.node_b.shutdown().await;
        self.node_c.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_relayed_across_peers_is_proven_and_frozen_everywhere_without_dropping_the_link() {
    forked_pair(true).await.assert_frozen_on_both_with_the_link_kept().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forked_heads_at_the_same_seq_are_found_by_comparing_clocks() {
    // No 4a: nothing is relayed, only the Clocks' head hashes differ.
    let forked = forked_pair(false).await;
    let feed = forked.feed();
    eventually("B to hold the fork proof", || frozen(&forked.node_b, &feed)).await;
    // A newcomer sees the feed marked frozen in B's Clock, and the proof.
    let mut stream = rogue_as(addr(&forked.node_b), &forked.key, &Keypair::from_seed([9; 32])).await;
    let (mut marked, mut proven) = (false, false);
    tokio::time::timeout(DEADLINE, async {
        while !(marked && proven) {
            match Message::decode(&stream.recv().await.expect("recv")) {
                Ok(Message::Clock { feeds }) => {
                    marked |= feeds
                        .iter()
                        .any(|l| l.feed == feed && l.frozen && !l.want && l.latest == 3);
                }
                Ok(Message::Fork { proof }) => proven |= proof.author() == feed,
                _ => {}
            }
        }
    })
    .await
    .expect("a frozen Clock line and the fork proof");
    drop(stream);
    forked.assert_frozen_on_both_with_the_link_kept().await;
}
