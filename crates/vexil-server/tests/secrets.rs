//! Secrets at rest and key rotation, over the real server on both backends: console sessions
//! live server-side (a cookie made from what the database holds does not sign in; signing out
//! and revoking a key end sessions), the database holds no clear project secret, rotations
//! with and without a grace period take effect before they answer, a rotated server secret
//! reaches a running server, and (in process, over a store that can be switched off) a wrong
//! management key is refused without the store.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[macro_use]
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use hmac::{Hmac, KeyInit, Mac};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Sha256;
use tower::ServiceExt;
use vexil_core::keys::hash_secret;
use vexil_core::{Actor, Services};
use vexil_server::{App, ServerConfig};
use vexil_store::{SqliteStore, Store, StoreError, Tx};

use common::{Resp, Server};

const DEADLINE: Duration = Duration::from_secs(10);

on_both_backends!(
    a_cookie_made_from_the_database_does_not_sign_in,
    signing_out_and_revoking_end_sessions,
    the_database_holds_no_clear_project_secret,
    rotating_a_deployment_key,
    rotating_project_keys,
    a_rotated_server_secret_reaches_the_running_server,
);

fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// Runs `f` on the server's store in a read transaction, on a blocking thread.
async fn read<T: Send + 'static>(
    srv: &Server,
    f: impl FnOnce(&mut dyn Tx) -> vexil_store::Result<T> + Send + 'static,
) -> T {
    let store = srv.store();
    tokio::task::spawn_blocking(move || vexil_store::read(&*store, f).unwrap())
        .await
        .unwrap()
}

/// Hex HMAC-SHA256 of the parts joined by `.`: how the console signed its cookies before
/// sessions moved server-side.
fn signed(secret: &str, parts: &[&str]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(parts.join(".").as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The value of the hidden `_csrf` field of a page.
fn csrf_of(html: &str) -> String {
    let at = html
        .find("name=\"_csrf\" value=\"")
        .expect("a form with a token")
        + 20;
    html[at..].split('"').next().unwrap().to_owned()
}

/// The `name=value` part of the `Set-Cookie` header that sets `name`.
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().to_owned())
        .find(|c| c.starts_with(&format!("{name}=")))
}

/// The console as a browser sees it, with cookies kept by hand and redirects not followed.
struct Browser<'s> {
    srv: &'s Server,
    http: reqwest::Client,
}

impl<'s> Browser<'s> {
    fn new(srv: &'s Server) -> Browser<'s> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Browser { srv, http }
    }

    /// The sign-in form: its nonce cookie and its token.
    async fn login_form(&self) -> (String, String) {
        let page = self.http.get(self.srv.url("/login")).send().await.unwrap();
        let cookie = set_cookie(&page, "vexil_login").expect("the form's cookie");
        (cookie, csrf_of(&page.text().await.unwrap()))
    }

    /// Posts the sign-in form with `key`; returns the status and the session cookie, if set.
    async fn post_login(&self, form: &(String, String), key: &str) -> (u16, Option<String>) {
        let response = self
            .http
            .post(self.srv.url("/login"))
            .header(header::COOKIE, &form.0)
            .form(&[
                ("key", key),
                ("_csrf", form.1.as_str()),
                ("next", "/projects"),
            ])
            .send()
            .await
            .unwrap();
        let cookie = set_cookie(&response, "vexil_session");
        (response.status().as_u16(), cookie)
    }

    /// Signs in with `key`; returns the session cookie (`vexil_session=<token>`).
    async fn sign_in(&self, key: &str) -> String {
        let form = self.login_form().await;
        let (status, cookie) = self.post_login(&form, key).await;
        assert_eq!(status, 303, "signing in");
        cookie.expect("a session cookie")
    }

    /// The status of `GET path` with `cookie` (a 303 to `/login` means: not signed in).
    async fn status(&self, cookie: &str, path: &str) -> u16 {
        let response = self
            .http
            .get(self.srv.url(path))
            .header(header::COOKIE, cookie)
            .send()
            .await
            .unwrap();
        response.status().as_u16()
    }

    /// The CSRF token of the session's forms.
    async fn csrf(&self, cookie: &str) -> String {
        let page = self
            .http
            .get(self.srv.url("/projects"))
            .header(header::COOKIE, cookie)
            .send()
            .await
            .unwrap();
        csrf_of(&page.text().await.unwrap())
    }

    /// Posts the sign-out form with `csrf`; returns the status (303: signed out).
    async fn logout(&self, cookie: &str, csrf: &str) -> u16 {
        let response = self
            .http
            .post(self.srv.url("/logout"))
            .header(header::COOKIE, cookie)
            .form(&[("_csrf", csrf)])
            .send()
            .await
            .unwrap();
        response.status().as_u16()
    }

    async fn sign_out(&self, cookie: &str) {
        let csrf = self.csrf(cookie).await;
        assert_eq!(self.logout(cookie, &csrf).await, 303, "signing out");
    }
}

/// The session token of a `vexil_session=<token>` cookie.
fn token_of(cookie: &str) -> String {
    cookie.split_once('=').unwrap().1.to_owned()
}

/// What whoever reads the database has (the server secret, the keys' ids, the sessions'
/// hashes) makes no session cookie: neither the signed cookie of before nor a stored hash.
async fn a_cookie_made_from_the_database_does_not_sign_in(srv: &Server) {
    let browser = Browser::new(srv);
    let cookie = browser.sign_in(&srv.admin).await;
    assert_eq!(browser.status(&cookie, "/projects").await, 200);

    let key_id = srv.get("/api/v1/keys").await.ok(200).json[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = token_of(&cookie);
    let (secret, session) = read(srv, move |tx| {
        Ok((
            tx.get_setting("server_secret")?.unwrap(),
            tx.session_by_hash(&hash_secret(&token))?,
        ))
    })
    .await;
    let session = session.expect("the session is stored by its token's hash");
    assert_eq!(session.key_id, key_id);
    assert!(session.expires_at > now_ms());

    let expires = (now_ms() + 3_600_000).to_string();
    let signature = signed(&secret, &["session", &key_id, "forged", &expires]);
    let forged = format!("vexil_session={key_id}.forged.{expires}.{signature}");
    assert_eq!(browser.status(&forged, "/projects").await, 303);
    let replayed = format!("vexil_session={}", session.hash);
    assert_eq!(browser.status(&replayed, "/projects").await, 303);
    assert_eq!(browser.status(&cookie, "/projects").await, 200);
}

/// Signing out ends that session alone; revoking a key ends the rest of its sessions, and
/// none of them stays stored.
async fn signing_out_and_revoking_end_sessions(srv: &Server) {
    let created = srv
        .post("/api/v1/keys", &json!({"name": "w", "role": "writer"}))
        .await
        .ok(201)
        .json;
    let secret = created["secret"].as_str().unwrap();
    let id = created["id"].as_str().unwrap();
    let browser = Browser::new(srv);
    let (a, b) = (browser.sign_in(secret).await, browser.sign_in(secret).await);
    assert_ne!(a, b);
    assert_eq!(browser.status(&a, "/projects").await, 200);
    assert_eq!(browser.status(&b, "/projects").await, 200);

    browser.sign_out(&a).await;
    assert_eq!(browser.status(&a, "/projects").await, 303, "signed out");
    assert_eq!(
        browser.status(&b, "/projects").await,
        200,
        "the other session"
    );

    srv.delete(&format!("/api/v1/keys/{id}"), None)
        .await
        .ok(200);
    assert_eq!(browser.status(&b, "/projects").await, 303, "key revoked");
    let hashes = [hash_secret(&token_of(&a)), hash_secret(&token_of(&b))];
    let stored = read(srv, move |tx| {
        hashes
            .iter()
            .map(|h| tx.session_by_hash(h))
            .collect::<vexil_store::Result<Vec<_>>>()
    })
    .await;
    assert_eq!(stored, vec![None, None]);
}

/// The cohort download's Basic credentials, as `Authorization`.
fn basic(api_key: &str, secret: &str) -> String {
    use base64::Engine;
    let pair = format!("{api_key}:{secret}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// The status of a cohort download (of a cohort that does not exist: 404 once the
/// credentials pass, 401 when they do not).
async fn cohort_status(srv: &Server, api_key: &str, secret: &str) -> u16 {
    let request = srv
        .http
        .get(srv.url("/sdk/v1/cohort/none"))
        .header(header::AUTHORIZATION, basic(api_key, secret));
    srv.send(request).await.status
}

/// Polls `check` until it holds, failing with `what` after [`DEADLINE`].
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + DEADLINE;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The secret key appears once, in the creation's answer; the project and its history hold
/// only its hash, and the key still authenticates cohort downloads.
async fn the_database_holds_no_clear_project_secret(srv: &Server) {
    let created = srv
        .post("/api/v1/projects", &json!({"name": "Shop"}))
        .await
        .ok(201)
        .json;
    let secret = created["secret_key"].as_str().unwrap().to_owned();
    let api_key = created["api_key"].as_str().unwrap().to_owned();
    assert!(secret.len() >= 32, "{created}");
    let shown = srv.get("/api/v1/projects/shop").await.ok(200).json;
    assert_eq!(shown["api_key"], api_key.as_str());
    assert!(shown.get("secret_key").is_none(), "{shown}");

    let docs = read(srv, |tx| {
        let mut docs = vec![tx.get_project("shop")?.unwrap().doc];
        for h in tx.list_history("shop", "project", "shop", None, 100)? {
            docs.push(h.doc);
        }
        Ok(docs)
    })
    .await;
    assert_eq!(docs.len(), 2);
    for doc in docs {
        assert!(!doc.contains(&secret), "a clear secret is stored: {doc}");
        assert!(doc.contains(&hash_secret(&secret)), "{doc}");
    }

    eventually("the project's credentials to work", || async {
        cohort_status(srv, &api_key, &secret).await == 404
    })
    .await;
    assert_eq!(cohort_status(srv, &api_key, "wrong").await, 401);
}

/// `POST .../rotate-key` with `body`, based on the deployment's current version.
async fn rotate_deployment(srv: &Server, path: &str, body: Value) -> Resp {
    let version = srv.get(path).await.ok(200).etag();
    let request = srv
        .req(Method::POST, &format!("{path}/rotate-key"))
        .header("If-Match", format!("\"{version}\""))
        .json(&body);
    srv.send(request).await
}

async fn flags_status(srv: &Server, key: &str) -> u16 {
    srv.send(srv.sdk(Method::GET, "/sdk/v2/flags", key))
        .await
        .status
}

/// Without a grace period the old key fails on the very next request; with one, both keys
/// work until it ends, and the API says until when. Rotations are versioned writes of
/// writers, recorded in the history.
async fn rotating_a_deployment_key(srv: &Server) {
    let fx = srv.sdk_fixture("Shop").await;
    let path = format!("/api/v1/projects/{}/deployments/prod", fx.project);
    let unversioned = srv.post(&format!("{path}/rotate-key"), &json!({})).await;
    unversioned.err(428, "version_required", None);
    let too_long = rotate_deployment(srv, &path, json!({"grace_seconds": 604_801})).await;
    too_long.err(422, "grace_too_long", Some("grace_seconds"));

    let rotated = rotate_deployment(srv, &path, json!({})).await.ok(200);
    let first = rotated.json["api_key"].as_str().unwrap().to_owned();
    assert_ne!(first, fx.server);
    assert!(rotated.json.get("previous_key_expires_at").is_none());
    assert_eq!(
        flags_status(srv, &fx.server).await,
        401,
        "the old key at once"
    );
    assert_eq!(flags_status(srv, &first).await, 200, "the new key at once");

    let rotated = rotate_deployment(srv, &path, json!({"grace_seconds": 2}))
        .await
        .ok(200);
    let second = rotated.json["api_key"].as_str().unwrap().to_owned();
    let expires = rotated.json["previous_key_expires_at"].as_i64().unwrap();
    assert!(
        expires > now_ms() && expires <= now_ms() + 2_000,
        "{expires}"
    );
    assert_eq!(flags_status(srv, &first).await, 200, "the old key in grace");
    assert_eq!(flags_status(srv, &second).await, 200, "the new key");
    let listed = srv
        .get(&format!("/api/v1/projects/{}/deployments", fx.project))
        .await
        .ok(200)
        .json;
    let prod = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["key"] == "prod");
    assert_eq!(prod.unwrap()["previous_key_expires_at"], expires);
    eventually("the old key to stop after its grace period", || async {
        flags_status(srv, &first).await == 401
    })
    .await;
    assert!(now_ms() >= expires);
    assert_eq!(flags_status(srv, &second).await, 200);

    let version = rotated.etag();
    let (project, entry) = (fx.project.clone(), version);
    let history = read(srv, move |tx| {
        tx.get_history(&project, "deployment", "prod", entry)
    })
    .await
    .unwrap();
    assert_eq!(
        (history.action.as_str(), history.actor.as_str()),
        ("rotate_key", "admin")
    );

    let reader = srv
        .post("/api/v1/keys", &json!({"name": "r", "role": "reader"}))
        .await
        .ok(201)
        .json["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let request = srv
        .http
        .post(srv.url(&format!("{path}/rotate-key")))
        .bearer_auth(&reader)
        .header("If-Match", format!("\"{version}\""))
        .json(&json!({}));
    srv.send(request).await.err(403, "forbidden", None);
}

/// `POST /api/v1/projects/{project}/rotate-keys` with `body`, based on the current version.
async fn rotate_project(srv: &Server, project: &str, body: Value) -> Resp {
    let path = format!("/api/v1/projects/{project}");
    let version = srv.get(&path).await.ok(200).etag();
    let request = srv
        .req(Method::POST, &format!("{path}/rotate-keys"))
        .header("If-Match", format!("\"{version}\""))
        .json(&body);
    srv.send(request).await
}

/// A new secret key is shown once, in the rotation's answer; the old one works during the
/// grace period; a rotation without grace stops the old keys at once (and ends the grace of
/// the rotation before).
async fn rotating_project_keys(srv: &Server) {
    let fx = srv.sdk_fixture("Shop").await;
    eventually("the project's credentials to work", || async {
        cohort_status(srv, &fx.api_key, &fx.secret_key).await == 404
    })
    .await;
    rotate_project(srv, &fx.project, json!({})).await.err(
        422,
        "nothing_to_rotate",
        Some("api_key"),
    );

    let rotated = rotate_project(
        srv,
        &fx.project,
        json!({"secret_key": true, "grace_seconds": 60}),
    )
    .await
    .ok(200);
    let secret = rotated.json["secret_key"].as_str().unwrap().to_owned();
    assert_ne!(secret, fx.secret_key);
    assert_eq!(rotated.json["api_key"], fx.api_key.as_str());
    assert!(rotated.json["previous_key_expires_at"].as_i64().unwrap() > now_ms());
    assert_eq!(cohort_status(srv, &fx.api_key, &secret).await, 404, "new");
    assert_eq!(
        cohort_status(srv, &fx.api_key, &fx.secret_key).await,
        404,
        "in grace"
    );
    let shown = srv
        .get(&format!("/api/v1/projects/{}", fx.project))
        .await
        .ok(200)
        .json;
    assert!(shown.get("secret_key").is_none(), "{shown}");
    assert!(shown["previous_key_expires_at"].is_i64(), "{shown}");

    let rotated = rotate_project(
        srv,
        &fx.project,
        json!({"api_key": true, "secret_key": true}),
    )
    .await
    .ok(200);
    let (api_key, newest) = (
        rotated.json["api_key"].as_str().unwrap().to_owned(),
        rotated.json["secret_key"].as_str().unwrap().to_owned(),
    );
    assert!(rotated.json.get("previous_key_expires_at").is_none());
    assert_eq!(cohort_status(srv, &api_key, &newest).await, 404);
    assert_eq!(
        cohort_status(srv, &fx.api_key, &newest).await,
        401,
        "old API key"
    );
    assert_eq!(
        cohort_status(srv, &api_key, &secret).await,
        401,
        "old secret"
    );
    assert_eq!(
        cohort_status(srv, &api_key, &fx.secret_key).await,
        401,
        "grace ended"
    );
    let version = rotated.etag();
    let project = fx.project.clone();
    let history = read(srv, move |tx| {
        tx.get_history(&project, "project", &project, version)
    })
    .await
    .unwrap();
    assert_eq!(history.action, "rotate_keys");
    assert!(!history.doc.contains(&newest));

    // Both rotations are in the OpenAPI document, with their bodies.
    let doc = srv.get("/api/v1/openapi.json").await.ok(200).json;
    for (path, body) in [
        (
            "/api/v1/projects/{project}/rotate-keys",
            "RotateProjectKeys",
        ),
        (
            "/api/v1/projects/{project}/deployments/{deployment}/rotate-key",
            "RotateDeploymentKey",
        ),
    ] {
        let operation = &doc["paths"][path]["post"];
        let schema = &operation["requestBody"]["content"]["application/json"]["schema"]["$ref"];
        assert_eq!(
            schema,
            &format!("#/components/schemas/{body}"),
            "{operation}"
        );
        let properties = &doc["components"]["schemas"][body]["properties"];
        assert!(properties["grace_seconds"].is_object(), "{properties}");
    }
}

/// `vexil keys rotate-server-secret` works on the database beside running servers: within the
/// sync interval the console's forms carry tokens of the new secret. With a grace period a
/// form's token of the old secret still counts; without one it is refused.
async fn a_rotated_server_secret_reaches_the_running_server(srv: &Server) {
    let browser = Browser::new(srv);
    let rotate = |grace: u32| {
        let services = Services::new(srv.store());
        async move {
            tokio::task::spawn_blocking(move || {
                services.keys.rotate_server_secret(&Actor::cli(), grace)
            })
            .await
            .unwrap()
            .unwrap()
        }
    };

    let cookie = browser.sign_in(&srv.admin).await;
    let before = browser.csrf(&cookie).await;
    let rotation = rotate(60).await;
    assert!(rotation.previous_expires_at.is_some());
    eventually("the console to sign with the new secret", || async {
        browser.csrf(&cookie).await != before
    })
    .await;
    assert_eq!(
        browser.logout(&cookie, &before).await,
        303,
        "in the grace period"
    );

    let cookie = browser.sign_in(&srv.admin).await;
    let before = browser.csrf(&cookie).await;
    let rotation = rotate(0).await;
    assert_eq!(rotation.previous_expires_at, None);
    eventually("the console to sign with the new secret", || async {
        browser.csrf(&cookie).await != before
    })
    .await;
    assert_eq!(
        browser.logout(&cookie, &before).await,
        403,
        "the old secret stopped"
    );
    browser.sign_out(&cookie).await;

    let entry = rotation.version;
    let (history, secret) = read(srv, move |tx| {
        Ok((
            tx.get_history("", "server_secret", "server_secret", entry)?,
            tx.get_setting("server_secret")?,
        ))
    })
    .await;
    let (history, secret) = (history.unwrap(), secret.unwrap());
    assert_eq!((history.action.as_str(), entry), ("rotate", 2));
    assert!(!history.doc.contains(&secret), "{}", history.doc);
}

/// A store whose every call fails as an unreachable database does once switched off.
struct Switchable {
    inner: SqliteStore,
    down: AtomicBool,
}

impl Switchable {
    fn check(&self) -> vexil_store::Result<()> {
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable(
                "the database is switched off".into(),
            ))
        } else {
            Ok(())
        }
    }
}

impl Store for Switchable {
    fn write(
        &self,
        f: &mut dyn FnMut(&mut dyn Tx) -> vexil_store::Result<()>,
    ) -> vexil_store::Result<()> {
        self.check()?;
        self.inner.write(f)
    }

    fn read(
        &self,
        f: &mut dyn FnMut(&mut dyn Tx) -> vexil_store::Result<()>,
    ) -> vexil_store::Result<()> {
        self.check()?;
        self.inner.read(f)
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }
}

/// While the database is unreachable a wrong management key is refused (401) at once: keys
/// are checked against the cache, not the store. A good key still authenticates; what it asks
/// for then needs the store (503).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_key_is_refused_while_the_store_is_down() {
    let path = std::env::temp_dir().join(format!(
        "vexil-secrets-down-{}-{}.db",
        std::process::id(),
        now_ms()
    ));
    let opened = path.clone();
    let store = tokio::task::spawn_blocking(move || {
        Arc::new(Switchable {
            inner: SqliteStore::open(&opened).unwrap(),
            down: AtomicBool::new(false),
        })
    })
    .await
    .unwrap();
    let services = Services::new(store.clone());
    let bootstrap = services.clone();
    let admin = tokio::task::spawn_blocking(move || bootstrap.keys.bootstrap())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
        .secret;
    let mut config = ServerConfig::default();
    config.publisher.sync_interval = Duration::from_millis(50);
    let services_of_app = services.clone();
    let app = App::start(services, config).await.unwrap();
    let router = app.router();
    let call = |key: &str| {
        let request = Request::get("/api/v1/projects")
            .header(header::AUTHORIZATION, format!("Bearer {key}"))
            .body(Body::empty())
            .unwrap();
        let router = router.clone();
        async move { router.oneshot(request).await.unwrap().status() }
    };
    assert_eq!(call(&admin).await, StatusCode::OK);
    assert_eq!(call("vxm_wrong").await, StatusCode::UNAUTHORIZED);

    store.down.store(true, Ordering::SeqCst);
    assert_eq!(call("vxm_wrong").await, StatusCode::UNAUTHORIZED);
    assert_eq!(call("").await, StatusCode::UNAUTHORIZED);
    assert_eq!(call(&admin).await, StatusCode::SERVICE_UNAVAILABLE);
    // A failing reload (the server's own run every sync interval) keeps the last known keys.
    let reload = services_of_app.clone();
    let reloaded = tokio::task::spawn_blocking(move || reload.keys.refresh())
        .await
        .unwrap();
    assert!(reloaded.is_err());
    assert_eq!(call("vxm_wrong").await, StatusCode::UNAUTHORIZED);
    assert_eq!(call(&admin).await, StatusCode::SERVICE_UNAVAILABLE);

    store.down.store(false, Ordering::SeqCst);
    assert_eq!(call(&admin).await, StatusCode::OK);
    app.stop().await;
    drop(router);
    drop(app);
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.clone().into_os_string();
        file.push(suffix);
        let _ = std::fs::remove_file(file);
    }
}

/// A flag stream opened with a replaced key during its grace period ends when the grace period
/// does (checked at each keep-alive), not at the stream's maximum age; the old key then opens
/// none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_on_a_replaced_key_ends_with_its_grace_period() {
    let mut config = common::fast_config();
    config.keepalive = Duration::from_millis(100);
    let srv = Server::start_with(common::Backend::Sqlite, config)
        .await
        .unwrap();
    let fx = srv.sdk_fixture("Streams").await;
    let path = format!("/api/v1/projects/{}/deployments/prod", fx.project);
    rotate_deployment(&srv, &path, json!({"grace_seconds": 1}))
        .await
        .ok(200);
    let mut stream = srv
        .sdk(Method::GET, "/sdk/stream/v1/flags", &fx.server)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200, "the old key works during its grace");
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(_)) = stream.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "the stream outlived the grace period");
    let again = srv
        .sdk(Method::GET, "/sdk/stream/v1/flags", &fx.server)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 401);
    srv.assert_no_server_errors();
}
