//! The session report: the full story of one key (spec/AUDIT.md §2.3).

use serde::Serialize;

use super::effects::KeyIndex;
use super::ledger::Ledger;
use super::lines::{OpLine, display_bytes, value_json};
use super::support::{Support, add_membership};
use super::{AuditError, JsonLines};
use crate::feed::{FeedId, to_hex};
use crate::store::Store;
use crate::view::HistoryWindow;

/// The state of a key as the node's view holds it (the `state` line).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SessionState {
    /// The key as text.
    pub key: String,
    /// The key's bytes in hex.
    pub key_hex: String,
    /// `live`, `expired`, `revoked` or `absent` (never put, or only touched).
    pub status: String,
    /// The winning put's value as JSON (`null` if none or not JSON).
    pub value: Option<serde_json::Value>,
    /// The winning put's value in hex (`null` if none).
    pub value_hex: Option<String>,
    /// The winning put's owner as text (`null` if none).
    pub owner: Option<String>,
    /// The session's expiry in milliseconds since the Unix epoch (`null` if none).
    pub expires_at_ms: Option<u64>,
    /// The winning put's author (`null` if none).
    pub author: Option<String>,
    /// The winning put's entry sequence number (`null` if none).
    pub seq: Option<u64>,
    /// The winning put's position in its entry (`null` if none).
    pub position: Option<u32>,
    /// The local time the state is read at.
    pub now_ms: u64,
}

/// Every operation that touched a key, in fold order, and its current state.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionReport {
    /// The operations (the `op` lines).
    pub lines: Vec<OpLine>,
    /// The current state (the final `state` line).
    pub state: SessionState,
    /// The entries backing the report.
    pub(crate) support: Support,
}

impl SessionReport {
    /// The report as JSON lines (spec/AUDIT.md §2.1).
    pub fn json_lines(&self) -> String {
        let mut out = JsonLines::default();
        for line in &self.lines {
            out.push("op", line);
        }
        out.push("state", &self.state);
        out.finish()
    }
}

/// The story of `key` in everything `store` holds, for a network with
/// `admins` and `window`, at local time `now_ms`.
pub fn session_report(
    store: &dyn Store,
    admins: &[FeedId],
    window: HistoryWindow,
    key: &[u8],
    now_ms: u64,
) -> Result<SessionReport, AuditError> {
    let ledger = Ledger::scan(store, admins, window, now_ms)?;
    Ok(session_report_in(&ledger, &KeyIndex::new(&ledger), key))
}

pub(crate) fn session_report_in(ledger: &Ledger, index: &KeyIndex, key: &[u8]) -> SessionReport {
    let story = index.story(ledger, key);
    let mut support = Support::new();
    let mut lines = Vec::with_capacity(story.len());
    for (at, effect) in story {
        let entry = &ledger.entries[at.entry].entry;
        support.insert((entry.author(), entry.seq()));
        lines.extend(OpLine::of(ledger, at, effect));
    }
    add_membership(ledger, &mut support, &[]);
    SessionReport {
        lines,
        state: state_of(ledger, key),
        support,
    }
}

fn state_of(ledger: &Ledger, key: &[u8]) -> SessionState {
    // The ledger's view is never pruned: a kill time above 0 is a revocation.
    let revoked = ledger.view.is_revoked(key, 0);
    let ever = ledger.view.get(key, 0);
    let live = ledger.view.get(key, ledger.now_ms);
    let status = match (revoked, ever, live) {
        (true, _, _) => "revoked",
        (_, None, _) => "absent",
        (_, Some(_), None) => "expired",
        _ => "live",
    };
    SessionState {
        key: display_bytes(key),
        key_hex: to_hex(key),
        status: status.to_string(),
        value: ever.and_then(|s| value_json(&s.value)),
        value_hex: ever.map(|s| to_hex(&s.value)),
        owner: ever.and_then(|s| s.owner.as_deref().map(display_bytes)),
        expires_at_ms: ever.map(|s| s.expires_at_ms),
        author: ever.map(|s| s.author.to_string()),
        seq: ever.map(|s| s.seq),
        position: ever.map(|s| s.id.position),
        now_ms: ledger.now_ms,
    }
}
