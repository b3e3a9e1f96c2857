//! Skip links (Bamboo's "lipmaa" links) and certificate paths
//! (spec/PROTOCOL.md §1.4).
//!
//! Entry `n` links to `n - 1` (its predecessor) and to `lipmaa(n)`, an earlier
//! entry chosen so that from any entry the path to entry 1 that follows only
//! skip links has O(log n) hops. That path is the entry's *certificate path*:
//! with it, an entry (or a chunk starting at it) can be verified against the
//! start of the feed without holding the prefix in between.

/// The target of entry `seq`'s skip link, or `0` for `seq <= 1` (no target).
///
/// Defined for every `seq` up to [`crate::feed::MAX_SEQ`]; the arithmetic is
/// done in `u128` so it cannot overflow.
pub fn lipmaa(seq: u64) -> u64 {
    if seq <= 1 {
        return 0;
    }
    let n = u128::from(seq);
    // Find the smallest k with (3^k - 1) / 2 >= n.
    let mut m: u128 = 1;
    let mut po3: u128 = 3;
    while m < n {
        po3 *= 3;
        m = (po3 - 1) / 2;
    }
    po3 /= 3;
    if m != n {
        let mut u = n;
        while u != 0 {
            m = (po3 - 1) / 2;
            po3 /= 3;
            u %= m;
        }
        if m != po3 {
            po3 = m;
        }
    }
    // po3 <= n - 1 here, so the result fits in u64 and is at least 1.
    (n - po3) as u64
}

/// Whether entry `seq` carries a skip link: only when its target differs from
/// its predecessor (otherwise the `prev` link already covers it).
pub fn has_skip_link(seq: u64) -> bool {
    seq > 1 && lipmaa(seq) != seq - 1
}

/// The sequence numbers on the certificate path of entry `seq`, from `seq`
/// itself down to 1, following skip links (or the `prev` link where the skip
/// target is the predecessor). Empty for `seq == 0`.
pub fn certificate_path(seq: u64) -> Vec<u64> {
    let mut path = Vec::new();
    let mut at = seq;
    while at >= 1 {
        path.push(at);
        at = lipmaa(at);
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_bamboo_table() {
        // (n, lipmaa(n)) as tabulated in the Bamboo specification.
        let table = [
            (2, 1),
            (3, 2),
            (4, 1),
            (5, 4),
            (6, 5),
            (7, 6),
            (8, 4),
            (9, 8),
            (12, 8),
            (13, 4),
            (14, 13),
            (17, 13),
            (21, 17),
            (25, 21),
            (26, 13),
            (30, 26),
            (39, 26),
            (40, 13),
            (121, 40),
        ];
        for (n, expected) in table {
            assert_eq!(lipmaa(n), expected, "lipmaa({n})");
        }
        assert_eq!(lipmaa(0), 0);
        assert_eq!(lipmaa(1), 0);
    }

    #[test]
    fn always_points_backwards_and_paths_are_short() {
        for n in 2..5000u64 {
            let target = lipmaa(n);
            assert!(target >= 1 && target < n, "lipmaa({n}) = {target}");
        }
        assert!(certificate_path(1_000_000).len() <= 40);
        assert_eq!(certificate_path(13), vec![13, 4, 1]);
        let big = crate::feed::MAX_SEQ;
        assert!(lipmaa(big) < big);
    }
}
