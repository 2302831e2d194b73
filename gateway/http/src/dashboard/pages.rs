//! The dashboard's pages: each reads through the same functions as the REST API
//! (monitoring_api, journal_api, report_api) and renders escaped HTML.

use super::auth::{self, Role, Session};
use super::i18n::{t, Lang};
use super::{field, form, html, lang_of, read_form, require, secure, Ui};
use crate::journal_api::{self, Auditor};
use crate::monitoring_api::{self, time, SystemHealth};
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use mezhved_core::monitoring::{Finding, Light, Maintenance};
use mezhved_journal::merkle;
use mezhved_store::journal::{hex, uuid_text};
use serde_json::{json, Value};
use std::fmt::Write;
use std::sync::Arc;

/// HTML-escapes text (element content and quoted attribute values): the report's.
pub(crate) use crate::report_api::esc;

/// Percent-encodes a path segment or query value.
pub fn url(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

const CSS: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#222}\
header{background:#1f3b5a;color:#fff;padding:.5em 1em;display:flex;gap:1em;align-items:center;flex-wrap:wrap}\
header a{color:#fff}nav{display:flex;gap:.8em;flex-wrap:wrap}main{padding:1em}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}\
.light{display:inline-block;padding:0 .5em;border-radius:.6em;color:#fff;font-weight:bold}\
.green{background:#2e7d32}.yellow{background:#f9a825;color:#222}.red{background:#c62828}\
.error{color:#c62828;font-weight:bold}.ok{color:#2e7d32;font-weight:bold}\
code{word-break:break-all}form.inline{display:inline}\
table.kv{margin:0}table.kv th{font-weight:normal;color:#555}";

/// A whole page: header with navigation for the session's role, the language switch,
/// and `body`. `refresh`: seconds of a `<meta http-equiv=refresh>`.
pub fn layout(
    lang: Lang,
    nonce: &str,
    session: Option<&Session>,
    title: &str,
    path: &str,
    body: &str,
    refresh: Option<u32>,
) -> String {
    let mut nav = String::new();
    if let Some(s) = session {
        let links: &[(&str, &'static str)] = match s.role {
            Role::Operator => &[
                ("/ui", "overview"),
                ("/ui/agencies", "agencies"),
                ("/ui/queues", "queues"),
                ("/ui/overdue", "overdue"),
                ("/ui/alerts", "alerts"),
                ("/ui/registry", "registry"),
                ("/ui/maintenance", "maintenance"),
            ],
            Role::Auditor => &[
                ("/ui/journal", "journal"),
                ("/ui/checkpoints", "checkpoints"),
                ("/ui/reports", "reports"),
            ],
        };
        nav.push_str("<nav>");
        for (href, key) in links {
            let _ = write!(
                nav,
                "<a href=\"{href}?lang={}\" data-test=\"nav-{key}\">{}</a>",
                lang.code(),
                esc(t(lang, key))
            );
        }
        let _ = write!(
            nav,
            "</nav><span data-test=\"user\">{}</span>\
             <form class=\"inline\" method=\"post\" action=\"/ui/logout\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <input type=\"hidden\" name=\"lang\" value=\"{}\">\
             <button type=\"submit\" id=\"logout\">{}</button></form>",
            esc(&s.user),
            esc(&s.csrf),
            lang.code(),
            esc(t(lang, "logout"))
        );
    }
    let other = lang.other();
    let switch_path = if path.is_empty() { "/ui/login" } else { path };
    // The refresh is marked `auto=1`: it does not count as the user's activity, so an
    // unattended console still logs out after `session_idle_seconds`.
    let refresh = refresh
        .map(|s| {
            format!(
                "<meta http-equiv=\"refresh\" content=\"{s};url={}?lang={}&amp;auto=1\">",
                esc(path),
                lang.code()
            )
        })
        .unwrap_or_default();
    format!(
        "<!DOCTYPE html>\n<html lang=\"{code}\"><head><meta charset=\"utf-8\">{refresh}\
         <link rel=\"icon\" href=\"/ui/icon.svg\" type=\"image/svg+xml\">\
         <title>{title} — {app}</title><style nonce=\"{nonce}\">{CSS}</style></head><body>\
         <header><strong>{app}</strong>{nav}\
         <a id=\"lang-switch\" href=\"{switch}?lang={other_code}\">{other_label}</a></header>\
         <main><h1 id=\"page-title\">{title}</h1>{body}</main></body></html>\n",
        code = lang.code(),
        title = esc(title),
        app = esc(t(lang, "title")),
        switch = esc(switch_path),
        other_code = other.code(),
        other_label = other.code().to_uppercase(),
    )
}

/// The login page.
pub fn login(lang: Lang, nonce: &str, csrf: &str, error: Option<&str>) -> String {
    let error = error
        .map(|e| format!("<p class=\"error\" id=\"login-error\">{}</p>", esc(e)))
        .unwrap_or_default();
    let body = format!(
        "{error}<form method=\"post\" action=\"/ui/login\" id=\"login-form\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <input type=\"hidden\" name=\"lang\" value=\"{code}\">\
         <p><label>{user} <input name=\"user\" id=\"user\" autocomplete=\"username\" required></label></p>\
         <p><label>{password} <input type=\"password\" name=\"password\" id=\"password\" \
         autocomplete=\"current-password\" required></label></p>\
         <p><button type=\"submit\" id=\"login-submit\">{login}</button></p></form>",
        csrf = esc(csrf),
        code = lang.code(),
        user = esc(t(lang, "user")),
        password = esc(t(lang, "password")),
        login = esc(t(lang, "login")),
    );
    layout(
        lang,
        nonce,
        None,
        t(lang, "login"),
        "/ui/login",
        &body,
        None,
    )
}

fn light(lang: Lang, l: Light) -> String {
    let class = l.english();
    let label = if lang == Lang::Ru { l.russian() } else { class };
    format!("<span class=\"light {class}\" data-light=\"{class}\">{label}</span>")
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map(|v| esc(&v.to_string())).unwrap_or_else(|| "—".into())
}

/// Renders an operator page (with its role checked).
struct Page {
    lang: Lang,
    session: Session,
    query: Vec<(String, String)>,
}

fn page(
    ui: &Ui,
    headers: &HeaderMap,
    query: Option<String>,
    role: Role,
) -> Result<Page, Box<Response>> {
    let query = form(query.as_deref().unwrap_or(""));
    let lang = lang_of(headers, &query);
    let activity = field(&query, "auto") != Some("1");
    let (_, session) = require(ui, headers, lang, role, activity)?;
    Ok(Page {
        lang,
        session,
        query,
    })
}

impl Page {
    fn render(&self, title: &str, path: &str, body: &str, refresh: Option<u32>) -> Response {
        let nonce = auth::random_token(16);
        let text = layout(
            self.lang,
            &nonce,
            Some(&self.session),
            title,
            path,
            body,
            refresh,
        );
        html(StatusCode::OK, &nonce, text)
    }

    fn error(&self, status: StatusCode, message: &str) -> Response {
        let nonce = auth::random_token(16);
        let body = format!(
            "<p class=\"error\" data-test=\"error\">{}</p>",
            esc(message)
        );
        let text = layout(
            self.lang,
            &nonce,
            Some(&self.session),
            t(self.lang, "not_found"),
            "",
            &body,
            None,
        );
        html(status, &nonce, text)
    }

    fn l(&self, key: &'static str) -> String {
        esc(t(self.lang, key))
    }

    fn link(&self, path: &str) -> String {
        format!("{path}?lang={}", self.lang.code())
    }

    /// The deciding rule of a light in the page's language, escaped (the REST answers and
    /// alerts carry the English one).
    fn rule(&self, state: Light, english: &str, findings: &[(Light, Finding)]) -> String {
        match self.lang {
            Lang::En => esc(english),
            Lang::Ru => esc(&mezhved_core::monitoring::rule_russian(state, findings)),
        }
    }

    /// The rules that fired besides the deciding one, in the page's language, escaped.
    fn other_reasons(&self, findings: &[(Light, Finding)]) -> Vec<String> {
        findings
            .iter()
            .skip(1)
            .map(|(l, f)| match self.lang {
                Lang::En => esc(&format!("{}: {}", l.english(), f.english())),
                Lang::Ru => esc(&format!("{}: {}", l.russian(), f.russian())),
            })
            .collect()
    }
}

fn problem_message(p: &crate::rest::Problem) -> String {
    format!("{}: {}", p.title, p.detail)
}

// --- operator pages ---

pub async fn overview(
    State(ui): State<Arc<Ui>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let p = match page(&ui, &headers, q, Role::Operator) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let o = match monitoring_api::overview(&ui.app, ui.now_ms()).await {
        Ok(o) => o,
        Err(e) => return p.error(e.status, &problem_message(&e)),
    };
    let m = ui.app.exchange.monitor().maintenance_setting();
    let mut b = String::new();
    if m.as_ref().is_some_and(|m| m.enabled) {
        let _ = write!(
            b,
            "<p class=\"error\" id=\"maintenance-banner\">{}: {}</p>",
            p.l("maintenance"),
            esc(&m.map(|m| m.reason).unwrap_or_default())
        );
    }
    // Traffic and health of the whole region at a glance, above the per-system table.
    let sum = |f: fn(&monitoring_api::SystemHealth) -> u64| o.systems.iter().map(f).sum::<u64>();
    let lights = |l: Light| o.systems.iter().filter(|s| s.state == l).count();
    let _ = write!(
        b,
        "<p>{}: <span id=\"overview-at\">{}</span></p>\
         <table id=\"traffic\" data-calls=\"{calls}\" data-faults=\"{faults}\" \
         data-rejections=\"{rejections}\" data-pending=\"{pending}\" data-overdue=\"{overdue}\">\
         <tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>\
         <tr><td>{}</td><td>{calls}</td><td>{faults}</td><td>{rejections}</td><td>{pending}</td>\
         <td>{overdue}</td><td id=\"lights\" data-green=\"{g}\" data-yellow=\"{y}\" data-red=\"{r}\">\
         {lg} {g} · {ly} {y} · {lr} {r}</td></tr></table>",
        p.l("at"),
        esc(&o.at),
        p.l("traffic"),
        p.l("calls"),
        p.l("errors"),
        p.l("rejections"),
        p.l("waiting"),
        p.l("overdue"),
        p.l("lights"),
        format_args!("{} {}", p.l("window_min"), o.window_seconds / 60),
        calls = sum(|s| s.calls),
        faults = sum(|s| s.faults),
        rejections = sum(|s| s.rejections),
        pending = sum(|s| s.pending),
        overdue = sum(|s| s.overdue),
        g = lights(Light::Green),
        y = lights(Light::Yellow),
        r = lights(Light::Red),
        lg = light(p.lang, Light::Green),
        ly = light(p.lang, Light::Yellow),
        lr = light(p.lang, Light::Red),
    );
    let _ = write!(
        b,
        "<table id=\"systems\"><tr><th>{}</th><th>{}</th>\
         <th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
        p.l("system"),
        p.l("participant"),
        p.l("state"),
        p.l("rule"),
        p.l("queue"),
        p.l("last_poll"),
        p.l("calls"),
        p.l("errors"),
        p.l("overdue"),
    );
    for s in &o.systems {
        let _ = write!(
            b,
            "<tr data-system=\"{m}\" data-state=\"{state}\"><td><a href=\"{href}\">{m}</a> {name}</td>\
             <td>{part}</td><td>{light}</td><td>{rule}</td><td>{pending}</td><td>{poll}</td>\
             <td>{calls}</td><td>{faults}</td><td>{overdue}</td></tr>",
            m = esc(&s.mnemonic),
            state = light_class(s.state),
            href = esc(&p.link(&format!("/ui/systems/{}", url(&s.mnemonic)))),
            name = esc(&s.name),
            part = esc(&s.participant),
            light = light(p.lang, s.state),
            rule = p.rule(s.state, &s.rule, &s.findings),
            pending = s.pending,
            poll = opt(s.last_poll_at.as_deref()),
            calls = s.calls,
            faults = s.faults,
            overdue = s.overdue,
        );
    }
    b.push_str("</table>");
    p.render(t(p.lang, "overview"), "/ui", &b, Some(10))
}

/// A card's JSON as nested tables an auditor can read: objects as key/value rows (the
/// card's nine items, the legal basis, the official), arrays as numbered rows, values as
/// code. Everything is escaped.
fn value_html(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) if !map.is_empty() => {
            out.push_str("<table class=\"kv\">");
            for (k, v) in map {
                let _ = write!(out, "<tr><th>{}</th><td>", esc(k));
                value_html(v, out);
                out.push_str("</td></tr>");
            }
            out.push_str("</table>");
        }
        Value::Array(items) if !items.is_empty() => {
            out.push_str("<table class=\"kv\">");
            for (i, v) in items.iter().enumerate() {
                let _ = write!(out, "<tr><th>{}</th><td>", i + 1);
                value_html(v, out);
                out.push_str("</td></tr>");
            }
            out.push_str("</table>");
        }
        Value::String(s) => {
            let _ = write!(out, "<code>{}</code>", esc(s));
        }
        Value::Null => out.push('—'),
        other => {
            let _ = write!(out, "<code>{}</code>", esc(&other.to_string()));
        }
    }
}

fn light_class(l: Light) -> &'static str {
    l.english()
}

pub async fn system(
    State(ui): State<Arc<Ui>>,
    Path(mnemonic): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let p = match page(&ui, &headers, q, Role::Operator) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let o = match monitoring_api::overview(&ui.app, ui.now_ms()).await {
        Ok(o) => o,
        Err(e) => return p.error(e.status, &problem_message(&e)),
    };
    let Some(s) = o.systems.iter().find(|s| s.mnemonic == mnemonic) else {
        return p.error(StatusCode::NOT_FOUND, &mnemonic);
    };
    let b = system_body(&p, s);
    p.render(
        &format!("{} {}", t(p.lang, "system"), s.mnemonic),
        &format!("/ui/systems/{}", url(&s.mnemonic)),
        &b,
        Some(10),
    )
}

fn system_body(p: &Page, s: &SystemHealth) -> String {
    let mut b = format!("<table id=\"system\" data-system=\"{}\">", esc(&s.mnemonic));
    let rows: Vec<(&'static str, String)> = vec![
        ("name", esc(&s.name)),
        ("participant", esc(&s.participant)),
        (
            "state",
            format!(
                "<span id=\"system-state\" data-state=\"{}\">{}</span>",
                light_class(s.state),
                light(p.lang, s.state)
            ),
        ),
        ("rule", {
            let others = p.other_reasons(&s.findings);
            format!(
                "<span id=\"system-rule\">{}</span>{}",
                p.rule(s.state, &s.rule, &s.findings),
                if others.is_empty() {
                    String::new()
                } else {
                    format!(
                        "<ul id=\"system-reasons\"><li>{}</li></ul>",
                        others.join("</li><li>")
                    )
                }
            )
        }),
        ("queue", s.pending.to_string()),
        ("oldest", opt(s.oldest_pending_at.as_deref())),
        ("last_poll", opt(s.last_poll_at.as_deref())),
        ("last_success", opt(s.last_success_at.as_deref())),
        ("calls", s.calls.to_string()),
        ("errors", s.faults.to_string()),
        ("rejections", s.rejections.to_string()),
        ("p50", opt(s.response_time.p50_ms)),
        ("p95", opt(s.response_time.p95_ms)),
        ("overdue", s.overdue.to_string()),
        ("certificate_days", opt(s.certificate_days_left)),
    ];
    for (k, v) in rows {
        let _ = write!(b, "<tr><th>{}</th><td>{v}</td></tr>", p.l(k));
    }
    let _ = write!(
        b,
        "</table><h2>{}</h2><table id=\"kinds\"><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th>\
         <th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
        p.l("kinds"),
        p.l("kind"),
        p.l("type"),
        p.l("state"),
        p.l("rule"),
        p.l("last_poll"),
        p.l("queue"),
        p.l("overdue"),
        p.l("p95"),
    );
    for k in &s.kinds {
        let _ = write!(
            b,
            "<tr data-kind=\"{}\" data-state=\"{}\"><td>{} <code>{{{}}}{}</code></td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&k.root_element),
            light_class(k.state),
            esc(&k.name),
            esc(&k.namespace),
            esc(&k.root_element),
            p.l(if k.role == "provider" {
                "provider"
            } else {
                "consumer"
            }),
            light(p.lang, k.state),
            p.rule(k.state, &k.rule, &k.findings),
            opt(k.last_drain_at.as_deref()),
            k.pending,
            k.overdue,
            opt(k.response_time.p95_ms),
        );
    }
    b.push_str("</table>");
    b
}

pub async fn agencies(
    State(ui): State<Arc<Ui>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let p = match page(&ui, &headers, q, Role::Operator) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let o = match monitoring_api::overview(&ui.app, ui.now_ms()).await {
        Ok(o) => o,
        Err(e) => return p.error(e.status, &problem_message(&e)),
    };
    let registry = ui.app.registry.get();
    let mut b = format!(
        "<table id=\"agencies\"><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
        p.l("agency"),
        p.l("state"),
        p.l("systems"),
        p.l("queue"),
        p.l("overdue"),
    );
    for a in &registry.data.participants {
        let systems: Vec<&SystemHealth> = o
            .systems
            .iter()
            .filter(|s| s.participant == a.mnemonic)
            .collect();
        let worst = systems
            .iter()
            .map(|s| s.state)
            .max()
            .unwrap_or(Light::Green);
        let links: Vec<String> = systems
            .iter()
            .map(|s| {
                format!(
                    "<a href=\"{}\">{}</a> {}",
                    esc(&p.link(&format!("/ui/systems/{}", url(&s.mnemonic)))),
                    esc(&s.mnemonic),
                    light(p.lang, s.state)
                )
            })
            .collect();
        let _ = write!(
            b,
            "<tr data-agency=\"{m}\"><td><a href=\"{href}\">{m}</a> {name}</td><td>{light}</td><td>{links}</td><td>{q}</td><td>{o}</td></tr>",
            m = esc(&a.mnemonic),
            href = esc(&p.link(&format!("/ui/agencies/{}", url(&a.mnemonic)))),
            name = esc(&a.name),
            light = light(p.lang, worst),
            links = links.join("<br>"),
            q = systems.iter().map(|s| s.pending).sum::<u64>(),
            o = systems.iter().map(|s| s.overdue).sum::<u64>(),
        );
    }
    b.push_str("</table>");
    p.render(t(p.lang, "agencies"), "/ui/agencies", &b, None)
}

/// One participant: its systems with their lights and rules, the kinds of information
/// it provides with their state, what it may request, its open overdue requests (as
/// provider) and the alerts open on its systems.
pub async fn agency(
    State(ui): State<Arc<Ui>>,
    Path(mnemonic): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let p = match page(&ui, &headers, q, Role::Operator) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let registry = ui.app.registry.get();
    let Some(agency) = registry
        .data
        .participants
        .iter()
        .find(|a| a.mnemonic == mnemonic)
    else {
        return p.error(
            StatusCode::NOT_FOUND,
            &format!("{}: {mnemonic}", t(p.lang, "not_found")),
        );
    };
    let o = match monitoring_api::overview(&ui.app, ui.now_ms()).await {
        Ok(o) => o,
        Err(e) => return p.error(e.status, &problem_message(&e)),
    };
    let (overdue, alerts) = match (
        ui.app.store.overdue_requests(500).await,
        ui.app.store.active_alerts().await,
    ) {
        (Ok(o), Ok(a)) => (o, a),
        (Err(e), _) | (_, Err(e)) => {
            return p.error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string())
        }
    };
    let systems: Vec<&SystemHealth> = o
        .systems
        .iter()
        .filter(|s| s.participant == agency.mnemonic)
        .collect();
    let ours = |system: &str| systems.iter().any(|s| s.mnemonic == system);
    let worst = systems
        .iter()
        .map(|s| s.state)
        .max()
        .unwrap_or(Light::Green);
    let mut b = format!(
        "<p>{} <span id=\"agency-state\" data-state=\"{}\">{}</span></p>\
         <h2>{}</h2><table id=\"agency-systems\"><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th>\
         <th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
        esc(&agency.name),
        light_class(worst),
        light(p.lang, worst),
        p.l("systems"),
        p.l("system"),
        p.l("state"),
        p.l("rule"),
        p.l("queue"),
        p.l("last_poll"),
        p.l("errors"),
        p.l("overdue"),
        p.l("certificate_days"),
    );
    for s in &systems {
        let _ = write!(
            b,
            "<tr data-system=\"{m}\" data-state=\"{state}\"><td><a href=\"{href}\">{m}</a> {name}</td>\
             <td>{light}</td><td>{rule}</td><td>{pending}</td><td>{poll}</td><td>{faults}</td>\
             <td>{overdue}</td><td>{cert}</td></tr>",
            m = esc(&s.mnemonic),
            state = light_class(s.state),
            href = esc(&p.link(&format!("/ui/systems/{}", url(&s.mnemonic)))),
            name = esc(&s.name),
            light = light(p.lang, s.state),
            rule = p.rule(s.state, &s.rule, &s.findings),
            pending = s.pending,
            poll = opt(s.last_poll_at.as_deref()),
            faults = s.faults,
            overdue = s.overdue,
            cert = opt(s.certificate_days_left),
        );
    }
    let _ = write!(
        b,
        "</table><h2>{}</h2><table id=\"agency-kinds\"><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
        p.l("kinds"),
        p.l("kind"),
        p.l("system"),
        p.l("state"),
        p.l("p95"),
    );
    for s in &systems {
        for k in s.kinds.iter().filter(|k| k.role == "provider") {
            let _ = write!(
                b,
                "<tr data-kind=\"{}\"><td>{} <code>{{{}}}{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&k.root_element),
                esc(&k.name),
                esc(&k.namespace),
                esc(&k.root_element),
                esc(&s.mnemonic),
                light(p.lang, k.state),
                opt(k.response_time.p95_ms),
            );
        }
    }
    let granted: Vec<String> = registry
        .data
        .grants
        .iter()
        .filter(|g| ours(&g.consumer_system))
        .map(|g| {
            format!(
                "<li>{}: <code>{{{}}}{}</code></li>",
                esc(&g.consumer_system),
                esc(&g.namespace),
                esc(&g.root_element)
            )
        })
        .collect();
    let _ = write!(
        b,
        "</table><h2>{}</h2><ul id=\"agency-grants\">{}</ul>",
        p.l("grants"),
        granted.join("")
    );
    let late: Vec<_> = overdue
        .iter()
        .filter(|r| ours(&r.recipient_system))
        .collect();
    let _ = write!(
        b,
        "<h2>{}</h2><p id=\"agency-overdue\" data-count=\"{n}\">{n}</p><table><tr><th>{}</th><th>{}</th>\
         <th>{}</th><th>{}</th></tr>",
        p.l("overdue"),
        p.l("global_id"),
        p.l("consumer"),
        p.l("kind"),
        p.l("due"),
        n = late.len(),
    );
    for r in &late {
        let _ = write!(
            b,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&r.global_id),
            esc(&r.sender_system),
            esc(&r.kind_root),
            opt(r.due_at_ms.map(time)),
        );
    }
    let open: Vec<_> = alerts.iter().filter(|a| ours(&a.subject)).collect();
    let _ = write!(
        b,
        "</table><h2>{}</h2>{}",
        p.l("alerts"),
        alerts_table(&p, "agency-alerts", &open)
    );
    p.render(
        &format!("{} {}", t(p.lang, "agency"), agency.mnemonic),
        &format!("/ui/agencies/{}", url(&agency.mnemonic)),
        &b,
        Some(10),
    )
}

/// Every queue with messages waiting: per recipient system and queue (requests,
/// responses, statuses), how many and since when — the same figures `/metrics` exports.
pub async fn queues(
    State(ui): State<Arc<Ui>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let p = match page(&ui, &headers, q, Role::Operator) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let snap = match ui.app.store.metrics_snapshot().await {
        Ok(s) => s,
        Err(e) => return p.error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    let now = ui.now_ms();
    let total: u64 = snap.queues.iter().map(|q| q.pending).sum();
    let mut b = format!(
        "<p>{}: <span id=\"queues-total\" data-pending=\"{total}\">{total}</span></p>\
         <table id=\"queues\"><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
        p.l("waiting"),
        p.l("system"),
        p.l("queue"),
        p.l("waiting"),
        p.l("oldest"),
        p.l("age"),
    );
    for q in &snap.queues {
        let age = q.oldest_received_at_ms.map(|at| match p.lang {
            Lang::En => mezhved_core::monitoring::human_duration(now - at),
            Lang::Ru => mezhved_core::monitoring::human_duration_ru(now - at),
        });
        let _ = write!(
            b,
            "<tr data-queue=\"{m}/{queue}\" data-pending=\"{n}\"><td><a href=\"{href}\">{m}</a></td>\
             <td>{queue}</td><td>{n}</td><td>{oldest}</td><td>{age}</td></tr>",
            m = esc(&q.recipient_system),
            href = esc(&p.link(&format!("/ui/systems/{}", url(&q.recipient_system)))),
            queue = q.queue.name(),
            n = q.pending,
            oldest = opt(q.oldest_received_at_ms.map(time)),
            age = opt(age.as_deref()),
        );
    }
    b.push_str("</table>");
    p.render(t(p.lang, "queues"), "/ui/queues", &b, Some(10))
}

pub async fn overdue(
    State(ui): State<Arc<Ui>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let p = match page(&ui, &headers, q, Role::Operator) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let rows = match ui.app.store.overdue_requests(500).await {
        Ok(r) => r,
        Err(e) => return p.error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    let mut b = format!(
        "<p id=\"overdue-count\">{}</p><table id=\"overdue\"><tr><th>{}</th><th>{}</th><th>{}</th>\
         <th>{}</th><th>{}</th><th>{}</th></tr>",
        rows.len(),
        p.l("global_id"),
        p.l("consumer"),
        p.l("provider"),
        p.l("kind"),
        p.l("received"),
        p.l("due"),
    );
    for r in &rows {
        let _ = write!(
            b,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&r.global_id),
            esc(&r.sender_system),
            esc(&r.recipient_system),
            esc(&r.kind_root),
            esc(&time(r.received_at_ms)),
            opt(r.due_at_ms.map(time)),
        );
    }
    b.push_str("</table>");
    p.render(t(p.lang, "overdue"), "/ui/overdue", &b, None)
}

pub async fn alerts(
    State(ui): State<Arc<Ui>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let p = match page(&ui, &headers, q, Role::Operator) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let rows = match ui.app.store.active_alerts().await {
        Ok(r) => r,
        Err(e) => return p.error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    let all: Vec<_> = rows.iter().collect();
    let b = alerts_table(&p, "alerts", &all);
    p.render(t(p.lang, "alerts"), "/ui/alerts", &b, None)
}

/// A table of open alerts (the alerts page, an agency's page).
fn alerts_table(p: &Page, id: &str, rows: &[&mezhved_store::ActiveAlert]) -> String {
    let mut b = format!(
        "<table id=\"{id}\"><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
        p.l("rule"),
        p.l("subject"),
        p.l("opened"),
        p.l("value"),
    );
    for a in rows {
        let _ = write!(
            b,
            "<tr data-alert=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{} {}</td></tr>",
            esc(&a.rule),
            esc(&a.rule),
            esc(&a.subject),
            esc(&time(a.opened_at_ms)),
            esc(&a.value),
            esc(&a.detail),
        );
    }
    b.push_str("</table>");
    b
}

pub async fn registry(
    State(ui): State<Arc<Ui>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let p = match page(&ui, &headers, q, Role::Operator) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let r = ui.app.registry.get();
    let d = &r.data;
    let mut b = format!(
        "<p>version <span id=\"registry-version\">{}</span></p>",
        d.version
    );
    let _ = write!(
        b,
        "<h2>{}</h2><table id=\"participants\">",
        p.l("participants")
    );
    for x in &d.participants {
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td></tr>",
            esc(&x.mnemonic),
            esc(&x.name)
        );
    }
    let _ = write!(
        b,
        "</table><h2>{}</h2><table id=\"registry-systems\">",
        p.l("systems")
    );
    for x in &d.systems {
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&x.mnemonic),
            esc(&x.participant),
            esc(&x.name),
            opt(x.push_url.as_deref())
        );
    }
    let _ = write!(
        b,
        "</table><h2>{}</h2><table id=\"registry-kinds\">",
        p.l("kinds")
    );
    for x in &d.kinds {
        let _ = write!(
            b,
            "<tr><td>{}</td><td><code>{{{}}}{}</code></td><td>{}</td></tr>",
            esc(&x.name),
            esc(&x.namespace),
            esc(&x.root_element),
            esc(&x.provider_system)
        );
    }
    let _ = write!(
        b,
        "</table><h2>{}</h2><table id=\"registry-grants\">",
        p.l("grants")
    );
    for x in &d.grants {
        let _ = write!(
            b,
            "<tr><td>{}</td><td><code>{{{}}}{}</code></td></tr>",
            esc(&x.consumer_system),
            esc(&x.namespace),
            esc(&x.root_element)
        );
    }
    b.push_str("</table>");
    p.render(t(p.lang, "registry"), "/ui/registry", &b, None)
}

fn maintenance_body(p: &Page, m: Option<&Maintenance>, error: Option<&str>) -> String {
    let enabled = m.is_some_and(|m| m.enabled);
    let mut b = String::new();
    if let Some(e) = error {
        let _ = write!(
            b,
            "<p class=\"error\" id=\"maintenance-error\">{}</p>",
            esc(e)
        );
    }
    let _ = write!(
        b,
        "<p>{}: <strong id=\"maintenance-state\" data-enabled=\"{enabled}\">{}</strong> {}</p>\
         <form method=\"post\" action=\"/ui/maintenance\" id=\"maintenance-form\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <input type=\"hidden\" name=\"lang\" value=\"{code}\">\
         <input type=\"hidden\" name=\"enabled\" value=\"{next}\">",
        p.l("state"),
        p.l(if enabled { "enabled" } else { "disabled" }),
        esc(&m.map(|m| m.reason.clone()).unwrap_or_default()),
        csrf = esc(&p.session.csrf),
        code = p.lang.code(),
        next = !enabled,
    );
    if !enabled {
        let _ = write!(
            b,
            "<p><label>{} <input name=\"reason\" id=\"maintenance-reason\" maxlength=\"500\" required></label></p>",
            p.l("reason")
        );
    }
    let _ = write!(
        b,
        "<button type=\"submit\" id=\"maintenance-toggle\">{}</button></form>",
        p.l(if enabled { "switch_off" } else { "switch_on" })
    );
    b
}

pub async fn maintenance(
    State(ui): State<Arc<Ui>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let p = match page(&ui, &headers, q, Role::Operator) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let m = ui.app.exchange.monitor().maintenance_setting();
    let b = maintenance_body(&p, m.as_ref(), None);
    p.render(t(p.lang, "maintenance"), "/ui/maintenance", &b, None)
}

/// `POST /ui/maintenance`: the same switch as `PUT /api/v1/maintenance` (same checks, same
/// stored setting, same `operator.maintenance` event), with the user as the event's actor.
pub async fn post_maintenance(State(ui): State<Arc<Ui>>, request: Request) -> Response {
    let headers = request.headers().clone();
    let query = form(request.uri().query().unwrap_or(""));
    let lang = lang_of(&headers, &query);
    let (_, session) = match require(&ui, &headers, lang, Role::Operator, true) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let Some(f) = read_form(request).await else {
        return super::csrf_refused(lang);
    };
    if !auth::csrf_ok(&session, field(&f, "csrf")) {
        return super::csrf_refused(lang);
    }
    let lang = super::i18n::Lang::pick(field(&f, "lang"), None);
    let p = Page {
        lang,
        session,
        query,
    };
    let enabled = field(&f, "enabled") == Some("true");
    let reason = field(&f, "reason").unwrap_or("");
    let user = p.session.user.clone();
    match monitoring_api::switch_maintenance(&ui.app, enabled, reason, &user, Some("dashboard"))
        .await
    {
        Ok(_) => {}
        Err(monitoring_api::SwitchError::Invalid(e)) => {
            let m = ui.app.exchange.monitor().maintenance_setting();
            let b = maintenance_body(&p, m.as_ref(), Some(e));
            let nonce = auth::random_token(16);
            let text = layout(
                lang,
                &nonce,
                Some(&p.session),
                t(lang, "maintenance"),
                "/ui/maintenance",
                &b,
                None,
            );
            return html(StatusCode::UNPROCESSABLE_ENTITY, &nonce, text);
        }
        Err(monitoring_api::SwitchError::Store(e)) => {
            return p.error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string())
        }
        Err(monitoring_api::SwitchError::Internal(e)) => {
            return p.error(StatusCode::INTERNAL_SERVER_ERROR, &e)
        }
    }
    super::redirect(&p.link("/ui/maintenance"), &[])
}

// --- auditor pages ---

/// Whether `cp`'s note carries a valid signature of the gateway's journal key over this
/// size and root (what an auditor would check with `mezhved journal verify`).
fn checkpoint_signed(ui: &Ui, cp: &mezhved_store::StoredCheckpoint) -> Result<(), String> {
    let verifier = ui.app.journal.verifier().map_err(|e| e.to_string())?;
    let opened = verifier.verify(&cp.note).map_err(|e| e.to_string())?;
    if opened.size == cp.size && opened.root == cp.root {
        Ok(())
    } else {
        Err("the signed note names another size or root".into())
    }
}

/// Journals an auditor view (as the REST API does); on failure the page is not shown.
async fn record(
    ui: &Ui,
    p: &Page,
    query: &str,
    parameters: Value,
    results: Option<u64>,
) -> Result<(), Box<Response>> {
    journal_api::record(
        &ui.app,
        &Auditor(p.session.user.clone()),
        &format!("ui.{query}"),
        parameters,
        results,
    )
    .await
    .map_err(|e| Box::new(p.error(e.status, &problem_message(&e))))
}

const SEARCH_FIELDS: &[(&str, &str)] = &[
    ("from", "from"),
    ("to", "to"),
    ("agency", "agency"),
    ("system", "system"),
    ("kind_root", "kind"),
    ("status", "status"),
    ("global_id", "global_id"),
];

pub async fn journal(
    State(ui): State<Arc<Ui>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let p = match page(&ui, &headers, q, Role::Auditor) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let get = |k: &str| {
        field(&p.query, k)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let search = journal_api::Search {
        from: get("from"),
        to: get("to"),
        agency: get("agency"),
        system: get("system"),
        kind_namespace: get("kind_namespace"),
        kind_root: get("kind_root"),
        service: get("service"),
        legal_act: get("legal_act"),
        status: get("status"),
        message_type: get("message_type"),
        overdue: get("overdue").map(|v| v == "true" || v == "on"),
        global_id: get("global_id"),
        sender_message_id: get("sender_message_id"),
        registration_number: get("registration_number"),
        subject_hash: get("subject_hash"),
        after: get("after"),
        limit: get("limit").and_then(|l| l.parse().ok()).or(Some(100)),
        ..journal_api::Search::default()
    };
    let mut b = format!(
        "<form method=\"get\" action=\"/ui/journal\" id=\"search-form\">\
         <input type=\"hidden\" name=\"lang\" value=\"{}\">",
        p.lang.code()
    );
    for (name, label) in SEARCH_FIELDS {
        let label: &'static str = match *label {
            "from" => "from",
            "to" => "to",
            "agency" => "agency",
            "system" => "system",
            "kind" => "kind",
            "status" => "status",
            _ => "global_id",
        };
        let _ = write!(
            b,
            "<label>{} <input name=\"{name}\" id=\"search-{name}\" value=\"{}\"></label> ",
            p.l(label),
            esc(&get(name).unwrap_or_default())
        );
    }
    let _ = write!(
        b,
        "<label><input type=\"checkbox\" name=\"overdue\" value=\"true\" id=\"search-overdue\"{}> {}</label> \
         <button type=\"submit\" id=\"search-submit\">{}</button></form>",
        if search.overdue == Some(true) { " checked" } else { "" },
        p.l("overdue"),
        p.l("search"),
    );
    let (filter, recorded) = match search.to_filter(&ui.app.subject_key, ui.now_ms()) {
        Ok(x) => x,
        Err(e) => return p.error(e.status, &problem_message(&e)),
    };
    let cards = match ui.app.store.query_cards(filter).await {
        Ok(c) => c,
        Err(e) => return p.error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    if let Err(r) = record(&ui, &p, "cards", recorded, Some(cards.len() as u64)).await {
        return *r;
    }
    let _ = write!(
        b,
        "<p id=\"result-count\" data-count=\"{n}\">{n}</p><table id=\"cards\"><tr><th>{}</th><th>{}</th>\
         <th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
        p.l("global_id"),
        p.l("received"),
        p.l("consumer"),
        p.l("provider"),
        p.l("kind"),
        p.l("status"),
        n = cards.len(),
    );
    for c in &cards {
        let gid = uuid_text(&c.global_id);
        let _ = write!(
            b,
            "<tr data-card=\"{g}\"><td><a href=\"{href}\">{g}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&time(c.received_at_ms)),
            esc(&c.sender_system),
            esc(&c.recipient_system),
            esc(&c.kind_root),
            esc(&c.status.to_string()),
            g = esc(&gid),
            href = esc(&p.link(&format!("/ui/cards/{gid}"))),
        );
    }
    b.push_str("</table>");
    p.render(t(p.lang, "journal"), "/ui/journal", &b, None)
}

pub async fn card(
    State(ui): State<Arc<Ui>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let p = match page(&ui, &headers, q, Role::Auditor) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let Ok(uuid) = uuid::Uuid::parse_str(id.trim()) else {
        return p.error(StatusCode::BAD_REQUEST, "global_id: not a UUID");
    };
    let gid = *uuid.as_bytes();
    let store = &ui.app.store;
    let (card, events, cp) = match tokio::try_join!(
        store.card(gid),
        store.journal_events_of(gid),
        store.latest_checkpoint()
    ) {
        Ok(x) => x,
        Err(e) => return p.error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    if let Err(r) = record(
        &ui,
        &p,
        "card",
        json!({ "global_id": id }),
        Some(card.is_some() as u64),
    )
    .await
    {
        return *r;
    }
    let Some(card) = card else {
        return p.error(
            StatusCode::NOT_FOUND,
            &format!("{}: {id}", t(p.lang, "not_found")),
        );
    };
    let mut b = String::from("<table id=\"card\">");
    if let Value::Object(map) = journal_api::card_json(&card) {
        for (k, v) in &map {
            let _ = write!(b, "<tr data-field=\"{k}\"><th>{k}</th><td>", k = esc(k));
            value_html(v, &mut b);
            b.push_str("</td></tr>");
        }
    }
    let _ = write!(
        b,
        "</table><h2>{}</h2><table id=\"events\"><tr><th>seq</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
        p.l("events"),
        p.l("at"),
        p.l("type"),
        p.l("actor"),
        p.l("proof"),
    );
    let signed = cp.as_ref().map(|cp| checkpoint_signed(&ui, cp));
    for e in &events {
        let leaf_hash = merkle::leaf_hash(&e.leaf);
        let proof = match &cp {
            Some(_) if matches!(&signed, Some(Err(_))) => format!(
                "<span class=\"error\" data-proof=\"failed\">✘ {}: {}</span>",
                p.l("proof_bad"),
                esc(signed
                    .as_ref()
                    .and_then(|s| s.as_ref().err())
                    .map(String::as_str)
                    .unwrap_or(""))
            ),
            Some(cp) if e.seq < cp.size => match store.inclusion_proof(e.seq, cp.size).await {
                Ok(path) => {
                    match merkle::verify_inclusion(&leaf_hash, e.seq, cp.size, &path, &cp.root) {
                        Ok(()) => format!(
                            "<span class=\"ok\" data-proof=\"verified\">✔ {} {} (size {}, root <code>{}</code>, {} hashes)</span>",
                            p.l("proof_ok"),
                            esc(&time(cp.made_at_ms)),
                            cp.size,
                            esc(&hex(&cp.root)),
                            path.len()
                        ),
                        Err(err) => format!(
                            "<span class=\"error\" data-proof=\"failed\">✘ {}: {}</span>",
                            p.l("proof_bad"),
                            esc(&err.to_string())
                        ),
                    }
                }
                Err(err) => format!(
                    "<span class=\"error\" data-proof=\"failed\">✘ {}: {}</span>",
                    p.l("proof_bad"),
                    esc(&err.to_string())
                ),
            },
            _ => format!("<span data-proof=\"pending\">{}</span>", p.l("proof_none")),
        };
        let _ = write!(
            b,
            "<tr data-seq=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{proof}<br><code>{}</code></td></tr>",
            e.seq,
            e.seq,
            esc(&time(e.at_ms)),
            esc(&e.event_type),
            esc(&e.actor),
            esc(&hex(&leaf_hash)),
        );
    }
    b.push_str("</table>");
    p.render(
        &format!("{} {id}", t(p.lang, "card")),
        &format!("/ui/cards/{}", url(&id)),
        &b,
        None,
    )
}

pub async fn checkpoints(
    State(ui): State<Arc<Ui>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let p = match page(&ui, &headers, q, Role::Auditor) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let store = &ui.app.store;
    let (size, latest) = match tokio::try_join!(store.journal_size(), store.latest_checkpoint()) {
        Ok(x) => x,
        Err(e) => return p.error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    let recent = match store.checkpoints(None, 20).await {
        Ok(c) => c,
        Err(e) => return p.error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    if let Err(r) = record(
        &ui,
        &p,
        "checkpoints",
        json!({ "limit": 20 }),
        Some(recent.len() as u64),
    )
    .await
    {
        return *r;
    }
    // Verification status: the latest checkpoint's root is the journal's root at its size,
    // and the journal now is consistent with it.
    let status = match &latest {
        None => format!("<span data-verified=\"none\">{}</span>", p.l("proof_none")),
        Some(cp) => {
            let root = store.journal_root(cp.size).await;
            let consistency = if cp.size > 0 && cp.size <= size {
                match store.consistency_proof(cp.size, size).await {
                    Ok(proof) => match store.journal_root(size).await {
                        Ok(now_root) => {
                            merkle::verify_consistency(cp.size, size, &cp.root, &now_root, &proof)
                                .map_err(|e| e.to_string())
                        }
                        Err(e) => Err(e.to_string()),
                    },
                    Err(e) => Err(e.to_string()),
                }
            } else {
                Err(format!(
                    "checkpoint size {} vs journal size {size}",
                    cp.size
                ))
            };
            let consistency = consistency.and_then(|()| checkpoint_signed(&ui, cp));
            match (root, consistency) {
                (Ok(r), Ok(())) if r == cp.root => format!(
                    "<span class=\"ok\" data-verified=\"ok\">✔ {}</span>",
                    p.l("proof_ok")
                ),
                (_, Err(e)) => format!(
                    "<span class=\"error\" data-verified=\"failed\">✘ {}</span>",
                    esc(&e)
                ),
                _ => format!(
                    "<span class=\"error\" data-verified=\"failed\">✘ {}</span>",
                    p.l("proof_bad")
                ),
            }
        }
    };
    let mut b = format!(
        "<p>{}: <span id=\"journal-size\">{size}</span></p><p>{}: <span id=\"verification\">{status}</span></p>\
         <table id=\"checkpoints\"><tr><th>{}</th><th>{}</th><th>{}</th></tr>",
        p.l("size"),
        p.l("verification"),
        p.l("size"),
        p.l("root"),
        p.l("made_at"),
    );
    for cp in recent.iter().rev() {
        let _ = write!(
            b,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
            cp.size,
            esc(&hex(&cp.root)),
            esc(&time(cp.made_at_ms))
        );
    }
    b.push_str("</table>");
    if let Some(cp) = &latest {
        let _ = write!(
            b,
            "<h2>note</h2><pre id=\"checkpoint-note\">{}</pre>",
            esc(&cp.note)
        );
    }
    p.render(t(p.lang, "checkpoints"), "/ui/checkpoints", &b, None)
}

pub async fn reports(
    State(ui): State<Arc<Ui>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let p = match page(&ui, &headers, q, Role::Auditor) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let b = format!(
        "<form method=\"get\" action=\"/ui/reports/evaluation\" id=\"report-form\">\
         <label>{} <input name=\"from\" id=\"report-from\" placeholder=\"YYYY-MM-DD\"></label> \
         <label>{} <input name=\"to\" id=\"report-to\" placeholder=\"YYYY-MM-DD\"></label> \
         <label>half_year <input name=\"half_year\" id=\"report-half-year\" placeholder=\"2026H2\"></label> \
         <label>{} <input name=\"agency\" id=\"report-agency\"></label> \
         <button type=\"submit\" id=\"report-submit\">{}</button></form>",
        p.l("from"),
        p.l("to"),
        p.l("agency"),
        p.l("evaluation"),
    );
    p.render(t(p.lang, "reports"), "/ui/reports", &b, None)
}

/// The evaluation report's HTML (report_api::html), journaled as the auditor's query.
pub async fn evaluation(
    State(ui): State<Arc<Ui>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let p = match page(&ui, &headers, q, Role::Auditor) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let get = |k: &str| {
        field(&p.query, k)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let query = crate::report_api::ReportQuery {
        from: get("from"),
        to: get("to"),
        half_year: get("half_year"),
        as_of: get("as_of"),
        agency: get("agency"),
        kind_root: get("kind_root"),
        format: Some("html".into()),
    };
    let (tz, calendar) = match &ui.app.exchange.settings().deadlines {
        Some(r) => (r.time_zone, r.calendar.get()),
        None => (
            mezhved_core::calendar::DEFAULT_TZ,
            Arc::new(
                mezhved_core::calendar::Calendar::builtin_ru_federal()
                    .unwrap_or_else(|_| mezhved_core::calendar::Calendar::empty()),
            ),
        ),
    };
    let (params, _, recorded) = match query.params(ui.now_ms(), tz) {
        Ok(x) => x,
        Err(e) => return p.error(e.status, &problem_message(&e)),
    };
    let report = match crate::report_api::compute(&*ui.app.store, params, &calendar).await {
        Ok(r) => r,
        Err(e) => return p.error(e.status, &problem_message(&e)),
    };
    if let Err(r) = record(
        &ui,
        &p,
        "report.evaluation",
        recorded,
        Some(crate::report_api::rows(&report)),
    )
    .await
    {
        return *r;
    }
    let mut r = crate::report_api::html(&report).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // The report is a printable document with its own inline style and no script.
    secure(
        r,
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
    )
}
