//! `feedmesh bench worker` (hidden): one node of a benchmark, in its own
//! process, driven by the parent over standard input and output, one JSON
//! object a line each way.
//!
//! Commands (stdin) and the events they answer with (stdout):
//!
//! | command | event |
//! |---|---|
//! | (start) | `{"event":"ready","id","listen","api"}` |
//! | `{"cmd":"write","writers","ops","prefix","value_bytes"}` | `{"event":"written","origin":[[seq,us,ops]...],"first_seq","last_seq","entry_bytes"}` |
//! | `{"cmd":"await_sessions","sessions"}` | `{"event":"progress","sessions"}`..., then `{"event":"holding","at_us","observed":[[author,seq,us]...]}` |
//! | `{"cmd":"await_feed","feed","seq"}` | `{"event":"holding","at_us","bytes_in"}` |
//! | `{"cmd":"measure","prefix","writers","ops"}` | `{"event":"measured","get_p50_ns","get_p99_ns","rss_bytes" (growth since start),"disk_bytes","sessions"}` |
//! | `{"cmd":"quit"}` or end of input | the process exits after a graceful shutdown |
//!
//! Times are microseconds since the Unix epoch (one clock for every process
//! on the machine). `origin` says when each entry of this node's feed was
//! durable (its first writer's answer); `observed` when each entry of
//! another feed was stored and folded here.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use feedmesh::api::ApiServer;
use feedmesh::feed::{FeedId, record_len};
use feedmesh::node::{Node, NodeConfig};
use feedmesh::sessions::Sessions;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{now_us, percentile, session_key};

/// How often `await_*` checks, and how often it reports progress.
const POLL: Duration = Duration::from_millis(2);
const PROGRESS_EVERY: Duration = Duration::from_millis(250);
/// How long an `await_*` may take before the worker gives up.
const AWAIT_LIMIT: Duration = Duration::from_secs(600);
/// Gets timed by `measure`.
const GET_SAMPLES: usize = 100_000;

/// The worker's arguments.
#[derive(clap::Args)]
pub(crate) struct WorkerArgs {
    /// The node directory.
    #[arg(long)]
    dir: PathBuf,
    /// Peers to dial.
    #[arg(long = "peer")]
    peers: Vec<SocketAddr>,
}

fn emit(event: &Value) {
    println!("{event}");
}

/// Runs the worker until `quit` or the end of standard input.
pub(crate) fn run(args: WorkerArgs) -> anyhow::Result<()> {
    // One async worker thread per node (commits still run on the blocking
    // pool): the benchmark's nodes share this machine's cores, where a real
    // deployment gives each node machine its own; more threads per process
    // only add context switches here.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let mut config = NodeConfig::new(&args.dir);
        config.listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        config.peers = args.peers;
        config.reconnect_min = Duration::from_millis(20);
        config.reconnect_max = Duration::from_millis(500);
        let sessions = Sessions::start(config).await?;
        let node = sessions.node();
        let api = ApiServer::bind(SocketAddr::from(([127, 0, 0, 1], 0)), sessions.clone(), None).await?;
        let api_addr = api.local_addr();
        let (stop_api, api_stopped) = tokio::sync::oneshot::channel::<()>();
        let api_task = tokio::spawn(api.run(async move {
            let _ = api_stopped.await;
        }));
        let observed = observe(node);
        let rss_at_start = rss_bytes();
        emit(&json!({
            "event": "ready",
            "id": node.id().to_string(),
            "listen": node.local_addr().map(|a| a.to_string()),
            "api": api_addr.to_string(),
        }));
        let mut lines = stdin_lines();
        while let Some(line) = lines.recv().await {
            let command: Value = serde_json::from_str(&line).with_context(|| format!("bad command {line:?}"))?;
            let number = |name: &str| command[name].as_u64().unwrap_or(0);
            match command["cmd"].as_str().unwrap_or_default() {
                "write" => {
                    let prefix = command["prefix"].as_str().unwrap_or("k");
                    write(
                        &sessions,
                        prefix,
                        number("writers"),
                        number("ops"),
                        number("value_bytes"),
                    )
                    .await?;
                }
                "await_sessions" => await_sessions(&sessions, number("sessions"), &observed).await?,
                "await_feed" => {
                    let feed: FeedId = command["feed"].as_str().unwrap_or_default().parse()?;
                    await_feed(&sessions, feed, number("seq")).await?;
                }
                "measure" => {
                    let prefix = command["prefix"].as_str().unwrap_or("k");
                    measure(
                        &sessions,
                        &args.dir,
                        prefix,
                        number("writers"),
                        number("ops"),
                        rss_at_start,
                    )?;
                }
                "quit" => break,
                other => anyhow::bail!("unknown command {other:?}"),
            }
        }
        let _ = stop_api.send(());
        node.shutdown().await;
        let _ = tokio::time::timeout(Duration::from_secs(1), api_task).await;
        Ok(())
    })
}

/// The lines of standard input, read on a thread of their own.
fn stdin_lines() -> mpsc::UnboundedReceiver<String> {
    let (sender, receiver) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    receiver
}

/// Records when each entry of another feed is stored (and folded) here.
fn observe(node: &Node) -> Arc<Mutex<Vec<(FeedId, u64, u64)>>> {
    let observed = Arc::new(Mutex::new(Vec::new()));
    let mut entries = node.subscribe();
    let own = node.id();
    let log = observed.clone();
    tokio::spawn(async move {
        while let Ok(entry) = entries.recv().await {
            if entry.author() != own {
                let at = now_us();
                log.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((entry.author(), entry.seq(), at));
            }
        }
    });
    observed
}

/// `writers` tasks make `ops` puts between them, each durable on return.
async fn write(sessions: &Sessions, prefix: &str, writers: u64, ops: u64, value_bytes: u64) -> anyhow::Result<()> {
    let node = sessions.node();
    let value = "x".repeat(usize::try_from(value_bytes)?);
    let before = node.store().latest(&node.id())?.unwrap_or(0);
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let (sessions, value, prefix) = (sessions.clone(), value.clone(), prefix.to_string());
            let share = ops / writers + u64::from(w < ops % writers);
            tokio::spawn(async move {
                let mut durable = Vec::with_capacity(usize::try_from(share).unwrap_or(0));
                for i in 0..share {
                    let key = session_key(&prefix, w, i);
                    let written = sessions
                        .put(key, &value, Duration::from_secs(3600), Some(&prefix))
                        .await?;
                    durable.push((written.seq, now_us()));
                }
                anyhow::Ok(durable)
            })
        })
        .collect();
    // Per entry: when its first writer heard back, and how many puts it holds.
    let mut origin: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for task in tasks {
        for (seq, at) in task.await?? {
            let slot = origin.entry(seq).or_insert((at, 0));
            slot.0 = slot.0.min(at);
            slot.1 += 1;
        }
    }
    let store = node.store();
    let last = store.latest(&node.id())?.unwrap_or(0);
    let mut entry_bytes = 0;
    for (entry, payload) in store.range(&node.id(), before + 1, last, usize::MAX)? {
        entry_bytes += record_len(&entry, payload.as_deref());
    }
    let origin: Vec<Value> = origin.iter().map(|(seq, (at, n))| json!([seq, at, n])).collect();
    emit(&json!({
        "event": "written",
        "origin": origin,
        "first_seq": before + 1,
        "last_seq": last,
        "entry_bytes": entry_bytes,
    }));
    Ok(())
}

/// Waits until `done` holds, reporting the view's size now and then.
async fn wait_until(sessions: &Sessions, mut done: impl FnMut() -> anyhow::Result<bool>) -> anyhow::Result<u64> {
    let began = tokio::time::Instant::now();
    let mut reported = began;
    while !done()? {
        anyhow::ensure!(began.elapsed() < AWAIT_LIMIT, "nothing new for {AWAIT_LIMIT:?}");
        if reported.elapsed() >= PROGRESS_EVERY {
            reported = tokio::time::Instant::now();
            emit(&json!({"event": "progress", "sessions": sessions.stats().sessions}));
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(now_us())
}

async fn await_sessions(
    sessions: &Sessions,
    count: u64,
    observed: &Mutex<Vec<(FeedId, u64, u64)>>,
) -> anyhow::Result<()> {
    let at = wait_until(sessions, || Ok(sessions.stats().sessions as u64 >= count)).await?;
    let observed: Vec<Value> = observed
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|(feed, seq, at)| json!([feed.to_string(), seq, at]))
        .collect();
    emit(&json!({"event": "holding", "at_us": at, "observed": observed}));
    Ok(())
}

async fn await_feed(sessions: &Sessions, feed: FeedId, seq: u64) -> anyhow::Result<()> {
    let node = sessions.node();
    let store = node.store();
    let at = wait_until(sessions, || Ok(store.latest(&feed)?.unwrap_or(0) >= seq)).await?;
    let bytes_in: u64 = node.traffic().values().map(|(received, _)| received).sum();
    emit(&json!({"event": "holding", "at_us": at, "bytes_in": bytes_in}));
    Ok(())
}

/// Times embedded gets of this node's own keys, and reads its memory
/// growth since it started (the view, the store's page cache, buffers) and
/// its store's size.
fn measure(
    sessions: &Sessions,
    dir: &Path,
    prefix: &str,
    writers: u64,
    ops: u64,
    rss_at_start: u64,
) -> anyhow::Result<()> {
    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
    let keys: Vec<String> = (0..GET_SAMPLES)
        .map(|_| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let w = rng % writers.max(1);
            let share = ops / writers.max(1);
            session_key(prefix, w, (rng >> 20) % share.max(1))
        })
        .collect();
    let mut nanos = Vec::with_capacity(keys.len());
    for key in &keys {
        let began = std::time::Instant::now();
        let found = sessions.get::<String>(key)?;
        nanos.push(began.elapsed().as_nanos() as u64);
        anyhow::ensure!(found.is_some(), "session {key} is missing");
    }
    nanos.sort_unstable();
    emit(&json!({
        "event": "measured",
        "get_p50_ns": percentile(&nanos, 50.0),
        "get_p99_ns": percentile(&nanos, 99.0),
        "rss_bytes": rss_bytes().saturating_sub(rss_at_start),
        "disk_bytes": std::fs::metadata(dir.join("store.redb")).map(|m| m.len()).unwrap_or(0),
        "sessions": sessions.stats().sessions,
    }));
    Ok(())
}

/// This process's resident set size, in bytes (Linux; 0 elsewhere).
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|statm| statm.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}
