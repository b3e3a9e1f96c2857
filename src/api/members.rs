//! The membership routes of the HTTP API (spec/SESSIONS.md §5): what a
//! node has folded of the membership, and, on an admin's node, admitting
//! and removing members by entries in its own feed.
//!
//! | request | answer |
//! |---|---|
//! | `GET /v1/members` | `{"open", "admins": [FEED_ID], "members": [{"feed", "from_seq", "until_seq"}], "admins_heard": [{"feed", "seq", "heard_at_ms"}]}` (`open`: no admin keys, every holder of the network key is a member; `until_seq` `null` while not removed; `heard_at_ms`: when the admin feed was last heard from, `null` if never: a node that never heard from an admin may be missing removals) |
//! | `POST /v1/members/{FEED_ID}`, body `{"from_seq": N}` (optional, default 1) | `{"author", "seq"}` once the admission is durable on this node: the feed's entries from `N` on fold |
//! | `POST /v1/members/{FEED_ID}/remove`, body `{"from_seq": N}` (optional; default: after the last entry of the feed this node holds) | `{"author", "seq"}`: the feed's entries from `N` on no longer fold anywhere, and peers refuse it (permanent) |
//!
//! Both writes take `?acks=K&timeout_ms=T` as every write of the API does.
//! Errors: 400 for a malformed feed id, body or `from_seq` (0 or above the
//! largest sequence number), 403 when this node is not an admin of the
//! network, and the statuses of the session routes.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::sessions::{Segment, written_json};
use super::{Acks, AppState, Failure, body_bytes};
use crate::feed::FeedId;

/// The membership routes, merged into [`super::router`].
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/members", get(list))
        .route("/v1/members/{feed}", post(add))
        .route("/v1/members/{feed}/remove", post(remove))
}

/// The body of both writes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FromSeq {
    from_seq: Option<u64>,
}

/// `from_seq` of a body that may be empty.
fn from_seq(body: Result<Bytes, BytesRejection>) -> Result<Option<u64>, Failure> {
    let body = body_bytes(body)?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let parsed: FromSeq = serde_json::from_slice(&body)
        .map_err(|error| Failure::new(StatusCode::BAD_REQUEST, format!("malformed JSON body: {error}")))?;
    Ok(parsed.from_seq)
}

/// The `{feed}` path segment as a feed id (400 if it is not one).
fn feed_id(segment: &str) -> Result<FeedId, Failure> {
    segment.parse().map_err(|error| {
        Failure::new(
            StatusCode::BAD_REQUEST,
            format!("{segment:?} is not a feed id: {error}"),
        )
    })
}

async fn list(State(state): State<AppState>) -> Result<axum::Json<Value>, Failure> {
    let heard = super::admins_json(&super::readiness(&state.node).await?.admins);
    let membership = state.sessions.membership();
    let members: Vec<Value> = membership
        .members()
        .map(|m| json!({"feed": m.feed.to_string(), "from_seq": m.from_seq, "until_seq": m.until_seq}))
        .collect();
    Ok(axum::Json(json!({
        "open": membership.is_open(),
        "admins": membership.admins().map(ToString::to_string).collect::<Vec<_>>(),
        "members": members,
        "admins_heard": heard,
    })))
}

async fn add(
    State(state): State<AppState>,
    Segment(feed): Segment,
    acks: Acks,
    body: Result<Bytes, BytesRejection>,
) -> Result<axum::Json<Value>, Failure> {
    let feed = feed_id(&feed)?;
    let written = state.sessions.add_member(feed, from_seq(body)?.unwrap_or(1)).await?;
    acks.answer(&state.node, written.seq, written_json(&written)).await
}

async fn remove(
    State(state): State<AppState>,
    Segment(feed): Segment,
    acks: Acks,
    body: Result<Bytes, BytesRejection>,
) -> Result<axum::Json<Value>, Failure> {
    let feed = feed_id(&feed)?;
    let written = state.sessions.remove_member(feed, from_seq(body)?).await?;
    acks.answer(&state.node, written.seq, written_json(&written)).await
}
