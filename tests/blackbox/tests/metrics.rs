//! `/metrics` through the real gateway (docs/metrics.md): an exchange shows up as calls,
//! latency, queue depth (back to zero after the Ack) and journal growth; a flood of
//! requests for unknown kinds of information and of garbage calls adds no series.
//!
//! One test in this binary: the process's counters are shared by every gateway in it, so
//! a second test running alongside would change the series being counted.

use mezhved_blackbox::*;
use mezhved_client::{self as client, Outgoing, Request};
use std::collections::BTreeSet;

/// Sample value of the series written exactly as `series` (name and labels).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Every series (name with labels) on the page.
fn series(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' ').map(|(s, _)| s.to_string()))
        .collect()
}

async fn scrape(api: &Api) -> String {
    let r = api.send("GET", "/metrics", None, None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.content_type.starts_with("text/plain; version=0.0.4"),
        "{}",
        r.content_type
    );
    r.text()
}

/// A SendRequest for a kind of information nobody registered.
fn unknown_kind_request(gw: &TestGateway, i: usize) -> Request {
    let mut r = gw.birth_request("flood");
    r.content = format!(
        "<x:Unknown{i} xmlns:x=\"urn:random:{}\"><x:V>{i}</x:V></x:Unknown{i}>",
        uuid::Uuid::new_v4()
    );
    r
}

/// A call that is no SMEV operation (well-formed SOAP, an element nobody defined), or
/// not XML at all.
fn garbage(i: usize) -> Outgoing {
    let envelope = if i % 2 == 0 {
        format!(
            "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body><g:Op{i}Request xmlns:g=\"urn:garbage:{i}\"/></soap:Body></soap:Envelope>"
        )
    } else {
        format!("garbage {i} <<<")
    };
    Outgoing {
        envelope: envelope.into_bytes(),
        parts: Vec::new(),
    }
}

async fn flood(gw: &TestGateway, consumer: &TestSystem, range: std::ops::Range<usize>) {
    for chunk in range.collect::<Vec<_>>().chunks(25) {
        let calls = chunk.iter().map(|&i| async move {
            let sent = consumer
                .call(client::send_request(&unknown_kind_request(gw, i)))
                .await;
            expect_client_fault(&sent, "BusinessDataTypeIsNotSupported");
            let g = consumer.send_raw(&garbage(i)).await;
            assert_eq!(g.status, 500, "{}", g.text());
        });
        futures_util::future::join_all(calls).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exchange_is_counted_and_a_flood_of_unknown_kinds_adds_no_series() {
    let gw = TestGateway::start().await;
    let api = Api::new(&gw.url);
    let consumer = gw.consumer();
    let provider = gw.provider();

    let before = scrape(&api).await;
    let journal_before = value(&before, "mezhved_journal_events").expect("journal size");
    // Every registered system's queues are there, at zero.
    assert_eq!(
        value(
            &before,
            "mezhved_queue_depth{system=\"ZAGS_IS\",queue=\"requests\"}"
        ),
        Some(0.0),
        "{before}"
    );

    // The consumer asks; the request waits in the provider's queue.
    let sent = consumer
        .call(client::send_request(&gw.birth_request("metrics-1")))
        .await;
    expect_ok(&sent);
    let global_id = sent.global_id().expect("global ID");
    let page = scrape(&api).await;
    assert!(
        value(
            &page,
            "mezhved_calls_total{operation=\"SendRequest\",fault=\"none\"}"
        )
        .is_some_and(|v| v >= 1.0),
        "{page}"
    );
    assert!(
        value(
            &page,
            "mezhved_call_duration_seconds_count{operation=\"SendRequest\"}"
        )
        .is_some_and(|v| v >= 1.0),
        "{page}"
    );
    assert!(
        page.contains(
            "mezhved_call_duration_seconds_bucket{operation=\"SendRequest\",le=\"+Inf\"}"
        ),
        "{page}"
    );
    assert!(
        page.contains("mezhved_requests_total{kind=\""),
        "accepted requests are counted by kind: {page}"
    );
    assert_eq!(
        value(
            &page,
            "mezhved_queue_depth{system=\"ZAGS_IS\",queue=\"requests\"}"
        ),
        Some(1.0),
        "{page}"
    );
    assert!(
        value(&page, "mezhved_journal_events").expect("journal size") > journal_before,
        "{page}"
    );
    assert!(
        value(&page, "mezhved_store_commit_seconds_count").is_some_and(|v| v >= 1.0),
        "{page}"
    );
    assert!(
        page.contains("mezhved_store_batch_size_bucket{le=\"1\"}"),
        "{page}"
    );

    // The provider takes and acknowledges it: the queue is empty again.
    let got = provider.call(client::get_request(None, gw.now())).await;
    expect_ok(&got);
    expect_ok(&provider.call(client::ack(&global_id, true, None)).await);
    let page = scrape(&api).await;
    assert_eq!(
        value(
            &page,
            "mezhved_queue_depth{system=\"ZAGS_IS\",queue=\"requests\"}"
        ),
        Some(0.0),
        "{page}"
    );
    assert_eq!(
        value(
            &page,
            "mezhved_queue_oldest_age_seconds{system=\"ZAGS_IS\",queue=\"requests\"}"
        ),
        Some(0.0),
        "{page}"
    );
    for op in ["GetRequest", "Ack"] {
        assert!(
            value(
                &page,
                &format!("mezhved_calls_total{{operation=\"{op}\",fault=\"none\"}}")
            )
            .is_some_and(|v| v >= 1.0),
            "{op}: {page}"
        );
    }

    // A first handful of unknown kinds and garbage makes the series such calls need
    // (their fault codes, `other`, `unknown`); after that, 500 more of each add none.
    flood(&gw, &consumer, 0..10).await;
    let warm = series(&scrape(&api).await);
    flood(&gw, &consumer, 10..510).await;
    let page = scrape(&api).await;
    let after = series(&page);
    let new: Vec<_> = after.difference(&warm).collect();
    assert!(new.is_empty(), "the flood added series: {new:?}");
    assert!(after.len() < 600, "{} series", after.len());
    assert!(
        value(
            &page,
            "mezhved_requests_total{kind=\"other\",outcome=\"rejected\"}"
        )
        .is_some_and(|v| v >= 510.0),
        "{page}"
    );
    assert!(
        value(
            &page,
            "mezhved_calls_total{operation=\"SendRequest\",fault=\"BusinessDataTypeIsNotSupported\"}"
        )
        .is_some_and(|v| v >= 510.0),
        "{page}"
    );
    assert!(
        value(
            &page,
            "mezhved_calls_total{operation=\"unknown\",fault=\"InvalidContent\"}"
        )
        .is_some_and(|v| v >= 255.0),
        "{page}"
    );
    assert!(
        !page.contains("urn:random") && !page.contains("urn:garbage") && !page.contains("Unknown1")
    );
    // Every `kind` label is a registry name or `other`.
    let registry = gw.state.registry.get();
    for s in &after {
        if let Some(rest) = s.split("kind=\"").nth(1) {
            let kind = rest.split('"').next().unwrap_or_default();
            let known = registry.data.kinds.iter().any(|k| k.name == kind);
            let fixed = ["other", "reminder", "overdue", "expiry"].contains(&kind);
            assert!(known || fixed, "kind label {kind:?} in {s}");
        }
    }

    // The request was acknowledged but never answered: 40 days on, its reminder and
    // overdue deadlines have fired and it is open past due.
    gw.clock
        .advance(std::time::Duration::from_secs(40 * 24 * 3600));
    let timer = gw.deadline_timer("metrics-test");
    for _ in 0..5 {
        if timer.run_once().await.expect("timer pass") == 0 {
            break;
        }
    }
    let page = scrape(&api).await;
    for kind in ["reminder", "overdue"] {
        assert!(
            value(
                &page,
                &format!("mezhved_deadline_firings_total{{kind=\"{kind}\"}}")
            )
            .is_some_and(|v| v >= 1.0),
            "{kind}: {page}"
        );
    }
    assert_eq!(
        value(&page, "mezhved_overdue_requests"),
        Some(1.0),
        "{page}"
    );
    // The deadline statuses wait in the provider's status queue; the consumer's has
    // waited since the request was sent, 40 days ago.
    assert!(
        value(
            &page,
            "mezhved_queue_depth{system=\"ZAGS_IS\",queue=\"statuses\"}"
        )
        .is_some_and(|v| v >= 1.0),
        "{page}"
    );
    assert!(
        value(
            &page,
            "mezhved_queue_oldest_age_seconds{system=\"USZN_IS\",queue=\"statuses\"}"
        )
        .is_some_and(|v| v >= 40.0 * 24.0 * 3600.0),
        "{page}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_guards_metrics_when_configured_and_disabled_means_absent() {
    // sha256("metrics-token")
    let hash = hex::encode(openssl::sha::sha256(b"metrics-token"));
    let gw = TestGateway::start_with(|c| c.metrics.token_sha256 = hash).await;
    let api = Api::new(&gw.url);
    assert_eq!(api.send("GET", "/metrics", None, None).await.status, 401);
    assert_eq!(
        api.send("GET", "/metrics", Some("wrong"), None)
            .await
            .status,
        401
    );
    let r = api
        .send("GET", "/metrics", Some("metrics-token"), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("mezhved_journal_events "), "{}", r.text());
    gw.stop().await;

    let gw = TestGateway::start_with(|c| c.metrics.enabled = false).await;
    let api = Api::new(&gw.url);
    assert_eq!(api.send("GET", "/metrics", None, None).await.status, 404);
    gw.stop().await;
}
