//! The session routes of the HTTP API: the node's session store
//! (spec/SESSIONS.md) as [`Sessions`] offers it to an embedding program.
//!
//! | request | answer |
//! |---|---|
//! | `PUT /v1/sessions/{KEY}`, body `{"value": ANY, "ttl_secs": N, "owner": "..."}` (`owner` optional) | `{"author", "seq", "expires_at"}` once the put is durable on this node; with `If-None-Match: *` only if this node holds no session under `KEY` (create), with `If-Match: *` only if it holds a live one (update, never resurrects): 412 otherwise, nothing written |
//! | `GET /v1/sessions/{KEY}` | `{"value", "expires_at", "ttl_ms", "owner", "author", "seq"}` of the live session (`ttl_ms`: what remains of it); 404 if it was never put (here, yet), is revoked or has expired |
//! | `POST /v1/sessions/{KEY}/touch`, body `{"ttl_secs": N}` | `{"author", "seq", "expires_at"}`: the expiry becomes at least now + N s (never shorter) |
//! | `DELETE /v1/sessions/{KEY}` | `{"author", "seq"}`: the session is revoked for good (logout) |
//! | `GET /v1/owners/{OWNER}/sessions` | `{"owner", "count", "sessions": [{"key", "expires_at", "author", "seq"}]}`: the live sessions that some put names `OWNER` as owner (those a `DELETE` of this path would revoke, spec/SESSIONS.md §2.4), sorted by key |
//! | `DELETE /v1/owners/{OWNER}/sessions` | `{"author", "seq", "revoked"}`: every session `OWNER` put before now is revoked ("log out everywhere"); `revoked` counts the live ones this node held |
//! | `GET /v1/view/digest` | `{"digest", "clock", "sessions", "held_back", "started"}`: the digest of the folded state (spec/SESSIONS.md §3, hex), the node's clock (`{FEED_ID: SEQ}`, as in `GET /v1/status`), the number of sessions held and of entries held back (dated too far ahead), and how the view was built at start (`{"from_snapshot", "folded"}`: from its snapshot, and how many stored entries were folded; spec/SESSIONS.md §6.7) |
//!
//! `KEY` and `OWNER` are path segments, percent-decoded (`%2F` for `/`), 1 to
//! [`MAX_KEY`](crate::view::MAX_KEY) (or `MAX_OWNER`) bytes of UTF-8. A value
//! is any JSON; it is stored as CBOR, at most
//! [`MAX_VALUE`](crate::view::MAX_VALUE) bytes encoded. `ttl_secs` is 1 to
//! 2,592,000 (30 days). `expires_at` is in **milliseconds since the Unix
//! epoch**; in the answer of a put or touch it is the session's expiry as
//! this node reads it right after the write, `null` if the session is not
//! live then (a touch found no put, or came after the session expired and
//! changed nothing, spec/SESSIONS.md §2.2).
//!
//! Every write (PUT, touch, DELETE) takes `?acks=K&timeout_ms=T` exactly like
//! `POST /v1/append`: the answer (with `"acked"`) waits until `K` connected
//! peers hold the entry, and is a 504 carrying `author`, `seq`, `acked` and
//! `error` when `T` ms pass first (the write is durable on this node all the
//! same, and still replicates).
//!
//! Errors are `{"error": "..."}`: 400 for a malformed key, owner, ttl, body
//! (not JSON, unknown or missing fields) or query, or a value over the limit;
//! 401 without the bearer token (as every route of the API); 404 for a
//! session that is not live; 412 for a put whose precondition failed
//! (`"refused: a live session exists under the key"`, `"refused: no live
//! session under the key"`); 409 for a write that would have no effect and
//! is refused, nothing appended (`"refused: the session key is revoked"` for
//! a put, touch or DELETE of a revoked key, `"refused: this node is not a
//! member of the network"` for any session write from a node not admitted
//! or removed; spec/SESSIONS.md §6.4); 500 when the store fails or a stored value
//! (written through the embedded API, or a binary value written over the
//! Redis protocol: spec/RESP.md §4) has no JSON form; 503 while the node
//! shuts down; 504 as above.

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::StatusCode;
use axum::http::header::{HeaderName, IF_MATCH, IF_NONE_MATCH};
use axum::http::request::Parts;
use axum::routing::{get, post};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{Acks, AppState, Failure, body_bytes, node_clock};
use crate::sessions::{Refusal, SessionError, Written};
use crate::view::MAX_TTL_MS;

/// The session routes, merged into [`super::router`].
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/sessions/{key}", get(read).put(put).delete(revoke))
        .route("/v1/sessions/{key}/touch", post(touch))
        .route("/v1/owners/{owner}/sessions", get(owned).delete(revoke_owner))
        .route("/v1/view/digest", get(digest))
}

impl From<SessionError> for Failure {
    fn from(error: SessionError) -> Failure {
        let status = match error {
            SessionError::Invalid(_) | SessionError::Value(_) => StatusCode::BAD_REQUEST,
            SessionError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            SessionError::NotAdmin => StatusCode::FORBIDDEN,
            SessionError::Refused(Refusal::Exists | Refusal::NotLive) => StatusCode::PRECONDITION_FAILED,
            SessionError::Refused(_) => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Failure::new(status, error)
    }
}

/// The body of `PUT /v1/sessions/{key}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PutBody {
    value: Value,
    ttl_secs: u64,
    owner: Option<String>,
}

/// The body of `POST /v1/sessions/{key}/touch`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TouchBody {
    ttl_secs: u64,
}

/// The `{key}` or `{owner}` path segment, percent-decoded (400 if it is
/// not UTF-8).
pub(super) struct Segment(pub(super) String);

impl<S: Send + Sync> FromRequestParts<S> for Segment {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Segment, Failure> {
        let Path(segment) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| Failure::new(StatusCode::BAD_REQUEST, rejection.body_text()))?;
        Ok(Segment(segment))
    }
}

/// The body as JSON of type `T`, whatever the content type (400 if it is
/// not, 413 over the body limit).
struct JsonBody<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = Failure;

    async fn from_request(request: Request, state: &S) -> Result<JsonBody<T>, Failure> {
        let body = body_bytes(Bytes::from_request(request, state).await)?;
        serde_json::from_slice(&body)
            .map(JsonBody)
            .map_err(|error| Failure::new(StatusCode::BAD_REQUEST, format!("malformed JSON body: {error}")))
    }
}

/// `ttl_secs` as a duration, 1 s to 30 days.
fn ttl(ttl_secs: u64) -> Result<Duration, Failure> {
    let max = MAX_TTL_MS / 1000;
    if !(1..=max).contains(&ttl_secs) {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            format!("ttl_secs {ttl_secs} is outside 1..={max}"),
        ));
    }
    Ok(Duration::from_secs(ttl_secs))
}

/// Where a write landed: `{"author", "seq"}`.
pub(super) fn written_json(written: &Written) -> Value {
    json!({ "author": written.author.to_string(), "seq": written.seq })
}

/// The answer to a put or touch of `key`: [`written_json`] with the
/// `expires_at` of `key` as this node now reads it (`null` if it is not
/// live), once `acks` are in.
async fn answer_with_expiry(
    state: &AppState,
    acks: &Acks,
    key: &str,
    written: &Written,
) -> Result<axum::Json<Value>, Failure> {
    let mut answer = written_json(written);
    answer["expires_at"] = json!(state.sessions.get_raw(key).map(|session| session.expires_at_ms));
    acks.answer(&state.node, written.seq, answer).await
}

/// The precondition of a put (RFC 9110 §13.1): `If-None-Match: *` creates
/// only, `If-Match: *` updates only; any other value of either is a 400.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Precondition {
    None,
    Absent,
    Live,
}

impl<S: Send + Sync> FromRequestParts<S> for Precondition {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Precondition, Failure> {
        let star = |name: HeaderName| match parts.headers.get(&name) {
            None => Ok(false),
            Some(value) if value == "*" => Ok(true),
            Some(_) => Err(Failure::new(
                StatusCode::BAD_REQUEST,
                format!("{name}: only \"*\" is supported (sessions have no entity tags)"),
            )),
        };
        match (star(IF_NONE_MATCH)?, star(IF_MATCH)?) {
            (false, false) => Ok(Precondition::None),
            (true, false) => Ok(Precondition::Absent),
            (false, true) => Ok(Precondition::Live),
            (true, true) => Err(Failure::new(
                StatusCode::BAD_REQUEST,
                "If-Match and If-None-Match together can never both hold",
            )),
        }
    }
}

async fn put(
    State(state): State<AppState>,
    Segment(key): Segment,
    precondition: Precondition,
    acks: Acks,
    JsonBody(body): JsonBody<PutBody>,
) -> Result<axum::Json<Value>, Failure> {
    let sessions = &state.sessions;
    let (ttl, owner) = (ttl(body.ttl_secs)?, body.owner.as_deref());
    let written = match precondition {
        Precondition::None => sessions.put(&key, &body.value, ttl, owner).await?,
        Precondition::Absent => sessions.create(&key, &body.value, ttl, owner).await?,
        Precondition::Live => sessions.update(&key, &body.value, ttl, owner).await?,
    };
    answer_with_expiry(&state, &acks, &key, &written).await
}

async fn read(State(state): State<AppState>, Segment(key): Segment) -> Result<axum::Json<Value>, Failure> {
    let session = state.sessions.get::<Value>(&key).map_err(|error| {
        Failure::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the value of session {key:?} has no JSON form: {error}"),
        )
    })?;
    let Some(session) = session else {
        return Err(Failure::new(
            StatusCode::NOT_FOUND,
            format!("no live session {key:?} (never put here, revoked or expired)"),
        ));
    };
    let ttl_ms = session.expires_at_ms.saturating_sub(state.node.now_ms());
    Ok(axum::Json(json!({
        "value": session.value,
        "expires_at": session.expires_at_ms,
        "ttl_ms": ttl_ms,
        "owner": session.owner.map(|owner| String::from_utf8_lossy(&owner).into_owned()),
        "author": session.author.to_string(),
        "seq": session.seq,
    })))
}

async fn touch(
    State(state): State<AppState>,
    Segment(key): Segment,
    acks: Acks,
    JsonBody(body): JsonBody<TouchBody>,
) -> Result<axum::Json<Value>, Failure> {
    let written = state.sessions.touch(&key, ttl(body.ttl_secs)?).await?;
    answer_with_expiry(&state, &acks, &key, &written).await
}

async fn revoke(
    State(state): State<AppState>,
    Segment(key): Segment,
    acks: Acks,
) -> Result<axum::Json<Value>, Failure> {
    let written = state.sessions.revoke(key).await?;
    acks.answer(&state.node, written.seq, written_json(&written)).await
}

async fn revoke_owner(
    State(state): State<AppState>,
    Segment(owner): Segment,
    acks: Acks,
) -> Result<axum::Json<Value>, Failure> {
    let revoked = state.sessions.revoke_owner(owner).await?;
    let mut answer = written_json(&revoked.written);
    answer["revoked"] = json!(revoked.sessions);
    acks.answer(&state.node, revoked.written.seq, answer).await
}

async fn owned(State(state): State<AppState>, Segment(owner): Segment) -> axum::Json<Value> {
    let sessions: Vec<Value> = (state.sessions.owned_by(&owner).into_iter())
        .map(|(key, session)| {
            json!({
                "key": String::from_utf8_lossy(&key),
                "expires_at": session.expires_at_ms,
                "author": session.author.to_string(),
                "seq": session.seq,
            })
        })
        .collect();
    axum::Json(json!({ "owner": owner, "count": sessions.len(), "sessions": sessions }))
}

async fn digest(State(state): State<AppState>) -> Result<axum::Json<Value>, Failure> {
    let clock = node_clock(&state.node).await?;
    let sessions = &state.sessions;
    let stats = sessions.stats();
    let started = sessions.started();
    Ok(axum::Json(json!({
        "digest": sessions.digest().to_string(),
        "clock": clock,
        "sessions": stats.sessions,
        "held_back": stats.held_back,
        "started": {"from_snapshot": started.from_snapshot, "folded": started.folded},
    })))
}
