//! Fuzz entry points (not a public API).
//!
//! Each function takes arbitrary bytes, drives one decoder or validator with
//! them and asserts its invariants with `assert!`. The targets under `fuzz/`
//! only call these, and `tests/it/fuzz_corpus.rs` replays the committed corpus
//! through them in `cargo test`, so a crash found by the fuzzer stays a test.
//!
//! Random bytes almost never carry a valid signature, so the chain and
//! bundle targets also build a *valid* signed feed from a fixed key, with
//! payloads, timestamps and length taken from the input, corrupt it as the
//! input says, and check that nothing forged gets through. [`peer_sync`]
//! likewise draws its Records from a few fixed signed feeds (one of them
//! forked), so that fuzzed input reaches the replication logic behind the
//! signature checks without any bypass in the library.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use ciborium::Value;

use crate::bundle::{self, BundleWriter, ImportOptions};
use crate::feed::{
    Entry, FeedId, ForkProof, Hash, Keypair, MAX_SEQ, NewEntry, Timestamp, ValidationError, Verified, check_payload,
    check_signature, check_successor, has_skip_link, lipmaa, sign, verify_chain,
};
use crate::net::{
    FRAME_HEADER_LEN, FramingError, MAX_FRAME_PLAINTEXT, MAX_MESSAGE, MAX_NOISE_FRAME, MESSAGE_HEADER_LEN,
    MIN_MAX_MESSAGE, MessageDecoder, NOISE_TAG_LEN, parse_frame,
};
use crate::store::{MemoryStore, Store};
use crate::sync::{
    Action, ClockEntry, MAX_FEEDS_PER_CLOCK, MAX_FRAME, MAX_RECORDS_PER_MESSAGE, Message, PeerSync, RequestError,
    WireRecord,
};
use crate::view::{HistoryWindow, MAX_TTL_MS, Membership, Op, SessionView, Snapshot, decode_ops, encode_ops};

/// The seed byte of the key that signs the generated feeds.
pub const SEED: u8 = 7;
/// Most entries in a generated feed (enough for several skip links).
const MAX_CHAIN: usize = 16;
/// Most entries split out of raw input by [`chain_verify`].
const MAX_SPLIT: usize = 64;
/// Most mutations [`chain_verify`] applies to a generated feed.
const MAX_MUTATIONS: usize = 4;

/// `Entry::decode` and `Entry::decode_prefix` never panic, agree with each
/// other, and accept only the canonical encoding of what they return.
pub fn entry_decode(data: &[u8]) {
    if let Ok(entry) = Entry::decode(data) {
        assert_eq!(entry.as_bytes(), data);
        assert_eq!(entry.hash(), Hash(*blake3::hash(data).as_bytes()));
        assert_eq!(reference_encoding(&entry), data, "accepted a non-canonical encoding");
        assert_eq!(Entry::decode_prefix(data), Ok((entry.clone(), data.len())));
        // Whatever the key and signature bytes are, checking them must not panic.
        let _ = check_signature(&entry);
    }
    if let Ok((entry, used)) = Entry::decode_prefix(data) {
        assert!(used <= data.len());
        assert_eq!(entry.as_bytes(), &data[..used]);
        assert_eq!(Entry::decode(&data[..used]), Ok(entry));
    }
}

/// `verify_chain` never panics on entries split out of the input, and on a
/// generated feed corrupted as the input says, never accepts an entry that
/// is not byte-identical to the original at its sequence number.
pub fn chain_verify(data: &[u8]) {
    let mut entries = split_entries(data);
    entries.sort_by_key(Entry::seq);
    entries.dedup_by_key(|entry| entry.seq());
    if let Ok(summary) = verify_chain(&entries) {
        assert_eq!(summary.author, entries[0].author());
        assert_eq!(
            (summary.lowest, summary.highest),
            (entries[0].seq(), entries[entries.len() - 1].seq())
        );
        // The batch verification said yes: so must strict single verification.
        assert!(entries.iter().all(|entry| check_signature(entry).is_ok()));
    }

    let mut input = Input(data);
    let count = 1 + usize::from(input.byte()) % MAX_CHAIN;
    let original: Vec<Entry> = signed_chain(count, &mut input)
        .into_iter()
        .map(|record| record.into_parts().0)
        .collect();
    verify_chain(&original).expect("a freshly signed feed verifies");
    let mutated: Vec<Entry> = mutate(&original, &mut input)
        .iter()
        .filter_map(|bytes| Entry::decode(bytes).ok())
        .collect();
    if verify_chain(&mutated).is_ok() {
        for entry in &mutated {
            let at = usize::try_from(entry.seq() - 1).ok().and_then(|i| original.get(i));
            assert_eq!(at.map(Entry::as_bytes), Some(entry.as_bytes()), "forged entry verified");
        }
    }
}

/// `bundle::import` never panics and stores only verifiable chains; and a
/// valid bundle with one byte changed stores a byte-identical prefix of the
/// original feed, nothing else.
pub fn bundle_import(data: &[u8]) {
    let mut input = Input(data);
    let options = ImportOptions {
        allow_missing_payloads: input.byte() & 1 == 1,
    };
    let store = MemoryStore::new();
    let _ = bundle::import(&store, input.0, options);
    assert_stores_only_chains(&store);

    let count = 1 + usize::from(input.byte()) % MAX_CHAIN;
    let original = signed_chain(count, &mut input);
    let mut bundle = bundle_of(&original);
    let position = usize::from(u16::from_le_bytes([input.byte(), input.byte()])) % bundle.len();
    let mask = input.byte();
    bundle[position] ^= mask;
    let store = MemoryStore::new();
    let outcome = bundle::import(&store, bundle.as_slice(), options);
    assert_stores_only_chains(&store);
    let stored = stored_records(&store);
    assert!(stored.len() <= original.len());
    for ((entry, payload), record) in stored.iter().zip(&original) {
        assert_eq!(entry.as_bytes(), record.entry().as_bytes());
        assert!(payload.as_deref() == record.payload() || (payload.is_none() && options.allow_missing_payloads));
    }
    if mask == 0 {
        let outcome = outcome.expect("an intact bundle is a bundle");
        assert!(outcome.error.is_none(), "intact bundle refused: {:?}", outcome.error);
        assert_eq!(stored.len(), original.len());
    }
}

/// `ForkProof::decode` never panics, and what it accepts is canonical.
pub fn fork_proof_decode(data: &[u8]) {
    if let Ok(proof) = ForkProof::decode(data) {
        assert_eq!(proof.encode(), data);
        let (first, second) = proof.entries();
        assert!(first.hash() < second.hash());
        assert_eq!(ForkProof::new(second.clone(), first.clone()), Ok(proof.clone()));
    }
}

/// `Message::decode` never panics; what it accepts respects the limits of
/// spec/PROTOCOL.md §2.1, is exactly what an independent CBOR encoder writes
/// for the decoded fields, re-encodes to the input, and stops being accepted
/// when truncated or followed by a byte.
pub fn message_decode(data: &[u8]) {
    let Ok(message) = Message::decode(data) else {
        return;
    };
    assert!(data.len() <= MAX_FRAME);
    assert_eq!(message.encode(), data, "accepted bytes re-encode differently");
    assert_eq!(reference_message(&message), data, "accepted a non-canonical message");
    match &message {
        Message::Clock { feeds } => {
            assert!(feeds.len() <= MAX_FEEDS_PER_CLOCK);
            assert!(feeds.windows(2).all(|pair| pair[0].feed < pair[1].feed));
            assert!(feeds.iter().all(|line| line.latest <= MAX_SEQ));
        }
        Message::Records { records } => {
            assert!(records.len() <= MAX_RECORDS_PER_MESSAGE);
            for (entry, _) in records {
                assert_eq!(Entry::decode(entry.as_bytes()).as_ref(), Ok(entry));
            }
        }
        Message::Request { from, to, .. } => assert!(1 <= *from && from <= to && *to <= MAX_SEQ),
        Message::Fork { proof } => {
            let (first, second) = proof.entries();
            assert!(first.hash() < second.hash());
            assert_eq!((first.author(), first.seq()), (second.author(), second.seq()));
        }
        Message::Fetch { from, to, .. } => {
            assert!(1 <= *from && from <= to && *to <= MAX_SEQ && to - from < crate::sync::MAX_FETCH_RANGE);
        }
        Message::Chunk { latest, records, .. } => {
            assert!(*latest <= MAX_SEQ && records.len() <= crate::sync::MAX_CHUNK_RECORDS);
            for (entry, _) in records {
                assert_eq!(Entry::decode(entry.as_bytes()).as_ref(), Ok(entry));
            }
        }
    }
    assert!(
        Message::decode(&data[..data.len() - 1]).is_err(),
        "accepted a truncated message"
    );
    assert!(
        Message::decode(&[data, &[0]].concat()).is_err(),
        "accepted trailing bytes"
    );
}

/// Measures the allocations of the code under test, for [`frame_decode_measured`].
///
/// The library forbids `unsafe`, so the counting global allocator that
/// implements this lives in the fuzz target (`fuzz/fuzz_targets/frame_decode.rs`).
pub trait AllocationProbe {
    /// Forgets what was measured so far.
    fn reset(&self);
    /// The largest single allocation or reallocation since the last reset, in bytes.
    fn largest(&self) -> usize;
}

/// How far beyond the bytes received [`MessageDecoder`] may allocate: it
/// doubles its body buffer as bytes arrive (capped at the declared length,
/// so never beyond `max_message`), so it may hold up to twice what it has
/// received.
pub const DECODER_GROWTH_SLACK: usize = 2;
/// The most chunk sizes [`frame_decode`] reads.
const MAX_CHUNK_SIZES: usize = 8;
/// About the most pieces [`frame_decode`] cuts a stream into.
const MAX_CHUNKS: usize = 4096;
/// The input byte that makes [`frame_decode`] put a large synthetic message first.
const PAD_MAGIC: u8 = 0xa5;

/// [`frame_decode_measured`] without allocation measurements (corpus replay).
pub fn frame_decode(data: &[u8]) {
    frame_decode_measured(data, None);
}

/// `parse_frame` and `MessageDecoder`, fed a byte stream cut into chunks as
/// the input says, never panic, find the same frames / messages / error as an
/// independent parse of the whole stream whatever the chunking, never return
/// a message over `max_message`, and (with a probe) never allocate in
/// `parse_frame` nor beyond `max_message` or the bytes received (up to
/// [`DECODER_GROWTH_SLACK`]) in `MessageDecoder`.
///
/// Input: a byte choosing `max_message` (a small value from the next one or
/// two bytes, [`MIN_MAX_MESSAGE`] or [`MAX_MESSAGE`]); a byte choosing
/// `parse_frame`'s `max_len` ([`MAX_NOISE_FRAME`], or 16 plus the next
/// byte); a byte that, when `PAD_MAGIC`, is followed by three bytes (a
/// length `n`, big-endian, at most `MAX_MESSAGE + 1`) and a fill byte and
/// puts a message of `n` fill bytes at the head of the stream; a count (mod 8) of chunk sizes and the
/// sizes (`s`, or `(s & 0x7f) * 4096` when `s >= 0x80`), used in turn; the
/// rest is the stream.
pub fn frame_decode_measured(data: &[u8], probe: Option<&dyn AllocationProbe>) {
    let mut input = Input(data);
    let max_message = match input.byte() % 4 {
        0 => usize::from(input.byte()),
        1 => usize::from(u16::from_be_bytes([input.byte(), input.byte()])),
        2 => MIN_MAX_MESSAGE,
        _ => MAX_MESSAGE,
    };
    let max_len = match input.byte() {
        b if b % 2 == 0 => MAX_NOISE_FRAME,
        _ => NOISE_TAG_LEN + usize::from(input.byte()),
    };
    let mut stream = Vec::new();
    if input.byte() == PAD_MAGIC {
        let len = u32::from_be_bytes([0, input.byte(), input.byte(), input.byte()]).min(MAX_MESSAGE as u32 + 1);
        let fill = input.byte();
        stream.extend_from_slice(&len.to_be_bytes());
        stream.resize(stream.len() + len as usize, fill);
    }
    let count = usize::from(input.byte()) % MAX_CHUNK_SIZES;
    let sizes: Vec<usize> = input
        .take(count)
        .iter()
        .map(|&s| {
            if s >= 0x80 {
                usize::from(s & 0x7f) * 4096
            } else {
                usize::from(s)
            }
        })
        .collect();
    stream.extend_from_slice(input.0);
    let chunks = chunked(&stream, &sizes);

    let expected = reference_frames(&stream, max_len);
    assert_eq!(
        frames_whole(&stream, max_len, probe),
        expected,
        "parse_frame on the whole stream"
    );
    assert_eq!(
        frames_chunked(&chunks, max_len, probe),
        expected,
        "parse_frame fed in chunks"
    );

    let expected = reference_messages(&stream, max_message);
    assert_eq!(messages_of(&[&stream[..]], max_message, None), expected, "one buffer");
    assert_eq!(messages_of(&chunks, max_message, probe), expected, "in chunks");
}

/// `stream` cut into pieces of the given sizes, used in turn (a zero size
/// gives an empty piece); the whole stream as one piece when no size is
/// positive. Positive sizes are raised so that there are at most about
/// [`MAX_CHUNKS`] pieces (a large synthetic message in one-byte pieces
/// would only be slow).
fn chunked<'a>(stream: &'a [u8], sizes: &[usize]) -> Vec<&'a [u8]> {
    if sizes.iter().all(|&size| size == 0) {
        return vec![stream];
    }
    let smallest = stream.len() / MAX_CHUNKS;
    let mut chunks = Vec::new();
    let mut rest = stream;
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let size = if size == 0 { 0 } else { size.max(smallest) };
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        chunks.push(chunk);
        rest = tail;
    }
    chunks
}

/// What a frame parse of a stream finds: the ciphertexts, and then either
/// an error or the number of bytes left over (an incomplete frame).
type FrameParse = (Vec<Vec<u8>>, Result<usize, FramingError>);

/// The frames of `stream`, parsed by hand from §3.3.
fn reference_frames(stream: &[u8], max_len: usize) -> FrameParse {
    let mut frames = Vec::new();
    let mut rest = stream;
    while rest.len() >= FRAME_HEADER_LEN {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        if len < NOISE_TAG_LEN {
            return (frames, Err(FramingError::FrameTooShort { len }));
        }
        if len > max_len {
            return (frames, Err(FramingError::FrameTooLarge { len, max: max_len }));
        }
        if rest.len() < FRAME_HEADER_LEN + len {
            break;
        }
        frames.push(rest[FRAME_HEADER_LEN..FRAME_HEADER_LEN + len].to_vec());
        rest = &rest[FRAME_HEADER_LEN + len..];
    }
    (frames, Ok(rest.len()))
}

/// One `parse_frame` call, checked: it does not allocate, and what it
/// returns lies inside `buf`.
fn parse_one<'a>(
    buf: &'a [u8],
    max_len: usize,
    probe: Option<&dyn AllocationProbe>,
) -> Result<Option<(&'a [u8], usize)>, FramingError> {
    probe.inspect(|p| p.reset());
    let parsed = parse_frame(buf, max_len);
    if let Some(probe) = probe {
        assert_eq!(probe.largest(), 0, "parse_frame allocated");
    }
    if let Ok(Some((ciphertext, used))) = parsed {
        assert!(used <= buf.len() && (NOISE_TAG_LEN..=max_len).contains(&ciphertext.len()));
        assert_eq!(ciphertext, &buf[FRAME_HEADER_LEN..used]);
    }
    parsed
}

/// The frames `parse_frame` finds in `stream` held in one buffer.
fn frames_whole(stream: &[u8], max_len: usize, probe: Option<&dyn AllocationProbe>) -> FrameParse {
    let mut frames = Vec::new();
    let mut at = 0;
    loop {
        match parse_one(&stream[at..], max_len, probe) {
            Ok(Some((ciphertext, used))) => {
                frames.push(ciphertext.to_vec());
                at += used;
            }
            Ok(None) => return (frames, Ok(stream.len() - at)),
            Err(error) => return (frames, Err(error)),
        }
    }
}

/// The frames `parse_frame` finds when the stream arrives in `chunks`, read
/// into a buffer as a socket reader would.
fn frames_chunked(chunks: &[&[u8]], max_len: usize, probe: Option<&dyn AllocationProbe>) -> FrameParse {
    let mut frames = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut start = 0;
    for chunk in chunks {
        buf.drain(..start);
        start = 0;
        buf.extend_from_slice(chunk);
        loop {
            match parse_one(&buf[start..], max_len, probe) {
                Ok(Some((ciphertext, used))) => {
                    frames.push(ciphertext.to_vec());
                    start += used;
                }
                Ok(None) => break,
                Err(error) => return (frames, Err(error)),
            }
        }
    }
    (frames, Ok(buf.len() - start))
}

/// What a message decoder makes of a stream: the messages, and then either
/// an error or whether a message is left partly received.
type MessageParse = (Vec<Vec<u8>>, Result<bool, FramingError>);

/// The messages of `stream`, parsed by hand from §3.3.
fn reference_messages(stream: &[u8], max_message: usize) -> MessageParse {
    let mut messages = Vec::new();
    let mut rest = stream;
    while let Some((header, body)) = rest.split_first_chunk::<MESSAGE_HEADER_LEN>() {
        let declared = u32::from_be_bytes(*header);
        let len = declared as usize;
        if len > max_message {
            let error = FramingError::MessageTooLarge {
                len: u64::from(declared),
                max: max_message,
            };
            return (messages, Err(error));
        }
        if body.len() < len {
            return (messages, Ok(true));
        }
        messages.push(body[..len].to_vec());
        rest = &body[len..];
    }
    (messages, Ok(!rest.is_empty()))
}

/// The messages a [`MessageDecoder`] returns when fed `chunks`, checking the
/// contract of `decode` on every call (and its allocations, with a probe).
fn messages_of(chunks: &[&[u8]], max_message: usize, probe: Option<&dyn AllocationProbe>) -> MessageParse {
    let mut decoder = MessageDecoder::new(max_message);
    let mut messages = Vec::new();
    let mut received = 0usize;
    for chunk in chunks {
        let mut at = 0;
        loop {
            let rest = &chunk[at..];
            probe.inspect(|p| p.reset());
            let decoded = decoder.decode(rest);
            let largest = probe.map_or(0, |p| p.largest());
            let (used, message) = match decoded {
                Ok(decoded) => decoded,
                Err(error) => return (messages, Err(error)),
            };
            assert!(used <= rest.len());
            received += used;
            let bound = max_message.min(DECODER_GROWTH_SLACK * received.max(MAX_FRAME_PLAINTEXT));
            assert!(
                largest <= bound,
                "decoder allocated {largest} bytes with max_message {max_message} after {received} bytes"
            );
            match message {
                Some(message) => {
                    assert!(message.len() <= max_message);
                    assert!(
                        message.capacity() <= message.len().max(MAX_FRAME_PLAINTEXT),
                        "a message of {} bytes held in a buffer of {}",
                        message.len(),
                        message.capacity()
                    );
                    messages.push(message);
                }
                None => assert_eq!(used, rest.len(), "(n, None) must mean: all consumed, need more"),
            }
            at += used;
            if at == chunk.len() {
                break;
            }
        }
    }
    (messages, Ok(!decoder.is_idle()))
}

/// Most operations [`peer_sync`] performs.
const MAX_OPS: usize = 64;

/// Signed feeds from fixed keys that [`peer_sync`] draws its records from.
struct Material {
    /// Feeds the operations name: two with entries (`A`, `B`), one without,
    /// and the all-zero id (not a valid key).
    feeds: [FeedId; 4],
    /// Feed `A`, entries 1 to 10; the same feed forked at 5 (a second entry
    /// 5 to 10 after the same 1 to 4); feed `B`, entries 1 to 5.
    chains: [Vec<Verified>; 3],
    /// Entries 5 of the two branches of `A`.
    proof: ForkProof,
}

fn material() -> &'static Material {
    static MATERIAL: OnceLock<Material> = OnceLock::new();
    MATERIAL.get_or_init(|| {
        let keys = Keypair::from_seed([SEED; 32]);
        let other = Keypair::from_seed([SEED + 1; 32]);
        let bytes: Vec<u8> = (0..=255u8).map(|i| i.wrapping_mul(29).wrapping_add(3)).collect();
        let a = chain_by(&keys, 10, &mut Input(&bytes));
        let mut input = Input(&bytes);
        chain_by(&keys, 4, &mut input);
        let used = bytes.len() - input.0.len();
        let mut forked_bytes = bytes.clone();
        forked_bytes[used..].iter_mut().for_each(|b| *b ^= 0x5a);
        let forked = chain_by(&keys, 10, &mut Input(&forked_bytes));
        assert_eq!(forked[3], a[3]);
        let proof = ForkProof::new(a[4].entry().clone(), forked[4].entry().clone()).expect("a fork at 5");
        let b = chain_by(&other, 5, &mut Input(&bytes[100..]));
        let feeds = [
            keys.feed_id(),
            other.feed_id(),
            Keypair::from_seed([SEED + 2; 32]).feed_id(),
            FeedId([0; 32]),
        ];
        Material {
            feeds,
            chains: [a, forked, b],
            proof,
        }
    })
}

impl Material {
    /// Whether `entry` is one of the generated entries (nothing else can
    /// carry a valid signature of these keys).
    fn is_genuine(&self, entry: &Entry) -> bool {
        let at = usize::try_from(entry.seq()).map_or(usize::MAX, |seq| seq.wrapping_sub(1));
        self.chains
            .iter()
            .any(|chain| chain.get(at).is_some_and(|record| record.entry() == entry))
    }
}

/// A [`PeerSync`] fed by the fuzz input, with a model of what its driver
/// told it and saw from it, checking every output against the documented
/// contract as it is drained.
struct PeerHarness {
    machine: PeerSync,
    now: u64,
    /// Whether the driver appends every Store and reports it with
    /// `local_advanced` (otherwise only the input's calls report anything).
    auto_store: bool,
    /// What the node reported holding (`start`, `local_advanced`).
    held: BTreeMap<FeedId, u64>,
    /// The highest entry per feed the machine handed out in a Store.
    delivered: BTreeMap<FeedId, Entry>,
    /// Feeds the machine froze (Fork action) or was told are frozen.
    frozen: BTreeSet<FeedId>,
    /// Feeds whose last Clock line sent had want = 1.
    announced: BTreeSet<FeedId>,
    /// Every range `request_range` accepted.
    requested: Vec<(FeedId, u64, u64)>,
    /// Request and Fork messages the machine was asked to send, not yet sent.
    to_send: Vec<Message>,
    /// The peer's clock as last reported by the machine.
    peer_clock: BTreeMap<FeedId, u64>,
    closed: bool,
}

impl PeerHarness {
    fn known(&self, feed: &FeedId) -> u64 {
        let held = self.held.get(feed).copied().unwrap_or(0);
        held.max(self.delivered.get(feed).map_or(0, Entry::seq))
    }

    /// Drains both queues, checking each output; executes Stores as the
    /// driver would.
    fn drain(&mut self) {
        loop {
            let mut idle = true;
            while let Some(message) = self.machine.poll_transmit() {
                idle = false;
                self.check_transmit(message);
            }
            while let Some(action) = self.machine.poll_action() {
                idle = false;
                self.check_action(action);
            }
            while let Some(serve) = self.machine.next_serve() {
                idle = false;
                let (from, to) = (serve.from, serve.to);
                assert!(1 <= from && from <= to && to - from < crate::sync::MAX_FETCH_RANGE);
            }
            loop {
                let taken = self.machine.take_sends(MAX_RECORDS_PER_MESSAGE);
                if taken.is_empty() {
                    break;
                }
                idle = false;
                for (feed, from, to) in taken {
                    self.check_send(feed, from, to);
                }
            }
            if idle {
                break;
            }
        }
        self.check_state();
    }

    fn check_transmit(&mut self, mut message: Message) {
        assert!(!self.closed, "sent {message:?} after disconnecting");
        // The driver fills Clock heads from its store.
        let _ = message.fill_heads(|_, seq| Ok::<_, ()>(Hash([seq as u8; 32])));
        let bytes = message.encode();
        assert!(bytes.len() <= MAX_FRAME);
        assert_eq!(
            Message::decode(&bytes).as_ref(),
            Ok(&message),
            "sent a message that does not decode"
        );
        match &message {
            Message::Clock { feeds } => {
                for line in feeds {
                    assert_eq!(line.latest, self.held.get(&line.feed).copied().unwrap_or(0), "{line:?}");
                    assert!(!(line.want && self.frozen.contains(&line.feed)), "wants a frozen feed");
                    // (A Fork action may follow the Clock that marks its feed.)
                    assert!(
                        line.frozen || !self.frozen.contains(&line.feed),
                        "frozen unmarked {line:?}"
                    );
                    assert!(!(line.want && line.frozen), "wants a feed it marks frozen");
                    if line.want {
                        self.announced.insert(line.feed);
                    } else {
                        self.announced.remove(&line.feed);
                    }
                }
            }
            Message::Records { .. } => panic!("the machine sends Records itself"),
            Message::Fetch { .. } | Message::Chunk { .. } => panic!("sent a {} nobody asked for", message.kind()),
            Message::Request { .. } | Message::Fork { .. } => {
                let at = self.to_send.iter().position(|m| *m == message);
                self.to_send
                    .remove(at.expect("sent a Request or Fork nobody asked for"));
            }
        }
    }

    /// A range owed to the peer is of a feed not frozen, and held.
    fn check_send(&self, feed: FeedId, from: u64, to: u64) {
        assert!(!self.frozen.contains(&feed), "sends a frozen feed");
        let held = self.held.get(&feed).copied().unwrap_or(0);
        assert!(
            1 <= from && from <= to && to <= held,
            "Send {from}..={to} holding {held}"
        );
    }

    fn check_action(&mut self, action: Action) {
        assert!(!self.closed, "{action:?} after Disconnect");
        match action {
            Action::Store(records) => self.check_store(records),
            Action::Fork(proof) => {
                assert!(self.frozen.insert(proof.author()), "a second Fork action for one feed");
                assert_eq!(*proof, material().proof);
            }
            Action::Stalled {
                feed,
                peer_latest,
                held,
            } => {
                assert!(!self.frozen.contains(&feed));
                assert_eq!(peer_latest, self.machine.peer_latest(&feed));
                assert_eq!(held, self.known(&feed));
                assert!(peer_latest > held, "stalled on a feed it is not behind on");
            }
            Action::CheckHead { feed, seq, .. } => {
                assert!(!self.frozen.contains(&feed), "checks the head of a frozen feed");
                let held = self.held.get(&feed).copied().unwrap_or(0);
                assert!(1 <= seq && seq <= held, "CheckHead {seq} holding {held}");
            }
            Action::Fetched { .. } => panic!("a Fetched action without a fetch"),
            Action::Evidence { .. } => panic!("fork evidence without a V9 refusal"),
            Action::Disconnect(_) => {
                assert!(self.machine.is_closed());
                assert_eq!(self.machine.poll_action(), None, "Disconnect is the last action");
                self.closed = true;
            }
        }
    }

    /// A Store holds records that verify, of feeds this side asked for, each
    /// feed's records contiguous, starting at most one past what was reported
    /// stored or stored before, and linked to that when it is the predecessor.
    fn check_store(&mut self, records: Vec<Verified>) {
        assert!(!records.is_empty() && records.len() <= MAX_RECORDS_PER_MESSAGE);
        let mut last: BTreeMap<FeedId, &Entry> = BTreeMap::new();
        for record in &records {
            let entry = record.entry();
            let (feed, seq) = (entry.author(), entry.seq());
            let payload = record.payload().expect("stored a record without its payload");
            check_payload(entry, payload).expect("stored a payload that does not match");
            check_signature(entry).expect("stored an entry whose signature does not verify");
            assert!(material().is_genuine(entry), "stored a forged entry");
            assert!(!self.frozen.contains(&feed), "stored records of a frozen feed");
            let asked = self.announced.contains(&feed)
                || self
                    .requested
                    .iter()
                    .any(|&(f, from, to)| f == feed && (from..=to).contains(&seq));
            assert!(asked, "stored records of {feed} that were not asked for");
            let previous = match last.get(&feed) {
                Some(prev) => {
                    assert_eq!(seq, prev.seq() + 1, "records of a feed out of order");
                    Some(*prev)
                }
                None => {
                    assert!(seq <= self.known(&feed) + 1, "a gap after what was stored");
                    self.delivered.get(&feed).filter(|d| d.seq() + 1 == seq)
                }
            };
            if let Some(prev) = previous {
                check_successor(prev, entry).expect("stored records that do not extend the chain");
            }
            last.insert(feed, entry);
        }
        for (feed, entry) in last {
            if entry.seq() > self.delivered.get(&feed).map_or(0, Entry::seq) {
                self.delivered.insert(feed, entry.clone());
            }
        }
        if self.auto_store {
            let mut latest: BTreeMap<FeedId, u64> = BTreeMap::new();
            for record in &records {
                latest.insert(record.entry().author(), record.entry().seq());
            }
            for (feed, seq) in latest {
                self.local_advanced(feed, seq);
            }
        }
    }

    /// Checks the machine's state between calls.
    fn check_state(&mut self) {
        assert_eq!(self.machine.is_closed(), self.closed);
        if self.closed {
            assert_eq!(self.machine.poll_timeout(), None);
            return;
        }
        // The peer's claims only grow within a connection.
        let clock = self.machine.peer_clock();
        for (feed, latest) in &self.peer_clock {
            assert!(clock.get(feed).is_some_and(|now| now >= latest), "peer clock went back");
        }
        self.peer_clock = clock;
    }

    fn local_advanced(&mut self, feed: FeedId, seq: u64) {
        if !self.machine.is_closed() {
            let held = self.held.entry(feed).or_insert(0);
            *held = (*held).max(seq);
        }
        self.machine.local_advanced(feed, seq, self.now);
    }

    fn frame(&mut self, frame: &[u8]) {
        self.machine.handle_frame(frame, self.now);
        self.drain();
    }
}

/// A [`PeerSync`] fed an arbitrary sequence of messages (valid ones built
/// from the input with records of `Material`'s signed feeds, and raw or
/// corrupted frames), `local_advanced` calls, requests, forks and timer ticks
/// never panics and keeps its documented contract: every Store holds
/// records that verify and extend what was reported stored, of feeds it
/// asked for and are not frozen; Sends stay within what is held; Stalled
/// only for feeds the peer is ahead on; the peer's clock only grows; no
/// timer fires early; every message it sends decodes; nothing follows
/// Disconnect.
pub fn peer_sync(data: &[u8]) {
    let m = material();
    let mut input = Input(data);
    let config = input.byte();
    let mut h = PeerHarness {
        machine: PeerSync::new(),
        now: u64::from(input.byte()) * 1000,
        auto_store: config & 1 == 0,
        held: BTreeMap::new(),
        delivered: BTreeMap::new(),
        frozen: BTreeSet::new(),
        announced: BTreeSet::new(),
        requested: Vec::new(),
        to_send: Vec::new(),
        peer_clock: BTreeMap::new(),
        closed: false,
    };
    let mut clock = BTreeMap::new();
    for (bit, feed) in [2u8, 4, 8].into_iter().zip(m.feeds) {
        if config & bit != 0 {
            clock.insert(feed, u64::from(input.byte() % 12));
        }
    }
    h.held = clock.clone();
    h.machine.start(&clock, h.now);
    h.drain();

    for _ in 0..MAX_OPS {
        if input.0.is_empty() {
            break;
        }
        let feed = |input: &mut Input<'_>| m.feeds[usize::from(input.byte()) % m.feeds.len()];
        match input.byte() % 11 {
            0 => {
                let lines = usize::from(input.byte() % 5);
                let mut feeds: Vec<ClockEntry> = (0..lines)
                    .map(|_| {
                        let feed = feed(&mut input);
                        let latest = match input.byte() {
                            b if b >= 0x80 => MAX_SEQ - u64::from(b & 0x7f),
                            b => u64::from(b % 16),
                        };
                        let flags = input.byte();
                        ClockEntry {
                            feed,
                            latest,
                            want: flags & 1 == 1,
                            frozen: flags & 2 == 2,
                            head: (latest > 0).then_some(Hash([flags; 32])),
                        }
                    })
                    .collect();
                feeds.sort_by_key(|line| line.feed);
                feeds.dedup_by_key(|line| line.feed);
                h.frame(&Message::Clock { feeds }.encode());
            }
            op @ (1 | 2) => {
                let records = records_from(&mut input);
                let mut frame = Message::Records { records }.encode();
                if op == 2 {
                    // One byte of the frame changed.
                    let at = usize::from(u16::from_le_bytes([input.byte(), input.byte()])) % frame.len();
                    frame[at] ^= input.byte().max(1);
                }
                h.frame(&frame);
            }
            3 => {
                let feed = feed(&mut input);
                let from = 1 + u64::from(input.byte() % 12);
                let to = from + u64::from(input.byte() % 12);
                h.frame(&Message::Request { feed, from, to }.encode());
            }
            4 => h.frame(
                &Message::Fork {
                    proof: Box::new(m.proof.clone()),
                }
                .encode(),
            ),
            5 => {
                let feed = feed(&mut input);
                let seq = u64::from(input.byte() % 14);
                h.local_advanced(feed, seq);
                h.drain();
            }
            6 => {
                h.now += u64::from(input.byte()) * 500;
                let due = h.machine.poll_timeout();
                h.machine.handle_timeout(h.now);
                let stalls = std::iter::from_fn(|| h.machine.poll_action()).collect::<Vec<_>>();
                if due.is_none_or(|due| h.now < due) {
                    assert!(stalls.is_empty(), "a timer fired early: {stalls:?}");
                }
                for action in stalls {
                    h.check_action(action);
                }
                h.drain();
                if let Some(next) = h.machine.poll_timeout() {
                    assert!(next > h.now, "timer due at {next} still pending at {}", h.now);
                }
            }
            7 => {
                let feed = feed(&mut input);
                let from = u64::from(input.byte() % 12);
                let to = from + u64::from(input.byte() % 12);
                let result = h.machine.request_range(feed, from, to, h.now);
                assert_eq!(result == Err(RequestError::Closed), h.closed);
                if result.is_ok() {
                    assert!(!h.frozen.contains(&feed));
                    h.requested.push((feed, from, to));
                    h.to_send.push(Message::Request { feed, from, to });
                }
                h.drain();
            }
            8 => {
                if !h.closed && !h.frozen.contains(&m.proof.author()) {
                    h.frozen.insert(m.proof.author());
                    h.to_send.push(Message::Fork {
                        proof: Box::new(m.proof.clone()),
                    });
                }
                h.machine.local_fork(&m.proof, h.now);
                h.drain();
            }
            9 => {
                let len = usize::from(input.byte() % 64);
                let frame = input.take(len).to_vec();
                h.frame(&frame);
            }
            _ => {
                let feed = feed(&mut input);
                h.machine.store_refused(feed, 1, ValidationError::BadSignature, h.now);
                h.drain();
                assert!(h.closed, "store_refused keeps the connection");
            }
        }
        assert!(h.to_send.is_empty(), "not sent: {:?}", h.to_send);
    }
}

/// Up to two runs of records of `Material`'s feeds, chosen by the input:
/// which feed or branch, where it starts, how many, and whether a payload is
/// left out or altered, or the run reversed.
fn records_from(input: &mut Input<'_>) -> Vec<WireRecord> {
    let m = material();
    let mut records = Vec::new();
    for _ in 0..1 + input.byte() % 2 {
        let chain = &m.chains[usize::from(input.byte()) % m.chains.len()];
        let start = usize::from(input.byte()) % chain.len();
        let count = usize::from(input.byte() % 6);
        let mut run: Vec<WireRecord> = chain[start..(start + count).min(chain.len())]
            .iter()
            .map(|record| record.clone().into_parts())
            .collect();
        let edit = input.byte();
        if !run.is_empty() {
            let at = usize::from(edit >> 4) % run.len();
            match edit & 3 {
                1 => run[at].1 = None,
                2 => {
                    if let Some(payload) = run[at].1.as_mut() {
                        payload.push(edit);
                    }
                }
                3 => run.reverse(),
                _ => {}
            }
        }
        records.extend(run);
    }
    records
}

/// The message's fields encoded by an independent encoder (ciborium), with
/// entries re-encoded from their decoded fields.
fn reference_message(message: &Message) -> Vec<u8> {
    let uint = Value::from;
    let bytes = |b: &[u8]| Value::Bytes(b.to_vec());
    let items = match message {
        Message::Clock { feeds } => vec![
            uint(0u64),
            Value::Array(
                feeds
                    .iter()
                    .map(|line| {
                        let flags = u64::from(line.want) | (u64::from(line.frozen) << 1);
                        let head = line.head.map_or(Value::Null, |head| bytes(&head.0));
                        Value::Array(vec![bytes(line.feed.as_bytes()), uint(line.latest), uint(flags), head])
                    })
                    .collect(),
            ),
        ],
        Message::Records { records } => vec![uint(1u64), records_value(records)],
        Message::Request { feed, from, to } => vec![uint(2u64), bytes(feed.as_bytes()), uint(*from), uint(*to)],
        Message::Fork { proof } => {
            let (first, second) = proof.entries();
            vec![uint(3u64), entry_value(first), entry_value(second)]
        }
        Message::Fetch { id, feed, from, to } => {
            vec![uint(4u64), uint(*id), bytes(feed.as_bytes()), uint(*from), uint(*to)]
        }
        Message::Chunk {
            id,
            feed,
            latest,
            records,
        } => vec![
            uint(5u64),
            uint(*id),
            bytes(feed.as_bytes()),
            uint(*latest),
            records_value(records),
        ],
    };
    let mut out = Vec::new();
    ciborium::into_writer(&Value::Array(items), &mut out).expect("writing to memory");
    out
}

/// A valid feed of `count` entries signed by the key from [`SEED`], with
/// timestamps and payloads read from `input` (zeros once it runs out).
pub fn signed_chain(count: usize, input: &mut Input<'_>) -> Vec<Verified> {
    chain_by(&Keypair::from_seed([SEED; 32]), count, input)
}

/// A valid feed of `count` entries signed by `keys` (see [`signed_chain`]).
fn chain_by(keys: &Keypair, count: usize, input: &mut Input<'_>) -> Vec<Verified> {
    let mut chain: Vec<Verified> = Vec::with_capacity(count);
    // Up to 56 bits: small timestamps and realistic ones (milliseconds << 16).
    let mut timestamp = input.take(7).iter().rev().fold(0, |t, &b| t << 8 | u64::from(b));
    for seq in 1..=count as u64 {
        timestamp += 1 + u64::from(input.byte());
        let len = usize::from(input.byte() % 16);
        let hash_of = |seq: u64| chain[seq as usize - 1].entry().hash();
        let new = NewEntry {
            seq,
            prev: (seq > 1).then(|| hash_of(seq - 1)),
            skip: has_skip_link(seq).then(|| hash_of(lipmaa(seq))),
            timestamp: Timestamp::from_u64(timestamp),
            payload: input.take(len),
        };
        chain.push(sign(keys, &new).expect("generated links follow the layout rules"));
    }
    chain
}

/// The bundle of `records`, in order, with the payloads they carry.
pub fn bundle_of(records: &[Verified]) -> Vec<u8> {
    let mut writer = BundleWriter::new(Vec::new()).expect("writing to memory");
    for record in records {
        writer
            .write(record.entry(), record.payload())
            .expect("writing to memory");
    }
    writer.finish().expect("writing to memory").1
}

/// A cursor handing out the fuzz input a byte at a time (zeros once empty).
#[derive(Debug)]
pub struct Input<'a>(pub &'a [u8]);

impl<'a> Input<'a> {
    /// The next byte, or 0 when the input is used up.
    pub fn byte(&mut self) -> u8 {
        let (&first, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        first
    }

    /// The next `len` bytes (fewer when the input runs out).
    pub fn take(&mut self, len: usize) -> &'a [u8] {
        let (taken, rest) = self.0.split_at(len.min(self.0.len()));
        self.0 = rest;
        taken
    }
}

/// The entry's fields encoded by an independent encoder (ciborium, which
/// writes shortest-form heads): the one byte string a decoder may accept.
fn reference_encoding(entry: &Entry) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(&entry_value(entry), &mut out).expect("writing to memory");
    out
}

/// The entry's nine fields as a CBOR value (built from the decoded header,
/// not from the entry's bytes).
fn entry_value(entry: &Entry) -> Value {
    let header = entry.header();
    let bytes = |b: &[u8]| Value::Bytes(b.to_vec());
    let link = |hash: Option<Hash>| hash.map_or(Value::Null, |h| bytes(h.as_bytes()));
    let items = vec![
        Value::from(crate::feed::FORMAT_VERSION),
        bytes(header.author.as_bytes()),
        Value::from(header.seq),
        link(header.prev),
        link(header.skip),
        Value::from(header.timestamp.as_u64()),
        Value::from(header.payload_len),
        bytes(header.payload_hash.as_bytes()),
        bytes(&header.signature),
    ];
    Value::Array(items)
}

/// Records as an independent CBOR value: `[entry, payload / null]` each.
fn records_value(records: &[WireRecord]) -> Value {
    Value::Array(
        records
            .iter()
            .map(|(entry, payload)| {
                let payload = payload.as_deref().map_or(Value::Null, |p| Value::Bytes(p.to_vec()));
                Value::Array(vec![entry_value(entry), payload])
            })
            .collect(),
    )
}

/// Entries found in `data` by decoding at each offset, skipping a byte after
/// a failure; at most [`MAX_SPLIT`].
fn split_entries(mut data: &[u8]) -> Vec<Entry> {
    let mut entries = Vec::new();
    while !data.is_empty() && entries.len() < MAX_SPLIT {
        match Entry::decode_prefix(data) {
            Ok((entry, used)) => {
                entries.push(entry);
                data = &data[used..];
            }
            Err(_) => data = &data[1..],
        }
    }
    entries
}

/// The entries' bytes after up to [`MAX_MUTATIONS`] edits read from `input`:
/// flip bits of one byte, drop an entry, or swap two.
fn mutate(entries: &[Entry], input: &mut Input<'_>) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = entries.iter().map(|e| e.as_bytes().to_vec()).collect();
    for _ in 0..MAX_MUTATIONS {
        if input.0.is_empty() || out.is_empty() {
            break;
        }
        let op = input.byte() % 3;
        let len = out.len();
        let j = usize::from(input.byte()) % len;
        let k = usize::from(input.byte());
        match op {
            0 => {
                let i = k % out[j].len();
                out[j][i] ^= input.byte().max(1);
            }
            1 => {
                out.remove(j);
            }
            _ => out.swap(j, k % len),
        }
    }
    out
}

/// Every feed in `store` is a verifiable chain from entry 1 to its head,
/// with the payloads it holds matching their entries.
fn assert_stores_only_chains(store: &MemoryStore) {
    let clock = store.clock().expect("memory store");
    for (feed, head) in clock {
        let records = store.range(&feed, 1, head, usize::MAX).expect("memory store");
        let entries: Vec<Entry> = records.iter().map(|(entry, _)| entry.clone()).collect();
        assert_eq!(entries.len() as u64, head, "a store holds a contiguous prefix");
        let summary = verify_chain(&entries).expect("stored entries form a chain");
        assert_eq!((summary.author, summary.lowest, summary.highest), (feed, 1, head));
        for (entry, payload) in &records {
            if let Some(payload) = payload {
                check_payload(entry, payload).expect("stored payload matches its entry");
            }
        }
    }
}

/// Everything `store` holds for the feed of [`SEED`].
fn stored_records(store: &MemoryStore) -> Vec<(Entry, Option<Vec<u8>>)> {
    let feed = Keypair::from_seed([SEED; 32]).feed_id();
    let clock = store.clock().expect("memory store");
    assert!(
        clock.keys().all(|id| *id == feed),
        "stored a feed that was not in the bundle"
    );
    store.range(&feed, 1, u64::MAX, usize::MAX).expect("memory store")
}

/// One entry of session operations: author, sequence number, timestamp and
/// the batch (the shape [`SessionView::fold`] takes, owned).
pub type SessionEntry = (FeedId, u64, Timestamp, Vec<Op>);

/// The keys and owners [`session_fold`] draws from: few, so that they collide.
const SESSION_KEYS: [&[u8]; 3] = [b"k1", b"k2", b"k3"];
const SESSION_OWNERS: [&[u8]; 2] = [b"u", b"w"];
/// The authors [`session_fold`] draws from (2 to 4 of them per input).
const SESSION_AUTHORS: [FeedId; 4] = [FeedId([1; 32]), FeedId([2; 32]), FeedId([3; 32]), FeedId([4; 32])];
/// Most entries [`session_fold`] derives from one input.
const MAX_SESSION_ENTRIES: usize = 8;

/// The reference model of spec/SESSIONS.md §2.2–2.4, computed directly from
/// the whole set of operations with the rules' own words (no incremental
/// state, no clusters): `(value, expires_at_ms, author, seq)` of the live
/// session under `key` at `now` in a network with `window`, or `None`.
/// Shared by [`session_fold`] and `tests/it/sessions.rs`.
pub fn session_reference(
    entries: &[SessionEntry],
    window: HistoryWindow,
    key: &[u8],
    now: u64,
) -> Option<(Vec<u8>, u64, FeedId, u64)> {
    type Id = (Timestamp, FeedId, u32);
    let (lifetime, reach) = (window.lifetime_ms(), window.reach_ms());
    let ops: Vec<(Id, u64, &Op)> = entries
        .iter()
        .flat_map(|(a, s, ts, ops)| ops.iter().enumerate().map(move |(i, op)| ((*ts, *a, i as u32), *s, op)))
        .collect();
    let wall = |id: &Id| id.0.wall_ms();
    // §2.3, §2.4: the kill time, from the Revokes of the key and from every
    // RevokeOwner mark less than a lifetime after a put of the key by that
    // owner ordered before it.
    let put_by = |owner: &[u8], mark: &Id| {
        ops.iter().any(|(id, _, op)| {
            matches!(op, Op::Put { key: k, owner: Some(o), .. } if k == key && o == owner)
                && id < mark
                && wall(mark) < wall(id) + lifetime
        })
    };
    let killed_until = ops
        .iter()
        .filter_map(|(id, _, op)| match op {
            Op::Revoke { key: k } if k == key => Some(wall(id) + reach),
            Op::RevokeOwner { owner } if put_by(owner, id) => Some(wall(id) + reach),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    // §2.2: the winning put is the greatest put not killed.
    type Rank<'a> = (Id, u64, &'a [u8], u64, Option<&'a [u8]>);
    let winner: Rank<'_> = ops
        .iter()
        .filter(|(id, _, _)| wall(id) >= killed_until)
        .filter_map(|(id, seq, op)| match op {
            Op::Put {
                key: k,
                value,
                ttl_ms,
                owner,
            } if k == key => Some((
                *id,
                *seq,
                value.as_slice(),
                wall(id) + (*ttl_ms).min(lifetime),
                owner.as_deref(),
            )),
            _ => None,
        })
        .max()?;
    let (put_id, seq, value, _, _) = winner;
    // Its version: every put of its timestamp; the chain starts at their
    // greatest expiry.
    let version = put_id.0;
    let start = ops
        .iter()
        .filter_map(|(id, _, op)| match op {
            Op::Put { key: k, ttl_ms, .. } if k == key && id.0 == version => Some(wall(id) + (*ttl_ms).min(lifetime)),
            _ => None,
        })
        .max()?;
    // The touches naming the version, dated after it, in fold order; each
    // counts if the chain so far reaches its wall time, and offers at most
    // a lifetime after the put.
    let mut touches: Vec<(Id, u64)> = ops
        .iter()
        .filter_map(|(id, _, op)| match op {
            Op::Touch { key: k, ttl_ms, put } if k == key && *put == version && id.0 > version => {
                Some((*id, wall(id) + (*ttl_ms).min(lifetime)))
            }
            _ => None,
        })
        .collect();
    touches.sort();
    let cap = wall(&put_id) + lifetime;
    let mut expiry = start;
    for (id, offer) in touches {
        if wall(&id) < expiry {
            expiry = expiry.max(offer.min(cap));
        }
    }
    (expiry > now).then(|| (value.to_vec(), expiry, put_id.1, seq))
}

/// The history window of [`session_fold`] and [`view_snapshot`]: a
/// lifetime of 20 s and a reach of 65 s, against times up to 124 s, so that
/// ttls are capped and revocations end.
fn session_window() -> HistoryWindow {
    HistoryWindow::new(20_000, 5_000).expect("in range")
}

/// The timestamp of a time byte: a wall time of 0 to 124 s in steps of 4 s
/// (few, so that ops collide), and a logical counter of 0 or 1.
fn session_time(time: u8) -> Timestamp {
    Timestamp::new(u64::from(time % 32) * 4_000, u16::from(time >> 5) % 2)
}

fn session_op(input: &mut Input<'_>) -> Op {
    let kind = input.byte();
    let key = SESSION_KEYS[usize::from(kind >> 2) % SESSION_KEYS.len()].to_vec();
    let owner = SESSION_OWNERS[usize::from(kind >> 4) % SESSION_OWNERS.len()].to_vec();
    let ttl_ms = 1_000 * (1 + u64::from(input.byte() % 40));
    match kind % 8 {
        0..=3 => Op::Put {
            key,
            value: vec![input.byte() % 4],
            ttl_ms,
            owner: (kind & 0x40 != 0).then_some(owner),
        },
        4 | 5 => Op::Touch {
            key,
            ttl_ms,
            put: session_time(input.byte()),
        },
        6 => Op::Revoke { key },
        _ => Op::RevokeOwner { owner },
    }
}

fn session_fold_of(entries: &[SessionEntry]) -> SessionView {
    let mut view = SessionView::with_window(session_window());
    view.fold(entries.iter().map(|(a, s, t, ops)| (*a, *s, *t, ops.as_slice())));
    view
}

fn session_read(view: &SessionView, key: &[u8], now: u64) -> Option<(Vec<u8>, u64, FeedId, u64)> {
    view.get(key, now)
        .map(|s| (s.value.clone(), s.expires_at_ms, s.author, s.seq))
}

/// The membership operations of an accepted payload, folded as an admin's
/// (spec/SESSIONS.md §5.2): they change the membership iff one names a feed
/// other than the admin; folding them again, or in reverse order, gives the
/// same membership; an open network ignores them.
fn session_membership(ops: &[Op]) {
    let admin = SESSION_AUTHORS[0];
    let mut membership = crate::view::Membership::with_admins([admin]);
    let names_other = ops
        .iter()
        .any(|op| matches!(op, Op::AddMember { feed, .. } | Op::RemoveMember { feed, .. } if *feed != admin));
    assert_eq!(membership.apply(admin, ops), names_other);
    assert!(!membership.apply(admin, ops));
    let mut reversed = crate::view::Membership::with_admins([admin]);
    for op in ops.iter().rev() {
        reversed.apply(admin, std::slice::from_ref(op));
    }
    assert_eq!(reversed, membership);
    assert!(!membership.is_removed(&admin) && membership.folds(admin, 1));
    let mut open = crate::view::Membership::open();
    assert!(!open.apply(admin, ops));
}

/// The session fold. The raw bytes go to `decode_ops` (never panics; an
/// accepted payload re-encodes to the input, and folded at a fixed time
/// reads as the reference model says, and its membership operations fold
/// as `session_membership` checks). Then: a header byte (2–4 authors,
/// 1–8 entries), per entry an author, a wall time (0–15 ms), a logical
/// counter (0–1) and 1–3 operations on 3 keys and 2 owners with ttls of
/// 1–40 ms; the remaining bytes choose a permutation. The entries folded in
/// input order and in the permuted order (and folded twice) give the same
/// digest and the same reads, and every read of every key at several times
/// equals [`session_reference`].
pub fn session_fold(data: &[u8]) {
    if let Ok(ops) = decode_ops(data) {
        assert_eq!(
            encode_ops(&ops).as_deref(),
            Ok(data),
            "accepted a non-canonical payload"
        );
        let entries = [(SESSION_AUTHORS[0], 1, Timestamp::new(1000, 0), ops)];
        let view = session_fold_of(&entries);
        let mut offered = SessionView::with_window(session_window());
        assert!(offered.offer_payload(entries[0].0, 1, entries[0].2, data, 1000).is_ok());
        assert_eq!(offered.digest(), view.digest());
        for op in &entries[0].3 {
            if let Op::Put { key, .. } | Op::Touch { key, .. } | Op::Revoke { key } = op {
                for now in [0, 1000, 1001, 1000 + MAX_TTL_MS] {
                    assert_eq!(
                        session_read(&view, key, now),
                        session_reference(&entries, session_window(), key, now)
                    );
                }
            }
        }
        session_membership(&entries[0].3);
    } else {
        let mut view = SessionView::new();
        let empty = view.digest();
        assert!(
            view.offer_payload(SESSION_AUTHORS[0], 1, Timestamp::new(1000, 0), data, 1000)
                .is_err()
        );
        assert_eq!(view.digest(), empty);
    }

    let mut input = Input(data);
    let header = input.byte();
    let authors = 2 + usize::from(header % 3);
    let count = 1 + usize::from(header / 3) % MAX_SESSION_ENTRIES;
    let mut entries: Vec<SessionEntry> = Vec::with_capacity(count);
    for seq in 0..count {
        let author = SESSION_AUTHORS[usize::from(input.byte()) % authors];
        let timestamp = session_time(input.byte());
        let n = 1 + usize::from(input.byte() % 3);
        let ops = (0..n).map(|_| session_op(&mut input)).collect();
        entries.push((author, seq as u64, timestamp, ops));
    }
    let mut permuted = entries.clone();
    for i in (1..permuted.len()).rev() {
        permuted.swap(i, usize::from(input.byte()) % (i + 1));
    }

    let view = session_fold_of(&entries);
    let other = session_fold_of(&permuted);
    assert_eq!(other.digest(), view.digest());
    let mut twice = session_fold_of(&permuted);
    twice.fold(entries.iter().map(|(a, s, t, ops)| (*a, *s, *t, ops.as_slice())));
    assert_eq!(twice.digest(), view.digest());
    for key in SESSION_KEYS {
        for now in [0, 20_000, 60_000, 120_000, 220_000] {
            let read = session_read(&view, key, now);
            assert_eq!(session_read(&other, key, now), read);
            assert_eq!(session_read(&twice, key, now), read);
            assert_eq!(
                read,
                session_reference(&entries, session_window(), key, now),
                "key {key:?} at {now}"
            );
            assert_eq!(other.is_revoked(key, now), view.is_revoked(key, now));
        }
    }
}

/// View snapshots (spec/SESSIONS.md §6.7). The raw bytes go to
/// `Snapshot::decode` (never panics; an accepted snapshot encodes to bytes
/// that decode to the same state). Then a snapshot is built from the input
/// as [`session_fold`] builds its entries, some dated ahead so that they
/// are held back (§2.5), with membership points and covered heads: it
/// decodes to the same digest, reads, revocations, membership and, once
/// every held entry is released, the same digest again; and the same bytes
/// with one byte changed as the input says (two bytes of position, one XOR
/// mask) decode if and only if the mask is 0.
pub fn view_snapshot(data: &[u8]) {
    if let Ok(decoded) = Snapshot::decode(data) {
        let again = Snapshot::decode(&decoded.encode()).expect("a decoded snapshot encodes to a valid one");
        assert_snapshots_equal(&decoded, &again);
    }
    let mut input = Input(data);
    let header = input.byte();
    let count = 1 + usize::from(header) % MAX_SESSION_ENTRIES;
    let admins = &SESSION_AUTHORS[..usize::from(header >> 4) % 3];
    let mut snapshot: Snapshot = Snapshot {
        membership: Membership::with_admins(admins.iter().copied()),
        view: SessionView::with_window(session_window()),
        ..Snapshot::default()
    };
    for seq in 1..=count as u64 {
        let author = SESSION_AUTHORS[usize::from(input.byte()) % SESSION_AUTHORS.len()];
        // Folded at local time 0: the entries dated beyond the drift bound
        // (60 s) are held back.
        let timestamp = session_time(input.byte());
        let ops: Vec<Op> = (0..1 + usize::from(input.byte() % 3))
            .map(|_| session_op(&mut input))
            .collect();
        snapshot.view.offer(author, seq, timestamp, ops.clone(), 0);
        snapshot.membership.apply(author, &ops);
        snapshot.covered.insert(author, (seq, Hash([input.byte(); 32])));
        if input.byte() % 4 == 0 {
            snapshot.frozen.insert(author, seq);
        }
    }
    snapshot.malformed = u64::from(input.byte());
    snapshot.admin_held_until = (header & 1 == 1).then_some(u64::from(input.byte()));
    let bytes = snapshot.encode();
    let decoded = Snapshot::decode(&bytes).expect("an encoded snapshot decodes");
    assert_snapshots_equal(&snapshot, &decoded);
    for key in SESSION_KEYS {
        for now in [0, 20_000, 60_000, 120_000] {
            assert_eq!(
                session_read(&decoded.view, key, now),
                session_read(&snapshot.view, key, now)
            );
            assert_eq!(decoded.view.is_revoked(key, now), snapshot.view.is_revoked(key, now));
        }
    }
    let (mut released, mut original) = (decoded.view, snapshot.view);
    released.release(u64::MAX / 2);
    original.release(u64::MAX / 2);
    assert_eq!(released.digest(), original.digest(), "the held-back entries differ");

    let position = usize::from(u16::from_le_bytes([input.byte(), input.byte()])) % bytes.len();
    let mask = input.byte();
    let mut changed = bytes;
    changed[position] ^= mask;
    let outcome = Snapshot::decode(&changed);
    assert_eq!(outcome.is_ok(), mask == 0, "byte {position} ^ {mask:#04x}: {outcome:?}");
}

fn assert_snapshots_equal(a: &Snapshot, b: &Snapshot) {
    assert_eq!(a.view.digest(), b.view.digest());
    assert_eq!(a.view.len(), b.view.len());
    assert_eq!(a.view.held_back(), b.view.held_back());
    assert_eq!(a.membership, b.membership);
    assert_eq!(a.covered, b.covered);
    assert_eq!(a.frozen, b.frozen);
    assert_eq!((a.malformed, a.admin_held_until), (b.malformed, b.admin_held_until));
}

/// `audit::verify_evidence` never panics on arbitrary bytes; and a valid
/// evidence bundle (a session report over a generated feed, built once)
/// with one byte changed as the input says (two bytes of position, one
/// XOR mask) verifies if and only if the mask is 0.
pub fn evidence_decode(data: &[u8]) {
    let _ = crate::audit::verify_evidence(data, &[]);
    let mut input = Input(data);
    let sample = evidence_sample();
    let position = usize::from(u16::from_le_bytes([input.byte(), input.byte()])) % sample.len();
    let mask = input.byte();
    let mut changed = sample.to_vec();
    changed[position] ^= mask;
    let outcome = crate::audit::verify_evidence(&changed, &[]);
    assert_eq!(outcome.is_ok(), mask == 0, "byte {position} ^ {mask:#04x}: {outcome:?}");
}

/// The evidence bundle of [`evidence_decode`]: key `k` put, overwritten,
/// touched and revoked over nine entries of one feed, in certificate-path form.
fn evidence_sample() -> &'static [u8] {
    static SAMPLE: OnceLock<Vec<u8>> = OnceLock::new();
    SAMPLE.get_or_init(|| {
        let store = MemoryStore::new();
        let keys = Keypair::from_seed([SEED; 32]);
        let mut writer = crate::writer::FeedWriter::open(&store, keys).expect("memory store");
        let key = b"k".to_vec();
        for i in 0..9u64 {
            let op = match i {
                2 | 7 => Op::Put {
                    key: key.clone(),
                    value: vec![0x61, b'0' + i as u8],
                    ttl_ms: 60_000,
                    owner: Some(b"u".to_vec()),
                },
                5 => Op::Touch {
                    key: key.clone(),
                    ttl_ms: 90_000,
                    // The put of entry 3 (i = 2), written at 1,002,000.
                    put: Timestamp::new(1_002_000, 0),
                },
                8 => Op::Revoke { key: key.clone() },
                _ => Op::RevokeOwner {
                    owner: vec![b'o', i as u8],
                },
            };
            let payload = encode_ops(&[op]).expect("valid op");
            writer
                .append(&store, &[&payload], 1_000_000 + i * 1000)
                .expect("memory store");
        }
        let subject = crate::audit::Subject::Session { key };
        let form = crate::audit::EvidenceForm::CertificatePaths;
        crate::audit::write_evidence(&store, &[], HistoryWindow::default(), &subject, 1_100_000, form)
            .expect("memory store")
            .1
    })
}

/// The most commands [`resp_command`] takes from one input.
#[cfg(feature = "resp")]
const MAX_RESP_COMMANDS: usize = 64;

/// The commands framed out of `buffer` (at most [`MAX_RESP_COMMANDS`]),
/// and the protocol error that ended them, if one did.
#[cfg(feature = "resp")]
fn resp_frames(buffer: &mut crate::resp::codec::BytesMut) -> (Vec<Vec<Vec<u8>>>, Option<String>) {
    let mut commands = Vec::new();
    while commands.len() < MAX_RESP_COMMANDS {
        match crate::resp::codec::next_command(buffer) {
            Ok(Some(args)) => commands.push(args.iter().map(|arg| arg.to_vec()).collect()),
            Ok(None) => return (commands, None),
            Err(error) => return (commands, Some(error.to_string())),
        }
    }
    (commands, None)
}

/// The Redis protocol endpoint's framing, command parser and glob patterns
/// (`src/resp`). The first byte chooses where to cut the rest, the byte
/// stream a client sent, in two reads. Framing never panics, respects the
/// limits (`MAX_ARGS` arguments of at most `MAX_BULK` bytes each), and finds
/// the same commands and the same error read whole or in two pieces (an
/// incomplete command is never taken for an invalid one); every command
/// parses without panicking, and re-encoded as a RESP array frames back to
/// the same arguments; an error reply is one line; and the glob of the
/// first argument matched against the second never panics, while a pattern
/// without special bytes matches exactly itself.
#[cfg(feature = "resp")]
pub fn resp_command(data: &[u8]) {
    use crate::resp::codec::{self, BytesMut, MAX_ARGS, MAX_BULK};
    use crate::resp::{command, glob::Glob};

    let Some((&cut, stream)) = data.split_first() else {
        return;
    };
    let mut whole = BytesMut::from(stream);
    let (commands, error) = resp_frames(&mut whole);

    let cut = usize::from(cut) * stream.len() / 256;
    let mut pieces = BytesMut::from(&stream[..cut]);
    let (mut first, early) = resp_frames(&mut pieces);
    if early.is_none() && first.len() < MAX_RESP_COMMANDS {
        pieces.extend_from_slice(&stream[cut..]);
        let (rest, late) = resp_frames(&mut pieces);
        first.extend(rest);
        first.truncate(MAX_RESP_COMMANDS);
        if first.len() < MAX_RESP_COMMANDS {
            assert_eq!(first, commands, "framing depends on how the bytes arrive");
            assert_eq!(late, error);
        }
    }

    for args in &commands {
        assert!(args.len() <= MAX_ARGS && args.iter().all(|arg| arg.len() <= MAX_BULK));
        let args: Vec<codec::Bytes> = args.iter().map(|arg| codec::Bytes::from(arg.clone())).collect();
        match command::parse(&args) {
            Ok(parsed) => assert_eq!(
                parsed.runs_concurrently(),
                matches!(&parsed, command::Command::Set(set) if !set.get)
            ),
            Err(failure) => {
                let mut line = BytesMut::new();
                codec::encode(&codec::error(failure.to_string()), codec::Protocol::Resp2, &mut line);
                assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1, "{failure}");
                assert!(line.ends_with(b"\r\n"));
            }
        }
        if args.is_empty() {
            continue;
        }
        let mut encoded = BytesMut::new();
        codec::encode(
            &codec::array(args.iter().cloned().map(codec::bulk).collect()),
            codec::Protocol::Resp2,
            &mut encoded,
        );
        assert_eq!(codec::next_command(&mut encoded), Ok(Some(args.clone())));
        assert!(encoded.is_empty());
        if let [_, pattern, key, ..] = args.as_slice() {
            let _ = Glob::new(pattern).matches(key);
            if !pattern.iter().any(|b| b"*?[\\".contains(b)) {
                assert!(Glob::new(pattern).matches(pattern));
                assert_eq!(Glob::new(pattern).matches(key), pattern == key);
            }
        }
    }
}
