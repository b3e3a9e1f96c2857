//! Whether a node may be serving an incomplete picture: the readiness probe
//! behind `GET /v1/ready` (a load balancer's or an orchestrator's check
//! before sending the node traffic) and the admins' last-heard times shown
//! in status, members and metrics.
//!
//! A node cannot prove it has heard everything, but it can say when it
//! certainly has not: while it holds less of a feed than a connected peer
//! claimed when it connected, or, with admins, while no admin feed has been
//! heard from recently (an admin connected, or a new admin entry stored): a
//! node fed only by a removed member would otherwise show that member's
//! operations as if it were still admitted. Pure: the node gathers the
//! inputs ([`crate::node::Node::readiness`]).

use std::collections::{BTreeMap, BTreeSet};

use crate::feed::FeedId;

/// Default bound within which an admin feed must have been heard from
/// ([`crate::node::NodeConfig::ready_admin_within`]): five minutes.
pub const DEFAULT_READY_ADMIN_WITHIN_MS: u64 = 5 * 60 * 1000;

/// When an admin feed was last heard from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminHeard {
    /// The admin's feed.
    pub feed: FeedId,
    /// The latest entry of it the node holds (0: none).
    pub seq: u64,
    /// Wall-clock ms when it was last heard from (the admin connected, or a
    /// new entry of it was stored, this run); `None`: never.
    pub heard_at_ms: Option<u64>,
}

/// A feed the node holds less of than a connected peer claimed at connect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Behind {
    /// The feed.
    pub feed: FeedId,
    /// The peer that claimed it.
    pub peer: FeedId,
    /// What the node holds.
    pub held: u64,
    /// What the peer claimed when it connected.
    pub claimed: u64,
}

/// The verdict of [`assess`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Readiness {
    /// Whether every condition holds.
    pub ready: bool,
    /// Why not, one line per failed condition (empty when ready).
    pub reasons: Vec<String>,
    /// The feeds still being caught up on.
    pub behind: Vec<Behind>,
    /// Every admin feed with when it was last heard (empty without admins).
    pub admins: Vec<AdminHeard>,
}

/// What [`assess`] looks at.
#[derive(Debug)]
pub struct Inputs<'a> {
    /// What the node holds, per feed.
    pub held: &'a BTreeMap<FeedId, u64>,
    /// Feeds frozen by a fork proof (never caught up past the fork).
    pub frozen: &'a BTreeSet<FeedId>,
    /// Feeds the node takes from peers (others are not caught up on).
    pub taken: &'a BTreeSet<FeedId>,
    /// Each connected peer with what its first Clock claimed.
    pub opening: &'a [(FeedId, BTreeMap<FeedId, u64>)],
    /// The admins, with when each was last heard.
    pub admins: Vec<AdminHeard>,
    /// Whether the node dials configured peers: then it is not ready before
    /// one of them (or any peer) has connected and sent its Clock.
    pub expects_peers: bool,
    /// The wall clock now (ms).
    pub now_ms: u64,
    /// How recently an admin feed must have been heard (ms).
    pub admin_within_ms: u64,
}

/// Ready when some peer has connected (if the node dials configured peers),
/// the node holds, of every feed it takes and that is not frozen, at least
/// what each connected peer claimed when it connected, and (with admins)
/// some admin feed was heard within `admin_within_ms`.
pub fn assess(inputs: Inputs<'_>) -> Readiness {
    let mut behind = Vec::new();
    for (peer, claims) in inputs.opening {
        for (&feed, &claimed) in claims {
            let held = inputs.held.get(&feed).copied().unwrap_or(0);
            if held < claimed && inputs.taken.contains(&feed) && !inputs.frozen.contains(&feed) {
                behind.push(Behind {
                    feed,
                    peer: *peer,
                    held,
                    claimed,
                });
            }
        }
    }
    let mut reasons = Vec::new();
    if inputs.expects_peers && inputs.opening.is_empty() {
        reasons.push("no peer connected yet".to_string());
    }
    if !behind.is_empty() {
        reasons.push(format!(
            "{} feed(s) behind what connected peers claimed at connect",
            behind.len()
        ));
    }
    let heard_recently = inputs
        .admins
        .iter()
        .filter_map(|admin| admin.heard_at_ms)
        .any(|at| inputs.now_ms.saturating_sub(at) <= inputs.admin_within_ms);
    if !inputs.admins.is_empty() && !heard_recently {
        reasons.push(format!("no admin feed heard within {} ms", inputs.admin_within_ms));
    }
    Readiness {
        ready: reasons.is_empty(),
        reasons,
        behind,
        admins: inputs.admins,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> FeedId {
        FeedId([n; 32])
    }

    fn inputs<'a>(
        held: &'a BTreeMap<FeedId, u64>,
        frozen: &'a BTreeSet<FeedId>,
        taken: &'a BTreeSet<FeedId>,
        opening: &'a [(FeedId, BTreeMap<FeedId, u64>)],
        admins: Vec<AdminHeard>,
    ) -> Inputs<'a> {
        Inputs {
            held,
            frozen,
            taken,
            opening,
            admins,
            expects_peers: false,
            now_ms: 1_000_000,
            admin_within_ms: 300_000,
        }
    }

    #[test]
    fn behind_a_peers_opening_claim_is_not_ready_unless_frozen_or_not_taken() {
        let held = BTreeMap::from([(id(1), 3)]);
        let opening = [(id(9), BTreeMap::from([(id(1), 5), (id(2), 4), (id(3), 7)]))];
        let taken = BTreeSet::from([id(1), id(2)]);
        let frozen = BTreeSet::from([id(2)]);
        let verdict = assess(inputs(&held, &frozen, &taken, &opening, Vec::new()));
        assert!(!verdict.ready);
        assert_eq!(
            verdict.behind,
            vec![Behind {
                feed: id(1),
                peer: id(9),
                held: 3,
                claimed: 5
            }]
        );
        let held = BTreeMap::from([(id(1), 5)]);
        assert!(assess(inputs(&held, &frozen, &taken, &opening, Vec::new())).ready);
    }

    #[test]
    fn with_admins_one_must_have_been_heard_within_the_bound() {
        let none = BTreeMap::new();
        let empty = BTreeSet::new();
        let admin = |heard_at_ms| AdminHeard {
            feed: id(1),
            seq: 2,
            heard_at_ms,
        };
        let never = assess(inputs(&none, &empty, &empty, &[], vec![admin(None)]));
        assert_eq!(never.reasons, vec!["no admin feed heard within 300000 ms".to_string()]);
        assert!(!assess(inputs(&none, &empty, &empty, &[], vec![admin(Some(600_000))])).ready);
        assert!(assess(inputs(&none, &empty, &empty, &[], vec![admin(Some(800_000))])).ready);
    }
}
