//! Membership: which feeds' entries the views fold (spec/SESSIONS.md §5).
//!
//! A network is either *open* (no admin keys: every feed is folded) or has a
//! fixed set of *admins*, set by configuration on every node. Admins are
//! always members; other feeds are admitted and removed by
//! [`Op::AddMember`] and [`Op::RemoveMember`] operations in admins' feeds.
//!
//! Like the session fold, the state is commutative, associative and
//! idempotent: per feed, the admission point is the minimum `from_seq` over
//! every admission and the removal point the minimum over every removal, so
//! any arrival order of the same operations gives the same membership. A
//! removal is permanent: a removed key is never admitted again (re-admit the
//! member with a new key).
//!
//! Membership does not fold itself into a [`crate::view::SessionView`]: when
//! [`Membership::apply`] reports a change, the node re-folds the view from
//! its stored entries, keeping those [`Membership::folds`] accepts.

use std::collections::{BTreeMap, BTreeSet};

use super::ops::Op;
use crate::feed::FeedId;

/// The membership of a network: its admins, and the admission and removal
/// points of every other feed named by an admin.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Membership {
    /// `None` for an open network (never an empty set).
    admins: Option<BTreeSet<FeedId>>,
    /// Per feed, the least `from_seq` of its admissions.
    admitted: BTreeMap<FeedId, u64>,
    /// Per feed, the least `from_seq` of its removals.
    removed: BTreeMap<FeedId, u64>,
}

/// An admitted feed and the range of its entries that is folded, as listed
/// by [`Membership::members`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    /// The member's feed.
    pub feed: FeedId,
    /// The first folded entry (the least `from_seq` of its admissions).
    pub from_seq: u64,
    /// The first entry no longer folded (the least `from_seq` of its
    /// removals), or `None` while it is not removed. When `until_seq <=
    /// from_seq` no entry is folded.
    pub until_seq: Option<u64>,
}

/// Lowers the point held for `feed` to `from_seq`; whether it changed.
fn lower(points: &mut BTreeMap<FeedId, u64>, feed: FeedId, from_seq: u64) -> bool {
    match points.get_mut(&feed) {
        Some(point) if *point <= from_seq => false,
        Some(point) => {
            *point = from_seq;
            true
        }
        None => {
            points.insert(feed, from_seq);
            true
        }
    }
}

impl Membership {
    /// An open network: no admins, every feed's entries are folded.
    pub fn open() -> Membership {
        Membership::default()
    }

    /// A network administered by `admins`; no admin at all is an open
    /// network ([`Membership::open`]).
    pub fn with_admins(admins: impl IntoIterator<Item = FeedId>) -> Membership {
        let admins: BTreeSet<FeedId> = admins.into_iter().collect();
        Membership {
            admins: (!admins.is_empty()).then_some(admins),
            ..Membership::default()
        }
    }

    /// The membership with these admins and these admission and removal
    /// points (as [`Membership::points`] gives them), for a snapshot.
    pub(crate) fn from_points(
        admins: impl IntoIterator<Item = FeedId>,
        admitted: BTreeMap<FeedId, u64>,
        removed: BTreeMap<FeedId, u64>,
    ) -> Membership {
        Membership {
            admitted,
            removed,
            ..Membership::with_admins(admins)
        }
    }

    /// The admission and removal points, per feed, for a snapshot.
    pub(crate) fn points(&self) -> (&BTreeMap<FeedId, u64>, &BTreeMap<FeedId, u64>) {
        (&self.admitted, &self.removed)
    }

    /// Whether the network is open (has no admins).
    pub fn is_open(&self) -> bool {
        self.admins.is_none()
    }

    /// The admins, in feed id order (none for an open network).
    pub fn admins(&self) -> impl Iterator<Item = &FeedId> {
        self.admins.iter().flatten()
    }

    /// Whether `feed` is an admin.
    pub fn is_admin(&self, feed: &FeedId) -> bool {
        self.admins.as_ref().is_some_and(|admins| admins.contains(feed))
    }

    /// Folds the membership operations of one entry by `author`. Only an
    /// admin's operations count: everything else (an open network, a
    /// non-admin author, operations naming an admin, session operations) is
    /// ignored. Idempotent and commutative. Returns whether the membership
    /// changed, in which case the node re-folds its views.
    pub fn apply(&mut self, author: FeedId, ops: &[Op]) -> bool {
        if !self.is_admin(&author) {
            return false;
        }
        let mut changed = false;
        for op in ops {
            let (points, feed, from_seq) = match op {
                Op::AddMember { feed, from_seq } => (&mut self.admitted, feed, from_seq),
                Op::RemoveMember { feed, from_seq } => (&mut self.removed, feed, from_seq),
                _ => continue,
            };
            if self.admins.as_ref().is_some_and(|admins| admins.contains(feed)) {
                continue;
            }
            changed |= lower(points, *feed, *from_seq);
        }
        changed
    }

    /// Whether the views fold entry `seq` of `author`: always in an open
    /// network and for an admin; otherwise when `admitted_from <= seq` and
    /// the feed is not removed at or before `seq`.
    pub fn folds(&self, author: FeedId, seq: u64) -> bool {
        if self.admins.is_none() || self.is_admin(&author) {
            return true;
        }
        self.admitted_from(&author).is_some_and(|from| from <= seq)
            && self.removed_from(&author).is_none_or(|until| seq < until)
    }

    /// Whether a removal is held for `feed` (the transport refuses it). Never
    /// true in an open network nor for an admin.
    pub fn is_removed(&self, feed: &FeedId) -> bool {
        self.removed.contains_key(feed)
    }

    /// The first folded entry of `feed` (the least `from_seq` of its
    /// admissions), or `None` if no admin admitted it.
    pub fn admitted_from(&self, feed: &FeedId) -> Option<u64> {
        self.admitted.get(feed).copied()
    }

    /// The first entry of `feed` no longer folded (the least `from_seq` of
    /// its removals), or `None` if no admin removed it.
    pub fn removed_from(&self, feed: &FeedId) -> Option<u64> {
        self.removed.get(feed).copied()
    }

    /// Every admitted feed (admins excluded) with the range of its folded
    /// entries, in feed id order; for status and audit.
    pub fn members(&self) -> impl Iterator<Item = Member> + '_ {
        self.admitted.iter().map(|(feed, from_seq)| Member {
            feed: *feed,
            from_seq: *from_seq,
            until_seq: self.removed_from(feed),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADMIN: FeedId = FeedId([1; 32]);
    const M: FeedId = FeedId([2; 32]);

    fn add(feed: FeedId, from_seq: u64) -> Op {
        Op::AddMember { feed, from_seq }
    }

    fn remove(feed: FeedId, from_seq: u64) -> Op {
        Op::RemoveMember { feed, from_seq }
    }

    #[test]
    fn an_empty_admin_set_is_open_and_open_ignores_everything() {
        let mut open = Membership::with_admins([]);
        assert_eq!(open, Membership::open());
        assert!(open.is_open());
        assert_eq!(open.admins().count(), 0);
        assert!(!open.apply(ADMIN, &[add(M, 3), remove(M, 5)]));
        assert!(open.folds(M, 1) && open.folds(M, 100));
        assert!(!open.is_removed(&M));
        assert_eq!(open.members().count(), 0);
    }

    #[test]
    fn apply_reports_changes_only() {
        let mut m = Membership::with_admins([ADMIN]);
        assert!(!m.is_open());
        assert_eq!(m.admins().collect::<Vec<_>>(), vec![&ADMIN]);
        assert!(m.apply(ADMIN, &[add(M, 5)]));
        assert!(!m.apply(ADMIN, &[add(M, 5), add(M, 9)]));
        assert!(m.apply(ADMIN, &[add(M, 2)]));
        assert!(m.apply(ADMIN, &[remove(M, 10)]));
        assert!(!m.apply(ADMIN, &[remove(M, 11)]));
        assert_eq!(
            m.members().collect::<Vec<_>>(),
            vec![Member {
                feed: M,
                from_seq: 2,
                until_seq: Some(10),
            }]
        );
        assert!(!m.folds(M, 1) && m.folds(M, 2) && m.folds(M, 9) && !m.folds(M, 10));
    }
}
