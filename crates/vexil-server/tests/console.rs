//! The web console over HTTP, without a browser: sign-in and the session cookie, CSRF, escaping,
//! and the seeds' flows through the console's forms (project, deployments, a flag with variants
//! and an allocation, prerequisites and the refusals that name their blocking flags, QA,
//! history, cohorts; mutual-exclusion and holdout groups with their pages and the
//! Dependencies card's join and leave forms; metrics, an experiment's settings and its results
//! page in `console/results.rs`), each checked against the JSON API. The same flows run in headless
//! Chromium in `crates/vexil/tests/console_browser.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[macro_use]
mod common;
#[path = "console/drafts.rs"]
mod drafts;
#[path = "console/editing.rs"]
mod editing;
#[path = "console/results.rs"]
mod results;

use common::Server;
use reqwest::redirect::Policy;
use reqwest::{Client, StatusCode};
use serde_json::json;

use drafts::console_drafts;
use editing::console_editing;
use results::{console_holdout_results, console_results};

on_both_backends!(
    console_flows,
    console_groups,
    console_results,
    console_holdout_results,
    console_drafts,
    console_editing
);

/// A signed-in browser: the session cookie and the page's CSRF token.
struct Browser<'s> {
    srv: &'s Server,
    http: Client,
    cookie: String,
    csrf: String,
}

/// An answer: status, `Location` (redirects are not followed), body.
struct Page {
    status: StatusCode,
    location: Option<String>,
    html: String,
}

impl Page {
    #[track_caller]
    fn has(&self, needle: &str) -> &Page {
        assert!(
            self.html.contains(needle),
            "expected {needle:?} in the page:\n{}",
            self.html
        );
        self
    }

    #[track_caller]
    fn lacks(&self, needle: &str) -> &Page {
        assert!(
            !self.html.contains(needle),
            "did not expect {needle:?} in the page"
        );
        self
    }

    #[track_caller]
    fn redirects_to(&self, prefix: &str) -> &Page {
        assert_eq!(self.status, StatusCode::SEE_OTHER, "{}", self.html);
        let to = self.location.as_deref().unwrap_or_default();
        assert!(
            to.starts_with(prefix),
            "redirect to {to}, expected {prefix}…"
        );
        self
    }
}

/// `GET /login`: the cookie that ties the form to this browser, and the form's token.
async fn login_form(http: &Client, srv: &Server) -> (String, String) {
    let r = http.get(srv.url("/login")).send().await.unwrap();
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let html = r.text().await.unwrap();
    let at = html.find("name=\"_csrf\" value=\"").unwrap() + 20;
    (cookie, html[at..at + 64].to_owned())
}

fn client() -> Client {
    Client::builder().redirect(Policy::none()).build().unwrap()
}

async fn read(response: reqwest::Response) -> Page {
    let status = response.status();
    let location = response
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned());
    Page {
        status,
        location,
        html: response.text().await.unwrap(),
    }
}

impl<'s> Browser<'s> {
    async fn sign_in(srv: &'s Server) -> Browser<'s> {
        Browser::sign_in_with(srv, &srv.admin).await
    }

    /// Signed in with the management key `key`.
    async fn sign_in_with(srv: &'s Server, key: &str) -> Browser<'s> {
        let http = client();
        let (login_cookie, token) = login_form(&http, srv).await;
        let r = http
            .post(srv.url("/login"))
            .header("Cookie", &login_cookie)
            .form(&[("key", key), ("next", "/projects"), ("_csrf", &token)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(r.headers()["location"], "/projects");
        let set = r.headers()["set-cookie"].to_str().unwrap().to_owned();
        for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(set.contains(attribute), "{set}");
        }
        let cookie = set.split(';').next().unwrap().to_owned();
        let mut b = Browser {
            srv,
            http,
            cookie,
            csrf: String::new(),
        };
        let page = b.get("/projects").await;
        let at = page.html.find("name=\"_csrf\" value=\"").unwrap() + 20;
        b.csrf = page.html[at..at + 64].to_owned();
        b
    }

    async fn get(&self, path: &str) -> Page {
        let r = self
            .http
            .get(self.srv.url(path))
            .header("Cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        read(r).await
    }

    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let mut all = vec![("_csrf", self.csrf.as_str())];
        all.extend_from_slice(fields);
        let r = self
            .http
            .post(self.srv.url(path))
            .header("Cookie", &self.cookie)
            .form(&all)
            .send()
            .await
            .unwrap();
        read(r).await
    }
}

async fn console_flows(srv: &Server) {
    // Not signed in: pages send you to the sign-in form, a wrong key is refused.
    let anonymous = client();
    let r = read(anonymous.get(srv.url("/flags?q=x")).send().await.unwrap()).await;
    r.redirects_to("/login?next=%2Fflags%3Fq%3Dx");
    let (login_cookie, token) = login_form(&anonymous, srv).await;
    let wrong = anonymous
        .post(srv.url("/login"))
        .header("Cookie", &login_cookie)
        .form(&[("key", "vxm_wrong"), ("_csrf", &token)]);
    let r = read(wrong.send().await.unwrap()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    r.has("class=\"error\"").has("form id=\"login\"");
    // A sign-in form posted from elsewhere (no token tied to this browser) is refused.
    let forged = anonymous
        .post(srv.url("/login"))
        .form(&[("key", srv.admin.as_str())]);
    let r = read(forged.send().await.unwrap()).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.location.is_none());
    let forged = anonymous
        .get(srv.url("/flags"))
        .header("Cookie", "vexil_session=key.99999999999999.00")
        .send()
        .await
        .unwrap();
    assert_eq!(
        forged.status(),
        StatusCode::SEE_OTHER,
        "a forged cookie is no session"
    );

    let b = Browser::sign_in(srv).await;
    // Every POST needs the session's CSRF token.
    let r = read(
        b.http
            .post(srv.url("/projects"))
            .header("Cookie", &b.cookie)
            .form(&[("name", "Sneaky"), ("_csrf", "0")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    srv.get("/api/v1/projects/sneaky").await.ok(404);

    // Project and deployments, with escaping of what users type. The answer to the form is
    // the project's page with its secret key, which no later page shows (only its hash is
    // stored).
    let created = b
        .post(
            "/projects",
            &[
                ("name", "Checkout <script>x</script>"),
                ("description", "the shop"),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.html);
    created
        .has("Checkout &lt;script&gt;")
        .has("id=\"project-secret-key\"");
    let project = "checkout-script-x-script";
    let page = b.get(&format!("/projects/{project}")).await;
    page.has("Checkout &lt;script&gt;")
        .lacks("<script>x</script>")
        .has("id=\"project-api-key\"")
        .lacks("id=\"project-secret-key\"");
    b.post(
        &format!("/projects/{project}/deployments"),
        &[("label", "Production"), ("type", "server")],
    )
    .await
    .redirects_to(&format!("/projects/{project}"));
    b.post(
        &format!("/projects/{project}/deployments"),
        &[("label", "Web"), ("type", "client")],
    )
    .await
    .redirects_to("/projects/");
    let deployment = srv
        .get(&format!(
            "/api/v1/projects/{project}/deployments/production"
        ))
        .await
        .ok(200);
    let sdk_key = deployment.json["api_key"].as_str().unwrap().to_owned();
    b.get(&format!("/projects/{project}"))
        .await
        .has(&format!("data-copy=\"{sdk_key}\""))
        .has("tr data-deployment=\"web\"");

    // Create a flag, then configure it.
    b.post(
        "/flags",
        &[
            ("project", project),
            ("name", "New checkout"),
            ("key", ""),
            ("type", "release"),
            ("evaluation_mode", "remote"),
            ("bucketing_unit", "user_id"),
        ],
    )
    .await
    .redirects_to(&format!("/flags/new-checkout?project={project}"));
    let flag_path = |key: &str| format!("/flags/{key}");
    let version = |key: &'static str| async move { srv.version(key).await.to_string() };
    let v = version("new-checkout").await;
    b.post(
        &format!("{}/settings", flag_path("new-checkout")),
        &[
            ("project", project),
            ("version", &v),
            ("name", "New checkout"),
            ("description", "Checkout v2"),
            ("tags", "checkout, q4"),
            ("deployments", "production"),
            ("deployments", "web"),
            ("evaluation_mode", "remote"),
            ("bucketing_unit", "user_id"),
            ("bucketing_salt", "newsalt1"),
        ],
    )
    .await
    .redirects_to("/flags/new-checkout");
    let flag = srv.flag("new-checkout").await.json;
    assert_eq!(
        (flag["deployments"].clone(), flag["tags"].clone()),
        (json!(["production", "web"]), json!(["checkout", "q4"]))
    );
    assert_eq!(flag["bucketing_salt"], "newsalt1");

    // Variants: generated keys, JSON payloads, `off` refused with the reason.
    let v = version("new-checkout").await;
    b.post(
        &format!("{}/variants", flag_path("new-checkout")),
        &[
            ("project", project),
            ("version", &v),
            ("name", "Treatment B"),
            ("payload", "{\"layout\": \"b\"}"),
        ],
    )
    .await
    .redirects_to("/flags/new-checkout");
    let v = version("new-checkout").await;
    b.post(
        &format!("{}/variants", flag_path("new-checkout")),
        &[("project", project), ("version", &v), ("name", "Off")],
    )
    .await
    .has("is reserved");
    b.post(
        &format!("{}/variants", flag_path("new-checkout")),
        &[
            ("project", project),
            ("version", &v),
            ("name", "broken"),
            ("payload", "{not json"),
        ],
    )
    .await
    .has("the payload must be JSON");
    let flag = srv.flag("new-checkout").await.json;
    assert_eq!(flag["variants"][1]["key"], "treatment-b");
    assert_eq!(flag["variants"][1]["payload"], json!({"layout": "b"}));

    // Allocation: a segment with two conditions at 50% with weights 1:4, AOU 0%, an inclusion.
    let v = version("new-checkout").await;
    b.post(
        &format!("{}/allocation", flag_path("new-checkout")),
        &[
            ("project", project),
            ("version", &v),
            ("segments[0].name", "North America"),
            ("segments[0].percentage", "50"),
            ("segments[0].weights.on", "1"),
            ("segments[0].weights.treatment-b", "4"),
            ("segments[0].conditions[0].target", "user_field"),
            ("segments[0].conditions[0].name", "country"),
            ("segments[0].conditions[0].op", "is"),
            ("segments[0].conditions[0].values", "US\nCA"),
            ("segments[0].conditions[5].target", "user_property"),
            ("segments[0].conditions[5].name", "plan"),
            ("segments[0].conditions[5].op", "is"),
            ("segments[0].conditions[5].values", "pro"),
            ("aou.percentage", "0"),
            ("aou.weights.on", "1"),
            ("inclusions.treatment-b", "vip-1\nvip-2"),
        ],
    )
    .await
    .redirects_to("/flags/new-checkout");
    let flag = srv.flag("new-checkout").await.json;
    assert_eq!(flag["segments"][0]["name"], "North America");
    assert_eq!(
        flag["segments"][0]["conditions"].as_array().unwrap().len(),
        2
    );
    assert_eq!(
        flag["segments"][0]["weights"],
        json!({"on": 1, "treatment-b": 4})
    );
    assert_eq!(
        flag["inclusions"]["treatment-b"]["ids"],
        json!(["vip-1", "vip-2"])
    );
    let page = b
        .get(&format!("/flags/new-checkout?project={project}"))
        .await;
    page.has("20%").has("80%");
    let r = b
        .post(
            &format!("{}/allocation", flag_path("new-checkout")),
            &[
                ("project", project),
                ("version", &v),
                ("segments[0].name", "X"),
                ("segments[0].percentage", "lots"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    r.has("segments[0].percentage must be a whole number");

    // QA: an included user, a user outside the segment.
    let qa = |user: &'static str, fields: &'static str| {
        let b = &b;
        async move {
            b.post(
                "/flags/new-checkout/qa",
                &[
                    ("project", project),
                    ("user_id", user),
                    ("fields", fields),
                    ("user_properties", "{\"plan\": \"pro\"}"),
                ],
            )
            .await
        }
    };
    qa("vip-1", "")
        .await
        .has("<strong class=\"variant\">treatment-b</strong>")
        .has("individual-inclusions");
    qa("someone", "{\"country\": \"DE\"}")
        .await
        .has("<strong class=\"variant\">off</strong>")
        .has("not matched");
    b.post(
        "/flags/new-checkout/qa",
        &[("project", project), ("user_properties", "[1]")],
    )
    .await
    .has("user properties must be a JSON object");

    // Dependencies: a second flag depends on the first's `on`; the rules refuse, with links.
    b.post(
        "/flags",
        &[
            ("project", project),
            ("name", "Express pay"),
            ("type", "release"),
            ("evaluation_mode", "remote"),
        ],
    )
    .await
    .redirects_to("/flags/express-pay");
    b.get(&format!("/flags/new-checkout?project={project}"))
        .await
        .has("<option value=\"express-pay\">");
    let v = version("express-pay").await;
    b.post(
        "/flags/express-pay/prerequisites",
        &[
            ("project", project),
            ("version", &v),
            ("flag", "new-checkout"),
        ],
    )
    .await
    .has("choose the variants of new-checkout");
    b.post(
        "/flags/express-pay/prerequisites",
        &[
            ("project", project),
            ("version", &v),
            ("flag", "new-checkout"),
            ("variants", "on"),
            ("variants", "off"),
        ],
    )
    .await
    .redirects_to("/flags/express-pay");
    // A cycle is not offered: new-checkout can no longer depend on express-pay.
    b.get(&format!("/flags/new-checkout?project={project}"))
        .await
        .lacks("<option value=\"express-pay\">")
        .has("data-dependent=\"express-pay\"");
    let v = version("express-pay").await;
    let r = b
        .post(
            "/flags/express-pay/state/activate",
            &[("project", project), ("version", &v)],
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    r.has(&format!(
        "<a href=\"/flags/new-checkout?project={project}\">new-checkout</a>"
    ));
    let v = version("new-checkout").await;
    b.post(
        "/flags/new-checkout/state/activate",
        &[("project", project), ("version", &v)],
    )
    .await
    .redirects_to("/flags/new-checkout");
    let v = version("express-pay").await;
    b.post(
        "/flags/express-pay/state/activate",
        &[("project", project), ("version", &v)],
    )
    .await
    .redirects_to("/flags/express-pay");
    let v = version("new-checkout").await;
    b.post(
        "/flags/new-checkout/state/archive",
        &[("project", project), ("version", &v)],
    )
    .await
    .has("class=\"blocking\"")
    .has("express-pay");

    // The flags list: search and filters, with badges.
    b.get("/flags?q=express")
        .await
        .has("tr data-flag=\"express-pay\"")
        .lacks("tr data-flag=\"new-checkout\"");
    b.get("/flags?state=active&type=release&evaluation_mode=remote")
        .await
        .has("state-active");

    // History: versions with who and what, compare, restore.
    let page = b
        .get(&format!("/flags/new-checkout/history?project={project}"))
        .await;
    page.has("tr data-version=\"1\"")
        .has("class=\"actor\">admin<");
    b.get(&format!(
        "/flags/new-checkout/compare?project={project}&from=1&to=3"
    ))
    .await
    .has("data-path=\"bucketing_salt\"");
    let v = version("new-checkout").await;
    b.post(
        "/flags/new-checkout/history/2/restore",
        &[("project", project), ("version", &v)],
    )
    .await
    .redirects_to("/flags/new-checkout");
    let restored = srv.flag("new-checkout").await.json;
    assert_eq!(
        restored["variants"].as_array().unwrap().len(),
        1,
        "version 2 had only `on`"
    );
    assert_eq!(restored["bucketing_salt"], "newsalt1");

    // Cohorts: upload, size, refused deletion while a flag uses it.
    let cohorts = format!("/projects/{project}/cohorts");
    b.post(
        &cohorts,
        &[
            ("id", "beta"),
            ("name", "Beta"),
            ("group_type", "User"),
            ("members", "user_id\nu1\nu2\nu3\n"),
        ],
    )
    .await
    .redirects_to(&cohorts);
    b.get(&cohorts).await.has("<td class=\"size\">3</td>");
    let v = version("express-pay").await;
    b.post(
        "/flags/express-pay/allocation",
        &[
            ("project", project),
            ("version", &v),
            ("segments[0].name", "Beta"),
            ("segments[0].percentage", "100"),
            ("segments[0].weights.on", "1"),
            ("segments[0].conditions[0].target", "cohort"),
            ("segments[0].conditions[0].op", "set contains any"),
            ("segments[0].conditions[0].values", "beta"),
            ("aou.percentage", "0"),
        ],
    )
    .await
    .redirects_to("/flags/express-pay");
    let cohort_version = srv
        .get(&format!("/api/v1/projects/{project}/cohorts/beta"))
        .await
        .ok(200)
        .etag()
        .to_string();
    let r = b
        .post(
            &format!("{cohorts}/beta/delete"),
            &[("version", &cohort_version)],
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    r.has("express-pay");

    // Exposures sent by an SDK show on the flag page.
    srv.ingest(&sdk_key, json!([{"event_type": "$exposure", "user_id": "u1", "event_properties": {"flag_key": "new-checkout", "variant": "on"}}]))
        .await
        .ok(200);
    b.get(&format!("/flags/new-checkout?project={project}"))
        .await
        .has("table id=\"exposures\"")
        .has("1 (1)");

    // Sign out ends the session.
    let r = b.post("/logout", &[]).await;
    r.redirects_to("/login");
    b.get("/flags").await.redirects_to("/login");
    // Another sign-in is a session of its own, unaffected.
    let again = Browser::sign_in(srv).await;
    assert_eq!(again.get("/flags").await.status, StatusCode::OK);
}

/// The version (ETag) of a group, from the JSON API.
async fn group_version(srv: &Server, path: &str) -> String {
    srv.get(&format!("/api/v1/projects/shop/{path}"))
        .await
        .ok(200)
        .etag()
        .to_string()
}

async fn console_groups(srv: &Server) {
    srv.create_project("Shop").await;
    let exp = json!({"type": "experiment", "evaluation_mode": "local",
                     "all_other_users": {"percentage": 100, "weights": {"control": 1, "treatment": 1}}});
    for key in ["exp-a", "exp-b"] {
        srv.flag_in("shop", key, exp.clone()).await;
    }
    let b = Browser::sign_in(srv).await;
    b.get("/projects/shop")
        .await
        .has("id=\"groups-link\" href=\"/projects/shop/groups\"");
    b.get("/projects/shop/groups")
        .await
        .has("table id=\"groups\"")
        .has("form id=\"new-mutex\"")
        .has("form id=\"new-holdout\"")
        .has("No group yet");

    // A refused creation says why and keeps what was typed.
    let r = b
        .post(
            "/projects/shop/mutex-groups",
            &[
                ("name", "Home page"),
                ("key", ""),
                ("description", "the home page tests"),
                ("evaluation_mode", "local"),
                ("bucketing_unit", "user_id"),
                ("slots_present", "1"),
                ("slots", "60"),
                ("slots", "50"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    r.has("total 110")
        .has("value=\"Home page\"")
        .has("the home page tests</textarea>")
        .has("name=\"slots\" min=\"1\" max=\"100\" step=\"1\" value=\"60\"")
        .has("value=\"50\"");
    srv.get("/api/v1/projects/shop/mutex-groups/mutex-home-page")
        .await
        .ok(404);
    let r = b
        .post(
            "/projects/shop/mutex-groups",
            &[
                ("name", "Home page"),
                ("slots_present", "1"),
                ("slots", "lots"),
            ],
        )
        .await;
    r.has("the percentage of slot 1 must be a whole number");
    b.post(
        "/projects/shop/mutex-groups",
        &[
            ("name", "Home page"),
            ("key", ""),
            ("evaluation_mode", "local"),
            ("bucketing_unit", "user_id"),
            ("slots_present", "1"),
            ("slots", "50"),
            ("slots", "50"),
        ],
    )
    .await
    .redirects_to("/projects/shop/mutex-groups/mutex-home-page?notice=");
    b.post(
        "/projects/shop/holdouts",
        &[
            ("name", "Q4"),
            ("evaluation_mode", "local"),
            ("bucketing_unit", "user_id"),
            ("percentage", "5"),
            ("inclusions_ids", "always-1\nalways-2"),
            ("exclusions_ids", "never-1"),
            ("mutex_slot", ""),
        ],
    )
    .await
    .redirects_to("/projects/shop/holdouts/holdout-q4?notice=");
    let h = srv
        .get("/api/v1/projects/shop/holdouts/holdout-q4")
        .await
        .ok(200)
        .json;
    assert_eq!(h["percentage"], 5);
    assert_eq!(h["inclusions"]["ids"], json!(["always-1", "always-2"]));
    assert_eq!(h["exclusions"]["ids"], json!(["never-1"]));
    let list = b.get("/projects/shop/groups").await;
    list.has("tr data-group=\"mutex-home-page\" data-type=\"mutual_exclusion\"")
        .has("50% · 50% (0% unallocated)")
        .has("tr data-group=\"holdout-q4\" data-type=\"holdout\"")
        .has("holds out 5%");

    // The Dependencies card offers the groups, with who holds each slot.
    let page = b.get("/flags/exp-a?project=shop").await;
    page.has("form id=\"join-mutex\"")
        .has("value=\"mutex-home-page/1\"")
        .has("<span class=\"free\">free</span>")
        .has("form id=\"join-holdout\"")
        .has("<option value=\"holdout-q4\"")
        .has("No group limits this flag");
    let v = srv.version("exp-a").await.to_string();
    b.post(
        "/flags/exp-a/mutex-group",
        &[
            ("project", "shop"),
            ("version", &v),
            ("_form", "join-mutex"),
            ("slot", "mutex-home-page/1"),
        ],
    )
    .await
    .redirects_to("/flags/exp-a?project=shop&notice=");
    let v = srv.version("exp-a").await.to_string();
    b.post(
        "/flags/exp-a/holdouts",
        &[
            ("project", "shop"),
            ("version", &v),
            ("_form", "join-holdout"),
            ("holdouts", "holdout-q4"),
        ],
    )
    .await
    .redirects_to("/flags/exp-a?project=shop&notice=");
    let a = srv.flag("exp-a").await.json;
    assert_eq!(
        a["mutex_group"],
        json!({"group": "mutex-home-page", "slot": 1})
    );
    assert_eq!(a["holdouts"], json!(["holdout-q4"]));
    let page = b.get("/flags/exp-a?project=shop").await;
    page.has("p data-group=\"mutex-home-page\"")
        .has("href=\"/projects/shop/mutex-groups/mutex-home-page\"")
        .has("li data-holdout=\"holdout-q4\"")
        .has("href=\"/projects/shop/holdouts/holdout-q4\"")
        .has("holdout-q4 holds out 5% and slot-1 of mutex-home-page takes 50%")
        .has("at most 47.5% of users")
        .has("form id=\"leave-mutex\"")
        .lacks("<option value=\"holdout-q4\"");

    // Joining a held slot needs "share this slot": refused with the reason and a link to the
    // holder, the choice kept.
    let page = b.get("/flags/exp-b?project=shop").await;
    page.has("held by <a href=\"/flags/exp-a?project=shop\"><code>exp-a</code></a>");
    let v = srv.version("exp-b").await.to_string();
    let r = b
        .post(
            "/flags/exp-b/mutex-group",
            &[
                ("project", "shop"),
                ("version", &v),
                ("_form", "join-mutex"),
                ("slot", "mutex-home-page/1"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    r.has("already holds exp-a")
        .has("class=\"blocking\"")
        .has("<a href=\"/flags/exp-a?project=shop\">exp-a</a>")
        .has("value=\"mutex-home-page/1\" required checked");
    assert!(srv.flag("exp-b").await.json["mutex_group"].is_null());
    b.post(
        "/flags/exp-b/mutex-group",
        &[
            ("project", "shop"),
            ("version", &v),
            ("slot", "mutex-home-page/2"),
        ],
    )
    .await
    .redirects_to("/flags/exp-b");
    let v = srv.version("exp-b").await.to_string();
    b.post(
        "/flags/exp-b/holdouts",
        &[
            ("project", "shop"),
            ("version", &v),
            ("holdouts", "holdout-q4"),
        ],
    )
    .await
    .redirects_to("/flags/exp-b");

    // QA shows the groups the flag's result depends on.
    b.post(
        "/flags/exp-a/qa",
        &[("project", "shop"), ("user_id", "always-1")],
    )
    .await
    .has("<strong class=\"variant\">off</strong>")
    .has("<tr data-flag=\"holdout-q4\"><td>holdout-q4</td><td class=\"variant\">holdout</td>");

    // The group's page: slots with their members, the members, history link.
    srv.action("exp-a", "activate").await.ok(200);
    let page = b.get("/projects/shop/mutex-groups/mutex-home-page").await;
    page.has("tr data-slot=\"1\"")
        .has("<a href=\"/flags/exp-a?project=shop\"><code>exp-a</code></a> <span class=\"badge state-active\">active</span>")
        .has("tr data-member=\"exp-b\"")
        .has("id=\"locked-reason\"")
        .has("fieldset id=\"slots\" data-slots=\"\" disabled")
        .has("name=\"bucketing_unit\" value=\"user_id\" list=\"bucketing-units\" required disabled")
        .has("data-confirm=")
        .has("id=\"history-link\"");
    // A refused edit says why and keeps what was typed.
    let v = group_version(srv, "mutex-groups/mutex-home-page").await;
    let r = b
        .post(
            "/projects/shop/mutex-groups/mutex-home-page",
            &[
                ("version", &v),
                ("name", "Home v2"),
                ("description", "typed"),
                ("evaluation_mode", "local"),
                ("slots_present", "1"),
                ("slots", "40"),
                ("slots", "40"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    r.has("deactivate")
        .has("<a href=\"/flags/exp-a?project=shop\">exp-a</a>")
        .has("value=\"Home v2\"")
        .has("typed</textarea>");
    // What does not move users is free.
    b.post(
        "/projects/shop/mutex-groups/mutex-home-page",
        &[
            ("version", &v),
            ("name", "Home v2"),
            ("description", ""),
            ("evaluation_mode", "local"),
        ],
    )
    .await
    .redirects_to("/projects/shop/mutex-groups/mutex-home-page?notice=");
    assert_eq!(
        srv.get("/api/v1/projects/shop/mutex-groups/mutex-home-page")
            .await
            .ok(200)
            .json["name"],
        "Home v2"
    );

    // Archiving: refused while a member is active, with a link; then archived, listed behind
    // the toggle, and unarchived.
    let v = group_version(srv, "holdouts/holdout-q4").await;
    let r = b
        .post(
            "/projects/shop/holdouts/holdout-q4/archive",
            &[("version", &v)],
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    r.has("<a href=\"/flags/exp-a?project=shop\">exp-a</a>");
    srv.action("exp-a", "deactivate").await.ok(200);
    b.post(
        "/projects/shop/holdouts/holdout-q4/archive",
        &[("version", &v)],
    )
    .await
    .redirects_to("/projects/shop/holdouts/holdout-q4?notice=Archived");
    b.get("/projects/shop/groups")
        .await
        .lacks("tr data-group=\"holdout-q4\"");
    b.get("/projects/shop/groups?archived=true")
        .await
        .has("tr data-group=\"holdout-q4\"")
        .lacks("tr data-group=\"mutex-home-page\"");
    let r = b.get("/projects/shop/holdouts/holdout-q4").await;
    r.has("form id=\"unarchive-group\"")
        .lacks("form id=\"group-settings\"");
    let v = group_version(srv, "holdouts/holdout-q4").await;
    b.post(
        "/projects/shop/holdouts/holdout-q4/unarchive",
        &[("version", &v)],
    )
    .await
    .redirects_to("/projects/shop/holdouts/holdout-q4?notice=Unarchived");

    // Edit a holdout, then its history: versions, compare, restore.
    let v = group_version(srv, "holdouts/holdout-q4").await;
    let holdout = srv.get("/api/v1/projects/shop/holdouts/holdout-q4").await;
    let salt = holdout.json["bucketing_salt"].as_str().unwrap();
    b.post(
        "/projects/shop/holdouts/holdout-q4",
        &[
            ("version", &v),
            ("name", "Q4"),
            ("description", ""),
            ("evaluation_mode", "local"),
            ("bucketing_unit", "user_id"),
            ("bucketing_salt", salt),
            ("percentage", "10"),
            ("inclusions_ids", "always-1"),
            ("inclusions_cohorts", ""),
            ("exclusions_ids", ""),
            ("exclusions_cohorts", ""),
            ("mutex_slot", ""),
        ],
    )
    .await
    .redirects_to("/projects/shop/holdouts/holdout-q4?notice=");
    let h = srv
        .get("/api/v1/projects/shop/holdouts/holdout-q4")
        .await
        .ok(200)
        .json;
    assert_eq!(h["percentage"], 10);
    assert_eq!(h["inclusions"]["ids"], json!(["always-1"]));
    assert!(h.get("exclusions").is_none(), "{h}");
    let history = b.get("/projects/shop/holdouts/holdout-q4/history").await;
    history
        .has("tr data-version=\"1\"")
        .has("tr data-version=\"4\"")
        .has("class=\"actor\">admin<")
        .has("action=\"/projects/shop/holdouts/holdout-q4/history/1/restore\"");
    b.get("/projects/shop/holdouts/holdout-q4/compare?from=1&to=4")
        .await
        .has("data-path=\"percentage\"");
    let v = group_version(srv, "holdouts/holdout-q4").await;
    b.post(
        "/projects/shop/holdouts/holdout-q4/history/1/restore",
        &[("version", &v)],
    )
    .await
    .redirects_to("/projects/shop/holdouts/holdout-q4?notice=Restored");
    assert_eq!(
        srv.get("/api/v1/projects/shop/holdouts/holdout-q4")
            .await
            .ok(200)
            .json["percentage"],
        5
    );

    // Leaving: the mutual-exclusion group, and a holdout.
    let v = srv.version("exp-b").await.to_string();
    b.post(
        "/flags/exp-b/mutex-group/leave",
        &[("project", "shop"), ("version", &v)],
    )
    .await
    .redirects_to("/flags/exp-b");
    let v = srv.version("exp-b").await.to_string();
    b.post(
        "/flags/exp-b/holdouts",
        &[("project", "shop"), ("version", &v)],
    )
    .await
    .redirects_to("/flags/exp-b");
    let flag = srv.flag("exp-b").await.json;
    assert!(flag["mutex_group"].is_null(), "{flag}");
    assert!(
        flag["holdouts"].as_array().is_none_or(Vec::is_empty),
        "{flag}"
    );
    // A group the project does not have.
    let r = b.get("/projects/shop/holdouts/holdout-none").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}
