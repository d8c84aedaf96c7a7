//! What a change does to a flag, in the product's words: one line per thing a person would
//! notice ("Segment *Pro plan*: rollout 20% → 50%", "Variant *express* deleted"), read from the
//! flag before and after rather than from the changes, so a list of changes reads as its net
//! effect.

use std::collections::BTreeMap;

use crate::model::{Flag, FlagState, Rollout, Segment};

/// The lines describing what changed from `before` to `after` (empty: nothing a user sees).
pub fn describe(before: &Flag, after: &Flag) -> Vec<String> {
    let mut out = Vec::new();
    if before.name != after.name {
        out.push(format!(
            "Renamed from *{}* to *{}*",
            before.name, after.name
        ));
    }
    if before.description != after.description {
        out.push("Description changed".to_string());
    }
    if before.state != after.state {
        out.push(match after.state {
            FlagState::Active => "Activated: serves its targeting".to_string(),
            FlagState::Inactive => "Deactivated: serves off to everyone".to_string(),
        });
    }
    if before.archived != after.archived {
        out.push(
            if after.archived {
                "Archived"
            } else {
                "Unarchived"
            }
            .to_string(),
        );
    }
    variants(before, after, &mut out);
    segments(before, after, &mut out);
    if before.all_other_users != after.all_other_users {
        out.push(format!(
            "All other users: {} → {}",
            rollout(&before.all_other_users),
            rollout(&after.all_other_users)
        ));
    }
    if before.inclusions != after.inclusions {
        for variant in keys(&before.inclusions, &after.inclusions) {
            let count = |f: &Flag| {
                f.inclusions
                    .get(&variant)
                    .map_or(0, |i| i.ids.len() + i.cohorts.len())
            };
            let (b, a) = (count(before), count(after));
            if b != a || before.inclusions.get(&variant) != after.inclusions.get(&variant) {
                out.push(format!(
                    "Individual inclusions in *{variant}*: {b} → {a} (ids and cohorts)"
                ));
            }
        }
    }
    if before.prerequisites != after.prerequisites {
        let names = |f: &Flag| -> Vec<String> {
            f.prerequisites
                .iter()
                .map(|p| format!("*{}* is {}", p.flag, p.variants.join(" or ")))
                .collect()
        };
        let (b, a) = (names(before), names(after));
        for gone in b.iter().filter(|x| !a.contains(x)) {
            out.push(format!("Dependency removed: {gone}"));
        }
        for new in a.iter().filter(|x| !b.contains(x)) {
            out.push(format!("Dependency added: {new}"));
        }
    }
    if before.deployments != after.deployments {
        for gone in before
            .deployments
            .iter()
            .filter(|d| !after.deployments.contains(d))
        {
            out.push(format!("Removed from deployment *{gone}*"));
        }
        for new in after
            .deployments
            .iter()
            .filter(|d| !before.deployments.contains(d))
        {
            out.push(format!("Added to deployment *{new}*"));
        }
    }
    if before.bucketing_salt != after.bucketing_salt
        || before.bucketing_unit != after.bucketing_unit
    {
        out.push("Bucketing changed: users move between variants".to_string());
    }
    if before.mutex_group != after.mutex_group {
        out.push(match &after.mutex_group {
            Some(m) => format!("Runs in slot {} of *{}*", m.slot, m.group),
            None => "Leaves its mutual-exclusion group".to_string(),
        });
    }
    if before.holdouts != after.holdouts {
        out.push(format!(
            "Holdouts: {} → {}",
            list(&before.holdouts),
            list(&after.holdouts)
        ));
    }
    if before.experiment != after.experiment {
        out.push("Experiment settings changed".to_string());
    }
    if before.tags != after.tags || before.evaluation_mode != after.evaluation_mode {
        out.push("Settings changed (tags or evaluation mode)".to_string());
    }
    out
}

/// What a flag serves, in plain words, one line per rule in the order they apply: who is
/// pinned, each segment, everyone else, and what gates it (state, prerequisites, groups,
/// deployments). The flag page's overview.
pub fn serves(f: &Flag) -> Vec<String> {
    let mut out = Vec::new();
    if f.archived {
        out.push("Archived: no SDK serves it".to_string());
        return out;
    }
    if f.state == FlagState::Inactive {
        out.push("Inactive: everyone gets off. Once active:".to_string());
    }
    for (variant, i) in &f.inclusions {
        if !i.is_empty() {
            let mut who = Vec::new();
            if !i.ids.is_empty() {
                who.push(format!("{} user(s)", i.ids.len()));
            }
            if !i.cohorts.is_empty() {
                who.push(format!("{} cohort(s)", i.cohorts.len()));
            }
            out.push(format!("{} pinned to *{variant}*", who.join(" and ")));
        }
    }
    for s in &f.segments {
        out.push(format!("{} users: {}", s.name, serving(&s.rollout())));
    }
    let everyone = if f.segments.is_empty() {
        "Everyone"
    } else {
        "Everyone else"
    };
    out.push(format!("{everyone}: {}", serving(&f.all_other_users)));
    for p in &f.prerequisites {
        out.push(format!(
            "Only for users who get {} from *{}*",
            p.variants
                .iter()
                .map(|v| format!("*{v}*"))
                .collect::<Vec<_>>()
                .join(" or "),
            p.flag
        ));
    }
    if let Some(m) = &f.mutex_group {
        out.push(format!(
            "Only for users in slot {} of *{}*",
            m.slot, m.group
        ));
    }
    for h in &f.holdouts {
        out.push(format!("Not for users held out by *{h}*"));
    }
    if f.deployments.is_empty() {
        out.push("Attached to no deployment: no SDK serves it yet".to_string());
    } else {
        out.push(format!("Served to the SDKs of {}", list(&f.deployments)));
    }
    out
}

/// The targeting in a few words, for lists: "Everyone: *on*", "2 segments; everyone else: off".
pub fn targeting(f: &Flag) -> String {
    match f.segments.len() {
        0 => format!("Everyone: {}", serving(&f.all_other_users)),
        n => format!(
            "{n} segment{}; everyone else: {}",
            if n == 1 { "" } else { "s" },
            serving(&f.all_other_users)
        ),
    }
}

/// "*a* 20%, *b* 80%" at 100%, "30% get *a* (the rest off)", or "off".
fn serving(r: &Rollout) -> String {
    let total: u32 = r.weights.values().sum();
    let split: Vec<String> = r
        .weights
        .iter()
        .filter(|(_, w)| **w > 0)
        .map(|(k, w)| (k, share(*w, total)))
        .map(|(k, s)| {
            if s == "100" {
                format!("*{k}*")
            } else {
                format!("*{k}* {s}%")
            }
        })
        .collect();
    if r.percentage == 0 || split.is_empty() {
        return "off".to_string();
    }
    if r.percentage == 100 {
        split.join(", ")
    } else {
        format!("{}% get {} (the rest off)", r.percentage, split.join(", "))
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(", ")
    }
}

fn keys<V>(a: &BTreeMap<String, V>, b: &BTreeMap<String, V>) -> Vec<String> {
    let mut k: Vec<String> = a.keys().chain(b.keys()).cloned().collect();
    k.sort();
    k.dedup();
    k
}

/// "20% (*control* 50%, *treatment* 50%)", or "off" at 0%.
fn rollout(r: &Rollout) -> String {
    if r.percentage == 0 {
        return "off".to_string();
    }
    let total: u32 = r.weights.values().sum();
    let split: Vec<String> = r
        .weights
        .iter()
        .filter(|(_, w)| **w > 0)
        .map(|(k, w)| format!("*{k}* {}%", share(*w, total)))
        .collect();
    if split.is_empty() {
        format!("{}%", r.percentage)
    } else {
        format!("{}% ({})", r.percentage, split.join(", "))
    }
}

fn share(w: u32, total: u32) -> String {
    if total == 0 {
        return "0".to_string();
    }
    let pct = f64::from(w) * 100.0 / f64::from(total);
    if (pct - pct.round()).abs() < 0.05 {
        format!("{}", pct.round())
    } else {
        format!("{pct:.1}")
    }
}

fn variants(before: &Flag, after: &Flag, out: &mut Vec<String>) {
    let key_of = |f: &Flag| -> Vec<String> { f.variants.iter().map(|v| v.key.clone()).collect() };
    let (b, a) = (key_of(before), key_of(after));
    for v in after.variants.iter().filter(|v| !b.contains(&v.key)) {
        out.push(format!("Variant *{}* added", v.key));
    }
    for k in b.iter().filter(|k| !a.contains(k)) {
        out.push(format!("Variant *{k}* deleted"));
    }
    for v in &after.variants {
        if let Some(old) = before.variants.iter().find(|o| o.key == v.key) {
            if old != v {
                out.push(format!(
                    "Variant *{}* edited (name, value, payload or description)",
                    v.key
                ));
            }
        }
    }
}

fn segments(before: &Flag, after: &Flag, out: &mut Vec<String>) {
    let find = |list: &[Segment], name: &str| list.iter().find(|s| s.name == name).cloned();
    for s in &after.segments {
        match find(&before.segments, &s.name) {
            None => out.push(format!(
                "Segment *{}* added: {}",
                s.name,
                rollout(&s.rollout())
            )),
            Some(old) => {
                if old.rollout() != s.rollout() {
                    out.push(format!(
                        "Segment *{}*: {} → {}",
                        s.name,
                        rollout(&old.rollout()),
                        rollout(&s.rollout())
                    ));
                }
                if old.conditions != s.conditions {
                    out.push(format!("Segment *{}*: conditions changed", s.name));
                }
            }
        }
    }
    for s in &before.segments {
        if find(&after.segments, &s.name).is_none() {
            out.push(format!("Segment *{}* removed", s.name));
        }
    }
    let order = |f: &Flag| -> Vec<String> { f.segments.iter().map(|s| s.name.clone()).collect() };
    let (b, a) = (order(before), order(after));
    let common = |x: &[String], y: &[String]| -> Vec<String> {
        x.iter().filter(|n| y.contains(n)).cloned().collect()
    };
    if common(&b, &a) != common(&a, &b) {
        out.push("Segments reordered (the first that matches wins)".to_string());
    }
}

#[cfg(test)]
mod tests;
