//! Property tests of the entry format (spec/PROTOCOL.md part 1): signed
//! entries round-trip, each entry has exactly one valid encoding, decoding
//! never panics, and skip links behave as §1.4 says.
//!
//! Case counts are kept small: ed25519 is slow in debug builds.

use std::sync::OnceLock;

use feedmesh_proto::feed::{
    Entry, FORMAT_VERSION, ForkProof, Hash, Header, Keypair, MAX_PAYLOAD, MAX_SEQ, NewEntry, SIGNING_CONTEXT,
    certificate_path, check_payload, check_signature, has_skip_link, lipmaa,
};
use proptest::prelude::*;

/// A canonical CBOR encoder of the entry header, written from the spec
/// (§1.2) independently of the library's.
mod spec_encoding {
    use feedmesh_proto::feed::Header;

    pub(crate) const UINT: u8 = 0;
    pub(crate) const BYTES: u8 = 2;
    pub(crate) const ARRAY: u8 = 4;

    /// A head with the argument in the form `info` (24 to 27: 1, 2, 4 or 8 bytes).
    pub(crate) fn head_with(major: u8, arg: u64, info: u8) -> Vec<u8> {
        let width = 1usize << (info - 24);
        let mut out = vec![(major << 5) | info];
        out.extend_from_slice(&arg.to_be_bytes()[8 - width..]);
        out
    }

    /// The `info` of the shortest head for `arg`, or `None` when `arg` fits
    /// in the initial byte.
    pub(crate) fn shortest_info(arg: u64) -> Option<u8> {
        match arg {
            0..=23 => None,
            24..=0xff => Some(24),
            0x100..=0xffff => Some(25),
            0x1_0000..=0xffff_ffff => Some(26),
            _ => Some(27),
        }
    }

    pub(crate) fn head(major: u8, arg: u64) -> Vec<u8> {
        match shortest_info(arg) {
            None => vec![(major << 5) | arg as u8],
            Some(info) => head_with(major, arg, info),
        }
    }

    pub(crate) fn bstr(bytes: &[u8]) -> Vec<u8> {
        [head(BYTES, bytes.len() as u64), bytes.to_vec()].concat()
    }

    /// The nine items of an entry, each as encoded bytes (the signature last).
    pub(crate) fn items(h: &Header) -> Vec<Vec<u8>> {
        let link =
            |hash: Option<feedmesh_proto::feed::Hash>| hash.map_or_else(|| vec![0xf6], |hash| bstr(hash.as_bytes()));
        vec![
            head(UINT, 1),
            bstr(h.author.as_bytes()),
            head(UINT, h.seq),
            link(h.prev),
            link(h.skip),
            head(UINT, h.timestamp.as_u64()),
            head(UINT, h.payload_len),
            bstr(h.payload_hash.as_bytes()),
            bstr(&h.signature),
        ]
    }

    /// The canonical encoding of a header with its signature.
    pub(crate) fn encode(h: &Header) -> Vec<u8> {
        [vec![0x89], items(h).concat()].concat()
    }
}

use spec_encoding::{ARRAY, BYTES, UINT, encode, head_with, items, shortest_info};

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A few fixed authors: deriving a key per case would only add cost.
fn keys(index: usize) -> &'static Keypair {
    static KEYS: OnceLock<Vec<Keypair>> = OnceLock::new();
    &KEYS.get_or_init(|| {
        (0..4u8)
            .map(|i| crate::common::keys::keys(i.wrapping_mul(37) ^ 0x5a))
            .collect()
    })[index]
}

/// Unsigned bytes followed by a signature item over them.
fn sign_bytes(keys: &Keypair, unsigned: &[u8]) -> Vec<u8> {
    let signature = keys.sign_message(&[SIGNING_CONTEXT, unsigned].concat());
    [unsigned.to_vec(), spec_encoding::bstr(&signature)].concat()
}

/// Sequence numbers across the whole range, with the small ones and the edges
/// well represented.
fn seq() -> impl Strategy<Value = u64> {
    prop_oneof![
        1..=40u64,
        1..=MAX_SEQ,
        (0u32..=62).prop_map(|bits| 1u64 << bits),
        (1u32..=62).prop_map(|bits| (1u64 << bits) - 1),
        Just(MAX_SEQ),
    ]
}

/// Integers of every encoded width.
fn uint() -> impl Strategy<Value = u64> {
    prop_oneof![
        0..24u64,
        24..=0xffu64,
        0x100..=0xffffu64,
        0x1_0000..=0xffff_ffffu64,
        any::<u64>()
    ]
}

prop_compose! {
    /// A new entry with arbitrary (layout-valid) fields, and its author.
    fn new_entry()(
        author in 0..4usize,
        seq in seq(),
        prev in any::<[u8; 32]>(),
        skip in any::<[u8; 32]>(),
        timestamp in uint(),
        payload in proptest::collection::vec(any::<u8>(), 0..48),
    ) -> (usize, u64, Option<Hash>, Option<Hash>, u64, Vec<u8>) {
        let prev = (seq > 1).then_some(Hash(prev));
        let skip = has_skip_link(seq).then_some(Hash(skip));
        (author, seq, prev, skip, timestamp, payload)
    }
}

/// One signed entry of each layout, made once.
fn sample_entries() -> &'static [Entry] {
    static ENTRIES: OnceLock<Vec<Entry>> = OnceLock::new();
    ENTRIES.get_or_init(|| {
        [
            (1, 0, &b""[..]),
            (2, 300, b"two"),
            (4, 1 << 40, b"four"),
            (u64::from(u32::MAX) + 7, u64::MAX, b"big"),
        ]
        .into_iter()
        .map(|(seq, timestamp, payload)| {
            let new = NewEntry {
                seq,
                prev: (seq > 1).then(|| Hash::of(b"prev")),
                skip: has_skip_link(seq).then(|| Hash::of(b"skip")),
                timestamp: feedmesh_proto::feed::Timestamp::from_u64(timestamp),
                payload,
            };
            Entry::sign(keys(0), &new).expect("valid")
        })
        .collect()
    })
}

/// Checks what must hold of any bytes that decode: the entry holds exactly
/// those bytes, and they are the canonical encoding of its fields.
fn assert_canonical_if_decodes(bytes: &[u8]) {
    if let Ok(entry) = Entry::decode(bytes) {
        assert_eq!(entry.as_bytes(), bytes);
        assert_eq!(encode(entry.header()), bytes, "a non-canonical encoding decoded");
        assert_eq!(entry.hash(), Hash::of(bytes));
    }
    if let Ok((entry, used)) = Entry::decode_prefix(bytes) {
        assert!(used <= bytes.len());
        assert_eq!(entry.as_bytes(), &bytes[..used]);
        assert_eq!(encode(entry.header()), &bytes[..used]);
    }
}

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn signed_entries_round_trip((author, seq, prev, skip, timestamp, payload) in new_entry()) {
        let keys = keys(author);
        let new = NewEntry { seq, prev, skip, timestamp: feedmesh_proto::feed::Timestamp::from_u64(timestamp), payload: &payload };
        let entry = Entry::sign(keys, &new).expect("layout-valid fields sign");
        let bytes = entry.as_bytes();
        prop_assert!((141..=227).contains(&bytes.len()));
        let decoded = Entry::decode(bytes).expect("a signed entry decodes");
        prop_assert_eq!(&decoded, &entry);
        prop_assert_eq!(decoded.as_bytes(), bytes);
        let h = decoded.header();
        prop_assert_eq!((h.author, h.seq, h.prev, h.skip), (keys.feed_id(), seq, prev, skip));
        prop_assert_eq!((h.timestamp.as_u64(), h.payload_len), (timestamp, payload.len() as u64));
        prop_assert_eq!(encode(h), bytes.to_vec());
        prop_assert!(check_signature(&decoded).is_ok());
        prop_assert!(check_payload(&decoded, &payload).is_ok());
        // Self-delimiting: anything after it is left alone.
        let followed = [bytes, &[0x00, 0xff][..]].concat();
        prop_assert_eq!(Entry::decode_prefix(&followed).expect("a prefix"), (entry.clone(), bytes.len()));
    }

    #[test]
    fn any_payload_length_round_trips(
        (author, seq, prev, skip, timestamp, _) in new_entry(),
        payload_len in prop_oneof![0..24u64, 0..=MAX_PAYLOAD, Just(MAX_PAYLOAD)],
        payload_hash in any::<[u8; 32]>(),
    ) {
        let keys = keys(author);
        let header = Header {
            author: keys.feed_id(),
            seq,
            prev,
            skip,
            timestamp: feedmesh_proto::feed::Timestamp::from_u64(timestamp),
            payload_len,
            payload_hash: Hash(payload_hash),
            signature: [0; 64],
        };
        let unsigned = &encode(&header)[..encode(&header).len() - 66];
        let bytes = sign_bytes(keys, unsigned);
        let entry = Entry::decode(&bytes).expect("decodes");
        prop_assert_eq!(entry.as_bytes(), &bytes[..]);
        prop_assert_eq!(encode(entry.header()), bytes.clone());
        prop_assert_eq!(entry.header().payload_len, payload_len);
        prop_assert!(check_signature(&entry).is_ok());
    }

    #[test]
    fn a_longer_integer_form_never_decodes(
        sample in 0..4usize,
        item in prop::sample::select(vec![0usize, 1, 2, 5, 6, 7, 9]),
        info in 24u8..=27,
    ) {
        // Items 0, 2, 5, 6 are integers; 1 and 7 are byte strings whose
        // length head is lengthened; 9 stands for the array head.
        let entry = &sample_entries()[sample];
        let h = entry.header();
        let (major, arg) = match item {
            0 => (UINT, FORMAT_VERSION),
            2 => (UINT, h.seq),
            5 => (UINT, h.timestamp.as_u64()),
            6 => (UINT, h.payload_len),
            1 | 7 => (BYTES, 32),
            _ => (ARRAY, 9),
        };
        let shortest = shortest_info(arg).unwrap_or(0);
        prop_assume!(info > shortest);
        let longer = head_with(major, arg, info);
        let mut parts = items(h);
        parts.pop();
        let unsigned = match item {
            9 => [longer, parts.concat()].concat(),
            _ => {
                let body = if major == BYTES { parts[item][2..].to_vec() } else { Vec::new() };
                parts[item] = [longer, body].concat();
                [vec![0x89], parts.concat()].concat()
            }
        };
        let bytes = sign_bytes(keys(0), &unsigned);
        let error = Entry::decode(&bytes).expect_err("a non-canonical entry decoded");
        prop_assert_eq!(error.rule(), "V2 encoding");
    }

    #[test]
    fn an_appended_byte_is_refused(sample in 0..4usize, extra in any::<u8>()) {
        let entry = &sample_entries()[sample];
        let bytes = [entry.as_bytes(), &[extra][..]].concat();
        prop_assert_eq!(Entry::decode(&bytes).expect_err("trailing byte").rule(), "V2 encoding");
    }

    #[test]
    fn a_changed_byte_never_verifies(sample in 0..4usize, at in any::<prop::sample::Index>(), flip in 1u8..=255) {
        let entry = &sample_entries()[sample];
        let mut bytes = entry.as_bytes().to_vec();
        let at = at.index(bytes.len());
        bytes[at] ^= flip;
        assert_canonical_if_decodes(&bytes);
        if let Ok(changed) = Entry::decode(&bytes) {
            prop_assert!(check_signature(&changed).is_err(), "a changed entry verifies (byte {})", at);
        }
    }

    #[test]
    fn a_changed_and_resigned_entry_is_canonical_or_refused(
        sample in 0..4usize,
        at in any::<prop::sample::Index>(),
        value in any::<u8>(),
    ) {
        // Whatever one byte of the header becomes, the result either fails to
        // decode or is the one canonical encoding of its own fields.
        let entry = &sample_entries()[sample];
        let unsigned_len = entry.as_bytes().len() - 66;
        let mut unsigned = entry.as_bytes()[..unsigned_len].to_vec();
        unsigned[at.index(unsigned_len)] = value;
        let bytes = sign_bytes(keys(0), &unsigned);
        assert_canonical_if_decodes(&bytes);
    }
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        assert_canonical_if_decodes(&bytes);
        let _ = ForkProof::decode(&bytes);
    }

    #[test]
    fn decoding_damaged_entries_never_panics(
        sample in 0..4usize,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
        tail in proptest::collection::vec(any::<u8>(), 0..8),
    ) {
        let mut bytes = sample_entries()[sample].as_bytes().to_vec();
        for (at, value) in edits {
            let at = at.index(bytes.len());
            bytes[at] = value;
        }
        let cut = cut.index(bytes.len() + 1);
        bytes.truncate(cut);
        bytes.extend_from_slice(&tail);
        assert_canonical_if_decodes(&bytes);
        let doubled = [&bytes[..], &bytes[..]].concat();
        let _ = ForkProof::decode(&doubled);
    }

    #[test]
    fn lipmaa_points_back_and_paths_are_logarithmic(n in prop_oneof![2..=2_000u64, 2..=MAX_SEQ]) {
        let target = lipmaa(n);
        prop_assert!(1 <= target && target < n, "lipmaa({}) = {}", n, target);
        prop_assert_eq!(has_skip_link(n), target != n - 1);
        let path = certificate_path(n);
        prop_assert_eq!(path.first().copied(), Some(n));
        prop_assert_eq!(path.last().copied(), Some(1));
        for step in path.windows(2) {
            prop_assert_eq!(step[1], lipmaa(step[0]));
        }
        let log3 = (n as f64).ln() / 3f64.ln();
        prop_assert!(path.len() as f64 <= 3.0 * log3 + 3.0, "path of {} has {} entries", n, path.len());
    }
}

#[test]
fn lipmaa_links_each_checkpoint_to_the_one_before() {
    // The checkpoints (3^k - 1) / 2: 1, 4, 13, 40, ...
    let mut checkpoints = vec![1u64];
    let mut po3 = 9u64;
    while (po3 - 1) / 2 <= MAX_SEQ {
        checkpoints.push((po3 - 1) / 2);
        po3 *= 3;
    }
    for pair in checkpoints.windows(2) {
        assert_eq!(lipmaa(pair[1]), pair[0]);
    }
    assert_eq!(lipmaa(1), 0);
    assert_eq!(lipmaa(0), 0);
    assert!(certificate_path(0).is_empty());
    assert_eq!(certificate_path(MAX_SEQ).len(), 78);
}
