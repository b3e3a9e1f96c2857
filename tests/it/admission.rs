//! Connection admission (spec/PROTOCOL.md §3.5): sockets of an attacker
//! without the network key, held open and silent, do not keep honest peers
//! out of a node.

use crate::common::nodes;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use feedmesh::net::NetworkKey;
use feedmesh::node::Node;
use feedmesh::node_dir::NodeDir;
use feedmesh::sessions::Sessions;
use nodes::{addr, config, make_dir, start};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Every wait in these tests ends by this long.
const DEADLINE: Duration = Duration::from_secs(15);
/// Half-open sockets the attacker holds (more than the default connection cap).
const ATTACKERS: usize = 80;

/// Starts the victim node: default limits, but a handshake timeout far
/// beyond [`DEADLINE`], so that honest peers only get in if the silent
/// sockets do not hold them out (not because those sockets timed out).
async fn start_victim(dir: &Path) -> Node {
    let mut config = config(dir, Vec::new());
    config.handshake_timeout = Duration::from_secs(120);
    Sessions::start(config).await.expect("start victim").node().clone()
}

/// Opens [`ATTACKERS`] TCP sockets to `node` that never send a byte, and
/// waits until the node has accepted enough of them to have refused or
/// pushed out some (so they really take its slots).
async fn hold_silent_sockets(node: &Node) -> Vec<TcpStream> {
    let mut sockets = Vec::with_capacity(ATTACKERS);
    for _ in 0..ATTACKERS {
        sockets.push(TcpStream::connect(addr(node)).await.expect("connect"));
    }
    let started = Instant::now();
    while refused(node) < 16 {
        assert!(started.elapsed() < DEADLINE, "the node never accepted the sockets");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sockets
}

/// Sockets the node refused at a cap or pushed out of a handshake slot.
fn refused(node: &Node) -> u64 {
    let disconnects = node.disconnects();
    ["connection-cap", "handshake-slot"]
        .iter()
        .filter_map(|reason| disconnects.get(reason))
        .sum()
}

/// Waits until `node` holds entry `seq` of `from`'s feed.
async fn wait_for_entry(node: &Node, from: &Node, seq: u64) {
    let started = Instant::now();
    while node.clock().expect("clock").get(&from.id()).copied().unwrap_or(0) < seq {
        assert!(
            started.elapsed() < DEADLINE,
            "no entry {seq} of the victim's feed in {DEADLINE:?} (peers of the victim: {:?}, disconnects: {:?})",
            from.peers().len(),
            from.disconnects()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn dirs(n: usize) -> (tempfile::TempDir, Vec<std::path::PathBuf>) {
    let root = tempfile::tempdir().expect("tempdir");
    let key = NetworkKey::generate().expect("key");
    let dirs = (0..n).map(|i| make_dir(root.path(), &format!("n{i}"), &key)).collect();
    (root, dirs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newcomer_gets_in_while_keyless_sockets_are_held_open() {
    let (_root, dirs) = dirs(2);
    let victim = start_victim(&dirs[0]).await;
    let sockets = hold_silent_sockets(&victim).await;
    let victim_addr: SocketAddr = addr(&victim);
    let newcomer = start(&dirs[1], vec![victim_addr]).await;
    victim.append(b"hello").await.expect("append");
    wait_for_entry(&newcomer, &victim, 1).await;
    assert_eq!(sockets.len(), ATTACKERS, "the attacker still holds its sockets");
    newcomer.shutdown().await;
    victim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_peer_rejoins_while_keyless_sockets_are_held_open() {
    let (_root, dirs) = dirs(2);
    let victim = start_victim(&dirs[0]).await;
    let peer = start(&dirs[1], vec![addr(&victim)]).await;
    victim.append(b"before").await.expect("append");
    wait_for_entry(&peer, &victim, 1).await;
    peer.shutdown().await;
    drop(peer);

    let sockets = hold_silent_sockets(&victim).await;
    let peer = start(&dirs[1], vec![addr(&victim)]).await;
    victim.append(b"after").await.expect("append");
    wait_for_entry(&peer, &victim, 2).await;
    assert_eq!(sockets.len(), ATTACKERS, "the attacker still holds its sockets");
    peer.shutdown().await;
    victim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_admins_a_member_gets_in_while_key_holders_fill_the_connection_cap() {
    let (_root, dirs) = dirs(4);
    let admin = NodeDir::open(&dirs[0]).expect("open").feed_id();
    for dir in &dirs {
        NodeDir::open(dir).expect("open").set_admins(&[admin]).expect("admins");
    }
    let mut config = config(&dirs[0], Vec::new());
    config.max_connections = 1;
    let sessions = Sessions::start(config).await.expect("start victim");
    let victim = sessions.node().clone();
    let member = NodeDir::open(&dirs[3]).expect("open").feed_id();
    sessions.add_member(member, 1).await.expect("admit");

    // Two holders of the network key that are not members: the first takes
    // the one established slot, the second is refused at the cap.
    let holder = start(&dirs[1], vec![addr(&victim)]).await;
    let started = Instant::now();
    while !victim.peers().iter().any(|p| p.id == holder.id()) {
        assert!(started.elapsed() < DEADLINE, "the first key holder never got in");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let refused_holder = start(&dirs[2], vec![addr(&victim)]).await;
    while victim.disconnects().get("connection-cap").copied().unwrap_or(0) == 0 {
        assert!(started.elapsed() < DEADLINE, "the second key holder was never refused");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The member gets a reserved slot and replicates the admin feed.
    let member_node = start(&dirs[3], vec![addr(&victim)]).await;
    assert_eq!(member_node.id(), member);
    wait_for_entry(&member_node, &victim, 1).await;
    let peers: Vec<_> = victim.peers().iter().map(|p| p.id).collect();
    assert!(peers.contains(&member) && peers.contains(&holder.id()), "{peers:?}");
    assert!(
        !peers.contains(&refused_holder.id()),
        "the cap let a non-member in: {peers:?}"
    );
    for node in [member_node, refused_holder, holder, victim] {
        node.shutdown().await;
    }
}
