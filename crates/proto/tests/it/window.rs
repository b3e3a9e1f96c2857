//! The history window (spec/SESSIONS.md §2.6): random histories spanning
//! several windows, folded whole and folded from the window only, give the
//! same digest and the same reads once both views are pruned at the same
//! time; and pruning as the fold goes changes nothing either.

use feedmesh_proto::clock::Timestamp;
use feedmesh_proto::feed::FeedId;
use feedmesh_proto::rng::SplitMix64;
use feedmesh_proto::view::{HistoryWindow, Op, SessionView};

/// `L` = 100 s, `M` = 20 s: reach 80 s (with the drift bound), window 280 s.
fn window() -> HistoryWindow {
    HistoryWindow::new(100_000, 20_000).expect("in range")
}

type Entry = (FeedId, u64, Timestamp, Vec<Op>);

const KEYS: u64 = 6;

/// A history over 1,000 s (more than three windows): puts, touches naming
/// puts that exist (and some that do not), revokes, owner revocations,
/// ttls above the lifetime, and authors whose clocks disagree.
fn history(rng: &mut SplitMix64, count: usize) -> Vec<Entry> {
    let mut seqs = [0u64; 3];
    let mut puts: Vec<Vec<Timestamp>> = vec![Vec::new(); KEYS as usize];
    let mut entries = Vec::new();
    for _ in 0..count {
        let author = (rng.next_u64() % 3) as usize;
        seqs[author] += 1;
        let timestamp = Timestamp::new(1_000 * (rng.next_u64() % 1_000), (rng.next_u64() % 3) as u16);
        let ops = (0..1 + rng.next_u64() % 3)
            .map(|_| {
                let k = (rng.next_u64() % KEYS) as usize;
                let key = format!("k{k}").into_bytes();
                let owner = format!("u{}", rng.next_u64() % 2).into_bytes();
                let ttl_ms = 1 + rng.next_u64() % 150_000;
                match rng.next_u64() % 12 {
                    0..=4 => {
                        puts[k].push(timestamp);
                        Op::Put {
                            key,
                            value: vec![rng.next_u64() as u8],
                            ttl_ms,
                            owner: rng.next_u64().is_multiple_of(3).then_some(owner),
                        }
                    }
                    5..=8 => {
                        let put = match puts[k].as_slice() {
                            [] => timestamp,
                            known => known[(rng.next_u64() % known.len() as u64) as usize],
                        };
                        Op::Touch { key, ttl_ms, put }
                    }
                    9 | 10 => Op::Revoke { key },
                    _ => Op::RevokeOwner { owner },
                }
            })
            .collect();
        entries.push((FeedId([author as u8 + 1; 32]), seqs[author], timestamp, ops));
    }
    entries
}

fn fold<'a>(entries: impl IntoIterator<Item = &'a Entry>) -> SessionView {
    let mut view = SessionView::with_window(window());
    for (author, seq, timestamp, ops) in entries {
        view.apply(*author, *seq, *timestamp, ops);
    }
    view
}

/// What reads answer for every key at a few times from `now` on.
fn reads(view: &SessionView, now: u64) -> Vec<Option<(Vec<u8>, u64)>> {
    (0..KEYS)
        .flat_map(|k| [0, 1_000, 50_000, 99_000].map(|after| (k, now + after)))
        .map(|(k, at)| {
            view.get(format!("k{k}").as_bytes(), at)
                .map(|s| (s.value.clone(), s.expires_at_ms))
        })
        .collect()
}

#[test]
fn folding_only_the_window_gives_the_digest_of_folding_everything() {
    let w = window().window_ms();
    let (mut pruned_some, mut live, mut revoked) = (0, 0, 0);
    for seed in 0..400 {
        let mut rng = SplitMix64::new(seed);
        let entries = history(&mut rng, 40);
        for now in [300_000, 600_000, 900_000, 1_100_000] {
            let mut whole = fold(&entries);
            let mut inside = fold(entries.iter().filter(|(_, _, ts, _)| ts.wall_ms() + w >= now));
            whole.expire(now);
            inside.expire(now);
            assert_eq!(whole.digest(), inside.digest(), "seed {seed} at {now}");
            assert_eq!(reads(&whole, now), reads(&inside, now), "seed {seed} at {now}");
            pruned_some += usize::from(entries.iter().any(|(_, _, ts, _)| ts.wall_ms() + w < now));
            live += reads(&whole, now).iter().filter(|read| read.is_some()).count();
            revoked += (0..KEYS)
                .filter(|k| whole.is_revoked(format!("k{k}").as_bytes(), now))
                .count();
        }
    }
    // The histories reach beyond the window, and leave live and revoked keys.
    assert!(pruned_some > 1_000, "{pruned_some}");
    assert!(
        live > 1_000 && revoked > 100,
        "{live} live reads, {revoked} revoked keys"
    );
}

#[test]
fn pruning_while_folding_in_any_order_gives_the_state_of_pruning_once() {
    for seed in 0..400 {
        let mut rng = SplitMix64::new(seed);
        let mut entries = history(&mut rng, 40);
        let end = 1_100_000;
        let mut once = fold(&entries);
        once.expire(end);
        // Another arrival order, with prunes at rising times in between.
        for i in (1..entries.len()).rev() {
            entries.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
        }
        let mut going = SessionView::with_window(window());
        for (i, (author, seq, timestamp, ops)) in entries.iter().enumerate() {
            going.apply(*author, *seq, *timestamp, ops);
            if i % 7 == 6 {
                going.expire(end * (i as u64 + 1) / entries.len() as u64);
            }
        }
        going.expire(end);
        assert_eq!(going.digest(), once.digest(), "seed {seed}");
        assert_eq!(reads(&going, end), reads(&once, end), "seed {seed}");
    }
}

#[test]
fn a_revocation_kills_late_puts_for_its_reach_and_no_longer() {
    let window = window();
    let (a, b) = (FeedId([1; 32]), FeedId([2; 32]));
    let mut view = SessionView::with_window(window);
    view.apply(a, 1, Timestamp::new(10_000, 0), &[Op::Revoke { key: b"k".to_vec() }]);
    let late = |view: &mut SessionView, seq: u64, wall: u64| {
        view.apply(
            b,
            seq,
            Timestamp::new(wall, 0),
            &[Op::Put {
                key: b"k".to_vec(),
                value: vec![seq as u8],
                ttl_ms: 60_000,
                owner: None,
            }],
        );
        view.get(b"k", wall).map(|s| s.value[0])
    };
    // Ordered before the revoke, and after it within the reach: killed.
    assert_eq!(late(&mut view, 1, 9_000), None);
    assert_eq!(late(&mut view, 2, 10_000 + window.reach_ms() - 1), None);
    assert!(view.is_revoked(b"k", 10_000 + window.reach_ms() - 1));
    // A put dated after the reach is a new session (keys are never reused).
    assert_eq!(late(&mut view, 3, 10_000 + window.reach_ms()), Some(3));
    assert!(!view.is_revoked(b"k", 10_000 + window.reach_ms()));
}
