//! Runs the real `vexil` binary as a server and as an administration tool: `vexil serve` on
//! port 0 prints its admin key and address once, answers the management API, refuses deployment
//! keys, and stops gracefully on SIGTERM; `vexil keys` and `vexil flags import` work on the same
//! database; a second start keeps the data and creates no new key.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic in a test helper is a failed test with its location"
)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

mod common;

use common::{start, Server, TempDir};

/// One HTTP/1.1 request on a fresh connection: (status, JSON body).
fn request(addr: &str, method: &str, path: &str, key: &str, body: Option<&Value>) -> (u16, Value) {
    let mut stream = TcpStream::connect(addr).unwrap();
    let payload = body.map(Value::to_string).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\n\
         If-Match: \"1\"\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{payload}",
        payload.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    // Small responses come whole; chunked ones carry a size line first.
    let json = serde_json::from_str(body)
        .or_else(|_| serde_json::from_str(body.lines().nth(1).unwrap_or("null")))
        .unwrap_or(Value::Null);
    (status, json)
}

fn vexil(args: &[&str], db: &Path) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vexil"))
        .args(args)
        .arg("--db")
        .arg(db)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// Polls `GET /api/v1/projects` with `key` until it answers `status`: a server takes the keys
/// `vexil keys` changes from the database within its sync interval. Polls no faster than the
/// interval, so a key not yet known costs few failures in the sign-in throttle.
fn eventually_status(addr: &str, key: &str, status: u16) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (got, body) = request(addr, "GET", "/api/v1/projects", key, None);
        if got == status {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still {got} instead of {status}: {body}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

fn stop(mut server: Server) {
    let pid = server.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = server.child.wait().unwrap();
    assert!(
        status.success(),
        "vexil serve should exit 0 on SIGTERM, got {status}"
    );
}

#[test]
fn serve_keys_and_import_work_on_one_database() {
    let dir = TempDir::new("vexil-serve");
    let db = dir.0.join("vexil.db");
    let server = start(&db, &["--sync-interval-ms", "100"]);
    let admin = server
        .key
        .clone()
        .expect("the first start prints an admin key");
    let addr = server.addr.clone();

    let (status, project) = request(
        &addr,
        "POST",
        "/api/v1/projects",
        &admin,
        Some(&json!({"name": "Shop"})),
    );
    assert_eq!(status, 201, "{project}");
    let (status, deployment) = request(
        &addr,
        "POST",
        "/api/v1/projects/shop/deployments",
        &admin,
        Some(&json!({"label": "Production", "type": "server"})),
    );
    assert_eq!(status, 201, "{deployment}");
    let sdk_key = deployment["api_key"].as_str().unwrap();
    assert!(sdk_key.starts_with("server-"));
    let (status, body) = request(&addr, "GET", "/api/v1/projects", sdk_key, None);
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("unauthorized")),
        "deployment keys never manage"
    );

    // The administration commands share the database with the running server, which follows
    // them within its sync interval.
    let (ok, secret, err) = vexil(&["keys", "create", "--name", "ci", "--role", "reader"], &db);
    assert!(ok, "{err}");
    let reader = secret.trim().to_string();
    eventually_status(&addr, &reader, 200);
    let (status, body) = request(
        &addr,
        "POST",
        "/api/v1/projects",
        &reader,
        Some(&json!({"name": "X"})),
    );
    assert_eq!((status, body["code"].as_str()), (403, Some("forbidden")));
    let (ok, list, _) = vexil(&["keys", "list"], &db);
    assert!(
        ok && list.contains("\tci\treader\t") && list.contains("\tadmin\tadmin\t"),
        "{list}"
    );
    assert!(!list.contains(&reader), "listings never show secrets");
    let (ok, _, err) = vexil(&["keys", "revoke", "ci"], &db);
    assert!(ok, "{err}");
    eventually_status(&addr, &reader, 401);
    let (ok, out, err) = vexil(
        &["keys", "rotate-server-secret", "--grace-seconds", "60"],
        &db,
    );
    assert!(
        ok && out.contains("rotated the server secret"),
        "{out}{err}"
    );
    let (ok, _, err) = vexil(
        &["keys", "rotate-server-secret", "--grace-seconds", "604801"],
        &db,
    );
    assert!(!ok && err.contains("grace"), "{err}");
    eventually_status(&addr, &admin, 200);

    let flags = dir.0.join("flags.json");
    std::fs::write(
        &flags,
        json!([{"key": "dark-mode", "metadata": {"evaluationMode": "local", "flagType": "release"},
                "variants": {"on": {"key": "on", "value": "on"}, "off": {"key": "off", "metadata": {"default": true}}},
                "segments": [{"metadata": {"segmentName": "All Other Users"}, "variant": "on"}]}])
        .to_string(),
    )
    .unwrap();
    let flags = flags.to_str().unwrap();
    let (ok, report, err) = vexil(
        &[
            "flags",
            "import",
            "--file",
            flags,
            "--deployment",
            "Production",
        ],
        &db,
    );
    assert!(ok, "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&report).unwrap()["created"],
        json!(["dark-mode"])
    );
    // The running server follows the import made beside it: it polls the stored revisions.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let context = json!({"context": {"targetingKey": "u1"}});
        let path = "/ofrep/v1/evaluate/flags/dark-mode";
        let (status, body) = request(&addr, "POST", path, sdk_key, Some(&context));
        if status == 200 {
            assert_eq!(body["variant"], "on", "{body}");
            break;
        }
        assert_eq!(status, 404, "{body}");
        assert!(
            std::time::Instant::now() < deadline,
            "the server did not pick up the import"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let (ok, report, _) = vexil(
        &[
            "flags",
            "import",
            "--file",
            flags,
            "--deployment",
            "Production",
        ],
        &db,
    );
    assert!(ok);
    assert_eq!(
        serde_json::from_str::<Value>(&report).unwrap()["unchanged"],
        json!(["dark-mode"])
    );
    let (status, flag) = request(&addr, "GET", "/api/v1/flags/dark-mode", &admin, None);
    assert_eq!(status, 200, "{flag}");
    assert_eq!(flag["deployments"], json!(["production"]));
    assert_eq!(flag["state"], "active");
    stop(server);

    // A second start keeps the data and prints no new key.
    let server = start(&db, &[]);
    assert_eq!(server.key, None);
    let (status, list) = request(
        &server.addr,
        "GET",
        "/api/v1/flags?project=shop",
        &admin,
        None,
    );
    assert_eq!((status, list["total"].as_u64()), (200, Some(1)), "{list}");
    stop(server);
}

#[test]
fn bad_databases_and_roles_are_reported() {
    let dir = TempDir::new("vexil-serve");
    let (ok, _, err) = vexil(
        &["keys", "create", "--name", "x", "--role", "root"],
        &dir.0.join("v.db"),
    );
    assert!(!ok);
    assert!(err.contains("--role is reader, writer or admin"), "{err}");
    // A directory is not a database file.
    let (ok, _, err) = vexil(&["keys", "list"], &dir.0);
    assert!(!ok);
    assert!(err.contains("opening the SQLite database"), "{err}");
}

/// On PostgreSQL too, SIGTERM ends `vexil serve` with status 0: the driver's connections are
/// closed off the async runtime, where closing them does not panic.
#[test]
fn a_postgres_server_stops_cleanly() {
    let url = std::env::var("VEXIL_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let mut admin = match postgres::Client::connect(&url, postgres::NoTls) {
        Ok(client) => client,
        Err(err) => return common::skip("a_postgres_server_stops_cleanly", &err.to_string()),
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let db = format!("vexil_serve_{}_{nanos}", std::process::id());
    admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .unwrap();
    let (base, _) = url.rsplit_once('/').unwrap();
    let server = start(Path::new(&format!("{base}/{db}")), &[]);
    let key = server
        .key
        .clone()
        .expect("a new database prints an admin key");
    let (status, _) = request(&server.addr, "GET", "/api/v1/projects", &key, None);
    assert_eq!(status, 200);
    stop(server);
    admin.batch_execute(&format!("DROP DATABASE {db}")).unwrap();
}
