//! Signed webhooks end to end: a receiver in the test gets `flag.created` and `flag.activated`
//! with the documents before and after and the actor, checks the signature, fails once and
//! sees the retry; the delivery log shows every attempt; the test endpoint delivers
//! `webhook.test`; a change made while the receiver is down arrives once it is up; a rotation
//! with a grace period signs with both secrets; and deliveries to loopback, private or
//! metadata addresses are refused unless an allowed network holds them.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[macro_use]
#[allow(
    unused_macros,
    reason = "retries need a server with millisecond backoff, which the macro's servers lack"
)]
mod common;

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use common::{fast_config, Backend, Server};
use reqwest::Method;
use serde_json::{json, Value};
use vexil_core::webhooks::{verify, RetrySchedule};

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
    json: Value,
}

#[derive(Default)]
struct Inbox {
    received: Vec<Received>,
    /// Statuses to answer with, in order; 200 once they run out.
    plan: VecDeque<u16>,
}

/// A webhook receiver on 127.0.0.1.
struct Receiver {
    addr: SocketAddr,
    inbox: Arc<Mutex<Inbox>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(addr: SocketAddr, inbox: Arc<Mutex<Inbox>>) -> Receiver {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(inbox.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { addr, inbox, task }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn received(&self) -> Vec<Received> {
        self.inbox.lock().unwrap().received.clone()
    }

    fn of_type(&self, event_type: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.json["type"] == event_type)
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(
    State(inbox): State<Arc<Mutex<Inbox>>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, [(&'static str, &'static str); 1], &'static str) {
    let mut inbox = inbox.lock().unwrap();
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    inbox.received.push(Received {
        headers,
        body,
        json,
    });
    let status = inbox.plan.pop_front().unwrap_or(200);
    // Closing each connection makes a stopped receiver unreachable at once.
    (
        StatusCode::from_u16(status).unwrap(),
        [("connection", "close")],
        if status == 200 { "thanks" } else { "try later" },
    )
}

/// Polls `check` until it gives `Some`, failing with `what` after ten seconds.
async fn until<T, F: Future<Output = Option<T>>>(what: &str, mut check: impl FnMut() -> F) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Fast retries; deliveries may reach the receivers on loopback (`--webhook-allow-network`).
fn config() -> vexil_server::ServerConfig {
    let mut config = guarded_config();
    config.webhooks.allowed_networks = vec!["127.0.0.0/8".parse().unwrap(), "::1".parse().unwrap()];
    config
}

/// Fast retries, and the default destinations: no loopback, private or metadata address.
fn guarded_config() -> vexil_server::ServerConfig {
    let mut config = fast_config();
    config.webhooks.poll = Duration::from_millis(20);
    config.webhooks.retry = RetrySchedule {
        delays: vec![Duration::from_millis(100); 50],
    };
    config
}

fn header<'a>(r: &'a Received, name: &str) -> &'a str {
    r.headers.get(name).unwrap().to_str().unwrap()
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Checks the headers and the signature of a delivery, as a receiver would.
fn assert_signed(r: &Received, secret: &str) {
    assert_eq!(header(r, "content-type"), "application/json");
    assert_eq!(
        header(r, "vexil-webhook-id"),
        r.json["id"].as_str().unwrap()
    );
    let timestamp: i64 = header(r, "vexil-webhook-timestamp").parse().unwrap();
    let signature = header(r, "vexil-signature");
    assert!(
        signature.starts_with(&format!("t={timestamp},v1=")),
        "{signature}"
    );
    assert!(
        verify(secret, signature, &r.body, now_secs(), 300),
        "signature checks"
    );
    assert!(!verify("whsec_wrong", signature, &r.body, now_secs(), 300));
}

async fn deliveries(srv: &Server, path: &str) -> Vec<Value> {
    let r = srv.get(&format!("{path}/deliveries")).await.ok(200);
    r.json.as_array().unwrap().clone()
}

/// A signed-in console session: its cookie and its CSRF token.
struct Console {
    http: reqwest::Client,
    cookie: String,
    csrf: String,
}

fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"_csrf\" value=\"").unwrap() + 20;
    html[at..at + 64].to_owned()
}

impl Console {
    async fn sign_in(srv: &Server) -> Console {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let r = http.get(srv.url("/login")).send().await.unwrap();
        let cookie = r.headers()["set-cookie"].to_str().unwrap();
        let cookie = cookie.split(';').next().unwrap().to_owned();
        let token = csrf_of(&r.text().await.unwrap());
        let r = http
            .post(srv.url("/login"))
            .header("Cookie", &cookie)
            .form(&[
                ("key", srv.admin.as_str()),
                ("next", "/projects"),
                ("_csrf", &token),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let cookie = r.headers()["set-cookie"].to_str().unwrap();
        let cookie = cookie.split(';').next().unwrap().to_owned();
        let mut console = Console {
            http,
            cookie,
            csrf: String::new(),
        };
        let (_, html) = console.get(srv, "/projects").await;
        console.csrf = csrf_of(&html);
        console
    }

    async fn get(&self, srv: &Server, path: &str) -> (StatusCode, String) {
        let r = self
            .http
            .get(srv.url(path))
            .header("Cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    }

    async fn post(
        &self,
        srv: &Server,
        path: &str,
        fields: &[(&str, &str)],
    ) -> (StatusCode, String) {
        let mut all = vec![("_csrf", self.csrf.as_str())];
        all.extend_from_slice(fields);
        let r = self
            .http
            .post(srv.url(path))
            .header("Cookie", &self.cookie)
            .form(&all)
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    }
}

/// The console's Webhooks section: the list with the last delivery and the log, a create form
/// whose answer shows the secret once, and the test button.
async fn console_section(srv: &Server, project: &str, hook_id: &str, receiver: &Receiver) {
    let console = Console::sign_in(srv).await;
    let page = format!("/projects/{project}");
    let (status, html) = console.get(srv, &page).await;
    assert_eq!(status, StatusCode::OK);
    for needle in [
        "section id=\"webhooks\"",
        &format!("data-webhook=\"{hook_id}\""),
        "class=\"last-delivery\"",
        "Send test event",
        "details class=\"delivery-log\"",
        "form id=\"new-webhook\"",
        "value=\"flag.activated\"",
    ] {
        assert!(html.contains(needle), "{needle} in {html}");
    }
    let (status, html) = console
        .post(
            srv,
            &format!("{page}/webhooks"),
            &[("url", "ftp://nope"), ("events", "*")],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    let url = receiver.url();
    let (status, html) = console
        .post(
            srv,
            &format!("{page}/webhooks"),
            &[
                ("url", url.as_str()),
                ("events", "cohort.*"),
                ("events", "deployment.created"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{html}");
    assert!(html.contains("id=\"webhook-secret\">whsec_"), "{html}");
    let (_, html) = console.get(srv, &page).await;
    assert!(!html.contains("whsec_"), "the secret is shown once");
    let tests_before = receiver.of_type("webhook.test").len();
    let (status, _) = console
        .post(srv, &format!("{page}/webhooks/{hook_id}/test"), &[])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    until("the console's test event", || async {
        (receiver.of_type("webhook.test").len() > tests_before).then_some(())
    })
    .await;

    // The rotation form: a grace period, the new secret shown once, the page saying until when
    // the replaced one signs.
    let listed = srv
        .get(&format!("/api/v1/projects/{project}/webhooks"))
        .await
        .ok(200);
    let made = listed.json.as_array().unwrap().iter();
    let made = made
        .filter(|h| h["events"] == json!(["cohort.*", "deployment.created"]))
        .collect::<Vec<_>>();
    let (made_id, made_version) = (
        made[0]["id"].as_str().unwrap(),
        made[0]["version"].as_i64().unwrap(),
    );
    let rotate = format!("{page}/webhooks/{made_id}/rotate-secret");
    let stale = (made_version + 1).to_string();
    let (status, html) = console
        .post(
            srv,
            &rotate,
            &[("version", stale.as_str()), ("grace_seconds", "3600")],
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{html}");
    let version = made_version.to_string();
    let (status, html) = console
        .post(
            srv,
            &rotate,
            &[("version", version.as_str()), ("grace_seconds", "3600")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("id=\"webhook-secret\">whsec_"), "{html}");
    assert!(html.contains("also signs every delivery until"), "{html}");
    let (_, html) = console.get(srv, &page).await;
    assert!(html.contains("class=\"hint previous-secret\""), "{html}");
    assert!(html.contains("form class=\"rotate-webhook\""), "{html}");
    assert!(!html.contains("whsec_"), "the secret is shown once");
}

async fn scenario(backend: Backend) {
    let Some(srv) = Server::start_with(backend, config()).await else {
        return;
    };
    let inbox = Arc::new(Mutex::new(Inbox::default()));
    inbox.lock().unwrap().plan.push_back(500);
    let receiver = Receiver::start("127.0.0.1:0".parse().unwrap(), inbox.clone()).await;
    let project = srv.create_project("Hooks").await;
    let hooks = format!("/api/v1/projects/{project}/webhooks");

    // Only http(s):// URLs with a host and known event types are taken.
    srv.post(&hooks, &json!({"url": "https:///x", "events": ["*"]}))
        .await
        .err(422, "invalid_url", Some("url"));
    srv.post(
        &hooks,
        &json!({"url": "ftp://example.com/x", "events": ["*"]}),
    )
    .await
    .err(422, "unsupported_scheme", Some("url"));
    srv.post(
        &hooks,
        &json!({"url": receiver.url(), "events": ["*"], "description": "a\u{0}b"}),
    )
    .await
    .err(422, "control_character", Some("description"));
    srv.post(
        &hooks,
        &json!({"url": receiver.url(), "events": ["flag.renamed"]}),
    )
    .await
    .err(422, "unknown_event_type", Some("events[0]"));

    let created = srv
        .post(
            &hooks,
            &json!({"url": receiver.url(), "description": "CI", "events": ["flag.created", "flag.activated"]}),
        )
        .await
        .ok(201);
    let secret = created.json["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    let id = created.json["id"].as_str().unwrap().to_owned();
    let hook = format!("{hooks}/{id}");

    // Readers see webhooks, never their secret, and cannot change them.
    let reader = srv
        .post("/api/v1/keys", &json!({"name": "viewer", "role": "reader"}))
        .await
        .ok(201);
    let reader = reader.json["secret"].as_str().unwrap().to_owned();
    let as_reader =
        |method: Method, path: &str| srv.http.request(method, srv.url(path)).bearer_auth(&reader);
    let seen = srv.send(as_reader(Method::GET, &hook)).await.ok(200);
    assert_eq!(seen.json["url"], receiver.url());
    assert!(!seen.text.contains(&secret) && seen.json.get("secret").is_none());
    let listed = srv.send(as_reader(Method::GET, &hooks)).await.ok(200);
    assert!(!listed.text.contains(&secret));
    srv.send(as_reader(Method::POST, &format!("{hook}/test")))
        .await
        .err(403, "forbidden", None);

    // A created flag: the first attempt gets 500, the retry 200, with the same event id.
    srv.flag_in(&project, "checkout", json!({})).await;
    let created_events = until("flag.created twice", || async {
        let got = receiver.of_type("flag.created");
        (got.len() >= 2).then_some(got)
    })
    .await;
    let (first, retry) = (&created_events[0], &created_events[1]);
    assert_eq!(first.body, retry.body, "a retry sends the same bytes");
    assert_signed(retry, &secret);
    let event = &retry.json;
    assert_eq!(event["project"], project.as_str());
    assert_eq!(event["before"], Value::Null);
    assert_eq!(event["after"]["key"], "checkout");
    assert!(event["actor"]["name"].is_string());
    assert_eq!(event["actor"]["role"], "admin");

    // Activation: the documents before and after.
    srv.action("checkout", "activate").await.ok(200);
    let activated = until("flag.activated", || async {
        receiver.of_type("flag.activated").into_iter().next()
    })
    .await;
    assert_signed(&activated, &secret);
    assert_eq!(activated.json["before"]["key"], "checkout");
    assert_ne!(
        activated.json["before"]["state"], activated.json["after"]["state"],
        "{}",
        activated.json
    );
    assert_eq!(activated.json["after"]["state"], "active");
    // An update is not in the filter: nothing arrives for it (checked after the next event).
    srv.update("checkout", &json!({"description": "changed"}))
        .await
        .ok(200);

    // The log: newest first, both attempts at the created event with their answers.
    let log = until("three attempts in the log", || async {
        let log = deliveries(&srv, &hook).await;
        (log.len() >= 3).then_some(log)
    })
    .await;
    assert_eq!(log[0]["event_type"], "flag.activated");
    assert_eq!(log[0]["status"], 200);
    let created_log: Vec<&Value> = log
        .iter()
        .filter(|d| d["event_type"] == "flag.created")
        .collect();
    assert_eq!(created_log.len(), 2, "{log:?}");
    assert_eq!(created_log[0]["attempt"], 2);
    assert_eq!(created_log[0]["status"], 200);
    assert_eq!(created_log[0]["ok"], true);
    assert_eq!(created_log[0]["response"], "thanks");
    assert_eq!(created_log[1]["attempt"], 1);
    assert_eq!(created_log[1]["status"], 500);
    assert_eq!(created_log[1]["ok"], false);
    assert_eq!(created_log[1]["response"], "try later");
    let shown = srv.get(&hook).await.ok(200);
    assert_eq!(shown.json["last_delivery"]["event_type"], "flag.activated");

    // The test event goes to this webhook whatever its filter.
    let queued = srv.post(&format!("{hook}/test"), &json!({})).await.ok(202);
    assert_eq!(queued.json["type"], "webhook.test");
    let test = until("webhook.test", || async {
        receiver.of_type("webhook.test").into_iter().next()
    })
    .await;
    assert_signed(&test, &secret);
    assert_eq!(test.json["id"], queued.json["event_id"]);
    assert_eq!(test.json["webhook"], id.as_str());
    assert!(
        receiver.of_type("flag.updated").is_empty(),
        "not subscribed"
    );
    console_section(&srv, &project, &id, &receiver).await;

    // While the receiver is down, a change waits in the outbox and arrives once it is up.
    let addr = receiver.addr;
    drop(receiver);
    srv.flag_in(&project, "search", json!({})).await;
    until("a failed attempt while down", || async {
        let log = deliveries(&srv, &hook).await;
        log.first()
            .filter(|d| d["event_type"] == "flag.created" && d.get("status").is_none())
            .map(|d| assert!(d["error"].is_string(), "{d}"))
    })
    .await;
    let receiver = Receiver::start(addr, inbox.clone()).await;
    let late = until("the change made while down", || async {
        receiver
            .of_type("flag.created")
            .into_iter()
            .find(|r| r.json["after"]["key"] == "search")
    })
    .await;
    assert_signed(&late, &secret);

    // Redelivery posts an event again, with its id; the console offers it in the log.
    let late_id = late.json["id"].as_str().unwrap().to_owned();
    let copies = || {
        receiver
            .received()
            .into_iter()
            .filter(|r| r.json["id"] == late_id.as_str())
            .count()
    };
    let before = copies();
    let queued = srv
        .post(&format!("{hook}/events/{late_id}/redeliver"), &json!({}))
        .await
        .ok(202);
    assert_eq!(queued.json["event_id"], late_id.as_str());
    until("the redelivered event", || async {
        (copies() > before).then_some(())
    })
    .await;
    srv.post(&format!("{hook}/events/evt_unknown/redeliver"), &json!({}))
        .await
        .err(404, "not_found", None);
    let console = Console::sign_in(&srv).await;
    let page = format!("/projects/{project}");
    let (_, html) = console.get(&srv, &page).await;
    assert!(html.contains("form class=\"redeliver\""), "{html}");
    let (status, _) = console
        .post(
            &srv,
            &format!("{page}/webhooks/{id}/events/{late_id}/redeliver"),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    until("the event redelivered from the console", || async {
        (copies() > before + 1).then_some(())
    })
    .await;

    // Rotation with a grace period: both secrets sign, the new one first, until it ends.
    let version = srv.get(&hook).await.ok(200).etag();
    let rotate = |version: i64, body: Option<Value>| {
        let mut request = srv.req(Method::POST, &format!("{hook}/rotate-secret"));
        if let Some(body) = body {
            request = request.json(&body);
        }
        srv.send(Server::with_version(request, Some(version)))
    };
    rotate(version, Some(json!({"grace_seconds": 604_801})))
        .await
        .err(422, "grace_too_long", Some("grace_seconds"));
    let graced = rotate(version, Some(json!({"grace_seconds": 3600})))
        .await
        .ok(200);
    let graced_secret = graced.json["secret"].as_str().unwrap().to_owned();
    let until_ms = graced.json["previous_secret_expires_at"].as_i64().unwrap();
    assert!(until_ms > now_secs() * 1000 + 3_500_000, "{}", graced.json);
    assert_eq!(
        srv.get(&hook).await.ok(200).json["previous_secret_expires_at"],
        until_ms
    );
    let next_test = || async {
        let tests_before = receiver.of_type("webhook.test").len();
        srv.post(&format!("{hook}/test"), &json!({})).await.ok(202);
        until("a test event", || async {
            let got = receiver.of_type("webhook.test");
            (got.len() > tests_before).then(|| got[got.len() - 1].clone())
        })
        .await
    };
    let during = next_test().await;
    assert_signed(&during, &graced_secret);
    assert_signed(&during, &secret);
    let signature = header(&during, "vexil-signature");
    assert_eq!(signature.matches("v1=").count(), 2, "{signature}");

    // Rotation without a body: the replaced secret stops at once, the grace period too.
    let rotated = rotate(version + 1, None).await.ok(200);
    assert!(rotated.json.get("previous_secret_expires_at").is_none());
    let new_secret = rotated.json["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, graced_secret);
    let latest = next_test().await;
    assert_signed(&latest, &new_secret);
    // The first attempt got a 500 and was retried; the others were delivered; none refused.
    let attempts = |outcome: &str| format!("vexil_webhook_attempts_total{{kind=\"{outcome}\"}}");
    assert!(metric(&srv, &attempts("retried")).await >= 1.0);
    assert!(metric(&srv, &attempts("delivered")).await >= 5.0);
    assert_eq!(metric(&srv, "vexil_webhook_refused_total").await, 0.0);
    for old in [&secret, &graced_secret] {
        let signature = header(&latest, "vexil-signature");
        assert!(!verify(old, signature, &latest.body, now_secs(), 300));
    }
    let version = version + 1;
    let patched = srv
        .patch(&hook, version + 1, &json!({"active": false}))
        .await
        .ok(200);
    assert_eq!(patched.json["active"], false);
    srv.delete(&hook, version)
        .await
        .err(409, "version_conflict", None);
    srv.delete(&hook, version + 2).await.ok(204);
    srv.get(&hook).await.err(404, "not_found", None);
    srv.assert_no_server_errors();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_deliver_signed_and_retry_sqlite() {
    scenario(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_deliver_signed_and_retry_postgres() {
    scenario(Backend::Postgres).await;
}

/// An `https://` receiver behind a certificate authority of its own (one made for the test),
/// which the server trusts through `WebhookOptions::extra_roots` (`vexil serve --webhook-ca`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_receivers_are_reached_through_their_ca() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let mut config = config();
    config
        .webhooks
        .extra_roots
        .push(certified.cert.pem().into_bytes());
    let srv = Server::start_with(Backend::Sqlite, config).await.unwrap();

    let key = rustls::pki_types::PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der());
    // The crypto provider comes from the crate features: ring, as for the server's client.
    let tls = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key.into())
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let inbox = Arc::new(Mutex::new(Inbox::default()));
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(inbox.clone());
    let server = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper_util::service::TowerToHyperService::new(app);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });

    let project = srv.create_project("Secure hooks").await;
    let url = format!("https://localhost:{port}/hook");
    let created = srv
        .post(
            &format!("/api/v1/projects/{project}/webhooks"),
            &json!({"url": url, "events": ["flag.created"]}),
        )
        .await
        .ok(201);
    let secret = created.json["secret"].as_str().unwrap().to_owned();
    srv.flag_in(&project, "over-tls", json!({})).await;
    let delivered = until("flag.created over https", || async {
        let inbox = inbox.lock().unwrap();
        inbox
            .received
            .iter()
            .find(|r| r.json["type"] == "flag.created")
            .cloned()
    })
    .await;
    assert_signed(&delivered, &secret);
    assert_eq!(delivered.json["after"]["key"], "over-tls");
    server.abort();
    srv.assert_no_server_errors();
}

/// With the default destinations, deliveries to loopback, link-local (metadata) and private
/// addresses are refused, whether the URL names the address or a host name resolves to it:
/// the receiver gets nothing and the delivery log says why and how to allow it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_to_internal_addresses_are_refused() {
    let srv = Server::start_with(Backend::Sqlite, guarded_config())
        .await
        .unwrap();
    let inbox = Arc::new(Mutex::new(Inbox::default()));
    let receiver = Receiver::start("127.0.0.1:0".parse().unwrap(), inbox.clone()).await;
    let port = receiver.addr.port();
    let project = srv.create_project("Guarded hooks").await;
    // The name first: the refusal counted then is the resolver's.
    for (url, why) in [
        (
            format!("http://localhost:{port}/hook"),
            "localhost resolves to",
        ),
        (
            format!("http://127.0.0.1:{port}/hook"),
            "127.0.0.1 is a loopback address",
        ),
        (
            format!("http://[::1]:{port}/hook"),
            "::1 is a loopback address",
        ),
        (
            "http://169.254.169.254/latest/meta-data".to_owned(),
            "link-local",
        ),
        ("http://10.20.30.40/hook".to_owned(), "a private address"),
    ] {
        let created = srv
            .post(
                &format!("/api/v1/projects/{project}/webhooks"),
                &json!({"url": url, "events": ["*"]}),
            )
            .await
            .ok(201);
        let hook = format!(
            "/api/v1/projects/{project}/webhooks/{}",
            created.json["id"].as_str().unwrap()
        );
        srv.post(&format!("{hook}/test"), &json!({})).await.ok(202);
        let error = until("a refused attempt", || async {
            let log = deliveries(&srv, &hook).await;
            log.first()
                .and_then(|d| d["error"].as_str().map(str::to_owned))
        })
        .await;
        assert!(error.contains("refused"), "{url}: {error}");
        assert!(error.contains(why), "{url}: {error}");
        assert!(error.contains("--webhook-allow-network"), "{error}");
        until("the refusal counted", || async {
            (metric(&srv, "vexil_webhook_refused_total").await >= 1.0).then_some(())
        })
        .await;
    }
    assert!(
        inbox.lock().unwrap().received.is_empty(),
        "nothing reached the receiver"
    );
    // Each refusal is counted, whether the URL wrote the address or the resolver refused it.
    let refused = metric(&srv, "vexil_webhook_refused_total").await;
    assert!(refused >= 5.0, "{refused}");
    assert_eq!(
        metric(&srv, "vexil_webhook_attempts_total{kind=\"delivered\"}").await,
        0.0
    );
    srv.assert_no_server_errors();
}

/// The value of one sample on `/metrics` (0 when absent).
async fn metric(srv: &Server, sample: &str) -> f64 {
    let text = srv
        .send(srv.req(Method::GET, "/metrics"))
        .await
        .ok(200)
        .text;
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}
