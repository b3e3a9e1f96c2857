//! The generator of the entry-format test vectors in `spec/vectors/`
//! (spec/PROTOCOL.md part 1).
//!
//! Shared, through a `#[path]` module, by `examples/gen_vectors.rs` (which
//! writes the files) and `crates/proto/tests/it/vectors.rs` (which checks that the committed
//! files are exactly what this produces). Deterministic: fixed seeds, fixed
//! wall-clock times, no randomness.
//!
//! Valid entries are signed by the library. Invalid entries are assembled here
//! byte by byte, from an encoder that is independent of the library's, and
//! re-signed wherever the rule under test is not the signature, so that each
//! one breaks exactly the rule it is listed under.

use feedmesh_proto::clock::{HybridClock, Timestamp};
use feedmesh_proto::feed::{
    Entry, FORMAT_VERSION, ForkProof, Hash, Keypair, MAX_ENTRY_SIZE, MAX_PAYLOAD, MAX_SEQ, NewEntry, SIGNING_CONTEXT,
    certificate_path, has_skip_link, lipmaa, to_hex,
};
use serde::Serialize;

/// RFC 8032 §7.1 "TEST 1" secret key: the author of the valid feed.
const AUTHOR_SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
/// RFC 8032 §7.1 "TEST 2" secret key: a second author.
const OTHER_SEED: &str = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb";
/// Entries in the valid feed.
const FEED_LEN: usize = 24;
/// 2026-01-01T00:00:00Z in milliseconds since the Unix epoch.
const BASE_MS: u64 = 1_767_225_600_000;
/// The wall-clock reading (after `BASE_MS`) when each entry of the valid feed
/// is stamped. Entries 3 and 4 share entry 2's millisecond, entry 6's clock
/// reads earlier than entry 5's and entry 10 shares entry 9's: the hybrid
/// clock's logical counter keeps the timestamps strictly increasing.
const WALL_OFFSETS_MS: [u64; FEED_LEN] = [
    0, 1_000, 1_000, 1_000, 2_000, 1_900, 3_000, 4_000, 5_000, 5_000, 6_000, 7_000, 8_000, 9_000, 10_000, 11_000,
    12_000, 13_000, 14_000, 15_000, 16_000, 17_000, 18_000, 19_000,
];
/// The bundle magic of spec/PROTOCOL.md §1.8.
const BUNDLE_MAGIC: &[u8] = b"feedmesh bundle v1\n";
/// The order of the ed25519 group, little-endian.
const GROUP_ORDER_LE: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

const README: &str = "\
# Entry format test vectors

Test vectors for spec/PROTOCOL.md part 1 (identities and entries, format
version 1). `crates/proto/tests/it/vectors.rs` checks the implementation against every one of
them, and checks that these files are exactly what the generator produces.

Regenerate them (deterministic: fixed seeds, fixed clock readings, no
randomness) with:

```sh
cargo run --example gen_vectors
```

The generator lives in `crates/proto/tests/it/common/vectors_gen.rs`, shared by
`examples/gen_vectors.rs` and `crates/proto/tests/it/vectors.rs`.

## entries.json

All byte strings are lowercase hex. Integers are JSON numbers and some exceed
2^53 (timestamps, sequence numbers near `max_seq`): read them as 64-bit
unsigned integers.

- `signing_context`, `limits`: the constants of §1.2 and §1.3.
- `keys`: the key seeds (RFC 8032 §7.1 TEST 1 and TEST 2 secret keys) and the
  feed ids they give. `author` writes the valid feed; `other` is a second feed.
- `valid`: a feed of 24 entries by `author`, each with its entry bytes, entry
  hash (blake3 of the entry bytes), payload, and the decoded `fields` (the nine
  items of §1.2, in order). `derived` gives what follows from them: the skip
  target `lipmaa(seq)` when the entry has a skip link, and the timestamp split
  into wall-clock milliseconds and logical counter (§1.5). Every entry verifies
  and the 24 form one chain.
- `valid_alone`: entries that are valid on their own (rules V1 to V6) at the
  edges of the format: the smallest and the largest possible entry.
- `invalid`: each case breaks exactly one rule of §1.6; `rule` is the rule's
  name as the implementation reports it (`V<n> <name>`). `context` says what
  the entry is checked with:
  - `alone`: the entry bytes alone (decoding and signature);
  - `after`: the entry is appended to the feed holding the first `after`
    entries of `valid` (it is valid alone);
  - `payload`: the entry (one of `valid`, or valid alone) arrives with
    `payload`, which it does not commit to.
- `forks`: two valid entries by one author at one sequence number, and the
  fork proof they make (§1.7): both entries back to back, smaller hash first.
- `bundles`: an export bundle (§1.8) with its bytes and what each record
  holds.
- `lipmaa`: skip-link targets, presence and certificate paths (§1.4) for
  small and large sequence numbers.

## messages.json

Test vectors for the replication messages of spec/PROTOCOL.md §2.1, checked
by `crates/proto/tests/it/message_vectors.rs` and written by
`cargo run --example gen_message_vectors` (generator:
`crates/proto/tests/it/common/message_vectors_gen.rs`). Same keys as `entries.json`; byte
strings in lowercase hex, integers up to 2^64 - 1.

- `limits`: MAX_FRAME, MAX_RECORDS_PER_MESSAGE, MAX_FEEDS_PER_CLOCK,
  MAX_FETCH_RANGE, MAX_CHUNK_RECORDS, and the entry limits they rely on.
- `valid`: at least one message of each type (Clock, Records, Request, Fork,
  Fetch, Chunk; the Chunk answers the Fetch: the certificate path of entry 3
  as headers, then entry 3 with its payload),
  each with its bytes (`hex`) and its decoded `fields` (`type`, `kind`, and
  the message's fields; entries as hex, feeds as `feed_` ids, an omitted
  payload as null). Decoding `hex` gives `fields`; encoding them gives `hex`
  back. `payloads` lists the payloads of the entries in `records`.
- `invalid`: frames a decoder must refuse, each with the `error` the reference
  implementation reports: `kind` (`decode`, `unknown-type`, `too-many`,
  `bad-value`, `record`, `fork`), then the details: for `decode`, which
  CBOR rule (`incomplete`, `unexpected-type`, `not-canonical`,
  `wrong-length`, `too-long`, `trailing-bytes`) and the `field`; for
  `record`, the record's `index` and the entry `rule` (§1.6); for `fork`, the
  `reason`. Covered: non-canonical heads and orders, trailing and missing
  bytes, counts over their limits or beyond the bytes present, values out of
  range, items of the wrong CBOR type or length, and bad fork proofs.

## signatures.json

The signature rule V6 (PROTOCOL.md §1.3) on the ten edge cases of \"Taming the
many EdDSAs\" (Chalkias et al. 2020: small-order and mixed-order keys and `R`,
non-canonical `S` and `R`), copied from the paper's published cases. Each case
has `message`, `pub_key` and `signature` (hex, the signature over the message
bytes as given, without `SIGNING_CONTEXT`), `valid`, and for an invalid one
`fault`: the first check of §1.3 that fails, taking them in the order key
(`bad-key-encoding`, `small-order-key`), `S` (`non-canonical-s`), `R`
(`bad-r-encoding`, `small-order-r`), equation (`equation`). `crates/proto/tests/it/signatures.rs`
checks each case alone and inside batches of 1, 2, 63 and 1,024 honest
signatures at 1,000 positions: the verdict is always the one given here.
";

#[derive(Serialize)]
struct Vectors {
    description: &'static str,
    format_version: u64,
    signing_context: String,
    limits: Limits,
    keys: Vec<KeyJson>,
    valid: Vec<ValidEntry>,
    valid_alone: Vec<EdgeEntry>,
    invalid: Vec<InvalidCase>,
    forks: Vec<ForkJson>,
    bundles: Vec<BundleJson>,
    lipmaa: Vec<LipmaaJson>,
}

#[derive(Serialize)]
struct Limits {
    max_entry_size: usize,
    max_payload: u64,
    max_seq: u64,
}

#[derive(Serialize)]
struct KeyJson {
    name: &'static str,
    seed: String,
    feed_id: String,
}

#[derive(Serialize)]
struct FieldsJson {
    version: u64,
    author: String,
    seq: u64,
    prev: Option<String>,
    skip: Option<String>,
    timestamp: u64,
    payload_len: u64,
    payload_hash: String,
    signature: String,
}

#[derive(Serialize)]
struct Derived {
    skip_target: Option<u64>,
    wall_ms: u64,
    logical: u16,
}

#[derive(Serialize)]
struct ValidEntry {
    seq: u64,
    entry: String,
    hash: String,
    payload: String,
    fields: FieldsJson,
    derived: Derived,
}

#[derive(Serialize)]
struct EdgeEntry {
    name: &'static str,
    description: &'static str,
    entry: String,
    hash: String,
    fields: FieldsJson,
}

#[derive(Serialize)]
struct InvalidCase {
    name: &'static str,
    rule: &'static str,
    description: &'static str,
    context: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    after: Option<usize>,
    entry: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<String>,
}

#[derive(Serialize)]
struct ForkJson {
    name: &'static str,
    description: &'static str,
    seq: u64,
    entry_a: String,
    entry_b: String,
    proof: String,
}

#[derive(Serialize)]
struct BundleRecordJson {
    seq: u64,
    payload_included: bool,
}

#[derive(Serialize)]
struct BundleJson {
    name: &'static str,
    description: &'static str,
    records: Vec<BundleRecordJson>,
    bytes: String,
}

#[derive(Serialize)]
struct LipmaaJson {
    n: u64,
    lipmaa: u64,
    has_skip_link: bool,
    certificate_path: Vec<u64>,
}

/// Every file of `spec/vectors/`: its path relative to the crate root, and
/// its exact contents.
pub(crate) fn files() -> Vec<(&'static str, String)> {
    let mut json = serde_json::to_string_pretty(&vectors()).expect("vectors serialise");
    json.push('\n');
    vec![
        ("spec/vectors/entries.json", json),
        ("spec/vectors/README.md", README.to_owned()),
    ]
}

fn keypair(seed_hex: &str) -> Keypair {
    Keypair::from_seed_hex(seed_hex).expect("a valid seed")
}

fn payload_of(seq: u64) -> Vec<u8> {
    // Entry 1 commits to the empty payload.
    if seq == 1 {
        Vec::new()
    } else {
        format!("payload {seq}").into_bytes()
    }
}

/// The valid feed and the payload of each entry.
fn valid_feed(keys: &Keypair) -> Vec<(Entry, Vec<u8>)> {
    let mut clock = HybridClock::new();
    let mut feed: Vec<(Entry, Vec<u8>)> = Vec::with_capacity(FEED_LEN);
    for (index, offset) in WALL_OFFSETS_MS.iter().enumerate() {
        let seq = index as u64 + 1;
        let payload = payload_of(seq);
        let new = NewEntry {
            seq,
            prev: feed.last().map(|(entry, _)| entry.hash()),
            skip: has_skip_link(seq).then(|| feed[lipmaa(seq) as usize - 1].0.hash()),
            timestamp: clock.tick(BASE_MS + offset),
            payload: &payload,
        };
        let entry = Entry::sign(keys, &new).expect("a valid entry");
        feed.push((entry, payload));
    }
    feed
}

fn fields_json(entry: &Entry) -> FieldsJson {
    let h = entry.header();
    FieldsJson {
        version: FORMAT_VERSION,
        author: h.author.to_string(),
        seq: h.seq,
        prev: h.prev.map(|hash| hash.to_string()),
        skip: h.skip.map(|hash| hash.to_string()),
        timestamp: h.timestamp.as_u64(),
        payload_len: h.payload_len,
        payload_hash: h.payload_hash.to_string(),
        signature: to_hex(&h.signature),
    }
}

// An encoder of its own, so that the vectors do not merely echo the library.

const MAJOR_UINT: u8 = 0;
const MAJOR_NEGATIVE: u8 = 1;
const MAJOR_BYTES: u8 = 2;
const MAJOR_ARRAY: u8 = 4;
const MAJOR_MAP: u8 = 5;
const NULL: u8 = 0xf6;
const FALSE: u8 = 0xf4;

/// A CBOR head in shortest form.
fn head(major: u8, arg: u64) -> Vec<u8> {
    let info = match arg {
        0..=23 => return vec![(major << 5) | arg as u8],
        24..=0xff => 24,
        0x100..=0xffff => 25,
        0x1_0000..=0xffff_ffff => 26,
        _ => 27,
    };
    head_with(major, arg, info)
}

/// A CBOR head with the argument in the form `info` (24: one byte, 25: two,
/// 26: four, 27: eight), whether or not that form is the shortest.
fn head_with(major: u8, arg: u64, info: u8) -> Vec<u8> {
    let width = 1usize << (info - 24);
    let mut out = vec![(major << 5) | info];
    out.extend_from_slice(&arg.to_be_bytes()[8 - width..]);
    out
}

fn uint(value: u64) -> Vec<u8> {
    head(MAJOR_UINT, value)
}

fn bstr(bytes: &[u8]) -> Vec<u8> {
    let mut out = head(MAJOR_BYTES, bytes.len() as u64);
    out.extend_from_slice(bytes);
    out
}

fn optional_hash(hash: Option<Hash>) -> Vec<u8> {
    hash.map_or_else(|| vec![NULL], |hash| bstr(hash.as_bytes()))
}

/// The fields of an entry before its signature, free to be set to anything.
#[derive(Clone)]
struct Fields {
    version: u64,
    author: [u8; 32],
    seq: u64,
    prev: Option<Hash>,
    skip: Option<Hash>,
    timestamp: u64,
    payload_len: u64,
    payload_hash: Hash,
}

impl Fields {
    fn of(entry: &Entry) -> Fields {
        let h = entry.header();
        Fields {
            version: FORMAT_VERSION,
            author: *h.author.as_bytes(),
            seq: h.seq,
            prev: h.prev,
            skip: h.skip,
            timestamp: h.timestamp.as_u64(),
            payload_len: h.payload_len,
            payload_hash: h.payload_hash,
        }
    }

    /// The eight items before the signature, each canonically encoded.
    fn items(&self) -> Vec<Vec<u8>> {
        vec![
            uint(self.version),
            bstr(&self.author),
            uint(self.seq),
            optional_hash(self.prev),
            optional_hash(self.skip),
            uint(self.timestamp),
            uint(self.payload_len),
            bstr(self.payload_hash.as_bytes()),
        ]
    }
}

/// Item indices in [`Fields::items`].
const VERSION: usize = 0;
const AUTHOR: usize = 1;
const SEQ: usize = 2;
const PREV: usize = 3;
const TIMESTAMP: usize = 5;
const PAYLOAD_LEN: usize = 6;
const PAYLOAD_HASH: usize = 7;

/// An array head followed by the items.
fn assemble(array_head: &[u8], items: &[Vec<u8>]) -> Vec<u8> {
    let mut out = array_head.to_vec();
    for item in items {
        out.extend_from_slice(item);
    }
    out
}

/// `unsigned` followed by a signature item over the signing context and
/// `unsigned`: what a signer would produce for these bytes.
fn signed(keys: &Keypair, unsigned: Vec<u8>) -> Vec<u8> {
    let mut message = SIGNING_CONTEXT.to_vec();
    message.extend_from_slice(&unsigned);
    let signature = keys.sign_message(&message);
    let mut out = unsigned;
    out.extend_from_slice(&bstr(&signature));
    out
}

/// The items edited by `edit`, under the canonical `0x89` head, re-signed.
fn resigned(keys: &Keypair, fields: &Fields, edit: impl FnOnce(&mut Vec<Vec<u8>>)) -> Vec<u8> {
    let mut items = fields.items();
    edit(&mut items);
    signed(keys, assemble(&head(MAJOR_ARRAY, 9), &items))
}

/// `fields` encoded canonically and signed.
fn signed_fields(keys: &Keypair, fields: &Fields) -> Vec<u8> {
    resigned(keys, fields, |_| {})
}

/// `s + L` for a little-endian scalar `s < L`: the same value mod L, not canonical.
fn add_group_order(s: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(s[i]) + u16::from(GROUP_ORDER_LE[i]) + carry;
        out[i] = sum as u8;
        carry = sum >> 8;
    }
    out
}

struct Case {
    name: &'static str,
    rule: &'static str,
    description: &'static str,
    context: Context,
    entry: Vec<u8>,
}

enum Context {
    Alone,
    After(usize),
    Payload(Vec<u8>),
}

fn alone(name: &'static str, rule: &'static str, description: &'static str, entry: Vec<u8>) -> Case {
    Case {
        name,
        rule,
        description,
        context: Context::Alone,
        entry,
    }
}

fn invalid_cases(keys: &Keypair, other: &Keypair, feed: &[(Entry, Vec<u8>)]) -> Vec<Case> {
    let entry = |seq: usize| &feed[seq - 1].0;
    let bytes = |seq: usize| entry(seq).as_bytes().to_vec();
    // Entry 4 has every kind of item: both links, a long timestamp, a
    // one-byte payload length.
    let base = Fields::of(entry(4));
    let first = Fields::of(entry(1));
    let not_an_entry = Hash::of(b"not an entry");
    let small_timestamp = Fields {
        timestamp: 5,
        ..first.clone()
    };
    let above = MAX_SEQ + 1;
    let next =
        |keys: &Keypair, seq: u64, prev: Option<Hash>, skip: Option<Hash>, timestamp: Timestamp, payload: &[u8]| {
            Entry::sign(
                keys,
                &NewEntry {
                    seq,
                    prev,
                    skip,
                    timestamp,
                    payload,
                },
            )
            .expect("valid alone")
            .as_bytes()
            .to_vec()
        };
    let later = |seq: usize| Timestamp::from_u64(entry(seq).timestamp().as_u64() + (1 << 16));
    let payload = |seq: usize| feed[seq - 1].1.clone();
    let with_payload = |name, rule, description, seq: usize, payload: Vec<u8>| Case {
        name,
        rule,
        description,
        context: Context::Payload(payload),
        entry: bytes(seq),
    };
    vec![
        // V1
        alone(
            "version-0",
            "V1 version",
            "entry 4 with version 0, re-signed",
            resigned(keys, &base, |items| items[VERSION] = uint(0)),
        ),
        alone(
            "version-2",
            "V1 version",
            "entry 4 with version 2, re-signed: a future format is reported as such, not as malformed",
            resigned(keys, &base, |items| items[VERSION] = uint(2)),
        ),
        // V2: integer heads longer than needed.
        alone(
            "non-shortest-version",
            "V2 encoding",
            "entry 4 with the version 1 written as 0x18 0x01, re-signed",
            resigned(keys, &base, |items| items[VERSION] = head_with(MAJOR_UINT, 1, 24)),
        ),
        alone(
            "non-shortest-seq",
            "V2 encoding",
            "entry 4 with seq 4 written as 0x19 0x00 0x04, re-signed",
            resigned(keys, &base, |items| items[SEQ] = head_with(MAJOR_UINT, 4, 25)),
        ),
        alone(
            "non-shortest-timestamp",
            "V2 encoding",
            "entry 1 with timestamp 5 written in the eight-byte form 0x1b 00 00 00 00 00 00 00 05, re-signed",
            resigned(keys, &small_timestamp, |items| {
                items[TIMESTAMP] = head_with(MAJOR_UINT, 5, 27);
            }),
        ),
        alone(
            "non-shortest-payload-len",
            "V2 encoding",
            "entry 4 with payload_len 9 written as 0x1a 0x00 0x00 0x00 0x09, re-signed",
            resigned(keys, &base, |items| {
                items[PAYLOAD_LEN] = head_with(MAJOR_UINT, base.payload_len, 26);
            }),
        ),
        alone(
            "non-shortest-array-head",
            "V2 encoding",
            "entry 4 with its array head written as 0x98 0x09 instead of 0x89, re-signed",
            signed(keys, assemble(&head_with(MAJOR_ARRAY, 9, 24), &base.items())),
        ),
        alone(
            "non-shortest-byte-string-length",
            "V2 encoding",
            "entry 4 with the author's length written as 0x59 0x00 0x20 instead of 0x58 0x20, re-signed",
            resigned(keys, &base, |items| {
                let mut author = head_with(MAJOR_BYTES, 32, 25);
                author.extend_from_slice(&base.author);
                items[AUTHOR] = author;
            }),
        ),
        alone(
            "reserved-additional-info",
            "V2 encoding",
            "entry 4 with its seq head 0x1c (additional information 28, reserved), re-signed",
            resigned(keys, &base, |items| items[SEQ] = vec![0x1c]),
        ),
        // V2: indefinite lengths.
        alone(
            "indefinite-length-array",
            "V2 encoding",
            "entry 4 as an indefinite-length array (0x9f, the nine items, 0xff)",
            {
                let mut bytes = signed(keys, assemble(&[0x9f], &base.items()));
                bytes.push(0xff);
                bytes
            },
        ),
        alone(
            "indefinite-length-byte-string",
            "V2 encoding",
            "entry 4 with payload_hash as an indefinite-length byte string (0x5f, one 32-byte chunk, 0xff), re-signed",
            resigned(keys, &base, |items| {
                let mut chunked = vec![0x5f];
                chunked.extend_from_slice(&bstr(base.payload_hash.as_bytes()));
                chunked.push(0xff);
                items[PAYLOAD_HASH] = chunked;
            }),
        ),
        // V2: wrong types, where null is not allowed, and wrong shapes.
        alone(
            "map-instead-of-array",
            "V2 encoding",
            "entry 4 with the head 0xa9 (a map) instead of 0x89",
            {
                let mut bytes = bytes(4);
                bytes[0] = (MAJOR_MAP << 5) | 9;
                bytes
            },
        ),
        alone(
            "negative-seq",
            "V2 encoding",
            "entry 4 with seq the negative integer -4 (0x23), re-signed",
            resigned(keys, &base, |items| items[SEQ] = head(MAJOR_NEGATIVE, 3)),
        ),
        alone(
            "null-author",
            "V2 encoding",
            "entry 4 with null (0xf6) as author: null is allowed only for prev and skip",
            resigned(keys, &base, |items| items[AUTHOR] = vec![NULL]),
        ),
        alone(
            "false-as-absent-prev",
            "V2 encoding",
            "entry 1 with false (0xf4) instead of null as prev, re-signed",
            resigned(keys, &first, |items| items[PREV] = vec![FALSE]),
        ),
        alone(
            "array-of-8",
            "V2 encoding",
            "entry 4 without payload_hash, under the head 0x88, re-signed",
            {
                let mut items = base.items();
                items.remove(PAYLOAD_HASH);
                signed(keys, assemble(&head(MAJOR_ARRAY, 8), &items))
            },
        ),
        alone(
            "array-of-10",
            "V2 encoding",
            "entry 4 with an extra item 0 after the signature, under the head 0x8a",
            {
                let mut bytes = bytes(4);
                bytes[0] = (MAJOR_ARRAY << 5) | 10;
                bytes.push(0x00);
                bytes
            },
        ),
        alone(
            "author-33-bytes",
            "V2 encoding",
            "entry 4 with a 33-byte author, re-signed: the declared length exceeds 32",
            resigned(keys, &base, |items| {
                let mut author = base.author.to_vec();
                author.push(0);
                items[AUTHOR] = bstr(&author);
            }),
        ),
        alone(
            "prev-31-bytes",
            "V2 encoding",
            "entry 4 with a 31-byte prev, re-signed",
            resigned(keys, &base, |items| {
                items[PREV] = bstr(&base.prev.expect("entry 4 has prev").as_bytes()[..31]);
            }),
        ),
        alone(
            "signature-63-bytes",
            "V2 encoding",
            "entry 4 with its signature cut to 63 bytes (0x58 0x3f ...)",
            {
                let mut bytes = bytes(4);
                bytes.pop();
                let at = bytes.len() - 64;
                bytes[at] = 63;
                bytes
            },
        ),
        alone(
            "oversized-signature-length",
            "V2 encoding",
            "entry 4 whose signature declares 2^64-1 bytes (0x5b ff ff ff ff ff ff ff ff): \
         refused from the declared length, before reading",
            {
                let unsigned = bytes(4)[..entry(4).as_bytes().len() - 66].to_vec();
                let mut bytes = unsigned;
                bytes.extend_from_slice(&head_with(MAJOR_BYTES, u64::MAX, 27));
                bytes.extend_from_slice(&entry(4).header().signature);
                bytes
            },
        ),
        // V2: framing.
        alone("trailing-byte", "V2 encoding", "entry 4 followed by one byte 0x00", {
            let mut bytes = bytes(4);
            bytes.push(0);
            bytes
        }),
        alone(
            "oversized-input",
            "V2 encoding",
            "entry 4 followed by zero bytes up to 300 bytes, more than MAX_ENTRY_SIZE",
            {
                let mut bytes = bytes(4);
                bytes.resize(300, 0);
                bytes
            },
        ),
        alone("truncated", "V2 encoding", "entry 4 without its last byte", {
            let mut bytes = bytes(4);
            bytes.pop();
            bytes
        }),
        alone("empty", "V2 encoding", "no bytes at all", Vec::new()),
        // V3
        alone(
            "seq-0",
            "V3 sequence-range",
            "entry 1 with seq 0, re-signed",
            signed_fields(
                keys,
                &Fields {
                    seq: 0,
                    ..first.clone()
                },
            ),
        ),
        alone(
            "seq-above-max",
            "V3 sequence-range",
            "entry 4 with seq 2^62 + 1 (with prev, and skip as has_skip_link says), re-signed",
            signed_fields(
                keys,
                &Fields {
                    seq: above,
                    skip: has_skip_link(above).then_some(not_an_entry),
                    ..base.clone()
                },
            ),
        ),
        // V4
        alone(
            "missing-prev",
            "V4 link-presence",
            "entry 2 with prev null, re-signed",
            signed_fields(
                keys,
                &Fields {
                    prev: None,
                    ..Fields::of(entry(2))
                },
            ),
        ),
        alone(
            "superfluous-prev",
            "V4 link-presence",
            "entry 1 with a prev link, re-signed",
            signed_fields(
                keys,
                &Fields {
                    prev: Some(not_an_entry),
                    ..first.clone()
                },
            ),
        ),
        alone(
            "missing-skip",
            "V4 link-presence",
            "entry 4 (lipmaa(4) = 1) with skip null, re-signed",
            signed_fields(
                keys,
                &Fields {
                    skip: None,
                    ..base.clone()
                },
            ),
        ),
        alone(
            "superfluous-skip",
            "V4 link-presence",
            "entry 3 (lipmaa(3) = 2, its predecessor) with a skip link to entry 2, re-signed",
            signed_fields(
                keys,
                &Fields {
                    skip: Some(entry(2).hash()),
                    ..Fields::of(entry(3))
                },
            ),
        ),
        alone(
            "superfluous-skip-on-first",
            "V4 link-presence",
            "entry 1 with a skip link, re-signed",
            signed_fields(
                keys,
                &Fields {
                    skip: Some(not_an_entry),
                    ..first.clone()
                },
            ),
        ),
        // V5
        alone(
            "payload-len-above-max",
            "V5 payload-size",
            "entry 1 declaring a payload of 2^20 + 1 bytes, re-signed",
            signed_fields(
                keys,
                &Fields {
                    payload_len: MAX_PAYLOAD + 1,
                    ..first.clone()
                },
            ),
        ),
        // V6
        alone(
            "field-changed-after-signing",
            "V6 signature",
            "entry 4 with its timestamp raised by one, not re-signed",
            {
                let changed = Fields {
                    timestamp: base.timestamp + 1,
                    ..base.clone()
                };
                let mut bytes = assemble(&head(MAJOR_ARRAY, 9), &changed.items());
                bytes.extend_from_slice(&bstr(&entry(4).header().signature));
                bytes
            },
        ),
        alone(
            "signature-bit-flipped",
            "V6 signature",
            "entry 4 with the lowest bit of the signature's first byte flipped",
            {
                let mut bytes = bytes(4);
                let at = bytes.len() - 64;
                bytes[at] ^= 1;
                bytes
            },
        ),
        alone(
            "signed-by-another-key",
            "V6 signature",
            "entry 4's bytes signed with the other key",
            signed_fields(other, &base),
        ),
        alone(
            "non-canonical-s",
            "V6 signature",
            "entry 4 with the signature's S replaced by S + L (the group order): \
         the same value mod L, refused by strict verification",
            {
                let mut bytes = bytes(4);
                let at = bytes.len() - 32;
                let s = add_group_order(&bytes[at..]);
                bytes[at..].copy_from_slice(&s);
                bytes
            },
        ),
        alone(
            "small-order-key",
            "V6 signature",
            "author is the identity point (0x01 then 31 zero bytes), R the identity and S = 0: \
         the cofactorless equation holds for every message, strict verification refuses \
         small-order keys and R",
            {
                let mut identity = [0u8; 32];
                identity[0] = 1;
                let weak = Fields {
                    author: identity,
                    ..first.clone()
                };
                let mut bytes = assemble(&head(MAJOR_ARRAY, 9), &weak.items());
                let mut signature = [0u8; 64];
                signature[0] = 1;
                bytes.extend_from_slice(&bstr(&signature));
                bytes
            },
        ),
        // V7 to V11: each entry is valid alone and checked after the first K.
        Case {
            name: "other-feed",
            rule: "V7 same-feed",
            description: "entry 6 of another author, linking to this feed's entry 5",
            context: Context::After(5),
            entry: next(other, 6, Some(entry(5).hash()), None, later(5), b"payload 6"),
        },
        Case {
            name: "sequence-gap",
            rule: "V8 sequence-continuity",
            description: "entry 7 (linking to entry 5) appended after entry 5",
            context: Context::After(5),
            entry: next(keys, 7, Some(entry(5).hash()), None, later(5), b"payload 7"),
        },
        Case {
            name: "sequence-gap-with-skip-link",
            rule: "V8 sequence-continuity",
            description: "entry 13 of the feed (links to entries 12 and 4, re-stamped) appended after entry 3",
            context: Context::After(3),
            entry: next(
                keys,
                13,
                Some(entry(12).hash()),
                Some(entry(4).hash()),
                later(3),
                b"payload 13",
            ),
        },
        Case {
            name: "prev-link-to-wrong-entry",
            rule: "V9 prev-link",
            description: "entry 6 whose prev is entry 4's hash",
            context: Context::After(5),
            entry: next(keys, 6, Some(entry(4).hash()), None, later(5), b"payload 6"),
        },
        Case {
            name: "prev-link-to-nothing",
            rule: "V9 prev-link",
            description: "entry 2 whose prev is the blake3 hash of \"not an entry\"",
            context: Context::After(1),
            entry: next(keys, 2, Some(not_an_entry), None, later(1), b"payload 2"),
        },
        Case {
            name: "skip-link-to-wrong-entry",
            rule: "V10 skip-link",
            description: "entry 13 whose skip is entry 5's hash (lipmaa(13) = 4)",
            context: Context::After(12),
            entry: next(
                keys,
                13,
                Some(entry(12).hash()),
                Some(entry(5).hash()),
                later(12),
                b"payload 13",
            ),
        },
        Case {
            name: "timestamp-equal",
            rule: "V11 timestamp",
            description: "entry 6 with the same timestamp as entry 5",
            context: Context::After(5),
            entry: next(keys, 6, Some(entry(5).hash()), None, entry(5).timestamp(), b"payload 6"),
        },
        Case {
            name: "timestamp-earlier",
            rule: "V11 timestamp",
            description: "entry 6 stamped one millisecond before entry 5",
            context: Context::After(5),
            entry: next(
                keys,
                6,
                Some(entry(5).hash()),
                None,
                Timestamp::from_u64(entry(5).timestamp().as_u64() - (1 << 16)),
                b"payload 6",
            ),
        },
        // V12, V13: valid entries of the feed with payloads they do not commit to.
        with_payload(
            "payload-too-short",
            "V12 payload-length",
            "entry 5 with its payload missing the last byte",
            5,
            payload(5)[..payload(5).len() - 1].to_vec(),
        ),
        with_payload(
            "payload-too-long",
            "V12 payload-length",
            "entry 5 with a byte appended to its payload",
            5,
            [payload(5), vec![b'!']].concat(),
        ),
        with_payload(
            "payload-for-empty",
            "V12 payload-length",
            "entry 1 (payload_len 0) with a one-byte payload",
            1,
            b"x".to_vec(),
        ),
        with_payload(
            "payload-altered",
            "V13 payload-hash",
            "entry 5 with the first byte of its payload changed",
            5,
            {
                let mut altered = payload(5);
                altered[0] ^= 0x20;
                altered
            },
        ),
        with_payload(
            "payload-of-another-entry",
            "V13 payload-hash",
            "entry 5 with entry 6's payload, of the same length",
            5,
            payload(6),
        ),
    ]
}

fn vectors() -> Vectors {
    let keys = keypair(AUTHOR_SEED);
    let other = keypair(OTHER_SEED);
    let feed = valid_feed(&keys);
    let entry = |seq: usize| &feed[seq - 1].0;

    let valid = feed
        .iter()
        .map(|(entry, payload)| ValidEntry {
            seq: entry.seq(),
            entry: to_hex(entry.as_bytes()),
            hash: entry.hash().to_string(),
            payload: to_hex(payload),
            fields: fields_json(entry),
            derived: Derived {
                skip_target: has_skip_link(entry.seq()).then(|| lipmaa(entry.seq())),
                wall_ms: entry.timestamp().wall_ms(),
                logical: entry.timestamp().logical(),
            },
        })
        .collect();

    let smallest = Entry::sign(
        &keys,
        &NewEntry {
            seq: 1,
            prev: None,
            skip: None,
            timestamp: Timestamp::from_u64(0),
            payload: b"",
        },
    )
    .expect("valid alone");
    let largest_seq = (0..)
        .map(|d| MAX_SEQ - d)
        .find(|&seq| has_skip_link(seq))
        .expect("a seq with a skip link");
    let largest = Entry::sign(
        &keys,
        &NewEntry {
            seq: largest_seq,
            prev: Some(Hash::of(b"entry before")),
            skip: Some(Hash::of(b"skip target")),
            timestamp: Timestamp::from_u64(u64::MAX),
            payload: &vec![0; MAX_PAYLOAD as usize],
        },
    )
    .expect("valid alone");
    assert_eq!((smallest.as_bytes().len(), largest.as_bytes().len()), (141, 227));
    let edge = |name, description, entry: &Entry| EdgeEntry {
        name,
        description,
        entry: to_hex(entry.as_bytes()),
        hash: entry.hash().to_string(),
        fields: fields_json(entry),
    };
    let valid_alone = vec![
        edge("smallest", "141 bytes: seq 1, timestamp 0, empty payload", &smallest),
        edge(
            "largest",
            "227 bytes: the largest seq up to 2^62 with a skip link, timestamp 2^64-1, \
             payload_len 2^20 (a payload of 2^20 zero bytes)",
            &largest,
        ),
    ];

    let invalid = invalid_cases(&keys, &other, &feed)
        .into_iter()
        .map(|case| {
            let (context, after, payload) = match case.context {
                Context::Alone => ("alone", None, None),
                Context::After(k) => ("after", Some(k), None),
                Context::Payload(payload) => ("payload", None, Some(to_hex(&payload))),
            };
            InvalidCase {
                name: case.name,
                rule: case.rule,
                description: case.description,
                context,
                after,
                entry: to_hex(&case.entry),
                payload,
            }
        })
        .collect();

    let forked = Entry::sign(
        &keys,
        &NewEntry {
            seq: 6,
            prev: Some(entry(5).hash()),
            skip: None,
            timestamp: entry(6).timestamp(),
            payload: b"payload 6, forked",
        },
    )
    .expect("valid alone");
    let proof = ForkProof::new(entry(6).clone(), forked.clone()).expect("a fork");
    let forks = vec![ForkJson {
        name: "fork-at-6",
        description: "entry_a is entry 6 of the valid feed; entry_b is another entry 6 after the same entry 5, \
                      with another payload",
        seq: 6,
        entry_a: to_hex(entry(6).as_bytes()),
        entry_b: to_hex(forked.as_bytes()),
        proof: to_hex(&proof.encode()),
    }];

    let included = [true, true, false, true];
    let mut bundle = BUNDLE_MAGIC.to_vec();
    for (seq, &with_payload) in (1..).zip(&included) {
        let (entry, payload) = &feed[seq - 1];
        bundle.extend_from_slice(entry.as_bytes());
        if with_payload {
            bundle.extend_from_slice(&bstr(payload));
        } else {
            bundle.push(NULL);
        }
    }
    let bundles = vec![BundleJson {
        name: "first-four",
        description: "entries 1 to 4 of the valid feed, the payload of entry 3 omitted (null)",
        records: (1..)
            .zip(included)
            .map(|(seq, payload_included)| BundleRecordJson { seq, payload_included })
            .collect(),
        bytes: to_hex(&bundle),
    }];

    let lipmaa_table = (1..=40)
        .chain([121, 364, 1_000, 1_093, 1_000_000, MAX_SEQ])
        .map(|n| LipmaaJson {
            n,
            lipmaa: lipmaa(n),
            has_skip_link: has_skip_link(n),
            certificate_path: certificate_path(n),
        })
        .collect();

    Vectors {
        description: "feedmesh entry format version 1 test vectors (spec/PROTOCOL.md part 1); see README.md",
        format_version: FORMAT_VERSION,
        signing_context: to_hex(SIGNING_CONTEXT),
        limits: Limits {
            max_entry_size: MAX_ENTRY_SIZE,
            max_payload: MAX_PAYLOAD,
            max_seq: MAX_SEQ,
        },
        keys: vec![
            KeyJson {
                name: "author",
                seed: keys.seed_hex(),
                feed_id: keys.feed_id().to_string(),
            },
            KeyJson {
                name: "other",
                seed: other.seed_hex(),
                feed_id: other.feed_id().to_string(),
            },
        ],
        valid,
        valid_alone,
        invalid,
        forks,
        bundles,
        lipmaa: lipmaa_table,
    }
}
