//! The session view (spec/SESSIONS.md): order independence, revocation,
//! expiry, owner revocation, clock skew, held-back entries, malformed
//! payloads, membership (§5), and every worked example of §4 and §5.5.

use feedmesh::clock::{HybridClock, MAX_DRIFT_MS, Timestamp};
use feedmesh::feed::FeedId;
use feedmesh::fuzzing::{SessionEntry, session_reference};
use feedmesh::view::{HistoryWindow, Member, Membership, Offered, Op, SessionView, decode_ops, encode_ops};
use proptest::prelude::*;

const A: FeedId = FeedId([1; 32]);
const B: FeedId = FeedId([2; 32]);
const C: FeedId = FeedId([3; 32]);
/// The admin of the membership examples (§5.5).
const D: FeedId = FeedId([4; 32]);

fn t(wall: u64, logical: u16) -> Timestamp {
    Timestamp::new(wall, logical)
}

fn put(key: &str, value: &str, ttl_ms: u64, owner: Option<&str>) -> Op {
    Op::Put {
        key: key.into(),
        value: value.into(),
        ttl_ms,
        owner: owner.map(|o| o.as_bytes().to_vec()),
    }
}

fn touch(key: &str, ttl_ms: u64, put: Timestamp) -> Op {
    Op::Touch {
        key: key.into(),
        ttl_ms,
        put,
    }
}

fn revoke(key: &str) -> Op {
    Op::Revoke { key: key.into() }
}

fn revoke_owner(owner: &str) -> Op {
    Op::RevokeOwner { owner: owner.into() }
}

fn add(feed: FeedId, from_seq: u64) -> Op {
    Op::AddMember { feed, from_seq }
}

fn remove(feed: FeedId, from_seq: u64) -> Op {
    Op::RemoveMember { feed, from_seq }
}

type Entry = SessionEntry;

fn fold(entries: &[Entry]) -> SessionView {
    let mut view = SessionView::new();
    view.fold(entries.iter().map(|(a, s, t, ops)| (*a, *s, *t, ops.as_slice())));
    view
}

/// Every permutation of a few entries (Heap's algorithm).
fn permutations(entries: &[Entry]) -> Vec<Vec<Entry>> {
    fn heap(k: usize, v: &mut Vec<Entry>, out: &mut Vec<Vec<Entry>>) {
        if k <= 1 {
            out.push(v.clone());
            return;
        }
        for i in 0..k {
            heap(k - 1, v, out);
            let j = if k.is_multiple_of(2) { i } else { 0 };
            v.swap(j, k - 1);
        }
    }
    let mut out = Vec::new();
    heap(entries.len(), &mut entries.to_vec(), &mut out);
    out
}

/// Folds every permutation, checks they agree, and returns the view.
fn fold_all_orders(entries: &[Entry]) -> SessionView {
    let reference = fold(entries);
    for order in permutations(entries) {
        assert_eq!(fold(&order).digest(), reference.digest(), "order {order:?}");
    }
    reference
}

fn value(view: &SessionView, key: &str, now: u64) -> Option<String> {
    view.get(key.as_bytes(), now)
        .map(|s| String::from_utf8(s.value.clone()).unwrap())
}

#[test]
fn example_1_last_writer_wins_with_author_tie_break() {
    let view = fold_all_orders(&[
        (A, 1, t(1000, 0), vec![put("k", "v1", 10_000, None)]),
        (B, 1, t(1000, 0), vec![put("k", "v2", 5_000, None)]),
    ]);
    let s = view.get(b"k", 1000).unwrap();
    // Puts of one timestamp are one version: its expiry is their greatest.
    assert_eq!(
        (s.value.as_slice(), s.author, s.seq, s.expires_at_ms),
        (&b"v2"[..], B, 1, 11_000)
    );
}

#[test]
fn example_2_modify_then_logout_on_a_server_200ms_behind() {
    let mut a = HybridClock::new();
    let mut b = HybridClock::new();
    let created = a.tick(10_000);
    let modified = a.tick(10_050);
    // B's wall clock is 200 ms behind; it receives A's entry and observes it.
    assert!(b.observe(modified, 9_860));
    let logout = b.tick(9_860);
    assert_eq!((created, modified, logout), (t(10_000, 0), t(10_050, 0), t(10_050, 1)));
    assert!(logout > modified);
    // A, not yet having seen the logout, writes again.
    let late = a.tick(10_100);
    let view = fold_all_orders(&[
        (A, 1, created, vec![put("k", "v1", 60_000, None)]),
        (A, 2, modified, vec![put("k", "v2", 60_000, None)]),
        (B, 1, logout, vec![revoke("k")]),
        (A, 3, late, vec![put("k", "v3", 60_000, None)]),
    ]);
    assert_eq!(value(&view, "k", 10_200), None);
    assert!(view.is_revoked(b"k", 10_200));
}

#[test]
fn example_3_touch_extends_and_commutes() {
    let view = fold_all_orders(&[
        (A, 1, t(1000, 0), vec![put("k", "v", 1_000, None)]),
        (B, 1, t(1500, 0), vec![touch("k", 1_000, t(1000, 0))]),
        (C, 1, t(1200, 0), vec![touch("k", 100, t(1000, 0))]),
    ]);
    assert_eq!(view.get(b"k", 0).unwrap().expires_at_ms, 2_500);
    assert_eq!(value(&view, "k", 2_499).as_deref(), Some("v"));
    assert_eq!(value(&view, "k", 2_500), None);
}

#[test]
fn example_11_a_touch_after_expiry_changes_nothing() {
    let entries = [
        (A, 1, t(1000, 0), vec![put("k", "v", 1_000, None)]),
        (B, 1, t(2500, 0), vec![touch("k", 1_000, t(1000, 0))]),
    ];
    let view = fold_all_orders(&entries);
    assert_eq!(value(&view, "k", 1_999).as_deref(), Some("v"));
    assert_eq!(view.get(b"k", 0).unwrap().expires_at_ms, 2_000);
    assert_eq!(value(&view, "k", 2_600), None);
    // A touch at 1,900, arriving in any order, keeps it alive past 2,500:
    // then the touch at 2,500 counts too.
    let mut more = entries.to_vec();
    more.push((C, 1, t(1900, 0), vec![touch("k", 1_000, t(1000, 0))]));
    let view = fold_all_orders(&more);
    assert_eq!(view.get(b"k", 0).unwrap().expires_at_ms, 3_500);
}

#[test]
fn example_13_a_touch_extends_only_the_put_it_names_and_never_past_the_lifetime() {
    let window = HistoryWindow::new(10_000, 0).unwrap();
    let fold_in = |entries: &[Entry]| {
        let mut view = SessionView::with_window(window);
        view.fold(entries.iter().map(|(a, s, t, ops)| (*a, *s, *t, ops.as_slice())));
        for order in permutations(entries) {
            let mut other = SessionView::with_window(window);
            other.fold(order.iter().map(|(a, s, t, ops)| (*a, *s, *t, ops.as_slice())));
            assert_eq!(other.digest(), view.digest(), "order {order:?}");
        }
        view
    };
    let entries = [
        (A, 1, t(1000, 0), vec![put("k", "v1", 5_000, None)]),
        (B, 1, t(3000, 0), vec![touch("k", 5_000, t(1000, 0))]),
        (C, 1, t(7000, 0), vec![touch("k", 5_000, t(1000, 0))]),
    ];
    // The chain of touches reaches 12,000, capped at the put's 1,000 + L.
    let view = fold_in(&entries);
    assert_eq!(view.get(b"k", 0).unwrap().expires_at_ms, 11_000);
    // A later put (a modification) starts a new chain: touches naming the
    // old put no longer count.
    let mut modified = entries.to_vec();
    modified.push((A, 2, t(2000, 0), vec![put("k", "v2", 2_000, None)]));
    let view = fold_in(&modified);
    let s = view.get(b"k", 0).unwrap();
    assert_eq!((s.value.as_slice(), s.expires_at_ms), (&b"v2"[..], 4_000));
}

#[test]
fn example_4_log_out_everywhere() {
    let view = fold_all_orders(&[
        (A, 1, t(1000, 0), vec![put("k1", "a", 60_000, Some("u"))]),
        (B, 1, t(2000, 0), vec![revoke_owner("u")]),
        (C, 1, t(3000, 0), vec![put("k2", "b", 60_000, Some("u"))]),
        (C, 2, t(3000, 1), vec![put("k1", "c", 60_000, Some("u"))]),
        (A, 2, t(1500, 0), vec![put("k3", "d", 60_000, Some("u"))]),
    ]);
    assert_eq!(value(&view, "k1", 3_000), None);
    assert_eq!(value(&view, "k3", 3_000), None);
    assert_eq!(value(&view, "k2", 3_000).as_deref(), Some("b"));
}

#[test]
fn example_5_far_future_entries_are_held_back() {
    let now = 100_000;
    let mut view = SessionView::new();
    let ops = vec![put("k", "future", 1_000_000, None)];
    assert_eq!(
        view.offer(A, 1, t(now + MAX_DRIFT_MS + 1, 0), ops, now),
        Offered::HeldBack
    );
    assert_eq!(view.held_back(), 1);
    assert_eq!(view.get(b"k", now), None);
    let empty = SessionView::new().digest();
    assert_eq!(view.digest(), empty);
    assert_eq!(view.release(now), 0);
    assert_eq!(view.release(now + 1), 1);
    assert_eq!(view.held_back(), 0);
    assert_eq!(value(&view, "k", now + 1).as_deref(), Some("future"));
    // Within the drift: folded at once.
    assert_eq!(
        view.offer(B, 1, t(now + MAX_DRIFT_MS, 0), vec![revoke("k")], now),
        Offered::Folded
    );
    assert_eq!(view.get(b"k", now + 1), None);
}

#[test]
fn example_12_a_logout_from_a_clock_ahead_folds_at_once() {
    let now = 100_000;
    let mut view = SessionView::new();
    view.apply(
        A,
        1,
        t(now, 0),
        &[put("k", "v", 1_000_000, None), put("k2", "v", 1_000_000, None)],
    );
    let ahead = t(now + MAX_DRIFT_MS + 5_000, 0);
    let ops = vec![revoke("k"), put("k2", "late", 1_000_000, None), revoke_owner("u")];
    assert_eq!(view.offer(B, 1, ahead, ops.clone(), now), Offered::HeldBack);
    // The Revoke counts now; the rest of the entry waits.
    assert_eq!(view.get(b"k", now), None);
    assert!(view.is_revoked(b"k", now));
    assert_eq!(value(&view, "k2", now).as_deref(), Some("v"));
    assert_eq!(view.held_back(), 1);
    // Once due, the whole entry folds, to the state of folding it at once.
    assert_eq!(view.release(now + 5_000), 1);
    let mut direct = SessionView::new();
    direct.apply(
        A,
        1,
        t(now, 0),
        &[put("k", "v", 1_000_000, None), put("k2", "v", 1_000_000, None)],
    );
    direct.apply(B, 1, ahead, &ops);
    assert_eq!(view.digest(), direct.digest());
    assert_eq!(value(&view, "k2", now + 5_000).as_deref(), Some("late"));
}

#[test]
fn example_6_malformed_payload_folds_as_nothing() {
    let mut view = SessionView::new();
    view.apply(A, 1, t(1000, 0), &[put("k", "v", 1_000, None)]);
    let before = view.digest();
    assert!(
        view.offer_payload(B, 1, t(1001, 0), &[0x81, 0x82, 0x09, 0x41, 0x01], 1001)
            .is_err()
    );
    assert_eq!(view.digest(), before);
}

#[test]
fn malformed_payloads_never_panic_and_never_fold() {
    let good = encode_ops(&[put("k", "v", 1_000, Some("u")), revoke("j")]).unwrap();
    let mut view = SessionView::new();
    let empty = view.digest();
    // Every truncation and every single-byte corruption.
    for len in 0..good.len() {
        assert!(view.offer_payload(A, 1, t(1, 0), &good[..len], 1).is_err());
    }
    for i in 0..good.len() {
        for flip in [0x01, 0x20, 0xff] {
            let mut bad = good.clone();
            bad[i] ^= flip;
            if let Ok(ops) = decode_ops(&bad) {
                assert_eq!(encode_ops(&ops).unwrap(), bad);
            }
        }
    }
    assert_eq!(view.digest(), empty);
    assert_eq!(view.offer_payload(A, 1, t(1, 0), &good, 1), Ok(Offered::Folded));
    assert_eq!(value(&view, "k", 1).as_deref(), Some("v"));
}

#[test]
fn revocation_wins_against_concurrent_puts_from_three_authors() {
    for revoke_at in [t(500, 0), t(1000, 0), t(1000, 1), t(2000, 0)] {
        for revoker in [A, B, C] {
            let mut entries = vec![
                (A, 1, t(1000, 0), vec![put("k", "a", 60_000, None)]),
                (B, 1, t(1000, 0), vec![put("k", "b", 60_000, None)]),
                (
                    C,
                    1,
                    t(1500, 0),
                    vec![put("k", "c", 60_000, None), touch("k", 60_000, t(1500, 0))],
                ),
            ];
            entries.push((revoker, 9, revoke_at, vec![revoke("k")]));
            let view = fold_all_orders(&entries);
            assert_eq!(view.get(b"k", 1500), None);
            assert!(view.is_revoked(b"k", 1500));
            assert!(view.is_empty());
        }
    }
}

#[test]
fn expiry_reads_absent_and_expire_drops_what_the_window_left_behind() {
    let window = HistoryWindow::default();
    let (lifetime, reach) = (window.lifetime_ms(), window.reach_ms());
    let mut view = SessionView::new();
    view.apply(A, 1, t(1000, 0), &[put("k", "v", 1_000, None), revoke("gone")]);
    assert_eq!(view.len(), 1);
    assert!(view.get(b"k", 1_999).is_some());
    assert!(view.get(b"k", 2_000).is_none());
    // The session goes once no touch can bring it back (a lifetime after
    // its put); the revocation once it can kill no put still alive.
    assert_eq!(view.expire(1000 + lifetime - 1), 0);
    assert_eq!(view.len(), 1);
    assert_eq!(view.expire(1000 + lifetime), 1);
    assert_eq!(view.len(), 0);
    assert!(view.is_revoked(b"gone", 1000 + reach - 1));
    assert!(!view.is_revoked(b"gone", 1000 + reach));
    assert_eq!(view.expire(1000 + reach + lifetime - 1), 0);
    assert_eq!(view.expire(1000 + reach + lifetime), 1);
    let pruned = SessionView::new();
    assert_eq!(view.digest(), pruned.digest());
}

#[test]
fn owner_revocation_before_and_after() {
    // Revocation ordered before every put of the owner: sessions are alive.
    let view = fold_all_orders(&[
        (A, 1, t(1000, 0), vec![revoke_owner("u")]),
        (B, 1, t(1000, 1), vec![put("k", "v", 60_000, Some("u"))]),
        (C, 1, t(900, 0), vec![put("other", "v", 60_000, Some("w"))]),
    ]);
    assert!(view.get(b"k", 1000).is_some());
    assert!(view.get(b"other", 1000).is_some());
    // Ordered after: dead, and only that owner's.
    let view = fold_all_orders(&[
        (A, 1, t(1001, 0), vec![revoke_owner("u")]),
        (B, 1, t(1000, 1), vec![put("k", "v", 60_000, Some("u"))]),
        (
            C,
            1,
            t(900, 0),
            vec![put("other", "v", 60_000, Some("w")), put("none", "v", 60_000, None)],
        ),
    ]);
    assert!(view.get(b"k", 1000).is_none());
    assert!(view.get(b"other", 1000).is_some());
    assert!(view.get(b"none", 1000).is_some());
    // Same entry: position orders the operations.
    let view = fold(&[(
        A,
        1,
        t(5, 0),
        vec![
            put("k", "v", 60_000, Some("u")),
            revoke_owner("u"),
            put("j", "v", 60_000, Some("u")),
        ],
    )]);
    assert!(view.get(b"k", 5).is_none());
    assert!(view.get(b"j", 5).is_some());
}

#[test]
fn clock_skew_both_ways_orders_causally_later_writes_after() {
    for skew in [-200i64, 200] {
        let wall_a = 50_000u64;
        let wall_b = wall_a.checked_add_signed(skew).unwrap();
        let mut a = HybridClock::new();
        let mut b = HybridClock::new();
        // A modifies the session; B sees it and logs the user out.
        let put_ts = a.tick(wall_a);
        b.observe(put_ts, wall_b);
        let revoke_ts = b.tick(wall_b);
        assert!(revoke_ts > put_ts);
        // B logs in a new session; A sees it and modifies it: A's write wins.
        let login = b.tick(wall_b + 1);
        a.observe(login, wall_a + 1);
        let modify = a.tick(wall_a + 1);
        assert!(modify > login);
        let view = fold_all_orders(&[
            (A, 1, put_ts, vec![put("s1", "old", 60_000, None)]),
            (B, 1, revoke_ts, vec![revoke("s1")]),
            (B, 2, login, vec![put("s2", "fresh", 60_000, None)]),
            (A, 2, modify, vec![put("s2", "modified", 60_000, None)]),
        ]);
        let now = wall_a.max(wall_b) + 2;
        assert_eq!(value(&view, "s1", now), None);
        assert_eq!(value(&view, "s2", now).as_deref(), Some("modified"));
    }
}

/// The node's fold under membership (spec/SESSIONS.md §5.4), entries
/// arriving in the given order: each entry's membership operations are
/// applied; on a change the view is rebuilt from every entry held so far,
/// otherwise the entry is folded if the membership admits it.
fn arrive(initial: &Membership, order: &[Entry]) -> (Membership, SessionView) {
    let mut membership = initial.clone();
    let mut view = SessionView::new();
    for (i, (author, seq, ts, ops)) in order.iter().enumerate() {
        if membership.apply(*author, ops) {
            let admitted: Vec<Entry> = order[..=i]
                .iter()
                .filter(|(a, s, _, _)| membership.folds(*a, *s))
                .cloned()
                .collect();
            view = fold(&admitted);
        } else if membership.folds(*author, *seq) {
            view.apply(*author, *seq, *ts, ops);
        }
    }
    (membership, view)
}

/// [`arrive`] in every arrival order: checks they agree on the membership
/// and the view, and returns them.
fn arrive_all_orders(initial: &Membership, entries: &[Entry]) -> (Membership, SessionView) {
    let (membership, view) = arrive(initial, entries);
    for order in permutations(entries) {
        let (other, other_view) = arrive(initial, &order);
        assert_eq!(other, membership, "order {order:?}");
        assert_eq!(other_view.digest(), view.digest(), "order {order:?}");
    }
    (membership, view)
}

#[test]
fn example_7_admission_from_a_sequence() {
    let admins = Membership::with_admins([D]);
    let members = |more: Vec<Entry>| {
        let mut entries = vec![
            (D, 1, t(1000, 0), vec![add(A, 3)]),
            (A, 1, t(1001, 0), vec![put("a1", "v", 60_000, None)]),
            (A, 2, t(1002, 0), vec![put("a2", "v", 60_000, None)]),
            (A, 3, t(1003, 0), vec![put("a3", "v", 60_000, None)]),
            (A, 4, t(1004, 0), vec![put("a4", "v", 60_000, None)]),
            (B, 1, t(1005, 0), vec![put("b1", "v", 60_000, None)]),
        ];
        entries.extend(more);
        arrive_all_orders(&admins, &entries)
    };
    let (membership, view) = members(Vec::new());
    assert_eq!(membership.admitted_from(&A), Some(3));
    assert_eq!(membership.admitted_from(&B), None);
    assert!(!membership.folds(A, 2) && membership.folds(A, 3) && membership.folds(A, 1_000));
    assert!(!membership.folds(B, 1));
    let live = |view: &SessionView| {
        ["a1", "a2", "a3", "a4", "b1"]
            .into_iter()
            .filter(|k| view.get(k.as_bytes(), 2000).is_some())
            .collect::<Vec<_>>()
    };
    assert_eq!(live(&view), ["a3", "a4"]);
    // A second admission from 5 changes nothing; one from 1 admits 1 and 2.
    let mut later = membership.clone();
    assert!(!later.apply(D, &[add(A, 5)]));
    assert_eq!(later, membership);
    assert!(later.apply(D, &[add(A, 1)]));
    assert_eq!(later.admitted_from(&A), Some(1));
    let (membership, view) = members(vec![(D, 2, t(1006, 0), vec![add(A, 5)])]);
    assert_eq!(membership.admitted_from(&A), Some(3));
    assert_eq!(live(&view), ["a3", "a4"]);
    let (membership, view) = members(vec![(D, 2, t(1006, 0), vec![add(A, 1)])]);
    assert_eq!(membership, later);
    assert_eq!(live(&view), ["a1", "a2", "a3", "a4"]);
}

#[test]
fn example_8_removal_from_a_sequence_is_permanent() {
    let (membership, view) = arrive_all_orders(
        &Membership::with_admins([D]),
        &[
            (D, 1, t(1000, 0), vec![add(A, 1)]),
            (D, 2, t(1001, 0), vec![remove(A, 4)]),
            (D, 3, t(1002, 0), vec![add(A, 10)]),
            (A, 1, t(1003, 0), vec![put("x", "v", 60_000, None)]),
            (A, 2, t(1004, 0), vec![put("k", "v", 60_000, None)]),
            (A, 3, t(1005, 0), vec![put("y", "v", 60_000, None)]),
            (A, 4, t(1006, 0), vec![put("z", "v", 60_000, None)]),
            (A, 5, t(1007, 0), vec![revoke("k")]),
        ],
    );
    assert_eq!(
        (membership.admitted_from(&A), membership.removed_from(&A)),
        (Some(1), Some(4))
    );
    assert!(membership.is_removed(&A));
    assert!(membership.folds(A, 3) && !membership.folds(A, 4) && !membership.folds(A, 10));
    assert_eq!(
        membership.members().collect::<Vec<_>>(),
        [Member {
            feed: A,
            from_seq: 1,
            until_seq: Some(4),
        }]
    );
    for key in ["x", "y", "k"] {
        assert_eq!(value(&view, key, 2000).as_deref(), Some("v"), "{key}");
    }
    assert_eq!(value(&view, "z", 2000), None);
    assert!(!view.is_revoked(b"k", 2000));
}

#[test]
fn example_9_only_admins_count_and_admins_stay() {
    let (membership, view) = arrive_all_orders(
        &Membership::with_admins([D]),
        &[
            (B, 1, t(1000, 0), vec![add(C, 1), remove(D, 1)]),
            (D, 1, t(1001, 0), vec![remove(D, 1), put("d", "v", 60_000, None)]),
            (C, 1, t(1002, 0), vec![put("c", "v", 60_000, None)]),
        ],
    );
    assert_eq!(membership.admitted_from(&C), None);
    assert!(!membership.is_removed(&D) && !membership.is_removed(&B));
    assert!(membership.folds(D, 1) && membership.folds(D, 1_000));
    assert_eq!(membership.members().count(), 0);
    assert_eq!(value(&view, "d", 2000).as_deref(), Some("v"));
    assert_eq!(value(&view, "c", 2000), None);
}

#[test]
fn example_10_open_network() {
    let (membership, view) = arrive_all_orders(
        &Membership::open(),
        &[
            (D, 1, t(1000, 0), vec![remove(A, 1)]),
            (A, 1, t(1001, 0), vec![put("a", "v", 60_000, None)]),
        ],
    );
    assert!(membership.is_open());
    assert!(!membership.is_removed(&A));
    assert!(membership.folds(A, 1));
    assert_eq!(value(&view, "a", 2000).as_deref(), Some("v"));
}

#[test]
fn membership_operations_leave_the_session_state_alone() {
    let ops = vec![add(A, 1), remove(B, 2), put("k", "v", 1_000, None)];
    let mut view = SessionView::new();
    view.apply(A, 1, t(1000, 0), &ops[..2]);
    assert_eq!(view.digest(), SessionView::new().digest());
    let payload = encode_ops(&ops).unwrap();
    assert_eq!(decode_ops(&payload).unwrap(), ops);
    let mut offered = SessionView::new();
    assert_eq!(
        offered.offer_payload(A, 1, t(1000, 0), &payload, 1000),
        Ok(Offered::Folded)
    );
    // Only the put touched the state; it keeps its position in the batch.
    assert_eq!(offered.len(), 1);
    assert_eq!(offered.get(b"k", 1000).map(|s| s.id.position), Some(2));
}

/// The membership of spec/SESSIONS.md §5.2 computed directly from the set of
/// entries: `(admitted_from, removed_from)` of `feed`.
fn membership_reference(admins: &[FeedId], entries: &[Entry], feed: FeedId) -> (Option<u64>, Option<u64>) {
    let counted = || {
        entries
            .iter()
            .filter(|(author, ..)| admins.contains(author))
            .flat_map(|(_, _, _, ops)| ops)
            .filter(|_| !admins.contains(&feed))
    };
    let admitted = counted()
        .filter_map(|op| match op {
            Op::AddMember { feed: f, from_seq } if *f == feed => Some(*from_seq),
            _ => None,
        })
        .min();
    let removed = counted()
        .filter_map(|op| match op {
            Op::RemoveMember { feed: f, from_seq } if *f == feed => Some(*from_seq),
            _ => None,
        })
        .min();
    (admitted, removed)
}

fn arb_member_op() -> impl Strategy<Value = Op> {
    (any::<bool>(), 0..4usize, 1..6u64).prop_map(|(adds, f, from)| {
        let feed = [A, B, C, D][f];
        if adds { add(feed, from) } else { remove(feed, from) }
    })
}

fn arb_member_entries() -> impl Strategy<Value = Vec<Entry>> {
    proptest::collection::vec((0..3usize, proptest::collection::vec(arb_member_op(), 1..3)), 1..7).prop_map(|raw| {
        raw.into_iter()
            .enumerate()
            .map(|(i, (a, ops))| ([A, B, D][a], i as u64 + 1, t(i as u64, 0), ops))
            .collect()
    })
}

const KEYS: [&str; 3] = ["k1", "k2", "k3"];
const OWNERS: [&str; 2] = ["u", "w"];

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3usize, 0..3u8, 1..50u64, proptest::option::of(0..2usize)).prop_map(|(k, v, ttl, o)| Op::Put {
            key: KEYS[k].into(),
            value: vec![v],
            ttl_ms: ttl,
            owner: o.map(|o| OWNERS[o].into()),
        }),
        2 => (0..3usize, 1..50u64, 0..20u64, 0..2u16).prop_map(|(k, ttl, wall, logical)| touch(KEYS[k], ttl, t(wall, logical))),
        1 => (0..3usize).prop_map(|k| revoke(KEYS[k])),
        1 => (0..2usize).prop_map(|o| revoke_owner(OWNERS[o])),
    ]
}

fn arb_entries() -> impl Strategy<Value = Vec<Entry>> {
    proptest::collection::vec(
        (0..3usize, 0..20u64, 0..2u16, proptest::collection::vec(arb_op(), 1..4)),
        1..8,
    )
    .prop_map(|raw| {
        raw.into_iter()
            .enumerate()
            .map(|(i, (a, wall, logical, ops))| ([A, B, C][a], i as u64, t(wall, logical), ops))
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn any_arrival_order_gives_the_same_digest(
        (entries, shuffled) in arb_entries().prop_flat_map(|e| (Just(e.clone()), Just(e).prop_shuffle()))
    ) {
        let reference = fold(&entries);
        prop_assert_eq!(fold(&shuffled).digest(), reference.digest());
        // Idempotent: folding everything twice changes nothing.
        let mut twice = fold(&shuffled);
        twice.fold(entries.iter().map(|(a, s, t, ops)| (*a, *s, *t, ops.as_slice())));
        prop_assert_eq!(twice.digest(), reference.digest());
        // Every read agrees too.
        let other = fold(&shuffled);
        for key in KEYS {
            for now in [0, 10, 30, 60] {
                prop_assert_eq!(other.get(key.as_bytes(), now), reference.get(key.as_bytes(), now));
                let got = other.get(key.as_bytes(), now).map(|s| (s.value.clone(), s.expires_at_ms, s.author, s.seq));
                prop_assert_eq!(got, session_reference(&entries, HistoryWindow::default(), key.as_bytes(), now));
            }
        }
    }

    #[test]
    fn held_back_entries_fold_to_the_same_state_once_released(entries in arb_entries(), now in 0..20u64) {
        // Dated up to 20 ms beyond now + MAX_DRIFT_MS.
        let entries: Vec<Entry> = entries
            .into_iter()
            .map(|(a, s, ts, ops)| (a, s, t(ts.wall_ms() + MAX_DRIFT_MS, ts.logical()), ops))
            .collect();
        let mut view = SessionView::new();
        for (a, s, ts, ops) in &entries {
            let expected = if ts.wall_ms() > now + MAX_DRIFT_MS { Offered::HeldBack } else { Offered::Folded };
            prop_assert_eq!(view.offer(*a, *s, *ts, ops.clone(), now), expected);
        }
        let held = entries.iter().filter(|e| e.2.wall_ms() > now + MAX_DRIFT_MS).count();
        prop_assert_eq!(view.held_back(), held);
        prop_assert_eq!(view.release(20), held);
        prop_assert_eq!(view.held_back(), 0);
        prop_assert_eq!(view.digest(), fold(&entries).digest());
    }

    #[test]
    fn membership_is_the_same_in_any_order_and_matches_the_rules(
        (entries, shuffled) in arb_member_entries().prop_flat_map(|e| (Just(e.clone()), Just(e).prop_shuffle())),
        two_admins in any::<bool>(),
    ) {
        let admins: &[FeedId] = if two_admins { &[A, D] } else { &[D] };
        let apply = |order: &[Entry]| {
            let mut membership = Membership::with_admins(admins.iter().copied());
            for (author, _, _, ops) in order {
                membership.apply(*author, ops);
            }
            membership
        };
        let membership = apply(&entries);
        prop_assert_eq!(&apply(&shuffled), &membership);
        // Idempotent: everything again changes nothing.
        let mut twice = apply(&shuffled);
        for (author, _, _, ops) in &entries {
            prop_assert!(!twice.apply(*author, ops));
        }
        prop_assert_eq!(&twice, &membership);
        for feed in [A, B, C, D] {
            let (admitted, removed) = membership_reference(admins, &entries, feed);
            prop_assert_eq!(membership.admitted_from(&feed), admitted);
            prop_assert_eq!(membership.removed_from(&feed), removed);
            prop_assert_eq!(membership.is_removed(&feed), removed.is_some());
            for seq in 1..8 {
                let expected = admins.contains(&feed)
                    || (admitted.is_some_and(|a| a <= seq) && removed.is_none_or(|r| seq < r));
                prop_assert_eq!(membership.folds(feed, seq), expected);
            }
        }
        // An open network ignores every operation.
        let mut open = Membership::open();
        for (author, _, _, ops) in &entries {
            prop_assert!(!open.apply(*author, ops));
        }
        prop_assert_eq!(open, Membership::open());
    }

    #[test]
    fn codec_round_trips(ops in proptest::collection::vec(arb_op(), 0..6)) {
        let bytes = encode_ops(&ops).unwrap();
        prop_assert_eq!(decode_ops(&bytes).unwrap(), ops);
    }

    #[test]
    fn decoder_is_total(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
        if let Ok(ops) = decode_ops(&bytes) {
            prop_assert_eq!(encode_ops(&ops).unwrap(), bytes);
        }
    }
}

#[test]
fn live_keys_are_the_keys_get_answers() {
    let view = fold(&[
        (
            A,
            1,
            t(1000, 0),
            vec![put("short", "v", 10, None), put("long", "v", 5_000, Some("u"))],
        ),
        (A, 2, t(1001, 0), vec![put("gone", "v", 5_000, None), revoke("gone")]),
        (
            B,
            1,
            t(1002, 0),
            vec![put("owned", "v", 5_000, Some("w")), revoke_owner("w")],
        ),
        (B, 2, t(1003, 0), vec![touch("never-put", 5_000, t(1002, 0))]),
    ]);
    for now in [1000, 1005, 1011, 6000, 7000] {
        let mut live: Vec<&[u8]> = view.live_keys(now).collect();
        live.sort();
        let mut expected: Vec<&[u8]> = [&b"short"[..], b"long", b"gone", b"owned", b"never-put"]
            .into_iter()
            .filter(|key| view.get(key, now).is_some())
            .collect();
        expected.sort();
        assert_eq!(live, expected, "at {now}");
    }
    assert_eq!(view.live_keys(1005).count(), 2);
}
