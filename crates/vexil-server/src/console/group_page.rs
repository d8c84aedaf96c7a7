//! A group's page: its slots (mutual-exclusion groups: each slot's percentage and the members
//! in it) or what it holds out (holdout groups), its members with their state and links, the
//! edit form (what moves users is disabled, with the reason, while a member is active),
//! archiving apart and confirmed, and a link to its history (`history.rs`).
//!
//! Hooks: `h1`, `.badge`s, `#group-key`, `a#history-link`; `table#slot-table` rows
//! `tr[data-slot]` with `.members`; `section#held-out`; `table#members` rows `tr[data-member]`
//! with a state `.badge`; `section#edit` with `form#group-settings` and `#locked-reason`;
//! `section#archive-zone` with `form#archive-group` or `form#unarchive-group`.

use axum::extract::{Path, RawQuery, Request};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use vexil_core::service::{GroupPatch, GroupView, HoldoutPatch, MutexGroupPatch};
use vexil_core::{Error, FieldError, Group, GroupKind};

use super::flags::parse_mode;
use super::groups::{
    common_fields, holdout_fields, kind_label, parse_inclusion, parse_percentage, parse_slot_ref,
    parse_slots, shape, slot_editor, slot_values, Values,
};
use super::layout::{self, csrf, error_box, notice, when};
use super::{
    call, flag_href, form, group_href, html, see_other, submit, ConsoleState, Fields, Session, St,
};

/// What the page shows: the group, and for a holdout the slots it may run in.
struct PageData {
    view: GroupView,
    mutexes: Vec<GroupView>,
}

/// A render's extras: a notice, or a refusal with the form as it was sent.
#[derive(Default)]
struct Extra {
    notice: Option<String>,
    error: Option<(StatusCode, Markup)>,
    draft: Option<Fields>,
}

/// `GET /projects/{project}/{mutex-groups|holdouts}/{key}`.
pub(crate) async fn show(
    state: St,
    session: Session,
    Path((project, key)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    kind: GroupKind,
) -> Response {
    let q = Fields::parse(query.unwrap_or_default().as_bytes());
    let extra = Extra {
        notice: q.text("notice"),
        ..Extra::default()
    };
    render(&state.0, &session, &project, &key, kind, extra).await
}

async fn render(
    console: &ConsoleState,
    session: &Session,
    project: &str,
    key: &str,
    kind: GroupKind,
    extra: Extra,
) -> Response {
    let services = console.services.clone();
    let (p, k) = (project.to_owned(), key.to_owned());
    let loaded = call(move || {
        let view = match services.groups.get(&p, kind, &k) {
            Ok(view) => view,
            // A flag whose key looks like a group's, linked from a refusal.
            Err(e @ Error::NotFound { .. }) => match services.flags.get(Some(&p), &k) {
                Ok(_) => return Ok(None),
                Err(_) => return Err(e),
            },
            Err(e) => return Err(e),
        };
        let mutexes = match kind {
            GroupKind::Holdout => services
                .groups
                .list(&p, GroupKind::MutualExclusion, false)?,
            GroupKind::MutualExclusion => Vec::new(),
        };
        Ok(Some(PageData { view, mutexes }))
    })
    .await;
    let data = match loaded {
        Ok(Some(data)) => data,
        Ok(None) => return see_other(&flag_href(project, key)),
        Err(e) => {
            return html(
                super::status_of(&e),
                layout::page(console, session, "Group", error_box(&e, Some(project))),
            )
        }
    };
    let status = extra.error.as_ref().map_or(StatusCode::OK, |(s, _)| *s);
    let title = data.view.group.name.clone();
    html(
        status,
        layout::page(
            console,
            session,
            &title,
            page(console, session, &data, extra),
        ),
    )
}

fn page(console: &ConsoleState, session: &Session, data: &PageData, extra: Extra) -> Markup {
    let v = &data.view;
    let g = &v.group;
    let base = group_href(&g.project, g.kind, &g.key);
    html! {
        p.crumbs { a href="/projects" { "Projects" } " / " a href=(format!("/projects/{}", form::encode(&g.project))) { (g.project) }
            " / " a href=(format!("/projects/{}/groups", form::encode(&g.project))) { "Groups" } " / " (g.key) }
        div.titlebar {
            h1 { (g.name) }
            span class=(format!("badge type-{}", g.kind.as_str())) { (kind_label(g.kind)) }
            span class=(format!("badge mode-{}", g.evaluation_mode.as_str())) { (g.evaluation_mode.as_str()) }
            @if g.archived { span.badge.state-archived { "archived" } }
            @else if v.locked { span.badge.state-active { "in use" } }
        }
        p { "Key " code #group-key { (g.key) } " · " (shape(g)) " · bucketed by " code { (g.bucketing_unit) }
            " · version " (g.version) " · updated " (when(g.updated_at)) " by " (g.updated_by)
            " · " a #history-link href=(format!("{base}/history")) { "History" }
            @if g.kind == GroupKind::Holdout {
                " · " a #holdout-results-link href=(format!("{base}/results")) { "Results" }
            } }
        @if !g.description.is_empty() { p.description { (g.description) } }
        (notice(extra.notice.as_deref()))
        @if let Some((_, e)) = &extra.error { (e) }
        @match g.kind {
            GroupKind::MutualExclusion => (slots(v)),
            GroupKind::Holdout => (held_out(v)),
        }
        (members(v))
        @if super::writes(session) {
            (edit(console, session, data, &base, extra.draft.as_ref()))
            (archive_zone(console, session, v, &base))
        }
    }
}

/// A member's key with its link: a flag's page, or a holdout's.
fn member_link(project: &str, key: &str, kind: &str) -> Markup {
    let href = if kind == "holdout" {
        group_href(project, GroupKind::Holdout, key)
    } else {
        flag_href(project, key)
    };
    html! { a href=(href) { code { (key) } } }
}

fn activity(active: bool) -> Markup {
    if active {
        html! { span.badge.state-active { "active" } }
    } else {
        html! { span.badge.state-inactive { "inactive" } }
    }
}

fn slots(v: &GroupView) -> Markup {
    let g = &v.group;
    html! {
        section #slots-section {
            h2 { "Slots" }
            p.hint { "Each user falls in at most one slot (by " code { (g.bucketing_unit) } "); the experiments of a slot see only its users." }
            table #slot-table {
                thead { tr { th { "Slot" } th { "Users" } th { "Members" } } }
                tbody {
                    @for s in &g.slots {
                        tr data-slot=(s.index) {
                            td { code { (s.key) } }
                            td.percentage { (s.percentage) "%" }
                            td.members {
                                @let here: Vec<_> = v.members.iter().filter(|m| m.slot == Some(s.index)).collect();
                                @if here.is_empty() { span.hint { "free" } }
                                @for (i, m) in here.iter().enumerate() {
                                    @if i > 0 { ", " }
                                    (member_link(&g.project, &m.key, &m.kind)) " " (activity(m.active))
                                    @if m.shared { " " span.badge { "shared" } }
                                }
                            }
                        }
                    }
                    tr.unallocated { td { "unallocated" } td { (g.unallocated()) "%" } td { span.hint { "in no slot: these users get " code { "off" } " from every member" } } }
                }
            }
        }
    }
}

fn held_out(v: &GroupView) -> Markup {
    let g = &v.group;
    let list = |ids: &[String], cohorts: &[String]| {
        html! {
            @if ids.is_empty() && cohorts.is_empty() { "nobody" }
            @for id in ids { code { (id) } " " }
            @for c in cohorts { "cohort " code { (c) } " " }
        }
    };
    html! {
        section #held-out {
            h2 { "Held out" }
            p { strong { (g.percentage.unwrap_or_default()) "%" } " of users (by " code { (g.bucketing_unit) } ") get "
                code { "off" } " from every member." }
            p { "Always held out: " (list(&g.inclusions.ids, &g.inclusions.cohorts)) }
            p { "Never held out: " (list(&g.exclusions.ids, &g.exclusions.cohorts)) }
            @if let Some(m) = &g.mutex_group {
                p { "Runs in " code { "slot-" (m.slot) } " of "
                    a href=(group_href(&g.project, GroupKind::MutualExclusion, &m.group)) { code { (m.group) } }
                    @if m.shared { " (shared)" } "." }
            }
        }
    }
}

fn members(v: &GroupView) -> Markup {
    let g = &v.group;
    html! {
        section #members-section {
            h2 { "Members" }
            @if v.members.is_empty() {
                p.hint { "No member yet. A flag joins from the Dependencies card on its page." }
            } @else {
                table #members {
                    thead { tr { th { "Member" } th { "Name" } th { "Type" } th { "Mode" }
                        @if g.kind == GroupKind::MutualExclusion { th { "Slot" } } th { "State" } } }
                    tbody {
                        @for m in &v.members {
                            tr data-member=(m.key) {
                                td { (member_link(&g.project, &m.key, &m.kind)) }
                                td { (m.name) }
                                td { (m.kind) }
                                td { (m.evaluation_mode.as_str()) }
                                @if g.kind == GroupKind::MutualExclusion {
                                    td { "slot-" (m.slot.unwrap_or_default()) @if m.shared { " (shared)" } }
                                }
                                td { (activity(m.active)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn edit(
    console: &ConsoleState,
    session: &Session,
    data: &PageData,
    base: &str,
    draft: Option<&Fields>,
) -> Markup {
    let v = &data.view;
    let g = &v.group;
    let values = Values { draft };
    let active: Vec<&str> = v
        .members
        .iter()
        .filter(|m| m.active)
        .map(|m| m.key.as_str())
        .collect();
    let fixed = match g.kind {
        GroupKind::MutualExclusion => "The slots, the bucketing unit and the salt",
        GroupKind::Holdout => "The held-out percentage, the bucketing unit and the salt",
    };
    html! {
        section #edit {
            h2 { "Edit" }
            @if g.archived {
                p.hint { "An archived group cannot change; unarchive it first." }
            } @else {
                @if v.locked {
                    p.warning #locked-reason { (fixed) " are fixed while a member is active ("
                        @for (i, m) in v.members.iter().filter(|m| m.active).enumerate() {
                            @if i > 0 { ", " } (member_link(&g.project, &m.key, &m.kind))
                        }
                        "): changing them would move users between experiments. Deactivate "
                        @if active.len() == 1 { "it" } @else { "them" } " to change these." }
                }
                form #group-settings method="post" action=(base) {
                    (csrf(console, session))
                    input type="hidden" name="version" value=(g.version);
                    (common_fields(g.kind, &values, Some(g), v.locked))
                    @match g.kind {
                        GroupKind::MutualExclusion => (slot_editor(&slot_values(&values, Some(g)), v.locked)),
                        GroupKind::Holdout => (holdout_fields(&values, Some(g), v.locked, &data.mutexes)),
                    }
                    button type="submit" { "Save group" }
                }
            }
        }
    }
}

fn archive_zone(console: &ConsoleState, session: &Session, v: &GroupView, base: &str) -> Markup {
    let g = &v.group;
    html! {
        section #archive-zone .danger-zone {
            @if g.archived {
                h2 { "Unarchive" }
                p { "Unarchiving lets flags join this group again, and its members be activated." }
                form #unarchive-group method="post" action=(format!("{base}/unarchive")) {
                    (csrf(console, session))
                    input type="hidden" name="version" value=(g.version);
                    button type="submit" { "Unarchive " (g.key) }
                }
            } @else {
                h2 { "Archive" }
                p { "An archived group takes no new members, and its members cannot be activated while it is archived. "
                    "A group with active members cannot be archived." }
                form #archive-group method="post" action=(format!("{base}/archive"))
                    data-confirm=(format!("Archive {}? Its members cannot be activated until it is unarchived.", g.key)) {
                    (csrf(console, session))
                    input type="hidden" name="version" value=(g.version);
                    button.danger type="submit" { "Archive " (g.key) }
                }
            }
        }
    }
}

/// The change a form asks for (absent fields, such as disabled ones, stay as they are).
fn patch(kind: GroupKind, f: &Fields) -> vexil_core::Result<GroupPatch> {
    let mut errors: Vec<FieldError> = Vec::new();
    let name = f.text("name");
    let description = f.get("description").map(|d| d.trim().to_owned());
    let evaluation_mode = parse_mode(f.get("evaluation_mode"));
    let bucketing_unit = f.get("bucketing_unit").map(|u| u.trim().to_owned());
    let bucketing_salt = f.get("bucketing_salt").map(|s| s.trim().to_owned());
    let patch = match kind {
        GroupKind::MutualExclusion => {
            let slots = if f.get("slots_present").is_some() {
                parse_slots(f).map_err(|e| errors.extend(e)).ok()
            } else {
                None
            };
            GroupPatch::MutualExclusion(MutexGroupPatch {
                name,
                description,
                evaluation_mode,
                bucketing_unit,
                bucketing_salt,
                slots,
            })
        }
        GroupKind::Holdout => {
            let percentage = parse_percentage(f)
                .map_err(|e| errors.push(e))
                .ok()
                .flatten();
            let mutex_group = if f.get("mutex_slot").is_some() {
                parse_slot_ref(f).map_err(|e| errors.push(e)).ok()
            } else {
                None
            };
            let inclusion = |prefix: &str| {
                let present = f.get(&format!("{prefix}_ids")).is_some()
                    || f.get(&format!("{prefix}_cohorts")).is_some();
                present.then(|| parse_inclusion(f, prefix))
            };
            GroupPatch::Holdout(HoldoutPatch {
                name,
                description,
                evaluation_mode,
                bucketing_unit,
                bucketing_salt,
                percentage,
                inclusions: inclusion("inclusions"),
                exclusions: inclusion("exclusions"),
                mutex_group,
                // The program's metrics are set through the API for now.
                metrics: None,
            })
        }
    };
    if errors.is_empty() {
        Ok(patch)
    } else {
        Err(Error::Invalid(errors))
    }
}

/// After a change: the page with a notice, or the page again with the reason (and, for the
/// edit form, the form as it was sent).
async fn answer(
    console: &ConsoleState,
    session: &Session,
    (project, key, kind): (&str, &str, GroupKind),
    submitted: Result<
        (
            Fields,
            vexil_core::Result<vexil_core::service::Saved<Group>>,
        ),
        Response,
    >,
    (what, edit_form): (&str, bool),
) -> Response {
    match submitted {
        Err(refusal) => refusal,
        Ok((_, Ok(saved))) => {
            let mut text = what.to_owned();
            for w in &saved.warnings {
                text.push_str(" Warning: ");
                text.push_str(w);
            }
            see_other(&format!(
                "{}?notice={}",
                group_href(project, kind, key),
                form::encode(&text)
            ))
        }
        Ok((fields, Err(e))) => {
            let extra = Extra {
                error: Some((super::status_of(&e), error_box(&e, Some(project)))),
                draft: edit_form.then_some(fields),
                ..Extra::default()
            };
            render(console, session, project, key, kind, extra).await
        }
    }
}

/// `POST /projects/{project}/{mutex-groups|holdouts}/{key}`: the edit form.
pub(crate) async fn update(
    state: St,
    session: Session,
    Path((project, key)): Path<(String, String)>,
    request: Request,
    kind: GroupKind,
) -> Response {
    let console = state.0;
    let (p, k) = (project.clone(), key.clone());
    let submitted = submit(&console, &session, request, move |s, who, f| {
        s.groups.update(who, &p, &k, f.version(), patch(kind, f)?)
    })
    .await;
    answer(
        &console,
        &session,
        (&project, &key, kind),
        submitted,
        ("Group saved.", true),
    )
    .await
}

/// `POST /projects/{project}/{mutex-groups|holdouts}/{key}/archive` (and `/unarchive`).
pub(crate) async fn archive(
    state: St,
    session: Session,
    Path((project, key)): Path<(String, String)>,
    request: Request,
    kind: GroupKind,
    archived: bool,
) -> Response {
    let console = state.0;
    let (p, k) = (project.clone(), key.clone());
    let submitted = submit(&console, &session, request, move |s, who, f| {
        if archived {
            s.groups.archive(who, &p, kind, &k, f.version())
        } else {
            s.groups.unarchive(who, &p, kind, &k, f.version())
        }
    })
    .await;
    let what = if archived { "Archived." } else { "Unarchived." };
    answer(
        &console,
        &session,
        (&project, &key, kind),
        submitted,
        (what, false),
    )
    .await
}
