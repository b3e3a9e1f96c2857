//! A running node: its store and feed writer, a listener, dialers that
//! reconnect with backoff, and one driver task per connected peer
//! ([`crate::net::run_connection`]). The embedded API of feedmesh.
//!
//! A node runs an [`Application`] that folds what it stores and answers
//! who is a member; [`Node::start`] takes its constructor. The session
//! store is the application feedmesh ships, and
//! [`Sessions::start`](crate::sessions::Sessions::start) starts a node
//! with it.
//!
//! ```no_run
//! # async fn demo(node: feedmesh::node::Node) -> Result<(), Box<dyn std::error::Error>> {
//! let entry = node.append(b"hello").await?;
//! node.wait_for_acks(entry.seq(), 1, std::time::Duration::from_secs(5)).await?;
//! node.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # Connections
//!
//! - Inbound sockets first take a handshake slot (spec/PROTOCOL.md §3.5):
//!   at most [`NodeConfig::max_handshakes`] unfinished handshakes, at most
//!   [`NodeConfig::max_handshakes_per_addr`] from one IP address; a newcomer
//!   pushes out the oldest unfinished handshake of its own address, or of
//!   the busiest address when all slots are taken. Each handshake gets
//!   [`NodeConfig::handshake_timeout`].
//! - Once authenticated, an inbound peer takes one of
//!   [`NodeConfig::max_connections`] established slots (one more is closed
//!   at once), except that with admins an admin or admitted member may use
//!   one of [`RESERVED_MEMBER_CONNECTIONS`] more. Outgoing dials (configured
//!   peers) take neither kind of slot.
//! - Each configured peer address has a dialer that redials forever (until
//!   shutdown) with exponential backoff between
//!   [`NodeConfig::reconnect_min`] and [`NodeConfig::reconnect_max`], each
//!   delay drawn uniformly from its upper half (jitter from a generator
//!   seeded once from the OS, or from [`NodeConfig::jitter_seed`]). The
//!   backoff restarts after a connection that lasted [`STABLE_CONNECTION`].
//!   While the node at that address (known after the first handshake) is
//!   connected, by either direction, the dialer waits.
//! - One connection per peer id. When a second one authenticates:
//!   if the two were opened in opposite directions, the one dialed by the
//!   node with the smaller feed id is kept (both sides reach the same
//!   answer); if both were dialed by the same side, the newer replaces the
//!   older (the dialer only redials once it saw its connection end, so the
//!   older one is stale).

mod application;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, broadcast, mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::clock::{WallClock, system_time_ms};
use crate::feed::Record;
use crate::feed::{Entry, FeedId, ForkProof, Keypair, Verified};
use crate::net::{
    BoxConnection, BufferBudget, Closed, DEFAULT_BUFFER_BUDGET, DEFAULT_MAX_HANDSHAKES,
    DEFAULT_MAX_HANDSHAKES_PER_ADDR, DEFAULT_MESSAGE_DEADLINE, FetchCommand, HandshakeConfig, HandshakeError,
    HandshakeSlots, Host, Listener, LocalEvent, MAX_MESSAGE, MIN_OUTBOX_SHARE, Network, NetworkKey, SecureStream,
    TcpNetwork, Traffic, initiate, respond, run_connection,
};
use crate::node_dir::{NodeDir, NodeDirError};
use crate::readiness::{AdminHeard, DEFAULT_READY_ADMIN_WITHIN_MS, Inputs, Readiness, assess};
use crate::rng::SplitMix64;
use crate::store::{AppendReport, FeedClock, Store, StoreError};
use crate::sync::{
    Admission, DEFAULT_FEED_BUDGET, FetchError, MAX_FEEDS_PER_PEER, MAX_FETCHES_PER_PEER, ReplicationScheduler,
};
use crate::writer::{FeedWriter, WriteError};

pub use application::{Application, Startup};

/// Default [`NodeConfig::outbox_budget`]: 128 MiB, about 1.8 MiB a
/// connection at the default connection limits.
pub const DEFAULT_OUTBOX_BUDGET: usize = 128 * 1024 * 1024;
/// Default [`NodeConfig::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 64;
/// Established inbound connections allowed over
/// [`NodeConfig::max_connections`] for admins and admitted members (with
/// admins), so that a full node still admits the network's own nodes.
pub const RESERVED_MEMBER_CONNECTIONS: usize = 8;
/// Default [`NodeConfig::reconnect_min`].
pub const DEFAULT_RECONNECT_MIN: Duration = Duration::from_millis(100);
/// Default [`NodeConfig::reconnect_max`].
pub const DEFAULT_RECONNECT_MAX: Duration = Duration::from_secs(10);
/// A connection that lasted this long resets its dialer's backoff.
pub const STABLE_CONNECTION: Duration = Duration::from_secs(1);
/// Time allowed to open a TCP connection to a peer.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Capacity of the channel of local events (stored heads, forks) that every
/// connection reads; a connection that lags resynchronises from the store.
pub const LOCAL_EVENTS_CAPACITY: usize = 1024;
/// Capacity of the channel of [`Node::subscribe`].
pub const SUBSCRIBE_CAPACITY: usize = 4096;
/// Time [`Node::shutdown`] gives tasks to finish before aborting them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// How long a feed's sender may leave the node behind on that feed without
/// delivering any of it before the node wants it from another peer (see
/// [`ReplicationScheduler`]).
pub const SENDER_STALL_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a received entry stays stored but not yet durable (it is
/// flushed with the next local append, or by the periodic sync).
pub const SYNC_INTERVAL: Duration = Duration::from_millis(10);
/// How often the node ticks its application ([`Application::tick`]).
const APPLICATION_TICK: Duration = Duration::from_secs(1);
/// Default [`NodeConfig::snapshot_interval`]: 5 minutes.
pub const DEFAULT_SNAPSHOT_INTERVAL: Duration = Duration::from_secs(300);

/// How to run a node. Every field has a default except `dir`.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The node directory (see [`crate::node_dir`]); it must hold a network key.
    pub dir: PathBuf,
    /// Address to accept peers on (port 0: chosen by the OS, see
    /// [`Node::local_addr`]); `None`: accept no one, only dial. Default `None`.
    pub listen: Option<SocketAddr>,
    /// Peers to dial and keep connected (redialled forever). Default none.
    pub peers: Vec<SocketAddr>,
    /// Most established inbound connections at once (default
    /// [`DEFAULT_MAX_CONNECTIONS`]); at least 1. Unfinished handshakes do
    /// not count; see [`RESERVED_MEMBER_CONNECTIONS`].
    pub max_connections: usize,
    /// In an open network (no admins), how many feeds the node takes from
    /// peers before it takes only its connected peers' own feeds (default
    /// [`DEFAULT_FEED_BUDGET`]; see [`Admission::Open`]). Ignored with
    /// admins, where only the admins' and members' feeds are taken.
    pub max_feeds: usize,
    /// Bytes of large incoming messages all connections together may hold
    /// while they arrive (default [`DEFAULT_BUFFER_BUDGET`], 64 MiB; at
    /// least [`MAX_MESSAGE`]). A connection whose message does not fit what
    /// is free is not read until it does (spec/PROTOCOL.md §2.2 "Memory per
    /// node"); see [`BufferBudget`].
    pub buffer_budget: usize,
    /// Bytes of encoded messages all connections together may hold waiting
    /// for their sockets (default [`DEFAULT_OUTBOX_BUDGET`], 128 MiB): each
    /// connection gets an equal share of it over the connections the node
    /// may have (`max_connections` + [`RESERVED_MEMBER_CONNECTIONS`] + the
    /// configured peers), at least [`MIN_OUTBOX_SHARE`]
    /// ([`Node::outbox_share`]; spec/PROTOCOL.md §2.2 "Memory per node").
    pub outbox_budget: usize,
    /// How long a large message has, once its share of the buffer budget is
    /// granted, to arrive whole before the connection is dropped
    /// (`slow-message`; default [`DEFAULT_MESSAGE_DEADLINE`], 30 s).
    pub message_deadline: Duration,
    /// Most unfinished inbound handshakes at once (default
    /// [`DEFAULT_MAX_HANDSHAKES`]); at least 1.
    pub max_handshakes: usize,
    /// Most unfinished inbound handshakes from one IP address (default
    /// [`DEFAULT_MAX_HANDSHAKES_PER_ADDR`]); at least 1.
    pub max_handshakes_per_addr: usize,
    /// With admins, how recently an admin feed must have been heard from
    /// for [`Node::readiness`] (default 5 minutes,
    /// [`DEFAULT_READY_ADMIN_WITHIN_MS`]).
    pub ready_admin_within: Duration,
    /// Time allowed for a handshake, each direction (default 5 s).
    pub handshake_timeout: Duration,
    /// First reconnect delay (default [`DEFAULT_RECONNECT_MIN`], 100 ms).
    pub reconnect_min: Duration,
    /// Largest reconnect delay (default [`DEFAULT_RECONNECT_MAX`], 10 s).
    pub reconnect_max: Duration,
    /// Seed of the reconnect jitter; `None` (the default): drawn from the
    /// OS. Set it for reproducible runs (simulations).
    pub jitter_seed: Option<u64>,
    /// Where the node reads wall-clock time: for its hybrid clock, the drift
    /// bound and the application (default [`WallClock::system`]).
    pub wall_clock: WallClock,
    /// How often the application saves its state in the store
    /// ([`Application::checkpoint`]; default [`DEFAULT_SNAPSHOT_INTERVAL`]);
    /// it does at shutdown too. The session store saves a snapshot of its
    /// view if anything was folded since the last one, and starts from it,
    /// folding only the entries stored after it (spec/SESSIONS.md §6.7), so
    /// this bounds what a restart after a crash re-folds.
    pub snapshot_interval: Duration,
}

impl Default for NodeConfig {
    fn default() -> NodeConfig {
        NodeConfig {
            dir: PathBuf::new(),
            listen: None,
            peers: Vec::new(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_feeds: DEFAULT_FEED_BUDGET,
            buffer_budget: DEFAULT_BUFFER_BUDGET,
            outbox_budget: DEFAULT_OUTBOX_BUDGET,
            message_deadline: DEFAULT_MESSAGE_DEADLINE,
            ready_admin_within: Duration::from_millis(DEFAULT_READY_ADMIN_WITHIN_MS),
            max_handshakes: DEFAULT_MAX_HANDSHAKES,
            max_handshakes_per_addr: DEFAULT_MAX_HANDSHAKES_PER_ADDR,
            handshake_timeout: HandshakeConfig::default().timeout,
            reconnect_min: DEFAULT_RECONNECT_MIN,
            reconnect_max: DEFAULT_RECONNECT_MAX,
            jitter_seed: None,
            wall_clock: WallClock::default(),
            snapshot_interval: DEFAULT_SNAPSHOT_INTERVAL,
        }
    }
}

impl NodeConfig {
    /// The defaults, for the node in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> NodeConfig {
        NodeConfig {
            dir: dir.into(),
            ..NodeConfig::default()
        }
    }
}

/// Errors of [`Node`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The node directory could not be opened.
    #[error(transparent)]
    Dir(#[from] NodeDirError),
    /// The node directory holds no network key.
    #[error("{0} holds no network key (init it with --network-key-file)")]
    NoNetworkKey(PathBuf),
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {error}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        error: std::io::Error,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An append failed.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// The node is shutting down: nothing more is appended.
    #[error("the node is shutting down")]
    ShuttingDown,
    /// [`Node::fetch_range`]: no connection to that peer.
    #[error("not connected to {0}")]
    NotConnected(FeedId),
    /// [`Node::fetch_range`]: the fetch was refused or failed (the connection
    /// closed, or the peer's answer did not verify and it was disconnected).
    #[error("fetch failed: {0}")]
    Fetch(#[from] FetchError),
    /// [`Node::fetch_range`] got no answer within its timeout.
    #[error("no answer to the fetch in time")]
    FetchTimeout,
}

/// Fewer peers than asked for acknowledged an entry in time
/// ([`Node::wait_for_acks`], and the session store's); the entry is durable
/// locally all the same, and still replicates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("only {acked} of {wanted} peers acknowledged in time")]
pub struct AckTimeout {
    /// Peers holding the entry when time ran out.
    pub acked: usize,
    /// Peers asked for.
    pub wanted: usize,
}

/// A connected peer, as [`Node::peers`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    /// The peer's feed id (proven in the handshake).
    pub id: FeedId,
    /// The peer's address on this connection.
    pub addr: SocketAddr,
    /// What the peer holds (feed → latest sequence), as it told us on this
    /// connection. Memory only.
    pub clock: BTreeMap<FeedId, u64>,
}

/// A running node. Cheap to clone: clones share the node.
#[derive(Clone, Debug)]
pub struct Node {
    inner: Arc<Inner>,
}

/// One registered connection.
struct Connected {
    conn: u64,
    addr: SocketAddr,
    dialed: bool,
    evict: Arc<Notify>,
    clock: BTreeMap<FeedId, u64>,
    /// What the peer's first Clock claimed (for [`Node::readiness`]).
    opening: Option<BTreeMap<FeedId, u64>>,
    /// Fetches for the connection's driver ([`Node::fetch_range`]).
    fetch: mpsc::Sender<FetchCommand>,
}

struct Inner {
    id: FeedId,
    keys: Keypair,
    network_key: NetworkKey,
    config: NodeConfig,
    network: Arc<dyn Network>,
    store: Arc<dyn Store>,
    /// Serialises every append (local or received) with its fold into the
    /// application and its publication (see [`Application`]).
    writer: Mutex<FeedWriter>,
    local: broadcast::Sender<LocalEvent>,
    entries: broadcast::Sender<Entry>,
    peers: Mutex<HashMap<FeedId, Connected>>,
    /// Bumped whenever `peers` changes (a peer's clock included).
    peers_changed: watch::Sender<u64>,
    shutdown: watch::Sender<bool>,
    closing: AtomicBool,
    tasks: Mutex<JoinSet<()>>,
    next_conn: AtomicU64,
    local_addr: Option<SocketAddr>,
    disconnects: Mutex<BTreeMap<&'static str, u64>>,
    /// Byte counters per peer id (every peer that ever connected).
    traffic: Mutex<BTreeMap<FeedId, Arc<Traffic>>>,
    /// Wall-clock ms when a new entry of each admin feed was last stored.
    admin_heard: Mutex<BTreeMap<FeedId, u64>>,
    /// One sender per feed (spec/PROTOCOL.md §2.2 "Senders").
    senders: Mutex<Senders>,
    /// The application, folding entries as they are stored.
    application: Arc<dyn Application>,
    /// The network's admins (the node directory's `admins` file).
    admins: Vec<FeedId>,
    /// Unfinished inbound handshakes (spec/PROTOCOL.md §3.5).
    handshakes: Mutex<HandshakeSlots>,
    /// Established inbound connections ([`NodeConfig::max_connections`]).
    inbound: Arc<Semaphore>,
    /// [`RESERVED_MEMBER_CONNECTIONS`].
    reserved: Arc<Semaphore>,
    /// The pool of large incoming messages ([`NodeConfig::buffer_budget`]).
    buffers: BufferBudget,
}

/// The node's sender choice, and how to wake each connection when its want
/// flags change.
struct Senders {
    scheduler: ReplicationScheduler,
    wake: HashMap<u64, Arc<Notify>>,
    epoch: Instant,
    /// The scheduler's next stall deadline as the ticker last saw it.
    deadline: Option<u64>,
    /// Wakes the ticker when the deadline moved.
    deadline_moved: Arc<Notify>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.id)
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Node {
    /// Opens the node directory and its store, builds the application
    /// with `open` from what the store holds (on a blocking thread), binds
    /// the listener (if any), and starts the listener and one dialer per
    /// configured peer, over TCP ([`TcpNetwork`]). Returns the node and its
    /// application. Needs a tokio runtime.
    pub async fn start<A: Application>(
        config: NodeConfig,
        open: impl FnOnce(Startup<'_>) -> Result<A, StoreError> + Send + 'static,
    ) -> Result<(Node, Arc<A>), NodeError> {
        Node::start_with(config, Arc::new(TcpNetwork), open).await
    }

    /// [`Node::start`] over another [`Network`] (a simulated one, say).
    pub async fn start_with<A: Application>(
        config: NodeConfig,
        network: Arc<dyn Network>,
        open: impl FnOnce(Startup<'_>) -> Result<A, StoreError> + Send + 'static,
    ) -> Result<(Node, Arc<A>), NodeError> {
        if config.max_connections == 0 || config.max_handshakes == 0 || config.max_handshakes_per_addr == 0 {
            return Err(NodeError::Config(
                "max_connections, max_handshakes and max_handshakes_per_addr must be at least 1".into(),
            ));
        }
        if config.max_feeds == 0 || config.max_feeds > MAX_FEEDS_PER_PEER {
            return Err(NodeError::Config(format!(
                "max_feeds must be from 1 to {MAX_FEEDS_PER_PEER} (what peers accept from one node)"
            )));
        }
        if config.buffer_budget < MAX_MESSAGE || config.message_deadline.is_zero() {
            return Err(NodeError::Config(format!(
                "buffer_budget must be at least {MAX_MESSAGE} (one largest message) and message_deadline positive"
            )));
        }
        if config.reconnect_min.is_zero() || config.reconnect_min > config.reconnect_max {
            return Err(NodeError::Config(
                "reconnect_min must be positive and at most reconnect_max".into(),
            ));
        }
        let dir = NodeDir::open(&config.dir)?;
        let network_key = dir
            .network_key()?
            .ok_or_else(|| NodeError::NoNetworkKey(config.dir.clone()))?;
        let keys = dir.keys().clone();
        let admins = dir.admins()?;
        let window = dir.history_window()?;
        let senders = Senders {
            scheduler: ReplicationScheduler::new(keys.feed_id(), SENDER_STALL_TIMEOUT.as_millis() as u64),
            wake: HashMap::new(),
            epoch: Instant::now(),
            deadline: None,
            deadline_moved: Arc::new(Notify::new()),
        };
        let (store, writer, application) = {
            let keys = keys.clone();
            let admins = admins.clone();
            let now = config.wall_clock.now_ms();
            tokio::task::spawn_blocking(move || -> Result<_, NodeError> {
                let store: Arc<dyn Store> = Arc::new(dir.open_store()?);
                let mut writer = FeedWriter::open(&*store, keys)?;
                writer.observe_stored(&*store, now)?;
                let application = open(Startup {
                    store: &*store,
                    admins: &admins,
                    window,
                    now_ms: now,
                })?;
                Ok((store, writer, Arc::new(application)))
            })
            .await
            .map_err(|e| NodeError::Store(StoreError::Backend(e.to_string())))??
        };
        let listener = match config.listen {
            Some(addr) => Some(
                network
                    .bind(addr)
                    .await
                    .map_err(|error| NodeError::Bind { addr, error })?,
            ),
            None => None,
        };
        let local_addr = match &listener {
            Some(listener) => Some(listener.local_addr().map_err(|error| NodeError::Bind {
                addr: config.listen.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0))),
                error,
            })?),
            None => None,
        };
        let inner = Arc::new(Inner {
            id: keys.feed_id(),
            keys,
            network_key,
            store,
            writer: Mutex::new(writer),
            local: broadcast::channel(LOCAL_EVENTS_CAPACITY).0,
            entries: broadcast::channel(SUBSCRIBE_CAPACITY).0,
            peers: Mutex::new(HashMap::new()),
            peers_changed: watch::channel(0).0,
            shutdown: watch::channel(false).0,
            closing: AtomicBool::new(false),
            tasks: Mutex::new(JoinSet::new()),
            next_conn: AtomicU64::new(1),
            senders: Mutex::new(senders),
            local_addr,
            disconnects: Mutex::new(BTreeMap::new()),
            traffic: Mutex::new(BTreeMap::new()),
            admin_heard: Mutex::new(BTreeMap::new()),
            application: application.clone(),
            admins,
            handshakes: Mutex::new(HandshakeSlots::new(
                config.max_handshakes,
                config.max_handshakes_per_addr,
            )),
            inbound: Arc::new(Semaphore::new(config.max_connections)),
            reserved: Arc::new(Semaphore::new(RESERVED_MEMBER_CONNECTIONS)),
            buffers: BufferBudget::new(config.buffer_budget, config.message_deadline),
            config,
            network,
        });
        inner.update_admission();
        if let (Some(listener), Some(addr)) = (listener, local_addr) {
            tracing::info!(id = %inner.id, %addr, "listening");
            let task = Inner::listen(inner.clone(), listener);
            inner.spawn(task);
        }
        let mut seed = match inner.config.jitter_seed {
            Some(seed) => seed,
            None => getrandom::u64().unwrap_or_else(|_| system_time_ms()),
        };
        for &addr in &inner.config.peers {
            seed = SplitMix64::new(seed).next_u64();
            let task = Inner::dial_loop(inner.clone(), addr, seed);
            inner.spawn(task);
        }
        let task = Inner::tick_senders(inner.clone());
        inner.spawn(task);
        let task = Inner::tick_application(inner.clone());
        inner.spawn(task);
        let task = Inner::sync_received(inner.clone());
        inner.spawn(task);
        Ok((Node { inner }, application))
    }

    /// Runs the future that `task` makes among the node's own tasks (an
    /// application's background work): it is handed a receiver that turns
    /// true once [`Node::shutdown`] has stopped appends, and should then
    /// end; `shutdown` waits for it as for the node's own tasks, at most
    /// [`SHUTDOWN_GRACE`], then aborts it. After shutdown, `task` is not run.
    pub fn spawn<F>(&self, task: impl FnOnce(watch::Receiver<bool>) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.inner.spawn(task(self.inner.shutdown.subscribe()));
    }

    /// The node's feed id.
    pub fn id(&self) -> FeedId {
        self.inner.id
    }

    /// The address the listener is bound to (`None` without a listener).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.inner.local_addr
    }

    /// The node's store (reads; write through [`Node::append`]).
    pub fn store(&self) -> Arc<dyn Store> {
        self.inner.store.clone()
    }

    /// The network's admins, as the node directory's `admins` file named
    /// them at start (empty: an open network).
    pub fn admins(&self) -> &[FeedId] {
        &self.inner.admins
    }

    /// The node's wall-clock time in ms ([`NodeConfig::wall_clock`]): what
    /// its application, session reads and reports take as now.
    pub fn now_ms(&self) -> u64 {
        self.inner.now_ms()
    }

    /// Asks the connected peer `peer` for entries `from..=to` of `feed` (at
    /// most [`MAX_FETCH_RANGE`](crate::sync::MAX_FETCH_RANGE)) with the
    /// certificate path of `from` (spec/PROTOCOL.md §2.2 "Fetches"), whatever
    /// this node holds of the feed, and returns them with their payloads once
    /// verified against entry 1 of the feed. Nothing is stored. The answer
    /// holds what the peer holds from `from` on: empty if it lacks `from`,
    /// shorter than asked if its feed ends earlier or the answer had to be
    /// cut to one frame (ask again from the next entry).
    pub async fn fetch_range(
        &self,
        peer: FeedId,
        feed: FeedId,
        from: u64,
        to: u64,
        timeout: Duration,
    ) -> Result<Vec<Record>, NodeError> {
        let sender = lock(&self.inner.peers)
            .get(&peer)
            .map(|c| c.fetch.clone())
            .ok_or(NodeError::NotConnected(peer))?;
        let (reply, answer) = oneshot::channel();
        let command = FetchCommand { feed, from, to, reply };
        let result = tokio::time::timeout(timeout, async move {
            sender.send(command).await.map_err(|_| FetchError::Closed)?;
            answer.await.map_err(|_| FetchError::Closed)?
        })
        .await
        .map_err(|_| NodeError::FetchTimeout)??;
        Ok(result.records.into_iter().map(Verified::into_parts).collect())
    }

    /// Appends one entry to the node's own feed (durably) and pushes it to
    /// the peers.
    pub async fn append(&self, payload: &[u8]) -> Result<Entry, NodeError> {
        let mut entries = self.append_batch(&[payload]).await?;
        entries
            .pop()
            .ok_or_else(|| NodeError::Store(StoreError::Backend("no entry written".into())))
    }

    /// Appends one entry per payload in one durable commit.
    pub async fn append_batch(&self, payloads: &[&[u8]]) -> Result<Vec<Entry>, NodeError> {
        if self.inner.closing.load(Ordering::SeqCst) {
            return Err(NodeError::ShuttingDown);
        }
        let owned: Vec<Vec<u8>> = payloads.iter().map(|p| p.to_vec()).collect();
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.append_local(&owned))
            .await
            .map_err(|e| NodeError::Store(StoreError::Backend(e.to_string())))?
    }

    /// What the store holds: feed → latest sequence.
    pub fn clock(&self) -> Result<FeedClock, NodeError> {
        Ok(self.inner.store.clock()?)
    }

    /// The connected peers and what each holds.
    pub fn peers(&self) -> Vec<PeerStatus> {
        let mut peers: Vec<PeerStatus> = lock(&self.inner.peers)
            .iter()
            .map(|(&id, c)| PeerStatus {
                id,
                addr: c.addr,
                clock: c.clock.clone(),
            })
            .collect();
        peers.sort_by_key(|p| p.id);
        peers
    }

    /// Entries as they are stored (local appends and records from peers),
    /// each once, in order per feed. A receiver that lags gets
    /// [`broadcast::error::RecvError::Lagged`]; it then reads the store.
    pub fn subscribe(&self) -> broadcast::Receiver<Entry> {
        self.inner.entries.subscribe()
    }

    /// Connections closed so far, by reason ([`Closed::reason`], and
    /// `handshake:<reason>` for failed handshakes).
    pub fn disconnects(&self) -> BTreeMap<&'static str, u64> {
        lock(&self.inner.disconnects).clone()
    }

    /// Message bytes exchanged with each peer that ever connected, since the
    /// node started: peer → (received, sent). See [`Traffic`].
    pub fn traffic(&self) -> BTreeMap<FeedId, (u64, u64)> {
        lock(&self.inner.traffic)
            .iter()
            .map(|(&id, t)| {
                (
                    id,
                    (t.bytes_in.load(Ordering::Relaxed), t.bytes_out.load(Ordering::Relaxed)),
                )
            })
            .collect()
    }

    /// Whether the node may be serving an incomplete picture (see
    /// [`crate::readiness`]): behind what a connected peer claimed when it
    /// connected, or, with admins, no admin feed heard from within
    /// [`NodeConfig::ready_admin_within`]. Reads the store: blocking.
    pub fn readiness(&self) -> Result<Readiness, NodeError> {
        let inner = &self.inner;
        let held = inner.store.clock()?;
        let frozen: BTreeSet<FeedId> = inner.store.forks()?.iter().map(ForkProof::author).collect();
        let now_ms = inner.now_ms();
        let (opening, connected): (Vec<_>, BTreeSet<FeedId>) = {
            let peers = lock(&inner.peers);
            let opening = peers
                .iter()
                .filter_map(|(&id, c)| c.opening.clone().map(|claims| (id, claims)))
                .collect();
            (opening, peers.keys().copied().collect())
        };
        let taken: BTreeSet<FeedId> = {
            let senders = lock(&inner.senders);
            opening
                .iter()
                .flat_map(|(_, claims): &(FeedId, BTreeMap<FeedId, u64>)| claims.keys())
                .filter(|feed| senders.scheduler.knows(feed))
                .copied()
                .collect()
        };
        let heard = lock(&inner.admin_heard).clone();
        let admins = inner
            .admins
            .iter()
            .map(|&feed| AdminHeard {
                feed,
                seq: held.get(&feed).copied().unwrap_or(0),
                heard_at_ms: if feed == inner.id || connected.contains(&feed) {
                    Some(now_ms)
                } else {
                    heard.get(&feed).copied()
                },
            })
            .collect();
        Ok(assess(Inputs {
            held: &held,
            frozen: &frozen,
            taken: &taken,
            opening: &opening,
            admins,
            expects_peers: !inner.config.peers.is_empty(),
            now_ms,
            admin_within_ms: u64::try_from(inner.config.ready_admin_within.as_millis()).unwrap_or(u64::MAX),
        }))
    }

    /// The bytes of encoded messages one connection may hold waiting for
    /// its socket: [`NodeConfig::outbox_budget`] over the connections the
    /// node may have, at least [`MIN_OUTBOX_SHARE`].
    pub fn outbox_share(&self) -> usize {
        self.inner.outbox_share()
    }

    /// Message bytes waiting to be sent to each peer now (what a peer that
    /// does not read makes the node hold: at most [`Node::outbox_share`]
    /// each).
    pub fn queued_out(&self) -> BTreeMap<FeedId, u64> {
        lock(&self.inner.traffic)
            .iter()
            .map(|(&id, t)| (id, t.queued_out.load(Ordering::Relaxed)))
            .collect()
    }

    /// Bytes of the buffer budget ([`NodeConfig::buffer_budget`]) that large
    /// incoming messages hold now, over all connections: never more than
    /// the budget.
    pub fn buffered_bytes(&self) -> usize {
        self.inner.buffers.used()
    }

    /// Waits until at least `k` connected peers report holding this node's
    /// feed at sequence `seq` or later; returns how many do. Fails with
    /// [`AckTimeout`] after `timeout`. `k = 0` returns at once.
    pub async fn wait_for_acks(&self, seq: u64, k: usize, timeout: Duration) -> Result<usize, AckTimeout> {
        let deadline = Instant::now() + timeout;
        let mut changed = self.inner.peers_changed.subscribe();
        loop {
            let acked = self.acked(seq);
            if acked >= k {
                return Ok(acked);
            }
            match tokio::time::timeout_at(deadline, changed.changed()).await {
                Ok(Ok(())) => {}
                _ => {
                    return Err(AckTimeout {
                        acked: self.acked(seq),
                        wanted: k,
                    });
                }
            }
        }
    }

    fn acked(&self, seq: u64) -> usize {
        let id = self.inner.id;
        lock(&self.inner.peers)
            .values()
            .filter(|c| c.clock.get(&id).is_some_and(|&held| held >= seq))
            .count()
    }

    /// Stops the node gracefully: refuses new appends, lets the one in
    /// progress finish, closes every connection (flushing what is queued),
    /// and stops the listener and dialers. Waits at most [`SHUTDOWN_GRACE`]
    /// for tasks, then aborts them. Idempotent.
    pub async fn shutdown(&self) {
        self.inner.closing.store(true, Ordering::SeqCst);
        // Wait for the append in progress, if any.
        let inner = self.inner.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let _writer = lock(&inner.writer);
            if let Err(error) = inner.store.sync(Duration::ZERO) {
                tracing::error!(%error, "the last sync of received entries failed");
            }
            inner.checkpoint();
        })
        .await;
        self.inner.shutdown.send_replace(true);
        let mut tasks = std::mem::take(&mut *lock(&self.inner.tasks));
        let all_done = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(SHUTDOWN_GRACE, all_done).await.is_err() {
            tracing::warn!("tasks still running after the shutdown grace period; aborting them");
        }
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        tracing::info!(id = %self.inner.id, "node stopped");
    }
}

impl Inner {
    /// The node's wall-clock reading ([`NodeConfig::wall_clock`]).
    fn now_ms(&self) -> u64 {
        self.config.wall_clock.now_ms()
    }

    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let mut tasks = lock(&self.tasks);
        while tasks.try_join_next().is_some() {}
        if !*self.shutdown.borrow() {
            tasks.spawn(task);
        }
    }

    /// Runs `f` on the sender choice (with its `now`) and wakes the
    /// connections whose want flags changed.
    fn schedule(&self, f: impl FnOnce(&mut ReplicationScheduler, u64)) {
        let mut senders = lock(&self.senders);
        let now = u64::try_from(senders.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        f(&mut senders.scheduler, now);
        for conn in senders.scheduler.pending() {
            if let Some(wake) = senders.wake.get(&conn) {
                wake.notify_one();
            }
        }
        let deadline = senders.scheduler.poll_timeout();
        if deadline != senders.deadline {
            senders.deadline = deadline;
            senders.deadline_moved.notify_one();
        }
    }

    /// Fails feeds over from stalled senders when the scheduler's stall
    /// deadline comes ([`ReplicationScheduler::poll_timeout`]), until shutdown.
    async fn tick_senders(self: Arc<Inner>) {
        let mut shutdown = self.shutdown.subscribe();
        let moved = lock(&self.senders).deadline_moved.clone();
        loop {
            let due = {
                let senders = lock(&self.senders);
                senders.deadline.map(|ms| senders.epoch + Duration::from_millis(ms))
            };
            tokio::select! {
                biased;
                _ = shutdown.changed() => return,
                () = moved.notified() => continue,
                () = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {}
            }
            self.schedule(|s, now| s.tick(now));
        }
    }

    /// Makes received entries durable within [`SYNC_INTERVAL`] (one flush
    /// for all that arrived meanwhile), until shutdown. Checks every half
    /// interval and flushes only what has waited half an interval: a node
    /// that appends its own entries flushes through them, and the sync then
    /// stays out of their way (a flush holds the store's write lock).
    async fn sync_received(self: Arc<Inner>) {
        let mut shutdown = self.shutdown.subscribe();
        loop {
            tokio::select! {
                biased;
                _ = shutdown.changed() => return,
                () = tokio::time::sleep(SYNC_INTERVAL / 2) => {}
            }
            let store = self.store.clone();
            match tokio::task::spawn_blocking(move || store.sync(SYNC_INTERVAL / 2)).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::error!(%error, "syncing received entries failed"),
                Err(error) => tracing::error!(%error, "the sync task failed"),
            }
        }
    }

    /// Has the application save its state ([`Application::checkpoint`];
    /// blocking).
    fn checkpoint(&self) {
        let began = std::time::Instant::now();
        match self.application.checkpoint(&*self.store) {
            Ok(0) => {}
            Ok(bytes) => tracing::debug!(
                bytes,
                ms = began.elapsed().as_millis() as u64,
                "saved the view snapshot"
            ),
            Err(error) => tracing::error!(%error, "saving the application's checkpoint failed"),
        }
    }

    /// Ticks the application (refolding it when the tick asks), has it
    /// expire what is past its horizon, and checkpoint every
    /// [`NodeConfig::snapshot_interval`], until shutdown.
    async fn tick_application(self: Arc<Inner>) {
        let mut shutdown = self.shutdown.subscribe();
        let mut saved = Instant::now();
        loop {
            tokio::select! {
                biased;
                _ = shutdown.changed() => return,
                () = tokio::time::sleep(APPLICATION_TICK) => {}
            }
            let now = self.now_ms();
            if self.application.tick(now) {
                let inner = self.clone();
                let refolded = tokio::task::spawn_blocking(move || {
                    let _writer = lock(&inner.writer);
                    inner.application.refold(&*inner.store, inner.now_ms())
                })
                .await;
                match refolded {
                    Ok(Ok(())) => self.membership_changed(),
                    Ok(Err(error)) => tracing::error!(%error, "re-folding the application failed"),
                    Err(error) => tracing::error!(%error, "the re-fold task failed"),
                }
            }
            self.application.expire(now);
            if saved.elapsed() >= self.config.snapshot_interval {
                saved = Instant::now();
                let inner = self.clone();
                let _ = tokio::task::spawn_blocking(move || inner.checkpoint()).await;
            }
        }
    }

    fn publish(&self, entries: &[Entry]) {
        let mut heads: BTreeMap<FeedId, u64> = BTreeMap::new();
        for entry in entries {
            let head = heads.entry(entry.author()).or_insert(0);
            *head = (*head).max(entry.seq());
        }
        self.schedule(|s, now| heads.iter().for_each(|(&feed, &seq)| s.local(feed, seq, now)));
        for (feed, seq) in heads {
            let _ = self.local.send(LocalEvent::Stored { feed, seq });
        }
        for entry in entries {
            let _ = self.entries.send(entry.clone());
        }
    }

    fn append_local(&self, payloads: &[Vec<u8>]) -> Result<Vec<Entry>, NodeError> {
        let mut writer = lock(&self.writer);
        if self.closing.load(Ordering::SeqCst) {
            return Err(NodeError::ShuttingDown);
        }
        let now = self.now_ms();
        let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        let entries = writer.append(&*self.store, &refs, now)?;
        let mut stored = entries.iter().zip(refs.iter().copied());
        if self.application.fold(&*self.store, &mut stored, now)? {
            self.membership_changed();
        }
        self.publish(&entries);
        Ok(entries)
    }

    fn register(&self, peer: FeedId, new: Connected) -> bool {
        let mut peers = lock(&self.peers);
        if let Some(old) = peers.get(&peer) {
            let keep_new = if old.dialed == new.dialed {
                true
            } else {
                // Opposite directions: keep the one the smaller id dialed.
                new.dialed == (self.id < peer)
            };
            if !keep_new {
                return false;
            }
            old.evict.notify_one();
        }
        peers.insert(peer, new);
        drop(peers);
        self.peers_changed.send_modify(|v| *v = v.wrapping_add(1));
        true
    }

    fn unregister(&self, peer: FeedId, conn: u64) {
        let mut peers = lock(&self.peers);
        if peers.get(&peer).is_some_and(|c| c.conn == conn) {
            peers.remove(&peer);
            drop(peers);
            self.peers_changed.send_modify(|v| *v = v.wrapping_add(1));
        }
    }

    /// Tells the sender choice which feeds the membership lets the node take.
    fn update_admission(&self) {
        let admission = match self.application.taken_feeds() {
            Some(feeds) => Admission::Only(feeds),
            None => Admission::Open {
                budget: self.config.max_feeds,
            },
        };
        self.schedule(|s, now| s.set_admission(admission, now));
    }

    /// The membership changed: closes the connections of removed members
    /// and updates which feeds the node takes.
    fn membership_changed(&self) {
        self.evict_removed();
        self.update_admission();
    }

    /// Closes the connections of peers removed from the membership.
    fn evict_removed(&self) {
        for (peer, connected) in lock(&self.peers).iter() {
            if self.application.is_removed(peer) {
                tracing::warn!(%peer, "closing the connection of a removed member");
                connected.evict.notify_one();
            }
        }
    }

    fn is_connected(&self, peer: &FeedId) -> bool {
        lock(&self.peers).contains_key(peer)
    }

    fn count(&self, reason: &'static str) {
        *lock(&self.disconnects).entry(reason).or_insert(0) += 1;
    }

    async fn listen(self: Arc<Inner>, listener: Box<dyn Listener>) {
        let mut shutdown = self.shutdown.subscribe();
        loop {
            let accepted = tokio::select! {
                biased;
                _ = shutdown.changed() => return,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, addr)) => {
                    let (ticket, dropped) = lock(&self.handshakes).admit(addr.ip());
                    let task = Inner::accept(self.clone(), stream, addr, ticket, dropped);
                    self.spawn(task);
                }
                Err(error) => {
                    // Out of descriptors and the like: back off a little.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// Handshakes an accepted socket in its handshake slot `ticket` (closed
    /// when `dropped` fires), then runs it in an established slot.
    async fn accept(self: Arc<Inner>, stream: BoxConnection, addr: SocketAddr, ticket: u64, dropped: Arc<Notify>) {
        let secure = tokio::select! {
            biased;
            () = dropped.notified() => {
                tracing::debug!(%addr, "unfinished handshake pushed out of its slot");
                self.count("handshake-slot");
                None
            }
            secure = self.handshake(stream, addr, false) => secure,
        };
        lock(&self.handshakes).release(ticket);
        let Some(secure) = secure else { return };
        let Some(_permit) = self.established_slot(&secure.remote_id()) else {
            tracing::warn!(%addr, max = self.config.max_connections, "connection cap reached; refusing");
            self.count("connection-cap");
            return;
        };
        self.run(secure, addr, false).await;
    }

    /// An established inbound slot for `peer`: one of `max_connections`, or
    /// with admins, for an admin or admitted member, a reserved one.
    fn established_slot(&self, peer: &FeedId) -> Option<OwnedSemaphorePermit> {
        if let Ok(permit) = self.inbound.clone().try_acquire_owned() {
            return Some(permit);
        }
        let member = self.admins.contains(peer) || (!self.admins.is_empty() && self.application.is_admitted(peer));
        member.then(|| self.reserved.clone().try_acquire_owned().ok()).flatten()
    }

    /// Dials' connection: handshakes and runs it; returns the peer's id once
    /// the handshake succeeded.
    async fn connect(self: &Arc<Inner>, stream: BoxConnection, addr: SocketAddr, dialed: bool) -> Option<FeedId> {
        let secure = self.handshake(stream, addr, dialed).await?;
        Some(self.run(secure, addr, dialed).await)
    }

    /// Runs the handshake (bounded by the handshake timeout and shutdown);
    /// logs and counts a failure.
    async fn handshake(
        self: &Arc<Inner>,
        stream: BoxConnection,
        addr: SocketAddr,
        dialed: bool,
    ) -> Option<SecureStream<BoxConnection>> {
        let config = HandshakeConfig {
            timeout: self.config.handshake_timeout,
            ..HandshakeConfig::default()
        };
        let mut shutdown = self.shutdown.subscribe();
        let handshake = async {
            if dialed {
                initiate(stream, &self.network_key, &self.keys, None, &config).await
            } else {
                respond(stream, &self.network_key, &self.keys, &config).await
            }
        };
        let secure = tokio::select! {
            biased;
            _ = shutdown.changed() => return None,
            secure = handshake => secure,
        };
        match secure {
            Ok(secure) => Some(secure),
            Err(error) => {
                tracing::warn!(%addr, dialed, reason = handshake_reason(&error), %error, "handshake failed");
                self.count(handshake_reason(&error));
                None
            }
        }
    }

    /// Registers and drives an authenticated connection until it closes;
    /// returns the peer's id.
    async fn run(self: &Arc<Inner>, secure: SecureStream<BoxConnection>, addr: SocketAddr, dialed: bool) -> FeedId {
        let peer = secure.remote_id();
        if self.application.is_removed(&peer) {
            tracing::warn!(%peer, %addr, dialed, "refusing a removed member");
            self.count("removed_member");
            return peer;
        }
        let conn = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let evict = Arc::new(Notify::new());
        let (fetch, fetches) = mpsc::channel(MAX_FETCHES_PER_PEER);
        let registered = self.register(
            peer,
            Connected {
                conn,
                addr,
                dialed,
                evict: evict.clone(),
                clock: BTreeMap::new(),
                opening: None,
                fetch,
            },
        );
        if !registered {
            tracing::debug!(peer = %peer, %addr, "already connected to this peer; closing the new connection");
            return peer;
        }
        tracing::info!(peer = %peer, %addr, dialed, "peer connected");
        let (mut reader, writer) = secure.into_split();
        reader.set_budget(self.buffers.clone());
        let host: Arc<dyn Host> = self.clone();
        let shutdown = self.shutdown.subscribe();
        let closed = run_connection(reader, writer, host, conn, shutdown, evict, Some(fetches)).await;
        self.unregister(peer, conn);
        self.count(closed.reason());
        match &closed {
            Closed::Shutdown | Closed::Evicted => {
                tracing::debug!(peer = %peer, reason = closed.reason(), "connection closed");
            }
            Closed::PeerClosed => tracing::info!(peer = %peer, reason = closed.reason(), "peer disconnected"),
            other => tracing::warn!(peer = %peer, reason = other.reason(), error = %other, "connection closed"),
        }
        peer
    }

    async fn dial_loop(self: Arc<Inner>, addr: SocketAddr, seed: u64) {
        let mut rng = SplitMix64::new(seed);
        let mut attempt: u32 = 0;
        let mut known: Option<FeedId> = None;
        let mut shutdown = self.shutdown.subscribe();
        loop {
            if *shutdown.borrow_and_update() {
                return;
            }
            if let Some(peer) = known {
                // Connected the other way (or still connected): wait until it ends.
                let mut changed = self.peers_changed.subscribe();
                while self.is_connected(&peer) {
                    tokio::select! {
                        biased;
                        _ = shutdown.changed() => return,
                        _ = changed.changed() => {}
                    }
                }
            }
            let started = Instant::now();
            let stream = tokio::select! {
                biased;
                _ = shutdown.changed() => return,
                stream = tokio::time::timeout(CONNECT_TIMEOUT, self.network.connect(addr)) => stream,
            };
            match stream {
                Ok(Ok(stream)) => {
                    if let Some(peer) = self.connect(stream, addr, true).await {
                        known = Some(peer);
                    }
                    if started.elapsed() >= STABLE_CONNECTION {
                        attempt = 0;
                    }
                }
                Ok(Err(error)) => tracing::debug!(%addr, %error, "dial failed"),
                Err(_) => tracing::debug!(%addr, "dial timed out"),
            }
            let delay = backoff(self.config.reconnect_min, self.config.reconnect_max, attempt, &mut rng);
            attempt = attempt.saturating_add(1);
            tokio::select! {
                biased;
                _ = shutdown.changed() => return,
                () = tokio::time::sleep(delay) => {}
            }
        }
    }
}

impl Host for Inner {
    fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    fn outbox_share(&self) -> usize {
        let config = &self.config;
        let connections = config.max_connections + RESERVED_MEMBER_CONNECTIONS + config.peers.len();
        (config.outbox_budget / connections.max(1)).max(MIN_OUTBOX_SHARE)
    }

    fn subscribe_local(&self) -> broadcast::Receiver<LocalEvent> {
        self.local.subscribe()
    }

    fn append_received(&self, records: &[Verified]) -> Result<AppendReport, StoreError> {
        let mut before: BTreeMap<FeedId, u64> = BTreeMap::new();
        let mut writer = lock(&self.writer);
        for record in records {
            let feed = record.entry().author();
            if let std::collections::btree_map::Entry::Vacant(slot) = before.entry(feed) {
                slot.insert(self.store.latest(&feed)?.unwrap_or(0));
            }
        }
        // Another author's entries can be fetched again: they are made
        // durable by the next local append or the periodic sync, not each
        // by a flush of its own (spec/SESSIONS.md §4).
        match self.store.append_unsynced(records) {
            Ok(report) => {
                let new: Vec<Entry> = records
                    .iter()
                    .map(Verified::entry)
                    .filter(|e| e.seq() > before.get(&e.author()).copied().unwrap_or(0))
                    .cloned()
                    .collect();
                let now = self.now_ms();
                for entry in &new {
                    writer.observe(entry.timestamp(), now);
                }
                if new.iter().any(|e| self.admins.contains(&e.author())) {
                    let mut heard = lock(&self.admin_heard);
                    for entry in new.iter().filter(|e| self.admins.contains(&e.author())) {
                        heard.insert(entry.author(), now);
                    }
                }
                let mut stored = records.iter().filter_map(|r| {
                    let entry = r.entry();
                    let fresh = entry.seq() > before.get(&entry.author()).copied().unwrap_or(0);
                    Some((entry, r.payload().filter(|_| fresh)?))
                });
                if self.application.fold(&*self.store, &mut stored, now)? {
                    self.membership_changed();
                }
                self.publish(&new);
                if tracing::enabled!(tracing::Level::DEBUG) {
                    let mut heads: BTreeMap<FeedId, (u64, usize)> = BTreeMap::new();
                    for entry in &new {
                        let head = heads.entry(entry.author()).or_insert((0, 0));
                        *head = (head.0.max(entry.seq()), head.1 + 1);
                    }
                    for (feed, (seq, entries)) in heads {
                        tracing::debug!(%feed, seq, entries, "stored entries from a peer");
                    }
                }
                Ok(report)
            }
            Err(StoreError::Fork { index, proof }) => {
                self.application.refold(&*self.store, self.now_ms())?;
                let _ = self.local.send(LocalEvent::Fork(Arc::new((*proof).clone())));
                Err(StoreError::Fork { index, proof })
            }
            Err(error) => Err(error),
        }
    }

    fn record_fork(&self, proof: &ForkProof) -> Result<(), StoreError> {
        let _writer = lock(&self.writer);
        if self.store.record_fork(proof)? {
            self.application.refold(&*self.store, self.now_ms())?;
            let _ = self.local.send(LocalEvent::Fork(Arc::new(proof.clone())));
        }
        Ok(())
    }

    fn own(&self) -> Option<FeedId> {
        Some(self.id)
    }

    fn peer_clock(&self, peer: FeedId, conn: u64, clock: BTreeMap<FeedId, u64>) {
        self.schedule(|s, now| s.claims(conn, clock.iter().map(|(&feed, &seq)| (feed, seq)), now));
        let mut peers = lock(&self.peers);
        if let Some(connected) = peers.get_mut(&peer)
            && connected.conn == conn
            && connected.clock != clock
        {
            if connected.opening.is_none() {
                connected.opening = Some(clock.clone());
            }
            connected.clock = clock;
            drop(peers);
            self.peers_changed.send_modify(|v| *v = v.wrapping_add(1));
        }
    }

    fn traffic(&self, peer: FeedId) -> Option<Arc<Traffic>> {
        Some(lock(&self.traffic).entry(peer).or_default().clone())
    }

    fn attach(&self, peer: FeedId, conn: u64, held: &BTreeMap<FeedId, u64>) -> Option<Arc<Notify>> {
        let wake = Arc::new(Notify::new());
        lock(&self.senders).wake.insert(conn, wake.clone());
        self.schedule(|s, now| {
            for (&feed, &seq) in held {
                s.local(feed, seq, now);
            }
            s.connect(conn, peer, now);
        });
        Some(wake)
    }

    fn take_wants(&self, conn: u64) -> Vec<(FeedId, bool)> {
        lock(&self.senders).scheduler.take_wants(conn)
    }

    fn stalled(&self, conn: u64, feed: FeedId) {
        self.schedule(|s, now| s.stalled(conn, feed, now));
    }

    fn detach(&self, conn: u64) {
        lock(&self.senders).wake.remove(&conn);
        self.schedule(|s, now| s.disconnect(conn, now));
    }
}

/// A stable name of a handshake failure, for logs and counts.
fn handshake_reason(error: &HandshakeError) -> &'static str {
    match error {
        HandshakeError::WrongNetworkKeyOrCorrupt => "handshake:wrong-key-or-corrupt",
        HandshakeError::BadIdentityProof => "handshake:bad-identity-proof",
        HandshakeError::UnexpectedPeer { .. } => "handshake:unexpected-peer",
        HandshakeError::SelfConnection => "handshake:self-connection",
        HandshakeError::Timeout(_) => "handshake:timeout",
        HandshakeError::FrameTooLarge { .. } => "handshake:frame-too-large",
        HandshakeError::UnexpectedPayload => "handshake:unexpected-payload",
        HandshakeError::Closed => "handshake:closed",
        HandshakeError::Io(_) => "handshake:io",
        _ => "handshake:other",
    }
}

/// The delay before reconnect attempt `attempt` (0-based): `min * 2^attempt`
/// capped at `max`, then drawn uniformly from its upper half.
fn backoff(min: Duration, max: Duration, attempt: u32, rng: &mut SplitMix64) -> Duration {
    let base = min.saturating_mul(1u32 << attempt.min(20)).min(max);
    let half = base / 2;
    let span = u64::try_from(half.as_micros()).unwrap_or(u64::MAX).max(1);
    half + Duration::from_micros(rng.next_u64() % span)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_jitters() {
        let (min, max) = (Duration::from_millis(100), Duration::from_secs(10));
        let mut rng = SplitMix64::new(7);
        for attempt in 0..40 {
            let base = min.saturating_mul(1u32 << attempt.min(20)).min(max);
            let delay = backoff(min, max, attempt, &mut rng);
            assert!(delay >= base / 2 && delay <= base, "attempt {attempt}: {delay:?}");
        }
        let a: Vec<Duration> = (0..8).map(|_| backoff(min, max, 10, &mut rng)).collect();
        assert!(a.windows(2).any(|w| w[0] != w[1]), "jitter varies");
    }
}
