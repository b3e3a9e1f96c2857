//! The replication state machine (spec/PROTOCOL.md part 2) driven by an
//! in-memory network: N nodes, each with a `MemoryStore`, connected by
//! message queues on a virtual clock, with a hook to tamper with frames in
//! flight.

use std::collections::{BTreeMap, VecDeque};

use feedmesh::feed::{Entry, FeedId, Keypair, NewEntry, Timestamp, sign, verify_batch};
use feedmesh::store::{MemoryStore, Store, StoreError};
use feedmesh::sync::{Action, ClockEntry, Message, PeerSync, ProtocolError, STALL_TIMEOUT_MS, pack_records};
use feedmesh::writer::FeedWriter;

/// A record as stored and sent: an entry and its payload.
type Record = (Entry, Option<Vec<u8>>);
/// A record as raw bytes: the entry's bytes and its payload.
type RawRecord = (Vec<u8>, Option<Vec<u8>>);

/// Changes a frame in flight from node `from` to node `to`.
type Tamper = Box<dyn FnMut(usize, usize, &mut Vec<u8>)>;

/// One end of a connection: node `node`'s machine for its peer `peer`.
struct Conn {
    node: usize,
    peer: usize,
    /// The connection's other end.
    reverse: usize,
    machine: PeerSync,
    /// Frames from the peer, not yet handled.
    inbox: VecDeque<Vec<u8>>,
    open: bool,
}

struct Net {
    now: u64,
    stores: Vec<MemoryStore>,
    conns: Vec<Conn>,
    tamper: Option<Tamper>,
    /// Records received per node.
    delivered: Vec<usize>,
    /// Every disconnect: the node that disconnected, its peer, why.
    disconnects: Vec<(usize, usize, ProtocolError)>,
    stalls: usize,
}

impl Net {
    fn new(nodes: usize) -> Net {
        Net {
            now: 1_000,
            stores: (0..nodes).map(|_| MemoryStore::new()).collect(),
            conns: Vec::new(),
            tamper: None,
            delivered: vec![0; nodes],
            disconnects: Vec::new(),
            stalls: 0,
        }
    }

    fn connect(&mut self, a: usize, b: usize) {
        let (i, j) = (self.conns.len(), self.conns.len() + 1);
        for (node, peer, reverse) in [(a, b, j), (b, a, i)] {
            let mut machine = PeerSync::new();
            machine.start(&self.stores[node].clock().expect("clock"), self.now);
            self.conns.push(Conn {
                node,
                peer,
                reverse,
                machine,
                inbox: VecDeque::new(),
                open: true,
            });
        }
    }

    /// Appends `count` entries to `node`'s own feed (key seed `seed`) and
    /// tells the node's connections.
    fn write(&mut self, node: usize, seed: u8, count: usize) -> FeedId {
        let store = &self.stores[node];
        let mut writer = FeedWriter::open(store, Keypair::from_seed([seed; 32])).expect("writer");
        let payloads: Vec<Vec<u8>> = (0..count)
            .map(|i| format!("{seed}:{}:{i}", self.now).into_bytes())
            .collect();
        let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        let entries = writer.append(store, &refs, self.now).expect("append");
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
    }

    fn send(&mut self, from: usize, message: Message) {
        let to = self.conns[from].reverse;
        if !self.conns[to].open {
            return;
        }
        if let Message::Records { records } = &message {
            self.delivered[self.conns[to].node] += records.len();
        }
        let mut frame = message.encode();
        if let Some(tamper) = &mut self.tamper {
            tamper(self.conns[from].node, self.conns[to].node, &mut frame);
        }
        self.conns[to].inbox.push_back(frame);
    }

    fn close(&mut self, i: usize) {
        let j = self.conns[i].reverse;
        for k in [i, j] {
            self.conns[k].open = false;
            self.conns[k].inbox.clear();
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
            let Some(action) = self.conns[i].machine.poll_action() else {
                return progress;
            };
            progress = true;
            self.execute(i, action);
        }
    }

    fn execute(&mut self, i: usize, action: Action) {
        let node = self.conns[i].node;
        let now = self.now;
        match action {
            Action::Send { feed, from, to } => {
                let records = self.stores[node].range(&feed, from, to, usize::MAX).expect("range");
                for message in pack_records(records) {
                    self.send(i, message);
                }
            }
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
            Action::Stalled { .. } => self.stalls += 1,
            Action::Disconnect(error) => {
                self.disconnects.push((node, self.conns[i].peer, error));
                self.close(i);
            }
        }
    }

    /// Moves messages and executes actions until nothing happens; returns the
    /// number of rounds.
    fn run_until_idle(&mut self) -> usize {
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
                }
            }
            self.now += 1;
            if !progress {
                return round;
            }
        }
        panic!("the network never went idle");
    }

    /// Every record (entry bytes and payload) of every feed `node` holds.
    fn contents(&self, node: usize) -> BTreeMap<FeedId, Vec<RawRecord>> {
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

    fn assert_converged(&self, feeds: usize) {
        let first = self.contents(0);
        assert_eq!(first.len(), feeds);
        for node in 1..self.stores.len() {
            assert!(self.contents(node) == first, "node {node} differs from node 0");
        }
        assert!(self.disconnects.is_empty(), "{:?}", self.disconnects);
    }

    /// The machine of `node` for its connection to `peer`.
    fn conn(&self, node: usize, peer: usize) -> &PeerSync {
        &self
            .conns
            .iter()
            .find(|c| c.node == node && c.peer == peer)
            .expect("conn")
            .machine
    }
}

#[test]
fn two_nodes_converge_and_stay_live() {
    let mut net = Net::new(2);
    let a = net.write(0, 1, 300);
    let b = net.write(1, 2, 40);
    net.connect(0, 1);
    net.run_until_idle();
    net.assert_converged(2);
    assert_eq!(net.delivered, vec![40, 300]);
    // Each side knows what the other holds (the acknowledgement channel).
    assert_eq!(net.conn(0, 1).peer_clock(), BTreeMap::from([(a, 300), (b, 40)]));
    assert_eq!(net.conn(1, 0).peer_clock(), BTreeMap::from([(a, 300), (b, 40)]));

    // Live: new entries are pushed as they are written, nothing twice.
    net.write(0, 1, 5);
    net.run_until_idle();
    net.write(0, 1, 1500);
    net.write(1, 2, 1);
    net.run_until_idle();
    net.assert_converged(2);
    assert_eq!(net.delivered, vec![41, 1805]);
    assert_eq!(net.conn(0, 1).peer_latest(&a), 1805);
}

#[test]
fn three_nodes_in_a_line_converge_through_the_middle() {
    let mut net = Net::new(3);
    net.write(0, 1, 100);
    net.write(2, 3, 70);
    net.connect(0, 1);
    net.connect(1, 2);
    net.run_until_idle();
    net.assert_converged(2);
    // Live relay in both directions.
    net.write(2, 3, 10);
    net.write(0, 1, 10);
    net.write(1, 2, 3);
    net.run_until_idle();
    net.assert_converged(3);
    // Every record crossed each link once: A and C each got the other's 80
    // and B's 3; B got 110 + 80.
    assert_eq!(net.delivered, vec![83, 190, 113]);
}

#[test]
fn a_node_holding_a_prefix_receives_only_what_it_lacks() {
    let mut net = Net::new(2);
    let a = net.write(0, 1, 200);
    let prefix = net.stores[0].range(&a, 1, 120, usize::MAX).expect("range");
    let verified = verify_batch(prefix).expect("valid");
    net.stores[1].append(&verified).expect("append");
    net.connect(0, 1);
    net.run_until_idle();
    net.assert_converged(1);
    assert_eq!(net.delivered, vec![0, 80]);
}

/// A net where A holds `count` entries of its feed and the first Records
/// frame from A to B goes through `tamper`.
fn tampered_run(count: usize, mut tamper: impl FnMut(&mut Vec<u8>) + 'static) -> Net {
    let mut net = Net::new(2);
    net.write(0, 1, count);
    let mut done = false;
    net.tamper = Some(Box::new(move |from, _to, frame| {
        if from == 0 && !done && matches!(Message::decode(frame), Ok(Message::Records { .. })) {
            done = true;
            tamper(frame);
        }
    }));
    net.connect(0, 1);
    net.run_until_idle();
    net
}

fn disconnect_rule(net: &Net) -> &'static str {
    match net.disconnects.as_slice() {
        [(1, 0, ProtocolError::InvalidEntry { error, .. })] => error.rule(),
        other => panic!("expected one invalid-entry disconnect by B, got {other:?}"),
    }
}

#[test]
fn a_tampered_payload_disconnects_and_stores_nothing_of_the_message() {
    // The frame's last byte is inside the last record's payload.
    let net = tampered_run(50, |frame| *frame.last_mut().expect("non-empty") ^= 1);
    assert_eq!(disconnect_rule(&net), "V13 payload-hash");
    assert!(net.stores[1].clock().expect("clock").is_empty());
}

#[test]
fn a_tampered_signature_disconnects_and_stores_nothing_of_the_message() {
    // Records frame: 0x82 0x01 0x98 0x32 (50 records), then 0x82 and the
    // first entry; flip a byte of its signature (the entry's last 64 bytes).
    let entry_len = {
        let store = MemoryStore::new();
        let mut writer = FeedWriter::open(&store, Keypair::from_seed([1; 32])).expect("writer");
        writer.append(&store, &[b"x"], 1).expect("append")[0].as_bytes().len()
    };
    let net = tampered_run(50, move |frame| frame[5 + entry_len - 10] ^= 0x40);
    assert_eq!(disconnect_rule(&net), "V6 signature");
    assert!(net.stores[1].clock().expect("clock").is_empty());
}

#[test]
fn garbage_disconnects_the_sender_and_honest_links_carry_on() {
    let mut net = Net::new(3);
    net.write(0, 1, 20);
    net.tamper = Some(Box::new(|from, to, frame| {
        if from == 0 && to == 2 {
            frame.insert(0, 0xff);
        }
    }));
    net.connect(0, 2);
    net.connect(0, 1);
    net.connect(1, 2);
    net.run_until_idle();
    assert!(matches!(
        net.disconnects.as_slice(),
        [(2, 0, ProtocolError::Malformed(_))]
    ));
    net.disconnects.clear();
    net.assert_converged(1);
}

/// Signs `count` entries of the feed with key seed `seed`.
fn signed_feed(seed: u8, count: u64) -> Vec<Record> {
    signed_variant(seed, count, 0)
}

/// Like [`signed_feed`], with payloads salted by `salt`: a different branch.
fn signed_variant(seed: u8, count: u64, salt: u8) -> Vec<Record> {
    let keys = Keypair::from_seed([seed; 32]);
    let mut out: Vec<Record> = Vec::new();
    for seq in 1..=count {
        let mut payload = seq.to_be_bytes().to_vec();
        payload.push(salt);
        let skip = feedmesh::feed::has_skip_link(seq).then(|| out[(feedmesh::feed::lipmaa(seq) - 1) as usize].0.hash());
        let new = NewEntry {
            seq,
            prev: out.last().map(|(e, _)| e.hash()),
            skip,
            timestamp: Timestamp::new(10 + seq, 0),
            payload: &payload,
        };
        out.push(sign(&keys, &new).expect("sign").into_parts());
    }
    out
}

fn actions(machine: &mut PeerSync) -> Vec<Action> {
    std::iter::from_fn(|| machine.poll_action()).collect()
}

#[test]
fn records_that_were_not_asked_for_disconnect() {
    let mut machine = PeerSync::new();
    machine.start(&BTreeMap::new(), 0);
    let records = signed_feed(9, 3);
    let feed = records[0].0.author();
    machine.handle_message(Message::Records { records }, 1);
    assert_eq!(
        actions(&mut machine),
        vec![Action::Disconnect(ProtocolError::Unrequested { feed, seq: 1 })]
    );
    assert!(machine.poll_transmit().is_none());
}

#[test]
fn gaps_and_disorder_disconnect_without_storing() {
    let feed_records = signed_feed(9, 6);
    let feed = feed_records[0].0.author();
    let claim = Message::Clock {
        feeds: vec![ClockEntry {
            feed,
            latest: 6,
            want: false,
        }],
    };
    for (picked, expected, found) in [(vec![2, 3], 1, 3), (vec![0, 1, 3], 3, 4), (vec![0, 2], 2, 3)] {
        let mut machine = PeerSync::new();
        machine.start(&BTreeMap::new(), 0);
        machine.handle_message(claim.clone(), 1);
        // This side lacks the feed: it answers with want = true.
        let mut wants = false;
        while let Some(message) = machine.poll_transmit() {
            if let Message::Clock { feeds } = message {
                wants |= feeds.iter().any(|c| c.feed == feed && c.want && c.latest == 0);
            }
        }
        assert!(wants);
        let records = picked.iter().map(|&i| feed_records[i].clone()).collect();
        machine.handle_message(Message::Records { records }, 2);
        assert_eq!(
            actions(&mut machine),
            vec![Action::Disconnect(ProtocolError::OutOfOrder { feed, expected, found })]
        );
    }
}

#[test]
fn a_broken_chain_across_messages_disconnects() {
    let honest = signed_feed(9, 4);
    let branch = signed_variant(9, 4, 1);
    let feed = honest[0].0.author();
    let mut machine = PeerSync::new();
    machine.start(&BTreeMap::from([(feed, 0)]), 0);
    machine.handle_message(
        Message::Records {
            records: honest[..2].to_vec(),
        },
        1,
    );
    assert!(matches!(actions(&mut machine).as_slice(), [Action::Store(v)] if v.len() == 2));
    // Entry 3 of another branch: its prev link is not entry 2's hash.
    machine.handle_message(
        Message::Records {
            records: vec![branch[2].clone()],
        },
        2,
    );
    match actions(&mut machine).as_slice() {
        [Action::Disconnect(ProtocolError::InvalidEntry { seq: 3, error, .. })] => {
            assert_eq!(error.rule(), "V9 prev-link")
        }
        other => panic!("{other:?}"),
    }
    // Entry 4 where 3 is expected.
    let mut machine = PeerSync::new();
    machine.start(&BTreeMap::from([(feed, 2)]), 0);
    machine.handle_message(
        Message::Records {
            records: vec![honest[3].clone()],
        },
        2,
    );
    assert!(matches!(
        actions(&mut machine).as_slice(),
        [Action::Disconnect(ProtocolError::OutOfOrder {
            expected: 3,
            found: 4,
            ..
        })]
    ));
}

#[test]
fn requests_are_answered_with_a_send_of_what_is_held() {
    let feed = signed_feed(9, 1)[0].0.author();
    let mut machine = PeerSync::new();
    machine.start(&BTreeMap::from([(feed, 100)]), 0);
    machine.handle_message(
        Message::Request {
            feed,
            from: 90,
            to: 500,
        },
        1,
    );
    machine.handle_message(
        Message::Request {
            feed,
            from: 101,
            to: 500,
        },
        1,
    );
    assert_eq!(
        actions(&mut machine),
        vec![Action::Send {
            feed,
            from: 90,
            to: 100
        }]
    );
}

#[test]
fn a_requested_range_is_accepted_and_a_gap_refused() {
    let records = signed_feed(9, 8);
    let feed = records[0].0.author();
    let mut machine = PeerSync::new();
    machine.start(&BTreeMap::new(), 0);
    assert!(machine.request_range(feed, 3, 8, 0).is_err());
    machine.request_range(feed, 1, 4, 0).expect("request");
    assert_eq!(machine.poll_transmit(), Some(Message::Clock { feeds: Vec::new() }));
    assert_eq!(machine.poll_transmit(), Some(Message::Request { feed, from: 1, to: 4 }));
    machine.handle_message(
        Message::Records {
            records: records[..4].to_vec(),
        },
        1,
    );
    assert!(matches!(actions(&mut machine).as_slice(), [Action::Store(v)] if v.len() == 4));
    // The request is complete; more records of that feed were not asked for.
    machine.handle_message(
        Message::Records {
            records: records[4..5].to_vec(),
        },
        2,
    );
    assert!(matches!(
        actions(&mut machine).as_slice(),
        [Action::Disconnect(ProtocolError::Unrequested { seq: 5, .. })]
    ));
}

#[test]
fn a_peer_that_claims_but_does_not_send_is_reported_stalled() {
    let feed = signed_feed(9, 1)[0].0.author();
    let mut machine = PeerSync::new();
    machine.start(&BTreeMap::new(), 0);
    machine.handle_message(
        Message::Clock {
            feeds: vec![ClockEntry {
                feed,
                latest: 5,
                want: true,
            }],
        },
        10,
    );
    assert_eq!(machine.poll_timeout(), Some(10 + STALL_TIMEOUT_MS));
    machine.handle_timeout(9 + STALL_TIMEOUT_MS);
    assert!(actions(&mut machine).is_empty());
    machine.handle_timeout(10 + STALL_TIMEOUT_MS);
    assert_eq!(
        actions(&mut machine),
        vec![Action::Stalled {
            feed,
            peer_latest: 5,
            held: 0
        }]
    );
}

#[test]
fn a_full_mesh_converges_despite_overlapping_senders() {
    let mut net = Net::new(4);
    for node in 0..4 {
        net.write(node, node as u8 + 1, 30 + node * 7);
    }
    for a in 0..4 {
        for b in a + 1..4 {
            net.connect(a, b);
        }
    }
    net.run_until_idle();
    net.assert_converged(4);
    for round in 0..5 {
        for node in 0..4 {
            net.write(node, node as u8 + 1, 3 + round);
        }
        net.run_until_idle();
    }
    net.assert_converged(4);
}

#[test]
fn arbitrary_frame_sequences_never_panic() {
    // A small deterministic generator (xorshift): frames are valid messages
    // of several kinds, mutated or cut at random, fed to one machine.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let records = signed_feed(9, 12);
    let feed = records[0].0.author();
    let templates: Vec<Vec<u8>> = vec![
        Message::Clock {
            feeds: vec![ClockEntry {
                feed,
                latest: 12,
                want: true,
            }],
        }
        .encode(),
        Message::Records {
            records: records[..6].to_vec(),
        }
        .encode(),
        Message::Records {
            records: records[6..].to_vec(),
        }
        .encode(),
        Message::Request { feed, from: 1, to: 3 }.encode(),
    ];
    for _ in 0..300 {
        let mut machine = PeerSync::new();
        machine.start(&BTreeMap::from([(feed, next() % 3)]), 0);
        for step in 0..8u64 {
            let mut frame = templates[(next() % templates.len() as u64) as usize].clone();
            match next() % 4 {
                0 => {
                    let at = (next() % frame.len() as u64) as usize;
                    frame[at] ^= 1 << (next() % 8);
                }
                1 => frame.truncate((next() % frame.len() as u64) as usize),
                _ => {}
            }
            machine.handle_frame(&frame, step);
            machine.local_advanced(feed, next() % 14, step);
            machine.handle_timeout(step * STALL_TIMEOUT_MS);
            while machine.poll_transmit().is_some() {}
            let drained = actions(&mut machine);
            if let Some(position) = drained.iter().position(|a| matches!(a, Action::Disconnect(_))) {
                assert_eq!(position, drained.len() - 1, "a disconnect is the last action");
                assert!(machine.is_closed());
            }
        }
    }
}
