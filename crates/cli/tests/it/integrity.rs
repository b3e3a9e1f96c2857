//! `feedmesh verify` on stores damaged underneath the `Store` API (the store
//! itself never accepts a broken chain, so the damage is written straight
//! into the redb file): it must exit non-zero naming the feed, the sequence
//! and the rule.

use crate::process;

use std::path::Path;

use feedmesh::feed::{Keypair, NewEntry, has_skip_link, lipmaa, sign};
use feedmesh::node_dir::{NodeDir, STORE_FILE};
use feedmesh::store::Store;
use feedmesh::writer::FeedWriter;
use redb::{Database, ReadableTable, TableDefinition};

const ENTRIES: TableDefinition<&[u8; 40], &[u8]> = TableDefinition::new("entries");
const PAYLOADS: TableDefinition<&[u8; 40], &[u8]> = TableDefinition::new("payloads");

fn key(feed: &[u8; 32], seq: u64) -> [u8; 40] {
    let mut key = [0u8; 40];
    key[..32].copy_from_slice(feed);
    key[32..].copy_from_slice(&seq.to_be_bytes());
    key
}

/// A node with 8 entries; returns its key pair.
fn node_with_entries(dir: &Path) -> Keypair {
    let node = NodeDir::create(dir).unwrap();
    let store = node.open_store().unwrap();
    let mut writer = FeedWriter::open(&store, node.keys().clone()).unwrap();
    for i in 0..8u64 {
        writer
            .append(&store, &[format!("payload {i}").as_bytes()], 1_000 + i)
            .unwrap();
    }
    node.keys().clone()
}

/// Rewrites the stored value of (feed, seq) in `table` with `edit`.
fn tamper(
    dir: &Path,
    table: TableDefinition<&[u8; 40], &[u8]>,
    feed: &[u8; 32],
    seq: u64,
    edit: impl FnOnce(&mut Vec<u8>),
) {
    let db = Database::open(dir.join(STORE_FILE)).unwrap();
    let tx = db.begin_write().unwrap();
    {
        let mut t = tx.open_table(table).unwrap();
        let mut value = t.get(&key(feed, seq)).unwrap().unwrap().value().to_vec();
        edit(&mut value);
        t.insert(&key(feed, seq), value.as_slice()).unwrap();
    }
    tx.commit().unwrap();
}

fn verify(dir: &Path) -> (Option<i32>, String, String) {
    process::run(&["verify", "--dir", dir.to_str().unwrap()])
}

fn assert_verify_fails(dir: &Path, feed: &str, seq: u64, rule: &str) {
    let (code, _, stderr) = verify(dir);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(feed), "{stderr}");
    assert!(stderr.contains(&format!("seq {seq}:")), "{stderr}");
    assert!(stderr.contains(rule), "{stderr}");
}

#[test]
fn an_intact_store_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    node_with_entries(tmp.path());
    let (code, stdout, stderr) = verify(tmp.path());
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.starts_with("ok: 1 feeds, 8 entries, 8 payloads"), "{stdout}");
}

#[test]
fn a_changed_payload_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = node_with_entries(tmp.path());
    tamper(tmp.path(), PAYLOADS, keys.feed_id().as_bytes(), 3, |p| p[0] ^= 1);
    assert_verify_fails(tmp.path(), &keys.feed_id().to_string(), 3, "V13 payload-hash");
}

#[test]
fn a_changed_signature_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = node_with_entries(tmp.path());
    tamper(tmp.path(), ENTRIES, keys.feed_id().as_bytes(), 2, |e| {
        let last = e.len() - 1;
        e[last] ^= 1;
    });
    assert_verify_fails(tmp.path(), &keys.feed_id().to_string(), 2, "V6 signature");
}

#[test]
fn a_replaced_entry_breaks_the_next_link() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = node_with_entries(tmp.path());
    let store = NodeDir::open(tmp.path()).unwrap().open_store().unwrap();
    let feed = keys.feed_id();
    let original = store.entry(&feed, 4).unwrap().unwrap();
    let skip = has_skip_link(4).then(|| store.entry(&feed, lipmaa(4)).unwrap().unwrap().hash());
    drop(store);
    // A validly signed, different entry 4: only entry 5's prev link exposes it.
    let forged = sign(
        &keys,
        &NewEntry {
            seq: 4,
            prev: original.header().prev,
            skip,
            timestamp: original.timestamp(),
            payload: b"rewritten history",
        },
    )
    .unwrap();
    tamper(tmp.path(), ENTRIES, feed.as_bytes(), 4, |e| {
        *e = forged.entry().as_bytes().to_vec()
    });
    tamper(tmp.path(), PAYLOADS, feed.as_bytes(), 4, |p| {
        *p = b"rewritten history".to_vec()
    });
    assert_verify_fails(tmp.path(), &feed.to_string(), 5, "V9 prev-link");
}

#[test]
fn undecodable_entry_bytes_are_reported_not_panicked_on() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = node_with_entries(tmp.path());
    tamper(tmp.path(), ENTRIES, keys.feed_id().as_bytes(), 6, |e| e.truncate(10));
    let (code, _, stderr) = verify(tmp.path());
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("corrupt") && !stderr.contains("panicked"), "{stderr}");
}
