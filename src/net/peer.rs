//! The connection driver: one tokio task per authenticated connection that
//! drives a [`PeerSync`] (spec/PROTOCOL.md §2.2) over a [`SecureReader`] and
//! a [`SecureWriter`].
//!
//! ```text
//!            ┌──────────── driver task (biased select!) ────────────┐
//! socket ──► │ 1. shutdown / eviction                               │
//! (reader)   │ 2. local events (stored heads, fork proofs)           │
//!            │ 3. room in the outbox: next message to send           │ ──► outbox (bytes) ──► writer task ──► socket
//!            │ 4. a frame from the peer                              │
//!            │ 5. the PeerSync timer                                 │
//!            └───────────────────────────────────────────────────────┘
//! ```
//!
//! [`SecureWriter::send`] is not cancel-safe, so the writer lives in its own
//! task fed by a channel of encoded messages bounded in bytes: the
//! connection's share of the node's outbox budget ([`Host::outbox_share`]).
//! The driver only builds a message while [`MIN_OUTBOX_SHARE`] of the share
//! is free (it waits for room inside the `select!`), and builds it within
//! what is free, so it keeps reading while the peer is slow to read: two
//! nodes sending each other bulk data cannot deadlock, and a peer that does
//! not read makes the node hold no more than the share. Clock lines
//! stay coalesced inside [`PeerSync`] while the outbox is full. The peer's
//! Fetches wait in the machine (at most [`MAX_FETCHES_PER_PEER`]); each Chunk is
//! read from the store ([`serve_fetch`], on a blocking thread, within what
//! the outbox share has free) only when it is its turn to be sent.
//!
//! Ranges owed to the peer wait in the machine too (coalesced per feed, at most
//! [`MAX_PENDING_RANGES`]) and are read from the store one Records message at a
//! time, only when the previous one has been handed to the writer; a read
//! takes the front ranges of several feeds in turn, so a thousand one-entry
//! feeds go out as one Records message (and one append at the peer), not a
//! thousand. A read holds at most [`MAX_RECORDS_PER_MESSAGE`] records and
//! what the outbox share has free, counted from the entries' payload
//! lengths before the payloads are read (`Store::range_within`); what it
//! leaves of a range stays queued.
//!
//! Verified Records are appended on a blocking thread while the driver goes
//! on reading, decrypting and verifying the next message: one batch is in
//! flight per connection, and the next Store action (or a Fork or Serve,
//! which must follow the records before them) first waits for it and tells
//! the machine its outcome (`local_advanced`, `store_refused`, `local_fork`),
//! so batches are appended in order and each one whole or not at all. A
//! batch is never started once an earlier one was refused, and a batch in
//! flight when the connection ends is waited for.
//!
//! What the node provides is the [`Host`] trait: the store, local events, and
//! the appends (which it serialises with its own writes and publishes). A
//! host that chooses one sender per feed ([`Host::attach`]) gets the peer's
//! claimed clock ([`Host::peer_clock`]), stalls and the end of the
//! connection, and hands back want flags: the driver applies them to its
//! [`PeerSync::managed`] machine when woken, between the other events.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Notify, broadcast, mpsc, oneshot, watch};
use tokio::task::{JoinError, JoinHandle};
use tokio::time::Instant;

use crate::feed::{Entry, FeedId, ForkProof, Hash, MAX_RECORD_SIZE, ValidationError, Verified};
use crate::store::{AppendReport, Store, StoreError};
use crate::sync::{
    Action, FetchError, Fetched, MAX_FRAME, MAX_RECORDS_PER_MESSAGE, Message, PeerSync, ProtocolError, Serve,
    pack_records, read_ranges, serve_fetch,
};
#[cfg(doc)]
use crate::sync::{MAX_FETCHES_PER_PEER, MAX_PENDING_RANGES};

use super::{SMALL_MESSAGE, SecureReader, SecureWriter, StreamError};

/// The smallest outbox share a connection may have ([`Host::outbox_share`]):
/// room for the largest record in a message of its own (or in a Fetch's
/// answer, with its certificate path), which is more than any other message
/// the driver builds (a Clock of [`crate::sync::MAX_FEEDS_PER_CLOCK`] lines
/// is under 400 KiB). The driver builds a message only while this much of
/// its share is free, so what waits for the writer never exceeds the share.
pub const MIN_OUTBOX_SHARE: usize = MAX_RECORD_SIZE + SMALL_MESSAGE;
/// How long a closing connection waits for its writer to flush (ms).
pub const FLUSH_TIMEOUT_MS: u64 = 1_000;
/// After this long without sending anything, the writer sends an empty
/// frame (a keepalive, spec/PROTOCOL.md §3.3) (ms).
pub const KEEPALIVE_MS: u64 = 5_000;
/// A connection on which no frame (keepalives included) arrived for this
/// long is dead (a partition, a peer gone without closing) and is closed,
/// so that the node redials ([`Closed::Idle`]) (ms). Detected between one
/// and two times this after the last frame.
pub const IDLE_TIMEOUT_MS: u64 = 3 * KEEPALIVE_MS;
/// Records messages with at least this many records are checked on a
/// blocking thread.
const BLOCKING_RECORDS: usize = 16;

/// A fetch the node asks a connection to make ([`PeerSync::fetch_range`]),
/// sent through the channel given to [`run_connection`].
#[derive(Debug)]
pub struct FetchCommand {
    /// The feed.
    pub feed: FeedId,
    /// First sequence number wanted.
    pub from: u64,
    /// Last sequence number wanted.
    pub to: u64,
    /// Receives the verified chunk or why there is none; dropped unanswered
    /// when the connection ends.
    pub reply: oneshot::Sender<Result<Fetched, FetchError>>,
}

/// Something the node stored or learnt, told to every connection.
#[derive(Clone, Debug)]
pub enum LocalEvent {
    /// The store holds `feed` up to `seq` (a local append, or records from
    /// any peer).
    Stored {
        /// The feed.
        feed: FeedId,
        /// Its latest sequence number now held.
        seq: u64,
    },
    /// The store recorded a fork proof: pass it on and freeze the feed.
    Fork(Arc<ForkProof>),
}

/// Bytes exchanged with one peer, for metrics: the lengths of the messages
/// received and sent (decrypted, without framing), over every connection to
/// that peer.
#[derive(Debug, Default)]
pub struct Traffic {
    /// Message bytes received from the peer.
    pub bytes_in: AtomicU64,
    /// Message bytes sent to the peer (handed to the socket).
    pub bytes_out: AtomicU64,
    /// Message bytes waiting to be sent to the peer now (a gauge; at most
    /// the connection's [`Host::outbox_share`]).
    pub queued_out: AtomicU64,
}

/// What a connection needs from its node.
pub trait Host: Send + Sync + 'static {
    /// The node's store (reads; appends go through [`Host::append_received`]).
    fn store(&self) -> Arc<dyn Store>;
    /// A new receiver of the node's [`LocalEvent`]s.
    fn subscribe_local(&self) -> broadcast::Receiver<LocalEvent>;
    /// Appends records received from a peer to the store and publishes what
    /// was stored ([`LocalEvent::Stored`], the node's subscribers, its clock);
    /// on a fork, publishes [`LocalEvent::Fork`]. Blocking: called from
    /// `spawn_blocking`.
    fn append_received(&self, records: &[Verified]) -> Result<AppendReport, StoreError>;
    /// Records a fork proof received from a peer and publishes it. Blocking.
    fn record_fork(&self, proof: &ForkProof) -> Result<(), StoreError>;
    /// The node's own feed, if it writes one: a peer claiming more of it
    /// than the store holds is disconnected ([`ProtocolError::FalseClaim`]).
    /// `None` (the default): no such check.
    fn own(&self) -> Option<FeedId> {
        None
    }
    /// The clock of `peer` as connection `conn` knows it changed.
    fn peer_clock(&self, peer: FeedId, conn: u64, clock: BTreeMap<FeedId, u64>);
    /// The byte counters of `peer`, asked once per connection; `None` (the
    /// default): nothing is counted.
    fn traffic(&self, _peer: FeedId) -> Option<Arc<Traffic>> {
        None
    }
    /// Whether the node chooses one sender per feed (spec/PROTOCOL.md §2.2
    /// "Senders", [`crate::sync::ReplicationScheduler`]). Called once per
    /// connection, with what the store holds, before its machine starts; if
    /// it returns a [`Notify`], the machine is [`PeerSync::managed`] and the
    /// connection applies [`Host::take_wants`] whenever it is notified, and
    /// calls [`Host::detach`] when it ends. `None` (the default): the machine
    /// wants every feed from this peer (the flood).
    fn attach(&self, _peer: FeedId, _conn: u64, _held: &BTreeMap<FeedId, u64>) -> Option<Arc<Notify>> {
        None
    }
    /// The want flags that changed for connection `conn` since it last took
    /// them (feed, want).
    fn take_wants(&self, _conn: u64) -> Vec<(FeedId, bool)> {
        Vec::new()
    }
    /// Connection `conn` reported [`Action::Stalled`] for `feed`.
    fn stalled(&self, _conn: u64, _feed: FeedId) {}
    /// An attached connection ended.
    fn detach(&self, _conn: u64) {}
    /// How many bytes of encoded messages may wait for the writer on one
    /// connection (at least [`MIN_OUTBOX_SHARE`]): the node's outbox budget
    /// divided among the connections it may have, so that peers that do
    /// not read make the node hold no more than that budget in all.
    fn outbox_share(&self) -> usize;
}

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Closed {
    /// The node is shutting down.
    #[error("node shutting down")]
    Shutdown,
    /// The node closed it in favour of another connection to the same peer.
    #[error("replaced by another connection to the same peer")]
    Evicted,
    /// The peer closed the connection between two messages.
    #[error("closed by the peer")]
    PeerClosed,
    /// Nothing arrived from the peer for [`IDLE_TIMEOUT_MS`].
    #[error("nothing received for {IDLE_TIMEOUT_MS} ms")]
    Idle,
    /// The transport failed (decryption, framing, truncation, I/O).
    #[error("transport: {0}")]
    Stream(#[from] StreamError),
    /// The peer broke the replication protocol.
    #[error("protocol: {0}")]
    Protocol(#[from] ProtocolError),
    /// The local store failed (not the peer's fault).
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

impl Closed {
    /// A short, stable name, for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Closed::Shutdown => "shutdown",
            Closed::Evicted => "duplicate",
            Closed::PeerClosed => "peer-closed",
            Closed::Idle => "idle",
            Closed::Stream(StreamError::Closed) => "peer-closed",
            Closed::Stream(StreamError::Truncated) => "truncated",
            Closed::Stream(StreamError::Decrypt) => "decrypt",
            Closed::Stream(StreamError::Framing(_)) => "framing",
            Closed::Stream(StreamError::Io(_)) => "io",
            Closed::Stream(StreamError::SlowMessage(_)) => "slow-message",
            Closed::Stream(_) => "transport",
            Closed::Protocol(error) => error.reason(),
            Closed::Store(_) => "store-error",
        }
    }

    /// Whether the peer is to blame (a protocol or framing violation).
    pub fn is_peer_fault(&self) -> bool {
        matches!(
            self,
            Closed::Protocol(_) | Closed::Stream(StreamError::Decrypt | StreamError::Framing(_))
        )
    }
}

/// Runs one authenticated connection until it ends, and says why.
///
/// `conn` identifies the connection to the host; `shutdown` turning true
/// (or its sender dropping) and `evict` being notified close it gracefully
/// (the writer gets [`FLUSH_TIMEOUT_MS`] to flush); a protocol violation
/// closes it at once. Never panics on peer data. Fetches received on
/// `fetches` are made on this connection (each answered on its
/// [`FetchCommand::reply`]).
pub async fn run_connection<R, W>(
    reader: SecureReader<R>,
    writer: SecureWriter<W>,
    host: Arc<dyn Host>,
    conn: u64,
    shutdown: watch::Receiver<bool>,
    evict: Arc<Notify>,
    fetches: Option<mpsc::Receiver<FetchCommand>>,
) -> Closed
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let peer = reader.remote_id();
    let traffic = host.traffic(peer);
    let (tx, rx) = outbox(traffic.clone(), host.outbox_share());
    let mut writer_task = tokio::spawn(write_loop(writer, rx));
    let mut driver = Driver {
        peer,
        conn,
        store: host.store(),
        host,
        sync: PeerSync::new(),
        start: Instant::now(),
        peeked: None,
        traffic,
        wants: None,
        replies: BTreeMap::new(),
        storing: None,
    };
    let closed = driver
        .run(reader, &tx, &mut writer_task, shutdown, evict, fetches)
        .await;
    if let Some(task) = driver.storing.take() {
        // A batch already verified is stored whole before the connection ends.
        let _ = task.await;
    }
    if driver.wants.is_some() {
        driver.host.detach(conn);
    }
    drop(tx);
    let graceful = matches!(closed, Closed::Shutdown | Closed::Evicted);
    if graceful && !writer_task.is_finished() {
        if tokio::time::timeout(Duration::from_millis(FLUSH_TIMEOUT_MS), &mut writer_task)
            .await
            .is_err()
        {
            writer_task.abort();
        }
    } else {
        writer_task.abort();
    }
    closed
}

/// The writer task: sends queued messages in order, then closes the sending
/// direction once the driver drops the channel.
async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: SecureWriter<W>,
    mut rx: OutboxReceiver,
) -> Result<(), StreamError> {
    let keepalive = Duration::from_millis(KEEPALIVE_MS);
    loop {
        let message = match tokio::time::timeout(keepalive, rx.messages.recv()).await {
            Ok(Some(message)) => message,
            Ok(None) => break,
            Err(_) => {
                writer.send_keepalive().await?;
                continue;
            }
        };
        writer.send(&message).await?;
        rx.queue.sent(message.len());
    }
    writer.shutdown().await
}

/// The bytes waiting between a connection's driver and its writer.
#[derive(Debug)]
struct OutboxQueue {
    /// Bytes handed to the writer and not yet written.
    queued: AtomicUsize,
    /// Notified when the writer wrote a message.
    drained: Notify,
    /// The peer's counters, if the host keeps them.
    traffic: Option<Arc<Traffic>>,
}

impl OutboxQueue {
    /// `len` more bytes wait.
    fn queued(&self, len: usize) {
        let now = self.queued.fetch_add(len, Ordering::SeqCst) + len;
        if let Some(traffic) = &self.traffic {
            traffic.queued_out.store(now as u64, Ordering::Relaxed);
        }
    }

    /// A message of `len` bytes was handed to the socket.
    fn sent(&self, len: usize) {
        let now = self.queued.fetch_sub(len, Ordering::SeqCst) - len;
        if let Some(traffic) = &self.traffic {
            traffic.bytes_out.fetch_add(len as u64, Ordering::Relaxed);
            traffic.queued_out.store(now as u64, Ordering::Relaxed);
        }
        self.drained.notify_one();
    }
}

/// The driver's end of the outbox.
struct Outbox {
    messages: mpsc::UnboundedSender<Vec<u8>>,
    queue: Arc<OutboxQueue>,
    /// The most bytes that may wait ([`Host::outbox_share`]).
    share: usize,
}

/// The writer's end of the outbox.
struct OutboxReceiver {
    messages: mpsc::UnboundedReceiver<Vec<u8>>,
    queue: Arc<OutboxQueue>,
}

/// A new outbox of `share` bytes, counting into `traffic`.
fn outbox(traffic: Option<Arc<Traffic>>, share: usize) -> (Outbox, OutboxReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let queue = Arc::new(OutboxQueue {
        queued: AtomicUsize::new(0),
        drained: Notify::new(),
        traffic,
    });
    (
        Outbox {
            messages: tx,
            queue: queue.clone(),
            share: share.max(MIN_OUTBOX_SHARE),
        },
        OutboxReceiver { messages: rx, queue },
    )
}

impl Outbox {
    /// Waits until at least [`MIN_OUTBOX_SHARE`] bytes of the share are free.
    async fn room(&self) {
        while self.queue.queued.load(Ordering::SeqCst) + MIN_OUTBOX_SHARE > self.share {
            self.queue.drained.notified().await;
        }
    }

    /// How large the next message built may be: what the share has free,
    /// and at most [`MAX_FRAME`].
    fn allowance(&self) -> usize {
        let queued = self.queue.queued.load(Ordering::SeqCst);
        self.share.saturating_sub(queued).min(MAX_FRAME)
    }

    /// Hands `message` to the writer.
    fn send(&self, message: Vec<u8>) -> Result<(), Closed> {
        self.queue.queued(message.len());
        self.messages.send(message).map_err(|_| Closed::PeerClosed)
    }
}

/// Waits for `notify`, or forever without one.
async fn notified(notify: Option<&Notify>) {
    match notify {
        Some(notify) => notify.notified().await,
        None => std::future::pending().await,
    }
}

/// The next fetch command, or forever without a channel (or once it closed).
async fn next_fetch(fetches: &mut Option<mpsc::Receiver<FetchCommand>>) -> FetchCommand {
    if let Some(rx) = fetches.as_mut()
        && let Some(command) = rx.recv().await
    {
        return command;
    }
    *fetches = None;
    std::future::pending().await
}

/// Runs a blocking store operation off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|error| Err(StoreError::Backend(format!("blocking task failed: {error}"))))
}

/// What became of (part of) one batch appended by [`append_all`], in order.
enum StoreOutcome {
    /// Stored: the latest sequence number per feed of the batch.
    Advanced(BTreeMap<FeedId, u64>),
    /// The store refused a record: nothing of the batch was stored.
    Refused {
        /// The record's feed.
        feed: FeedId,
        /// Its sequence number.
        seq: u64,
        /// The rule it broke.
        error: ValidationError,
    },
    /// A record forked its feed: that feed's records were dropped.
    Fork(Box<ForkProof>),
    /// A feed is frozen by a fork: its records were dropped.
    Frozen,
    /// The store failed.
    Failed(StoreError),
}

/// Appends verified records through the host (blocking). A fork (or a feed
/// frozen by one) drops that feed's records and retries with the rest, so
/// that the other feeds of the message are not lost.
fn append_all(host: &dyn Host, mut records: Vec<Verified>, peer: FeedId) -> Vec<StoreOutcome> {
    let mut outcomes = Vec::new();
    while !records.is_empty() {
        match host.append_received(&records) {
            Ok(_) => {
                let mut heads: BTreeMap<FeedId, u64> = BTreeMap::new();
                for record in &records {
                    let entry = record.entry();
                    let head = heads.entry(entry.author()).or_insert(0);
                    *head = (*head).max(entry.seq());
                }
                outcomes.push(StoreOutcome::Advanced(heads));
                break;
            }
            Err(StoreError::Rejected { index, error }) => {
                let (feed, seq) = records
                    .get(index)
                    .map(|r| (r.entry().author(), r.entry().seq()))
                    .unwrap_or((peer, 0));
                // A V9 refusal may be fork evidence (§2.2): the other
                // feeds of the batch are stored while it is looked into.
                let evidence = matches!(error, ValidationError::PrevHashMismatch { .. });
                outcomes.push(StoreOutcome::Refused { feed, seq, error });
                if !evidence {
                    break;
                }
                records.retain(|r| r.entry().author() != feed);
            }
            Err(StoreError::Fork { proof, .. }) => {
                let feed = proof.author();
                outcomes.push(StoreOutcome::Fork(proof));
                records.retain(|r| r.entry().author() != feed);
            }
            Err(StoreError::Frozen { feed, .. }) => {
                outcomes.push(StoreOutcome::Frozen);
                records.retain(|r| r.entry().author() != feed);
            }
            Err(error) => {
                outcomes.push(StoreOutcome::Failed(error));
                break;
            }
        }
    }
    outcomes
}

/// Waits for the batch being appended, or forever without one.
async fn stored(storing: &mut Option<JoinHandle<Vec<StoreOutcome>>>) -> Result<Vec<StoreOutcome>, JoinError> {
    match storing.as_mut() {
        Some(task) => {
            let outcomes = task.await;
            *storing = None;
            outcomes
        }
        None => std::future::pending().await,
    }
}

struct Driver {
    peer: FeedId,
    conn: u64,
    host: Arc<dyn Host>,
    store: Arc<dyn Store>,
    sync: PeerSync,
    start: Instant,
    /// One message taken from `sync`, waiting for an outbox slot.
    peeked: Option<Message>,
    /// Byte counters of the peer (metrics), if the host keeps them.
    traffic: Option<Arc<Traffic>>,
    /// Notified when the host changed the want flags ([`Host::attach`]).
    wants: Option<Arc<Notify>>,
    /// Where to deliver the answers to this side's fetches, by id.
    replies: BTreeMap<u64, oneshot::Sender<Result<Fetched, FetchError>>>,
    /// The batch of received records being appended, at most one.
    storing: Option<JoinHandle<Vec<StoreOutcome>>>,
}

impl Driver {
    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    async fn run<R: AsyncRead + Unpin>(
        &mut self,
        mut reader: SecureReader<R>,
        tx: &Outbox,
        writer_task: &mut JoinHandle<Result<(), StreamError>>,
        mut shutdown: watch::Receiver<bool>,
        evict: Arc<Notify>,
        mut fetches: Option<mpsc::Receiver<FetchCommand>>,
    ) -> Closed {
        // Subscribe before reading the clock: nothing stored in between is missed.
        let mut local = self.host.subscribe_local();
        if *shutdown.borrow_and_update() {
            return Closed::Shutdown;
        }
        let store = self.store.clone();
        let clock = match blocking(move || store.clock()).await {
            Ok(clock) => clock,
            Err(error) => return Closed::Store(error),
        };
        let now = self.now();
        if let Some(wants) = self.host.attach(self.peer, self.conn, &clock) {
            self.sync = PeerSync::managed();
            self.wants = Some(wants);
            self.apply_wants();
        }
        if let Some(own) = self.host.own() {
            self.sync.set_own(own);
        }
        self.sync.start(&clock, now);
        let wants = self.wants.clone();
        if let Err(closed) = self.resync_forks().await {
            return closed;
        }
        if let Err(closed) = self.process().await {
            return closed;
        }
        let idle = Duration::from_millis(IDLE_TIMEOUT_MS);
        let mut heard = reader.progress();
        let mut idle_deadline = Instant::now() + idle;
        loop {
            if self.peeked.is_none() {
                self.peeked = self.sync.poll_transmit();
            }
            let want_send = self.peeked.is_some() || self.sync.owes();
            let timer = self.sync.poll_timeout();
            let deadline = self.start + Duration::from_millis(timer.unwrap_or(u64::from(u32::MAX)));
            let step: Result<(), Closed> = tokio::select! {
                biased;
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        return Closed::Shutdown;
                    }
                    Ok(())
                }
                () = evict.notified() => return Closed::Evicted,
                result = &mut *writer_task => {
                    return match result {
                        Ok(Ok(())) => Closed::PeerClosed,
                        Ok(Err(error)) => Closed::Stream(error),
                        Err(error) => Closed::Stream(StreamError::Io(std::io::Error::other(error.to_string()))),
                    };
                }
                outcomes = stored(&mut self.storing) => self.on_stored(outcomes).await,
                event = local.recv() => self.on_local(event).await,
                () = notified(wants.as_deref()) => {
                    self.apply_wants();
                    Ok(())
                }
                command = next_fetch(&mut fetches) => {
                    self.fetch(command);
                    Ok(())
                }
                () = tx.room(), if want_send => self.send_next(tx).await,
                frame = reader.recv() => match frame {
                    Ok(frame) => {
                        if let Some(traffic) = &self.traffic {
                            traffic.bytes_in.fetch_add(frame.len() as u64, Ordering::Relaxed);
                        }
                        self.on_frame(&frame).await
                    }
                    Err(StreamError::Closed) => Err(Closed::PeerClosed),
                    Err(error) => Err(Closed::Stream(error)),
                },
                () = tokio::time::sleep_until(deadline), if timer.is_some() => {
                    let now = self.now();
                    self.sync.handle_timeout(now);
                    Ok(())
                }
                () = tokio::time::sleep_until(idle_deadline) => {
                    // Silence while the node does not read is not the peer's.
                    if reader.progress() == heard && !reader.is_waiting_for_budget() {
                        return Closed::Idle;
                    }
                    heard = reader.progress();
                    idle_deadline = Instant::now() + idle;
                    Ok(())
                }
            };
            if let Err(closed) = step {
                return closed;
            }
            if let Err(closed) = self.process().await {
                return closed;
            }
        }
    }

    /// Handles one frame. Records messages of [`BLOCKING_RECORDS`] or more
    /// records are handled on a blocking thread: checking them verifies
    /// every signature and payload, which must not hold up an async worker.
    async fn on_frame(&mut self, frame: &[u8]) -> Result<(), Closed> {
        let now = self.now();
        let message = match Message::decode(frame) {
            Ok(message) => message,
            Err(_) => {
                // Decodes again to disconnect with the decoder's reason.
                self.sync.handle_frame(frame, now);
                return Ok(());
            }
        };
        tracing::trace!(peer = %self.peer, kind = message.kind(), len = frame.len(), "received");
        let tracks_clock = matches!(message, Message::Clock { .. } | Message::Records { .. });
        if matches!(&message, Message::Records { records } | Message::Chunk { records, .. }
            if records.len() >= BLOCKING_RECORDS)
        {
            let mut sync = std::mem::take(&mut self.sync);
            self.sync = tokio::task::spawn_blocking(move || {
                sync.handle_message(message, now);
                sync
            })
            .await
            .map_err(|error| StoreError::Backend(format!("verification task failed: {error}")))?;
        } else {
            self.sync.handle_message(message, now);
        }
        if tracks_clock && !self.sync.is_closed() {
            self.host.peer_clock(self.peer, self.conn, self.sync.peer_clock());
        }
        Ok(())
    }

    async fn on_local(&mut self, event: Result<LocalEvent, broadcast::error::RecvError>) -> Result<(), Closed> {
        let now = self.now();
        match event {
            Ok(LocalEvent::Stored { feed, seq }) => self.sync.local_advanced(feed, seq, now),
            Ok(LocalEvent::Fork(proof)) => self.sync.local_fork(&proof, now),
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                // Events were dropped: the store's clock says everything they did.
                tracing::debug!(peer = %self.peer, missed, "local events lagged; resyncing from the store clock");
                let store = self.store.clone();
                let clock = blocking(move || store.clock()).await?;
                let now = self.now();
                for (feed, seq) in clock {
                    self.sync.local_advanced(feed, seq, now);
                }
                self.resync_forks().await?;
            }
            Err(broadcast::error::RecvError::Closed) => return Err(Closed::Shutdown),
        }
        Ok(())
    }

    /// Starts a fetch the node asked for; refusals are answered at once.
    fn fetch(&mut self, command: FetchCommand) {
        let now = self.now();
        match self.sync.fetch_range(command.feed, command.from, command.to, now) {
            Ok(id) => {
                self.replies.insert(id, command.reply);
            }
            Err(error) => {
                let _ = command.reply.send(Err(error));
            }
        }
    }

    /// Applies the want flags the host changed for this connection.
    fn apply_wants(&mut self) {
        let now = self.now();
        for (feed, want) in self.host.take_wants(self.conn) {
            self.sync.set_want(feed, want, now);
        }
    }

    /// Tells the machine every fork proof the store holds.
    async fn resync_forks(&mut self) -> Result<(), Closed> {
        let store = self.store.clone();
        let forks = blocking(move || store.forks()).await?;
        let now = self.now();
        for proof in &forks {
            self.sync.local_fork(proof, now);
        }
        Ok(())
    }

    /// Executes the machine's actions until it has none.
    async fn process(&mut self) -> Result<(), Closed> {
        while let Some(action) = self.sync.poll_action() {
            match action {
                Action::Store(records) => self.store_records(records).await?,
                Action::Fork(proof) => {
                    // In the order of the actions: after the records before it.
                    self.finish_store().await?;
                    let host = self.host.clone();
                    let proof = *proof;
                    tracing::warn!(peer = %self.peer, feed = %proof.author(), seq = proof.seq(), "fork proof received");
                    blocking(move || host.record_fork(&proof)).await?;
                }
                Action::Stalled {
                    feed,
                    peer_latest,
                    held,
                } => {
                    tracing::info!(peer = %self.peer, %feed, peer_latest, held, "feed stalled on this peer");
                    self.host.stalled(self.conn, feed);
                }
                Action::CheckHead { feed, seq, head } => self.check_head(feed, seq, head).await?,
                Action::Evidence { entry, error } => self.on_evidence(*entry, error.map(|e| *e)).await?,
                Action::Fetched { id, result } => {
                    if let Some(reply) = self.replies.remove(&id) {
                        let _ = reply.send(result);
                    }
                }
                Action::Disconnect(error) => {
                    // Fail the fetches still waiting (the machine reported them).
                    self.replies.clear();
                    tracing::warn!(peer = %self.peer, reason = %error.reason(), %error, "disconnecting peer");
                    return Err(Closed::Protocol(error));
                }
            }
        }
        Ok(())
    }

    /// Compares the head the peer's Clock named with the store's entry at
    /// that seq (§2.2 "Fork evidence"); if they differ, the machine fetches
    /// the peer's entry.
    async fn check_head(&mut self, feed: FeedId, seq: u64, head: Hash) -> Result<(), Closed> {
        let store = self.store.clone();
        let held = blocking(move || store.entry(&feed, seq)).await?;
        if held.is_some_and(|held| held.hash() != head) {
            tracing::info!(peer = %self.peer, %feed, seq, "peer's head differs from ours; fetching it");
            self.sync.head_differs(feed, seq, self.now());
        }
        Ok(())
    }

    /// Compares the peer's entry with the store's at the same seq (§2.2
    /// "Fork evidence"): if they differ, records the fork proof (the host
    /// publishes it to every connection, this one included); if the store
    /// holds the same entry, the peer's record chained to nothing: it is
    /// disconnected for the refused record's rule (a head check, without
    /// one, does nothing).
    async fn on_evidence(&mut self, entry: Entry, error: Option<ValidationError>) -> Result<(), Closed> {
        let (feed, seq) = (entry.author(), entry.seq());
        let store = self.store.clone();
        let held = blocking(move || store.entry(&feed, seq)).await?;
        let Some(proof) = held.and_then(|held| ForkProof::new(held, entry).ok()) else {
            let Some(error) = error else {
                return Ok(());
            };
            let error = ProtocolError::InvalidEntry {
                feed,
                seq: seq + 1,
                error: Box::new(error),
            };
            tracing::warn!(peer = %self.peer, reason = %error.reason(), %error, "disconnecting peer");
            return Err(Closed::Protocol(error));
        };
        tracing::warn!(peer = %self.peer, %feed, seq, "fork found from a peer's entry");
        let host = self.host.clone();
        Ok(blocking(move || host.record_fork(&proof)).await?)
    }

    /// Starts appending verified records through the host on a blocking
    /// thread, after the previous batch's append has finished and its outcome
    /// was told to the machine (one batch in flight per connection, so batches
    /// are appended in order). The driver goes on reading and verifying the
    /// next message while this one is committed.
    async fn store_records(&mut self, records: Vec<Verified>) -> Result<(), Closed> {
        self.finish_store().await?;
        if records.is_empty() || self.sync.is_closed() {
            // A refused earlier batch closed the machine: nothing after it is stored.
            return Ok(());
        }
        let host = self.host.clone();
        let peer = self.peer;
        self.storing = Some(tokio::task::spawn_blocking(move || append_all(&*host, records, peer)));
        Ok(())
    }

    /// Waits for the batch being appended, if any, and tells the machine
    /// what became of it, in the order it happened.
    async fn finish_store(&mut self) -> Result<(), Closed> {
        match self.storing.take() {
            Some(task) => {
                let outcomes = task.await;
                self.on_stored(outcomes).await
            }
            None => Ok(()),
        }
    }

    /// Tells the machine the outcomes of one batch's append.
    async fn on_stored(&mut self, outcomes: Result<Vec<StoreOutcome>, JoinError>) -> Result<(), Closed> {
        let outcomes = outcomes.map_err(|error| StoreError::Backend(format!("blocking task failed: {error}")))?;
        for outcome in outcomes {
            let now = self.now();
            match outcome {
                StoreOutcome::Advanced(heads) => {
                    for (feed, seq) in heads {
                        self.sync.local_advanced(feed, seq, now);
                    }
                }
                StoreOutcome::Refused { feed, seq, error } => self.sync.store_refused(feed, seq, error, now),
                StoreOutcome::Fork(proof) => {
                    tracing::warn!(peer = %self.peer, feed = %proof.author(), seq = proof.seq(), "fork detected");
                    self.sync.local_fork(&proof, now);
                }
                StoreOutcome::Frozen => self.resync_forks().await?,
                StoreOutcome::Failed(error) => return Err(Closed::Store(error)),
            }
        }
        Ok(())
    }

    /// Puts the next message into the outbox: a message of the machine
    /// first (clocks, requests, fork proofs), then the current chunk's
    /// Records, then a new chunk read from the store.
    async fn send_next(&mut self, outbox: &Outbox) -> Result<(), Closed> {
        if let Some(mut message) = self.peeked.take() {
            if matches!(message, Message::Clock { .. }) {
                let store = self.store.clone();
                message = blocking(move || {
                    message.fill_heads(|feed, seq| head_hash(&*store, feed, seq))?;
                    Ok(message)
                })
                .await?;
            }
            return outbox.send(message.encode());
        }
        if let Some(Serve { id, feed, from, to }) = self.sync.next_serve() {
            // The Chunk holds every record received before the Fetch.
            self.finish_store().await?;
            let store = self.store.clone();
            let allowance = outbox.allowance();
            let chunk = blocking(move || serve_fetch(&*store, id, feed, from, to, allowance)).await?;
            return outbox.send(chunk.encode());
        }
        let taken = self.sync.take_sends(MAX_RECORDS_PER_MESSAGE);
        if taken.is_empty() {
            return Ok(());
        }
        let store = self.store.clone();
        let allowance = outbox.allowance();
        let (records, unread) = blocking(move || read_ranges(&*store, taken, allowance)).await?;
        self.sync.unsent(unread);
        // One message by construction (the read's bounds are a message's).
        for message in pack_records(records) {
            outbox.send(message.encode())?;
        }
        Ok(())
    }
}

/// The hash of the store's entry `seq` of `feed`, for a Clock line's head.
fn head_hash(store: &dyn Store, feed: FeedId, seq: u64) -> Result<Hash, StoreError> {
    match store.entry(&feed, seq)? {
        Some(entry) => Ok(entry.hash()),
        None => Err(StoreError::Corrupt(format!(
            "{feed} announced up to {seq}, which the store lacks"
        ))),
    }
}
