//! The replication state machine (spec/PROTOCOL.md part 2), alone and in
//! the simulated network of `feedmesh_proto::sim`: N nodes, each with a
//! `MemoryStore` and a `ReplicationScheduler` (one sender per feed),
//! connected by message queues on a virtual clock, with hooks to tamper with
//! frames in flight or drop a node's records.
//!
//! Node `i` writes its own feed with the key of seed `i + 1`.

use std::collections::BTreeMap;

use feedmesh_proto::feed::{Entry, FeedId, Hash, Keypair, NewEntry, Timestamp, certificate_path, sign, verify_batch};
use feedmesh_proto::sim::{Net, STALL_MS, node_feed};
use feedmesh_proto::store::{MemoryStore, Store};
use feedmesh_proto::sync::{
    Action, ClockEntry, FETCH_TIMEOUT_MS, FetchError, MAX_FETCHES_PER_PEER, MAX_FRAME, MAX_PENDING_RANGES, Message,
    PeerSync, ProtocolError, STALL_TIMEOUT_MS, pack_chunk, serve_fetch,
};
use feedmesh_proto::writer::FeedWriter;

/// A record as stored and sent: an entry and its payload.
type Record = (Entry, Option<Vec<u8>>);

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
        let skip = feedmesh_proto::feed::has_skip_link(seq)
            .then(|| out[(feedmesh_proto::feed::lipmaa(seq) - 1) as usize].0.hash());
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
            frozen: false,
            head: Some(Hash([0; 32])),
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
fn requests_queue_what_is_held_to_send() {
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
    assert_eq!(actions(&mut machine), vec![]);
    assert!(machine.owes());
    assert_eq!(machine.take_sends(8), vec![(feed, 90, 97)]);
    // What a read leaves goes back in front.
    machine.unsent(vec![(feed, 96, 97)]);
    assert_eq!(machine.take_sends(100), vec![(feed, 96, 97), (feed, 98, 100)]);
    assert!(!machine.owes());
}

#[test]
fn a_peer_that_queues_too_many_ranges_or_fetches_is_flooding() {
    let feeds: Vec<FeedId> = (0..=MAX_PENDING_RANGES as u64)
        .map(|n| {
            let mut id = [0u8; 32];
            id[..8].copy_from_slice(&n.to_le_bytes());
            FeedId(id)
        })
        .collect();
    let held: BTreeMap<FeedId, u64> = feeds.iter().map(|&feed| (feed, 10)).collect();
    // One Request per feed queues a range each: the limit holds, one more floods.
    let mut machine = PeerSync::new();
    machine.start(&held, 0);
    for (i, &feed) in feeds.iter().enumerate() {
        machine.handle_message(Message::Request { feed, from: 1, to: 1 }, 1);
        let flooded = matches!(
            actions(&mut machine).as_slice(),
            [Action::Disconnect(ProtocolError::Flooding { max })] if *max == MAX_PENDING_RANGES
        );
        assert_eq!(flooded, i == MAX_PENDING_RANGES, "request {i}");
    }
    // Fetches wait until the driver takes them: the limit counts only those.
    let mut machine = PeerSync::new();
    machine.start(&held, 0);
    let fetch = |id| Message::Fetch {
        id,
        feed: feeds[0],
        from: 1,
        to: 1,
    };
    for id in 0..MAX_FETCHES_PER_PEER as u64 {
        machine.handle_message(fetch(id), 1);
    }
    assert_eq!(machine.next_serve().map(|serve| serve.id), Some(0));
    machine.handle_message(fetch(99), 1);
    assert_eq!(actions(&mut machine), vec![]);
    machine.handle_message(fetch(100), 1);
    assert!(matches!(
        actions(&mut machine).as_slice(),
        [Action::Disconnect(ProtocolError::Flooding { max })] if *max == MAX_FETCHES_PER_PEER
    ));
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
                frozen: false,
                head: Some(Hash([0; 32])),
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
    net.connect_all();
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
                frozen: false,
                head: Some(Hash([0; 32])),
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

/// Records each node received per entry it did not write, when each of
/// `nodes` fully connected nodes writes `per_node` entries (half before
/// connecting, half live in rounds).
fn records_per_foreign_entry(mut net: Net, nodes: usize, per_node: usize) -> f64 {
    for node in 0..nodes {
        net.write(node, node as u8 + 1, per_node / 2);
    }
    net.connect_all();
    net.run_until_idle();
    for _ in 0..(per_node - per_node / 2) / 5 {
        for node in 0..nodes {
            net.write(node, node as u8 + 1, 5);
        }
        net.run_until_idle();
    }
    net.assert_converged(nodes);
    let foreign = (per_node * (nodes - 1)) as f64;
    net.delivered.iter().map(|&d| d as f64 / foreign).sum::<f64>() / nodes as f64
}

#[test]
fn a_full_mesh_receives_each_entry_about_once() {
    let pair = records_per_foreign_entry(Net::new(2), 2, 100);
    assert!((pair - 1.0).abs() < 1e-9, "a pair receives each entry once: {pair}");
    let mesh = records_per_foreign_entry(Net::new(5), 5, 100);
    let factor = mesh / pair;
    eprintln!("records per foreign entry: pair {pair:.3}, 5-node mesh {mesh:.3}; duplication factor {factor:.3}");
    assert!(factor <= 1.25, "duplication factor {factor}");
    // What one sender per feed saves: with every peer a sender, each entry
    // comes from several of them.
    let flood =
        records_per_foreign_entry(Net::flooding(5), 5, 100) / records_per_foreign_entry(Net::flooding(2), 2, 100);
    eprintln!("duplication factor without sender choice: {flood:.3}");
    assert!(flood > 1.5 * factor, "flood {flood}, scheduled {factor}");
    // In a full mesh every feed comes from its author.
    let mut net = Net::new(3);
    net.connect_all();
    net.write(0, 1, 3);
    net.run_until_idle();
    assert!(net.conn(1, 0).peer_clock().contains_key(&node_feed(0)));
    for node in [1, 2] {
        let scheduler = net.schedulers[node].as_ref().expect("scheduler");
        let sender = scheduler.sender(&node_feed(0)).expect("a sender") as usize;
        assert_eq!(net.conns[sender].peer, 0);
    }
}

#[test]
fn a_stalled_sender_is_replaced_and_the_node_converges() {
    let mut net = Net::new(3);
    let a = net.write(0, 1, 50);
    net.connect(0, 1);
    net.run_until_idle();
    // Node 2 wants A's feed from its author, whose records never arrive.
    net.mute = Some((0, 2));
    net.connect(0, 2);
    net.connect(1, 2);
    net.write(0, 1, 10);
    let before = net.now;
    net.run_until_idle();
    net.assert_converged(1);
    assert!(net.now >= before + STALL_MS, "converged only after the stall timeout");
    let scheduler = net.schedulers[2].as_ref().expect("scheduler");
    let sender = scheduler.sender(&a).expect("a sender") as usize;
    assert_eq!(net.conns[sender].peer, 1, "node 1 took over");
    // Live entries keep coming through the new sender.
    net.write(0, 1, 7);
    net.run_until_idle();
    net.assert_converged(1);
    assert_eq!(net.stores[2].latest(&a).expect("latest"), Some(67));
    // The new sender leaving hands the feed back, and replication goes on.
    net.mute = None;
    let conn = net.conns.iter().position(|c| c.node == 2 && c.peer == 1).expect("conn");
    net.close(conn);
    net.write(0, 1, 3);
    net.run_until_idle();
    net.disconnects.clear();
    net.assert_converged(1);
}

#[test]
fn a_star_converges_through_the_hub_with_each_entry_once() {
    let mut net = Net::new(4);
    for leaf in 1..4 {
        net.connect(0, leaf);
    }
    for node in 0..4 {
        net.write(node, node as u8 + 1, 20);
    }
    net.run_until_idle();
    net.assert_converged(4);
    // The hub receives each leaf's 20 once; each leaf the 60 others once.
    assert_eq!(net.delivered, vec![60, 60, 60, 60]);
}

#[test]
fn a_joiner_gets_each_entry_once_and_the_author_takes_its_feed_over() {
    let mut net = Net::new(4);
    for a in 0..3 {
        for b in a + 1..3 {
            net.connect(a, b);
        }
    }
    for node in 0..3 {
        net.write(node, node as u8 + 1, 100);
    }
    net.run_until_idle();
    let before = net.delivered[3];
    // Node 3 joins through nodes 0 and 1, then meets node 2.
    net.connect(0, 3);
    net.connect(1, 3);
    net.run_until_idle();
    net.connect(2, 3);
    net.write(2, 3, 10);
    net.run_until_idle();
    net.assert_converged(3);
    assert_eq!(net.delivered[3] - before, 310, "each entry once");
    let scheduler = net.schedulers[3].as_ref().expect("scheduler");
    for node in 0..3 {
        let sender = scheduler.sender(&node_feed(node)).expect("a sender") as usize;
        assert_eq!(net.conns[sender].peer, node, "feed of node {node} from its author");
    }
}

/// Connects nodes 0 and 1, then writes `count` entries of feed seed 9 into
/// node 0's store without telling any connection, so that node 1 holds none
/// of it and nothing replicates it: only fetches reach it.
fn net_with_unannounced_feed(count: usize) -> (Net, FeedId) {
    let mut net = Net::new(2);
    net.connect(0, 1);
    net.run_until_idle();
    let store = &net.stores[0];
    let mut writer = FeedWriter::open(store, Keypair::from_seed([9; 32])).expect("writer");
    let payloads: Vec<Vec<u8>> = (0..count).map(|i| format!("entry {}", i + 1).into_bytes()).collect();
    let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
    writer.append(store, &refs, net.now).expect("append");
    (net, writer.keys().feed_id())
}

/// Node 1 fetches `from..=to` of `feed` from node 0; returns the fetch id.
fn fetch(net: &mut Net, feed: FeedId, from: u64, to: u64) -> u64 {
    let now = net.now;
    let conn = net.conns.iter().position(|c| c.node == 1 && c.peer == 0).expect("conn");
    net.conns[conn].machine.fetch_range(feed, from, to, now).expect("fetch")
}

#[test]
fn a_node_holding_nothing_fetches_a_verified_range_with_its_certificate_path() {
    let (mut net, feed) = net_with_unannounced_feed(1000);
    let id = fetch(&mut net, feed, 500, 520);
    net.run_until_idle();
    assert!(net.disconnects.is_empty(), "{:?}", net.disconnects);
    let [(1, got, Ok(fetched))] = net.fetched.as_slice() else {
        panic!("{:?}", net.fetched);
    };
    assert_eq!(*got, id);
    assert_eq!(fetched.feed, feed);
    assert_eq!(fetched.latest, 1000);
    let expected = net.stores[0].range(&feed, 500, 520, usize::MAX).expect("range");
    let received: Vec<_> = fetched.records.iter().map(|r| r.clone().into_parts()).collect();
    assert_eq!(received, expected);
    assert!(received.iter().all(|(_, payload)| payload.is_some()));
    // 21 entries and the certificate path of 500 below it, not 520 entries.
    let path = certificate_path(500).len() - 1;
    assert!(path <= 2 * 6, "{path}"); // about 2 log3(500)
    assert_eq!(net.chunk_records, vec![0, 21 + path]);
    // Nothing was stored or replicated.
    assert_eq!(net.stores[1].latest(&feed).expect("latest"), None);
    assert_eq!(net.delivered, vec![0, 0]);

    // An answer shorter than asked ends where the responder's feed ends; a
    // range the responder does not hold gets an empty answer.
    net.fetched.clear();
    fetch(&mut net, feed, 995, 1010);
    fetch(&mut net, feed, 2000, 2001);
    net.run_until_idle();
    let lengths: Vec<_> = net
        .fetched
        .iter()
        .map(|(_, _, r)| r.as_ref().map(|f| (f.records.len(), f.latest)))
        .collect();
    assert_eq!(lengths, vec![Ok((6, 1000)), Ok((0, 1000))]);
    assert!(net.disconnects.is_empty());
}

#[test]
fn a_tampered_chunk_disconnects_and_yields_no_data() {
    // Flip one byte: the last (a payload byte), or one inside an entry of the
    // certificate path or of the range.
    for at in [usize::MAX, 200, 700, 1500] {
        let (mut net, feed) = net_with_unannounced_feed(1000);
        net.tamper = Some(Box::new(move |from, _, frame: &mut Vec<u8>| {
            if from == 0 && frame.get(1) == Some(&5) {
                let at = at.min(frame.len() - 1);
                frame[at] ^= 0x01;
            }
        }));
        fetch(&mut net, feed, 500, 520);
        net.run_until_idle();
        assert!(
            matches!(net.fetched.as_slice(), [(1, _, Err(FetchError::Closed))]),
            "byte {at}: {:?}",
            net.fetched
        );
        match net.disconnects.as_slice() {
            [(1, 0, error)] => assert!(
                ["invalid-chunk", "bad-chunk", "malformed"].contains(&error.reason()),
                "byte {at}: {error}"
            ),
            other => panic!("byte {at}: {other:?}"),
        }
        assert_eq!(net.stores[1].latest(&feed).expect("latest"), None);
    }
}

#[test]
fn an_unasked_chunk_disconnects() {
    let (net, feed) = net_with_unannounced_feed(10);
    let range = net.stores[0].range(&feed, 1, 3, usize::MAX).expect("range");
    let mut machine = PeerSync::new();
    machine.start(&BTreeMap::new(), 0);
    machine.handle_message(pack_chunk(7, feed, 10, Vec::new(), range), 0);
    assert_eq!(
        actions(&mut machine),
        vec![Action::Disconnect(ProtocolError::UnaskedChunk { id: 7 })]
    );
}

#[test]
fn a_chunk_for_another_range_disconnects() {
    let (net, feed) = net_with_unannounced_feed(10);
    let mut machine = PeerSync::new();
    machine.start(&BTreeMap::new(), 0);
    let id = machine.fetch_range(feed, 4, 6, 0).expect("fetch");
    // Entries 1..=3 with payloads: the certificate path of 4 is entry 1
    // alone, without its payload, and the range must start at 4.
    let range = net.stores[0].range(&feed, 1, 3, usize::MAX).expect("range");
    machine.handle_message(pack_chunk(id, feed, 10, Vec::new(), range), 0);
    let drained = actions(&mut machine);
    assert!(
        matches!(
            drained.as_slice(),
            [
                Action::Fetched {
                    result: Err(FetchError::Closed),
                    ..
                },
                Action::Disconnect(ProtocolError::BadChunk { .. })
            ]
        ),
        "{drained:?}"
    );
}

#[test]
fn fetches_are_bounded_and_time_out() {
    let feed = node_feed(5);
    let mut machine = PeerSync::new();
    machine.start(&BTreeMap::new(), 0);
    while machine.poll_transmit().is_some() {}
    let ids: Vec<u64> = (0..MAX_FETCHES_PER_PEER)
        .map(|i| machine.fetch_range(feed, 1, i as u64 + 1, 10).expect("fetch"))
        .collect();
    assert_eq!(
        machine.fetch_range(feed, 1, 1, 10),
        Err(FetchError::TooMany {
            max: MAX_FETCHES_PER_PEER
        })
    );
    assert!(matches!(
        machine.fetch_range(feed, 1, 5000, 10),
        Err(FetchError::TooLong { .. })
    ));
    assert_eq!(machine.fetch_range(feed, 0, 1, 10), Err(FetchError::EmptyRange));
    let sent = std::iter::from_fn(|| machine.poll_transmit()).count();
    assert_eq!(sent, MAX_FETCHES_PER_PEER);
    assert_eq!(machine.poll_timeout(), Some(10 + FETCH_TIMEOUT_MS));
    machine.handle_timeout(10 + FETCH_TIMEOUT_MS);
    let timed_out: Vec<u64> = actions(&mut machine)
        .into_iter()
        .map(|action| match action {
            Action::Fetched {
                id,
                result: Err(FetchError::TimedOut),
            } => id,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(timed_out, ids);
    assert_eq!(machine.poll_timeout(), None);
    assert!(!machine.is_closed());
}

#[test]
fn a_peer_claiming_more_of_our_own_feed_than_we_wrote_is_disconnected() {
    let own = node_feed(0);
    let mut machine = PeerSync::managed();
    machine.set_own(own);
    machine.start(&BTreeMap::from([(own, 3)]), 0);
    let claim = |latest| Message::Clock {
        feeds: vec![ClockEntry {
            feed: own,
            latest,
            want: true,
            frozen: false,
            head: Some(Hash([0; 32])),
        }],
    };
    // Holding what we wrote is an acknowledgement, not a lie.
    machine.handle_message(claim(3), 1);
    assert!(!machine.is_closed());
    assert_eq!(machine.peer_latest(&own), 3);
    machine.handle_message(claim(4), 2);
    assert_eq!(
        actions(&mut machine).last(),
        Some(&Action::Disconnect(ProtocolError::FalseClaim {
            feed: own,
            claimed: 4,
            held: 3
        }))
    );
    assert_eq!(machine.peer_latest(&own), 3, "the false claim is not counted");
}

/// Branch "a" of feed `seed` (`1..=len`) and the entry `fork_at` of a
/// branch "b" that shares `1..fork_at` with it.
fn forked_at(seed: u8, len: u64, fork_at: u64) -> (Vec<Record>, Record) {
    let a = signed_feed(seed, len);
    let at = (fork_at - 1) as usize;
    let payload = b"branch b".to_vec();
    let new = NewEntry {
        seq: fork_at,
        prev: a[..at].last().map(|(e, _)| e.hash()),
        skip: feedmesh_proto::feed::has_skip_link(fork_at)
            .then(|| a[(feedmesh_proto::feed::lipmaa(fork_at) - 1) as usize].0.hash()),
        timestamp: Timestamp::new(10 + fork_at, 0),
        payload: &payload,
    };
    (
        a,
        sign(&Keypair::from_seed([seed; 32]), &new).expect("sign").into_parts(),
    )
}

#[test]
fn a_v9_refusal_of_a_relayed_record_fetches_fork_evidence_instead_of_disconnecting() {
    let (a, b3) = forked_at(9, 4, 3);
    let feed = a[0].0.author();
    // This side holds 1, 2 and 3b; the relay holds 1, 2, 3a and 4a.
    let mut machine = PeerSync::new();
    machine.start(&BTreeMap::from([(feed, 3)]), 0);
    let claim = vec![ClockEntry {
        feed,
        latest: 4,
        want: true,
        frozen: false,
        head: Some(Hash([0; 32])),
    }];
    machine.handle_message(Message::Clock { feeds: claim }, 1);
    while machine.poll_transmit().is_some() {}
    machine.handle_message(
        Message::Records {
            records: vec![a[3].clone()],
        },
        2,
    );
    assert!(matches!(actions(&mut machine).as_slice(), [Action::Store(v)] if v.len() == 1));
    let error = feedmesh_proto::feed::ValidationError::PrevHashMismatch {
        seq: 4,
        expected: b3.0.hash(),
        found: a[2].0.hash(),
    };
    machine.store_refused(feed, 4, error.clone(), 3);
    assert_eq!(actions(&mut machine), vec![], "no disconnect");
    let Some(Message::Fetch {
        id,
        feed: asked,
        from: 3,
        to: 3,
    }) = machine.poll_transmit()
    else {
        panic!("no Fetch of entry 3");
    };
    assert_eq!(asked, feed);
    let relay = MemoryStore::new();
    relay.append(&verify_batch(a.clone()).expect("valid")).expect("append");
    let chunk = serve_fetch(&relay, id, feed, 3, 3, MAX_FRAME).expect("serve");
    machine.handle_message(chunk, 5);
    assert_eq!(
        actions(&mut machine),
        vec![Action::Evidence {
            entry: Box::new(a[2].0.clone()),
            error: Some(Box::new(error))
        }]
    );
    assert!(!machine.is_closed());
}

#[test]
fn forked_heads_at_the_same_seq_are_proven_on_both_sides_without_a_disconnect() {
    // Node 0 holds 1, 2, 3a and node 1 holds 1, 2, 3b of a third author's
    // feed: nothing is relayed, only the heads in the Clocks differ.
    let (a, b3) = forked_at(9, 3, 3);
    let feed = a[0].0.author();
    let mut net = Net::flooding(2);
    let mut b = a[..2].to_vec();
    b.push(b3);
    for (node, records) in [(0, &a), (1, &b)] {
        let verified = feedmesh_proto::feed::verify_batch(records.clone()).expect("valid");
        net.stores[node].append(&verified).expect("append");
    }
    net.connect(0, 1);
    net.run_until_idle();
    for node in 0..2 {
        assert_eq!(
            net.stores[node].frozen_at(&feed).expect("frozen_at"),
            Some(3),
            "node {node}"
        );
    }
    assert!(net.disconnects.is_empty(), "{:?}", net.disconnects);
    // Each side now marks the feed frozen (and unwanted) in its Clock.
    for conn in 0..2 {
        let machine = &mut net.conns[conn].machine;
        machine.local_advanced(feed, 4, net.now);
        let Some(Message::Clock { feeds }) = machine.poll_transmit() else {
            panic!("no Clock");
        };
        assert!(
            feeds.iter().any(|line| line.feed == feed && line.frozen && !line.want),
            "{feeds:?}"
        );
    }
}

#[test]
fn a_ring_with_chords_converges_and_every_record_sent_is_counted() {
    let mut net = Net::new(8);
    // The ring's 8 links, and 4 chords across it (offset 4 from either end
    // is the same link).
    net.connect_circulant(&[1, 4]);
    assert_eq!(net.conns.len(), 2 * 12);
    for round in 0..3 {
        for node in 0..8 {
            net.write(node, node as u8 + 1, 2 + round);
        }
        net.run_until_idle();
    }
    net.assert_converged(8);
    let records: u64 = net.sent.iter().map(|t| t.records).sum();
    assert_eq!(records as usize, net.delivered.iter().sum::<usize>());
    for traffic in &net.sent {
        let records = traffic.by_kind["records"];
        assert!(records.messages > 0 && records.bytes > traffic.records * 64);
        assert!(traffic.total().bytes > records.bytes, "the Clocks are counted too");
    }
}
