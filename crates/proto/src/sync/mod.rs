//! Replication, sans-IO (spec/PROTOCOL.md part 2): the wire messages (§2.1)
//! and the per-peer state machine (§2.2).
//!
//! Nothing here touches a socket, a clock or a random number generator.
//! [`Message`] is the decoded form of one frame, with a total decoder and one
//! canonical encoding. [`PeerSync`] is the protocol for one connection:
//! frames, local appends and timer ticks go in (with `now` passed by the
//! caller); messages to send and [`Action`]s (send a range from the store,
//! store verified records, record a fork proof, answer a Fetch, disconnect)
//! come out. A driver (the network layer, or the simulated network of `sim`,
//! feature `test-utils`) moves the messages and executes the actions against
//! a [`crate::store::Store`]; [`serve_fetch`] reads the Chunk answering a
//! Fetch ([`Action::Serve`]).
//!
//! [`ReplicationScheduler`] is the node-level part: it picks one sender per
//! feed among the connected peers (want = 1 to it, want = 0 to the others),
//! with failover when the sender stalls or leaves.
//!
//! Not here: the handshake and framing (the network layer's).

mod message;
mod peer;
mod schedule;
mod serve;

pub use message::{
    CHUNK_OVERHEAD, ClockEntry, MAX_CERTIFICATE_PATH, MAX_CHUNK_RECORDS, MAX_FEEDS_PER_CLOCK, MAX_FETCH_RANGE,
    MAX_FRAME, MAX_RECORDS_PER_MESSAGE, Message, MessageError, RECORDS_OVERHEAD, WireRecord, pack_chunk, pack_records,
    record_size,
};
pub use peer::{
    Action, FETCH_TIMEOUT_MS, FetchError, Fetched, MAX_FEEDS_PER_PEER, MAX_FETCHES_PER_PEER, MAX_QUEUED_ACTIONS,
    PeerSync, ProtocolError, RequestError, STALL_TIMEOUT_MS,
};
pub use schedule::{Admission, ConnId, DEFAULT_FEED_BUDGET, ReplicationScheduler};
pub use serve::serve_fetch;
