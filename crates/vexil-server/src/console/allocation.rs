//! The Allocation panel: rule-based segments with their condition builder, rollout percentage
//! and relative weights (with the resulting shares shown), All Other Users, and individual
//! inclusions; and the parsing of the submitted form back into the model.
//!
//! Field names: `segments[i].name`, `segments[i].percentage`, `segments[i].weights.<variant>`,
//! `segments[i].conditions[j].{target,name,group_type,op,values}`, `aou.percentage`,
//! `aou.weights.<variant>`, `inclusions.<variant>` (ids) and `inclusion_cohorts.<variant>`.
//! Indexes need not be consecutive (rows added in the browser take fresh ones); order is kept.

use std::collections::BTreeMap;

use maud::{html, Markup};
use vexil_core::service::OPERATORS;
use vexil_core::{Cohort, Condition, FieldError, Flag, Inclusion, Rollout, Segment, Target};

use super::form::{lines, Fields};

/// What a condition can read, with the builder's labels.
const TARGETS: &[(&str, &str)] = &[
    ("user_field", "User field"),
    ("user_property", "User property"),
    ("cohort", "User in cohort"),
    ("group_name", "Group name"),
    ("group_property", "Group property"),
    ("group_cohort", "Group in cohort"),
];

/// The share of each weight, as the percentages the rollout's users get (`1:4` is `20%:80%`).
fn shares(weights: &[(String, String)]) -> Vec<String> {
    let numbers: Vec<u32> = weights
        .iter()
        .map(|(_, w)| w.trim().parse().unwrap_or(0))
        .collect();
    let total: u32 = numbers.iter().sum();
    numbers
        .iter()
        .map(|w| {
            if total == 0 {
                "0%".to_owned()
            } else {
                let share = f64::from(*w) * 100.0 / f64::from(total);
                format!("{}%", (share * 10.0).round() / 10.0)
            }
        })
        .collect()
}

/// The panel's inputs as text, in the order shown: read from the saved flag, or from a
/// submitted form, so that a refused save shows every input exactly as it was typed.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Inputs {
    pub segments: Vec<SegmentInputs>,
    pub all_other_users: RolloutInputs,
    /// Per variant: the ids (one per line) and the cohort ids.
    pub inclusions: BTreeMap<String, (String, Vec<String>)>,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct SegmentInputs {
    pub name: String,
    pub conditions: Vec<ConditionInputs>,
    pub rollout: RolloutInputs,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct RolloutInputs {
    pub percentage: String,
    /// By variant key.
    pub weights: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ConditionInputs {
    pub target: String,
    pub name: String,
    pub group_type: String,
    pub op: String,
    /// One value per line.
    pub values: String,
}

impl Default for ConditionInputs {
    fn default() -> Self {
        ConditionInputs {
            target: "user_field".into(),
            name: String::new(),
            group_type: String::new(),
            op: "is".into(),
            values: String::new(),
        }
    }
}

fn rollout_inputs(rollout: &Rollout) -> RolloutInputs {
    RolloutInputs {
        percentage: rollout.percentage.to_string(),
        weights: rollout
            .weights
            .iter()
            .map(|(k, w)| (k.clone(), w.to_string()))
            .collect(),
    }
}

fn target_parts(target: &Target) -> (&'static str, String, String) {
    match target {
        Target::UserField { field } => ("user_field", field.clone(), String::new()),
        Target::UserProperty { property } => ("user_property", property.clone(), String::new()),
        Target::Cohort => ("cohort", String::new(), String::new()),
        Target::GroupName { group_type } => ("group_name", String::new(), group_type.clone()),
        Target::GroupProperty {
            group_type,
            property,
        } => ("group_property", property.clone(), group_type.clone()),
        Target::GroupCohort { group_type } => ("group_cohort", String::new(), group_type.clone()),
    }
}

impl Inputs {
    /// The saved allocation of `flag`.
    pub fn of(flag: &Flag) -> Inputs {
        Inputs {
            segments: flag
                .segments
                .iter()
                .map(|s| SegmentInputs {
                    name: s.name.clone(),
                    conditions: s
                        .conditions
                        .iter()
                        .map(|c| {
                            let (target, name, group_type) = target_parts(&c.target);
                            ConditionInputs {
                                target: target.to_owned(),
                                name,
                                group_type,
                                op: c.op.clone(),
                                values: c.values.join("\n"),
                            }
                        })
                        .collect(),
                    rollout: rollout_inputs(&s.rollout()),
                })
                .collect(),
            all_other_users: rollout_inputs(&flag.all_other_users),
            inclusions: flag
                .inclusions
                .iter()
                .map(|(v, i)| (v.clone(), (i.ids.join("\n"), i.cohorts.clone())))
                .collect(),
        }
    }

    /// The inputs of a submitted form, segments and conditions in the order shown (indexes
    /// need not be consecutive: rows added in the browser take fresh ones).
    pub fn submitted(fields: &Fields) -> Inputs {
        let mut segments: BTreeMap<u32, (SegmentInputs, BTreeMap<u32, ConditionInputs>)> =
            BTreeMap::new();
        for (rest, value) in fields.with_prefix("segments[") {
            let Some((i, rest)) = split_index(rest) else {
                continue;
            };
            let (segment, conditions) = segments.entry(i).or_default();
            if let Some((j, name)) = rest.strip_prefix("conditions[").and_then(split_index) {
                let c = conditions.entry(j).or_default();
                let slot = match name {
                    "target" => &mut c.target,
                    "name" => &mut c.name,
                    "group_type" => &mut c.group_type,
                    "op" => &mut c.op,
                    "values" => &mut c.values,
                    _ => continue,
                };
                value.clone_into(slot);
            } else if let Some(variant) = rest.strip_prefix("weights.") {
                segment
                    .rollout
                    .weights
                    .insert(variant.to_owned(), value.to_owned());
            } else if rest == "name" {
                value.clone_into(&mut segment.name);
            } else if rest == "percentage" {
                value.clone_into(&mut segment.rollout.percentage);
            }
        }
        let mut all_other_users = RolloutInputs::default();
        for (rest, value) in fields.with_prefix("aou.") {
            if let Some(variant) = rest.strip_prefix("weights.") {
                all_other_users
                    .weights
                    .insert(variant.to_owned(), value.to_owned());
            } else if rest == "percentage" {
                value.clone_into(&mut all_other_users.percentage);
            }
        }
        let mut inclusions: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
        for (variant, ids) in fields.with_prefix("inclusions.") {
            inclusions.entry(variant.to_owned()).or_default().0 = ids.to_owned();
        }
        for (variant, cohort) in fields.with_prefix("inclusion_cohorts.") {
            inclusions
                .entry(variant.to_owned())
                .or_default()
                .1
                .push(cohort.to_owned());
        }
        Inputs {
            segments: segments
                .into_values()
                .map(|(mut s, conditions)| {
                    s.conditions = conditions.into_values().collect();
                    s
                })
                .collect(),
            all_other_users,
            inclusions,
        }
    }

    /// The allocation these inputs describe, or every input that cannot be read (with the
    /// field names the service uses, `segments[i]…` in the order shown). A cohort condition's
    /// value may name a cohort instead of giving its id. Validation of the values themselves
    /// is the service's.
    pub fn parse(&self, cohorts: &[Cohort]) -> Result<Allocation, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut segments = Vec::new();
        for (n, s) in self.segments.iter().enumerate() {
            let field = format!("segments[{n}]");
            let rollout = rollout(&s.rollout, &field, &mut errors);
            let conditions = s
                .conditions
                .iter()
                .enumerate()
                .filter_map(|(j, c)| {
                    condition(c, &format!("{field}.conditions[{j}]"), cohorts, &mut errors)
                })
                .collect();
            segments.push(Segment {
                name: s.name.trim().to_owned(),
                conditions,
                percentage: rollout.percentage,
                weights: rollout.weights,
            });
        }
        let all_other_users = rollout(&self.all_other_users, "all_other_users", &mut errors);
        let mut inclusions: BTreeMap<String, Inclusion> = self
            .inclusions
            .iter()
            .map(|(variant, (ids, cohorts))| {
                let inclusion = Inclusion {
                    ids: super::form::items(ids),
                    cohorts: cohorts.clone(),
                };
                (variant.clone(), inclusion)
            })
            .collect();
        inclusions.retain(|_, i| !i.is_empty());
        if errors.is_empty() {
            Ok((segments, all_other_users, inclusions))
        } else {
            Err(errors)
        }
    }
}

/// The errors about `path` (the field itself or anything inside it), except those whose field
/// starts with `except`, each shown next to its input.
fn field_errors(errors: &[FieldError], path: &str, except: Option<&str>) -> Markup {
    let inside = |field: &str, path: &str| {
        field == path
            || field
                .strip_prefix(path)
                .is_some_and(|rest| rest.starts_with(['.', '[']))
    };
    html! {
        @for e in errors.iter().filter(|e| inside(&e.field, path) && !except.is_some_and(|x| e.field.starts_with(x))) {
            p.field-error data-field=(e.field) role="alert" { (e.message) }
        }
    }
}

fn weight_inputs(prefix: &str, flag: &Flag, rollout: &RolloutInputs) -> Markup {
    let weights: Vec<(String, String)> = flag
        .variants
        .iter()
        .map(|v| {
            let w = rollout.weights.get(&v.key).cloned().unwrap_or_default();
            (v.key.clone(), if w.is_empty() { "0".into() } else { w })
        })
        .collect();
    let shares = shares(&weights);
    html! {
        div.weights data-weights="" {
            @for ((variant, weight), share) in weights.iter().zip(&shares) {
                label.weight {
                    span.variant-name { (variant_label(flag, variant)) }
                    input type="number" min="0" step="1" name=(format!("{prefix}.weights.{variant}")) value=(weight);
                    span.share { (share) }
                }
            }
        }
    }
}

/// A variant as people know it: its name, with the key when they differ.
pub(crate) fn variant_label(flag: &Flag, key: &str) -> String {
    match flag.variants.iter().find(|v| v.key == key) {
        Some(v) if !v.name.is_empty() && v.name != v.key => format!("{} ({})", v.name, v.key),
        _ => key.to_owned(),
    }
}

fn condition_row(
    prefix: &str,
    c: &ConditionInputs,
    cohorts: &[Cohort],
    errors: &[FieldError],
) -> Markup {
    let chosen: Vec<&str> = c.values.lines().map(str::trim).collect();
    html! {
        div.condition data-target=(c.target) {
            select.target name=(format!("{prefix}.target")) aria-label="what the condition reads" {
                @for (value, label) in TARGETS { option value=(value) selected[*value == c.target] { (label) } }
            }
            input.name name=(format!("{prefix}.name")) value=(c.name) placeholder="field or property" aria-label="field or property" list="user-fields";
            input.group-type name=(format!("{prefix}.group_type")) value=(c.group_type) placeholder="group type" aria-label="group type";
            select name=(format!("{prefix}.op")) aria-label="operator" {
                @for (o, words) in OPERATORS { option value=(o) selected[o == c.op] { (words) } }
            }
            textarea.values name=(format!("{prefix}.values")) rows="2" placeholder="one value per line" aria-label="values" { (c.values) }
            @if !cohorts.is_empty() {
                // The cohort picker: names, kept in step with the values (cohort ids) by the script.
                select.cohort-picker multiple aria-label="cohorts" {
                    @for k in cohorts { option value=(k.id) selected[chosen.contains(&k.id.as_str())] { (k.name) } }
                }
            }
            button.remove-condition type="button" { "Remove" }
            (field_errors(errors, prefix, None))
        }
    }
}

fn segment_block(
    flag: &Flag,
    index: &str,
    segment: &SegmentInputs,
    cohorts: &[Cohort],
    errors: &[FieldError],
) -> Markup {
    let prefix = format!("segments[{index}]");
    let conditions = format!("{prefix}.conditions");
    html! {
        fieldset.segment data-index=(index) {
            legend { "Segment" }
            label { "Name" input name=(format!("{prefix}.name")) value=(segment.name) required; }
            div.conditions data-prefix=(prefix) data-next=(segment.conditions.len()) {
                @for (j, c) in segment.conditions.iter().enumerate() {
                    (condition_row(&format!("{prefix}.conditions[{j}]"), c, cohorts, errors))
                }
            }
            (field_errors(errors, &conditions, Some(&format!("{conditions}["))))
            button.add-condition type="button" { "+ Condition" }
            label { "Rollout %" input type="number" min="0" max="100" name=(format!("{prefix}.percentage")) value=(segment.rollout.percentage); }
            (weight_inputs(&prefix, flag, &segment.rollout))
            (field_errors(errors, &prefix, Some(&conditions)))
            button.remove-segment type="button" { "Remove segment" }
        }
    }
}

/// The panel, with its form: `inputs` as saved or as a refused form submitted them, with
/// `errors` next to the inputs they name.
pub(crate) fn panel(
    flag: &Flag,
    inputs: &Inputs,
    errors: &[FieldError],
    cohorts: &[Cohort],
    hidden: Markup,
    action: &str,
) -> Markup {
    let fresh = SegmentInputs {
        rollout: RolloutInputs {
            percentage: "100".into(),
            weights: flag
                .variants
                .iter()
                .map(|v| (v.key.clone(), "1".into()))
                .collect(),
        },
        ..SegmentInputs::default()
    };
    html! {
        form #allocation-form method="post" action=(action) data-unsaved="" {
            (hidden)
            input type="hidden" name="_form" value="allocation";
            input type="hidden" name="version" value=(flag.version);
            h3 { "Rule-based user segments" }
            p.hint { "Segments are tried in order; a user gets the first segment whose conditions all hold. "
                "The rollout percentage is the share of matching users who get a variant; weights split them between variants." }
            div #segments data-next=(inputs.segments.len()) {
                @for (i, s) in inputs.segments.iter().enumerate() {
                    (segment_block(flag, &i.to_string(), s, cohorts, errors))
                }
            }
            button #add-segment type="button" { "+ Segment" }
            template #segment-template { (segment_block(flag, "__S__", &fresh, cohorts, &[])) }
            template #condition-template { (condition_row("__P__", &ConditionInputs::default(), cohorts, &[])) }
            datalist #user-fields {
                @for f in vexil_core::USER_FIELDS { option value=(f); }
            }
            h3 { "All other users" }
            label { "Rollout %" input type="number" min="0" max="100" name="aou.percentage" value=(inputs.all_other_users.percentage); }
            (weight_inputs("aou", flag, &inputs.all_other_users))
            (field_errors(errors, "all_other_users", None))
            h3 { "Individual inclusions" }
            p.hint { "Users listed here get the variant whatever the segments say (matched by user id or device id)." }
            @for v in &flag.variants {
                @let (ids, chosen) = inputs.inclusions.get(&v.key).cloned().unwrap_or_default();
                div.inclusion {
                    label { (variant_label(flag, &v.key)) ": ids"
                        textarea name=(format!("inclusions.{}", v.key)) rows="2" placeholder="one id per line" { (ids) }
                    }
                    @if !cohorts.is_empty() {
                        label { "cohorts"
                            select name=(format!("inclusion_cohorts.{}", v.key)) multiple {
                                @for c in cohorts { option value=(c.id) selected[chosen.contains(&c.id)] { (c.name) } }
                            }
                        }
                    }
                    (field_errors(errors, &format!("inclusions.{}", v.key), None))
                }
            }
            button type="submit" { "Save allocation" }
        }
    }
}

/// A submitted allocation: segments, All Other Users, inclusions by variant.
pub(crate) type Allocation = (Vec<Segment>, Rollout, BTreeMap<String, Inclusion>);

/// `12].name` -> (12, "name"), `3].op` -> (3, "op").
fn split_index(rest: &str) -> Option<(u32, &str)> {
    let (index, rest) = rest.split_once(']')?;
    Some((index.parse().ok()?, rest.strip_prefix('.')?))
}

fn number<T: std::str::FromStr>(
    value: &str,
    field: &str,
    errors: &mut Vec<FieldError>,
) -> Option<T> {
    match value.trim().parse() {
        Ok(n) => Some(n),
        Err(_) => {
            errors.push(FieldError::new(
                field,
                "invalid_number",
                format!("{field} must be a whole number, not {value:?}"),
            ));
            None
        }
    }
}

fn rollout(r: &RolloutInputs, field: &str, errors: &mut Vec<FieldError>) -> Rollout {
    Rollout {
        percentage: number::<u8>(&r.percentage, &format!("{field}.percentage"), errors)
            .unwrap_or(0),
        weights: r
            .weights
            .iter()
            .filter_map(|(variant, w)| {
                let w = number::<u32>(w, &format!("{field}.weights.{variant}"), errors)?;
                Some((variant.clone(), w))
            })
            .collect(),
    }
}

fn condition(
    c: &ConditionInputs,
    field: &str,
    cohorts: &[Cohort],
    errors: &mut Vec<FieldError>,
) -> Option<Condition> {
    let (name, group_type) = (c.name.trim().to_owned(), c.group_type.trim().to_owned());
    let target = match c.target.trim() {
        "user_field" => Target::UserField { field: name },
        "user_property" => Target::UserProperty { property: name },
        "cohort" => Target::Cohort,
        "group_name" => Target::GroupName { group_type },
        "group_property" => Target::GroupProperty {
            group_type,
            property: name,
        },
        "group_cohort" => Target::GroupCohort { group_type },
        other => {
            errors.push(FieldError::new(
                format!("{field}.target"),
                "invalid_target",
                format!("a condition reads a user field, property, cohort or group, not {other:?}"),
            ));
            return None;
        }
    };
    let mut values = lines(&c.values);
    if matches!(target, Target::Cohort | Target::GroupCohort { .. }) {
        // A cohort named by its name (as people know it) stands for its id.
        for v in &mut values {
            if !cohorts.iter().any(|k| k.id == *v) {
                if let Some(k) = cohorts.iter().find(|k| k.name.eq_ignore_ascii_case(v)) {
                    v.clone_from(&k.id);
                }
            }
        }
    }
    Some(Condition {
        target,
        op: c.op.trim().to_owned(),
        values,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_submitted_allocation_reads_back_in_order() {
        let body = "segments[7].name=Beta&segments[7].percentage=50&segments[7].weights.on=1&segments[7].weights.b=4\
            &segments[7].conditions[2].target=user_property&segments[7].conditions[2].name=plan&segments[7].conditions[2].op=is\
            &segments[7].conditions[2].values=pro%0Aenterprise&segments[7].conditions[0].target=user_field\
            &segments[7].conditions[0].name=country&segments[7].conditions[0].op=is&segments[7].conditions[0].values=US\
            &segments[2].name=First&segments[2].percentage=100&segments[2].conditions[0].target=cohort\
            &segments[2].conditions[0].op=set+contains+any&segments[2].conditions[0].values=beta\
            &aou.percentage=0&aou.weights.on=1&inclusions.on=u1%2C+u2&inclusions.b=&inclusion_cohorts.b=vip";
        let (segments, aou, inclusions) = Inputs::submitted(&Fields::parse(body.as_bytes()))
            .parse(&[])
            .unwrap();
        assert_eq!(segments.len(), 2);
        assert_eq!(segments[0].name, "First");
        assert_eq!(segments[0].conditions[0].target, Target::Cohort);
        assert_eq!(segments[1].name, "Beta");
        assert_eq!(segments[1].percentage, 50);
        assert_eq!(
            segments[1].weights,
            BTreeMap::from([("b".into(), 4), ("on".into(), 1)])
        );
        assert_eq!(
            segments[1].conditions[0].target,
            Target::UserField {
                field: "country".into()
            }
        );
        assert_eq!(segments[1].conditions[1].values, ["pro", "enterprise"]);
        assert_eq!((aou.percentage, aou.weights.get("on")), (0, Some(&1)));
        assert_eq!(inclusions["on"].ids, ["u1", "u2"]);
        assert_eq!(inclusions["b"].cohorts, ["vip"]);
        assert_eq!(
            shares(&[("a".into(), "1".into()), ("b".into(), "4".into())]),
            ["20%", "80%"]
        );
        assert_eq!(
            shares(&[("a".into(), "1".into()), ("b".into(), "2".into())]),
            ["33.3%", "66.7%"]
        );
    }

    #[test]
    fn unreadable_numbers_name_their_field() {
        let errors = Inputs::submitted(&Fields::parse(
            b"segments[0].percentage=lots&aou.percentage=5&aou.weights.on=-1",
        ))
        .parse(&[])
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["segments[0].percentage", "all_other_users.weights.on"]
        );
    }
}
