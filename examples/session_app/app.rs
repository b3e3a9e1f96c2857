//! The reusable part of the session example: a small axum app logging users
//! in and out with `tower-sessions`, its sessions kept in a feedmesh node's
//! replicated session store by the library's
//! [`feedmesh::tower_sessions::FeedmeshStore`]. Every instance of the app runs next to
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

use std::time::Duration;

use axum::extract::{FromRequest, Request, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use feedmesh::sessions::Sessions;
use feedmesh::tower_sessions::FeedmeshStore;
use feedmesh::view::MAX_OWNER;
use serde::{Deserialize, Serialize};
use tower_sessions::cookie::time;
use tower_sessions::{Expiry, Session, SessionManagerLayer, session};

/// The session data key holding the logged-in user; the store makes it the
/// session's owner, for [`FeedmeshStore::revoke_owner`].
const USER: &str = feedmesh::tower_sessions::DEFAULT_OWNER_FIELD;

/// How long a session lives without being written to.
const INACTIVITY: time::Duration = time::Duration::hours(8);

/// How long a write waits for its acknowledgements before answering anyway.
const ACK_TIMEOUT: Duration = Duration::from_secs(2);

/// The app of one instance: the routes of the module doc, with sessions kept
/// in `sessions` (the node's session store), each write waiting for `acks`
/// peers (at most [`ACK_TIMEOUT`]; see [`FeedmeshStore`]).
pub(crate) fn app(sessions: Sessions, acks: usize) -> Router {
    let store = FeedmeshStore::new(sessions).with_acks(acks, ACK_TIMEOUT);
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
