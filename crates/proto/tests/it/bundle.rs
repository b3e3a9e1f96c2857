//! Bundles under tampering: whatever single byte of an exported bundle is
//! changed, import stores nothing but a byte-identical prefix of the real feed.

use crate::common::fork;

use feedmesh_proto::bundle::{self, ImportOptions};
use feedmesh_proto::feed::Keypair;
use feedmesh_proto::store::{MemoryStore, Record, Store};
use feedmesh_proto::writer::FeedWriter;

fn exported_feed(entries: usize) -> (Keypair, Vec<Record>, Vec<u8>) {
    let keys = Keypair::from_seed([42; 32]);
    let store = MemoryStore::new();
    let mut writer = FeedWriter::open(&store, keys.clone()).unwrap();
    for i in 0..entries {
        let payload = format!("{{\"session\":{i},\"pad\":\"{}\"}}", "x".repeat(i % 7));
        writer.append(&store, &[payload.as_bytes()], 10_000 + i as u64).unwrap();
    }
    let records = store.range(&keys.feed_id(), 1, u64::MAX, usize::MAX).unwrap();
    let mut bytes = Vec::new();
    bundle::export(&store, &keys.feed_id(), 1, &mut bytes).unwrap();
    (keys, records, bytes)
}

#[test]
fn every_single_byte_change_imports_at_most_a_true_prefix() {
    let (keys, original, bytes) = exported_feed(5);
    for position in 0..bytes.len() {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut tampered = bytes.clone();
            tampered[position] ^= mask;
            let store = MemoryStore::new();
            let outcome = bundle::import(&store, tampered.as_slice(), ImportOptions::default());
            let stored = store.range(&keys.feed_id(), 1, u64::MAX, usize::MAX).unwrap();
            assert!(stored.len() <= original.len());
            for (got, want) in stored.iter().zip(&original) {
                assert_eq!(got.0.as_bytes(), want.0.as_bytes(), "byte {position} ^ {mask:#x}");
                assert_eq!(got.1, want.1, "byte {position} ^ {mask:#x}");
            }
            // Only the feed's own entries can be stored, under its own id.
            assert!(store.clock().unwrap().keys().all(|feed| *feed == keys.feed_id()));
            // A change is never silently swallowed: the import reports it.
            if let Ok(outcome) = outcome {
                assert!(outcome.error.is_some(), "byte {position} ^ {mask:#x} went unnoticed");
            }
        }
    }
}

#[test]
fn truncated_bundles_keep_whole_records_only() {
    let (keys, original, bytes) = exported_feed(4);
    for cut in 0..bytes.len() {
        let store = MemoryStore::new();
        let _ = bundle::import(&store, &bytes[..cut], ImportOptions::default());
        let stored = store.range(&keys.feed_id(), 1, u64::MAX, usize::MAX).unwrap();
        assert!(stored.iter().zip(&original).all(|(a, b)| a == b), "cut at {cut}");
    }
}

#[test]
fn missing_payloads_are_refused_unless_allowed() {
    let (keys, original, _) = exported_feed(3);
    let mut bytes = Vec::new();
    let mut writer = bundle::BundleWriter::new(&mut bytes).unwrap();
    for (entry, _) in &original {
        writer.write(entry, None).unwrap();
    }
    writer.finish().unwrap();
    let store = MemoryStore::new();
    let outcome = bundle::import(&store, bytes.as_slice(), ImportOptions::default()).unwrap();
    assert!(matches!(
        outcome.error,
        Some(bundle::BundleError::MissingPayload { index: 0, .. })
    ));
    assert_eq!(store.latest(&keys.feed_id()).unwrap(), None);
    let options = ImportOptions {
        allow_missing_payloads: true,
    };
    let outcome = bundle::import(&store, bytes.as_slice(), options).unwrap();
    assert!(outcome.error.is_none());
    assert_eq!(store.latest(&keys.feed_id()).unwrap(), Some(3));
    assert_eq!(store.payload(&keys.feed_id(), 1).unwrap(), None);
}

fn bundle_of(records: &[Record]) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut writer = bundle::BundleWriter::new(&mut bytes).unwrap();
    for (entry, payload) in records {
        writer.write(entry, payload.as_deref()).unwrap();
    }
    writer.finish().unwrap();
    bytes
}

/// Imports `records` as one bundle; returns the error that stopped it.
fn import_records(store: &MemoryStore, records: &[Record]) -> Option<bundle::BundleError> {
    let bytes = bundle_of(records);
    bundle::import(store, bytes.as_slice(), ImportOptions::default())
        .unwrap()
        .error
}

fn held(store: &MemoryStore, records: &[Record]) -> Vec<Record> {
    store.range(&records[0].0.author(), 1, u64::MAX, usize::MAX).unwrap()
}

/// Checks that `error` reports record `index` of feed `feed` at `seq`,
/// frozen by a fork at `fork_seq`, in one plainly worded line.
fn assert_forked(error: Option<bundle::BundleError>, index: usize, feed: &[Record], seq: u64, fork_seq: u64) {
    let error = error.expect("the import stops at the fork");
    let message = error.to_string();
    match error {
        bundle::BundleError::Forked {
            index: i,
            position,
            fork_seq: n,
        } => assert_eq!((i, position, n), (index, Some((feed[0].0.author(), seq)), fork_seq)),
        other => panic!("expected a fork, got {other}"),
    }
    assert!(message.starts_with(&format!("record {index} (")), "{message}");
    assert_eq!(message.matches("record ").count(), 1, "{message}");
}

#[test]
fn a_fork_inside_one_bundle_keeps_the_valid_prefix_and_the_proof() {
    let main = fork::branch(1, 6, 5, "a");
    let other = fork::branch(1, 6, 5, "b");
    let store = MemoryStore::new();
    let records: Vec<Record> = main[..5].iter().chain(&other[4..5]).cloned().collect();
    // The first record at or after the fork point is the first not stored.
    assert_forked(import_records(&store, &records), 4, &main, 5, 5);
    assert_eq!(held(&store, &main), main[..4]);
    let forks = store.forks().unwrap();
    assert_eq!(forks.len(), 1);
    assert_eq!((forks[0].author(), forks[0].seq()), (main[0].0.author(), 5));
    // Importing the prefix again is a no-op; either branch at 5 is refused.
    assert!(import_records(&store, &main[..4]).is_none());
    assert_forked(import_records(&store, &main), 4, &main, 5, 5);
    // An export of the frozen feed holds the valid prefix only.
    let mut exported = Vec::new();
    assert_eq!(
        bundle::export(&store, &main[0].0.author(), 1, &mut exported).unwrap(),
        4
    );
    assert_eq!(exported, bundle_of(&main[..4]));
}

#[test]
fn a_fork_after_other_feeds_records_keeps_them_and_the_prefix() {
    let other_feed = fork::branch(2, 3, u64::MAX, "");
    let main = fork::branch(1, 4, 3, "a");
    let forked = fork::branch(1, 4, 3, "b");
    let records: Vec<Record> = other_feed
        .iter()
        .chain(&main[..3])
        .chain(&forked[2..4])
        .cloned()
        .collect();
    let store = MemoryStore::new();
    assert_forked(import_records(&store, &records), 5, &main, 3, 3);
    assert_eq!(held(&store, &other_feed), other_feed);
    assert_eq!(held(&store, &main), main[..2]);
    assert_eq!(store.forks().unwrap().len(), 1);
}

#[test]
fn entries_below_the_fork_point_import_after_the_proof() {
    let main = fork::branch(1, 6, 4, "a");
    let forked = fork::branch(1, 6, 4, "b");
    let first = MemoryStore::new();
    assert!(import_records(&first, &main[..4]).is_none());
    assert_forked(import_records(&first, &forked[3..4]), 0, &main, 4, 4);
    // A node that holds only the proof still takes the feed below 4.
    let second = MemoryStore::new();
    second.record_fork(&first.forks().unwrap()[0]).unwrap();
    assert_forked(import_records(&second, &main), 3, &main, 4, 4);
    assert_eq!(held(&second, &main), main[..3]);
}
