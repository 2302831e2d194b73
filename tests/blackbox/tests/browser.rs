//! The web dashboard in a real browser: Debian's headless Chromium, driven through
//! playwright-core by `tests/browser/driver.mjs`, against the real gateway on
//! 127.0.0.1:0 (docs/dashboard.md). The test moves the gateway's clock and holds every
//! assertion; the driver only clicks, types and reads.
//!
//! - An operator logs in, sees a provider that stopped polling turn red (with the page's
//!   own stylesheet applied under its CSP), opens its page and switches maintenance on and
//!   off from the form (SOAP calls get 503 meanwhile); both switches are journaled.
//! - An auditor logs in, finds a card through the search form, opens it and sees every
//!   event's proof verified, sees the checkpoint verified, and is refused operator pages.
//! - A participant (an agency's information system) cannot log in.
//!
//! Screenshots of every step are written to `target/artefacts/browser/` (or
//! `$MEZHVED_ARTEFACTS/browser/`); CI keeps them as test artefacts.
//!
//! Needs `/usr/bin/chromium` (Debian's `chromium`) and `tests/browser/node_modules`
//! (`npm ci --prefix tests/browser`); `tests/run.sh` installs both. Without them the
//! tests fail and say so, unless `MEZHVED_BROWSER_TESTS=skip` is set.

use mezhved_blackbox::*;
use mezhved_client as client;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

const PROVIDER: &str = "ZAGS_IS";
const OPERATOR: (&str, &str) = ("operator-ivanov", "test-operator-password");
const AUDITOR: (&str, &str) = ("auditor-kuznetsova", "test-auditor-password");
/// How long one browser action may take before the test gives up on the driver.
const STEP_LIMIT: Duration = Duration::from_secs(60);

/// One headless Chromium behind the driver; each named context is its own profile.
struct Chromium {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    next: u64,
    shots: PathBuf,
}

/// Where a navigation ended: the final status and the path (with query) after redirects.
#[derive(Debug)]
struct Nav {
    status: u16,
    at: String,
}

impl Nav {
    fn from(v: Value) -> Nav {
        Nav {
            status: v["status"].as_u64().unwrap_or(0) as u16,
            at: v["at"].as_str().unwrap_or("").to_string(),
        }
    }
}

impl Chromium {
    /// Starts the driver for a gateway; `None` when the browser tests are explicitly skipped.
    async fn start(gw: &TestGateway, test: &str) -> Option<Chromium> {
        let browser_dir = repo().join("tests/browser");
        let chromium =
            std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_string());
        let missing = if !std::path::Path::new(&chromium).exists() {
            Some(format!("{chromium} (Debian package `chromium`)"))
        } else if !browser_dir.join("node_modules/playwright-core").exists() {
            Some("tests/browser/node_modules (`npm ci --prefix tests/browser`)".to_string())
        } else {
            None
        };
        if let Some(what) = missing {
            if std::env::var("MEZHVED_BROWSER_TESTS").as_deref() == Ok("skip") {
                eprintln!("browser test {test} skipped (MEZHVED_BROWSER_TESTS=skip): no {what}");
                return None;
            }
            panic!(
                "the browser tests need {what}; tests/run.sh installs it \
                 (or set MEZHVED_BROWSER_TESTS=skip to leave them out)"
            );
        }
        let artefacts = std::env::var_os("MEZHVED_ARTEFACTS")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo().join("target/artefacts"));
        let shots = artefacts.join("browser").join(test);
        let _ = std::fs::remove_dir_all(&shots);
        let mut child = tokio::process::Command::new("node")
            .arg(browser_dir.join("driver.mjs"))
            .current_dir(&browser_dir)
            .env("MEZHVED_UI", &gw.url)
            .env("MEZHVED_SCREENSHOTS", &shots)
            .env("CHROMIUM", &chromium)
            .env_remove("OPENSSL_CONF")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("node (Node.js) runs tests/browser/driver.mjs");
        let stdin = child.stdin.take().expect("driver stdin");
        let stdout = BufReader::new(child.stdout.take().expect("driver stdout")).lines();
        Some(Chromium {
            child,
            stdin,
            stdout,
            next: 0,
            shots,
        })
    }

    async fn call(&mut self, mut msg: Value) -> Value {
        self.next += 1;
        msg["id"] = json!(self.next);
        let line = format!("{msg}\n");
        self.stdin
            .write_all(line.as_bytes())
            .await
            .expect("driver takes a command");
        let answer = tokio::time::timeout(STEP_LIMIT, self.stdout.next_line())
            .await
            .unwrap_or_else(|_| panic!("browser step timed out: {msg}"))
            .expect("driver output")
            .unwrap_or_else(|| panic!("the driver ended during {msg}"));
        let v: Value = serde_json::from_str(&answer)
            .unwrap_or_else(|e| panic!("driver answered {answer:?}: {e}"));
        assert_eq!(v["id"], json!(self.next), "{answer}");
        if v["ok"] != json!(true) {
            panic!("browser step {msg} failed: {}", v["error"]);
        }
        v["value"].clone()
    }

    async fn open(&mut self, name: &str, locale: &str) {
        self.call(json!({"op": "open", "name": name, "locale": locale}))
            .await;
    }
    async fn goto(&mut self, name: &str, path: &str) -> Nav {
        Nav::from(
            self.call(json!({"op": "goto", "name": name, "path": path}))
                .await,
        )
    }
    async fn reload(&mut self, name: &str) -> Nav {
        Nav::from(self.call(json!({"op": "reload", "name": name})).await)
    }
    async fn fill(&mut self, name: &str, sel: &str, value: &str) {
        self.call(json!({"op": "fill", "name": name, "sel": sel, "value": value}))
            .await;
    }
    /// Clicks a link or a submit button and waits for the page it leads to.
    async fn follow(&mut self, name: &str, sel: &str) -> Nav {
        Nav::from(
            self.call(json!({"op": "follow", "name": name, "sel": sel}))
                .await,
        )
    }
    async fn attr(&mut self, name: &str, sel: &str, attr: &str) -> Option<String> {
        self.call(json!({"op": "attr", "name": name, "sel": sel, "attr": attr}))
            .await
            .as_str()
            .map(str::to_string)
    }
    async fn text(&mut self, name: &str, sel: &str) -> String {
        self.call(json!({"op": "text", "name": name, "sel": sel}))
            .await
            .as_str()
            .unwrap_or_else(|| panic!("no {sel} on the page"))
            .to_string()
    }
    async fn count(&mut self, name: &str, sel: &str) -> u64 {
        self.call(json!({"op": "count", "name": name, "sel": sel}))
            .await
            .as_u64()
            .expect("a count")
    }
    async fn visible(&mut self, name: &str, sel: &str) -> bool {
        self.call(json!({"op": "visible", "name": name, "sel": sel}))
            .await
            .as_bool()
            .expect("a boolean")
    }
    async fn style(&mut self, name: &str, sel: &str, prop: &str) -> String {
        self.call(json!({"op": "style", "name": name, "sel": sel, "prop": prop}))
            .await
            .as_str()
            .unwrap_or_else(|| panic!("no {sel} on the page"))
            .to_string()
    }
    /// The names of the cookies the context holds, with their flags.
    async fn cookies(&mut self, name: &str) -> Vec<Value> {
        self.call(json!({"op": "cookies", "name": name}))
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
    /// Console errors and warnings since the last call: CSP refusals, script errors and
    /// resources that failed to load would show here. `expected` lists the HTTP statuses
    /// the test itself provoked (Chromium reports a 401 or 403 page as a failed load).
    async fn assert_no_problems(&mut self, name: &str, expected: &[u16]) {
        let problems = self.call(json!({"op": "problems", "name": name})).await;
        let unexpected: Vec<&Value> = problems
            .as_array()
            .expect("a list")
            .iter()
            .filter(|p| {
                let text = p.as_str().unwrap_or("");
                !expected.iter().any(|s| {
                    text == format!(
                        "Failed to load resource: the server responded with a status of {s} ({})",
                        match s {
                            401 => "Unauthorized",
                            403 => "Forbidden",
                            _ => "",
                        }
                    )
                })
            })
            .collect();
        assert!(
            unexpected.is_empty(),
            "the browser complained: {unexpected:?}"
        );
    }
    async fn screenshot(&mut self, name: &str, file: &str) {
        let path = self
            .call(json!({"op": "screenshot", "name": name, "file": format!("{file}.png")}))
            .await;
        let path = PathBuf::from(path.as_str().expect("a path"));
        let png = std::fs::read(&path).expect("the screenshot was written");
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 1000,
            "{} is not a PNG",
            path.display()
        );
    }

    /// Logs in through the form as a user would.
    async fn login(&mut self, name: &str, user: &str, password: &str) -> Nav {
        let at = self.goto(name, "/ui/login?lang=en").await;
        assert_eq!(at.status, 200);
        self.fill(name, "#user", user).await;
        self.fill(name, "#password", password).await;
        self.follow(name, "#login-submit").await
    }

    async fn close(mut self) {
        drop(self.stdin);
        let _ = tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await;
        let shots = std::fs::read_dir(&self.shots).map_or(0, |d| d.count());
        eprintln!("{shots} screenshots in {}", self.shots.display());
    }
}

/// The journal's events of one type: (actor, leaf).
async fn journal_events(gw: &TestGateway, ty: &str) -> Vec<(String, String)> {
    gw.journal_events()
        .await
        .into_iter()
        .filter(|(t, _, _)| t == ty)
        .map(|(_, actor, leaf)| (actor, leaf))
        .collect()
}

/// A test gateway and a browser for it; `None` when the browser tests are skipped.
async fn start(test: &str) -> Option<(TestGateway, Chromium)> {
    let gw = TestGateway::start().await;
    let b = Chromium::start(&gw, test).await?;
    Some((gw, b))
}

fn row(system: &str) -> String {
    format!("tr[data-system=\"{system}\"]")
}

#[tokio::test]
async fn the_operator_sees_a_silent_provider_turn_red_and_switches_maintenance() {
    let Some((gw, mut b)) = start("operator").await else {
        return;
    };
    const OP: &str = "operator";
    b.open(OP, "en-US").await;
    // Every page without a session leads to the login form.
    let at = b.goto(OP, "/ui").await;
    assert!(at.at.starts_with("/ui/login"), "{at:?}");
    b.screenshot(OP, "01-login").await;

    // The provider polls once; a request then waits for it.
    expect_ok(
        &gw.provider()
            .call(client::get_request(None, gw.now()))
            .await,
    );
    expect_ok(
        &gw.consumer()
            .call(client::send_request(&gw.birth_request("browser")))
            .await,
    );
    let at = b.login(OP, OPERATOR.0, OPERATOR.1).await;
    assert_eq!(at.status, 200, "{at:?}");
    assert!(at.at.starts_with("/ui"), "{at:?}");
    assert_eq!(b.text(OP, "[data-test=user]").await, OPERATOR.0);
    let session = b
        .cookies(OP)
        .await
        .into_iter()
        .find(|c| c["name"] == json!("mezhved_session"))
        .expect("a session cookie");
    assert_eq!(session["httpOnly"], json!(true), "{session}");
    assert_eq!(session["sameSite"], json!("Strict"), "{session}");
    assert_eq!(
        b.attr(OP, &row(PROVIDER), "data-state").await.as_deref(),
        Some("green")
    );
    // The stylesheet is applied under the page's CSP: the light is green on the screen.
    let light = format!("{} [data-light]", row(PROVIDER));
    assert_eq!(
        b.style(OP, &light, "background-color").await,
        "rgb(46, 125, 50)"
    );
    // The region's traffic above the table: the poll and the send, the one waiting message.
    assert_eq!(
        b.attr(OP, "#traffic", "data-calls").await.as_deref(),
        Some("2")
    );
    assert_eq!(
        b.attr(OP, "#traffic", "data-pending").await.as_deref(),
        Some("1")
    );
    assert_eq!(
        b.attr(OP, "#lights", "data-red").await.as_deref(),
        Some("0")
    );
    b.screenshot(OP, "02-overview-green").await;

    // It stops polling; a quarter of an hour later the overview shows it red.
    gw.clock.advance(Duration::from_secs(16 * 60));
    let at = b.reload(OP).await;
    assert_eq!(at.status, 200);
    assert_eq!(
        b.attr(OP, &row(PROVIDER), "data-state").await.as_deref(),
        Some("red")
    );
    assert_eq!(
        b.style(OP, &light, "background-color").await,
        "rgb(198, 40, 40)"
    );
    assert_eq!(
        b.attr(OP, "#lights", "data-red").await.as_deref(),
        Some("1")
    );
    b.screenshot(OP, "03-overview-red").await;
    let at = b.follow(OP, &format!("{} a", row(PROVIDER))).await;
    assert_eq!(at.status, 200);
    assert!(
        at.at.starts_with(&format!("/ui/systems/{PROVIDER}")),
        "{at:?}"
    );
    assert_eq!(
        b.attr(OP, "#system-state", "data-state").await.as_deref(),
        Some("red")
    );
    let rule = b.text(OP, "#system").await;
    assert!(rule.contains("no poll for 16 min"), "{rule}");
    b.screenshot(OP, "04-system-red").await;
    // Its agency's page, from the agencies list: red too, with the system's rule.
    let at = b.follow(OP, "[data-test=nav-agencies]").await;
    assert_eq!(at.status, 200, "{at:?}");
    let at = b.follow(OP, "tr[data-agency=\"ZAGS\"] a").await;
    assert!(at.at.starts_with("/ui/agencies/ZAGS"), "{at:?}");
    assert_eq!(
        b.attr(OP, "#agency-state", "data-state").await.as_deref(),
        Some("red")
    );
    assert_eq!(
        b.attr(
            OP,
            &format!("#agency-systems {}", row(PROVIDER)),
            "data-state"
        )
        .await
        .as_deref(),
        Some("red")
    );
    b.screenshot(OP, "04b-agency-red").await;
    let at = b
        .follow(OP, &format!("#agency-systems {} a", row(PROVIDER)))
        .await;
    assert!(
        at.at.starts_with(&format!("/ui/systems/{PROVIDER}")),
        "{at:?}"
    );
    // The queues page shows the message waiting for it, and for how long.
    let at = b.follow(OP, "[data-test=nav-queues]").await;
    assert_eq!(at.status, 200, "{at:?}");
    assert_eq!(
        b.attr(OP, "tr[data-queue=\"ZAGS_IS/requests\"]", "data-pending")
            .await
            .as_deref(),
        Some("1")
    );
    b.screenshot(OP, "04c-queues").await;
    b.goto(OP, &format!("/ui/systems/{PROVIDER}?lang=en")).await;
    // The same page in Russian: the labels and the rule itself.
    let at = b.follow(OP, "#lang-switch").await;
    assert!(at.at.contains("lang=ru"), "{at:?}");
    let rule = b.text(OP, "#system-rule").await;
    assert_eq!(rule, "красный: нет опроса 16 мин, сообщений в очереди: 1");
    assert_eq!(b.text(OP, "[data-light]").await, "красный");
    b.screenshot(OP, "05-system-red-ru").await;

    // Maintenance on from its page: the SOAP endpoint refuses calls, the overview says so.
    let at = b.follow(OP, "[data-test=nav-maintenance]").await;
    assert_eq!(at.status, 200, "{at:?}");
    assert_eq!(
        b.attr(OP, "#maintenance-state", "data-enabled")
            .await
            .as_deref(),
        Some("false")
    );
    b.fill(OP, "#maintenance-reason", "Upgrade of the store <tonight>")
        .await;
    let at = b.follow(OP, "#maintenance-toggle").await;
    assert_eq!(at.status, 200, "{at:?}");
    assert_eq!(
        b.attr(OP, "#maintenance-state", "data-enabled")
            .await
            .as_deref(),
        Some("true")
    );
    let shown = b.text(OP, "main").await;
    assert!(shown.contains("Upgrade of the store <tonight>"), "{shown}");
    b.screenshot(OP, "06-maintenance-on").await;
    let refused = gw
        .consumer()
        .call(client::send_request(&gw.birth_request("in maintenance")))
        .await;
    assert_eq!(refused.status, 503, "{}", refused.text());
    b.goto(OP, "/ui?lang=en").await;
    assert!(b.visible(OP, "#maintenance-banner").await);
    b.screenshot(OP, "07-overview-maintenance").await;

    // And off again: calls are taken.
    b.goto(OP, "/ui/maintenance?lang=en").await;
    assert_eq!(b.count(OP, "#maintenance-reason").await, 0);
    let at = b.follow(OP, "#maintenance-toggle").await;
    assert_eq!(at.status, 200, "{at:?}");
    assert_eq!(
        b.attr(OP, "#maintenance-state", "data-enabled")
            .await
            .as_deref(),
        Some("false")
    );
    expect_ok(
        &gw.consumer()
            .call(client::send_request(&gw.birth_request("after maintenance")))
            .await,
    );
    let switches = journal_events(&gw, "operator.maintenance").await;
    assert_eq!(switches.len(), 2, "{switches:?}");
    for (actor, leaf) in &switches {
        assert_eq!(actor, OPERATOR.0, "{leaf}");
        assert!(leaf.contains("dashboard"), "{leaf}");
    }
    b.assert_no_problems(OP, &[]).await;

    // Logging out ends the session: the next page is the login form again.
    let at = b.follow(OP, "#logout").await;
    assert!(at.at.starts_with("/ui/login"), "{at:?}");
    let at = b.goto(OP, "/ui/maintenance").await;
    assert!(at.at.starts_with("/ui/login"), "{at:?}");
    b.close().await;
    gw.stop().await;
}

#[tokio::test]
async fn the_auditor_finds_a_card_sees_its_proof_and_is_kept_off_operator_pages() {
    let Some((gw, mut b)) = start("auditor").await else {
        return;
    };
    let sent = gw
        .consumer()
        .call(client::send_request(&gw.birth_request("audited")))
        .await;
    expect_ok(&sent);
    let gid = sent.global_id().expect("global ID");
    // A second card, so that the search has something to leave out.
    expect_ok(
        &gw.consumer()
            .call(client::send_request(&gw.birth_request("other")))
            .await,
    );
    gw.state.journal.checkpoint().await.expect("checkpoint");

    const AU: &str = "auditor";
    b.open(AU, "en-US").await;
    let at = b.login(AU, AUDITOR.0, AUDITOR.1).await;
    assert_eq!(at.status, 200, "{at:?}");
    assert!(at.at.starts_with("/ui/journal"), "{at:?}");
    assert_eq!(
        b.attr(AU, "#result-count", "data-count").await.as_deref(),
        Some("2")
    );
    b.fill(AU, "#search-global_id", &gid).await;
    let at = b.follow(AU, "#search-submit").await;
    assert_eq!(at.status, 200);
    assert!(at.at.contains(&format!("global_id={gid}")), "{at:?}");
    assert_eq!(
        b.attr(AU, "#result-count", "data-count").await.as_deref(),
        Some("1")
    );
    b.screenshot(AU, "01-search").await;

    let at = b.follow(AU, &format!("tr[data-card=\"{gid}\"] a")).await;
    assert_eq!(at.status, 200, "{at:?}");
    assert!(at.at.starts_with(&format!("/ui/cards/{gid}")), "{at:?}");
    let events = b.count(AU, "#events tr[data-seq]").await;
    assert!(events >= 1);
    assert_eq!(b.count(AU, "[data-proof=verified]").await, events);
    assert_eq!(b.count(AU, "[data-proof=failed]").await, 0);
    assert_eq!(b.count(AU, "[data-proof=pending]").await, 0);
    assert!(b.visible(AU, "[data-proof=verified]").await);
    b.screenshot(AU, "02-card-proof").await;

    let at = b.follow(AU, "[data-test=nav-checkpoints]").await;
    assert_eq!(at.status, 200, "{at:?}");
    assert_eq!(b.count(AU, "#verification [data-verified=ok]").await, 1);
    b.screenshot(AU, "03-checkpoints").await;
    b.assert_no_problems(AU, &[]).await;

    // Operator pages answer 403 to an auditor, with the reason on the page.
    for path in [
        "/ui",
        "/ui/systems/ZAGS_IS",
        "/ui/maintenance",
        "/ui/registry",
    ] {
        let at = b.goto(AU, &format!("{path}?lang=en")).await;
        assert_eq!(at.status, 403, "{path}: {at:?}");
        assert!(b.visible(AU, "[data-test=forbidden]").await, "{path}");
        assert_eq!(b.count(AU, "#maintenance-form").await, 0);
    }
    b.screenshot(AU, "04-operator-page-refused").await;
    b.assert_no_problems(AU, &[403]).await;
    // The views are journaled with the auditor's name.
    let queries: Vec<String> = journal_events(&gw, "auditor.query")
        .await
        .into_iter()
        .map(|(_, leaf)| leaf)
        .filter(|leaf| leaf.contains(AUDITOR.0))
        .collect();
    for q in ["ui.cards", "ui.card", "ui.checkpoints"] {
        assert!(
            queries
                .iter()
                .any(|leaf| leaf.contains(&format!("\"{q}\""))),
            "{q} not journaled"
        );
    }
    b.close().await;
    gw.stop().await;
}

#[tokio::test]
async fn a_participant_cannot_log_in() {
    let Some((gw, mut b)) = start("participant").await else {
        return;
    };
    const P: &str = "participant";
    b.open(P, "ru-RU").await;
    // Russian by default for a Russian browser.
    let at = b.goto(P, "/ui/login").await;
    assert_eq!(at.status, 200);
    let form = b.text(P, "#login-form").await;
    assert!(form.contains("Пароль"), "{form}");
    // An agency's system has a certificate, not a dashboard account: whatever it tries,
    // its name does not open the dashboard.
    for (user, password) in [
        ("USZN_IS", "USZN_IS"),
        ("ZAGS_IS", "provider-is"),
        ("consumer-is", OPERATOR.1),
    ] {
        b.goto(P, "/ui/login").await;
        b.fill(P, "#user", user).await;
        b.fill(P, "#password", password).await;
        let at = b.follow(P, "#login-submit").await;
        assert_eq!(at.status, 401, "{user}: {at:?}");
        assert!(at.at.starts_with("/ui/login"), "{at:?}");
        assert!(b.visible(P, "#login-error").await);
        let cookies = b.cookies(P).await;
        assert!(
            !cookies
                .iter()
                .any(|c| c["name"] == json!("mezhved_session")),
            "{cookies:?}"
        );
    }
    b.screenshot(P, "01-login-refused").await;
    for path in ["/ui", "/ui/journal", "/ui/maintenance"] {
        let at = b.goto(P, path).await;
        assert!(at.at.starts_with("/ui/login"), "{path}: {at:?}");
    }
    b.assert_no_problems(P, &[401]).await;
    b.close().await;
    gw.stop().await;
}
