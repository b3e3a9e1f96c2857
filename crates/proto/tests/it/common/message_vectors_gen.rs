//! The generator of the replication message test vectors,
//! `spec/vectors/messages.json` (spec/PROTOCOL.md §2.1).
//!
//! Shared, through a `#[path]` module, by `examples/gen_message_vectors.rs`
//! (which writes the file) and `crates/proto/tests/it/message_vectors.rs` (which checks the
//! implementation against the committed file and that the file is exactly
//! what this produces). Deterministic: fixed keys (the RFC 8032 test keys of
//! `entries.json`), fixed timestamps, no randomness.
//!
//! Valid messages are encoded by the library and described field by field;
//! invalid ones are assembled here byte by byte, each with the error the
//! decoder must report, written down here (not taken from the decoder).

use feedmesh_proto::clock::Timestamp;
use feedmesh_proto::feed::{
    DecodeError, Entry, ForkProof, ForkProofError, Keypair, MAX_PAYLOAD, MAX_SEQ, NewEntry, ValidationError, to_hex,
};
use feedmesh_proto::sync::{
    ClockEntry, MAX_CHUNK_RECORDS, MAX_FEEDS_PER_CLOCK, MAX_FETCH_RANGE, MAX_FRAME, MAX_RECORDS_PER_MESSAGE, Message,
    MessageError,
};
use serde_json::{Value, json};

/// RFC 8032 §7.1 "TEST 1" secret key: the author of the records.
pub(crate) const AUTHOR_SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
/// RFC 8032 §7.1 "TEST 2" secret key: a second feed.
pub(crate) const OTHER_SEED: &str = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb";
/// 2026-01-01T00:00:00Z in milliseconds since the Unix epoch.
const BASE_MS: u64 = 1_767_225_600_000;
/// The path of the file, from the crate root.
pub(crate) const PATH: &str = "spec/vectors/messages.json";

/// The file's contents.
pub(crate) fn file() -> String {
    let mut json = serde_json::to_string_pretty(&vectors()).expect("vectors serialise");
    json.push('\n');
    json
}

/// The decoded fields of a message, as listed in `valid[].fields`.
pub(crate) fn fields_json(message: &Message) -> Value {
    let entry = |e: &Entry| to_hex(e.as_bytes());
    match message {
        Message::Clock { feeds } => json!({
            "type": 0,
            "kind": "clock",
            "feeds": feeds
                .iter()
                .map(|line| json!({
                    "feed": line.feed.to_string(),
                    "latest": line.latest,
                    "want": line.want,
                    "frozen": line.frozen,
                    "head": line.head.map(|head| to_hex(&head.0)),
                }))
                .collect::<Vec<_>>(),
        }),
        Message::Records { records } => json!({
            "type": 1,
            "kind": "records",
            "records": records
                .iter()
                .map(|(e, payload)| json!({
                    "author": e.author().to_string(),
                    "seq": e.seq(),
                    "entry": entry(e),
                    "payload": payload.as_deref().map(to_hex),
                }))
                .collect::<Vec<_>>(),
        }),
        Message::Request { feed, from, to } => json!({
            "type": 2,
            "kind": "request",
            "feed": feed.to_string(),
            "from": from,
            "to": to,
        }),
        Message::Fork { proof } => {
            let (first, second) = proof.entries();
            json!({
                "type": 3,
                "kind": "fork",
                "author": proof.author().to_string(),
                "seq": proof.seq(),
                "first": entry(first),
                "second": entry(second),
            })
        }
        Message::Fetch { id, feed, from, to } => json!({
            "type": 4,
            "kind": "fetch",
            "id": id,
            "feed": feed.to_string(),
            "from": from,
            "to": to,
        }),
        Message::Chunk {
            id,
            feed,
            latest,
            records,
        } => json!({
            "type": 5,
            "kind": "chunk",
            "id": id,
            "feed": feed.to_string(),
            "latest": latest,
            "records": records
                .iter()
                .map(|(e, payload)| json!({
                    "author": e.author().to_string(),
                    "seq": e.seq(),
                    "entry": entry(e),
                    "payload": payload.as_deref().map(to_hex),
                }))
                .collect::<Vec<_>>(),
        }),
    }
}

/// An error as listed in `invalid[].error`: `kind` names the `MessageError`
/// variant, the other keys its fields.
pub(crate) fn error_json(error: &MessageError) -> Value {
    match error {
        MessageError::FrameTooLarge { len, max } => json!({ "kind": "frame-too-large", "len": len, "max": max }),
        MessageError::Decode(error) => with_kind("decode", decode_json(error)),
        MessageError::UnknownType(found) => json!({ "kind": "unknown-type", "type": found }),
        MessageError::TooMany { field, count, max } => {
            json!({ "kind": "too-many", "field": field, "count": count, "max": max })
        }
        MessageError::BadValue { field } => json!({ "kind": "bad-value", "field": field }),
        MessageError::Record { index, error } => {
            let mut value = validation_json(error);
            value["index"] = json!(index);
            with_kind("record", value)
        }
        MessageError::Fork(error) => with_kind(
            "fork",
            match error {
                ForkProofError::DifferentPositions => json!({ "reason": "different-positions" }),
                ForkProofError::Identical => json!({ "reason": "identical" }),
                ForkProofError::Invalid(error) => {
                    let mut value = validation_json(error);
                    value["reason"] = json!("invalid-entry");
                    value
                }
                other => panic!("no vector format for {other:?}"),
            },
        ),
        other => panic!("no vector format for {other:?}"),
    }
}

fn with_kind(kind: &str, mut value: Value) -> Value {
    value["kind"] = json!(kind);
    value
}

/// A `DecodeError`: `decode` names the variant.
fn decode_json(error: &DecodeError) -> Value {
    match error {
        DecodeError::Incomplete => json!({ "decode": "incomplete" }),
        DecodeError::UnexpectedType { field } => json!({ "decode": "unexpected-type", "field": field }),
        DecodeError::NotCanonical { field } => json!({ "decode": "not-canonical", "field": field }),
        DecodeError::WrongLength { field, expected } => {
            json!({ "decode": "wrong-length", "field": field, "expected": expected })
        }
        DecodeError::TooLong { field, max } => json!({ "decode": "too-long", "field": field, "max": max }),
        DecodeError::TrailingBytes => json!({ "decode": "trailing-bytes" }),
        other => panic!("no vector format for {other:?}"),
    }
}

/// A `ValidationError`: its rule, and the decode error for rule V2.
fn validation_json(error: &ValidationError) -> Value {
    match error {
        ValidationError::Decode(decode) => {
            let mut value = decode_json(decode);
            value["rule"] = json!(error.rule());
            value
        }
        other => json!({ "rule": other.rule() }),
    }
}

fn keypair(seed_hex: &str) -> Keypair {
    Keypair::from_seed_hex(seed_hex).expect("a valid seed")
}

/// The first three entries of the author's feed, with their payloads.
fn entries(keys: &Keypair) -> Vec<(Entry, Vec<u8>)> {
    let mut out: Vec<(Entry, Vec<u8>)> = Vec::new();
    for seq in 1..=3u64 {
        let payload = format!("message vectors, entry {seq}").into_bytes();
        let new = NewEntry {
            seq,
            prev: out.last().map(|(e, _)| e.hash()),
            skip: None,
            timestamp: Timestamp::new(BASE_MS + seq * 1000, 0),
            payload: &payload,
        };
        out.push((Entry::sign(keys, &new).expect("valid"), payload));
    }
    out
}

/// A second entry 2, after the same entry 1, with another payload.
fn forked_second(keys: &Keypair, first: &Entry) -> Entry {
    let new = NewEntry {
        seq: 2,
        prev: Some(first.hash()),
        skip: None,
        timestamp: Timestamp::new(BASE_MS + 2000, 0),
        payload: b"message vectors, entry 2, forked",
    };
    Entry::sign(keys, &new).expect("valid")
}

/// A canonical CBOR head.
fn head(major: u8, arg: u64) -> Vec<u8> {
    let m = major << 5;
    match arg {
        0..=23 => vec![m | arg as u8],
        24..=0xff => vec![m | 24, arg as u8],
        0x100..=0xffff => [&[m | 25][..], &(arg as u16).to_be_bytes()].concat(),
        0x1_0000..=0xffff_ffff => [&[m | 26][..], &(arg as u32).to_be_bytes()].concat(),
        _ => [&[m | 27][..], &arg.to_be_bytes()].concat(),
    }
}

fn uint(value: u64) -> Vec<u8> {
    head(0, value)
}

fn bstr(bytes: &[u8]) -> Vec<u8> {
    [head(2, bytes.len() as u64), bytes.to_vec()].concat()
}

fn array(items: &[Vec<u8>]) -> Vec<u8> {
    [head(4, items.len() as u64), items.concat()].concat()
}

struct Invalid {
    name: &'static str,
    description: &'static str,
    bytes: Vec<u8>,
    error: MessageError,
}

fn decode_error(error: DecodeError) -> MessageError {
    MessageError::Decode(error)
}

fn vectors() -> Value {
    let keys = keypair(AUTHOR_SEED);
    let other = keypair(OTHER_SEED);
    let (author, second) = (keys.feed_id(), other.feed_id());
    let feed = entries(&keys);
    let (e1, e2, e3) = (&feed[0].0, &feed[1].0, &feed[2].0);
    let forked = forked_second(&keys, e1);
    let proof = ForkProof::new(e2.clone(), forked.clone()).expect("a fork at 2");
    let (low, high) = proof.entries();
    let (low, high) = (low.clone(), high.clone());
    let (feed_low, feed_high) = if author < second {
        (author, second)
    } else {
        (second, author)
    };

    let valid: Vec<(&str, &str, Message)> = vec![
        (
            "clock-empty",
            "a Clock listing no feed (the hello of a node holding none)",
            Message::Clock { feeds: Vec::new() },
        ),
        (
            "clock",
            "a Clock with two lines in ascending feed order: one wanted with nothing held (head null), one \
             held up to MAX_SEQ (with its head's hash), not wanted and frozen (flags 2)",
            Message::Clock {
                feeds: vec![
                    ClockEntry {
                        feed: feed_low,
                        latest: 0,
                        want: true,
                        frozen: false,
                        head: None,
                    },
                    ClockEntry {
                        feed: feed_high,
                        latest: MAX_SEQ,
                        want: false,
                        frozen: true,
                        head: Some(e1.hash()),
                    },
                ],
            },
        ),
        (
            "records",
            "entries 1 to 3 of the author's feed, the payload of entry 2 omitted (null)",
            Message::Records {
                records: feed
                    .iter()
                    .map(|(e, p)| (e.clone(), (e.seq() != 2).then(|| p.clone())))
                    .collect(),
            },
        ),
        (
            "records-empty",
            "a Records message with no record",
            Message::Records { records: Vec::new() },
        ),
        (
            "request",
            "a Request for entries 2 to 300 of the author's feed",
            Message::Request {
                feed: author,
                from: 2,
                to: 300,
            },
        ),
        (
            "fork",
            "a fork proof: two entries 2 of the author's feed after the same entry 1, smaller hash first",
            Message::Fork {
                proof: Box::new(proof.clone()),
            },
        ),
        (
            "fetch",
            "a Fetch (id 1) for entry 3 of the author's feed with its certificate path",
            Message::Fetch {
                id: 1,
                feed: author,
                from: 3,
                to: 3,
            },
        ),
        (
            "chunk",
            "the Chunk answering fetch 1: the certificate path of 3 below it (entries 1 and 2, payload null), \
             then entry 3 with its payload; the responder holds up to 3",
            Message::Chunk {
                id: 1,
                feed: author,
                latest: 3,
                records: feed
                    .iter()
                    .map(|(e, p)| (e.clone(), (e.seq() == 3).then(|| p.clone())))
                    .collect(),
            },
        ),
        (
            "chunk-empty",
            "a Chunk answering fetch 2 without records: the responder holds entries up to 3 only",
            Message::Chunk {
                id: 2,
                feed: author,
                latest: 3,
                records: Vec::new(),
            },
        ),
    ];
    let fetch = |from: u64, to: u64| array(&[uint(4), uint(1), bstr(author.as_bytes()), uint(from), uint(to)]);

    let request = |from: u64, to: u64| array(&[uint(2), bstr(author.as_bytes()), uint(from), uint(to)]);
    let head_bytes = bstr(&e1.hash().0);
    let line = |feed: &[u8], latest: Vec<u8>, flags: Vec<u8>| array(&[bstr(feed), latest, flags, head_bytes.clone()]);
    let clock = |lines: &[Vec<u8>]| array(&[uint(0), array(lines)]);
    let record = |entry: &Entry, payload: Vec<u8>| array(&[entry.as_bytes().to_vec(), payload]);
    let records = |items: &[Vec<u8>]| array(&[uint(1), array(items)]);
    let fork = |a: &Entry, b: &Entry| array(&[uint(3), a.as_bytes().to_vec(), b.as_bytes().to_vec()]);
    let good_line = line(author.as_bytes(), uint(1), uint(1));
    let mut version_2 = e1.as_bytes().to_vec();
    assert_eq!(version_2[1], 1, "the version item follows the entry's array head");
    version_2[1] = 2;
    let count_head = |kind: u64, count: u64| [head(4, 2), uint(kind), head(4, count)].concat();

    let invalid = vec![
        Invalid {
            name: "empty",
            description: "zero bytes",
            bytes: Vec::new(),
            error: decode_error(DecodeError::Incomplete),
        },
        Invalid {
            name: "not-an-array",
            description: "a CBOR map where the message array should be",
            bytes: vec![0xa0],
            error: decode_error(DecodeError::UnexpectedType { field: "message" }),
        },
        Invalid {
            name: "type-not-uint",
            description: "the message type as a byte string",
            bytes: [head(4, 2), bstr(&[0]), array(&[])].concat(),
            error: decode_error(DecodeError::UnexpectedType { field: "type" }),
        },
        Invalid {
            name: "unknown-type",
            description: "message type 9",
            bytes: array(&[uint(9), array(&[])]),
            error: MessageError::UnknownType(9),
        },
        Invalid {
            name: "fetch-from-zero",
            description: "a Fetch for entries 0 to 3",
            bytes: fetch(0, 3),
            error: MessageError::BadValue { field: "fetch range" },
        },
        Invalid {
            name: "fetch-too-long",
            description: "a Fetch for MAX_FETCH_RANGE + 1 entries (1 to 1025)",
            bytes: fetch(1, MAX_FETCH_RANGE + 1),
            error: MessageError::BadValue { field: "fetch range" },
        },
        Invalid {
            name: "fetch-wrong-arity",
            description: "a Fetch without its `to`",
            bytes: array(&[uint(4), uint(1), bstr(author.as_bytes()), uint(1)]),
            error: decode_error(DecodeError::WrongLength {
                field: "message",
                expected: 5,
            }),
        },
        Invalid {
            name: "chunk-latest-beyond-max-seq",
            description: "a Chunk whose latest is MAX_SEQ + 1",
            bytes: array(&[uint(5), uint(1), bstr(author.as_bytes()), uint(MAX_SEQ + 1), array(&[])]),
            error: MessageError::BadValue { field: "latest" },
        },
        Invalid {
            name: "chunk-too-many-records",
            description: "a Chunk declaring MAX_CHUNK_RECORDS + 1 records",
            bytes: [
                head(4, 5),
                uint(5),
                uint(1),
                bstr(author.as_bytes()),
                uint(3),
                head(4, MAX_CHUNK_RECORDS as u64 + 1),
            ]
            .concat(),
            error: MessageError::TooMany {
                field: "chunk",
                count: MAX_CHUNK_RECORDS as u64 + 1,
                max: MAX_CHUNK_RECORDS,
            },
        },
        Invalid {
            name: "request-wrong-arity",
            description: "a Request (type 2) in a 3-item array, `to` missing",
            bytes: array(&[uint(2), bstr(author.as_bytes()), uint(1)]),
            error: decode_error(DecodeError::WrongLength {
                field: "message",
                expected: 4,
            }),
        },
        Invalid {
            name: "request-trailing-byte",
            description: "a valid Request followed by one zero byte",
            bytes: [request(2, 3), vec![0]].concat(),
            error: decode_error(DecodeError::TrailingBytes),
        },
        Invalid {
            name: "request-truncated",
            description: "a valid Request without its last byte",
            bytes: {
                let bytes = request(2, 300);
                bytes[..bytes.len() - 1].to_vec()
            },
            error: decode_error(DecodeError::Incomplete),
        },
        Invalid {
            name: "request-non-canonical-from",
            description: "a Request whose `from` (2) is written with a one-byte argument (0x18 0x02)",
            bytes: array(&[uint(2), bstr(author.as_bytes()), vec![0x18, 0x02], uint(3)]),
            error: decode_error(DecodeError::NotCanonical { field: "from" }),
        },
        Invalid {
            name: "non-canonical-array-head",
            description: "a Request whose message array head is written with a one-byte argument (0x98 0x04)",
            bytes: [vec![0x98, 0x04], uint(2), bstr(author.as_bytes()), uint(2), uint(3)].concat(),
            error: decode_error(DecodeError::NotCanonical { field: "message" }),
        },
        Invalid {
            name: "indefinite-length-array",
            description: "a Clock in an indefinite-length array (0x9f ... 0xff)",
            bytes: [vec![0x9f], uint(0), array(&[]), vec![0xff]].concat(),
            error: decode_error(DecodeError::NotCanonical { field: "message" }),
        },
        Invalid {
            name: "request-from-zero",
            description: "a Request for entries 0 to 3",
            bytes: request(0, 3),
            error: MessageError::BadValue { field: "request range" },
        },
        Invalid {
            name: "request-reversed",
            description: "a Request for entries 5 to 4",
            bytes: request(5, 4),
            error: MessageError::BadValue { field: "request range" },
        },
        Invalid {
            name: "request-beyond-max-seq",
            description: "a Request ending at MAX_SEQ + 1",
            bytes: request(1, MAX_SEQ + 1),
            error: MessageError::BadValue { field: "request range" },
        },
        Invalid {
            name: "request-feed-too-short",
            description: "a Request whose feed is a 31-byte string",
            bytes: array(&[uint(2), bstr(&author.as_bytes()[..31]), uint(1), uint(2)]),
            error: decode_error(DecodeError::WrongLength {
                field: "feed",
                expected: 32,
            }),
        },
        Invalid {
            name: "clock-out-of-order",
            description: "a Clock whose two lines are in descending feed order",
            bytes: clock(&[
                line(feed_high.as_bytes(), uint(1), uint(1)),
                line(feed_low.as_bytes(), uint(1), uint(1)),
            ]),
            error: decode_error(DecodeError::NotCanonical { field: "clock order" }),
        },
        Invalid {
            name: "clock-repeated-feed",
            description: "a Clock listing the same feed twice",
            bytes: clock(&[good_line.clone(), good_line.clone()]),
            error: decode_error(DecodeError::NotCanonical { field: "clock order" }),
        },
        Invalid {
            name: "clock-flags-4",
            description: "a Clock line with flags = 4 (only want = 1 and frozen = 2 are defined)",
            bytes: clock(&[line(author.as_bytes(), uint(1), uint(4))]),
            error: MessageError::BadValue { field: "flags" },
        },
        Invalid {
            name: "clock-head-null",
            description: "a Clock line with latest = 1 and a null head",
            bytes: clock(&[array(&[bstr(author.as_bytes()), uint(1), uint(1), vec![0xf6]])]),
            error: MessageError::BadValue { field: "head" },
        },
        Invalid {
            name: "clock-head-without-entries",
            description: "a Clock line with latest = 0 and a head",
            bytes: clock(&[line(author.as_bytes(), uint(0), uint(1))]),
            error: MessageError::BadValue { field: "head" },
        },
        Invalid {
            name: "clock-head-short",
            description: "a Clock line whose head is 31 bytes (a truncated hash)",
            bytes: clock(&[array(&[bstr(author.as_bytes()), uint(1), uint(1), bstr(&[7; 31])])]),
            error: decode_error(DecodeError::WrongLength {
                field: "head",
                expected: 32,
            }),
        },
        Invalid {
            name: "clock-latest-beyond-max-seq",
            description: "a Clock line with latest = MAX_SEQ + 1",
            bytes: clock(&[line(author.as_bytes(), uint(MAX_SEQ + 1), uint(1))]),
            error: MessageError::BadValue { field: "latest" },
        },
        Invalid {
            name: "clock-latest-negative",
            description: "a Clock line whose latest is the negative integer -1 (0x20)",
            bytes: clock(&[line(author.as_bytes(), vec![0x20], uint(1))]),
            error: decode_error(DecodeError::UnexpectedType { field: "latest" }),
        },
        Invalid {
            name: "clock-line-of-three",
            description: "a Clock line of three items: a feed, latest = 1000 and flags = 1, no head (the \
                          line of transport v1)",
            bytes: clock(&[array(&[bstr(author.as_bytes()), uint(1000), uint(1)])]),
            error: decode_error(DecodeError::WrongLength {
                field: "clock entry",
                expected: 4,
            }),
        },
        Invalid {
            name: "clock-over-limit",
            description: "a Clock declaring MAX_FEEDS_PER_CLOCK + 1 lines",
            bytes: count_head(0, MAX_FEEDS_PER_CLOCK as u64 + 1),
            error: MessageError::TooMany {
                field: "clock",
                count: MAX_FEEDS_PER_CLOCK as u64 + 1,
                max: MAX_FEEDS_PER_CLOCK,
            },
        },
        Invalid {
            name: "records-over-limit",
            description: "a Records message declaring MAX_RECORDS_PER_MESSAGE + 1 records",
            bytes: count_head(1, MAX_RECORDS_PER_MESSAGE as u64 + 1),
            error: MessageError::TooMany {
                field: "records",
                count: MAX_RECORDS_PER_MESSAGE as u64 + 1,
                max: MAX_RECORDS_PER_MESSAGE,
            },
        },
        Invalid {
            name: "records-count-2^64-1",
            description: "a Records message declaring 2^64 - 1 records",
            bytes: count_head(1, u64::MAX),
            error: MessageError::TooMany {
                field: "records",
                count: u64::MAX,
                max: MAX_RECORDS_PER_MESSAGE,
            },
        },
        Invalid {
            name: "records-count-beyond-bytes",
            description: "a Records message declaring 2 records and holding one: refused from the count alone",
            bytes: [count_head(1, 2), record(e1, bstr(&feed[0].1))].concat(),
            error: decode_error(DecodeError::Incomplete),
        },
        Invalid {
            name: "record-of-three",
            description: "a record array of three items",
            bytes: records(&[array(&[e1.as_bytes().to_vec(), bstr(&feed[0].1), vec![0xf6]])]),
            error: decode_error(DecodeError::WrongLength {
                field: "record",
                expected: 2,
            }),
        },
        Invalid {
            name: "record-entry-version-2",
            description: "a record whose entry has format version 2 (rule V1), second in the message",
            bytes: records(&[record(e1, bstr(&feed[0].1)), record_raw(&version_2, bstr(&feed[0].1))]),
            error: MessageError::Record {
                index: 1,
                error: ValidationError::UnknownVersion(2),
            },
        },
        Invalid {
            name: "record-payload-text",
            description: "a record whose payload is a text string",
            bytes: records(&[record(e1, [head(3, 1), b"x".to_vec()].concat())]),
            error: MessageError::Record {
                index: 0,
                error: ValidationError::Decode(DecodeError::UnexpectedType { field: "payload" }),
            },
        },
        Invalid {
            name: "record-payload-over-max",
            description: "a record whose payload head declares MAX_PAYLOAD + 1 bytes",
            bytes: records(&[record(e3, head(2, MAX_PAYLOAD + 1))]),
            error: MessageError::Record {
                index: 0,
                error: ValidationError::Decode(DecodeError::TooLong {
                    field: "payload",
                    max: MAX_PAYLOAD as usize,
                }),
            },
        },
        Invalid {
            name: "fork-wrong-order",
            description: "a Fork with the larger hash first",
            bytes: fork(&high, &low),
            error: MessageError::Fork(ForkProofError::Invalid(ValidationError::Decode(
                DecodeError::NotCanonical {
                    field: "fork proof order",
                },
            ))),
        },
        Invalid {
            name: "fork-identical",
            description: "a Fork holding entry 2 twice",
            bytes: fork(e2, e2),
            error: MessageError::Fork(ForkProofError::Identical),
        },
        Invalid {
            name: "fork-different-seqs",
            description: "a Fork holding entries 1 and 2 (no fork), smaller hash first",
            bytes: if e1.hash() < e2.hash() {
                fork(e1, e2)
            } else {
                fork(e2, e1)
            },
            error: MessageError::Fork(ForkProofError::DifferentPositions),
        },
        Invalid {
            name: "fork-bad-signature",
            description: "a Fork whose second entry has the last bit of its signature flipped \
                          (the order is checked on the altered entry)",
            bytes: {
                let mut altered = high.as_bytes().to_vec();
                *altered.last_mut().expect("non-empty") ^= 1;
                let altered = Entry::decode(&altered).expect("still decodes");
                if low.hash() < altered.hash() {
                    fork(&low, &altered)
                } else {
                    fork(&altered, &low)
                }
            },
            error: MessageError::Fork(ForkProofError::Invalid(ValidationError::BadSignature)),
        },
        Invalid {
            name: "fork-trailing-byte",
            description: "a valid Fork followed by one zero byte",
            bytes: [fork(&low, &high), vec![0]].concat(),
            error: MessageError::Fork(ForkProofError::Invalid(ValidationError::Decode(
                DecodeError::TrailingBytes,
            ))),
        },
    ];

    json!({
        "description": "feedmesh replication message test vectors (spec/PROTOCOL.md §2.1); see README.md",
        "limits": {
            "max_frame": MAX_FRAME,
            "max_records_per_message": MAX_RECORDS_PER_MESSAGE,
            "max_fetch_range": MAX_FETCH_RANGE,
            "max_chunk_records": MAX_CHUNK_RECORDS,
            "max_feeds_per_clock": MAX_FEEDS_PER_CLOCK,
            "max_payload": MAX_PAYLOAD,
            "max_seq": MAX_SEQ,
        },
        "keys": [
            { "name": "author", "seed": keys.seed_hex(), "feed_id": author.to_string() },
            { "name": "other", "seed": other.seed_hex(), "feed_id": second.to_string() },
        ],
        "payloads": feed.iter().map(|(e, p)| json!({ "seq": e.seq(), "payload": to_hex(p) })).collect::<Vec<_>>(),
        "valid": valid
            .iter()
            .map(|(name, description, message)| json!({
                "name": name,
                "description": description,
                "hex": to_hex(&message.encode()),
                "fields": fields_json(message),
            }))
            .collect::<Vec<_>>(),
        "invalid": invalid
            .iter()
            .map(|case| json!({
                "name": case.name,
                "description": case.description,
                "hex": to_hex(&case.bytes),
                "error": error_json(&case.error),
            }))
            .collect::<Vec<_>>(),
    })
}

/// A record of raw entry bytes and an encoded payload item.
fn record_raw(entry: &[u8], payload: Vec<u8>) -> Vec<u8> {
    array(&[entry.to_vec(), payload])
}
