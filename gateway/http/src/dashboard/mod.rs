//! The operator's and auditor's web dashboard under `/ui` (docs/dashboard.md): plain
//! server-rendered HTML, Russian and English, no script.
//!
//! Invariants:
//! - Only `[[dashboard.users]]` log in (participant systems have no login here); a page
//!   opens only for its role (operator pages 403 an auditor and the other way round).
//! - Every POST carries a CSRF token checked against the session (the login form's against
//!   a pre-session cookie); a POST without the right one is refused with 403 and changes
//!   nothing.
//! - Every auditor view is journaled as an `auditor.query` event with the user's name, and
//!   the maintenance switch as an `operator.maintenance` event with the user as actor,
//!   before the page is answered.
//! - Every value shown is HTML-escaped ([`pages::esc`]); every answer carries the security
//!   headers of [`secure`].

pub mod auth;
pub mod i18n;
pub mod pages;

use crate::server::AppState;
use auth::{Role, Session, Sessions};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use i18n::{t, Lang};
use std::sync::Arc;

/// The session cookie.
pub const SESSION_COOKIE: &str = "mezhved_session";
/// The login form's pre-session CSRF cookie.
pub const LOGIN_COOKIE: &str = "mezhved_login";

/// What the dashboard's handlers share.
#[derive(Debug)]
pub struct Ui {
    pub app: Arc<AppState>,
    pub sessions: Sessions,
    dummy_hash: std::sync::OnceLock<String>,
    /// Password checks run on blocking threads, at most this many at once: PBKDF2 is
    /// deliberately slow, and a burst of logins must not take the cores the exchange needs.
    verify_slots: tokio::sync::Semaphore,
}

impl Ui {
    pub fn now_ms(&self) -> i64 {
        mezhved_core::clock::to_ms(self.app.clock.now())
    }

    fn cookie(&self, name: &str, value: &str, max_age: Option<u64>) -> String {
        let mut c = format!("{name}={value}; HttpOnly; SameSite=Strict; Path=/ui");
        if !self.app.config.dashboard.insecure_cookies {
            c.push_str("; Secure");
        }
        if let Some(a) = max_age {
            c.push_str(&format!("; Max-Age={a}"));
        }
        c
    }

    /// The live session of this request, if any; `activity`: the user did something (a
    /// page's own refresh does not count), which keeps the session from going idle.
    pub fn session(&self, headers: &HeaderMap, activity: bool) -> Option<(String, Session)> {
        let id = cookie_value(headers, SESSION_COOKIE)?;
        let d = &self.app.config.dashboard;
        let s = self.sessions.get(
            &id,
            self.now_ms(),
            secs_ms(d.session_idle_seconds),
            secs_ms(d.session_max_seconds),
            activity,
        )?;
        Some((id, s))
    }

    /// The address failed logins are counted against: the peer, or with
    /// `trust_forwarded_for` (behind a proxy that sets it) the first `X-Forwarded-For`.
    fn client(&self, headers: &HeaderMap, peer: Option<std::net::SocketAddr>) -> String {
        let forwarded = self
            .app
            .config
            .dashboard
            .trust_forwarded_for
            .then(|| headers.get("x-forwarded-for"))
            .flatten()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty() && v.len() <= 64);
        forwarded
            .or_else(|| peer.map(|p| p.ip().to_string()))
            .unwrap_or_else(|| "unknown".into())
    }

    /// A hash of a password nobody knows, as costly as the costliest configured user's,
    /// so that an unknown name takes as long to refuse as a wrong password.
    fn dummy_hash(&self) -> &str {
        self.dummy_hash.get_or_init(|| {
            let iterations = self
                .app
                .config
                .dashboard
                .users
                .iter()
                .filter_map(|u| u.password_hash.split('$').nth(1)?.parse::<u32>().ok())
                .max()
                .unwrap_or(auth::MIN_ITERATIONS)
                .max(auth::MIN_ITERATIONS);
            auth::hash_password(&auth::random_token(16), iterations).unwrap_or_default()
        })
    }
}

fn secs_ms(s: u64) -> i64 {
    i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX)
}

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// Decodes an `application/x-www-form-urlencoded` body or query string.
pub fn form(text: &str) -> Vec<(String, String)> {
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                    match u8::from_str_radix(hex, 16) {
                        Ok(b) => {
                            out.push(b);
                            i += 2;
                        }
                        Err(_) => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

/// The first value of `name` in a decoded form.
pub fn field<'a>(f: &'a [(String, String)], name: &str) -> Option<&'a str> {
    f.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The page language of a request.
pub fn lang_of(headers: &HeaderMap, query: &[(String, String)]) -> Lang {
    Lang::pick(
        field(query, "lang"),
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    )
}

/// Adds the security headers every dashboard answer carries.
pub fn secure(mut r: Response, csp: &str) -> Response {
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// The policy of a page whose one inline `<style>` carries `nonce`.
pub fn csp(nonce: &str) -> String {
    format!(
        "default-src 'self'; style-src 'nonce-{nonce}'; script-src 'none'; \
         frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    )
}

/// An HTML page answer with the security headers.
pub fn html(status: StatusCode, nonce: &str, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    secure(r, &csp(nonce))
}

/// A redirect (303) with the security headers, optionally setting cookies.
pub fn redirect(to: &str, cookies: &[String]) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(c) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    secure(r, "default-src 'none'")
}

/// The logged-in user of a page request, or the answer to give instead: the login page
/// when there is no live session, 403 when the role is not `role`.
pub fn require(
    ui: &Ui,
    headers: &HeaderMap,
    lang: Lang,
    role: Role,
    activity: bool,
) -> Result<(String, Session), Box<Response>> {
    let Some((id, s)) = ui.session(headers, activity) else {
        return Err(Box::new(redirect(
            &format!("/ui/login?lang={}", lang.code()),
            &[],
        )));
    };
    if s.role != role {
        let nonce = auth::random_token(16);
        let body = pages::layout(
            lang,
            &nonce,
            Some(&s),
            t(lang, "forbidden"),
            "",
            &format!(
                "<p class=\"error\" data-test=\"forbidden\">{}</p>",
                pages::esc(t(lang, "forbidden"))
            ),
            None,
        );
        return Err(Box::new(html(StatusCode::FORBIDDEN, &nonce, body)));
    }
    Ok((id, s))
}

/// Reads a POST body as a form (at most 64 KiB).
pub async fn read_form(request: Request) -> Option<Vec<(String, String)>> {
    let bytes = axum::body::to_bytes(request.into_body(), 64 * 1024)
        .await
        .ok()?;
    Some(form(std::str::from_utf8(&bytes).ok()?))
}

/// The 403 answer to a POST whose CSRF token is missing or wrong.
pub fn csrf_refused(lang: Lang) -> Response {
    let nonce = auth::random_token(16);
    let body = pages::layout(
        lang,
        &nonce,
        None,
        t(lang, "csrf"),
        "",
        &format!(
            "<p class=\"error\" data-test=\"csrf-refused\">{}</p>",
            pages::esc(t(lang, "csrf"))
        ),
        None,
    );
    html(StatusCode::FORBIDDEN, &nonce, body)
}

fn query_of(request: &Request) -> Vec<(String, String)> {
    form(request.uri().query().unwrap_or(""))
}

async fn get_login(State(ui): State<Arc<Ui>>, request: Request) -> Response {
    let lang = lang_of(request.headers(), &query_of(&request));
    login_page(&ui, lang, None)
}

fn login_page(ui: &Ui, lang: Lang, error: Option<&str>) -> Response {
    let status = if error.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    login_page_with(ui, lang, error, status)
}

fn login_page_with(ui: &Ui, lang: Lang, error: Option<&str>, status: StatusCode) -> Response {
    let token = auth::random_token(32);
    let nonce = auth::random_token(16);
    let body = pages::login(lang, &nonce, &token, error);
    let mut r = html(status, &nonce, body);
    if let Ok(v) = HeaderValue::from_str(&ui.cookie(LOGIN_COOKIE, &token, Some(3600))) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

async fn post_login(State(ui): State<Arc<Ui>>, request: Request) -> Response {
    let headers = request.headers().clone();
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0);
    let query = query_of(&request);
    let Some(f) = read_form(request).await else {
        return csrf_refused(Lang::Ru);
    };
    let lang = Lang::pick(
        field(&f, "lang").or(field(&query, "lang")),
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    );
    let expected = cookie_value(&headers, LOGIN_COOKIE).unwrap_or_default();
    if !auth::tokens_equal(field(&f, "csrf").unwrap_or(""), &expected) {
        return csrf_refused(lang);
    }
    let name = field(&f, "user").unwrap_or("").trim().to_string();
    let password = field(&f, "password").unwrap_or("").to_string();
    // A name longer than any configured one is nobody's; its throttle key is shared so
    // that long names cannot each take a slot of their own.
    let name_key = if name.chars().count() <= MAX_USER_NAME {
        name.as_str()
    } else {
        "<too long>"
    };
    let keys = vec![
        format!("user:{name_key}"),
        format!("client:{}", ui.client(&headers, peer)),
    ];
    let now = ui.now_ms();
    // A small delay that grows with recent failures slows guessing (at most 2 s).
    let failures = ui.sessions.recent_failures(&keys, now);
    if failures > 0 {
        let ms = (u64::from(failures) * 100).min(2000);
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
    let user = ui
        .app
        .config
        .dashboard
        .users
        .iter()
        .find(|u| u.name == name);
    let role = user.and_then(|u| Role::parse(&u.role));
    // Unknown users are checked against a hash as costly as a real one, so timing does not
    // tell who exists.
    let hash = user.map_or_else(|| ui.dummy_hash().to_string(), |u| u.password_hash.clone());
    let ok = {
        let Ok(_slot) = ui.verify_slots.acquire().await else {
            return login_page_with(
                &ui,
                lang,
                Some(t(lang, "unavailable")),
                StatusCode::SERVICE_UNAVAILABLE,
            );
        };
        tokio::task::spawn_blocking(move || auth::verify_password(&password, &hash))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(false)
            && user.is_some()
    };
    match (ok, role) {
        (true, Some(role)) => {
            ui.sessions.clear_failures(&keys);
            // Who opened the console is journaled before the session exists: if the
            // journal cannot take it, nobody is logged in.
            if let Err(e) = journal_session(&ui, "dashboard.login", &name, role, now).await {
                tracing::error!(user = %name, error = %e, "dashboard login not journaled");
                return login_page_with(
                    &ui,
                    lang,
                    Some(t(lang, "unavailable")),
                    StatusCode::SERVICE_UNAVAILABLE,
                );
            }
            // A session this browser still held ends: one browser, one session.
            if let Some(old) = cookie_value(&headers, SESSION_COOKIE) {
                ui.sessions.remove(&old);
            }
            let id = ui.sessions.create(&name, role, now);
            tracing::info!(user = %name, "dashboard login");
            let home = match role {
                Role::Operator => "/ui",
                Role::Auditor => "/ui/journal",
            };
            redirect(
                &format!("{home}?lang={}", lang.code()),
                &[
                    ui.cookie(SESSION_COOKIE, &id, None),
                    ui.cookie(LOGIN_COOKIE, "", Some(0)),
                ],
            )
        }
        _ => {
            ui.sessions.record_failure(&keys, now);
            tracing::warn!(user = %name, "dashboard login failed");
            login_page(&ui, lang, Some(t(lang, "login_failed")))
        }
    }
}

/// A `dashboard.login` or `dashboard.logout` event: the user, the role, nothing else.
async fn journal_session(
    ui: &Ui,
    event_type: &str,
    user: &str,
    role: Role,
    now_ms: i64,
) -> Result<(), mezhved_store::StoreError> {
    let mut body = serde_json::Map::new();
    body.insert("role".into(), role.as_str().into());
    ui.app
        .store
        .journal_append(vec![mezhved_store::NewEvent {
            at_ms: now_ms,
            event_type: event_type.into(),
            global_id: None,
            actor: user.into(),
            body,
        }])
        .await
        .map(|_| ())
}

/// The longest user name a login may name (longer ones are nobody's).
const MAX_USER_NAME: usize = 256;

async fn post_logout(State(ui): State<Arc<Ui>>, request: Request) -> Response {
    let headers = request.headers().clone();
    let session = ui.session(&headers, true);
    let Some(f) = read_form(request).await else {
        return csrf_refused(Lang::Ru);
    };
    let lang = lang_of(&headers, &f);
    if let Some((id, s)) = session {
        if !auth::csrf_ok(&s, field(&f, "csrf")) {
            return csrf_refused(lang);
        }
        ui.sessions.remove(&id);
        // The session is over either way; a journal failure is only logged.
        if let Err(e) = journal_session(&ui, "dashboard.logout", &s.user, s.role, ui.now_ms()).await
        {
            tracing::error!(user = %s.user, error = %e, "dashboard logout not journaled");
        }
    }
    redirect(
        &format!("/ui/login?lang={}", lang.code()),
        &[ui.cookie(SESSION_COOKIE, "", Some(0))],
    )
}

/// Around every `/ui` request: a POST sent from another site is refused before any
/// handler runs (login CSRF from a sibling domain, a form on a foreign page); and an
/// answer made outside the handlers (axum's own 405 or 400) still gets the headers.
async fn guard(request: Request, next: axum::middleware::Next) -> Response {
    if request.method() == axum::http::Method::POST && cross_site(request.headers()) {
        tracing::warn!(path = %request.uri().path(), "dashboard POST from another site refused");
        return csrf_refused(lang_of(request.headers(), &[]));
    }
    let r = next.run(request).await;
    if r.headers().contains_key(header::CONTENT_SECURITY_POLICY) {
        r
    } else {
        secure(r, "default-src 'none'; frame-ancestors 'none'")
    }
}

/// Whether the browser says the request comes from another site. Browsers send
/// `Sec-Fetch-Site` with every request: anything but same-origin (or a direct
/// navigation) is foreign — `same-site` too, a sibling domain being exactly who could plant
/// a login cookie. Without it, an `Origin` naming another host is foreign; `Origin: null`
/// is not judged, since our own `Referrer-Policy: no-referrer` makes browsers send it.
fn cross_site(headers: &HeaderMap) -> bool {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site") {
        return site != "same-origin" && site != "none";
    }
    match (text("origin"), text("host")) {
        (Some("null"), _) | (None, _) => false,
        (Some(origin), Some(host)) => {
            let authority = origin.split_once("://").map_or(origin, |(_, a)| a);
            !authority.eq_ignore_ascii_case(host)
        }
        (Some(_), None) => true,
    }
}

/// A page that does not exist, in the dashboard's own dress.
async fn not_found(headers: HeaderMap, request: Request) -> Response {
    let lang = lang_of(&headers, &form(request.uri().query().unwrap_or("")));
    let nonce = auth::random_token(16);
    let body = pages::layout(
        lang,
        &nonce,
        None,
        t(lang, "not_found"),
        "",
        &format!(
            "<p class=\"error\" data-test=\"not-found\">{}</p>",
            pages::esc(t(lang, "not_found"))
        ),
        None,
    );
    html(StatusCode::NOT_FOUND, &nonce, body)
}

/// The dashboard's icon: every page links it, so that browsers do not ask for a
/// `/favicon.ico` the gateway does not have. It may be cached; it holds nothing secret.
async fn icon() -> Response {
    const SVG: &str = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 16 16\">\
<rect width=\"16\" height=\"16\" rx=\"3\" fill=\"#1a3d6d\"/>\
<path d=\"M3 12V4l2.5 4L8 4v8M10 4h3M11.5 4v8\" stroke=\"#fff\" stroke-width=\"1.6\" fill=\"none\"/></svg>";
    let mut r = secure(
        ([(header::CONTENT_TYPE, "image/svg+xml")], SVG).into_response(),
        "default-src 'none'",
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    r
}

/// `/ui/…`: the dashboard, when `[dashboard] enabled`.
pub fn router(app: Arc<AppState>) -> Router<Arc<AppState>> {
    let ui = Arc::new(Ui {
        app,
        sessions: Sessions::default(),
        dummy_hash: std::sync::OnceLock::new(),
        verify_slots: tokio::sync::Semaphore::new(2),
    });
    Router::new()
        .route("/login", get(get_login).post(post_login))
        .route("/logout", post(post_logout))
        .route("/", get(pages::overview))
        .route("/systems/{mnemonic}", get(pages::system))
        .route("/agencies", get(pages::agencies))
        .route("/agencies/{mnemonic}", get(pages::agency))
        .route("/queues", get(pages::queues))
        .route("/overdue", get(pages::overdue))
        .route("/alerts", get(pages::alerts))
        .route("/registry", get(pages::registry))
        .route(
            "/maintenance",
            get(pages::maintenance).post(pages::post_maintenance),
        )
        .route("/journal", get(pages::journal))
        .route("/cards/{id}", get(pages::card))
        .route("/checkpoints", get(pages::checkpoints))
        .route("/reports", get(pages::reports))
        .route("/reports/evaluation", get(pages::evaluation))
        .route("/icon.svg", get(icon))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(guard))
        .with_state(ui)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_percent_and_plus() {
        let f = form("a=1+2&b=%D0%BC%26x&c&d=%zz");
        assert_eq!(field(&f, "a"), Some("1 2"));
        assert_eq!(field(&f, "b"), Some("м&x"));
        assert_eq!(field(&f, "c"), Some(""));
        assert_eq!(field(&f, "d"), Some("%zz"));
    }
}
