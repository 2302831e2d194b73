"""`/metrics` read by Prometheus's own text-format parser (prometheus_client).

The real `mezhved serve` (deploy/sample/mezhved.toml) carries a request through
SendRequest -> GetRequest -> Ack, refuses a request for an unknown kind of information
and a call that is no SMEV operation; then its `/metrics` page must parse completely
with `prometheus_client.parser.text_string_to_metric_families`, every histogram must
have its `_bucket` series (ending at `+Inf`), `_sum` and `_count`, and every label value
must come from the bounded sets of docs/metrics.md (registry names, fixed enums).
"""

import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

import gateway as G
from conftest import NS

OPERATIONS = {"SendRequest", "SendResponse", "GetRequest", "GetResponse", "Ack", "GetStatus",
              "GetIncomingQueueStatistics", "unknown"}
FAULTS = {"none", "InvalidContent", "SignatureVerificationFault", "SenderIsNotRegistered",
          "InvalidMessageIdFormat", "StaleMessageId", "MessageIsAlreadySent", "AccessDenied",
          "BusinessDataTypeIsNotSupported", "UnknownMessageType", "RecipientIsNotFound",
          "IncorrectResponseContentType", "TargetMessageIsNotFound",
          "AttachmentContentMiscoordination", "AttachmentSizeLimitExceeded", "EndOfLifeReached",
          "SMEVFailure", "other"}
QUEUES = {"requests", "responses", "statuses"}
SAMPLE_SYSTEMS = {"USZN_IS", "ZAGS_IS", "PFR_IS", "other"}
HISTOGRAMS = {"mezhved_call_duration_seconds", "mezhved_store_commit_seconds", "mezhved_store_batch_size"}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    with G.started(tmp_path_factory.mktemp("metrics-gateway")) as gw:
        yield gw


def call(gw: G.Gateway, unsigned: bytes, system: str) -> G.Reply:
    return G.Reply(gw.post(G.sign(unsigned, system)), unsigned)


def scrape(gw: G.Gateway) -> dict:
    r = gw.get(f"{gw.base}/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4"), r.headers["Content-Type"]
    families = list(text_string_to_metric_families(r.text))
    names = [f.name for f in families]
    assert len(names) == len(set(names)), f"a family appears twice: {names}"
    return {f.name: f for f in families}


def test_metrics_parse_and_labels_are_bounded(gateway):
    gw = gateway
    sent = call(gw, G.send_request(G.birth_request()), "USZN_IS")
    assert sent.fault is None, sent.describe()
    gid = sent.text(NS, "MessageId")
    got = call(gw, G.get_request(), "ZAGS_IS")
    assert got.fault is None, got.describe()
    acked = call(gw, G.ack(gid), "ZAGS_IS")
    assert acked.fault is None, acked.describe()
    unknown = f'<x:Unregistered xmlns:x="urn:random:{uuid.uuid4()}"><x:V>1</x:V></x:Unregistered>'
    refused = call(gw, G.send_request(unknown), "USZN_IS")
    assert refused.fault_name == "BusinessDataTypeIsNotSupported", refused.describe()
    garbage = gw.post(b"<soap:Envelope xmlns:soap='http://schemas.xmlsoap.org/soap/envelope/'>"
                      b"<soap:Body><g:Nonsense xmlns:g='urn:garbage'/></soap:Body></soap:Envelope>")
    assert garbage.status_code == 500

    families = scrape(gw)
    calls = families["mezhved_calls"]  # the parser drops the counter's _total suffix
    assert calls.type == "counter"
    seen = {(s.labels["operation"], s.labels["fault"]) for s in calls.samples if s.name.endswith("_total")}
    for pair in [("SendRequest", "none"), ("GetRequest", "none"), ("Ack", "none"),
                 ("SendRequest", "BusinessDataTypeIsNotSupported"), ("unknown", "InvalidContent")]:
        assert pair in seen, (pair, seen)

    for name in HISTOGRAMS:
        family = families[name]
        assert family.type == "histogram", (name, family.type)
        suffixes = {s.name[len(name):] for s in family.samples}
        assert {"_bucket", "_sum", "_count"} <= suffixes, (name, suffixes)
        # Per label set: buckets ascend to +Inf, whose count equals _count.
        groups = {}
        for s in family.samples:
            key = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
            groups.setdefault(key, {"buckets": [], "count": None})
            if s.name.endswith("_bucket"):
                groups[key]["buckets"].append((float(s.labels["le"]), s.value))
            elif s.name.endswith("_count"):
                groups[key]["count"] = s.value
        for key, g in groups.items():
            buckets = g["buckets"]
            assert buckets and buckets[-1][0] == float("inf"), (name, key, buckets)
            values = [v for _, v in buckets]
            assert values == sorted(values), (name, key, values)
            assert buckets[-1][1] == g["count"], (name, key)

    depth = families["mezhved_queue_depth"]
    assert depth.type == "gauge"
    assert {s.labels["system"] for s in depth.samples} <= SAMPLE_SYSTEMS
    zags = [s.value for s in depth.samples if s.labels == {"system": "ZAGS_IS", "queue": "requests"}]
    assert zags == [0], f"the provider's request queue is empty after the Ack: {zags}"
    assert all(s.value >= 0 for s in depth.samples)
    for name in ["mezhved_journal_events", "mezhved_overdue_requests", "mezhved_checkpoint_age_seconds",
                 "mezhved_queue_oldest_age_seconds"]:
        assert families[name].type == "gauge", name
    assert families["mezhved_journal_events"].samples[0].value >= 3

    # Every label value of every family is within its bounded set.
    registry_kinds = {"Birth record", "other"}
    bounded = {"operation": OPERATIONS, "fault": FAULTS, "queue": QUEUES, "system": SAMPLE_SYSTEMS,
               "outcome": {"accepted", "rejected"}, "kind": None, "class": None, "le": None}
    for family in families.values():
        assert family.name.startswith("mezhved_"), family.name
        for s in family.samples:
            for label, value in s.labels.items():
                assert label in bounded, (family.name, label)
                allowed = bounded[label]
                if label == "kind":
                    allowed = registry_kinds if family.name == "mezhved_requests" else {"reminder", "overdue", "expiry"}
                if allowed is not None:
                    assert value in allowed, (family.name, label, value)
            assert "urn:" not in str(s.labels), s


def test_grafana_dashboard_queries_only_metrics_the_gateway_serves(gateway):
    """deploy/grafana/mezhved-dashboard.json: an importable dashboard (schemaVersion ≥ 36,
    a `${DS_PROMETHEUS}` input) whose every query names a family of the live page."""
    import json
    import re

    from conftest import ROOT

    dash = json.loads((ROOT / "deploy" / "grafana" / "mezhved-dashboard.json").read_text())
    assert dash["schemaVersion"] >= 36
    assert [i["name"] for i in dash["__inputs"]] == ["DS_PROMETHEUS"]
    served = set(scrape(gateway))
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 12
    for panel in dash["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
    for expr in exprs:
        for name in re.findall(r"\bmezhved_[a-z_]+", expr):
            family = re.sub(r"(_bucket|_sum|_count|_total)$", "", name)
            # Push failures by class appear with the first failure (no push here).
            assert family in served or family == "mezhved_push_failures", (name, expr)
    titles = " ".join(p["title"] for p in dash["panels"]).lower()
    for word in ["call rate", "fault", "latency", "queue depth", "oldest", "overdue", "journal",
                 "checkpoint", "commit", "batch"]:
        assert word in titles, word
