//! The node-wide byte budget for what connections buffer of incoming
//! messages (spec/PROTOCOL.md §2.2 "Memory per node").
//!
//! A message of at most [`SMALL_MESSAGE`] bytes is read on the connection's
//! own share (its fixed read buffers) and always proceeds. A larger one takes
//! a reservation of its declared length from the node's pool as soon as its
//! length prefix is in, before any of its body is read; while the pool has
//! no room, the node stops reading that socket (TCP backpressure) and does
//! not disconnect it. Once granted, the whole message must arrive within the
//! budget's deadline, or the connection is dropped
//! ([`super::StreamError::SlowMessage`]). The reservation is released when
//! the connection asks for its next message.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::framing::MIN_MAX_MESSAGE;

/// Default node-wide budget: 64 MiB, fifteen messages of the default
/// maximum size ([`super::MAX_MESSAGE`]) in flight at once across all
/// connections, instead of one per connection (64 connections × 4.06 MiB ≈
/// 260 MiB without it).
pub const DEFAULT_BUFFER_BUDGET: usize = 64 * 1024 * 1024;
/// Messages up to this many bytes (64 KiB, one Noise frame) need no
/// reservation: they fit the connection's own read buffers.
pub const SMALL_MESSAGE: usize = MIN_MAX_MESSAGE;
/// Default time a large message has to arrive whole once its reservation is
/// granted: 30 s, a floor of about 142 KiB/s for a message of
/// [`super::MAX_MESSAGE`] bytes.
pub const DEFAULT_MESSAGE_DEADLINE: Duration = Duration::from_secs(30);

/// A pending reservation (boxed so that a cancelled `recv` keeps its place
/// in the queue).
/// It yields `None` only if the pool were closed, which it never is.
pub(crate) type Reserving = Pin<Box<dyn Future<Output = Option<OwnedSemaphorePermit>> + Send>>;

/// A node's pool of bytes for large incoming messages, shared by its
/// connections (clones share the pool).
#[derive(Debug, Clone)]
pub struct BufferBudget {
    pool: Arc<Semaphore>,
    total: usize,
    deadline: Duration,
}

impl BufferBudget {
    /// A pool of `total` bytes (clamped to what a semaphore holds); a
    /// granted message must arrive whole within `deadline`.
    pub fn new(total: usize, deadline: Duration) -> BufferBudget {
        let total = total.min(Semaphore::MAX_PERMITS);
        BufferBudget {
            pool: Arc::new(Semaphore::new(total)),
            total,
            deadline,
        }
    }

    /// The pool's size in bytes.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Bytes reserved now by messages being received.
    pub fn used(&self) -> usize {
        self.total - self.pool.available_permits()
    }

    /// How long a granted message has to arrive whole.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// Waits (first come, first served) for `len` bytes of the pool, or
    /// `None` when a message of `len` bytes needs no reservation.
    pub(crate) fn reserve(&self, len: usize) -> Option<Reserving> {
        if len <= SMALL_MESSAGE {
            return None;
        }
        // A message larger than the pool would wait forever: it takes it all.
        let permits = u32::try_from(len.min(self.total)).unwrap_or(u32::MAX);
        let pool = self.pool.clone();
        Some(Box::pin(async move { pool.acquire_many_owned(permits).await.ok() }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn large_messages_wait_for_room_and_small_ones_need_none() {
        let budget = BufferBudget::new(3 * SMALL_MESSAGE, Duration::from_secs(1));
        assert!(budget.reserve(SMALL_MESSAGE).is_none());
        let first = budget.reserve(2 * SMALL_MESSAGE).expect("large").await;
        assert_eq!(budget.used(), 2 * SMALL_MESSAGE);
        let mut second = budget.reserve(2 * SMALL_MESSAGE).expect("large");
        assert!(
            tokio::time::timeout(Duration::ZERO, &mut second).await.is_err(),
            "no room yet"
        );
        drop(first);
        let _second = second.await;
        assert_eq!(budget.used(), 2 * SMALL_MESSAGE);
    }
}
