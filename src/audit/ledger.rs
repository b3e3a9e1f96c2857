//! The ledger: every entry a store holds, each with whether the node folds
//! it (and if not, why) and its decoded operations. The reports are
//! computed from it.
//!
//! Which entries fold is decided exactly as the node decides it: the
//! membership and the session view come from the node's own live fold
//! ([`crate::sessions::LiveView`]), forks from the store's fork proofs, and
//! clock drift from `now_ms` (spec/SESSIONS.md §2.5, §5).

use std::collections::BTreeMap;

use crate::clock::MAX_DRIFT_MS;
use crate::feed::{Entry, FeedId};
use crate::sessions::LiveView;
use crate::store::{Store, StoreError, pages};
use crate::view::{HistoryWindow, Membership, Op, SessionView, decode_ops};

/// How many records are read from the store at a time.
const CHUNK: usize = 4096;

/// Whether an entry is folded, and if not, the first rule that keeps it out
/// (in the order the node applies them: fork, membership, drift).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Folded.
    Folded,
    /// At or beyond the sequence where its feed forked.
    Forked,
    /// The feed was never admitted, or not from this sequence.
    NotMember,
    /// At or beyond the feed's removal point.
    Removed,
    /// Dated beyond `now_ms + MAX_DRIFT_MS`.
    HeldBack,
}

/// Why an entry's operations cannot be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Unreadable {
    /// The store holds the header without its payload.
    Missing,
    /// The payload is not a valid batch of operations.
    Malformed(String),
}

/// One stored entry with its fate.
#[derive(Clone, Debug)]
pub(crate) struct LedgerEntry {
    /// The entry.
    pub(crate) entry: Entry,
    /// Whether it folds.
    pub(crate) admission: Admission,
    /// Its operations, or why they cannot be read.
    pub(crate) ops: Result<Vec<Op>, Unreadable>,
}

/// Every entry of a store, sorted by feed then sequence, with the node's
/// membership and session view.
#[derive(Debug)]
pub(crate) struct Ledger {
    /// The entries, sorted by `(author, seq)`.
    pub(crate) entries: Vec<LedgerEntry>,
    /// The membership as the node folds it.
    pub(crate) membership: Membership,
    /// The session view as the node folds it.
    pub(crate) view: SessionView,
    /// Forked feeds and the sequence of their fork.
    pub(crate) forks: BTreeMap<FeedId, u64>,
    /// Local time of the reports.
    pub(crate) now_ms: u64,
}

impl Ledger {
    /// Reads every entry of `store` for a network with `admins` and
    /// `window`, at local time `now_ms`.
    pub(crate) fn scan(
        store: &dyn Store,
        admins: &[FeedId],
        window: HistoryWindow,
        now_ms: u64,
    ) -> Result<Ledger, StoreError> {
        let live = LiveView::open(store, admins, window, now_ms)?;
        let (membership, view) = {
            let state = live.read();
            (state.membership.clone(), state.view.clone())
        };
        let forks = store.forks()?.iter().map(|p| (p.author(), p.seq())).collect();
        let mut ledger = Ledger {
            entries: Vec::new(),
            membership,
            view,
            forks,
            now_ms,
        };
        for (feed, latest) in store.clock()? {
            for records in pages(store, feed, 1, latest, CHUNK) {
                for (entry, payload) in records? {
                    let admission = ledger.admission(&entry);
                    let ops = match payload {
                        Some(payload) => decode_ops(&payload).map_err(|e| Unreadable::Malformed(e.to_string())),
                        None => Err(Unreadable::Missing),
                    };
                    ledger.entries.push(LedgerEntry { entry, admission, ops });
                }
            }
        }
        Ok(ledger)
    }

    /// Whether and why `entry` folds (spec/SESSIONS.md §5.2, §5.3, §2.5).
    fn admission(&self, entry: &Entry) -> Admission {
        let (author, seq) = (entry.author(), entry.seq());
        if self.forks.get(&author).is_some_and(|&forked| seq >= forked) {
            return Admission::Forked;
        }
        if !self.membership.folds(author, seq) {
            return match self.membership.removed_from(&author) {
                Some(removed) if seq >= removed => Admission::Removed,
                _ => Admission::NotMember,
            };
        }
        if entry.timestamp().wall_ms() > self.now_ms.saturating_add(MAX_DRIFT_MS) {
            return Admission::HeldBack;
        }
        Admission::Folded
    }

    /// The entries of `feed`, in sequence order.
    pub(crate) fn feed(&self, feed: &FeedId) -> &[LedgerEntry] {
        let start = self.entries.partition_point(|e| e.entry.author() < *feed);
        let end = self.entries.partition_point(|e| e.entry.author() <= *feed);
        &self.entries[start..end]
    }
}
