//! Evaluation reports under `/api/v1/reports` (docs/reports.md): the figures regulators
//! ask for (Penza 7.2, Kuzbass 7.2), computed from the journal alone by
//! [`mezhved_core::report`], as JSON, CSV or a printable HTML page.
//!
//! Invariants:
//! - The auditor's credential, as `/api/v1/journal` (the same middleware): the operator's
//!   token gets 403, anything else 401.
//! - Every report request is journaled (`auditor.query`, query `report.evaluation`, its
//!   parameters and the number of rows) before it is answered; if that fails, nothing is
//!   answered (503).
//! - The report reads the journal up to its size when the request came, page by page; it
//!   never holds the whole journal.

use crate::journal_api::{record, require_auditor, Auditor};
use crate::rest::{Params, Problem};
use crate::server::AppState;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use chrono::NaiveDate;
use chrono_tz::Tz;
use mezhved_core::calendar::Calendar;
use mezhved_core::report::{
    Evaluation, HalfYear, ProviderFigures, Report, ReportError, ReportParams, SenderFigures,
};
use mezhved_store::Store;
use serde::Deserialize;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::sync::Arc;

/// The journal events read per page.
const PAGE: usize = 1000;

fn invalid(detail: impl Into<String>) -> Problem {
    Problem {
        status: StatusCode::BAD_REQUEST,
        title: "Invalid request",
        detail: detail.into(),
    }
}

impl From<ReportError> for Problem {
    fn from(e: ReportError) -> Self {
        match e {
            ReportError::Invalid(m) => invalid(m),
            ReportError::Corrupt { .. } => Problem {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                title: "Journal failure",
                detail: e.to_string(),
            },
        }
    }
}

/// The output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
    Html,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Html => "html",
        }
    }
}

/// The parameters of `GET /evaluation` (and of `mezhved report`).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReportQuery {
    /// The period's first day, `YYYY-MM-DD` (local date).
    pub from: Option<String>,
    /// The first day after the period, `YYYY-MM-DD` (the period is `[from, to)`).
    pub to: Option<String>,
    /// `YYYYH1` or `YYYYH2`, instead of `from` and `to`.
    pub half_year: Option<String>,
    /// The instant the report is made as of: RFC 3339, milliseconds, or `YYYY-MM-DD`
    /// (local midnight); default now.
    pub as_of: Option<String>,
    pub agency: Option<String>,
    pub kind_root: Option<String>,
    /// `json` (default), `csv` or `html`.
    pub format: Option<String>,
}

fn date(what: &str, text: &str) -> Result<NaiveDate, Problem> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .map_err(|_| invalid(format!("{what}: \"{text}\" is not a YYYY-MM-DD date")))
}

impl ReportQuery {
    /// The report's parameters, its format, and the parameters as journaled.
    pub fn params(&self, now_ms: i64, tz: Tz) -> Result<(ReportParams, Format, Value), Problem> {
        let format = match self.format.as_deref().unwrap_or("json") {
            "json" => Format::Json,
            "csv" => Format::Csv,
            "html" => Format::Html,
            other => return Err(invalid(format!("format \"{other}\": json, csv or html"))),
        };
        let half_year = self.half_year.as_deref().map(HalfYear::parse).transpose()?;
        let (from, to) =
            match (&self.from, &self.to, half_year) {
                (None, None, Some(h)) => (h.from(), h.to()),
                (Some(f), Some(t), None) => (date("from", f)?, date("to", t)?),
                _ => return Err(invalid(
                    "give the period as from and to (YYYY-MM-DD, to exclusive) or as half_year \
                     (e.g. 2026H2)",
                )),
            };
        let as_of_ms = match self.as_of.as_deref().map(str::trim) {
            None => now_ms,
            Some(t) => {
                if let Ok(ms) = t.parse::<i64>() {
                    ms
                } else if let Ok(d) = chrono::DateTime::parse_from_rfc3339(t) {
                    d.timestamp_millis()
                } else if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
                    mezhved_core::calendar::start_of_day(d, tz).timestamp_millis()
                } else {
                    return Err(invalid(format!(
                        "as_of: \"{t}\" is neither RFC 3339, YYYY-MM-DD nor milliseconds"
                    )));
                }
            }
        };
        let non_empty = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let params = ReportParams {
            from,
            to,
            as_of_ms,
            time_zone: tz,
            agency: non_empty(&self.agency),
            kind_root: non_empty(&self.kind_root),
            half_year,
        };
        let mut recorded = json!({
            "from": from.to_string(), "to": to.to_string(),
            "half_year": half_year.map(|h| h.label()), "as_of": as_of_ms,
            "agency": params.agency, "kind_root": params.kind_root, "format": format.name(),
        });
        if let Some(m) = recorded.as_object_mut() {
            m.retain(|_, v| !v.is_null());
        }
        Ok((params, format, recorded))
    }
}

/// Computes a report over the journal as it stands (its size when called), page by page.
pub async fn compute(
    store: &dyn Store,
    params: ReportParams,
    calendar: &Calendar,
) -> Result<Report, Problem> {
    let mut evaluation = Evaluation::new(params, calendar)?;
    let size = store.journal_size().await?;
    let mut next = 0;
    while next < size {
        let page = store.journal_events(next, PAGE).await?;
        let Some(last) = page.last() else { break };
        next = last.seq + 1;
        for e in page.iter().filter(|e| e.seq < size) {
            evaluation.push(e)?;
        }
    }
    Ok(evaluation.finish())
}

/// The number of rows of a report (journaled as the query's result count).
pub fn rows(report: &Report) -> u64 {
    (report.senders.len() + report.providers.len()) as u64
}

/// The time zone and calendar the gateway counts deadlines with.
fn rules(state: &AppState) -> (Tz, Arc<Calendar>) {
    match &state.exchange.settings().deadlines {
        Some(r) => (r.time_zone, r.calendar.get()),
        None => (
            mezhved_core::calendar::DEFAULT_TZ,
            Arc::new(Calendar::builtin_ru_federal().unwrap_or_else(|_| Calendar::empty())),
        ),
    }
}

async fn get_evaluation(
    State(state): State<Arc<AppState>>,
    Extension(auditor): Extension<Auditor>,
    Params(q): Params<ReportQuery>,
) -> Result<Response, Problem> {
    let (tz, calendar) = rules(&state);
    let now = mezhved_core::clock::to_ms(state.clock.now());
    let (params, format, recorded) = q.params(now, tz)?;
    let report = compute(&*state.store, params, &calendar).await?;
    record(
        &state,
        &auditor,
        "report.evaluation",
        recorded,
        Some(rows(&report)),
    )
    .await?;
    Ok(respond(&report, format))
}

fn respond(report: &Report, format: Format) -> Response {
    let (body, content_type) = match format {
        Format::Json => return Json(report).into_response(),
        Format::Csv => (csv(report), "text/csv; charset=utf-8"),
        Format::Html => (html(report), "text/html; charset=utf-8"),
    };
    let mut r = body.into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if format == Format::Csv {
        if let Ok(v) = HeaderValue::from_str(&format!(
            "attachment; filename=\"evaluation-{}-{}.csv\"",
            report.from, report.to
        )) {
            r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
        }
    }
    r
}

pub fn report_router(state: Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
        .route("/evaluation", get(get_evaluation))
        .route_layer(middleware::from_fn_with_state(state, require_auditor))
}

/// The CSV columns: one row per (role, agency, kind); `role` is `sender` or `provider`,
/// an empty kind is the agency's total over its kinds, agency `*` the total of all.
pub const CSV_COLUMNS: &[&str] = &[
    "from",
    "to",
    "role",
    "agency",
    "agency_name",
    "kind_namespace",
    "kind_root",
    "kind_name",
    "requests",
    "paper",
    "send_requests_accepted",
    "send_requests_rejected",
    "well_formed_share",
    "answered",
    "evaluated",
    "answered_on_time",
    "answered_late",
    "on_time_share",
    "data",
    "rejections",
    "no_data",
    "data_share",
    "median_working_days",
    "p95_working_days",
    "open_overdue",
    "open_not_due",
    "closed_without_answer",
    "without_deadline",
];

fn csv_field(v: &str) -> String {
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.to_string()
    }
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

fn sender_cells(f: &SenderFigures) -> Vec<String> {
    let mut c = vec![
        f.requests.to_string(),
        f.paper.to_string(),
        f.send_requests_accepted.to_string(),
        f.send_requests_rejected.to_string(),
        opt(f.well_formed_share),
    ];
    c.extend(std::iter::repeat_n(String::new(), 15));
    c
}

fn provider_cells(f: &ProviderFigures) -> Vec<String> {
    vec![
        f.requests.to_string(),
        f.paper.to_string(),
        String::new(),
        String::new(),
        String::new(),
        f.answered.to_string(),
        f.evaluated.to_string(),
        f.answered_on_time.to_string(),
        f.answered_late.to_string(),
        opt(f.on_time_share),
        f.data.to_string(),
        f.rejections.to_string(),
        f.no_data.to_string(),
        opt(f.data_share),
        opt(f.median_working_days),
        opt(f.p95_working_days),
        f.open_overdue.to_string(),
        f.open_not_due.to_string(),
        f.closed_without_answer.to_string(),
        f.without_deadline.to_string(),
    ]
}

/// The report as CSV ([`CSV_COLUMNS`]).
pub fn csv(report: &Report) -> String {
    let mut out = CSV_COLUMNS.join(",");
    out.push('\n');
    let mut line = |head: [&str; 6], figures: Vec<String>| {
        let cells: Vec<String> = [report.from.as_str(), report.to.as_str()]
            .into_iter()
            .chain(head)
            .map(csv_field)
            .chain(figures)
            .collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    };
    for s in &report.senders {
        let name = s.agency_name.as_deref().unwrap_or("");
        line(
            ["sender", &s.agency, name, "", "", ""],
            sender_cells(&s.figures),
        );
    }
    line(
        ["sender", "*", "", "", "", ""],
        sender_cells(&report.totals.senders),
    );
    for p in &report.providers {
        let name = p.agency_name.as_deref().unwrap_or("");
        let (ns, root, kind_name) = match &p.kind {
            Some(k) => (
                k.namespace.as_str(),
                k.root.as_str(),
                k.name.as_deref().unwrap_or(""),
            ),
            None => ("", "", ""),
        };
        line(
            ["provider", &p.agency, name, ns, root, kind_name],
            provider_cells(&p.figures),
        );
    }
    line(
        ["provider", "*", "", "", "", ""],
        provider_cells(&report.totals.providers),
    );
    out
}

/// HTML-escapes `s` (element content and quoted attribute values); the dashboard's pages
/// use it too.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn percent(v: Option<f64>) -> String {
    v.map(|v| format!("{:.1}&nbsp;%", v * 100.0))
        .unwrap_or_else(|| "—".into())
}

fn num<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "—".into())
}

const SENDER_HEADINGS: &[(&str, &str)] = &[
    ("Ведомство", "Agency"),
    ("Запросов направлено", "Requests sent"),
    ("из них на бумаге", "of which on paper"),
    (
        "Принято шлюзом (SendRequest)",
        "Accepted by the gateway (SendRequest)",
    ),
    ("Отклонено шлюзом", "Refused by the gateway"),
    (
        "Доля корректных с первой попытки",
        "Well-formed on the first try",
    ),
];

const PROVIDER_HEADINGS: &[(&str, &str)] = &[
    ("Ведомство", "Agency"),
    ("Вид сведений", "Kind of information"),
    ("Запросов получено", "Requests received"),
    ("из них на бумаге", "of which on paper"),
    ("Дано окончательных ответов", "Final answers"),
    ("В срок", "On time"),
    ("С нарушением срока", "Late"),
    ("Доля в срок", "Share on time"),
    ("С данными", "With data"),
    ("Отказы (в т.ч. NO_DATA)", "Rejections (incl. NO_DATA)"),
    ("Нет данных (NO_DATA)", "No data (NO_DATA)"),
    ("Доля ответов с данными", "Share answered with data"),
    (
        "Медиана срока ответа, раб. дн.",
        "Median answer time, working days",
    ),
    ("95-й процентиль, раб. дн.", "95th percentile, working days"),
    ("Просрочено без ответа", "Open overdue"),
    ("Срок не истёк", "Open, not yet due"),
    (
        "Срок закрыт без ответа (уточнение, истечение)",
        "Closed without an answer (clarification, expiry)",
    ),
];

fn head_row(out: &mut String, headings: &[(&str, &str)]) {
    out.push_str("<thead><tr>");
    for (ru, en) in headings {
        let _ = write!(
            out,
            "<th>{}<br><span class=\"en\">{}</span></th>",
            esc(ru),
            esc(en)
        );
    }
    out.push_str("</tr></thead>\n");
}

fn agency_cell(agency: &str, name: Option<&str>) -> String {
    match name {
        Some(n) => format!("{}<br><span class=\"code\">{}</span>", esc(n), esc(agency)),
        None => format!("<span class=\"code\">{}</span>", esc(agency)),
    }
}

fn tr_class(class: &str) -> String {
    if class.is_empty() {
        String::new()
    } else {
        format!(" class=\"{class}\"")
    }
}

fn sender_tr(out: &mut String, agency: String, f: &SenderFigures, class: &str) {
    let class = tr_class(class);
    let _ = writeln!(
        out,
        "<tr{class}><td>{agency}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        f.requests,
        f.paper,
        f.send_requests_accepted,
        f.send_requests_rejected,
        percent(f.well_formed_share)
    );
}

fn provider_tr(out: &mut String, agency: String, kind: String, f: &ProviderFigures, class: &str) {
    let class = tr_class(class);
    let _ = writeln!(
        out,
        "<tr{class}><td>{agency}</td><td>{kind}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        f.requests,
        f.paper,
        f.answered,
        f.answered_on_time,
        f.answered_late,
        percent(f.on_time_share),
        f.data,
        f.rejections,
        f.no_data,
        percent(f.data_share),
        num(f.median_working_days),
        num(f.p95_working_days),
        f.open_overdue,
        f.open_not_due,
        f.closed_without_answer,
    );
}

/// The report as a printable HTML page: no script, no external resource.
pub fn html(report: &Report) -> String {
    let mut out = String::with_capacity(8192);
    let title = "Оценка межведомственного взаимодействия / Interdepartmental exchange evaluation";
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"ru\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n\
         <style>\nbody{{font-family:serif;font-size:11pt;margin:1.5cm}}\n\
         table{{border-collapse:collapse;margin:0.5em 0 1.5em;width:100%}}\n\
         th,td{{border:1px solid #000;padding:3px 5px;vertical-align:top}}\n\
         td{{text-align:right}} td:first-child,td.kind{{text-align:left}}\n\
         th{{font-weight:bold;font-size:9pt}} .en{{font-weight:normal;font-style:italic}}\n\
         .code{{font-family:monospace;font-size:9pt}} tr.total td{{font-weight:bold}}\n\
         tr.agency td{{background:#eee}} dl{{display:grid;grid-template-columns:max-content auto;gap:2px 1em}}\n\
         dt{{font-weight:bold}} dd{{margin:0}}\n\
         @page{{size:A4 landscape;margin:1cm}} @media print{{body{{margin:0}} thead{{display:table-header-group}}}}\n\
         </style>\n</head>\n<body>\n<h1>{}</h1>\n<dl>\n",
        esc(title),
        esc(title)
    );
    let mut meta = |ru: &str, en: &str, v: String| {
        let _ = writeln!(
            out,
            "<dt>{} / <span class=\"en\">{}</span></dt><dd>{}</dd>",
            esc(ru),
            esc(en),
            v
        );
    };
    meta(
        "Период",
        "Period",
        format!(
            "{} — {} ({}; {} исключительно / exclusive)",
            esc(&report.from),
            esc(&report.to),
            esc(&report.time_zone),
            esc(&report.to)
        ),
    );
    if let Some(h) = &report.half_year {
        meta(
            "Полугодие",
            "Half-year",
            format!(
                "{}; оценка до / evaluation due by {}",
                esc(&h.label),
                esc(&h.evaluation_due)
            ),
        );
    }
    meta("По состоянию на", "As of", esc(&report.as_of));
    if let Some(a) = &report.agency {
        meta("Ведомство", "Agency", esc(a));
    }
    if let Some(k) = &report.kind_root {
        meta("Вид сведений", "Kind of information", esc(k));
    }
    meta(
        "Событий журнала прочитано",
        "Journal events read",
        report.events_read.to_string(),
    );
    meta(
        "Тестовых запросов исключено",
        "Test requests excluded",
        report.test_requests_excluded.to_string(),
    );
    for w in &report.warnings {
        meta("Предупреждение", "Warning", esc(&w.to_string()));
    }
    out.push_str("</dl>\n");

    out.push_str(
        "<h2>Запрашивающие ведомства / <span class=\"en\">Requesting agencies</span></h2>\n<table>\n",
    );
    head_row(&mut out, SENDER_HEADINGS);
    out.push_str("<tbody>\n");
    for s in &report.senders {
        sender_tr(
            &mut out,
            agency_cell(&s.agency, s.agency_name.as_deref()),
            &s.figures,
            "",
        );
    }
    out.push_str("</tbody>\n<tfoot>\n");
    sender_tr(
        &mut out,
        "Итого / <span class=\"en\">Total</span>".into(),
        &report.totals.senders,
        "total",
    );
    out.push_str("</tfoot>\n</table>\n");

    out.push_str(
        "<h2>Предоставляющие ведомства / <span class=\"en\">Providing agencies</span></h2>\n<table>\n",
    );
    head_row(&mut out, PROVIDER_HEADINGS);
    out.push_str("<tbody>\n");
    for p in &report.providers {
        let (kind, class) = match &p.kind {
            Some(k) => (
                format!(
                    "<span class=\"kind\">{}</span><br><span class=\"code\">{}</span>",
                    esc(k.name.as_deref().unwrap_or("")),
                    esc(&k.root)
                ),
                "",
            ),
            None => (
                "Все виды / <span class=\"en\">all kinds</span>".into(),
                "agency",
            ),
        };
        provider_tr(
            &mut out,
            agency_cell(&p.agency, p.agency_name.as_deref()),
            kind,
            &p.figures,
            class,
        );
    }
    out.push_str("</tbody>\n<tfoot>\n");
    provider_tr(
        &mut out,
        "Итого / <span class=\"en\">Total</span>".into(),
        String::new(),
        &report.totals.providers,
        "total",
    );
    out.push_str("</tfoot>\n</table>\n");
    out.push_str(
        "<p>Определения показателей: docs/reports.md. Доли — от числа запросов, по которым \
         срок истёк или дан ответ (срок), и от числа окончательных ответов (данные).<br>\
         <span class=\"en\">Definitions: docs/reports.md. On-time share: of the requests \
         answered or past their deadline; data share: of the final answers.</span></p>\n\
         </body>\n</html>\n",
    );
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> ReportQuery {
        let mut q = ReportQuery::default();
        for (k, v) in pairs {
            let v = Some(v.to_string());
            match *k {
                "from" => q.from = v,
                "to" => q.to = v,
                "half_year" => q.half_year = v,
                "as_of" => q.as_of = v,
                "format" => q.format = v,
                _ => unreachable!(),
            }
        }
        q
    }

    #[test]
    fn parameters() {
        let tz = mezhved_core::calendar::DEFAULT_TZ;
        let (p, f, rec) = query(&[("half_year", "2026H2"), ("format", "csv")])
            .params(5, tz)
            .unwrap();
        assert_eq!(
            (p.from.to_string(), p.to.to_string()),
            ("2026-07-01".into(), "2027-01-01".into())
        );
        assert_eq!((p.as_of_ms, f), (5, Format::Csv));
        assert_eq!(rec["half_year"], "2026H2");
        let (p, _, _) = query(&[
            ("from", "2026-01-01"),
            ("to", "2026-02-01"),
            ("as_of", "2026-02-01"),
        ])
        .params(5, tz)
        .unwrap();
        assert_eq!(p.as_of_ms, 1_769_893_200_000, "2026-01-31T21:00Z");
        for bad in [
            query(&[("from", "2026-01-01")]),
            query(&[
                ("half_year", "2026H2"),
                ("from", "2026-07-01"),
                ("to", "2027-01-01"),
            ]),
            query(&[("half_year", "2026H2"), ("format", "xml")]),
            query(&[("from", "01.01.2026"), ("to", "2026-02-01")]),
        ] {
            assert!(bad.params(0, tz).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn renders_escape_and_have_every_column() {
        let cal = Calendar::empty();
        let mut report = Evaluation::new(
            ReportParams {
                from: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
                to: NaiveDate::from_ymd_opt(2026, 2, 1).unwrap(),
                as_of_ms: 0,
                time_zone: mezhved_core::calendar::DEFAULT_TZ,
                agency: Some("<A&B>".into()),
                kind_root: None,
                half_year: None,
            },
            &cal,
        )
        .unwrap()
        .finish();
        report.senders.push(mezhved_core::report::SenderRow {
            agency: "X,\"Y\"".into(),
            agency_name: Some("<script>".into()),
            figures: SenderFigures::default(),
        });
        let c = csv(&report);
        for line in c.lines() {
            // The only quoted field holds one comma.
            assert_eq!(
                line.split(',').count(),
                CSV_COLUMNS.len() + usize::from(line.contains('"')),
                "{line}"
            );
        }
        assert!(c.contains("\"X,\"\"Y\"\"\""), "{c}");
        let h = html(&report);
        assert!(!h.contains("<script>") && h.contains("&lt;script&gt;"));
        assert!(h.contains("&lt;A&amp;B&gt;"));
        assert_eq!(h.matches("<table>").count(), 2);
    }
}
