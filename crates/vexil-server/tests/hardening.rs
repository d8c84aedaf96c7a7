//! The hardening of issue 10, in process (`router.oneshot`): console bodies limited to what
//! each form needs and refused without being read past the limit, the page to go back to after
//! signing in kept on this server, `Secure` cookies behind an HTTPS public URL, the throttle of
//! wrong management keys per client (JSON API and console sign-in together), credentials hidden
//! from readers, and the last admin key kept.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use serde_json::{json, Value};
use tower::ServiceExt;
use vexil_core::{Actor, Role, Services};
use vexil_server::{App, ServerConfig};
use vexil_store::SqliteStore;

/// An application over a fresh SQLite file, served in process.
struct Harness {
    app: App,
    router: Router,
    services: Services,
    /// The bootstrap admin key's secret.
    admin: String,
    path: PathBuf,
}

/// An answer, read whole.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    fn header(&self, name: header::HeaderName) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }

    /// The hidden CSRF field of the page.
    fn csrf(&self) -> String {
        let at = self.text.find("name=\"_csrf\" value=\"").unwrap() + 20;
        self.text[at..at + 64].to_owned()
    }
}

/// A client's address, as the server hands it to handlers.
fn from(ip: [u8; 4]) -> Option<SocketAddr> {
    Some(SocketAddr::from((ip, 40_000)))
}

impl Harness {
    async fn start(config: ServerConfig) -> Harness {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "vexil-hardening-{}-{}.db",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let opened = path.clone();
        let (services, admin) = tokio::task::spawn_blocking(move || {
            let services = Services::new(Arc::new(SqliteStore::open(&opened).unwrap()));
            let admin = services.keys.bootstrap().unwrap().unwrap().secret;
            (services, admin)
        })
        .await
        .unwrap();
        let app = App::start(services.clone(), config).await.unwrap();
        let router = app.router();
        Harness {
            app,
            router,
            services,
            admin,
            path,
        }
    }

    async fn stop(self) {
        self.app.stop().await;
        drop(self.router);
        drop(self.services);
        for suffix in ["", "-wal", "-shm"] {
            let mut file = self.path.clone().into_os_string();
            file.push(suffix);
            let _ = std::fs::remove_file(file);
        }
    }

    /// A management key with `role`; its secret.
    async fn key(&self, name: &str, role: Role) -> String {
        let services = self.services.clone();
        let name = name.to_owned();
        tokio::task::spawn_blocking(move || services.keys.create(&Actor::cli(), &name, role))
            .await
            .unwrap()
            .unwrap()
            .secret
    }

    async fn send(&self, mut request: Request<Body>, client: Option<SocketAddr>) -> Answer {
        if let Some(addr) = client {
            request.extensions_mut().insert(ConnectInfo(addr));
        }
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        Answer {
            status,
            headers,
            text: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    /// A JSON API call with `key` (none: no `Authorization`).
    async fn api(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
        client: Option<SocketAddr>,
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(key) = key {
            request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
        }
        let request = match body {
            Some(body) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        };
        self.send(request.unwrap(), client).await
    }

    /// `GET /login?...`, then `POST /login` with its cookie and token: the answer to the POST.
    async fn sign_in(
        &self,
        key: &str,
        next: &str,
        headers: &[(&str, &str)],
        client: Option<SocketAddr>,
    ) -> Answer {
        let page = self
            .send(Request::get("/login").body(Body::empty()).unwrap(), client)
            .await;
        let cookie = page.header(header::SET_COOKIE).unwrap();
        let cookie = cookie.split(';').next().unwrap().to_owned();
        let form =
            serde_urlencoded::to_string([("key", key), ("next", next), ("_csrf", &page.csrf())])
                .unwrap();
        let mut request = Request::post("/login")
            .header(header::COOKIE, cookie)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request.body(Body::from(form)).unwrap(), client)
            .await
    }

    /// A signed-in browser of `key`: its session cookie and a page's CSRF token.
    async fn session(&self, key: &str) -> (String, String) {
        let signed_in = self.sign_in(key, "/projects", &[], None).await;
        assert_eq!(
            signed_in.status,
            StatusCode::SEE_OTHER,
            "{}",
            signed_in.text
        );
        let cookie = signed_in.header(header::SET_COOKIE).unwrap();
        let cookie = cookie.split(';').next().unwrap().to_owned();
        let page = self.page(&cookie, "/projects").await;
        (cookie, page.csrf())
    }

    async fn page(&self, cookie: &str, path: &str) -> Answer {
        let request = Request::get(path)
            .header(header::COOKIE, cookie)
            .body(Body::empty())
            .unwrap();
        self.send(request, None).await
    }
}

/// A form body of `size` bytes or more, made in 64 KiB chunks only as it is read; `read`
/// counts the bytes handed out.
fn streamed_form(fields: &str, size: usize, read: Arc<AtomicUsize>) -> Body {
    const CHUNK: usize = 64 << 10;
    let head = Bytes::from(format!("{fields}&pad="));
    let chunks = futures_util::stream::unfold(0usize, move |sent| {
        let read = read.clone();
        let head = head.clone();
        async move {
            if sent >= size {
                return None;
            }
            let chunk = if sent == 0 {
                head
            } else {
                Bytes::from(vec![b'a'; CHUNK])
            };
            read.fetch_add(chunk.len(), Ordering::SeqCst);
            Some((Ok::<_, std::io::Error>(chunk.clone()), sent + chunk.len()))
        }
    });
    Body::from_stream(chunks)
}

/// What is sent, where, in which session (cookie, CSRF token), the body's size and declared
/// length, the answer expected and the most bytes the server may read.
type BodyCase<'a> = (
    &'a str,
    &'a str,
    Option<(&'a str, &'a str)>,
    usize,
    Option<usize>,
    StatusCode,
    usize,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_bodies_are_limited_to_what_each_form_needs() {
    let h = Harness::start(ServerConfig::default()).await;
    let reader = h.key("reader", Role::Reader).await;
    let (reader_cookie, reader_csrf) = h.session(&reader).await;
    let (admin_cookie, admin_csrf) = h.session(&h.admin.clone()).await;
    let project = h
        .api(
            Method::POST,
            "/api/v1/projects",
            Some(&h.admin),
            Some(json!({"name": "Shop"})),
            None,
        )
        .await;
    assert_eq!(project.status, StatusCode::CREATED, "{}", project.text);

    const MIB: usize = 1 << 20;
    const CHUNK: usize = 64 << 10;
    let cases: Vec<BodyCase> = vec![
        (
            "a reader's 200 MiB sign-out",
            "/logout",
            Some((&reader_cookie, &reader_csrf)),
            200 * MIB,
            None,
            StatusCode::PAYLOAD_TOO_LARGE,
            (16 << 10) + CHUNK,
        ),
        (
            "a declared 200 MiB sign-out",
            "/logout",
            Some((&reader_cookie, &reader_csrf)),
            200 * MIB,
            Some(200 * MIB),
            StatusCode::PAYLOAD_TOO_LARGE,
            0,
        ),
        (
            "a 1 MiB sign-in",
            "/login",
            None,
            MIB,
            None,
            StatusCode::PAYLOAD_TOO_LARGE,
            (16 << 10) + CHUNK,
        ),
        (
            "an admin's 2 MiB project form",
            "/projects",
            Some((&admin_cookie, &admin_csrf)),
            2 * MIB,
            None,
            StatusCode::PAYLOAD_TOO_LARGE,
            MIB + CHUNK,
        ),
        (
            "a reader's 2 MiB cohort upload",
            "/projects/shop/cohorts",
            Some((&reader_cookie, &reader_csrf)),
            2 * MIB,
            None,
            StatusCode::PAYLOAD_TOO_LARGE,
            MIB + CHUNK,
        ),
        (
            "an admin's 900 KiB project form, read and refused for its fields",
            "/projects",
            Some((&admin_cookie, &admin_csrf)),
            900 << 10,
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
            (900 << 10) + CHUNK,
        ),
        (
            "a reader's small cohort upload",
            "/projects/shop/cohorts",
            Some((&reader_cookie, &reader_csrf)),
            1,
            None,
            StatusCode::FORBIDDEN,
            256,
        ),
        (
            "an admin's 2 MiB cohort upload",
            "/projects/shop/cohorts",
            Some((&admin_cookie, &admin_csrf)),
            2 * MIB,
            None,
            StatusCode::SEE_OTHER,
            2 * MIB + CHUNK,
        ),
    ];
    let mut failures = Vec::new();
    for (what, path, session, size, declared, status, most) in cases {
        let read = Arc::new(AtomicUsize::new(0));
        let fields = match session {
            Some((_, csrf)) => format!("_csrf={csrf}&id=big&members=u1"),
            None => "key=x".to_owned(),
        };
        let mut request =
            Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some((cookie, _)) = session {
            request = request.header(header::COOKIE, cookie);
        }
        if let Some(length) = declared {
            request = request.header(header::CONTENT_LENGTH, length);
        }
        let body = streamed_form(&fields, size, read.clone());
        let answer = h.send(request.body(body).unwrap(), None).await;
        let read = read.load(Ordering::SeqCst);
        if answer.status != status || read > most {
            failures.push(format!(
                "{what}: {} after reading {read} bytes, expected {status} after at most {most}",
                answer.status
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_goes_back_only_to_paths_on_this_server() {
    let h = Harness::start(ServerConfig::default()).await;
    // (next as sent, where the sign-in goes)
    let cases = [
        ("/flags/x?project=p", "/flags/x?project=p"),
        ("/projects", "/projects"),
        ("/\t/evil.example/x", "/flags"),
        ("/\r\n/evil.example", "/flags"),
        ("/flags\r\nSet-Cookie: a=b", "/flags"),
        ("//evil.example", "/flags"),
        ("/\\evil.example", "/flags"),
        ("https://evil.example", "/flags"),
        ("/évil", "/flags"),
    ];
    let mut failures = Vec::new();
    for (next, expected) in cases {
        let answer = h.sign_in(&h.admin, next, &[], None).await;
        let location = answer.header(header::LOCATION);
        if answer.status != StatusCode::SEE_OTHER || location.as_deref() != Some(expected) {
            failures.push(format!(
                "next {next:?}: {} to {location:?}, expected 303 to {expected}",
                answer.status
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    // The form carries only a safe `next` too.
    let page = h
        .send(
            Request::get("/login?next=/%09/evil.example/x")
                .body(Body::empty())
                .unwrap(),
            None,
        )
        .await;
    assert!(
        page.text.contains("name=\"next\" value=\"/flags\""),
        "{}",
        page.text
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookies_are_secure_when_the_server_is_reached_over_https() {
    // (public URL, X-Forwarded-Proto, whether cookies carry Secure)
    let cases = [
        (None, None, false),
        (Some("http://vexil.example.com"), None, false),
        (Some("https://vexil.example.com"), None, true),
        (Some("HTTPS://vexil.example.com"), None, true),
        (None, Some("https"), true),
        (Some("http://vexil.example.com"), Some("http"), false),
    ];
    let mut failures = Vec::new();
    for (public_url, proto, secure) in cases {
        let config = ServerConfig {
            public_url: public_url.map(str::to_owned),
            ..ServerConfig::default()
        };
        let h = Harness::start(config).await;
        let headers: Vec<(&str, &str)> = proto
            .map(|p| ("x-forwarded-proto", p))
            .into_iter()
            .collect();
        let answer = h.sign_in(&h.admin, "/flags", &headers, None).await;
        let cookie = answer.header(header::SET_COOKIE).unwrap_or_default();
        if answer.status != StatusCode::SEE_OTHER || cookie.contains("; Secure") != secure {
            failures.push(format!(
                "{public_url:?} {proto:?}: {} with {cookie:?}, expected Secure: {secure}",
                answer.status
            ));
        }
        h.stop().await;
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_keys_are_throttled_per_client_on_the_api_and_the_console() {
    let h = Harness::start(ServerConfig::default()).await;
    let (a, b, c) = (
        from([192, 0, 2, 1]),
        from([192, 0, 2, 2]),
        from([192, 0, 2, 3]),
    );
    let get = |key: &'static str, client| {
        let h = &h;
        async move {
            let key = if key == "admin" {
                h.admin.as_str()
            } else {
                key
            };
            h.api(Method::GET, "/api/v1/projects", Some(key), None, client)
                .await
        }
    };
    // Ten wrong keys a minute are answered; then every attempt waits, a good key too.
    for _ in 0..10 {
        assert_eq!(get("vxm_wrong", a).await.status, StatusCode::UNAUTHORIZED);
    }
    for key in ["vxm_wrong", "admin"] {
        let refused = get(key, a).await;
        assert_eq!(
            refused.status,
            StatusCode::TOO_MANY_REQUESTS,
            "{}",
            refused.text
        );
        let body = refused.json();
        assert_eq!(body["code"], "too_many_attempts");
        assert_eq!(body["field"], "Authorization");
        assert!(
            body["message"].as_str().unwrap().contains("try again"),
            "{body}"
        );
        let retry: u64 = refused
            .header(header::RETRY_AFTER)
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&retry), "Retry-After {retry}");
    }
    // Other clients, and requests without a key, are not held back.
    assert_eq!(get("admin", b).await.status, StatusCode::OK);
    assert_eq!(get("vxm_wrong", b).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(get("admin", None).await.status, StatusCode::OK);
    let anonymous = h.api(Method::GET, "/api/v1/projects", None, None, a).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);

    // The console's sign-in shares the count: client a is refused there too, with the form.
    let refused = h.sign_in(&h.admin, "/flags", &[], a).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.header(header::RETRY_AFTER).is_some());
    assert!(
        refused.text.contains("form id=\"login\""),
        "{}",
        refused.text
    );
    assert!(refused.text.contains("try again in"), "{}", refused.text);
    assert!(refused
        .header(header::SET_COOKIE)
        .is_some_and(|c| c.starts_with("vexil_login=")));
    // Wrong keys on the console count for the API.
    for _ in 0..10 {
        let wrong = h.sign_in("vxm_wrong", "/flags", &[], c).await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{}", wrong.text);
    }
    assert_eq!(
        h.sign_in("vxm_wrong", "/flags", &[], c).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(get("admin", c).await.status, StatusCode::TOO_MANY_REQUESTS);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_see_no_project_keys_or_sdk_keys() {
    let h = Harness::start(ServerConfig::default()).await;
    let admin = h.admin.clone();
    let reader = h.key("reader", Role::Reader).await;
    let writer = h.key("writer", Role::Writer).await;
    let created = h
        .api(
            Method::POST,
            "/api/v1/projects",
            Some(&admin),
            Some(json!({"name": "Shop"})),
            None,
        )
        .await;
    let project = created.json();
    let deployment = h
        .api(
            Method::POST,
            "/api/v1/projects/shop/deployments",
            Some(&admin),
            Some(json!({"label": "Production", "type": "server"})),
            None,
        )
        .await
        .json();
    let secrets = [
        project["api_key"].as_str().unwrap().to_owned(),
        project["secret_key"].as_str().unwrap().to_owned(),
        deployment["api_key"].as_str().unwrap().to_owned(),
    ];

    // (path, the JSON path of the object whose keys are checked, the fields that are keys)
    let reads: [(&str, &str, &[&str]); 4] = [
        ("/api/v1/projects", "/0", &["api_key"]),
        ("/api/v1/projects/shop", "", &["api_key"]),
        ("/api/v1/projects/shop/deployments", "/0", &["api_key"]),
        (
            "/api/v1/projects/shop/deployments/production",
            "",
            &["api_key"],
        ),
    ];
    let mut failures = Vec::new();
    for (path, at, fields) in reads {
        for (who, key, shown) in [
            ("reader", &reader, false),
            ("writer", &writer, true),
            ("admin", &admin, true),
        ] {
            let answer = h.api(Method::GET, path, Some(key), None, None).await;
            let json = answer.json();
            let object = json.pointer(at).unwrap_or(&Value::Null);
            assert!(
                object.get("key").is_some(),
                "{path} as {who}: {}",
                answer.text
            );
            for field in fields {
                if object.get(*field).is_some() != shown {
                    failures.push(format!("{path} as {who}: {field} shown: {}", !shown));
                }
            }
            if !shown && secrets.iter().any(|s| answer.text.contains(s.as_str())) {
                failures.push(format!("{path} as {who} holds a key: {}", answer.text));
            }
            // The secret key is stored as a hash: no read shows it to anyone.
            if object.get("secret_key").is_some() || answer.text.contains(secrets[1].as_str()) {
                failures.push(format!("{path} as {who} shows the secret key"));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");

    // The console follows the same views.
    let (cookie, _) = h.session(&reader).await;
    let page = h.page(&cookie, "/projects/shop").await;
    assert_eq!(page.status, StatusCode::OK);
    for secret in &secrets {
        assert!(
            !page.text.contains(secret.as_str()),
            "the reader's page shows {secret}"
        );
    }
    assert!(
        page.text.contains("shown to writers and admins"),
        "{}",
        page.text
    );
    let (cookie, _) = h.session(&writer).await;
    let page = h.page(&cookie, "/projects/shop").await;
    for (secret, shown) in secrets.iter().zip([true, false, true]) {
        assert_eq!(
            page.text.contains(secret.as_str()),
            shown,
            "the writer's page and {secret}"
        );
    }

    // The document says the keys may be absent, under the schemas' usual names.
    let doc = h
        .api(Method::GET, "/api/v1/openapi.json", None, None, None)
        .await
        .json();
    for (schema, field) in [
        ("Project", "api_key"),
        ("Project", "secret_key"),
        ("Deployment", "api_key"),
    ] {
        let schema = &doc["components"]["schemas"][schema];
        assert!(schema["properties"].get(field).is_some(), "{schema}");
        let required = schema["required"].as_array().unwrap();
        assert!(
            !required.contains(&json!(field)),
            "{field} is optional: {schema}"
        );
        assert!(required.contains(&json!("key")), "{schema}");
    }
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    assert!(
        !schemas.contains_key("ProjectView") && !schemas.contains_key("DeploymentView"),
        "{:?}",
        schemas.keys().collect::<Vec<_>>()
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_active_admin_key_cannot_be_revoked() {
    let h = Harness::start(ServerConfig::default()).await;
    let first = h.admin.clone();
    let keys = h
        .api(Method::GET, "/api/v1/keys", Some(&first), None, None)
        .await
        .json();
    let first_id = keys[0]["id"].as_str().unwrap().to_owned();
    let refused = h
        .api(
            Method::DELETE,
            &format!("/api/v1/keys/{first_id}"),
            Some(&first),
            None,
            None,
        )
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    let body = refused.json();
    assert_eq!(body["code"], "last_admin_key");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("\"admin\"") && message.contains(&first_id),
        "{message}"
    );

    // With a second admin key the first may go; then the second is the last.
    let second = h
        .api(
            Method::POST,
            "/api/v1/keys",
            Some(&first),
            Some(json!({"name": "admin-2", "role": "admin"})),
            None,
        )
        .await
        .json();
    let (second_id, second) = (
        second["id"].as_str().unwrap().to_owned(),
        second["secret"].as_str().unwrap().to_owned(),
    );
    let revoked = h
        .api(
            Method::DELETE,
            &format!("/api/v1/keys/{first_id}"),
            Some(&second),
            None,
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.text);
    let refused = h
        .api(
            Method::DELETE,
            "/api/v1/keys/admin-2",
            Some(&second),
            None,
            None,
        )
        .await;
    assert_eq!(refused.json()["code"], "last_admin_key", "{}", refused.text);
    assert!(refused.text.contains(&second_id), "{}", refused.text);
    // Other keys are revoked as before.
    h.key("ci", Role::Writer).await;
    let writer = h
        .api(Method::DELETE, "/api/v1/keys/ci", Some(&second), None, None)
        .await;
    assert_eq!(writer.status, StatusCode::OK, "{}", writer.text);
    h.stop().await;
}
