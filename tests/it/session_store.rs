//! The session store of running nodes over real loopback sockets: typed
//! reads and writes, group commit, replication of puts and revocations,
//! equal digests, the view rebuilt after a restart, change subscriptions
//! and acknowledged writes.

use crate::common::nodes;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use feedmesh::clock::{MAX_DRIFT_MS, Timestamp, WallClock, system_time_ms};
use feedmesh::net::NetworkKey;
use feedmesh::node::{AckTimeout, Node};
use feedmesh::node_dir::NodeDir;
use feedmesh::sessions::{Refusal, SNAPSHOT_NAME, SessionChange, SessionError, Sessions, ViewStart};
use feedmesh::store::Store;
use feedmesh::view::{HistoryWindow, Op, decode_ops};
use nodes::{addr, make_dir, start_sessions, start_with_clock};
use serde::{Deserialize, Serialize};
use tempfile::TempDir;
use tokio::time::Instant;

/// Every wait in these tests ends by this long.
const DEADLINE: Duration = Duration::from_secs(15);
const HOUR: Duration = Duration::from_secs(3600);

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Login {
    user: String,
    roles: Vec<String>,
}

fn login(user: &str) -> Login {
    Login {
        user: user.into(),
        roles: vec!["reader".into()],
    }
}

/// Waits until `check` holds on every one of `sessions`.
async fn eventually(sessions: &[&Sessions], what: &str, check: impl Fn(&Sessions) -> bool) {
    let began = Instant::now();
    while !sessions.iter().all(|s| check(s)) {
        assert!(began.elapsed() < DEADLINE, "not everywhere in {DEADLINE:?}: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The operations of every entry of `node`'s own feed, in order.
fn own_entries(node: &Node) -> Vec<Vec<Op>> {
    let store = node.store();
    store
        .range(&node.id(), 1, u64::MAX, usize::MAX)
        .expect("range")
        .into_iter()
        .map(|(_, payload)| decode_ops(&payload.expect("payload")).expect("ops"))
        .collect()
}

#[tokio::test]
async fn one_node_reads_its_own_writes() {
    let root = TempDir::new().unwrap();
    let key = NetworkKey::generate().expect("key");
    let sessions = start_sessions(&make_dir(root.path(), "a", &key), vec![]).await;

    assert_eq!(sessions.get::<Login>("sid-1").unwrap(), None);
    let written = sessions
        .put("sid-1", &login("alice"), HOUR, Some("alice"))
        .await
        .unwrap();
    assert_eq!((written.author, written.seq), (sessions.node().id(), 1));
    let data = sessions.get::<Login>("sid-1").unwrap().expect("just written");
    assert_eq!(data.value, login("alice"));
    assert_eq!(data.owner.as_deref(), Some(&b"alice"[..]));
    assert_eq!((data.author, data.seq), (sessions.node().id(), 1));
    assert_eq!(data.expires_at_ms, written.timestamp.wall_ms() + 3_600_000);

    // A touch extends the expiry; a shorter one does not shorten it.
    let touched = sessions.touch("sid-1", 2 * HOUR).await.unwrap();
    let expiry = sessions.get::<Login>("sid-1").unwrap().unwrap().expires_at_ms;
    assert_eq!(expiry, touched.timestamp.wall_ms() + 7_200_000);
    sessions.touch("sid-1", Duration::from_secs(1)).await.unwrap();
    assert_eq!(sessions.get::<Login>("sid-1").unwrap().unwrap().expires_at_ms, expiry);

    // The wrong type is an error, not a panic.
    assert!(matches!(sessions.get::<u64>("sid-1"), Err(SessionError::Value(_))));

    // Revocation is final: a later put does not bring the key back.
    sessions.revoke("sid-1").await.unwrap();
    assert_eq!(sessions.get::<Login>("sid-1").unwrap(), None);
    assert!(sessions.is_revoked("sid-1"));
    assert!(matches!(
        sessions.put("sid-1", &login("mallory"), HOUR, None).await,
        Err(SessionError::Refused(Refusal::Revoked))
    ));
    assert_eq!(sessions.get::<Login>("sid-1").unwrap(), None);

    // Owner-wide revocation takes every session of that owner put before it.
    sessions.put("sid-2", &login("bob"), HOUR, Some("bob")).await.unwrap();
    sessions.put("sid-3", &login("bob"), HOUR, Some("bob")).await.unwrap();
    sessions
        .put("sid-4", &login("carol"), HOUR, Some("carol"))
        .await
        .unwrap();
    sessions.revoke_owner("bob").await.unwrap();
    assert_eq!(sessions.get::<Login>("sid-2").unwrap(), None);
    assert_eq!(sessions.get::<Login>("sid-3").unwrap(), None);
    assert_eq!(sessions.get::<Login>("sid-4").unwrap().unwrap().value, login("carol"));
    // A session of bob's made after the revocation lives.
    sessions.put("sid-5", &login("bob"), HOUR, Some("bob")).await.unwrap();
    assert!(sessions.get::<Login>("sid-5").unwrap().is_some());

    // Bad operations are refused before anything is written.
    let before = sessions.node().clock().unwrap();
    let error = sessions.put("", &1, HOUR, None).await.unwrap_err();
    assert!(matches!(error, SessionError::Invalid(_)), "{error}");
    let error = sessions.put("k", &1, Duration::ZERO, None).await.unwrap_err();
    assert!(matches!(error, SessionError::Invalid(_)), "{error}");
    let error = sessions.put("k", &vec![0u8; 70_000], HOUR, None).await.unwrap_err();
    assert!(matches!(error, SessionError::Value(_)), "{error}");
    assert_eq!(sessions.node().clock().unwrap(), before);
    sessions.node().shutdown().await;
}

#[tokio::test]
async fn a_lone_write_is_one_entry_and_concurrent_writes_share_entries() {
    let root = TempDir::new().unwrap();
    let key = NetworkKey::generate().expect("key");
    let sessions = start_sessions(&make_dir(root.path(), "a", &key), vec![]).await;

    sessions.put("alone", &1u32, HOUR, None).await.unwrap();
    assert_eq!(own_entries(sessions.node()).len(), 1);

    let writers: Vec<_> = (0..200u32)
        .map(|i| {
            let sessions = sessions.clone();
            tokio::spawn(async move { sessions.put(format!("k{i}"), &i, HOUR, None).await })
        })
        .collect();
    let mut seqs = Vec::new();
    for writer in writers {
        seqs.push(writer.await.unwrap().unwrap().seq);
    }
    let entries = own_entries(sessions.node());
    let ops: usize = entries.iter().map(Vec::len).sum();
    assert_eq!(ops, 201, "every put is in exactly one entry");
    assert!(
        entries.len() < 201,
        "concurrent writes were not coalesced: {} entries",
        entries.len()
    );
    for i in 0..200u32 {
        assert_eq!(sessions.get::<u32>(format!("k{i}")).unwrap().unwrap().value, i);
    }
    // Each writer was told the entry that carries its put.
    for (i, seq) in seqs.iter().enumerate() {
        let carried = &entries[usize::try_from(*seq).unwrap() - 1];
        assert!(
            carried
                .iter()
                .any(|op| matches!(op, Op::Put { key, .. } if *key == format!("k{i}").into_bytes()))
        );
    }
    sessions.node().shutdown().await;
}

#[tokio::test]
async fn create_never_overwrites_and_update_never_resurrects() {
    let root = TempDir::new().unwrap();
    let key = NetworkKey::generate().expect("key");
    let sessions = start_sessions(&make_dir(root.path(), "a", &key), vec![]).await;
    let refused = |result: Result<_, SessionError>| match result {
        Err(SessionError::Refused(refusal)) => refusal,
        other => panic!("not refused: {other:?}"),
    };

    sessions
        .create("sid", &login("alice"), HOUR, Some("alice"))
        .await
        .unwrap();
    let entries = own_entries(sessions.node()).len();
    let again = sessions.create("sid", &login("mallory"), HOUR, None).await;
    assert_eq!(refused(again), Refusal::Exists);
    assert_eq!(
        own_entries(sessions.node()).len(),
        entries,
        "a refused create writes nothing"
    );
    assert_eq!(sessions.get::<Login>("sid").unwrap().unwrap().value, login("alice"));

    // The remaining time of a live session; none for an unknown key.
    let left = sessions.ttl("sid").expect("live");
    assert!(left <= HOUR && left > HOUR - DEADLINE, "{left:?}");
    assert_eq!(sessions.ttl("nobody"), None);

    // update changes a live session and refuses one that is not live.
    sessions
        .update("sid", &login("alice2"), HOUR, Some("alice"))
        .await
        .unwrap();
    assert_eq!(sessions.get::<Login>("sid").unwrap().unwrap().value, login("alice2"));
    assert_eq!(
        refused(sessions.update("nobody", &1, HOUR, None).await),
        Refusal::NotLive
    );
    sessions
        .put("brief", &1u8, Duration::from_millis(30), None)
        .await
        .unwrap();
    while sessions.ttl("brief").is_some() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        refused(sessions.update("brief", &2u8, HOUR, None).await),
        Refusal::NotLive
    );
    assert_eq!(
        sessions.get::<u8>("brief").unwrap(),
        None,
        "an expired session stays dead"
    );
    // An expired key may be created anew.
    sessions.create("brief", &3u8, HOUR, None).await.unwrap();
    assert_eq!(sessions.get::<u8>("brief").unwrap().unwrap().value, 3);

    // A revoked key can be neither created nor updated.
    sessions.revoke("sid").await.unwrap();
    let entries = own_entries(sessions.node()).len();
    assert_eq!(
        refused(sessions.update("sid", &login("x"), HOUR, None).await),
        Refusal::Revoked
    );
    assert_eq!(
        refused(sessions.create("sid", &login("x"), HOUR, None).await),
        Refusal::Revoked
    );
    assert_eq!(own_entries(sessions.node()).len(), entries);
    assert_eq!(sessions.ttl("sid"), None);
    sessions.node().shutdown().await;
}

#[tokio::test]
async fn of_concurrent_creates_of_one_key_exactly_one_succeeds() {
    let root = TempDir::new().unwrap();
    let key = NetworkKey::generate().expect("key");
    let sessions = start_sessions(&make_dir(root.path(), "a", &key), vec![]).await;

    // Many creates of one key, and plain puts of others in the same batches.
    let creators: Vec<_> = (0..64u32)
        .map(|i| {
            let sessions = sessions.clone();
            tokio::spawn(async move {
                let other = sessions.put(format!("other{i}"), &i, HOUR, None);
                let (created, other) = tokio::join!(sessions.create("k", &i, HOUR, None), other);
                other.unwrap();
                created.map(|_| i)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for creator in creators {
        match creator.await.unwrap() {
            Ok(i) => winners.push(i),
            Err(error) => assert!(matches!(error, SessionError::Refused(Refusal::Exists)), "{error}"),
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    assert_eq!(sessions.get::<u32>("k").unwrap().unwrap().value, winners[0]);
    let puts_of_k = own_entries(sessions.node())
        .iter()
        .flatten()
        .filter(|op| matches!(op, Op::Put { key, .. } if key == b"k"))
        .count();
    assert_eq!(puts_of_k, 1, "only the winning create is written");
    for i in 0..64u32 {
        assert_eq!(sessions.get::<u32>(format!("other{i}")).unwrap().unwrap().value, i);
    }
    sessions.node().shutdown().await;
}

#[tokio::test]
async fn an_owners_sessions_are_listed_counted_and_revoked_with_a_count() {
    let root = TempDir::new().unwrap();
    let key = NetworkKey::generate().expect("key");
    let a = start_sessions(&make_dir(root.path(), "a", &key), vec![]).await;
    let b = start_sessions(&make_dir(root.path(), "b", &key), vec![addr(a.node())]).await;

    for sid in ["s3", "s1", "s2"] {
        a.put(sid, &login("bob"), HOUR, Some("bob")).await.unwrap();
    }
    a.put("c1", &login("carol"), HOUR, Some("carol")).await.unwrap();
    // A session put for bob and then given to carol is both bob's and
    // carol's: logging bob out everywhere revokes it (spec/SESSIONS.md §2.4).
    a.put("moved", &login("bob"), HOUR, Some("bob")).await.unwrap();
    a.put("moved", &login("carol"), HOUR, Some("carol")).await.unwrap();
    eventually(&[&b], "every put on b", |s| s.count_owned_by("carol") == 2).await;

    let listed: Vec<Vec<u8>> = b.owned_by("bob").into_iter().map(|(key, _)| key).collect();
    let expected: Vec<Vec<u8>> = ["moved", "s1", "s2", "s3"].map(|k| k.as_bytes().to_vec()).into();
    assert_eq!(listed, expected);
    assert_eq!(b.count_owned_by("bob"), 4);
    assert_eq!(b.count_owned_by("nobody"), 0);
    // b sees a's session: a create of its key on b is refused.
    assert!(matches!(
        b.create("s1", &login("eve"), HOUR, None).await,
        Err(SessionError::Refused(Refusal::Exists))
    ));

    let revoked = b.revoke_owner("bob").await.unwrap();
    assert_eq!(revoked.sessions, 4);
    assert_eq!((revoked.written.author, revoked.written.seq), (b.node().id(), 1));
    assert!(b.owned_by("bob").is_empty());
    eventually(&[&a], "the owner revocation on a", |s| s.count_owned_by("bob") == 0).await;
    assert_eq!(a.count_owned_by("carol"), 1, "moved is revoked, c1 lives");
    assert_eq!(a.revoke_owner("bob").await.unwrap().sessions, 0);
    a.node().shutdown().await;
    b.node().shutdown().await;
}

#[tokio::test]
async fn puts_and_revocations_reach_every_node_with_equal_digests() {
    let root = TempDir::new().unwrap();
    let key = NetworkKey::generate().expect("key");
    let a = start_sessions(&make_dir(root.path(), "a", &key), vec![]).await;
    let b = start_sessions(&make_dir(root.path(), "b", &key), vec![addr(a.node())]).await;
    let c = start_sessions(&make_dir(root.path(), "c", &key), vec![addr(a.node()), addr(b.node())]).await;
    let all = [&a, &b, &c];

    let mut changes = c.subscribe();
    a.put("sid", &login("alice"), HOUR, Some("alice")).await.unwrap();
    b.put("other", &login("bob"), HOUR, Some("bob")).await.unwrap();
    eventually(&all, "both puts", |s| {
        s.get::<Login>("sid").unwrap().is_some() && s.get::<Login>("other").unwrap().is_some()
    })
    .await;
    let change = tokio::time::timeout(DEADLINE, changes.recv()).await.unwrap().unwrap();
    assert!(matches!(change, SessionChange::Updated { .. }), "{change:?}");

    // Logged out on c: rejected everywhere, even after a late put from a.
    c.revoke("sid").await.unwrap();
    eventually(&all, "the revocation", |s| s.is_revoked("sid")).await;
    assert!(matches!(
        a.put("sid", &login("alice"), HOUR, Some("alice")).await,
        Err(SessionError::Refused(Refusal::Revoked))
    ));
    b.revoke_owner("bob").await.unwrap();
    eventually(&all, "the owner revocation", |s| s.is_revoked("other")).await;
    eventually(&all, "equal clocks", |s| s.stats().sessions == 0).await;
    let began = Instant::now();
    loop {
        let clocks = [
            a.node().clock().unwrap(),
            b.node().clock().unwrap(),
            c.node().clock().unwrap(),
        ];
        if clocks.iter().all(|x| *x == clocks[0]) {
            break;
        }
        assert!(began.elapsed() < DEADLINE, "clocks differ: {clocks:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(a.get::<Login>("sid").unwrap(), None);
    assert_eq!(a.digest(), b.digest());
    assert_eq!(b.digest(), c.digest());
    for node in [a, b, c] {
        node.node().shutdown().await;
    }
}

#[tokio::test]
async fn the_view_rebuilt_after_a_restart_equals_the_view_before() {
    let root = TempDir::new().unwrap();
    let key = NetworkKey::generate().expect("key");
    let dir_a = make_dir(root.path(), "a", &key);
    let dir_b = make_dir(root.path(), "b", &key);
    let a = start_sessions(&dir_a, vec![]).await;
    let b = start_sessions(&dir_b, vec![addr(a.node())]).await;
    for i in 0..50u32 {
        let owner = format!("user{}", i % 5);
        a.put(format!("a{i}"), &i, HOUR, Some(&owner)).await.unwrap();
        b.put(format!("b{i}"), &i, HOUR, Some(&owner)).await.unwrap();
    }
    a.revoke("b7").await.unwrap();
    b.revoke_owner("user3").await.unwrap();
    a.touch("a1", 3 * HOUR).await.unwrap();
    eventually(&[&a, &b], "all writes", |s| s.is_revoked("a3") && s.is_revoked("b7")).await;
    let began = Instant::now();
    while a.node().clock().unwrap() != b.node().clock().unwrap() {
        assert!(began.elapsed() < DEADLINE, "no convergence");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let digest = b.digest();
    assert_eq!(a.digest(), digest);
    let stats = b.stats();
    b.node().shutdown().await;
    drop(b);

    let b = start_sessions(&dir_b, vec![]).await;
    assert_eq!(
        b.started(),
        ViewStart {
            from_snapshot: true,
            folded: 0
        },
        "the snapshot saved at shutdown covers everything"
    );
    assert_eq!(b.digest(), digest);
    assert_eq!(b.stats(), stats);
    assert_eq!(b.get::<u32>("a4").unwrap().unwrap().value, 4);
    assert_eq!(b.get::<u32>("b3").unwrap(), None);
    b.node().shutdown().await;
    a.node().shutdown().await;
}

/// The view snapshot held in `dir`'s store (the node is stopped).
fn saved_snapshot(dir: &std::path::Path) -> Vec<u8> {
    let store = NodeDir::open(dir).unwrap().open_store().unwrap();
    store.snapshot(SNAPSHOT_NAME).unwrap().expect("a snapshot was saved")
}

/// Replaces the view snapshot in `dir`'s store (the node is stopped).
fn replace_snapshot(dir: &std::path::Path, bytes: &[u8]) {
    let store = NodeDir::open(dir).unwrap().open_store().unwrap();
    store.save_snapshot(SNAPSHOT_NAME, bytes).unwrap();
}

#[tokio::test]
async fn a_restart_folds_only_the_entries_after_its_snapshot_and_re_folds_when_it_is_damaged() {
    let root = TempDir::new().unwrap();
    let key = NetworkKey::generate().expect("key");
    let dir = make_dir(root.path(), "a", &key);
    let sessions = start_sessions(&dir, vec![]).await;
    assert_eq!(sessions.started(), ViewStart::default(), "an empty store");
    for i in 0..20u32 {
        sessions.put(format!("k{i}"), &i, HOUR, Some("u")).await.unwrap();
    }
    sessions.node().shutdown().await;
    drop(sessions);
    let early = saved_snapshot(&dir);

    let sessions = start_sessions(&dir, vec![]).await;
    assert_eq!(
        sessions.started(),
        ViewStart {
            from_snapshot: true,
            folded: 0
        }
    );
    for i in 20..25u32 {
        sessions.put(format!("k{i}"), &i, HOUR, Some("v")).await.unwrap();
    }
    sessions.revoke("k3").await.unwrap();
    sessions.touch("k21", 2 * HOUR).await.unwrap();
    let digest = sessions.digest();
    let live = sessions.stats().sessions;
    sessions.node().shutdown().await;
    drop(sessions);

    // A crash after the first snapshot: the store holds 27 entries, the
    // snapshot covers 20 of them.
    replace_snapshot(&dir, &early);
    let sessions = start_sessions(&dir, vec![]).await;
    assert_eq!(
        sessions.started(),
        ViewStart {
            from_snapshot: true,
            folded: 7
        }
    );
    assert_eq!(sessions.digest(), digest);
    assert_eq!(sessions.stats().sessions, live);
    assert!(sessions.is_revoked("k3"));
    sessions.node().shutdown().await;
    drop(sessions);

    // One byte changed: the checksum fails and every entry is folded.
    let mut damaged = saved_snapshot(&dir);
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x40;
    replace_snapshot(&dir, &damaged);
    let sessions = start_sessions(&dir, vec![]).await;
    assert_eq!(
        sessions.started(),
        ViewStart {
            from_snapshot: false,
            folded: 27
        }
    );
    assert_eq!(sessions.digest(), digest);
    sessions.node().shutdown().await;
}

#[tokio::test]
async fn a_write_can_wait_for_peers_to_hold_it() {
    let root = TempDir::new().unwrap();
    let key = NetworkKey::generate().expect("key");
    let a = start_sessions(&make_dir(root.path(), "a", &key), vec![]).await;
    let alone = a.put("k", &1u8, HOUR, None).await.unwrap();
    let error = a
        .wait_for_acks(&alone, 1, Duration::from_millis(100))
        .await
        .unwrap_err();
    assert_eq!(error, AckTimeout { acked: 0, wanted: 1 });

    let b = start_sessions(&make_dir(root.path(), "b", &key), vec![addr(a.node())]).await;
    let c = start_sessions(&make_dir(root.path(), "c", &key), vec![addr(a.node())]).await;
    let written = a.put("k2", &2u8, HOUR, None).await.unwrap();
    let acked = a.wait_for_acks(&written, 2, DEADLINE).await.unwrap();
    assert_eq!(acked, 2);
    for node in [&b, &c] {
        assert!(node.node().store().latest(&a.node().id()).unwrap().unwrap() >= written.seq);
    }
    for node in [a, b, c] {
        node.node().shutdown().await;
    }
}

/// The system clock shifted by `offset_ms` (negative: behind).
fn skewed_clock(offset_ms: i64) -> WallClock {
    WallClock::from_fn(move || system_time_ms().saturating_add_signed(offset_ms))
}

/// The timestamp of the head of `node`'s own feed.
fn own_head_time(node: &Node) -> Timestamp {
    node.store()
        .head(&node.id())
        .expect("head")
        .expect("an entry")
        .timestamp()
}

/// Waits until `node` stores `seq` entries of `feed`.
async fn holds(node: &Node, feed: &Node, seq: u64) {
    let began = Instant::now();
    while node.clock().unwrap().get(&feed.id()) != Some(&seq) {
        assert!(
            began.elapsed() < DEADLINE,
            "{} never held {seq} entries of {}",
            node.id(),
            feed.id()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Two nodes: `a` on the system clock, `b` started on `clock_b`, dialing
/// `a`; `a` puts a session of owner "u" and `cart` v1, `b` stores both and
/// stops. Returns `a`, `b`'s directory and the network key.
async fn b_holds_a_login_and_cart_v1(root: &TempDir, clock_b: WallClock) -> (Sessions, PathBuf, NetworkKey) {
    let key = NetworkKey::generate().expect("key");
    let dir_a = make_dir(root.path(), "a", &key);
    let dir_b = make_dir(root.path(), "b", &key);
    let a = start_sessions(&dir_a, vec![]).await;
    let b = start_with_clock(&dir_b, vec![addr(a.node())], clock_b).await;
    a.put("k1", &login("u"), HOUR, Some("u")).await.unwrap();
    a.put("cart", &1u32, HOUR, None).await.unwrap();
    holds(b.node(), a.node(), 2).await;
    b.node().shutdown().await;
    (a, dir_b, key)
}

#[tokio::test]
async fn a_node_restarted_with_its_clock_behind_orders_its_writes_after_what_it_held() {
    let root = TempDir::new().unwrap();
    let (a, dir_b, _) = b_holds_a_login_and_cart_v1(&root, WallClock::system()).await;
    let b = start_with_clock(&dir_b, vec![], skewed_clock(-2_000)).await;
    assert!(b.get::<Login>("k1").unwrap().is_some(), "b did not hold k1");
    b.revoke_owner("u").await.unwrap();
    b.put("cart", &2u32, HOUR, None).await.unwrap();
    assert!(
        b.get::<Login>("k1").unwrap().is_none(),
        "log out everywhere left k1 alive"
    );
    assert_eq!(b.get::<u32>("cart").unwrap().unwrap().value, 2, "cart v2 lost to v1");
    b.node().shutdown().await;
    a.node().shutdown().await;
}

#[tokio::test]
async fn at_start_a_stored_head_beyond_the_drift_bound_is_not_followed_but_the_others_are() {
    let root = TempDir::new().unwrap();
    // b runs behind a by more than the drift bound; c runs 1 s ahead of b.
    let behind = -i64::try_from(MAX_DRIFT_MS + 10_000).unwrap();
    let (a, dir_b, key) = b_holds_a_login_and_cart_v1(&root, skewed_clock(behind)).await;
    let c = start_with_clock(&make_dir(root.path(), "c", &key), vec![], skewed_clock(behind + 1_000)).await;
    c.put("cart", &3u32, HOUR, None).await.unwrap();
    let b = start_with_clock(&dir_b, vec![addr(c.node())], skewed_clock(behind)).await;
    holds(b.node(), c.node(), 1).await;
    b.node().shutdown().await;
    drop(b);

    let b = start_with_clock(&dir_b, vec![], skewed_clock(behind)).await;
    b.put("other", &4u32, HOUR, None).await.unwrap();
    let stamped = own_head_time(b.node());
    assert!(
        stamped > own_head_time(c.node()),
        "not ordered after c's entry, within the bound"
    );
    assert!(
        stamped < own_head_time(a.node()),
        "dragged to a's time, beyond the bound"
    );
    b.node().shutdown().await;
    c.node().shutdown().await;
    a.node().shutdown().await;
}

#[tokio::test]
async fn reads_take_the_nodes_wall_clock_as_now() {
    let root = TempDir::new().unwrap();
    let key = NetworkKey::generate().unwrap();
    let dir = make_dir(root.path(), "a", &key);
    let clock = Arc::new(AtomicU64::new(system_time_ms()));
    let reading = clock.clone();
    let sessions = start_with_clock(&dir, vec![], WallClock::from_fn(move || reading.load(Ordering::SeqCst))).await;
    sessions.put("sid", &login("alice"), HOUR, None).await.unwrap();
    assert!(sessions.get::<Login>("sid").unwrap().is_some());
    // Two hours later by the node's clock (not the system's), it has expired.
    clock.fetch_add(2 * 3_600_000, Ordering::SeqCst);
    assert!(sessions.get::<Login>("sid").unwrap().is_none());
    assert!(sessions.get_raw("sid").is_none());
    sessions.node().shutdown().await;
}

#[tokio::test]
async fn the_network_s_session_lifetime_caps_every_ttl_and_a_touch_needs_a_live_session() {
    let tmp = tempfile::tempdir().unwrap();
    let key = NetworkKey::generate().unwrap();
    let dir = make_dir(tmp.path(), "a", &key);
    let window = HistoryWindow::new(60_000, 0).unwrap();
    NodeDir::open(&dir).unwrap().set_history_window(window).unwrap();
    let sessions = start_sessions(&dir, vec![]).await;
    assert_eq!(sessions.window(), window);
    // An hour asked, the lifetime given: a minute after the put.
    let written = sessions.put("s", &"v", HOUR, None).await.unwrap();
    let expiry = |s: &Sessions| s.get_raw("s").map(|session| session.expires_at_ms);
    assert_eq!(expiry(&sessions), Some(written.timestamp.wall_ms() + 60_000));
    // A touch cannot carry it past the put's lifetime either.
    sessions.touch("s", HOUR).await.unwrap();
    assert_eq!(expiry(&sessions), Some(written.timestamp.wall_ms() + 60_000));
    // Nothing live under the key: nothing to extend, nothing written.
    let before = sessions.node().clock().unwrap();
    assert!(matches!(
        sessions.touch("nobody", HOUR).await,
        Err(SessionError::Refused(Refusal::NotLive))
    ));
    assert_eq!(sessions.node().clock().unwrap(), before);
}
