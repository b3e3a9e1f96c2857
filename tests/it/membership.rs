//! Membership of a network with an admin key (spec/SESSIONS.md §5), over
//! real loopback nodes: only members' operations fold; the write-up's
//! nightmare (a member goes rogue, revokes every session and rewrites
//! values; an admin removes it from the sequence where it went rogue; every
//! node's sessions come back exactly as they were, and the rogue is refused
//! by the transport); a forked feed folds only below the fork.

use crate::common::admins;
use crate::common::api;
use crate::common::http;
use crate::common::nodes;

use std::path::Path;
use std::time::Duration;

use admins::{admin_dir, member_dir};
use feedmesh::net::NetworkKey;
use feedmesh::node::Node;
use feedmesh::node_dir::NodeDir;
use feedmesh::sessions::{Refusal, SessionError, Sessions};
use feedmesh::store::{Store, StoreError};
use feedmesh::writer::FeedWriter;
use nodes::{addr, eventually, make_dir, start_sessions};
use tempfile::TempDir;

const HOUR: Duration = Duration::from_secs(3600);

/// Every node holds what every other holds.
async fn converged(nodes: &[&Node]) {
    eventually("equal clocks", || {
        let clocks: Vec<_> = nodes.iter().map(|n| n.clock().unwrap()).collect();
        clocks.iter().all(|c| *c == clocks[0])
    })
    .await;
}

fn value(sessions: &Sessions, key: &str) -> Option<String> {
    sessions.get::<String>(key).unwrap().map(|d| d.value)
}

#[tokio::test]
async fn a_rogue_member_removed_from_where_it_went_rogue_leaves_no_trace() {
    let root = TempDir::new().unwrap();
    let key = NetworkKey::generate().expect("key");
    let (admin_path, admin_id) = admin_dir(root.path(), &key);
    let admin = start_sessions(&admin_path, vec![]).await;
    let b = start_sessions(&member_dir(root.path(), "b", &key, admin_id), vec![addr(admin.node())]).await;
    let rogue = start_sessions(
        &member_dir(root.path(), "rogue", &key, admin_id),
        vec![addr(admin.node()), addr(b.node())],
    )
    .await;

    // Before admission, the rogue's writes would fold nowhere: they are refused.
    let early = rogue.put("early", &"too soon".to_string(), HOUR, None).await;
    assert!(
        matches!(early, Err(SessionError::Refused(Refusal::NotMember))),
        "{early:?}"
    );
    assert_eq!(rogue.node().store().latest(&rogue.node().id()).unwrap(), None);
    admin.add_member(b.node().id(), 1).await.unwrap();
    admin.add_member(rogue.node().id(), 1).await.unwrap();
    for node in [&b, &rogue] {
        eventually("the admissions arrive", || {
            node.membership().folds(b.node().id(), 1) && node.membership().folds(rogue.node().id(), 1)
        })
        .await;
    }
    assert!(matches!(
        b.add_member(b.node().id(), 1).await.unwrap_err(),
        SessionError::NotAdmin
    ));

    // Honest traffic from everyone.
    let owners = ["alice", "bob", "carol"];
    for (i, owner) in owners.iter().enumerate() {
        admin
            .put(format!("a{i}"), &format!("admin's {owner}"), HOUR, Some(owner))
            .await
            .unwrap();
        b.put(format!("b{i}"), &format!("b's {owner}"), HOUR, Some(owner))
            .await
            .unwrap();
        rogue
            .put(format!("r{i}"), &format!("r's {owner}"), HOUR, Some(owner))
            .await
            .unwrap();
    }
    converged(&[admin.node(), b.node(), rogue.node()]).await;
    assert_eq!(value(&b, "early"), None);
    assert_eq!(value(&b, "r1").as_deref(), Some("r's bob"));
    let honest = b.digest();
    assert_eq!(admin.digest(), honest);
    assert_eq!(rogue.digest(), honest);

    // The rogue turns: from its next entry on, it rewrites values, revokes
    // every session and logs every owner out everywhere.
    let went_rogue = rogue.node().store().latest(&rogue.node().id()).unwrap().unwrap() + 1;
    for i in 0..owners.len() {
        rogue
            .put(format!("a{i}"), &"pwned".to_string(), HOUR, None)
            .await
            .unwrap();
        rogue.revoke(format!("b{i}")).await.unwrap();
    }
    for owner in owners {
        rogue.revoke_owner(owner).await.unwrap();
    }
    converged(&[admin.node(), b.node(), rogue.node()]).await;
    for s in [&admin, &b] {
        assert_eq!(s.stats().sessions, 0, "the rogue's damage is everywhere");
    }

    // The admin removes it from where it went rogue.
    admin.remove_member(rogue.node().id(), Some(went_rogue)).await.unwrap();
    eventually("the removal reaches b", || {
        b.membership().is_removed(&rogue.node().id())
    })
    .await;
    for s in [&admin, &b] {
        assert_eq!(s.digest(), honest, "sessions are back exactly as they were");
        for (i, owner) in owners.iter().enumerate() {
            assert_eq!(value(s, &format!("a{i}")), Some(format!("admin's {owner}")));
            assert_eq!(value(s, &format!("b{i}")), Some(format!("b's {owner}")));
            assert_eq!(value(s, &format!("r{i}")), Some(format!("r's {owner}")));
        }
    }

    // The transport refuses the removed member: it ends up connected to no one.
    eventually("the rogue is cut off", || {
        admin.node().peers().iter().all(|p| p.id != rogue.node().id())
            && b.node().peers().iter().all(|p| p.id != rogue.node().id())
    })
    .await;
    // A later write is refused if the rogue holds its removal, and never reaches b if not.
    match rogue.put("later", &"still rogue".to_string(), HOUR, None).await {
        Err(refused) => assert!(matches!(refused, SessionError::Refused(Refusal::NotMember))),
        Ok(more) => {
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert!(b.node().store().latest(&rogue.node().id()).unwrap().unwrap() < more.seq);
        }
    }
    assert!(b.node().peers().iter().all(|p| p.id != rogue.node().id()));
    assert_eq!(b.digest(), honest);

    // The view rebuilt at a restart agrees.
    let b_dir = NodeDir::open(&root.path().join("b")).unwrap().path().to_path_buf();
    b.node().shutdown().await;
    drop(b);
    let b = start_sessions(&b_dir, vec![]).await;
    assert_eq!(b.digest(), honest);
    assert_eq!(b.stats().removed_members, 1);
    for node in [admin, b, rogue] {
        node.node().shutdown().await;
    }
}

#[tokio::test]
async fn without_admin_keys_every_holder_of_the_network_key_is_a_member() {
    let root = TempDir::new().unwrap();
    let key = NetworkKey::generate().expect("key");
    let a = start_sessions(&make_dir(root.path(), "a", &key), vec![]).await;
    let b = start_sessions(&make_dir(root.path(), "b", &key), vec![addr(a.node())]).await;
    b.put("k", &"v".to_string(), HOUR, None).await.unwrap();
    eventually("b's put on a", || a.get::<String>("k").unwrap().is_some()).await;
    assert!(matches!(
        a.remove_member(b.node().id(), None).await.unwrap_err(),
        SessionError::NotAdmin
    ));
    a.node().shutdown().await;
    b.node().shutdown().await;
}

/// Signs `payloads` as the next entries of `keys`'s feed in `store`.
fn append(store: &dyn Store, dir: &Path, payloads: &[&[u8]]) -> Result<(), StoreError> {
    let keys = NodeDir::open(dir).unwrap().keys().clone();
    let mut writer = FeedWriter::open(store, keys)?;
    writer
        .append(store, payloads, feedmesh::clock::system_time_ms())
        .map(|_| ())
        .map_err(|e| StoreError::Backend(e.to_string()))
}

fn put_payload(key: &str) -> Vec<u8> {
    let value = feedmesh::view::encode_value(&key.to_string()).unwrap();
    feedmesh::view::encode_ops(&[feedmesh::view::Op::Put {
        key: key.as_bytes().to_vec(),
        value,
        ttl_ms: 3_600_000,
        owner: None,
    }])
    .unwrap()
}

#[tokio::test]
async fn a_forked_feed_folds_only_below_the_fork() {
    let root = TempDir::new().unwrap();
    let key = NetworkKey::generate().expect("key");
    let forker = make_dir(root.path(), "forker", &key);
    let twin = root.path().join("twin");
    let observer = make_dir(root.path(), "observer", &key);

    // The forker's feed: entries 1 and 2, then two different entries 3.
    {
        let store = NodeDir::open(&forker).unwrap().open_store().unwrap();
        append(&store, &forker, &[&put_payload("one"), &put_payload("two")]).unwrap();
    }
    std::fs::create_dir_all(&twin).unwrap();
    for file in ["secret_key", "network_key", "store.redb"] {
        std::fs::copy(forker.join(file), twin.join(file)).unwrap();
    }
    let branch = |dir: &Path, key: &str| {
        let store = NodeDir::open(dir).unwrap().open_store().unwrap();
        append(&store, dir, &[&put_payload(key)]).unwrap();
        store.range(&NodeDir::open(dir).unwrap().feed_id(), 1, 3, 3).unwrap()
    };
    let left = branch(&forker, "left");
    let right = branch(&twin, "right");

    // The observer stores the left branch whole, then the right entry 3: a fork.
    {
        let store = NodeDir::open(&observer).unwrap().open_store().unwrap();
        let verified = |records: &[(feedmesh::feed::Entry, Option<Vec<u8>>)]| {
            feedmesh::feed::verify_batch(records.to_vec()).expect("valid")
        };
        store.append(&verified(&left)).unwrap();
        let error = store.append(&verified(&right[2..])).unwrap_err();
        assert!(matches!(error, StoreError::Fork { .. }), "{error}");
    }
    let sessions = start_sessions(&observer, vec![]).await;
    assert_eq!(value(&sessions, "one").as_deref(), Some("one"));
    assert_eq!(value(&sessions, "two").as_deref(), Some("two"));
    assert_eq!(value(&sessions, "left"), None, "entry 3 is past the fork");
    assert_eq!(sessions.stats().forked_feeds, 1);
    sessions.node().shutdown().await;
}

#[tokio::test]
async fn an_admins_node_changes_the_membership_over_http() {
    let root = TempDir::new().unwrap();
    let key = NetworkKey::generate().expect("key");
    let (admin_path, admin_id) = admin_dir(root.path(), &key);
    let admin = start_sessions(&admin_path, vec![]).await;
    let member = start_sessions(
        &member_dir(root.path(), "member", &key, admin_id),
        vec![addr(admin.node())],
    )
    .await;
    let (admin_api, member_api) = (api::serve_api(&admin, None).await, api::serve_api(&member, None).await);
    let path = format!("/v1/members/{}", member.node().id());

    let added = http::post(admin_api, &path, b"").await;
    assert_eq!(added.status, 200, "{}", added.text());
    assert_eq!(added.json()["seq"].as_u64(), Some(1));
    let listed = http::get(admin_api, "/v1/members").await.json();
    assert_eq!(listed["open"], false);
    assert_eq!(listed["admins"][0], admin_id.to_string());
    assert_eq!(listed["members"][0]["feed"], member.node().id().to_string());
    assert_eq!(listed["members"][0]["from_seq"], 1);
    assert!(listed["members"][0]["until_seq"].is_null());

    // The member's write folds on the admin's node, then the removal from
    // its next entry on stops the ones after.
    eventually("the member holds its admission", || {
        member.membership().folds(member.node().id(), 1)
    })
    .await;
    let before = member.put("k", &"v".to_string(), HOUR, None).await.unwrap();
    eventually("the member's put on the admin", || value(&admin, "k").is_some()).await;
    let body = format!(r#"{{"from_seq": {}}}"#, before.seq + 1);
    // (No acks asked: the only peer is the member, whom the removal cuts off.)
    let removed = http::post(admin_api, &format!("{path}/remove"), body.as_bytes()).await;
    assert_eq!(removed.status, 200, "{}", removed.text());
    let listed = http::get(admin_api, "/v1/members").await.json();
    assert_eq!(listed["members"][0]["until_seq"], before.seq + 1);
    assert_eq!(value(&admin, "k").as_deref(), Some("v"), "what came before stays");

    // Only an admin may; a malformed id or body is refused.
    let refused = http::post(member_api, &path, b"").await;
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert_eq!(http::post(admin_api, "/v1/members/feed_nope", b"").await.status, 400);
    assert_eq!(http::post(admin_api, &path, b"{\"from\": 1}").await.status, 400);
    assert_eq!(http::post(admin_api, &path, b"{\"from_seq\": 0}").await.status, 400);
    admin.node().shutdown().await;
    member.node().shutdown().await;
}
