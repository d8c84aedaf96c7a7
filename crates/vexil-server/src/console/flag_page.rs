//! The flag page: state and actions, Configure (deployments, advanced settings), variants,
//! the Experiment card of an experiment (`experiment.rs`: results link and settings), the
//! Allocation panel, the Dependencies card, QA ("Test a user") and exposures.
//!
//! Readers get `#read-only` and read-only `section#variants` and `section#dependencies` in place
//! of every editing section and state button.
//!
//! Hooks: `h1`, a state `.badge`, `section#overview li` (what it serves),
//! `form#activate|#deactivate|#archive|#unarchive` (each with its consequence in `data-confirm`);
//! `section#configure` with `form#settings` and `details#advanced`; `section#variants` rows
//! `tr[data-variant]` with `form.edit-variant`, `form.delete-variant`, and `form#new-variant`;
//! `section#allocation` with `form#allocation-form` (see `allocation.rs`); `section#dependencies`
//! (see `dependencies.rs`); `section#qa` with `form#qa-form` and `#qa-result`; `section#exposures` with `table#exposures`;
//! `#stale` with `form#keep-permanent`, `#permanent`; `a#history-link`, `a#audit-link`; `section#flag-drafts` rows `li[data-draft]` (drafts not
//! published or closed yet).

use axum::extract::{Path, RawQuery, Request};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use serde_json::Value as Json;
use vexil_core::service::{
    Dependencies, DeploymentView, EligibleGroups, Evaluation, ExposureParams, ExposureStats,
};
use vexil_core::{Actor, Cohort, Flag, FlagState, FlagType, Metric, OFF};

use super::flag_edit::NEW_DRAFT;
use super::layout::{self, csrf, error_box, notice, state_badge, when};
use super::{
    allocation, call, dependencies, experiment, flag_href, form, html, ConsoleState, Fields,
    Session, St,
};

/// What the page shows besides the flag itself.
pub(crate) struct PageData {
    pub flag: Flag,
    deployments: Vec<DeploymentView>,
    cohorts: Vec<Cohort>,
    pub dependencies: Dependencies,
    /// The flags that may become prerequisites, with their variants.
    pub eligible: Vec<Flag>,
    /// The groups the flag may join.
    pub groups: EligibleGroups,
    exposures: Option<ExposureStats>,
    /// The project's metrics, for an experiment's settings.
    metrics: Vec<Metric>,
    /// The flag's drafts not published or closed yet.
    drafts: Vec<vexil_core::service::Draft>,
    /// The draft this page edits: every form saves into it, and the flag is shown as it would
    /// make it. `Err`: why the draft asked for cannot be edited (the live flag is shown).
    editing: Option<Result<vexil_core::service::Draft, String>>,
}

/// Loads the page's data for flag `key` (in `project`, when given).
pub(crate) async fn load(
    console: &ConsoleState,
    actor: Actor,
    project: Option<String>,
    key: &str,
    editing: Option<String>,
) -> vexil_core::Result<PageData> {
    let services = console.services.clone();
    let key = key.to_owned();
    call(move || {
        let mut flag = services.flags.get(project.as_deref(), &key)?;
        let editing = match editing.filter(|d| d != NEW_DRAFT) {
            None => None,
            Some(id) => match services.drafts.working(&flag.project, &id) {
                Ok((draft, working)) if draft.flag == key => {
                    flag = working;
                    Some(Ok(draft))
                }
                Ok(_) => Some(Err(format!("draft {id} changes another flag"))),
                Err(e) => Some(Err(format!("draft {id} cannot be edited here: {e}"))),
            },
        };
        let p = Some(flag.project.as_str());
        let deployments = services.deployments.list_for(&actor, &flag.project)?;
        let cohorts = services.cohorts.list(&flag.project)?;
        let dependencies = services.flags.dependencies(p, &key)?;
        let eligible = services
            .flags
            .eligible_prerequisites(p, &key)?
            .iter()
            .map(|f| services.flags.get(p, &f.key))
            .collect::<vexil_core::Result<Vec<Flag>>>()?;
        let groups = services.flags.eligible_groups(p, &key)?;
        let params = ExposureParams {
            project: Some(flag.project.clone()),
            days: Some(7),
            ..ExposureParams::default()
        };
        let exposures = services.flags.exposures(&key, &params).ok();
        let metrics = match flag.kind {
            FlagType::Experiment => services.metrics.list(&flag.project, false)?,
            FlagType::Release => Vec::new(),
        };
        let mut drafts = services.drafts.list(&flag.project, Some(&key), None)?;
        drafts.retain(|d| {
            !matches!(
                d.status,
                vexil_core::service::DraftStatus::Published
                    | vexil_core::service::DraftStatus::Closed
            )
        });
        Ok(PageData {
            flag,
            deployments,
            cohorts,
            dependencies,
            eligible,
            groups,
            exposures,
            metrics,
            drafts,
            editing,
        })
    })
    .await
}

/// What else a render shows: a refusal, a notice, a QA result.
#[derive(Default)]
pub(crate) struct Extra {
    pub error: Option<(StatusCode, Markup)>,
    pub notice: Option<String>,
    pub qa: Option<Result<Evaluation, Markup>>,
    /// The QA form's fields, kept after a test.
    pub qa_input: Option<Fields>,
    /// The fields of a refused form, which the form shows again.
    pub draft: Option<Fields>,
    /// The refused form's invalid fields, each shown next to its input.
    pub field_errors: Vec<vexil_core::FieldError>,
    /// The draft the page edits (`draft` in the query or form), `new` for one the first
    /// change saved opens.
    pub editing: Option<String>,
}

/// `GET /flags/{key}?project=…`.
pub(crate) async fn show(
    state: St,
    session: Session,
    Path(key): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let q = Fields::parse(query.unwrap_or_default().as_bytes());
    let extra = Extra {
        notice: q.text("notice"),
        editing: q.text("draft"),
        ..Extra::default()
    };
    render(&state.0, &session, q.text("project"), &key, extra).await
}

/// Renders the page, or a page with the reason the flag cannot be shown.
pub(crate) async fn render(
    console: &ConsoleState,
    session: &Session,
    project: Option<String>,
    key: &str,
    extra: Extra,
) -> Response {
    let editing = extra.editing.clone();
    match load(
        console,
        super::actor(session),
        project.clone(),
        key,
        editing,
    )
    .await
    {
        Ok(data) => {
            let status = extra.error.as_ref().map_or(StatusCode::OK, |(s, _)| *s);
            let title = data.flag.name.clone();
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
        Err(e) => html(
            super::status_of(&e),
            layout::page(console, session, "Flag", error_box(&e, project.as_deref())),
        ),
    }
}

/// Where the page's edits go: into the draft it edits (with the way to review it), or live
/// (with the way to collect them in a draft first).
fn editing_banner(data: &PageData, draft_id: Option<&str>, base: &str) -> Markup {
    let f = &data.flag;
    let page = format!("{base}?project={}", form::encode(&f.project));
    html! {
        @match (&data.editing, draft_id) {
            (Some(Ok(d)), _) => div #editing-draft .draft-banner role="status" {
                p { strong { "Editing draft " em { (d.title) } } " — " (d.changes.len()) " change(s) based on version " (d.base_version) ", not live yet. "
                    "What you save below goes into this draft; the page shows the flag as the draft makes it." }
                p { a.button #review-changes href=(format!("/projects/{}/drafts/{}", form::encode(&d.project), form::encode(&d.id))) { "Review changes" }
                    " " a #stop-editing href=(page) { "Leave the draft (it stays saved)" } }
                p.hint { "Test a user evaluates the live flag; the review shows the users the draft moves." }
            },
            (Some(Err(why)), _) => div.error #editing-draft role="alert" { p { (why) ". The live flag is shown." } },
            (None, Some(_)) => div #editing-draft .draft-banner role="status" {
                p { strong { "Draft mode: " } "the next change you save opens a draft instead of going live; you can add more changes to it, then review and publish them together." }
                p { a #stop-editing href=(page) { "Edit live instead" } }
            },
            (None, None) => p #edit-as-draft { a href=(format!("{page}&draft={NEW_DRAFT}")) { "Collect changes in a draft" }
                span.hint { " — edit several parts of the flag, review what they change for users, then publish them as one version (or request approval, or schedule it)." } },
        }
    }
}

/// The fields of the refused form `id` (its hidden `_form`), when it was the one refused.
fn refused_form<'a>(extra: &'a Extra, id: &str) -> Option<&'a Fields> {
    Fields::of_form(extra.draft.as_ref(), id)
}

/// Under a refused form: each of its invalid fields with the reason.
fn form_errors(extra: &Extra, id: &str) -> Markup {
    html! {
        @if refused_form(extra, id).is_some() {
            @for e in &extra.field_errors {
                p.field-error data-field=(e.field) role="alert" { strong { (e.field) } ": " (e.message) }
            }
        }
    }
}

fn page(console: &ConsoleState, session: &Session, data: &PageData, extra: Extra) -> Markup {
    let f = &data.flag;
    // Readers see the flag, not the controls that would change it.
    let writer = session.actor.role >= vexil_core::Role::Writer;
    let base = format!("/flags/{}", form::encode(&f.key));
    // On a page editing a draft, every form saves into it.
    let draft_id = match &data.editing {
        Some(Ok(d)) => Some(d.id.as_str()),
        Some(Err(_)) => None,
        None => extra.editing.as_deref().filter(|d| *d == NEW_DRAFT),
    };
    let hidden = html! {
        (csrf(console, session))
        input type="hidden" name="project" value=(f.project);
        @if let Some(id) = draft_id {
            input type="hidden" name="draft" value=(id);
            @if let Some(Ok(d)) = &data.editing { input type="hidden" name="draft_version" value=(d.version); }
        }
    };
    html! {
        p.crumbs { a href=(format!("/flags?project={}", form::encode(&f.project))) { "Flags" } " / " (f.project) " / " (f.key) }
        div.titlebar {
            h1 { (f.name) }
            (state_badge(f.state, f.archived))
            span class=(format!("badge type-{}", f.kind.as_str())) { (f.kind.as_str()) }
            span class=(format!("badge mode-{}", f.evaluation_mode.as_str())) { (f.evaluation_mode.as_str()) }
        }
        p { "Key " code #flag-key { (f.key) } " · version " (f.version) " · updated " (when(f.updated_at)) " by " (f.updated_by)
            " · " a #history-link href=(format!("{base}/history?project={}", form::encode(&f.project))) { "History" }
            " · " a #audit-link href=(format!("/projects/{}/audit?entity=flag&key={}", form::encode(&f.project), form::encode(&f.key))) { "Audit log" } }
        @if writer { (editing_banner(data, draft_id, &base)) }
        @if !data.drafts.is_empty() {
            section #flag-drafts {
                h2 { "Drafts waiting" }
                ul { @for d in &data.drafts {
                    li data-draft=(d.id) { a href=(format!("/projects/{}/drafts/{}", form::encode(&d.project), form::encode(&d.id))) { (d.title) }
                        " by " (d.author) " — " (d.status.as_str())
                        @if let Some(at) = d.scheduled_at { ", at " (when(at)) " UTC" } }
                } }
            }
        }
        @if !f.description.is_empty() { p.description { (f.description) } }
        @if let Some(why) = vexil_core::service::stale_reason(f, vexil_core::service::now_ms()) {
            div #stale.warning role="status" {
                p { strong { "Stale: " } (why) ". Remove it from your code and archive it, or keep it on purpose (a kill switch, an operational flag)." }
                @if writer {
                    form #keep-permanent method="post" action=(format!("{base}/permanent")) {
                        (hidden)
                        button type="submit" { "Keep permanently" }
                    }
                }
            }
        }
        @if f.permanent { p.hint #permanent { "Kept on purpose: never reported stale." } }
        (notice(extra.notice.as_deref()))
        @if let Some((_, e)) = &extra.error { (e) }
        (overview(f))
        @if writer {
            (actions(data, &base, &hidden))
            (experiment::card(f, &data.metrics, &base, &hidden, extra.draft.as_ref()))
            (configure(data, &base, &hidden, &extra))
            (variants(f, &base, &hidden, &extra))
            section #allocation {
                h2 { "Allocation" }
                @if f.imported_config.is_some() {
                    p.hint { "This flag was imported from Amplitude and is served as imported; edit it through the API." }
                } @else if f.variants.is_empty() {
                    p.hint { "Add a variant first." }
                } @else {
                    @let inputs = refused_form(&extra, "allocation").map_or_else(|| allocation::Inputs::of(f), allocation::Inputs::submitted);
                    (allocation::panel(f, &inputs, &extra.field_errors, &data.cohorts, hidden.clone(), &format!("{base}/allocation")))
                }
            }
            (dependencies::card(data, &base, &hidden, extra.draft.as_ref()))
        } @else {
            (read_only(data, &base))
        }
        (qa_section(f, &base, &hidden, extra.qa.as_ref(), extra.qa_input.as_ref()))
        (exposures(f, data.exposures.as_ref()))
    }
}

/// What a reader sees in place of the editing sections: the variants, the dependencies and
/// the experiment's results link, without a control that would change them.
fn read_only(data: &PageData, base: &str) -> Markup {
    let f = &data.flag;
    let d = &data.dependencies;
    html! {
        p.hint #read-only { "You have read access: changes are made by writers." }
        @if f.kind == vexil_core::FlagType::Experiment {
            p { a #results-link href=(format!("{base}/results?project={}", form::encode(&f.project))) { "Results" } }
        }
        section #variants {
            h2 { "Variants" }
            table { thead { tr { th { "Key" } th { "Name" } th { "Value" } } }
                tbody { @for v in &f.variants { tr data-variant=(v.key) { td { code { (v.key) } } td { (v.name) } td { (v.value) } } } } }
        }
        section #dependencies {
            h2 { "Dependencies" }
            @if d.prerequisites.is_empty() && d.dependents.is_empty() && d.mutex_group.is_none() && d.holdouts.is_empty() {
                p.hint { "None." }
            }
            ul {
                @for p in &d.prerequisites { li { "Depends on " a href=(flag_href(&p.flag.project, &p.flag.key)) { (p.flag.name) } } }
                @for p in &d.dependents { li { a href=(flag_href(&p.flag.project, &p.flag.key)) { (p.flag.name) } " depends on it" } }
                @if let Some(m) = &d.mutex_group { li { "Runs in mutual-exclusion group " (m.name) } }
                @for h in &d.holdouts { li { "In holdout " (h.name) } }
            }
        }
    }
}

/// What the flag serves, in plain words, first on the page.
fn overview(f: &Flag) -> Markup {
    html! {
        section #overview {
            h2 { "What it serves" }
            ul { @for line in vexil_core::service::serves(f) { li { (super::drafts::emphasis(&line)) } } }
        }
    }
}

/// The state buttons, each confirmed with its consequence for users.
fn actions(data: &PageData, base: &str, hidden: &Markup) -> Markup {
    let f = &data.flag;
    let active_dependents: Vec<&str> = data
        .dependencies
        .dependents
        .iter()
        .filter(|d| d.flag.state == FlagState::Active && !d.flag.archived)
        .map(|d| d.flag.key.as_str())
        .collect();
    let confirm = |id: &str| -> String {
        match id {
            "deactivate" if !active_dependents.is_empty() => format!(
                "Deactivating {} turns off {} for all users (they depend on it), and everyone gets off from {}.",
                f.key,
                active_dependents.join(" and "),
                f.key
            ),
            "deactivate" => format!("Deactivate {}? Everyone gets off.", f.key),
            "activate" if f.deployments.is_empty() => format!(
                "{} is attached to no deployment: activating it serves nobody until you attach one. Activate anyway?",
                f.key
            ),
            "activate" => format!(
                "Activate {}? Users start getting its targeting in {}.",
                f.key,
                f.deployments.join(", ")
            ),
            "archive" => format!("Archive {}? SDKs stop receiving it.", f.key),
            _ => format!("Unarchive {}?", f.key),
        }
    };
    let button = |id: &str, label: &str| {
        html! {
            form id=(id) method="post" action=(format!("{base}/state/{id}")) data-confirm=(confirm(id)) {
                (hidden)
                input type="hidden" name="version" value=(f.version);
                button type="submit" class=[(id == "archive" || id == "deactivate").then_some("danger")] { (label) }
            }
        }
    };
    html! {
        div.actions #flag-actions {
            @if f.archived {
                (button("unarchive", "Unarchive"))
            } @else {
                @match f.state {
                    FlagState::Inactive => (button("activate", "Activate")),
                    FlagState::Active => (button("deactivate", "Deactivate")),
                }
                (button("archive", "Archive"))
            }
        }
    }
}

fn configure(data: &PageData, base: &str, hidden: &Markup, extra: &Extra) -> Markup {
    let f = &data.flag;
    let refused = refused_form(extra, "settings");
    // Each input shows what a refused form submitted, else the saved setting.
    let value = |name: &str, saved: &str| -> String {
        refused.map_or_else(
            || saved.to_owned(),
            |d| d.get(name).unwrap_or_default().to_owned(),
        )
    };
    let deployments = refused.map_or_else(|| f.deployments.clone(), |d| d.all("deployments"));
    let mode = value("evaluation_mode", f.evaluation_mode.as_str());
    html! {
        section #configure {
            h2 { "Configure" }
            form #settings method="post" action=(format!("{base}/settings")) data-unsaved="" {
                (hidden)
                input type="hidden" name="_form" value="settings";
                input type="hidden" name="version" value=(f.version);
                label { "Name" input name="name" value=(value("name", &f.name)) required; }
                label { "Description" textarea name="description" rows="2" { (value("description", &f.description)) } }
                label { "Tags" input name="tags" value=(value("tags", &f.tags.join(", "))) placeholder="comma-separated"; }
                @if f.kind == vexil_core::FlagType::Experiment {
                    label { "Experiment key" input name="experiment_key" value=(value("experiment_key", f.experiment_key.as_deref().unwrap_or(&f.key)));
                        span.hint { "The key analyses and SDKs know the experiment by (" code { "experimentKey" } ")." } }
                }
                fieldset.deployments {
                    legend { "Deployments" }
                    @if data.deployments.is_empty() { p.hint { "The project has no deployment yet." } }
                    @for d in data.deployments.iter().filter(|d| !d.archived || f.deployments.contains(&d.key)) {
                        label.inline {
                            input type="checkbox" name="deployments" value=(d.key) checked[deployments.contains(&d.key)];
                            " " (d.label) " " span.badge { (d.kind.as_str()) }
                        }
                    }
                }
                details #advanced open[refused.is_some()] {
                    summary { "Advanced settings" }
                    label { "Evaluation mode"
                        select name="evaluation_mode" {
                            option value="remote" selected[mode == "remote"] { "Remote" }
                            option value="local" selected[mode == "local"] { "Local" }
                        }
                    }
                    label { "Bucketing unit" input name="bucketing_unit" value=(value("bucketing_unit", &f.bucketing_unit)) list="bucketing-units"; }
                    label { "Bucketing salt" input name="bucketing_salt" value=(value("bucketing_salt", &f.bucketing_salt)); }
                    p.warning { "Changing the bucketing salt (or the unit) reshuffles users: many will move to another variant. "
                        "Change it only if you know you want that." }
                }
                datalist #bucketing-units { option value="user_id"; option value="device_id"; option value="company"; }
                (form_errors(extra, "settings"))
                button type="submit" { "Save settings" }
            }
        }
    }
}

fn payload_text(payload: Option<&Json>) -> String {
    payload
        .map(|p| serde_json::to_string_pretty(p).unwrap_or_default())
        .unwrap_or_default()
}

fn variants(f: &Flag, base: &str, hidden: &Markup, extra: &Extra) -> Markup {
    // A refused form shows what was submitted, else the saved variant.
    let row_form = |v: &vexil_core::Variant| {
        refused_form(extra, "variant").filter(|d| d.get("_variant") == Some(&v.key))
    };
    let created = refused_form(extra, "new-variant");
    let typed = |name: &str| {
        created
            .and_then(|d| d.get(name))
            .unwrap_or_default()
            .to_owned()
    };
    html! {
        section #variants {
            h2 { "Variants" }
            p.hint { code { (OFF) } " is reserved: it is what users outside the rollout get." }
            table {
                thead { tr { th { "Name" } th { "Key" } th { "Value" } th { "Payload" } th { "Description" } th {} } }
                tbody {
                    @for v in &f.variants {
                        @let refused = row_form(v);
                        @let value = |name: &str, saved: &str| refused.map_or_else(|| saved.to_owned(), |d| d.get(name).unwrap_or_default().to_owned());
                        tr data-variant=(v.key) {
                            td colspan="5" {
                                form.edit-variant method="post" action=(format!("{base}/variants/{}", form::encode(&v.key))) data-unsaved="" {
                                    (hidden)
                                    input type="hidden" name="_form" value="variant";
                                    input type="hidden" name="_variant" value=(v.key);
                                    input type="hidden" name="version" value=(f.version);
                                    input.variant-name name="name" value=(value("name", &v.name)) aria-label="name";
                                    input name="key" value=(value("key", &v.key)) aria-label="key" required;
                                    input name="value" value=(value("value", &v.value)) aria-label="value";
                                    textarea name="payload" rows="1" aria-label="payload (JSON)" { (value("payload", &payload_text(v.payload.as_ref()))) }
                                    input name="description" value=(value("description", &v.description)) aria-label="description";
                                    button type="submit" { "Save" }
                                    @if refused.is_some() { (form_errors(extra, "variant")) }
                                }
                            }
                            td {
                                form.delete-variant method="post" action=(format!("{base}/variants/{}/delete", form::encode(&v.key)))
                                    data-confirm=(format!("Delete the variant {}? Users who get it now get off, and its weights leave every rollout.", super::allocation::variant_label(f, &v.key))) {
                                    (hidden)
                                    input type="hidden" name="version" value=(f.version);
                                    button.danger type="submit" { "Delete" }
                                }
                            }
                        }
                    }
                }
            }
            h3 { "Create variant" }
            form #new-variant method="post" action=(format!("{base}/variants")) data-unsaved="" {
                (hidden)
                input type="hidden" name="_form" value="new-variant";
                input type="hidden" name="version" value=(f.version);
                label { "Name" input name="name" value=(typed("name")) required data-key-target="new-variant-key" data-value-target="new-variant-value"; }
                label { "Key" input #new-variant-key name="key" value=(typed("key")); }
                label { "Value" input #new-variant-value name="value" value=(typed("value")); span.hint { "The string your code receives; generated from the name." } }
                label { "Payload (JSON)" textarea name="payload" rows="2" data-json="" placeholder="{\"layout\": \"b\"}" { (typed("payload")) } }
                label { "Description" input name="description" value=(typed("description")); }
                (form_errors(extra, "new-variant"))
                button type="submit" { "Apply" }
            }
        }
    }
}

fn qa_section(
    f: &Flag,
    base: &str,
    hidden: &Markup,
    result: Option<&Result<Evaluation, Markup>>,
    input: Option<&Fields>,
) -> Markup {
    let value = |name: &str| {
        input
            .and_then(|i| i.get(name))
            .unwrap_or_default()
            .to_owned()
    };
    html! {
        section #qa {
            h2 { "Test a user" }
            p.hint { "See which variant this flag and its prerequisites give a user, and why. "
                "An inactive flag is tested as it will serve once activated." }
            form #qa-form method="post" action=(format!("{base}/qa#qa")) {
                (hidden)
                label { "User id" input name="user_id" value=(value("user_id")); }
                label { "Device id" input name="device_id" value=(value("device_id")); }
                label { "User fields (JSON)" textarea name="fields" rows="2" placeholder="{\"country\": \"US\", \"version\": \"2.1.0\"}" { (value("fields")) } }
                label { "User properties (JSON)" textarea name="user_properties" rows="2" placeholder="{\"plan\": \"pro\"}" { (value("user_properties")) } }
                label { "Groups (JSON)" textarea name="groups" rows="2" placeholder="{\"company\": [\"acme\"]}" { (value("groups")) } }
                button type="submit" { "Test" }
            }
            @match result {
                Some(Ok(e)) => div #qa-result {
                    p { "Variant for " code { (f.key) } ": " strong.variant { (e.variant) }
                        @if !e.active { " " span.hint { "(the flag is inactive: SDKs get off until it is activated)" } } }
                    table {
                        thead { tr { th { "Flag" } th { "Variant" } th { "Segment" } } }
                        tbody {
                            @for (key, r) in e.results.as_object().into_iter().flatten() {
                                tr data-flag=(key) {
                                    td { (key) }
                                    td.variant { (r["key"].as_str().unwrap_or("")) }
                                    td { (r["metadata"]["segmentName"].as_str().unwrap_or("")) }
                                }
                            }
                        }
                    }
                    p #qa-reason { "Why: " (e.reason) }
                    ol #qa-steps { @for step in &e.steps { li { (super::drafts::emphasis(step)) } } }
                    details #qa-trace {
                        summary { "Engine trace" }
                        pre.explanation { (e.explanation) }
                    }
                },
                Some(Err(refusal)) => div #qa-result { (refusal) },
                None => {}
            }
        }
    }
}

fn exposures(f: &Flag, stats: Option<&ExposureStats>) -> Markup {
    // A column per variant (with `off`), then any other variant SDKs reported.
    let mut columns: Vec<String> = f.variants.iter().map(|v| v.key.clone()).collect();
    columns.push(OFF.to_owned());
    for k in stats.iter().flat_map(|s| s.totals.keys()) {
        if !columns.contains(k) {
            columns.push(k.clone());
        }
    }
    html! {
        section #exposures {
            h2 { "Exposures" }
            @match stats {
                None => p.hint { "No exposure data." },
                Some(s) => {
                    p.hint { "Exposures per variant and day over the last 7 days, from the SDKs and remote evaluation (users in brackets)." }
                    table #exposures {
                        thead { tr { th { "Day" } @for c in &columns { th data-variant=(c) { (c) } } } }
                        tbody {
                            @for b in s.buckets.iter().rev() {
                                tr data-start=(b.start) {
                                    td { (when(b.start).get(..10).unwrap_or_default()) }
                                    @for c in &columns {
                                        td data-variant=(c) { @match b.variants.get(c) { Some(n) => { (n.count) " (" (n.users) ")" }, None => "0" } }
                                    }
                                }
                            }
                            tr.total {
                                td { "Total" }
                                @for c in &columns {
                                    td data-variant=(c) { @match s.totals.get(c) { Some(n) => { (n.count) " (" (n.users) ")" }, None => "0" } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The user a QA form describes.
fn qa_user(fields: &Fields) -> Result<Json, String> {
    let object = |name: &str| -> Result<serde_json::Map<String, Json>, String> {
        match fields.text(name) {
            None => Ok(serde_json::Map::new()),
            Some(text) => match serde_json::from_str(&text) {
                Ok(Json::Object(o)) => Ok(o),
                _ => Err(format!("{} must be a JSON object", name.replace('_', " "))),
            },
        }
    };
    let mut user = object("fields")?;
    for id in ["user_id", "device_id"] {
        if let Some(v) = fields.text(id) {
            user.insert(id.to_owned(), Json::String(v));
        }
    }
    let props = object("user_properties")?;
    if !props.is_empty() {
        user.insert("user_properties".to_owned(), Json::Object(props));
    }
    let groups = object("groups")?;
    if !groups.is_empty() {
        // `{"company": "acme"}` is accepted for `{"company": ["acme"]}`.
        let groups = groups
            .into_iter()
            .map(|(t, n)| match n {
                Json::String(s) => (t, Json::Array(vec![Json::String(s)])),
                other => (t, other),
            })
            .collect();
        user.insert("groups".to_owned(), Json::Object(groups));
    }
    Ok(Json::Object(user))
}

/// `POST /flags/{key}/qa`: evaluates the flag for the user described, and shows the page with
/// the result.
pub(crate) async fn qa_handler(
    console: ConsoleState,
    session: Session,
    key: String,
    request: Request,
) -> Response {
    let fields = match super::form(&console, &session, request).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let project = fields.text("project");
    let result = match qa_user(&fields) {
        Err(message) => Err(html! { p.error role="alert" { (message) } }),
        Ok(user) => {
            let services = console.services.clone();
            let (p, k) = (project.clone(), key.clone());
            call(move || services.flags.evaluate(p.as_deref(), &k, user))
                .await
                .map_err(|e| error_box(&e, project.as_deref()))
        }
    };
    let extra = Extra {
        qa: Some(result),
        editing: fields.text("draft"),
        qa_input: Some(fields),
        ..Extra::default()
    };
    render(&console, &session, project, &key, extra).await
}

/// The route's handler.
pub(crate) async fn qa(
    state: St,
    session: Session,
    Path(key): Path<String>,
    request: Request,
) -> Response {
    qa_handler(state.0, session, key, request).await
}
