//! A project's groups: the list of its mutual-exclusion groups and holdout groups (archived
//! ones behind a toggle) and the forms that create them; and the form pieces the group's page
//! shares with them (the slot editor, the holdout's percentage, inclusions and exclusions, the
//! slot a holdout runs in) with their parsing. A refused form is shown again as it was sent,
//! with the reason.
//!
//! Hooks: `table#groups` rows `tr[data-group][data-type]` with `.members`; `a#archived-toggle`;
//! `form#new-mutex` and `form#new-holdout` (`section#create-mutex`, `section#create-holdout`);
//! the slot editor `fieldset#slots` with `.slot-row input[name=slots]`, `button.remove-slot`,
//! `button#add-slot`, `.slot-total`; `select[name=mutex_slot]`, `input[name=mutex_shared]`.

use axum::extract::{Path, RawQuery, Request};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use vexil_core::service::{GroupView, NewHoldout, NewMutexGroup, ProjectView, SlotSpec};
use vexil_core::{EvaluationMode, FieldError, Group, GroupKind, Inclusion, SlotRef};

use super::flags::parse_mode;
use super::form::{items, Fields};
use super::layout::{self, csrf, error_box, notice};
use super::{call, form, group_href, html, see_other, submit, ConsoleState, Session, St};

/// What a form field shows: the refused form's value, else the stored one.
pub(crate) struct Values<'a> {
    pub draft: Option<&'a Fields>,
}

impl Values<'_> {
    /// The draft's value of `name` when the draft has the field, else `stored` (a disabled
    /// field is not sent, and shows what is stored).
    pub fn get(&self, name: &str, stored: impl FnOnce() -> String) -> String {
        self.draft
            .and_then(|d| d.get(name))
            .map_or_else(stored, str::to_owned)
    }
}

/// `mutual exclusion` or `holdout`.
pub(crate) fn kind_label(kind: GroupKind) -> &'static str {
    match kind {
        GroupKind::MutualExclusion => "mutual exclusion",
        GroupKind::Holdout => "holdout",
    }
}

/// `50% · 30% (20% unallocated)` or `holds out 5%`.
pub(crate) fn shape(g: &Group) -> String {
    match g.kind {
        GroupKind::MutualExclusion => {
            let slots: Vec<String> = g
                .slots
                .iter()
                .map(|s| format!("{}%", s.percentage))
                .collect();
            format!("{} ({}% unallocated)", slots.join(" · "), g.unallocated())
        }
        GroupKind::Holdout => format!("holds out {}%", g.percentage.unwrap_or_default()),
    }
}

/// Name, key (on creation), description, evaluation mode and bucketing unit (and salt, once
/// the group exists). `locked` disables what moves users.
pub(crate) fn common_fields(
    kind: GroupKind,
    v: &Values<'_>,
    existing: Option<&Group>,
    locked: bool,
) -> Markup {
    let stored = |f: fn(&Group) -> String| existing.map(f).unwrap_or_default();
    let name = v.get("name", || stored(|g| g.name.clone()));
    let description = v.get("description", || stored(|g| g.description.clone()));
    let mode = v.get("evaluation_mode", || {
        existing
            .map_or("local", |g| g.evaluation_mode.as_str())
            .to_owned()
    });
    let unit = v.get("bucketing_unit", || {
        existing.map_or_else(|| "user_id".to_owned(), |g| g.bucketing_unit.clone())
    });
    let id = |what: &str| format!("{}-{what}", kind.key_prefix().trim_end_matches('-'));
    html! {
        label { "Name" input name="name" value=(name) required
            data-key-target=[existing.is_none().then(|| id("key"))]; }
        @if existing.is_none() {
            label { "Key" input id=(id("key")) name="key" value=(v.get("key", String::new))
                data-key-prefix=(kind.key_prefix()) pattern="[A-Za-z0-9._\\-]+";
                span.hint { "Starts with " code { (kind.key_prefix()) } "; generated from the name, fixed once the group exists." } }
        }
        label { "Description" textarea name="description" rows="2" { (description) } }
        label { "Evaluation mode"
            select name="evaluation_mode" {
                option value="local" selected[mode == "local"] { "Local (local and remote flags can join)" }
                option value="remote" selected[mode == "remote"] { "Remote (only remote flags can join)" }
            }
        }
        label { "Bucketing unit"
            input name="bucketing_unit" value=(unit) list="bucketing-units" required disabled[locked];
            span.hint { "What is kept together: usually the user; a group type such as company keeps a whole company on one side." } }
        @if let Some(g) = existing {
            label { "Bucketing salt"
                input name="bucketing_salt" value=(v.get("bucketing_salt", || g.bucketing_salt.clone())) required disabled[locked]; }
            p.warning { "Changing the unit or the salt moves users between slots, or in and out of the holdout." }
        }
        datalist #bucketing-units { option value="user_id"; option value="device_id"; option value="company"; }
    }
}

fn slot_row(number: &str, value: &str) -> Markup {
    html! {
        div.slot-row {
            label.inline { "Slot " span.slot-number { (number) } " percentage "
                input type="number" name="slots" min="1" max="100" step="1" value=(value) required; "%" }
            button.remove-slot type="button" { "Remove slot" }
        }
    }
}

/// The slot rows, with buttons that add and remove rows (the script) and the running total.
pub(crate) fn slot_editor(values: &[String], locked: bool) -> Markup {
    html! {
        fieldset #slots data-slots="" disabled[locked] {
            legend { "Slots" }
            input type="hidden" name="slots_present" value="1";
            div.slot-rows {
                @for (i, v) in values.iter().enumerate() { (slot_row(&(i + 1).to_string(), v)) }
            }
            p.hint.slot-total { "The slots may total at most 100%; the rest of the users are in no slot (unallocated)." }
            button #add-slot type="button" { "Add a slot" }
            template #slot-template { (slot_row("", "")) }
        }
    }
}

/// The slot percentages a draft or a group gives the editor.
pub(crate) fn slot_values(v: &Values<'_>, existing: Option<&Group>) -> Vec<String> {
    match (v.draft, existing) {
        (Some(d), _) if d.get("slots_present").is_some() => d.all("slots"),
        (_, Some(g)) => g.slots.iter().map(|s| s.percentage.to_string()).collect(),
        (_, None) => vec!["50".to_owned(), "50".to_owned()],
    }
}

/// A holdout's percentage, inclusions, exclusions and mutual-exclusion slot.
pub(crate) fn holdout_fields(
    v: &Values<'_>,
    existing: Option<&Group>,
    locked: bool,
    mutexes: &[GroupView],
) -> Markup {
    let inclusion = |g: &Group, field: &str| {
        let i = if field.starts_with("inclusions") {
            &g.inclusions
        } else {
            &g.exclusions
        };
        if field.ends_with("_ids") {
            i.ids.join("\n")
        } else {
            i.cohorts.join(", ")
        }
    };
    let text = |field: &'static str| {
        v.get(field, || {
            existing.map(|g| inclusion(g, field)).unwrap_or_default()
        })
    };
    let percentage = v.get("percentage", || {
        existing
            .and_then(|g| g.percentage)
            .map_or_else(|| "5".to_owned(), |p| p.to_string())
    });
    let slot = v.get("mutex_slot", || {
        existing
            .and_then(|g| g.mutex_group.as_ref())
            .map(|m| format!("{}/{}", m.group, m.slot))
            .unwrap_or_default()
    });
    let shared = match v.draft {
        Some(d) => d.get("mutex_shared") == Some("true"),
        None => existing
            .and_then(|g| g.mutex_group.as_ref())
            .is_some_and(|m| m.shared),
    };
    html! {
        label { "Held-out percentage"
            input type="number" name="percentage" min="1" max="99" step="1" value=(percentage) required disabled[locked]; "%"
            span.hint { "These users get " code { "off" } " from every flag in the holdout, so you can measure the experiments' combined effect." } }
        fieldset {
            legend { "Always held out" }
            label { "User or device ids (one per line)" textarea name="inclusions_ids" rows="2" { (text("inclusions_ids")) } }
            label { "Cohort ids (comma-separated)" input name="inclusions_cohorts" value=(text("inclusions_cohorts")); }
        }
        fieldset {
            legend { "Never held out" }
            label { "User or device ids (one per line)" textarea name="exclusions_ids" rows="2" { (text("exclusions_ids")) } }
            label { "Cohort ids (comma-separated)" input name="exclusions_cohorts" value=(text("exclusions_cohorts")); }
        }
        label { "Runs in mutual-exclusion slot"
            select name="mutex_slot" {
                option value="" { "None: the holdout applies to all users" }
                @for m in mutexes {
                    @for s in &m.group.slots {
                        @let value = format!("{}/{}", m.group.key, s.index);
                        @let holders: Vec<&str> = m.members.iter()
                            .filter(|h| h.slot == Some(s.index) && existing.is_none_or(|g| g.key != h.key))
                            .map(|h| h.key.as_str()).collect();
                        option value=(value) selected[slot == value] {
                            (m.group.name) " (" (m.group.key) "): " (s.key) ", " (s.percentage) "% · "
                            @if holders.is_empty() { "free" } @else { "held by " (holders.join(", ")) }
                        }
                    }
                }
            }
        }
        label.inline { input type="checkbox" name="mutex_shared" value="true" checked[shared];
            " Share that slot with the experiments that hold it" }
    }
}

/// A whole number from 0 to 255 typed in `name`, or the error naming `field`.
fn number(text: &str, field: &str, what: &str) -> Result<u8, FieldError> {
    text.trim().parse::<u8>().map_err(|_| {
        FieldError::new(
            field,
            "not_a_number",
            format!("{what} must be a whole number"),
        )
    })
}

/// The slots of a form, in order.
pub(crate) fn parse_slots(f: &Fields) -> Result<Vec<SlotSpec>, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut slots = Vec::new();
    for (i, text) in f.all("slots").iter().enumerate() {
        match number(
            text,
            &format!("slots[{i}].percentage"),
            &format!("the percentage of slot {}", i + 1),
        ) {
            Ok(percentage) => slots.push(SlotSpec { percentage }),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(slots)
    } else {
        Err(errors)
    }
}

/// The held-out percentage, when the form has the field (it is disabled while locked).
pub(crate) fn parse_percentage(f: &Fields) -> Result<Option<u8>, FieldError> {
    f.get("percentage")
        .map(|p| number(p, "percentage", "the held-out percentage"))
        .transpose()
}

pub(crate) fn parse_inclusion(f: &Fields, prefix: &str) -> Inclusion {
    Inclusion {
        ids: items(f.get(&format!("{prefix}_ids")).unwrap_or_default()),
        cohorts: items(f.get(&format!("{prefix}_cohorts")).unwrap_or_default()),
    }
}

/// The slot a holdout runs in: `group/index`, or none when blank.
pub(crate) fn parse_slot_ref(f: &Fields) -> Result<Option<SlotRef>, FieldError> {
    let Some(value) = f.text("mutex_slot") else {
        return Ok(None);
    };
    let (group, slot) = value
        .rsplit_once('/')
        .and_then(|(g, s)| Some((g.to_owned(), s.parse::<u8>().ok()?)))
        .ok_or_else(|| {
            FieldError::new("mutex_group", "invalid_slot", "choose a slot from the list")
        })?;
    Ok(Some(SlotRef {
        group,
        slot,
        shared: f.get("mutex_shared") == Some("true"),
    }))
}

fn invalid(errors: Vec<FieldError>) -> vexil_core::Error {
    vexil_core::Error::Invalid(errors)
}

/// The project, its groups (current or archived), and the mutual-exclusion groups a new
/// holdout may run in.
struct Listing {
    project: ProjectView,
    groups: Vec<GroupView>,
    mutexes: Vec<GroupView>,
}

async fn load(
    console: &ConsoleState,
    session: &Session,
    project: &str,
    archived: bool,
) -> vexil_core::Result<Listing> {
    let services = console.services.clone();
    let who = super::actor(session);
    let p = project.to_owned();
    call(move || {
        let project = services.projects.get_for(&who, &p)?;
        let mut groups = services
            .groups
            .list(&p, GroupKind::MutualExclusion, archived)?;
        let mutexes = if archived {
            services
                .groups
                .list(&p, GroupKind::MutualExclusion, false)?
        } else {
            groups.clone()
        };
        groups.extend(services.groups.list(&p, GroupKind::Holdout, archived)?);
        Ok(Listing {
            project,
            groups,
            mutexes,
        })
    })
    .await
}

/// `GET /projects/{project}/groups?archived=true`.
pub(crate) async fn list(
    state: St,
    session: Session,
    Path(project): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let q = Fields::parse(query.unwrap_or_default().as_bytes());
    let archived = q.get("archived") == Some("true");
    render(
        &state.0,
        &session,
        &project,
        archived,
        q.text("notice"),
        None,
    )
    .await
}

/// A refused creation: the kind, the answer's status and reason, and what was typed.
type Refused = (GroupKind, StatusCode, Markup, Fields);

async fn render(
    console: &ConsoleState,
    session: &Session,
    project: &str,
    archived: bool,
    notice_text: Option<String>,
    refused: Option<Refused>,
) -> Response {
    let listing = match load(console, session, project, archived).await {
        Ok(l) => l,
        Err(e) => {
            return html(
                super::status_of(&e),
                layout::page(console, session, "Groups", error_box(&e, Some(project))),
            )
        }
    };
    let status = refused.as_ref().map_or(StatusCode::OK, |r| r.1);
    let p = &listing.project;
    let base = format!("/projects/{}", form::encode(&p.key));
    let body = html! {
        p.crumbs { a href="/projects" { "Projects" } " / " a href=(base) { (p.name) } " / Groups" }
        h1 { "Groups of " (p.name) }
        p.hint { "A mutual-exclusion group keeps each user in at most one of its slots, so experiments in different slots never share a user. "
            "A holdout group keeps a share of users out of all of its experiments (they get " code { "off" } "), to measure their combined effect. "
            "Flags join groups from the Dependencies card on their page." }
        (notice(notice_text.as_deref()))
        p { @if archived {
                a #archived-toggle href=(format!("{base}/groups")) { "Show current groups" } " · showing archived groups"
            } @else {
                a #archived-toggle href=(format!("{base}/groups?archived=true")) { "Show archived groups" }
            } }
        (table(&p.key, &listing.groups, archived))
        (create_section(console, session, &p.key, GroupKind::MutualExclusion, &listing.mutexes, refused.as_ref()))
        (create_section(console, session, &p.key, GroupKind::Holdout, &listing.mutexes, refused.as_ref()))
    };
    html(status, layout::page(console, session, "Groups", body))
}

fn table(project: &str, groups: &[GroupView], archived: bool) -> Markup {
    html! {
        table #groups {
            thead { tr { th { "Name" } th { "Key" } th { "Type" } th { "Mode" } th { "Slots or held out" } th { "Members" } th { "State" } } }
            tbody {
                @for v in groups {
                    @let g = &v.group;
                    tr data-group=(g.key) data-type=(g.kind.as_str()) {
                        td { a href=(group_href(project, g.kind, &g.key)) { (g.name) } }
                        td { code { (g.key) } }
                        td { span class=(format!("badge type-{}", g.kind.as_str())) { (kind_label(g.kind)) } }
                        td { span class=(format!("badge mode-{}", g.evaluation_mode.as_str())) { (g.evaluation_mode.as_str()) } }
                        td { (shape(g)) }
                        td.members { (v.members.len()) }
                        td { @if g.archived { span.badge.archived { "archived" } }
                             @else if v.locked { span.badge.state-active { "in use" } }
                             @else { span.badge { "idle" } } }
                    }
                }
            }
        }
        @if groups.is_empty() {
            p.hint { @if archived { "No archived group." } @else { "No group yet: create one below." } }
        }
    }
}

fn create_section(
    console: &ConsoleState,
    session: &Session,
    project: &str,
    kind: GroupKind,
    mutexes: &[GroupView],
    refused: Option<&Refused>,
) -> Markup {
    let refused = refused.filter(|r| r.0 == kind);
    let v = Values {
        draft: refused.map(|r| &r.3),
    };
    let action = format!(
        "/projects/{}/{}",
        form::encode(project),
        super::group_segment(kind)
    );
    let (section, id, title, button) = match kind {
        GroupKind::MutualExclusion => (
            "create-mutex",
            "new-mutex",
            "Create a mutual-exclusion group",
            "Create mutual-exclusion group",
        ),
        GroupKind::Holdout => (
            "create-holdout",
            "new-holdout",
            "Create a holdout group",
            "Create holdout group",
        ),
    };
    html! {
        @if super::writes(session) {
            section id=(section) {
                h2 { (title) }
                @if let Some(r) = refused { (r.2) }
                form id=(id) method="post" action=(action) {
                    (csrf(console, session))
                    (common_fields(kind, &v, None, false))
                    @match kind {
                        GroupKind::MutualExclusion => (slot_editor(&slot_values(&v, None), false)),
                        GroupKind::Holdout => (holdout_fields(&v, None, false, mutexes)),
                    }
                    button type="submit" { (button) }
                }
            }
        }
    }
}

fn new_mutex(f: &Fields) -> vexil_core::Result<NewMutexGroup> {
    Ok(NewMutexGroup {
        name: f.text("name").unwrap_or_default(),
        key: f.text("key"),
        description: f.text("description").unwrap_or_default(),
        evaluation_mode: parse_mode(f.get("evaluation_mode")).unwrap_or(EvaluationMode::Local),
        bucketing_unit: f
            .text("bucketing_unit")
            .unwrap_or_else(|| "user_id".to_owned()),
        bucketing_salt: None,
        slots: parse_slots(f).map_err(invalid)?,
    })
}

fn new_holdout(f: &Fields) -> vexil_core::Result<NewHoldout> {
    let mut errors = Vec::new();
    let percentage = match parse_percentage(f) {
        Ok(p) => p.unwrap_or(0),
        Err(e) => {
            errors.push(e);
            0
        }
    };
    let mutex_group = parse_slot_ref(f).unwrap_or_else(|e| {
        errors.push(e);
        None
    });
    if !errors.is_empty() {
        return Err(invalid(errors));
    }
    Ok(NewHoldout {
        name: f.text("name").unwrap_or_default(),
        key: f.text("key"),
        description: f.text("description").unwrap_or_default(),
        evaluation_mode: parse_mode(f.get("evaluation_mode")).unwrap_or(EvaluationMode::Local),
        bucketing_unit: f
            .text("bucketing_unit")
            .unwrap_or_else(|| "user_id".to_owned()),
        bucketing_salt: None,
        percentage,
        inclusions: parse_inclusion(f, "inclusions"),
        exclusions: parse_inclusion(f, "exclusions"),
        mutex_group,
        metrics: Vec::new(),
    })
}

/// `POST /projects/{project}/mutex-groups` and `POST /projects/{project}/holdouts`.
pub(crate) async fn create(
    state: St,
    session: Session,
    Path(project): Path<String>,
    request: Request,
    kind: GroupKind,
) -> Response {
    let console = state.0;
    let p = project.clone();
    let submitted = submit(&console, &session, request, move |s, who, f| match kind {
        GroupKind::MutualExclusion => s.groups.create_mutex(who, &p, new_mutex(f)?),
        GroupKind::Holdout => s.groups.create_holdout(who, &p, new_holdout(f)?),
    })
    .await;
    match submitted {
        Err(refusal) => refusal,
        Ok((_, Ok(saved))) => see_other(&format!(
            "{}?notice={}",
            group_href(&project, kind, &saved.value.key),
            form::encode("Created. Flags join it from the Dependencies card on their page.")
        )),
        Ok((fields, Err(e))) => {
            let refused = (
                kind,
                super::status_of(&e),
                error_box(&e, Some(&project)),
                fields,
            );
            render(&console, &session, &project, false, None, Some(refused)).await
        }
    }
}
