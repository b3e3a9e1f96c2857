//! View snapshots (spec/SESSIONS.md §6.7): the folded state of a node's
//! views with the entries it covers, so that a restart folds only the
//! entries stored after it instead of every entry ever stored.
//!
//! ```text
//! snapshot = MAGIC head view checksum
//! MAGIC    = "feedmesh view snapshot v1\n"                     (26 bytes)
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

use super::members::Membership;
use super::sessions::{SessionView, ViewDecodeError};
use crate::feed::cbor::{self, Reader};
use crate::feed::{DecodeError, FeedId, Hash, MAX_SEQ};

/// The first bytes of every view snapshot.
pub const SNAPSHOT_MAGIC: &[u8] = b"feedmesh view snapshot v1\n";
/// The length of the checksum that ends a snapshot.
const CHECKSUM_LEN: usize = 32;

/// Why a view snapshot was not read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The bytes do not start with [`SNAPSHOT_MAGIC`] (another format or
    /// version).
    #[error("not a feedmesh view snapshot v1")]
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

fn pair_head(r: &mut Reader<'_>, field: &'static str, len: u64) -> Result<(), SnapshotError> {
    if r.array_head(field)? != len {
        return Err(DecodeError::WrongLength {
            field,
            expected: len as usize,
        }
        .into());
    }
    Ok(())
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
        pair_head(r, field, 2)?;
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
        let mut out = SNAPSHOT_MAGIC.to_vec();
        cbor::write_array_head(&mut out, 7);
        cbor::write_array_head(&mut out, self.covered.len() as u64);
        for (feed, (seq, hash)) in &self.covered {
            cbor::write_array_head(&mut out, 3);
            cbor::write_bytes(&mut out, feed.as_bytes());
            cbor::write_uint(&mut out, *seq);
            cbor::write_bytes(&mut out, &hash.0);
        }
        let admins: Vec<&FeedId> = self.membership.admins().collect();
        cbor::write_array_head(&mut out, admins.len() as u64);
        for admin in admins {
            cbor::write_bytes(&mut out, admin.as_bytes());
        }
        let (admitted, removed) = self.membership.points();
        write_points(&mut out, admitted);
        write_points(&mut out, removed);
        write_points(&mut out, &self.frozen);
        cbor::write_uint(&mut out, self.malformed);
        match self.admin_held_until {
            None => out.push(cbor::NULL),
            Some(wall) => cbor::write_uint(&mut out, wall),
        }
        self.view.borrow().encode_snapshot(&mut out);
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
        pair_head(&mut r, "head", 7)?;
        let n = r.bounded_array_head("covered")?;
        let mut covered = BTreeMap::new();
        for _ in 0..n {
            pair_head(&mut r, "covered", 3)?;
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
