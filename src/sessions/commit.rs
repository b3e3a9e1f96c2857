//! Group commit: concurrent session writes on one node coalesced into one
//! entry (one signature, one durable commit).
//!
//! One task takes requests from a queue. It waits for the first, then takes
//! every request already queued behind it, up to [`MAX_OPS`] operations and
//! [`MAX_PAYLOAD`] bytes, and appends them as one entry. While that entry is
//! signed and committed, new requests queue up and form the next entry. A
//! lone write is therefore never delayed (there is no timer), and under load
//! the entry grows with the number of waiting writers: the cost of a
//! signature and an fsync is shared by all of them.
//!
//! A write may carry a [`Guard`]: a condition on its session ("absent",
//! "live") checked against the view when the write joins a batch, after
//! every earlier batch is folded. A guarded write whose key an earlier write
//! of the same batch names (or that follows a `RevokeOwner` in it) waits
//! for the next batch, so the condition always sees the writes before it.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};

use super::live::LiveView;
use super::{SessionError, Written};
use crate::feed::MAX_PAYLOAD;
use crate::node::Node;
use crate::view::{MAX_OPS, Op, OpsError, encode_ops};

/// How many requests may wait for the committer before writers wait to queue.
pub(crate) const QUEUE_CAPACITY: usize = 16 * 1024;

/// The most times the committer yields after a commit to let answered
/// writers queue again (see [`gather`]).
const MAX_GATHER_YIELDS: usize = 16;

/// What a guarded write needs of its session when it is committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Condition {
    /// No live session and no revocation under the key (create, `SET NX`).
    Absent,
    /// A live session under the key (update, `SET XX`): never resurrects.
    Live,
}

/// A condition on the session `key`, checked by the committer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Guard {
    /// The session key.
    pub(crate) key: Vec<u8>,
    /// What the key's session must be.
    pub(crate) condition: Condition,
}

/// One writer's operations, waiting to be committed.
#[derive(Debug)]
pub(crate) struct Pending {
    ops: Vec<Op>,
    guard: Option<Guard>,
    /// The encoded length of `ops` alone (an upper bound of their share of a batch).
    encoded_len: usize,
    reply: oneshot::Sender<Result<Written, SessionError>>,
}

impl Pending {
    /// Checks `ops` (each already checked with [`Op::check`]) against the
    /// limits of one entry and pairs them with the reply channel.
    pub(crate) fn new(
        ops: Vec<Op>,
        guard: Option<Guard>,
        reply: oneshot::Sender<Result<Written, SessionError>>,
    ) -> Result<Pending, SessionError> {
        if ops.len() > MAX_OPS {
            return Err(OpsError::TooManyOps.into());
        }
        let encoded_len = ops.iter().map(Op::encoded_len).sum();
        if encoded_len >= MAX_PAYLOAD as usize {
            return Err(OpsError::TooLarge.into());
        }
        Ok(Pending {
            ops,
            guard,
            encoded_len,
            reply,
        })
    }
}

/// Commits queued operations to `node`'s feed until the queue closes or
/// `shutdown` turns true, checking guards against `view`. Requests still
/// queued then are dropped (their writers see [`SessionError::ShuttingDown`]).
pub(crate) async fn run(
    mut queue: mpsc::Receiver<Pending>,
    node: Node,
    view: Arc<LiveView>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut carried: Option<Pending> = None;
    loop {
        let first = match carried.take() {
            Some(pending) => pending,
            None => tokio::select! {
                biased;
                _ = shutdown.wait_for(|&closing| closing) => return,
                pending = queue.recv() => match pending {
                    Some(pending) => pending,
                    None => return,
                },
            },
        };
        let mut batch = Vec::new();
        let (mut ops, mut bytes) = (0, 0);
        let mut named = Named::default();
        let mut next = Some(first);
        while let Some(pending) = next.take().or_else(|| queue.try_recv().ok()) {
            let full = ops + pending.ops.len() > MAX_OPS || bytes + pending.encoded_len > MAX_PAYLOAD as usize;
            if !batch.is_empty() && (full || named.guards(&pending)) {
                carried = Some(pending);
                break;
            }
            if let Some(refusal) = pending.guard.as_ref().and_then(|g| view.check(g, node.now_ms()).err()) {
                let _ = pending.reply.send(Err(SessionError::Refused(refusal)));
                continue;
            }
            ops += pending.ops.len();
            bytes += pending.encoded_len;
            named.add(&pending.ops);
            batch.push(pending);
        }
        if batch.is_empty() {
            continue;
        }
        commit(batch, &node).await;
        gather(&queue).await;
    }
}

/// What the operations of a batch name, so that a guarded write can tell
/// in constant time whether it must see the batch folded first: the hashes
/// of their session keys (a collision only defers a write to the next
/// batch), and whether one revokes an owner's sessions.
#[derive(Debug, Default)]
struct Named {
    keys: HashSet<u64>,
    revokes_owner: bool,
}

impl Named {
    fn add(&mut self, ops: &[Op]) {
        for op in ops {
            match op {
                Op::Put { key, .. } | Op::Touch { key, .. } | Op::Revoke { key } => {
                    self.keys.insert(key_hash(key));
                }
                Op::RevokeOwner { .. } => self.revokes_owner = true,
                Op::AddMember { .. } | Op::RemoveMember { .. } => {}
            }
        }
    }

    /// Whether `pending` is guarded and its guard must see these operations
    /// folded first: one of them names its key, or revokes an owner.
    fn guards(&self, pending: &Pending) -> bool {
        pending
            .guard
            .as_ref()
            .is_some_and(|guard| self.revokes_owner || self.keys.contains(&key_hash(&guard.key)))
    }
}

fn key_hash(key: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    key.hash(&mut hasher);
    hasher.finish()
}

/// Lets the writers just answered queue their next writes before the next
/// batch is taken: yields while the queue grows, at most [`MAX_GATHER_YIELDS`]
/// times. Without it, writers answered by one commit would always miss the
/// next one, halving the batch. A lone writer is not delayed: it has its
/// answer already, and a yield costs microseconds.
async fn gather(queue: &mpsc::Receiver<Pending>) {
    let mut queued = queue.len();
    for _ in 0..MAX_GATHER_YIELDS {
        tokio::task::yield_now().await;
        let now = queue.len();
        if now == queued {
            return;
        }
        queued = now;
    }
}

/// Appends one batch as one entry and answers each of its writers.
async fn commit(batch: Vec<Pending>, node: &Node) {
    let mut ops = Vec::with_capacity(batch.iter().map(|p| p.ops.len()).sum());
    let mut replies = Vec::with_capacity(batch.len());
    for pending in batch {
        ops.extend(pending.ops);
        replies.push(pending.reply);
    }
    let result = match encode_ops(&ops) {
        Ok(payload) => match node.append(&payload).await {
            Ok(entry) => Ok(Written {
                author: entry.author(),
                seq: entry.seq(),
                timestamp: entry.timestamp(),
            }),
            Err(error) => Err(SessionError::from_node(error)),
        },
        Err(error) => Err(error.into()),
    };
    for reply in replies {
        let _ = reply.send(result.clone());
    }
}
