//! `feedmesh member add|remove --dir DIR FEED_ID [--from-seq N]`: an admin
//! admits or removes a member by an entry in its own feed
//! (spec/SESSIONS.md §5). The node must be stopped (the store is opened
//! directly); peers learn of the change when it next runs.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::bail;
use feedmesh::feed::FeedId;
use feedmesh::node_dir::NodeDir;
use feedmesh::store::Store;
use feedmesh::view::{Op, encode_ops};
use serde_json::json;

/// The `member` subcommands.
#[derive(clap::Subcommand)]
pub(crate) enum MemberCommand {
    /// Admit FEED_ID: its operations fold from entry --from-seq on.
    Add {
        /// The admin's node directory.
        #[arg(long)]
        dir: PathBuf,
        /// The member's feed id.
        feed: FeedId,
        /// The first of its entries that folds.
        #[arg(long, default_value_t = 1)]
        from_seq: u64,
    },
    /// Remove FEED_ID: its operations from entry --from-seq on no longer fold
    /// anywhere, and peers refuse its connections. A removal is permanent.
    Remove {
        /// The admin's node directory.
        #[arg(long)]
        dir: PathBuf,
        /// The member's feed id.
        feed: FeedId,
        /// The first of its entries no longer folded [default: the entry
        /// after the last one this node holds: what was folded stays].
        #[arg(long)]
        from_seq: Option<u64>,
    },
}

/// Runs a `member` subcommand, printing the admin entry written as JSON.
pub(crate) fn run(command: MemberCommand, out: &mut impl Write) -> anyhow::Result<()> {
    let (dir, add, feed, from_seq) = match command {
        MemberCommand::Add { dir, feed, from_seq } => (dir, true, feed, from_seq),
        MemberCommand::Remove { dir, feed, from_seq } => {
            let from_seq = match from_seq {
                Some(seq) => seq,
                None => NodeDir::open(&dir)?.open_store()?.latest(&feed)?.unwrap_or(0) + 1,
            };
            (dir, false, feed, from_seq)
        }
    };
    let (op, kind) = if add {
        (Op::AddMember { feed, from_seq }, "add_member")
    } else {
        (Op::RemoveMember { feed, from_seq }, "remove_member")
    };
    check_admin(&dir)?;
    op.check()?;
    let entry = crate::append(&dir, &encode_ops(&[op])?)?;
    writeln!(
        out,
        "{}",
        json!({
            "feed": entry.author().to_string(),
            "seq": entry.seq(),
            "op": kind,
            "member": feed.to_string(),
            "from_seq": from_seq,
        })
    )?;
    Ok(())
}

/// Fails unless the node of `dir` holds one of the network's admin keys.
fn check_admin(dir: &Path) -> anyhow::Result<()> {
    let node = NodeDir::open(dir)?;
    let admins = node.admins()?;
    if admins.is_empty() {
        bail!(
            "{} has no admins file: this network admits every holder of the network key (see `feedmesh init --admin`)",
            dir.display()
        );
    }
    if !admins.contains(&node.feed_id()) {
        bail!(
            "{} is not an admin of this network (its id is not in its admins file)",
            node.feed_id()
        );
    }
    Ok(())
}
