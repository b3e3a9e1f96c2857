//! The ranges a connection owes its peer (spec/PROTOCOL.md §2.2 "Requests"
//! and the live stream), queued by [`PeerSync`](super::PeerSync) and read
//! from the store by the driver with [`read_ranges`](super::read_ranges).

use std::collections::{BTreeMap, VecDeque};

use super::peer::MAX_FEEDS_PER_PEER;
use crate::feed::FeedId;

/// The most ranges waiting to be read and sent, per connection; a peer whose
/// requests queue more is disconnected
/// ([`ProtocolError::Flooding`](super::ProtocolError::Flooding)). The ranges
/// of a feed are coalesced, so an honest peer (one live stream and at most
/// one Request per feed, at most [`MAX_FEEDS_PER_PEER`] feeds) never comes
/// near it, whatever the node holds (spec/PROTOCOL.md §2.2, MAX_QUEUED_RANGES).
pub const MAX_PENDING_RANGES: usize = 2 * MAX_FEEDS_PER_PEER;

/// A range of a feed to send: (feed, from, to).
pub type Range = (FeedId, u64, u64);

/// The ranges a connection has to read and send, per feed in the order the
/// feeds were first queued, each feed's ranges in order. A range that starts
/// inside or right after the last one queued for its feed extends it, so the
/// live stream of a feed is one range however often the feed grows.
#[derive(Debug, Default)]
pub(crate) struct SendQueue {
    /// Feeds with ranges waiting, the next to send first.
    order: VecDeque<FeedId>,
    /// The waiting ranges of each feed in `order`: (from, to).
    ranges: BTreeMap<FeedId, VecDeque<(u64, u64)>>,
    /// How many ranges wait, over all feeds.
    len: usize,
}

impl SendQueue {
    /// Queues `from..=to` of `feed`; false (and nothing queued) if that
    /// would make more than [`MAX_PENDING_RANGES`] ranges.
    pub(crate) fn push(&mut self, feed: FeedId, from: u64, to: u64) -> bool {
        if let Some(last) = self.ranges.get_mut(&feed).and_then(|r| r.back_mut())
            && last.0 <= from
            && from <= last.1.saturating_add(1)
        {
            last.1 = last.1.max(to);
            return true;
        }
        if self.len >= MAX_PENDING_RANGES {
            return false;
        }
        let ranges = self.ranges.entry(feed).or_default();
        if ranges.is_empty() {
            self.order.push_back(feed);
        }
        ranges.push_back((from, to));
        self.len += 1;
        true
    }

    /// Drops every range of `feed` (it froze: nothing more of it is sent).
    pub(crate) fn forget(&mut self, feed: &FeedId) {
        if let Some(ranges) = self.ranges.remove(feed) {
            self.len -= ranges.len();
            self.order.retain(|f| f != feed);
        }
    }

    /// Whether nothing waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The next range to send: (feed, from, to).
    fn front(&self) -> Option<(FeedId, u64, u64)> {
        let feed = *self.order.front()?;
        let &(from, to) = self.ranges.get(&feed)?.front()?;
        Some((feed, from, to))
    }

    /// Takes the next ranges to send, `limit` entries in all: whole ranges
    /// from the front (each feed's next range, feeds in turn), the last one
    /// cut (its rest stays queued).
    pub(crate) fn take(&mut self, limit: usize) -> Vec<(FeedId, u64, u64)> {
        let mut taken = Vec::new();
        let mut left = limit as u64;
        while left > 0 {
            let Some((feed, from, to)) = self.front() else { break };
            let len = to.saturating_sub(from).saturating_add(1);
            if len <= left {
                self.pop_front();
                taken.push((feed, from, to));
                left -= len;
            } else {
                let end = from + left - 1;
                self.advance_front(end + 1);
                taken.push((feed, from, end));
                left = 0;
            }
        }
        taken
    }

    /// Puts `from..=to` of `feed` back in front of the feed's ranges (the
    /// rest of a range that one read could not take), the feed first in
    /// turn if it had no other range queued.
    pub(crate) fn push_front(&mut self, feed: FeedId, from: u64, to: u64) {
        let ranges = self.ranges.entry(feed).or_default();
        if ranges.is_empty() {
            self.order.push_front(feed);
        }
        ranges.push_front((from, to));
        self.len += 1;
    }

    /// The front range was sent up to `next - 1`: it goes on from `next`.
    fn advance_front(&mut self, next: u64) {
        if let Some(range) = self
            .order
            .front()
            .and_then(|feed| self.ranges.get_mut(feed))
            .and_then(|r| r.front_mut())
        {
            range.0 = next;
        }
    }

    /// The front range was sent whole: drops it; the feed goes to the back
    /// if it has more, so that one busy feed does not hold up the others.
    fn pop_front(&mut self) {
        let Some(feed) = self.order.pop_front() else { return };
        let Some(ranges) = self.ranges.get_mut(&feed) else {
            return;
        };
        if ranges.pop_front().is_some() {
            self.len -= 1;
        }
        if ranges.is_empty() {
            self.ranges.remove(&feed);
        } else {
            self.order.push_back(feed);
        }
    }
}
