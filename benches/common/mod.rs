//! Shared by the benchmarks: timing, and the raw batch signature
//! verification limit (`ed25519_dalek::verify_batch` alone).

use std::time::{Duration, Instant};

use ed25519_dalek::{Signature, VerifyingKey};
use feedmesh::feed::Entry;

/// Entries per verification batch (as replication and import use).
pub(crate) const VERIFY_BATCH: usize = 1024;

/// Entries per second `ed25519_dalek::verify_batch` alone verifies on
/// `chain` (one author), in batches of [`VERIFY_BATCH`], on one thread.
/// The messages and signatures are prepared before the clock starts.
pub(crate) fn raw_batch_verify_rate(chain: &[Entry]) -> f64 {
    let messages: Vec<Vec<u8>> = chain.iter().map(Entry::signed_message).collect();
    let signatures: Vec<Signature> = chain
        .iter()
        .map(|e| Signature::from_bytes(&e.header().signature))
        .collect();
    let key = VerifyingKey::from_bytes(chain[0].author().as_bytes()).expect("key");
    let keys = vec![key; VERIFY_BATCH];
    rate(chain.len(), || {
        for start in (0..chain.len()).step_by(VERIFY_BATCH) {
            let end = (start + VERIFY_BATCH).min(chain.len());
            let msgs: Vec<&[u8]> = messages[start..end].iter().map(Vec::as_slice).collect();
            ed25519_dalek::verify_batch(&msgs, &signatures[start..end], &keys[..end - start]).expect("valid");
        }
    })
}

/// Runs `work` once and returns `count` per second.
pub(crate) fn rate(count: usize, work: impl FnOnce()) -> f64 {
    let start = Instant::now();
    work();
    let elapsed = start.elapsed().max(Duration::from_nanos(1));
    count as f64 / elapsed.as_secs_f64()
}
