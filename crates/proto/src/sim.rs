//! A simulated network of N replicating nodes on a virtual clock (feature
//! `test-utils`), for tests and benchmarks: not a public API.
//!
//! [`Net`] holds N nodes, each with a [`MemoryStore`] and (unless built with
//! [`Net::flooding`]) a [`ReplicationScheduler`] choosing one sender per feed.
//! A connection between two nodes is a [`PeerSync`] at each end; the harness is
//! their driver, as the network layer is in a node: it encodes every message
//! the machines emit into a frame, queues it for the other end, hands it to
//! that machine, executes every [`Action`] against the node's store, and
//! applies the schedulers' wants. Node `i` writes its own feed, with the key
//! of seed `i + 1` ([`node_feed`]).
//!
//! What it models: the protocol's messages as they are encoded on the wire,
//! in order per connection; the scheduler's choices and failovers; every
//! verification and store rule (the stores are the real in-memory backend).
//! Tests can drop a node's records in flight ([`Net::mute`]), change frames
//! ([`Net::tamper`]) or close connections ([`Net::close`]). [`Net::sent`]
//! counts what each node sent, by message kind.
//!
//! What it does not model:
//!
//! - no disk: nothing is durable, nothing waits on a commit;
//! - no transport: no handshake, no framing, no encryption; the bytes
//!   counted are those of the encoded messages, without the transport's
//!   length prefix and authentication tag;
//! - no time passing, except that each delivery round ([`Net::run_until_idle`])
//!   moves the clock by 1 ms and, when nothing is left to deliver, the clock
//!   jumps to the schedulers' next timer; the machines' own timers
//!   ([`PeerSync::poll_timeout`]: fetch timeouts) are never run;
//! - no bandwidth and no latency: a round hands each connection one frame,
//!   whatever its size;
//! - no loss, reordering or partition besides the hooks above.

use std::collections::{BTreeMap, VecDeque};

use crate::feed::{Entry, FeedId, ForkProof, Keypair};
use crate::store::{MemoryStore, Store, StoreError};
use crate::sync::{
    Action, FetchError, Fetched, MAX_FRAME, MAX_RECORDS_PER_MESSAGE, Message, PeerSync, ProtocolError,
    ReplicationScheduler, Serve, pack_records, read_ranges, serve_fetch,
};
use crate::writer::FeedWriter;

/// A record as raw bytes: the entry's bytes and its payload.
pub type RawRecord = (Vec<u8>, Option<Vec<u8>>);

/// Changes a frame in flight from node `from` to node `to` (arguments
/// `from`, `to`, the frame).
pub type Tamper = Box<dyn FnMut(usize, usize, &mut Vec<u8>)>;

/// The schedulers' stall timeout in the harness (virtual ms).
pub const STALL_MS: u64 = 200;

/// The feed node `node` writes (key seed `node + 1`).
pub fn node_feed(node: usize) -> FeedId {
    Keypair::from_seed([node as u8 + 1; 32]).feed_id()
}

/// One end of a connection: node `node`'s machine for its peer `peer`.
pub struct Conn {
    /// The node at this end.
    pub node: usize,
    /// The node at the other end.
    pub peer: usize,
    /// The connection's other end (an index into [`Net::conns`]).
    reverse: usize,
    /// This end's state machine.
    pub machine: PeerSync,
    /// Frames from the peer, not yet handled.
    inbox: VecDeque<Vec<u8>>,
    open: bool,
}

/// Messages and their encoded bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sent {
    /// How many messages.
    pub messages: u64,
    /// Their encoded size, in bytes.
    pub bytes: u64,
}

impl std::iter::Sum for Sent {
    fn sum<I: Iterator<Item = Sent>>(iter: I) -> Sent {
        iter.fold(Sent::default(), |sum, sent| Sent {
            messages: sum.messages + sent.messages,
            bytes: sum.bytes + sent.bytes,
        })
    }
}

/// What one node sent on all its connections.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Per message kind ([`Message::kind`]).
    pub by_kind: BTreeMap<&'static str, Sent>,
    /// Feed lines in the Clock messages.
    pub clock_lines: u64,
    /// Records in the Records messages.
    pub records: u64,
}

impl Traffic {
    /// Every kind together.
    pub fn total(&self) -> Sent {
        self.by_kind.values().copied().sum()
    }

    /// Counts `message`, encoded to `bytes` bytes.
    fn count(&mut self, message: &Message, bytes: usize) {
        let sent = self.by_kind.entry(message.kind()).or_default();
        sent.messages += 1;
        sent.bytes += bytes as u64;
        match message {
            Message::Clock { feeds } => self.clock_lines += feeds.len() as u64,
            Message::Records { records } => self.records += records.len() as u64,
            _ => {}
        }
    }
}

/// N nodes replicating over in-memory connections (see the module doc).
///
/// Build it with [`Net::new`], connect nodes ([`Net::connect`],
/// [`Net::connect_all`], [`Net::connect_circulant`]), write entries
/// ([`Net::write`], [`Net::append`]), then [`Net::run_until_idle`] and read
/// the stores and counters. Fields are public for tests to inspect and
/// steer.
pub struct Net {
    /// The virtual clock (ms).
    pub now: u64,
    /// Each node's store.
    pub stores: Vec<MemoryStore>,
    /// Both ends of every connection ever made, in order: connection `k`'s
    /// ends are `2k` (its first node's) and `2k + 1`. The index is also the
    /// connection's id for the schedulers.
    pub conns: Vec<Conn>,
    /// Changes frames in flight, if set.
    pub tamper: Option<Tamper>,
    /// Records received per node (in Records messages, duplicates included).
    pub delivered: Vec<usize>,
    /// Every disconnect: the node that disconnected, its peer, why.
    pub disconnects: Vec<(usize, usize, ProtocolError)>,
    /// How many times a machine reported [`Action::Stalled`].
    pub stalls: usize,
    /// Per node: the sender choice; `None`: every machine wants every feed
    /// (the flood, as before senders were chosen).
    pub schedulers: Vec<Option<ReplicationScheduler>>,
    /// Records from node `.0` to node `.1` are dropped in flight (after
    /// being counted as sent).
    pub mute: Option<(usize, usize)>,
    /// Every fetch outcome: the asking node, the fetch id, the result.
    pub fetched: Vec<(usize, u64, Result<Fetched, FetchError>)>,
    /// Records carried by Chunk messages, per receiving node.
    pub chunk_records: Vec<usize>,
    /// What each node sent, counted before tampering.
    pub sent: Vec<Traffic>,
}

impl Net {
    /// `nodes` unconnected nodes with empty stores, each with a scheduler
    /// (stall timeout [`STALL_MS`]).
    pub fn new(nodes: usize) -> Net {
        let schedulers = (0..nodes)
            .map(|node| Some(ReplicationScheduler::new(node_feed(node), STALL_MS)))
            .collect();
        Net::with_schedulers(nodes, schedulers)
    }

    /// A net whose machines want every feed from every peer (no scheduler).
    pub fn flooding(nodes: usize) -> Net {
        Net::with_schedulers(nodes, (0..nodes).map(|_| None).collect())
    }

    fn with_schedulers(nodes: usize, schedulers: Vec<Option<ReplicationScheduler>>) -> Net {
        Net {
            now: 1_000,
            stores: (0..nodes).map(|_| MemoryStore::new()).collect(),
            conns: Vec::new(),
            tamper: None,
            delivered: vec![0; nodes],
            disconnects: Vec::new(),
            stalls: 0,
            schedulers,
            mute: None,
            fetched: Vec::new(),
            chunk_records: vec![0; nodes],
            sent: vec![Traffic::default(); nodes],
        }
    }

    /// The number of nodes.
    pub fn nodes(&self) -> usize {
        self.stores.len()
    }

    /// Applies the want changes node `node`'s scheduler queued.
    fn apply_wants(&mut self, node: usize) {
        let now = self.now;
        let Some(scheduler) = self.schedulers[node].as_mut() else {
            return;
        };
        for conn in scheduler.pending() {
            for (feed, want) in scheduler.take_wants(conn) {
                self.conns[conn as usize].machine.set_want(feed, want, now);
            }
        }
    }

    /// Runs `f` on node `node`'s scheduler (if any), then applies its changes.
    fn schedule(&mut self, node: usize, f: impl FnOnce(&mut ReplicationScheduler, u64)) {
        let now = self.now;
        if let Some(scheduler) = self.schedulers[node].as_mut() {
            f(scheduler, now);
            self.apply_wants(node);
        }
    }

    /// Connects nodes `a` and `b`: each starts a machine with its store's
    /// clock.
    pub fn connect(&mut self, a: usize, b: usize) {
        let (i, j) = (self.conns.len(), self.conns.len() + 1);
        for (node, peer, reverse) in [(a, b, j), (b, a, i)] {
            let machine = match self.schedulers[node] {
                Some(_) => PeerSync::managed(),
                None => PeerSync::new(),
            };
            self.conns.push(Conn {
                node,
                peer,
                reverse,
                machine,
                inbox: VecDeque::new(),
                open: true,
            });
        }
        for (conn, node, peer) in [(i, a, b), (j, b, a)] {
            self.schedule(node, |s, now| s.connect(conn as u64, node_feed(peer), now));
            let clock = self.stores[node].clock().expect("clock");
            self.conns[conn].machine.start(&clock, self.now);
        }
    }

    /// Connects every pair of nodes (a full mesh), in the order `(0, 1)`,
    /// `(0, 2)`, …, `(1, 2)`, ….
    pub fn connect_all(&mut self) {
        for a in 0..self.nodes() {
            for b in a + 1..self.nodes() {
                self.connect(a, b);
            }
        }
    }

    /// Connects every node `i` to node `(i + offset) % N` for each offset (a
    /// circulant graph), skipping pairs already connected by this call and
    /// offsets that are multiples of N. Offsets `[1]` make a ring; `[1, c]`
    /// a ring with chords of length `c`; `[1, 2, …, k]` connect each node to
    /// its `2k` nearest neighbours on the ring.
    pub fn connect_circulant(&mut self, offsets: &[usize]) {
        let n = self.nodes();
        let mut pairs = Vec::new();
        for &offset in offsets {
            for a in 0..n {
                let b = (a + offset) % n;
                let pair = (a.min(b), a.max(b));
                if a != b && !pairs.contains(&pair) {
                    pairs.push(pair);
                }
            }
        }
        for (a, b) in pairs {
            self.connect(a, b);
        }
    }

    /// Appends `count` small entries to `node`'s own feed (key seed `seed`)
    /// and tells the node's connections; returns the feed.
    pub fn write(&mut self, node: usize, seed: u8, count: usize) -> FeedId {
        let payloads: Vec<Vec<u8>> = (0..count)
            .map(|i| format!("{seed}:{}:{i}", self.now).into_bytes())
            .collect();
        let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        self.append(node, seed, &refs)
    }

    /// Appends one entry per payload to `node`'s own feed (key seed `seed`),
    /// in one batch stamped `now`, and tells the node's connections; returns
    /// the feed.
    pub fn append(&mut self, node: usize, seed: u8, payloads: &[&[u8]]) -> FeedId {
        let store = &self.stores[node];
        let mut writer = FeedWriter::open(store, Keypair::from_seed([seed; 32])).expect("writer");
        let entries = writer.append(store, payloads, self.now).expect("append");
        let feed = writer.keys().feed_id();
        let latest = entries.last().map_or(0, Entry::seq);
        self.advanced(node, feed, latest);
        feed
    }

    fn advanced(&mut self, node: usize, feed: FeedId, seq: u64) {
        let now = self.now;
        for conn in self.conns.iter_mut().filter(|c| c.node == node && c.open) {
            conn.machine.local_advanced(feed, seq, now);
        }
        self.schedule(node, |s, now| s.local(feed, seq, now));
    }

    fn send(&mut self, from: usize, mut message: Message) {
        let to = self.conns[from].reverse;
        let (sender, receiver) = (self.conns[from].node, self.conns[to].node);
        let store = &self.stores[sender];
        message
            .fill_heads(|feed, seq| store.entry(&feed, seq).map(|e| e.expect("announced entry held").hash()))
            .expect("store");
        if !self.conns[to].open {
            return;
        }
        let mut frame = message.encode();
        self.sent[sender].count(&message, frame.len());
        if let Message::Records { records } = &message {
            if self.mute == Some((sender, receiver)) {
                return;
            }
            self.delivered[receiver] += records.len();
        }
        if let Message::Chunk { records, .. } = &message {
            self.chunk_records[receiver] += records.len();
        }
        if let Some(tamper) = &mut self.tamper {
            tamper(sender, receiver, &mut frame);
        }
        self.conns[to].inbox.push_back(frame);
    }

    /// Closes both ends of the connection that end `i` ([`Net::conns`])
    /// belongs to; frames in flight are lost.
    pub fn close(&mut self, i: usize) {
        let j = self.conns[i].reverse;
        for k in [i, j] {
            self.conns[k].open = false;
            self.conns[k].inbox.clear();
            let node = self.conns[k].node;
            self.schedule(node, |s, now| s.disconnect(k as u64, now));
        }
    }

    /// Drains connection `i`'s outputs; returns whether there were any.
    fn drain(&mut self, i: usize) -> bool {
        let mut progress = false;
        loop {
            if !self.conns[i].open {
                return progress;
            }
            if let Some(message) = self.conns[i].machine.poll_transmit() {
                progress = true;
                self.send(i, message);
                continue;
            }
            if let Some(action) = self.conns[i].machine.poll_action() {
                progress = true;
                self.execute(i, action);
                continue;
            }
            if !self.conns[i].machine.owes() {
                return progress;
            }
            progress = true;
            self.pay(i);
        }
    }

    /// Sends the next Chunk or Records message connection `i` owes its
    /// peer, as a node whose outbox to this peer is empty.
    fn pay(&mut self, i: usize) {
        let store = &self.stores[self.conns[i].node];
        if let Some(Serve { id, feed, from, to }) = self.conns[i].machine.next_serve() {
            let chunk = serve_fetch(store, id, feed, from, to, MAX_FRAME).expect("serve");
            self.send(i, chunk);
            return;
        }
        let taken = self.conns[i].machine.take_sends(MAX_RECORDS_PER_MESSAGE);
        let (records, unread) = read_ranges(store, taken, MAX_FRAME).expect("read");
        self.conns[i].machine.unsent(unread);
        for message in pack_records(records) {
            self.send(i, message);
        }
    }

    fn execute(&mut self, i: usize, action: Action) {
        let node = self.conns[i].node;
        let now = self.now;
        match action {
            Action::Store(records) => match self.stores[node].append(&records) {
                Ok(_) => {
                    let mut latest: BTreeMap<FeedId, u64> = BTreeMap::new();
                    for record in &records {
                        latest.insert(record.entry().author(), record.entry().seq());
                    }
                    for (feed, _) in latest {
                        let seq = self.stores[node].latest(&feed).expect("latest").unwrap_or(0);
                        self.advanced(node, feed, seq);
                    }
                }
                Err(StoreError::Rejected { index, error }) => {
                    let entry = records[index].entry();
                    self.conns[i]
                        .machine
                        .store_refused(entry.author(), entry.seq(), error, now);
                }
                Err(StoreError::Fork { proof, .. }) => {
                    for conn in self.conns.iter_mut().filter(|c| c.node == node && c.open) {
                        conn.machine.local_fork(&proof, now);
                    }
                }
                Err(other) => panic!("store failed: {other}"),
            },
            Action::Fork(proof) => {
                self.stores[node].record_fork(&proof).expect("record fork");
                for conn in self.conns.iter_mut().filter(|c| c.node == node && c.open) {
                    conn.machine.local_fork(&proof, now);
                }
            }
            Action::CheckHead { feed, seq, head } => {
                let held = self.stores[node].entry(&feed, seq).expect("entry").expect("held");
                if held.hash() != head {
                    self.conns[i].machine.head_differs(feed, seq, now);
                }
            }
            Action::Evidence { entry, .. } => {
                let held = self.stores[node].entry(&entry.author(), entry.seq()).expect("entry");
                if let Ok(proof) = ForkProof::new(held.expect("held"), *entry) {
                    self.execute(i, Action::Fork(Box::new(proof)));
                }
            }
            Action::Stalled { feed, .. } => {
                self.stalls += 1;
                self.schedule(node, |s, now| s.stalled(i as u64, feed, now));
            }
            Action::Fetched { id, result } => self.fetched.push((node, id, result)),
            Action::Disconnect(error) => {
                self.disconnects.push((node, self.conns[i].peer, error));
                self.close(i);
            }
        }
    }

    /// Moves messages and executes actions until nothing happens; returns the
    /// number of rounds. A round drains every connection's outputs, then
    /// hands each connection the oldest frame in its inbox, then moves the
    /// clock by 1 ms. When idle with a timer pending (a scheduler's stall
    /// timeout), jumps the clock to it and carries on.
    ///
    /// # Panics
    ///
    /// If the network is still busy after 100,000 rounds.
    pub fn run_until_idle(&mut self) -> usize {
        let mut jumps = 0;
        for round in 0..100_000 {
            let mut progress = false;
            for i in 0..self.conns.len() {
                progress |= self.drain(i);
            }
            for i in 0..self.conns.len() {
                if let Some(frame) = self.conns[i].inbox.pop_front() {
                    progress = true;
                    let now = self.now;
                    self.conns[i].machine.handle_frame(&frame, now);
                    if self.conns[i].open {
                        let (node, clock) = (self.conns[i].node, self.conns[i].machine.peer_clock());
                        self.schedule(node, |s, now| s.claims(i as u64, clock, now));
                    }
                }
            }
            self.now += 1;
            if progress {
                continue;
            }
            let timer = self.schedulers.iter().flatten().filter_map(|s| s.poll_timeout()).min();
            match timer {
                Some(at) if jumps < 1_000 => {
                    jumps += 1;
                    self.now = self.now.max(at);
                    for node in 0..self.schedulers.len() {
                        self.schedule(node, |s, now| s.tick(now));
                    }
                }
                _ => return round,
            }
        }
        panic!("the network never went idle");
    }

    /// Every record (entry bytes and payload) of every feed `node` holds.
    pub fn contents(&self, node: usize) -> BTreeMap<FeedId, Vec<RawRecord>> {
        let store = &self.stores[node];
        store
            .clock()
            .expect("clock")
            .into_keys()
            .map(|feed| {
                let records = store.range(&feed, 1, u64::MAX, usize::MAX).expect("range");
                let records = records
                    .into_iter()
                    .map(|(entry, payload)| (entry.as_bytes().to_vec(), payload))
                    .collect();
                (feed, records)
            })
            .collect()
    }

    /// Asserts that every node holds the same `feeds` feeds, entry for entry,
    /// and that nobody disconnected.
    ///
    /// # Panics
    ///
    /// When they do not, or a node disconnected a peer.
    pub fn assert_converged(&self, feeds: usize) {
        let first = self.contents(0);
        assert_eq!(first.len(), feeds);
        for node in 1..self.stores.len() {
            assert!(self.contents(node) == first, "node {node} differs from node 0");
        }
        assert!(self.disconnects.is_empty(), "{:?}", self.disconnects);
    }

    /// The machine of `node` for its connection to `peer`.
    ///
    /// # Panics
    ///
    /// If they were never connected.
    pub fn conn(&self, node: usize, peer: usize) -> &PeerSync {
        &self
            .conns
            .iter()
            .find(|c| c.node == node && c.peer == peer)
            .expect("conn")
            .machine
    }
}
