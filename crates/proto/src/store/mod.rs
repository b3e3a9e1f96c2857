//! Storage of feeds: the [`Store`] trait and its two backends,
//! [`RedbStore`] (on disk, the default) and [`MemoryStore`].
//!
//! A store holds, per feed, a contiguous prefix `1..=head` of entries, each
//! with or without its payload (payloads live apart from headers so they can
//! be dropped while the header chain stays verifiable), plus the fork proofs
//! it has seen.
//!
//! Guarantees every backend gives:
//!
//! - **Only chains.** [`Store::append`] accepts an entry only if it extends the
//!   chain held for its feed (rules V7–V11 against the stored head and skip
//!   target). Entries already held are skipped, so appending the same records
//!   twice is harmless.
//! - **Atomic.** One `append` call is one transaction: all of it is stored or,
//!   on any error, none of it.
//! - **Durable.** When `append` returns `Ok` with the redb backend, the entries
//!   are on disk (fsync'd): a crash afterwards loses none of them.
//! - **Frozen forks.** An entry that conflicts with a held one at the same
//!   sequence is refused with [`StoreError::Fork`], and the proof is recorded;
//!   from then on the feed takes no entry at or after the fork point (entries
//!   below it still go in, spec §1.7).

mod memory;
#[cfg(feature = "redb")]
mod redb;

use std::collections::BTreeMap;

pub use self::memory::MemoryStore;
#[cfg(feature = "redb")]
pub use self::redb::RedbStore;
#[cfg(doc)]
use crate::feed::MAX_RECORD_SIZE;
use crate::feed::{Entry, FeedId, ForkProof, ValidationError, Verified, declared_record_len};

/// A stored entry and its payload (`None` when the payload was dropped or
/// never received): the feed layer's record.
pub use crate::feed::Record;

/// The records `from..=to` of a feed, read from a store `page` at a time,
/// ascending ([`pages`]). Each item is one non-empty page; the iterator ends
/// after a short page (the feed ends there) or at the first error.
#[derive(Debug)]
pub struct Pages<'a, S: Store + ?Sized> {
    store: &'a S,
    feed: FeedId,
    next: u64,
    to: u64,
    page: usize,
}

/// Reads `from..=to` of `feed` from `store`, `page` records (at least 1) at
/// a time, so that no read holds the whole feed.
pub fn pages<S: Store + ?Sized>(store: &S, feed: FeedId, from: u64, to: u64, page: usize) -> Pages<'_, S> {
    Pages {
        store,
        feed,
        next: from.max(1),
        to,
        page: page.max(1),
    }
}

impl<S: Store + ?Sized> Iterator for Pages<'_, S> {
    type Item = Result<Vec<Record>, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next > self.to {
            return None;
        }
        let page = match self.store.range(&self.feed, self.next, self.to, self.page) {
            Ok(page) => page,
            Err(error) => {
                self.next = u64::MAX;
                self.to = 0;
                return Some(Err(error));
            }
        };
        match page.last() {
            Some((last, _)) if page.len() == self.page => self.next = last.seq().saturating_add(1),
            Some(_) => self.to = 0,
            None => return None,
        }
        Some(Ok(page))
    }
}

/// A running total of [`declared_record_len`] against `max_bytes`, for
/// [`Store::range_within`].
#[derive(Debug)]
pub struct ByteBound {
    left: usize,
}

impl ByteBound {
    /// A bound of `max_bytes`, nothing admitted yet.
    pub fn new(max_bytes: usize) -> ByteBound {
        ByteBound { left: max_bytes }
    }

    /// Whether `entry`'s record still fits (counting it if so).
    pub fn admit(&mut self, entry: &Entry) -> bool {
        let size = declared_record_len(entry);
        if size > self.left {
            return false;
        }
        self.left -= size;
        true
    }
}

/// The latest sequence number held for every feed: the store's "clock".
pub type FeedClock = BTreeMap<FeedId, u64>;

/// What an [`Store::append`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AppendReport {
    /// Entries newly stored.
    pub appended: usize,
    /// Entries skipped because the store already held them (same hash).
    pub already_held: usize,
}

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Record `index` of the batch does not extend the stored chain; nothing
    /// of the batch was stored.
    #[error("record {index} refused: {error}")]
    Rejected {
        /// Index of the offending record in the batch.
        index: usize,
        /// The rule it broke against the stored chain.
        error: ValidationError,
    },
    /// Record `index` conflicts with a held entry: the author forked its
    /// feed. The proof was recorded; nothing of the batch was stored.
    #[error("record {index}: feed {} forked at sequence {}", proof.author(), proof.seq())]
    Fork {
        /// Index of the offending record in the batch.
        index: usize,
        /// Both conflicting entries.
        proof: Box<ForkProof>,
    },
    /// Record `index` is at or after the fork point of a feed frozen by a
    /// fork proof; nothing of the batch was stored.
    #[error("record {index}: feed {feed} is frozen by a fork at sequence {seq}")]
    Frozen {
        /// Index of the offending record in the batch.
        index: usize,
        /// The frozen feed.
        feed: FeedId,
        /// Where it forked.
        seq: u64,
    },
    /// Stored bytes failed to decode: the database is damaged.
    #[error("corrupt store: {0}")]
    Corrupt(String),
    /// The backend failed (I/O, locking, ...).
    #[error("storage backend: {0}")]
    Backend(String),
}

/// A feed store. Implementations are safe to share between threads.
pub trait Store: Send + Sync {
    /// Stores verified records atomically and durably (see the module doc).
    /// Records of one feed must come in ascending sequence order; records of
    /// several feeds may be interleaved.
    fn append(&self, records: &[Verified]) -> Result<AppendReport, StoreError>;

    /// Like [`Store::append`] (atomic, the same checks), but a crash may
    /// lose the commit until the next durable append or [`Store::sync`]:
    /// the store then holds exactly what it held at that earlier point. For
    /// records that can be fetched again (other authors' entries), so that
    /// they need not wait for a disk flush each. The default is durable.
    fn append_unsynced(&self, records: &[Verified]) -> Result<AppendReport, StoreError> {
        self.append(records)
    }

    /// Makes every earlier [`Store::append_unsynced`] durable, if the oldest
    /// of them not yet durable was made at least `older_than` ago
    /// (`Duration::ZERO`: whatever its age). A durable append does it too,
    /// so a busy store rarely needs a sync of its own.
    fn sync(&self, older_than: std::time::Duration) -> Result<(), StoreError> {
        let _ = older_than;
        Ok(())
    }

    /// The entry of `feed` at `seq`, if held.
    fn entry(&self, feed: &FeedId, seq: u64) -> Result<Option<Entry>, StoreError>;

    /// The payload of `feed`'s entry `seq`, if held.
    fn payload(&self, feed: &FeedId, seq: u64) -> Result<Option<Vec<u8>>, StoreError>;

    /// Entries `from..=to` of `feed` (clamped to what is held) with their
    /// payloads, in order, at most `limit` of them.
    fn range(&self, feed: &FeedId, from: u64, to: u64, limit: usize) -> Result<Vec<Record>, StoreError> {
        self.range_within(feed, from, to, limit, usize::MAX)
    }

    /// [`Store::range`] bounded in bytes too: it stops before the first
    /// record that would take the records' total [`declared_record_len`]
    /// past `max_bytes` (so with `max_bytes` at least [`MAX_RECORD_SIZE`],
    /// a range with records never reads none). A payload is counted by its
    /// entry's `payload_len` before it is read, so a read that answers a
    /// peer never holds more than the peer may be sent at once.
    fn range_within(
        &self,
        feed: &FeedId,
        from: u64,
        to: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<Record>, StoreError>;

    /// The latest sequence number held for every feed.
    fn clock(&self) -> Result<FeedClock, StoreError>;

    /// Records a fork proof (idempotent); returns whether it was new.
    fn record_fork(&self, proof: &ForkProof) -> Result<bool, StoreError>;

    /// Every fork proof held, at most one per feed (the lowest sequence).
    fn forks(&self) -> Result<Vec<ForkProof>, StoreError>;

    /// The sequence at which `feed` forked (`None`: no proof held, the feed
    /// is not frozen).
    fn frozen_at(&self, feed: &FeedId) -> Result<Option<u64>, StoreError> {
        Ok(self
            .forks()?
            .iter()
            .find(|proof| proof.author() == *feed)
            .map(ForkProof::seq))
    }

    /// Drops the payloads of `feed`'s entries `1..=up_to`, keeping the
    /// headers. Returns how many payloads were dropped.
    fn drop_payloads(&self, feed: &FeedId, up_to: u64) -> Result<usize, StoreError>;

    /// The latest sequence number held for `feed` (`None`: nothing held).
    fn latest(&self, feed: &FeedId) -> Result<Option<u64>, StoreError>;

    /// The latest entry of `feed`, if any.
    fn head(&self, feed: &FeedId) -> Result<Option<Entry>, StoreError> {
        match self.latest(feed)? {
            Some(seq) => self.entry(feed, seq),
            None => Ok(None),
        }
    }

    /// Saves `bytes` as the snapshot of the view `name` (spec/SESSIONS.md
    /// §6.7), durably, replacing the one saved before. The default keeps
    /// nothing: a store that holds no snapshot makes every start re-fold.
    fn save_snapshot(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let _ = (name, bytes);
        Ok(())
    }

    /// The snapshot last saved for the view `name`, if any.
    fn snapshot(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let _ = name;
        Ok(None)
    }
}

/// Read access to what a backend holds, inside the transaction that will
/// write an append; lets every backend share [`plan_append`].
pub(crate) trait ChainReader {
    /// The latest sequence number held for `feed`.
    fn latest(&self, feed: &FeedId) -> Result<Option<u64>, StoreError>;
    /// The held entry of `feed` at `seq`.
    fn entry(&self, feed: &FeedId, seq: u64) -> Result<Option<Entry>, StoreError>;
    /// The sequence at which `feed` forked, if a proof is held.
    fn frozen_at(&self, feed: &FeedId) -> Result<Option<u64>, StoreError>;
}

/// Decides which records of an append to write: returns the indices of the
/// records that extend their feed's chain (in order), or the error for the
/// first record that neither extends it nor is already held. Entries earlier
/// in the same batch count as held for the links of later ones.
pub(crate) fn plan_append(reader: &impl ChainReader, records: &[Verified]) -> Result<Vec<usize>, StoreError> {
    use crate::feed::{check_skip, check_successor, lipmaa};
    use std::collections::HashMap;

    // Per feed: the latest sequence held or planned, and the planned entries.
    struct Pending {
        latest: u64,
        planned: BTreeMap<u64, Entry>,
    }
    let mut pending: HashMap<FeedId, Pending> = HashMap::new();
    let mut writes = Vec::new();
    for (index, record) in records.iter().enumerate() {
        let entry = record.entry();
        let feed = entry.author();
        if let Some(seq) = reader.frozen_at(&feed)?.filter(|&at| entry.seq() >= at) {
            return Err(StoreError::Frozen { index, feed, seq });
        }
        let state = match pending.entry(feed) {
            std::collections::hash_map::Entry::Occupied(slot) => slot.into_mut(),
            std::collections::hash_map::Entry::Vacant(slot) => slot.insert(Pending {
                latest: reader.latest(&feed)?.unwrap_or(0),
                planned: BTreeMap::new(),
            }),
        };
        let lookup = |seq: u64| -> Result<Option<Entry>, StoreError> {
            match state.planned.get(&seq) {
                Some(entry) => Ok(Some(entry.clone())),
                None => reader.entry(&feed, seq),
            }
        };
        if entry.seq() <= state.latest {
            let held = lookup(entry.seq())?
                .ok_or_else(|| StoreError::Corrupt(format!("{feed} is missing entry {}", entry.seq())))?;
            if held.hash() == entry.hash() {
                continue;
            }
            // Batch verification can accept a signature that strict single
            // verification refuses (spec §1.9); such an entry is no proof.
            let proof = match crate::feed::ForkProof::new(held, entry.clone()) {
                Ok(proof) => proof,
                Err(crate::feed::ForkProofError::Invalid(error)) => {
                    return Err(StoreError::Rejected { index, error });
                }
                Err(other) => return Err(StoreError::Corrupt(format!("unverifiable fork: {other}"))),
            };
            return Err(StoreError::Fork {
                index,
                proof: Box::new(proof),
            });
        }
        let reject = |error| StoreError::Rejected { index, error };
        if state.latest == 0 {
            if entry.seq() != 1 {
                return Err(reject(crate::feed::ValidationError::SequenceGap {
                    expected: 1,
                    found: entry.seq(),
                }));
            }
        } else {
            let prev = lookup(state.latest)?
                .ok_or_else(|| StoreError::Corrupt(format!("{feed} is missing its head {}", state.latest)))?;
            check_successor(&prev, entry).map_err(reject)?;
            if entry.header().skip.is_some() {
                let target_seq = lipmaa(entry.seq());
                let target = lookup(target_seq)?
                    .ok_or_else(|| StoreError::Corrupt(format!("{feed} is missing entry {target_seq}")))?;
                check_skip(&target, entry).map_err(reject)?;
            }
        }
        state.latest = entry.seq();
        state.planned.insert(entry.seq(), entry.clone());
        writes.push(index);
    }
    Ok(writes)
}
