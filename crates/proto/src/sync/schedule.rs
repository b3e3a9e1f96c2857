//! Choosing one sender per feed among the connected peers
//! (spec/PROTOCOL.md §2.2 "Senders"), without I/O.
//!
//! A node replicates each feed from one peer at a time: the feed's *sender*,
//! the only peer to which it announces want = 1 for that feed. Every other
//! peer gets want = 0 and only reports its clock. The node's
//! [`ReplicationScheduler`] makes that choice for every feed from what the
//! connections report (the peers' claimed clocks, what the node stores,
//! stalls, disconnects) and hands out the resulting want flags per
//! connection; each connection applies them with
//! [`PeerSync::set_want`](super::PeerSync::set_want) on a machine made with
//! [`PeerSync::managed`](super::PeerSync::managed).

use std::collections::{BTreeMap, BTreeSet};

use crate::feed::FeedId;

use super::MAX_FEEDS_PER_PEER;

/// How many feeds a node of an open network takes from peers, own feed and
/// held feeds included, before it takes only feeds whose author is
/// connected ([`Admission::Open`]): [`MAX_FEEDS_PER_PEER`] less a reserve of
/// 1,024 for directly connected authors.
pub const DEFAULT_FEED_BUDGET: usize = MAX_FEEDS_PER_PEER - 1024;

/// Which feeds the node takes from its peers: wants, stores and announces
/// (spec/PROTOCOL.md §2.2 "Which feeds a node takes"). A feed the node
/// already holds, and its own, are always taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// An open network: any claimed feed while the node knows fewer than
    /// `budget` feeds; beyond that only the feed of a connected author, and
    /// never more than [`MAX_FEEDS_PER_PEER`] feeds in all, so that what the
    /// node announces always fits its peers' limit.
    Open {
        /// Feeds known before only connected authors' feeds are taken.
        budget: usize,
    },
    /// An administered network: only these feeds (the admins' and the
    /// admitted members').
    Only(BTreeSet<FeedId>),
}

impl Default for Admission {
    fn default() -> Admission {
        Admission::Open {
            budget: DEFAULT_FEED_BUDGET,
        }
    }
}

/// A connection as the scheduler knows it: an id chosen by the caller,
/// unique among the connections it reports (the node uses its connection
/// counter).
pub type ConnId = u64;

/// One connected peer.
#[derive(Debug)]
struct Peer {
    /// The peer's feed id (proven in the handshake).
    id: FeedId,
    /// Position in the order of [`ReplicationScheduler::connect`] calls.
    order: u64,
    /// What it claims to hold, for this connection only.
    claims: BTreeMap<FeedId, u64>,
}

/// The replication state of one feed.
#[derive(Debug, Default)]
struct Feed {
    /// The peer it is wanted from.
    sender: Option<ConnId>,
    /// Whether some peer claims more of it than the node holds.
    behind: bool,
    /// The last progress: when the node last stored more of it, fell
    /// behind, or changed its sender (ms).
    since: u64,
    /// Peers that stalled on it, skipped while another peer remains.
    stalled: BTreeSet<ConnId>,
}

/// Picks, for every feed the node holds or a peer claims, the one connected
/// peer the node wants it from (want = 1) and tells every other peer
/// want = 0, with failover. Pure and deterministic: the same calls with the
/// same `now`s give the same answers.
///
/// # Choice
///
/// A feed's sender is chosen when the feed first becomes known (the node
/// stores it or a peer claims it) or loses its sender, among the connected
/// peers that have not stalled on it, ranked by:
///
/// 1. the feed's author (nobody holds more of a feed than its author);
/// 2. then the highest claimed sequence of the feed;
/// 3. then the earliest connected ([`connect`](Self::connect) order).
///
/// The choice is sticky: a sender keeps the feed until it disconnects or
/// stalls, except that a connected author (not stalled on it) takes its feed
/// over from another sender as soon as the node is not behind on the feed
/// (so that no backlog is in flight from both).
/// The node's own feed has no sender: no peer can hold more of it than the
/// node, so it is wanted from nobody (and every peer that wants it from the
/// node is sent it, see [`PeerSync`](super::PeerSync)).
///
/// # Failover
///
/// When some connected peer (the sender or any other) claims more of a feed
/// than the node holds and the node stores nothing new of it for
/// `stall_timeout` ms (from when it fell behind, last stored some, or
/// changed sender), the feed is chosen again: if the sender itself claims
/// more than the node holds, it has *stalled*; otherwise it is behind too
/// and is only re-ranked (a peer that claims more takes over, unless the
/// sender is the feed's author, which nobody can be ahead of: a claim above
/// the author's is false, and must not take the feed from it). A connection
/// that reports [`Action::Stalled`](super::Action::Stalled) for the feed
/// ([`stalled`](Self::stalled)) has stalled too. A stalled sender's feed
/// moves to the best other peer (by the ranking above, so one that claims to
/// be ahead comes first) and the staller is skipped for that feed until it
/// reconnects. When every
/// connected peer has stalled on a feed, the marks are cleared and the
/// choice starts over (the last staller comes last): a stalled sender never
/// stops replication. A sender that disconnects hands its feeds over at once.
///
/// # Memory
///
/// Claims are kept per connection, in memory, and forgotten on
/// [`disconnect`](Self::disconnect): a stale claim never outlives its
/// connection and nothing here is persisted.
///
/// # Use
///
/// Report events with [`connect`](Self::connect), [`claims`](Self::claims),
/// [`local`](Self::local), [`stalled`](Self::stalled),
/// [`disconnect`](Self::disconnect), and call [`tick`](Self::tick) when `now`
/// reaches [`poll_timeout`](Self::poll_timeout). After each call, the
/// connections listed by [`pending`](Self::pending) have want changes to
/// apply: drain them with [`take_wants`](Self::take_wants).
#[derive(Debug)]
pub struct ReplicationScheduler {
    own: FeedId,
    stall_timeout: u64,
    next_order: u64,
    peers: BTreeMap<ConnId, Peer>,
    held: BTreeMap<FeedId, u64>,
    feeds: BTreeMap<FeedId, Feed>,
    /// Which claimed feeds become known.
    admission: Admission,
    /// Want changes not yet taken, per connection (the latest per feed).
    outbox: BTreeMap<ConnId, BTreeMap<FeedId, bool>>,
    /// The stall deadlines (`since + stall_timeout`) of the feeds the node
    /// is behind on with a sender, in order: [`tick`](Self::tick) and
    /// [`poll_timeout`](Self::poll_timeout) read only the due ones.
    deadlines: BTreeSet<(u64, FeedId)>,
    /// Each indexed feed's deadline in `deadlines`.
    indexed: BTreeMap<FeedId, u64>,
    /// Feeds whose deadline may have changed since the index was brought
    /// up to date (every public call ends with [`Self::index`]).
    dirty: BTreeSet<FeedId>,
}

impl ReplicationScheduler {
    /// A scheduler for the node whose own feed is `own`, failing over after
    /// `stall_timeout` ms without progress.
    pub fn new(own: FeedId, stall_timeout: u64) -> ReplicationScheduler {
        ReplicationScheduler {
            own,
            stall_timeout,
            next_order: 0,
            peers: BTreeMap::new(),
            held: BTreeMap::new(),
            feeds: BTreeMap::new(),
            admission: Admission::default(),
            outbox: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            indexed: BTreeMap::new(),
            dirty: BTreeSet::new(),
        }
    }

    /// Brings the stall deadlines of the feeds changed since the last call
    /// up to date.
    fn index(&mut self) {
        for feed in std::mem::take(&mut self.dirty) {
            if let Some(old) = self.indexed.remove(&feed) {
                self.deadlines.remove(&(old, feed));
            }
            let deadline = self
                .feeds
                .get(&feed)
                .filter(|f| f.behind && f.sender.is_some())
                .map(|f| f.since.saturating_add(self.stall_timeout));
            if let Some(deadline) = deadline {
                self.deadlines.insert((deadline, feed));
                self.indexed.insert(feed, deadline);
            }
        }
    }

    /// Changes which feeds claims make known (the default is
    /// [`Admission::Open`] with [`DEFAULT_FEED_BUDGET`]). Feeds already
    /// known stay; claims of connected peers that the new rule takes are
    /// considered again.
    pub fn set_admission(&mut self, admission: Admission, now: u64) {
        if self.admission == admission {
            return;
        }
        self.admission = admission;
        let claimed: BTreeSet<FeedId> = self
            .peers
            .values()
            .flat_map(|p| p.claims.iter().filter(|(_, seq)| **seq > 0).map(|(&feed, _)| feed))
            .collect();
        for feed in claimed {
            self.know(feed, now);
        }
        self.index();
    }

    /// A connection to the peer `id` is up (before its machine starts, so
    /// that its first Clock carries the right want flags). Every known feed
    /// without a sender gets this peer; the feeds it authored move to it
    /// once the node is not behind on them. Reporting a connection again
    /// does nothing.
    pub fn connect(&mut self, conn: ConnId, id: FeedId, now: u64) {
        if self.peers.contains_key(&conn) {
            return;
        }
        self.peers.insert(
            conn,
            Peer {
                id,
                order: self.next_order,
                claims: BTreeMap::new(),
            },
        );
        self.next_order += 1;
        let feeds: Vec<FeedId> = self.feeds.keys().copied().collect();
        for feed in feeds {
            if self.sender(&feed).is_none() {
                self.choose(feed, now);
            } else {
                self.refresh(feed, now);
            }
        }
        self.index();
    }

    /// The connection is gone: its claims are forgotten and the feeds it
    /// sent move to other peers at once.
    pub fn disconnect(&mut self, conn: ConnId, now: u64) {
        if self.peers.remove(&conn).is_none() {
            return;
        }
        self.outbox.remove(&conn);
        let feeds: Vec<FeedId> = self.feeds.keys().copied().collect();
        for feed in feeds {
            let Some(state) = self.feeds.get_mut(&feed) else {
                continue;
            };
            state.stalled.remove(&conn);
            if state.sender == Some(conn) {
                state.sender = None;
                self.choose(feed, now);
            } else {
                self.refresh(feed, now);
            }
        }
        self.index();
    }

    /// What the peer on `conn` claims to hold (feed → latest sequence),
    /// all or part of it. Claims only grow within a connection.
    pub fn claims(&mut self, conn: ConnId, clock: impl IntoIterator<Item = (FeedId, u64)>, now: u64) {
        let Some(peer) = self.peers.get_mut(&conn) else { return };
        let mut changed = Vec::new();
        for (feed, latest) in clock {
            let claim = peer.claims.entry(feed).or_insert(0);
            if latest > *claim {
                *claim = latest;
                changed.push(feed);
            }
        }
        for feed in changed {
            self.know(feed, now);
        }
        self.index();
    }

    /// The node stores `feed` up to `seq` (from any source): progress.
    pub fn local(&mut self, feed: FeedId, seq: u64, now: u64) {
        let held = self.held.entry(feed).or_insert(0);
        if seq <= *held {
            return;
        }
        *held = seq;
        if let Some(state) = self.feeds.get_mut(&feed) {
            state.since = now;
        }
        self.know(feed, now);
        self.index();
    }

    /// The connection reported [`Action::Stalled`](super::Action::Stalled)
    /// for `feed`: if it is the feed's sender, fail over now.
    pub fn stalled(&mut self, conn: ConnId, feed: FeedId, now: u64) {
        if self.feeds.get(&feed).is_some_and(|f| f.sender == Some(conn)) {
            self.fail_over(feed, now);
        }
        self.index();
    }

    /// Fails over every feed whose sender made no progress for the stall
    /// timeout while the node is behind.
    pub fn tick(&mut self, now: u64) {
        let due: Vec<FeedId> = self
            .deadlines
            .iter()
            .take_while(|(deadline, _)| *deadline <= now)
            .map(|&(_, feed)| feed)
            .collect();
        for feed in due {
            let held = self.held.get(&feed).copied().unwrap_or(0);
            let sender = self.sender(&feed).and_then(|conn| self.peers.get(&conn));
            if sender.is_some_and(|p| p.claims.get(&feed).is_some_and(|&claim| claim > held)) {
                self.fail_over(feed, now);
            } else {
                // Behind like the node: not stalled, but a peer that claims
                // more may serve better (unless the sender is the author).
                self.choose(feed, now);
            }
        }
        self.index();
    }

    /// When [`tick`](Self::tick) should next be called, if ever (the
    /// earliest stall deadline; constant time).
    pub fn poll_timeout(&self) -> Option<u64> {
        self.deadlines.first().map(|&(deadline, _)| deadline)
    }

    /// The connections with want changes to take.
    pub fn pending(&self) -> Vec<ConnId> {
        self.outbox.keys().copied().collect()
    }

    /// The want changes for `conn` since it last took them, per feed in
    /// ascending order (apply each with
    /// [`PeerSync::set_want`](super::PeerSync::set_want)).
    pub fn take_wants(&mut self, conn: ConnId) -> Vec<(FeedId, bool)> {
        self.outbox
            .remove(&conn)
            .map(|m| m.into_iter().collect())
            .unwrap_or_default()
    }

    /// Whether the node holds `feed` or wants it from a peer (a claimed feed
    /// the admission rule did not take is not known).
    pub fn knows(&self, feed: &FeedId) -> bool {
        self.held.contains_key(feed) || self.feeds.contains_key(feed)
    }

    /// The connection `feed` is wanted from, if any.
    pub fn sender(&self, feed: &FeedId) -> Option<ConnId> {
        self.feeds.get(feed).and_then(|f| f.sender)
    }

    /// Whether `feed` is wanted from the peer on `conn`.
    pub fn wants(&self, conn: ConnId, feed: &FeedId) -> bool {
        self.sender(feed) == Some(conn)
    }

    /// Makes sure `feed` has a sender, and updates whether the node is behind.
    fn know(&mut self, feed: FeedId, now: u64) {
        if feed == self.own || !(self.feeds.contains_key(&feed) || self.held.contains_key(&feed) || self.takes(&feed)) {
            return;
        }
        let state = self.feeds.entry(feed).or_default();
        if state.sender.is_none() {
            self.choose(feed, now);
        } else {
            self.refresh(feed, now);
        }
    }

    /// Whether a feed the node neither holds nor knows may become known.
    fn takes(&self, feed: &FeedId) -> bool {
        match &self.admission {
            Admission::Only(feeds) => feeds.contains(feed),
            Admission::Open { budget } => {
                // The own feed is not in `feeds` but is announced.
                let known = self.feeds.len() + 1;
                known < *budget || (known < MAX_FEEDS_PER_PEER && self.peers.values().any(|p| p.id == *feed))
            }
        }
    }

    /// Marks the sender of `feed` stalled and picks another.
    fn fail_over(&mut self, feed: FeedId, now: u64) {
        let Some(state) = self.feeds.get_mut(&feed) else { return };
        if let Some(old) = state.sender {
            state.stalled.insert(old);
        }
        self.choose(feed, now);
    }

    /// (Re)chooses the sender of `feed` and queues the want changes.
    fn choose(&mut self, feed: FeedId, now: u64) {
        if feed == self.own {
            return;
        }
        self.dirty.insert(feed);
        let state = self.feeds.entry(feed).or_default();
        let old = state.sender;
        if !self.peers.is_empty() && self.peers.keys().all(|c| state.stalled.contains(c)) {
            // Everyone stalled: start over, the last staller last.
            state.stalled.clear();
            if self.peers.len() > 1
                && let Some(old) = old
            {
                state.stalled.insert(old);
            }
        }
        let stalled = &state.stalled;
        let held = self.held.get(&feed).is_some_and(|&seq| seq > 0);
        let best = self
            .peers
            .iter()
            .filter(|(conn, p)| !stalled.contains(conn) && (held || offers(p, &feed)))
            .min_by_key(|(_, p)| {
                let claim = p.claims.get(&feed).copied().unwrap_or(0);
                (p.id != feed, std::cmp::Reverse(claim), p.order)
            })
            .map(|(&conn, _)| conn);
        let new = best.or(old.filter(|c| self.peers.get(c).is_some_and(|p| held || offers(p, &feed))));
        state.sender = new;
        state.since = now;
        if old != new {
            if let Some(old) = old.filter(|c| self.peers.contains_key(c)) {
                self.outbox.entry(old).or_default().insert(feed, false);
            }
            if let Some(new) = new {
                self.outbox.entry(new).or_default().insert(feed, true);
            }
        }
        if new.is_none() && !held {
            // Neither held nor claimed by a connected peer: forgotten.
            self.feeds.remove(&feed);
            return;
        }
        self.refresh(feed, now);
    }

    /// Recomputes whether the node is behind on `feed`; falling behind
    /// starts the stall timer. When it is not behind, hands the feed to its
    /// author if connected and not stalled on it.
    fn refresh(&mut self, feed: FeedId, now: u64) {
        self.dirty.insert(feed);
        let held = self.held.get(&feed).copied().unwrap_or(0);
        // A connected author contradicts any claim above its own.
        let author_claim = self
            .peers
            .values()
            .filter(|p| p.id == feed)
            .filter_map(|p| p.claims.get(&feed).copied())
            .max();
        let behind = self.peers.values().any(|p| {
            p.claims
                .get(&feed)
                .is_some_and(|&c| c > held && author_claim.is_none_or(|author| c <= author))
        });
        let Some(state) = self.feeds.get_mut(&feed) else { return };
        if behind && !state.behind {
            state.since = now;
        }
        state.behind = behind;
        let Some(sender) = state.sender else { return };
        let from_author = self.peers.get(&sender).is_some_and(|p| p.id == feed);
        let author_available = self
            .peers
            .iter()
            .any(|(conn, p)| p.id == feed && !state.stalled.contains(conn));
        if !behind && !from_author && author_available {
            self.choose(feed, now);
        }
    }
}

/// Whether `peer` may be asked for `feed` though the node holds none of it:
/// it is the feed's author or claims to hold some of it.
fn offers(peer: &Peer, feed: &FeedId) -> bool {
    peer.id == *feed || peer.claims.get(feed).is_some_and(|&claim| claim > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> FeedId {
        FeedId([n; 32])
    }

    #[test]
    fn the_author_then_the_highest_claim_then_the_earliest_peer() {
        let mut s = ReplicationScheduler::new(id(0), 1000);
        s.connect(1, id(1), 0);
        s.connect(2, id(2), 0);
        s.connect(3, id(3), 0);
        s.claims(1, [(id(9), 5)], 0);
        assert_eq!(s.sender(&id(9)), Some(1));
        assert_eq!(s.take_wants(1), vec![(id(9), true)]);
        // Sticky: a higher claim elsewhere does not move it.
        s.claims(2, [(id(9), 7)], 1);
        assert_eq!(s.sender(&id(9)), Some(1));
        // The author takes its feed over once the node is not behind.
        s.claims(3, [(id(2), 1)], 2);
        assert_eq!(s.sender(&id(2)), Some(2));
        s.connect(9, id(9), 3);
        assert_eq!(s.sender(&id(9)), Some(1), "behind: the sender stays");
        s.local(id(9), 6, 3);
        assert_eq!(s.sender(&id(9)), Some(1));
        assert!(s.take_wants(9).is_empty());
        s.local(id(9), 7, 3);
        assert_eq!(s.sender(&id(9)), Some(9));
        assert_eq!(s.take_wants(1), vec![(id(9), false)]);
        assert_eq!(s.take_wants(9), vec![(id(9), true)]);
        // The own feed is wanted from nobody.
        s.claims(1, [(id(0), 3)], 4);
        s.local(id(0), 3, 4);
        assert_eq!(s.sender(&id(0)), None);
    }

    #[test]
    fn a_stalled_sender_is_replaced_and_a_lone_one_kept() {
        let mut s = ReplicationScheduler::new(id(0), 1000);
        s.connect(1, id(1), 0);
        s.connect(2, id(2), 0);
        s.claims(1, [(id(9), 5)], 10);
        assert_eq!(s.sender(&id(9)), Some(1));
        assert_eq!(s.poll_timeout(), Some(1010));
        s.local(id(9), 2, 500);
        s.tick(1400);
        assert_eq!(s.sender(&id(9)), Some(1), "progress restarts the timer");
        s.claims(2, [(id(9), 5)], 600);
        s.tick(1500);
        assert_eq!(s.sender(&id(9)), Some(2));
        s.pending();
        s.tick(2500);
        // Both stalled: start over with the other one.
        assert_eq!(s.sender(&id(9)), Some(1));
        s.disconnect(1, 2600);
        assert_eq!(s.sender(&id(9)), Some(2));
        s.tick(3600);
        assert_eq!(s.sender(&id(9)), Some(2), "the only peer stays the sender");
        s.local(id(9), 5, 3700);
        assert_eq!(s.poll_timeout(), None);
    }

    #[test]
    fn a_false_claim_does_not_take_a_feed_from_its_author() {
        let mut s = ReplicationScheduler::new(id(0), 1000);
        s.connect(1, id(9), 0);
        s.connect(2, id(2), 0);
        s.local(id(9), 5, 0);
        s.claims(1, [(id(9), 5)], 0);
        s.claims(2, [(id(9), 1_000_000)], 0);
        assert_eq!(s.sender(&id(9)), Some(1));
        for t in 1..5 {
            s.tick(t * 1000);
            assert_eq!(s.sender(&id(9)), Some(1));
        }
        // A relay behind like the node gives way to one that claims more.
        s.connect(3, id(3), 5000);
        s.connect(4, id(4), 5000);
        s.claims(3, [(id(8), 2)], 5000);
        assert_eq!(s.sender(&id(8)), Some(3));
        s.local(id(8), 2, 5000);
        s.claims(4, [(id(8), 4)], 5000);
        s.tick(5999);
        assert_eq!(s.sender(&id(8)), Some(3));
        s.tick(6000);
        assert_eq!(s.sender(&id(8)), Some(4));
    }

    #[test]
    fn claimed_but_never_held_feeds_are_kept_only_for_their_claimer() {
        let mut s = ReplicationScheduler::new(id(0), 1000);
        s.connect(1, id(1), 0);
        s.connect(2, id(2), 0);
        // Peer 2 claims feeds nobody else has; only it is asked for them.
        s.claims(2, (10..20).map(|n| (id(n), 1)), 0);
        assert_eq!(s.take_wants(2), (10..20).map(|n| (id(n), true)).collect::<Vec<_>>());
        assert!(
            s.take_wants(1).is_empty(),
            "not wanted from a peer that never claimed them"
        );
        s.local(id(10), 1, 1);
        // It leaves: the feeds the node never held are forgotten, not wanted
        // from the others (nor from a newcomer); the held one moves.
        s.disconnect(2, 2);
        assert_eq!(s.take_wants(1), vec![(id(10), true)]);
        s.connect(3, id(3), 3);
        assert!(s.take_wants(3).is_empty());
        assert!((11..20).all(|n| s.sender(&id(n)).is_none()));
        assert_eq!(s.feeds.len(), 1, "only the held feed is remembered");
        // Claimed again by a connected peer, it is wanted from that peer.
        s.claims(3, [(id(11), 4)], 4);
        assert_eq!(s.take_wants(3), vec![(id(11), true)]);
    }

    #[test]
    fn an_open_node_takes_feeds_up_to_its_budget_then_only_connected_authors() {
        let mut s = ReplicationScheduler::new(id(0), 1000);
        s.set_admission(Admission::Open { budget: 4 }, 0);
        s.connect(1, id(1), 0);
        s.claims(1, (10..20).map(|n| (id(n), 1)), 0);
        // Own feed + 3 known = the budget: the other 7 claims are not wanted.
        let wanted: Vec<FeedId> = (10..20).map(id).filter(|f| s.sender(f).is_some()).collect();
        assert_eq!(wanted, vec![id(10), id(11), id(12)]);
        // A connected author's own feed is still taken, beyond the budget.
        s.claims(1, [(id(1), 2)], 1);
        assert_eq!(s.sender(&id(1)), Some(1));
        // A feed the node stores (a bundle, a fetch) is always known.
        s.local(id(30), 1, 2);
        assert!(s.feeds.contains_key(&id(30)));
    }

    #[test]
    fn with_admins_only_members_feeds_are_taken_and_new_members_are_wanted_at_once() {
        let mut s = ReplicationScheduler::new(id(0), 1000);
        s.set_admission(Admission::Only([id(1)].into()), 0);
        s.connect(1, id(1), 0);
        s.claims(1, [(id(1), 3), (id(7), 2), (id(8), 2)], 0);
        assert_eq!(s.take_wants(1), vec![(id(1), true)]);
        assert_eq!(s.sender(&id(7)), None, "not a member: not wanted");
        // An admin admits feed 7: the claim still held for the connection counts.
        s.set_admission(Admission::Only([id(1), id(7)].into()), 1);
        assert_eq!(s.take_wants(1), vec![(id(7), true)]);
        assert_eq!(s.sender(&id(8)), None);
    }

    #[test]
    fn a_claim_above_the_connected_authors_own_does_not_stall_the_feed() {
        let mut s = ReplicationScheduler::new(id(0), 1000);
        s.connect(1, id(1), 0);
        s.connect(2, id(2), 0);
        s.local(id(1), 5, 0);
        s.claims(1, [(id(1), 5)], 0);
        // Peer 2 claims more of feed 1 than its author: nobody holds more
        // than the author, so the node is not behind and nothing fails over.
        s.claims(2, [(id(1), 9)], 1);
        assert_eq!(s.poll_timeout(), None);
        s.tick(5000);
        assert_eq!(s.sender(&id(1)), Some(1));
        // The author claiming more makes the node behind again.
        s.claims(1, [(id(1), 6)], 6000);
        assert_eq!(s.poll_timeout(), Some(7000));
    }

    /// The stall deadlines kept in order agree with computing them from
    /// every feed, after every call, over random events.
    #[test]
    fn poll_timeout_is_the_earliest_deadline_of_every_feed_behind() {
        let brute = |s: &ReplicationScheduler| {
            s.feeds
                .values()
                .filter(|f| f.behind && f.sender.is_some())
                .map(|f| f.since.saturating_add(s.stall_timeout))
                .min()
        };
        for seed in 0..200u64 {
            let mut rng = crate::rng::SplitMix64::new(seed);
            let mut s = ReplicationScheduler::new(id(0), 50);
            let mut now = 0;
            for _ in 0..200 {
                now += rng.next_u64() % 40;
                let conn = rng.next_u64() % 4;
                let feed = id(1 + (rng.next_u64() % 6) as u8);
                match rng.next_u64() % 6 {
                    0 => s.connect(conn, id(1 + conn as u8), now),
                    1 => s.disconnect(conn, now),
                    2 => s.claims(conn, [(feed, rng.next_u64() % 20)], now),
                    3 => s.local(feed, rng.next_u64() % 20, now),
                    4 => s.stalled(conn, feed, now),
                    _ => s.tick(now),
                }
                assert_eq!(s.poll_timeout(), brute(&s), "seed {seed} at {now}");
            }
        }
    }
}
