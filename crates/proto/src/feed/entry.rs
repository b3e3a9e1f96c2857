//! The entry: a header that commits to a payload, signed by the feed's author
//! (spec/PROTOCOL.md §1.2–1.3).
//!
//! Byte layout of format version 1, a canonical CBOR array of nine items:
//!
//! ```text
//! 0x89                         array(9)
//!   version       uint         = 1
//!   author        bstr(32)     ed25519 public key = the feed id
//!   seq           uint         1 ..= MAX_SEQ
//!   prev          bstr(32)/null  hash of entry seq-1; null iff seq = 1
//!   skip          bstr(32)/null  hash of entry lipmaa(seq); null unless has_skip_link(seq)
//!   timestamp     uint         hybrid logical clock, strictly increasing along the feed
//!   payload_len   uint         0 ..= MAX_PAYLOAD
//!   payload_hash  bstr(32)     blake3 of the payload
//!   signature     bstr(64)     ed25519 over SIGNING_CONTEXT || every byte before this item
//! ```
//!
//! An [`Entry`] always holds the exact bytes it was decoded from (or signed
//! as); they are what is stored, hashed and sent, never a re-serialisation.

use std::fmt;
use std::sync::Arc;

use super::cbor::{self, Reader};
use super::lipmaa::{has_skip_link, lipmaa};
use super::{DecodeError, FeedId, Hash, Keypair, Timestamp, ValidationError};

/// The only entry format version this implementation reads and writes.
pub const FORMAT_VERSION: u64 = 1;
/// The largest encoded entry (header plus signature) accepted, in bytes.
/// A version-1 entry is at most 227 bytes; the margin is for nothing else.
pub const MAX_ENTRY_SIZE: usize = 256;
/// The largest payload an entry may commit to, in bytes (1 MiB).
pub const MAX_PAYLOAD: u64 = 1 << 20;
/// The largest sequence number (2^62): far beyond any real feed, and small
/// enough that sequence arithmetic never overflows.
pub const MAX_SEQ: u64 = 1 << 62;
/// The domain-separation prefix of every signed message.
pub const SIGNING_CONTEXT: &[u8] = b"feedmesh entry v1\0";
/// Length of the signature item at the end of an entry (`0x58 0x40` + 64 bytes).
const SIGNATURE_ITEM_LEN: usize = 66;

/// The decoded fields of an entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// The author's public key, which is the feed id.
    pub author: FeedId,
    /// Position in the feed, from 1.
    pub seq: u64,
    /// Hash of entry `seq - 1`; `None` exactly when `seq == 1`.
    pub prev: Option<Hash>,
    /// Hash of entry `lipmaa(seq)`; present exactly when [`has_skip_link`] says so.
    pub skip: Option<Hash>,
    /// The author's hybrid-logical-clock time when the entry was made.
    pub timestamp: Timestamp,
    /// Length of the payload in bytes.
    pub payload_len: u64,
    /// blake3 hash of the payload.
    pub payload_hash: Hash,
    /// ed25519 signature over [`SIGNING_CONTEXT`] and the bytes before it.
    pub signature: [u8; 64],
}

/// A decoded entry: its header fields, its exact bytes and its hash.
///
/// Decoding checks the encoding and the rules that need nothing but the entry
/// itself except the signature (see [`Entry::decode`]); the signature is
/// checked by [`crate::feed::verify`] and friends, which turn an `Entry` and
/// its payload into a [`crate::feed::Verified`] record.
#[derive(Clone, PartialEq, Eq)]
pub struct Entry {
    header: Header,
    bytes: Arc<[u8]>,
    hash: Hash,
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("author", &self.header.author)
            .field("seq", &self.header.seq)
            .field("hash", &self.hash)
            .finish()
    }
}

/// What a new entry links to and carries; signed by [`Entry::sign`].
#[derive(Clone, Debug)]
pub struct NewEntry<'a> {
    /// Position in the feed, from 1.
    pub seq: u64,
    /// Hash of entry `seq - 1` (`None` for the first entry).
    pub prev: Option<Hash>,
    /// Hash of entry `lipmaa(seq)` when [`has_skip_link`]`(seq)`, else `None`.
    pub skip: Option<Hash>,
    /// Timestamp; must exceed the previous entry's.
    pub timestamp: Timestamp,
    /// The payload the entry commits to.
    pub payload: &'a [u8],
}

impl Entry {
    /// Decodes one entry that fills `bytes` exactly.
    ///
    /// Checks rules V1 (version), V2 (canonical encoding and size), V3
    /// (sequence range), V4 (which links are present) and V5 (payload length
    /// limit). Never panics, whatever the input.
    pub fn decode(bytes: &[u8]) -> Result<Entry, ValidationError> {
        let (entry, used) = Entry::decode_prefix(bytes)?;
        if used != bytes.len() {
            return Err(ValidationError::Decode(DecodeError::TrailingBytes));
        }
        Ok(entry)
    }

    /// Decodes the entry at the start of `bytes`, returning it and how many
    /// bytes it took. [`DecodeError::Incomplete`] means `bytes` ends inside it.
    pub fn decode_prefix(bytes: &[u8]) -> Result<(Entry, usize), ValidationError> {
        let window = &bytes[..bytes.len().min(MAX_ENTRY_SIZE)];
        let result = parse(window);
        let (header, used) = match result {
            // Running out of input inside the size cap is only "incomplete"
            // when the cap was not what cut it short.
            Err(ValidationError::Decode(DecodeError::Incomplete)) if bytes.len() >= MAX_ENTRY_SIZE => {
                return Err(ValidationError::Decode(DecodeError::TooLong {
                    field: "entry",
                    max: MAX_ENTRY_SIZE,
                }));
            }
            other => other?,
        };
        let bytes: Arc<[u8]> = Arc::from(&bytes[..used]);
        let hash = Hash::of(&bytes);
        Ok((Entry { header, bytes, hash }, used))
    }

    /// Builds and signs a new entry. The caller supplies correct links; an
    /// entry whose links break the layout rules (V3, V4, V5) is refused here
    /// rather than produced.
    pub fn sign(keys: &Keypair, new: &NewEntry<'_>) -> Result<Entry, ValidationError> {
        let payload_len = new.payload.len() as u64;
        let mut header = Header {
            author: keys.feed_id(),
            seq: new.seq,
            prev: new.prev,
            skip: new.skip,
            timestamp: new.timestamp,
            payload_len,
            payload_hash: Hash::of(new.payload),
            signature: [0; 64],
        };
        check_layout(&header)?;
        let mut bytes = Vec::with_capacity(MAX_ENTRY_SIZE);
        encode_unsigned(&header, &mut bytes);
        header.signature = keys.sign_message(&signing_message(&bytes));
        cbor::write_bytes(&mut bytes, &header.signature);
        let bytes: Arc<[u8]> = Arc::from(bytes);
        let hash = Hash::of(&bytes);
        Ok(Entry { header, bytes, hash })
    }

    /// The decoded header fields.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The feed (author) this entry belongs to.
    pub fn author(&self) -> FeedId {
        self.header.author
    }

    /// The entry's sequence number.
    pub fn seq(&self) -> u64 {
        self.header.seq
    }

    /// The entry's timestamp.
    pub fn timestamp(&self) -> Timestamp {
        self.header.timestamp
    }

    /// The entry hash: blake3 of [`Entry::as_bytes`]. This is what the next
    /// entry's `prev` (and later entries' `skip`) link to.
    pub fn hash(&self) -> Hash {
        self.hash
    }

    /// The exact encoded bytes, as signed.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The message the signature covers: [`SIGNING_CONTEXT`] followed by every
    /// byte of the entry before the signature item.
    pub fn signed_message(&self) -> Vec<u8> {
        signing_message(&self.bytes[..self.bytes.len() - SIGNATURE_ITEM_LEN])
    }
}

fn signing_message(unsigned: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(SIGNING_CONTEXT.len() + unsigned.len());
    message.extend_from_slice(SIGNING_CONTEXT);
    message.extend_from_slice(unsigned);
    message
}

fn encode_unsigned(header: &Header, out: &mut Vec<u8>) {
    fn optional_hash(out: &mut Vec<u8>, hash: Option<Hash>) {
        match hash {
            Some(hash) => cbor::write_bytes(out, hash.as_bytes()),
            None => out.push(cbor::NULL),
        }
    }
    cbor::write_array_head(out, 9);
    cbor::write_uint(out, FORMAT_VERSION);
    cbor::write_bytes(out, header.author.as_bytes());
    cbor::write_uint(out, header.seq);
    optional_hash(out, header.prev);
    optional_hash(out, header.skip);
    cbor::write_uint(out, header.timestamp.as_u64());
    cbor::write_uint(out, header.payload_len);
    cbor::write_bytes(out, header.payload_hash.as_bytes());
}

fn parse(bytes: &[u8]) -> Result<(Header, usize), ValidationError> {
    let mut r = Reader::new(bytes);
    let items = r.array_head("entry")?;
    // The version comes first so that a future format is reported as such
    // (V1) rather than as a malformed version-1 entry.
    let version = r.uint("version")?;
    if version != FORMAT_VERSION {
        return Err(ValidationError::UnknownVersion(version));
    }
    if items != 9 {
        return Err(DecodeError::WrongLength {
            field: "entry",
            expected: 9,
        }
        .into());
    }
    let header = Header {
        author: FeedId(r.fixed("author")?),
        seq: r.uint("seq")?,
        prev: r.optional_fixed("prev")?.map(Hash),
        skip: r.optional_fixed("skip")?.map(Hash),
        timestamp: Timestamp::from_u64(r.uint("timestamp")?),
        payload_len: r.uint("payload_len")?,
        payload_hash: Hash(r.fixed("payload_hash")?),
        signature: r.fixed("signature")?,
    };
    check_layout(&header)?;
    Ok((header, r.position()))
}

/// Rules V3, V4 and V5: the checks that need only the header's own fields.
fn check_layout(header: &Header) -> Result<(), ValidationError> {
    let seq = header.seq;
    if seq == 0 || seq > MAX_SEQ {
        return Err(ValidationError::SequenceOutOfRange(seq));
    }
    let wants_prev = seq > 1;
    let wants_skip = has_skip_link(seq);
    if header.prev.is_some() != wants_prev || header.skip.is_some() != wants_skip {
        return Err(ValidationError::LinkPresence {
            seq,
            prev_expected: wants_prev,
            skip_expected: wants_skip.then(|| lipmaa(seq)),
        });
    }
    if header.payload_len > MAX_PAYLOAD {
        return Err(ValidationError::PayloadTooLarge {
            len: header.payload_len,
            max: MAX_PAYLOAD,
        });
    }
    Ok(())
}
