//! The operation payload of a session entry (spec/SESSIONS.md §1): a
//! canonical CBOR array of operations, each an array whose first item is the
//! operation kind.
//!
//! ```text
//! payload = [* op]                               ; at most MAX_OPS items
//! op      = [0, key, value, ttl_ms, owner / null]  ; Put
//!         / [1, key, ttl_ms, put]                  ; Touch
//!         / [2, key]                               ; Revoke
//!         / [3, owner]                             ; RevokeOwner
//!         / [4, feed, from_seq]                    ; AddMember
//!         / [5, feed, from_seq]                    ; RemoveMember
//! ```
//!
//! `key`, `value` and `owner` are byte strings; `feed` is a byte string of
//! exactly 32 bytes (a feed id); `ttl_ms`, `put` (the timestamp of the put
//! a touch extends) and `from_seq` are unsigned integers. The membership operations (kinds 4 and 5) do not touch the
//! session state: they are folded by [`crate::view::Membership`]
//! (spec/SESSIONS.md §5). The decoder is total: it checks every declared length against its
//! limit before reading, and rejects non-canonical forms and trailing bytes.

use crate::clock::Timestamp;
use crate::feed::{
    CborReader, DecodeError, FeedId, MAX_PAYLOAD, MAX_SEQ, cbor_head_len, cbor_write_array_head, cbor_write_bytes,
    cbor_write_uint,
};

/// Maximum length of a session key, in bytes (keys are non-empty).
pub const MAX_KEY: usize = 128;
/// Maximum length of an owner, in bytes (owners are non-empty).
pub const MAX_OWNER: usize = 128;
/// Maximum length of a session value, in bytes.
pub const MAX_VALUE: usize = 64 * 1024;
/// Maximum number of operations in one entry.
pub const MAX_OPS: usize = 1024;
/// Maximum time to live of a put or touch: 30 days, in milliseconds. A ttl is at least 1.
pub const MAX_TTL_MS: u64 = 30 * 24 * 3600 * 1000;

const KIND_PUT: u64 = 0;
const KIND_TOUCH: u64 = 1;
const KIND_REVOKE: u64 = 2;
const KIND_REVOKE_OWNER: u64 = 3;
const KIND_ADD_MEMBER: u64 = 4;
const KIND_REMOVE_MEMBER: u64 = 5;
const NULL: u8 = 0xf6;

/// One operation on the session store.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// Creates or replaces a session (last writer wins).
    Put {
        /// The session key (a random session id, never reused).
        key: Vec<u8>,
        /// The session data: a CBOR-encoded serde value, opaque to the view.
        value: Vec<u8>,
        /// Time to live from the operation's timestamp, in milliseconds.
        ttl_ms: u64,
        /// The owner (for example a user id), for [`Op::RevokeOwner`].
        owner: Option<Vec<u8>>,
    },
    /// Extends a session's expiry to at least the operation's time plus
    /// `ttl_ms`, if the session is still the one `put` set (spec/SESSIONS.md §2.2).
    Touch {
        /// The session key.
        key: Vec<u8>,
        /// Time to live from the operation's timestamp, in milliseconds.
        ttl_ms: u64,
        /// The timestamp of the put whose session this extends: the winning
        /// put as the writer read it.
        put: Timestamp,
    },
    /// Revokes a session forever (logout).
    Revoke {
        /// The session key.
        key: Vec<u8>,
    },
    /// Revokes every session of `owner` put before this operation ("log out everywhere").
    RevokeOwner {
        /// The owner whose sessions are revoked.
        owner: Vec<u8>,
    },
    /// Admits `feed` as a member from its entry `from_seq` on. Folded only
    /// from an admin's feed; no effect on the session state
    /// (spec/SESSIONS.md §5).
    AddMember {
        /// The admitted feed.
        feed: FeedId,
        /// The first of its entries to fold, in `1..=MAX_SEQ`.
        from_seq: u64,
    },
    /// Removes `feed` from its entry `from_seq` on, for good. Folded only
    /// from an admin's feed; no effect on the session state
    /// (spec/SESSIONS.md §5).
    RemoveMember {
        /// The removed feed.
        feed: FeedId,
        /// The first of its entries no longer folded, in `1..=MAX_SEQ`.
        from_seq: u64,
    },
}

/// Why a payload is not a valid batch of operations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpsError {
    /// The bytes are not canonical CBOR of the expected shape, or exceed a size limit.
    #[error("malformed operations: {0}")]
    Decode(#[from] DecodeError),
    /// An operation kind this version does not know.
    #[error("unknown operation kind {0}")]
    UnknownKind(u64),
    /// More than [`MAX_OPS`] operations in one entry.
    #[error("more than {MAX_OPS} operations in one entry")]
    TooManyOps,
    /// A ttl of 0 or above [`MAX_TTL_MS`].
    #[error("ttl_ms {0} is outside 1..={MAX_TTL_MS}")]
    TtlOutOfRange(u64),
    /// An empty key or owner.
    #[error("empty {0}")]
    Empty(&'static str),
    /// A membership operation's `from_seq` of 0 or above [`MAX_SEQ`].
    #[error("from_seq {0} is outside 1..={MAX_SEQ}")]
    SeqOutOfRange(u64),
    /// The encoded batch would exceed the entry payload limit.
    #[error("encoded operations exceed {MAX_PAYLOAD} bytes")]
    TooLarge,
}

/// A key or an owner: 1 to `max` bytes.
fn check_name(field: &'static str, name: &[u8], max: usize) -> Result<(), OpsError> {
    if name.is_empty() {
        return Err(OpsError::Empty(field));
    }
    if name.len() > max {
        return Err(DecodeError::TooLong { field, max }.into());
    }
    Ok(())
}

fn check_key(key: &[u8]) -> Result<(), OpsError> {
    check_name("key", key, MAX_KEY)
}

fn check_owner(owner: &[u8]) -> Result<(), OpsError> {
    check_name("owner", owner, MAX_OWNER)
}

fn check_ttl(ttl_ms: u64) -> Result<(), OpsError> {
    if ttl_ms == 0 || ttl_ms > MAX_TTL_MS {
        return Err(OpsError::TtlOutOfRange(ttl_ms));
    }
    Ok(())
}

fn check_from_seq(from_seq: u64) -> Result<(), OpsError> {
    if from_seq == 0 || from_seq > MAX_SEQ {
        return Err(OpsError::SeqOutOfRange(from_seq));
    }
    Ok(())
}

impl Op {
    /// Checks the limits of spec/SESSIONS.md §1 (the ones the encoding does not enforce by itself).
    pub fn check(&self) -> Result<(), OpsError> {
        match self {
            Op::Put {
                key,
                value,
                ttl_ms,
                owner,
            } => {
                check_key(key)?;
                if value.len() > MAX_VALUE {
                    return Err(DecodeError::TooLong {
                        field: "value",
                        max: MAX_VALUE,
                    }
                    .into());
                }
                check_ttl(*ttl_ms)?;
                owner.as_deref().map_or(Ok(()), check_owner)
            }
            Op::Touch { key, ttl_ms, .. } => {
                check_key(key)?;
                check_ttl(*ttl_ms)
            }
            Op::Revoke { key } => check_key(key),
            Op::RevokeOwner { owner } => check_owner(owner),
            Op::AddMember { from_seq, .. } | Op::RemoveMember { from_seq, .. } => check_from_seq(*from_seq),
        }
    }

    /// The length of this operation's encoding (without the batch's array head).
    pub fn encoded_len(&self) -> usize {
        let uint = |n: u64| cbor_head_len(n);
        let bytes = |b: &[u8]| cbor_head_len(b.len() as u64) + b.len();
        // Every operation is an array of fewer than 24 items: a 1-byte head,
        // and its kind is a 1-byte uint.
        2 + match self {
            Op::Put {
                key,
                value,
                ttl_ms,
                owner,
            } => bytes(key) + bytes(value) + uint(*ttl_ms) + owner.as_deref().map_or(1, bytes),
            Op::Touch { key, ttl_ms, put } => bytes(key) + uint(*ttl_ms) + uint(put.as_u64()),
            Op::Revoke { key } => bytes(key),
            Op::RevokeOwner { owner } => bytes(owner),
            Op::AddMember { feed, from_seq } | Op::RemoveMember { feed, from_seq } => {
                bytes(feed.as_bytes()) + uint(*from_seq)
            }
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Op::Put {
                key,
                value,
                ttl_ms,
                owner,
            } => {
                cbor_write_array_head(out, 5);
                cbor_write_uint(out, KIND_PUT);
                cbor_write_bytes(out, key);
                cbor_write_bytes(out, value);
                cbor_write_uint(out, *ttl_ms);
                match owner {
                    Some(owner) => cbor_write_bytes(out, owner),
                    None => out.push(NULL),
                }
            }
            Op::Touch { key, ttl_ms, put } => {
                cbor_write_array_head(out, 4);
                cbor_write_uint(out, KIND_TOUCH);
                cbor_write_bytes(out, key);
                cbor_write_uint(out, *ttl_ms);
                cbor_write_uint(out, put.as_u64());
            }
            Op::Revoke { key } => {
                cbor_write_array_head(out, 2);
                cbor_write_uint(out, KIND_REVOKE);
                cbor_write_bytes(out, key);
            }
            Op::RevokeOwner { owner } => {
                cbor_write_array_head(out, 2);
                cbor_write_uint(out, KIND_REVOKE_OWNER);
                cbor_write_bytes(out, owner);
            }
            Op::AddMember { feed, from_seq } | Op::RemoveMember { feed, from_seq } => {
                let kind = if matches!(self, Op::AddMember { .. }) {
                    KIND_ADD_MEMBER
                } else {
                    KIND_REMOVE_MEMBER
                };
                cbor_write_array_head(out, 3);
                cbor_write_uint(out, kind);
                cbor_write_bytes(out, feed.as_bytes());
                cbor_write_uint(out, *from_seq);
            }
        }
    }
}

/// Encodes a batch of operations as an entry payload, refusing anything the
/// decoder would refuse.
pub fn encode_ops(ops: &[Op]) -> Result<Vec<u8>, OpsError> {
    if ops.len() > MAX_OPS {
        return Err(OpsError::TooManyOps);
    }
    let len = cbor_head_len(ops.len() as u64) + ops.iter().map(Op::encoded_len).sum::<usize>();
    let mut out = Vec::with_capacity(len);
    cbor_write_array_head(&mut out, ops.len() as u64);
    for op in ops {
        op.check()?;
        op.write(&mut out);
    }
    debug_assert_eq!(out.len(), len, "Op::encoded_len disagrees with the encoding");
    if out.len() as u64 > MAX_PAYLOAD {
        return Err(OpsError::TooLarge);
    }
    Ok(out)
}

/// Decodes an entry payload into its operations. Total: never panics, and
/// allocates only after checking each declared length against its limit.
pub fn decode_ops(payload: &[u8]) -> Result<Vec<Op>, OpsError> {
    if payload.len() as u64 > MAX_PAYLOAD {
        return Err(OpsError::TooLarge);
    }
    let mut r = CborReader::new(payload);
    let n = r.array_head("operations")?;
    if n > MAX_OPS as u64 {
        return Err(OpsError::TooManyOps);
    }
    let mut ops = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let len = r.array_head("operation")?;
        let kind = r.uint("kind")?;
        let expected = match kind {
            KIND_PUT => 5,
            KIND_TOUCH => 4,
            KIND_ADD_MEMBER | KIND_REMOVE_MEMBER => 3,
            KIND_REVOKE | KIND_REVOKE_OWNER => 2,
            other => return Err(OpsError::UnknownKind(other)),
        };
        if len != expected {
            return Err(DecodeError::WrongLength {
                field: "operation",
                expected: expected as usize,
            }
            .into());
        }
        let op = match kind {
            KIND_PUT => Op::Put {
                key: r.bytes("key", MAX_KEY)?.to_vec(),
                value: r.bytes("value", MAX_VALUE)?.to_vec(),
                ttl_ms: r.uint("ttl_ms")?,
                owner: r.optional_bytes("owner", MAX_OWNER)?.map(<[u8]>::to_vec),
            },
            KIND_TOUCH => Op::Touch {
                key: r.bytes("key", MAX_KEY)?.to_vec(),
                ttl_ms: r.uint("ttl_ms")?,
                put: Timestamp::from_u64(r.uint("put")?),
            },
            KIND_REVOKE => Op::Revoke {
                key: r.bytes("key", MAX_KEY)?.to_vec(),
            },
            KIND_REVOKE_OWNER => Op::RevokeOwner {
                owner: r.bytes("owner", MAX_OWNER)?.to_vec(),
            },
            KIND_ADD_MEMBER => Op::AddMember {
                feed: FeedId(r.fixed("feed")?),
                from_seq: r.uint("from_seq")?,
            },
            _ => Op::RemoveMember {
                feed: FeedId(r.fixed("feed")?),
                from_seq: r.uint("from_seq")?,
            },
        };
        op.check()?;
        ops.push(op);
    }
    if r.position() != payload.len() {
        return Err(DecodeError::TrailingBytes.into());
    }
    Ok(ops)
}

/// Why a session value could not be encoded or decoded as CBOR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("session value: {0}")]
pub struct ValueError(String);

/// Encodes a serde value as the `value` of a [`Op::Put`] (CBOR, with
/// `ciborium`), refusing one longer than [`MAX_VALUE`].
pub fn encode_value<T: serde::Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, ValueError> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).map_err(|e| ValueError(e.to_string()))?;
    if out.len() > MAX_VALUE {
        return Err(ValueError(format!("longer than {MAX_VALUE} bytes")));
    }
    Ok(out)
}

/// Decodes the `value` of a session into a serde value. Total: malformed or
/// trailing bytes are an error, never a panic.
pub fn decode_value<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ValueError> {
    let mut reader = bytes;
    let value = ciborium::from_reader(&mut reader).map_err(|e| ValueError(e.to_string()))?;
    if !reader.is_empty() {
        return Err(ValueError("trailing bytes".into()));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_len_is_the_length_of_the_encoding() {
        let long = vec![7u8; 300];
        let ops = [
            Op::Put {
                key: b"k".to_vec(),
                value: long.clone(),
                ttl_ms: 1,
                owner: None,
            },
            Op::Put {
                key: long[..128].to_vec(),
                value: vec![],
                ttl_ms: MAX_TTL_MS,
                owner: Some(b"o".to_vec()),
            },
            Op::Touch {
                key: b"k".to_vec(),
                ttl_ms: 70_000,
                put: Timestamp::new(1 << 40, 7),
            },
            Op::Revoke { key: b"k".to_vec() },
            Op::RevokeOwner {
                owner: long[..24].to_vec(),
            },
            Op::AddMember {
                feed: FeedId([1; 32]),
                from_seq: 1,
            },
            Op::RemoveMember {
                feed: FeedId([2; 32]),
                from_seq: MAX_SEQ,
            },
        ];
        for op in ops {
            assert_eq!(
                encode_ops(std::slice::from_ref(&op)).unwrap().len(),
                1 + op.encoded_len(),
                "{op:?}"
            );
        }
    }

    #[test]
    fn round_trip_and_exact_bytes() {
        let ops = vec![
            Op::Put {
                key: b"k".to_vec(),
                value: vec![0xa0],
                ttl_ms: 1000,
                owner: Some(b"u".to_vec()),
            },
            Op::Touch {
                key: b"k".to_vec(),
                ttl_ms: 5,
                put: Timestamp::new(1000, 0),
            },
            Op::Revoke { key: b"k".to_vec() },
            Op::RevokeOwner { owner: b"u".to_vec() },
            Op::AddMember {
                feed: FeedId([7; 32]),
                from_seq: 1,
            },
            Op::RemoveMember {
                feed: FeedId([8; 32]),
                from_seq: MAX_SEQ,
            },
        ];
        let bytes = encode_ops(&ops).unwrap();
        assert_eq!(&bytes[..8], &[0x86, 0x85, 0x00, 0x41, b'k', 0x41, 0xa0, 0x19]);
        assert_eq!(decode_ops(&bytes).unwrap(), ops);
    }

    #[test]
    fn membership_ops_have_exact_bytes_and_checked_fields() {
        let mut add = vec![0x81, 0x83, 0x04, 0x58, 0x20];
        add.extend_from_slice(&[7; 32]);
        add.push(0x05);
        let op = Op::AddMember {
            feed: FeedId([7; 32]),
            from_seq: 5,
        };
        assert_eq!(encode_ops(std::slice::from_ref(&op)).unwrap(), add);
        assert_eq!(decode_ops(&add).unwrap(), vec![op]);
        let mut remove = add.clone();
        remove[2] = 0x05;
        assert_eq!(
            decode_ops(&remove).unwrap(),
            vec![Op::RemoveMember {
                feed: FeedId([7; 32]),
                from_seq: 5,
            }]
        );
        // from_seq 0 and MAX_SEQ + 1 are refused, both ways.
        let last = add.len() - 1;
        add[last] = 0x00;
        assert_eq!(decode_ops(&add), Err(OpsError::SeqOutOfRange(0)));
        let beyond = Op::RemoveMember {
            feed: FeedId([7; 32]),
            from_seq: MAX_SEQ + 1,
        };
        assert_eq!(encode_ops(&[beyond]), Err(OpsError::SeqOutOfRange(MAX_SEQ + 1)));
        // A feed id of 31 or 33 bytes is a decode error.
        let mut short = vec![0x81, 0x83, 0x04, 0x58, 0x1f];
        short.extend_from_slice(&[7; 31]);
        short.push(0x01);
        assert!(matches!(decode_ops(&short), Err(OpsError::Decode(_))));
        let mut long = vec![0x81, 0x83, 0x05, 0x58, 0x21];
        long.extend_from_slice(&[7; 33]);
        long.push(0x01);
        assert!(matches!(decode_ops(&long), Err(OpsError::Decode(_))));
        // Wrong arity.
        assert!(matches!(
            decode_ops(&[0x81, 0x82, 0x04, 0x01]),
            Err(OpsError::Decode(DecodeError::WrongLength { .. }))
        ));
    }

    #[test]
    fn values_are_serde_data_in_cbor() {
        let value = serde_json::json!({"user": "alice", "roles": ["admin"], "n": 3});
        let bytes = encode_value(&value).unwrap();
        assert_eq!(decode_value::<serde_json::Value>(&bytes).unwrap(), value);
        assert!(decode_value::<serde_json::Value>(&bytes[..bytes.len() - 1]).is_err());
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(decode_value::<serde_json::Value>(&trailing).is_err());
        assert!(encode_value(&vec![0u8; MAX_VALUE]).is_err());
    }

    #[test]
    fn malformed_payloads_are_refused() {
        assert_eq!(decode_ops(&[]), Err(OpsError::Decode(DecodeError::Incomplete)));
        assert_eq!(
            decode_ops(&[0x80, 0x00]),
            Err(OpsError::Decode(DecodeError::TrailingBytes))
        );
        assert_eq!(decode_ops(&[0x81, 0x82, 0x09, 0x41, 1]), Err(OpsError::UnknownKind(9)));
        assert_eq!(decode_ops(&[0x81, 0x82, 0x02, 0x40]), Err(OpsError::Empty("key")));
        assert_eq!(
            decode_ops(&[0x81, 0x84, 0x01, 0x41, 1, 0x00, 0x00]),
            Err(OpsError::TtlOutOfRange(0))
        );
        // A touch without the put it extends has the wrong arity.
        assert!(matches!(
            decode_ops(&[0x81, 0x83, 0x01, 0x41, 1, 0x01]),
            Err(OpsError::Decode(DecodeError::WrongLength { .. }))
        ));
        assert!(matches!(
            decode_ops(&[0x81, 0x83, 0x02, 0x41, 1, 0]),
            Err(OpsError::Decode(_))
        ));
        assert_eq!(decode_ops(&[0x9a, 0xff, 0xff, 0xff, 0xff]), Err(OpsError::TooManyOps));
    }
}
