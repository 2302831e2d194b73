//! The WSDL and the XSDs, compiled into the binary from `schemas/` and served at
//! `<endpoint>?wsdl` and `/schemas/...`. The WSDL is served with its `soap:address` and
//! `schemaLocation` values rewritten to this gateway's own URLs, so that a client built
//! from it (e.g. zeep) needs nothing but the WSDL address.

use crate::server::AppState;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

const WSDL: &str = include_str!("../../../schemas/smev/1.1/smev-message-exchange-service-1.1.wsdl");
const WSDL_ADDRESS: &str = "http://localhost:7575/smev/v1.1";

/// Served schema files by path under `/schemas/`.
pub const FILES: &[(&str, &str)] = &[
    (
        "smev/1.1/smev-message-exchange-basic-1.1.xsd",
        include_str!("../../../schemas/smev/1.1/smev-message-exchange-basic-1.1.xsd"),
    ),
    (
        "smev/1.1/smev-message-exchange-types-1.1.xsd",
        include_str!("../../../schemas/smev/1.1/smev-message-exchange-types-1.1.xsd"),
    ),
    (
        "smev/1.1/smev-message-exchange-faults-1.1.xsd",
        include_str!("../../../schemas/smev/1.1/smev-message-exchange-faults-1.1.xsd"),
    ),
    ("smev/1.1/smev-message-exchange-service-1.1.wsdl", WSDL),
    (
        "mezhved/mezhved-ext-1.0.xsd",
        include_str!("../../../schemas/mezhved/mezhved-ext-1.0.xsd"),
    ),
];

/// The base URL clients reach this gateway at.
fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    if !state.config.server.public_url.is_empty() {
        return state
            .config
            .server
            .public_url
            .trim_end_matches('/')
            .to_string();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("localhost");
    format!("http://{host}")
}

/// The WSDL with this gateway's endpoint and schema URLs.
pub fn wsdl_for(base: &str) -> String {
    let mut text = WSDL.replace(WSDL_ADDRESS, &format!("{base}/smev/v1.1"));
    for (path, _) in FILES {
        if let Some(name) = path.strip_prefix("smev/1.1/") {
            text = text.replace(
                &format!("schemaLocation=\"{name}\""),
                &format!("schemaLocation=\"{base}/schemas/{path}\""),
            );
        }
    }
    text
}

/// `GET <endpoint>?wsdl`.
pub async fn wsdl(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if !matches!(query.as_deref(), Some(q) if q.eq_ignore_ascii_case("wsdl")) {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            "POST SOAP calls here; GET ?wsdl for the WSDL\n",
        )
            .into_response();
    }
    let base = base_url(&state, &headers);
    (
        [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
        wsdl_for(&base),
    )
        .into_response()
}

/// `GET /schemas/{path}`.
pub async fn schema(Path(path): Path<String>) -> Response {
    match FILES.iter().find(|(p, _)| *p == path) {
        Some((_, text)) => {
            ([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], *text).into_response()
        }
        None => (StatusCode::NOT_FOUND, format!("no schema {path}\n")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wsdl_points_at_this_gateway() {
        let w = wsdl_for("http://gw.example:8080");
        assert!(w.contains("location=\"http://gw.example:8080/smev/v1.1\""));
        assert!(!w.contains(WSDL_ADDRESS));
        assert!(w.contains("schemaLocation=\"http://gw.example:8080/schemas/smev/1.1/smev-message-exchange-types-1.1.xsd\""));
    }
}
