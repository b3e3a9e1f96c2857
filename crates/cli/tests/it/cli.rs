//! The `feedmesh` command end to end: real processes, real node directories.

use crate::process;

use std::path::Path;
use std::process::Output;

use process::{feedmesh, feedmesh_with_stdin};
use serde_json::Value;

fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

/// Asserts failure with exit code 1 and exactly one line on stderr; returns it.
fn fails(output: Output) -> String {
    assert_eq!(
        output.status.code(),
        Some(1),
        "stdout: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    let stderr = String::from_utf8(output.stderr).expect("utf-8 stderr");
    assert_eq!(stderr.lines().count(), 1, "one error line, got: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

fn dir_arg(path: &Path) -> String {
    path.to_str().expect("utf-8 path").to_string()
}

fn init(path: &Path) -> String {
    ok(feedmesh(&["init", "--dir", &dir_arg(path)])).trim().to_string()
}

#[test]
fn init_prints_an_id_that_id_repeats_and_refuses_a_second_init() {
    let tmp = tempfile::tempdir().unwrap();
    let node = tmp.path().join("n");
    let id = init(&node);
    assert!(id.starts_with("feed_") && id.len() == 69, "{id}");
    assert_eq!(ok(feedmesh(&["id", "--dir", &dir_arg(&node)])).trim(), id);
    let error = fails(feedmesh(&["init", "--dir", &dir_arg(&node)]));
    assert!(error.contains("already holds a node"), "{error}");
    let error = fails(feedmesh(&["id", "--dir", &dir_arg(&tmp.path().join("nothing"))]));
    assert!(error.contains("not a node directory"), "{error}");
}

#[test]
fn init_writes_the_admins_with_self_and_refuses_a_bad_id() {
    let tmp = tempfile::tempdir().unwrap();
    let node = tmp.path().join("n");
    let other = format!("feed_{}", "ab".repeat(32));
    let id = ok(feedmesh(&[
        "init",
        "--dir",
        &dir_arg(&node),
        "--admin",
        "self",
        "--admin",
        &other,
    ]))
    .trim()
    .to_string();
    let mut expected = vec![id.clone(), other.clone()];
    expected.sort();
    let admins = std::fs::read_to_string(node.join("admins")).unwrap();
    assert_eq!(admins.lines().collect::<Vec<_>>(), expected);

    // Without --admin: no admins file (an open network).
    let open = tmp.path().join("open");
    init(&open);
    assert!(!open.join("admins").exists());

    // A malformed id is a usage error naming the flag; nothing is created.
    let bad = tmp.path().join("bad");
    let output = feedmesh(&["init", "--dir", &dir_arg(&bad), "--admin", "feed_nope"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("--admin") && stderr.contains("feed id"), "{stderr}");
    assert!(!bad.exists());
}

#[test]
fn init_writes_the_history_window_and_refuses_one_out_of_bounds() {
    let tmp = tempfile::tempdir().unwrap();
    let node = tmp.path().join("n");
    ok(feedmesh(&[
        "init",
        "--dir",
        &dir_arg(&node),
        "--session-lifetime",
        "60",
        "--retention-margin",
        "10",
    ]));
    let window = std::fs::read_to_string(node.join("history_window")).unwrap();
    assert_eq!(window, "session_lifetime_ms = 60000\nretention_margin_ms = 10000\n");
    // The defaults write no file.
    let plain = tmp.path().join("plain");
    init(&plain);
    assert!(!plain.join("history_window").exists());
    // Beyond 30 days: refused, nothing created.
    let long = tmp.path().join("long");
    let error = fails(feedmesh(&[
        "init",
        "--dir",
        &dir_arg(&long),
        "--session-lifetime",
        "2592001",
    ]));
    assert!(error.contains("session lifetime"), "{error}");
    assert!(!long.exists());
}

#[test]
fn append_log_export_import_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let id = init(&a);
    init(&b);
    let payload_file = tmp.path().join("payload");
    std::fs::write(&payload_file, b"first payload").unwrap();

    let appended = ok(feedmesh(&["append", "--dir", &dir_arg(&a), &dir_arg(&payload_file)]));
    let first: Value = serde_json::from_str(&appended).unwrap();
    assert_eq!(first["feed"], id.as_str());
    assert_eq!(first["seq"], 1);
    let appended = ok(feedmesh_with_stdin(&["append", "--dir", &dir_arg(&a)], b"from stdin"));
    let second: Value = serde_json::from_str(&appended).unwrap();
    assert_eq!(second["seq"], 2);

    let log = ok(feedmesh(&["log", "--dir", &dir_arg(&a)]));
    let lines: Vec<Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["hash"], first["hash"]);
    assert_eq!(lines[1]["prev"], first["hash"]);
    assert_eq!(lines[1]["payload_len"], 10);
    assert_eq!(lines[1]["payload_hash"], blake3::hash(b"from stdin").to_hex().as_str());
    assert!(lines[1]["timestamp"].as_u64().unwrap() > lines[0]["timestamp"].as_u64().unwrap());
    let only_second = ok(feedmesh(&[
        "log",
        "--dir",
        &dir_arg(&a),
        "--feed",
        &id,
        "--from",
        "2",
        "--to",
        "2",
    ]));
    assert_eq!(only_second.lines().count(), 1);

    let bundle = tmp.path().join("a.bundle");
    ok(feedmesh(&[
        "export",
        "--dir",
        &dir_arg(&a),
        "--feed",
        &id,
        "--out",
        &dir_arg(&bundle),
    ]));
    let imported: Value =
        serde_json::from_str(&ok(feedmesh(&["import", "--dir", &dir_arg(&b), &dir_arg(&bundle)]))).unwrap();
    assert_eq!(imported["appended"], 2);
    let again: Value =
        serde_json::from_str(&ok(feedmesh(&["import", "--dir", &dir_arg(&b), &dir_arg(&bundle)]))).unwrap();
    assert_eq!(
        (again["appended"].as_u64(), again["already_held"].as_u64()),
        (Some(0), Some(2))
    );
    assert_eq!(ok(feedmesh(&["log", "--dir", &dir_arg(&b), "--feed", &id])), log);

    // Export to standard output is byte-identical to the file.
    let stdout_bundle = feedmesh(&["export", "--dir", &dir_arg(&a), "--feed", &id]);
    assert_eq!(stdout_bundle.stdout, std::fs::read(&bundle).unwrap());

    let verified = ok(feedmesh(&["verify", "--dir", &dir_arg(&b)]));
    assert!(verified.starts_with("ok: 1 feeds, 2 entries, 2 payloads"), "{verified}");
}

#[test]
fn import_of_a_tampered_bundle_keeps_the_valid_prefix_and_names_the_record_and_rule() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let id = init(&a);
    init(&b);
    for i in 0..3 {
        ok(feedmesh_with_stdin(
            &["append", "--dir", &dir_arg(&a)],
            format!("payload {i}").as_bytes(),
        ));
    }
    let mut bundle = feedmesh(&["export", "--dir", &dir_arg(&a), "--feed", &id]).stdout;
    // The last byte is inside the third record's payload.
    let last = bundle.len() - 1;
    bundle[last] ^= 0x20;
    let output = feedmesh_with_stdin(&["import", "--dir", &dir_arg(&b)], &bundle);
    let stdout: Value = serde_json::from_slice(&output.stdout).unwrap();
    let error = fails(output);
    assert!(
        error.contains("record 2") && error.contains("V13 payload-hash"),
        "{error}"
    );
    assert_eq!(stdout["appended"], 2);
    let log = ok(feedmesh(&["log", "--dir", &dir_arg(&b)]));
    assert_eq!(log.lines().count(), 2);
}

#[test]
fn bad_input_gets_one_clear_line() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    init(&a);
    let error = fails(feedmesh_with_stdin(&["import", "--dir", &dir_arg(&a)], b"not a bundle"));
    assert!(error.contains("not a feedmesh bundle"), "{error}");
    let nobody = format!("feed_{}", "00".repeat(32));
    let error = fails(feedmesh(&["export", "--dir", &dir_arg(&a), "--feed", &nobody]));
    assert!(error.contains("holds no entry"), "{error}");
    // A malformed feed id is a usage error (exit 2), reported by the parser.
    let output = feedmesh(&["log", "--dir", &dir_arg(&a), "--feed", "nope"]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn demo_runs_and_shows_the_tampered_bundle_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = ok(feedmesh(&["demo", "--dir", &dir_arg(&tmp.path().join("demo"))]));
    assert!(out.contains("bob imported 5 new entries"), "{out}");
    assert!(out.contains("0 new, 5 already held"), "{out}");
    assert!(out.contains("carol refused"), "{out}");
}
