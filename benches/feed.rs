//! Feed benchmarks: signing, durable appends (one per commit and batched),
//! and chain verification (single, batched, and against the raw
//! `ed25519_dalek::verify_batch` limit). Prints entries per second.
//!
//! Run: `cargo bench --bench feed` (add `-- --quick` for a short run).

mod common;

use common::{VERIFY_BATCH, rate, raw_batch_verify_rate};
use feedmesh::feed::{Entry, Keypair, check_signature, verify_chain};
use feedmesh::store::{MemoryStore, RedbStore, Store};
use feedmesh::writer::FeedWriter;

/// Entries per commit in the batched append run.
const APPEND_BATCH: usize = 1000;
/// A session-sized payload.
const PAYLOAD: &[u8] = &[0x5a; 160];

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let scale = if quick { 1 } else { 5 };
    let keys = Keypair::from_seed([7; 32]);

    let chain = make_chain(&keys, 20_000 * scale);
    let signing = rate(chain.len(), || {
        for entry in &chain {
            std::hint::black_box(keys.sign_message(&entry.signed_message()));
        }
    });
    report("ed25519 signing alone (entry messages)", signing, None);

    let dir = tempfile::tempdir().expect("temporary directory");
    let single = {
        let store = RedbStore::open(dir.path().join("single.redb")).expect("open store");
        let mut writer = FeedWriter::open(&store, keys.clone()).expect("writer");
        let n = 500 * scale;
        rate(n, || {
            for i in 0..n {
                writer.append(&store, &[PAYLOAD], i as u64).expect("append");
            }
        })
    };
    report("durable append, 1 entry per commit", single, None);

    let rounds = 40 * scale;
    let redb = RedbStore::open(dir.path().join("batched.redb")).expect("open store");
    let batched = batched_append_rate(&redb, &keys, rounds);
    report(
        &format!("durable append, {APPEND_BATCH} entries per commit"),
        batched,
        Some(("of signing alone", batched / signing)),
    );
    let memory = batched_append_rate(&MemoryStore::new(), &keys, rounds);
    report(
        "in-memory append, batched",
        memory,
        Some(("of signing alone", memory / signing)),
    );

    let single_verify = rate(chain.len() / 4, || {
        for entry in &chain[..chain.len() / 4] {
            check_signature(entry).expect("valid");
        }
    });
    report("verify one by one (verify_strict)", single_verify, None);

    let raw_limit = raw_batch_verify_rate(&chain);
    report(
        &format!("ed25519_dalek::verify_batch alone, {VERIFY_BATCH} per batch"),
        raw_limit,
        None,
    );

    let encoded: Vec<Vec<u8>> = chain.iter().map(|e| e.as_bytes().to_vec()).collect();
    let chain_rate = rate(chain.len(), || {
        // Decode from bytes, as import and replication do; each chunk carries
        // its predecessor so links are checked across chunks.
        for start in (0..chain.len()).step_by(VERIFY_BATCH) {
            let from = start.saturating_sub(1);
            let end = (start + VERIFY_BATCH).min(chain.len());
            let entries: Vec<Entry> = encoded[from..end]
                .iter()
                .map(|bytes| Entry::decode(bytes).expect("decodes"))
                .collect();
            verify_chain(&entries).expect("valid chain");
        }
    });
    report(
        &format!("decode + verify_chain (batched signatures + links), {VERIFY_BATCH} per batch"),
        chain_rate,
        Some(("of verify_batch alone", chain_rate / raw_limit)),
    );
}

/// Durable (for redb) appends of `rounds` batches of APPEND_BATCH entries.
fn batched_append_rate(store: &dyn Store, keys: &Keypair, rounds: usize) -> f64 {
    let mut writer = FeedWriter::open(store, keys.clone()).expect("writer");
    let payloads: Vec<&[u8]> = vec![PAYLOAD; APPEND_BATCH];
    rate(rounds * APPEND_BATCH, || {
        for i in 0..rounds {
            writer.append(store, &payloads, i as u64).expect("append");
        }
    })
}

fn make_chain(keys: &Keypair, n: usize) -> Vec<Entry> {
    let store = MemoryStore::new();
    let mut writer = FeedWriter::open(&store, keys.clone()).expect("writer");
    let payloads: Vec<&[u8]> = vec![PAYLOAD; APPEND_BATCH];
    let mut chain = Vec::with_capacity(n);
    while chain.len() < n {
        let take = APPEND_BATCH.min(n - chain.len());
        chain.extend(writer.append(&store, &payloads[..take], 1).expect("append"));
    }
    chain
}

fn report(name: &str, per_sec: f64, ratio: Option<(&str, f64)>) {
    match ratio {
        Some((what, r)) => println!("{name:<62} {per_sec:>12.0} entries/s  ({:.0}% {what})", r * 100.0),
        None => println!("{name:<62} {per_sec:>12.0} entries/s"),
    }
}
