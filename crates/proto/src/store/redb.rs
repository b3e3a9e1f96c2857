//! redb backend: feeds in one database file, durable on every append.
//!
//! # Layout
//!
//! Five tables. Every per-entry key is the 40-byte string
//!
//! ```text
//! feed id (32 bytes, the author's ed25519 public key) || seq (u64, big-endian)
//! ```
//!
//! so that byte order is (feed, seq) order: the entries of one feed are
//! contiguous and ascending, and a range read is a single B-tree scan. The
//! logical key is the pair (feed, seq); it is packed by hand instead of using
//! redb's tuple and array key types because those allocate on every encode.
//! Values are raw bytes with no framing of ours; see each table below.
//!
//! # Transactions
//!
//! One [`Store::append`] is one redb write transaction committed with redb's
//! default durability ([`redb::Durability::Immediate`]: fsync'd before
//! `commit` returns), so an append that returned `Ok` survives a crash and one
//! that did not is wholly absent. Batch entries into one `append` to share the
//! commit.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, Table, TableDefinition,
    WriteTransaction,
};

use super::{AppendReport, ByteBound, ChainReader, FeedClock, Record, Store, StoreError, plan_append};
use crate::feed::{Entry, FeedId, ForkProof, Verified};

/// Length of an entry key: feed id (32 bytes) then big-endian seq (8 bytes).
const KEY_LEN: usize = 40;
/// An entry key, see the module doc.
type EntryKey = [u8; KEY_LEN];

/// Entry headers. Key: [`EntryKey`] (feed id || big-endian seq). Value: the
/// entry's exact encoded bytes as signed (spec/PROTOCOL.md §1.2), decoded
/// with [`Entry::decode`] on every read. A feed's keys cover exactly
/// `1..=head` (no holes).
const ENTRIES: TableDefinition<&EntryKey, &[u8]> = TableDefinition::new("entries");

/// Payloads. Key: [`EntryKey`], as in `entries`. Value: the payload bytes,
/// whose blake3 hash and length the entry commits to. A key is absent when
/// the payload was never received or was dropped; its entry stays.
const PAYLOADS: TableDefinition<&EntryKey, &[u8]> = TableDefinition::new("payloads");

/// Heads. Key: the feed id (32 bytes). Value: the highest sequence number
/// held for the feed (u64, redb's fixed-width little-endian encoding). A feed
/// with no entries has no key.
const HEADS: TableDefinition<&[u8; 32], u64> = TableDefinition::new("heads");

/// Fork proofs. Key: the forked feed's id (32 bytes). Value: the proof's
/// canonical encoding ([`ForkProof::encode`]: both entries' bytes back to
/// back, smaller hash first). One proof per feed: the lowest sequence seen.
const FORKS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("forks");

/// Metadata. Key: a UTF-8 name. Value: u64. Holds `"schema_version"` =
/// [`RedbStore::SCHEMA_VERSION`], written when the file is created and
/// checked on every open.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// How much of a view snapshot is written between two flushes of it.
const SNAPSHOT_SYNC_BYTES: usize = 8 << 20;

/// The `META` key of the schema version.
const SCHEMA_KEY: &str = "schema_version";

/// The page cache of a store: 16 MiB. redb's default (1 GiB) would grow a
/// node's memory with its store, while a node mostly reads what it has just
/// written (replication) and reads everything only once, at start (the
/// view's rebuild); a larger cache measured no faster in `feedmesh bench`.
const CACHE_BYTES: usize = 16 * 1024 * 1024;

/// Holds feeds in a redb database file.
///
/// One process at a time may open a file (redb locks it). The store is
/// `Send + Sync`: reads run concurrently with each other and with an append;
/// appends are serialised by redb.
pub struct RedbStore {
    db: Database,
    path: PathBuf,
    /// When the first commit since the last durable one that was not
    /// durable was made (`None`: everything committed is durable).
    unsynced_since: Mutex<Option<Instant>>,
}

impl fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn entry_key(feed: &FeedId, seq: u64) -> EntryKey {
    let mut key = [0; KEY_LEN];
    key[..32].copy_from_slice(feed.as_bytes());
    key[32..].copy_from_slice(&seq.to_be_bytes());
    key
}

fn key_seq(key: &EntryKey) -> u64 {
    let mut seq = [0; 8];
    seq.copy_from_slice(&key[32..]);
    u64::from_be_bytes(seq)
}

/// Maps a redb error to a [`StoreError`], with what was being done. redb's own
/// corruption reports become [`StoreError::Corrupt`].
fn redb_error<E: Into<redb::Error>>(context: &'static str) -> impl FnOnce(E) -> StoreError {
    move |error| match error.into() {
        redb::Error::Corrupted(message) => StoreError::Corrupt(format!("redb: {context}: {message}")),
        error => StoreError::Backend(format!("redb: {context}: {error}")),
    }
}

/// Decodes the stored bytes of entry `seq` of `feed`, checking that they are
/// an entry of that feed at that sequence.
fn decode_entry(feed: &FeedId, seq: u64, bytes: &[u8]) -> Result<Entry, StoreError> {
    let entry = Entry::decode(bytes).map_err(|e| StoreError::Corrupt(format!("entry {seq} of {feed}: {e}")))?;
    if entry.author() != *feed || entry.seq() != seq {
        return Err(StoreError::Corrupt(format!(
            "the entry stored as {seq} of {feed} is entry {} of {}",
            entry.seq(),
            entry.author()
        )));
    }
    Ok(entry)
}

fn decode_fork(feed: &[u8; 32], bytes: &[u8]) -> Result<ForkProof, StoreError> {
    let feed = FeedId(*feed);
    let proof = ForkProof::decode(bytes).map_err(|e| StoreError::Corrupt(format!("fork proof of {feed}: {e}")))?;
    if proof.author() != feed {
        return Err(StoreError::Corrupt(format!(
            "the fork proof stored for {feed} is about {}",
            proof.author()
        )));
    }
    Ok(proof)
}

fn read_entry(
    entries: &impl ReadableTable<&'static EntryKey, &'static [u8]>,
    feed: &FeedId,
    seq: u64,
) -> Result<Option<Entry>, StoreError> {
    match entries
        .get(&entry_key(feed, seq))
        .map_err(redb_error("reading an entry"))?
    {
        Some(bytes) => decode_entry(feed, seq, bytes.value()).map(Some),
        None => Ok(None),
    }
}

fn read_latest(heads: &impl ReadableTable<&'static [u8; 32], u64>, feed: &FeedId) -> Result<Option<u64>, StoreError> {
    Ok(heads
        .get(feed.as_bytes())
        .map_err(redb_error("reading a feed head"))?
        .map(|seq| seq.value()))
}

fn read_fork(
    forks: &impl ReadableTable<&'static [u8; 32], &'static [u8]>,
    feed: &FeedId,
) -> Result<Option<ForkProof>, StoreError> {
    match forks.get(feed.as_bytes()).map_err(redb_error("reading a fork proof"))? {
        Some(bytes) => decode_fork(feed.as_bytes(), bytes.value()).map(Some),
        None => Ok(None),
    }
}

/// What an append reads, through the tables its write transaction opened.
struct TxnReader<'a, 'txn> {
    entries: &'a Table<'txn, &'static EntryKey, &'static [u8]>,
    heads: &'a Table<'txn, &'static [u8; 32], u64>,
    forks: &'a Table<'txn, &'static [u8; 32], &'static [u8]>,
}

impl ChainReader for TxnReader<'_, '_> {
    fn latest(&self, feed: &FeedId) -> Result<Option<u64>, StoreError> {
        read_latest(self.heads, feed)
    }

    fn entry(&self, feed: &FeedId, seq: u64) -> Result<Option<Entry>, StoreError> {
        read_entry(self.entries, feed, seq)
    }

    fn frozen_at(&self, feed: &FeedId) -> Result<Option<u64>, StoreError> {
        // Only the sequence is needed; a proof that fails to decode is still
        // reported as corruption rather than ignored.
        Ok(read_fork(self.forks, feed)?.map(|proof| proof.seq()))
    }
}

/// Plans `records` against the store and writes the planned ones into `txn`'s
/// tables. Returns how many records were written; the caller commits.
fn write_append(txn: &WriteTransaction, records: &[Verified]) -> Result<usize, StoreError> {
    let mut entries = txn.open_table(ENTRIES).map_err(redb_error("opening entries"))?;
    let mut payloads = txn.open_table(PAYLOADS).map_err(redb_error("opening payloads"))?;
    let mut heads = txn.open_table(HEADS).map_err(redb_error("opening heads"))?;
    let forks = txn.open_table(FORKS).map_err(redb_error("opening forks"))?;
    let writes = plan_append(
        &TxnReader {
            entries: &entries,
            heads: &heads,
            forks: &forks,
        },
        records,
    )?;
    // plan_append returns each feed's records in ascending order, so the last
    // one written per feed is its new head.
    let mut new_heads: HashMap<FeedId, u64> = HashMap::new();
    for &index in &writes {
        let record = &records[index];
        let entry = record.entry();
        let key = entry_key(&entry.author(), entry.seq());
        entries
            .insert(&key, entry.as_bytes())
            .map_err(redb_error("writing an entry"))?;
        if let Some(payload) = record.payload() {
            payloads
                .insert(&key, payload)
                .map_err(redb_error("writing a payload"))?;
        }
        new_heads.insert(entry.author(), entry.seq());
    }
    for (feed, seq) in new_heads {
        heads
            .insert(feed.as_bytes(), seq)
            .map_err(redb_error("writing a feed head"))?;
    }
    Ok(writes.len())
}

impl RedbStore {
    /// The version of the table layout described in this module. A file with
    /// another version is refused at open.
    pub const SCHEMA_VERSION: u64 = 1;

    /// Opens the store in the database file at `path`, creating the file (and
    /// the tables) if absent.
    ///
    /// Fails with [`StoreError::Backend`] if the file cannot be opened (for
    /// example another process holds it) and with [`StoreError::Corrupt`] if
    /// it is not a feedmesh store of [`RedbStore::SCHEMA_VERSION`]. A file left
    /// by a crash is checked and repaired by redb while opening. A file
    /// altered behind redb's back after a clean shutdown is trusted (redb may
    /// then fail, or even panic, inside its own page handling); use
    /// [`RedbStore::open_checked`] when that matters more than a fast start.
    pub fn open(path: impl AsRef<Path>) -> Result<RedbStore, StoreError> {
        RedbStore::open_with(path.as_ref(), false)
    }

    /// Like [`RedbStore::open`], but first verifies the checksum of every page
    /// of the file (reading all of it), so that damage is reported as
    /// [`StoreError::Corrupt`].
    pub fn open_checked(path: impl AsRef<Path>) -> Result<RedbStore, StoreError> {
        RedbStore::open_with(path.as_ref(), true)
    }

    /// When the oldest commit not yet durable was made.
    fn unsynced(&self) -> Option<Instant> {
        *self.unsynced_since.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_unsynced(&self, since: Option<Instant>) {
        *self.unsynced_since.lock().unwrap_or_else(|p| p.into_inner()) = since;
    }

    /// Commits `txn`; if that fails, what it was to make durable may not be.
    fn commit_or_mark_unsynced(&self, txn: WriteTransaction, what: &'static str) -> Result<(), StoreError> {
        txn.commit().map_err(|error| {
            self.set_unsynced(Some(self.unsynced().unwrap_or_else(Instant::now)));
            redb_error(what)(error)
        })
    }

    /// Appends in one transaction committed with `durability`.
    fn append_with(&self, records: &[Verified], durability: Durability) -> Result<AppendReport, StoreError> {
        if records.is_empty() {
            return Ok(AppendReport::default());
        }
        let mut txn = self.begin_write()?;
        txn.set_durability(durability)
            .map_err(|e| StoreError::Backend(format!("redb: setting durability: {e}")))?;
        let appended = match write_append(&txn, records) {
            Ok(appended) => appended,
            Err(error) => {
                // Nothing of the batch may remain. An abort that fails leaves
                // the transaction to be dropped, which aborts it too; the
                // refusal is the error worth reporting.
                let _ = txn.abort();
                if let StoreError::Fork { proof, .. } = &error {
                    self.record_fork(proof)?;
                }
                return Err(error);
            }
        };
        if appended == 0 {
            // Everything was already held: no commit (and no fsync) needed.
            txn.abort().map_err(redb_error("ending an empty append"))?;
        } else {
            // Updated while this transaction holds the write lock, so that no
            // other commit comes between; a durable commit makes every
            // earlier one durable too.
            self.set_unsynced(match durability {
                Durability::None => self.unsynced().or_else(|| Some(Instant::now())),
                _ => None,
            });
            self.commit_or_mark_unsynced(txn, "committing an append")?;
        }
        Ok(AppendReport {
            appended,
            already_held: records.len() - appended,
        })
    }

    fn open_with(path: &Path, check_integrity: bool) -> Result<RedbStore, StoreError> {
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .set_check_integrity_on_open(check_integrity)
            .create(path)
            .map_err(|e| match e.into() {
                redb::Error::Corrupted(message) => {
                    StoreError::Corrupt(format!("redb: opening {}: {message}", path.display()))
                }
                e => StoreError::Backend(format!("redb: opening {}: {e}", path.display())),
            })?;
        let txn = db.begin_write().map_err(redb_error("starting the open transaction"))?;
        {
            // Opening the tables in a write transaction creates the missing ones.
            let entries = txn.open_table(ENTRIES).map_err(redb_error("opening entries"))?;
            txn.open_table(PAYLOADS).map_err(redb_error("opening payloads"))?;
            let heads = txn.open_table(HEADS).map_err(redb_error("opening heads"))?;
            txn.open_table(FORKS).map_err(redb_error("opening forks"))?;
            let mut meta = txn.open_table(META).map_err(redb_error("opening meta"))?;
            let version = meta
                .get(SCHEMA_KEY)
                .map_err(redb_error("reading the schema version"))?
                .map(|v| v.value());
            match version {
                Some(version) if version == Self::SCHEMA_VERSION => {}
                Some(version) => {
                    return Err(StoreError::Corrupt(format!(
                        "{}: schema version {version}, this build reads only version {}",
                        path.display(),
                        Self::SCHEMA_VERSION
                    )));
                }
                None => {
                    let empty = entries.is_empty().map_err(redb_error("counting entries"))?
                        && heads.is_empty().map_err(redb_error("counting heads"))?;
                    if !empty {
                        return Err(StoreError::Corrupt(format!(
                            "{}: holds feeds but no schema version",
                            path.display()
                        )));
                    }
                    meta.insert(SCHEMA_KEY, Self::SCHEMA_VERSION)
                        .map_err(redb_error("writing the schema version"))?;
                }
            }
        }
        txn.commit().map_err(redb_error("committing the open transaction"))?;
        Ok(RedbStore {
            db,
            path: path.to_owned(),
            unsynced_since: Mutex::new(None),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the snapshot of the view `name` is kept: beside the database
    /// file, as `FILE.NAME.snapshot` (spec/SESSIONS.md §6.7). A file of its
    /// own, not a table, so that writing hundreds of megabytes of snapshot
    /// never holds the database's write lock that appends wait for; written
    /// to a temporary file, synced and renamed over the old one, so a crash
    /// leaves the old snapshot or the new one whole. `name` is ASCII
    /// letters, digits, `-` and `_`.
    fn snapshot_path(&self, name: &str) -> Result<PathBuf, StoreError> {
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(StoreError::Backend(format!("{name:?} is not a snapshot name")));
        }
        let mut file = self.path.clone().into_os_string();
        file.push(format!(".{name}.snapshot"));
        Ok(PathBuf::from(file))
    }

    fn begin_read(&self) -> Result<redb::ReadTransaction, StoreError> {
        self.db.begin_read().map_err(redb_error("starting a read transaction"))
    }

    fn begin_write(&self) -> Result<WriteTransaction, StoreError> {
        self.db
            .begin_write()
            .map_err(redb_error("starting a write transaction"))
    }
}

impl Store for RedbStore {
    fn append(&self, records: &[Verified]) -> Result<AppendReport, StoreError> {
        self.append_with(records, Durability::Immediate)
    }

    fn append_unsynced(&self, records: &[Verified]) -> Result<AppendReport, StoreError> {
        self.append_with(records, Durability::None)
    }

    fn sync(&self, older_than: Duration) -> Result<(), StoreError> {
        let due = || self.unsynced().is_some_and(|since| since.elapsed() >= older_than);
        if !due() {
            return Ok(());
        }
        let txn = self.begin_write()?;
        // Under the write lock: a durable commit in between may have done it.
        if !due() {
            return txn.abort().map_err(redb_error("ending an unneeded sync"));
        }
        self.set_unsynced(None);
        self.commit_or_mark_unsynced(txn, "committing a sync")
    }

    fn entry(&self, feed: &FeedId, seq: u64) -> Result<Option<Entry>, StoreError> {
        let txn = self.begin_read()?;
        let entries = txn.open_table(ENTRIES).map_err(redb_error("opening entries"))?;
        read_entry(&entries, feed, seq)
    }

    fn payload(&self, feed: &FeedId, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.begin_read()?;
        let payloads = txn.open_table(PAYLOADS).map_err(redb_error("opening payloads"))?;
        Ok(payloads
            .get(&entry_key(feed, seq))
            .map_err(redb_error("reading a payload"))?
            .map(|payload| payload.value().to_vec()))
    }

    fn range_within(
        &self,
        feed: &FeedId,
        from: u64,
        to: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<Record>, StoreError> {
        let from = from.max(1);
        if from > to || limit == 0 {
            return Ok(Vec::new());
        }
        let txn = self.begin_read()?;
        let entries = txn.open_table(ENTRIES).map_err(redb_error("opening entries"))?;
        let payloads = txn.open_table(PAYLOADS).map_err(redb_error("opening payloads"))?;
        let (low, high) = (entry_key(feed, from), entry_key(feed, to));
        let rows = entries
            .range::<&EntryKey>(&low..=&high)
            .map_err(redb_error("reading a range of entries"))?;
        // The range is lazy: only the first `limit` rows are read. The
        // capacity guess is capped so that a huge limit allocates nothing.
        let mut out = Vec::with_capacity(limit.min(1024));
        let mut bound = ByteBound::new(max_bytes);
        for row in rows.take(limit) {
            let (key, bytes) = row.map_err(redb_error("reading a range of entries"))?;
            let key = key.value();
            let entry = decode_entry(feed, key_seq(key), bytes.value())?;
            if !bound.admit(&entry) {
                break;
            }
            let payload = payloads
                .get(key)
                .map_err(redb_error("reading a payload"))?
                .map(|payload| payload.value().to_vec());
            out.push((entry, payload));
        }
        Ok(out)
    }

    fn clock(&self) -> Result<FeedClock, StoreError> {
        let txn = self.begin_read()?;
        let heads = txn.open_table(HEADS).map_err(redb_error("opening heads"))?;
        let mut clock = FeedClock::new();
        for row in heads.iter().map_err(redb_error("reading feed heads"))? {
            let (feed, seq) = row.map_err(redb_error("reading feed heads"))?;
            clock.insert(FeedId(*feed.value()), seq.value());
        }
        Ok(clock)
    }

    fn record_fork(&self, proof: &ForkProof) -> Result<bool, StoreError> {
        let txn = self.begin_write()?;
        let recorded = {
            let mut forks = txn.open_table(FORKS).map_err(redb_error("opening forks"))?;
            let feed = proof.author();
            match read_fork(&forks, &feed)? {
                Some(held) if held.seq() <= proof.seq() => false,
                _ => {
                    forks
                        .insert(feed.as_bytes(), proof.encode().as_slice())
                        .map_err(redb_error("writing a fork proof"))?;
                    true
                }
            }
        };
        if recorded {
            txn.commit().map_err(redb_error("committing a fork proof"))?;
        } else {
            txn.abort().map_err(redb_error("ending a fork transaction"))?;
        }
        Ok(recorded)
    }

    fn forks(&self) -> Result<Vec<ForkProof>, StoreError> {
        let txn = self.begin_read()?;
        let forks = txn.open_table(FORKS).map_err(redb_error("opening forks"))?;
        let mut out = Vec::new();
        for row in forks.iter().map_err(redb_error("reading fork proofs"))? {
            let (feed, bytes) = row.map_err(redb_error("reading fork proofs"))?;
            out.push(decode_fork(feed.value(), bytes.value())?);
        }
        Ok(out)
    }

    fn drop_payloads(&self, feed: &FeedId, up_to: u64) -> Result<usize, StoreError> {
        if up_to == 0 {
            return Ok(0);
        }
        let txn = self.begin_write()?;
        let mut dropped = 0;
        {
            let mut payloads = txn.open_table(PAYLOADS).map_err(redb_error("opening payloads"))?;
            let (low, high) = (entry_key(feed, 1), entry_key(feed, up_to));
            payloads
                .retain_in::<&EntryKey, _>(&low..=&high, |_, _| {
                    dropped += 1;
                    false
                })
                .map_err(redb_error("dropping payloads"))?;
        }
        if dropped > 0 {
            txn.commit().map_err(redb_error("committing dropped payloads"))?;
        } else {
            txn.abort().map_err(redb_error("ending an empty payload drop"))?;
        }
        Ok(dropped)
    }

    fn latest(&self, feed: &FeedId) -> Result<Option<u64>, StoreError> {
        let txn = self.begin_read()?;
        let heads = txn.open_table(HEADS).map_err(redb_error("opening heads"))?;
        read_latest(&heads, feed)
    }

    fn save_snapshot(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.snapshot_path(name)?;
        let temporary = path.with_extension("snapshot.tmp");
        let io = |what: &'static str| {
            let path = path.clone();
            move |error: std::io::Error| StoreError::Backend(format!("{what} {}: {error}", path.display()))
        };
        let mut file = fs::File::create(&temporary).map_err(io("creating the snapshot"))?;
        // Synced a slice at a time: a single flush of hundreds of megabytes
        // at the end would queue the appends' own flushes behind it.
        for slice in bytes.chunks(SNAPSHOT_SYNC_BYTES) {
            file.write_all(slice).map_err(io("writing the snapshot"))?;
            file.sync_data().map_err(io("syncing the snapshot"))?;
        }
        file.sync_all().map_err(io("syncing the snapshot"))?;
        fs::rename(&temporary, &path).map_err(io("renaming the snapshot"))?;
        if let Some(dir) = path.parent() {
            fs::File::open(dir)
                .and_then(|dir| dir.sync_all())
                .map_err(io("syncing the directory of the snapshot"))?;
        }
        Ok(())
    }

    fn snapshot(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.snapshot_path(name)?;
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(StoreError::Backend(format!(
                "reading the snapshot {}: {error}",
                path.display()
            ))),
        }
    }
}
