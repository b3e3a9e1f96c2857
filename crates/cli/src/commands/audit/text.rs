//! The reports as aligned text tables, for a terminal.

use feedmesh::audit::{HealthReport, MemberReport, OpFields, OpLine, Report, SessionReport};

use super::table::render;
use super::time::format_ms;

/// A feed id shortened for a table: `feed_` and its first 8 hex digits.
fn short(feed: &str) -> String {
    feed.get(..13).map_or_else(|| feed.to_string(), |s| format!("{s}…"))
}

fn details(op: &OpFields) -> String {
    let value = |json: &Option<serde_json::Value>, hex: &str| match json {
        Some(json) => json.to_string(),
        None => format!("0x{hex}"),
    };
    match op {
        OpFields::Put {
            key,
            value: json,
            value_hex,
            ttl_ms,
            owner,
            ..
        } => {
            let owner = owner.as_deref().map(|o| format!(" owner={o}")).unwrap_or_default();
            format!("key={key} value={} ttl_ms={ttl_ms}{owner}", value(json, value_hex))
        }
        OpFields::Touch { key, ttl_ms, .. } => format!("key={key} ttl_ms={ttl_ms}"),
        OpFields::Revoke { key, .. } => format!("key={key}"),
        OpFields::RevokeOwner { owner, .. } => format!("owner={owner}"),
        OpFields::AddMember { feed, from_seq } | OpFields::RemoveMember { feed, from_seq } => {
            format!("feed={} from_seq={from_seq}", short(feed))
        }
        OpFields::Unreadable { reason } => reason.clone(),
    }
}

fn op_rows(lines: &[OpLine]) -> String {
    let rows: Vec<Vec<String>> = lines
        .iter()
        .map(|l| {
            let effect = match &l.overridden_by {
                Some(by) => format!(
                    "{} by {} seq {} pos {}",
                    l.effect,
                    short(&by.author),
                    by.seq,
                    by.position
                ),
                None => l.effect.clone(),
            };
            vec![
                format_ms(l.wall_ms),
                short(&l.author),
                l.seq.to_string(),
                l.position.to_string(),
                l.op.kind().to_string(),
                details(&l.op),
                effect,
            ]
        })
        .collect();
    render(&["WALL TIME", "AUTHOR", "SEQ", "POS", "OP", "DETAILS", "EFFECT"], &rows)
}

fn session(report: &SessionReport) -> String {
    let s = &report.state;
    let mut out = op_rows(&report.lines);
    out.push_str(&format!("\nkey {} is {}", s.key, s.status));
    if let (Some(author), Some(seq), Some(position)) = (&s.author, s.seq, s.position) {
        let value = match (&s.value, &s.value_hex) {
            (Some(json), _) => json.to_string(),
            (None, Some(hex)) => format!("0x{hex}"),
            _ => String::new(),
        };
        out.push_str(&format!(
            ": value {value}, owner {}, expires {}, put by {} seq {seq} pos {position}",
            s.owner.as_deref().unwrap_or("-"),
            s.expires_at_ms.map_or_else(|| "-".into(), format_ms),
            short(author)
        ));
    }
    out.push_str(&format!(" (at {})\n", format_ms(s.now_ms)));
    out
}

fn member(report: &MemberReport) -> String {
    let s = &report.summary;
    let opt = |v: Option<u64>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
    format!(
        "{}\n{} is {} (admitted from {}, removed from {}, forked at {}): {} entries from {} to {} (at {})\n",
        op_rows(&report.lines),
        s.feed,
        s.role,
        opt(s.admitted_from),
        opt(s.removed_from),
        opt(s.forked_at),
        s.entries,
        format_ms(s.since_ms),
        format_ms(s.until_ms),
        format_ms(s.now_ms)
    )
}

/// A session or member report as text.
pub(crate) fn report(report: &Report) -> String {
    match report {
        Report::Session(r) => session(r),
        Report::Member(r) => member(r),
    }
}

/// The health report as text.
pub(crate) fn health(report: &HealthReport) -> String {
    let opt = |v: Option<u64>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
    let rows: Vec<Vec<String>> = report
        .feeds
        .iter()
        .map(|f| {
            let claims: Vec<String> = f
                .peer_claims
                .iter()
                .map(|c| format!("{}:{} (-{})", short(&c.peer), c.claimed, c.missing))
                .collect();
            vec![
                f.feed.clone(),
                f.role.clone(),
                f.length.to_string(),
                f.head_hash.as_deref().map_or("-", |h| &h[..16]).to_string(),
                f.last_wall_ms.map_or_else(|| "-".into(), format_ms),
                opt(f.admitted_from),
                opt(f.removed_from),
                opt(f.forked_at),
                f.held_back.to_string(),
                if claims.is_empty() {
                    "-".into()
                } else {
                    claims.join(", ")
                },
            ]
        })
        .collect();
    let mut out = render(
        &[
            "FEED",
            "ROLE",
            "LENGTH",
            "HEAD",
            "LAST WALL TIME",
            "ADMITTED",
            "REMOVED",
            "FORKED",
            "HELD BACK",
            "PEER CLAIMS",
        ],
        &rows,
    );
    for fork in &report.forks {
        out.push_str(&format!(
            "fork: {} at seq {}: {} / {}\n",
            fork.feed, fork.seq, fork.entry_hashes[0], fork.entry_hashes[1]
        ));
    }
    let s = &report.summary;
    let admins = if s.open {
        "none (open network)".to_string()
    } else {
        s.admins.join(", ")
    };
    out.push_str(&format!(
        "\n{} feeds, {} entries, {} fork proofs, {} held back, {} removed members; admins: {admins} (at {})\n",
        s.feeds,
        s.entries,
        s.forks,
        s.held_back,
        s.removed_members,
        format_ms(s.now_ms)
    ));
    out
}
