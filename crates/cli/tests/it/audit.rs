//! `feedmesh audit` and `feedmesh verify-bundle` on the rogue-member
//! scenario (tests/it/common/audit_scenario.rs): the reports as tables and
//! JSON, and evidence bundles verified offline, trusted or tampered.

use crate::common::audit_scenario::scenario;
use crate::process;

fn feedmesh(args: &[&str]) -> (bool, String, String) {
    let (code, out, err) = process::run(args);
    (code == Some(0), out, err)
}

fn ok(args: &[&str]) -> String {
    let (success, out, err) = feedmesh(args);
    assert!(success, "feedmesh {args:?} failed: {err}");
    out
}

#[test]
fn cli_reports_and_bundles_round_trip() {
    let s = scenario();
    let dir = s.dir.to_str().unwrap();
    let table = ok(&["audit", "--dir", dir, "session", "a0"]);
    assert!(table.starts_with("WALL TIME"), "{table}");
    assert!(table.contains("overridden by feed_"), "{table}");
    assert!(table.contains("ignored: member removed"), "{table}");
    assert!(table.contains("key a0 is live"), "{table}");

    let rogue = s.rogue.to_string();
    let json = ok(&["audit", "--dir", dir, "member", &rogue, "--json"]);
    let lines: Vec<serde_json::Value> = json.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.last().unwrap()["line"], "member");
    assert_eq!(lines.last().unwrap()["role"], "removed");
    let removed = lines
        .iter()
        .filter(|l| l["effect"] == "ignored: member removed")
        .count();
    assert_eq!(removed, 3);

    let health = ok(&["audit", "--dir", dir, "health"]);
    assert!(health.contains("removed") && health.contains("1 held back"), "{health}");
    assert!(ok(&["audit", "--dir", dir, "health", "--json"]).lines().count() >= 5);

    // Bundles, both forms: verify-bundle prints the same report, table and JSON.
    let root = s._root.path();
    let path = |name: &str| root.join(name).to_str().unwrap().to_string();
    for (extra, name) in [(None, "paths"), (Some("--whole-feeds"), "whole")] {
        for (args, json) in [(vec!["session", "b0"], true), (vec!["member", rogue.as_str()], false)] {
            let file = path(&format!("{name}-{}.evidence", args[0]));
            let mut audit = vec!["audit", "--dir", dir];
            audit.extend(&args);
            audit.extend(["--bundle", &file]);
            audit.extend(extra);
            let mut verify = vec!["verify-bundle", file.as_str()];
            if json {
                audit.push("--json");
                verify.push("--json");
            }
            let printed = ok(&audit);
            assert_eq!(ok(&verify), printed, "{audit:?}");
        }
    }
    let size = |f: &str| std::fs::metadata(path(f)).unwrap().len();
    eprintln!(
        "bundle sizes: session b0 {} (paths) / {} (whole); member rogue {} / {}",
        size("paths-session.evidence"),
        size("whole-session.evidence"),
        size("paths-member.evidence"),
        size("whole-member.evidence")
    );
    // --trust: the authors must all be trusted.
    let file = path("paths-session.evidence");
    let (success, _, err) = feedmesh(&["verify-bundle", &file, "--trust", &s.b.to_string()]);
    assert!(!success && err.contains("not a trusted feed"), "{err}");
    let trusted = [s.admin, s.b, s.rogue].map(|f| f.to_string());
    let mut all = vec!["verify-bundle", file.as_str()];
    for t in &trusted {
        all.extend(["--trust", t]);
    }
    ok(&all);
    // A tampered byte: a clear one-line reason, exit 1.
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[300] ^= 1;
    let tampered = path("tampered.evidence");
    std::fs::write(&tampered, &bytes).unwrap();
    let (success, out, err) = feedmesh(&["verify-bundle", &tampered]);
    assert!(!success && out.is_empty(), "{out}");
    assert!(err.contains("does not verify"), "{err}");
}
