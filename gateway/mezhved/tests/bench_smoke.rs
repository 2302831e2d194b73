//! `mezhved bench --quick`: every part runs end to end (the journal part over tiny
//! journals, the deadlines part over a few thousand rows), and the JSON report carries every figure and a verdict for each of the
//! issues' targets. Nothing here asserts a speed:
//! this runs in a debug build on whatever machine CI has.

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The value at `path`; a number in it indexes an array.
fn at<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(v, |v, p| match (v, p.parse::<usize>()) {
        (Value::Array(items), Ok(i)) => items.get(i).unwrap_or(&Value::Null),
        _ => &v[*p],
    })
}

#[track_caller]
fn number(v: &Value, path: &[&str]) -> f64 {
    at(v, path)
        .as_f64()
        .unwrap_or_else(|| panic!("{} is not a number in the report: {v:#}", path.join(".")))
}

#[test]
fn quick_bench_reports_every_figure_and_target() {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("bench.json");
    let out = Command::new(env!("CARGO_BIN_EXE_mezhved"))
        .args(["bench", "--quick", "--repo"])
        .arg(root())
        .arg("--tmp")
        .arg(dir.path())
        .arg("--json")
        .arg(&json)
        .output()
        .expect("mezhved runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "mezhved bench --quick failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("targets:"), "{stdout}");
    let text = std::fs::read_to_string(&json).expect("the JSON report is written");
    let v: Value = serde_json::from_str(&text).expect("the report is JSON");

    assert_eq!(at(&v, &["config", "quick"]), &Value::Bool(true));
    for path in [
        &["crypto", "signs_per_s"][..],
        &["crypto", "verifies_per_s"],
        &["crypto", "sign_us_per_core"],
        &["crypto", "verify_us_per_core"],
        &["crypto", "signs_per_exchange", "total"],
        &["crypto", "verifies_per_exchange", "total"],
        &["crypto", "bound_exchanges_per_s"],
        &["echo", "calls_per_s"],
        &["echo", "ops", "echo", "p99_ms"],
        &["latency", "target_exchanges_per_s"],
        &["latency", "send_request", "p50_ms"],
        &["latency", "send_request", "p99_ms"],
        &["latency", "send_request_service", "p99_ms"],
        &["latency", "send_lateness", "p99_ms"],
        &["mtom", "attachment_bytes"],
        &["mtom", "upload_mb_per_s"],
        &["mtom", "download_mb_per_s"],
        &["mtom", "rss_before_kb"],
        &["mtom", "rss_peak_sampled_kb"],
        &["mtom", "rss_growth_mb"],
        &["mtom", "vm_hwm_after_kb"],
        &["queued", "messages"],
        &["queued", "enqueue_per_s"],
        &["queued", "database_bytes"],
        &["queued", "vm_hwm_mb"],
        &["queued", "get_request_plus_ack", "p50_ms"],
        &["queued", "queue_statistics_ms"],
        &["queued", "reopen_seconds"],
        &["journal", "events_large"],
        &["journal", "events_small"],
        &["journal", "free_bytes_before"],
        &["journal", "cost", "ratio_mean"],
        &["journal", "cost", "cpu_ratio"],
        &["journal", "cost", "pairs", "0", "off_exchanges_per_s"],
        &["journal", "cost", "pairs", "0", "on_exchanges_per_s"],
        &["journal", "cost", "pairs", "0", "ratio"],
        &["journal", "cost", "off_mean_exchanges_per_s"],
        &["journal", "cost", "on_mean_exchanges_per_s"],
        &["journal", "prefill", "small", "seconds"],
        &["journal", "prefill", "large", "seconds"],
        &["journal", "prefill", "large", "mean_leaf_bytes"],
        &["journal", "prefill", "large", "database_bytes"],
        &["journal", "verify", "seconds"],
        &["journal", "verify", "events_per_s"],
        &["journal", "proofs", "at_size"],
        &["journal", "proofs", "inclusion", "p50_ms"],
        &["journal", "proofs", "inclusion", "p99_ms"],
        &["journal", "proofs", "consistency", "p50_ms"],
        &["journal", "proofs", "consistency", "p99_ms"],
        &["journal", "proofs", "rest", "inclusion", "p50_ms"],
        &["journal", "proofs", "rest", "consistency", "p50_ms"],
        &["journal", "scale", "small", "exchanges_per_s"],
        &["journal", "scale", "large", "exchanges_per_s"],
        &["journal", "scale", "ratio"],
        &["journal", "scale", "appended_over_large", "events"],
        &["deadlines", "pending_large"],
        &["deadlines", "pending_small"],
        &["deadlines", "due"],
        &["deadlines", "memory", "rss_after_idle_large_minus_small_mb"],
        &["deadlines", "memory", "sqlite_page_cache_bound_mb"],
    ] {
        number(&v, path);
    }
    // Both load runs complete exchanges, every step of them, without a single fault.
    for run in ["exchange_signed", "exchange_nocrypto"] {
        assert!(number(&v, &[run, "exchanges"]) > 0.0, "{run}: {v:#}");
        for figure in [
            "exchanges_per_s",
            "calls_per_s",
            "useful_calls_per_s",
            "calls_per_exchange",
        ] {
            number(&v, &[run, figure]);
        }
        number(&v, &[run, "cpu_us_per_exchange", "total"]);
        assert_eq!(number(&v, &[run, "errors"]), 0.0, "{run}: {v:#}");
        for op in [
            "send_request",
            "get_request",
            "ack_request",
            "send_response",
            "get_response",
            "ack_response",
        ] {
            assert!(number(&v, &[run, "ops", op, "count"]) > 0.0, "{run}.{op}");
            number(&v, &[run, "ops", op, "p50_ms"]);
            number(&v, &[run, "ops", op, "p99_ms"]);
        }
    }
    number(
        &v,
        &["exchange_signed", "crypto_work", "share_of_process_cpu"],
    );
    assert_eq!(number(&v, &["echo", "errors"]), 0.0);
    assert_eq!(number(&v, &["latency", "errors"]), 0.0);
    assert_eq!(at(&v, &["mtom", "sha256_match"]), &Value::Bool(true));
    assert_eq!(
        number(&v, &["queued", "messages"]),
        number(&v, &["config", "queued"])
    );

    // The journal: every load run completes exchanges without a fault (journal off and
    // on, over the small and the large prefilled journal); the large journal verifies
    // clean with every prefilled event, and the gateway appended after it.
    let pairs = at(&v, &["journal", "cost", "pairs"])
        .as_array()
        .expect("pairs");
    assert_eq!(pairs.len() as f64, number(&v, &["config", "journal_pairs"]));
    let runs = at(&v, &["journal", "cost", "runs"])
        .as_array()
        .expect("runs");
    assert_eq!(runs.len(), 2 * pairs.len());
    let journal_flags: Vec<bool> = runs
        .iter()
        .map(|r| r["journal"].as_bool().expect("journal flag"))
        .collect();
    assert_eq!(journal_flags[..2], [false, true]);
    for run in runs.iter().chain([
        at(&v, &["journal", "scale", "small"]),
        at(&v, &["journal", "scale", "large"]),
    ]) {
        assert!(run["exchanges"].as_f64() > Some(0.0), "{run}");
        assert_eq!(run["errors"].as_f64(), Some(0.0), "{run}");
    }
    let large = number(&v, &["config", "journal_events"]);
    assert_eq!(number(&v, &["journal", "events_large"]), large);
    assert_eq!(
        number(&v, &["journal", "prefill", "large", "events"]),
        large
    );
    assert_eq!(
        number(&v, &["journal", "prefill", "small", "events"]),
        number(&v, &["config", "journal_baseline_events"])
    );
    assert_eq!(number(&v, &["journal", "verify", "events"]), large);
    assert_eq!(at(&v, &["journal", "verify", "clean"]), &Value::Bool(true));
    assert!(number(&v, &["journal", "proofs", "at_size"]) > large);
    assert!(number(&v, &["journal", "scale", "appended_over_large", "events"]) > 0.0);

    // Deadlines: both idle runs (each in a process of its own) report CPU and memory and
    // fire nothing; every due row of each kind fires, with its statuses and journal events.
    for (label, pending) in [
        ("small", "deadlines_baseline_pending"),
        ("large", "deadlines_pending"),
    ] {
        let idle = at(&v, &["deadlines", "idle", label]);
        assert_eq!(number(idle, &["pending"]), number(&v, &["config", pending]));
        // The prefilled rows, and the template request's own.
        assert!(number(idle, &["counts_after", "pending"]) >= number(idle, &["pending"]));
        assert_eq!(number(idle, &["counts_after", "fired"]), 0.0);
        assert_eq!(idle["own_process"], Value::Bool(true), "{idle}");
        for path in [
            &["core_pct"][..],
            &["window_seconds"],
            &["cpu_seconds", "total"],
            &["memory_kb", "before_open", "rss"],
            &["memory_kb", "after_open", "rss"],
            &["memory_kb", "after_idle", "rss"],
            &["timer_pass", "cpu_us_per_pass"],
            &["timer_pass", "wall", "p50_ms"],
            &["timer_pass", "core_pct_at_one_pass_per_max_idle"],
            &["timer_pass", "next_deadline_in_s"],
            &["prefill", "database_bytes"],
        ] {
            number(idle, path);
        }
        // Nothing is due for days (the template request's reminder is the earliest).
        assert!(number(idle, &["timer_pass", "next_deadline_in_s"]) > 86_400.0);
    }
    let due = number(&v, &["config", "deadlines_due"]);
    for (kind, statuses, events) in [("overdue", 2.0, 3.0), ("reminder", 1.0, 2.0)] {
        let run = at(&v, &["deadlines", "firing", kind]);
        assert_eq!(number(run, &["fired"]), due, "{kind}: {run}");
        assert_eq!(number(run, &["due_after"]), 0.0, "{kind}: {run}");
        assert_eq!(
            number(run, &["status_messages_per_row"]),
            statuses,
            "{kind}"
        );
        assert_eq!(
            number(run, &["appended", "events"]),
            events * due,
            "{kind}: {run}"
        );
        for path in [
            &["deadlines_per_s"][..],
            &["seconds"],
            &["cpu_us_per_row", "total"],
            &["cpu_us_per_row", "store_writer"],
        ] {
            number(run, path);
        }
    }

    // Adapters: both runs completed, every submitted request is in the outbox.
    for path in [
        &["adapters", "direct", "exchanges_per_s"][..],
        &["adapters", "through_adapters", "exchanges_per_s"],
        &["adapters", "through_adapters", "seconds"],
        &["adapters", "ratio"],
        &["adapters", "outbox", "rss_at_first_kb"],
        &["adapters", "outbox", "rss_at_all_kb"],
        &["adapters", "outbox", "rss_growth_mb"],
    ] {
        number(&v, path);
    }
    assert_eq!(
        number(&v, &["adapters", "outbox", "queued"]),
        number(&v, &["adapters", "outbox", "submitted"])
    );

    // Monitoring: the same gateway with and without the pollers; every poll answered.
    number(&v, &["monitoring", "ratio_mean"]);
    let runs = at(&v, &["monitoring", "runs"])
        .as_array()
        .expect("monitoring runs");
    assert_eq!(runs.len(), 2, "{runs:?}");
    for run in runs {
        number(run, &["exchanges_per_s"]);
        if run["polled"] == Value::Bool(true) {
            assert!(number(run, &["polls", "polls"]) >= 2.0, "{run}");
            assert_eq!(number(run, &["polls", "errors"]), 0.0, "{run}");
        }
    }

    let targets = at(&v, &["targets"]).as_array().expect("targets");
    let names: Vec<&str> = targets
        .iter()
        .map(|t| t["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        [
            "signed_exchanges_vs_crypto_bound",
            "nocrypto_calls_vs_echo",
            "send_request_p99_at_half_rate",
            "mtom_rss_growth",
            "queued_rss",
            "journal_append_cost",
            "journal_verify_rate",
            "journal_proof_p99",
            "journal_scale",
            "deadlines_idle_cpu",
            "deadlines_idle_memory",
            "deadlines_firing_overdue",
            "deadlines_firing_reminder",
            "adapters_vs_direct",
            "adapter_outbox_memory",
            "monitoring_overhead",
        ]
    );
    for t in targets {
        assert!(t["measured"].is_number(), "{t}");
        assert!(t["limit"].is_number(), "{t}");
        assert!(t["met"].is_boolean(), "{t}");
        assert!(t["target"].is_string(), "{t}");
    }
}
