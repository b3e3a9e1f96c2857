//! The byte format of an evidence bundle (spec/AUDIT.md §4.2):
//!
//! ```text
//! evidence = MAGIC header fork* record* checksum
//! MAGIC    = "feedmesh evidence v2\n"                      (21 bytes)
//! header   = [form, now_ms, [* admin], window, subject, forks, records]   canonical CBOR
//! window   = [lifetime_ms, margin_ms]     the history window (spec/SESSIONS.md §2.6)
//! subject  = [0, key] / [1, feed, since_ms, until_ms]
//! fork     = entry entry        a fork proof (PROTOCOL.md §1.7), `forks` of them
//! record   = entry payload      as in a bundle (PROTOCOL.md §1.8), `records` of them
//! checksum = BLAKE3 of every byte before it                  (32 bytes)
//! ```
//!
//! Decoding checks the framing only (and the sort orders); what the
//! entries prove is checked by the verifier.

use crate::feed::cbor::{self, Reader as CborReader};
use crate::feed::{DecodeError, Entry, FeedId, ForkProof, Hash, MAX_SEQ, Record, decode_record, encode_record};
use crate::view::{HistoryWindow, MAX_KEY};

use super::{EvidenceError, EvidenceForm, Subject};

/// The first bytes of every evidence bundle.
pub const EVIDENCE_MAGIC: &[u8] = b"feedmesh evidence v2\n";
const SUBJECT_SESSION: u64 = 0;
const SUBJECT_MEMBER: u64 = 1;

/// A decoded (not yet verified) evidence bundle.
#[derive(Debug)]
pub(crate) struct Bundle {
    pub(crate) form: EvidenceForm,
    pub(crate) now_ms: u64,
    pub(crate) admins: Vec<FeedId>,
    pub(crate) window: HistoryWindow,
    pub(crate) subject: Subject,
    pub(crate) forks: Vec<ForkProof>,
    pub(crate) records: Vec<Record>,
    /// A checksum mismatch, reported only after every other check (so that
    /// a changed byte is blamed on the rule it breaks, when it breaks one).
    pub(crate) checksum_error: Option<EvidenceError>,
}

/// Encodes a bundle; `admins`, `forks` and `records` must be sorted.
pub(crate) fn encode(bundle: &Bundle) -> Vec<u8> {
    let mut out = EVIDENCE_MAGIC.to_vec();
    cbor::write_array_head(&mut out, 7);
    cbor::write_uint(&mut out, bundle.form as u64);
    cbor::write_uint(&mut out, bundle.now_ms);
    cbor::write_array_head(&mut out, bundle.admins.len() as u64);
    for admin in &bundle.admins {
        cbor::write_bytes(&mut out, admin.as_bytes());
    }
    cbor::write_array_head(&mut out, 2);
    cbor::write_uint(&mut out, bundle.window.lifetime_ms());
    cbor::write_uint(&mut out, bundle.window.margin_ms());
    match &bundle.subject {
        Subject::Session { key } => {
            cbor::write_array_head(&mut out, 2);
            cbor::write_uint(&mut out, SUBJECT_SESSION);
            cbor::write_bytes(&mut out, key);
        }
        Subject::Member {
            feed,
            since_ms,
            until_ms,
        } => {
            cbor::write_array_head(&mut out, 4);
            cbor::write_uint(&mut out, SUBJECT_MEMBER);
            cbor::write_bytes(&mut out, feed.as_bytes());
            cbor::write_uint(&mut out, *since_ms);
            cbor::write_uint(&mut out, *until_ms);
        }
    }
    cbor::write_uint(&mut out, bundle.forks.len() as u64);
    cbor::write_uint(&mut out, bundle.records.len() as u64);
    for proof in &bundle.forks {
        out.extend_from_slice(&proof.encode());
    }
    for (entry, payload) in &bundle.records {
        encode_record(&mut out, entry, payload.as_deref());
    }
    let checksum = Hash::of(&out);
    out.extend_from_slice(checksum.as_bytes());
    out
}

fn header_error(error: DecodeError) -> EvidenceError {
    EvidenceError::Header(error.to_string())
}

/// Decodes a bundle's framing: magic, header, fork proofs, records (each in
/// strictly ascending order), checksum, and nothing after it.
pub(crate) fn decode(bytes: &[u8]) -> Result<Bundle, EvidenceError> {
    let body = bytes.strip_prefix(EVIDENCE_MAGIC).ok_or(EvidenceError::BadMagic)?;
    let mut r = CborReader::new(body);
    if r.array_head("header").map_err(header_error)? != 7 {
        return Err(EvidenceError::Header("the header is not an array of 7 items".into()));
    }
    let form = match r.uint("form").map_err(header_error)? {
        0 => EvidenceForm::CertificatePaths,
        1 => EvidenceForm::WholeFeeds,
        other => return Err(EvidenceError::Header(format!("unknown form {other}"))),
    };
    let now_ms = r.uint("now_ms").map_err(header_error)?;
    let count = r.array_head("admins").map_err(header_error)?;
    let mut admins: Vec<FeedId> = Vec::new();
    for _ in 0..count {
        let admin = FeedId(r.fixed("admin").map_err(header_error)?);
        if admins.last().is_some_and(|last| *last >= admin) {
            return Err(EvidenceError::Header(
                "admins are not in strictly ascending order".into(),
            ));
        }
        admins.push(admin);
    }
    if r.array_head("window").map_err(header_error)? != 2 {
        return Err(EvidenceError::Header("the window is not an array of 2 items".into()));
    }
    let window = HistoryWindow::new(
        r.uint("lifetime_ms").map_err(header_error)?,
        r.uint("margin_ms").map_err(header_error)?,
    )
    .map_err(|error| EvidenceError::Header(error.to_string()))?;
    let subject = match (
        r.array_head("subject").map_err(header_error)?,
        r.uint("subject kind").map_err(header_error)?,
    ) {
        (2, SUBJECT_SESSION) => {
            let key = r.bytes("key", MAX_KEY).map_err(header_error)?;
            if key.is_empty() {
                return Err(EvidenceError::Header("empty key".into()));
            }
            Subject::Session { key: key.to_vec() }
        }
        (4, SUBJECT_MEMBER) => {
            let feed = FeedId(r.fixed("feed").map_err(header_error)?);
            let since_ms = r.uint("since_ms").map_err(header_error)?;
            let until_ms = r.uint("until_ms").map_err(header_error)?;
            if since_ms > until_ms {
                return Err(EvidenceError::Header("since_ms is after until_ms".into()));
            }
            Subject::Member {
                feed,
                since_ms,
                until_ms,
            }
        }
        (len, kind) => {
            return Err(EvidenceError::Header(format!(
                "unknown subject kind {kind} of {len} items"
            )));
        }
    };
    let fork_count = r.uint("forks").map_err(header_error)?;
    let record_count = r.uint("records").map_err(header_error)?;
    if fork_count > MAX_SEQ || record_count > MAX_SEQ {
        return Err(EvidenceError::Header("count out of range".into()));
    }
    let mut at = EVIDENCE_MAGIC.len() + r.position();
    let mut forks: Vec<ForkProof> = Vec::new();
    for index in 0..fork_count as usize {
        let fail = |error: String| EvidenceError::Fork { index, error };
        let (_, first) = Entry::decode_prefix(&bytes[at..]).map_err(|e| fail(e.to_string()))?;
        let (_, second) = Entry::decode_prefix(&bytes[at + first..]).map_err(|e| fail(e.to_string()))?;
        let proof = ForkProof::decode(&bytes[at..at + first + second]).map_err(|e| fail(e.to_string()))?;
        if forks.last().is_some_and(|last| last.author() >= proof.author()) {
            return Err(fail("fork proofs are not in strictly ascending feed order".into()));
        }
        forks.push(proof);
        at += first + second;
    }
    let mut records: Vec<Record> = Vec::new();
    for index in 0..record_count as usize {
        let ((entry, payload), used) = decode_record(&bytes[at..]).map_err(|error| EvidenceError::Record {
            index,
            position: Entry::decode_prefix(&bytes[at..])
                .ok()
                .map(|(e, _)| (e.author(), e.seq())),
            error: error.to_string(),
        })?;
        if let Some((last, _)) = records.last()
            && (last.author(), last.seq()) >= (entry.author(), entry.seq())
        {
            return Err(EvidenceError::Record {
                index,
                position: Some((entry.author(), entry.seq())),
                error: "records are not in strictly ascending (feed, seq) order".into(),
            });
        }
        records.push((entry, payload));
        at += used;
    }
    let rest = &bytes[at..];
    if rest.len() != 32 {
        return Err(EvidenceError::Checksum(format!(
            "expected a 32-byte checksum after the last record, found {} bytes",
            rest.len()
        )));
    }
    let checksum_error = (Hash::of(&bytes[..at]).as_bytes()[..] != rest[..])
        .then(|| EvidenceError::Checksum("BLAKE3 of the bytes before it does not match".into()));
    Ok(Bundle {
        form,
        now_ms,
        admins,
        window,
        subject,
        forks,
        records,
        checksum_error,
    })
}
