//! Drafts and the audit log in the console. A draft's page shows what it changes in the
//! product's words, how many sample users it moves and where, where approvals stand, what
//! blocks publishing, and the reviews; its forms review, publish, schedule or close it. The
//! audit page lists a project's changes with who, when, what and why.
//!
//! A flag edit that the project's approval policy refuses is not lost: the console opens a
//! draft with the same changes and shows it (see `flag_edit::change`).
//!
//! Hooks: `#draft` with `data-status`, `#draft-summary li`, `#draft-moved`, `#draft-approvals`,
//! `#draft-blocked`, `form#review` (`decision`, `comment`), `form#publish`, `form#schedule`
//! (`at`, UTC), `form#close`; `table#audit` rows `tr[data-entity]` with `.actor`, `.action`,
//! `.summary`, `.comment`; `form#audit-filter` (`actor`, `entity`, `key`); `a#audit-older`.

use axum::extract::{Path, RawQuery, Request};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use vexil_core::service::{AuditFilter, Decision, DraftStatus, DraftView, NewReview};

use super::layout::{self, csrf, error_box, notice, when};
use super::{call, flag_href, form, html, see_other, submit, Fields, Session, St};

fn draft_href(project: &str, id: &str) -> String {
    format!(
        "/projects/{}/drafts/{}",
        form::encode(project),
        form::encode(id)
    )
}

/// `GET /projects/{project}/drafts/{id}`.
pub(crate) async fn show(
    state: St,
    session: Session,
    Path((project, id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let console = state.0;
    let q = Fields::parse(query.unwrap_or_default().as_bytes());
    let services = console.services.clone();
    let (p, i) = (project.clone(), id.clone());
    match call(move || services.drafts.get(&p, &i)).await {
        Ok(view) => {
            let body = page(&console, &session, &view, q.text("notice"), q.text("error"));
            html(
                StatusCode::OK,
                layout::page(&console, &session, &view.draft.title, body),
            )
        }
        Err(e) => html(
            super::status_of(&e),
            layout::page(&console, &session, "Draft", error_box(&e, Some(&project))),
        ),
    }
}

fn page(
    console: &super::ConsoleState,
    session: &Session,
    v: &DraftView,
    notice_text: Option<String>,
    error: Option<String>,
) -> Markup {
    let d = &v.draft;
    let href = draft_href(&d.project, &d.id);
    let open = matches!(
        d.status,
        DraftStatus::Open | DraftStatus::Failed | DraftStatus::Scheduled
    );
    html! {
        p.crumbs { a href=(flag_href(&d.project, &d.flag)) { (d.flag) } " / Drafts / " (d.id) }
        h1 { (d.title) }
        (notice(notice_text.as_deref()))
        @if let Some(e) = error { p.error role="alert" { (e) } }
        section #draft data-status=(d.status.as_str()) {
            p { "Draft by " strong { (d.author) } " on " a href=(flag_href(&d.project, &d.flag)) { (d.flag) }
                ", based on version " (d.base_version) " — " strong { (d.status.as_str()) }
                @if let Some(at) = d.scheduled_at { ", to publish at " (when(at)) " UTC" }
                @if let Some(v) = d.published_version { ", published as version " (v) } }
            @if !d.comment.is_empty() { p.comment { (d.comment) } }
            @if let Some(o) = &d.outcome { p.error role="alert" { "Last attempt: " (o) } }
            @if let Some(b) = &v.blocked { p #draft-blocked.error role="alert" { "Cannot be published now: " (b) } }
            @if open {
                h2 { "What it changes" }
                @if v.summary.is_empty() { p { "Nothing a user would notice." } }
                ul #draft-summary { @for line in &v.summary { li { (emphasis(line)) } } }
                @for w in &v.warnings { p.warning { "Warning: " (w) } }
                @if let Some(m) = &v.moved {
                    h2 { "Users it moves" }
                    p #draft-moved { "Of " (m.sample) " sample users (" (m.active_users) " recently active, the rest generated ids), "
                        strong { (m.moved) } " change variant." }
                    @if !m.transitions.is_empty() {
                        table.transitions { thead { tr { th { "From" } th { "To" } th { "Users" } } }
                            tbody { @for t in &m.transitions { tr { td { (t.from) } td { (t.to) } td { (t.users) } } } } }
                    }
                }
            }
            h2 { "Approvals" }
            p #draft-approvals {
                @if v.approvals.required { (v.approvals.approved_by.len()) " of " (v.approvals.needed) " approvals" }
                @else { "The project's policy needs no approval for this change." }
                @if !v.approvals.approved_by.is_empty() { " — approved by " (v.approvals.approved_by.join(", ")) }
                @if !v.approvals.blocked_by.is_empty() { " — changes requested by " (v.approvals.blocked_by.join(", ")) }
            }
            @if !d.reviews.is_empty() {
                ul.reviews { @for r in &d.reviews {
                    li { strong { (r.reviewer) } " " (match r.decision { Decision::Approve => "approved", Decision::RequestChanges => "requested changes", Decision::Reject => "rejected" })
                        " (revision " (r.revision) ", " (when(r.at)) ")" @if !r.comment.is_empty() { ": " (r.comment) } }
                } }
            }
            @if open && session.actor.role >= vexil_core::Role::Writer {
                form #review method="post" action=(format!("{href}/review")) {
                    (csrf(console, session))
                    label { "Your review" select name="decision" {
                        option value="approve" { "Approve" }
                        option value="request_changes" { "Request changes" }
                        option value="reject" { "Reject" }
                    } }
                    label { "Comment" input name="comment" maxlength="2000"; }
                    button type="submit" { "Send review" }
                }
                form #publish method="post" action=(format!("{href}/publish")) {
                    (csrf(console, session))
                    button.primary type="submit" { "Publish now" }
                }
                form #schedule method="post" action=(format!("{href}/schedule")) {
                    (csrf(console, session))
                    label { "Publish at (UTC)" input type="datetime-local" name="at" step="1" required; }
                    button type="submit" { "Schedule" }
                }
                form #close method="post" action=(format!("{href}/close")) {
                    (csrf(console, session))
                    button.danger type="submit" { "Close without publishing" }
                }
            }
        }
    }
}

/// `*word*` spans of the service's lines as emphasis.
pub(crate) fn emphasis(line: &str) -> Markup {
    let parts: Vec<&str> = line.split('*').collect();
    html! { @for (i, part) in parts.iter().enumerate() { @if i % 2 == 1 { em { (part) } } @else { (part) } } }
}

/// `POST /projects/{project}/drafts/{id}/{action}`: review, publish, schedule or close.
pub(crate) async fn act(
    state: St,
    session: Session,
    Path((project, id, action)): Path<(String, String, String)>,
    request: Request,
) -> Response {
    let console = state.0;
    let href = draft_href(&project, &id);
    let (p, i, a) = (project.clone(), id.clone(), action.clone());
    let submitted = submit(&console, &session, request, move |s, who, f| {
        let done = match a.as_str() {
            "review" => {
                let decision = match f.get("decision") {
                    Some("request_changes") => Decision::RequestChanges,
                    Some("reject") => Decision::Reject,
                    _ => Decision::Approve,
                };
                let comment = f.text("comment").unwrap_or_default();
                s.drafts
                    .review(who, &p, &i, NewReview { decision, comment })?;
                "Review sent."
            }
            "publish" => {
                s.drafts.publish(who, &p, &i)?;
                "Published."
            }
            "schedule" => {
                let at = f.get("at").and_then(utc_millis).ok_or_else(|| {
                    vexil_core::Error::invalid("at", "invalid_time", "give a date and time (UTC)")
                })?;
                s.drafts.schedule(who, &p, &i, at)?;
                "Scheduled."
            }
            "close" => {
                s.drafts.close(who, &p, &i)?;
                "Closed."
            }
            _ => {
                return Err(vexil_core::Error::NotFound {
                    entity: "draft action",
                    key: a.clone(),
                })
            }
        };
        Ok(done)
    })
    .await;
    match submitted {
        Err(refusal) => refusal,
        Ok((_, Ok(done))) => see_other(&format!("{href}?notice={}", form::encode(done))),
        Ok((_, Err(e))) => see_other(&format!("{href}?error={}", form::encode(&e.to_string()))),
    }
}

/// `2026-12-07T10:30` or `2026-12-07T10:30:15` (an `<input type="datetime-local">`, read as
/// UTC) in Unix milliseconds.
fn utc_millis(text: &str) -> Option<i64> {
    use time::macros::format_description;
    let text = text.trim();
    let seconds = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let minutes = format_description!("[year]-[month]-[day]T[hour]:[minute]");
    let at = time::PrimitiveDateTime::parse(text, seconds)
        .or_else(|_| time::PrimitiveDateTime::parse(text, minutes))
        .ok()?;
    i64::try_from(at.assume_utc().unix_timestamp_nanos() / 1_000_000).ok()
}

/// `GET /projects/{project}/audit?actor=…&entity=…&key=…&after=…`.
pub(crate) async fn audit(
    state: St,
    session: Session,
    Path(project): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let console = state.0;
    let q = Fields::parse(query.unwrap_or_default().as_bytes());
    let filter = AuditFilter {
        project: Some(project.clone()),
        actor: q.text("actor"),
        entity: q.text("entity"),
        key: q.text("key"),
        after: q.text("after"),
        limit: Some(100),
        ..AuditFilter::default()
    };
    let services = console.services.clone();
    let who = session.actor.clone();
    let page = match call(move || services.audit.list(&who, filter)).await {
        Ok(p) => p,
        Err(e) => {
            return html(
                super::status_of(&e),
                layout::page(
                    &console,
                    &session,
                    "Audit log",
                    error_box(&e, Some(&project)),
                ),
            )
        }
    };
    let base = format!("/projects/{}/audit", form::encode(&project));
    let value = |name: &str| q.get(name).unwrap_or_default().to_owned();
    let keep = |after: &str| {
        let mut out = format!("{base}?after={}", form::encode(after));
        for name in ["actor", "entity", "key"] {
            if let Some(v) = q.text(name) {
                out.push_str(&format!("&{name}={}", form::encode(&v)));
            }
        }
        out
    };
    let body = html! {
        p.crumbs { a href=(format!("/projects/{}", form::encode(&project))) { (project) } " / Audit log" }
        h1 { "Audit log" }
        p.hint { "Every change to this project's flags, groups, metrics, cohorts, deployments, webhooks, drafts and policies: who made it, with which role, when, what changed and why." }
        form #audit-filter method="get" action=(base) {
            label { "Person" input name="actor" value=(value("actor")) placeholder="key name"; }
            label { "Entity" select name="entity" {
                option value="" { "any" }
                @for e in ["flag", "draft", "rollout", "approval_policy", "mutex_group", "holdout", "metric", "cohort", "deployment", "webhook", "project"] {
                    option value=(e) selected[value("entity") == e] { (e) }
                }
            } }
            label { "Key" input name="key" value=(value("key")); }
            button type="submit" { "Filter" }
        }
        @if page.entries.is_empty() { p.empty { "No change matches." } }
        table #audit {
            thead { tr { th { "When (UTC)" } th { "Who" } th { "What" } th { "Action" } th { "Changes" } th { "Why" } } }
            tbody { @for e in &page.entries {
                tr data-entity=(e.entity) {
                    td { (when(e.meta.at)) }
                    td.actor { (e.meta.actor) @if let Some(r) = e.meta.role { " (" (r.as_str()) ")" } }
                    td { (e.entity) " " @if e.entity == "flag" { a href=(flag_href(&e.project, &e.key)) { (e.key) } }
                        @else if e.entity == "draft" { a href=(draft_href(&e.project, &e.key)) { (e.key) } }
                        @else { (e.key) } " v" (e.meta.version) }
                    td.action { (e.meta.action) }
                    td.summary { (e.meta.summary) }
                    td.comment { (e.meta.comment.clone().unwrap_or_default()) }
                }
            } }
        }
        @if let Some(next) = &page.next { p { a #audit-older href=(keep(next)) { "Older changes" } } }
    };
    html(
        StatusCode::OK,
        layout::page(&console, &session, "Audit log", body),
    )
}

#[cfg(test)]
mod tests {
    use super::utc_millis;

    #[test]
    fn datetime_local_reads_as_utc() {
        for (text, expected) in [
            ("1970-01-01T00:00", Some(0)),
            ("2026-12-07T10:30", Some(1_796_639_400_000)),
            ("2024-02-29T23:59", Some(1_709_251_140_000)),
            ("2026-12-07T10:30:15", Some(1_796_639_415_000)),
            ("2025-02-29T10:30", None),
            ("2026-13-01T00:00", None),
            ("yesterday", None),
        ] {
            assert_eq!(utc_millis(text), expected, "{text}");
        }
    }
}
