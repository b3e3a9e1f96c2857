//! What a [`Node`](super::Node) needs of the application it runs: the state
//! folded from its store, and the membership answers its transport asks.

use std::collections::BTreeSet;

use crate::feed::{Entry, FeedId};
use crate::store::{Store, StoreError};
use crate::view::HistoryWindow;

/// The application a [`Node`](super::Node) drives: it folds the entries the
/// node stores into its own state, and answers who may connect and which
/// feeds the node takes. The session store
/// ([`crate::sessions::Sessions::start`]) is one.
///
/// The node calls it as follows (every `now_ms` is
/// [`NodeConfig::wall_clock`](super::NodeConfig::wall_clock)'s):
///
/// | call | when | where |
/// |---|---|---|
/// | [`Application::fold`] | after each append to the store: the node's own entries and those received from peers | a blocking thread, the node's writer lock held |
/// | [`Application::refold`] | after a fork proof is stored, and when [`Application::tick`] asks for it | a blocking thread, the writer lock held |
/// | [`Application::tick`] | every second | the node's tick task (async), no lock held |
/// | [`Application::expire`] | every ten minutes, after a tick | the tick task, no lock held |
/// | [`Application::checkpoint`] | every [`NodeConfig::snapshot_interval`](super::NodeConfig::snapshot_interval), and at shutdown | a blocking thread; at shutdown with the writer lock held, after the last append |
/// | [`Application::taken_feeds`] | at start, and after a fold that says the admission answers may have changed or a refold that a tick asked for | anywhere (a lock of the node may be held) |
/// | [`Application::is_removed`] | when a peer connects, and with [`Application::taken_feeds`] | anywhere (the node's peer table may be locked) |
/// | [`Application::is_admitted`] | when an inbound peer finds the connection slots full | a connection task (async) |
///
/// The writer lock serialises every append with its fold: a fold sees the
/// entries in the order they were stored, and a refold reads the store
/// while nothing is appended, so it can replace the state whole. That is
/// the whole lock order between a node and its application: the
/// application's own locks are taken inside these calls and released
/// before they return, and none of these methods may call back into the
/// node (an append from a fold would wait for the writer lock it holds).
pub trait Application: Send + Sync + 'static {
    /// Folds entries the store has just taken (each with its payload;
    /// entries stored without one, and entries already held, are not
    /// offered). Returns whether the admission answers may have changed:
    /// the node then asks them again, closes the connections of removed
    /// feeds and updates which feeds it takes.
    fn fold(
        &self,
        store: &dyn Store,
        stored: &mut dyn Iterator<Item = (&Entry, &[u8])>,
        now_ms: u64,
    ) -> Result<bool, StoreError>;

    /// Replaces the folded state with a fold of everything `store` holds
    /// (after a fork proof, or when [`Application::tick`] asked for it;
    /// after the latter the node asks the admission answers again).
    fn refold(&self, store: &dyn Store, now_ms: u64) -> Result<(), StoreError>;

    /// Time passed: folds what fell due (entries held back because they
    /// were dated ahead). Returns whether a [`Application::refold`] is due.
    /// Quick: runs on the async runtime.
    fn tick(&self, now_ms: u64) -> bool;

    /// Drops state past its retention horizon; called every tick, the
    /// application decides when there is something to drop. Quick, as
    /// [`Application::tick`].
    fn expire(&self, now_ms: u64);

    /// Saves the folded state in `store`, with what it covers, so that the
    /// application's constructor can start from it and fold only what was
    /// stored after (the session store's view snapshot, spec/SESSIONS.md
    /// §6.7). Returns the bytes saved (0: nothing changed since the last
    /// checkpoint). The default saves nothing.
    fn checkpoint(&self, store: &dyn Store) -> Result<usize, StoreError> {
        let _ = store;
        Ok(0)
    }

    /// The feeds the node takes from peers (the admins' and the admitted
    /// members'), or `None` for every feed, within
    /// [`NodeConfig::max_feeds`](super::NodeConfig::max_feeds).
    fn taken_feeds(&self) -> Option<BTreeSet<FeedId>>;

    /// Whether `feed` was removed from the membership: the node refuses
    /// and closes its connections.
    fn is_removed(&self, feed: &FeedId) -> bool;

    /// Whether `feed` was admitted as a member: with admins, it may take a
    /// connection slot reserved for the network's own nodes
    /// ([`RESERVED_MEMBER_CONNECTIONS`](super::RESERVED_MEMBER_CONNECTIONS)).
    fn is_admitted(&self, feed: &FeedId) -> bool;
}

/// What [`Node::start`](super::Node::start) hands the constructor of its
/// application once the store is open.
#[derive(Clone, Copy)]
#[non_exhaustive]
pub struct Startup<'a> {
    /// The node's store, as it was left.
    pub store: &'a dyn Store,
    /// The network's admins (the node directory's `admins` file; empty: an
    /// open network).
    pub admins: &'a [FeedId],
    /// The network's history window (the node directory's
    /// `history_window` file, spec/SESSIONS.md §2.6).
    pub window: HistoryWindow,
    /// The node's wall-clock time.
    pub now_ms: u64,
}
