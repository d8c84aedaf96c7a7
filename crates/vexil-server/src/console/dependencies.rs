//! The flag page's Dependencies card: prerequisites (with the picker), the mutual-exclusion
//! group and slot the flag runs in, its holdout groups, the largest share of users those groups
//! leave it, and the flags that depend on it; and the forms that join and leave groups. Only
//! the groups the flag may join are offered (`FlagService::eligible_groups`); a slot another
//! member holds is joined only with the "share this slot" box ticked. Each form is one
//! `FlagService::update`, with the version the page was rendered at.
//!
//! Hooks: `section#dependencies` with `#prerequisites li[data-prerequisite]`,
//! `form.remove-prerequisite`, `form#add-prerequisite` (`select[name=flag]`, `fieldset[data-for]`
//! of `input[name=variants]`); `#mutex-group` (`p[data-group]` with `.slot`, `form#leave-mutex`),
//! `form#join-mutex` (`fieldset[data-group]` of `input[name=slot]` valued `group/index`,
//! `input[name=shared]`); `#holdouts li[data-holdout]` with `form.leave-holdout`,
//! `form#join-holdout` (`select[name=holdout]`); `#max-reach`; `#dependents li`.

use axum::extract::{Path, Request};
use axum::response::Response;
use maud::{html, Markup};
use vexil_core::service::{FlagPatch, GroupInfo};
use vexil_core::{Error, FieldError, GroupKind, SlotRef, OFF};

use super::flag_edit::change;
use super::flag_page::PageData;
use super::layout::state_badge;
use super::{flag_href, form, group_href, Fields, Session, St};

/// `12.5` -> `12.5`, `38.0` -> `38`: a percentage as people write it.
pub(crate) fn percent(x: f64) -> String {
    let text = format!("{x:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// A link to a group or flag key of the project, as member lists show them.
fn member_link(project: &str, key: &str, kind: Option<GroupKind>) -> Markup {
    match kind {
        Some(kind) => html! { a href=(group_href(project, kind, key)) { code { (key) } } },
        None => html! { a href=(flag_href(project, key)) { code { (key) } } },
    }
}

/// Links to the flags (and holdouts) in `keys`, comma-separated.
fn links(project: &str, keys: &[String]) -> Markup {
    html! {
        @for (i, k) in keys.iter().enumerate() {
            @if i > 0 { ", " }
            (member_link(project, k, k.starts_with(GroupKind::Holdout.key_prefix()).then_some(GroupKind::Holdout)))
        }
    }
}

/// The whole card. `draft` is the form a refusal answered, whose choices are kept.
pub(crate) fn card(data: &PageData, base: &str, hidden: &Markup, draft: Option<&Fields>) -> Markup {
    html! {
        section #dependencies {
            h2 { "Dependencies" }
            (prerequisites(data, base, hidden))
            (mutex_group(data, base, hidden, draft))
            (holdouts(data, base, hidden, draft))
            (reach(data))
            (dependents(data))
        }
    }
}

fn prerequisites(data: &PageData, base: &str, hidden: &Markup) -> Markup {
    let f = &data.flag;
    let deps = &data.dependencies;
    html! {
        h3 { "Prerequisites" }
        p.hint { "This flag is evaluated only for users who get one of the chosen variants of each prerequisite; "
            code { "off" } " stands for the users a prerequisite does not serve." }
        ul #prerequisites {
            @for p in &deps.prerequisites {
                li data-prerequisite=(p.flag.key) {
                    a href=(flag_href(&f.project, &p.flag.key)) { (p.flag.name) }
                    " " (state_badge(p.flag.state, p.flag.archived)) " is one of " code { (p.variants.join(", ")) }
                    form.remove-prerequisite method="post" action=(format!("{base}/prerequisites/{}/delete", form::encode(&p.flag.key))) {
                        (hidden)
                        input type="hidden" name="version" value=(f.version);
                        button type="submit" { "Remove" }
                    }
                }
            }
            @if deps.prerequisites.is_empty() { li.none { "None." } }
        }
        @if data.eligible.is_empty() {
            p.hint { "No flag of this project can be a prerequisite of this one." }
        } @else {
            form #add-prerequisite method="post" action=(format!("{base}/prerequisites")) {
                (hidden)
                input type="hidden" name="version" value=(f.version);
                label { "Depend on"
                    select name="flag" data-variant-sets="" {
                        option value="" { "Select a flag or experiment" }
                        @for e in &data.eligible { option value=(e.key) { (e.name) " (" (e.key) ")" } }
                    }
                }
                @for e in &data.eligible {
                    fieldset.prerequisite-variants data-for=(e.key) hidden {
                        legend { "Variants of " (e.key) }
                        @for v in &e.variants {
                            label.inline { input type="checkbox" name="variants" value=(v.key); " " (v.key) }
                        }
                        label.inline { input type="checkbox" name="variants" value=(OFF); " Off" }
                    }
                }
                button type="submit" { "Add dependency" }
            }
        }
    }
}

fn mutex_group(data: &PageData, base: &str, hidden: &Markup, draft: Option<&Fields>) -> Markup {
    let f = &data.flag;
    let current = data.dependencies.mutex_group.as_ref();
    let draft = Fields::of_form(draft, "join-mutex");
    // The slot to show chosen: the one a refused form asked for, else the flag's own.
    let chosen = match draft {
        Some(d) => d.get("slot").map(str::to_owned),
        None => f
            .mutex_group
            .as_ref()
            .map(|m| format!("{}/{}", m.group, m.slot)),
    };
    let shared = match draft {
        Some(d) => d.get("shared") == Some("true"),
        None => f.mutex_group.as_ref().is_some_and(|m| m.shared),
    };
    let offered = &data.groups.mutex_groups;
    html! {
        h3 { "Mutual-exclusion group" }
        div #mutex-group {
            @match current {
                Some(g) => p data-group=(g.key) {
                    "Runs in " strong.slot { "slot-" (g.slot.unwrap_or_default()) } " of "
                    a href=(group_href(&f.project, GroupKind::MutualExclusion, &g.key)) { (g.name) } " (" code { (g.key) } ")"
                    ", which takes " (g.percentage) "% of users"
                    @if g.archived { " " span.badge.archived { "archived" } }
                    @if !g.other_members.is_empty() { "; shared with " (links(&f.project, &g.other_members)) }
                    "."
                },
                None => p.none { "Not in a mutual-exclusion group: users of this flag may also be in any other experiment." },
            }
            @if current.is_some() {
                form #leave-mutex method="post" action=(format!("{base}/mutex-group/leave")) {
                    (hidden)
                    input type="hidden" name="version" value=(f.version);
                    button type="submit" { "Leave the mutual-exclusion group" }
                }
            }
        }
        @if offered.is_empty() {
            p.hint { "No mutual-exclusion group of this project can take this flag"
                @if f.evaluation_mode.as_str() == "local" { " (a local flag joins only local groups)" } "." }
        } @else {
            form #join-mutex method="post" action=(format!("{base}/mutex-group")) {
                (hidden)
                input type="hidden" name="_form" value="join-mutex";
                input type="hidden" name="version" value=(f.version);
                p.hint { "A user is in at most one slot of a group, so experiments in different slots never share a user. "
                    "Choose a slot:" }
                @for m in offered {
                    fieldset.mutex-slots data-group=(m.group.key) {
                        legend { a href=(group_href(&f.project, GroupKind::MutualExclusion, &m.group.key)) { (m.group.name) }
                            " (" code { (m.group.key) } ", " (m.group.evaluation_mode.as_str()) ")" }
                        @for s in &m.slots {
                            @let value = format!("{}/{}", m.group.key, s.index);
                            label.slot data-slot=(s.index) {
                                input type="radio" name="slot" value=(value) required checked[chosen.as_deref() == Some(value.as_str())];
                                " " code { (s.key) } " · " (s.percentage) "% of users · "
                                @if s.members.is_empty() { span.free { "free" } }
                                @else { span.held { "held by " (links(&f.project, &s.members)) } }
                                @if f.mutex_group.as_ref().is_some_and(|cur| cur.group == m.group.key && cur.slot == s.index) {
                                    " · " strong.current { "this flag's slot" }
                                }
                            }
                        }
                    }
                }
                label.inline {
                    input type="checkbox" name="shared" value="true" checked[shared];
                    " Share this slot: join it even if another experiment holds it (their users may overlap)"
                }
                button type="submit" { @if current.is_some() { "Move to this slot" } @else { "Join this slot" } }
            }
        }
    }
}

fn holdouts(data: &PageData, base: &str, hidden: &Markup, draft: Option<&Fields>) -> Markup {
    let f = &data.flag;
    let draft = Fields::of_form(draft, "join-holdout");
    let chosen = draft.and_then(|d| {
        d.all("holdouts")
            .into_iter()
            .find(|h| !f.holdouts.contains(h))
    });
    let current = |except: Option<&str>| {
        html! {
            @for h in f.holdouts.iter().filter(|h| Some(h.as_str()) != except) {
                input type="hidden" name="holdouts" value=(h);
            }
        }
    };
    html! {
        h3 { "Holdouts" }
        ul #holdouts {
            @for h in &data.dependencies.holdouts {
                li data-holdout=(h.key) {
                    a href=(group_href(&f.project, GroupKind::Holdout, &h.key)) { (h.name) } " (" code { (h.key) } ") "
                    "holds out " span.held-out { (100 - h.percentage) "%" } " of users"
                    @if h.archived { " " span.badge.archived { "archived" } }
                    @if !h.other_members.is_empty() { "; also holds out " (links(&f.project, &h.other_members)) }
                    form.leave-holdout method="post" action=(format!("{base}/holdouts")) {
                        (hidden)
                        input type="hidden" name="version" value=(f.version);
                        (current(Some(&h.key)))
                        button type="submit" { "Leave " (h.key) }
                    }
                }
            }
            @if data.dependencies.holdouts.is_empty() { li.none { "Not in a holdout group." } }
        }
        @if data.groups.holdouts.is_empty() {
            p.hint { "No other holdout group of this project can take this flag." }
        } @else {
            form #join-holdout method="post" action=(format!("{base}/holdouts")) {
                (hidden)
                input type="hidden" name="_form" value="join-holdout";
                input type="hidden" name="version" value=(f.version);
                (current(None))
                label { "Join holdout"
                    select name="holdout" required {
                        option value="" { "Select a holdout group" }
                        @for h in &data.groups.holdouts {
                            option value=(h.key) selected[chosen.as_deref() == Some(h.key.as_str())] {
                                (h.name) " (" (h.key) ", holds out " (100 - h.percentage) "%)"
                            }
                        }
                    }
                }
                button type="submit" { "Join holdout" }
            }
        }
    }
}

/// What each group lets through, multiplied: the largest share of users the flag can reach.
fn reach(data: &PageData) -> Markup {
    let deps = &data.dependencies;
    let parts: Vec<String> = deps
        .holdouts
        .iter()
        .map(|h: &GroupInfo| format!("{} holds out {}%", h.key, 100 - h.percentage))
        .chain(deps.mutex_group.iter().map(|m| {
            format!(
                "slot-{} of {} takes {}%",
                m.slot.unwrap_or_default(),
                m.key,
                m.percentage
            )
        }))
        .collect();
    html! {
        p #max-reach data-reach=(percent(deps.max_reach)) {
            @if parts.is_empty() {
                "No group limits this flag: it can reach every user its targeting allows."
            } @else {
                (parts.join(" and ")) " → " strong { "at most " (percent(deps.max_reach)) "% of users" }
                " can reach this flag; prerequisites and targeting narrow it further."
            }
        }
    }
}

fn dependents(data: &PageData) -> Markup {
    let f = &data.flag;
    html! {
        h3 { "Dependents" }
        ul #dependents {
            @for d in &data.dependencies.dependents {
                li data-dependent=(d.flag.key) {
                    a href=(flag_href(&f.project, &d.flag.key)) { (d.flag.name) } " needs " code { (d.variants.join(", ")) }
                }
            }
            @if data.dependencies.dependents.is_empty() { li.none { "No flag depends on this one." } }
        }
    }
}

/// `group/index` from the slot chooser.
fn slot_ref(f: &Fields) -> vexil_core::Result<SlotRef> {
    let parsed = f.get("slot").and_then(|v| {
        let (group, slot) = v.rsplit_once('/')?;
        Some((group.to_owned(), slot.parse::<u8>().ok()?))
    });
    let Some((group, slot)) = parsed else {
        return Err(Error::Invalid(vec![FieldError::new(
            "mutex_group.slot",
            "required",
            "choose the slot of a mutual-exclusion group to join",
        )]));
    };
    Ok(SlotRef {
        group,
        slot,
        shared: f.get("shared") == Some("true"),
    })
}

/// `POST /flags/{key}/mutex-group`: joins (or moves to) a slot.
pub(crate) async fn join_mutex(
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
        "Joined the mutual-exclusion group.",
        |s, who, project, key, f| {
            let patch = FlagPatch {
                mutex_group: Some(Some(slot_ref(f)?)),
                ..FlagPatch::default()
            };
            super::flag_edit::apply_update(s, who, project, key, f, patch)
        },
    )
    .await
}

/// `POST /flags/{key}/mutex-group/leave`.
pub(crate) async fn leave_mutex(
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
        "Left the mutual-exclusion group.",
        |s, who, project, key, f| {
            let patch = FlagPatch {
                mutex_group: Some(None),
                ..FlagPatch::default()
            };
            super::flag_edit::apply_update(s, who, project, key, f, patch)
        },
    )
    .await
}

/// `POST /flags/{key}/holdouts`: the flag's holdout groups, as the form lists them
/// (`holdouts`: the ones the page showed, or all but the one to leave) with `holdout`, the one
/// to join. The version the page was rendered at makes a stale list a refusal, not a lost
/// change.
pub(crate) async fn set_holdouts(
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
        "Holdout groups saved.",
        |s, who, project, key, f| {
            let mut holdouts: Vec<String> = Vec::new();
            let listed = f.all("holdouts").into_iter().chain(f.text("holdout"));
            for h in listed.map(|h| h.trim().to_owned()) {
                if !h.is_empty() && !holdouts.contains(&h) {
                    holdouts.push(h);
                }
            }
            let patch = FlagPatch {
                holdouts: Some(holdouts),
                ..FlagPatch::default()
            };
            super::flag_edit::apply_update(s, who, project, key, f, patch)
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_read_as_written() {
        assert_eq!(percent(47.5), "47.5");
        assert_eq!(percent(38.0), "38");
        assert_eq!(percent(100.0), "100");
        assert_eq!(percent(42.749_999), "42.75");
        assert_eq!(percent(0.0), "0");
    }
}
