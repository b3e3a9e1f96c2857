//! Views: application state folded from every member's feed. Depends only on
//! [`crate::feed`] and [`crate::clock`]; no I/O.
//!
//! - [`ops`]: the operation payload of a session entry and its codec
//!   (spec/SESSIONS.md §1).
//! - [`sessions`]: the session view, the fold of those operations
//!   (spec/SESSIONS.md §2–3).
//! - [`window`]: the network's session lifetime and retention margin,
//!   and the history window that follows from them (spec/SESSIONS.md §2.6).
//! - [`members`]: membership, which feeds' entries are folded
//!   (spec/SESSIONS.md §5).
//! - [`snapshot`]: the folded state saved with the entries it covers, so
//!   that a restart folds only what came after (spec/SESSIONS.md §6.7).

mod key;
pub mod members;
pub mod ops;
pub mod sessions;
pub mod snapshot;
pub mod window;

pub use members::{Member, Membership};
pub use ops::{
    MAX_KEY, MAX_OPS, MAX_OWNER, MAX_TTL_MS, MAX_VALUE, Op, OpsError, ValueError, decode_ops, decode_value, encode_ops,
    encode_value,
};
pub use sessions::{Offered, OpId, Session, SessionView, ViewDecodeError};
pub use snapshot::{SNAPSHOT_MAGIC, Snapshot, SnapshotError, SnapshotWriter};
pub use window::{
    DEFAULT_RETENTION_MARGIN_MS, DEFAULT_SESSION_LIFETIME_MS, HistoryWindow, MAX_RETENTION_MARGIN_MS, WindowError,
};
