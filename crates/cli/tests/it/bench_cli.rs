//! `feedmesh bench sessions` and `feedmesh bench catchup` end to end, small:
//! real worker processes on loopback, the JSON report's fields and the
//! figures that must hold whatever the machine's speed.

use std::process::Command;

use crate::process;

use serde_json::Value;

fn bench(args: &[&str]) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_feedmesh"))
        .arg("bench")
        .args(args)
        .arg("--json")
        .output()
        .expect("run feedmesh bench");
    assert!(
        output.status.success(),
        "feedmesh bench {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("one JSON object")
}

fn number(report: &Value, field: &str) -> f64 {
    report[field]
        .as_f64()
        .unwrap_or_else(|| panic!("no number {field} in {report}"))
}

#[test]
fn sessions_reports_every_figure_once_every_node_holds_every_put() {
    let report = bench(&[
        "sessions",
        "--nodes",
        "2",
        "--writers",
        "6",
        "--ops",
        "600",
        "--value-bytes",
        "50",
    ]);
    assert_eq!(report["ops"], 600);
    assert_eq!(report["nodes"], 2);
    for field in [
        "ops_per_sec",
        "lag_p50_ms",
        "lag_p99_ms",
        "lag_max_ms",
        "get_p50_us",
        "http_get_p50_us",
        "rss_mb_per_million",
        "disk_mb_per_million",
    ] {
        assert!(number(&report, field) > 0.0, "{field} in {report}");
    }
    assert!(number(&report, "lag_p50_ms") <= number(&report, "lag_p99_ms"));
    assert!(number(&report, "lag_p99_ms") <= number(&report, "lag_max_ms"));
}

#[test]
fn catchup_transfers_about_the_missed_entries() {
    let report = bench(&["catchup", "--missed", "2000", "--writers", "16", "--value-bytes", "100"]);
    assert_eq!(report["missed"], 2000);
    let missed = number(&report, "missed_entry_bytes");
    let sent = number(&report, "bytes_transferred");
    // Every missed entry crossed the wire once, with little besides.
    assert!(missed > 2000.0 * 100.0, "{report}");
    assert!(sent >= missed && sent <= missed * 1.2, "{report}");
    assert!(number(&report, "catchup_secs") > 0.0);
}

#[test]
fn impossible_shapes_are_refused() {
    let output = process::feedmesh(&["bench", "sessions", "--nodes", "3", "--writers", "2"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--nodes <= --writers"));
}
