//! feedmesh: append-only signed-log replication.
//!
//! Every node writes only to its own feed: a hash-chained sequence of entries,
//! each signed with the node's ed25519 key. Feeds replicate between peers, and
//! views fold them into application state.
//!
//! Modules, from the ground up. The first nine are the protocol crate
//! `feedmesh-proto` (crates/proto: no I/O, no async runtime), re-exported
//! here under the same paths:
//!
//! - [`feed`]: identities, the entry format, signatures, chain validation,
//!   fork proofs (spec/PROTOCOL.md part 1).
//! - [`clock`]: the hybrid logical clock that stamps entries.
//! - [`store`]: the [`store::Store`] trait with an on-disk (redb) and an
//!   in-memory backend.
//! - [`sync`]: replication as a sans-IO state machine per peer, and its wire
//!   messages (spec/PROTOCOL.md part 2).
//! - [`bundle`]: the export/import format for entries with their payloads.
//! - [`writer`]: appending to the node's own feed (links, clock, batching).
//! - [`integrity`]: re-verifying a whole store from scratch.
//! - [`view`]: the session view, folding every author's session operations
//!   into shared state (spec/SESSIONS.md).
//! - [`rng`]: seeded pseudo-random numbers (redial jitter, simulations).
//!
//! The node, on tokio:
//!
//! - [`net`]: the authenticated, encrypted transport between peers (network
//!   key, Noise handshake with identity proofs, framing; part 3).
//! - [`node_dir`]: a node's directory on disk (identity and store).
//! - [`node`]: a running node (listener, dialers, one driver task per peer)
//!   and the embedded API: append, subscribe, clock, peers, acknowledgements;
//!   the [`node::Application`] trait through which a node drives the state
//!   its application folds from the store, and asks it who is a member.
//! - [`sessions`]: the session store, the application feedmesh ships: the
//!   live view (saved as a snapshot now and then, so that a restart folds
//!   only the entries stored after it) and group-committed writes
//!   ([`sessions::Sessions::start`] starts a node with it).
//! - `audit` (feature `audit`, on with `http`): reports over the store (who
//!   wrote what, with what effect; feed health) and evidence bundles that
//!   prove them offline (spec/AUDIT.md).
//! - `api` (feature `http`, on by default): the HTTP API over a node
//!   (status, append, feeds, sessions, audit, metrics), on axum.
//! - `resp` (feature `resp`, on by default): the Redis protocol endpoint
//!   over the session store, for any Redis client (spec/RESP.md).
//! - [`token`]: the token of those endpoints, and when one is required.
//! - `tower_sessions` (feature `tower-sessions`): `FeedmeshStore`, a
//!   tower-sessions store over the node's session store, for web apps.
//!
//! Features `fuzzing` (the fuzz targets' entry points) and `test-utils`
//! (handshakes that lie about their identity) compile test hooks that are
//! not a public API; nothing builds them but the fuzz crate and the tests.
//!
//! The `feedmesh` command is the workspace's `feedmesh-cli` package
//! (`crates/cli`): arguments, `serve`'s config file and the commands. An
//! application that embeds a node and its session store depends on this
//! crate with `default-features = false` and builds neither endpoint (nor
//! the audit, unless it asks for feature `audit`).
//!
//! What this crate does not do: it has no global ordering of entries across
//! feeds (each feed is ordered by its author alone), and no consensus.

#[cfg(feature = "http")]
pub mod api;
#[cfg(feature = "audit")]
pub mod audit;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod net;
pub mod node;
pub mod node_dir;
pub mod readiness;
#[cfg(feature = "resp")]
pub mod resp;
pub mod sessions;
pub mod token;
#[cfg(feature = "tower-sessions")]
pub mod tower_sessions;

pub use feedmesh_proto::{bundle, clock, feed, integrity, rng, store, sync, view, writer};
