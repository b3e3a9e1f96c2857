//! The `feedmesh` command: parses arguments, calls the library, maps the
//! outcome to an exit code (0 success, 1 failure, 2 usage). Errors are one
//! line on stderr.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use feedmesh::bundle::{self, ImportOptions};
use feedmesh::clock::system_time_ms;
use feedmesh::feed::{Entry, FeedId, MAX_PAYLOAD};
use feedmesh::integrity::verify_store;
use feedmesh::net::NetworkKey;
use feedmesh::node::{Node, NodeConfig};
use feedmesh::node_dir::{NETWORK_KEY_FILE, NodeDir};
use feedmesh::store::Store;
use feedmesh::writer::FeedWriter;
use serde_json::json;

mod demo;

#[derive(Parser)]
#[command(
    name = "feedmesh",
    version,
    about = "Append-only signed feeds: store, verify, export, import, replicate"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate a network key: 64 hex digits and a newline (to FILE, or standard output).
    ///
    /// Every node of a network needs the same key: give it to each `init`
    /// with --network-key-file.
    NetworkKey {
        /// Write the key to this file (created with mode 0600; must not exist).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Create a node directory (new identity, empty store) and print its feed id.
    ///
    /// Without --network-key-file the node gets a fresh network key of its
    /// own (a note on standard error says so): it can then only talk to nodes
    /// holding a copy of DIR/network_key.
    Init {
        /// The node directory; must not already hold a node.
        #[arg(long)]
        dir: PathBuf,
        /// The network key to join (a file from `feedmesh network-key`).
        #[arg(long, value_name = "FILE")]
        network_key_file: Option<PathBuf>,
    },
    /// Run a node: accept peers, dial peers, replicate, until SIGINT or SIGTERM.
    ///
    /// Prints `listening on ADDR` on standard error once bound. Logs go to
    /// standard error through `tracing`; the level comes from RUST_LOG
    /// (default `info`).
    Serve(ServeArgs),
    /// Print the node's feed id.
    Id {
        /// The node directory.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Append one entry whose payload is FILE's bytes (standard input without FILE).
    Append {
        /// The node directory.
        #[arg(long)]
        dir: PathBuf,
        /// The payload file.
        file: Option<PathBuf>,
    },
    /// Print stored entries as JSON lines.
    Log {
        /// The node directory.
        #[arg(long)]
        dir: PathBuf,
        /// Only this feed (default: every feed).
        #[arg(long)]
        feed: Option<FeedId>,
        /// First sequence number.
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// Last sequence number.
        #[arg(long)]
        to: Option<u64>,
    },
    /// Re-verify every stored feed from scratch.
    Verify {
        /// The node directory.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Write a feed's entries and payloads as a bundle.
    Export {
        /// The node directory.
        #[arg(long)]
        dir: PathBuf,
        /// The feed to export.
        #[arg(long)]
        feed: FeedId,
        /// First sequence number.
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// Output file (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Validate and store a bundle (standard input without FILE).
    Import {
        /// The node directory.
        #[arg(long)]
        dir: PathBuf,
        /// The bundle file.
        file: Option<PathBuf>,
        /// Accept records without payloads (headers only).
        #[arg(long)]
        allow_missing_payloads: bool,
    },
    /// Show feedmesh working: two nodes, appends, export, import, tampering.
    Demo {
        /// Where to create the demo's nodes (default: a new temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

/// Arguments of `feedmesh serve`.
#[derive(clap::Args)]
struct ServeArgs {
    /// The node directory (must hold a network key).
    #[arg(long)]
    dir: PathBuf,
    /// Address to accept peers on (port 0: any free port).
    #[arg(long)]
    listen: SocketAddr,
    /// A peer to dial and keep connected (repeatable).
    #[arg(long = "peer", value_name = "ADDR")]
    peers: Vec<SocketAddr>,
    /// Log format on standard error.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Most inbound connections at once.
    #[arg(long, default_value_t = feedmesh::node::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// Time allowed for a handshake, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    handshake_timeout_ms: u64,
    /// First reconnect delay, in milliseconds.
    #[arg(long, default_value_t = 100)]
    reconnect_min_ms: u64,
    /// Largest reconnect delay, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    reconnect_max_ms: u64,
}

/// How `serve` writes its logs.
#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (for log shippers).
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("feedmesh: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error
        .chain()
        .any(|cause| matches!(cause.downcast_ref::<io::Error>(), Some(e) if e.kind() == io::ErrorKind::BrokenPipe))
}

fn run(command: Command) -> anyhow::Result<()> {
    let mut out = BufWriter::new(io::stdout().lock());
    match command {
        Command::NetworkKey { out: path } => {
            let key = NetworkKey::generate()?;
            match path {
                Some(path) => key.write_file(&path).with_context(|| format!("{}", path.display()))?,
                None => writeln!(out, "{}", key.to_hex())?,
            }
        }
        Command::Init { dir, network_key_file } => {
            let (key, fresh) = match &network_key_file {
                Some(path) => (
                    NetworkKey::read_file(path).with_context(|| format!("{}", path.display()))?,
                    false,
                ),
                None => (NetworkKey::generate()?, true),
            };
            let node = NodeDir::create_with_network_key(&dir, Some(&key))?;
            writeln!(out, "{}", node.feed_id())?;
            if fresh {
                eprintln!(
                    "note: created a new network key in {}; peers need the same key \
                     (init them with --network-key-file {})",
                    dir.join(NETWORK_KEY_FILE).display(),
                    dir.join(NETWORK_KEY_FILE).display()
                );
            }
        }
        Command::Serve(args) => {
            out.flush()?;
            serve(args)?;
        }
        Command::Id { dir } => writeln!(out, "{}", NodeDir::open(&dir)?.feed_id())?,
        Command::Append { dir, file } => {
            let payload = read_input(file.as_deref(), MAX_PAYLOAD)?;
            let entry = append(&dir, &payload)?;
            writeln!(
                out,
                "{}",
                json!({"feed": entry.author().to_string(), "seq": entry.seq(), "hash": entry.hash().to_string()})
            )?;
        }
        Command::Log { dir, feed, from, to } => {
            let store = NodeDir::open(&dir)?.open_store()?;
            let feeds = match feed {
                Some(feed) => vec![feed],
                None => store.clock()?.into_keys().collect(),
            };
            for feed in feeds {
                print_log(&store, &feed, from, to.unwrap_or(u64::MAX), &mut out)?;
            }
        }
        Command::Verify { dir } => {
            let store = NodeDir::open(&dir)?.open_store()?;
            let report = verify_store(&store)?;
            writeln!(
                out,
                "ok: {} feeds, {} entries, {} payloads verified, {} fork proofs held",
                report.feeds, report.entries, report.payloads, report.forks
            )?;
        }
        Command::Export {
            dir,
            feed,
            from,
            out: path,
        } => {
            let store = NodeDir::open(&dir)?.open_store()?;
            if store.latest(&feed)?.is_none() {
                bail!("this node holds no entry of {feed}");
            }
            match path {
                Some(path) => {
                    let file = File::create(&path).with_context(|| format!("{}", path.display()))?;
                    bundle::export(&store, &feed, from, BufWriter::new(file))?;
                }
                None => {
                    bundle::export(&store, &feed, from, &mut out)?;
                }
            }
        }
        Command::Import {
            dir,
            file,
            allow_missing_payloads,
        } => {
            let store = NodeDir::open(&dir)?.open_store()?;
            let input: Box<dyn Read> = match &file {
                Some(path) => Box::new(File::open(path).with_context(|| format!("{}", path.display()))?),
                None => Box::new(io::stdin().lock()),
            };
            let outcome = bundle::import(
                &store,
                io::BufReader::new(input),
                ImportOptions { allow_missing_payloads },
            )?;
            writeln!(
                out,
                "{}",
                json!({"records": outcome.records, "appended": outcome.report.appended, "already_held": outcome.report.already_held})
            )?;
            if let Some(error) = outcome.error {
                out.flush()?;
                bail!("import stopped, nothing from this record on was stored: {error}");
            }
        }
        Command::Demo { dir } => demo::run(dir.as_deref(), &mut out)?,
    }
    out.flush()?;
    Ok(())
}

/// Runs a node until SIGINT or SIGTERM, then shuts it down gracefully.
fn serve(args: ServeArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);
    let config = NodeConfig {
        listen: Some(args.listen),
        peers: args.peers,
        max_connections: args.max_connections,
        handshake_timeout: Duration::from_millis(args.handshake_timeout_ms),
        reconnect_min: Duration::from_millis(args.reconnect_min_ms),
        reconnect_max: Duration::from_millis(args.reconnect_max_ms),
        ..NodeConfig::new(args.dir)
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let node = Node::start(config).await?;
        if let Some(addr) = node.local_addr() {
            eprintln!("listening on {addr}");
        }
        tracing::info!(id = %node.id(), "node started");
        // Services beside the node (the HTTP API) start here, on `node.clone()`.
        let signal = wait_for_signal().await;
        tracing::info!(signal, "shutting down");
        node.shutdown().await;
        anyhow::Ok(())
    })
}

/// Sends `tracing` output to standard error, filtered by RUST_LOG (default `info`).
fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Waits for SIGINT or SIGTERM; returns the signal's name.
async fn wait_for_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            },
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "ctrl-c"
    }
}

/// Reads at most `limit` bytes from a file or standard input.
fn read_input(file: Option<&Path>, limit: u64) -> anyhow::Result<Vec<u8>> {
    let input: Box<dyn Read> = match file {
        Some(path) => Box::new(File::open(path).with_context(|| format!("{}", path.display()))?),
        None => Box::new(io::stdin().lock()),
    };
    let mut payload = Vec::new();
    input.take(limit + 1).read_to_end(&mut payload)?;
    if payload.len() as u64 > limit {
        bail!("payload larger than the limit of {limit} bytes");
    }
    Ok(payload)
}

/// Appends one payload to the node's own feed, durably.
fn append(dir: &Path, payload: &[u8]) -> anyhow::Result<Entry> {
    let node = NodeDir::open(dir)?;
    let store = node.open_store()?;
    let mut writer = FeedWriter::open(&store, node.keys().clone())?;
    let mut entries = writer.append(&store, &[payload], system_time_ms())?;
    entries.pop().context("no entry was written")
}

fn print_log(store: &dyn Store, feed: &FeedId, from: u64, to: u64, out: &mut impl Write) -> anyhow::Result<()> {
    const PAGE: usize = 4096;
    let mut next = from.max(1);
    while next <= to {
        let page = store.range(feed, next, to, PAGE)?;
        for (entry, _) in &page {
            writeln!(out, "{}", log_line(entry))?;
        }
        match page.last() {
            Some((last, _)) if page.len() == PAGE => next = last.seq() + 1,
            _ => break,
        }
    }
    Ok(())
}

/// One `feedmesh log` line.
fn log_line(entry: &Entry) -> serde_json::Value {
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
