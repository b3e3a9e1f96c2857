//! Fuzz entry points (not a public API).
//!
//! Each function takes arbitrary bytes, drives one decoder or validator with
//! them and asserts its invariants with `assert!`. The targets under `fuzz/`
//! only call these, and `tests/fuzz_corpus.rs` replays the committed corpus
//! through them in `cargo test`, so a crash found by the fuzzer stays a test.
//!
//! Random bytes almost never carry a valid signature, so the chain and
//! bundle targets also build a *valid* signed feed from a fixed key, with
//! payloads, timestamps and length taken from the input, corrupt it as the
//! input says, and check that nothing forged gets through.

use ciborium::Value;

use crate::bundle::{self, BundleWriter, ImportOptions};
use crate::feed::{
    Entry, ForkProof, Hash, Keypair, NewEntry, Timestamp, Verified, check_payload, check_signature, has_skip_link,
    lipmaa, sign, verify_chain,
};
use crate::store::{MemoryStore, Store};

/// The seed byte of the key that signs the generated feeds.
pub const SEED: u8 = 7;
/// Most entries in a generated feed (enough for several skip links).
const MAX_CHAIN: usize = 16;
/// Most entries split out of raw input by [`chain_verify`].
const MAX_SPLIT: usize = 64;
/// Most mutations [`chain_verify`] applies to a generated feed.
const MAX_MUTATIONS: usize = 4;

/// `Entry::decode` and `Entry::decode_prefix` never panic, agree with each
/// other, and accept only the canonical encoding of what they return.
pub fn entry_decode(data: &[u8]) {
    if let Ok(entry) = Entry::decode(data) {
        assert_eq!(entry.as_bytes(), data);
        assert_eq!(entry.hash(), Hash(*blake3::hash(data).as_bytes()));
        assert_eq!(reference_encoding(&entry), data, "accepted a non-canonical encoding");
        assert_eq!(Entry::decode_prefix(data), Ok((entry.clone(), data.len())));
        // Whatever the key and signature bytes are, checking them must not panic.
        let _ = check_signature(&entry);
    }
    if let Ok((entry, used)) = Entry::decode_prefix(data) {
        assert!(used <= data.len());
        assert_eq!(entry.as_bytes(), &data[..used]);
        assert_eq!(Entry::decode(&data[..used]), Ok(entry));
    }
}

/// `verify_chain` never panics on entries split out of the input, and on a
/// generated feed corrupted as the input says, never accepts an entry that
/// is not byte-identical to the original at its sequence number.
pub fn chain_verify(data: &[u8]) {
    let mut entries = split_entries(data);
    entries.sort_by_key(Entry::seq);
    entries.dedup_by_key(|entry| entry.seq());
    if let Ok(summary) = verify_chain(&entries) {
        assert_eq!(summary.author, entries[0].author());
        assert_eq!(
            (summary.lowest, summary.highest),
            (entries[0].seq(), entries[entries.len() - 1].seq())
        );
        // The batch verification said yes: so must strict single verification.
        assert!(entries.iter().all(|entry| check_signature(entry).is_ok()));
    }

    let mut input = Input(data);
    let count = 1 + usize::from(input.byte()) % MAX_CHAIN;
    let original: Vec<Entry> = signed_chain(count, &mut input)
        .into_iter()
        .map(|record| record.into_parts().0)
        .collect();
    verify_chain(&original).expect("a freshly signed feed verifies");
    let mutated: Vec<Entry> = mutate(&original, &mut input)
        .iter()
        .filter_map(|bytes| Entry::decode(bytes).ok())
        .collect();
    if verify_chain(&mutated).is_ok() {
        for entry in &mutated {
            let at = usize::try_from(entry.seq() - 1).ok().and_then(|i| original.get(i));
            assert_eq!(at.map(Entry::as_bytes), Some(entry.as_bytes()), "forged entry verified");
        }
    }
}

/// `bundle::import` never panics and stores only verifiable chains; and a
/// valid bundle with one byte changed stores a byte-identical prefix of the
/// original feed, nothing else.
pub fn bundle_import(data: &[u8]) {
    let mut input = Input(data);
    let options = ImportOptions {
        allow_missing_payloads: input.byte() & 1 == 1,
    };
    let store = MemoryStore::new();
    let _ = bundle::import(&store, input.0, options);
    assert_stores_only_chains(&store);

    let count = 1 + usize::from(input.byte()) % MAX_CHAIN;
    let original = signed_chain(count, &mut input);
    let mut bundle = bundle_of(&original);
    let position = usize::from(u16::from_le_bytes([input.byte(), input.byte()])) % bundle.len();
    let mask = input.byte();
    bundle[position] ^= mask;
    let store = MemoryStore::new();
    let outcome = bundle::import(&store, bundle.as_slice(), options);
    assert_stores_only_chains(&store);
    let stored = stored_records(&store);
    assert!(stored.len() <= original.len());
    for ((entry, payload), record) in stored.iter().zip(&original) {
        assert_eq!(entry.as_bytes(), record.entry().as_bytes());
        assert!(payload.as_deref() == record.payload() || (payload.is_none() && options.allow_missing_payloads));
    }
    if mask == 0 {
        let outcome = outcome.expect("an intact bundle is a bundle");
        assert!(outcome.error.is_none(), "intact bundle refused: {:?}", outcome.error);
        assert_eq!(stored.len(), original.len());
    }
}

/// `ForkProof::decode` never panics, and what it accepts is canonical.
pub fn fork_proof_decode(data: &[u8]) {
    if let Ok(proof) = ForkProof::decode(data) {
        assert_eq!(proof.encode(), data);
        let (first, second) = proof.entries();
        assert!(first.hash() < second.hash());
        assert_eq!(ForkProof::new(second.clone(), first.clone()), Ok(proof.clone()));
    }
}

/// A valid feed of `count` entries signed by the key from [`SEED`], with
/// timestamps and payloads read from `input` (zeros once it runs out).
pub fn signed_chain(count: usize, input: &mut Input<'_>) -> Vec<Verified> {
    let keys = Keypair::from_seed([SEED; 32]);
    let mut chain: Vec<Verified> = Vec::with_capacity(count);
    // Up to 56 bits: small timestamps and realistic ones (milliseconds << 16).
    let mut timestamp = input.take(7).iter().rev().fold(0, |t, &b| t << 8 | u64::from(b));
    for seq in 1..=count as u64 {
        timestamp += 1 + u64::from(input.byte());
        let len = usize::from(input.byte() % 16);
        let hash_of = |seq: u64| chain[seq as usize - 1].entry().hash();
        let new = NewEntry {
            seq,
            prev: (seq > 1).then(|| hash_of(seq - 1)),
            skip: has_skip_link(seq).then(|| hash_of(lipmaa(seq))),
            timestamp: Timestamp::from_u64(timestamp),
            payload: input.take(len),
        };
        chain.push(sign(&keys, &new).expect("generated links follow the layout rules"));
    }
    chain
}

/// The bundle of `records`, in order, with the payloads they carry.
pub fn bundle_of(records: &[Verified]) -> Vec<u8> {
    let mut writer = BundleWriter::new(Vec::new()).expect("writing to memory");
    for record in records {
        writer
            .write(record.entry(), record.payload())
            .expect("writing to memory");
    }
    writer.finish().expect("writing to memory").1
}

/// A cursor handing out the fuzz input a byte at a time (zeros once empty).
#[derive(Debug)]
pub struct Input<'a>(pub &'a [u8]);

impl<'a> Input<'a> {
    /// The next byte, or 0 when the input is used up.
    pub fn byte(&mut self) -> u8 {
        let (&first, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        first
    }

    /// The next `len` bytes (fewer when the input runs out).
    pub fn take(&mut self, len: usize) -> &'a [u8] {
        let (taken, rest) = self.0.split_at(len.min(self.0.len()));
        self.0 = rest;
        taken
    }
}

/// The entry's fields encoded by an independent encoder (ciborium, which
/// writes shortest-form heads): the one byte string a decoder may accept.
fn reference_encoding(entry: &Entry) -> Vec<u8> {
    let header = entry.header();
    let bytes = |b: &[u8]| Value::Bytes(b.to_vec());
    let link = |hash: Option<Hash>| hash.map_or(Value::Null, |h| bytes(h.as_bytes()));
    let items = vec![
        Value::from(crate::feed::FORMAT_VERSION),
        bytes(header.author.as_bytes()),
        Value::from(header.seq),
        link(header.prev),
        link(header.skip),
        Value::from(header.timestamp.as_u64()),
        Value::from(header.payload_len),
        bytes(header.payload_hash.as_bytes()),
        bytes(&header.signature),
    ];
    let mut out = Vec::new();
    ciborium::into_writer(&Value::Array(items), &mut out).expect("writing to memory");
    out
}

/// Entries found in `data` by decoding at each offset, skipping a byte after
/// a failure; at most [`MAX_SPLIT`].
fn split_entries(mut data: &[u8]) -> Vec<Entry> {
    let mut entries = Vec::new();
    while !data.is_empty() && entries.len() < MAX_SPLIT {
        match Entry::decode_prefix(data) {
            Ok((entry, used)) => {
                entries.push(entry);
                data = &data[used..];
            }
            Err(_) => data = &data[1..],
        }
    }
    entries
}

/// The entries' bytes after up to [`MAX_MUTATIONS`] edits read from `input`:
/// flip bits of one byte, drop an entry, or swap two.
fn mutate(entries: &[Entry], input: &mut Input<'_>) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = entries.iter().map(|e| e.as_bytes().to_vec()).collect();
    for _ in 0..MAX_MUTATIONS {
        if input.0.is_empty() || out.is_empty() {
            break;
        }
        let op = input.byte() % 3;
        let len = out.len();
        let j = usize::from(input.byte()) % len;
        let k = usize::from(input.byte());
        match op {
            0 => {
                let i = k % out[j].len();
                out[j][i] ^= input.byte().max(1);
            }
            1 => {
                out.remove(j);
            }
            _ => out.swap(j, k % len),
        }
    }
    out
}

/// Every feed in `store` is a verifiable chain from entry 1 to its head,
/// with the payloads it holds matching their entries.
fn assert_stores_only_chains(store: &MemoryStore) {
    let clock = store.clock().expect("memory store");
    for (feed, head) in clock {
        let records = store.range(&feed, 1, head, usize::MAX).expect("memory store");
        let entries: Vec<Entry> = records.iter().map(|(entry, _)| entry.clone()).collect();
        assert_eq!(entries.len() as u64, head, "a store holds a contiguous prefix");
        let summary = verify_chain(&entries).expect("stored entries form a chain");
        assert_eq!((summary.author, summary.lowest, summary.highest), (feed, 1, head));
        for (entry, payload) in &records {
            if let Some(payload) = payload {
                check_payload(entry, payload).expect("stored payload matches its entry");
            }
        }
    }
}

/// Everything `store` holds for the feed of [`SEED`].
fn stored_records(store: &MemoryStore) -> Vec<(Entry, Option<Vec<u8>>)> {
    let feed = Keypair::from_seed([SEED; 32]).feed_id();
    let clock = store.clock().expect("memory store");
    assert!(
        clock.keys().all(|id| *id == feed),
        "stored a feed that was not in the bundle"
    );
    store.range(&feed, 1, u64::MAX, usize::MAX).expect("memory store")
}
