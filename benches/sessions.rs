//! The session store of one node (`cargo bench --bench sessions`):
//!
//! - puts per second with group commit at 1, 16 and 256 concurrent writers,
//!   each put durable (fsync'd in redb) when it returns;
//! - embedded get latency (median, p99) with 1,000,000 live sessions;
//! - memory of the view per 1,000,000 live sessions (resident set growth);
//! - time to start a node with that view: from its snapshot, and folding
//!   every stored entry, first with one put per session and again after
//!   every session was modified `HISTORY_ROUNDS` more times (spec/SESSIONS.md
//!   §6.7: a restart from a snapshot costs the live state, not the history);
//! - put latency on that node with snapshots saved back to back and without.
//!
//! `FEEDMESH_BENCH_SESSIONS=N` changes the 1,000,000 (say, for a quick run).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use feedmesh::net::NetworkKey;
use feedmesh::node::NodeConfig;
use feedmesh::node_dir::NodeDir;
use feedmesh::sessions::{SNAPSHOT_NAME, Sessions};
use feedmesh::store::Store;
use feedmesh::view::Op;
use tempfile::TempDir;

/// Puts per writer-count run.
const PUTS_PER_RUN: usize = 100_000;
/// The session value: about what a login session holds.
const TTL: Duration = Duration::from_secs(3600);
/// Operations per entry when filling the view (the group commit maximum).
const FILL_BATCH: usize = 1024;
/// How long each put-latency run lasts.
const LATENCY_RUN: Duration = Duration::from_secs(10);
/// How many more times every session is put before the second pair of
/// restarts.
const HISTORY_ROUNDS: usize = 3;

/// What a login session holds (about 200 bytes of CBOR).
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Login {
    user: String,
    roles: Vec<String>,
    csrf: String,
    created_ms: u64,
    agent: String,
}

fn value() -> Login {
    Login {
        user: "alice@example.com".into(),
        roles: vec!["reader".into(), "writer".into()],
        csrf: "4f1c2a9e8b7d6c5f4e3d2c1b0a998877".into(),
        created_ms: 1_790_000_000_000,
        agent: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130 Safari/537.36".into(),
    }
}

async fn start(dir: &std::path::Path) -> Sessions {
    Sessions::start(NodeConfig::new(dir)).await.expect("start node")
}

/// Puts per second of `writers` concurrent writers making `total` puts.
async fn puts_per_second(sessions: &Sessions, writers: usize, total: usize) -> (f64, u64) {
    let node = sessions.node();
    let before = node.store().latest(&node.id()).expect("latest").unwrap_or(0);
    let value = value();
    let per_writer = total / writers;
    let began = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let sessions = sessions.clone();
            let value = value.clone();
            tokio::spawn(async move {
                for i in 0..per_writer {
                    sessions
                        .put(format!("w{writers}-{w}-{i}"), &value, TTL, Some("bench"))
                        .await
                        .expect("put");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("writer");
    }
    let rate = (per_writer * writers) as f64 / began.elapsed().as_secs_f64();
    let entries = node.store().latest(&node.id()).expect("latest").unwrap_or(0) - before;
    (rate, entries)
}

/// Median, 99th percentile and maximum latency of durable puts by 16
/// writers for [`LATENCY_RUN`] on the node of `dir`, which saves its view's
/// snapshot every `interval` (spec/SESSIONS.md §6.7: folds wait at most one
/// slice of a snapshot).
async fn put_latency(dir: &std::path::Path, interval: Duration) -> (Duration, Duration, Duration) {
    let mut config = NodeConfig::new(dir);
    config.snapshot_interval = interval;
    let sessions = Sessions::start(config).await.expect("start node");
    let value = value();
    let writers: Vec<_> = (0..16)
        .map(|w| {
            let sessions = sessions.clone();
            let value = value.clone();
            tokio::spawn(async move {
                let began = Instant::now();
                let mut latencies = Vec::new();
                let mut i = 0;
                while began.elapsed() < LATENCY_RUN {
                    let put = Instant::now();
                    sessions
                        .put(format!("lat-{interval:?}-{w}-{i}"), &value, TTL, None)
                        .await
                        .expect("put");
                    latencies.push(put.elapsed());
                    i += 1;
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for writer in writers {
        latencies.extend(writer.await.expect("writer"));
    }
    sessions.node().shutdown().await;
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    (at(0.5), at(0.99), at(1.0))
}

/// The resident set size of this process, in bytes (Linux).
fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Stops the node of `store` (which saves its view's snapshot) and starts
/// it twice: from the snapshot, then with the snapshot made unreadable
/// (every entry folded); prints both times. The node's store holds
/// `rounds` puts per session.
async fn restarts(store: Sessions, dir: &std::path::Path, sessions: usize, rounds: usize) {
    let digest = store.digest();
    let began = Instant::now();
    store.node().shutdown().await;
    let stop = began.elapsed();
    drop(store);
    let snapshot_bytes = {
        let store = NodeDir::open(dir).expect("node dir").open_store().expect("store");
        store.snapshot(SNAPSHOT_NAME).expect("snapshot").map_or(0, |s| s.len())
    };
    let puts = sessions * rounds;
    println!(
        "  {sessions} live sessions, {puts} puts stored: stopped in {:.2} s, saving a {:.0} MB view snapshot",
        stop.as_secs_f64(),
        snapshot_bytes as f64 / 1e6
    );
    for from_snapshot in [true, false] {
        if !from_snapshot {
            let store = NodeDir::open(dir).expect("node dir").open_store().expect("store");
            store.save_snapshot(SNAPSHOT_NAME, b"unreadable").expect("save");
        }
        let began = Instant::now();
        let store = start(dir).await;
        let took = began.elapsed();
        let started = store.started();
        assert_eq!(started.from_snapshot, from_snapshot);
        assert_eq!(store.digest(), digest, "the view after the restart differs");
        println!(
            "    start {}: {:.2} s ({} entries folded)",
            if from_snapshot {
                "from the snapshot"
            } else {
                "folding every entry"
            },
            took.as_secs_f64(),
            started.folded
        );
        store.node().shutdown().await;
    }
}

/// Fills the view with `count` live sessions, `FILL_BATCH` per entry.
async fn fill(sessions: &Sessions, count: usize) {
    let value = feedmesh::view::encode_value(&value()).expect("value");
    for start in (0..count).step_by(FILL_BATCH) {
        let ops = (start..(start + FILL_BATCH).min(count))
            .map(|i| Op::Put {
                key: session_key(i),
                value: value.clone(),
                ttl_ms: TTL.as_millis() as u64,
                owner: Some(format!("user{}", i % 10_000).into_bytes()),
            })
            .collect();
        sessions.write(ops).await.expect("write");
    }
}

fn value_bytes() -> usize {
    feedmesh::view::encode_value(&value()).expect("value").len()
}

fn session_key(i: usize) -> Vec<u8> {
    // 32 hex characters, like a random session id.
    format!(
        "{:032x}",
        (i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)
    )
    .into_bytes()
}

/// A session key as a request carries it: in one contiguous buffer (the
/// samples are read in order, as a server reads the key of the request at
/// hand, so the benchmark measures the view, not its own key list).
type SampleKey = [u8; 32];

/// `samples` keys of filled sessions, drawn at random (xorshift).
fn sample_keys(count: usize, samples: usize) -> Vec<SampleKey> {
    let mut rng: u64 = 0x2545_f491_4f6c_dd1d;
    (0..samples)
        .map(|_| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            session_key((rng % count as u64) as usize)
                .try_into()
                .expect("32-byte keys")
        })
        .collect()
}

/// The median and 99th percentile of `nanos`.
fn percentiles(nanos: impl Iterator<Item = u128>) -> (u128, u128) {
    let mut nanos: Vec<u128> = nanos.collect();
    nanos.sort_unstable();
    (nanos[nanos.len() / 2], nanos[nanos.len() * 99 / 100])
}

/// Median and 99th percentile of one embedded get each (value decoded), in
/// nanoseconds.
fn get_latency(sessions: &Sessions, keys: &[SampleKey]) -> (u128, u128) {
    percentiles(keys.iter().map(|key| {
        let began = Instant::now();
        let data = sessions.get::<Login>(key).expect("get");
        let nanos = began.elapsed().as_nanos();
        assert!(data.is_some(), "a filled session is missing");
        nanos
    }))
}

/// Median and 99th percentile of one embedded raw get (value not
/// decoded) each, in nanoseconds.
fn get_raw_latency(sessions: &Sessions, keys: &[SampleKey]) -> (u128, u128) {
    percentiles(keys.iter().map(|key| {
        let began = Instant::now();
        let data = sessions.get_raw(key);
        let nanos = began.elapsed().as_nanos();
        assert!(data.is_some(), "a filled session is missing");
        nanos
    }))
}

/// Median and 99th percentile of a read (value cloned) from a plain std
/// `HashMap` of `count` sessions like the view's: this machine's floor for
/// a random read of that much memory, measured in the same run.
fn plain_map_latency(count: usize, keys: &[SampleKey]) -> (u128, u128) {
    let value = feedmesh::view::encode_value(&value()).expect("value");
    let map: HashMap<Vec<u8>, Vec<u8>> = (0..count).map(|i| (session_key(i), value.clone())).collect();
    percentiles(keys.iter().map(|key| {
        let began = Instant::now();
        let found = map.get(key.as_slice()).cloned();
        let nanos = began.elapsed().as_nanos();
        assert!(found.is_some(), "a filled key is missing");
        nanos
    }))
}

#[tokio::main]
async fn main() {
    let sessions_count: usize = std::env::var("FEEDMESH_BENCH_SESSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let root = TempDir::new().expect("tempdir");
    let key = NetworkKey::generate().expect("key");

    // The view first, while the process is fresh: its resident set growth
    // is then the view's memory.
    let dir = root.path().join("view");
    NodeDir::create_with_network_key(&dir, Some(&key)).expect("node dir");
    let sessions = start(&dir).await;
    let rss_before = rss_bytes();
    let began = Instant::now();
    fill(&sessions, sessions_count).await;
    let fill_time = began.elapsed();
    let rss_after = rss_bytes();
    println!(
        "view of {sessions_count} live sessions ({}-byte values): filled in {:.1} s ({:.0} puts/s, {FILL_BATCH} per entry)",
        value_bytes(),
        fill_time.as_secs_f64(),
        sessions_count as f64 / fill_time.as_secs_f64()
    );
    if let (Some(before), Some(after)) = (rss_before, rss_after) {
        let per_session = after.saturating_sub(before) as f64 / sessions_count as f64;
        println!(
            "  memory: {:.0} MB resident per 1,000,000 sessions ({per_session:.0} bytes per session, store cache included)",
            per_session
        );
    }
    let keys = sample_keys(sessions_count, 200_000);
    let (p50, p99) = get_latency(&sessions, &keys);
    println!("  embedded get (value decoded into a struct): p50 {p50} ns, p99 {p99} ns");
    let (p50, p99) = get_raw_latency(&sessions, &keys);
    println!("  embedded get_raw (value as stored):        p50 {p50} ns, p99 {p99} ns");
    let (p50, p99) = plain_map_latency(sessions_count, &keys);
    println!("  for scale, a plain std HashMap<Vec<u8>, Vec<u8>> of as many sessions: p50 {p50} ns, p99 {p99} ns");
    restarts(sessions, &dir, sessions_count, 1).await;
    let sessions = start(&dir).await;
    for _ in 0..HISTORY_ROUNDS {
        fill(&sessions, sessions_count).await;
    }
    restarts(sessions, &dir, sessions_count, 1 + HISTORY_ROUNDS).await;

    println!("put latency on that node, 16 writers for {LATENCY_RUN:?} each run:");
    for interval in [Duration::from_secs(3600), Duration::from_millis(500)] {
        let (p50, p99, max) = put_latency(&dir, interval).await;
        println!(
            "  snapshots every {interval:?}: p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3
        );
    }

    println!("group commit, one node, durable puts:");
    for writers in [1, 16, 256] {
        let dir = root.path().join(format!("puts{writers}"));
        NodeDir::create_with_network_key(&dir, Some(&key)).expect("node dir");
        let sessions = start(&dir).await;
        let total = if writers == 1 { PUTS_PER_RUN / 20 } else { PUTS_PER_RUN };
        let (rate, entries) = puts_per_second(&sessions, writers, total).await;
        println!(
            "  {writers:>3} writers: {rate:>9.0} puts/s  ({total} puts in {entries} entries, {:.1} puts/entry)",
            total as f64 / entries as f64
        );
        sessions.node().shutdown().await;
    }
}
