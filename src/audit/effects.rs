//! What each operation did: the effect column of the reports
//! (spec/AUDIT.md §3).
//!
//! For one key, the operations that touched it are replayed in fold order
//! (spec/SESSIONS.md §2.1) over the folded entries only; the rules of
//! spec/SESSIONS.md §2 then say, for each, whether it was applied, lost
//! last-writer-wins to a later put, or was ignored (and why). Since the fold
//! is a function of the set of folded operations, replaying them in fold
//! order gives the same final state as the node's view.

use std::collections::{BTreeMap, BTreeSet};

use super::ledger::{Admission, Ledger, Unreadable};
use crate::view::Op;

/// An operation in the ledger: its entry's index and its position in the batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct OpAt {
    /// Index of the entry in [`Ledger::entries`].
    pub(crate) entry: usize,
    /// Position of the operation in the entry's batch, from 0.
    pub(crate) position: u32,
}

impl OpAt {
    /// The operation itself (the entry's ops are readable for every `OpAt`).
    pub(crate) fn op<'a>(&self, ledger: &'a Ledger) -> Option<&'a Op> {
        let ops = ledger.entries[self.entry].ops.as_ref().ok()?;
        ops.get(self.position as usize)
    }
}

/// What an operation did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Effect {
    /// It counted.
    Applied,
    /// A put that lost last-writer-wins to this later put.
    Overridden(OpAt),
    /// The winning put of a session that has since expired.
    Expired,
    /// It did not count, for the reason given (an effect string of spec/AUDIT.md §3).
    Ignored(&'static str),
}

impl Effect {
    /// The effect string of spec/AUDIT.md §3.
    pub(crate) fn text(&self) -> &'static str {
        match self {
            Effect::Applied => "applied",
            Effect::Overridden(_) => "overridden",
            Effect::Expired => "expired",
            Effect::Ignored(reason) => reason,
        }
    }

    /// The effect of any operation of an entry that is not folded, or whose
    /// payload cannot be read; `None` for a folded, readable entry.
    pub(crate) fn of_entry(admission: Admission, ops: &Result<Vec<Op>, Unreadable>) -> Option<Effect> {
        let reason = match admission {
            Admission::Folded => match ops {
                Ok(_) => return None,
                Err(Unreadable::Missing) => "ignored: payload missing",
                Err(Unreadable::Malformed(_)) => "ignored: malformed payload",
            },
            Admission::Forked => "ignored: forked",
            Admission::NotMember => "ignored: not a member",
            Admission::Removed => "ignored: member removed",
            Admission::HeldBack => "ignored: held back (clock drift)",
        };
        Some(Effect::Ignored(reason))
    }
}

/// Which operations touch which key, for every key of a ledger.
#[derive(Debug, Default)]
pub(crate) struct KeyIndex {
    /// Put, Touch and Revoke operations per key.
    by_key: BTreeMap<Vec<u8>, Vec<OpAt>>,
    /// RevokeOwner operations per owner.
    by_owner: BTreeMap<Vec<u8>, Vec<OpAt>>,
    /// Owners named by any put of each key.
    owners: BTreeMap<Vec<u8>, BTreeSet<Vec<u8>>>,
}

impl KeyIndex {
    /// Indexes every readable operation of `ledger`.
    pub(crate) fn new(ledger: &Ledger) -> KeyIndex {
        let mut index = KeyIndex::default();
        for (entry, item) in ledger.entries.iter().enumerate() {
            let Ok(ops) = &item.ops else { continue };
            for (position, op) in ops.iter().enumerate() {
                let at = OpAt {
                    entry,
                    position: u32::try_from(position).unwrap_or(u32::MAX),
                };
                match op {
                    Op::Put { key, owner, .. } => {
                        index.by_key.entry(key.clone()).or_default().push(at);
                        if let Some(owner) = owner {
                            index.owners.entry(key.clone()).or_default().insert(owner.clone());
                        }
                    }
                    Op::Touch { key, .. } | Op::Revoke { key } => {
                        index.by_key.entry(key.clone()).or_default().push(at);
                    }
                    Op::RevokeOwner { owner } => index.by_owner.entry(owner.clone()).or_default().push(at),
                    Op::AddMember { .. } | Op::RemoveMember { .. } => {}
                }
            }
        }
        index
    }

    /// Every operation that touched `key`: its puts, touches and revokes,
    /// and the RevokeOwner operations of every owner that ever put it, in
    /// fold order `(timestamp, author, position)` (then sequence, for a
    /// forked feed), each with its effect.
    pub(crate) fn story(&self, ledger: &Ledger, key: &[u8]) -> Vec<(OpAt, Effect)> {
        let mut ops: Vec<OpAt> = self.by_key.get(key).cloned().unwrap_or_default();
        for owner in self.owners.get(key).into_iter().flatten() {
            ops.extend(self.by_owner.get(owner).into_iter().flatten());
        }
        ops.sort_by_key(|at| {
            let entry = &ledger.entries[at.entry].entry;
            (entry.timestamp(), entry.author(), at.position, entry.seq())
        });
        replay(ledger, key, ops)
    }
}

/// Replays `ops` (in fold order) under spec/SESSIONS.md §2.2–2.4.
fn replay(ledger: &Ledger, key: &[u8], ops: Vec<OpAt>) -> Vec<(OpAt, Effect)> {
    let mut revoked = false;
    let mut owners_seen: BTreeSet<&[u8]> = BTreeSet::new();
    let mut winner: Option<usize> = None;
    let mut story: Vec<(OpAt, Effect)> = Vec::with_capacity(ops.len());
    for at in ops {
        let item = &ledger.entries[at.entry];
        if let Some(effect) = Effect::of_entry(item.admission, &item.ops) {
            story.push((at, effect));
            continue;
        }
        let Some(op) = at.op(ledger) else { continue };
        let effect = match op {
            _ if revoked => Effect::Ignored("ignored: already revoked"),
            Op::Put { owner, .. } => {
                if let Some(owner) = owner {
                    owners_seen.insert(owner);
                }
                winner = Some(story.len());
                Effect::Applied
            }
            Op::Revoke { .. } => {
                revoked = true;
                Effect::Applied
            }
            Op::RevokeOwner { owner } if owners_seen.contains(owner.as_slice()) => {
                revoked = true;
                Effect::Applied
            }
            Op::RevokeOwner { .. } => Effect::Ignored("ignored: no earlier put by this owner"),
            Op::Touch { .. } | Op::AddMember { .. } | Op::RemoveMember { .. } => Effect::Applied,
        };
        story.push((at, effect));
    }
    let Some(winner) = winner else { return story };
    let winning = story[winner].0;
    for (at, effect) in &mut story {
        if *effect == Effect::Applied && *at != winning && matches!(at.op(ledger), Some(Op::Put { .. })) {
            *effect = Effect::Overridden(winning);
        }
    }
    // The ledger's view is never pruned: a kill time above 0 is a revocation.
    let expired = !ledger.view.is_revoked(key, 0)
        && ledger.view.get(key, 0).is_some()
        && ledger.view.get(key, ledger.now_ms).is_none();
    if expired && !revoked {
        story[winner].1 = Effect::Expired;
    }
    story
}
