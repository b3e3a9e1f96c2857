//! Real `feedmesh` processes for the integration tests: one-shot commands,
//! and `feedmesh serve` children whose standard error is collected line by
//! line, killed on drop. Every wait is bounded by [`DEADLINE`].

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Every wait on a child process ends by this long.
pub(crate) const DEADLINE: Duration = Duration::from_secs(20);

pub(crate) fn path_arg(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// Runs `feedmesh ARGS...` with no input; returns what it printed.
pub(crate) fn feedmesh(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_feedmesh"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run feedmesh")
}

/// Runs `feedmesh ARGS...` with no input; returns its exit code, standard
/// output and standard error as text.
pub(crate) fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let output = feedmesh(args);
    (
        output.status.code(),
        String::from_utf8(output.stdout).expect("utf-8 stdout"),
        String::from_utf8(output.stderr).expect("utf-8 stderr"),
    )
}

/// Runs `feedmesh ARGS...` with `stdin` as its input; returns what it printed.
pub(crate) fn feedmesh_with_stdin(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_feedmesh"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run feedmesh");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

/// Collects the lines of `output` on a thread of its own, until it ends.
pub(crate) fn collect_lines(output: impl Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines() {
            let Ok(line) = line else { break };
            sink.lock().expect("lines").push(line);
        }
    });
    lines
}

/// Waits (bounded) until `done`.
pub(crate) fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running `feedmesh serve`, its standard error collected, killed on drop.
pub(crate) struct ServeProcess {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl ServeProcess {
    /// Starts `feedmesh serve ARGS...` with `RUST_LOG=rust_log`.
    pub(crate) fn spawn<S: AsRef<std::ffi::OsStr>>(args: &[S], rust_log: &str) -> ServeProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_feedmesh"))
            .arg("serve")
            .args(args)
            .env("RUST_LOG", rust_log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start feedmesh serve");
        let lines = collect_lines(child.stderr.take().expect("stderr"));
        ServeProcess { child, lines }
    }

    /// Its standard error so far, line by line.
    pub(crate) fn lines(&self) -> MutexGuard<'_, Vec<String>> {
        self.lines.lock().expect("lines")
    }

    /// Waits (bounded) until `found` finds something in the lines printed
    /// so far; panics if the process exits first.
    pub(crate) fn wait_for<T>(&mut self, what: &str, mut found: impl FnMut(&[String]) -> Option<T>) -> T {
        let start = Instant::now();
        loop {
            if let Some(value) = found(&self.lines()) {
                return value;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("serve exited early ({status}): {:?}", self.lines());
            }
            assert!(start.elapsed() < DEADLINE, "serve never printed {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends SIGTERM and waits (bounded) for a successful exit.
    pub(crate) fn terminate(mut self) {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status().expect("run kill");
        assert!(killed.success());
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "{status} after SIGTERM: {:?}", self.lines());
                return;
            }
            assert!(start.elapsed() < DEADLINE, "serve did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILL: no chance to clean up.
    pub(crate) fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("wait");
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
