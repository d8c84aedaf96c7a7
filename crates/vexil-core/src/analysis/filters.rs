//! A metric's property filters over an event's properties (`analysis.md` §2).

use serde_json::Value as Json;

use crate::model::{FilterOp, PropertyFilter, PropertyScope};

/// Whether an event with these `event_properties` and `user_properties` (JSON objects, or
/// absent) meets every filter. A missing property equals nothing: it fails every operator but
/// `is_not`.
pub fn matches(
    filters: &[PropertyFilter],
    event_properties: Option<&Json>,
    user_properties: Option<&Json>,
) -> bool {
    filters.iter().all(|f| {
        let scope = match f.scope {
            PropertyScope::Event => event_properties,
            PropertyScope::User => user_properties,
        };
        let value = scope
            .and_then(|p| p.get(&f.property))
            .filter(|v| !v.is_null());
        one(f, value)
    })
}

fn one(f: &PropertyFilter, value: Option<&Json>) -> bool {
    let Some(value) = value else {
        return f.op == FilterOp::IsNot;
    };
    let text = match value {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    };
    let number = match value {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    let bound = || f.values.first().and_then(|v| v.trim().parse::<f64>().ok());
    match f.op {
        FilterOp::Is => f.values.contains(&text),
        FilterOp::IsNot => !f.values.contains(&text),
        FilterOp::Contains => {
            let lower = text.to_lowercase();
            f.values.iter().any(|v| lower.contains(&v.to_lowercase()))
        }
        FilterOp::Greater => matches!((number, bound()), (Some(x), Some(b)) if x > b),
        FilterOp::GreaterOrEqual => matches!((number, bound()), (Some(x), Some(b)) if x >= b),
        FilterOp::Less => matches!((number, bound()), (Some(x), Some(b)) if x < b),
        FilterOp::LessOrEqual => matches!((number, bound()), (Some(x), Some(b)) if x <= b),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn filter(
        scope: PropertyScope,
        property: &str,
        op: FilterOp,
        values: &[&str],
    ) -> PropertyFilter {
        PropertyFilter {
            scope,
            property: property.into(),
            op,
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    #[test]
    fn filters_compare_as_the_metric_says() {
        use FilterOp::*;
        use PropertyScope::*;
        let event =
            json!({"plan": "pro", "amount": 12.5, "count": "7", "tags": "Black Friday", "n": null});
        let user = json!({"country": "DE"});
        // (filter, expected)
        let cases = [
            (filter(Event, "plan", Is, &["team", "pro"]), true),
            (filter(Event, "plan", IsNot, &["pro"]), false),
            (filter(Event, "missing", IsNot, &["pro"]), true),
            (filter(Event, "missing", Is, &["pro"]), false),
            (filter(Event, "n", IsNot, &["x"]), true),
            (filter(Event, "amount", Is, &["12.5"]), true),
            (filter(Event, "tags", Contains, &["friday"]), true),
            (filter(Event, "amount", Greater, &["12"]), true),
            (filter(Event, "amount", GreaterOrEqual, &["12.5"]), true),
            (filter(Event, "amount", Less, &["12.5"]), false),
            (filter(Event, "count", LessOrEqual, &["7"]), true),
            (filter(Event, "plan", Greater, &["1"]), false),
            (filter(User, "country", Is, &["DE"]), true),
            (filter(User, "plan", Is, &["pro"]), false),
        ];
        for (f, expected) in cases {
            assert_eq!(
                matches(std::slice::from_ref(&f), Some(&event), Some(&user)),
                expected,
                "{f:?}"
            );
        }
        assert!(matches(&[], None, None), "no filter: every event");
        assert!(!matches(&[filter(Event, "plan", Is, &["pro"])], None, None));
    }
}
