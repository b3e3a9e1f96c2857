//! The Redis protocol (RESP2) endpoint of a running node: any Redis
//! client, `redis-cli` or `redis-benchmark` reads and writes the node's
//! session store ([`Sessions`]) by pointing at its port.
//! spec/RESP.md is normative: commands, replies, limits, the mapping of
//! values; README.md has the command table.
//!
//! ```no_run
//! # async fn demo(sessions: feedmesh::sessions::Sessions) -> Result<(), feedmesh::resp::RespError> {
//! let server = feedmesh::resp::RespServer::bind("127.0.0.1:6379".parse().unwrap(), sessions, None).await?;
//! server.run(std::future::pending()).await;
//! # Ok(()) }
//! ```
//!
//! The modules, one job each: [`codec`] frames commands out of the bytes
//! read (bounded before `redis-protocol`'s decoder sees them) and encodes
//! replies; [`command`] parses a command's arguments; `exec` runs it
//! against the session store; `conn` is the connection loop (pipelining,
//! ordering, back-pressure); `keyspace` and [`glob`] answer `SCAN` and
//! `KEYS`; [`value`] maps values between RESP and the store.
//!
//! # Authentication
//!
//! With an [`ApiToken`], a client must `AUTH TOKEN` (or `AUTH default
//! TOKEN`, or `HELLO 2 AUTH default TOKEN`) before any command but `AUTH`,
//! `HELLO` and `QUIT`; otherwise it gets `-NOAUTH Authentication
//! required.`. [`RespServer::bind`] refuses an address that is not
//! loopback without a token ([`requires_token`]), as the HTTP API does.

pub mod codec;
pub mod command;
mod conn;
mod exec;
pub mod glob;
mod keyspace;
pub mod value;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::sessions::Sessions;
use crate::token::{ApiToken, requires_token};

pub use keyspace::MAX_KEYS;

/// The Redis version the endpoint reports (`INFO`, `HELLO`): clients that
/// check for features compare it.
pub const REDIS_VERSION: &str = "7.2.0";
/// The most connections served at once, unless
/// [`RespServer::with_max_connections`] says otherwise; one more is
/// answered `-ERR max number of clients reached` and closed.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// The most replies one connection may have waiting (running or not yet
/// written); past it the connection stops reading.
pub const MAX_PENDING: usize = 1024;
/// The longest a `WAIT` waits (also for a timeout of 0, "forever" in Redis).
pub const MAX_WAIT: Duration = Duration::from_secs(300);

/// What `CONFIG GET` answers (clients such as `redis-benchmark` read
/// them): no snapshots, every write appended to the node's feed and synced
/// before it is answered, one database.
pub const CONFIG: &[(&str, &str)] = &[
    ("save", ""),
    ("appendonly", "yes"),
    ("appendfsync", "always"),
    ("databases", "1"),
];

/// Errors of setting the endpoint up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RespError {
    /// A non-loopback address without a token.
    #[error("the Redis protocol address {0} is not loopback: give a token with --api-token-file (or api_token_file)")]
    TokenRequired(SocketAddr),
    /// The address could not be bound.
    #[error("cannot listen for the Redis protocol on {addr}: {error}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        error: std::io::Error,
    },
}

/// A bound Redis protocol listener, ready to serve.
#[derive(Debug)]
pub struct RespServer {
    listener: TcpListener,
    sessions: Sessions,
    token: Option<ApiToken>,
    addr: SocketAddr,
    max_connections: usize,
}

impl RespServer {
    /// Binds `addr` (port 0: any free port). Refuses an address that is not
    /// loopback without a token ([`RespError::TokenRequired`]).
    pub async fn bind(addr: SocketAddr, sessions: Sessions, token: Option<ApiToken>) -> Result<RespServer, RespError> {
        if token.is_none() && requires_token(addr) {
            return Err(RespError::TokenRequired(addr));
        }
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|error| RespError::Bind { addr, error })?;
        RespServer::from_listener(listener, sessions, token)
    }

    /// Serves on a listener bound already, under the same rule as
    /// [`RespServer::bind`].
    pub fn from_listener(
        listener: TcpListener,
        sessions: Sessions,
        token: Option<ApiToken>,
    ) -> Result<RespServer, RespError> {
        let addr = listener.local_addr().map_err(|error| RespError::Bind {
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            error,
        })?;
        if token.is_none() && requires_token(addr) {
            return Err(RespError::TokenRequired(addr));
        }
        Ok(RespServer {
            listener,
            sessions,
            token,
            addr,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        })
    }

    /// Serves at most `max` connections at once (at least 1; default
    /// [`DEFAULT_MAX_CONNECTIONS`]).
    pub fn with_max_connections(mut self, max: usize) -> RespServer {
        self.max_connections = max.max(1);
        self
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves clients until `shutdown` completes, then lets every
    /// connection write the replies under way and close. A client must
    /// `AUTH` with the token, if there is one.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        let RespServer {
            listener,
            sessions,
            token,
            addr,
            max_connections,
        } = self;
        let shared = Arc::new(exec::Shared::new(sessions, token, addr.port(), max_connections));
        let (stop, stopped) = watch::channel(false);
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                accepted = listener.accept() => {
                    let mut stream = match accepted {
                        Ok((stream, _)) => stream,
                        Err(error) => {
                            // Out of file descriptors, say: back off, go on.
                            tracing::warn!(%error, "resp accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    let Ok(slot) = shared.slots.clone().try_acquire_owned() else {
                        connections.spawn(async move {
                            let _ = stream.write_all(b"-ERR max number of clients reached\r\n").await;
                        });
                        continue;
                    };
                    let (shared, stopped) = (shared.clone(), stopped.clone());
                    connections.spawn(async move {
                        conn::serve(stream, shared, stopped).await;
                        drop(slot);
                    });
                }
            }
        }
        drop(listener);
        let _ = stop.send(true);
        while connections.join_next().await.is_some() {}
    }
}
