//! Replication, sans-IO (spec/PROTOCOL.md part 2): the wire messages (§2.1)
//! and the per-peer state machine (§2.2).
//!
//! Nothing here touches a socket, a clock or a random number generator.
//! [`Message`] is the decoded form of one frame, with a total decoder and one
//! canonical encoding. [`PeerSync`] is the protocol for one connection:
//! frames, local appends and timer ticks go in (with `now` passed by the
//! caller); messages to send, [`Action`]s (store verified records, record a
//! fork proof, disconnect, ...) and what the peer is owed (ranges of
//! records, [`PeerSync::take_sends`]; Chunks answering its Fetches,
//! [`PeerSync::next_serve`]; the machine counts both against its flood
//! limits) come out. A driver (the network layer, or the simulated network
//! of `sim`, feature `test-utils`) moves the messages and executes the
//! actions against a [`crate::store::Store`]; [`read_ranges`] and
//! [`serve_fetch`] read what is owed.
//!
//! [`ReplicationScheduler`] is the node-level part: it picks one sender per
//! feed among the connected peers (want = 1 to it, want = 0 to the others),
//! with failover when the sender stalls or leaves.
//!
//! Not here: the handshake and framing (the network layer's).

mod message;
mod peer;
mod schedule;
mod sends;
mod serve;

pub use message::{
    CHUNK_OVERHEAD, ClockEntry, MAX_CERTIFICATE_PATH, MAX_CHUNK_RECORDS, MAX_FEEDS_PER_CLOCK, MAX_FETCH_RANGE,
    MAX_FRAME, MAX_RECORDS_PER_MESSAGE, Message, MessageError, RECORDS_OVERHEAD, WireRecord, pack_chunk, pack_records,
    record_size,
};
pub use peer::{
    Action, FETCH_TIMEOUT_MS, FetchError, Fetched, MAX_FEEDS_PER_PEER, MAX_FETCHES_PER_PEER, MAX_QUEUED_ACTIONS,
    PeerSync, ProtocolError, RequestError, STALL_TIMEOUT_MS, Serve,
};
pub use schedule::{Admission, ConnId, DEFAULT_FEED_BUDGET, ReplicationScheduler};
pub use sends::{MAX_PENDING_RANGES, Range};
pub use serve::{read_ranges, serve_fetch};
