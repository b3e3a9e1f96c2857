//! The audit routes of the HTTP API and the audit page: the reports of
//! spec/AUDIT.md §2 over the running node's store (spec/AUDIT.md "Over
//! HTTP").
//!
//! | request | answer |
//! |---|---|
//! | `GET /v1/audit/sessions/{KEY}` | the session report of `KEY` ([`session_report`]) |
//! | `GET /v1/audit/members/{FEED_ID}?since=MS&until=MS` | the member report of `FEED_ID` ([`member_report`]): its entries with a wall time in `since..=until` (milliseconds since the Unix epoch; defaults 0 and 2^64 - 1) |
//! | `GET /v1/audit/health` | the health report ([`health_report`]) with what each connected peer last claimed to hold ([`Node::peers`]) and, with admins, an `admin` line per admin feed saying when it was last heard from ([`Node::readiness`]) |
//! | `GET /audit` | the audit page: one static HTML file that reads the three routes above |
//!
//! Each report is answered as JSON lines (`application/x-ndjson`), byte for
//! byte what `feedmesh audit ... --json` prints for a stopped node with the
//! same store, admins ([`Node::admins`]) and local time. `KEY` is a
//! percent-decoded path segment of UTF-8, at most
//! [`MAX_KEY`](crate::view::MAX_KEY) bytes. Errors are `{"error": "..."}`:
//! 400 for a malformed key, feed id or query (`since` after `until`), 401
//! without the bearer token, 500 when the store fails.
//!
//! The page holds no data: it is served without the token, and every
//! request it makes carries the token the user gives it (a field on the page,
//! or the `token` query parameter of the page's address).

use axum::Router;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use super::{AppState, Failure, blocking};
use crate::audit::{AdminLine, AuditError, PeerClaims, health_report, member_report, session_report};
use crate::feed::FeedId;
use crate::node::Node;
use crate::store::Store;
use crate::view::MAX_KEY;

/// The audit page, served at `GET /audit`.
const PAGE: &str = include_str!("audit_page.html");

/// What the page may load: nothing but its own inline script and style, and
/// requests to this node.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                           connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The report routes (behind the token), merged into [`super::router`].
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/audit/sessions/{key}", get(session))
        .route("/v1/audit/members/{feed}", get(member))
        .route("/v1/audit/health", get(health))
}

/// The page's route (no token: the page holds no data), merged into
/// [`super::router`] outside the token check.
pub(super) fn page() -> Router<AppState> {
    Router::new().route("/audit", get(page_html))
}

async fn page_html() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, PAGE_POLICY),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        PAGE,
    )
        .into_response()
}

/// A report made by `make` from the node's store, admins and the local time,
/// off the async threads, answered as JSON lines.
async fn report(
    node: &Node,
    make: impl FnOnce(&dyn Store, &[FeedId], u64) -> Result<String, AuditError> + Send + 'static,
) -> Result<Response, Failure> {
    let node = node.clone();
    let lines = blocking(move || {
        make(&*node.store(), node.admins(), node.now_ms())
            .map_err(|error| Failure::new(StatusCode::INTERNAL_SERVER_ERROR, error))
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], lines).into_response())
}

/// The path segment, percent-decoded (400 if it is not UTF-8).
fn segment(path: Result<Path<String>, PathRejection>) -> Result<String, Failure> {
    path.map(|Path(segment)| segment)
        .map_err(|rejection| Failure::new(StatusCode::BAD_REQUEST, rejection.body_text()))
}

async fn session(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, Failure> {
    let key = segment(path)?;
    if key.len() > MAX_KEY {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            format!("a session key is at most {MAX_KEY} bytes"),
        ));
    }
    let window = state.sessions.window();
    report(&state.node, move |store, admins, now_ms| {
        Ok(session_report(store, admins, window, key.as_bytes(), now_ms)?.json_lines())
    })
    .await
}

/// The query of `GET /v1/audit/members/{feed}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberQuery {
    since: Option<u64>,
    until: Option<u64>,
}

async fn member(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<MemberQuery>, QueryRejection>,
) -> Result<Response, Failure> {
    let id = segment(path)?;
    let feed: FeedId = id
        .parse()
        .map_err(|error| Failure::new(StatusCode::BAD_REQUEST, format!("malformed feed id {id:?}: {error}")))?;
    let Query(query) = query.map_err(|rejection| Failure::new(StatusCode::BAD_REQUEST, rejection.body_text()))?;
    let (since_ms, until_ms) = (query.since.unwrap_or(0), query.until.unwrap_or(u64::MAX));
    if since_ms > until_ms {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            format!("since ({since_ms}) is after until ({until_ms})"),
        ));
    }
    let window = state.sessions.window();
    report(&state.node, move |store, admins, now_ms| {
        Ok(member_report(store, admins, window, feed, since_ms, until_ms, now_ms)?.json_lines())
    })
    .await
}

async fn health(State(state): State<AppState>) -> Result<Response, Failure> {
    let admins: Vec<AdminLine> = super::readiness(&state.node)
        .await?
        .admins
        .into_iter()
        .map(|admin| AdminLine {
            feed: admin.feed.to_string(),
            seq: admin.seq,
            heard_at_ms: admin.heard_at_ms,
        })
        .collect();
    let claims: PeerClaims = state
        .node
        .peers()
        .into_iter()
        .map(|peer| (peer.id, peer.clock))
        .collect();
    let heard = admins;
    let window = state.sessions.window();
    report(&state.node, move |store, admins, now_ms| {
        let mut report = health_report(store, admins, window, now_ms, &claims)?;
        report.admins = heard;
        Ok(report.json_lines())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_self_contained() {
        for external in [
            "http://",
            "https://",
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
        ] {
            assert!(!PAGE.contains(external), "the page uses {external}");
        }
        for id in [
            "session-key",
            "session-search",
            "timeline",
            "state",
            "member-id",
            "member-search",
            "health",
        ] {
            assert!(PAGE.contains(&format!("id=\"{id}\"")), "the page lacks #{id}");
        }
        assert!(PAGE.lines().count() < 400);
    }
}
