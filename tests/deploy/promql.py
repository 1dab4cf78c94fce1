"""What the deploy/ tests read: the files in deploy/, the metrics plume.metrics.registry
exposes, and a PromQL tokeniser that finds the metrics and labels an expression uses."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.metrics import MetricWrapperBase

from plume.metrics import registry

ROOT = Path(__file__).resolve().parents[2]
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
