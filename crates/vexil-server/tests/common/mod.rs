//! The harness of the API tests: starts the real server (`vexil_server::run`) on `127.0.0.1:0`
//! over a fresh store per test, bootstraps the admin key, and talks to it over HTTP with
//! reqwest.
//!
//! Stores: a SQLite file with a unique name in the system's temporary directory, or a fresh
//! schema of the PostgreSQL test server (`VEXIL_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`). When PostgreSQL cannot be reached the PostgreSQL
//! variant of a test is skipped with a message, unless `CI=true`, where that is a failure (the
//! same rule as `vexil-store`'s own tests).
//!
//! The PostgreSQL driver runs its own runtime, so it must never be opened, used or dropped on
//! an async thread. The store is opened on the blocking pool, and [`Guarded`] drops it (and
//! removes the database) on a plain thread, whichever task lets go of it last.

#![allow(dead_code, reason = "each test binary uses a part of the harness")]

pub mod outage;
pub mod sdk;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use reqwest::header::HeaderMap;
use reqwest::{Client, Method, RequestBuilder};
use serde_json::{json, Value};
use vexil_core::Services;
use vexil_server::ServerConfig;
use vexil_store::{PostgresStore, SqliteStore, Store, Tx};

/// Which store a server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

fn postgres_url() -> String {
    std::env::var("VEXIL_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned())
}

/// A name unique to this process, test and moment.
fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

type Cleanup = Box<dyn FnOnce() + Send + Sync>;

/// A store that, when the last reference goes, drops the real store and then removes its
/// database on a plain thread (never on an async worker, where the PostgreSQL driver panics).
struct Guarded {
    inner: Option<Arc<dyn Store>>,
    cleanup: Option<Cleanup>,
}

impl Guarded {
    fn inner(&self) -> &dyn Store {
        &**self
            .inner
            .as_ref()
            .expect("the store is alive until dropped")
    }
}

impl Store for Guarded {
    fn write(
        &self,
        f: &mut dyn FnMut(&mut dyn Tx) -> vexil_store::Result<()>,
    ) -> vexil_store::Result<()> {
        self.inner().write(f)
    }

    fn read(
        &self,
        f: &mut dyn FnMut(&mut dyn Tx) -> vexil_store::Result<()>,
    ) -> vexil_store::Result<()> {
        self.inner().read(f)
    }

    fn backend(&self) -> &'static str {
        self.inner().backend()
    }

    fn change_feed(&self) -> vexil_store::Result<Option<Box<dyn vexil_store::ChangeFeed>>> {
        self.inner().change_feed()
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        let inner = self.inner.take();
        let cleanup = self.cleanup.take();
        // Best effort: a leftover file or schema only costs space.
        let _ = std::thread::spawn(move || {
            drop(inner);
            if let Some(cleanup) = cleanup {
                cleanup();
            }
        })
        .join();
    }
}

fn open_sqlite() -> Guarded {
    let path = std::env::temp_dir().join(format!("{}.db", unique("vexil-server-api")));
    let store = SqliteStore::open(&path).unwrap();
    Guarded {
        inner: Some(Arc::new(store)),
        cleanup: Some(Box::new(move || {
            for suffix in ["", "-wal", "-shm"] {
                let mut file = path.clone().into_os_string();
                file.push(suffix);
                let _ = std::fs::remove_file(file);
            }
        })),
    }
}

/// A fresh schema of the PostgreSQL test server, or `None` (after saying so) when the server
/// is unreachable outside CI.
fn open_postgres() -> Option<Guarded> {
    let url = postgres_url();
    match postgres::Client::connect(&url, postgres::NoTls) {
        Ok(client) => drop(client),
        Err(err) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("PostgreSQL not reachable at {url}: {err}")
        }
        Err(err) => {
            eprintln!("skipped: PostgreSQL not reachable at {url}: {err}");
            return None;
        }
    }
    let schema = unique("vexil_api_test");
    SCHEMA_OF_LAST.with(|s| s.borrow_mut().clone_from(&schema));
    let store = PostgresStore::connect(&url, Some(&schema)).unwrap();
    Some(Guarded {
        inner: Some(Arc::new(store)),
        cleanup: Some(Box::new(move || {
            if let Ok(mut client) = postgres::Client::connect(&url, postgres::NoTls) {
                let _ =
                    client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"));
            }
        })),
    })
}

/// A fresh schema of the PostgreSQL test server that the server under test reaches at the
/// URL `via` makes of the real one (through a proxy, say); `None` outside CI when PostgreSQL is
/// unreachable.
fn open_postgres_via(via: &dyn Fn(&str) -> String) -> Option<Guarded> {
    let mut direct = open_postgres()?;
    let cleanup_schema = direct.cleanup.take()?;
    drop(direct);
    let schema = SCHEMA_OF_LAST.with(|s| s.borrow().clone());
    let store = PostgresStore::connect(&via(&postgres_url()), Some(&schema)).unwrap();
    Some(Guarded {
        inner: Some(Arc::new(store)),
        cleanup: Some(cleanup_schema),
    })
}

thread_local! {
    /// The schema `open_postgres` made last on this thread.
    static SCHEMA_OF_LAST: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// An answer: status, JSON body (`Null` when empty or not JSON), headers.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub json: Value,
    pub headers: HeaderMap,
    pub text: String,
}

impl Resp {
    /// The version in the `ETag` header (`"3"` gives 3).
    #[track_caller]
    pub fn etag(&self) -> i64 {
        let raw = self
            .headers
            .get("etag")
            .unwrap_or_else(|| panic!("no ETag in {self:?}"))
            .to_str()
            .unwrap();
        raw.trim_start_matches("W/")
            .trim_matches('"')
            .parse()
            .unwrap()
    }

    pub fn code(&self) -> &str {
        self.json["code"].as_str().unwrap_or_default()
    }

    pub fn message(&self) -> &str {
        self.json["message"].as_str().unwrap_or_default()
    }

    pub fn field(&self) -> Option<&str> {
        self.json["field"].as_str()
    }

    pub fn blocking(&self) -> Vec<String> {
        strings(&self.json["blocking"])
    }

    /// Asserts the status, then returns the answer.
    #[track_caller]
    pub fn ok(self, status: u16) -> Resp {
        assert_eq!(self.status, status, "unexpected answer: {}", self.text);
        self
    }

    /// Asserts an error answer: status, `code` and `field` (`None`: no field).
    #[track_caller]
    pub fn err(&self, status: u16, code: &str, field: Option<&str>) -> &Resp {
        assert_eq!(
            (self.status, self.code(), self.field()),
            (status, code, field),
            "unexpected error answer: {}",
            self.text
        );
        assert!(
            !self.message().is_empty(),
            "an error says why: {}",
            self.text
        );
        self
    }
}

/// The strings of a JSON array (empty when absent).
pub fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The `key` of every item of a JSON array.
pub fn keys(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|i| i["key"].as_str().unwrap().to_owned())
        .collect()
}

/// The default settings of test servers: the publisher polls the store often, so that
/// changes made by another node arrive quickly.
pub fn fast_config() -> ServerConfig {
    let mut config = ServerConfig::default();
    config.publisher.sync_interval = std::time::Duration::from_millis(100);
    config
}

/// A started server's handles: its base URL, the shutdown switch, and the signal that it
/// stopped.
type Running = (
    String,
    tokio::sync::oneshot::Sender<()>,
    std::sync::mpsc::Receiver<()>,
);

/// Starts `vexil_server::App` on 127.0.0.1:0.
async fn serve(services: Services, config: ServerConfig) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (stopped_tx, stopped) = std::sync::mpsc::channel();
    let app = vexil_server::App::start(services, config).await.unwrap();
    tokio::spawn(async move {
        let served = app
            .serve(listener, async {
                let _ = rx.await;
            })
            .await;
        app.stop().await;
        let _ = stopped_tx.send(());
        served
    });
    (format!("http://{addr}"), tx, stopped)
}

/// A running server and a client for it, authenticated as the bootstrap admin.
pub struct Server {
    pub base: String,
    /// The bootstrap admin key's secret.
    pub admin: String,
    pub http: Client,
    pub backend: Backend,
    store: Arc<dyn Store>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    stopped: Option<std::sync::mpsc::Receiver<()>>,
    /// Every 5xx answer seen, which no test expects.
    server_errors: Arc<Mutex<Vec<String>>>,
}

impl Drop for Server {
    /// Stops the server and waits (briefly) until its background threads have stored what they
    /// hold and let go of the database, so that the database can be removed.
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(stopped) = self.stopped.take() {
            let wait = || stopped.recv_timeout(std::time::Duration::from_secs(5));
            match tokio::runtime::Handle::try_current() {
                Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                    let _ = tokio::task::block_in_place(wait);
                }
                _ => {}
            }
        }
    }
}

impl Server {
    /// A server over a fresh SQLite database.
    pub async fn sqlite() -> Server {
        Server::start(Backend::Sqlite).await.unwrap()
    }

    /// A server over a fresh PostgreSQL schema; `None` when PostgreSQL is unreachable outside CI.
    pub async fn postgres() -> Option<Server> {
        Server::start(Backend::Postgres).await
    }

    pub async fn start(backend: Backend) -> Option<Server> {
        Server::start_with(backend, fast_config()).await
    }

    /// A server with these settings over a fresh store of `backend`.
    pub async fn start_with(backend: Backend, config: ServerConfig) -> Option<Server> {
        Server::start_opened(backend, config, move || match backend {
            Backend::Sqlite => Some(Arc::new(open_sqlite()) as Arc<dyn Store>),
            Backend::Postgres => Some(Arc::new(open_postgres()?) as Arc<dyn Store>),
        })
        .await
    }

    /// A server over a fresh PostgreSQL schema that it reaches at the URL `via` makes of the
    /// test server's (e.g. through a proxy that can fail on purpose).
    pub async fn postgres_via(
        config: ServerConfig,
        via: impl Fn(&str) -> String + Send + 'static,
    ) -> Option<Server> {
        Server::start_opened(Backend::Postgres, config, move || {
            Some(Arc::new(open_postgres_via(&via)?) as Arc<dyn Store>)
        })
        .await
    }

    async fn start_opened(
        backend: Backend,
        config: ServerConfig,
        open: impl FnOnce() -> Option<Arc<dyn Store>> + Send + 'static,
    ) -> Option<Server> {
        let opened = tokio::task::spawn_blocking(move || {
            let store = open()?;
            let services = Services::new(store.clone());
            let admin = services
                .keys
                .bootstrap()
                .unwrap()
                .expect("an empty store bootstraps");
            assert!(
                services.keys.bootstrap().unwrap().is_none(),
                "bootstrap happens once"
            );
            Some((services, admin.secret, store))
        })
        .await
        .unwrap();
        let (services, admin, store) = opened?;
        let (base, shutdown, stopped) = serve(services, config).await;
        Some(Server {
            base,
            admin,
            http: Client::new(),
            backend,
            store,
            shutdown: Some(shutdown),
            stopped: Some(stopped),
            server_errors: Arc::new(Mutex::new(Vec::new())),
        })
    }

    /// Stops the server and waits until it has; its store stays open (for
    /// [`Server::another_node`]).
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(stopped) = self.stopped.take() {
            let wait = move || stopped.recv_timeout(std::time::Duration::from_secs(30));
            tokio::task::spawn_blocking(wait).await.unwrap().unwrap();
        }
    }

    /// A second server (another node) on this server's database, with the same admin key.
    pub async fn another_node(&self, config: ServerConfig) -> Server {
        let services = Services::new(self.store.clone());
        let (base, shutdown, stopped) = serve(services, config).await;
        Server {
            base,
            admin: self.admin.clone(),
            http: Client::new(),
            backend: self.backend,
            store: self.store.clone(),
            shutdown: Some(shutdown),
            stopped: Some(stopped),
            server_errors: Arc::new(Mutex::new(Vec::new())),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The server's store, to check what it holds (use it from a blocking thread: the
    /// PostgreSQL driver must not run on an async one).
    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// A request authenticated with the admin key.
    pub fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, self.url(path))
            .bearer_auth(&self.admin)
    }

    /// Sends a request and reads the whole answer.
    pub async fn send(&self, request: RequestBuilder) -> Resp {
        self.read(request.send().await.unwrap()).await
    }

    /// Reads a whole answer (of a request sent elsewhere, e.g. from a spawned task).
    pub async fn read(&self, response: reqwest::Response) -> Resp {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status >= 500 {
            self.server_errors
                .lock()
                .unwrap()
                .push(format!("{status}: {text}"));
        }
        Resp {
            status,
            json,
            headers,
            text,
        }
    }

    /// Asserts that the server has not answered 5xx during the test.
    #[track_caller]
    pub fn assert_no_server_errors(&self) {
        let errors = self.server_errors.lock().unwrap();
        assert!(errors.is_empty(), "the server answered 5xx: {errors:?}");
    }

    pub fn with_version(request: RequestBuilder, version: Option<i64>) -> RequestBuilder {
        match version {
            Some(v) => request.header("If-Match", format!("\"{v}\"")),
            None => request,
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(self.req(Method::GET, path)).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        self.send(self.req(Method::POST, path).json(body)).await
    }

    /// A POST with `If-Match` and no body (activate, archive, restore ...).
    pub async fn post_if(&self, path: &str, version: impl Into<Option<i64>>) -> Resp {
        self.send(Server::with_version(
            self.req(Method::POST, path),
            version.into(),
        ))
        .await
    }

    pub async fn patch(&self, path: &str, version: impl Into<Option<i64>>, body: &Value) -> Resp {
        let request = self.req(Method::PATCH, path).json(body);
        self.send(Server::with_version(request, version.into()))
            .await
    }

    pub async fn put(&self, path: &str, version: impl Into<Option<i64>>, body: &Value) -> Resp {
        let request = self.req(Method::PUT, path).json(body);
        self.send(Server::with_version(request, version.into()))
            .await
    }

    /// A PUT of a raw body with its content type (cohort uploads).
    pub async fn put_raw(
        &self,
        path: &str,
        version: impl Into<Option<i64>>,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> Resp {
        let request = self
            .req(Method::PUT, path)
            .header("Content-Type", content_type)
            .body(body);
        self.send(Server::with_version(request, version.into()))
            .await
    }

    pub async fn delete(&self, path: &str, version: impl Into<Option<i64>>) -> Resp {
        self.send(Server::with_version(
            self.req(Method::DELETE, path),
            version.into(),
        ))
        .await
    }

    // Domain helpers; each asserts success.

    pub async fn create_project(&self, name: &str) -> String {
        let r = self
            .post("/api/v1/projects", &json!({ "name": name }))
            .await
            .ok(201);
        r.json["key"].as_str().unwrap().to_owned()
    }

    pub async fn create_deployment(&self, project: &str, label: &str, kind: &str) -> Value {
        let path = format!("/api/v1/projects/{project}/deployments");
        self.post(&path, &json!({ "label": label, "type": kind }))
            .await
            .ok(201)
            .json
    }

    /// Creates a flag from `body` (which names the project) and returns it.
    pub async fn create_flag(&self, body: Value) -> Value {
        self.post("/api/v1/flags", &body).await.ok(201).json
    }

    /// A project and a flag with the given key in it, with extra fields from `extra`.
    pub async fn flag_in(&self, project: &str, key: &str, extra: Value) -> Value {
        let mut body = json!({ "project": project, "name": key, "key": key });
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        self.create_flag(body).await
    }

    pub async fn flag(&self, key: &str) -> Resp {
        self.get(&format!("/api/v1/flags/{key}")).await.ok(200)
    }

    /// The current version of a flag.
    pub async fn version(&self, key: &str) -> i64 {
        self.flag(key).await.etag()
    }

    /// PATCHes a flag based on its current version.
    pub async fn update(&self, key: &str, body: &Value) -> Resp {
        let v = self.version(key).await;
        self.patch(&format!("/api/v1/flags/{key}"), v, body).await
    }

    /// `activate`, `deactivate`, `archive` or `unarchive`, based on the current version.
    pub async fn action(&self, key: &str, action: &str) -> Resp {
        let v = self.version(key).await;
        self.post_if(&format!("/api/v1/flags/{key}/{action}"), v)
            .await
    }

    /// Makes flag `key` look unchanged for `days` days (its stored `updated_at`), for the rules
    /// that read a flag's age.
    pub async fn age_flag(&self, project: &str, key: &str, days: i64) {
        let store = self.store();
        let (project, key) = (project.to_owned(), key.to_owned());
        // The store's drivers block: off the async runtime.
        tokio::task::spawn_blocking(move || {
            vexil_store::write(&*store, |tx| -> Result<(), vexil_store::StoreError> {
                let mut row = tx.get_flag(&project, &key)?.unwrap();
                let mut doc: Value = serde_json::from_str(&row.doc).unwrap();
                let at = doc["updated_at"].as_i64().unwrap() - days * 86_400_000;
                doc["updated_at"] = json!(at);
                row.doc = doc.to_string();
                row.updated_at = at;
                let version = row.version;
                tx.update_flag(&row, version)
            })
            .unwrap();
        })
        .await
        .unwrap();
    }

    /// QA evaluation of a flag for a user.
    pub async fn evaluate(&self, key: &str, user: Value) -> Value {
        let path = format!("/api/v1/flags/{key}/evaluate");
        self.post(&path, &json!({ "user": user }))
            .await
            .ok(200)
            .json
    }
}

/// Runs a scenario `async fn name(srv: &Server)` on both backends, as the tests
/// `name::sqlite` and `name::postgres`. (Declare the harness with `#[macro_use] mod common;`.)
macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let srv = crate::common::Server::sqlite().await;
                super::$scenario(&srv).await;
                srv.assert_no_server_errors();
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(srv) = crate::common::Server::postgres().await {
                    super::$scenario(&srv).await;
                    srv.assert_no_server_errors();
                }
            }
        }
    )*};
}
