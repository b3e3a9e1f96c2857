//! The session view: folds batches of [`Op`]s from every author into the
//! shared session state (spec/SESSIONS.md §2).
//!
//! # Why the fold is commutative instead of re-sorted
//!
//! Entries arrive in any order (replication is per feed, and feeds catch up
//! at different times). Rather than keeping every operation and re-sorting,
//! the view keeps, per key, just enough metadata that applying an operation
//! is commutative, associative and idempotent, so any arrival order yields
//! exactly the state of the fold order:
//!
//! - the value is a last-writer-wins register keyed by [`OpId`] (timestamp,
//!   author, position), with a total tie-break for forked feeds;
//! - the expiry is that of the session's *alive intervals*: every put opens
//!   one, a touch extends the interval that covers it and waits, in
//!   `pending`, while none does; intervals merge as their starts get
//!   covered. Counting only grows as operations arrive, so a touch that
//!   counts never stops counting (spec/SESSIONS.md §2.2);
//! - revocation is a tombstone: a flag that, once set, erases the value and
//!   makes every later operation on the key a no-op;
//! - owner revocation is a per-owner watermark (the greatest `RevokeOwner`
//!   id) plus, per key, the earliest put id per owner; a key is revoked as
//!   soon as some owner's earliest put is ordered before that owner's
//!   watermark, a condition that only ever becomes true as operations arrive.
//!
//! Every component is a join in a semilattice, so the state, and hence
//! [`SessionView::digest`], depends only on the set of folded entries. Memory
//! is one record per key, not one per operation.
//!
//! Entries dated more than [`MAX_DRIFT_MS`] ahead of local time are held back
//! ([`SessionView::offer`]; their Revokes fold at once) and folded by [`SessionView::release`] once local
//! time catches up. The view never reads the clock: `now_ms` is an argument.

mod snapshot;
mod table;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use self::table::Records;
use super::ops::{MAX_TTL_MS, Op, OpsError, decode_ops};
use crate::clock::{MAX_DRIFT_MS, Timestamp};
use crate::feed::{FeedId, Hash};

pub use snapshot::ViewDecodeError;

/// How long after every operation on a key has expired its record (or
/// tombstone), and an owner watermark, are still kept: 7 days. Dropping is
/// invisible provided every entry is folded within this margin of its
/// timestamp (spec/SESSIONS.md §2.6).
pub const RETENTION_MARGIN_MS: u64 = 7 * 24 * 3600 * 1000;

/// The place of an operation in the fold order: entry timestamp, then author
/// id, then position in the entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OpId {
    /// The timestamp of the entry carrying the operation.
    pub timestamp: Timestamp,
    /// The author of the entry.
    pub author: FeedId,
    /// The operation's index in the entry's batch, from 0.
    pub position: u32,
}

/// A live session as read from the view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// The session data (CBOR-encoded serde value) of the winning put.
    pub value: Vec<u8>,
    /// When the session expires, in milliseconds since the Unix epoch.
    pub expires_at_ms: u64,
    /// The owner given by the winning put.
    pub owner: Option<Vec<u8>>,
    /// The author of the winning put.
    pub author: FeedId,
    /// The sequence number of the entry carrying the winning put.
    pub seq: u64,
    /// The winning put's place in the fold order.
    pub id: OpId,
}

/// What [`SessionView::offer`] did with an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offered {
    /// The entry was folded.
    Folded,
    /// The entry is dated beyond `now + MAX_DRIFT_MS` and is held back.
    HeldBack,
}

#[derive(Clone, Debug)]
struct Put {
    /// The session as read; `expires_at_ms` is kept equal to the record's expiry.
    /// Shared, so that a read hands out the session without copying it.
    session: Arc<Session>,
    /// This put's own expiry (timestamp + ttl).
    expiry: u64,
}

impl Put {
    /// The total order of puts: fold order, then (only for the identical
    /// ids a forked feed can produce) the contents.
    fn rank(&self) -> (OpId, u64, &[u8], u64, Option<&[u8]>) {
        let s = &self.session;
        (s.id, s.seq, &s.value, self.expiry, s.owner.as_deref())
    }
}

/// A key's fold state. Most records hold one put and nothing else, so their
/// alive intervals, pending touches and owners are those that put alone
/// gives ([`Fold::of_put`]) and are not stored: a boxed [`Fold`] is kept
/// only for the others (spec/SESSIONS.md §2.2, §2.4).
/// The bit of [`Record`]'s `horizon` that marks a revoked key (wall times
/// are below 2^48, see [`Timestamp::new`]).
const REVOKED: u64 = 1 << 63;

#[derive(Clone, Debug, Default)]
struct Record {
    /// The latest wall time of any operation on the key (revoked or not),
    /// and in its top bit, [`REVOKED`]: set forever by a revocation, which
    /// clears `put` and `fold`. One word, not a word and a flag: the flag
    /// alone would pad the table slot by 8 bytes.
    horizon: u64,
    put: Option<Put>,
    /// The maximum expiry of every put and counted touch (the greatest end of the alive intervals).
    expiry: u64,
    /// The fold state when it differs from [`Fold::of_put`] of `put`.
    fold: Option<Box<Fold>>,
}

/// What a record keeps to stay order-independent besides its winning put.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Fold {
    /// The alive intervals `(start, end)`, sorted by start, none covering
    /// another's start: an interval covers an operation at id `x` if
    /// `start < x` and `x`'s wall time is below `end` (spec/SESSIONS.md §2.2).
    alive: Vec<(OpId, u64)>,
    /// The touches no interval covers yet, as `(id, offered expiry)`.
    pending: Vec<(OpId, u64)>,
    /// The earliest put id per owner, sorted by owner.
    owners: Vec<(Vec<u8>, OpId)>,
}

impl Fold {
    /// The state a record folded from `put` alone has: its interval, and
    /// its owner's earliest put.
    fn of_put(put: Option<&Put>) -> Fold {
        let Some(put) = put else {
            return Fold::default();
        };
        let s = &put.session;
        Fold {
            alive: vec![(s.id, put.expiry)],
            pending: Vec::new(),
            owners: s.owner.iter().map(|owner| (owner.clone(), s.id)).collect(),
        }
    }

    /// Whether this is [`Fold::of_put`] of `put` (compared without building it).
    fn is_of_put(&self, put: Option<&Put>) -> bool {
        let Some(put) = put else {
            return self.alive.is_empty() && self.pending.is_empty() && self.owners.is_empty();
        };
        let s = &put.session;
        let owners = match &s.owner {
            None => self.owners.is_empty(),
            Some(owner) => matches!(self.owners.as_slice(), [(o, first)] if o == owner && *first == s.id),
        };
        self.alive == [(s.id, put.expiry)] && self.pending.is_empty() && owners
    }

    /// Whether an alive interval covers an operation at `id`.
    fn covers(&self, id: OpId) -> bool {
        let wall = id.timestamp.wall_ms();
        self.alive.iter().any(|(start, end)| *start < id && wall < *end)
    }

    /// Counts an operation: a put always, a touch once an interval covers
    /// it. Returns the new greatest end of the alive intervals if it counted.
    fn count(&mut self, id: OpId, expiry: u64, is_put: bool) -> Option<u64> {
        if !is_put && !self.covers(id) {
            self.pending.push((id, expiry));
            return None;
        }
        self.open(id, expiry);
        while let Some(i) = self.pending.iter().position(|(id, _)| self.covers(*id)) {
            let (id, expiry) = self.pending.swap_remove(i);
            self.open(id, expiry);
        }
        Some(self.alive.iter().map(|(_, end)| *end).max().unwrap_or(0))
    }

    /// Adds the interval `(start, end)` and merges every interval whose start
    /// another covers (or shares).
    fn open(&mut self, start: OpId, end: u64) {
        let at = self.alive.partition_point(|(s, _)| *s < start);
        self.alive.insert(at, (start, end));
        let mut merged: Vec<(OpId, u64)> = Vec::with_capacity(self.alive.len());
        for (s, e) in self.alive.drain(..) {
            match merged.last_mut() {
                Some((ls, le)) if *ls == s || s.timestamp.wall_ms() < *le => *le = (*le).max(e),
                _ => merged.push((s, e)),
            }
        }
        self.alive = merged;
    }

    /// Records a put by `owner` at `id`; returns whether the owner is new
    /// to the key.
    fn own(&mut self, owner: &[u8], id: OpId) -> bool {
        match self.owners.binary_search_by(|(o, _)| o.as_slice().cmp(owner)) {
            Ok(i) => {
                self.owners[i].1 = self.owners[i].1.min(id);
                false
            }
            Err(i) => {
                self.owners.insert(i, (owner.to_vec(), id));
                true
            }
        }
    }
}

impl Record {
    /// A record of these parts, its fold state stored only if `put` alone
    /// does not give it (`None`: what `put` alone gives).
    fn new(revoked: bool, horizon_ms: u64, put: Option<Put>, expiry: u64, fold: Option<Fold>) -> Record {
        let mut record = Record {
            horizon: horizon_ms | if revoked { REVOKED } else { 0 },
            put,
            expiry,
            fold: None,
        };
        if let Some(fold) = fold {
            record.keep(fold);
        }
        record
    }

    /// Whether the key is revoked (a tombstone).
    fn revoked(&self) -> bool {
        self.horizon & REVOKED != 0
    }

    /// The latest wall time of any operation on the key.
    fn horizon_ms(&self) -> u64 {
        self.horizon & !REVOKED
    }

    /// Takes an operation at wall time `wall` (below 2^48) into the horizon.
    fn extend_horizon(&mut self, wall: u64) {
        self.horizon = self.horizon.max(wall | (self.horizon & REVOKED));
    }

    fn revoke(&mut self) {
        self.horizon |= REVOKED;
        self.put = None;
        self.expiry = 0;
        self.fold = None;
    }

    /// Takes the fold state out to change it; [`Record::keep`] puts it back.
    fn take_fold(&mut self) -> Fold {
        match self.fold.take() {
            Some(fold) => *fold,
            None => Fold::of_put(self.put.as_ref()),
        }
    }

    /// Stores `fold` as the record's state, boxed only if the put alone
    /// does not give it.
    fn keep(&mut self, fold: Fold) {
        self.fold = (!fold.is_of_put(self.put.as_ref())).then(|| Box::new(fold));
    }

    /// Each owner's earliest put, sorted by owner, without a copy.
    fn owners(&self) -> impl Iterator<Item = (&[u8], OpId)> {
        let derived = match &self.fold {
            Some(_) => None,
            None => self
                .put
                .as_ref()
                .and_then(|p| Some((p.session.owner.as_deref()?, p.session.id))),
        };
        let stored = self
            .fold
            .iter()
            .flat_map(|f| f.owners.iter().map(|(o, id)| (o.as_slice(), *id)));
        derived.into_iter().chain(stored)
    }

    fn revoked_by(&self, watermarks: &BTreeMap<Vec<u8>, OpId>) -> bool {
        revoked_by(self.owners(), watermarks)
    }

    /// Whether some put of the key names `owner`.
    fn names(&self, owner: &[u8]) -> bool {
        self.owners().any(|(o, _)| o == owner)
    }

    /// The session if it is live at `now_ms`. The record's expiry is the
    /// session's (kept equal by every fold); checked where the table holds
    /// it, a miss does not read the session.
    fn live(&self, now_ms: u64) -> Option<&Arc<Session>> {
        let session = &self.put.as_ref()?.session;
        (self.expiry > now_ms).then_some(session)
    }
}

/// Whether some owner's earliest put (of `owners`) is ordered before that
/// owner's watermark (spec/SESSIONS.md §2.4).
fn revoked_by<'a>(mut owners: impl Iterator<Item = (&'a [u8], OpId)>, watermarks: &BTreeMap<Vec<u8>, OpId>) -> bool {
    owners.any(|(owner, first)| watermarks.get(owner).is_some_and(|w| first < *w))
}

/// The folded session state of every author's operations.
///
/// Call order: [`SessionView::offer`] (or [`SessionView::offer_payload`]) for
/// every entry, in any order and any number of times; [`SessionView::release`]
/// as local time passes, to fold held-back entries; [`SessionView::expire`]
/// now and then to reclaim memory. Reads ([`SessionView::get`]) take `now_ms`
/// and never see an expired or revoked session.
#[derive(Clone, Debug, Default)]
pub struct SessionView {
    /// One record per key ever operated on (until [`SessionView::expire`]
    /// drops it). A hash map: a read is one hash and one or two probes,
    /// where a tree of a million keys costs a cache miss per level.
    records: Records,
    /// The keys each owner has put (possibly stale: revoked or dropped
    /// keys stay until [`SessionView::expire`]), so that a `RevokeOwner`
    /// visits only that owner's keys.
    /// Each key is listed by its hash in `records` (8 bytes, not a copy of
    /// the key), and the records found under it are checked to name the owner.
    by_owner: HashMap<Vec<u8>, Vec<u64>>,
    /// How many records hold a value ([`SessionView::len`]).
    holding: usize,
    watermarks: BTreeMap<Vec<u8>, OpId>,
    /// Held-back batches by (timestamp, author, seq); several only for a forked feed.
    held: BTreeMap<(Timestamp, FeedId, u64), Vec<Vec<Op>>>,
}

fn expiry_of(timestamp: Timestamp, ttl_ms: u64) -> u64 {
    timestamp.wall_ms().saturating_add(ttl_ms)
}

/// Whether an entry stamped `timestamp` is held back at local time `now_ms`
/// (spec/SESSIONS.md §2.5).
pub fn is_beyond_drift(timestamp: Timestamp, now_ms: u64) -> bool {
    timestamp.wall_ms() > now_ms.saturating_add(MAX_DRIFT_MS)
}

impl SessionView {
    /// An empty view.
    pub fn new() -> SessionView {
        SessionView::default()
    }

    /// Folds one entry's operations now, whatever its timestamp (the caller
    /// has checked the drift; see [`SessionView::offer`]). Idempotent.
    pub fn apply(&mut self, author: FeedId, entry_seq: u64, timestamp: Timestamp, ops: &[Op]) {
        self.apply_owned(author, entry_seq, timestamp, ops.to_vec());
    }

    /// [`SessionView::apply`] taking the operations, so that their values
    /// move into the view instead of being copied.
    fn apply_owned(&mut self, author: FeedId, entry_seq: u64, timestamp: Timestamp, ops: Vec<Op>) {
        for (position, op) in ops.into_iter().enumerate() {
            let id = OpId {
                timestamp,
                author,
                position: u32::try_from(position).unwrap_or(u32::MAX),
            };
            self.apply_op(id, entry_seq, op);
        }
    }

    /// Folds every entry of `entries` with [`SessionView::apply`].
    pub fn fold<'a>(&mut self, entries: impl IntoIterator<Item = (FeedId, u64, Timestamp, &'a [Op])>) {
        for (author, seq, timestamp, ops) in entries {
            self.apply(author, seq, timestamp, ops);
        }
    }

    /// Folds an entry, or holds it back if it is dated beyond
    /// `now_ms + MAX_DRIFT_MS` (spec/SESSIONS.md §2.5); a held-back entry's
    /// Revokes fold at once all the same.
    pub fn offer(
        &mut self,
        author: FeedId,
        entry_seq: u64,
        timestamp: Timestamp,
        ops: Vec<Op>,
        now_ms: u64,
    ) -> Offered {
        if is_beyond_drift(timestamp, now_ms) {
            self.fold_revokes(author, entry_seq, timestamp, &ops);
            self.held.entry((timestamp, author, entry_seq)).or_default().push(ops);
            Offered::HeldBack
        } else {
            self.apply_owned(author, entry_seq, timestamp, ops);
            Offered::Folded
        }
    }

    /// Folds the Revokes of a held-back entry at once, at their own ids: a
    /// Revoke's effect does not depend on order, so a logout from a node
    /// whose clock runs ahead need not wait out the drift bound
    /// (spec/SESSIONS.md §2.5). Folding them again on release is a no-op.
    fn fold_revokes(&mut self, author: FeedId, entry_seq: u64, timestamp: Timestamp, ops: &[Op]) {
        for (position, op) in ops.iter().enumerate() {
            if let Op::Revoke { .. } = op {
                let id = OpId {
                    timestamp,
                    author,
                    position: u32::try_from(position).unwrap_or(u32::MAX),
                };
                self.apply_op(id, entry_seq, op.clone());
            }
        }
    }

    /// Decodes an entry payload and offers its operations. A malformed
    /// payload folds as nothing; the error is returned for reporting.
    pub fn offer_payload(
        &mut self,
        author: FeedId,
        entry_seq: u64,
        timestamp: Timestamp,
        payload: &[u8],
        now_ms: u64,
    ) -> Result<Offered, OpsError> {
        let ops = decode_ops(payload)?;
        Ok(self.offer(author, entry_seq, timestamp, ops, now_ms))
    }

    /// Folds every held-back entry no longer beyond `now_ms + MAX_DRIFT_MS`;
    /// returns how many.
    pub fn release(&mut self, now_ms: u64) -> usize {
        let due: Vec<_> = self
            .held
            .keys()
            .take_while(|(ts, _, _)| !is_beyond_drift(*ts, now_ms))
            .copied()
            .collect();
        let mut released = 0;
        for key in &due {
            for ops in self.held.remove(key).unwrap_or_default() {
                self.apply_owned(key.1, key.2, key.0, ops);
                released += 1;
            }
        }
        released
    }

    /// How many entries are held back.
    pub fn held_back(&self) -> usize {
        self.held.values().map(Vec::len).sum()
    }

    fn apply_op(&mut self, id: OpId, seq: u64, mut op: Op) {
        let wall = id.timestamp.wall_ms();
        let key = match &mut op {
            Op::Put { key, .. } | Op::Touch { key, .. } | Op::Revoke { key } => std::mem::take(key),
            Op::RevokeOwner { owner } => {
                let mark = self.watermarks.entry(owner.clone()).or_insert(id);
                *mark = (*mark).max(id);
                let watermarks = &self.watermarks;
                for hash in self.by_owner.get(owner).into_iter().flatten() {
                    for record in self.records.by_hash_mut(*hash) {
                        if !record.revoked() && record.names(owner) && record.revoked_by(watermarks) {
                            self.holding -= usize::from(record.put.is_some());
                            record.revoke();
                        }
                    }
                }
                return;
            }
            // Membership (spec/SESSIONS.md §5) touches no key.
            Op::AddMember { .. } | Op::RemoveMember { .. } => return,
        };
        let hash = self.records.hash(&key);
        let record = self.records.get_or_default(&key, hash);
        record.extend_horizon(wall);
        if record.revoked() {
            return;
        }
        let held = record.put.is_some();
        let mut fold = record.take_fold();
        match op {
            Op::Put {
                value, ttl_ms, owner, ..
            } => {
                let session = Arc::new(Session {
                    value,
                    expires_at_ms: 0,
                    owner,
                    author: id.author,
                    seq,
                    id,
                });
                let put = Put {
                    session,
                    expiry: expiry_of(id.timestamp, ttl_ms),
                };
                if let Some(expiry) = fold.count(id, put.expiry, true) {
                    record.expiry = expiry;
                }
                if let Some(owner) = &put.session.owner
                    && fold.own(owner, id)
                {
                    self.by_owner.entry(owner.clone()).or_default().push(hash);
                }
                if record.put.as_ref().is_none_or(|old| put.rank() > old.rank()) {
                    record.put = Some(put);
                }
                if revoked_by(fold.owners.iter().map(|(o, id)| (o.as_slice(), *id)), &self.watermarks) {
                    record.revoke();
                    fold = Fold::default();
                }
            }
            Op::Touch { ttl_ms, .. } => {
                if let Some(expiry) = fold.count(id, expiry_of(id.timestamp, ttl_ms), false) {
                    record.expiry = expiry;
                }
            }
            Op::Revoke { .. } => {
                record.revoke();
                fold = Fold::default();
            }
            Op::RevokeOwner { .. } | Op::AddMember { .. } | Op::RemoveMember { .. } => {}
        }
        record.keep(fold);
        let expiry = record.expiry;
        if let Some(put) = &mut record.put
            && put.session.expires_at_ms != expiry
        {
            Arc::make_mut(&mut put.session).expires_at_ms = expiry;
        }
        match (held, record.put.is_some()) {
            (false, true) => self.holding += 1,
            (true, false) => self.holding -= 1,
            _ => {}
        }
    }

    /// The live session under `key` at `now_ms`: `None` if it was never put,
    /// is revoked, or has expired (`expires_at_ms <= now_ms`).
    pub fn get(&self, key: &[u8], now_ms: u64) -> Option<&Session> {
        self.get_shared(key, now_ms).map(|session| &**session)
    }

    /// [`SessionView::get`], as a shared handle: cheap to clone and to keep
    /// after the view changes (it is a snapshot).
    pub fn get_shared(&self, key: &[u8], now_ms: u64) -> Option<&Arc<Session>> {
        self.records.get(key)?.live(now_ms)
    }

    /// The live sessions at `now_ms` that some put of theirs names `owner`
    /// as owner, with their keys, sorted by key: exactly the sessions a
    /// RevokeOwner of `owner` folded now would revoke (spec/SESSIONS.md §2.4),
    /// whoever the winning put names.
    pub fn owned_by(&self, owner: &[u8], now_ms: u64) -> Vec<(&[u8], &Arc<Session>)> {
        let mut owned: Vec<(&[u8], &Arc<Session>)> = self
            .by_owner
            .get(owner)
            .into_iter()
            .flatten()
            .flat_map(|hash| self.records.by_hash(*hash))
            .filter(|(_, record)| record.names(owner))
            .filter_map(|(key, record)| Some((key.as_slice(), record.live(now_ms)?)))
            .collect();
        owned.sort_unstable_by_key(|(key, _)| *key);
        owned.dedup_by_key(|(key, _)| *key);
        owned
    }

    /// The keys of the sessions live at `now_ms` (those [`SessionView::get`]
    /// answers), in no particular order: the view is a hash table.
    pub fn live_keys(&self, now_ms: u64) -> impl Iterator<Item = &[u8]> + '_ {
        self.records
            .iter()
            .filter(move |(_, record)| record.put.is_some() && record.expiry > now_ms)
            .map(|(key, _)| key.as_slice())
    }

    /// Whether `key` is revoked (a tombstone is held for it).
    pub fn is_revoked(&self, key: &[u8]) -> bool {
        self.records.get(key).is_some_and(Record::revoked)
    }

    /// How many sessions hold a value (live, or expired but not yet dropped
    /// by [`SessionView::expire`]).
    pub fn len(&self) -> usize {
        self.holding
    }

    /// Whether no session holds a value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every record (session or tombstone) and owner watermark whose
    /// latest operation is older than `now_ms - MAX_TTL_MS -
    /// RETENTION_MARGIN_MS`: every operation on it has expired for at least
    /// the margin. Returns how many records were dropped.
    pub fn expire(&mut self, now_ms: u64) -> usize {
        let dead = |wall: u64| wall.saturating_add(MAX_TTL_MS).saturating_add(RETENTION_MARGIN_MS) <= now_ms;
        let before = self.records.len();
        let holding = &mut self.holding;
        self.records.retain(|r| {
            let keep = !dead(r.horizon_ms());
            if !keep && r.put.is_some() {
                *holding -= 1;
            }
            keep
        });
        self.watermarks.retain(|_, id| !dead(id.timestamp.wall_ms()));
        let records = &self.records;
        self.by_owner.retain(|owner, hashes| {
            hashes.retain(|hash| records.by_hash(*hash).any(|(_, r)| r.names(owner)));
            !hashes.is_empty()
        });
        before - self.records.len()
    }

    /// A blake3 hash of the whole folded state (sessions, tombstones,
    /// watermarks; not held-back entries), in the canonical form of
    /// spec/SESSIONS.md §3. It depends only on the set of folded entries (and
    /// on which records [`SessionView::expire`] dropped), never on arrival
    /// order or the clock.
    pub fn digest(&self) -> Hash {
        let mut h = blake3::Hasher::new_derive_key("feedmesh session view v1");
        let bytes = |h: &mut blake3::Hasher, b: &[u8]| {
            h.update(&(b.len() as u64).to_le_bytes());
            h.update(b);
        };
        let id = |h: &mut blake3::Hasher, id: &OpId| {
            h.update(&id.timestamp.as_u64().to_le_bytes());
            h.update(id.author.as_bytes());
            h.update(&id.position.to_le_bytes());
        };
        let mut records: Vec<(&[u8], &Record)> = self.records.iter().map(|(k, r)| (k.as_slice(), r)).collect();
        records.sort_unstable_by(|a, b| a.0.cmp(b.0));
        h.update(&(records.len() as u64).to_le_bytes());
        for (key, r) in records {
            bytes(&mut h, key);
            h.update(&[u8::from(r.revoked())]);
            h.update(&r.horizon_ms().to_le_bytes());
            h.update(&r.expiry.to_le_bytes());
            match &r.put {
                None => {
                    h.update(&[0]);
                }
                Some(p) => {
                    h.update(&[1]);
                    id(&mut h, &p.session.id);
                    h.update(&p.session.seq.to_le_bytes());
                    bytes(&mut h, &p.session.value);
                    h.update(&p.expiry.to_le_bytes());
                    match &p.session.owner {
                        None => {
                            h.update(&[0]);
                        }
                        Some(o) => {
                            h.update(&[1]);
                            bytes(&mut h, o);
                        }
                    }
                }
            }
            h.update(&(r.owners().count() as u64).to_le_bytes());
            for (owner, first) in r.owners() {
                bytes(&mut h, owner);
                id(&mut h, &first);
            }
        }
        h.update(&(self.watermarks.len() as u64).to_le_bytes());
        for (owner, mark) in &self.watermarks {
            bytes(&mut h, owner);
            id(&mut h, mark);
        }
        Hash(*h.finalize().as_bytes())
    }
}
