//! Console sessions: sign-in with a management key, a signed cookie naming the key by id, and
//! CSRF tokens derived from the session.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{FromRequestParts, OptionalFromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use hmac::{Hmac, KeyInit, Mac};
use maud::html;
use sha2::Sha256;
use vexil_core::Actor;

use super::{call, form, layout, ConsoleState, Fields};

/// The session cookie's name.
pub(crate) const COOKIE: &str = "vexil_session";
/// The cookie that ties the sign-in form to the browser that loaded it.
const LOGIN_COOKIE: &str = "vexil_login";
/// How long a session lasts.
const TTL_MS: i64 = 12 * 3_600_000;

/// A signed-in user.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub actor: Actor,
    /// The random id of this sign-in.
    id: String,
    /// The cookie value; the CSRF token is derived from it.
    cookie: String,
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
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Compares without stopping at the first difference.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Session {
    /// The token every form of this session carries.
    pub fn csrf(&self, console: &ConsoleState) -> String {
        mac(&console.secret, &["csrf", &self.cookie])
    }

    pub fn check_csrf(&self, console: &ConsoleState, token: &str) -> bool {
        !token.is_empty() && same(&self.csrf(console), token)
    }
}

/// `key_id.session.expires.signature`, where `session` is random and names this sign-in (so
/// that signing out ends it alone).
fn cookie_value(console: &ConsoleState, key_id: &str, session: &str, expires: i64) -> String {
    let expires = expires.to_string();
    let sig = mac(&console.secret, &["session", key_id, session, &expires]);
    format!("{key_id}.{session}.{expires}.{sig}")
}

/// The key id and session id of a valid, unexpired cookie value.
fn verify(console: &ConsoleState, value: &str) -> Option<(String, String)> {
    let mut parts = value.rsplitn(4, '.');
    let sig = parts.next()?;
    let expires = parts.next()?;
    let session = parts.next()?;
    let key_id = parts.next()?;
    let good = mac(&console.secret, &["session", key_id, session, expires]);
    (same(&good, sig) && expires.parse::<i64>().ok()? > now_ms())
        .then(|| (key_id.to_owned(), session.to_owned()))
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
    let value = cookie_from(&parts.headers)?.to_owned();
    let (key_id, id) = verify(console, &value)?;
    let services = console.services.clone();
    let session = id.clone();
    let actor = call(move || services.keys.session_actor(&key_id, &session))
        .await
        .ok()?;
    Some(Session {
        actor,
        id,
        cookie: value,
    })
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

/// Where to go after signing in: a local path only.
fn next_path(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/flags".to_owned(),
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
    status: StatusCode,
    next: &str,
    error: Option<&str>,
) -> Response {
    let nonce = vexil_core::keys::random_base62(24).unwrap_or_default();
    let token = mac(&console.secret, &["login", &nonce]);
    let mut response = super::html(status, login_form(next, &token, error));
    let cookie =
        format!("{LOGIN_COOKIE}={nonce}; Path=/login; HttpOnly; SameSite=Strict; Max-Age=3600");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

/// `GET /login`.
pub(crate) async fn login_page(
    State(console): State<ConsoleState>,
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
    login_response(&console, StatusCode::OK, &next, None)
}

/// `POST /login`: checks the key and sets the session cookie.
pub(crate) async fn login(State(console): State<ConsoleState>, request: Request) -> Response {
    let secure = request
        .headers()
        .get("x-forwarded-proto")
        .is_some_and(|p| p.as_bytes() == b"https");
    let nonce = named_cookie(request.headers(), LOGIN_COOKIE).map(str::to_owned);
    let Ok(body) = axum::body::to_bytes(request.into_body(), 64 * 1024).await else {
        return login_response(
            &console,
            StatusCode::BAD_REQUEST,
            "/flags",
            Some("bad form"),
        );
    };
    let fields = Fields::parse(&body);
    let next = next_path(fields.get("next"));
    let token = fields.get("_csrf").unwrap_or("");
    let token_ok = nonce.is_some_and(|n| same(&mac(&console.secret, &["login", &n]), token));
    if !token_ok {
        let why = "The sign-in form expired or came from elsewhere; please sign in again.";
        return login_response(&console, StatusCode::FORBIDDEN, &next, Some(why));
    }
    let key = fields.text("key").unwrap_or_default();
    let services = console.services.clone();
    match call(move || services.keys.sign_in(&key)).await {
        Ok((id, _)) => {
            let expires = now_ms() + TTL_MS;
            let session = vexil_core::keys::random_base62(22).unwrap_or_default();
            let value = cookie_value(&console, &id, &session, expires);
            let cookie = format!(
                "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
                TTL_MS / 1000,
                if secure { "; Secure" } else { "" }
            );
            let mut response = Redirect::to(&next).into_response();
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, v);
            }
            response
        }
        Err(err) => login_response(
            &console,
            StatusCode::UNAUTHORIZED,
            &next,
            Some(&err.to_string()),
        ),
    }
}

/// `POST /logout`.
pub(crate) async fn logout(
    State(console): State<ConsoleState>,
    session: Session,
    request: Request,
) -> Response {
    if let Err(refused) = super::form(&console, &session, request).await {
        return refused;
    }
    // Ended server-side too: the cookie no longer signs in, wherever a copy of it is.
    let services = console.services.clone();
    let id = session.id.clone();
    if let Err(err) = call(move || services.keys.end_session(&id)).await {
        return layout::message_page(super::status_of(&err), "Not signed out", &err.to_string());
    }
    let mut response = Redirect::to("/login").into_response();
    let cookie = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
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
            secret: b"secret".to_vec(),
        })
    }

    #[test]
    fn cookies_verify_only_unaltered_and_unexpired() {
        let c = console();
        let good = cookie_value(&c, "key1", "s1", now_ms() + 1000);
        assert_eq!(
            verify(&c, &good),
            Some(("key1".to_owned(), "s1".to_owned()))
        );
        let expired = cookie_value(&c, "key1", "s1", now_ms() - 1);
        assert_eq!(verify(&c, &expired), None);
        let forged = good.replacen("key1", "key2", 1);
        assert_eq!(verify(&c, &forged), None);
        assert_eq!(verify(&c, "garbage"), None);
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("a=b; {COOKIE}={good}; c=d")).unwrap(),
        );
        assert_eq!(cookie_from(&headers), Some(good.as_str()));
        assert_eq!(next_path(Some("//evil.example")), "/flags");
        assert_eq!(next_path(Some("/flags/x?project=p")), "/flags/x?project=p");
    }
}
