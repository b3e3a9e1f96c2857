//! Forked feeds for the tests: two branches of one author's feed that share
//! a prefix and differ from a chosen sequence on.

use feedmesh_proto::store::{MemoryStore, Record, Store};
use feedmesh_proto::writer::FeedWriter;

use super::keys::keys;

/// The records of feed `seed` at `1..=len`, written by a fresh writer; the
/// entries from `fork_at` on carry `branch` in their payloads, so two calls
/// with one seed and different branches fork the feed at `fork_at`.
pub(crate) fn branch(seed: u8, len: u64, fork_at: u64, branch: &str) -> Vec<Record> {
    let keys = keys(seed);
    let store = MemoryStore::new();
    let mut writer = FeedWriter::open(&store, keys.clone()).unwrap();
    for seq in 1..=len {
        let tag = if seq >= fork_at { branch } else { "" };
        let payload = format!("{{\"seq\":{seq},\"branch\":\"{tag}\"}}");
        writer.append(&store, &[payload.as_bytes()], 10_000 + seq).unwrap();
    }
    store.range(&keys.feed_id(), 1, u64::MAX, usize::MAX).unwrap()
}
