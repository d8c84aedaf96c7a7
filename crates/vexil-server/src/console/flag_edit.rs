//! The flag page's forms: each reads its fields, makes one service call with the version the
//! page was rendered at, and redirects back to the page with a notice, or re-renders it with
//! the reason the change was refused.

use axum::extract::{Path, Request};
use axum::response::Response;
use vexil_core::keys::key_from_name;
use vexil_core::service::{FlagChange, FlagPatch, NewDraft, Saved};
use vexil_core::{Error, FieldError, Flag, Prerequisite, Variant};

use super::flag_page::{render, Extra};
use super::form::items;
use super::layout::error_box;
use super::{allocation, flag_href, form, see_other, submit, ConsoleState, Fields, Session, St};

/// After a change: back to the page with a notice (and the service's warnings).
fn saved(project: &str, key: &str, what: &str, warnings: &[String]) -> Response {
    let mut text = what.to_owned();
    for w in warnings {
        text.push_str(" Warning: ");
        text.push_str(w);
    }
    see_other(&format!(
        "{}&notice={}",
        flag_href(project, key),
        form::encode(&text)
    ))
}

/// The page again with the reason, and the refused form's fields for that form to show, with
/// each invalid field's error next to it. When someone else changed the flag meanwhile, the
/// page says what they changed and keeps the edit, now based on the current version, so that
/// saving again applies it over theirs.
async fn refused(
    console: &ConsoleState,
    session: &Session,
    mut fields: Fields,
    key: &str,
    err: &Error,
) -> Response {
    let project = fields.text("project");
    let mut error = error_box(err, project.as_deref());
    if let Error::VersionMismatch {
        entity: "flag",
        expected,
        current,
        ..
    } = *err
    {
        let (services, p, k) = (console.services.clone(), project.clone(), key.to_owned());
        let meanwhile = super::call(move || {
            let lines = services
                .flags
                .describe_versions(p.as_deref(), &k, expected, current)?;
            let flag = services.flags.get(p.as_deref(), &k)?;
            Ok((lines, flag.updated_by))
        })
        .await;
        if let Ok((lines, by)) = meanwhile {
            fields.set("version", current.to_string());
            error = conflict_box(expected, current, &by, &lines);
        }
    }
    let field_errors = match err {
        Error::Invalid(errors) => errors.clone(),
        Error::Blocked {
            code,
            message,
            field: Some(field),
            ..
        } => vec![FieldError::new(field.clone(), code, message.clone())],
        _ => Vec::new(),
    };
    let extra = Extra {
        error: Some((super::status_of(err), error)),
        editing: fields.text("draft"),
        draft: Some(fields),
        field_errors,
        ..Extra::default()
    };
    render(console, session, project, key, extra).await
}

/// A version conflict: what the other change did, and that the edit is kept.
fn conflict_box(expected: i64, current: i64, by: &str, lines: &[String]) -> maud::Markup {
    maud::html! {
        div.error #conflict role="alert" {
            p { strong { "This flag changed since you opened it" } " (version " (expected) " → " (current) ", last by " (by) ")." }
            @if lines.is_empty() {
                p { "The change did not alter what users get." }
            } @else {
                p { "What changed meanwhile:" }
                ul { @for l in lines { li { (super::drafts::emphasis(l)) } } }
            }
            p { "Your edit is kept below, now based on version " (current) ": check it against these changes and save again to apply it." }
        }
    }
}

/// Reads the form, runs `change` with the services, the actor, the project, the key and the
/// fields, and answers as above.
pub(crate) async fn change(
    console: ConsoleState,
    session: Session,
    key: String,
    request: Request,
    what: &'static str,
    change: impl FnOnce(
            &vexil_core::Services,
            &vexil_core::Actor,
            Option<&str>,
            &str,
            &Fields,
        ) -> vexil_core::Result<Outcome>
        + Send
        + 'static,
) -> Response {
    let k = key.clone();
    let submitted = submit(&console, &session, request, move |s, who, f| {
        change(s, who, f.text("project").as_deref(), &k, f)
    })
    .await;
    match submitted {
        Err(refusal) => refusal,
        Ok((_, Ok(Outcome::Saved(s)))) => saved(&s.value.project, &s.value.key, what, &s.warnings),
        Ok((_, Ok(Outcome::Editing { project, id }))) => see_other(&format!(
            "{}&draft={}&notice={}",
            flag_href(&project, &key),
            form::encode(&id),
            form::encode(&format!(
                "{what} It is in your draft, not live yet: review the changes to publish them."
            ))
        )),
        Ok((_, Ok(Outcome::Drafted { project, id }))) => see_other(&format!(
            "/projects/{}/drafts/{}?notice={}",
            form::encode(&project),
            form::encode(&id),
            form::encode(
                "This flag's changes need review under the project's approval policy: they were saved as this draft."
            )
        )),
        Ok((fields, Err(e))) => refused(&console, &session, fields, &key, &e).await,
    }
}

/// What a console edit became.
pub(crate) enum Outcome {
    /// A new version of the flag.
    Saved(Box<Saved<Flag>>),
    /// A draft (its project and id), because the project's approval policy requires a review
    /// of this flag's changes.
    Drafted { project: String, id: String },
    /// The change went into the draft being edited on the flag page.
    Editing { project: String, id: String },
}

/// The flag as a form on its page edits it: the draft being edited (`draft` field) with its
/// changes applied, else the flag as it is.
pub(crate) fn edited_flag(
    s: &vexil_core::Services,
    project: Option<&str>,
    key: &str,
    f: &Fields,
) -> vexil_core::Result<Flag> {
    match (f.text("draft").filter(|d| d != NEW_DRAFT), project) {
        (Some(id), Some(p)) => Ok(s.drafts.working(p, &id)?.1),
        _ => s.flags.get(project, key),
    }
}

/// The `draft` field of a page editing a draft that does not exist yet: the first change
/// saved opens it.
pub(crate) const NEW_DRAFT: &str = "new";

/// Applies `changes` from form `f`. On a page editing a draft (`draft` field) they go into
/// that draft (`new`: a draft they open); when the project's approval policy requires a review,
/// they open a draft instead of being applied, so the edit is not lost.
pub(crate) fn apply_or_draft(
    s: &vexil_core::Services,
    who: &vexil_core::Actor,
    project: Option<&str>,
    key: &str,
    f: &Fields,
    changes: Vec<FlagChange>,
) -> vexil_core::Result<Outcome> {
    let open = |changes: Vec<FlagChange>| {
        let draft = NewDraft {
            flag: key.to_string(),
            title: f
                .text("draft_title")
                .unwrap_or_else(|| format!("Change to {key} from the console")),
            comment: who.comment.clone().unwrap_or_default(),
            base_version: f.version(),
            changes,
        };
        s.drafts.create(who, project, draft)
    };
    if let Some(id) = f.text("draft") {
        let view = if id == NEW_DRAFT {
            open(changes)?
        } else {
            let p = project.ok_or_else(|| {
                invalid(
                    "project",
                    "missing_project",
                    "the draft's project is missing",
                )
            })?;
            let expected = f.get("draft_version").and_then(|v| v.trim().parse().ok());
            s.drafts.add_changes(who, p, &id, expected, changes)?
        };
        return Ok(Outcome::Editing {
            project: view.draft.project,
            id: view.draft.id,
        });
    }
    match s
        .flags
        .apply(who, project, key, f.version(), changes.clone())
    {
        Ok(saved) => Ok(Outcome::Saved(Box::new(saved))),
        Err(Error::Blocked {
            code: "approval_required",
            ..
        }) => {
            let view = open(changes)?;
            Ok(Outcome::Drafted {
                project: view.draft.project,
                id: view.draft.id,
            })
        }
        Err(e) => Err(e),
    }
}

/// [`apply_or_draft`] of one settings patch, the change most forms make.
pub(crate) fn apply_update(
    s: &vexil_core::Services,
    who: &vexil_core::Actor,
    project: Option<&str>,
    key: &str,
    f: &Fields,
    patch: FlagPatch,
) -> vexil_core::Result<Outcome> {
    let changes = vec![FlagChange::Update {
        patch: Box::new(patch),
    }];
    apply_or_draft(s, who, project, key, f, changes)
}

/// Saves the flag's prerequisites after `edit` changed the list.
fn edit_prerequisites(
    s: &vexil_core::Services,
    who: &vexil_core::Actor,
    project: Option<&str>,
    key: &str,
    f: &Fields,
    edit: impl FnOnce(&mut Vec<Prerequisite>),
) -> vexil_core::Result<Outcome> {
    let mut list = edited_flag(s, project, key, f)?.prerequisites;
    edit(&mut list);
    let patch = FlagPatch {
        prerequisites: Some(list),
        ..FlagPatch::default()
    };
    apply_update(s, who, project, key, f, patch)
}

fn invalid(field: &str, code: &'static str, message: impl Into<String>) -> Error {
    Error::Invalid(vec![FieldError::new(field, code, message)])
}

/// `POST /flags/{key}/settings`: name, description, tags, deployments, mode, bucketing.
pub(crate) async fn settings(
    state: St,
    session: Session,
    Path(key): Path<String>,
    request: Request,
) -> Response {
    change(
        state.0,
        session,
        key,
        request,
        "Settings saved.",
        |s, who, project, key, f| {
            let patch = FlagPatch {
                name: f.text("name"),
                description: Some(f.get("description").unwrap_or_default().trim().to_owned()),
                tags: Some(items(f.get("tags").unwrap_or_default())),
                deployments: Some(f.all("deployments")),
                evaluation_mode: super::flags::parse_mode(f.get("evaluation_mode")),
                experiment_key: f.text("experiment_key"),
                bucketing_unit: f.text("bucketing_unit"),
                bucketing_salt: f.text("bucketing_salt"),
                ..FlagPatch::default()
            };
            apply_update(s, who, project, key, f, patch)
        },
    )
    .await
}

/// A variant from a form: the key defaults to one made from the name, the payload is JSON.
fn variant(f: &Fields) -> vexil_core::Result<Variant> {
    let name = f.text("name").unwrap_or_default();
    let key = f.text("key").unwrap_or_else(|| key_from_name(&name));
    let payload = match f.text("payload") {
        None => None,
        Some(text) => Some(serde_json::from_str(&text).map_err(|e| {
            invalid(
                "payload",
                "invalid_json",
                format!("the payload must be JSON: {e}"),
            )
        })?),
    };
    Ok(Variant {
        name: if name.is_empty() { key.clone() } else { name },
        key,
        value: f.text("value").unwrap_or_default(),
        payload,
        description: f.text("description").unwrap_or_default(),
    })
}

/// `POST /flags/{key}/variants`.
pub(crate) async fn add_variant(
    state: St,
    session: Session,
    Path(key): Path<String>,
    request: Request,
) -> Response {
    change(
        state.0,
        session,
        key,
        request,
        "Variant added.",
        |s, who, project, key, f| {
            apply_or_draft(
                s,
                who,
                project,
                key,
                f,
                vec![FlagChange::AddVariant {
                    variant: variant(f)?,
                }],
            )
        },
    )
    .await
}

/// `POST /flags/{key}/variants/{variant}`.
pub(crate) async fn update_variant(
    state: St,
    session: Session,
    Path((key, old)): Path<(String, String)>,
    request: Request,
) -> Response {
    change(
        state.0,
        session,
        key,
        request,
        "Variant saved.",
        move |s, who, project, key, f| {
            let mut v = variant(f)?;
            if f.text("name").is_none() {
                v.name = s
                    .flags
                    .get(project, key)?
                    .variant(&old)
                    .map_or_else(|| v.key.clone(), |o| o.name.clone());
            }
            apply_or_draft(
                s,
                who,
                project,
                key,
                f,
                vec![FlagChange::UpdateVariant {
                    key: old.clone(),
                    variant: v,
                }],
            )
        },
    )
    .await
}

/// `POST /flags/{key}/variants/{variant}/delete`.
pub(crate) async fn delete_variant(
    state: St,
    session: Session,
    Path((key, old)): Path<(String, String)>,
    request: Request,
) -> Response {
    change(
        state.0,
        session,
        key,
        request,
        "Variant deleted.",
        move |s, who, project, key, f| {
            apply_or_draft(
                s,
                who,
                project,
                key,
                f,
                vec![FlagChange::DeleteVariant { key: old.clone() }],
            )
        },
    )
    .await
}

/// `POST /flags/{key}/allocation`: segments, All Other Users and inclusions at once.
pub(crate) async fn allocation(
    state: St,
    session: Session,
    Path(key): Path<String>,
    request: Request,
) -> Response {
    change(
        state.0,
        session,
        key,
        request,
        "Allocation saved.",
        |s, who, project, key, f| {
            let cohorts = match project {
                Some(p) => s.cohorts.list(p)?,
                None => Vec::new(),
            };
            let (segments, all_other_users, inclusions) = allocation::Inputs::submitted(f)
                .parse(&cohorts)
                .map_err(Error::Invalid)?;
            let patch = FlagPatch {
                segments: Some(segments),
                all_other_users: Some(all_other_users),
                inclusions: Some(inclusions),
                ..FlagPatch::default()
            };
            apply_update(s, who, project, key, f, patch)
        },
    )
    .await
}

/// `POST /flags/{key}/prerequisites`: adds (or replaces) the dependency on one flag.
pub(crate) async fn add_prerequisite(
    state: St,
    session: Session,
    Path(key): Path<String>,
    request: Request,
) -> Response {
    change(state.0, session, key, request, "Dependency added.", |s, who, project, key, f| {
        let Some(prerequisite) = f.text("flag") else {
            return Err(invalid("flag", "required", "choose the flag or experiment to depend on"));
        };
        let variants = f.all("variants");
        if variants.is_empty() {
            return Err(invalid(
                "variants",
                "required",
                format!("choose the variants of {prerequisite} that let users through (Off included)"),
            ));
        }
        edit_prerequisites(s, who, project, key, f, |list| {
            list.retain(|p| p.flag != prerequisite);
            list.push(Prerequisite { flag: prerequisite, variants });
        })
    })
    .await
}

/// `POST /flags/{key}/prerequisites/{prerequisite}/delete`.
pub(crate) async fn remove_prerequisite(
    state: St,
    session: Session,
    Path((key, prerequisite)): Path<(String, String)>,
    request: Request,
) -> Response {
    change(
        state.0,
        session,
        key,
        request,
        "Dependency removed.",
        move |s, who, project, key, f| {
            let mut list = s.flags.get(project, key)?.prerequisites;
            list.retain(|p| p.flag != prerequisite);
            let patch = FlagPatch {
                prerequisites: Some(list),
                ..FlagPatch::default()
            };
            apply_update(s, who, project, key, f, patch)
        },
    )
    .await
}

/// `POST /flags/{key}/state/{activate|deactivate|archive|unarchive}`.
pub(crate) async fn state(
    state: St,
    session: Session,
    Path((key, action)): Path<(String, String)>,
    request: Request,
) -> Response {
    let what = match action.as_str() {
        "activate" => "Activated.",
        "deactivate" => "Deactivated: everyone gets off.",
        "archive" => "Archived.",
        "unarchive" => "Unarchived.",
        _ => {
            return super::layout::message_page(
                axum::http::StatusCode::NOT_FOUND,
                "Not found",
                "no such action",
            )
        }
    };
    change(
        state.0,
        session,
        key,
        request,
        what,
        move |s, who, project, key, f| {
            let change = match action.as_str() {
                "activate" => FlagChange::Activate,
                "deactivate" => FlagChange::Deactivate,
                "archive" => FlagChange::Archive,
                _ => FlagChange::Unarchive,
            };
            apply_or_draft(s, who, project, key, f, vec![change])
        },
    )
    .await
}

/// `POST /flags/{key}/permanent`: keeps the flag on purpose (never stale), or not (`permanent`
/// = `false`).
pub(crate) async fn permanent(
    state: St,
    session: Session,
    Path(key): Path<String>,
    request: Request,
) -> Response {
    change(
        state.0,
        session,
        key,
        request,
        "Saved: the flag is kept on purpose and never reported stale.",
        |s, who, project, key, f| {
            let patch = FlagPatch {
                permanent: Some(f.get("permanent") != Some("false")),
                ..FlagPatch::default()
            };
            apply_update(s, who, project, key, f, patch)
        },
    )
    .await
}
