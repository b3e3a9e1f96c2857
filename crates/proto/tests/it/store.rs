//! Behaviour of the `Store` backends. One suite, written once against the
//! `Harness` trait and run against both `MemoryStore` and `RedbStore` (the
//! `suite!` macro makes a `memory::<case>` and a `redb::<case>` test of every
//! case), plus a proptest of each backend against a `BTreeMap` model and a few
//! redb-only checks (reopening, schema version).

use crate::common::keys::keys;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use feedmesh_proto::feed::{
    Entry, FeedId, ForkProof, Hash, Keypair, NewEntry, Timestamp, ValidationError, Verified, declared_record_len,
    has_skip_link, lipmaa, record_len, sign, verify, verify_chain,
};
use feedmesh_proto::store::{AppendReport, FeedClock, MemoryStore, Record, RedbStore, Store, StoreError, pages};
use proptest::prelude::*;

// ---------------------------------------------------------------------------
// Backends under test

/// A backend under test.
trait Harness {
    type S: Store;
    /// A fresh, empty store.
    fn new() -> Self;
    /// The store.
    fn store(&self) -> &Self::S;
    /// Closes the store and opens it again (nothing to do in memory).
    fn reopen(&mut self);
}

struct Memory(MemoryStore);

impl Harness for Memory {
    type S = MemoryStore;
    fn new() -> Self {
        Memory(MemoryStore::new())
    }
    fn store(&self) -> &MemoryStore {
        &self.0
    }
    fn reopen(&mut self) {}
}

struct Redb {
    dir: tempfile::TempDir,
    store: Option<RedbStore>,
}

impl Redb {
    fn file(&self) -> std::path::PathBuf {
        self.dir.path().join("feeds.redb")
    }
}

impl Harness for Redb {
    type S = RedbStore;
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = RedbStore::open(dir.path().join("feeds.redb")).expect("open a new store");
        Redb {
            dir,
            store: Some(store),
        }
    }
    fn store(&self) -> &RedbStore {
        self.store.as_ref().expect("store is open")
    }
    fn reopen(&mut self) {
        drop(self.store.take());
        self.store = Some(RedbStore::open(self.file()).expect("reopen the store"));
    }
}

/// Makes `memory::<case>` and `redb::<case>` tests of each generic case.
macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $( #[test] fn $case() { super::$case::<super::Memory>(); } )*
        }
        mod redb {
            $( #[test] fn $case() { super::$case::<super::Redb>(); } )*
        }
    };
}

suite!(
    append_and_read_back,
    range_clamps_and_limits,
    range_within_stops_at_the_byte_bound,
    clock_over_several_feeds,
    appending_twice_is_harmless,
    refuses_a_gap,
    refuses_a_wrong_prev_hash,
    refuses_a_wrong_skip_link,
    refuses_a_non_increasing_timestamp,
    refused_batches_store_nothing,
    fork_is_recorded_and_freezes_the_feed,
    fork_inside_one_batch,
    record_fork_keeps_the_lowest,
    drop_payloads_keeps_headers,
    header_only_records,
    batch_interleaving_two_feeds,
    empty_append_and_unknown_feeds,
    unsynced_appends_are_checked_held_and_kept_once_synced,
    snapshots_are_kept_by_name_and_replaced_whole,
);

/// A view snapshot is read back as saved, per name, the latest one whole,
/// after a reopen too (where the backend has a disk).
fn snapshots_are_kept_by_name_and_replaced_whole<H: Harness>() {
    let mut h = H::new();
    assert_eq!(h.store().snapshot("sessions").unwrap(), None);
    h.store().save_snapshot("sessions", b"first").unwrap();
    h.store().save_snapshot("other", b"x").unwrap();
    h.store().save_snapshot("sessions", &[7; 100_000]).unwrap();
    h.reopen();
    assert_eq!(h.store().snapshot("sessions").unwrap(), Some(vec![7; 100_000]));
    assert_eq!(h.store().snapshot("other").unwrap().as_deref(), Some(&b"x"[..]));
}

/// The on-disk store keeps a snapshot in a file beside the database, never
/// under a name that could leave the directory.
#[test]
fn redb_snapshots_are_files_beside_the_database() {
    let h = Redb::new();
    h.store().save_snapshot("sessions", b"snap").unwrap();
    let file = h.dir.path().join("feeds.redb.sessions.snapshot");
    assert_eq!(std::fs::read(file).unwrap(), b"snap");
    for name in ["", "../x", "a/b", "a.b"] {
        assert!(h.store().save_snapshot(name, b"no").is_err(), "{name:?}");
    }
}

/// `append_unsynced` checks and stores like `append`; once synced (or
/// followed by a durable append) what it stored survives a reopen.
fn unsynced_appends_are_checked_held_and_kept_once_synced<H: Harness>() {
    let mut h = H::new();
    let records = chain(1, 12);
    assert_eq!(h.store().append_unsynced(&records[..4]).unwrap(), report(4, 0));
    assert_eq!(h.store().append_unsynced(&records[..6]).unwrap(), report(2, 4));
    let (index, _) = expect_rejected(h.store().append_unsynced(&records[7..]));
    assert_eq!(index, 0, "a gap is refused as by append");
    assert_eq!(h.store().latest(&feed(1)).unwrap(), Some(6));
    // Too young to need a sync: nothing happens, nothing is lost either.
    h.store().sync(std::time::Duration::from_secs(3600)).unwrap();
    h.store().sync(std::time::Duration::ZERO).unwrap();
    h.reopen();
    assert_eq!(h.store().latest(&feed(1)).unwrap(), Some(6));
    // A durable append makes the unsynced ones before it durable too.
    h.store().append_unsynced(&records[6..9]).unwrap();
    h.store().append(&chain(2, 2)).unwrap();
    h.reopen();
    assert_eq!(h.store().latest(&feed(1)).unwrap(), Some(9));
    assert_chain_verifies(h.store(), &feed(1));
}

// ---------------------------------------------------------------------------
// Building entries

fn feed(seed: u8) -> FeedId {
    keys(seed).feed_id()
}

fn payload_of(tag: u8, seq: u64) -> Vec<u8> {
    format!("payload {tag}/{seq}").into_bytes()
}

/// Signs one entry with the given links, whatever they are.
fn sign_raw(keys: &Keypair, seq: u64, prev: Option<Hash>, skip: Option<Hash>, time: u64, payload: &[u8]) -> Verified {
    sign(
        keys,
        &NewEntry {
            seq,
            prev,
            skip,
            timestamp: Timestamp::from_u64(time),
            payload,
        },
    )
    .expect("entry layout is valid")
}

/// A valid chain of `n` entries of `keys`' feed: entry `seq` links to
/// `seq - 1` and (when it has one) to `lipmaa(seq)`, has timestamp
/// `1000 + seq` and carries `payload(seq)`.
fn chain_with(keys: &Keypair, n: u64, payload: impl Fn(u64) -> Vec<u8>) -> Vec<Verified> {
    let mut out: Vec<Verified> = Vec::with_capacity(n as usize);
    for seq in 1..=n {
        let hash_of = |s: u64| out[(s - 1) as usize].entry().hash();
        let prev = (seq > 1).then(|| hash_of(seq - 1));
        let skip = has_skip_link(seq).then(|| hash_of(lipmaa(seq)));
        let record = sign_raw(keys, seq, prev, skip, 1000 + seq, &payload(seq));
        out.push(record);
    }
    out
}

/// The standard chain of feed `seed`.
fn chain(seed: u8, n: u64) -> Vec<Verified> {
    chain_with(&keys(seed), n, |seq| payload_of(seed, seq))
}

/// A chain of feed `seed` equal to [`chain`] before `fork_at` and different
/// from `fork_at` on.
fn forked_chain(seed: u8, n: u64, fork_at: u64) -> Vec<Verified> {
    chain_with(&keys(seed), n, |seq| {
        if seq < fork_at {
            payload_of(seed, seq)
        } else {
            format!("other {seed}/{seq}").into_bytes()
        }
    })
}

/// The record without its payload.
fn header_only(record: &Verified) -> Verified {
    verify(record.entry().clone(), None).expect("a signed entry verifies")
}

fn report(appended: usize, already_held: usize) -> AppendReport {
    AppendReport { appended, already_held }
}

/// The store's entries `1..=latest` of `feed` verify as one chain.
fn assert_chain_verifies(store: &impl Store, feed: &FeedId) {
    let latest = store.latest(feed).expect("latest").expect("feed held");
    let entries: Vec<Entry> = store
        .range(feed, 1, latest, usize::MAX)
        .expect("range")
        .into_iter()
        .map(|(entry, _)| entry)
        .collect();
    assert_eq!(entries.len() as u64, latest);
    let summary = verify_chain(&entries).expect("stored chain verifies");
    assert_eq!((summary.lowest, summary.highest), (1, latest));
}

fn expect_rejected(result: Result<AppendReport, StoreError>) -> (usize, ValidationError) {
    match result {
        Err(StoreError::Rejected { index, error }) => (index, error),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// The suite

fn append_and_read_back<H: Harness>() {
    let h = H::new();
    let store = h.store();
    let records = chain(1, 30);
    assert_eq!(store.append(&records[..1]).unwrap(), report(1, 0));
    assert_eq!(store.append(&records[1..]).unwrap(), report(29, 0));
    for record in &records {
        let seq = record.entry().seq();
        let entry = store.entry(&feed(1), seq).unwrap().expect("entry held");
        assert_eq!(entry.as_bytes(), record.entry().as_bytes());
        assert_eq!(entry.hash(), record.entry().hash());
        assert_eq!(store.payload(&feed(1), seq).unwrap().as_deref(), record.payload());
    }
    assert_eq!(store.latest(&feed(1)).unwrap(), Some(30));
    let head = store.head(&feed(1)).unwrap().expect("head");
    assert_eq!(head.as_bytes(), records[29].entry().as_bytes());
    assert_eq!(store.entry(&feed(1), 31).unwrap(), None);
    assert_eq!(store.entry(&feed(1), 0).unwrap(), None);
    assert_eq!(store.payload(&feed(1), 31).unwrap(), None);
    assert_chain_verifies(store, &feed(1));
}

fn range_clamps_and_limits<H: Harness>() {
    let h = H::new();
    let store = h.store();
    let records = chain(2, 10);
    store.append(&records).unwrap();
    let f = feed(2);
    let seqs = |from, to, limit| -> Vec<u64> {
        let got = store.range(&f, from, to, limit).unwrap();
        for (entry, payload) in &got {
            let record = &records[(entry.seq() - 1) as usize];
            assert_eq!(entry.as_bytes(), record.entry().as_bytes());
            assert_eq!(payload.as_deref(), record.payload());
        }
        got.iter().map(|(entry, _)| entry.seq()).collect()
    };
    assert_eq!(seqs(1, 10, 100), (1..=10).collect::<Vec<_>>());
    assert_eq!(seqs(0, u64::MAX, usize::MAX), (1..=10).collect::<Vec<_>>());
    assert_eq!(seqs(3, 5, 100), vec![3, 4, 5]);
    assert_eq!(seqs(3, 10, 2), vec![3, 4]);
    assert_eq!(seqs(7, 7, 1), vec![7]);
    assert_eq!(seqs(8, 3, 10), Vec::<u64>::new());
    assert_eq!(seqs(11, 20, 10), Vec::<u64>::new());
    assert_eq!(seqs(1, 10, 0), Vec::<u64>::new());
    assert!(store.range(&feed(99), 1, 10, 10).unwrap().is_empty());
    // Paged reads: every record once, in order, in pages of the given size.
    let paged = |from, to, page| -> Vec<Vec<u64>> {
        pages(store, f, from, to, page)
            .map(|page| page.unwrap().iter().map(|(entry, _)| entry.seq()).collect())
            .collect()
    };
    assert_eq!(
        paged(1, 10, 3),
        vec![vec![1, 2, 3], vec![4, 5, 6], vec![7, 8, 9], vec![10]]
    );
    assert_eq!(
        paged(0, u64::MAX, 5),
        vec![(1..=5).collect::<Vec<_>>(), (6..=10).collect()]
    );
    assert_eq!(paged(4, 5, 100), vec![vec![4, 5]]);
    assert!(paged(11, 20, 3).is_empty());
    assert!(pages(store, feed(99), 1, 10, 3).next().is_none());
}

fn range_within_stops_at_the_byte_bound<H: Harness>() {
    let h = H::new();
    let store = h.store();
    let keys = keys(3);
    // Payloads of 100, 200, ..., 1000 bytes.
    let records = chain_with(&keys, 10, |seq| vec![seq as u8; 100 * seq as usize]);
    store.append(&records).unwrap();
    let f = keys.feed_id();
    let sizes: Vec<usize> = records.iter().map(|r| declared_record_len(r.entry())).collect();
    for (record, size) in records.iter().zip(&sizes) {
        assert_eq!(
            *size,
            record_len(record.entry(), record.payload()),
            "declared = encoded"
        );
    }
    let seqs = |from: u64, max_bytes: usize| -> Vec<u64> {
        let got = store.range_within(&f, from, 10, usize::MAX, max_bytes).unwrap();
        let total: usize = got.iter().map(|(e, p)| record_len(e, p.as_deref())).sum();
        assert!(total <= max_bytes, "{total} > {max_bytes}");
        got.iter().map(|(entry, _)| entry.seq()).collect()
    };
    let first_three: usize = sizes[..3].iter().sum();
    assert_eq!(seqs(1, first_three), vec![1, 2, 3], "exactly three fit");
    assert_eq!(seqs(1, first_three - 1), vec![1, 2], "one byte short of the third");
    assert_eq!(seqs(4, sizes[3] - 1), Vec::<u64>::new(), "not even the first fits");
    assert_eq!(seqs(1, usize::MAX), (1..=10).collect::<Vec<_>>());
    assert_eq!(store.range(&f, 1, 10, 10).unwrap().len(), 10, "range has no byte bound");
}

fn clock_over_several_feeds<H: Harness>() {
    let h = H::new();
    let store = h.store();
    assert_eq!(store.clock().unwrap(), FeedClock::new());
    for (seed, n) in [(1, 5), (2, 1), (3, 17)] {
        store.append(&chain(seed, n)).unwrap();
    }
    let expected: FeedClock = [(feed(1), 5), (feed(2), 1), (feed(3), 17)].into_iter().collect();
    assert_eq!(store.clock().unwrap(), expected);
    assert_eq!(store.latest(&feed(3)).unwrap(), Some(17));
    assert_eq!(store.latest(&feed(4)).unwrap(), None);
    assert_eq!(store.head(&feed(4)).unwrap(), None);
}

fn appending_twice_is_harmless<H: Harness>() {
    let h = H::new();
    let store = h.store();
    let records = chain(1, 8);
    assert_eq!(store.append(&records[..5]).unwrap(), report(5, 0));
    assert_eq!(store.append(&records[..5]).unwrap(), report(0, 5));
    assert_eq!(store.append(&records[2..]).unwrap(), report(3, 3));
    assert_eq!(store.append(&records).unwrap(), report(0, 8));
    // A record repeated inside one batch counts as held the second time.
    let more = chain(1, 9);
    assert_eq!(store.append(&[more[8].clone(), more[8].clone()]).unwrap(), report(1, 1));
    assert_eq!(store.latest(&feed(1)).unwrap(), Some(9));
    assert!(store.forks().unwrap().is_empty());
    assert_chain_verifies(store, &feed(1));
}

fn refuses_a_gap<H: Harness>() {
    let h = H::new();
    let store = h.store();
    let records = chain(1, 6);
    let (index, error) = expect_rejected(store.append(&records[1..2]));
    assert_eq!(index, 0);
    assert_eq!(error, ValidationError::SequenceGap { expected: 1, found: 2 });
    store.append(&records[..3]).unwrap();
    let (index, error) = expect_rejected(store.append(&records[4..5]));
    assert_eq!(index, 0);
    assert_eq!(error, ValidationError::SequenceGap { expected: 4, found: 5 });
    assert_eq!(store.latest(&feed(1)).unwrap(), Some(3));
}

fn refuses_a_wrong_prev_hash<H: Harness>() {
    let h = H::new();
    let store = h.store();
    let records = chain(1, 3);
    store.append(&records).unwrap();
    // Entry 4 has a skip link to entry 1: keep it right, break prev.
    assert!(has_skip_link(4) && lipmaa(4) == 1);
    let bad = sign_raw(
        &keys(1),
        4,
        Some(Hash([7; 32])),
        Some(records[0].entry().hash()),
        2000,
        b"x",
    );
    let (index, error) = expect_rejected(store.append(&[bad]));
    assert_eq!(index, 0);
    assert!(
        matches!(error, ValidationError::PrevHashMismatch { seq: 4, .. }),
        "{error:?}"
    );
    assert_eq!(store.latest(&feed(1)).unwrap(), Some(3));
}

fn refuses_a_wrong_skip_link<H: Harness>() {
    let h = H::new();
    let store = h.store();
    let records = chain(1, 3);
    store.append(&records).unwrap();
    let bad = sign_raw(
        &keys(1),
        4,
        Some(records[2].entry().hash()),
        Some(records[1].entry().hash()),
        2000,
        b"x",
    );
    let (index, error) = expect_rejected(store.append(&[bad]));
    assert_eq!(index, 0);
    assert!(
        matches!(error, ValidationError::SkipLinkMismatch { seq: 4, target: 1, .. }),
        "{error:?}"
    );
    assert_eq!(store.latest(&feed(1)).unwrap(), Some(3));
}

fn refuses_a_non_increasing_timestamp<H: Harness>() {
    let h = H::new();
    let store = h.store();
    let records = chain(1, 3);
    store.append(&records).unwrap();
    let previous = records[2].entry().timestamp();
    let bad = sign_raw(
        &keys(1),
        4,
        Some(records[2].entry().hash()),
        Some(records[0].entry().hash()),
        previous.as_u64(),
        b"x",
    );
    let (index, error) = expect_rejected(store.append(&[bad]));
    assert_eq!(index, 0);
    assert_eq!(
        error,
        ValidationError::TimestampNotIncreasing {
            seq: 4,
            previous,
            found: previous
        }
    );
    assert_eq!(store.latest(&feed(1)).unwrap(), Some(3));
}

fn refused_batches_store_nothing<H: Harness>() {
    let h = H::new();
    let store = h.store();
    let records = chain(1, 8);
    store.append(&records[..3]).unwrap();
    // Two good records, then one with a gap: none of the three is stored.
    let batch = [records[3].clone(), records[4].clone(), records[6].clone()];
    let (index, error) = expect_rejected(store.append(&batch));
    assert_eq!(index, 2);
    assert_eq!(error, ValidationError::SequenceGap { expected: 6, found: 7 });
    // Same with another feed's good records before the bad one.
    let other = chain(2, 2);
    let batch = [
        other[0].clone(),
        records[3].clone(),
        other[1].clone(),
        records[5].clone(),
    ];
    let (index, _) = expect_rejected(store.append(&batch));
    assert_eq!(index, 3);
    assert_eq!(store.latest(&feed(1)).unwrap(), Some(3));
    assert_eq!(store.entry(&feed(1), 4).unwrap(), None);
    assert_eq!(store.payload(&feed(1), 4).unwrap(), None);
    assert_eq!(store.latest(&feed(2)).unwrap(), None);
    assert_eq!(store.clock().unwrap().len(), 1);
    // The refused records go in fine once the gap is filled.
    assert_eq!(store.append(&records[3..]).unwrap(), report(5, 0));
    assert_chain_verifies(store, &feed(1));
}

fn fork_is_recorded_and_freezes_the_feed<H: Harness>() {
    let mut h = H::new();
    let main = chain(1, 6);
    let other = forked_chain(1, 6, 3);
    assert_eq!(main[1], other[1]);
    assert_ne!(main[2].entry().hash(), other[2].entry().hash());
    h.store().append(&main[..5]).unwrap();
    h.store().append(&chain(2, 3)).unwrap();

    let proof = match h.store().append(&other[1..3]) {
        Err(StoreError::Fork { index, proof }) => {
            assert_eq!(index, 1);
            proof
        }
        other => panic!("expected a fork, got {other:?}"),
    };
    assert_eq!((proof.author(), proof.seq()), (feed(1), 3));
    let (a, b) = proof.entries();
    let mut hashes = [a.hash(), b.hash()];
    hashes.sort();
    let mut expected = [main[2].entry().hash(), other[2].entry().hash()];
    expected.sort();
    assert_eq!(hashes, expected);
    assert_eq!(h.store().forks().unwrap(), vec![(*proof).clone()]);

    // The feed is frozen: nothing at or after 3 goes in, not even a held
    // entry; entries below 3 stay valid (a held one is skipped).
    assert_eq!(h.store().append(&main[..2]).unwrap(), report(0, 2));
    for batch in [&main[5..6], &main[2..3], &other[2..3]] {
        match h.store().append(batch) {
            Err(StoreError::Frozen {
                index: 0,
                feed: f,
                seq: 3,
            }) => assert_eq!(f, feed(1)),
            other => panic!("expected frozen, got {other:?}"),
        }
    }
    // Held entries stay readable; the other feed is unaffected.
    assert_eq!(h.store().latest(&feed(1)).unwrap(), Some(5));
    assert_eq!(
        h.store().entry(&feed(1), 3).unwrap().unwrap().as_bytes(),
        main[2].entry().as_bytes()
    );
    let feed2 = chain(2, 5);
    assert_eq!(h.store().append(&feed2).unwrap(), report(2, 3));

    h.reopen();
    assert_eq!(h.store().forks().unwrap(), vec![*proof]);
    assert!(matches!(h.store().append(&main[5..6]), Err(StoreError::Frozen { .. })));
}

fn fork_inside_one_batch<H: Harness>() {
    let h = H::new();
    let store = h.store();
    let main = chain(1, 4);
    let other = forked_chain(1, 4, 2);
    let batch = [main[0].clone(), main[1].clone(), other[1].clone()];
    match store.append(&batch) {
        Err(StoreError::Fork { index: 2, proof }) => assert_eq!(proof.seq(), 2),
        other => panic!("expected a fork, got {other:?}"),
    }
    // The batch was refused as a whole, the proof kept; the entry below
    // the fork point still goes in, the one at it does not.
    assert_eq!(store.latest(&feed(1)).unwrap(), None);
    assert_eq!(store.forks().unwrap().len(), 1);
    assert_eq!(store.append(&main[..1]).unwrap(), report(1, 0));
    assert!(matches!(
        store.append(&main[1..2]),
        Err(StoreError::Frozen { seq: 2, .. })
    ));
}

fn record_fork_keeps_the_lowest<H: Harness>() {
    let h = H::new();
    let store = h.store();
    let main = chain(1, 6);
    let other = forked_chain(1, 6, 2);
    let proof_at = |seq: u64| {
        let i = (seq - 1) as usize;
        ForkProof::new(main[i].entry().clone(), other[i].entry().clone()).expect("a fork")
    };
    assert!(store.record_fork(&proof_at(4)).unwrap());
    assert!(!store.record_fork(&proof_at(4)).unwrap());
    assert!(!store.record_fork(&proof_at(5)).unwrap());
    assert_eq!(store.forks().unwrap(), vec![proof_at(4)]);
    assert!(store.record_fork(&proof_at(2)).unwrap());
    assert_eq!(store.forks().unwrap(), vec![proof_at(2)]);
    // A recorded proof freezes the feed from 2 even with nothing stored.
    assert!(matches!(
        store.append(&main[..2]),
        Err(StoreError::Frozen { index: 1, seq: 2, .. })
    ));
    assert_eq!(store.append(&main[..1]).unwrap(), report(1, 0));
}

fn drop_payloads_keeps_headers<H: Harness>() {
    let h = H::new();
    let store = h.store();
    let f = feed(1);
    let records = chain(1, 45);
    store.append(&records[..20]).unwrap();
    assert_eq!(store.drop_payloads(&f, 10).unwrap(), 10);
    assert_eq!(store.drop_payloads(&f, 10).unwrap(), 0);
    assert_eq!(store.drop_payloads(&f, 0).unwrap(), 0);
    assert_eq!(store.drop_payloads(&feed(9), 10).unwrap(), 0);
    for record in &records[..20] {
        let seq = record.entry().seq();
        let entry = store.entry(&f, seq).unwrap().expect("header kept");
        assert_eq!(entry.as_bytes(), record.entry().as_bytes());
        let expected = if seq <= 10 { None } else { record.payload() };
        assert_eq!(store.payload(&f, seq).unwrap().as_deref(), expected);
    }
    let ranged = store.range(&f, 9, 12, 10).unwrap();
    let payloads: Vec<bool> = ranged.iter().map(|(_, payload)| payload.is_some()).collect();
    assert_eq!(payloads, vec![false, false, true, true]);
    // Later entries still validate, including skip links into the dropped
    // part (13 -> 4, 40 -> 13).
    assert_eq!((lipmaa(13), lipmaa(40)), (4, 13));
    assert_eq!(store.append(&records[20..]).unwrap(), report(25, 0));
    // Re-appending a dropped entry does not bring its payload back.
    assert_eq!(store.append(&records[..1]).unwrap(), report(0, 1));
    assert_eq!(store.payload(&f, 1).unwrap(), None);
    // Dropping beyond the head drops what is there.
    assert_eq!(store.drop_payloads(&f, u64::MAX).unwrap(), 35);
    assert!(store.range(&f, 1, 45, 100).unwrap().iter().all(|(_, p)| p.is_none()));
    assert_chain_verifies(store, &f);
}

fn header_only_records<H: Harness>() {
    let h = H::new();
    let store = h.store();
    let records = chain(1, 6);
    let headers: Vec<Verified> = records.iter().map(header_only).collect();
    assert_eq!(store.append(&headers[..3]).unwrap(), report(3, 0));
    assert_eq!(store.append(&records[3..]).unwrap(), report(3, 0));
    assert_eq!(store.payload(&feed(1), 2).unwrap(), None);
    assert_eq!(store.payload(&feed(1), 5).unwrap().as_deref(), records[4].payload());
    assert_chain_verifies(store, &feed(1));
}

fn batch_interleaving_two_feeds<H: Harness>() {
    let h = H::new();
    let store = h.store();
    let a = chain(1, 20);
    let b = chain(2, 20);
    let batch: Vec<Verified> = a.iter().zip(&b).flat_map(|(x, y)| [x.clone(), y.clone()]).collect();
    assert_eq!(store.append(&batch).unwrap(), report(40, 0));
    let expected: FeedClock = [(feed(1), 20), (feed(2), 20)].into_iter().collect();
    assert_eq!(store.clock().unwrap(), expected);
    for (f, records) in [(feed(1), &a), (feed(2), &b)] {
        let got = store.range(&f, 1, 20, 100).unwrap();
        assert_eq!(got.len(), 20);
        for ((entry, payload), record) in got.iter().zip(records.iter()) {
            assert_eq!(entry.as_bytes(), record.entry().as_bytes());
            assert_eq!(payload.as_deref(), record.payload());
        }
        assert_chain_verifies(store, &f);
    }
}

fn empty_append_and_unknown_feeds<H: Harness>() {
    let h = H::new();
    let store = h.store();
    assert_eq!(store.append(&[]).unwrap(), report(0, 0));
    assert_eq!(store.latest(&feed(1)).unwrap(), None);
    assert_eq!(store.entry(&feed(1), 1).unwrap(), None);
    assert_eq!(store.payload(&feed(1), 1).unwrap(), None);
    assert!(store.range(&feed(1), 1, 10, 10).unwrap().is_empty());
    assert!(store.forks().unwrap().is_empty());
    assert!(store.clock().unwrap().is_empty());
}

// ---------------------------------------------------------------------------
// redb only: persistence and the file's schema

#[test]
fn redb_reopened_holds_everything() {
    let mut h = Redb::new();
    let a = chain(1, 50);
    let b = chain(2, 10);
    h.store().append(&a[..30]).unwrap();
    h.store().append(&b).unwrap();
    h.store().drop_payloads(&feed(1), 5).unwrap();
    let fork = forked_chain(3, 4, 2);
    h.store().append(&chain(3, 4)).unwrap();
    assert!(matches!(h.store().append(&fork[1..2]), Err(StoreError::Fork { .. })));
    let clock = h.store().clock().unwrap();
    let forks = h.store().forks().unwrap();

    h.reopen();
    let store = h.store();
    assert_eq!(store.clock().unwrap(), clock);
    assert_eq!(store.forks().unwrap(), forks);
    for (f, records) in [(feed(1), &a[..30]), (feed(2), &b[..])] {
        let got = store.range(&f, 1, u64::MAX, usize::MAX).unwrap();
        assert_eq!(got.len(), records.len());
        for ((entry, payload), record) in got.iter().zip(records) {
            assert_eq!(entry.as_bytes(), record.entry().as_bytes());
            let dropped = f == feed(1) && entry.seq() <= 5;
            assert_eq!(payload.as_deref(), if dropped { None } else { record.payload() });
        }
    }
    // And it goes on from where it was.
    assert_eq!(store.append(&a).unwrap(), report(20, 30));
    assert_chain_verifies(store, &feed(1));
}

#[test]
fn redb_refuses_an_unknown_schema_version() {
    let h = Redb::new();
    let file = h.file();
    drop(h.store);
    {
        let db = ::redb::Database::create(&file).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let meta: ::redb::TableDefinition<&str, u64> = ::redb::TableDefinition::new("meta");
            let mut table = txn.open_table(meta).unwrap();
            table.insert("schema_version", 99).unwrap();
        }
        txn.commit().unwrap();
    }
    match RedbStore::open(&file) {
        Err(StoreError::Corrupt(message)) => assert!(message.contains("schema version 99"), "{message}"),
        other => panic!("expected a schema error, got {other:?}"),
    }
}

#[test]
fn redb_refuses_a_file_that_is_not_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("junk.redb");
    std::fs::write(&file, vec![0x5a; 8192]).unwrap();
    assert!(RedbStore::open(&file).is_err());
}

#[test]
fn redb_checked_open_reports_damage() {
    let mut h = Redb::new();
    h.store().append(&chain(1, 300)).unwrap();
    h.reopen();
    let file = h.file();
    drop(h.store.take());
    assert!(RedbStore::open_checked(&file).is_ok());
    // Overwrite everything past the first 16 KiB (the header region).
    let mut bytes = std::fs::read(&file).unwrap();
    assert!(bytes.len() > 32 * 1024, "file of {} bytes", bytes.len());
    for byte in &mut bytes[16 * 1024..] {
        *byte ^= 0xa5;
    }
    std::fs::write(&file, &bytes).unwrap();
    assert!(RedbStore::open_checked(&file).is_err());
}

#[test]
fn redb_store_is_locked_while_open() {
    let h = Redb::new();
    assert!(matches!(RedbStore::open(h.file()), Err(StoreError::Backend(_))));
}

// ---------------------------------------------------------------------------
// Model check: random appends, reads and drops against a BTreeMap model

const MODEL_FEEDS: u8 = 3;
const MODEL_LEN: u64 = 40;
/// Where each feed's alternative chain departs from its main one.
const FORK_AT: [u64; MODEL_FEEDS as usize] = [1, 5, 14];

/// Per feed: [main, alternative] chains, each with and without payloads.
struct Chains {
    with_payload: Vec<[Vec<Verified>; 2]>,
    header_only: Vec<[Vec<Verified>; 2]>,
}

fn model_chains() -> &'static Chains {
    static CHAINS: OnceLock<Chains> = OnceLock::new();
    CHAINS.get_or_init(|| {
        let with_payload: Vec<[Vec<Verified>; 2]> = (0..MODEL_FEEDS)
            .map(|f| {
                let seed = 10 + f;
                [
                    chain(seed, MODEL_LEN),
                    forked_chain(seed, MODEL_LEN, FORK_AT[f as usize]),
                ]
            })
            .collect();
        let header_only = with_payload
            .iter()
            .map(|branches| {
                branches
                    .clone()
                    .map(|records| records.iter().map(header_only).collect())
            })
            .collect();
        Chains {
            with_payload,
            header_only,
        }
    })
}

fn model_feed(f: u8) -> FeedId {
    feed(10 + f)
}

/// A run of consecutive records of one branch of one feed, placed relative
/// to the feed's head in the model when the operation runs (so that most runs
/// extend or overlap the held chain rather than leave a gap).
#[derive(Debug, Clone)]
struct Run {
    feed: u8,
    alternative: bool,
    /// How far before the next sequence number the run starts.
    back: u64,
    /// Start one past the next sequence number instead (a gap).
    gap: bool,
    len: u64,
    with_payload: bool,
}

impl Run {
    fn records(&self, model: &Model) -> &'static [Verified] {
        let chains = model_chains();
        let set = if self.with_payload {
            &chains.with_payload
        } else {
            &chains.header_only
        };
        let branch = &set[self.feed as usize][usize::from(self.alternative)];
        let head = model.feeds.get(&model_feed(self.feed)).map_or(0, Vec::len);
        let start = if self.gap {
            head + 1
        } else {
            head.saturating_sub(self.back as usize)
        };
        let start = start.min(branch.len() - 1);
        let end = (start + self.len as usize).min(branch.len());
        &branch[start..end]
    }
}

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<Run>),
    Range { feed: u8, from: u64, to: u64, limit: usize },
    Drop { feed: u8, up_to: u64 },
    Reopen,
}

fn run_strategy() -> impl Strategy<Value = Run> {
    (
        0..MODEL_FEEDS,
        prop::bool::weighted(0.1),
        0..6u64,
        prop::bool::weighted(0.1),
        1..=6u64,
        prop::bool::weighted(0.8),
    )
        .prop_map(|(feed, alternative, back, gap, len, with_payload)| Run {
            feed,
            alternative,
            back,
            gap,
            len,
            with_payload,
        })
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => prop::collection::vec(run_strategy(), 1..4).prop_map(Op::Append),
        3 => (0..MODEL_FEEDS, 0..=MODEL_LEN + 2, 0..=MODEL_LEN + 2, 0..8usize)
            .prop_map(|(feed, from, to, limit)| Op::Range { feed, from, to, limit }),
        1 => (0..MODEL_FEEDS, 0..=MODEL_LEN + 2).prop_map(|(feed, up_to)| Op::Drop { feed, up_to }),
        1 => Just(Op::Reopen),
    ]
}

/// What the model expects of an append.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Appended(AppendReport),
    Gap(usize),
    PrevMismatch(usize),
    Fork(usize, u64),
    Frozen(usize),
}

fn outcome_of(result: Result<AppendReport, StoreError>) -> Outcome {
    match result {
        Ok(report) => Outcome::Appended(report),
        Err(StoreError::Rejected {
            index,
            error: ValidationError::SequenceGap { .. },
        }) => Outcome::Gap(index),
        Err(StoreError::Rejected {
            index,
            error: ValidationError::PrevHashMismatch { .. },
        }) => Outcome::PrevMismatch(index),
        Err(StoreError::Fork { index, proof }) => Outcome::Fork(index, proof.seq()),
        Err(StoreError::Frozen { index, .. }) => Outcome::Frozen(index),
        Err(other) => panic!("unexpected store error: {other}"),
    }
}

/// The model: per feed the entries held (index `seq - 1`) and their payloads,
/// and the fork point of frozen feeds.
#[derive(Debug, Clone, Default)]
struct Model {
    feeds: BTreeMap<FeedId, Vec<Record>>,
    forks: BTreeMap<FeedId, u64>,
}

impl Model {
    fn append(&mut self, records: &[Verified]) -> Outcome {
        let mut next = self.feeds.clone();
        let mut done = AppendReport::default();
        for (index, record) in records.iter().enumerate() {
            let entry = record.entry();
            if self.forks.get(&entry.author()).is_some_and(|&at| entry.seq() >= at) {
                return Outcome::Frozen(index);
            }
            let log = next.entry(entry.author()).or_default();
            let seq = entry.seq() as usize;
            if seq <= log.len() {
                if log[seq - 1].0.hash() == entry.hash() {
                    done.already_held += 1;
                    continue;
                }
                self.forks.insert(entry.author(), entry.seq());
                return Outcome::Fork(index, entry.seq());
            }
            if seq != log.len() + 1 {
                return Outcome::Gap(index);
            }
            // The chains share a prefix up to their fork point, so a matching
            // prev link means every earlier link (skip links too) matches.
            if seq > 1 && entry.header().prev != Some(log[seq - 2].0.hash()) {
                return Outcome::PrevMismatch(index);
            }
            log.push((entry.clone(), record.payload().map(<[u8]>::to_vec)));
            done.appended += 1;
        }
        self.feeds = next;
        Outcome::Appended(done)
    }

    fn clock(&self) -> FeedClock {
        self.feeds
            .iter()
            .filter(|(_, log)| !log.is_empty())
            .map(|(feed, log)| (*feed, log.len() as u64))
            .collect()
    }
}

fn check_against_model<H: Harness>(ops: &[Op]) {
    let mut h = H::new();
    let mut model = Model::default();
    for op in ops {
        match op {
            Op::Append(runs) => {
                let records: Vec<Verified> = runs
                    .iter()
                    .flat_map(|run| run.records(&model).iter().cloned())
                    .collect();
                let expected = model.append(&records);
                assert_eq!(outcome_of(h.store().append(&records)), expected, "{op:?}");
            }
            Op::Range { feed, from, to, limit } => {
                let f = model_feed(*feed);
                let got = h.store().range(&f, *from, *to, *limit).unwrap();
                let held = model.feeds.get(&f).map_or(&[][..], Vec::as_slice);
                let expected: Vec<&Record> = held
                    .iter()
                    .filter(|(entry, _)| (*from..=*to).contains(&entry.seq()))
                    .take(*limit)
                    .collect();
                assert_eq!(got.len(), expected.len(), "{op:?}");
                for ((entry, payload), (want_entry, want_payload)) in got.iter().zip(expected) {
                    assert_eq!(entry.as_bytes(), want_entry.as_bytes());
                    assert_eq!(payload, want_payload);
                }
            }
            Op::Drop { feed, up_to } => {
                let f = model_feed(*feed);
                let mut expected = 0;
                if let Some(log) = model.feeds.get_mut(&f) {
                    for (entry, payload) in log.iter_mut() {
                        if entry.seq() <= *up_to && payload.take().is_some() {
                            expected += 1;
                        }
                    }
                }
                assert_eq!(h.store().drop_payloads(&f, *up_to).unwrap(), expected, "{op:?}");
            }
            Op::Reopen => h.reopen(),
        }
        assert_eq!(h.store().clock().unwrap(), model.clock());
        let forks: BTreeMap<FeedId, u64> = h
            .store()
            .forks()
            .unwrap()
            .iter()
            .map(|proof| (proof.author(), proof.seq()))
            .collect();
        assert_eq!(forks, model.forks);
    }
    for f in model.feeds.keys() {
        if model.clock().contains_key(f) {
            assert_chain_verifies(h.store(), f);
        }
    }
}

// Each redb case commits (and fsyncs) on every append, so it runs fewer cases.
proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn memory_matches_model(ops in prop::collection::vec(op_strategy(), 1..40)) {
        check_against_model::<Memory>(&ops);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn redb_matches_model(ops in prop::collection::vec(op_strategy(), 1..40)) {
        check_against_model::<Redb>(&ops);
    }
}
