//! The node's live session view: the [`SessionView`] kept up to date with
//! every entry the store takes, rebuilt from the store when the set of
//! foldable entries shrinks (a fork).
//!
//! It is the node's [`Application`]: the node calls the methods that change
//! what is folded ([`Application::fold`], [`Application::refold`]) with its
//! writer lock held, so folds and refolds are serialised with the appends
//! themselves, and a refold reads the store while nothing is appended and
//! replaces the state whole. Reads take a read lock and never wait for a
//! refold (it builds aside and swaps).
//!
//! The view is saved now and then as a snapshot in the store, with the
//! entries it covers ([`Application::checkpoint`]); a node starts from its
//! snapshot and folds only the entries stored after it, and re-folds
//! everything only when the snapshot cannot be trusted (spec/SESSIONS.md
//! §6.7).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use tokio::sync::broadcast;

use super::Refusal;
use super::commit::{Condition, Guard};
use crate::clock::Timestamp;
use crate::feed::{Entry, FeedId, Hash};
use crate::node::Application;
use crate::store::{Store, StoreError, pages};
use crate::view::sessions::is_beyond_drift;
use crate::view::{HistoryWindow, Membership, Op, SessionView, Snapshot, SnapshotWriter, decode_ops};

/// How many records a rebuild reads from the store at a time.
const REBUILD_CHUNK: usize = 4096;
/// How many records a snapshot encodes under one read lock of the view.
const SNAPSHOT_SLICE: usize = 4096;
/// The pause between two slices of a snapshot. A fold woken by the end of a
/// slice must still be scheduled to take its write lock; a loop taking the
/// next read lock at once wins that race on a busy machine every time, and
/// the fold waited for the whole snapshot (1.4–2.1 s at a million sessions
/// on 2 cores; 61 ms at most with the pause).
const SNAPSHOT_PAUSE: Duration = Duration::from_millis(1);
/// The name of the session view's snapshot in the store
/// ([`Store::snapshot`]).
pub const SNAPSHOT_NAME: &str = "sessions";

/// What changed in the view: a hint for subscribers to read the key again
/// (a put may have lost to a later one; the view is the truth).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionChange {
    /// A put or touch on the key was folded.
    Updated {
        /// The session key.
        key: Vec<u8>,
    },
    /// The key was revoked.
    Revoked {
        /// The session key.
        key: Vec<u8>,
    },
    /// Every session of the owner put before the operation was revoked.
    OwnerRevoked {
        /// The owner.
        owner: Vec<u8>,
    },
    /// The whole view was rebuilt (a fork was found): read everything again.
    Rebuilt,
}

impl SessionChange {
    fn of(op: &Op) -> Option<SessionChange> {
        match op {
            Op::Put { key, .. } | Op::Touch { key, .. } => Some(SessionChange::Updated { key: key.clone() }),
            Op::Revoke { key } => Some(SessionChange::Revoked { key: key.clone() }),
            Op::RevokeOwner { owner } => Some(SessionChange::OwnerRevoked { owner: owner.clone() }),
            Op::AddMember { .. } | Op::RemoveMember { .. } => None,
        }
    }
}

/// The folded state and the rules deciding which entries fold.
#[derive(Debug)]
pub(crate) struct Folding {
    /// The session state.
    pub(crate) view: SessionView,
    /// Who may write (spec/SESSIONS.md §5).
    pub(crate) membership: Membership,
    /// Forked feeds: only entries below the forked sequence fold.
    frozen: BTreeMap<FeedId, u64>,
    /// Entries whose payload is not a valid batch of operations.
    malformed: u64,
    /// The earliest wall time of an admin's entry held back for clock drift:
    /// its membership operations count only once it is due (§5.3), by a
    /// re-fold then.
    admin_held_until: Option<u64>,
    /// Per feed, the last entry offered: every entry up to it has been
    /// (what a snapshot covers).
    covered: BTreeMap<FeedId, u64>,
}

/// The view is pruned at the multiples of this many milliseconds of local
/// time (10 minutes): what the history window left behind goes within that
/// long.
pub(crate) const PRUNE_STEP_MS: u64 = 10 * 60 * 1000;

/// What offering an entry did.
enum Outcome {
    /// Folded now (or, held back, its Revokes), with these changes (if asked for).
    Folded(Vec<SessionChange>),
    /// Not folded (not a member, forked, malformed, or held back).
    Skipped,
    /// An admin's entry changed the membership: the view must be re-folded.
    MembershipChanged,
}

impl Folding {
    fn new(membership: Membership, frozen: BTreeMap<FeedId, u64>, window: HistoryWindow) -> Folding {
        Folding {
            view: SessionView::with_window(window),
            membership,
            frozen,
            malformed: 0,
            admin_held_until: None,
            covered: BTreeMap::new(),
        }
    }

    /// The state a snapshot holds (which the caller has checked against
    /// the store).
    fn restored(snapshot: Snapshot) -> Folding {
        Folding {
            view: snapshot.view,
            membership: snapshot.membership,
            frozen: snapshot.frozen,
            malformed: snapshot.malformed,
            admin_held_until: snapshot.admin_held_until,
            covered: snapshot
                .covered
                .into_iter()
                .map(|(feed, (seq, _))| (feed, seq))
                .collect(),
        }
    }

    /// Whether `entry` is an admin's, dated too far ahead to count yet (and
    /// if so, remembers when it falls due).
    fn admin_entry_held(&mut self, entry: &Entry, now_ms: u64) -> bool {
        let held = self.membership.is_admin(&entry.author()) && is_beyond_drift(entry.timestamp(), now_ms);
        if held {
            let wall = entry.timestamp().wall_ms();
            self.admin_held_until = Some(self.admin_held_until.map_or(wall, |w| w.min(wall)));
        }
        held
    }

    fn below_fork(&self, author: FeedId, seq: u64) -> bool {
        self.frozen.get(&author).is_none_or(|&forked| seq < forked)
    }

    fn decode(&mut self, payload: &[u8]) -> Option<Vec<Op>> {
        let ops = decode_ops(payload).ok();
        if ops.is_none() {
            self.malformed += 1;
        }
        ops
    }

    /// Offers one entry to the membership and then to the view; lists the
    /// changes if `changes` is set.
    fn offer(&mut self, entry: &Entry, payload: &[u8], now_ms: u64, changes: bool) -> Outcome {
        let (author, seq) = (entry.author(), entry.seq());
        let covered = self.covered.entry(author).or_default();
        *covered = (*covered).max(seq);
        if !self.below_fork(author, seq) || !self.membership.folds(author, seq) {
            return Outcome::Skipped;
        }
        let Some(ops) = self.decode(payload) else {
            return Outcome::Skipped;
        };
        if !self.admin_entry_held(entry, now_ms) && self.membership.apply(author, &ops) {
            return Outcome::MembershipChanged;
        }
        let changes = if changes {
            ops.iter().filter_map(SessionChange::of).collect()
        } else {
            Vec::new()
        };
        match self.view.offer(author, seq, entry.timestamp(), ops, now_ms) {
            crate::view::Offered::Folded => Outcome::Folded(changes),
            // Its Revokes are folded already (spec/SESSIONS.md §2.5).
            crate::view::Offered::HeldBack => Outcome::Folded(
                changes
                    .into_iter()
                    .filter(|c| matches!(c, SessionChange::Revoked { .. }))
                    .collect(),
            ),
        }
    }
}

/// Counts of the live view, for status pages and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ViewStats {
    /// Sessions holding a value (live, or expired and not yet dropped).
    pub sessions: usize,
    /// Entries held back because they are dated too far ahead.
    pub held_back: usize,
    /// Entries whose payload is not a batch of session operations.
    pub malformed: u64,
    /// Feeds frozen by a fork proof.
    pub forked_feeds: usize,
    /// Feeds removed from the membership.
    pub removed_members: usize,
}

/// How the view was built when the node started (spec/SESSIONS.md §6.7).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ViewStart {
    /// Whether the node started from its saved snapshot rather than by
    /// folding every stored entry.
    pub from_snapshot: bool,
    /// How many stored entries it folded: those after its snapshot, or
    /// every one.
    pub folded: u64,
}

/// The view shared by a node and its [`Sessions`](super::Sessions) handles.
#[derive(Debug)]
pub(crate) struct LiveView {
    state: RwLock<Folding>,
    changes: broadcast::Sender<SessionChange>,
    /// Whether something was folded since the last snapshot.
    unsaved: AtomicBool,
    /// Bumped by every refold and every retention drop: a snapshot whose
    /// slices were encoded across one is not saved.
    generation: AtomicU64,
    start: ViewStart,
}

impl LiveView {
    /// Builds the view of everything `store` holds, for a network with
    /// `admins` (none: every feed is a member) and `window`: from the store's snapshot
    /// and the entries stored after it if the snapshot can be trusted
    /// (spec/SESSIONS.md §6.7), else by folding every entry.
    pub(crate) fn open(
        store: &dyn Store,
        admins: &[FeedId],
        window: HistoryWindow,
        now_ms: u64,
    ) -> Result<LiveView, StoreError> {
        let membership = Membership::with_admins(admins.iter().copied());
        let (state, start) = match restore(store, &membership, window, now_ms)? {
            Some((state, folded)) => (
                state,
                ViewStart {
                    from_snapshot: true,
                    folded,
                },
            ),
            None => {
                let state = fold_store(store, &membership, window, now_ms)?;
                let folded = state.covered.values().sum();
                (
                    state,
                    ViewStart {
                        from_snapshot: false,
                        folded,
                    },
                )
            }
        };
        Ok(LiveView {
            state: RwLock::new(state),
            changes: broadcast::channel(super::CHANGES_CAPACITY).0,
            unsaved: AtomicBool::new(!start.from_snapshot || start.folded > 0),
            generation: AtomicU64::new(0),
            start,
        })
    }

    /// The folded state, for reading.
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Folding> {
        self.state.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Folding> {
        self.state.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether the session of `guard` meets its condition at `now_ms`.
    pub(crate) fn check(&self, guard: &Guard, now_ms: u64) -> Result<(), Refusal> {
        let state = self.read();
        if state.view.is_revoked(&guard.key, now_ms) {
            return Err(Refusal::Revoked);
        }
        let live = state.view.get(&guard.key, now_ms).is_some();
        match guard.condition {
            Condition::Absent if live => Err(Refusal::Exists),
            Condition::Live if !live => Err(Refusal::NotLive),
            _ => Ok(()),
        }
    }

    /// A receiver of the view's changes.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<SessionChange> {
        self.changes.subscribe()
    }

    /// The digest of the folded state (spec/SESSIONS.md §3).
    pub(crate) fn digest(&self) -> Hash {
        self.read().view.digest()
    }

    /// Counts for status pages.
    pub(crate) fn stats(&self) -> ViewStats {
        let state = self.read();
        ViewStats {
            sessions: state.view.len(),
            held_back: state.view.held_back(),
            malformed: state.malformed,
            forked_feeds: state.frozen.len(),
            removed_members: state.membership.members().filter(|m| m.until_seq.is_some()).count(),
        }
    }

    /// How the view was built when the node started.
    pub(crate) fn started(&self) -> ViewStart {
        self.start
    }
}

/// The session view as the node's application: membership operations in
/// the admins' feeds decide what folds (spec/SESSIONS.md §5).
impl Application for LiveView {
    /// Folds entries `store` has just taken. If one changes the membership,
    /// re-folds everything instead and returns true.
    fn fold(
        &self,
        store: &dyn Store,
        stored: &mut dyn Iterator<Item = (&Entry, &[u8])>,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let mut folded = Vec::new();
        let listened = self.changes.receiver_count() > 0;
        self.unsaved.store(true, Ordering::SeqCst);
        {
            let mut state = self.write();
            for (entry, payload) in stored {
                match state.offer(entry, payload, now_ms, listened) {
                    Outcome::Folded(changes) => folded.extend(changes),
                    Outcome::Skipped => {}
                    Outcome::MembershipChanged => {
                        drop(state);
                        self.refold(store, now_ms)?;
                        return Ok(true);
                    }
                }
            }
        }
        for change in folded {
            let _ = self.changes.send(change);
        }
        Ok(false)
    }

    /// Re-folds everything `store` holds (after a fork proof or a
    /// membership change), replacing the state whole.
    fn refold(&self, store: &dyn Store, now_ms: u64) -> Result<(), StoreError> {
        let (admins, window) = {
            let state = self.read();
            (
                Membership::with_admins(state.membership.admins().copied()),
                state.view.window(),
            )
        };
        let fresh = fold_store(store, &admins, window, now_ms)?;
        {
            // Bumped under the write lock, so no slice of a snapshot sees
            // the new state with the old generation.
            let mut state = self.write();
            *state = fresh;
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
        self.unsaved.store(true, Ordering::SeqCst);
        let _ = self.changes.send(SessionChange::Rebuilt);
        Ok(())
    }

    /// Folds the held-back entries that are due at `now_ms`. Returns true if
    /// one of them is an admin's: the membership may change, so everything
    /// must be re-folded.
    fn tick(&self, now_ms: u64) -> bool {
        let mut state = self.write();
        let released = state.view.release(now_ms);
        if released > 0 {
            self.unsaved.store(true, Ordering::SeqCst);
        }
        let admin_due = state
            .admin_held_until
            .is_some_and(|wall| !is_beyond_drift(Timestamp::new(wall, 0), now_ms));
        drop(state);
        if released > 0 {
            let _ = self.changes.send(SessionChange::Rebuilt);
        }
        admin_due
    }

    /// Prunes the view at the last multiple of [`PRUNE_STEP_MS`] of
    /// `now_ms`, once per step (see [`SessionView::expire`]): nodes whose
    /// clocks agree prune at the same horizons, so nodes holding the same
    /// entries have the same digest (spec/SESSIONS.md §3).
    fn expire(&self, now_ms: u64) {
        let horizon = now_ms - now_ms % PRUNE_STEP_MS;
        if horizon <= self.read().view.horizon_ms() {
            return;
        }
        let mut state = self.write();
        if state.view.expire(horizon) > 0 {
            // A snapshot being written would mix two horizons.
            self.generation.fetch_add(1, Ordering::SeqCst);
            self.unsaved.store(true, Ordering::SeqCst);
        }
    }

    /// Saves the view as a snapshot in `store` if anything was folded since
    /// the last one; returns the snapshot's size in bytes (0: nothing to
    /// save, or a refold or a retention drop came in between and the next
    /// checkpoint tries again). The view is encoded [`SNAPSHOT_SLICE`]
    /// records at a time, each under a read lock of its own, so folds wait
    /// at most one slice (spec/SESSIONS.md §6.7 "When it is saved").
    fn checkpoint(&self, store: &dyn Store) -> Result<usize, StoreError> {
        if !self.unsaved.swap(false, Ordering::SeqCst) {
            return Ok(0);
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let mut writer = {
            let state = self.read();
            let mut covered = BTreeMap::new();
            for (&feed, &seq) in &state.covered {
                let entry = store
                    .entry(&feed, seq)?
                    .ok_or_else(|| StoreError::Corrupt(format!("{feed}: entry {seq} was folded but is not stored")))?;
                covered.insert(feed, (seq, entry.hash()));
            }
            SnapshotWriter::begin(&Snapshot {
                covered,
                membership: state.membership.clone(),
                frozen: state.frozen.clone(),
                malformed: state.malformed,
                admin_held_until: state.admin_held_until,
                view: &state.view,
            })
        };
        loop {
            let state = self.read();
            if self.generation.load(Ordering::SeqCst) != generation {
                self.unsaved.store(true, Ordering::SeqCst);
                return Ok(0);
            }
            if writer.write_records(&state.view, SNAPSHOT_SLICE) {
                break;
            }
            drop(state);
            std::thread::sleep(SNAPSHOT_PAUSE);
        }
        let bytes = writer.finish();
        store.save_snapshot(SNAPSHOT_NAME, &bytes).inspect_err(|_| {
            self.unsaved.store(true, Ordering::SeqCst);
        })?;
        Ok(bytes.len())
    }

    /// The admins' and every admitted member's feeds, or `None` in an open
    /// network.
    fn taken_feeds(&self) -> Option<BTreeSet<FeedId>> {
        let state = self.read();
        let membership = &state.membership;
        (!membership.is_open()).then(|| {
            membership
                .admins()
                .copied()
                .chain(membership.members().map(|m| m.feed))
                .collect()
        })
    }

    /// Whether an admin removed `feed` from the membership.
    fn is_removed(&self, feed: &FeedId) -> bool {
        self.read().membership.is_removed(feed)
    }

    /// Whether an admin admitted `feed` to the membership.
    fn is_admitted(&self, feed: &FeedId) -> bool {
        self.read().membership.admitted_from(feed).is_some()
    }
}

/// Folds every entry `store` holds under the rules of spec/SESSIONS.md:
/// first the admins' feeds into the membership (which starts as `admins`,
/// the configured admins alone), then every feed into the view.
fn fold_store(
    store: &dyn Store,
    admins: &Membership,
    window: HistoryWindow,
    now_ms: u64,
) -> Result<Folding, StoreError> {
    let frozen = store
        .forks()?
        .iter()
        .map(|proof| (proof.author(), proof.seq()))
        .collect();
    let mut state = Folding::new(admins.clone(), frozen, window);
    let clock = store.clock()?;
    if !state.membership.is_open() {
        for (&feed, &latest) in clock.iter().filter(|(feed, _)| admins.is_admin(feed)) {
            for_each_record(store, feed, 1, latest, |entry, payload| {
                if state.below_fork(feed, entry.seq())
                    && !state.admin_entry_held(entry, now_ms)
                    && let Some(ops) = state.decode(payload)
                {
                    state.membership.apply(feed, &ops);
                }
            })?;
        }
        // Counted again in the second pass.
        state.malformed = 0;
    }
    for (&feed, &latest) in &clock {
        for_each_record(store, feed, 1, latest, |entry, payload| {
            // The membership is complete: an admin's entry offered again
            // changes nothing, so the outcome is a fold or a skip.
            let _ = state.offer(entry, payload, now_ms, false);
        })?;
        // Entries without a payload are covered too: they fold as nothing.
        state.covered.insert(feed, latest);
    }
    Ok(state)
}

/// The view of `store` from its snapshot and the entries stored after it,
/// with how many entries that folded; `None` if there is no snapshot or it
/// cannot be trusted (it does not decode, was made for other admins, another
/// history window or other forks, names an entry the store does not hold with the same hash),
/// or if an entry after it changes the membership: the caller then folds
/// everything (spec/SESSIONS.md §6.7).
fn restore(
    store: &dyn Store,
    admins: &Membership,
    window: HistoryWindow,
    now_ms: u64,
) -> Result<Option<(Folding, u64)>, StoreError> {
    let Some(bytes) = store.snapshot(SNAPSHOT_NAME)? else {
        return Ok(None);
    };
    let snapshot = match Snapshot::decode(&bytes) {
        Ok(snapshot) => snapshot,
        Err(error) => {
            tracing::warn!(%error, "the view snapshot does not decode; folding every entry");
            return Ok(None);
        }
    };
    if !snapshot.membership.admins().eq(admins.admins()) {
        tracing::info!("the view snapshot was made for other admins; folding every entry");
        return Ok(None);
    }
    if snapshot.view.window() != window {
        tracing::info!("the view snapshot was made for another history window; folding every entry");
        return Ok(None);
    }
    let forks: BTreeMap<FeedId, u64> = store.forks()?.iter().map(|p| (p.author(), p.seq())).collect();
    if forks != snapshot.frozen {
        tracing::info!("fork proofs changed since the view snapshot; folding every entry");
        return Ok(None);
    }
    for (feed, (seq, hash)) in &snapshot.covered {
        if store.entry(feed, *seq)?.is_none_or(|entry| entry.hash() != *hash) {
            tracing::warn!(%feed, seq, "the view snapshot covers an entry the store does not hold; folding every entry");
            return Ok(None);
        }
    }
    let mut state = Folding::restored(snapshot);
    let mut folded = 0;
    let mut membership_changed = false;
    for (feed, latest) in store.clock()? {
        let from = state.covered.get(&feed).map_or(1, |seq| seq + 1);
        for_each_record(store, feed, from, latest, |entry, payload| {
            folded += 1;
            membership_changed |=
                !membership_changed && matches!(state.offer(entry, payload, now_ms, false), Outcome::MembershipChanged);
        })?;
        if membership_changed {
            tracing::info!("an entry after the view snapshot changes the membership; folding every entry");
            return Ok(None);
        }
        state.covered.insert(feed, latest);
    }
    Ok(Some((state, folded)))
}

/// Calls `f` on every record of `feed` from `from` to `latest` that has its
/// payload.
fn for_each_record(
    store: &dyn Store,
    feed: FeedId,
    from: u64,
    latest: u64,
    mut f: impl FnMut(&Entry, &[u8]),
) -> Result<(), StoreError> {
    for records in pages(store, feed, from, latest, REBUILD_CHUNK) {
        for (entry, payload) in &records? {
            if let Some(payload) = payload {
                f(entry, payload);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::Keypair;
    use crate::store::MemoryStore;
    use crate::view::encode_ops;
    use crate::writer::FeedWriter;

    const NOW: u64 = 1_800_000_000_000;

    #[test]
    fn an_admins_entry_dated_ahead_changes_the_membership_only_once_due() {
        let store = MemoryStore::new();
        let admin = Keypair::generate().unwrap();
        let member = FeedId([9; 32]);
        let ahead = NOW + 2 * crate::clock::MAX_DRIFT_MS;
        let mut writer = FeedWriter::open(&store, admin.clone()).unwrap();
        let payload = encode_ops(&[Op::AddMember {
            feed: member,
            from_seq: 1,
        }])
        .unwrap();
        writer.append(&store, &[&payload], ahead).unwrap();

        let admins = [admin.feed_id()];
        let view = LiveView::open(&store, &admins, HistoryWindow::default(), NOW).unwrap();
        assert_eq!(view.read().membership.admitted_from(&member), None, "held back");
        assert!(!view.tick(NOW + 1), "not due yet");
        assert!(view.tick(ahead), "due: the caller re-folds");
        view.refold(&store, ahead).unwrap();
        assert_eq!(view.read().membership.admitted_from(&member), Some(1));
        assert!(!view.tick(ahead + 1));
    }
}
