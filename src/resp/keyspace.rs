//! `SCAN`, `KEYS` and `DBSIZE` over the live sessions of a node
//! (spec/RESP.md §3.4).
//!
//! The view is a hash table with no order to resume from, so a `SCAN`
//! cursor is a *position* in a fixed order of keys: every key has the
//! position `hash(key) / 2 + 1` (1 to 2^63; std's SipHash with fixed keys),
//! a call answers the matching live keys of the lowest positions at or
//! after the cursor, and the next cursor is the lowest position it left
//! out (0 once none is left). A key live for the whole scan is therefore
//! answered, and a key never twice unless it shares its position with
//! another (then both may come again); cursors stay valid for as long as
//! the node runs. Each call reads every live key once (under the view's
//! read lock): use a large `COUNT` over a large store.

use std::collections::BinaryHeap;
use std::hash::{DefaultHasher, Hash, Hasher};

use redis_protocol::bytes::Bytes;

use super::glob::Glob;
use crate::sessions::Sessions;

/// The most keys `KEYS` answers; past it, `KEYS` is an error (use `SCAN`).
pub const MAX_KEYS: usize = 100_000;

/// The position of `key` in the order of a scan: 1 to 2^63.
fn position(key: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    key.hash(&mut hasher);
    (hasher.finish() >> 1) + 1
}

/// One call of a scan: up to `count` live keys matching `glob` at or after
/// `cursor`, in position order, and the cursor to go on from (0: done).
pub(super) fn scan(sessions: &Sessions, cursor: u64, glob: &Glob, count: usize) -> (u64, Vec<Bytes>) {
    // The `count` lowest positions seen (a max-heap: the highest on top),
    // and the lowest position seen and not kept.
    let mut kept: BinaryHeap<(u64, Vec<u8>)> = BinaryHeap::with_capacity(count + 1);
    let mut left: Option<u64> = None;
    sessions.visit_live_keys(|key| {
        let at = position(key);
        if at < cursor || !(glob.matches_all() || glob.matches(key)) {
            return;
        }
        if kept.len() == count && kept.peek().is_some_and(|(top, _)| *top <= at) {
            left = Some(left.map_or(at, |l| l.min(at)));
            return;
        }
        kept.push((at, key.to_vec()));
        if kept.len() > count
            && let Some((dropped, _)) = kept.pop()
        {
            left = Some(left.map_or(dropped, |l| l.min(dropped)));
        }
    });
    let keys = kept
        .into_sorted_vec()
        .into_iter()
        .map(|(_, key)| Bytes::from(key))
        .collect();
    (left.unwrap_or(0), keys)
}

/// Every live key matching `glob`, sorted; `None` if there are more than
/// [`MAX_KEYS`].
pub(super) fn keys(sessions: &Sessions, glob: &Glob) -> Option<Vec<Bytes>> {
    let mut keys = Vec::new();
    let mut over = false;
    sessions.visit_live_keys(|key| {
        if over || !glob.matches(key) {
            return;
        }
        if keys.len() == MAX_KEYS {
            over = true;
        } else {
            keys.push(Bytes::copy_from_slice(key));
        }
    });
    if over {
        return None;
    }
    keys.sort_unstable();
    Some(keys)
}

/// How many sessions are live.
pub(super) fn count(sessions: &Sessions) -> usize {
    let mut count = 0;
    sessions.visit_live_keys(|_| count += 1);
    count
}
