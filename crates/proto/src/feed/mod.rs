//! Feeds: identities, entries, their encoding, signatures and validation
//! (spec/PROTOCOL.md part 1).
//!
//! Nothing here does I/O. An [`Entry`] is decoded from (or signed into) its
//! exact bytes; [`verify`] and [`verify_batch`] check signatures and payloads;
//! [`check_successor`], [`check_skip`] and [`verify_chain`] check the links
//! between entries; [`ForkProof`] captures equivocation.

pub mod cbor;
mod entry;
mod error;
mod fork;
mod id;
mod keys;
mod lipmaa;
mod record;
pub mod signature;
mod verify;

pub use crate::clock::Timestamp;
pub use entry::{Entry, FORMAT_VERSION, Header, MAX_ENTRY_SIZE, MAX_PAYLOAD, MAX_SEQ, NewEntry, SIGNING_CONTEXT};
pub use error::{DecodeError, ValidationError};
pub use fork::{ForkProof, ForkProofError};
pub use id::{FEED_ID_PREFIX, FeedId, Hash, ParseIdError, from_hex, to_hex};
pub use keys::{KeyError, Keypair};
pub use lipmaa::{certificate_path, has_skip_link, lipmaa};
pub use record::{MAX_RECORD_SIZE, Record, declared_record_len, decode_record, encode_record, record_len};
pub(crate) use verify::assume_verified;
pub use verify::{
    BatchError, ChainSummary, Verified, check_payload, check_signature, check_signatures, check_skip, check_skip_hash,
    check_successor, check_timestamp_order, sign, verify, verify_batch, verify_chain, verify_prefix,
};

pub(crate) use cbor::{
    Reader as CborReader, head_len as cbor_head_len, write_array_head as cbor_write_array_head,
    write_bytes as cbor_write_bytes, write_bytes_head as cbor_write_bytes_head, write_uint as cbor_write_uint,
};
