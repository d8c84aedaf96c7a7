//! Console sessions: sign-in with a management key (throttled per client with the JSON API's
//! key check), a cookie holding a random session token that the store knows only by its hash
//! (see `vexil_core::service::sessions`), CSRF tokens derived from the session with the server
//! secret, and the same-origin path to go back to after signing in.

use std::sync::{Arc, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{FromRequestParts, OptionalFromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use hmac::{Hmac, KeyInit, Mac};
use maud::html;
use sha2::Sha256;
use vexil_core::service::ServerSecrets;
use vexil_core::Actor;

use super::{call, form, layout, ConsoleState, Fields};
use crate::error::ApiError;
use crate::throttle::TooManyAttempts;

/// The session cookie's name.
pub(crate) const COOKIE: &str = "vexil_session";
/// The cookie that ties the sign-in form to the browser that loaded it.
const LOGIN_COOKIE: &str = "vexil_login";
/// How long a session lasts.
const TTL_MS: i64 = 12 * 3_600_000;

/// A signed-in user. `Debug` does not print the token.
#[derive(Clone)]
pub(crate) struct Session {
    pub actor: Actor,
    /// The session token, the cookie's value; the CSRF token is derived from it.
    token: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("actor", &self.actor)
            .field("token", &"***")
            .finish()
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn mac(secret: &[u8], parts: &[&str]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            mac.update(b".");
        }
        mac.update(part.as_bytes());
    }
    vexil_core::keys::hex(&mac.finalize().into_bytes())
}

/// Compares without stopping at the first difference.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The server secrets in force.
fn secrets(console: &ConsoleState) -> Arc<ServerSecrets> {
    console
        .secrets
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

/// The token of `parts` made with the current server secret.
fn sign(console: &ConsoleState, parts: &[&str]) -> String {
    mac(secrets(console).current().as_bytes(), parts)
}

/// Whether `token` is the token of `parts` made with a server secret still in force (the
/// current one, or the previous one during its rotation's grace period).
fn verify(console: &ConsoleState, parts: &[&str], token: &str) -> bool {
    !token.is_empty()
        && secrets(console)
            .accepted(now_ms())
            .any(|secret| same(&mac(secret.as_bytes(), parts), token))
}

impl Session {
    /// The token every form of this session carries. A CSRF token is worthless without the
    /// session cookie, so deriving it from the stored server secret gives nothing away.
    pub fn csrf(&self, console: &ConsoleState) -> String {
        sign(console, &["csrf", &self.token])
    }

    pub fn check_csrf(&self, console: &ConsoleState, token: &str) -> bool {
        verify(console, &["csrf", &self.token], token)
    }
}

fn named_cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(name)?.strip_prefix('='))
}

fn cookie_from(headers: &HeaderMap) -> Option<&str> {
    named_cookie(headers, COOKIE)
}

async fn session_of(parts: &Parts, console: &ConsoleState) -> Option<Session> {
    let token = cookie_from(&parts.headers)?.to_owned();
    let services = console.services.clone();
    let looked_up = token.clone();
    let actor = call(move || services.keys.session(&looked_up)).await.ok()?;
    Some(Session { actor, token })
}

impl FromRequestParts<ConsoleState> for Session {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        console: &ConsoleState,
    ) -> Result<Self, Response> {
        match session_of(parts, console).await {
            Some(s) => Ok(s),
            None => {
                let next = parts
                    .uri
                    .path_and_query()
                    .map_or("/flags", |p| p.as_str())
                    .to_owned();
                let to = format!("/login?next={}", form::encode(&next));
                Err(Redirect::to(&to).into_response())
            }
        }
    }
}

impl OptionalFromRequestParts<ConsoleState> for Session {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        console: &ConsoleState,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(session_of(parts, console).await)
    }
}

/// Where to go after signing in: a path on this server, else `/flags`.
fn next_path(next: Option<&str>) -> String {
    match next {
        Some(n) if is_local_path(n) => n.to_owned(),
        _ => "/flags".to_owned(),
    }
}

/// Whether `next` is a path on this server: one `/`, then visible ASCII without `\`. Browsers
/// drop tabs and line breaks from a URL and read `\` as `/`, so `/<tab>/evil.example` and
/// `/\evil.example` would leave the site like `//evil.example` does. The paths the console
/// itself sends here are percent-encoded, hence plain ASCII; keeping to it also keeps the
/// value a valid `Location` header.
fn is_local_path(next: &str) -> bool {
    let bytes = next.as_bytes();
    bytes.first() == Some(&b'/')
        && !matches!(bytes.get(1), Some(b'/' | b'\\'))
        && bytes.iter().all(|&b| b.is_ascii_graphic() && b != b'\\')
}

/// Whether cookies get `Secure`: the server's public URL is HTTPS, or the proxy in front says
/// this request came over HTTPS.
fn secure(console: &ConsoleState, headers: &HeaderMap) -> bool {
    console.secure_cookies
        || headers
            .get("x-forwarded-proto")
            .and_then(|p| p.to_str().ok())
            .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
}

/// `; Secure` when cookies need it.
fn secure_attribute(secure: bool) -> &'static str {
    if secure {
        "; Secure"
    } else {
        ""
    }
}

fn login_form(next: &str, token: &str, error: Option<&str>) -> maud::Markup {
    layout::bare(
        "Sign in",
        html! {
            main.narrow {
                h1 { "Sign in to Vexil" }
                @if let Some(e) = error { p.error role="alert" { (e) } }
                form #login method="post" action="/login" {
                    input type="hidden" name="next" value=(next);
                    input type="hidden" name="_csrf" value=(token);
                    label { "Management key"
                        input type="password" name="key" autocomplete="current-password" required autofocus;
                    }
                    p.hint { "The key printed by the first start of " code { "vexil serve" }
                        ", or one made with " code { "vexil keys create" } "." }
                    button type="submit" { "Sign in" }
                }
            }
        },
    )
}

/// A sign-in form with its token, and the cookie the token is checked against: a form posted
/// from another site has neither (login CSRF).
fn login_response(
    console: &ConsoleState,
    secure: bool,
    status: StatusCode,
    next: &str,
    error: Option<&str>,
) -> Response {
    let nonce = vexil_core::keys::random_base62(24).unwrap_or_default();
    let token = sign(console, &["login", &nonce]);
    let mut response = super::html(status, login_form(next, &token, error));
    let cookie = format!(
        "{LOGIN_COOKIE}={nonce}; Path=/login; HttpOnly; SameSite=Strict; Max-Age=3600{}",
        secure_attribute(secure)
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

/// The sign-in form again, refused with 429 and `Retry-After` (the JSON API's answer, as a
/// page).
fn throttled(
    console: &ConsoleState,
    secure: bool,
    next: &str,
    refused: TooManyAttempts,
) -> Response {
    let refused = ApiError::from(refused);
    let mut response = login_response(
        console,
        secure,
        refused.status,
        next,
        Some(&refused.body.message),
    );
    if let Some(secs) = refused.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// `GET /login`.
pub(crate) async fn login_page(
    State(console): State<ConsoleState>,
    headers: HeaderMap,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    let next = query
        .as_deref()
        .and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "next")
                .map(|(_, v)| v.into_owned())
        })
        .map_or_else(|| "/flags".to_owned(), |n| next_path(Some(&n)));
    login_response(
        &console,
        secure(&console, &headers),
        StatusCode::OK,
        &next,
        None,
    )
}

/// `POST /login`: checks the key and sets the session cookie. A client that gave wrong keys
/// too often is refused (429) before its key is looked at, even a good one.
pub(crate) async fn login(State(console): State<ConsoleState>, request: Request) -> Response {
    let secure = secure(&console, request.headers());
    let client = console
        .throttle
        .client(request.extensions(), request.headers());
    let nonce = named_cookie(request.headers(), LOGIN_COOKIE).map(str::to_owned);
    let body = match super::read_body(request, super::SESSION_FORM_LIMIT).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let fields = Fields::parse(&body);
    let next = next_path(fields.get("next"));
    if let Err(refused) = console.throttle.check(client) {
        return throttled(&console, secure, &next, refused);
    }
    let token = fields.get("_csrf").unwrap_or("");
    let token_ok = nonce.is_some_and(|n| verify(&console, &["login", &n], token));
    if !token_ok {
        let why = "The sign-in form expired or came from elsewhere; please sign in again.";
        return login_response(&console, secure, StatusCode::FORBIDDEN, &next, Some(why));
    }
    let key = fields.text("key").unwrap_or_default();
    let services = console.services.clone();
    match call(move || services.keys.start_session(&key, TTL_MS)).await {
        Ok(session) => {
            let cookie = format!(
                "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
                session.token,
                TTL_MS / 1000,
                secure_attribute(secure)
            );
            let mut response = Redirect::to(&next).into_response();
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, v);
            }
            response
        }
        Err(err) => {
            if let vexil_core::Error::Unauthorized(_) = err {
                console.throttle.failed(client);
            }
            let status = super::status_of(&err);
            login_response(&console, secure, status, &next, Some(&err.to_string()))
        }
    }
}

/// `POST /logout`.
pub(crate) async fn logout(
    State(console): State<ConsoleState>,
    session: Session,
    request: Request,
) -> Response {
    let secure = secure(&console, request.headers());
    let signed_out = super::form_within(&console, &session, request, super::SESSION_FORM_LIMIT);
    if let Err(refused) = signed_out.await {
        return refused;
    }
    // Ended server-side too: the cookie no longer signs in, wherever a copy of it is.
    let services = console.services.clone();
    let token = session.token.clone();
    if let Err(err) = call(move || services.keys.end_session(&token)).await {
        return layout::message_page(super::status_of(&err), "Not signed out", &err.to_string());
    }
    let mut response = Redirect::to("/login").into_response();
    let cookie = format!(
        "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        secure_attribute(secure)
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn console() -> ConsoleState {
        let store = std::sync::Arc::new(
            vexil_store::SqliteStore::open(
                &std::env::temp_dir()
                    .join(format!("vexil-console-session-{}.db", std::process::id())),
            )
            .unwrap(),
        );
        std::sync::Arc::new(super::super::Console {
            services: vexil_core::Services::new(store),
            secrets: std::sync::RwLock::new(Arc::new(ServerSecrets::new(
                "new",
                Some(("old".to_owned(), now_ms() + 60_000)),
            ))),
            throttle: std::sync::Arc::new(crate::throttle::Throttle::new(10, 100)),
            secure_cookies: false,
        })
    }

    /// Tokens are made with the current secret and verified with every secret in force; the
    /// previous one stops when its grace period ends.
    #[test]
    fn tokens_follow_the_secrets_in_force() {
        let c = console();
        let session = Session {
            actor: vexil_core::Actor::cli(),
            token: "t".to_owned(),
        };
        let current = session.csrf(&c);
        let previous = mac(b"old", &["csrf", "t"]);
        assert_eq!(current, mac(b"new", &["csrf", "t"]));
        assert!(session.check_csrf(&c, &current));
        assert!(session.check_csrf(&c, &previous));
        assert!(!session.check_csrf(&c, ""));
        assert!(!session.check_csrf(&c, &mac(b"other", &["csrf", "t"])));
        *c.secrets.write().unwrap() = Arc::new(ServerSecrets::new(
            "new",
            Some(("old".to_owned(), now_ms() - 1)),
        ));
        assert!(!session.check_csrf(&c, &previous), "past its grace period");
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("a=b; {COOKIE}=tok; c=d")).unwrap(),
        );
        assert_eq!(cookie_from(&headers), Some("tok"));
    }

    /// Every `next` that would leave the site, or break the `Location` header, falls back to
    /// `/flags`; paths on this server pass unchanged.
    #[test]
    fn next_is_a_path_on_this_server_or_flags() {
        fn check(next: Option<&str>, local: bool) {
            let expected = match (next, local) {
                (Some(n), true) => n,
                _ => "/flags",
            };
            assert_eq!(next_path(next), expected, "next = {next:?}");
        }
        for local in [
            "/",
            "/flags",
            "/flags/x?project=p",
            "/flags?q=a%20b&state=active",
            "/projects/p/cohorts",
            "/%09/evil.example",
            "/%2F%2Fevil.example",
            "/flags#top",
        ] {
            check(Some(local), true);
        }
        for hostile in [
            "",
            "//evil.example",
            "///evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "/\t/evil.example/x",
            "/\n/evil.example",
            "/\r/evil.example",
            "/\r\n/evil.example",
            "/flags\r\nSet-Cookie: a=b",
            "\t//evil.example",
            " /flags",
            "/ flags",
            "/flags\u{0}",
            "/flags\u{7f}",
            "/flags\u{85}",
            "/flags/\u{2028}",
            "/évil",
            "/x\\y",
            "/./\\evil.example",
            "https://evil.example",
            "http:/evil.example",
            "javascript:alert(1)",
            "evil.example",
            "flags",
        ] {
            check(Some(hostile), false);
        }
        check(None, false);
    }
}
