//! Audit: who wrote what, when, and what it did, over a node's store; and
//! evidence bundles that prove it offline (spec/AUDIT.md).
//!
//! Pure functions over a [`Store`](crate::store::Store) and the network's
//! admins; no networking, no clock (the local time is an argument).
//!
//! - [`session_report`]: every operation that touched a key, in fold order,
//!   with its effect, and the key's current state.
//! - [`member_report`]: everything one feed wrote in a time range, with the
//!   effect of each operation.
//! - [`health_report`]: every feed's length and head, forks, membership,
//!   held-back entries, and what peers claimed.
//! - [`write_evidence`] and [`verify_evidence`]: evidence bundles
//!   (`"feedmesh evidence v1\n"`), the entries backing a report with their
//!   certificate paths (or whole feeds), checked offline.
//!
//! Which entries fold is decided by the node's own fold
//! ([`crate::sessions`]'s live view), so the reports agree with what a node
//! serves. The reports read every entry of the store into memory.

mod effects;
mod evidence;
mod health;
mod ledger;
mod lines;
mod member;
mod session;
mod support;

use serde::Serialize;

pub use evidence::{
    EVIDENCE_MAGIC, EvidenceError, EvidenceForm, Report, Subject, VerifiedEvidence, verify_evidence, write_evidence,
};
pub use health::{
    AdminLine, FeedHealth, ForkLine, HealthReport, HealthSummary, MemberLine, PeerClaim, PeerClaims, health_report,
};
pub use lines::{OpFields, OpLine, OpRef, display_bytes, value_json};
pub use member::{MemberReport, MemberSummary, member_report};
pub use session::{SessionReport, SessionState, session_report};

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Builds JSON lines: one object per line, each starting with its `line` tag.
#[derive(Default)]
struct JsonLines(String);

/// A line: the `line` tag, then the body's fields.
#[derive(Serialize)]
struct Tagged<'a, T: Serialize> {
    line: &'static str,
    #[serde(flatten)]
    body: &'a T,
}

impl JsonLines {
    fn push<T: Serialize>(&mut self, line: &'static str, body: &T) {
        let text = serde_json::to_string(&Tagged { line, body }).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
        self.0.push_str(&text);
        self.0.push('\n');
    }

    fn finish(self) -> String {
        self.0
    }
}
