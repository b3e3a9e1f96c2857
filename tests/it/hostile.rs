//! A hostile peer that holds the network key against a mesh of honest
//! nodes over loopback (spec/PROTOCOL.md §2.2 "Which feeds a node takes",
//! "Memory"): what it claims or offers must not make an honest node hold,
//! want or announce more than its honest neighbours accept, and the honest
//! nodes keep replicating to each other.

use crate::common::admins;
use crate::common::hostile;
use crate::common::nodes;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use admins::{admin_dir, member_dir};
use feedmesh::feed::{FeedId, Hash, Keypair, NewEntry, Timestamp, sign};
use feedmesh::net::{MAX_MESSAGE, MIN_OUTBOX_SHARE};
use feedmesh::node::{DEFAULT_OUTBOX_BUDGET, Node};
use feedmesh::sessions::Sessions;
use feedmesh::sync::{
    ClockEntry, MAX_FEEDS_PER_CLOCK, MAX_FEEDS_PER_PEER, MAX_FETCH_RANGE, MAX_FETCHES_PER_PEER,
    MAX_RECORDS_PER_MESSAGE, Message,
};
use hostile::Rogue;
use nodes::{addr, config, eventually, net, start, start_sessions};

/// Waits until `node` holds `feed` up to `seq`.
async fn until_holds(node: &Node, feed: FeedId, seq: u64) {
    eventually(&format!("{feed} reaches {seq}"), || {
        node.clock().expect("clock").get(&feed).copied().unwrap_or(0) >= seq
    })
    .await;
}

/// Appends one entry on `from` and waits until `to` holds it: the honest
/// path still carries entries.
async fn delivered(from: &Node, to: &Node, payload: &str) {
    let entry = from.append(payload.as_bytes()).await.expect("append");
    until_holds(to, from.id(), entry.seq()).await;
}

/// [`delivered`], timed.
async fn latency(from: &Node, to: &Node, payload: &str) -> Duration {
    let began = Instant::now();
    delivered(from, to, payload).await;
    began.elapsed()
}

/// No honest node cut another for going over a limit.
fn no_limit_disconnects(nodes: &[&Node]) {
    for node in nodes {
        let disconnects = node.disconnects();
        for reason in ["too-many-feeds", "flooding"] {
            assert_eq!(disconnects.get(reason), None, "{}: {disconnects:?}", node.id());
        }
    }
}

/// `count` feed ids nobody holds, in ascending order (as Clocks list them).
fn made_up_feeds(count: usize) -> Vec<FeedId> {
    let feeds: BTreeSet<FeedId> = (0..count as u64)
        .map(|i| FeedId(*blake3::hash(&i.to_le_bytes()).as_bytes()))
        .collect();
    feeds.into_iter().collect()
}

/// A Clock claiming entry 1 of each of `feeds` (ascending), wanting none.
fn claim_first_entries(feeds: &[FeedId]) -> Message {
    let feeds = feeds
        .iter()
        .map(|&feed| ClockEntry {
            feed,
            latest: 1,
            want: false,
            frozen: false,
            head: Some(Hash([0; 32])),
        })
        .collect();
    Message::Clock { feeds }
}

/// Entry 1 of a fresh feed, timestamped now.
fn first_entry(keys: &Keypair) -> (feedmesh::feed::Entry, Option<Vec<u8>>) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("time").as_millis() as u64;
    let entry = NewEntry {
        seq: 1,
        prev: None,
        skip: None,
        timestamp: Timestamp::new(now, 0),
        payload: b"one of many",
    };
    sign(keys, &entry).expect("sign").into_parts()
}

/// Has `rogue` offer entry 1 of each feed of `authors` (in feed id order),
/// wait until the node wants at least `count` of them, and send those.
/// Returns the feeds the node wanted.
async fn offer(rogue: &mut Rogue, authors: &[Keypair], count: usize) -> BTreeSet<FeedId> {
    let feeds: Vec<FeedId> = authors.iter().map(Keypair::feed_id).collect();
    for chunk in feeds.chunks(MAX_FEEDS_PER_CLOCK) {
        rogue.send(&claim_first_entries(chunk)).await;
    }
    let wanted = rogue.until_wanted(count).await;
    let records: Vec<_> = authors
        .iter()
        .filter(|keys| wanted.contains(&keys.feed_id()))
        .map(first_entry)
        .collect();
    for chunk in records.chunks(MAX_RECORDS_PER_MESSAGE) {
        rogue
            .send(&Message::Records {
                records: chunk.to_vec(),
            })
            .await;
    }
    wanted
}

/// `count` fresh identities, in feed id order.
fn authors(count: usize) -> Vec<Keypair> {
    let mut authors: Vec<Keypair> = (0..count).map(|_| Keypair::generate().expect("keys")).collect();
    authors.sort_by_key(Keypair::feed_id);
    authors
}

async fn start_with_budget(dir: &Path, max_feeds: usize) -> Node {
    let mut config = config(dir, vec![]);
    config.max_feeds = max_feeds;
    Sessions::start(config).await.expect("start").node().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_of_feeds_nobody_holds_die_with_the_claimer() {
    // A - B - C in a line; the rogue claims MAX_FEEDS_PER_PEER made-up
    // feeds to B, waits until B wants them, and leaves.
    let net = net(3);
    let b = start(&net.dirs[1], vec![]).await;
    let a = start(&net.dirs[0], vec![addr(&b)]).await;
    let c = start(&net.dirs[2], vec![addr(&b)]).await;
    b.append(b"own").await.expect("append");
    delivered(&a, &c, "before").await;

    let mut rogue = Rogue::connect(addr(&b), &net.key).await;
    let claimed = made_up_feeds(MAX_FEEDS_PER_PEER);
    for chunk in claimed.chunks(MAX_FEEDS_PER_CLOCK) {
        rogue.send(&claim_first_entries(chunk)).await;
    }
    // B wants as many as its feed budget lets it, from the rogue only.
    let wanted = rogue.until_wanted(60_000).await;
    assert!(wanted.len() < MAX_FEEDS_PER_PEER - 2, "{} wanted", wanted.len());
    drop(rogue);

    // The claims left with the rogue: B wants none of them from A or C, so
    // neither cuts B off, now or when C reconnects.
    delivered(&a, &c, "after").await;
    delivered(&c, &a, "back").await;
    c.shutdown().await;
    drop(c);
    let c = start(&net.dirs[2], vec![addr(&b)]).await;
    delivered(&a, &c, "after C restarted").await;
    no_limit_disconnects(&[&a, &b, &c]);
    let held: BTreeSet<FeedId> = b.clock().expect("clock").into_keys().collect();
    assert_eq!(held, BTreeSet::from([a.id(), b.id(), c.id()]));
    for node in [a, b, c] {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_node_takes_no_more_feeds_than_its_budget_but_its_peers_own_feeds() {
    const BUDGET: usize = 20;
    let net = net(3);
    let b = start_with_budget(&net.dirs[1], BUDGET).await;
    b.append(b"own").await.expect("append");

    // The rogue offers 50 one-entry feeds and sends what B asks for.
    let mut rogue = Rogue::connect(addr(&b), &net.key).await;
    let authors = authors(50);
    let wanted = offer(&mut rogue, &authors, BUDGET - 1).await;
    assert_eq!(wanted.len(), BUDGET - 1, "the own feed counts in the budget");
    eventually("B stores what it asked for", || {
        b.clock().expect("clock").len() >= BUDGET
    })
    .await;

    // Honest peers connecting to the full node still get their own feeds
    // through it, both ways.
    let a = start(&net.dirs[0], vec![addr(&b)]).await;
    let c = start(&net.dirs[2], vec![addr(&b)]).await;
    delivered(&a, &c, "a to c").await;
    delivered(&c, &a, "c to a").await;
    no_limit_disconnects(&[&a, &b, &c]);

    let held = b.clock().expect("clock");
    assert_eq!(held.len(), BUDGET + 2, "the budget, plus the connected authors' feeds");
    for keys in &authors {
        let feed = keys.feed_id();
        assert_eq!(held.contains_key(&feed), wanted.contains(&feed), "{feed}");
    }
    drop(rogue);
    for node in [a, b, c] {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_admins_a_node_takes_only_members_feeds() {
    let net = net(0);
    let root = net.root();
    let (admin_path, admin_id) = admin_dir(root, &net.key);
    let sessions = start_sessions(&admin_path, vec![]).await;
    let admin = sessions.node().clone();
    let b = start(&member_dir(root, "b", &net.key, admin_id), vec![addr(&admin)]).await;
    let outsider = start(&member_dir(root, "x", &net.key, admin_id), vec![addr(&b)]).await;
    sessions.add_member(b.id(), 1).await.expect("admit b");
    until_holds(&b, admin_id, 1).await;

    // A key holder no admin admitted writes; b is connected to it, yet
    // neither b nor, through b, the admin takes its feed.
    let written = outsider.append(b"not a member").await.expect("append");
    eventually("b hears the outsider's claim", || {
        b.peers()
            .iter()
            .any(|p| p.clock.get(&outsider.id()) == Some(&written.seq()))
    })
    .await;
    delivered(&b, &admin, "b's own").await;
    assert_eq!(b.clock().expect("clock").get(&outsider.id()), None);
    assert_eq!(admin.clock().expect("clock").get(&outsider.id()), None);

    // Admitted, its feed is wanted at once from the peer that claimed it.
    sessions.add_member(outsider.id(), 1).await.expect("admit x");
    until_holds(&b, outsider.id(), written.seq()).await;
    until_holds(&admin, outsider.id(), written.seq()).await;
    no_limit_disconnects(&[&admin, &b, &outsider]);
    for node in [admin, b, outsider] {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_does_not_read_its_answers_gets_no_more_of_them_queued() {
    let net = net(3);
    let b = start(&net.dirs[1], vec![]).await;
    let a = start(&net.dirs[0], vec![addr(&b)]).await;
    let c = start(&net.dirs[2], vec![addr(&b)]).await;
    let payload = vec![0x5a_u8; 60_000];
    for _ in 0..4 {
        let batch: Vec<&[u8]> = vec![&payload; 50];
        b.append_batch(&batch).await.expect("append");
    }

    // Four rogues each ask for the largest answers they may have
    // outstanding (MAX_FETCHES_PER_PEER Fetches of MAX_FETCH_RANGE entries,
    // megabytes each) and never read them.
    let mut rogues = Vec::new();
    for _ in 0..4 {
        let mut rogue = Rogue::connect(addr(&b), &net.key).await;
        for id in 0..MAX_FETCHES_PER_PEER as u64 {
            let from = 1 + id;
            rogue
                .send(&Message::Fetch {
                    id,
                    feed: b.id(),
                    from,
                    to: from + MAX_FETCH_RANGE - 1,
                })
                .await;
        }
        rogues.push(rogue);
    }
    let queued = |rogue: &Rogue| b.queued_out().get(&rogue.keys.feed_id()).copied().unwrap_or(0) as usize;
    let share = b.outbox_share();
    assert!(
        share >= MIN_OUTBOX_SHARE && share * 72 <= DEFAULT_OUTBOX_BUDGET,
        "{share}"
    );
    eventually("the answers back up", || {
        rogues.iter().all(|r| queued(r) + MIN_OUTBOX_SHARE > share)
    })
    .await;

    // Honest traffic flows meanwhile, and what waits for each rogue stays
    // within its share of the node's outbox budget.
    delivered(&a, &c, "a to c").await;
    delivered(&c, &a, "c to a").await;
    for rogue in &rogues {
        assert!(queued(rogue) <= share, "{} queued, share {share}", queued(rogue));
    }
    no_limit_disconnects(&[&a, &b, &c]);
    drop(rogues);
    for node in [a, b, c] {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_node_syncs_thousands_of_one_entry_feeds_without_being_cut() {
    const FEEDS: usize = 5000;
    let net = net(3);
    let b = start(&net.dirs[1], vec![]).await;
    let a = start(&net.dirs[0], vec![addr(&b)]).await;
    let mut rogue = Rogue::connect(addr(&b), &net.key).await;
    offer(&mut rogue, &authors(FEEDS), FEEDS).await;
    eventually("B stores the offered feeds", || {
        b.clock().expect("clock").len() >= FEEDS
    })
    .await;
    drop(rogue);

    // A fresh node joins through B and gets every feed B holds, while A and
    // B keep replicating; nobody is cut off for what B relays.
    let fresh = start(&net.dirs[2], vec![addr(&b)]).await;
    delivered(&a, &fresh, "a to the fresh node").await;
    eventually("the fresh node catches up", || {
        fresh.clock().expect("clock").len() >= b.clock().expect("clock").len()
    })
    .await;
    no_limit_disconnects(&[&a, &b, &fresh]);
    for node in [a, b, fresh] {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_large_messages_hold_no_more_than_the_buffer_budget_and_are_dropped() {
    // B's budget holds two largest messages; six rogues each start one,
    // send all of it but the last byte and stall.
    const BUDGET: usize = 2 * MAX_MESSAGE;
    const ROGUES: usize = 6;
    let net = net(3);
    let mut settings = config(&net.dirs[1], vec![]);
    settings.buffer_budget = BUDGET;
    settings.message_deadline = Duration::from_secs(2);
    let b = Sessions::start(settings).await.expect("start").node().clone();
    let a = start(&net.dirs[0], vec![addr(&b)]).await;
    let c = start(&net.dirs[2], vec![addr(&b)]).await;
    let before = latency(&a, &c, "before the attack").await;

    let mut stalls = Vec::new();
    for _ in 0..ROGUES {
        let rogue = Rogue::connect(addr(&b), &net.key).await;
        stalls.push(rogue.stall_in_message(MAX_MESSAGE, MAX_MESSAGE - 1));
    }
    eventually("the rogues fill B's budget", || b.buffered_bytes() == BUDGET).await;

    // Honest entries still cross B while the rogues hold all it lets them.
    let during = latency(&a, &c, "during the attack").await;
    println!("A->C latency: before the attack {before:?}, during it {during:?}");
    assert!(b.buffered_bytes() <= BUDGET, "{} buffered", b.buffered_bytes());

    // Each rogue is dropped once its turn's deadline passes; the ones that
    // waited for the budget are not cut as idle meanwhile.
    for stall in stalls {
        tokio::time::timeout(Duration::from_secs(30), stall)
            .await
            .expect("the node drops the stalled rogue")
            .expect("rogue task");
    }
    eventually("every rogue counted as slow", || {
        b.disconnects().get("slow-message") == Some(&(ROGUES as u64))
    })
    .await;
    assert_eq!(b.disconnects().get("idle"), None, "{:?}", b.disconnects());
    assert_eq!(b.buffered_bytes(), 0);
    delivered(&c, &a, "after the attack").await;
    no_limit_disconnects(&[&a, &b, &c]);
    for node in [a, b, c] {
        node.shutdown().await;
    }
}
