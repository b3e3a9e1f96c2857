//! The session store of a running node: typed reads from the live view and
//! writes through group commit (spec/SESSIONS.md). The live view is the
//! node's [`Application`](crate::node::Application): [`Sessions::start`]
//! starts a node with it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use feedmesh::node::NodeConfig;
//! use feedmesh::sessions::Sessions;
//! let sessions = Sessions::start(NodeConfig::new("/var/lib/feedmesh")).await?;
//! let written = sessions.put("sid-1", &"alice's data", Duration::from_secs(3600), Some("alice")).await?;
//! // Durable locally; wait for two peers too if the caller needs it.
//! sessions.wait_for_acks(&written, 2, Duration::from_secs(1)).await?;
//! let data = sessions.get::<String>("sid-1")?.expect("just written");
//! assert_eq!(data.value, "alice's data");
//! sessions.revoke_owner("alice").await?; // log out everywhere
//! # Ok(()) }
//! ```
//!
//! Reads come from memory and never touch the network or the disk; a write
//! returns once its entry is durable in the local store and folded into the
//! view, so a node always reads its own writes.

mod commit;
mod live;

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::clock::Timestamp;
use crate::feed::{FeedId, Hash};
use crate::net::{Network, TcpNetwork};
use crate::node::{AckTimeout, Node, NodeConfig, NodeError};
use crate::view::{HistoryWindow, Membership, Op, OpsError, Session, ValueError, decode_value, encode_value};

use commit::{Condition, Guard, Pending, QUEUE_CAPACITY};
pub(crate) use live::LiveView;
pub use live::{SNAPSHOT_NAME, SessionChange, ViewStart, ViewStats};

/// How many changes a slow subscriber may fall behind before it gets
/// [`broadcast::error::RecvError::Lagged`] (then it reads the view again).
pub const CHANGES_CAPACITY: usize = 4096;

/// Where a write landed: the entry of the node's own feed that carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    /// The node's feed id.
    pub author: FeedId,
    /// The entry's sequence number.
    pub seq: u64,
    /// The entry's timestamp (expiries count from it).
    pub timestamp: Timestamp,
}

/// A session read with [`Sessions::get`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionData<T> {
    /// The session data.
    pub value: T,
    /// When the session expires, in milliseconds since the Unix epoch.
    pub expires_at_ms: u64,
    /// The owner of the session, if the winning put named one.
    pub owner: Option<Vec<u8>>,
    /// The author of the winning put.
    pub author: FeedId,
    /// The sequence number of the entry carrying the winning put.
    pub seq: u64,
}

/// Errors of [`Sessions`].
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// An operation breaks a limit of spec/SESSIONS.md §1 (key, owner, value
    /// size, ttl).
    #[error(transparent)]
    Invalid(#[from] OpsError),
    /// The value could not be encoded or decoded as the requested type.
    #[error(transparent)]
    Value(#[from] ValueError),
    /// The node is shutting down; the write was not made.
    #[error("the node is shutting down")]
    ShuttingDown,
    /// The entry could not be appended (the store failed); nothing was written.
    #[error("write failed: {0}")]
    Write(Arc<NodeError>),
    /// Membership operations need an admin key (spec/SESSIONS.md §5), and
    /// this node's is not one of the network's admins.
    #[error("this node is not an admin of the network")]
    NotAdmin,
    /// The write would have no effect, so it was refused and nothing was
    /// appended (spec/SESSIONS.md §6.4).
    #[error("refused: {0}")]
    Refused(Refusal),
}

/// Why [`Sessions::write`] refused a write that would have no effect
/// (spec/SESSIONS.md §6.4).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The key is revoked (this node holds its tombstone): no put, touch or
    /// revoke of it changes anything.
    #[error("the session key is revoked")]
    Revoked,
    /// This node is not a member of the network (not admitted, or removed),
    /// so no node folds its session operations.
    #[error("this node is not a member of the network")]
    NotMember,
    /// [`Sessions::create`]: this node holds a live session under the key.
    #[error("a live session exists under the key")]
    Exists,
    /// [`Sessions::update`] and [`Sessions::touch`]: this node holds no live
    /// session under the key (never put, or expired).
    #[error("no live session under the key")]
    NotLive,
}

/// What [`Sessions::revoke_owner`] wrote and did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OwnerRevoked {
    /// Where the revocation landed.
    pub written: Written,
    /// How many live sessions of the owner this node held just before the
    /// revocation: the sessions it revoked here. (A put of the owner that
    /// this node has not yet received is revoked too, once it arrives.)
    pub sessions: usize,
}

impl SessionError {
    pub(crate) fn from_node(error: NodeError) -> SessionError {
        match error {
            NodeError::ShuttingDown => SessionError::ShuttingDown,
            other => SessionError::Write(Arc::new(other)),
        }
    }
}

fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)
}

/// The session store of a node, and the node ([`Sessions::node`]). Cheap
/// to clone: clones share the node.
#[derive(Clone, Debug)]
pub struct Sessions {
    node: Node,
    view: Arc<LiveView>,
    queue: mpsc::Sender<Pending>,
}

impl Sessions {
    /// Starts a node ([`Node::start`]) whose application is the session
    /// view, folded from what its store holds, and the group committer of
    /// its writes. Needs a tokio runtime.
    pub async fn start(config: NodeConfig) -> Result<Sessions, NodeError> {
        Sessions::start_with(config, Arc::new(TcpNetwork)).await
    }

    /// [`Sessions::start`] over another [`Network`] (a simulated one, say).
    pub async fn start_with(config: NodeConfig, network: Arc<dyn Network>) -> Result<Sessions, NodeError> {
        let (node, view) = Node::start_with(config, network, |startup| {
            LiveView::open(startup.store, startup.admins, startup.window, startup.now_ms)
        })
        .await?;
        let (queue, requests) = mpsc::channel(QUEUE_CAPACITY);
        node.spawn(|shutdown| commit::run(requests, node.clone(), view.clone(), shutdown));
        Ok(Sessions { node, view, queue })
    }

    /// The node this session store writes to and folds from.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Creates or replaces the session `key` with `value` (any serde value,
    /// stored as CBOR) for `ttl`, owned by `owner` if given.
    pub async fn put<T: Serialize + ?Sized>(
        &self,
        key: impl AsRef<[u8]>,
        value: &T,
        ttl: Duration,
        owner: Option<&str>,
    ) -> Result<Written, SessionError> {
        self.put_guarded(key.as_ref(), value, ttl, owner, None).await
    }

    /// [`Sessions::put`] only if this node holds no session under `key`,
    /// live or revoked (create-if-absent, Redis's `SET NX`); otherwise
    /// [`Refusal::Exists`] or [`Refusal::Revoked`], and nothing is written.
    ///
    /// The check and the write are atomic on this node, not across nodes:
    /// two nodes that create the same key before either has received the
    /// other's put both succeed, and the later put wins everywhere
    /// (spec/SESSIONS.md §6.6). Random 128-bit session ids make that moot.
    pub async fn create<T: Serialize + ?Sized>(
        &self,
        key: impl AsRef<[u8]>,
        value: &T,
        ttl: Duration,
        owner: Option<&str>,
    ) -> Result<Written, SessionError> {
        self.put_guarded(key.as_ref(), value, ttl, owner, Some(Condition::Absent))
            .await
    }

    /// [`Sessions::put`] only if this node holds a live session under `key`
    /// (update-only-if-live, Redis's `SET XX`): an expired or revoked
    /// session is never brought back. Otherwise [`Refusal::NotLive`] or
    /// [`Refusal::Revoked`], and nothing is written. Atomic on this node, as
    /// for [`Sessions::create`].
    pub async fn update<T: Serialize + ?Sized>(
        &self,
        key: impl AsRef<[u8]>,
        value: &T,
        ttl: Duration,
        owner: Option<&str>,
    ) -> Result<Written, SessionError> {
        self.put_guarded(key.as_ref(), value, ttl, owner, Some(Condition::Live))
            .await
    }

    async fn put_guarded<T: Serialize + ?Sized>(
        &self,
        key: &[u8],
        value: &T,
        ttl: Duration,
        owner: Option<&str>,
        condition: Option<Condition>,
    ) -> Result<Written, SessionError> {
        let op = Op::Put {
            key: key.to_vec(),
            value: encode_value(value)?,
            ttl_ms: ttl_ms(ttl),
            owner: owner.map(|o| o.as_bytes().to_vec()),
        };
        let guard = condition.map(|condition| Guard {
            key: key.to_vec(),
            condition,
        });
        self.write_guarded(vec![op], guard).await
    }

    /// Extends the expiry of the live session under `key` to at least now +
    /// `ttl` (never shortens it, never past the session lifetime after its
    /// put): a Touch naming the put this node reads as winning
    /// (spec/SESSIONS.md §2.2). Refused with [`Refusal::NotLive`] if this
    /// node holds no live session under the key.
    pub async fn touch(&self, key: impl AsRef<[u8]>, ttl: Duration) -> Result<Written, SessionError> {
        let key = key.as_ref();
        let live = self.get_raw(key).map(|session| session.id.timestamp);
        let touch = Op::Touch {
            key: key.to_vec(),
            ttl_ms: ttl_ms(ttl),
            put: live.unwrap_or(Timestamp::from_u64(0)),
        };
        if live.is_none() {
            // The refusals every write has come first (not a member, revoked).
            self.refusal(std::slice::from_ref(&touch))?;
            return Err(SessionError::Refused(Refusal::NotLive));
        }
        self.write(vec![touch]).await
    }

    /// Revokes `key` forever (logout): no put, however late or concurrent,
    /// brings it back.
    pub async fn revoke(&self, key: impl AsRef<[u8]>) -> Result<Written, SessionError> {
        self.write(vec![Op::Revoke {
            key: key.as_ref().to_vec(),
        }])
        .await
    }

    /// Revokes every session of `owner` put before this operation ("log out
    /// everywhere"), and says how many of them this node held.
    pub async fn revoke_owner(&self, owner: impl AsRef<[u8]>) -> Result<OwnerRevoked, SessionError> {
        let owner = owner.as_ref();
        let sessions = self.count_owned_by(owner);
        let written = self.write(vec![Op::RevokeOwner { owner: owner.to_vec() }]).await?;
        Ok(OwnerRevoked { written, sessions })
    }

    /// Writes several operations in one entry, atomically (they fold
    /// together or not at all). Returns once the entry is durable locally
    /// and folded into this node's view.
    pub async fn write(&self, ops: Vec<Op>) -> Result<Written, SessionError> {
        self.write_guarded(ops, None).await
    }

    async fn write_guarded(&self, ops: Vec<Op>, guard: Option<Guard>) -> Result<Written, SessionError> {
        for op in &ops {
            op.check()?;
        }
        self.refusal(&ops)?;
        let (reply, answer) = oneshot::channel();
        let pending = Pending::new(ops, guard, reply)?;
        self.queue.send(pending).await.map_err(|_| SessionError::ShuttingDown)?;
        answer.await.map_err(|_| SessionError::ShuttingDown)?
    }

    /// Admits `feed` as a member from its entry `from_seq` on (admins only).
    pub async fn add_member(&self, feed: FeedId, from_seq: u64) -> Result<Written, SessionError> {
        self.admin_write(Op::AddMember { feed, from_seq }).await
    }

    /// Removes `feed` from the membership from its entry `from_seq` on
    /// (admins only): every node re-folds its view without those entries,
    /// and refuses the feed's connections. `None`: from the entry after the
    /// last one this node holds of the feed (what was folded stays).
    pub async fn remove_member(&self, feed: FeedId, from_seq: Option<u64>) -> Result<Written, SessionError> {
        let from_seq = match from_seq {
            Some(seq) => seq,
            None => {
                let held = self
                    .node
                    .store()
                    .latest(&feed)
                    .map_err(|e| SessionError::Write(Arc::new(e.into())))?;
                held.unwrap_or(0) + 1
            }
        };
        self.admin_write(Op::RemoveMember { feed, from_seq }).await
    }

    /// Refuses `ops` if, as this node can tell, they would have no effect:
    /// a session operation when this node's next entry would not be folded,
    /// or a put, touch or revoke of a revoked key.
    fn refusal(&self, ops: &[Op]) -> Result<(), SessionError> {
        let id = self.node.id();
        let next = self
            .node
            .store()
            .latest(&id)
            .map_err(|e| SessionError::Write(Arc::new(e.into())))?
            .unwrap_or(0)
            + 1;
        let now = self.node.now_ms();
        let folding = self.view.read();
        for op in ops {
            let refusal = match op {
                Op::Put { .. } | Op::Touch { .. } | Op::Revoke { .. } | Op::RevokeOwner { .. }
                    if !folding.membership.folds(id, next) =>
                {
                    Refusal::NotMember
                }
                Op::Put { key, .. } | Op::Touch { key, .. } | Op::Revoke { key }
                    if folding.view.is_revoked(key, now) =>
                {
                    Refusal::Revoked
                }
                _ => continue,
            };
            return Err(SessionError::Refused(refusal));
        }
        Ok(())
    }

    async fn admin_write(&self, op: Op) -> Result<Written, SessionError> {
        if !self.view.read().membership.is_admin(&self.node.id()) {
            return Err(SessionError::NotAdmin);
        }
        self.write(vec![op]).await
    }

    /// The membership as this node has folded it.
    pub fn membership(&self) -> Membership {
        self.view.read().membership.clone()
    }

    /// Waits until at least `k` connected peers hold the entry of `written`;
    /// returns how many do. See [`Node::wait_for_acks`].
    pub async fn wait_for_acks(&self, written: &Written, k: usize, timeout: Duration) -> Result<usize, AckTimeout> {
        self.node.wait_for_acks(written.seq, k, timeout).await
    }

    /// The live session `key` with its value decoded as `T`; `None` if it
    /// was never put, is revoked, or has expired.
    pub fn get<T: DeserializeOwned>(&self, key: impl AsRef<[u8]>) -> Result<Option<SessionData<T>>, SessionError> {
        let state = self.view.read();
        let Some(session) = state.view.get(key.as_ref(), self.node.now_ms()) else {
            return Ok(None);
        };
        Ok(Some(SessionData {
            value: decode_value(&session.value)?,
            expires_at_ms: session.expires_at_ms,
            owner: session.owner.clone(),
            author: session.author,
            seq: session.seq,
        }))
    }

    /// The live session `key` as the view holds it (value still encoded):
    /// a shared snapshot, handed out without copying.
    pub fn get_raw(&self, key: impl AsRef<[u8]>) -> Option<Arc<Session>> {
        self.view
            .read()
            .view
            .get_shared(key.as_ref(), self.node.now_ms())
            .cloned()
    }

    /// How long the live session `key` has left; `None` if it was never
    /// put, is revoked, or has expired.
    pub fn ttl(&self, key: impl AsRef<[u8]>) -> Option<Duration> {
        let now = self.node.now_ms();
        let state = self.view.read();
        let session = state.view.get(key.as_ref(), now)?;
        Some(Duration::from_millis(session.expires_at_ms.saturating_sub(now)))
    }

    /// The live sessions of `owner` (value still encoded), with their keys,
    /// sorted by key: those that any put names `owner` as owner, which are
    /// exactly the sessions a "log out everywhere" would revoke
    /// (spec/SESSIONS.md §2.4), whoever the latest put names.
    pub fn owned_by(&self, owner: impl AsRef<[u8]>) -> Vec<(Vec<u8>, Arc<Session>)> {
        let now = self.node.now_ms();
        let state = self.view.read();
        state
            .view
            .owned_by(owner.as_ref(), now)
            .into_iter()
            .map(|(key, session)| (key.to_vec(), session.clone()))
            .collect()
    }

    /// How many live sessions `owner` has, as [`Sessions::owned_by`] counts.
    pub fn count_owned_by(&self, owner: impl AsRef<[u8]>) -> usize {
        let now = self.node.now_ms();
        self.view.read().view.owned_by(owner.as_ref(), now).len()
    }

    /// Calls `visit` with the key of every live session, in no particular
    /// order, holding the view's read lock throughout (writes wait): keep
    /// `visit` cheap. What `SCAN`, `KEYS` and `DBSIZE` of the Redis protocol
    /// endpoint read.
    pub fn visit_live_keys(&self, mut visit: impl FnMut(&[u8])) {
        let now = self.node.now_ms();
        let state = self.view.read();
        state.view.live_keys(now).for_each(&mut visit);
    }

    /// The network's history window: its session lifetime and retention
    /// margin (spec/SESSIONS.md §2.6).
    pub fn window(&self) -> HistoryWindow {
        self.view.read().view.window()
    }

    /// Whether `key` is revoked (by key or by owner) now: a put or touch
    /// of it written now would be killed (spec/SESSIONS.md §2.3).
    pub fn is_revoked(&self, key: impl AsRef<[u8]>) -> bool {
        let now = self.node.now_ms();
        self.view.read().view.is_revoked(key.as_ref(), now)
    }

    /// A receiver of the view's changes, local and replicated.
    pub fn subscribe(&self) -> broadcast::Receiver<SessionChange> {
        self.view.subscribe()
    }

    /// The digest of the folded state (spec/SESSIONS.md §3): equal on nodes
    /// that fold the same entries, whatever the order or the time.
    pub fn digest(&self) -> Hash {
        self.view.digest()
    }

    /// Counts of the view.
    pub fn stats(&self) -> ViewStats {
        self.view.stats()
    }

    /// How the view was built when the node started: from its snapshot and
    /// the entries stored after it, or by folding every entry
    /// (spec/SESSIONS.md §6.7).
    pub fn started(&self) -> ViewStart {
        self.view.started()
    }
}
