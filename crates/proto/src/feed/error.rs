//! Errors of the feed layer: how bytes failed to decode, and which numbered
//! validation rule of spec/PROTOCOL.md §1.6 an entry broke.

use super::{FeedId, Hash, Timestamp};

/// Why bytes are not a well-formed, canonically encoded item.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ends before the item does; more bytes may complete it.
    #[error("input ends inside the item")]
    Incomplete,
    /// An item has the wrong CBOR major type.
    #[error("{field}: unexpected CBOR type")]
    UnexpectedType {
        /// The field being read.
        field: &'static str,
    },
    /// An item is not in canonical form (longer integer encoding than needed,
    /// indefinite length, or a reserved encoding).
    #[error("{field}: not canonical CBOR")]
    NotCanonical {
        /// The field being read.
        field: &'static str,
    },
    /// A byte string or array has the wrong number of elements.
    #[error("{field}: expected {expected} elements")]
    WrongLength {
        /// The field being read.
        field: &'static str,
        /// The required length.
        expected: usize,
    },
    /// A declared length exceeds its limit.
    #[error("{field}: longer than the limit of {max} bytes")]
    TooLong {
        /// The field being read.
        field: &'static str,
        /// The limit.
        max: usize,
    },
    /// Bytes follow the item where none may.
    #[error("trailing bytes after the item")]
    TrailingBytes,
    /// A magic number or tag is not the expected one.
    #[error("{0}")]
    BadMagic(&'static str),
}

/// An entry broke a validation rule. Each variant is one numbered rule of
/// spec/PROTOCOL.md §1.6; [`ValidationError::rule`] gives its number and name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// V1: the format version is not one this implementation knows.
    #[error("unknown entry format version {0}")]
    UnknownVersion(u64),
    /// V2: the bytes are not a canonical encoding of an entry within the size limit.
    #[error("malformed entry: {0}")]
    Decode(#[from] DecodeError),
    /// V3: the sequence number is 0 or above the maximum.
    #[error("sequence {0} out of range")]
    SequenceOutOfRange(u64),
    /// V4: `prev` or `skip` is present where it must be absent, or the reverse.
    #[error("entry {seq}: wrong links (prev expected: {prev_expected}, skip target expected: {skip_expected:?})")]
    LinkPresence {
        /// The entry's sequence number.
        seq: u64,
        /// Whether a `prev` link is required.
        prev_expected: bool,
        /// The required skip target, if any.
        skip_expected: Option<u64>,
    },
    /// V5: the declared payload length exceeds the maximum.
    #[error("payload length {len} exceeds the limit of {max}")]
    PayloadTooLarge {
        /// Declared length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// V6: the signature does not verify (strict ed25519) under the author's key.
    #[error("bad signature")]
    BadSignature,
    /// V7: the entry belongs to another feed than the one it should extend.
    #[error("entry of {found} where {expected} was expected")]
    WrongFeed {
        /// The feed being extended.
        expected: FeedId,
        /// The entry's author.
        found: FeedId,
    },
    /// V8: the sequence number does not follow the previous entry's.
    #[error("sequence {found} where {expected} was expected")]
    SequenceGap {
        /// The next sequence number of the feed.
        expected: u64,
        /// The entry's sequence number.
        found: u64,
    },
    /// V9: `prev` is not the hash of the previous entry.
    #[error("entry {seq}: prev link {found} does not match entry {}'s hash {expected}", seq - 1)]
    PrevHashMismatch {
        /// The entry's sequence number.
        seq: u64,
        /// Hash of the entry actually at `seq - 1`.
        expected: Hash,
        /// The entry's `prev` field.
        found: Hash,
    },
    /// V10: `skip` is not the hash of the entry at `lipmaa(seq)`.
    #[error("entry {seq}: skip link {found} does not match entry {target}'s hash {expected}")]
    SkipLinkMismatch {
        /// The entry's sequence number.
        seq: u64,
        /// The skip target's sequence number.
        target: u64,
        /// Hash of the entry actually at `target`.
        expected: Hash,
        /// The entry's `skip` field.
        found: Hash,
    },
    /// V11: the timestamp is not greater than an earlier entry's of the same feed.
    #[error("entry {seq}: timestamp {found} is not after {previous}")]
    TimestampNotIncreasing {
        /// The entry's sequence number.
        seq: u64,
        /// The earlier entry's timestamp.
        previous: Timestamp,
        /// The entry's timestamp.
        found: Timestamp,
    },
    /// V12: the payload's length differs from the declared `payload_len`.
    #[error("payload is {actual} bytes, the entry declares {declared}")]
    PayloadLengthMismatch {
        /// `payload_len` of the entry.
        declared: u64,
        /// Length of the payload received.
        actual: u64,
    },
    /// V13: the payload's blake3 hash differs from `payload_hash`.
    #[error("payload hash does not match")]
    PayloadHashMismatch,
}

impl ValidationError {
    /// The rule this error reports, as `"V<n> <name>"` (spec/PROTOCOL.md §1.6).
    pub fn rule(&self) -> &'static str {
        match self {
            ValidationError::UnknownVersion(_) => "V1 version",
            ValidationError::Decode(_) => "V2 encoding",
            ValidationError::SequenceOutOfRange(_) => "V3 sequence-range",
            ValidationError::LinkPresence { .. } => "V4 link-presence",
            ValidationError::PayloadTooLarge { .. } => "V5 payload-size",
            ValidationError::BadSignature => "V6 signature",
            ValidationError::WrongFeed { .. } => "V7 same-feed",
            ValidationError::SequenceGap { .. } => "V8 sequence-continuity",
            ValidationError::PrevHashMismatch { .. } => "V9 prev-link",
            ValidationError::SkipLinkMismatch { .. } => "V10 skip-link",
            ValidationError::TimestampNotIncreasing { .. } => "V11 timestamp",
            ValidationError::PayloadLengthMismatch { .. } => "V12 payload-length",
            ValidationError::PayloadHashMismatch => "V13 payload-hash",
        }
    }

    /// Whether this is an encoding error caused only by the input ending early.
    pub fn is_incomplete(&self) -> bool {
        matches!(self, ValidationError::Decode(DecodeError::Incomplete))
    }
}
