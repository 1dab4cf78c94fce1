"""The Grafana dashboard and the Prometheus rules in deploy/ query only what Plume exposes.

Every PromQL expression (dashboard targets, templating queries, alert rules) is tokenised;
each metric it names must be a sample name that `plume.metrics.registry` exposes (or one of
the few non-Plume metrics allowed in tests/deploy/promql.py), and each label it uses must be
one of that metric's labels. No database: plain functions only. promtool, when on PATH,
checks the files too (tests/deploy/test_promtool.py).
"""

from __future__ import annotations

import re

import pytest

from tests.deploy.promql import (
    EXPOSED,
    KNOWN,
    PROMETHEUS_CONFIG,
    ROOT,
    alert_rules,
    alerts_by_metric,
    all_panels,
    dashboard_expressions,
    load_dashboard,
    load_yaml,
    parse_promql,
    problems,
)

# --------------------------------------------------------------------------- the tokeniser


def test_the_registry_is_read_not_hard_coded() -> None:
    assert EXPOSED["plume_requests_total"] == {"organization", "kind", "model_group", "outcome"}
    assert "le" in EXPOSED["plume_http_request_duration_seconds_bucket"]
    assert "plume_http_request_duration_seconds_count" in EXPOSED
    assert "plume_quota_used_ratio" in EXPOSED
    assert "plume_requests" not in EXPOSED  # counters are exposed with _total only
    assert "plume_quota_used_ratio_total" not in EXPOSED


def test_the_tokeniser_finds_metrics_and_skips_functions_labels_and_strings() -> None:
    query = parse_promql(
        "histogram_quantile(0.95, sum by (route, le) (rate(plume_http_request_duration_seconds"
        '_bucket{route!~"/v1/drafts|rate(x)", method="POST"}[$__rate_interval]))) > 1e-9\n'
        "and on (route) group_left sum without (status) (increase(plume_requests_total[5m]"
        " offset 1h)) / ignoring(le) up"
    )
    assert query.metrics == {
        "plume_http_request_duration_seconds_bucket",
        "plume_requests_total",
        "up",
    }
    assert ("plume_http_request_duration_seconds_bucket", {"route", "method"}) in [
        (name, set(labels)) for name, labels in query.selectors
    ]
    assert query.grouping_labels == {"route", "le", "status"}


def test_the_tokeniser_reads_grafana_label_values() -> None:
    query = parse_promql("label_values(plume_requests_total, organization)")
    assert query.metrics == {"plume_requests_total"}
    assert query.selectors == [("plume_requests_total", frozenset({"organization"}))]
    assert problems("label_values(plume_requests_total, organisation)", "t")


@pytest.mark.parametrize(
    ("expr", "complaint"),
    [
        ('sum(rate(plume_nope_total{organization=~"$organization"}[5m]))', "plume_nope_total"),
        ("rate(plume_requests[5m])", "plume_requests"),  # counter without _total
        ("plume_quota_used_ratio_total", "plume_quota_used_ratio_total"),
        ("rate(http_requests_total[5m])", "http_requests_total"),  # not Plume's, not allowed
        ('plume_tokens_total{direction="prompt", tenant="76349"}', "tenant"),
        ('plume_cost_euros_total{le="1"}', "le"),  # le only on _bucket
        ("sum by (organisation) (rate(plume_requests_total[5m]))", "organisation"),
        ("sum by (provider) (rate(plume_requests_total[5m]))", "provider"),
        ('{__name__="plume_requests_total"}', "without a metric name"),
    ],
)
def test_mistakes_are_caught(expr: str, complaint: str) -> None:
    found = problems(expr, "test")
    assert found, expr
    assert any(complaint in problem for problem in found), found


def test_a_legend_label_missing_from_the_query_is_caught() -> None:
    expr = "sum by (from_provider) (rate(plume_fallbacks_total[5m]))"
    assert problems(expr, "t", "{{from_provider}} · {{ $labels.from_provider }}") == []
    assert problems(expr, "t", "{{to_provider}}")  # a label of the metric, but summed away
    assert problems(expr, "t", "{{ $labels.organization }}")
    assert problems('up{job="plume"} == 0', "t", "{{ $labels.instance }}") == []


# --------------------------------------------------------------------------- the dashboard


def test_every_dashboard_query_uses_exposed_metrics_and_labels() -> None:
    found = []
    expressions = list(dashboard_expressions())
    assert len(expressions) > 15
    for where, expr, legend in expressions:
        found += problems(expr, where, legend)
    assert found == []


def test_the_dashboard_covers_the_operators_questions() -> None:
    queried: set[str] = set()
    for _, expr, _ in dashboard_expressions():
        queried |= parse_promql(expr).metrics
    wanted = {
        "plume_requests_total",  # requests by outcome, error rate
        "plume_tokens_total",
        "plume_cost_euros_total",
        "plume_energy_kwh_total",
        "plume_gwp_kgco2eq_total",
        "plume_http_request_duration_seconds_bucket",
        "plume_provider_latency_seconds_bucket",
        "plume_quota_used_ratio",
        "plume_provider_requests_total",
        "plume_fallbacks_total",
        "plume_refusals_total",
        "plume_provider_attempts_total",
        "plume_time_to_first_token_seconds_bucket",
        "plume_synthese_jobs",
        "plume_synthese_oldest_queued_seconds",
        "plume_audit_verification_failures_total",
        "plume_organization_info",
    }
    assert wanted - queried == set()
    exprs = [expr for _, expr, _ in dashboard_expressions()]
    assert any('outcome="failure"' in e and "/" in e and "plume_requests_total" in e for e in exprs)
    for quantile in ("0.5", "0.95", "0.99"):
        assert any(
            f"histogram_quantile({quantile}," in e
            and "plume_http_request_duration_seconds_bucket" in e
            for e in exprs
        )
    assert any("increase(plume_cost_euros_total" in e and "$__range" in e for e in exprs)
    # 429s per commune, named: joined with the organisations' info on their slug.
    assert any(
        'status="429"' in e
        and "plume_refusals_total" in e
        and "group_left (name)" in e
        and "plume_organization_info" in e
        for e in exprs
    )
    # The share of 5xx among HTTP answers.
    assert any(
        'status=~"5.."' in e and "/" in e and "plume_http_request_duration_seconds_count" in e
        for e in exprs
    )
    assert any(
        "histogram_quantile(0.95," in e and "plume_time_to_first_token_seconds_bucket" in e
        for e in exprs
    )


def test_per_tenant_queries_follow_the_organization_variable() -> None:
    for where, expr, _ in dashboard_expressions():
        if where.startswith("variable"):
            continue
        for name in parse_promql(expr).metrics:
            if "organization" in KNOWN.get(name, frozenset()):
                assert re.search(r'\borganization=~"\$organization"', expr), (where, expr)


def test_the_dashboard_is_importable_with_its_variables() -> None:
    dashboard = load_dashboard()
    assert dashboard["schemaVersion"] >= 36
    assert dashboard["uid"]
    assert dashboard["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    source = variables["datasource"]
    assert (source["type"], source["query"]) == ("datasource", "prometheus")
    organization = variables["organization"]
    assert organization["type"] == "query"
    query = organization["query"]
    text = query["query"] if isinstance(query, dict) else query
    assert text == "label_values(plume_requests_total, organization)"
    assert organization["multi"] is True
    assert organization["includeAll"] is True
    ids = []
    for panel in all_panels(dashboard):
        ids.append(panel["id"])
        assert {"h", "w", "x", "y"} <= panel["gridPos"].keys(), panel["title"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
    assert len(ids) == len(set(ids))


def test_the_quota_panels_have_thresholds_at_90_and_100_percent() -> None:
    quota_panels = [
        panel
        for panel in all_panels(load_dashboard())
        if any("plume_quota_used_ratio" in t.get("expr", "") for t in panel.get("targets", []))
    ]
    assert quota_panels
    for panel in quota_panels:
        steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        assert {step["value"] for step in steps} >= {0.9, 1}, panel["title"]
        assert panel["fieldConfig"]["defaults"]["unit"] == "percentunit"


# --------------------------------------------------------------------------- the alerts

FRENCH = re.compile(
    r"[éèêàùçôî]|\b(le|la|les|des|du|de|est|sont|sur|pour|depuis|échoue|collectivité)\b",
    re.IGNORECASE,
)


def test_every_alert_queries_exposed_metrics_and_labels() -> None:
    found = []
    rules = alert_rules()
    assert rules
    for rule in rules:
        annotations = " ".join(rule["annotations"].values())
        found += problems(rule["expr"], f"alert {rule['alert']}", annotations)
    assert found == []


def test_every_alert_is_labelled_and_explained_in_french() -> None:
    names = []
    for rule in alert_rules():
        name = rule["alert"]
        names.append(name)
        assert re.fullmatch(r"Plume[A-Z][A-Za-z]+", name), name
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        assert re.fullmatch(r"\d+[smh]", rule["for"]), name
        for key in ("summary", "description"):
            assert FRENCH.search(rule["annotations"][key]), (name, key)
    assert len(names) == len(set(names))


def test_the_alerts_cover_providers_fallbacks_quotas_latency_and_readiness() -> None:
    assert alerts_by_metric("plume_provider_requests_total")
    assert alerts_by_metric("plume_fallbacks_total")
    assert alerts_by_metric("plume_http_request_duration_seconds_bucket")
    quota = alerts_by_metric("plume_quota_used_ratio")
    assert any(re.search(r">=\s*0\.9\b", rule["expr"]) for rule in quota)
    ready = alerts_by_metric("probe_success")
    assert any('job="plume-readyz"' in rule["expr"] for rule in ready)
    up = alerts_by_metric("up")
    assert any('job="plume"' in rule["expr"] for rule in up)


def test_the_alerts_cover_refusals_server_errors_first_tokens_jobs_and_the_audit() -> None:
    refusals = alerts_by_metric("plume_refusals_total")
    assert any(
        'status="429"' in rule["expr"] and "by (organization)" in rule["expr"] for rule in refusals
    )
    answers = alerts_by_metric("plume_http_request_duration_seconds_count")
    assert any('status=~"5.."' in rule["expr"] for rule in answers)
    assert alerts_by_metric("plume_time_to_first_token_seconds_bucket")
    assert alerts_by_metric("plume_synthese_oldest_queued_seconds")
    assert alerts_by_metric("plume_audit_verification_failures_total")
    assert alerts_by_metric("plume_provider_attempts_total")


def _anchors(markdown: str) -> set[str]:
    """GitHub's anchors of a Markdown file's headings."""
    anchors = set()
    for line in markdown.splitlines():
        heading = re.match(r"^#{1,6}\s+(.*)$", line)
        if heading:
            slug = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower())
            anchors.add(slug.replace(" ", "-"))
    return anchors


def test_every_alert_links_to_its_runbook() -> None:
    """`runbook_url` names a section that exists, in deploy/README.md or docs/operations.md."""
    for rule in alert_rules():
        link = rule["annotations"]["runbook_url"]
        path, _, anchor = link.partition("#")
        assert path in {"deploy/README.md", "docs/operations.md"}, link
        assert anchor == rule["alert"].lower(), link
        assert anchor in _anchors((ROOT / path).read_text(encoding="utf-8")), link


def test_the_example_config_scrapes_what_the_alerts_expect() -> None:
    config = load_yaml(PROMETHEUS_CONFIG)
    assert "alerts.yml" in config["rule_files"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["plume"]["metrics_path"] == "/metrics"
    assert jobs["plume"]["authorization"]["credentials_file"]
    probe = jobs["plume-readyz"]
    assert probe["metrics_path"] == "/probe"
    targets = [t for group in probe["static_configs"] for t in group["targets"]]
    assert targets
    assert all(target.endswith("/readyz") for target in targets)
