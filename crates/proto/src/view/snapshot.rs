//! View snapshots (spec/SESSIONS.md §6.7): the folded state of a node's
//! views with the entries it covers, so that a restart folds only the
//! entries stored after it instead of every entry ever stored.
//!
//! ```text
//! snapshot = MAGIC head view checksum
//! MAGIC    = "feedmesh view snapshot v2\n"                     (26 bytes)
//! head     = [covered, admins, admitted, removed, frozen, malformed, admin_held_until / null]
//! covered  = [* [feed, seq, hash]]    per feed, the last folded entry and its hash; sorted by feed
//! admins   = [* feed]                 the configured admins, sorted
//! admitted = [* [feed, from_seq]]     membership admission points (§5.2), sorted by feed
//! removed  = [* [feed, from_seq]]     membership removal points, sorted by feed
//! frozen   = [* [feed, seq]]          forked feeds and their forked sequence, sorted by feed
//! view     = the session view (see `sessions::snapshot`)
//! checksum = BLAKE3 of every byte before it                      (32 bytes)
//! ```
//!
//! A snapshot is a cache of a fold the node can always redo from its
//! entries: it is trusted only if it decodes whole, its checksum holds, and
//! the store still holds every covered entry with the recorded hash (the
//! node checks that; see [`Snapshot::covered`]).

use std::borrow::Borrow;
use std::collections::BTreeMap;

use super::key::Key;
use super::members::Membership;
use super::sessions::{SessionView, ViewDecodeError};
use crate::feed::cbor::{self, Reader};
use crate::feed::{DecodeError, FeedId, Hash, MAX_SEQ};

/// The first bytes of every view snapshot.
pub const SNAPSHOT_MAGIC: &[u8] = b"feedmesh view snapshot v2\n";
/// The length of the checksum that ends a snapshot.
const CHECKSUM_LEN: usize = 32;

/// Why a view snapshot was not read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The bytes do not start with [`SNAPSHOT_MAGIC`] (another format or
    /// version).
    #[error("not a feedmesh view snapshot v2")]
    BadMagic,
    /// The checksum does not match the bytes (a damaged snapshot).
    #[error("checksum mismatch")]
    Checksum,
    /// The head does not decode.
    #[error("snapshot head: {0}")]
    Head(#[from] DecodeError),
    /// A list of the head is not sorted, or names a feed twice, or a
    /// sequence number is out of range.
    #[error("snapshot head: {0} out of order or out of range")]
    Order(&'static str),
    /// The view does not decode.
    #[error("snapshot view: {0}")]
    View(#[from] ViewDecodeError),
}

/// A node's folded state with what it covers. `V` is the session view, or
/// a reference to one: a node encodes its live view without copying it.
#[derive(Clone, Debug, Default)]
pub struct Snapshot<V = SessionView> {
    /// Per feed, the last entry the fold took (sequence and hash); every
    /// earlier entry of the feed was taken too. Feeds missing here are
    /// covered by none of their entries.
    pub covered: BTreeMap<FeedId, (u64, Hash)>,
    /// The membership (its admins are the configured ones).
    pub membership: Membership,
    /// Forked feeds: only entries below the forked sequence fold.
    pub frozen: BTreeMap<FeedId, u64>,
    /// How many folded entries had a payload that is not a batch of
    /// operations.
    pub malformed: u64,
    /// The earliest wall time of an admin's entry held back for clock
    /// drift, if one is.
    pub admin_held_until: Option<u64>,
    /// The session view.
    pub view: V,
}

fn write_points(out: &mut Vec<u8>, points: &BTreeMap<FeedId, u64>) {
    cbor::write_array_head(out, points.len() as u64);
    for (feed, seq) in points {
        cbor::write_array_head(out, 2);
        cbor::write_bytes(out, feed.as_bytes());
        cbor::write_uint(out, *seq);
    }
}

fn read_seq(r: &mut Reader<'_>, field: &'static str) -> Result<u64, SnapshotError> {
    let seq = r.uint(field)?;
    if seq == 0 || seq > MAX_SEQ {
        return Err(SnapshotError::Order(field));
    }
    Ok(seq)
}

fn read_points(r: &mut Reader<'_>, field: &'static str) -> Result<BTreeMap<FeedId, u64>, SnapshotError> {
    let n = r.bounded_array_head(field)?;
    let mut out = BTreeMap::new();
    for _ in 0..n {
        r.array_of(field, 2)?;
        let feed = FeedId(r.fixed(field)?);
        if out.last_key_value().is_some_and(|(last, _)| *last >= feed) {
            return Err(SnapshotError::Order(field));
        }
        out.insert(feed, read_seq(r, field)?);
    }
    Ok(out)
}

impl<V: Borrow<SessionView>> Snapshot<V> {
    /// The snapshot's bytes (the format above).
    pub fn encode(&self) -> Vec<u8> {
        let mut writer = SnapshotWriter::begin(self);
        writer.write_records(self.view.borrow(), usize::MAX);
        writer.finish()
    }
}

/// A snapshot encoded a slice of records at a time, so that a node can let
/// its view change between slices (spec/SESSIONS.md §6.7 "When it is
/// saved"): the head, the watermarks, the held-back entries and the list of
/// keys are taken at [`SnapshotWriter::begin`]; each record as it is when
/// its slice is written; keys gone by then are left out, keys added since
/// are not in it.
#[derive(Debug)]
pub struct SnapshotWriter {
    /// The magic, the head and the view's array head.
    head: Vec<u8>,
    keys: Vec<Key>,
    next: usize,
    records: Vec<u8>,
    count: u64,
    /// The view's watermarks and held-back entries.
    tail: Vec<u8>,
}

impl SnapshotWriter {
    /// Starts the snapshot of `snapshot`: its head, and its view's
    /// watermarks, held-back entries and keys as they are now.
    pub fn begin<V: Borrow<SessionView>>(snapshot: &Snapshot<V>) -> SnapshotWriter {
        let mut head = SNAPSHOT_MAGIC.to_vec();
        cbor::write_array_head(&mut head, 7);
        cbor::write_array_head(&mut head, snapshot.covered.len() as u64);
        for (feed, (seq, hash)) in &snapshot.covered {
            cbor::write_array_head(&mut head, 3);
            cbor::write_bytes(&mut head, feed.as_bytes());
            cbor::write_uint(&mut head, *seq);
            cbor::write_bytes(&mut head, &hash.0);
        }
        let admins: Vec<&FeedId> = snapshot.membership.admins().collect();
        cbor::write_array_head(&mut head, admins.len() as u64);
        for admin in admins {
            cbor::write_bytes(&mut head, admin.as_bytes());
        }
        let (admitted, removed) = snapshot.membership.points();
        write_points(&mut head, admitted);
        write_points(&mut head, removed);
        write_points(&mut head, &snapshot.frozen);
        cbor::write_uint(&mut head, snapshot.malformed);
        match snapshot.admin_held_until {
            None => head.push(cbor::NULL),
            Some(wall) => cbor::write_uint(&mut head, wall),
        }
        cbor::write_array_head(&mut head, 4);
        let (window, keys, tail) = snapshot.view.borrow().begin_snapshot();
        head.extend_from_slice(&window);
        SnapshotWriter {
            head,
            keys,
            next: 0,
            records: Vec::new(),
            count: 0,
            tail,
        }
    }

    /// Writes the records of the next `max` keys as `view` holds them now
    /// (the view the writer began with, changed since or not); returns
    /// whether every key is written.
    pub fn write_records(&mut self, view: &SessionView, max: usize) -> bool {
        let end = self.next.saturating_add(max).min(self.keys.len());
        self.count += view.encode_records(&self.keys[self.next..end], &mut self.records);
        self.next = end;
        self.next == self.keys.len()
    }

    /// The snapshot's bytes, with the records written so far.
    pub fn finish(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.head.len() + 9 + self.records.len() + self.tail.len() + CHECKSUM_LEN);
        out.extend_from_slice(&self.head);
        cbor::write_array_head(&mut out, self.count);
        out.extend_from_slice(&self.records);
        out.extend_from_slice(&self.tail);
        let checksum = blake3::hash(&out);
        out.extend_from_slice(checksum.as_bytes());
        out
    }
}

impl Snapshot {
    /// Reads a snapshot written by [`Snapshot::encode`]. Total: any input
    /// gives a snapshot or an error, never a panic.
    pub fn decode(bytes: &[u8]) -> Result<Snapshot, SnapshotError> {
        let body = bytes.strip_prefix(SNAPSHOT_MAGIC).ok_or(SnapshotError::BadMagic)?;
        let split = body.len().checked_sub(CHECKSUM_LEN).ok_or(SnapshotError::Checksum)?;
        let (body, checksum) = body.split_at(split);
        let expected = blake3::hash(&bytes[..SNAPSHOT_MAGIC.len() + split]);
        if expected.as_bytes() != checksum {
            return Err(SnapshotError::Checksum);
        }
        let mut r = Reader::new(body);
        r.array_of("head", 7)?;
        let n = r.bounded_array_head("covered")?;
        let mut covered = BTreeMap::new();
        for _ in 0..n {
            r.array_of("covered", 3)?;
            let feed = FeedId(r.fixed("covered")?);
            if covered.last_key_value().is_some_and(|(last, _)| *last >= feed) {
                return Err(SnapshotError::Order("covered"));
            }
            let seq = read_seq(&mut r, "covered")?;
            covered.insert(feed, (seq, Hash(r.fixed("covered hash")?)));
        }
        let n = r.bounded_array_head("admins")?;
        let mut admins: Vec<FeedId> = Vec::with_capacity(n);
        for _ in 0..n {
            let feed = FeedId(r.fixed("admins")?);
            if admins.last().is_some_and(|last| *last >= feed) {
                return Err(SnapshotError::Order("admins"));
            }
            admins.push(feed);
        }
        let admitted = read_points(&mut r, "admitted")?;
        let removed = read_points(&mut r, "removed")?;
        let frozen = read_points(&mut r, "frozen")?;
        let malformed = r.uint("malformed")?;
        let admin_held_until = if r.null()? {
            None
        } else {
            Some(r.uint("admin_held_until")?)
        };
        let view = SessionView::decode_snapshot(&mut r)?;
        if r.remaining() != 0 {
            return Err(DecodeError::TrailingBytes.into());
        }
        Ok(Snapshot {
            covered,
            membership: Membership::from_points(admins, admitted, removed),
            frozen,
            malformed,
            admin_held_until,
            view,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{MAX_DRIFT_MS, Timestamp};
    use crate::rng::SplitMix64;
    use crate::view::Op;

    type Entry = (FeedId, u64, Timestamp, Vec<Op>);

    /// `count` entries of random session operations by three authors on
    /// eight keys and two owners, some dated beyond the drift bound of
    /// local time 0 (so held back).
    fn entries(rng: &mut SplitMix64, count: usize) -> Vec<Entry> {
        let mut seqs = [0u64; 3];
        (0..count)
            .map(|_| {
                let author = (rng.next_u64() % 3) as usize;
                seqs[author] += 1;
                let ahead = if rng.next_u64().is_multiple_of(8) {
                    MAX_DRIFT_MS
                } else {
                    0
                };
                // Coarse times, so that touches name puts that exist.
                let timestamp = Timestamp::new(ahead + rng.next_u64() % 50, 0);
                let ops = (0..1 + rng.next_u64() % 3)
                    .map(|_| {
                        let key = format!("k{}", rng.next_u64() % 8).into_bytes();
                        let owner = format!("u{}", rng.next_u64() % 2).into_bytes();
                        let ttl_ms = 1 + rng.next_u64() % 500;
                        match rng.next_u64() % 10 {
                            0..=4 => Op::Put {
                                key,
                                value: vec![rng.next_u64() as u8],
                                ttl_ms,
                                owner: rng.next_u64().is_multiple_of(2).then_some(owner),
                            },
                            5..=7 => Op::Touch {
                                key,
                                ttl_ms,
                                put: Timestamp::new(rng.next_u64() % 50, 0),
                            },
                            8 => Op::Revoke { key },
                            _ => Op::RevokeOwner { owner },
                        }
                    })
                    .collect();
                (FeedId([author as u8 + 1; 32]), seqs[author], timestamp, ops)
            })
            .collect()
    }

    fn offer(view: &mut SessionView, entries: &[Entry]) {
        for (author, seq, timestamp, ops) in entries {
            view.offer(*author, *seq, *timestamp, ops.clone(), 0);
        }
    }

    #[test]
    fn a_snapshot_written_in_slices_while_the_view_changes_restores_to_the_same_view() {
        for seed in 0..200 {
            let mut rng = SplitMix64::new(seed);
            let (before, during) = (entries(&mut rng, 12), entries(&mut rng, 12));
            let mut view = SessionView::new();
            offer(&mut view, &before);
            let mut writer = SnapshotWriter::begin(&Snapshot {
                covered: BTreeMap::new(),
                membership: Membership::open(),
                frozen: BTreeMap::new(),
                malformed: 0,
                admin_held_until: None,
                view: &view,
            });
            // Folds go on between slices of one record each.
            let mut pending = during.iter();
            loop {
                if let Some(entry) = pending.next() {
                    offer(&mut view, std::slice::from_ref(entry));
                }
                if writer.write_records(&view, 1) {
                    break;
                }
            }
            offer(&mut view, pending.as_slice());
            let mut restored = Snapshot::decode(&writer.finish()).expect("decodes").view;
            // The start folds every entry after the covered ones again.
            offer(&mut restored, &during);
            assert_eq!(restored.digest(), view.digest(), "seed {seed}");
            assert_eq!(restored.held_back(), view.held_back(), "seed {seed}");
            restored.release(u64::MAX / 2);
            view.release(u64::MAX / 2);
            assert_eq!(restored.digest(), view.digest(), "seed {seed}, released");
        }
    }

    #[test]
    fn every_changed_byte_and_every_cut_is_refused() {
        let mut rng = SplitMix64::new(7);
        let mut view = SessionView::new();
        offer(&mut view, &entries(&mut rng, 20));
        let bytes = Snapshot {
            view,
            ..Snapshot::default()
        }
        .encode();
        let digest = Snapshot::decode(&bytes).expect("decodes").view.digest();
        assert_ne!(digest, SessionView::new().digest());
        for cut in 0..bytes.len() {
            assert!(Snapshot::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        for at in 0..bytes.len() {
            let mut changed = bytes.clone();
            changed[at] ^= 0x01;
            assert!(Snapshot::decode(&changed).is_err(), "byte {at} changed");
        }
    }
}
