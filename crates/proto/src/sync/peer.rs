//! The per-peer replication state machine (spec/PROTOCOL.md §2.2).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::feed::{
    Entry, FeedId, ForkProof, Hash, ValidationError, Verified, assume_verified, certificate_path, check_payload,
    check_successor, verify_chain, verify_prefix,
};

use super::message::{ClockEntry, MAX_FEEDS_PER_CLOCK, MAX_FETCH_RANGE, Message, MessageError, WireRecord};
use super::sends::{MAX_PENDING_RANGES, Range, SendQueue};

/// How long a feed may stay behind a peer that claims more of it, with no
/// record of it arriving, before [`Action::Stalled`] is reported (ms).
pub const STALL_TIMEOUT_MS: u64 = 30_000;
/// The most feeds a peer may mention in one connection; one more is a
/// protocol violation ([`ProtocolError::TooManyFeeds`]).
pub const MAX_FEEDS_PER_PEER: usize = 65_536;
/// The most actions a machine holds undrained. A peer whose messages would
/// queue more is disconnected ([`ProtocolError::Flooding`]). Above what one
/// Clock message can cause (one CheckHead per feed listed).
pub const MAX_QUEUED_ACTIONS: usize = 4 * MAX_FEEDS_PER_CLOCK;
/// The most fetches ([`PeerSync::fetch_range`]) outstanding at once on one
/// connection, on each side: the asker refuses more
/// ([`FetchError::TooMany`]); a responder disconnects a peer with more
/// Fetch messages unanswered ([`ProtocolError::Flooding`]; the machine
/// counts them until [`PeerSync::next_serve`] hands them out).
pub const MAX_FETCHES_PER_PEER: usize = 16;
/// How long a fetch waits for its Chunk before it fails with
/// [`FetchError::TimedOut`] (ms). A Chunk arriving later is unasked.
pub const FETCH_TIMEOUT_MS: u64 = 30_000;

/// What a peer did wrong. Every variant disconnects it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A frame did not decode as a message (garbage, oversized, non-canonical,
    /// an entry that breaks V1–V5, a fork proof that proves nothing).
    #[error("bad message: {0}")]
    Malformed(#[from] MessageError),
    /// A record broke a validation rule (signature, payload, or chain).
    #[error("invalid entry {feed} seq {seq}: rule {}: {error}", .error.rule())]
    InvalidEntry {
        /// The entry's feed.
        feed: FeedId,
        /// The entry's sequence number.
        seq: u64,
        /// The rule it broke.
        error: Box<ValidationError>,
    },
    /// Records of a feed that this side neither wants nor requested.
    #[error("records of {feed} (seq {seq}) that were not asked for")]
    Unrequested {
        /// The feed.
        feed: FeedId,
        /// The first such record's sequence number.
        seq: u64,
    },
    /// A record does not extend what this side holds or what the peer sent
    /// before it: a gap, or out of order within a message.
    #[error("record {feed} seq {found} out of order: expected at most {expected}")]
    OutOfOrder {
        /// The feed.
        feed: FeedId,
        /// The highest sequence number acceptable at that point.
        expected: u64,
        /// The record's sequence number.
        found: u64,
    },
    /// A record without its payload.
    #[error("record {feed} seq {seq} without its payload")]
    MissingPayload {
        /// The feed.
        feed: FeedId,
        /// The record's sequence number.
        seq: u64,
    },
    /// The peer mentioned more feeds than [`MAX_FEEDS_PER_PEER`].
    #[error("more than {max} feeds")]
    TooManyFeeds {
        /// The limit.
        max: usize,
    },
    /// The peer claims more of this node's own feed than the node has
    /// written ([`PeerSync::set_own`]): nobody can hold more of a feed than
    /// its author, so the claim is false (and would count as an
    /// acknowledgement).
    #[error("claims {feed} up to {claimed}, but its author wrote {held}")]
    FalseClaim {
        /// The node's own feed.
        feed: FeedId,
        /// What the peer claimed.
        claimed: u64,
        /// What the node has written.
        held: u64,
    },
    /// The peer's messages queued more than [`MAX_QUEUED_ACTIONS`] actions,
    /// [`MAX_PENDING_RANGES`] ranges to send, or [`MAX_FETCHES_PER_PEER`]
    /// Fetches to answer.
    #[error("more than {max} queued")]
    Flooding {
        /// The limit.
        max: usize,
    },
    /// A Chunk whose id is not that of an outstanding fetch (never asked,
    /// already answered, or timed out).
    #[error("chunk {id} that was not asked for")]
    UnaskedChunk {
        /// The Chunk's id.
        id: u64,
    },
    /// A Chunk whose shape breaks §2.1 for the Fetch it answers: another
    /// feed, a certificate path other than that of `from`, a path entry with
    /// its payload, a range not starting at `from`, not contiguous, past `to`
    /// or without payloads, or a `latest` below what it sent.
    #[error("chunk {id} malformed: {what}")]
    BadChunk {
        /// The Chunk's id.
        id: u64,
        /// What is wrong.
        what: &'static str,
    },
    /// A Chunk entry broke a validation rule (signature, payload, link or
    /// timestamp; checked with [`verify_chain`] and the payload rules).
    #[error("chunk {id}: invalid entry seq {seq}: rule {}: {error}", .error.rule())]
    InvalidChunk {
        /// The Chunk's id.
        id: u64,
        /// The failing entry's sequence number.
        seq: u64,
        /// The rule it broke.
        error: Box<ValidationError>,
    },
}

impl ProtocolError {
    /// A short, stable name of the violation, for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            ProtocolError::Malformed(_) => "malformed",
            ProtocolError::InvalidEntry { .. } => "invalid-entry",
            ProtocolError::Unrequested { .. } => "unrequested",
            ProtocolError::OutOfOrder { .. } => "out-of-order",
            ProtocolError::MissingPayload { .. } => "missing-payload",
            ProtocolError::TooManyFeeds { .. } => "too-many-feeds",
            ProtocolError::FalseClaim { .. } => "false-claim",
            ProtocolError::Flooding { .. } => "flooding",
            ProtocolError::UnaskedChunk { .. } => "unasked-chunk",
            ProtocolError::BadChunk { .. } => "bad-chunk",
            ProtocolError::InvalidChunk { .. } => "invalid-chunk",
        }
    }
}

/// Why [`PeerSync::request_range`] refused to ask.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// `from` is 0 or after `to`.
    #[error("empty range")]
    EmptyRange,
    /// The range starts after the entry following what is held: its records
    /// could not be chained to the held prefix (mid-feed fetches with
    /// certificate paths are not supported yet).
    #[error("range starts at {from}, after the next entry held ({next})")]
    Gap {
        /// The requested start.
        from: u64,
        /// The next sequence number this side can take.
        next: u64,
    },
    /// A request for this feed is already outstanding on this connection.
    #[error("a request for this feed is outstanding")]
    Outstanding,
    /// The feed is frozen by a fork proof.
    #[error("feed frozen by a fork")]
    Frozen,
    /// The connection is closed.
    #[error("connection closed")]
    Closed,
}

/// Why a fetch ([`PeerSync::fetch_range`]) was refused or failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// `from` is 0, after `to`, or `to` is past the largest sequence number.
    #[error("empty range")]
    EmptyRange,
    /// The range is longer than [`MAX_FETCH_RANGE`].
    #[error("range longer than {max} entries")]
    TooLong {
        /// The limit.
        max: u64,
    },
    /// [`MAX_FETCHES_PER_PEER`] fetches are outstanding on this connection.
    #[error("more than {max} fetches outstanding")]
    TooMany {
        /// The limit.
        max: usize,
    },
    /// No Chunk arrived within [`FETCH_TIMEOUT_MS`].
    #[error("no answer within {FETCH_TIMEOUT_MS} ms")]
    TimedOut,
    /// The connection is closed (or closed before the answer arrived; an
    /// answer that did not verify closes it, with no data).
    #[error("connection closed")]
    Closed,
}

/// A verified answer to a fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The feed.
    pub feed: FeedId,
    /// Entries `from..=end` with their payloads, verified against entry 1 of
    /// the feed through the certificate path of `from`. Empty when the peer
    /// holds no entry `from`; shorter than asked when the peer's feed ends
    /// before `to` (then the last is entry `latest`) or the answer was cut to
    /// fit one frame (ask again from the entry after the last).
    pub records: Vec<Verified>,
    /// The latest sequence number of the feed the peer holds.
    pub latest: u64,
}

/// What the driver must do for the machine. Drained with
/// [`PeerSync::poll_action`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Records received from the peer and verified (signatures, payloads, and
    /// the links between them): append them to the store in one call, then
    /// report what was stored with [`PeerSync::local_advanced`] to every peer
    /// of the node, this one included. If the store refuses them, call
    /// [`PeerSync::store_refused`] (or [`PeerSync::local_fork`] on a fork).
    Store(Vec<Verified>),
    /// The peer sent a valid fork proof: record it in the store and pass it to
    /// every other peer with [`PeerSync::local_fork`]. This machine already
    /// treats the feed as frozen.
    Fork(Box<ForkProof>),
    /// The peer claims entries of `feed` beyond what this side holds and has
    /// sent none of them for [`STALL_TIMEOUT_MS`]. Informational: the node may
    /// ask another peer.
    Stalled {
        /// The feed.
        feed: FeedId,
        /// What the peer claims to hold.
        peer_latest: u64,
        /// What this side holds or has received.
        held: u64,
    },
    /// The answer to fetch `id` ([`PeerSync::fetch_range`]) arrived and
    /// verified, or the fetch failed. Never stored: hand it to the asker.
    Fetched {
        /// The fetch's id, as returned by [`PeerSync::fetch_range`].
        id: u64,
        /// The verified chunk, or why there is none.
        result: Result<Fetched, FetchError>,
    },
    /// The store refused a relayed record for V9 (its prev hash is not that
    /// of the entry held before it), so this side asked the peer for its
    /// entry `seq - 1`, or the peer's Clock named a head other than the
    /// store's entry at that seq ([`PeerSync::head_differs`]), so this side
    /// asked for that entry (§2.2 "Fork evidence"); here it is, signed by the
    /// feed's author and verified from entry 1 of the peer's chain. Compare
    /// it with the store's entry at the same seq: if they differ, build the
    /// [`ForkProof`], record it and pass it on ([`PeerSync::local_fork`]);
    /// if they are the same and `error` is given, the peer sent a record that
    /// chains to nothing it holds: disconnect it
    /// ([`ProtocolError::InvalidEntry`], V9); without `error` (a head check),
    /// do nothing.
    Evidence {
        /// The peer's entry at the seq asked for.
        entry: Box<Entry>,
        /// Why the record was refused, for the disconnect; `None` for a head
        /// check, which never disconnects.
        error: Option<Box<ValidationError>>,
    },
    /// The peer's Clock says its entry `seq` of `feed` has hash `head`, and
    /// this side holds `feed` up to `seq` at least (§2.2 "Fork evidence"):
    /// read the store's entry `seq`; if its hash differs, call
    /// [`PeerSync::head_differs`] (the machine then fetches the peer's entry
    /// and reports it as [`Action::Evidence`]). Never a fault of the peer.
    CheckHead {
        /// The feed.
        feed: FeedId,
        /// The sequence number the peer claims as its latest.
        seq: u64,
        /// The hash of the peer's entry `seq`.
        head: Hash,
    },
    /// Close the connection; the peer broke the protocol. Always the last
    /// action: the machine ignores every input after it.
    Disconnect(ProtocolError),
}

/// A Fetch of the peer to answer ([`PeerSync::next_serve`]): send the Chunk
/// [`serve_fetch`](super::serve_fetch) reads from the store (the entries of
/// [`certificate_path`]`(from)` below `from`, then the held entries
/// `from..=to`, at most [`MAX_FETCH_RANGE`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Serve {
    /// The Fetch's id.
    pub id: u64,
    /// The feed.
    pub feed: FeedId,
    /// First sequence number asked for.
    pub from: u64,
    /// Last sequence number asked for.
    pub to: u64,
}

/// What the peer said about one feed, and what was sent to it.
#[derive(Debug, Clone, Copy, Default)]
struct Remote {
    /// The highest sequence the peer claimed (Clock) or sent (Records).
    latest: u64,
    /// Whether the peer wants this feed from us.
    want: bool,
    /// The highest sequence already queued to be sent ([`PeerSync::take_sends`]).
    sent: u64,
    /// The latest head the peer's Clock named: its seq and hash.
    head: Option<(u64, Hash)>,
    /// The highest seq of the peer's head already checked ([`Action::CheckHead`]).
    checked: u64,
}

/// Why this side fetched one entry as fork evidence (§2.2 "Fork evidence").
#[derive(Debug, Clone)]
enum Cause {
    /// The store refused the peer's next record with this error (V9).
    Refused(ValidationError),
    /// The peer's Clock named another head than the store's entry.
    Head,
}

/// A fetch this side sent with [`PeerSync::fetch_range`].
#[derive(Debug, Clone, Copy)]
struct PendingFetch {
    feed: FeedId,
    from: u64,
    to: u64,
    deadline: u64,
}

/// A range this side requested with [`PeerSync::request_range`].
#[derive(Debug, Clone, Copy)]
struct Outstanding {
    from: u64,
    to: u64,
}

/// The replication protocol for one connection, without I/O: messages,
/// local events and timer ticks in; messages and actions out.
///
/// # Call order
///
/// 1. [`PeerSync::new`] once the connection is authenticated, then
///    [`PeerSync::start`] with the store's clock: it queues this side's Clock.
/// 2. Then, in any order, as events happen:
///    [`handle_frame`](PeerSync::handle_frame) (or
///    [`handle_message`](PeerSync::handle_message)) for each frame received;
///    [`local_advanced`](PeerSync::local_advanced) whenever the node stored
///    something new, from any source (including this peer's records);
///    [`handle_timeout`](PeerSync::handle_timeout) when `now` reaches
///    [`poll_timeout`](PeerSync::poll_timeout); and the occasional
///    [`request_range`](PeerSync::request_range),
///    [`local_fork`](PeerSync::local_fork),
///    [`store_refused`](PeerSync::store_refused).
/// 3. After each call, drain [`poll_transmit`](PeerSync::poll_transmit)
///    (send each message) and [`poll_action`](PeerSync::poll_action) (execute
///    each action) until both return `None`. Actions must be executed in
///    order; a Store must be appended before a later one.
/// 4. After [`Action::Disconnect`], drop the connection; every later input is
///    ignored and nothing more is emitted.
///
/// Time is the caller's: every `now` is milliseconds on any monotonic clock.
/// The peer's clock is held in memory only, for this connection.
#[derive(Debug, Default)]
pub struct PeerSync {
    started: bool,
    closed: bool,
    /// Wants only what [`PeerSync::set_want`] says (see [`PeerSync::managed`]).
    managed: bool,
    /// The node's own feed, if told ([`PeerSync::set_own`]).
    own: Option<FeedId>,
    /// What the node holds: from `start` and `local_advanced`.
    local: BTreeMap<FeedId, u64>,
    /// Feeds for which this side has announced want = true.
    wanted: BTreeSet<FeedId>,
    /// Feeds once wanted with [`PeerSync::set_want`]: their records are
    /// still accepted after want = false (they may be in flight).
    accepted: BTreeSet<FeedId>,
    /// The peer's claims, and what was sent to it.
    remote: BTreeMap<FeedId, Remote>,
    /// The last entry the peer delivered per feed (the highest sequence).
    received: BTreeMap<FeedId, Entry>,
    /// Feeds frozen by a fork proof.
    frozen: BTreeSet<FeedId>,
    /// Ranges this side requested and has not fully received.
    requests: BTreeMap<FeedId, Outstanding>,
    /// Feeds whose line of this side's clock must be (re)sent.
    dirty: BTreeSet<FeedId>,
    /// Since when each feed is behind what the peer claims (ms).
    waiting: BTreeMap<FeedId, u64>,
    /// Fetches sent and not answered, by id.
    fetches: BTreeMap<u64, PendingFetch>,
    /// Fetches sent for fork evidence (§2.2 "Fork evidence"), by id: why.
    evidence: BTreeMap<u64, Cause>,
    /// Feeds whose relayed records the store refused for V9 while evidence
    /// is fetched: their further records are dropped.
    suspect: BTreeSet<FeedId>,
    /// The id of the next fetch.
    next_fetch: u64,
    transmit: VecDeque<Message>,
    actions: VecDeque<Action>,
    /// The ranges owed to the peer, read by the driver ([`PeerSync::take_sends`]).
    sends: SendQueue,
    /// The peer's Fetches not yet handed out ([`PeerSync::next_serve`]).
    serves: VecDeque<Serve>,
}

impl PeerSync {
    /// A machine for a new connection; call [`PeerSync::start`] next.
    pub fn new() -> PeerSync {
        PeerSync::default()
    }

    /// A machine for a node that chooses one sender per feed (see
    /// [`ReplicationScheduler`](super::ReplicationScheduler)): it announces
    /// want = 1 only for the feeds [`PeerSync::set_want`] asks for, instead
    /// of every feed it holds or the peer is ahead on. Everything else is as
    /// with [`PeerSync::new`]; in particular a feed is still sent to the peer
    /// only while the peer wants it.
    pub fn managed() -> PeerSync {
        PeerSync {
            managed: true,
            ..PeerSync::default()
        }
    }

    /// Tells the machine which feed is the node's own: a peer claiming more
    /// of it than the node has written (what [`PeerSync::start`] and
    /// [`PeerSync::local_advanced`] reported) is disconnected with
    /// [`ProtocolError::FalseClaim`]. Call it before [`PeerSync::start`].
    pub fn set_own(&mut self, feed: FeedId) {
        self.own = Some(feed);
    }

    /// Changes the want flag this side announces for `feed` (queues a Clock
    /// line when it changes; may be called before [`PeerSync::start`]).
    /// want = 1 asks the peer to send the feed after what this side holds and
    /// keep pushing it; want = 0 asks it to stop, and records of the feed
    /// already in flight are still accepted. A frozen feed is never wanted.
    /// On a machine made with [`PeerSync::new`] the automatic rules may want
    /// the feed again.
    pub fn set_want(&mut self, feed: FeedId, want: bool, now: u64) {
        if self.closed {
            return;
        }
        let changed = if want && !self.frozen.contains(&feed) {
            self.accepted.insert(feed);
            self.wanted.insert(feed)
        } else {
            self.wanted.remove(&feed)
        };
        if changed {
            self.dirty.insert(feed);
            self.refresh_waiting(feed, now);
        }
    }

    /// Starts replication: records what the node holds (feed → latest
    /// sequence) and queues this side's Clock, wanting every feed listed
    /// (with [`PeerSync::managed`], only those [`PeerSync::set_want`] asked for).
    /// Calling it again does nothing.
    pub fn start(&mut self, local_clock: &BTreeMap<FeedId, u64>, now: u64) {
        if self.started || self.closed {
            return;
        }
        self.started = true;
        for (&feed, &latest) in local_clock {
            let held = self.local.entry(feed).or_insert(0);
            *held = (*held).max(latest);
            if !self.managed && !self.frozen.contains(&feed) {
                self.wanted.insert(feed);
            }
            self.dirty.insert(feed);
        }
        if self.dirty.is_empty() {
            // Say hello even with nothing to offer.
            self.transmit.push_back(Message::Clock { feeds: Vec::new() });
        }
        let feeds: Vec<FeedId> = self.local.keys().copied().collect();
        for feed in feeds {
            self.pump(feed);
            self.refresh_waiting(feed, now);
        }
    }

    /// Decodes one frame and handles it; a frame that does not decode
    /// disconnects the peer with [`ProtocolError::Malformed`].
    pub fn handle_frame(&mut self, frame: &[u8], now: u64) {
        if self.closed {
            return;
        }
        match Message::decode(frame) {
            Ok(message) => self.handle_message(message, now),
            Err(error) => self.disconnect(ProtocolError::Malformed(error)),
        }
    }

    /// Handles one message from the peer.
    pub fn handle_message(&mut self, message: Message, now: u64) {
        if self.closed {
            return;
        }
        match message {
            Message::Clock { feeds } => self.on_clock(feeds, now),
            Message::Records { records } => self.on_records(records, now),
            Message::Request { feed, from, to } => self.on_request(feed, from, to),
            Message::Fetch { id, feed, from, to } => self.on_fetch(Serve { id, feed, from, to }),
            Message::Chunk {
                id,
                feed,
                latest,
                records,
            } => self.on_chunk(id, feed, latest, records),
            Message::Fork { proof } => {
                let feed = proof.author();
                if self.frozen.insert(feed) {
                    self.freeze(feed);
                    self.push_action(Action::Fork(proof));
                }
            }
        }
    }

    /// The node stored entries of `feed` up to `seq` (from any source).
    /// Announces the new latest to the peer (its acknowledgement channel) and
    /// sends it what it lacks, if it wants the feed.
    pub fn local_advanced(&mut self, feed: FeedId, seq: u64, now: u64) {
        if self.closed {
            return;
        }
        let held = self.local.entry(feed).or_insert(0);
        if seq <= *held {
            return;
        }
        *held = seq;
        if !self.managed && !self.frozen.contains(&feed) {
            self.wanted.insert(feed);
        }
        self.dirty.insert(feed);
        if let Some(Outstanding { to, .. }) = self.requests.get(&feed)
            && seq >= *to
        {
            self.requests.remove(&feed);
        }
        self.pump(feed);
        self.refresh_waiting(feed, now);
        self.check_head(feed);
    }

    /// The store's entry `seq` of `feed` is not the one the peer's Clock
    /// named ([`Action::CheckHead`]): fetches the peer's entry `seq` as fork
    /// evidence, reported as [`Action::Evidence`] without an error. Does
    /// nothing if the feed is frozen, a fork-evidence fetch of it is
    /// outstanding, or no fetch slot is free (a later Clock line retries).
    pub fn head_differs(&mut self, feed: FeedId, seq: u64, now: u64) {
        if self.closed || self.frozen.contains(&feed) || self.evidence_outstanding(feed) {
            return;
        }
        match self.fetch_range(feed, seq, seq, now) {
            Ok(id) => {
                self.evidence.insert(id, Cause::Head);
            }
            Err(_) => {
                if let Some(remote) = self.remote.get_mut(&feed) {
                    remote.checked = remote.checked.min(seq.saturating_sub(1));
                }
            }
        }
    }

    /// Asks the peer for entries `from..=to` of `feed`. `from` may be at most
    /// one past what this side holds, so the records chain onto it.
    pub fn request_range(&mut self, feed: FeedId, from: u64, to: u64, _now: u64) -> Result<(), RequestError> {
        if self.closed {
            return Err(RequestError::Closed);
        }
        if from == 0 || from > to {
            return Err(RequestError::EmptyRange);
        }
        if self.frozen.contains(&feed) {
            return Err(RequestError::Frozen);
        }
        let next = self.known(&feed).saturating_add(1);
        if from > next {
            return Err(RequestError::Gap { from, next });
        }
        if self.requests.contains_key(&feed) {
            return Err(RequestError::Outstanding);
        }
        self.requests.insert(feed, Outstanding { from, to });
        self.transmit.push_back(Message::Request { feed, from, to });
        Ok(())
    }

    /// Asks the peer for entries `from..=to` of `feed` with the certificate
    /// path of `from`, whatever this side holds of the feed: the answer is
    /// verified against entry 1 and reported as [`Action::Fetched`] with the
    /// returned id, never stored. Fails after [`FETCH_TIMEOUT_MS`]; at most
    /// [`MAX_FETCHES_PER_PEER`] outstanding, at most [`MAX_FETCH_RANGE`]
    /// entries each.
    pub fn fetch_range(&mut self, feed: FeedId, from: u64, to: u64, now: u64) -> Result<u64, FetchError> {
        if self.closed {
            return Err(FetchError::Closed);
        }
        if from == 0 || from > to || to > crate::feed::MAX_SEQ {
            return Err(FetchError::EmptyRange);
        }
        if to - from >= MAX_FETCH_RANGE {
            return Err(FetchError::TooLong { max: MAX_FETCH_RANGE });
        }
        if self.fetches.len() >= super::MAX_FETCHES_PER_PEER {
            return Err(FetchError::TooMany {
                max: super::MAX_FETCHES_PER_PEER,
            });
        }
        let id = self.next_fetch;
        self.next_fetch += 1;
        self.fetches.insert(
            id,
            PendingFetch {
                feed,
                from,
                to,
                deadline: now.saturating_add(FETCH_TIMEOUT_MS),
            },
        );
        self.transmit.push_back(Message::Fetch { id, feed, from, to });
        Ok(id)
    }

    /// The node found (or was given) a fork proof: freeze the feed on this
    /// connection and pass the proof on to the peer.
    pub fn local_fork(&mut self, proof: &ForkProof, _now: u64) {
        if self.closed || !self.frozen.insert(proof.author()) {
            return;
        }
        self.freeze(proof.author());
        self.transmit.push_back(Message::Fork {
            proof: Box::new(proof.clone()),
        });
    }

    /// The store refused records of a [`Action::Store`] from this peer:
    /// disconnects it, naming the rule, except for V9 (the record does not
    /// chain to the entry the store holds before it): that is possible fork
    /// evidence, not the relay's fault, so this side fetches the peer's entry
    /// `seq - 1` and reports it as [`Action::Evidence`] (§2.2 "Fork
    /// evidence"); until then, further records of the feed are dropped.
    pub fn store_refused(&mut self, feed: FeedId, seq: u64, error: ValidationError, now: u64) {
        if self.closed {
            return;
        }
        if matches!(error, ValidationError::PrevHashMismatch { .. })
            && seq > 1
            && let Ok(id) = self.fetch_range(feed, seq - 1, seq - 1, now)
        {
            self.evidence.insert(id, Cause::Refused(error));
            self.suspect.insert(feed);
            self.received.remove(&feed);
            self.requests.remove(&feed);
            self.waiting.remove(&feed);
            return;
        }
        self.disconnect(ProtocolError::InvalidEntry {
            feed,
            seq,
            error: Box::new(error),
        });
    }

    /// Reports feeds that stalled (see [`Action::Stalled`]) and fails the
    /// fetches that timed out ([`FetchError::TimedOut`]).
    pub fn handle_timeout(&mut self, now: u64) {
        if self.closed {
            return;
        }
        let expired: Vec<u64> = self
            .fetches
            .iter()
            .filter(|(_, f)| now >= f.deadline)
            .map(|(&id, _)| id)
            .collect();
        for id in expired {
            let fetch = self.fetches.remove(&id);
            match (self.evidence.remove(&id), fetch) {
                // No evidence in time: the relay is blamed after all.
                (Some(Cause::Refused(error)), Some(fetch)) => {
                    return self.on_evidence(fetch.feed, fetch.from, Vec::new(), Cause::Refused(error));
                }
                // A head check that got no answer proves nothing.
                (Some(Cause::Head), _) => continue,
                _ => {}
            }
            self.push_action(Action::Fetched {
                id,
                result: Err(FetchError::TimedOut),
            });
        }
        let due: Vec<FeedId> = self
            .waiting
            .iter()
            .filter(|&(_, &since)| now >= since.saturating_add(STALL_TIMEOUT_MS))
            .map(|(&feed, _)| feed)
            .collect();
        for feed in due {
            self.waiting.insert(feed, now);
            let peer_latest = self.remote.get(&feed).map_or(0, |r| r.latest);
            let held = self.known(&feed);
            self.push_action(Action::Stalled {
                feed,
                peer_latest,
                held,
            });
        }
    }

    /// When [`PeerSync::handle_timeout`] should next be called, if ever.
    pub fn poll_timeout(&self) -> Option<u64> {
        if self.closed {
            return None;
        }
        let stall = self
            .waiting
            .values()
            .map(|since| since.saturating_add(STALL_TIMEOUT_MS))
            .min();
        let fetch = self.fetches.values().map(|f| f.deadline).min();
        match (stall, fetch) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next message to send to the peer.
    pub fn poll_transmit(&mut self) -> Option<Message> {
        if self.closed {
            return None;
        }
        if let Some(message) = self.transmit.pop_front() {
            return Some(message);
        }
        if self.dirty.is_empty() {
            return None;
        }
        let mut feeds = Vec::with_capacity(self.dirty.len().min(MAX_FEEDS_PER_CLOCK));
        while feeds.len() < MAX_FEEDS_PER_CLOCK {
            let Some(feed) = self.dirty.pop_first() else { break };
            feeds.push(ClockEntry {
                feed,
                latest: self.local.get(&feed).copied().unwrap_or(0),
                want: self.wanted.contains(&feed) && !self.frozen.contains(&feed),
                frozen: self.frozen.contains(&feed),
                head: None,
            });
        }
        Some(Message::Clock { feeds })
    }

    /// The next action for the driver.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// What the peer holds, as far as this side knows: the latest sequence
    /// per feed it claimed in a Clock or sent in Records. Memory only.
    pub fn peer_clock(&self) -> BTreeMap<FeedId, u64> {
        self.remote
            .iter()
            .filter(|(_, r)| r.latest > 0)
            .map(|(&feed, r)| (feed, r.latest))
            .collect()
    }

    /// The latest sequence of `feed` the peer holds, as far as this side knows.
    pub fn peer_latest(&self, feed: &FeedId) -> u64 {
        self.remote.get(feed).map_or(0, |r| r.latest)
    }

    /// Whether the machine disconnected the peer.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Whether the peer is owed records or a Chunk
    /// ([`PeerSync::take_sends`], [`PeerSync::next_serve`]).
    pub fn owes(&self) -> bool {
        !self.serves.is_empty() || !self.sends.is_empty()
    }

    /// The next Fetch of the peer to answer, oldest first: send the Chunk
    /// [`serve_fetch`](super::serve_fetch) reads. Once handed out it no
    /// longer counts toward [`MAX_FETCHES_PER_PEER`].
    pub fn next_serve(&mut self) -> Option<Serve> {
        self.serves.pop_front()
    }

    /// The next ranges owed to the peer, `max_records` entries in all, for
    /// one Records message ([`read_ranges`](super::read_ranges)): whole
    /// ranges from the front (each feed's next range, feeds in turn), the
    /// last one cut. Give back what the read left with
    /// [`PeerSync::unsent`].
    pub fn take_sends(&mut self, max_records: usize) -> Vec<Range> {
        self.sends.take(max_records)
    }

    /// Puts ranges (or rests of ranges) taken with
    /// [`PeerSync::take_sends`] and not read back in front, in their order.
    pub fn unsent(&mut self, ranges: Vec<Range>) {
        for (feed, from, to) in ranges.into_iter().rev() {
            self.sends.push_front(feed, from, to);
        }
    }

    /// The highest sequence of `feed` this side holds or has accepted from
    /// the peer (those may still be on their way into the store).
    fn known(&self, feed: &FeedId) -> u64 {
        let held = self.local.get(feed).copied().unwrap_or(0);
        let received = self.received.get(feed).map_or(0, Entry::seq);
        held.max(received)
    }

    fn on_clock(&mut self, feeds: Vec<ClockEntry>, now: u64) {
        for line in feeds {
            let feed = line.feed;
            if self.own == Some(feed) {
                let held = self.local.get(&feed).copied().unwrap_or(0);
                if line.latest > held {
                    return self.disconnect(ProtocolError::FalseClaim {
                        feed,
                        claimed: line.latest,
                        held,
                    });
                }
            }
            if !self.remote.contains_key(&feed) && self.remote.len() >= MAX_FEEDS_PER_PEER {
                return self.disconnect(ProtocolError::TooManyFeeds {
                    max: MAX_FEEDS_PER_PEER,
                });
            }
            let remote = self.remote.entry(feed).or_default();
            if let Some(head) = line.head
                && line.latest >= remote.latest
            {
                remote.head = Some((line.latest, head));
            }
            // Claims only grow within a connection; a lower one is stale.
            remote.latest = remote.latest.max(line.latest);
            remote.want = line.want;
            if self.frozen.contains(&feed) {
                continue;
            }
            self.check_head(feed);
            if !self.managed && line.latest > self.known(&feed) && self.wanted.insert(feed) {
                // A feed this side lacks: ask for it by announcing want = true.
                self.dirty.insert(feed);
            }
            self.pump(feed);
            self.refresh_waiting(feed, now);
        }
    }

    fn on_request(&mut self, feed: FeedId, from: u64, to: u64) {
        if self.frozen.contains(&feed) {
            return;
        }
        let held = self.local.get(&feed).copied().unwrap_or(0);
        if from > held {
            return;
        }
        let to = to.min(held);
        if let Some(remote) = self.remote.get_mut(&feed)
            && remote.want
            && from <= remote.latest.max(remote.sent).saturating_add(1)
        {
            // The answer also covers the live stream up to `to`.
            remote.sent = remote.sent.max(to);
        }
        self.queue_send(feed, from, to);
    }

    /// Queues a Fetch to answer; a peer with more than
    /// [`MAX_FETCHES_PER_PEER`] unanswered is flooding.
    fn on_fetch(&mut self, serve: Serve) {
        if self.serves.len() >= MAX_FETCHES_PER_PEER {
            self.disconnect(ProtocolError::Flooding {
                max: MAX_FETCHES_PER_PEER,
            });
            return;
        }
        self.serves.push_back(serve);
    }

    /// Queues `from..=to` of `feed` to send; a peer whose requests queue
    /// more than [`MAX_PENDING_RANGES`] ranges is flooding.
    fn queue_send(&mut self, feed: FeedId, from: u64, to: u64) {
        if !self.sends.push(feed, from, to) {
            self.disconnect(ProtocolError::Flooding {
                max: MAX_PENDING_RANGES,
            });
        }
    }

    /// Checks a Chunk against the fetch it answers (§2.2 "Fetches"), then
    /// verifies it as one chain from entry 1; on any violation, disconnects
    /// (the fetch fails with [`FetchError::Closed`], with no data).
    fn on_chunk(&mut self, id: u64, feed: FeedId, latest: u64, records: Vec<WireRecord>) {
        let Some(fetch) = self.fetches.remove(&id) else {
            return self.disconnect(ProtocolError::UnaskedChunk { id });
        };
        // Put it back so that the disconnect below fails it.
        self.fetches.insert(id, fetch);
        match check_chunk(id, &fetch, feed, latest, records) {
            Ok(records) => {
                self.fetches.remove(&id);
                if let Some(cause) = self.evidence.remove(&id) {
                    return self.on_evidence(feed, fetch.from, records, cause);
                }
                self.push_action(Action::Fetched {
                    id,
                    result: Ok(Fetched { feed, records, latest }),
                });
            }
            Err(error) => self.disconnect(error),
        }
    }

    /// The answer to a fork-evidence fetch: the peer's entry `seq`; if it
    /// holds none (or sent none in time), a disconnect for a refused record
    /// (it chained to nothing), nothing for a head check.
    fn on_evidence(&mut self, feed: FeedId, seq: u64, records: Vec<Verified>, cause: Cause) {
        let error = match cause {
            Cause::Refused(error) => Some(Box::new(error)),
            Cause::Head => None,
        };
        match (records.into_iter().next(), error) {
            (Some(record), error) => self.push_action(Action::Evidence {
                entry: Box::new(record.entry().clone()),
                error,
            }),
            (None, Some(error)) => self.disconnect(ProtocolError::InvalidEntry {
                feed,
                seq: seq + 1,
                error,
            }),
            (None, None) => {}
        }
    }

    /// Whether a fork-evidence fetch of `feed` is outstanding.
    fn evidence_outstanding(&self, feed: FeedId) -> bool {
        self.evidence
            .keys()
            .any(|id| self.fetches.get(id).is_some_and(|fetch| fetch.feed == feed))
    }

    /// Asks the driver to compare the peer's latest head of `feed` with the
    /// store's entry at that seq, once per seq, when this side holds it and
    /// no fork-evidence fetch of the feed is outstanding (§2.2 "Fork
    /// evidence").
    fn check_head(&mut self, feed: FeedId) {
        if self.frozen.contains(&feed) || self.evidence_outstanding(feed) {
            return;
        }
        let held = self.local.get(&feed).copied().unwrap_or(0);
        let Some(remote) = self.remote.get_mut(&feed) else {
            return;
        };
        let Some((seq, head)) = remote.head else {
            return;
        };
        if seq > held || seq <= remote.checked {
            return;
        }
        remote.checked = seq;
        self.push_action(Action::CheckHead { feed, seq, head });
    }

    /// Checks a Records message completely before anything of it takes
    /// effect: on any violation, disconnect and store none of it.
    ///
    /// Order of checks: first the protocol rules that need no cryptography
    /// (payload present, feed asked for, sequence order), over the whole
    /// message; then signatures and payloads (batched); then the links
    /// between records, up to the first record whose signature or payload
    /// failed, so that the error reported is the earliest record's.
    fn on_records(&mut self, records: Vec<WireRecord>, now: u64) {
        let records: Vec<WireRecord> = records
            .into_iter()
            .filter(|(entry, _)| !self.frozen.contains(&entry.author()) && !self.suspect.contains(&entry.author()))
            .collect();
        if let Err(error) = self.check_order(&records) {
            return self.disconnect(error);
        }
        if records.is_empty() {
            return;
        }
        let positions: Vec<(FeedId, u64)> = records.iter().map(|(e, _)| (e.author(), e.seq())).collect();
        let (verified, failure) = verify_prefix(records);
        if let Err(error) = self.check_links(&verified) {
            return self.disconnect(error);
        }
        if let Some(failure) = failure {
            let (feed, seq) = positions.get(failure.index).copied().unwrap_or((FeedId([0; 32]), 0));
            return self.disconnect(ProtocolError::InvalidEntry {
                feed,
                seq,
                error: Box::new(failure.error),
            });
        }
        let mut touched = BTreeSet::new();
        for record in &verified {
            let entry = record.entry();
            let feed = entry.author();
            touched.insert(feed);
            if entry.seq() > self.received.get(&feed).map_or(0, Entry::seq) {
                self.received.insert(feed, entry.clone());
            }
            let remote = self.remote.entry(feed).or_default();
            remote.latest = remote.latest.max(entry.seq());
            if let Some(Outstanding { to, .. }) = self.requests.get(&feed)
                && entry.seq() >= *to
            {
                self.requests.remove(&feed);
            }
        }
        for feed in touched {
            // Progress: restart the stall timer (or stop it).
            self.waiting.remove(&feed);
            self.refresh_waiting(feed, now);
        }
        self.push_action(Action::Store(verified));
    }

    /// The protocol rules of §2.2 for a Records message: every record has its
    /// payload, belongs to a wanted or requested feed, and follows what this
    /// side holds or has received (the first record of a feed in the message)
    /// or the record of its feed before it (the others).
    fn check_order(&self, records: &[WireRecord]) -> Result<(), ProtocolError> {
        let mut last: BTreeMap<FeedId, u64> = BTreeMap::new();
        for (entry, payload) in records {
            let (feed, seq) = (entry.author(), entry.seq());
            if payload.is_none() {
                return Err(ProtocolError::MissingPayload { feed, seq });
            }
            let requested = self.requests.get(&feed).is_some_and(|r| (r.from..=r.to).contains(&seq));
            if !self.wanted.contains(&feed) && !self.accepted.contains(&feed) && !requested {
                return Err(ProtocolError::Unrequested { feed, seq });
            }
            let (expected, ok) = match last.get(&feed) {
                Some(&prev) => (prev + 1, seq == prev + 1),
                None => {
                    let next = self.known(&feed).saturating_add(1);
                    (next, seq <= next)
                }
            };
            if !ok {
                return Err(ProtocolError::OutOfOrder {
                    feed,
                    expected,
                    found: seq,
                });
            }
            last.insert(feed, seq);
        }
        Ok(())
    }

    /// Rules V7–V9 and V11 between consecutive records of a feed, and between
    /// the first of them and the last entry the peer sent before.
    fn check_links(&self, records: &[Verified]) -> Result<(), ProtocolError> {
        let mut last: BTreeMap<FeedId, &Entry> = BTreeMap::new();
        for record in records {
            let entry = record.entry();
            let (feed, seq) = (entry.author(), entry.seq());
            let previous = match last.get(&feed) {
                Some(prev) => Some(*prev),
                None => self.received.get(&feed).filter(|held| held.seq() + 1 == seq),
            };
            if let Some(prev) = previous {
                check_successor(prev, entry).map_err(|error| ProtocolError::InvalidEntry {
                    feed,
                    seq,
                    error: Box::new(error),
                })?;
            }
            last.insert(feed, entry);
        }
        Ok(())
    }

    /// Schedules sending the peer what it lacks of `feed`, if it wants it.
    fn pump(&mut self, feed: FeedId) {
        if self.frozen.contains(&feed) {
            return;
        }
        let held = self.local.get(&feed).copied().unwrap_or(0);
        let Some(remote) = self.remote.get_mut(&feed) else {
            return;
        };
        if !remote.want {
            return;
        }
        let base = remote.latest.max(remote.sent);
        if held > base {
            remote.sent = held;
            self.queue_send(feed, base + 1, held);
        }
    }

    /// Starts or stops the stall timer of `feed`.
    fn refresh_waiting(&mut self, feed: FeedId, now: u64) {
        let behind = !self.frozen.contains(&feed)
            && self.wanted.contains(&feed)
            && self.remote.get(&feed).is_some_and(|r| r.latest > self.known(&feed));
        if behind {
            self.waiting.entry(feed).or_insert(now);
        } else {
            self.waiting.remove(&feed);
        }
    }

    fn freeze(&mut self, feed: FeedId) {
        self.suspect.remove(&feed);
        self.wanted.remove(&feed);
        self.waiting.remove(&feed);
        self.requests.remove(&feed);
        self.sends.forget(&feed);
        self.dirty.insert(feed);
    }

    fn push_action(&mut self, action: Action) {
        if self.actions.len() >= MAX_QUEUED_ACTIONS {
            return self.disconnect(ProtocolError::Flooding {
                max: MAX_QUEUED_ACTIONS,
            });
        }
        self.actions.push_back(action);
    }

    fn disconnect(&mut self, error: ProtocolError) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.transmit.clear();
        self.dirty.clear();
        self.waiting.clear();
        for id in std::mem::take(&mut self.fetches).into_keys() {
            self.actions.push_back(Action::Fetched {
                id,
                result: Err(FetchError::Closed),
            });
        }
        self.actions.push_back(Action::Disconnect(error));
    }
}

/// The rules of §2.2 for a Chunk answering `fetch`: shape first, then every
/// payload of the range, then [`verify_chain`] over path and range together
/// (signatures, links, timestamps), which must hang off entry 1. Returns the
/// range's records.
fn check_chunk(
    id: u64,
    fetch: &PendingFetch,
    feed: FeedId,
    latest: u64,
    mut records: Vec<WireRecord>,
) -> Result<Vec<Verified>, ProtocolError> {
    let bad = |what| ProtocolError::BadChunk { id, what };
    if feed != fetch.feed {
        return Err(bad("another feed"));
    }
    if records.is_empty() {
        return if latest < fetch.from {
            Ok(Vec::new())
        } else {
            Err(bad("no records though the peer holds the start"))
        };
    }
    let mut path = certificate_path(fetch.from);
    path.reverse();
    path.pop(); // `from` itself
    if records.len() <= path.len() {
        return Err(bad("certificate path without range"));
    }
    for ((entry, payload), &seq) in records.iter().zip(&path) {
        if entry.author() != feed || entry.seq() != seq {
            return Err(bad("not the certificate path of from"));
        }
        if payload.is_some() {
            return Err(bad("certificate path entry with a payload"));
        }
    }
    let mut expected = fetch.from;
    for (entry, payload) in &records[path.len()..] {
        if entry.author() != feed || entry.seq() != expected || expected > fetch.to {
            return Err(bad("range not contiguous from from to at most to"));
        }
        let Some(payload) = payload else {
            return Err(bad("range entry without its payload"));
        };
        check_payload(entry, payload).map_err(|error| ProtocolError::InvalidChunk {
            id,
            seq: entry.seq(),
            error: Box::new(error),
        })?;
        expected += 1;
    }
    let end = expected - 1;
    if latest < end {
        return Err(bad("latest below the last entry sent"));
    }
    let entries: Vec<Entry> = records.iter().map(|(entry, _)| entry.clone()).collect();
    match verify_chain(&entries) {
        Ok(summary) if summary.lowest == 1 => {}
        Ok(_) => return Err(bad("chain does not reach entry 1")),
        Err(failure) => {
            return Err(ProtocolError::InvalidChunk {
                id,
                seq: entries.get(failure.index).map_or(0, Entry::seq),
                error: Box::new(failure.error),
            });
        }
    }
    let range = records.split_off(path.len());
    Ok(range
        .into_iter()
        .map(|(entry, payload)| assume_verified(entry, payload))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::pack_chunk;

    const FEED: FeedId = FeedId([1; 32]);
    const HEAD: Hash = Hash([2; 32]);

    /// A machine holding `FEED` up to `held`, its opening Clock drained.
    fn holding(held: u64) -> PeerSync {
        let mut machine = PeerSync::new();
        machine.start(&BTreeMap::from([(FEED, held)]), 0);
        while machine.poll_transmit().is_some() {}
        while machine.poll_action().is_some() {}
        machine
    }

    fn clock(latest: u64) -> Message {
        Message::Clock {
            feeds: vec![ClockEntry {
                feed: FEED,
                latest,
                want: false,
                frozen: false,
                head: Some(HEAD),
            }],
        }
    }

    fn head_checks(machine: &mut PeerSync) -> Vec<(FeedId, u64)> {
        std::iter::from_fn(|| machine.poll_action())
            .filter_map(|action| match action {
                Action::CheckHead { feed, seq, head } => {
                    assert_eq!(head, HEAD);
                    Some((feed, seq))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_head_at_or_below_what_is_held_is_checked_once_per_seq() {
        let mut machine = holding(3);
        machine.handle_message(clock(2), 1);
        assert_eq!(head_checks(&mut machine), vec![(FEED, 2)]);
        machine.handle_message(clock(2), 2);
        assert_eq!(head_checks(&mut machine), vec![], "seq 2 was checked already");
        machine.handle_message(clock(3), 3);
        assert_eq!(head_checks(&mut machine), vec![(FEED, 3)]);
        machine.handle_message(clock(1), 4);
        assert_eq!(head_checks(&mut machine), vec![], "a stale claim is no head");
    }

    #[test]
    fn a_head_beyond_what_is_held_is_checked_once_stored() {
        let mut machine = holding(2);
        machine.handle_message(clock(3), 1);
        assert_eq!(head_checks(&mut machine), vec![]);
        machine.local_advanced(FEED, 3, 2);
        assert_eq!(head_checks(&mut machine), vec![(FEED, 3)]);
    }

    #[test]
    fn a_differing_head_fetches_that_entry_once_and_blames_no_one() {
        let mut machine = holding(3);
        machine.handle_message(clock(3), 1);
        head_checks(&mut machine);
        machine.head_differs(FEED, 3, 2);
        let Some(Message::Fetch { id, feed, from, to }) = machine.poll_transmit() else {
            panic!("no Fetch of entry 3");
        };
        assert_eq!((feed, from, to), (FEED, 3, 3));
        // One head check per feed at a time.
        machine.head_differs(FEED, 3, 3);
        assert_eq!(machine.poll_transmit(), None);
        // The peer holds no entry 3 after all: nothing happens.
        machine.handle_message(pack_chunk(id, FEED, 0, Vec::new(), Vec::new()), 4);
        assert_eq!(machine.poll_action(), None);
        // A second check that is never answered times out without blame.
        machine.head_differs(FEED, 3, 5);
        assert!(matches!(machine.poll_transmit(), Some(Message::Fetch { .. })));
        machine.handle_timeout(5 + FETCH_TIMEOUT_MS);
        assert_eq!(machine.poll_action(), None);
        assert!(!machine.is_closed());
    }
}
