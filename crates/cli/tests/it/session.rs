//! `feedmesh session ...` against a real `feedmesh serve`: put, get, touch,
//! revoke, revoke-owner and digest through the HTTP API, and the one-line
//! failures.

use crate::process::{self, ServeProcess, feedmesh, path_arg};
use serde_json::{Value, json};

/// Runs `feedmesh session ARGS...`; returns (success, stdout, stderr).
fn session(args: &[&str]) -> (bool, String, String) {
    let mut all = vec!["session"];
    all.extend_from_slice(args);
    let (code, out, err) = process::run(&all);
    (code == Some(0), out, err)
}

#[test]
fn the_session_command_against_a_running_serve() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("a");
    let init = feedmesh(&["init", "--dir", path_arg(&dir)]);
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));
    let id = String::from_utf8(init.stdout).expect("utf-8").trim().to_string();
    std::fs::write(dir.join("token"), "cli-token\n").expect("write token");
    let token = dir.join("token");
    let mut serve = ServeProcess::spawn(
        &[
            "--dir",
            path_arg(&dir),
            "--listen",
            "127.0.0.1:0",
            "--api",
            "127.0.0.1:0",
            "--api-token-file",
            path_arg(&token),
        ],
        "warn",
    );
    let api = serve.wait_for("its API address", |lines| {
        lines
            .iter()
            .find_map(|l| l.strip_prefix("api listening on "))
            .map(str::to_string)
    });
    let url = format!("http://{api}");
    let auth = ["--token-file", path_arg(&token)];
    let with = |args: &[&str]| -> (bool, String, String) {
        let mut all = args.to_vec();
        all.extend_from_slice(&auth);
        session(&all)
    };

    let (ok, out, err) = with(&[
        "put",
        "--api",
        &api,
        "sid/1",
        "--value",
        r#"{"user":"dave"}"#,
        "--ttl-secs",
        "60",
        "--owner",
        "dave",
    ]);
    assert!(ok, "{err}");
    let written: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(written["author"], id.as_str());
    assert_eq!(written["seq"], 1);

    let (ok, out, err) = with(&["get", "--api", &url, "sid/1"]);
    assert!(ok, "{err}");
    let read: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(read["value"], json!({"user": "dave"}));
    assert_eq!(read["owner"], "dave");
    assert_eq!(read["expires_at"], written["expires_at"]);

    let (ok, out, err) = with(&["touch", "--api", &api, "sid/1", "--ttl-secs", "120"]);
    assert!(ok, "{err}");
    let touched: Value = serde_json::from_str(&out).expect("JSON");
    assert!(
        touched["expires_at"].as_u64() > written["expires_at"].as_u64(),
        "{touched}"
    );

    let (ok, _, err) = with(&["revoke", "--api", &api, "sid/1"]);
    assert!(ok, "{err}");
    let missing = feedmesh(&[
        "session",
        "get",
        "--api",
        &api,
        "sid/1",
        "--token-file",
        path_arg(&token),
    ]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(missing.stdout.is_empty());
    let err = String::from_utf8(missing.stderr).expect("utf-8");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("404") && err.contains("sid/1"), "{err}");

    let (ok, _, err) = with(&["revoke-owner", "--api", &api, "dave"]);
    assert!(ok, "{err}");
    let (ok, out, err) = with(&["digest", "--api", &api]);
    assert!(ok, "{err}");
    let digest: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(digest["clock"][&id], 4);

    // Failures are one line and exit status 1: no token, a bad ttl, acks
    // nobody can give, no API there.
    let (ok, _, err) = session(&["digest", "--api", &api]);
    assert!(!ok && err.contains("401"), "{err}");
    let (ok, _, err) = with(&["put", "--api", &api, "k", "--value", "1", "--ttl-secs", "0"]);
    assert!(!ok && err.contains("400") && err.contains("ttl_secs"), "{err}");
    let (ok, _, err) = with(&["revoke", "--api", &api, "k", "--acks", "1", "--timeout-ms", "50"]);
    assert!(!ok && err.contains("504"), "{err}");
    serve.terminate();
    let (ok, _, err) = with(&["get", "--api", &api, "k"]);
    assert!(!ok && err.contains("connect"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    // A value that is not JSON is a usage error.
    let bad = feedmesh(&["session", "put", "--api", &api, "k", "--value", "{", "--ttl-secs", "1"]);
    assert_eq!(bad.status.code(), Some(2));
}
