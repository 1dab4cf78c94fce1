"""promtool checks the Prometheus files in deploy/ and unit-tests the alerts on synthetic
series; skipped when promtool is not on PATH (a failure in CI). Each test runs it as a
subprocess."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.promql import ALERTS, PROMETHEUS_CONFIG, dashboard_expressions, load_yaml
from tests.support.tools import require_tool

# Slow lane: each test runs promtool as a subprocess.
pytestmark = pytest.mark.slow

# --------------------------------------------------------------------------- promtool


def promtool() -> str:
    return require_tool("promtool", what="promtool (Prometheus)")


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


def _first_tokens(group: str, per_minute: dict[str, int]) -> list[dict[str, str]]:
    """Cumulative bucket series and count of plume_time_to_first_token_seconds."""
    series = []
    total = 0
    for le, count in per_minute.items():
        total += count
        series.append(
            {
                "series": f'plume_time_to_first_token_seconds_bucket{{model_group="{group}", '
                f'le="{le}"}}',
                "values": f"0+{total}x30",
            }
        )
    series.append(
        {
            "series": f'plume_time_to_first_token_seconds_count{{model_group="{group}"}}',
            "values": f"0+{total}x30",
        }
    )
    return series


UNIT_TESTS.append(
    {
        "interval": "1m",
        "input_series": [
            # One commune refused 5 times a minute (quota), another once: only the first.
            {
                "series": 'plume_refusals_total{organization="76349", status="429", '
                'code="quota_exceeded"}',
                "values": "0+5x30",
            },
            {
                "series": 'plume_refusals_total{organization="21000", status="429", '
                'code="rate_limited"}',
                "values": "0+1x30",
            },
            {
                "series": 'plume_refusals_total{organization="21000", status="404", '
                'code="not_found"}',
                "values": "0+50x30",
            },
            # One answer in ten is a 502: 10 % of 5xx.
            {
                "series": 'plume_http_request_duration_seconds_count{route="/v1/drafts", '
                'method="POST", status="201"}',
                "values": "0+90x30",
            },
            {
                "series": 'plume_http_request_duration_seconds_count{route="/v1/drafts", '
                'method="POST", status="502"}',
                "values": "0+10x30",
            },
            # First words after 10 to 20 s for `standard`, within a second for `fast`.
            *_first_tokens("standard", {"5": 0, "10": 0, "20": 10, "+Inf": 0}),
            *_first_tokens("fast", {"1": 10, "5": 0, "10": 0, "20": 0, "+Inf": 0}),
            # The oldest queued synthèse waits a minute longer each minute (two instances).
            {
                "series": 'plume_synthese_oldest_queued_seconds{instance="a"}',
                "values": "0+60x30",
            },
            {
                "series": 'plume_synthese_oldest_queued_seconds{instance="b"}',
                "values": "0+60x30",
            },
            # A verification found a break at minute 3.
            {
                "series": 'plume_audit_verification_failures_total{organization="76349"}',
                "values": "0x3 1x26",
            },
            # A deployment failing 6 attempts in 10, its sibling sound.
            {
                "series": 'plume_provider_attempts_total{provider="mistral", '
                'deployment="standard/0", model_group="standard", outcome="server_error"}',
                "values": "0+6x30",
            },
            {
                "series": 'plume_provider_attempts_total{provider="mistral", '
                'deployment="standard/0", model_group="standard", outcome="success"}',
                "values": "0+4x30",
            },
            {
                "series": 'plume_provider_attempts_total{provider="albert", '
                'deployment="standard/1", model_group="standard", outcome="success"}',
                "values": "0+10x30",
            },
        ],
        "alert_rule_test": [
            {
                "eval_time": "25m",
                "alertname": "PlumeTenantRateLimited",
                "exp_alerts": [{"exp_labels": {**ORG, "severity": "warning"}}],
            },
            {
                "eval_time": "15m",
                "alertname": "PlumeServerErrorRateHigh",
                "exp_alerts": [{"exp_labels": {"severity": "critical"}}],
            },
            {
                "eval_time": "25m",
                "alertname": "PlumeTimeToFirstTokenHigh",
                "exp_alerts": [{"exp_labels": {"severity": "warning", "model_group": "standard"}}],
            },
            {"eval_time": "20m", "alertname": "PlumeSyntheseBacklog", "exp_alerts": []},
            {
                "eval_time": "29m",
                "alertname": "PlumeSyntheseBacklog",
                "exp_alerts": [{"exp_labels": {"severity": "warning"}}],
            },
            {"eval_time": "2m", "alertname": "PlumeAuditChainBroken", "exp_alerts": []},
            {
                "eval_time": "5m",
                "alertname": "PlumeAuditChainBroken",
                "exp_alerts": [{"exp_labels": {**ORG, "severity": "critical"}}],
            },
            {
                "eval_time": "25m",
                "alertname": "PlumeDeploymentFailing",
                "exp_alerts": [
                    {
                        "exp_labels": {
                            "severity": "warning",
                            "provider": "mistral",
                            "deployment": "standard/0",
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
