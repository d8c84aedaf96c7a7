//! The engine's terms in the product's words: operators as the condition builder offers them
//! ("is one of"), and a QA explanation as sentences ("Segment *Pro plan* skipped: property
//! *plan* is "free"; the condition asks that it is one of pro, enterprise").

use vexil_eval::{
    ConditionsExplanation, FailedCondition, FlagExplanation, SegmentExplanation, SegmentOutcome,
    Value,
};

/// Every operator the engine knows, with the words that make a condition read as a sentence
/// ("country *is one of* US, CA").
pub const OPERATORS: [(&str, &str); 20] = [
    ("is", "is one of"),
    ("is not", "is none of"),
    ("contains", "contains one of"),
    ("does not contain", "contains none of"),
    ("less", "is less than"),
    ("less or equal", "is at most"),
    ("greater", "is greater than"),
    ("greater or equal", "is at least"),
    ("version less", "is a version before"),
    ("version less or equal", "is a version at most"),
    ("version greater", "is a version after"),
    ("version greater or equal", "is a version at least"),
    ("regex match", "matches the pattern"),
    ("regex does not match", "does not match the pattern"),
    ("set is", "is exactly the set"),
    ("set is not", "is not exactly the set"),
    ("set contains", "includes all of"),
    ("set does not contain", "does not include all of"),
    ("set contains any", "includes any of"),
    ("set does not contain any", "includes none of"),
];

/// The words for operator `op` (the operator itself when it has none).
pub fn op_words(op: &str) -> &str {
    OPERATORS
        .iter()
        .find(|(o, _)| *o == op)
        .map_or(op, |(_, words)| words)
}

/// What a selector reads, as a person names it: `country`, `property *plan*`, `cohorts`,
/// `the *company* group`, `prerequisite *p*`.
fn subject(selector: &[String]) -> String {
    let s: Vec<&str> = selector.iter().map(String::as_str).collect();
    match s.as_slice() {
        ["context", "user", "user_properties", p, ..] => format!("property *{p}*"),
        ["context", "user", "cohort_ids"] => "the user's cohorts".to_owned(),
        ["context", "user", field] => field.replace('_', " "),
        ["context", "groups", t, "group_name"] => format!("the *{t}* group"),
        ["context", "groups", t, "group_properties", p, ..] => {
            format!("the *{t}* group's property *{p}*")
        }
        ["context", "groups", t, "cohort_ids"] => format!("the *{t}* group's cohorts"),
        ["result", flag, ..] => format!("prerequisite *{flag}*"),
        _ => selector.join("."),
    }
}

fn shown(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}

/// Why one condition was false, as a sentence.
fn failed(c: &FailedCondition) -> String {
    let what = subject(&c.selector);
    let actual = match &c.actual {
        None | Some(Value::Null) => "is not set".to_owned(),
        Some(Value::Array(a)) if a.is_empty() => "is empty".to_owned(),
        Some(v) => format!("is {}", shown(v)),
    };
    format!(
        "{what} {actual}; the condition asks that it {} {}",
        op_words(&c.op),
        c.values.join(", ")
    )
}

/// A segment by the name people gave it; Vexil's own segments by what they do.
fn segment_name(s: &SegmentExplanation) -> String {
    match s.name.as_deref() {
        Some("individual-inclusions") => "Individual inclusions".to_owned(),
        Some("flag-dependencies") => "Dependencies".to_owned(),
        Some("All Other Users") | Some("default") | None => "All other users".to_owned(),
        Some(name) => format!("Segment *{name}*"),
    }
}

/// One sentence per segment the engine examined for `e`, in order, up to the one that
/// served: why it was skipped, or how it served the user.
pub fn steps(e: &FlagExplanation) -> Vec<String> {
    e.segments.iter().map(step).collect()
}

fn step(s: &SegmentExplanation) -> String {
    let name = segment_name(s);
    // The dependency gate matches when a dependency does NOT give what the flag needs.
    if s.name.as_deref() == Some("flag-dependencies") {
        return match s.outcome {
            SegmentOutcome::NotMatched => {
                "Dependencies hold: every prerequisite and group gives what this flag needs"
                    .to_owned()
            }
            _ => "Dependencies turn this flag off: one of them does not give what it needs"
                .to_owned(),
        };
    }
    if let ConditionsExplanation::NotMatched { failed: f } = &s.conditions {
        return match f.as_slice() {
            [] => format!("{name} skipped: it has no condition that can hold"),
            [one] => format!("{name} skipped: {}", failed(one)),
            many => format!(
                "{name} skipped: {}",
                many.iter()
                    .map(|c| format!("({})", failed(c)))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
        };
    }
    let bucket = s.bucket.as_ref();
    let value = bucket.and_then(|b| b.value.clone());
    let unit = bucket.map_or_else(String::new, |b| subject(&b.selector));
    let rollout = bucket.and_then(|b| {
        // The allocation the user fell in, or the one the rollout has (its end is the %).
        b.allocation.as_ref().map(|a| a.range[1])
    });
    match &s.outcome {
        SegmentOutcome::Served {
            variant,
            bucketed: true,
            ..
        } => {
            let at = bucket.and_then(|b| b.allocation_value).unwrap_or_default();
            match rollout {
                Some(end) => format!(
                    "{name} matched; the user's {unit} {} lands at {at} of 100, inside the rollout (0–{}), so they get *{variant}*",
                    value.as_deref().map(|v| format!("{v:?}")).unwrap_or_default(),
                    end - 1
                ),
                None => format!("{name} matched and gives *{variant}*"),
            }
        }
        SegmentOutcome::Served {
            variant, reason, ..
        } if reason == "not allocated" => {
            let at = bucket.and_then(|b| b.allocation_value).unwrap_or_default();
            format!(
                "{name} matched, but the user's {unit} lands at {at} of 100, outside the segment's rollout: *{variant}*"
            )
        }
        SegmentOutcome::Served {
            variant, reason, ..
        } if reason == "no bucketing value" => format!(
            "{name} matched, but the user has no {unit} to place them in the rollout: *{variant}*"
        ),
        SegmentOutcome::Served { variant, .. } => format!("{name} matched and gives *{variant}*"),
        SegmentOutcome::FellThrough { reason } => {
            format!("{name} matched but gave no variant ({reason}); the next segment is tried")
        }
        SegmentOutcome::NotMatched => format!("{name} skipped"),
    }
}

#[cfg(test)]
mod tests {
    use vexil_eval::{explain, Context, FlagSet};

    use super::*;

    /// One flag, one user: the sentences QA shows.
    fn check(flag: &str, user: &str, want: &[&str]) {
        let set = FlagSet::from_json(&format!("[{flag}]")).unwrap();
        let user = Context::from_sdk_user_json(user).unwrap();
        let (_, explanations) = explain(&set, &user, &["f"]).unwrap();
        assert_eq!(steps(&explanations[0]), want, "{flag} for {user:?}");
    }

    const FLAG: &str = r#"{"key": "f", "variants": {"on": {"key": "on"}, "off": {"key": "off"}},
        "segments": [
          {"metadata": {"segmentName": "Pro plan"},
           "conditions": [[{"selector": ["context", "user", "user_properties", "plan"], "op": "is", "values": ["pro", "enterprise"]}]],
           "variant": "on"},
          {"metadata": {"segmentName": "All Other Users"},
           "bucket": {"selector": ["context", "user", "user_id"], "salt": "s",
                      "allocations": [{"range": [0, 50], "distributions": [{"variant": "on", "range": [0, 42949673]}]}]},
           "variant": "off"}]}"#;

    #[test]
    fn qa_reads_as_sentences() {
        check(
            FLAG,
            r#"{"user_id": "u1", "user_properties": {"plan": "pro"}}"#,
            &["Segment *Pro plan* matched and gives *on*"],
        );
        check(
            FLAG,
            r#"{"user_properties": {"plan": "free"}}"#,
            &[
                "Segment *Pro plan* skipped: property *plan* is \"free\"; the condition asks that it is one of pro, enterprise",
                "All other users matched, but the user has no user id to place them in the rollout: *off*",
            ],
        );
        check(
            FLAG,
            r#"{"user_id": "u1"}"#,
            &[
                "Segment *Pro plan* skipped: property *plan* is not set; the condition asks that it is one of pro, enterprise",
                // murmur3("s/u1") % 100 is where u1 lands.
                &format!("All other users matched{}", rollout_words("u1")),
            ],
        );
        assert_eq!(op_words("set contains any"), "includes any of");
        assert_eq!(op_words("unknown"), "unknown");
    }

    fn rollout_words(user: &str) -> String {
        let (at, _) = vexil_eval::bucket_values("s", user);
        if at < 50 {
            format!("; the user's user id {user:?} lands at {at} of 100, inside the rollout (0–49), so they get *on*")
        } else {
            format!(", but the user's user id lands at {at} of 100, outside the segment's rollout: *off*")
        }
    }
}
