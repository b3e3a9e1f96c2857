//! In-memory backend: the same semantics as [`super::RedbStore`], nothing on
//! disk. Meant for tests, simulations and nodes that do not need to survive a
//! restart.
//!
//! Everything sits behind one [`RwLock`]: readers share it, an append holds it
//! exclusively from planning (through [`plan_append`]) to the last write, which
//! is what makes an append atomic here.

use std::collections::BTreeMap;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::{AppendReport, ByteBound, ChainReader, FeedClock, Record, Store, StoreError, plan_append};
use crate::feed::{Entry, FeedId, ForkProof, Verified};

/// Holds feeds in memory.
///
/// Cloning is not offered: share one store behind an `Arc` instead.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: RwLock<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Per feed, the entries `1..=len` (index `seq - 1`) with their payloads.
    feeds: BTreeMap<FeedId, Vec<Record>>,
    /// At most one fork proof per feed: the one at the lowest sequence.
    forks: BTreeMap<FeedId, ForkProof>,
    /// The latest snapshot of each view, by name.
    snapshots: BTreeMap<String, Vec<u8>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn read(&self) -> Result<RwLockReadGuard<'_, Inner>, StoreError> {
        self.inner.read().map_err(poisoned)
    }

    fn write(&self) -> Result<RwLockWriteGuard<'_, Inner>, StoreError> {
        self.inner.write().map_err(poisoned)
    }
}

fn poisoned<T>(_: PoisonError<T>) -> StoreError {
    StoreError::Backend("memory store: lock poisoned by a panic in another thread".into())
}

/// Index of `seq` in a feed's vector, if `seq` can be held at all.
fn index_of(seq: u64) -> Option<usize> {
    seq.checked_sub(1).and_then(|i| usize::try_from(i).ok())
}

impl Inner {
    fn record(&self, feed: &FeedId, seq: u64) -> Option<&Record> {
        self.feeds.get(feed)?.get(index_of(seq)?)
    }

    /// Keeps the proof at the lowest sequence; returns whether `proof` was new.
    fn record_fork(&mut self, proof: &ForkProof) -> bool {
        match self.forks.get(&proof.author()) {
            Some(held) if held.seq() <= proof.seq() => false,
            _ => {
                self.forks.insert(proof.author(), proof.clone());
                true
            }
        }
    }
}

impl ChainReader for Inner {
    fn latest(&self, feed: &FeedId) -> Result<Option<u64>, StoreError> {
        Ok(self
            .feeds
            .get(feed)
            .and_then(|log| (!log.is_empty()).then_some(log.len() as u64)))
    }

    fn entry(&self, feed: &FeedId, seq: u64) -> Result<Option<Entry>, StoreError> {
        Ok(self.record(feed, seq).map(|(entry, _)| entry.clone()))
    }

    fn frozen_at(&self, feed: &FeedId) -> Result<Option<u64>, StoreError> {
        Ok(self.forks.get(feed).map(ForkProof::seq))
    }
}

impl Store for MemoryStore {
    fn append(&self, records: &[Verified]) -> Result<AppendReport, StoreError> {
        if records.is_empty() {
            return Ok(AppendReport::default());
        }
        let mut inner = self.write()?;
        let writes = match plan_append(&*inner, records) {
            Ok(writes) => writes,
            Err(StoreError::Fork { index, proof }) => {
                inner.record_fork(&proof);
                return Err(StoreError::Fork { index, proof });
            }
            Err(error) => return Err(error),
        };
        // plan_append guarantees each write is the next entry of its feed.
        for &index in &writes {
            let record = &records[index];
            let entry = record.entry();
            inner
                .feeds
                .entry(entry.author())
                .or_default()
                .push((entry.clone(), record.payload().map(<[u8]>::to_vec)));
        }
        Ok(AppendReport {
            appended: writes.len(),
            already_held: records.len() - writes.len(),
        })
    }

    fn entry(&self, feed: &FeedId, seq: u64) -> Result<Option<Entry>, StoreError> {
        ChainReader::entry(&*self.read()?, feed, seq)
    }

    fn payload(&self, feed: &FeedId, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.read()?.record(feed, seq).and_then(|(_, payload)| payload.clone()))
    }

    fn range_within(
        &self,
        feed: &FeedId,
        from: u64,
        to: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<Record>, StoreError> {
        let inner = self.read()?;
        let Some(log) = inner.feeds.get(feed) else {
            return Ok(Vec::new());
        };
        let from = from.max(1);
        let to = to.min(log.len() as u64);
        if from > to || limit == 0 {
            return Ok(Vec::new());
        }
        // Both bounds are within 1..=log.len() here, so they fit a usize.
        let (start, end) = (from as usize - 1, to as usize);
        let mut bound = ByteBound::new(max_bytes);
        Ok(log[start..end]
            .iter()
            .take(limit)
            .take_while(|(entry, _)| bound.admit(entry))
            .cloned()
            .collect())
    }

    fn clock(&self) -> Result<FeedClock, StoreError> {
        Ok(self
            .read()?
            .feeds
            .iter()
            .filter(|(_, log)| !log.is_empty())
            .map(|(feed, log)| (*feed, log.len() as u64))
            .collect())
    }

    fn record_fork(&self, proof: &ForkProof) -> Result<bool, StoreError> {
        Ok(self.write()?.record_fork(proof))
    }

    fn forks(&self) -> Result<Vec<ForkProof>, StoreError> {
        Ok(self.read()?.forks.values().cloned().collect())
    }

    fn drop_payloads(&self, feed: &FeedId, up_to: u64) -> Result<usize, StoreError> {
        let mut inner = self.write()?;
        let Some(log) = inner.feeds.get_mut(feed) else {
            return Ok(0);
        };
        let end = usize::try_from(up_to).unwrap_or(usize::MAX).min(log.len());
        Ok(log[..end].iter_mut().filter_map(|(_, payload)| payload.take()).count())
    }

    fn latest(&self, feed: &FeedId) -> Result<Option<u64>, StoreError> {
        ChainReader::latest(&*self.read()?, feed)
    }

    fn save_snapshot(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.write()?.snapshots.insert(name.to_owned(), bytes.to_vec());
        Ok(())
    }

    fn snapshot(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.read()?.snapshots.get(name).cloned())
    }
}
