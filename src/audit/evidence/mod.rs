//! Evidence bundles (spec/AUDIT.md §4): the entries backing a session or
//! member report, each with its certificate path back to entry 1 of its
//! feed (or whole feeds), the payloads of the entries the report reads, and
//! the fork proofs of the feeds involved. [`verify_evidence`] checks a
//! bundle offline and computes the same report from it alone.

mod format;
mod store;

use std::collections::BTreeSet;

pub use format::EVIDENCE_MAGIC;

use self::format::Bundle;
use self::store::EvidenceStore;
use super::ledger::Ledger;
use super::member::member_report_in;
use super::session::session_report_in;
use super::support::Support;
use super::{AuditError, MemberReport, SessionReport};
use crate::feed::{FeedId, ForkProof, Record, certificate_path, check_payload, check_signature, verify_chain};
use crate::store::{Store, StoreError};
use crate::view::HistoryWindow;

/// What a bundle is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    /// The session report of a key.
    Session {
        /// The session key.
        key: Vec<u8>,
    },
    /// The member report of a feed over a range of wall times.
    Member {
        /// The member's feed.
        feed: FeedId,
        /// Entries with wall time from this (milliseconds, inclusive).
        since_ms: u64,
        /// Entries with wall time up to this (milliseconds, inclusive).
        until_ms: u64,
    },
}

/// Which entries a bundle carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvidenceForm {
    /// The backing entries and their certificate paths (O(log n) each).
    CertificatePaths = 0,
    /// Every entry of every feed involved, up to its head.
    WholeFeeds = 1,
}

/// A report an evidence bundle backs.
#[derive(Clone, Debug, PartialEq)]
pub enum Report {
    /// A session report.
    Session(SessionReport),
    /// A member report.
    Member(MemberReport),
}

impl Report {
    /// The report as JSON lines (spec/AUDIT.md §2.1).
    pub fn json_lines(&self) -> String {
        match self {
            Report::Session(report) => report.json_lines(),
            Report::Member(report) => report.json_lines(),
        }
    }

    fn support(&self) -> &Support {
        match self {
            Report::Session(report) => &report.support,
            Report::Member(report) => &report.support,
        }
    }
}

/// Why an evidence bundle is refused: which part, which rule.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvidenceError {
    /// The input does not start with [`EVIDENCE_MAGIC`].
    #[error("not a feedmesh evidence bundle (bad magic)")]
    BadMagic,
    /// The header is malformed.
    #[error("header: {0}")]
    Header(String),
    /// Fork proof `index` is malformed, invalid or out of order.
    #[error("fork proof {index}: {error}")]
    Fork {
        /// Index of the proof, from 0.
        index: usize,
        /// What is wrong.
        error: String,
    },
    /// Record `index` is malformed, out of order, or breaks a validation rule.
    #[error("record {index}{}: {error}", at(.position))]
    Record {
        /// Index of the record, from 0.
        index: usize,
        /// Its feed and sequence, when its entry decoded.
        position: Option<(FeedId, u64)>,
        /// What is wrong (with the rule of spec/PROTOCOL.md, when one is broken).
        error: String,
    },
    /// The entries of a feed do not form certificate paths down to entry 1.
    #[error("{feed} seq {seq}: certificate path: {error}")]
    Chain {
        /// The feed.
        feed: FeedId,
        /// The entry where the path breaks.
        seq: u64,
        /// The rule it breaks.
        error: String,
    },
    /// An author is not among the trusted feeds.
    #[error("record {index} ({feed}): author is not a trusted feed")]
    Untrusted {
        /// Index of the record.
        index: usize,
        /// Its author.
        feed: FeedId,
    },
    /// The records are not exactly the evidence of the report they back.
    #[error("not the evidence of its report: {0}")]
    Mismatch(String),
    /// The checksum is missing, or does not match.
    #[error("checksum: {0}")]
    Checksum(String),
    /// Computing the report failed.
    #[error(transparent)]
    Audit(#[from] AuditError),
}

fn at(position: &Option<(FeedId, u64)>) -> String {
    match position {
        Some((feed, seq)) => format!(" ({feed} seq {seq})"),
        None => String::new(),
    }
}

/// A bundle that verified, and the report computed from it.
#[derive(Debug)]
pub struct VerifiedEvidence {
    /// The report, computed from the bundle alone.
    pub report: Report,
    /// Which entries it carries.
    pub form: EvidenceForm,
    /// The local time the report was made at (from the header).
    pub now_ms: u64,
    /// The admins the report assumed (from the header: a claim, not a proof).
    pub admins: Vec<FeedId>,
    /// The history window the report assumed (from the header: a claim).
    pub window: HistoryWindow,
    /// How many records and fork proofs it holds.
    pub records: usize,
    /// How many fork proofs it holds.
    pub forks: usize,
}

fn report_of(ledger: &Ledger, subject: &Subject) -> Report {
    match subject {
        Subject::Session { key } => {
            Report::Session(session_report_in(ledger, &super::effects::KeyIndex::new(ledger), key))
        }
        Subject::Member {
            feed,
            since_ms,
            until_ms,
        } => Report::Member(member_report_in(ledger, *feed, *since_ms, *until_ms)),
    }
}

/// The records (feed, seq, whether the payload is included) and fork
/// proofs that back `report`, read from `store`.
type Plan = (Vec<(FeedId, u64, bool)>, Vec<ForkProof>);

fn plan(store: &dyn Store, report: &Report, subject: &Subject, form: EvidenceForm) -> Result<Plan, StoreError> {
    let support = report.support();
    let mut authors: BTreeSet<FeedId> = support.iter().map(|(feed, _)| *feed).collect();
    if let Subject::Member { feed, .. } = subject {
        authors.insert(*feed);
    }
    let mut wanted: BTreeSet<(FeedId, u64)> = BTreeSet::new();
    match form {
        EvidenceForm::CertificatePaths => {
            for (feed, seq) in support {
                wanted.extend(certificate_path(*seq).into_iter().map(|s| (*feed, s)));
            }
        }
        EvidenceForm::WholeFeeds => {
            for feed in &authors {
                wanted.extend((1..=store.latest(feed)?.unwrap_or(0)).map(|s| (*feed, s)));
            }
        }
    }
    let mut records = Vec::with_capacity(wanted.len());
    for (feed, seq) in wanted {
        let payload = (form == EvidenceForm::WholeFeeds || support.contains(&(feed, seq)))
            && store.payload(&feed, seq)?.is_some();
        records.push((feed, seq, payload));
    }
    let forks = store
        .forks()?
        .into_iter()
        .filter(|proof| authors.contains(&proof.author()))
        .collect();
    Ok((records, forks))
}

/// Computes the report on `subject` over `store` (network `admins` and
/// `window`, local time `now_ms`) and its evidence bundle in `form`.
pub fn write_evidence(
    store: &dyn Store,
    admins: &[FeedId],
    window: HistoryWindow,
    subject: &Subject,
    now_ms: u64,
    form: EvidenceForm,
) -> Result<(Report, Vec<u8>), AuditError> {
    let ledger = Ledger::scan(store, admins, window, now_ms)?;
    let report = report_of(&ledger, subject);
    let (wanted, forks) = plan(store, &report, subject, form)?;
    let mut records: Vec<Record> = Vec::with_capacity(wanted.len());
    for (feed, seq, with_payload) in wanted {
        let entry = store
            .entry(&feed, seq)?
            .ok_or_else(|| StoreError::Corrupt(format!("{feed} is missing entry {seq}")))?;
        let payload = if with_payload { store.payload(&feed, seq)? } else { None };
        records.push((entry, payload));
    }
    let admins: BTreeSet<FeedId> = admins.iter().copied().collect();
    let bytes = format::encode(&Bundle {
        form,
        now_ms,
        admins: admins.into_iter().collect(),
        window,
        subject: subject.clone(),
        forks,
        records,
        checksum_error: None,
    });
    Ok((report, bytes))
}

/// Verifies an evidence bundle offline, in this order: framing; every
/// entry's signature and every payload's length and hash; authors among
/// `trust` (when not empty); per feed, certificate paths down to entry 1
/// (`verify_chain`); that the records and fork proofs are exactly the
/// evidence of the report computed from them; the checksum. Returns that
/// report.
pub fn verify_evidence(bytes: &[u8], trust: &[FeedId]) -> Result<VerifiedEvidence, EvidenceError> {
    let bundle = format::decode(bytes)?;
    for (index, (entry, payload)) in bundle.records.iter().enumerate() {
        let fail = |error: crate::feed::ValidationError| EvidenceError::Record {
            index,
            position: Some((entry.author(), entry.seq())),
            error: format!("rule {}: {error}", error.rule()),
        };
        check_signature(entry).map_err(fail)?;
        if let Some(payload) = payload {
            check_payload(entry, payload).map_err(fail)?;
        }
        if !trust.is_empty() && !trust.contains(&entry.author()) {
            return Err(EvidenceError::Untrusted {
                index,
                feed: entry.author(),
            });
        }
    }
    let mut start = 0;
    while start < bundle.records.len() {
        let feed = bundle.records[start].0.author();
        let end = start + bundle.records[start..].partition_point(|(e, _)| e.author() == feed);
        let entries: Vec<_> = bundle.records[start..end].iter().map(|(e, _)| e.clone()).collect();
        let summary = verify_chain(&entries).map_err(|failure| EvidenceError::Chain {
            feed,
            seq: entries[failure.index].seq(),
            error: format!("rule {}: {}", failure.error.rule(), failure.error),
        })?;
        if summary.lowest != 1 {
            return Err(EvidenceError::Chain {
                feed,
                seq: summary.lowest,
                error: "the feed's entries do not reach entry 1".into(),
            });
        }
        start = end;
    }
    let records = bundle.records.len();
    let got: Vec<(FeedId, u64, bool)> = bundle
        .records
        .iter()
        .map(|(e, p)| (e.author(), e.seq(), p.is_some()))
        .collect();
    let forks = bundle.forks.len();
    let got_forks = bundle.forks.clone();
    let store = EvidenceStore::new(bundle.records, bundle.forks);
    let ledger = Ledger::scan(&store, &bundle.admins, bundle.window, bundle.now_ms).map_err(AuditError::from)?;
    let report = report_of(&ledger, &bundle.subject);
    let (wanted, wanted_forks) = plan(&store, &report, &bundle.subject, bundle.form).map_err(AuditError::from)?;
    compare(&got, &wanted)?;
    if got_forks != wanted_forks {
        return Err(EvidenceError::Mismatch(
            "the fork proofs are not those of the feeds involved".into(),
        ));
    }
    if let Some(error) = bundle.checksum_error {
        return Err(error);
    }
    Ok(VerifiedEvidence {
        report,
        form: bundle.form,
        now_ms: bundle.now_ms,
        admins: bundle.admins,
        window: bundle.window,
        records,
        forks,
    })
}

/// Names the first difference between the records held and those wanted.
fn compare(got: &[(FeedId, u64, bool)], wanted: &[(FeedId, u64, bool)]) -> Result<(), EvidenceError> {
    for (index, pair) in got.iter().zip(wanted).enumerate() {
        let ((feed, seq, payload), (want_feed, want_seq, want_payload)) = pair;
        if (feed, seq) != (want_feed, want_seq) {
            return Err(EvidenceError::Mismatch(format!(
                "record {index} is {feed} seq {seq}, where {want_feed} seq {want_seq} is expected"
            )));
        }
        if payload != want_payload {
            let what = if *payload {
                "carries a payload the report does not read"
            } else {
                "lacks its payload"
            };
            return Err(EvidenceError::Mismatch(format!(
                "record {index} ({feed} seq {seq}) {what}"
            )));
        }
    }
    if got.len() != wanted.len() {
        return Err(EvidenceError::Mismatch(format!(
            "{} records where the report needs {}",
            got.len(),
            wanted.len()
        )));
    }
    Ok(())
}
