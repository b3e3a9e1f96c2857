//! The replication wire messages (spec/PROTOCOL.md §2.1) and their one
//! canonical encoding.
//!
//! Every message is one canonical CBOR array whose first item is the message
//! type; a frame carries exactly one message and nothing after it.
//!
//! ```text
//! Clock    0x82  0  array(n) of  0x84 feed:bstr(32) latest:uint flags:uint(0..=3) head
//!                   flags: 1 want, 2 frozen; head: bstr(32) (the hash of entry
//!                   `latest`), null iff latest = 0;
//!                   feeds strictly ascending by id, n <= MAX_FEEDS_PER_CLOCK
//! Records  0x82  1  array(n) of  0x82 entry payload
//!                   entry: the entry's signed bytes (§1.2); payload: bstr / null
//!                   (as in a bundle record, §1.8); n <= MAX_RECORDS_PER_MESSAGE
//! Request  0x84  2  feed:bstr(32) from:uint to:uint      1 <= from <= to <= MAX_SEQ
//! Fork     0x83  3  entry entry                         a fork proof (§1.7), smaller hash first
//! Fetch    0x85  4  id:uint feed:bstr(32) from:uint to:uint
//!                   1 <= from <= to <= MAX_SEQ, to - from < MAX_FETCH_RANGE
//! Chunk    0x85  5  id:uint feed:bstr(32) latest:uint array(n) of 0x82 entry payload
//!                   certificate path of `from` below it (payload null), then
//!                   from..=end (payloads); n <= MAX_CHUNK_RECORDS
//! ```
//!
//! [`Message::decode`] is total: it never panics, refuses frames longer than
//! [`MAX_FRAME`] before reading them, checks every declared count and length
//! against its limit and against the bytes left before allocating, and
//! refuses trailing bytes and every non-canonical form, so that
//! `encode(decode(b)) == b` for every accepted `b`.

use crate::feed::{
    CborReader, DecodeError, Entry, FeedId, ForkProof, ForkProofError, Hash, MAX_ENTRY_SIZE, MAX_PAYLOAD, MAX_SEQ,
    ValidationError, cbor_write_array_head, cbor_write_bytes_head, cbor_write_uint, decode_record, encode_record,
    record_len,
};

/// The largest frame (one encoded message) accepted or sent, in bytes:
/// 4 MiB plus 64 KiB, so that four records with maximum payloads fit in one
/// Records message with room for the entries and heads.
pub const MAX_FRAME: usize = 4 * 1024 * 1024 + 64 * 1024;
/// The most records one Records message may carry.
pub const MAX_RECORDS_PER_MESSAGE: usize = 1024;
/// The most feeds one Clock message may list.
pub const MAX_FEEDS_PER_CLOCK: usize = 4096;
/// The longest range one Fetch message may ask for (`to - from + 1`).
pub const MAX_FETCH_RANGE: u64 = MAX_RECORDS_PER_MESSAGE as u64;
/// The most certificate-path entries a Chunk carries before its range (a
/// certificate path below [`MAX_SEQ`] has fewer than 64 hops).
pub const MAX_CERTIFICATE_PATH: usize = 64;
/// The most records one Chunk message may carry: the certificate path and
/// at most [`MAX_FETCH_RANGE`] entries of the range.
pub const MAX_CHUNK_RECORDS: usize = MAX_RECORDS_PER_MESSAGE + MAX_CERTIFICATE_PATH;

/// The CBOR null (a Clock line's head when `latest` is 0).
const CBOR_NULL: u8 = 0xf6;
/// Message type of [`Message::Clock`].
const TYPE_CLOCK: u64 = 0;
/// Message type of [`Message::Records`].
const TYPE_RECORDS: u64 = 1;
/// Message type of [`Message::Request`].
const TYPE_REQUEST: u64 = 2;
/// Message type of [`Message::Fork`].
const TYPE_FORK: u64 = 3;
/// Message type of [`Message::Fetch`].
const TYPE_FETCH: u64 = 4;
/// Message type of [`Message::Chunk`].
const TYPE_CHUNK: u64 = 5;
/// Fewest bytes one Clock item takes (0x84, a 34-byte feed, two 1-byte
/// uints, a null head).
const MIN_CLOCK_ITEM: usize = 1 + 34 + 1 + 1 + 1;
/// Most bytes one Clock item takes (0x84, a 34-byte feed, a 9-byte uint, a
/// 1-byte uint, a 34-byte head).
const MAX_CLOCK_ITEM: usize = 1 + 34 + 9 + 1 + 34;
/// Clock flag: the sender wants the feed.
const FLAG_WANT: u64 = 1;
/// Clock flag: the sender holds a fork proof of the feed.
const FLAG_FROZEN: u64 = 2;
/// Fewest bytes one record takes (0x82, an entry, a 1-byte payload).
const MIN_RECORD: usize = 1 + 100 + 1;

/// A record as it travels: an entry and its payload (`None`: omitted).
pub type WireRecord = (Entry, Option<Vec<u8>>);

/// One feed's line in a [`Message::Clock`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockEntry {
    /// The feed.
    pub feed: FeedId,
    /// The latest sequence number the sender holds of it (0: none).
    pub latest: u64,
    /// Whether the sender wants the receiver to send it this feed's entries
    /// after `latest`, and keep pushing new ones (EBT's request flag).
    pub want: bool,
    /// Whether the sender holds a fork proof of the feed (it is frozen there
    /// and sent with the Fork message on every connection).
    pub frozen: bool,
    /// The hash of the sender's entry `latest` (`None` iff `latest` is 0),
    /// so that the receiver can compare heads and find forks (§2.2 "Fork
    /// evidence"). The sync core leaves it `None`; the driver fills it from
    /// its store when it sends the Clock ([`Message::fill_heads`]).
    pub head: Option<Hash>,
}

/// A replication message (spec/PROTOCOL.md §2.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// The sender's latest sequence per listed feed, and whether it wants each.
    /// An update: feeds not listed keep their previous state.
    Clock {
        /// The listed feeds, strictly ascending by id.
        feeds: Vec<ClockEntry>,
    },
    /// Entries with their payloads, in ascending contiguous order per feed.
    Records {
        /// The records.
        records: Vec<WireRecord>,
    },
    /// Asks for entries `from..=to` of `feed` (a partial fetch).
    Request {
        /// The feed.
        feed: FeedId,
        /// First sequence number wanted (at least 1).
        from: u64,
        /// Last sequence number wanted (at least `from`).
        to: u64,
    },
    /// A fork proof: the feed is frozen at its sequence number.
    Fork {
        /// The proof (already checked when decoded).
        proof: Box<ForkProof>,
    },
    /// Asks for entries `from..=to` of `feed` *with their certificate path*,
    /// for the asker only (not replication: nothing of the answer is stored).
    /// Answered by exactly one [`Message::Chunk`] with the same `id`.
    Fetch {
        /// The asker's identifier of this fetch, echoed in the answer.
        id: u64,
        /// The feed.
        feed: FeedId,
        /// First sequence number wanted (at least 1).
        from: u64,
        /// Last sequence number wanted (at least `from`, less than
        /// `from + MAX_FETCH_RANGE`).
        to: u64,
    },
    /// The answer to a [`Message::Fetch`]: the entries on the certificate path
    /// of `from` below `from` (headers only: payload null), then entries
    /// `from..=end` with their payloads, all in ascending order. No records:
    /// the responder holds no entry `from`.
    Chunk {
        /// The identifier of the Fetch answered.
        id: u64,
        /// The feed.
        feed: FeedId,
        /// The latest sequence number the responder holds of the feed. An
        /// answer that ends before `to` and before `latest` was cut to fit one
        /// frame; one that ends at `latest` ends where the responder's feed does.
        latest: u64,
        /// The records.
        records: Vec<WireRecord>,
    },
}

/// Why a frame is not a valid message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// The frame is longer than [`MAX_FRAME`].
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge {
        /// The frame's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The CBOR structure is malformed, non-canonical, truncated or followed
    /// by trailing bytes.
    #[error("malformed message: {0}")]
    Decode(#[from] DecodeError),
    /// The message type is not one of this version.
    #[error("unknown message type {0}")]
    UnknownType(u64),
    /// A declared count exceeds its limit.
    #[error("{field}: {count} items exceed the limit of {max}")]
    TooMany {
        /// The field being read.
        field: &'static str,
        /// The declared count.
        count: u64,
        /// The limit.
        max: usize,
    },
    /// A field holds a value outside its range.
    #[error("{field}: value out of range")]
    BadValue {
        /// The field being read.
        field: &'static str,
    },
    /// A record's entry or payload does not decode (rules V1–V5 of §1.6).
    #[error("record {index}: rule {}: {error}", .error.rule())]
    Record {
        /// Index of the record in the message.
        index: usize,
        /// The rule it broke.
        error: ValidationError,
    },
    /// The fork proof is malformed or proves nothing.
    #[error("fork proof: {0}")]
    Fork(ForkProofError),
}

impl MessageError {
    /// Whether the frame ended inside the message. Messages are framed, so a
    /// driver treats this as invalid too; it is kept apart for diagnostics.
    pub fn is_incomplete(&self) -> bool {
        matches!(self, MessageError::Decode(DecodeError::Incomplete))
    }
}

/// A position in a frame, reading items with the strict CBOR reader.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn rest(&self) -> &'a [u8] {
        self.bytes.get(self.pos..).unwrap_or(&[])
    }

    fn advance(&mut self, used: usize) {
        self.pos = self.pos.saturating_add(used).min(self.bytes.len());
    }

    fn read<T>(&mut self, f: impl FnOnce(&mut CborReader<'a>) -> Result<T, DecodeError>) -> Result<T, DecodeError> {
        let mut reader = CborReader::new(self.rest());
        let value = f(&mut reader)?;
        self.advance(reader.position());
        Ok(value)
    }

    fn uint(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        self.read(|r| r.uint(field))
    }

    fn array(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        self.read(|r| r.array_head(field))
    }

    fn feed(&mut self) -> Result<FeedId, DecodeError> {
        self.read(|r| r.fixed("feed")).map(FeedId)
    }

    /// Reads an array head of `field` and checks its count against `max` and
    /// against the bytes left (each item takes at least `min_item` bytes).
    fn count(&mut self, field: &'static str, max: usize, min_item: usize) -> Result<usize, MessageError> {
        let count = self.array(field)?;
        let too_many = MessageError::TooMany { field, count, max };
        let count = usize::try_from(count).map_err(|_| too_many.clone())?;
        if count > max {
            return Err(too_many);
        }
        if count.saturating_mul(min_item) > self.rest().len() {
            return Err(DecodeError::Incomplete.into());
        }
        Ok(count)
    }

    fn expect_len(&mut self, field: &'static str, expected: usize) -> Result<(), DecodeError> {
        if self.array(field)? != expected as u64 {
            return Err(DecodeError::WrongLength { field, expected });
        }
        Ok(())
    }
}

impl Message {
    /// Decodes one message that fills `frame` exactly (see the module doc).
    pub fn decode(frame: &[u8]) -> Result<Message, MessageError> {
        if frame.len() > MAX_FRAME {
            return Err(MessageError::FrameTooLarge {
                len: frame.len(),
                max: MAX_FRAME,
            });
        }
        let mut c = Cursor { bytes: frame, pos: 0 };
        let items = c.array("message")?;
        let kind = c.uint("type")?;
        let expected = match kind {
            TYPE_CLOCK | TYPE_RECORDS => 2,
            TYPE_REQUEST => 4,
            TYPE_FORK => 3,
            TYPE_FETCH | TYPE_CHUNK => 5,
            other => return Err(MessageError::UnknownType(other)),
        };
        if items != expected {
            return Err(DecodeError::WrongLength {
                field: "message",
                expected: expected as usize,
            }
            .into());
        }
        let message = match kind {
            TYPE_CLOCK => decode_clock(&mut c)?,
            TYPE_RECORDS => decode_records(&mut c)?,
            TYPE_REQUEST => {
                let feed = c.feed()?;
                let from = c.uint("from")?;
                let to = c.uint("to")?;
                if from == 0 || from > to || to > MAX_SEQ {
                    return Err(MessageError::BadValue { field: "request range" });
                }
                Message::Request { feed, from, to }
            }
            TYPE_FETCH => {
                let id = c.uint("id")?;
                let feed = c.feed()?;
                let from = c.uint("from")?;
                let to = c.uint("to")?;
                if from == 0 || from > to || to > MAX_SEQ || to - from >= MAX_FETCH_RANGE {
                    return Err(MessageError::BadValue { field: "fetch range" });
                }
                Message::Fetch { id, feed, from, to }
            }
            TYPE_CHUNK => {
                let id = c.uint("id")?;
                let feed = c.feed()?;
                let latest = c.uint("latest")?;
                if latest > MAX_SEQ {
                    return Err(MessageError::BadValue { field: "latest" });
                }
                let records = decode_record_list(&mut c, "chunk", MAX_CHUNK_RECORDS)?;
                Message::Chunk {
                    id,
                    feed,
                    latest,
                    records,
                }
            }
            _ => {
                // The proof is the rest of the frame: two entries, nothing after.
                let proof = ForkProof::decode(c.rest()).map_err(MessageError::Fork)?;
                c.advance(c.rest().len());
                Message::Fork { proof: Box::new(proof) }
            }
        };
        if c.pos != frame.len() {
            return Err(DecodeError::TrailingBytes.into());
        }
        Ok(message)
    }

    /// The canonical encoding. Decoding it gives back an equal message, and
    /// it is at most [`MAX_FRAME`] bytes when the message respects the limits
    /// (see [`pack_records`] for Records).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Message::Clock { feeds } => {
                out.push(0x82);
                cbor_write_uint(&mut out, TYPE_CLOCK);
                cbor_write_array_head(&mut out, feeds.len() as u64);
                for entry in feeds {
                    out.push(0x84);
                    write_feed(&mut out, &entry.feed);
                    cbor_write_uint(&mut out, entry.latest);
                    cbor_write_uint(&mut out, entry.flags());
                    match &entry.head {
                        Some(head) => {
                            cbor_write_bytes_head(&mut out, 32);
                            out.extend_from_slice(&head.0);
                        }
                        None => out.push(CBOR_NULL),
                    }
                }
            }
            Message::Records { records } => {
                out.push(0x82);
                cbor_write_uint(&mut out, TYPE_RECORDS);
                cbor_write_array_head(&mut out, records.len() as u64);
                for (entry, payload) in records {
                    write_record(&mut out, entry, payload.as_deref());
                }
            }
            Message::Request { feed, from, to } => {
                out.push(0x84);
                cbor_write_uint(&mut out, TYPE_REQUEST);
                write_feed(&mut out, feed);
                cbor_write_uint(&mut out, *from);
                cbor_write_uint(&mut out, *to);
            }
            Message::Fork { proof } => {
                out.push(0x83);
                cbor_write_uint(&mut out, TYPE_FORK);
                out.extend_from_slice(&proof.encode());
            }
            Message::Fetch { id, feed, from, to } => {
                out.push(0x85);
                cbor_write_uint(&mut out, TYPE_FETCH);
                cbor_write_uint(&mut out, *id);
                write_feed(&mut out, feed);
                cbor_write_uint(&mut out, *from);
                cbor_write_uint(&mut out, *to);
            }
            Message::Chunk {
                id,
                feed,
                latest,
                records,
            } => {
                out.push(0x85);
                cbor_write_uint(&mut out, TYPE_CHUNK);
                cbor_write_uint(&mut out, *id);
                write_feed(&mut out, feed);
                cbor_write_uint(&mut out, *latest);
                cbor_write_array_head(&mut out, records.len() as u64);
                for (entry, payload) in records {
                    write_record(&mut out, entry, payload.as_deref());
                }
            }
        }
        out
    }

    /// Fills the head of every Clock line whose `latest` is above 0 with
    /// `head_of(feed, latest)`, the hash of the sender's entry `latest` (the
    /// driver reads it from its store); other messages are left as they are.
    pub fn fill_heads<E>(&mut self, mut head_of: impl FnMut(FeedId, u64) -> Result<Hash, E>) -> Result<(), E> {
        if let Message::Clock { feeds } = self {
            for line in feeds.iter_mut().filter(|line| line.latest > 0) {
                line.head = Some(head_of(line.feed, line.latest)?);
            }
        }
        Ok(())
    }

    /// A short name of the message type, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Clock { .. } => "clock",
            Message::Records { .. } => "records",
            Message::Request { .. } => "request",
            Message::Fork { .. } => "fork",
            Message::Fetch { .. } => "fetch",
            Message::Chunk { .. } => "chunk",
        }
    }
}

fn decode_clock(c: &mut Cursor<'_>) -> Result<Message, MessageError> {
    let count = c.count("clock", MAX_FEEDS_PER_CLOCK, MIN_CLOCK_ITEM)?;
    let mut feeds: Vec<ClockEntry> = Vec::with_capacity(count);
    for _ in 0..count {
        c.expect_len("clock entry", 4)?;
        let feed = c.feed()?;
        let latest = c.uint("latest")?;
        let flags = c.uint("flags")?;
        if flags > FLAG_WANT | FLAG_FROZEN {
            return Err(MessageError::BadValue { field: "flags" });
        }
        if latest > MAX_SEQ {
            return Err(MessageError::BadValue { field: "latest" });
        }
        let head = c.read(|r| r.optional_fixed("head"))?.map(Hash);
        if head.is_none() != (latest == 0) {
            return Err(MessageError::BadValue { field: "head" });
        }
        if feeds.last().is_some_and(|last| last.feed >= feed) {
            return Err(DecodeError::NotCanonical { field: "clock order" }.into());
        }
        feeds.push(ClockEntry {
            feed,
            latest,
            want: flags & FLAG_WANT != 0,
            frozen: flags & FLAG_FROZEN != 0,
            head,
        });
    }
    Ok(Message::Clock { feeds })
}

impl ClockEntry {
    /// The line's flags as on the wire.
    fn flags(&self) -> u64 {
        (u64::from(self.want) * FLAG_WANT) | (u64::from(self.frozen) * FLAG_FROZEN)
    }
}

fn decode_records(c: &mut Cursor<'_>) -> Result<Message, MessageError> {
    let records = decode_record_list(c, "records", MAX_RECORDS_PER_MESSAGE)?;
    Ok(Message::Records { records })
}

fn decode_record_list(c: &mut Cursor<'_>, field: &'static str, max: usize) -> Result<Vec<WireRecord>, MessageError> {
    let count = c.count(field, max, MIN_RECORD)?;
    let mut records = Vec::with_capacity(count);
    for index in 0..count {
        c.expect_len("record", 2)?;
        let (record, used) = decode_record(c.rest()).map_err(|error| match error {
            ValidationError::Decode(DecodeError::Incomplete) => MessageError::Decode(DecodeError::Incomplete),
            error => MessageError::Record { index, error },
        })?;
        c.advance(used);
        records.push(record);
    }
    Ok(records)
}

/// The encoded size of one record inside a Records message.
pub fn record_size(entry: &Entry, payload: Option<&[u8]>) -> usize {
    1 + record_len(entry, payload)
}

/// The bytes of a Records message besides its records (array head, type,
/// records count).
pub const RECORDS_OVERHEAD: usize = 1 + 1 + 3;
/// The bytes of a Chunk message besides its records (array head, type, id,
/// feed, latest, records count).
pub const CHUNK_OVERHEAD: usize = 1 + 1 + 9 + 34 + 9 + 3;

/// Splits records into Records messages, each with at most
/// [`MAX_RECORDS_PER_MESSAGE`] records and encoding to at most [`MAX_FRAME`]
/// bytes, keeping their order. A sender must not send larger ones.
pub fn pack_records(records: Vec<WireRecord>) -> Vec<Message> {
    let mut messages = Vec::new();
    let mut current: Vec<WireRecord> = Vec::new();
    let mut size = RECORDS_OVERHEAD;
    for (entry, payload) in records {
        let len = record_size(&entry, payload.as_deref());
        if !current.is_empty() && (current.len() == MAX_RECORDS_PER_MESSAGE || size + len > MAX_FRAME) {
            messages.push(Message::Records {
                records: std::mem::take(&mut current),
            });
            size = RECORDS_OVERHEAD;
        }
        size += len;
        current.push((entry, payload));
    }
    if !current.is_empty() {
        messages.push(Message::Records { records: current });
    }
    messages
}

/// Builds the [`Message::Chunk`] answering Fetch `id` from what the
/// responder holds: `path` (the entries on the certificate path of the range's
/// first entry below it, ascending; their payloads are dropped), `range` (the
/// held entries of the range from its first, ascending, with payloads) and
/// `latest`. Keeps at most [`MAX_FETCH_RANGE`] entries of the range and cuts
/// it so that the message encodes to at most [`MAX_FRAME`] bytes, keeping at
/// least its first entry.
pub fn pack_chunk(id: u64, feed: FeedId, latest: u64, path: Vec<Entry>, range: Vec<WireRecord>) -> Message {
    let mut size = CHUNK_OVERHEAD;
    let mut records: Vec<WireRecord> = Vec::with_capacity(path.len() + range.len());
    for entry in path.into_iter().take(MAX_CERTIFICATE_PATH) {
        size += record_size(&entry, None);
        records.push((entry, None));
    }
    for (kept, (entry, payload)) in range.into_iter().take(MAX_FETCH_RANGE as usize).enumerate() {
        let len = record_size(&entry, payload.as_deref());
        if kept > 0 && size + len > MAX_FRAME {
            break;
        }
        size += len;
        records.push((entry, payload));
    }
    Message::Chunk {
        id,
        feed,
        latest,
        records,
    }
}

fn write_feed(out: &mut Vec<u8>, feed: &FeedId) {
    cbor_write_bytes_head(out, 32);
    out.extend_from_slice(feed.as_bytes());
}

/// A record as in a bundle (§1.8), wrapped in a two-item array.
fn write_record(out: &mut Vec<u8>, entry: &Entry, payload: Option<&[u8]>) {
    cbor_write_array_head(out, 2);
    encode_record(out, entry, payload);
}

// A Clock with the most lines of the largest size fits a frame.
const _: () = assert!(1 + 1 + 3 + MAX_FEEDS_PER_CLOCK * MAX_CLOCK_ITEM <= MAX_FRAME);

// Guard the size arithmetic of `pack_records` and the frame limit: one record
// with the largest payload always fits a frame, four of them too.
const _: () = assert!(4 * (1 + MAX_ENTRY_SIZE + 9 + MAX_PAYLOAD as usize) + 16 <= MAX_FRAME);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::{Keypair, NewEntry, Timestamp, sign};

    fn feed_of(seed: u8) -> FeedId {
        Keypair::from_seed([seed; 32]).feed_id()
    }

    fn records(n: u64) -> Vec<WireRecord> {
        let keys = Keypair::from_seed([3; 32]);
        let mut prev: Option<Entry> = None;
        let mut entries: Vec<Entry> = Vec::new();
        let mut out = Vec::new();
        for seq in 1..=n {
            let payload = format!("payload {seq}").into_bytes();
            let skip = crate::feed::has_skip_link(seq).then(|| entries[(crate::feed::lipmaa(seq) - 1) as usize].hash());
            let new = NewEntry {
                seq,
                prev: prev.as_ref().map(Entry::hash),
                skip,
                timestamp: Timestamp::new(1_000 + seq, 0),
                payload: &payload,
            };
            let (entry, payload) = sign(&keys, &new).expect("valid entry").into_parts();
            prev = Some(entry.clone());
            entries.push(entry.clone());
            out.push((entry, if seq % 3 == 0 { None } else { payload }));
        }
        out
    }

    fn fork() -> ForkProof {
        let keys = Keypair::from_seed([4; 32]);
        let entry = |payload: &[u8]| {
            let new = NewEntry {
                seq: 1,
                prev: None,
                skip: None,
                timestamp: Timestamp::new(5, 0),
                payload,
            };
            sign(&keys, &new).expect("valid entry").into_parts().0
        };
        ForkProof::new(entry(b"a"), entry(b"b")).expect("a fork")
    }

    fn samples() -> Vec<Message> {
        let mut feeds: Vec<ClockEntry> = (1..=5)
            .map(|i| ClockEntry {
                feed: feed_of(i),
                latest: u64::from(i) * 1000 * u64::from(i > 1),
                want: i % 2 == 0,
                frozen: i % 3 == 0,
                head: (i > 1).then_some(Hash([i; 32])),
            })
            .collect();
        feeds.sort_by_key(|e| e.feed);
        vec![
            Message::Clock { feeds: Vec::new() },
            Message::Clock { feeds },
            Message::Records { records: Vec::new() },
            Message::Records { records: records(9) },
            Message::Request {
                feed: feed_of(1),
                from: 1,
                to: MAX_SEQ,
            },
            Message::Fork {
                proof: Box::new(fork()),
            },
            Message::Fetch {
                id: 7,
                feed: feed_of(3),
                from: 5,
                to: 9,
            },
            Message::Chunk {
                id: 7,
                feed: feed_of(3),
                latest: 9,
                records: records(9).into_iter().skip(4).collect(),
            },
            Message::Chunk {
                id: u64::MAX,
                feed: feed_of(3),
                latest: 0,
                records: Vec::new(),
            },
        ]
    }

    #[test]
    fn messages_round_trip() {
        for message in samples() {
            let bytes = message.encode();
            let decoded = Message::decode(&bytes).expect("decodes");
            assert_eq!(decoded, message);
            assert_eq!(decoded.encode(), bytes);
        }
    }

    #[test]
    fn every_accepted_mutation_re_encodes_to_itself() {
        // Flip bits all over valid frames: whatever still decodes must be the
        // canonical encoding of what it decodes to.
        for message in samples() {
            let bytes = message.encode();
            for at in 0..bytes.len() {
                for mask in [0x01u8, 0x20, 0x80, 0xff] {
                    let mut mutated = bytes.clone();
                    mutated[at] ^= mask;
                    if let Ok(decoded) = Message::decode(&mutated) {
                        assert_eq!(decoded.encode(), mutated, "{} byte {at} ^ {mask:#x}", message.kind());
                    }
                }
            }
        }
    }

    #[test]
    fn trailing_bytes_and_truncation_are_refused() {
        for message in samples() {
            let mut bytes = message.encode();
            for cut in 0..bytes.len() {
                assert!(
                    Message::decode(&bytes[..cut]).is_err(),
                    "{} cut at {cut}",
                    message.kind()
                );
            }
            bytes.push(0);
            assert_eq!(
                Message::decode(&bytes),
                Err(if matches!(message, Message::Fork { .. }) {
                    MessageError::Fork(ForkProofError::Invalid(DecodeError::TrailingBytes.into()))
                } else {
                    DecodeError::TrailingBytes.into()
                })
            );
        }
    }

    #[test]
    fn over_limit_counts_are_refused_before_allocating() {
        // Records with a declared count just above the limit, and a huge one.
        let mut bytes = vec![0x82, 0x01];
        cbor_write_array_head(&mut bytes, MAX_RECORDS_PER_MESSAGE as u64 + 1);
        assert!(matches!(
            Message::decode(&bytes),
            Err(MessageError::TooMany { field: "records", .. })
        ));
        let mut bytes = vec![0x82, 0x00];
        cbor_write_array_head(&mut bytes, u64::MAX);
        assert!(matches!(
            Message::decode(&bytes),
            Err(MessageError::TooMany { field: "clock", .. })
        ));
        // A count within the limit but beyond the bytes present.
        let bytes = [0x82, 0x00, 0x99, 0x10, 0x00];
        assert_eq!(Message::decode(&bytes), Err(DecodeError::Incomplete.into()));
        // A frame over the size limit is refused from its length alone.
        let big = vec![0u8; MAX_FRAME + 1];
        assert!(matches!(Message::decode(&big), Err(MessageError::FrameTooLarge { .. })));
    }

    #[test]
    fn non_canonical_forms_are_refused() {
        let request = Message::Request {
            feed: feed_of(1),
            from: 2,
            to: 3,
        }
        .encode();
        // `from` as a two-byte integer.
        let mut long = request.clone();
        let at = long.len() - 2;
        long.splice(at..at + 1, [0x18, 0x02]);
        assert!(matches!(
            Message::decode(&long),
            Err(MessageError::Decode(DecodeError::NotCanonical { .. }))
        ));
        // An indefinite-length top-level array.
        let mut indefinite = request.clone();
        indefinite[0] = 0x9f;
        assert!(Message::decode(&indefinite).is_err());
        // Clock feeds out of order, or repeated.
        let entry = |seed| ClockEntry {
            feed: feed_of(seed),
            latest: 1,
            want: true,
            frozen: false,
            head: Some(Hash([seed; 32])),
        };
        let (a, b) = (entry(1), entry(2));
        let (low, high) = if a.feed < b.feed { (a, b) } else { (b, a) };
        for feeds in [vec![high, low], vec![low, low]] {
            assert_eq!(
                Message::decode(&Message::Clock { feeds }.encode()),
                Err(DecodeError::NotCanonical { field: "clock order" }.into())
            );
        }
        // Flags other than 0 to 3 (the flags precede the 34-byte head).
        let mut bytes = Message::Clock { feeds: vec![low] }.encode();
        let flags = bytes.len() - 35;
        bytes[flags] = 4;
        assert_eq!(Message::decode(&bytes), Err(MessageError::BadValue { field: "flags" }));
        // A head that is null though entries are held, or given though none are.
        for (latest, head) in [(1, None), (0, Some(Hash([1; 32])))] {
            let line = ClockEntry { latest, head, ..low };
            let bytes = Message::Clock { feeds: vec![line] }.encode();
            assert_eq!(Message::decode(&bytes), Err(MessageError::BadValue { field: "head" }));
        }
        // Empty or reversed request ranges, unknown types, wrong arity.
        for (from, to) in [(0, 1), (3, 2)] {
            let bytes = Message::Request {
                feed: feed_of(1),
                from,
                to,
            }
            .encode();
            assert!(matches!(Message::decode(&bytes), Err(MessageError::BadValue { .. })));
        }
        assert_eq!(Message::decode(&[0x82, 0x09, 0x80]), Err(MessageError::UnknownType(9)));
        assert!(matches!(
            Message::decode(&[0x83, 0x00, 0x80, 0x80]),
            Err(MessageError::Decode(DecodeError::WrongLength { .. }))
        ));
        // A fork proof in the wrong order.
        let proof = fork();
        let (first, second) = proof.entries();
        let mut bytes = vec![0x83, 0x03];
        bytes.extend_from_slice(second.as_bytes());
        bytes.extend_from_slice(first.as_bytes());
        assert!(matches!(Message::decode(&bytes), Err(MessageError::Fork(_))));
    }

    #[test]
    fn records_carry_entry_errors_with_their_rule() {
        let mut bytes = Message::Records { records: records(2) }.encode();
        // The first entry's version byte (after 0x82 0x01 0x82 0x82 0x89).
        assert_eq!(bytes[4], 0x89);
        bytes[5] = 0x02;
        let error = Message::decode(&bytes).expect_err("unknown version");
        assert!(matches!(error, MessageError::Record { index: 0, .. }));
        assert!(error.to_string().contains("V1"), "{error}");
    }

    #[test]
    fn pack_records_respects_both_limits() {
        let many = records(1);
        let repeated: Vec<WireRecord> = std::iter::repeat_n(many[0].clone(), 2 * MAX_RECORDS_PER_MESSAGE + 1).collect();
        let packed = pack_records(repeated);
        assert_eq!(packed.len(), 3);
        for message in &packed {
            assert!(message.encode().len() <= MAX_FRAME);
        }
        assert!(pack_records(Vec::new()).is_empty());
    }
}
