//! A [`tower-sessions`](https://docs.rs/tower-sessions) store kept in a
//! node's replicated session store (feature `tower-sessions`).
//!
//! Every instance of a web app runs next to its own node; the nodes
//! replicate, so a session cookie issued by one instance is recognised by
//! all of them, and a logout on any instance rejects the cookie everywhere.
//!
//! # Examples
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use feedmesh::node::NodeConfig;
//! use feedmesh::sessions::Sessions;
//! use feedmesh::tower_sessions::FeedmeshStore;
//! use tower_sessions::{Expiry, SessionManagerLayer};
//! use tower_sessions::cookie::time;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let sessions = Sessions::start(NodeConfig::new("/var/lib/feedmesh")).await?;
//! // Each write waits (at most 2 s) until one peer holds it.
//! let store = FeedmeshStore::new(sessions).with_acks(1, Duration::from_secs(2));
//! let layer = SessionManagerLayer::new(store.clone())
//!     .with_expiry(Expiry::OnInactivity(time::Duration::hours(8)));
//! // ... `Router::new().route(...).layer(layer)`; and on "log out everywhere":
//! let revoked = store.revoke_owner("alice").await?;
//! println!("{revoked} sessions of alice revoked on every node");
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use time::OffsetDateTime;
use tower_sessions_core::session::{Id, Record};
use tower_sessions_core::session_store::{self, SessionStore};

use crate::node::AckTimeout;
use crate::sessions::{Refusal, SessionError, Sessions, Written};
use crate::view::MAX_TTL_MS;

/// The data field whose string value becomes a session's owner, unless
/// [`FeedmeshStore::with_owner_field`] names another.
pub const DEFAULT_OWNER_FIELD: &str = "user";

/// How many fresh ids [`SessionStore::create`] draws before giving up: with
/// 128 random bits per id, a second draw is already never needed in practice.
const CREATE_ATTEMPTS: usize = 8;

/// A [`SessionStore`] kept in a feedmesh node's replicated session store.
///
/// A tower-sessions [`Record`] maps to one feedmesh session: the key is the
/// id's string form (what the cookie carries), the value the record's data
/// (a map of JSON values, stored as CBOR), the time to live what remains to
/// the record's expiry date (clamped to 1 ms ..= [`MAX_TTL_MS`]), and the
/// owner the data's [`DEFAULT_OWNER_FIELD`] string if it holds one (what
/// [`FeedmeshStore::revoke_owner`] revokes by).
///
/// The trait's contract, kept exactly:
/// - `create` never overwrites: it writes with [`Sessions::create`]
///   (create-if-absent) and, should the id be taken (live or revoked on
///   this node), draws a new one;
/// - `save` never resurrects: it writes with [`Sessions::update`], so a
///   session that was deleted (revoked) or has expired stays gone, and the
///   save is a silent no-op, as with Redis's `SET XX`;
/// - `load` returns only live sessions: never an expired or revoked one;
/// - `delete` revokes the key, forever and on every node.
///
/// No `ExpiredDeletion`: the node's view drops expired sessions itself, and
/// the log is append-only, so there is nothing for a sweeper to delete.
///
/// Reads come from the node's memory. With [`FeedmeshStore::with_acks`],
/// each write also waits until that many peers hold it (at most the given
/// timeout; past it the write answers anyway, logged, since it is durable
/// locally and replicates when it can), so a browser that gets a cookie
/// from one instance and its next request answered by another is seldom
/// refused because replication had not caught up yet.
#[derive(Clone, Debug)]
pub struct FeedmeshStore {
    sessions: Sessions,
    acks: usize,
    ack_timeout: Duration,
    owner_field: String,
}

impl FeedmeshStore {
    /// The store over `sessions` (a node's, [`Sessions::start`]);
    /// writes answer once durable locally.
    pub fn new(sessions: Sessions) -> FeedmeshStore {
        FeedmeshStore {
            sessions,
            acks: 0,
            ack_timeout: Duration::ZERO,
            owner_field: DEFAULT_OWNER_FIELD.to_owned(),
        }
    }

    /// Makes each write wait until `acks` peers hold it, at most `timeout`.
    pub fn with_acks(mut self, acks: usize, timeout: Duration) -> FeedmeshStore {
        self.acks = acks;
        self.ack_timeout = timeout;
        self
    }

    /// Takes a session's owner from the data field `field` (a string)
    /// instead of [`DEFAULT_OWNER_FIELD`].
    pub fn with_owner_field(mut self, field: impl Into<String>) -> FeedmeshStore {
        self.owner_field = field.into();
        self
    }

    /// The session store underneath, for what the trait does not cover
    /// (listing an owner's sessions, digests, subscriptions).
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// Revokes every session of `owner` on every node ("log out
    /// everywhere"); returns how many live ones this node held.
    pub async fn revoke_owner(&self, owner: &str) -> session_store::Result<usize> {
        let revoked = self.sessions.revoke_owner(owner).await.map_err(backend)?;
        self.acknowledged(&revoked.written).await?;
        Ok(revoked.sessions)
    }

    /// Writes `record`: with [`Sessions::create`] if `create`, else with
    /// [`Sessions::update`].
    async fn write(&self, record: &Record, create: bool) -> Result<Written, SessionError> {
        let remaining = (record.expiry_date - OffsetDateTime::now_utc()).whole_milliseconds();
        let ttl = Duration::from_millis(remaining.clamp(1, i128::from(MAX_TTL_MS)) as u64);
        let owner = record.data.get(&self.owner_field).and_then(Value::as_str);
        let key = record.id.to_string();
        if create {
            self.sessions.create(key, &record.data, ttl, owner).await
        } else {
            self.sessions.update(key, &record.data, ttl, owner).await
        }
    }

    /// Waits for the acknowledgements of `written`; a timeout is only logged.
    async fn acknowledged(&self, written: &Written) -> session_store::Result<()> {
        if self.acks == 0 {
            return Ok(());
        }
        match self.sessions.wait_for_acks(written, self.acks, self.ack_timeout).await {
            Ok(_) => Ok(()),
            Err(AckTimeout { acked, wanted }) => {
                tracing::warn!(
                    acked,
                    wanted,
                    "session write not acknowledged in time; answering anyway"
                );
                Ok(())
            }
        }
    }
}

/// A write's error as the trait's: what could not be encoded is `Encode`.
fn write_error(error: SessionError) -> session_store::Error {
    match error {
        SessionError::Invalid(_) | SessionError::Value(_) => session_store::Error::Encode(error.to_string()),
        other => backend(other),
    }
}

fn backend(error: SessionError) -> session_store::Error {
    session_store::Error::Backend(error.to_string())
}

#[async_trait]
impl SessionStore for FeedmeshStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        for _ in 0..CREATE_ATTEMPTS {
            match self.write(record, true).await {
                Ok(written) => return self.acknowledged(&written).await,
                Err(SessionError::Refused(Refusal::Exists | Refusal::Revoked)) => record.id = Id::default(),
                Err(other) => return Err(write_error(other)),
            }
        }
        Err(session_store::Error::Backend(format!(
            "{CREATE_ATTEMPTS} fresh session ids in a row were taken"
        )))
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        match self.write(record, false).await {
            Ok(written) => self.acknowledged(&written).await,
            // Deleted or expired meanwhile: it stays so.
            Err(SessionError::Refused(Refusal::NotLive | Refusal::Revoked)) => Ok(()),
            Err(other) => Err(write_error(other)),
        }
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let found = self
            .sessions
            .get::<HashMap<String, Value>>(id.to_string())
            .map_err(|e| session_store::Error::Decode(e.to_string()))?;
        let Some(found) = found else {
            return Ok(None);
        };
        let expiry_date = OffsetDateTime::from_unix_timestamp_nanos(i128::from(found.expires_at_ms) * 1_000_000)
            .map_err(|e| session_store::Error::Decode(e.to_string()))?;
        Ok(Some(Record {
            id: *id,
            data: found.value,
            expiry_date,
        }))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        match self.sessions.revoke(id.to_string()).await {
            Ok(written) => self.acknowledged(&written).await,
            // A revocation is forever: one this node already holds (by key,
            // or by owner after a logout everywhere) needs no second entry.
            Err(SessionError::Refused(Refusal::Revoked)) => Ok(()),
            Err(other) => Err(backend(other)),
        }
    }
}
