//! Writing to the node's own feed: links, timestamps, signatures, and one
//! durable commit per batch.

use crate::clock::HybridClock;
use crate::feed::{Entry, Hash, Keypair, NewEntry, Timestamp, ValidationError, has_skip_link, lipmaa, sign};
use crate::store::{Store, StoreError};

/// Errors of [`FeedWriter::append`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// A payload cannot be put in an entry (too large).
    #[error("cannot write entry: {0}")]
    Invalid(#[from] ValidationError),
    /// The store failed or refused.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Appends entries to one feed whose key this node holds.
///
/// Keeps the feed's head and a hybrid logical clock; each call to
/// [`FeedWriter::append`] signs one entry per payload and stores them all in
/// one transaction, so a batch costs one commit however many entries it has.
#[derive(Debug)]
pub struct FeedWriter {
    keys: Keypair,
    clock: HybridClock,
    head: Option<Entry>,
}

impl FeedWriter {
    /// A writer for `keys`'s feed, continuing from what `store` holds: its
    /// clock starts after the feed's own head (see also
    /// [`FeedWriter::observe_stored`]).
    pub fn open(store: &dyn Store, keys: Keypair) -> Result<FeedWriter, StoreError> {
        let head = store.head(&keys.feed_id())?;
        let clock = HybridClock::starting_after(head.as_ref().map_or(Timestamp::default(), Entry::timestamp));
        Ok(FeedWriter { keys, clock, head })
    }

    /// Observes, at wall time `now_ms`, the head of every other feed `store`
    /// holds (a feed's latest timestamp, rule V11), so the next local entry
    /// is ordered after every stored entry within the drift bound
    /// (spec/PROTOCOL.md §1.5). A node calls it once at start.
    pub fn observe_stored(&mut self, store: &dyn Store, now_ms: u64) -> Result<(), StoreError> {
        let own = self.keys.feed_id();
        for feed in store.clock()?.into_keys().filter(|feed| *feed != own) {
            if let Some(head) = store.head(&feed)? {
                self.clock.observe(head.timestamp(), now_ms);
            }
        }
        Ok(())
    }

    /// The key pair this writer signs with.
    pub fn keys(&self) -> &Keypair {
        &self.keys
    }

    /// The latest entry of the feed, if any.
    pub fn head(&self) -> Option<&Entry> {
        self.head.as_ref()
    }

    /// Makes the next local timestamp later than `seen` (an entry received
    /// from another feed), unless `seen` is implausibly far ahead of `now_ms`
    /// (see [`HybridClock::observe`]); returns whether it was followed.
    pub fn observe(&mut self, seen: Timestamp, now_ms: u64) -> bool {
        self.clock.observe(seen, now_ms)
    }

    /// Signs one entry per payload, stamped at wall time `now_ms` by the
    /// hybrid clock, and stores them in one durable transaction. Returns the
    /// new entries. On error nothing is stored and the writer is unchanged.
    pub fn append(&mut self, store: &dyn Store, payloads: &[&[u8]], now_ms: u64) -> Result<Vec<Entry>, WriteError> {
        let clock_before = self.clock.clone();
        let result = self.sign_batch(store, payloads, now_ms).and_then(|records| {
            store.append(&records)?;
            Ok(records)
        });
        match result {
            Ok(records) => {
                let entries: Vec<Entry> = records.into_iter().map(|r| r.into_parts().0).collect();
                self.head = entries.last().cloned().or(self.head.take());
                Ok(entries)
            }
            Err(error) => {
                self.clock = clock_before;
                Err(error)
            }
        }
    }

    fn sign_batch(
        &mut self,
        store: &dyn Store,
        payloads: &[&[u8]],
        now_ms: u64,
    ) -> Result<Vec<crate::feed::Verified>, WriteError> {
        let feed = self.keys.feed_id();
        let base = self.head.as_ref().map_or(0, Entry::seq);
        let mut hashes: Vec<Hash> = Vec::with_capacity(payloads.len());
        let mut prev = self.head.as_ref().map(Entry::hash);
        let mut records = Vec::with_capacity(payloads.len());
        for (i, payload) in payloads.iter().enumerate() {
            let seq = base + 1 + i as u64;
            let skip = if has_skip_link(seq) {
                let target = lipmaa(seq);
                Some(match target.checked_sub(base + 1) {
                    Some(in_batch) => hashes[in_batch as usize],
                    None => store
                        .entry(&feed, target)?
                        .ok_or_else(|| StoreError::Corrupt(format!("{feed} is missing entry {target}")))?
                        .hash(),
                })
            } else {
                None
            };
            let record = sign(
                &self.keys,
                &NewEntry {
                    seq,
                    prev,
                    skip,
                    timestamp: self.clock.tick(now_ms),
                    payload,
                },
            )?;
            let hash = record.entry().hash();
            hashes.push(hash);
            prev = Some(hash);
            records.push(record);
        }
        Ok(records)
    }
}
