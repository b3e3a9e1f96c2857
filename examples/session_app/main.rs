//! A web app whose login sessions live in feedmesh: run one instance per
//! node, each next to its own node directory, and a session cookie from any
//! instance works on all of them (see `app.rs` for the routes, and the
//! README's "Example: sessions for a web app" for a three-instance run).
//!
//! ```sh
//! cargo run --example session_app -- --dir DIR --listen 127.0.0.1:7001 --http 127.0.0.1:8081 --peer 127.0.0.1:7002
//! ```

mod app;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use feedmesh::node::NodeConfig;
use feedmesh::sessions::Sessions;

/// Serves the session example app next to a feedmesh node.
#[derive(Parser, Debug)]
#[command(name = "session_app")]
struct Args {
    /// The node directory (`feedmesh init --network-key-file ...`).
    #[arg(long)]
    dir: PathBuf,
    /// Address to accept feedmesh peers on.
    #[arg(long)]
    listen: SocketAddr,
    /// Address to serve the web app on (plain HTTP).
    #[arg(long)]
    http: SocketAddr,
    /// A feedmesh peer to dial and keep connected (repeatable).
    #[arg(long = "peer", value_name = "ADDR")]
    peers: Vec<SocketAddr>,
    /// How many peers must hold a session write before the app answers
    /// (waiting at most 2 s); 0: answer once it is durable locally.
    #[arg(long, default_value_t = 1)]
    acks: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    let mut config = NodeConfig::new(&args.dir);
    config.listen = Some(args.listen);
    config.peers = args.peers;
    let sessions = Sessions::start(config).await.context("starting the node")?;
    let node = sessions.node().clone();
    let listener = tokio::net::TcpListener::bind(args.http)
        .await
        .with_context(|| format!("binding {}", args.http))?;
    tracing::info!(
        id = %node.id(),
        listen = %node.local_addr().unwrap_or(args.listen),
        http = %listener.local_addr()?,
        "session app started"
    );
    let served = axum::serve(listener, app::app(sessions, args.acks))
        .with_graceful_shutdown(signal())
        .await;
    node.shutdown().await;
    served.context("serving HTTP")
}

/// Waits for SIGINT (ctrl-c) or, on Unix, SIGTERM.
async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
