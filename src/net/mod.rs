//! The authenticated, encrypted transport between peers (spec/PROTOCOL.md
//! part 3). No replication logic lives here.
//!
//! Layers, from the socket up:
//!
//! 1. [`NetworkKey`]: the network's pre-shared 32-byte secret (§3.1).
//! 2. The handshake ([`initiate`] for the dialer, [`respond`] for the
//!    listener): Noise `XXpsk3_25519_ChaChaPoly_BLAKE2s` with the network key
//!    as PSK, then an ed25519 identity proof each way that binds the node's
//!    feed id to the session (§3.2). Bounded by a timeout and by
//!    [`MAX_HANDSHAKE_FRAME`]; failures are [`HandshakeError`]s.
//! 3. Framing ([`SecureStream`], [`SecureReader`], [`SecureWriter`]): Noise
//!    transport frames (u16 length + ciphertext) carrying length-prefixed
//!    messages of at most `max_message` bytes (default [`MAX_MESSAGE`]),
//!    §3.3; failures are [`StreamError`]s. The decoders ([`parse_frame`],
//!    [`MessageDecoder`]) are sans-IO.
//!
//! 4. The connection driver ([`run_connection`]): one task per connection
//!    that drives a [`crate::sync::PeerSync`] over the two halves, against a
//!    [`Host`] (the node: store, local events, appends).
//!
//! 5. [`HandshakeSlots`]: the listener's budget of unfinished handshakes
//!    (§3.5), apart from established connections.
//!
//! 6. [`BufferBudget`]: the node-wide pool of bytes for large incoming
//!    messages, shared by all connections (§2.2 "Memory per node").
//!
//! 7. [`Network`]: how a node listens and dials ([`TcpNetwork`] by default;
//!    tests plug in a simulated network).
//!
//! What a node does on each error is §3.4: close the connection and log the
//! reason.
//!
//! Everything is generic over `AsyncRead + AsyncWrite + Unpin`, so tests can
//! run it over `tokio::io::duplex` or a simulated network as well as TCP.

mod admission;
mod budget;
mod framing;
mod handshake;
mod key;
mod network;
mod peer;

pub use admission::{DEFAULT_MAX_HANDSHAKES, DEFAULT_MAX_HANDSHAKES_PER_ADDR, HandshakeSlots};
pub use budget::{BufferBudget, DEFAULT_BUFFER_BUDGET, DEFAULT_MESSAGE_DEADLINE, SMALL_MESSAGE};
pub use framing::{
    FRAME_HEADER_LEN, FramingError, MAX_FRAME_PLAINTEXT, MAX_MESSAGE, MAX_NOISE_FRAME, MESSAGE_HEADER_LEN,
    MIN_MAX_MESSAGE, MessageDecoder, NOISE_TAG_LEN, SecureReader, SecureStream, SecureWriter, StreamError, parse_frame,
};
#[cfg(feature = "test-utils")]
#[doc(hidden)]
pub use handshake::impostor;
pub use handshake::{
    DEFAULT_HANDSHAKE_TIMEOUT, HANDSHAKE_HASH_LEN, HandshakeConfig, HandshakeError, IDENTITY_CONTEXT,
    IDENTITY_PROOF_LEN, MAX_HANDSHAKE_FRAME, NOISE_PARAMS, PROLOGUE, ROLE_INITIATOR, ROLE_RESPONDER,
    identity_proof_message, initiate, respond,
};
pub use key::{NETWORK_KEY_LEN, NetworkKey, NetworkKeyError};
pub use network::{BoxConnection, BoxFuture, Connection, Listener, Network, TcpNetwork};
pub use peer::{
    Closed, FLUSH_TIMEOUT_MS, FetchCommand, Host, IDLE_TIMEOUT_MS, KEEPALIVE_MS, LocalEvent, MIN_OUTBOX_SHARE, Traffic,
    run_connection,
};
