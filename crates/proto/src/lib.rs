//! feedmesh's protocol, with no I/O and no async runtime: what a feed is,
//! how it is stored, how two peers replicate it, and how the session view
//! folds all feeds. The `feedmesh` crate builds a node on it (transport,
//! tasks, HTTP) and re-exports every module here under the same path, so
//! `feedmesh::feed` is `feedmesh_proto::feed`.
//!
//! Modules, from the ground up:
//!
//! - [`feed`]: identities, the entry format, signatures, chain validation,
//!   fork proofs (spec/PROTOCOL.md part 1).
//! - [`clock`]: the hybrid logical clock that stamps entries.
//! - [`store`]: the [`store::Store`] trait with an on-disk backend (redb,
//!   feature `redb`, on by default) and an in-memory one.
//! - [`writer`]: appending to a node's own feed (links, clock, batching).
//! - [`bundle`]: the export/import format for entries with their payloads.
//! - [`integrity`]: re-verifying a whole store from scratch.
//! - [`sync`]: replication as a state machine per peer and the scheduler
//!   across peers, with their wire messages (spec/PROTOCOL.md part 2).
//! - [`view`]: the session view, folding every author's session operations
//!   into shared state, and membership (spec/SESSIONS.md).
//! - [`rng`]: seeded pseudo-random numbers, for what callers draw and want
//!   to replay (a node's redial jitter, simulations).
//!
//! Behind feature `test-utils`, for tests and benchmarks only: `sim`, N nodes
//! replicating over in-memory connections on a virtual clock.

pub mod bundle;
pub mod clock;
pub mod feed;
pub mod integrity;
pub mod rng;
#[cfg(feature = "test-utils")]
pub mod sim;
pub mod store;
pub mod sync;
pub mod view;
pub mod writer;
