//! The session view's part of a view snapshot (spec/SESSIONS.md §6.7): the
//! folded state itself, record by record, so that a node restarts from it
//! instead of re-folding every stored entry.
//!
//! ```text
//! view     = [records, watermarks, held]                 canonical CBOR
//! records  = [* record]                                  any order
//! record   = [key, revoked, horizon_ms, expiry, put / null, fold / null]
//! put      = [id, seq, value, put_expiry, owner / null]  the winning put
//! fold     = [alive, pending, owners]                    null: what the put alone gives
//! alive    = [* [id, end_ms]]                            sorted by id
//! pending  = [* [id, offered_expiry]]
//! owners   = [* [owner, id]]                             sorted by owner: each owner's earliest put
//! watermarks = [* [owner, id]]                           sorted by owner
//! held     = [* [timestamp, author, seq, [* payload]]]   held-back entries' operations (§2.5)
//! id       = [timestamp, author, position]
//! ```
//!
//! `revoked` is 0 or 1; `horizon_ms` is a wall time, below 2^48; `payload` is the entry's operations as
//! [`encode_ops`] writes them. A `fold` of `null` stands for the state a
//! record folded from its winning put alone has (one alive interval from the
//! put's id to its expiry, no pending touch, the put as its owner's earliest
//! put; nothing at all without a put), which is most records. What the view derives (how many records hold
//! a value, each owner's keys, a session's `expires_at_ms`) is not written
//! but recomputed on decoding.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::table::Records;
use super::{Fold, OpId, Put, Record, Session, SessionView};
use crate::clock::Timestamp;
use crate::feed::cbor::{self, NULL, Reader};
use crate::feed::{DecodeError, FeedId, MAX_PAYLOAD, MAX_SEQ};
use crate::view::key::Key;
use crate::view::ops::{MAX_KEY, MAX_OWNER, MAX_VALUE, Op, decode_ops, encode_ops};

/// The bound of a wall time (48 bits, [`Timestamp::new`]); the view keeps a
/// flag above it.
const MAX_WALL_MS: u64 = 1 << 48;

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
    /// A key or owner is empty, or a flag is neither 0 nor 1.
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

fn write_pairs(out: &mut Vec<u8>, pairs: &[(OpId, u64)]) {
    cbor::write_array_head(out, pairs.len() as u64);
    for (id, ms) in pairs {
        cbor::write_array_head(out, 2);
        write_id(out, id);
        cbor::write_uint(out, *ms);
    }
}

fn read_pairs(r: &mut Reader<'_>, field: &'static str) -> Result<Vec<(OpId, u64)>, DecodeError> {
    let n = r.bounded_array_head(field)?;
    let mut pairs = Vec::with_capacity(n);
    for _ in 0..n {
        r.array_of(field, 2)?;
        pairs.push((read_id(r)?, r.uint(field)?));
    }
    Ok(pairs)
}

fn write_owned(out: &mut Vec<u8>, owned: impl ExactSizeIterator<Item = (impl AsRef<[u8]>, OpId)>) {
    cbor::write_array_head(out, owned.len() as u64);
    for (owner, id) in owned {
        cbor::write_array_head(out, 2);
        cbor::write_bytes(out, owner.as_ref());
        write_id(out, &id);
    }
}

fn read_owned(r: &mut Reader<'_>, field: &'static str) -> Result<Vec<(Vec<u8>, OpId)>, ViewDecodeError> {
    let n = r.bounded_array_head(field)?;
    let mut owned = Vec::with_capacity(n);
    for _ in 0..n {
        r.array_of(field, 2)?;
        owned.push((read_name(r, field, MAX_OWNER)?.to_vec(), read_id(r)?));
    }
    Ok(owned)
}

fn write_record(out: &mut Vec<u8>, key: &[u8], record: &Record) {
    cbor::write_array_head(out, 6);
    cbor::write_bytes(out, key);
    cbor::write_uint(out, u64::from(record.revoked()));
    cbor::write_uint(out, record.horizon_ms());
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
            cbor::write_array_head(out, 3);
            write_pairs(out, &fold.alive);
            write_pairs(out, &fold.pending);
            write_owned(out, fold.owners.iter().map(|(owner, id)| (owner, *id)));
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

fn read_record(r: &mut Reader<'_>) -> Result<(Key, Record), ViewDecodeError> {
    r.array_of("record", 6)?;
    let key = Key::new(read_name(r, "key", MAX_KEY)?);
    let revoked = match r.uint("revoked")? {
        0 => false,
        1 => true,
        _ => return Err(ViewDecodeError::OutOfRange("revoked")),
    };
    let horizon_ms = r.uint("horizon")?;
    if horizon_ms >= MAX_WALL_MS {
        return Err(ViewDecodeError::OutOfRange("horizon"));
    }
    let expiry = r.uint("expiry")?;
    let put = read_put(r, expiry)?;
    let fold = if r.null()? {
        None
    } else {
        r.array_of("fold", 3)?;
        Some(Fold {
            alive: read_pairs(r, "alive")?,
            pending: read_pairs(r, "pending")?,
            owners: read_owned(r, "owners")?,
        })
    };
    Ok((key, Record::new(revoked, horizon_ms, put, expiry, fold)))
}

impl SessionView {
    /// The keys of every record (for [`SessionView::encode_records`]) and
    /// the encoded `watermarks` and `held` of the snapshot form above, as
    /// they are now.
    pub(crate) fn begin_snapshot(&self) -> (Vec<Key>, Vec<u8>) {
        let keys = self.records.iter().map(|(key, _)| key.clone()).collect();
        let mut tail = Vec::new();
        write_owned(&mut tail, self.watermarks.iter().map(|(owner, id)| (owner, *id)));
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
        (keys, tail)
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
        r.array_of("view", 3)?;
        let n = r.bounded_array_head("records")?;
        let mut view = SessionView {
            records: Records::with_capacity(n),
            ..SessionView::default()
        };
        for _ in 0..n {
            let (key, record) = read_record(r)?;
            if record.put.is_some() {
                view.holding += 1;
            }
            let hash = view.records.hash(key.as_slice());
            for (owner, _) in record.owners() {
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
        view.watermarks = read_owned(r, "watermarks")?.into_iter().collect::<BTreeMap<_, _>>();
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
