//! The reusable part of the session example: a `tower-sessions` store kept
//! in a feedmesh node's replicated session store, and a small axum app
//! logging users in and out with it. Every instance of the app runs next to
//! its own node; the nodes replicate, so a session cookie issued by one
//! instance is recognised by all of them, and a logout on any instance
//! rejects the cookie everywhere.
//!
//! | request | answer |
//! |---|---|
//! | `POST /login` (form `user=NAME` or JSON `{"user": NAME}`) | `{"user"}` and a new session cookie |
//! | `GET /me` | `{"user"}`, or 401 without a live session |
//! | `POST /logout` | 204; the session is revoked on every instance |
//! | `POST /logout-everywhere` | 204; every session of the user is revoked, or 401 |

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::{FromRequest, Request, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use feedmesh::sessions::{SessionError, Sessions, Written};
use feedmesh::view::{MAX_OWNER, MAX_TTL_MS};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tower_sessions::cookie::time::{self, OffsetDateTime};
use tower_sessions::session::{Id, Record};
use tower_sessions::{Expiry, Session, SessionManagerLayer, SessionStore, session, session_store};

/// The session data key holding the logged-in user; the store makes it the
/// session's owner, for [`FeedmeshStore::revoke_owner`].
const USER: &str = "user";

/// How long a session lives without being written to.
const INACTIVITY: time::Duration = time::Duration::hours(8);

/// How long a write waits for its acknowledgements before answering anyway.
const ACK_TIMEOUT: Duration = Duration::from_secs(2);

/// A [`SessionStore`] kept in a feedmesh node's replicated session store.
///
/// A tower-sessions [`Record`] maps to one feedmesh session: the key is the
/// id's string form (what the cookie carries), the value the record's data
/// (a map of JSON values, stored as CBOR), the time to live what remains to
/// the record's expiry date (clamped to 1 ms ..= [`MAX_TTL_MS`]), and the
/// owner the data's `user` string if it holds one. `delete` revokes the key,
/// forever and on every node.
///
/// No `ExpiredDeletion`: the node's view drops expired sessions itself (a
/// load never returns one), and the log is append-only, so there is nothing
/// for a sweeper to delete.
///
/// Reads come from the node's memory. Each write waits until `acks` peers
/// hold it (at most [`ACK_TIMEOUT`], then it answers anyway: the write is
/// durable locally and replicates when it can), so a browser that gets a
/// cookie from one instance and its next request answered by another is
/// seldom refused because replication had not caught up yet.
#[derive(Clone, Debug)]
pub(crate) struct FeedmeshStore {
    sessions: Sessions,
    acks: usize,
}

impl FeedmeshStore {
    /// The store over `sessions`, each write waiting for `acks` peers.
    pub(crate) fn new(sessions: Sessions, acks: usize) -> FeedmeshStore {
        FeedmeshStore { sessions, acks }
    }

    /// Revokes every session of `user` on every node ("log out everywhere").
    pub(crate) async fn revoke_owner(&self, user: &str) -> session_store::Result<()> {
        let written = self.sessions.revoke_owner(user).await.map_err(backend)?.written;
        self.acknowledged(&written).await
    }

    async fn put(&self, record: &Record) -> session_store::Result<()> {
        let remaining = (record.expiry_date - OffsetDateTime::now_utc()).whole_milliseconds();
        let ttl_ms = remaining.clamp(1, i128::from(MAX_TTL_MS)) as u64;
        let owner = record.data.get(USER).and_then(Value::as_str);
        let written = self
            .sessions
            .put(
                record.id.to_string(),
                &record.data,
                Duration::from_millis(ttl_ms),
                owner,
            )
            .await
            .map_err(|error| match error {
                SessionError::Invalid(_) | SessionError::Value(_) => session_store::Error::Encode(error.to_string()),
                other => backend(other),
            })?;
        self.acknowledged(&written).await
    }

    /// Waits for the acknowledgements of `written`; a timeout is only logged.
    async fn acknowledged(&self, written: &Written) -> session_store::Result<()> {
        if self.acks == 0 {
            return Ok(());
        }
        match self.sessions.wait_for_acks(written, self.acks, ACK_TIMEOUT).await {
            Ok(_) => Ok(()),
            Err(SessionError::AckTimeout { acked, wanted }) => {
                tracing::warn!(
                    acked,
                    wanted,
                    "session write not acknowledged in time; answering anyway"
                );
                Ok(())
            }
            Err(other) => Err(backend(other)),
        }
    }
}

fn backend(error: SessionError) -> session_store::Error {
    session_store::Error::Backend(error.to_string())
}

#[async_trait]
impl SessionStore for FeedmeshStore {
    /// Stores a new session under a fresh id: an id this node knows, live or
    /// revoked, is replaced by a new random one (a put on a revoked key
    /// would be lost, and one on a live key would hand over its session).
    /// Ids are 128 random bits, so two nodes drawing the same one before
    /// either has replicated is as unlikely as guessing a live id.
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        loop {
            let key = record.id.to_string();
            if self.sessions.get_raw(&key).is_none() && !self.sessions.is_revoked(&key) {
                break;
            }
            record.id = Id::default();
        }
        self.put(record).await
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.put(record).await
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
        let key = id.to_string();
        // A revocation is forever: one this node already holds (by key, or
        // by owner after a logout everywhere) needs no second entry.
        if self.sessions.is_revoked(&key) {
            return Ok(());
        }
        let written = self.sessions.revoke(&key).await.map_err(backend)?;
        self.acknowledged(&written).await
    }
}

/// The app of one instance: the routes of the module doc, with sessions kept
/// in `sessions` (the node's session store), each write waiting for `acks`
/// peers (see [`FeedmeshStore`]).
pub(crate) fn app(sessions: Sessions, acks: usize) -> Router {
    let store = FeedmeshStore::new(sessions, acks);
    // `Secure` off: the demo serves plain HTTP on loopback, where a browser
    // (and the test's client) would never send a `Secure` cookie back.
    // Behind TLS, leave it on (the default).
    let layer = SessionManagerLayer::new(store.clone())
        .with_secure(false)
        .with_expiry(Expiry::OnInactivity(INACTIVITY));
    Router::new()
        .route("/login", post(login))
        .route("/me", get(me))
        .route("/logout", post(logout))
        .route("/logout-everywhere", post(logout_everywhere))
        .layer(layer)
        .with_state(store)
}

/// The body of `POST /login`, and the answer of `/login` and `/me`.
#[derive(Debug, Deserialize, Serialize)]
struct User {
    user: String,
}

/// An error answer: `{"error": ...}` with its status.
#[derive(Debug)]
struct Failure(StatusCode, String);

impl Failure {
    fn unauthorized() -> Failure {
        Failure(StatusCode::UNAUTHORIZED, "not logged in".into())
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

impl From<session::Error> for Failure {
    fn from(error: session::Error) -> Failure {
        Failure(StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
    }
}

/// `POST /login`: puts `user` in the session, under a new id.
async fn login(session: Session, request: Request) -> Result<Json<User>, Response> {
    let json = request
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"application/json"));
    let User { user } = if json {
        Json::<User>::from_request(request, &())
            .await
            .map_err(IntoResponse::into_response)?
            .0
    } else {
        Form::<User>::from_request(request, &())
            .await
            .map_err(IntoResponse::into_response)?
            .0
    };
    if user.is_empty() || user.len() > MAX_OWNER {
        let message = format!("a user name has 1 to {MAX_OWNER} bytes");
        return Err(Failure(StatusCode::BAD_REQUEST, message).into_response());
    }
    // A session this browser already had gets a new id (and the old one is
    // revoked): a login changes privileges, so a session id known before it
    // (fixation) must not carry them. `id()` is `Some` after the load only
    // if the store held the session.
    session
        .get_value(USER)
        .await
        .map_err(|e| Failure::from(e).into_response())?;
    if session.id().is_some() {
        session.cycle_id().await.map_err(|e| Failure::from(e).into_response())?;
    }
    session
        .insert(USER, &user)
        .await
        .map_err(|e| Failure::from(e).into_response())?;
    // The middleware stores the session (`create`) once this returns.
    Ok(Json(User { user }))
}

/// `GET /me`: the logged-in user, or 401.
async fn me(session: Session) -> Result<Json<User>, Failure> {
    let user = session.get::<String>(USER).await?.ok_or_else(Failure::unauthorized)?;
    Ok(Json(User { user }))
}

/// `POST /logout`: revokes the session the cookie names and removes the
/// cookie.
async fn logout(session: Session) -> Result<StatusCode, Failure> {
    // `flush` revokes the cookie's id without loading the session first, so
    // the logout holds even if this instance has not received the session
    // yet (a login on another instance a moment ago).
    session.flush().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /logout-everywhere`: revokes every session of the logged-in user,
/// on every instance; 401 if not logged in.
async fn logout_everywhere(State(store): State<FeedmeshStore>, session: Session) -> Result<StatusCode, Failure> {
    let user = session.get::<String>(USER).await?.ok_or_else(Failure::unauthorized)?;
    store.revoke_owner(&user).await.map_err(session::Error::from)?;
    session.flush().await?;
    Ok(StatusCode::NO_CONTENT)
}
