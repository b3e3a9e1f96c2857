//! The HTTP API of an in-process node, served on loopback for a test.

use std::net::SocketAddr;

use feedmesh::api::{ApiServer, ApiToken};
use feedmesh::sessions::Sessions;

/// Serves the API of `sessions` and its node on loopback (a port the OS
/// chooses) until the test ends.
pub(crate) async fn serve_api(sessions: &Sessions, token: Option<ApiToken>) -> SocketAddr {
    let server = ApiServer::bind("127.0.0.1:0".parse().expect("addr"), sessions.clone(), token)
        .await
        .expect("bind the API");
    let addr = server.local_addr();
    tokio::spawn(server.run(std::future::pending()));
    addr
}
