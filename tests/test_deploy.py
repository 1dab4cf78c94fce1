"""The Grafana dashboard and the Prometheus rules in deploy/ query only what Plume exposes.

Every PromQL expression (dashboard targets, templating queries, alert rules) is tokenised;
each metric it names must be a sample name that `plume.metrics.registry` exposes (or one of
the few non-Plume metrics allowed below), and each label it uses must be one of that metric's
labels. No database: plain functions only. promtool, when on PATH, checks the files too and
unit-tests the alerts on synthetic series.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from plume.metrics import registry

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "deploy" / "grafana" / "plume-dashboard.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"

# Metrics that are not Plume's own: the scrape's `up` and the blackbox exporter's probe of
# /readyz (see deploy/README.md), with the labels Prometheus gives them.
ALLOWED_FOREIGN: dict[str, frozenset[str]] = {
    "up": frozenset({"job", "instance"}),
    "probe_success": frozenset({"job", "instance"}),
}
# Added by Prometheus to every scraped series.
TARGET_LABELS = frozenset({"job", "instance"})

# Sample names per metric type. `_created` is left out on purpose: the multiprocess collector
# (plume serve --workers N) never exposes it, so a query on it would be empty in production.
SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
    "info": ("_info",),
    "stateset": ("",),
    "enum": ("",),
}

KEYWORDS = frozenset(
    {
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "offset",
        "and",
        "or",
        "unless",
        "atan2",
        "inf",
        "nan",
    }
)
IDENTIFIER = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
SELECTOR = re.compile(rf"(?<![\w.:])({IDENTIFIER})?\s*\{{([^}}]*)\}}")
MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*\"\"")
GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
TOKEN = re.compile(rf"(?<![\w.:$])({IDENTIFIER})(\s*\()?")
LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(.*?)\s*,\s*)?([a-zA-Z_]\w*)\s*\)\s*$", re.S)
LEGEND_LABEL = re.compile(r"\{\{\s*([a-zA-Z_]\w*)\s*\}\}")
TEMPLATE_LABEL = re.compile(r"\$labels\.([a-zA-Z_]\w*)")


# --------------------------------------------------------------------------- what Plume exposes


def exposed_metrics() -> dict[str, frozenset[str]]:
    """Sample name -> its label names, for every metric object in plume.metrics.registry."""
    exposed: dict[str, frozenset[str]] = {}
    for value in vars(registry).values():
        if not isinstance(value, MetricWrapperBase):
            continue
        labels = frozenset(value._labelnames)
        for family in value.describe():
            for suffix in SUFFIXES[family.type]:
                name = family.name + suffix
                exposed[name] = labels | {"le"} if suffix == "_bucket" else labels
    return exposed


EXPOSED = exposed_metrics()
KNOWN = {**EXPOSED, **ALLOWED_FOREIGN}


# --------------------------------------------------------------------------- PromQL tokeniser


@dataclass
class Query:
    """What one PromQL expression refers to."""

    metrics: set[str] = field(default_factory=set)
    # (metric name or None for a bare `{...}`, label names used in its matchers)
    selectors: list[tuple[str | None, frozenset[str]]] = field(default_factory=list)
    grouping_labels: set[str] = field(default_factory=set)
    # labels of `by (...)` clauses alone: what an aggregated result keeps
    by_labels: set[str] = field(default_factory=set)


def parse_promql(expr: str) -> Query:
    """Metric names, label matchers and grouping labels of a PromQL (or Grafana) expression.

    String literals are blanked, selector braces emptied, `[...]` ranges and `by (...)`-like
    clauses removed; what remains as an identifier not followed by `(` (a function call) and
    not a keyword is a metric name.
    """
    query = Query()
    variable_query = LABEL_VALUES.match(expr)
    if variable_query:  # Grafana's label_values([selector,] label)
        inner, label = variable_query.groups()
        if inner is None:
            query.grouping_labels.add(label)
            return query
        query = parse_promql(inner)
        name = next(iter(query.metrics), None)
        query.selectors.append((name, frozenset({label})))
        return query
    text = STRING.sub('""', expr)
    for match in SELECTOR.finditer(text):
        matchers = frozenset(m.group(1) for m in MATCHER.finditer(match.group(2)))
        query.selectors.append((match.group(1), matchers))
    text = SELECTOR.sub(lambda m: (m.group(1) or "") + "{}", text)
    for match in GROUPING.finditer(text):
        labels = {label.strip() for label in match.group(2).split(",") if label.strip()}
        query.grouping_labels |= labels
        if match.group(1) == "by":
            query.by_labels |= labels
    text = GROUPING.sub(" ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges, subqueries, Grafana's $__rate_interval
    text = re.sub(r"\$\{?\w+\}?", " ", text)  # other Grafana variables
    for match in TOKEN.finditer(text):
        name, call = match.groups()
        if call is None and name not in KEYWORDS:
            query.metrics.add(name)
    return query


def problems(expr: str, where: str, legend: str = "") -> list[str]:
    """What is wrong with one expression (and the labels its legend or annotations use)."""
    query = parse_promql(expr)
    found = []
    for name in sorted(query.metrics):
        if name not in KNOWN:
            found.append(f"{where}: unknown metric {name!r} in {expr!r}")
    for selected, labels in query.selectors:
        if selected is None:
            found.append(f"{where}: selector without a metric name in {expr!r}")
        elif selected in KNOWN:
            unknown = labels - KNOWN[selected] - TARGET_LABELS
            if unknown:
                found.append(f"{where}: {selected} has no label {sorted(unknown)} ({expr!r})")
    available = set(TARGET_LABELS)
    for name in query.metrics & KNOWN.keys():
        available |= KNOWN[name]
    if not query.metrics:
        available |= query.grouping_labels  # label_values(label) alone
    for label in sorted(query.grouping_labels - available):
        found.append(f"{where}: grouping by {label!r}, which no queried metric has ({expr!r})")
    # An aggregated result keeps its `by` labels only (approximately: the union over clauses).
    kept = query.by_labels if query.by_labels else available
    used = set(LEGEND_LABEL.findall(legend)) | set(TEMPLATE_LABEL.findall(legend))
    for label in sorted(used - kept - {"__name__"}):
        found.append(f"{where}: legend or annotation uses {label!r}, not in {expr!r}")
    return found


# --------------------------------------------------------------------------- the files


def load_dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return dashboard


def load_yaml(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return loaded


def all_panels(container: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in container.get("panels", []):
        yield panel
        yield from all_panels(panel)  # panels of collapsed rows


def dashboard_expressions() -> Iterator[tuple[str, str, str]]:
    """(where, expression, legend) for every target and templating query."""
    dashboard = load_dashboard()
    for panel in all_panels(dashboard):
        for target in panel.get("targets", []):
            if "expr" in target:
                where = f"panel {panel['title']!r} target {target.get('refId')}"
                yield where, target["expr"], target.get("legendFormat", "")
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            text = query["query"] if isinstance(query, dict) else query
            yield f"variable {variable['name']!r}", text, ""


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"]]


def alerts_by_metric(metric: str) -> list[dict[str, Any]]:
    return [rule for rule in alert_rules() if metric in parse_promql(rule["expr"]).metrics]


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


# --------------------------------------------------------------------------- promtool


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not on PATH")
    return path


def run_promtool(*args: str) -> None:
    result = subprocess.run(
        [promtool(), *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_checks_the_rules() -> None:
    run_promtool("check", "rules", str(ALERTS))


def test_promtool_checks_the_example_config(tmp_path: Path) -> None:
    config = load_yaml(PROMETHEUS_CONFIG)
    token = tmp_path / "token"
    token.write_text("secret\n")
    for job in config["scrape_configs"]:
        if "authorization" in job:
            job["authorization"]["credentials_file"] = str(token)
    shutil.copy(ALERTS, tmp_path / "alerts.yml")
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    run_promtool("check", "config", str(tmp_path / "prometheus.yml"))


# Series over 30 minutes at one sample a minute; each alert is expected to fire (or not).
ORG = {"organization": "76349"}
UNIT_TESTS: list[dict[str, Any]] = [
    {
        "interval": "1m",
        "input_series": [
            {"series": 'probe_success{job="plume-readyz", instance="a/readyz"}', "values": "0x30"},
            {"series": 'probe_success{job="plume-readyz", instance="b/readyz"}', "values": "1x30"},
            {"series": 'up{job="plume", instance="a:8000"}', "values": "0x30"},
            {"series": 'up{job="plume", instance="b:8000"}', "values": "1x30"},
        ],
        "alert_rule_test": [
            {
                "eval_time": "10m",
                "alertname": "PlumeNotReady",
                "exp_alerts": [
                    {
                        "exp_labels": {
                            "severity": "critical",
                            "job": "plume-readyz",
                            "instance": "a/readyz",
                        }
                    }
                ],
            },
            {
                "eval_time": "10m",
                "alertname": "PlumeTargetDown",
                "exp_alerts": [
                    {"exp_labels": {"severity": "critical", "job": "plume", "instance": "a:8000"}}
                ],
            },
        ],
    },
    {
        "interval": "1m",
        "input_series": [
            # Two instances expose the same gauge: one alert, not two.
            {
                "series": 'plume_quota_used_ratio{organization="76349", metric="tokens", '
                'period="month", instance="a"}',
                "values": "0.5 0.95x30",
            },
            {
                "series": 'plume_quota_used_ratio{organization="76349", metric="tokens", '
                'period="month", instance="b"}',
                "values": "0.5 0.95x30",
            },
            {
                "series": 'plume_quota_used_ratio{organization="76349", metric="requests", '
                'period="day"}',
                "values": "0.8x30",
            },
        ],
        "alert_rule_test": [
            {"eval_time": "3m", "alertname": "PlumeQuotaNearlyReached", "exp_alerts": []},
            {
                "eval_time": "10m",
                "alertname": "PlumeQuotaNearlyReached",
                "exp_alerts": [
                    {
                        "exp_labels": {
                            **ORG,
                            "severity": "warning",
                            "metric": "tokens",
                            "period": "month",
                        }
                    }
                ],
            },
        ],
    },
    {
        "interval": "1m",
        "input_series": [
            # mistral: half of 6 requests a minute fail; albert: 1 in 10 fails.
            {
                "series": 'plume_provider_requests_total{provider="mistral", model="m", '
                'outcome="failure"}',
                "values": "0+3x30",
            },
            {
                "series": 'plume_provider_requests_total{provider="mistral", model="m", '
                'outcome="success"}',
                "values": "0+3x30",
            },
            {
                "series": 'plume_provider_requests_total{provider="albert", model="a", '
                'outcome="failure"}',
                "values": "0+1x30",
            },
            {
                "series": 'plume_provider_requests_total{provider="albert", model="a", '
                'outcome="success"}',
                "values": "0+9x30",
            },
            # A lone failure on a quiet provider is not a high error rate.
            {
                "series": 'plume_provider_requests_total{provider="quiet", model="q", '
                'outcome="failure"}',
                "values": "0 1x30",
            },
            {
                "series": 'plume_fallbacks_total{from_provider="mistral", to_provider="albert"}',
                "values": "0+5x30",
            },
            {
                "series": 'plume_fallbacks_total{from_provider="albert", to_provider="mistral"}',
                "values": "0+1x30",
            },
        ],
        "alert_rule_test": [
            {
                "eval_time": "15m",
                "alertname": "PlumeProviderErrorRateHigh",
                "exp_alerts": [{"exp_labels": {"severity": "warning", "provider": "mistral"}}],
            },
            {
                "eval_time": "20m",
                "alertname": "PlumeFallbackStorm",
                "exp_alerts": [
                    {
                        "exp_labels": {
                            "severity": "warning",
                            "from_provider": "mistral",
                            "to_provider": "albert",
                        }
                    }
                ],
            },
        ],
    },
]


def _histogram(route: str, method: str, per_minute: dict[str, int]) -> list[dict[str, str]]:
    """Cumulative bucket series and count for `per_minute` observations a minute per bucket."""
    series = []
    total = 0
    for le, count in per_minute.items():
        total += count
        series.append(
            {
                "series": f'plume_http_request_duration_seconds_bucket{{route="{route}", '
                f'method="{method}", status="200", le="{le}"}}',
                "values": f"0+{total}x30",
            }
        )
    series.append(
        {
            "series": f'plume_http_request_duration_seconds_count{{route="{route}", '
            f'method="{method}", status="200"}}',
            "values": f"0+{total}x30",
        }
    )
    return series


UNIT_TESTS.append(
    {
        "interval": "1m",
        "input_series": [
            # A slow read (between 1 and 2.5 s) alerts; a 5-10 s draft does not; a 40 s one does.
            *_histogram("/v1/drafts/{draft_id}", "GET", {"1": 0, "2.5": 10, "+Inf": 0}),
            *_histogram("/v1/drafts", "POST", {"5": 0, "10": 10, "30": 0, "+Inf": 0}),
            *_histogram("/v1/chat/completions", "POST", {"30": 0, "60": 10, "+Inf": 0}),
        ],
        "alert_rule_test": [
            {
                "eval_time": "20m",
                "alertname": "PlumeHttpLatencyHigh",
                "exp_alerts": [
                    {
                        "exp_labels": {
                            "severity": "warning",
                            "route": "/v1/drafts/{draft_id}",
                            "method": "GET",
                        }
                    }
                ],
            },
            {
                "eval_time": "20m",
                "alertname": "PlumeDraftingLatencyHigh",
                "exp_alerts": [
                    {
                        "exp_labels": {
                            "severity": "warning",
                            "route": "/v1/chat/completions",
                            "method": "POST",
                        }
                    }
                ],
            },
        ],
    }
)


def test_promtool_unit_tests_the_alerts(tmp_path: Path) -> None:
    """The rules fire on synthetic series. Annotations are stripped from a copy of the rules
    (promtool would otherwise want their rendered text); `check rules` validates them."""
    rules = load_yaml(ALERTS)
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
    tests = {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": UNIT_TESTS}
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(tests))
    run_promtool("test", "rules", str(tmp_path / "tests.yml"))


def test_promtool_parses_the_dashboard_queries(tmp_path: Path) -> None:
    """Each panel query, Grafana's variables replaced, loads as a recording rule."""
    replacements = {"$__rate_interval": "5m", "$__range": "1d", "$organization": ".*"}
    rules = []
    for index, (_, expr, _) in enumerate(dashboard_expressions()):
        if expr.startswith("label_values("):
            continue
        for variable, value in replacements.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, expr
        rules.append({"record": f"plume:dashboard_query_{index}", "expr": expr})
    (tmp_path / "dashboard.yml").write_text(
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]})
    )
    run_promtool("check", "rules", str(tmp_path / "dashboard.yml"))
