//! `feedmesh bench sessions` and `feedmesh bench catchup`: the figures a
//! user asks for before moving session data off Redis, measured on real
//! nodes: separate processes on loopback, each with its own redb store,
//! every put durable when it returns.
//!
//! The parent makes the node directories in a temporary directory, starts
//! one `feedmesh bench worker` process per node (see [`worker`]) and drives
//! them over their standard input and output. All processes read the same
//! wall clock, so a time taken in one can be compared with a time taken in
//! another.

mod worker;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use feedmesh::feed::FeedId;
use feedmesh::net::NetworkKey;
use feedmesh::node_dir::NodeDir;
use serde_json::{Value, json};

/// The `bench` subcommands.
#[derive(clap::Subcommand)]
pub(crate) enum BenchCommand {
    /// N nodes, C writers spread over them, M durable session puts: puts per
    /// second until every node holds every put, replication lag, get latency,
    /// memory and disk.
    Sessions {
        /// Nodes (separate processes), in a full mesh.
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// Concurrent writers, spread evenly over the nodes.
        #[arg(long, default_value_t = 256)]
        writers: u64,
        /// Session puts in all.
        #[arg(long, default_value_t = 200_000)]
        ops: u64,
        /// Bytes of each session value.
        #[arg(long, default_value_t = 200)]
        value_bytes: u64,
        /// One JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Two nodes; one stops while M puts happen on the other, then restarts:
    /// time and bytes until it holds everything again.
    Catchup {
        /// Puts made while the node is stopped.
        #[arg(long, default_value_t = 200_000)]
        missed: u64,
        /// Bytes of each session value.
        #[arg(long, default_value_t = 200)]
        value_bytes: u64,
        /// Writers making the missed puts.
        #[arg(long, default_value_t = 256)]
        writers: u64,
        /// One JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One node of a benchmark, driven by the parent (internal).
    #[command(hide = true)]
    Worker(worker::WorkerArgs),
}

/// Runs a `bench` subcommand.
pub(crate) fn run(command: BenchCommand, out: &mut dyn Write) -> anyhow::Result<()> {
    match command {
        BenchCommand::Sessions {
            nodes,
            writers,
            ops,
            value_bytes,
            json,
        } => {
            if nodes == 0 || writers < nodes as u64 || ops < writers {
                bail!("need 1 <= --nodes <= --writers <= --ops");
            }
            let report = sessions(nodes, writers, ops, value_bytes)?;
            print_report(out, &report, json)
        }
        BenchCommand::Catchup {
            missed,
            value_bytes,
            writers,
            json,
        } => {
            if writers == 0 || missed < writers {
                bail!("need 1 <= --writers <= --missed");
            }
            let report = catchup(missed, writers, value_bytes)?;
            print_report(out, &report, json)
        }
        BenchCommand::Worker(args) => worker::run(args),
    }
}

/// Microseconds since the Unix epoch.
pub(crate) fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// The `p`th percentile of `sorted` (nearest rank); 0 when empty.
pub(crate) fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The session key of put `i` of writer `w` of a node.
pub(crate) fn session_key(prefix: &str, w: u64, i: u64) -> String {
    format!("{prefix}-{w}-{i}")
}

/// A temporary directory removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> anyhow::Result<Scratch> {
        let path = std::env::temp_dir().join(format!("feedmesh-bench-{}-{}", std::process::id(), now_us()));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Scratch(path))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running worker process.
struct Worker {
    child: Child,
    stdin: ChildStdin,
    id: FeedId,
    listen: SocketAddr,
    api: SocketAddr,
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Events of every worker, tagged with the worker's index.
struct Events {
    sender: mpsc::Sender<(usize, Value)>,
    receiver: mpsc::Receiver<(usize, Value)>,
    /// Events that arrived before they were asked for.
    early: Vec<(usize, Value)>,
    /// Workers whose output has ended (told to quit, or failed).
    exited: HashSet<usize>,
    progress: HashMap<usize, u64>,
    show_progress: bool,
}

/// How long a worker may stay silent before the benchmark gives up.
const EVENT_TIMEOUT: Duration = Duration::from_secs(600);

impl Events {
    fn new(show_progress: bool) -> Events {
        let (sender, receiver) = mpsc::channel();
        Events {
            sender,
            receiver,
            early: Vec::new(),
            exited: HashSet::new(),
            progress: HashMap::new(),
            show_progress,
        }
    }

    /// The next event named `name` from worker `index` (progress events are
    /// displayed on the way).
    fn next(&mut self, index: usize, name: &str) -> anyhow::Result<Value> {
        if let Some(at) = self
            .early
            .iter()
            .position(|(from, e)| *from == index && e["event"] == name)
        {
            return Ok(self.early.remove(at).1);
        }
        loop {
            let (from, event) = self
                .receiver
                .recv_timeout(EVENT_TIMEOUT)
                .context("a benchmark worker stopped answering")?;
            if event["event"] == "progress" {
                self.progress.insert(from, event["sessions"].as_u64().unwrap_or(0));
                if self.show_progress {
                    let mut counts: Vec<_> = self.progress.iter().collect();
                    counts.sort();
                    let line: Vec<String> = counts.iter().map(|(i, n)| format!("node {i}: {n}")).collect();
                    eprint!("\r  sessions held: {}   ", line.join(", "));
                }
                continue;
            }
            if event["event"] == "exited" {
                self.exited.insert(from);
            }
            if self.exited.contains(&index) {
                bail!("benchmark worker {index} exited early");
            }
            if from == index && event["event"] == name {
                return Ok(event);
            }
            self.early.push((from, event));
        }
    }

    fn clear_progress(&mut self) {
        if self.show_progress && !self.progress.is_empty() {
            eprintln!();
        }
        self.progress.clear();
    }
}

/// Starts the worker of `dir` dialing `peers` and waits for it to be ready.
fn start_worker(index: usize, dir: &Path, peers: &[SocketAddr], events: &mut Events) -> anyhow::Result<Worker> {
    let exe = std::env::current_exe().context("finding the feedmesh executable")?;
    let mut command = Command::new(exe);
    command.args(["bench", "worker", "--dir"]).arg(dir);
    for peer in peers {
        command.arg("--peer").arg(peer.to_string());
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting a benchmark worker")?;
    let stdin = child.stdin.take().context("worker stdin")?;
    let stdout = child.stdout.take().context("worker stdout")?;
    let sender = events.sender.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(event) = serde_json::from_str::<Value>(&line) {
                let _ = sender.send((index, event));
            }
        }
        let _ = sender.send((index, json!({"event": "exited"})));
    });
    let ready = events.next(index, "ready")?;
    let field = |name: &str| ready[name].as_str().unwrap_or_default().to_string();
    Ok(Worker {
        child,
        stdin,
        id: field("id").parse().context("worker id")?,
        listen: field("listen").parse().context("worker listen address")?,
        api: field("api").parse().context("worker api address")?,
    })
}

impl Worker {
    fn send(&mut self, command: &Value) -> anyhow::Result<()> {
        writeln!(self.stdin, "{command}").context("writing to a benchmark worker")
    }

    /// Asks the worker to stop and waits for it.
    fn quit(mut self) -> anyhow::Result<()> {
        self.send(&json!({"cmd": "quit"}))?;
        self.child.wait()?;
        Ok(())
    }
}

/// Node directories `0..count` sharing one network key.
fn node_dirs(root: &Path, count: usize) -> anyhow::Result<Vec<PathBuf>> {
    let key = NetworkKey::generate()?;
    (0..count)
        .map(|i| {
            let dir = root.join(format!("node{i}"));
            NodeDir::create_with_network_key(&dir, Some(&key))?;
            Ok(dir)
        })
        .collect()
}

/// Starts workers for `dirs` in a full mesh (each dials every earlier one).
fn start_mesh(dirs: &[PathBuf], events: &mut Events) -> anyhow::Result<Vec<Worker>> {
    let mut workers: Vec<Worker> = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        let peers: Vec<SocketAddr> = workers.iter().map(|w| w.listen).collect();
        workers.push(start_worker(i, dir, &peers, events)?);
    }
    Ok(workers)
}

fn sessions(nodes: usize, writers: u64, ops: u64, value_bytes: u64) -> anyhow::Result<Value> {
    let scratch = Scratch::new()?;
    let mut events = Events::new(std::io::stderr().is_terminal());
    let dirs = node_dirs(&scratch.0, nodes)?;
    let mut workers = start_mesh(&dirs, &mut events)?;
    let n = nodes as u64;
    let mut shares: Vec<(u64, u64)> = (0..n)
        .map(|i| {
            let w = writers / n + u64::from(i < writers % n);
            (w, ops * w / writers)
        })
        .collect();
    let rounded: u64 = shares.iter().map(|s| s.1).sum();
    shares[0].1 += ops - rounded;
    let total = ops;

    let began = now_us();
    for (i, worker) in workers.iter_mut().enumerate() {
        let (w, o) = shares[i];
        worker.send(
            &json!({"cmd": "write", "writers": w, "ops": o, "prefix": format!("n{i}"), "value_bytes": value_bytes}),
        )?;
        worker.send(&json!({"cmd": "await_sessions", "sessions": total}))?;
    }
    // Per origin entry: when it was durable, and how many puts it holds.
    let mut origin: HashMap<(FeedId, u64), (u64, u64)> = HashMap::new();
    for (i, worker) in workers.iter().enumerate() {
        let written = events.next(i, "written")?;
        for item in written["origin"].as_array().into_iter().flatten() {
            let (seq, at, puts) = (item[0].as_u64(), item[1].as_u64(), item[2].as_u64());
            origin.insert((worker.id, seq.unwrap_or(0)), (at.unwrap_or(0), puts.unwrap_or(0)));
        }
    }
    let mut done_at = 0;
    let mut lags: Vec<(u64, u64)> = Vec::new();
    for i in 0..workers.len() {
        let holding = events.next(i, "holding")?;
        done_at = done_at.max(holding["at_us"].as_u64().unwrap_or(0));
        for item in holding["observed"].as_array().into_iter().flatten() {
            let feed: FeedId = item[0].as_str().unwrap_or_default().parse()?;
            let (seq, at) = (item[1].as_u64().unwrap_or(0), item[2].as_u64().unwrap_or(0));
            if let Some(&(durable, puts)) = origin.get(&(feed, seq)) {
                lags.push((at.saturating_sub(durable), puts));
            }
        }
    }
    events.clear_progress();
    let elapsed_s = done_at.saturating_sub(began) as f64 / 1e6;

    let mut measured = Vec::new();
    for (i, worker) in workers.iter_mut().enumerate() {
        let (w, o) = shares[i];
        worker.send(&json!({"cmd": "measure", "prefix": format!("n{i}"), "writers": w, "ops": o}))?;
        measured.push(events.next(i, "measured")?);
    }
    let http = http_get_latency(workers[0].api, &shares[0], 20_000)?;
    for worker in workers {
        worker.quit()?;
    }
    let lag = weighted_percentiles(&mut lags);
    let mean = |name: &str| measured.iter().map(|m| m[name].as_f64().unwrap_or(0.0)).sum::<f64>() / n as f64;
    let per_million = |bytes: f64| bytes / (total as f64) * 1e6 / 1e6;
    Ok(json!({
        "benchmark": "sessions",
        "nodes": nodes,
        "writers": writers,
        "ops": total,
        "value_bytes": value_bytes,
        "elapsed_s": elapsed_s,
        "ops_per_sec": total as f64 / elapsed_s,
        "lag_p50_ms": lag.0 as f64 / 1e3,
        "lag_p99_ms": lag.1 as f64 / 1e3,
        "lag_max_ms": lag.2 as f64 / 1e3,
        "get_p50_us": mean("get_p50_ns") / 1e3,
        "get_p99_us": mean("get_p99_ns") / 1e3,
        "http_get_p50_us": http.0 as f64 / 1e3,
        "http_get_p99_us": http.1 as f64 / 1e3,
        "rss_mb_per_million": per_million(mean("rss_bytes")),
        "disk_mb_per_million": per_million(mean("disk_bytes")),
    }))
}

/// p50, p99 and max of `samples` (value, weight), each value counted
/// `weight` times.
fn weighted_percentiles(samples: &mut [(u64, u64)]) -> (u64, u64, u64) {
    samples.sort_unstable();
    let total: u64 = samples.iter().map(|s| s.1).sum();
    let at = |p: f64| {
        let rank = ((p / 100.0) * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for &(value, weight) in samples.iter() {
            seen += weight;
            if seen >= rank {
                return value;
            }
        }
        0
    };
    (at(50.0), at(99.0), samples.last().map_or(0, |s| s.0))
}

/// Median and 99th percentile, in nanoseconds, of `samples` sequential
/// `GET /v1/sessions/KEY` on one kept-alive connection to `api`.
fn http_get_latency(api: SocketAddr, share: &(u64, u64), samples: u64) -> anyhow::Result<(u64, u64)> {
    let stream = TcpStream::connect(api).context("connecting to a worker's API")?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    let (writers, ops) = *share;
    let per_writer = (ops / writers).max(1);
    let mut nanos = Vec::with_capacity(samples as usize);
    for i in 0..samples {
        let key = session_key("n0", i % writers, (i * 7919) % per_writer);
        let began = std::time::Instant::now();
        write!(writer, "GET /v1/sessions/{key} HTTP/1.1\r\nHost: bench\r\n\r\n")?;
        let status = read_response(&mut reader)?;
        nanos.push(began.elapsed().as_nanos() as u64);
        anyhow::ensure!(status == 200, "GET /v1/sessions/{key} answered {status}");
    }
    nanos.sort_unstable();
    Ok((percentile(&nanos, 50.0), percentile(&nanos, 99.0)))
}

/// Reads one HTTP/1.1 response with a Content-Length body; returns its status.
fn read_response(reader: &mut impl BufRead) -> anyhow::Result<u16> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status: u16 = line.split_whitespace().nth(1).context("no status line")?.parse()?;
    let mut length = 0usize;
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(status)
}

fn catchup(missed: u64, writers: u64, value_bytes: u64) -> anyhow::Result<Value> {
    let scratch = Scratch::new()?;
    let mut events = Events::new(std::io::stderr().is_terminal());
    let dirs = node_dirs(&scratch.0, 2)?;
    let mut workers = start_mesh(&dirs, &mut events)?;
    // One put, held by both: the two are connected.
    workers[0]
        .send(&json!({"cmd": "write", "writers": 1, "ops": 1, "prefix": "warmup", "value_bytes": value_bytes}))?;
    let warm = events.next(0, "written")?;
    let source = workers[0].id;
    let source_addr = workers[0].listen;
    let warm_seq = warm["last_seq"].as_u64().unwrap_or(0);
    workers[1].send(&json!({"cmd": "await_feed", "feed": source.to_string(), "seq": warm_seq}))?;
    events.next(1, "holding")?;
    let stopped = workers.pop().context("two workers")?;
    stopped.quit()?;

    workers[0].send(
        &json!({"cmd": "write", "writers": writers, "ops": missed, "prefix": "missed", "value_bytes": value_bytes}),
    )?;
    let written = events.next(0, "written")?;
    let last_seq = written["last_seq"].as_u64().unwrap_or(0);
    let entry_bytes = written["entry_bytes"].as_u64().unwrap_or(0);

    let began = now_us();
    // A new index: the stopped worker's own events may still be in flight.
    let mut restarted = start_worker(2, &dirs[1], &[source_addr], &mut events)?;
    restarted.send(&json!({"cmd": "await_feed", "feed": source.to_string(), "seq": last_seq}))?;
    let holding = events.next(2, "holding")?;
    events.clear_progress();
    let caught_up = holding["at_us"].as_u64().unwrap_or(0);
    let bytes = holding["bytes_in"].as_u64().unwrap_or(0);
    restarted.quit()?;
    for worker in workers {
        worker.quit()?;
    }
    Ok(json!({
        "benchmark": "catchup",
        "missed": missed,
        "value_bytes": value_bytes,
        "missed_entries": last_seq - warm_seq,
        "catchup_secs": caught_up.saturating_sub(began) as f64 / 1e6,
        "bytes_transferred": bytes,
        "missed_entry_bytes": entry_bytes,
        "ratio": bytes as f64 / entry_bytes.max(1) as f64,
    }))
}

/// Prints `report` as one JSON object, or as an aligned two-column table.
fn print_report(out: &mut dyn Write, report: &Value, json: bool) -> anyhow::Result<()> {
    if json {
        writeln!(out, "{report}")?;
        return Ok(());
    }
    let fields = report.as_object().context("report")?;
    let width = fields.keys().map(String::len).max().unwrap_or(0);
    for (name, value) in fields {
        let shown = match value.as_f64() {
            Some(number) if value.is_f64() => format!("{number:.2}"),
            _ => value.to_string().trim_matches('"').to_string(),
        };
        writeln!(out, "{name:<width$}  {shown}")?;
    }
    Ok(())
}
