//! What the binary's process tests share: a temporary directory, and `vexil serve` started on
//! port 0 with the admin key and address it prints read back from its standard output.

#![allow(dead_code, reason = "each test binary uses a part of the harness")]

pub mod fixtures;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A temp directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("{prefix}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `vexil serve`, killed when dropped.
pub struct Server {
    pub child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// The admin key, when this start created one.
    pub key: Option<String>,
    /// `http://127.0.0.1:PORT/metrics`, when a metrics listener was asked for.
    pub metrics: Option<String>,
    _stdout: BufReader<ChildStdout>,
}

impl Drop for Server {
    /// A failed test must not leave a server running; after a graceful stop this finds nothing
    /// to do.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Starts `vexil serve` on port 0 over `db` with `extra` options and reads what it prints up to
/// the listening line.
pub fn start(db: &Path, extra: &[&str]) -> Server {
    start_with_env(db, extra, &[])
}

/// [`start`] with environment variables (`VEXIL_LOG` is `warn` unless `env` sets it).
pub fn start_with_env(db: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
    start_on(db, "127.0.0.1:0", extra, env)
}

/// [`start_with_env`] on a given address (a restart on the port an earlier server had).
#[allow(
    clippy::zombie_processes,
    reason = "if serve exits before listening, the assert reports it and there is nothing to reap"
)]
pub fn start_on(db: &Path, listen: &str, extra: &[&str], env: &[(&str, &str)]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vexil"))
        .args(["serve", "--listen", listen])
        .args(extra)
        .arg("--db")
        .arg(db)
        .env("VEXIL_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut key = None;
    loop {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "vexil serve exited before listening"
        );
        let line = line.trim();
        if line.starts_with("vxm_") {
            key = Some(line.to_string());
        }
        if let Some(addr) = line.strip_prefix("Vexil is listening on http://") {
            return Server {
                child,
                addr: addr.to_string(),
                key,
                metrics: None,
                _stdout: stdout,
            };
        }
    }
}

/// Starts `vexil edge` following `keys` of `upstream` on `listen` (`127.0.0.1:0` for any
/// port), with `--data-dir` when given, and reads what it prints up to the listening line.
pub fn start_edge(upstream: &str, keys: &[&str], data_dir: Option<&Path>, listen: &str) -> Server {
    start_edge_with(upstream, keys, data_dir, listen, &[])
}

/// [`start_edge`] with `extra` options; the metrics address is read back when it prints one
/// (`--metrics-listen`).
#[allow(
    clippy::zombie_processes,
    reason = "if the edge exits before listening, the assert reports it and there is nothing to reap"
)]
pub fn start_edge_with(
    upstream: &str,
    keys: &[&str],
    data_dir: Option<&Path>,
    listen: &str,
    extra: &[&str],
) -> Server {
    let mut command = Command::new(env!("CARGO_BIN_EXE_vexil"));
    command.args(["edge", "--upstream", upstream, "--listen", listen]);
    for key in keys {
        command.args(["--key", key]);
    }
    if let Some(dir) = data_dir {
        command.arg("--data-dir").arg(dir);
    }
    let mut child = command
        .args(extra)
        .env("VEXIL_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut metrics = None;
    loop {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "vexil edge exited before listening"
        );
        let line = line.trim();
        if let Some(url) = line.strip_prefix("Metrics are at ") {
            metrics = Some(url.to_owned());
        }
        if let Some(addr) = line.strip_prefix("Vexil edge is listening on http://") {
            return Server {
                child,
                addr: addr.to_string(),
                key: None,
                metrics,
                _stdout: stdout,
            };
        }
    }
}

/// A folder of the repository, from its root (`tests/console`).
pub fn repo_dir(relative: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_path_buf();
    root.join(relative)
}

/// Why a Node test in `dir` cannot run here: no `node`, or no `node_modules` (`npm ci`).
pub fn missing_node(dir: &Path) -> Option<String> {
    match Command::new("node").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        _ => return Some("node is not installed".to_owned()),
    }
    (!dir.join("node_modules").is_dir())
        .then(|| format!("{} has no node_modules (run `npm ci` there)", dir.display()))
}

/// The schemathesis command: `VEXIL_SCHEMATHESIS` when set (`.ci/run` installs a pinned version
/// into a virtualenv and sets it), else `schemathesis` on `PATH`; `Err` says why it cannot run.
pub fn schemathesis() -> Result<String, String> {
    let program = std::env::var("VEXIL_SCHEMATHESIS").unwrap_or_else(|_| "schemathesis".to_owned());
    match Command::new(&program).arg("--version").output() {
        Ok(out) if out.status.success() => Ok(program),
        Ok(out) => Err(format!(
            "`{program} --version` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(err) => Err(format!(
            "schemathesis is not installed ({program}: {err}); install the version .ci/run pins \
             with pip, or set VEXIL_SCHEMATHESIS to its path"
        )),
    }
}

/// Says a suite is skipped, and why; under `CI=true` a skip is a failure instead.
pub fn skip(suite: &str, reason: &str) {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true needs {suite}: {reason}"
    );
    println!("skipped: {reason}");
}

/// Waits for `child` until `deadline`, then kills it; `None` when it was killed.
pub fn wait_until(
    child: &mut Child,
    deadline: std::time::Instant,
) -> Option<std::process::ExitStatus> {
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
