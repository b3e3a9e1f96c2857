//! Re-verifying everything a store holds, from scratch (`feedmesh verify`).

use crate::feed::{
    Entry, FeedId, Hash, ValidationError, check_payload, check_signatures, check_skip_hash, check_successor, lipmaa,
};
use crate::store::{Store, StoreError};

/// Entries read and verified per round trip to the store.
const PAGE: usize = 1024;

/// What a full verification covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IntegrityReport {
    /// Feeds verified.
    pub feeds: usize,
    /// Entries verified.
    pub entries: u64,
    /// Payloads present and checked.
    pub payloads: u64,
    /// Fork proofs held.
    pub forks: usize,
}

/// The first problem found, and where.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IntegrityError {
    /// An entry broke a rule.
    #[error("feed {feed} seq {seq}: rule {}: {error}", .error.rule())]
    Invalid {
        /// The feed.
        feed: FeedId,
        /// The entry's sequence number.
        seq: u64,
        /// The rule it broke.
        error: Box<ValidationError>,
    },
    /// The store holds fewer entries than its clock claims.
    #[error("feed {feed}: entry {seq} is missing")]
    Missing {
        /// The feed.
        feed: FeedId,
        /// The first missing sequence number.
        seq: u64,
    },
    /// Reading failed, or stored bytes did not decode.
    #[error("feed {feed}: {error}")]
    Store {
        /// The feed being read.
        feed: FeedId,
        /// The store's error.
        error: Box<StoreError>,
    },
}

/// Verifies every feed in `store`: each entry's signature (batched), links,
/// timestamps and held payload, from sequence 1 to the head.
pub fn verify_store(store: &dyn Store) -> Result<IntegrityReport, IntegrityError> {
    let clock = store.clock().map_err(|error| IntegrityError::Store {
        feed: FeedId([0; 32]),
        error: Box::new(error),
    })?;
    let mut report = IntegrityReport {
        feeds: clock.len(),
        forks: store.forks().map(|f| f.len()).unwrap_or(0),
        ..IntegrityReport::default()
    };
    for (feed, head) in clock {
        verify_feed(store, feed, head, &mut report)?;
    }
    Ok(report)
}

fn verify_feed(store: &dyn Store, feed: FeedId, head: u64, report: &mut IntegrityReport) -> Result<(), IntegrityError> {
    let store_error = |error| IntegrityError::Store {
        feed,
        error: Box::new(error),
    };
    // Every hash of the feed so far: skip links may reach far back.
    let mut hashes: Vec<Hash> = Vec::new();
    let mut prev: Option<Entry> = None;
    let mut next = 1;
    while next <= head {
        let page = store.range(&feed, next, head, PAGE).map_err(store_error)?;
        if page.first().map(|(e, _)| e.seq()) != Some(next) {
            return Err(IntegrityError::Missing { feed, seq: next });
        }
        let entries: Vec<&Entry> = page.iter().map(|(e, _)| e).collect();
        let signature_failure = check_signatures(&entries).err();
        for (index, (entry, payload)) in page.iter().enumerate() {
            let invalid = |error| IntegrityError::Invalid {
                feed,
                seq: entry.seq(),
                error: Box::new(error),
            };
            if entry.author() != feed {
                return Err(invalid(ValidationError::WrongFeed {
                    expected: feed,
                    found: entry.author(),
                }));
            }
            match &prev {
                Some(prev) => check_successor(prev, entry).map_err(invalid)?,
                None if entry.seq() != 1 => return Err(IntegrityError::Missing { feed, seq: 1 }),
                None => {}
            }
            if entry.header().skip.is_some() {
                let target = hashes[(lipmaa(entry.seq()) - 1) as usize];
                check_skip_hash(entry, target).map_err(invalid)?;
            }
            if let Some(failure) = &signature_failure
                && failure.index == index
            {
                return Err(invalid(failure.error.clone()));
            }
            if let Some(payload) = payload {
                check_payload(entry, payload).map_err(invalid)?;
                report.payloads += 1;
            }
            hashes.push(entry.hash());
            prev = Some(entry.clone());
            report.entries += 1;
        }
        next = prev.as_ref().map_or(next, |e| e.seq() + 1);
    }
    Ok(())
}
