//! Bundles under tampering: whatever single byte of an exported bundle is
//! changed, import stores nothing but a byte-identical prefix of the real feed.

use feedmesh::bundle::{self, ImportOptions};
use feedmesh::feed::Keypair;
use feedmesh::store::{MemoryStore, Record, Store};
use feedmesh::writer::FeedWriter;

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
