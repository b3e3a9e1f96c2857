//! The entries backing a report: what an evidence bundle must carry so that
//! the same report can be computed from it alone (spec/AUDIT.md §4).

use std::collections::BTreeSet;

use super::ledger::Ledger;
use crate::feed::FeedId;
use crate::view::Op;

/// Entries named by `(author, seq)`.
pub(crate) type Support = BTreeSet<(FeedId, u64)>;

/// Adds to `support` every admin entry with a membership operation naming
/// an author of `support` or one of `also` (their admission and removal
/// points come from those entries).
pub(crate) fn add_membership(ledger: &Ledger, support: &mut Support, also: &[FeedId]) {
    let mut authors: BTreeSet<FeedId> = support.iter().map(|(feed, _)| *feed).collect();
    authors.extend(also);
    for admin in ledger.membership.admins() {
        for item in ledger.feed(admin) {
            let Ok(ops) = &item.ops else { continue };
            let names_one = ops.iter().any(|op| match op {
                Op::AddMember { feed, .. } | Op::RemoveMember { feed, .. } => authors.contains(feed),
                _ => false,
            });
            if names_one {
                support.insert((item.entry.author(), item.entry.seq()));
            }
        }
    }
}
