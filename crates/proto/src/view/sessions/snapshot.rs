//! The session view's part of a view snapshot (spec/SESSIONS.md §6.7): the
//! folded state itself, record by record, so that a node restarts from it
//! instead of re-folding every stored entry.
//!
//! ```text
//! view     = [window, records, marks, held]                canonical CBOR
//! window   = [lifetime_ms, margin_ms, horizon_ms]          the settings and the last prune (§2.6)
//! records  = [* record]                                    any order
//! record   = [key, killed_until, expiry, put / null, fold / null]
//! put      = [id, seq, value, put_expiry, owner / null]    the winning put
//! fold     = [pending, owners]                             null: what the put alone gives
//! pending  = [* [put, id, offered_expiry]]                 touches that do not count yet
//! owners   = [* [owner, [* [first, last_wall]]]]           each owner's clusters of puts
//! marks    = [* [owner, [* id]]]                           each owner's RevokeOwner marks
//! held     = [* [timestamp, author, seq, [* payload]]]     held-back entries' operations (§2.5)
//! id, first = [timestamp, author, position]
//! ```
//!
//! `put` in `pending` is a timestamp; `payload` is the entry's operations as
//! [`encode_ops`] writes them. A `fold` of `null` stands for the state a
//! record folded from its winning put alone has (no pending touch, the put
//! as its owner's one cluster; nothing at all without a put), which is most
//! records. What the view derives (how many records hold a value, each
//! owner's keys, a session's `expires_at_ms`) is not written but recomputed
//! on decoding, and the lists are put in the view's order on decoding.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::table::Records;
use super::{Cluster, Fold, OpId, Pending, Put, Record, Session, SessionView};
use crate::clock::Timestamp;
use crate::feed::cbor::{self, NULL, Reader};
use crate::feed::{DecodeError, FeedId, MAX_PAYLOAD, MAX_SEQ};
use crate::view::key::Key;
use crate::view::ops::{MAX_KEY, MAX_OWNER, MAX_VALUE, Op, decode_ops, encode_ops};
use crate::view::window::{HistoryWindow, WindowError};

/// Why a snapshot's view part does not decode.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ViewDecodeError {
    /// The CBOR framing is wrong (see [`DecodeError`]).
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A held-back entry's operations do not decode.
    #[error("held-back operations: {0}")]
    Ops(#[from] crate::view::OpsError),
    /// The window's settings are out of range.
    #[error("window: {0}")]
    Window(#[from] WindowError),
    /// A key or owner is empty, or a sequence number is out of range.
    #[error("{0}: out of range")]
    OutOfRange(&'static str),
}

fn write_id(out: &mut Vec<u8>, id: &OpId) {
    cbor::write_array_head(out, 3);
    cbor::write_uint(out, id.timestamp.as_u64());
    cbor::write_bytes(out, id.author.as_bytes());
    cbor::write_uint(out, u64::from(id.position));
}

fn read_id(r: &mut Reader<'_>) -> Result<OpId, DecodeError> {
    r.array_of("id", 3)?;
    Ok(OpId {
        timestamp: Timestamp::from_u64(r.uint("id timestamp")?),
        author: FeedId(r.fixed("id author")?),
        position: u32::try_from(r.uint("id position")?).map_err(|_| DecodeError::TooLong {
            field: "id position",
            max: 4,
        })?,
    })
}

/// A key or owner: 1 to `max` bytes.
fn read_name<'a>(r: &mut Reader<'a>, field: &'static str, max: usize) -> Result<&'a [u8], ViewDecodeError> {
    let name = r.bytes(field, max)?;
    if name.is_empty() {
        return Err(ViewDecodeError::OutOfRange(field));
    }
    Ok(name)
}

/// Writes `[* [owner, [* item]]]`.
fn write_by_owner<'a, T: 'a>(
    out: &mut Vec<u8>,
    lists: impl ExactSizeIterator<Item = (&'a [u8], impl ExactSizeIterator<Item = &'a T>)>,
    write_item: impl Fn(&mut Vec<u8>, &T),
) {
    cbor::write_array_head(out, lists.len() as u64);
    for (owner, items) in lists {
        cbor::write_array_head(out, 2);
        cbor::write_bytes(out, owner);
        cbor::write_array_head(out, items.len() as u64);
        for item in items {
            write_item(out, item);
        }
    }
}

/// Lists by owner, sorted by owner.
type ByOwner<T> = Vec<(Vec<u8>, Vec<T>)>;

/// Reads `[* [owner, [* item]]]`, sorted by owner (each owner once).
fn read_by_owner<T>(
    r: &mut Reader<'_>,
    field: &'static str,
    read_item: impl Fn(&mut Reader<'_>) -> Result<T, DecodeError>,
) -> Result<ByOwner<T>, ViewDecodeError> {
    let n = r.bounded_array_head(field)?;
    let mut lists: ByOwner<T> = Vec::with_capacity(n);
    for _ in 0..n {
        r.array_of(field, 2)?;
        let owner = read_name(r, field, MAX_OWNER)?.to_vec();
        let m = r.bounded_array_head(field)?;
        let mut items = Vec::with_capacity(m);
        for _ in 0..m {
            items.push(read_item(r)?);
        }
        lists.push((owner, items));
    }
    lists.sort_by(|a, b| a.0.cmp(&b.0));
    if lists.windows(2).any(|pair| pair[0].0 == pair[1].0) {
        return Err(ViewDecodeError::OutOfRange("an owner twice"));
    }
    Ok(lists)
}

fn write_cluster(out: &mut Vec<u8>, cluster: &Cluster) {
    cbor::write_array_head(out, 2);
    write_id(out, &cluster.first);
    cbor::write_uint(out, cluster.last_wall);
}

fn read_cluster(r: &mut Reader<'_>) -> Result<Cluster, DecodeError> {
    r.array_of("cluster", 2)?;
    Ok(Cluster {
        first: read_id(r)?,
        last_wall: r.uint("cluster last wall")?,
    })
}

fn write_record(out: &mut Vec<u8>, key: &[u8], record: &Record) {
    cbor::write_array_head(out, 5);
    cbor::write_bytes(out, key);
    cbor::write_uint(out, record.killed_until);
    cbor::write_uint(out, record.expiry);
    match &record.put {
        None => out.push(NULL),
        Some(put) => {
            let session = &put.session;
            cbor::write_array_head(out, 5);
            write_id(out, &session.id);
            cbor::write_uint(out, session.seq);
            cbor::write_bytes(out, &session.value);
            cbor::write_uint(out, put.expiry);
            match &session.owner {
                None => out.push(NULL),
                Some(owner) => cbor::write_bytes(out, owner),
            }
        }
    }
    match &record.fold {
        // The winning put alone gives it (Fold::of_put).
        None => out.push(NULL),
        Some(fold) => {
            cbor::write_array_head(out, 2);
            cbor::write_array_head(out, fold.pending.len() as u64);
            for pending in &fold.pending {
                cbor::write_array_head(out, 3);
                cbor::write_uint(out, pending.put.as_u64());
                write_id(out, &pending.id);
                cbor::write_uint(out, pending.offer);
            }
            write_by_owner(
                out,
                fold.owners
                    .iter()
                    .map(|(owner, clusters)| (owner.as_slice(), clusters.iter())),
                write_cluster,
            );
        }
    }
}

fn read_put(r: &mut Reader<'_>, expiry: u64) -> Result<Option<Put>, ViewDecodeError> {
    if r.null()? {
        return Ok(None);
    }
    r.array_of("put", 5)?;
    let id = read_id(r)?;
    let seq = r.uint("put seq")?;
    if seq == 0 || seq > MAX_SEQ {
        return Err(ViewDecodeError::OutOfRange("put seq"));
    }
    let value = r.bytes("put value", MAX_VALUE)?.to_vec();
    let put_expiry = r.uint("put expiry")?;
    let owner = match r.optional_bytes("put owner", MAX_OWNER)? {
        Some([]) => return Err(ViewDecodeError::OutOfRange("put owner")),
        owner => owner.map(<[u8]>::to_vec),
    };
    Ok(Some(Put {
        session: Arc::new(Session {
            value,
            expires_at_ms: expiry,
            owner,
            author: id.author,
            seq,
            id,
        }),
        expiry: put_expiry,
    }))
}

fn read_fold(r: &mut Reader<'_>) -> Result<Option<Fold>, ViewDecodeError> {
    if r.null()? {
        return Ok(None);
    }
    r.array_of("fold", 2)?;
    let n = r.bounded_array_head("pending")?;
    let mut pending = Vec::with_capacity(n);
    for _ in 0..n {
        r.array_of("pending", 3)?;
        pending.push(Pending {
            put: Timestamp::from_u64(r.uint("pending put")?),
            id: read_id(r)?,
            offer: r.uint("pending offer")?,
        });
    }
    pending.sort_unstable();
    pending.dedup();
    let mut owners = read_by_owner(r, "owners", read_cluster)?;
    for (_, clusters) in &mut owners {
        clusters.sort_by_key(|c| c.first);
    }
    Ok(Some(Fold { pending, owners }))
}

fn read_record(r: &mut Reader<'_>) -> Result<(Key, Record), ViewDecodeError> {
    r.array_of("record", 5)?;
    let key = Key::new(read_name(r, "key", MAX_KEY)?);
    let killed_until = r.uint("killed until")?;
    let expiry = r.uint("expiry")?;
    let mut record = Record {
        killed_until,
        put: read_put(r, expiry)?,
        expiry,
        fold: None,
    };
    if let Some(fold) = read_fold(r)? {
        record.keep(fold);
    }
    Ok((key, record))
}

impl SessionView {
    /// The encoded `window` of the snapshot form above, the keys of every
    /// record (for [`SessionView::encode_records`]) and the encoded `marks`
    /// and `held`, as they are now.
    pub(crate) fn begin_snapshot(&self) -> (Vec<u8>, Vec<Key>, Vec<u8>) {
        let mut window = Vec::new();
        cbor::write_array_head(&mut window, 3);
        cbor::write_uint(&mut window, self.window.lifetime_ms());
        cbor::write_uint(&mut window, self.window.margin_ms());
        cbor::write_uint(&mut window, self.horizon_ms);
        let keys = self.records.iter().map(|(key, _)| key.clone()).collect();
        let mut tail = Vec::new();
        write_by_owner(
            &mut tail,
            self.marks.iter().map(|(owner, marks)| (owner.as_slice(), marks.iter())),
            write_id,
        );
        cbor::write_array_head(&mut tail, self.held.len() as u64);
        for ((timestamp, author, seq), batches) in &self.held {
            cbor::write_array_head(&mut tail, 4);
            cbor::write_uint(&mut tail, timestamp.as_u64());
            cbor::write_bytes(&mut tail, author.as_bytes());
            cbor::write_uint(&mut tail, *seq);
            cbor::write_array_head(&mut tail, batches.len() as u64);
            for ops in batches {
                // Held ops were decoded from a payload within the limits,
                // so they encode again.
                let payload = encode_ops(ops).unwrap_or_default();
                cbor::write_bytes(&mut tail, &payload);
            }
        }
        (window, keys, tail)
    }

    /// Appends the record of each of `keys` that the view still holds, in
    /// the snapshot form above; returns how many it wrote.
    pub(crate) fn encode_records(&self, keys: &[Key], out: &mut Vec<u8>) -> u64 {
        let mut written = 0;
        for key in keys {
            if let Some(record) = self.records.get(key.as_slice()) {
                write_record(out, key.as_slice(), record);
                written += 1;
            }
        }
        written
    }

    /// Reads the view part of a snapshot (the form above). Total: any
    /// input gives a view or an error, never a panic, and nothing is
    /// allocated beyond what the input's length allows.
    pub(crate) fn decode_snapshot(r: &mut Reader<'_>) -> Result<SessionView, ViewDecodeError> {
        r.array_of("view", 4)?;
        r.array_of("window", 3)?;
        let window = HistoryWindow::new(r.uint("lifetime")?, r.uint("margin")?)?;
        let horizon_ms = r.uint("horizon")?;
        let n = r.bounded_array_head("records")?;
        let mut view = SessionView {
            records: Records::with_capacity(n),
            window,
            horizon_ms,
            ..SessionView::default()
        };
        for _ in 0..n {
            let (key, record) = read_record(r)?;
            if record.put.is_some() {
                view.holding += 1;
            }
            let hash = view.records.hash(key.as_slice());
            for owner in record.owners() {
                match view.by_owner.get_mut(owner) {
                    Some(keys) => keys.push(hash),
                    None => {
                        view.by_owner.insert(owner.to_vec(), vec![hash]);
                    }
                }
            }
            if !view.records.insert_new(key, record) {
                return Err(ViewDecodeError::OutOfRange("records: a key twice"));
            }
        }
        view.marks = read_by_owner(r, "marks", read_id)?
            .into_iter()
            .map(|(owner, marks)| (owner, marks.into_iter().collect::<BTreeSet<_>>()))
            .collect::<BTreeMap<_, _>>();
        let n = r.bounded_array_head("held")?;
        for _ in 0..n {
            r.array_of("held", 4)?;
            let timestamp = Timestamp::from_u64(r.uint("held timestamp")?);
            let author = FeedId(r.fixed("held author")?);
            let seq = r.uint("held seq")?;
            let batches = r.bounded_array_head("held batches")?;
            let mut held: Vec<Vec<Op>> = Vec::with_capacity(batches);
            for _ in 0..batches {
                held.push(decode_ops(r.bytes("held payload", MAX_PAYLOAD as usize)?)?);
            }
            view.held.insert((timestamp, author, seq), held);
        }
        Ok(view)
    }
}
