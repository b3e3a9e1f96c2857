//! Signature, payload and chain verification (spec/PROTOCOL.md §1.6).
//!
//! Signatures follow the one rule of [`signature`] (cofactored ed25519 with
//! canonical encodings). Runs of entries go through [`verify_batch`], which
//! checks all signatures in one batch equation and falls back to single checks
//! only to name the first bad entry; the verdict is the single check's.

use super::lipmaa::lipmaa;
use super::signature::{self, SignedMessage};
use super::{Entry, FeedId, Hash, ValidationError};

/// An entry whose signature verified, with its payload when present (and then
/// checked against the entry). The only way to make one is through this
/// module, so holding one means rules V1–V6, V12 and V13 passed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    entry: Entry,
    payload: Option<Vec<u8>>,
}

impl Verified {
    /// The verified entry.
    pub fn entry(&self) -> &Entry {
        &self.entry
    }

    /// The payload, if it travelled with the entry.
    pub fn payload(&self) -> Option<&[u8]> {
        self.payload.as_deref()
    }

    /// Splits into the entry and its payload.
    pub fn into_parts(self) -> (Entry, Option<Vec<u8>>) {
        (self.entry, self.payload)
    }
}

/// A verification failure inside a run of entries: which one, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("entry at index {index}: {error}")]
pub struct BatchError {
    /// Index of the first failing entry in the input.
    pub index: usize,
    /// The rule it broke.
    pub error: ValidationError,
}

/// Wraps an entry whose signature [`verify_chain`] checked, with a payload
/// [`check_payload`] checked (or none). Only for callers that did both.
pub(crate) fn assume_verified(entry: Entry, payload: Option<Vec<u8>>) -> Verified {
    Verified { entry, payload }
}

/// Rules V12 and V13: `payload` is the one `entry` commits to.
pub fn check_payload(entry: &Entry, payload: &[u8]) -> Result<(), ValidationError> {
    let declared = entry.header().payload_len;
    let actual = payload.len() as u64;
    if declared != actual {
        return Err(ValidationError::PayloadLengthMismatch { declared, actual });
    }
    if Hash::of(payload) != entry.header().payload_hash {
        return Err(ValidationError::PayloadHashMismatch);
    }
    Ok(())
}

/// Rule V6 for one entry: the signature rule of [`signature`] under the
/// author's key.
pub fn check_signature(entry: &Entry) -> Result<(), ValidationError> {
    signature::check(&SignedMessage {
        key: entry.header().author.as_bytes(),
        signature: &entry.header().signature,
        message: &entry.signed_message(),
    })
    .map_err(|_| ValidationError::BadSignature)
}

/// Verifies one entry's signature and, when given, its payload.
pub fn verify(entry: Entry, payload: Option<Vec<u8>>) -> Result<Verified, ValidationError> {
    if let Some(payload) = &payload {
        check_payload(&entry, payload)?;
    }
    check_signature(&entry)?;
    Ok(Verified { entry, payload })
}

/// Verifies many entries at once: payloads first, then all signatures with
/// one ed25519 batch verification. On failure, reports the first failing
/// entry by index (found by verifying singly).
pub fn verify_batch(records: Vec<(Entry, Option<Vec<u8>>)>) -> Result<Vec<Verified>, BatchError> {
    match verify_prefix(records) {
        (verified, None) => Ok(verified),
        (_, Some(failure)) => Err(failure),
    }
}

/// Like [`verify_batch`], but also returns the verified records before the
/// first failing one, so a caller can keep the valid prefix.
pub fn verify_prefix(records: Vec<(Entry, Option<Vec<u8>>)>) -> (Vec<Verified>, Option<BatchError>) {
    let payload_failure = records.iter().enumerate().find_map(|(index, (entry, payload))| {
        let payload = payload.as_deref()?;
        check_payload(entry, payload)
            .err()
            .map(|error| BatchError { index, error })
    });
    let checked = payload_failure.as_ref().map_or(records.len(), |f| f.index);
    let entries: Vec<&Entry> = records[..checked].iter().map(|(entry, _)| entry).collect();
    let failure = match check_signatures(&entries) {
        Ok(()) => payload_failure,
        Err(signature_failure) => Some(signature_failure),
    };
    let valid = failure.as_ref().map_or(records.len(), |f| f.index);
    let verified = records
        .into_iter()
        .take(valid)
        .map(|(entry, payload)| Verified { entry, payload })
        .collect();
    (verified, failure)
}

/// Rule V6 for a run of entries, batched.
pub fn check_signatures(entries: &[&Entry]) -> Result<(), BatchError> {
    if !batch_signatures_hold(entries) {
        for (index, entry) in entries.iter().enumerate() {
            check_signature(entry).map_err(|error| BatchError { index, error })?;
        }
    }
    Ok(())
}

fn batch_signatures_hold(entries: &[&Entry]) -> bool {
    let messages: Vec<Vec<u8>> = entries.iter().map(|entry| entry.signed_message()).collect();
    let batch: Vec<SignedMessage<'_>> = entries
        .iter()
        .zip(&messages)
        .map(|(entry, message)| SignedMessage {
            key: entry.header().author.as_bytes(),
            signature: &entry.header().signature,
            message,
        })
        .collect();
    signature::batch_holds(&batch)
}

/// Rules V7, V8, V9 and V11: `next` directly follows `prev` in one feed.
pub fn check_successor(prev: &Entry, next: &Entry) -> Result<(), ValidationError> {
    if next.author() != prev.author() {
        return Err(ValidationError::WrongFeed {
            expected: prev.author(),
            found: next.author(),
        });
    }
    let expected_seq = prev.seq() + 1;
    if next.seq() != expected_seq {
        return Err(ValidationError::SequenceGap {
            expected: expected_seq,
            found: next.seq(),
        });
    }
    if let Some(found) = next.header().prev
        && found != prev.hash()
    {
        return Err(ValidationError::PrevHashMismatch {
            seq: next.seq(),
            expected: prev.hash(),
            found,
        });
    }
    check_timestamp_order(prev, next)
}

/// Rule V11 for any two entries of one feed with `earlier.seq() < later.seq()`.
pub fn check_timestamp_order(earlier: &Entry, later: &Entry) -> Result<(), ValidationError> {
    if later.timestamp() <= earlier.timestamp() {
        return Err(ValidationError::TimestampNotIncreasing {
            seq: later.seq(),
            previous: earlier.timestamp(),
            found: later.timestamp(),
        });
    }
    Ok(())
}

/// Rule V10: `next`'s skip link (if it has one) names `target`, the entry at
/// `lipmaa(next.seq())` of the same feed.
pub fn check_skip(target: &Entry, next: &Entry) -> Result<(), ValidationError> {
    debug_assert_eq!(target.seq(), lipmaa(next.seq()));
    if target.author() != next.author() {
        return Err(ValidationError::WrongFeed {
            expected: target.author(),
            found: next.author(),
        });
    }
    check_skip_hash(next, target.hash())
}

/// Rule V10 given only the hash of the entry at `lipmaa(next.seq())`.
pub fn check_skip_hash(next: &Entry, target_hash: Hash) -> Result<(), ValidationError> {
    match next.header().skip {
        Some(found) if found != target_hash => Err(ValidationError::SkipLinkMismatch {
            seq: next.seq(),
            target: lipmaa(next.seq()),
            expected: target_hash,
            found,
        }),
        _ => Ok(()),
    }
}

/// What [`verify_chain`] established about a set of entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainSummary {
    /// The feed all entries belong to.
    pub author: FeedId,
    /// The lowest sequence number; every other entry links down to it.
    pub lowest: u64,
    /// The highest sequence number.
    pub highest: u64,
}

/// Verifies a set of entries of one feed, sorted by ascending sequence number
/// (not necessarily contiguous): every signature (batched), one author, strictly
/// increasing timestamps, every `prev` or `skip` link whose target is in the
/// set, and *connectivity*: each entry but the lowest has its predecessor or
/// its skip target in the set, so all of them hang off the lowest one.
///
/// A whole feed, a run after a known entry, and a chunk from the middle of a
/// feed together with its certificate path (so that the lowest entry is 1) all
/// pass through here. Errors name the index of the first failing entry.
pub fn verify_chain(entries: &[Entry]) -> Result<ChainSummary, BatchError> {
    let first = entries.first().ok_or(BatchError {
        index: 0,
        error: ValidationError::SequenceGap { expected: 1, found: 0 },
    })?;
    // Signatures first, so that the error reported is the earliest one.
    let refs: Vec<&Entry> = entries.iter().collect();
    let signature_failure = check_signatures(&refs).err();
    // Links are checked only up to the entry before the first bad signature.
    let checked = signature_failure.as_ref().map_or(entries.len(), |e| e.index);
    for (index, pair) in entries[..checked].windows(2).enumerate() {
        let (earlier, later) = (&pair[0], &pair[1]);
        let index = index + 1;
        let fail = |error| BatchError { index, error };
        if later.author() != first.author() {
            return Err(fail(ValidationError::WrongFeed {
                expected: first.author(),
                found: later.author(),
            }));
        }
        if later.seq() <= earlier.seq() {
            return Err(fail(ValidationError::SequenceGap {
                expected: earlier.seq() + 1,
                found: later.seq(),
            }));
        }
        check_timestamp_order(earlier, later).map_err(fail)?;
        let mut connected = false;
        if later.seq() == earlier.seq() + 1 {
            check_successor(earlier, later).map_err(fail)?;
            connected = true;
        }
        if later.header().skip.is_some() {
            let target_seq = lipmaa(later.seq());
            if let Ok(at) = entries[..index].binary_search_by_key(&target_seq, Entry::seq) {
                check_skip(&entries[at], later).map_err(fail)?;
                connected = true;
            }
        }
        if !connected {
            return Err(fail(ValidationError::SequenceGap {
                expected: earlier.seq() + 1,
                found: later.seq(),
            }));
        }
    }
    if let Some(failure) = signature_failure {
        return Err(failure);
    }
    Ok(ChainSummary {
        author: first.author(),
        lowest: first.seq(),
        highest: entries[entries.len() - 1].seq(),
    })
}

/// Signs a new entry of the key pair's own feed. Entries signed here need no
/// verification: the result is [`Verified`] with its payload.
pub fn sign(keys: &super::Keypair, new: &super::NewEntry<'_>) -> Result<Verified, ValidationError> {
    let entry = Entry::sign(keys, new)?;
    Ok(Verified {
        entry,
        payload: Some(new.payload.to_vec()),
    })
}
