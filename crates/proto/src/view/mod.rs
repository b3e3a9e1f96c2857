//! Views: application state folded from every member's feed. Depends only on
//! [`crate::feed`] and [`crate::clock`]; no I/O.
//!
//! - [`ops`]: the operation payload of a session entry and its codec
//!   (spec/SESSIONS.md §1).
//! - [`sessions`]: the session view, the fold of those operations
//!   (spec/SESSIONS.md §2–3).
//! - [`members`]: membership, which feeds' entries are folded
//!   (spec/SESSIONS.md §5).
//! - [`snapshot`]: the folded state saved with the entries it covers, so
//!   that a restart folds only what came after (spec/SESSIONS.md §6.7).

mod key;
pub mod members;
pub mod ops;
pub mod sessions;
pub mod snapshot;

pub use members::{Member, Membership};
pub use ops::{
    MAX_KEY, MAX_OPS, MAX_OWNER, MAX_TTL_MS, MAX_VALUE, Op, OpsError, ValueError, decode_ops, decode_value, encode_ops,
    encode_value,
};
pub use sessions::{Offered, OpId, RETENTION_MARGIN_MS, Session, SessionView, ViewDecodeError};
pub use snapshot::{SNAPSHOT_MAGIC, Snapshot, SnapshotError, SnapshotWriter};
