//! Bundles: the export/import format for entries with their payloads
//! (spec/PROTOCOL.md §1.8).
//!
//! ```text
//! bundle = MAGIC record*          MAGIC = "feedmesh bundle v1\n" (19 bytes)
//! record = entry payload          entry: canonical CBOR (self-delimiting)
//! payload = bstr(payload_len) / null
//! ```
//!
//! Import verifies records in order (signatures in batches) and stores every
//! record before the first invalid one and nothing from it on; a fork at
//! sequence `n` stops it at the first record of that feed at or after `n`. What it stores
//! is exactly the bytes the author signed.

use std::io::{self, Read, Write};

pub use crate::feed::decode_record;
use crate::feed::{Entry, FeedId, Record, ValidationError, Verified, encode_record, verify_prefix};
use crate::store::{AppendReport, Store, StoreError, pages};

/// The first bytes of every bundle.
pub const MAGIC: &[u8] = b"feedmesh bundle v1\n";
/// Records verified and stored together during import.
const IMPORT_BATCH: usize = 1024;
/// How many bytes the reader asks for at a time.
const READ_CHUNK: usize = 64 * 1024;

/// One record of a bundle: an entry and its payload, if included.
pub type BundleRecord = Record;

/// Errors reading or importing a bundle.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// The input does not start with [`MAGIC`].
    #[error("not a feedmesh bundle (bad magic)")]
    BadMagic,
    /// Record `index` is invalid: malformed, or it breaks a validation rule.
    #[error("record {index}{}: rule {}: {error}", at(.position), .error.rule())]
    Invalid {
        /// Index of the record in the bundle, from 0.
        index: usize,
        /// The record's feed and sequence, when its entry decoded.
        position: Option<(FeedId, u64)>,
        /// The rule it broke.
        error: Box<ValidationError>,
    },
    /// Record `index` has no payload and missing payloads were not allowed.
    #[error("record {index}{}: payload missing", at(.position))]
    MissingPayload {
        /// Index of the record in the bundle.
        index: usize,
        /// The record's feed and sequence.
        position: Option<(FeedId, u64)>,
    },
    /// Record `index` is at or after the fork point `fork_seq` of its feed:
    /// the feed forked there (the proof is now recorded) or was frozen
    /// already (spec §1.7). Entries of the feed below `fork_seq` still import.
    #[error("record {index}{}: the feed is frozen by a fork at sequence {fork_seq}", at(.position))]
    Forked {
        /// Index of the record in the bundle.
        index: usize,
        /// The record's feed and sequence.
        position: Option<(FeedId, u64)>,
        /// The sequence at which the feed forked.
        fork_seq: u64,
    },
    /// The store failed (a damaged database, an I/O error).
    #[error("record {index}: {error}")]
    Store {
        /// Index of the record in the bundle.
        index: usize,
        /// What the store said.
        error: StoreError,
    },
    /// Reading or writing the bundle failed.
    #[error("bundle I/O: {0}")]
    Io(#[from] io::Error),
}

fn at(position: &Option<(FeedId, u64)>) -> String {
    match position {
        Some((feed, seq)) => format!(" ({feed} seq {seq})"),
        None => String::new(),
    }
}

/// Writes a bundle record by record.
pub struct BundleWriter<W: Write> {
    out: W,
    records: usize,
    buffer: Vec<u8>,
}

impl<W: Write> BundleWriter<W> {
    /// Starts a bundle by writing [`MAGIC`].
    pub fn new(mut out: W) -> io::Result<Self> {
        out.write_all(MAGIC)?;
        Ok(BundleWriter {
            out,
            records: 0,
            buffer: Vec::new(),
        })
    }

    /// Appends one record.
    pub fn write(&mut self, entry: &Entry, payload: Option<&[u8]>) -> io::Result<()> {
        self.buffer.clear();
        encode_record(&mut self.buffer, entry, payload);
        self.out.write_all(&self.buffer)?;
        self.records += 1;
        Ok(())
    }

    /// Flushes and returns the number of records written and the writer.
    pub fn finish(mut self) -> io::Result<(usize, W)> {
        self.out.flush()?;
        Ok((self.records, self.out))
    }
}

/// Reads a bundle's records one at a time from any reader, holding at most
/// one record (plus a read chunk) in memory.
pub struct BundleReader<R: Read> {
    input: R,
    buffer: Vec<u8>,
    start: usize,
    eof: bool,
    index: usize,
}

impl<R: Read> BundleReader<R> {
    /// Checks the magic and prepares to read records.
    pub fn new(mut input: R) -> Result<Self, BundleError> {
        let mut magic = [0u8; MAGIC.len()];
        input.read_exact(&mut magic).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => BundleError::BadMagic,
            _ => BundleError::Io(e),
        })?;
        if magic != MAGIC {
            return Err(BundleError::BadMagic);
        }
        Ok(BundleReader {
            input,
            buffer: Vec::new(),
            start: 0,
            eof: false,
            index: 0,
        })
    }

    /// The next record, `None` at a clean end of input.
    pub fn next_record(&mut self) -> Result<Option<BundleRecord>, BundleError> {
        loop {
            let available = &self.buffer[self.start..];
            if available.is_empty() && self.eof {
                return Ok(None);
            }
            match decode_record(available) {
                Ok((record, used)) => {
                    self.start += used;
                    self.index += 1;
                    return Ok(Some(record));
                }
                Err(error) if error.is_incomplete() && !self.eof => self.fill()?,
                Err(error) => {
                    let position = Entry::decode_prefix(available)
                        .ok()
                        .map(|(entry, _)| (entry.author(), entry.seq()));
                    return Err(BundleError::Invalid {
                        index: self.index,
                        position,
                        error: Box::new(error),
                    });
                }
            }
        }
    }

    fn fill(&mut self) -> Result<(), BundleError> {
        // Drop consumed bytes; the buffer never holds more than one record
        // (at most MAX_ENTRY_SIZE + 9 + MAX_PAYLOAD bytes) plus a chunk.
        self.buffer.drain(..self.start);
        self.start = 0;
        let old = self.buffer.len();
        self.buffer.resize(old + READ_CHUNK, 0);
        let read = loop {
            match self.input.read(&mut self.buffer[old..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
        };
        self.buffer.truncate(old + read);
        if read == 0 {
            self.eof = true;
        }
        Ok(())
    }
}

/// Options of [`import`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ImportOptions {
    /// Accept records whose payload is omitted (null) and store the header alone.
    pub allow_missing_payloads: bool,
}

/// What an import stored, and the error that stopped it, if any.
#[derive(Debug)]
pub struct ImportOutcome {
    /// Records read and found valid.
    pub records: usize,
    /// What the store did with them.
    pub report: AppendReport,
    /// Why the import stopped before the end, if it did. Every record before
    /// the failing one is stored; nothing from it on.
    pub error: Option<BundleError>,
}

/// Imports a bundle into `store`: reads, verifies and appends in batches,
/// stopping at the first invalid record. Fails outright only when the input
/// is not a bundle at all.
pub fn import(store: &dyn Store, input: impl Read, options: ImportOptions) -> Result<ImportOutcome, BundleError> {
    let mut reader = BundleReader::new(input)?;
    let mut outcome = ImportOutcome {
        records: 0,
        report: AppendReport::default(),
        error: None,
    };
    loop {
        let mut batch: Vec<BundleRecord> = Vec::with_capacity(IMPORT_BATCH);
        let mut stop = None;
        let mut done = false;
        while batch.len() < IMPORT_BATCH {
            match reader.next_record() {
                Ok(Some((entry, None))) if !options.allow_missing_payloads => {
                    stop = Some(BundleError::MissingPayload {
                        index: outcome.records + batch.len(),
                        position: Some((entry.author(), entry.seq())),
                    });
                    break;
                }
                Ok(Some(record)) => batch.push(record),
                Ok(None) => {
                    done = true;
                    break;
                }
                Err(error) => {
                    stop = Some(error);
                    break;
                }
            }
        }
        if let Err(error) = store_batch(store, batch, &mut outcome) {
            outcome.error = Some(error);
            return Ok(outcome);
        }
        if stop.is_some() || done {
            outcome.error = stop;
            return Ok(outcome);
        }
    }
}

/// Verifies and appends one batch; on an invalid record, stores the valid
/// prefix before it and reports the error.
fn store_batch(store: &dyn Store, batch: Vec<BundleRecord>, outcome: &mut ImportOutcome) -> Result<(), BundleError> {
    if batch.is_empty() {
        return Ok(());
    }
    let first_index = outcome.records;
    let positions: Vec<(FeedId, u64)> = batch.iter().map(|(e, _)| (e.author(), e.seq())).collect();
    let (verified, failure) = verify_prefix(batch);
    append_prefix(store, &verified, first_index, &positions, outcome)?;
    match failure {
        Some(failure) => Err(BundleError::Invalid {
            index: first_index + failure.index,
            position: Some(positions[failure.index]),
            error: Box::new(failure.error),
        }),
        None => Ok(()),
    }
}

/// Appends `verified`; if the store refuses a record, appends the records
/// before the first one it cannot take and reports why. After a fork at
/// sequence `n`, that is the first record of the forked feed at or after `n`
/// (the same feed's records below `n` and other feeds' records before it
/// are stored, spec §1.8).
fn append_prefix(
    store: &dyn Store,
    verified: &[Verified],
    first_index: usize,
    positions: &[(FeedId, u64)],
    outcome: &mut ImportOutcome,
) -> Result<(), BundleError> {
    let refused = match store.append(verified) {
        Ok(report) => {
            add(&mut outcome.report, report);
            outcome.records += verified.len();
            return Ok(());
        }
        Err(error) => error,
    };
    let index = match &refused {
        StoreError::Rejected { index, .. } | StoreError::Frozen { index, .. } => *index,
        StoreError::Fork { index, proof } => first_at_or_after(&positions[..*index], proof.author(), proof.seq()),
        _ => {
            return Err(BundleError::Store {
                index: first_index,
                error: refused,
            });
        }
    };
    let report = store.append(&verified[..index]).map_err(|error| BundleError::Store {
        index: first_index,
        error,
    })?;
    add(&mut outcome.report, report);
    outcome.records += index;
    let position = Some(positions[index]);
    let index = first_index + index;
    Err(match refused {
        StoreError::Rejected { error, .. } => BundleError::Invalid {
            index,
            position,
            error: Box::new(error),
        },
        StoreError::Fork { proof, .. } => BundleError::Forked {
            index,
            position,
            fork_seq: proof.seq(),
        },
        StoreError::Frozen { seq, .. } => BundleError::Forked {
            index,
            position,
            fork_seq: seq,
        },
        other => BundleError::Store { index, error: other },
    })
}

/// The index of the first of `positions` in `feed` at or after `seq`, or
/// `positions.len()` if there is none.
fn first_at_or_after(positions: &[(FeedId, u64)], feed: FeedId, seq: u64) -> usize {
    positions
        .iter()
        .position(|&(f, s)| f == feed && s >= seq)
        .unwrap_or(positions.len())
}

fn add(total: &mut AppendReport, more: AppendReport) {
    total.appended += more.appended;
    total.already_held += more.already_held;
}

/// Writes entries `from..` of `feed` from `store` as a bundle; returns the
/// number of records written. Of a feed frozen by a fork at `n`, only the
/// entries below `n` are written (spec §1.8).
pub fn export(store: &dyn Store, feed: &FeedId, from: u64, out: impl Write) -> Result<usize, BundleError> {
    const PAGE: usize = 4096;
    let store_error = |error| BundleError::Store { index: 0, error };
    let to = store.frozen_at(feed).map_err(store_error)?.map_or(u64::MAX, |n| n - 1);
    let mut writer = BundleWriter::new(out)?;
    for page in pages(store, *feed, from, to, PAGE) {
        let page = page.map_err(|error| BundleError::Store {
            index: writer.records,
            error,
        })?;
        for (entry, payload) in &page {
            writer.write(entry, payload.as_deref())?;
        }
    }
    Ok(writer.finish()?.0)
}

/// The largest record a bundle can hold, in bytes.
pub use crate::feed::MAX_RECORD_SIZE;
