//! The `feedmesh` command: parses arguments, calls the library, maps the
//! outcome to an exit code (0 success, 1 failure, 2 usage). Errors are one
//! line on stderr.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use feedmesh::bundle::{self, ImportOptions};
use feedmesh::clock::system_time_ms;
use feedmesh::feed::{Entry, FeedId, MAX_PAYLOAD};
use feedmesh::integrity::verify_store;
use feedmesh::node_dir::NodeDir;
use feedmesh::store::Store;
use feedmesh::writer::FeedWriter;
use serde_json::json;

mod demo;

#[derive(Parser)]
#[command(
    name = "feedmesh",
    version,
    about = "Append-only signed feeds: store, verify, export, import"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a node directory (new identity, empty store) and print its feed id.
    Init {
        /// The node directory; must not already hold a node.
        #[arg(long)]
        dir: PathBuf,
    },
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
        Command::Init { dir } => {
            let node = NodeDir::create(&dir)?;
            writeln!(out, "{}", node.feed_id())?;
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
