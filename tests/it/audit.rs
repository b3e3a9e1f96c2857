//! The audit (spec/AUDIT.md): the rogue-member scenario of
//! tests/it/membership.rs written offline into one node's store
//! (common/audit_scenario.rs), then the session, member and health reports,
//! and evidence bundles (round trip, and every single-byte change refused).
//! The commands are tested in crates/cli/tests/it/audit.rs.

use std::path::Path;

use crate::common::audit_scenario::{HOUR_MS, Scenario, scenario};

use feedmesh::audit::{
    EvidenceForm, OpFields, Report, Subject, health_report, member_report, session_report, verify_evidence,
    write_evidence,
};
use feedmesh::clock::system_time_ms;
use feedmesh::feed::FeedId;
use feedmesh::node_dir::NodeDir;
use feedmesh::store::Store;
use feedmesh::view::HistoryWindow;

fn open(s: &Scenario) -> (impl Store, Vec<FeedId>) {
    let node = NodeDir::open(&s.dir).unwrap();
    (node.open_store().unwrap(), node.admins().unwrap())
}

fn key_of(op: &OpFields) -> Option<&str> {
    match op {
        OpFields::Put { key, .. } | OpFields::Touch { key, .. } | OpFields::Revoke { key, .. } => Some(key),
        _ => None,
    }
}

#[test]
fn member_report_shows_every_rogue_op_from_the_removal_as_ignored() {
    let s = scenario();
    let (store, admins) = open(&s);
    let report = member_report(
        &store,
        &admins,
        HistoryWindow::default(),
        s.rogue,
        0,
        u64::MAX,
        system_time_ms(),
    )
    .unwrap();
    assert_eq!(report.summary.role, "removed");
    assert_eq!(report.summary.admitted_from, Some(2));
    assert_eq!(report.summary.removed_from, Some(s.went_rogue));
    assert_eq!(report.summary.entries, 5);
    let effects: Vec<(u64, &str, &str)> = report
        .lines
        .iter()
        .map(|l| (l.seq, l.op.kind(), l.effect.as_str()))
        .collect();
    assert_eq!(
        effects,
        vec![
            (1, "put", "ignored: not a member"),
            (2, "put", "applied"),
            (3, "put", "applied"),
            (4, "put", "ignored: member removed"),
            (4, "revoke", "ignored: member removed"),
            (5, "revoke_owner", "ignored: member removed"),
        ]
    );
    assert!(report.lines.iter().all(|l| l.author == s.rogue.to_string()));
    let rogue_from_removal = report.lines.iter().filter(|l| l.seq >= s.went_rogue);
    assert!(rogue_from_removal.clone().count() == 3);
    assert!(
        rogue_from_removal
            .into_iter()
            .all(|l| l.effect == "ignored: member removed")
    );
    // The time range selects entries by wall time.
    let first = report.lines[1].wall_ms;
    let ranged = member_report(
        &store,
        &admins,
        HistoryWindow::default(),
        s.rogue,
        first,
        first,
        system_time_ms(),
    )
    .unwrap();
    assert_eq!(ranged.summary.entries, 1);
    assert_eq!(ranged.lines.len(), 1);
}

#[test]
fn session_report_tells_the_whole_story_of_a_key() {
    let s = scenario();
    let (store, admins) = open(&s);
    let now = system_time_ms();

    // b0: b's put stands; the rogue's revoke and its RevokeOwner of b0's owner do not count.
    let b0 = session_report(&store, &admins, HistoryWindow::default(), b"b0", now).unwrap();
    let story: Vec<(String, &str, &str)> = b0
        .lines
        .iter()
        .map(|l| (l.author.clone(), l.op.kind(), l.effect.as_str()))
        .collect();
    assert_eq!(
        story,
        vec![
            (s.b.to_string(), "put", "applied"),
            (s.rogue.to_string(), "revoke", "ignored: member removed"),
            (s.rogue.to_string(), "revoke_owner", "ignored: member removed"),
        ]
    );
    assert_eq!(b0.state.status, "live");
    assert_eq!(b0.state.value, Some(serde_json::json!("b's alice")));
    assert!(
        b0.lines.windows(2).all(|w| w[0].timestamp <= w[1].timestamp),
        "fold order"
    );

    // a0: the admin's put lost last-writer-wins to b's later put.
    let a0 = session_report(&store, &admins, HistoryWindow::default(), b"a0", now).unwrap();
    let lines = &a0.lines;
    assert_eq!(lines.len(), 4, "{lines:#?}");
    assert_eq!(
        (lines[0].author.clone(), lines[0].effect.as_str()),
        (s.admin.to_string(), "overridden")
    );
    let by = lines[0].overridden_by.as_ref().expect("overridden by the winner");
    assert_eq!(
        (by.author.clone(), by.seq, by.position),
        (s.b.to_string(), lines[1].seq, 0)
    );
    assert_eq!(
        (lines[1].author.clone(), lines[1].effect.as_str()),
        (s.b.to_string(), "applied")
    );
    assert_eq!(lines[2].effect, "ignored: member removed");
    assert_eq!(lines[3].op.kind(), "revoke_owner");
    assert_eq!(lines[3].effect, "ignored: member removed");
    assert_eq!(a0.state.status, "live");
    assert_eq!(a0.state.author, Some(s.b.to_string()));
    assert_eq!(a0.state.value, Some(serde_json::json!("b's rewrite")));
    assert!(lines.iter().all(|l| key_of(&l.op).is_none_or(|k| k == "a0")));

    // A key nobody wrote.
    let none = session_report(&store, &admins, HistoryWindow::default(), b"nope", now).unwrap();
    assert!(none.lines.is_empty());
    assert_eq!(none.state.status, "absent");

    // The future entry is held back, and expiry shows once time passes.
    let future = session_report(&store, &admins, HistoryWindow::default(), b"future", now).unwrap();
    assert_eq!(future.lines[0].effect, "ignored: held back (clock drift)");
    let later = session_report(&store, &admins, HistoryWindow::default(), b"b1", now + 2 * HOUR_MS).unwrap();
    assert_eq!(later.lines[0].effect, "expired");
    assert_eq!(later.state.status, "expired");

    // The JSON lines: op lines then one state line.
    let json = a0.json_lines();
    let parsed: Vec<serde_json::Value> = json.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(parsed.len(), 5);
    assert!(parsed[..4].iter().all(|v| v["line"] == "op"));
    assert_eq!(parsed[0]["op"], "put");
    assert_eq!(parsed[0]["effect"], "overridden");
    assert_eq!(parsed[0]["overridden_by"]["author"], s.b.to_string());
    assert_eq!(parsed[4]["line"], "state");
    assert_eq!(parsed[4]["status"], "live");
}

#[test]
fn health_report_lists_feeds_membership_and_held_back_entries() {
    let s = scenario();
    let (store, admins) = open(&s);
    let mut claims = std::collections::BTreeMap::new();
    claims.insert(s.b, [(s.rogue, 9u64), (s.admin, 1)].into_iter().collect());
    let report = health_report(&store, &admins, HistoryWindow::default(), system_time_ms(), &claims).unwrap();
    assert_eq!(report.summary.admins, vec![s.admin.to_string()]);
    assert!(!report.summary.open);
    assert_eq!(report.summary.feeds, 3);
    assert_eq!(report.summary.held_back, 1);
    assert_eq!(report.summary.removed_members, 1);
    let feed = |id: FeedId| report.feeds.iter().find(|f| f.feed == id.to_string()).unwrap();
    let rogue = feed(s.rogue);
    assert_eq!(rogue.role, "removed");
    assert_eq!(
        (rogue.length, rogue.admitted_from, rogue.removed_from),
        (5, Some(2), Some(s.went_rogue))
    );
    assert_eq!(rogue.peer_claims[0].claimed, 9);
    assert_eq!(rogue.peer_claims[0].missing, 4);
    assert_eq!(feed(s.b).held_back, 1);
    assert_eq!(feed(s.admin).role, "admin");
    assert_eq!(
        feed(s.admin).head_hash,
        Some(store.head(&s.admin).unwrap().unwrap().hash().to_string())
    );
    let json = report.json_lines();
    let last: serde_json::Value = serde_json::from_str(json.lines().last().unwrap()).unwrap();
    assert_eq!(last["line"], "health");
    assert_eq!(last["entries"], 13);
}

/// The report on `subject` and its bundle, with the default history window.
fn evidence(
    store: &dyn Store,
    admins: &[FeedId],
    subject: &Subject,
    now: u64,
    form: EvidenceForm,
) -> (Report, Vec<u8>) {
    write_evidence(store, admins, HistoryWindow::default(), subject, now, form).unwrap()
}

/// Every single-byte change (XOR 0x01 at each position) of a bundle is refused.
fn every_byte_matters(bytes: &[u8]) {
    verify_evidence(bytes, &[]).expect("the intact bundle verifies");
    let mut reasons = std::collections::BTreeMap::<String, usize>::new();
    for position in 0..bytes.len() {
        let mut changed = bytes.to_vec();
        changed[position] ^= 0x01;
        match verify_evidence(&changed, &[]) {
            Ok(_) => panic!(
                "byte {position} of {} changed, and the bundle still verifies",
                bytes.len()
            ),
            Err(error) => {
                let text = error.to_string();
                let kind = text.split([' ', ':']).next().unwrap_or_default().to_string();
                *reasons.entry(kind).or_default() += 1;
            }
        }
    }
    eprintln!("{} positions refused: {reasons:?}", bytes.len());
}

#[test]
fn every_single_byte_change_of_a_bundle_is_refused() {
    let s = scenario();
    let (store, admins) = open(&s);
    let now = system_time_ms();
    let subject = Subject::Session { key: b"b0".to_vec() };
    let (report, bytes) = evidence(&store, &admins, &subject, now, EvidenceForm::CertificatePaths);
    let verified = verify_evidence(&bytes, &[]).unwrap();
    assert_eq!(verified.report, report);
    assert!(matches!(verified.report, Report::Session(_)));
    assert_eq!(verified.window, HistoryWindow::default());
    // The window the report assumed travels in the bundle, and the verifier
    // folds by it.
    let window = HistoryWindow::new(60_000, 0).unwrap();
    let (short_report, short) =
        write_evidence(&store, &admins, window, &subject, now, EvidenceForm::CertificatePaths).unwrap();
    let verified_short = verify_evidence(&short, &[]).unwrap();
    assert_eq!(verified_short.window, window);
    assert_eq!(verified_short.report, short_report);
    every_byte_matters(&bytes);
    let member = Subject::Member {
        feed: s.rogue,
        since_ms: 0,
        until_ms: u64::MAX,
    };
    let (_, whole) = evidence(&store, &admins, &member, now, EvidenceForm::WholeFeeds);
    every_byte_matters(&whole);
}

#[test]
fn a_path_bundle_is_smaller_than_whole_feeds_and_both_prove_the_same_report() {
    let s = scenario();
    let (store, admins) = open(&s);
    let now = system_time_ms();
    let subject = Subject::Session { key: b"b0".to_vec() };
    let (report, paths) = evidence(&store, &admins, &subject, now, EvidenceForm::CertificatePaths);
    let (_, whole) = evidence(&store, &admins, &subject, now, EvidenceForm::WholeFeeds);
    assert!(paths.len() < whole.len());
    assert_eq!(verify_evidence(&whole, &[]).unwrap().report, report);
    // Unused here, but keeps the helper honest about its inputs.
    let _ = Path::new(&s.dir);
}
