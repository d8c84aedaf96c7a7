//! The web console end to end, in headless Chromium: `vexil serve` on port 0 over a fresh
//! SQLite database, then `tests/console/run.mjs`, which drives Debian's Chromium through
//! `playwright-core` along the seeds' walkthroughs. It signs in and makes everything through the
//! console's pages (projects, deployments, flags, variants, allocation, cohorts, prerequisites,
//! mutual-exclusion and holdout groups, activation, history, metrics and an experiment's settings)
//! and checks what the pages show against what the server serves to SDKs, what `vexil eval`
//! computes and, for an experiment's results page (charts, verdict, SRM warning), what the
//! results API answers.
//!
//! The test only starts the server and the script; the checks and their messages are in
//! `tests/console/`. A failed step saves a screenshot and the page's HTML into a directory whose
//! path is printed (it is kept when the test fails).
//!
//! Without `node`, without `tests/console/node_modules` (`npm ci` there) or without Chromium
//! (`/usr/bin/chromium`, or `VEXIL_CHROMIUM`) the test is skipped with a message, except under
//! `CI=true`, where that is a failure.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic in a test helper is a failed test with its location"
)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

mod common;

use common::{missing_node, repo_dir, skip, start, wait_until, TempDir};

/// How long the browser script may run before it is killed (it takes well under a minute).
const NODE_DEADLINE: Duration = Duration::from_secs(150);

/// The Chromium binary the script launches.
fn chromium() -> PathBuf {
    std::env::var_os("VEXIL_CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// Why the browser test cannot run here, if it cannot.
fn missing_tool(console_dir: &Path) -> Option<String> {
    if let Some(reason) = missing_node(console_dir) {
        return Some(reason);
    }
    if !console_dir
        .join("node_modules")
        .join("playwright-core")
        .is_dir()
    {
        return Some(format!(
            "{} has no node_modules (run `npm ci` there)",
            console_dir.display()
        ));
    }
    let chromium = chromium();
    (!chromium.is_file()).then(|| {
        format!(
            "{} is not installed (`apt-get install chromium`, or set VEXIL_CHROMIUM)",
            chromium.display()
        )
    })
}

/// Runs `node run.mjs` with the fixture, printing its output as it comes (a step per line);
/// kills it at [`NODE_DEADLINE`]. Returns (success, stdout).
fn run_node(console_dir: &Path, fixture: &Path) -> (bool, String) {
    let mut child = Command::new("node")
        .arg(console_dir.join("run.mjs"))
        .env("VEXIL_FIXTURE", fixture)
        .env("VEXIL_CHROMIUM", chromium())
        .current_dir(console_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut pipe = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    print!("{}", String::from_utf8_lossy(&buf[..n]));
                    all.extend_from_slice(&buf[..n]);
                }
            }
        }
        String::from_utf8_lossy(&all).into_owned()
    });
    let status = wait_until(&mut child, Instant::now() + NODE_DEADLINE);
    let stdout = reader.join().unwrap();
    if status.is_none() {
        println!("killed after {NODE_DEADLINE:?}");
    }
    (status.is_some_and(|s| s.success()), stdout)
}

#[test]
fn console_walkthroughs_in_chromium() {
    let console_dir = repo_dir("tests/console");
    if let Some(reason) = missing_tool(&console_dir) {
        skip("the console browser test", &reason);
        return;
    }
    let started = Instant::now();
    let dir = TempDir::new("vexil-console");
    let server = start(&dir.0.join("vexil.db"), &[]);
    // Not inside `dir`: the screenshots of a failed run must outlive the test.
    let artifacts =
        std::env::temp_dir().join(format!("vexil-console-failures-{}", std::process::id()));
    // Kept after the run: the flag page, the list and the review step as the run saw them.
    let screenshots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    let fixture = dir.0.join("fixture.json");
    let body = json!({
        "screenshots": screenshots,
        "base": server.base(),
        "adminKey": server.key.clone().expect("a fresh database prints an admin key"),
        "vexil": env!("CARGO_BIN_EXE_vexil"),
        "artifacts": artifacts,
    });
    std::fs::write(&fixture, body.to_string()).unwrap();
    let (ok, _) = run_node(&console_dir, &fixture);
    println!("total {:?}", started.elapsed());
    println!(
        "screenshots of the flag page, the list and the review step: {}",
        screenshots.display()
    );
    if ok {
        let _ = std::fs::remove_dir_all(&artifacts);
    }
    assert!(
        ok,
        "the console checks failed (output above); screenshots and HTML in {}",
        artifacts.display()
    );
}
