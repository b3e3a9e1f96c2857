//! Hybrid logical clock (Kulkarni et al., 2014) stamping local entries.
//!
//! A [`Timestamp`] packs milliseconds since the Unix epoch (upper 48 bits)
//! and a logical counter (lower 16 bits) into one `u64`, so timestamps order
//! as plain integers and encode as one CBOR unsigned integer
//! (spec/PROTOCOL.md §1.5). The clock never goes backwards: a local event is
//! stamped after every event it has seen, local or received, whatever the
//! wall clock says.

use std::fmt;
use std::sync::Arc;

/// Bits of the logical counter in a [`Timestamp`].
pub const LOGICAL_BITS: u32 = 16;
const LOGICAL_MASK: u64 = (1 << LOGICAL_BITS) - 1;

/// How far ahead of local wall time a received timestamp may be and still
/// advance the local clock, in milliseconds.
pub const MAX_DRIFT_MS: u64 = 60_000;

/// A hybrid-logical-clock time: `(wall_ms << 16) | logical`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The timestamp with the given packed value.
    pub const fn from_u64(value: u64) -> Timestamp {
        Timestamp(value)
    }

    /// The timestamp for a wall-clock time and logical counter. The wall time
    /// is truncated to 48 bits (enough until the year 10889).
    pub const fn new(wall_ms: u64, logical: u16) -> Timestamp {
        Timestamp(((wall_ms & ((1 << 48) - 1)) << LOGICAL_BITS) | logical as u64)
    }

    /// The packed value, as encoded in entries.
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// Milliseconds since the Unix epoch.
    pub const fn wall_ms(self) -> u64 {
        self.0 >> LOGICAL_BITS
    }

    /// The logical counter.
    pub const fn logical(self) -> u16 {
        (self.0 & LOGICAL_MASK) as u16
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.wall_ms(), self.logical())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A hybrid logical clock. Pure: the caller passes the wall-clock time in, so
/// the clock is deterministic under test and in simulation.
#[derive(Clone, Debug, Default)]
pub struct HybridClock {
    last: Timestamp,
}

impl HybridClock {
    /// A clock that has seen nothing yet.
    pub fn new() -> HybridClock {
        HybridClock::default()
    }

    /// A clock that has already seen `last` (for example the head of the
    /// node's own feed after a restart).
    pub fn starting_after(last: Timestamp) -> HybridClock {
        HybridClock { last }
    }

    /// The latest timestamp issued or observed.
    pub fn last(&self) -> Timestamp {
        self.last
    }

    /// Stamps a local event at wall time `now_ms`: strictly greater than
    /// every timestamp issued or observed before.
    pub fn tick(&mut self, now_ms: u64) -> Timestamp {
        let wall = Timestamp::new(now_ms, 0);
        self.last = if wall > self.last {
            wall
        } else {
            // Same or earlier millisecond: advance the logical counter, which
            // carries into the millisecond field when it overflows. Saturates
            // rather than wrapping (only reachable by observing absurd times,
            // which `observe` refuses).
            Timestamp(self.last.0.saturating_add(1))
        };
        self.last
    }

    /// Takes a timestamp received from elsewhere into account, so the next
    /// [`HybridClock::tick`] is ordered after it. A timestamp more than
    /// [`MAX_DRIFT_MS`] ahead of `now_ms` is not followed (a node whose clock
    /// runs far ahead must not drag every other clock with it); returns
    /// whether the timestamp was within bounds.
    pub fn observe(&mut self, remote: Timestamp, now_ms: u64) -> bool {
        if remote.wall_ms() > now_ms.saturating_add(MAX_DRIFT_MS) {
            return false;
        }
        if remote > self.last {
            self.last = remote;
        }
        true
    }
}

/// The system's wall-clock time in milliseconds since the Unix epoch (0 if
/// the system clock is before 1970). The one place that reads the clock;
/// everything below the node takes `now` as an argument.
pub fn system_time_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Where a node reads wall-clock time: the system clock
/// ([`WallClock::system`], the default) or, for tests and simulations, any
/// function returning milliseconds since the Unix epoch.
#[derive(Clone)]
pub struct WallClock(Arc<dyn Fn() -> u64 + Send + Sync>);

impl WallClock {
    /// The system clock ([`system_time_ms`]).
    pub fn system() -> WallClock {
        WallClock(Arc::new(system_time_ms))
    }

    /// A clock reading `now` (milliseconds since the Unix epoch).
    pub fn from_fn(now: impl Fn() -> u64 + Send + Sync + 'static) -> WallClock {
        WallClock(Arc::new(now))
    }

    /// The current reading, in milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        (self.0)()
    }
}

impl Default for WallClock {
    fn default() -> WallClock {
        WallClock::system()
    }
}

impl fmt::Debug for WallClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WallClock({})", self.now_ms())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_strictly_increasing_even_when_wall_time_stalls_or_goes_back() {
        let mut clock = HybridClock::new();
        let a = clock.tick(1_000);
        let b = clock.tick(1_000);
        let c = clock.tick(900);
        assert!(a < b && b < c);
        assert_eq!((c.wall_ms(), c.logical()), (1_000, 2));
        let d = clock.tick(2_000);
        assert_eq!((d.wall_ms(), d.logical()), (2_000, 0));
    }

    #[test]
    fn an_observed_remote_time_orders_the_next_local_event_after_it() {
        let mut clock = HybridClock::new();
        clock.tick(1_000);
        // A peer whose wall clock is 200 ms ahead.
        let remote = Timestamp::new(1_200, 5);
        assert!(clock.observe(remote, 1_001));
        let local = clock.tick(1_001);
        assert!(local > remote);
    }

    #[test]
    fn a_timestamp_far_in_the_future_is_not_followed() {
        let mut clock = HybridClock::new();
        let now = 1_000_000;
        assert!(!clock.observe(Timestamp::from_u64(u64::MAX), now));
        assert!(!clock.observe(Timestamp::new(now + MAX_DRIFT_MS + 1, 0), now));
        let local = clock.tick(now);
        assert_eq!(local, Timestamp::new(now, 0));
        // Saturation instead of a wrap, whatever the state.
        let mut stuck = HybridClock::starting_after(Timestamp::from_u64(u64::MAX));
        assert_eq!(stuck.tick(0), Timestamp::from_u64(u64::MAX));
    }
}
