//! Replication benchmarks over real in-process nodes on loopback TCP:
//! initial sync, replication latency, and the duplication factor of a full
//! mesh. Prints figures (no assertions on timing), then a summary table.
//!
//! **Initial sync.** Node A holds `N` entries of its own feed (default
//! 1,000,000; `--entries N`; `--quick`: 100,000), written straight into its
//! store in large batches before A starts. A fresh node B then dials A and
//! syncs everything; the rate is `N` over the time from B's start until B's
//! clock holds `N`. It is set against the raw batch verification limit
//! (`ed25519_dalek::verify_batch` alone, batches of 1024, one thread) on
//! entries of A's feed, measured in the same run. A progress bar is drawn
//! on stderr while B syncs, only when stderr is a terminal.
//!
//! **Replication latency.** In a line A–B–C, A writes a steady 5,000
//! entries/s for 5 s (`--quick`: 2 s): every 2 ms it appends the entries that
//! have come due since the last tick in one `append_batch` (one durable
//! commit, as group commit will do). The latency of an entry runs from the
//! instant it was due (so it includes the wait for its tick and A's durable
//! commit) to its arrival on C's [`Node::subscribe`] stream; the same to B is
//! printed too (one hop). The achieved rate is printed.
//!
//! **Duplication factor.** Every node of a 5-node full mesh
//! appends `M` entries at once; each node's received message bytes
//! ([`Node::traffic`], summed over its peers, counted from when the mesh is
//! connected) are divided by the entries it did not write, averaged over the
//! nodes, and divided by the same figure for a 2-node pair. 1.0 means every
//! node receives each entry once, as in a pair; the flood (every peer sends
//! every entry) would be about 4 in a 5-node mesh. The received bytes
//! include the Clock lines (acknowledgements), which a mesh has more of.
//!
//! Run: `cargo bench --bench replication` (add `-- --quick` for a short run,
//! `-- --entries N` for another initial sync size). Each phase is bounded by
//! [`DEADLINE`].

mod common;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{VERIFY_BATCH, raw_batch_verify_rate};
use feedmesh::feed::{Entry, FeedId};
use feedmesh::net::NetworkKey;
use feedmesh::node::{Node, NodeConfig};
use feedmesh::node_dir::NodeDir;
use feedmesh::sessions::Sessions;
use feedmesh::writer::FeedWriter;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::broadcast::error::RecvError;

/// Each phase (connecting, converging) gives up after this long.
const DEADLINE: Duration = Duration::from_secs(120);
/// The initial sync gives up after this long.
const SYNC_DEADLINE: Duration = Duration::from_secs(900);
/// Payload bytes per entry.
const PAYLOAD: usize = 200;
/// Entries per commit when preloading node A for the initial sync.
const PRELOAD_BATCH: usize = 10_000;
/// Entries of A's feed the raw verification limit is measured on.
const VERIFY_SAMPLE: usize = 100 * VERIFY_BATCH;
/// The steady append rate of the latency run (entries/s).
const LATENCY_RATE: u64 = 5_000;
/// How often the latency phase appends the entries that have come due.
const LATENCY_TICK: Duration = Duration::from_millis(2);
/// How often the initial sync polls B's clock (and redraws the progress bar).
const POLL: Duration = Duration::from_millis(100);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let sync_entries = match args.iter().position(|a| a == "--entries") {
        Some(i) => args
            .get(i + 1)
            .and_then(|n| n.replace('_', "").parse().ok())
            .expect("--entries takes a number"),
        None if quick => 100_000,
        None => 1_000_000,
    };
    let latency_for = Duration::from_secs(if quick { 2 } else { 5 });
    let entries = if quick { 300 } else { 2_000 };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let mut table: Vec<(String, String)> = Vec::new();

        let sync = initial_sync(sync_entries).await;
        println!(
            "initial sync of {sync_entries} entries of {PAYLOAD} B: {:.0} entries/s ({:.2?}); \
             verify_batch alone ({VERIFY_BATCH} per batch): {:.0} entries/s; ratio {:.0}%",
            sync.rate,
            sync.elapsed,
            sync.verify_limit,
            100.0 * sync.rate / sync.verify_limit
        );
        table.push((
            format!("initial sync, {sync_entries} entries"),
            format!("{:.0} entries/s in {:.1?}", sync.rate, sync.elapsed),
        ));
        table.push((
            format!("verify_batch alone, {VERIFY_BATCH} per batch"),
            format!("{:.0} entries/s", sync.verify_limit),
        ));
        table.push((
            "initial sync / verify_batch".to_string(),
            format!("{:.0}%", 100.0 * sync.rate / sync.verify_limit),
        ));

        let latency = latency_a_to_c(latency_for).await;
        println!(
            "latency at {LATENCY_RATE} entries/s target for {latency_for:?}: {} entries appended at {:.0} entries/s; \
             A->B->C {}; A->B {}",
            latency.count, latency.rate, latency.to_c, latency.to_b
        );
        table.push((
            "latency A->B->C, p50 / p99 / max".to_string(),
            format!(
                "{:.2} / {:.2} / {:.2} ms",
                latency.to_c.p50_ms, latency.to_c.p99_ms, latency.to_c.max_ms
            ),
        ));
        table.push((
            "latency A->B, p50 / p99 / max".to_string(),
            format!(
                "{:.2} / {:.2} / {:.2} ms",
                latency.to_b.p50_ms, latency.to_b.p99_ms, latency.to_b.max_ms
            ),
        ));
        table.push((
            format!("  appended at (target {LATENCY_RATE}, batched every 2 ms)"),
            format!("{:.0} entries/s, {} entries", latency.rate, latency.count),
        ));

        for batch in [1, 50] {
            let pair = bytes_per_foreign_entry(2, entries, batch).await;
            let mesh = bytes_per_foreign_entry(5, entries, batch).await;
            let how = if batch == 1 {
                "one at a time".to_string()
            } else {
                format!("in batches of {batch}")
            };
            println!(
                "{entries} entries per node of {PAYLOAD} B, appended {how}: bytes received per foreign entry: \
                 2-node pair {pair:.1}, 5-node full mesh {mesh:.1}; duplication factor {:.3}",
                mesh / pair
            );
            table.push((
                format!("duplication factor, 5-node mesh, {how}"),
                format!("{:.3}", mesh / pair),
            ));
        }

        println!();
        let width = table.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
        for (name, value) in &table {
            println!("{name:<width$}  {value}");
        }
    });
}

/// What [`initial_sync`] measured.
struct SyncFigures {
    rate: f64,
    elapsed: Duration,
    verify_limit: f64,
}

/// Preloads node A with `n` entries, measures the raw verification limit on
/// (a sample of) them, then starts A and a fresh B dialling A, and times B's
/// sync of all `n`.
async fn initial_sync(n: usize) -> SyncFigures {
    let root = tempfile::tempdir().expect("tempdir");
    let key = NetworkKey::generate().expect("network key");
    let dir_a = make_dir(root.path(), "a", &key);
    let dir_b = make_dir(root.path(), "b", &key);

    let preload_dir = dir_a.clone();
    let started = Instant::now();
    let sample = tokio::task::spawn_blocking(move || preload(&preload_dir, n))
        .await
        .expect("preload");
    eprintln!("  preloaded A with {n} entries in {:.2?}", started.elapsed());
    let verify_limit = tokio::task::spawn_blocking(move || raw_batch_verify_rate(&sample))
        .await
        .expect("verify");

    let a = start(&dir_a, Vec::new()).await;
    let feed = a.id();
    assert_eq!(a.clock().expect("clock").get(&feed), Some(&(n as u64)));
    let progress = ProgressBar::new(n as u64).with_style(
        ProgressStyle::with_template("  syncing {bar:24} {human_pos}/{human_len} entries, {per_sec}, eta {eta}")
            .expect("progress template"),
    );
    let started = Instant::now();
    let b = start(&dir_b, vec![a.local_addr().expect("listening")]).await;
    loop {
        let held = b.clock().expect("clock").get(&feed).copied().unwrap_or(0);
        progress.set_position(held);
        if held >= n as u64 {
            break;
        }
        assert!(
            started.elapsed() < SYNC_DEADLINE,
            "initial sync: B holds {held} of {n} after {SYNC_DEADLINE:?}"
        );
        tokio::time::sleep(POLL).await;
    }
    let elapsed = started.elapsed();
    progress.finish_and_clear();
    a.shutdown().await;
    b.shutdown().await;
    SyncFigures {
        rate: n as f64 / elapsed.as_secs_f64(),
        elapsed,
        verify_limit,
    }
}

/// Appends `n` entries to the own feed of the (stopped) node at `dir`,
/// through its store and a [`FeedWriter`], in commits of [`PRELOAD_BATCH`].
/// Returns the first [`VERIFY_SAMPLE`] entries.
fn preload(dir: &Path, n: usize) -> Vec<Entry> {
    let node_dir = NodeDir::open(dir).expect("open node dir");
    let store = node_dir.open_store().expect("open store");
    let mut writer = FeedWriter::open(&store, node_dir.keys().clone()).expect("writer");
    let mut sample = Vec::with_capacity(VERIFY_SAMPLE.min(n));
    let mut written = 0;
    while written < n {
        let count = PRELOAD_BATCH.min(n - written);
        let payloads: Vec<Vec<u8>> = (written..written + count).map(payload).collect();
        let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        let entries = writer.append(&store, &refs, unix_ms()).expect("append");
        let room = VERIFY_SAMPLE.saturating_sub(sample.len());
        sample.extend(entries.into_iter().take(room));
        written += count;
    }
    sample
}

/// Payload `i` of the initial sync: [`PAYLOAD`] bytes.
fn payload(i: usize) -> Vec<u8> {
    let mut payload = format!("entry {i}").into_bytes();
    payload.resize(PAYLOAD, b'.');
    payload
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What [`latency_a_to_c`] measured.
struct LatencyFigures {
    count: usize,
    rate: f64,
    /// Append on A to stored on B (one hop).
    to_b: Percentiles,
    /// Append on A to stored on C (two hops).
    to_c: Percentiles,
}

/// In a line A–B–C, writes [`LATENCY_RATE`] entries/s on A (batched every
/// [`LATENCY_TICK`]) for `duration`, and measures each entry's latency from
/// when it was due to C's (and B's) subscription.
async fn latency_a_to_c(duration: Duration) -> LatencyFigures {
    let root = tempfile::tempdir().expect("tempdir");
    let key = NetworkKey::generate().expect("network key");
    let a = start(&make_dir(root.path(), "a", &key), Vec::new()).await;
    let b = start(
        &make_dir(root.path(), "b", &key),
        vec![a.local_addr().expect("listening")],
    )
    .await;
    let c = start(
        &make_dir(root.path(), "c", &key),
        vec![b.local_addr().expect("listening")],
    )
    .await;
    wait("the line to connect", || {
        a.peers().len() == 1 && b.peers().len() == 2 && c.peers().len() == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let feed = a.id();
    let on_b = Arrivals::start(&b, feed);
    let on_c = Arrivals::start(&c, feed);

    let mut appended: HashMap<u64, Instant> = HashMap::new();
    let mut ticks = tokio::time::interval(LATENCY_TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let started = Instant::now();
    let due_at = |i: usize| started + Duration::from_secs_f64(i as f64 / LATENCY_RATE as f64);
    let mut i = 0;
    while started.elapsed() < duration {
        ticks.tick().await;
        let due = (started.elapsed().as_secs_f64() * LATENCY_RATE as f64) as usize;
        if due <= i {
            continue;
        }
        let payloads: Vec<Vec<u8>> = (i..due).map(payload).collect();
        let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        let entries = a.append_batch(&refs).await.expect("append");
        for (k, entry) in entries.iter().enumerate() {
            appended.insert(entry.seq(), due_at(i + k));
        }
        i = due;
    }
    let append_elapsed = started.elapsed();
    let last = appended.len() as u64;
    wait("C to hold every entry", || {
        c.clock().expect("clock").get(&feed).copied().unwrap_or(0) >= last
    })
    .await;
    // Let the subscriptions deliver what B and C stored.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let to_b = on_b.latencies("B", &appended).await;
    let to_c = on_c.latencies("C", &appended).await;
    for node in [&a, &b, &c] {
        node.shutdown().await;
    }
    LatencyFigures {
        count: appended.len(),
        rate: appended.len() as f64 / append_elapsed.as_secs_f64(),
        to_b: Percentiles::of(to_b),
        to_c: Percentiles::of(to_c),
    }
}

/// p50, p99 and max of latencies, in milliseconds (NaN if none).
struct Percentiles {
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

impl Percentiles {
    fn of(mut latencies: Vec<Duration>) -> Percentiles {
        latencies.sort();
        let ms = |q: f64| {
            latencies
                .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
                .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
        };
        Percentiles {
            p50_ms: ms(0.50),
            p99_ms: ms(0.99),
            max_ms: ms(1.0),
        }
    }
}

impl std::fmt::Display for Percentiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            self.p50_ms, self.p99_ms, self.max_ms
        )
    }
}

/// When each entry of one feed arrived on a node's subscription.
struct Arrivals {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<(HashMap<u64, Instant>, u64)>,
}

impl Arrivals {
    fn start(node: &Node, feed: FeedId) -> Arrivals {
        let mut stream = node.subscribe();
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut arrived: HashMap<u64, Instant> = HashMap::new();
            let mut lagged = 0;
            loop {
                let received = tokio::select! {
                    received = stream.recv() => received,
                    _ = &mut stopped => break,
                };
                match received {
                    Ok(entry) if entry.author() == feed => {
                        arrived.insert(entry.seq(), Instant::now());
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(missed)) => lagged += missed,
                    Err(RecvError::Closed) => break,
                }
            }
            (arrived, lagged)
        });
        Arrivals { stop, task }
    }

    /// Stops listening; returns the latency of every entry of `appended`
    /// (seq -> when its append started) that arrived.
    async fn latencies(self, node: &str, appended: &HashMap<u64, Instant>) -> Vec<Duration> {
        let _ = self.stop.send(());
        let (arrived, lagged) = self.task.await.expect("subscription task");
        let latencies: Vec<Duration> = appended
            .iter()
            .filter_map(|(seq, at)| arrived.get(seq).map(|got| got.saturating_duration_since(*at)))
            .collect();
        if lagged > 0 || latencies.len() < appended.len() {
            eprintln!(
                "  latency: {} of {} entries seen on {node}'s subscription ({lagged} lagged)",
                latencies.len(),
                appended.len()
            );
        }
        latencies
    }
}

/// Starts `n` fully connected nodes, lets each append `entries` entries (in
/// batches of `batch`), waits until all hold everything, and returns the
/// message bytes each node received per entry it did not write (mean).
async fn bytes_per_foreign_entry(n: usize, entries: usize, batch: usize) -> f64 {
    let root = tempfile::tempdir().expect("tempdir");
    let key = NetworkKey::generate().expect("network key");
    let mut nodes: Vec<Node> = Vec::new();
    for i in 0..n {
        let dir = make_dir(root.path(), &format!("n{i}"), &key);
        let peers = nodes.iter().map(|node| node.local_addr().expect("listening")).collect();
        nodes.push(start(&dir, peers).await);
    }
    wait("the mesh to connect", || {
        nodes.iter().all(|node| node.peers().len() == n - 1)
    })
    .await;
    // Let the first Clocks (and any duplicate connection) settle.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before: Vec<u64> = nodes.iter().map(received).collect();
    let started = Instant::now();
    let mut writers = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let node = node.clone();
        writers.push(tokio::spawn(async move {
            let mut written = 0;
            while written < entries {
                let count = batch.min(entries - written);
                let payloads: Vec<Vec<u8>> = (0..count)
                    .map(|k| {
                        let mut payload = format!("node {i} entry {}", written + k).into_bytes();
                        payload.resize(PAYLOAD, b'.');
                        payload
                    })
                    .collect();
                let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
                node.append_batch(&refs).await.expect("append");
                written += count;
            }
        }));
    }
    for writer in writers {
        writer.await.expect("writer");
    }
    let expected: BTreeMap<FeedId, u64> = nodes.iter().map(|node| (node.id(), entries as u64)).collect();
    wait("convergence", || {
        nodes.iter().all(|node| node.clock().expect("clock") == expected)
    })
    .await;
    // Let the last acknowledgements arrive.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let elapsed = started.elapsed();
    let foreign = (entries * (n - 1)) as f64;
    let per_entry: Vec<f64> = nodes
        .iter()
        .zip(&before)
        .map(|(node, &before)| (received(node) - before) as f64 / foreign)
        .collect();
    eprintln!(
        "  {n} nodes, batches of {batch}: converged in {elapsed:.2?}; bytes per foreign entry per node: {}",
        per_entry
            .iter()
            .map(|b| format!("{b:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for node in &nodes {
        node.shutdown().await;
    }
    per_entry.iter().sum::<f64>() / n as f64
}

/// Message bytes `node` received from all its peers.
fn received(node: &Node) -> u64 {
    node.traffic().values().map(|&(bytes_in, _)| bytes_in).sum()
}

async fn wait(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < DEADLINE, "waited {DEADLINE:?} for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn make_dir(root: &Path, name: &str, key: &NetworkKey) -> PathBuf {
    let dir = root.join(name);
    NodeDir::create_with_network_key(&dir, Some(key)).expect("create node dir");
    dir
}

async fn start(dir: &Path, peers: Vec<SocketAddr>) -> Node {
    let mut config = NodeConfig::new(dir);
    config.listen = Some("127.0.0.1:0".parse().expect("addr"));
    config.peers = peers;
    config.reconnect_min = Duration::from_millis(20);
    config.reconnect_max = Duration::from_millis(300);
    Sessions::start(config).await.expect("start node").node().clone()
}
