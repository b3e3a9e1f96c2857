//! The health report: every feed held, forks, membership, held-back entries
//! and what peers claimed (spec/AUDIT.md §2.5).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::ledger::{Admission, Ledger};
use super::member::role;
use super::{AuditError, JsonLines};
use crate::feed::FeedId;
use crate::store::Store;
use crate::view::HistoryWindow;

/// What one peer last claimed to hold of a feed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PeerClaim {
    /// The peer's feed id.
    pub peer: String,
    /// The latest sequence it claimed.
    pub claimed: u64,
    /// How many of those entries this store lacks (`claimed - length`, at least 0).
    pub missing: u64,
}

/// One feed (a `feed` line).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FeedHealth {
    /// The feed id.
    pub feed: String,
    /// `open`, `admin`, `member`, `removed` or `not_member`.
    pub role: String,
    /// Entries held (the latest sequence; 0 for a feed only peers claimed).
    pub length: u64,
    /// Hash of the latest entry, or `null`.
    pub head_hash: Option<String>,
    /// Raw timestamp of the latest entry, or `null`.
    pub last_timestamp: Option<u64>,
    /// Wall time of the latest entry in milliseconds, or `null`.
    pub last_wall_ms: Option<u64>,
    /// The first folded entry (admission point), or `null`.
    pub admitted_from: Option<u64>,
    /// The first entry no longer folded (removal point), or `null`.
    pub removed_from: Option<u64>,
    /// The sequence of a held fork proof, or `null`.
    pub forked_at: Option<u64>,
    /// Entries held back for clock drift.
    pub held_back: usize,
    /// What peers claimed, by peer id (empty offline).
    pub peer_claims: Vec<PeerClaim>,
}

/// A fork proof held (a `fork` line).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ForkLine {
    /// The forked feed.
    pub feed: String,
    /// The forked sequence.
    pub seq: u64,
    /// The two conflicting entries' hashes, smaller first.
    pub entry_hashes: [String; 2],
}

/// A feed named by an admin (a `member` line).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MemberLine {
    /// The feed id.
    pub feed: String,
    /// The first folded entry.
    pub from_seq: u64,
    /// The first entry no longer folded, or `null` while not removed.
    pub until_seq: Option<u64>,
}

/// When the node last heard from an admin feed (an `admin` line; only a
/// running node knows: [`crate::node::Node::readiness`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AdminLine {
    /// The admin's feed id.
    pub feed: String,
    /// The latest entry of it held.
    pub seq: u64,
    /// Wall-clock ms when it was last heard from, or `null` if never.
    pub heard_at_ms: Option<u64>,
}

/// The totals (the final `health` line).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HealthSummary {
    /// Whether the network is open (no admins).
    pub open: bool,
    /// The configured admins.
    pub admins: Vec<String>,
    /// Feeds listed.
    pub feeds: usize,
    /// Entries held, all feeds.
    pub entries: u64,
    /// Fork proofs held.
    pub forks: usize,
    /// Entries held back for clock drift, all feeds.
    pub held_back: usize,
    /// Members with a removal point.
    pub removed_members: usize,
    /// The local time of the report.
    pub now_ms: u64,
}

/// The health of a store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthReport {
    /// One per feed held or claimed, by feed id.
    pub feeds: Vec<FeedHealth>,
    /// One per fork proof held.
    pub forks: Vec<ForkLine>,
    /// One per feed an admin named.
    pub members: Vec<MemberLine>,
    /// One per admin, when a running node reports (empty offline).
    pub admins: Vec<AdminLine>,
    /// The totals.
    pub summary: HealthSummary,
}

impl HealthReport {
    /// The report as JSON lines (spec/AUDIT.md §2.1).
    pub fn json_lines(&self) -> String {
        let mut out = JsonLines::default();
        for feed in &self.feeds {
            out.push("feed", feed);
        }
        for fork in &self.forks {
            out.push("fork", fork);
        }
        for member in &self.members {
            out.push("member", member);
        }
        for admin in &self.admins {
            out.push("admin", admin);
        }
        out.push("health", &self.summary);
        out.finish()
    }
}

/// What each peer last claimed, per peer then feed (empty offline).
pub type PeerClaims = BTreeMap<FeedId, BTreeMap<FeedId, u64>>;

/// The health of everything `store` holds, for a network with `admins` and
/// `window`, at local time `now_ms`, with what peers claimed (`claims`, per peer).
pub fn health_report(
    store: &dyn Store,
    admins: &[FeedId],
    window: HistoryWindow,
    now_ms: u64,
    claims: &PeerClaims,
) -> Result<HealthReport, AuditError> {
    let ledger = Ledger::scan(store, admins, window, now_ms)?;
    let clock = store.clock()?;
    let mut names: BTreeSet<FeedId> = clock.keys().copied().collect();
    names.extend(claims.values().flat_map(BTreeMap::keys));
    let membership = &ledger.membership;
    let feeds: Vec<FeedHealth> = names
        .iter()
        .map(|feed| {
            let held = ledger.feed(feed);
            let head = held.last().map(|item| &item.entry);
            let length = clock.get(feed).copied().unwrap_or(0);
            FeedHealth {
                feed: feed.to_string(),
                role: role(membership, feed).to_string(),
                length,
                head_hash: head.map(|e| e.hash().to_string()),
                last_timestamp: head.map(|e| e.timestamp().as_u64()),
                last_wall_ms: head.map(|e| e.timestamp().wall_ms()),
                admitted_from: membership.admitted_from(feed),
                removed_from: membership.removed_from(feed),
                forked_at: ledger.forks.get(feed).copied(),
                held_back: held.iter().filter(|i| i.admission == Admission::HeldBack).count(),
                peer_claims: claims
                    .iter()
                    .filter_map(|(peer, claimed)| {
                        let claimed = *claimed.get(feed)?;
                        Some(PeerClaim {
                            peer: peer.to_string(),
                            claimed,
                            missing: claimed.saturating_sub(length),
                        })
                    })
                    .collect(),
            }
        })
        .collect();
    let forks: Vec<ForkLine> = store
        .forks()?
        .iter()
        .map(|proof| {
            let (a, b) = proof.entries();
            ForkLine {
                feed: proof.author().to_string(),
                seq: proof.seq(),
                entry_hashes: [a.hash().to_string(), b.hash().to_string()],
            }
        })
        .collect();
    let members: Vec<MemberLine> = membership
        .members()
        .map(|m| MemberLine {
            feed: m.feed.to_string(),
            from_seq: m.from_seq,
            until_seq: m.until_seq,
        })
        .collect();
    let summary = HealthSummary {
        open: membership.is_open(),
        admins: membership.admins().map(FeedId::to_string).collect(),
        feeds: feeds.len(),
        entries: clock.values().sum(),
        forks: forks.len(),
        held_back: feeds.iter().map(|f| f.held_back).sum(),
        removed_members: members.iter().filter(|m| m.until_seq.is_some()).count(),
        now_ms,
    };
    Ok(HealthReport {
        feeds,
        forks,
        members,
        admins: Vec::new(),
        summary,
    })
}
