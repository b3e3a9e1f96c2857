//! The member report: everything one feed wrote in a time range, with the
//! effect of each operation (spec/AUDIT.md §2.4).

use std::collections::BTreeMap;

use serde::Serialize;

use super::effects::{Effect, KeyIndex, OpAt};
use super::ledger::Ledger;
use super::lines::OpLine;
use super::support::{Support, add_membership};
use super::{AuditError, JsonLines};
use crate::feed::FeedId;
use crate::store::Store;
use crate::view::{HistoryWindow, Membership, Op};

/// The feed's standing and the range covered (the final `member` line).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MemberSummary {
    /// The feed id.
    pub feed: String,
    /// `open` (no admins), `admin`, `member`, `removed` or `not_member`.
    pub role: String,
    /// The first folded entry (least AddMember `from_seq`), or `null`.
    pub admitted_from: Option<u64>,
    /// The first entry no longer folded (least RemoveMember `from_seq`), or `null`.
    pub removed_from: Option<u64>,
    /// The sequence where the feed forked, or `null`.
    pub forked_at: Option<u64>,
    /// Entries covered: wall time in `since_ms..=until_ms`.
    pub since_ms: u64,
    /// See `since_ms`.
    pub until_ms: u64,
    /// How many entries of the feed fall in the range.
    pub entries: usize,
    /// The local time of the report.
    pub now_ms: u64,
}

/// Every operation one feed wrote in a time range, and its effect.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberReport {
    /// The operations (the `op` lines), in feed order.
    pub lines: Vec<OpLine>,
    /// The final `member` line.
    pub summary: MemberSummary,
    /// The entries backing the report.
    pub(crate) support: Support,
}

impl MemberReport {
    /// The report as JSON lines (spec/AUDIT.md §2.1).
    pub fn json_lines(&self) -> String {
        let mut out = JsonLines::default();
        for line in &self.lines {
            out.push("op", line);
        }
        out.push("member", &self.summary);
        out.finish()
    }
}

/// Everything `feed` wrote with a wall time in `since_ms..=until_ms`, as
/// `store` holds it, for a network with `admins` and `window`, at local time `now_ms`.
pub fn member_report(
    store: &dyn Store,
    admins: &[FeedId],
    window: HistoryWindow,
    feed: FeedId,
    since_ms: u64,
    until_ms: u64,
    now_ms: u64,
) -> Result<MemberReport, AuditError> {
    let ledger = Ledger::scan(store, admins, window, now_ms)?;
    Ok(member_report_in(&ledger, feed, since_ms, until_ms))
}

/// The role of `feed` in a membership.
pub(crate) fn role(membership: &Membership, feed: &FeedId) -> &'static str {
    if membership.is_open() {
        "open"
    } else if membership.is_admin(feed) {
        "admin"
    } else if membership.removed_from(feed).is_some() {
        "removed"
    } else if membership.admitted_from(feed).is_some() {
        "member"
    } else {
        "not_member"
    }
}

pub(crate) fn member_report_in(ledger: &Ledger, feed: FeedId, since_ms: u64, until_ms: u64) -> MemberReport {
    let index = KeyIndex::new(ledger);
    let mut stories: BTreeMap<Vec<u8>, BTreeMap<OpAt, Effect>> = BTreeMap::new();
    let mut support = Support::new();
    let mut lines = Vec::new();
    let mut entries = 0;
    let first = ledger.entries.partition_point(|e| e.entry.author() < feed);
    let in_range = ledger.feed(&feed).iter().enumerate().filter(|(_, item)| {
        let wall = item.entry.timestamp().wall_ms();
        since_ms <= wall && wall <= until_ms
    });
    for (offset, item) in in_range {
        let entry = first + offset;
        entries += 1;
        support.insert((feed, item.entry.seq()));
        let unfolded = Effect::of_entry(item.admission, &item.ops);
        let ops = match &item.ops {
            Ok(ops) => ops,
            Err(why) => {
                lines.push(OpLine::unreadable(
                    ledger,
                    entry,
                    why,
                    unfolded.unwrap_or(Effect::Applied),
                ));
                continue;
            }
        };
        for (position, op) in ops.iter().enumerate() {
            let at = OpAt {
                entry,
                position: u32::try_from(position).unwrap_or(u32::MAX),
            };
            let effect = match op {
                Op::Put { key, .. } | Op::Touch { key, .. } | Op::Revoke { key } => {
                    let story = stories.entry(key.clone()).or_insert_with(|| {
                        let story = index.story(ledger, key);
                        for (at, _) in &story {
                            let e = &ledger.entries[at.entry].entry;
                            support.insert((e.author(), e.seq()));
                        }
                        story.into_iter().collect()
                    });
                    story.get(&at).copied().unwrap_or(Effect::Applied)
                }
                _ if unfolded.is_some() => unfolded.unwrap_or(Effect::Applied),
                Op::AddMember { feed: named, .. } | Op::RemoveMember { feed: named, .. } => {
                    if !ledger.membership.is_admin(&feed) {
                        Effect::Ignored("ignored: not an admin")
                    } else if ledger.membership.is_admin(named) {
                        Effect::Ignored("ignored: names an admin")
                    } else {
                        Effect::Applied
                    }
                }
                Op::RevokeOwner { .. } => Effect::Applied,
            };
            lines.extend(OpLine::of(ledger, at, effect));
        }
    }
    add_membership(ledger, &mut support, &[feed]);
    let membership = &ledger.membership;
    MemberReport {
        lines,
        summary: MemberSummary {
            feed: feed.to_string(),
            role: role(membership, &feed).to_string(),
            admitted_from: membership.admitted_from(&feed),
            removed_from: membership.removed_from(&feed),
            forked_at: ledger.forks.get(&feed).copied(),
            since_ms,
            until_ms,
            entries,
            now_ms: ledger.now_ms,
        },
        support,
    }
}
