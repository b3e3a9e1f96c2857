//! `GET /metrics`: the Prometheus text exposition format (version 0.0.4),
//! written by hand.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::node::NodeError;
use crate::sessions::Sessions;

/// The content type of the Prometheus text format.
pub(super) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Prefix of the disconnect reasons that are failed handshakes
/// ([`Node::disconnects`](crate::node::Node::disconnects)).
const HANDSHAKE_PREFIX: &str = "handshake:";

/// The node's metrics in the Prometheus text format:
///
/// - `feedmesh_feed_entries{feed}` (gauge): entries held per feed (a feed is
///   held as a contiguous prefix, so this is its latest sequence number);
/// - `feedmesh_peer_received_bytes_total{peer}`,
///   `feedmesh_peer_sent_bytes_total{peer}` (counters): message bytes
///   exchanged with each peer since the node started
///   ([`crate::net::Traffic`]);
/// - `feedmesh_ready` (gauge, 1 or 0: [`Node::readiness`](crate::node::Node::readiness)) and, with admins,
///   `feedmesh_admin_last_heard_ms{feed}` (gauge: wall-clock ms when each
///   admin feed was last heard from; absent if never);
/// - `feedmesh_peer_queued_bytes{peer}` (gauge): message bytes waiting to
///   be sent to each peer ([`Node::queued_out`](crate::node::Node::queued_out));
/// - `feedmesh_buffered_bytes` (gauge): bytes of the node's buffer budget
///   that large incoming messages hold now ([`Node::buffered_bytes`](crate::node::Node::buffered_bytes));
/// - `feedmesh_peer_lag_entries{peer}` (gauge): for each connected peer, the
///   sum over this node's feeds of how many entries it holds beyond what the
///   peer last claimed to hold;
/// - `feedmesh_connected_peers` (gauge);
/// - `feedmesh_view_started_from_snapshot` (gauge, 1 or 0) and
///   `feedmesh_view_start_folded_entries` (gauge): whether the session view
///   started from its snapshot, and how many stored entries the start
///   folded (spec/SESSIONS.md §6.7; [`crate::sessions::Sessions::started`]);
/// - `feedmesh_disconnects_total{reason}` (counter): connections closed, by
///   [`crate::net::Closed::reason`] (and `connection-cap`);
/// - `feedmesh_handshake_failures_total{reason}` (counter), and
///   `feedmesh_handshake_failures_total` (no label) for all of them.
///
/// The metrics of the node of `sessions` and of its session view. Reads
/// the store's clock: blocking.
pub fn render_metrics(sessions: &Sessions) -> Result<String, NodeError> {
    let node = sessions.node();
    let clock = node.clock()?;
    let peers = node.peers();
    let mut out = String::new();

    family(&mut out, "feedmesh_feed_entries", "gauge", "Entries held per feed.");
    for (feed, seq) in &clock {
        sample(
            &mut out,
            "feedmesh_feed_entries",
            Some(("feed", &feed.to_string())),
            *seq,
        );
    }

    let traffic = node.traffic();
    family(
        &mut out,
        "feedmesh_peer_received_bytes_total",
        "counter",
        "Message bytes received from each peer.",
    );
    for (peer, (bytes_in, _)) in &traffic {
        let peer = peer.to_string();
        sample(
            &mut out,
            "feedmesh_peer_received_bytes_total",
            Some(("peer", &peer)),
            *bytes_in,
        );
    }
    family(
        &mut out,
        "feedmesh_peer_sent_bytes_total",
        "counter",
        "Message bytes sent to each peer.",
    );
    for (peer, (_, bytes_out)) in &traffic {
        let peer = peer.to_string();
        sample(
            &mut out,
            "feedmesh_peer_sent_bytes_total",
            Some(("peer", &peer)),
            *bytes_out,
        );
    }

    let readiness = node.readiness()?;
    family(
        &mut out,
        "feedmesh_ready",
        "gauge",
        "1 when the node holds what its peers claimed at connect and (with admins) heard an admin recently.",
    );
    sample(&mut out, "feedmesh_ready", None, u64::from(readiness.ready));
    family(
        &mut out,
        "feedmesh_admin_last_heard_ms",
        "gauge",
        "Wall-clock ms when each admin feed was last heard from.",
    );
    for admin in &readiness.admins {
        if let Some(at) = admin.heard_at_ms {
            sample(
                &mut out,
                "feedmesh_admin_last_heard_ms",
                Some(("feed", &admin.feed.to_string())),
                at,
            );
        }
    }

    family(
        &mut out,
        "feedmesh_buffered_bytes",
        "gauge",
        "Bytes of the buffer budget that large incoming messages hold.",
    );
    sample(&mut out, "feedmesh_buffered_bytes", None, node.buffered_bytes() as u64);

    family(
        &mut out,
        "feedmesh_peer_queued_bytes",
        "gauge",
        "Message bytes waiting to be sent to each peer.",
    );
    for (peer, queued) in node.queued_out() {
        sample(
            &mut out,
            "feedmesh_peer_queued_bytes",
            Some(("peer", &peer.to_string())),
            queued,
        );
    }

    family(
        &mut out,
        "feedmesh_peer_lag_entries",
        "gauge",
        "Entries this node holds that each connected peer has not claimed.",
    );
    for peer in &peers {
        let lag: u64 = clock
            .iter()
            .map(|(feed, &ours)| ours.saturating_sub(peer.clock.get(feed).copied().unwrap_or(0)))
            .fold(0, u64::saturating_add);
        sample(
            &mut out,
            "feedmesh_peer_lag_entries",
            Some(("peer", &peer.id.to_string())),
            lag,
        );
    }

    family(&mut out, "feedmesh_connected_peers", "gauge", "Peers connected now.");
    sample(&mut out, "feedmesh_connected_peers", None, peers.len() as u64);

    let started = sessions.started();
    family(
        &mut out,
        "feedmesh_view_started_from_snapshot",
        "gauge",
        "Whether the session view started from its snapshot (1) or by folding every stored entry (0).",
    );
    sample(
        &mut out,
        "feedmesh_view_started_from_snapshot",
        None,
        u64::from(started.from_snapshot),
    );
    family(
        &mut out,
        "feedmesh_view_start_folded_entries",
        "gauge",
        "Stored entries the session view folded when the node started.",
    );
    sample(&mut out, "feedmesh_view_start_folded_entries", None, started.folded);

    let disconnects = node.disconnects();
    let (handshakes, others): (BTreeMap<_, _>, BTreeMap<_, _>) = disconnects
        .into_iter()
        .partition(|(reason, _)| reason.starts_with(HANDSHAKE_PREFIX));
    family(
        &mut out,
        "feedmesh_disconnects_total",
        "counter",
        "Connections closed after their handshake (or refused at the cap), by reason.",
    );
    for (reason, count) in &others {
        sample(&mut out, "feedmesh_disconnects_total", Some(("reason", reason)), *count);
    }
    family(
        &mut out,
        "feedmesh_handshake_failures_total",
        "counter",
        "Failed handshakes (the unlabelled sample counts them all).",
    );
    sample(
        &mut out,
        "feedmesh_handshake_failures_total",
        None,
        handshakes.values().copied().fold(0, u64::saturating_add),
    );
    for (reason, count) in &handshakes {
        let reason = reason.strip_prefix(HANDSHAKE_PREFIX).unwrap_or(reason);
        sample(
            &mut out,
            "feedmesh_handshake_failures_total",
            Some(("reason", reason)),
            *count,
        );
    }
    Ok(out)
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, label: Option<(&str, &str)>, value: u64) {
    match label {
        Some((key, raw)) => {
            let mut escaped = String::with_capacity(raw.len());
            for c in raw.chars() {
                match c {
                    '\\' => escaped.push_str("\\\\"),
                    '"' => escaped.push_str("\\\""),
                    '\n' => escaped.push_str("\\n"),
                    c => escaped.push(c),
                }
            }
            let _ = writeln!(out, "{name}{{{key}=\"{escaped}\"}} {value}");
        }
        None => {
            let _ = writeln!(out, "{name} {value}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_escape_label_values() {
        let mut out = String::new();
        family(&mut out, "m", "gauge", "A metric.");
        sample(&mut out, "m", Some(("l", "a\"b\\c\nd")), 3);
        sample(&mut out, "m", None, 4);
        assert_eq!(
            out,
            "# HELP m A metric.\n# TYPE m gauge\nm{l=\"a\\\"b\\\\c\\nd\"} 3\nm 4\n"
        );
    }
}
