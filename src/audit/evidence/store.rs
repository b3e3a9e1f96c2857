//! A read-only [`Store`] over the records of an evidence bundle, so that the
//! reports are computed from a bundle by the very code that computes them
//! from a node's store. Its feeds may have gaps (certificate paths).

use std::collections::BTreeMap;

use crate::feed::{Entry, FeedId, ForkProof, Verified};
use crate::store::{AppendReport, ByteBound, FeedClock, Record, Store, StoreError};

/// The verified records and fork proofs of a bundle.
#[derive(Debug, Default)]
pub(crate) struct EvidenceStore {
    records: BTreeMap<(FeedId, u64), Record>,
    forks: Vec<ForkProof>,
}

fn read_only() -> StoreError {
    StoreError::Backend("an evidence bundle is read-only".into())
}

impl EvidenceStore {
    /// A store holding `records` (already verified) and `forks`.
    pub(crate) fn new(records: Vec<Record>, forks: Vec<ForkProof>) -> EvidenceStore {
        EvidenceStore {
            records: records.into_iter().map(|r| ((r.0.author(), r.0.seq()), r)).collect(),
            forks,
        }
    }
}

impl Store for EvidenceStore {
    fn append(&self, _records: &[Verified]) -> Result<AppendReport, StoreError> {
        Err(read_only())
    }

    fn entry(&self, feed: &FeedId, seq: u64) -> Result<Option<Entry>, StoreError> {
        Ok(self.records.get(&(*feed, seq)).map(|r| r.0.clone()))
    }

    fn payload(&self, feed: &FeedId, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.records.get(&(*feed, seq)).and_then(|r| r.1.clone()))
    }

    fn range_within(
        &self,
        feed: &FeedId,
        from: u64,
        to: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<Record>, StoreError> {
        if from > to {
            return Ok(Vec::new());
        }
        let mut bound = ByteBound::new(max_bytes);
        Ok(self
            .records
            .range((*feed, from)..=(*feed, to))
            .take(limit)
            .take_while(|(_, (entry, _))| bound.admit(entry))
            .map(|(_, r)| r.clone())
            .collect())
    }

    fn clock(&self) -> Result<FeedClock, StoreError> {
        let mut clock = FeedClock::new();
        for (feed, seq) in self.records.keys() {
            clock.insert(*feed, *seq);
        }
        Ok(clock)
    }

    fn record_fork(&self, _proof: &ForkProof) -> Result<bool, StoreError> {
        Err(read_only())
    }

    fn forks(&self) -> Result<Vec<ForkProof>, StoreError> {
        Ok(self.forks.clone())
    }

    fn drop_payloads(&self, _feed: &FeedId, _up_to: u64) -> Result<usize, StoreError> {
        Err(read_only())
    }

    fn latest(&self, feed: &FeedId) -> Result<Option<u64>, StoreError> {
        Ok(self
            .records
            .range((*feed, 0)..=(*feed, u64::MAX))
            .next_back()
            .map(|(key, _)| key.1))
    }
}
