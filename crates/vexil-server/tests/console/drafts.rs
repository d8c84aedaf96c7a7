//! Drafts and the audit log in the console: under an approval policy a flag edit is saved as a
//! draft rather than lost; the draft's page shows what it changes, the users it moves and the
//! approvals; publishing waits for them; the flag page lists the draft while it waits; the
//! audit page lists the changes with who, what and why.

use serde_json::json;

use super::Browser;
use crate::common::Server;

pub(crate) async fn console_drafts(srv: &Server) {
    let p = srv.create_project("Reviewed console").await;
    srv.flag_in(
        &p,
        "banner",
        json!({"all_other_users": {"percentage": 100, "weights": {"on": 1}}}),
    )
    .await;
    srv.put(
        &format!("/api/v1/projects/{p}/approval-policy"),
        None,
        &json!({"required_approvals": 1}),
    )
    .await
    .ok(200);
    let b = Browser::sign_in(srv).await;
    let version = srv.version("banner").await.to_string();
    // Activating is refused directly; the console keeps the edit as a draft.
    let r = b
        .post(
            "/flags/banner/state/activate",
            &[("project", p.as_str()), ("version", version.as_str())],
        )
        .await;
    r.redirects_to(&format!("/projects/{p}/drafts/dr-"));
    let location = r.location.clone().unwrap();
    let draft_path = location.split('?').next().unwrap().to_owned();
    let id = draft_path.rsplit('/').next().unwrap().to_owned();
    assert_eq!(
        srv.flag("banner").await.json["state"],
        "inactive",
        "nothing applied"
    );
    b.get(&location)
        .await
        .has("saved as this draft")
        .has("data-status=\"open\"")
        .has("Activated: serves its targeting")
        .has("<strong>10000</strong> change variant")
        .has("0 of 1 approvals")
        .has("id=\"draft-blocked\"")
        .has("form id=\"publish\"");
    b.get(&format!("/flags/banner?project={p}"))
        .await
        .has("section id=\"flag-drafts\"")
        .has(&format!("data-draft=\"{id}\""));
    // Publishing waits for the approval; the author may not give it.
    b.post(&format!("{draft_path}/publish"), &[])
        .await
        .redirects_to(&format!("{draft_path}?error="));
    b.post(&format!("{draft_path}/review"), &[("decision", "approve")])
        .await
        .redirects_to(&format!("{draft_path}?error="));
    let alice = srv
        .post("/api/v1/keys", &json!({"name": "alice", "role": "writer"}))
        .await
        .ok(201)
        .json["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let approved = srv
        .http
        .post(srv.url(&format!("/api/v1/projects/{p}/drafts/{id}/reviews")))
        .bearer_auth(&alice)
        .json(&json!({"decision": "approve", "comment": "Ship it"}))
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), 200);
    b.get(&draft_path)
        .await
        .has("1 of 1 approvals")
        .has("Ship it");
    b.post(&format!("{draft_path}/publish"), &[])
        .await
        .redirects_to(&format!("{draft_path}?notice=Published"));
    assert_eq!(srv.flag("banner").await.json["state"], "active");
    b.get(&format!("/flags/banner?project={p}"))
        .await
        .lacks("section id=\"flag-drafts\"");
    // A schedule needs a time.
    b.post(&format!("{draft_path}/schedule"), &[("at", "soon")])
        .await
        .redirects_to(&format!("{draft_path}?error="));
    // The audit log: every change with who and why, filtered.
    b.get(&format!("/projects/{p}"))
        .await
        .has(&format!("id=\"audit-link\" href=\"/projects/{p}/audit\""));
    b.get(&format!("/projects/{p}/audit"))
        .await
        .has("table id=\"audit\"")
        .has("data-entity=\"approval_policy\"")
        .has("data-entity=\"draft\"")
        .has("data-entity=\"flag\"")
        .has("(draft ")
        .has("admin (admin)");
    b.get(&format!("/projects/{p}/audit?entity=draft"))
        .await
        .lacks("data-entity=\"flag\"")
        .has(&format!("href=\"/projects/{p}/drafts/{id}\""));
    // A stale flag: marked in the list and on its page, and kept on purpose from there.
    let q = srv.create_project("Stale console").await;
    srv.flag_in(&q, "old", json!({})).await;
    srv.age_flag(&q, "old", 45).await;
    b.get(&format!("/flags?project={q}&stale=true"))
        .await
        .has("tr data-flag=\"old\"")
        .has("class=\"badge stale\"")
        .has("form id=\"archive-stale\"");
    let page = b.get(&format!("/flags/old?project={q}")).await;
    page.has("id=\"stale\"").has("form id=\"keep-permanent\"");
    let v = srv.version("old").await.to_string();
    b.post(
        "/flags/old/permanent",
        &[("project", q.as_str()), ("version", v.as_str())],
    )
    .await
    .redirects_to("/flags/old?");
    b.get(&format!("/flags/old?project={q}"))
        .await
        .lacks("id=\"stale\"")
        .has("id=\"permanent\"");
    // The list: targeting in words, where each flag is served, sortable, an empty state.
    b.get(&format!("/flags?project={p}&sort=updated"))
        .await
        .has("class=\"sort\" href=\"/flags?sort=name&amp;project=")
        .has("<td class=\"targeting\">Everyone: <em>on</em></td>")
        .has("by admin");
    b.get("/flags?q=no-such-flag-anywhere")
        .await
        .has("No flag matches these filters");
    let listed = srv
        .get(&format!("/api/v1/flags?project={p}&sort=name"))
        .await
        .ok(200)
        .json;
    assert_eq!(
        listed["items"][0]["targeting"], "Everyone: *on*",
        "{listed}"
    );
    srv.get("/api/v1/flags?sort=sideways")
        .await
        .err(400, "invalid_query", Some("sort"));
    // A reader sees the flags, not the controls that would change them.
    let rita = srv
        .post("/api/v1/keys", &json!({"name": "rita", "role": "reader"}))
        .await
        .ok(201)
        .json["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let reader = Browser::sign_in_with(srv, &rita).await;
    let flag_page = reader.get(&format!("/flags/banner?project={p}")).await;
    flag_page
        .has("id=\"overview\"")
        .has("id=\"read-only\"")
        .has("tr data-variant=\"on\"")
        .has("form id=\"qa-form\"");
    for control in [
        "form id=\"deactivate\"",
        "form id=\"archive\"",
        "form id=\"settings\"",
        "form id=\"new-variant\"",
        "form id=\"allocation-form\"",
        "form class=\"edit-variant\"",
    ] {
        flag_page.lacks(control);
    }
    reader
        .get("/flags?stale=true&project=reviewed-console")
        .await
        .lacks("create-flag-open")
        .lacks("create-flag-form")
        .lacks("archive-stale");
    b.get("/flags?stale=true&project=reviewed-console")
        .await
        .has("create-flag-form")
        .has("form id=\"archive-stale\"");
    reader.get(&draft_path).await.lacks("form id=\"review\"");
    reader
        .get(&format!("/projects/{p}"))
        .await
        .lacks("project-secret-key")
        .lacks("project-api-key")
        .lacks("form id=\"new-deployment\"")
        .lacks("form id=\"new-webhook\"");
    reader
        .get("/projects")
        .await
        .lacks("form id=\"new-project\"");
    for (page, form) in [
        ("metrics", "new-metric"),
        ("cohorts", "upload-cohort"),
        ("groups", "new-mutex"),
        ("groups", "new-holdout"),
    ] {
        reader
            .get(&format!("/projects/{p}/{page}"))
            .await
            .lacks(&format!("form id=\"{form}\""));
        b.get(&format!("/projects/{p}/{page}"))
            .await
            .has(&format!("form id=\"{form}\""));
    }
    // What does this user get? Every flag, with the reason.
    b.get(&format!("/projects/{p}/user"))
        .await
        .has("form id=\"user-check\"")
        .has("Give a user id");
    b.get(&format!(
        "/projects/{p}/user?user_id=u1&properties=%7B%22plan%22%3A%22pro%22%7D"
    ))
    .await
    .has("table id=\"user-flags\"")
    .has("tr data-flag=\"banner\"")
    .has("<strong>on</strong>")
    .has("details class=\"trace\"");
    let bad = b
        .get(&format!("/projects/{p}/user?user_id=u1&properties=nope"))
        .await;
    assert_eq!(bad.status, reqwest::StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        bad.html.contains("user properties are a JSON object"),
        "{}",
        bad.html
    );

    // Approvals in the console: admins set the policy and protect deployments; a writer sees
    // the policy in words and neither form.
    let d = srv.create_deployment(&p, "Production", "server").await;
    let d_key = d["key"].as_str().unwrap().to_owned();
    b.post(
        &format!("/projects/{p}/approval-policy"),
        &[
            ("required_approvals", "2"),
            ("applies_to", "protected_deployments"),
        ],
    )
    .await
    .redirects_to(&format!("/projects/{p}"));
    b.post(
        &format!("/projects/{p}/deployments/{d_key}"),
        &[("version", "1"), ("protected", "true")],
    )
    .await
    .redirects_to(&format!("/projects/{p}"));
    b.get(&format!("/projects/{p}"))
        .await
        .has("form id=\"policy-form\"")
        .has("flags in protected deployments need <strong>2</strong> approval(s)")
        .has("class=\"badge protected\"")
        .has("class=\"protect-deployment\"");
    let bad = b
        .post(
            &format!("/projects/{p}/approval-policy"),
            &[("required_approvals", "lots")],
        )
        .await;
    assert_eq!(bad.status, reqwest::StatusCode::UNPROCESSABLE_ENTITY);
    let writer = srv
        .post("/api/v1/keys", &json!({"name": "wendy", "role": "writer"}))
        .await
        .ok(201)
        .json["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let w = Browser::sign_in_with(srv, &writer).await;
    w.get(&format!("/projects/{p}"))
        .await
        .has("id=\"policy-summary\"")
        .lacks("form id=\"policy-form\"")
        .lacks("class=\"protect-deployment\"");

    // Management keys in the console, for admins: create (the secret shown once), revoke
    // (confirmed), and the writer's console has neither the link nor the page.
    b.get("/flags").await.has("id=\"keys-link\"");
    let created = b
        .post("/keys", &[("name", "console-made"), ("role", "reader")])
        .await;
    created
        .has("id=\"key-secret\"")
        .has("vxm_")
        .has("console-made");
    let id = created
        .html
        .split("tr data-key=\"")
        .filter(|rest| rest.contains("<td>console-made</td>"))
        .find_map(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    b.post(&format!("/keys/{id}/revoke"), &[])
        .await
        .redirects_to("/keys");
    b.get("/keys")
        .await
        .lacks("id=\"key-secret\"")
        .has("revoked ");
    let bad = b.post("/keys", &[("name", "x"), ("role", "owner")]).await;
    assert_eq!(bad.status, reqwest::StatusCode::UNPROCESSABLE_ENTITY);
    w.get("/flags").await.lacks("id=\"keys-link\"");
    assert_eq!(w.get("/keys").await.status, reqwest::StatusCode::FORBIDDEN);
}
