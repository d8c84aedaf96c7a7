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
use vexil_core::{Cohort, Condition, FieldError, Flag, Inclusion, Rollout, Segment, Target};

use super::form::{lines, Fields};

/// Every operator the engine knows, as the condition builder offers them.
const OPERATORS: &[&str] = &vexil_eval::Op::ALL;

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
fn shares(weights: &[(String, u32)]) -> Vec<String> {
    let total: u32 = weights.iter().map(|(_, w)| *w).sum();
    weights
        .iter()
        .map(|(_, w)| {
            if total == 0 {
                "0%".to_owned()
            } else {
                let share = f64::from(*w) * 100.0 / f64::from(total);
                format!("{}%", (share * 10.0).round() / 10.0)
            }
        })
        .collect()
}

fn weight_inputs(prefix: &str, flag: &Flag, rollout: &Rollout) -> Markup {
    let weights: Vec<(String, u32)> = flag
        .variants
        .iter()
        .map(|v| {
            (
                v.key.clone(),
                rollout.weights.get(&v.key).copied().unwrap_or(0),
            )
        })
        .collect();
    let shares = shares(&weights);
    html! {
        div.weights data-weights="" {
            @for ((variant, weight), share) in weights.iter().zip(&shares) {
                label.weight {
                    span.variant-name { (variant) }
                    input type="number" min="0" step="1" name=(format!("{prefix}.weights.{variant}")) value=(weight);
                    span.share { (share) }
                }
            }
        }
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

fn condition_row(prefix: &str, condition: Option<&Condition>) -> Markup {
    let (target, name, group_type) = condition
        .map_or(("user_field", String::new(), String::new()), |c| {
            target_parts(&c.target)
        });
    let op = condition.map_or("is", |c| c.op.as_str());
    let values = condition.map(|c| c.values.join("\n")).unwrap_or_default();
    html! {
        div.condition {
            select name=(format!("{prefix}.target")) {
                @for (value, label) in TARGETS { option value=(value) selected[*value == target] { (label) } }
            }
            input name=(format!("{prefix}.name")) value=(name) placeholder="field or property" list="user-fields";
            input name=(format!("{prefix}.group_type")) value=(group_type) placeholder="group type";
            select name=(format!("{prefix}.op")) {
                @for o in OPERATORS { option value=(o) selected[*o == op] { (o) } }
            }
            textarea name=(format!("{prefix}.values")) rows="2" placeholder="one value per line" { (values) }
            button.remove-condition type="button" { "Remove" }
        }
    }
}

fn segment_block(flag: &Flag, index: &str, segment: Option<&Segment>) -> Markup {
    let prefix = format!("segments[{index}]");
    let empty = Rollout {
        percentage: 100,
        weights: flag.variants.iter().map(|v| (v.key.clone(), 1)).collect(),
    };
    let rollout = segment.map_or(empty, Segment::rollout);
    let conditions: Vec<&Condition> = segment
        .map(|s| s.conditions.iter().collect())
        .unwrap_or_default();
    html! {
        fieldset.segment data-index=(index) {
            legend { "Segment" }
            label { "Name" input name=(format!("{prefix}.name")) value=(segment.map_or("", |s| s.name.as_str())) required; }
            div.conditions data-prefix=(prefix) data-next=(conditions.len()) {
                @for (j, c) in conditions.iter().enumerate() {
                    (condition_row(&format!("{prefix}.conditions[{j}]"), Some(c)))
                }
            }
            button.add-condition type="button" { "+ Condition" }
            label { "Rollout %" input type="number" min="0" max="100" name=(format!("{prefix}.percentage")) value=(rollout.percentage); }
            (weight_inputs(&prefix, flag, &rollout))
            button.remove-segment type="button" { "Remove segment" }
        }
    }
}

/// The panel, with its form.
pub(crate) fn panel(flag: &Flag, cohorts: &[Cohort], hidden: Markup, action: &str) -> Markup {
    html! {
        form #allocation-form method="post" action=(action) {
            (hidden)
            input type="hidden" name="version" value=(flag.version);
            h3 { "Rule-based user segments" }
            p.hint { "Segments are tried in order; a user gets the first segment whose conditions all hold. "
                "The rollout percentage is the share of matching users who get a variant; weights split them between variants." }
            div #segments data-next=(flag.segments.len()) {
                @for (i, s) in flag.segments.iter().enumerate() {
                    (segment_block(flag, &i.to_string(), Some(s)))
                }
            }
            button #add-segment type="button" { "+ Segment" }
            template #segment-template { (segment_block(flag, "__S__", None)) }
            template #condition-template { (condition_row("__P__", None)) }
            datalist #user-fields {
                @for f in vexil_core::USER_FIELDS { option value=(f); }
            }
            h3 { "All other users" }
            label { "Rollout %" input type="number" min="0" max="100" name="aou.percentage" value=(flag.all_other_users.percentage); }
            (weight_inputs("aou", flag, &flag.all_other_users))
            h3 { "Individual inclusions" }
            p.hint { "Users listed here get the variant whatever the segments say (matched by user id or device id)." }
            @for v in &flag.variants {
                @let inclusion = flag.inclusions.get(&v.key).cloned().unwrap_or_default();
                div.inclusion {
                    label { (v.key) ": ids"
                        textarea name=(format!("inclusions.{}", v.key)) rows="2" placeholder="one id per line" { (inclusion.ids.join("\n")) }
                    }
                    @if !cohorts.is_empty() {
                        label { "cohorts"
                            select name=(format!("inclusion_cohorts.{}", v.key)) multiple {
                                @for c in cohorts { option value=(c.id) selected[inclusion.cohorts.contains(&c.id)] { (c.name) } }
                            }
                        }
                    }
                }
            }
            button type="submit" { "Save allocation" }
        }
    }
}

/// A submitted allocation: segments, All Other Users, inclusions by variant.
pub(crate) type Allocation = (Vec<Segment>, Rollout, BTreeMap<String, Inclusion>);

/// `segments[12].conditions[3].op` -> (12, Some((3, "op"))); `segments[12].name` -> (12, None, "name").
fn split_index(rest: &str) -> Option<(u32, &str)> {
    let (index, rest) = rest.split_once(']')?;
    Some((index.parse().ok()?, rest.strip_prefix('.')?))
}

#[derive(Default)]
struct DraftSegment {
    fields: BTreeMap<String, String>,
    conditions: BTreeMap<u32, BTreeMap<String, String>>,
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

fn weights(
    fields: &BTreeMap<String, String>,
    field: &str,
    errors: &mut Vec<FieldError>,
) -> BTreeMap<String, u32> {
    fields
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("weights.")?, v)))
        .filter_map(|(variant, v)| {
            let w = number::<u32>(v, &format!("{field}.weights.{variant}"), errors)?;
            Some((variant.to_owned(), w))
        })
        .collect()
}

fn condition(
    c: &BTreeMap<String, String>,
    field: &str,
    errors: &mut Vec<FieldError>,
) -> Option<Condition> {
    let get = |k: &str| c.get(k).map(|v| v.trim().to_owned()).unwrap_or_default();
    let (name, group_type) = (get("name"), get("group_type"));
    let target = match get("target").as_str() {
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
    Some(Condition {
        target,
        op: get("op"),
        values: lines(c.get("values").map_or("", String::as_str)),
    })
}

/// The allocation as submitted: segments, All Other Users and inclusions, or the fields that
/// cannot be read (validation of the values themselves is the service's).
pub(crate) fn parse(fields: &Fields) -> Result<Allocation, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut drafts: BTreeMap<u32, DraftSegment> = BTreeMap::new();
    for (rest, value) in fields.with_prefix("segments[") {
        let Some((i, rest)) = split_index(rest) else {
            continue;
        };
        let draft = drafts.entry(i).or_default();
        match rest.strip_prefix("conditions[").and_then(split_index) {
            Some((j, name)) => {
                draft
                    .conditions
                    .entry(j)
                    .or_default()
                    .insert(name.to_owned(), value.to_owned());
            }
            None => {
                draft.fields.insert(rest.to_owned(), value.to_owned());
            }
        }
    }
    let mut segments = Vec::new();
    for (n, draft) in drafts.values().enumerate() {
        let field = format!("segments[{n}]");
        let percentage = draft
            .fields
            .get("percentage")
            .and_then(|p| number::<u8>(p, &format!("{field}.percentage"), &mut errors))
            .unwrap_or(0);
        let conditions = draft
            .conditions
            .values()
            .enumerate()
            .filter_map(|(j, c)| condition(c, &format!("{field}.conditions[{j}]"), &mut errors))
            .collect();
        segments.push(Segment {
            name: draft
                .fields
                .get("name")
                .map(|s| s.trim().to_owned())
                .unwrap_or_default(),
            conditions,
            percentage,
            weights: weights(&draft.fields, &field, &mut errors),
        });
    }
    let aou: BTreeMap<String, String> = fields
        .with_prefix("aou.")
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let all_other_users = Rollout {
        percentage: aou
            .get("percentage")
            .and_then(|p| number::<u8>(p, "all_other_users.percentage", &mut errors))
            .unwrap_or(0),
        weights: weights(&aou, "all_other_users", &mut errors),
    };
    let mut inclusions: BTreeMap<String, Inclusion> = BTreeMap::new();
    for (variant, ids) in fields.with_prefix("inclusions.") {
        inclusions.entry(variant.to_owned()).or_default().ids = super::form::items(ids);
    }
    for (variant, cohort) in fields.with_prefix("inclusion_cohorts.") {
        inclusions
            .entry(variant.to_owned())
            .or_default()
            .cohorts
            .push(cohort.to_owned());
    }
    inclusions.retain(|_, i| !i.is_empty());
    if errors.is_empty() {
        Ok((segments, all_other_users, inclusions))
    } else {
        Err(errors)
    }
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
        let (segments, aou, inclusions) = parse(&Fields::parse(body.as_bytes())).unwrap();
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
        assert_eq!(shares(&[("a".into(), 1), ("b".into(), 4)]), ["20%", "80%"]);
        assert_eq!(
            shares(&[("a".into(), 1), ("b".into(), 2)]),
            ["33.3%", "66.7%"]
        );
    }

    #[test]
    fn unreadable_numbers_name_their_field() {
        let errors = parse(&Fields::parse(
            b"segments[0].percentage=lots&aou.percentage=5&aou.weights.on=-1",
        ))
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["segments[0].percentage", "all_other_users.weights.on"]
        );
    }
}
