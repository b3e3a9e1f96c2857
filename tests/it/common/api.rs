//! The HTTP API of an in-process node, served on loopback for a test.

use std::net::SocketAddr;

use feedmesh::api::{ApiServer, ApiToken};
use feedmesh::node::Node;

/// Serves the API of `node` on loopback (a port the OS chooses) until the
/// test ends.
pub(crate) async fn serve_api(node: &Node, token: Option<ApiToken>) -> SocketAddr {
    let server = ApiServer::bind("127.0.0.1:0".parse().expect("addr"), node.clone(), token)
        .await
        .expect("bind the API");
    let addr = server.local_addr();
    tokio::spawn(server.run(std::future::pending()));
    addr
}
