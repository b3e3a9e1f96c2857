//! Deterministic simulation (turmoil) of the real node code: five hosts in a
//! full mesh (each dials the others) over turmoil's simulated TCP, with
//! random link latencies, partitions, and host crashes and restarts, while
//! every host appends entries at random times. Then the network heals and
//! every host must end with the same clock and byte-identical feeds.
//!
//! The node runs unchanged: [`Sessions::start_with`] takes [`SimNetwork`], which
//! hands it turmoil's sockets. Each host keeps its redb store in a directory
//! that outlives crashes (a crash drops the host's runtime, hence the node;
//! a restart reopens the same file).
//!
//! `cargo test` runs [`DEFAULT_SEEDS`] seeds; `FEEDMESH_SIM_SEEDS=N` runs N,
//! and `FEEDMESH_SIM_SEED=S` runs seed S alone (to replay a failure);
//! `FEEDMESH_SIM_CHAOS_SECS` lengthens the chaos phase (default 10 s of
//! simulated time) and `FEEDMESH_SIM_VERBOSE=1` prints each seed's events.
//!
//! Two more simulations add hostile peers that hold the network key: some
//! claim or offer feeds of their own making (spec/PROTOCOL.md §2.2 "Which
//! feeds a node takes"); others fork their own feed across two hosts, ask
//! for answers they never read, or stall inside large messages. The honest
//! feeds must converge regardless, every fork be proven everywhere, and no
//! honest host cut another off.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use feedmesh::feed::{FeedId, Keypair, NewEntry, Record, Timestamp, sign};
use feedmesh::net::{
    BoxConnection, BoxFuture, HandshakeConfig, Listener, MAX_FRAME_PLAINTEXT, MESSAGE_HEADER_LEN, Network, NetworkKey,
    SecureStream, initiate,
};
use feedmesh::node::NodeConfig;
use feedmesh::node_dir::NodeDir;
use feedmesh::rng::SplitMix64;
use feedmesh::sessions::Sessions;
use feedmesh::store::{FeedClock, Store};
use feedmesh::sync::{ClockEntry, MAX_FETCH_RANGE, MAX_FETCHES_PER_PEER, MAX_FRAME, Message};

/// Seeds run by `cargo test`.
const DEFAULT_SEEDS: u64 = 20;
/// Hosts in the network.
const HOSTS: usize = 5;
/// The port every host listens on.
const PORT: u16 = 7000;
/// Simulated time per step.
const TICK: Duration = Duration::from_millis(10);
/// Simulated time of the chaos phase (writes, partitions, crashes).
const CHAOS: Duration = Duration::from_secs(10);

/// [`CHAOS`], or `FEEDMESH_SIM_CHAOS_SECS` seconds.
fn chaos() -> Duration {
    std::env::var("FEEDMESH_SIM_CHAOS_SECS").ok().map_or(CHAOS, |secs| {
        Duration::from_secs(secs.parse().expect("FEEDMESH_SIM_CHAOS_SECS: seconds"))
    })
}
/// Simulated time allowed to converge once everything is healed.
const HEAL_LIMIT: Duration = Duration::from_secs(60);

/// turmoil's TCP, as a [`Network`].
#[derive(Debug)]
struct SimNetwork;

struct SimListener(turmoil::net::TcpListener);

impl Listener for SimListener {
    fn accept(&self) -> BoxFuture<'_, io::Result<(BoxConnection, SocketAddr)>> {
        Box::pin(async move {
            let (stream, addr) = self.0.accept().await?;
            Ok((Box::new(stream) as BoxConnection, addr))
        })
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

impl Network for SimNetwork {
    fn bind(&self, addr: SocketAddr) -> BoxFuture<'_, io::Result<Box<dyn Listener>>> {
        Box::pin(async move {
            let listener = turmoil::net::TcpListener::bind(addr).await?;
            Ok(Box::new(SimListener(listener)) as Box<dyn Listener>)
        })
    }

    fn connect(&self, addr: SocketAddr) -> BoxFuture<'_, io::Result<BoxConnection>> {
        Box::pin(async move {
            let stream = turmoil::net::TcpStream::connect(addr).await?;
            Ok(Box::new(stream) as BoxConnection)
        })
    }
}

/// The test's own seeded randomness.
struct Rng(SplitMix64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(SplitMix64::new(seed))
    }

    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// What a host last saw in its store: its clock and a digest of every record.
type Report = (FeedClock, u64);

/// State shared by the test driver and the hosts' software.
struct Shared {
    /// Hosts in the network.
    hosts: usize,
    /// Hosts append while this is set.
    writing: AtomicBool,
    /// Per host: its latest report.
    reports: Mutex<Vec<Option<Report>>>,
    /// Per host: how many times its software started.
    starts: Mutex<Vec<u64>>,
    /// Per host: its node's disconnects by reason (this run of it).
    disconnects: Mutex<Vec<BTreeMap<&'static str, u64>>>,
    /// The hosts' feed budget ([`NodeConfig::max_feeds`]), if not the default.
    max_feeds: Option<usize>,
    /// The hosts' own feeds: reports cover only these when hostile peers
    /// offer feeds of their own (each host may take different ones).
    honest: BTreeSet<FeedId>,
    /// Set when reports cover only the honest feeds.
    honest_only: bool,
    /// Per host: the most feeds its store held.
    most_feeds: Mutex<Vec<usize>>,
    /// Per host: the feeds its store holds a fork proof of.
    frozen: Mutex<Vec<BTreeSet<FeedId>>>,
}

fn name(host: usize) -> String {
    format!("node{host}")
}

/// The clock and a digest of every record of `store`, or of the honest
/// feeds only.
fn report(store: &dyn Store, shared: &Shared) -> Report {
    let mut clock = store.clock().expect("clock");
    if shared.honest_only {
        clock.retain(|feed, _| shared.honest.contains(feed));
    }
    let mut hasher = DefaultHasher::new();
    for feed in clock.keys() {
        for (entry, payload) in store.range(feed, 1, u64::MAX, usize::MAX).expect("range") {
            entry.as_bytes().hash(&mut hasher);
            payload.hash(&mut hasher);
        }
    }
    (clock, hasher.finish())
}

/// The software of host `host`: a node dialing every other host, appending
/// at random times while the driver allows it, and reporting its store.
async fn software(host: usize, seed: u64, dir: PathBuf, shared: Arc<Shared>) -> turmoil::Result {
    let start = {
        let mut starts = shared.starts.lock().expect("lock");
        starts[host] += 1;
        starts[host]
    };
    let mut rng = Rng::new(seed ^ (host as u64) << 32 ^ start << 48);
    let mut config = NodeConfig::new(&dir);
    config.listen = Some(SocketAddr::from((Ipv4Addr::UNSPECIFIED, PORT)));
    config.peers = (0..shared.hosts)
        .filter(|&other| other != host)
        .map(|other| SocketAddr::new(turmoil::lookup(name(other)), PORT))
        .collect();
    config.reconnect_min = Duration::from_millis(50);
    config.reconnect_max = Duration::from_secs(2);
    config.handshake_timeout = Duration::from_secs(3);
    // Short, so that the simulation sees peers that stall in a message cut
    // (honest messages here are far smaller than one that needs it).
    config.message_deadline = Duration::from_secs(2);
    config.jitter_seed = Some(rng.next());
    if let Some(max_feeds) = shared.max_feeds {
        config.max_feeds = max_feeds;
    }
    let sessions = Sessions::start_with(config, Arc::new(SimNetwork)).await?;
    let node = sessions.node();
    let store = node.store();
    let mut last: Option<FeedClock> = None;
    let mut written = 0u64;
    loop {
        tokio::time::sleep(Duration::from_millis(20 + rng.below(400))).await;
        if shared.writing.load(Ordering::SeqCst) {
            // Mostly single entries, sometimes a burst (several Records messages).
            let count = if rng.chance(2) {
                10 + rng.below(60)
            } else {
                1 + rng.below(3)
            } as usize;
            let payloads: Vec<Vec<u8>> = (0..count)
                .map(|i| format!("{} #{start} {written} {i}", name(host)).into_bytes())
                .collect();
            let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
            node.append_batch(&refs).await?;
            written += 1;
        }
        shared.disconnects.lock().expect("lock")[host] = node.disconnects();
        shared.frozen.lock().expect("lock")[host] = store.forks()?.iter().map(|proof| proof.author()).collect();
        let clock = store.clock()?;
        {
            let mut most = shared.most_feeds.lock().expect("lock");
            most[host] = most[host].max(clock.len());
        }
        let unreported = shared.reports.lock().expect("lock")[host].is_none();
        if unreported || last.as_ref() != Some(&clock) {
            let report = report(&*store, &shared);
            last = Some(report.0.clone());
            shared.reports.lock().expect("lock")[host] = Some(report);
        }
    }
}

/// Node directories (seeded network key and identities) for `hosts` hosts,
/// and their shared state; the generator continues the seed.
fn setup(seed: u64, hosts: usize) -> (tempfile::TempDir, Vec<PathBuf>, Arc<Shared>, Rng) {
    setup_with(seed, hosts, None)
}

/// [`setup`] with hosts that take at most `max_feeds` feeds (reports then
/// cover the honest feeds only).
fn setup_with(
    seed: u64,
    hosts: usize,
    max_feeds: Option<usize>,
) -> (tempfile::TempDir, Vec<PathBuf>, Arc<Shared>, Rng) {
    // In memory when possible: fsync is not what is tested here, and it
    // dominates the run time on disk.
    let shm = std::path::Path::new("/dev/shm");
    let root = if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
    .expect("tempdir");
    let mut rng = Rng::new(seed);
    let key = NetworkKey::from_bytes(rng.next().to_le_bytes().repeat(4).try_into().expect("32 bytes"));
    let mut dirs = Vec::new();
    let mut honest = BTreeSet::new();
    for host in 0..hosts {
        let dir = root.path().join(name(host));
        NodeDir::create_with_network_key(&dir, Some(&key)).expect("node dir");
        // A seeded identity, so that a seed replays the same tie-breaks.
        let mut secret = [0u8; 32];
        for chunk in secret.chunks_mut(8) {
            chunk.copy_from_slice(&rng.next().to_le_bytes());
        }
        let keys = Keypair::from_seed(secret);
        honest.insert(keys.feed_id());
        std::fs::write(dir.join("secret_key"), format!("{}\n", keys.seed_hex())).expect("write key");
        dirs.push(dir);
    }
    let shared = Arc::new(Shared {
        hosts,
        writing: AtomicBool::new(true),
        reports: Mutex::new(vec![None; hosts]),
        starts: Mutex::new(vec![0; hosts]),
        disconnects: Mutex::new(vec![BTreeMap::new(); hosts]),
        max_feeds,
        honest,
        honest_only: max_feeds.is_some(),
        most_feeds: Mutex::new(vec![0; hosts]),
        frozen: Mutex::new(vec![BTreeSet::new(); hosts]),
    });
    (root, dirs, shared, rng)
}

/// Whether every host reported the same clock and records.
fn converged(shared: &Shared) -> bool {
    let reports = shared.reports.lock().expect("lock");
    reports
        .first()
        .is_some_and(|first| first.is_some() && reports.iter().all(|r| r == first))
}

/// Runs one seed; on failure, says what differed.
fn run_seed(seed: u64) -> Result<(), String> {
    let (_root, dirs, shared, mut rng) = setup(seed, HOSTS);
    let max_latency = Duration::from_millis(2 + rng.below(80));
    // Random link failures (each message sent may break its link until a
    // later one repairs it): none, rare or frequent.
    let fail_rate = [0.0, 0.0005, 0.002][rng.below(3) as usize];
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .tick_duration(TICK)
        .simulation_duration(chaos() + HEAL_LIMIT + Duration::from_secs(10))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(max_latency)
        .fail_rate(fail_rate)
        .repair_rate(0.05)
        .build();
    for (host, dir) in dirs.iter().enumerate() {
        let (dir, shared) = (dir.clone(), shared.clone());
        sim.host(name(host), move || software(host, seed, dir.clone(), shared.clone()));
    }
    let mut crashed = [false; HOSTS];
    let mut partitioned: Vec<(usize, usize)> = Vec::new();
    let mut events = Vec::new();
    let chaos_steps = chaos().as_millis() / TICK.as_millis();
    for step in 0..chaos_steps {
        // About one event per 250 ms of simulated time.
        if rng.chance(4) {
            let (a, b) = (rng.below(HOSTS as u64) as usize, rng.below(HOSTS as u64) as usize);
            match rng.below(5) {
                0 if a != b && !partitioned.contains(&(a.min(b), a.max(b))) => {
                    sim.partition(name(a), name(b));
                    partitioned.push((a.min(b), a.max(b)));
                    events.push(format!("{step}: partition {a}-{b}"));
                }
                1 if !partitioned.is_empty() => {
                    let (a, b) = partitioned.swap_remove(rng.below(partitioned.len() as u64) as usize);
                    sim.repair(name(a), name(b));
                    events.push(format!("{step}: repair {a}-{b}"));
                }
                2 if !crashed[a] && crashed.iter().filter(|&&c| c).count() < 2 => {
                    sim.crash(name(a));
                    crashed[a] = true;
                    events.push(format!("{step}: crash {a}"));
                }
                3 if crashed[a] => {
                    sim.bounce(name(a));
                    crashed[a] = false;
                    events.push(format!("{step}: restart {a}"));
                }
                4 => {
                    // Cut one host off from every other.
                    for other in (0..HOSTS).filter(|&other| other != a) {
                        let pair = (a.min(other), a.max(other));
                        if !partitioned.contains(&pair) {
                            sim.partition(name(a), name(other));
                            partitioned.push(pair);
                        }
                    }
                    events.push(format!("{step}: isolate {a}"));
                }
                _ => {}
            }
        }
        sim.step().map_err(|e| format!("seed {seed}: step {step}: {e}"))?;
    }
    // Heal: stop writing, repair every link, restart every crashed host.
    shared.writing.store(false, Ordering::SeqCst);
    sim.set_fail_rate(0.0);
    partitioned.clear();
    for a in 0..HOSTS {
        for b in a + 1..HOSTS {
            sim.repair(name(a), name(b));
        }
    }
    for (host, crashed) in crashed.iter_mut().enumerate() {
        if *crashed {
            sim.bounce(name(host));
            *crashed = false;
        }
    }
    events.push(format!(
        "{chaos_steps}: heal (latency 1..{max_latency:?}, fail rate {fail_rate})"
    ));
    // Only reports made after the heal count (a crashed host's last one
    // may predate its last appends). A host that never wrote has no feed.
    shared.reports.lock().expect("lock").fill(None);
    let heal_steps = HEAL_LIMIT.as_millis() / TICK.as_millis();
    for step in 0..heal_steps {
        sim.step().map_err(|e| format!("seed {seed}: heal step {step}: {e}"))?;
        if step % 10 == 0 && converged(&shared) {
            if std::env::var_os("FEEDMESH_SIM_VERBOSE").is_some() {
                let reports = shared.reports.lock().expect("lock");
                eprintln!("seed {seed}: converged {step} steps after healing on {:?}", reports[0]);
                eprintln!("events {events:?}");
                eprintln!("disconnects: {:?}", shared.disconnects.lock().expect("lock"));
            }
            return Ok(());
        }
    }
    let reports = shared.reports.lock().expect("lock");
    let mut text = format!("seed {seed}: no convergence {HEAL_LIMIT:?} after healing\nevents: {events:?}\n");
    for (host, report) in reports.iter().enumerate() {
        let clock = report.as_ref().map(|(clock, digest)| {
            let seqs: Vec<String> = clock
                .iter()
                .map(|(f, s)| format!("{}:{s}", &f.to_string()[..6]))
                .collect();
            format!("{} digest {digest:x}", seqs.join(" "))
        });
        text.push_str(&format!("  {}: {}\n", name(host), clock.unwrap_or_default()));
    }
    Err(text)
}

#[test]
fn five_hosts_converge_after_partitions_delays_and_crashes() {
    let seeds: Vec<u64> = match std::env::var("FEEDMESH_SIM_SEED") {
        Ok(seed) => vec![seed.parse().expect("FEEDMESH_SIM_SEED: a number")],
        Err(_) => {
            let count = std::env::var("FEEDMESH_SIM_SEEDS")
                .ok()
                .map(|n| n.parse().expect("FEEDMESH_SIM_SEEDS: a number"))
                .unwrap_or(DEFAULT_SEEDS);
            (0..count).collect()
        }
    };
    let mut failures = Vec::new();
    for &seed in &seeds {
        let started = std::time::Instant::now();
        let result = run_seed(seed);
        eprintln!("seed {seed}: {:?} in {:?}", result.is_ok(), started.elapsed());
        if let Err(failure) = result {
            failures.push(failure);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} seeds failed:\n{}",
        failures.len(),
        seeds.len(),
        failures.join("\n")
    );
}

/// A simulation of at most two minutes with link latencies of 1 ms up to
/// `max_latency` and no link failures, running the hosts of `dirs`.
fn two_minutes_of(seed: u64, dirs: &[PathBuf], shared: &Arc<Shared>, max_latency: Duration) -> turmoil::Sim<'static> {
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .tick_duration(TICK)
        .simulation_duration(Duration::from_secs(120))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(max_latency)
        .build();
    for (host, dir) in dirs.iter().enumerate() {
        let (dir, shared) = (dir.clone(), shared.clone());
        sim.host(name(host), move || software(host, seed, dir.clone(), shared.clone()));
    }
    sim
}

/// A partition that cuts a live connection mid-stream leaves it dead: the
/// bytes sent meanwhile are lost, so nothing sent after them is delivered
/// (turmoil does not retransmit; real TCP gives up only after many minutes,
/// and a peer that vanished sends no FIN at all). With two nodes there is no
/// other path: only the idle timeout's close and the redial that follows let
/// them converge. (Before keepalives, they never did.)
#[test]
fn a_connection_cut_by_a_partition_is_closed_and_redialled() {
    let seed = 1;
    let (_root, dirs, shared, _) = setup(seed, 2);
    let mut sim = two_minutes_of(seed, &dirs, &shared, Duration::from_millis(10));
    let run = |sim: &mut turmoil::Sim, time: Duration| {
        for _ in 0..time.as_millis() / TICK.as_millis() {
            sim.step().expect("step");
        }
    };
    run(&mut sim, Duration::from_secs(3));
    let replicating = |shared: &Shared| {
        let reports = shared.reports.lock().expect("lock");
        reports
            .iter()
            .all(|r| r.as_ref().is_some_and(|(clock, _)| clock.len() == 2))
    };
    assert!(replicating(&shared), "connected and replicating before the partition");
    sim.partition(name(0), name(1));
    run(&mut sim, Duration::from_secs(3));
    sim.repair(name(0), name(1));
    shared.writing.store(false, Ordering::SeqCst);
    shared.reports.lock().expect("lock").fill(None);
    let started = sim.elapsed();
    while !converged(&shared) {
        assert!(
            sim.elapsed() - started < HEAL_LIMIT,
            "no convergence in {HEAL_LIMIT:?} after the partition: {:?}",
            shared.reports.lock().expect("lock")
        );
        run(&mut sim, TICK * 10);
    }
    let disconnects = shared.disconnects.lock().expect("lock");
    assert!(
        disconnects.iter().any(|d| d.contains_key("idle")),
        "the dead connection was closed as idle: {disconnects:?}"
    );
}

/// Feeds a hostile peer makes up per connection (claims only).
const MADE_UP_FEEDS: u64 = 3000;
/// Feeds a hostile peer offers per connection, and sends when asked.
const OFFERED_FEEDS: u64 = 40;
/// The honest hosts' feed budget in the hostile simulation.
const HOSTILE_BUDGET: usize = 60;

/// A hostile peer holding the network key: connects to a random honest
/// host as a fresh identity, claims feeds nobody holds, offers feeds of
/// its own making (sending entry 1 of each when asked), then leaves after a
/// while; again and again, until the simulation ends.
async fn hostile(seed: u64, key: NetworkKey, hosts: usize) -> turmoil::Result {
    let mut rng = Rng::new(seed);
    loop {
        let Some(mut stream) = visit(&mut rng, &key, hosts).await else {
            continue;
        };
        let offered: BTreeMap<FeedId, Keypair> = (0..OFFERED_FEEDS)
            .map(|_| Keypair::from_seed(rng.next().to_le_bytes().repeat(4).try_into().expect("32 bytes")))
            .map(|keys| (keys.feed_id(), keys))
            .collect();
        let made_up = (0..MADE_UP_FEEDS).map(|_| FeedId(rng.next().to_le_bytes().repeat(4).try_into().expect("32")));
        let claimed: BTreeSet<FeedId> = made_up.chain(offered.keys().copied()).collect();
        let feeds = claimed
            .into_iter()
            .map(|feed| ClockEntry {
                feed,
                latest: 1,
                want: false,
                frozen: false,
                head: Some(feedmesh::feed::Hash([0; 32])),
            })
            .collect();
        if stream.send(&Message::Clock { feeds }.encode()).await.is_err() {
            continue;
        }
        let stay = Duration::from_millis(200 + rng.below(2000));
        let _ = tokio::time::timeout(stay, async {
            while let Ok(bytes) = stream.recv().await {
                let Ok(Message::Clock { feeds }) = Message::decode(&bytes) else {
                    continue;
                };
                let records = feeds
                    .iter()
                    .filter(|line| line.want)
                    .filter_map(|line| offered.get(&line.feed))
                    .map(first_entry)
                    .collect();
                if stream.send(&Message::Records { records }.encode()).await.is_err() {
                    return;
                }
            }
        })
        .await;
    }
}

/// Entry 1 of the feed of `keys`.
fn first_entry(keys: &Keypair) -> Record {
    let new = NewEntry {
        seq: 1,
        prev: None,
        skip: None,
        timestamp: Timestamp::new(1_767_225_600_000, 0),
        payload: b"junk",
    };
    sign(keys, &new).expect("sign").into_parts()
}

/// Entries 1 and 2 of the feed of `keys`, entry 2 carrying `variant`: two
/// calls with different variants fork the feed at 2.
fn forked_chain(keys: &Keypair, variant: &[u8]) -> Vec<Record> {
    let first = first_entry(keys);
    let second = NewEntry {
        seq: 2,
        prev: Some(first.0.hash()),
        skip: None,
        timestamp: Timestamp::new(1_767_225_600_001, 0),
        payload: variant,
    };
    vec![first, sign(keys, &second).expect("sign").into_parts()]
}

/// Connects to honest host `host` as `identity`, or `None`.
async fn connect_as(
    host: usize,
    key: &NetworkKey,
    identity: &Keypair,
) -> Option<SecureStream<turmoil::net::TcpStream>> {
    let addr = SocketAddr::new(turmoil::lookup(name(host)), PORT);
    let stream = turmoil::net::TcpStream::connect(addr).await.ok()?;
    initiate(stream, key, identity, None, &HandshakeConfig::default())
        .await
        .ok()
}

/// A hostile peer's next visit: after a random pause, a connection to a
/// random honest host as a fresh identity (`None` if it failed).
async fn visit(rng: &mut Rng, key: &NetworkKey, hosts: usize) -> Option<SecureStream<turmoil::net::TcpStream>> {
    tokio::time::sleep(Duration::from_millis(50 + rng.below(300))).await;
    let host = rng.below(hosts as u64) as usize;
    let identity = Keypair::from_seed(rng.next().to_le_bytes().repeat(4).try_into().expect("32 bytes"));
    connect_as(host, key, &identity).await
}

/// One side of a forking author: tells host `host` it holds `chain` (its
/// own feed, forked elsewhere) and sends what the host wants of it; again
/// after every disconnect, until the simulation ends.
async fn offer_fork(host: usize, key: NetworkKey, identity: Keypair, chain: Vec<Record>) {
    let feed = identity.feed_id();
    let head = chain.last().expect("a chain").0.clone();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let Some(mut stream) = connect_as(host, &key, &identity).await else {
            continue;
        };
        let claim = Message::Clock {
            feeds: vec![ClockEntry {
                feed,
                latest: head.seq(),
                want: false,
                frozen: false,
                head: Some(head.hash()),
            }],
        };
        if stream.send(&claim.encode()).await.is_err() {
            continue;
        }
        while let Ok(bytes) = stream.recv().await {
            let Ok(Message::Clock { feeds }) = Message::decode(&bytes) else {
                continue;
            };
            let Some(line) = feeds.iter().find(|line| line.feed == feed && line.want) else {
                continue;
            };
            let records: Vec<Record> = chain.iter().filter(|(e, _)| e.seq() > line.latest).cloned().collect();
            if !records.is_empty() && stream.send(&Message::Records { records }.encode()).await.is_err() {
                break;
            }
        }
    }
}

/// A hostile peer that misbehaves without breaking a rule a host can see
/// at once: it connects to a random honest host as a fresh identity and
/// either asks for the largest answers it may have outstanding and never
/// reads them, or starts a message of nearly [`MAX_FRAME`] bytes and stalls
/// in it; then leaves, and again, until the simulation ends.
async fn staller(seed: u64, key: NetworkKey, hosts: usize) -> turmoil::Result {
    let mut rng = Rng::new(seed);
    loop {
        let Some(mut stream) = visit(&mut rng, &key, hosts).await else {
            continue;
        };
        let stay = Duration::from_millis(500 + rng.below(3000));
        if rng.chance(50) {
            // Fetches of the first honest feed the host announces, unread.
            let Ok(Ok(bytes)) = tokio::time::timeout(stay, stream.recv()).await else {
                continue;
            };
            let Ok(Message::Clock { feeds }) = Message::decode(&bytes) else {
                continue;
            };
            let Some(line) = feeds.iter().find(|line| line.latest > 0) else {
                continue;
            };
            for id in 0..MAX_FETCHES_PER_PEER as u64 {
                let fetch = Message::Fetch {
                    id,
                    feed: line.feed,
                    from: 1,
                    to: line.latest.min(MAX_FETCH_RANGE),
                };
                if stream.send(&fetch.encode()).await.is_err() {
                    break;
                }
            }
        } else {
            let mut partial = (MAX_FRAME as u32).to_be_bytes().to_vec();
            partial.resize(MESSAGE_HEADER_LEN + 200_000, 0x5a);
            for frame in partial.chunks(MAX_FRAME_PLAINTEXT) {
                if stream.send_raw_frame(frame).await.is_err() {
                    break;
                }
            }
        }
        tokio::time::sleep(stay).await;
    }
}

/// Runs the chaos phase of `sim`, then stops the hosts' writes and clears
/// their reports; returns when that was (the healing starts).
fn run_chaos(sim: &mut turmoil::Sim<'_>, shared: &Shared) -> Duration {
    for _ in 0..chaos().as_millis() / TICK.as_millis() {
        sim.step().expect("step");
    }
    shared.writing.store(false, Ordering::SeqCst);
    shared.reports.lock().expect("lock").fill(None);
    sim.elapsed()
}

/// Three honest hosts in a full mesh while three hostile peers come and go,
/// claiming thousands of feeds nobody holds and offering junk feeds: every
/// honest host ends with the same honest feeds, no host holds more than its
/// budget plus its peers' own feeds, and no honest host cut another off for
/// going over a limit.
#[test]
fn honest_hosts_converge_while_hostile_peers_claim_and_offer_feeds() {
    const HONEST: usize = 3;
    for seed in 0..4 {
        let (_root, dirs, shared, mut rng) = setup_with(seed, HONEST, Some(HOSTILE_BUDGET));
        let key = NetworkKey::read_file(&dirs[0].join("network_key")).expect("network key");
        let mut sim = two_minutes_of(seed, &dirs, &shared, Duration::from_millis(20));
        for rogue in 0..3 {
            let (seed, key) = (rng.next(), key.clone());
            sim.client(format!("rogue{rogue}"), hostile(seed, key, HONEST));
        }
        let started = run_chaos(&mut sim, &shared);
        while !converged(&shared) {
            assert!(
                sim.elapsed() - started < HEAL_LIMIT,
                "seed {seed}: the honest feeds never converged: {:?}",
                shared.reports.lock().expect("lock")
            );
            sim.step().expect("step");
        }
        let reports = shared.reports.lock().expect("lock");
        assert_eq!(
            reports[0].as_ref().map(|(clock, _)| clock.len()),
            Some(HONEST),
            "seed {seed}"
        );
        for (host, disconnects) in shared.disconnects.lock().expect("lock").iter().enumerate() {
            for reason in ["too-many-feeds", "flooding"] {
                assert_eq!(
                    disconnects.get(reason),
                    None,
                    "seed {seed}: host {host}: {disconnects:?}"
                );
            }
        }
        let most = shared.most_feeds.lock().expect("lock");
        assert!(
            most.iter().all(|&n| n <= HOSTILE_BUDGET + HONEST),
            "seed {seed}: feeds held {most:?}"
        );
        assert!(
            most.iter().any(|&n| n > HONEST),
            "seed {seed}: the hostile peers offered nothing"
        );
    }
}

/// Three honest hosts in a full mesh while two forking authors each show
/// one version of their feed to one host and another to the next, and two
/// hostile peers come and go asking for answers they never read or
/// stalling inside large messages: the honest feeds converge, every honest
/// host holds the proof of both forks (found by comparing heads, not by
/// blaming the host that relays the other version), and no honest host cut
/// another off for what the hostile peers did.
#[test]
fn honest_hosts_prove_forks_and_keep_their_links_while_rogues_fork_and_stall() {
    const HONEST: usize = 3;
    for seed in 0..3 {
        let (_root, dirs, shared, mut rng) = setup_with(seed, HONEST, Some(HOSTILE_BUDGET));
        let key = NetworkKey::read_file(&dirs[0].join("network_key")).expect("network key");
        let mut sim = two_minutes_of(seed, &dirs, &shared, Duration::from_millis(20));
        let mut forkers = BTreeSet::new();
        for forker in 0..2 {
            let identity = Keypair::from_seed(rng.next().to_le_bytes().repeat(4).try_into().expect("32 bytes"));
            forkers.insert(identity.feed_id());
            for (side, variant) in [(forker, b"version a"), (forker + 1, b"version b")] {
                let (key, identity) = (key.clone(), identity.clone());
                let chain = forked_chain(&identity, variant);
                sim.client(format!("forker{forker}-{side}"), async move {
                    offer_fork(side % HONEST, key, identity, chain).await;
                    Ok(())
                });
            }
        }
        for rogue in 0..2 {
            let (seed, key) = (rng.next(), key.clone());
            sim.client(format!("staller{rogue}"), staller(seed, key, HONEST));
        }
        let started = run_chaos(&mut sim, &shared);
        let proven = |shared: &Shared| shared.frozen.lock().expect("lock").iter().all(|f| forkers.is_subset(f));
        while !(converged(&shared) && proven(&shared)) {
            assert!(
                sim.elapsed() - started < HEAL_LIMIT,
                "seed {seed}: no convergence: {:?}, frozen {:?}",
                shared.reports.lock().expect("lock"),
                shared.frozen.lock().expect("lock")
            );
            sim.step().expect("step");
        }
        let disconnects = shared.disconnects.lock().expect("lock");
        assert!(
            disconnects.iter().any(|d| d.contains_key("slow-message")),
            "seed {seed}: no stalled message was cut: {disconnects:?}"
        );
        drop(disconnects);
        for (host, disconnects) in shared.disconnects.lock().expect("lock").iter().enumerate() {
            for reason in ["too-many-feeds", "flooding", "invalid-entry", "false-claim"] {
                assert_eq!(
                    disconnects.get(reason),
                    None,
                    "seed {seed}: host {host}: {disconnects:?}"
                );
            }
        }
    }
}
