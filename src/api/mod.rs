//! The HTTP API of a running [`Node`] and its session store ([`Sessions`];
//! axum, HTTP/1.1).
//!
//! | request | answer |
//! |---|---|
//! | `GET /v1/status` | `{"id": FEED_ID, "clock": {FEED_ID: SEQ, ...}, "peers": [{"id", "addr", "clock"}], "admins": [{"feed", "seq", "heard_at_ms": MS or null}]}` (`admins` empty without admins) |
//! | `GET /v1/ready` | 200 `{"ready": true, ...}` when the node holds what its connected peers claimed at connect and (with admins) heard an admin feed within `ready_admin_within`; else 503 `{"ready": false, "reasons": [...], "behind": [{"feed", "peer", "held", "claimed"}], "admins": [...]}` ([`Node::readiness`]): the probe for a load balancer or an orchestrator |
//! | `POST /v1/append` (body: the payload bytes, at most [`MAX_PAYLOAD`]) | `{"feed", "seq", "hash"}` once stored durably |
//! | `POST /v1/append?acks=K&timeout_ms=T` | the same (with `"acked"`) once `K` connected peers hold the entry; 504 after `T` ms (default [`DEFAULT_ACK_TIMEOUT`]) |
//! | `GET /v1/feeds` | `{"feeds": [{"id": FEED_ID, "latest": SEQ, "frozen": N or null}, ...]}`: every feed held, with the sequence it forked at if a fork proof freezes it (spec §1.7) |
//! | `GET /v1/feeds/{FEED_ID}?from=N&to=M&limit=L` | entries `N..=M` as JSON lines ([`log_json`], like `feedmesh log`), at most `L` (default and maximum [`MAX_PAGE`]); when the page is full, the [`NEXT_FROM_HEADER`] header says where the next page starts |
//! | `GET /v1/peers/{PEER_ID}/feeds/{FEED_ID}?from=N&to=M&timeout_ms=T` | entries `N..=M` (default `to`: `N`; at most [`MAX_FETCH_RANGE`](crate::sync::MAX_FETCH_RANGE) of them) fetched from the connected peer `PEER_ID` with their certificate path and verified ([`Node::fetch_range`]), as JSON lines like `GET /v1/feeds`; not stored. Fewer lines than asked: the peer holds no more (or its answer was cut to one frame). 404 if not connected to that peer, 502 if the fetch failed, 504 after `T` ms (default [`DEFAULT_FETCH_TIMEOUT`]) |
//! | `GET /metrics` | the Prometheus text format ([`render_metrics`]) |
//! | `GET /v1/audit/sessions/{KEY}`, `GET /v1/audit/members/{FEED_ID}?since=MS&until=MS`, `GET /v1/audit/health` | the audit reports (spec/AUDIT.md §2) as JSON lines; the module doc of `src/api/audit.rs` has the details |
//! | `GET /audit` | the audit page (HTML, served without the token: it holds no data and sends the token the user gives it) |
//! | `PUT`, `GET`, `DELETE /v1/sessions/{KEY}`, `POST /v1/sessions/{KEY}/touch`, `DELETE /v1/owners/{OWNER}/sessions`, `GET /v1/view/digest` | the session store ([`Sessions`]); the module doc of `src/api/sessions.rs` has the bodies, answers and errors |
//! | `GET /v1/members`, `POST /v1/members/{FEED_ID}`, `POST /v1/members/{FEED_ID}/remove` | the membership (spec/SESSIONS.md §5): listed, or changed by an admin's node; the module doc of `src/api/members.rs` has the details |
//!
//! Every error is `{"error": "..."}` with its status: 400 for a malformed
//! request (feed id, query, session key, owner, ttl or body), 401 without
//! the bearer token, 404 for an unknown path or a feed the node does not
//! hold, 413 for a payload over the limit, 503 while the node shuts down,
//! 504 when acknowledgements time out (the entry is stored durably on this
//! node all the same, and still replicates: the body says so and carries
//! its `feed`, `seq` and `hash`).
//!
//! # Authentication
//!
//! With an [`ApiToken`], every request needs `Authorization: Bearer TOKEN`
//! (compared in constant time), except `GET /audit` (static HTML, no
//! data). [`ApiServer::bind`] refuses an address that is not loopback
//! without a token ([`requires_token`]).

mod audit;
mod members;
mod metrics;
mod sessions;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::feed::{Entry, FeedId, MAX_PAYLOAD};
use crate::node::{AckTimeout, Node, NodeError};
use crate::readiness::{AdminHeard, Readiness};
use crate::sessions::Sessions;
use crate::sync::FetchError;

pub use crate::token::{ApiToken, TokenError, requires_token};
pub use metrics::render_metrics;

/// The most entries one `GET /v1/feeds/{id}` answers with.
pub const MAX_PAGE: usize = 1000;
/// The timeout of `GET /v1/peers/{peer}/feeds/{feed}` without `timeout_ms`.
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// The acknowledgement timeout of `POST /v1/append?acks=K` without `timeout_ms`.
pub const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest `timeout_ms` accepted (larger values are a 400).
pub const MAX_ACK_TIMEOUT: Duration = Duration::from_secs(300);
/// Response header of `GET /v1/feeds/{id}` when the page is full: the `from`
/// of the next page.
pub const NEXT_FROM_HEADER: &str = "feedmesh-next-from";

/// An entry as JSON: the object `feedmesh log` prints and `GET /v1/feeds/{id}`
/// answers with, one per line: `feed`, `seq`, `hash`, `prev` (null at
/// sequence 1), `timestamp` (the hybrid logical clock value), `payload_len`,
/// `payload_hash`.
pub fn entry_json(entry: &Entry) -> Value {
    let header = entry.header();
    json!({
        "feed": entry.author().to_string(),
        "seq": entry.seq(),
        "hash": entry.hash().to_string(),
        "prev": header.prev.map(|h| h.to_string()),
        "timestamp": header.timestamp.as_u64(),
        "payload_len": header.payload_len,
        "payload_hash": header.payload_hash.to_string(),
    })
}

/// An entry of a feed that forked at `frozen_at` (if it did) as JSON: the
/// object of [`entry_json`], with `"frozen": N` added when the entry is at
/// or after the fork point `N` (so no longer valid, spec §1.7). The lines
/// `feedmesh log` prints and `GET /v1/feeds/{id}` answers with.
pub fn log_json(entry: &Entry, frozen_at: Option<u64>) -> Value {
    let mut value = entry_json(entry);
    if let Some(n) = frozen_at.filter(|&n| entry.seq() >= n) {
        value["frozen"] = json!(n);
    }
    value
}

/// Errors of setting the API up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The token file could not be read, or is empty.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// A non-loopback address without a token.
    #[error("the API address {0} is not loopback: give a bearer token with --api-token-file (or api_token_file)")]
    TokenRequired(SocketAddr),
    /// The address could not be bound.
    #[error("cannot listen for the API on {addr}: {error}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        error: std::io::Error,
    },
}

#[derive(Clone)]
struct AppState {
    /// The node of `sessions`, for the routes that serve the node itself.
    node: Node,
    sessions: Sessions,
    token: Option<Arc<ApiToken>>,
}

/// The API's routes over `sessions` and its node (see the module doc);
/// with `token`, every request needs it.
pub fn router(sessions: Sessions, token: Option<ApiToken>) -> Router {
    let state = AppState {
        node: sessions.node().clone(),
        sessions,
        token: token.map(Arc::new),
    };
    let limit = usize::try_from(MAX_PAYLOAD).unwrap_or(usize::MAX);
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/ready", get(ready))
        .route("/v1/append", post(append))
        .route("/v1/feeds", get(feeds))
        .route("/v1/feeds/{feed}", get(feed))
        .route("/v1/peers/{peer}/feeds/{feed}", get(peer_feed))
        .route("/metrics", get(metrics_text))
        .merge(sessions::routes())
        .merge(members::routes())
        .merge(audit::routes())
        .fallback(|| async { Failure::new(StatusCode::NOT_FOUND, "no such endpoint") })
        .method_not_allowed_fallback(|| async { Failure::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed") })
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .merge(audit::page())
        .with_state(state)
}

/// A bound API listener, ready to serve.
#[derive(Debug)]
pub struct ApiServer {
    listener: TcpListener,
    sessions: Sessions,
    token: Option<ApiToken>,
    addr: SocketAddr,
}

impl ApiServer {
    /// Binds `addr` (port 0: any free port). Refuses an address that is not
    /// loopback without a token ([`ApiError::TokenRequired`]).
    pub async fn bind(addr: SocketAddr, sessions: Sessions, token: Option<ApiToken>) -> Result<ApiServer, ApiError> {
        if token.is_none() && requires_token(addr) {
            return Err(ApiError::TokenRequired(addr));
        }
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|error| ApiError::Bind { addr, error })?;
        let addr = listener.local_addr().map_err(|error| ApiError::Bind { addr, error })?;
        Ok(ApiServer {
            listener,
            sessions,
            token,
            addr,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves requests until `shutdown` completes, then lets requests in
    /// progress finish.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let app = router(self.sessions, self.token);
        axum::serve(self.listener, app).with_graceful_shutdown(shutdown).await
    }
}

/// An error answer: `{"error": ...}` (and more fields) with a status.
#[derive(Debug)]
struct Failure {
    status: StatusCode,
    body: Value,
}

impl Failure {
    fn new(status: StatusCode, message: impl std::fmt::Display) -> Failure {
        Failure {
            status,
            body: json!({ "error": message.to_string() }),
        }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body)).into_response()
    }
}

impl From<NodeError> for Failure {
    fn from(error: NodeError) -> Failure {
        let status = match error {
            NodeError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            NodeError::FetchTimeout => StatusCode::GATEWAY_TIMEOUT,
            NodeError::NotConnected(_) => StatusCode::NOT_FOUND,
            NodeError::Fetch(FetchError::EmptyRange | FetchError::TooLong { .. }) => StatusCode::BAD_REQUEST,
            NodeError::Fetch(_) => StatusCode::BAD_GATEWAY,
            NodeError::Write(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Failure::new(status, error)
    }
}

/// Runs blocking store work off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, Failure> + Send + 'static) -> Result<T, Failure> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|error| Err(Failure::new(StatusCode::INTERNAL_SERVER_ERROR, error)))
}

async fn authenticate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if let Some(token) = &state.token {
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        if !presented.is_some_and(|presented| token.matches(presented.trim())) {
            let mut response = Failure::new(StatusCode::UNAUTHORIZED, "missing or wrong bearer token").into_response();
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
    }
    next.run(request).await
}

fn clock_json<'a>(clock: impl IntoIterator<Item = (&'a FeedId, &'a u64)>) -> Value {
    Value::Object(
        clock
            .into_iter()
            .map(|(id, &seq)| (id.to_string(), json!(seq)))
            .collect(),
    )
}

/// What the node's store holds, as [`clock_json`].
async fn node_clock(node: &Node) -> Result<Value, Failure> {
    let node = node.clone();
    blocking(move || Ok(clock_json(&node.clock()?))).await
}

/// The admins with when each was last heard, as JSON.
fn admins_json(admins: &[AdminHeard]) -> Value {
    admins
        .iter()
        .map(|admin| {
            json!({
                "feed": admin.feed.to_string(),
                "seq": admin.seq,
                "heard_at_ms": admin.heard_at_ms,
            })
        })
        .collect()
}

async fn readiness(node: &Node) -> Result<Readiness, Failure> {
    let node = node.clone();
    blocking(move || Ok(node.readiness()?)).await
}

async fn ready(State(state): State<AppState>) -> Result<Response, Failure> {
    let verdict = readiness(&state.node).await?;
    let behind: Vec<Value> = verdict
        .behind
        .iter()
        .map(|b| {
            json!({
                "feed": b.feed.to_string(),
                "peer": b.peer.to_string(),
                "held": b.held,
                "claimed": b.claimed,
            })
        })
        .collect();
    let status = if verdict.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "ready": verdict.ready,
        "reasons": verdict.reasons,
        "behind": behind,
        "admins": admins_json(&verdict.admins),
    });
    Ok((status, axum::Json(body)).into_response())
}

async fn status(State(state): State<AppState>) -> Result<axum::Json<Value>, Failure> {
    let clock = node_clock(&state.node).await?;
    let admins = admins_json(&readiness(&state.node).await?.admins);
    let peers: Vec<Value> = state
        .node
        .peers()
        .iter()
        .map(|peer| {
            json!({
                "id": peer.id.to_string(),
                "addr": peer.addr.to_string(),
                "clock": clock_json(&peer.clock),
            })
        })
        .collect();
    Ok(axum::Json(json!({
        "id": state.node.id().to_string(),
        "clock": clock,
        "peers": peers,
        "admins": admins,
    })))
}

/// The query of every write (`POST /v1/append`, the session writes):
/// `?acks=K&timeout_ms=T`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AckQuery {
    acks: Option<usize>,
    timeout_ms: Option<u64>,
}

/// How many peers a write waits for, and how long: the checked
/// [`AckQuery`] (400 if malformed or `timeout_ms` is over
/// [`MAX_ACK_TIMEOUT`]).
#[derive(Debug)]
struct Acks {
    wanted: Option<usize>,
    timeout: Duration,
}

impl<S: Send + Sync> FromRequestParts<S> for Acks {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Acks, Failure> {
        let Query(query) = Query::<AckQuery>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| Failure::new(StatusCode::BAD_REQUEST, rejection.body_text()))?;
        let timeout = match query.timeout_ms {
            Some(ms) if Duration::from_millis(ms) > MAX_ACK_TIMEOUT => {
                return Err(Failure::new(
                    StatusCode::BAD_REQUEST,
                    format!("timeout_ms is at most {}", MAX_ACK_TIMEOUT.as_millis()),
                ));
            }
            Some(ms) => Duration::from_millis(ms),
            None => DEFAULT_ACK_TIMEOUT,
        };
        Ok(Acks {
            wanted: query.acks,
            timeout,
        })
    }
}

impl Acks {
    /// Answers `answer` for this node's entry `seq`: at once without `acks`,
    /// else (with `"acked"`) once that many peers hold the entry; 504 with
    /// `answer`, `"acked"` and an `"error"` when time runs out.
    async fn answer(&self, node: &Node, seq: u64, mut answer: Value) -> Result<axum::Json<Value>, Failure> {
        let Some(wanted) = self.wanted else {
            return Ok(axum::Json(answer));
        };
        match node.wait_for_acks(seq, wanted, self.timeout).await {
            Ok(acked) => {
                answer["acked"] = json!(acked);
                Ok(axum::Json(answer))
            }
            Err(AckTimeout { acked, wanted }) => {
                answer["acked"] = json!(acked);
                answer["error"] = json!(format!(
                    "only {acked} of {wanted} peers acknowledged within {} ms; the entry is stored durably on this \
                     node and still replicates",
                    self.timeout.as_millis()
                ));
                Err(Failure {
                    status: StatusCode::GATEWAY_TIMEOUT,
                    body: answer,
                })
            }
        }
    }
}

/// A request body within [`MAX_PAYLOAD`] (413 beyond).
fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, Failure> {
    body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => Failure::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body larger than the limit of {MAX_PAYLOAD} bytes"),
        ),
        status => Failure::new(status, rejection.body_text()),
    })
}

async fn append(
    State(state): State<AppState>,
    acks: Acks,
    body: Result<Bytes, BytesRejection>,
) -> Result<axum::Json<Value>, Failure> {
    let payload = body_bytes(body)?;
    let entry = state.node.append(&payload).await?;
    let answer = json!({
        "feed": entry.author().to_string(),
        "seq": entry.seq(),
        "hash": entry.hash().to_string(),
    });
    acks.answer(&state.node, entry.seq(), answer).await
}

/// The query of `GET /v1/feeds/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RangeQuery {
    from: Option<u64>,
    to: Option<u64>,
    limit: Option<usize>,
}

async fn feeds(State(state): State<AppState>) -> Result<axum::Json<Value>, Failure> {
    let store = state.node.store();
    blocking(move || {
        let frozen: std::collections::BTreeMap<FeedId, u64> = store
            .forks()
            .map_err(NodeError::from)?
            .iter()
            .map(|proof| (proof.author(), proof.seq()))
            .collect();
        let feeds: Vec<Value> = store
            .clock()
            .map_err(NodeError::from)?
            .into_iter()
            .map(|(feed, latest)| json!({"id": feed.to_string(), "latest": latest, "frozen": frozen.get(&feed)}))
            .collect();
        Ok(axum::Json(json!({ "feeds": feeds })))
    })
    .await
}

async fn feed(
    State(state): State<AppState>,
    path: Result<axum::extract::Path<String>, PathRejection>,
    query: Result<Query<RangeQuery>, QueryRejection>,
) -> Result<Response, Failure> {
    let axum::extract::Path(id) =
        path.map_err(|rejection| Failure::new(StatusCode::BAD_REQUEST, rejection.body_text()))?;
    let feed: FeedId = id
        .parse()
        .map_err(|error| Failure::new(StatusCode::BAD_REQUEST, format!("malformed feed id {id:?}: {error}")))?;
    let Query(query) = query.map_err(|rejection| Failure::new(StatusCode::BAD_REQUEST, rejection.body_text()))?;
    let from = query.from.unwrap_or(1).max(1);
    let to = query.to.unwrap_or(u64::MAX);
    let limit = query.limit.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE);
    let store = state.node.store();
    let (page, latest, frozen_at) = blocking(move || {
        let Some(latest) = store.latest(&feed).map_err(NodeError::from)? else {
            return Err(Failure::new(
                StatusCode::NOT_FOUND,
                format!("this node holds no entry of {feed}"),
            ));
        };
        let page = if from <= to {
            store.range(&feed, from, to, limit).map_err(NodeError::from)?
        } else {
            Vec::new()
        };
        Ok((page, latest, store.frozen_at(&feed).map_err(NodeError::from)?))
    })
    .await?;
    let mut body = String::new();
    for (entry, _) in &page {
        body.push_str(&log_json(entry, frozen_at).to_string());
        body.push('\n');
    }
    let mut response = ([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response();
    if let Some((last, _)) = page.last()
        && page.len() == limit
        && last.seq() < to.min(latest)
        && let Ok(value) = HeaderValue::from_str(&(last.seq() + 1).to_string())
    {
        response.headers_mut().insert(NEXT_FROM_HEADER, value);
    }
    Ok(response)
}

/// The query of `GET /v1/peers/{peer}/feeds/{feed}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FetchQuery {
    from: u64,
    to: Option<u64>,
    timeout_ms: Option<u64>,
}

async fn peer_feed(
    State(state): State<AppState>,
    path: Result<axum::extract::Path<(String, String)>, PathRejection>,
    query: Result<Query<FetchQuery>, QueryRejection>,
) -> Result<Response, Failure> {
    let axum::extract::Path((peer, feed)) =
        path.map_err(|rejection| Failure::new(StatusCode::BAD_REQUEST, rejection.body_text()))?;
    let parse = |id: &str| -> Result<FeedId, Failure> {
        id.parse()
            .map_err(|error| Failure::new(StatusCode::BAD_REQUEST, format!("malformed feed id {id:?}: {error}")))
    };
    let (peer, feed) = (parse(&peer)?, parse(&feed)?);
    let Query(query) = query.map_err(|rejection| Failure::new(StatusCode::BAD_REQUEST, rejection.body_text()))?;
    let to = query.to.unwrap_or(query.from);
    let timeout = query.timeout_ms.map_or(DEFAULT_FETCH_TIMEOUT, Duration::from_millis);
    let records = state.node.fetch_range(peer, feed, query.from, to, timeout).await?;
    let mut body = String::new();
    for (entry, _) in &records {
        body.push_str(&entry_json(entry).to_string());
        body.push('\n');
    }
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}

async fn metrics_text(State(state): State<AppState>) -> Result<Response, Failure> {
    let sessions = state.sessions.clone();
    let text = blocking(move || Ok(render_metrics(&sessions)?)).await?;
    Ok(([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response())
}
