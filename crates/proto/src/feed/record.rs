//! A record: an entry followed by its payload (or `null` when the payload is
//! not included), as bundles (spec/PROTOCOL.md §1.8) and Records messages
//! (§2.1) carry them.
//!
//! ```text
//! record  = entry payload      entry: canonical CBOR, self-delimiting
//! payload = bstr(payload_len) / null (0xf6)
//! ```

use super::cbor::{self, Reader};
use super::{Entry, MAX_ENTRY_SIZE, MAX_PAYLOAD, ValidationError};

/// An entry and its payload, if included.
pub type Record = (Entry, Option<Vec<u8>>);

/// The largest encoded record: the largest entry, a payload's longest CBOR
/// head and the largest payload.
pub const MAX_RECORD_SIZE: usize = MAX_ENTRY_SIZE + 9 + MAX_PAYLOAD as usize;

/// The encoded length of `entry`'s record with its payload, from the entry
/// alone (the payload counted by its declared length), before the payload
/// is read.
pub fn declared_record_len(entry: &Entry) -> usize {
    let payload = entry.header().payload_len;
    entry.as_bytes().len() + cbor::head_len(payload) + usize::try_from(payload).unwrap_or(usize::MAX)
}

/// Decodes the record at the start of `bytes`, returning it and its encoded
/// length. [`super::DecodeError::Incomplete`] means more bytes are needed.
/// The payload is not checked against the entry here (rules V12, V13 are the
/// verifier's).
pub fn decode_record(bytes: &[u8]) -> Result<(Record, usize), ValidationError> {
    let (entry, used) = Entry::decode_prefix(bytes)?;
    let mut reader = Reader::new(&bytes[used..]);
    let payload = reader
        .optional_bytes("payload", MAX_PAYLOAD as usize)?
        .map(<[u8]>::to_vec);
    Ok(((entry, payload), used + reader.position()))
}

/// Appends the encoding of a record to `out`.
pub fn encode_record(out: &mut Vec<u8>, entry: &Entry, payload: Option<&[u8]>) {
    out.extend_from_slice(entry.as_bytes());
    match payload {
        Some(payload) => cbor::write_bytes(out, payload),
        None => out.push(cbor::NULL),
    }
}

/// The encoded length of a record.
pub fn record_len(entry: &Entry, payload: Option<&[u8]>) -> usize {
    entry.as_bytes().len() + payload.map_or(1, |p| cbor::head_len(p.len() as u64) + p.len())
}
