//! The history window of a network (spec/SESSIONS.md §2.6): the two
//! settings every node of a network shares, and what follows from them.
//!
//! - The *session lifetime* `L` bounds every session: an operation's ttl
//!   counts for at most `L`, and a session expires at most `L` after the
//!   put that set its value, whatever touches follow.
//! - The *retention margin* `M` is how late an entry may arrive and still
//!   be folded with every guarantee of the spec.
//!
//! From them: a revocation kills the puts and touches of its key dated up
//! to [`HistoryWindow::reach_ms`] (`M + MAX_DRIFT_MS`) after it, the time an
//! honest writer may take to learn of it; and every session operation
//! dated more than [`HistoryWindow::window_ms`] (`2L + M + MAX_DRIFT_MS`)
//! before now is *dead*: folding only the entries inside the window gives
//! the state of folding them all.

use crate::clock::MAX_DRIFT_MS;
use crate::view::MAX_TTL_MS;

/// The default session lifetime: 24 hours.
pub const DEFAULT_SESSION_LIFETIME_MS: u64 = 24 * 3600 * 1000;
/// The default retention margin: 1 hour.
pub const DEFAULT_RETENTION_MARGIN_MS: u64 = 3600 * 1000;
/// The greatest retention margin: 7 days.
pub const MAX_RETENTION_MARGIN_MS: u64 = 7 * 24 * 3600 * 1000;

/// A network's session lifetime and retention margin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HistoryWindow {
    lifetime_ms: u64,
    margin_ms: u64,
}

/// Why a session lifetime or retention margin is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WindowError {
    /// The session lifetime is 0 or above [`MAX_TTL_MS`].
    #[error("session lifetime {0} ms is outside 1..={MAX_TTL_MS}")]
    Lifetime(u64),
    /// The retention margin is above [`MAX_RETENTION_MARGIN_MS`].
    #[error("retention margin {0} ms is above {MAX_RETENTION_MARGIN_MS}")]
    Margin(u64),
}

impl Default for HistoryWindow {
    fn default() -> HistoryWindow {
        HistoryWindow {
            lifetime_ms: DEFAULT_SESSION_LIFETIME_MS,
            margin_ms: DEFAULT_RETENTION_MARGIN_MS,
        }
    }
}

impl HistoryWindow {
    /// The window of a session lifetime (1 ms to [`MAX_TTL_MS`]) and a
    /// retention margin (0 to [`MAX_RETENTION_MARGIN_MS`]).
    pub fn new(lifetime_ms: u64, margin_ms: u64) -> Result<HistoryWindow, WindowError> {
        if lifetime_ms == 0 || lifetime_ms > MAX_TTL_MS {
            return Err(WindowError::Lifetime(lifetime_ms));
        }
        if margin_ms > MAX_RETENTION_MARGIN_MS {
            return Err(WindowError::Margin(margin_ms));
        }
        Ok(HistoryWindow { lifetime_ms, margin_ms })
    }

    /// The session lifetime `L`, in milliseconds.
    pub fn lifetime_ms(&self) -> u64 {
        self.lifetime_ms
    }

    /// The retention margin `M`, in milliseconds.
    pub fn margin_ms(&self) -> u64 {
        self.margin_ms
    }

    /// How long after a revocation its key's later puts and touches are
    /// still killed: `M + MAX_DRIFT_MS`. A writer learns of an entry within
    /// `M` of local time, and its timestamps run at most `MAX_DRIFT_MS`
    /// ahead of its local time, so every operation of a writer that had
    /// not yet seen the revocation is dated before this (spec/SESSIONS.md §2.3).
    pub fn reach_ms(&self) -> u64 {
        self.margin_ms + MAX_DRIFT_MS
    }

    /// The history window `W = 2L + M + MAX_DRIFT_MS`: a session operation
    /// dated before `now - W` is dead (spec/SESSIONS.md §2.6).
    pub fn window_ms(&self) -> u64 {
        2 * self.lifetime_ms + self.reach_ms()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_bounded_and_the_window_follows_from_them() {
        let window = HistoryWindow::new(60_000, 10_000).unwrap();
        assert_eq!(window.reach_ms(), 70_000);
        assert_eq!(window.window_ms(), 190_000);
        assert_eq!(HistoryWindow::new(0, 0), Err(WindowError::Lifetime(0)));
        assert_eq!(
            HistoryWindow::new(MAX_TTL_MS + 1, 0),
            Err(WindowError::Lifetime(MAX_TTL_MS + 1))
        );
        assert_eq!(
            HistoryWindow::new(1, MAX_RETENTION_MARGIN_MS + 1),
            Err(WindowError::Margin(MAX_RETENTION_MARGIN_MS + 1))
        );
        assert!(HistoryWindow::new(MAX_TTL_MS, MAX_RETENTION_MARGIN_MS).is_ok());
        assert_eq!(HistoryWindow::default().window_ms(), 49 * 3600 * 1000 + 60_000);
    }
}
