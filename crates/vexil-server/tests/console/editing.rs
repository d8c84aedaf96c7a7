//! Editing a flag in the console without losing work: a refused save shows every input as
//! typed with the reason next to the field; a save based on an old version shows what changed
//! meanwhile and keeps the edit, based on the current version; cohorts are picked by name;
//! the editing areas collect their changes in one draft, published as one version.

use serde_json::json;

use super::Browser;
use crate::common::Server;

pub(crate) async fn console_editing(srv: &Server) {
    let p = srv.create_project("Editing console").await;
    srv.flag_in(
        &p,
        "checkout",
        json!({"variants": [{"key": "express", "name": "Express checkout"}, {"key": "classic"}],
               "all_other_users": {"percentage": 100, "weights": {"express": 1}}}),
    )
    .await;
    let b = Browser::sign_in(srv).await;
    let cohorts = format!("/projects/{p}/cohorts");
    b.post(
        &cohorts,
        &[
            ("id", "vip"),
            ("name", "VIP customers"),
            ("group_type", "User"),
            ("members", "user_id\nu1\nu2\n"),
        ],
    )
    .await
    .redirects_to(&cohorts);
    let page = format!("/flags/checkout?project={p}");
    b.get(&page)
        .await
        // Variant names are shown and editable; operators read as sentences; the cohort
        // picker offers cohorts by name.
        .has("value=\"Express checkout\"")
        .has("Express checkout (express)")
        .has("<option value=\"is\" selected>is one of</option>")
        .has("<option value=\"set contains any\">includes any of</option>")
        .has("<option value=\"vip\">VIP customers</option>");

    // A refused save: the second segment's regex is invalid. Every input comes back as typed,
    // the reason next to the condition that caused it.
    let v = srv.version("checkout").await.to_string();
    let segments = [
        ("project", p.as_str()),
        ("_form", "allocation"),
        ("version", v.as_str()),
        ("segments[0].name", "Typed first"),
        ("segments[0].percentage", "40"),
        ("segments[0].weights.express", "3"),
        ("segments[0].weights.classic", "1"),
        ("segments[0].conditions[0].target", "user_property"),
        ("segments[0].conditions[0].name", "plan"),
        ("segments[0].conditions[0].op", "is"),
        ("segments[0].conditions[0].values", "pro\nteam"),
        ("segments[5].name", "Broken second"),
        ("segments[5].percentage", "100"),
        ("segments[5].weights.express", "1"),
        ("segments[5].conditions[3].target", "user_field"),
        ("segments[5].conditions[3].name", "country"),
        ("segments[5].conditions[3].op", "regex match"),
        ("segments[5].conditions[3].values", "(unclosed"),
        ("aou.percentage", "17"),
        ("aou.weights.express", "1"),
    ];
    let refused = b.post("/flags/checkout/allocation", &segments).await;
    assert_eq!(refused.status, 422, "{}", refused.html);
    assert_eq!(
        refused
            .html
            .matches("data-field=\"segments[1].conditions[0].values[0]\"")
            .count(),
        1,
        "the reason once, next to its condition"
    );
    refused
        .has("value=\"Typed first\"")
        .has("value=\"Broken second\"")
        .has("value=\"40\"")
        .has("pro\nteam</textarea>")
        .has("(unclosed</textarea>")
        .has("value=\"17\"")
        .has("class=\"field-error\" data-field=\"segments[1].conditions[0].values[0]\"");
    assert_eq!(
        srv.version("checkout").await.to_string(),
        v,
        "nothing saved"
    );

    // A cohort given by its name in the condition is saved as its id.
    let by_name = [
        ("project", p.as_str()),
        ("_form", "allocation"),
        ("version", v.as_str()),
        ("segments[0].name", "VIPs"),
        ("segments[0].percentage", "100"),
        ("segments[0].weights.express", "1"),
        ("segments[0].conditions[0].target", "cohort"),
        ("segments[0].conditions[0].op", "set contains any"),
        ("segments[0].conditions[0].values", "VIP customers"),
        ("aou.percentage", "100"),
        ("aou.weights.express", "1"),
    ];
    b.post("/flags/checkout/allocation", &by_name)
        .await
        .redirects_to("/flags/checkout");
    let flag = srv.flag("checkout").await.json;
    assert_eq!(
        flag["segments"][0]["conditions"][0]["values"],
        json!(["vip"])
    );

    // A second tab saved meanwhile: the stale save is refused, says what changed and keeps
    // the typed edit, now based on the current version.
    let stale = srv.version("checkout").await.to_string();
    srv.update(
        "checkout",
        &json!({"all_other_users": {"percentage": 60, "weights": {"express": 1}}}),
    )
    .await
    .ok(200);
    let current = srv.version("checkout").await.to_string();
    let mut again = by_name.to_vec();
    again[2] = ("version", stale.as_str());
    again[3] = ("segments[0].name", "VIPs renamed");
    let conflict = b.post("/flags/checkout/allocation", &again).await;
    assert_eq!(conflict.status, 409, "{}", conflict.html);
    conflict
        .has("id=\"conflict\"")
        .has("All other users")
        .has("value=\"VIPs renamed\"")
        .has(&format!("name=\"version\" value=\"{current}\""));

    // Collecting changes in a draft: the first save opens it, the second adds to it, the
    // page shows the flag as the draft makes it, and nothing is live until it is published.
    b.get(&format!("{page}&draft=new"))
        .await
        .has("id=\"editing-draft\"")
        .has("name=\"draft\" value=\"new\"");
    let settings = [
        ("project", p.as_str()),
        ("_form", "settings"),
        ("version", current.as_str()),
        ("draft", "new"),
        ("name", "Checkout, drafted"),
        ("bucketing_unit", "user_id"),
        ("bucketing_salt", "checkout"),
    ];
    let r = b.post("/flags/checkout/settings", &settings).await;
    r.redirects_to(&format!("/flags/checkout?project={p}&draft=dr-"));
    let location = r.location.clone().unwrap();
    let id = location
        .split("draft=")
        .nth(1)
        .and_then(|rest| rest.split('&').next())
        .unwrap()
        .to_owned();
    let editing = b.get(&location).await;
    editing
        .has("value=\"Checkout, drafted\"")
        .has("id=\"review-changes\"")
        .has(&format!("name=\"draft\" value=\"{id}\""));
    let draft_version = editing
        .html
        .split("name=\"draft_version\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let variant = [
        ("project", p.as_str()),
        ("_form", "new-variant"),
        ("version", current.as_str()),
        ("draft", id.as_str()),
        ("draft_version", draft_version.as_str()),
        ("name", "One click"),
    ];
    b.post("/flags/checkout/variants", &variant)
        .await
        .redirects_to(&format!("/flags/checkout?project={p}&draft={id}"));
    // A stale tab of the same draft is refused rather than overwriting the draft unseen.
    let stale_tab = b.post("/flags/checkout/variants", &variant).await;
    assert_eq!(stale_tab.status, 409, "{}", stale_tab.html);
    stale_tab
        .has("id=\"editing-draft\"")
        .has("value=\"One click\"");
    let live = srv.flag("checkout").await.json;
    assert_eq!(live["name"], "checkout", "nothing is live yet");
    let draft = srv
        .get(&format!("/api/v1/projects/{p}/drafts/{id}"))
        .await
        .ok(200)
        .json;
    assert_eq!(draft["changes"].as_array().map(Vec::len), Some(2));
    b.get(&format!("/projects/{p}/drafts/{id}"))
        .await
        .has("one-click")
        .has("Checkout, drafted");
    let before = srv.version("checkout").await;
    b.post(&format!("/projects/{p}/drafts/{id}/publish"), &[])
        .await
        .redirects_to(&format!("/projects/{p}/drafts/{id}?notice=Published"));
    let after = srv.flag("checkout").await.json;
    assert_eq!(after["name"], "Checkout, drafted");
    assert_eq!(
        srv.version("checkout").await,
        before + 1,
        "one version for the whole draft"
    );
    assert!(after["variants"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["key"] == "one-click"));

    // Compare speaks the product's words first.
    b.get(&format!(
        "/flags/checkout/compare?project={p}&from={}&to={}",
        before,
        before + 1
    ))
    .await
    .has("ul id=\"summary\"")
    .has("one-click");
}
