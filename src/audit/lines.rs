//! One line of a report per operation (spec/AUDIT.md §2): who wrote it,
//! where, when, what, and what it did.

use serde::Serialize;

use super::effects::{Effect, OpAt};
use super::ledger::{Ledger, Unreadable};
use crate::feed::to_hex;
use crate::view::{Op, decode_value};

/// A byte string as report text: itself when it is UTF-8 without control
/// characters, otherwise `0x` and its lowercase hex digits. The exact bytes
/// are always in the matching `*_hex` field.
pub fn display_bytes(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) if !text.chars().any(char::is_control) && !text.starts_with("0x") => text.to_string(),
        _ => format!("0x{}", to_hex(bytes)),
    }
}

/// A session value as JSON, when it decodes as CBOR into a JSON value.
pub fn value_json(value: &[u8]) -> Option<serde_json::Value> {
    decode_value::<serde_json::Value>(value).ok()
}

/// An operation's fields, tagged by `op` (spec/AUDIT.md §2.2).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum OpFields {
    /// A Put.
    Put {
        /// The key as text ([`display_bytes`]).
        key: String,
        /// The key's bytes in hex.
        key_hex: String,
        /// The value as JSON, or `null` when it is not CBOR of a JSON value.
        value: Option<serde_json::Value>,
        /// The value's bytes in hex.
        value_hex: String,
        /// Time to live, in milliseconds from the entry's wall time.
        ttl_ms: u64,
        /// The owner as text, or `null`.
        owner: Option<String>,
        /// The owner's bytes in hex, or `null`.
        owner_hex: Option<String>,
    },
    /// A Touch.
    Touch {
        /// The key as text.
        key: String,
        /// The key's bytes in hex.
        key_hex: String,
        /// Time to live, in milliseconds from the entry's wall time.
        ttl_ms: u64,
        /// The timestamp of the put whose session the touch extends.
        put: u64,
    },
    /// A Revoke.
    Revoke {
        /// The key as text.
        key: String,
        /// The key's bytes in hex.
        key_hex: String,
    },
    /// A RevokeOwner.
    RevokeOwner {
        /// The owner as text.
        owner: String,
        /// The owner's bytes in hex.
        owner_hex: String,
    },
    /// An AddMember.
    AddMember {
        /// The admitted feed id.
        feed: String,
        /// Its first folded entry.
        from_seq: u64,
    },
    /// A RemoveMember.
    RemoveMember {
        /// The removed feed id.
        feed: String,
        /// Its first entry no longer folded.
        from_seq: u64,
    },
    /// An entry whose operations cannot be read (one line for the entry).
    Unreadable {
        /// Why: `payload missing`, or the decoder's error.
        reason: String,
    },
}

impl OpFields {
    /// The fields of `op`.
    pub fn of(op: &Op) -> OpFields {
        match op {
            Op::Put {
                key,
                value,
                ttl_ms,
                owner,
            } => OpFields::Put {
                key: display_bytes(key),
                key_hex: to_hex(key),
                value: value_json(value),
                value_hex: to_hex(value),
                ttl_ms: *ttl_ms,
                owner: owner.as_deref().map(display_bytes),
                owner_hex: owner.as_deref().map(to_hex),
            },
            Op::Touch { key, ttl_ms, put } => OpFields::Touch {
                key: display_bytes(key),
                key_hex: to_hex(key),
                ttl_ms: *ttl_ms,
                put: put.as_u64(),
            },
            Op::Revoke { key } => OpFields::Revoke {
                key: display_bytes(key),
                key_hex: to_hex(key),
            },
            Op::RevokeOwner { owner } => OpFields::RevokeOwner {
                owner: display_bytes(owner),
                owner_hex: to_hex(owner),
            },
            Op::AddMember { feed, from_seq } => OpFields::AddMember {
                feed: feed.to_string(),
                from_seq: *from_seq,
            },
            Op::RemoveMember { feed, from_seq } => OpFields::RemoveMember {
                feed: feed.to_string(),
                from_seq: *from_seq,
            },
        }
    }

    /// The `op` tag.
    pub fn kind(&self) -> &'static str {
        match self {
            OpFields::Put { .. } => "put",
            OpFields::Touch { .. } => "touch",
            OpFields::Revoke { .. } => "revoke",
            OpFields::RevokeOwner { .. } => "revoke_owner",
            OpFields::AddMember { .. } => "add_member",
            OpFields::RemoveMember { .. } => "remove_member",
            OpFields::Unreadable { .. } => "unreadable",
        }
    }
}

/// Names one operation: the entry's author and sequence, and the position.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OpRef {
    /// The author's feed id.
    pub author: String,
    /// The entry's sequence number.
    pub seq: u64,
    /// The operation's position in the entry, from 0.
    pub position: u32,
}

/// One operation of a report and its effect (spec/AUDIT.md §2).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OpLine {
    /// The author's feed id.
    pub author: String,
    /// The entry's sequence number.
    pub seq: u64,
    /// The entry's hash (64 hex digits).
    pub entry_hash: String,
    /// The entry's hybrid-logical-clock timestamp, raw.
    pub timestamp: u64,
    /// The timestamp's wall-clock part, in milliseconds since the Unix epoch.
    pub wall_ms: u64,
    /// The operation's position in the entry, from 0 (0 for `unreadable`).
    pub position: u32,
    /// The operation.
    #[serde(flatten)]
    pub op: OpFields,
    /// What it did: an effect string of spec/AUDIT.md §3.
    pub effect: String,
    /// For `overridden`: the put that won; otherwise `null`.
    pub overridden_by: Option<OpRef>,
}

impl OpRef {
    fn of(ledger: &Ledger, at: OpAt) -> OpRef {
        let entry = &ledger.entries[at.entry].entry;
        OpRef {
            author: entry.author().to_string(),
            seq: entry.seq(),
            position: at.position,
        }
    }
}

impl OpLine {
    /// The line of operation `at` with `effect`; `None` if `at` names no readable operation.
    pub(crate) fn of(ledger: &Ledger, at: OpAt, effect: Effect) -> Option<OpLine> {
        let fields = OpFields::of(at.op(ledger)?);
        Some(OpLine::build(ledger, at, fields, effect))
    }

    /// The single line of an entry whose operations cannot be read.
    pub(crate) fn unreadable(ledger: &Ledger, entry: usize, why: &Unreadable, effect: Effect) -> OpLine {
        let reason = match why {
            Unreadable::Missing => "payload missing".to_string(),
            Unreadable::Malformed(error) => error.clone(),
        };
        OpLine::build(
            ledger,
            OpAt { entry, position: 0 },
            OpFields::Unreadable { reason },
            effect,
        )
    }

    fn build(ledger: &Ledger, at: OpAt, op: OpFields, effect: Effect) -> OpLine {
        let entry = &ledger.entries[at.entry].entry;
        OpLine {
            author: entry.author().to_string(),
            seq: entry.seq(),
            entry_hash: entry.hash().to_string(),
            timestamp: entry.timestamp().as_u64(),
            wall_ms: entry.timestamp().wall_ms(),
            position: at.position,
            op,
            effect: effect.text().to_string(),
            overridden_by: match effect {
                Effect::Overridden(by) => Some(OpRef::of(ledger, by)),
                _ => None,
            },
        }
    }
}
