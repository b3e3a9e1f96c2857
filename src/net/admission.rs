//! Handshake slots (spec/PROTOCOL.md §3.5): a node-wide budget of unfinished
//! inbound handshakes, apart from established connections, with a limit per
//! source address. Sans-IO: the listener asks for a slot for every accepted
//! socket and is told which older handshakes to drop to make room.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use tokio::sync::Notify;

/// Default node-wide number of unfinished inbound handshakes.
pub const DEFAULT_MAX_HANDSHAKES: usize = 32;
/// Default number of unfinished inbound handshakes from one IP address.
pub const DEFAULT_MAX_HANDSHAKES_PER_ADDR: usize = 8;

/// The unfinished inbound handshakes of a node. A new socket always gets a
/// slot: when its address already holds `per_addr` slots, the oldest of
/// them is dropped; when all `max` slots are taken, the oldest slot of the
/// address holding the most is dropped. So silent or slow sockets cannot
/// keep a newcomer out: a handshake that needs milliseconds finishes before
/// an attacker can open enough sockets to push it out.
#[derive(Debug)]
pub struct HandshakeSlots {
    max: usize,
    per_addr: usize,
    next: u64,
    /// Slot ticket (increasing: oldest first) → its address and how to drop it.
    pending: BTreeMap<u64, (IpAddr, Arc<Notify>)>,
}

impl HandshakeSlots {
    /// Slots for `max` handshakes at once, `per_addr` from one address (both
    /// raised to at least 1).
    pub fn new(max: usize, per_addr: usize) -> HandshakeSlots {
        HandshakeSlots {
            max: max.max(1),
            per_addr: per_addr.max(1),
            next: 0,
            pending: BTreeMap::new(),
        }
    }

    /// Takes a slot for a handshake from `addr`, dropping older handshakes
    /// (their [`Notify`] is notified) to make room. Returns the slot's ticket,
    /// for [`HandshakeSlots::release`], and the notify that drops it.
    pub fn admit(&mut self, addr: IpAddr) -> (u64, Arc<Notify>) {
        if self.count(addr) >= self.per_addr {
            self.drop_oldest_of(addr);
        } else if self.pending.len() >= self.max {
            let busiest = self.busiest();
            self.drop_oldest_of(busiest);
        }
        let ticket = self.next;
        self.next += 1;
        let drop = Arc::new(Notify::new());
        self.pending.insert(ticket, (addr, drop.clone()));
        (ticket, drop)
    }

    /// Frees the slot `ticket` (its handshake finished or failed).
    pub fn release(&mut self, ticket: u64) {
        self.pending.remove(&ticket);
    }

    /// Unfinished handshakes held now.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether no handshake is unfinished.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    fn count(&self, addr: IpAddr) -> usize {
        self.pending.values().filter(|(a, _)| *a == addr).count()
    }

    /// The address holding the most slots (the one holding the oldest slot
    /// among equals). Only called with at least one slot taken.
    fn busiest(&self) -> IpAddr {
        let mut counts: BTreeMap<IpAddr, (usize, u64)> = BTreeMap::new();
        for (&ticket, (addr, _)) in &self.pending {
            counts.entry(*addr).or_insert((0, ticket)).0 += 1;
        }
        counts
            .into_iter()
            .max_by_key(|&(_, (count, oldest))| (count, std::cmp::Reverse(oldest)))
            .map(|(addr, _)| addr)
            .unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    fn drop_oldest_of(&mut self, addr: IpAddr) {
        let oldest = self.pending.iter().find(|(_, (a, _))| *a == addr).map(|(&t, _)| t);
        if let Some((_, drop)) = oldest.and_then(|ticket| self.pending.remove(&ticket)) {
            drop.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn one_address_only_pushes_out_its_own_handshakes() {
        let mut slots = HandshakeSlots::new(4, 2);
        let (_, honest) = slots.admit(ip(1));
        let (_, first) = slots.admit(ip(2));
        let _ = slots.admit(ip(2));
        for _ in 0..10 {
            let _ = slots.admit(ip(2));
        }
        assert_eq!(slots.len(), 3);
        // The honest handshake is still held; the attacker's oldest was dropped.
        assert!(slots.pending.values().any(|(_, n)| Arc::ptr_eq(n, &honest)));
        assert!(!slots.pending.values().any(|(_, n)| Arc::ptr_eq(n, &first)));
    }

    #[test]
    fn a_full_budget_drops_the_busiest_address_first() {
        let mut slots = HandshakeSlots::new(4, 3);
        let (_, honest) = slots.admit(ip(1));
        for _ in 0..3 {
            let _ = slots.admit(ip(2));
        }
        let (newcomer, _) = slots.admit(ip(3));
        assert_eq!(slots.len(), 4);
        assert!(slots.pending.values().any(|(_, n)| Arc::ptr_eq(n, &honest)));
        assert_eq!(slots.count(ip(2)), 2);
        slots.release(newcomer);
        assert_eq!(slots.len(), 3);
    }
}
