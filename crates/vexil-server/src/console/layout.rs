//! The page shell, the navigation, and the pieces every page uses: error boxes with links to
//! the blocking flags, state badges, dates, the CSRF field.

use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup, DOCTYPE};
use vexil_core::{Error, FlagState};

use super::{ConsoleState, Session};

/// A whole document: head, and `body`.
pub(crate) fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Vexil" }
                link rel="stylesheet" href="/console.css";
                script src="/console.js" defer {}
            }
            body { (body) }
        }
    }
}

/// A page of a signed-in user: navigation, then `body`.
pub(crate) fn page(console: &ConsoleState, session: &Session, title: &str, body: Markup) -> Markup {
    bare(
        title,
        html! {
            a.skip-link href="#main" { "Skip to content" }
            header.top {
                a.brand href="/flags" { "Vexil" }
                nav {
                    a href="/flags" { "Flags" }
                    a href="/projects" { "Projects" }
                    @if session.actor.role >= vexil_core::Role::Admin { a #keys-link href="/keys" { "Keys" } }
                }
                span.who { (session.actor.name) " · " (session.actor.role.as_str()) }
                form #logout method="post" action="/logout" {
                    (csrf(console, session))
                    button.link type="submit" { "Sign out" }
                }
            }
            main #main tabindex="-1" { (body) }
        },
    )
}

/// The hidden CSRF field every form carries.
pub(crate) fn csrf(console: &ConsoleState, session: &Session) -> Markup {
    html! { input type="hidden" name="_csrf" value=(session.csrf(console)); }
}

/// A page with only a message (refusals outside any page).
pub(crate) fn message_page(status: StatusCode, title: &str, message: &str) -> Response {
    super::html(
        status,
        bare(
            title,
            html! { main.narrow { h1 { (title) } p.error role="alert" { (message) } p { a href="/flags" { "Back to the flags" } } } },
        ),
    )
}

/// Why a change was refused: the message, every invalid field, and links to the flags that
/// block it (in `project`).
pub(crate) fn error_box(err: &Error, project: Option<&str>) -> Markup {
    if super::status_of(err) == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::error!(error = %crate::error::chain(err), "console request failed");
    }
    let (message, fields, blocking): (String, Vec<String>, &[String]) = match err {
        Error::Invalid(errors) => (
            errors
                .first()
                .map_or_else(|| err.to_string(), |e| e.message.clone()),
            errors
                .iter()
                .skip(1)
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect(),
            &[],
        ),
        Error::Blocked {
            message, blocking, ..
        } => (message.clone(), Vec::new(), blocking),
        Error::VersionMismatch { .. } => (
            format!(
                "{err}. Reload the page to see the current version, then make the change again."
            ),
            Vec::new(),
            &[],
        ),
        e if super::status_of(e) == StatusCode::INTERNAL_SERVER_ERROR => (
            "Something went wrong on the server; its log has the details.".to_owned(),
            Vec::new(),
            &[],
        ),
        e => (e.to_string(), Vec::new(), &[]),
    };
    html! {
        div.error role="alert" {
            p { (message) }
            @if !fields.is_empty() { ul { @for f in &fields { li { (f) } } } }
            @if !blocking.is_empty() {
                p.blocking { "Blocked by: "
                    @for (i, key) in blocking.iter().enumerate() {
                        @if i > 0 { ", " }
                        @match project {
                            Some(p) => a href=(super::key_href(p, key)) { (key) },
                            None => a href=(format!("/flags/{}", super::form::encode(key))) { (key) },
                        }
                    }
                }
            }
        }
    }
}

/// A notice after a successful change (`?notice=` on redirects).
pub(crate) fn notice(text: Option<&str>) -> Markup {
    html! { @if let Some(t) = text { p.notice role="status" { (t) } } }
}

/// `state-active`, `state-inactive` or `state-archived`.
pub(crate) fn state_badge(state: FlagState, archived: bool) -> Markup {
    let (class, label) = match (archived, state) {
        (true, _) => ("badge state-archived", "archived"),
        (false, FlagState::Active) => ("badge state-active", "active"),
        (false, FlagState::Inactive) => ("badge state-inactive", "inactive"),
    };
    html! { span class=(class) { (label) } }
}

/// `2026-12-02 14:05 UTC` from Unix milliseconds.
pub(crate) fn when(ms: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(format).ok())
        .unwrap_or_else(|| format!("{ms} ms"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc() {
        assert_eq!(when(0), "1970-01-01 00:00 UTC");
        assert_eq!(when(1_796_187_246_985), "2026-12-02 04:54 UTC");
        assert_eq!(when(951_782_400_000), "2000-02-29 00:00 UTC");
    }
}
