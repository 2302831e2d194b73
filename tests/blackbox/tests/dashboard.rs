//! The web dashboard through the real gateway over plain HTTP, with the cookie jar kept by
//! hand (docs/dashboard.md): an operator logs in, watches a provider turn red after it
//! stops polling and switches maintenance from the form (SOAP calls then get 503); forms
//! without the session's CSRF token are refused; an auditor searches the journal, opens a
//! card and sees its proof verified; each role is kept off the other's pages; a wrong
//! password and an unknown user fail alike; logged-out and expired sessions go back to
//! the login page; every auditor view and the switch are journaled.

use mezhved_blackbox::*;
use mezhved_client as client;
use std::collections::HashMap;
use std::time::Duration;

const PROVIDER: &str = "ZAGS_IS";
const OPERATOR: (&str, &str) = ("operator-ivanov", "test-operator-password");
const AUDITOR: (&str, &str) = ("auditor-kuznetsova", "test-auditor-password");

/// A browser without a browser: one cookie jar, one HTTP client.
struct Browser {
    http: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Full<bytes::Bytes>,
    >,
    base: String,
    cookies: HashMap<String, String>,
    /// The `Set-Cookie` headers of the last answer.
    set_cookies: Vec<String>,
}

struct Page {
    status: u16,
    headers: hyper::HeaderMap,
    body: String,
}

impl Page {
    fn location(&self) -> String {
        self.headers
            .get(hyper::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    }

    /// The value of the first hidden `csrf` field.
    fn csrf(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let at = self.body.find(marker).expect("a CSRF field") + marker.len();
        let end = self.body[at..].find('"').expect("end of value");
        self.body[at..at + end].to_string()
    }

    fn assert_secure_headers(&self) {
        let h = |n: &str| {
            self.headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        let csp = h("content-security-policy");
        assert!(csp.contains("default-src 'self'"), "{csp}");
        assert!(csp.contains("script-src 'none'"), "{csp}");
        assert_eq!(h("x-frame-options"), "DENY");
        assert_eq!(h("referrer-policy"), "no-referrer");
        assert_eq!(h("cache-control"), "no-store");
    }
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl Browser {
    fn new(gw: &TestGateway) -> Browser {
        Browser {
            http: hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(hyper_util::client::legacy::connect::HttpConnector::new()),
            base: gw.url.clone(),
            cookies: HashMap::new(),
            set_cookies: Vec::new(),
        }
    }

    async fn request(&mut self, method: &str, path: &str, form: Option<&[(&str, &str)]>) -> Page {
        self.request_with(method, path, form, &[]).await
    }

    async fn request_with(
        &mut self,
        method: &str,
        path: &str,
        form: Option<&[(&str, &str)]>,
        extra: &[(&str, &str)],
    ) -> Page {
        use http_body_util::BodyExt;
        let mut r = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        for (k, v) in extra {
            r = r.header(*k, *v);
        }
        if !self.cookies.is_empty() {
            let c: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            r = r.header(hyper::header::COOKIE, c.join("; "));
        }
        let body = match form {
            Some(f) => {
                r = r.header(
                    hyper::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                );
                f.iter()
                    .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
                    .collect::<Vec<_>>()
                    .join("&")
            }
            None => String::new(),
        };
        let response = self
            .http
            .request(
                r.body(http_body_util::Full::new(bytes::Bytes::from(body)))
                    .expect("request"),
            )
            .await
            .expect("HTTP");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        self.set_cookies = headers
            .get_all(hyper::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect();
        for c in &self.set_cookies {
            let first = c.split(';').next().unwrap_or("");
            if let Some((k, v)) = first.split_once('=') {
                if v.is_empty() || c.contains("Max-Age=0") {
                    self.cookies.remove(k);
                } else {
                    self.cookies.insert(k.to_string(), v.to_string());
                }
            }
        }
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        Page {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        self.request("GET", path, None).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        self.request("POST", path, Some(form)).await
    }

    /// Opens the login page and submits it; returns the answer to the POST.
    async fn login(&mut self, user: &str, password: &str) -> Page {
        let page = self.get("/ui/login?lang=en").await;
        assert_eq!(page.status, 200, "{}", page.body);
        page.assert_secure_headers();
        let csrf = page.csrf();
        self.post(
            "/ui/login",
            &[
                ("csrf", &csrf),
                ("lang", "en"),
                ("user", user),
                ("password", password),
            ],
        )
        .await
    }
}

#[tokio::test]
async fn the_operator_watches_a_provider_turn_red_and_switches_maintenance() {
    let gw = TestGateway::start().await;
    let mut b = Browser::new(&gw);
    // Login: the session cookie is HttpOnly, SameSite=Strict, on /ui only.
    let login = b.login(OPERATOR.0, OPERATOR.1).await;
    assert_eq!(login.status, 303, "{}", login.body);
    assert!(login.location().starts_with("/ui"), "{}", login.location());
    let session = b
        .set_cookies
        .iter()
        .find(|c| c.starts_with("mezhved_session="))
        .expect("a session cookie")
        .clone();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/ui"] {
        assert!(session.contains(flag), "{session}");
    }
    // (Plain-HTTP tests set insecure_cookies; otherwise the cookie is Secure.)
    assert!(!session.contains("Secure"), "{session}");
    assert_eq!(b.cookies["mezhved_session"].len(), 64, "32 random bytes");

    // The provider polls once, then falls silent with a message waiting.
    expect_ok(
        &gw.provider()
            .call(client::get_request(None, gw.now()))
            .await,
    );
    let sent = gw
        .consumer()
        .call(client::send_request(&gw.birth_request("dashboard")))
        .await;
    expect_ok(&sent);
    let overview = b.get("/ui?lang=en").await;
    assert_eq!(overview.status, 200, "{}", overview.body);
    overview.assert_secure_headers();
    assert!(overview.body.contains("http-equiv=\"refresh\""));
    for s in &gw.state.registry.get().data.systems {
        assert!(
            overview
                .body
                .contains(&format!("data-system=\"{}\" data-state=", s.mnemonic)),
            "{} missing",
            s.mnemonic
        );
    }
    assert!(overview
        .body
        .contains(&format!("data-system=\"{PROVIDER}\" data-state=\"green\"")));
    gw.clock.advance(Duration::from_secs(16 * 60));
    let overview = b.get("/ui?lang=en").await;
    assert!(
        overview
            .body
            .contains(&format!("data-system=\"{PROVIDER}\" data-state=\"red\"")),
        "{}",
        overview.body
    );
    let page = b.get(&format!("/ui/systems/{PROVIDER}?lang=en")).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("data-state=\"red\""), "{}", page.body);
    assert!(page.body.contains("no poll for 16 min"), "{}", page.body);
    // The other operator pages open.
    for path in [
        "/ui/agencies",
        "/ui/agencies/ZAGS",
        "/ui/queues",
        "/ui/overdue",
        "/ui/alerts",
        "/ui/registry",
    ] {
        let p = b.get(path).await;
        assert_eq!(p.status, 200, "{path}: {}", p.body);
        p.assert_secure_headers();
    }
    assert!(b.get("/ui/registry").await.body.contains(PROVIDER));
    let agency = b.get("/ui/agencies/ZAGS?lang=en").await;
    assert!(
        agency
            .body
            .contains("id=\"agency-state\" data-state=\"red\""),
        "{}",
        agency.body
    );
    assert!(agency.body.contains("BirthRecordRequest"), "its kind");
    assert_eq!(b.get("/ui/agencies/NOBODY").await.status, 404);
    let queues = b.get("/ui/queues?lang=en").await;
    assert!(
        queues
            .body
            .contains("data-queue=\"ZAGS_IS/requests\" data-pending=\"1\""),
        "{}",
        queues.body
    );
    assert!(queues.body.contains("16 min"), "{}", queues.body);

    // Maintenance from the form: without or with a wrong CSRF token nothing changes.
    let form = b.get("/ui/maintenance?lang=en").await;
    assert!(form.body.contains("data-enabled=\"false\""));
    let csrf = form.csrf();
    for token in [None, Some("0".repeat(64))] {
        let mut fields = vec![("enabled", "true"), ("reason", "forged")];
        if let Some(t) = &token {
            fields.push(("csrf", t.as_str()));
        }
        let refused = b.post("/ui/maintenance", &fields).await;
        assert_eq!(refused.status, 403, "{}", refused.body);
        refused.assert_secure_headers();
        assert!(gw
            .state
            .exchange
            .monitor()
            .maintenance_setting()
            .is_none_or(|m| !m.enabled));
    }
    let on = b
        .post(
            "/ui/maintenance",
            &[
                ("csrf", &csrf),
                ("enabled", "true"),
                ("reason", "upgrade <b>tonight</b>"),
            ],
        )
        .await;
    assert_eq!(on.status, 303, "{}", on.body);
    let refused = gw
        .consumer()
        .call(client::send_request(&gw.birth_request("in maintenance")))
        .await;
    assert_eq!(refused.status, 503, "{}", refused.text());
    let page = b.get("/ui/maintenance?lang=en").await;
    assert!(page.body.contains("data-enabled=\"true\""), "{}", page.body);
    // The reason is shown escaped.
    assert!(page.body.contains("upgrade &lt;b&gt;tonight&lt;/b&gt;"));
    assert!(!page.body.contains("<b>tonight"));
    let off = b
        .post("/ui/maintenance", &[("csrf", &csrf), ("enabled", "false")])
        .await;
    assert_eq!(off.status, 303, "{}", off.body);
    expect_ok(
        &gw.consumer()
            .call(client::send_request(&gw.birth_request("after maintenance")))
            .await,
    );
    // Both switches are journaled with the user as actor; the forged ones are not.
    let switches: Vec<_> = gw
        .journal_events()
        .await
        .into_iter()
        .filter(|(ty, _, _)| ty == "operator.maintenance")
        .collect();
    assert_eq!(switches.len(), 2, "{switches:?}");
    assert!(switches.iter().all(|(_, actor, _)| actor == OPERATOR.0));

    // Logout: the session is gone and pages send to the login page again.
    let csrf = b.get("/ui").await.csrf();
    let old = b.cookies["mezhved_session"].clone();
    let out = b.post("/ui/logout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, 303);
    assert!(out.location().starts_with("/ui/login"));
    b.cookies.insert("mezhved_session".into(), old);
    // The login and the logout are journaled with the user and role.
    let sessions: Vec<_> = gw
        .journal_events()
        .await
        .into_iter()
        .filter(|(ty, _, _)| ty.starts_with("dashboard."))
        .collect();
    assert_eq!(
        sessions
            .iter()
            .map(|(ty, actor, _)| (ty.as_str(), actor.as_str()))
            .collect::<Vec<_>>(),
        [
            ("dashboard.login", OPERATOR.0),
            ("dashboard.logout", OPERATOR.0)
        ]
    );
    assert!(
        sessions[0].2.contains("\"role\":\"operator\""),
        "{sessions:?}"
    );
    let again = b.get("/ui").await;
    assert_eq!(again.status, 303);
    // (`/ui/` is `/ui`.)
    assert_eq!(b.get("/ui/").await.location(), "/ui");
    assert!(
        again.location().starts_with("/ui/login"),
        "{}",
        again.location()
    );
    gw.stop().await;
}

#[tokio::test]
async fn the_auditor_finds_a_card_and_sees_its_proof_verified_and_each_view_is_journaled() {
    let gw = TestGateway::start().await;
    let sent = gw
        .consumer()
        .call(client::send_request(&gw.birth_request("audited")))
        .await;
    expect_ok(&sent);
    let gid = sent.global_id().expect("global ID");
    gw.state.journal.checkpoint().await.expect("checkpoint");

    let mut b = Browser::new(&gw);
    let login = b.login(AUDITOR.0, AUDITOR.1).await;
    assert_eq!(login.status, 303, "{}", login.body);
    assert!(login.location().starts_with("/ui/journal"));
    let found = b
        .get(&format!(
            "/ui/journal?lang=en&system=USZN_IS&global_id={gid}"
        ))
        .await;
    assert_eq!(found.status, 200, "{}", found.body);
    found.assert_secure_headers();
    assert!(found.body.contains("data-count=\"1\""), "{}", found.body);
    assert!(found.body.contains(&format!("data-card=\"{gid}\"")));
    let card = b.get(&format!("/ui/cards/{gid}?lang=en")).await;
    assert_eq!(card.status, 200, "{}", card.body);
    assert!(
        card.body.contains("data-proof=\"verified\""),
        "{}",
        card.body
    );
    assert!(
        !card.body.contains("data-proof=\"failed\""),
        "{}",
        card.body
    );
    let cps = b.get("/ui/checkpoints?lang=en").await;
    assert_eq!(cps.status, 200, "{}", cps.body);
    assert!(cps.body.contains("data-verified=\"ok\""), "{}", cps.body);
    let reports = b.get("/ui/reports").await;
    assert_eq!(reports.status, 200);
    let report = b.get("/ui/reports/evaluation?half_year=2026H2").await;
    assert_eq!(report.status, 200, "{}", report.body);
    assert!(report.body.contains("<html"), "{}", report.body);

    // Each view is an auditor.query event with the user's name.
    let queries: Vec<String> = gw
        .journal_events()
        .await
        .into_iter()
        .filter(|(ty, _, _)| ty == "auditor.query")
        .map(|(_, _, leaf)| leaf)
        .filter(|leaf| leaf.contains(AUDITOR.0) && leaf.contains("\"ui."))
        .collect();
    for q in [
        "ui.cards",
        "ui.card",
        "ui.checkpoints",
        "ui.report.evaluation",
    ] {
        assert!(
            queries.iter().any(|l| l.contains(&format!("\"{q}\""))),
            "{q} not journaled: {queries:?}"
        );
    }
    gw.stop().await;
}

#[tokio::test]
async fn roles_keep_to_their_pages_and_bad_logins_and_old_sessions_get_nowhere() {
    let gw = TestGateway::start_with(|c| c.dashboard.session_idle_seconds = 600).await;
    let mut auditor = Browser::new(&gw);
    assert_eq!(auditor.login(AUDITOR.0, AUDITOR.1).await.status, 303);
    let mut operator = Browser::new(&gw);
    assert_eq!(operator.login(OPERATOR.0, OPERATOR.1).await.status, 303);
    for path in [
        "/ui",
        "/ui/systems/ZAGS_IS",
        "/ui/agencies",
        "/ui/agencies/ZAGS",
        "/ui/queues",
        "/ui/overdue",
        "/ui/alerts",
        "/ui/registry",
        "/ui/maintenance",
    ] {
        let p = auditor.get(path).await;
        assert_eq!(p.status, 403, "{path}");
        p.assert_secure_headers();
        assert_eq!(operator.get(path).await.status, 200, "{path}");
    }
    // An auditor's valid CSRF token does not let it switch maintenance either.
    let csrf = auditor.get("/ui/journal").await.csrf();
    let p = auditor
        .post(
            "/ui/maintenance",
            &[("csrf", &csrf), ("enabled", "true"), ("reason", "x")],
        )
        .await;
    assert_eq!(p.status, 403);
    for path in [
        "/ui/journal",
        "/ui/checkpoints",
        "/ui/reports",
        "/ui/cards/00000000-0000-0000-0000-000000000000",
    ] {
        assert_eq!(operator.get(path).await.status, 403, "{path}");
        assert_ne!(auditor.get(path).await.status, 403, "{path}");
    }

    // A wrong password and an unknown user (e.g. an agency's system) fail alike.
    let mut stranger = Browser::new(&gw);
    let wrong = stranger.login(OPERATOR.0, "not the password").await;
    let unknown = stranger.login("USZN_IS", "whatever").await;
    assert_eq!(wrong.status, 401);
    assert_eq!(unknown.status, 401);
    let message = |p: &Page| {
        let at = p.body.find("id=\"login-error\">").expect("an error");
        p.body[at..at + 60].to_string()
    };
    assert_eq!(message(&wrong), message(&unknown));
    assert!(wrong.body.contains("Wrong user name or password"));
    assert!(!stranger.cookies.contains_key("mezhved_session"));
    // Only the two successful logins are journaled, not the failures (no journal flood).
    let logins = gw
        .journal_events()
        .await
        .into_iter()
        .filter(|(ty, _, _)| ty == "dashboard.login")
        .map(|(_, actor, _)| actor)
        .collect::<Vec<_>>();
    assert_eq!(logins, [AUDITOR.0, OPERATOR.0]);
    // The login form wants its CSRF token too.
    let p = stranger
        .post(
            "/ui/login",
            &[("user", OPERATOR.0), ("password", OPERATOR.1)],
        )
        .await;
    assert_eq!(p.status, 403);
    assert!(!stranger.cookies.contains_key("mezhved_session"));
    // Without a session every page sends to the login page.
    let p = stranger.get("/ui/journal").await;
    assert_eq!(p.status, 303);
    assert!(p.location().starts_with("/ui/login"));

    // Idle past the limit: the session is over.
    gw.clock.advance(Duration::from_secs(601));
    for b in [&mut operator, &mut auditor] {
        let p = b.get("/ui").await;
        assert_eq!(p.status, 303);
        assert!(p.location().starts_with("/ui/login"), "{}", p.location());
    }
    // Russian by default, English on request, with a switch link.
    let ru = stranger.get("/ui/login").await;
    assert!(ru.body.contains("Пароль") && ru.body.contains("id=\"lang-switch\""));
    assert!(stranger
        .get("/ui/login?lang=en")
        .await
        .body
        .contains("Password"));
    gw.stop().await;
}

#[tokio::test]
async fn cookies_are_secure_unless_the_configuration_says_otherwise() {
    let gw = TestGateway::start_with(|c| c.dashboard.insecure_cookies = false).await;
    let mut b = Browser::new(&gw);
    let login = b.login(OPERATOR.0, OPERATOR.1).await;
    assert_eq!(login.status, 303, "{}", login.body);
    let session = b
        .set_cookies
        .iter()
        .find(|c| c.starts_with("mezhved_session="))
        .expect("a session cookie");
    assert!(session.contains("; Secure"), "{session}");
    gw.stop().await;
}

#[tokio::test]
async fn foreign_posts_stray_requests_refreshes_and_second_logins_are_handled_safely() {
    let gw = TestGateway::start_with(|c| c.dashboard.session_idle_seconds = 600).await;
    let host = gw.url.trim_start_matches("http://").to_string();
    let lookalike = format!("http://{host}.evil.example");
    let mut b = Browser::new(&gw);
    // A login form posted from another site (or a sibling subdomain, which could have
    // planted the login cookie) is refused before the password is looked at, whatever
    // tokens it carries.
    let page = b.get("/ui/login?lang=en").await;
    let csrf = page.csrf();
    let login = [
        ("csrf", csrf.as_str()),
        ("user", OPERATOR.0),
        ("password", OPERATOR.1),
    ];
    for extra in [
        vec![("origin", "https://evil.example")],
        vec![("origin", "null"), ("sec-fetch-site", "same-site")],
        vec![("sec-fetch-site", "cross-site")],
        vec![("origin", lookalike.as_str())],
    ] {
        let p = b
            .request_with("POST", "/ui/login", Some(&login), &extra)
            .await;
        assert_eq!(p.status, 403, "{extra:?}: {}", p.body);
        p.assert_secure_headers();
        assert!(!b.cookies.contains_key("mezhved_session"));
    }
    // From the page itself it works (browsers say `Origin: null` under our
    // `Referrer-Policy: no-referrer`; `Sec-Fetch-Site` decides).
    let ok = b
        .request_with(
            "POST",
            "/ui/login",
            Some(&login),
            &[("origin", "null"), ("sec-fetch-site", "same-origin")],
        )
        .await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    let first = b.cookies["mezhved_session"].clone();
    // The maintenance form from another site: refused, nothing switched.
    let csrf = b.get("/ui/maintenance").await.csrf();
    let p = b
        .request_with(
            "POST",
            "/ui/maintenance",
            Some(&[("csrf", &csrf), ("enabled", "true"), ("reason", "x")]),
            &[("origin", "https://evil.example")],
        )
        .await;
    assert_eq!(p.status, 403);
    assert!(gw
        .state
        .exchange
        .monitor()
        .maintenance_setting()
        .is_none_or(|m| !m.enabled));

    // Answers axum makes itself carry the headers too; unknown pages are the dashboard's.
    let p = b.get("/ui/logout").await;
    assert_eq!(p.status, 405);
    assert!(p
        .headers
        .get("content-security-policy")
        .is_some_and(|v| v.to_str().unwrap_or("").contains("default-src 'none'")));
    let p = b.get("/ui/no-such-page?lang=en").await;
    assert_eq!(p.status, 404);
    p.assert_secure_headers();
    assert!(p.body.contains("data-test=\"not-found\""), "{}", p.body);

    // A page's own refresh (auto=1) does not keep the session alive; a click does.
    let overview = b.get("/ui?lang=en").await;
    assert!(
        overview.body.contains("url=/ui?lang=en&amp;auto=1"),
        "{}",
        overview.body
    );
    gw.clock.advance(Duration::from_secs(400));
    assert_eq!(b.get("/ui?lang=en&auto=1").await.status, 200);
    gw.clock.advance(Duration::from_secs(201));
    let p = b.get("/ui?lang=en&auto=1").await;
    assert_eq!(p.status, 303, "idle for 601 s despite the refreshes");

    // Logging in again from the same browser ends the session it still held.
    let mut again = Browser::new(&gw);
    assert_eq!(again.login(OPERATOR.0, OPERATOR.1).await.status, 303);
    let held = again.cookies["mezhved_session"].clone();
    assert_eq!(again.login(OPERATOR.0, OPERATOR.1).await.status, 303);
    assert_ne!(again.cookies["mezhved_session"], held);
    again.cookies.insert("mezhved_session".into(), held);
    assert_eq!(
        again.get("/ui").await.status,
        303,
        "the first session ended"
    );
    assert_ne!(first, again.cookies["mezhved_session"]);
    gw.stop().await;
}
