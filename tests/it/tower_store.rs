//! `feedmesh::tower_sessions::FeedmeshStore` against the trait's contract,
//! on running nodes over loopback: create never overwrites, save never
//! resurrects, load hides expired and revoked sessions, delete revokes on
//! every node, revoke-by-owner counts, and acknowledged writes.

use crate::common::nodes;

use std::collections::HashMap;
use std::time::Duration;

use feedmesh::net::NetworkKey;
use feedmesh::node::Node;
use feedmesh::tower_sessions::FeedmeshStore;
use nodes::{addr, make_dir, start_sessions};
use serde_json::json;
use tempfile::TempDir;
use tokio::time::Instant;
use tower_sessions::SessionStore;
use tower_sessions::cookie::time::{self, OffsetDateTime};
use tower_sessions::session::{Id, Record};

const DEADLINE: Duration = Duration::from_secs(15);

fn record(user: &str, lifetime: time::Duration) -> Record {
    Record {
        id: Id::default(),
        data: HashMap::from([("user".to_owned(), json!(user)), ("n".to_owned(), json!(1))]),
        expiry_date: OffsetDateTime::now_utc() + lifetime,
    }
}

/// Waits until `check` holds (bounded by [`DEADLINE`]).
async fn eventually(what: &str, check: impl AsyncFn() -> bool) {
    let began = Instant::now();
    while !check().await {
        assert!(began.elapsed() < DEADLINE, "not in {DEADLINE:?}: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// How many entries `node`'s own feed holds.
fn own_entries(node: &Node) -> u64 {
    node.clock().unwrap().get(&node.id()).copied().unwrap_or(0)
}

#[tokio::test]
async fn create_never_overwrites_and_save_never_resurrects() {
    let root = TempDir::new().unwrap();
    let key = NetworkKey::generate().expect("key");
    let node = start_sessions(&make_dir(root.path(), "a", &key), vec![]).await;
    let store = FeedmeshStore::new(node.clone());

    // An id this node holds, live or revoked, is never written over.
    let mut taken = record("alice", time::Duration::hours(1));
    store.create(&mut taken).await.unwrap();
    let mut collides = record("mallory", time::Duration::hours(1));
    collides.id = taken.id;
    store.create(&mut collides).await.unwrap();
    assert_ne!(collides.id, taken.id, "a taken id was not replaced");
    let loaded = store.load(&taken.id).await.unwrap().expect("alice's session");
    assert_eq!(loaded.data["user"], json!("alice"));
    assert_eq!(
        store.load(&collides.id).await.unwrap().unwrap().data["user"],
        json!("mallory")
    );
    // The owner comes from the `user` field.
    assert_eq!(node.count_owned_by("alice"), 1);

    // save updates a live session.
    let mut changed = loaded.clone();
    changed.data.insert("n".into(), json!(2));
    store.save(&changed).await.unwrap();
    assert_eq!(store.load(&taken.id).await.unwrap().unwrap().data["n"], json!(2));

    // Deleted: load hides it, save does not bring it back, create avoids its id.
    store.delete(&taken.id).await.unwrap();
    assert_eq!(store.load(&taken.id).await.unwrap(), None);
    let entries = own_entries(node.node());
    store.save(&changed).await.unwrap();
    assert_eq!(
        store.load(&taken.id).await.unwrap(),
        None,
        "save resurrected a deleted session"
    );
    store.delete(&taken.id).await.unwrap();
    assert_eq!(
        own_entries(node.node()),
        entries,
        "a save or delete of a revoked id wrote"
    );
    let mut reuse = record("eve", time::Duration::hours(1));
    reuse.id = taken.id;
    store.create(&mut reuse).await.unwrap();
    assert_ne!(reuse.id, taken.id);

    // Expired: load hides it and save does not bring it back.
    let mut brief = record("bob", time::Duration::milliseconds(30));
    store.create(&mut brief).await.unwrap();
    eventually("the session expires", async || {
        store.load(&brief.id).await.unwrap().is_none()
    })
    .await;
    brief.expiry_date = OffsetDateTime::now_utc() + time::Duration::hours(1);
    store.save(&brief).await.unwrap();
    assert_eq!(
        store.load(&brief.id).await.unwrap(),
        None,
        "save resurrected an expired session"
    );

    // An unknown id loads as nothing.
    assert_eq!(store.load(&Id::default()).await.unwrap(), None);
    node.node().shutdown().await;
}

#[tokio::test]
async fn sessions_are_shared_deleted_everywhere_and_revoked_by_owner() {
    let root = TempDir::new().unwrap();
    let key = NetworkKey::generate().expect("key");
    let a = start_sessions(&make_dir(root.path(), "a", &key), vec![]).await;
    let b = start_sessions(&make_dir(root.path(), "b", &key), vec![addr(a.node())]).await;
    eventually("the nodes connect", async || {
        !a.node().peers().is_empty() && !b.node().peers().is_empty()
    })
    .await;
    // Writes on a wait until b holds them: b loads them at once.
    let store_a = FeedmeshStore::new(a.clone()).with_acks(1, DEADLINE);
    let store_b = FeedmeshStore::new(b.clone()).with_acks(1, DEADLINE);

    let mut ids = Vec::new();
    for user in ["carol", "carol", "dave"] {
        let mut r = record(user, time::Duration::hours(1));
        store_a.create(&mut r).await.unwrap();
        let on_b = store_b.load(&r.id).await.unwrap().expect("acknowledged, so held by b");
        assert_eq!(on_b.data, r.data);
        let expiry_ms = r.expiry_date.unix_timestamp_nanos() / 1_000_000;
        let loaded_ms = on_b.expiry_date.unix_timestamp_nanos() / 1_000_000;
        assert!((expiry_ms - loaded_ms).abs() <= 1_000, "{expiry_ms} vs {loaded_ms}");
        ids.push(r.id);
    }

    // Deleted on b: gone on a as soon as the delete answers.
    store_b.delete(&ids[2]).await.unwrap();
    assert_eq!(store_a.load(&ids[2]).await.unwrap(), None);

    // Log out everywhere: both of carol's sessions, counted.
    assert_eq!(store_b.revoke_owner("carol").await.unwrap(), 2);
    for id in &ids[..2] {
        assert_eq!(store_a.load(id).await.unwrap(), None);
    }
    assert_eq!(store_a.revoke_owner("carol").await.unwrap(), 0);
    assert!(store_b.sessions().owned_by("carol").is_empty());
    a.node().shutdown().await;
    b.node().shutdown().await;
}
