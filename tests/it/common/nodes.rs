//! In-process nodes on loopback for the integration tests: node directories
//! sharing a network key, and nodes started on OS-chosen ports.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use feedmesh::clock::WallClock;
use feedmesh::net::NetworkKey;
use feedmesh::node::{Node, NodeConfig};
use feedmesh::node_dir::NodeDir;
use feedmesh::sessions::Sessions;

/// Loopback with a port the OS chooses.
pub(crate) fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().expect("addr")
}

/// Creates the node directory `root/name` holding `key`.
pub(crate) fn make_dir(root: &Path, name: &str, key: &NetworkKey) -> PathBuf {
    let dir = root.join(name);
    NodeDir::create_with_network_key(&dir, Some(key)).expect("create node dir");
    dir
}

/// Starts the node of `dir` on loopback, dialing `peers`, with quick
/// redials; for the tests of the node alone (its session store folds what
/// it stores, and nothing writes through it).
pub(crate) async fn start(dir: &Path, peers: Vec<SocketAddr>) -> Node {
    start_sessions(dir, peers).await.node().clone()
}

/// [`start`] with the node's session store, to write and read through.
pub(crate) async fn start_sessions(dir: &Path, peers: Vec<SocketAddr>) -> Sessions {
    start_with_clock(dir, peers, WallClock::system()).await
}

/// [`start_sessions`] with the node reading wall-clock time from `wall_clock`.
pub(crate) async fn start_with_clock(dir: &Path, peers: Vec<SocketAddr>, wall_clock: WallClock) -> Sessions {
    let mut config = config(dir, peers);
    config.wall_clock = wall_clock;
    Sessions::start(config).await.expect("start node")
}

/// The configuration [`start`] uses: listening on loopback, dialing
/// `peers`, with quick redials.
pub(crate) fn config(dir: &Path, peers: Vec<SocketAddr>) -> NodeConfig {
    let mut config = NodeConfig::new(dir);
    config.listen = Some(localhost());
    config.peers = peers;
    config.reconnect_min = Duration::from_millis(20);
    config.reconnect_max = Duration::from_millis(300);
    config
}

/// Where `node` listens.
pub(crate) fn addr(node: &Node) -> SocketAddr {
    node.local_addr().expect("listening")
}

/// Opens an authenticated connection to `addr` as `keys`, holding the
/// network key: a peer that can then misbehave.
#[allow(dead_code)] // Not every test crate that includes this module uses it.
pub(crate) async fn rogue_as(
    addr: SocketAddr,
    key: &NetworkKey,
    keys: &feedmesh::feed::Keypair,
) -> feedmesh::net::SecureStream<tokio::net::TcpStream> {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    feedmesh::net::initiate(stream, key, keys, None, &feedmesh::net::HandshakeConfig::default())
        .await
        .expect("handshake")
}

/// Node directories sharing a fresh network key, in a temporary root that
/// lives as long as this value.
#[allow(dead_code)] // Not every test crate that includes this module uses it.
pub(crate) struct Net {
    _root: tempfile::TempDir,
    /// The network key.
    pub(crate) key: NetworkKey,
    /// The directories `n0`, `n1`, ...
    pub(crate) dirs: Vec<PathBuf>,
}

/// `n` node directories of one network ([`Net`]).
#[allow(dead_code)]
pub(crate) fn net(n: usize) -> Net {
    let root = tempfile::tempdir().expect("tempdir");
    let key = NetworkKey::generate().expect("key");
    let dirs = (0..n).map(|i| make_dir(root.path(), &format!("n{i}"), &key)).collect();
    Net { _root: root, key, dirs }
}

impl Net {
    /// The temporary root the directories are in.
    #[allow(dead_code)]
    pub(crate) fn root(&self) -> &Path {
        self._root.path()
    }
}

/// How long [`eventually`] waits.
const EVENTUALLY: Duration = Duration::from_secs(30);

/// Waits until `check` holds (polling), or fails saying `what` never did.
#[allow(dead_code)]
pub(crate) async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let began = tokio::time::Instant::now();
    while !check() {
        assert!(began.elapsed() < EVENTUALLY, "not in {EVENTUALLY:?}: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
