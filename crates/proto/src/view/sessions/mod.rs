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
//! - the expiry is the end of the winning put's *chain*: a touch names the
//!   timestamp of the put it extends (the puts of one timestamp are one
//!   version of the session, whose chain starts at their greatest expiry),
//!   and counts once the chain covers it; touches waiting for their put, or
//!   for the chain to reach them, wait in `pending` (spec/SESSIONS.md §2.2);
//! - revocation is a kill time: puts and touches dated before it are
//!   ignored; a revocation sets it to its own time plus the reach
//!   ([`HistoryWindow::reach_ms`]), and it only grows;
//! - owner revocation keeps every `RevokeOwner` mark within reach and, per
//!   key and owner, the *clusters* of its puts (runs with gaps under the
//!   session lifetime): a mark kills the key if a cluster started before it
//!   and its last put was less than a lifetime before it.
//!
//! Every component is a join in a semilattice, so the state, and hence
//! [`SessionView::digest`], depends only on the set of folded entries (and on
//! the horizon [`SessionView::expire`] last pruned at, which drops only what
//! is dead: spec/SESSIONS.md §2.6). Memory is one record per key, not one per
//! operation.
//!
//! Entries dated more than [`MAX_DRIFT_MS`] ahead of local time are held back
//! ([`SessionView::offer`]; their Revokes fold at once) and folded by [`SessionView::release`] once local
//! time catches up. The view never reads the clock: `now_ms` is an argument.

mod snapshot;
mod table;

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use self::table::Records;
use super::ops::{Op, OpsError, decode_ops};
use super::window::HistoryWindow;
use crate::clock::{MAX_DRIFT_MS, Timestamp};
use crate::feed::{FeedId, Hash};

pub use snapshot::ViewDecodeError;

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

impl OpId {
    fn wall_ms(&self) -> u64 {
        self.timestamp.wall_ms()
    }

    /// The least id at wall time `wall_ms`: it stands for a cluster's first
    /// put once only marks after that wall time can matter (spec/SESSIONS.md §2.6).
    fn floor(wall_ms: u64) -> OpId {
        OpId {
            timestamp: Timestamp::new(wall_ms, 0),
            author: FeedId([0; 32]),
            position: 0,
        }
    }
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
    /// This put's own expiry (wall time + ttl, the ttl at most the lifetime).
    expiry: u64,
}

impl Put {
    /// The total order of puts: fold order, then (only for the identical
    /// ids a forked feed can produce) the contents.
    fn rank(&self) -> (OpId, u64, &[u8], u64, Option<&[u8]>) {
        let s = &self.session;
        (s.id, s.seq, &s.value, self.expiry, s.owner.as_deref())
    }

    fn wall_ms(&self) -> u64 {
        self.session.id.wall_ms()
    }
}

/// A touch that does not count (yet): its put has not arrived, or the put's
/// chain does not reach it (spec/SESSIONS.md §2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Pending {
    /// The timestamp of the put the touch extends.
    put: Timestamp,
    /// The touch's id.
    id: OpId,
    /// The touch's own expiry (wall time + ttl, the ttl at most the lifetime).
    offer: u64,
}

/// A run of an owner's puts on one key, each less than a session lifetime
/// after the one before: a `RevokeOwner` mark kills the key if it is ordered
/// after `first` and dated less than a lifetime after `last_wall`
/// (spec/SESSIONS.md §2.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cluster {
    /// The first put's id ([`OpId::floor`] once only later marks matter).
    first: OpId,
    /// The wall time of the last put.
    last_wall: u64,
}

impl Cluster {
    fn of(id: OpId) -> Cluster {
        Cluster {
            first: id,
            last_wall: id.wall_ms(),
        }
    }

    /// Whether a mark at `mark` kills the key through this cluster.
    fn kills(&self, mark: &OpId, lifetime_ms: u64) -> bool {
        self.first < *mark && mark.wall_ms() < self.last_wall.saturating_add(lifetime_ms)
    }
}

/// Adds `new` to `clusters` (sorted by first put) and merges the runs it
/// joins.
fn join_cluster(clusters: &mut Vec<Cluster>, new: Cluster, lifetime_ms: u64) {
    let at = clusters.partition_point(|c| c.first < new.first);
    clusters.insert(at, new);
    let mut merged: Vec<Cluster> = Vec::with_capacity(clusters.len());
    for c in clusters.drain(..) {
        match merged.last_mut() {
            Some(last) if c.first.wall_ms() < last.last_wall.saturating_add(lifetime_ms) => {
                last.last_wall = last.last_wall.max(c.last_wall);
            }
            _ => merged.push(c),
        }
    }
    *clusters = merged;
}

/// What is still alive at the view's horizon (the local time of the last
/// prune, [`SessionView::expire`]), from the window's settings
/// (spec/SESSIONS.md §2.6). Before any prune (horizon 0) everything is.
#[derive(Clone, Copy, Debug)]
struct Horizon {
    now_ms: u64,
    lifetime_ms: u64,
    reach_ms: u64,
}

impl Horizon {
    /// A put at `wall` can still be, or become, a live session's winning put.
    fn put_alive(&self, wall: u64) -> bool {
        wall.saturating_add(self.lifetime_ms) > self.now_ms
    }

    /// A kill time can still kill such a put.
    fn kill_alive(&self, until: u64) -> bool {
        until > 0 && self.put_alive(until)
    }

    /// A mark at `wall` can still kill such a put.
    fn mark_alive(&self, wall: u64) -> bool {
        self.kill_alive(wall.saturating_add(self.reach_ms))
    }

    /// A cluster whose last put is at `last_wall` can still be killed by such a mark.
    fn cluster_alive(&self, last_wall: u64) -> bool {
        self.mark_alive(last_wall.saturating_add(self.lifetime_ms))
    }

    /// `first`, or [`OpId::floor`] of the earliest mark still alive if
    /// `first` is at or before that mark's wall time.
    fn clip(&self, first: OpId) -> OpId {
        let floor = self.now_ms.saturating_sub(self.lifetime_ms + self.reach_ms);
        if self.now_ms >= self.lifetime_ms + self.reach_ms && first.wall_ms() <= floor {
            OpId::floor(floor)
        } else {
            first
        }
    }
}

/// A key's fold state. Most records hold one put and nothing else, so their
/// pending touches and owner clusters are those that put alone gives
/// ([`Fold::of_put`]) and are not stored: a boxed [`Fold`] is kept only for
/// the others (spec/SESSIONS.md §2.2, §2.4).
#[derive(Clone, Debug, Default)]
struct Record {
    /// Puts and touches dated before this wall time are killed (0: none is).
    killed_until: u64,
    /// The winning put: the greatest put not killed.
    put: Option<Put>,
    /// The end of the winning put's chain (0 without a put).
    expiry: u64,
    /// The fold state when it differs from [`Fold::of_put`] of `put`.
    fold: Option<Box<Fold>>,
}

/// What a record keeps to stay order-independent besides its winning put.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Fold {
    /// The touches that do not count yet, sorted.
    pending: Vec<Pending>,
    /// Each owner's clusters of puts on the key, sorted by owner, the
    /// clusters by first put.
    owners: Vec<(Vec<u8>, Vec<Cluster>)>,
}

impl Fold {
    /// The state a record folded from `put` alone has: its owner's cluster.
    fn of_put(put: Option<&Put>) -> Fold {
        let Some(put) = put else {
            return Fold::default();
        };
        let s = &put.session;
        Fold {
            pending: Vec::new(),
            owners: s
                .owner
                .iter()
                .map(|owner| (owner.clone(), vec![Cluster::of(s.id)]))
                .collect(),
        }
    }

    /// Whether this is [`Fold::of_put`] of `put` (compared without building it).
    fn is_of_put(&self, put: Option<&Put>) -> bool {
        if !self.pending.is_empty() {
            return false;
        }
        let Some(put) = put else {
            return self.owners.is_empty();
        };
        let s = &put.session;
        match &s.owner {
            None => self.owners.is_empty(),
            Some(owner) => {
                matches!(self.owners.as_slice(), [(o, clusters)] if o == owner && clusters == &[Cluster::of(s.id)])
            }
        }
    }

    /// Adds a put by `owner` at `first` (clipped) and wall time `wall` to
    /// the owner's clusters; returns whether the owner is new to the key.
    fn own(&mut self, owner: &[u8], first: OpId, wall: u64, lifetime_ms: u64) -> bool {
        let new = Cluster { first, last_wall: wall };
        match self.owners.binary_search_by(|(o, _)| o.as_slice().cmp(owner)) {
            Ok(i) => {
                join_cluster(&mut self.owners[i].1, new, lifetime_ms);
                false
            }
            Err(i) => {
                self.owners.insert(i, (owner.to_vec(), vec![new]));
                true
            }
        }
    }

    /// Adds a touch that does not count yet (once).
    fn wait(&mut self, pending: Pending) {
        if let Err(at) = self.pending.binary_search(&pending) {
            self.pending.insert(at, pending);
        }
    }
}

impl Record {
    /// Whether the record holds nothing (it is then not kept).
    fn is_empty(&self) -> bool {
        self.killed_until == 0 && self.put.is_none() && self.fold.is_none()
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

    /// The clusters of `owner`'s puts on the key, if it has any.
    fn clusters_of(&self, owner: &[u8]) -> Option<Cow<'_, [Cluster]>> {
        match &self.fold {
            Some(fold) => fold
                .owners
                .iter()
                .find(|(o, _)| o == owner)
                .map(|(_, clusters)| Cow::Borrowed(clusters.as_slice())),
            None => {
                let session = &self.put.as_ref()?.session;
                (session.owner.as_deref() == Some(owner)).then(|| Cow::Owned(vec![Cluster::of(session.id)]))
            }
        }
    }

    /// Every owner with puts on the key.
    fn owners(&self) -> Vec<&[u8]> {
        match &self.fold {
            Some(fold) => fold.owners.iter().map(|(o, _)| o.as_slice()).collect(),
            None => self.put.iter().filter_map(|p| p.session.owner.as_deref()).collect(),
        }
    }

    /// Kills the puts and touches dated before `until` (spec/SESSIONS.md §2.3).
    fn kill(&mut self, until: u64) {
        if until <= self.killed_until {
            return;
        }
        self.killed_until = until;
        let mut fold = self.take_fold();
        if self.put.as_ref().is_some_and(|p| p.wall_ms() < until) {
            self.put = None;
            self.expiry = 0;
        }
        fold.pending
            .retain(|p| p.id.wall_ms() >= until && p.put.wall_ms() >= until);
        self.keep(fold);
    }

    /// Counts the pending touches the winning put's chain now reaches, and
    /// drops those that can no longer count (spec/SESSIONS.md §2.2).
    fn settle(&mut self, fold: &mut Fold, lifetime_ms: u64) {
        let Some(put) = &self.put else {
            return;
        };
        let (version, cap) = (put.session.id.timestamp, put.wall_ms().saturating_add(lifetime_ms));
        fold.pending.retain(|p| p.put >= version);
        while let Some(i) = fold
            .pending
            .iter()
            .position(|p| p.put == version && p.id.wall_ms() < self.expiry)
        {
            let touch = fold.pending.remove(i);
            self.expiry = self.expiry.max(touch.offer.min(cap));
        }
    }

    /// Drops what is dead at `horizon` (spec/SESSIONS.md §2.6); returns
    /// whether anything changed.
    fn prune(&mut self, horizon: &Horizon) -> bool {
        let before = (self.killed_until, self.put.is_some(), self.fold.clone());
        if !horizon.kill_alive(self.killed_until) {
            self.killed_until = 0;
        }
        let mut fold = self.take_fold();
        if self.put.as_ref().is_some_and(|p| !horizon.put_alive(p.wall_ms())) {
            self.put = None;
            self.expiry = 0;
        }
        fold.pending.retain(|p| horizon.put_alive(p.put.wall_ms()));
        for (_, clusters) in &mut fold.owners {
            clusters.retain(|c| horizon.cluster_alive(c.last_wall));
            for cluster in clusters.iter_mut() {
                cluster.first = horizon.clip(cluster.first);
            }
        }
        fold.owners.retain(|(_, clusters)| !clusters.is_empty());
        self.keep(fold);
        before != (self.killed_until, self.put.is_some(), self.fold.clone())
    }

    /// Keeps the session's `expires_at_ms` equal to the record's expiry.
    fn sync_expiry(&mut self) {
        let expiry = self.expiry;
        if let Some(put) = &mut self.put
            && put.session.expires_at_ms != expiry
        {
            Arc::make_mut(&mut put.session).expires_at_ms = expiry;
        }
    }

    /// The session if it is live at `now_ms`. The record's expiry is the
    /// session's (kept equal by every fold); checked where the table holds
    /// it, a miss does not read the session.
    fn live(&self, now_ms: u64) -> Option<&Arc<Session>> {
        let session = &self.put.as_ref()?.session;
        (self.expiry > now_ms).then_some(session)
    }
}

/// The latest mark of `marks` that one of `clusters` kills, if any.
fn latest_kill(clusters: &[Cluster], marks: &BTreeSet<OpId>, lifetime_ms: u64) -> Option<OpId> {
    clusters
        .iter()
        .filter_map(|c| {
            marks
                .range((Bound::Excluded(c.first), Bound::Unbounded))
                .take_while(|m| c.kills(m, lifetime_ms))
                .last()
                .copied()
        })
        .max()
}

/// The folded session state of every author's operations.
///
/// Call order: [`SessionView::offer`] (or [`SessionView::offer_payload`]) for
/// every entry, in any order and any number of times; [`SessionView::release`]
/// as local time passes, to fold held-back entries; [`SessionView::expire`]
/// now and then to drop what is dead. Reads ([`SessionView::get`]) take `now_ms`
/// and never see an expired or revoked session.
#[derive(Clone, Debug, Default)]
pub struct SessionView {
    /// One record per key with something alive. A hash map: a read is one
    /// hash and one or two probes, where a tree of a million keys costs a
    /// cache miss per level.
    records: Records,
    /// The keys each owner has put (possibly stale: dropped keys stay
    /// until [`SessionView::expire`]), so that a `RevokeOwner` visits only
    /// that owner's keys. Each key is listed by its hash in `records` (8
    /// bytes, not a copy of the key), and the records found under it are
    /// checked to name the owner.
    by_owner: HashMap<Vec<u8>, Vec<u64>>,
    /// How many records hold a value ([`SessionView::len`]).
    holding: usize,
    /// Each owner's `RevokeOwner` marks still alive (spec/SESSIONS.md §2.4).
    marks: BTreeMap<Vec<u8>, BTreeSet<OpId>>,
    /// Held-back batches by (timestamp, author, seq); several only for a forked feed.
    held: BTreeMap<(Timestamp, FeedId, u64), Vec<Vec<Op>>>,
    /// The network's session lifetime and retention margin.
    window: HistoryWindow,
    /// The local time [`SessionView::expire`] last pruned at (0: never).
    horizon_ms: u64,
}

/// Whether an entry stamped `timestamp` is held back at local time `now_ms`
/// (spec/SESSIONS.md §2.5).
pub fn is_beyond_drift(timestamp: Timestamp, now_ms: u64) -> bool {
    timestamp.wall_ms() > now_ms.saturating_add(MAX_DRIFT_MS)
}

impl SessionView {
    /// An empty view with the default history window
    /// ([`HistoryWindow::default`]).
    pub fn new() -> SessionView {
        SessionView::default()
    }

    /// An empty view for a network with this history window.
    pub fn with_window(window: HistoryWindow) -> SessionView {
        SessionView {
            window,
            ..SessionView::default()
        }
    }

    /// The network's history window this view folds by.
    pub fn window(&self) -> HistoryWindow {
        self.window
    }

    /// The local time of the last prune ([`SessionView::expire`]), 0 if none.
    pub fn horizon_ms(&self) -> u64 {
        self.horizon_ms
    }

    fn horizon(&self) -> Horizon {
        Horizon {
            now_ms: self.horizon_ms,
            lifetime_ms: self.window.lifetime_ms(),
            reach_ms: self.window.reach_ms(),
        }
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
        let key = match &mut op {
            Op::Put { key, .. } | Op::Touch { key, .. } | Op::Revoke { key } => std::mem::take(key),
            Op::RevokeOwner { owner } => {
                let owner = std::mem::take(owner);
                self.revoke_owner(owner, id);
                return;
            }
            // Membership (spec/SESSIONS.md §5) touches no key.
            Op::AddMember { .. } | Op::RemoveMember { .. } => return,
        };
        let horizon = self.horizon();
        let (lifetime, reach) = (self.window.lifetime_ms(), self.window.reach_ms());
        let wall = id.wall_ms();
        let hash = self.records.hash(&key);
        let record = self.records.get_or_default(&key, hash);
        let held = record.put.is_some();
        match op {
            Op::Revoke { .. } => {
                let until = wall.saturating_add(reach);
                if horizon.kill_alive(until) {
                    record.kill(until);
                }
            }
            Op::Put {
                value, ttl_ms, owner, ..
            } => {
                let mut fold = record.take_fold();
                if let Some(owner) = &owner
                    && horizon.cluster_alive(wall)
                    && fold.own(owner, horizon.clip(id), wall, lifetime)
                {
                    self.by_owner.entry(owner.clone()).or_default().push(hash);
                }
                let put = Put {
                    session: Arc::new(Session {
                        value,
                        expires_at_ms: 0,
                        owner,
                        author: id.author,
                        seq,
                        id,
                    }),
                    expiry: wall.saturating_add(ttl_ms.min(lifetime)),
                };
                if wall >= record.killed_until && horizon.put_alive(wall) {
                    // The puts of one timestamp are one version of the
                    // session: its chain starts at the greatest of their expiries.
                    let version = record.put.as_ref().map(|old| old.session.id.timestamp);
                    if version == Some(id.timestamp) {
                        record.expiry = record.expiry.max(put.expiry);
                    } else if version.is_none_or(|old| id.timestamp > old) {
                        record.expiry = put.expiry;
                    }
                    if record.put.as_ref().is_none_or(|old| put.rank() > old.rank()) {
                        record.put = Some(put);
                    }
                    record.settle(&mut fold, lifetime);
                }
                let kill = fold
                    .owners
                    .iter()
                    .filter_map(|(owner, clusters)| latest_kill(clusters, self.marks.get(owner)?, lifetime))
                    .max();
                record.keep(fold);
                if let Some(mark) = kill {
                    record.kill(mark.wall_ms().saturating_add(reach));
                }
            }
            Op::Touch { ttl_ms, put, .. } => {
                let touch = Pending {
                    put,
                    id,
                    offer: wall.saturating_add(ttl_ms.min(lifetime)),
                };
                // A touch counts only after its put (a later timestamp: its
                // writer had folded the put) and within the put's lifetime.
                let can_count = wall >= record.killed_until
                    && put.wall_ms() >= record.killed_until
                    && horizon.put_alive(put.wall_ms())
                    && id.timestamp > put
                    && wall < put.wall_ms().saturating_add(lifetime);
                if can_count {
                    let mut fold = record.take_fold();
                    fold.wait(touch);
                    record.settle(&mut fold, lifetime);
                    record.keep(fold);
                }
            }
            Op::RevokeOwner { .. } | Op::AddMember { .. } | Op::RemoveMember { .. } => {}
        }
        record.sync_expiry();
        match (held, record.put.is_some()) {
            (false, true) => self.holding += 1,
            (true, false) => self.holding -= 1,
            _ => {}
        }
        if record.is_empty() {
            self.records.remove(&key, hash);
        }
    }

    /// Folds a `RevokeOwner` of `owner` at `mark`: kills every key whose
    /// clusters of `owner`'s puts it reaches (spec/SESSIONS.md §2.4).
    fn revoke_owner(&mut self, owner: Vec<u8>, mark: OpId) {
        let horizon = self.horizon();
        if !horizon.mark_alive(mark.wall_ms()) {
            return;
        }
        let (lifetime, reach) = (self.window.lifetime_ms(), self.window.reach_ms());
        let until = mark.wall_ms().saturating_add(reach);
        for hash in self.by_owner.get(&owner).into_iter().flatten() {
            for record in self.records.by_hash_mut(*hash) {
                let kills = record
                    .clusters_of(&owner)
                    .is_some_and(|clusters| clusters.iter().any(|c| c.kills(&mark, lifetime)));
                if kills {
                    let held = record.put.is_some();
                    record.kill(until);
                    self.holding -= usize::from(held && record.put.is_none());
                }
            }
        }
        self.marks.entry(owner).or_default().insert(mark);
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

    /// The live sessions at `now_ms` that a RevokeOwner of `owner` folded
    /// now would revoke (some put of theirs by `owner` less than a session
    /// lifetime ago, spec/SESSIONS.md §2.4), with their keys, sorted by key,
    /// whoever the winning put names.
    pub fn owned_by(&self, owner: &[u8], now_ms: u64) -> Vec<(&[u8], &Arc<Session>)> {
        let lifetime = self.window.lifetime_ms();
        let mut owned: Vec<(&[u8], &Arc<Session>)> = self
            .by_owner
            .get(owner)
            .into_iter()
            .flatten()
            .flat_map(|hash| self.records.by_hash(*hash))
            .filter(|(_, record)| {
                record
                    .clusters_of(owner)
                    .is_some_and(|clusters| clusters.iter().any(|c| now_ms < c.last_wall.saturating_add(lifetime)))
            })
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

    /// Whether `key` is revoked at `now_ms`: a put or touch written now
    /// would be killed (spec/SESSIONS.md §2.3).
    pub fn is_revoked(&self, key: &[u8], now_ms: u64) -> bool {
        self.records.get(key).is_some_and(|r| r.killed_until > now_ms)
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

    /// Prunes the view at local time `now_ms`: drops every session,
    /// revocation, pending touch, owner cluster and mark that is dead, that
    /// is, that no operation dated inside the history window can bring
    /// back into play (spec/SESSIONS.md §2.6). Returns how many records and
    /// owners' marks it dropped or changed (0: the state is as it was). The
    /// horizon only moves forward.
    pub fn expire(&mut self, now_ms: u64) -> usize {
        self.horizon_ms = self.horizon_ms.max(now_ms);
        let horizon = self.horizon();
        let mut changed = 0;
        let holding = &mut self.holding;
        self.records.retain(|r| {
            let held = r.put.is_some();
            changed += usize::from(r.prune(&horizon));
            r.sync_expiry();
            *holding -= usize::from(held && r.put.is_none());
            !r.is_empty()
        });
        for marks in self.marks.values_mut() {
            let before = marks.len();
            marks.retain(|m| horizon.mark_alive(m.wall_ms()));
            changed += usize::from(marks.len() != before);
        }
        self.marks.retain(|_, marks| !marks.is_empty());
        let records = &self.records;
        self.by_owner.retain(|owner, hashes| {
            hashes.retain(|hash| records.by_hash(*hash).any(|(_, r)| r.clusters_of(owner).is_some()));
            !hashes.is_empty()
        });
        changed
    }

    /// A blake3 hash of the whole folded state (sessions, kill times,
    /// pending touches, owner clusters, marks; not held-back entries), in
    /// the canonical form of spec/SESSIONS.md §3. It depends only on the set
    /// of folded entries and on the horizon of the last prune, never on
    /// arrival order.
    pub fn digest(&self) -> Hash {
        let mut h = blake3::Hasher::new_derive_key("feedmesh session view v2");
        let u64 = |h: &mut blake3::Hasher, n: u64| {
            h.update(&n.to_le_bytes());
        };
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
        u64(&mut h, records.len() as u64);
        for (key, r) in records {
            bytes(&mut h, key);
            u64(&mut h, r.killed_until);
            match &r.put {
                None => {
                    h.update(&[0]);
                }
                Some(p) => {
                    h.update(&[1]);
                    id(&mut h, &p.session.id);
                    u64(&mut h, p.session.seq);
                    bytes(&mut h, &p.session.value);
                    u64(&mut h, p.expiry);
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
            u64(&mut h, r.expiry);
            let fold = match &r.fold {
                Some(fold) => Cow::Borrowed(&**fold),
                None => Cow::Owned(Fold::of_put(r.put.as_ref())),
            };
            u64(&mut h, fold.pending.len() as u64);
            for pending in &fold.pending {
                u64(&mut h, pending.put.as_u64());
                id(&mut h, &pending.id);
                u64(&mut h, pending.offer);
            }
            u64(&mut h, fold.owners.len() as u64);
            for (owner, clusters) in &fold.owners {
                bytes(&mut h, owner);
                u64(&mut h, clusters.len() as u64);
                for cluster in clusters {
                    id(&mut h, &cluster.first);
                    u64(&mut h, cluster.last_wall);
                }
            }
        }
        u64(&mut h, self.marks.len() as u64);
        for (owner, marks) in &self.marks {
            bytes(&mut h, owner);
            u64(&mut h, marks.len() as u64);
            for mark in marks {
                id(&mut h, mark);
            }
        }
        Hash(*h.finalize().as_bytes())
    }
}
