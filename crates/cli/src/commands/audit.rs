//! `feedmesh audit ...` (reports over a stopped node's store, optionally
//! with an evidence bundle) and `feedmesh verify-bundle` (checks a bundle
//! offline and prints the report it backs). See spec/AUDIT.md.

mod table;
mod text;
mod time;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use feedmesh::audit::{self, EvidenceForm, Report, Subject};
use feedmesh::clock::system_time_ms;
use feedmesh::feed::FeedId;
use feedmesh::node_dir::NodeDir;

/// Arguments of `feedmesh audit`.
#[derive(clap::Args)]
pub(crate) struct AuditArgs {
    /// The node directory (of a stopped node: its store is opened directly).
    #[arg(long)]
    dir: PathBuf,
    #[command(subcommand)]
    what: AuditCommand,
}

/// How a report is printed, and whether evidence is written.
#[derive(clap::Args)]
struct OutputArgs {
    /// Print JSON lines (spec/AUDIT.md §2.1) instead of a table.
    #[arg(long)]
    json: bool,
    /// Also write an evidence bundle of the report to FILE.
    #[arg(long, value_name = "FILE")]
    bundle: Option<PathBuf>,
    /// Put every entry of every feed involved in the bundle (not only
    /// certificate paths): proves that no other operation exists in them.
    #[arg(long, requires = "bundle")]
    whole_feeds: bool,
}

/// The `audit` reports.
#[derive(clap::Subcommand)]
enum AuditCommand {
    /// Every operation that touched session KEY, in fold order, with its
    /// effect; then the key's current state.
    Session {
        /// The session key (as text).
        key: String,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Everything feed FEED_ID wrote (optionally in a time range), with the
    /// effect of each operation.
    Member {
        /// The member's feed id.
        feed: FeedId,
        /// Only entries with a wall time at or after T (RFC 3339, or
        /// milliseconds since the epoch).
        #[arg(long, value_name = "T", value_parser = time::parse_time)]
        since: Option<u64>,
        /// Only entries with a wall time at or before T (RFC 3339, or
        /// milliseconds since the epoch).
        #[arg(long, value_name = "T", value_parser = time::parse_time)]
        until: Option<u64>,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Every feed held (length, head, last time, membership, forks,
    /// held-back entries), and the admins.
    Health {
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Arguments of `feedmesh verify-bundle`.
#[derive(clap::Args)]
pub(crate) struct VerifyBundleArgs {
    /// The evidence bundle.
    file: PathBuf,
    /// A feed trusted as an author (repeatable): every entry of the bundle
    /// must then be by one of them.
    #[arg(long = "trust", value_name = "FEED_ID")]
    trust: Vec<FeedId>,
    /// Print the report as JSON lines instead of a table.
    #[arg(long)]
    json: bool,
}

fn print(report: &Report, json: bool, out: &mut impl Write) -> anyhow::Result<()> {
    let text = if json {
        report.json_lines()
    } else {
        text::report(report)
    };
    out.write_all(text.as_bytes())?;
    Ok(())
}

/// Runs `feedmesh audit`.
pub(crate) fn run(args: AuditArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let node = NodeDir::open(&args.dir)?;
    let admins = node.admins()?;
    let window = node.history_window()?;
    let store = node.open_store()?;
    let now_ms = system_time_ms();
    let (subject, output) = match args.what {
        AuditCommand::Health { json } => {
            let report = audit::health_report(&store, &admins, window, now_ms, &BTreeMap::new())?;
            let text = if json {
                report.json_lines()
            } else {
                text::health(&report)
            };
            out.write_all(text.as_bytes())?;
            return Ok(());
        }
        AuditCommand::Session { key, output } => (Subject::Session { key: key.into_bytes() }, output),
        AuditCommand::Member {
            feed,
            since,
            until,
            output,
        } => (
            Subject::Member {
                feed,
                since_ms: since.unwrap_or(0),
                until_ms: until.unwrap_or(u64::MAX),
            },
            output,
        ),
    };
    let form = if output.whole_feeds {
        EvidenceForm::WholeFeeds
    } else {
        EvidenceForm::CertificatePaths
    };
    let (report, bundle) = audit::write_evidence(&store, &admins, window, &subject, now_ms, form)?;
    if let Some(path) = &output.bundle {
        std::fs::write(path, &bundle).with_context(|| format!("{}", path.display()))?;
    }
    print(&report, output.json, out)
}

/// Runs `feedmesh verify-bundle`: the report on standard output, a line on
/// what was verified on standard error.
pub(crate) fn verify(args: VerifyBundleArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let bytes = std::fs::read(&args.file).with_context(|| format!("{}", args.file.display()))?;
    let verified = audit::verify_evidence(&bytes, &args.trust)
        .with_context(|| format!("{} does not verify", args.file.display()))?;
    print(&verified.report, args.json, out)?;
    let form = match verified.form {
        EvidenceForm::CertificatePaths => "certificate paths",
        EvidenceForm::WholeFeeds => "whole feeds",
    };
    eprintln!(
        "verified: {} entries ({form}), {} fork proofs; report as of {}, session lifetime {} s and retention margin {} s as claimed, admins as claimed: {}",
        verified.records,
        verified.forks,
        time::format_ms(verified.now_ms),
        verified.window.lifetime_ms() / 1000,
        verified.window.margin_ms() / 1000,
        if verified.admins.is_empty() {
            "none".to_string()
        } else {
            verified
                .admins
                .iter()
                .map(FeedId::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    Ok(())
}
