//! Is the mesh chatty? (issue #15): messages and bytes each node sends per
//! foreign operation (an entry another node wrote, which this node now
//! holds), at N = 3, 6, 12 and 24 nodes, in a full mesh and in a ring with
//! chords, set against N = 3.
//!
//! Runs in the simulated network of `feedmesh_proto::sim`: in-memory stores,
//! a virtual clock, no transport (bytes are those of the encoded messages,
//! without framing or encryption), no bandwidth; every node with its
//! scheduler (one sender per feed). Each net is connected first; then, for
//! [`ROUNDS`] rounds, every node appends a batch of [`PER_ROUND`] entries
//! (`-- --per-round N` for another size) of [`PAYLOAD`] bytes to its own
//! feed, so that entries replicate live, a few at a time, not in one bulk
//! sync. Two rhythms:
//!
//! - *together*: in each round every node appends, then the net runs until
//!   idle (all writes of a round happen at one instant, so a Clock message
//!   on a link carries the lines of many feeds at once);
//! - *in turn*: in each round the nodes append one after the other, the net
//!   running until idle after each (writes never overlap, as at a low write
//!   rate).
//!
//! Every node must end up holding every feed.
//!
//! Per node: messages sent over foreign operations held, bytes sent over
//! foreign operations held. The first table shows the mean over the nodes
//! (every node holds as many foreign operations, so the mean is also the
//! net's total over the net's total), the worst node, and the mean's ratio
//! to the same topology and rhythm at N = 3 (where the ring with chords is
//! the full mesh); `!` marks a ratio above the target of 1.25. The second
//! gives the net's totals and the records each node received per foreign
//! operation (above 1: an entry arrived twice). The third splits the means
//! by message kind, with the Clock lines (one per feed announced to a peer)
//! and the records sent per foreign operation. Prints figures, asserts
//! nothing but convergence.
//!
//! Run: `cargo bench -p feedmesh-proto --features test-utils --bench mesh`
//! (about 10 s once built).

use std::time::Instant;

use feedmesh_proto::sim::{Net, Sent, Traffic, node_feed};
use feedmesh_proto::store::Store;

/// The net sizes.
const SIZES: [usize; 4] = [3, 6, 12, 24];
/// Rounds of appends, each followed by a run until idle.
const ROUNDS: usize = 25;
/// Entries each node appends per round (one batch), unless `--per-round`.
const PER_ROUND: usize = 4;
/// Payload bytes per entry (the size of the Redis comparison's values).
const PAYLOAD: usize = 200;
/// The target of issue #15: at most this many times the figure at N = 3.
const TARGET: f64 = 1.25;

/// How the nodes are connected.
#[derive(Clone, Copy)]
enum Topology {
    /// Every pair.
    FullMesh,
    /// Node `i` to `i ± 1` and `i ± ⌈√N⌉` (mod N): degree 4 from N = 12.
    RingWithChords,
}

impl Topology {
    const ALL: [Topology; 2] = [Topology::FullMesh, Topology::RingWithChords];

    fn name(self) -> &'static str {
        match self {
            Topology::FullMesh => "full mesh",
            Topology::RingWithChords => "ring + chords",
        }
    }

    fn connect(self, net: &mut Net) {
        match self {
            Topology::FullMesh => net.connect_all(),
            Topology::RingWithChords => {
                let chord = (net.nodes() as f64).sqrt().ceil() as usize;
                net.connect_circulant(&[1, chord]);
            }
        }
    }
}

/// When the nodes append.
#[derive(Clone, Copy)]
enum Rhythm {
    /// All nodes, then the net runs until idle.
    Together,
    /// One node, then the net runs until idle, then the next.
    InTurn,
}

impl Rhythm {
    fn name(self) -> &'static str {
        match self {
            Rhythm::Together => "together",
            Rhythm::InTurn => "in turn",
        }
    }
}

/// One run's counts.
struct Run {
    nodes: usize,
    /// Links per node (the same for every node in both topologies).
    degree: usize,
    /// Foreign operations each node holds at the end.
    foreign: u64,
    /// What each node sent.
    sent: Vec<Traffic>,
    /// Records each node received, duplicates included.
    delivered: Vec<usize>,
}

impl Run {
    fn per_op(&self, sent: Sent) -> (f64, f64) {
        let foreign = self.foreign as f64;
        (sent.messages as f64 / foreign, sent.bytes as f64 / foreign)
    }

    /// The mean over the nodes of messages and bytes per foreign operation.
    fn mean(&self) -> (f64, f64) {
        let (messages, bytes) = self
            .sent
            .iter()
            .map(|t| self.per_op(t.total()))
            .fold((0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
        (messages / self.nodes as f64, bytes / self.nodes as f64)
    }

    /// The worst node's messages and bytes per foreign operation.
    fn max(&self) -> (f64, f64) {
        self.sent
            .iter()
            .map(|t| self.per_op(t.total()))
            .fold((0.0, 0.0), |a, b| (a.0.max(b.0), a.1.max(b.1)))
    }

    /// The whole net's messages and bytes.
    fn total(&self) -> Sent {
        self.sent.iter().map(Traffic::total).sum()
    }

    /// The mean over the nodes of `count(traffic)` per foreign operation.
    fn mean_of(&self, count: impl Fn(&Traffic) -> u64) -> f64 {
        let sum: u64 = self.sent.iter().map(count).sum();
        sum as f64 / (self.foreign * self.nodes as u64) as f64
    }
}

fn run(nodes: usize, topology: Topology, rhythm: Rhythm, per_round: usize) -> Run {
    let mut net = Net::new(nodes);
    topology.connect(&mut net);
    net.run_until_idle();
    let payload = vec![0x5a; PAYLOAD];
    let payloads = vec![payload.as_slice(); per_round];
    for _ in 0..ROUNDS {
        match rhythm {
            Rhythm::Together => {
                for node in 0..nodes {
                    net.append(node, node as u8 + 1, &payloads);
                }
                net.run_until_idle();
            }
            Rhythm::InTurn => {
                for node in 0..nodes {
                    net.append(node, node as u8 + 1, &payloads);
                    net.run_until_idle();
                }
            }
        }
    }
    net.assert_converged(nodes);
    let foreign = (0..nodes)
        .map(|node| {
            let clock = net.stores[node].clock().expect("clock");
            clock
                .iter()
                .filter(|(feed, _)| **feed != node_feed(node))
                .map(|(_, seq)| seq)
                .sum()
        })
        .collect::<Vec<u64>>();
    assert!(foreign.iter().all(|&f| f == foreign[0]));
    Run {
        nodes,
        degree: net.conns.len() / nodes,
        foreign: foreign[0],
        sent: net.sent,
        delivered: net.delivered,
    }
}

fn ratio(value: f64, base: f64) -> String {
    let ratio = value / base;
    let mark = if ratio > TARGET { " !" } else { "  " };
    format!("{ratio:5.2}×{mark}")
}

/// Prints the three tables of one rhythm; `runs[size][topology]`, in the
/// order of [`SIZES`] and [`Topology::ALL`]. Returns every ratio above the
/// target, named.
fn report(rhythm: Rhythm, runs: &[[Run; 2]]) -> Vec<String> {
    let mut above = Vec::new();
    println!("== rhythm: {} ==", rhythm.name());
    println!();
    println!("Per node per foreign operation: mean, ratio of the mean to N = 3, worst node");
    println!();
    let [full, sparse] = Topology::ALL.map(Topology::name);
    println!("{:>3} | {full:^58} | {:^58}", "N", format!("{sparse} (±1, ±⌈√N⌉)"));
    let head = format!(
        "{:>3} {:>8} {:>8} {:>7} {:>9} {:>8} {:>9}",
        "deg", "msgs/op", "×N=3", "worst", "bytes/op", "×N=3", "worst"
    );
    println!("{:>3} | {head:<58} | {head:<58}", "");
    for pair in runs {
        let cells = pair.iter().enumerate().map(|(t, run)| {
            let (messages, bytes) = run.mean();
            let base = runs[0][t].mean();
            let (worst_messages, worst_bytes) = run.max();
            for (what, value, base) in [("messages", messages, base.0), ("bytes", bytes, base.1)] {
                if value / base > TARGET {
                    above.push(format!(
                        "{}, {}, N = {}: {what} per foreign operation {:.2}× N = 3",
                        rhythm.name(),
                        Topology::ALL[t].name(),
                        run.nodes,
                        value / base
                    ));
                }
            }
            format!(
                "{:>3} {messages:>8.3} {:>8} {worst_messages:>7.3} {bytes:>9.1} {:>8} {worst_bytes:>9.1}",
                run.degree,
                ratio(messages, base.0),
                ratio(bytes, base.1),
            )
        });
        let [a, b] = <[String; 2]>::try_from(cells.collect::<Vec<_>>()).expect("two topologies");
        println!("{:>3} | {a:<58} | {b:<58}", pair[0].nodes);
    }
    println!();
    println!("Whole net: foreign operations held, messages and bytes sent, records received per foreign operation");
    println!();
    println!("{:>3} | {full:^47} | {sparse:^47}", "N");
    let head = format!("{:>7} {:>9} {:>14} {:>13}", "ops", "messages", "bytes", "recv/op");
    println!("{:>3} | {head:<47} | {head:<47}", "");
    for pair in runs {
        let cells = pair.iter().map(|run| {
            let ops = run.foreign * run.nodes as u64;
            let total = run.total();
            let received = run.delivered.iter().sum::<usize>() as f64 / ops as f64;
            format!("{ops:>7} {:>9} {:>14} {received:>13.3}", total.messages, total.bytes)
        });
        let [a, b] = <[String; 2]>::try_from(cells.collect::<Vec<_>>()).expect("two topologies");
        println!("{:>3} | {a:<47} | {b:<47}", pair[0].nodes);
    }
    println!();
    println!("By kind, mean per node per foreign operation: messages / bytes; Clock lines and records sent");
    println!();
    let mut kinds: Vec<&str> = runs
        .iter()
        .flatten()
        .flat_map(|run| &run.sent)
        .flat_map(|t| t.by_kind.keys().copied())
        .collect();
    kinds.sort_unstable();
    kinds.dedup();
    let mut head = format!("{:<14} {:>3}", "topology", "N");
    for kind in &kinds {
        head.push_str(&format!(" {:>18}", format!("{kind} msgs / B")));
    }
    println!("{head} {:>11} {:>8}", "clock lines", "records");
    for (t, topology) in Topology::ALL.iter().enumerate() {
        for pair in runs {
            let run = &pair[t];
            let mut line = format!("{:<14} {:>3}", topology.name(), run.nodes);
            for kind in &kinds {
                let messages = run.mean_of(|t| t.by_kind.get(kind).map_or(0, |s| s.messages));
                let bytes = run.mean_of(|t| t.by_kind.get(kind).map_or(0, |s| s.bytes));
                line.push_str(&format!(" {:>18}", format!("{messages:.3} / {bytes:.1}")));
            }
            let lines = run.mean_of(|t| t.clock_lines);
            let records = run.mean_of(|t| t.records);
            println!("{line} {lines:>11.3} {records:>8.3}");
        }
    }
    println!();
    above
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let per_round = match args.iter().position(|a| a == "--per-round") {
        Some(i) => args
            .get(i + 1)
            .and_then(|n| n.parse().ok())
            .filter(|&n: &usize| n > 0)
            .expect("--per-round takes a positive number"),
        None => PER_ROUND,
    };
    let started = Instant::now();
    println!(
        "Messages and bytes each node sends per foreign operation: {ROUNDS} rounds, each node appending \
         {per_round} entries of {PAYLOAD} B per round; ! above {TARGET}× N = 3"
    );
    println!();
    let mut above = Vec::new();
    for rhythm in [Rhythm::Together, Rhythm::InTurn] {
        let runs: Vec<[Run; 2]> = SIZES
            .iter()
            .map(|&n| Topology::ALL.map(|topology| run(n, topology, rhythm, per_round)))
            .collect();
        above.extend(report(rhythm, &runs));
    }
    if above.is_empty() {
        println!("Every ratio is within {TARGET}× N = 3.");
    } else {
        println!("Above {TARGET}× N = 3:");
        for line in &above {
            println!("- {line}");
        }
    }
    println!();
    println!("({:.1} s)", started.elapsed().as_secs_f64());
}
