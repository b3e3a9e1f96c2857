//! The integration tests of `feedmesh-proto`, one binary, with no async
//! runtime: the spec's vectors (entries, messages, signatures), the entry
//! format's properties, the stores (crash safety included), bundles,
//! replication between in-memory peers, and the session view's history
//! window.

mod common;

mod bundle;
mod crash;
mod feed_props;
mod message_vectors;
mod signatures;
mod store;
mod sync;
mod vectors;
mod window;
