//! The web console, served at `/`: server-rendered HTML (maud) over the same service methods as
//! the JSON API, with a little hand-written JavaScript for what a form cannot do alone
//! (generated keys, the allocation editor's rows, live weight shares, copy buttons, the slot
//! editor's rows, asking before archiving a group). An experiment's results page draws its
//! charts on the server as inline SVG (`charts.rs`), so it needs no script at all.
//!
//! Sign-in takes a management key and starts a server-side session: the cookie holds a random
//! token whose hash the store keeps (never the key's secret), `HttpOnly` and `SameSite=Strict`,
//! and `Secure` when the server is reached over HTTPS. Wrong keys count against the client in the sign-in throttle
//! that the JSON API shares. Every form carries a CSRF token derived from the session, checked
//! on every POST. A refused change re-renders the page with the reason and links to the flags
//! that block it.
//!
//! Bodies are read with a limit fitting the form: 16 KiB for signing in and out, 1 MiB for
//! every other form, the API's upload limit for a writer's cohort upload. A body over its limit is refused
//! (413) without being read past it.
//!
//! Stable hooks for tests and scripts: ids and `data-*` attributes named in each page module.

mod allocation;
mod charts;
mod cohorts;
mod dependencies;
mod drafts;
mod experiment;
mod flag_edit;
mod flag_page;
mod flags;
mod form;
mod group_page;
mod groups;
mod history;
mod keys;
mod layout;
mod metrics;
mod projects;
mod results;
mod session;
mod user;
mod webhooks;

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::Markup;
use vexil_core::{Actor, GroupKind, Role, Services};

pub(crate) use form::Fields;
pub(crate) use session::Session;

/// What console handlers share.
pub(crate) struct Console {
    pub services: Services,
    /// Keys the CSRF and sign-in form tokens; replaced when the server secret is rotated.
    pub secrets: std::sync::RwLock<Arc<vexil_core::service::ServerSecrets>>,
    /// Failed sign-ins per client, shared with the JSON API's key check.
    pub throttle: Arc<crate::throttle::Throttle>,
    /// Cookies carry `Secure` always: the server's public URL is `https://`. Without it they
    /// carry it when a proxy says the request came over HTTPS (`X-Forwarded-Proto`).
    pub secure_cookies: bool,
}

/// Whether a URL is an `https://` one (the scheme is case-insensitive).
pub(crate) fn is_https(url: &str) -> bool {
    url.trim_start()
        .get(..8)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
}

pub(crate) type ConsoleState = Arc<Console>;

/// Form bodies: 1 MiB, which the largest form (an allocation with long inclusion lists) stays
/// well below; cohort uploads take the API's upload limit.
const FORM_LIMIT: usize = 1 << 20;
/// The sign-in and sign-out forms: a key, the page to go back to and a token at most.
const SESSION_FORM_LIMIT: usize = 16 << 10;
const UPLOAD_LIMIT: usize = crate::api::UPLOAD_LIMIT;

pub(crate) fn router(console: ConsoleState) -> Router {
    // Handlers read their bodies through `read_body`, with the limit of their form; these
    // layers bound only what an axum extractor would read, and say the same.
    let uploads = Router::new()
        .route(
            "/projects/{project}/cohorts",
            get(cohorts::list).post(cohorts::upload),
        )
        .layer(DefaultBodyLimit::max(UPLOAD_LIMIT));
    Router::new()
        .route("/", get(home))
        .route("/console.css", get(css))
        .route("/console.js", get(js))
        .route("/login", get(session::login_page).post(session::login))
        .route("/logout", post(session::logout))
        .route("/projects", get(projects::list).post(projects::create))
        .route("/keys", get(keys::list).post(keys::create))
        .route("/keys/{id}/revoke", post(keys::revoke))
        .route("/projects/{project}", get(projects::show))
        .route(
            "/projects/{project}/deployments",
            post(projects::create_deployment),
        )
        .route(
            "/projects/{project}/deployments/{deployment}",
            post(projects::update_deployment),
        )
        .route(
            "/projects/{project}/deployments/{deployment}/archive",
            post(projects::update_deployment),
        )
        .route(
            "/projects/{project}/approval-policy",
            post(projects::set_policy),
        )
        .route(
            "/projects/{project}/cohorts/{cohort}/delete",
            post(cohorts::delete),
        )
        .route("/projects/{project}/webhooks", post(webhooks::create))
        .route(
            "/projects/{project}/webhooks/{id}/test",
            post(webhooks::test),
        )
        .route(
            "/projects/{project}/webhooks/{id}/delete",
            post(webhooks::delete),
        )
        .route(
            "/projects/{project}/webhooks/{id}/rotate-secret",
            post(webhooks::rotate),
        )
        .route(
            "/projects/{project}/webhooks/{id}/events/{event_id}/redeliver",
            post(webhooks::redeliver),
        )
        .route("/projects/{project}/groups", get(groups::list))
        .route("/projects/{project}/audit", get(drafts::audit))
        .route("/projects/{project}/user", get(user::show))
        .route(
            "/projects/{project}/archive-stale",
            post(flags::archive_stale),
        )
        .route("/flags/{key}/permanent", post(flag_edit::permanent))
        .route("/projects/{project}/drafts/{id}", get(drafts::show))
        .route(
            "/projects/{project}/drafts/{id}/{action}",
            post(drafts::act),
        )
        .route(
            "/projects/{project}/metrics",
            get(metrics::list).post(metrics::create),
        )
        .route("/flags", get(flags::list).post(flags::create))
        .route("/flags/{key}", get(flag_page::show))
        .route("/flags/{key}/settings", post(flag_edit::settings))
        .route("/flags/{key}/variants", post(flag_edit::add_variant))
        .route(
            "/flags/{key}/variants/{variant}",
            post(flag_edit::update_variant),
        )
        .route(
            "/flags/{key}/variants/{variant}/delete",
            post(flag_edit::delete_variant),
        )
        .route("/flags/{key}/allocation", post(flag_edit::allocation))
        .route(
            "/flags/{key}/prerequisites",
            post(flag_edit::add_prerequisite),
        )
        .route(
            "/flags/{key}/prerequisites/{prerequisite}/delete",
            post(flag_edit::remove_prerequisite),
        )
        .route("/flags/{key}/mutex-group", post(dependencies::join_mutex))
        .route(
            "/flags/{key}/mutex-group/leave",
            post(dependencies::leave_mutex),
        )
        .route("/flags/{key}/holdouts", post(dependencies::set_holdouts))
        .route("/flags/{key}/qa", post(flag_page::qa))
        .route("/flags/{key}/results", get(results::show))
        .route(
            "/projects/{project}/holdouts/{key}/results",
            get(results::show_holdout),
        )
        .route("/flags/{key}/experiment", post(experiment::save))
        .route("/flags/{key}/state/{action}", post(flag_edit::state))
        .route("/flags/{key}/history", get(history::list))
        .route("/flags/{key}/compare", get(history::compare))
        .route(
            "/flags/{key}/history/{version}/restore",
            post(history::restore),
        )
        .merge(group_routes(GroupKind::MutualExclusion))
        .merge(group_routes(GroupKind::Holdout))
        .layer(DefaultBodyLimit::max(FORM_LIMIT))
        .merge(uploads)
        .with_state(console)
}

/// The pages of one kind of group, under `/projects/{project}/mutex-groups` or `/holdouts`
/// (the JSON API's paths): the kind is part of the route, so every handler knows it.
fn group_routes(kind: GroupKind) -> Router<ConsoleState> {
    use axum::extract::{Path, RawQuery};
    let base = format!("/projects/{{project}}/{}", group_segment(kind));
    type Key = Path<(String, String)>;
    Router::new()
        .route(
            &base,
            get(groups::list).post(move |st: St, s: Session, p: Path<String>, r: Request| {
                groups::create(st, s, p, r, kind)
            }),
        )
        .route(
            &format!("{base}/{{key}}"),
            get(move |st: St, s: Session, k: Key, q: RawQuery| group_page::show(st, s, k, q, kind))
                .post(move |st: St, s: Session, k: Key, r: Request| {
                    group_page::update(st, s, k, r, kind)
                }),
        )
        .route(
            &format!("{base}/{{key}}/archive"),
            post(move |st: St, s: Session, k: Key, r: Request| {
                group_page::archive(st, s, k, r, kind, true)
            }),
        )
        .route(
            &format!("{base}/{{key}}/unarchive"),
            post(move |st: St, s: Session, k: Key, r: Request| {
                group_page::archive(st, s, k, r, kind, false)
            }),
        )
        .route(
            &format!("{base}/{{key}}/history"),
            get(move |st: St, s: Session, k: Key, q: RawQuery| {
                history::group_list(st, s, k, q, kind)
            }),
        )
        .route(
            &format!("{base}/{{key}}/compare"),
            get(move |st: St, s: Session, k: Key, q: RawQuery| {
                history::group_compare(st, s, k, q, kind)
            }),
        )
        .route(
            &format!("{base}/{{key}}/history/{{version}}/restore"),
            post(
                move |st: St, s: Session, k: Path<(String, String, i64)>, r: Request| {
                    history::group_restore(st, s, k, r, kind)
                },
            ),
        )
}

/// `mutex-groups` or `holdouts`: the path segment of a kind of group.
pub(crate) fn group_segment(kind: GroupKind) -> &'static str {
    match kind {
        GroupKind::MutualExclusion => "mutex-groups",
        GroupKind::Holdout => "holdouts",
    }
}

/// The page of group `key` of `kind` in `project`.
pub(crate) fn group_href(project: &str, kind: GroupKind, key: &str) -> String {
    format!(
        "/projects/{}/{}/{}",
        form::encode(project),
        group_segment(kind),
        form::encode(key)
    )
}

/// The page of a key a refusal names: a group's (keys of each kind start with its prefix) or
/// a flag's. A flag whose key happens to look like a group's is reached through the group
/// route, which sends a key it does not know to the flag's page.
pub(crate) fn key_href(project: &str, key: &str) -> String {
    for kind in [GroupKind::MutualExclusion, GroupKind::Holdout] {
        if key.starts_with(kind.key_prefix()) {
            return group_href(project, kind, key);
        }
    }
    flag_href(project, key)
}

async fn home(session: Option<Session>) -> Response {
    match session {
        Some(_) => Redirect::to("/flags").into_response(),
        None => Redirect::to("/login").into_response(),
    }
}

async fn css() -> Response {
    asset("text/css; charset=utf-8", include_str!("console.css"))
}

async fn js() -> Response {
    asset("text/javascript; charset=utf-8", include_str!("console.js"))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = Response::new(Body::from(body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

/// An HTML answer with a status.
pub(crate) fn html(status: StatusCode, markup: Markup) -> Response {
    let mut response = Response::new(Body::from(markup.into_string()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; style-src 'self'; script-src 'self'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    response
}

/// 303 to `to` (after a successful POST).
pub(crate) fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// The status a refused service call answers with (the JSON API's mapping).
pub(crate) fn status_of(err: &vexil_core::Error) -> StatusCode {
    crate::error::status(err)
}

/// Runs a service call on the blocking pool.
pub(crate) async fn call<R: Send + 'static>(
    f: impl FnOnce() -> vexil_core::Result<R> + Send + 'static,
) -> vexil_core::Result<R> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(join) => Err(vexil_core::Error::Internal(Box::new(join))),
    }
}

/// Whether the session may change things: readers get pages without the controls that would.
pub(crate) fn writes(session: &Session) -> bool {
    session.actor.role >= Role::Writer
}

/// The actor of a session, for service calls.
pub(crate) fn actor(session: &Session) -> Actor {
    session.actor.clone()
}

/// Reads a whole body of at most `limit` bytes. A body that declares a larger length is
/// refused before any of it is read; one that grows past the limit, as soon as it does.
pub(crate) async fn read_body(request: Request, limit: usize) -> Result<Bytes, Response> {
    use crate::listen::{caused_by, BodyTimeout};
    use http_body_util::{BodyExt, LengthLimitError, Limited};

    let too_large = || {
        layout::message_page(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Too large",
            "the form is larger than the console accepts",
        )
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    let err = match Limited::new(request.into_body(), limit).collect().await {
        Ok(collected) => return Ok(collected.to_bytes()),
        Err(err) => err,
    };
    let err: &(dyn std::error::Error + 'static) = &*err;
    Err(if caused_by::<LengthLimitError>(err) {
        too_large()
    } else if caused_by::<BodyTimeout>(err) {
        layout::message_page(
            StatusCode::REQUEST_TIMEOUT,
            "Too slow",
            "the form did not arrive in time; please send it again",
        )
    } else {
        layout::message_page(
            StatusCode::BAD_REQUEST,
            "Not received",
            "the form did not arrive whole; please send it again",
        )
    })
}

/// Reads a form body (at most [`FORM_LIMIT`]), checking the CSRF token.
pub(crate) async fn form(
    console: &ConsoleState,
    session: &Session,
    request: Request,
) -> Result<Fields, Response> {
    form_within(console, session, request, FORM_LIMIT).await
}

async fn form_within(
    console: &ConsoleState,
    session: &Session,
    request: Request,
    limit: usize,
) -> Result<Fields, Response> {
    let bytes = read_body(request, limit).await?;
    let fields = Fields::parse(&bytes);
    if !session.check_csrf(console, fields.get("_csrf").unwrap_or("")) {
        return Err(layout::message_page(
            StatusCode::FORBIDDEN,
            "Refused",
            "the form's security token is missing or stale; reload the page and try again",
        ));
    }
    Ok(fields)
}

/// Reads a form (checking its CSRF token) and makes one service call with it on the blocking
/// pool; `Err` is the refusal to answer as is (a bad token). The call's own error is for the
/// handler, which re-renders its page with the reason.
pub(crate) async fn submit<R: Send + 'static>(
    console: &ConsoleState,
    session: &Session,
    request: Request,
    f: impl FnOnce(&Services, &Actor, &Fields) -> vexil_core::Result<R> + Send + 'static,
) -> Result<(Fields, vexil_core::Result<R>), Response> {
    submit_within(console, session, request, FORM_LIMIT, f).await
}

/// [`submit`] for a cohort upload: a writer's body may be as large as the API's uploads. Only
/// writers may upload (the service refuses anyone else), so anyone else's body is held to the
/// form limit: a refused upload then costs the server no more than any form.
pub(crate) async fn submit_upload<R: Send + 'static>(
    console: &ConsoleState,
    session: &Session,
    request: Request,
    f: impl FnOnce(&Services, &Actor, &Fields) -> vexil_core::Result<R> + Send + 'static,
) -> Result<(Fields, vexil_core::Result<R>), Response> {
    let limit = if session.actor.role >= Role::Writer {
        UPLOAD_LIMIT
    } else {
        FORM_LIMIT
    };
    submit_within(console, session, request, limit, f).await
}

async fn submit_within<R: Send + 'static>(
    console: &ConsoleState,
    session: &Session,
    request: Request,
    limit: usize,
    f: impl FnOnce(&Services, &Actor, &Fields) -> vexil_core::Result<R> + Send + 'static,
) -> Result<(Fields, vexil_core::Result<R>), Response> {
    let fields = form_within(console, session, request, limit).await?;
    let services = console.services.clone();
    let who = actor(session);
    let input = fields.clone();
    let result = call(move || f(&services, &who, &input)).await;
    Ok((fields, result))
}

/// `?project=` for links to a flag, when the project is known.
pub(crate) fn flag_href(project: &str, key: &str) -> String {
    format!(
        "/flags/{}?project={}",
        form::encode(key),
        form::encode(project)
    )
}

/// A handler's state extractor, re-exported for the page modules.
pub(crate) type St = State<ConsoleState>;
