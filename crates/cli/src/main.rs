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
use config::{CONFIG_FILE, LogFormat, ServeConfig};
use feedmesh::api::{ApiError, ApiServer, ApiToken, log_json, requires_token};
use feedmesh::bundle::{self, ImportOptions};
use feedmesh::clock::system_time_ms;
use feedmesh::feed::{Entry, FeedId, MAX_PAYLOAD};
use feedmesh::integrity::verify_store;
use feedmesh::net::NetworkKey;
use feedmesh::node::NodeConfig;
use feedmesh::node_dir::{NETWORK_KEY_FILE, NodeDir};
use feedmesh::resp::{RespError, RespServer};
use feedmesh::sessions::Sessions;
use feedmesh::store::{Store, pages};
use feedmesh::view::HistoryWindow;
use feedmesh::writer::FeedWriter;
use serde_json::json;

mod commands;
mod config;

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
        /// An admin feed of the network (repeatable; `self` is this node's
        /// new id), written to DIR/admins. Without any, the network is open:
        /// every holder of the network key is a member. Every node of a
        /// network needs the same admins.
        #[arg(long = "admin", value_name = "FEED_ID", value_parser = parse_admin)]
        admins: Vec<Admin>,
        /// The session lifetime L, in seconds: no session outlives the put
        /// that set its value by more, whatever touches follow (1 to
        /// 2,592,000), written to DIR/history_window. Every node of a
        /// network needs the same [default: 86400].
        #[arg(long, value_name = "SECS")]
        session_lifetime: Option<u64>,
        /// The retention margin M, in seconds: how late an entry may arrive
        /// and still be folded with every guarantee (0 to 604,800). With L it
        /// sets the history window 2L + M + 60 s outside which operations
        /// are dead (spec/SESSIONS.md §2.6) [default: 3600].
        #[arg(long, value_name = "SECS")]
        retention_margin: Option<u64>,
    },
    /// Run a node: accept peers, dial peers, replicate, until SIGINT or SIGTERM.
    ///
    /// Prints `listening on ADDR` on standard error once bound (and
    /// `api listening on ADDR` for the HTTP API, `resp listening on ADDR`
    /// for the Redis protocol endpoint). Logs go to standard error
    /// through `tracing`; the level comes from RUST_LOG (default `info`).
    ///
    /// The HTTP API (--api): GET /v1/status, POST /v1/append (body: the
    /// payload; ?acks=K&timeout_ms=T waits for K peers), GET
    /// /v1/feeds/FEED_ID?from=N&to=M (JSON lines), GET /metrics
    /// (Prometheus); the session store: PUT, GET, DELETE
    /// /v1/sessions/KEY, POST /v1/sessions/KEY/touch, DELETE
    /// /v1/owners/OWNER/sessions, GET /v1/view/digest; membership: GET
    /// /v1/members, POST /v1/members/FEED_ID[/remove]; the audit: GET
    /// /v1/audit/sessions/KEY, /v1/audit/members/FEED_ID, /v1/audit/health,
    /// and the page /audit. It binds loopback addresses only, unless given a
    /// bearer token with --api-token-file.
    ///
    /// The Redis protocol endpoint (--resp): GET, SET (EX/PX/EXAT/PXAT,
    /// NX/XX, KEEPTTL, GET, OWNER user), MGET, GETEX, DEL, EXISTS, EXPIRE,
    /// TTL, SCAN, KEYS, WAIT, FEEDMESH.REVOKEOWNER user, PING, AUTH, INFO
    /// and the connection commands (spec/RESP.md). Same token rule as the API.
    ///
    /// Settings can also come from a TOML config file, DIR/feedmesh.toml by
    /// default (--config FILE for another); flags override it (--peer flags
    /// replace its list). Keys, all optional: listen = "IP:PORT" (required
    /// here or as --listen); peers = ["IP:PORT", ...] (default none); api =
    /// "IP:PORT" (default: no API); api_token_file = "FILE" (relative to
    /// DIR); resp = "IP:PORT" (default: none); log_format = "text" or "json" (default "text");
    /// max_connections (default 64); max_handshakes (32);
    /// max_handshakes_per_addr (8); handshake_timeout_ms (5000);
    /// reconnect_min_ms (100); reconnect_max_ms (10000);
    /// ready_admin_within_ms (300000); max_feeds (64512);
    /// buffer_budget_bytes (67108864); outbox_budget_bytes (134217728);
    /// snapshot_interval_ms (300000). With --api, GET /v1/ready answers 200
    /// only when the node holds what its peers claimed at connect and (with
    /// admins) heard an admin feed within that bound, else 503 with the
    /// reasons: the probe for a load balancer.
    Serve(Box<ServeArgs>),
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
    /// Print stored entries as JSON lines. An entry at or after the fork
    /// point N of a feed frozen by a fork proof carries `"frozen": N`.
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
    /// Read and write the session store of a running node through its HTTP API.
    ///
    /// Each command prints the API's JSON answer on one line; a failure
    /// (an HTTP error status included) is one line on standard error and
    /// exit status 1.
    #[command(subcommand)]
    Session(commands::session::SessionCommand),
    /// Reports over a stopped node's store: `session KEY`, `member FEED_ID`,
    /// `health`; `--bundle FILE` also writes evidence (spec/AUDIT.md).
    Audit(commands::audit::AuditArgs),
    /// Check an evidence bundle offline and print the report it backs.
    VerifyBundle(commands::audit::VerifyBundleArgs),
    /// Benchmarks on real nodes (separate processes on loopback): `bench
    /// sessions` (throughput, replication lag, gets, memory, disk) and `bench
    /// catchup` (a restarted node catching up).
    #[command(subcommand)]
    Bench(commands::bench::BenchCommand),
    /// Admit or remove a member (admins only; the node must be stopped).
    #[command(subcommand)]
    Member(commands::member::MemberCommand),
    /// Show feedmesh working: two nodes, appends, export, import, tampering.
    Demo {
        /// Where to create the demo's nodes (default: a new temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

/// Arguments of `feedmesh serve`. Every setting but `--dir` and `--config`
/// can also come from the config file (`config::ServeConfig`); a flag
/// overrides it.
#[derive(clap::Args)]
struct ServeArgs {
    /// The node directory (must hold a network key).
    #[arg(long)]
    dir: PathBuf,
    /// Address to accept peers on (port 0: any free port) [config: listen; required here or there].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// A peer to dial and keep connected (repeatable) [config: peers].
    #[arg(long = "peer", value_name = "ADDR")]
    peers: Vec<SocketAddr>,
    /// Log format on standard error [config: log_format; default: text].
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
    /// Most established inbound connections at once [config: max_connections; default: 64].
    #[arg(long)]
    max_connections: Option<usize>,
    /// Most unfinished inbound handshakes at once [config: max_handshakes; default: 32].
    #[arg(long)]
    max_handshakes: Option<usize>,
    /// Most unfinished inbound handshakes from one IP address [config: max_handshakes_per_addr; default: 8].
    #[arg(long)]
    max_handshakes_per_addr: Option<usize>,
    /// Time allowed for a handshake, in milliseconds [config: handshake_timeout_ms; default: 5000].
    #[arg(long)]
    handshake_timeout_ms: Option<u64>,
    /// First reconnect delay, in milliseconds [config: reconnect_min_ms; default: 100].
    #[arg(long)]
    reconnect_min_ms: Option<u64>,
    /// In an open network, how many feeds to take from peers before taking only connected peers' own feeds [config: max_feeds; default: 64512].
    #[arg(long)]
    max_feeds: Option<usize>,
    /// Bytes of large incoming messages all connections may hold at once; a connection whose message does not fit waits [config: buffer_budget_bytes; default: 67108864].
    #[arg(long)]
    buffer_budget_bytes: Option<usize>,
    /// Bytes of messages all connections may hold waiting to be sent, shared equally among the connections the node may have [config: outbox_budget_bytes; default: 134217728].
    #[arg(long)]
    outbox_budget_bytes: Option<usize>,
    /// With admins, how recently an admin feed must have been heard from for GET /v1/ready, in milliseconds [config: ready_admin_within_ms; default: 300000].
    #[arg(long)]
    ready_admin_within_ms: Option<u64>,
    /// How often the session view is saved as a snapshot in the store (if it changed; also at shutdown), in milliseconds: a restart folds only the entries stored after it [config: snapshot_interval_ms; default: 300000].
    #[arg(long)]
    snapshot_interval_ms: Option<u64>,
    /// Largest reconnect delay, in milliseconds [config: reconnect_max_ms; default: 10000].
    #[arg(long)]
    reconnect_max_ms: Option<u64>,
    /// Serve the HTTP API on this address (port 0: any free port) [config: api; default: no API].
    /// An address that is not loopback needs --api-token-file.
    #[arg(long, value_name = "ADDR")]
    api: Option<SocketAddr>,
    /// File holding the API's bearer token: every request then needs
    /// `Authorization: Bearer TOKEN`, and every Redis protocol client
    /// `AUTH TOKEN` [config: api_token_file].
    #[arg(long, value_name = "FILE")]
    api_token_file: Option<PathBuf>,
    /// Serve the Redis protocol (RESP2) on this address (port 0: any free port) [config: resp; default: none].
    /// Any Redis client reads and writes the session store; an address that is not loopback needs --api-token-file.
    #[arg(long, value_name = "ADDR")]
    resp: Option<SocketAddr>,
    /// The config file [default: DIR/feedmesh.toml, if it exists].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// An `--admin` of `init`: this node itself, or another feed.
#[derive(Clone, Copy)]
enum Admin {
    /// `self`: the node being created.
    Own,
    /// A feed id.
    Feed(FeedId),
}

fn parse_admin(text: &str) -> Result<Admin, String> {
    match text {
        "self" => Ok(Admin::Own),
        _ => text
            .parse()
            .map(Admin::Feed)
            .map_err(|error| format!("not `self` nor a feed id: {error}")),
    }
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
        Command::Init {
            dir,
            network_key_file,
            admins,
            session_lifetime,
            retention_margin,
        } => {
            let default = HistoryWindow::default();
            let window = HistoryWindow::new(
                session_lifetime.map_or(default.lifetime_ms(), |secs| secs.saturating_mul(1000)),
                retention_margin.map_or(default.margin_ms(), |secs| secs.saturating_mul(1000)),
            )?;
            let (key, fresh) = match &network_key_file {
                Some(path) => (
                    NetworkKey::read_file(path).with_context(|| format!("{}", path.display()))?,
                    false,
                ),
                None => (NetworkKey::generate()?, true),
            };
            let node = NodeDir::create_with_network_key(&dir, Some(&key))?;
            if window != default {
                node.set_history_window(window)?;
            }
            if !admins.is_empty() {
                let admins: Vec<FeedId> = admins
                    .iter()
                    .map(|admin| match admin {
                        Admin::Own => node.feed_id(),
                        Admin::Feed(id) => *id,
                    })
                    .collect();
                node.set_admins(&admins)?;
            }
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
            serve(*args)?;
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
        Command::Session(command) => commands::session::run(command, &mut out)?,
        Command::Audit(args) => commands::audit::run(args, &mut out)?,
        Command::VerifyBundle(args) => commands::audit::verify(args, &mut out)?,
        Command::Bench(command) => commands::bench::run(command, &mut out)?,
        Command::Member(command) => commands::member::run(command, &mut out)?,
        Command::Demo { dir } => commands::demo::run(dir.as_deref(), &mut out)?,
    }
    out.flush()?;
    Ok(())
}

/// Reads the config file and applies the flags over it.
fn serve_settings(args: ServeArgs) -> anyhow::Result<(ServeConfig, NodeConfig)> {
    let mut settings = match &args.config {
        Some(path) => ServeConfig::load(path, true, &args.dir)?,
        None => ServeConfig::load(&args.dir.join(CONFIG_FILE), false, &args.dir)?,
    };
    settings.listen = args.listen.or(settings.listen);
    if !args.peers.is_empty() {
        settings.peers = args.peers;
    }
    settings.api = args.api.or(settings.api);
    settings.api_token_file = args.api_token_file.or(settings.api_token_file);
    settings.resp = args.resp.or(settings.resp);
    settings.log_format = args.log_format.unwrap_or(settings.log_format);
    settings.max_connections = args.max_connections.unwrap_or(settings.max_connections);
    settings.max_handshakes = args.max_handshakes.unwrap_or(settings.max_handshakes);
    settings.max_handshakes_per_addr = args.max_handshakes_per_addr.unwrap_or(settings.max_handshakes_per_addr);
    settings.handshake_timeout_ms = args.handshake_timeout_ms.unwrap_or(settings.handshake_timeout_ms);
    settings.reconnect_min_ms = args.reconnect_min_ms.unwrap_or(settings.reconnect_min_ms);
    settings.reconnect_max_ms = args.reconnect_max_ms.unwrap_or(settings.reconnect_max_ms);
    settings.ready_admin_within_ms = args.ready_admin_within_ms.unwrap_or(settings.ready_admin_within_ms);
    settings.snapshot_interval_ms = args.snapshot_interval_ms.unwrap_or(settings.snapshot_interval_ms);
    settings.max_feeds = args.max_feeds.unwrap_or(settings.max_feeds);
    settings.buffer_budget_bytes = args.buffer_budget_bytes.unwrap_or(settings.buffer_budget_bytes);
    settings.outbox_budget_bytes = args.outbox_budget_bytes.unwrap_or(settings.outbox_budget_bytes);
    let config = settings.node_config(&args.dir)?;
    Ok((settings, config))
}

/// Runs a node until SIGINT or SIGTERM, then shuts it down gracefully.
fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let (settings, config) = serve_settings(args)?;
    let token = match &settings.api_token_file {
        Some(path) => Some(ApiToken::read_file(path)?),
        None => None,
    };
    if let Some(addr) = settings.api
        && token.is_none()
        && requires_token(addr)
    {
        bail!(ApiError::TokenRequired(addr));
    }
    if let Some(addr) = settings.resp
        && token.is_none()
        && requires_token(addr)
    {
        bail!(RespError::TokenRequired(addr));
    }
    init_logging(settings.log_format);
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let sessions = Sessions::start(config).await?;
        let node = sessions.node();
        if let Some(addr) = node.local_addr() {
            eprintln!("listening on {addr}");
        }
        tracing::info!(id = %node.id(), "node started");
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let stop_signal = move || {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            }
        };
        let mut endpoints = Vec::new();
        let started = async {
            if let Some(addr) = settings.api {
                let server = ApiServer::bind(addr, sessions.clone(), token.clone()).await?;
                eprintln!("api listening on {}", server.local_addr());
                tracing::info!(addr = %server.local_addr(), "api listening");
                let run = server.run(stop_signal());
                endpoints.push(tokio::spawn(async move {
                    if let Err(error) = run.await {
                        tracing::error!(%error, "the HTTP API stopped");
                    }
                }));
            }
            if let Some(addr) = settings.resp {
                let server = RespServer::bind(addr, sessions.clone(), token).await?;
                eprintln!("resp listening on {}", server.local_addr());
                tracing::info!(addr = %server.local_addr(), "resp listening");
                endpoints.push(tokio::spawn(server.run(stop_signal())));
            }
            anyhow::Ok(())
        };
        if let Err(error) = started.await {
            let _ = stop.send(true);
            node.shutdown().await;
            return Err(error);
        }
        let signal = wait_for_signal().await;
        tracing::info!(signal, "shutting down");
        let _ = stop.send(true);
        node.shutdown().await;
        for mut task in endpoints {
            if tokio::time::timeout(Duration::from_secs(1), &mut task).await.is_err() {
                task.abort();
            }
        }
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
    let now = system_time_ms();
    let mut writer = FeedWriter::open(&store, node.keys().clone())?;
    writer.observe_stored(&store, now)?;
    let mut entries = writer.append(&store, &[payload], now)?;
    entries.pop().context("no entry was written")
}

fn print_log(store: &dyn Store, feed: &FeedId, from: u64, to: u64, out: &mut impl Write) -> anyhow::Result<()> {
    const PAGE: usize = 4096;
    let frozen_at = store.frozen_at(feed)?;
    for page in pages(store, *feed, from, to, PAGE) {
        for (entry, _) in &page? {
            writeln!(out, "{}", log_json(entry, frozen_at))?;
        }
    }
    Ok(())
}
